"""``liqbt query SQL``: SQL over every registered run (DuckDB)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def query(
    sql: Annotated[str, typer.Argument(help="SQL; tables: runs, prices, steps, accounts, "
                                             "liquidations, policies.")],
    runs: Annotated[Path | None, typer.Option(help="Runs directory (default $LIQBT_RUNS).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table | csv | json")] = "table",
    limit: Annotated[int, typer.Option(help="Rows shown in table format.")] = 50,
) -> None:
    """Answer SQL across runs, e.g. ``SELECT policy, sum(bad_debt_usd) FROM steps GROUP BY 1``."""
    import polars as pl

    from backtest.results.catalog import Catalog

    with Catalog(runs) as catalog:
        frame = catalog.query(sql)
    if fmt == "csv":
        typer.echo(frame.write_csv(), nl=False)
    elif fmt == "json":
        typer.echo(frame.write_json())
    else:
        with pl.Config(tbl_rows=limit, tbl_cols=-1, fmt_str_lengths=60, tbl_width_chars=200):
            typer.echo(frame)


def register(root: typer.Typer) -> None:
    """Attach ``query`` to the root CLI."""
    root.command("query")(query)
