"""Plain-Python reference twin of :func:`backtest.kernels.liquidation_nb.run_steps_nb`.

Written for reading, not speed: one account at a time, the documented rules spelled out, no
trigger-key filter, no chunks. Parity tests run both on random books and tapes and compare
account states, per-step aggregates and records.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from backtest.kernels.enums import (
    N_STEP_METRICS,
    FillPrice,
    PolicyFamily,
    Product,
    StepMetric,
    TriggerPrice,
)


@dataclass
class ReferenceResult:
    """Outputs of :func:`simulate_reference` (same meaning as the kernel's arrays)."""

    units: np.ndarray
    cash: np.ndarray
    n_liquidations: np.ndarray
    first_step: np.ndarray
    last_step: np.ndarray
    liquidated_notional: np.ndarray
    penalties_paid: np.ndarray
    bad_debt: np.ndarray
    step_metrics: np.ndarray
    records: list[dict] = field(default_factory=list)


def _health(product: int, u: float, c: float, p: float, m: float) -> float:
    if u == 0.0:
        return math.inf
    if product == Product.LOAN:
        collateral, debt = (u * p, -c) if u > 0 else (c, -u * p)
        return math.inf if debt <= 0 else (1 - m) * collateral / debt
    return (c + u * p) / (m * abs(u) * p)


def _liquidation_price(u: float, c: float, m: float) -> float:
    return -c / (u * (1 - m)) if u > 0 else c / (-u * (1 + m))


def simulate_reference(
    open_, high, low, close, trigger_mode, fill_mode, policy, product, units, cash
) -> ReferenceResult:
    """Simulate all steps of a tape for one policy, one account at a time.

    Parameters
    ----------
    open_, high, low, close : array_like, shape (T,)
        Candle prices, USD.
    trigger_mode, fill_mode : int
        :class:`TriggerPrice`, :class:`FillPrice`.
    policy : numpy record of ``POLICY_DTYPE``
        Policy parameters.
    product : array_like, shape (N,), int
    units, cash : array_like, shape (N,), float
        Initial state (asset units, USD); not modified.

    Returns
    -------
    ReferenceResult
    """
    n, n_steps = len(units), len(close)
    u_arr = np.array(units, dtype=float)
    c_arr = np.array(cash, dtype=float)
    res = ReferenceResult(
        units=u_arr,
        cash=c_arr,
        n_liquidations=np.zeros(n, np.int32),
        first_step=np.full(n, -1, np.int32),
        last_step=np.full(n, -1, np.int32),
        liquidated_notional=np.zeros(n),
        penalties_paid=np.zeros(n),
        bad_debt=np.zeros(n),
        step_metrics=np.zeros((n_steps, N_STEP_METRICS)),
    )
    for t in range(n_steps):
        for i in range(n):
            u, c, prod = float(u_arr[i]), float(c_arr[i]), int(product[i])
            if u == 0.0:
                continue
            m = float(policy["maintenance_rate"][prod])
            if trigger_mode == TriggerPrice.EXTREME:
                x = low[t] if u > 0 else high[t]
            else:
                x = close[t]
            if not (c + u * x < m * abs(u) * x):  # equity < maintenance requirement
                continue
            if fill_mode == FillPrice.TRIGGER:
                p = x
            elif fill_mode == FillPrice.LIQUIDATION_PRICE:
                lp = _liquidation_price(u, c, m)
                p = min(open_[t], lp) if u > 0 else max(open_[t], lp)
                p = min(max(p, low[t]), high[t])
            else:
                p = close[t]
            _liquidate(res, policy, t, i, prod, u, c, p, m)
    return res


def _liquidate(res, policy, t, i, prod, u, c, p, m):
    pen = float(policy["penalty_rate"][prod])
    target = float(policy["target_rate"][prod])
    size = abs(u)
    equity = c + u * p
    is_long_loan = prod == Product.LOAN and u > 0
    # "the whole": the position, or for a loan the collateral that repays the whole debt
    whole = size
    if is_long_loan:
        whole = min(size, -c / (p * (1 - pen))) if c < 0 else 0.0
    if policy["family"] == PolicyFamily.HARD or equity <= 0:
        d = whole
    else:
        health = _health(prod, u, c, p, m)
        cf = 1.0 if health <= policy["full_close_health"] else float(policy["close_factor"])
        cap = cf * (whole if prod == Product.LOAN else size)
        if math.isinf(target):
            d = cap
        elif target > pen:
            d = min(max((target * size * p - equity) / (p * (target - pen)), 0.0), cap)
        else:
            d = whole
        if equity < pen * d * p:
            d = whole
        d = min(d, whole)
    if d <= 0:
        return
    health_before = _health(prod, u, c, p, m)
    clears_debt = is_long_loan and c < 0 and d < size and d >= -c / (p * (1 - pen))
    signed = d if u > 0 else -d
    fee = pen * d * p
    keeper = float(policy["keeper_share"]) * fee
    u_after = 0.0 if d >= size else u - signed
    c_after = c + signed * p - keeper
    if clears_debt:
        insurance, c_after = c_after, 0.0
    else:
        insurance = min(fee - keeper, max(c_after + u_after * p, 0.0))
        c_after -= insurance
    bad = 0.0
    if u_after == 0.0 and c_after < 0:
        bad, c_after = -c_after, 0.0
    closed = u_after == 0.0 or clears_debt

    res.units[i], res.cash[i] = u_after, c_after
    res.n_liquidations[i] += 1
    if res.first_step[i] < 0:
        res.first_step[i] = t
    res.last_step[i] = t
    res.liquidated_notional[i] += d * p
    res.penalties_paid[i] += keeper + insurance
    res.bad_debt[i] += bad
    row = res.step_metrics[t]
    row[StepMetric.N_LIQUIDATIONS] += 1
    row[StepMetric.N_CLOSED] += closed
    row[StepMetric.N_BANKRUPT] += bad > 0
    row[StepMetric.LIQUIDATED_NOTIONAL] += d * p
    row[StepMetric.KEEPER_FEES] += keeper
    row[StepMetric.INSURANCE_FEES] += insurance
    row[StepMetric.BAD_DEBT] += bad
    if prod == Product.LOAN:
        row[StepMetric.CASH_DELTA_LOAN] += c_after - c
        row[StepMetric.UNITS_DELTA_LOAN] -= signed
    else:
        row[StepMetric.CASH_DELTA_PERP] += c_after - c
        long = StepMetric.UNITS_DELTA_PERP_LONG
        row[long if u > 0 else StepMetric.UNITS_DELTA_PERP_SHORT] -= signed
    res.records.append(
        dict(
            step=t,
            account=i,
            closed=closed,
            units_closed=signed,
            fill_price=p,
            keeper_fee=keeper,
            insurance_fee=insurance,
            bad_debt=bad,
            health_before=health_before,
            equity_after=c_after + u_after * p,
        )
    )
