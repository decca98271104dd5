"""The governance report's verdicts: the summary table, the recommendation and its robustness.

Every figure is the mean over units (ensemble members or seeds) of a measure of
:data:`backtest.report.governance_data.MEASURES`, current against each proposed parameter set,
per scenario and over all of them; the recommendation reads the same figures and the
frontier's dominating sets (:mod:`backtest.report.governance_stats`).
"""

from __future__ import annotations

from dataclasses import dataclass

from backtest.report import build
from backtest.report import governance_stats as gstats
from backtest.report.governance_data import MEASURES, GovernanceData
from backtest.results.metrics import METRICS


def _metric(name: str):
    return next(m for m in METRICS if m.name == name)


@dataclass
class Change:
    """A proposed value and its change against current."""

    text: str
    delta: str
    verdict: str  # better | worse | same
    interval: str = ""


def _change(cur: float | None, new: float | None, unit: str, better: str) -> Change:
    text = build.format_value(new, unit)
    if cur is None or new is None:
        return Change(text, "", "same")
    if unit == "fraction":
        diff = new - cur
        delta = f"{100 * diff:+.2f} pts"
    else:
        diff = new - cur
        delta = (_signed_pct(100 * diff / abs(cur)) if cur else
                 ("+" + build.format_value(diff, unit) if diff > 0 else ""))
    tol = 1e-9 * max(abs(cur), abs(new), 1.0)
    if abs(diff) <= max(tol, 0.5 if unit == "USD" else 1e-6):
        return Change(text, "no change", "same")
    good = diff < 0 if better == "min" else diff > 0
    return Change(text, delta, "better" if good else "worse")


def interval_text(iv: tuple[float, float, float] | None, unit: str) -> str:
    """Return ``"p5–p95 $1.2M – $3.4M"`` for an interval, empty when degenerate.

    Bounds are compact (:func:`backtest.calibration.formatting.format_figure`: three significant
    digits, ``k`` / ``M`` / ``B``).
    """
    from backtest.calibration.formatting import format_figure

    if iv is None or abs(iv[2] - iv[0]) <= (0.5 if unit == "USD" else 1e-9):
        return ""
    return f"p5–p95 {format_figure(iv[0], unit)} – {format_figure(iv[2], unit)}"


def summary_table(data: GovernanceData) -> dict:
    """Return the per-event table: per scenario (and all), each measure, current vs proposed.

    Every value is the mean over units (ensemble members or seeds) with, when there are
    several, the 5th–95th percentile range over units.

    Returns
    -------
    dict
        ``measures`` (label, unit, direction), ``rows`` (``name``, ``cells``: per measure
        ``current`` text, ``current_interval`` text and ``proposed``: list of :class:`Change`
        with ``interval`` text), ``left_out``: labels of the measures left out because no
        cell defines them (a portfolio market has no auto-deleveraging).
    """
    named = data.named()
    cur, props = named[0], named[1:]
    vals = data.values
    defined = {m for m, _ in MEASURES if m in vals.columns
               and (vals.height == 0 or vals[m].null_count() < vals.height)}
    measures = [(_metric(m), d) for m, d in MEASURES if m in defined]
    left_out = [_metric(m).label for m, _ in MEASURES if m not in defined]
    rows = []
    for sc in [None, *data.scenarios]:
        cells = []
        for m, d in measures:
            c = data.value(sc, cur.label, m.name)
            proposed = []
            for p in props:
                ch = _change(c, data.value(sc, p.label, m.name), m.unit, d)
                ch.interval = interval_text(data.interval(sc, p.label, m.name), m.unit)
                proposed.append(ch)
            cells.append({"current": build.format_value(c, m.unit),
                          "current_interval": interval_text(
                              data.interval(sc, cur.label, m.name), m.unit),
                          "proposed": proposed})
        name = "All events" if sc is None else sc.key
        rows.append({"name": name, "total": sc is None, "cells": cells})
    return {"measures": [{"label": m.label, "unit": m.unit, "better": d} for m, d in measures],
            "rows": rows, "proposed": props, "current": cur, "left_out": left_out}


def robustness_sentence(data: GovernanceData, label: str) -> str:
    """Return the robustness of a proposed set in plain words.

    E.g. "“X” leaves less bad debt in 47 of 50 ensemble members and on 4 of 5 events; user
    losses to liquidation are higher on 3 events (a +2.5%, b +2.8%, c +19.7%)."
    """
    cur = data.named()[0].label
    r = gstats.robustness(data.unit_values, cur, label, data.scenario_keys())
    units = data.units
    text = (f"\u201c{label}\u201d leaves less bad debt in {r.units_better} of {r.units} "
            f"{units.words(r.units)} and on {r.events_better} of {r.events} "
            f"event{'s' if r.events != 1 else ''}")
    if r.units_worse:
        text += f" (more in {r.units_worse} {units.words(r.units_worse)})"
    if r.events_worse_bad_debt:
        k = r.events_worse_bad_debt
        text += f"; it leaves more bad debt on {k} event{'s' if k != 1 else ''}"
    if r.user_loss_higher:
        rises = ", ".join(f"{k} {_signed_pct(p)}" if p is not None else f"{k} from $0"
                          for k, p in r.user_loss_higher)
        n = len(r.user_loss_higher)
        text += (f"; user losses to liquidation are higher on {n} "
                 f"event{'s' if n != 1 else ''} ({rises})")
    else:
        text += "; user losses to liquidation are higher on no event"
    return text + "."


def recommendation(data: GovernanceData) -> dict:
    """Return the recommendation: a headline and plain-words sentences per proposed set.

    A proposed set is recommended when, summed over every event, it leaves less bad debt and
    no more user losses to liquidation (within 0.1%) than the current parameters; rejected
    when it is worse on one count and no better on the other (within 0.1%); otherwise it is a
    trade-off the sentence quantifies. Each set's
    sentences add its robustness (:func:`robustness_sentence`: in how many units and on how
    many events it leaves less bad debt, and every event on which user losses rise), the
    5th–95th percentile ranges of the totals over units, and the swept sets that beat both
    it and the current parameters on both counts. The headline adds the events on which the
    current parameters' held-out bad debt misses the real one by more than a factor 1.5 (the
    warnings say by how much), since the verdict rests on bad debt.

    Returns
    -------
    dict
        ``headline``, ``verdict`` (``adopt``, ``keep`` or ``trade-off``), ``sentences``,
        ``dominating`` (proposed label -> list of (marker, label, bad debt, user losses)).
    """
    named = data.named()
    cur = named[0]
    bd0 = data.value(None, cur.label, "bad_debt_usd") or 0.0
    ul0 = data.value(None, cur.label, "user_loss_to_liquidation_usd") or 0.0
    sentences, adopt, worse = [], [], 0
    n = len(data.scenarios)
    dom = data.dominating()
    markers = dominating_markers(data)
    pts = data.points()
    what = data.units.words()

    def ranges(label: str) -> str:
        parts = []
        for m, words in (("bad_debt_usd", "bad debt"),
                         ("user_loss_to_liquidation_usd", "user losses")):
            t = interval_text(data.interval(None, label, m), "USD")
            if t:
                parts.append(words + " " + t.split(" ", 1)[1])
        return (f" Across {data.units.count} {what}, the 5th\u201395th percentile range of "
                f"the totals is {'; '.join(parts)}." if parts else "")

    for p in named[1:]:
        bd = data.value(None, p.label, "bad_debt_usd") or 0.0
        ul = data.value(None, p.label, "user_loss_to_liquidation_usd") or 0.0
        rob = gstats.robustness(data.unit_values, cur.label, p.label, data.scenario_keys())
        d_bd, d_ul = bd - bd0, ul - ul0
        tol_bd, tol_ul = max(0.5, 1e-3 * abs(bd0)), max(0.5, 1e-3 * abs(ul0))
        name = f"\u201c{p.label}\u201d"
        facts = (f"bad debt {build.usd(bd0)} \u2192 {build.usd(bd)}"
                 f"{_pct(d_bd, bd0)}, user losses to liquidation {build.usd(ul0)} \u2192 "
                 f"{build.usd(ul)}{_pct(d_ul, ul0)}, means over {data.units.count} {what} summed "
                 f"over {n} "
                 f"event{'s' if n != 1 else ''}")
        if d_bd < -tol_bd and d_ul <= tol_ul:
            adopt.append((bd, p.label, len(rob.user_loss_higher)))
            if rob.user_loss_higher:
                k = len(rob.user_loss_higher)
                text = (f"Adopt {name}: over all events it leaves less bad debt and no more "
                        f"user losses in total, but user losses rise on {k} of {n} "
                        f"event{'s' if n != 1 else ''} ({facts}).")
            else:
                text = (f"Adopt {name}: it leaves less bad debt without raising user losses "
                        f"on any event ({facts}).")
        elif d_bd > tol_bd and d_ul > tol_ul:
            worse += 1
            text = f"Do not adopt {name}: it is worse on both counts ({facts})."
        elif abs(d_bd) <= tol_bd and abs(d_ul) <= tol_ul:
            text = f"{name} makes no material difference ({facts})."
        elif abs(d_bd) <= tol_bd and d_ul > tol_ul:
            worse += 1
            text = (f"Do not adopt {name}: it raises user losses to liquidation by "
                    f"{build.usd(d_ul)} without leaving materially less bad debt ({facts}).")
        elif d_bd > tol_bd and abs(d_ul) <= tol_ul:
            worse += 1
            text = (f"Do not adopt {name}: it adds {build.usd(d_bd)} of bad debt without "
                    f"sparing users materially ({facts}).")
        elif abs(d_bd) <= tol_bd:
            text = (f"{name} spares users {build.usd(-d_ul)} of liquidation losses without "
                    f"changing bad debt materially ({facts}).")
        elif d_bd < -tol_bd:
            rate = d_ul / -d_bd
            text = (f"Trade-off for {name}: it avoids {build.usd(-d_bd)} of bad debt at the "
                    f"cost of {build.usd(d_ul)} more user losses ({build.usd(rate)} of user "
                    f"losses per dollar of bad debt avoided; {facts}).")
        else:
            text = (f"Trade-off for {name}: it spares users {build.usd(-d_ul)} of "
                    f"liquidation losses but adds {build.usd(d_bd)} of bad debt ({facts}).")
        text += " " + robustness_sentence(data, p.label) + ranges(p.label)
        better_sets = dom.get(p.label, [])
        if better_sets:
            listed = "; ".join(
                f"{markers[f]} \u201c{f}\u201d (bad debt {build.usd(pts[f][1])}, user "
                f"losses {build.usd(pts[f][0])})" for f in better_sets)
            k = len(better_sets)
            text += (f" {k} swept set{'s' if k != 1 else ''} beat{'' if k != 1 else 's'} both "
                     f"the current parameters and {name} on both bad debt and user losses "
                     f"(labelled on the frontier): {listed}.")
        else:
            text += (f" No swept set beats both the current parameters and {name} on both "
                     "counts.")
        sentences.append(text)
    dominating = {p: [(markers[f], f, pts[f][1], pts[f][0]) for f in fs]
                  for p, fs in dom.items()}
    out = _verdict(data, named, adopt, worse, n, sentences, dominating)
    missed = [ev["event"] for ev in data.reality if ev.get("far_bad_debt")]
    if missed:
        out["headline"] += (f" The model misses the real bad debt on {len(missed)} of {n} "
                            f"event{'s' if n != 1 else ''} ({', '.join(missed)}; see the "
                            "warnings): there the bad-debt comparison is the model's, not the "
                            "event's.")
    return out


def _verdict(data: GovernanceData, named: list, adopt: list, worse: int, n: int,
             sentences: list[str], dominating: dict) -> dict:
    """Return the recommendation's verdict and headline (see :func:`recommendation`)."""
    cur = named[0]
    if adopt:
        bd_best, best, rises = min(adopt)
        rob = gstats.robustness(data.unit_values, cur.label, best, data.scenario_keys())
        if rises:
            tail = (f"It would have left less bad debt across the events tested and no more "
                    f"user losses to liquidation in total, but user losses are higher on "
                    f"{rises} of {n} events.")
        else:
            tail = ("It would have left less bad debt across the events tested without "
                    "raising user losses to liquidation on any event.")
        tail += (f" Less bad debt in {rob.units_better} of {rob.units} "
                 f"{data.units.words(rob.units)} and on {rob.events_better} of {n} events.")
        return {"verdict": "adopt", "sentences": sentences, "dominating": dominating,
                "headline": f"Recommendation: adopt \u201c{best}\u201d. {tail}"}
    if worse == len(named) - 1:
        return {"verdict": "keep", "sentences": sentences, "dominating": dominating,
                "headline": "Recommendation: keep the current parameters. Every proposed "
                            "set would have been worse on one count and no better on the "
                            "other (bad debt, user losses to liquidation)."}
    return {"verdict": "trade-off", "sentences": sentences, "dominating": dominating,
            "headline": "No proposed set is better on both bad debt and user losses: the "
                        "choice is a trade-off, quantified below."}


def dominating_markers(data: GovernanceData) -> dict[str, str]:
    """Return a short marker (``D1``, ``D2``, ...) per swept set that dominates a proposal.

    Markers label the points on the frontier and name the sets in the text; the order is
    the order of first appearance over proposed sets.
    """
    out: dict[str, str] = {}
    for labels in data.dominating().values():
        for f in labels:
            out.setdefault(f, f"D{len(out) + 1}")
    return out


def _pct(diff: float, base: float) -> str:
    if not base:
        return ""
    return f" ({_signed_pct(100 * diff / abs(base))})"


def _signed_pct(pct: float) -> str:
    """Format a percentage change with a sign: one decimal, two below 0.1% (``-0.01%``)."""
    return f"{pct:+.1f}%" if abs(pct) >= 0.1 or pct == 0 else f"{pct:+.2f}%"
