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

a multivariate normal draw whose covariance is exactly ``C`` (no matrix decomposition; both
are taken in the coordinates below). Drawn
this way, parameters the refits move together (more leverage with more traders who cure,
where their effects on the liquidations offset) stay together, which independent draws of
each parameter break.

The draw is made in unbounded coordinates, as the fit's optimiser works
(:mod:`backtest.calibration.fit`): a field bounded on both sides by its model
(:class:`backtest.books.generate.BookParams`, :class:`backtest.engine.config.ResponseConfig`)
on the logit scale of its position between the bounds, a field bounded below only on the log
scale of its distance to the bound, so a drawn value is always valid and a positive parameter
with a large relative error (a reaction delay of 32 +- 14 minutes) stays positive instead of
piling up at 0. (Where the fit or a refit sits on a bound, that field is drawn on its own
scale and clipped.)
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
    """Return a fitted field's ensemble input name: a book field's own, ``response_<field>``."""
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


def _coordinate(field: str, values: Sequence[float]) -> str:
    """Return the unbounded coordinate ``field`` is drawn in: ``logit``, ``log`` or ``linear``.

    See the module docstring; ``values`` (the fit and its refits) must lie strictly inside the
    field's bounds for ``logit`` or ``log``.
    """
    lo, hi = field_bounds(field)
    if math.isfinite(lo) and math.isfinite(hi):
        return "logit" if all(lo < v < hi for v in values) else "linear"
    return "log" if math.isfinite(lo) and all(v > lo for v in values) else "linear"


def _to(field: str, coordinate: str, v: float) -> float:
    lo, hi = field_bounds(field)
    if coordinate == "logit":
        return math.log((v - lo) / (hi - v))
    return math.log(v - lo) if coordinate == "log" else v


def _back(field: str, coordinate: str, x: float) -> float:
    lo, hi = field_bounds(field)
    if coordinate == "logit":
        return lo + (hi - lo) / (1.0 + math.exp(-x))
    return lo + math.exp(x) if coordinate == "log" else x


@dataclass(frozen=True)
class JointDraw:
    """The fitted parameters of one calibrated file, drawn together (module docstring).

    Attributes
    ----------
    fields : tuple of str
        The fitted fields drawn (``BookParams`` or ``[response]`` fields), in the fit's order.
    centre : tuple of float
        The full fit of each field, in the field's unit.
    standard_errors : tuple of float
        The jackknife standard error of each field, in the field's unit.
    coordinates : tuple of str
        The coordinate each field is drawn in (``logit``, ``log`` or ``linear``).
    deviations : tuple of tuple of float
        One row per refit (``n`` rows of ``len(fields)``), in the unbounded coordinates:
        ``sqrt((n - 1) / n)`` x the refit's coordinate less the refits' mean, so that
        ``deviations^T deviations`` is the jackknife covariance there.
    source : str
        The calibrated file.
    """

    fields: tuple[str, ...]
    centre: tuple[float, ...]
    standard_errors: tuple[float, ...]
    coordinates: tuple[str, ...]
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

    def correlation(self, a: str, b: str) -> float:
        """Return the jackknife correlation of fields ``a`` and ``b``.

        In the unbounded coordinates; 0 where either does not vary.
        """
        i, j = self.fields.index(a), self.fields.index(b)
        sa, sb = (math.sqrt(sum(row[k] ** 2 for row in self.deviations)) for k in (i, j))
        if sa == 0.0 or sb == 0.0:
            return 0.0
        return sum(row[i] * row[j] for row in self.deviations) / (sa * sb)

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
            c = self.coordinates[j]
            x = _to(field, c, self.centre[j]) + sum(
                wi * row[j] for wi, row in zip(w, self.deviations, strict=True))
            lo, hi = field_bounds(field)
            out[name] = min(max(_back(field, c, x), lo), hi)
        return out

    def describe(self, field: str) -> str:
        """Short text of one field's draw: ``0.132 +- 0.0029 (jackknife), joint ...``."""
        j = self.fields.index(field)
        return (f"{self.centre[j]:.6g} +- {self.standard_errors[j]:.4g} (jackknife), joint "
                f"with {len(self.fields) - 1} other fitted parameters ({self.refits} refits)")


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
    n, scale = len(rows), math.sqrt((len(rows) - 1) / len(rows))
    centre, errors, coordinates, columns = [], [], [], []
    for f in fields:
        refits = [float(r[f"fitted_{f}"]) for r in rows]
        mean = sum(refits) / n
        centre.append(float(fit.get(f"fitted_{f}", mean)))
        errors.append(scale * math.sqrt(sum((v - mean) ** 2 for v in refits)))
        coordinates.append(_coordinate(f, [centre[-1], *refits]))
        x = [_to(f, coordinates[-1], v) for v in refits]
        columns.append([scale * (v - sum(x) / n) for v in x])
    deviations = tuple(zip(*columns, strict=True))
    return JointDraw(fields, tuple(centre), tuple(errors), tuple(coordinates), deviations,
                     str(path))


__all__ = ["JointDraw", "field_bounds", "input_name", "joint_draw"]
