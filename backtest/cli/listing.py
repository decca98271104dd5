"""``liqbt list events|policies|tapes|runs``.

What the catalog, policy directory, tape store and runs directory hold.

``runs`` reads the run directories' ``manifest.json`` files directly (no DuckDB catalog is
opened, so listing never waits on or blocks a run): single-asset runs in ``<runs>/<run_id>/``
and portfolio runs in ``<runs>/portfolio/<run_id>/``. Hidden directories (temporary folders of
runs being written) are skipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from backtest.cli._console import console as _console

app = typer.Typer(help="List events, policies, tapes or runs.", no_args_is_help=True)


@app.command("events")
def events(
    events_file: Annotated[Path | None, typer.Option(
        "--events", metavar="FILE",
        help="Event catalog (default $LIQBT_EVENTS or data/events.toml).")] = None,
) -> None:
    """Crash windows in the event catalog.

    Prints each event's key (for --event and run configs), its UTC window (end exclusive),
    length, symbols and name.
    """
    from rich.table import Table

    from backtest.events import load_events
    from backtest.paths import events_file as resolve

    path = resolve(events_file)
    table = Table(title=f"Events in {path}")
    for col in ("event", "start (UTC)", "end (UTC, excl.)", "hours", "symbols", "name"):
        table.add_column(col, justify="right" if col == "hours" else "left")
    for ev in load_events(path).values():
        table.add_row(ev.key, f"{ev.start:%Y-%m-%d %H:%M}", f"{ev.end:%Y-%m-%d %H:%M}",
                      f"{(ev.end - ev.start).total_seconds() / 3600:g}", ", ".join(ev.symbols),
                      ev.name)
    _console().print(table)


@app.command("policies")
def policies(
    strategies: Annotated[Path | None, typer.Option(
        metavar="DIR", help="Policy directory (default $LIQBT_STRATEGIES or strategies).")
    ] = None,
    long: Annotated[bool, typer.Option("--long", "-l",
                                       help="Also print each policy's description.")] = False,
) -> None:
    """Policies and protocol presets.

    Prints each policy file's name (for a run config's policies list), its family and the
    protocol source its parameters follow; --long adds the description.
    """
    from rich.table import Table

    from backtest.paths import strategies_dir
    from backtest.policies import available_policies, load_policy

    root = strategies_dir(strategies)
    table = Table(title=f"Policies in {root} (use the name in a run config's policies list)")
    cols = ("name", "family", "source") + (("description",) if long else ())
    for col in cols:
        table.add_column(col, no_wrap=col in ("name", "family"))
    for name in available_policies(strategies):
        policy = load_policy(name, strategies)
        row = [policy.name, policy.family, policy.source or "-"]
        if long:
            row.append(policy.description or "-")
        table.add_row(*row)
    _console().print(table)


@app.command("tapes")
def tapes(
    store: Annotated[Path | None, typer.Option(
        metavar="DIR", help="Tape store (default $LIQBT_TAPES or data/tapes).")] = None,
) -> None:
    """Price tapes in the tape store.

    Prints venue, market, symbol, interval, UTC range, candles, gaps and whether funding is
    attached. liqbt data list also shows which tapes cover each event window.
    """
    from rich.table import Table

    from backtest.tapes import TapeStore

    tape_store = TapeStore(store)
    infos = tape_store.list()
    if not infos:
        _console().print(f"No tapes in {tape_store.root}: import some with liqbt data import.",
                         markup=False)
        return
    table = Table(title=f"Tapes in {tape_store.root}")
    for col in ("venue", "market", "symbol", "interval", "start (UTC)", "end (UTC, excl.)",
                "candles", "gaps", "funding"):
        table.add_column(col, justify="right" if col in ("candles", "gaps") else "left")
    for i in infos:
        table.add_row(i.venue, i.market, i.symbol, i.interval, f"{i.start:%Y-%m-%d %H:%M}",
                      f"{i.end:%Y-%m-%d %H:%M}", f"{i.rows:,}", f"{i.n_gaps:,}",
                      "yes" if i.has_funding else "-")
    _console().print(table)


@app.command("runs")
def runs(
    runs_dir: Annotated[Path | None, typer.Option(
        "--runs", metavar="DIR", help="Runs directory (default $LIQBT_RUNS or runs).")] = None,
    limit: Annotated[int, typer.Option(
        min=1, metavar="N", help="Show the N most recent runs.")] = 20,
) -> None:
    """Finished runs, newest last.

    Reads each run directory's manifest.json: run id, kind (single_asset or portfolio),
    creation time, event, symbol, window, accounts, policies (portfolio runs: collateral
    orders), wall time.
    """
    from rich.table import Table

    from backtest.paths import runs_dir as resolve
    from backtest.results.runs import list_runs

    root = resolve(runs_dir)
    rows = list_runs(root)
    if not rows:
        _console().print(f"No runs in {root}: start one with liqbt run CONFIG.", markup=False)
        return
    shown = rows[-limit:]
    table = Table(title=f"Runs in {root} ({len(shown)} of {len(rows)}, oldest first)")
    for col in ("run_id", "kind", "created (UTC)", "event", "symbol", "window (UTC)", "accounts",
                "policies", "wall (s)"):
        table.add_column(col, justify="right" if col in ("accounts", "wall (s)") else "left",
                         no_wrap=col == "run_id")
    for r in shown:
        table.add_row(r["run_id"], r["kind"], r["created"], r["event"], r["symbol"], r["window"],
                      f"{r['accounts']:,}" if r["accounts"] is not None else "-",
                      ", ".join(r["policies"]),
                      f"{r['wall_seconds']:.1f}" if r["wall_seconds"] is not None else "-")
    _console().print(table)


def register(root: typer.Typer) -> None:
    """Attach the ``list`` sub-commands to the root CLI."""
    root.add_typer(app, name="list")
