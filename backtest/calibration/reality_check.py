"""Which held-out figures a run or an ensemble misses by more than a factor 1.5.

The reports (run and governance) warn where the model is far from what happened on a figure
the fit did not use: :func:`far_from_reality` over a :class:`backtest.calibration.compare.
Comparison`.
"""

from __future__ import annotations

from backtest.calibration.compare import HELD_OUT, LABELS, SHARE, Comparison
from backtest.calibration.formatting import (
    format_figure,
    format_range,
    format_ratio,
    meets_interval,
)

FAR_MEASURES = ("bad_debt_usd", "liquidated_notional_usd", "liquidated_long_usd",
                "liquidated_short_usd", SHARE)
"""Measures whose distance from what happened the reports warn about: bad debt (what governance
recommendations rank on) and the liquidated amounts and share of open interest (what books are
judged by)."""

FAR_FACTOR = 1.5
"""A simulated figure outside ``[low / FAR_FACTOR, high x FAR_FACTOR]`` of the real range is far
from it (the factor issue 13 holds the calibrated events to)."""


def far_from_reality(mean: Comparison, ends: list | None = None,
                     policies: list[str] | None = None,
                     measures: tuple[str, ...] = FAR_MEASURES) -> list[str]:
    """Return, per held-out bad-debt or liquidated figure the model misses, a phrase.

    A figure is missed when the simulated figure (a run's, or an ensemble's mean) lies outside
    a factor :data:`FAR_FACTOR` of the real range and, for an ensemble, the real range lies
    outside the members' p5 - p95 too. Only a calibrated (or imported) book's held-out figures
    are checked: an uncalibrated book's dollar figures are not sized to any venue, which every
    output already says, and would be held against whichever venue's figure the event has.
    Nor are the dollar figures of a calibrated book drawn unsized (``RunFacts.unsized``: no
    size figure for the event), which scale with its account count; its shares are checked.

    Parameters
    ----------
    mean : Comparison
        A run's comparison, or an ensemble's over the members' means.
    ends : list of Comparison, optional
        An ensemble's p5 and p95 comparisons (row for row as ``mean``).
    policies : list of str, optional
        The policies (parameter sets) to check; None: all.
    measures : tuple of str
        The measures to check (default :data:`FAR_MEASURES`).

    Returns
    -------
    list of str
        One phrase per target missed. With one policy asked about: ``"bad debt
        (black-thursday-2020/maker-eth-bad-debt) is $598k against the real $5.67M \u2013
        $6.65M (0.097x, held out; ...)"``; else ``"liquidated longs (ftx-2022/...), real $214M,
        held out: hard $47.7M (0.22x); partial $47.7M (0.22x)"``.
    """
    missed: dict[str, list] = {}
    unsized = getattr(getattr(mean, "facts", None), "unsized", None)
    lows = ends[0].rows if ends else [None] * len(mean.rows)
    highs = ends[1].rows if ends else [None] * len(mean.rows)
    for r, lo, hi in zip(mean.rows, lows, highs, strict=True):
        t = r.target
        if ((policies is not None and r.policy not in policies) or r.fit != HELD_OUT
                or r.simulated is None or t.measure not in measures
                or (unsized and t.unit == "USD")):
            continue
        if t.low / FAR_FACTOR <= r.simulated <= t.high * FAR_FACTOR:
            continue
        members = ""
        if lo is not None and hi is not None:
            if meets_interval(t, lo.simulated, hi.simulated):
                continue
            members = (f"; the members' p5 \u2013 p95, {format_figure(lo.simulated, t.unit)} "
                       f"\u2013 {format_figure(hi.simulated, t.unit)}, does not reach it")
        missed.setdefault(t.key, []).append((r, members))
    out = []
    for found in missed.values():
        t = found[0][0].target
        what = f"{LABELS.get(t.measure, t.measure).lower()} ({t.key})"
        if policies is not None and len(policies) == 1:
            r, members = found[0]
            out.append(f"{what} is {format_figure(r.simulated, t.unit)} against the real "
                       f"{format_range(t)} ({format_ratio(r.ratio)}, {HELD_OUT}{members})")
            continue
        each = "; ".join(f"{r.policy} {format_figure(r.simulated, t.unit)} "
                         f"({format_ratio(r.ratio)}{members})" for r, members in found)
        out.append(f"{what}, real {format_range(t)}, {HELD_OUT}: {each}")
    return out
