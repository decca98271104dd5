"""Import plain CSV or Parquet candle files.

Columns (names matched case-insensitively, extra columns ignored):

- a time column, the first of ``timestamp``, ``date``, ``time``, ``open_time``: candle open time
  in UTC, as epoch numbers (seconds, milliseconds or microseconds, detected by magnitude),
  ISO 8601 strings (``2021-05-19 13:00:00``, ``2021-05-19T13:00:00Z``; naive values are UTC),
  or Parquet timestamps/dates (naive values are UTC);
- ``open``, ``high``, ``low``, ``close``, ``volume`` (all required).

Nothing in such a file says what it is, so symbol, venue and market come from options. The
interval comes from the option or the median spacing. A Parquet file carrying ``liqbt.``
metadata (a tape exported from a store) supplies them itself, and so does a freqtrade file
name (freqtrade's ``parquet`` data format, ``BTC_USDT-1m.parquet``).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from backtest.errors import TapeError
from backtest.tapes.freqtrade import parse_freqtrade_name
from backtest.tapes.schema import (
    META_PREFIX,
    OHLCV_COLUMNS,
    TIMESTAMP_DTYPE,
    RawTape,
    Source,
    cast_numeric,
    choose,
    epoch_to_ms,
    file_sha256,
    infer_venue,
    parse_symbol,
    parse_time_strings,
    read_bytes,
    validate_frame,
)

TIME_COLUMNS = ("timestamp", "date", "time", "open_time")
"""Accepted names of the time column, in order of preference."""

PLAIN_EXTENSIONS = (".csv", ".parquet")

def _find_columns(columns: list[str], path: Path) -> dict[str, str]:
    lower = {c.lower(): c for c in reversed(columns)}
    found = {}
    time_col = next((lower[c] for c in TIME_COLUMNS if c in lower), None)
    if time_col is None:
        raise TapeError(
            f"no time column: expected one of {', '.join(TIME_COLUMNS)} "
            f"(has: {', '.join(columns)})", path)
    found["timestamp"] = time_col
    for name in OHLCV_COLUMNS[1:]:
        if name not in lower:
            raise TapeError(f"missing column '{name}' (has: {', '.join(columns)})", path)
        found[name] = lower[name]
    return found


def _timestamps(series: pl.Series, path: Path) -> pl.Series:
    nulls = series.is_null().to_numpy()
    if nulls.any():
        raise TapeError(f"row {int(np.argmax(nulls))} (no timestamp): timestamp is null", path)
    dtype = series.dtype
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is None:
            series = series.dt.replace_time_zone("UTC")
        return series.dt.convert_time_zone("UTC").dt.cast_time_unit("ms")
    if dtype == pl.Date:
        return series.cast(pl.Datetime("ms")).dt.replace_time_zone("UTC")
    if dtype.is_numeric():
        values = series.to_numpy()
        bad = ~np.isfinite(values.astype(np.float64))
        if bad.any():
            raise TapeError(f"row {int(np.argmax(bad))} (no timestamp): timestamp is not finite",
                            path)
        ms = epoch_to_ms(values)
    elif dtype == pl.String:
        ms = parse_time_strings(series, path)
    else:
        raise TapeError(f"time column has dtype {dtype}, expected epoch numbers or date-times",
                        path)
    return pl.Series("timestamp", ms, dtype=pl.Int64).cast(TIMESTAMP_DTYPE)


def _read_table(path: Path, data: bytes) -> tuple[pl.DataFrame, dict[str, str]]:
    if path.name.lower().endswith(".parquet"):
        try:
            table = pq.read_table(pa.BufferReader(data))
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise TapeError(f"not a readable Parquet file ({exc})", path) from None
        meta = {
            k.decode()[len(META_PREFIX):]: v.decode()
            for k, v in (table.schema.metadata or {}).items()
            if k.startswith(META_PREFIX.encode())
        }
        return pl.from_arrow(table), meta
    try:
        df = pl.read_csv(io.BytesIO(data), infer_schema=False, raise_if_empty=False)
    except pl.exceptions.PolarsError as exc:
        raise TapeError(f"not a readable CSV file ({str(exc).splitlines()[0]})", path) from None
    return df, {}


def read_plain_frame(path: str | Path, data: bytes | None = None
                     ) -> tuple[pl.DataFrame, dict[str, str]]:
    """Read a plain CSV/Parquet file into :data:`OHLCV_COLUMNS`, in file order.

    Parameters
    ----------
    path : str or Path
        ``.csv`` or ``.parquet`` file.
    data : bytes, optional
        The file's bytes if already read.

    Returns
    -------
    frame : polars.DataFrame
        ``timestamp`` datetime[ms, UTC] and float64 ``open``..``volume``; not validated.
    hints : dict of str to str
        ``liqbt.`` Parquet metadata without the prefix (empty for CSV and foreign Parquet).

    Raises
    ------
    TapeError
        Unreadable file, missing columns, unparseable times or non-numeric values.
    """
    path = Path(path)
    data = read_bytes(path) if data is None else data
    df, hints = _read_table(path, data)
    if df.height == 0:
        raise TapeError("no rows", path)
    cols = _find_columns(df.columns, path)
    out = {"timestamp": _timestamps(df[cols["timestamp"]], path)}
    for name in OHLCV_COLUMNS[1:]:
        col = df[cols[name]]
        if not (col.dtype.is_numeric() or col.dtype == pl.String):
            raise TapeError(f"column '{name}' has dtype {col.dtype}, expected numbers", path)
        out[name] = cast_numeric(col, name, path)
    return pl.DataFrame(out), hints


def read_plain(
    path: str | Path,
    *,
    venue: str | None = None,
    market: str | None = None,
    symbol: str | None = None,
    interval: str | None = None,
) -> RawTape:
    """Read a plain CSV or Parquet candle file.

    Parameters
    ----------
    path : str or Path
        The file.
    venue : str, optional
        Default: the file's liqbt metadata, else the parent directory if a known exchange.
    market : {"spot", "perp"}, optional
        Default: the file's liqbt metadata or freqtrade name; required otherwise.
    symbol : str, optional
        ``BASE/QUOTE``; default: the file's liqbt metadata or freqtrade name; required
        otherwise.
    interval : str, optional
        Default: the file's liqbt metadata or freqtrade name, else the median spacing.

    Returns
    -------
    RawTape
        Validated candles.

    Raises
    ------
    TapeError
        Invalid file, or symbol/venue/market that cannot be determined.
    """
    path = Path(path)
    data = read_bytes(path)
    frame, hints = read_plain_frame(path, data)
    name = parse_freqtrade_name(path)  # freqtrade's "parquet" data format: BTC_USDT-1m.parquet
    if name is not None and name.candle_type in ("spot", "futures") and not hints:
        hints = {"symbol": name.symbol, "market": name.market, "interval": name.timeframe}
    if symbol is not None:
        symbol = "/".join(parse_symbol(symbol))
    symbol = choose("symbol", symbol, hints.get("symbol"), path)
    if symbol is None:
        raise TapeError("a plain file does not say its symbol; pass --symbol", path)
    market = choose("market", market, hints.get("market"), path)
    if market is None:
        raise TapeError("a plain file does not say its market; pass --market spot|perp", path)
    venue = infer_venue(path, venue or hints.get("venue"))
    interval = choose("interval", interval, hints.get("interval"), path)
    validate_frame(frame, path)
    return RawTape(frame, venue, market, symbol, interval, Source(str(path), file_sha256(data),
                                                                   frame.height))
