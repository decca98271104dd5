"""Import a real lending book: positions rebuilt from a protocol's state into the book schema.

A risk team that holds its protocol's positions (rebuilt from chain events, a subgraph or a
dashboard export) runs them as they are instead of a synthetic draw. The input has one row
per position with its collateral (asset units, or USD at the file's valuation price) and its
debt (USD); every position becomes one loan of the book (:mod:`backtest.books.schema`)
opened at ``time`` at ``price``:

- ``size`` = collateral units (``collateral_usd / price`` when given in USD);
- ``entry_price`` = ``price``, ``leverage`` = ``1 / (1 - LTV)`` with ``LTV = debt /
  (size x price)``, so the engine's debt (``-cash = size x price x LTV``) is the position's
  debt to rounding, and its health at ``price`` is the protocol's;
- ``entry_time`` = ``time``: run the book from that time (a run config's ``start``).

Formats: CSV, Parquet, and JSON (a list of records, or an object holding the list under
``records_key``). Numbers may be strings (chain exports write big integers as strings).

Rows whose collateral and debt are both zero (closed positions) are skipped and counted.
A position with debt and no collateral, or with debt at or above its collateral's value, is
already insolvent: it is refused (the message names its row), since a book holds the
positions a crash starts from, not bad debt already realised.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl

from backtest.books.schema import COLUMNS, MAX_LEVERAGE, Book, validate_book
from backtest.errors import BookError
from backtest.records import as_numbers, read_records


@dataclass(frozen=True)
class PositionColumns:
    """Where the input keeps each position's collateral and debt.

    Attributes
    ----------
    collateral : str
        Column of the collateral amount.
    collateral_unit : {"asset", "usd"}
        ``asset``: units of the collateral asset; ``usd``: its value at the import price.
    debt : str
        Column of the debt, USD (a stablecoin debt counted at $1).
    records_key : str or None
        JSON only: the key of the object holding the list of positions.
    """

    collateral: str
    debt: str
    collateral_unit: Literal["asset", "usd"] = "asset"
    records_key: str | None = None


def read_positions(path: str | Path, cols: PositionColumns) -> pl.DataFrame:
    """Read a positions file into columns ``collateral`` and ``debt`` (float64).

    Returns
    -------
    polars.DataFrame
        One row per input row, in input order.

    Raises
    ------
    BookError
        Missing or unreadable file, unknown format, a missing column or records key, or a
        value that is not a number (the message names the row and column).
    """
    path = Path(path)
    try:
        raw = read_records(path, path.read_bytes(), "positions", cols.records_key)
    except OSError as exc:
        raise BookError(f"cannot read the file: {exc.strerror or exc}", path) from None
    except ValueError as exc:
        raise BookError(str(exc), path) from None
    out = {}
    for name, column in (("collateral", cols.collateral), ("debt", cols.debt)):
        if column not in raw.columns:
            raise BookError(f"no column {column!r} (columns: {', '.join(raw.columns)})", path)
        values = as_numbers(raw[column])
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise BookError(f"row {bad[0]}: column {column!r} is not a number (got "
                            f"{raw[column][int(bad[0])]!r}); {bad.size} rows affected", path)
        out[name] = values
    return pl.DataFrame(out)


def positions_to_book(positions: pl.DataFrame, price: float, time: datetime, symbol: str,
                      cols: PositionColumns, path: str | Path | None = None,
                      represents: str | None = None) -> tuple[Book, int]:
    """Turn positions (``collateral``, ``debt``) into a loans book opened at ``price``.

    Parameters
    ----------
    positions : polars.DataFrame
        From :func:`read_positions`: ``collateral`` (asset units or USD, per
        ``cols.collateral_unit``) and ``debt`` (USD), float64.
    price : float
        USD per collateral unit at ``time``: the price the file's USD values and healths were
        taken at.
    time : datetime
        When the state was read (UTC): every position's ``entry_time``.
    symbol : str
        The collateral's market, e.g. ``BTC/USDT``.
    cols : PositionColumns
    path : str or Path, optional
        Input file, for messages and metadata.
    represents : str, optional
        The protocol the book stands for (book metadata ``venue``: ``liqbt validate`` then
        shows that protocol's figures only).

    Returns
    -------
    Book
        The loans, account ids 0..n-1 in input order of the kept rows; metadata ``symbol``,
        ``source`` = ``imported``, ``positions_file``, ``price``, ``time`` and an empty
        ``calibration_fit_targets`` (no target fitted: every comparison is held out).
    int
        Rows skipped (collateral and debt both zero).

    Raises
    ------
    BookError
        Non-positive price, a time without a time zone, negative collateral or debt, debt
        without collateral, a position at or above 100% LTV, or one above the schema's
        leverage bound; no position left.
    """
    if not (np.isfinite(price) and price > 0):
        raise BookError(f"price must be a positive number of USD per unit, got {price!r}", path)
    if time.tzinfo is None:
        raise BookError("time needs a time zone, e.g. 2025-10-09T00:00:00Z", path)
    coll = positions["collateral"].to_numpy()
    debt = positions["debt"].to_numpy()
    units = coll / price if cols.collateral_unit == "usd" else coll
    closed = (units == 0) & (debt == 0)
    ltv = np.divide(debt, units * price, out=np.full_like(debt, np.inf), where=units > 0)
    problems = [
        ((coll < 0) | (debt < 0), "collateral and debt must not be negative"),
        ((units == 0) & (debt > 0), "debt without collateral: already bad debt"),
        (~closed & (ltv >= 1 - 1 / MAX_LEVERAGE),
         f"debt at or above {1 - 1 / MAX_LEVERAGE:.1%} of the collateral's value (LTV >= "
         "99.9%): insolvent or within a rounding of it"),
    ]
    for mask, message in problems:
        rows = np.flatnonzero(mask)
        if rows.size:
            r = int(rows[0])
            raise BookError(f"row {r}: {message} (collateral {coll[r]!r} {cols.collateral_unit},"
                            f" debt {debt[r]!r} USD, at {price} USD per unit); {rows.size} rows "
                            "affected", path)
    keep = ~closed
    if not keep.any():
        raise BookError("no open position (every row has zero collateral and zero debt)", path)
    n = int(keep.sum())
    frame = pl.DataFrame({
        "account_id": np.arange(n, dtype=np.int64),
        "product": ["loan"] * n,
        "side": np.ones(n, dtype=np.int8),
        "size": units[keep],
        "entry_price": np.full(n, float(price)),
        "leverage": 1.0 / (1.0 - ltv[keep]),
        "entry_time": [time] * n,
    }).select(list(COLUMNS))
    meta = {"symbol": symbol, "source": "imported", "price": repr(float(price)),
            "time": time.isoformat(), "calibration_fit_targets": "[]"}
    if path is not None:
        meta["positions_file"] = str(path)
    if represents:
        meta["venue"] = represents
    return Book(validate_book(frame, path), meta, None), int(closed.sum())
