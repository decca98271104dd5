"""``liqbt book generate``: draw a synthetic book for an event (or a tape window)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from backtest import paths
from backtest.books import BookParams, generate_book, write_book
from backtest.errors import ConfigError
from backtest.events import get_event
from backtest.tapes import TapeStore

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
    from pydantic import ValidationError

    from backtest.validation import describe, read_toml

    ev = get_event(event, events)
    sym = symbol or ev.symbols[0]
    gen_params = BookParams()
    if params is not None:
        try:
            gen_params = BookParams.model_validate(read_toml(params))
        except ValidationError as exc:
            raise ConfigError(describe(exc), params) from None
    lookback_start = ev.start.timestamp() - gen_params.lookback_days * 86400
    from datetime import UTC, datetime

    tape = TapeStore(paths.tape_store(store)).resolve(
        sym, datetime.fromtimestamp(lookback_start, UTC), ev.end, venue, market, interval)
    a = tape.arrays()
    book = generate_book(
        accounts, a["timestamp"], a["close"], a["low"], a["high"], ev.start, seed, gen_params,
        meta={"symbol": tape.meta.symbol, "event": ev.key, "tape": str(tape.path)},
    )
    write_book(book, output)
    counts = dict(book.frame["product"].value_counts().iter_rows())
    Console().print(
        f"wrote {output}: {len(book):,} accounts ({counts.get('perp', 0):,} perps, "
        f"{counts.get('loan', 0):,} loans) for {tape.meta.symbol} {tape.meta.interval} "
        f"{tape.meta.venue}/{tape.meta.market}, event {ev.key}, seed {seed}"
    )


def register(root: typer.Typer) -> None:
    """Attach the ``book`` sub-commands to the root CLI."""
    root.add_typer(app, name="book")
