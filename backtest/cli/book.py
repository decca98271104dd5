"""``liqbt book generate``, ``import``, ``inspect``: draw, import or describe a book."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Generate, import and inspect books (account populations).",
                  no_args_is_help=True)


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
    represents: Annotated[str | None, typer.Option(
        metavar="VENUE", help="The venue or protocol the book stands for (e.g. bitmex), "
                              "instead of the parameters' own (all-cex for the calibrated "
                              "perp book): recorded as the book's venue and, without "
                              "--size-usd, sizing it to that venue's open interest in "
                              "data/validation.")] = None,
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
    book_params, meta = calibrated_params(params, event, asset, size_usd,
                                          represents=represents)
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


@app.command("coverage")
def coverage(
    fitted: Annotated[Path, typer.Argument(
        metavar="FITTED", help="Calibrated perp file with leave-one-out refits "
                               "(configs/calibration/perps-fitted.toml).")],
    members: Annotated[int, typer.Option(metavar="N", min=2,
                                         help="Members per event.")] = 30,
    seed: Annotated[int, typer.Option(metavar="SEED", min=0, help="Ensemble seed.")] = 0,
    in_sample: Annotated[bool, typer.Option(
        "--in-sample", help="Centre every event on the full fit instead of the refit that "
                            "left it out.")] = False,
    config: Annotated[Path | None, typer.Option(
        metavar="FILE", help="Calibration file (default: the one FITTED names).")] = None,
    store: Annotated[Path | None, typer.Option(
        metavar="DIR", help="Tape store (default $LIQBT_TAPES or data/tapes).")] = None,
    write: Annotated[bool, typer.Option(
        "--write", help="Record the check beside FITTED (<stem>-coverage.toml), where "
                        "liqbt validate and governance reports read it.")] = False,
) -> None:
    """Check ensemble intervals on the calibration's own events.

    Runs each event N times, every member with its own book seed and joint draw of the fitted
    parameters, centred on the refit that left the event out (a held-out check), and prints
    the members' p5 / p50 / p95 liquidated share of open interest against the real share and
    how many real shares fall inside (docs/ensembles.md, "Do the intervals hold").
    """
    from rich.table import Table

    from backtest.cli._console import console
    from backtest.sweep.coverage import interval_coverage, summary, write_coverage

    rows = interval_coverage(fitted, members, seed, not in_sample, config, store)
    out = console()
    table = Table(title=f"liquidated share of open interest, {members} members per event, "
                        f"centred on the {rows[0].centre}")
    for col in ("event", "target", "real", "p5", "p50", "p95", "p50 / real", "inside"):
        table.add_column(col, justify="left" if col in ("event", "target") else "right")
    for r in rows:
        real = (f"{r.real_low:.2%}" if r.real_low == r.real_high
                else f"{r.real_low:.2%}-{r.real_high:.2%}")
        table.add_row(r.event, f"{r.venue} {r.asset}", real, f"{r.p5:.2%}", f"{r.p50:.2%}",
                      f"{r.p95:.2%}", f"{r.ratio:.2f}x", "yes" if r.inside else "no")
    out.print(table)
    s = summary(rows)
    out.print(f"real share inside the members' p5-p95 in {s['inside']} of {s['events']} events "
              f"({s['inside'] / s['events']:.0%}; a well-stated 90% interval: about 90%); "
              f"median within a factor 1.5 in {s['medians_within_1_5']}; root mean square "
              f"log error {s['rms_log_ratio']:.3f} (a factor {s['typical_factor']:.2f}); the "
              f"model's own log error {s['model_error_log_sd']:.3f}: the interval widened by it "
              f"contains {s['inside_with_model_error']} of {s['events']} "
              f"({s['inside_with_model_error_held_out']} with that error estimated without "
              "the event)")
    if write:
        from datetime import UTC, datetime

        from backtest.provenance import command_line

        path = write_coverage(fitted, rows, members, seed,
                              command_line("backtest.cli.book.coverage in Python"),
                              datetime.now(UTC).strftime("%Y-%m-%d"))
        out.print(f"wrote {path}")


@app.command("import")
def import_positions(
    positions: Annotated[Path, typer.Argument(
        metavar="POSITIONS", help="Lending positions: .csv, .parquet or .json records.")],
    output: Annotated[Path, typer.Option("-o", "--output", metavar="FILE",
                                         help="Book Parquet file to write.")],
    symbol: Annotated[str, typer.Option(metavar="BASE/QUOTE",
                                        help="The collateral's market, e.g. BTC/USDT.")],
    price: Annotated[float, typer.Option(
        metavar="USD", help="USD per collateral unit when the positions were read (the "
                            "price their USD values and healths were taken at).")],
    time: Annotated[datetime, typer.Option(
        metavar="UTC", formats=["%Y-%m-%dT%H:%M:%S%z"],
        help="When the positions were read, e.g. 2025-10-09T00:00:00+00:00; run the book "
             "from then (the run config's start).")],
    collateral: Annotated[str, typer.Option(metavar="COLUMN",
                                            help="Column of the collateral.")] = "collateral",
    collateral_unit: Annotated[str, typer.Option(
        metavar="asset|usd", help="Collateral in asset units or in USD at --price.")
    ] = "asset",
    debt: Annotated[str, typer.Option(metavar="COLUMN", help="Column of the debt, USD.")
                    ] = "debt",
    records_key: Annotated[str | None, typer.Option(
        metavar="KEY", help="JSON: the key holding the list of positions.")] = None,
    represents: Annotated[str | None, typer.Option(
        metavar="PROTOCOL", help="The protocol the book stands for (targets' venue, e.g. "
                                 "morpho-blue): liqbt validate shows its figures only.")
    ] = None,
) -> None:
    """Import a lending protocol's real positions as a loans book.

    Each position becomes a loan opened at --price at --time with its collateral and debt, so
    its health is the protocol's (docs/books.md, "Bring your own book").
    """
    from backtest.books import write_book
    from backtest.books.positions import PositionColumns, positions_to_book, read_positions
    from backtest.cli._console import console

    if collateral_unit not in ("asset", "usd"):
        raise typer.BadParameter("give asset or usd", param_hint="--collateral-unit")
    cols = PositionColumns(collateral, debt, collateral_unit, records_key)
    book, skipped = positions_to_book(read_positions(positions, cols), price, time, symbol,
                                      cols, positions, represents)
    write_book(book, output)
    a = book.arrays()  # the engine's state: debt is -cash, collateral the units
    debt_usd, collateral_usd = float(-a["cash"].sum()), float(a["units"].sum()) * price
    console().print(
        f"wrote {output}: {len(book):,} loans on {symbol} at {price:,.2f} USD, "
        f"{time.isoformat()}: debt ${debt_usd / 1e6:,.2f}M against ${collateral_usd / 1e6:,.2f}M "
        f"of collateral ({debt_usd / collateral_usd:.1%})"
        + (f"; {skipped:,} closed rows skipped" if skipped else ""), markup=False)


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
