"""``liqbt run CONFIG``: simulate the policies of a run config and register the results."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from backtest.cli._console import console as _console


def run(
    config: Annotated[Path, typer.Argument(metavar="CONFIG", help="Run config (TOML).")],
    runs: Annotated[Path | None, typer.Option(
        metavar="DIR", help="Runs directory (default $LIQBT_RUNS or runs).")] = None,
    store: Annotated[Path | None, typer.Option(
        metavar="DIR", help="Tape store (default $LIQBT_TAPES or data/tapes).")] = None,
    strategies: Annotated[Path | None, typer.Option(
        metavar="DIR", help="Policy directory (default $LIQBT_STRATEGIES or strategies).")
    ] = None,
    events: Annotated[Path | None, typer.Option(
        metavar="FILE", help="Event catalog (default $LIQBT_EVENTS or data/events.toml).")
    ] = None,
    report: Annotated[bool, typer.Option(help="Also write the HTML report.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    overrides: Annotated[list[str] | None, typer.Option(
        "--set", metavar="KEY=VALUE",
        help="Replace a config field: KEY=VALUE, dotted keys, TOML values "
             "(e.g. --set event=luna-2022 --set tape.interval=5m); repeatable.")] = None,
) -> None:
    """Simulate every policy of CONFIG on its window and book; print the summary."""
    from backtest.engine.run import execute
    from backtest.results.catalog import Catalog

    console = _console(stderr=True)
    run_id, run_dir = execute(config, runs, store, strategies, events, show_progress=not quiet,
                              overrides=overrides)
    with Catalog(runs) as catalog:
        manifest = catalog.manifest(run_id)
        print_summary(_console(), catalog.summary(run_id), manifest)
        if report:
            from backtest.report import write_report

            out = write_report(catalog, run_id)
            _console().print(f"report: {out}", markup=False)
    for gap in manifest["window"]["gaps"]:
        console.print(f"[yellow]warning:[/] tape gap in the window: {gap['start']} .. "
                      f"{gap['end']} ({gap['missing_steps']} candles missing, not filled)")
    _console().print(f"run {run_id} -> {run_dir}", markup=False)


#: Policies per summary table printed on the terminal.
POLICIES_PER_TABLE = 5


def print_summary(console, summary, manifest: dict) -> None:
    """Print the per-policy summary table and the run's throughput."""
    from rich.table import Table

    from backtest.results.metrics import METRICS

    title = (f"{manifest['name']}: {manifest['symbol']} {manifest['window']['start']} .. "
             f"{manifest['window']['end']}")
    policies = list(summary["policy"])
    for first in range(0, len(policies), POLICIES_PER_TABLE):  # a readable width per table
        table = Table(title=title if first == 0 else None)
        table.add_column("metric")
        group = range(first, min(first + POLICIES_PER_TABLE, len(policies)))
        for k in group:
            table.add_column(policies[k], justify="right")
        for m in METRICS:
            values = summary[m.name]
            table.add_row(m.label, *(_fmt(values[k], m.unit) for k in group))
        console.print(table)
    t = manifest["timings"]
    rates = ", ".join(f"{k} {v:.3g}" for k, v in t["account_steps_per_second"].items())
    console.print(f"accounts x steps per second: {rates}; JIT warm-up {t['jit_warmup_seconds']:.2f}"
                  f" s; total {t['total_seconds']:.1f} s; peak RSS "
                  f"{manifest['runtime']['peak_rss_mb']:.0f} MB; {t['threads']} threads")


def _fmt(value, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "fraction":
        return f"{100 * value:.2f}%"
    if unit == "count":
        return f"{int(value):,}"
    return f"${value:,.0f}"


def register(root: typer.Typer) -> None:
    """Attach ``run`` to the root CLI."""
    root.command("run")(run)
