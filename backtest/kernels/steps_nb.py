"""The step kernel of the single-asset engine: :func:`run_steps_nb` and its decisions.

Accounts, health, sizes, fills and auction arithmetic are the per-account kernels of
:mod:`backtest.kernels.liquidation_nb`; penalty split, bad debt and the per-step insurance fund,
ADL hand-off and socialised loss are the settlement layer :mod:`backtest.kernels.settlement_nb`
(shared with the portfolio and options kernels); the bands' arithmetic is in
:mod:`backtest.kernels.bands_nb`; the moving book (arrivals, cures) in
:mod:`backtest.kernels.book_flow_nb`, applied by the step loop at the start of each step.

The step loop is time-major; within a step accounts are processed in fixed-size chunks in
parallel (``prange``). Per-chunk accumulators are summed in chunk order after each step, and
each chunk owns a slice of the record buffers, so results are bit-identical whatever the
number of threads. A cheap filter on the stored liquidation price (the *trigger key*) skips
accounts that cannot trigger; the decision itself is the exact equity test, identical to the
reference twin in :mod:`backtest.kernels.reference`.

Why over 400 lines: :func:`run_steps_nb` is one kernel whose passes (decide, budget, apply)
share the step's state inside one compiled loop; its decision helpers sit beside it. It is
split out of :mod:`backtest.kernels.liquidation_nb` so that it can call the book flow, which
itself uses that module's account formulas (no import circle).
"""

from __future__ import annotations

import numpy as np

from backtest._jit import njit, njit_parallel, prange
from backtest.kernels.bands_nb import (
    apply_bands_liquidation_nb,
    apply_soft_trade_nb,
    bands_health_nb,
    bands_key_nb,
    leave_soft_liquidation_nb,
    soft_trade_nb,
)
from backtest.kernels.book_flow_nb import book_flow_step_nb
from backtest.kernels.enums import (
    N_SUMMED_METRICS,
    AuctionCurve,
    FillPrice,
    MarketState,
    OracleModel,
    PolicyFamily,
    Product,
    StepMetric,
    TriggerPrice,
)
from backtest.kernels.impact_nb import (
    displacement_factor_nb,
    displacement_update_nb,
    equivalent_flow_nb,
    execution_factor_nb,
)
from backtest.kernels.keepers_nb import (
    budget_dust_nb,
    budget_take_nb,
    capital_budget_units_nb,
    keeper_is_paid_nb,
    keeper_waits_nb,
)
from backtest.kernels.liquidation_nb import (
    KEY_SLACK,
    _chost_take_nb,
    _take_after_budget_nb,
    _take_need_nb,
    apply_auction_take_nb,
    apply_liquidation_nb,
    auction_price_nb,
    clears_debt_nb,
    fill_price_nb,
    health_nb,
    penalty_rate_nb,
    step_calls_nb,
    take_pays_nb,
    trigger_key_nb,
    units_to_close_nb,
)
from backtest.kernels.oracle_nb import oracle_price_nb
from backtest.kernels.settlement_nb import settle_step_nb

#: Accounts whose trigger-key bounds a step's book flow refreshes serially; more go to the
#: threads (a parallel dispatch costs more than scanning a few chunks, most on a busy machine).
_SERIAL_BOUNDS = 1 << 16

# int constants for use inside kernels
_HARD = int(PolicyFamily.HARD)
_AUCTION = int(PolicyFamily.AUCTION)
_SOFT_BANDS = int(PolicyFamily.SOFT_BANDS)
_AUCTIONS_KICKED = int(StepMetric.AUCTIONS_KICKED)
_AUCTION_INCENTIVES = int(StepMetric.AUCTION_INCENTIVES)
# decision kinds returned by _decide_nb
_KIND_LIQUIDATION = 0
_KIND_PREEMPTIVE = 1
_KIND_KICK = 2  # start (or restart) a Dutch auction
_KIND_TAKE = 3  # a keeper takes collateral from a running auction
_KIND_BANDS_HARD = 4  # hard liquidation of a loan in bands (may close 0 units: all stablecoin)
_KIND_ZERO_BID = 5  # an auction no keeper took within its bid window is dealt to a zero bid
_ENGLISH = int(AuctionCurve.ENGLISH)
_SOFT_SOLD = int(StepMetric.SOFT_SOLD_UNITS)
_SOFT_BOUGHT = int(StepMetric.SOFT_BOUGHT_UNITS)
_SOFT_PROCEEDS = int(StepMetric.SOFT_PROCEEDS)
_SOFT_LOSS = int(StepMetric.SOFT_LOSS)
_N_SOFT = int(StepMetric.N_SOFT_LIQUIDATION)
_LOAN = int(Product.LOAN)
_EXTREME = int(TriggerPrice.EXTREME)
_N_LIQ = int(StepMetric.N_LIQUIDATIONS)
_N_CLOSED = int(StepMetric.N_CLOSED)
_N_BANKRUPT = int(StepMetric.N_BANKRUPT)
_NOTIONAL = int(StepMetric.LIQUIDATED_NOTIONAL)
_KEEPER = int(StepMetric.KEEPER_FEES)
_INSURANCE = int(StepMetric.INSURANCE_FEES)
_BAD_DEBT = int(StepMetric.BAD_DEBT)
_CASH_PERP = int(StepMetric.CASH_DELTA_PERP)
_CASH_LOAN = int(StepMetric.CASH_DELTA_LOAN)
_UNITS_LONG = int(StepMetric.UNITS_DELTA_PERP_LONG)
_UNITS_SHORT = int(StepMetric.UNITS_DELTA_PERP_SHORT)
_UNITS_LOAN = int(StepMetric.UNITS_DELTA_LOAN)
_NET_FLOW = int(StepMetric.NET_FLOW)
_IMPACT_COST = int(StepMetric.IMPACT_COST)
_PRICE_FACTOR = int(StepMetric.PRICE_FACTOR)
_EXEC_FACTOR = int(StepMetric.EXECUTION_FACTOR)
_ORACLE = int(StepMetric.ORACLE_PRICE)
_N_WAITING = int(StepMetric.N_WAITING)
_WAITING_EQUITY = int(StepMetric.WAITING_NEGATIVE_EQUITY)
_BAD_LONG = int(StepMetric.BAD_DEBT_PERP_LONG)
_BAD_SHORT = int(StepMetric.BAD_DEBT_PERP_SHORT)
_BANKRUPT_UNITS_LONG = int(StepMetric.BANKRUPT_UNITS_LONG)
_BANKRUPT_UNITS_SHORT = int(StepMetric.BANKRUPT_UNITS_SHORT)
_TAKE_FACTOR = int(StepMetric.TAKE_FACTOR)
_FUNDING = int(StepMetric.FUNDING_PAID)
_SLICE = int(StepMetric.SLICE_FACTOR)
_MARGIN_SCALE = int(StepMetric.MARGIN_SCALE)
_N_PREEMPTIVE = int(StepMetric.N_PREEMPTIVE)
_PREEMPTIVE_NOTIONAL = int(StepMetric.PREEMPTIVE_NOTIONAL)
_PERP = int(Product.PERP)
_N_SUMMED = N_SUMMED_METRICS
_ORACLE_MARKET = int(OracleModel.MARKET)
_ORACLE_MARK = int(OracleModel.MARK)
_FILL_CLOSE = int(FillPrice.CLOSE)
_FILL_LIQ = int(FillPrice.LIQUIDATION_PRICE)


@njit
def _chunk_bounds_nb(key, ch, chunk_size):
    """Return (max key, max negative key) of one chunk; ``-inf`` where there is none."""
    start = ch * chunk_size
    stop = min(key.shape[0], start + chunk_size)
    hi = -np.inf
    hi_short = -np.inf
    for i in range(start, stop):
        k = key[i]
        hi = max(hi, k)
        if k < 0.0:
            hi_short = max(hi_short, k)
    return hi, hi_short


@njit
def _decide_nb(i, t, candle, x_long, x_short, lo_key, hi_key, fill_mode, accounts,
               policy_inputs, keepers, sized=True):
    """Decide account ``i`` at step ``t``.

    ``m_rate`` and ``t_rate`` in ``policy_inputs`` are this step's (dynamic margin scales the
    perps'); trigger keys are at the base rates ``m_base``. With the predictive overlay
    (``preempt_fraction > 0``) an account that is not liquidatable but would be at the stressed
    price ``x e^-shift`` (longs) / ``x e^shift`` (shorts) is reduced by ``preempt_fraction`` at
    the step's close, paying ``preempt_penalty``, at most once per cooldown. With ``sized``
    False (no volume budget left) it only says whether the account is liquidatable.

    Family AUCTION (loans): a loan in a running auction is decided by the auction alone
    (:func:`_auction_decision_nb`, which may deal it to a zero bid); a liquidatable loan not
    yet in one is kicked. Family
    SOFT_BANDS (loans): :func:`_bands_decision_nb`.

    Returns
    -------
    tuple
        ``(decision price, units to close, liquidatable, penalty rate, kind)``: units 0
        means no liquidation now, either because the account is healthy or because no keeper
        acts yet (latency, cooldown, or the keeper fee would not cover gas plus expected
        impact); kind is liquidation, pre-emptive, auction kick/reset, auction take or zero
        bid.
    """
    product, units, cash, key, flagged, last_step, auction_tic, auction_top, bands = accounts
    (family, m_rate, t_rate, p_rate, close_factor, full_close_health, keeper_share,
     tier_health, tier_fraction, cooldown, size_rules, m_base, penalty_model, penalty_cap,
     seize_all, preempt_fraction, preempt_penalty, shift, auction, band) = policy_inputs
    latency, requires_profit, gas, slippage, _ = keepers
    prod = product[i]
    if family == _AUCTION and prod == _LOAN and auction_tic[i] >= 0:
        return _auction_decision_nb(i, t, candle, x_long, accounts, auction, p_rate[prod],
                                    keepers)
    k = key[i]
    # filter: long keys > 0 trigger at low <= key, short keys < 0 at high >= -key
    if not (k >= lo_key or (k < 0.0 and -k <= hi_key)):
        return 0.0, 0.0, False, 0.0, _KIND_LIQUIDATION
    if family == _SOFT_BANDS and prod == _LOAN:
        return _bands_decision_nb(i, t, candle, x_long, fill_mode, accounts, band,
                                  keeper_share, keepers)
    u = units[i]
    c = cash[i]
    m = m_rate[prod]
    x = x_long if u > 0.0 else x_short
    in_cooldown = cooldown > 0 and last_step[i] >= 0 and t - last_step[i] < cooldown
    if not (c + u * x < m * abs(u) * x):  # the exact test: equity < maintenance requirement
        if preempt_fraction > 0.0 and not in_cooldown and sized:
            xs = x * np.exp(-shift) if u > 0.0 else x * np.exp(shift)
            if c + u * xs < m * abs(u) * xs:  # would breach at the stressed price
                p = candle[3]
                full = units_to_close_nb(_HARD, prod, u, c, p, m, np.inf, preempt_penalty,
                                         1.0, 1.0, tier_health, tier_fraction, size_rules, 0)
                return p, preempt_fraction * full, False, preempt_penalty, _KIND_PREEMPTIVE
        return 0.0, 0.0, False, 0.0, _KIND_LIQUIDATION
    if keeper_waits_nb(latency, flagged[i], t):
        return 0.0, 0.0, True, 0.0, _KIND_LIQUIDATION
    if family == _AUCTION and prod == _LOAN:
        return x, 0.0, True, 0.0, _KIND_KICK  # a keeper barks: the auction starts at x x buf
    if in_cooldown or not sized:
        return 0.0, 0.0, True, 0.0, _KIND_LIQUIDATION
    # the liquidation price at this step's rate, for fills at the liquidation price
    k_step = k * (1.0 - m_base[prod]) / (1.0 - m) if u > 0.0 else (
        k * (1.0 + m_base[prod]) / (1.0 + m))
    p = fill_price_nb(fill_mode, u, k_step, x, candle[0], candle[2], candle[1], candle[3])
    pen = p_rate[prod]
    if prod == _LOAN:
        pen = penalty_rate_nb(penalty_model, pen, penalty_cap, health_nb(prod, u, c, p, m),
                              full_close_health)
    d, p = step_calls_nb(
        family, prod, u, c, p, x, fill_mode == _FILL_LIQ, candle[2], candle[1], m, t_rate[prod],
        pen, close_factor, full_close_health, tier_health, tier_fraction, size_rules, seize_all,
    )
    if requires_profit and not keeper_is_paid_nb(keeper_share * pen * d * p, gas,
                                                  slippage * d * p):
        return 0.0, 0.0, True, 0.0, _KIND_LIQUIDATION
    return p, max(d, 0.0), True, pen, _KIND_LIQUIDATION


@njit
def _bands_decision_nb(i, t, candle, x, fill_mode, accounts, band, keeper_share, keepers):
    """Decide a loan of family SOFT_BANDS at step ``t`` (see :func:`_decide_nb`).

    Hard-liquidatable when :func:`bands_health_nb` at the decision price ``x`` is below 1 and
    a keeper acts (latency, and profit if required: the equity seized must cover gas and the
    expected slippage). Soft conversion is not decided here (:func:`soft_trade_nb`).
    """
    _, units, cash, _, flagged, _, _, _, bands = accounts
    latency, requires_profit, gas, slippage, _ = keepers
    u = units[i]
    c = cash[i]
    if not bands_health_nb(u, c, x, bands[i], band[0], int(band[1]), band[2]) < 1.0:
        return 0.0, 0.0, False, 0.0, _KIND_LIQUIDATION
    if keeper_waits_nb(latency, flagged[i], t):
        return 0.0, 0.0, True, 0.0, _KIND_LIQUIDATION
    p = candle[3] if fill_mode == _FILL_CLOSE else x
    if requires_profit and not keeper_is_paid_nb(keeper_share * max(c + u * p, 0.0), gas,
                                                  slippage * u * p):
        return 0.0, 0.0, True, 0.0, _KIND_LIQUIDATION
    return p, u, True, 0.0, _KIND_BANDS_HARD


@njit
def _auction_decision_nb(i, t, candle, x_long, accounts, auction, penalty, keepers):
    """Decide a loan in a running auction at step ``t`` (see :func:`_decide_nb`).

    ENGLISH auctions (Maker Liquidations 1.2, ``flip.sol``) first set the step's winning bid
    per unit, ``auction_top[i] = market x buf`` (written here: each account is decided by one
    thread, and every later use in the step reads this value). With a bid window
    (``auction[8]`` = flip's ``ttl`` in steps, > 0), an auction still running more than that
    many steps after its kick had no take in its window: keepers stood back because a take did
    not pay (market impact, or gas at the step's gas price when keepers require profit) or
    their capital for the step was spent. It is dealt to a zero bid (kind ZERO_BID, the whole
    lot at the market price for the record; settled by :func:`apply_auction_take_nb` at price
    0: the collateral to that keeper, the loan's debt to bad debt). Source: dss ``flip.sol``
    ``tend`` (a bid restarts ``tic = now + ttl``) and ``deal`` (after ``tic`` the highest
    bidder, here the zero bidder, takes the lot).

    Otherwise the auction resets (kind KICK, restarting at the decision price x ``buf``) when it has
    run longer than ``tail`` steps or its price fell below ``cusp x top`` (Maker
    ``Clipper.redo``). Otherwise a keeper takes as much collateral as pays the tab ``debt x
    (1 + bonus)``, at most all of it, when that take pays (:func:`take_pays_nb`) at the
    execution factor in ``keepers`` (the last of its five fields), net of gas when keepers
    require profit.
    """
    _, units, cash, _, _, _, auction_tic, auction_top, _ = accounts
    tail = auction[4]
    cusp = auction[5]
    margin = auction[6]
    latency, requires_profit, gas, slippage, factor = keepers
    dur = t - auction_tic[i]
    market = candle[3]
    if int(auction[0]) == _ENGLISH:
        auction_top[i] = market * auction[9]  # the step's winning bid per unit
    if auction[8] > 0.0 and dur > auction[8]:  # the bid window passed untaken: a zero bid wins
        return market, units[i], True, penalty, _KIND_ZERO_BID
    top = auction_top[i]
    price = auction_price_nb(int(auction[0]), top, dur, auction[1], auction[2], auction[3])
    if dur > tail or price < cusp * top:
        return x_long, 0.0, True, 0.0, _KIND_KICK
    tab = -cash[i] / (1.0 - penalty)  # debt x (1 + bonus)
    q = min(units[i], tab / price) if price > 0.0 else units[i]
    if not (q > 0.0 and take_pays_nb(q, price, market, factor, margin,
                                     gas if requires_profit else 0.0)):
        return 0.0, 0.0, True, 0.0, _KIND_TAKE
    return market, q, True, penalty, _KIND_TAKE


@njit
def _soft_step_nb(i, x, exec_factor, units, cash, key, bands, band, acc):
    """Let loan ``i``'s bands trade towards their state at oracle price ``x`` (no record).

    The trade executes at ``x x exec_factor`` (:func:`backtest.kernels.bands_nb.
    apply_soft_trade_nb`); the step's aggregates ``acc`` (one chunk's row) gain the units sold
    or bought, the proceeds (also in the loans' cash delta), the loss to arbitrageurs, the sale
    notional (liquidated notional), the impact cost and the net flow's units, and count the
    loan if it is in soft liquidation after the trade (see
    :func:`backtest.kernels.bands_nb.leave_soft_liquidation_nb`).
    """
    u = units[i]
    n_bands = int(band[1])
    q = soft_trade_nb(u, cash[i], x, bands[i], band[0], n_bands)
    if q != 0.0:
        pe = x * exec_factor
        u2, c2, q, proceeds, loss = apply_soft_trade_nb(u, cash[i], q, pe, bands[i],
                                                        band[0], n_bands)
        units[i] = u2
        cash[i] = c2
        if q < 0.0:
            acc[_SOFT_SOLD] -= q
            acc[_NOTIONAL] -= q * pe
        else:
            acc[_SOFT_BOUGHT] += q
        acc[_SOFT_PROCEEDS] += proceeds
        acc[_SOFT_LOSS] += loss
        acc[_CASH_LOAN] += proceeds
        acc[_UNITS_LOAN] += q
        acc[_IMPACT_COST] += q * (pe - x)  # a sale (q < 0) loses below x, a buy-back above
    if leave_soft_liquidation_nb(units[i], cash[i], x, bands[i]) or q != 0.0:
        key[i] = bands_key_nb(units[i], cash[i], bands[i], band[0], n_bands, band[2])
    if bands[i, 2] > 0.0 and units[i] < bands[i, 1]:
        acc[_N_SOFT] += 1.0


@njit
def _budgeted_take_need_nb(i, t, d, candle, accounts, auction, keepers):
    """Return the least execution factor at which loan ``i``'s take of ``d`` units pays.

    ``d`` is the take after the budget and ``chost`` cuts, at step ``t``
    (:func:`backtest.kernels.liquidation_nb._take_need_nb` at the auction price, the step's
    close and the gas the keepers count).
    """
    _, _, _, _, _, _, auction_tic, auction_top, _ = accounts
    price = auction_price_nb(int(auction[0]), auction_top[i], t - auction_tic[i], auction[1],
                             auction[2], auction[3])
    return _take_need_nb(d, price, candle[3], auction[6], keepers[2] if keepers[1] else 0.0)


@njit
def _budget_chunk_nb(ch, chunk_size, budget, dust, scan_all, t, candle, x_long, x_short, lo_key,
                     hi_key, fill_mode, accounts, policy_inputs, keepers, auction, penalty,
                     check_factor, settle_factor):
    """Pass 1b of :func:`run_steps_nb` for chunk ``ch``: what its unit ``budget`` covers.

    The chunk's decided liquidations take the budget in processing order, each at most what
    is left (:func:`backtest.kernels.keepers_nb.budget_take_nb`; none of at most ``dust``);
    an auction take cut short must still leave ``chost`` and pay at ``check_factor``
    (:func:`_chost_take_nb`,
    :func:`_take_after_budget_nb`) and buy more than ``dust``, or it is refused and its share
    stays for the next ones. A budgeted take (cut or whole) that does not pay at
    ``settle_factor`` (the execution factor of the step's budgeted flow; ``inf``: no such
    re-check) is refused too, but keeps its share of the budget: nobody else gets it this step
    (see :func:`run_steps_nb`).
    Hard liquidations in bands and zero-bid deals are outside the budget and always counted
    (``scan_all``: keep scanning a chunk whose budget is spent, for them). Pass 2 applies the
    same rule, so the counts fix the chunk's record slots.

    Returns
    -------
    tuple
        ``(liquidations, net flow at the decision prices in USD, units of budget used, least
        execution factor at which every counted take pays (-inf: no take))``.
    """
    units = accounts[1]
    n = units.shape[0]
    count = 0
    flow = 0.0
    used = 0.0
    need = -np.inf
    for i in range(ch * chunk_size, min(n, (ch + 1) * chunk_size)):
        if used >= budget and not scan_all:
            break
        p, d, _, _, kind = _decide_nb(i, t, candle, x_long, x_short, lo_key, hi_key,
                                      fill_mode, accounts, policy_inputs, keepers)
        if kind == _KIND_BANDS_HARD or kind == _KIND_ZERO_BID:
            count += 1
            flow -= d * p
        elif d > 0.0:
            q = d
            d = budget_take_nb(d, budget, used, dust)
            if d <= 0.0:
                # dust waits while budget is left; exempt deals may follow a spent budget
                if scan_all or budget - used > dust:
                    continue
                break
            if kind == _KIND_TAKE:
                d = _chost_take_nb(i, t, d, accounts, auction, penalty)
                d = _take_after_budget_nb(i, t, d, q, candle, accounts, auction, keepers,
                                          check_factor)
                if d <= dust:  # no partial purchase (nor dust): a later take may fit
                    continue
                take_need = _budgeted_take_need_nb(i, t, d, candle, accounts, auction, keepers)
                if take_need > settle_factor:  # it would not pay at the step's execution
                    used += d
                    continue
                need = max(need, take_need)
            used += d
            count += 1
            flow += -d * p if units[i] > 0.0 else d * p
    return count, flow, used, need


@njit_parallel
def run_steps_nb(t0, t1, tape, account_state, totals, records, book_flow, market_state, step_out,
                 policy, market, trigger_mode, fill_mode, chunk_size):
    """Advance every account from step ``t0`` to at most ``t1`` (exclusive), in place.

    Each step first lists the chunks the candle can reach (from each chunk's largest trigger
    keys); a step that reaches none costs O(chunks) and no parallel dispatch. Otherwise two
    parallel passes run over the reachable chunks. The first decides each liquidation at the
    decision price and counts them and their net flow per chunk, which fixes where each chunk
    writes its records (chunk order, so nothing depends on the thread count) and gives the
    step's total flow, hence its market impact (:mod:`backtest.kernels.impact_nb`). The second
    applies the liquidations at the execution price: the decision price times the step's
    average execution factor. With cascade feedback the step's price move is then fixed in the
    displacement that scales the prices of later steps. The flow that moves the market is the
    step's net flow minus ``impact_baseline`` (counterfactual impact; zeros otherwise).

    Dutch-auction takes are decided by :func:`take_pays_nb` at an expected execution factor
    ``f`` (``StepMetric.TAKE_FACTOR``). With ``auction_keeper_rational`` the first pass uses
    ``f = 1`` (the market); if a decided take would not pay at the execution factor ``E`` of
    that pass's flow, the first pass is repeated at ``f = E``: the takes left sell less, so the
    step's execution factor is at least ``E`` and each of them pays at it. A take cut by a
    volume or capital budget (or ``chost``) must still pay at ``min(f, E)``. A budget can also
    cut buys (perp shorts' closes), so the budgeted flow may sell more on net than the decided
    one and execute below ``E``: if a budgeted take (cut or whole) would not pay at the
    execution factor ``E_b`` of the budgeted flow, every take that does not pay at ``E_b`` is
    refused and its share of the budget stays unused this step (handing it on could move the
    factor again); that only removes sales, so the step executes at ``E_b`` or better and every
    take left pays (a rational keeper does not buy at a loss). Without
    ``auction_keeper_rational``, ``f = 1 -`` the last step's execution slippage (no re-check:
    takes can lose).

    A step's budget (order slicing's share of the traded volume, keepers' capital at the
    close; the smaller) goes to the decided liquidations account by account in processing
    order: each takes at most what is left, and a take the budget cuts short and that then
    no longer pays (or that ``chost`` refuses) takes nothing and leaves its share to the
    accounts after it, in its chunk and in later ones (:func:`_budget_chunk_nb`; a take
    refused at ``E_b`` above keeps its share). Zero-bid
    deals and hard liquidations in bands are outside the budget. The result does not depend
    on the chunk size beyond summation order (``tests/test_zero_bid.py``).

    Parameters
    ----------
    t0, t1 : int
        Step range; steps index the arrays of ``tape`` and the rows of ``step_out``.
    tape : TapeInputs
        Per-step inputs, shape (T,) or (T, k) each (:class:`backtest.kernels.step_inputs.
        TapeInputs`: candles, depth, volume, gas, funding rate, risk inputs, mark prices,
        impact baseline).
    account_state : AccountState
        Per-account state, shape (N,) each (:class:`backtest.kernels.step_inputs.
        AccountState`: product, units, cash, trigger key, keeper flag, auction, bands);
        updated.
    totals : AccountTotals
        Per-account outputs, shape (N,) each (:class:`backtest.kernels.step_inputs.
        AccountTotals`); updated.
    records : RecordBuffers
        Liquidation-record buffer (:class:`backtest.kernels.step_inputs.RecordBuffers`); each
        liquidation appends one row, in chunk order then account order.
    book_flow : KernelFlow
        The moving book (:class:`backtest.kernels.book_flow_nb.KernelFlow`): at the start of
        each step, before funding and liquidations, :func:`book_flow_step_nb` opens the step's
        arrivals, closes its voluntary closes and lets responders cure at the previous step's
        simulated close; the chunks whose accounts it changed get fresh trigger-key bounds.
        Its per-step outputs, ``deposited`` and ``closed_step`` are updated; a step restarted
        after a flush is not moved twice.
    market_state : ndarray, shape (MARKET_STATE_SIZE,), float64
        What the market, oracle, insurance fund and a pending auto-deleveraging carry from one
        step to the next, indexed by :class:`backtest.kernels.enums.MarketState`; updated.
    step_out : ndarray, shape (T, N_STEP_METRICS), float64
        Per-step aggregates (:class:`StepMetric`); rows ``t0..`` are written.
    policy : ndarray, shape (1,), dtype ``POLICY_DTYPE``
        Policy parameters (:mod:`backtest.kernels.enums`).
    market : ndarray, shape (1,), dtype ``MARKET_DTYPE``
        Impact, cascade, oracle and keeper parameters.
    trigger_mode, fill_mode : int
        :class:`TriggerPrice` and :class:`FillPrice` values.
    chunk_size : int
        Accounts per chunk; fixes the summation order (not the thread count).

    Returns
    -------
    int
        The step after the last one simulated: ``t1``, or earlier when the next step's records
        do not fit in the buffer (flush it, or grow it if it is empty, then call again), or
        the step after one that left an auto-deleveraging pending (``MarketState.ADL_STEP``).
    """
    open_, high, low, close = tape.open, tape.high, tape.low, tape.close
    depth, volume, gas_usd, funding_rate = tape.depth, tape.volume, tape.gas_usd, tape.funding_rate
    risk, mark, impact_baseline = tape.risk, tape.mark, tape.impact_baseline
    product, units, cash, key = (account_state.product, account_state.units, account_state.cash,
                                 account_state.key)
    flagged, bands = account_state.flagged, account_state.bands
    auction_tic, auction_top = account_state.auction_tic, account_state.auction_top
    n_liquidations, first_step, last_step = (totals.n_liquidations, totals.first_step,
                                             totals.last_step)
    liquidated_notional, penalties_paid = totals.liquidated_notional, totals.penalties_paid
    bad_debt, funding_paid = totals.bad_debt, totals.funding_paid
    rec_len, rec_i, rec_f = records.length, records.ints, records.floats
    n = units.shape[0]
    n_chunks = (n + chunk_size - 1) // chunk_size
    cap = rec_i.shape[0]
    rec = policy[0]
    keeper_share = rec.keeper_share
    m_rate = rec.maintenance_rate
    p_rate = rec.penalty_rate
    size_rules = np.empty(5)
    size_rules[0] = rec.full_close_below_usd
    size_rules[1] = rec.large_position_usd
    size_rules[2] = rec.large_position_fraction
    size_rules[3] = rec.min_remaining_usd
    size_rules[4] = rec.max_calls_per_step
    m_step = m_rate.copy()  # this step's rates: dynamic margin scales the perps'
    t_step = rec.target_rate.copy()
    preempt = rec.preempt_fraction > 0.0
    accounts = (product, units, cash, key, flagged, last_step, auction_tic, auction_top, bands)
    # Dutch auction parameters as an array (a mixed tuple cannot enter the parallel loops)
    auction = np.empty(10)
    auction[0] = rec.auction_curve
    auction[1] = rec.auction_tau_steps
    auction[2] = rec.auction_cut
    auction[3] = rec.auction_step_steps
    auction[4] = rec.auction_tail_steps
    auction[5] = rec.auction_cusp
    auction[6] = rec.auction_keeper_margin
    auction[7] = rec.auction_chost_usd
    auction[8] = rec.auction_zero_bid_steps
    auction[9] = rec.auction_buf
    auction_buf = rec.auction_buf
    auction_tip = rec.auction_tip_usd
    auction_chip = rec.auction_chip
    loan_penalty = p_rate[_LOAN]
    auctions = rec.family == _AUCTION
    zero_bids = auctions and rec.auction_zero_bid_steps > 0.0  # deals outside any budget
    rational = rec.auction_keeper_rational != 0
    soft = rec.family == _SOFT_BANDS
    # soft-liquidation bands: ratio (A - 1) / A, bands per loan, liquidation_discount
    band = np.empty(3)
    band[0] = rec.band_ratio
    band[1] = rec.band_count
    band[2] = m_rate[_LOAN]
    n_bands = rec.band_count
    soft_flow = np.zeros(n_chunks)
    in_auction = np.zeros(n_chunks, np.int64)  # running auctions per chunk: always visited
    max_volume_fraction = rec.max_step_volume_fraction
    mk = market[0]
    impact_model = mk.impact_model
    cascade = mk.cascade != 0
    oracle_model = mk.oracle_model
    latency = mk.keeper_latency_steps
    requires_profit = mk.keeper_requires_profit != 0
    keeper_capital = mk.keeper_capital_usd
    eff_fill = fill_mode if oracle_model == _ORACLE_MARKET else _FILL_CLOSE
    acc = np.zeros((n_chunks, _N_SUMMED))
    count = np.zeros(n_chunks, np.int64)
    flow = np.zeros(n_chunks)
    gross = np.zeros(n_chunks)
    chunk_budget = np.zeros(n_chunks)
    scanned = np.zeros(n_chunks, np.bool_)  # chunks whose budget pass 1b already ran
    take_need = np.zeros(n_chunks)  # least execution factor at which a chunk's takes pay
    offset = np.zeros(n_chunks, np.int64)
    active = np.empty(n_chunks, np.int64)
    candle = np.empty(4)
    chunk_max = np.empty(n_chunks)
    chunk_max_short = np.empty(n_chunks)
    dirty = np.zeros(n_chunks, np.bool_)  # chunks the book flow changed this step
    dirty_list = np.empty(n_chunks, np.int64)
    for ch in prange(n_chunks):
        chunk_max[ch], chunk_max_short[ch] = _chunk_bounds_nb(key, ch, chunk_size)
        if auctions:
            for i in range(ch * chunk_size, min(n, (ch + 1) * chunk_size)):
                if auction_tic[i] >= 0:
                    in_auction[ch] += 1
    for t in range(t0, t1):
        if book_flow.applied[0] < t:  # the book moves: arrivals open, traders close, cures
            book_flow.applied[0] = t
            seen = close[t - 1] * step_out[t - 1, _PRICE_FACTOR] if t > 0 else open_[0]
            factor = displacement_factor_nb(market_state) if cascade else 1.0
            n_touched = book_flow_step_nb(t, seen, factor, book_flow, product, units, cash, key,
                                          m_rate)
            n_dirty = 0
            for j in range(n_touched):
                ch = book_flow.touched[j] // chunk_size
                if not dirty[ch]:
                    dirty[ch] = True
                    dirty_list[n_dirty] = ch
                    n_dirty += 1
            if n_dirty * chunk_size <= _SERIAL_BOUNDS:  # few: no parallel dispatch
                for a in range(n_dirty):
                    ch = dirty_list[a]
                    chunk_max[ch], chunk_max_short[ch] = _chunk_bounds_nb(key, ch, chunk_size)
                    dirty[ch] = False
            else:
                for a in prange(n_dirty):
                    ch = dirty_list[a]
                    chunk_max[ch], chunk_max_short[ch] = _chunk_bounds_nb(key, ch, chunk_size)
                    dirty[ch] = False
        # past price moves displace this step's prices (cascade feedback); read at this step's
        # depth, the displacement is an outstanding flow that this step's flow moves further
        outstanding = 0.0
        if cascade:
            market_state[MarketState.PRICE_FACTOR] = displacement_factor_nb(market_state)
            outstanding = equivalent_flow_nb(impact_model, market_state[MarketState.PRICE_FACTOR],
                                             depth[t])
        f = market_state[MarketState.PRICE_FACTOR]
        candle[0] = open_[t] * f
        candle[1] = high[t] * f
        candle[2] = low[t] * f
        candle[3] = close[t] * f
        rate = funding_rate[t]
        # a funding settlement (not NaN, not zero), once even if the step is restarted after a
        # record-buffer flush
        if rate == rate and rate != 0.0 and market_state[MarketState.FUNDING_STEP] < t:
            market_state[MarketState.FUNDING_STEP] = t
            for ch in prange(n_chunks):
                total = 0.0
                for i in range(ch * chunk_size, min(n, (ch + 1) * chunk_size)):
                    if product[i] == _PERP and units[i] != 0.0:
                        pay = units[i] * candle[0] * rate
                        cash[i] -= pay
                        funding_paid[i] += pay
                        key[i] = trigger_key_nb(units[i], cash[i], m_rate[_PERP])
                        total += pay
                flow[ch] = total
                chunk_max[ch], chunk_max_short[ch] = _chunk_bounds_nb(key, ch, chunk_size)
            paid = 0.0
            for ch in range(n_chunks):
                paid += flow[ch]
            step_out[t, _FUNDING] = paid
        if oracle_model == _ORACLE_MARK:
            if trigger_mode == _EXTREME:
                x_long = mark[t, 0] * f
                x_short = mark[t, 1] * f
            else:
                x_long = mark[t, 2] * f
                x_short = x_long
        elif oracle_model != _ORACLE_MARKET:
            x_long = oracle_price_nb(oracle_model, t, open_, close, step_out, market_state,
                                     mk.oracle_lag_steps, mk.oracle_twap_steps,
                                     mk.oracle_deviation, mk.oracle_heartbeat_steps)
            x_short = x_long
        elif trigger_mode == _EXTREME:
            x_long = candle[2]
            x_short = candle[1]
        else:
            x_long = candle[3]
            x_short = candle[3]
        # the execution factor auction keepers price takes at: the last step's slippage, or
        # (rational keepers) first the market itself, then the step's own flow (below)
        slippage = market_state[MarketState.SLIPPAGE]
        take_factor = 1.0 if rational else 1.0 - slippage
        keepers = (latency, requires_profit, gas_usd[t], slippage, take_factor)
        scale = risk[t, 0]
        shift = risk[t, 1] if preempt else 0.0
        m_step[_PERP] = m_rate[_PERP] * scale
        t_step[_PERP] = rec.target_rate[_PERP] * scale
        policy_inputs = (rec.family, m_step, t_step, p_rate, rec.close_factor,
                         rec.full_close_health, keeper_share, rec.tier_health,
                         rec.tier_fraction, rec.cooldown_steps, size_rules, m_rate,
                         rec.penalty_model, rec.penalty_cap, rec.seize_all_collateral,
                         rec.preempt_fraction, rec.preempt_penalty, shift, auction, band)
        # keys are liquidation prices at the base rates: a long at this step's perp rate
        # triggers at key x (1 - m) / (1 - m_step), a short at -key x (1 + m_step) / (1 + m);
        # the predictive overlay looks a further shift away
        widen = np.exp(shift)
        lo_key = x_long * min(1.0, (1.0 - m_step[_PERP]) / (1.0 - m_rate[_PERP])) / widen * (
            1.0 - KEY_SLACK)
        hi_key = x_short * max(1.0, (1.0 + m_step[_PERP]) / (1.0 + m_rate[_PERP])) * widen * (
            1.0 + KEY_SLACK)
        step_out[t, _MARGIN_SCALE] = scale
        step_out[t, _PRICE_FACTOR] = f
        step_out[t, _EXEC_FACTOR] = 1.0
        step_out[t, _ORACLE] = x_long
        # the chunks the candle can reach: some long key >= lo_key or short key in [-hi_key, 0)
        n_active = 0
        for ch in range(n_chunks):
            if chunk_max[ch] >= lo_key or chunk_max_short[ch] >= -hi_key or in_auction[ch] > 0:
                active[n_active] = ch
                n_active += 1
        total_flow = 0.0
        total_units = 0.0
        slice_factor = 1.0
        dust = 0.0
        check_factor = take_factor  # what a take cut by a budget must still pay at
        settle_factor = np.inf  # what every budgeted take must pay at (inf: no re-check)
        if n_active > 0:
            # pass 1: decide, count and sum the flow of each reachable chunk. Rational auction
            # keepers: every take that pays at the market is offered; if one would not pay at
            # the execution factor of that flow, the takes are decided again at that factor.
            # Fewer takes sell less, so the step's execution factor can only rise: every take
            # left pays at it (one repeat is enough).
            for attempt in range(2):
                total_flow = 0.0
                total_units = 0.0
                for a in prange(n_active):
                    ch = active[a]
                    count[ch] = 0
                    flow[ch] = 0.0
                    gross[ch] = 0.0
                    soft_flow[ch] = 0.0
                    take_need[ch] = -np.inf
                    for i in range(ch * chunk_size, min(n, (ch + 1) * chunk_size)):
                        p, d, _, _, kind = _decide_nb(i, t, candle, x_long, x_short, lo_key,
                                                      hi_key, eff_fill, accounts,
                                                      policy_inputs, keepers)
                        if kind == _KIND_BANDS_HARD or kind == _KIND_ZERO_BID:  # no budget
                            count[ch] += 1
                            flow[ch] -= d * p
                        elif d > 0.0:
                            count[ch] += 1
                            # closing a long sells (negative flow), closing a short buys
                            flow[ch] += -d * p if units[i] > 0.0 else d * p
                            gross[ch] += d
                            if kind == _KIND_TAKE:
                                price = auction_price_nb(int(auction[0]), auction_top[i],
                                                         t - auction_tic[i], auction[1],
                                                         auction[2], auction[3])
                                take_need[ch] = max(take_need[ch], _take_need_nb(
                                    d, price, p, auction[6],
                                    gas_usd[t] if requires_profit else 0.0))
                        elif soft and product[i] == _LOAN:  # the bands trade with arbitrageurs
                            soft_flow[ch] += x_long * soft_trade_nb(units[i], cash[i], x_long,
                                                                    bands[i], band[0], n_bands)
                need = -np.inf
                for a in range(n_active):
                    ch = active[a]
                    total_flow += flow[ch] + soft_flow[ch]
                    total_units += gross[ch]
                    need = max(need, take_need[ch])
                if not (auctions and rational):
                    break
                expected = execution_factor_nb(impact_model, total_flow - impact_baseline[t],
                                               depth[t], outstanding)
                check_factor = min(take_factor, expected)
                if need <= expected or attempt == 1:
                    break
                take_factor = expected
                keepers = (latency, requires_profit, gas_usd[t], slippage, take_factor)
            # order slicing (at most max_volume_fraction of the step's traded volume) and keeper
            # capital (at most keeper_capital USD at the close) budget the units liquidated; the
            # budget goes to decided liquidations in processing order (account by account, one
            # cut short taking what is left) and the rest waits for later steps
            budget = np.inf
            if max_volume_fraction > 0.0:
                budget = max_volume_fraction * volume[t]
            if keeper_capital > 0.0:  # capital-constrained keepers absorb at most this per step
                budget = min(budget, capital_budget_units_nb(keeper_capital, candle[3]))
            if total_units > budget:
                dust = budget_dust_nb(budget)  # smaller remainders are rounding, not volume
                slice_factor = budget / total_units
                # in chunk order: a chunk whose decisions fit takes them all (inf); a chunk they
                # do not fit gets what is left and is scanned here, so that what its refused
                # takes (cut short, they no longer pay, or chost) and skipped dust leave goes
                # on to the next chunks, as in the account-by-account rule: nothing depends on
                # the chunk size
                for a in range(n_active):
                    ch = active[a]
                    scanned[ch] = False
                    if gross[ch] <= budget:
                        chunk_budget[ch] = np.inf
                        budget = max(budget - gross[ch], 0.0)
                    else:
                        chunk_budget[ch] = budget
                        if budget > 0.0:
                            count[ch], flow[ch], spent, take_need[ch] = _budget_chunk_nb(
                                ch, chunk_size, budget, dust, soft or zero_bids, t, candle,
                                x_long, x_short, lo_key, hi_key, eff_fill, accounts,
                                policy_inputs, keepers, auction, loan_penalty, check_factor,
                                settle_factor)
                            scanned[ch] = True
                            budget = max(budget - spent, 0.0)
                    if budget <= dust:
                        budget = 0.0
                # pass 1b: what each chunk's budget covers. Rational keepers: the budget can
                # cut buys (short closes) as well as sells, so the budgeted flow may execute
                # below the factor the takes were decided at; if a budgeted take would not pay
                # at the budgeted flow's execution factor, every such take is refused (its
                # budget share left unused: the allocation, hence everyone else's cut, stays),
                # which only removes sales, so the factor can only rise and every take left pays
                for attempt in range(2):
                    total_flow = 0.0
                    for a in prange(n_active):
                        ch = active[a]
                        if not scanned[ch] or attempt == 1:
                            count[ch], flow[ch], _, take_need[ch] = _budget_chunk_nb(
                                ch, chunk_size, chunk_budget[ch], dust, soft or zero_bids, t,
                                candle, x_long, x_short, lo_key, hi_key, eff_fill, accounts,
                                policy_inputs, keepers, auction, loan_penalty, check_factor,
                                settle_factor)
                    need = -np.inf
                    for a in range(n_active):
                        total_flow += flow[active[a]] + soft_flow[active[a]]
                        need = max(need, take_need[active[a]])
                    if not (auctions and rational) or attempt == 1:
                        break
                    realised = execution_factor_nb(impact_model, total_flow - impact_baseline[t],
                                                   depth[t], outstanding)
                    if need <= realised:
                        break
                    settle_factor = realised
            else:
                for a in range(n_active):
                    chunk_budget[active[a]] = np.inf
            total = rec_len[0]
            for a in range(n_active):
                ch = active[a]
                offset[ch] = total
                total += count[ch]
            if total > cap:
                return t
            rec_len[0] = total
        step_out[t, _SLICE] = slice_factor
        if auctions:
            step_out[t, _TAKE_FACTOR] = take_factor
        # accounts can be liquidatable yet wait: keepers late or unpaid, volume exhausted, or a
        # cooldown since the last slice
        waiting_possible = (latency > 0 or requires_profit or slice_factor < 1.0
                            or rec.cooldown_steps > 0 or auctions or soft)
        impact_flow = total_flow - impact_baseline[t]  # what history does not already carry
        exec_factor = execution_factor_nb(impact_model, impact_flow, depth[t], outstanding)
        step_out[t, _EXEC_FACTOR] = exec_factor
        step_out[t, _NET_FLOW] = total_flow
        # pass 2: apply them at the execution price; flag accounts left for later keepers
        for a in prange(n_active):
            ch = active[a]
            if count[ch] == 0 and not waiting_possible:
                continue
            for k in range(_N_SUMMED):
                acc[ch, k] = 0.0
            j = offset[ch]
            used = 0.0
            for i in range(ch * chunk_size, min(n, (ch + 1) * chunk_size)):
                # a chunk with no volume budget left only counts who waits
                p, d, liquidatable, pen, kind = _decide_nb(i, t, candle, x_long, x_short,
                                                           lo_key, hi_key, eff_fill, accounts,
                                                           policy_inputs, keepers,
                                                           chunk_budget[ch] > 0.0)
                bands_hard = kind == _KIND_BANDS_HARD
                zero_bid = kind == _KIND_ZERO_BID
                exempt = bands_hard or zero_bid  # outside any volume or capital budget
                if d > 0.0 and not exempt:
                    q = d
                    d = budget_take_nb(d, chunk_budget[ch], used, dust)
                    if kind == _KIND_TAKE and d > 0.0:
                        d = _chost_take_nb(i, t, d, accounts, auction, loan_penalty)
                        d = _take_after_budget_nb(i, t, d, q, candle, accounts, auction,
                                                  keepers, check_factor)
                        if d <= dust:  # a chost cut to dust is no purchase
                            d = 0.0
                    used += d
                    if kind == _KIND_TAKE and d > 0.0 and _budgeted_take_need_nb(
                            i, t, d, candle, accounts, auction, keepers) > settle_factor:
                        d = 0.0  # refused after the budget: its share stays unused (pass 1b)
                if d <= 0.0 and not exempt:
                    if soft and product[i] == _LOAN:
                        _soft_step_nb(i, x_long, exec_factor, units, cash, key, bands, band,
                                      acc[ch])
                    if liquidatable:
                        if kind == _KIND_KICK:  # start or restart the Dutch auction
                            tab = -cash[i] / (1.0 - loan_penalty)
                            # kick pays the keeper's incentive; redo only if neither the tab
                            # nor the lot at the feed price is below chost (clip.sol redo)
                            if auction_tic[i] < 0 or (tab >= auction[7]
                                                      and units[i] * p >= auction[7]):
                                acc[ch, _AUCTION_INCENTIVES] += auction_tip + auction_chip * tab
                            if auction_tic[i] < 0:
                                in_auction[ch] += 1
                            auction_tic[i] = t
                            auction_top[i] = p * auction_buf
                            acc[ch, _AUCTIONS_KICKED] += 1.0
                        if flagged[i] < 0:
                            flagged[i] = t
                        x = x_long if units[i] > 0.0 else x_short
                        acc[ch, _N_WAITING] += 1.0
                        acc[ch, _WAITING_EQUITY] += min(cash[i] + units[i] * x, 0.0)
                    continue
                flagged[i] = -1
                u = units[i]
                c = cash[i]
                prod = product[i]
                pe = p * exec_factor
                if bands_hard:
                    h = bands_health_nb(u, c, x_long, bands[i], band[0], n_bands, band[2])
                else:
                    h = health_nb(prod, u, c, p, m_step[prod])
                if bands_hard:
                    u2, c2, keeper, ins, bad = apply_bands_liquidation_nb(u, c, pe, keeper_share)
                    bands[i, 2] = 0.0  # the debt is repaid: the loan leaves its bands
                    signed = u
                    clears = False
                elif kind == _KIND_TAKE or zero_bid:
                    price = 0.0 if zero_bid else auction_price_nb(
                        int(auction[0]), auction_top[i], t - auction_tic[i], auction[1],
                        auction[2], auction[3])
                    u2, c2, keeper, ins, bad, clears = apply_auction_take_nb(u, c, d, pe, price,
                                                                             pen)
                    signed = d
                    if u2 == 0.0 or clears:  # the auction is over
                        auction_tic[i] = -1
                        in_auction[ch] -= 1
                else:
                    clears = clears_debt_nb(prod, u, c, d, pe, pen)
                    u2, c2, signed, keeper, ins, bad = apply_liquidation_nb(
                        u, c, d, pe, pen, keeper_share, clears
                    )
                units[i] = u2
                cash[i] = c2
                key[i] = trigger_key_nb(u2, c2, m_rate[prod])  # 0 after a hard liquidation
                notional = d * pe
                n_liquidations[i] += 1
                if first_step[i] < 0:
                    first_step[i] = t
                last_step[i] = t
                liquidated_notional[i] += notional
                penalties_paid[i] += keeper + ins
                bad_debt[i] += bad
                closed = u2 == 0.0 or clears
                acc[ch, _N_LIQ] += 1.0
                if closed:
                    acc[ch, _N_CLOSED] += 1.0
                if bad > 0.0:
                    acc[ch, _N_BANKRUPT] += 1.0
                acc[ch, _NOTIONAL] += notional
                if kind == _KIND_PREEMPTIVE:
                    acc[ch, _N_PREEMPTIVE] += 1.0
                    acc[ch, _PREEMPTIVE_NOTIONAL] += notional
                acc[ch, _KEEPER] += keeper
                acc[ch, _INSURANCE] += ins
                acc[ch, _BAD_DEBT] += bad
                if bad > 0.0 and prod != _LOAN:
                    if u > 0.0:
                        acc[ch, _BAD_LONG] += bad
                        acc[ch, _BANKRUPT_UNITS_LONG] += d
                    else:
                        acc[ch, _BAD_SHORT] += bad
                        acc[ch, _BANKRUPT_UNITS_SHORT] += d
                acc[ch, _IMPACT_COST] += d * (p - pe) if u > 0.0 else d * (pe - p)  # signed
                if prod == _LOAN:
                    acc[ch, _CASH_LOAN] += c2 - c
                    acc[ch, _UNITS_LOAN] -= signed
                else:
                    acc[ch, _CASH_PERP] += c2 - c
                    if u > 0.0:
                        acc[ch, _UNITS_LONG] -= signed
                    else:
                        acc[ch, _UNITS_SHORT] -= signed
                rec_i[j, 0] = t
                rec_i[j, 1] = i
                rec_i[j, 2] = 1 if closed else 0
                rec_i[j, 3] = 1 if kind == _KIND_PREEMPTIVE else 0
                rec_i[j, 4] = 1 if kind == _KIND_TAKE or zero_bid else 0
                rec_i[j, 5] = 1 if zero_bid else 0
                rec_f[j, 0] = signed
                rec_f[j, 1] = pe
                rec_f[j, 2] = keeper
                rec_f[j, 3] = ins
                rec_f[j, 4] = bad
                rec_f[j, 5] = h
                rec_f[j, 6] = c2 + u2 * pe
                rec_f[j, 7] = p
                j += 1
            if count[ch] > 0 or soft:
                chunk_max[ch], chunk_max_short[ch] = _chunk_bounds_nb(key, ch, chunk_size)
        for a in range(n_active):
            ch = active[a]
            if count[ch] > 0 or waiting_possible:
                for k in range(_N_SUMMED):
                    step_out[t, k] += acc[ch, k]
        market_state[MarketState.SLIPPAGE] = abs(1.0 - exec_factor)
        if cascade:
            displacement_update_nb(market_state, impact_model, impact_flow, depth[t],
                                   mk.permanent_fraction, mk.transient_decay)
        if settle_step_nb(t, step_out, market_state, rec.waterfall, open_.shape[0] - 1):
            return t + 1  # auto-deleveraging pending: the dispatcher runs it, then calls again
    return t1
