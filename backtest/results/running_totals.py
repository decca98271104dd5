"""Per-step running totals of a simulated policy.

The kernel reports, per step, what liquidations changed (cash and unit deltas). This module
turns those deltas into open interest, debt and user equity at each step's close.
"""

from __future__ import annotations

import numpy as np

from backtest.kernels.book_flow_nb import FLOW_FIELDS, N_FLOW_FIELDS
from backtest.kernels.enums import Product, StepMetric


def running_totals(
    step_metrics: np.ndarray,
    close: np.ndarray,
    product: np.ndarray,
    units: np.ndarray,
    cash: np.ndarray,
    book_flow: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Return open interest, debt and user equity at each step's close.

    Parameters
    ----------
    step_metrics : ndarray, shape (T, N_STEP_METRICS)
        Kernel output for one policy.
    close : ndarray, shape (T,)
        Close prices, USD.
    product : ndarray, shape (N,), int8
    units, cash : ndarray, shape (N,), float64
        Initial state of the book (before the first step; 0 for accounts that arrive later).
    book_flow : ndarray, shape (T, N_FLOW_FIELDS), optional
        Arrivals, voluntary closes and cures per step
        (:data:`backtest.kernels.book_flow_nb.FLOW_FIELDS`): the units and cash arrivals bring,
        the units closes remove and the cash they bring, and what cures add (cash; a loan's
        top-up: the collateral units it bought) enter the totals at their step.

    Returns
    -------
    dict of str to ndarray, each shape (T,), float64
        ``perp_long_oi_usd``, ``perp_short_oi_usd`` (|notional|), ``loan_collateral_usd``,
        ``loan_debt_usd``, ``user_equity_usd`` (sum of cash + units x close over all accounts,
        liquidated ones included).
    """
    flow = np.zeros((len(close), N_FLOW_FIELDS)) if book_flow is None else book_flow
    f = {name: np.cumsum(flow[:, k]) for k, name in enumerate(FLOW_FIELDS)}
    is_loan = product == Product.LOAN
    perp = ~is_loan
    cash_perp = float(np.sum(cash[perp])) + np.cumsum(
        step_metrics[:, StepMetric.CASH_DELTA_PERP] - step_metrics[:, StepMetric.FUNDING_PAID]) + (
        f["arrival_cash_perp"] + f["cure_perp_usd"] + f["close_cash_perp"])
    cash_loan = float(np.sum(cash[is_loan])) + np.cumsum(
        step_metrics[:, StepMetric.CASH_DELTA_LOAN]) + (
        f["arrival_cash_loan"] + f["cure_cash_loan"] + f["close_cash_loan"])
    long_units = float(np.sum(units[perp & (units > 0)])) + np.cumsum(
        step_metrics[:, StepMetric.UNITS_DELTA_PERP_LONG]
    ) + f["arrival_units_long"] - f["close_units_long"]
    short_units = float(np.sum(units[perp & (units < 0)])) + np.cumsum(
        step_metrics[:, StepMetric.UNITS_DELTA_PERP_SHORT]
    ) + f["arrival_units_short"] - f["close_units_short"]
    loan_units = float(np.sum(units[is_loan])) + np.cumsum(
        step_metrics[:, StepMetric.UNITS_DELTA_LOAN]) + (
        f["arrival_units_loan"] - f["close_units_loan"] + f["cure_units_loan"])
    return {
        "perp_long_oi_usd": long_units * close,
        "perp_short_oi_usd": -short_units * close,
        "loan_collateral_usd": loan_units * close,
        "loan_debt_usd": np.maximum(-cash_loan, 0.0),
        "user_equity_usd": cash_perp + cash_loan + (long_units + short_units + loan_units) * close,
    }
