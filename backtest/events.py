"""The catalog of named crash windows (``data/events.toml``), so ``--event ftx-2022`` works.

Each TOML table is one event::

    [may-2021]
    name = "May 2021 crash"
    start = 2021-05-19T00:00:00Z
    end = 2021-05-20T00:00:00Z        # exclusive
    symbols = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
    description = "..."

Times must carry a UTC offset (``Z``) or be plain dates (midnight UTC). Unknown fields are
rejected, so a typo never silently drops a setting.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from backtest import paths
from backtest.errors import ConfigError

_KEY_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_SYMBOL_RE = re.compile(r"^[A-Z0-9.]+/[A-Z0-9]+$")


@dataclass(frozen=True)
class Event:
    """A named crash window.

    Attributes
    ----------
    key : str
        Catalog key (``"ftx-2022"``), lower case, digits and ``-``.
    name : str
        Human-readable title.
    start : datetime
        Window start, timezone-aware UTC, inclusive.
    end : datetime
        Window end, timezone-aware UTC, exclusive (after ``start``).
    symbols : tuple of str
        ``BASE/QUOTE`` pairs the event concerns, in catalog order.
    description : str
        One or two factual sentences.
    """

    key: str
    name: str
    start: datetime
    end: datetime
    symbols: tuple[str, ...]
    description: str


def utc_time(value: object) -> datetime:
    """Return a TOML date-time (or date: its midnight) as a UTC ``datetime``.

    What the event catalog and the target files accept for their times.

    Raises
    ------
    ValueError
        A date-time without its offset (``Z``), or not a date-time at all; pydantic names the
        field.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(
                "must be a UTC time with an offset, e.g. 2021-05-19T00:00:00Z (no Z given)")
        return value.astimezone(UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(0), tzinfo=UTC)
    raise ValueError("must be a TOML date-time such as 2021-05-19T00:00:00Z")


class _EventModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)

    name: str
    start: datetime
    end: datetime
    symbols: list[str]
    description: str

    @field_validator("start", "end", mode="before")
    @classmethod
    def _utc(cls, value: object) -> object:
        return utc_time(value)

    @field_validator("name", "description")
    @classmethod
    def _non_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("must list at least one symbol")
        for sym in value:
            if not _SYMBOL_RE.match(sym):
                raise ValueError(f"{sym!r} is not BASE/QUOTE in upper case, e.g. BTC/USDT")
        if len(set(value)) != len(value):
            raise ValueError("lists a symbol twice")
        return value

    @model_validator(mode="after")
    def _order(self) -> _EventModel:
        if self.end <= self.start:
            raise ValueError(f"end {self.end.isoformat()} is not after start "
                             f"{self.start.isoformat()}")
        return self


def _field_of(error: dict) -> str:
    loc = [str(p) for p in error.get("loc", ()) if not isinstance(p, int)]
    return loc[0] if loc else "end"


def load_events(path: str | Path | None = None) -> dict[str, Event]:
    """Load and validate the event catalog.

    Parameters
    ----------
    path : str or Path, optional
        TOML file; default :func:`backtest.paths.events_file` (``$LIQBT_EVENTS`` or
        ``data/events.toml``).

    Returns
    -------
    dict of str to Event
        Events by key, in file order.

    Raises
    ------
    ConfigError
        ``FILE: event 'KEY': field 'FIELD': PROBLEM`` for the first invalid field; also for an
        unreadable file, invalid TOML or an invalid key.
    """
    path = paths.events_file(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the event catalog: {exc.strerror or exc}", path) from None
    except UnicodeDecodeError:
        raise ConfigError("the event catalog is not UTF-8 text (a binary file?)", path) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML: {exc}", path) from None
    events: dict[str, Event] = {}
    for key, table in data.items():
        if not _KEY_RE.match(key):
            raise ConfigError(f"event key {key!r}: use lower-case letters, digits and '-'", path)
        if not isinstance(table, dict):
            raise ConfigError(f"event '{key}': expected a table [{key}], got a value", path)
        try:
            model = _EventModel.model_validate(table)
        except ValidationError as exc:
            err = exc.errors()[0]
            msg = err["msg"].removeprefix("Value error, ")
            raise ConfigError(f"event '{key}': field '{_field_of(err)}': {msg}", path) from None
        events[key] = Event(key, model.name, model.start, model.end, tuple(model.symbols),
                            model.description)
    return events


def get_event(key: str, path: str | Path | None = None) -> Event:
    """Return one event of the catalog.

    Parameters
    ----------
    key : str
        Event key, e.g. ``"ftx-2022"``.
    path : str or Path, optional
        Catalog file (see :func:`load_events`).

    Returns
    -------
    Event

    Raises
    ------
    ConfigError
        If the catalog is invalid or has no such key (the message lists the known keys).
    """
    events = load_events(path)
    if key not in events:
        known = ", ".join(events) or "none"
        raise ConfigError(f"unknown event {key!r}; known events: {known}",
                          paths.events_file(path))
    return events[key]
