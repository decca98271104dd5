"""Write files and directories so that a crash never leaves half-written output.

Everything is written under a temporary name in the destination's directory and renamed
into place (``os.replace``, atomic on POSIX) only once complete.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


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
    try:
        yield tmp
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
