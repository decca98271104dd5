"""The ``liqbt`` command line.

Sub-commands live in one module each and are registered here. Every user error
(:class:`backtest.errors.LiqbtError`) is printed as one line and exits with status 2.

Start-up is kept light: the command modules import only :mod:`typer` (and the standard
library) at module level, and each command imports the engine, numba, polars or DuckDB when it
runs, so ``liqbt --help`` and ``liqbt --version`` answer in a fraction of a second. Help is
rendered by click's plain formatter (``rich_markup_mode=None``): no type column (``<bool>``,
``<path>``), no boxes, the same text on a terminal and in a pipe.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from backtest.errors import LiqbtError

app = typer.Typer(
    name="liqbt",
    help="Backtest liquidation policies of lending and perp protocols on real crashes.\n\n"
         "A first session: liqbt list events; liqbt data import FILE; liqbt book generate "
         "--event KEY --accounts N -o BOOK; liqbt run CONFIG; liqbt query SQL; "
         "liqbt report latest. Each command has --help.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)


def _version(value: bool) -> None:
    if value:
        from backtest import __version__

        typer.echo(f"liqbt {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option(
        "--version", "-V", callback=_version, is_eager=True,
        help="Print the installed version and exit.")] = False,
) -> None:
    """Backtest liquidation policies of lending and perp protocols on real crashes."""


#: One-line descriptions in ``liqbt --help`` (click would cut the docstrings mid-sentence).
SHORT_HELP = {
    "run": "Simulate the policies of a run config; print the summary.",
    "sweep": "Run a sweep: events x policies x parameter grids x stress.",
    "query": "SQL over every finished run (read-only).",
    "report": "Write the HTML report of a run or a governance proposal.",
    "warm-up": "Compile the simulation kernels now (make setup does it).",
    "data": "Import price tapes; show which events they cover.",
    "book": "Generate, inspect or calibrate a book of accounts.",
    "validate": "A run against what really happened: real, simulated, ratio.",
    "portfolio": "Multi-asset portfolios, options, liquidation-at-risk maps.",
    "list": "List events, policies, tapes or runs.",
}


def _register() -> None:
    if app.registered_groups:  # already done by an earlier main() in this process
        return
    from backtest.cli import (
        book,
        data,
        listing,
        portfolio,
        query,
        report,
        run,
        setup,
        sweep,
        validate,
    )

    app.add_typer(data.app, name="data")
    for module in (book, run, sweep, portfolio, query, report, validate, listing, setup):
        module.register(app)
    from typer.models import DefaultPlaceholder

    from backtest.cli._help import use_plain_help

    use_plain_help(app)
    for info in [*app.registered_commands, *app.registered_groups]:
        unset = info.short_help is None or isinstance(info.short_help, DefaultPlaceholder)
        if info.name in SHORT_HELP and unset:
            info.short_help = SHORT_HELP[info.name]


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the process exit status.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name; defaults to ``sys.argv[1:]``.

    Returns
    -------
    int
        0 on success, 2 on a user error (message printed to stderr), 2 on a usage error.
    """
    _register()
    try:
        app(args=argv, prog_name="liqbt")
    except LiqbtError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # typer's standalone mode ends every command this way
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
