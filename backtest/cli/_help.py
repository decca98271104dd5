"""Plain, clean help text for every ``liqbt`` command.

Typer writes a required argument as ``{config}`` in the usage line and adds a type column
(``<path>``, ``<bool>``) to the argument list. :class:`PlainCommand` writes arguments the way
Unix manuals do (``CONFIG``, ``[RUN]``, ``PATH...``), options as ``--runs PATH``, and
docstrings without their reStructuredText markup (double backticks, ``:func:`` roles);
:func:`use_plain_help` applies it to every command of an app, including ones registered by
modules that do not know about it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from typer.core import TyperCommand

if TYPE_CHECKING:
    import click
    import typer


#: Typer's type labels and the metavar shown instead.
_TYPE_WORDS = {"path": "PATH", "str": "TEXT", "int": "N", "int range": "N", "float": "NUMBER",
               "float range": "NUMBER", "list[str]": "TEXT", "list[path]": "PATH",
               "list[Path]": "PATH", "bool": ""}
_TYPE_LABEL = re.compile(r" <([^<>]+)>$")


def plain_text(text: str | None) -> str | None:
    """Strip reStructuredText roles and backticks from a docstring shown as help."""
    if not text:
        return text
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"\1", text)
    return re.sub(r"`{1,2}([^`]+?)`{1,2}", r"\1", text)


def _option_name(record_name: str) -> str:
    match = _TYPE_LABEL.search(record_name)
    if not match:
        return record_name
    word = _TYPE_WORDS.get(match.group(1), match.group(1).upper().replace(" ", "_"))
    return record_name[:match.start()] + (f" {word}" if word else "")


def _argument_name(param: click.Parameter) -> str:
    name = param.metavar or (param.name or "arg").upper()
    if param.nargs != 1 and not name.endswith("..."):
        name += "..."
    return name


class PlainCommand(TyperCommand):
    """A typer command whose usage line and argument list show bare argument names."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.help = plain_text(self.help)
        self.short_help = plain_text(self.short_help)

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        """Return ``[OPTIONS]`` followed by each argument, optional ones in brackets."""
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                name = _argument_name(param)
                pieces.append(name if param.required else f"[{name}]")
        return pieces

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Write the Arguments and Options sections, arguments without a type column."""
        args, opts = [], []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                args.append((_argument_name(param), plain_text(record[1])))
            else:
                opts.append((_option_name(record[0]), plain_text(record[1])))
        if args:
            with formatter.section("Arguments"):
                formatter.write_dl(args)
        if opts:
            with formatter.section("Options"):
                formatter.write_dl(opts)


def use_plain_help(app: typer.Typer) -> None:
    """Make every command of ``app`` and of its sub-apps a :class:`PlainCommand`."""
    for info in app.registered_commands:
        if info.cls is None or info.cls is TyperCommand:
            info.cls = PlainCommand
    for group in app.registered_groups:
        if group.typer_instance is not None:
            use_plain_help(group.typer_instance)
