"""numba kernel of multi-asset lending and cross-margin perp accounts: the step loop.

Accounts are ragged and stored CSR style: account ``i`` holds the positions
``offsets[i] .. offsets[i + 1]`` of the flat arrays ``pos_asset`` (index into the aligned
assets) and ``pos_units`` (asset units, signed), plus one ``cash`` balance (USD; a lending
account's stablecoin debt is ``-cash``). The account rules are
:mod:`backtest.kernels.portfolio_accounts_nb` (prices, health, liquidation order) and
:mod:`backtest.kernels.portfolio_liquidate_nb` (lending seizures, perp closes: Aave v3 and
Drift rules, ``docs/portfolios.md``); the market of each asset (impact, cascade feedback,
oracle) is :mod:`backtest.kernels.portfolio_market_nb`, through the single-asset engine's
:mod:`backtest.kernels.impact_nb` and :mod:`backtest.kernels.oracle_nb`; keepers (latency per
account, gas per record, capital per asset) are the single-asset engine's rules
(:mod:`backtest.kernels.keepers_nb`) through :mod:`backtest.kernels.portfolio_keepers_nb`.

Settlement is the layer every kernel shares (:mod:`backtest.kernels.settlement_nb`,
``docs/settlement.md``): the penalty split, the write-off and pro-rata attribution of an
event's bad debt to its records, and at the end of each step the insurance fund (fees in, bad
debt drawn, the rest socialised, or with ``mkt.waterfall`` ADL the perps' part handed to
auto-deleveraging per asset, which the caller runs:
:func:`backtest.kernels.adl_nb.auto_deleverage_positions_nb`).

The trigger price of each position is the adverse extreme of its asset's candle (the low for
collateral and longs, the high for shorts) or, with ``TriggerPrice.CLOSE``, the close: as in
:mod:`backtest.kernels.liquidation_nb`, every asset at its worst price of the candle at once;
with an oracle, the asset's oracle price. Without market impact the fill is the decision price
(the trigger price; with an oracle, the close); with it, decision price x the asset's execution
factor of the step. One liquidation per account per step.

The step loop is time-major; accounts are processed in fixed-size chunks in parallel
(``prange``). Pass 1 flags liquidatable accounts (and whether a keeper acts on each yet),
reserves, per chunk and in chunk order, record slots for all of their positions and, with
impact or keepers' capital, sums the flow and units their liquidations plan per asset; the
capital, if it binds, is handed out in chunk order; pass 2 liquidates them; the records are
then compacted and per-chunk sums added in chunk order: results are bit-identical whatever
the thread count.

Why over 400 lines: :func:`run_portfolio_nb` is one numba kernel whose two passes share the
step's state inside one compiled loop; the account rules, the liquidations, the market and
the keepers it calls are in their own modules.
"""

from __future__ import annotations

import numpy as np

from backtest._jit import njit, njit_parallel, prange
from backtest.kernels.enums import MarketState, OracleModel, Waterfall
from backtest.kernels.keepers_nb import keeper_waits_nb
from backtest.kernels.portfolio_accounts_nb import (
    account_health_nb,
    account_prices_nb,
    liquidation_order_nb,
    position_price_nb,
)
from backtest.kernels.portfolio_enums import (
    N_ASSET_METRICS,
    N_SUMMED_PORTFOLIO_METRICS,
    AccountKind,
    AssetMarketMetric,
    AssetMetric,
    PortfolioMetric,
)
from backtest.kernels.portfolio_keepers_nb import (
    allocate_capital_nb,
    keepers_paid_nb,
    plan_liquidation_nb,
)
from backtest.kernels.portfolio_liquidate_nb import (
    SHORTAGE_TOL,
    liquidate_lending_nb,
    liquidate_perp_nb,
)
from backtest.kernels.portfolio_market_nb import (
    adl_handoff_step_nb,
    execution_factors_nb,
    market_step_begin_nb,
    market_step_end_nb,
)
from backtest.kernels.settlement_nb import socialise_step_nb

_LENDING = int(AccountKind.LENDING)
_CROSS = int(AccountKind.CROSS_PERP)
_ORACLE_MARKET = int(OracleModel.MARKET)
_IMPACT_COST = int(AssetMarketMetric.IMPACT_COST)
_BAD_LONG = int(AssetMarketMetric.BAD_DEBT_LONG)
_BAD_SHORT = int(AssetMarketMetric.BAD_DEBT_SHORT)
_UNITS_LONG = int(AssetMarketMetric.BANKRUPT_UNITS_LONG)
_UNITS_SHORT = int(AssetMarketMetric.BANKRUPT_UNITS_SHORT)
_ADL = int(Waterfall.ADL)
_ADL_STEP = int(MarketState.ADL_STEP)

_M_LIQUIDATABLE = int(PortfolioMetric.N_LIQUIDATABLE)
_M_LIQ = int(PortfolioMetric.N_LIQUIDATIONS)
_M_LENDING = int(PortfolioMetric.N_LENDING)
_M_CROSS = int(PortfolioMetric.N_CROSS)
_M_ISOLATED = int(PortfolioMetric.N_ISOLATED)
_M_BANKRUPT = int(PortfolioMetric.N_BANKRUPT)
_M_RECORDS = int(PortfolioMetric.N_RECORDS)
_M_NOTIONAL = int(PortfolioMetric.LIQUIDATED_NOTIONAL)
_M_REPAID = int(PortfolioMetric.DEBT_REPAID)
_M_KEEPER = int(PortfolioMetric.KEEPER_FEES)
_M_INSURANCE = int(PortfolioMetric.INSURANCE_FEES)
_M_BAD = int(PortfolioMetric.BAD_DEBT)
_M_DRAW = int(PortfolioMetric.INSURANCE_DRAW)
_M_FUND = int(PortfolioMetric.INSURANCE_FUND)
_M_SOCIALISED = int(PortfolioMetric.SOCIALISED_LOSS)
_N_SUMMED = N_SUMMED_PORTFOLIO_METRICS

_A_NOTIONAL = int(AssetMetric.NOTIONAL)
_A_SEIZED = int(AssetMetric.COLLATERAL_SEIZED)
_A_PERP = int(AssetMetric.PERP_CLOSED)
_A_UNITS = int(AssetMetric.UNITS)
_A_KEEPER = int(AssetMetric.KEEPER_FEES)
_A_INSURANCE = int(AssetMetric.INSURANCE_FEES)
_A_BAD = int(AssetMetric.BAD_DEBT)
_A_RECORDS = int(AssetMetric.N_RECORDS)



@njit_parallel
def run_portfolio_nb(
    t0,
    t1,
    low,
    high,
    close,
    sensitivity,
    assets,
    policy,
    kind,
    offsets,
    pos_asset,
    pos_units,
    cash,
    n_liquidations,
    first_step,
    penalties_paid,
    bad_debt,
    liquidated_notional,
    flag,
    chunk_size,
    max_positions,
    step_out,
    asset_out,
    fund,
    rec_len,
    rec_i,
    rec_f,
    mkt,
    keep,
):
    """Advance every account from step ``t0`` to at most ``t1`` (exclusive), in place.

    Each step first opens every asset's market (:mod:`backtest.kernels.portfolio_market_nb`:
    price factor of cascade feedback, oracle price). Pass 1 flags the accounts liquidatable at
    their trigger prices and, with market impact, plans each one's liquidation at the decision
    prices to sum every asset's net flow (:func:`plan_liquidation_nb`); the flows give each asset's
    execution factor. Pass 2 liquidates the flagged accounts, sized at the decision prices and
    filled at decision price x execution factor; with cascade feedback each asset's move is then
    fixed in its displacement. Without impact, cascade and oracle this is the historical candle
    and pass 1 flags only.

    Parameters
    ----------
    t0, t1 : int
        Step range.
    low, high, close : ndarray, shape (T, A), float64
        Aligned candles of every asset, USD per unit.
    sensitivity : ndarray, shape (T, A), float64
        Per-step asset sensitivity ranked by ``LEAST_SENSITIVE`` (trailing realised vol); no
        NaN (use +inf for unknown: ranked last).
    assets : ndarray, shape (A,), ``ASSET_DTYPE``
    policy : ndarray, shape (1,), ``PORTFOLIO_POLICY_DTYPE``
    kind : ndarray, shape (N,), int8
        :class:`AccountKind` of each account.
    offsets : ndarray, shape (N + 1,), int64
        CSR offsets of each account's positions.
    pos_asset : ndarray, shape (P,), int16 or int32
        Asset index of each position.
    pos_units : ndarray, shape (P,), float64
        Units of each position (signed); updated.
    cash : ndarray, shape (N,), float64
        Cash of each account, USD (lending: ``-debt``); updated.
    n_liquidations, first_step : ndarray, shape (N,), int32
        Events per account and step of the first one (-1: none); updated.
    penalties_paid, bad_debt, liquidated_notional : ndarray, shape (N,), float64
        Per-account totals, USD (penalties: keeper + insurance); updated.
    flag : ndarray, shape (N,), int8
        Scratch (liquidatable in the current step).
    chunk_size, max_positions : int
        Accounts per chunk (fixes summation order, not the thread count); the most positions
        any account has.
    step_out : ndarray, shape (T, N_PORTFOLIO_METRICS), float64
        Per-step aggregates (:class:`PortfolioMetric`); rows ``t0..`` added to (the summed
        metrics) and written (the insurance fund's).
    asset_out : ndarray, shape (T, A, N_ASSET_METRICS), float64
        Per-step, per-asset aggregates (:class:`AssetMetric`); added to.
    fund : ndarray, shape (1,), float64
        Insurance fund balance, USD; updated at the end of each step
        (:func:`backtest.kernels.settlement_nb.socialise_step_nb`: the step's insurance fees
        in, then its bad debt drawn, the rest socialised; ``step_out``'s fund columns written).
    rec_len : ndarray, shape (1,), int64
        Records in the buffer; updated.
    rec_i : ndarray, shape (cap, 3), int64
        ``PREC_I_FIELDS``.
    rec_f : ndarray, shape (cap, 7), float64
        ``PREC_F_FIELDS``; ``fill_price`` is the execution price.
    mkt : PortfolioMarket
        Per-asset market inputs and state
        (:class:`backtest.kernels.portfolio_market_nb.PortfolioMarket`; ``no_market`` for the
        historical prices); its state and rows ``t0..`` of its output are written.
    keep : PortfolioKeepers
        Keepers' latency, profit rule, capital and gas
        (:class:`backtest.kernels.portfolio_market_nb.PortfolioKeepers`; ``no_keepers`` for
        keepers that always act at once); its ``flagged`` is updated.

    Returns
    -------
    int
        The step after the last one simulated: ``t1``, or the first step whose records would
        not fit in the buffer (that step is left untouched: flush or grow, then call again),
        or the step after one that left an auto-deleveraging pending (``mkt.waterfall`` ADL:
        ``ADL_STEP`` of ``mkt.state``'s row 0 set; deleverage, then call again).
    """
    n = kind.shape[0]
    n_assets = low.shape[1]
    n_chunks = (n + chunk_size - 1) // chunk_size
    cap = rec_i.shape[0]
    trigger = policy[0].trigger
    order = policy[0].order
    impact = mkt.market[0].impact_model != 0
    use_oracle = mkt.market[0].oracle_model != _ORACLE_MARKET
    latency = keep.latency
    profit = keep.requires_profit
    capital = keep.capital_usd > 0.0
    plan = impact or profit or capital  # pass 1 plans each liquidation
    flagged = keep.flagged
    inf_budget = np.full(n_assets, np.inf)
    no_dust = np.zeros(n_assets)
    budget = np.full(n_assets, np.inf)  # keepers' units left per asset (serial allocation)
    dust = np.zeros(n_assets)
    chunk_budget = np.full((n_chunks, n_assets), np.inf)
    gross_acc = np.zeros((n_chunks, n_assets))  # planned units per chunk and asset
    count = np.zeros(n_chunks, np.int64)
    n_flag = np.zeros(n_chunks, np.int64)
    start = np.zeros(n_chunks, np.int64)
    written = np.zeros(n_chunks, np.int64)
    acc = np.zeros((n_chunks, _N_SUMMED))
    asset_acc = np.zeros((n_chunks, n_assets, N_ASSET_METRICS))
    flow_acc = np.zeros((n_chunks, n_assets))  # planned net flow per chunk and asset, USD
    # per chunk and asset: impact cost, bad debt of bankrupt perp longs / shorts (USD) and
    # their units (the market's AssetMarketMetric columns IMPACT_COST, BAD_DEBT_*, ...)
    cost_acc = np.zeros((n_chunks, n_assets, 5))
    low_t = np.empty(n_assets)
    high_t = np.empty(n_assets)
    close_t = np.empty(n_assets)
    oracle_t = np.empty(n_assets)
    outstanding = np.zeros(n_assets)
    flow = np.zeros(n_assets)
    exec_f = np.ones(n_assets)
    ones = np.ones(n_assets)
    for t in range(t0, t1):
        market_step_begin_nb(t, low, high, close, mkt, outstanding, low_t, high_t, close_t,
                             oracle_t)
        # pass 1: flag liquidatable accounts (1: a keeper acts, 2: it waits: latency, or its
        # fees would not cover gas and slippage), reserve a record per position of each acting
        # one; with impact or keepers' capital, sum the flow and units their liquidations plan
        for ch in prange(n_chunks):
            prices = np.empty(max_positions)
            dec = np.empty(max_positions)
            plan_units = np.empty(max_positions)
            plan_order = np.empty(max_positions, np.int64)
            plan_i = np.empty((max_positions, rec_i.shape[1]), np.int64)
            plan_f = np.empty((max_positions, rec_f.shape[1]))
            c = 0
            f = 0
            for a in range(n_assets):
                flow_acc[ch, a] = 0.0
                gross_acc[ch, a] = 0.0
            for i in range(ch * chunk_size, min(n, (ch + 1) * chunk_size)):
                lo = offsets[i]
                hi = offsets[i + 1]
                account_prices_nb(lo, hi, pos_asset, pos_units, low_t, high_t, close_t,
                                  oracle_t, trigger, use_oracle, prices, dec)
                h = account_health_nb(kind[i], lo, hi, pos_asset, pos_units, cash[i], prices,
                                      assets)
                if not h < 1.0:
                    flag[i] = 0
                    continue
                f += 1
                if latency > 0 and keeper_waits_nb(latency, flagged[i], t):
                    flag[i] = 2
                    continue
                if plan:
                    w = plan_liquidation_nb(t, i, kind[i], lo, hi, pos_asset, pos_units,
                                            cash[i], dec, h, order, sensitivity[t], policy,
                                            assets, ones, plan_units, plan_order, plan_i,
                                            plan_f, inf_budget, no_dust, no_dust)
                    if profit and not keepers_paid_nb(w, plan_i, plan_f, mkt.state,
                                                      keep.gas[t]):
                        flag[i] = 2  # the keepers' fees do not cover gas and slippage
                        continue
                    for r in range(w):
                        flow_acc[ch, plan_i[r, 2]] -= plan_f[r, 0] * plan_f[r, 1]
                        gross_acc[ch, plan_i[r, 2]] += abs(plan_f[r, 0])
                flag[i] = 1
                c += hi - lo
            count[ch] = c
            n_flag[ch] = f
        # keepers' capital: with some asset's planned units over its budget, the budget goes to
        # the liquidations in book order (portfolio_keepers_nb.allocate_capital_nb)
        binding = False
        if capital:
            binding = allocate_capital_nb(t, keep.capital_usd, close_t, gross_acc, chunk_budget,
                                          budget, dust, chunk_size, kind, offsets, pos_asset,
                                          pos_units, cash, flag, low_t, high_t, oracle_t,
                                          trigger, use_oracle, order, sensitivity[t],
                                          policy, assets, ones, max_positions, rec_i.shape[1],
                                          rec_f.shape[1], flow_acc)
        total = rec_len[0]
        for ch in range(n_chunks):
            start[ch] = total
            total += count[ch]
        if total > cap:
            return t
        if impact:  # every asset's flow, summed in chunk order, gives its execution factor
            for a in range(n_assets):
                flow[a] = 0.0
            for ch in range(n_chunks):
                for a in range(n_assets):
                    flow[a] += flow_acc[ch, a]
            execution_factors_nb(t, flow, mkt, outstanding, exec_f)
        # pass 2: liquidate the flagged accounts, chunk by chunk
        for ch in prange(n_chunks):
            for k in range(_N_SUMMED):
                acc[ch, k] = 0.0
            for a in range(n_assets):
                for k in range(5):
                    cost_acc[ch, a, k] = 0.0
                for k in range(N_ASSET_METRICS):
                    asset_acc[ch, a, k] = 0.0
            written[ch] = 0
            if n_flag[ch] == 0:
                continue
            acc[ch, _M_LIQUIDATABLE] = n_flag[ch]
            prices = np.empty(max_positions)
            dec = np.empty(max_positions)
            fills = np.empty(max_positions)
            order_idx = np.empty(max_positions, np.int64)
            cap_left = chunk_budget[ch] if binding else inf_budget
            used = np.zeros(n_assets)
            j = start[ch]
            for i in range(ch * chunk_size, min(n, (ch + 1) * chunk_size)):
                if flag[i] == 0:
                    continue
                if flag[i] == 2:  # liquidatable, no keeper acts yet
                    if latency > 0 and flagged[i] < 0:
                        flagged[i] = t
                    continue
                lo = offsets[i]
                hi = offsets[i + 1]
                account_prices_nb(lo, hi, pos_asset, pos_units, low_t, high_t, close_t,
                                  oracle_t, trigger, use_oracle, prices, dec)
                h = account_health_nb(kind[i], lo, hi, pos_asset, pos_units, cash[i], prices,
                                      assets)
                liquidation_order_nb(kind[i], order, lo, hi, pos_asset, pos_units, dec,
                                     sensitivity[t], assets, order_idx)
                if impact:
                    for k in range(lo, hi):
                        fills[k - lo] = dec[k - lo] * exec_f[pos_asset[k]]
                else:
                    fills = dec
                c0 = cash[i]
                if kind[i] == _LENDING:
                    c1, w = liquidate_lending_nb(t, i, lo, hi, pos_asset, pos_units, c0, dec,
                                                 fills, exec_f, not impact, order_idx, h,
                                                 policy, assets, j, rec_i, rec_f, cap_left,
                                                 used, dust)
                else:
                    c1, w = liquidate_perp_nb(t, i, lo, hi, pos_asset, pos_units, c0, dec,
                                              fills, not impact, order_idx, h, policy, assets,
                                              j, rec_i, rec_f, cap_left, used, dust)
                cash[i] = c1
                # liquidatable at the oracle, not at the market; or the keepers' capital is spent
                if w == 0 and (use_oracle or binding):
                    if latency > 0 and flagged[i] < 0:
                        flagged[i] = t
                    continue
                if latency > 0:
                    flagged[i] = -1
                if kind[i] == _LENDING:
                    acc[ch, _M_LENDING] += 1.0
                elif kind[i] == _CROSS:
                    acc[ch, _M_CROSS] += 1.0
                else:
                    acc[ch, _M_ISOLATED] += 1.0
                acc[ch, _M_LIQ] += 1.0
                n_liquidations[i] += 1
                if first_step[i] < 0:
                    first_step[i] = t
                bad_event = 0.0
                for r in range(j, j + w):
                    a = rec_i[r, 2]
                    notional = abs(rec_f[r, 0]) * rec_f[r, 1]
                    keeper = rec_f[r, 2]
                    ins = rec_f[r, 3]
                    bad = rec_f[r, 4]
                    bad_event += bad
                    acc[ch, _M_RECORDS] += 1.0
                    acc[ch, _M_NOTIONAL] += notional
                    acc[ch, _M_REPAID] += rec_f[r, 6]
                    acc[ch, _M_KEEPER] += keeper
                    acc[ch, _M_INSURANCE] += ins
                    acc[ch, _M_BAD] += bad
                    asset_acc[ch, a, _A_NOTIONAL] += notional
                    if kind[i] == _LENDING:
                        asset_acc[ch, a, _A_SEIZED] += notional
                    else:
                        asset_acc[ch, a, _A_PERP] += notional
                    asset_acc[ch, a, _A_UNITS] += abs(rec_f[r, 0])
                    asset_acc[ch, a, _A_KEEPER] += keeper
                    asset_acc[ch, a, _A_INSURANCE] += ins
                    asset_acc[ch, a, _A_BAD] += bad
                    asset_acc[ch, a, _A_RECORDS] += 1.0
                    penalties_paid[i] += keeper + ins
                    liquidated_notional[i] += notional
                    if impact:  # units sold x (decision - fill), bought x (fill - decision)
                        for k in range(lo, hi):
                            if pos_asset[k] == a:
                                cost_acc[ch, a, 0] += rec_f[r, 0] * (dec[k - lo] - rec_f[r, 1])
                    if bad > 0.0 and kind[i] != _LENDING:  # a bankrupt perp, for ADL
                        side = 1 if rec_f[r, 0] > 0.0 else 2
                        cost_acc[ch, a, side] += bad
                        cost_acc[ch, a, side + 2] += abs(rec_f[r, 0])
                if bad_event > 0.0:
                    acc[ch, _M_BANKRUPT] += 1.0
                    bad_debt[i] += bad_event
                j += w
            written[ch] = j - start[ch]
        # compact the records (chunk order) and add the chunk sums in chunk order
        dest = rec_len[0]
        for ch in range(n_chunks):
            w = written[ch]
            src = start[ch]
            if src != dest:
                for r in range(w):
                    for k in range(rec_i.shape[1]):
                        rec_i[dest + r, k] = rec_i[src + r, k]
                    for k in range(rec_f.shape[1]):
                        rec_f[dest + r, k] = rec_f[src + r, k]
            dest += w
            if n_flag[ch] > 0:
                for k in range(_N_SUMMED):
                    step_out[t, k] += acc[ch, k]
                for a in range(n_assets):
                    for k in range(N_ASSET_METRICS):
                        asset_out[t, a, k] += asset_acc[ch, a, k]
                    mkt.out[t, a, _IMPACT_COST] += cost_acc[ch, a, 0]
                    mkt.out[t, a, _BAD_LONG] += cost_acc[ch, a, 1]
                    mkt.out[t, a, _BAD_SHORT] += cost_acc[ch, a, 2]
                    mkt.out[t, a, _UNITS_LONG] += cost_acc[ch, a, 3]
                    mkt.out[t, a, _UNITS_SHORT] += cost_acc[ch, a, 4]
        rec_len[0] = dest
        if impact:
            market_step_end_nb(t, flow, mkt, exec_f)
        balance, draw, socialised = socialise_step_nb(fund[0], step_out[t, _M_INSURANCE],
                                                      step_out[t, _M_BAD])
        fund[0] = balance
        step_out[t, _M_DRAW] = draw
        step_out[t, _M_FUND] = balance
        step_out[t, _M_SOCIALISED] = socialised
        if mkt.waterfall == _ADL and socialised > 0.0:
            rest = adl_handoff_step_nb(t, socialised, step_out[t, _M_BAD], mkt)
            if mkt.state[0, _ADL_STEP] >= 0.0:  # pending: the caller deleverages, calls again
                step_out[t, _M_SOCIALISED] = rest
                return t + 1
    return t1


@njit
def max_positions_nb(offsets):
    """Return the largest number of positions of one account (``offsets`` shape (N + 1,)).

    Parameters
    ----------
    offsets : ndarray, shape (N + 1,), int64
        CSR offsets of each account's positions.

    Returns
    -------
    int
        ``max(offsets[i + 1] - offsets[i])``; 0 for an empty book.
    """
    best = 0
    n = offsets.shape[0] - 1
    for i in range(n):
        best = max(best, offsets[i + 1] - offsets[i])
    return best


#: The account rules, re-exported (the kernel's public names before they had modules).
__all__ = ["SHORTAGE_TOL", "account_health_nb", "account_prices_nb", "liquidate_lending_nb",
           "liquidate_perp_nb", "liquidation_order_nb", "max_positions_nb", "plan_liquidation_nb",
           "position_price_nb", "run_portfolio_nb"]
