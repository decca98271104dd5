"""``liqbt book coverage``: do the ensemble's intervals contain what happened, event by event?

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

from backtest.calibration.fit import Calibration, apply, load_calibration, simulate_event
from backtest.errors import ConfigError
from backtest.policies import pack_policy
from backtest.sweep.ensemble import book_seed, quantile
from backtest.sweep.joint import joint_draw
from backtest.validation import read_toml


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
        policy = pack_policy(cal.policy, int(np.median(np.diff(d.timestamp)) // 1000))
        shares = []
        for k in range(members):
            drawn = centre.values([quantile(seed, k, f"jackknife_weight_{j}")
                                   for j in range(draw.refits)])
            values = [drawn[n] for n in draw.names]
            params, response = apply(cal.base, cal.response, list(draw.fields), values)
            shares.append(simulate_event(d, params, response, policy, cal.cfg.accounts,
                                         book_seed(seed, k)).share)
        p5, p50, p95 = (float(x) for x in np.percentile(shares, [5, 50, 95]))
        rows.append(CoverageRow(d.spec.event, d.spec.venue, d.spec.asset, *d.share,
                                "refit without the event" if held_out else "full fit",
                                tuple(shares), p5, p50, p95))
    return rows


__all__ = ["CoverageRow", "interval_coverage"]
