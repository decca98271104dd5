"""Synthetic multi-asset books, and their Parquet schema.

:func:`generate_portfolio_book` draws, from one ``numpy.random.Generator(PCG64(seed))`` in a
fixed order (same aligned tapes, parameters and seed give the same book, bit for bit):

- **kind**: lending with probability ``lending_fraction``, cross-margin perp with
  ``cross_fraction``, else isolated perp. A trader's isolated positions are separate accounts
  with one ``owner``: runs of ``isolated_positions_weights`` (1, 2, 3 positions) accounts.
- **number of assets** (lending and cross): ``k`` with probability
  ``n_assets_weights[k - 1]`` (truncated to the assets aligned, renormalised); isolated: 1.
- **which assets**: ``k`` distinct assets drawn without replacement with probabilities
  proportional to ``asset_weights`` (by base asset; ``default_asset_weight`` otherwise);
  their **weights** in the account are Dirichlet(``dirichlet_alpha``).
- **size**: collateral value (lending) or perp notional (perps) at the window's first open,
  lognormal with the given median and log-sd, clipped to ``[min_usd, max_usd]``.
- **lending debt**: ``utilisation x borrowing power`` with borrowing power ``sum(value_i x
  LTV_i)`` and utilisation ``u_min + (u_max - u_min) x Beta(a, b)``; the start health factor
  is then ``sum(value_i x LT_i) / debt >= min(LT_i / LTV_i) / u_max > 1``: every account starts
  healthy at the window's open.
- **perps**: each position long with probability ``long_fraction``; leverage (notional /
  equity) from ``leverage_choices`` / ``leverage_weights``, lowered where needed so that equity
  / maintenance margin >= ``min_start_health`` at the open.

Parquet layout (one row per position; account fields repeat on each of its rows):

=============  =========  ===============================================================
column         type       meaning
=============  =========  ===============================================================
account_id     int64      account; its rows are contiguous
owner_id       int64      trader (isolated accounts of one trader share it)
kind           string     ``lending`` | ``cross`` | ``isolated``
cash           float64    USD; lending: ``-debt`` (<= 0); perps: equity - sum(units x price)
symbol         string     ``BASE/QUOTE`` of the position's asset
units          float64    asset units; > 0 collateral / long, < 0 short (perps only)
=============  =========  ===============================================================

Metadata ``liqbt.kind = portfolio_book``, ``liqbt.symbols`` (JSON list, the asset order),
seed, event and generator parameters.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
from pydantic import Field, model_validator

from backtest.books.io import read_book_table, write_book_table
from backtest.errors import BookError
from backtest.kernels.portfolio_enums import AccountKind
from backtest.portfolio.model import KIND_NAMES, PortfolioBook, PortfolioParams
from backtest.strict import StrictModel
from backtest.tapes.align import AlignedTapes
from backtest.tapes.schema import parse_symbol

SCHEMA_VERSION = "1"
COLUMNS: dict[str, pl.DataType] = {
    "account_id": pl.Int64, "owner_id": pl.Int64, "kind": pl.String, "cash": pl.Float64,
    "symbol": pl.String, "units": pl.Float64,
}
"""Columns of a portfolio book file and their types."""


class PortfolioBookParams(StrictModel):
    """Distributions of the synthetic portfolio book (see the module docstring).

    Attributes
    ----------
    lending_fraction, cross_fraction : float
        Shares of lending and cross-margin accounts; the rest are isolated perps.
    isolated_positions_weights : list of float
        Probability that an isolated trader holds 1, 2, ... positions (one account each).
    n_assets_weights : list of float
        Probability of 1, 2, ... assets in a lending or cross account.
    asset_weights : dict of str to float
        Relative popularity of each base asset; ``default_asset_weight`` for others.
    dirichlet_alpha : float
        Concentration of the weights of the assets in one account (1: uniform on the simplex).
    lending_collateral_median_usd, lending_collateral_sigma : float
        Lognormal collateral value at the open: median (USD) and log-sd.
    perp_notional_median_usd, perp_notional_sigma : float
        Lognormal perp notional: median (USD) and log-sd.
    min_usd, max_usd : float
        Clip bounds of both sizes (USD).
    utilisation_min, utilisation_max, utilisation_beta_a, utilisation_beta_b : float
        Share of the borrowing power used: ``min + (max - min) x Beta(a, b)``.
    long_fraction : float
        Share of perp positions that are long.
    leverage_choices, leverage_weights : list of float
        Perp account leverage (total notional / equity) and weights.
    min_start_health : float
        Perps start with equity / maintenance margin at least this (> 1).
    """

    lending_fraction: float = Field(0.45, ge=0.0, le=1.0)
    cross_fraction: float = Field(0.35, ge=0.0, le=1.0)
    isolated_positions_weights: list[float] = [0.6, 0.25, 0.15]
    n_assets_weights: list[float] = [0.40, 0.30, 0.20, 0.10]
    asset_weights: dict[str, float] = {"BTC": 0.40, "ETH": 0.30, "SOL": 0.15, "LUNA": 0.15}
    default_asset_weight: float = Field(0.05, gt=0.0)
    dirichlet_alpha: float = Field(1.5, gt=0.0)
    lending_collateral_median_usd: float = Field(10_000.0, gt=0.0)
    lending_collateral_sigma: float = Field(1.8, ge=0.0)
    perp_notional_median_usd: float = Field(5_000.0, gt=0.0)
    perp_notional_sigma: float = Field(1.6, ge=0.0)
    min_usd: float = Field(20.0, gt=0.0)
    max_usd: float = Field(50_000_000.0, gt=0.0)
    utilisation_min: float = Field(0.05, gt=0.0, lt=1.0)
    utilisation_max: float = Field(0.98, gt=0.0, le=1.0)
    utilisation_beta_a: float = Field(4.0, gt=0.0)
    utilisation_beta_b: float = Field(2.5, gt=0.0)
    long_fraction: float = Field(0.6, ge=0.0, le=1.0)
    leverage_choices: list[float] = [1, 2, 3, 5, 10, 20]
    leverage_weights: list[float] = [0.10, 0.20, 0.20, 0.25, 0.17, 0.08]
    min_start_health: float = Field(1.2, gt=1.0)

    @model_validator(mode="after")
    def _check(self) -> PortfolioBookParams:
        if self.lending_fraction + self.cross_fraction > 1.0:
            raise ValueError("lending_fraction + cross_fraction must be <= 1")
        for name in ("isolated_positions_weights", "n_assets_weights", "leverage_weights"):
            w = getattr(self, name)
            if not w or any(x < 0 for x in w) or sum(w) <= 0:
                raise ValueError(f"{name} must be non-negative and not all zero")
        if len(self.leverage_choices) != len(self.leverage_weights):
            raise ValueError("leverage_choices and leverage_weights differ in length")
        if any(x < 1 for x in self.leverage_choices):
            raise ValueError("leverage choices must be >= 1")
        if any(w <= 0 for w in self.asset_weights.values()):
            raise ValueError("asset_weights must be positive")
        if self.utilisation_min >= self.utilisation_max:
            raise ValueError("utilisation_min must be < utilisation_max")
        if self.min_usd >= self.max_usd:
            raise ValueError("min_usd must be < max_usd")
        return self


def generate_portfolio_book(
    n_accounts: int,
    aligned: AlignedTapes,
    seed: int,
    params: PortfolioBookParams | None = None,
    risk: PortfolioParams | None = None,
) -> PortfolioBook:
    """Draw a synthetic multi-asset book open at the window's first open.

    Parameters
    ----------
    n_accounts : int
        Number of accounts, > 0.
    aligned : AlignedTapes
        Its symbols are the book's assets; ``open[0]`` prices every position (USD per unit).
    seed : int
        Seed of the random generator.
    params : PortfolioBookParams, optional
        Distributions (defaults documented in the module docstring and docs/portfolios.md).
    risk : PortfolioParams, optional
        Source of each asset's LT, LTV and maintenance margin rate (default parameters).

    Returns
    -------
    PortfolioBook
        Validated; every account healthy at ``aligned.open[0]``.

    Raises
    ------
    BookError
        If ``n_accounts`` is not positive.
    ConfigError
        If an asset has no risk parameters.
    """
    p = params or PortfolioBookParams()
    if n_accounts <= 0:
        raise BookError(f"the number of accounts must be positive, got {n_accounts}")
    symbols = aligned.symbols
    n_assets = len(symbols)
    rk = (risk or PortfolioParams()).asset_risk(symbols)
    p0 = np.asarray(aligned.open[0], dtype=np.float64)
    rng = np.random.Generator(np.random.PCG64(seed))
    n = int(n_accounts)
    # kinds and owners
    u = rng.random(n)
    kind = np.where(u < p.lending_fraction, AccountKind.LENDING,
                    np.where(u < p.lending_fraction + p.cross_fraction, AccountKind.CROSS_PERP,
                             AccountKind.ISOLATED_PERP)).astype(np.int8)
    owner = np.arange(n, dtype=np.int64)
    iso = np.flatnonzero(kind == AccountKind.ISOLATED_PERP)
    if iso.size:
        w = np.asarray(p.isolated_positions_weights, dtype=float)
        sizes = rng.choice(np.arange(1, w.size + 1), size=iso.size, p=w / w.sum())
        starts = np.cumsum(sizes) - sizes
        starts = starts[starts < iso.size]
        group = np.zeros(iso.size, dtype=np.int64)
        group[starts[1:]] = 1
        owner[iso] = iso[starts][np.cumsum(group)]
    # number of assets, which ones (weighted, without replacement: Gumbel top-k), weights
    w = np.asarray(p.n_assets_weights[:n_assets], dtype=float)
    k = rng.choice(np.arange(1, w.size + 1), size=n, p=w / w.sum())
    k[kind == AccountKind.ISOLATED_PERP] = 1
    popularity = np.array([p.asset_weights.get(parse_symbol(s)[0], p.default_asset_weight)
                           for s in symbols])
    keys = np.log(popularity)[None, :] + rng.gumbel(size=(n, n_assets))
    ranked = np.argsort(-keys, axis=1, kind="stable")
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(k, out=offsets[1:])
    acct = np.repeat(np.arange(n), k)
    slot = np.arange(offsets[-1]) - offsets[acct]
    pos_asset = ranked[acct, slot].astype(np.int16)
    g = rng.gamma(p.dirichlet_alpha, size=acct.size)
    share = g / np.bincount(acct, weights=g, minlength=n)[acct]
    # sizes
    lending = kind == AccountKind.LENDING
    z = rng.standard_normal(n)
    total = np.where(lending, p.lending_collateral_median_usd * np.exp(p.lending_collateral_sigma
                                                                       * z),
                     p.perp_notional_median_usd * np.exp(p.perp_notional_sigma * z))
    total = np.clip(total, p.min_usd, p.max_usd)
    value = total[acct] * share
    price = p0[pos_asset]
    units = value / price
    # lending debt from the borrowing power
    util = p.utilisation_min + (p.utilisation_max - p.utilisation_min) * rng.beta(
        p.utilisation_beta_a, p.utilisation_beta_b, n)
    power = np.bincount(acct, weights=value * rk["loan_to_value"][pos_asset], minlength=n)
    # perps: sides, leverage capped by the start health
    side = np.where(rng.random(acct.size) < p.long_fraction, 1.0, -1.0)
    lw = np.asarray(p.leverage_weights, dtype=float)
    lev = rng.choice(np.asarray(p.leverage_choices, dtype=float), size=n, p=lw / lw.sum())
    mm = np.bincount(acct, weights=value * rk["maintenance_margin_rate"][pos_asset], minlength=n)
    lev = np.minimum(lev, total / (p.min_start_health * mm))
    perp_units = units * side
    equity = total / lev
    cash = np.where(lending, -util * power,
                    equity - np.bincount(acct, weights=perp_units * price, minlength=n))
    pos_units = np.where(lending[acct], units, perp_units)
    meta = {"kind": "portfolio_book", "seed": str(seed), "accounts": str(n),
            "symbols": json.dumps(list(symbols)), "generator": json.dumps(p.model_dump()),
            "event": aligned.event or "", "window_start": aligned.start.isoformat()}
    return PortfolioBook(tuple(symbols), kind, offsets, pos_asset, pos_units, cash, owner,
                         meta).validate()


def book_frame(book: PortfolioBook) -> pl.DataFrame:
    """Return the book as a table in the Parquet layout (one row per position)."""
    acct = book.account_of_position()
    names = {int(v): k for k, v in KIND_NAMES.items()}
    return pl.DataFrame({
        "account_id": acct, "owner_id": book.owner[acct],
        "kind": pl.Series(book.kind[acct]).replace_strict(names, return_dtype=pl.String),
        "cash": book.cash[acct],
        "symbol": pl.Series(book.pos_asset.astype(np.int64)).replace_strict(
            dict(enumerate(book.symbols)), return_dtype=pl.String),
        "units": book.pos_units,
    })


def write_portfolio_book(book: PortfolioBook, path: str | Path) -> Path:
    """Write a portfolio book atomically as Parquet (zstd) with its metadata.

    Parameters
    ----------
    book : PortfolioBook
    path : str or Path
        Destination; written under a temporary name and renamed when complete.

    Returns
    -------
    Path
    """
    return write_book_table(book_frame(book), {
        **book.meta, "kind": "portfolio_book", "symbols": json.dumps(list(book.symbols)),
        "schema_version": SCHEMA_VERSION}, path)


def book_from_frame(frame: pl.DataFrame, symbols: tuple[str, ...] | list[str] | None = None,
                    source: str | Path | None = None, meta: dict | None = None
                    ) -> PortfolioBook:
    """Build and validate a :class:`PortfolioBook` from a table in the Parquet layout.

    Parameters
    ----------
    frame : polars.DataFrame
        Columns :data:`COLUMNS`; each account's rows contiguous.
    symbols : sequence of str, optional
        Asset order of the result (e.g. the aligned tapes'); default: order of appearance.
    source : str or Path, optional
        Named in errors.
    meta : dict, optional
        Metadata to keep.

    Returns
    -------
    PortfolioBook

    Raises
    ------
    BookError
        Missing column, wrong type, null or non-finite value, unknown kind or symbol, an
        account's rows not contiguous or with different cash/kind/owner, and every rule of
        :meth:`PortfolioBook.validate`; the message names the file, row and account.
    """
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise BookError(f"missing column(s) {', '.join(missing)}", source)
    try:
        frame = frame.select([pl.col(c).cast(t, strict=True) for c, t in COLUMNS.items()])
    except pl.exceptions.PolarsError as exc:
        raise BookError(f"column types do not match the portfolio book schema: {exc}",
                        source) from None
    if frame.height == 0:
        raise BookError("the book has no rows", source)
    names = list(symbols) if symbols is not None else frame["symbol"].unique(
        maintain_order=True).to_list()
    canon = []
    for s in names:
        try:
            base, quote = parse_symbol(s)
        except Exception:  # noqa: BLE001 - reported as a book error below
            raise BookError(f"symbol {s!r} is not BASE/QUOTE", source) from None
        canon.append(f"{base}/{quote}")
    rows = frame.with_row_index("_row")
    new_acct = pl.col("account_id") != pl.col("account_id").shift(1)
    checks = [
        (pl.any_horizontal(pl.all().is_null()), "has an empty (null) field"),
        (~pl.col("kind").is_in(list(KIND_NAMES)), "kind must be lending, cross or isolated"),
        (~pl.col("cash").is_finite(), "cash must be a finite number"),
        (~pl.col("units").is_finite() | (pl.col("units") == 0), "units must be a finite, "
                                                               "non-zero number"),
        (~pl.col("symbol").is_in(names), f"symbol is not one of {names}"),
        (~new_acct.fill_null(True) & ((pl.col("cash") != pl.col("cash").shift(1))
                                      | (pl.col("kind") != pl.col("kind").shift(1))
                                      | (pl.col("owner_id") != pl.col("owner_id").shift(1))),
         "cash, kind and owner_id must be the same on every row of an account"),
    ]
    for expr, message in checks:
        bad = rows.filter(expr.fill_null(True))
        if bad.height:
            r = bad.row(0, named=True)
            raise BookError(f"row {r['_row']} (account_id {r['account_id']}): {message}"
                            + (f"; {bad.height} rows affected" if bad.height > 1 else ""),
                            source)
    first = rows.filter(new_acct.fill_null(True))
    split = first.filter(first["account_id"].is_duplicated())
    if split.height:
        r = split.row(1, named=True)
        raise BookError(f"row {r['_row']} (account_id {r['account_id']}): the account's rows "
                        "are not contiguous", source)
    counts = np.diff(np.append(first["_row"].to_numpy(), frame.height))
    offsets = np.zeros(first.height + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    index = {s: i for i, s in enumerate(names)}
    pos_asset = frame["symbol"].replace_strict(index, return_dtype=pl.Int16).to_numpy()
    book = PortfolioBook(
        tuple(canon), first["kind"].replace_strict(
            {k: int(v) for k, v in KIND_NAMES.items()}, return_dtype=pl.Int8).to_numpy(),
        offsets, np.ascontiguousarray(pos_asset),
        np.ascontiguousarray(frame["units"].to_numpy(), dtype=np.float64),
        np.ascontiguousarray(first["cash"].to_numpy(), dtype=np.float64),
        np.ascontiguousarray(first["owner_id"].to_numpy()), dict(meta or {}))
    return book.validate(str(source) if source is not None else None)


def read_portfolio_book(path: str | Path, symbols: tuple[str, ...] | list[str] | None = None
                        ) -> PortfolioBook:
    """Read and validate a portfolio book Parquet file.

    Parameters
    ----------
    path : str or Path
    symbols : sequence of str, optional
        Asset order wanted (the aligned tapes'); default the file's ``liqbt.symbols``.

    Returns
    -------
    PortfolioBook

    Raises
    ------
    BookError
        Missing or unreadable file, or any schema violation (see :func:`book_from_frame`).
    """
    path = Path(path)
    frame, meta = read_book_table(path)
    if symbols is None and "symbols" in meta:
        try:
            symbols = json.loads(meta["symbols"])
        except ValueError:
            raise BookError("metadata liqbt.symbols is not a JSON list", path) from None
    return book_from_frame(frame, symbols, path, meta)


__all__ = ["COLUMNS", "PortfolioBookParams", "book_frame", "book_from_frame",
           "generate_portfolio_book", "read_portfolio_book", "write_portfolio_book"]
