"""The ``liqbt`` command line.

Sub-commands live in one module each and are registered here. Every user error
(:class:`backtest.errors.LiqbtError`) is printed as one line and exits with status 2.
"""

from __future__ import annotations

import sys

import typer

from backtest.errors import LiqbtError

app = typer.Typer(
    name="liqbt",
    help="Backtest liquidation policies of lending and perp protocols on real crashes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register() -> None:
    if app.registered_groups:  # already done by an earlier main() in this process
        return
    from backtest.cli import book, data, portfolio, query, report, run, sweep, validate

    app.add_typer(data.app, name="data")
    for module in (book, run, sweep, portfolio, query, report, validate):
        module.register(app)


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
