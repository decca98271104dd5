"""Loading the governance report's data from the proposal's sweep (DuckDB aggregates).

:func:`load_governance_data` queries the catalog views ``sweep_cells`` and ``sweep_steps`` for
every parameter set and scenario of the proposal, buckets the per-step series to at most
:data:`MAX_SERIES_POINTS` points, and fills the sections that need more than the aggregates:
the input warnings, the per-account view (re-simulated cells) and the comparison against what
happened (``liqbt validate``'s rows).
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from backtest.policies import load_policy
from backtest.report import build, figures
from backtest.report import governance_conditioning as gcond
from backtest.report import governance_options as gopt
from backtest.report import governance_portfolio as gport
from backtest.report import governance_stats as gstats
from backtest.report import governance_warnings as gwarn
from backtest.report.governance_appendix import scrub_paths
from backtest.report.governance_data import (
    CURRENT_COLOR,
    FRONTIER_GREY,
    MEASURES,
    GovernanceData,
    Scenario,
    SetInfo,
)
from backtest.report.governance_reality import against_what_happened
from backtest.report.proposal import CURRENT, Proposal
from backtest.results.catalog import Catalog

MAX_SERIES_POINTS = 80
"""Most points per plotted per-step series of the governance report."""

MARKETS = {"portfolio": gport, "options": gopt}
"""Proposal kind -> the module that stands for a preset (:mod:`~backtest.report.
governance_portfolio`, :mod:`~backtest.report.governance_options`): ``preset``, ``defaults``,
``grid_fields``, ``methodology``, ``reality``."""


def market_module(proposal: Proposal):
    """Return the module of a portfolio or options proposal's market; None for a preset."""
    return MARKETS.get(proposal.kind)


def _lit(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def load_governance_data(catalog: Catalog, proposal: Proposal, path: Path, sweep_dir: Path,
                         roles: list, strategies: str | Path | None = None,
                         events: str | Path | None = None) -> GovernanceData:
    """Query the proposal's sweep from the catalog.

    Parameters
    ----------
    catalog : Catalog
        Catalog with the sweep registered.
    proposal : Proposal
    path : Path
        Proposal file.
    sweep_dir : Path
        The proposal's sweep directory.
    roles : list of (str, ParamSet)
        From :func:`backtest.report.proposal.parameter_sets`.
    strategies, events : str or Path, optional

    Returns
    -------
    GovernanceData
    """
    from backtest.events import get_event

    manifest = json.loads((Path(sweep_dir) / "sweep.json").read_text())
    sid = _lit(catalog.sweep_id(sweep_dir))  # unique even if copied elsewhere
    descriptions = {p.name: p.description for p in proposal.proposed}
    sets, n_proposed = [], 0
    for role, ps in roles:
        color = FRONTIER_GREY
        if role == CURRENT:
            color = CURRENT_COLOR
        elif role == "proposed":
            color = figures.PALETTE[(1 + n_proposed) % len(figures.PALETTE)]
            n_proposed += 1
        sets.append(SetInfo(role, ps.label, dict(ps.params), descriptions.get(ps.label, ""),
                            color))
    cond = gcond.condition(catalog, manifest, proposal,
                           [s.label for s in sets if s.role != "frontier"])
    unit_values, units = gstats.unit_values(catalog, sid, [m for m, _ in MEASURES])
    if cond is not None and cond.members:
        unit_values = unit_values.filter(pl.col("unit").is_in(sorted(cond.members)))
        units = gstats.Units(units.kind, len(cond.members))
    values = mean_values(unit_values)
    stresses = [s.label for s in proposal.stress]
    scenarios = []
    for ev in proposal.events:
        info = next(e for e in manifest["events"] if e["event"] == ev.key)
        catalog_event = get_event(ev.event, events)
        for st in stresses:
            key = ev.key if len(stresses) == 1 else f"{ev.key}, {st}"
            scenarios.append(Scenario(
                key, ev.key, st, info["symbol"], info["interval"],
                f"{build.utc(info['start'])} \u2013 {build.utc(info['end'])}", info["steps"],
                catalog_event.name, catalog_event.description,
                info.get("price_symbol") or info["symbol"]))
    market = market_module(proposal)
    if market is not None:
        defaults = market.defaults(proposal)
    else:
        defaults = build._flatten(load_policy(proposal.protocol, strategies).model_dump(
            mode="json"))
    data = GovernanceData(proposal, path, manifest, sets, scenarios, values, unit_values,
                          units, Path(sweep_dir), grid_fields(proposal, strategies), defaults,
                          conditioning=cond)
    unit_col = units.kind
    kept = "" if cond is None else cond.filter_sql()
    for sc in scenarios:
        n = catalog.query(f"""
            SELECT max(steps) AS n FROM sweep_cells WHERE sweep_id = {sid}
            AND event = {_lit(sc.event)} AND stress = {_lit(sc.stress)}""")["n"][0]
        k = build.bucket_size(int(n or 1), MAX_SERIES_POINTS)
        data.buckets[sc.key] = k
        where = (f"sweep_id = {sid} AND c.event = {_lit(sc.event)} "
                 f"AND c.stress = {_lit(sc.stress)}{kept}")
        data.prices[sc.key] = catalog.query(f"""
            SELECT st.step // {k} AS b, min(epoch_ms(st.timestamp))::DOUBLE AS t_ms,
                   max(st.high) AS high, min(st.low) AS low,
                   arg_max(st.close, st.step) AS close
            FROM sweep_steps st JOIN sweep_cells c USING (sweep_id, cell_id)
            WHERE {where} AND c.cell_id = (
                SELECT arg_min(cell_id, {unit_col}) FROM sweep_cells c WHERE {where}
                AND param_set = {_lit(CURRENT)})
            GROUP BY b ORDER BY b""")
        data.liquidations[sc.key] = catalog.query(f"""
            SELECT c.param_set, st.step // {k} AS b,
                   min(epoch_ms(st.timestamp))::DOUBLE AS t_ms,
                   sum(st.liquidated_notional_usd) / count(DISTINCT c.cell_id)
                       AS liquidated_notional_usd
            FROM sweep_steps st JOIN sweep_cells c USING (sweep_id, cell_id)
            WHERE {where} GROUP BY ALL ORDER BY param_set, b""")
    data.reality = (market.reality(proposal) if market is not None
                    else against_what_happened(catalog, data))
    data.warnings = input_warnings(data, strategies)
    data.accounts = account_view(catalog, data)
    return data


def mean_values(unit_values: pl.DataFrame) -> pl.DataFrame:
    """Return the mean over units of every measure per (event, stress, param_set).

    Parameters
    ----------
    unit_values : polars.DataFrame
        From :func:`backtest.report.governance_stats.unit_values`.

    Returns
    -------
    polars.DataFrame
        ``event``, ``stress``, ``param_set``, one column per measure of :data:`MEASURES`
        present, ``units`` (count).
    """
    present = [m for m, _ in MEASURES if m in unit_values.columns]
    return (unit_values.group_by("event", "stress", "param_set")
            .agg(*[pl.col(m).mean() for m in present], pl.len().alias("units"))
            .sort("event", "stress", "param_set"))


def grid_fields(proposal: Proposal, strategies: str | Path | None = None) -> list[str]:
    """Return the frontier's swept policy fields (resolved dotted names), in file order."""
    from backtest.sweep.grid import resolve_field

    market = market_module(proposal)
    if market is not None:
        return market.grid_fields(proposal)
    model = type(load_policy(proposal.protocol, strategies))
    return [resolve_field(model, k, proposal.protocol, "frontier") for k in proposal.frontier]


def input_warnings(data: GovernanceData, strategies: str | Path | None = None) -> list[str]:
    """Return the warnings where the inputs do not match the question.

    Book asset vs tape asset, mechanisms that defined an event but are not modelled, events
    where nothing happened, and a single unit (see :mod:`backtest.report.governance_warnings`).
    """
    from backtest.books.io import read_book_table
    from backtest.errors import LiqbtError

    if market_module(data.proposal) is not None:  # the book holds the tapes' own assets
        from backtest.sweep.config import RunSections

        out = gwarn.mechanism_warnings([(ev.key, ev.event) for ev in data.proposal.events],
                                       RunSections().model_dump(mode="json"),
                                       gwarn.PresetTraits(data.proposal.kind))
        return out + _data_warnings(data)
    assets = []
    for ev in data.proposal.events:
        info = next((e for e in data.manifest["events"] if e["event"] == ev.key), None)
        if info is None:
            continue
        meta: dict = {}
        try:
            meta = read_book_table(info["book"])[1]
        except (OSError, LiqbtError, KeyError):
            pass
        assets.append((ev.key, info["symbol"], meta, ev.book_params))
    policy = load_policy(data.proposal.protocol, strategies)
    auction = getattr(policy, "auction", None)
    preset = gwarn.PresetTraits(policy.family,
                                zero_bids=auction is not None and auction.zero_bid_minutes > 0)
    run = data.proposal.run.model_dump(mode="json")
    out = gwarn.asset_warnings(assets, data.proposal.name)
    out += gwarn.mechanism_warnings([(ev.key, ev.event) for ev in data.proposal.events], run,
                                    preset)
    return out + _data_warnings(data)


def _data_warnings(data: GovernanceData) -> list[str]:
    """Return the warnings read from the cells: empty events, a single unit."""
    out = []
    if data.unit_values is not None:
        out += gwarn.empty_warnings(data.unit_values, data.scenario_keys(),
                                    [m for m, _ in MEASURES if m not in gstats.MEAN_MEASURES])
    out += gwarn.unit_warnings(data.units.kind, data.units.count)
    if data.conditioning is not None and not data.conditioning.members:
        out.append(data.conditioning.sentence())
    return out + [w for ev in data.reality for w in ev.get("far", [])]


def account_view(catalog: Catalog, data: GovernanceData) -> list[dict]:
    """Return the per-account view: per scenario, each proposed set against current.

    The current and proposed cells of the first unit (lowest member or seed) of each scenario
    are re-simulated (:mod:`backtest.report.governance_accounts`).

    Returns
    -------
    list of dict
        Per scenario: ``scenario`` (key), ``unit`` (int), ``sets``: per named set ``label``,
        ``loss`` (:func:`~backtest.report.governance_accounts.loss_distribution`) and, for
        proposed sets, ``compare``
        (:func:`~backtest.report.governance_accounts.compare_accounts`); or ``error`` (str)
        when the cells could not be re-simulated.
    """
    from backtest.errors import LiqbtError
    from backtest.report import governance_accounts as gacc
    from backtest.sweep.store import SweepStore

    if data.sweep_dir is None:
        return []
    sid = _lit(data.manifest["sweep_id"])
    store = SweepStore(data.sweep_dir)
    named = data.named()
    unit_col = data.units.kind
    kept = "" if data.conditioning is None else data.conditioning.filter_sql()
    out = []
    for sc in data.scenarios:
        cells = catalog.query(f"""
            SELECT param_set, {unit_col}::BIGINT AS unit, cell_id FROM sweep_cells c
            WHERE sweep_id = {sid} AND event = {_lit(sc.event)} AND stress = {_lit(sc.stress)}
            {"AND member >= 0" if unit_col == "member" else ""}{kept}
            ORDER BY unit, cell_id""")
        if not cells.height:
            continue
        unit = int(cells["unit"][0])
        ids = {r["param_set"]: r["cell_id"]
               for r in cells.filter(pl.col("unit") == unit).iter_rows(named=True)}
        entry: dict = {"scenario": sc.key, "unit": unit, "sets": [], "error": None}
        try:
            tables = {s.label: gacc.cell_accounts(store.cell_dir(ids[s.label]) / "cell.json")
                      for s in named}
        except (KeyError, OSError, TypeError, ValueError, LiqbtError) as exc:
            entry["error"] = (f"the cells of {sc.key} could not be re-simulated "
                              f"({type(exc).__name__}: {scrub_paths(str(exc))})")
            out.append(entry)
            continue
        cur = tables[named[0].label]
        for s in named:
            row = {"label": s.label, "role": s.role, "color": s.color,
                   "loss": gacc.loss_distribution(tables[s.label]), "compare": None}
            if s.role != CURRENT:
                row["compare"] = gacc.compare_accounts(cur, tables[s.label])
            entry["sets"].append(row)
        out.append(entry)
    return out
