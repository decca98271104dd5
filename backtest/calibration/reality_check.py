"""Which held-out figures a run or an ensemble misses by more than a factor 1.5.

The reports (run and governance) warn where the model is far from what happened on a figure
the fit did not use: :func:`far_from_reality` over a :class:`backtest.calibration.compare.
Comparison`.
"""

from __future__ import annotations

from backtest.calibration.compare import (
    HELD_OUT,
    LABELS,
    SHARE,
    WINDOW_SHARE,
    Comparison,
    scales_with_accounts,
)
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
    lows = ends[0].rows if ends else [None] * len(mean.rows)
    highs = ends[1].rows if ends else [None] * len(mean.rows)
    for r, lo, hi in zip(mean.rows, lows, highs, strict=True):
        t = r.target
        if ((policies is not None and r.policy not in policies)
                or not _checked(r, mean, measures)):
            continue
        if _within(r):
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
        what = _named(t)
        if policies is not None and len(policies) == 1:
            r, members = found[0]
            out.append(f"{what} is {format_figure(r.simulated, t.unit)} against the real "
                       f"{format_range(t)} ({format_ratio(r.ratio)}, {HELD_OUT}{members})")
            continue
        each = "; ".join(f"{r.policy} {format_figure(r.simulated, t.unit)} "
                         f"({format_ratio(r.ratio)}{members})" for r, members in found)
        out.append(f"{what}, real {format_range(t)}, {HELD_OUT}: {each}")
    return out


SUMMARY_MEASURES = (*FAR_MEASURES, WINDOW_SHARE, "open_interest_after_usd",
                    "insurance_fund_drawn_usd", "adl_notional_usd", "zero_bid_collateral_usd")
"""Measures the held-out summary counts: a run's outcomes (those the reports warn about, the
timing, the open interest left, the insurance fund drawn, auto-deleveraging, zero-bid
collateral), not its counts of accounts or events, which follow the book's granularity."""


def _checked(row, comparison, measures) -> bool:
    """Whether ``row`` is a held-out figure of ``measures`` that says something of the model.

    Not the dollar figures of an unsized book (``RunFacts.unsized``): they scale with its
    account count.
    """
    return (row.fit == HELD_OUT and row.simulated is not None
            and row.target.measure in measures
            and not scales_with_accounts(comparison, row.target))


def _within(row) -> bool:
    """Whether the simulated figure lies within a factor :data:`FAR_FACTOR` of the real range."""
    return row.target.low / FAR_FACTOR <= row.simulated <= row.target.high * FAR_FACTOR


def _named(target) -> str:
    """``"liquidated notional (feb-2021/aave-v2-weth-liquidated-after-low)"``."""
    return f"{LABELS.get(target.measure, target.measure).lower()} ({target.key})"


def _counted(policy: str, n: int) -> str:
    """``"aave-v2: 2 held-out figures"``."""
    return f"{policy}: {n} held-out figure{'s' if n != 1 else ''}"


def held_out_summary(comparison: Comparison,
                     measures: tuple[str, ...] = SUMMARY_MEASURES) -> list[str]:
    """Return one line per policy counting its held-out figures by distance from what happened.

    Over the held-out figures of ``measures`` (:func:`_checked`): how many lie inside the real
    range, how many within a factor :data:`FAR_FACTOR` of it (inside included), and which are
    further, with their ratios. ``liqbt validate`` ends with these lines.

    Parameters
    ----------
    comparison : Comparison
        A run's comparison.
    measures : tuple of str
        The measures counted (default :data:`SUMMARY_MEASURES`).

    Returns
    -------
    list of str
        E.g. ``"aave-v2: 2 held-out figures, 0 inside the real range, 0 within a factor 1.5;
        further: liquidated notional (feb-2021/aave-v2-weth-liquidated-after-low) 0x, ..."``;
        empty when no figure is held out.
    """
    by_policy: dict[str, list] = {}
    for r in comparison.rows:
        if _checked(r, comparison, measures):
            by_policy.setdefault(r.policy, []).append(r)
    out = []
    for policy, rows in by_policy.items():
        far = [r for r in rows if not _within(r)]
        line = (f"{_counted(policy, len(rows))}, {sum(r.inside is True for r in rows)} inside "
                f"the real range, {len(rows) - len(far)} within a factor {FAR_FACTOR:g}")
        if far:
            line += "; further: " + ", ".join(
                f"{_named(r.target)} {format_ratio(r.ratio)}" for r in far)
        out.append(line)
    return out


def held_out_interval_summary(quantiles: list[Comparison], conditioned=(),
                              measures: tuple[str, ...] = SUMMARY_MEASURES) -> list[str]:
    """Return one line per policy counting the held-out outcomes the members' p5 - p95 holds.

    The ensemble's counterpart of :func:`held_out_summary`, over the same figures
    (:func:`_checked`, on the p50 comparison), less those the members were chosen on
    (``conditioned``, target ids of ``[ensemble] condition_on``).

    Parameters
    ----------
    quantiles : list of Comparison
        The p5, p50 and p95 comparisons, rows in the same order.
    conditioned : collection of str
        Target ids the members were conditioned on.
    measures : tuple of str
        The measures counted (default :data:`SUMMARY_MEASURES`).

    Returns
    -------
    list of str
        E.g. ``"aave-v2: 2 held-out figures, the real one inside the members' p5 - p95 for 0;
        outside: liquidated notional (feb-2021/...), p50 0x, ..."``; empty when no figure is
        held out.
    """
    p5, p50, p95 = quantiles
    by_policy: dict[str, list] = {}
    for r5, r50, r95 in zip(p5.rows, p50.rows, p95.rows, strict=True):
        if _checked(r50, p50, measures) and r50.target.id not in conditioned:
            meets = meets_interval(r50.target, r5.simulated, r95.simulated)
            by_policy.setdefault(r50.policy, []).append((r50, meets))
    out = []
    for policy, rows in by_policy.items():
        line = (f"{_counted(policy, len(rows))}, the real one inside the members' p5 - p95 "
                f"for {sum(m is True for _, m in rows)}")
        outside = [r for r, m in rows if m is False]
        if outside:
            line += "; outside: " + ", ".join(
                f"{_named(r.target)}, p50 {format_ratio(r.ratio)}" for r in outside)
        out.append(line)
    return out
