"""``liqbt data``: import price tapes into the store and show what it covers.

Commands:

- ``liqbt data import PATH... [--venue V] [--market spot|perp] [--symbol S] [--interval I]
  [--store DIR]``
- ``liqbt data import-feed FEED --venue NAME --symbol S --interval I [--market spot|perp]
  [--store DIR]``: an oracle price feed as candles (:mod:`backtest.tapes.feed`)
- ``liqbt data list [--store DIR] [--events FILE]``
- ``liqbt data keeper-delays LIQUIDATIONS --venue V --symbol S --event E [--interval I]``: how
  late keepers took real liquidations, bounded from an oracle tape
  (:mod:`backtest.calibration.keeper_delay`)

A :class:`backtest.errors.TapeError` aborts the command; the CLI shell prints it and exits 2.
Files imported before the failing one stay imported; the failing one changes nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from backtest.errors import TapeError

if TYPE_CHECKING:  # the CLI imports these when a command runs (fast `liqbt --help`)
    from rich.console import Console
    from rich.table import Table

    from backtest.tapes import ImportResult, TapeInfo, TapeStore

app = typer.Typer(help="Import price tapes and list what the store covers.",
                  no_args_is_help=True)

MAX_WARNINGS_SHOWN = 10
"""Warnings printed per file; the rest are counted."""


def _console() -> Console:
    from backtest.cli._console import console

    return console()


def discover(paths: list[Path], *, plain: bool = False) -> list[Path]:
    """Expand directories into the importable files they hold (recursively, sorted).

    Parameters
    ----------
    paths : list of Path
        Files and directories as given on the command line.
    plain : bool
        Also take any ``.csv``/``.parquet`` found in directories (when ``--symbol`` is given).

    Returns
    -------
    list of Path
        Files given explicitly are kept as they are (the importer reports what is wrong).

    Raises
    ------
    TapeError
        If a path does not exist or a directory holds no importable file.
    """
    from backtest.tapes import is_importable

    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*")
                           if p.is_file() and is_importable(p, plain=plain))
            if not found:
                raise TapeError("no importable file in this directory (expected freqtrade or "
                                "Binance kline file names)", path)
            out.extend(found)
        elif path.exists():
            out.append(path)
        else:
            raise TapeError("no such file or directory", path)
    return out


def _fmt_time(value) -> str:
    return f"{value:%Y-%m-%d %H:%M}"


def print_result(console: Console, result: ImportResult) -> None:
    """Print one import result: key, rows, range, gaps and warnings."""
    console.print(f"[bold]{result.source}[/bold]")
    console.print(f"  -> {result.key}  ({result.path})")
    console.print(f"  rows: {result.rows_in_file} in file, {result.rows_added} new, "
                  f"{result.rows_total} in store; range {_fmt_time(result.start)} .. "
                  f"{_fmt_time(result.end)} UTC")
    if result.gaps:
        largest = max(result.gaps, key=lambda g: g.duration)
        console.print(f"  gaps: {len(result.gaps)}, largest {largest} (not filled)")
    else:
        console.print("  gaps: none")
    for note in result.warnings[:MAX_WARNINGS_SHOWN]:
        console.print(f"  [yellow]warning[/yellow]: {note}")
    if len(result.warnings) > MAX_WARNINGS_SHOWN:
        console.print(f"  ... and {len(result.warnings) - MAX_WARNINGS_SHOWN} more warning(s)")
    for path in result.updated:
        console.print(f"  funding re-attached to {path}")


@app.command("import")
def import_(
    paths: list[Path] = typer.Argument(..., metavar="PATH...",
                                       help="Files or directories to import."),
    venue: str = typer.Option(None, metavar="NAME",
                              help="Exchange (default: from the directory name)."),
    market: str = typer.Option(None, metavar="spot|perp",
                               help="Market (default: from the file name)."),
    symbol: str = typer.Option(None, metavar="BASE/QUOTE",
                               help="Asset pair (default: from the file name)."),
    interval: str = typer.Option(None, metavar="INTERVAL",
                                 help="Candle interval, e.g. 1m (default: name/spacing)."),
    store: Path = typer.Option(None, metavar="DIR", help="Tape store directory (default "
                                                         "$LIQBT_TAPES or data/tapes)."),
) -> None:
    """Import candle and funding files into the tape store.

    Reads freqtrade files, Binance kline files and plain CSV/Parquet (with --symbol).
    """
    from backtest.tapes import TapeStore

    tape_store = TapeStore(store)
    console = _console()
    for path in discover(list(paths), plain=symbol is not None):
        result = tape_store.import_file(path, venue=venue, market=market, symbol=symbol,
                                        interval=interval)
        print_result(console, result)


@app.command("import-feed")
def import_feed(
    path: Annotated[Path, typer.Argument(
        metavar="FEED", help="Oracle price updates: .csv, .parquet or .json.")],
    venue: Annotated[str, typer.Option(
        metavar="NAME", help="Name to store the tape under, e.g. chainlink-base ([oracle] "
                             "mark_venue).")],
    symbol: Annotated[str, typer.Option(metavar="BASE/QUOTE",
                                        help="Asset pair the feed prices.")],
    interval: Annotated[str, typer.Option(
        metavar="INTERVAL", help="Candle interval, that of the run's tape, e.g. 5m.")],
    market: Annotated[str, typer.Option(
        metavar="spot|perp", help="Market to file it under ([oracle] mark_market).")
    ] = "spot",
    decimals: Annotated[int, typer.Option(
        metavar="N", min=0, max=36, help="Decimals of raw integer answers (8: Chainlink USD "
                                         "feeds; 18: ETH-quoted feeds).")] = 0,
    invert: Annotated[bool, typer.Option(
        "--invert", help="The feed prices the quote in the base (e.g. Aave v2's USDT/ETH for an "
                         "ETH/USDT tape): store 1 / price.")] = False,
    store: Annotated[Path | None, typer.Option(
        metavar="DIR", help="Tape store directory (default $LIQBT_TAPES or data/tapes).")
    ] = None,
) -> None:
    """Import an oracle feed as candles of the price in force.

    For runs that trigger on the protocol's oracle: [oracle] model = "mark" with mark_venue
    set to --venue (docs/tapes.md, "Oracle price feeds").
    """
    from backtest.tapes import TapeStore
    from backtest.tapes.feed import read_feed

    if market not in ("spot", "perp"):
        raise typer.BadParameter("give spot or perp", param_hint="--market")
    raw = read_feed(path, venue=venue, symbol=symbol, interval=interval, market=market,
                    decimals=decimals, invert=invert)
    print_result(_console(), TapeStore(store).import_tape(raw))


def _events_table(tape_store: TapeStore, events_path: Path | None, infos: list[TapeInfo]
                  ) -> Table | str:
    from rich.table import Table

    from backtest.events import load_events
    from backtest.paths import events_file

    path = events_file(events_path)
    if events_path is None and not path.exists():
        return f"No event catalog at {path} (set --events or $LIQBT_EVENTS)."
    events = load_events(path)
    table = Table(title="Events: tapes covering each window (UTC, end exclusive)")
    for col in ("event", "window", "symbol", "tape", "coverage", "gaps in window"):
        table.add_column(col)
    for event in events.values():
        key, window = event.key, f"{_fmt_time(event.start)} .. {_fmt_time(event.end)}"
        for symbol in event.symbols:
            rows = []
            for info in (i for i in infos if i.symbol == symbol):
                cov = tape_store.coverage(info, event.start, event.end)
                if cov.status == "none":
                    continue
                gaps = "none" if not cov.gaps else (
                    f"{len(cov.gaps)}, longest {cov.longest_missing} missing")
                status = cov.status if cov.status == "full" else (
                    f"partial ({cov.rows}/{cov.expected_rows} candles)")
                rows.append((f"{info.venue}/{info.market}/{info.interval}", status, gaps))
            if not rows:
                rows.append(("[red]no tape[/red]", "-", "-"))
            for tape, status, gaps in rows:
                table.add_row(key, window, symbol, tape, status, gaps)
                key = window = symbol = ""
    return table


@app.command("keeper-delays")
def keeper_delays_(
    path: Annotated[Path, typer.Argument(
        metavar="LIQUIDATIONS", help="Real liquidations: time, account, price, value "
                                     "(.csv, .parquet or .json).")],
    venue: Annotated[str, typer.Option(
        metavar="NAME", help="Venue of the oracle tape, e.g. aave-v2-oracle.")],
    symbol: Annotated[str, typer.Option(metavar="BASE/QUOTE", help="Asset pair.")],
    event: Annotated[str, typer.Option(metavar="KEY", help="Catalog event: the window.")],
    interval: Annotated[str, typer.Option(
        metavar="INTERVAL", help="Oracle tape interval (the finer, the tighter the bound).")
    ] = "1m",
    store: Annotated[Path | None, typer.Option(
        metavar="DIR", help="Tape store directory (default $LIQBT_TAPES or data/tapes).")
    ] = None,
    events: Annotated[Path | None, typer.Option(
        metavar="FILE", help="Event catalog (default $LIQBT_EVENTS or data/events.toml).")
    ] = None,
) -> None:
    """Bound how late keepers took real liquidations.

    Each liquidation waited at least from the first moment the oracle read its price or lower
    (since the window start or the account's previous liquidation); weighted by value
    (docs/calibration.md, "How late keepers were").
    """
    from rich.table import Table

    from backtest.calibration.keeper_delay import (
        OVER_MINUTES,
        QUANTILES,
        WITHIN_MINUTES,
        keeper_delays,
        read_liquidations,
        summarize,
    )
    from backtest.events import get_event
    from backtest.tapes import TapeStore

    ev = get_event(event, events)
    liq = read_liquidations(path)
    lo, hi = int(ev.start.timestamp() * 1000), int(ev.end.timestamp() * 1000)
    inside = (liq["time"] >= lo) & (liq["time"] < hi)
    if not inside.any():
        raise TapeError(f"no liquidation inside {event}'s window", path)
    tape = TapeStore(store).resolve(symbol, ev.start, ev.end, venue, None, interval).arrays()
    waits = keeper_delays(liq["time"][inside], liq["account"][inside], liq["price"][inside],
                          tape["timestamp"], tape["low"], lo)
    summary = summarize(waits, liq["value"][inside])
    table = Table(title=f"{event}: how long keepers left each liquidation, at least "
                        f"({venue} {symbol} {interval}; weighted by value)")
    for col in ("liquidations", "value", f"within {WITHIN_MINUTES:g} min",
                *(f"p{round(q * 100)}" for q in QUANTILES), f"over {OVER_MINUTES:g} min"):
        table.add_column(col, justify="right")
    table.add_row(f"{summary.count:,}", f"{summary.value:,.0f}", f"{summary.within:.1%}",
                  *(f"{m:.1f} min" for m in summary.quantiles), f"{summary.over:.1%}")
    console = _console()
    console.print(table)
    left_out = int((~inside).sum())
    if left_out:
        console.print(f"{left_out:,} liquidation{'s' if left_out > 1 else ''} outside the "
                      "window left out.")


@app.command("list")
def list_(
    store: Path = typer.Option(None, metavar="DIR", help="Tape store directory (default "
                                                         "$LIQBT_TAPES or data/tapes)."),
    events: Path = typer.Option(None, metavar="FILE", help="Event catalog (default "
                                                           "$LIQBT_EVENTS or data/events.toml)."),
) -> None:
    """Show which tapes cover each event, then every tape.

    Per catalog event and symbol: the tapes covering its window, with gaps; then every
    stored tape and funding series.
    """
    from rich.table import Table

    from backtest.tapes import TapeStore, format_interval

    tape_store = TapeStore(store)
    console = _console()
    infos = tape_store.list()
    console.print(_events_table(tape_store, events, infos))
    tapes = Table(title=f"Tapes in {tape_store.root}")
    for col in ("venue", "market", "symbol", "interval", "start", "end (excl.)", "rows", "gaps",
                "funding"):
        tapes.add_column(col, justify="right" if col in ("rows", "gaps") else "left")
    for i in infos:
        tapes.add_row(i.venue, i.market, i.symbol, i.interval, _fmt_time(i.start),
                      _fmt_time(i.end), str(i.rows), str(i.n_gaps),
                      "yes" if i.has_funding else "-")
    console.print(tapes if infos else f"No tapes in {tape_store.root}.")
    funding = tape_store.list_funding()
    if funding:
        ft = Table(title="Funding series")
        for col in ("venue", "symbol", "every", "first", "last", "rows"):
            ft.add_column(col)
        for f in funding:
            ft.add_row(f.venue, f.symbol, format_interval(f.funding_interval_seconds),
                       _fmt_time(f.start), _fmt_time(f.end), str(f.rows))
        console.print(ft)
