"""Import Binance public kline files (https://data.binance.vision).

Files are named ``BTCUSDT-1m-2021-05-19.csv`` (daily) or ``BTCUSDT-1m-2021-05.zip`` (monthly);
a ``.zip`` holds exactly one CSV. Each row has 12 columns: ``open_time, open, high, low,
close, volume, close_time, quote_volume, count, taker_buy_volume, taker_buy_quote_volume,
ignore``. Older files have no header row, newer ones do. ``open_time`` is in milliseconds, or
in microseconds for files since 2025 (detected per value by magnitude). Spot and USDT-M
futures files share the layout, so the market comes from the ``market`` option (default spot).
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from backtest.errors import TapeError
from backtest.tapes.schema import (
    OHLCV_COLUMNS,
    RawTape,
    Source,
    build_ohlcv_frame,
    cast_numeric,
    choose,
    epoch_to_ms,
    file_sha256,
    parse_symbol,
    read_bytes,
    split_concatenated_symbol,
    validate_frame,
)

KLINE_COLUMNS = (
    "open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume",
    "count", "taker_buy_volume", "taker_buy_quote_volume", "ignore",
)
"""The 12 columns of a Binance kline CSV, in order."""

_NAME_RE = re.compile(
    r"^(?P<symbol>[A-Za-z0-9]+)-(?P<interval>\d+[smhdw])-(?P<date>\d{4}-\d{2}(?:-\d{2})?)"
    r"\.(?P<ext>csv|zip)$", re.IGNORECASE,
)


@dataclass(frozen=True)
class BinanceName:
    """What a Binance kline file name says.

    Attributes
    ----------
    raw_symbol : str
        Symbol as written (``"BTCUSDT"``).
    base, quote : str
        Split with :data:`backtest.tapes.schema.KNOWN_QUOTES`.
    interval : str
        Kline interval (``"1m"``).
    date : str
        ``YYYY-MM-DD`` (daily file) or ``YYYY-MM`` (monthly file).
    """

    raw_symbol: str
    base: str
    quote: str
    interval: str
    date: str

    @property
    def symbol(self) -> str:
        """``"BASE/QUOTE"``."""
        return f"{self.base}/{self.quote}"


def parse_binance_name(path: str | Path) -> BinanceName | None:
    """Parse a data.binance.vision kline file name.

    Parameters
    ----------
    path : str or Path
        Only the file name is used; a ``__``-separated prefix is ignored.

    Returns
    -------
    BinanceName or None
        None if the name does not match ``SYMBOL-INTERVAL-DATE.csv|zip`` or the symbol does not
        end with a known quote asset.
    """
    m = _NAME_RE.match(Path(path).name.split("__")[-1])
    if not m:
        return None
    split = split_concatenated_symbol(m.group("symbol"))
    if split is None:
        return None
    return BinanceName(m.group("symbol").upper(), split[0], split[1], m.group("interval"),
                       m.group("date"))


def _csv_bytes(path: Path, data: bytes) -> bytes:
    if not path.name.lower().endswith(".zip"):
        return data
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            members = [i for i in zf.infolist() if not i.is_dir()]
            if len(members) != 1 or not members[0].filename.lower().endswith(".csv"):
                names = ", ".join(i.filename for i in members) or "nothing"
                raise TapeError(f"expected a zip holding one CSV file, found {names}", path)
            return zf.read(members[0])
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise TapeError(f"not a readable zip file ({exc})", path) from None


def read_binance_frame(path: str | Path, data: bytes | None = None) -> pl.DataFrame:
    """Read a Binance kline CSV or zip into :data:`OHLCV_COLUMNS`, in file order.

    Parameters
    ----------
    path : str or Path
        ``.csv`` or ``.zip`` file.
    data : bytes, optional
        The file's bytes if already read.

    Returns
    -------
    polars.DataFrame
        ``timestamp`` datetime[ms, UTC] (open time) and float64 ``open``..``volume``;
        not validated. Row numbers in errors count data rows from 0 (header excluded).

    Raises
    ------
    TapeError
        Unreadable file or zip, wrong column count, non-numeric values.
    """
    path = Path(path)
    data = read_bytes(path) if data is None else data
    text = _csv_bytes(path, data)
    first = text.lstrip()[:1]
    has_header = bool(first) and not (first.isdigit() or first == b"-")
    try:
        df = pl.read_csv(io.BytesIO(text), has_header=has_header, infer_schema=False,
                         raise_if_empty=False)
    except pl.exceptions.PolarsError as exc:
        raise TapeError(f"not a readable CSV file ({str(exc).splitlines()[0]})", path) from None
    if df.height == 0:
        raise TapeError("no rows", path)
    if df.width != len(KLINE_COLUMNS):
        raise TapeError(
            f"expected {len(KLINE_COLUMNS)} columns (Binance kline layout: "
            f"{', '.join(KLINE_COLUMNS)}), found {df.width}", path)
    df.columns = list(KLINE_COLUMNS)
    open_time = cast_numeric(df["open_time"], "open_time", path)
    nulls = open_time.is_null().to_numpy()
    if nulls.any():
        raise TapeError(f"row {int(np.argmax(nulls))} (no timestamp): timestamp is null", path)
    ts = epoch_to_ms(open_time.to_numpy())
    cols = {name: cast_numeric(df[name], name, path) for name in OHLCV_COLUMNS[1:]}
    return build_ohlcv_frame(ts, cols)


def read_binance(
    path: str | Path,
    *,
    venue: str | None = None,
    market: str | None = None,
    symbol: str | None = None,
    interval: str | None = None,
) -> RawTape:
    """Read a Binance public kline file.

    Parameters
    ----------
    path : str or Path
        ``SYMBOL-INTERVAL-DATE.csv`` or ``.zip``.
    venue : str, optional
        Default ``"binance"``.
    market : {"spot", "perp"}, optional
        Default ``"spot"`` (the layout does not say; futures files look the same).
    symbol : str, optional
        ``BASE/QUOTE``; default from the name; must agree with it if both are given.
    interval : str, optional
        Default from the name; must agree with it if both are given.

    Returns
    -------
    RawTape
        Validated candles.

    Raises
    ------
    TapeError
        Unreadable or invalid file, or options contradicting the file name.
    """
    path = Path(path)
    name = parse_binance_name(path)
    data = read_bytes(path)
    frame = read_binance_frame(path, data)
    if symbol is not None:
        symbol = "/".join(parse_symbol(symbol))
    symbol = choose("symbol", symbol, name.symbol if name else None, path)
    if symbol is None:
        raise TapeError("cannot parse the symbol from the file name; pass --symbol", path)
    interval = choose("interval", interval, name.interval if name else None, path)
    validate_frame(frame, path)
    source = Source(str(path), file_sha256(data), frame.height)
    return RawTape(frame, (venue or "binance").lower(), market or "spot", symbol, interval,
                   source)
