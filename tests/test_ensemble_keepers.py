"""Ensembles draw keeper latency only where keepers liquidate (a policy's ``liquidator``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from backtest.books.generate import BookParams
from backtest.policies import load_policy
from backtest.report.proposal import load_proposal
from backtest.sweep import load_sweep_config
from backtest.sweep.config import RunSections
from backtest.sweep.ensemble import (
    DEFAULT_KEEPER_LATENCY,
    ENGINE_NOT_DRAWN,
    EnsembleSpec,
    default_ranges,
    input_table,
    member_values,
    policy_values,
)
from backtest.sweep.plan import plan_sweep
from tests.sweep_world import make_world

LATENCY = "keeper_latency_minutes"
MEMBERS = 6


def _spec(**inputs) -> EnsembleSpec:
    return EnsembleSpec(members=MEMBERS, seed=3, **inputs)


def _ranges(liquidators, **inputs):
    return default_ranges(_spec(**inputs), BookParams(), None, {}, RunSections(), "x", "BTC",
                          liquidators=frozenset(liquidators))


def test_an_engine_only_run_draws_no_latency():
    r = _ranges({"engine"})
    assert LATENCY not in r.draws and r.not_drawn == {LATENCY: ENGINE_NOT_DRAWN}
    assert input_table(r)[LATENCY] == {"range": "not drawn", "source": ENGINE_NOT_DRAWN}
    assert all(LATENCY not in member_values(_spec(), k, r) for k in range(MEMBERS))
    # every other input is drawn as for keepers, and member k draws the same values of them
    keepers = _ranges({"keepers"})
    assert set(r.draws) == set(keepers.draws) - {LATENCY}
    for k in range(MEMBERS):
        with_latency = member_values(_spec(), k, keepers)
        del with_latency[LATENCY]
        assert member_values(_spec(), k, r) == with_latency


def test_a_keeper_run_still_draws_latency():
    r = _ranges({"keepers"})
    d = r.draws[LATENCY]
    assert (d.low, d.high) == DEFAULT_KEEPER_LATENCY and r.sources[LATENCY] == "default"
    assert not r.not_drawn and not r.keepers_only
    drawn = [member_values(_spec(), k, r)[LATENCY] for k in range(MEMBERS)]
    assert len(set(drawn)) == MEMBERS and all(d.low <= v <= d.high for v in drawn)
    assert input_table(r)[LATENCY] == {"range": d.describe(), "source": "default"}


def test_an_explicit_draw_is_honoured_for_an_engine():
    choice = {"distribution": "choice", "values": [0, 1, 5]}
    for liquidators in ({"engine"}, {"engine", "keepers"}):
        r = _ranges(liquidators, keeper_latency_minutes=choice)
        assert r.sources[LATENCY] == "ensemble" and not r.not_drawn and not r.keepers_only
        values = [member_values(_spec(keeper_latency_minutes=choice), k, r)
                  for k in range(MEMBERS)]
        assert {v[LATENCY] for v in values} <= {0.0, 1.0, 5.0}
        assert all(policy_values(v, r, "engine") == v for v in values)  # every policy
    # false still holds it at the config's value, with no "not drawn" note
    r = _ranges({"engine"}, keeper_latency_minutes=False)
    assert LATENCY not in r.draws and not r.not_drawn


def test_mixed_policies_draw_latency_for_keepers_only():
    r = _ranges({"keepers", "engine"})
    assert LATENCY in r.draws and r.keepers_only == {LATENCY}
    values = member_values(_spec(), 0, r)
    assert policy_values(values, r, "keepers") == values
    engine = policy_values(values, r, "engine")
    assert LATENCY not in engine and engine == {k: v for k, v in values.items() if k != LATENCY}
    assert "keeper-liquidated policies only" in input_table(r)[LATENCY]["source"]


@pytest.mark.parametrize(("name", "liquidator"), [
    ("binance-usdtm", "engine"), ("bitmex", "engine"), ("hyperliquid", "engine"),
    ("dydx-v4", "engine"), ("hard", "keepers"), ("aave-v3", "keepers"),
    ("maker-clipper", "keepers"), ("gmx-v2", "keepers"), ("drift", "keepers")])
def test_presets_name_their_liquidator(name, liquidator):
    assert load_policy(name).liquidator == liquidator


def test_the_perp_proposal_needs_no_manual_switch_off():
    """Its protocol is liquidated by Binance's engine: the default draws no latency."""
    path = Path("configs/proposals/perp-maintenance-fee.toml")
    prop = load_proposal(path)
    assert prop.ensemble.keeper_latency_minutes is None
    assert load_policy(prop.protocol).liquidator == "engine"


MIXED_SWEEP = """
name = "mixed"
policies = ["binance-usdtm", "hard"]
workers = 1

[ensemble]
members = 2
seed = 5

[[events]]
event = "synthetic-crash"
interval = "5m"
accounts = 200
"""


def test_a_mixed_plan_gives_the_engine_cells_no_latency(tmp_path):
    world = make_world(tmp_path)
    path = tmp_path / "mixed.toml"
    path.write_text(MIXED_SWEEP)
    plan = plan_sweep(load_sweep_config(path), path, tmp_path / "out", store=world["store"],
                      events=world["events"])
    by_policy: dict[str, list] = {}
    for cell in plan.cells:
        by_policy.setdefault(cell.policy["name"], []).append(cell)
    assert sorted(by_policy) == ["binance-usdtm", "hard"]
    for engine, keeper in zip(by_policy["binance-usdtm"], by_policy["hard"], strict=True):
        assert engine.member == keeper.member and engine.seed == keeper.seed  # same book
        drawn = keeper.member_inputs[LATENCY]
        assert keeper.run_config["keepers"]["latency_minutes"] == drawn > 0
        assert LATENCY not in engine.member_inputs
        assert engine.run_config["keepers"]["latency_minutes"] == 0.0  # the config's
        rest = {k: v for k, v in keeper.member_inputs.items() if k != LATENCY}
        assert engine.member_inputs == rest
    table = plan.ensemble["events"]["synthetic-crash"][LATENCY]
    assert "keeper-liquidated policies only" in table["source"]
