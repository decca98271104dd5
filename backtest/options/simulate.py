"""Run an options book through a price and implied-volatility path: the Python entry point.

:func:`simulate_options` validates the inputs, packs the parameters, calls the kernel
:func:`backtest.kernels.options_nb.run_options_nb` block by block (optionally handing the
book's state to a callback between blocks, e.g. for liquidation-at-risk snapshots) and wraps
the outputs in an :class:`OptionsResult`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl

from backtest.errors import TapeError
from backtest.jit_compat import kernel_records
from backtest.kernels.options_enums import (
    N_OPTIONS_METRICS,
    OPTIONS_REC_F_FIELDS,
    OPTIONS_REC_I_FIELDS,
    OptionsStepMetric,
    PricePoint,
)
from backtest.kernels.options_nb import run_options_nb
from backtest.options.book import OptionsBook, OptionsBookArrays
from backtest.options.params import OptionsParams, pack_options_params
from backtest.tapes.schema import format_ts

CHUNK_SIZE = 4096


@dataclass(frozen=True)
class OptionsMarket:
    """Per-step inputs of an options run, aligned on one clock.

    Attributes
    ----------
    timestamp_ms : ndarray, shape (T,), int64
        Candle open times, epoch ms, increasing.
    interval_seconds : int
        Candle length; a step is valued at its close time ``timestamp + interval``.
    underlyings : tuple of str
        Column names of the price arrays, e.g. ``("BTC", "ETH")``.
    low, high, close : ndarray, shape (T, U), float64
        Candle prices of each underlying, USD (the forward: zero basis).
    iv : ndarray, shape (T, U), float64
        Implied volatility of each underlying per step, annualised fraction
        (:func:`backtest.options.implied_vol.implied_vol_tape`).
    """

    timestamp_ms: np.ndarray
    interval_seconds: int
    underlyings: tuple[str, ...]
    low: np.ndarray
    high: np.ndarray
    close: np.ndarray
    iv: np.ndarray

    @classmethod
    def single(cls, timestamp_ms, interval_seconds: int, underlying: str, low, high, close,
               iv) -> OptionsMarket:
        """Build a one-underlying market from 1-D arrays of shape (T,)."""
        col = [np.asarray(a, dtype=np.float64).reshape(-1, 1) for a in (low, high, close, iv)]
        return cls(np.asarray(timestamp_ms, dtype=np.int64), int(interval_seconds),
                   (underlying,), *col)

    def validate(self) -> None:
        """Check shapes and values.

        Raises
        ------
        TapeError
            Arrays of different shapes, a non-increasing clock, a price or implied
            volatility that is not a positive finite number, or a low above the close or a
            high below it; the message names the step (time) and underlying.
        """
        t = self.timestamp_ms.size
        shape = (t, len(self.underlyings))
        for name in ("low", "high", "close", "iv"):
            if getattr(self, name).shape != shape:
                raise TapeError(f"options market: {name} has shape {getattr(self, name).shape}, "
                                f"expected {shape} (steps x underlyings {self.underlyings})")
        if t and np.any(np.diff(self.timestamp_ms) <= 0):
            i = int(np.flatnonzero(np.diff(self.timestamp_ms) <= 0)[0]) + 1
            raise TapeError(f"options market: step {i} ({format_ts(self.timestamp_ms[i])}) is "
                            "not after the previous step")
        for name in ("low", "high", "close", "iv"):
            a = getattr(self, name)
            bad = np.argwhere(~(np.isfinite(a) & (a > 0)))
            if bad.size:
                self._fail(bad[0], f"{name} must be a positive number (got {a[tuple(bad[0])]})")
        bad = np.argwhere((self.low > self.close) | (self.high < self.close))
        if bad.size:
            self._fail(bad[0], "the close lies outside [low, high]")

    def _fail(self, where, message: str):
        step, u = int(where[0]), int(where[1])
        raise TapeError(f"options market: step {step} ({format_ts(self.timestamp_ms[step])}), "
                        f"underlying {self.underlyings[u]}: {message}")

    @property
    def valuation_ms(self) -> np.ndarray:
        """Valuation time of each step (its close time), epoch ms, shape (T,)."""
        return self.timestamp_ms + np.int64(self.interval_seconds) * 1000


@dataclass
class OptionsResult:
    """Outputs of :func:`simulate_options`.

    Attributes
    ----------
    timestamp_ms : ndarray, shape (T,), int64
    step_metrics : ndarray, shape (T, N_OPTIONS_METRICS), float64
        Columns :class:`OptionsStepMetric`.
    records : ndarray, shape (R,), structured
        One row per liquidation (fields ``OPTIONS_REC_I_FIELDS`` + ``OPTIONS_REC_F_FIELDS``),
        ordered by (step, account); ``account`` is the row in ``account_id``.
    account_id : ndarray, shape (N,), int64
    cash : ndarray, shape (N,), float64
        Final USD balances.
    leg_qty : ndarray, shape (L,), float64
        Final leg quantities (0: closed or settled).
    liq_step : ndarray, shape (N,), int32
        Step of each account's liquidation, -1 if never.
    bad_debt : ndarray, shape (N,), float64
        Bad debt left by each account, USD.
    settled : ndarray, shape (N,), float64
        Cash received at expiry settlements, USD.
    insurance_fund_usd : float
        Insurance fund balance after the last step.
    """

    timestamp_ms: np.ndarray
    step_metrics: np.ndarray
    records: np.ndarray
    account_id: np.ndarray
    cash: np.ndarray
    leg_qty: np.ndarray
    liq_step: np.ndarray
    bad_debt: np.ndarray
    settled: np.ndarray
    insurance_fund_usd: float

    def steps_frame(self) -> pl.DataFrame:
        """Per-step metrics as a polars DataFrame: ``step``, ``time`` and one column per metric.

        Column names are the lower-case :class:`OptionsStepMetric` names with units (e.g.
        ``bad_debt_usd``, ``n_liquidations``).
        """
        cols = {"step": np.arange(self.timestamp_ms.size, dtype=np.int64),
                "time": pl.Series(self.timestamp_ms).cast(pl.Datetime("ms", "UTC"))}
        for m in OptionsStepMetric:
            cols[metric_column(m)] = self.step_metrics[:, m]
        return pl.DataFrame(cols)

    def summary(self) -> dict[str, float | int]:
        """Totals of the run from its liquidation records and per-account arrays.

        Computed without the per-step metrics, so that their sums (the catalog's ``steps``
        table, :mod:`backtest.options.run_record`) can be checked against it.

        Returns
        -------
        dict
            ``liquidations`` and ``accounts_liquidated`` (counts; one liquidation per account
            closes all its legs), ``liquidated_notional_usd``, ``keeper_fees_usd``,
            ``insurance_fees_usd``, ``bad_debt_usd``, ``settlement_cash_usd`` and
            ``insurance_fund_end_usd`` (the fund after the last step), USD.
        """
        rec = self.records
        return {
            "liquidations": int(rec.size),
            "accounts_liquidated": int((self.liq_step >= 0).sum()),
            "liquidated_notional_usd": float(rec["notional"].sum()),
            "keeper_fees_usd": float(rec["keeper_fee"].sum()),
            "insurance_fees_usd": float(rec["insurance_fee"].sum()),
            "bad_debt_usd": float(self.bad_debt.sum()),
            "settlement_cash_usd": float(self.settled.sum()),
            "insurance_fund_end_usd": float(self.insurance_fund_usd),
        }

    def records_frame(self) -> pl.DataFrame:
        """Liquidation records as a polars DataFrame (with ``account_id`` and ``time``)."""
        rec = self.records
        frame = pl.DataFrame({name: rec[name] for name in rec.dtype.names})
        return frame.with_columns(
            pl.Series("account_id", self.account_id[rec["account"]]),
            pl.Series("time", self.timestamp_ms[rec["step"]]).cast(pl.Datetime("ms", "UTC")),
            pl.Series("price_point", np.array([p.name.lower() for p in PricePoint],
                                              dtype=object)[rec["price_point"]].astype(str)),
        )


def metric_column(metric: OptionsStepMetric) -> str:
    """Column name of a metric: lower case, ``_usd`` on monetary ones (not counts)."""
    name = metric.name.lower()
    return name if name.startswith("n_") else f"{name}_usd"


def _record_dtype() -> np.dtype:
    return np.dtype([(n, np.int64) for n in OPTIONS_REC_I_FIELDS]
                    + [(n, np.float64) for n in OPTIONS_REC_F_FIELDS])


def simulate_options(
    market: OptionsMarket,
    book: OptionsBook | OptionsBookArrays,
    params: OptionsParams | None = None,
    *,
    chunk_size: int = CHUNK_SIZE,
    every: int | None = None,
    on_block: Callable[[int, OptionsBookArrays], None] | None = None,
) -> OptionsResult:
    """Mark, margin, liquidate and settle an options book step by step.

    Parameters
    ----------
    market : OptionsMarket
        Prices and implied volatilities per step and underlying.
    book : OptionsBook or OptionsBookArrays
        The accounts (not modified: the run works on a copy).
    params : OptionsParams, optional
        Margin grid and liquidation rule; default :class:`OptionsParams`.
    chunk_size : int
        Accounts per parallel chunk (fixes the summation order, not the thread count).
    every : int, optional
        With ``on_block``: call it every ``every`` steps.
    on_block : callable, optional
        ``on_block(t, state)`` before step ``t`` (0, every, 2 x every, ...), with the book's
        current state (cash and quantities as of the end of step ``t - 1``); e.g. to take
        liquidation-at-risk snapshots
        (:func:`backtest.risk.liquidation_map.options_liquidation_map`).
        It must not modify ``state``.

    Returns
    -------
    OptionsResult

    Raises
    ------
    TapeError
        Invalid market arrays (:meth:`OptionsMarket.validate`).
    BookError
        The book holds an underlying the market does not price.

    Examples
    --------
    >>> market = OptionsMarket.single(ts, 300, "BTC", low, high, close, iv)  # doctest: +SKIP
    >>> res = simulate_options(market, book, OptionsParams(spread=0.03))    # doctest: +SKIP
    >>> res.steps_frame().select("time", "n_liquidations", "bad_debt_usd")  # doctest: +SKIP
    """
    params = params or OptionsParams()
    market.validate()
    arrays = book.arrays(market.underlyings) if isinstance(book, OptionsBook) else book
    if arrays.underlyings != tuple(market.underlyings):
        raise TapeError(f"the book's underlyings {arrays.underlyings} differ from the market's "
                        f"{market.underlyings}")
    return run_options(market, arrays, pack_options_params(params), params.grid.price_shocks(),
                       params.grid.vol_factors(), params.insurance_fund_usd,
                       chunk_size=chunk_size, every=every, on_block=on_block)


def run_options(market: OptionsMarket, arrays: OptionsBookArrays, packed: np.ndarray,
                price_shocks: np.ndarray, vol_factors: np.ndarray,
                insurance_fund_usd: float = 0.0, *, chunk_size: int = CHUNK_SIZE,
                every: int | None = None,
                on_block: Callable[[int, OptionsBookArrays], None] | None = None
                ) -> OptionsResult:
    """Run the kernel on already validated inputs and a packed parameter record.

    Parameters
    ----------
    market : OptionsMarket
    arrays : OptionsBookArrays
        Not modified (the run works on a copy).
    packed : ndarray, shape (1,), dtype ``OPTIONS_PARAMS_DTYPE``
    price_shocks : ndarray, shape (S_p,), float64
    vol_factors : ndarray, shape (S_v,), float64
    insurance_fund_usd : float
    chunk_size, every, on_block
        As for :func:`simulate_options`.

    Returns
    -------
    OptionsResult
    """
    state = arrays.copy()
    n = state.n_accounts
    steps = market.timestamp_ms.size
    step_out = np.zeros((steps, N_OPTIONS_METRICS))
    liq_step = np.full(n, -1, np.int32)
    rec_i = np.zeros((n, len(OPTIONS_REC_I_FIELDS)), np.int64)
    rec_f = np.zeros((n, len(OPTIONS_REC_F_FIELDS)))
    bad_debt = np.zeros(n)
    settled = np.zeros(n)
    fund = np.array([float(insurance_fund_usd)])
    active = np.ones(state.inst_und.size, np.int8)
    inputs = [np.ascontiguousarray(a, dtype=np.float64) for a in
              (market.low, market.high, market.close, market.iv)]
    shocks = np.ascontiguousarray(price_shocks, dtype=np.float64)
    factors = np.ascontiguousarray(vol_factors, dtype=np.float64)
    block = every if (every and on_block) else max(steps, 1)
    t = 0
    while t < steps:
        if on_block is not None and every:
            on_block(t, state)
        t1 = min(steps, t + block)
        run_options_nb(t, t1, market.valuation_ms, *inputs, state.inst_und, state.inst_call,
                       state.inst_strike, state.inst_expiry_ms, active, state.leg_start,
                       state.leg_inst, state.leg_qty, state.cash, kernel_records(packed), shocks,
                       factors, int(chunk_size), fund, step_out, liq_step, rec_i, rec_f, bad_debt,
                       settled)
        t = t1
    hit = np.flatnonzero(liq_step >= 0)
    hit = hit[np.lexsort((hit, liq_step[hit]))]
    records = np.zeros(hit.size, _record_dtype())
    for j, name in enumerate(OPTIONS_REC_I_FIELDS):
        records[name] = rec_i[hit, j]
    for j, name in enumerate(OPTIONS_REC_F_FIELDS):
        records[name] = rec_f[hit, j]
    return OptionsResult(market.timestamp_ms, step_out, records, state.account_id, state.cash,
                         state.leg_qty, liq_step, bad_debt, settled, float(fund[0]))
