"""Governance reports: one self-contained HTML file a DAO can vote on.

``liqbt report --governance PROPOSAL.toml`` runs the proposal (:mod:`backtest.report.proposal`)
through the sweep machinery, then builds the report from DuckDB aggregates of the sweep's cells
(the catalog views ``sweep_cells`` and ``sweep_steps``): a one-screen summary (recommendation,
current vs proposed on every event), the trade-off frontier of bad debt against user losses
across the swept parameters, a section per event (price path, liquidations over time per
parameter set), methodology and assumptions in plain words, and a reproducibility appendix.

Size: plotly.js is embedded once, gzip-compressed (about 2.0 MB instead of 4.8 MB,
:mod:`backtest.report.plotlyjs`); every per-step series is bucketed to at most
:data:`MAX_SERIES_POINTS` points and stored as float32, so a 6-event, 20-parameter-set report
is about 2.1 MB. Every user-supplied string (proposal name, descriptions, set names) is
escaped: by jinja2's autoescaping in the page, by :func:`backtest.report.figures.label` in
charts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from markupsafe import Markup

from backtest.atomic import atomic_path
from backtest.books.event import load_book_params
from backtest.engine.run import file_sha256
from backtest.policies import load_policy
from backtest.report import build, figures
from backtest.report import governance_stats as gstats
from backtest.report import governance_warnings as gwarn
from backtest.report.governance_data import (
    CURRENT_COLOR,
    FRONTIER_GREY,
    GovernanceData,
    Scenario,
    SetInfo,
)
from backtest.report.governance_figures import event_figure, frontier_figure, heatmap_figure
from backtest.report.plotlyjs import plotlyjs_loader
from backtest.report.proposal import CURRENT, Proposal, load_proposal, parameter_sets, sweep_config
from backtest.results.catalog import Catalog
from backtest.results.metrics import METRICS

MAX_SERIES_POINTS = 80
"""Most points per plotted per-step series of the governance report."""

MEASURES: tuple[tuple[str, str], ...] = (
    ("bad_debt_usd", "min"),
    ("user_loss_to_liquidation_usd", "min"),
    ("user_equity_retained", "max"),
    ("insurance_draw_usd", "min"),
    ("adl_notional_usd", "min"),
    ("peak_liquidated_notional_usd", "min"),
)
"""Summary measures (registry names) and which direction is better."""

def _metric(name: str):
    return next(m for m in METRICS if m.name == name)


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
    unit_values, units = gstats.unit_values(catalog, sid, [m for m, _ in MEASURES])
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
                catalog_event.name, catalog_event.description))
    preset = load_policy(proposal.protocol, strategies)
    data = GovernanceData(proposal, path, manifest, sets, scenarios, values, unit_values,
                          units, Path(sweep_dir), grid_fields(proposal, strategies),
                          build._flatten(preset.model_dump(mode="json")))
    unit_col = units.kind
    for sc in scenarios:
        n = catalog.query(f"""
            SELECT max(steps) AS n FROM sweep_cells WHERE sweep_id = {sid}
            AND event = {_lit(sc.event)} AND stress = {_lit(sc.stress)}""")["n"][0]
        k = build.bucket_size(int(n or 1), MAX_SERIES_POINTS)
        data.buckets[sc.key] = k
        where = (f"sweep_id = {sid} AND c.event = {_lit(sc.event)} "
                 f"AND c.stress = {_lit(sc.stress)}")
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
    data.reality = against_what_happened(catalog, data)
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

    model = type(load_policy(proposal.protocol, strategies))
    return [resolve_field(model, k, proposal.protocol, "frontier") for k in proposal.frontier]


def input_warnings(data: GovernanceData, strategies: str | Path | None = None) -> list[str]:
    """Return the warnings where the inputs do not match the question.

    Book asset vs tape asset, mechanisms that defined an event but are not modelled, events
    where nothing happened, and a single unit (see :mod:`backtest.report.governance_warnings`).
    """
    from backtest.books.io import read_book_table
    from backtest.errors import LiqbtError

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
    family = load_policy(data.proposal.protocol, strategies).family
    run = data.proposal.run.model_dump(mode="json")
    out = gwarn.asset_warnings(assets, data.proposal.name)
    out += gwarn.mechanism_warnings([(ev.key, ev.event) for ev in data.proposal.events], run,
                                    family)
    if data.unit_values is not None:
        out += gwarn.empty_warnings(data.unit_values, data.scenario_keys(),
                                    [m for m, _ in MEASURES if m not in gstats.MEAN_MEASURES])
    out += gwarn.unit_warnings(data.units.kind, data.units.count)
    return out


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
    out = []
    for sc in data.scenarios:
        cells = catalog.query(f"""
            SELECT param_set, {unit_col}::BIGINT AS unit, cell_id FROM sweep_cells
            WHERE sweep_id = {sid} AND event = {_lit(sc.event)} AND stress = {_lit(sc.stress)}
            {"AND member >= 0" if unit_col == "member" else ""}
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
                              f"({type(exc).__name__}: {_scrub(str(exc))})")
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


def against_what_happened(catalog: Catalog, data: GovernanceData,
                          targets_dir: str | Path | None = None) -> list[dict]:
    """Return the "against what happened" section: per event, the rows of ``liqbt validate``.

    The current and proposed parameter sets stand for the policies; their figures come from
    the proposal's unstressed cells (:class:`backtest.calibration.compare.SweepTables`),
    averaged over seeds. The book's venue, calibration targets and open interest come from
    the event's books (the first seed's metadata; the notional at the window start averaged
    over seeds).

    Parameters
    ----------
    catalog : Catalog
        Catalog with the proposal's sweep registered.
    data : GovernanceData
    targets_dir : str or Path, optional
        Target directory (default :func:`backtest.calibration.targets.validation_dir`).

    Returns
    -------
    list of dict
        One per proposal event: ``event`` (label), ``rows`` (list of dict of str, see
        :func:`backtest.calibration.compare.table_rows`), ``notes``, ``sentence`` (the plain
        sentence when nothing matches), ``calibrated``.
    """
    from datetime import datetime

    from backtest.books.io import read_book_table
    from backtest.calibration.compare import RunFacts, base_asset, compare, fit_keys, table_rows
    from backtest.calibration.sources import SweepTables
    from backtest.calibration.targets import load_targets
    from backtest.errors import ConfigError, LiqbtError

    try:
        pool = load_targets(targets_dir)
    except ConfigError as exc:
        return [{"event": ev.key, "rows": [], "notes": [], "calibrated": False,
                 "sentence": f"The published targets could not be read: {exc}"}
                for ev in data.proposal.events]
    sid = data.manifest["sweep_id"]
    labels = [s.label for s in data.named()]
    out = []
    for ev in data.proposal.events:
        infos = [e for e in data.manifest["events"] if e["event"] == ev.key]
        opens = catalog.query(f"""
            SELECT c.seed, arg_min(st.open, st.step) AS open0
            FROM sweep_steps st JOIN sweep_cells c USING (sweep_id, cell_id)
            WHERE st.sweep_id = {_lit(sid)} AND c.event = {_lit(ev.key)}
              AND c.stress_kind = 'none' GROUP BY c.seed""")
        open0 = {int(r["seed"]): float(r["open0"]) for r in opens.iter_rows(named=True)}
        meta: dict = {}
        products: set[str] = set()
        notionals = []
        for info in infos:
            try:
                frame, m = read_book_table(info["book"])
            except (OSError, LiqbtError):
                continue
            meta = meta or m
            products |= set(frame["product"].unique().to_list())
            recorded = m.get("open_interest_usd")
            if recorded is not None:
                notionals.append(float(recorded))
            elif int(info["seed"]) in open0:
                notionals.append(float(frame["size"].sum()) * open0[int(info["seed"])])
        first = infos[0] if infos else {}
        facts = RunFacts(
            event=ev.event, asset=base_asset(first.get("symbol")),
            products=tuple(sorted(products)), venue=meta.get("venue") or None,
            start=datetime.fromisoformat(first["start"]) if first else None,
            end=datetime.fromisoformat(first["end"]) if first else None,
            fit_keys=fit_keys(meta),
            open_interest_usd=sum(notionals) / len(notionals) if notionals else None)
        if not first:
            out.append({"event": ev.key, "rows": [], "notes": [], "calibrated": False,
                        "sentence": "No unstressed cell of this event was run, so it is not "
                                    "held against what happened."})
            continue
        source = SweepTables(catalog, sid, ev.key, labels, facts.open_interest_usd)
        comparison = compare(facts, source, targets=pool)
        out.append({"event": ev.key, "rows": table_rows(comparison),
                    "notes": comparison.notes, "sentence": comparison.sentence,
                    "calibrated": comparison.calibrated})
    return out


# --------------------------------------------------------------------------- summary


@dataclass
class Change:
    """A proposed value and its change against current."""

    text: str
    delta: str
    verdict: str  # better | worse | same
    interval: str = ""


def _change(cur: float | None, new: float | None, unit: str, better: str) -> Change:
    text = build.format_value(new, unit)
    if cur is None or new is None:
        return Change(text, "", "same")
    if unit == "fraction":
        diff = new - cur
        delta = f"{100 * diff:+.2f} pts"
    else:
        diff = new - cur
        delta = (_signed_pct(100 * diff / abs(cur)) if cur else
                 ("+" + build.format_value(diff, unit) if diff > 0 else ""))
    tol = 1e-9 * max(abs(cur), abs(new), 1.0)
    if abs(diff) <= max(tol, 0.5 if unit == "USD" else 1e-6):
        return Change(text, "no change", "same")
    good = diff < 0 if better == "min" else diff > 0
    return Change(text, delta, "better" if good else "worse")


def interval_text(iv: tuple[float, float, float] | None, unit: str) -> str:
    """Return ``"p5–p95 $1.2M – $3.4M"`` for an interval, empty when degenerate.

    Bounds are compact (:func:`backtest.calibration.compare.format_figure`: three significant
    digits, ``k`` / ``M`` / ``B``).
    """
    from backtest.calibration.compare import format_figure

    if iv is None or abs(iv[2] - iv[0]) <= (0.5 if unit == "USD" else 1e-9):
        return ""
    return f"p5–p95 {format_figure(iv[0], unit)} – {format_figure(iv[2], unit)}"


def summary_table(data: GovernanceData) -> dict:
    """Return the per-event table: per scenario (and all), each measure, current vs proposed.

    Every value is the mean over units (ensemble members or seeds) with, when there are
    several, the 5th–95th percentile range over units.

    Returns
    -------
    dict
        ``measures`` (label, unit, direction), ``rows`` (``name``, ``cells``: per measure
        ``current`` text, ``current_interval`` text and ``proposed``: list of :class:`Change`
        with ``interval`` text).
    """
    named = data.named()
    cur, props = named[0], named[1:]
    measures = [(_metric(m), d) for m, d in MEASURES]
    rows = []
    for sc in [None, *data.scenarios]:
        cells = []
        for m, d in measures:
            c = data.value(sc, cur.label, m.name)
            proposed = []
            for p in props:
                ch = _change(c, data.value(sc, p.label, m.name), m.unit, d)
                ch.interval = interval_text(data.interval(sc, p.label, m.name), m.unit)
                proposed.append(ch)
            cells.append({"current": build.format_value(c, m.unit),
                          "current_interval": interval_text(
                              data.interval(sc, cur.label, m.name), m.unit),
                          "proposed": proposed})
        name = "All events" if sc is None else sc.key
        rows.append({"name": name, "total": sc is None, "cells": cells})
    return {"measures": [{"label": m.label, "unit": m.unit, "better": d} for m, d in measures],
            "rows": rows, "proposed": props, "current": cur}


def robustness_sentence(data: GovernanceData, label: str) -> str:
    """Return the robustness of a proposed set in plain words.

    E.g. "“X” leaves less bad debt in 47 of 50 ensemble members and on 4 of 5 events; user
    losses to liquidation are higher on 3 events (a +2.5%, b +2.8%, c +19.7%)."
    """
    cur = data.named()[0].label
    r = gstats.robustness(data.unit_values, cur, label, data.scenario_keys())
    units = data.units
    text = (f"\u201c{label}\u201d leaves less bad debt in {r.units_better} of {r.units} "
            f"{units.words(r.units)} and on {r.events_better} of {r.events} "
            f"event{'s' if r.events != 1 else ''}")
    if r.units_worse:
        text += f" (more in {r.units_worse} {units.words(r.units_worse)})"
    if r.events_worse_bad_debt:
        k = r.events_worse_bad_debt
        text += f"; it leaves more bad debt on {k} event{'s' if k != 1 else ''}"
    if r.user_loss_higher:
        rises = ", ".join(f"{k} {_signed_pct(p)}" if p is not None else f"{k} from $0"
                          for k, p in r.user_loss_higher)
        n = len(r.user_loss_higher)
        text += (f"; user losses to liquidation are higher on {n} "
                 f"event{'s' if n != 1 else ''} ({rises})")
    else:
        text += "; user losses to liquidation are higher on no event"
    return text + "."


def recommendation(data: GovernanceData) -> dict:
    """Return the recommendation: a headline and plain-words sentences per proposed set.

    A proposed set is recommended when, summed over every event, it leaves less bad debt and
    no more user losses to liquidation (within 0.1%) than the current parameters; rejected
    when it is worse on both; otherwise it is a trade-off the sentence quantifies. Each set's
    sentences add its robustness (:func:`robustness_sentence`: in how many units and on how
    many events it leaves less bad debt, and every event on which user losses rise), the
    5th–95th percentile ranges of the totals over units, and the swept sets that beat both
    it and the current parameters on both counts.

    Returns
    -------
    dict
        ``headline``, ``verdict`` (``adopt``, ``keep`` or ``trade-off``), ``sentences``,
        ``dominating`` (proposed label -> list of (marker, label, bad debt, user losses)).
    """
    named = data.named()
    cur = named[0]
    bd0 = data.value(None, cur.label, "bad_debt_usd") or 0.0
    ul0 = data.value(None, cur.label, "user_loss_to_liquidation_usd") or 0.0
    sentences, adopt, worse = [], [], 0
    n = len(data.scenarios)
    dom = data.dominating()
    markers = dominating_markers(data)
    pts = data.points()
    what = data.units.words()

    def ranges(label: str) -> str:
        parts = []
        for m, words in (("bad_debt_usd", "bad debt"),
                         ("user_loss_to_liquidation_usd", "user losses")):
            t = interval_text(data.interval(None, label, m), "USD")
            if t:
                parts.append(words + " " + t.split(" ", 1)[1])
        return (f" Across {data.units.count} {what}, the 5th\u201395th percentile range of "
                f"the totals is {'; '.join(parts)}." if parts else "")

    for p in named[1:]:
        bd = data.value(None, p.label, "bad_debt_usd") or 0.0
        ul = data.value(None, p.label, "user_loss_to_liquidation_usd") or 0.0
        rob = gstats.robustness(data.unit_values, cur.label, p.label, data.scenario_keys())
        d_bd, d_ul = bd - bd0, ul - ul0
        tol_bd, tol_ul = max(0.5, 1e-3 * abs(bd0)), max(0.5, 1e-3 * abs(ul0))
        name = f"\u201c{p.label}\u201d"
        facts = (f"bad debt {build.usd(bd0)} \u2192 {build.usd(bd)}"
                 f"{_pct(d_bd, bd0)}, user losses to liquidation {build.usd(ul0)} \u2192 "
                 f"{build.usd(ul)}{_pct(d_ul, ul0)}, means over {data.units.count} {what} summed "
                 f"over {n} "
                 f"event{'s' if n != 1 else ''}")
        if d_bd < -tol_bd and d_ul <= tol_ul:
            adopt.append((bd, p.label, len(rob.user_loss_higher)))
            if rob.user_loss_higher:
                k = len(rob.user_loss_higher)
                text = (f"Adopt {name}: over all events it leaves less bad debt and no more "
                        f"user losses in total, but user losses rise on {k} of {n} "
                        f"event{'s' if n != 1 else ''} ({facts}).")
            else:
                text = (f"Adopt {name}: it leaves less bad debt without raising user losses "
                        f"on any event ({facts}).")
        elif d_bd > tol_bd and d_ul > tol_ul:
            worse += 1
            text = f"Do not adopt {name}: it is worse on both counts ({facts})."
        elif abs(d_bd) <= tol_bd and abs(d_ul) <= tol_ul:
            text = f"{name} makes no material difference ({facts})."
        elif d_bd < -tol_bd:
            rate = d_ul / -d_bd
            text = (f"Trade-off for {name}: it avoids {build.usd(-d_bd)} of bad debt at the "
                    f"cost of {build.usd(d_ul)} more user losses ({build.usd(rate)} of user "
                    f"losses per dollar of bad debt avoided; {facts}).")
        else:
            text = (f"Trade-off for {name}: it spares users {build.usd(-d_ul)} of "
                    f"liquidation losses but adds {build.usd(d_bd)} of bad debt ({facts}).")
        text += " " + robustness_sentence(data, p.label) + ranges(p.label)
        better_sets = dom.get(p.label, [])
        if better_sets:
            listed = "; ".join(
                f"{markers[f]} \u201c{f}\u201d (bad debt {build.usd(pts[f][1])}, user "
                f"losses {build.usd(pts[f][0])})" for f in better_sets)
            k = len(better_sets)
            text += (f" {k} swept set{'s' if k != 1 else ''} beat{'' if k != 1 else 's'} both "
                     f"the current parameters and {name} on both bad debt and user losses "
                     f"(labelled on the frontier): {listed}.")
        else:
            text += (f" No swept set beats both the current parameters and {name} on both "
                     "counts.")
        sentences.append(text)
    dominating = {p: [(markers[f], f, pts[f][1], pts[f][0]) for f in fs]
                  for p, fs in dom.items()}
    if adopt:
        bd_best, best, rises = min(adopt)
        rob = gstats.robustness(data.unit_values, cur.label, best, data.scenario_keys())
        if rises:
            tail = (f"It would have left less bad debt across the events tested and no more "
                    f"user losses to liquidation in total, but user losses are higher on "
                    f"{rises} of {n} events.")
        else:
            tail = ("It would have left less bad debt across the events tested without "
                    "raising user losses to liquidation on any event.")
        tail += (f" Less bad debt in {rob.units_better} of {rob.units} "
                 f"{data.units.words(rob.units)} and on {rob.events_better} of {n} events.")
        return {"verdict": "adopt", "sentences": sentences, "dominating": dominating,
                "headline": f"Recommendation: adopt \u201c{best}\u201d. {tail}"}
    if worse == len(named) - 1:
        return {"verdict": "keep", "sentences": sentences, "dominating": dominating,
                "headline": "Recommendation: keep the current parameters. Every proposed "
                            "set would have left more bad debt and more user losses."}
    return {"verdict": "trade-off", "sentences": sentences, "dominating": dominating,
            "headline": "No proposed set is better on both bad debt and user losses: the "
                        "choice is a trade-off, quantified below."}


def dominating_markers(data: GovernanceData) -> dict[str, str]:
    """Return a short marker (``D1``, ``D2``, ...) per swept set that dominates a proposal.

    Markers label the points on the frontier and name the sets in the text; the order is
    the order of first appearance over proposed sets.
    """
    out: dict[str, str] = {}
    for labels in data.dominating().values():
        for f in labels:
            out.setdefault(f, f"D{len(out) + 1}")
    return out


def _pct(diff: float, base: float) -> str:
    if not base:
        return ""
    return f" ({_signed_pct(100 * diff / abs(base))})"


def _signed_pct(pct: float) -> str:
    """Format a percentage change with a sign: one decimal, two below 0.1% (``-0.01%``)."""
    return f"{pct:+.1f}%" if abs(pct) >= 0.1 or pct == 0 else f"{pct:+.2f}%"


# --------------------------------------------------------------------------- words


def methodology(data: GovernanceData, strategies: str | Path | None = None) -> dict:
    """Return the methodology section in plain words.

    Book generation, execution, impact, oracle and keepers, the preset, stress transforms,
    what is not modelled, and the parameter table.
    """
    run = data.proposal.run
    preset = load_policy(data.proposal.protocol, strategies)
    books = []
    for ev in data.proposal.events:
        b = load_book_params(ev.book_params)
        perps = 1.0 - b.loan_fraction
        books.append(
            f"{ev.key}: {ev.accounts:,} accounts per seed, {100 * b.loan_fraction:g}% loans "
            f"(loan-to-value {100 * b.ltv_min:g}\u2013{100 * b.ltv_max:g}%, median collateral "
            f"{build.usd(b.loan_collateral_median_usd)})"
            + (f" and {100 * perps:g}% isolated perps ({100 * b.long_fraction:g}% long, "
               f"leverage {', '.join(f'{x:g}x' for x in b.leverage_choices)}, median notional "
               f"{build.usd(b.perp_notional_median_usd)})" if perps > 0 else "")
            + f"; entries in the {b.lookback_days:g} days before the window"
            + (f" (generator parameters {portable_path(ev.book_params)})"
               if ev.book_params else "") + ".")
    m = run.market.model_dump()
    manifest_like = {"oracle": run.oracle.model_dump(), "keepers": run.keepers.model_dump(
        mode="json")}
    not_modelled = []
    if run.market.impact_model == "none":
        not_modelled.append(build.NO_IMPACT)
    if run.oracle.model == "market":
        not_modelled.append(build.NO_ORACLE)
    if not build._keepers_modelled(manifest_like):
        not_modelled.append(build.NO_KEEPERS)
    not_modelled.extend(build.NOT_MODELLED)
    not_modelled.append("Behaviour changes: traders and keepers act as they did in history; "
                        "a new parameter set does not change who opens which position.")
    stress = [s.label for s in data.proposal.stress]
    trig, fill = run.execution.trigger_price, run.execution.fill_price
    return {
        "books": books,
        "seeds": _seeds_text(data.proposal),
        "trigger": (trig, build.TRIGGER_TEXT[trig]),
        "fill": (fill, build.FILL_TEXT[fill]),
        "market": build.market_text(m),
        "oracle_keepers": build.oracle_keeper_text(manifest_like),
        "insurance_fund": build.usd(run.insurance_fund.initial_balance_usd),
        "preset": {"name": preset.name, "family": preset.family,
                   "description": preset.description, "source": preset.source},
        "stress": stress,
        "not_modelled": not_modelled,
        "parameters": parameter_rows(data),
    }


def parameter_rows(data: GovernanceData) -> list[tuple[str, list[str]]]:
    """Return ``(field, [value per current / proposed set])`` for every field any set changes.

    The frontier's fields are included; values are the policy as simulated.
    """
    preset = load_policy(data.proposal.protocol)
    named = data.named()
    fields: list[str] = []
    for s in data.sets:
        for k in s.params:
            if k not in fields:
                fields.append(k)
    flat = build._flatten(preset.model_dump(mode="json"))
    rows = []
    for k in fields:
        vals = []
        for s in named:
            v = s.params.get(k, flat.get(k))
            vals.append(f"{v:g}" if isinstance(v, float) else str(v))
        rows.append((k, vals))
    return rows


def portable_path(path: str | Path, base: Path | None = None) -> str:
    """Return a path as the report may show it: never a local absolute path.

    Under the working directory (or ``base``): relative to it; under ``LIQBT_SHARED_DATA``:
    ``${LIQBT_SHARED_DATA}/...``; under the repository: relative to it; otherwise
    ``.../<parent>/<name>``. Relative paths are kept.

    Parameters
    ----------
    path : str or Path
    base : Path, optional
        Directory to show paths relative to (default: the working directory).

    Returns
    -------
    str
    """
    import os

    p = Path(str(path))
    if not p.is_absolute():
        return str(p)
    p = Path(os.path.normpath(p))
    shared = os.environ.get("LIQBT_SHARED_DATA")
    roots = [("${LIQBT_SHARED_DATA}", shared)] if shared else []
    roots += [("", str(base or Path.cwd())), ("", str(_repo_root()))]
    for prefix, root in roots:
        try:
            rel = p.relative_to(Path(os.path.normpath(root)))
        except ValueError:
            continue
        return f"{prefix}/{rel}" if prefix else (str(rel) or ".")
    return ".../" + "/".join(p.parts[-2:])


def portable_command(command: str) -> str:
    """Return a command line with every absolute path made portable (:func:`portable_path`)."""
    import shlex

    try:
        words = shlex.split(command)
    except ValueError:
        return command
    return " ".join(shlex.quote(portable_path(w)) if w.startswith("/") else shlex.quote(w)
                    for w in words)


def _scrub(text: str) -> str:
    """Replace absolute paths in a message by portable ones (:func:`portable_path`)."""
    import re

    return re.sub(r"(?<![\w.])/[^\s'\"(),:]+", lambda m: portable_path(m.group(0)), text)


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def git_commit() -> str | None:
    """Return the git commit of the liqbt checkout (``+dirty`` if modified), or None.

    None when liqbt is not run from a git checkout or git is not installed.
    """
    import subprocess

    root = _repo_root()
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], check=True,
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                "--untracked-files=no"], check=True, capture_output=True,
                               text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "") if head else None


def reproducibility(data: GovernanceData) -> dict:
    """Return the appendix: command, proposal text and hash, sweep, inputs, versions, commit.

    No local absolute path appears: paths are shown relative to the working directory, the
    shared data directory or the repository (:func:`portable_path`), also inside the
    proposal's text (whose sha256 is that of the file as written).
    """
    m = data.manifest
    last = m.get("last_run", {})
    return {
        "command": portable_command(data.command),
        "proposal_path": portable_path(data.path),
        "proposal_sha256": file_sha256(data.path),
        "proposal_text": _scrub(data.path.read_text(encoding="utf-8")),
        "sweep_id": m["sweep_id"],
        "cells": m["cells"],
        "seeds": _seeds_text(data.proposal),
        "units": (f"{data.units.count} {data.units.words()}"
                  + (" (intervals are taken over ensemble members)"
                     if data.units.kind == "member" else
                     " (no ensemble: intervals are taken over book seeds)")),
        "inputs": [(i["kind"], portable_path(i["path"]), i["sha256"]) for i in m["inputs"]],
        "engine": sorted(m.get("engine", {}).items()),
        "versions": sorted(m.get("versions", {}).items()),
        "git_commit": git_commit(),
        "timing": (f"{last.get('cells_computed', 0)} cells simulated, "
                   f"{last.get('cells_skipped', 0)} reused from an earlier run, "
                   f"{last.get('wall_seconds', 0.0):.1f} s wall on {last.get('backend', '?')}"),
    }


# --------------------------------------------------------------------------- render


def render_governance(data: GovernanceData, strategies: str | Path | None = None) -> str:
    """Return the governance report of ``data`` as one self-contained HTML document."""
    from backtest.report import _environment

    charts = [{"id": f"fig-event-{i}", "scenario": sc,
               "html": Markup(figures.figure_html(event_figure(data, sc), f"fig-event-{i}"))}
              for i, sc in enumerate(data.scenarios)]
    frontier = Markup(figures.figure_html(frontier_figure(data, dominating_markers(data)),
                                          "fig-frontier"))
    heat = heatmap_figure(data)
    heatmap = Markup(figures.figure_html(heat, "fig-heatmap")) if heat is not None else None
    template = _environment().get_template("governance.html.j2")
    return template.render(
        proposal=data.proposal, rec=recommendation(data), table=summary_table(data),
        units=data.units, warnings=data.warnings, accounts=data.accounts, heatmap=heatmap,
        grid_fields=data.grid_fields, usd=build.usd,
        sets=data.sets, named=data.named(), frontier=frontier, charts=charts,
        method=methodology(data, strategies), repro=reproducibility(data),
        reality=data.reality,
        n_frontier=sum(1 for s in data.sets if s.role == "frontier"),
        plotlyjs=plotlyjs_loader())


def write_governance_report(proposal_path: str | Path, output: str | Path | None = None,
                            runs: str | Path | None = None, store: str | Path | None = None,
                            strategies: str | Path | None = None,
                            events: str | Path | None = None, workers: int | None = None,
                            scheduler=None, show_progress: bool = True,
                            command: str | None = None) -> tuple[Path, object]:
    """Run a proposal (resumable) and write its governance report, atomically.

    Parameters
    ----------
    proposal_path : str or Path
        Proposal TOML (:mod:`backtest.report.proposal`).
    output : str or Path, optional
        HTML file; default ``<reports>/<governance-stem>.html``.
    runs, store, strategies, events : str or Path, optional
        Runs directory (the sweep goes to ``<runs>/governance/<stem>``), tape store,
        strategies directory, event catalog.
    workers, scheduler : optional
        Local processes or a Dask scheduler, as for ``liqbt sweep``.
    show_progress : bool
    command : str, optional
        Command recorded in the appendix.

    Returns
    -------
    path : Path
        The report written.
    outcome : backtest.sweep.SweepOutcome

    Raises
    ------
    LiqbtError
        Invalid proposal (the message names the file and field), missing inputs, a failing
        cell; nothing is written then.
    """
    from backtest import paths
    from backtest.sweep import run_sweep

    path = Path(proposal_path)
    proposal = load_proposal(path)
    roles = parameter_sets(proposal, path, strategies)
    cfg = sweep_config(proposal, path)
    sweep_dir = paths.runs_dir(runs) / "governance" / path.stem
    command = command or f"liqbt report --governance {path}"
    outcome = run_sweep(path, cfg=cfg, runs=runs, store=store, strategies=strategies,
                        events=events, scheduler=scheduler, workers=workers, output=sweep_dir,
                        show_progress=show_progress,
                        param_sets={proposal.protocol: [ps for _, ps in roles]},
                        command=command)
    with Catalog(runs) as catalog:
        catalog.register_sweep(outcome.sweep_dir)
        data = load_governance_data(catalog, proposal, path, outcome.sweep_dir, roles,
                                    strategies, events)
    data.command = command
    text = render_governance(data, strategies)
    out = Path(output) if output is not None else paths.reports_dir() / f"{cfg.name}.html"
    with atomic_path(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
        tmp.chmod(0o644)
    return out, outcome


def _seeds_text(proposal) -> str:
    """The proposal's book seeds, or how an ensemble draws them."""
    if proposal.ensemble is not None:
        return (f"drawn per member ({proposal.ensemble.members} ensemble members, ensemble seed "
                f"{proposal.ensemble.seed})")
    return ", ".join(str(s) for s in proposal.seeds)
