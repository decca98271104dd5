"""Simulate one sweep cell with the engine and write its result (runs in a worker).

:func:`run_cell` resolves the cell's run config with :func:`backtest.engine.run.resolve_config`
(cached per worker process and (event, seed), since consecutive cells share them), stresses
the window (:mod:`backtest.sweep.stress`), recomputes the market inputs for the stressed
window, simulates the one policy with :func:`backtest.engine.run.simulate_policies`, builds the
``steps`` and ``accounts`` tables of :mod:`backtest.results.tables`, and evaluates the metrics
registry (:mod:`backtest.results.metrics`) on them with DuckDB, so a cell's numbers are the
numbers ``liqbt run`` would report. Only the one-row summary and a per-step series are kept.
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import os
import signal
import sys
import time
from functools import lru_cache

import polars as pl
from pydantic import TypeAdapter

from backtest.engine.config import RunConfig
from backtest.engine.run import Inputs, market_inputs, resolve_config, simulate_policies
from backtest.kernels.enums import StepMetric
from backtest.policies.models import Policy
from backtest.results.metrics import METRICS, OPTIONS, SINGLE_ASSET
from backtest.results.tables import accounts_table, steps_table
from backtest.sweep.cell_metrics import cell_identity, cell_metrics
from backtest.sweep.options_cell import simulate_options_cell
from backtest.sweep.plan import CellSpec, cell_dict
from backtest.sweep.portfolio_cell import simulate_portfolio_cell
from backtest.sweep.portfolio_plan import PORTFOLIO
from backtest.sweep.store import SweepStore
from backtest.sweep.stress import StressSpec, stress_tape

STEP_COLUMNS = (
    "step", "timestamp", "open", "high", "low", "close", "liquidations",
    "liquidated_notional_usd", "bad_debt_cum_usd", "insurance_fund_usd",
    "socialised_loss_cum_usd", "adl_notional_usd", "user_equity_usd",
    "accounts_liquidated_cum", "simulated_close", "impact_cost_usd", "cure_usd",
    "insurance_draw_usd", "insurance_fees_usd", "loan_debt_usd",
)
"""Per-step columns kept for each cell (``steps.parquet``; the view ``sweep_steps``)."""

_POLICY = TypeAdapter(Policy)
_STRESS = TypeAdapter(StressSpec)


@lru_cache(maxsize=4)
def _base_inputs(run_config_json: str, config_path: str, store: str | None,
                 strategies: str | None, events: str | None) -> Inputs:
    cfg = RunConfig.model_validate_json(run_config_json)
    return resolve_config(cfg, config_path, store, strategies, events)


def cell_inputs(spec: CellSpec) -> Inputs:
    """Return the engine inputs of a cell: its (event, seed), stressed window and policy.

    Parameters
    ----------
    spec : CellSpec

    Returns
    -------
    backtest.engine.run.Inputs
        A fresh object (the cached base inputs are not modified).

    Raises
    ------
    LiqbtError
        As :func:`backtest.engine.run.resolve_config`.
    """
    base = _base_inputs(json.dumps(spec.run_config, sort_keys=True), spec.config_path,
                        spec.store, spec.strategies, spec.events)
    stressed = stress_tape(base.tape, base.start, base.end, _STRESS.validate_python(spec.stress),
                           spec.seed)
    policy = _POLICY.validate_python(spec.policy)
    inputs = dataclasses.replace(base, tape=stressed.tape, window=stressed.window,
                                 end=stressed.end, policies=[(policy, spec.policy_path)])
    inputs.market = market_inputs(inputs, spec.store)
    return inputs


def simulate_cell(spec: CellSpec) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    """Simulate a cell; return its summary row, per-step series and timings.

    A portfolio cell (``spec.kind == "portfolio"``) is simulated by
    :func:`backtest.sweep.portfolio_cell.simulate_portfolio_cell`, an options cell by
    :func:`backtest.sweep.options_cell.simulate_options_cell`.

    Parameters
    ----------
    spec : CellSpec

    Returns
    -------
    summary : polars.DataFrame
        One row: the cell's coordinates (``member`` -1 and ``member_inputs`` ``{}`` without
        an ensemble) and every registry metric.
    steps : polars.DataFrame
        :data:`STEP_COLUMNS` plus ``cell_id``, one row per step of the (stressed) window.
    timings : dict
        ``load_seconds``, ``simulate_seconds``, ``tables_seconds``.
    """
    if spec.kind == PORTFOLIO:
        return simulate_portfolio_cell(spec)
    if spec.kind == OPTIONS:
        return simulate_options_cell(spec)
    t0 = time.perf_counter()
    inputs = cell_inputs(spec)
    t1 = time.perf_counter()
    outcomes, _ = simulate_policies(inputs, show_progress=False)
    res = outcomes[0].result
    t2 = time.perf_counter()
    arrays = inputs.window.arrays()
    book = inputs.book.arrays()
    ts, close = arrays["timestamp"], arrays["close"]
    name = spec.policy["name"]
    steps = steps_table(spec.cell_id, name, res, ts, close, arrays["low"], inputs.start_state,
                        inputs.market.gas_usd, inputs.flow)
    accounts = accounts_table(spec.cell_id, name, res,
                              inputs.book.frame["account_id"].to_numpy(), book,
                              arrays["open"][0], close[-1],
                              close[-1] * res.step_metrics[-1, StepMetric.PRICE_FACTOR],
                              inputs.flow, close)
    metrics = cell_metrics(steps, accounts)
    series = steps.with_columns(
        pl.Series("open", arrays["open"]), pl.Series("high", arrays["high"]),
        pl.Series("low", arrays["low"]), pl.Series("close", close),
    ).select("run_id", *STEP_COLUMNS).rename({"run_id": "cell_id"})
    summary = pl.DataFrame([{
        **cell_identity(spec, SINGLE_ASSET, name, spec.policy["family"]),
        "accounts": len(inputs.book), "steps": inputs.window.rows,
        "window_start": inputs.start, "window_end": inputs.end,
        **metrics,
        "simulate_seconds": t2 - t1,
    }])
    t3 = time.perf_counter()
    return summary, series, {"load_seconds": t1 - t0, "simulate_seconds": t2 - t1,
                             "tables_seconds": t3 - t2}


def run_cell(spec: CellSpec, sweep_dir: str) -> dict:
    """Simulate a cell and write it into the sweep directory (the task a worker runs).

    Parameters
    ----------
    spec : CellSpec
    sweep_dir : str
        The sweep directory (shared by every worker).

    Returns
    -------
    dict
        ``cell_id``, ``written`` (False if another worker had written it first), ``seconds``
        and the summary row's metrics.
    """
    import numba

    t0 = time.perf_counter()
    threads = min(spec.threads, numba.config.NUMBA_NUM_THREADS)
    previous = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        summary, steps, timings = simulate_cell(spec)
    finally:
        numba.set_num_threads(previous)
    meta = {"cell": cell_dict(spec), "timings": timings, "pid": os.getpid(),
            "host": os.uname().nodename, "threads": threads,
            "finished_at": time.time()}
    written = SweepStore(sweep_dir).write_cell(spec.cell_id,
                                               {"summary": summary, "steps": steps}, meta)
    row = summary.row(0, named=True)
    return {"cell_id": spec.cell_id, "written": written,
            "seconds": time.perf_counter() - t0,
            "metrics": {m.name: row[m.name] for m in METRICS}}


def warm_worker() -> None:
    """Prepare a fresh worker process (process pool initializer).

    On Linux the worker asks the kernel to kill it when its parent dies (``prctl``
    ``PR_SET_PDEATHSIG``), so a killed sweep leaves no orphan still running queued cells; then
    the JIT-compiled kernels are loaded once.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
        except OSError:
            pass
    from backtest.engine.warmup import warm_up

    warm_up()
