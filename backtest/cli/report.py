"""``liqbt report RUN`` and ``liqbt report --governance PROPOSAL.toml``: self-contained HTML."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def report(
    run: Annotated[str | None, typer.Argument(
        metavar="RUN", help="Run id, unique prefix, 'latest' or run directory.")] = None,
    governance: Annotated[Path | None, typer.Option(
        metavar="PROPOSAL",
        help="Governance proposal (TOML): run it through the sweep machinery and write the "
             "report a DAO can vote on.")] = None,
    runs: Annotated[Path | None, typer.Option(
        metavar="DIR", help="Runs directory (default $LIQBT_RUNS or runs).")] = None,
    output: Annotated[Path | None, typer.Option(
        "-o", "--output", metavar="FILE",
        help="HTML file to write (default $LIQBT_REPORTS/<run_id>.html, or "
             "$LIQBT_REPORTS/governance-<proposal>.html).")] = None,
    store: Annotated[Path | None, typer.Option(
        metavar="DIR", help="Tape store (default $LIQBT_TAPES; --governance only).")] = None,
    strategies: Annotated[Path | None, typer.Option(
        metavar="DIR", help="Policy directory (--governance only).")] = None,
    events: Annotated[Path | None, typer.Option(
        metavar="FILE", help="Event catalog file (--governance only).")] = None,
    workers: Annotated[int | None, typer.Option(
        min=1, metavar="N", help="Local worker processes (--governance only).")] = None,
    scheduler: Annotated[str | None, typer.Option(
        metavar="ADDRESS", help="Dask scheduler address (--governance only).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Write the HTML report of RUN, or of a governance proposal; print its path.

    A portfolio run gets the portfolio report (as liqbt portfolio report RUN_DIR writes it);
    an options run gets the report of the portfolio run it belongs to.

    Either report is one file that opens offline (plotly.js embedded once).
    """
    from backtest import paths
    from backtest.errors import CatalogError, ConfigError
    from backtest.validation import check_output_dir, check_output_file

    if output is not None:  # before any work: a report that cannot be written is refused now
        check_output_file(output, "report file")
    else:
        check_output_dir(paths.reports_dir(), "reports directory")
    if governance is not None:
        if run is not None:
            raise ConfigError("give either a RUN or --governance PROPOSAL, not both")
        from backtest.provenance import command_line
        from backtest.report.governance import write_governance_report

        command = command_line()
        out, outcome = write_governance_report(
            governance, output, runs, store, strategies, events, workers, scheduler,
            show_progress=not quiet, command=command)
        typer.echo(f"{outcome.total} cells ({outcome.skipped} reused, {outcome.computed} run) "
                   f"in {outcome.wall_seconds:.1f} s; report {out.stat().st_size:,} bytes",
                   err=True)
        typer.echo(str(out))
        return
    if run is None:
        raise ConfigError("give a RUN (id, prefix, 'latest' or directory) or --governance "
                          "PROPOSAL")
    from backtest.report import write_report
    from backtest.results.catalog import Catalog, find_run
    from backtest.results.metrics import OPTIONS, PORTFOLIO

    root = paths.runs_dir(runs)
    if not root.is_dir() and not Path(run).is_dir():
        raise CatalogError(f"no runs directory at {root}: run `liqbt run CONFIG` first, "
                           "or pass --runs")
    entry = find_run(run, runs)
    if entry.kind == OPTIONS:  # an options study is reported in its portfolio run's report
        manifest = json.loads((entry.run_dir / "manifest.json").read_text(encoding="utf-8"))
        entry = find_run(manifest["portfolio_run_id"], runs)
    if entry.kind == PORTFOLIO:  # its own report (liqbt portfolio report)
        from backtest.report.portfolio import write_portfolio_report

        out = write_portfolio_report(entry.run_dir, output)
    else:  # in memory, read-only, this run only: never waits on a running run, nor reads others
        with Catalog.of_run(entry, runs) as catalog:
            out = write_report(catalog, entry.run_id, output)
    typer.echo(str(out))



def register(root: typer.Typer) -> None:
    """Attach ``report`` to the root CLI."""
    root.command("report")(report)
