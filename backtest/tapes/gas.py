"""Gas price tapes: what a keeper pays per unit of gas, over time.

Formats read:

- StableSims inputs (pandas "table" JSON: ``{"schema": ..., "data": [...]}``) with a
  ``timestamp`` field (ISO, UTC) and gas-price columns in **wei** (``avgGasDay``,
  ``30.0 Perc``, ``60.0 Perc``, ``90.0 Perc``, ``100.0 Perc``);
- CSV with columns ``timestamp`` (ISO or epoch ms) and ``gas_price_gwei``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl

from backtest.errors import TapeError


def read_gas_tape(path: str | Path, column: str = "90.0 Perc") -> tuple[np.ndarray, np.ndarray]:
    """Read a gas tape.

    Parameters
    ----------
    path : str or Path
        StableSims table JSON or CSV (see module docstring).
    column : str
        Column of a StableSims file to use (a percentile of the block's gas prices).

    Returns
    -------
    timestamp_ms : ndarray, shape (K,), int64
        Sample times, increasing.
    gas_price_gwei : ndarray, shape (K,), float64

    Raises
    ------
    TapeError
        Unreadable file, unknown column, unordered or non-positive values; the message names
        the file and the row.
    """
    path = Path(path)
    try:
        if path.suffix == ".csv":
            frame = pl.read_csv(path)
            ts = _to_ms(frame["timestamp"])
            if "gas_price_gwei" not in frame.columns:
                raise TapeError("a CSV gas tape needs a gas_price_gwei column", path)
            gwei = frame["gas_price_gwei"].cast(pl.Float64).to_numpy()
        else:
            doc = json.loads(path.read_text())
            rows = doc["data"] if isinstance(doc, dict) else doc
            if not rows or column not in rows[0]:
                known = ", ".join(k for k in (rows[0] if rows else {}) if k != "timestamp")
                raise TapeError(f"no column {column!r} (columns: {known})", path)
            ts = _to_ms(pl.Series([r["timestamp"] for r in rows]))
            gwei = np.array([float(r[column]) for r in rows]) / 1e9  # wei -> gwei
    except TapeError:
        raise
    except (OSError, ValueError, KeyError, pl.exceptions.PolarsError) as exc:
        raise TapeError(f"not a readable gas tape ({exc})", path) from None
    bad = np.flatnonzero(~(np.isfinite(gwei) & (gwei > 0)))
    if bad.size:
        raise TapeError(f"row {bad[0]}: gas price must be a positive number", path)
    unordered = np.flatnonzero(np.diff(ts) <= 0)
    if unordered.size:
        raise TapeError(f"row {unordered[0] + 1}: timestamp is not after the previous row", path)
    return ts, gwei


def gas_at(steps_ms: np.ndarray, timestamp_ms: np.ndarray, gwei: np.ndarray
           ) -> tuple[np.ndarray, int]:
    """Return the gas price at each step: the last sample at or before it.

    Steps before the tape starts take its first sample, steps after it ends its last.

    Returns
    -------
    gas_price_gwei : ndarray, shape (T,)
    held : int
        Steps outside the tape's range (priced with its first or last sample).
    """
    idx = np.searchsorted(timestamp_ms, steps_ms, side="right") - 1
    held = int(np.sum(idx < 0) + np.sum(steps_ms > timestamp_ms[-1] + _median_step(timestamp_ms)))
    return gwei[np.clip(idx, 0, len(gwei) - 1)], held


def _median_step(ts: np.ndarray) -> int:
    return int(np.median(np.diff(ts))) if len(ts) > 1 else 0


def _to_ms(series: pl.Series) -> np.ndarray:
    if series.dtype.is_numeric():
        return series.cast(pl.Int64).to_numpy()
    parsed = series.cast(pl.String).str.to_datetime(time_zone="UTC", time_unit="ms")
    return parsed.dt.epoch("ms").to_numpy()
