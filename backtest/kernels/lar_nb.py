"""numba kernels of liquidation-at-risk: what a grid of instantaneous shocks would liquidate.

**Perps and loans** (account model of :mod:`backtest.kernels.liquidation_nb`: ``equity = cash +
units x price``, liquidatable when ``equity < m x |units| x price``). Every account has a
closed-form liquidation price (its trigger key), so whether a shocked price ``P_g`` liquidates
it is a comparison, and what it would liquidate and leave as bad debt are linear in ``P_g`` on
either side of at most three breakpoints:

- notional: ``|units| x P_g`` (a perp, or a loan's collateral while it does not cover the debt
  plus bonus); ``-cash / (1 - penalty)`` (a loan whose collateral covers it: the collateral
  seized, as the engine's hard close of a loan);
- bad debt of a full close at ``P_g``: ``max(0, keeper fee - equity)`` = ``-cash -
  units x (1 - kr) x P_g`` for a long, ``-cash + |units| x (1 + kr) x P_g`` for a short, with
  ``kr = keeper_share x penalty`` (the keeper is always paid, as in ``apply_liquidation_nb``).

Each account finds its breakpoints in the sorted grid by binary search (``O(log G)``) and adds
its coefficients to difference arrays of its chunk; prefix sums over the grid then give every
shock's totals: ``O(N log G + G)`` instead of ``O(N x G)``, with no sort of the book. Chunks
are merged in chunk order (bit-identical whatever the thread count).

**Options**: the options engine's own functions (:mod:`backtest.kernels.options_nb`) value
every account at every (price, volatility) shock: equity, scenario margin, and if liquidatable,
the close-out at mark plus spread and the penalty waterfall.
"""

from __future__ import annotations

import numpy as np

from backtest._jit import njit, njit_parallel, prange
from backtest.kernels.enums import Product
from backtest.kernels.options_nb import (
    account_point_nb,
    can_breach_nb,
    close_out_nb,
    liquidation_waterfall_nb,
)

_LOAN = int(Product.LOAN)

#: Columns of the per-chunk difference arrays: units, constant notional, bad-debt constant,
#: bad-debt slope, count.
_U, _D, _A, _B, _N = 0, 1, 2, 3, 4


@njit
def _add(diff, ch, col, lo, hi, value):
    """Add ``value`` to grid cells ``lo..hi-1`` of column ``col`` (difference array)."""
    if lo < hi:
        diff[ch, col, lo] += value
        diff[ch, col, hi] -= value


@njit
def _account_lar_nb(ch, i, product, units, cash, m_rate, penalty, keeper_share, prices, diff):
    """Add account ``i``'s contributions over the ascending shocked ``prices`` to ``diff[ch]``."""
    u = units[i]
    if u == 0.0:
        return
    c = cash[i]
    prod = product[i]
    m = m_rate[prod]
    pen = penalty[prod]
    kr = keeper_share * pen
    g_all = prices.shape[0]
    if u > 0.0:
        if c >= 0.0:
            return  # an unlevered long is never liquidatable
        k_liq = np.searchsorted(prices, -c / (u * (1.0 - m)))  # P_g < P_liq
        k_lin = k_liq
        if prod == _LOAN:
            # below this price the collateral no longer covers debt x (1 + bonus): all seized
            k_lin = min(k_liq, np.searchsorted(prices, -c / (u * (1.0 - pen))))
            _add(diff, ch, _D, k_lin, k_liq, -c / (1.0 - pen))
        _add(diff, ch, _U, 0, k_lin, u)
        _add(diff, ch, _N, 0, k_liq, 1.0)
        k_bad = k_liq
        if kr < 1.0:
            k_bad = min(k_liq, np.searchsorted(prices, -c / (u * (1.0 - kr))))
        _add(diff, ch, _A, 0, k_bad, -c)
        _add(diff, ch, _B, 0, k_bad, u * (1.0 - kr))
        return
    a = -u
    k_liq = 0 if c <= 0.0 else np.searchsorted(prices, c / (a * (1.0 + m)), side="right")
    _add(diff, ch, _U, k_liq, g_all, a)
    _add(diff, ch, _N, k_liq, g_all, 1.0)
    k_bad = 0 if c <= 0.0 else np.searchsorted(prices, c / (a * (1.0 + kr)), side="right")
    k_bad = max(k_bad, k_liq)
    _add(diff, ch, _A, k_bad, g_all, -c)
    _add(diff, ch, _B, k_bad, g_all, -a * (1.0 + kr))


@njit_parallel
def perp_lar_nb(product, units, cash, m_rate, penalty, keeper_share, prices, chunk_size):
    """Liquidation-at-risk of perp and loan accounts over a grid of shocked prices.

    Parameters
    ----------
    product : ndarray, shape (N,), int8
        :class:`Product` of each account.
    units, cash : ndarray, shape (N,), float64
        Account state: asset units (> 0 long), USD.
    m_rate : ndarray, shape (N_PRODUCTS,), float64
        Maintenance rate per product (perps: maintenance margin rate; loans: 1 - LT).
    penalty : ndarray, shape (N_PRODUCTS,), float64
        Liquidation penalty per product, fraction of the liquidated notional.
    keeper_share : float
        Share of the penalty always paid to the keeper.
    prices : ndarray, shape (G,), float64
        Shocked prices, strictly increasing, USD.
    chunk_size : int
        Accounts per chunk (fixes the summation order).

    Returns
    -------
    tuple of ndarray, each shape (G,) float64
        ``(liquidated_notional, bad_debt, n_liquidated)`` at each shocked price: the notional
        (USD) a hard liquidation at that price would close, the bad debt (USD) it would leave,
        and the number of accounts liquidatable there.
    """
    n = units.shape[0]
    g_all = prices.shape[0]
    n_chunks = max(1, (n + chunk_size - 1) // chunk_size)
    diff = np.zeros((n_chunks, 5, g_all + 1))
    for ch in prange(n_chunks):
        for i in range(ch * chunk_size, min(n, (ch + 1) * chunk_size)):
            _account_lar_nb(ch, i, product, units, cash, m_rate, penalty, keeper_share, prices,
                            diff)
    total = np.zeros((5, g_all + 1))
    for ch in range(n_chunks):
        for col in range(5):
            for g in range(g_all + 1):
                total[col, g] += diff[ch, col, g]
    notional = np.empty(g_all)
    bad = np.empty(g_all)
    count = np.empty(g_all)
    run = np.zeros(5)
    for g in range(g_all):
        for col in range(5):
            run[col] += total[col, g]
        notional[g] = prices[g] * run[_U] + run[_D]
        bad[g] = max(run[_A] - prices[g] * run[_B], 0.0)
        count[g] = run[_N]
    return notional, bad, count


@njit_parallel
def options_lar_nb(leg_start, leg_inst, leg_qty, cash, inst_und, fpts, val, scen, buy, sell,
                   contingency_rate, penalty_rate, keeper_share, chunk_size):
    """Liquidation-at-risk of options accounts at P (price, volatility) shock points.

    Parameters
    ----------
    leg_start : ndarray, shape (N + 1,), int64
        Legs of account ``a`` are ``leg_start[a]:leg_start[a + 1]``.
    leg_inst : ndarray, shape (L,), int64
        Instrument of each leg.
    leg_qty : ndarray, shape (L,), float64
        Signed quantity, underlying units (< 0 short).
    cash : ndarray, shape (N,), float64
        USD balance of each account.
    inst_und : ndarray, shape (I,), int64
        Underlying index of each instrument.
    fpts : ndarray, shape (U, P), float64
        Shocked underlying prices, USD.
    val, buy, sell : ndarray, shape (I, P), float64
        Marks and closing prices at the P points, USD per unit of underlying
        (:func:`backtest.kernels.options_nb.fill_instruments_nb`, volatility shocked too).
    scen : ndarray, shape (I, P, S + 2), float64
        Scenario values then their minimum and maximum, USD per unit.
    contingency_rate : float
        Contingency margin per unit of short quantity, fraction of the underlying price.
    penalty_rate : float
        Liquidation penalty, fraction of the notional closed.
    keeper_share : float
        Keeper's share of the penalty, fraction.
    chunk_size : int
        Accounts per chunk (fixes the summation order).

    Returns
    -------
    tuple of ndarray, each shape (P,) float64
        ``(liquidated_notional, bad_debt, n_liquidated)``: the underlying notional (USD) of
        the accounts liquidatable at each point, the bad debt (USD) closing them at mark plus
        spread with the penalty would leave, and their number.
    """
    n = cash.shape[0]
    n_p = fpts.shape[1]
    n_chunks = max(1, (n + chunk_size - 1) // chunk_size)
    acc = np.zeros((n_chunks, 3, n_p))
    for ch in prange(n_chunks):
        loss = np.empty(scen.shape[2] - 2)
        for a in range(ch * chunk_size, min(n, (ch + 1) * chunk_size)):
            if not can_breach_nb(a, leg_start, leg_qty, cash):
                continue
            for x in range(n_p):
                e, m, has = account_point_nb(a, x, leg_start, leg_inst, leg_qty, cash,
                                             inst_und, fpts, val, scen, contingency_rate, loss)
                if not has or not e < m:
                    continue
                _, proceeds, notional, _ = close_out_nb(a, x, leg_start, leg_inst, leg_qty,
                                                        inst_und, fpts, val, buy, sell)
                _, _, _, bad = liquidation_waterfall_nb(cash[a], proceeds, notional,
                                                        penalty_rate, keeper_share)
                acc[ch, 0, x] += notional
                acc[ch, 1, x] += bad
                acc[ch, 2, x] += 1.0
    out = np.zeros((3, n_p))
    for ch in range(n_chunks):
        for k in range(3):
            for x in range(n_p):
                out[k, x] += acc[ch, k, x]
    return out[0].copy(), out[1].copy(), out[2].copy()
