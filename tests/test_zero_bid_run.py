"""End to end: a vault book under `maker-flip` with costly gas deals small lots to zero bids,
and the comparison sums them as "Collateral sold for zero bids" (zero_bid_collateral_usd)."""

from __future__ import annotations

import polars as pl
import pytest

from backtest.books import BookParams
from backtest.calibration.compare import RunFacts
from backtest.calibration.sources import RunTables
from backtest.results import Catalog
from tests.loan_world import loan_run


@pytest.fixture(scope="module")
def flip_run(tmp_path_factory):
    params = BookParams(loan_fraction=1.0, ltv_min=0.0, ltv_max=0.6667, ltv_beta_a=3.0,
                        ltv_beta_b=3.0, loan_collateral_median_usd=2_000.0,
                        survivor_liquidation_threshold=0.6667)
    return loan_run(tmp_path_factory.mktemp("flip"), params, ["maker-eth-a", "maker-flip"],
                    "[keepers]\nrequires_profit = true\ngas_price_gwei = 300\n"
                    "eth_price_usd = 200\n")


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
