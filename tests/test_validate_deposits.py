"""Borrowers' top-ups held against a real figure: ``borrower_deposits_usd`` is the new money the
response brings over the target's window (``steps.cure_usd``), for a run and for each cell of
a sweep (which keeps ``cure_usd`` among its per-step columns)."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

from backtest.books import BookParams
from backtest.calibration.compare import LABELS, RunFacts
from backtest.calibration.sources import RunTables
from backtest.results import Catalog
from backtest.sweep.runner import STEP_COLUMNS
from backtest.targets import MEASURES
from tests.loan_world import loan_run


@pytest.fixture(scope="module")
def vault_run(tmp_path_factory):
    params = BookParams(loan_fraction=1.0, ltv_min=0.3, ltv_max=0.6667, ltv_beta_a=3.0,
                        ltv_beta_b=2.0, survivor_liquidation_threshold=0.6667)
    return loan_run(tmp_path_factory.mktemp("deposits"), params, ["maker-eth-a"],
                    "[response]\nenabled = true\nshare = 0.9\ndelay_minutes = 10\n",
                    accounts=2_000)


def test_deposits_are_the_cures_over_the_window(vault_run):
    runs, run_id = vault_run
    start, end = datetime(2021, 5, 19, tzinfo=UTC), datetime(2021, 5, 19, 12, tzinfo=UTC)
    with Catalog(runs) as cat:
        steps = cat.query(f"SELECT timestamp, cure_usd FROM steps WHERE run_id = '{run_id}'")
        facts = RunFacts.from_manifest(cat.manifest(run_id))
        tables = RunTables(cat, run_id, facts)
        half = tables.figures(start, end, False, "loan")["maker-eth-a"]
        whole = tables.figures(facts.start, facts.end, True, "loan")["maker-eth-a"]
    ts = steps["timestamp"].dt.replace_time_zone(None)
    in_half = steps.filter((ts >= start.replace(tzinfo=None)) & (ts < end.replace(tzinfo=None)))
    assert steps["cure_usd"].sum() > 0
    assert whole["borrower_deposits_usd"] == pytest.approx(steps["cure_usd"].sum())
    assert half["borrower_deposits_usd"] == pytest.approx(in_half["cure_usd"].sum())
    assert half["borrower_deposits_usd"] < whole["borrower_deposits_usd"]


def test_the_debt_at_the_window_end_is_the_last_steps(vault_run):
    """``borrowed_after_usd``: the loans' debt after the window's last step, repayments and
    liquidations taken off (a perp book has none)."""
    runs, run_id = vault_run
    start, end = datetime(2021, 5, 19, tzinfo=UTC), datetime(2021, 5, 19, 12, tzinfo=UTC)
    with Catalog(runs) as cat:
        steps = cat.query(f"SELECT timestamp, loan_debt_usd FROM steps WHERE run_id = '{run_id}' "
                          "ORDER BY step")
        facts = RunFacts.from_manifest(cat.manifest(run_id))
        tables = RunTables(cat, run_id, facts)
        half = tables.figures(start, end, False, "loan")["maker-eth-a"]
        whole = tables.figures(facts.start, facts.end, True, "loan")["maker-eth-a"]
        perp = tables.figures(facts.start, facts.end, True, "perp")["maker-eth-a"]
    ts = steps["timestamp"].dt.replace_time_zone(None)
    in_half = steps.filter(ts < end.replace(tzinfo=None))
    assert whole["borrowed_after_usd"] == pytest.approx(steps["loan_debt_usd"][-1])
    assert half["borrowed_after_usd"] == pytest.approx(in_half["loan_debt_usd"][-1])
    assert whole["borrowed_after_usd"] < steps["loan_debt_usd"][0]  # cures repaid debt
    assert perp["borrowed_after_usd"] is None
    assert MEASURES["borrowed_after_usd"] == "USD" and LABELS["borrowed_after_usd"]


def test_the_measure_is_known_labelled_and_kept_by_sweep_cells():
    assert MEASURES["borrower_deposits_usd"] == "USD"
    assert LABELS["borrower_deposits_usd"] == "Borrowers' top-ups (new money)"
    assert "cure_usd" in STEP_COLUMNS


def test_a_sweep_without_cures_in_its_cells_gives_no_figure(tmp_path):
    """Cells written before they kept ``cure_usd`` or the fund's flows (or options cells) leave
    the measures empty rather than failing the query."""
    from backtest.calibration.sweep_sources import SweepTables

    class _Catalog:
        def __init__(self):
            self.sql = []

        def query(self, sql):
            self.sql.append(sql)
            if "LIMIT 0" in sql:
                return pl.DataFrame({"cell_id": [], "liquidated_notional_usd": []})
            return pl.DataFrame()

    cat = _Catalog()
    tables = SweepTables(cat, "s", "e", ["p"], None)
    fig = tables.figures(datetime(2021, 5, 19, tzinfo=UTC), datetime(2021, 5, 20, tzinfo=UTC),
                         False, "loan")
    assert fig["p"]["borrower_deposits_usd"] is None
    assert "CAST(NULL AS DOUBLE) AS borrower_deposits_usd" in cat.sql[-1]
    for measure in ("insurance_fund_drawn_usd", "insurance_fund_before_usd",
                    "insurance_fund_after_usd", "borrowed_after_usd"):  # nor the fund, the debt
        assert fig["p"][measure] is None
        assert f"CAST(NULL AS DOUBLE) AS {measure}" in cat.sql[-1]


def test_new_money_is_not_counted_as_retained_equity(vault_run):
    """``user_equity_retained`` is final equity over the equity at the window start *plus* the
    new money cures brought (counting a top-up as retained equity would reward a policy for
    its borrowers' deposits); ``borrower_deposits_usd`` is that new money."""
    runs, run_id = vault_run
    with Catalog(runs) as cat:
        row = cat.summary(run_id).row(0, named=True)
        acc = cat.query(f"SELECT sum(initial_equity_usd) AS e0, sum(final_equity_usd) AS e1, "
                        f"sum(cure_usd) AS cure FROM accounts WHERE run_id = '{run_id}'")
    e0, e1, cure = (float(acc[c][0]) for c in ("e0", "e1", "cure"))
    assert cure > 0.01 * e0  # the responders brought material new money
    assert row["borrower_deposits_usd"] == pytest.approx(cure, rel=1e-9)
    assert row["user_equity_retained"] == pytest.approx(e1 / (e0 + cure), rel=1e-9)
    assert row["user_equity_retained"] < e1 / e0


def test_targets_the_response_was_fitted_to_count_in_the_fit():
    """A run whose ``[response]`` names the targets its values were fitted to (Black
    Thursday's congested scenario: the owners' morning top-ups) reports them "in fit" beside
    the book's own; not when the response is switched off, and an uncalibrated book stays
    uncalibrated."""
    from backtest.engine.config import ResponseConfig

    def facts(book_fit, response):
        meta = {} if book_fit is None else {"calibration_fit_targets": book_fit}
        return RunFacts.from_manifest({
            "window": {"start": "2020-03-12T00:00:00+00:00", "end": "2020-03-14T00:00:00+00:00",
                       "event": "black-thursday-2020"},
            "book": {"meta": meta}, "symbol": "ETH/USDT",
            "config": {"resolved": {"response": response}}})

    topups = "black-thursday-2020/maker-eth-topups-morning"
    on = ResponseConfig(enabled=True, fitted_to=[topups]).model_dump(mode="json")
    assert facts('["black-thursday-2020/maker-eth-collateral"]', on).fit_keys == {
        "black-thursday-2020/maker-eth-collateral", topups}
    assert facts("[]", {**on, "enabled": False}).fit_keys == frozenset()
    assert facts(None, on).fit_keys is None
    with pytest.raises(ValueError, match="fitted_to"):
        ResponseConfig(fitted_to=["maker-eth-topups-morning"])  # no event
