"""The tape store: one validated Parquet file per (venue, market, symbol, interval).

Layout under the store root (default :func:`backtest.paths.tape_store`)::

    <root>/<venue>/<market>/<BASE>-<QUOTE>/<interval>.parquet   candles (the tape schema)
    <root>/<venue>/perp/<BASE>-<QUOTE>/funding.parquet          funding series of a perp

Imports merge into existing files (overlapping rows must agree), recompute ``realized_vol``
and (re)attach funding; every write is atomic, so a failing import leaves the store exactly
as it was. See ``docs/tapes.md``.

Why over 400 lines: it is the store's one class (import, resolve, merge, list, verify), whose
operations share its locking, atomic writes and index; the converters and the schema live in
their own modules.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from backtest import paths
from backtest.atomic import atomic_path
from backtest.errors import TapeError
from backtest.tapes.binance import parse_binance_name, read_binance
from backtest.tapes.freqtrade import FREQTRADE_EXTENSIONS, parse_freqtrade_name, read_freqtrade
from backtest.tapes.plain import PLAIN_EXTENSIONS, read_plain
from backtest.tapes.schema import (
    MARKETS,
    META_PREFIX,
    OHLCV_COLUMNS,
    SCHEMA_VERSION,
    TAPE_COLUMNS,
    Gap,
    RawFunding,
    RawTape,
    Source,
    TapeMeta,
    TapeWarning,
    check_warnings,
    datetime_to_ms,
    decode_metadata,
    find_gaps,
    format_interval,
    format_ts,
    median_spacing_seconds,
    ms_to_datetime,
    parse_interval,
    parse_sources,
    parse_symbol,
    validate_frame,
)
from backtest.tapes.volatility import default_window, with_realized_vol

ARROW_SCHEMA = pa.schema(
    [pa.field("timestamp", pa.timestamp("ms", tz="UTC"), nullable=False)]
    + [pa.field(c, pa.float64(), nullable=c in ("funding_rate", "realized_vol"))
       for c in TAPE_COLUMNS[1:]]
)
"""Arrow schema of a tape file, columns in order."""

FUNDING_SCHEMA = pa.schema([
    pa.field("timestamp", pa.timestamp("ms", tz="UTC"), nullable=False),
    pa.field("funding_rate", pa.float64(), nullable=False),
])
"""Arrow schema of a ``funding.parquet`` file."""

REL_TOL = 1e-9
"""Relative tolerance for overlapping rows from different sources to count as equal."""


# --------------------------------------------------------------------------- file IO


def _read_parquet(path: Path) -> pa.Table:
    try:
        return pq.read_table(path)
    except FileNotFoundError:
        raise TapeError("no such file", path) from None
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise TapeError(f"not a readable Parquet file ({exc})", path) from None


def write_tape(path: str | Path, frame: pl.DataFrame, meta: TapeMeta) -> None:
    """Write a tape frame and its metadata to a Parquet file (not atomic by itself).

    Parameters
    ----------
    path : str or Path
        Destination (use :func:`backtest.atomic.atomic_path` around this).
    frame : polars.DataFrame
        Columns :data:`backtest.tapes.schema.TAPE_COLUMNS`, validated.
    meta : TapeMeta
        Written as ``liqbt.*`` key-value metadata.
    """
    table = frame.select(TAPE_COLUMNS).to_arrow().cast(ARROW_SCHEMA)
    table = table.replace_schema_metadata(meta.to_metadata())
    pq.write_table(table, path, compression="zstd", use_dictionary=False)


@dataclass(frozen=True)
class FundingMeta:
    """Identity and provenance of a stored funding series.

    Attributes
    ----------
    venue, symbol, base, quote : str
        Identity (the market is always perp).
    funding_interval_seconds : int
        Median spacing of the funding times, seconds.
    sources : tuple of Source
        Files the rows came from.
    """

    venue: str
    symbol: str
    base: str
    quote: str
    funding_interval_seconds: int
    sources: tuple[Source, ...] = ()

    def to_metadata(self) -> dict[bytes, bytes]:
        """Return the Parquet key-value metadata (bytes keys prefixed ``liqbt.``)."""
        values = {
            "kind": "funding", "venue": self.venue, "market": "perp", "symbol": self.symbol,
            "base": self.base, "quote": self.quote,
            "funding_interval_seconds": str(self.funding_interval_seconds),
            "schema_version": SCHEMA_VERSION,
            "sources": json.dumps([s.to_json() for s in self.sources]),
        }
        return {(META_PREFIX + k).encode(): v.encode() for k, v in values.items()}


def read_funding(path: str | Path) -> tuple[pl.DataFrame, FundingMeta]:
    """Read and check a stored ``funding.parquet``.

    Returns
    -------
    frame : polars.DataFrame
        ``timestamp`` datetime[ms, UTC] strictly increasing, ``funding_rate`` float64 finite.
    meta : FundingMeta

    Raises
    ------
    TapeError
        Unreadable file, wrong metadata, columns or values.
    """
    path = Path(path)
    table = _read_parquet(path)
    md = decode_metadata(table.schema.metadata, path)
    if md.get("kind") != "funding":
        raise TapeError("not a liqbt funding series", path)
    try:
        meta = FundingMeta(md["venue"], md["symbol"], md["base"], md["quote"],
                           int(md["funding_interval_seconds"]),
                           parse_sources(md.get("sources", "[]"), path))
    except (KeyError, ValueError):
        raise TapeError("incomplete liqbt funding metadata", path) from None
    if table.schema.remove_metadata() != FUNDING_SCHEMA.remove_metadata():
        raise TapeError(f"columns are {table.schema.names} with types {table.schema.types}, "
                        "expected timestamp[ms, UTC], funding_rate float64", path)
    frame = pl.from_arrow(table)
    ts = frame["timestamp"].dt.epoch("ms").to_numpy()
    rate = frame["funding_rate"].to_numpy()
    bad = np.zeros(frame.height, dtype=bool)
    bad[1:] = ts[1:] <= ts[:-1]
    bad |= ~np.isfinite(rate)
    if bad.any():
        i = int(np.argmax(bad))
        raise TapeError(f"row {i} ({format_ts(ts[i])}): funding time not increasing or rate not "
                        "finite", path)
    return frame, meta


def write_funding(path: str | Path, frame: pl.DataFrame, meta: FundingMeta) -> None:
    """Write a funding series (not atomic by itself; see :func:`write_tape`)."""
    table = frame.select("timestamp", "funding_rate").to_arrow().cast(FUNDING_SCHEMA)
    pq.write_table(table.replace_schema_metadata(meta.to_metadata()), path, compression="zstd",
                   use_dictionary=False)


# --------------------------------------------------------------------------- Tape


def _to_ms(value: datetime | str | int) -> int:
    return int(value) if isinstance(value, int | np.integer) else datetime_to_ms(value)


@dataclass(frozen=True, eq=False)
class Tape:
    """A validated tape: candles plus identity.

    Attributes
    ----------
    frame : polars.DataFrame
        Columns :data:`backtest.tapes.schema.TAPE_COLUMNS`; ``timestamp`` datetime[ms, UTC]
        candle open times, strictly increasing; prices/volume float64; ``funding_rate``
        (fraction per funding interval, on the candle containing the funding time) and
        ``realized_vol`` (annualised fraction) nullable float64.
    meta : TapeMeta
        Venue, market, symbol, interval, sources.
    path : Path or None
        The file it was loaded from.
    """

    frame: pl.DataFrame
    meta: TapeMeta
    path: Path | None = None

    @classmethod
    def from_parquet(cls, path: str | Path) -> Tape:
        """Load and validate any tape file.

        Parameters
        ----------
        path : str or Path
            A Parquet file written by a :class:`TapeStore`.

        Returns
        -------
        Tape

        Raises
        ------
        TapeError
            If the file is unreadable, lacks liqbt metadata, or violates the schema (message
            names the file and the first offending row).
        """
        path = Path(path)
        table = _read_parquet(path)
        meta = TapeMeta.from_metadata(table.schema.metadata, path)
        frame = pl.from_arrow(table)
        validate_frame(frame, path, derived=True)
        return cls(frame, meta, path)

    @property
    def rows(self) -> int:
        """Number of candles."""
        return self.frame.height

    @property
    def interval_seconds(self) -> int:
        """Candle length in seconds."""
        return self.meta.interval_seconds

    @property
    def start(self) -> datetime:
        """Open time of the first candle (UTC)."""
        return ms_to_datetime(self._ts()[0])

    @property
    def end(self) -> datetime:
        """Close time of the last candle (UTC): the tape covers ``[start, end)``."""
        return ms_to_datetime(self._ts()[-1] + self.interval_seconds * 1000)

    def _ts(self) -> np.ndarray:
        return self.frame["timestamp"].dt.epoch("ms").to_numpy().astype(np.int64)

    def window(self, start: datetime | str, end: datetime | str) -> Tape:
        """Return the candles with open time in ``[start, end)``.

        Parameters
        ----------
        start, end : datetime or str
            Bounds; naive datetimes and ISO strings without offset are UTC.

        Returns
        -------
        Tape
            Same meta and path; possibly empty.
        """
        lo, hi = _to_ms(start), _to_ms(end)
        ts = pl.col("timestamp").dt.epoch("ms")
        return Tape(self.frame.filter((ts >= lo) & (ts < hi)), self.meta, self.path)

    def gaps(self) -> list[Gap]:
        """Return the gaps (jumps of more than one interval) between consecutive candles."""
        return find_gaps(self._ts(), self.interval_seconds)

    def warnings(self) -> list[TapeWarning]:
        """Return suspicious wicks and misaligned timestamps (see ``check_warnings``)."""
        return check_warnings(self.frame, self.interval_seconds)

    def arrays(self) -> dict[str, np.ndarray]:
        """Return the columns as contiguous NumPy arrays for the engine.

        Returns
        -------
        dict of str to numpy.ndarray
            ``timestamp`` int64 epoch ms (open time); ``open``, ``high``, ``low``, ``close``,
            ``volume`` float64; ``funding_rate`` and ``realized_vol`` float64 with NaN where
            null.
        """
        out = {"timestamp": np.ascontiguousarray(self._ts())}
        for name in TAPE_COLUMNS[1:]:
            col = self.frame[name].cast(pl.Float64).fill_null(np.nan)
            out[name] = np.ascontiguousarray(col.to_numpy(), dtype=np.float64)
        return out


# --------------------------------------------------------------------------- reading files


def is_importable(path: str | Path, *, plain: bool = False) -> bool:
    """Tell whether a file found in a directory should be imported.

    Parameters
    ----------
    path : str or Path
        A file.
    plain : bool
        Also accept any ``.csv``/``.parquet`` (only meaningful with a ``--symbol``).

    Returns
    -------
    bool
        True for freqtrade OHLCV/futures/funding names (JSON, JSON.gz, feather; OHLCV also
        Parquet) and Binance kline names.
    """
    name = parse_freqtrade_name(path)
    if name is not None and name.candle_type in ("spot", "futures", "funding_rate"):
        suffixes = FREQTRADE_EXTENSIONS if name.candle_type == "funding_rate" else (
            *FREQTRADE_EXTENSIONS, ".parquet")
        return Path(path).name.lower().endswith(suffixes)
    if parse_binance_name(path) is not None:
        return True
    return plain and Path(path).name.lower().endswith(PLAIN_EXTENSIONS)


def read_any(
    path: str | Path,
    *,
    venue: str | None = None,
    market: str | None = None,
    symbol: str | None = None,
    interval: str | None = None,
) -> RawTape | RawFunding:
    """Read any supported candle or funding file, choosing the importer by name/extension.

    Binance kline names and ``.zip`` go to :func:`backtest.tapes.binance.read_binance`;
    ``.json``, ``.json.gz`` and ``.feather`` to :func:`backtest.tapes.freqtrade.read_freqtrade`;
    other ``.csv`` and ``.parquet`` to :func:`backtest.tapes.plain.read_plain`.

    Parameters
    ----------
    path : str or Path
        The file.
    venue, market, symbol, interval : str, optional
        Override or complete what the file says (see the importers).

    Returns
    -------
    RawTape or RawFunding
        Validated rows and their identity.

    Raises
    ------
    TapeError
        Missing or unsupported file, invalid content, undeterminable identity.
    """
    p = Path(path)
    if not p.is_file():
        raise TapeError("no such file" if not p.exists() else "not a regular file", p)
    if market is not None and market not in MARKETS:
        raise TapeError(f"--market must be spot or perp, not {market!r}", p)
    opts = {"venue": venue, "market": market, "symbol": symbol, "interval": interval}
    name = p.name.lower()
    if parse_binance_name(p) is not None or name.endswith(".zip"):
        return read_binance(p, **opts)
    if name.endswith(FREQTRADE_EXTENSIONS):
        return read_freqtrade(p, **opts)
    if name.endswith(PLAIN_EXTENSIONS):
        return read_plain(p, **opts)
    raise TapeError("unsupported file type: expected freqtrade .json/.json.gz/.feather, "
                    "Binance kline .csv/.zip, or plain .csv/.parquet", p)


# --------------------------------------------------------------------------- merging


def _first_disagreement(a: np.ndarray, b: np.ndarray, abs_tol: float = 0.0) -> np.ndarray:
    close = np.abs(a - b) <= REL_TOL * np.maximum(np.abs(a), np.abs(b)) + abs_tol
    return ~close


def merge_rows(old: pl.DataFrame, new: pl.DataFrame, columns: tuple[str, ...], *,
               new_path: str | Path, old_label: str, abs_tol: float = 0.0) -> pl.DataFrame:
    """Union two frames keyed by ``timestamp``; overlapping rows must agree.

    Parameters
    ----------
    old, new : polars.DataFrame
        Frames with ``timestamp`` and ``columns`` (float64), each strictly increasing.
    columns : tuple of str
        Value columns compared on overlapping timestamps (relative tolerance 1e-9).
    new_path : str or Path
        The file being imported (named in the error).
    old_label : str
        Describes the existing data and its sources (named in the error).
    abs_tol : float
        Extra absolute tolerance (for values near 0, e.g. funding rates).

    Returns
    -------
    polars.DataFrame
        ``timestamp`` + ``columns``, sorted, no duplicates.

    Raises
    ------
    TapeError
        At the first overlapping timestamp where a value differs.
    """
    old = old.select("timestamp", *columns)
    new = new.select("timestamp", *columns)
    both = old.join(new, on="timestamp", how="inner", suffix="__new").sort("timestamp")
    if both.height:
        first = None
        for col in columns:
            bad = _first_disagreement(both[col].to_numpy(), both[col + "__new"].to_numpy(),
                                      abs_tol)
            if bad.any():
                i = int(np.argmax(bad))
                if first is None or i < first[0]:
                    first = (i, col)
        if first is not None:
            i, col = first
            ts = both["timestamp"].dt.epoch("ms")[i]
            raise TapeError(
                f"disagrees with {old_label} at {format_ts(ts)}: {col} is "
                f"{float(both[col + '__new'][i])!r} here but {float(both[col][i])!r} there",
                new_path)
    added = new.join(old.select("timestamp"), on="timestamp", how="anti")
    return pl.concat([old, added]).sort("timestamp")


def attach_funding(frame: pl.DataFrame, funding: pl.DataFrame | None, interval_seconds: int,
                   label: str = "the tape") -> tuple[pl.DataFrame, list[TapeWarning]]:
    """Set ``funding_rate`` on the candle whose ``[open, open + interval)`` holds each payment.

    Parameters
    ----------
    frame : polars.DataFrame
        Candles sorted by ``timestamp``; any existing ``funding_rate`` is replaced.
    funding : polars.DataFrame or None
        ``timestamp`` (datetime[ms, UTC]) and ``funding_rate`` (fraction per funding
        interval); None leaves every candle null.
    interval_seconds : int
        Candle length in seconds.
    label : str
        Names the tape in warnings.

    Returns
    -------
    frame : polars.DataFrame
        With ``funding_rate`` float64, null on candles without a payment. Several payments in
        one candle (tapes coarser than the funding interval) are summed.
    warnings : list of TapeWarning
        Payments inside the tape's span that fall into a gap (dropped), and summed payments.
    """
    n = frame.height
    rate = np.full(n, np.nan)
    warnings: list[TapeWarning] = []
    if funding is not None and funding.height and n:
        ts = frame["timestamp"].dt.epoch("ms").to_numpy().astype(np.int64)
        f_ts = funding["timestamp"].dt.epoch("ms").to_numpy().astype(np.int64)
        f_rate = funding["funding_rate"].to_numpy()
        step = interval_seconds * 1000
        idx = np.searchsorted(ts, f_ts, side="right") - 1
        placed = (idx >= 0) & (f_ts < ts[np.clip(idx, 0, None)] + step)
        counts = np.bincount(idx[placed], minlength=n)
        sums = np.bincount(idx[placed], weights=f_rate[placed], minlength=n)
        rate = np.where(counts > 0, sums, np.nan)
        in_span = (f_ts >= ts[0]) & (f_ts < ts[-1] + step)
        lost = np.flatnonzero(in_span & ~placed)
        if lost.size:
            warnings.append(TapeWarning(
                "funding", None, ms_to_datetime(f_ts[lost[0]]),
                f"{lost.size} funding payment(s) fall into gaps of {label} and are on no candle,"
                f" first at {format_ts(f_ts[lost[0]])}"))
        multi = np.flatnonzero(counts > 1)
        if multi.size:
            warnings.append(TapeWarning(
                "funding", int(multi[0]), ms_to_datetime(ts[multi[0]]),
                f"{multi.size} candle(s) of {label} hold several funding payments (summed), "
                f"first at {format_ts(ts[multi[0]])}"))
    col = pl.Series("funding_rate", rate, dtype=pl.Float64, nan_to_null=True)
    return frame.with_columns(col), warnings


# --------------------------------------------------------------------------- results


@dataclass
class ImportResult:
    """What one :meth:`TapeStore.import_file` call did.

    Attributes
    ----------
    source : str
        The imported file, as given.
    kind : str
        ``"ohlcv"`` or ``"funding"``.
    key : str
        ``venue/market/BASE-QUOTE/interval`` (``.../funding`` for funding series).
    path : Path
        File written.
    rows_in_file, rows_added, rows_total : int
        Rows read, rows new to the store, rows in the written file.
    start, end : datetime
        First and last timestamp of the written file (UTC; open times).
    gaps : list of Gap
        Gaps of the written series (candle interval; funding interval for funding).
    warnings : list of TapeWarning
        Suspicious wicks, misaligned timestamps, funding placement notes.
    updated : list of Path
        Other tapes rewritten (perp tapes that got the new funding attached).
    """

    source: str
    kind: str
    key: str
    path: Path
    rows_in_file: int
    rows_added: int
    rows_total: int
    start: datetime
    end: datetime
    gaps: list[Gap] = field(default_factory=list)
    warnings: list[TapeWarning] = field(default_factory=list)
    updated: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class TapeInfo:
    """Summary of one stored tape (from :meth:`TapeStore.list`).

    Attributes
    ----------
    venue, market, symbol, interval : str
        Identity.
    interval_seconds : int
        Candle length in seconds.
    start : datetime
        First candle open time (UTC).
    end : datetime
        Last candle close time (UTC): the tape spans ``[start, end)``.
    rows, n_gaps : int
        Candle count and number of gaps.
    has_funding : bool
        Whether any candle carries a funding rate.
    path : Path
        The Parquet file.
    """

    venue: str
    market: str
    symbol: str
    interval: str
    interval_seconds: int
    start: datetime
    end: datetime
    rows: int
    n_gaps: int
    has_funding: bool
    path: Path

    @property
    def key(self) -> str:
        """``venue/market/BASE-QUOTE/interval``."""
        return f"{self.venue}/{self.market}/{self.symbol.replace('/', '-')}/{self.interval}"


@dataclass(frozen=True)
class FundingInfo:
    """Summary of one stored funding series (from :meth:`TapeStore.list_funding`).

    Attributes
    ----------
    venue, symbol : str
        Identity (market perp).
    funding_interval_seconds : int
        Median spacing of the funding times, seconds.
    start, end : datetime
        First and last funding time (UTC).
    rows : int
        Number of funding payments.
    path : Path
        The ``funding.parquet`` file.
    """

    venue: str
    symbol: str
    funding_interval_seconds: int
    start: datetime
    end: datetime
    rows: int
    path: Path


MAX_MISSING_IN_WINDOW_MS = 86_400_000
"""Bound (ms) on the longest run of missing candles inside a window a tape still covers.

A run must be shorter than this AND shorter than half the window. Exchange outages last
hours (Binance 2021-04-25: 4h45m) and are kept: they are part of the history. Longer holes are
missing data, e.g. between two merged files years apart, or after a delisting; a tape with such
a hole in the window does not cover it.
"""


@dataclass(frozen=True)
class Coverage:
    """How a tape covers a time window ``[start, end)`` (from :meth:`TapeStore.coverage`).

    Attributes
    ----------
    status : str
        ``"full"``: the tape spans the window and every run of missing candles inside it is
        shorter than one day (:data:`MAX_MISSING_IN_WINDOW_MS`) and than half the window;
        ``"partial"``: some candles fall inside the window but it is not fully covered;
        ``"none"``: no candle inside.
    rows : int
        Candles with open time inside the window.
    expected_rows : int
        Candles a gap-free tape would have inside the window.
    gaps : list of Gap
        Gaps whose missing candles fall (partly) inside the window.
    longest_missing : timedelta
        Longest run of missing candles inside the window (0 if none).
    """

    status: str
    rows: int
    expected_rows: int
    gaps: list[Gap]
    longest_missing: timedelta


def window_coverage(ts: np.ndarray, interval_seconds: int, start: datetime | str | int,
                    end: datetime | str | int) -> Coverage:
    """Compute the :class:`Coverage` of ``[start, end)`` by candles opening at ``ts``.

    Parameters
    ----------
    ts : numpy.ndarray
        int64 candle open times, epoch ms, strictly increasing, non-empty.
    interval_seconds : int
        Candle length in seconds.
    start, end : datetime, str or int
        Window bounds (int: epoch ms); ``end`` exclusive.

    Returns
    -------
    Coverage
    """
    lo, hi = _to_ms(start), _to_ms(end)
    step = interval_seconds * 1000
    ts = np.asarray(ts, dtype=np.int64)
    first, last_end = int(ts[0]), int(ts[-1]) + step
    inside = int(((ts >= lo) & (ts < hi)).sum())
    gaps, longest = [], 0
    for g in find_gaps(ts, interval_seconds):
        miss_lo = max(datetime_to_ms(g.start) + step, lo)
        miss_hi = min(datetime_to_ms(g.end), hi)
        if miss_hi > miss_lo:
            gaps.append(g)
            longest = max(longest, miss_hi - miss_lo)
    allowed = min(MAX_MISSING_IN_WINDOW_MS, (hi - lo) // 2)
    if inside and first <= lo and last_end >= hi and longest < allowed:
        status = "full"
    elif inside:
        status = "partial"
    else:
        status = "none"
    return Coverage(status, inside, -(-(hi - lo) // step), gaps,
                    timedelta(milliseconds=longest))


# --------------------------------------------------------------------------- store


class TapeStore:
    """A directory of tapes and funding series.

    Parameters
    ----------
    root : str or Path, optional
        Store directory; default :func:`backtest.paths.tape_store` (``$LIQBT_TAPES`` or
        ``data/tapes``). Created on the first import.
    """

    def __init__(self, root: str | Path | None = None):
        self.root = paths.tape_store(root)

    def __repr__(self) -> str:
        return f"TapeStore({str(self.root)!r})"

    # paths ------------------------------------------------------------------

    def tape_path(self, venue: str, market: str, symbol: str, interval: str) -> Path:
        """Return ``<root>/<venue>/<market>/<BASE>-<QUOTE>/<interval>.parquet``."""
        base, quote = parse_symbol(symbol)
        name = format_interval(parse_interval(interval))
        return self.root / venue.lower() / market / f"{base}-{quote}" / f"{name}.parquet"

    def funding_path(self, venue: str, symbol: str) -> Path:
        """Return ``<root>/<venue>/perp/<BASE>-<QUOTE>/funding.parquet``."""
        base, quote = parse_symbol(symbol)
        return self.root / venue.lower() / "perp" / f"{base}-{quote}" / "funding.parquet"

    def _tape_files(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.glob("*/*/*/*.parquet")
                      if p.name != "funding.parquet" and not p.name.startswith("."))

    # import -----------------------------------------------------------------

    def import_file(
        self,
        path: str | Path,
        venue: str | None = None,
        market: str | None = None,
        symbol: str | None = None,
        interval: str | None = None,
    ) -> ImportResult:
        """Import one file into the store, merging with what is there.

        Parameters
        ----------
        path : str or Path
            A freqtrade, Binance or plain file (see :func:`read_any`).
        venue, market, symbol, interval : str, optional
            Override or complete what the file says. The interval defaults to the file
            name's, else the median candle spacing.

        Returns
        -------
        ImportResult

        Raises
        ------
        TapeError
            Invalid file, interval inconsistent with the spacing, overlap disagreeing with the
            stored rows (naming both sources and the first differing timestamp), or an invalid
            stored file. The store is then unchanged.
        """
        raw = read_any(path, venue=venue, market=market, symbol=symbol, interval=interval)
        if isinstance(raw, RawFunding):
            return self._import_funding(raw)
        return self._import_ohlcv(raw)

    def import_tape(self, raw: RawTape) -> ImportResult:
        """Import candles already read (e.g. :func:`backtest.tapes.feed.read_feed`).

        Raises
        ------
        TapeError
            As :meth:`import_file`.
        """
        return self._import_ohlcv(raw)

    def _interval_of(self, raw: RawTape) -> int:
        path = raw.source.path
        ts = raw.frame["timestamp"].dt.epoch("ms").to_numpy()
        spacing = median_spacing_seconds(ts)
        if raw.interval is None:
            if spacing is None:
                raise TapeError("a single candle does not tell its interval; pass --interval",
                                path)
            return spacing
        try:
            seconds = parse_interval(raw.interval)
        except TapeError as exc:
            raise TapeError(exc.detail, path) from None
        if spacing is not None and spacing != seconds:
            raise TapeError(
                f"the median candle spacing is {format_interval(spacing)} but the interval is "
                f"{raw.interval}", path)
        return seconds

    def _import_ohlcv(self, raw: RawTape) -> ImportResult:
        seconds = self._interval_of(raw)
        base, quote = parse_symbol(raw.symbol)
        interval = format_interval(seconds)
        dest = self.tape_path(raw.venue, raw.market, raw.symbol, interval)
        warnings = check_warnings(raw.frame, seconds)
        sources: tuple[Source, ...] = ()
        new = raw.frame.select(OHLCV_COLUMNS)
        before = 0
        if dest.exists():
            existing = Tape.from_parquet(dest)
            before = existing.rows
            sources = existing.meta.sources
            label = f"the stored tape {dest} (from {', '.join(s.path for s in sources)})"
            new = merge_rows(existing.frame, new, OHLCV_COLUMNS[1:], new_path=raw.source.path,
                             old_label=label)
        if raw.source.sha256 not in {s.sha256 for s in sources}:
            sources = (*sources, raw.source)
        meta = TapeMeta(raw.venue, raw.market, f"{base}/{quote}", base, quote, interval, seconds,
                        sources, default_window(seconds))
        funding = None
        if raw.market == "perp" and self.funding_path(raw.venue, raw.symbol).exists():
            funding, _ = read_funding(self.funding_path(raw.venue, raw.symbol))
        frame, notes = self._finish(new, funding, meta, dest)
        with atomic_path(dest) as tmp:
            write_tape(tmp, frame, meta)
        ts = frame["timestamp"].dt.epoch("ms").to_numpy()
        return ImportResult(
            source=raw.source.path, kind="ohlcv", key=meta.key, path=dest,
            rows_in_file=raw.frame.height, rows_added=frame.height - before,
            rows_total=frame.height, start=ms_to_datetime(ts[0]), end=ms_to_datetime(ts[-1]),
            gaps=find_gaps(ts, seconds), warnings=warnings + notes)

    @staticmethod
    def _finish(frame: pl.DataFrame, funding: pl.DataFrame | None, meta: TapeMeta, dest: Path
                ) -> tuple[pl.DataFrame, list[TapeWarning]]:
        frame, notes = attach_funding(frame, funding, meta.interval_seconds, meta.key)
        frame = with_realized_vol(frame, meta.interval_seconds, meta.realized_vol_window)
        frame = frame.select(TAPE_COLUMNS)
        validate_frame(frame, dest, derived=True)
        return frame, notes

    def _import_funding(self, raw: RawFunding) -> ImportResult:
        base, quote = parse_symbol(raw.symbol)
        dest = self.funding_path(raw.venue, raw.symbol)
        frame = raw.frame
        sources: tuple[Source, ...] = ()
        before = 0
        if dest.exists():
            old, old_meta = read_funding(dest)
            before = old.height
            sources = old_meta.sources
            label = f"the stored funding {dest} (from {', '.join(s.path for s in sources)})"
            frame = merge_rows(old, frame, ("funding_rate",), new_path=raw.source.path,
                               old_label=label, abs_tol=1e-12)
        if raw.source.sha256 not in {s.sha256 for s in sources}:
            sources = (*sources, raw.source)
        ts = frame["timestamp"].dt.epoch("ms").to_numpy()
        seconds = median_spacing_seconds(ts) or raw.funding_interval_seconds
        meta = FundingMeta(raw.venue, f"{base}/{quote}", base, quote, seconds, sources)
        warnings = list(raw.warnings)
        rewrites = []
        for tape_file in sorted(dest.parent.glob("*.parquet")):
            if tape_file.name == "funding.parquet" or tape_file.name.startswith("."):
                continue
            tape = Tape.from_parquet(tape_file)
            new_frame, notes = self._finish(tape.frame, frame, tape.meta, tape_file)
            rewrites.append((tape_file, new_frame, tape.meta))
            warnings.extend(notes)
        with contextlib.ExitStack() as stack:
            tmp = stack.enter_context(atomic_path(dest))
            write_funding(tmp, frame, meta)
            for tape_file, new_frame, tape_meta in rewrites:
                write_tape(stack.enter_context(atomic_path(tape_file)), new_frame, tape_meta)
        return ImportResult(
            source=raw.source.path, kind="funding",
            key=f"{raw.venue}/perp/{base}-{quote}/funding", path=dest,
            rows_in_file=raw.frame.height, rows_added=frame.height - before,
            rows_total=frame.height, start=ms_to_datetime(ts[0]), end=ms_to_datetime(ts[-1]),
            gaps=find_gaps(ts, seconds, slack_ms=seconds * 500), warnings=warnings,
            updated=[r[0] for r in rewrites])

    # queries ----------------------------------------------------------------

    def _info(self, path: Path) -> TapeInfo:
        try:
            schema = pq.read_schema(path)
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise TapeError(f"not a readable Parquet file ({exc})", path) from None
        meta = TapeMeta.from_metadata(schema.metadata, path)
        table = _read_parquet_columns(path, ["timestamp", "funding_rate"])
        ts = pl.from_arrow(table.column("timestamp")).dt.epoch("ms").to_numpy()
        if ts.size == 0:
            raise TapeError("no rows", path)
        step = meta.interval_seconds * 1000
        return TapeInfo(
            venue=meta.venue, market=meta.market, symbol=meta.symbol, interval=meta.interval,
            interval_seconds=meta.interval_seconds, start=ms_to_datetime(ts[0]),
            end=ms_to_datetime(ts[-1] + step), rows=int(ts.size),
            n_gaps=len(find_gaps(ts, meta.interval_seconds)),
            has_funding=table.column("funding_rate").null_count < table.num_rows, path=path)

    def list(self) -> list[TapeInfo]:
        """Return a summary of every tape in the store, sorted by key.

        Returns
        -------
        list of TapeInfo

        Raises
        ------
        TapeError
            If a stored file is unreadable or lacks liqbt metadata.
        """
        return [self._info(p) for p in self._tape_files()]

    def list_funding(self) -> list[FundingInfo]:
        """Return a summary of every stored funding series, sorted by path."""
        out = []
        files = sorted(self.root.glob("*/perp/*/funding.parquet")) if self.root.is_dir() else []
        for path in files:
            frame, meta = read_funding(path)
            ts = frame["timestamp"].dt.epoch("ms").to_numpy()
            out.append(FundingInfo(meta.venue, meta.symbol, meta.funding_interval_seconds,
                                   ms_to_datetime(ts[0]), ms_to_datetime(ts[-1]),
                                   frame.height, path))
        return out

    def _describe(self, infos: list[TapeInfo]) -> str:
        if not infos:
            return "nothing"
        return "; ".join(f"{i.key} {i.start:%Y-%m-%d %H:%M} .. {i.end:%Y-%m-%d %H:%M}"
                         for i in infos)

    def load(self, venue: str, market: str, symbol: str, interval: str) -> Tape:
        """Load and validate one tape.

        Parameters
        ----------
        venue : str
            Exchange (``"binance"``).
        market : {"spot", "perp"}
        symbol : str
            ``"BTC/USDT"`` or ``"BTC"`` (quote USDT).
        interval : str
            ``"1m"``, ``"1h"``, ...

        Returns
        -------
        Tape

        Raises
        ------
        TapeError
            If there is no such tape (listing what the store has for the symbol) or it is
            invalid.
        """
        path = self.tape_path(venue, market, symbol, interval)
        if not path.exists():
            base, quote = parse_symbol(symbol)
            have = [i for i in self.list() if i.symbol == f"{base}/{quote}"]
            raise TapeError(f"no tape {venue}/{market}/{base}-{quote}/{interval} in the store "
                            f"{self.root}; it has for {base}/{quote}: {self._describe(have)}")
        return Tape.from_parquet(path)

    def resolve(
        self,
        symbol: str,
        start: datetime | str,
        end: datetime | str,
        venue: str | None = None,
        market: str | None = None,
        interval: str | None = None,
    ) -> Tape:
        """Pick the tape for ``symbol`` that spans ``[start, end)`` entirely.

        Among the tapes matching the filters that cover the window (see :class:`Coverage`:
        they span it, and exchange outages inside it are allowed but no hole longer than a
        day), the finest interval wins; ties prefer perp over spot, then venue ``binance``,
        then venue name.

        Parameters
        ----------
        symbol : str
            ``"BTC/USDT"`` or ``"BTC"`` (quote USDT).
        start, end : datetime or str
            Window, UTC (naive values are UTC); ``end`` exclusive.
        venue, market, interval : str, optional
            Filters.

        Returns
        -------
        Tape
            The whole tape (use :meth:`Tape.window` to cut it).

        Raises
        ------
        TapeError
            If no tape covers the window, listing the store's tapes for the symbol and ranges.
        """
        base, quote = parse_symbol(symbol)
        lo, hi = _to_ms(start), _to_ms(end)
        if hi <= lo:
            raise TapeError(f"window end {format_ts(hi)} is not after its start {format_ts(lo)}")
        want = format_interval(parse_interval(interval)) if interval else None
        have = [i for i in self.list() if i.symbol == f"{base}/{quote}"]
        matching = [i for i in have
                    if (venue is None or i.venue == venue.lower())
                    and (market is None or i.market == market)
                    and (want is None or i.interval == want)]
        covering = [i for i in matching if self.coverage(i, lo, hi).status == "full"]
        if not covering:
            filters = ", ".join(f"{k}={v}" for k, v in
                                (("venue", venue), ("market", market), ("interval", interval))
                                if v)
            raise TapeError(
                f"no tape{' with ' + filters if filters else ''} in {self.root} covers "
                f"{base}/{quote} from {format_ts(lo)} to {format_ts(hi)}; the store has for "
                f"{base}/{quote}: {self._describe(have)}")
        covering.sort(key=lambda i: (i.interval_seconds, i.market != "perp",
                                     i.venue != "binance", i.venue))
        best = covering[0]
        return Tape.from_parquet(best.path)

    def coverage(self, info: TapeInfo, start: datetime | str | int,
                 end: datetime | str | int) -> Coverage:
        """Describe how a stored tape covers the window ``[start, end)``.

        Parameters
        ----------
        info : TapeInfo
            A tape from :meth:`list`.
        start, end : datetime, str or int
            Window, UTC (int: epoch ms); ``end`` exclusive.

        Returns
        -------
        Coverage
        """
        column = _read_parquet_columns(info.path, ["timestamp"]).column("timestamp")
        ts = pl.from_arrow(column).dt.epoch("ms").to_numpy()
        return window_coverage(ts, info.interval_seconds, start, end)


def _read_parquet_columns(path: Path, columns: list[str]) -> pa.Table:
    try:
        return pq.read_table(path, columns=columns)
    except (pa.ArrowException, OSError, ValueError, KeyError) as exc:
        raise TapeError(f"cannot read columns {columns} ({exc})", path) from None


__all__ = [
    "ARROW_SCHEMA", "MAX_MISSING_IN_WINDOW_MS", "Coverage", "FundingInfo", "FundingMeta",
    "ImportResult", "Tape", "TapeInfo", "TapeStore", "attach_funding", "is_importable",
    "merge_rows", "read_any", "read_funding", "window_coverage", "write_funding", "write_tape",
]
