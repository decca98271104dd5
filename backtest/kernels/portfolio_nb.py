"""numba kernel of multi-asset lending and cross-margin perp accounts.

Accounts are ragged and stored CSR style: account ``i`` holds the positions
``offsets[i] .. offsets[i + 1]`` of the flat arrays ``pos_asset`` (index into the aligned
assets) and ``pos_units`` (asset units, signed), plus one ``cash`` balance (USD; a lending
account's stablecoin debt is ``-cash``). Rules (``docs/portfolios.md``):

- lending: ``HF = sum(units x price x LT) / debt`` (Aave v3 ``GenericLogic``,

  https://github.com/aave-dao/aave-v3-origin/tree/fd1fbd9150426ca8ace9cee45b4acf912ae84f5b);
  when ``HF < 1`` a liquidator repays at most ``close_factor`` of the debt (all of
  it once ``HF <= full_close_health_factor``, the v3.0-3.2 rule) and seizes collateral worth
  ``repaid x (1 + bonus_i)`` at the fill price, collateral by collateral in the order policy's
  order (or pro rata); ``protocol_fee`` of the bonus goes to the insurance fund (Aave's
  ``liquidationProtocolFee``) out of the equity left (the single-asset waterfall:
  :func:`backtest.kernels.settlement_nb.lending_fund_fee_nb`), the rest is the keeper's. Once
  no collateral is left, the remaining debt is bad debt (Aave v3.3 ``_burnBadDebt``).
- perps (cross and isolated): ``equity = cash + sum(units x price)``, ``MM = sum(m_i x |units_i|
  x price_i)``; when ``equity < MM`` positions are closed in the order policy's order, each
  just enough to restore ``equity >= target_health x MM`` (Drift's
  ``calculate_base_asset_amount_to_cover_margin_shortage``) or entirely, with a penalty
  ``penalty_i x closed notional`` split keeper / insurance fund (the keeper is always paid, the
  fund out of the equity left: :func:`backtest.kernels.settlement_nb.split_penalty_nb`, the
  single-asset kernel's rule). An account with ``equity <= 0`` is closed entirely; a closed
  account left with negative cash is bad debt.

Settlement is the layer every kernel shares (:mod:`backtest.kernels.settlement_nb`,
``docs/settlement.md``): the penalty split above, the write-off and pro-rata attribution of an
event's bad debt to its records, and at the end of each step the insurance fund (fees in, bad
debt drawn, the rest socialised: no ADL here).

The trigger and fill price of each position is the adverse extreme of its asset's candle (the
low for collateral and longs, the high for shorts) or, with ``TriggerPrice.CLOSE``, the close:
as in :mod:`backtest.kernels.liquidation_nb`, every asset at its worst price of the candle at
once. One liquidation per account per step.

The step loop is time-major; accounts are processed in fixed-size chunks in parallel
(``prange``). Pass 1 flags liquidatable accounts and reserves, per chunk and in chunk order,
record slots for all of their positions; pass 2 liquidates them; the records are then compacted
and per-chunk sums added in chunk order: results are bit-identical whatever the thread count.

Why over 400 lines: it is one numba kernel (the multi-asset step loop) with the account rules
it inlines (health, order, lending and perp liquidation); the settlement it shares with the
other kernels is in :mod:`backtest.kernels.settlement_nb`.
"""

from __future__ import annotations

import numpy as np

from backtest._jit import njit, njit_parallel, prange
from backtest.kernels.enums import TriggerPrice
from backtest.kernels.portfolio_enums import (
    N_ASSET_METRICS,
    N_SUMMED_PORTFOLIO_METRICS,
    AccountKind,
    AssetMetric,
    OrderPolicy,
    PortfolioMetric,
)
from backtest.kernels.settlement_nb import (
    attribute_bad_debt_nb,
    lending_fund_fee_nb,
    socialise_step_nb,
    split_penalty_nb,
    write_off_nb,
)

_LENDING = int(AccountKind.LENDING)
_CROSS = int(AccountKind.CROSS_PERP)
_PROTOCOL = int(OrderPolicy.PROTOCOL)
_LEAST = int(OrderPolicy.LEAST_SENSITIVE)
_PROPORTIONAL = int(OrderPolicy.PROPORTIONAL)
_CLOSE = int(TriggerPrice.CLOSE)

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

#: Shortage below this fraction of the maintenance margin counts as restored (rounding).
SHORTAGE_TOL = 1e-12


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
def _emit_nb(j, t, i, a, units_closed, price, keeper, insurance, health, repaid,
             rec_i, rec_f):
    rec_i[j, 0] = t
    rec_i[j, 1] = i
    rec_i[j, 2] = a
    rec_f[j, 0] = units_closed
    rec_f[j, 1] = price
    rec_f[j, 2] = keeper
    rec_f[j, 3] = insurance
    rec_f[j, 4] = 0.0
    rec_f[j, 5] = health
    rec_f[j, 6] = repaid


@njit
def liquidate_lending_nb(t, i, lo, hi, pos_asset, pos_units, cash, prices, order_idx, health,
                         policy_arr, assets, j0, rec_i, rec_f):
    """Liquidate one lending account at ``prices``; write its records from ``j0``.

    ``policy_arr`` is the ``PORTFOLIO_POLICY_DTYPE`` array, shape (1,).

    Parameters
    ----------
    t : int
        Step index (written to the records).
    i : int
        Account index.
    lo, hi : int
        The account's positions are ``lo:hi`` of the flat position arrays.
    pos_asset : ndarray, shape (P,), int16 or int32
        Asset index of each position.
    pos_units : ndarray, shape (P,), float64
        Signed units of each position; updated.
    cash : float
        The account's cash before the liquidation, USD (lending: ``-debt``).
    prices : ndarray, shape (>= hi - lo,), float64
        Trigger (and fill) price of each of the account's positions, USD per unit.
    order_idx : ndarray, shape (>= hi - lo,), int64
        Position indices in liquidation order (:func:`liquidation_order_nb`).
    health : float
        The account's health at ``prices`` (dimensionless, < 1).
    policy_arr : ndarray, shape (1,), ``PORTFOLIO_POLICY_DTYPE``
        Order policy, close factor and fee shares.
    assets : ndarray, shape (A,), ``ASSET_DTYPE``
        Risk parameters of each asset (thresholds, bonus, maintenance rate, penalty).
    j0 : int
        First free row of the record buffer.
    rec_i : ndarray, shape (cap, 3), int64
        Integer record fields (``PREC_I_FIELDS``); rows from ``j0`` written.
    rec_f : ndarray, shape (cap, 7), float64
        Float record fields (``PREC_F_FIELDS``, USD and asset units); rows from ``j0`` written.

    Returns
    -------
    tuple
        ``(cash_after, records_written)``. ``pos_units`` is updated in place; each record
        holds the collateral seized (``units_closed``), the debt it repaid, the keeper's
        bonus and the insurance fund's fee; bad debt (all collateral gone, debt left) is
        added to the records pro rata to the value they seized.
    """
    policy = policy_arr[0]
    debt = -cash
    cf = 1.0 if health <= policy.full_close_health_factor else policy.close_factor
    to_repay = cf * debt
    fee_share = policy.protocol_fee
    j = j0
    if policy.order == _PROPORTIONAL:
        total = 0.0
        for k in range(lo, hi):
            if pos_units[k] > 0.0:
                total += pos_units[k] * prices[k - lo]
        goal = to_repay
        for k in range(lo, hi):
            u = pos_units[k]
            if u <= 0.0 or total <= 0.0:
                continue
            p = prices[k - lo]
            b = assets[pos_asset[k]].liquidation_bonus
            value = u * p
            repay = goal * value / total
            if repay * (1.0 + b) >= value:
                seized = u
                repay = value / (1.0 + b)
            else:
                seized = repay * (1.0 + b) / p
            bonus = seized * p - repay
            keeper = bonus - fee_share * bonus
            pos_units[k] = 0.0 if seized >= u else u - seized
            cash, repay, ins = lending_fund_fee_nb(cash, repay, fee_share * bonus,
                                                   seized < u and cash + repay >= 0.0, lo, hi,
                                                   pos_units, prices)
            _emit_nb(j, t, i, pos_asset[k], seized, p, keeper, ins, health, repay,
                     rec_i, rec_f)
            j += 1
    else:
        for r in range(hi - lo):
            if to_repay <= 0.0:
                break
            k = order_idx[r]
            u = pos_units[k]
            if u <= 0.0:
                continue
            p = prices[k - lo]
            b = assets[pos_asset[k]].liquidation_bonus
            value = u * p
            if to_repay * (1.0 + b) >= value:
                seized = u
                repay = value / (1.0 + b)
            else:
                seized = to_repay * (1.0 + b) / p
                repay = to_repay
            bonus = seized * p - repay
            keeper = bonus - fee_share * bonus
            pos_units[k] = 0.0 if seized >= u else u - seized
            cash, repay, ins = lending_fund_fee_nb(cash, repay, fee_share * bonus,
                                                   seized < u and cash + repay >= 0.0, lo, hi,
                                                   pos_units, prices)
            to_repay -= repay
            _emit_nb(j, t, i, pos_asset[k], seized, p, keeper, ins, health, repay,
                     rec_i, rec_f)
            j += 1
    left = False
    for k in range(lo, hi):
        if pos_units[k] > 0.0:
            left = True
    cash, bad = write_off_nb(cash, not left)  # Aave v3.3 _burnBadDebt: no collateral left
    if bad > 0.0:
        attribute_bad_debt_nb(bad, j0, j, rec_f)
    return cash, j - j0


@njit
def _close_perp_nb(k, d, p, pen, keeper_share, lo, hi, pos_units, prices, cash):
    """Close ``d`` units of position ``k`` at ``p`` and settle its penalty.

    :func:`backtest.kernels.settlement_nb.split_penalty_nb`: the fund is paid out of the equity
    left, cash plus what the account still holds at ``prices``. Returns ``(cash, equity, signed
    units closed, keeper fee, insurance fee)``, USD; the account's write-off of bad debt is the
    caller's (after its last position).
    """
    u = pos_units[k]
    signed = d if u > 0.0 else -d
    pos_units[k] = 0.0 if d >= abs(u) else u - signed
    held = 0.0
    for j in range(lo, hi):
        held += pos_units[j] * prices[j - lo]
    cash, keeper, ins, _ = split_penalty_nb(cash + signed * p, held, pen * d * p, keeper_share,
                                            False, False)
    return cash, cash + held, signed, keeper, ins


@njit
def liquidate_perp_nb(t, i, lo, hi, pos_asset, pos_units, cash, prices, order_idx, health,
                      policy_arr, assets, j0, rec_i, rec_f):
    """Liquidate one cross-margin (or isolated) perp account at ``prices``.

    Parameters
    ----------
    t : int
        Step index (written to the records).
    i : int
        Account index.
    lo, hi : int
        The account's positions are ``lo:hi`` of the flat position arrays.
    pos_asset : ndarray, shape (P,), int16 or int32
        Asset index of each position.
    pos_units : ndarray, shape (P,), float64
        Signed units of each position; updated.
    cash : float
        The account's cash before the liquidation, USD (lending: ``-debt``).
    prices : ndarray, shape (>= hi - lo,), float64
        Trigger (and fill) price of each of the account's positions, USD per unit.
    order_idx : ndarray, shape (>= hi - lo,), int64
        Position indices in liquidation order (:func:`liquidation_order_nb`).
    health : float
        The account's health at ``prices`` (dimensionless, < 1).
    policy_arr : ndarray, shape (1,), ``PORTFOLIO_POLICY_DTYPE``
        Order policy, close factor and fee shares.
    assets : ndarray, shape (A,), ``ASSET_DTYPE``
        Risk parameters of each asset (thresholds, bonus, maintenance rate, penalty).
    j0 : int
        First free row of the record buffer.
    rec_i : ndarray, shape (cap, 3), int64
        Integer record fields (``PREC_I_FIELDS``); rows from ``j0`` written.
    rec_f : ndarray, shape (cap, 7), float64
        Float record fields (``PREC_F_FIELDS``, USD and asset units); rows from ``j0`` written.

    Returns
    -------
    tuple
        ``(cash_after, records_written)``; ``pos_units`` updated in place. Records hold the
        signed units closed, the keeper's and the insurance fund's share of the penalty, and
        bad debt (all positions closed with negative cash) pro rata to notional.
    """
    policy = policy_arr[0]
    target = policy.target_health
    ks = policy.perp_keeper_share
    equity = cash
    mm = 0.0
    pen_total = 0.0
    for k in range(lo, hi):
        u = pos_units[k]
        p = prices[k - lo]
        equity += u * p
        mm += assets[pos_asset[k]].maintenance_margin_rate * abs(u) * p
        pen_total += assets[pos_asset[k]].liquidation_penalty * abs(u) * p
    everything = equity <= 0.0
    j = j0
    if policy.order == _PROPORTIONAL:
        denom = target * mm - pen_total
        f = 1.0
        if not everything and denom > 0.0:
            f = min((target * mm - equity) / denom, 1.0)
        for k in range(lo, hi):
            u = pos_units[k]
            if u == 0.0:
                continue
            d = abs(u) if f >= 1.0 else f * abs(u)
            p = prices[k - lo]
            cash, equity, signed, keeper, ins = _close_perp_nb(
                k, d, p, assets[pos_asset[k]].liquidation_penalty, ks, lo, hi, pos_units, prices,
                cash)
            _emit_nb(j, t, i, pos_asset[k], signed, p, keeper, ins, health, 0.0, rec_i, rec_f)
            j += 1
    else:
        for r in range(hi - lo):
            k = order_idx[r]
            u = pos_units[k]
            if u == 0.0:
                continue
            shortage = target * mm - equity
            if not everything and shortage <= SHORTAGE_TOL * mm:
                break
            a = pos_asset[k]
            m = assets[a].maintenance_margin_rate
            pen = assets[a].liquidation_penalty
            p = prices[k - lo]
            size = abs(u)
            rate = target * m - pen
            d = size
            if not everything and rate > 0.0:
                d = min(size, shortage / (rate * p))
            cash, equity, signed, keeper, ins = _close_perp_nb(k, d, p, pen, ks, lo, hi,
                                                                pos_units, prices, cash)
            mm -= m * d * p
            _emit_nb(j, t, i, a, signed, p, keeper, ins, health, 0.0, rec_i, rec_f)
            j += 1
    left = False
    for k in range(lo, hi):
        if pos_units[k] != 0.0:
            left = True
    cash, bad = write_off_nb(cash, not left)
    if bad > 0.0:
        attribute_bad_debt_nb(bad, j0, j, rec_f)
    return cash, j - j0


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
):
    """Advance every account from step ``t0`` to at most ``t1`` (exclusive), in place.

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
        ``PREC_F_FIELDS``.

    Returns
    -------
    int
        The step after the last one simulated: ``t1``, or the first step whose records would
        not fit in the buffer (that step is left untouched: flush or grow, then call again).
    """
    n = kind.shape[0]
    n_assets = low.shape[1]
    n_chunks = (n + chunk_size - 1) // chunk_size
    cap = rec_i.shape[0]
    trigger = policy[0].trigger
    order = policy[0].order
    count = np.zeros(n_chunks, np.int64)
    n_flag = np.zeros(n_chunks, np.int64)
    start = np.zeros(n_chunks, np.int64)
    written = np.zeros(n_chunks, np.int64)
    acc = np.zeros((n_chunks, _N_SUMMED))
    asset_acc = np.zeros((n_chunks, n_assets, N_ASSET_METRICS))
    for t in range(t0, t1):
        # pass 1: flag liquidatable accounts, reserve a record per position of each
        for ch in prange(n_chunks):
            prices = np.empty(max_positions)
            c = 0
            f = 0
            for i in range(ch * chunk_size, min(n, (ch + 1) * chunk_size)):
                lo = offsets[i]
                hi = offsets[i + 1]
                for k in range(lo, hi):
                    a = pos_asset[k]
                    prices[k - lo] = position_price_nb(pos_units[k], low[t, a], high[t, a],
                                                       close[t, a], trigger)
                h = account_health_nb(kind[i], lo, hi, pos_asset, pos_units, cash[i], prices,
                                      assets)
                if h < 1.0:
                    flag[i] = 1
                    f += 1
                    c += hi - lo
                else:
                    flag[i] = 0
            count[ch] = c
            n_flag[ch] = f
        total = rec_len[0]
        for ch in range(n_chunks):
            start[ch] = total
            total += count[ch]
        if total > cap:
            return t
        # pass 2: liquidate the flagged accounts, chunk by chunk
        for ch in prange(n_chunks):
            for k in range(_N_SUMMED):
                acc[ch, k] = 0.0
            for a in range(n_assets):
                for k in range(N_ASSET_METRICS):
                    asset_acc[ch, a, k] = 0.0
            written[ch] = 0
            if n_flag[ch] == 0:
                continue
            acc[ch, _M_LIQUIDATABLE] = n_flag[ch]
            prices = np.empty(max_positions)
            order_idx = np.empty(max_positions, np.int64)
            j = start[ch]
            for i in range(ch * chunk_size, min(n, (ch + 1) * chunk_size)):
                if flag[i] == 0:
                    continue
                lo = offsets[i]
                hi = offsets[i + 1]
                for k in range(lo, hi):
                    a = pos_asset[k]
                    prices[k - lo] = position_price_nb(pos_units[k], low[t, a], high[t, a],
                                                       close[t, a], trigger)
                h = account_health_nb(kind[i], lo, hi, pos_asset, pos_units, cash[i], prices,
                                      assets)
                liquidation_order_nb(kind[i], order, lo, hi, pos_asset, pos_units, prices,
                                     sensitivity[t], assets, order_idx)
                c0 = cash[i]
                if kind[i] == _LENDING:
                    c1, w = liquidate_lending_nb(t, i, lo, hi, pos_asset, pos_units, c0, prices,
                                                 order_idx, h, policy, assets, j, rec_i, rec_f)
                    acc[ch, _M_LENDING] += 1.0
                elif kind[i] == _CROSS:
                    c1, w = liquidate_perp_nb(t, i, lo, hi, pos_asset, pos_units, c0, prices,
                                              order_idx, h, policy, assets, j, rec_i, rec_f)
                    acc[ch, _M_CROSS] += 1.0
                else:
                    c1, w = liquidate_perp_nb(t, i, lo, hi, pos_asset, pos_units, c0, prices,
                                              order_idx, h, policy, assets, j, rec_i, rec_f)
                    acc[ch, _M_ISOLATED] += 1.0
                cash[i] = c1
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
        rec_len[0] = dest
        balance, draw, socialised = socialise_step_nb(fund[0], step_out[t, _M_INSURANCE],
                                                      step_out[t, _M_BAD])
        fund[0] = balance
        step_out[t, _M_DRAW] = draw
        step_out[t, _M_FUND] = balance
        step_out[t, _M_SOCIALISED] = socialised
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
