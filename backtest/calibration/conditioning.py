"""History matching: the members of an ensemble consistent with an observed figure.

An ensemble draws its unknowns from ranges set before the event; some of what happened during
it was observed without being the figure a run is held against (Maker's owners' top-ups on the
morning of Black Thursday, `docs/calibration.md`). ``[ensemble] condition_on`` names such
targets; :func:`conditioned_members` keeps the members whose figure of every one lies within
its real range, and :func:`kept_source` gives the held-out figures over them (rejection
sampling on the observation; ``docs/ensembles.md``, "Conditioning on what was observed").
"""

from __future__ import annotations

import statistics

from backtest.calibration.compare import compare, matching_targets
from backtest.errors import ConfigError


def kept_source(source, kept: dict[str, frozenset[int]], quantile: float):
    """Return a figure source giving ``quantile`` across each label's kept members.

    Parameters
    ----------
    source : backtest.calibration.sweep_sources.SweepTables
    kept : dict of str to frozenset of int
        Per label, the book seeds of the members kept (:func:`conditioned_members`).
    quantile : float
        E.g. 0.05 for p5.

    Returns
    -------
    SweepTables or _PerLabel
        One source when every label keeps the same members, else one per label.
    """
    sets = set(kept.values())
    if len(sets) == 1:
        return source.keeping(next(iter(sets))).at(quantile)
    return _PerLabel({label: source.keeping(k).at(quantile) for label, k in kept.items()})


class _PerLabel:
    """A figure source that takes each label's figures from its own source."""

    def __init__(self, sources: dict):
        self.sources = sources
        first = next(iter(sources.values()))
        self.whole_book, self.policies = first.whole_book, list(sources)

    def figures(self, start, end, from_run_start, product):
        return {label: src.figures(start, end, from_run_start, product)[label]
                for label, src in self.sources.items()}


def conditioned_members(events: list, pool: list, cond_ids: list[str], seeds: list[int],
                        policy: str | None) -> tuple[dict[str, frozenset[int]], str]:
    """Return the members consistent with the conditioning targets, per label, and a sentence.

    A member is kept when its figure of every conditioning target lies inside the target's
    real range, in every event of the sweep that has such a target. A member draws the same
    quantile of every unknown and the same book seed in every event
    (:func:`backtest.sweep.ensemble.member_values`), so it is one draw of the unknowns across
    the sweep, and one kept on one event's observation is kept on every event.

    Parameters
    ----------
    events : list of (str, RunFacts, SweepTables)
        The sweep's event key, facts (:class:`backtest.calibration.compare.RunFacts`) and
        figure source (:class:`backtest.calibration.sweep_sources.SweepTables`), per event.
    pool : list of Target
    cond_ids : list of str
        Target ids (``[ensemble] condition_on``); each must match an event of ``events``.
    seeds : list of int
        The members' book seeds.
    policy : str or None
        The label whose cells decide for every label (``condition_policy``; the current
        parameter set in a proposal's sweep); None: each label's own cells.

    Returns
    -------
    dict of str to frozenset of int, str
        Per label (policy or parameter set), the book seeds of the members kept; and the
        sentence ("32 of 200 members kept, ...").

    Raises
    ------
    ConfigError
        A conditioning target that matches no event, or a ``policy`` with no cells.
    """
    labels = list(events[0][2].policies)
    what = "parameter set" if events[0][2].by == "param_set" else "policy"
    if policy is not None and policy not in labels:
        raise ConfigError(f"[ensemble] condition_policy: {policy!r} has no cells in this sweep "
                          f"(labels {labels})")
    inside = {label: set(seeds) for label in labels}
    used: list[str] = []
    for _key, facts, source in events:
        targets = [t for t in matching_targets(facts, pool) if t.id in cond_ids]
        if not targets:
            continue
        used += [t.id for t in targets]
        for seed in seeds:
            rows = compare(facts, source.keeping({seed}), targets=targets).rows
            for label in labels:
                mine = [r for r in rows if r.policy == label]
                if not (mine and all(r.inside for r in mine)):
                    inside[label].discard(seed)
    missing = [i for i in cond_ids if i not in used]
    if missing:
        keys = ", ".join(key for key, _, _ in events)
        raise ConfigError(f"[ensemble] condition_on: {missing} match no target of event(s) "
                          f"{keys} (ids in data/validation, for this event, asset and venue)")
    if policy is not None:
        kept = {label: frozenset(inside[policy]) for label in labels}
        how = (f"{len(inside[policy])} of {len(seeds)} members kept, those whose {policy} "
               f"cells lie within the real range; every {what} shows the same members")
    else:
        kept = {label: frozenset(inside[label]) for label in labels}
        how = (f"members kept per {what}, those whose own cells lie within the real range: "
               + ", ".join(f"{label} {len(kept[label])} of {len(seeds)}" for label in labels))
    return kept, how


def kept_draws(infos: list[dict], seeds, ranges: dict) -> list[str]:
    """Return lines saying what the kept members drew, input by input, against the ranges.

    What the observation says about the unknowns: for each drawn input, the smallest, median
    and largest value among the kept members, beside the range every member was drawn from.

    Parameters
    ----------
    infos : list of dict
        The event's entries of ``sweep.json`` ``events`` (``seed``, ``member_inputs``).
    seeds : set of int
        Book seeds of the members kept (for any policy).
    ranges : dict
        ``sweep.json`` ``ensemble.events[event]``: per input, ``range`` as drawn.

    Returns
    -------
    list of str
        A heading and one line per input (none when no member is kept).
    """
    chosen = [e.get("member_inputs") or {} for e in infos if int(e["seed"]) in seeds]
    names = [n for n in ranges if all(n in c for c in chosen)] if chosen else []
    if not names:
        return []
    lines = ["what the kept members drew (min / median / max; every member drawn from):"]
    width = max(len(n) for n in names)
    for n in names:
        values = sorted(float(c[n]) for c in chosen)
        lines.append(f"  {n:<{width}}  {values[0]:.4g} / {statistics.median(values):.4g} / "
                     f"{values[-1]:.4g}  ({ranges[n].get('range', '?')})")
    return lines


__all__ = ["conditioned_members", "kept_draws", "kept_source"]
