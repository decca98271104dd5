"""``liqbt query SQL``: read-only SQL over every run and sweep (DuckDB, in memory)."""

from __future__ import annotations

import enum
import sys
from pathlib import Path
from typing import Annotated

import typer


class Format(enum.StrEnum):
    """Output formats of ``liqbt query``."""

    table = "table"
    csv = "csv"
    json = "json"
    parquet = "parquet"


def query(
    sql: Annotated[str, typer.Argument(
        help="One SELECT (SHOW, DESCRIBE, SUMMARIZE too). Tables: runs, prices, steps, "
             "accounts, liquidations, adl, policies, sweeps, sweep_cells, sweep_steps.")],
    runs: Annotated[Path | None, typer.Option(help="Runs directory (default $LIQBT_RUNS).")] = None,
    fmt: Annotated[Format, typer.Option(
        "--format", help="table (money as $1,234.00), csv, json (one object per row) or "
                         "parquet (needs --output or a redirected stdout).")] = Format.table,
    limit: Annotated[int, typer.Option(
        min=0, help="Rows shown in table format (0: all); other formats write every row.")] = 50,
    output: Annotated[Path | None, typer.Option(
        "-o", "--output", help="Write the result to this file instead of stdout.")] = None,
) -> None:
    """Answer read-only SQL across runs and sweeps (tables and views: see SQL).

    Example: ``SELECT run_id, policy, sum(bad_debt_usd) FROM steps GROUP BY ALL``. The query
    sees the run directories as they are when it starts: a run that finished before is always
    there; nothing is locked or written.
    """
    from backtest import paths
    from backtest.errors import CatalogError
    from backtest.results.catalog import Catalog
    from backtest.results.display import plain_table, rich_table, write_frame
    from backtest.validation import check_output_file

    fmt = Format(fmt)
    if output is not None:
        check_output_file(output, "query output")
    elif fmt is Format.parquet and sys.stdout.isatty():
        raise CatalogError("--format parquet writes binary data: give --output FILE or "
                           "redirect stdout to a file")
    root = paths.runs_dir(runs)
    if not root.is_dir():
        raise CatalogError(f"no runs directory at {root}: run `liqbt run CONFIG` first, or "
                           "pass --runs")
    with Catalog(runs) as catalog:
        for problem in catalog.problems:
            typer.echo(f"warning: left out: {problem}", err=True)
        frame = catalog.query(sql)
    if fmt is not Format.table:
        if output is not None:
            from backtest.atomic import atomic_path

            with atomic_path(output) as tmp:
                write_frame(frame, fmt.value, tmp)
        else:
            sys.stdout.flush()
            write_frame(frame, fmt.value, sys.stdout.buffer)
            sys.stdout.buffer.flush()
        return
    shown = frame if limit == 0 else frame.head(limit)
    if output is not None:
        from backtest.atomic import atomic_path

        with atomic_path(output) as tmp:
            tmp.write_text(plain_table(shown), encoding="utf-8")
    elif sys.stdout.isatty():
        from rich.console import Console

        Console().print(rich_table(shown))
    else:
        typer.echo(plain_table(shown), nl=False)
    if shown.height < frame.height:
        typer.echo(f"({frame.height:,} rows; {shown.height:,} shown: --limit N, 0 for all, or "
                   "--format csv)", err=True)


def register(root: typer.Typer) -> None:
    """Attach ``query`` to the root CLI."""
    root.command("query")(query)
