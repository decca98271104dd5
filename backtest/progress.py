"""Progress bars for long steps (rich), silent when disabled or not on a terminal."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


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


class RateColumn(ProgressColumn):
    """Completed items per minute, from rich's running speed estimate."""

    def __init__(self, unit: str = "cells"):
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        """Render ``12.3 cells/min`` (``-`` until the first item finishes)."""
        speed = task.finished_speed or task.speed
        if speed is None:
            return Text(f"- {self.unit}/min", style="progress.data.speed")
        return Text(f"{60.0 * speed:,.1f} {self.unit}/min", style="progress.data.speed")


@contextlib.contextmanager
def count_progress(enabled: bool = True, unit: str = "cells") -> Iterator[Progress]:
    """Yield a rich ``Progress`` for counted work: done / total, rate per minute, elapsed, ETA.

    Parameters
    ----------
    enabled : bool
        False gives a progress object that draws nothing.
    unit : str
        What is counted, shown with the rate (``cells/min``).
    """
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(unit),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=False,
        speed_estimate_period=120.0,
    )
    with progress:
        yield progress
