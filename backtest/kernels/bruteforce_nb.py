"""Brute-force hard-liquidation kernel: the simplest correct numba loop, for baselines and tests.

Position-major: each account (in parallel) walks the steps until its equity falls below the
maintenance margin at the trigger price, then is closed at that price. No ordering, no
filters, no records. The benchmark harness times it in the same run as the engine so engine
throughput is also reported as a ratio to it, and tests use it to prove that the engine's
skipping of out-of-reach accounts changes nothing.
"""

from __future__ import annotations

import numpy as np

from backtest._jit import njit_parallel, prange


@njit_parallel
def hard_liquidation_bruteforce_nb(low, high, units, cash, maintenance_rate):
    """Return each account's first liquidation step and fill price under a hard policy.

    Trigger on the candle low (longs) / high (shorts), fill at that price, no fees.

    Parameters
    ----------
    low, high : ndarray, shape (T,), float64
        Candle lows and highs, USD.
    units, cash : ndarray, shape (N,), float64
        Positions (asset units) and cash (USD).
    maintenance_rate : float
        Maintenance margin rate, fraction of notional.

    Returns
    -------
    step : ndarray, shape (N,), int32
        First step at which the account is liquidated, -1 if never.
    fill : ndarray, shape (N,), float64
        Fill price of that liquidation (NaN if never), USD.
    """
    n = units.shape[0]
    step = np.full(n, -1, np.int32)
    fill = np.full(n, np.nan)
    for i in prange(n):
        u = units[i]
        c = cash[i]
        if u == 0.0:
            continue
        for t in range(low.shape[0]):
            x = low[t] if u > 0.0 else high[t]
            if c + u * x < maintenance_rate * abs(u) * x:
                step[i] = t
                fill[i] = x
                break
    return step, fill
