"""Against what happened: a run's simulated figures next to the published ones, with the error.

One function, :func:`compare`, builds the comparison for ``liqbt validate``, the run report and
the governance report alike. It takes the run's facts (:class:`RunFacts`: event, asset,
products, the venue or protocol the book stands for, the run's window, which targets the book
was calibrated on) and a source of simulated figures (``RunTables`` of
:mod:`backtest.calibration.sources` for a run's Parquet tables, ``SweepTables`` of
:mod:`backtest.calibration.sweep_sources` for a governance sweep's cells), and
returns a :class:`Comparison`: one :class:`Row` per (target, policy) with the real range, the
simulated figure, the ratio simulated / real and whether the target was in the calibration fit.

Matching (:func:`matching_targets`): a target is shown when its event is the run's event, its
asset is the run's base asset (``BTC`` for ``BTC/USDT``; ``all`` and joint ``BTC+ETH`` figures
are not comparable with a one-asset book and are left out), its product is one the book holds,
and, when the book's metadata names a ``venue``, its venue is that one (without it, every
venue's and the whole market's figures are shown, with a note saying so). A target the run took
an input from (``[insurance_fund] initial_balance_from``) is shown whatever its venue or asset,
marked as the run's input.

Simulated figures are taken over the target's window intersected with the run's window; a row
says when the two differ. Where the venue published its liquidations for a short window and a
longer one holding it (an hour and its day), a derived row holds the real share of the longer
window's liquidations in the short one against the run's: the timing of the day, whatever the
book's size. The ratio is simulated / the geometric middle of the real range,
``sqrt(low * high)``; "inside" says whether the simulated figure lies in ``[low, high]``.

Why over 400 lines: it is the one comparison of simulated with published figures that ``liqbt
validate``, the run report and the governance report all use (one function, :func:`compare`,
with the units and fit keys it needs).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from backtest.calibration.formatting import (
    format_figure,
    format_range,
    format_ratio,
    utc_minute,
)
from backtest.targets import (
    Target,
    load_targets,
    nested_windows,
    ratio_range,
    share_of_open_interest,
)

SHARE = "liquidated_share_of_open_interest"
WINDOW_SHARE = "liquidated_share_of_window"
"""Derived measure: a short window's liquidations over those of a longer one holding it."""

UNCALIBRATED = "uncalibrated book"
IN_FIT = "in fit"
INPUT = "run's input"
HELD_OUT = "held out"

LABELS: dict[str, str] = {
    "liquidated_notional_usd": "Liquidated notional",
    "liquidated_long_usd": "Liquidated longs",
    "liquidated_short_usd": "Liquidated shorts",
    "open_interest_before_usd": "Open interest at window start",
    "open_interest_after_usd": "Open interest at window end",
    "borrowed_usd": "Borrowed at window start",
    "borrowed_later_usd": "Borrowed, a reading after the window",
    "borrowed_after_usd": "Borrowed at window end",
    "collateral_usd": "Collateral at window start",
    "accounts_liquidated": "Accounts liquidated",
    "liquidations_count": "Liquidation events",
    "bad_debt_usd": "Bad debt",
    "bad_debt_accounts": "Accounts with bad debt",
    "insurance_fund_drawn_usd": "Insurance fund drawn",
    "insurance_fund_before_usd": "Insurance fund at window start",
    "insurance_fund_after_usd": "Insurance fund at window end",
    "adl_notional_usd": "Auto-deleveraged notional",
    "adl_accounts": "Accounts auto-deleveraged",
    "adl_fills": "Auto-deleveraging fills",
    "zero_bid_collateral_usd": "Collateral sold for zero bids",
    "borrower_deposits_usd": "Borrowers' top-ups (new money)",
    SHARE: "Liquidated share of open interest",
    WINDOW_SHARE: "Share of the longer window's liquidations",
    "long_share_of_liquidations": "Long share of liquidations",
}
"""Plain-words label of each measure."""



@dataclass(frozen=True)
class RunFacts:
    """What a run stands for, read from its manifest and its book's metadata.

    Attributes
    ----------
    event : str or None
        Catalogued event key, or None for a free window.
    asset : str or None
        Base asset of the run's symbol (``BTC`` for ``BTC/USDT``).
    products : tuple of str
        Products the book holds (``perp``, ``loan``).
    venue : str or None
        The venue or protocol the book stands for (book metadata ``venue``), or None.
    start, end : datetime
        The run's window, UTC, end exclusive.
    fit_keys : frozenset of str or None
        ``"<event>/<id>"`` of the targets the book was calibrated on (book metadata
        ``calibration_fit_targets``, a JSON list), with those the run's ``[response]`` was
        fitted to (``fitted_to``); None for an uncalibrated book.
    open_interest_usd : float or None
        Book metadata ``open_interest_usd`` (notional at the window start, USD), if recorded.
    imported : bool
        The book holds real positions as given (``liqbt book import``; metadata ``source``).
    calibration : str or None
        The calibrated parameter file the book was drawn from (book metadata
        ``calibration``), or None.
    input_keys : frozenset of str
        ``"<event>/<id>"`` of the targets the run took an input from (the insurance fund's
        ``initial_balance_from``; the size of a book drawn for a venue, unless in its fit).
    open_interest_by_seed : tuple of (int, float)
        An ensemble's or sweep's books: ``(book seed, notional at the window start, USD)`` per
        member, so that intervals of the level at the window start are across members;
        empty for a run.
    held_out : tuple of (str, str, str, float)
        ``(event, venue, asset, ratio)``: the leave-one-out ratios of the calibrated file the
        book was drawn from (:func:`backtest.calibration.fitted.held_out_ratios`), said next to
        a liquidated figure the full fit used; empty without one.
    unsized : str or None
        Book metadata ``unsized``: why a book drawn for a venue has no size (no figure of its
        open interest or borrowings for the event), so its dollar figures scale with the
        number of accounts drawn; None for a sized book.
    """

    event: str | None
    asset: str | None
    products: tuple[str, ...]
    venue: str | None
    start: datetime
    end: datetime
    fit_keys: frozenset[str] | None = None
    open_interest_usd: float | None = None
    imported: bool = False
    calibration: str | None = None
    input_keys: frozenset[str] = frozenset()
    open_interest_by_seed: tuple[tuple[int, float], ...] = ()
    held_out: tuple[tuple[str, str, str, float], ...] = ()
    unsized: str | None = None

    @classmethod
    def from_manifest(cls, manifest: dict) -> RunFacts:
        """Read the facts of a run from its manifest (``manifest.json``).

        Parameters
        ----------
        manifest : dict
            A run manifest (:mod:`backtest.results.writer`).

        Returns
        -------
        RunFacts
        """
        window, book = manifest["window"], manifest.get("book", {})
        meta = book.get("meta") or {}
        keys = fit_keys(meta)
        fund_from = (manifest.get("insurance_fund") or {}).get("initial_balance_from")
        response = ((manifest.get("config") or {}).get("resolved") or {}).get("response") or {}
        if keys is not None and response.get("enabled") is not False:
            keys |= frozenset(response.get("fitted_to") or ())  # the run's cures were fitted too
        held_out = ()
        if meta.get("calibration"):
            from backtest.calibration.fitted import held_out_ratios

            held_out = tuple((*k, v) for k, v in held_out_ratios(meta["calibration"]).items())
        return cls(
            event=window.get("event") or None,
            asset=base_asset(manifest.get("symbol")),
            products=tuple(sorted((book.get("products") or {}).keys())),
            venue=meta.get("venue") or None,
            start=_time(window["start"]),
            end=_time(window["end"]),
            fit_keys=keys,
            open_interest_usd=_float(meta.get("open_interest_usd")),
            imported=meta.get("source") == "imported",
            calibration=meta.get("calibration") or None,
            input_keys=frozenset([fund_from] if fund_from else []) | sizing_inputs(meta, keys),
            held_out=held_out,
            unsized=meta.get("unsized") or None,
        )


def scales_with_accounts(comparison, target: Target) -> bool:
    """Whether ``target`` is a dollar figure of an unsized book (``RunFacts.unsized``).

    Such a figure scales with the number of accounts drawn, so its ratio to the real one is no
    check of the model. ``comparison`` is a :class:`Comparison` (anything without ``facts``
    counts as sized).
    """
    facts = getattr(comparison, "facts", None)
    return bool(getattr(facts, "unsized", None)) and target.unit == "USD"


def base_asset(symbol: str | None) -> str | None:
    """Return the base asset of a ``BASE/QUOTE`` symbol (``"BTC/USDT"`` -> ``"BTC"``)."""
    if not symbol:
        return None
    return str(symbol).split("/")[0]


def fit_keys(meta: dict) -> frozenset[str] | None:
    """Return the calibration-fit target keys recorded in book metadata, or None.

    Parameters
    ----------
    meta : dict of str to str
        Book metadata (``liqbt.*`` Parquet keys without the prefix).

    Returns
    -------
    frozenset of str or None
        ``calibration_fit_targets`` parsed as a JSON list of ``"<event>/<id>"``; None when the
        key is absent (an uncalibrated book). An unparsable value counts as absent.
    """
    return _json_keys(meta, "calibration_fit_targets")


def sizing_inputs(meta: dict, fitted: frozenset[str] | None) -> frozenset[str]:
    """Return the targets a book was sized to that its fit did not use: the run's inputs.

    Parameters
    ----------
    meta : dict of str to str
        Book metadata; ``sized_to_targets`` (JSON list of ``"<event>/<id>"``) is read.
    fitted : frozenset of str or None
        The fit's targets (:func:`fit_keys`): a sizing target in it keeps showing as in the
        fit (a perp book sized to the open interest its fit divided by).

    Returns
    -------
    frozenset of str
    """
    return (_json_keys(meta, "sized_to_targets") or frozenset()) - (fitted or frozenset())


def _json_keys(meta: dict, name: str) -> frozenset[str] | None:
    """Return metadata ``name`` parsed as a JSON list of keys; None if absent or unparsable."""
    raw = meta.get(name)
    if raw is None:
        return None
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return None
    if not isinstance(value, list):
        return None
    return frozenset(str(v) for v in value)


def _time(value: str | datetime) -> datetime:
    t = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _float(value) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


class FigureSource(Protocol):
    """Where simulated figures come from (a run's tables, a sweep's cells).

    A source may set ``window_shares = False`` to leave out the share-of-window rows (a
    sweep's means and quantiles across cells); without the attribute they are shown.
    """

    policies: list[str]

    def figures(self, start: datetime, end: datetime, from_run_start: bool, product: str
                ) -> dict[str, dict[str, float | None]]:
        """Return ``{policy: {measure: value}}`` of one product over ``[start, end)``.

        ``from_run_start`` says that the levels at the start (open interest, borrowings) are
        the run's initial ones, from the book's initial state (or its metadata): ``start`` is
        the run's own window start, or a share's real open interest was read there; ``product``
        (``perp`` or ``loan``) restricts the figures to that product's accounts.
        """


@dataclass
class Row:
    """One target against one policy.

    Attributes
    ----------
    target : Target
        The real figure (for a derived share: a target built from the liquidated and
        open-interest figures, ``derived`` True).
    policy : str
    simulated : float or None
        The simulated figure in the target's unit; None when the window does not overlap the
        run's or the measure is not simulated.
    ratio : float or None
        ``simulated / target.middle``; None when either is missing or the middle is 0.
    inside : bool or None
        Whether ``low <= simulated <= high`` (to a relative 1e-9, for sums of floats).
    fit : str
        ``"in fit"``, ``"held out"`` or ``"uncalibrated book"``.
    start, end : datetime or None
        The window the simulated figure covers.
    notes : list of str
        Plain-words caveats (window clipped, measure not simulated, derived share).
    derived : bool
        The real range was computed (share of open interest from two targets).
    """

    target: Target
    policy: str
    simulated: float | None
    ratio: float | None
    inside: bool | None
    fit: str
    start: datetime | None
    end: datetime | None
    notes: list[str] = field(default_factory=list)
    derived: bool = False


@dataclass
class Comparison:
    """The run against what happened.

    Attributes
    ----------
    facts : RunFacts
    rows : list of Row
        Target by target (file order), policy by policy.
    notes : list of str
        Caveats about the whole comparison (no venue named, uncalibrated book).
    sentence : str or None
        The plain sentence shown when no target matches (None when some do).
    """

    facts: RunFacts
    rows: list[Row]
    notes: list[str]
    sentence: str | None

    @property
    def calibrated(self) -> bool:
        """Whether the book records which targets it was calibrated on."""
        return self.facts.fit_keys is not None

    @property
    def book_kind(self) -> str:
        """``imported book``, ``calibrated book`` or ``uncalibrated book``."""
        if self.facts.imported:
            return "imported book (real positions as given, nothing fitted)"
        return "calibrated book" if self.calibrated else UNCALIBRATED


def matching_targets(facts: RunFacts, targets: list[Target]) -> list[Target]:
    """Return the targets a run is held against (see the module docstring for the rules).

    Parameters
    ----------
    facts : RunFacts
    targets : list of Target

    Returns
    -------
    list of Target
        In load order.
    """
    if facts.event is None or facts.asset is None:
        return []
    return [t for t in targets
            if t.key in facts.input_keys
            or (t.event == facts.event and t.asset == facts.asset
                and t.product in facts.products
                and (facts.venue is None or t.venue == facts.venue))]


def _derived_shares(facts: RunFacts, matched: list[Target], pool: list[Target]
                    ) -> dict[str, tuple[Target, list[str], datetime]]:
    """Build a derived share-of-open-interest target per venue lacking a direct one.

    Returns ``{target id: (target, keys of the targets it was derived from, when the open
    interest it divides by was read)}``: the derived target keeps the liquidated figure's
    window, and its denominator is the open interest at the start of the open-interest
    target's window, which may be earlier (2024-08-05's liquidations over the open interest
    read at the event's start, 08-04 12:00).
    """
    out: dict[str, tuple[Target, list[str], datetime]] = {}
    venues = dict.fromkeys(t.venue for t in matched)
    for venue in venues:
        mine = [t for t in matched if t.venue == venue]
        if any(t.measure == SHARE for t in mine):
            continue
        liq = [t for t in mine if t.measure == "liquidated_notional_usd"]
        oi = [t for t in mine if t.measure == "open_interest_before_usd"]
        if not liq or not oi:
            continue
        share = share_of_open_interest(facts.event, venue, facts.asset, targets=pool)
        if share is None:
            continue
        longest = max(liq, key=lambda t: t.window_end - t.window_start)
        parts = [t for t in liq if t.window_end - t.window_start
                 == longest.window_end - longest.window_start] + oi
        derived = replace(
            longest, id=f"{venue}-{facts.asset.lower()}-share-of-open-interest-derived",
            measure=SHARE, low=share[0], high=share[1], unit="fraction",
            quality=min((t.quality for t in parts), key=_QUALITY_ORDER.index),
            note="DERIVED by liqbt: liquidated / open interest at the window start, low = "
                 "liquidated low / OI high, high = liquidated high / OI low, from "
                 + ", ".join(t.key for t in parts) + ".",
            source=longest.source)
        out[derived.id] = (derived, [t.key for t in parts], min(t.window_start for t in oi))
    return out


def _derived_window_shares(pairs: list[tuple[Target, Target]]
                           ) -> list[tuple[Target, list[str], Target]]:
    """Build a derived share-of-window target per published sub-window of the run's venue.

    Returns ``(target, keys of the two targets it was derived from, the longer target)`` per
    ``(inner, outer)`` pair of :func:`backtest.targets.nested_windows`: the real fraction of
    the longer window's liquidations that fell in the shorter one, ``low = inner low / outer
    high`` and ``high = inner high / outer low`` (capped at 1). It does not depend on the
    book's size, so it holds the *timing* of an unsized book against what happened too.
    """
    out = []
    for inner, outer in pairs:
        low, high = ratio_range([inner], [outer]) or (None, None)
        if low is None:
            continue
        derived = replace(
            inner, id=f"{inner.id}-share-of-window-derived", measure=WINDOW_SHARE,
            low=min(low, 1.0), high=min(high, 1.0), unit="fraction",
            quality=min((inner.quality, outer.quality), key=_QUALITY_ORDER.index),
            note=f"DERIVED by liqbt: {inner.key} over {outer.key} "
                 f"({utc_minute(outer.window_start)} \u2013 {utc_minute(outer.window_end)} UTC).")
        out.append((derived, [inner.key, outer.key], outer))
    return out


_QUALITY_ORDER = ("aggregator", "secondary", "primary")
_REL = 1e-9
"""Relative tolerance of the in-range test (sums of floats over steps)."""


def _fit_status(target: Target, facts: RunFacts, derived_from: list[str]) -> str:
    """Return whether ``target`` was an input, in the fit, held out, or of no calibration.

    A derived figure was fitted when its numerator was (``derived_from[0]``: the liquidated
    amount of a share of open interest, the sub-window of a share of the window). A share of
    the day whose sub-window the fit held out is an out-of-sample check, its day fitted or not.
    """
    if target.key in facts.input_keys:
        return INPUT
    if facts.fit_keys is None:
        return UNCALIBRATED
    return IN_FIT if (derived_from or [target.key])[0] in facts.fit_keys else HELD_OUT


def compare(facts: RunFacts, source: FigureSource, targets: list[Target] | None = None,
            directory: str | Path | None = None) -> Comparison:
    """Hold a run's simulated figures against the published targets.

    Parameters
    ----------
    facts : RunFacts
        What the run stands for.
    source : FigureSource
        Simulated figures per policy over a window.
    targets : list of Target, optional
        Loaded targets; default :func:`backtest.targets.load_targets`
        (``directory``).
    directory : str or Path, optional
        Target directory when ``targets`` is not given.

    Returns
    -------
    Comparison
        Rows target by target, policy by policy; ``sentence`` says plainly when nothing
        matches.

    Raises
    ------
    ConfigError
        If the target files are invalid.
    """
    pool = load_targets(directory) if targets is None else targets
    matched = matching_targets(facts, pool)
    notes: list[str] = []
    if facts.event is None:
        sentence = ("No published figure to compare with: this run's window is not a "
                    "catalogued event (run it with event = \"...\" to be held against what "
                    "happened).")
        return Comparison(facts, [], notes, sentence)
    if not matched:
        return Comparison(facts, [], notes, _no_target_sentence(facts, pool))
    if facts.venue is None:
        notes.append("The book names no venue or protocol (no 'venue' in its metadata), so "
                     "figures of every venue and of the whole market are shown; the book is "
                     "not sized to any one of them, so compare shares, not dollars.")
    if len(facts.products) > 1 and getattr(source, "whole_book", False):
        notes.append("The book mixes perps and loans and these results keep whole-book "
                     "series only, so each product's targets are compared with the whole "
                     "book's figures.")
    if facts.fit_keys is None:
        notes.append("Uncalibrated book: it records no calibration_fit_targets, so no target "
                      "was fitted and every ratio is out of sample.")
    if facts.unsized:
        notes.append(f"Unsized book: {facts.unsized.rstrip('.')}. Its dollar figures scale "
                     "with the number of accounts drawn, so a dollar ratio is no check of the "
                     "model; shares are.")
    if all(t.key in facts.input_keys for t in matched):
        notes.append("Only the run's inputs have a published figure for what was run, so no "
                     "outcome of this run is held against what happened.")
    wider = _wider_sentence(facts, matched, pool)
    if wider:
        notes.append(wider)
    derived = _derived_shares(facts, matched, pool)
    rows: list[Row] = []
    cache: dict[tuple, dict] = {}

    def figures(start: datetime, end: datetime, at_run_start: bool, product: str) -> dict:
        key = (start, end, at_run_start, product)
        if key not in cache:
            cache[key] = source.figures(start, end, at_run_start, product)
        return cache[key]

    pairs = nested_windows(matched)
    todo = [(t, False, [], t.window_start, None) for t in matched] + [
        (t, True, k, read, None) for t, k, read in derived.values()]
    if getattr(source, "window_shares", True):
        todo += [(t, True, k, t.window_start, outer)
                 for t, k, outer in _derived_window_shares(pairs)]
    held_out = {(e, v, a): r for e, v, a, r in facts.held_out}
    inner_keys = {inner.key for inner, _ in pairs}
    for target, is_derived, parts, levels_read, outer in todo:
        fit = _fit_status(target, facts, parts)
        start = max(target.window_start, facts.start)
        end = min(target.window_end, facts.end)
        window_notes = []
        if end <= start:
            for policy in source.policies:
                rows.append(Row(target, policy, None, None, None, fit, None, None,
                                ["the target's window lies outside the run's window"],
                                is_derived))
            continue
        if (start, end) != (target.window_start, target.window_end):
            window_notes.append(f"simulated over {utc_minute(start)} \u2013 "
                                f"{utc_minute(end)} only (the target's window is clipped to "
                                "the run's)")
        # levels at the run's start: the window starts there, or (a derived share) the real
        # open interest it divides by was read there
        at_run_start = start <= facts.start or levels_read <= facts.start
        if at_run_start and start > facts.start:
            window_notes.append(f"over the open interest at the run's start "
                                f"({utc_minute(facts.start)}), where the real one was read")
        left_out = held_out.get((target.event, target.venue, target.asset))
        if (fit == IN_FIT and left_out is not None and not is_derived
                and target.measure == "liquidated_notional_usd" and target.key not in inner_keys):
            window_notes.append(f"left out of the fit: {format_ratio(left_out)} of the real "
                                "share, in the calibration's refit without this event")
        inner_f = figures(start, end, at_run_start, target.product)
        if outer is None:
            values = {p: f.get(target.measure) for p, f in inner_f.items()}
        else:  # a share of the longer window: two sums of the same run
            o_start, o_end = max(outer.window_start, facts.start), min(outer.window_end, facts.end)
            if (o_start, o_end) != (outer.window_start, outer.window_end):
                window_notes.append(f"the longer window is simulated over {utc_minute(o_start)} "
                                    f"\u2013 {utc_minute(o_end)} only")
            outer_f = figures(o_start, o_end, o_start <= facts.start, target.product)
            values = {p: _share_of(inner_f.get(p, {}), outer_f.get(p, {})) for p in inner_f}
        for policy in source.policies:
            value = values.get(policy)
            if value is not None and target.unit == "USD" and abs(value) < 0.005:
                value = 0.0  # sums of float steps leave sub-cent residues: shown as $0
            row_notes = list(window_notes)
            if value is None:
                row_notes.append("not simulated by this run's tables" if outer is None else
                                 "nothing liquidated in the longer window")
            ratio = inside = None
            if value is not None:
                middle = target.middle
                ratio = value / middle if middle > 0 else None
                inside = target.low * (1 - _REL) <= value <= target.high * (1 + _REL)
            rows.append(Row(target, policy, value, ratio, inside, fit, start, end, row_notes,
                            is_derived))
    return Comparison(facts, rows, notes, None)


def _share_of(inner: dict, outer: dict) -> float | None:
    """Return inner / outer liquidated notional; None when either is missing or outer is 0."""
    a, b = inner.get("liquidated_notional_usd"), outer.get("liquidated_notional_usd")
    return a / b if a is not None and b else None


def _wider_sentence(facts: RunFacts, matched: list[Target], pool: list[Target]) -> str | None:
    """Name the venue's figures published only for a group of assets that holds the run's.

    ``all`` assets, or a joint group such as ``BTC+ETH``: a one-asset book is not held against
    them, but its asset is part of them, so a reader can compare by hand (a liquidated amount
    of every asset bounds the one asset's). Only measures with no figure for the run's own
    asset are named, with their ranges. None when there are none or no venue.
    """
    if facts.venue is None or facts.asset is None:
        return None
    own = {t.measure for t in matched if t.key not in facts.input_keys}
    wider = [t for t in pool if t.event == facts.event and t.venue == facts.venue
             and t.key not in facts.input_keys and t.measure not in own
             and t.product in facts.products
             and (t.asset == "all" or facts.asset in t.asset.split("+"))
             and t.asset != facts.asset]
    if not wider:
        return None
    parts = sorted(dict.fromkeys(
        f"{LABELS.get(t.measure, t.measure).lower()} {format_range(t)} ({t.asset}, {t.id})"
        for t in wider))
    return (f"{facts.venue} published these only for a group of assets that includes "
            f"{facts.asset}, so a one-asset book is not held against them: "
            f"{'; '.join(parts)}.")


def _no_target_sentence(facts: RunFacts, pool: list[Target]) -> str:
    what = f"{facts.asset} {'/'.join(facts.products) or 'book'}"
    if facts.venue:
        what += f" on {facts.venue}"
    have = sorted({f"{t.venue} {t.asset} {t.product}" for t in pool if t.event == facts.event})
    if not have:
        return (f"No published figure exists for {what} in event '{facts.event}': "
                f"data/validation has no targets for this event, so this run is not held "
                "against what happened.")
    return (f"No published figure exists for {what} in event '{facts.event}', so this run is "
            f"not held against what happened. Targets for this event cover: "
            f"{'; '.join(have)}.")


def table_rows(comparison: Comparison) -> list[dict[str, str]]:
    """Return the comparison as display rows: the one table every output shows.

    Parameters
    ----------
    comparison : Comparison

    Returns
    -------
    list of dict
        Keys ``measure`` (label), ``measure_key``, ``target`` (``event/id``), ``venue``,
        ``asset``, ``policy``, ``real``, ``simulated``, ``ratio``, ``inside`` (``yes``,
        ``no`` or an en dash), ``window`` (the target's, UTC), ``simulated_window``,
        ``source``, ``quality``, ``fit``, ``note``; all strings.
    """
    out = []
    for r in comparison.rows:
        t = r.target
        label = LABELS.get(t.measure, t.measure)
        if r.derived:
            label += " (derived)"
        notes = list(r.notes)
        out.append({
            "measure": label,
            "measure_key": t.measure,
            "target": t.key,
            "venue": t.venue,
            "asset": t.asset,
            "policy": r.policy,
            "real": format_range(t),
            "simulated": format_figure(r.simulated, t.unit),
            "ratio": format_ratio(r.ratio),
            "inside": "\u2013" if r.inside is None else ("yes" if r.inside else "no"),
            "window": f"{utc_minute(t.window_start)} \u2013 {utc_minute(t.window_end)} UTC",
            "simulated_window": ("\u2013" if r.start is None
                                 else f"{utc_minute(r.start)} \u2013 {utc_minute(r.end)} UTC"),
            "source": t.source,
            "quality": t.quality,
            "fit": r.fit,
            "note": "; ".join(notes),
        })
    return out
