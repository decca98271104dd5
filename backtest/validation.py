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
