"""The tape schema: columns, metadata, validation, gaps and warnings.

A *tape* is one Parquet file per (venue, market, symbol, interval) holding candles on a
regular UTC grid. See ``docs/tapes.md`` for the full description. This module is shared by
every importer (validation on import) and by :class:`backtest.tapes.store.Tape` (validation on
every load), so that a file that loads is a file that satisfies the schema.

Row numbers in error messages are 0-based positions in the file as read (for CSV files the
header line is not counted).

Why over 400 lines: it is the one definition of a tape (columns, metadata, validation, gaps and
warnings) that every converter, the store and the engine share; validation and gap detection
read the same column and metadata definitions.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from backtest.errors import TapeError
from backtest.tapes.volatility import default_window

SCHEMA_VERSION = "1"
"""Version of the tape layout written to the ``liqbt.schema_version`` metadata key."""

META_PREFIX = "liqbt."
"""Prefix of every liqbt key in the Parquet key-value metadata."""

PRICE_COLUMNS = ("open", "high", "low", "close")
OHLCV_COLUMNS = ("timestamp", *PRICE_COLUMNS, "volume")
"""Columns every importer produces (before funding and realised vol are attached)."""

DERIVED_COLUMNS = ("funding_rate", "realized_vol")
TAPE_COLUMNS = (*OHLCV_COLUMNS, *DERIVED_COLUMNS)
"""All tape columns, in file order."""

TIMESTAMP_DTYPE = pl.Datetime("ms", "UTC")
"""Polars dtype of the ``timestamp`` column: milliseconds since the epoch, UTC."""

MARKETS = ("spot", "perp")

KNOWN_VENUES = (
    "binance", "binanceus", "bybit", "okx", "kraken", "kucoin", "gate", "hyperliquid",
    "bitmex", "bitget", "htx", "deribit",
)
"""Exchange names recognised as a parent directory name (freqtrade's ``data/<exchange>``)."""

KNOWN_QUOTES = ("USDT", "USDC", "BUSD", "FDUSD", "USD", "BTC", "ETH")
"""Quote assets tried, in this order, to split a concatenated symbol such as ``BTCUSDT``."""

WICK_TOLERANCE = 0.20
"""A low (high) more than this fraction below min(open, close) (above max) is reported."""

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_INTERVAL_RE = re.compile(r"^(\d+)([smhdw])$")
_SYMBOL_PART = re.compile(r"^[A-Z0-9.]+$")


# --------------------------------------------------------------------------- small helpers


def parse_interval(interval: str) -> int:
    """Return the length of a candle interval in seconds.

    Parameters
    ----------
    interval : str
        ``<n><unit>`` with unit one of ``s``, ``m``, ``h``, ``d``, ``w`` (e.g. ``"5m"``).
        Calendar months (``"1M"``) are not a fixed length and are rejected.

    Returns
    -------
    int
        Seconds per candle, > 0.

    Raises
    ------
    TapeError
        If the string is not a valid interval.
    """
    m = _INTERVAL_RE.match(interval.strip())
    if not m or int(m.group(1)) <= 0:
        raise TapeError(f"invalid interval {interval!r}: expected e.g. 1m, 5m, 1h, 1d")
    return int(m.group(1)) * _UNIT_SECONDS[m.group(2)]


def format_interval(seconds: int) -> str:
    """Return the canonical interval name for a length in seconds (``3600`` -> ``"1h"``).

    Parameters
    ----------
    seconds : int
        Candle length in seconds, > 0.

    Returns
    -------
    str
        The largest unit that divides ``seconds`` evenly (``300`` -> ``"5m"``).
    """
    for unit in ("w", "d", "h", "m"):
        if seconds % _UNIT_SECONDS[unit] == 0:
            return f"{seconds // _UNIT_SECONDS[unit]}{unit}"
    return f"{seconds}s"


def parse_symbol(symbol: str) -> tuple[str, str]:
    """Split a user-given symbol into (base, quote), upper-cased.

    Parameters
    ----------
    symbol : str
        ``"BTC/USDT"``, ``"BTC-USDT"``, ``"BTC_USDT"``, or a bare base ``"BTC"`` (the quote
        then defaults to ``USDT``). Concatenated forms such as ``"BTCUSDT"`` are ambiguous
        (``WBTC``) and are only split by the Binance importer, from file names.

    Returns
    -------
    tuple of str
        ``(base, quote)``.

    Raises
    ------
    TapeError
        If a part is empty or holds characters other than letters, digits and ``.``.
    """
    text = symbol.strip().upper()
    parts = re.split(r"[/_-]", text)
    if len(parts) == 1:
        parts = [parts[0], "USDT"]
    if len(parts) != 2 or not all(_SYMBOL_PART.match(p) for p in parts):
        raise TapeError(f"invalid symbol {symbol!r}: expected BASE/QUOTE, e.g. BTC/USDT")
    return parts[0], parts[1]


def split_concatenated_symbol(raw: str) -> tuple[str, str] | None:
    """Split a Binance-style symbol (``"BTCUSDT"``) using :data:`KNOWN_QUOTES`.

    Parameters
    ----------
    raw : str
        Base and quote written together.

    Returns
    -------
    tuple of str or None
        ``(base, quote)`` for the first known quote that ``raw`` ends with (leaving a
        non-empty base), else None.
    """
    raw = raw.upper()
    for quote in KNOWN_QUOTES:
        if raw.endswith(quote) and len(raw) > len(quote):
            return raw[: -len(quote)], quote
    return None


def format_ts(ms: int | float | None) -> str:
    """Format epoch milliseconds as ``2021-05-19 13:05:00+00:00`` (None -> ``"no timestamp"``)."""
    if ms is None:
        return "no timestamp"
    return str(datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=int(ms)))


def ms_to_datetime(ms: int) -> datetime:
    """Convert epoch milliseconds to a timezone-aware UTC :class:`datetime.datetime`."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=int(ms))


def datetime_to_ms(value: datetime | str) -> int:
    """Convert a datetime (naive values are taken as UTC) or ISO string to epoch milliseconds.

    Raises
    ------
    TapeError
        If a string is not an ISO 8601 date or datetime.
    """
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise TapeError(
                f"invalid datetime {value!r}: expected ISO 8601, e.g. 2021-05-19T00:00Z") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return delta // timedelta(milliseconds=1)


def parse_time_strings(values: pl.Series, path: str | Path, label: str = "timestamp"
                       ) -> np.ndarray:
    """Parse a string column of epoch numbers or ISO 8601 date-times to epoch milliseconds.

    Parameters
    ----------
    values : polars.Series of str, shape (N,)
        Either every value an epoch number (any unit, :func:`epoch_to_ms`) or every value an
        ISO 8601 date or date-time (naive values are UTC).
    path : str or Path
        File named in the messages.
    label : str
        What the column holds, in the messages (``timestamp``, ``time``).

    Returns
    -------
    numpy.ndarray of int64, shape (N,)
        Epoch milliseconds.

    Raises
    ------
    TapeError
        ``row N (no timestamp): <label> is null`` or ``row N: <label> '...' is not a
        date-time or epoch number``.
    """
    numbers = values.str.strip_chars().cast(pl.Float64, strict=False)
    if numbers.null_count() == 0 and np.isfinite(numbers.to_numpy()).all():
        return epoch_to_ms(numbers.to_numpy())
    text = values.to_list()
    out = np.empty(len(text), dtype=np.int64)
    for i, v in enumerate(text):
        if v is None or not v.strip():
            raise TapeError(f"row {i} (no timestamp): {label} is null", path)
        try:
            out[i] = datetime_to_ms(datetime.fromisoformat(v.strip()))
        except ValueError:
            raise TapeError(f"row {i}: {label} {v!r} is not a date-time or epoch number",
                            path) from None
    return out


def epoch_to_ms(values: np.ndarray) -> np.ndarray:
    """Convert epoch numbers to int64 milliseconds, detecting the unit of each value.

    Magnitudes below 1e11 are seconds, below 1e14 milliseconds, below 1e17 microseconds,
    anything larger nanoseconds (valid for dates between 1973 and 5138).

    Parameters
    ----------
    values : numpy.ndarray
        Epoch numbers (int or float), any of the four units; NaN is not allowed.

    Returns
    -------
    numpy.ndarray
        int64 milliseconds (sub-millisecond parts are truncated toward negative infinity).
    """
    v = np.asarray(values)
    mag = np.abs(v)
    out = np.empty(v.shape, dtype=np.int64)
    sec = mag < 1e11
    ms = (mag >= 1e11) & (mag < 1e14)
    us = (mag >= 1e14) & (mag < 1e17)
    ns = mag >= 1e17
    out[sec] = np.round(v[sec].astype(np.float64) * 1000.0).astype(np.int64)
    out[ms] = v[ms].astype(np.int64)
    out[us] = v[us].astype(np.int64) // 1000
    out[ns] = v[ns].astype(np.int64) // 1_000_000
    return out


def file_sha256(data: bytes) -> str:
    """Return the hex SHA-256 of a file's bytes."""
    return hashlib.sha256(data).hexdigest()


def read_bytes(path: str | Path) -> bytes:
    """Read a whole file, turning OS errors into :class:`TapeError` naming the file."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise TapeError(f"cannot read the file: {exc.strerror or exc}", path) from None


def infer_venue(path: str | Path, venue: str | None) -> str:
    """Return the venue from the option, else from the file's directory.

    The parent directory name is used if it is a known exchange (:data:`KNOWN_VENUES`);
    freqtrade keeps futures candles in ``<exchange>/futures/``, so a parent named ``futures``
    defers to the grandparent.

    Raises
    ------
    TapeError
        ``cannot infer the venue of FILE; pass --venue`` when neither gives one.
    """
    if venue:
        return venue.strip().lower()
    parents = Path(path).resolve().parents
    candidates = [parents[0].name.lower()] if len(parents) > 0 else []
    if candidates and candidates[0] == "futures" and len(parents) > 1:
        candidates.append(parents[1].name.lower())
    for name in candidates:
        if name in KNOWN_VENUES:
            return name
    raise TapeError(f"cannot infer the venue of {path}; pass --venue")


def choose(label: str, option: str | None, inferred: str | None, path: str | Path) -> str | None:
    """Combine an option with a value inferred from the file; they must not contradict.

    Parameters
    ----------
    label : str
        Option name without dashes (``"market"``), used in the message.
    option : str or None
        The user's value.
    inferred : str or None
        What the file (name or metadata) says.
    path : str or Path
        File named in the message.

    Returns
    -------
    str or None
        ``option`` if given, else ``inferred``.

    Raises
    ------
    TapeError
        If both are given and differ.
    """
    if option is not None and inferred is not None and option != inferred:
        raise TapeError(f"--{label} {option} contradicts the file, which says {inferred}", path)
    return option if option is not None else inferred


# --------------------------------------------------------------------------- value types


@dataclass(frozen=True)
class Source:
    """One imported file recorded in a tape's ``liqbt.sources`` metadata.

    Attributes
    ----------
    path : str
        The path as the user gave it at import.
    sha256 : str
        Hex SHA-256 of the file's bytes.
    rows : int
        Rows read from the file.
    """

    path: str
    sha256: str
    rows: int

    def to_json(self) -> dict:
        """Return the JSON object stored in the metadata."""
        return {"path": self.path, "sha256": self.sha256, "rows": self.rows}


@dataclass(frozen=True)
class Gap:
    """A jump between consecutive candles of more than one interval (a real outage).

    Attributes
    ----------
    start : datetime
        Open time (UTC) of the last candle before the gap.
    end : datetime
        Open time (UTC) of the first candle after the gap. Candles with open times strictly
        between ``start`` and ``end`` are missing; they are never filled.
    missing_steps : int
        Number of missing candles, ``ceil((end - start) / interval) - 1`` (>= 1).
    """

    start: datetime
    end: datetime
    missing_steps: int

    @property
    def duration(self) -> timedelta:
        """``end - start``: the spacing between the two candles around the gap."""
        return self.end - self.start

    def __str__(self) -> str:
        return f"{self.start:%Y-%m-%d %H:%M} -> {self.end:%Y-%m-%d %H:%M} ({self.duration}, " \
            f"{self.missing_steps} missing)"


@dataclass(frozen=True)
class TapeWarning:
    """Something suspicious but legal in a tape (reported, never hidden or fixed).

    Attributes
    ----------
    kind : str
        ``"wick"`` (low/high more than :data:`WICK_TOLERANCE` beyond the body),
        ``"gap_jump"`` (price jump across a gap), ``"misaligned"`` (timestamps off the
        interval grid) or ``"funding"``.
    row : int or None
        0-based row of the (first) affected candle.
    timestamp : datetime or None
        Its open time.
    message : str
        Human-readable description.
    """

    kind: str
    row: int | None
    timestamp: datetime | None
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class TapeMeta:
    """Identity and provenance of a tape, stored as Parquet key-value metadata.

    Attributes
    ----------
    venue : str
        Exchange, lower case (``"binance"``).
    market : str
        ``"spot"`` or ``"perp"``.
    symbol : str
        ``"BASE/QUOTE"``, upper case.
    base, quote : str
        The two halves of ``symbol``.
    interval : str
        Canonical interval name (``"1m"``).
    interval_seconds : int
        Seconds per candle.
    sources : tuple of Source
        Files the rows came from, in import order.
    realized_vol_window : int
        Trailing window (number of returns) used for ``realized_vol``; files without it get
        the default window.
    """

    venue: str
    market: str
    symbol: str
    base: str
    quote: str
    interval: str
    interval_seconds: int
    sources: tuple[Source, ...] = ()
    realized_vol_window: int = 0

    @property
    def key(self) -> str:
        """Store key ``venue/market/BASE-QUOTE/interval``."""
        return f"{self.venue}/{self.market}/{self.base}-{self.quote}/{self.interval}"

    def to_metadata(self) -> dict[bytes, bytes]:
        """Return the Parquet key-value metadata (bytes keys prefixed ``liqbt.``)."""
        values = {
            "kind": "ohlcv",
            "venue": self.venue,
            "market": self.market,
            "symbol": self.symbol,
            "base": self.base,
            "quote": self.quote,
            "interval": self.interval,
            "interval_seconds": str(self.interval_seconds),
            "schema_version": SCHEMA_VERSION,
            "sources": json.dumps([s.to_json() for s in self.sources]),
            "realized_vol_window": str(self.realized_vol_window),
        }
        return {(META_PREFIX + k).encode(): v.encode() for k, v in values.items()}

    @classmethod
    def from_metadata(cls, metadata: dict[bytes, bytes] | None, path: str | Path) -> TapeMeta:
        """Parse and check the metadata of a tape file.

        Raises
        ------
        TapeError
            If a key is missing or inconsistent, naming the file.
        """
        md = decode_metadata(metadata, path)
        if md.get("kind", "ohlcv") != "ohlcv":
            raise TapeError(f"this is a liqbt {md['kind']} series, not a tape", path)
        need = ("venue", "market", "symbol", "base", "quote", "interval", "interval_seconds")
        for key in need:
            if key not in md:
                raise TapeError(f"not a liqbt tape: metadata key '{META_PREFIX}{key}' missing",
                                path)
        if md["market"] not in MARKETS:
            raise TapeError(f"metadata market {md['market']!r} is not spot or perp", path)
        try:
            seconds = int(md["interval_seconds"])
            window = int(md.get("realized_vol_window", "0"))
        except ValueError:
            raise TapeError("metadata interval_seconds is not an integer", path) from None
        try:
            ok = parse_interval(md["interval"]) == seconds
        except TapeError:
            ok = False
        if not ok:
            raise TapeError(
                f"metadata interval {md['interval']!r} does not match interval_seconds {seconds}",
                path,
            )
        return cls(
            venue=md["venue"], market=md["market"], symbol=md["symbol"], base=md["base"],
            quote=md["quote"], interval=md["interval"], interval_seconds=seconds,
            sources=parse_sources(md.get("sources", "[]"), path),
            realized_vol_window=window if window >= 2 else default_window(seconds),
        )


def decode_metadata(metadata: dict[bytes, bytes] | None, path: str | Path) -> dict[str, str]:
    """Return the ``liqbt.`` metadata as a str dict without the prefix; check the version.

    Raises
    ------
    TapeError
        If there is no liqbt metadata or the schema version is not :data:`SCHEMA_VERSION`.
    """
    md = {
        k.decode()[len(META_PREFIX):]: v.decode()
        for k, v in (metadata or {}).items()
        if k.startswith(META_PREFIX.encode())
    }
    if not md:
        raise TapeError("not a liqbt file: no 'liqbt.' metadata (import it with liqbt data import)",
                        path)
    if md.get("schema_version") != SCHEMA_VERSION:
        raise TapeError(
            f"schema version {md.get('schema_version')!r} is not supported "
            f"(this liqbt reads version {SCHEMA_VERSION})", path,
        )
    return md


def parse_sources(text: str, path: str | Path) -> tuple[Source, ...]:
    """Parse the JSON ``liqbt.sources`` list; TapeError naming ``path`` if malformed."""
    try:
        items = json.loads(text)
        return tuple(Source(str(s["path"]), str(s["sha256"]), int(s["rows"])) for s in items)
    except (ValueError, TypeError, KeyError):
        raise TapeError("metadata 'liqbt.sources' is not a JSON list of sources", path) from None


@dataclass
class RawTape:
    """Candles read by an importer, before they are merged into the store.

    Attributes
    ----------
    frame : polars.DataFrame
        Columns :data:`OHLCV_COLUMNS` in file order (validated).
    venue, market, symbol : str
        Identity resolved from options and the file name.
    interval : str or None
        From the name or an option; None means infer it from the spacing.
    source : Source
        The file read.
    """

    frame: pl.DataFrame
    venue: str
    market: str
    symbol: str
    interval: str | None
    source: Source


@dataclass
class RawFunding:
    """A funding-rate series read by an importer.

    Attributes
    ----------
    frame : polars.DataFrame
        ``timestamp`` (datetime[ms, UTC], rounded to the nearest second, strictly increasing)
        and ``funding_rate`` (float64, fraction per funding interval).
    venue, symbol : str
        Identity; the market is always ``"perp"``.
    funding_interval_seconds : int
        Median spacing of the series, in seconds.
    source : Source
        The file read.
    warnings : list of TapeWarning
        Suspicious values (e.g. rates that look like percentages).
    """

    frame: pl.DataFrame
    venue: str
    symbol: str
    funding_interval_seconds: int
    source: Source
    warnings: list[TapeWarning] = field(default_factory=list)


# --------------------------------------------------------------------------- validation


def _fmt_num(value: float) -> str:
    return repr(float(value))


def validate_frame(df: pl.DataFrame, path: str | Path, *, derived: bool = False) -> None:
    """Check a candle frame against the tape schema; raise on the first offending row.

    Parameters
    ----------
    df : polars.DataFrame
        Columns :data:`OHLCV_COLUMNS` (and :data:`DERIVED_COLUMNS` when ``derived``): timestamp
        datetime[ms, UTC], the others float64.
    path : str or Path
        File named in error messages.
    derived : bool
        Also require ``funding_rate`` and ``realized_vol`` (nullable; finite when present;
        ``realized_vol`` >= 0).

    Raises
    ------
    TapeError
        ``FILE: row N (TIMESTAMP): PROBLEM`` for the earliest row with any of: null timestamp,
        null/NaN/infinite or non-positive price, low above min(open, close), high below
        max(open, close), null/NaN/infinite or negative volume, timestamp not after the previous
        row; or ``FILE: missing column ...`` / ``column ... has dtype ...``.
    """
    required = TAPE_COLUMNS if derived else OHLCV_COLUMNS
    for name in required:
        if name not in df.columns:
            raise TapeError(f"missing column '{name}' (has: {', '.join(df.columns)})", path)
    for name in required:
        want = TIMESTAMP_DTYPE if name == "timestamp" else pl.Float64
        if df.schema[name] != want:
            raise TapeError(f"column '{name}' has dtype {df.schema[name]}, expected {want}", path)
    n = df.height
    if n == 0:
        raise TapeError("no rows", path)

    ts_col = df["timestamp"]
    ts_null = ts_col.is_null().to_numpy()
    ts = ts_col.dt.epoch("ms").fill_null(0).to_numpy().astype(np.int64)

    problems: list[tuple[np.ndarray, object]] = []  # (mask, message(i))
    problems.append((ts_null, lambda i: "timestamp is null"))

    cols = {}
    for name in (*PRICE_COLUMNS, "volume"):
        s = df[name]
        null = s.is_null().to_numpy()
        v = s.fill_null(np.nan).to_numpy().astype(np.float64, copy=False)
        cols[name] = v
        problems.append((null, lambda i, c=name: f"{c} is null"))
        problems.append((~null & np.isnan(v), lambda i, c=name: f"{c} is NaN"))
        problems.append((np.isinf(v), lambda i, c=name, v=v: f"{c} is infinite ({_fmt_num(v[i])})"))
        if name == "volume":
            problems.append((v < 0, lambda i, v=v: f"volume is negative ({_fmt_num(v[i])})"))
        else:
            problems.append((v <= 0, lambda i, c=name, v=v: (
                f"{c} is not positive ({_fmt_num(v[i])})")))
    o, h, lo, c = cols["open"], cols["high"], cols["low"], cols["close"]
    body_lo = np.minimum(o, c)
    body_hi = np.maximum(o, c)
    problems.append((lo > body_lo, lambda i: (
        f"low {_fmt_num(lo[i])} is above min(open, close) {_fmt_num(body_lo[i])}")))
    problems.append((h < body_hi, lambda i: (
        f"high {_fmt_num(h[i])} is below max(open, close) {_fmt_num(body_hi[i])}")))

    if n > 1:
        both = ~ts_null[1:] & ~ts_null[:-1]
        dup = np.zeros(n, dtype=bool)
        back = np.zeros(n, dtype=bool)
        dup[1:] = both & (ts[1:] == ts[:-1])
        back[1:] = both & (ts[1:] < ts[:-1])
        problems.append((dup, lambda i: "timestamp is not after the previous row (duplicate)"))
        problems.append((back, lambda i: (
            f"timestamp is not after the previous row ({format_ts(ts[i - 1])}): rows must be "
            "sorted by time")))

    if derived:
        for name in DERIVED_COLUMNS:
            v = df[name].to_numpy().astype(np.float64, copy=False)  # nulls become NaN
            null = df[name].is_null().to_numpy()
            problems.append((~null & ~np.isfinite(v), lambda i, c=name, v=v: (
                f"{c} is {_fmt_num(v[i])} (missing values must be null)")))
        rv = df["realized_vol"].fill_null(0.0).to_numpy()
        problems.append((rv < 0, lambda i: f"realized_vol is negative ({_fmt_num(rv[i])})"))

    first = None
    for mask, message in problems:
        if mask.any():
            i = int(np.argmax(mask))
            if first is None or i < first[0]:
                first = (i, message)
    if first is not None:
        i, message = first
        when = None if ts_null[i] else ts[i]
        raise TapeError(f"row {i} ({format_ts(when)}): {message(i)}", path)


def find_gaps(timestamps_ms: np.ndarray, interval_seconds: int, *, slack_ms: int = 0) -> list[Gap]:
    """Report jumps of more than one interval between consecutive candles.

    Gaps are real exchange outages and are never filled.

    Parameters
    ----------
    timestamps_ms : numpy.ndarray
        int64 candle open times in epoch milliseconds, strictly increasing.
    interval_seconds : int
        Candle length in seconds.
    slack_ms : int
        Spacing beyond one interval that is still not a gap (0 for candles; funding series,
        whose times jitter, use half an interval). With slack, missing steps are rounded.

    Returns
    -------
    list of Gap
        In time order; empty if none.
    """
    ts = np.asarray(timestamps_ms, dtype=np.int64)
    if ts.size < 2:
        return []
    step = int(interval_seconds) * 1000
    diff = np.diff(ts)
    idx = np.flatnonzero(diff > step + slack_ms)
    if slack_ms:
        missing = np.maximum(1, np.round(diff[idx] / step).astype(np.int64) - 1)
    else:
        missing = -(-diff[idx] // step) - 1
    return [
        Gap(start=ms_to_datetime(ts[i]), end=ms_to_datetime(ts[i + 1]), missing_steps=int(m))
        for i, m in zip(idx, missing, strict=True)
    ]


def check_warnings(df: pl.DataFrame, interval_seconds: int) -> list[TapeWarning]:
    """Return the suspicious-but-legal findings of a validated candle frame.

    Parameters
    ----------
    df : polars.DataFrame
        A frame that passed :func:`validate_frame`.
    interval_seconds : int
        Candle length in seconds.

    Returns
    -------
    list of TapeWarning
        One ``"wick"`` warning per candle whose low is more than 20% below min(open, close)
        or whose high is more than 20% above max(open, close); one ``"gap_jump"`` warning per
        gap across which the price jumps by more than 20% (next open vs previous close); then
        one ``"misaligned"`` warning (count and first row) if some open times are not
        multiples of the interval.
    """
    ts = df["timestamp"].dt.epoch("ms").to_numpy().astype(np.int64)
    o = df["open"].to_numpy()
    h = df["high"].to_numpy()
    lo = df["low"].to_numpy()
    c = df["close"].to_numpy()
    body_lo = np.minimum(o, c)
    body_hi = np.maximum(o, c)
    out: list[TapeWarning] = []
    low_wick = lo < (1.0 - WICK_TOLERANCE) * body_lo
    high_wick = h > (1.0 + WICK_TOLERANCE) * body_hi
    for i in np.flatnonzero(low_wick | high_wick):
        parts = []
        if low_wick[i]:
            pct = 100.0 * (body_lo[i] - lo[i]) / body_lo[i]
            parts.append(f"low {_fmt_num(lo[i])} is {pct:.1f}% below min(open, close) "
                         f"{_fmt_num(body_lo[i])}")
        if high_wick[i]:
            pct = 100.0 * (h[i] - body_hi[i]) / body_hi[i]
            parts.append(f"high {_fmt_num(h[i])} is {pct:.1f}% above max(open, close) "
                         f"{_fmt_num(body_hi[i])}")
        out.append(TapeWarning(
            "wick", int(i), ms_to_datetime(ts[i]),
            f"row {i} ({format_ts(ts[i])}): {' and '.join(parts)} (wick or bad print)",
        ))
    step = int(interval_seconds) * 1000
    for i in np.flatnonzero(np.diff(ts) > step):
        jump = o[i + 1] / c[i] - 1.0
        if abs(jump) > WICK_TOLERANCE:
            out.append(TapeWarning(
                "gap_jump", int(i + 1), ms_to_datetime(ts[i + 1]),
                f"row {i + 1} ({format_ts(ts[i + 1])}): opens {jump:+.1%} from the close "
                f"{_fmt_num(c[i])} before the gap since {format_ts(ts[i])} (a different "
                "instrument spliced in, or a long outage)"))
    off = np.flatnonzero(ts % step != 0)
    if off.size:
        i = int(off[0])
        out.append(TapeWarning(
            "misaligned", i, ms_to_datetime(ts[i]),
            f"{off.size} candle(s) not aligned to the {format_interval(interval_seconds)} grid, "
            f"first at row {i} ({format_ts(ts[i])})",
        ))
    return out


def median_spacing_seconds(timestamps_ms: np.ndarray) -> int | None:
    """Return the median spacing of timestamps, rounded to whole seconds (None if < 2 rows)."""
    ts = np.asarray(timestamps_ms, dtype=np.int64)
    if ts.size < 2:
        return None
    return int(round(float(np.median(np.diff(ts))) / 1000.0))


def build_ohlcv_frame(ts_ms: np.ndarray, columns: dict[str, np.ndarray | pl.Series]
                      ) -> pl.DataFrame:
    """Assemble a frame with :data:`OHLCV_COLUMNS` from int64 ms times and float columns.

    Parameters
    ----------
    ts_ms : numpy.ndarray
        int64 candle open times, epoch milliseconds.
    columns : dict
        ``open``, ``high``, ``low``, ``close``, ``volume`` values (cast to float64).

    Returns
    -------
    polars.DataFrame
        ``timestamp`` datetime[ms, UTC] and the five float64 columns, in file order.
    """
    data = {"timestamp": pl.Series("timestamp", ts_ms, dtype=pl.Int64).cast(TIMESTAMP_DTYPE)}
    for name in OHLCV_COLUMNS[1:]:
        data[name] = pl.Series(name, columns[name]).cast(pl.Float64)
    return pl.DataFrame(data)


def cast_numeric(series: pl.Series, column: str, path: str | Path) -> pl.Series:
    """Cast a string/number column to float64; TapeError at the first non-numeric value.

    Raises
    ------
    TapeError
        ``FILE: row N: column 'open' is not a number: 'abc'``.
    """
    if series.dtype == pl.Float64:
        return series
    out = series.cast(pl.Float64, strict=False)
    bad = (out.is_null() & series.is_not_null()).to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        raise TapeError(f"row {i}: column '{column}' is not a number: {series[i]!r}", path)
    return out
