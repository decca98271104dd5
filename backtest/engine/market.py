"""Market inputs of a run: impact depth, oracle and keeper parameters, gas costs per step."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from backtest.engine.config import KeeperConfig, MarketConfig, OracleConfig, is_whole_market
from backtest.engine.dispatch import market_params
from backtest.errors import ConfigError, TapeError
from backtest.kernels.enums import ImpactModel, OracleModel
from backtest.tapes.gas import gas_at, read_gas_tape


@dataclass
class MarketInputs:
    """Per-run market inputs of the kernels.

    Attributes
    ----------
    record : ndarray, shape (1,), ``MARKET_DTYPE``
        Impact, cascade, oracle and keeper parameters.
    depth : ndarray, shape (T,), float64
        USD flow that moves the price 1% in each step.
    gas_usd : ndarray, shape (T,), float64
        Gas cost of one liquidation in each step, USD.
    gas_info : dict
        Where the gas prices came from (recorded in the manifest).
    mark : ndarray, shape (T, 3), float64, or None
        Low, high, close of the mark price per step (mark-price oracle only).
    depth_info : dict
        How the depth was built (:func:`depth_per_step`; recorded in the manifest).
    """

    record: np.ndarray
    depth: np.ndarray
    gas_usd: np.ndarray
    gas_info: dict
    mark: np.ndarray | None = None
    depth_info: dict | None = None


def mark_prices(window_ms: np.ndarray, mark_ms: np.ndarray, mark_low: np.ndarray,
                mark_high: np.ndarray, mark_close: np.ndarray, source) -> np.ndarray:
    """Align a mark-price tape to the run's steps: shape (T, 3), low/high/close, USD.

    A step without a mark candle repeats the previous mark close as its low, high and close
    (an index does not stop when one venue's candles are missing).

    Raises
    ------
    TapeError
        The mark tape has no candle at or before the window's first step (names ``source``).
    """
    idx = np.searchsorted(mark_ms, window_ms, side="right") - 1
    if idx[0] < 0:
        raise TapeError("the mark-price tape starts after the run's window", source)
    exact = mark_ms[idx] == window_ms
    close = mark_close[idx]
    return np.column_stack([np.where(exact, mark_low[idx], close),
                            np.where(exact, mark_high[idx], close), close])


def hourly_usd_volume(timestamp_ms: np.ndarray, volume: np.ndarray,
                      close: np.ndarray) -> np.ndarray:
    """Return the USD volume traded in the hour before each candle (excluded), shape (T,).

    Parameters
    ----------
    timestamp_ms : ndarray, shape (T,), int64
        Candle open times, ms; increasing (gaps allowed: the hour is in clock time).
    volume : ndarray, shape (T,), float64
        Base-asset volume per candle.
    close : ndarray, shape (T,), float64
        Close price, USD.
    """
    usd = np.concatenate([[0.0], np.cumsum(volume * close)])
    start = np.searchsorted(timestamp_ms, timestamp_ms - 3_600_000, side="left")
    idx = np.arange(len(timestamp_ms))
    return usd[idx] - usd[start]


def steps_of(minutes: float, interval_seconds: int) -> int:
    """Whole steps (at least 1) covering ``minutes``."""
    return max(1, math.ceil(minutes * 60.0 / interval_seconds - 1e-9))


def latency_steps(minutes: float, interval_seconds: int) -> int:
    """Keeper latency in whole steps: the nearest (halves round up), so 0 stays in the step.

    A keeper's latency shorter than half a candle acts within the candle it saw the account
    in, and a drawn latency keeps its mean delay: 0-5 minutes drawn uniformly on 5-minute
    candles waits 2.5 minutes on average (rounding up would make every draw above 0 wait a
    whole candle).

    Parameters
    ----------
    minutes : float
        Latency, minutes (>= 0).
    interval_seconds : int
        Candle length, seconds.

    Returns
    -------
    int
        Steps, >= 0.
    """
    return int(math.floor(minutes * 60.0 / interval_seconds + 0.5 + 1e-9))


def market_record(market: MarketConfig, oracle: OracleConfig, keepers: KeeperConfig,
                  interval_seconds: int) -> np.ndarray:
    """Pack the run config's market, oracle and keeper sections into a ``MARKET_DTYPE`` record."""
    latency = latency_steps(keepers.latency_minutes, interval_seconds)
    return market_params(
        ImpactModel[market.impact_model.upper()], market.permanent_fraction,
        market.transient_half_life_minutes * 60.0 / interval_seconds, market.cascade,
        OracleModel[oracle.model.upper()], steps_of(oracle.lag_minutes, interval_seconds),
        steps_of(oracle.twap_minutes, interval_seconds), oracle.deviation,
        steps_of(oracle.heartbeat_minutes, interval_seconds), latency, keepers.requires_profit,
        keeper_capital_usd=keepers.capital_usd_per_step or 0.0)


def for_liquidator(record: np.ndarray, liquidator: str) -> np.ndarray:
    """Return the ``MARKET_DTYPE`` record a policy liquidated by ``liquidator`` runs under.

    A venue's matching engine (``liquidator = "engine"``: Binance USD-M, BitMEX, Hyperliquid,
    dYdX v4) closes a liquidatable position in the step it becomes liquidatable, for no gas
    and without a capital limit: the run's ``[keepers]`` section (latency, profit test,
    capital per step) describes third-party liquidators and does not apply to it. For
    ``"keepers"`` the record is returned as it is.

    Parameters
    ----------
    record : ndarray, shape (), ``MARKET_DTYPE``
        The run's market record (:func:`market_record`).
    liquidator : {"keepers", "engine"}
        The policy's ``liquidator`` field.

    Returns
    -------
    ndarray, shape (), ``MARKET_DTYPE``
        ``record`` itself, or a copy with ``keeper_latency_steps``, ``keeper_requires_profit``
        and ``keeper_capital_usd`` at 0.
    """
    if liquidator != "engine":
        return record
    out = record.copy()
    for field in ("keeper_latency_steps", "keeper_requires_profit", "keeper_capital_usd"):
        out[field] = 0
    return out


#: Fewest whole hours of candles before the window that a pre-window depth accepts.
MIN_PRE_WINDOW_HOURS = 24
_HOUR_MS = 3_600_000
_DAY_MS = 24 * _HOUR_MS


def depth_per_step(cfg: MarketConfig, tape_arrays: dict, window_slice: slice,
                   source=None, book_venue: str | None = None) -> tuple[np.ndarray, dict]:
    """Return the window's depth per step (the USD flow that moves the price 1%) and its origin.

    Without an impact model: NaN (no impact). ``depth_usd`` set: constant, whatever the scope.
    Otherwise the tape's (one venue's) depth per ``cfg.depth_source``: ``pre_window``
    (:func:`pre_window_depth`) or ``hourly_volume``, ``depth_fraction_of_hourly_volume`` times
    the USD volume of the previous hour of the (whole) tape, so the first steps of the window
    see the hour before it; there steps with no volume in the previous hour get the smallest
    positive depth of the window (a gap is not an infinitely deep market, nor an empty one).
    When the run's depth scope is ``market`` (:meth:`MarketConfig.scope_for`: a book standing
    for a whole market, or ``depth_scope = "market"``), that venue depth is multiplied by
    ``market_depth_multiple``: the book's flow is the whole market's.

    Parameters
    ----------
    cfg : MarketConfig
    tape_arrays : dict
        The whole tape's ``timestamp`` (ms), ``volume`` (base units) and ``close`` (USD)
        arrays, shape (T_tape,).
    window_slice : slice
        Rows of the window in the tape.
    source : str or Path, optional
        The tape, named in errors.
    book_venue : str or None
        What the book stands for (its metadata ``venue``); None: no metadata (a venue book).

    Returns
    -------
    depth : ndarray, shape (T,), float64
        USD.
    info : dict
        How it was built (recorded in the run manifest): ``source``, ``scope`` (``venue`` or
        ``market``; absent without impact or with ``depth_usd``), ``book_venue``, and for the
        market scope ``market_depth_multiple`` and ``venue_depth_usd`` (``depth_usd`` is then
        the market's).

    Raises
    ------
    TapeError
        ``pre_window``: the tape holds fewer than :data:`MIN_PRE_WINDOW_HOURS` whole hours of
        candles before the window start, or no volume there.
    """
    n = window_slice.stop - window_slice.start
    if cfg.impact_model == "none":  # nothing reads the depth: no tape requirement either
        return np.full(n, np.nan), {"source": "none"}
    if cfg.depth_usd is not None:
        return np.full(n, float(cfg.depth_usd)), {"source": "constant",
                                                  "depth_usd": float(cfg.depth_usd)}
    if cfg.depth_source == "pre_window":
        depth, info = pre_window_depth(tape_arrays, window_slice.start, n, cfg.pre_window_days,
                                       cfg.pre_window_depth_fraction,
                                       cfg.depth_volatility_exponent,
                                       cfg.volatility_window_minutes, source)
    else:
        hourly = hourly_usd_volume(tape_arrays["timestamp"], tape_arrays["volume"],
                                   tape_arrays["close"])[window_slice]
        depth = cfg.depth_fraction_of_hourly_volume * hourly
        positive = depth[depth > 0]
        floor = positive.min() if positive.size else 1.0
        depth = np.where(depth > 0, depth, floor)
        info = {"source": "hourly_volume", "fraction": cfg.depth_fraction_of_hourly_volume}
    return scoped_depth(cfg, depth, info, book_venue)


def scoped_depth(cfg: MarketConfig, venue_depth: np.ndarray, info: dict,
                 book_venue: str | None) -> tuple[np.ndarray, dict]:
    """Scale one venue's depth to the run's depth scope; record the scope in ``info``.

    Parameters
    ----------
    cfg : MarketConfig
    venue_depth : ndarray, shape (T,), float64
        The tape's (one venue pair's) depth per step, USD.
    info : dict
        How ``venue_depth`` was built (updated and returned).
    book_venue : str or None
        The book's metadata ``venue``.

    Returns
    -------
    depth : ndarray, shape (T,), float64
        ``venue_depth`` (scope ``venue``) or ``venue_depth x market_depth_multiple`` (scope
        ``market``), USD.
    info : dict
    """
    scope = cfg.scope_for(book_venue)
    info = {**info, "scope": scope, "scope_setting": cfg.depth_scope, "book_venue": book_venue}
    if scope == "venue":
        if is_whole_market(book_venue):  # explicit: recorded, never silent
            info["scope_note"] = (f"one venue's depth on a book standing for {book_venue} "
                                  "(depth_scope = 'venue' set explicitly)")
        return venue_depth, info
    m = float(cfg.market_depth_multiple)
    info["market_depth_multiple"] = m
    for key in ("depth_usd", "min_depth_usd"):
        if key in info:
            info[f"venue_{key}"] = info[key]
            info[key] = info[key] * m
    return venue_depth * m, info


def pre_window_depth(tape_arrays: dict, start: int, n_steps: int, days: float, fraction: float,
                     volatility_exponent: float = 0.0, volatility_window_minutes: float = 60.0,
                     source=None) -> tuple[np.ndarray, dict]:
    """Depth per step from the market before the window: never from the crash's own candles.

    ``D0 = fraction x median hourly USD volume`` over the clock hours (aligned on the window
    start) of the ``days`` days before the window; only whole hours count (every candle
    present). With ``volatility_exponent = k > 0`` the depth thins as volatility rises:
    ``depth_t = D0 x min(1, (sigma_pre / sigma_t)^k)``, where ``sigma_t`` is the standard
    deviation of log close-to-close returns over the ``volatility_window_minutes`` before step
    ``t`` (returns of candles up to ``t - 1``: nothing of step ``t`` or later) and
    ``sigma_pre`` the same over the pre-window days. The thinning reflects that real order
    books emptied in crashes while volume soared (Kaiko on 2025-10-10,
    ``docs/market-impact.md``); it
    never deepens the market above ``D0``.

    Parameters
    ----------
    tape_arrays : dict
        ``timestamp`` (ms, increasing), ``volume`` (base units), ``close`` (USD) of the whole
        tape, shape (T_tape,).
    start : int
        Row of the window's first candle in the tape.
    n_steps : int
        Steps in the window.
    days : float
        Pre-window length, days.
    fraction : float
        1% depth (USD) per USD of median hourly volume.
    volatility_exponent : float
        ``k`` (0: no thinning).
    volatility_window_minutes : float
        Trailing window of ``sigma_t``, minutes.
    source : str or Path, optional
        The tape, named in errors.

    Returns
    -------
    depth : ndarray, shape (n_steps,), float64
        USD.
    info : dict
        ``D0``, the median hourly volume, hours and days used, ``sigma_pre``.

    Raises
    ------
    TapeError
        Fewer than :data:`MIN_PRE_WINDOW_HOURS` whole hours before the window, or no volume.
    """
    ts = np.asarray(tape_arrays["timestamp"], dtype=np.int64)
    close = np.asarray(tape_arrays["close"], dtype=np.float64)
    volume = np.asarray(tape_arrays["volume"], dtype=np.float64)
    t_start = int(ts[start]) if start < len(ts) else int(ts[-1]) + 1
    lo = int(np.searchsorted(ts, t_start - int(days * _DAY_MS), side="left"))
    pre_ts, pre_usd = ts[lo:start], volume[lo:start] * close[lo:start]
    interval = int(np.median(np.diff(ts))) if len(ts) > 1 else _HOUR_MS
    per_hour = max(1, _HOUR_MS // interval)
    hour = (t_start - 1 - pre_ts) // _HOUR_MS  # 0: the hour just before the window
    n_hours = int(hour.max()) + 1 if len(hour) else 0
    candles = np.bincount(hour, minlength=n_hours)
    usd = np.bincount(hour, weights=pre_usd, minlength=n_hours)
    whole = usd[candles >= per_hour]
    if len(whole) < MIN_PRE_WINDOW_HOURS:
        raise TapeError(f"depth_source 'pre_window' needs at least {MIN_PRE_WINDOW_HOURS} whole "
                        f"hours of candles before the window start; the tape has {len(whole)}: "
                        "use a tape that starts earlier, set [market] depth_usd, or "
                        "depth_source = 'hourly_volume'", source)
    median = float(np.median(whole))
    if not median > 0:
        raise TapeError("depth_source 'pre_window': no traded volume in the hours before the "
                        "window start", source)
    d0 = fraction * median
    depth = np.full(n_steps, d0)
    info = {"source": "pre_window", "fraction": fraction, "median_hourly_volume_usd": median,
            "depth_usd": d0, "hours": int(len(whole)), "days": days,
            "volatility_exponent": volatility_exponent}
    if volatility_exponent > 0:
        r = np.zeros(len(close))
        r[1:] = np.diff(np.log(close))  # r[i]: return of candle i, known after it closes
        sigma_pre = float(np.std(r[max(lo, 1):start])) if start - max(lo, 1) > 1 else 0.0
        w = max(2, int(round(volatility_window_minutes * 60_000 / interval)))
        c1 = np.concatenate([[0.0], np.cumsum(r)])
        c2 = np.concatenate([[0.0], np.cumsum(r * r)])
        rows = np.arange(start, start + n_steps)
        a = np.maximum(rows - w, 1)  # returns r[a:rows] end at the candle before the step
        k = np.maximum(rows - a, 1)
        mean = (c1[rows] - c1[a]) / k
        var = np.maximum((c2[rows] - c2[a]) / k - mean * mean, 0.0)
        sigma = np.sqrt(var)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(sigma > 0, sigma_pre / sigma, 1.0)
        depth = d0 * np.minimum(1.0, ratio ** volatility_exponent)
        depth = np.where(depth > 0, depth, d0)  # sigma_pre 0: an unusable reference
        info.update(sigma_pre=sigma_pre, volatility_window_candles=w,
                    min_depth_usd=float(depth.min()))
    return depth, info


def gas_cost_per_step(keepers: KeeperConfig, steps_ms: np.ndarray, close: np.ndarray,
                      base_asset: str) -> tuple[np.ndarray, dict]:
    """Return the USD gas cost of one liquidation at each step, and what it was built from.

    ``gas_units x gas price (gwei) x 1e-9 x ETH price``; the ETH price is ``eth_price_usd`` or,
    when the simulated asset is ETH, the tape's close.

    Raises
    ------
    ConfigError
        A gas price is given for a non-ETH asset without ``eth_price_usd``.
    """
    info: dict = {"gas_units": keepers.gas_units}
    if keepers.gas_tape is not None:
        ts, gwei = read_gas_tape(keepers.gas_tape, keepers.gas_tape_column)
        price, held = gas_at(steps_ms, ts, gwei)
        info.update(gas_tape=str(keepers.gas_tape), column=keepers.gas_tape_column,
                    steps_outside_gas_tape=held)
    else:
        price = np.full(len(steps_ms), keepers.gas_price_gwei)
        info["gas_price_gwei"] = keepers.gas_price_gwei
    if not np.any(price > 0) or keepers.gas_units == 0:
        return np.zeros(len(steps_ms)), info
    if keepers.eth_price_usd is not None:
        eth = np.full(len(steps_ms), keepers.eth_price_usd)
    elif base_asset.upper() in ("ETH", "WETH"):
        eth = close
    else:
        raise ConfigError("field 'keepers.eth_price_usd': needed to price gas when the "
                          f"simulated asset is {base_asset}, not ETH")
    return keepers.gas_units * price * 1e-9 * eth, info
