"""Market inputs of a run: the per-step depth that calibrates price impact."""

from __future__ import annotations

import numpy as np

from backtest.engine.config import MarketConfig
from backtest.engine.dispatch import market_params


def hourly_usd_volume(timestamp_ms: np.ndarray, volume: np.ndarray, close: np.ndarray) -> np.ndarray:
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


def depth_and_params(cfg: MarketConfig, tape_arrays: dict, window_slice: slice,
                     interval_seconds: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the kernels' market record and the window's depth per step (USD for 1%).

    With ``depth_usd`` set the depth is constant; otherwise ``depth_fraction_of_hourly_volume``
    times the USD volume of the previous hour of the (whole) tape, so the first steps of the
    window see the hour before it. Steps with no volume in the previous hour get the smallest
    positive depth of the window (a gap is not an infinitely deep market, nor an empty one).
    """
    params = market_params(cfg.model, cfg.permanent_fraction,
                           cfg.transient_half_life_minutes * 60.0 / interval_seconds, cfg.cascade)
    n = window_slice.stop - window_slice.start
    if cfg.depth_usd is not None:
        return params, np.full(n, float(cfg.depth_usd))
    hourly = hourly_usd_volume(tape_arrays["timestamp"], tape_arrays["volume"],
                               tape_arrays["close"])[window_slice]
    depth = cfg.depth_fraction_of_hourly_volume * hourly
    positive = depth[depth > 0]
    floor = positive.min() if positive.size else 1.0
    return params, np.where(depth > 0, depth, floor)
