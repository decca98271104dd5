"""Calibrated parameter files: what ``liqbt book calibrate`` writes and books are drawn from.

Layout (TOML; written whole to a temporary name, then renamed)::

    [book]          # BookParams: the generator parameters, fitted ones included
    [response]      # run config [response]: the cures, fitted ones included
    [fit]           # how it was fitted: config, policy, objective, evaluations, seconds
    [[fit.event]]   # per event: real and simulated liquidated share, ratio, in the fit
    [[leave_one_out]]  # per event: the ratio when the event was left out of the fit
    [[timing]]      # per event: when the simulated liquidations happen vs published timing

A book drawn from such a file records its path, the ``[response]`` values and the targets the
fit used (``calibration_fit_targets``) in its metadata, so ``liqbt run`` applies the fitted
cures and ``liqbt validate`` says which comparisons are in sample.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from backtest.atomic import atomic_path
from backtest.books.generate import BookParams
from backtest.engine.config import ResponseConfig
from backtest.errors import ConfigError
from backtest.targets import load_targets
from backtest.validation import describe, read_toml

#: Target measures a perp or loan fit is held against.
FIT_MEASURES = ("liquidated_notional_usd", "open_interest_before_usd", "borrowed_usd",
                "collateral_usd", "liquidated_share_of_open_interest",
                "long_share_of_liquidations")
#: Held against as well where the fit's open-interest term used it (``oi_change_in_fit``).
OI_AFTER = "open_interest_after_usd"


@dataclass
class Calibrated:
    """A calibrated parameter file, read back."""

    path: Path
    book: BookParams
    response: ResponseConfig
    fit_events: list[dict]
    fit_targets: list[str]


def _value(v) -> str:
    if hasattr(v, "item") and not isinstance(v, list):  # numpy scalars
        v = v.item()
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        if isinstance(v, float) and not math.isfinite(v):
            return '"nan"'
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return json.dumps(str(v))


def toml_table(name: str, values: dict, array: bool = False) -> list[str]:
    """Return the TOML lines of one table: ``[name]``, or ``[[name]]`` with ``array``.

    Scalars and lists; None values are left out, NaN is written as ``"nan"``.
    """
    lines = [f"[[{name}]]" if array else f"[{name}]"]
    lines += [f"{k} = {_value(v)}" for k, v in values.items() if v is not None]
    return lines + [""]


def write_calibrated(path: str | Path, book: BookParams, response: ResponseConfig, fit: dict,
                     events: list[dict], leave_one_out: list[dict], header: str,
                     timing: list[dict] | None = None) -> Path:
    """Write a calibrated parameter file atomically (see the module docstring).

    Parameters
    ----------
    path : str or Path
        Destination (``.toml``).
    book, response : BookParams, ResponseConfig
        The fitted parameters (non-default book fields and every response field are written).
    fit : dict
        Scalars describing the fit (config, policy, objective, evaluations, ...).
    events, leave_one_out, timing : list of dict
        Per-event rows (scalars only): the fit, the held-out errors, the timing checks.
    header : str
        Comment lines put at the top (the command that wrote the file).
    """
    path = Path(path)
    defaults = BookParams()
    book_values = {k: v for k, v in book.model_dump().items()
                   if v != getattr(defaults, k) and v is not None}
    lines = [f"# {line}" for line in header.splitlines()] + [""]
    lines += toml_table("book", book_values)
    lines += toml_table("response", response.model_dump())
    lines += toml_table("fit", fit)
    for row in events:
        lines += toml_table("fit.event", row, array=True)
    for row in leave_one_out:
        lines += toml_table("leave_one_out", row, array=True)
    for row in timing or []:
        lines += toml_table("timing", row, array=True)
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines))
    return path


def read_calibrated(path: str | Path, validation: str | Path | None = None) -> Calibrated:
    """Read a calibrated parameter file.

    Raises
    ------
    ConfigError
        Unreadable file or an invalid ``[book]`` / ``[response]`` field (named).
    """
    return _calibrated(read_toml(path), path, validation)


def _calibrated(raw: dict, path, validation) -> Calibrated:
    try:
        book = BookParams.model_validate(raw.get("book", {}))
        response = ResponseConfig.model_validate(raw.get("response", {}))
    except ValidationError as exc:
        raise ConfigError(describe(exc), path) from None
    fit = raw.get("fit", {})
    events = fit.get("event", [])
    return Calibrated(Path(path), book, response, events,
                      fit_targets(events, validation, fit.get("held_out_targets", [])))


def held_out_ratios(path: str | Path) -> dict[tuple[str, str, str], float]:
    """Return the leave-one-out ratio a calibrated file records per (event, venue, asset).

    Each is the simulated over the real liquidated share when the event was left out of the
    fit (``[[leave_one_out]]``, :mod:`backtest.calibration.run`): the figure to quote for an
    event the full fit used.

    Parameters
    ----------
    path : str or Path
        A calibrated parameter file.

    Returns
    -------
    dict
        ``{(event, venue, asset): ratio}``; empty when the file is missing or unreadable, or
        records no leave-one-out rows (a loan-state fit, a single event).
    """
    try:
        raw = read_toml(path)
    except ConfigError:
        return {}
    out = {}
    for row in raw.get("leave_one_out", []):
        if isinstance(row, dict) and isinstance(row.get("ratio"), int | float):
            out[(str(row.get("event")), str(row.get("venue")), str(row.get("asset")))] = \
                float(row["ratio"])
    return out


def fit_targets(events: list[dict], validation: str | Path | None = None,
                held_out: tuple[str, ...] | list[str] = ()) -> list[str]:
    """Return the ``"<event>/<id>"`` of every target a fit over ``events`` was held against.

    A row that lists its ``targets`` (ids, as a loan-state fit writes,
    :mod:`backtest.calibration.loan_state`) contributes those; any other row every target of
    its event, venue and asset measuring one of :data:`FIT_MEASURES`, and its open interest
    after the event when the row says the fit used it (``oi_change_in_fit``). None of
    ``held_out`` (the file's ``[fit] held_out_targets``: figures the fit never read) is
    among them.
    """
    keys = {(e.get("event"), e.get("venue"), e.get("asset")) for e in events
            if e.get("in_fit") and "targets" not in e}
    oi = {(e.get("event"), e.get("venue"), e.get("asset")) for e in events
          if e.get("in_fit") and "targets" not in e and e.get("oi_change_in_fit")}
    named = {(e.get("event"), i) for e in events if e.get("in_fit") for i in e.get("targets", [])}
    return sorted(t.key for t in load_targets(validation) if t.key not in held_out and (
                  (t.event, t.id) in named
                  or ((t.event, t.venue, t.asset) in keys and t.measure in FIT_MEASURES)
                  or ((t.event, t.venue, t.asset) in oi and t.measure == OI_AFTER)))


def size_measure(params: BookParams) -> str:
    """Return the target measure a book sized to a venue is sized to.

    Parameters
    ----------
    params : BookParams
        The book's generator parameters (``loan_fraction``, ``size_basis``).

    Returns
    -------
    str
        ``open_interest_before_usd`` for a book holding perps; for a loans-only book its debt,
        ``borrowed_usd`` (the protocol's borrowings, USD), or with ``size_basis =
        "collateral"`` its collateral, ``collateral_usd`` (a reserve's deposits, USD). The
        same level is the denominator of a calibration's liquidated share.
    """
    if params.loan_fraction < 1.0:
        return "open_interest_before_usd"
    return "collateral_usd" if params.size_basis == "collateral" else "borrowed_usd"


def venue_size_usd(event: str, venue: str, asset: str, measure: str,
                   validation: str | Path | None = None) -> tuple[float, list[str]]:
    """Return the venue's figure a book is sized to at the event's start (:func:`size_measure`).

    Returns
    -------
    float, list of str
        The geometric middle of the union of the matching ``measure`` targets
        (``data/validation``), USD; and those targets' ``"<event>/<id>"`` (recorded in the
        book's ``sized_to_targets``).

    Raises
    ------
    ConfigError
        No target gives the figure (the message says how to size the book by hand).
    """
    found = [t for t in load_targets(validation)
             if t.event == event and t.venue == venue and t.asset == asset
             and t.measure == measure]
    if not found:
        raise ConfigError(f"no '{measure}' target for {venue} {asset} in event {event} "
                          "(data/validation): give the book's size with --size-usd")
    low, high = min(t.low for t in found), max(t.high for t in found)
    return math.sqrt(low * high), sorted(t.key for t in found)


def calibrated_params(path: str | Path | None, event: str, asset: str,
                      size_usd: float | None = None, validation: str | Path | None = None,
                      represents: str | None = None) -> tuple[BookParams, dict[str, str]]:
    """Return generator parameters for an event's book, sized to the venue, and metadata to record.

    Parameters
    ----------
    path : str or Path or None
        A calibrated file (``[book]`` table), a plain generator parameter file, or None.
    event, asset : str
        Event key and base asset (for the venue's size).
    size_usd : float, optional
        Explicit size, USD; else the target figure when the parameters name a venue
        (``represents``), else unsized.
    validation : str or Path, optional
        Targets directory.
    represents : str, optional
        The venue or protocol the book stands for, instead of the parameters' own
        (``represents``): it is recorded as the book's ``venue`` and sizes it.

    Returns
    -------
    BookParams, dict
        Parameters, and metadata (``calibration``, ``response``, ``calibration_fit_targets``
        for a calibrated file; ``sized_to_targets``, a JSON list of ``"<event>/<id>"``, when
        sized to a venue's targets).

    Raises
    ------
    ConfigError
        Invalid file. (A venue without a size figure gives an unsized book whose metadata
        ``unsized`` says why.)
    """
    from backtest.books.event import load_book_params

    meta: dict[str, str] = {}
    raw = read_toml(path) if path is not None else {}
    if isinstance(raw.get("book"), dict):
        cal = _calibrated(raw, path, validation)
        params = cal.book
        meta = {"calibration": str(path), "response": cal.response.model_dump_json(),
                "calibration_fit_targets": json.dumps(cal.fit_targets)}
    else:
        params = load_book_params(path)
    if represents is not None:
        params = params.model_copy(update={"represents": represents})
    if size_usd is None and params.size_usd is None and params.represents:
        try:
            size_usd, sized_to = venue_size_usd(event, params.represents, asset,
                                                size_measure(params), validation)
            meta["sized_to_targets"] = json.dumps(sized_to)
        except ConfigError as exc:  # drawn unsized, and the book says why
            meta["unsized"] = str(exc)
    if size_usd is not None:
        params = params.model_copy(update={"size_usd": size_usd})
    return params, meta

