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
        help="Generator parameters: a calibrated file from 'liqbt book calibrate' or a TOML "
             "of generator fields (see docs/books.md).")] = None,
    size_usd: Annotated[float | None, typer.Option(
        help="Total notional (perps) or debt (loans) at the window start, USD. Default: the "
             "venue's figure in data/validation when the parameters name one.", min=0.0)] = None,
    store: Annotated[Path | None, typer.Option(help="Tape store (default $LIQBT_TAPES).")] = None,
    events: Annotated[Path | None, typer.Option(help="Event catalog file.")] = None,
) -> None:
    """Generate a synthetic book of perp accounts and loans open at the event's start."""
    from backtest.books.event import book_for_event
    from backtest.calibration.fitted import calibrated_params
    from backtest.events import get_event

    asset = (symbol or get_event(event, events).symbols[0]).split("/")[0]
    book_params, meta = calibrated_params(params, event, asset, size_usd)
    book = book_for_event(accounts, event, seed, symbol, venue, market, interval,
                          book_params, store, events)
    book.meta.update(meta)
    write_book(book, output)
    counts = dict(book.frame["product"].value_counts().iter_rows())
    Console().print(
        f"wrote {output}: {len(book):,} accounts ({counts.get('perp', 0):,} perps, "
        f"{counts.get('loan', 0):,} loans) for {book.meta['symbol']}, tape {book.meta['tape']}, "
        f"event {event}, seed {seed}"
        + (f"; sized to {book_params.size_usd / 1e6:,.1f}M USD"
           + (f" ({book_params.represents})" if book_params.represents else "")
           if book_params.size_usd else "; unsized (no --size-usd, no venue)")
        + (f"; calibrated: {meta['calibration']}" if "calibration" in meta else "")
    )
    if "unsized" in meta:
        Console(stderr=True).print(f"warning: {meta['unsized']}; the book is unsized, so its "
                                   "USD results scale with --accounts")


@app.command("calibrate")
def calibrate(
    config: Annotated[Path, typer.Argument(help="Calibration file (configs/calibration/).")],
    output: Annotated[Path, typer.Option("-o", "--output",
                                         help="Calibrated parameter file to write.")],
    max_evaluations: Annotated[int | None, typer.Option(
        help="Objective evaluations per fit (default: the file's).", min=1)] = None,
    leave_one_out: Annotated[bool, typer.Option(
        help="Refit without each event and report its error.")] = True,
    store: Annotated[Path | None, typer.Option(help="Tape store (default $LIQBT_TAPES).")] = None,
) -> None:
    """Fit book and response parameters to real crashes; print in-sample and held-out errors."""
    from backtest.calibration.run import calibrate_file

    calibrate_file(config, output, max_evaluations, leave_one_out, store, Console())


def register(root: typer.Typer) -> None:
    """Attach the ``book`` sub-commands to the root CLI."""
    root.add_typer(app, name="book")
