"""Plain-Python reference twins of the liquidation-at-risk kernels (:mod:`.lar_nb`).

Written for reading: every account is tested at every shock with the exact equity rule and
closed with the engine's hard-liquidation arithmetic, one at a time (``O(N x G)``).
"""

from __future__ import annotations

import numpy as np

from backtest.kernels.enums import Product
from backtest.kernels.options_reference import account_state, closing_price

YEAR_MS = 365.0 * 86400.0 * 1000.0


def perp_lar_reference(product, units, cash, m_rate, penalty, keeper_share, prices):
    """Liquidated notional, bad debt and count at each shocked price (see ``perp_lar_nb``).

    Parameters
    ----------
    product : ndarray, shape (N,), int8
        :class:`Product` of each account.
    units, cash : ndarray, shape (N,), float64
        Account state: asset units, USD.
    m_rate, penalty : ndarray, shape (N_PRODUCTS,), float64
        Maintenance rate and liquidation penalty per product, fractions.
    keeper_share : float
        Share of the penalty always paid to the keeper, fraction.
    prices : ndarray, shape (G,), float64
        Shocked prices, USD per unit.

    Returns
    -------
    tuple of ndarray, each shape (G,) float64
        ``(liquidated_notional, bad_debt, n_liquidated)``: USD, USD and a count.
    """
    g_all = len(prices)
    notional, bad, count = np.zeros(g_all), np.zeros(g_all), np.zeros(g_all)
    for g, p in enumerate(prices):
        for prod, u, c in zip(product, units, cash, strict=True):
            m, pen = m_rate[prod], penalty[prod]
            if u == 0 or not c + u * p < m * abs(u) * p:
                continue
            d = abs(u)
            if prod == Product.LOAN and u > 0:
                d = min(u, -c / (p * (1 - pen)))  # repay the whole debt with bonus if possible
            signed = d if u > 0 else -d
            fee = pen * d * p
            keeper = keeper_share * fee
            u_after = 0.0 if d >= abs(u) else u - signed
            cash1 = c + signed * p - keeper
            if u_after == 0.0 and cash1 < 0:
                bad[g] += -cash1  # a full close: the insurance fee only comes out of equity
            notional[g] += d * p
            count[g] += 1
    return notional, bad, count


def options_lar_reference(book, fpts, sig, now_ms, prm, price_shocks, vol_factors):
    """Liquidated notional, bad debt and count at each of P shock points, account by account.

    Parameters
    ----------
    book : OptionsBookArrays
        The options book's arrays (instruments and legs).
    fpts, sig : ndarray, shape (U, P), float64
        Shocked prices (USD) and volatilities (fraction) per point.
    now_ms : int
        Valuation time, epoch ms.
    prm : dict
        The options parameter record as a dict.
    price_shocks : ndarray, shape (S_p,), float64
        Relative price shocks of the margin grid.
    vol_factors : ndarray, shape (S_v,), float64
        Relative vol shocks of the margin grid for a 30-day option.

    Returns
    -------
    tuple of ndarray, each shape (P,) float64
        ``(liquidated_notional, bad_debt, n_liquidated)``: USD, USD and a count.
    """
    n_p = fpts.shape[1]
    notional, bad, count = np.zeros(n_p), np.zeros(n_p), np.zeros(n_p)
    for a in range(book.n_accounts):
        legs = []
        for j in range(book.leg_start[a], book.leg_start[a + 1]):
            i = book.leg_inst[j]
            if book.leg_qty[j] != 0:
                legs.append((bool(book.inst_call[i]), float(book.inst_strike[i]),
                             int(book.inst_expiry_ms[i]), float(book.leg_qty[j]),
                             int(book.inst_und[i])))
        if not legs:
            continue
        u = legs[0][4]
        for x in range(n_p):
            f, s = float(fpts[u, x]), float(sig[u, x])
            e, m, _ = account_state([leg[:4] for leg in legs], float(book.cash[a]), f, s, now_ms,
                                    prm, price_shocks, vol_factors)
            if not e < m:
                continue
            proceeds = sum(q * closing_price(prm, c, f, k, (exp - now_ms) / YEAR_MS, s, q)
                           for c, k, exp, q, _ in legs)
            size = sum(abs(q) for *_, q, _ in legs) * f
            fee = prm["penalty_rate"] * size
            keeper = prm["keeper_share"] * fee
            cash1 = book.cash[a] + proceeds - keeper
            ins = min(fee - keeper, max(cash1, 0.0))
            bad[x] += max(-(cash1 - ins), 0.0)
            notional[x] += size
            count[x] += 1
    return notional, bad, count

