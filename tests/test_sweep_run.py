"""Sweeps end to end: local run, catalog ranking, resume, Dask LocalCluster, SIGKILL + restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from backtest.cli import main
from backtest.results import Catalog
from backtest.sweep import SweepStore, run_sweep
from backtest.sweep.store import CELL_FILES
from tests.sweep_world import make_world, sweep_toml

RANKING = """
WITH r AS (
    SELECT policy, param_set, event, stress,
           rank() OVER (PARTITION BY sweep_id, event, seed, stress
                        ORDER BY bad_debt_usd) AS bad_debt_rank
    FROM sweep_cells WHERE sweep_id LIKE 'synthetic-%')
SELECT policy, param_set, avg(bad_debt_rank) AS mean_rank, count(*) AS cells
FROM r GROUP BY ALL ORDER BY mean_rank, policy, param_set
"""


def cells_frame(sweep_dir: Path, name: str) -> pl.DataFrame:
    files = sorted(Path(sweep_dir).glob(f"cells/*/{name}.parquet"))
    return pl.concat([pl.read_parquet(f) for f in files]).sort(
        ["cell_id", "step"] if name == "steps" else ["cell_id"])


def results(sweep_dir: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Summary (without timings) and steps of every cell, sorted."""
    return (cells_frame(sweep_dir, "summary").drop("simulate_seconds"),
            cells_frame(sweep_dir, "steps"))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    w = make_world(root)
    w["sweep"] = sweep_toml(root / "sweep.toml")
    w["runs"] = root / "runs"
    w["outcome"] = run_sweep(w["sweep"], runs=w["runs"], store=w["store"], events=w["events"],
                             show_progress=False)
    return w


def test_local_run_writes_every_cell_and_registers(world):
    out = world["outcome"]
    assert out.total == 48 and out.computed == 48 and out.skipped == 0
    store = SweepStore(out.sweep_dir)
    assert len(store.done_ids()) == 48
    for d in store.cells.iterdir():
        assert sorted(p.name for p in d.iterdir()) == sorted(CELL_FILES)
    assert not list(store.tmp.iterdir())
    manifest = store.manifest()
    assert manifest["cells"] == 48 and manifest["last_run"]["cells_computed"] == 48
    assert {i["kind"].split()[0] for i in manifest["inputs"]} >= {"tape", "book", "policy"}
    with Catalog(world["runs"], read_only=True) as cat:
        cells = cat.query("SELECT * FROM sweep_cells")
        assert cells.height == 48
        assert set(cells["stress"]) == {"history", "scale x1.5", "compress x2",
                                        "bootstrap b12 s0"}
        assert cells["sweep_id"].unique().to_list() == [out.sweep_id]
        steps = cat.query("SELECT stress, count(*) AS n FROM sweep_steps JOIN sweep_cells "
                          "USING (sweep_id, cell_id) WHERE event = 'synthetic-crash' "
                          "GROUP BY stress ORDER BY stress")
        n = dict(zip(steps["stress"], steps["n"], strict=True))
        assert n["history"] == 6 * 288 and n["compress x2"] == 6 * 144
        ranks = cat.query(RANKING)
    assert ranks.height == 6 and set(ranks["cells"]) == {8}
    assert ranks["mean_rank"].is_sorted()


def test_stress_changes_the_outcome(world):
    s = cells_frame(world["outcome"].sweep_dir, "summary")
    hist = s.filter(pl.col("stress") == "history")["liquidated_notional_usd"].sum()
    shock = s.filter(pl.col("stress") == "scale x1.5")["liquidated_notional_usd"].sum()
    assert shock > hist > 0


def test_rerun_skips_finished_cells(world):
    out = world["outcome"]
    before = {p: p.stat().st_mtime_ns for p in out.sweep_dir.glob("cells/*/summary.parquet")}
    again = run_sweep(world["sweep"], runs=world["runs"], store=world["store"],
                      events=world["events"], show_progress=False)
    assert again.skipped == 48 and again.computed == 0 and again.sweep_id == out.sweep_id
    assert {p: p.stat().st_mtime_ns for p in before} == before


def test_a_change_in_any_simulation_source_recomputes_every_cell(world, tmp_path, monkeypatch):
    """Cell ids take the digest of every source a result depends on (kernels, engine, results,
    ...; not reports or the command line): a resumed sweep does not keep cells computed by
    other code."""
    import shutil

    from backtest import provenance

    package = tmp_path / "backtest"
    shutil.copytree(provenance.PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(provenance, "PACKAGE", package)
    assert package / "engine" / "market.py" in provenance.simulation_sources()
    assert not any("report" in p.parts for p in provenance.simulation_sources())
    with open(package / "report" / "build.py", "a") as f:
        f.write("\n# a report's wording\n")
    same = run_sweep(world["sweep"], runs=world["runs"], store=world["store"],
                     events=world["events"], show_progress=False)
    assert same.skipped == 48 and same.sweep_id == world["outcome"].sweep_id
    with open(package / "engine" / "market.py", "a") as f:
        f.write("\n# a change in how a config becomes kernel inputs\n")
    changed = run_sweep(world["sweep"], runs=tmp_path / "runs", store=world["store"],
                        events=world["events"], show_progress=False)
    assert changed.computed == 48 and changed.sweep_id != world["outcome"].sweep_id
    books = {p.name for p in (world["outcome"].sweep_dir / "books").glob("*.parquet")}
    assert books and books.isdisjoint(p.name for p in (changed.sweep_dir / "books").glob("*"))


def test_cli_sweep_and_query(world, capsys):
    code = main(["sweep", str(world["sweep"]), "--runs", str(world["runs"]), "--store",
                 str(world["store"]), "--events", str(world["events"]), "-q"])
    assert code == 0
    assert "48 cells (48 finished before, 0 run now" in capsys.readouterr().out
    code = main(["query", "SELECT count(*) AS n FROM sweep_cells", "--runs", str(world["runs"])])
    assert code == 0 and "48" in capsys.readouterr().out


@pytest.mark.dask
def test_dask_local_cluster_is_bit_identical(world, tmp_path):
    distributed = pytest.importorskip("distributed", reason="liqbt[dask] not installed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        # no sampling profiler in in-process workers (tests/conftest.py: it deadlocked)
        assert all("profile" not in w.periodic_callbacks for w in cluster.workers.values())
        out = run_sweep(world["sweep"], runs=tmp_path / "runs", store=world["store"],
                        events=world["events"], scheduler=cluster.scheduler_address,
                        output=tmp_path / "dask-sweep", show_progress=False)
    assert out.computed == 48 and out.backend.startswith("dask ")
    local_summary, local_steps = results(world["outcome"].sweep_dir)
    dask_summary, dask_steps = results(out.sweep_dir)
    assert dask_summary.equals(local_summary)
    assert dask_steps.equals(local_steps)


def test_unreachable_scheduler_is_a_clear_error(world, tmp_path, capsys, monkeypatch):
    pytest.importorskip("distributed", reason="liqbt[dask] not installed")
    monkeypatch.setattr("backtest.sweep.backends.CONNECT_TIMEOUT", "1s")
    code = main(["sweep", str(world["sweep"]), "--runs", str(tmp_path / "runs"),
                 "--store", str(world["store"]), "--events", str(world["events"]),
                 "--scheduler", "tcp://127.0.0.1:9", "-o", str(tmp_path / "s"), "-q"])
    assert code == 2
    assert "Dask scheduler tcp://127.0.0.1:9" in capsys.readouterr().err


def test_sigkill_mid_run_then_resume_recomputes_nothing_finished(world, tmp_path):
    out_dir = tmp_path / "killed"
    cmd = [sys.executable, "-c", "import sys; from backtest.cli import main; sys.exit(main())",
           "sweep", str(world["sweep"]), "--runs", str(tmp_path / "runs"), "--store",
           str(world["store"]), "--events", str(world["events"]), "-o", str(out_dir), "-q",
           "--workers", "2"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    cells = out_dir / "cells"
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if cells.is_dir() and len(list(cells.iterdir())) >= 4:
                break
            time.sleep(0.01)
        assert proc.poll() is None, f"the sweep ended before it was killed: {proc.stderr.read()}"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    time.sleep(0.5)  # worker processes die with their parent (PR_SET_PDEATHSIG)
    store = SweepStore(out_dir)
    finished = store.done_ids()
    assert 4 <= len(finished) < 48
    for cell_id in finished:  # every finished cell is complete and readable
        d = store.cell_dir(cell_id)
        assert sorted(p.name for p in d.iterdir()) == sorted(CELL_FILES)
        assert pl.read_parquet(d / "summary.parquet").height == 1
        json.loads((d / "cell.json").read_text())
    stamps = {c: (store.cell_dir(c) / "cell.json").stat().st_mtime_ns for c in finished}
    pids = {c: json.loads((store.cell_dir(c) / "cell.json").read_text())["pid"]
            for c in finished}

    resumed = run_sweep(world["sweep"], runs=tmp_path / "runs", store=world["store"],
                        events=world["events"], output=out_dir, show_progress=False)
    assert resumed.skipped == len(finished) and resumed.computed == 48 - len(finished)
    assert not list(store.tmp.iterdir())
    for c in finished:  # not recomputed: same file, same writer
        assert (store.cell_dir(c) / "cell.json").stat().st_mtime_ns == stamps[c]
        assert json.loads((store.cell_dir(c) / "cell.json").read_text())["pid"] == pids[c]
    summary, steps = results(out_dir)
    expected_summary, expected_steps = results(world["outcome"].sweep_dir)
    assert summary.equals(expected_summary) and steps.equals(expected_steps)
