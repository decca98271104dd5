"""Importing a real lending book: each position keeps its debt and health, runs liquidate it
where the protocol's rule says, and bad files are named."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from backtest.books import read_book
from backtest.books.positions import PositionColumns, positions_to_book, read_positions
from backtest.cli import main
from backtest.engine.run import execute
from backtest.errors import BookError
from backtest.tapes import TapeStore
from tests.conftest import Synth
from tests.test_engine_run import START, crash_rows

PRICE = 40_000.0
AT = datetime(2021, 5, 18, tzinfo=UTC)
CSV = PositionColumns("collateral", "debt")


def _debt(book) -> np.ndarray:
    return -book.arrays()["cash"]  # the engine's debt of each loan, USD


def test_each_position_keeps_its_debt_and_its_health(tmp_path):
    rng = np.random.default_rng(5)
    units = rng.lognormal(0.0, 1.5, 500)
    ltv = rng.uniform(0.0, 0.85, 500)
    path = tmp_path / "p.csv"
    pl.DataFrame({"collateral": units, "debt": units * PRICE * ltv}).write_csv(path)
    book, skipped = positions_to_book(read_positions(path, CSV), PRICE, AT, "BTC/USDT", CSV)
    assert skipped == 0 and len(book) == 500
    np.testing.assert_allclose(_debt(book), units * PRICE * ltv, rtol=1e-12, atol=1e-6)
    np.testing.assert_array_equal(book.arrays()["units"], units)
    # Morpho's health at the import price, LLTV x collateral value / debt, is the file's
    health = 0.86 * units * PRICE / _debt(book)
    np.testing.assert_allclose(health[ltv > 0.01], 0.86 / ltv[ltv > 0.01], rtol=1e-12)
    assert book.meta["calibration_fit_targets"] == "[]"


def test_json_records_under_a_key_with_usd_collateral_and_string_numbers(tmp_path):
    path = tmp_path / "book.json"
    path.write_text(json.dumps({"price": PRICE, "positions": [
        {"user": "0xa", "collateral_usd": "40000", "borrow_usd": 30000.0},
        {"user": "0xb", "collateral_usd": 80000.0, "borrow_usd": "0"},
        {"user": "0xc", "collateral_usd": "0", "borrow_usd": "0"},  # closed: skipped
    ]}))
    cols = PositionColumns("collateral_usd", "borrow_usd", "usd", "positions")
    book, skipped = positions_to_book(read_positions(path, cols), PRICE, AT, "BTC/USDT", cols,
                                      path, represents="morpho-blue")
    assert skipped == 1
    np.testing.assert_allclose(book.arrays()["units"], [1.0, 2.0])
    np.testing.assert_allclose(_debt(book), [30_000.0, 0.0], atol=1e-9)
    assert book.meta["venue"] == "morpho-blue" and book.meta["source"] == "imported"


@pytest.mark.parametrize("content, cols, message", [
    ("collateral,debt\n1,2\n", PositionColumns("coll", "debt"), "no column 'coll'"),
    ("collateral,debt\n1,2\n1,x\n", CSV, "row 1: column 'debt' is not a number"),
    ("collateral,debt\n1,0\n1,40000\n", CSV, "row 1: debt at or above"),
    ("collateral,debt\n1,0\n0,5\n", CSV, "row 1: debt without collateral"),
    ("collateral,debt\n-1,0\n", CSV, "row 0: collateral and debt must not be negative"),
    ("collateral,debt\n0,0\n", CSV, "no open position"),
])
def test_bad_positions_are_named(tmp_path, content, cols, message):
    path = tmp_path / "p.csv"
    path.write_text(content)
    with pytest.raises(BookError, match=message) as info:
        positions_to_book(read_positions(path, cols), PRICE, AT, "BTC/USDT", cols, path)
    assert "p.csv" in str(info.value)


def test_bad_files_are_named(tmp_path):
    (tmp_path / "p.txt").write_text("x")
    with pytest.raises(BookError, match="unknown positions format"):
        read_positions(tmp_path / "p.txt", CSV)
    (tmp_path / "p.json").write_text('{"rows": []}')
    with pytest.raises(BookError, match="no key 'positions'"):
        read_positions(tmp_path / "p.json", PositionColumns("c", "d", records_key="positions"))
    with pytest.raises(BookError, match="--records-key"):
        read_positions(tmp_path / "p.json", CSV)


def crash_store(tmp_path) -> tuple[TapeStore, dict, float]:
    """The synthetic crash tape in a store; its arrays around START and the last close before."""
    store = TapeStore(tmp_path / "tapes")
    store.import_file(Synth.ft_json(tmp_path / "src" / "BTC_USDT-5m.json", crash_rows()),
                      "binance")
    a = store.resolve("BTC/USDT", START - timedelta(days=1), START + timedelta(days=1)).arrays()
    return store, a, float(a["close"][a["timestamp"] < int(START.timestamp() * 1000)][-1])


def run_imported_loans(tmp_path, ltv: np.ndarray, price: float, oracle: str = "") -> np.ndarray:
    """Import one-unit loans at ``ltv`` (CLI), run ``morpho-blue`` on the crash day; return
    which accounts were liquidated, in account order."""
    path, out = tmp_path / "p.csv", tmp_path / "book.parquet"
    pl.DataFrame({"collateral": np.ones(ltv.size), "debt": ltv * price}).write_csv(path)
    assert main(["book", "import", str(path), "-o", str(out), "--symbol", "BTC/USDT",
                 "--price", repr(price), "--time", "2021-05-18T23:55:00Z"]) == 0
    np.testing.assert_allclose(_debt(read_book(out)), ltv * price, rtol=1e-12)
    config = tmp_path / "run.toml"
    config.write_text(f"""
name = "imported"
start = 2021-05-19T00:00:00Z
end = 2021-05-20T00:00:00Z
symbol = "BTC/USDT"
book = "{out}"
policies = ["morpho-blue"]
[tape]
venue = "binance"
interval = "5m"
{oracle}
""")
    _, run_dir = execute(config, runs=tmp_path / "runs", store=tmp_path / "tapes",
                         show_progress=False)
    acc = pl.read_parquet(run_dir / "accounts.parquet").sort("account_id")
    return acc["liquidations"].to_numpy() > 0


def test_an_imported_book_is_liquidated_where_the_protocols_rule_says(tmp_path):
    """Morpho at LLTV 86%, liquidators in the step, the candle's low: a position is liquidated
    exactly when its LTV at the import price exceeds 0.86 x the window's low / that price."""
    _, a, price = crash_store(tmp_path)
    low = float(a["low"][a["timestamp"] >= int(START.timestamp() * 1000)].min())
    ltv = np.linspace(0.30, 0.85, 400)
    expected = ltv > 0.86 * low / price
    assert 0 < expected.sum() < 400  # the test has both kinds
    np.testing.assert_array_equal(run_imported_loans(tmp_path, ltv, price), expected)
