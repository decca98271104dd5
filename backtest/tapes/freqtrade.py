"""Import freqtrade data files: OHLCV and funding rates, JSON (optionally gzipped) or feather.

freqtrade writes ``user_data/data/<exchange>/BASE_QUOTE-TF.json`` for spot candles and
``<exchange>/futures/BASE_QUOTE_SETTLE-TF-futures.feather`` (``-funding_rate``, ``-mark``,
``-index`` for the other candle types). Files copied out of such trees often carry a prefix
separated by double underscores (``owner__repo__commit__blob__BTC_USDT-1m.json``): only the
last ``__``-separated segment is parsed.

Layouts:

- JSON: a list of ``[open_time_ms, open, high, low, close, volume]``;
- feather (Arrow IPC): columns ``date`` (timestamp, UTC), ``open``, ``high``, ``low``,
  ``close``, ``volume``;
- funding-rate files use the same layout with the rate (a fraction per funding interval) in
  ``open``; the other price columns are 0. Their timestamps jitter by a few milliseconds and
  are rounded to the nearest second. The timeframe in a funding file's name is freqtrade's
  download timeframe, not the funding interval, which is inferred from the median spacing.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.feather as feather

from backtest.errors import TapeError
from backtest.tapes.schema import (
    OHLCV_COLUMNS,
    TIMESTAMP_DTYPE,
    RawFunding,
    RawTape,
    Source,
    TapeWarning,
    build_ohlcv_frame,
    choose,
    epoch_to_ms,
    file_sha256,
    format_ts,
    infer_venue,
    median_spacing_seconds,
    ms_to_datetime,
    parse_symbol,
    read_bytes,
    validate_frame,
)

FREQTRADE_EXTENSIONS = (".json.gz", ".json", ".feather")
"""File extensions read by this importer (freqtrade's ``json``, ``jsongz`` and ``feather``)."""

CANDLE_TYPES = ("futures", "funding_rate", "mark", "index", "premiumIndex")

_NAME_RE = re.compile(
    r"^(?P<base>[A-Za-z0-9.]+)_(?P<quote>[A-Za-z0-9]+)(?:_(?P<settle>[A-Za-z0-9]+))?"
    r"-(?P<timeframe>\d+[smhdwM])(?:-(?P<candle_type>" + "|".join(CANDLE_TYPES) + r"))?$"
)

SUSPICIOUS_FUNDING = 0.05
"""A funding rate beyond +-5% per interval is reported: it may be a percentage."""


@dataclass(frozen=True)
class FreqtradeName:
    """What a freqtrade data file name says.

    Attributes
    ----------
    base, quote : str
        Assets, upper case.
    settle : str or None
        Settlement asset of a futures pair (``BTC_USDT_USDT``), else None.
    timeframe : str
        freqtrade timeframe (``"1m"``); for funding files this is NOT the funding interval.
    candle_type : str
        ``"spot"``, ``"futures"``, ``"funding_rate"``, ``"mark"``, ``"index"`` or
        ``"premiumIndex"``.
    """

    base: str
    quote: str
    settle: str | None
    timeframe: str
    candle_type: str

    @property
    def market(self) -> str:
        """``"perp"`` if a settle asset or a derivatives candle type is present, else spot."""
        return "perp" if self.settle or self.candle_type != "spot" else "spot"

    @property
    def symbol(self) -> str:
        """``"BASE/QUOTE"``."""
        return f"{self.base}/{self.quote}"


def strip_extension(name: str) -> str | None:
    """Return ``name`` without a freqtrade extension, or None if it has none."""
    for ext in (*FREQTRADE_EXTENSIONS, ".parquet"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return None


def parse_freqtrade_name(path: str | Path) -> FreqtradeName | None:
    """Parse a freqtrade data file name.

    Parameters
    ----------
    path : str or Path
        Any path; only the file name is used, and of it only the last ``__``-separated
        segment (``MoonEyes__freqtrade__8bd2def13f__b7ef6245__BTC_USDT-1h-futures.json``
        parses as ``BTC_USDT-1h-futures``).

    Returns
    -------
    FreqtradeName or None
        None if the name does not follow freqtrade's pattern.
    """
    stem = strip_extension(Path(path).name)
    if stem is None:
        return None
    m = _NAME_RE.match(stem.split("__")[-1])
    if not m:
        return None
    return FreqtradeName(
        base=m.group("base").upper(),
        quote=m.group("quote").upper(),
        settle=m.group("settle").upper() if m.group("settle") else None,
        timeframe=m.group("timeframe"),
        candle_type=m.group("candle_type") or "spot",
    )


# --------------------------------------------------------------------------- raw readers


def _json_rows(data: bytes, path: Path) -> list:
    try:
        if path.name.lower().endswith(".gz"):
            data = gzip.decompress(data)
        rows = json.loads(data)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise TapeError(f"not a readable gzip file ({exc})", path) from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise TapeError(f"not valid JSON ({exc})", path) from None
    if not isinstance(rows, list):
        raise TapeError("expected a JSON list of [open_time_ms, open, high, low, close, volume]",
                        path)
    return rows


def _rows_to_arrays(rows: list, width: int, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Convert a list of numeric rows to a float64 (n, width) array plus a mask of JSON nulls."""
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != width:
            raise TapeError(
                f"row {i}: expected a list of {width} numbers "
                "[open_time_ms, open, high, low, close, volume], got " + repr(row)[:80], path)
    try:
        arr = np.array(rows, dtype=np.float64).reshape(len(rows), width)
    except (TypeError, ValueError):
        for i, row in enumerate(rows):
            for j, v in enumerate(row):
                if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
                    raise TapeError(f"row {i}: column {j} is not a number: {v!r}", path) from None
        raise TapeError("rows are not lists of numbers", path) from None
    null = np.zeros(arr.shape, dtype=bool)
    for i, j in np.argwhere(np.isnan(arr)):  # numpy turns None into NaN: tell them apart
        null[i, j] = rows[i][j] is None
    return arr, null


def _frame_from_json(data: bytes, path: Path) -> pl.DataFrame:
    rows = _json_rows(data, path)
    if not rows:
        raise TapeError("no rows", path)
    arr, null = _rows_to_arrays(rows, 6, path)
    bad_ts = ~np.isfinite(arr[:, 0])
    if bad_ts.any():
        raise TapeError(f"row {int(np.argmax(bad_ts))} (no timestamp): timestamp is null", path)
    ts = epoch_to_ms(arr[:, 0])
    cols = {name: arr[:, j] for j, name in enumerate(OHLCV_COLUMNS) if j > 0}
    frame = build_ohlcv_frame(ts, cols)
    for j, name in enumerate(OHLCV_COLUMNS):
        if j > 0 and null[:, j].any():
            frame = frame.with_columns(
                pl.when(pl.Series(null[:, j])).then(None).otherwise(pl.col(name)).alias(name))
    return frame


def _frame_from_feather(data: bytes, path: Path) -> pl.DataFrame:
    try:
        table = feather.read_table(pa.BufferReader(data))
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise TapeError(f"not a readable feather (Arrow IPC) file ({exc})", path) from None
    df = pl.from_arrow(table)
    need = ("date", "open", "high", "low", "close", "volume")
    for name in need:
        if name not in df.columns:
            raise TapeError(
                f"missing column '{name}' (a freqtrade feather file has "
                f"{', '.join(need)}; this one has {', '.join(df.columns)})", path)
    date = df["date"]
    if isinstance(date.dtype, pl.Datetime):
        if date.dtype.time_zone is None:
            date = date.dt.replace_time_zone("UTC")
        ts = date.dt.convert_time_zone("UTC").dt.cast_time_unit("ms")
    elif date.dtype.is_numeric():
        nulls = date.is_null().to_numpy()
        if nulls.any():
            raise TapeError(f"row {int(np.argmax(nulls))} (no timestamp): timestamp is null", path)
        ts = pl.Series(epoch_to_ms(date.to_numpy())).cast(TIMESTAMP_DTYPE)
    else:
        raise TapeError(f"column 'date' has dtype {date.dtype}, expected a UTC timestamp", path)
    out = {"timestamp": ts.alias("timestamp")}
    for name in need[1:]:
        col = df[name]
        if not col.dtype.is_numeric():
            raise TapeError(f"column '{name}' has dtype {col.dtype}, expected float64", path)
        out[name] = col.cast(pl.Float64)
    return pl.DataFrame(out)


def read_freqtrade_frame(path: str | Path, data: bytes | None = None) -> pl.DataFrame:
    """Read a freqtrade JSON/JSON.gz/feather file into :data:`OHLCV_COLUMNS`, in file order.

    Parameters
    ----------
    path : str or Path
        The file; the format is chosen by extension.
    data : bytes, optional
        The file's bytes if already read.

    Returns
    -------
    polars.DataFrame
        ``timestamp`` datetime[ms, UTC] and float64 ``open``..``volume``; not validated.

    Raises
    ------
    TapeError
        If the file cannot be read or parsed, naming the file (and row where possible).
    """
    path = Path(path)
    data = read_bytes(path) if data is None else data
    if path.name.lower().endswith(".feather"):
        return _frame_from_feather(data, path)
    return _frame_from_json(data, path)


# --------------------------------------------------------------------------- importers


def read_freqtrade(
    path: str | Path,
    *,
    venue: str | None = None,
    market: str | None = None,
    symbol: str | None = None,
    interval: str | None = None,
) -> RawTape | RawFunding:
    """Read a freqtrade OHLCV or funding-rate file.

    Parameters
    ----------
    path : str or Path
        A freqtrade data file (``.json``, ``.json.gz`` or ``.feather``).
    venue : str, optional
        Exchange; default: the parent directory if it is a known exchange.
    market : {"spot", "perp"}, optional
        Default: from the name (perp if a settle asset or ``-futures``/``-funding_rate``).
    symbol : str, optional
        ``BASE/QUOTE``; default: from the name. Required if the name is not freqtrade's.
    interval : str, optional
        Candle interval; default: the name's timeframe. Ignored for funding files, whose
        interval is the median spacing of their times.

    Returns
    -------
    RawTape or RawFunding
        Validated candles, or a funding series for ``-funding_rate`` files.

    Raises
    ------
    TapeError
        Unreadable or invalid file, mark/index candles (no tape column holds them yet),
        options contradicting the name, or a venue/symbol that cannot be determined.
    """
    path = Path(path)
    name = parse_freqtrade_name(path)
    if name is not None and name.candle_type in ("mark", "index", "premiumIndex"):
        raise TapeError(
            f"{name.candle_type} candles are not supported (a tape holds traded candles; "
            "import the -futures file instead)", path)
    data = read_bytes(path)
    frame = read_freqtrade_frame(path, data)
    source = Source(str(path), file_sha256(data), frame.height)
    venue = infer_venue(path, venue)
    if symbol is not None:
        symbol = "/".join(parse_symbol(symbol))
    symbol = choose("symbol", symbol, name.symbol if name else None, path)
    if symbol is None:
        raise TapeError("cannot parse the symbol from the file name; pass --symbol", path)
    if name is not None and name.candle_type == "funding_rate":
        choose("market", market, "perp", path)
        return _funding_from_frame(frame, path, venue, symbol, source)
    market = choose("market", market, name.market if name else None, path)
    if market is None:
        raise TapeError("cannot infer the market from the file name; pass --market", path)
    interval = choose("interval", interval, name.timeframe if name else None, path)
    validate_frame(frame, path)
    return RawTape(frame, venue, market, symbol, interval, source)


def _funding_from_frame(frame: pl.DataFrame, path: Path, venue: str, symbol: str,
                        source: Source) -> RawFunding:
    ts = frame["timestamp"].dt.epoch("ms").to_numpy().astype(np.int64)
    rounded = (ts + 500) // 1000 * 1000
    rate = frame["open"]
    return build_funding(rounded, rate, path, venue, symbol, source)


def build_funding(ts_ms: np.ndarray, rate: pl.Series, path: Path, venue: str, symbol: str,
                  source: Source) -> RawFunding:
    """Validate a funding series and infer its interval.

    Parameters
    ----------
    ts_ms : numpy.ndarray
        int64 funding times in epoch ms (already rounded to whole seconds).
    rate : polars.Series
        float64 rates, fraction per funding interval.
    path : Path
        File named in messages.
    venue, symbol : str
        Identity of the series.
    source : Source
        The file read.

    Returns
    -------
    RawFunding

    Raises
    ------
    TapeError
        Null/NaN/infinite rate, or a time not after the previous one (after rounding).
    """
    n = ts_ms.size
    if n == 0:
        raise TapeError("no rows", path)
    null = rate.is_null().to_numpy()
    v = rate.fill_null(np.nan).to_numpy().astype(np.float64)
    bad = null | ~np.isfinite(v)
    first = int(np.argmax(bad)) if bad.any() else n
    order = np.zeros(n, dtype=bool)
    order[1:] = ts_ms[1:] <= ts_ms[:-1]
    first_order = int(np.argmax(order)) if order.any() else n
    if first < n and first <= first_order:
        what = "null" if null[first] else repr(float(v[first]))
        raise TapeError(f"row {first} ({format_ts(ts_ms[first])}): funding rate is {what}", path)
    if first_order < n:
        i = first_order
        kind = "duplicate" if ts_ms[i] == ts_ms[i - 1] else "rows must be sorted by time"
        raise TapeError(
            f"row {i} ({format_ts(ts_ms[i])}): timestamp is not after the previous row "
            f"({kind}; funding times are rounded to the second)", path)
    interval = median_spacing_seconds(ts_ms)
    if interval is None or interval <= 0:
        raise TapeError("a funding series needs at least 2 rows to infer its interval", path)
    warnings = []
    big = np.flatnonzero(np.abs(v) > SUSPICIOUS_FUNDING)
    if big.size:
        i = int(big[0])
        warnings.append(TapeWarning(
            "funding", i, ms_to_datetime(ts_ms[i]),
            f"{big.size} funding rate(s) beyond +-{SUSPICIOUS_FUNDING:.0%} per interval, first "
            f"{float(v[i])!r} at row {i} ({format_ts(ts_ms[i])}): are they percentages?"))
    frame = pl.DataFrame({
        "timestamp": pl.Series(ts_ms, dtype=pl.Int64).cast(TIMESTAMP_DTYPE),
        "funding_rate": pl.Series(v, dtype=pl.Float64),
    })
    return RawFunding(frame, venue, symbol, interval, source, warnings)

