"""Portfolio runs are first-class catalog runs: `liqbt query`, `liqbt list runs`, the metrics."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from backtest.cli import main
from backtest.engine.run import execute
from backtest.portfolio.pipeline import run_portfolio_config
from backtest.portfolio.run_config import load_portfolio_config
from backtest.results import METRICS, Catalog
from backtest.results.writer import run_directory
from tests.results_world import make_world
from tests.test_portfolio_run import CONFIG, make_portfolio_world

#: The portfolio run of tests/test_portfolio_run.py without its options book (not needed here).
PORTFOLIO_ONLY = CONFIG[:CONFIG.index("[options]")] + CONFIG[CONFIG.index("[liquidation_at_risk]"):]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One portfolio run and one single-asset run in the same runs directory."""
    tmp = tmp_path_factory.mktemp("portfolio-catalog")
    w = make_portfolio_world(tmp, PORTFOLIO_ONLY)
    cfg = load_portfolio_config(w["config"], ["portfolio.accounts=300"])
    root = tmp / "runs"
    run_id, run_dir, manifest = run_portfolio_config(
        cfg, w["config"], runs=root, store=w["store"], events=w["events"],
        overrides=["portfolio.accounts=300"])
    world = make_world(tmp / "single", accounts=300)
    single_id, _ = execute(world["config"], runs=root, store=world["store"],
                           show_progress=False)
    return {"root": root, "run_id": run_id, "run_dir": run_dir, "manifest": manifest,
            "single_id": single_id, "single_world": world}


def test_the_run_directory_has_the_standard_manifest(runs):
    m = runs["manifest"]
    assert m["run_kind"] == "portfolio" and m["run_id"] == runs["run_dir"].name
    assert runs["run_dir"].parent.name == "portfolio"
    assert json.loads((runs["run_dir"] / "manifest.json").read_text()) == json.loads(
        json.dumps(m, default=str))
    assert len(m["config_sha256"]) == 64 and m["overrides"] == ["portfolio.accounts=300"]
    assert m["book"]["accounts"] == 300 and m["versions"]["liqbt"]
    assert [p["name"] for p in m["policies"]] == ["protocol", "least_sensitive",
                                                  "proportional"]
    assert not [p for p in runs["root"].rglob(".*") if p.is_dir()]  # no temporaries left


def test_the_catalog_lists_both_kinds(runs):
    with Catalog(runs["root"]) as cat:
        assert cat.problems == []
        rows = cat.query("SELECT run_id, run_kind, accounts, policies, event FROM runs "
                         "ORDER BY run_kind").rows()
        assert rows == [
            (runs["run_id"], "portfolio", 300, ["protocol", "least_sensitive", "proportional"],
             "synthetic-crash"),
            (runs["single_id"], "single_asset", 300, rows[1][3], rows[1][4])]
        kinds = cat.query("SELECT DISTINCT run_id, run_kind FROM steps ORDER BY run_kind").rows()
        assert kinds == [(runs["run_id"], "portfolio"), (runs["single_id"], "single_asset")]
        for table in ("accounts", "liquidations", "policies", "prices"):
            n = cat.query(f"SELECT count(*) AS n FROM {table} WHERE run_kind = 'portfolio'")
            assert n["n"][0] > 0, table
        prices = cat.query("SELECT DISTINCT symbol FROM prices WHERE run_kind = 'portfolio' "
                           "ORDER BY symbol")["symbol"].to_list()
        assert prices == ["BTC/USDT", "ETH/USDT"]


def test_step_totals_equal_the_runs_own_summary(runs):
    with Catalog(runs["root"]) as cat:
        got = cat.query(f"""
            SELECT policy, sum(liquidations) AS liquidations,
                   sum(liquidated_notional_usd) AS liquidated_notional_usd,
                   sum(keeper_fees_usd) AS keeper_fees_usd,
                   sum(insurance_fees_usd) AS insurance_fees_usd,
                   sum(bad_debt_usd) AS bad_debt_usd,
                   sum(socialised_loss_usd) AS socialised_loss_usd,
                   arg_max(insurance_fund_usd, step) AS insurance_fund_end_usd,
                   max(accounts_liquidated_cum) AS accounts_liquidated
            FROM steps WHERE run_id = '{runs["run_id"]}' GROUP BY policy""")
    summary = runs["manifest"]["portfolio_summary"]
    assert sorted(got["policy"]) == sorted(summary)
    assert sum(s["liquidated_notional_usd"] for s in summary.values()) > 0
    for row in got.iter_rows(named=True):
        s = summary[row["policy"]]
        for key, value in row.items():
            if key != "policy":
                assert value == pytest.approx(s[key], rel=1e-12, abs=1e-9), (row["policy"], key)


def test_registry_metrics_match_hand_sums_over_the_records(runs):
    with Catalog(runs["root"]) as cat:
        summary = cat.summary(runs["run_id"])
        liq = cat.query(f"SELECT * FROM liquidations WHERE run_id = '{runs['run_id']}'")
        acc = cat.query(f"SELECT * FROM accounts WHERE run_id = '{runs['run_id']}'")
    assert summary["policy"].to_list() == ["protocol", "least_sensitive", "proportional"]
    assert set(summary["family"]) == {"portfolio"}
    for row in summary.iter_rows(named=True):
        r = liq.filter(pl.col("policy") == row["policy"])
        a = acc.filter(pl.col("policy") == row["policy"])
        assert row["liquidated_notional_usd"] == pytest.approx(
            float((r["units_closed"].abs() * r["fill_price"]).sum()), rel=1e-9)
        assert row["penalties_usd"] == pytest.approx(
            float((r["keeper_fee_usd"] + r["insurance_fee_usd"]).sum()), rel=1e-9)
        assert row["bad_debt_usd"] == pytest.approx(float(r["bad_debt_usd"].sum()),
                                                    rel=1e-9, abs=1e-9)
        assert row["accounts_liquidated"] == r["account_id"].n_unique()
        lost = float((a["hold_equity_usd"] - a["final_equity_usd"]).sum())
        assert row["user_loss_to_liquidation_usd"] == pytest.approx(lost, rel=1e-9)
        assert row["insurance_draw_usd"] + row["socialised_loss_usd"] == pytest.approx(
            row["bad_debt_usd"], rel=1e-9, abs=1e-9)  # every dollar of bad debt is borne
        for m in METRICS:
            assert (row[m.name] is None) == ("portfolio" not in m.kinds), m.name
    assert summary["liquidated_notional_usd"].min() > 0


def test_single_asset_summary_is_unchanged_beside_a_portfolio_run(runs, tmp_path):
    alone = tmp_path / "runs"
    shutil.copytree(runs["root"] / runs["single_id"], alone / runs["single_id"])
    with Catalog(alone) as cat:
        before = cat.summary(runs["single_id"])
    with Catalog(runs["root"]) as cat:
        after = cat.summary(runs["single_id"])
    assert after.equals(before) and before["liquidated_notional_usd"].sum() > 0


def test_liqbt_query_and_list_runs_show_the_portfolio_run(runs, capsys):
    code = main(["query", "SELECT policy, sum(bad_debt_usd) AS bad_debt_usd FROM steps "
                 "WHERE run_kind = 'portfolio' GROUP BY policy ORDER BY policy",
                 "--runs", str(runs["root"]), "--format", "json"])
    out = capsys.readouterr().out
    assert code == 0, out
    rows = json.loads(out)
    summary = runs["manifest"]["portfolio_summary"]
    assert [r["policy"] for r in rows] == sorted(summary)
    for r in rows:
        assert r["bad_debt_usd"] == pytest.approx(summary[r["policy"]]["bad_debt_usd"])
    assert main(["list", "runs", "--runs", str(runs["root"])]) == 0
    out = capsys.readouterr().out
    assert runs["run_id"][:15] in out and "portfolio" in out and "single_asset" in out
    assert "BTC/USDT, ETH/USDT" in out and "protocol" in out


def test_an_incomplete_run_directory_never_appears(tmp_path):
    target = tmp_path / "runs" / "portfolio" / "r1"
    with pytest.raises(RuntimeError, match="manifest"), run_directory(target) as out:
        out.table("steps", pl.DataFrame({"run_id": ["r1"], "step": [0]}))
    with pytest.raises(ValueError, match="columns"), run_directory(target) as out:
        out.append("accounts", pl.DataFrame({"run_id": ["r1"], "a": [1.0]}))
        out.append("accounts", pl.DataFrame({"run_id": ["r1"], "b": [1.0]}))
    assert not target.exists() and not list(target.parent.iterdir())
    with run_directory(target) as out:
        out.append("accounts", pl.DataFrame({"run_id": ["r1"], "a": np.array([1.0])}))
        out.append("accounts", pl.DataFrame({"run_id": ["r1"], "a": np.array([2.0])}))
        out.manifest({"run_id": "r1"})
    assert pl.read_parquet(target / "accounts.parquet")["a"].to_list() == [1.0, 2.0]


def test_liqbt_report_of_a_portfolio_run_writes_the_portfolio_report(runs, tmp_path, capsys):
    out = tmp_path / "report.html"
    code = main(["report", runs["run_id"], "--runs", str(runs["root"]), "-o", str(out)])
    assert code == 0, capsys.readouterr()
    html = out.read_text()
    assert 'id="order-comparison"' in html and runs["run_id"] in html


def test_a_portfolio_run_from_before_run_kinds_is_left_out_with_a_clear_warning(runs, tmp_path):
    root = tmp_path / "runs"
    shutil.copytree(runs["root"], root)
    old = root / "portfolio" / "20220101T000000-old"
    old.mkdir()
    (old / "manifest.json").write_text(json.dumps({
        "run_id": old.name, "created": "2022-01-01T00:00:00+00:00", "event": "luna-2022",
        "portfolio_book": {"accounts": 5}, "portfolio_summary": {"protocol": {}}}))
    with Catalog(root) as cat:
        assert len(cat.problems) == 1 and "run its config again" in cat.problems[0]
        assert cat.query("SELECT count(*) AS n FROM runs")["n"][0] == 2


def test_readme_portfolio_queries_answer(runs):
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    queries = [q for q in re.findall(r'liqbt query "([^"]*)"', text) if "'portfolio'" in q]
    assert queries
    with Catalog(runs["root"]) as cat:
        for sql in queries:
            frame = cat.query(sql)
            assert frame.height == 3 and frame["liquidated_usd"].sum() > 0, sql
