"""The multi-asset book generator, its Parquet schema, and the order comparison."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from backtest.errors import BookError, ConfigError
from backtest.kernels.portfolio_enums import AccountKind
from backtest.portfolio import (
    PortfolioBook,
    PortfolioBookParams,
    PortfolioParams,
    compare_orders,
    generate_portfolio_book,
    read_portfolio_book,
    write_portfolio_book,
)
from backtest.portfolio.book import book_frame, book_from_frame
from tests.portfolio_inputs import random_aligned


@pytest.fixture(scope="module")
def aligned():
    return random_aligned(np.random.default_rng(3), 48, crash=0.3)


def test_generator_is_seeded_and_reproducible(aligned):
    a = generate_portfolio_book(3000, aligned, seed=5)
    b = generate_portfolio_book(3000, aligned, seed=5)
    c = generate_portfolio_book(3000, aligned, seed=6)
    for name in ("kind", "offsets", "pos_asset", "pos_units", "cash", "owner"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.cash, c.cash)
    assert json.loads(a.meta["symbols"]) == list(aligned.symbols)


def test_generator_distributions(aligned):
    params = PortfolioBookParams()
    book = generate_portfolio_book(20000, aligned, seed=1, params=params)
    risk = PortfolioParams().asset_risk(aligned.symbols)
    counts = np.diff(book.offsets)
    kind = book.kind
    share = {k: float((kind == k).mean()) for k in AccountKind}
    assert share[AccountKind.LENDING] == pytest.approx(params.lending_fraction, abs=0.015)
    assert share[AccountKind.CROSS_PERP] == pytest.approx(params.cross_fraction, abs=0.015)
    assert np.all(counts[kind == AccountKind.ISOLATED_PERP] == 1)
    multi = counts[kind != AccountKind.ISOLATED_PERP]
    w = np.asarray(params.n_assets_weights) / sum(params.n_assets_weights)
    np.testing.assert_allclose(np.bincount(multi, minlength=5)[1:] / multi.size, w, atol=0.015)
    # everyone starts healthy at the open: lending HF >= LT/LTV / u_max, perps >= min health
    health = book.health(aligned.open[0], risk)
    lend = kind == AccountKind.LENDING
    floor = (risk["liquidation_threshold"] / risk["loan_to_value"]).min() / params.utilisation_max
    assert health[lend].min() >= floor * (1 - 1e-12) > 1
    assert health[~lend].min() >= params.min_start_health * (1 - 1e-12)
    # isolated traders hold several accounts under one owner
    iso_owner = book.owner[kind == AccountKind.ISOLATED_PERP]
    assert np.unique(iso_owner).size < iso_owner.size
    # popular assets appear more often (BTC weight 0.40 vs LUNA 0.15)
    per_asset = np.bincount(book.pos_asset, minlength=4)
    assert per_asset[aligned.symbols.index("BTC/USDT")] > per_asset[
        aligned.symbols.index("LUNA/USDT")]
    # perps lean long
    perp_units = book.pos_units[~lend[book.account_of_position()]]
    assert 0.55 < (perp_units > 0).mean() < 0.65


def test_parquet_round_trip(aligned, tmp_path):
    book = generate_portfolio_book(500, aligned, seed=2)
    path = write_portfolio_book(book, tmp_path / "book.parquet")
    back = read_portfolio_book(path)
    assert back.symbols == book.symbols
    for name in ("kind", "offsets", "pos_asset", "pos_units", "cash", "owner"):
        np.testing.assert_array_equal(getattr(back, name), getattr(book, name))
    assert back.meta["seed"] == "2"
    # another asset order maps positions to it
    rev = read_portfolio_book(path, symbols=list(reversed(aligned.symbols)))
    assert rev.symbols == tuple(reversed(aligned.symbols))
    np.testing.assert_array_equal(rev.pos_asset, 3 - book.pos_asset)


def _frame(aligned):
    return book_frame(generate_portfolio_book(50, aligned, seed=4))


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda f: f.drop("cash"), "missing column"),
    (lambda f: f.with_columns(pl.lit("margin").alias("kind")), "row 0 .* kind must be"),
    (lambda f: f.with_columns(pl.when(pl.int_range(pl.len()) == 3).then(float("nan"))
                              .otherwise(pl.col("units")).alias("units")),
     "row 3 .* units must be a finite"),
    (lambda f: f.with_columns(pl.lit("DOGE/USDT").alias("symbol")), "symbol is not one of"),
    (lambda f: f.with_columns(pl.lit("x").alias("units")), "column types"),
])
def test_bad_books_are_named(aligned, mutate, message):
    with pytest.raises(BookError, match=message):
        book_from_frame(mutate(_frame(aligned)), symbols=aligned.symbols)


def test_account_rules_are_named(aligned):
    f = _frame(aligned)
    multi = f.group_by("account_id").len().filter(pl.col("len") > 1)["account_id"][0]
    # cash differs between an account's rows
    bad = f.with_columns(pl.when((pl.col("account_id") == multi)
                                 & (pl.col("account_id").cum_count().over("account_id") == 2))
                         .then(pl.col("cash") + 1).otherwise(pl.col("cash")).alias("cash"))
    with pytest.raises(BookError, match=f"account_id {multi}\\): cash, kind and owner_id"):
        book_from_frame(bad, symbols=aligned.symbols)
    # rows of one account split apart
    split = pl.concat([f.head(1), f.slice(2), f.slice(1, 1)]) if f["account_id"][0] == f[
        "account_id"][1] else pl.concat([f.filter(pl.col("account_id") == multi).head(1),
                                         f.filter(pl.col("account_id") != multi),
                                         f.filter(pl.col("account_id") == multi).slice(1)])
    with pytest.raises(BookError, match="not contiguous"):
        book_from_frame(split, symbols=aligned.symbols)
    # a lending account holding a short position
    lend = f.filter(pl.col("kind") == "lending")["account_id"][0]
    short = f.with_columns(pl.when(pl.col("account_id") == lend).then(-pl.col("units"))
                           .otherwise(pl.col("units")).alias("units"))
    with pytest.raises(BookError, match=f"account \\d+ \\(owner {lend}\\) is a lending account "
                                        "with a negative"):
        book_from_frame(short, symbols=aligned.symbols)
    # an isolated account with two positions
    iso = f.filter(pl.col("kind") == "isolated")["account_id"][0]
    two = f.with_columns(pl.when(pl.col("account_id") == multi).then(pl.lit("isolated"))
                         .otherwise(pl.col("kind")).alias("kind"))
    with pytest.raises(BookError, match="isolated perp account with more than one position"):
        book_from_frame(two, symbols=aligned.symbols)
    assert iso is not None


def test_book_validate_catches_duplicate_assets(aligned):
    book = PortfolioBook(aligned.symbols, np.array([1], np.int8), np.array([0, 2]),
                         np.array([1, 1], np.int16), np.array([1.0, 2.0]), np.array([0.0]),
                         np.array([9]))
    with pytest.raises(BookError, match=r"account 0 \(owner 9\) holds the same asset twice"):
        book.validate()


def test_missing_asset_risk_is_a_config_error():
    with pytest.raises(ConfigError, match="asset DOGE/USDT has no risk parameters"):
        PortfolioParams().asset_risk(("DOGE/USDT",))
    with pytest.raises(ConfigError, match="field 'order'"):
        PortfolioParams.parse({"order": "smallest"})
    with pytest.raises(ConfigError, match="field 'assets.BTC'.*loan_to_value must be below"):
        PortfolioParams.parse({"assets": {"BTC": {
            "liquidation_threshold": 0.5, "loan_to_value": 0.6, "liquidation_bonus": 0.05,
            "maintenance_margin_rate": 0.03, "liquidation_penalty": 0.01}}})


def test_compare_orders_table(aligned):
    book = generate_portfolio_book(4000, aligned, seed=8)
    results = {}
    table = compare_orders(aligned, book, results=results)
    assert table.columns[:2] == ["order", "symbol"]
    assert table.height == 4 * 5
    assert set(results) == {"protocol", "least_sensitive", "largest", "proportional"}
    for order, res in results.items():
        rows = table.filter(pl.col("order") == order)
        total = rows.filter(pl.col("symbol") == "ALL")
        per = rows.filter(pl.col("symbol") != "ALL")
        s = res.summary()
        assert total["bad_debt_usd"][0] == pytest.approx(s["bad_debt_usd"], rel=1e-9)
        assert total["liquidated_notional_usd"][0] == pytest.approx(
            per["liquidated_notional_usd"].sum(), rel=1e-12)
        assert total["user_loss_usd"][0] == pytest.approx(
            s["keeper_fees_usd"] + s["insurance_fees_usd"], rel=1e-9)
        assert total["accounts_liquidated"][0] == int((res.n_liquidations > 0).sum())
    # the order changes which collateral is seized, not which accounts become liquidatable
    # first; the policies are not all identical on this crash
    seized = table.filter(pl.col("symbol") != "ALL").pivot(
        on="order", index="symbol", values="collateral_seized_usd")
    assert not np.allclose(seized["protocol"].to_numpy(), seized["largest"].to_numpy())
    assert table["bad_debt_vs_protocol"].drop_nulls().len() > 0


@pytest.mark.shared_data
def test_luna_2022_end_to_end(shared_data, tmp_path):
    """A small multi-asset book through the real LUNA collapse, every order policy."""
    from backtest.tapes import TapeStore
    from backtest.tapes.align import align_tapes

    store = TapeStore(tmp_path / "store")
    for name in ("ohlcv_1h/MoonEyes__freqtrade__043a6c2541__d99b6d65__LUNA_USDT-1h.json",
                 "ohlcv_5m/MoonEyes__freqtrade__c3e489f0b4__a78bd328__BTC_USDT-5m.json",
                 "ohlcv_5m/BestiaTantrica__freqtrade-bestia__111e2ac8c9__f0939ebd__ETH_USDT-5m"
                 ".feather",
                 "ohlcv_5m/BestiaTantrica__freqtrade-bestia__111e2ac8c9__f904bee2__SOL_USDT-5m"
                 ".feather"):
        store.import_file(shared_data / name, venue="binance")
    aligned = align_tapes(store, "luna-2022", missing="hold")
    book = generate_portfolio_book(5000, aligned, seed=7)
    path = write_portfolio_book(book, tmp_path / "luna.parquet")
    book = read_portfolio_book(path, symbols=aligned.symbols)
    results = {}
    table = compare_orders(aligned, book, results=results)
    luna = table.filter((pl.col("symbol") == "LUNA/USDT") & (pl.col("order") == "protocol"))
    assert luna["bad_debt_usd"][0] > 0  # LUNA collateral went to ~0: bad debt on it
    assert luna["collateral_seized_usd"][0] > 0 and luna["perp_closed_usd"][0] > 0
    res = results["protocol"]
    assert res.summary()["accounts_liquidated"] > 0.3 * book.n_accounts
    # the insurance fund starts empty: what its fees cannot cover is socialised
    assert res.socialised_loss.sum() <= res.summary()["bad_debt_usd"] + 1e-6
