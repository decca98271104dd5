"""Draw a synthetic book for a catalogued event from the tape store (CLI and sweeps)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import ValidationError

from backtest import paths
from backtest.books.generate import BookParams, generate_book
from backtest.books.schema import Book
from backtest.errors import ConfigError
from backtest.events import get_event
from backtest.tapes import TapeStore
from backtest.validation import describe, read_toml


def load_book_params(path: str | Path | None) -> BookParams:
    """Return generator parameters from a TOML file (defaults when ``path`` is None).

    The file is either a table of generator fields or a calibrated file written by
    ``liqbt book calibrate`` (its ``[book]`` table; :mod:`backtest.calibration.fitted`).

    Raises
    ------
    ConfigError
        Unreadable file or an invalid / unknown field (the message names file and field).
    """
    if path is None:
        return BookParams()
    try:
        raw = read_toml(path)
        return BookParams.model_validate(raw["book"] if isinstance(raw.get("book"), dict)
                                         else raw)
    except ValidationError as exc:
        raise ConfigError(describe(exc), path) from None


def book_for_event(accounts: int, event: str, seed: int, symbol: str | None = None,
                   venue: str | None = None, market: str | None = None,
                   interval: str | None = None, params: BookParams | None = None,
                   store: str | Path | None = None, events: str | Path | None = None,
                   start: datetime | None = None) -> Book:
    """Generate a book of positions open at an event's start, on the store's tape.

    Parameters
    ----------
    accounts : int
        Number of accounts (> 0).
    event : str
        Event key of the catalog.
    seed : int
        Random seed.
    symbol : str, optional
        Asset; default the event's first symbol.
    venue, market, interval : str, optional
        Tape filters.
    params : BookParams, optional
        Generator parameters.
    store, events : str or Path, optional
        Tape store and event catalog.
    start : datetime, optional
        Window start overriding the event's (UTC).

    Returns
    -------
    Book
        Metadata records symbol, event, tape path, seed and generator parameters.

    Raises
    ------
    ConfigError, TapeError, BookError
        Unknown event, no tape covering the lookback and window, too few survivors.
    """
    ev = get_event(event, events)
    params = params or BookParams()
    window_start = start or ev.start
    sym = symbol or ev.symbols[0]
    lookback = window_start - timedelta(days=params.lookback_days)
    tape = TapeStore(paths.tape_store(store)).resolve(
        sym, lookback.astimezone(UTC), max(ev.end, window_start), venue, market, interval)
    a = tape.arrays()
    return generate_book(
        accounts, a["timestamp"], a["close"], a["low"], a["high"], window_start, seed, params,
        meta={"symbol": tape.meta.symbol, "event": ev.key, "tape": str(tape.path)},
        volume=a["volume"], window_end=ev.end if start is None else None,
    )
