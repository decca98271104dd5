"""Run a portfolio book through aligned tapes: :func:`simulate_portfolio`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from backtest.engine.config import KeeperConfig
from backtest.errors import BookError
from backtest.jit_compat import kernel_records
from backtest.kernels.enums import AdlRanking, MarketState
from backtest.kernels.portfolio_enums import (
    N_ASSET_METRICS,
    N_PORTFOLIO_METRICS,
    PREC_F_FIELDS,
    PREC_I_FIELDS,
    AccountKind,
    AssetMarketMetric,
    AssetMetric,
    PortfolioMetric,
)
from backtest.kernels.portfolio_nb import max_positions_nb, run_portfolio_nb
from backtest.portfolio.market import (
    PortfolioMarketParams,
    deleverage_step,
    empty_adl_frame,
    portfolio_keepers,
    portfolio_market,
)
from backtest.portfolio.model import PortfolioBook, PortfolioParams
from backtest.tapes.align import AlignedTapes

#: Initial record buffer rows (grown when one step needs more).
INITIAL_RECORDS = 1 << 16


@dataclass(eq=False)
class PortfolioResult:
    """Outputs of :func:`simulate_portfolio`.

    Attributes
    ----------
    symbols : tuple of str
        Assets (columns of ``asset_metrics``).
    timestamp : ndarray, shape (T,), int64
        Step open times, epoch ms UTC.
    params : PortfolioParams
    book : PortfolioBook
        The accounts after the window (units and cash updated).
    n_liquidations, first_step : ndarray, shape (N,), int32
        Liquidation events per account; step of the first (-1: none).
    penalties_paid, bad_debt, liquidated_notional : ndarray, shape (N,), float64
        Per account, USD: bonus / penalties lost to keepers and the insurance fund; bad debt
        left; notional liquidated.
    step_metrics : ndarray, shape (T, N_PORTFOLIO_METRICS), float64
        :class:`PortfolioMetric` per step.
    asset_metrics : ndarray, shape (T, A, N_ASSET_METRICS), float64
        :class:`AssetMetric` per step and asset.
    insurance_fund, insurance_draw, socialised_loss : ndarray, shape (T,), float64
        Fund balance after each step (fees received first, then bad debt drawn), what it paid,
        and the bad debt it could not cover, USD: the kernel's per-step settlement
        (:func:`backtest.kernels.settlement_nb.socialise_step_nb`), copies of the
        ``INSURANCE_FUND``, ``INSURANCE_DRAW`` and ``SOCIALISED_LOSS`` columns of
        ``step_metrics``.
    records : polars.DataFrame
        One row per position liquidated: ``step``, ``account``, ``asset`` (index) and
        ``symbol``, then :data:`PREC_F_FIELDS` and ``notional`` (USD).
    seconds : dict of str to float
        ``run`` wall time of the kernel calls.
    market_metrics : ndarray, shape (T, A, N_ASSET_MARKET_METRICS), float64
        :class:`AssetMarketMetric` per step and asset: price factor, execution factor, net
        flow, oracle price, impact cost, depth (factors 1 and flows 0 without impact).
    market : PortfolioMarketParams
        The market the run used (impact, cascade, oracle, waterfall).
    adl : polars.DataFrame
        Auto-deleveraging (waterfall ADL): one row per counterparty position deleveraged,
        ``step``, ``account``, ``asset``, ``units_closed``, ``price``, ``transfer`` (USD it
        paid); empty otherwise (:func:`backtest.portfolio.market.deleverage_step`).
    """

    symbols: tuple[str, ...]
    timestamp: np.ndarray
    params: PortfolioParams
    book: PortfolioBook
    n_liquidations: np.ndarray
    first_step: np.ndarray
    penalties_paid: np.ndarray
    bad_debt: np.ndarray
    liquidated_notional: np.ndarray
    step_metrics: np.ndarray
    asset_metrics: np.ndarray
    insurance_fund: np.ndarray
    insurance_draw: np.ndarray
    socialised_loss: np.ndarray
    records: pl.DataFrame
    seconds: dict[str, float] = field(default_factory=dict)
    market_metrics: np.ndarray | None = None
    market: PortfolioMarketParams | None = None
    adl: pl.DataFrame | None = None

    def market_frame(self) -> pl.DataFrame:
        """Return one row per step and asset: timestamp, symbol, each :class:`AssetMarketMetric`."""
        t_steps, n_assets = self.market_metrics.shape[:2]
        cols = {m.name.lower(): self.market_metrics[:, :, m].reshape(-1)
                for m in AssetMarketMetric}
        return pl.DataFrame({
            "timestamp": np.repeat(self.timestamp, n_assets),
            "symbol": np.tile(np.array(self.symbols, dtype=object), t_steps).tolist(),
            **cols}).with_columns(
            pl.col("timestamp").cast(pl.Datetime("ms")).dt.replace_time_zone("UTC"))

    def steps_frame(self) -> pl.DataFrame:
        """Return one row per step: timestamp, every :class:`PortfolioMetric` (the fund's last)."""
        cols = {m.name.lower(): self.step_metrics[:, m] for m in PortfolioMetric}
        return pl.DataFrame({"timestamp": self.timestamp, **cols}).with_columns(
            pl.col("timestamp").cast(pl.Datetime("ms")).dt.replace_time_zone("UTC"))

    def asset_frame(self) -> pl.DataFrame:
        """Return per-asset totals over the window: one row per asset, USD and units.

        Columns ``symbol`` and ``liquidated_notional_usd``, ``collateral_seized_usd``,
        ``perp_closed_usd``, ``units_liquidated``, ``keeper_fees_usd``,
        ``insurance_fees_usd``, ``bad_debt_usd``, ``user_loss_usd`` (keeper + insurance
        fees: what users paid for being liquidated), ``positions_liquidated``.
        """
        tot = self.asset_metrics.sum(axis=0)
        A = AssetMetric
        return pl.DataFrame({
            "symbol": list(self.symbols),
            "liquidated_notional_usd": tot[:, A.NOTIONAL],
            "collateral_seized_usd": tot[:, A.COLLATERAL_SEIZED],
            "perp_closed_usd": tot[:, A.PERP_CLOSED],
            "units_liquidated": tot[:, A.UNITS],
            "keeper_fees_usd": tot[:, A.KEEPER_FEES],
            "insurance_fees_usd": tot[:, A.INSURANCE_FEES],
            "bad_debt_usd": tot[:, A.BAD_DEBT],
            "user_loss_usd": tot[:, A.KEEPER_FEES] + tot[:, A.INSURANCE_FEES],
            "positions_liquidated": tot[:, A.N_RECORDS].astype(np.int64),
        })

    def summary(self) -> dict[str, float]:
        """Return totals over the window (USD, counts)."""
        s = self.step_metrics.sum(axis=0)
        M = PortfolioMetric
        return {
            "liquidations": float(s[M.N_LIQUIDATIONS]),
            "accounts_liquidated": int((self.n_liquidations > 0).sum()),
            "liquidated_notional_usd": float(s[M.LIQUIDATED_NOTIONAL]),
            "debt_repaid_usd": float(s[M.DEBT_REPAID]),
            "keeper_fees_usd": float(s[M.KEEPER_FEES]),
            "insurance_fees_usd": float(s[M.INSURANCE_FEES]),
            "bad_debt_usd": float(s[M.BAD_DEBT]),
            "socialised_loss_usd": float(self.socialised_loss.sum()),
            "insurance_fund_end_usd": float(self.insurance_fund[-1]) if len(
                self.insurance_fund) else self.params.insurance_fund_usd,
        }


def sensitivity_of(aligned: AlignedTapes) -> np.ndarray:
    """Return the per-step asset sensitivity the kernel ranks by, shape (T, A), float64.

    The trailing realised volatility known at each step (:attr:`AlignedTapes.realized_vol`);
    unknown values (NaN) become +inf, so an asset without history ranks as the most sensitive.
    """
    s = np.array(aligned.realized_vol, dtype=np.float64, copy=True)
    s[~np.isfinite(s)] = np.inf
    return np.ascontiguousarray(s)


def simulate_portfolio(aligned: AlignedTapes, book: PortfolioBook,
                       params: PortfolioParams | None = None, *,
                       sensitivity: np.ndarray | None = None, every: int | None = None,
                       on_block: Callable[[int, PortfolioBook], None] | None = None,
                       market: PortfolioMarketParams | None = None,
                       depth: np.ndarray | None = None,
                       keepers: KeeperConfig | None = None,
                       gas_usd: np.ndarray | None = None) -> PortfolioResult:
    """Simulate a multi-asset book through aligned tapes under one portfolio policy.

    Parameters
    ----------
    aligned : AlignedTapes
        Prices of every asset on one clock (:func:`backtest.tapes.align.align_tapes`).
    book : PortfolioBook
        Accounts; not modified (the kernel works on a copy). Its ``symbols`` must equal the
        aligned tapes' symbols (same order).
    params : PortfolioParams, optional
        Policy; default :class:`PortfolioParams` (protocol order, Aave close factor).
    sensitivity : ndarray, shape (T, A), optional
        What ``least_sensitive`` ranks by; default :func:`sensitivity_of` (trailing realised
        volatility). Pass e.g. a trailing beta to the crash asset to test another measure.
    every : int, optional
        With ``on_block``: call it every ``every`` steps.
    on_block : callable, optional
        ``on_block(t, state)`` before step ``t`` (0, every, 2 x every, ...) with the book's
        current state (units and cash as of the end of step ``t - 1``), e.g. to take
        liquidation-at-risk snapshots
        (:func:`backtest.portfolio.lar_map.portfolio_liquidation_map`). It must not modify
        ``state``. Blocks do not change the results.
    market : PortfolioMarketParams, optional
        Market impact, cascade feedback and oracle of each asset (``docs/portfolios.md``);
        default none of them: every position triggers and fills at its historical candle.
    depth : ndarray, shape (T, A), optional
        1% depth per step and asset, USD; overrides ``market.depth_usd``.
    keepers : KeeperConfig, optional
        Keepers' latency, profit rule, gas and capital per asset (``[portfolio.keepers]``,
        ``docs/portfolios.md``); default: keepers act at once, for free, without a limit.
    gas_usd : ndarray, shape (T,), optional
        Gas of one liquidation record per step, USD; overrides the gas of ``keepers``.

    Returns
    -------
    PortfolioResult

    Raises
    ------
    BookError
        If the book's assets differ from the tapes' or the book is invalid.
    ConfigError
        If an asset has no risk parameters, or an impact model lacks an asset's depth.
    """
    params = params or PortfolioParams()
    if tuple(book.symbols) != tuple(aligned.symbols):
        raise BookError(f"the book's assets {list(book.symbols)} differ from the aligned tapes' "
                        f"{list(aligned.symbols)} (same assets, same order)")
    book.validate()
    risk = kernel_records(params.asset_risk(aligned.symbols))
    policy = kernel_records(params.policy_record())
    sens = sensitivity_of(aligned) if sensitivity is None else np.ascontiguousarray(
        np.where(np.isfinite(sensitivity), sensitivity, np.inf), dtype=np.float64)
    if sens.shape != aligned.close.shape:
        raise BookError(f"sensitivity has shape {sens.shape}, expected {aligned.close.shape}")
    state = book.copy()
    n, t_steps, n_assets = state.n_accounts, aligned.n_steps, aligned.n_assets
    n_liq = np.zeros(n, np.int32)
    first = np.full(n, -1, np.int32)
    penalties, bad, notional = np.zeros(n), np.zeros(n), np.zeros(n)
    flag = np.zeros(n, np.int8)
    fund = np.array([float(params.insurance_fund_usd)])
    step_out = np.zeros((t_steps, N_PORTFOLIO_METRICS))
    asset_out = np.zeros((t_steps, n_assets, N_ASSET_METRICS))
    cap = INITIAL_RECORDS
    rec_len = np.zeros(1, np.int64)
    rec_i = np.zeros((cap, len(PREC_I_FIELDS)), np.int64)
    rec_f = np.zeros((cap, len(PREC_F_FIELDS)))
    parts_i, parts_f = [], []
    max_pos = int(max_positions_nb(state.offsets))
    low, high, close = (np.ascontiguousarray(x) for x in (aligned.low, aligned.high,
                                                           aligned.close))
    mkt = portfolio_market(market, aligned.open, aligned.symbols, aligned.interval_seconds,
                           depth)
    keep = portfolio_keepers(keepers, aligned.timestamp, close, aligned.symbols,
                             aligned.interval_seconds, n, gas_usd)
    mk = market or PortfolioMarketParams()
    adl_parts, equity_start = [], None
    t = 0
    block = int(every) if (every and on_block) else max(t_steps, 1)
    hook_s, hooked = 0.0, -1
    began = time.perf_counter()
    while t < t_steps:
        if on_block is not None and every and t % block == 0 and t != hooked:
            hooked = t
            h0 = time.perf_counter()
            on_block(t, state)
            hook_s += time.perf_counter() - h0
        t_end = min(t_steps, (t // block + 1) * block)
        t = run_portfolio_nb(t, t_end, low, high, close, sens, risk, policy, state.kind,
                             state.offsets, state.pos_asset, state.pos_units, state.cash, n_liq,
                             first, penalties, bad, notional, flag, params.chunk_size, max_pos,
                             step_out, asset_out, fund, rec_len, rec_i, rec_f, mkt, keep)
        if mkt.state[0, MarketState.ADL_STEP] >= 0:  # the fund ran dry, waterfall ADL
            if equity_start is None:
                equity_start = book.cash + np.bincount(
                    book.account_of_position(), minlength=n,
                    weights=book.pos_units * aligned.open[0][book.pos_asset])
            adl_parts.append(deleverage_step(mkt, state, equity_start, close, risk, step_out,
                                             int(AdlRanking[mk.adl_ranking.upper()]), mk.seed))
        elif t < t_end:  # the next step's records do not fit: flush, or grow an empty buffer
            if rec_len[0] > 0:
                parts_i.append(rec_i[:rec_len[0]].copy())
                parts_f.append(rec_f[:rec_len[0]].copy())
                rec_len[0] = 0
            else:
                cap *= 2
                rec_i = np.zeros((cap, len(PREC_I_FIELDS)), np.int64)
                rec_f = np.zeros((cap, len(PREC_F_FIELDS)))
    run_s = time.perf_counter() - began - hook_s
    parts_i.append(rec_i[:rec_len[0]])
    parts_f.append(rec_f[:rec_len[0]])
    ri, rf = np.concatenate(parts_i), np.concatenate(parts_f)
    records = pl.DataFrame({
        "step": ri[:, 0].astype(np.int32), "account": ri[:, 1],
        "asset": ri[:, 2].astype(np.int16),
        **{name: rf[:, k] for k, name in enumerate(PREC_F_FIELDS)},
        "notional": np.abs(rf[:, 0]) * rf[:, 1],
    }).with_columns(pl.col("asset").replace_strict(
        list(range(n_assets)), list(aligned.symbols), return_dtype=pl.String).alias("symbol"))
    adl = pl.concat(adl_parts) if adl_parts else empty_adl_frame()
    M = PortfolioMetric
    balance, draw, social = (step_out[:, m].copy() for m in (
        M.INSURANCE_FUND, M.INSURANCE_DRAW, M.SOCIALISED_LOSS))
    return PortfolioResult(aligned.symbols, aligned.timestamp, params, state, n_liq, first,
                           penalties, bad, notional, step_out, asset_out, balance, draw, social,
                           records, {"run": run_s, "on_block": hook_s}, mkt.out, mk,
                           adl)


__all__ = ["INITIAL_RECORDS", "AccountKind", "PortfolioResult", "sensitivity_of",
           "simulate_portfolio"]
