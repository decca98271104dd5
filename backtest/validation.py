"""Turn pydantic validation errors into one-line messages that name the file and field."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from backtest.errors import ConfigError


def describe(exc: ValidationError, prefix: str = "") -> str:
    """Return a readable summary of a pydantic ``ValidationError``.

    Parameters
    ----------
    exc : ValidationError
        The error raised by ``model_validate``.
    prefix : str
        Text put before the field list, e.g. ``"event 'ftx-2022': "``.

    Returns
    -------
    str
        ``"field 'a.b': message; field 'c': message"``.
    """
    parts = []
    for err in exc.errors():
        loc = ""
        for part in err["loc"]:
            loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else str(part))
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field (misspelled?)"
        elif err["type"] == "missing":
            msg = "required field is missing"
        parts.append(f"field '{loc}': {msg}" if loc else msg)
    return prefix + "; ".join(parts)


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file, raising :class:`ConfigError` naming the file on any problem.

    Raises
    ------
    ConfigError
        If the file is missing, unreadable or not valid TOML.
    """
    path = Path(path)
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError("file not found", path) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", path) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", path) from None
