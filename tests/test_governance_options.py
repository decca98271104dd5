"""Governance proposals on an options venue (``kind = "options"``): parameter sets of the
options rule, the report from options cells, its table against hand sums over the runs'
records, and clear errors."""

from __future__ import annotations

import json

import polars as pl
import pytest

from backtest.errors import ConfigError
from backtest.options.run_record import options_accounts, options_liquidations, options_steps
from backtest.report.governance import write_governance_report
from backtest.report.governance_accounts import cell_accounts
from backtest.report.governance_load import load_governance_data
from backtest.report.governance_summary import summary_table
from backtest.report.proposal import load_proposal, parameter_sets, sweep_config
from backtest.results import Catalog
from backtest.sweep.options_cell import run_options_cell
from backtest.sweep.plan import CellSpec
from tests.test_portfolio_run import make_portfolio_world

PROPOSAL = """
name = "Synthetic venue: options penalty 0.5% -> 1%"
description = "A <b>test</b> proposal"
kind = "options"
protocol = "synthetic-options-venue"
seeds = [3]

[options]
interval = "5m"
[options.params]
insurance_fund_usd = 1000.0

[[proposed]]
name = "penalty 1%"
[proposed.params]
penalty_rate = 0.01

[[proposed]]
name = "wider margin"
[proposed.params]
price_range = 0.2

[frontier]
penalty_rate = [0.0025, 0.005, 0.01]
keeper_share = [0.5, 0.8]

[[events]]
event = "synthetic-crash"
accounts = 150

[[stress]]
kind = "none"
[[stress]]
kind = "iv"
factor = 1.3
"""


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("gov-options")
    w = make_portfolio_world(root)
    path = root / "proposal.toml"
    path.write_text(PROPOSAL)
    out, outcome = write_governance_report(path, root / "report.html", runs=root / "runs",
                                           store=w["store"], events=w["events"], workers=1,
                                           show_progress=False)
    return {**w, "path": path, "html": out.read_text(), "outcome": outcome,
            "runs": root / "runs"}


def test_parameter_sets_are_options_rule_fields(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text(PROPOSAL)
    proposal = load_proposal(path)
    roles = parameter_sets(proposal, path)
    assert [r for r, _ in roles[:3]] == ["current", "proposed", "proposed"]
    assert roles[1][1].params == {"penalty_rate": 0.01}
    assert roles[2][1].params == {"grid.price_range": 0.2}
    # (0.005, 0.5) is current and (0.01, 0.5) the first proposed set: 6 - 2 swept sets
    assert sum(1 for r, _ in roles if r == "frontier") == 4
    cfg = sweep_config(proposal, path)
    assert cfg.kind == "options" and cfg.policies == ["options"]
    assert cfg.options_section.params.insurance_fund_usd == 1000.0


def _cell_spec(sweep_dir, cell_id) -> CellSpec:
    raw = json.loads((sweep_dir / "cells" / cell_id / "cell.json").read_text())["cell"]
    return CellSpec(**raw)


def test_the_report_table_equals_hand_sums_over_the_runs_records(report):
    """Current and the 1% penalty, history and the IV shock: every figure of the summary
    table is the sum over the re-simulated runs' liquidation records, accounts and steps."""
    proposal = load_proposal(report["path"])
    roles = parameter_sets(proposal, report["path"])
    sweep_dir = report["outcome"].sweep_dir
    with Catalog(report["runs"]) as cat:
        data = load_governance_data(cat, proposal, report["path"], sweep_dir, roles,
                                    events=report["events"])
        ids = cat.query("SELECT param_set, stress, cell_id FROM sweep_cells "
                        "WHERE sweep_id LIKE 'governance-proposal-%'")
    table = summary_table(data)
    labels = [m["label"] for m in table["measures"]]
    assert "Auto-deleveraged notional" in table["left_out"]
    assert "User loss to liquidation (vs. no liquidation)" in labels
    checked = 0
    for sc in data.scenarios:
        for label in ("current", "penalty 1%"):
            cid = ids.filter((pl.col("param_set") == label) & (pl.col("stress") == sc.stress))
            spec = _cell_spec(sweep_dir, cid["cell_id"][0])
            study = run_options_cell(spec)
            liq = options_liquidations("x", study.result)
            acc = options_accounts("x", study)
            st = options_steps("x", study.result)
            hand = {
                "bad_debt_usd": float(acc["bad_debt_usd"].sum()),
                "user_loss_to_liquidation_usd": float((acc["hold_equity_usd"]
                                                       - acc["final_equity_usd"]).sum()),
                "user_equity_retained": float(acc["final_equity_usd"].sum()
                                              / acc["initial_equity_usd"].sum()),
                "insurance_draw_usd": float(st["insurance_draw_usd"].sum()),
                "peak_liquidated_notional_usd": float(
                    liq.group_by("step").agg(pl.col("notional_usd").sum())["notional_usd"]
                    .max()),
            }
            assert liq.height > 0
            for measure, value in hand.items():
                assert data.value(sc, label, measure) == pytest.approx(
                    value, rel=1e-9, abs=1e-6), (sc.key, label, measure)
            checked += 1
    assert checked == 4
    # the IV shock liquidates more than history under the current rule
    hist, iv = data.scenarios
    assert (data.value(iv, "current", "peak_liquidated_notional_usd")
            >= data.value(hist, "current", "peak_liquidated_notional_usd"))
    # a doubled penalty takes more from users: their losses to liquidation rise
    assert (data.value(hist, "penalty 1%", "user_loss_to_liquidation_usd")
            > data.value(hist, "current", "user_loss_to_liquidation_usd"))


def test_the_report_renders_every_section_from_options_cells(report):
    html = report["html"]
    assert report["outcome"].total == 2 * (3 + 4)
    for part in ('id="recommendation"', 'id="summary-table"', 'id="fig-frontier-box"',
                 'id="fig-heatmap-box"', '<section id="accounts">',
                 '<section id="against-what-happened">', 'id="parameters"'):
        assert part in html, part
    assert "<b>test</b>" not in html and "&lt;b&gt;test&lt;/b&gt;" in html
    assert "synthetic-options-venue" in html and "the options venue" in html
    table = html.split('id="parameters"')[1].split("</table>")[0]
    assert "grid.price_range" in table and "penalty_rate" in table and "0.15" in table
    section = html.split('<section id="against-what-happened">')[1].split("</section>")[0]
    assert "No target exists" in section and "option liquidations" in section
    assert "Black-76" in html and "iv x1.3" in html
    assert "BTC\\u002fUSDT price" in html


def test_per_account_view_re_simulates_the_options_cells_exactly(report):
    sweep_dir = report["outcome"].sweep_dir
    for cell_dir in sorted((sweep_dir / "cells").iterdir())[:3]:
        summary = pl.read_parquet(cell_dir / "summary.parquet").row(0, named=True)
        acc = cell_accounts(cell_dir / "cell.json")
        assert acc.height == 150
        assert acc["liquidated"].sum() == summary["accounts_liquidated"]
        assert acc["liquidated_notional_usd"].sum() == pytest.approx(
            summary["liquidated_notional_usd"], rel=1e-12)
        assert acc["user_loss_usd"].sum() == pytest.approx(
            summary["user_loss_to_liquidation_usd"], rel=1e-9, abs=1e-6)
        assert json.loads((cell_dir / "cell.json").read_text())["cell"]["kind"] == "options"


@pytest.mark.parametrize(("change", "expected"), [
    (("penalty_rate = 0.01", "penalty_rate = 1.5"), ["penalty_rate", "less than 1"]),
    (("penalty_rate = 0.01", "penalty = 0.01"),
     ["proposed[0].params.penalty", "no parameter 'penalty'"]),
    (("insurance_fund_usd = 1000.0", "insurance_fund_usd = 1000.0\n[run.market]\n"
                                     "impact_model = \"sqrt\""),
     ["field 'run'", "[options.params]"]),
    (('kind = "options"', 'kind = "portfolio"'), ["field 'options'", "kind = \"options\""]),
    (("price_range = 0.2", "penalty_rate = 0.005"), ["'wider margin'", "same policy"]),
    (("accounts = 150", "accounts = 150\nsymbol = \"BTC/USDT\""),
     ["events[0].symbol", "not for an options sweep"]),
])
def test_bad_options_proposal_values_are_clear_errors(tmp_path, change, expected):
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


def test_the_example_options_proposal_is_valid():
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "configs" / "proposals" / "options-penalty.toml"
    proposal = load_proposal(path)
    roles = parameter_sets(proposal, path)
    cfg = sweep_config(proposal, path)
    assert proposal.kind == "options" and cfg.kind == "options"
    assert [e.event for e in proposal.events] == ["may-2021", "oct-2025"]
    assert len([r for r, _ in roles if r == "proposed"]) >= 1
