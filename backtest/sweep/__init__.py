"""Sweeps: events x policies x parameter grids x seeds x stress transforms, resumable.

``liqbt sweep SWEEP.toml`` (:func:`run_sweep`) plans the cells of a sweep config
(:mod:`backtest.sweep.config`, :mod:`backtest.sweep.grid`), draws one book per (event, seed),
runs every unfinished cell with the engine (or, with ``kind = "portfolio"`` / ``"options"``,
the multi-asset lending + perp model, :mod:`backtest.sweep.portfolio_plan`, or the options
book, :mod:`backtest.sweep.options_cell`) in local processes or on a Dask cluster
(:mod:`backtest.sweep.backends`), writes each finished cell atomically into the sweep
directory (:mod:`backtest.sweep.store`) and registers the sweep in the DuckDB catalog, where the
views ``sweep_cells`` and ``sweep_steps`` span every sweep. Stress transforms of history live
in :mod:`backtest.sweep.stress`.
"""

from backtest.sweep.config import EventSpec, SweepConfig, load_sweep_config
from backtest.sweep.execute import SweepOutcome, run_sweep, sweep_dir_for
from backtest.sweep.grid import ParamSet, Range
from backtest.sweep.plan import CellSpec, SweepPlan, plan_sweep
from backtest.sweep.store import SweepStore

__all__ = ["CellSpec", "EventSpec", "ParamSet", "Range", "SweepConfig", "SweepOutcome",
           "SweepPlan", "SweepStore", "load_sweep_config", "plan_sweep", "run_sweep",
           "sweep_dir_for"]
