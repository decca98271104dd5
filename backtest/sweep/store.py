"""The sweep directory: finished cells keyed by hash, written atomically, found on restart.

Layout of a sweep directory::

    sweep.json                 the sweep's manifest (config, inputs and their sha256, versions)
    plan.parquet               one row per planned cell (cell_id and its coordinates)
    intervals.parquet          with an ensemble: p5 / p50 / p95 across members
    books/                     books drawn per (event, seed), reused by later runs
    cells/<cell_id>/           a finished cell: summary.parquet, steps.parquet, cell.json
    tmp/                       cells being written (emptied when a sweep starts)
    .lock                      held while a sweep runs in the directory

A sweep that fails before its first cell is finished (invalid config, missing inputs, an
unreachable scheduler) removes everything it created, the directory itself included when it
created it (:meth:`SweepStore.lock`). A sweep written outside the runs directory registers
itself with a pointer file (:func:`backtest.results.catalog.register_sweep`); no database is
shared.

A cell is written into a fresh directory under ``tmp/`` and renamed to ``cells/<cell_id>``
when every file is complete (``rename`` is atomic on POSIX), so a killed sweep leaves only
complete cells in ``cells/``; the existence of ``cells/<cell_id>`` means "finished".
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import polars as pl

from backtest.atomic import atomic_path
from backtest.errors import ConfigError, LiqbtError
from backtest.validation import check_output_dir

CELL_FILES = ("summary.parquet", "steps.parquet", "cell.json")
"""Files of a finished cell."""


class SweepLockedError(LiqbtError):
    """Another process is running a sweep in the same directory."""


class SweepStore:
    """A sweep directory (see the module docstring).

    Parameters
    ----------
    root : str or Path
        The directory; created if missing.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        self.cells = self.root / "cells"
        self.tmp = self.root / "tmp"
        self.books = self.root / "books"

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the directory's lock, and empty ``tmp/`` of what a killed run left.

        If the block raises before any cell of the directory is finished, everything this
        call created is removed again: the files and folders it added, the directory itself
        and its parent folders if it created them (and they are empty).

        Raises
        ------
        ConfigError
            If the directory cannot be created or written (a file in the way, permissions).
        SweepLockedError
            If another process holds the lock.
        """
        check_output_dir(self.root, "sweep directory")
        created = [p for p in (self.root, *self.root.parents) if not p.exists()]
        before = set(self.root.iterdir()) if self.root.is_dir() else set()
        try:
            for d in (self.root, self.cells, self.tmp, self.books):
                d.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create the sweep directory: {exc.strerror}",
                              self.root) from None
        try:
            with open(self.root / ".lock", "a+") as fh:
                try:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise SweepLockedError("another sweep is running in this directory",
                                           self.root) from None
                try:
                    self.clean_temporaries()
                    yield
                finally:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        except BaseException as exc:
            if not isinstance(exc, SweepLockedError) and not self.done_ids():
                self._remove_new(created, before)
            raise

    def _remove_new(self, created: list[Path], before: set[Path]) -> None:
        """Remove what a failed first attempt added (see :meth:`lock`)."""
        if self.root in created:
            shutil.rmtree(self.root, ignore_errors=True)
            for parent in created[1:]:
                try:
                    parent.rmdir()  # only if empty: another process may use it meanwhile
                except OSError:
                    break
            return
        for p in set(self.root.iterdir()) - before:
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)

    def clean_temporaries(self) -> int:
        """Remove half-written cells under ``tmp/``; return how many were removed."""
        removed = 0
        if self.tmp.is_dir():
            for p in self.tmp.iterdir():
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink()
                removed += 1
        return removed

    def cell_dir(self, cell_id: str) -> Path:
        """Return the directory of a finished cell (which may not exist)."""
        return self.cells / cell_id

    def is_done(self, cell_id: str) -> bool:
        """Tell whether a cell has finished."""
        return self.cell_dir(cell_id).is_dir()

    def done_ids(self) -> set[str]:
        """Return the ids of every finished cell."""
        if not self.cells.is_dir():
            return set()
        return {p.name for p in self.cells.iterdir() if p.is_dir()}

    def write_cell(self, cell_id: str, tables: dict[str, pl.DataFrame], meta: dict) -> bool:
        """Write a finished cell atomically.

        Parameters
        ----------
        cell_id : str
        tables : dict of str to polars.DataFrame
            File stem -> table (``summary``, ``steps``), written as zstd Parquet.
        meta : dict
            Written as ``cell.json``.

        Returns
        -------
        bool
            False if the cell was already there (another worker finished it first: results
            are deterministic, so the copy is dropped).
        """
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.cells.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{cell_id}.", dir=self.tmp))
        try:
            for stem, frame in tables.items():
                frame.write_parquet(tmp / f"{stem}.parquet", compression="zstd")
            (tmp / "cell.json").write_text(json.dumps(meta, indent=2, default=str))
            dest = self.cell_dir(cell_id)
            if dest.exists():
                return False
            try:
                os.replace(tmp, dest)
            except OSError:
                if dest.is_dir():  # lost a race with another worker
                    return False
                raise
            return True
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def write_json(self, name: str, data: dict) -> Path:
        """Write ``<root>/<name>`` as JSON, atomically."""
        with atomic_path(self.root / name) as tmp:
            tmp.write_text(json.dumps(data, indent=2, default=str))
        return self.root / name

    def write_parquet(self, name: str, frame: pl.DataFrame) -> Path:
        """Write ``<root>/<name>`` as Parquet, atomically."""
        with atomic_path(self.root / name) as tmp:
            frame.write_parquet(tmp, compression="zstd")
        return self.root / name

    def manifest(self) -> dict:
        """Return ``sweep.json``.

        Raises
        ------
        LiqbtError
            If the directory holds no sweep manifest.
        """
        try:
            return json.loads((self.root / "sweep.json").read_text())
        except (OSError, ValueError) as exc:
            raise LiqbtError(f"not a sweep directory ({exc})", self.root) from None
