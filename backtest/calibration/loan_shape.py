"""A loans book's state (debt over collateral, debt-weighted LTV quantiles) and the shape fit.

A debt-to-collateral ratio fixes a lending book's level but not its tail, and the tail decides a
crash: fitted to Morpho's cbBTC market's ratio alone, a book held a seventy-fifth of the
market's debt above LTV 0.74 (``docs/calibration.md``, "Lending: Morpho cbBTC on Base"). Where
the protocol's positions at the window start are known, a loan-state file (:mod:`.loan_state`)
can also list their **debt-weighted LTV quantiles** (``[[quantile]]``: ``q``, ``ltv``, at the
window start's price) and name further loan-to-value fields to fit to them (``[[shape]]``:
``name``, ``low``, ``high``; e.g. ``ltv_beta_b`` and ``ltv_max``).

**Fit.** Nested: for shape values ``s``, the ratio parameter (``[fit]``) is solved as before so
the book's debt over collateral is the protocol's, exactly; the shape minimises the sum over
the quantiles of ``ln(simulated / real)^2`` (Nelder-Mead from the book file's values, inside
the brackets; the objective is a step function of ``s`` at a fixed seed, so a derivative-free
method). Nothing of the crash enters; the quantiles are the protocol's state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from backtest.books.generate import BookParams
from backtest.books.schema import Book
from backtest.errors import ConfigError
from backtest.kernels.enums import Product

#: Nelder-Mead iterations of the shape fit (each solves the ratio parameter by brentq).
MAX_ITERATIONS = 80
#: Objective of a shape whose bracket cannot hold the real ratio.
UNREACHABLE = 1e6


class LtvQuantile(BaseModel):
    """One debt-weighted LTV quantile of the protocol's positions at the window start."""

    model_config = ConfigDict(extra="forbid")
    q: float = Field(gt=0.0, lt=1.0)
    ltv: float = Field(gt=0.0, lt=1.0)


def debt_to_collateral(book: Book, price: float) -> float:
    """Total loan debt over total loan collateral value of a book at ``price``.

    Parameters
    ----------
    book : Book
        A book with loans (``product == "loan"``).
    price : float
        USD per collateral unit (the last close before the window start).

    Returns
    -------
    float
        ``sum(size x entry_price x (1 - 1 / leverage)) / sum(size x price)`` over the loans:
        the engine's debt (``-cash``) over collateral value (``docs/books.md``).

    Raises
    ------
    ValueError
        If the book holds no loan collateral.
    """
    f = book.frame
    loan = f["product"].to_numpy() == "loan"
    size = f["size"].to_numpy()[loan]
    debt = size * f["entry_price"].to_numpy()[loan] * (1.0 - 1.0 / f["leverage"].to_numpy()[loan])
    collateral = float(size.sum()) * price
    if collateral <= 0.0:
        raise ValueError("the book holds no loan collateral")
    return float(debt.sum() / collateral)


def debt_weighted_ltv_quantiles(book: Book, price: float, qs: list[float]) -> list[float]:
    """Return the LTV below which a share ``q`` of a loans book's debt lies, for each ``q``.

    Parameters
    ----------
    book : Book
        Loans (``product == "loan"``; other rows are ignored).
    price : float
        USD per collateral unit at which LTV = debt / (units x price).
    qs : list of float
        Shares of the debt, each in (0, 1).

    Returns
    -------
    list of float
        LTVs (fractions): the first loan, in increasing LTV, at which the cumulated debt
        reaches ``q`` of the total.
    """
    a = book.arrays()
    loan = a["product"] == Product.LOAN
    debt, units = -a["cash"][loan], a["units"][loan]
    ltv = debt / (units * price)
    order = np.argsort(ltv, kind="stable")
    cum = np.cumsum(debt[order]) / debt.sum()
    return [float(ltv[order][min(np.searchsorted(cum, q), ltv.size - 1)]) for q in qs]


@dataclass
class ShapeFit:
    """The fitted shape: values, the quantiles real and simulated, the work done."""

    values: dict[str, float]
    real: list[float]
    simulated: list[float]
    objective: float
    evaluations: int


def fit_shape(cfg, base: BookParams, make_fitter, target: float) -> ShapeFit:
    """Fit ``cfg.shape`` to ``cfg.quantile``, solving ``cfg.fit`` for ``target`` each time.

    Parameters
    ----------
    cfg : LoanStateConfig
        With ``shape`` and ``quantile``.
    base : BookParams
        The held parameters (the shape fields' values there are the starting point).
    make_fitter : callable
        ``make_fitter(params) -> LoanStateFit`` for the held parameters ``params``.
    target : float
        The real debt over collateral (the middle reading).

    Raises
    ------
    ConfigError
        If no shape inside the brackets lets the ratio parameter reach ``target``.
    """
    from scipy.optimize import minimize

    qs = [q.q for q in cfg.quantile]
    real = np.array([q.ltv for q in cfg.quantile])
    lows = np.array([p.low for p in cfg.shape])
    highs = np.array([p.high for p in cfg.shape])
    seen: dict[tuple, tuple[float, list[float]]] = {}

    def evaluate(x: np.ndarray) -> tuple[float, list[float]]:
        x = np.clip(x, lows, highs)
        key = tuple(float(v) for v in x)
        if key not in seen:
            params = base.model_copy(update=dict(zip([p.name for p in cfg.shape], key,
                                                     strict=True)))
            fitter = make_fitter(params)
            try:
                solved = fitter.solve(target)
            except ConfigError:
                seen[key] = (UNREACHABLE, [])
            else:
                book = fitter.draw(fitter.params(solved.value), fitter.seed)
                sim = debt_weighted_ltv_quantiles(book, fitter.price, qs)
                seen[key] = (float(np.sum(np.log(np.array(sim) / real) ** 2)), sim)
        return seen[key]

    start = np.clip([getattr(base, p.name) for p in cfg.shape], lows, highs)
    res = minimize(lambda x: evaluate(x)[0], start, method="Nelder-Mead",
                   options={"maxiter": MAX_ITERATIONS, "xatol": 1e-3, "fatol": 1e-6,
                            "initial_simplex": _simplex(start, lows, highs)})
    best = np.clip(res.x, lows, highs)
    objective, sim = evaluate(best)
    if not math.isfinite(objective) or objective >= UNREACHABLE:
        raise ConfigError("no shape inside the [[shape]] brackets lets "
                          f"fit.{cfg.fit.name} reach the real debt/collateral {target:.4f}")
    return ShapeFit({p.name: float(v) for p, v in zip(cfg.shape, best, strict=True)},
                    real.tolist(), sim, objective, len(seen))


def _simplex(start: np.ndarray, lows: np.ndarray, highs: np.ndarray) -> np.ndarray:
    """Return a starting simplex spanning a quarter of each bracket from the start."""
    steps = (highs - lows) / 4.0
    out = [start]
    for k in range(start.size):
        v = start.copy()
        v[k] = v[k] + steps[k] if v[k] + steps[k] <= highs[k] else v[k] - steps[k]
        out.append(v)
    return np.array(out)


def check_fitted_fields(cfg, fields: tuple[str, ...], path) -> None:
    """Check ``[fit]`` and ``[[shape]]`` of a loan-state file (names, brackets, quantiles).

    Raises
    ------
    ConfigError
        A name not in ``fields``, ``low >= high``, a field fitted twice, or fewer
        ``[[quantile]]`` figures than ``[[shape]]`` fields.
    """
    for k, p in enumerate([cfg.fit, *cfg.shape]):
        field = "fit" if k == 0 else f"shape[{k - 1}]"
        if p.name not in fields:
            raise ConfigError(f"field '{field}.name': {p.name!r} is not one of "
                              f"{', '.join(fields)}", path)
        if not p.low < p.high:
            raise ConfigError(f"field '{field}.low': need low < high", path)
    if len({p.name for p in [cfg.fit, *cfg.shape]}) != 1 + len(cfg.shape):
        raise ConfigError("field 'shape': a field is fitted twice", path)
    if cfg.shape and len(cfg.quantile) < len(cfg.shape):
        raise ConfigError("field 'quantile': fitting [[shape]] needs at least as many "
                          "[[quantile]] figures as shape fields", path)


def shape_fields(cfg, shape: ShapeFit) -> dict:
    """Return the ``[fit]`` entries of a shape fit: values, quantiles real and simulated."""
    return {**{f"fitted_{k}": v for k, v in shape.values.items()},
            "quantile_q": [q.q for q in cfg.quantile], "quantile_ltv_real": shape.real,
            "quantile_ltv_simulated": shape.simulated,
            "quantile_objective": shape.objective, "shape_evaluations": shape.evaluations}


def print_shape(console, cfg, shape: ShapeFit) -> None:
    """Print the quantiles, real against the fitted book, and the fitted shape."""
    from rich.table import Table

    table = Table(title="debt-weighted LTV quantiles at the window start, real vs book")
    for col in ("share of the debt below", "real LTV", "book LTV"):
        table.add_column(col, justify="right")
    for q, r, b in zip(cfg.quantile, shape.real, shape.simulated, strict=True):
        table.add_row(f"{q.q:.0%}", f"{r:.4f}", f"{b:.4f}")
    console.print(table)
    console.print("fitted shape: " + ", ".join(f"{k} {v:.4g}" for k, v in shape.values.items())
                  + f" (objective {shape.objective:.4g}, {shape.evaluations} shapes drawn)")
