"""Keepers of the portfolio kernel: planned liquidations, the profit test, capital per asset.

:func:`backtest.kernels.portfolio_nb.run_portfolio_nb` applies the single-asset engine's keeper
rules (:mod:`backtest.kernels.keepers_nb`, ``docs/portfolios.md`` "Keepers per asset"):

- latency per account (the kernel calls :func:`backtest.kernels.keepers_nb.keeper_waits_nb`);
- profit (:func:`keepers_paid_nb`): an account's liquidation is planned at the decision prices
  (:func:`plan_liquidation_nb`); keepers act if their fees in it cover the step's gas per
  record plus each record's expected slippage (the asset's last ``|1 - execution factor|``);
- capital per asset (:func:`allocate_capital_nb`): ``capital_usd / close`` units of each asset
  per step, handed to the liquidations in book order. Pass 1 sums each chunk's planned units
  per asset; a chunk whose plans fit in what is left takes them all (``inf`` budget in pass
  2), one that does not is planned again against the rest (:func:`_scan_chunk_nb`) and pass 2
  liquidates it from the same budget. Chunks are taken in chunk order, so the result does not
  depend on the thread count.
"""

from __future__ import annotations

import numpy as np

from backtest._jit import njit
from backtest.kernels.enums import MarketState
from backtest.kernels.keepers_nb import budget_dust_nb, capital_budget_units_nb, keeper_is_paid_nb
from backtest.kernels.portfolio_accounts_nb import (
    account_health_nb,
    account_prices_nb,
    liquidation_order_nb,
)
from backtest.kernels.portfolio_enums import AccountKind
from backtest.kernels.portfolio_liquidate_nb import liquidate_lending_nb, liquidate_perp_nb

_LENDING = int(AccountKind.LENDING)
_SLIPPAGE = int(MarketState.SLIPPAGE)


@njit
def plan_liquidation_nb(t, i, kind, lo, hi, pos_asset, pos_units, cash, dec, health, order,
                        sensitivity, policy, assets, ones, units, order_idx, rec_i, rec_f,
                        budget, used, dust):
    """Plan one liquidatable account's liquidation at the decision prices, on a copy of it.

    Pass 2 sizes the same liquidation identically from the same budget (sizes never depend
    on the fills, :mod:`backtest.kernels.portfolio_liquidate_nb`).

    Parameters
    ----------
    t, i : int
        Step and account index.
    kind : int
        :class:`AccountKind` of the account.
    lo, hi : int
        The account's positions are ``lo:hi`` of the flat position arrays.
    pos_asset : ndarray, shape (P,), int16 or int32
        Asset index of each position.
    pos_units : ndarray, shape (P,), float64
        Signed units of each position (read only).
    cash : float
        The account's cash, USD.
    dec : ndarray, shape (>= hi - lo,), float64
        Decision price of each of the account's positions, USD per unit.
    health : float
        The account's health at its trigger prices (< 1).
    order : int
        :class:`OrderPolicy`.
    sensitivity : ndarray, shape (A,), float64
        The step's asset sensitivity (``LEAST_SENSITIVE``).
    policy : ndarray, shape (1,), ``PORTFOLIO_POLICY_DTYPE``
    assets : ndarray, shape (A,), ``ASSET_DTYPE``
    ones : ndarray, shape (A,), float64
        Execution factors of 1.
    units : ndarray, shape (>= hi - lo,), float64
        Scratch (the copy of the account's units).
    order_idx : ndarray, shape (>= hi - lo,), int64
        Scratch (liquidation order).
    rec_i : ndarray, shape (>= hi - lo, 3), int64
        Receives the planned records, integer fields.
    rec_f : ndarray, shape (>= hi - lo, 7), float64
        Receives the planned records, float fields (fills at ``dec``).
    budget, used, dust : ndarray, shape (A,), float64
        The keepers' unit budget of each asset (``inf``: none), the units taken from it
        (updated) and its dust (:func:`backtest.kernels.keepers_nb.asset_budget_take_nb`).

    Returns
    -------
    int
        Records planned (rows ``0..w`` of ``rec_i`` and ``rec_f``).
    """
    n_k = hi - lo
    for k in range(n_k):
        units[k] = pos_units[lo + k]
    assets_k = pos_asset[lo:hi]
    liquidation_order_nb(kind, order, 0, n_k, assets_k, units, dec, sensitivity, assets,
                         order_idx)
    if kind == _LENDING:
        _, w = liquidate_lending_nb(t, i, 0, n_k, assets_k, units, cash, dec, dec, ones, True,
                                    order_idx, health, policy, assets, 0, rec_i, rec_f, budget,
                                    used, dust)
    else:
        _, w = liquidate_perp_nb(t, i, 0, n_k, assets_k, units, cash, dec, dec, True,
                                 order_idx, health, policy, assets, 0, rec_i, rec_f, budget,
                                 used, dust)
    return w


@njit
def keepers_paid_nb(w, plan_i, plan_f, state, gas):
    """Return True when the keepers' fees of a planned liquidation cover its costs.

    Parameters
    ----------
    w : int
        Records planned (rows ``0..w`` of ``plan_i``, ``plan_f``; :func:`plan_liquidation_nb`).
    plan_i : ndarray, shape (>= w, 3), int64
        Planned records, integer fields (``PREC_I_FIELDS``: the asset is column 2).
    plan_f : ndarray, shape (>= w, 7), float64
        Planned records, float fields (units closed, price, keeper fee, ...: ``PREC_F_FIELDS``).
    state : ndarray, shape (A, MARKET_STATE_SIZE), float64
        Each asset's market state; ``SLIPPAGE`` is its last step's ``|1 - execution factor|``.
    gas : float
        Gas of one liquidation record at the step, USD.

    Returns
    -------
    bool
        :func:`backtest.kernels.keepers_nb.keeper_is_paid_nb` of the summed keeper fees against
        ``gas x w`` plus the summed ``slippage x |units| x price`` of the records.
    """
    fee = 0.0
    cost = 0.0
    for r in range(w):
        fee += plan_f[r, 2]
        cost += state[plan_i[r, 2], _SLIPPAGE] * abs(plan_f[r, 0]) * plan_f[r, 1]
    return keeper_is_paid_nb(fee, gas * w, cost)


@njit
def _scan_chunk_nb(ch, chunk_size, n, t, kind, offsets, pos_asset, pos_units, cash, flag,
                   low_t, high_t, close_t, oracle_t, trigger, use_oracle, order, sensitivity,
                   policy, assets, ones, budget, dust, max_positions, n_rec_i, n_rec_f, flow):
    """Plan chunk ``ch``'s acting liquidations against what is left of the keepers' budget.

    Accounts with ``flag == 1`` (int8, shape (N,)) in order, each planned
    (:func:`plan_liquidation_nb`) with the budget ``budget`` (ndarray shape (A,), float64:
    units left to the chunk) as the previous ones used it; the account and price arguments are
    :func:`backtest.kernels.portfolio_nb.run_portfolio_nb`'s (``low_t`` .. ``oracle_t`` the
    step's, shape (A,)). ``flow`` (shape (A,), float64) receives the chunk's planned net flow at
    the decision prices, USD. Pass 2 liquidates the chunk from the same ``budget`` in the same
    order, so it takes exactly these sizes.

    Returns
    -------
    ndarray, shape (A,), float64
        Units of each asset the chunk's liquidations take.
    """
    n_assets = budget.shape[0]
    used = np.zeros(n_assets)
    prices = np.empty(max_positions)
    dec = np.empty(max_positions)
    plan_units = np.empty(max_positions)
    plan_order = np.empty(max_positions, np.int64)
    plan_i = np.empty((max_positions, n_rec_i), np.int64)
    plan_f = np.empty((max_positions, n_rec_f))
    for a in range(n_assets):
        flow[a] = 0.0
    for i in range(ch * chunk_size, min(n, (ch + 1) * chunk_size)):
        if flag[i] != 1:
            continue
        lo = offsets[i]
        hi = offsets[i + 1]
        account_prices_nb(lo, hi, pos_asset, pos_units, low_t, high_t, close_t, oracle_t,
                          trigger, use_oracle, prices, dec)
        h = account_health_nb(kind[i], lo, hi, pos_asset, pos_units, cash[i], prices, assets)
        w = plan_liquidation_nb(t, i, kind[i], lo, hi, pos_asset, pos_units, cash[i], dec, h,
                                order, sensitivity, policy, assets, ones, plan_units,
                                plan_order, plan_i, plan_f, budget, used, dust)
        for r in range(w):
            flow[plan_i[r, 2]] -= plan_f[r, 0] * plan_f[r, 1]
    return used


@njit
def allocate_capital_nb(t, capital_usd, close_t, gross_acc, chunk_budget, budget, dust,
                        chunk_size, kind, offsets, pos_asset, pos_units, cash, flag, low_t,
                        high_t, oracle_price_t, trigger, use_oracle, order, sensitivity, policy,
                        assets, ones, max_positions, n_rec_i, n_rec_f, flow_acc):
    """Hand step ``t``'s keepers' capital to the planned liquidations in book order.

    Parameters
    ----------
    t : int
        Step.
    capital_usd : float
        Notional keepers absorb per step and asset, USD (> 0).
    close_t : ndarray, shape (A,), float64
        The step's simulated closes, USD per unit (budget ``capital_usd / close``).
    gross_acc : ndarray, shape (C, A), float64
        Units each chunk's acting liquidations plan per asset (pass 1, uncapped).
    chunk_budget : ndarray, shape (C, A), float64
        Receives, when the budget binds, each chunk's budget for pass 2 (``inf``: its plans fit).
    budget, dust : ndarray, shape (A,), float64
        Scratch: the budget left; receives each asset's dust (0 when nothing binds).
    chunk_size : int
        Accounts per chunk.
    kind : ndarray, shape (N,), int8
        :class:`AccountKind` of each account.
    offsets : ndarray, shape (N + 1,), int64
        CSR offsets of each account's positions.
    pos_asset : ndarray, shape (P,), int16 or int32
        Asset index of each position.
    pos_units : ndarray, shape (P,), float64
        Signed units of each position (read only).
    cash : ndarray, shape (N,), float64
        Cash of each account, USD.
    flag : ndarray, shape (N,), int8
        Pass 1's flags (1: a keeper acts on the account this step).
    low_t, high_t : ndarray, shape (A,), float64
        The step's simulated lows and highs, USD per unit.
    oracle_price_t : ndarray, shape (A,), float64
        The step's oracle prices, USD per unit.
    trigger : int
        :class:`backtest.kernels.enums.TriggerPrice`.
    use_oracle : bool
        The triggers read the oracle (decisions at the close).
    order : int
        :class:`OrderPolicy`.
    sensitivity : ndarray, shape (A,), float64
        The step's asset sensitivity.
    policy : ndarray, shape (1,), ``PORTFOLIO_POLICY_DTYPE``
    assets : ndarray, shape (A,), ``ASSET_DTYPE``
    ones : ndarray, shape (A,), float64
        Execution factors of 1.
    max_positions : int
        The most positions any account has (scratch sizes).
    n_rec_i, n_rec_f : int
        Integer and float fields of a record (3, 7).
    flow_acc : ndarray, shape (C, A), float64
        Planned net flow per chunk and asset, USD; the rows of re-planned chunks rewritten.

    Returns
    -------
    bool
        True when some asset's planned units exceed its budget (``chunk_budget`` written);
        False: every plan fits, pass 2 needs no budget.
    """
    n_chunks, n_assets = gross_acc.shape
    n = kind.shape[0]
    binding = False
    for a in range(n_assets):
        budget[a] = capital_budget_units_nb(capital_usd, close_t[a])
        gross = 0.0
        for ch in range(n_chunks):
            gross += gross_acc[ch, a]
        dust[a] = 0.0
        if gross > budget[a]:
            binding = True
    if not binding:
        return False
    for a in range(n_assets):
        dust[a] = budget_dust_nb(budget[a])
    for ch in range(n_chunks):
        fits = True
        for a in range(n_assets):
            if gross_acc[ch, a] > budget[a]:
                fits = False
        if fits:
            for a in range(n_assets):
                chunk_budget[ch, a] = np.inf
                budget[a] = max(budget[a] - gross_acc[ch, a], 0.0)
        else:
            for a in range(n_assets):
                chunk_budget[ch, a] = budget[a]
            spent = _scan_chunk_nb(ch, chunk_size, n, t, kind, offsets, pos_asset, pos_units, cash,
                                  flag, low_t, high_t, close_t, oracle_price_t, trigger,
                                  use_oracle, order, sensitivity, policy, assets, ones,
                                  chunk_budget[ch], dust, max_positions, n_rec_i, n_rec_f,
                                  flow_acc[ch])
            for a in range(n_assets):
                budget[a] = max(budget[a] - spent[a], 0.0)
        for a in range(n_assets):
            if budget[a] <= dust[a]:
                budget[a] = 0.0
    return True


__all__ = ["allocate_capital_nb", "keepers_paid_nb", "plan_liquidation_nb"]
