"""Evaluate the metrics registry on one cell's ``steps`` and ``accounts`` tables.

Shared by single-asset cells (:mod:`backtest.sweep.runner`) and portfolio cells
(:mod:`backtest.sweep.portfolio_cell`): the same SQL as :meth:`Catalog.summary
<backtest.results.catalog.Catalog.summary>`, so a cell's numbers are the numbers a run of the
same kind reports. A measure that does not apply to the cell's run kind
(:attr:`backtest.results.metrics.Metric.kinds`) is null.
"""

from __future__ import annotations

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
