"""Options runs are first-class catalog runs: `liqbt query`, `liqbt list runs`, the metrics."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from backtest.cli import main
from backtest.options.run_record import POLICY
from backtest.portfolio.pipeline import run_portfolio_config
from backtest.portfolio.run_config import load_portfolio_config
from backtest.results import METRICS, Catalog
from tests.test_portfolio_run import CONFIG, make_portfolio_world

#: A small portfolio book (the options run is the subject) and no options vs perps sample.
OVERRIDES = ["portfolio.accounts=100", "portfolio.orders=[\"protocol\"]",
             "options.accounts=300", "options.breach_accounts=0",
             # wide closing spreads and a fund: some liquidations leave bad debt, drawn
             "options.params.spread=0.6", "options.params.insurance_fund_usd=5000"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One portfolio run with an options book: a portfolio run and an options run."""
    tmp = tmp_path_factory.mktemp("options-catalog")
    w = make_portfolio_world(tmp, CONFIG)
    cfg = load_portfolio_config(w["config"], OVERRIDES)
    root = tmp / "runs"
    run_id, run_dir, manifest = run_portfolio_config(
        cfg, w["config"], runs=root, store=w["store"], events=w["events"],
        overrides=OVERRIDES)
    options_id = manifest["options_run_id"]
    options_dir = root / "options" / options_id
    options_manifest = json.loads((options_dir / "manifest.json").read_text())
    return {"root": root, "run_id": run_id, "manifest": manifest, "options_id": options_id,
            "options_dir": options_dir, "options_manifest": options_manifest}


def test_the_options_run_has_the_standard_manifest(runs):
    m = runs["options_manifest"]
    assert m["run_kind"] == "options" and m["run_id"] == runs["options_id"]
    assert m["run_id"] == runs["run_id"] + "-options"
    assert m["portfolio_run_id"] == runs["run_id"]
    assert m["book"]["accounts"] == 300 and m["symbol"] == "BTC, ETH"
    assert m["window"]["steps"] == runs["manifest"]["options_book"]["steps"] > 0
    assert [p["name"] for p in m["policies"]] == [POLICY]
    assert m["config_sha256"] == runs["manifest"]["config_sha256"] and m["versions"]["liqbt"]
    assert {p.name for p in runs["options_dir"].glob("*.parquet")} == {
        "steps.parquet", "accounts.parquet", "liquidations.parquet", "policies.parquet"}
    assert not [p for p in runs["root"].rglob(".*") if p.is_dir()]  # no temporaries left


def test_the_catalog_holds_three_kinds_of_rows(runs):
    with Catalog(runs["root"]) as cat:
        assert cat.problems == []
        rows = cat.query("SELECT run_id, run_kind, accounts, policies, symbol FROM runs "
                         "ORDER BY run_kind").rows()
        assert rows == [(runs["options_id"], "options", 300, [POLICY], "BTC, ETH"),
                        (runs["run_id"], "portfolio", 100, ["protocol"], rows[1][4])]
        for table in ("steps", "accounts", "liquidations", "policies"):
            n = cat.query(f"SELECT count(*) AS n, min(run_id) AS id FROM {table} "
                          "WHERE run_kind = 'options'")
            assert n["n"][0] > 0 and n["id"][0] == runs["options_id"], table
        assert cat.query("SELECT count(*) AS n FROM accounts WHERE run_kind = 'options'")[
            "n"][0] == 300


def test_step_totals_equal_the_studys_own_summary(runs):
    with Catalog(runs["root"]) as cat:
        got = cat.query(f"""
            SELECT sum(liquidations) AS liquidations,
                   max(accounts_liquidated_cum) AS accounts_liquidated,
                   sum(liquidated_notional_usd) AS liquidated_notional_usd,
                   sum(keeper_fees_usd) AS keeper_fees_usd,
                   sum(insurance_fees_usd) AS insurance_fees_usd,
                   sum(bad_debt_usd) AS bad_debt_usd,
                   sum(settlement_cash_usd) AS settlement_cash_usd,
                   arg_max(insurance_fund_usd, step) AS insurance_fund_end_usd
            FROM steps WHERE run_id = '{runs["options_id"]}'""").row(0, named=True)
    summary = runs["options_manifest"]["options_summary"]
    assert summary["liquidations"] > 0 and summary["liquidated_notional_usd"] > 0
    assert set(got) == set(summary)
    for key, value in got.items():
        assert value == pytest.approx(summary[key], rel=1e-9, abs=1e-6), key
    # the portfolio manifest's description of the study says the same
    book = runs["manifest"]["options_book"]["summary"]
    assert book["accounts_liquidated"] == summary["accounts_liquidated"]
    assert book["bad_debt_usd"] == pytest.approx(summary["bad_debt_usd"], abs=1e-9)


def test_registry_metrics_match_hand_sums_over_the_records(runs):
    with Catalog(runs["root"]) as cat:
        summary = cat.summary(runs["options_id"])
        liq = cat.query(f"SELECT * FROM liquidations WHERE run_id = '{runs['options_id']}'")
        acc = cat.query(f"SELECT * FROM accounts WHERE run_id = '{runs['options_id']}'")
        steps = cat.query(f"SELECT * FROM steps WHERE run_id = '{runs['options_id']}' "
                          "ORDER BY step")
    assert summary["policy"].to_list() == [POLICY] and summary["family"].to_list() == [POLICY]
    row = summary.row(0, named=True)
    assert liq.height > 0
    assert row["liquidations"] == liq.height
    assert row["accounts_liquidated"] == liq["account_id"].n_unique() == liq.height
    assert row["liquidated_notional_usd"] == pytest.approx(float(liq["notional_usd"].sum()),
                                                           rel=1e-9)
    assert row["peak_liquidated_notional_usd"] == pytest.approx(float(
        liq.group_by("step").agg(pl.col("notional_usd").sum())["notional_usd"].max()), rel=1e-9)
    assert row["penalties_usd"] == pytest.approx(
        float((liq["keeper_fee_usd"] + liq["insurance_fee_usd"]).sum()), rel=1e-9)
    assert row["bad_debt_usd"] == pytest.approx(float(liq["bad_debt_usd"].sum()),
                                                rel=1e-9, abs=1e-9)
    notional = float(acc["initial_notional_usd"].sum())
    assert notional > 0 and row["bad_debt_pct_notional"] == pytest.approx(
        row["bad_debt_usd"] / notional)
    assert row["user_equity_retained"] == pytest.approx(
        float(acc["final_equity_usd"].sum() / acc["initial_equity_usd"].sum()), rel=1e-9)
    assert row["user_loss_to_liquidation_usd"] == pytest.approx(
        float((acc["hold_equity_usd"] - acc["final_equity_usd"]).sum()), rel=1e-9)
    kept = acc.filter(pl.col("liquidations") == 0, pl.col("bad_debt_usd") == 0)
    assert (kept["hold_equity_usd"] == kept["final_equity_usd"].clip(lower_bound=0.0)).all()
    assert row["bad_debt_usd"] > 0 and row["insurance_draw_usd"] > 0
    assert row["insurance_draw_usd"] + row["socialised_loss_usd"] == pytest.approx(
        row["bad_debt_usd"], rel=1e-9, abs=1e-9)  # every dollar of bad debt is borne
    initial = float(runs["options_manifest"]["config"]["options"]["params"]["insurance_fund_usd"])
    assert row["insurance_fund_end_usd"] == pytest.approx(
        initial + float(liq["insurance_fee_usd"].sum()) - row["insurance_draw_usd"], abs=1e-6)
    for m in METRICS:
        assert (row[m.name] is None) == ("options" not in m.kinds), m.name
    # accounts agree with the records: one liquidation closes every leg of the account
    hit = acc.filter(pl.col("liquidations") > 0).sort("account_id")
    by_rec = liq.sort("account_id")
    assert hit["account_id"].to_list() == by_rec["account_id"].to_list()
    assert np.allclose(hit["penalties_usd"], by_rec["keeper_fee_usd"]
                       + by_rec["insurance_fee_usd"])
    assert set(hit["status"]) <= {"closed", "bankrupt"}
    assert set(acc.filter(pl.col("liquidations") == 0)["status"]) <= {"open"}
    assert (hit["final_equity_usd"] - hit["final_cash_usd"]).abs().max() < 1e-6  # no legs left
    assert steps["accounts_liquidated_cum"][-1] == hit.height


def test_portfolio_summary_is_unchanged_beside_the_options_run(runs, tmp_path):
    import shutil

    alone = tmp_path / "runs"
    shutil.copytree(runs["root"] / "portfolio", alone / "portfolio")
    with Catalog(alone) as cat:
        before = cat.summary(runs["run_id"])
    with Catalog(runs["root"]) as cat:
        after = cat.summary(runs["run_id"])
    assert after.equals(before) and before["liquidations"].sum() > 0


def test_liqbt_query_and_list_runs_show_the_options_run(runs, capsys):
    code = main(["query", "SELECT run_id, sum(bad_debt_usd) AS bad_debt_usd, "
                 "sum(liquidated_notional_usd) AS liquidated_usd FROM steps "
                 "WHERE run_kind = 'options' GROUP BY run_id",
                 "--runs", str(runs["root"]), "--format", "json"])
    out = capsys.readouterr().out
    assert code == 0, out
    rows = json.loads(out)
    summary = runs["options_manifest"]["options_summary"]
    assert [r["run_id"] for r in rows] == [runs["options_id"]]
    assert rows[0]["bad_debt_usd"] == pytest.approx(summary["bad_debt_usd"], abs=1e-6)
    assert rows[0]["liquidated_usd"] == pytest.approx(summary["liquidated_notional_usd"])
    assert main(["list", "runs", "--runs", str(runs["root"])]) == 0
    out = capsys.readouterr().out
    assert "options" in out and "portfolio" in out and "BTC, ETH" in out


def test_liqbt_report_of_an_options_run_writes_its_portfolio_report(runs, tmp_path, capsys):
    out = tmp_path / "report.html"
    code = main(["report", runs["options_id"], "--runs", str(runs["root"]), "-o", str(out)])
    assert code == 0, capsys.readouterr()
    html = out.read_text()
    assert 'id="options-greeks"' in html and runs["run_id"] in html


def test_readme_options_queries_answer(runs):
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    queries = [q for q in re.findall(r'liqbt query "([^"]*)"', text) if "'options'" in q]
    assert queries
    with Catalog(runs["root"]) as cat:
        for sql in queries:
            frame = cat.query(sql)
            assert frame.height == 1 and frame["liquidated_usd"].sum() > 0, sql
