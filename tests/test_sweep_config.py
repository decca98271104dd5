"""Sweep configs and grids: expansion, and errors that name the file and the field."""

from __future__ import annotations

import pytest

from backtest.errors import ConfigError
from backtest.policies import load_policy
from backtest.policies.models import HardPolicy, PartialPolicy
from backtest.sweep import load_sweep_config, plan_sweep
from backtest.sweep.grid import ParamSet, Range, apply_params, expand, resolve_field
from tests.sweep_world import make_world, sweep_toml


def test_range_values_are_inclusive_and_clean():
    assert Range(start=0.1, stop=0.3, num=3).values() == [0.1, 0.2, 0.3]
    assert Range(start=0.0, stop=0.3, step=0.1).values() == [0.0, 0.1, 0.2, 0.3]
    assert Range(start=1.0, stop=1.0, num=1).values() == [1.0]
    with pytest.raises(ValueError, match="exactly one of"):
        Range(start=0.0, stop=1.0)


def test_expand_is_the_cartesian_product_in_grid_order():
    sets = expand([("grid", {"perp.liquidation_penalty": [0.01, 0.02]}),
                   ("policy_grids.partial", {"close_factor": Range(start=0.5, stop=1.0,
                                                                   num=2)})],
                  PartialPolicy, "partial")
    assert [s.params for s in sets] == [
        {"perp.liquidation_penalty": 0.01, "partial.close_factor": 0.5},
        {"perp.liquidation_penalty": 0.01, "partial.close_factor": 1.0},
        {"perp.liquidation_penalty": 0.02, "partial.close_factor": 0.5},
        {"perp.liquidation_penalty": 0.02, "partial.close_factor": 1.0},
    ]
    assert sets[1].label == "perp.liquidation_penalty=0.01, partial.close_factor=1"
    assert expand([("grid", {})], HardPolicy, "hard") == [ParamSet()]


def test_unknown_grid_field_lists_the_policy_parameters():
    with pytest.raises(ConfigError) as err:
        resolve_field(HardPolicy, "partial.close_factor", "hard", "grid")
    msg = str(err.value)
    assert "grid.partial.close_factor" in msg and "policy 'hard'" in msg
    assert "perp.maintenance_margin_rate" in msg
    with pytest.raises(ConfigError, match="no parameter 'perp.penalty_rate'"):
        resolve_field(PartialPolicy, "perp.penalty_rate", "partial", "grid")
    with pytest.raises(ConfigError, match="no parameter 'name'"):
        resolve_field(PartialPolicy, "name", "partial", "grid")


def test_apply_params_validates_like_a_policy_file():
    base = load_policy("partial")
    new = apply_params(base, {"partial.close_factor": 0.25, "perp.liquidation_penalty": 0.02})
    assert new.partial.close_factor == 0.25 and new.perp.liquidation_penalty == 0.02
    assert base.partial.close_factor == 0.5  # unchanged
    with pytest.raises(ConfigError, match=r"close_factor=1.5.*partial.close_factor"):
        apply_params(base, {"partial.close_factor": 1.5}, "sweep.toml")


def test_sweep_file_errors_name_file_and_field(tmp_path):
    world = make_world(tmp_path)
    bad = sweep_toml(tmp_path / "bad.toml", grid='"partial.close_factor" = [0.5, 1.0]')
    cfg = load_sweep_config(bad)
    with pytest.raises(ConfigError) as err:
        plan_sweep(cfg, bad, tmp_path / "out", world["store"], events=world["events"])
    assert str(bad) in str(err.value) and "grid.partial.close_factor" in str(err.value)
    assert "policy 'hard'" in str(err.value)

    typo = tmp_path / "typo.toml"
    typo.write_text(bad.read_text().replace("seeds = [3]", "seed = [3]"))
    with pytest.raises(ConfigError, match=r"typo.toml: field 'seed': unknown field"):
        load_sweep_config(typo)
    stress = tmp_path / "stress.toml"
    stress.write_text(bad.read_text().replace("k = 1.5", "k = -1"))
    with pytest.raises(ConfigError, match=r"stress\[1\]\.scale\.k"):
        load_sweep_config(stress)
    dup = tmp_path / "dup.toml"
    dup.write_text(bad.read_text().replace('event = "synthetic-late"',
                                           'event = "synthetic-crash"'))
    with pytest.raises(ConfigError, match="distinct 'label'"):
        load_sweep_config(dup)


def test_plan_counts_cells_and_ids_depend_on_inputs(tmp_path):
    world = make_world(tmp_path)
    path = sweep_toml(tmp_path / "s.toml")
    cfg = load_sweep_config(path)
    plan = plan_sweep(cfg, path, tmp_path / "out", world["store"], events=world["events"])
    assert len(plan.cells) == 2 * 2 * 3 * 4  # events x policies x grid x stress
    assert len({c.cell_id for c in plan.cells}) == len(plan.cells)
    assert len(list((tmp_path / "out" / "books").glob("*.parquet"))) == 2  # one per event
    again = plan_sweep(cfg, path, tmp_path / "out", world["store"], events=world["events"])
    assert [c.cell_id for c in again.cells] == [c.cell_id for c in plan.cells]
    other = load_sweep_config(sweep_toml(tmp_path / "t.toml", extra="[run.execution]\n"
                                         'fill_price = "close"'))
    moved = plan_sweep(other, path, tmp_path / "out", world["store"], events=world["events"])
    assert not {c.cell_id for c in moved.cells} & {c.cell_id for c in plan.cells}
