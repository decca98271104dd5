"""Portfolio sweeps and governance proposals carry ``[portfolio.market]`` and
``[portfolio.keepers]``: a cell (a proposal arm) with market impact, cascade and keepers equals
``liqbt portfolio run`` on the same settings bit for bit."""

from __future__ import annotations

import json

import polars as pl
import pytest

from backtest.portfolio import PortfolioParams, read_portfolio_book, simulate_portfolio
from backtest.portfolio.pipeline import run_portfolio_config
from backtest.portfolio.run_config import load_portfolio_config
from backtest.report.governance import write_governance_report
from backtest.report.proposal import load_proposal, sweep_config
from backtest.results import Catalog
from backtest.results.metrics import METRICS
from backtest.sweep import load_sweep_config, run_sweep
from backtest.sweep.portfolio_plan import align_event, plan_portfolio_sweep, tape_selection
from tests import test_sweep_portfolio
from tests.sweep_world import cells
from tests.test_portfolio_run import make_portfolio_world

MARKET = """
[portfolio.market]
impact_model = "sqrt"
cascade = true
permanent_fraction = 0.4
transient_half_life_minutes = 20
depth_usd = {BTC = 150000.0, ETH = 100000.0}

[portfolio.keepers]
latency_minutes = 10
requires_profit = true
gas_price_gwei = 40
capital_usd_per_step = 60000.0
"""

RUN_CONFIG = test_sweep_portfolio.RUN_CONFIG.replace('"direct"', '"direct-market"') + MARKET

SWEEP = """
name = "portfolio-market-sweep"
kind = "portfolio"
policies = ["protocol", "largest"]
workers = 1
seeds = [5]

[[events]]
event = "synthetic-crash"
accounts = 300

[portfolio.params]
insurance_fund_usd = 1000.0

[grid]
close_factor = [0.5]
""" + MARKET

PROPOSAL = """
name = "Synthetic market with impact and keepers: close factor 50% -> 35%"
kind = "portfolio"
protocol = "synthetic-lending"
seeds = [5]

[portfolio.params]
insurance_fund_usd = 1000.0
""" + MARKET + """
[[proposed]]
name = "cf 35%"
[proposed.params]
close_factor = 0.35

[[events]]
event = "synthetic-crash"
accounts = 300
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The synthetic BTC + ETH world, the direct run of :data:`RUN_CONFIG`, the sweep and the
    proposal of the same market and keepers."""
    root = tmp_path_factory.mktemp("psweep-market")
    w = make_portfolio_world(root, RUN_CONFIG)
    w["runs"] = root / "runs"
    cfg = load_portfolio_config(w["config"])
    w["run_id"], _, _ = run_portfolio_config(cfg, w["config"], runs=w["runs"],
                                             store=w["store"], events=w["events"])
    w["sweep"] = root / "sweep.toml"
    w["sweep"].write_text(SWEEP)
    w["outcome"] = run_sweep(w["sweep"], runs=w["runs"], store=w["store"], events=w["events"],
                             show_progress=False)
    w["proposal"] = root / "proposal.toml"
    w["proposal"].write_text(PROPOSAL)
    html, w["gov"] = write_governance_report(w["proposal"], root / "report.html",
                                             runs=w["runs"], store=w["store"],
                                             events=w["events"], workers=1,
                                             show_progress=False)
    w["html"] = html.read_text()
    with Catalog(w["runs"]) as cat:
        w["summary"] = cat.summary(w["run_id"])
    return w


def _assert_cell_is_the_run(cell: dict, summary: pl.DataFrame, order: str) -> None:
    row = summary.filter(pl.col("policy") == order).row(0, named=True)
    for m in METRICS:
        assert cell[m.name] == row[m.name], (order, m.name, cell[m.name], row[m.name])


def test_sweep_cells_carry_the_market_and_equal_the_run_bit_for_bit(world):
    c = cells(world["outcome"].sweep_dir)
    assert c.height == 2
    for order in ("protocol", "largest"):
        cell = c.filter(pl.col("policy") == order).row(0, named=True)
        _assert_cell_is_the_run(cell, world["summary"], order)
        spec = json.loads((world["outcome"].sweep_dir / "cells" / cell["cell_id"]
                           / "cell.json").read_text())["cell"]
        assert spec["run_config"]["market"]["impact_model"] == "sqrt"
        assert spec["run_config"]["keepers"]["latency_minutes"] == 10


def test_the_market_and_keepers_change_the_cells(world):
    """Not vacuous: the same book without the market and keepers gives other figures, and the
    cell ids differ from those of the sweep without them."""
    c = cells(world["outcome"].sweep_dir)
    cell = c.filter(pl.col("policy") == "protocol").row(0, named=True)
    spec = json.loads((world["outcome"].sweep_dir / "cells" / cell["cell_id"]
                       / "cell.json").read_text())["cell"]
    aligned = align_event(tape_selection(load_sweep_config(world["sweep"]).events[0]),
                          world["store"], world["events"])
    book = read_portfolio_book(spec["run_config"]["book"], symbols=aligned.symbols)
    params = PortfolioParams(order="protocol", insurance_fund_usd=1000.0)
    section = load_sweep_config(world["sweep"]).portfolio_section
    for market in (None, section.market):  # neither the market alone nor nothing
        other = simulate_portfolio(aligned, book, params, market=market).summary()
        assert other["liquidated_notional_usd"] != cell["liquidated_notional_usd"]
    both = simulate_portfolio(aligned, book, params, market=section.market,
                              keepers=section.keepers).summary()
    assert both["liquidated_notional_usd"] == cell["liquidated_notional_usd"]
    assert cell["liquidated_notional_usd"] > 0
    bare = world["sweep"].with_name("bare.toml")
    bare.write_text(SWEEP.replace(MARKET, "").replace("portfolio-market-sweep", "bare"))
    plan = plan_portfolio_sweep(load_sweep_config(bare), bare, world["tmp"] / "bare-out",
                      store=world["store"], events=world["events"])
    assert not {x.cell_id for x in plan.cells} & set(c["cell_id"])


def test_a_proposal_arm_carries_the_market_and_equals_the_run(world):
    proposal = load_proposal(world["proposal"])
    cfg = sweep_config(proposal, world["proposal"])
    assert cfg.portfolio_section.market.impact_model == "sqrt"
    assert cfg.portfolio_section.keepers.requires_profit
    c = cells(world["gov"].sweep_dir)
    assert set(c["param_set"]) == {"current", "cf 35%"}
    current = c.filter(pl.col("param_set") == "current").row(0, named=True)
    _assert_cell_is_the_run(current, world["summary"], "protocol")
    # the proposed arm is the run of the same config with the proposed close factor
    cfg = load_portfolio_config(world["config"], ["portfolio.params.close_factor=0.35",
                                                  "name=direct-market-cf35"])
    run_id, _, _ = run_portfolio_config(cfg, world["config"], runs=world["runs"],
                                        store=world["store"], events=world["events"])
    with Catalog(world["runs"]) as cat:
        summary = cat.summary(run_id)
    proposed = c.filter(pl.col("param_set") == "cf 35%").row(0, named=True)
    _assert_cell_is_the_run(proposed, summary, "protocol")
    assert proposed["liquidated_notional_usd"] != current["liquidated_notional_usd"]


def test_the_report_says_which_market_and_keepers_the_arms_ran_in(world):
    """The methodology names the impact model and the keepers, and no longer lists them as
    left out; a proposal without them still does."""
    html = world["html"]
    method = html.split('id="methodology"')[1] if 'id="methodology"' in html else html
    assert "Market impact per asset (sqrt model)" in method
    assert "Keepers act 10 minutes after an account first becomes liquidatable" in method
    assert "gas is paid per position liquidated" in method
    assert "Keeper latency, gas and capital: a keeper acts in the step" not in html
    assert "Market impact and cascades: liquidations do not move" not in html
    from backtest.report.governance_portfolio import methodology

    bare = world["proposal"].with_name("bare-proposal.toml")
    bare.write_text(PROPOSAL.replace(MARKET, ""))
    m = methodology(load_proposal(bare))
    assert m["market"] is None and m["oracle_keepers"] == []
    assert any(s.startswith("Keeper latency, gas and capital") for s in m["not_modelled"])
    assert any(s.startswith("Market impact and cascades") for s in m["not_modelled"])
