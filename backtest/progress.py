"""Progress for long steps: a rich bar on a terminal, plain lines in a log, nothing if disabled.

Off a terminal (standard error redirected to a file or a pipe) a redrawn bar turns into a
garbled line of box characters; :class:`PlainProgress` writes one plain line per tenth of the
work and per new step instead, to standard error.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator

from rich.console import Console
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


class PlainProgress:
    """The part of rich's ``Progress`` the engine uses, written as plain lines.

    A line is written when a task's description changes, when its completed share crosses
    each tenth, and when it finishes: ``<description>: <done>/<total> <unit> (<pct>%),
    <elapsed> s``, with the rate and an ETA once some work is done.

    Parameters
    ----------
    stream : file-like, optional
        Where lines go (default standard error).
    unit : str
        What is counted (``steps``, ``cells``).
    """

    def __init__(self, stream=None, unit: str = "steps"):
        self.stream = stream if stream is not None else sys.stderr
        self.unit = unit
        self._tasks: dict[int, dict] = {}

    def add_task(self, description: str, total: float | None = None, **_) -> int:
        """Start a task; return its id."""
        task_id = len(self._tasks)
        self._tasks[task_id] = {"description": description, "total": total, "completed": 0.0,
                                "tenth": 0, "t0": time.perf_counter()}
        self._write(task_id)
        return task_id

    def update(self, task_id: int, *, description: str | None = None,
               advance: float | None = None, completed: float | None = None, **_) -> None:
        """Change a task's description and/or progress, writing a line when due."""
        task = self._tasks[task_id]
        if description is not None and description != task["description"]:
            task["description"] = description
            self._write(task_id)
        if completed is not None:
            self._progress(task_id, completed)
        if advance is not None:
            self._progress(task_id, task["completed"] + advance)

    def advance(self, task_id: int, advance: float = 1) -> None:
        """Add ``advance`` to a task's completed amount."""
        self._progress(task_id, self._tasks[task_id]["completed"] + advance)

    def _progress(self, task_id: int, completed: float) -> None:
        task = self._tasks[task_id]
        task["completed"] = completed
        total = task["total"]
        if not total:
            return
        tenth = min(10, int(10 * completed / total))
        if tenth > task["tenth"]:
            task["tenth"] = tenth
            self._write(task_id)

    def _write(self, task_id: int) -> None:
        task = self._tasks[task_id]
        elapsed = time.perf_counter() - task["t0"]
        done, total = task["completed"], task["total"]
        line = f"{task['description']}: {done:,.0f}"
        if total:
            line += f"/{total:,.0f} {self.unit} ({100 * done / total:.0f}%)"
        line += f", {elapsed:.1f} s"
        if total and 0 < done < total:
            rate = done / max(elapsed, 1e-9)
            line += f", ETA {(total - done) / rate:.0f} s"
        print(line, file=self.stream, flush=True)


def _on_terminal() -> bool:
    stream = sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


@contextlib.contextmanager
def progress_bar(enabled: bool = True) -> Iterator[Progress]:
    """Yield a rich ``Progress`` showing description, bar, done/total, elapsed and ETA.

    Parameters
    ----------
    enabled : bool
        False gives a progress object that draws nothing (tests, ``--quiet``).
        Off a terminal, a :class:`PlainProgress` writes plain lines to standard error.
    """
    if enabled and not _on_terminal():
        yield PlainProgress(unit="steps")
        return
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=False,
        console=Console(stderr=True),
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

    Off a terminal, a :class:`PlainProgress` writes plain lines to standard error.
    """
    if enabled and not _on_terminal():
        yield PlainProgress(unit=unit)
        return
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
        console=Console(stderr=True),
        speed_estimate_period=120.0,
    )
    with progress:
        yield progress
