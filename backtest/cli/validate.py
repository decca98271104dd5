"""``liqbt validate RUN``: the run's figures against what really happened, with the error."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def validate(
    run: Annotated[str, typer.Argument(
        help="Run id, unique prefix, 'latest' or run directory.")],
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
    from backtest.calibration.targets import load_targets
    from backtest.errors import CatalogError
    from backtest.results.catalog import Catalog

    root = paths.runs_dir(runs)
    if not root.is_dir() and not Path(run).is_dir():
        raise CatalogError(f"no runs directory at {root}: run `liqbt run CONFIG` first, "
                           "or pass --runs")
    pool = load_targets(targets, events)
    with Catalog(runs) as catalog:
        run_id = catalog.resolve(run)
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
    return "\n".join(lines)


def register(root: typer.Typer) -> None:
    """Attach ``validate`` to the root CLI."""
    root.command("validate")(validate)
