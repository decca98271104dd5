"""``liqbt report RUN``: write the self-contained HTML report of a run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def report(
    run: Annotated[str, typer.Argument(help="Run id, unique prefix, 'latest' or run directory.")],
    runs: Annotated[Path | None, typer.Option(help="Runs directory (default $LIQBT_RUNS).")] = None,
    output: Annotated[Path | None, typer.Option(
        "-o", "--output", help="HTML file to write (default $LIQBT_REPORTS/<run_id>.html).")
    ] = None,
) -> None:
    """Write the HTML report of RUN (one file, opens offline) and print its path."""
    from backtest import paths
    from backtest.errors import CatalogError
    from backtest.report import write_report
    from backtest.results.catalog import Catalog

    root = paths.runs_dir(runs)
    if not root.is_dir() and not Path(run).is_dir():
        raise CatalogError(f"no runs directory at {root}: run `liqbt run CONFIG` first, "
                           "or pass --runs")
    with Catalog(runs) as catalog:
        out = write_report(catalog, catalog.resolve(run), output)
    typer.echo(str(out))


def register(root: typer.Typer) -> None:
    """Attach ``report`` to the root CLI."""
    root.command("report")(report)
