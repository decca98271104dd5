"""Tapes of several assets on one clock: the price input of multi-asset portfolios.

:func:`align_tapes` picks each asset's tape from a :class:`~backtest.tapes.store.TapeStore`
for an event's window (the finest tape that covers it, as :meth:`TapeStore.resolve` does),
resamples every tape to one common interval and checks that every asset has a candle in every
step of the window.

Resampling (polars ``group_by_dynamic``, buckets ``[t, t + interval)`` aligned on the epoch,
labelled by their open time): ``open`` is the first candle's open, ``high`` the highest high,
``low`` the lowest low, ``close`` the last candle's close and ``volume`` the sum of the
volumes, over the candles present in the bucket. A bucket with some but not all of its candles
(an outage inside it) is kept and counted in :attr:`AlignedTapes.partial_steps`; a bucket
with none is a *missing step*: an error by default, or, with ``missing="hold"``, a flat candle
at the previous close with zero volume (the market was halted: Binance stopped LUNA trading on
2022-05-13), counted in :attr:`AlignedTapes.held_steps`.

``realized_vol`` of the aligned tape is the trailing realised volatility *known at the start of
each step*: the annualised standard deviation of the last ``vol_window`` close-to-close log
returns of the resampled closes up to the previous step's close
(:func:`backtest.tapes.volatility.realized_vol` shifted by one step), so a policy that ranks
assets by it never looks ahead. The tapes are read from ``vol_lookback`` before the window so
that it is defined from the first step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from backtest.errors import TapeError
from backtest.events import Event, get_event
from backtest.tapes.schema import (
    datetime_to_ms,
    format_interval,
    format_ts,
    ms_to_datetime,
    parse_interval,
    parse_symbol,
)
from backtest.tapes.store import Tape, TapeStore
from backtest.tapes.volatility import realized_vol

MISSING_MODES = ("error", "hold")
"""What :func:`align_tapes` does with a step an asset has no candle for."""


@dataclass(frozen=True, eq=False)
class AlignedTapes:
    """Candles of several assets on one regular clock over one window.

    Attributes
    ----------
    symbols : tuple of str
        ``BASE/QUOTE`` of each asset; column ``a`` of every 2-D array is ``symbols[a]``.
    interval_seconds : int
        Step length, seconds.
    timestamp : numpy.ndarray, shape (T,), int64
        Step open times, epoch milliseconds UTC, ``start + k x interval``.
    open, high, low, close : numpy.ndarray, shape (T, A), float64
        Resampled candle prices, USD per unit (C order: one row per step).
    volume : numpy.ndarray, shape (T, A), float64
        Traded volume in each step, asset units.
    realized_vol : numpy.ndarray, shape (T, A), float64
        Trailing annualised realised volatility known at the start of each step (fraction,
        see the module docstring); NaN only if the tape had no earlier closes.
    start, end : datetime
        The window ``[start, end)``, UTC.
    sources : dict of str to str
        Tape key (``venue/market/BASE-QUOTE/interval``) each asset was read from.
    partial_steps, held_steps : dict of str to int
        Per asset: steps aggregated from an incomplete set of candles; steps without any
        candle filled by holding the previous close (``missing="hold"``).
    event : str or None
        Event key the window came from.
    """

    symbols: tuple[str, ...]
    interval_seconds: int
    timestamp: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    realized_vol: np.ndarray
    start: datetime
    end: datetime
    sources: dict[str, str] = field(default_factory=dict)
    partial_steps: dict[str, int] = field(default_factory=dict)
    held_steps: dict[str, int] = field(default_factory=dict)
    event: str | None = None

    @property
    def n_steps(self) -> int:
        """Number of steps ``T``."""
        return int(self.timestamp.shape[0])

    @property
    def n_assets(self) -> int:
        """Number of assets ``A``."""
        return len(self.symbols)

    @property
    def interval(self) -> str:
        """Step length as an interval name (``"1h"``)."""
        return format_interval(self.interval_seconds)

    def asset_index(self, symbol: str) -> int:
        """Return the column of ``symbol`` (``"BTC"`` or ``"BTC/USDT"``).

        Raises
        ------
        TapeError
            If the symbol is not one of :attr:`symbols`.
        """
        base, quote = parse_symbol(symbol)
        key = f"{base}/{quote}"
        if key not in self.symbols:
            raise TapeError(f"asset {key} is not aligned here; assets: {', '.join(self.symbols)}")
        return self.symbols.index(key)

    def frame(self) -> pl.DataFrame:
        """Return the candles as a long polars table, one row per (step, asset).

        Returns
        -------
        polars.DataFrame
            ``timestamp`` datetime[ms, UTC], ``symbol`` str, ``open``, ``high``, ``low``,
            ``close``, ``volume``, ``realized_vol`` float64.
        """
        t, a = self.close.shape
        return pl.DataFrame({
            "timestamp": np.repeat(self.timestamp, a),
            "symbol": np.tile(np.asarray(self.symbols, dtype=object), t).astype(str),
            **{name: getattr(self, name).ravel() for name in
               ("open", "high", "low", "close", "volume", "realized_vol")},
        }).with_columns(pl.col("timestamp").cast(pl.Datetime("ms")).dt.replace_time_zone("UTC"))


def resample_candles(frame: pl.DataFrame, interval_seconds: int) -> pl.DataFrame:
    """Aggregate candles into buckets of ``interval_seconds`` (see the module docstring).

    Parameters
    ----------
    frame : polars.DataFrame
        ``timestamp`` datetime[ms, UTC] strictly increasing, ``open``, ``high``, ``low``,
        ``close``, ``volume`` float64.
    interval_seconds : int
        Bucket length, seconds, a multiple of the candles' own interval.

    Returns
    -------
    polars.DataFrame
        One row per non-empty bucket: ``timestamp`` (bucket open time), ``open`` (first),
        ``high`` (max), ``low`` (min), ``close`` (last), ``volume`` (sum), ``n_candles``
        (candles aggregated, uint32).
    """
    return (frame.sort("timestamp")
            .group_by_dynamic("timestamp", every=f"{int(interval_seconds)}s", closed="left",
                              label="left", start_by="window")
            .agg(pl.col("open").first(), pl.col("high").max(), pl.col("low").min(),
                 pl.col("close").last(), pl.col("volume").sum(), pl.len().alias("n_candles")))


def _pick_tape(store: TapeStore, symbol: str, lo: int, hi: int, target: int | None) -> Tape:
    """Return the finest tape of ``symbol`` covering ``[lo, hi)``, interval dividing ``target``."""
    base, quote = parse_symbol(symbol)
    key = f"{base}/{quote}"
    window = f"{format_ts(lo)} .. {format_ts(hi)}"
    try:
        tape = store.resolve(key, lo, hi)
    except TapeError as exc:
        raise TapeError(f"asset {key} has no tape for the window {window}: {exc.detail}") from None
    if target is None or target % tape.interval_seconds == 0:
        return tape
    intervals = sorted({i.interval_seconds for i in store.list() if i.symbol == key})
    for seconds in intervals:
        if target % seconds == 0:
            try:
                return store.resolve(key, lo, hi, interval=format_interval(seconds))
            except TapeError:
                continue
    raise TapeError(
        f"asset {key} has no tape for the window {window} at an interval that divides "
        f"{format_interval(target)}; its finest covering tape is {tape.meta.interval}")


def _window_ms(value: datetime | str) -> int:
    return datetime_to_ms(value)


def _check_grid(lo: int, hi: int, lookback_ms: int, target: int) -> None:
    step = target * 1000
    if lo % step or hi % step or lookback_ms % step:
        raise TapeError(f"window {format_ts(lo)} .. {format_ts(hi)} (and the volatility "
                        f"lookback) must fall on the {format_interval(target)} grid")


def align_tapes(
    store: TapeStore,
    event: str | Event | None,
    symbols: list[str] | tuple[str, ...] | None = None,
    interval: str | None = None,
    *,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    missing: str = "error",
    vol_lookback: timedelta = timedelta(days=1),
    vol_window: int | None = None,
    events_path: str | None = None,
) -> AlignedTapes:
    """Align the tapes of several assets on one clock over an event's window.

    Parameters
    ----------
    store : TapeStore
        Where the tapes are (imported beforehand with ``liqbt data import``).
    event : str, Event or None
        Event key (``"luna-2022"``) or event; its window and, by default, its symbols. ``None``
        requires ``start``, ``end`` and ``symbols``.
    symbols : sequence of str, optional
        Assets (``"BTC/USDT"`` or ``"BTC"``); default the event's symbols, in catalog order.
    interval : str, optional
        Common step (``"1h"``); it must be a multiple of every chosen tape's interval. Default:
        the coarsest of the assets' finest covering tapes (LUNA 2022: 1h, as LUNA only has
        hourly candles).
    start, end : datetime or str, optional
        Override the event's window (UTC, ``end`` exclusive); both must fall on the interval's
        grid.
    missing : {"error", "hold"}
        A step without any candle for an asset is an error (default) or a flat candle at the
        previous close with zero volume.
    vol_lookback : timedelta
        History read before ``start`` for the trailing realised volatility (the tapes must
        cover it); default one day.
    vol_window : int, optional
        Returns per realised-volatility estimate; default one day of steps (at least 2).
    events_path : str, optional
        Event catalog file (default ``$LIQBT_EVENTS`` or ``data/events.toml``).

    Returns
    -------
    AlignedTapes

    Raises
    ------
    TapeError
        An asset has no tape covering the window (message names the asset, the window and
        what the store holds for it), no tape at an interval dividing the requested one, or a
        missing step (message names the asset and the first missing steps); a window not on
        the interval's grid; an invalid interval or symbol.
    ConfigError
        Unknown event key or invalid catalog.
    """
    if missing not in MISSING_MODES:
        raise TapeError(f"missing must be one of {MISSING_MODES}, not {missing!r}")
    ev = get_event(event, events_path) if isinstance(event, str) else event
    if ev is None and (start is None or end is None or not symbols):
        raise TapeError("without an event, give start, end and symbols")
    lo = _window_ms(start if start is not None else ev.start)
    hi = _window_ms(end if end is not None else ev.end)
    if hi <= lo:
        raise TapeError(f"window end {format_ts(hi)} is not after its start {format_ts(lo)}")
    names = []
    for s in symbols if symbols else ev.symbols:
        base, quote = parse_symbol(s)
        names.append(f"{base}/{quote}")
    if len(set(names)) != len(names):
        raise TapeError(f"an asset is listed twice: {', '.join(names)}")
    target = parse_interval(interval) if interval else None
    lookback_ms = int(vol_lookback.total_seconds() * 1000)
    if target is not None:
        _check_grid(lo, hi, lookback_ms, target)
    read_lo = lo - lookback_ms
    tapes = {s: _pick_tape(store, s, read_lo, hi, target) for s in names}
    if target is None:
        target = max(t.interval_seconds for t in tapes.values())
        for s, t in tapes.items():
            if target % t.interval_seconds:
                raise TapeError(f"asset {s}: its tape interval {t.meta.interval} does not divide "
                                f"the coarsest interval {format_interval(target)}; give one")
    _check_grid(lo, hi, lookback_ms, target)
    step = target * 1000
    grid = np.arange(read_lo, hi, step, dtype=np.int64)
    n_read = grid.shape[0]
    n_win = (hi - lo) // step
    cols = {k: np.empty((n_win, len(names))) for k in
            ("open", "high", "low", "close", "volume", "realized_vol")}
    partial, held = {}, {}
    window_label = f"{format_ts(lo)} .. {format_ts(hi)}"
    for a, s in enumerate(names):
        tape = tapes[s]
        res = resample_candles(tape.window(read_lo, hi).frame, target)
        ts = res["timestamp"].dt.epoch("ms").to_numpy().astype(np.int64)
        pos = np.searchsorted(grid, ts)
        present = np.zeros(n_read, dtype=bool)
        present[pos] = True
        full = {k: np.full(n_read, np.nan) for k in ("open", "high", "low", "close", "volume")}
        for k in full:
            full[k][pos] = res[k].to_numpy()
        need = target // tape.interval_seconds
        n_cand = np.zeros(n_read, dtype=np.int64)
        n_cand[pos] = res["n_candles"].to_numpy()
        absent = np.flatnonzero(~present)
        in_window = absent[absent >= n_read - n_win]
        if absent.size and (missing == "error" or absent[0] == 0):
            where = in_window if in_window.size else absent
            first = ", ".join(format_ts(int(grid[i])) for i in where[:3])
            part = "the window " + window_label if in_window.size else (
                f"the volatility lookback before {format_ts(lo)}")
            hint = "" if missing == "hold" else " (missing='hold' carries the last close)"
            raise TapeError(
                f"asset {s} ({tape.meta.venue}/{tape.meta.market}/{tape.meta.interval}) has no "
                f"candle in {where.size} step(s) of {part} at {format_interval(target)}, first "
                f"{first}{hint}")
        for i in absent:  # hold: a flat candle at the previous close, no volume
            c = full["close"][i - 1]
            full["open"][i] = full["high"][i] = full["low"][i] = full["close"][i] = c
            full["volume"][i] = 0.0
        rv = realized_vol(full["close"], target, vol_window)
        known = np.empty(n_read)
        known[0] = np.nan
        known[1:] = rv[:-1]  # what is known at the start of the step: closes before it
        win = slice(n_read - n_win, n_read)
        for k in full:
            cols[k][:, a] = full[k][win]
        cols["realized_vol"][:, a] = known[win]
        partial[s] = int(((n_cand[win] > 0) & (n_cand[win] < need)).sum())
        held[s] = int(in_window.size)
    return AlignedTapes(
        symbols=tuple(names), interval_seconds=target,
        timestamp=np.ascontiguousarray(grid[n_read - n_win:]),
        **{k: np.ascontiguousarray(v) for k, v in cols.items()},
        start=ms_to_datetime(lo), end=ms_to_datetime(hi),
        sources={s: f"{t.meta.venue}/{t.meta.market}/{s.replace('/', '-')}/{t.meta.interval}"
                 for s, t in tapes.items()},
        partial_steps=partial, held_steps=held, event=ev.key if ev else None)


__all__ = ["MISSING_MODES", "AlignedTapes", "align_tapes", "resample_candles"]
