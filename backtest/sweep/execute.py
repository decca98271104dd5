"""Run a sweep end to end: plan, skip finished cells, run the rest, record, register.

``liqbt sweep SWEEP.toml`` calls :func:`run_sweep`. The sweep directory holds the lock for the
whole run; a restarted sweep (after an error, Ctrl-C or SIGKILL) re-plans, finds the cells
already in ``cells/`` and runs only the others. A sweep with an ``[ensemble]`` also writes
``intervals.parquet`` (p5 / p50 / p95 across members, :mod:`backtest.results.intervals`) and
records the ensemble's ranges in ``sweep.json`` (``ensemble``).
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from backtest import paths
from backtest.progress import count_progress
from backtest.provenance import engine_version, file_sha256, package_versions
from backtest.results.intervals import sweep_intervals
from backtest.sweep.backends import run_dask, run_local
from backtest.sweep.config import SweepConfig, load_sweep_config
from backtest.sweep.grid import ParamSet
from backtest.sweep.options_cell import plan_options_sweep
from backtest.sweep.plan import SweepPlan, plan_sweep, plan_table
from backtest.sweep.portfolio_plan import plan_portfolio_sweep
from backtest.sweep.store import SweepStore


@dataclass
class SweepOutcome:
    """What a sweep run did.

    Attributes
    ----------
    sweep_id : str
        ``<name>-<digest of the cell ids>``.
    sweep_dir : Path
    total : int
        Cells in the plan.
    skipped : int
        Cells already finished by an earlier run.
    computed : int
        Cells simulated by this run.
    wall_seconds : float
        Wall time of this run, planning included.
    run_seconds : float
        Wall time spent running cells.
    backend : str
        ``local processes (N)`` or the Dask scheduler address.
    members : int
        Ensemble members (0 without an ensemble).
    intervals : Path or None
        ``intervals.parquet`` of an ensemble (p5 / p50 / p95 across members).
    """

    sweep_id: str
    sweep_dir: Path
    total: int
    skipped: int
    computed: int
    wall_seconds: float
    run_seconds: float
    backend: str
    members: int = 0
    intervals: Path | None = None

    @property
    def cells_per_minute(self) -> float:
        """Cells simulated per minute of running time (0 when nothing ran)."""
        return 60.0 * self.computed / self.run_seconds if self.run_seconds > 0 else 0.0


def sweep_dir_for(cfg: SweepConfig, output: str | Path | None = None,
                  runs: str | Path | None = None) -> Path:
    """Return the sweep directory: ``output``, else the config's, else ``<runs>/sweeps/<name>``."""
    if output is not None:
        return Path(output)
    if cfg.output is not None:
        return Path(cfg.output)
    return paths.runs_dir(runs) / "sweeps" / cfg.name


def run_sweep(config_path: str | Path, *, cfg: SweepConfig | None = None,
              runs: str | Path | None = None, store: str | Path | None = None,
              strategies: str | Path | None = None, events: str | Path | None = None,
              scheduler=None, workers: int | None = None, output: str | Path | None = None,
              show_progress: bool = True, register: bool = True,
              param_sets: dict[str, list[ParamSet]] | None = None,
              command: str | None = None) -> SweepOutcome:
    """Run (or resume) a sweep.

    Parameters
    ----------
    config_path : str or Path
        Sweep config (TOML); with ``cfg`` given, only recorded.
    cfg : SweepConfig, optional
        An already built config (governance proposals).
    runs, store, strategies, events : str or Path, optional
        Runs directory (catalog), tape store, strategies directory, event catalog.
    scheduler : str or distributed.Client, optional
        Dask scheduler; default the config's, else local processes.
    workers : int, optional
        Local processes; default the config's, else the CPU count.
    output : str or Path, optional
        Sweep directory (see :func:`sweep_dir_for`).
    show_progress : bool
        Show done / total, rate and ETA on the terminal.
    register : bool
        Register the sweep in the runs catalog (``sweep_cells``, ``sweep_steps`` views).
    param_sets : dict, optional
        Explicit parameter sets per policy (see :func:`backtest.sweep.plan.plan_sweep`).
    command : str, optional
        Command line recorded in the manifest; default this process's arguments.

    Returns
    -------
    SweepOutcome

    Raises
    ------
    LiqbtError
        Invalid config or inputs (before any cell runs), a sweep already running in the
        directory, or a failing cell.
    """
    t0 = time.perf_counter()
    cfg = cfg or load_sweep_config(config_path)
    sdir = SweepStore(sweep_dir_for(cfg, output, runs))
    scheduler = scheduler if scheduler is not None else cfg.scheduler
    n_workers = workers or cfg.workers or os.cpu_count() or 1
    with sdir.lock():
        planner = {"portfolio": plan_portfolio_sweep,
                   "options": plan_options_sweep}.get(cfg.kind, plan_sweep)
        plan = planner(cfg, config_path, sdir.root, store, strategies, events, param_sets)
        sweep_id = f"{cfg.name}-{_plan_digest(plan)}"
        done = sdir.done_ids()
        pending = [c for c in plan.cells if c.cell_id not in done]
        manifest = _manifest(cfg, config_path, plan, sweep_id, command)
        sdir.write_parquet("plan.parquet", plan_table(plan))
        sdir.write_json("sweep.json", manifest)
        backend = (f"dask {scheduler}" if scheduler is not None
                   else f"local processes ({min(n_workers, max(1, len(pending)))})")
        t_run = time.perf_counter()
        results = (run_dask(pending, str(sdir.root), scheduler) if scheduler is not None
                   else run_local(pending, str(sdir.root), min(n_workers, max(1, len(pending)))))
        computed = 0
        with count_progress(show_progress and bool(pending)) as bar:
            task = bar.add_task(f"{cfg.name}: {len(plan.cells) - len(pending)} of "
                                f"{len(plan.cells)} cells done before", total=len(pending))
            for _ in results:
                computed += 1
                bar.advance(task)
        run_seconds = time.perf_counter() - t_run
        outcome = SweepOutcome(sweep_id, sdir.root, len(plan.cells), len(plan.cells) -
                               len(pending), computed, time.perf_counter() - t0, run_seconds,
                               backend)
        if plan.ensemble is not None:
            files = [sdir.cell_dir(c.cell_id) / "summary.parquet" for c in plan.cells]
            table = sweep_intervals([f for f in files if f.is_file()])
            sdir.write_parquet("intervals.parquet", table)
            manifest["ensemble"]["intervals"] = {"file": "intervals.parquet",
                                                 "rows": table.height}
            outcome.members = plan.ensemble["members"]
            outcome.intervals = sdir.root / "intervals.parquet"
        manifest["last_run"] = {
            "finished_at": datetime.now(UTC).isoformat(), "backend": backend,
            "cells_total": outcome.total, "cells_skipped": outcome.skipped,
            "cells_computed": outcome.computed, "wall_seconds": outcome.wall_seconds,
            "run_seconds": run_seconds, "cells_per_minute": outcome.cells_per_minute}
        sdir.write_json("sweep.json", manifest)
    if register:  # the pointer only: no catalog needs opening for it
        from backtest.results.catalog import register_sweep

        register_sweep(sdir.root, runs)
    return outcome


def _plan_digest(plan: SweepPlan) -> str:
    h = hashlib.sha256()
    for c in plan.cells:
        h.update(c.cell_id.encode())
    return h.hexdigest()[:8]


def _manifest(cfg: SweepConfig, config_path: str | Path, plan: SweepPlan, sweep_id: str,
              command: str | None) -> dict:
    path = Path(config_path)
    config_sha = file_sha256(path) if path.is_file() else None
    return {
        "sweep_id": sweep_id,
        "name": cfg.name,
        "description": cfg.description,
        "run_kind": cfg.kind,
        "created_at": datetime.now(UTC).isoformat(),
        "command": command or f"liqbt sweep {config_path}",
        "config": {"path": str(config_path), "sha256": config_sha,
                   "resolved": cfg.model_dump(mode="json")},
        "cells": len(plan.cells),
        "seeds": list(cfg.seeds) if cfg.ensemble is None else [],
        "ensemble": plan.ensemble,
        "events": plan.events,
        "inputs": plan.inputs,
        "engine": engine_version(),
        "versions": package_versions(),
    }
