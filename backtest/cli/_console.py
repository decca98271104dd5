"""Consoles for CLI output: rich on a terminal, plain long lines when piped or redirected.

On a terminal, rich wraps text and sizes tables to the window. Written to a file or a pipe,
rich would cut every line at 80 columns (its default width off a terminal) and break tables
across lines; here output off a terminal is plain (no colour, no markup styling), soft-wrapped
(one logical line stays one line) and up to :data:`PLAIN_WIDTH` columns wide.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

#: Width (characters) of tables written to a file or pipe.
PLAIN_WIDTH = 200


def console(stderr: bool = False) -> Console:
    """Return a rich console for standard output (or standard error).

    Parameters
    ----------
    stderr : bool
        Write to standard error instead of standard output.

    Returns
    -------
    rich.console.Console
        Terminal: rich's defaults without syntax highlighting. Otherwise: no colour,
        soft-wrapped lines, tables up to :data:`PLAIN_WIDTH` characters wide.
    """
    from rich.console import Console

    probe = Console(stderr=stderr)
    if probe.is_terminal:
        return Console(stderr=stderr, highlight=False)
    return Console(stderr=stderr, highlight=False, soft_wrap=True, width=PLAIN_WIDTH,
                   no_color=True, emoji=False)
