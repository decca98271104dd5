"""``liqbt run CONFIG`` with an ``[ensemble]``: the run config's policies as sweep members."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from backtest.books import write_book
from backtest.books.event import book_for_event
from backtest.books.generate import BookParams
from backtest.books.io import read_book_table, write_book_table
from backtest.calibration.formatting import format_figure
from backtest.engine.config import load_run_config, read_run_config
from backtest.errors import ConfigError
from backtest.results import Catalog
from backtest.sweep import run_sweep
from backtest.sweep.from_run import BOOK_PARAMS_FILE, ensemble_sweep
from backtest.validation import read_toml
from tests.sweep_world import cells, liquidated_target, make_world, steps

RUN = """
name = "{name}"
description = "ensemble of a run config"
event = "synthetic-crash"
book = "{book}"
policies = ["hard", "partial"]

[tape]
interval = "5m"

[market]
impact_model = "sqrt"
cascade = true
depth_usd = 5_000_000

[insurance_fund]
initial_balance_usd = 10000.0

[ensemble]
members = {members}
seed = 11
{extra}
"""

# The same thing written as a sweep: one event entry with the book's accounts and symbol, the
# run config's sections as [run]. Member k of the run must be its cell k, bit for bit.
SWEEP = """
name = "{name}"
description = "ensemble of a run config"
policies = ["hard", "partial"]
workers = 1

[ensemble]
members = 3
seed = 11

[[events]]
event = "synthetic-crash"
symbol = "BTC/USDT"
interval = "5m"
accounts = 300
{book_params}

[run.market]
impact_model = "sqrt"
cascade = true
depth_usd = 5_000_000

[run.insurance_fund]
initial_balance_usd = 10000.0
"""

PARAMS = "leverage_scale = 1.3\nlong_fraction = 0.55\n"


def write_run(path: Path, book: Path, name: str = "run-ens", members: int = 3,
              extra: str = "") -> Path:
    path.write_text(RUN.format(name=name, book=book, members=members, extra=extra))
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from backtest.cli import main

    root = tmp_path_factory.mktemp("run-ensemble")
    w = make_world(root)
    params = root / "params.toml"
    params.write_text(PARAMS)
    book = book_for_event(300, "synthetic-crash", 5, interval="5m",
                          params=BookParams.model_validate({"leverage_scale": 1.3,
                                                            "long_fraction": 0.55}),
                          store=w["store"], events=w["events"])
    w["book"] = write_book(book, root / "book.parquet")
    w["params"] = params
    w["config"] = write_run(root / "run-ens.toml", w["book"])
    w["runs"] = root / "runs"
    w["argv"] = ["run", str(w["config"]), "--runs", str(w["runs"]), "--store", str(w["store"]),
                 "--events", str(w["events"]), "-q", "--workers", "1"]
    w["code"] = main(w["argv"])
    w["sweep_dir"] = w["runs"] / "sweeps" / "run-ens"
    return w


def test_members_are_cells_per_policy(world, capsys):
    assert world["code"] == 0
    s = cells(world["sweep_dir"])
    assert s.height == 2 * 3
    for policy in ("hard", "partial"):
        mine = s.filter(pl.col("policy") == policy)
        assert sorted(mine["member"]) == [0, 1, 2]
    # members redraw the book: three different book seeds, none the original's 5
    seeds = set(s["seed"])
    assert len(seeds) == 3 and 5 not in seeds
    manifest = json.loads((world["sweep_dir"] / "sweep.json").read_text())
    assert manifest["ensemble"]["members"] == 3
    assert manifest["command"] == f"liqbt run {world['config']}"
    event = manifest["config"]["resolved"]["events"][0]
    assert (event["event"], event["accounts"], event["interval"]) == ("synthetic-crash", 300,
                                                                      "5m")
    # non-default generator parameters travel in a file next to the sweep
    assert event["book_params"] == str(world["sweep_dir"] / BOOK_PARAMS_FILE)


def test_intervals_are_ordered_and_in_the_catalog(world):
    with Catalog(world["runs"]) as cat:
        iv = cat.query("SELECT * FROM sweep_intervals WHERE sweep_id LIKE 'run-ens-%'")
        raw = cat.query("SELECT policy, liquidated_notional_usd FROM sweep_cells "
                        "WHERE sweep_id LIKE 'run-ens-%'")
    assert set(iv["policy"]) == {"hard", "partial"} and set(iv["members"]) <= {3}
    for r in iv.drop_nulls("p50").iter_rows(named=True):
        assert r["p5"] <= r["p50"] <= r["p95"], r
    row = iv.filter((pl.col("policy") == "hard") &
                    (pl.col("metric") == "liquidated_notional_usd")).row(0, named=True)
    vals = raw.filter(pl.col("policy") == "hard")["liquidated_notional_usd"].to_numpy()
    assert row["p50"] == pytest.approx(np.percentile(vals, 50), rel=1e-12)
    assert (world["sweep_dir"] / "intervals.parquet").is_file()


def test_cli_prints_the_interval_table(world, capsys):
    from backtest.cli import main

    code = main(world["argv"] + ["--report"])
    captured = capsys.readouterr()
    assert code == 0
    assert "6 cells (6 finished before, 0 run now" in captured.out
    assert "p5 / p50 / p95 across members" in captured.out
    assert "Bad debt" in captured.out and "Liquidated notional" in captured.out
    assert "sweep_intervals" in captured.out
    assert "no HTML report of an ensemble" in captured.err


def test_rerun_skips_finished_members(world):
    from backtest.sweep.from_run import run_ensemble

    again = run_ensemble(world["config"], runs=world["runs"], store=world["store"],
                         events=world["events"], workers=1, show_progress=False)
    assert (again.total, again.skipped, again.computed) == (6, 6, 0)
    grown = run_ensemble(world["config"], ["ensemble.members=4"], runs=world["runs"],
                         store=world["store"], events=world["events"], workers=1,
                         show_progress=False)
    assert (grown.total, grown.skipped, grown.computed) == (8, 6, 2)


def test_members_equal_the_equivalent_sweep(world, tmp_path):
    """No second path: member k of the run is cell k of the same ensemble written as a sweep."""
    mine = cells(world["sweep_dir"]).filter(pl.col("member") < 3)
    sweep = tmp_path / "same.toml"
    sweep.write_text(SWEEP.format(name="same", book_params=f'book_params = "{world["params"]}"'))
    out = run_sweep(sweep, runs=tmp_path / "runs", store=world["store"],
                    events=world["events"], show_progress=False)
    theirs = cells(out.sweep_dir)
    assert theirs.height == 6
    # the same inputs hash to the same cells, and the cells hold the same numbers
    assert mine["cell_id"].to_list() == theirs["cell_id"].to_list()
    assert mine.equals(theirs)
    mine_steps = steps(world["sweep_dir"]).filter(
        pl.col("cell_id").is_in(mine["cell_id"].to_list()))
    assert mine_steps.height > 0 and mine_steps.equals(steps(out.sweep_dir))


@pytest.mark.dask
def test_dask_members_are_bit_identical(world, tmp_path):
    distributed = pytest.importorskip("distributed", reason="liqbt[dask] not installed")
    from backtest.sweep.from_run import run_ensemble

    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        out = run_ensemble(world["config"], runs=tmp_path / "runs", store=world["store"],
                           events=world["events"], scheduler=cluster.scheduler_address,
                           show_progress=False)
    assert out.computed == 6 and out.backend.startswith("dask")
    mine = cells(world["sweep_dir"]).filter(pl.col("member") < 3)
    assert cells(out.sweep_dir).equals(mine)


# ---------------------------------------------------------------- books and errors


def test_default_parameters_need_no_file(world, tmp_path):
    book = book_for_event(300, "synthetic-crash", 2, interval="5m", store=world["store"],
                          events=world["events"])
    path = write_book(book, tmp_path / "plain.parquet")
    cfg, ens = read_run_config(write_run(tmp_path / "r.toml", path))
    sweep = ensemble_sweep(cfg, ens, tmp_path / "r.toml", tmp_path / "runs")
    assert sweep.events[0].book_params is None
    assert sweep.ensemble.members == 3 and sweep.policies == ["hard", "partial"]
    assert sweep.run.market.impact_model == "sqrt"
    assert sweep.run.insurance_fund.initial_balance_usd == 10000.0
    assert not (tmp_path / "runs" / "sweeps" / "run-ens" / BOOK_PARAMS_FILE).exists()


def test_calibrated_book_uses_its_file(world, tmp_path):
    cal = tmp_path / "fitted.toml"
    cal.write_text("""
[book]
leverage_scale = 0.9
[response]
enabled = true
share = 0.8
delay_minutes = 30.0
[fit]
fitted_leverage_scale = 0.9
[[fit.event]]
event = "synthetic-crash"
venue = "all-cex"
asset = "BTC"
in_fit = true
[[leave_one_out]]
event = "a"
fitted_leverage_scale = 0.7
[[leave_one_out]]
event = "b"
fitted_leverage_scale = 1.1
""")
    from backtest.calibration.fitted import calibrated_params

    params, meta = calibrated_params(cal, "synthetic-crash", "BTC")
    book = book_for_event(300, "synthetic-crash", 2, interval="5m", params=params,
                          store=world["store"], events=world["events"])
    book.meta.update(meta)
    path = write_book(book, tmp_path / "cal.parquet")
    cfg, ens = read_run_config(write_run(tmp_path / "r.toml", path))
    sweep = ensemble_sweep(cfg, ens, tmp_path / "r.toml", tmp_path / "runs")
    assert sweep.events[0].book_params == cal
    # drawn at another size than the file gives: its parameters are written, the fit's
    # leave-one-out ranges kept
    sized = params.model_copy(update={"size_usd": 2e6})
    book = book_for_event(300, "synthetic-crash", 2, interval="5m", params=sized,
                          store=world["store"], events=world["events"])
    book.meta.update(meta)
    path = write_book(book, tmp_path / "sized.parquet")
    cfg, ens = read_run_config(write_run(tmp_path / "r2.toml", path))
    sweep = ensemble_sweep(cfg, ens, tmp_path / "r2.toml", tmp_path / "runs")
    written = sweep.events[0].book_params
    assert written == tmp_path / "runs" / "sweeps" / "run-ens" / BOOK_PARAMS_FILE
    again, again_meta = calibrated_params(written, "synthetic-crash", "BTC")
    assert again == sized and again_meta["response"] == meta["response"]
    from backtest.sweep.ensemble import _jackknife_range

    # the written file keeps the fit and its refits: the same jackknife range as the original
    # (full fit 0.9, refits 0.7 and 1.1: standard error 0.2, so 0.9 +- sqrt(3) x 0.2)
    kept, original = (_jackknife_range(written, "leverage_scale"),
                      _jackknife_range(cal, "leverage_scale"))
    assert (kept.low, kept.high) == (original.low, original.high)
    assert (kept.low, kept.high) == pytest.approx((0.9 - 3 ** 0.5 * 0.2, 0.9 + 3 ** 0.5 * 0.2))
    # drawn from the file for a venue (`liqbt book generate --represents`): members stand for
    # that venue too, and keep the fit's record of its events (which targets were in the fit)
    venue, venue_meta = calibrated_params(cal, "synthetic-crash", "BTC", represents="bitmex")
    book = book_for_event(300, "synthetic-crash", 2, interval="5m", params=venue,
                          store=world["store"], events=world["events"])
    book.meta.update(venue_meta)
    path = write_book(book, tmp_path / "venue.parquet")
    cfg, ens = read_run_config(write_run(tmp_path / "r3.toml", path))
    written = ensemble_sweep(cfg, ens, tmp_path / "r3.toml", tmp_path / "runs3").events[0] \
        .book_params
    kept_file, original_file = read_toml(written), read_toml(cal)
    assert kept_file["book"]["represents"] == "bitmex"
    assert kept_file["fit"]["event"] == original_file["fit"]["event"]
    assert kept_file["fit"]["drawn_from"] == str(cal)  # whose coverage check it takes


def test_imported_book_is_refused(world, tmp_path):
    frame, meta = read_book_table(world["book"])
    path = write_book_table(frame, {"symbol": meta["symbol"]}, tmp_path / "real.parquet")
    cfg, ens = read_run_config(write_run(tmp_path / "r.toml", path))
    with pytest.raises(ConfigError, match=r"needs a generated book.*r\.toml|r\.toml.*generated"):
        ensemble_sweep(cfg, ens, tmp_path / "r.toml", tmp_path / "runs")


def test_tape_path_is_refused(world, tmp_path):
    path = write_run(tmp_path / "r.toml", world["book"])
    path.write_text(path.read_text().replace('interval = "5m"',
                                             'path = "some.parquet"'))
    cfg, ens = read_run_config(path)
    with pytest.raises(ConfigError, match="tape.path"):
        ensemble_sweep(cfg, ens, path, tmp_path / "runs")


@pytest.mark.parametrize("extra, needle", [
    ("memebrs = 3", "ensemble.memebrs"),
    ("depth_factor = { low = 2.0, high = 1.0 }", "ensemble.depth_factor"),
    ("response_share = { low = 0.2, high = 1.5 }", "ensemble.response_share"),
    ("oracle_lag_minutes = true", "ensemble.oracle_lag_minutes"),
    ('condition_policy = "soft"', "ensemble.condition_policy"),
])
def test_bad_ensemble_fields_are_named(world, tmp_path, extra, needle):
    from backtest.cli import main

    path = write_run(tmp_path / "bad.toml", world["book"], extra=extra)
    cfg, ens = read_run_config(path)
    with pytest.raises(ConfigError) as err:
        ensemble_sweep(cfg, ens, path, tmp_path / "runs")
    assert needle in str(err.value) and "bad.toml" in str(err.value)
    assert main(["run", str(path), "--runs", str(tmp_path / "runs"), "--store",
                 str(world["store"]), "--events", str(world["events"]), "-q"]) == 2


def test_zero_members_and_a_non_table_are_named(world, tmp_path):
    path = write_run(tmp_path / "zero.toml", world["book"], members=0)
    cfg, ens = read_run_config(path)
    with pytest.raises(ConfigError, match="ensemble.members"):
        ensemble_sweep(cfg, ens, path, tmp_path / "runs")
    flat = tmp_path / "flat.toml"
    flat.write_text('ensemble = 3\n' + path.read_text().split("[ensemble]")[0])
    with pytest.raises(ConfigError, match="field 'ensemble'"):
        read_run_config(flat)


def test_other_commands_refuse_an_ensemble(world, tmp_path):
    """Only ``liqbt run`` runs one; a single-run reader (validate, calibrate) says so."""
    path = write_run(tmp_path / "r.toml", world["book"])
    with pytest.raises(ConfigError, match=r"\[ensemble\].*liqbt run"):
        load_run_config(path)


def test_workers_without_an_ensemble_is_an_error(world, tmp_path, capsys):
    from backtest.cli import main

    path = tmp_path / "plain.toml"
    path.write_text(write_run(tmp_path / "x.toml", world["book"]).read_text().split(
        "[ensemble]")[0])
    assert main(["run", str(path), "--workers", "2"]) == 2
    assert "--workers" in capsys.readouterr().err



def test_validate_gives_each_policys_interval_against_the_target(world, tmp_path):
    """``liqbt validate SWEEP_DIR``: per policy, p5 / p50 / p95 across the members of the
    liquidated notional over the target's window, and whether the real range meets them."""
    from backtest.calibration.formatting import format_figure
    from backtest.cli.validate import ensemble_text

    text = ensemble_text(world["sweep_dir"], world["runs"],
                         liquidated_target(tmp_path, world["events"]))
    with Catalog(world["runs"]) as cat:
        per_member = cat.query("""
            SELECT c.policy, c.member, sum(st.liquidated_notional_usd) AS liq
            FROM sweep_steps st JOIN sweep_cells c USING (sweep_id, cell_id)
            WHERE c.stress_kind = 'none' GROUP BY ALL""")
    for policy in ("hard", "partial"):
        liq = per_member.filter(pl.col("policy") == policy)["liq"].to_numpy()
        assert liq.size >= 3 and liq.max() > 2.0
        q = np.quantile(liq, [0.05, 0.5, 0.95])
        line = next(x for x in text.splitlines() if x.strip().startswith(policy))
        assert " / ".join(format_figure(v, "USD") for v in q) in line
        assert line.endswith("real outside p5-p95")  # the real $1-2 is far below
    assert "market-liquidated" in text and "whole book" in text


def test_validate_conditions_the_members_on_a_target(world, tmp_path):
    """``[ensemble] condition_on``: ``liqbt validate`` shows the figures again over the members
    whose ``condition_policy`` cell lies within the conditioning target's real range, the same
    members for every policy; a target the event does not have is an error naming it."""
    from backtest.cli import main
    from backtest.cli.validate import ensemble_text

    extra = 'condition_on = ["market-liquidated"]\ncondition_policy = "hard"\n'
    config = write_run(tmp_path / "cond.toml", world["book"], name="run-cond", extra=extra)
    runs = tmp_path / "runs"
    assert main(["run", str(config), "--runs", str(runs), "--store", str(world["store"]),
                 "--events", str(world["events"]), "-q", "--workers", "1"]) == 0
    with Catalog(runs) as cat:
        per_member = cat.query("""
            SELECT c.policy, c.seed, sum(st.liquidated_notional_usd) AS liq
            FROM sweep_steps st JOIN sweep_cells c USING (sweep_id, cell_id)
            WHERE c.stress_kind = 'none' GROUP BY ALL ORDER BY c.policy, liq""")
    hard = per_member.filter(pl.col("policy") == "hard")
    assert hard["liq"].n_unique() == 3
    low = float(hard["liq"][0])  # only the member with the least liquidated under "hard"
    seed = int(hard["seed"][0])
    pool = liquidated_target(tmp_path, world["events"], low=low * (1 - 1e-6), high=low * 1.0001)
    text = ensemble_text(runs / "sweeps" / "run-cond", runs, pool)
    head, cond = text.split("Conditioned on market-liquidated: ")
    assert cond.startswith("1 of 3 members kept, those whose hard cells")
    assert "conditioned on (in fit)" in cond and "conditioned on" not in head
    manifest = json.loads((runs / "sweeps" / "run-cond" / "sweep.json").read_text())
    member = next(e["member"] for e in manifest["events"] if int(e["seed"]) == seed)
    assert f"members kept (sweep_cells.member): {member}\n" in cond
    # what the kept member drew: min = median = max = its own draw, beside the drawn range
    drew = next(e["member_inputs"] for e in manifest["events"] if int(e["seed"]) == seed)
    line = next(x for x in cond.splitlines() if x.strip().startswith("depth_factor"))
    v = f"{drew['depth_factor']:.4g}"
    assert f"{v} / {v} / {v}" in line and "loguniform" in line
    partial = float(per_member.filter((pl.col("policy") == "partial")
                                      & (pl.col("seed") == seed))["liq"][0])
    line = next(x for x in cond.splitlines() if x.strip().startswith("partial"))
    one = format_figure(partial, "USD")
    assert f"{one} / {one} / {one}" in line  # the same member for every policy
    # and the kept members' figures over the whole window, whatever a target holds
    kept_line = next(x for x in cond.splitlines() if x.strip().startswith("partial: "))
    assert f"liquidated {one} / {one} / {one}; bad debt" in kept_line
    # without a deciding policy each policy keeps its own members: "partial" none here
    from backtest.calibration.conditioning import conditioned_members, kept_source
    from backtest.calibration.sweep_sources import SweepTables, sweep_event_facts

    infos = manifest["events"]
    with Catalog(runs) as cat:
        sid = cat.sweep_id(runs / "sweeps" / "run-cond")
        facts = sweep_event_facts(cat, sid, infos, infos[0].get("event_key"), infos[0]["event"])
        source = SweepTables(cat, sid, infos[0]["event"], ["hard", "partial"],
                             facts.open_interest_usd, by="policy")
        kept, how = conditioned_members([("synthetic-crash", facts, source)], pool,
                                        ["market-liquidated"], [int(e["seed"]) for e in infos],
                                        None)
        assert kept == {"hard": frozenset({seed}), "partial": frozenset()}
        assert "hard 1 of 3, partial 0 of 3" in how
        window = (pool[0].window_start, pool[0].window_end)
        figures = kept_source(source, kept, 0.5).figures(*window, True, "perp")
    assert figures["hard"]["liquidated_notional_usd"] == pytest.approx(low)
    assert figures["partial"]["liquidated_notional_usd"] is None
    # a range no member reaches: said plainly
    (tmp_path / "none").mkdir()
    none = ensemble_text(runs / "sweeps" / "run-cond", runs,
                         liquidated_target(tmp_path / "none", world["events"], 1.0, 2.0))
    assert "0 of 3 members kept" in none and "no member is consistent" in none
    other = [dataclasses.replace(t, id="other") for t in pool]
    with pytest.raises(ConfigError, match="market-liquidated"):
        ensemble_text(runs / "sweeps" / "run-cond", runs, other)
