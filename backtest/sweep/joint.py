"""A calibration's fitted parameters drawn together, with the jackknife covariance of its refits.

A calibrated book file (``liqbt book calibrate``, ``docs/calibration.md``) holds the full fit
``theta`` of its ``k`` fitted parameters (``[fit] fitted_<field>``) and one refit without each
of its ``n`` events, ``theta_i`` (``[[leave_one_out]] fitted_<field>``). The jackknife
estimate of the fit's covariance is

    C = (n - 1) / n * sum_i (theta_i - mean) (theta_i - mean)^T

(Efron and Stein 1981, "The jackknife estimate of variance", Annals of Statistics 9(3); Efron
1982, "The jackknife, the bootstrap and other resampling plans", ch. 3). An ensemble member
draws ``n`` independent standard normal weights ``w_i`` and takes

    theta_member = theta + sqrt((n - 1) / n) * sum_i w_i (theta_i - mean),

a multivariate normal draw whose covariance is exactly ``C`` (no matrix decomposition). Drawn
this way, parameters the refits move together (more leverage with more traders who cure,
where their effects on the liquidations offset) stay together, which independent draws of
each parameter break. Each value is clipped to its field's bounds
(:class:`backtest.books.generate.BookParams`, :class:`backtest.engine.config.ResponseConfig`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist

from backtest.books.generate import BookParams
from backtest.engine.config import ResponseConfig
from backtest.validation import read_toml

_NORMAL = NormalDist()


def input_name(field: str) -> str:
    """The ensemble input name of a fitted field: a book field's own, ``response_<field>``."""
    return field if field in BookParams.model_fields else f"response_{field}"


def field_bounds(field: str) -> tuple[float, float]:
    """Return the closed interval a drawn value of ``field`` is clipped to.

    From the field's constraints on :class:`BookParams` or :class:`ResponseConfig`; an open
    end (``gt``, ``lt``) becomes the next float inside it.
    """
    model = BookParams if field in BookParams.model_fields else ResponseConfig
    lo, hi = -math.inf, math.inf
    for c in model.model_fields[field].metadata:  # annotated_types Ge / Gt / Le / Lt
        if getattr(c, "ge", None) is not None:
            lo = float(c.ge)
        elif getattr(c, "gt", None) is not None:
            lo = math.nextafter(float(c.gt), math.inf)
        elif getattr(c, "le", None) is not None:
            hi = float(c.le)
        elif getattr(c, "lt", None) is not None:
            hi = math.nextafter(float(c.lt), -math.inf)
    return lo, hi


@dataclass(frozen=True)
class JointDraw:
    """The fitted parameters of one calibrated file, drawn together (module docstring).

    Attributes
    ----------
    fields : tuple of str
        The fitted fields drawn (``BookParams`` or ``[response]`` fields), in the fit's order.
    centre : tuple of float
        The full fit of each field, in the field's unit.
    deviations : tuple of tuple of float
        One row per refit (``n`` rows of ``len(fields)``): ``sqrt((n - 1) / n)`` x the refit's
        value less the refits' mean, so that ``deviations^T deviations`` is the jackknife
        covariance.
    source : str
        The calibrated file.
    """

    fields: tuple[str, ...]
    centre: tuple[float, ...]
    deviations: tuple[tuple[float, ...], ...]
    source: str

    @property
    def names(self) -> tuple[str, ...]:
        """Ensemble input names of :attr:`fields` (:func:`input_name`)."""
        return tuple(input_name(f) for f in self.fields)

    @property
    def refits(self) -> int:
        """The number of refits ``n`` (the weights a member draws)."""
        return len(self.deviations)

    def standard_errors(self) -> tuple[float, ...]:
        """The jackknife standard error of each field, in the field's unit."""
        return tuple(math.sqrt(sum(row[j] ** 2 for row in self.deviations))
                     for j in range(len(self.fields)))

    def correlation(self, a: str, b: str) -> float:
        """The jackknife correlation of fields ``a`` and ``b`` (0 where either is fixed)."""
        i, j = self.fields.index(a), self.fields.index(b)
        se = self.standard_errors()
        if se[i] == 0.0 or se[j] == 0.0:
            return 0.0
        return sum(row[i] * row[j] for row in self.deviations) / (se[i] * se[j])

    def values(self, quantiles: Sequence[float]) -> dict[str, float]:
        """One draw: field input name -> value, from one quantile in [0, 1) per refit.

        Raises
        ------
        ValueError
            ``quantiles`` does not hold one value per refit.
        """
        if len(quantiles) != self.refits:
            raise ValueError(f"need {self.refits} quantiles (one per refit), got "
                             f"{len(quantiles)}")
        w = [_NORMAL.inv_cdf(min(max(u, 1e-12), 1.0 - 1e-12)) for u in quantiles]
        out = {}
        for j, (field, name) in enumerate(zip(self.fields, self.names, strict=True)):
            lo, hi = field_bounds(field)
            v = self.centre[j] + sum(wi * row[j] for wi, row in zip(w, self.deviations,
                                                                     strict=True))
            out[name] = min(max(v, lo), hi)
        return out

    def describe(self, field: str) -> str:
        """Short text of one field's draw: ``normal 0.132 sd 0.0029, joint (12 refits)``."""
        j = self.fields.index(field)
        return (f"normal {self.centre[j]:.6g} sd {self.standard_errors()[j]:.4g}, joint with "
                f"{len(self.fields) - 1} other fitted parameters ({self.refits} refits)")


def joint_draw(path: Path | None, keep: Callable[[str], bool]) -> JointDraw | None:
    """Read the joint draw of a calibrated file's fitted fields that ``keep`` accepts.

    Parameters
    ----------
    path : Path or None
        A calibrated book file (``[fit]`` and ``[[leave_one_out]]`` tables).
    keep : callable
        Field name -> whether it is drawn (a field the ensemble sets otherwise, or one that
        cannot matter for the run, is left out: the marginal of the others is the same draw
        without it).

    Returns
    -------
    JointDraw or None
        None without a file, without refits, or when no fitted field is kept. The fields are
        the file's ``[fit] fitted`` list (else every ``fitted_<field>`` of ``[fit]``) that
        every refit records.
    """
    if path is None:
        return None
    raw = read_toml(path)
    fit = raw.get("fit", {}) if isinstance(raw.get("book"), dict) else {}
    rows = [r for r in raw.get("leave_one_out", []) if isinstance(r, dict)]
    if not fit or not rows:
        return None
    listed = fit.get("fitted") or [k.removeprefix("fitted_") for k in fit
                                   if k.startswith("fitted_")]
    fields = tuple(f for f in listed if (f in BookParams.model_fields
                                         or f in ResponseConfig.model_fields)
                   and all(f"fitted_{f}" in r for r in rows) and keep(f))
    if not fields:
        return None
    n = len(rows)
    refits = [[float(r[f"fitted_{f}"]) for f in fields] for r in rows]
    mean = [sum(col) / n for col in zip(*refits, strict=True)]
    centre = tuple(float(fit.get(f"fitted_{f}", m)) for f, m in zip(fields, mean, strict=True))
    scale = math.sqrt((n - 1) / n)
    deviations = tuple(tuple(scale * (v - m) for v, m in zip(row, mean, strict=True))
                       for row in refits)
    return JointDraw(fields, centre, deviations, str(path))


__all__ = ["JointDraw", "field_bounds", "input_name", "joint_draw"]
