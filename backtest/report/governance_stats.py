"""Error bars of a governance report: intervals over ensemble members or seeds, robustness counts.

A governance sweep has one cell per (event, stress, parameter set, unit), where a *unit* is an
ensemble member when the sweep has an ensemble (``sweep_cells.member`` >= 0) and a book seed
otherwise. :func:`unit_values` reads one row per (event, stress, parameter set, unit) from the
catalog, working with or without the ``member`` column; :func:`intervals` gives p5 / p50 / p95
over units per scenario and for the sum over scenarios; :func:`robustness` counts in how many
units and on how many events a proposed set beats the current one; :func:`dominating` names the
swept sets that beat both the current and a proposed set on both axes of the frontier.

Percentiles use linear interpolation between order statistics (``numpy.percentile``'s default),
so the same cells give the same figures.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

QUANTILES = (5.0, 50.0, 95.0)
"""Percentiles of the intervals (p5, p50, p95)."""

MEAN_MEASURES = frozenset({"user_equity_retained"})
"""Measures aggregated over scenarios by their mean (a fraction); the others are summed (USD)."""

USD_TOLERANCE = 0.5
"""Differences below half a dollar are ties."""


@dataclass(frozen=True)
class Units:
    """What the intervals are taken over.

    Attributes
    ----------
    kind : str
        ``"member"`` (ensemble members) or ``"seed"`` (book seeds).
    count : int
        Distinct units in the sweep.
    """

    kind: str
    count: int

    def words(self, n: int | None = None) -> str:
        """Return ``"ensemble members"`` / ``"seeds"``, singular when ``n == 1``."""
        n = self.count if n is None else n
        base = "ensemble member" if self.kind == "member" else "seed"
        return base if n == 1 else base + "s"


def sweep_columns(catalog, sid_literal: str) -> set[str]:
    """Return the column names of the catalog view ``sweep_cells``.

    Parameters
    ----------
    catalog : backtest.results.catalog.Catalog
    sid_literal : str
        The sweep id as an SQL literal.

    Returns
    -------
    set of str
    """
    frame = catalog.query(f"SELECT * FROM sweep_cells WHERE sweep_id = {sid_literal} LIMIT 0")
    return set(frame.columns)


def unit_values(catalog, sid_literal: str, measures: list[str]) -> tuple[pl.DataFrame, Units]:
    """Return one row per (event, stress, param_set, unit) with every measure.

    Parameters
    ----------
    catalog : backtest.results.catalog.Catalog
        Catalog with the sweep registered.
    sid_literal : str
        The sweep id as an SQL literal.
    measures : list of str
        Registry metric names (columns of ``sweep_cells``).

    Returns
    -------
    values : polars.DataFrame
        Columns ``event``, ``stress``, ``param_set``, ``unit`` (Int64) and one Float64 column
        per measure (mean over cells sharing the unit, e.g. several seeds of one member).
    units : Units
        Ensemble members when the sweep has a ``member`` column with a value >= 0, else seeds.
    """
    cols = sweep_columns(catalog, sid_literal)
    kind, where = "seed", ""
    if "member" in cols:
        n = catalog.query(f"""SELECT count(*) AS n FROM sweep_cells
                              WHERE sweep_id = {sid_literal} AND member >= 0""")["n"][0]
        if n:
            kind, where = "member", " AND member >= 0"
    aggs = ", ".join(f"avg({m})::DOUBLE AS {m}" for m in measures)
    values = catalog.query(f"""
        SELECT event, stress, param_set, {kind}::BIGINT AS unit, {aggs}
        FROM sweep_cells WHERE sweep_id = {sid_literal}{where}
        GROUP BY ALL ORDER BY ALL""")
    return values, Units(kind, int(values["unit"].n_unique()) if values.height else 0)


def percentiles(x: np.ndarray) -> tuple[float, float, float] | None:
    """Return (p5, p50, p95) of the finite values of ``x``; None when there are none.

    Parameters
    ----------
    x : numpy.ndarray of float64, shape (n,)

    Returns
    -------
    tuple of float or None
    """
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    if not x.size:
        return None
    p = np.percentile(x, QUANTILES)
    return float(p[0]), float(p[1]), float(p[2])


def totals(values: pl.DataFrame, measure: str) -> pl.DataFrame:
    """Return the measure over all scenarios per (param_set, unit).

    USD measures are summed over scenarios, fractions (:data:`MEAN_MEASURES`) averaged.

    Returns
    -------
    polars.DataFrame
        ``param_set``, ``unit``, ``value`` (Float64).
    """
    agg = pl.col(measure).mean() if measure in MEAN_MEASURES else pl.col(measure).sum()
    return (values.group_by("param_set", "unit").agg(agg.alias("value"))
            .sort("param_set", "unit"))


def interval(values: pl.DataFrame, label: str, measure: str, event: str | None = None,
             stress: str | None = None) -> tuple[float, float, float] | None:
    """Return (p5, p50, p95) over units of a set's measure in one scenario, or over all.

    Parameters
    ----------
    values : polars.DataFrame
        From :func:`unit_values`.
    label : str
        Parameter set.
    measure : str
    event, stress : str, optional
        The scenario; None: the total over scenarios (:func:`totals`).

    Returns
    -------
    tuple of float or None
        None when the set has no value.
    """
    if event is None:
        v = totals(values.filter(pl.col("param_set") == label), measure)["value"]
    else:
        v = values.filter((pl.col("param_set") == label) & (pl.col("event") == event)
                          & (pl.col("stress") == stress))[measure]
    return percentiles(v.drop_nulls().to_numpy())


@dataclass
class Robustness:
    """How often a proposed set beats the current one.

    Attributes
    ----------
    units_better, units_worse, units : int
        Units (members or seeds) whose bad debt summed over scenarios is lower / higher (by
        more than :data:`USD_TOLERANCE`) under the proposed set, and units compared.
    events_better, events_worse_bad_debt, events : int
        Scenarios where the mean bad debt over units is lower / higher; scenarios compared.
    user_loss_higher : list of (str, float or None)
        Scenarios whose mean user losses to liquidation rise (more than 0.1% and half a
        dollar), with the rise in percent (None when current was 0).
    user_loss_lower : int
        Scenarios whose mean user losses fall.
    """

    units_better: int
    units_worse: int
    units: int
    events_better: int
    events_worse_bad_debt: int
    events: int
    user_loss_higher: list
    user_loss_lower: int


def _higher(new: float, cur: float) -> bool:
    return new - cur > max(USD_TOLERANCE, 1e-3 * abs(cur))


def _lower(new: float, cur: float) -> bool:
    return cur - new > max(USD_TOLERANCE, 1e-3 * abs(cur))


def robustness(values: pl.DataFrame, current: str, proposed: str,
               scenarios: list[tuple[str, str, str]]) -> Robustness:
    """Count the units and scenarios on which ``proposed`` beats ``current``.

    Parameters
    ----------
    values : polars.DataFrame
        From :func:`unit_values`.
    current, proposed : str
        Parameter set labels.
    scenarios : list of (key, event, stress)

    Returns
    -------
    Robustness
    """
    tot = totals(values, "bad_debt_usd")
    a = tot.filter(pl.col("param_set") == current).select("unit", pl.col("value").alias("c"))
    b = tot.filter(pl.col("param_set") == proposed).select("unit", pl.col("value").alias("p"))
    paired = a.join(b, on="unit", how="inner")
    better = sum(1 for c, p in zip(paired["c"], paired["p"], strict=True)
                 if p < c - USD_TOLERANCE)
    worse = sum(1 for c, p in zip(paired["c"], paired["p"], strict=True)
                if p > c + USD_TOLERANCE)

    def mean(label: str, event: str, stress: str, measure: str) -> float:
        v = values.filter((pl.col("param_set") == label) & (pl.col("event") == event)
                          & (pl.col("stress") == stress))[measure].drop_nulls()
        return float(v.mean()) if v.len() else 0.0

    ev_better = ev_worse = ul_lower = 0
    ul_higher = []
    for key, event, stress in scenarios:
        bc, bp = (mean(s, event, stress, "bad_debt_usd") for s in (current, proposed))
        ev_better += bp < bc - USD_TOLERANCE
        ev_worse += bp > bc + USD_TOLERANCE
        uc, up = (mean(s, event, stress, "user_loss_to_liquidation_usd")
                  for s in (current, proposed))
        if _higher(up, uc):
            ul_higher.append((key, 100.0 * (up - uc) / abs(uc) if uc else None))
        elif _lower(up, uc):
            ul_lower += 1
    return Robustness(better, worse, paired.height, int(ev_better), int(ev_worse),
                      len(scenarios), ul_higher, ul_lower)


def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Return whether point ``a`` beats ``b``: no worse on both coordinates, better on one.

    Lower is better on both coordinates; differences within :data:`USD_TOLERANCE` are ties.

    Parameters
    ----------
    a, b : (float, float)
        (user losses to liquidation, bad debt), USD.
    """
    no_worse = all(x <= y + USD_TOLERANCE for x, y in zip(a, b, strict=True))
    better = any(x < y - USD_TOLERANCE for x, y in zip(a, b, strict=True))
    return no_worse and better


def dominating(points: dict[str, tuple[float, float]], frontier: list[str],
               named: list[str]) -> list[str]:
    """Return the swept sets that dominate every set in ``named``.

    Parameters
    ----------
    points : dict of str to (float, float)
        Set label -> (user losses, bad debt) summed over scenarios, USD.
    frontier : list of str
        Labels of the swept sets (candidates).
    named : list of str
        Sets to beat (current and one proposed set).

    Returns
    -------
    list of str
        Candidates in ``frontier`` order, sorted by bad debt then user losses.
    """
    out = [f for f in frontier
           if f in points and all(n in points and dominates(points[f], points[n])
                                  for n in named)]
    return sorted(out, key=lambda f: (points[f][1], points[f][0]))
