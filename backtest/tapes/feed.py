"""Import an oracle price feed (a list of price updates) as candles of the price in force.

A lending protocol liquidates on its oracle, not on one venue's candle: on 2025-10-10 Binance's
BTC spot candle fell to 102,000 while the Chainlink BTC/USD feed that Morpho's cbBTC market on
Base reads bottomed at 105,107 (``docs/calibration.md``). A feed's history, as its rounds are
exported (``[updated_at, round_id, answer]``), becomes a tape that a run triggers on with
``[oracle] model = "mark"`` and ``mark_venue`` set to the feed's venue name.

**Candles of the price in force.** Between two updates the feed's price stays what the last
update set, so a candle of ``interval`` seconds starting at ``t`` has

- ``open``: the price in force at ``t`` (the last update at or before ``t``; the first candle,
  which starts at the first update's interval boundary, opens at that first update);
- ``high``, ``low``: the extremes of the open and of every update inside ``[t, t + interval)``;
- ``close``: the price in force at the candle's end;
- ``volume``: 0 (a feed trades nothing; a mark tape's volume is not read).

Candles run from the first update's candle to the last update's: the price stays in force
without updates, but not for longer than :data:`FEED_MAX_SILENCE_MS` (a day, the longest
heartbeat of the Chainlink feeds lending protocols read). A candle that ends later than that
after the last update is a hole in the export (an excerpt of several windows, a crawler's
outage), not a flat price: it is left out, and the tape store reports the gap.

Formats: CSV or Parquet with a time column (``updated_at``, ``timestamp``, ``ts``, ``time``:
epoch seconds or milliseconds, or ISO 8601) and a price column (``answer`` or ``price``); or
JSON, a list of ``[time, ..., price]`` arrays (time first, price last: Chainlink round
exports) or of records with those columns. Prices must be positive and finite; the first that
is not is named with its row.

**Order and same-time updates.** Updates come oldest first, or newest first as subgraph
exports list them (the first and last rows tell which). Several updates at one time are one
block's: Chainlink's FluxAggregator, which fed Aave v2 until March 2021, emitted a new answer
as each node's submission arrived, and an export does not keep their order inside the block,
so the price in force after it is taken as their median. A row out of the file's order is an
error that names it.

**Raw answers.** ``decimals`` scales integer answers (Chainlink's USD feeds have 8, its ETH
feeds 18); ``invert`` turns a feed that prices the quote in the base (Aave v2's oracle priced
USDT in ETH, ``USDT / ETH``) into the base in the quote (ETH in USDT), the tape's symbol.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from backtest.errors import TapeError
from backtest.records import positive_numbers, read_records
from backtest.tapes.schema import (
    OHLCV_COLUMNS,
    TIMESTAMP_DTYPE,
    RawTape,
    Source,
    file_sha256,
    parse_interval,
    parse_symbol,
    parse_time_strings,
    read_bytes,
    validate_frame,
)

FEED_TIME_COLUMNS = ("updated_at", "timestamp", "ts", "time")
FEED_PRICE_COLUMNS = ("answer", "price")
#: Longest silence a feed's price stays in force across, ms (module docstring).
FEED_MAX_SILENCE_MS = 86_400_000


def read_feed_updates(path: str | Path, data: bytes | None = None, *, decimals: int = 0,
                      invert: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Read a feed's updates: times (int64 epoch ms) and prices (float64), shape (N,).

    Times come back strictly increasing, one price per time (module docstring, "Order and
    same-time updates").

    Parameters
    ----------
    path : str or Path
        The feed export.
    data : bytes, optional
        Its bytes, if already read.
    decimals : int
        Decimals of the raw answers: each price is divided by ``10 ** decimals``.
    invert : bool
        Return ``1 / price`` (after scaling): the feed prices the tape's quote in its base.

    Raises
    ------
    TapeError
        Unreadable file, unknown format, a missing time or price column, a value that is not a
        number or date-time, a price that is not positive, or a time earlier than the previous
        row's in a file that is in neither order (the message names the row).
    """
    path = Path(path)
    data = read_bytes(path) if data is None else data
    try:
        frame = read_records(path, data, "feed")
    except ValueError as exc:
        raise TapeError(str(exc), path) from None
    if frame.columns and all(c.isdigit() for c in frame.columns):  # [time, ..., price] arrays
        frame = frame.select(pl.col("0").alias("time"), pl.col(frame.columns[-1]).alias("price"))
    lower = {c.lower(): c for c in reversed(frame.columns)}
    cols = {}
    for role, names in (("time", FEED_TIME_COLUMNS), ("price", FEED_PRICE_COLUMNS)):
        found = next((lower[c] for c in names if c in lower), None)
        if found is None:
            raise TapeError(f"no {role} column: expected one of {', '.join(names)} (has: "
                            f"{', '.join(frame.columns)})", path)
        cols[role] = found
    if frame.height == 0:
        raise TapeError("no updates", path)
    ms = parse_time_strings(frame[cols["time"]].cast(pl.String), path, "time")
    try:
        values = positive_numbers(frame[cols["price"]], "price")
    except ValueError as exc:
        raise TapeError(str(exc), path) from None
    newest_first = ms[0] > ms[-1]
    back = np.flatnonzero(np.diff(ms) > 0 if newest_first else np.diff(ms) < 0)
    if back.size:
        raise TapeError(f"row {int(back[0]) + 1}: update time is "
                        f"{'later' if newest_first else 'earlier'} than the previous row's "
                        "(updates must be in time order, oldest or newest first)", path)
    if newest_first:
        ms, values = ms[::-1], values[::-1]
    times, first = np.unique(ms, return_index=True)
    if times.size < ms.size:  # one block's updates: their median (module docstring)
        values = np.array([np.median(v) for v in np.split(values, first[1:])])
    values = values / 10.0 ** decimals
    return times, 1.0 / values if invert else values


def feed_candles(ms: np.ndarray, price: np.ndarray, interval_ms: int) -> pl.DataFrame:
    """Candles of the price in force (module docstring) from updates sorted by time.

    Parameters
    ----------
    ms : numpy.ndarray of int64, shape (N,)
        Update times, epoch ms, strictly increasing.
    price : numpy.ndarray of float64, shape (N,)
        Prices set by each update (USD per unit).
    interval_ms : int
        Candle length, ms.

    Returns
    -------
    polars.DataFrame
        :data:`OHLCV_COLUMNS`, one row per interval from the first update's to the last's,
        less those more than :data:`FEED_MAX_SILENCE_MS` after an update.
    """
    bucket = ms // interval_ms
    starts = np.arange(bucket[0], bucket[-1] + 1, dtype=np.int64)
    # the last update at or before each candle's end: the price in force at its close (a
    # candle without an update keeps the previous one's)
    last = np.searchsorted(bucket, starts, side="right") - 1
    close = price[last]
    open_ = np.empty_like(close)
    open_[0] = price[0]
    open_[1:] = close[:-1]
    high, low = open_.copy(), open_.copy()
    for_candle = bucket - bucket[0]
    np.maximum.at(high, for_candle, price)
    np.minimum.at(low, for_candle, price)
    held = (starts + 1) * interval_ms - ms[last] <= FEED_MAX_SILENCE_MS
    return pl.DataFrame({
        "timestamp": pl.Series(starts * interval_ms, dtype=pl.Int64).cast(TIMESTAMP_DTYPE),
        "open": open_, "high": high, "low": low, "close": close,
        "volume": np.zeros(starts.size),
    }).select(OHLCV_COLUMNS).filter(pl.Series(held))


def read_feed(path: str | Path, *, venue: str, symbol: str, interval: str,
              market: str = "spot", decimals: int = 0, invert: bool = False) -> RawTape:
    """Read a feed file into validated candles of ``interval`` (see the module docstring).

    Parameters
    ----------
    path : str or Path
        The feed export.
    venue : str
        Name the tape is stored under (e.g. ``chainlink-base``): a run's ``[oracle]
        mark_venue``.
    symbol : str
        ``BASE/QUOTE`` the feed prices.
    interval : str
        Candle interval, e.g. ``5m``: that of the run's tape.
    market : {"spot", "perp"}
        Market the tape is filed under (a mark tape is read as ``[oracle] mark_market``).
    decimals, invert
        As :func:`read_feed_updates`.

    Raises
    ------
    TapeError
        As :func:`read_feed_updates`, or an invalid interval or symbol.
    """
    path = Path(path)
    data = read_bytes(path)
    ms, price = read_feed_updates(path, data, decimals=decimals, invert=invert)
    try:
        seconds = parse_interval(interval)
        base, quote = parse_symbol(symbol)
    except TapeError as exc:
        raise TapeError(exc.detail, path) from None
    frame = feed_candles(ms, price, seconds * 1000)
    validate_frame(frame, path)
    return RawTape(frame, venue, market, f"{base}/{quote}", interval,
                   Source(str(path), file_sha256(data), int(ms.size)))
