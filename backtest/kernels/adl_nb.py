"""Auto-deleveraging: profitable opposite-side traders cover a shortfall the fund could not.

Runs serially between steps, only when the insurance fund is empty and a policy's waterfall is
ADL (rare), so it may rank the whole book. The bankrupt positions of a step, ``U`` units with a
shortfall ``S``, are taken over at their bankruptcy price: each deleveraged counterparty closes
``x`` units at the market price and pays ``x x S / U`` (the gap between market and bankruptcy
price per unit), at most its equity, until ``U`` units are matched. What is left is socialised.

Rankings follow the venues' ADL rules (Binance, BitMEX, Hyperliquid scores; dYdX v4 iterates
from a random account), each cited by :class:`backtest.kernels.enums.AdlRanking`.
PnL is measured since the window start (equity now minus equity at the
first open), the only entry information the engine keeps.
"""

from __future__ import annotations

import numpy as np

from backtest._jit import njit
from backtest.kernels.enums import AdlRanking, Product
from backtest.kernels.liquidation_nb import trigger_key_nb

_BINANCE = int(AdlRanking.BINANCE)
_DYDX = int(AdlRanking.DYDX)
_PERP = int(Product.PERP)


@njit
def adl_score_nb(ranking, units, equity, equity_start, price, m):
    """Ranking score of one counterparty (higher is deleveraged first); NaN: not a candidate.

    Parameters
    ----------
    ranking : int
        :class:`backtest.kernels.enums.AdlRanking`.
    units : float
        Counterparty's signed position, asset units.
    equity : float
        Counterparty's equity at ``price``, USD.
    equity_start : float
        Its equity at the window's first open, USD.
    price : float
        Market price of the step, USD per unit.
    m : float
        Maintenance rate of its product, fraction.

    Returns
    -------
    float
        Score (dimensionless; Binance: PnL fraction x leverage; BitMEX and Hyperliquid: PnL
        percentage x effective leverage; dYdX: 0, order by book row), NaN for no candidate.
    """
    if equity <= 0.0:
        return np.nan
    pnl = equity - equity_start
    notional = abs(units) * price
    if ranking == _DYDX:
        return 0.0
    if pnl <= 0.0:
        return np.nan
    if ranking == _BINANCE:
        return pnl / max(1.0, equity_start) * (m * notional / equity)
    entry_value = notional - (1.0 if units > 0.0 else -1.0) * pnl
    pnl_pct = pnl / entry_value if entry_value > 0.0 else np.inf
    return pnl_pct * notional / equity


@njit
def adl_order_nb(ranking, seed, t, score, by_book):
    """Return the order in which candidates are deleveraged (indices into ``score``).

    Parameters
    ----------
    ranking : int
        :class:`AdlRanking`.
    seed, t : int
        Seed and step (dYdX's random starting candidate).
    score : ndarray, shape (K,), float64
        Each candidate's :func:`adl_score_nb`.
    by_book : ndarray, shape (K,), int64
        Candidates in book order (ties are broken by it).

    Returns
    -------
    ndarray, shape (K,), int64
        dYdX: book order from a seeded start (a splitmix64-style hash of (seed, step), no RNG
        state); otherwise by score, highest first, equal scores in book order.
    """
    k = score.shape[0]
    if ranking == _DYDX:
        start = np.int64(0)
        if k > 0:
            z = (np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(t + 1)
                 * np.uint64(0xBF58476D1CE4E5B9))
            z = (z ^ (z >> np.uint64(31))) * np.uint64(0x94D049BB133111EB)
            start = np.int64(z % np.uint64(k))
        order = np.empty(k, np.int64)
        for j in range(k):
            order[j] = by_book[np.int64((start + j) % k)]
        return order
    return by_book[np.argsort(-score[by_book], kind="mergesort")]


@njit
def auto_deleverage_nb(bankrupt_side, shortfall, bankrupt_units, price, ranking, seed, t,
                       product, units, cash, key, equity_start, m_rate, book_index):
    """Deleverage counterparties of the bankrupt ``bankrupt_side`` (+1 longs, -1 shorts).

    Parameters
    ----------
    bankrupt_side : int
        Side of the bankrupt perp positions; counterparties hold the other side.
    shortfall : float
        USD to cover.
    bankrupt_units : float
        |units| of the bankrupt positions (> 0).
    price : float
        Market price of the step (simulated close), USD.
    ranking : int
        :class:`AdlRanking`.
    seed, t : int
        Seed and step, for dYdX's random starting account.
    product : ndarray, shape (N,), int8
    units, cash, key : ndarray, shape (N,), float64
        Account state in processing order; updated.
    equity_start : ndarray, shape (N,), float64
        Equity at the window's first open, USD.
    m_rate : ndarray, shape (N_PRODUCTS,)
        Maintenance rates of the policy (for Binance's margin ratio and the trigger keys).
    book_index : ndarray, shape (N,), int64
        Book row of each account: candidates are taken in book order (dYdX) and equal scores
        are broken by it, so the outcome does not depend on the processing order.

    Returns
    -------
    tuple
        ``(accounts, units_closed, transfer, covered)``: per deleveraged account its
        processing index (int64), signed units closed and USD paid, then the total covered.
    """
    n = units.shape[0]
    cand = np.empty(n, np.int64)
    score = np.empty(n)
    k = 0
    m = m_rate[_PERP]
    for i in range(n):
        u = units[i]
        if product[i] != _PERP or u == 0.0 or (u > 0.0) == (bankrupt_side > 0):
            continue
        sc = adl_score_nb(ranking, u, cash[i] + u * price, equity_start[i], price, m)
        if not np.isnan(sc):
            cand[k] = i
            score[k] = sc
            k += 1
    by_book = np.argsort(book_index[cand[:k]], kind="mergesort")
    order = adl_order_nb(ranking, seed, t, score[:k], by_book)
    delta = shortfall / bankrupt_units
    remaining = bankrupt_units
    covered = 0.0
    out_i = np.empty(k, np.int64)
    out_u = np.empty(k)
    out_t = np.empty(k)
    r = 0
    for j in range(k):
        if remaining <= 1e-12 * bankrupt_units:
            break
        i = cand[order[j]]
        u = units[i]
        x, signed, transfer, units[i] = _deleverage_one_nb(u, remaining, delta,
                                                            cash[i] + u * price)
        cash[i] = cash[i] + signed * price - transfer
        key[i] = trigger_key_nb(units[i], cash[i], m)
        out_i[r] = i
        out_u[r] = signed
        out_t[r] = transfer
        r += 1
        covered += transfer
        remaining -= x
    return out_i[:r], out_u[:r], out_t[:r], covered


@njit
def _deleverage_one_nb(u, remaining, delta, equity):
    """One counterparty's auto-deleveraging, the rule every ADL walk shares.

    It gives up ``x = min(|u|, remaining)`` units (asset units) at the bankruptcy delta
    ``delta`` (USD per unit) and pays ``min(x x delta, equity)`` (USD, at most its equity).
    Returns ``(x, signed units closed, transfer USD, units left)``.
    """
    x = min(abs(u), remaining)
    transfer = min(x * delta, equity)
    signed = x if u > 0.0 else -x
    return x, signed, transfer, (0.0 if x >= abs(u) else u - signed)


@njit
def _account_equity_nb(i, offsets, pos_units, pos_asset, cash, prices):
    equity = cash[i]
    for j in range(offsets[i], offsets[i + 1]):
        equity += pos_units[j] * prices[pos_asset[j]]
    return equity


@njit
def auto_deleverage_positions_nb(asset, bankrupt_side, shortfall, bankrupt_units, prices,
                                 ranking, seed, t, perp, offsets, pos_asset, pos_units, cash,
                                 equity_start, m):
    """Deleverage one asset's counterparties in a book of multi-position (CSR) accounts.

    The portfolio kernel's auto-deleveraging (``docs/portfolios.md``): the rule of
    :func:`auto_deleverage_nb` for the positions of ``asset`` on the side opposite
    ``bankrupt_side``, held by perp accounts; a counterparty's score and the most it pays are
    its account's equity (cash plus every position at ``prices``).

    Parameters
    ----------
    asset : int
        Asset index of the bankrupt positions.
    bankrupt_side : int
        +1 bankrupt longs (counterparties are shorts), -1 bankrupt shorts.
    shortfall : float
        USD to cover (> 0).
    bankrupt_units : float
        |units| of the bankrupt positions (> 0).
    prices : ndarray, shape (A,), float64
        Every asset's market price of the step (simulated close), USD per unit.
    ranking : int
        :class:`AdlRanking`.
    seed, t : int
        Seed and step, for dYdX's random starting account.
    perp : ndarray, shape (N,), bool
        Perp accounts (lending accounts are never deleveraged).
    offsets : ndarray, shape (N + 1,), int64
        CSR offsets of each account's positions.
    pos_asset : ndarray, shape (P,), int16 or int32
    pos_units : ndarray, shape (P,), float64
        Signed units of each position; updated.
    cash : ndarray, shape (N,), float64
        Account cash, USD; updated.
    equity_start : ndarray, shape (N,), float64
        Each account's equity at the window's first open, USD.
    m : float
        Maintenance rate of ``asset``'s perps (Binance's margin ratio).

    Returns
    -------
    tuple
        ``(accounts, units_closed, transfer, covered)``: per deleveraged position its account
        (int64), signed units closed and USD paid, then the total covered.
    """
    n = perp.shape[0]
    price = prices[asset]
    cand = np.empty(n, np.int64)
    cand_pos = np.empty(n, np.int64)
    score = np.empty(n)
    k = 0
    for i in range(n):
        if not perp[i]:
            continue
        for j in range(offsets[i], offsets[i + 1]):
            u = pos_units[j]
            if pos_asset[j] != asset or u == 0.0 or (u > 0.0) == (bankrupt_side > 0):
                continue
            equity = _account_equity_nb(i, offsets, pos_units, pos_asset, cash, prices)
            sc = adl_score_nb(ranking, u, equity, equity_start[i], price, m)
            if not np.isnan(sc):
                cand[k] = i
                cand_pos[k] = j
                score[k] = sc
                k += 1
    order = adl_order_nb(ranking, seed, t, score[:k], np.arange(k))  # candidates in book order
    delta = shortfall / bankrupt_units
    remaining = bankrupt_units
    covered = 0.0
    out_i = np.empty(k, np.int64)
    out_u = np.empty(k)
    out_t = np.empty(k)
    r = 0
    for q in range(k):
        if remaining <= 1e-12 * bankrupt_units:
            break
        i = cand[order[q]]
        j = cand_pos[order[q]]
        x, signed, transfer, pos_units[j] = _deleverage_one_nb(
            pos_units[j], remaining, delta,
            _account_equity_nb(i, offsets, pos_units, pos_asset, cash, prices))
        cash[i] = cash[i] + signed * price - transfer
        out_i[r] = i
        out_u[r] = signed
        out_t[r] = transfer
        r += 1
        covered += transfer
        remaining -= x
    return out_i[:r], out_u[:r], out_t[:r], covered
