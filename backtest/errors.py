"""User-facing errors.

Every error a user can cause (bad file, bad config field, bad book row) is raised as a
:class:`LiqbtError` subclass whose message names the file, row or field and what is wrong.
The CLI prints the message and exits non-zero, without a traceback.
"""

from __future__ import annotations

from pathlib import Path


class LiqbtError(Exception):
    """Base class of errors caused by user input; the message is shown as-is.

    Parameters
    ----------
    message : str
        What is wrong, in plain words.
    path : str or Path, optional
        The file the problem is in; prefixed to the message.
    """

    def __init__(self, message: str, path: str | Path | None = None):
        self.path = None if path is None else Path(path)
        self.detail = message
        super().__init__(f"{self.path}: {message}" if self.path is not None else message)


class TapeError(LiqbtError):
    """A tape (price series) file is unreadable or violates the tape schema."""


class BookError(LiqbtError):
    """A book (account population) file is unreadable or violates the book schema."""


class ConfigError(LiqbtError):
    """A run config, policy file or event catalog is invalid."""


class CatalogError(LiqbtError):
    """The results catalog or a run directory is missing or inconsistent."""
