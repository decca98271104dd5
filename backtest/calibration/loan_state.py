"""Fit a lending book's loan-to-value distribution to the protocol's state at an event's start.

A ``kind = "loan-state"`` calibration file (commented example: ``configs/calibration/maker.toml``)
names one generator parameter of the loans' loan-to-value at entry (``[fit]``: ``name``, ``low``,
``high``; one of ``ltv_min``, ``ltv_max``, ``ltv_beta_a``, ``ltv_beta_b``: LTV = ``ltv_min +
(ltv_max - ltv_min) x Beta(a, b)``, :mod:`backtest.books.generate`), the protocol's debt and
collateral at the window start (``data/validation`` targets) and the book's tape. Where the
protocol's debt-weighted LTV quantiles are known, ``[[shape]]`` fields are fitted to them
too (:mod:`backtest.calibration.loan_shape`; ``configs/calibration/morpho-cbbtc.toml``).

**Equation.** The fitted value solves ``simulated(x) = real`` with
``scipy.optimize.brentq`` on ``[low, high]``, where ``simulated(x)`` is the book's total debt
over its total collateral value at the last close before the window start, the book drawn by
:func:`backtest.books.event.book_for_event` (survivorship redraws included) with the parameter
set to ``x``, ``accounts`` vaults and the fixed ``seed`` (common random numbers: the same ``x``
gives the same book). ``real`` is the protocol's debt over its collateral:

- **low end**: ``debt / collateral``, reading the collateral figure as the book's protocol only;
- **high end**: ``(debt + sum of collateral_may_also_back debts) / collateral``, reading it as
  also backing those debts (Maker's 2.4M ETH may count the legacy SCD system's vaults), the
  vaults of both equally collateralised;
- **middle** (shipped): the geometric middle of the two ends.

Debt and collateral are the geometric middles of their target ranges (the debt is the figure
``liqbt book generate`` sizes the book to, :func:`backtest.calibration.fitted.venue_size_usd`).
The ratio does not depend on the book's size. The Beta sampler draws a varying number of
uniforms, so the ratio is a noisy step function of ``x`` at a fixed seed: the fit reports the
residual at the root and the ratio's spread over four other seeds.

It writes a calibrated file (:mod:`backtest.calibration.fitted`): ``[book]``, ``[response]``
(cures off), ``[fit]`` (both ends' values) and one ``[[fit.event]]`` row whose ``targets`` are
those in the fit, so ``liqbt validate`` marks every other figure of the event held out.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from backtest.books.generate import BookParams
from backtest.books.schema import Book
from backtest.calibration.loan_shape import (
    LtvQuantile,
    check_fitted_fields,
    debt_to_collateral,
    fit_shape,
    print_shape,
    shape_fields,
)
from backtest.errors import ConfigError
from backtest.provenance import command_line
from backtest.validation import describe, read_toml

#: Generator parameters a loan-state fit may solve for (the loans' loan-to-value at entry).
LTV_FIELDS = ("ltv_min", "ltv_max", "ltv_beta_a", "ltv_beta_b")
#: Seeds beside the fit's own at which the fitted book's ratio is measured (sampling noise).
SPREAD_SEEDS = 4


class LoanStateParameter(BaseModel):
    """The fitted loan-to-value parameter and the bracket brentq searches."""

    model_config = ConfigDict(extra="forbid")
    name: str
    low: float
    high: float


class LoanStateConfig(BaseModel):
    """A ``kind = "loan-state"`` calibration file (see the module docstring).

    Attributes
    ----------
    book : Path
        Generator parameters held fixed (loans only).
    event, symbol, interval, venue : str
        Event key and tape selection, as ``liqbt book generate``.
    accounts, seed : int
        The book drawn at every evaluation (that of the runs: same granularity and draws).
    debt_target, collateral_target : str
        Target ids (``borrowed_usd``, ``collateral_usd``) of the event.
    collateral_may_also_back : list of str
        ``borrowed_usd`` target ids the collateral figure may also back (the high end).
    shape, quantile : list
        Loan-to-value fields fitted to the protocol's debt-weighted LTV quantiles.
    """

    model_config = ConfigDict(extra="forbid")
    name: str
    kind: Literal["loan-state"]
    book: Path
    event: str
    symbol: str
    interval: str | None = None
    venue: str | None = None
    accounts: int = Field(100_000, gt=0)
    seed: int = 7
    debt_target: str
    collateral_target: str
    collateral_may_also_back: list[str] = []
    xtol: float = Field(1e-4, gt=0.0)
    fit: LoanStateParameter
    shape: list[LoanStateParameter] = []
    quantile: list[LtvQuantile] = []


def is_loan_state(path: str | Path) -> bool:
    """Return True when a calibration file declares ``kind = "loan-state"``."""
    return read_toml(path).get("kind") == "loan-state"


def load_loan_state(path: str | Path) -> LoanStateConfig:
    """Read and validate a loan-state calibration file.

    Raises
    ------
    ConfigError
        Unreadable file, invalid or unknown field, a fitted parameter that is not a
        loan-to-value field, or a bracket with ``low >= high`` (the message names the field).
    """
    try:
        cfg = LoanStateConfig.model_validate(read_toml(path))
    except ValidationError as exc:
        raise ConfigError(describe(exc), path) from None
    check_fitted_fields(cfg, LTV_FIELDS, path)
    return cfg


@dataclass(frozen=True)
class RealRatio:
    """The protocol's debt over collateral at the window start: both readings and the middle.

    Attributes
    ----------
    debt_usd, collateral_usd, other_debt_usd : float
        Geometric middles of the targets' ranges, USD.
    low, high, middle : float
        ``debt / collateral``, ``(debt + other debt) / collateral`` and their geometric middle.
    targets : list of str
        Target ids in the fit (debt, collateral, other debts).
    """

    debt_usd: float
    collateral_usd: float
    other_debt_usd: float
    low: float
    high: float
    middle: float
    targets: list[str]


def real_ratio(cfg: LoanStateConfig, targets: list, path: str | Path | None = None
               ) -> RealRatio:
    """Return the real debt-to-collateral range of a loan-state file from the loaded targets.

    Raises
    ------
    ConfigError
        A named target is not in ``data/validation`` for the file's event, or measures
        something else (debts: ``borrowed_usd``; collateral: ``collateral_usd``).
    """
    by_id = {t.id: t for t in targets if t.event == cfg.event}

    def get(field: str, target_id: str, measure: str):
        t = by_id.get(target_id)
        if t is None:
            raise ConfigError(f"field '{field}': no target {target_id!r} for event "
                              f"{cfg.event} in data/validation", path)
        if t.measure != measure:
            raise ConfigError(f"field '{field}': target {target_id!r} measures {t.measure}, "
                              f"not {measure}", path)
        return t

    debt = get("debt_target", cfg.debt_target, "borrowed_usd").middle
    collateral = get("collateral_target", cfg.collateral_target, "collateral_usd").middle
    other = sum(get("collateral_may_also_back", i, "borrowed_usd").middle
                for i in cfg.collateral_may_also_back)
    low, high = debt / collateral, (debt + other) / collateral
    return RealRatio(debt, collateral, other, low, high, math.sqrt(low * high),
                     [cfg.debt_target, cfg.collateral_target, *cfg.collateral_may_also_back])


@dataclass
class RatioFit:
    """A solved loan-to-value parameter: its value, the ratios and the work done."""

    value: float
    target: float
    simulated: float
    evaluations: int


class LoanStateFit:
    """Solves one loan-to-value parameter for a real debt-to-collateral ratio.

    Parameters
    ----------
    base : BookParams
        Generator parameters held fixed (loans only: ``loan_fraction == 1``).
    parameter : LoanStateParameter
        The fitted field and its bracket.
    draw : callable
        ``draw(params, seed) -> Book``: the generator on the event's tape.
    price : float
        USD per collateral unit at the window start.
    seed : int
        Seed of every draw in the fit.
    xtol : float
        Absolute tolerance of the root, in the parameter's units.
    """

    def __init__(self, base: BookParams, parameter: LoanStateParameter,
                 draw: Callable[[BookParams, int], Book], price: float, seed: int,
                 xtol: float = 1e-4):
        self.base, self.parameter, self.draw = base, parameter, draw
        self.price, self.seed, self.xtol = price, seed, xtol
        self._cache: dict[tuple[float, int], float] = {}

    def params(self, value: float) -> BookParams:
        """Return the generator parameters with the fitted field set to ``value``."""
        return self.base.model_copy(update={self.parameter.name: float(value), "size_usd": None})

    def ratio(self, value: float, seed: int | None = None) -> float:
        """Debt over collateral of the book drawn with the fitted field at ``value``."""
        key = (float(value), self.seed if seed is None else seed)
        if key not in self._cache:
            self._cache[key] = debt_to_collateral(self.draw(self.params(value), key[1]),
                                                  self.price)
        return self._cache[key]

    def solve(self, target: float) -> RatioFit:
        """Return the parameter value whose book has debt over collateral ``target``.

        Raises
        ------
        ConfigError
            If ``target`` lies outside the ratios at the bracket's ends (the message gives
            the reachable range: widen the bracket or change the held parameters).
        """
        from scipy.optimize import brentq

        p = self.parameter
        before = len(self._cache)
        at_low, at_high = self.ratio(p.low) - target, self.ratio(p.high) - target
        if at_low * at_high > 0:
            lo, hi = sorted((at_low + target, at_high + target))
            raise ConfigError(f"fit.{p.name} in [{p.low:g}, {p.high:g}] gives debt/collateral "
                              f"{lo:.4f}..{hi:.4f}, which does not hold the real {target:.4f}; "
                              "widen the bracket or change the held parameters")
        value = float(brentq(lambda x: self.ratio(x) - target, p.low, p.high, xtol=self.xtol))
        return RatioFit(value, target, self.ratio(value), len(self._cache) - before)

    def spread(self, value: float, seeds: int = SPREAD_SEEDS) -> tuple[float, float]:
        """Lowest and highest ratio at ``value`` over ``seeds`` seeds beside the fit's."""
        ratios = [self.ratio(value, self.seed + k) for k in range(1, seeds + 1)]
        return min(ratios), max(ratios)


def _event_fit(cfg: LoanStateConfig, base: BookParams, store=None, events=None
               ) -> LoanStateFit:
    """Return a :class:`LoanStateFit` drawing with :func:`book_for_event` on the tape."""
    from backtest import paths
    from backtest.books.event import book_for_event
    from backtest.events import get_event
    from backtest.tapes import TapeStore

    ev = get_event(cfg.event, events)
    lookback = ev.start - timedelta(days=base.lookback_days)
    tape = TapeStore(paths.tape_store(store)).resolve(cfg.symbol, lookback, ev.end, cfg.venue,
                                                        None, cfg.interval)
    a = tape.arrays()
    before = a["timestamp"] < int(ev.start.timestamp() * 1000)
    price = float(np.asarray(a["close"])[before][-1])

    def draw(params: BookParams, seed: int) -> Book:
        return book_for_event(cfg.accounts, cfg.event, seed, cfg.symbol, cfg.venue, None,
                              cfg.interval, params, store, events)

    return LoanStateFit(base, cfg.fit, draw, price, cfg.seed, cfg.xtol)


def calibrate_loan_state(config: str | Path, output: str | Path, store=None, console=None,
                         events=None, validation=None) -> dict:
    """Run a loan-state calibration file end to end and write the calibrated file.

    Parameters
    ----------
    config, output : str or Path
        Calibration file to read; calibrated parameter file to write.
    store, events, validation : str or Path, optional
        Tape store, event catalog and targets directory.
    console : rich Console, optional
        Where the table goes.

    Returns
    -------
    dict
        The ``[fit]`` table written (fitted values at the middle and both ends, ratios).

    Raises
    ------
    ConfigError, TapeError, BookError
        Invalid file, a missing target or tape, a book that is not loans only, a bracket
        that does not hold the real ratio.
    """
    from rich.console import Console

    from backtest.books.event import load_book_params
    from backtest.calibration.fitted import write_calibrated
    from backtest.engine.config import ResponseConfig
    from backtest.targets import load_targets

    console = console or Console()
    t0 = time.perf_counter()
    cfg = load_loan_state(config)
    base = load_book_params(cfg.book)
    if base.loan_fraction < 1.0:
        raise ConfigError(f"field 'book': {cfg.book} is not a loans-only book "
                          "(loan_fraction must be 1)", config)
    real = real_ratio(cfg, load_targets(validation, events), config)
    shape = (fit_shape(cfg, base, lambda b: _event_fit(cfg, b, store, events), real.middle)
             if cfg.shape else None)
    if shape is not None:
        base = base.model_copy(update=shape.values)
    fitter = _event_fit(cfg, base, store, events)
    name = cfg.fit.name
    fits = {end: fitter.solve(getattr(real, end)) for end in ("low", "middle", "high")}
    mid = fits["middle"]
    spread = fitter.spread(mid.value)
    fit = {"config": str(config), "kind": cfg.kind, "accounts": cfg.accounts, "seed": cfg.seed,
           "price_usd": fitter.price, "fitted": [name, *(shape.values if shape else [])],
           f"fitted_{name}": mid.value,
           f"fitted_{name}_low_end": fits["low"].value,
           f"fitted_{name}_high_end": fits["high"].value,
           "real_debt_to_collateral": real.middle,
           "real_debt_to_collateral_low": real.low, "real_debt_to_collateral_high": real.high,
           "simulated_debt_to_collateral": mid.simulated,
           "simulated_debt_to_collateral_other_seeds_low": spread[0],
           "simulated_debt_to_collateral_other_seeds_high": spread[1],
           **(shape_fields(cfg, shape) if shape else {}),
           "evaluations": sum(f.evaluations for f in fits.values()),
           "seconds": round(time.perf_counter() - t0, 1)}
    row = {"event": cfg.event, "venue": base.represents, "asset": cfg.symbol.split("/")[0],
           "real_debt_usd": real.debt_usd, "real_collateral_usd": real.collateral_usd,
           "simulated_collateral_usd": real.debt_usd / mid.simulated,
           "real_debt_to_collateral": real.middle, "simulated_debt_to_collateral": mid.simulated,
           "ratio": mid.simulated / real.middle, "targets": real.targets, "in_fit": True}
    command = command_line(f"calibrate_loan_state({str(config)!r}) in Python")
    write_calibrated(output, fitter.params(mid.value),
                     ResponseConfig(enabled=False), fit, [row], [],
                     f"Calibrated by `{command}`\nfrom {config}: do not edit by hand; refit.")
    _print(console, cfg, real, fits, spread)
    if shape:
        print_shape(console, cfg, shape)
    console.print(f"wrote {output} ({fit['seconds']:.0f} s)")
    return fit


def _print(console, cfg: LoanStateConfig, real: RealRatio, fits: dict, spread) -> None:
    from rich.table import Table

    table = Table(title=f"{cfg.event}: debt over collateral at the window start, real vs book")
    for col in ("reading", "real", f"fitted {cfg.fit.name}", "book (seed "
                f"{cfg.seed})", "collateral at the debt target"):
        table.add_column(col, justify="left" if col == "reading" else "right")
    labels = {"low": "collateral backs this protocol only", "middle": "geometric middle "
              "(shipped)", "high": "also backs " + ", ".join(cfg.collateral_may_also_back)}
    if not cfg.collateral_may_also_back:  # one reading: the three rows would repeat it
        fits, labels["middle"] = {"middle": fits["middle"]}, "collateral backs this protocol"
    for end, f in fits.items():
        table.add_row(labels[end], f"{f.target:.4f}", f"{f.value:.4g}", f"{f.simulated:.4f}",
                      f"${real.debt_usd / f.simulated / 1e6:,.0f}M "
                      f"(real ${real.collateral_usd / 1e6:,.0f}M)")
    console.print(table)
    console.print(f"other seeds at the shipped value: {spread[0]:.4f}..{spread[1]:.4f} "
                  "(sampling noise of the collateral-weighted ratio)")
