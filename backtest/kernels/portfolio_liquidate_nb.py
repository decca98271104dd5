"""Liquidation of one portfolio account: lending seizures and perp closes, planned and filled.

Rules (``docs/portfolios.md``):

- lending: when ``HF < 1`` a liquidator repays at most ``close_factor`` of the debt (all of
  it once ``HF <= full_close_health_factor``, the v3.0-3.2 rule) and seizes collateral worth
  ``repaid x (1 + bonus_i)``, collateral by collateral in the order policy's order (or pro
  rata); ``protocol_fee`` of the bonus goes to the insurance fund (Aave's
  ``liquidationProtocolFee``) out of the equity left (the single-asset waterfall:
  :func:`backtest.kernels.settlement_nb.lending_fund_fee_nb`), the rest is the keeper's. Once
  no collateral is left, the remaining debt is bad debt (Aave v3.3 ``_burnBadDebt``,
  https://github.com/aave-dao/aave-v3-origin/tree/fd1fbd9150426ca8ace9cee45b4acf912ae84f5b).
- perps (cross and isolated): when ``equity < MM`` positions are closed in the order policy's
  order, each just enough to restore ``equity >= target_health x MM`` (Drift's
  ``calculate_base_asset_amount_to_cover_margin_shortage``) or entirely, with a penalty
  ``penalty_i x closed notional`` split keeper / insurance fund (the keeper is always paid, the
  fund out of the equity left: :func:`backtest.kernels.settlement_nb.split_penalty_nb`, the
  single-asset kernel's rule). An account with ``equity <= 0`` is closed entirely; a closed
  account left with negative cash is bad debt.

Every seizure and close is sized at the decision prices and filled at decision price x the
asset's execution factor (:mod:`backtest.kernels.portfolio_market_nb`); the sizing runs its
own cash (the plan), so sizes never depend on the fills and the flow a step plans
(:func:`backtest.kernels.portfolio_keepers_nb.plan_liquidation_nb`) is the flow it executes (without
impact: ``exact``, one cash).

Keepers' capital (``docs/portfolios.md``): every seizure or close of asset ``a`` is cut to what
is left of the asset's unit budget (:func:`backtest.kernels.keepers_nb.asset_budget_take_nb`;
none left: the position is skipped); an infinite ``budget[a]`` leaves every size as it was.

Why over 400 lines: it is the liquidation of one portfolio account (lending seizures, perp
closes, the keepers' capital cuts), rule by rule next to its twin in
:mod:`backtest.kernels.portfolio_reference`; the plan and the market are already in
``portfolio_keepers_nb`` and ``portfolio_market_nb``.
"""

from __future__ import annotations

from backtest._jit import njit
from backtest.kernels.keepers_nb import asset_budget_take_nb
from backtest.kernels.portfolio_enums import AccountKind, OrderPolicy
from backtest.kernels.settlement_nb import (
    attribute_bad_debt_nb,
    lending_fund_fee_nb,
    split_penalty_nb,
    write_off_nb,
)

_LENDING = int(AccountKind.LENDING)
_PROPORTIONAL = int(OrderPolicy.PROPORTIONAL)

#: Shortage below this fraction of the maintenance margin counts as restored (rounding).
SHORTAGE_TOL = 1e-12


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
def _budgeted_seizure_nb(seized, repay, p, b, asset, budget, used, dust):
    """Return the part of a seizure the keepers' capital left covers: ``(seized, repay)``.

    (0, 0) when none; a seizure cut short repays what it is worth at ``p`` with bonus ``b``.
    """
    take = asset_budget_take_nb(seized, asset, budget, used, dust)
    if take <= 0.0:
        return 0.0, 0.0
    if take < seized:
        return take, take * p / (1.0 + b)
    return seized, repay


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
                         order_idx, health, policy_arr, assets, j0, rec_i, rec_f, budget, used,
                         dust):
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
    budget, used, dust : ndarray, shape (A,), float64
        Keepers' unit budget of each asset in the step (``inf``: none), the units already
        taken from it (updated) and the remainder that counts as rounding (module docstring).

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
            seized, repay = _budgeted_seizure_nb(seized, repay, p, b, pos_asset[k], budget,
                                                 used, dust)
            if seized <= 0.0:
                continue
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
            seized, repay = _budgeted_seizure_nb(seized, repay, p, b, pos_asset[k], budget,
                                                 used, dust)
            if seized <= 0.0:
                continue
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
                      health, policy_arr, assets, j0, rec_i, rec_f, budget, used, dust):
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
    budget, used, dust : ndarray, shape (A,), float64
        Keepers' unit budget of each asset in the step (``inf``: none), the units already
        taken from it (updated) and the remainder that counts as rounding (module docstring).

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
            d = asset_budget_take_nb(d, pos_asset[k], budget, used, dust)
            if d <= 0.0:
                continue
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
            d = asset_budget_take_nb(d, a, budget, used, dust)
            if d <= 0.0:
                continue
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


__all__ = ["SHORTAGE_TOL", "liquidate_lending_nb", "liquidate_perp_nb"]
