"""Progress bars for long steps (rich), silent when disabled or not on a terminal."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


@contextlib.contextmanager
def progress_bar(enabled: bool = True) -> Iterator[Progress]:
    """Yield a rich ``Progress`` showing description, bar, done/total, elapsed and ETA.

    Parameters
    ----------
    enabled : bool
        False gives a progress object that draws nothing (tests, ``--quiet``).
    """
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=False,
    )
    with progress:
        yield progress
