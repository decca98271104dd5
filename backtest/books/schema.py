"""The book schema: one row per account, read from and written to Parquet.

=============  ==================  =========================================================
column         type                meaning
=============  ==================  =========================================================
account_id     int64               unique account identifier
product        string              ``perp`` (isolated-margin linear perp) or ``loan``
side           int8                +1 long, -1 short (loans are always +1: collateral long)
size           float64             position size in asset units, > 0
entry_price    float64             USD per unit when the position was opened, > 0
leverage       float64             notional / equity at entry, 1 .. 1,000; for a loan
                                   1 / (1 - loan-to-value), so LTV = 1 - 1 / leverage
entry_time     timestamp[ms, UTC]  when the position was opened
exit_time      timestamp[ms, UTC]  optional column: when the trader closes the position in
                                   full during the window (null: held through it); only for
                                   positions open at the window start
=============  ==================  =========================================================

The engine's single account model (``docs/books.md``): ``units = side x size``, equity at
entry ``size x entry_price / leverage`` (USD), ``cash = equity_at_entry - units x
entry_price``, and thereafter ``equity = cash + units x price``. A long perp or a loan has
negative cash (the borrowed quote); a short has positive cash.

Parquet key-value metadata (``liqbt.*``) records the symbol, the event, the seed and the
generator parameters of synthetic books.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from backtest.books.io import as_utc, read_book_table, write_book_table
from backtest.errors import BookError
from backtest.kernels.enums import Product

SCHEMA_VERSION = "1"
COLUMNS: dict[str, pl.DataType] = {
    "account_id": pl.Int64,
    "product": pl.String,
    "side": pl.Int8,
    "size": pl.Float64,
    "entry_price": pl.Float64,
    "leverage": pl.Float64,
    "entry_time": pl.Datetime("ms", "UTC"),
}
OPTIONAL_COLUMNS: dict[str, pl.DataType] = {"exit_time": pl.Datetime("ms", "UTC")}
"""Columns a book may hold (after :data:`COLUMNS`, in this order); nulls allowed."""
PRODUCTS = {"perp": Product.PERP, "loan": Product.LOAN}

MAX_LEVERAGE = 1_000.0
"""Largest leverage a book may hold. No venue with a preset here offers more than 200x (GMX's
0.5% minimum collateral factor, ``gmx-synthetics config/markets.ts``); Binance's top bracket
is 125x (https://www.binance.com/en/futures/trading-rules/perpetual/leverage-margin). Beyond
1,000x a value is a unit error (a percentage, a notional), not a position."""

MAX_NOTIONAL_USD = 1e12
"""Largest entry notional (``size x entry_price``, USD) of one account: above any venue's
whole open interest, so larger values are unit errors."""


@dataclass
class Book:
    """A validated book and its metadata.

    Attributes
    ----------
    frame : polars.DataFrame
        Columns as in :data:`COLUMNS`, in that order, then those of :data:`OPTIONAL_COLUMNS`
        it holds.
    meta : dict of str to str
        ``liqbt.*`` metadata without the prefix (symbol, event, seed, generator, ...).
    path : Path or None
        File it was read from.
    """

    frame: pl.DataFrame
    meta: dict[str, str]
    path: Path | None = None

    def __len__(self) -> int:
        return self.frame.height

    def arrays(self) -> dict[str, np.ndarray]:
        """Return the engine's state arrays, each shape (N,).

        Returns
        -------
        dict
            ``product`` (int8, :class:`Product`), ``units`` (float64, asset units),
            ``cash`` (float64, USD), ``equity_at_entry`` (float64, USD).
        """
        f = self.frame
        size = f["size"].to_numpy()
        entry = f["entry_price"].to_numpy()
        units = f["side"].to_numpy().astype(np.float64) * size
        equity = size * entry / f["leverage"].to_numpy()
        product = (f["product"] == "loan").cast(pl.Int8).to_numpy() * np.int8(Product.LOAN)
        return {
            "product": np.ascontiguousarray(product, dtype=np.int8),
            "units": units,
            "cash": equity - units * entry,
            "equity_at_entry": equity,
        }


def validate_book(frame: pl.DataFrame, path: Path | str | None = None) -> pl.DataFrame:
    """Check a book against the schema and return it with canonical dtypes and column order.

    Parameters
    ----------
    frame : polars.DataFrame
        Candidate book.
    path : Path or str, optional
        File name used in error messages.

    Returns
    -------
    polars.DataFrame

    Raises
    ------
    BookError
        Missing column, uncastable dtype, null or non-finite value, unknown product,
        side not +1/-1, a short loan, size <= 0, entry price <= 0, leverage < 1 or above
        :data:`MAX_LEVERAGE`, an entry notional above :data:`MAX_NOTIONAL_USD`, duplicated
        account_id, an ``exit_time`` not after the ``entry_time``, or no rows at all; the
        message names the file, row, account and field.
    """
    if frame.height == 0:
        raise BookError("the book has no accounts (0 rows): nothing to simulate", path)
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise BookError(f"missing column(s) {', '.join(missing)}", path)
    try:
        columns = {**COLUMNS, **{c: t for c, t in OPTIONAL_COLUMNS.items()
                                 if c in frame.columns}}
        frame = frame.select(
            [
                as_utc(frame, c) if isinstance(t, pl.Datetime) else pl.col(c).cast(t, strict=True)
                for c, t in columns.items()
            ]
        )
    except (pl.exceptions.PolarsError, BookError) as exc:
        raise BookError(f"column types do not match the book schema: {exc}", path) from None
    checks = [
        (pl.any_horizontal([pl.col(c).is_null() for c in COLUMNS]), "has an empty (null) field"),
        (~pl.col("product").is_in(list(PRODUCTS)), "product must be 'perp' or 'loan'"),
        (~pl.col("side").is_in([1, -1]), "side must be +1 (long) or -1 (short)"),
        ((pl.col("product") == "loan") & (pl.col("side") != 1), "a loan must have side +1"),
        (~(pl.col("size").is_finite() & (pl.col("size") > 0)), "size must be a positive number"),
        (
            ~(pl.col("entry_price").is_finite() & (pl.col("entry_price") > 0)),
            "entry_price must be a positive number",
        ),
        (
            ~(pl.col("leverage").is_finite() & (pl.col("leverage") >= 1)
              & (pl.col("leverage") <= MAX_LEVERAGE)),
            f"leverage must be a number >= 1 and at most {MAX_LEVERAGE:,.0f}",
        ),
        (
            pl.col("size") * pl.col("entry_price") > MAX_NOTIONAL_USD,
            f"size x entry_price must be at most {MAX_NOTIONAL_USD:,.0f} USD",
        ),
        (pl.col("account_id").is_duplicated(), "account_id is duplicated"),
    ]
    if "exit_time" in frame.columns:
        checks.append((pl.col("exit_time").is_not_null()
                       & (pl.col("exit_time") <= pl.col("entry_time")),
                       "exit_time must be after entry_time"))
    for expr, message in checks:
        bad = frame.with_row_index("_row").filter(expr.fill_null(True))
        if bad.height:
            row = bad.row(0, named=True)
            field = _field_of(message)
            raise BookError(
                f"row {row['_row']} (account_id {row['account_id']}): {message}"
                + (f" (got {row[field]!r})" if field else "")
                + (f"; {bad.height} rows affected" if bad.height > 1 else ""),
                path,
            )
    return frame


def _field_of(message: str) -> str | None:
    for c in (*COLUMNS, *OPTIONAL_COLUMNS):
        if message.startswith(c) or f" {c} " in f" {message} ":
            return c
    return None


def read_book(path: str | Path) -> Book:
    """Read and validate a book Parquet file.

    Raises
    ------
    BookError
        If the file is missing, unreadable, not Parquet, or violates the schema.
    """
    frame, meta = read_book_table(path)
    return Book(validate_book(frame, path), meta, Path(path))


def write_book(book: Book, path: str | Path) -> Path:
    """Write a book atomically as Parquet (zstd), with its metadata.

    Parameters
    ----------
    book : Book
    path : str or Path
        Destination; written under a temporary name and renamed when complete.

    Returns
    -------
    Path
    """
    return write_book_table(book.frame, {**book.meta, "schema_version": SCHEMA_VERSION}, path)


def describe_meta(meta: dict[str, str]) -> dict:
    """Return the book metadata with JSON-encoded values decoded."""
    out = {}
    for k, v in meta.items():
        try:
            out[k] = json.loads(v)
        except ValueError:
            out[k] = v
    return out
