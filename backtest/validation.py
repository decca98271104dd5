"""Check user input before any work: one-line messages that name the file and field.

Pydantic validation errors become ``field 'a.b': message``; TOML files that are missing,
directories, binary or not UTF-8 are refused naming the file; input files and output
locations are checked up front (:func:`check_input_file`, :func:`check_output_dir`,
:func:`check_output_file`) so that a run never simulates for minutes and then fails to read
or write.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from backtest.errors import ConfigError, LiqbtError


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
        If the file is missing, a directory, unreadable, binary or not UTF-8 text, or not
        valid TOML.
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError("is a directory, expected a TOML file", path)
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError("file not found", path) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not a TOML text file: byte {exc.object[exc.start:exc.start + 1]!r} "
                          f"at offset {exc.start} is not UTF-8 (a binary file?)", path) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", path) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", path) from None


def check_input_file(path: str | Path, what: str,
                     error: type[LiqbtError] = ConfigError) -> Path:
    """Refuse an input that is missing, a directory or unreadable; return it as a Path.

    Parameters
    ----------
    path : str or Path
    what : str
        What the file is, for the message (``"book"``, ``"tape"``, ...).
    error : type of LiqbtError
        The error raised.

    Raises
    ------
    LiqbtError
        ``error``, naming the file.
    """
    path = Path(path)
    if not path.exists():
        raise error(f"{what} file not found", path)
    if path.is_dir():
        raise error(f"the {what} is a directory, expected a file", path)
    if not path.is_file():
        raise error(f"the {what} is not a regular file", path)
    if not os.access(path, os.R_OK):
        raise error(f"the {what} file is not readable (permissions)", path)
    return path


def check_output_dir(path: str | Path, what: str) -> Path:
    """Refuse a directory that cannot be written, or created, before any work is done.

    Nothing is created. The first existing ancestor must be a writable directory (not a
    file).

    Parameters
    ----------
    path : str or Path
        Directory to write into (created later if missing).
    what : str
        What it is, for the message (``"runs directory"``, ...).

    Raises
    ------
    ConfigError
        Naming the directory and the ancestor at fault.
    """
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise ConfigError(f"the {what} is a file, not a directory", path)
        if not os.access(path, os.W_OK | os.X_OK):
            raise ConfigError(f"the {what} is not writable (permissions)", path)
        return path
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"cannot create the {what}: {parent} is a file, not a "
                                  "directory", path)
            if not os.access(parent, os.W_OK | os.X_OK):
                raise ConfigError(f"cannot create the {what}: {parent} is not writable", path)
            return path
    return path


def check_output_file(path: str | Path, what: str) -> Path:
    """Refuse an output file that is a directory or whose folder cannot be written.

    Raises
    ------
    ConfigError
        Naming the file and the problem.
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"the {what} is a directory, expected a file name", path)
    try:
        check_output_dir(path.parent, f"folder of the {what}")
    except ConfigError as exc:
        raise ConfigError(exc.detail, path) from None
    return path


def apply_overrides(raw: dict[str, Any], overrides: list[str] | None,
                    path: str | Path) -> dict[str, Any]:
    """Apply ``KEY=VALUE`` overrides (dotted keys, TOML values) to a parsed TOML document.

    ``event=luna-2022`` and ``tape.interval="5m"`` both set strings (a value that is not valid
    TOML is taken as a string); ``insurance_fund.initial_balance_usd=1e7`` sets a number and
    ``policies=["hard","partial"]`` a list.

    Raises
    ------
    ConfigError
        An override without ``=`` or with an empty key; names ``path``.
    """
    out = dict(raw)
    for item in overrides or []:
        key, sep, text = item.partition("=")
        keys = key.strip().split(".")
        if not sep or not all(keys):
            raise ConfigError(f"override {item!r}: expected KEY=VALUE, e.g. event=may-2021",
                              path)
        try:
            value = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text
        holder = out
        for k in keys[:-1]:
            child = holder.get(k)
            holder[k] = dict(child) if isinstance(child, dict) else {}
            holder = holder[k]
        holder[keys[-1]] = value
    return out
