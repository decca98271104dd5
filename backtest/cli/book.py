"""``liqbt book generate``: draw a synthetic book for an event (or a tape window)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from backtest.books import write_book

app = typer.Typer(help="Generate and inspect books (account populations).", no_args_is_help=True)


@app.command("generate")
def generate(
    accounts: Annotated[int, typer.Option(help="Number of accounts.", min=1)],
    output: Annotated[Path, typer.Option("-o", "--output", help="Book Parquet file to write.")],
    event: Annotated[str, typer.Option(help="Event key in the catalog (data/events.toml).")],
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    symbol: Annotated[str | None, typer.Option(help="Asset; default the event's first.")] = None,
    venue: Annotated[str | None, typer.Option(help="Tape venue filter.")] = None,
    market: Annotated[str | None, typer.Option(help="Tape market filter (spot|perp).")] = None,
    interval: Annotated[str | None, typer.Option(help="Tape interval filter, e.g. 1m.")] = None,
    params: Annotated[Path | None, typer.Option(
        help="TOML file overriding generator parameters (see docs/books.md).")] = None,
    store: Annotated[Path | None, typer.Option(help="Tape store (default $LIQBT_TAPES).")] = None,
    events: Annotated[Path | None, typer.Option(help="Event catalog file.")] = None,
) -> None:
    """Generate a synthetic book of perp accounts and loans open at the event's start."""
    from backtest.books.event import book_for_event, load_book_params

    book = book_for_event(accounts, event, seed, symbol, venue, market, interval,
                          load_book_params(params), store, events)
    write_book(book, output)
    counts = dict(book.frame["product"].value_counts().iter_rows())
    Console().print(
        f"wrote {output}: {len(book):,} accounts ({counts.get('perp', 0):,} perps, "
        f"{counts.get('loan', 0):,} loans) for {book.meta['symbol']}, tape {book.meta['tape']}, "
        f"event {event}, seed {seed}"
    )


def register(root: typer.Typer) -> None:
    """Attach the ``book`` sub-commands to the root CLI."""
    root.add_typer(app, name="book")
