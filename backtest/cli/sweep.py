"""``liqbt sweep SWEEP.toml``: run (or resume) a sweep of events x policies x grids x stress."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from backtest.cli._console import console as _console


def sweep(
    config: Annotated[Path, typer.Argument(metavar="SWEEP", help="Sweep config (TOML).")],
    scheduler: Annotated[str | None, typer.Option(
        metavar="ADDRESS",
        help="Dask scheduler address, e.g. tcp://10.0.0.5:8786 (needs liqbt[dask]); default "
             "the config's, else local processes.")] = None,
    workers: Annotated[int | None, typer.Option(
        min=1, metavar="N",
        help="Local worker processes (default the config's, else the CPU count).")
    ] = None,
    output: Annotated[Path | None, typer.Option(
        "-o", "--output", metavar="DIR",
        help="Sweep directory (default the config's, else $LIQBT_RUNS/sweeps/<name>).")
    ] = None,
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
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Run every unfinished cell of CONFIG; finished cells (from an interrupted run) are kept.

    Prints cells done / total, the rate and the ETA while it runs, and the sweep directory,
    wall time and cells per minute at the end. Results: liqbt query "SELECT ... FROM
    sweep_cells" (with an [ensemble]: "SELECT ... FROM sweep_intervals"). With kind =
    "portfolio" or "options" in CONFIG every cell runs the multi-asset lending + perp book or
    the options book instead of a single-asset policy (README, "Sweeps").
    """
    from backtest.provenance import command_line
    from backtest.sweep import run_sweep

    command = command_line()
    out = run_sweep(config, runs=runs, store=store, strategies=strategies, events=events,
                    scheduler=scheduler, workers=workers, output=output,
                    show_progress=not quiet, command=command)
    _console().print(
        f"sweep {out.sweep_id}: {out.total} cells ({out.skipped} finished before, "
        f"{out.computed} run now on {out.backend}) in {out.wall_seconds:.1f} s wall; "
        f"{out.cells_per_minute:.1f} cells/min -> {out.sweep_dir}", markup=False)
    if out.intervals is not None:
        _console().print(
            f"ensemble of {out.members} members: p5 / p50 / p95 of every metric in "
            f"{out.intervals} and the view sweep_intervals", markup=False)



def register(root: typer.Typer) -> None:
    """Attach ``sweep`` to the root CLI."""
    root.command("sweep")(sweep)
