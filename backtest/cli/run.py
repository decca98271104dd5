"""``liqbt run CONFIG``: simulate the policies of a run config and register the results.

A config with an ``[ensemble]`` runs through the sweep machinery instead
(:func:`backtest.sweep.from_run.run_ensemble`) and prints p5 / p50 / p95 across members.
"""

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
    workers: Annotated[int | None, typer.Option(
        min=1, metavar="N",
        help="[ensemble] only: local worker processes (default the CPU count).")] = None,
    scheduler: Annotated[str | None, typer.Option(
        metavar="ADDRESS",
        help="[ensemble] only: Dask scheduler address, e.g. tcp://10.0.0.5:8786 (needs "
             "liqbt[dask]).")] = None,
) -> None:
    """Simulate every policy of CONFIG on its window and book; print the summary.

    With an [ensemble] section, every member redraws the book and the uncertain inputs and
    runs as a cell of a sweep (resumable; $LIQBT_RUNS/sweeps/<name>); prints p5 / p50 / p95
    across members. Results: liqbt query "SELECT ... FROM sweep_intervals".
    """
    from backtest.engine.config import read_run_config
    from backtest.errors import ConfigError

    _, ensemble = read_run_config(config, overrides)
    if ensemble is not None:
        _run_ensemble(config, overrides, runs, store, strategies, events, scheduler, workers,
                      report, quiet)
        return
    if workers is not None or scheduler is not None:
        raise ConfigError("--workers and --scheduler run the members of an [ensemble]; this "
                          "config has none", config)
    from backtest.engine.run import execute
    from backtest.results.catalog import Catalog

    console = _console(stderr=True)
    run_id, run_dir = execute(config, runs, store, strategies, events, show_progress=not quiet,
                              overrides=overrides)
    with Catalog(runs, run_ids=[run_id]) as catalog:  # this run only, however many are kept
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


def _run_ensemble(config: Path, overrides, runs, store, strategies, events, scheduler,
                  workers, report: bool, quiet: bool) -> None:
    """Run CONFIG's ensemble as a sweep; print the sweep line and the interval table."""
    import polars as pl

    from backtest.provenance import command_line
    from backtest.sweep.from_run import run_ensemble

    out = run_ensemble(config, overrides, runs, store, strategies, events, scheduler, workers,
                       show_progress=not quiet, command=command_line())
    console = _console()
    console.print(
        f"ensemble {out.sweep_id}: {out.members} members, {out.total} cells ({out.skipped} "
        f"finished before, {out.computed} run now on {out.backend}) in "
        f"{out.wall_seconds:.1f} s wall -> {out.sweep_dir}", markup=False)
    print_intervals(console, pl.read_parquet(out.intervals), out.sweep_id)
    console.print(f"p5 / p50 / p95 of every metric: {out.intervals} and liqbt query "
                  f"\"SELECT * FROM sweep_intervals WHERE sweep_id = '{out.sweep_id}'\"",
                  markup=False)
    if report:
        _console(stderr=True).print(
            "--report: there is no HTML report of an ensemble run yet; the intervals are in "
            "the file and view above (a governance proposal with an [ensemble] gets one: "
            "liqbt report --governance PROPOSAL)", markup=False)


#: Measures of the interval table printed after an ensemble (all are in sweep_intervals).
KEY_METRICS = ("accounts_liquidated", "liquidated_notional_usd", "bad_debt_usd",
               "total_bad_debt_usd", "insurance_draw_usd", "socialised_loss_usd",
               "impact_cost_usd", "user_loss_to_liquidation_usd", "user_equity_retained")


def print_intervals(console, intervals, title: str) -> None:
    """Print p5 / p50 / p95 across members of :data:`KEY_METRICS`, one column per policy.

    Parameters
    ----------
    console : rich.console.Console
    intervals : polars.DataFrame
        ``intervals.parquet`` of the ensemble (:func:`backtest.results.intervals.sweep_intervals`).
    title : str
    """
    from rich.table import Table

    from backtest.results.metrics import METRICS

    units = {m.name: (m.label, m.unit) for m in METRICS}
    cells = {(r["policy"], r["metric"]): r for r in intervals.iter_rows(named=True)}
    policies = list(dict.fromkeys(intervals["policy"]))
    for first in range(0, len(policies), POLICIES_PER_TABLE):
        group = policies[first:first + POLICIES_PER_TABLE]
        table = Table(title=f"{title}: p5 / p50 / p95 across members" if first == 0 else None)
        table.add_column("metric")
        for p in group:
            table.add_column(p, justify="right")
        for name in KEY_METRICS:
            label, unit = units[name]
            row = [cells.get((p, name)) for p in group]
            table.add_row(label, *("-" if r is None else " / ".join(
                _fmt(r[q], unit) for q in ("p5", "p50", "p95")) for r in row))
        console.print(table)


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
