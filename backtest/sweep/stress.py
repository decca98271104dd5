"""Stress transforms of history: harsher or reshuffled versions of a crash window.

Each transform is a pure function from the window's tape arrays (``timestamp`` int64 epoch
ms, ``open``/``high``/``low``/``close``/``volume``/``funding_rate``/``realized_vol`` float64,
shape (T,), as :meth:`backtest.tapes.Tape.arrays` returns them) to new arrays of the same
layout; none modifies its input. :func:`stress_tape` applies one to the window of a tape and
keeps the history before the window (which calibrates market depth and was used to draw the
book) unchanged, so every stressed window starts from the historical open.

- **scaled shock** (:func:`scale_shock`): every price is moved to ``P0 x exp(k x log(P / P0))``
  where ``P0`` is the window's first open: all log-returns (close to close, and each candle's
  open, high and low relative to ``P0``) are multiplied by ``k``, so the path keeps its shape
  and a fall of -40% becomes -53.5% with ``k = 1.5``. Because ``exp`` is increasing, every
  candle stays consistent (low <= open, close <= high). Volume and funding are unchanged;
  realised volatility is multiplied by ``k``.
- **time compression** (:func:`compress_time`): ``factor`` consecutive candles become one
  candle of the same interval, so the crash happens ``factor`` times faster: open of the first,
  highest high, lowest low, close of the last; volume is the **mean** of the merged candles
  (the market keeps trading at its usual pace while the price moves faster; a sum would make
  the compressed market ``factor`` times deeper and hide the stress); funding rates settled
  inside are summed (NaN if none); realised volatility is the mean times ``sqrt(factor)``.
  The result has ``ceil(T / factor)`` candles on a regular grid from the first open time (gaps
  inside the window are closed up).
- **block bootstrap** (:func:`block_bootstrap`): the window's candles, as shapes relative to the
  previous close, are resampled in contiguous blocks of ``block_steps`` candles drawn with a
  seeded generator (a moving-block bootstrap, Kunsch 1989, "The jackknife and the bootstrap for
  general stationary observations", Ann. Statist. 17(3)), and the price path is rebuilt from
  the first open. Volume and funding travel with their candles.
- **implied-volatility shock** (:class:`IvShock`, options cells only): the options market's
  implied volatility times ``factor`` (:func:`shock_iv`); :func:`apply_stress` leaves the tape
  arrays, which carry no implied volatility, as they are (``docs/options.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

import numpy as np
import polars as pl
from pydantic import Field

from backtest.strict import StrictModel
from backtest.tapes import TAPE_COLUMNS, Tape
from backtest.tapes.schema import TIMESTAMP_DTYPE

PRICE_COLUMNS = ("open", "high", "low", "close")


class NoStress(StrictModel):
    """History as it was."""

    kind: Literal["none"]

    @property
    def label(self) -> str:
        """Short name used in results (``history``)."""
        return "history"


class ScaleShock(StrictModel):
    """Scaled shock: the window's log-returns multiplied by ``k`` (> 0)."""

    kind: Literal["scale"]
    k: float = Field(gt=0.0)

    @property
    def label(self) -> str:
        """Short name used in results (``scale x1.5``)."""
        return f"scale x{self.k:g}"


class CompressTime(StrictModel):
    """Time-compressed crash: ``factor`` candles merged into one (integer >= 1)."""

    kind: Literal["compress"]
    factor: int = Field(ge=1)

    @property
    def label(self) -> str:
        """Short name used in results (``compress x2``)."""
        return f"compress x{self.factor}"


class BlockBootstrap(StrictModel):
    """Block-bootstrapped window: blocks of ``block_steps`` candles, seeded.

    The generator is seeded by the cell's seed and ``seed`` together, so a sweep's seeds give
    different resamplings and the same cell always the same one.
    """

    kind: Literal["bootstrap"]
    block_steps: int = Field(ge=1)
    seed: int = Field(default=0, ge=0)

    @property
    def label(self) -> str:
        """Short name used in results (``bootstrap b12 s0``)."""
        return f"bootstrap b{self.block_steps} s{self.seed}"


class IvShock(StrictModel):
    """Implied-volatility shock of an options market: every step's volatility times ``factor``.

    Options sweeps only (no other engine reads implied volatility); the path is history's.
    """

    kind: Literal["iv"]
    factor: float = Field(gt=0.0)

    @property
    def label(self) -> str:
        """Short name used in results (``iv x1.5``)."""
        return f"iv x{self.factor:g}"


StressSpec = Annotated[NoStress | ScaleShock | CompressTime | BlockBootstrap | IvShock,
                       Field(discriminator="kind")]
"""One stress transform of a sweep (``[[stress]]`` table with a ``kind``)."""


def _copy(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.array(v, copy=True) for k, v in arrays.items()}


def scale_shock(arrays: dict[str, np.ndarray], k: float) -> dict[str, np.ndarray]:
    """Multiply every log-return of the window by ``k`` (see the module docstring).

    Parameters
    ----------
    arrays : dict of str to ndarray
        Window arrays, each shape (T,), T >= 1; prices > 0 (USD).
    k : float
        Shock multiplier, > 0; 1 returns an exact copy.

    Returns
    -------
    dict of str to ndarray
        New arrays; prices ``P0 x exp(k x log(P / P0))`` with ``P0 = open[0]``.

    Raises
    ------
    ValueError
        If ``k <= 0`` or the window is empty.
    """
    if not k > 0:
        raise ValueError(f"the shock multiplier k must be > 0, got {k}")
    if len(arrays["open"]) == 0:
        raise ValueError("cannot stress an empty window")
    out = _copy(arrays)
    if k == 1.0:
        return out
    p0 = float(arrays["open"][0])
    for name in PRICE_COLUMNS:
        out[name] = p0 * np.exp(k * np.log(arrays[name] / p0))
    if "realized_vol" in out:
        out["realized_vol"] = arrays["realized_vol"] * k
    return out


def compress_time(arrays: dict[str, np.ndarray], factor: int,
                  interval_ms: int) -> dict[str, np.ndarray]:
    """Merge every ``factor`` consecutive candles into one (see the module docstring).

    Parameters
    ----------
    arrays : dict of str to ndarray
        Window arrays, each shape (T,), T >= 1.
    factor : int
        Candles per merged candle, >= 1; 1 returns an exact copy.
    interval_ms : int
        Candle length, ms: the merged candles are spaced by it from ``timestamp[0]``.

    Returns
    -------
    dict of str to ndarray
        Arrays of shape (ceil(T / factor),).

    Raises
    ------
    ValueError
        If ``factor < 1`` or the window is empty.
    """
    if factor < 1 or int(factor) != factor:
        raise ValueError(f"the compression factor must be an integer >= 1, got {factor}")
    n = len(arrays["open"])
    if n == 0:
        raise ValueError("cannot stress an empty window")
    if factor == 1:
        return _copy(arrays)
    starts = np.arange(0, n, factor)
    ends = np.minimum(starts + factor, n) - 1
    counts = (ends - starts + 1).astype(np.float64)
    out = {
        "timestamp": arrays["timestamp"][0] + np.arange(len(starts), dtype=np.int64) * interval_ms,
        "open": arrays["open"][starts].copy(),
        "high": np.maximum.reduceat(arrays["high"], starts),
        "low": np.minimum.reduceat(arrays["low"], starts),
        "close": arrays["close"][ends].copy(),
        "volume": np.add.reduceat(arrays["volume"], starts) / counts,
    }
    if "funding_rate" in arrays:
        f = arrays["funding_rate"]
        settled = np.add.reduceat((~np.isnan(f)).astype(np.int64), starts)
        total = np.add.reduceat(np.nan_to_num(f, nan=0.0), starts)
        out["funding_rate"] = np.where(settled > 0, total, np.nan)
    if "realized_vol" in arrays:
        v = arrays["realized_vol"]
        seen = np.add.reduceat((~np.isnan(v)).astype(np.int64), starts)
        total = np.add.reduceat(np.nan_to_num(v, nan=0.0), starts)
        with np.errstate(invalid="ignore", divide="ignore"):
            out["realized_vol"] = np.where(seen > 0, total / seen, np.nan) * np.sqrt(factor)
    return out


def block_indices(n: int, block_steps: int, rng: np.random.Generator) -> np.ndarray:
    """Return source candle indices of a moving-block bootstrap, shape (n,), int64.

    Blocks of ``block_steps`` consecutive indices start uniformly in ``[0, n - block_steps]``
    and are concatenated; the last block is cut to length ``n``.

    Parameters
    ----------
    n : int
        Window length (candles), >= 1.
    block_steps : int
        Block length (candles), >= 1; clipped to ``n``.
    rng : numpy.random.Generator

    Returns
    -------
    ndarray, shape (n,), int64
    """
    b = max(1, min(int(block_steps), n))
    n_blocks = -(-n // b)
    starts = rng.integers(0, n - b + 1, size=n_blocks)
    return (starts[:, None] + np.arange(b)[None, :]).ravel()[:n].astype(np.int64)


def block_bootstrap(arrays: dict[str, np.ndarray], block_steps: int,
                    seed: int | np.random.SeedSequence) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Resample the window in blocks of candles and rebuild the price path.

    Each candle is described relative to the previous close: the gap ``log(open / close[-1])``
    (0 for the window's first candle) and ``log(high / open)``, ``log(low / open)``,
    ``log(close / open)``. The resampled descriptions are chained from the window's first open.

    Parameters
    ----------
    arrays : dict of str to ndarray
        Window arrays, each shape (T,), T >= 1; prices > 0.
    block_steps : int
        Block length in candles, >= 1.
    seed : int or numpy.random.SeedSequence
        Seed of the ``PCG64`` generator drawing the block starts.

    Returns
    -------
    arrays : dict of str to ndarray
        Same timestamps; resampled candles, volume, funding and realised volatility.
    source : ndarray, shape (T,), int64
        Index of the original candle each output candle copies.

    Raises
    ------
    ValueError
        If ``block_steps < 1`` or the window is empty.
    """
    n = len(arrays["open"])
    if n == 0:
        raise ValueError("cannot stress an empty window")
    if block_steps < 1:
        raise ValueError(f"block_steps must be >= 1, got {block_steps}")
    rng = np.random.Generator(np.random.PCG64(seed))
    src = block_indices(n, block_steps, rng)
    o, h, lo, c = (arrays[k] for k in PRICE_COLUMNS)
    prev_close = np.concatenate([[o[0]], c[:-1]])
    gap = np.log(o / prev_close)
    gap[0] = 0.0
    rel = {"high": np.log(h / o), "low": np.log(lo / o), "close": np.log(c / o)}
    # open_i = open_0 x exp(sum_{j<=i} gap_j + sum_{j<i} close-rel_j)
    step = gap[src].copy()
    step[0] = 0.0
    step[1:] += rel["close"][src[:-1]]
    new_open = o[0] * np.exp(np.cumsum(step))
    out = {"timestamp": arrays["timestamp"].copy(), "open": new_open}
    for name in ("high", "low", "close"):
        out[name] = new_open * np.exp(rel[name][src])
    for name in ("volume", "funding_rate", "realized_vol"):
        if name in arrays:
            out[name] = arrays[name][src].copy()
    return out, src


def shock_iv(iv: np.ndarray, spec) -> np.ndarray:
    """Return an options market's implied volatility under one stress spec.

    Parameters
    ----------
    iv : ndarray, shape (T, U), float64
        Implied volatility per step and underlying, annualised fraction.
    spec : StressSpec
        An :class:`IvShock` multiplies every value by ``factor``; every other kind returns an
        exact copy (their volatility follows from the stressed path).

    Returns
    -------
    ndarray, shape (T, U), float64
    """
    if spec.kind == "iv":
        return np.asarray(iv, dtype=np.float64) * spec.factor
    return np.array(iv, dtype=np.float64, copy=True)


@dataclass(frozen=True)
class StressedTape:
    """A tape with a stressed window.

    Attributes
    ----------
    tape : Tape
        History before the window unchanged, then the stressed window.
    window : Tape
        The stressed window alone.
    end : datetime
        Close time of the stressed window's last candle (earlier than the historical end after
        time compression).
    """

    tape: Tape
    window: Tape
    end: datetime


def apply_stress(arrays: dict[str, np.ndarray], spec, seed: int,
                 interval_ms: int) -> dict[str, np.ndarray]:
    """Apply one stress spec to window arrays.

    Parameters
    ----------
    arrays : dict of str to ndarray
        Window arrays, shape (T,).
    spec : NoStress, ScaleShock, CompressTime, BlockBootstrap or IvShock
        (an :class:`IvShock` returns an exact copy: it changes no tape column)
    seed : int
        The cell's seed (block bootstrap: combined with ``spec.seed``).
    interval_ms : int
        Candle length, ms.

    Returns
    -------
    dict of str to ndarray
    """
    if spec.kind in ("none", "iv"):  # an implied-volatility shock leaves the tape as it was
        return _copy(arrays)
    if spec.kind == "scale":
        return scale_shock(arrays, spec.k)
    if spec.kind == "compress":
        return compress_time(arrays, spec.factor, interval_ms)
    if spec.kind == "bootstrap":
        return block_bootstrap(arrays, spec.block_steps,
                               np.random.SeedSequence([int(seed), int(spec.seed)]))[0]
    raise ValueError(f"unknown stress kind {spec.kind!r}")


def stress_tape(tape: Tape, start: datetime, end: datetime, spec, seed: int) -> StressedTape:
    """Return ``tape`` with its ``[start, end)`` window stressed by ``spec``.

    Parameters
    ----------
    tape : Tape
        A tape covering the window (and usually history before it).
    start, end : datetime
        Window bounds (UTC); candles at or after ``end`` are dropped.
    spec : NoStress, ScaleShock, CompressTime or BlockBootstrap
    seed : int
        The cell's seed.

    Returns
    -------
    StressedTape
    """
    before = tape.window(tape.start, start)
    window = tape.window(start, end)
    interval_ms = tape.interval_seconds * 1000
    stressed = apply_stress(window.arrays(), spec, seed, interval_ms)
    frame = pl.concat([before.frame, _frame(stressed)], how="vertical")
    full = Tape(frame, tape.meta, tape.path)
    last = int(stressed["timestamp"][-1]) + interval_ms
    new_end = datetime.fromtimestamp(last / 1000, tz=start.tzinfo)
    return StressedTape(full, full.window(start, new_end), new_end)


def _frame(arrays: dict[str, np.ndarray]) -> pl.DataFrame:
    cols = {"timestamp": pl.Series("timestamp", arrays["timestamp"], pl.Int64)
            .cast(pl.Datetime("ms")).dt.replace_time_zone("UTC").cast(TIMESTAMP_DTYPE)}
    for name in TAPE_COLUMNS[1:]:
        cols[name] = pl.Series(name, arrays[name], pl.Float64).fill_nan(None)
    return pl.DataFrame(cols)
