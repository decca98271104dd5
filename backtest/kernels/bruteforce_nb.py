"""Brute-force hard-liquidation kernels: the simplest correct numba loops, for baselines and tests.

Three loop orders over the same test, all giving the same first step and fill price:

- :func:`hard_liquidation_bruteforce_nb`, position-major: each account (in parallel) walks the
  steps until its equity falls below the maintenance margin at the trigger price;
- :func:`hard_liquidation_bruteforce_tile_nb`, position-major in tiles: a tile of accounts (in
  parallel) walks the steps together, keeping only its still-open accounts, so a tile's state
  stays in cache and each step reads one candle;
- :func:`hard_liquidation_bruteforce_time_major_nb`, time-major: the steps in order, each a
  parallel pass over every open account (one parallel region per step), the loop order a
  simulation with coupling between accounts (impact, insurance fund) must use.

No ordering, no filters, no records, no fees. The benchmark harness times them in the same run
as the engine so engine throughput is also reported as a ratio to each, and tests use them to
prove that the engine's skipping of out-of-reach accounts changes nothing. Every kernel uses
the same comparison, ``cash + units * x < maintenance_rate * |units| * x``, so the results are
bit-identical whatever the loop order or thread count.
"""

from __future__ import annotations

import numpy as np

from backtest._jit import njit, njit_parallel, prange

#: Accounts per tile of :func:`hard_liquidation_bruteforce_tile_nb` (units, cash and the index
#: of 1,024 accounts: 24 KiB, within a core's L1/L2 cache).
TILE_SIZE = 1024


@njit_parallel
def hard_liquidation_bruteforce_nb(low, high, units, cash, maintenance_rate):
    """Return each account's first liquidation step and fill price under a hard policy.

    Position-major: one account per parallel iteration, walking the steps until it triggers.
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


@njit
def _walk_tile_side(x_path, sign, mu, mc, mi, n_open, maintenance_rate, step, fill):
    # One side (sign +1 longs on lows, -1 shorts on highs) of one tile: mu, mc, mi hold the
    # open accounts' units, cash and index (first n_open entries), compacted as they close.
    for t in range(x_path.shape[0]):
        if n_open == 0:
            return
        x = x_path[t]
        hits = 0
        for j in range(n_open):  # branch-free count, so the compiler can vectorise it
            hits += mc[j] + mu[j] * x < maintenance_rate * (sign * mu[j]) * x
        if hits == 0:
            continue  # nobody closes at this step: no writes
        kept = 0
        for k in range(n_open):
            u = mu[k]
            if mc[k] + u * x < maintenance_rate * (sign * u) * x:
                step[mi[k]] = t
                fill[mi[k]] = x
            else:
                mu[kept] = u
                mc[kept] = mc[k]
                mi[kept] = mi[k]
                kept += 1
        n_open = kept


@njit_parallel
def hard_liquidation_bruteforce_tile_nb(low, high, units, cash, maintenance_rate,
                                        tile_size=TILE_SIZE):
    """Hard-policy first liquidation step and fill price, position-major in tiles of accounts.

    Tiles of ``tile_size`` consecutive accounts run in parallel. Each tile copies its longs and
    its shorts into small local arrays (units, cash, index), then walks the steps in order over
    each side's still-open accounts, comparing with the step's low (longs) or high (shorts)
    in a branch-free loop the compiler vectorises; the lists are compacted at a step that
    closes one, and a side stops once all are closed. Same test and results as
    :func:`hard_liquidation_bruteforce_nb` (``|u| = sign * u`` exactly).

    Parameters
    ----------
    low, high : ndarray, shape (T,), float64
        Candle lows and highs, USD.
    units, cash : ndarray, shape (N,), float64
        Positions (asset units) and cash (USD).
    maintenance_rate : float
        Maintenance margin rate, fraction of notional.
    tile_size : int
        Accounts per tile (>= 1; default :data:`TILE_SIZE`). Does not change the results.

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
    size = max(1, tile_size)
    n_tiles = (n + size - 1) // size
    for k in prange(n_tiles):
        start = k * size
        stop = min(start + size, n)
        m = stop - start
        lu, lc, li = np.empty(m), np.empty(m), np.empty(m, np.int64)
        su, sc, si = np.empty(m), np.empty(m), np.empty(m, np.int64)
        n_long = 0
        n_short = 0
        for i in range(start, stop):
            u = units[i]
            if u > 0.0:
                lu[n_long], lc[n_long], li[n_long] = u, cash[i], i
                n_long += 1
            elif u < 0.0:
                su[n_short], sc[n_short], si[n_short] = u, cash[i], i
                n_short += 1
        _walk_tile_side(low, 1.0, lu, lc, li, n_long, maintenance_rate, step, fill)
        _walk_tile_side(high, -1.0, su, sc, si, n_short, maintenance_rate, step, fill)
    return step, fill


@njit_parallel
def hard_liquidation_bruteforce_time_major_nb(low, high, units, cash, maintenance_rate):
    """Hard-policy first liquidation step and fill price, time-major.

    The outer loop walks the steps in order; inside each step one parallel pass tests every
    account not yet closed (one parallel region per step, as a kernel with coupling between
    accounts through the step's flow must be organised). Same test and results as
    :func:`hard_liquidation_bruteforce_nb`.

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
    for t in range(low.shape[0]):
        lo = low[t]
        hi = high[t]
        for i in prange(n):
            u = units[i]
            if u == 0.0 or step[i] >= 0:
                continue
            x = lo if u > 0.0 else hi
            if cash[i] + u * x < maintenance_rate * abs(u) * x:
                step[i] = t
                fill[i] = x
    return step, fill
