"""Real figures a run is held against: ``data/validation/<event>.toml``, validated on load.

One file per catalogued event (``data/events.toml``) with published figures::

    event = "may-2021"                  # key in data/events.toml; the file is named after it
    [[target]]
    id = "market-btc-liquidated"        # unique within the file
    scope = "market"                    # venue | protocol | market
    venue = "all-cex"                   # exchange or protocol id: binance, aave-v2, all-cex ...
    product = "perp"                    # perp | loan
    asset = "BTC"                       # base asset, "all", or a joint "BTC+ETH"
    window_start = 2021-05-19T00:00:00Z
    window_end = 2021-05-20T00:00:00Z   # exclusive
    measure = "liquidated_notional_usd"
    low = 3.57e9                        # a range; low == high for a single figure
    high = 3.57e9
    unit = "USD"                        # USD | count | fraction, fixed by the measure
    source = "https://..."              # the address it was read from
    quality = "aggregator"              # primary | secondary | aggregator
    note = "..."                        # how it was read, caveats

Rules (each broken rule is a :class:`~backtest.errors.ConfigError` naming the file and the
target): unknown fields, an unknown measure or a unit that does not fit it, ``low > high``,
negative figures, fractions above 1, non-integer counts, an unknown event key, a window that
is empty or reaches outside the event's window, a duplicate ``id``, a source that is not an
``http(s)`` address.

The directory is, in order: the ``directory`` argument (a CLI option), ``$LIQBT_VALIDATION``,
``data/validation`` in the working directory, else the source tree's ``data/validation``.

Why over 400 lines: it is the schema of a validation file with its loader and the error
messages that name the file, row and field.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from backtest.errors import ConfigError
from backtest.events import Event, load_events, utc_time

_SOURCE_ROOT = Path(__file__).resolve().parent.parent
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_ASSET_RE = re.compile(r"^(all|[A-Za-z0-9]+(\+[A-Za-z0-9]+)*)$")

MEASURES: dict[str, str] = {
    "liquidated_notional_usd": "USD",
    "liquidated_long_usd": "USD",
    "liquidated_short_usd": "USD",
    "open_interest_before_usd": "USD",
    "open_interest_after_usd": "USD",
    "borrowed_usd": "USD",
    "borrowed_later_usd": "USD",
    "borrowed_after_usd": "USD",
    "collateral_usd": "USD",
    "accounts_liquidated": "count",
    "liquidations_count": "count",
    "bad_debt_usd": "USD",
    "bad_debt_accounts": "count",
    "insurance_fund_drawn_usd": "USD",
    "insurance_fund_before_usd": "USD",
    "insurance_fund_after_usd": "USD",
    "adl_notional_usd": "USD",
    "adl_accounts": "count",
    "adl_fills": "count",
    "zero_bid_collateral_usd": "USD",
    "borrower_deposits_usd": "USD",
    "liquidated_share_of_open_interest": "fraction",
    "long_share_of_liquidations": "fraction",
}
"""Known measures and the unit each must be stated in.

``liquidated_notional_usd`` is the position notional closed by liquidation (perps) or the
collateral value seized (loans; say which in the note); ``borrowed_usd`` is the protocol's
outstanding borrowings at ``window_start`` (for sizing lending books), ``borrowed_later_usd`` a
reading taken after the window (its date in the note: context, never used for sizing),
``borrowed_after_usd`` the borrowings at ``window_end`` (repayments and liquidations during the
window taken off, new loans added: what a run's loan debt is at the window's last step);
``accounts_liquidated`` counts accounts (traders, vaults), ``liquidations_count`` counts
liquidation events or fills;
``zero_bid_collateral_usd`` is collateral sold in auctions for a zero bid (Maker 2020);
``borrower_deposits_usd`` is new money borrowers or traders bring to save their positions
(collateral top-ups, repayments, added margin: the runs' cures, ``steps.cure_usd``)."""


@dataclass(frozen=True)
class Target:
    """One published figure for one event, with its range, window and source.

    Attributes
    ----------
    event : str
        Event key in ``data/events.toml``.
    id : str
        Identifier, unique within the event's file.
    scope : {"venue", "protocol", "market"}
        One exchange, one lending protocol, or all venues (an aggregator's total).
    venue : str
        Exchange or protocol id (``binance``, ``aave-v2``, ``all-cex`` ...).
    product : {"perp", "loan"}
        Perpetual futures or collateralised loans.
    asset : str
        Base asset (``BTC``) or ``"all"``.
    window_start, window_end : datetime
        The figure's window, timezone-aware UTC, end exclusive, inside the event's window.
    measure : str
        One of :data:`MEASURES`.
    low, high : float
        The range in ``unit`` (USD, a count, or a fraction in [0, 1]); ``low <= high``.
    unit : {"USD", "count", "fraction"}
    source : str
        Address the figure was read from.
    quality : {"primary", "secondary", "aggregator"}
        ``primary``: the venue's or protocol's own report or chain data; ``secondary``: a
        reprint; ``aggregator``: an aggregator's total (these run low).
    note : str
        How it was read, caveats.
    file : Path
        The TOML file it came from.
    """

    event: str
    id: str
    scope: str
    venue: str
    product: str
    asset: str
    window_start: datetime
    window_end: datetime
    measure: str
    low: float
    high: float
    unit: str
    source: str
    quality: str
    note: str
    file: Path

    @property
    def key(self) -> str:
        """``"<event>/<id>"``, the form used in book metadata ``calibration_fit_targets``."""
        return f"{self.event}/{self.id}"

    @property
    def middle(self) -> float:
        """Geometric middle of the range, ``sqrt(low * high)`` (``low`` when either is 0)."""
        if self.low <= 0.0 or self.high <= 0.0:
            return self.low
        return math.sqrt(self.low * self.high)


class _TargetModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)

    id: str
    scope: Literal["venue", "protocol", "market"]
    venue: str
    product: Literal["perp", "loan"]
    asset: str
    window_start: datetime
    window_end: datetime
    measure: str
    low: float
    high: float
    unit: Literal["USD", "count", "fraction"]
    source: str
    quality: Literal["primary", "secondary", "aggregator"]
    note: str

    @field_validator("window_start", "window_end", mode="before")
    @classmethod
    def _times(cls, value: object) -> object:
        return utc_time(value)

    @field_validator("id", "venue")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _ID_RE.match(value):
            raise ValueError(f"{value!r}: use lower-case letters, digits and '-'")
        return value

    @field_validator("asset")
    @classmethod
    def _asset(cls, value: str) -> str:
        if not _ASSET_RE.match(value):
            raise ValueError(f"{value!r} is not a base asset such as BTC (or BTC+ETH for a "
                             "joint figure), or 'all'")
        return value

    @field_validator("measure")
    @classmethod
    def _measure(cls, value: str) -> str:
        if value not in MEASURES:
            raise ValueError(f"unknown measure {value!r}; known: {', '.join(MEASURES)}")
        return value

    @field_validator("low", "high")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value) or value < 0.0:
            raise ValueError(f"{value!r} is not a finite figure >= 0")
        return value

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        if not re.match(r"^https?://\S+$", value.strip()):
            raise ValueError(f"{value!r} is not an http(s) address")
        return value.strip()

    @field_validator("note")
    @classmethod
    def _note(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must say how the figure was read")
        return " ".join(value.split())

    @model_validator(mode="after")
    def _consistent(self) -> _TargetModel:
        expected = MEASURES[self.measure]
        if self.unit != expected:
            raise ValueError(f"field 'unit': measure {self.measure!r} is stated in "
                             f"{expected!r}, not {self.unit!r}")
        if self.low > self.high:
            raise ValueError(f"field 'low': low {self.low:g} is above high {self.high:g}")
        if self.unit == "fraction" and self.high > 1.0:
            raise ValueError(f"field 'high': a fraction must be in [0, 1], got {self.high:g}")
        if self.unit == "count" and (self.low != int(self.low) or self.high != int(self.high)):
            raise ValueError("field 'low': a count must be a whole number")
        if self.window_end <= self.window_start:
            raise ValueError(f"field 'window_end': {self.window_end.isoformat()} is not "
                             f"after window_start {self.window_start.isoformat()}")
        return self


def _problem(err: dict) -> str:
    msg = err["msg"].removeprefix("Value error, ")
    loc = [str(p) for p in err.get("loc", ()) if not isinstance(p, int)]
    if loc:
        if err.get("type") == "extra_forbidden":
            return f"unknown field '{loc[0]}'"
        if err.get("type") == "missing":
            return f"field '{loc[0]}': missing"
        return f"field '{loc[0]}': {msg}"
    return msg


def validation_dir(explicit: str | Path | None = None) -> Path:
    """Return the directory of target files.

    Parameters
    ----------
    explicit : str or Path, optional
        A directory given as an option; wins over everything else.

    Returns
    -------
    Path
        ``explicit``, else ``$LIQBT_VALIDATION``, else ``data/validation`` in the working
        directory, else the source tree's ``data/validation``.
    """
    if explicit is not None:
        return Path(explicit)
    if os.environ.get("LIQBT_VALIDATION"):
        return Path(os.environ["LIQBT_VALIDATION"])
    local = Path("data/validation")
    if not local.exists() and (_SOURCE_ROOT / "data" / "validation").exists():
        return _SOURCE_ROOT / "data" / "validation"
    return local


def load_file(path: str | Path, events: dict[str, Event]) -> list[Target]:
    """Load and validate one target file.

    Parameters
    ----------
    path : str or Path
        ``<event>.toml``.
    events : dict of str to Event
        The event catalog (:func:`backtest.events.load_events`).

    Returns
    -------
    list of Target
        In file order.

    Raises
    ------
    ConfigError
        ``FILE: target 'ID': PROBLEM`` for the first invalid target, or ``FILE: PROBLEM`` for
        an unreadable file, invalid TOML, an unknown event key or a misnamed file.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the target file: {exc.strerror or exc}", path) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML: {exc}", path) from None
    unknown = sorted(set(data) - {"event", "target"})
    if unknown:
        raise ConfigError(f"unknown top-level field '{unknown[0]}' (expected 'event' and "
                          "[[target]] tables)", path)
    event_key = data.get("event")
    if not isinstance(event_key, str):
        raise ConfigError("field 'event': missing; name the event key, e.g. event = \"may-2021\"",
                          path)
    if event_key not in events:
        raise ConfigError(f"field 'event': unknown event {event_key!r}; known events: "
                          f"{', '.join(events) or 'none'}", path)
    if path.stem != event_key:
        raise ConfigError(f"the file for event {event_key!r} must be named {event_key}.toml",
                          path)
    event = events[event_key]
    tables = data.get("target", [])
    if not isinstance(tables, list) or not tables:
        raise ConfigError("no [[target]] tables", path)
    out: list[Target] = []
    seen: set[str] = set()
    for n, table in enumerate(tables, start=1):
        label = f"'{table.get('id')}'" if isinstance(table, dict) and table.get("id") else f"#{n}"
        if not isinstance(table, dict):
            raise ConfigError(f"target {label}: expected a [[target]] table", path)
        try:
            model = _TargetModel.model_validate(table)
        except ValidationError as exc:
            raise ConfigError(f"target {label}: {_problem(exc.errors()[0])}", path) from None
        if model.id in seen:
            raise ConfigError(f"target '{model.id}': id used twice in this file", path)
        seen.add(model.id)
        if model.window_start < event.start or model.window_end > event.end:
            raise ConfigError(
                f"target '{model.id}': window {model.window_start.isoformat()} .. "
                f"{model.window_end.isoformat()} reaches outside event '{event_key}' "
                f"({event.start.isoformat()} .. {event.end.isoformat()})", path)
        out.append(Target(event_key, model.id, model.scope, model.venue, model.product,
                          model.asset, model.window_start, model.window_end, model.measure,
                          float(model.low), float(model.high), model.unit, model.source,
                          model.quality, model.note, path))
    return out


def load_targets(directory: str | Path | None = None,
                 events_path: str | Path | None = None) -> list[Target]:
    """Load every ``*.toml`` target file of a directory.

    Parameters
    ----------
    directory : str or Path, optional
        See :func:`validation_dir`.
    events_path : str or Path, optional
        Event catalog (see :func:`backtest.events.load_events`).

    Returns
    -------
    list of Target
        By file name, then file order. Empty when the directory holds no files.

    Raises
    ------
    ConfigError
        For the first invalid file or target (see :func:`load_file`), or when ``directory``
        exists but is not a directory.
    """
    root = validation_dir(directory)
    if not root.exists():
        return []
    if not root.is_dir():
        raise ConfigError("is not a directory of target files", root)
    events = load_events(events_path)
    out: list[Target] = []
    for path in sorted(root.glob("*.toml")):
        out.extend(load_file(path, events))
    return out


def targets_for(event: str, venue: str | None = None, asset: str | None = None,
                product: str | None = None, measure: str | None = None,
                targets: list[Target] | None = None,
                directory: str | Path | None = None) -> list[Target]:
    """Return the targets of one event, optionally narrowed.

    Parameters
    ----------
    event : str
        Event key.
    venue, asset, product, measure : str, optional
        Exact matches when given (``asset="BTC"`` does not match ``"all"`` targets).
    targets : list of Target, optional
        Already loaded targets; default :func:`load_targets` (``directory``).
    directory : str or Path, optional
        See :func:`validation_dir`.

    Returns
    -------
    list of Target
        In load order; empty when nothing matches.
    """
    pool = load_targets(directory) if targets is None else targets
    return [t for t in pool
            if t.event == event
            and (venue is None or t.venue == venue)
            and (asset is None or t.asset == asset)
            and (product is None or t.product == product)
            and (measure is None or t.measure == measure)]


def input_target(reference: str, measure: str, event: str | None, field: str,
                 directory: str | Path | None = None,
                 events_path: str | Path | None = None) -> Target:
    """Return the target a run input is taken from (a config's ``..._from`` field).

    Parameters
    ----------
    reference : str
        ``"<event>/<id>"``, or an ``id`` of the run's own event.
    measure : str
        The measure the input must be (e.g. ``insurance_fund_before_usd``).
    event : str or None
        The run's event key.
    field : str
        The config field, named in errors (``insurance_fund.initial_balance_from``).
    directory, events_path : str or Path, optional
        See :func:`load_targets`.

    Returns
    -------
    Target

    Raises
    ------
    ConfigError
        If no target has that key, or it is of another measure.
    """
    key = reference if "/" in reference else f"{event}/{reference}"
    found = [t for t in load_targets(directory, events_path) if t.key == key]
    if not found:
        raise ConfigError(f"field '{field}': no target {key!r} in {validation_dir(directory)}")
    if found[0].measure != measure:
        raise ConfigError(f"field '{field}': target {key!r} measures {found[0].measure}, "
                          f"not {measure}")
    return found[0]


def _longest_window(found: list[Target]) -> list[Target]:
    longest = max(t.window_end - t.window_start for t in found)
    return [t for t in found if t.window_end - t.window_start == longest]


def share_of_open_interest(event: str, venue: str, asset: str,
                           targets: list[Target] | None = None,
                           directory: str | Path | None = None,
                           of: str = "open_interest_before_usd"
                           ) -> tuple[float, float] | None:
    """Real liquidated share of open interest for one venue and asset, as a range.

    A ``liquidated_share_of_open_interest`` target is used when one exists (several: the
    union of their ranges). Otherwise the share is computed from the
    ``liquidated_notional_usd`` targets with the longest window (union of their ranges) and
    the ``open_interest_before_usd`` targets (union): ``low = liq_low / oi_high`` and
    ``high = liq_high / oi_low``, each capped at 1.

    Parameters
    ----------
    event, venue, asset : str
        Exact matches (``asset`` may be ``"all"``).
    targets : list of Target, optional
        Already loaded targets; default :func:`load_targets` (``directory``).
    directory : str or Path, optional
        See :func:`validation_dir`.
    of : str
        The level the liquidated amount is a share of, a measure at the window start:
        ``open_interest_before_usd`` (default), or for a lending book sized to its collateral
        ``collateral_usd`` (no direct share target is used then).

    Returns
    -------
    tuple of (float, float) or None
        ``(low, high)`` fractions, or None when the figures needed are missing or the open
        interest is 0.
    """
    pool = targets_for(event, venue=venue, asset=asset, targets=targets, directory=directory)
    direct = [t for t in pool if t.measure == "liquidated_share_of_open_interest"]
    if direct and of == "open_interest_before_usd":
        return (min(t.low for t in direct), max(t.high for t in direct))
    liq = [t for t in pool if t.measure == "liquidated_notional_usd"]
    oi = [t for t in pool if t.measure == of]
    if not liq or not oi:
        return None
    share = ratio_range(_longest_window(liq), oi)
    return None if share is None else (min(share[0], 1.0), min(share[1], 1.0))


def liquidated_window(event: str, venue: str, asset: str,
                      targets: list[Target] | None = None,
                      directory: str | Path | None = None
                      ) -> tuple[datetime, datetime] | None:
    """Return the window of the real liquidated figure that :func:`share_of_open_interest` uses.

    The liquidated share of a calibration is counted over this window, not the event's: a
    venue's figure may cover one leg of a crash (BitMEX, 2020-03-12 10:00-12:00 UTC) or one
    day of a longer event window (2024-08-05 in an event starting 2024-08-04 12:00 UTC).

    Returns
    -------
    tuple of (datetime, datetime) or None
        Start and end (exclusive, UTC) of the direct share targets, else of the
        ``liquidated_notional_usd`` targets with the longest window (earliest start, latest
        end); None where :func:`share_of_open_interest` finds no figure.
    """
    pool = targets_for(event, venue=venue, asset=asset, targets=targets, directory=directory)
    used = [t for t in pool if t.measure == "liquidated_share_of_open_interest"]
    if not used:
        liq = [t for t in pool if t.measure == "liquidated_notional_usd"]
        used = _longest_window(liq) if liq else []
    if not used:
        return None
    return (min(t.window_start for t in used), max(t.window_end for t in used))


def open_interest_change(event: str, venue: str, asset: str,
                         targets: list[Target] | None = None,
                         directory: str | Path | None = None
                         ) -> tuple[float, float] | None:
    """Real open interest after the window over open interest before it, as a range.

    From the ``open_interest_after_usd`` and ``open_interest_before_usd`` targets of one venue
    and asset (union of their ranges): ``low = after_low / before_high`` and ``high =
    after_high / before_low``. Both figures are USD, so the ratio carries the price move as
    well as the positions closed, liquidated and opened.

    Parameters
    ----------
    event, venue, asset : str
        Exact matches (``asset`` may be ``"all"``).
    targets : list of Target, optional
        Already loaded targets; default :func:`load_targets` (``directory``).
    directory : str or Path, optional
        See :func:`validation_dir`.

    Returns
    -------
    tuple of (float, float) or None
        ``(low, high)`` ratios, or None when either figure is missing or the open interest
        before is 0.
    """
    pool = targets_for(event, venue=venue, asset=asset, targets=targets, directory=directory)
    after = [t for t in pool if t.measure == "open_interest_after_usd"]
    before = [t for t in pool if t.measure == "open_interest_before_usd"]
    return ratio_range(after, before) if after and before else None


def nested_windows(targets: list[Target]) -> list[tuple[Target, Target]]:
    """Pair each published liquidated amount with the longest one whose window holds it.

    A venue that published its liquidations for a short window inside an event (an hour, a
    cascade's minutes) and for a longer one (the day) gives the real *share* of the longer
    window's liquidations that fell in the short one: a timing figure that does not depend on
    how large a simulated book is.

    Parameters
    ----------
    targets : list of Target
        Loaded targets (any events; pairs never cross events, venues, assets or products).

    Returns
    -------
    list of (Target, Target)
        ``(inner, outer)`` pairs of ``liquidated_notional_usd`` targets with the same event,
        venue, asset and product, ``outer``'s window holding ``inner``'s and longer; the
        longest such ``outer`` per ``inner``. In load order of ``inner``.
    """
    liq = [t for t in targets if t.measure == "liquidated_notional_usd"]
    out = []
    for inner in liq:
        span = inner.window_end - inner.window_start
        outers = [t for t in liq if (t.event, t.venue, t.asset, t.product)
                  == (inner.event, inner.venue, inner.asset, inner.product)
                  and t.window_start <= inner.window_start and t.window_end >= inner.window_end
                  and t.window_end - t.window_start > span]
        if outers:
            out.append((inner, max(outers, key=lambda t: t.window_end - t.window_start)))
    return out


def ratio_range(numerator: list[Target], denominator: list[Target]
                ) -> tuple[float, float] | None:
    """Return the widest ratio of two figures' ranges: ``(low / high, high / low)``.

    Parameters
    ----------
    numerator, denominator : list of Target
        Targets of one unit each (e.g. USD); the union of each list's ranges is used.

    Returns
    -------
    tuple of (float, float) or None
        ``(min numerator low / max denominator high, max numerator high / min denominator
        low)``, uncapped; None when the denominator's low is 0 (no ratio can be formed).
    """
    low = min(t.low for t in denominator)
    if low <= 0.0:
        return None
    return (min(t.low for t in numerator) / max(t.high for t in denominator),
            max(t.high for t in numerator) / low)
