"""Options sweeps under stress transforms: a stressed cell equals the options run of a portfolio
config on stressed tapes (or an implied-volatility tape multiplied by hand) bit for bit, and
local processes and Dask give bit-identical cells."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import polars as pl
import pytest

from backtest.errors import ConfigError
from backtest.options.book import read_options_book
from backtest.options.margin import account_risk
from backtest.options.params import OptionsParams
from backtest.options.run_record import (
    OptionsStudy,
    options_accounts,
    options_run_id,
    options_steps,
)
from backtest.options.simulate import simulate_options
from backtest.portfolio.pipeline import options_market, run_portfolio_config
from backtest.portfolio.run_config import load_portfolio_config
from backtest.results import Catalog
from backtest.results.metrics import METRICS, OPTIONS
from backtest.sweep import load_sweep_config, run_sweep
from backtest.sweep.cell_metrics import cell_metrics
from backtest.sweep.stress import BlockBootstrap, ScaleShock, stress_tape
from backtest.tapes import TapeStore
from backtest.tapes.store import write_tape
from tests.sweep_world import cells, steps
from tests.test_portfolio_run import CONFIG, make_portfolio_world

SWEEP = """
name = "options-stress"
kind = "options"
policies = ["options"]
seeds = [11]
workers = 1

[[events]]
event = "synthetic-crash"
accounts = 150

[options]
interval = "5m"

[grid]
penalty_rate = [0.005, 0.01]

[[stress]]
kind = "none"
[[stress]]
kind = "scale"
k = 1.5
[[stress]]
kind = "bootstrap"
block_steps = 6
[[stress]]
kind = "iv"
factor = 1.5
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("osweep")
    w = make_portfolio_world(root, CONFIG)
    w["sweep"] = root / "options-stress.toml"
    w["sweep"].write_text(SWEEP)
    w["runs"] = root / "runs"
    w["outcome"] = run_sweep(w["sweep"], runs=w["runs"], store=w["store"], events=w["events"],
                             show_progress=False)
    return w


def _cell(frame: pl.DataFrame, **coords) -> dict:
    rows = frame.filter(*(pl.col(k) == v for k, v in coords.items()))
    assert rows.height == 1, coords
    return rows.row(0, named=True)


def _stressed_store(w: dict, spec, dest) -> TapeStore:
    """A copy of the world's tape store whose event window is stressed tape by tape."""
    from backtest.events import get_event

    shutil.copytree(w["store"], dest)
    store = TapeStore(dest)
    ev = get_event("synthetic-crash", str(w["events"]))
    for info in store.list():
        tape = store.load(info.venue, info.market, info.symbol, info.interval)
        out = stress_tape(tape, ev.start, ev.end, spec, seed=11)
        write_tape(store.tape_path(info.venue, info.market, info.symbol, info.interval),
                   out.tape.frame, tape.meta)
    return store


def test_every_stress_is_a_cell_of_its_own(world):
    out = world["outcome"]
    c = cells(out.sweep_dir)
    assert out.total == 2 * 4 and out.computed == out.total
    assert set(c["stress"]) == {"history", "scale x1.5", "bootstrap b6 s0", "iv x1.5"}
    assert set(c["run_kind"]) == {"options"}
    base = {s: _cell(c, stress=s, param_set="penalty_rate=0.005") for s in set(c["stress"])}
    # a harsher path and a higher implied volatility both liquidate more than history
    assert base["scale x1.5"]["liquidations"] > base["history"]["liquidations"]
    assert base["iv x1.5"]["liquidations"] > base["history"]["liquidations"]
    assert len({row["cell_id"] for row in base.values()}) == 4


@pytest.mark.parametrize("spec", [ScaleShock(kind="scale", k=1.5),
                                  BlockBootstrap(kind="bootstrap", block_steps=6)],
                         ids=["scale", "bootstrap"])
def test_a_stressed_cell_equals_the_options_run_on_stressed_tapes(world, tmp_path, spec):
    """The options study of ``liqbt portfolio run`` on a tape store whose window was stressed
    with :func:`stress_tape` (same seed) gives the stressed cell's measures bit for bit."""
    store = _stressed_store(world, spec, tmp_path / "store")
    cfg = load_portfolio_config(world["config"])
    run_id, _, _ = run_portfolio_config(cfg, world["config"], runs=tmp_path / "runs",
                                        store=store.root, events=world["events"])
    with Catalog(tmp_path / "runs") as cat:
        row = cat.summary(options_run_id(run_id)).row(0, named=True)
        direct_steps = cat.query(f"SELECT * FROM steps WHERE run_id = "
                                 f"'{options_run_id(run_id)}' ORDER BY step")
    cell = _cell(cells(world["outcome"].sweep_dir), stress=spec.label,
                 param_set="penalty_rate=0.005")
    assert cell["liquidations"] > 0
    for m in METRICS:
        assert cell[m.name] == row[m.name], (m.name, cell[m.name], row[m.name])
    series = steps(world["outcome"].sweep_dir).filter(pl.col("cell_id") == cell["cell_id"])
    for col in ("liquidations", "liquidated_notional_usd", "bad_debt_cum_usd",
                "insurance_fund_usd"):
        assert series[col].to_list() == direct_steps[col].to_list(), col


def test_an_iv_shocked_cell_equals_a_run_on_the_multiplied_vol_tape(world):
    cfg = load_portfolio_config(world["config"])
    market, _, open_price = options_market(cfg, TapeStore(world["store"]), str(world["events"]))
    market = replace(market, iv=market.iv * 1.5)
    cell = _cell(cells(world["outcome"].sweep_dir), stress="iv x1.5",
                 param_set="penalty_rate=0.01")
    spec = json.loads((world["outcome"].sweep_dir / "cells" / cell["cell_id"] /
                       "cell.json").read_text())["cell"]
    book = read_options_book(spec["run_config"]["book"]).arrays(market.underlyings)
    params = OptionsParams(penalty_rate=0.01)
    res = simulate_options(market, book, params)
    risk = account_risk(book, open_price, market.iv[0], int(market.timestamp_ms[0]), params)
    study = OptionsStudy(market, book, res, params, open_price, risk.equity, {})
    direct = cell_metrics(options_steps("x", res), options_accounts("x", study), OPTIONS)
    assert cell["liquidations"] > 0
    for m in METRICS:
        assert cell[m.name] == direct[m.name], (m.name, cell[m.name], direct[m.name])


@pytest.mark.dask
def test_local_processes_and_dask_give_bit_identical_options_cells(world, tmp_path):
    ref_summary = cells(world["outcome"].sweep_dir).drop("simulate_seconds", strict=False)
    ref_steps = steps(world["outcome"].sweep_dir)
    local = run_sweep(world["sweep"], runs=tmp_path / "runs", store=world["store"],
                      events=world["events"], workers=2, output=tmp_path / "local",
                      show_progress=False)
    assert local.computed == ref_summary.height
    assert cells(local.sweep_dir).equals(ref_summary)
    assert steps(local.sweep_dir).equals(ref_steps)
    distributed = pytest.importorskip("distributed", reason="liqbt[dask] not installed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        out = run_sweep(world["sweep"], runs=tmp_path / "runs", store=world["store"],
                        events=world["events"], scheduler=cluster.scheduler_address,
                        output=tmp_path / "dask", show_progress=False)
    assert out.backend.startswith("dask ") and out.computed == ref_summary.height
    assert cells(out.sweep_dir).equals(ref_summary)
    assert steps(out.sweep_dir).equals(ref_steps)


@pytest.mark.parametrize("kind", ["single_asset", "portfolio"])
def test_an_iv_shock_is_refused_outside_options_sweeps(tmp_path, kind):
    from tests.sweep_world import portfolio_sweep_toml, sweep_toml

    make = sweep_toml if kind == "single_asset" else portfolio_sweep_toml
    text = make(tmp_path / "s.toml").read_text() + '\n[[stress]]\nkind = "iv"\nfactor = 1.5\n'
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_sweep_config(path)
    msg = str(exc.value)
    assert "bad.toml" in msg and "implied-volatility shock" in msg and "stress[" in msg


def test_the_history_cell_keeps_its_id_beside_stressed_cells(world, tmp_path):
    """Adding stress transforms to an options sweep does not recompute its history cells."""
    path = tmp_path / "plain.toml"
    path.write_text(SWEEP.split("[[stress]]")[0])
    out = run_sweep(path, runs=tmp_path / "runs", store=world["store"], events=world["events"],
                    output=tmp_path / "plain", show_progress=False)
    plain = set(cells(out.sweep_dir)["cell_id"])
    hist = set(cells(world["outcome"].sweep_dir).filter(pl.col("stress") == "history")["cell_id"])
    assert plain == hist and len(plain) == 2
    assert np.isfinite(cells(out.sweep_dir)["bad_debt_usd"].to_numpy()).all()
