"""``liqbt book coverage``: do the ensemble's intervals contain what happened, event by event.

An ensemble states its uncertainty as the members' p5 - p95 (``docs/ensembles.md``). This
checks that statement against the calibration's own events: for each event of a calibrated
file, ``members`` books are drawn, each with its own book seed and its own joint draw of the
fitted parameters (:mod:`backtest.sweep.joint`, the jackknife covariance of the refits), and
run with the calibration's as-happened policy and books (:func:`backtest.calibration.fit.
Calibration.outcomes`); the members' p5 - p95 of the liquidated share of open interest is then
held against the real share.

Held out (the default), event ``i``'s members are drawn around the refit that never saw it
(``[[leave_one_out]]`` row ``i``) instead of the full fit: its interval is a prediction for an
event the centre was not fitted on. The spread is the jackknife covariance of all refits (the
one the ensemble draws); a jackknife without event ``i`` would need refits of refits, so it is
not recomputed. In sample (``held_out=False``) every event is drawn around the full fit, as an
ensemble does. With well-stated intervals about 90% of the events' real shares fall inside
their p5 - p95; far fewer means the intervals are too narrow.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backtest.calibration.fit import Calibration, load_calibration
from backtest.errors import ConfigError
from backtest.provenance import file_sha256
from backtest.sweep.ensemble import book_seed, quantile
from backtest.sweep.joint import joint_draw
from backtest.validation import read_toml

#: Measures the recorded model error applies to: what the check measured (liquidated share
#: of open interest) and the liquidated amount it is a share of.
BAND_MEASURES = ("liquidated_notional_usd", "liquidated_share_of_open_interest")
_Z90 = 1.6448536269514722  # the standard normal's 95th percentile


@dataclass(frozen=True)
class CoverageRow:
    """One event's interval against its real liquidated share of open interest.

    Attributes
    ----------
    event, venue, asset : str
        The calibration event (``[[event]]`` of the calibration file).
    real_low, real_high : float
        The real share's range, fractions of open interest at the window start.
    centre : str
        ``refit without the event`` (held out) or ``full fit``.
    shares : tuple of float
        Each member's simulated share, fraction, in member order.
    p5, p50, p95 : float
        Percentiles of ``shares`` (linear interpolation, numpy's default), fractions.
    """

    event: str
    venue: str
    asset: str
    real_low: float
    real_high: float
    centre: str
    shares: tuple[float, ...]
    p5: float
    p50: float
    p95: float

    @property
    def inside(self) -> bool:
        """Whether the real range meets the members' p5 - p95."""
        return self.real_low <= self.p95 and self.real_high >= self.p5

    @property
    def ratio(self) -> float:
        """The members' median over the geometric middle of the real range."""
        return self.p50 / math.sqrt(self.real_low * self.real_high)


def interval_coverage(fitted: str | Path, members: int = 30, seed: int = 0,
                      held_out: bool = True, config: str | Path | None = None,
                      store=None) -> list[CoverageRow]:
    """Run each calibration event ``members`` times and hold the interval against reality.

    Parameters
    ----------
    fitted : str or Path
        A calibrated perp file with leave-one-out refits (``liqbt book calibrate``).
    members : int
        Members per event (>= 2).
    seed : int
        Ensemble seed: member ``k`` draws its book seed and its refit weights from
        ``(seed, k)`` only (:func:`backtest.sweep.ensemble.quantile`), as an ensemble does.
    held_out : bool
        Centre event ``i``'s members on the refit without it (module docstring); else on the
        full fit.
    config : str or Path, optional
        The calibration file; default the one the fitted file names (``[fit] config``).
    store : str or Path, optional
        Tape store.

    Returns
    -------
    list of CoverageRow
        One per calibration event, in the file's order.

    Raises
    ------
    ConfigError
        ``members`` below 2, a file without refits, or refits that do not match the
        calibration's events.
    TapeError
        A missing tape.
    """
    if members < 2:
        raise ConfigError("coverage needs at least 2 members")
    raw = read_toml(fitted)
    config = config or raw.get("fit", {}).get("config")
    if not config:
        raise ConfigError("no calibration file: give one (the fitted file names none)", fitted)
    cal = Calibration.load(load_calibration(config), store=store)
    draw = joint_draw(Path(fitted), lambda f: f in cal.names)
    refits = [r for r in raw.get("leave_one_out", []) if isinstance(r, dict)]
    if draw is None or draw.fields != tuple(cal.names) or len(refits) != len(cal.data):
        raise ConfigError(f"needs one leave-one-out refit per calibration event "
                          f"({len(cal.data)}) recording every fitted parameter "
                          f"({', '.join(cal.names)}); the file has {len(refits)}", fitted)
    rows = []
    for i, d in enumerate(cal.data):
        if (refits[i].get("event"), refits[i].get("asset")) != (d.spec.event, d.spec.asset):
            raise ConfigError(f"leave-one-out row {i + 1} is {refits[i].get('event')} "
                              f"{refits[i].get('asset')}, the calibration's event "
                              f"{d.spec.event} {d.spec.asset}", fitted)
        centre = draw
        if held_out:
            centre = dataclasses.replace(draw, centre=tuple(
                float(refits[i][f"fitted_{f}"]) for f in draw.fields))
        shares = []
        for k in range(members):  # draw.fields are cal.names, in order (checked above)
            drawn = centre.values([quantile(seed, k, f"jackknife_weight_{j}")
                                   for j in range(draw.refits)])
            values = [drawn[n] for n in draw.names]
            shares.append(cal.outcomes(values, [d], book_seed(seed, k))[0].share)
        p5, p50, p95 = (float(x) for x in np.percentile(shares, [5, 50, 95]))
        rows.append(CoverageRow(d.spec.event, d.spec.venue, d.spec.asset, *d.share,
                                "refit without the event" if held_out else "full fit",
                                tuple(shares), p5, p50, p95))
    return rows


def coverage_path(fitted: str | Path) -> Path:
    """Return the coverage record of a calibrated file: ``<stem>-coverage.toml`` beside it."""
    fitted = Path(fitted)
    return fitted.with_name(f"{fitted.stem}-coverage.toml")


def summary(rows: list[CoverageRow]) -> dict:
    """Return the check in numbers.

    Events; inside the members' p5 - p95; medians within a factor 1.5; the root mean square of
    ``log(p50 / real)`` with the factor it stands for; the model's log error
    (:func:`discrepancy`); and how many real shares the interval widened by it contains
    (:func:`model_error_band`), with that error estimated on all the events and, held out, on
    all but the one checked.
    """
    logs = [math.log(r.ratio) for r in rows]
    rms = math.sqrt(sum(x * x for x in logs) / len(logs))
    spread = [(r.ratio, r.p5, r.p95) for r in rows]
    sigma = _sigma(spread)

    def meets(r: CoverageRow, s: float) -> bool:
        lo, hi = model_error_band(r.p5, r.p50, r.p95, s)
        return r.real_low <= hi and r.real_high >= lo

    held = [meets(r, _sigma(spread[:i] + spread[i + 1:])) for i, r in enumerate(rows)]
    return {"events": len(rows), "inside": sum(r.inside for r in rows),
            "medians_within_1_5": sum(abs(x) <= math.log(1.5) for x in logs),
            "rms_log_ratio": round(rms, 4), "typical_factor": round(math.exp(rms), 3),
            "model_error_log_sd": round(sigma, 4),
            "inside_with_model_error": sum(meets(r, sigma) for r in rows),
            "inside_with_model_error_held_out": sum(held)}


def _moments(events: list[tuple[float, float, float]]) -> tuple[float, float]:
    """Return the mean squared log error of the median and the mean member log variance.

    From ``(ratio, p5, p95)`` per event; each member log variance ``(log(p95 / p5) / 3.29)**2``.
    """
    ms = sum(math.log(ratio) ** 2 for ratio, _, _ in events) / len(events)
    var = sum((math.log(p95 / p5) / (2 * _Z90)) ** 2 for _, p5, p95 in events) / len(events)
    return ms, var


def _sigma(events: list[tuple[float, float, float]]) -> float:
    """Return the model's log error from ``(ratio, p5, p95)`` per event (:func:`discrepancy`)."""
    ms, var = _moments(events)
    return math.sqrt(max(ms - var, 0.0))


def _recorded(record: dict | None) -> list[tuple[float, float, float]]:
    """Return ``(ratio, p5, p95)`` of each event of a record (:func:`_record`; None: none)."""
    return [(e["ratio"], e["p5"], e["p95"]) for e in (record or {}).get("event", [])
            if e.get("p5", 0) > 0 and e.get("ratio")]


def write_coverage(fitted: str | Path, rows: list[CoverageRow], members: int, seed: int,
                   command: str, when: str) -> Path:
    """Write the check to :func:`coverage_path` (TOML, whole or not at all).

    ``[coverage]`` holds the settings and :func:`summary`; ``[[coverage.event]]`` one row per
    event (real range, p5 / p50 / p95, p50 over the real range's geometric middle, inside).
    """
    from backtest.atomic import atomic_path
    from backtest.calibration.fitted import toml_table

    head = {"fitted": Path(fitted).name, "fitted_sha256": file_sha256(fitted),
            "members": members, "seed": seed,
            "centre": rows[0].centre, "measured": when, **summary(rows)}
    lines = [f"# Written by `{command}`: do not edit by hand; re-run.", ""]
    lines += toml_table("coverage", head)
    for r in rows:
        lines += toml_table("coverage.event", {
            "event": r.event, "venue": r.venue, "asset": r.asset, "real_low": r.real_low,
            "real_high": r.real_high, "p5": round(r.p5, 6), "p50": round(r.p50, 6),
            "p95": round(r.p95, 6), "ratio": round(r.ratio, 4), "inside": r.inside},
            array=True)
    with atomic_path(coverage_path(fitted)) as tmp:
        tmp.write_text("\n".join(lines), encoding="utf-8")
    return coverage_path(fitted)


def _record(fitted: str | Path | None) -> dict | None:
    """Return the ``[coverage]`` table recorded for ``fitted``, or None.

    None too when the record was made on another version of the file (its ``fitted_sha256``
    differs: refitted since), so a stale check is never quoted. A file an ensemble wrote for a
    book drawn from a calibrated file at another size or for a venue (the same fitted
    parameters; ``[fit] drawn_from`` and ``drawn_from_sha256``) takes that file's record.
    """
    if fitted is None or not Path(fitted).is_file():
        return None
    if not coverage_path(fitted).is_file():
        fit = read_toml(fitted).get("fit", {})
        source = fit.get("drawn_from")
        if source and Path(source).is_file() and file_sha256(source) == fit.get(
                "drawn_from_sha256"):
            return _record(source)
        return None
    c = read_toml(coverage_path(fitted)).get("coverage", {})
    if c.get("fitted") != Path(fitted).name or c.get("fitted_sha256") != file_sha256(fitted):
        return None
    return c


def discrepancy(fitted: str | Path | None) -> float | None:
    """Return the model's own log error recorded for ``fitted``, or None without a record.

    The standard deviation of ``log(real / simulated)`` the members' spread does not explain.

    From the recorded events: the mean squared log error of the members' median less the
    members' mean log variance (each ``(log(p95 / p5) / 3.29)**2``, a normal's p5 - p95 being
    3.29 standard deviations), floored at 0 (Kennedy and O'Hagan 2001, "Bayesian calibration
    of computer models", JRSS B 63(3): the model discrepancy).
    """
    events = _recorded(_record(fitted))
    return _sigma(events) if events else None


def point_error(fitted: str | Path | None) -> float | None:
    """Return the log error of one run's figure on a book from ``fitted``, or None.

    A single run is one member: its held-out error is the recorded members' median error and
    their own spread together, ``sqrt(mean(log(p50 / real)**2) + mean(member log variance))``.
    None without a current coverage record.
    """
    return _point_error(_recorded(_record(fitted)))


def _point_error(events: list[tuple[float, float, float]]) -> float | None:
    if not events:
        return None
    ms, var = _moments(events)
    return math.sqrt(ms + var)


def add_point_error(rows: list[dict], comparison, fitted: str | Path | None) -> str | None:
    """Widen one run's liquidation rows by its recorded log error; return the sentence saying so.

    The band of :func:`add_model_error` with one run as its own p5 and p95 and
    :func:`point_error` as the log error, for ``liqbt validate RUN`` and the run report.

    Parameters
    ----------
    rows : list of dict
        Display rows of ``comparison`` (:func:`backtest.calibration.compare.table_rows`),
        changed in place.
    comparison : backtest.calibration.compare.Comparison
    fitted : str or Path or None
        The calibrated file the run's book was drawn from (``RunFacts.calibration``).

    Returns
    -------
    str or None
        The note for the reader; None (rows unchanged) without a current coverage record.
    """
    c = _record(fitted)
    sigma = _point_error(_recorded(c))
    if sigma is None:
        return None
    add_model_error(rows, comparison, [comparison, comparison], sigma)
    where = "held out" if c.get("centre") == "refit without the event" else "in sample"
    return (f"Liquidation figures carry a 90% band for the model's error, from the "
            f"{c['events']} past events this book was calibrated on ({where}; liqbt book "
            f"coverage, {c['members']} members, {c['measured']}): one run's log error "
            f"{sigma:.2f}, a factor {math.exp(_Z90 * sigma):.1f} either way. Other figures "
            "(bad debt, losses) have no such check.")


def add_model_error(rows: list[dict], median, ends: list, sigma: float) -> None:
    """Add ``band`` and ``band_meets`` to the display rows of liquidation figures.

    ``band`` is the interval ``ends`` (the p5 and p95 comparisons; a point run passes its own
    comparison twice) around ``median`` widened by the model's log error ``sigma``
    (:func:`model_error_band`), ``band_meets`` whether the real range meets it ("yes", "no");
    rows of other measures than :data:`BAND_MEASURES` get neither, nor do dollar rows of an
    unsized book (``RunFacts.unsized``: they scale with its account count).

    Parameters
    ----------
    rows : list of dict
        Display rows (:func:`backtest.calibration.compare.table_rows`), changed in place.
    median : backtest.calibration.compare.Comparison
        The comparison the rows come from (an ensemble's median, or the run).
    ends : list of Comparison
        The p5 and p95 comparisons, rows in the same order.
    sigma : float
        Log standard deviation (:func:`discrepancy`, or :func:`point_error` for one run).
    """
    from backtest.calibration.compare import scales_with_accounts
    from backtest.calibration.formatting import format_figure, meets_interval

    for row, r, r5, r95 in zip(rows, median.rows, *(c.rows for c in ends), strict=True):
        if (r.target.measure not in BAND_MEASURES or r.simulated is None
                or scales_with_accounts(median, r.target)):
            continue
        lo, hi = model_error_band(r5.simulated, r.simulated, r95.simulated, sigma)
        meets = meets_interval(r.target, lo, hi)
        row["band"] = (f"{format_figure(lo, r.target.unit)} \u2013 "
                       f"{format_figure(hi, r.target.unit)}")
        row["band_meets"] = {True: "yes", False: "no", None: "\u2013"}[meets]


def model_error_band(p5: float, p50: float, p95: float, sigma: float) -> tuple[float, float]:
    """Return the members' 90% interval widened by the model's log error ``sigma``.

    The members' log spread (from ``p5`` and ``p95``, a normal's 3.29 standard deviations) and
    ``sigma`` add in variance around the median: ``p50 */ exp(1.645 * sqrt(v + sigma**2))``.
    Zero or negative figures give ``(p5, p95)`` unchanged (no log scale).
    """
    if min(p5, p50, p95) <= 0.0:
        return p5, p95
    v = (math.log(p95 / p5) / (2 * _Z90)) ** 2
    f = math.exp(_Z90 * math.sqrt(v + sigma ** 2))
    return p50 / f, p50 * f


def coverage_sentence(fitted: str | Path | None) -> str | None:
    """Return what the recorded check says about an ensemble's intervals, or None.

    None without a calibrated file or without its coverage record (:func:`coverage_path`,
    written by ``liqbt book coverage --write``) naming it.
    """
    c = _record(fitted)
    if c is None:
        return None
    where = "held out" if c.get("centre") == "refit without the event" else "in sample"
    events = _recorded(c)
    sigma = _sigma(events) if events else None
    band = ("" if sigma is None else
            "; the liquidation figures also carry it widened by that error (log standard "
            f"deviation {sigma:.2f}, what the members' spread leaves of the held-out errors)")
    return (f"How far to trust the members' p5 - p95: on the {c['events']} past events this "
            f"book was calibrated on ({where}; liqbt book coverage, {c['members']} members, "
            f"{c['measured']}) it contained the real liquidated share of open interest in "
            f"{c['inside']}, and the members' median was within a factor 1.5 of it in "
            f"{c['medians_within_1_5']} (typical error a factor {c['typical_factor']:.2f}). "
            "The interval spreads the fitted parameters and the book's draw, not the model's "
            f"own error, so read it as a lower bound on the uncertainty{band}.")


__all__ = ["BAND_MEASURES", "CoverageRow", "add_model_error", "add_point_error",
           "coverage_path", "coverage_sentence", "discrepancy", "interval_coverage",
           "model_error_band", "point_error", "summary", "write_coverage"]
