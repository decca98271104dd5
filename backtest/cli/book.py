"""``liqbt book generate`` and ``liqbt book inspect``: draw a synthetic book, or describe one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Generate and inspect books (account populations).", no_args_is_help=True)


@app.command("generate")
def generate(
    accounts: Annotated[int, typer.Option(metavar="N", help="Number of accounts.", min=1)],
    output: Annotated[Path, typer.Option("-o", "--output", metavar="FILE",
                                         help="Book Parquet file to write.")],
    event: Annotated[str, typer.Option(
        metavar="KEY", help="Event key in the catalog (see liqbt list events).")],
    seed: Annotated[int, typer.Option(metavar="N", help="Random seed.")] = 0,
    symbol: Annotated[str | None, typer.Option(
        metavar="BASE/QUOTE", help="Asset; default the event's first.")] = None,
    venue: Annotated[str | None, typer.Option(metavar="NAME", help="Tape venue filter.")] = None,
    market: Annotated[str | None, typer.Option(
        metavar="spot|perp", help="Tape market filter.")] = None,
    interval: Annotated[str | None, typer.Option(
        metavar="INTERVAL", help="Tape interval filter, e.g. 1m.")] = None,
    params: Annotated[Path | None, typer.Option(
        metavar="FILE", help="Generator parameters: a calibrated file from 'liqbt book "
                             "calibrate' or a TOML of generator fields (docs/books.md). "
                             "Default: $LIQBT_BOOK_PARAMS, else the calibrated perp book "
                             "configs/calibration/perps-fitted.toml.")
    ] = None,
    uncalibrated: Annotated[bool, typer.Option(
        "--uncalibrated", help="Draw with the generator's built-in parameters (perps and "
                               "loans, never fitted to a crash) instead of the calibrated "
                               "default.")] = False,
    size_usd: Annotated[float | None, typer.Option(
        metavar="USD", help="Total notional (perps) or debt (loans) at the window start. "
                            "Default: the venue's figure in data/validation when the "
                            "parameters name one.", min=0.0)] = None,
    store: Annotated[Path | None, typer.Option(
        metavar="DIR", help="Tape store (default $LIQBT_TAPES or data/tapes).")] = None,
    events: Annotated[Path | None, typer.Option(
        metavar="FILE", help="Event catalog (default $LIQBT_EVENTS or data/events.toml).")
    ] = None,
) -> None:
    """Draw a synthetic book for an event.

    The book holds the positions open at the event's start, priced from its tape. By default
    it is the calibrated perp book (docs/calibration.md), sized to the venue's open interest
    where data/validation has it; ``--uncalibrated`` draws the built-in perps-and-loans mix.
    """
    from backtest.books import write_book
    from backtest.books.event import book_for_event
    from backtest.calibration.fitted import calibrated_params
    from backtest.cli._console import console
    from backtest.events import get_event
    from backtest.paths import default_book_params

    if uncalibrated and params is not None:
        raise typer.BadParameter("give either --params FILE or --uncalibrated, not both",
                                 param_hint="--uncalibrated")
    if params is None and not uncalibrated:
        params = default_book_params()
        if not params.exists():
            typer.echo(f"warning: no calibrated book parameters at {params} (set "
                       "LIQBT_BOOK_PARAMS or pass --params); drawing an uncalibrated book",
                       err=True)
            params = None
    asset = (symbol or get_event(event, events).symbols[0]).split("/")[0]
    book_params, meta = calibrated_params(params, event, asset, size_usd)
    book = book_for_event(accounts, event, seed, symbol, venue, market, interval,
                          book_params, store, events)
    book.meta.update(meta)
    write_book(book, output)
    counts = dict(book.frame["product"].value_counts().iter_rows())
    sized = (f"; sized to {book_params.size_usd / 1e6:,.1f}M USD"
             + (f" ({book_params.represents})" if book_params.represents else "")
             if book_params.size_usd else "; unsized")
    console().print(
        f"wrote {output}: {len(book):,} accounts ({counts.get('perp', 0):,} perps, "
        f"{counts.get('loan', 0):,} loans) for {book.meta['symbol']}, tape {book.meta['tape']}, "
        f"event {event}, seed {seed}{sized}"
        + (f"; calibrated: {meta['calibration']}" if "calibration" in meta else ""),
        markup=False)
    if "unsized" in meta:
        typer.echo(f"warning: {meta['unsized']}; the book is unsized, so its USD results "
                   "scale with --accounts", err=True)


@app.command("calibrate")
def calibrate(
    config: Annotated[Path, typer.Argument(metavar="CONFIG",
                                           help="Calibration file (configs/calibration/).")],
    output: Annotated[Path, typer.Option("-o", "--output", metavar="FILE",
                                         help="Calibrated parameter file to write.")],
    max_evaluations: Annotated[int | None, typer.Option(
        metavar="N", help="Objective evaluations per fit (default: the file's).", min=1)
    ] = None,
    leave_one_out: Annotated[bool, typer.Option(
        help="Refit without each event and report its error.")] = True,
    store: Annotated[Path | None, typer.Option(
        metavar="DIR", help="Tape store (default $LIQBT_TAPES or data/tapes).")] = None,
) -> None:
    """Fit book and response parameters to real crashes.

    Prints each event's real and simulated liquidated share, in sample and left out of the fit,
    and writes the calibrated parameter file (docs/calibration.md).
    """
    from backtest.calibration.run import calibrate_file
    from backtest.cli._console import console

    calibrate_file(config, output, max_evaluations, leave_one_out, store, console())


@app.command("inspect")
def inspect(
    book: Annotated[Path, typer.Argument(metavar="BOOK", help="Book Parquet file.")],
    price: Annotated[float | None, typer.Option(
        metavar="USD",
        help="Value positions at this price (USD per unit); default each entry price.")
    ] = None,
    policy: Annotated[str, typer.Option(
        metavar="NAME|FILE", help="Policy whose maintenance margin rate (perps) and "
                                  "liquidation threshold (loans) define health.")] = "hard",
    strategies: Annotated[Path | None, typer.Option(
        metavar="DIR", help="Policy directory (default $LIQBT_STRATEGIES or strategies).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Describe a book: size, exposure, leverage and health.

    Prints accounts by product and side, open interest, loan collateral and debt (USD), and
    the distributions of leverage, health (perps: equity / maintenance margin; loans: health
    factor) and entry age.
    """
    import json

    if price is not None and not price > 0:
        raise typer.BadParameter(f"must be a positive price in USD, got {price}",
                                 param_hint="--price")
    from backtest.books import read_book
    from backtest.books.summary import summarize_book
    from backtest.policies import load_policy

    rules = load_policy(policy, strategies)
    summary = summarize_book(read_book(book), price=price,
                             maintenance_margin_rate=rules.perp.maintenance_margin_rate,
                             liquidation_threshold=None if rules.loan is None
                             else rules.loan.liquidation_threshold)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    print_book_summary(summary, book, rules.name)


def print_book_summary(summary: dict, path: Path, policy: str) -> None:
    """Print the summary of :func:`backtest.books.summary.summarize_book` as tables."""
    from rich.table import Table

    from backtest.cli._console import console

    out = console()
    meta = summary["meta"]
    where = ", ".join(f"{k} {meta[k]}" for k in ("symbol", "event", "seed") if k in meta)
    priced = (f"at {summary['price_usd']:,.2f} USD" if summary["price_usd"] is not None
              else "at each entry price")
    out.print(f"{path}: {summary['accounts']:,} accounts" + (f" ({where})" if where else "")
              + f"; valued {priced}; health under policy {policy}", markup=False)
    mix = Table(title="Side mix and exposure (USD)")
    for col in ("product", "side", "accounts", "notional / collateral", "debt", "equity"):
        mix.add_column(col, justify="left" if col in ("product", "side") else "right")
    for row in summary["groups"]:
        mix.add_row(row["product"], row["side"], f"{row['accounts']:,}",
                    _usd(row["notional_usd"]), _usd(row["debt_usd"]), _usd(row["equity_usd"]))
    out.print(mix)
    # venues count each contract once: half the perps' notional over both sides (the figure a
    # calibrated book is sized to, docs/calibration.md)
    out.print(f"open interest (perps, counted once per contract as venues publish it): "
              f"{_usd(summary['open_interest_usd'])} (notional over both sides "
              f"{_usd(summary['perp_notional_usd'])}); "
              f"loan collateral {_usd(summary['loan_collateral_usd'])}, loan debt "
              f"{_usd(summary['loan_debt_usd'])}", markup=False)
    dist = Table(title="Distributions")
    quantiles = summary["quantile_levels"]
    dist.add_column("quantity")
    for q in quantiles:
        dist.add_column("min" if q == 0 else "max" if q == 1 else f"p{round(100 * q)}",
                        justify="right")
    for key, label in (("leverage", "leverage (x)"), ("health_perp", "perp health (equity/MM)"),
                       ("health_factor_loan", "loan health factor"),
                       ("entry_age_days", "entry age (days)")):
        values = summary["distributions"].get(key)
        if values is None:
            continue
        dist.add_row(label, *(f"{v:,.2f}" for v in values))
    out.print(dist)
    out.print(f"liquidatable now (health < 1): {summary['liquidatable']:,} accounts", markup=False)


def _usd(value: float) -> str:
    return f"${value:,.0f}"


def register(root: typer.Typer) -> None:
    """Attach the ``book`` sub-commands to the root CLI."""
    root.add_typer(app, name="book")
