"""Ensembles: N members per sweep, each drawing the book seed and the uncertain inputs.

A sweep or proposal with an ``[ensemble]`` section runs every (event, policy, parameter set,
stress) cell once per member instead of once per entry of ``seeds``. Member ``k`` draws its
book seed and one value of each uncertain input from a generator seeded with
``(ensemble seed, k, input name)`` only, so member ``k``'s draw never depends on the number of
members, on the other inputs, on the events or on the parameter sets: every parameter set of a
member is simulated on the same book and market, and intervals across members compare sets
pair-wise. Each input is drawn as a quantile ``u`` in [0, 1) and mapped through the input's
range for each event, so one member sits at the same quantile of every event's range.

Example::

    [ensemble]
    members = 30
    seed = 1
    leverage_scale = { low = 0.12, high = 0.25 }                 # uniform
    size_factor = { distribution = "loguniform", low = 0.8, high = 1.25 }
    keeper_latency_minutes = { distribution = "choice", values = [0, 1, 5] }
    oracle_lag_minutes = false                                  # hold at the config's value

Inputs (:data:`INPUTS`; omitted: the default range of :func:`default_ranges`, from the
calibration where it gives one; ``false``: not varied):

========================== ==============================================================
``leverage_scale``          book ``leverage_scale`` (perps), absolute
``low_leverage_share``      book ``low_leverage_share`` (perps), fraction [0, 1]
``size_factor``             factor on the book's size (``size_usd``, or every position size)
``depth_factor``            factor on the market depth in use (``[market]`` depth fraction)
``permanent_fraction``      ``[market] permanent_fraction`` [0, 1]
``keeper_latency_minutes``  ``[keepers] latency_minutes``, minutes (keeper-liquidated policies)
``oracle_lag_minutes``      ``[oracle] lag_minutes``, minutes (lagged oracle only)
``response_share``          ``[response] share``, fraction [0, 1]
``response_delay_minutes``  ``[response] delay_minutes``, minutes
``response_target_health``  ``[response] target_health`` (loans): the health a responder
                            restores, the size of its cure (drawn only where the
                            ``[ensemble]`` gives its range)
``keeper_capital_usd``      ``[keepers] capital_usd_per_step``, USD a step (keeper-liquidated
                            policies; drawn only where the ``[ensemble]`` gives its range)
``ltv_beta_a``              book ``ltv_beta_a`` (loans): the loan-to-value mean a loan-state
                            fit solves, between the fit's readings of the protocol's state
========================== ==============================================================

``fill_at_liquidation_price`` sets ``[execution] fill_price``: 0 fills at the trigger price (the
candle's worst), 1 at each account's liquidation price, the two ends of what a candle says
about a continuous engine (values of 0.5 and above read as 1; drawn only where the
``[ensemble]`` gives it, e.g. ``{ distribution = "choice", values = [0, 1] }``).

A calibrated book file with leave-one-out refits (``liqbt book calibrate``) has every fitted
parameter the ensemble does not set otherwise drawn together, from a multivariate normal with
the jackknife covariance of the refits (``fitted_parameters = "joint"``, the default;
:mod:`backtest.sweep.joint`), recorded under the same names (``leverage_scale``,
``response_share``, ``response_delay_minutes``) or the field's own (a book field, or
``response_<field>``, e.g. ``arrival_share``, ``response_perp_warning_health``).

See ``docs/ensembles.md`` for the defaults and their sources.

Why over 400 lines: each input appears three times, in the ``[ensemble]`` spec, in its default
range and in how a member's value is applied; kept in one module, adding or changing an input
is one edit in one place, and ``tests/test_sweep_ensemble.py`` mirrors it.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import (
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from backtest.books.generate import BookParams
from backtest.engine.config import MARKET_DEPTH_MULTIPLE_RANGE, MarketConfig, ResponseConfig
from backtest.strict import StrictModel
from backtest.sweep.joint import JointDraw, input_name, joint_draw
from backtest.validation import describe, read_toml

INPUTS = ("leverage_scale", "low_leverage_share", "size_factor", "depth_factor",
          "permanent_fraction", "keeper_latency_minutes", "oracle_lag_minutes",
          "response_share", "response_delay_minutes", "keeper_capital_usd", "ltv_beta_a",
          "response_target_health", "fill_at_liquidation_price")
"""The uncertain inputs an ensemble member draws (besides its book seed), in record order."""

_BOUNDS = {"low_leverage_share": (0.0, 1.0), "permanent_fraction": (0.0, 1.0),
           "response_share": (0.0, 1.0), "fill_at_liquidation_price": (0.0, 1.0)}
"""Inputs that are fractions (or 0/1 choices): a range outside [0, 1] is an error."""

DEFAULT_SIZE_FACTOR = (0.8, 1.25)
"""Book size factor range (log-uniform) where the calibration gives none."""
DEFAULT_DEPTH_FACTOR = (0.5, 2.0)
"""Depth factor range (log-uniform) of a venue-scope run: the 1% depth fraction is measured on
one venue and pair in 2025 (docs/market-impact.md, range 0.10-0.14) and transferred to other
years and assets. A whole-market scope draws the market multiple's range instead
(:func:`_depth_range`)."""
DEFAULT_PERMANENT_FRACTION = (0.25, 0.75)
"""Permanent share of impact (uniform) around the default 0.5."""
DEFAULT_KEEPER_LATENCY = (0.0, 5.0)
"""Keeper latency range, minutes (uniform), where the config has none."""
ENGINE_NOT_DRAWN = "not drawn: the venue's engine liquidates at once"
"""Why keeper latency is not drawn by default for policies with ``liquidator = "engine"``."""
HELD_BY_FIT = ("not drawn: held at the calibrated file's value, as the fit held it (no "
               "measured uncertainty; give a range in [ensemble] to draw it)")
"""Why a calibrated file's book field the fit did not fit (``low_leverage_share`` of the perp
fit) is not drawn by default."""
KEEPER_INPUTS = ("keeper_latency_minutes", "keeper_capital_usd")
"""Inputs that describe third-party keepers: drawn by default only for keeper-liquidated
policies (a policy's ``liquidator``, ``strategies/README.md``)."""
DEFAULT_ORACLE_LAG_FACTOR = (0.5, 1.5)
"""Lagged-oracle lag range as factors of the configured ``lag_minutes``."""
DEFAULT_RESPONSE_SHARE = (0.0, 0.7)
"""Share of responding borrowers for a book without a fitted response: from nobody to the
Morpho simulator's fit (70%, https://github.com/RahilBhavan/spine WRITEUP.md)."""
DEFAULT_RESPONSE_DELAY = (60.0, 180.0)
"""Reaction delay, minutes, for a book without a fitted response (the fit: about two hours)."""


class Draw(StrictModel):
    """The range or distribution of one uncertain input.

    Attributes
    ----------
    distribution : {"uniform", "loguniform", "choice"}
        ``uniform`` and ``loguniform`` (``low > 0``) between ``low`` and ``high``; ``choice``
        picks one of ``values`` with equal probability.
    low, high : float or None
        Range (``low <= high``), in the input's unit.
    values : list of float or None
        Choices (``choice`` only).
    """

    distribution: Literal["uniform", "loguniform", "choice"] = "uniform"
    low: float | None = None
    high: float | None = None
    values: list[float] | None = None

    @model_validator(mode="after")
    def _shape(self) -> Draw:
        if self.distribution == "choice":
            if not self.values or self.low is not None or self.high is not None:
                raise ValueError("a 'choice' takes 'values' (a non-empty list), not low/high")
            if not all(math.isfinite(v) for v in self.values):
                raise ValueError("'values' must be finite numbers")
            return self
        if self.values is not None:
            raise ValueError(f"'values' is for distribution = 'choice', not "
                             f"'{self.distribution}'")
        if self.low is None or self.high is None:
            raise ValueError("give both 'low' and 'high'")
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ValueError("'low' and 'high' must be finite")
        if self.low > self.high:
            raise ValueError(f"'low' ({self.low}) is above 'high' ({self.high})")
        if self.distribution == "loguniform" and self.low <= 0:
            raise ValueError("a 'loguniform' range needs low > 0")
        return self

    def ppf(self, u: float) -> float:
        """Map a quantile ``u`` in [0, 1) to a value of the range."""
        if self.distribution == "choice":
            return float(self.values[min(int(u * len(self.values)), len(self.values) - 1)])
        lo, hi = float(self.low), float(self.high)
        if self.distribution == "loguniform":
            return float(math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo))))
        return lo + u * (hi - lo)

    def describe(self) -> str:
        """Short text: ``uniform 0.1..0.2`` or ``choice [0, 1]``."""
        if self.distribution == "choice":
            return f"choice {self.values}"
        return f"{self.distribution} {self.low:.6g}..{self.high:.6g}"


InputSpec = Draw | Literal[False] | None


class EnsembleSpec(StrictModel):
    """The ``[ensemble]`` section of a sweep or proposal (see the module docstring).

    Attributes
    ----------
    members : int
        Members, 1..10,000; every cell runs once per member.
    seed : int
        Ensemble seed (>= 0); member ``k`` draws from ``(seed, k)`` only.
    leverage_scale, low_leverage_share, size_factor, depth_factor : Draw, False or None
        Range of each input (:data:`INPUTS`, units in the module docstring); None: the default
        range (:func:`default_ranges`); False: not varied.
    permanent_fraction, keeper_latency_minutes, oracle_lag_minutes : Draw, False or None
        As above.
    response_share, response_delay_minutes, keeper_capital_usd, ltv_beta_a : Draw, False or None
        As above (``keeper_capital_usd`` has no default range: it is drawn only when given;
        ``ltv_beta_a`` by default only for a loan-state fit with two readings).
    response_target_health, fill_at_liquidation_price : Draw, False or None
        As above; no default range (drawn only when given).
    fitted_parameters : {"joint", "independent"}
        How the parameters of a calibrated book file with leave-one-out refits are drawn.
        ``joint`` (default): every fitted parameter the ensemble does not set otherwise
        (given a range, or ``false``) from one multivariate normal around the full fit with
        the jackknife covariance of the refits (:mod:`backtest.sweep.joint`), so parameters
        the refits move together stay together. ``independent``: ``leverage_scale``,
        ``low_leverage_share`` and the response's share and delay each uniform over the full
        fit +- sqrt(3) x its jackknife standard error (:func:`_jackknife_range`), the other
        fitted parameters held at the full fit (the draw before 2026-12-06).
    condition_on : list of str
        Targets (ids in ``data/validation``, e.g. ``"maker-eth-topups-morning"``) the
        ensemble is conditioned on: ``liqbt validate`` shows the held-out figures over all
        members, then over the members whose figure of every such target lies within the real
        range, and a governance report is over those members throughout (history matching:
        the unknowns are drawn from their ranges, and the draws the observed figure rules out
        are set aside; ``docs/ensembles.md``). Empty: none.
    condition_policy : str or None
        The policy whose cells decide which members are kept (the policy that really ran, e.g.
        ``maker-flip`` on Black Thursday), so that every policy keeps the same members (the
        same draws of the unknowns); None: each policy's cells decide for that policy. In a
        proposal's sweep the current parameter set decides (a proposal refuses this field).

    Raises
    ------
    pydantic.ValidationError
        A malformed range, a negative value, a fraction above 1, a factor or leverage scale
        of 0 (wrapped into a ``ConfigError`` naming the file and field by the loaders).
    """

    members: int = Field(ge=1, le=10_000)
    seed: int = Field(default=0, ge=0)
    leverage_scale: InputSpec = None
    low_leverage_share: InputSpec = None
    size_factor: InputSpec = None
    depth_factor: InputSpec = None
    permanent_fraction: InputSpec = None
    keeper_latency_minutes: InputSpec = None
    oracle_lag_minutes: InputSpec = None
    response_share: InputSpec = None
    response_delay_minutes: InputSpec = None
    keeper_capital_usd: InputSpec = None
    ltv_beta_a: InputSpec = None
    response_target_health: InputSpec = None
    fill_at_liquidation_price: InputSpec = None
    fitted_parameters: Literal["joint", "independent"] = "joint"
    condition_on: list[str] = Field(default_factory=list)
    condition_policy: str | None = Field(default=None, min_length=1)

    @field_validator(*INPUTS, mode="before")
    @classmethod
    def _input(cls, value, info: ValidationInfo):
        name = info.field_name
        if value is None or value is False or isinstance(value, Draw):
            return value
        if not isinstance(value, dict):
            raise ValueError("give a range table, e.g. { low = 0.5, high = 2.0 }, or false "
                             "to hold the input at the config's value")
        try:
            d = Draw.model_validate(value)
        except ValidationError as exc:
            raise ValueError(describe(exc).replace("Value error, ", "")) from None
        lo, hi = (min(d.values), max(d.values)) if d.values else (d.low, d.high)
        if lo < 0:
            raise ValueError("values must be >= 0")
        if name in _BOUNDS and hi > _BOUNDS[name][1]:
            raise ValueError("a fraction: values must be <= 1")
        if name in ("leverage_scale", "size_factor", "depth_factor",
                    "keeper_capital_usd", "ltv_beta_a") and lo <= 0:
            raise ValueError("values must be > 0")
        return d


def quantile(seed: int, member: int, name: str) -> float:
    """Member ``member``'s quantile in [0, 1) for input ``name`` (depends on nothing else)."""
    ss = np.random.SeedSequence([seed, member, zlib.crc32(name.encode())])
    return float(np.random.Generator(np.random.PCG64(ss)).random())


def book_seed(seed: int, member: int) -> int:
    """Member ``member``'s book seed, in [0, 2**31)."""
    ss = np.random.SeedSequence([seed, member, zlib.crc32(b"book_seed")])
    return int(np.random.Generator(np.random.PCG64(ss)).integers(0, 2**31))


@dataclass(frozen=True)
class EventRanges:
    """The resolved range of every varied input for one event, and where each came from.

    Attributes
    ----------
    draws : dict of str to Draw
        Input name -> range (inputs not varied for this event are absent).
    sources : dict of str to str
        Input name -> ``ensemble`` (the config), ``calibration <file>`` or ``default``.
    response : ResponseConfig
        The response the drawn share and delay are applied to (enabled).
    not_drawn : dict of str to str
        Inputs left undrawn by default though they are varied in general, and why
        (:data:`ENGINE_NOT_DRAWN`, :data:`HELD_BY_FIT`); recorded in the ensemble's input table.
    keepers_only : frozenset of str
        Drawn inputs that apply only to policies liquidated by keepers (default draws of
        :data:`KEEPER_INPUTS` when the policies mix keepers and the venue's engine): cells of
        ``liquidator = "engine"`` policies run without them (:func:`policy_values`).
    joint : JointDraw or None
        The calibrated file's fitted parameters drawn together (``fitted_parameters =
        "joint"``); their input names are not in ``draws``.
    """

    draws: dict[str, Draw]
    sources: dict[str, str]
    response: ResponseConfig | None
    not_drawn: dict[str, str] = field(default_factory=dict)
    keepers_only: frozenset[str] = frozenset()
    joint: JointDraw | None = None


def _jackknife_range(path: Path | None, field: str, fraction: bool = False) -> Draw | None:
    """Range of a fitted parameter with its jackknife standard error, from the refits.

    A calibrated file holds the full fit ``theta`` (``[fit] fitted_<field>``) and one refit
    without each event, ``theta_i`` for i = 1..n (``[[leave_one_out]] fitted_<field>``). The
    refits' own spread understates how well the events pin the parameter: each leaves out one
    event of n, so the jackknife standard error is
    ``SE = sqrt((n - 1) / n * sum((theta_i - mean(theta_i))**2))``, about ``sqrt(n - 1)`` times
    the refits' standard deviation (Efron and Stein 1981, "The jackknife estimate of
    variance", Annals of Statistics 9(3); Efron 1982, ch. 3). The range is the uniform draw
    with that standard deviation around the full fit, ``theta +- sqrt(3) * SE``, widened to
    take in every refit, and clipped at 0 (and at 1 for a ``fraction``); where the clip would
    leave a positive parameter at 0, the smallest fitted value is the low end.

    Returns
    -------
    Draw or None
        None without a calibrated file or refits of ``field``.
    """
    if path is None:
        return None
    raw = read_toml(path)
    if not isinstance(raw.get("book"), dict):
        return None
    rows = [r for r in raw.get("leave_one_out", []) if isinstance(r, dict)]
    refits = [float(r[f"fitted_{field}"]) for r in rows if f"fitted_{field}" in r]
    if not refits:
        return None
    n, mean = len(refits), sum(refits) / len(refits)
    full = raw.get("fit", {}).get(f"fitted_{field}")
    centre = float(full) if full is not None else mean
    se = math.sqrt((n - 1) / n * sum((v - mean) ** 2 for v in refits))
    values = [*refits, centre]
    low = min(centre - math.sqrt(3.0) * se, *values)
    high = max(centre + math.sqrt(3.0) * se, *values)
    if fraction:
        high = min(high, 1.0)
    if low <= 0.0:
        low = 0.0 if fraction else min(values)
    return Draw(low=low, high=high)


def _readings_range(path: Path | None, field: str) -> Draw | None:
    """Return ``fitted_<field>_low_end..high_end`` of a loan-state fit, or None.

    The fit solves the parameter at each reading of the protocol's state
    (:mod:`backtest.calibration.loan_state`); a fit with one reading gives None.
    """
    if path is None:
        return None
    fit = read_toml(path).get("fit", {})
    lo, hi = fit.get(f"fitted_{field}_low_end"), fit.get(f"fitted_{field}_high_end")
    if lo is None or hi is None or float(hi) <= float(lo):
        return None
    return Draw(low=float(lo), high=float(hi))


def _size_range(params: BookParams, event: str, asset: str,
                validation: str | Path | None) -> Draw | None:
    """Factor range of a book sized to a venue: the target range around its geometric middle."""
    if params.size_usd is None or not params.represents:
        return None
    from backtest.calibration.fitted import size_measure
    from backtest.targets import load_targets

    found = [t for t in load_targets(validation) if t.event == event and t.asset == asset
             and t.venue == params.represents and t.measure == size_measure(params)]
    if not found:
        return None
    lo, hi = min(t.low for t in found), max(t.high for t in found)
    if lo <= 0 or hi <= lo:
        return None
    return Draw(distribution="loguniform", low=math.sqrt(lo / hi), high=math.sqrt(hi / lo))


def _depth_range(market: MarketConfig, represents: str | None) -> Draw:
    """Default depth factor: the market multiple's interval where the multiple applies.

    A whole-market scope (:meth:`MarketConfig.scope_for`, no explicit ``depth_usd``) draws the
    market's depth over :data:`MARKET_DEPTH_MULTIPLE_RANGE` around the configured multiple, one
    draw that replaces the venue range :data:`DEFAULT_DEPTH_FACTOR` (``docs/ensembles.md``).
    """
    if market.depth_usd is None and market.scope_for(represents) == "market":
        lo, hi = MARKET_DEPTH_MULTIPLE_RANGE
        m = market.market_depth_multiple
        return Draw(distribution="loguniform", low=lo / m, high=hi / m)
    return Draw(distribution="loguniform", low=DEFAULT_DEPTH_FACTOR[0],
                high=DEFAULT_DEPTH_FACTOR[1])


def default_ranges(spec: EnsembleSpec, params: BookParams, book_params: Path | None,
                   book_meta: dict, run, event: str, asset: str,
                   validation: str | Path | None = None,
                   liquidators: frozenset[str] = frozenset({"keepers"})) -> EventRanges:
    """Resolve the range of every input for one event: the config's, else the defaults.

    Defaults: ``leverage_scale``, ``response_share`` and ``response_delay_minutes`` span the
    full fit of a calibrated book file with the jackknife standard error of its leave-one-out
    refits (``[[leave_one_out]]`` ``fitted_<name>``, :func:`_jackknife_range`); ``ltv_beta_a``
    spans a loan-state fit's readings of the protocol's state
    (``fitted_ltv_beta_a_low_end``..``high_end``); the size factor spans the validation
    target's range around the geometric middle the book was sized to; otherwise the module's
    ``DEFAULT_*`` ranges (``docs/ensembles.md``). Inputs that cannot matter are not drawn:
    leverage inputs for a loans-only book, impact inputs without an impact model, the oracle
    lag unless the oracle is ``lagged``, the response when the run switches it off, and (unless
    the ensemble gives a range) keeper latency when every policy is liquidated by the venue's
    engine (``liquidator = "engine"``: it closes a liquidatable position at once, so no keeper
    is late; the input table says so, :func:`input_table`). When the policies mix keepers and
    engines, the default latency is drawn but applies to the keeper-liquidated policies only
    (``EventRanges.keepers_only``); a range given in ``[ensemble]`` is drawn for every cell,
    though engine-liquidated policies run without keeper settings whatever they are
    (:func:`backtest.engine.market.for_liquidator`).

    Parameters
    ----------
    spec : EnsembleSpec
    params : BookParams
        The event's generator parameters (sized).
    book_params : Path or None
        The event's parameter file (calibrated or not).
    book_meta : dict
        Metadata :func:`backtest.calibration.fitted.calibrated_params` returned (``response``).
    run : backtest.sweep.config.RunSections
    event, asset : str
        Event key and base asset (for the size target).
    validation : str or Path, optional
        Targets directory.
    liquidators : frozenset of str
        The ``liquidator`` of every policy and parameter set the ensemble runs (``keepers``,
        ``engine``).

    Returns
    -------
    EventRanges
    """
    draws: dict[str, Draw] = {}
    sources: dict[str, str] = {}
    not_drawn: dict[str, str] = {}
    has_perps, has_loans = params.loan_fraction < 1.0, params.loan_fraction > 0.0
    calibrated_file = book_params is not None and "calibration" in book_meta

    response = _base_response(run.response, book_meta)
    joint = None
    if calibrated_file and spec.fitted_parameters == "joint":
        def keep(fitted: str) -> bool:
            name = input_name(fitted)
            if name in INPUTS and getattr(spec, name) is not None:  # a range, or false
                return False
            if fitted in BookParams.model_fields:  # a loan's shape matters where loans are
                return has_loans if fitted.startswith(("ltv_", "loan_")) else has_perps
            return response is not None

        joint = joint_draw(book_params, keep)

    def put(name: str, applies: bool, default: Draw | None, source: str = "default") -> None:
        given = getattr(spec, name)
        if given is False or not applies or (joint is not None and name in joint.names):
            return
        if isinstance(given, Draw):
            draws[name], sources[name] = given, "ensemble"
        elif default is not None:
            draws[name], sources[name] = default, source

    cal_src = f"calibration {book_params}"
    lev = _jackknife_range(book_params, "leverage_scale") if calibrated_file else None
    put("leverage_scale", has_perps,
        lev or Draw(low=0.8 * params.leverage_scale, high=1.25 * params.leverage_scale),
        cal_src if lev else "default")
    low = (_jackknife_range(book_params, "low_leverage_share", fraction=True) if calibrated_file
           else None)
    base_low = params.low_leverage_share
    if calibrated_file and low is None and spec.low_leverage_share is None and has_perps:
        # the fit held it: a default range would be an unmeasured widening, and a biased one
        # (clipped at 0, it lowers every member's leverage on average)
        not_drawn["low_leverage_share"] = HELD_BY_FIT
    put("low_leverage_share", has_perps and "low_leverage_share" not in not_drawn,
        low or Draw(low=max(0.0, base_low - 0.1), high=min(1.0, base_low + 0.1)),
        cal_src if low else "default")
    readings = _readings_range(book_params, "ltv_beta_a") if calibrated_file else None
    put("ltv_beta_a", params.loan_fraction > 0.0, readings, cal_src)
    size = _size_range(params, event, asset, validation)
    put("size_factor", True, size or Draw(distribution="loguniform", low=DEFAULT_SIZE_FACTOR[0],
                                          high=DEFAULT_SIZE_FACTOR[1]),
        "validation targets" if size else "default")
    impact = run.market.impact_model != "none"
    put("depth_factor", impact, _depth_range(run.market, params.represents))
    put("permanent_fraction", impact and run.market.cascade,
        Draw(low=DEFAULT_PERMANENT_FRACTION[0], high=DEFAULT_PERMANENT_FRACTION[1]))
    lat = run.keepers.latency_minutes
    not_drawn.update({name: ENGINE_NOT_DRAWN for name in ("keeper_latency_minutes",)
                      if "keepers" not in liquidators and getattr(spec, name) is None})
    put("keeper_latency_minutes", "keeper_latency_minutes" not in not_drawn,
        Draw(low=0.5 * lat, high=1.5 * lat) if lat > 0 else
        Draw(low=DEFAULT_KEEPER_LATENCY[0], high=DEFAULT_KEEPER_LATENCY[1]))
    # liquidators' capital: no documented default (unlimited is the config's own default)
    put("keeper_capital_usd", True, None)
    keepers_only = frozenset(name for name in KEEPER_INPUTS if name in draws
                             and sources[name] != "ensemble" and "engine" in liquidators)
    lag = run.oracle.lag_minutes
    put("oracle_lag_minutes", run.oracle.model == "lagged",
        Draw(low=DEFAULT_ORACLE_LAG_FACTOR[0] * lag, high=DEFAULT_ORACLE_LAG_FACTOR[1] * lag))
    # where in a candle a liquidation fills: only when given (the config's fill otherwise)
    put("fill_at_liquidation_price", True, None)

    if response is not None:
        share = _jackknife_range(book_params, "share", fraction=True) if calibrated_file else None
        delay = _jackknife_range(book_params, "delay_minutes") if calibrated_file else None
        fitted = "response" in book_meta and run.response.enabled is None
        put("response_share", True, share or (
            Draw(low=max(0.0, response.share - 0.2), high=min(1.0, response.share + 0.2))
            if fitted or run.response.enabled else
            Draw(low=DEFAULT_RESPONSE_SHARE[0], high=DEFAULT_RESPONSE_SHARE[1])),
            cal_src if share else "default")
        put("response_delay_minutes", True, delay or (
            Draw(low=0.5 * response.delay_minutes, high=1.5 * response.delay_minutes)
            if fitted or run.response.enabled else
            Draw(low=DEFAULT_RESPONSE_DELAY[0], high=DEFAULT_RESPONSE_DELAY[1])),
            cal_src if delay else "default")
        # the cure's size (loans): only when given, and only where the book holds loans
        put("response_target_health", params.loan_fraction > 0.0, None)
    return EventRanges(draws, sources, response, not_drawn, keepers_only, joint)


def policy_values(values: dict[str, float], ranges: EventRanges,
                  liquidator: str) -> dict[str, float]:
    """Return the member's values that apply to a policy liquidated by ``liquidator``.

    ``values`` (:func:`member_values`) all apply to keepers; for ``engine``, all less
    ``ranges.keepers_only``.
    """
    if liquidator != "engine" or not ranges.keepers_only:
        return values
    return {k: v for k, v in values.items() if k not in ranges.keepers_only}


def input_table(ranges: EventRanges) -> dict[str, dict[str, str]]:
    """Return the ensemble's input table of one event (``sweep.json`` ``ensemble.events``).

    Per input, its range and where it came from; per input left undrawn, ``not drawn`` and why.
    """
    table = {}
    for name, d in ranges.draws.items():
        source = ranges.sources[name]
        if name in ranges.keepers_only:
            source += ("; keeper-liquidated policies only (liquidator = \"engine\": "
                       "the venue's engine liquidates at once)")
        table[name] = {"range": d.describe(), "source": source}
    joint = ranges.joint
    for fitted, name in zip(joint.fields, joint.names, strict=True) if joint else ():
        table[name] = {"range": joint.describe(fitted),
                       "source": f"calibration {joint.source} (jackknife covariance)"}
    for name, why in ranges.not_drawn.items():
        table[name] = {"range": "not drawn", "source": why}
    return table


def _base_response(cfg: ResponseConfig, book_meta: dict) -> ResponseConfig | None:
    """Return the response a member's share and delay apply to (None: the run switches it off)."""
    if cfg.enabled is False:
        return None
    if cfg.enabled is None and book_meta.get("response"):
        fitted = ResponseConfig.model_validate_json(book_meta["response"])
        if fitted.enabled is False:  # the fit ran without one: so do its members
            return None
        return fitted.model_copy(update={"enabled": True})
    return cfg.model_copy(update={"enabled": True})


def member_values(spec: EnsembleSpec, member: int, ranges: EventRanges) -> dict[str, float]:
    """Member ``member``'s value of every varied input of one event (and its book seed).

    Returns
    -------
    dict of str to float or int
        ``book_seed`` (int) and input name -> value, in :data:`INPUTS` order, then the joint
        draw's fitted parameters (``EventRanges.joint``: each from one standard normal weight
        per refit, the ``i``-th drawn like an input named ``jackknife_weight_<i>``).
    """
    out: dict[str, float] = {"book_seed": book_seed(spec.seed, member)}
    for name in INPUTS:
        if name in ranges.draws:
            out[name] = ranges.draws[name].ppf(quantile(spec.seed, member, name))
    if ranges.joint is not None:
        out.update(ranges.joint.values([quantile(spec.seed, member, f"jackknife_weight_{i}")
                                        for i in range(ranges.joint.refits)]))
    return out


def apply_member(values: dict[str, float], params: BookParams, run, ranges: EventRanges):
    """Return the book parameters and run sections of one member.

    Parameters
    ----------
    values : dict
        :func:`member_values`.
    params : BookParams
    run : backtest.sweep.config.RunSections
    ranges : EventRanges

    Returns
    -------
    BookParams, RunSections
    """
    joint = ranges.joint
    fitted = {f: values[n] for f, n in zip(joint.fields, joint.names, strict=True)
              if n in values} if joint else {}
    book: dict = {f: v for f, v in fitted.items() if f in BookParams.model_fields}
    response: dict = {f: v for f, v in fitted.items() if f not in book}
    for name in ("leverage_scale", "low_leverage_share", "ltv_beta_a"):
        if name in values:
            book[name] = values[name]
    if "size_factor" in values:
        f = values["size_factor"]
        if params.size_usd is not None:
            book["size_usd"] = params.size_usd * f
        else:  # every position's size scales with these, the clip bounds included
            book.update(perp_notional_median_usd=params.perp_notional_median_usd * f,
                        loan_collateral_median_usd=params.loan_collateral_median_usd * f,
                        min_notional_usd=params.min_notional_usd * f,
                        max_notional_usd=params.max_notional_usd * f)
    params = params.model_copy(update=book)
    BookParams.model_validate(params.model_dump())  # a drawn value out of the model's bounds

    market: dict = {}
    if "depth_factor" in values:
        f = values["depth_factor"]
        m = run.market
        if m.depth_usd is not None:
            market["depth_usd"] = m.depth_usd * f
        elif m.depth_source == "pre_window":
            market["pre_window_depth_fraction"] = m.pre_window_depth_fraction * f
        else:
            market["depth_fraction_of_hourly_volume"] = m.depth_fraction_of_hourly_volume * f
    if "permanent_fraction" in values:
        market["permanent_fraction"] = values["permanent_fraction"]
    sections: dict = {}
    if market:
        sections["market"] = run.market.model_copy(update=market)
    keepers = {k: values[v] for k, v in (("latency_minutes", "keeper_latency_minutes"),
                                          ("capital_usd_per_step", "keeper_capital_usd"))
               if v in values}
    if keepers:
        sections["keepers"] = run.keepers.model_copy(update=keepers)
    if "oracle_lag_minutes" in values:
        sections["oracle"] = run.oracle.model_copy(
            update={"lag_minutes": max(values["oracle_lag_minutes"], 1e-9)})
    if "fill_at_liquidation_price" in values:
        at_liq = values["fill_at_liquidation_price"] >= 0.5
        sections["execution"] = run.execution.model_copy(
            update={"fill_price": "liquidation_price" if at_liq else "trigger"})
    if "response_share" in values:
        response["share"] = values["response_share"]
    if "response_delay_minutes" in values:
        response["delay_minutes"] = values["response_delay_minutes"]
    if "response_target_health" in values:
        response["target_health"] = values["response_target_health"]
    if response and ranges.response is not None:
        sections["response"] = ranges.response.model_copy(update=response)
        # a drawn target at or below the warning level is an error, as in the config
        ResponseConfig.model_validate(sections["response"].model_dump())
    return params, run.model_copy(update=sections)

