"""Intervals across ensemble members: p5 / p50 / p95 of every metric per cell group.

The members of an ensemble (:mod:`backtest.sweep.ensemble`) are ordinary cells; an interval
groups the cells that differ only by member, i.e. by (event, policy, parameter set, stress),
and takes the 5th, 50th and 95th percentiles of each registry metric
(:data:`backtest.results.metrics.METRICS`) over the members where the metric is defined,
with linear interpolation between order statistics (numpy's default ``linear`` method,
DuckDB's ``quantile_cont``). Cells without an ensemble (``member`` -1 or NULL) are left out.

The same SQL serves the catalog view ``sweep_intervals`` (over every sweep) and the sweep's
own ``intervals.parquet`` (written when a sweep finishes).
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl

from backtest.results.metrics import METRICS

GROUP = ("event", "policy", "param_set", "stress")
"""Columns an interval groups by (besides the sweep)."""

QUANTILES = (("p5", 0.05), ("p50", 0.5), ("p95", 0.95))
"""Interval columns and their quantile."""

COLUMNS = {"metric": "VARCHAR", "members": "BIGINT", "p5": "DOUBLE", "p50": "DOUBLE",
           "p95": "DOUBLE", "mean": "DOUBLE", "min": "DOUBLE", "max": "DOUBLE"}
"""Interval columns after the group columns, with their DuckDB types."""


def intervals_sql(source: str, columns: list[str], keys: tuple[str, ...] = GROUP) -> str:
    """Return the SELECT computing intervals of ``source`` (a relation with member cells).

    Parameters
    ----------
    source : str
        A relation name or parenthesised query with ``member``, the ``keys`` columns and
        metric columns.
    columns : list of str
        The relation's columns (metrics absent from it are skipped).
    keys : tuple of str
        Group columns, e.g. ``("sweep_id", "sweep_dir", *GROUP)`` for the catalog.

    Returns
    -------
    str
        One row per group and metric: ``keys``, then :data:`COLUMNS`.
    """
    metrics = [m.name for m in METRICS if m.name in columns]
    keys_sql = ", ".join(keys)
    if not metrics or "member" not in columns:
        cols = ", ".join([f"NULL::VARCHAR AS {k}" for k in keys] +
                         [f"NULL::{t} AS {c}" for c, t in COLUMNS.items()])
        return f"SELECT {cols} WHERE false"
    casts = ", ".join(f"CAST({m} AS DOUBLE) AS {m}" for m in metrics)
    quant = ", ".join(f"quantile_cont(value, {q}) AS {name}" for name, q in QUANTILES)
    return f"""
        SELECT {keys_sql}, metric, count(value)::BIGINT AS members, {quant},
               avg(value) AS mean, min(value) AS min, max(value) AS max
        FROM (UNPIVOT (SELECT {keys_sql}, {casts} FROM {source}
                       WHERE member IS NOT NULL AND member >= 0)
              ON {", ".join(metrics)} INTO NAME metric VALUE value)
        GROUP BY {keys_sql}, metric
        ORDER BY {keys_sql}, metric"""


def sweep_intervals(summary_files: list[Path]) -> pl.DataFrame:
    """Return the intervals of one sweep's finished cells (``intervals.parquet``).

    Parameters
    ----------
    summary_files : list of Path
        The cells' ``summary.parquet`` files.

    Returns
    -------
    polars.DataFrame
        One row per (event, policy, parameter set, stress, metric): members, p5, p50, p95,
        mean, min, max, in the metric's unit (USD, counts, fractions, as in
        :data:`backtest.results.metrics.METRICS`). Empty without ensemble members.
    """
    con = duckdb.connect()
    try:
        if not summary_files:
            return con.sql(intervals_sql("x", [])).pl()
        files = ", ".join("'" + str(f).replace("'", "''") + "'" for f in summary_files)
        con.execute(f"CREATE VIEW cells AS SELECT * FROM read_parquet([{files}], "
                    "union_by_name = true)")
        columns = [r[0] for r in con.execute("DESCRIBE cells").fetchall()]
        return con.sql(intervals_sql("cells", columns)).pl()
    finally:
        con.close()
