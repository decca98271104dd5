"""The catalog without a shared database: concurrent runs and queries, temporaries, sweeps."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from pathlib import Path

import polars as pl
import pytest

from backtest.atomic import WRITING, remove_stale_temporaries
from backtest.engine.run import execute
from backtest.errors import CatalogError
from backtest.results import Catalog
from backtest.results.catalog import RELATIONS, find_run, register_sweep
from tests.results_world import liqbt, make_world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = make_world(tmp_path_factory.mktemp("catalog"))
    w["runs"] = w["root"] / "runs"
    w["run_id"], w["run_dir"] = execute(w["config"], runs=w["runs"], store=w["store"],
                                        show_progress=False)
    return w


def test_runs_directory_holds_no_database(world):
    names = {p.name for p in world["runs"].iterdir()}
    assert names == {world["run_id"]}  # no catalog.duckdb, no lock file, no temporaries
    with Catalog(world["runs"]) as cat:
        shown = cat.query("SHOW TABLES")
        assert sorted(shown["name"]) == sorted(RELATIONS)
        assert cat.query("SELECT run_id, accounts FROM runs").rows() == [
            (world["run_id"], 2000)]
    assert {p.name for p in world["runs"].iterdir()} == names


def test_four_runs_finish_while_a_query_is_open(world, tmp_path):
    """Four `liqbt run` of one config at once, a catalog open and queried throughout: every
    run exits 0 (same second, same config: distinct run ids) and the next query sees all."""
    runs = tmp_path / "runs"
    shutil.copytree(world["run_dir"], runs / world["run_id"])
    args = ["run", str(world["config"]), "--runs", str(runs), "--store", str(world["store"]),
            "-q"]
    held = Catalog(runs)  # held open while the runs finish, queried again and again
    procs = [liqbt(*args) for _ in range(4)]
    polls = 0
    while any(p.poll() is None for p in procs):
        assert held.query("SELECT count(*) AS n FROM steps")["n"][0] > 0
        with Catalog(runs) as fresh:  # a query starting while runs are being written
            n = fresh.query("SELECT count(*) AS n FROM runs")["n"][0]
            assert 1 <= n <= 5
        polls += 1
        time.sleep(0.2)
    outs = [p.communicate() for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
        assert "Traceback" not in err
    ids = sorted(line.split()[1] for out, _ in outs for line in out.splitlines()
                 if line.startswith("run "))
    assert len(set(ids)) == 4
    assert polls > 0
    with Catalog(runs) as cat:  # the next query sees every run
        got = cat.query("SELECT run_id FROM runs ORDER BY run_id")["run_id"].to_list()
        per_run = cat.query("SELECT run_id, count(DISTINCT policy) AS n FROM steps "
                            "GROUP BY run_id")
    assert got == sorted([world["run_id"], *ids])
    assert per_run.height == 5 and set(per_run["n"]) == {2}
    assert held.query("SELECT count(*) AS n FROM runs")["n"][0] == 1  # its snapshot
    held.refresh()
    assert held.query("SELECT count(*) AS n FROM runs")["n"][0] == 5
    held.close()
    assert not [p for p in runs.iterdir() if p.name.startswith(".")]


def _fake_temporary(runs: Path, source: Path, name: str) -> Path:
    tmp = runs / name
    shutil.copytree(source, tmp)
    (tmp / WRITING).touch()
    return tmp


def test_killed_runs_temporaries_are_never_read_and_removed_by_the_next_run(world, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(world["run_dir"], runs / world["run_id"])
    dead = _fake_temporary(runs, world["run_dir"], f".{world['run_id']}x.k1ll3d.tmp")
    live = _fake_temporary(runs, world["run_dir"], f".{world['run_id']}y.l1v3.tmp")
    old_marker = runs / ".old-run.id.tmp"
    old_marker.mkdir()
    os.utime(old_marker, (time.time() - 7200, time.time() - 7200))
    young_marker = runs / ".young-run.id.tmp"
    young_marker.mkdir()
    with open(live / WRITING, "r+") as fh:  # a writer still at work holds its lock
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        with Catalog(runs) as cat:
            assert cat.run_ids() == [world["run_id"]]
            assert cat.query("SELECT count(DISTINCT run_id) AS n FROM accounts")["n"][0] == 1
        run_id, _ = execute(world["config"], runs=runs, store=world["store"],
                            show_progress=False)
        assert not dead.exists() and not old_marker.exists()
        assert live.exists() and young_marker.exists()
    assert remove_stale_temporaries(runs) == [live]  # its writer is gone now
    with Catalog(runs) as cat:
        assert cat.run_ids() == sorted([world["run_id"], run_id])


def test_a_broken_run_directory_is_left_out_with_a_warning(world, tmp_path, capsys):
    from backtest.cli import main

    runs = tmp_path / "runs"
    shutil.copytree(world["run_dir"], runs / world["run_id"])
    broken = runs / "20200101T000000-broken-00000000"
    broken.mkdir()
    (broken / "manifest.json").write_bytes(b"\xff\x00 not json")
    code = main(["query", "SELECT count(*) AS n FROM runs", "--runs", str(runs),
                 "--format", "csv"])
    cap = capsys.readouterr()
    assert code == 0 and cap.out.splitlines() == ["n", "1"]
    assert "warning: left out" in cap.err and "broken" in cap.err


def _fake_sweep(d: Path, sweep_id: str, cells: int) -> Path:
    """A sweep directory as the sweep store writes it: manifest, plan, finished cells."""
    ids = [f"c{k:02d}" for k in range(cells)]
    (d / "cells").mkdir(parents=True)
    (d / "sweep.json").write_text(json.dumps({
        "sweep_id": sweep_id, "name": sweep_id.rsplit("-", 1)[0],
        "created_at": "2026-01-01T00:00:00+00:00", "cells": cells,
        "engine": {"liqbt": "test"}}))
    pl.DataFrame({"cell_id": ids}).write_parquet(d / "plan.parquet")
    for k, c in enumerate(ids):
        (d / "cells" / c).mkdir()
        pl.DataFrame({"cell_id": [c], "event": ["e"], "bad_debt_usd": [float(k)]}).write_parquet(
            d / "cells" / c / "summary.parquet")
        pl.DataFrame({"cell_id": [c] * 3, "step": [0, 1, 2]}).write_parquet(
            d / "cells" / c / "steps.parquet")
    (d / "cells" / "stale").mkdir()  # a cell of an older plan: not shown
    pl.DataFrame({"cell_id": ["stale"], "event": ["e"], "bad_debt_usd": [1e9]}).write_parquet(
        d / "cells" / "stale" / "summary.parquet")
    return d


def test_the_same_sweep_in_two_directories_is_told_apart(tmp_path):
    runs = tmp_path / "runs"
    first = _fake_sweep(runs / "sweeps" / "margin", "margin-1234abcd", 3)
    copy = tmp_path / "elsewhere" / "margin"
    shutil.copytree(first, copy)
    with Catalog(runs) as cat:
        assert cat.query("SELECT sweep_id FROM sweeps")["sweep_id"].to_list() == [
            "margin-1234abcd"]
        assert cat.query("SELECT count(*) AS n FROM sweep_cells")["n"][0] == 3
    pointer = register_sweep(copy, runs)
    assert pointer.parent == runs / "registered-sweeps"
    assert register_sweep(copy, runs) == pointer  # idempotent: one file per directory
    assert register_sweep(first, runs) is None  # under the runs directory: found anyway
    with Catalog(runs) as cat:
        sweeps = cat.query("SELECT sweep_id, sweep_dir, cells_done FROM sweeps ORDER BY 2")
        per = cat.query("SELECT sweep_id, sweep_dir, count(*) AS n, sum(bad_debt_usd) AS b "
                        "FROM sweep_cells GROUP BY ALL ORDER BY 2")
        steps = cat.query("SELECT sweep_id, count(*) AS n FROM sweep_steps GROUP BY ALL")
        ids = {cat.sweep_id(first), cat.sweep_id(copy)}
    assert sweeps.height == 2 and len(set(sweeps["sweep_id"])) == 2
    assert all(s.startswith("margin-1234abcd@") for s in sweeps["sweep_id"])
    assert ids == set(sweeps["sweep_id"])
    assert sorted(sweeps["sweep_dir"]) == sorted([str(copy.resolve()), str(first.resolve())])
    assert per["n"].to_list() == [3, 3] and per["b"].to_list() == [3.0, 3.0]
    assert sorted(steps["n"]) == [9, 9]
    # a catalog of one sweep (what a governance report reads): that sweep alone, under the
    # id the whole directory gives it, and no runs
    other = _fake_sweep(runs / "sweeps" / "other", "other-5678abcd", 2)
    with Catalog(runs, sweeps=[copy]) as cat:
        only = cat.query("SELECT sweep_id, sweep_dir FROM sweeps")
        assert only["sweep_dir"].to_list() == [str(copy.resolve())]
        assert only["sweep_id"].to_list() == [cat.sweep_id(copy)]
        assert cat.sweep_id(copy) in ids
        assert cat.query("SELECT count(*) AS n FROM sweep_cells")["n"][0] == 3
        assert cat.query("SELECT count(*) AS n FROM runs")["n"][0] == 0
    with Catalog(runs) as cat:
        assert cat.sweep_id(other) == "other-5678abcd"


def _two_runs(world, root: Path) -> Path:
    """A runs directory holding the world's run, a twin with its own id, and a sweep."""
    runs = root / "runs"
    shutil.copytree(world["run_dir"], runs / world["run_id"])
    twin = runs / (world["run_id"][:-4] + "beef")
    shutil.copytree(world["run_dir"], twin)
    manifest = json.loads((twin / "manifest.json").read_text())
    manifest["run_id"] = twin.name
    (twin / "manifest.json").write_text(json.dumps(manifest))
    for table in ("steps", "accounts"):  # the twin's rows carry its own id
        path = twin / f"{table}.parquet"
        pl.read_parquet(path).with_columns(run_id=pl.lit(twin.name)).write_parquet(path)
    _fake_sweep(runs / "sweeps" / "margin", "margin-1234abcd", 3)
    return runs


def test_a_catalog_of_one_run_holds_that_run_only(world, tmp_path):
    """What `liqbt run` reads for its summary and report: the run just made, not every run
    kept beside it (and no sweep)."""
    runs = _two_runs(world, tmp_path)
    with Catalog(runs) as everything:
        assert everything.query("SELECT count(*) AS n FROM runs")["n"][0] == 2
        steps = everything.query("SELECT count(*) AS n FROM steps")["n"][0]
    with Catalog(runs, run_ids=[world["run_id"]]) as cat:
        assert cat.run_ids() == [world["run_id"]]
        assert cat.query("SELECT count(*) AS n FROM steps")["n"][0] * 2 == steps
        assert cat.query("SELECT count(*) AS n FROM sweeps")["n"][0] == 0
        assert cat.resolve(world["run_id"]) == world["run_id"]


def test_a_run_is_found_from_the_manifests_and_opened_alone(world, tmp_path):
    """`liqbt report RUN` and `liqbt validate RUN`: an id, prefix, 'latest' or directory names
    the run before any table is read, and the catalog they open holds that run only."""
    runs = _two_runs(world, tmp_path)
    twin = world["run_id"][:-4] + "beef"
    assert find_run("latest", runs).run_id == max(world["run_id"], twin)
    assert find_run(twin, runs).run_dir == (runs / twin).resolve()
    assert find_run(twin[:-1], runs).run_id == twin  # a unique prefix
    with pytest.raises(CatalogError, match="2 runs matching"):
        find_run(world["run_id"][:-4], runs)
    with pytest.raises(CatalogError, match="no run matching"):
        find_run("nothing-like-it", runs)
    elsewhere = tmp_path / "kept" / world["run_id"]
    shutil.copytree(world["run_dir"], elsewhere)
    outside = find_run(str(elsewhere), tmp_path / "no-runs-here")
    assert (outside.run_id, outside.run_dir) == (world["run_id"], elsewhere.resolve())
    for entry, root in ((find_run(twin, runs), runs), (outside, runs)):
        with Catalog.of_run(entry, root) as cat:
            assert cat.run_ids() == [entry.run_id]
            assert cat.run_dir(entry.run_id) == entry.run_dir
            assert cat.query("SELECT DISTINCT run_id FROM steps").rows() == [(entry.run_id,)]
            assert cat.query("SELECT count(*) AS n FROM sweeps")["n"][0] == 0


def test_a_run_outside_the_runs_directory_can_be_named_by_path(world, tmp_path):
    elsewhere = tmp_path / "kept" / world["run_id"]
    shutil.copytree(world["run_dir"], elsewhere)
    with Catalog(tmp_path / "no-runs-here") as cat:
        assert cat.run_ids() == []
        assert cat.resolve(str(elsewhere)) == world["run_id"]
        assert cat.query("SELECT count(*) AS n FROM policies")["n"][0] == 2
        assert cat.summary(world["run_id"]).height == 2
    assert not (tmp_path / "no-runs-here").exists()  # reading creates nothing


def test_bad_debt_over_open_interest_counts_what_venues_publish(world):
    """Open interest counts each perp contract once and the loans' debt, at the window start."""
    with Catalog(world["runs"]) as cat:
        summary = cat.summary(world["run_id"])
    acc = pl.read_parquet(world["run_dir"] / "accounts.parquet")
    assert summary.height >= 1
    for row in summary.iter_rows(named=True):
        a = acc.filter((pl.col("policy") == row["policy"]) & (pl.col("opened_step") < 0))
        perps, loans = a.filter(pl.col("product") == "perp"), a.filter(pl.col("product") == "loan")
        held = 0.5 * perps["initial_notional_usd"].sum() + (
            loans["initial_notional_usd"] - loans["initial_equity_usd"]).sum()
        assert held > 0
        assert row["bad_debt_pct_oi"] == pytest.approx(row["bad_debt_usd"] / held, rel=1e-9)
        notional = acc.filter(pl.col("policy") == row["policy"])["initial_notional_usd"].sum()
        assert row["bad_debt_pct_notional"] == pytest.approx(row["bad_debt_usd"] / notional,
                                                             rel=1e-9)
