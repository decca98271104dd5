"""``liqbt validate RUN``: the run's figures against what really happened, with the error.

Given an ensemble's sweep directory (``liqbt run CONFIG`` with ``[ensemble]``), it prints each
figure's p5 / p50 / p95 across the members and whether the real figure lies between p5 and p95.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def validate(
    run: Annotated[str, typer.Argument(
        help="Run id, unique prefix, 'latest' or run directory; or an ensemble's sweep "
             "directory (runs/sweeps/NAME).")],
    runs: Annotated[Path | None, typer.Option(help="Runs directory (default $LIQBT_RUNS).")] = None,
    targets: Annotated[Path | None, typer.Option(
        help="Directory of target files (default $LIQBT_VALIDATION, else data/validation).")
    ] = None,
    events: Annotated[Path | None, typer.Option(
        help="Event catalog file (default $LIQBT_EVENTS, else data/events.toml).")] = None,
) -> None:
    """Hold a run against what really happened: real, simulated, ratio.

    Prints every published figure RUN is held against, per policy.

    A target is shown when it is about the run's event and asset, a product the book holds,
    and the venue or protocol the book stands for (its metadata 'venue'; without it every
    venue's and the market's figures are shown). Exits 0 whatever the ratios.
    """
    from backtest import paths
    from backtest.calibration.compare import RunFacts, compare
    from backtest.calibration.sources import RunTables
    from backtest.errors import CatalogError
    from backtest.results.catalog import Catalog, find_run
    from backtest.targets import load_targets

    root = paths.runs_dir(runs)
    if not root.is_dir() and not Path(run).is_dir():
        raise CatalogError(f"no runs directory at {root}: run `liqbt run CONFIG` first, "
                           "or pass --runs")
    pool = load_targets(targets, events)
    if (Path(run) / "sweep.json").is_file():
        typer.echo(ensemble_text(Path(run), runs, pool))
        return
    entry = find_run(run, runs)
    run_id = entry.run_id
    with Catalog.of_run(entry, runs) as catalog:  # this run only, however many are kept
        facts = RunFacts.from_manifest(catalog.manifest(run_id))
        comparison = compare(facts, RunTables(catalog, run_id, facts), targets=pool)
    typer.echo(render_text(run_id, comparison))


def render_text(run_id: str, comparison) -> str:
    """Return the comparison as plain text: a header, caveats, then one block per target.

    Parameters
    ----------
    run_id : str
    comparison : backtest.calibration.compare.Comparison

    Returns
    -------
    str
    """
    from backtest.calibration.compare import table_rows
    from backtest.calibration.reality_check import held_out_summary
    from backtest.sweep.coverage import add_point_error

    f = comparison.facts
    window = f"{f.start:%Y-%m-%d %H:%M} \u2013 {f.end:%Y-%m-%d %H:%M} UTC"
    lines = [f"Run {run_id}: event {f.event or '(none)'}, {f.asset or '?'} "
             f"{'/'.join(f.products) or '?'}, venue {f.venue or '(not named by the book)'}, "
             f"window {window}"]
    lines.append("Against what happened: " + comparison.book_kind)
    lines += [f"note: {n}" for n in comparison.notes]
    if comparison.sentence:
        lines.append(comparison.sentence)
        return "\n".join(lines)
    rows = table_rows(comparison)
    said = add_point_error(rows, comparison, f.calibration)
    if said:
        lines.append(f"note: {said}")
    width = max(len(r["policy"]) for r in rows)
    current = None
    for r in rows:
        if r["target"] != current:
            current = r["target"]
            lines += ["", f"{r['measure']} [{r['target']}] ({r['venue']}, {r['asset']})",
                      f"  real {r['real']}  window {r['window']}  quality {r['quality']}  "
                      f"{r['fit']}",
                      f"  source {r['source']}"]
            if r["simulated_window"] not in ("\u2013", r["window"]):
                lines.append(f"  simulated window {r['simulated_window']}")
        inside = {"yes": "inside the range", "no": "outside the range"}.get(r["inside"], "")
        note = f"  ({r['note']})" if r["note"] else ""
        lines.append(f"  {r['policy']:<{width}}  simulated {r['simulated']:>10}  "
                     f"sim/real {r['ratio']:>8}  {inside}{note}".rstrip())
        if "band" in r:
            lines.append(_band_line(r, width))
    summary = held_out_summary(comparison)
    if summary:
        lines += ["", "Held out, by policy (outcomes, not counts):"]
        lines += [f"  {line}" for line in summary]
    return "\n".join(lines)


def _band_line(row: dict, width: int) -> str:
    """Return the "with the model's error" line of a display row that has a ``band``."""
    inside = {"yes": "real inside", "no": "real outside"}.get(row["band_meets"], "")
    return f"  {'':<{width}}  with the model's error: {row['band']}  {inside}".rstrip()


QUANTILES = (0.05, 0.5, 0.95)
"""The members' quantiles shown for an ensemble (those of ``sweep_intervals``)."""


def ensemble_text(sweep_dir: Path, runs: Path | None, pool: list) -> str:
    """Return an ensemble's figures against what happened, as plain text.

    For every target matching an event of the sweep, per policy (per parameter set for a
    proposal's sweep): the real range, the simulated p5 / p50 / p95 across the members,
    p50 / real, and whether the real range meets ``[p5, p95]``. An ensemble conditioned on
    targets (``[ensemble] condition_on``) then shows the same over the members whose figure
    of every such target lies within its real range
    (:func:`backtest.calibration.conditioning.conditioned_members`).

    Raises
    ------
    CatalogError
        If the sweep is not in the catalog of ``runs``.
    ConfigError
        If a conditioning target matches no event of the sweep.
    """
    import json

    from backtest.calibration.compare import compare
    from backtest.calibration.conditioning import conditioned_members, kept_draws, kept_source
    from backtest.calibration.sweep_sources import SweepTables, sweep_event_facts, sweep_labels
    from backtest.report.proposal import CURRENT
    from backtest.results.catalog import Catalog
    from backtest.sweep.coverage import coverage_sentence, discrepancy

    manifest = json.loads((sweep_dir / "sweep.json").read_text())
    spec = (manifest.get("config", {}).get("resolved", {}).get("ensemble") or {})
    cond_ids = list(spec.get("condition_on") or [])
    lines: list[str] = []
    with Catalog(runs, sweeps=[sweep_dir]) as catalog:
        sid = catalog.sweep_id(sweep_dir)
        by, labels = sweep_labels(catalog, sid)
        events = []
        for key in dict.fromkeys(e["event"] for e in manifest["events"]):
            infos = [e for e in manifest["events"] if e["event"] == key]
            facts = sweep_event_facts(catalog, sid, infos, infos[0].get("event_key"), key,
                                      manifest)
            events.append((key, facts, SweepTables.from_facts(catalog, sid, key, labels, facts,
                                                              by=by)))
        kept = decides = None
        if cond_ids:
            # a proposal's cells are told apart by parameter set: the current set decides,
            # so that every set is shown over the same members
            decides = spec.get("condition_policy") if by == "policy" else CURRENT
            seeds = sorted({int(e["seed"]) for e in manifest["events"]})
            kept, how = conditioned_members(events, pool, cond_ids, seeds, decides)
        lines_said: set[str] = set()
        book_params = {e.get("key") or e.get("event"): e.get("book_params")
                       for e in manifest.get("config", {}).get("resolved", {}).get("events", [])}
        for key, facts, source in events:
            infos = [e for e in manifest["events"] if e["event"] == key]
            runs_q = [compare(facts, source.at(q), targets=pool) for q in QUANTILES]
            lines += [f"Ensemble {sid}, event {key}: {len(infos)} members, p5 / p50 / p95 "
                      "across them", "Against what happened: " + runs_q[0].book_kind,
                      "note: figures the members' cells do not keep (the book's state at the "
                      "window start) are left out"]
            trust = coverage_sentence(book_params.get(key))
            sigma = discrepancy(book_params.get(key))
            if trust and trust not in lines_said:  # once per calibrated file
                lines_said.add(trust)
                lines.append(f"note: {trust}")
            lines += [f"note: {n}" for n in runs_q[0].notes]
            if runs_q[0].sentence:
                lines.append(runs_q[0].sentence)
                continue
            lines += _interval_lines(runs_q, (), sigma)
            if kept is None:
                continue
            lines += ["", f"Conditioned on {', '.join(cond_ids)}: {how}"]
            member = {int(e["seed"]): int(e["member"]) for e in infos}
            shown = {"": kept[labels[0]]} if decides is not None else kept
            for label, chosen in shown.items():
                listed = ", ".join(str(k) for k in sorted(member[x] for x in chosen))
                lines.append(f"members kept{' for ' + label if label else ''} "
                             f"(sweep_cells.member): {listed or 'none'}")
            if not any(kept.values()):
                lines.append("no member is consistent with the conditioning figures: the "
                             "unknowns' ranges do not reach what happened")
                continue
            ranges = manifest.get("ensemble", {}).get("events", {}).get(key, {})
            lines += kept_draws(infos, kept[decides] if decides else set().union(
                *kept.values()), ranges)
            runs_k = [compare(facts, kept_source(source, kept, q), targets=pool)
                      for q in QUANTILES]
            lines += _interval_lines(runs_k, cond_ids, sigma)
            lines += _kept_window_lines([kept_source(source, kept, q) for q in QUANTILES],
                                        facts)
    return "\n".join(lines).rstrip()


def _kept_window_lines(sources: list, facts) -> list[str]:
    """Return the kept members' liquidations and bad debt over the whole window (p5/p50/p95).

    Shown whether or not a target holds them, so that a figure published only for a wider
    scope (every asset of a protocol, say) can be read against the kept members by hand.
    """
    from backtest.calibration.formatting import format_figure

    product = "loan" if facts.products == ("loan",) else "perp"
    figs = [s.figures(facts.start, facts.end, True, product) for s in sources]
    lines = ["The kept members over the whole window (p5 / p50 / p95), whatever is published:"]
    for label in sources[0].policies:
        parts = [f"{name} " + " / ".join(format_figure(f[label].get(key), "USD") for f in figs)
                 for name, key in (("liquidated", "liquidated_notional_usd"),
                                   ("bad debt", "bad_debt_usd"))]
        lines.append(f"  {label}: {'; '.join(parts)}")
    return lines + [""]


def _interval_lines(runs_q: list, conditioned: tuple | list,
                    sigma: float | None = None) -> list[str]:
    """Return the p5 / p50 / p95 lines of an ensemble comparison, target by target.

    Targets in ``conditioned`` are marked as such (the members were chosen on them). With
    ``sigma`` (the model's recorded log error, :func:`backtest.sweep.coverage.
    discrepancy`), a liquidation figure also gets the interval widened by it.
    """
    from backtest.calibration.compare import table_rows
    from backtest.calibration.formatting import format_figure, format_ratio, meets_interval
    from backtest.calibration.reality_check import held_out_interval_summary
    from backtest.sweep.coverage import add_model_error

    lines: list[str] = []
    display = table_rows(runs_q[1])
    if sigma is not None:
        add_model_error(display, runs_q[1], [runs_q[0], runs_q[2]], sigma)
    width = max(len(r["policy"]) for r in display)
    current = None
    for r5, r50, r95, d in zip(*(c.rows for c in runs_q), display, strict=True):
        if r50.simulated is None:
            continue
        if d["target"] != current:
            current = d["target"]
            fit = ("conditioned on (in fit)" if r50.target.id in conditioned else d["fit"])
            lines += ["", f"{d['measure']} [{d['target']}] ({d['venue']}, {d['asset']})",
                      f"  real {d['real']}  window {d['window']}  {fit}"]
        unit = r50.target.unit
        meets = {True: "real inside p5-p95", False: "real outside p5-p95", None: ""}[
            meets_interval(r50.target, r5.simulated, r95.simulated)]
        sims = " / ".join(format_figure(r.simulated, unit) for r in (r5, r50, r95))
        lines.append(f"  {d['policy']:<{width}}  {sims}  p50/real "
                     f"{format_ratio(r50.ratio)}  {meets}".rstrip())
        if "band" in d:
            lines.append(_band_line(d, width))
    summary = held_out_interval_summary(runs_q, conditioned)
    if summary:
        lines += ["", "Held out, by policy (outcomes, not counts):"]
        lines += [f"  {line}" for line in summary]
    lines.append("")
    return lines


def register(root: typer.Typer) -> None:
    """Attach ``validate`` to the root CLI."""
    root.command("validate")(validate)
