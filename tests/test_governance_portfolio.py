"""Governance proposals over a multi-asset lending + perp market (``kind = "portfolio"``)."""

from __future__ import annotations

import json

import polars as pl
import pytest

from backtest.errors import ConfigError
from backtest.report.governance import write_governance_report
from backtest.report.governance_accounts import cell_accounts
from backtest.report.proposal import load_proposal, parameter_sets, sweep_config
from backtest.results import Catalog
from tests.test_portfolio_run import make_portfolio_world

PROPOSAL = """
name = "Synthetic market: close factor 50% -> 35%, ETH bonus 5% -> 7.5%"
description = "A <b>test</b> proposal"
kind = "portfolio"
protocol = "synthetic-lending"
seeds = [3, 4]

[portfolio.params]
insurance_fund_usd = 1000.0

[[proposed]]
name = "cf 35%, ETH bonus 7.5%"
[proposed.params]
close_factor = 0.35
"assets.ETH.liquidation_bonus" = 0.075

[[proposed]]
name = "least sensitive first"
[proposed.params]
order = "least_sensitive"

[frontier]
close_factor = [0.25, 0.35, 0.5, 1.0]
"assets.ETH.liquidation_bonus" = [0.05, 0.075]

[[events]]
event = "synthetic-crash"
accounts = 300
"""


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("gov-portfolio")
    w = make_portfolio_world(root)
    path = root / "proposal.toml"
    path.write_text(PROPOSAL)
    out, outcome = write_governance_report(path, root / "report.html", runs=root / "runs",
                                           store=w["store"], events=w["events"], workers=1,
                                           show_progress=False)
    return {**w, "path": path, "html": out.read_text(), "outcome": outcome,
            "runs": root / "runs"}


def test_parameter_sets_are_portfolio_policy_fields(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text(PROPOSAL)
    roles = parameter_sets(load_proposal(path), path)
    assert [r for r, _ in roles[:3]] == ["current", "proposed", "proposed"]
    assert roles[1][1].params == {"close_factor": 0.35, "assets.ETH.liquidation_bonus": 0.075}
    # the frontier point equal to current (0.5, 0.05) is dropped: 8 - 1 swept sets
    assert sum(1 for r, _ in roles if r == "frontier") == 7
    cfg = sweep_config(load_proposal(path), path)
    assert cfg.kind == "portfolio" and cfg.policies == ["protocol"]


def test_the_report_renders_every_section_from_portfolio_cells(report):
    html = report["html"]
    assert report["outcome"].total == 2 * (3 + 7)
    for part in ('id="recommendation"', 'id="summary-table"', 'id="fig-frontier-box"',
                 'id="fig-heatmap-box"', '<section id="accounts">',
                 '<section id="against-what-happened">', 'id="parameters"'):
        assert part in html, part
    assert "<b>test</b>" not in html and "&lt;b&gt;test&lt;/b&gt;" in html
    assert "synthetic-lending" in html and "Market" in html
    # the parameter table shows the market's values in force where a set changes nothing
    table = html.split('id="parameters"')[1].split("</table>")[0]
    assert "assets.ETH.liquidation_bonus" in table and "least_sensitive" in table
    assert "0.075" in table and "0.05" in table
    section = html.split('<section id="against-what-happened">')[1].split("</section>")[0]
    assert "No target exists" in section and "synthetic" in section
    assert 'id="left-out"' in html and "Auto-deleveraged notional" in html.split(
        'id="left-out"')[1].split("</p>")[0]
    assert "BTC\\u002fUSDT price" in html  # the chart names the asset it draws (JSON)


def test_summary_numbers_are_the_portfolio_cells(report):
    with Catalog(report["runs"]) as cat:
        cells = cat.query("SELECT param_set, run_kind, avg(bad_debt_usd) AS bd, "
                          "avg(liquidated_notional_usd) AS liq FROM sweep_cells "
                          "WHERE sweep_id LIKE 'governance-proposal-%' GROUP BY ALL")
    assert set(cells["run_kind"]) == {"portfolio"}
    cur = cells.filter(pl.col("param_set") == "current").row(0, named=True)
    assert cur["liq"] > 0
    # the recommendation's figures are the cells' means
    assert f"${cur['bd']:,.0f}" in report["html"]


def test_per_account_view_re_simulates_the_cells_exactly(report):
    sweep_dir = report["outcome"].sweep_dir
    for cell_dir in sorted((sweep_dir / "cells").iterdir())[:3]:
        summary = pl.read_parquet(cell_dir / "summary.parquet").row(0, named=True)
        acc = cell_accounts(cell_dir / "cell.json")
        assert acc.height == 300
        assert acc["liquidated"].sum() == summary["accounts_liquidated"]
        assert acc["liquidated_notional_usd"].sum() == pytest.approx(
            summary["liquidated_notional_usd"], rel=1e-12)
        assert acc["user_loss_usd"].sum() == pytest.approx(
            summary["user_loss_to_liquidation_usd"], rel=1e-9, abs=1e-6)
        assert json.loads((cell_dir / "cell.json").read_text())["cell"]["kind"] == "portfolio"


@pytest.mark.parametrize(("change", "expected"), [
    (("close_factor = 0.35", "close_factor = 1.5"),
     ["close_factor=1.5", "less than or equal to 1"]),
    (("close_factor = 0.35", "clse_factor = 0.35"),
     ["proposed[0].params.clse_factor", "no parameter"]),
    (('order = "least_sensitive"', 'order = "cheapest"'), ["order"]),
    (("insurance_fund_usd = 1000.0", "insurance_fund_usd = 1000.0\n[run.market]\n"
                                     "impact_model = \"sqrt\""), ["field 'run'"]),
])
def test_bad_portfolio_proposal_values_are_clear_errors(tmp_path, change, expected):
    assert change[0] in PROPOSAL
    path = tmp_path / "bad.toml"
    path.write_text(PROPOSAL.replace(change[0], change[1], 1))
    with pytest.raises(ConfigError) as exc:
        proposal = load_proposal(path)
        parameter_sets(proposal, path)
        sweep_config(proposal, path)
    msg = str(exc.value)
    assert "bad.toml" in msg
    for part in expected:
        assert part in msg, (part, msg)


def test_an_ensemble_input_is_refused_for_a_portfolio_market(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(PROPOSAL.replace("seeds = [3, 4]", "[ensemble]\nmembers = 2\n"
                                     "depth_factor = { low = 0.5, high = 2.0 }\n", 1)
                    .replace('[portfolio.params]', '\n[portfolio.params]', 1))
    with pytest.raises(ConfigError) as exc:
        sweep_config(load_proposal(path), path)
    assert "ensemble.depth_factor" in str(exc.value) and "book seed only" in str(exc.value)


def test_conditioning_is_refused_for_a_portfolio_market(tmp_path):
    path = tmp_path / "cond.toml"
    path.write_text(PROPOSAL.replace("seeds = [3, 4]", "[ensemble]\nmembers = 2\n"
                                     'condition_on = ["maker-eth-topups-morning"]\n', 1)
                    .replace('[portfolio.params]', '\n[portfolio.params]', 1))
    with pytest.raises(ConfigError, match="ensemble.condition_on.*portfolio market"):
        load_proposal(path)
