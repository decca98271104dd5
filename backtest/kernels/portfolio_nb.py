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
from backtest.kernels.enums import OracleModel, TriggerPrice
from backtest.kernels.portfolio_enums import (
    N_ASSET_METRICS,
    N_SUMMED_PORTFOLIO_METRICS,
    AccountKind,
    AssetMarketMetric,
    AssetMetric,
    OrderPolicy,
    PortfolioMetric,
)
from backtest.kernels.portfolio_market_nb import (
    execution_factors_nb,
    market_step_begin_nb,
    market_step_end_nb,
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
_ORACLE_MARKET = int(OracleModel.MARKET)
_IMPACT_COST = int(AssetMarketMetric.IMPACT_COST)

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
def _seize_nb(seized, u, p, e, repay, bonus_share, cash, plan, lo, hi, pos_units, prices, fills,
              exact):
    """Settle one seizure planned at the sizing price ``p`` and filled at ``p x e``.

    The units seized and the debt the plan repays (``repay``, at ``p``) are fixed by the plan;
    the fill values them at ``p x e`` (market impact): the debt repaid becomes ``repay x e``,
    the bonus ``seized x p x e - repay x e``, its fund share paid out of the equity left at the
    fill prices (:func:`backtest.kernels.settlement_nb.lending_fund_fee_nb`). The plan's own
    cash (``plan``, at the sizing prices) sizes the next seizures, so sizes never depend on
    the fills; ``exact`` (fills are the sizing prices) skips it. Returns ``(cash, plan,
    repay_plan, repay_fill, keeper_fee, insurance_fee)``, USD.
    """
    if exact:
        bonus = seized * p - repay
        keeper = bonus - bonus_share * bonus
        cash, repay, ins = lending_fund_fee_nb(cash, repay, bonus_share * bonus,
                                               seized < u and cash + repay >= 0.0, lo, hi,
                                               pos_units, prices)
        return cash, cash, repay, repay, keeper, ins
    bonus = seized * p - repay
    plan, repay_plan, _ = lending_fund_fee_nb(plan, repay, bonus_share * bonus,
                                              seized < u and plan + repay >= 0.0, lo, hi,
                                              pos_units, prices)
    repay_f = repay * e
    bonus_f = seized * (p * e) - repay_f
    keeper = bonus_f - bonus_share * bonus_f
    cash, repay_f, ins = lending_fund_fee_nb(cash, repay_f, bonus_share * bonus_f,
                                             seized < u and cash + repay_f >= 0.0, lo, hi,
                                             pos_units, fills)
    return cash, plan, repay_plan, repay_f, keeper, ins


@njit
def liquidate_lending_nb(t, i, lo, hi, pos_asset, pos_units, cash, prices, fills, exec_f, exact,
                         order_idx, health, policy_arr, assets, j0, rec_i, rec_f):
    """Liquidate one lending account sized at ``prices``, filled at ``fills``; records from ``j0``.

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
        Decision price of each of the account's positions, USD per unit: sizes every seizure.
    fills : ndarray, shape (>= hi - lo,), float64
        Fill price of each position, USD per unit: ``prices x exec_f`` of its asset (the same
        array as ``prices`` without market impact).
    exec_f : ndarray, shape (A,), float64
        Execution factor of each asset in the step (fill / decision price; 1 without impact).
    exact : bool
        ``fills`` are ``prices`` (no impact): the sizes need no separate plan.
    order_idx : ndarray, shape (>= hi - lo,), int64
        Position indices in liquidation order (:func:`liquidation_order_nb`).
    health : float
        The account's health at its trigger prices (dimensionless, < 1).
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
        holds the collateral seized (``units_closed``), its fill price, the debt it repaid,
        the keeper's bonus and the insurance fund's fee at the fill price (:func:`_seize_nb`);
        bad debt (all collateral gone, debt left) is added to the records pro rata to the
        value they seized.
    """
    policy = policy_arr[0]
    debt = -cash
    cf = 1.0 if health <= policy.full_close_health_factor else policy.close_factor
    to_repay = cf * debt
    fee_share = policy.protocol_fee
    plan = cash
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
            pos_units[k] = 0.0 if seized >= u else u - seized
            cash, plan, _, repay_f, keeper, ins = _seize_nb(
                seized, u, p, exec_f[pos_asset[k]], repay, fee_share, cash, plan, lo, hi,
                pos_units, prices, fills, exact)
            _emit_nb(j, t, i, pos_asset[k], seized, fills[k - lo], keeper, ins, health, repay_f,
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
            pos_units[k] = 0.0 if seized >= u else u - seized
            cash, plan, repay, repay_f, keeper, ins = _seize_nb(
                seized, u, p, exec_f[pos_asset[k]], repay, fee_share, cash, plan, lo, hi,
                pos_units, prices, fills, exact)
            to_repay -= repay
            _emit_nb(j, t, i, pos_asset[k], seized, fills[k - lo], keeper, ins, health, repay_f,
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
def _close_perp_nb(k, d, p, pe, pen, keeper_share, lo, hi, pos_units, prices, fills, cash, plan,
                   exact):
    """Close ``d`` units of position ``k``, sized at ``p``, filled at ``pe``; settle its penalty.

    :func:`backtest.kernels.settlement_nb.split_penalty_nb` at the fill: ``penalty x d x pe``,
    the fund paid out of the equity left, cash plus what the account still holds at ``fills``.
    The plan (``plan``: the same close at the sizing prices) gives the equity that sizes the
    next close, so sizes never depend on the fills; ``exact`` (fills are the sizing prices)
    skips it. Returns ``(cash, plan, equity at the sizing prices, signed units closed, keeper
    fee, insurance fee)``, USD; the account's write-off of bad debt is the caller's (after its
    last position).
    """
    u = pos_units[k]
    signed = d if u > 0.0 else -d
    pos_units[k] = 0.0 if d >= abs(u) else u - signed
    held_f = 0.0
    for j in range(lo, hi):
        held_f += pos_units[j] * fills[j - lo]
    cash, keeper, ins, _ = split_penalty_nb(cash + signed * pe, held_f, pen * d * pe,
                                            keeper_share, False, False)
    if exact:
        return cash, cash, cash + held_f, signed, keeper, ins
    held = 0.0
    for j in range(lo, hi):
        held += pos_units[j] * prices[j - lo]
    plan, _, _, _ = split_penalty_nb(plan + signed * p, held, pen * d * p, keeper_share, False,
                                     False)
    return cash, plan, plan + held, signed, keeper, ins


@njit
def liquidate_perp_nb(t, i, lo, hi, pos_asset, pos_units, cash, prices, fills, exact, order_idx,
                      health, policy_arr, assets, j0, rec_i, rec_f):
    """Liquidate one cross-margin (or isolated) perp account sized at ``prices``, at ``fills``.

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
        Decision price of each of the account's positions, USD per unit: sizes every close.
    fills : ndarray, shape (>= hi - lo,), float64
        Fill price of each position (decision price x its asset's execution factor), USD per
        unit; the same array as ``prices`` without impact.
    exact : bool
        ``fills`` are ``prices``: the sizes need no separate plan.
    order_idx : ndarray, shape (>= hi - lo,), int64
        Position indices in liquidation order (:func:`liquidation_order_nb`).
    health : float
        The account's health at its trigger prices (dimensionless, < 1).
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
        signed units closed, the fill price, the keeper's and the insurance fund's share of
        the penalty, and bad debt (all positions closed with negative cash) pro rata to
        notional.
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
    plan = cash
    j = j0
    if policy.order == _PROPORTIONAL:
        denom = target * mm - pen_total
        f = 1.0
        if not everything and denom > 0.0:
            f = min((target * mm - equity) / denom, 1.0)
        for k in range(lo, hi):
            u = pos_units[k]
            if u == 0.0 or f <= 0.0:  # f <= 0: healthy at the decision prices (an oracle)
                continue
            d = abs(u) if f >= 1.0 else f * abs(u)
            cash, plan, equity, signed, keeper, ins = _close_perp_nb(
                k, d, prices[k - lo], fills[k - lo], assets[pos_asset[k]].liquidation_penalty,
                ks, lo, hi, pos_units, prices, fills, cash, plan, exact)
            _emit_nb(j, t, i, pos_asset[k], signed, fills[k - lo], keeper, ins, health, 0.0,
                     rec_i, rec_f)
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
            cash, plan, equity, signed, keeper, ins = _close_perp_nb(
                k, d, p, fills[k - lo], pen, ks, lo, hi, pos_units, prices, fills, cash, plan,
                exact)
            mm -= m * d * p
            _emit_nb(j, t, i, a, signed, fills[k - lo], keeper, ins, health, 0.0, rec_i, rec_f)
            j += 1
    left = False
    for k in range(lo, hi):
        if pos_units[k] != 0.0:
            left = True
    cash, bad = write_off_nb(cash, not left)
    if bad > 0.0:
        attribute_bad_debt_nb(bad, j0, j, rec_f)
    return cash, j - j0


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


@njit
def planned_flow_nb(t, i, kind, lo, hi, pos_asset, pos_units, cash, dec, health, order,
                    sensitivity, policy, assets, ones, units, order_idx, rec_i, rec_f, flow):
    """Add one liquidatable account's planned net flow per asset to ``flow`` (USD).

    The liquidation sized at the decision prices ``dec``, run on a copy of the account
    (``units``, scratch records): every unit sold (collateral seized, longs closed) is a flow
    of ``-units x price``, every short bought back ``+units x price``. Pass 2 sizes the same
    liquidation identically (sizes never depend on the fills).

    Parameters
    ----------
    ones : ndarray, shape (A,), float64
        Execution factors of 1.
    units, order_idx : ndarray, shape (>= hi - lo,), float64 and int64
        Scratch.
    rec_i, rec_f : ndarray, shape (>= hi - lo, 3) and (>= hi - lo, 7)
        Scratch records.
    flow : ndarray, shape (A,), float64
        Net flow per asset, USD; added to.

    Other parameters are those of :func:`liquidate_lending_nb` and :func:`liquidate_perp_nb`.
    """
    n_k = hi - lo
    for k in range(n_k):
        units[k] = pos_units[lo + k]
    assets_k = pos_asset[lo:hi]
    liquidation_order_nb(kind, order, 0, n_k, assets_k, units, dec, sensitivity, assets,
                         order_idx)
    if kind == _LENDING:
        _, w = liquidate_lending_nb(t, i, 0, n_k, assets_k, units, cash, dec, dec, ones, True,
                                    order_idx, health, policy, assets, 0, rec_i, rec_f)
    else:
        _, w = liquidate_perp_nb(t, i, 0, n_k, assets_k, units, cash, dec, dec, True,
                                 order_idx, health, policy, assets, 0, rec_i, rec_f)
    for r in range(w):
        flow[rec_i[r, 2]] -= rec_f[r, 0] * rec_f[r, 1]


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
):
    """Advance every account from step ``t0`` to at most ``t1`` (exclusive), in place.

    Each step first opens every asset's market (:mod:`backtest.kernels.portfolio_market_nb`:
    price factor of cascade feedback, oracle price). Pass 1 flags the accounts liquidatable at
    their trigger prices and, with market impact, plans each one's liquidation at the decision
    prices to sum every asset's net flow (:func:`planned_flow_nb`); the flows give each asset's
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
    impact = mkt.market[0].impact_model != 0
    use_oracle = mkt.market[0].oracle_model != _ORACLE_MARKET
    count = np.zeros(n_chunks, np.int64)
    n_flag = np.zeros(n_chunks, np.int64)
    start = np.zeros(n_chunks, np.int64)
    written = np.zeros(n_chunks, np.int64)
    acc = np.zeros((n_chunks, _N_SUMMED))
    asset_acc = np.zeros((n_chunks, n_assets, N_ASSET_METRICS))
    flow_acc = np.zeros((n_chunks, n_assets))  # planned net flow per chunk and asset, USD
    cost_acc = np.zeros((n_chunks, n_assets))  # impact cost per chunk and asset, USD
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
        # pass 1: flag liquidatable accounts, reserve a record per position of each; with
        # impact, sum the net flow their liquidations plan per asset
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
            for i in range(ch * chunk_size, min(n, (ch + 1) * chunk_size)):
                lo = offsets[i]
                hi = offsets[i + 1]
                account_prices_nb(lo, hi, pos_asset, pos_units, low_t, high_t, close_t,
                                  oracle_t, trigger, use_oracle, prices, dec)
                h = account_health_nb(kind[i], lo, hi, pos_asset, pos_units, cash[i], prices,
                                      assets)
                if h < 1.0:
                    flag[i] = 1
                    f += 1
                    c += hi - lo
                    if impact:
                        planned_flow_nb(t, i, kind[i], lo, hi, pos_asset, pos_units, cash[i],
                                        dec, h, order, sensitivity[t], policy, assets, ones,
                                        plan_units, plan_order, plan_i, plan_f, flow_acc[ch])
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
                cost_acc[ch, a] = 0.0
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
            j = start[ch]
            for i in range(ch * chunk_size, min(n, (ch + 1) * chunk_size)):
                if flag[i] == 0:
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
                                                 policy, assets, j, rec_i, rec_f)
                else:
                    c1, w = liquidate_perp_nb(t, i, lo, hi, pos_asset, pos_units, c0, dec,
                                              fills, not impact, order_idx, h, policy, assets,
                                              j, rec_i, rec_f)
                cash[i] = c1
                if w == 0 and use_oracle:  # liquidatable at the oracle, not at the market
                    continue
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
                                cost_acc[ch, a] += rec_f[r, 0] * (dec[k - lo] - rec_f[r, 1])
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
                    mkt.out[t, a, _IMPACT_COST] += cost_acc[ch, a]
        rec_len[0] = dest
        if impact:
            market_step_end_nb(t, flow, mkt, outstanding, exec_f)
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
