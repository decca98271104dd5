"""End to end: a vault book under `maker-flip` with costly gas deals small lots to zero bids,
and the comparison sums them as "Collateral sold for zero bids" (zero_bid_collateral_usd)."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest

from backtest.books import BookParams, generate_book, write_book
from backtest.calibration.compare import RunFacts
from backtest.calibration.sources import RunTables
from backtest.engine.run import execute
from backtest.results import Catalog
from backtest.tapes import TapeStore
from tests.conftest import Synth
from tests.test_engine_run import START, crash_rows


@pytest.fixture(scope="module")
def flip_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("flip")
    src = Synth.ft_json(root / "src" / "BTC_USDT-5m.json", crash_rows())
    store = TapeStore(root / "tapes")
    store.import_file(src, venue="binance")
    tape = store.resolve("BTC/USDT", START - timedelta(days=8), START + timedelta(days=1))
    a = tape.arrays()
    params = BookParams(loan_fraction=1.0, ltv_min=0.0, ltv_max=0.6667, ltv_beta_a=3.0,
                        ltv_beta_b=3.0, loan_collateral_median_usd=2_000.0,
                        survivor_liquidation_threshold=0.6667)
    book = generate_book(3_000, a["timestamp"], a["close"], a["low"], a["high"], START, seed=5,
                         params=params, meta={"symbol": "BTC/USDT"})
    config = root / "run.toml"
    config.write_text(f"""
name = "flip-crash"
start = 2021-05-19T00:00:00Z
end = 2021-05-20T00:00:00Z
symbol = "BTC/USDT"
book = "{write_book(book, root / "book.parquet")}"
policies = ["maker-eth-a", "maker-flip"]
[tape]
venue = "binance"
interval = "5m"
[keepers]
requires_profit = true
gas_price_gwei = 300
eth_price_usd = 200
""")
    run_id, _ = execute(config, runs=root / "runs", store=root / "tapes", show_progress=False)
    return root / "runs", run_id


def test_zero_bids_are_recorded_and_compared(flip_run):
    runs, run_id = flip_run
    with Catalog(runs) as cat:
        liq = cat.query(f"SELECT policy, notional_usd, bad_debt_usd, insurance_fee_usd, zero_bid "
                        f"FROM liquidations WHERE run_id = '{run_id}'")
        facts = RunFacts.from_manifest(cat.manifest(run_id))
        figures = RunTables(cat, run_id, facts).figures(facts.start, facts.end, True, "loan")
    zero = liq.filter(pl.col("zero_bid"))
    assert zero.height > 0 and set(zero["policy"].cast(str)) == {"maker-flip"}
    assert (zero["insurance_fee_usd"] == 0).all() and (zero["bad_debt_usd"] > 0).all()
    assert figures["maker-flip"]["zero_bid_collateral_usd"] == pytest.approx(
        zero["notional_usd"].sum())
    assert figures["maker-eth-a"]["zero_bid_collateral_usd"] == 0.0
