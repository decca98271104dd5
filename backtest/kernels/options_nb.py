"""numba kernels of the options engine: Black-76 marks, scenario margin, liquidation, settlement.

Model (``docs/options.md``):

- An **instrument** is a European call or put on one underlying (index ``inst_und``), with a
  strike (USD) and an expiry (epoch ms). Every instrument of an underlying is marked with
  Black-76 at the underlying's price and the step's implied volatility (one volatility per
  underlying and step: a flat smile), discounted at ``rate``; the underlying price stands for
  the forward (zero basis).
- An **account** holds a USD ``cash`` balance and signed ``quantity`` (underlying units, < 0
  short) of some instruments of one underlying: its legs, ``leg_start[a]:leg_start[a + 1]``.
  ``equity = cash + sum(quantity x mark)``.
- **Maintenance margin** (portfolio-margin style, after Deribit's and Dederi's portfolio margin
  and CME SPAN's risk arrays): the worst loss of the legs over a grid of instantaneous price
  shocks ``F x (1 + p)`` and relative volatility shocks ``sigma x (1 + v x (30 /
  days)^power)`` (bounded below by ``-vol_shock_max_down``, shorter expiries shocked more),
  never below 0, plus a contingency of ``contingency_rate x F`` per unit of short options.
- **Liquidation** (trigger ``EXTREME``, like the perp kernel's intra-candle default): an
  account is valued at the candle's low and at its high; it is liquidatable where equity <
  maintenance margin, and is liquidated at the point where equity minus margin is lowest (the
  adverse extreme: for a short-gamma account equity is concave in the price, so its low over
  the candle lies at one of the two extremes). With ``CLOSE`` only the close is tested. A
  liquidation closes every leg: shorts bought back and longs sold at the mark plus a spread
  (:class:`SpreadMode`); a penalty ``penalty_rate x sum(|quantity|) x F`` goes to the keeper
  (``keeper_share``, always paid) and the insurance fund (out of what equity remains); a
  shortfall is bad debt, drawn from the insurance fund, the rest socialised. These settlement
  rules, and the fund's step, are the layer every kernel shares
  (:mod:`backtest.kernels.settlement_nb`, ``docs/settlement.md``).
- **Settlement**: at the end of the step whose close time reaches an instrument's expiry, its
  open legs settle in cash at intrinsic value at the close; an account left without legs and
  with negative cash is written off as bad debt.

Per step, the instruments are marked once (risk arrays: mark, every scenario value, closing
prices and Greeks at each price point), in parallel over instruments; accounts then only sum
``quantity x`` those numbers, in parallel over fixed chunks whose accumulators are summed in
chunk order, so results are bit-identical whatever the thread count. Each account is
liquidated at most once, so its record has a fixed slot (its own row).

Why over 400 lines: it is one numba kernel family (marks, scenario margin, liquidation and
expiry of options accounts) with the helpers it inlines; numba caches compiled code per file,
so helpers live beside the loop. The settlement it shares with the other kernels (penalty
split, write-off, the insurance fund's step) is in :mod:`backtest.kernels.settlement_nb`.
"""

from __future__ import annotations

import math

import numpy as np

from backtest._jit import njit, njit_parallel, prange
from backtest.kernels.black76_nb import black76_greeks_nb, black76_value_ln_nb
from backtest.kernels.enums import TriggerPrice
from backtest.kernels.options_enums import (
    N_SUMMED_OPTIONS_METRICS,
    OptionsStepMetric,
    PricePoint,
    SpreadMode,
)
from backtest.kernels.settlement_nb import socialise_step_nb, split_penalty_nb, write_off_nb

MS_PER_YEAR = 365.0 * 86400.0 * 1000.0
"""Milliseconds in a year: option time is calendar time, 365 days a year (as Deribit)."""

#: Fewest Black-76 revaluations per step worth a parallel dispatch of the instrument pass.
PARALLEL_FILL_MIN = 50_000

_EXTREME = int(TriggerPrice.EXTREME)
_VOL_POINTS = int(SpreadMode.VOL_POINTS)
_LOW = int(PricePoint.LOW)
_HIGH = int(PricePoint.HIGH)
_CLOSE = int(PricePoint.CLOSE)
_N_SUMMED = N_SUMMED_OPTIONS_METRICS
_M = OptionsStepMetric
_N_LIQ = int(_M.N_LIQUIDATIONS)
_N_BANKRUPT = int(_M.N_BANKRUPT)
_NOTIONAL = int(_M.LIQUIDATED_NOTIONAL)
_MARK = int(_M.LIQUIDATED_MARK)
_SPREAD = int(_M.SPREAD_PAID)
_KEEPER = int(_M.KEEPER_FEES)
_INSURANCE = int(_M.INSURANCE_FEES)
_BAD = int(_M.BAD_DEBT)
_CASH_LIQ = int(_M.CASH_DELTA_LIQUIDATION)
_SETTLE = int(_M.SETTLEMENT_CASH)
_N_SETTLED = int(_M.N_SETTLED_LEGS)
_N_OPEN = int(_M.N_OPEN)
_EQUITY = int(_M.EQUITY)
_VALUE = int(_M.OPTION_VALUE)
_MARGIN = int(_M.MAINTENANCE_MARGIN)
_DELTA = int(_M.DELTA_USD)
_GAMMA = int(_M.GAMMA_USD)
_VEGA = int(_M.VEGA_USD)
_N_BREACHED = int(_M.N_BREACHED_CLOSE)
_INS_DRAW = int(_M.INSURANCE_DRAW)
_INS_FUND = int(_M.INSURANCE_FUND)
_SOCIALISED = int(_M.SOCIALISED_LOSS)


@njit
def vol_shock_nb(factor, tau, power, min_days, max_down):
    """Return the relative volatility shock of one grid row for an option ``tau`` years out.

    ``factor x (30 / max(days, min_days))^power``, at least ``-max_down``: a shock quoted for
    a 30-day option, larger for shorter expiries (Deribit portfolio margin: maximum implied
    volatility change ``(30 / days to expiration)^0.30 x 38%``).

    Parameters
    ----------
    factor : float
        Relative vol shock of the grid row for a 30-day option, fraction.
    tau : float
        Time to expiry, years.
    power : float
        Exponent of the expiry scaling (Deribit: 0.30).
    min_days : float
        Shortest expiry the scaling uses, days (caps the shock of near-expiry options).
    max_down : float
        Largest downward shock, fraction in [0, 1).

    Returns
    -------
    float
        Relative volatility shock, fraction (>= ``-max_down``).
    """
    days = max(tau * 365.0, min_days)
    return max(factor * (30.0 / days) ** power, -max_down)


@njit
def fill_instrument_nb(i, x, is_call, k, tau, f, sigma, price_shocks, ln1p, vol_factors, params,
                       val, scen, buy, sell, grk):
    """Mark instrument ``i`` at price point ``x``: its risk array and closing prices.

    Writes ``val[i, x]`` (mark), ``scen[i, x, s]`` for every scenario ``s = p x n_vol + v``
    (price shock ``p``, vol shock ``v``) and, after the ``S`` scenarios, their minimum
    ``scen[i, x, S]`` and maximum ``scen[i, x, S + 1]``, ``buy[i, x]`` / ``sell[i, x]``
    (prices a liquidation buys back a short at / sells a long at) and ``grk[i, x, :]``
    (delta, gamma, vega), all per unit of underlying. ``f`` (USD) and ``sigma`` (fraction)
    are the point's forward and volatility; ``ln1p[p] = ln(1 + price_shocks[p])``;
    ``params`` the (1,) parameter array.

    Parameters
    ----------
    i : int
        Instrument index.
    x : int
        Price point (column of ``val``).
    is_call : bool
        Call (True) or put (False).
    k : float
        Strike, USD.
    tau : float
        Time to expiry, years.
    f : float
        Forward (underlying price) of the point, USD.
    sigma : float
        Volatility of the point, fraction.
    ln1p : ndarray, shape (S_p,), float64
        ``ln(1 + price_shocks)``.
    price_shocks : ndarray, shape (S_p,), float64
        Relative price shocks of the margin grid (> -1).
    vol_factors : ndarray, shape (S_v,), float64
        Relative vol shocks of the margin grid, for a 30-day option.
    params : ndarray, shape (1,), dtype ``OPTIONS_PARAMS_DTYPE``
        Margin and liquidation parameters.
    val, buy, sell : ndarray, shape (I, P), float64
        Marks and closing prices, USD per unit of underlying; written.
    scen : ndarray, shape (I, P, S_p x S_v + 2), float64
        Scenario values, then their minimum and maximum, USD per unit; written.
    grk : ndarray, shape (I, P, 3), float64
        Delta, gamma, vega per unit of underlying; written.
    """
    prm = params[0]
    r = prm.rate
    floor = prm.vol_floor
    sigma = max(sigma, floor)
    t = max(tau, 0.0)
    df = math.exp(-r * t)
    sqt = math.sqrt(t)
    lfk = math.log(f / k)
    v0 = black76_value_ln_nb(is_call, f, k, lfk, sigma * sqt, df)
    val[i, x] = v0
    n_vol = vol_factors.shape[0]
    for v in range(n_vol):
        shock = vol_shock_nb(vol_factors[v], t, prm.vol_shock_power, prm.vol_shock_min_days,
                             prm.vol_shock_max_down)
        sd = max(sigma * (1.0 + shock), floor) * sqt
        for p in range(price_shocks.shape[0]):
            fp = f * (1.0 + price_shocks[p])
            scen[i, x, p * n_vol + v] = black76_value_ln_nb(is_call, fp, k, lfk + ln1p[p], sd,
                                                            df)
    n_s = n_vol * price_shocks.shape[0]
    lo = scen[i, x, 0]
    hi = lo
    for s in range(1, n_s):
        lo = min(lo, scen[i, x, s])
        hi = max(hi, scen[i, x, s])
    scen[i, x, n_s] = lo
    scen[i, x, n_s + 1] = hi
    if prm.spread_mode == _VOL_POINTS:
        buy[i, x] = black76_value_ln_nb(is_call, f, k, lfk, (sigma + prm.spread) * sqt, df)
        sell[i, x] = black76_value_ln_nb(is_call, f, k, lfk,
                                         max(sigma - prm.spread, floor) * sqt, df)
    else:
        buy[i, x] = v0 * (1.0 + prm.spread)
        sell[i, x] = v0 * max(1.0 - prm.spread, 0.0)
    _, d, g, vg, _ = black76_greeks_nb(is_call, f, k, tau, sigma, r)
    grk[i, x, 0] = d
    grk[i, x, 1] = g
    grk[i, x, 2] = vg


@njit_parallel
def fill_instruments_nb(active, inst_und, inst_call, inst_strike, tau, fpts, sig, price_shocks,
                        vol_factors, params, points, val, scen, buy, sell, grk):
    """Mark every active instrument at the price points ``points``, in parallel.

    Parameters
    ----------
    active : ndarray, shape (I,), int8
        Instruments to mark (1) or skip (0).
    inst_und, inst_call : ndarray, shape (I,), int64 / int8
        Underlying index and call (1) / put (0).
    inst_strike, tau : ndarray, shape (I,), float64
        Strike (USD) and time to expiry (years).
    fpts, sig : ndarray, shape (U, P), float64
        Underlying price (USD) and volatility (fraction) at each price point.
    price_shocks : ndarray, shape (S_p,), float64
        Relative price shocks of the margin grid (> -1).
    vol_factors : ndarray, shape (S_v,), float64
        Relative vol shocks of the margin grid, for a 30-day option.
    params : ndarray, shape (1,), dtype ``OPTIONS_PARAMS_DTYPE``
    points : ndarray, shape (n,), int64
        Which columns of ``fpts`` to mark.
    val, buy, sell : ndarray, shape (I, P), float64
    scen : ndarray, shape (I, P, S_p x S_v + 2), float64
    grk : ndarray, shape (I, P, 3), float64
        Outputs (see :func:`fill_instrument_nb`).
    """
    ln1p = np.log1p(price_shocks)
    for i in prange(inst_und.shape[0]):
        _fill_one_nb(i, active, inst_und, inst_call, inst_strike, tau, fpts, sig, price_shocks,
                     ln1p, vol_factors, params, points, val, scen, buy, sell, grk)


@njit
def fill_instruments_serial_nb(active, inst_und, inst_call, inst_strike, tau, fpts, sig,
                               price_shocks, vol_factors, params, points, val, scen, buy, sell,
                               grk):
    """Mark every active instrument like :func:`fill_instruments_nb`, serially (small books).

    Parameters
    ----------
    active : ndarray, shape (I,), int8
        Instruments to mark (1) or skip (0).
    inst_und, inst_call : ndarray, shape (I,), int64 / int8
        Underlying index and call (1) / put (0).
    inst_strike, tau : ndarray, shape (I,), float64
        Strike (USD) and time to expiry (years).
    fpts, sig : ndarray, shape (U, P), float64
        Underlying price (USD) and volatility (fraction) at each price point.
    price_shocks : ndarray, shape (S_p,), float64
        Relative price shocks of the margin grid (> -1).
    vol_factors : ndarray, shape (S_v,), float64
        Relative vol shocks of the margin grid, for a 30-day option.
    params : ndarray, shape (1,), dtype ``OPTIONS_PARAMS_DTYPE``
        Margin and liquidation parameters.
    points : ndarray, shape (n,), int64
        Which columns of ``fpts`` to mark.
    val, buy, sell : ndarray, shape (I, P), float64
        Marks and closing prices, USD per unit of underlying; written.
    scen : ndarray, shape (I, P, S_p x S_v + 2), float64
        Scenario values, then their minimum and maximum, USD per unit; written.
    grk : ndarray, shape (I, P, 3), float64
        Delta, gamma, vega per unit of underlying; written.
    """
    ln1p = np.log1p(price_shocks)
    for i in range(inst_und.shape[0]):
        _fill_one_nb(i, active, inst_und, inst_call, inst_strike, tau, fpts, sig, price_shocks,
                     ln1p, vol_factors, params, points, val, scen, buy, sell, grk)


@njit
def _fill_one_nb(i, active, inst_und, inst_call, inst_strike, tau, fpts, sig, price_shocks, ln1p,
                 vol_factors, params, points, val, scen, buy, sell, grk):
    if active[i] == 0:
        return
    u = inst_und[i]
    for j in range(points.shape[0]):
        x = points[j]
        fill_instrument_nb(i, x, inst_call[i] != 0, inst_strike[i], tau[i], fpts[u, x],
                           sig[u, x], price_shocks, ln1p, vol_factors, params, val, scen, buy,
                           sell, grk)


@njit
def account_point_nb(a, x, leg_start, leg_inst, leg_qty, cash, inst_und, fpts, val, scen,
                     contingency_rate, loss):
    """Return ``(equity, maintenance margin, has legs)`` of account ``a`` at price point ``x``.

    ``equity = cash + sum(q x mark)``; margin ``= max(0, max_s sum(q x (mark - scenario_s)))
    + contingency_rate x F x sum(short quantity)``. ``scen`` holds the S scenario values then
    their minimum and maximum (:func:`fill_instrument_nb`); ``loss`` is scratch, shape (S,).
    An account with one open leg takes its worst scenario from that minimum or maximum.

    Parameters
    ----------
    a : int
        Account index.
    x : int
        Price point (column of ``fpts``).
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
        Underlying price at each price point, USD.
    val : ndarray, shape (I, P), float64
        Marks, USD per unit of underlying.
    scen : ndarray, shape (I, P, S + 2), float64
        Scenario values then their minimum and maximum, USD per unit.
    contingency_rate : float
        Contingency margin per unit of short quantity, fraction of the underlying price.
    loss : ndarray, shape (S,), float64
        Scratch space; overwritten.

    Returns
    -------
    tuple
        ``(equity, margin, has_legs)``: equity and maintenance margin (float, USD) and whether
        the account holds an open leg (bool).
    """
    n_s = loss.shape[0]
    n_open = 0
    last = -1
    for j in range(leg_start[a], leg_start[a + 1]):
        if leg_qty[j] != 0.0:
            n_open += 1
            last = j
    if n_open == 0:
        return cash[a], 0.0, False
    if n_open == 1:
        q = leg_qty[last]
        i = leg_inst[last]
        v = val[i, x]
        if q < 0.0:
            worst = max(0.0, q * (v - scen[i, x, n_s + 1]))
            return cash[a] + q * v, worst - contingency_rate * q * fpts[inst_und[i], x], True
        return cash[a] + q * v, max(0.0, q * (v - scen[i, x, n_s])), True
    for s in range(n_s):
        loss[s] = 0.0
    e = cash[a]
    short = 0.0
    und = -1
    for j in range(leg_start[a], leg_start[a + 1]):
        q = leg_qty[j]
        if q == 0.0:
            continue
        i = leg_inst[j]
        und = inst_und[i]
        v = val[i, x]
        e += q * v
        if q < 0.0:
            short -= q
        for s in range(n_s):
            loss[s] += q * (v - scen[i, x, s])
    if und < 0:
        return e, 0.0, False
    worst = 0.0
    for s in range(n_s):
        worst = max(worst, loss[s])
    return e, worst + contingency_rate * short * fpts[und, x], True


@njit
def account_greeks_nb(a, x, leg_start, leg_inst, leg_qty, inst_und, fpts, grk):
    """Return ``(delta_usd, gamma_usd, vega_usd)`` of account ``a`` at price point ``x``.

    ``delta_usd = sum(q x delta x F)`` (USD per 100% move, i.e. the USD exposure),
    ``gamma_usd = sum(q x gamma x F^2) / 100`` (change of delta_usd per 1% move),
    ``vega_usd = sum(q x vega) / 100`` (USD per vol point).

    Parameters
    ----------
    a : int
        Account index.
    x : int
        Price point (column of ``fpts``).
    leg_start : ndarray, shape (N + 1,), int64
        Legs of account ``a`` are ``leg_start[a]:leg_start[a + 1]``.
    leg_inst : ndarray, shape (L,), int64
        Instrument of each leg.
    leg_qty : ndarray, shape (L,), float64
        Signed quantity, underlying units (< 0 short).
    inst_und : ndarray, shape (I,), int64
        Underlying index of each instrument.
    fpts : ndarray, shape (U, P), float64
        Underlying price at each price point, USD.
    grk : ndarray, shape (I, P, 3), float64
        Delta, gamma, vega per unit of underlying (:func:`fill_instrument_nb`).

    Returns
    -------
    tuple of float
        ``(delta_usd, gamma_usd, vega_usd)`` in the units above.
    """
    d = 0.0
    g = 0.0
    vg = 0.0
    for j in range(leg_start[a], leg_start[a + 1]):
        q = leg_qty[j]
        if q == 0.0:
            continue
        i = leg_inst[j]
        f = fpts[inst_und[i], x]
        d += q * grk[i, x, 0] * f
        g += q * grk[i, x, 1] * f * f
        vg += q * grk[i, x, 2]
    return d, g / 100.0, vg / 100.0


@njit
def close_out_nb(a, x, leg_start, leg_inst, leg_qty, inst_und, fpts, val, buy, sell):
    """Return ``(mark, proceeds, notional, n_legs)`` of closing every leg of ``a`` at point ``x``.

    ``mark = sum(q x mark)``, ``proceeds = sum(q x closing price)`` (longs sold at ``sell``,
    shorts bought back at ``buy``), ``notional = sum(|q| x F)``; USD. Does not modify legs.

    Parameters
    ----------
    a : int
        Account index.
    x : int
        Price point (column of ``fpts``).
    leg_start : ndarray, shape (N + 1,), int64
        Legs of account ``a`` are ``leg_start[a]:leg_start[a + 1]``.
    leg_inst : ndarray, shape (L,), int64
        Instrument of each leg.
    leg_qty : ndarray, shape (L,), float64
        Signed quantity, underlying units (< 0 short).
    inst_und : ndarray, shape (I,), int64
        Underlying index of each instrument.
    fpts : ndarray, shape (U, P), float64
        Underlying price at each price point, USD.
    val, buy, sell : ndarray, shape (I, P), float64
        Marks and closing prices (buy back a short, sell a long), USD per unit.

    Returns
    -------
    tuple
        ``(mark, proceeds, notional, n_legs)``: floats in USD and the number of open legs (int).
    """
    mark = 0.0
    proceeds = 0.0
    notional = 0.0
    n = 0
    for j in range(leg_start[a], leg_start[a + 1]):
        q = leg_qty[j]
        if q == 0.0:
            continue
        i = leg_inst[j]
        mark += q * val[i, x]
        proceeds += q * (sell[i, x] if q > 0.0 else buy[i, x])
        notional += abs(q) * fpts[inst_und[i], x]
        n += 1
    return mark, proceeds, notional, n


@njit
def liquidation_waterfall_nb(cash, proceeds, notional, penalty_rate, keeper_share):
    """Return ``(keeper_fee, insurance_fee, cash_after, bad_debt)`` of a full close-out.

    The penalty ``penalty_rate x notional`` goes first to the keeper (``keeper_share`` of it,
    always paid), then to the insurance fund out of what cash remains; negative cash left
    after the close-out is bad debt (written off, cash set to 0). USD. The rule of every kernel:
    :func:`backtest.kernels.settlement_nb.split_penalty_nb`.

    Parameters
    ----------
    cash : float
        Account cash before the close-out, USD.
    proceeds : float
        Cash the close-out brings (negative: it costs), USD.
    notional : float
        Notional closed, USD.
    penalty_rate : float
        Liquidation penalty, fraction of the notional.
    keeper_share : float
        Keeper's share of the penalty, fraction.

    Returns
    -------
    tuple of float
        ``(keeper_fee, insurance_fee, cash_after, bad_debt)``, USD, each >= 0.
    """
    # every leg is closed: nothing else is held, the fund is paid out of cash
    cash2, keeper, ins, bad = split_penalty_nb(cash + proceeds, 0.0, penalty_rate * notional,
                                               keeper_share, True, True)
    return keeper, ins, cash2, bad


@njit
def can_breach_nb(a, leg_start, leg_qty, cash):
    """Whether account ``a`` can ever be liquidatable: it has a short leg or negative cash.

    An account of long legs only with ``cash >= 0`` cannot: every scenario value is >= 0, so
    its worst scenario loss is at most its mark value <= equity, and it has no contingency.

    Parameters
    ----------
    a : int
        Account index.
    leg_start : ndarray, shape (N + 1,), int64
        Legs of account ``a`` are ``leg_start[a]:leg_start[a + 1]``.
    leg_qty : ndarray, shape (L,), float64
        Signed quantity of each leg, underlying units.
    cash : ndarray, shape (N,), float64
        USD balance of each account.

    Returns
    -------
    bool
        False when the account can never become liquidatable.
    """
    if cash[a] < 0.0:
        return True
    for j in range(leg_start[a], leg_start[a + 1]):
        if leg_qty[j] < 0.0:
            return True
    return False


@njit
def _decide_nb(a, trigger, leg_start, leg_inst, leg_qty, cash, inst_und, fpts, val, scen,
               contingency_rate, loss):
    """Return ``(point, equity, margin)`` of account ``a``'s liquidation this step (-1: none)."""
    if trigger == _EXTREME:
        e_lo, m_lo, has = account_point_nb(a, _LOW, leg_start, leg_inst, leg_qty, cash,
                                           inst_und, fpts, val, scen, contingency_rate, loss)
        if not has:
            return -1, 0.0, 0.0
        e_hi, m_hi, _ = account_point_nb(a, _HIGH, leg_start, leg_inst, leg_qty, cash,
                                         inst_und, fpts, val, scen, contingency_rate, loss)
        lo = e_lo < m_lo
        hi = e_hi < m_hi
        if lo and (not hi or e_lo - m_lo <= e_hi - m_hi):
            return _LOW, e_lo, m_lo
        if hi:
            return _HIGH, e_hi, m_hi
        return -1, 0.0, 0.0
    e, m, has = account_point_nb(a, _CLOSE, leg_start, leg_inst, leg_qty, cash, inst_und, fpts,
                                 val, scen, contingency_rate, loss)
    if has and e < m:
        return _CLOSE, e, m
    return -1, 0.0, 0.0


@njit
def _account_chunk_nb(ch, t, chunk_size, trigger, any_expiry, leg_start, leg_inst, leg_qty, cash,
                      inst_und, fpts, sig, val, scen, buy, sell, grk, expired, pen, share, cont,
                      acc, liq_step, rec_i, rec_f, bad_debt, settled):
    """Process the accounts of chunk ``ch`` in step ``t`` (see :func:`run_options_nb`)."""
    n = cash.shape[0]
    for k in range(_N_SUMMED):
        acc[ch, k] = 0.0
    loss = np.empty(scen.shape[2] - 2)
    for a in range(ch * chunk_size, min(n, (ch + 1) * chunk_size)):
        if leg_start[a + 1] == leg_start[a]:
            continue
        if liq_step[a] < 0 and can_breach_nb(a, leg_start, leg_qty, cash):
            x, e, m = _decide_nb(a, trigger, leg_start, leg_inst, leg_qty, cash,
                                 inst_und, fpts, val, scen, cont, loss)
            if x >= 0:
                d, g, vg = account_greeks_nb(a, x, leg_start, leg_inst, leg_qty,
                                             inst_und, fpts, grk)
                mark, proceeds, notional, n_legs = close_out_nb(
                    a, x, leg_start, leg_inst, leg_qty, inst_und, fpts, val, buy, sell)
                c0 = cash[a]
                keeper, ins, c2, bad = liquidation_waterfall_nb(c0, proceeds, notional,
                                                                pen, share)
                for j in range(leg_start[a], leg_start[a + 1]):
                    leg_qty[j] = 0.0
                cash[a] = c2
                bad_debt[a] += bad
                liq_step[a] = t
                und = inst_und[leg_inst[leg_start[a]]]
                rec_i[a, 0] = t
                rec_i[a, 1] = a
                rec_i[a, 2] = x
                rec_i[a, 3] = n_legs
                rec_f[a, 0] = fpts[und, x]
                rec_f[a, 1] = sig[und, x]
                rec_f[a, 2] = e
                rec_f[a, 3] = m
                rec_f[a, 4] = c0
                rec_f[a, 5] = mark
                rec_f[a, 6] = mark - proceeds
                rec_f[a, 7] = notional
                rec_f[a, 8] = keeper
                rec_f[a, 9] = ins
                rec_f[a, 10] = bad
                rec_f[a, 11] = c2
                rec_f[a, 12] = d
                rec_f[a, 13] = g
                rec_f[a, 14] = vg
                acc[ch, _N_LIQ] += 1.0
                if bad > 0.0:
                    acc[ch, _N_BANKRUPT] += 1.0
                acc[ch, _NOTIONAL] += notional
                acc[ch, _MARK] += mark
                acc[ch, _SPREAD] += mark - proceeds
                acc[ch, _KEEPER] += keeper
                acc[ch, _INSURANCE] += ins
                acc[ch, _BAD] += bad
                acc[ch, _CASH_LIQ] += c2 - c0
                continue
        if any_expiry:
            paid = 0.0
            n_settled = 0
            left = 0
            for j in range(leg_start[a], leg_start[a + 1]):
                q = leg_qty[j]
                if q == 0.0:
                    continue
                i = leg_inst[j]
                if expired[i] != 0:
                    paid += q * val[i, _CLOSE]
                    leg_qty[j] = 0.0
                    n_settled += 1
                else:
                    left += 1
            if n_settled > 0:
                cash[a] += paid
                settled[a] += paid
                acc[ch, _SETTLE] += paid
                acc[ch, _N_SETTLED] += n_settled
                c, bad = write_off_nb(cash[a], left == 0)
                if bad > 0.0:
                    cash[a] = c
                    bad_debt[a] += bad
                    acc[ch, _BAD] += bad
                    acc[ch, _N_BANKRUPT] += 1.0
        e, m, has = account_point_nb(a, _CLOSE, leg_start, leg_inst, leg_qty, cash,
                                     inst_und, fpts, val, scen, cont, loss)
        if not has:
            continue
        d, g, vg = account_greeks_nb(a, _CLOSE, leg_start, leg_inst, leg_qty, inst_und,
                                     fpts, grk)
        acc[ch, _N_OPEN] += 1.0
        acc[ch, _EQUITY] += e
        acc[ch, _VALUE] += e - cash[a]
        acc[ch, _MARGIN] += m
        acc[ch, _DELTA] += d
        acc[ch, _GAMMA] += g
        acc[ch, _VEGA] += vg
        if e < m:
            acc[ch, _N_BREACHED] += 1.0


@njit_parallel
def run_options_nb(
    t0,
    t1,
    tval_ms,
    low,
    high,
    close,
    iv,
    inst_und,
    inst_call,
    inst_strike,
    inst_expiry_ms,
    active,
    leg_start,
    leg_inst,
    leg_qty,
    cash,
    params,
    price_shocks,
    vol_factors,
    chunk_size,
    state,
    step_out,
    liq_step,
    rec_i,
    rec_f,
    bad_debt,
    settled,
):
    """Advance every options account from step ``t0`` to ``t1`` (exclusive), in place.

    Per step: mark the active instruments at the candle's low, high and close (parallel over
    instruments); then, in parallel over account chunks, decide and apply liquidations (see the
    module docstring), settle expired legs at the close, and accumulate the close-of-step
    book metrics; sum the chunks' accumulators in chunk order; run the insurance fund; retire
    expired instruments.

    Parameters
    ----------
    t0, t1 : int
        Step range.
    tval_ms : ndarray, shape (T,), int64
        Valuation time of each step (the candle's close time), epoch ms.
    low, high, close : ndarray, shape (T, U), float64
        Candle prices of each underlying, USD.
    iv : ndarray, shape (T, U), float64
        Implied volatility of each underlying in each step, fraction (> 0).
    inst_und : ndarray, shape (I,), int64
        Underlying index (column of the price arrays) of each instrument.
    inst_call : ndarray, shape (I,), int8
        1 call, 0 put.
    inst_strike : ndarray, shape (I,), float64
        Strike, USD.
    inst_expiry_ms : ndarray, shape (I,), int64
        Expiry, epoch ms.
    active : ndarray, shape (I,), int8
        1 until the instrument has expired and settled; updated.
    leg_start : ndarray, shape (N + 1,), int64
        Legs of account ``a`` are ``leg_start[a]:leg_start[a + 1]``.
    leg_inst : ndarray, shape (L,), int64
        Instrument of each leg (all legs of an account on one underlying).
    leg_qty : ndarray, shape (L,), float64
        Signed quantity, underlying units (< 0 short); updated (0 once closed or settled).
    cash : ndarray, shape (N,), float64
        USD balance; updated.
    params : ndarray, shape (1,), dtype ``OPTIONS_PARAMS_DTYPE``
    price_shocks : ndarray, shape (S_p,), float64
        Relative price shocks of the margin grid.
    vol_factors : ndarray, shape (S_v,), float64
        Relative vol shocks of the margin grid for a 30-day option.
    chunk_size : int
        Accounts per chunk; fixes the summation order (not the thread count).
    state : ndarray, shape (1,), float64
        Insurance fund balance, USD; updated.
    step_out : ndarray, shape (T, N_OPTIONS_METRICS), float64
        Per-step metrics (:class:`OptionsStepMetric`); rows ``t0..t1-1`` are written.
    liq_step : ndarray, shape (N,), int32
        Step of each account's liquidation (-1: none); updated.
    rec_i : ndarray, shape (N, 4), int64
        Integer record fields (``OPTIONS_REC_I_FIELDS``) in the liquidated account's row.
    rec_f : ndarray, shape (N, 15), float64
        Float record fields (``OPTIONS_REC_F_FIELDS``) in the liquidated account's row.
    bad_debt : ndarray, shape (N,), float64
        Bad debt left by each account (liquidation or settlement), USD; updated.
    settled : ndarray, shape (N,), float64
        Cash each account received at expiry settlements, USD; updated.

    Returns
    -------
    int
        ``t1``, the step after the last one simulated.
    """
    n = cash.shape[0]
    n_inst = inst_und.shape[0]
    n_und = low.shape[1]
    n_chunks = (n + chunk_size - 1) // chunk_size
    prm = params[0]
    trigger = prm.trigger
    n_s = price_shocks.shape[0] * vol_factors.shape[0]
    val = np.zeros((n_inst, 3))
    buy = np.zeros((n_inst, 3))
    sell = np.zeros((n_inst, 3))
    scen = np.zeros((n_inst, 3, n_s + 2))
    grk = np.zeros((n_inst, 3, 3))
    tau = np.zeros(n_inst)
    expired = np.zeros(n_inst, np.int8)
    fpts = np.empty((n_und, 3))
    sig = np.empty((n_und, 3))
    acc = np.zeros((n_chunks, _N_SUMMED))
    points = np.array([_LOW, _HIGH, _CLOSE], np.int64) if trigger == _EXTREME else np.array(
        [_CLOSE], np.int64)
    pen = prm.penalty_rate
    share = prm.keeper_share
    cont = prm.contingency_rate
    # a parallel dispatch costs more than marking a few instruments (thousands of revaluations)
    parallel_fill = n_inst * points.shape[0] * (n_s + 3) >= PARALLEL_FILL_MIN
    for t in range(t0, t1):
        for u in range(n_und):
            fpts[u, _LOW] = low[t, u]
            fpts[u, _HIGH] = high[t, u]
            fpts[u, _CLOSE] = close[t, u]
            for x in range(3):
                sig[u, x] = iv[t, u]
        any_expiry = False
        for i in range(n_inst):
            tau[i] = (inst_expiry_ms[i] - tval_ms[t]) / MS_PER_YEAR
            expired[i] = 1 if (active[i] != 0 and tau[i] <= 0.0) else 0
            if expired[i] != 0:
                any_expiry = True
        if parallel_fill:
            fill_instruments_nb(active, inst_und, inst_call, inst_strike, tau, fpts, sig,
                                price_shocks, vol_factors, params, points, val, scen, buy, sell,
                                grk)
        else:
            fill_instruments_serial_nb(active, inst_und, inst_call, inst_strike, tau, fpts, sig,
                                       price_shocks, vol_factors, params, points, val, scen,
                                       buy, sell, grk)
        args = (t, chunk_size, trigger, any_expiry, leg_start, leg_inst, leg_qty, cash,
                inst_und, fpts, sig, val, scen, buy, sell, grk, expired, pen, share, cont, acc,
                liq_step, rec_i, rec_f, bad_debt, settled)
        if n_chunks > 1:
            for ch in prange(n_chunks):
                _account_chunk_nb(ch, *args)
        elif n_chunks == 1:
            _account_chunk_nb(0, *args)
        for k in range(_N_SUMMED):
            step_out[t, k] = 0.0
        for ch in range(n_chunks):
            for k in range(_N_SUMMED):
                step_out[t, k] += acc[ch, k]
        fund, draw, socialised = socialise_step_nb(state[0], step_out[t, _INSURANCE],
                                                   step_out[t, _BAD])
        state[0] = fund
        step_out[t, _INS_DRAW] = draw
        step_out[t, _INS_FUND] = fund
        step_out[t, _SOCIALISED] = socialised
        if any_expiry:
            for i in range(n_inst):
                if expired[i] != 0:
                    active[i] = 0
    return t1


@njit_parallel
def evaluate_accounts_nb(leg_start, leg_inst, leg_qty, cash, inst_und, fpts, val, scen, grk,
                         contingency_rate, equity, margin, greeks):
    """Equity and maintenance margin of every account at every price point, Greeks at point 0.

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
        Underlying price at each price point, USD.
    val : ndarray, shape (I, P), float64
        Marks, USD per unit of underlying (:func:`fill_instruments_nb`, all P points).
    scen : ndarray, shape (I, P, S + 2), float64
        Scenario values then their minimum and maximum, USD per unit.
    grk : ndarray, shape (I, P, 3), float64
        Delta, gamma, vega per unit of underlying.
    contingency_rate : float
        Contingency margin per unit of short quantity, fraction of the underlying price.
    equity, margin : ndarray, shape (N, P), float64
        Outputs, USD (margin 0 for an account without open legs).
    greeks : ndarray, shape (N, 3), float64
        Output: delta_usd, gamma_usd, vega_usd at point 0.
    """
    n_s = scen.shape[2] - 2
    n_p = fpts.shape[1]
    for a in prange(cash.shape[0]):
        loss = np.empty(n_s)
        for x in range(n_p):
            e, m, _ = account_point_nb(a, x, leg_start, leg_inst, leg_qty, cash, inst_und, fpts,
                                       val, scen, contingency_rate, loss)
            equity[a, x] = e
            margin[a, x] = m
        d, g, vg = account_greeks_nb(a, 0, leg_start, leg_inst, leg_qty, inst_und, fpts, grk)
        greeks[a, 0] = d
        greeks[a, 1] = g
        greeks[a, 2] = vg
