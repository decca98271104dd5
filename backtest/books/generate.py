"""Synthetic books: a seeded population of perp accounts and loans with documented distributions.

Every draw comes from one ``numpy.random.Generator(PCG64(seed))`` in a fixed order, so the
same tape, window, parameters and seed give the same book, bit for bit.

Distributions (defaults in :class:`BookParams`; docs/books.md discusses the choices):

- **product**: a loan with probability ``loan_fraction``, else an isolated-margin perp.
- **side** (perps): long with probability ``long_fraction`` (crowds lean long before crashes).
- **leverage** (perps): discrete, the round numbers traders pick on exchange sliders; with the
  default weights 83% of accounts are within 2-20x and 17% in the 25-100x tail.
- **loan-to-value** (loans): ``ltv_min + (ltv_max - ltv_min) x Beta(ltv_beta_a, ltv_beta_b)``;
  leverage = 1 / (1 - LTV).
- **size**: notional (perps) or collateral value (loans) at entry is lognormal with the given
  median (USD) and log-sd, clipped to ``[min_notional_usd, max_notional_usd]``;
  size = notional / entry price.
- **entry time**: an age before the window start, exponential with mean ``entry_age_mean_days``
  truncated to ``lookback_days``; the entry price is the close of the tape's candle holding the
  entry time, so entry and liquidation prices disperse as the market moved.
- **survivorship**: an account that would already have been liquidated between its entry and
  the window start (its liquidation price under ``survivor_maintenance_margin_rate`` /
  ``survivor_liquidation_threshold`` touched by a low or high) is redrawn, so the book holds
  the positions still open when the window starts.
- **leverage and volatility**: perp leverage above 1 is scaled by ``leverage_scale x
  (reference_daily_volatility / sigma)^leverage_volatility_exponent``, where ``sigma`` is the
  tape's realised daily volatility over the lookback (traders size leverage to the volatility
  they have just seen); exponent 0 and scale 1 keep the listed choices.
- **hedged positions**: a share ``low_leverage_share`` of perp accounts are basis traders and
  market makers whose leverage is uniform in ``[1, low_leverage_max]`` (not scaled): open
  interest that a crash rarely liquidates.
- **arrivals**: ``arrival_share x n_accounts`` more positions open during the window, at the
  start of candles drawn in proportion to each candle's USD volume (new positions come with
  trading), from the same distributions, at the previous candle's close; their
  ``entry_time`` lies inside the window, and the engine opens them at that step; their
  leverage factor and side mix may be their own (``arrival_leverage_scale``,
  ``arrival_long_fraction``).
- **voluntary closes**: each position open at the window start is closed by its trader during
  the window with probability ``close_share``, in full, at the start of a candle drawn in
  proportion to each candle's USD volume (traders trade when the market trades), at the
  previous candle's close; its ``exit_time`` (the ``exit_time`` column, written only when
  ``close_share > 0``) lies inside the window, and the engine closes it at that step. A
  position liquidated in full before then has nothing left to close. Every account draws its
  uniform and its candle whatever ``close_share`` is, so a larger share closes a superset of
  the same positions at the same times (the calibration sees a smooth function).
- **size**: with ``size_usd`` set, every size is scaled by one factor so that the accounts open
  at the start hold ``size_usd``: the perps' open interest at the last close before the window
  (the venue's, as published: each contract counted once, so half the perps' notional over
  both sides) or the loans' total debt (the protocol's borrowings), USD, or with
  ``size_basis = "collateral"`` the loans' collateral at that close (a reserve's deposits). The
  book then stands for the real venue or protocol (``represents``), and its USD results no
  longer depend on the number of accounts, which only sets the granularity.

Why over 400 lines: every distribution is drawn here from one generator in one fixed order, and
that order is what keeps a book bit-identical across versions (a parameter that is off draws
nothing); split across modules, the order would be implicit.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Literal

import numpy as np
import polars as pl
from pydantic import Field, model_validator

from backtest.books.schema import Book, validate_book
from backtest.errors import BookError
from backtest.strict import StrictModel

_MS_PER_DAY = 86_400_000


class BookParams(StrictModel):
    """Parameters of the synthetic book generator (fractions, USD, days).

    Attributes
    ----------
    loan_fraction : float
        Share of accounts that are loans.
    long_fraction : float
        Share of perp accounts that are long.
    leverage_choices, leverage_weights : list of float
        Perp leverage values and their relative weights.
    perp_notional_median_usd, perp_notional_sigma : float
        Lognormal perp notional at entry: median (USD) and standard deviation of its log.
    loan_collateral_median_usd, loan_collateral_sigma : float
        Lognormal loan collateral value at entry: median (USD) and log-sd.
    min_notional_usd, max_notional_usd : float
        Clip bounds of both size distributions (USD).
    ltv_min, ltv_max, ltv_beta_a, ltv_beta_b : float
        Loan-to-value at entry: ``ltv_min + (ltv_max - ltv_min) x Beta(a, b)``.
    lookback_days, entry_age_mean_days : float
        Entry ages (days before the window start): exponential with this mean, truncated.
    leverage_scale, leverage_volatility_exponent, reference_daily_volatility : float
        Perp leverage above 1 times ``scale x (reference / realised daily vol)^exponent``.
    max_leverage : float
        Cap of the scaled perp leverage (the venue's maximum).
    low_leverage_share, low_leverage_max : float
        Share of perp accounts that are hedged, with leverage uniform in ``[1, max]``.
    arrival_share : float
        Positions opened during the window, as a fraction of the accounts open at its start.
    arrival_leverage_scale : float
        Factor on the arrivals' leverage above 1, on top of the book's scaling (1: as the
        book's; capped at ``max_leverage``).
    arrival_long_fraction : float or None
        Share of the arrivals that are long (None: ``long_fraction``).
    close_share : float
        Share of the positions open at the window start that their traders close, in full,
        during the window (0: none, every result as without the parameter).
    size_usd : float or None
        Perps' open interest (one side: half their notional) / loans' debt at the start, USD.
    size_basis : {"debt", "collateral"}
        What ``size_usd`` (and a calibration's liquidated share) measures for loans: their debt
        (the protocol's borrowings) or their collateral at the last close before the window
        (the collateral deposited: a reserve's deposits, lenders who never borrow included).
    represents : str or None
        Venue or protocol the book stands for (``binance``, ``aave-v2``, ...); recorded in the
        book's metadata (``venue``), where ``liqbt validate`` finds the matching targets.
    survivor_maintenance_margin_rate, survivor_liquidation_threshold : float
        Rules used to drop positions that would not have survived to the window start.
    """

    loan_fraction: float = Field(0.3, ge=0.0, le=1.0)
    long_fraction: float = Field(0.6, ge=0.0, le=1.0)
    leverage_choices: list[float] = [2, 3, 5, 10, 20, 25, 50, 75, 100]
    leverage_weights: list[float] = [0.12, 0.14, 0.20, 0.22, 0.15, 0.06, 0.06, 0.02, 0.03]
    perp_notional_median_usd: float = Field(2_000.0, gt=0)
    perp_notional_sigma: float = Field(1.6, ge=0)
    loan_collateral_median_usd: float = Field(10_000.0, gt=0)
    loan_collateral_sigma: float = Field(1.8, ge=0)
    min_notional_usd: float = Field(20.0, gt=0)
    max_notional_usd: float = Field(50_000_000.0, gt=0)
    ltv_min: float = Field(0.10, ge=0.0, lt=1.0)
    ltv_max: float = Field(0.80, gt=0.0, lt=1.0)
    ltv_beta_a: float = Field(5.0, gt=0)
    ltv_beta_b: float = Field(3.0, gt=0)
    lookback_days: float = Field(7.0, gt=0)
    entry_age_mean_days: float = Field(2.0, gt=0)
    survivor_maintenance_margin_rate: float = Field(0.005, gt=0.0, lt=1.0)
    survivor_liquidation_threshold: float = Field(0.825, gt=0.0, lt=1.0)
    leverage_scale: float = Field(1.0, gt=0.0)
    leverage_volatility_exponent: float = Field(0.0, ge=0.0, le=3.0)
    reference_daily_volatility: float = Field(0.03, gt=0.0)
    max_leverage: float = Field(125.0, ge=1.0)
    low_leverage_share: float = Field(0.0, ge=0.0, le=1.0)
    low_leverage_max: float = Field(3.0, ge=1.0)
    arrival_share: float = Field(0.0, ge=0.0, le=10.0)
    arrival_leverage_scale: float = Field(1.0, gt=0.0)
    arrival_long_fraction: float | None = Field(None, ge=0.0, le=1.0)
    close_share: float = Field(0.0, ge=0.0, le=1.0)
    size_usd: float | None = Field(None, gt=0.0)
    size_basis: Literal["debt", "collateral"] = "debt"
    represents: str | None = None

    @model_validator(mode="after")
    def _check(self) -> BookParams:
        if len(self.leverage_choices) != len(self.leverage_weights):
            raise ValueError("leverage_choices and leverage_weights differ in length")
        if any(x < 1 for x in self.leverage_choices) or any(w < 0 for w in self.leverage_weights):
            raise ValueError("leverage choices must be >= 1 and weights >= 0")
        if sum(self.leverage_weights) <= 0:
            raise ValueError("leverage_weights must not all be zero")
        if self.ltv_min >= self.ltv_max:
            raise ValueError("ltv_min must be < ltv_max")
        if self.min_notional_usd >= self.max_notional_usd:
            raise ValueError("min_notional_usd must be < max_notional_usd")
        return self


def generate_book(
    n_accounts: int,
    timestamp_ms: np.ndarray,
    close: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    window_start: datetime,
    seed: int,
    params: BookParams | None = None,
    meta: dict[str, str] | None = None,
    volume: np.ndarray | None = None,
    window_end: datetime | None = None,
) -> Book:
    """Draw a synthetic book of ``n_accounts`` open at ``window_start``.

    Parameters
    ----------
    n_accounts : int
        Number of accounts, > 0.
    timestamp_ms : ndarray, shape (T,), int64
        Candle open times of the tape, ms since the epoch (UTC), increasing.
    close, low, high : ndarray, shape (T,), float64
        Candle prices, USD. The candles in ``[window_start - lookback_days, window_start)``
        provide entry prices and the survivorship check.
    window_start : datetime
        Start of the simulated window (tz-aware UTC).
    seed : int
        Seed of the random generator.
    params : BookParams, optional
        Distribution parameters (defaults documented in :class:`BookParams`).
    meta : dict, optional
        Extra metadata to record (symbol, event, tape).
    volume : ndarray, shape (T,), float64, optional
        Candle volumes, asset units; needed for arrivals and closes (``params.arrival_share``
        or ``params.close_share > 0``).
    window_end : datetime, optional
        End of the window (exclusive, tz-aware UTC); needed for arrivals and closes.

    Returns
    -------
    Book
        Metadata records the seed, the parameters, the realised volatility and leverage factor,
        the size scale, ``open_interest_usd`` / ``borrowed_usd`` and ``venue`` when set, and
        the number of ``closes`` when ``close_share > 0``.

    Raises
    ------
    BookError
        If the tape does not cover the lookback period (or the window, for arrivals and
        closes) or too few accounts survive.
    """
    params = params or BookParams()
    if n_accounts <= 0:
        raise BookError(f"the number of accounts must be positive, got {n_accounts}")
    start_ms = int(window_start.timestamp() * 1000)
    lookback_ms = int(params.lookback_days * _MS_PER_DAY)
    lo_ms = start_ms - lookback_ms
    first = int(np.searchsorted(timestamp_ms, lo_ms, side="left"))
    stop = int(np.searchsorted(timestamp_ms, start_ms, side="left"))
    if stop - first < 2 or timestamp_ms[0] > lo_ms + (timestamp_ms[1] - timestamp_ms[0]):
        have = _fmt_ms(timestamp_ms[0]) if len(timestamp_ms) else "nothing"
        raise BookError(
            f"the tape must cover the {params.lookback_days:g} days before the window start "
            f"({_fmt_ms(lo_ms)} .. {_fmt_ms(start_ms)}); it starts at {have}"
        )
    ts = timestamp_ms[first:stop]
    cl, lo, hi = close[first:stop], low[first:stop], high[first:stop]
    # extremes from candle j+1 to the window start, for the survivorship check
    suffix_low = np.minimum.accumulate(lo[::-1])[::-1]
    suffix_high = np.maximum.accumulate(hi[::-1])[::-1]
    suffix_low = np.append(suffix_low[1:], np.inf)
    suffix_high = np.append(suffix_high[1:], -np.inf)

    sigma = realised_daily_volatility(ts, cl)
    lev_factor = params.leverage_scale * (params.reference_daily_volatility / sigma) ** (
        params.leverage_volatility_exponent)
    rng = np.random.Generator(np.random.PCG64(seed))
    cols: dict[str, list[np.ndarray]] = {k: [] for k in
                                         ("is_loan", "side", "size", "entry", "lev", "t")}
    need = n_accounts
    for _ in range(64):
        draw = _draw(rng, int(need * 1.25) + 16, params, start_ms, lookback_ms, lev_factor)
        candle = np.clip(np.searchsorted(ts, draw["t"], side="right") - 1, 0, len(ts) - 1)
        entry = cl[candle]
        size = draw["notional"] / entry
        alive = _survives(draw, entry, suffix_low[candle], suffix_high[candle], params)
        idx = np.flatnonzero(alive)[:need]
        for k, v in (("is_loan", draw["is_loan"]), ("side", draw["side"]), ("size", size),
                     ("entry", entry), ("lev", draw["lev"]), ("t", draw["t"])):
            cols[k].append(v[idx])
        need -= len(idx)
        if need == 0:
            break
    else:
        raise BookError(
            "too few accounts survive to the window start; widen leverage or shorten lookback"
        )
    c = {k: np.concatenate(v) for k, v in cols.items()}
    if params.arrival_share > 0:
        arrivals = _arrivals(rng, round(params.arrival_share * n_accounts), params, lev_factor,
                             timestamp_ms, close, volume, start_ms, window_end)
        c = {k: np.concatenate([c[k], arrivals[k]]) for k in c}
    scale = _size_scale(c, cl[-1], n_accounts, params)
    c["size"] = c["size"] * scale
    columns = {
        "account_id": np.arange(len(c["size"]), dtype=np.int64),
        "product": np.where(c["is_loan"], "loan", "perp"),
        "side": c["side"].astype(np.int8),
        "size": c["size"],
        "entry_price": c["entry"],
        "leverage": c["lev"],
        "entry_time": c["t"].astype("datetime64[ms]"),
    }
    if params.close_share > 0:  # drawn only when used: older books stay bit-identical
        exit_ms = _closes(rng, n_accounts, params.close_share, timestamp_ms, close, volume,
                          start_ms, window_end)
        exits = np.full(len(c["size"]), np.datetime64("NaT"), "datetime64[ms]")
        exits[:n_accounts] = exit_ms.astype("datetime64[ms]")
        columns["exit_time"] = pl.Series(exits)
    frame = pl.DataFrame(columns).with_columns(
        pl.col(k).dt.replace_time_zone("UTC") for k in ("entry_time", "exit_time")
        if k in columns)
    book_meta = {
        "seed": str(seed),
        "accounts": str(n_accounts),
        "window_start": window_start.isoformat(),
        "generator": json.dumps(params.model_dump()),
        "realised_daily_volatility": f"{sigma:.6g}",
        "leverage_factor": f"{lev_factor:.6g}",
        "size_scale": f"{scale:.6g}",
        "arrivals": str(len(c["size"]) - n_accounts),
    }
    if params.close_share > 0:
        book_meta["closes"] = str(frame["exit_time"].is_not_null().sum())
    if params.size_usd is not None:
        book_meta["open_interest_usd" if params.loan_fraction < 1 else "borrowed_usd"] = (
            f"{params.size_usd:.6g}")
    if params.represents:
        book_meta["venue"] = params.represents
    book_meta.update(meta or {})
    return Book(validate_book(frame), book_meta)


def realised_daily_volatility(timestamp_ms: np.ndarray, close: np.ndarray) -> float:
    """Return the standard deviation of log returns scaled to one day (fraction).

    Parameters
    ----------
    timestamp_ms : ndarray, shape (T,), int64
        Candle open times (T >= 3), epoch ms; the median spacing sets the candles per day.
    close : ndarray, shape (T,), float64
        Close prices, USD.
    """
    returns = np.diff(np.log(close))
    step_ms = float(np.median(np.diff(timestamp_ms)))
    return float(np.std(returns) * np.sqrt(_MS_PER_DAY / step_ms)) or 1e-9


def _volume_candles(rng, n, timestamp_ms, close, volume, start_ms, window_end, what
                    ) -> np.ndarray:
    """``n`` window candles (tape indices) drawn in proportion to their USD volume."""
    if volume is None or window_end is None:
        raise BookError(f"{what} during the window need the tape's volume and the window end")
    end_ms = int(window_end.timestamp() * 1000)
    first = int(np.searchsorted(timestamp_ms, start_ms, side="left"))
    stop = int(np.searchsorted(timestamp_ms, end_ms, side="left"))
    if stop - first < 2 or first == 0:
        raise BookError(f"the tape does not cover the window the {what} happen in")
    usd = volume[first:stop] * close[first:stop]
    if not np.isfinite(usd).all() or usd.sum() <= 0:
        raise BookError(f"the tape has no traded volume in the window: {what} cannot be placed")
    return first + rng.choice(stop - first, size=n, p=usd / usd.sum())


def _closes(rng, n, share, timestamp_ms, close, volume, start_ms, window_end) -> np.ndarray:
    """Exit times of the ``n`` positions open at the start, epoch ms (int64 minimum, NaT: held)."""
    closes = rng.random(n) < share
    candle = _volume_candles(rng, n, timestamp_ms, close, volume, start_ms, window_end,
                             "closes")
    return np.where(closes, timestamp_ms[candle], np.iinfo(np.int64).min)


def _arrivals(rng, n, p: BookParams, lev_factor, timestamp_ms, close, volume, start_ms,
              window_end) -> dict[str, np.ndarray]:
    """Positions opened during the window.

    Candles are drawn by USD volume; entry is at the previous close.
    """
    candle = _volume_candles(rng, n, timestamp_ms, close, volume, start_ms, window_end,
                             "arrivals")
    if p.arrival_long_fraction is not None:
        p = p.model_copy(update={"long_fraction": p.arrival_long_fraction})
    draw = _draw(rng, n, p, start_ms, 1, lev_factor * p.arrival_leverage_scale)
    entry = close[candle - 1]
    return {"is_loan": draw["is_loan"], "side": draw["side"], "size": draw["notional"] / entry,
            "entry": entry, "lev": draw["lev"], "t": timestamp_ms[candle]}


def _size_scale(c: dict, price: float, n_open: int, p: BookParams) -> float:
    """Return the factor making the accounts open at the start hold ``p.size_usd`` (1 if unset)."""
    if p.size_usd is None:
        return 1.0
    size, is_loan = c["size"][:n_open], c["is_loan"][:n_open]
    loans = (size * price if p.size_basis == "collateral"
             else size * c["entry"][:n_open] * (1.0 - 1.0 / c["lev"][:n_open]))
    held = np.where(is_loan, loans, 0.5 * size * price).sum()  # open interest: one side
    if held <= 0:
        raise BookError("the book holds no notional or debt to scale to size_usd")
    return float(p.size_usd / held)


def _draw(rng, n, p: BookParams, start_ms, lookback_ms, lev_factor=1.0) -> dict[str, np.ndarray]:
    is_loan = rng.random(n) < p.loan_fraction
    side = np.where(is_loan | (rng.random(n) < p.long_fraction), 1, -1)
    w = np.asarray(p.leverage_weights, dtype=float)
    perp_lev = rng.choice(np.asarray(p.leverage_choices, dtype=float), size=n, p=w / w.sum())
    perp_lev = np.minimum(1.0 + (perp_lev - 1.0) * lev_factor, p.max_leverage)
    if p.low_leverage_share > 0:  # drawn only when used: older books stay bit-identical
        hedged = rng.random(n) < p.low_leverage_share
        perp_lev = np.where(hedged, 1.0 + (p.low_leverage_max - 1.0) * rng.random(n), perp_lev)
    ltv = p.ltv_min + (p.ltv_max - p.ltv_min) * rng.beta(p.ltv_beta_a, p.ltv_beta_b, n)
    lev = np.where(is_loan, 1.0 / (1.0 - ltv), perp_lev)
    z = rng.standard_normal(n)
    notional = np.where(
        is_loan,
        p.loan_collateral_median_usd * np.exp(p.loan_collateral_sigma * z),
        p.perp_notional_median_usd * np.exp(p.perp_notional_sigma * z),
    )
    notional = np.clip(notional, p.min_notional_usd, p.max_notional_usd)
    # age: exponential truncated to the lookback, by inverse CDF
    mean_ms = p.entry_age_mean_days * _MS_PER_DAY
    tail = 1.0 - np.exp(-lookback_ms / mean_ms)
    age = -mean_ms * np.log1p(-rng.random(n) * tail)
    t = (start_ms - np.maximum(age, 1.0)).astype(np.int64)
    return {"is_loan": is_loan, "side": side, "lev": lev, "notional": notional, "t": t}


def _survives(draw, entry, later_low, later_high, p: BookParams) -> np.ndarray:
    """Return True where the liquidation price was never touched between entry and window start."""
    lev, side = draw["lev"], draw["side"]
    # per unit: equity = entry / lev, cash = entry / lev - side x entry
    cash_per_unit = entry / lev - side * entry
    m = np.where(draw["is_loan"], 1.0 - p.survivor_liquidation_threshold,
                 p.survivor_maintenance_margin_rate)
    with np.errstate(divide="ignore", invalid="ignore"):
        liq_long = np.where(cash_per_unit < 0, -cash_per_unit / (1.0 - m), 0.0)
        liq_short = cash_per_unit / (1.0 + m)
    healthy_now = np.where(side > 0, entry > liq_long, entry < liq_short)
    untouched = np.where(side > 0, later_low > liq_long, later_high < liq_short)
    return healthy_now & untouched


def _fmt_ms(ms: int) -> str:
    return (datetime(1970, 1, 1) + timedelta(milliseconds=int(ms))).strftime("%Y-%m-%d %H:%M UTC")
