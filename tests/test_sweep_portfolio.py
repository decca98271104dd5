"""Portfolio sweeps (``kind = "portfolio"``): cells equal direct portfolio runs, backends agree,
stress and ensembles, the catalog views, and clear errors for bad config values."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from backtest.errors import ConfigError
from backtest.portfolio import PortfolioParams, read_portfolio_book, simulate_portfolio
from backtest.portfolio.pipeline import run_portfolio_config
from backtest.portfolio.run_config import load_portfolio_config
from backtest.results import Catalog
from backtest.results.metrics import METRICS, PORTFOLIO
from backtest.sweep import load_sweep_config, run_sweep
from backtest.sweep.portfolio_cell import stress_aligned
from backtest.sweep.portfolio_plan import align_event, tape_selection
from backtest.sweep.stress import BlockBootstrap, CompressTime, ScaleShock, apply_stress
from tests.sweep_world import cells, portfolio_sweep_toml, steps
from tests.test_portfolio_run import make_portfolio_world

RUN_CONFIG = """
name = "direct"
event = "synthetic-crash"
seed = 5

[portfolio]
accounts = 300
orders = ["protocol", "largest"]

[portfolio.params]
insurance_fund_usd = 1000.0
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The synthetic BTC + ETH world and a finished portfolio sweep (2 orders x 4 sets x 4
    stresses, seed 5)."""
    root = tmp_path_factory.mktemp("psweep")
    w = make_portfolio_world(root, RUN_CONFIG)
    w["sweep"] = portfolio_sweep_toml(root / "psweep.toml", extra="seeds = [5]")
    w["runs"] = root / "runs"
    w["outcome"] = run_sweep(w["sweep"], runs=w["runs"], store=w["store"], events=w["events"],
                             show_progress=False)
    return w


def _cell(frame: pl.DataFrame, **coords) -> dict:
    rows = frame.filter(*(pl.col(k) == v for k, v in coords.items()))
    assert rows.height == 1, coords
    return rows.row(0, named=True)


def test_every_cell_is_written_with_its_run_kind(world):
    out = world["outcome"]
    assert out.total == 2 * 4 * 4 and out.computed == out.total
    c = cells(out.sweep_dir)
    assert set(c["run_kind"]) == {PORTFOLIO} and set(c["family"]) == {"portfolio"}
    assert set(c["policy"]) == {"protocol", "largest"}
    assert set(c["stress"]) == {"history", "scale x1.5", "compress x2", "bootstrap b12 s0"}
    assert c["symbol"][0] == "BTC/USDT, ETH/USDT" and c["accounts"][0] == 300
    # measures a portfolio cell has no notion of are null, the others are computed
    assert c["adl_notional_usd"].null_count() == c.height
    assert c["liquidated_notional_usd"].min() > 0
    # a harsher crash liquidates more, compression keeps half the steps
    hist = c.filter(pl.col("stress") == "history")
    scaled = c.filter(pl.col("stress") == "scale x1.5")
    assert scaled["liquidated_notional_usd"].sum() > hist["liquidated_notional_usd"].sum()
    assert set(c.filter(pl.col("stress") == "compress x2")["steps"]) == {36}
    # resumable: a second run computes nothing
    again = run_sweep(world["sweep"], runs=world["runs"], store=world["store"],
                      events=world["events"], show_progress=False)
    assert again.computed == 0 and again.skipped == out.total


def test_a_cell_equals_the_direct_portfolio_run_bit_for_bit(world):
    """Same accounts, seed and parameters: the cell's metrics are the catalog summary of a
    ``liqbt portfolio run`` of the same config, and its per-step series the run's steps."""
    cfg = load_portfolio_config(world["config"])
    run_id, _, _ = run_portfolio_config(cfg, world["config"], runs=world["runs"],
                                        store=world["store"], events=world["events"])
    c = cells(world["outcome"].sweep_dir)
    st = steps(world["outcome"].sweep_dir)
    with Catalog(world["runs"]) as cat:
        summary = cat.summary(run_id)
        run_steps = cat.query(f"SELECT * FROM steps WHERE run_id = '{run_id}' "
                              "ORDER BY policy, step")
    for order in ("protocol", "largest"):
        cell = _cell(c, policy=order, stress="history",
                     param_set="close_factor=0.5, assets.ETH.liquidation_bonus=0.05")
        row = summary.filter(pl.col("policy") == order).row(0, named=True)
        for m in METRICS:
            assert cell[m.name] == row[m.name], (order, m.name, cell[m.name], row[m.name])
        series = st.filter(pl.col("cell_id") == cell["cell_id"])
        ran = run_steps.filter(pl.col("policy") == order)
        for col in ("liquidations", "liquidated_notional_usd", "bad_debt_cum_usd",
                    "insurance_fund_usd", "accounts_liquidated_cum"):
            assert series[col].to_list() == ran[col].to_list(), (order, col)


def test_a_grid_cell_equals_simulate_portfolio_with_its_parameters(world):
    c = cells(world["outcome"].sweep_dir)
    cell = _cell(c, policy="largest", stress="history",
                 param_set="close_factor=0.35, assets.ETH.liquidation_bonus=0.075")
    spec = json.loads((world["outcome"].sweep_dir / "cells" / cell["cell_id"] /
                       "cell.json").read_text())["cell"]
    aligned = align_event(tape_selection(load_sweep_config(world["sweep"]).events[0]),
                          world["store"], world["events"])
    book = read_portfolio_book(spec["run_config"]["book"], symbols=aligned.symbols)
    params = PortfolioParams(order="largest", close_factor=0.35, insurance_fund_usd=1000.0,
                             assets={"ETH": {"liquidation_threshold": 0.83,
                                             "loan_to_value": 0.805,
                                             "liquidation_bonus": 0.075,
                                             "maintenance_margin_rate": 0.03,
                                             "liquidation_penalty": 0.015}})
    direct = simulate_portfolio(aligned, book, params).summary()
    assert cell["liquidated_notional_usd"] == direct["liquidated_notional_usd"]
    assert cell["bad_debt_usd"] == direct["bad_debt_usd"]
    assert cell["liquidations"] == direct["liquidations"]
    assert cell["insurance_fund_end_usd"] == direct["insurance_fund_end_usd"]
    # and the bonus matters: the 5% cell of the same order differs
    other = _cell(c, policy="largest", stress="history",
                  param_set="close_factor=0.35, assets.ETH.liquidation_bonus=0.05")
    assert other["penalties_usd"] != cell["penalties_usd"]


@pytest.mark.dask
def test_local_processes_and_dask_give_bit_identical_cells(world, tmp_path):
    """Two spawned local processes and a Dask cluster against the in-process sweep."""
    ref_summary = cells(world["outcome"].sweep_dir).drop("simulate_seconds", strict=False)
    ref_steps = steps(world["outcome"].sweep_dir)
    local = run_sweep(world["sweep"], runs=tmp_path / "runs", store=world["store"],
                      events=world["events"], workers=2, output=tmp_path / "local",
                      show_progress=False)
    assert local.backend == "local processes (2)" and local.computed == ref_summary.height
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


def test_sweep_cells_view_and_sql_ranking_see_portfolio_cells(world):
    with Catalog(world["runs"]) as cat:
        frame = cat.query("""
            SELECT policy, param_set, avg(bad_debt_usd) AS bad_debt_usd, count(*) AS cells
            FROM sweep_cells WHERE run_kind = 'portfolio' AND stress = 'history'
            GROUP BY ALL ORDER BY bad_debt_usd, policy, param_set""")
        assert frame.height == 8 and set(frame["cells"]) == {1}
        n = cat.query("SELECT count(*) AS n FROM sweep_steps st JOIN sweep_cells c "
                      "USING (sweep_id, cell_id) WHERE c.run_kind = 'portfolio' "
                      "AND st.price_symbol = 'BTC/USDT'")["n"][0]
        assert n > 0


def test_ensemble_members_redraw_the_book_and_give_intervals(world, tmp_path):
    path = portfolio_sweep_toml(tmp_path / "ens.toml", name="portfolio-ens",
                                grid="close_factor = [0.35, 0.5]", stress=False,
                                extra="[ensemble]\nmembers = 3\nseed = 2\n")
    out = run_sweep(path, runs=tmp_path / "runs", store=world["store"], events=world["events"],
                    show_progress=False)
    assert out.members == 3 and out.total == 2 * 2 * 3
    c = cells(out.sweep_dir)
    assert sorted(set(c["member"])) == [0, 1, 2] and c["seed"].n_unique() == 3
    intervals = pl.read_parquet(out.intervals)
    bad = intervals.filter(pl.col("metric") == "liquidated_notional_usd")
    assert bad.height == 4 and set(bad["members"]) == {3}
    assert (bad["p5"] <= bad["p50"]).all() and (bad["p50"] <= bad["p95"]).all()
    assert intervals.filter(pl.col("metric") == "adl_notional_usd").height == 0  # null


def test_stress_moves_every_asset_with_the_same_transform(world):
    aligned = align_event(tape_selection(load_sweep_config(world["sweep"]).events[0]),
                          world["store"], world["events"])
    a = 1
    column = {"timestamp": aligned.timestamp,
              **{k: aligned.__dict__[k][:, a].copy() for k in ("open", "high", "low", "close",
                                                                "volume", "realized_vol")}}
    for spec in (ScaleShock(kind="scale", k=1.5), CompressTime(kind="compress", factor=3),
                 BlockBootstrap(kind="bootstrap", block_steps=6)):
        out = stress_aligned(aligned, spec, 9)
        one = apply_stress(column, spec, 9, aligned.interval_seconds * 1000)
        assert np.array_equal(out.close[:, a], one["close"])
        assert np.array_equal(out.timestamp, one["timestamp"])
    # a bootstrap draws the same blocks for every asset: each step's BTC and ETH candle shapes
    # come from one historical step
    boot = stress_aligned(aligned, BlockBootstrap(kind="bootstrap", block_steps=6), 9)
    rel = np.log(boot.close / boot.open)
    hist = np.log(aligned.close / aligned.open)
    src = [int(np.argmin(np.abs(hist[:, 0] - r))) for r in rel[:, 0]]
    assert np.allclose(rel[:, 1], hist[src, 1])


def _load_error(tmp_path, text: str, name: str = "bad.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        cfg = load_sweep_config(path)
        from backtest.sweep.portfolio_plan import policy_variants

        policy_variants(cfg, path, None)
    assert name in str(exc.value)
    return str(exc.value)


@pytest.mark.parametrize(("change", "expected"), [
    (("close_factor = [0.35, 0.5]", "close_factor = [0.35, 2.0]"),
     ["close_factor=2", "close_factor", "less than or equal to 1"]),
    (("close_factor = [0.35, 0.5]", "clse_factor = [0.35]"),
     ["grid.clse_factor", "no parameter 'clse_factor'", "assets.<BASE>.liquidation_bonus"]),
    (("close_factor = [0.35, 0.5]", "liquidation_bonus = [0.05]"),
     ["grid.liquidation_bonus", "assets.ETH.liquidation_bonus"]),
    (('"assets.ETH.liquidation_bonus" = [0.05, 0.075]', '"assets.ETH.liquidation_bonus" = [0.3]'),
     ["assets.ETH.liquidation_bonus=0.3", "liquidation_threshold x (1 + liquidation_bonus)"]),
    (('"assets.ETH.liquidation_bonus" = [0.05, 0.075]', '"assets.DOGE.liquidation_bonus" = [0.1]'),
     ["asset DOGE has no default risk parameters"]),
    (('policies = ["protocol", "largest"]', 'policies = ["hard"]'),
     ["field 'policies'", "collateral orders", "hard"]),
    (("accounts = 300", 'accounts = 300\nsymbol = "BTC/USDT"'),
     ["events[0].symbol", "not for a portfolio sweep"]),
    (("[grid]", "[run.market]\nimpact_model = \"sqrt\"\n[grid]"), ["field 'run'"]),
    (("insurance_fund_usd = 1000.0", "insurance_fund_usd = 1000.0\norder = \"largest\""),
     ["params.order", "policies"]),
    (("insurance_fund_usd = 1000.0", "insurance_fund_usd = -1.0"),
     ["portfolio.params.insurance_fund_usd", "greater than or equal to 0"]),
    (("workers = 1", "workers = 1\n[ensemble]\nmembers = 2\nleverage_scale = "
                     "{ low = 0.1, high = 0.2 }"),
     ["ensemble.leverage_scale", "book seed only"]),
])
def test_bad_portfolio_sweep_values_are_clear_errors(tmp_path, change, expected):
    text = portfolio_sweep_toml(tmp_path / "ok.toml").read_text()
    assert change[0] in text
    msg = _load_error(tmp_path, text.replace(change[0], change[1], 1))
    for part in expected:
        assert part in msg, (part, msg)


def test_portfolio_fields_are_refused_in_a_single_asset_sweep(tmp_path):
    from tests.sweep_world import sweep_toml

    text = sweep_toml(tmp_path / "s.toml").read_text()
    msg = _load_error(tmp_path, text + "\n[portfolio.params]\nclose_factor = 0.4\n")
    assert "field 'portfolio'" in msg and 'kind = "portfolio"' in msg
    msg = _load_error(tmp_path, text.replace('interval = "5m"', 'interval = "5m"\n'
                                             'missing = "hold"', 1))
    assert "events[0].missing" in msg


OPTIONS_SWEEP = """
name = "options-sweep"
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
"""


def test_an_options_cell_equals_the_options_run_of_a_portfolio_config(tmp_path):
    """The options study of ``liqbt portfolio run`` (kind ``options``) and the options sweep
    cell with the same accounts, seed and rule give the same measures, bit for bit."""
    from backtest.options.run_record import options_run_id
    from tests.test_portfolio_run import CONFIG

    w = make_portfolio_world(tmp_path, CONFIG)
    cfg = load_portfolio_config(w["config"])
    run_id, _, _ = run_portfolio_config(cfg, w["config"], runs=tmp_path / "runs",
                                        store=w["store"], events=w["events"])
    path = tmp_path / "options.toml"
    path.write_text(OPTIONS_SWEEP)
    out = run_sweep(path, runs=tmp_path / "runs", store=w["store"], events=w["events"],
                    show_progress=False)
    c = cells(out.sweep_dir)
    assert out.total == 2 and set(c["run_kind"]) == {"options"}
    cell = _cell(c, param_set="penalty_rate=0.005")
    with Catalog(tmp_path / "runs") as cat:
        row = cat.summary(options_run_id(run_id)).row(0, named=True)
        view = cat.query("SELECT count(*) AS n FROM sweep_cells WHERE run_kind = 'options'")
    assert view["n"][0] == 2
    for m in METRICS:
        assert cell[m.name] == row[m.name], (m.name, cell[m.name], row[m.name])
    assert cell["liquidations"] > 0 and cell["user_loss_to_liquidation_usd"] is not None
    # a doubled penalty doubles what liquidated accounts pay on the same liquidations
    other = _cell(c, param_set="penalty_rate=0.01")
    assert other["penalties_usd"] > cell["penalties_usd"]


@pytest.mark.parametrize(("change", "expected"), [
    (("penalty_rate = [0.005, 0.01]", "penalty = [0.01]"),
     ["grid.penalty", "no parameter 'penalty'", "grid.price_range"]),
    (("penalty_rate = [0.005, 0.01]", "penalty_rate = [1.5]"),
     ["penalty_rate=1.5", "penalty_rate", "less than 1"]),
    (('policies = ["options"]', 'policies = ["protocol"]'), ["field 'policies'", "options"]),
    (("workers = 1", "workers = 1\n[[stress]]\nkind = \"iv\"\nfactor = 0.0"),
     ["stress[0]", "factor", "greater than 0"]),
])
def test_bad_options_sweep_values_are_clear_errors(tmp_path, change, expected):
    from backtest.sweep.options_cell import options_variants

    assert change[0] in OPTIONS_SWEEP
    path = tmp_path / "bad.toml"
    path.write_text(OPTIONS_SWEEP.replace(change[0], change[1], 1))
    with pytest.raises(ConfigError) as exc:
        options_variants(load_sweep_config(path), path)
    msg = str(exc.value)
    assert "bad.toml" in msg
    for part in expected:
        assert part in msg, (part, msg)
