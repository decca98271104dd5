"""A governance proposal's ensemble conditioned on what was observed (history matching).

A proposal's ``[ensemble] condition_on`` names targets (ids in ``data/validation``) that were
observed during an event without being the figure it is held against (Maker's owners' top-ups
on the morning of Black Thursday). :func:`condition` keeps the members whose **current**
parameter set's figure of every such target lies within its real range
(:func:`backtest.calibration.conditioning.conditioned_members`); the current set is the
protocol as it ran, and deciding on it keeps every set on the same members, so the sets are
still compared on the same draws of the unknowns. The report's figures, intervals, robustness
counts, series and "against what happened" rows are then taken over the kept members
(``docs/ensembles.md``, "Conditioning on what was observed").
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Conditioning:
    """The members a proposal's ensemble keeps.

    Attributes
    ----------
    ids : list of str
        The conditioning targets (``[ensemble] condition_on``).
    members : frozenset of int
        ``sweep_cells.member`` of the members kept (empty: none is consistent).
    seeds : frozenset of int
        Their book seeds.
    drawn : int
        Members drawn.
    """

    ids: list[str]
    members: frozenset[int]
    seeds: frozenset[int]
    drawn: int

    def sentence(self) -> str:
        """Return what was kept, in words, for the report."""
        ids = ", ".join(self.ids)
        if not self.members:
            return (f"Conditioned on {ids}: no member of {self.drawn} is consistent with what "
                    "was observed (the unknowns' ranges do not reach it), so every figure is "
                    f"over all {self.drawn} members.")
        listed = ", ".join(str(m) for m in sorted(self.members))
        return (f"Conditioned on {ids} (history matching): {len(self.members)} of {self.drawn} "
                "ensemble members kept, those whose current-parameter figure lies within the "
                "real range; every figure, interval and count of this report is over them "
                f"(sweep_cells.member {listed}). liqbt validate on the sweep shows the same "
                "figures over all members beside these.")

    def filter_sql(self) -> str:
        """Return an SQL condition on ``c.member`` keeping the kept members ("" if none)."""
        if not self.members:
            return ""
        return f" AND c.member IN ({', '.join(str(m) for m in sorted(self.members))})"


def condition(catalog, manifest: dict, proposal, labels: list[str],
              targets_dir=None) -> Conditioning | None:
    """Return the members a proposal's conditioned ensemble keeps; None when not conditioned.

    Parameters
    ----------
    catalog : backtest.results.catalog.Catalog
        Catalog with the proposal's sweep registered.
    manifest : dict
        The sweep's ``sweep.json``.
    proposal : backtest.report.proposal.Proposal
    labels : list of str
        The named parameter sets (current first).
    targets_dir : str or Path, optional
        Target directory (default :func:`backtest.targets.validation_dir`).

    Returns
    -------
    Conditioning or None

    Raises
    ------
    ConfigError
        The targets cannot be read, a conditioning target matches no event of the proposal,
        or no event has an unstressed cell to condition on.
    """
    from backtest.calibration.conditioning import conditioned_members
    from backtest.calibration.sweep_sources import SweepTables, sweep_event_facts
    from backtest.errors import ConfigError
    from backtest.report.proposal import CURRENT
    from backtest.targets import load_targets

    spec = proposal.ensemble
    if spec is None or not spec.condition_on:
        return None
    pool = load_targets(targets_dir)
    sid = manifest["sweep_id"]
    events = []
    for ev in proposal.events:
        infos = [e for e in manifest["events"] if e["event"] == ev.key]
        facts = sweep_event_facts(catalog, sid, infos, ev.event, ev.key, manifest)
        if facts is not None:
            events.append((ev.key, facts, SweepTables.from_facts(catalog, sid, ev.key, labels,
                                                                 facts)))
    if not events:
        raise ConfigError("[ensemble] condition_on: no event of the proposal has an unstressed "
                          "cell to condition on")
    member = {int(e["seed"]): int(e["member"]) for e in manifest["events"]}
    kept, _ = conditioned_members(events, pool, list(spec.condition_on), sorted(member),
                                  CURRENT)
    seeds = kept[CURRENT]
    return Conditioning(list(spec.condition_on), frozenset(member[s] for s in seeds), seeds,
                        len(member))


__all__ = ["Conditioning", "condition"]
