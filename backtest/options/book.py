"""The options book schema: one row per leg, read from and written to Parquet.

=============  ==================  =========================================================
column         type                meaning
=============  ==================  =========================================================
account_id     int64               account the leg belongs to
underlying     string              underlying symbol, e.g. ``BTC``, ``ETH`` (one per account)
option_type    string              ``call`` or ``put`` (European)
strike         float64             USD, > 0
expiry         timestamp[ms, UTC]  expiry (settlement) time
quantity       float64             signed, underlying units; > 0 long, < 0 short, != 0
cash_usd       float64             the account's USD balance (the same on each of its legs)
=============  ==================  =========================================================

An account's equity is ``cash_usd + sum(quantity x mark)`` with each leg marked by Black-76
(:mod:`backtest.options.black76`). An account holds at most one leg per instrument
(underlying, option_type, strike, expiry), all on one underlying (portfolio margin per
settlement currency, as Deribit's segregated portfolio margin).

Parquet key-value metadata (``liqbt.*``) records how a synthetic book was drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from backtest.books.io import as_utc, read_book_table, write_book_table
from backtest.errors import BookError

SCHEMA_VERSION = "1"
COLUMNS: dict[str, pl.DataType] = {
    "account_id": pl.Int64,
    "underlying": pl.String,
    "option_type": pl.String,
    "strike": pl.Float64,
    "expiry": pl.Datetime("ms", "UTC"),
    "quantity": pl.Float64,
    "cash_usd": pl.Float64,
}
OPTION_TYPES = ("put", "call")  # index = OptionType
INSTRUMENT_KEY = ("underlying", "option_type", "strike", "expiry")


@dataclass(frozen=True)
class OptionsBookArrays:
    """A book as kernel arrays: instruments, accounts and their legs (ragged).

    Attributes
    ----------
    underlyings : tuple of str
        Underlying symbols; ``inst_und`` indexes them (and the price / iv columns of a run).
    account_id : ndarray, shape (N,), int64
        Accounts in increasing id order.
    cash : ndarray, shape (N,), float64
        USD balances.
    account_und : ndarray, shape (N,), int64
        Underlying index of each account.
    leg_start : ndarray, shape (N + 1,), int64
        Legs of account ``a`` are ``leg_start[a]:leg_start[a + 1]``.
    leg_inst : ndarray, shape (L,), int64
        Instrument of each leg.
    leg_qty : ndarray, shape (L,), float64
        Signed quantity, underlying units.
    inst_und : ndarray, shape (I,), int64
    inst_call : ndarray, shape (I,), int8
        1 call, 0 put.
    inst_strike : ndarray, shape (I,), float64
        USD.
    inst_expiry_ms : ndarray, shape (I,), int64
        Epoch ms.
    """

    underlyings: tuple[str, ...]
    account_id: np.ndarray
    cash: np.ndarray
    account_und: np.ndarray
    leg_start: np.ndarray
    leg_inst: np.ndarray
    leg_qty: np.ndarray
    inst_und: np.ndarray
    inst_call: np.ndarray
    inst_strike: np.ndarray
    inst_expiry_ms: np.ndarray

    @property
    def n_accounts(self) -> int:
        """Number of accounts."""
        return int(self.cash.size)

    def copy(self) -> OptionsBookArrays:
        """Return a copy whose mutable state (``cash``, ``leg_qty``) is independent."""
        return OptionsBookArrays(
            self.underlyings, self.account_id, self.cash.copy(), self.account_und,
            self.leg_start, self.leg_inst, self.leg_qty.copy(), self.inst_und, self.inst_call,
            self.inst_strike, self.inst_expiry_ms)


@dataclass
class OptionsBook:
    """A validated options book and its metadata.

    Attributes
    ----------
    frame : polars.DataFrame
        Columns as in :data:`COLUMNS`, in that order, sorted by account_id (leg order kept).
    meta : dict of str to str
        ``liqbt.*`` metadata without the prefix.
    path : Path or None
        File it was read from.
    """

    frame: pl.DataFrame
    meta: dict[str, str]
    path: Path | None = None

    @property
    def n_accounts(self) -> int:
        """Number of distinct accounts."""
        return int(self.frame["account_id"].n_unique())

    def arrays(self, underlyings: Sequence[str] | None = None) -> OptionsBookArrays:
        """Return the kernel arrays (instruments in sorted key order, accounts by id).

        Parameters
        ----------
        underlyings : sequence of str, optional
            Order of the underlyings (the columns of the run's price arrays); default the
            book's underlyings sorted.

        Returns
        -------
        OptionsBookArrays

        Raises
        ------
        BookError
            If the book holds an underlying missing from ``underlyings``.
        """
        f = self.frame
        present = sorted(f["underlying"].unique().to_list())
        unds = tuple(underlyings) if underlyings is not None else tuple(present)
        missing = [u for u in present if u not in unds]
        if missing:
            raise BookError(f"the book holds options on {missing}, which the run does not "
                            f"price (underlyings given: {list(unds)})", self.path)
        und_index = {u: i for i, u in enumerate(unds)}
        inst = (f.select(INSTRUMENT_KEY).unique().sort(INSTRUMENT_KEY)
                .with_row_index("inst").with_columns(pl.col("inst").cast(pl.Int64)))
        legs = f.with_row_index("_row").join(inst, on=list(INSTRUMENT_KEY), how="left")
        legs = legs.sort(["account_id", "_row"])
        acc = legs.group_by("account_id", maintain_order=True).agg(
            pl.len().alias("n"), pl.col("cash_usd").first(), pl.col("underlying").first())
        counts = acc["n"].to_numpy().astype(np.int64)
        leg_start = np.zeros(counts.size + 1, np.int64)
        np.cumsum(counts, out=leg_start[1:])
        return OptionsBookArrays(
            underlyings=unds,
            account_id=acc["account_id"].to_numpy().astype(np.int64),
            cash=acc["cash_usd"].to_numpy().astype(np.float64).copy(),
            account_und=np.array([und_index[u] for u in acc["underlying"].to_list()],
                                 dtype=np.int64),
            leg_start=leg_start,
            leg_inst=legs["inst"].to_numpy().astype(np.int64).copy(),
            leg_qty=legs["quantity"].to_numpy().astype(np.float64).copy(),
            inst_und=np.array([und_index[u] for u in inst["underlying"].to_list()],
                              dtype=np.int64),
            inst_call=(inst["option_type"] == "call").cast(pl.Int8).to_numpy().astype(np.int8),
            inst_strike=inst["strike"].to_numpy().astype(np.float64),
            inst_expiry_ms=inst["expiry"].dt.epoch("ms").to_numpy().astype(np.int64),
        )


def validate_options_book(frame: pl.DataFrame, path: Path | str | None = None) -> pl.DataFrame:
    """Check an options book against the schema; return it canonical and sorted by account.

    Parameters
    ----------
    frame : polars.DataFrame
        Candidate book, one row per leg.
    path : Path or str, optional
        File name used in error messages.

    Returns
    -------
    polars.DataFrame

    Raises
    ------
    BookError
        Missing column, uncastable type, null or non-finite value, option_type not
        call/put, empty underlying, strike <= 0, quantity 0, an account whose legs differ in
        cash_usd or underlying, or a duplicated leg; the message names the file, row,
        account and field.
    """
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise BookError(f"missing column(s) {', '.join(missing)}", path)
    try:
        frame = frame.select([
            pl.col(c).cast(t, strict=True) if c != "expiry" else as_utc(frame, c)
            for c, t in COLUMNS.items()
        ])
    except (pl.exceptions.PolarsError, BookError) as exc:
        raise BookError(f"column types do not match the options book schema: {exc}",
                        path) from None
    by_account = pl.col("account_id")
    checks = [
        (pl.any_horizontal(pl.all().is_null()), "has an empty (null) field", None),
        (~pl.col("option_type").is_in(list(OPTION_TYPES)), "option_type must be 'call' or 'put'",
         "option_type"),
        (pl.col("underlying").str.len_chars() == 0, "underlying must not be empty",
         "underlying"),
        (~(pl.col("strike").is_finite() & (pl.col("strike") > 0)),
         "strike must be a positive number", "strike"),
        (~(pl.col("quantity").is_finite() & (pl.col("quantity") != 0)),
         "quantity must be a non-zero number (negative: short)", "quantity"),
        (~pl.col("cash_usd").is_finite(), "cash_usd must be a finite number", "cash_usd"),
        (pl.col("cash_usd").n_unique().over(by_account) > 1,
         "cash_usd differs between legs of the same account", "cash_usd"),
        (pl.col("underlying").n_unique().over(by_account) > 1,
         "an account holds options on one underlying only", "underlying"),
        (pl.struct(["account_id", *INSTRUMENT_KEY]).is_duplicated(),
         "duplicated leg (same account and instrument)", "strike"),
    ]
    for expr, message, field in checks:
        bad = frame.with_row_index("_row").filter(expr.fill_null(True))
        if bad.height:
            row = bad.row(0, named=True)
            raise BookError(
                f"row {row['_row']} (account_id {row['account_id']}): {message}"
                + (f" (got {row[field]!r})" if field else "")
                + (f"; {bad.height} rows affected" if bad.height > 1 else ""),
                path,
            )
    return frame.with_row_index("_row").sort(["account_id", "_row"]).drop("_row")


def read_options_book(path: str | Path) -> OptionsBook:
    """Read and validate an options book Parquet file.

    Raises
    ------
    BookError
        If the file is missing, unreadable, not Parquet, or violates the schema.
    """
    frame, meta = read_book_table(path)
    return OptionsBook(validate_options_book(frame, path), meta, Path(path))


def write_options_book(book: OptionsBook, path: str | Path) -> Path:
    """Write an options book atomically as Parquet (zstd), with its metadata.

    Returns
    -------
    Path
        ``path``.
    """
    return write_book_table(book.frame, {**book.meta, "schema_version": SCHEMA_VERSION,
                                         "kind": "options"}, path)
