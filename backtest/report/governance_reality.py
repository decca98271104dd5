"""The governance report's "against what happened" section.

The proposal's figures held against the published ones (the rows ``liqbt validate`` prints),
with the ensemble's interval and, where the calibrated book's coverage check is recorded, that
interval widened by the model's own error (:mod:`backtest.sweep.coverage`).
"""

from __future__ import annotations

from pathlib import Path

from backtest.report.governance_data import GovernanceData
from backtest.results.catalog import Catalog


def against_what_happened(catalog: Catalog, data: GovernanceData,
                          targets_dir: str | Path | None = None) -> list[dict]:
    """Return the "against what happened" section: per event, the rows of ``liqbt validate``.

    The current and proposed parameter sets stand for the policies; their figures come from
    the proposal's unstressed cells (:class:`backtest.calibration.sweep_sources.SweepTables`),
    averaged over seeds (over the members kept, when the ensemble is conditioned: the
    conditioning targets are then marked "conditioned on (in fit)"). The book's venue and
    calibration targets come from the event's books (the first seed's metadata), the open
    interest at the window start from each member's book, so that its interval and the
    liquidated share are taken member by member.

    Parameters
    ----------
    catalog : Catalog
        Catalog with the proposal's sweep registered.
    data : GovernanceData
    targets_dir : str or Path, optional
        Target directory (default :func:`backtest.targets.validation_dir`).

    Returns
    -------
    list of dict
        One per proposal event: ``event`` (label), ``rows`` (list of dict of str, see
        :func:`backtest.calibration.compare.table_rows`), ``notes``, ``sentence`` (the plain
        sentence when nothing matches), ``calibrated``, ``far`` (warnings: the current set's
        held-out figures far from the real ones,
        :func:`backtest.calibration.reality_check.far_from_reality`), ``far_bad_debt`` (bool: its
        bad debt among them).
    """
    from backtest.calibration.compare import compare, table_rows
    from backtest.calibration.reality_check import far_from_reality
    from backtest.calibration.sweep_sources import SweepTables, sweep_event_facts
    from backtest.errors import ConfigError
    from backtest.sweep.coverage import add_model_error, discrepancy
    from backtest.targets import load_targets

    try:
        pool = load_targets(targets_dir)
    except ConfigError as exc:
        return [{"event": ev.key, "rows": [], "notes": [], "calibrated": False,
                 "sentence": f"The published targets could not be read: {exc}"}
                for ev in data.proposal.events]
    sid = data.manifest["sweep_id"]
    labels = [s.label for s in data.named()]
    cond = data.conditioning
    kept = cond.seeds if cond is not None and cond.members else None
    out = []
    for ev in data.proposal.events:
        infos = [e for e in data.manifest["events"] if e["event"] == ev.key]
        facts = sweep_event_facts(catalog, sid, infos, ev.event, ev.key, data.manifest)
        if facts is None:
            out.append({"event": ev.key, "rows": [], "notes": [], "calibrated": False,
                        "sentence": "No unstressed cell of this event was run, so it is not "
                                    "held against what happened."})
            continue
        source = SweepTables.from_facts(catalog, sid, ev.key, labels, facts)
        if kept is not None:
            source = source.keeping(kept)
        comparison = compare(facts, source, targets=pool)
        rows = table_rows(comparison)
        notes = list(comparison.notes)
        if kept is not None:
            notes.append(cond.sentence())
            for row, r in zip(rows, comparison.rows, strict=True):
                if r.target.id in cond.ids:
                    row["fit"] = "conditioned on (in fit)"
        ends = None
        if data.manifest.get("ensemble") and not comparison.sentence:
            ends = [compare(facts, source.at(q), targets=pool) for q in (0.05, 0.95)]
            _add_member_interval(rows, comparison, ends)
            sigma = discrepancy(getattr(ev, "book_params", None))
            if sigma is not None:
                add_model_error(rows, compare(facts, source.at(0.5), targets=pool), ends,
                                 sigma)
        out.append({"event": ev.key, "rows": rows,
                    "notes": notes, "sentence": comparison.sentence,
                    "calibrated": comparison.calibrated,
                    "far": [f"On {ev.key} the current parameters' {m}: the model does not "
                            "reproduce what decided this figure on that event, so weigh the "
                            "comparison of the sets there with care (see \u201cAgainst what "
                            "happened\u201d)."
                            for m in far_from_reality(comparison, ends, [labels[0]])],
                    "far_bad_debt": bool(far_from_reality(comparison, ends, [labels[0]],
                                                          ("bad_debt_usd",)))})
    return out


def _add_member_interval(rows: list[dict], mean, ends: list) -> None:
    """Add ``interval`` (the members' p5 - p95) and ``meets`` (yes / no) to display rows."""
    from backtest.calibration.formatting import format_figure, meets_interval

    for row, r, r5, r95 in zip(rows, mean.rows, *(c.rows for c in ends), strict=True):
        meets = meets_interval(r.target, r5.simulated, r95.simulated)
        if meets is None:
            row["interval"], row["meets"] = "\u2013", "\u2013"
            continue
        row["interval"] = (f"{format_figure(r5.simulated, r.target.unit)} \u2013 "
                           f"{format_figure(r95.simulated, r.target.unit)}")
        row["meets"] = "yes" if meets else "no"
