"""``liqbt run CONFIG``: simulate the policies of a run config and register the results."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table


def run(
    config: Annotated[Path, typer.Argument(help="Run config (TOML).")],
    runs: Annotated[Path | None, typer.Option(help="Runs directory (default $LIQBT_RUNS).")] = None,
    store: Annotated[Path | None, typer.Option(help="Tape store (default $LIQBT_TAPES).")] = None,
    strategies: Annotated[Path | None, typer.Option(help="Policy directory.")] = None,
    events: Annotated[Path | None, typer.Option(help="Event catalog file.")] = None,
    report: Annotated[bool, typer.Option(help="Also write the HTML report.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    overrides: Annotated[list[str] | None, typer.Option(
        "--set", help="Replace a config field: KEY=VALUE, dotted keys, TOML values "
                      "(e.g. --set event=luna-2022 --set tape.interval=5m); repeatable.")] = None,
) -> None:
    """Simulate every policy of CONFIG on its window and book; print the summary."""
    from backtest.engine.run import execute
    from backtest.results.catalog import Catalog

    console = Console(stderr=True)
    run_id, run_dir = execute(config, runs, store, strategies, events, show_progress=not quiet,
                              overrides=overrides)
    with Catalog(runs) as catalog:
        manifest = catalog.manifest(run_id)
        print_summary(Console(), catalog.summary(run_id), manifest)
        if report:
            from backtest.report import write_report

            out = write_report(catalog, run_id)
            Console().print(f"report: {out}")
    for gap in manifest["window"]["gaps"]:
        console.print(f"[yellow]warning:[/] tape gap in the window: {gap['start']} .. "
                      f"{gap['end']} ({gap['missing_steps']} candles missing, not filled)")
    Console().print(f"run {run_id} -> {run_dir}")


#: Policies per summary table printed on the terminal.
POLICIES_PER_TABLE = 5


def print_summary(console: Console, summary, manifest: dict) -> None:
    """Print the per-policy summary table and the run's throughput."""
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
