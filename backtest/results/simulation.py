"""The outcome of one policy on one window, as the engine hands it to the results layer.

The engine (:func:`backtest.engine.dispatch.simulate`) fills it; the results layer
(:mod:`backtest.results.tables`, :mod:`backtest.results.writer`) turns it into tables. It is
defined here, below both, so the results layer never imports the engine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class SimulationResult:
    """Outcome of one policy on one window.

    Attributes
    ----------
    units, cash : ndarray, shape (N,), float64
        Final positions (asset units) and cash (USD).
    n_liquidations, first_step, last_step : ndarray, shape (N,), int32
        Liquidation events per account; first/last step index (-1: never liquidated).
    liquidated_notional, penalties_paid, bad_debt : ndarray, shape (N,), float64
        Per-account totals, USD.
    funding_paid : ndarray, shape (N,), float64
        Funding paid by each account over the window (negative: received), USD.
    step_metrics : ndarray, shape (T, N_STEP_METRICS), float64
        Per-step aggregates, columns :class:`backtest.kernels.StepMetric`.
    records : ndarray, shape (R,), structured ``RECORD_FIELDS``
        One row per liquidation event, ordered by step (within a step, by the kernel's
        processing order: deterministic, independent of the thread count).
    adl_records : ndarray, shape (A,), structured ``ADL_FIELDS``
        One row per auto-deleveraged account and step, in order of deleveraging.
    bands : ndarray, shape (N, N_BAND_FIELDS) or (0, N_BAND_FIELDS), float64
        Family SOFT_BANDS: each loan's band state and its bands' running trade totals
        (:data:`backtest.kernels.enums.BAND_FIELDS`); other families: no rows.
    book_flow : ndarray, shape (T, N_FLOW_FIELDS), float64
        Arrivals, voluntary closes and cures per step
        (:data:`backtest.kernels.book_flow_nb.FLOW_FIELDS`);
        zeros without a moving book.
    deposited : ndarray, shape (N,), float64
        New money each account brought in during the window (arrival margin and cures), USD.
    closed_step : ndarray, shape (N,), int32
        Step at whose start each account's trader closed what was left of its position
        (voluntary close, :func:`backtest.kernels.book_flow_nb.close_positions_nb`); -1 where
        it did not (held, or liquidated to nothing before).
    impact_baseline : ndarray, shape (T,), float64, or None
        As-happened net liquidation flow per step subtracted before impact (counterfactual
        impact), USD; None: nothing subtracted.
    topped_up : ndarray, shape (N,), float64, or None
        Collateral each loan added by its cures, asset units, where loans cure by topping up
        (``[response] loan_cure = "top_up"``; its USD value at the cure is in ``deposited``);
        None: no top-ups.
    """

    units: np.ndarray
    cash: np.ndarray
    n_liquidations: np.ndarray
    first_step: np.ndarray
    last_step: np.ndarray
    liquidated_notional: np.ndarray
    penalties_paid: np.ndarray
    bad_debt: np.ndarray
    funding_paid: np.ndarray
    step_metrics: np.ndarray
    records: np.ndarray
    adl_records: np.ndarray
    bands: np.ndarray
    book_flow: np.ndarray
    deposited: np.ndarray
    closed_step: np.ndarray
    impact_baseline: np.ndarray | None = None
    topped_up: np.ndarray | None = None


__all__ = ["SimulationResult"]
