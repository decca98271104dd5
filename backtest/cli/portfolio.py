"""``liqbt portfolio run CONFIG``: multi-asset books, order policies, options, LAR maps."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from backtest.cli._console import console as _console

app = typer.Typer(help="Multi-asset portfolios, options, liquidation-at-risk maps.",
                  no_args_is_help=True)


@app.command("run")
def run(
    config: Annotated[Path, typer.Argument(metavar="CONFIG",
                                           help="Portfolio run config (TOML).")],
    runs: Annotated[Path | None, typer.Option(
        metavar="DIR", help="Runs directory (default $LIQBT_RUNS or runs).")] = None,
    store: Annotated[Path | None, typer.Option(
        metavar="DIR", help="Tape store (default $LIQBT_TAPES or data/tapes).")] = None,
    events: Annotated[Path | None, typer.Option(
        metavar="FILE", help="Event catalog (default $LIQBT_EVENTS or data/events.toml).")
    ] = None,
    report: Annotated[bool, typer.Option(help="Also write the HTML report.")] = False,
    out: Annotated[Path | None, typer.Option(
        metavar="FILE", help="Report file (default $LIQBT_REPORTS/<run>.html).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No stage lines.")] = False,
    overrides: Annotated[list[str] | None, typer.Option(
        "--set", metavar="KEY=VALUE",
        help="Replace a config field: KEY=VALUE, dotted keys, TOML values "
             "(e.g. --set portfolio.accounts=10000); repeatable.")] = None,
) -> None:
    """Run a portfolio config and print its summary.

    Runs every collateral order policy, the options book and the liquidation-at-risk maps.
    """
    from backtest.engine.warmup import announce_compilation
    from backtest.portfolio.pipeline import run_portfolio_config
    from backtest.portfolio.run_config import load_portfolio_config

    announce_compilation()
    err = _console(stderr=True)
    cfg = load_portfolio_config(config, overrides)
    run_id, run_dir, manifest = run_portfolio_config(
        cfg, config, runs=runs, store=store, events=events,
        log=None if quiet else (lambda msg: err.print(f"[dim]{msg}[/]")), overrides=overrides)
    console = _console()
    print_summary(console, manifest)
    if report:
        from backtest.report.portfolio import write_portfolio_report

        path = write_portfolio_report(run_dir, out)
        console.print(f"report: {path} ({path.stat().st_size / 2**20:.1f} MB)")
    console.print(f"run {run_id} -> {run_dir}")


@app.command("report")
def report_cmd(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR",
                                            help="Portfolio run directory.")],
    out: Annotated[Path | None, typer.Option(
        metavar="FILE", help="Report file (default $LIQBT_REPORTS/<run>.html).")] = None,
) -> None:
    """Write the HTML report of a finished portfolio run directory."""
    from backtest.report.portfolio import write_portfolio_report

    path = write_portfolio_report(run_dir, out)
    _console().print(f"report: {path} ({path.stat().st_size / 2**20:.1f} MB)")


def print_summary(console, manifest: dict) -> None:
    """Print the order-policy table, the options line, run time and peak memory."""
    from rich.table import Table

    table = Table(title=f"{manifest['name']}: {manifest['window']['start']} .. "
                        f"{manifest['window']['end']} ({manifest['window']['steps']} steps of "
                        f"{manifest['window']['interval']}), "
                        f"{manifest['portfolio_book']['accounts']:,} accounts")
    for col in ("order", "accounts liquidated", "liquidated (M USD)", "bad debt (M USD)",
                "user loss (M USD)", "run (s)"):
        table.add_column(col, justify="left" if col == "order" else "right",
                         no_wrap=col == "order")
    runs = manifest["timings"]["portfolio_run_s"]
    for order, s in manifest["portfolio_summary"].items():
        table.add_row(order, f"{s['accounts_liquidated']:,}",
                      f"{s['liquidated_notional_usd'] / 1e6:,.1f}",
                      f"{s['bad_debt_usd'] / 1e6:,.2f}",
                      f"{(s['keeper_fees_usd'] + s['insurance_fees_usd']) / 1e6:,.1f}",
                      f"{runs[order]:.1f}")
    console.print(table)
    opt = manifest.get("options_book")
    if opt:
        console.print(f"options: {opt['accounts']:,} accounts, {opt['legs']:,} legs, "
                      f"{opt['steps']} steps of {opt['interval']}; "
                      f"{opt['summary']['accounts_liquidated']:,} liquidated, bad debt "
                      f"{opt['summary']['bad_debt_usd']:,.0f} USD")
    t = manifest["timings"]
    console.print(f"total {t['total_s']:.1f} s; peak RSS "
                  f"{manifest['runtime']['peak_rss_mb']:.0f} MB")


def register(root: typer.Typer) -> None:
    """Attach the ``portfolio`` command group to the root CLI."""
    root.add_typer(app, name="portfolio")
