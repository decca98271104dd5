"""Market inputs of a run: impact depth, oracle and keeper parameters, gas costs per step."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from backtest.engine.config import KeeperConfig, MarketConfig, OracleConfig
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
    """

    record: np.ndarray
    depth: np.ndarray
    gas_usd: np.ndarray
    gas_info: dict
    mark: np.ndarray | None = None


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


def market_record(market: MarketConfig, oracle: OracleConfig, keepers: KeeperConfig,
                  interval_seconds: int) -> np.ndarray:
    """Pack the run config's market, oracle and keeper sections into a ``MARKET_DTYPE`` record."""
    latency = 0 if keepers.latency_minutes == 0 else steps_of(keepers.latency_minutes,
                                                               interval_seconds)
    return market_params(
        ImpactModel[market.impact_model.upper()], market.permanent_fraction,
        market.transient_half_life_minutes * 60.0 / interval_seconds, market.cascade,
        OracleModel[oracle.model.upper()], steps_of(oracle.lag_minutes, interval_seconds),
        steps_of(oracle.twap_minutes, interval_seconds), oracle.deviation,
        steps_of(oracle.heartbeat_minutes, interval_seconds), latency, keepers.requires_profit,
        keeper_capital_usd=keepers.capital_usd_per_step or 0.0)


def depth_per_step(cfg: MarketConfig, tape_arrays: dict, window_slice: slice) -> np.ndarray:
    """Return the window's depth per step: the USD flow that moves the price 1%.

    With ``depth_usd`` set the depth is constant; otherwise ``depth_fraction_of_hourly_volume``
    times the USD volume of the previous hour of the (whole) tape, so the first steps of the
    window see the hour before it. Steps with no volume in the previous hour get the smallest
    positive depth of the window (a gap is not an infinitely deep market, nor an empty one).
    """
    n = window_slice.stop - window_slice.start
    if cfg.depth_usd is not None:
        return np.full(n, float(cfg.depth_usd))
    hourly = hourly_usd_volume(tape_arrays["timestamp"], tape_arrays["volume"],
                               tape_arrays["close"])[window_slice]
    depth = cfg.depth_fraction_of_hourly_volume * hourly
    positive = depth[depth > 0]
    floor = positive.min() if positive.size else 1.0
    return np.where(depth > 0, depth, floor)


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
