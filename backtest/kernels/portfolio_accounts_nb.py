"""Account rules of the portfolio kernel: position prices, health, liquidation order.

Accounts are ragged and stored CSR style (:mod:`backtest.kernels.portfolio_nb`): account ``i``
holds the positions ``offsets[i] .. offsets[i + 1]`` of the flat arrays ``pos_asset`` and
``pos_units``. ``docs/portfolios.md`` states the rules:

- lending: ``HF = sum(units x price x LT) / debt`` (Aave v3 ``GenericLogic``,
  https://github.com/aave-dao/aave-v3-origin/tree/fd1fbd9150426ca8ace9cee45b4acf912ae84f5b);
- perps (cross and isolated): ``equity / MM`` with ``equity = cash + sum(units x price)`` and
  ``MM = sum(m_i x |units_i| x price_i)`` (dYdX v4 ``TNC < TMMR``);
- the trigger price of a position is the adverse extreme of its asset's (simulated) candle, or
  the close, or the asset's oracle price (:func:`account_prices_nb`); liquidation order by
  the order policy (:func:`liquidation_order_nb`).

The liquidations themselves are in :mod:`backtest.kernels.portfolio_liquidate_nb`.
"""

from __future__ import annotations

import numpy as np

from backtest._jit import njit
from backtest.kernels.enums import TriggerPrice
from backtest.kernels.portfolio_enums import AccountKind, OrderPolicy

_LENDING = int(AccountKind.LENDING)
_PROTOCOL = int(OrderPolicy.PROTOCOL)
_LEAST = int(OrderPolicy.LEAST_SENSITIVE)
_CLOSE = int(TriggerPrice.CLOSE)


@njit
def position_price_nb(units, low, high, close, trigger):
    """Return the trigger (and fill) price of a position: its adverse candle extreme.

    Parameters
    ----------
    units : float
        Position, asset units (> 0 long or collateral, < 0 short).
    low, high, close : float
        The asset's candle, USD per unit.
    trigger : int
        :class:`TriggerPrice`: EXTREME (low for longs, high for shorts) or CLOSE.

    Returns
    -------
    float
        Trigger price, USD per unit.
    """
    if trigger == _CLOSE:
        return close
    return low if units > 0.0 else high


@njit
def account_health_nb(kind, lo, hi, pos_asset, pos_units, cash, prices, assets):
    """Return the health of one account at the given position prices.

    Parameters
    ----------
    kind : int
        :class:`AccountKind`.
    lo, hi : int
        The account's position range in the flat arrays.
    pos_asset : ndarray, shape (P,), int16 or int32
    pos_units : ndarray, shape (P,), float64
    cash : float
        Account cash, USD (lending: ``-debt``).
    prices : ndarray, shape (P,) or longer, float64
        Price of each position ``k`` at ``prices[k - lo]``, USD per unit.
    assets : ndarray, shape (A,), ``ASSET_DTYPE``

    Returns
    -------
    float
        Lending: the health factor ``sum(units x price x LT) / debt`` (inf without debt).
        Perps: ``equity / MM`` (inf without positions; may be negative). Liquidatable iff < 1.
    """
    if kind == _LENDING:
        weighted = 0.0
        for k in range(lo, hi):
            u = pos_units[k]
            if u > 0.0:
                weighted += u * prices[k - lo] * assets[pos_asset[k]].liquidation_threshold
        if cash >= 0.0:
            return np.inf
        return weighted / -cash
    equity = cash
    mm = 0.0
    for k in range(lo, hi):
        u = pos_units[k]
        p = prices[k - lo]
        equity += u * p
        mm += assets[pos_asset[k]].maintenance_margin_rate * abs(u) * p
    if mm <= 0.0:
        return np.inf
    return equity / mm


@njit
def liquidation_order_nb(kind, order, lo, hi, pos_asset, pos_units, prices, sensitivity,
                         assets, out):
    """Write the account's positions in liquidation order into ``out[:hi - lo]``.

    Sorted by a primary key (PROTOCOL: bonus for lending, penalty for perps; LEAST_SENSITIVE:
    minus the sensitivity; LARGEST: value), then by value, both descending, then by position
    order (a stable insertion sort: a handful of positions per account).

    Parameters
    ----------
    kind : int
        :class:`AccountKind` of the account (lending ranks by bonus, perps by penalty).
    order : int
        :class:`CollateralOrder` of the policy.
    lo, hi : int
        The account's positions are ``lo:hi`` of the flat position arrays.
    pos_asset : ndarray, shape (P,), int16 or int32
        Asset index of each position.
    pos_units : ndarray, shape (P,), float64
        Signed units of each position.
    prices : ndarray, shape (>= hi - lo,), float64
        Price of each of the account's positions, USD per unit.
    assets : ndarray, shape (A,), ``ASSET_DTYPE``
        Risk parameters of each asset.
    sensitivity : ndarray, shape (A,), float64
        Sensitivity of each asset at this step (no NaN: the caller replaces them by +inf).
    out : ndarray, shape (>= hi - lo,), int64
        Receives position indices (absolute, ``lo <= k < hi``).
    """
    n = hi - lo
    for j in range(n):
        k = lo + j
        a = pos_asset[k]
        value = abs(pos_units[k]) * prices[j]
        if order == _PROTOCOL:
            p1 = assets[a].liquidation_bonus if kind == _LENDING else assets[a].liquidation_penalty
        elif order == _LEAST:
            p1 = -sensitivity[a]
        else:
            p1 = value
        # insertion: shift earlier entries that rank strictly lower
        m = j
        while m > 0:
            q = out[m - 1]
            qa = pos_asset[q]
            qv = abs(pos_units[q]) * prices[q - lo]
            if order == _PROTOCOL:
                q1 = (assets[qa].liquidation_bonus if kind == _LENDING
                      else assets[qa].liquidation_penalty)
            elif order == _LEAST:
                q1 = -sensitivity[qa]
            else:
                q1 = qv
            if q1 > p1 or (q1 == p1 and qv >= value):
                break
            out[m] = q
            m -= 1
        out[m] = k


@njit
def account_prices_nb(lo, hi, pos_asset, pos_units, low_t, high_t, close_t, oracle_t, trigger,
                      use_oracle, trig, dec):
    """Write the trigger and decision prices of one account's positions.

    Parameters
    ----------
    lo, hi : int
        The account's positions are ``lo:hi`` of the flat position arrays.
    pos_asset : ndarray, shape (P,), int16 or int32
    pos_units : ndarray, shape (P,), float64
    low_t, high_t, close_t, oracle_t : ndarray, shape (A,), float64
        The step's simulated candle and oracle price of each asset, USD per unit
        (:func:`backtest.kernels.portfolio_market_nb.market_step_begin_nb`).
    trigger : int
        :class:`TriggerPrice`.
    use_oracle : bool
        Triggers read the oracle price and liquidations are decided at the close (the
        single-asset engine's rule with an oracle); otherwise both are the position's price
        (:func:`position_price_nb`).
    trig, dec : ndarray, shape (>= hi - lo,), float64
        Receive the trigger and the decision price of each position, USD per unit.
    """
    for k in range(lo, hi):
        a = pos_asset[k]
        if use_oracle:
            trig[k - lo] = oracle_t[a]
            dec[k - lo] = close_t[a]
        else:
            p = position_price_nb(pos_units[k], low_t[a], high_t[a], close_t[a], trigger)
            trig[k - lo] = p
            dec[k - lo] = p


__all__ = ["account_health_nb", "account_prices_nb", "liquidation_order_nb",
           "position_price_nb"]
