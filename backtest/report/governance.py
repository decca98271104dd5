"""Governance reports: one self-contained HTML file a DAO can vote on.

``liqbt report --governance PROPOSAL.toml`` runs the proposal (:mod:`backtest.report.proposal`)
through the sweep machinery, then builds the report from DuckDB aggregates of the sweep's cells
(the catalog views ``sweep_cells`` and ``sweep_steps``): a one-screen summary (recommendation,
current vs proposed on every event), the trade-off frontier of bad debt against user losses
across the swept parameters, a section per event (price path, liquidations over time per
parameter set), methodology and assumptions in plain words, and a reproducibility appendix.
This module writes the methodology and renders and writes the page; the data are loaded by
:mod:`backtest.report.governance_load` into :mod:`backtest.report.governance_data`, the
summary and recommendation come from :mod:`backtest.report.governance_summary`, the charts
from :mod:`backtest.report.governance_figures` and the appendix from
:mod:`backtest.report.governance_appendix`.

Size: plotly.js is embedded once, gzip-compressed (about 2.0 MB instead of 4.8 MB,
:mod:`backtest.report.plotlyjs`); every per-step series is bucketed to at most
:data:`backtest.report.governance_load.MAX_SERIES_POINTS` points and stored as float32, so a
6-event, 20-parameter-set report is about 2.1 MB. Every user-supplied string (proposal name,
descriptions, set names) is escaped: by jinja2's autoescaping in the page, by
:func:`backtest.report.figures.label` in charts.
"""

from __future__ import annotations

from pathlib import Path

from markupsafe import Markup

from backtest.atomic import atomic_path
from backtest.books.event import load_book_params
from backtest.engine.config import is_whole_market
from backtest.policies import load_policy
from backtest.report import build, figures
from backtest.report.governance_appendix import portable_path, reproducibility, seeds_text
from backtest.report.governance_data import GovernanceData
from backtest.report.governance_figures import event_figure, frontier_figure, heatmap_figure
from backtest.report.governance_load import load_governance_data, market_module
from backtest.report.governance_summary import (
    dominating_markers,
    recommendation,
    summary_table,
)
from backtest.report.plotlyjs import plotlyjs_loader
from backtest.report.proposal import load_proposal, parameter_sets, policy_name, sweep_config
from backtest.results.catalog import Catalog


def methodology(data: GovernanceData, strategies: str | Path | None = None) -> dict:
    """Return the methodology section in plain words.

    Book generation, execution, impact, oracle and keepers, the preset, stress transforms,
    what is not modelled, and the parameter table.
    """
    market = market_module(data.proposal)
    if market is not None:  # a portfolio or options market rather than a preset
        return {**market.methodology(data.proposal),
                "seeds": seeds_text(data.proposal),
                "stress": [s.label for s in data.proposal.stress],
                "parameters": parameter_rows(data),
                "ensemble_inputs": ensemble_inputs(data.manifest)}
    run = data.proposal.run
    preset = load_policy(data.proposal.protocol, strategies)
    books, stands_for = [], set()
    for ev in data.proposal.events:
        b = load_book_params(ev.book_params)
        stands_for.add(b.represents)
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
    if run.market.depth_usd is None and len(stands_for) == 1:  # whose depth (report text)
        venue = stands_for.pop()
        m["depth"] = {"scope": run.market.scope_for(venue), "book_venue": venue,
                      "market_depth_multiple": run.market.market_depth_multiple}
        if m["depth"]["scope"] == "venue" and is_whole_market(venue):
            m["depth"]["scope_note"] = (f"one venue's depth on books standing for {venue} "
                                        "(depth_scope = 'venue' set explicitly)")
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
    fund = run.insurance_fund
    return {
        "books": books,
        "seeds": seeds_text(data.proposal),
        "trigger": (trig, build.TRIGGER_TEXT[trig]),
        "fill": (fill, build.FILL_TEXT[fill]),
        "market": build.market_text(m),
        "oracle_keepers": build.oracle_keeper_text(manifest_like),
        "insurance_fund": (f"a real fund, target {fund.initial_balance_from}"
                           if fund.initial_balance_from else build.usd(fund.initial_balance_usd)),
        "preset": {"name": preset.name, "family": preset.family,
                   "description": preset.description, "source": preset.source, "what": None},
        "stress": stress,
        "not_modelled": not_modelled,
        "parameters": parameter_rows(data),
        "book_intro": None,  # the template's own text (a portfolio or options market: its own)
        "losses": None,
        "ensemble_inputs": ensemble_inputs(data.manifest),
    }


def interval_trust(data: GovernanceData) -> list[str]:
    """Return sentences on how far the ensemble's intervals held on past events.

    One per calibrated book file with a recorded check
    (:func:`backtest.sweep.coverage.coverage_sentence`); empty without an ensemble.
    """
    from backtest.sweep.coverage import coverage_sentence

    if not data.manifest.get("ensemble"):
        return []
    files = dict.fromkeys(getattr(ev, "book_params", None) for ev in data.proposal.events)
    return [s for s in (coverage_sentence(f) for f in files) if s]


def ensemble_inputs(manifest: dict) -> list[tuple[str, str, str, str]]:
    """Return what each ensemble member draws: ``(input, range, source, events)`` rows.

    From ``sweep.json`` ``ensemble.events`` (:func:`backtest.sweep.ensemble.input_table`): an
    input drawn the same way for every event is one row whose events read ``every event``;
    otherwise one row per distinct draw, naming its events. Empty without an ensemble.
    """
    tables = (manifest.get("ensemble") or {}).get("events") or {}
    rows: dict[tuple[str, str, str], list[str]] = {}
    for event, table in tables.items():
        for name, d in table.items():
            rows.setdefault((name, d.get("range", "?"), d.get("source", "?")), []).append(event)
    return [(name, rng, src, "every event" if len(evs) == len(tables) else ", ".join(evs))
            for (name, rng, src), evs in sorted(rows.items())]


def parameter_rows(data: GovernanceData) -> list[tuple[str, list[str]]]:
    """Return ``(field, [value per current / proposed set])`` for every field any set changes.

    The frontier's fields are included; values are the policy as simulated (the preset's, or
    a portfolio or options market's parameters in force, where a set does not change a field).
    """
    named = data.named()
    fields: list[str] = []
    for s in data.sets:
        for k in s.params:
            if k not in fields:
                fields.append(k)
    flat = data.defaults or build._flatten(load_policy(data.proposal.protocol).model_dump(
        mode="json"))
    rows = []
    for k in fields:
        vals = []
        for s in named:
            v = s.params.get(k, flat.get(k))
            vals.append(f"{v:g}" if isinstance(v, float) else str(v))
        rows.append((k, vals))
    return rows


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
        reality=data.reality, reality_coverage=interval_trust(data),
        conditioning=data.conditioning,
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
                        param_sets={policy_name(proposal): [ps for _, ps in roles]},
                        command=command)
    with Catalog(runs, sweeps=[outcome.sweep_dir]) as catalog:
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
