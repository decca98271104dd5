"""Write files and directories so that a crash never leaves half-written output.

Everything is written under a temporary name in the destination's directory and renamed
into place (``os.replace``, atomic on POSIX) only once complete.

A temporary directory (``.<name>.<random>.tmp``) holds a lock file, :data:`WRITING`, locked
(``flock``) by its writer until the rename. A process killed while writing leaves the folder
behind with the lock free: :func:`remove_stale_temporaries` removes such folders, and never one
whose writer is alive (Linux emulates ``flock`` over NFS with byte-range locks, so this holds
on a shared filesystem too).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

WRITING = ".writing"
"""Lock file inside a temporary directory, held by its writer."""

STALE_SECONDS = 3600.0
"""A temporary directory without a lock file is taken for abandoned once this old (s)."""


@contextlib.contextmanager
def atomic_path(dest: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``dest``; rename it to ``dest`` on success.

    Parameters
    ----------
    dest : str or Path
        Final file path. Its parent directory is created if missing.

    Yields
    ------
    Path
        Temporary path to write to. On an exception it is removed and ``dest`` is untouched.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, dest)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(dest: str | Path) -> Iterator[Path]:
    """Yield a temporary directory next to ``dest``; rename it to ``dest`` on success.

    Parameters
    ----------
    dest : str or Path
        Final directory path; must not exist yet.

    Yields
    ------
    Path
        Temporary directory to fill. On an exception it is removed and ``dest`` never appears.

    Raises
    ------
    FileExistsError
        If ``dest`` already exists.
    """
    dest = Path(dest)
    if dest.exists():
        raise FileExistsError(f"{dest} already exists")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    lock = open(tmp / WRITING, "w")  # noqa: SIM115 - held until the rename
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        yield tmp
        os.replace(tmp, dest)
        (dest / WRITING).unlink(missing_ok=True)
    finally:
        lock.close()
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def is_abandoned(tmp: str | Path, stale_seconds: float = STALE_SECONDS) -> bool:
    """Tell whether a temporary directory's writer is gone.

    True when its :data:`WRITING` lock file can be locked (the writer died), or when it has
    no lock file and was last changed more than ``stale_seconds`` ago.
    """
    tmp = Path(tmp)
    try:  # read-write: over NFS an exclusive lock needs a writable descriptor
        fh = os.fdopen(os.open(tmp / WRITING, os.O_RDWR), "r+")
    except FileNotFoundError:
        try:
            return time.time() - tmp.stat().st_mtime > stale_seconds
        except OSError:
            return False
    except OSError:
        return False
    with fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        return True


def remove_stale_temporaries(parent: str | Path, stale_seconds: float = STALE_SECONDS
                             ) -> list[Path]:
    """Remove the temporary directories (``.*.tmp``) in ``parent`` left by killed writers.

    Parameters
    ----------
    parent : str or Path
        Directory to clean (e.g. the runs directory); a missing one is fine.
    stale_seconds : float
        Age (s) after which a temporary directory without a lock file is removed.

    Returns
    -------
    list of Path
        The directories removed.
    """
    parent = Path(parent)
    removed = []
    if not parent.is_dir():
        return removed
    for d in parent.iterdir():
        if d.name.startswith(".") and d.name.endswith(".tmp") and d.is_dir() \
                and is_abandoned(d, stale_seconds):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed
