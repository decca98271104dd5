"""Evaluate the metrics registry on one cell's ``steps`` and ``accounts`` tables.

Shared by single-asset cells (:mod:`backtest.sweep.runner`) and portfolio cells
(:mod:`backtest.sweep.portfolio_cell`): the same SQL as :meth:`Catalog.summary
<backtest.results.catalog.Catalog.summary>`, so a cell's numbers are the numbers a run of the
same kind reports. A measure that does not apply to the cell's run kind
(:attr:`backtest.results.metrics.Metric.kinds`) is null.
"""

from __future__ import annotations

import json

import duckdb
import polars as pl

from backtest.results.metrics import METRICS, SINGLE_ASSET, aggregates_sql


def cell_metrics(steps: pl.DataFrame, accounts: pl.DataFrame, kind: str = SINGLE_ASSET) -> dict:
    """Evaluate every registry metric on one policy's ``steps`` and ``accounts`` tables.

    Parameters
    ----------
    steps, accounts : polars.DataFrame
        Tables of :mod:`backtest.results.tables` (single-asset) or
        :mod:`backtest.portfolio.tables` (portfolio) for one (run, policy).
    kind : str
        The run kind (:data:`backtest.results.metrics.RUN_KINDS`).

    Returns
    -------
    dict of str to float or None
        Metric name -> value (:data:`backtest.results.metrics.METRICS`); None where the
        measure does not apply to ``kind`` or is undefined (a division by zero).
    """
    cols = ", ".join(f"{m.sql if kind in m.kinds else 'NULL'} AS {m.name}" for m in METRICS)
    con = duckdb.connect()
    try:
        con.register("steps_frame", steps.to_arrow())
        con.register("accounts_frame", accounts.to_arrow())
        row = con.execute(f"""
            WITH s AS (SELECT {aggregates_sql("steps", kind)} FROM steps_frame),
                 a AS (SELECT {aggregates_sql("accounts", kind)} FROM accounts_frame)
            SELECT {cols} FROM s, a
        """).fetchall()[0]
    finally:
        con.close()
    return {m.name: (None if v is None else float(v)) for m, v in zip(METRICS, row, strict=True)}


__all__ = ["cell_metrics"]


def cell_identity(spec, run_kind: str, policy: str, family: str) -> dict:
    """Return the columns that name a cell in its summary row, in the store's column order.

    Parameters
    ----------
    spec : backtest.sweep.plan.CellSpec
        The cell (event, tape, parameter set, seed, stress and ensemble member).
    run_kind : str
        :data:`backtest.results.metrics.RUN_KINDS`.
    policy, family : str
        The policy's name and family as the summary shows them.
    """
    return {
        "cell_id": spec.cell_id, "run_kind": run_kind, "event": spec.event,
        "event_key": spec.event_key, "symbol": spec.symbol, "interval": spec.interval,
        "policy": policy, "family": family, "param_set": spec.param_set,
        "params": json.dumps(spec.params, sort_keys=True), "seed": spec.seed,
        "stress": spec.stress_label, "stress_kind": spec.stress["kind"], "member": spec.member,
        "member_inputs": json.dumps(spec.member_inputs, sort_keys=True),
    }
