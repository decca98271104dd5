"""numba kernels of the liquidation engine.

The hard, partial, graduated, Dutch-auction and soft-liquidation-band families; the bands' own
arithmetic is in :mod:`backtest.kernels.bands_nb`.

Account model (README.md, "The model, briefly"; ``docs/books.md``): ``equity = cash + units x
price``; a long perp or a loan has ``units > 0`` and usually ``cash < 0`` (the borrowed quote);
a short perp has ``units < 0`` and ``cash > 0``. For every product the trigger is ``equity <
m x |units| x price`` with ``m`` the product's maintenance rate (perps: the maintenance margin
rate; loans: ``1 - liquidation threshold``), so every account has a closed-form liquidation
price:

- long: ``P_liq = -cash / (units x (1 - m))``
- short: ``P_liq = cash / (|units| x (1 + m))``

These are the per-account kernels (trigger keys, health, sizes, fills, penalties, auction
arithmetic) and the processing order; the step loop that applies them to a whole book is
:func:`backtest.kernels.steps_nb.run_steps_nb`. How a liquidation's penalty, bad debt and the
insurance fund settle is the settlement layer every kernel shares,
:mod:`backtest.kernels.settlement_nb`.

Why over 400 lines: each rule is a small public kernel with its protocol sources in its
docstring, and :mod:`backtest.kernels.reference` mirrors them rule for rule; the arithmetic that
stands on its own is already in ``bands_nb``, ``impact_nb``, ``oracle_nb``, ``settlement_nb``
and ``steps_nb``.
"""

from __future__ import annotations

import numpy as np

from backtest._jit import njit, njit_parallel, prange
from backtest.kernels.enums import (
    AuctionCurve,
    FillPrice,
    PenaltyModel,
    PolicyFamily,
    Product,
)
from backtest.kernels.keepers_nb import budget_take_nb
from backtest.kernels.settlement_nb import split_penalty_nb, write_off_nb

# int constants for use inside kernels (IntEnum members are not numba constants)
_HARD = int(PolicyFamily.HARD)
_LINEAR_CURVE = int(AuctionCurve.LINEAR)
_STAIRSTEP_CURVE = int(AuctionCurve.STAIRSTEP)
_ENGLISH_CURVE = int(AuctionCurve.ENGLISH)
_GRADUATED = int(PolicyFamily.GRADUATED)
_LOAN = int(Product.LOAN)
_FILL_TRIGGER = int(FillPrice.TRIGGER)
_FILL_LIQ = int(FillPrice.LIQUIDATION_PRICE)
_HEALTH_DISCOUNT = int(PenaltyModel.HEALTH_DISCOUNT)
_HEALTH_RAMP = int(PenaltyModel.HEALTH_RAMP)

#: Relative slack of the trigger-key filter; the exact equity test decides.
KEY_SLACK = 1e-9

#: Float fields of the record buffer ``rec_f[..., k]``, in this order.
REC_F_FIELDS = (
    "units_closed",
    "fill_price",
    "keeper_fee",
    "insurance_fee",
    "bad_debt",
    "health_before",
    "equity_after",
    "decision_price",
)
#: Integer fields of the record buffer ``rec_i[..., k]``, in this order.
REC_I_FIELDS = ("step", "account", "closed", "preemptive", "auction", "zero_bid")


@njit
def trigger_key_nb(units, cash, m):
    """Return the trigger key of one account (its liquidation price, signed by side).

    Parameters
    ----------
    units : float
        Position in asset units (> 0 long, < 0 short, 0 none).
    cash : float
        Cash balance, USD.
    m : float
        Maintenance rate of the account's product, fraction of notional, ``0 <= m < 1``.

    Returns
    -------
    float
        ``P_liq > 0`` for a long, ``-P_liq < 0`` for a short, ``0.0`` for an account that can
        never be liquidated (no position, or an unlevered long), ``inf`` for a short that is
        liquidatable at any price (``cash <= 0``).
    """
    if units > 0.0:
        if cash >= 0.0:
            return 0.0
        return -cash / (units * (1.0 - m))
    if units < 0.0:
        if cash <= 0.0:
            return np.inf
        return -(cash / (-units * (1.0 + m)))
    return 0.0


@njit
def health_nb(product, units, cash, price, m):
    """Return the health of one account at ``price``; liquidatable iff health < 1.

    Perps: equity / maintenance margin = ``(cash + units x price) / (m x |units| x price)``.
    Loans: health factor = ``(1 - m) x collateral value / debt`` (Aave ``GenericLogic``
    ``calculateUserAccountData``: HF = sum(collateral x LT) / debt, with LT = 1 - m).

    Parameters
    ----------
    product : int
        :class:`Product` of the account (PERP or LOAN).
    units : float
        Position in asset units (> 0 long perp or loan collateral, < 0 short).
    cash : float
        Cash balance, USD (a loan's debt is ``-cash``).
    price : float
        Price at which health is taken, USD per unit (> 0).
    m : float
        Maintenance rate of the product, fraction of notional (``0 < m < 1``; loans: ``1 -
        liquidation threshold``).

    Returns
    -------
    float
        Health, dimensionless (a ratio): ``inf`` when there is no position or no debt, and
        below 0 for a perp with negative equity.
    """
    if units == 0.0:
        return np.inf
    notional = abs(units) * price
    if product == _LOAN:
        if units > 0.0:
            collateral = notional
            debt = -cash
        else:
            collateral = cash
            debt = notional
        if debt <= 0.0:
            return np.inf
        return (1.0 - m) * collateral / debt
    return (cash + units * price) / (m * notional)


@njit
def units_to_close_nb(
    family, product, units, cash, price, m, target, penalty, close_factor, full_close_health,
    tier_health, tier_fraction, size_rules, seize_all,
):
    """Return how many units (>= 0, <= |units|) a liquidation at ``price`` closes.

    Hard: everything (perp) or enough collateral to repay the whole debt (loan, capped at
    the collateral held). Partial: the least ``d`` that restores
    ``equity' >= target x |units'| x price`` where ``equity' = equity - penalty x d x price``
    (Drift ``calculate_base_asset_amount_to_cover_margin_shortage``: ``shortage / (price x
    (target - penalty))``), capped by the close factor on the position (perp) or on the debt
    (loan, Aave ``LiquidationLogic``), and the whole position when health is at or below
    ``full_close_health``, when ``target <= penalty`` (closing cannot restore health), or when
    equity cannot pay the penalty. ``target = inf`` closes exactly the close factor.
    Partial size rules (``size_rules``, shape (5,): full-close-below, large-position notional,
    its slice fraction, minimum remaining notional; USD, 0 = off; the fifth, the most calls per
    step, is read by :func:`step_calls_nb`): positions below the first
    close in full (Aave v3.3 ``MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD``); positions above the
    second close at most that fraction per liquidation (Hyperliquid's 20% above 100k USDC); a
    liquidation that would leave less than the minimum closes everything (Aave v3.3
    ``MIN_LEFTOVER_BASE``).
    Graduated: the fraction of the deepest tier whose health threshold is above the account's
    health (tier 0 for any liquidatable account), of the position (perp) or of the debt
    (loan); the whole if equity cannot pay the penalty of that slice.
    ``seize_all``: a hard liquidation of a loan takes all its collateral, the surplus over the
    debt and penalty credited to the borrower (Compound v3 ``absorb``).

    Parameters
    ----------
    family : int
        :class:`PolicyFamily`. HARD and GRADUATED have their own rules; any other family
        follows the PARTIAL rules (the perps of AUCTION and SOFT_BANDS policies, packed with
        close factor 1, so the whole position; their loans are sized by the auction and band
        kernels, not here).
    product : int
        :class:`Product` of the account.
    units : float
        Position in asset units (> 0 long or loan collateral, < 0 short; not 0).
    cash : float
        Cash balance, USD (a loan's debt is ``-cash``).
    price : float
        Fill price of the liquidation, USD per unit (> 0).
    m : float
        Maintenance rate of the product at this step, fraction of notional.
    target : float
        Maintenance rate a partial liquidation restores, fraction of notional (``inf``: close
        exactly the close factor).
    penalty : float
        Penalty rate, fraction of the liquidated notional (:func:`penalty_rate_nb`).
    close_factor : float
        Most of the position (perp) or debt (loan) closed per liquidation, fraction.
    full_close_health : float
        Health (dimensionless) at or below which a partial liquidation closes everything.
    tier_health : ndarray, shape (MAX_TIERS,), float64
        GRADUATED: health below which each tier applies (tier 0 first).
    tier_fraction : ndarray, shape (MAX_TIERS,), float64
        GRADUATED: fraction of the position (perp) or debt (loan) each tier closes.
    size_rules : ndarray, shape (5,), float64
        Partial size rules, USD except the fraction and the count: full-close-below notional,
        large-position notional, its slice fraction, minimum remaining notional (0: rule off),
        most liquidation calls per account per step (:func:`step_calls_nb`).
    seize_all : int
        1: a hard liquidation of a loan seizes all its collateral (Compound v3 ``absorb``).

    Returns
    -------
    float
        Units to close, asset units, ``0 <= d <= |units|`` (unsigned).
    """
    size = abs(units)
    equity = cash + units * price
    full = size
    if product == _LOAN and units > 0.0:
        # repaying the whole debt takes debt / (price x (1 - penalty)) collateral units
        full = min(size, -cash / (price * (1.0 - penalty))) if cash < 0.0 else 0.0
    if family == _HARD or equity <= 0.0:
        return size if seize_all and product == _LOAN and cash < 0.0 else full
    health = health_nb(product, units, cash, price, m)
    if family == _GRADUATED:
        # a liquidatable account is in tier 0 (health < 1 by the trigger, not recomputed here
        # at the fill price, where it can sit exactly at 1); deeper tiers by their health
        fraction = tier_fraction[0]
        for k in range(1, tier_health.shape[0]):
            if health < tier_health[k]:
                fraction = max(fraction, tier_fraction[k])
        d = fraction * full
        if equity < penalty * d * price:
            d = full
        return min(d, full)
    full_close_below = size_rules[0]
    large_usd = size_rules[1]
    large_fraction = size_rules[2]
    min_remaining = size_rules[3]
    notional = size * price
    cf = 1.0 if health <= full_close_health else close_factor
    if notional < full_close_below:
        cf = 1.0
    if large_usd > 0.0 and notional > large_usd:
        cf = min(cf, large_fraction)
    cap = cf * size
    if product == _LOAN:
        # the close factor applies to the debt; the collateral it takes is capped at what is
        # held (Aave LiquidationLogic: debtToCover = closeFactor x debt, then
        # _calculateAvailableCollateralToLiquidate caps the collateral at the balance)
        cap = (min(cf * -cash / (price * (1.0 - penalty)), size)
               if units > 0.0 and cash < 0.0 else cf * full)
    if np.isinf(target):
        d = cap
    elif target > penalty:
        d = (target * size * price - equity) / (price * (target - penalty))
        d = min(max(d, 0.0), cap)
    else:
        d = full
    if equity < penalty * d * price:
        d = full
    if min_remaining > 0.0 and d < full and (size - d) * price < min_remaining:
        d = full  # no dust: what a liquidation leaves must be worth at least min_remaining
    return min(d, full)


@njit
def step_calls_nb(
    family, product, units, cash, price, decision, liquidation_price_fill, low, high, m, target,
    penalty, close_factor, full_close_health, tier_health, tier_fraction, size_rules, seize_all,
):
    """Return the units one step's liquidation calls close and their average fill price.

    The first call closes what :func:`units_to_close_nb` says at ``price``. Partial policies
    may let keepers call again in the same step (``size_rules[4]``, the most calls per account
    per step; 0 or 1: one call): after each call, applied as :func:`apply_liquidation_nb`
    applies it (the units closed at that call's price, the penalty paid from them), they call
    again while the account is still liquidatable at the step's decision price. With fills at
    the liquidation price, the next call fills where the falling (rising, for shorts) price
    meets the account's new liquidation price, or at once at the same price if it is still
    below it: keepers watching every block take a loan in stages on the way down, each call
    near health 1. Otherwise every call fills at ``price``. Every call uses this step's
    penalty rate. Aave v2 and v3 let anyone call ``liquidationCall`` again as soon as the
    previous one is mined (``LendingPoolCollateralManager`` / ``LiquidationLogic``: no
    cooldown).

    Parameters
    ----------
    family, product : int
        :class:`PolicyFamily` and :class:`Product`; HARD and GRADUATED make one call.
    units : float
        Position in asset units (> 0 long or loan collateral, < 0 short; not 0).
    cash : float
        Cash balance, USD (a loan's debt is ``-cash``).
    price : float
        Fill price of the first call, USD per unit (> 0).
    decision : float
        The step's decision price (the trigger), USD per unit: calls go on while the account
        fails the equity test there.
    liquidation_price_fill : bool
        Fills at the liquidation price (:class:`FillPrice` LIQUIDATION_PRICE, market oracle).
    low, high : float
        The candle's low and high, USD per unit: the range a fill may take.
    m, target, penalty, close_factor, full_close_health : float
        As :func:`units_to_close_nb`.
    tier_health, tier_fraction : ndarray, shape (MAX_TIERS,), float64
        As :func:`units_to_close_nb`.
    size_rules : ndarray, shape (5,), float64
        As :func:`units_to_close_nb`; ``size_rules[4]`` the most calls per step.
    seize_all : int
        As :func:`units_to_close_nb`.

    Returns
    -------
    tuple of float
        ``(units closed, 0 <= d <= |units|, asset units; average fill price, USD per unit,
        weighted by the units of each call)``.
    """
    d = units_to_close_nb(family, product, units, cash, price, m, target, penalty, close_factor,
                          full_close_health, tier_health, tier_fraction, size_rules, seize_all)
    calls = int(size_rules[4])
    if calls <= 1 or family == _HARD or family == _GRADUATED:
        return d, price
    size = abs(units)
    total = 0.0
    value = 0.0
    u = units
    c = cash
    p = price
    for _ in range(calls):
        if d >= abs(u):  # a call closes what is left: the whole position, without rounding dust
            return size, (value + abs(u) * p) / size
        total += d
        value += d * p
        if d <= 0.0:
            break
        signed = d if u > 0.0 else -d
        c = c + signed * p - penalty * d * p
        u = u - signed
        if not (c + u * decision < m * abs(u) * decision):
            break  # healthy at the decision price: no further call this step
        if liquidation_price_fill:
            key = trigger_key_nb(u, c, m)
            p = min(max(min(p, key) if u > 0.0 else max(p, -key), low), high)
        d = units_to_close_nb(family, product, u, c, p, m, target, penalty, close_factor,
                              full_close_health, tier_health, tier_fraction, size_rules,
                              seize_all)
    if total <= 0.0:
        return 0.0, price
    return min(total, size), value / total


@njit
def clears_debt_nb(product, units, cash, d, price, penalty):
    """Return True if closing ``d`` units repays a loan's whole debt with collateral left.

    Repaying a debt ``-cash`` at ``price`` with a penalty ``penalty`` of the seized value takes
    ``-cash / (price x (1 - penalty))`` collateral units (Aave v3 ``LiquidationLogic``: the
    collateral seized is the debt covered times ``1 + bonus``, and ``penalty = bonus / (1 +
    bonus)``).

    Parameters
    ----------
    product : int
        :class:`Product` of the account; only a LOAN can clear its debt.
    units : float
        Collateral held, asset units (> 0 for a loan that owes).
    cash : float
        Cash balance, USD (< 0: the debt).
    d : float
        Collateral units the liquidation seizes (>= 0).
    price : float
        Fill price, USD per unit (> 0).
    penalty : float
        Penalty rate, fraction of the seized value (``0 <= penalty < 1``).

    Returns
    -------
    bool
        True when ``d`` covers the whole debt and penalty and leaves collateral (``d <
        units``); False for perps, loans without debt, and liquidations that take everything.
    """
    if product != _LOAN or units <= 0.0 or cash >= 0.0 or d >= units:
        return False
    return d >= -cash / (price * (1.0 - penalty))


@njit
def penalty_rate_nb(model, base, cap, health, cap_health):
    """Return the penalty rate of a liquidation (fraction of the liquidated notional).

    ``model`` is a :class:`PenaltyModel`: FIXED returns ``base``; HEALTH_DISCOUNT returns Euler
    v2's discount ``min(1 - health, cap)`` (at least 0); HEALTH_RAMP returns Aave v4's rising
    bonus as a penalty: bonuses ``b0 = base / (1 - base)`` at health 1 and ``b1 = cap / (1 -
    cap)`` at and below ``cap_health`` (< 1), linear in health between, penalty ``b / (1 +
    b)``. ``health`` is taken at the fill price. The kernel applies the health models to loans
    only (Euler and Aave are lending protocols); perps keep ``base``. Sources: Euler v2
    ``Liquidation.sol`` ``calculateMaxLiquidation``; aave/aave-v4
    ``spoke/libraries/LiquidationLogic.sol`` ``calculateLiquidationBonus``.

    Parameters
    ----------
    model : int
        :class:`PenaltyModel`.
    base : float
        The product's penalty rate, fraction of the liquidated notional (``0 <= base < 1``).
    cap : float
        Largest penalty of HEALTH_DISCOUNT / HEALTH_RAMP, fraction (``0 <= cap < 1``).
    health : float
        Account health at the fill price, dimensionless (:func:`health_nb`).
    cap_health : float
        HEALTH_RAMP: health at and below which the bonus is the cap's (``< 1``; the policy's
        ``full_close_health``).

    Returns
    -------
    float
        Penalty rate, fraction of the liquidated notional.
    """
    if model == _HEALTH_DISCOUNT:
        return min(max(1.0 - health, 0.0), cap)
    if model == _HEALTH_RAMP:
        b0 = base / (1.0 - base)
        b1 = cap / (1.0 - cap)
        if health <= cap_health:
            b = b1
        else:
            b = b0 + (b1 - b0) * max(1.0 - health, 0.0) / (1.0 - cap_health)
        return b / (1.0 + b)
    return base


@njit
def fill_price_nb(fill_mode, units, key, trigger, open_, low, high, close):
    """Return the execution price of a liquidation triggered in this candle (USD per unit).

    TRIGGER fills at the price that triggered it; LIQUIDATION_PRICE at the account's own
    liquidation price, or the open when the candle gapped through it, clipped to
    ``[low, high]``; CLOSE at the candle's close.

    Parameters
    ----------
    fill_mode : int
        :class:`FillPrice`.
    units : float
        Position in asset units (> 0 long, < 0 short); selects the side.
    key : float
        Trigger key at this step's maintenance rate (:func:`trigger_key_nb`): the liquidation
        price, USD per unit, negated for shorts.
    trigger : float
        Decision price that triggered the liquidation (the candle's low for longs, high for
        shorts, or close, per :class:`TriggerPrice`; or the oracle's), USD per unit.
    open_, low, high, close : float
        The candle, USD per unit.

    Returns
    -------
    float
        Fill price, USD per unit.
    """
    if fill_mode == _FILL_TRIGGER:
        return trigger
    if fill_mode == _FILL_LIQ:
        if units > 0.0:
            p = min(open_, key)
        else:
            p = max(open_, -key)
        return min(max(p, low), high)
    return close


@njit
def apply_liquidation_nb(units, cash, d, price, penalty, keeper_share, clears_debt):
    """Close ``d`` units (>= 0) of a position at ``price`` and run the loss waterfall.

    The penalty ``penalty x d x price`` is settled by
    :func:`backtest.kernels.settlement_nb.split_penalty_nb`: first to the keeper
    (``keeper_share`` of it, always paid, as a liquidator's bonus is), then to the insurance
    fund out of what equity remains. A closed position left with negative cash is bad debt: the
    debt is written off (cash set to 0) and the shortfall reported for the insurance fund to
    cover. When ``clears_debt`` (a loan whose whole debt is repaid, collateral left over) the
    fund's share is paid from cash only, so the loan is left with no debt. Money is conserved: the
    account's cash changes by ``units_closed_signed x price - keeper_fee - insurance_fee``
    plus the bad debt written off.

    Parameters
    ----------
    units : float
        Position before, asset units (> 0 long or loan collateral, < 0 short).
    cash : float
        Cash balance before, USD.
    d : float
        Units to close, asset units (``0 <= d``; ``d >= |units|`` closes everything).
    price : float
        Fill price, USD per unit.
    penalty : float
        Penalty rate, fraction of the liquidated notional.
    keeper_share : float
        Share of the penalty paid to the keeper, fraction; the rest goes to the insurance fund.
    clears_debt : bool
        The liquidation repays a loan's whole debt with collateral left
        (:func:`clears_debt_nb`).

    Returns
    -------
    tuple
        ``(units_after, cash_after, units_closed_signed, keeper_fee, insurance_fee,
        bad_debt)``, all float: units in asset units (closed units signed as the position),
        money in USD.
    """
    signed = d if units > 0.0 else -d
    fee = penalty * d * price
    units_after = units - signed
    if d >= abs(units):
        units_after = 0.0
    # a loan whose debt is cleared pays the fund from its cash, so no rounding dust of debt
    # survives (any surplus from a better-than-decision execution stays with the borrower)
    cash2, keeper, insurance, bad = split_penalty_nb(cash + signed * price, units_after * price,
                                                     fee, keeper_share, clears_debt,
                                                     units_after == 0.0)
    return units_after, cash2, signed, keeper, insurance, bad


@njit
def take_pays_nb(q, price, market, factor, margin, gas):
    """Return True if a keeper's take of ``q`` units at the auction ``price`` pays.

    A keeper buys ``q`` units at ``price`` and sells them at the market times the execution
    factor it expects: it takes when ``q x (market x factor - price) >= margin x q x market +
    gas``. Maker's ``Clipper.take`` leaves the decision to the keeper (it passes ``max``, the
    highest price it accepts, and the call reverts above it: dss ``clip.sol`` ``take``,
    https://github.com/makerdao/dss/blob/fa4f6630afb0624d04a003e920b0d71a00331d98/src/clip.sol);
    Maker's reference keeper bids only below the market less a profit margin (makerdao
    ``auction-keeper``, Liquidations 2.0 ``--min-profit``-style rules). The run decides the
    expected ``factor`` (:func:`run_steps_nb`, ``auction_keeper_rational``).

    Parameters
    ----------
    q : float
        Collateral units taken (> 0).
    price, market : float
        Auction price and market price (the step's close), USD per unit.
    factor : float
        Expected execution price / market price, e.g. ``1 - expected slippage``.
    margin : float
        Least profit, fraction of the market value taken (``[auction] keeper_margin``).
    gas : float
        Gas of the take, USD (0 when keepers do not require profit).

    Returns
    -------
    bool
        True when the take clears the keeper's margin and gas.
    """
    return q * (market * factor - price) >= margin * q * market + gas


@njit
def _take_need_nb(q, price, market, margin, gas):
    """Least execution factor at which a take of ``q`` units pays (see :func:`take_pays_nb`)."""
    return (price + margin * market + gas / q) / market if q > 0.0 else np.inf


@njit
def _take_after_budget_nb(i, t, d, q, candle, accounts, auction, keepers, factor):
    """Return ``d``, a take of ``q`` units cut by a budget or ``chost``, if it still pays.

    The cut take has to pay at ``factor`` (gas weighs more on fewer units); 0 when it does not.
    """
    if d <= 0.0 or d >= q:
        return d
    _, units, cash, _, _, _, auction_tic, auction_top, _ = accounts
    price = auction_price_nb(int(auction[0]), auction_top[i], t - auction_tic[i], auction[1],
                             auction[2], auction[3])
    gas = keepers[2] if keepers[1] else 0.0
    return d if take_pays_nb(d, price, candle[3], factor, auction[6], gas) else 0.0


#: Units of a decided liquidation that a volume or capital budget still covers (the keepers'
#: budget rule, written once in :mod:`backtest.kernels.keepers_nb`).
_budget_take_nb = budget_take_nb


@njit
def auction_price_nb(curve, top, dur, tau, cut, step):
    """Return a Dutch auction's price ``dur`` steps after its (re)start (Maker ``abaci.sol``).

    Parameters
    ----------
    curve : int
        :class:`AuctionCurve`.
    top : float
        Starting price, USD per unit.
    dur : int
        Steps since the kick or last reset (>= 0).
    tau, cut, step : float
        LINEAR: steps to zero; STAIRSTEP: multiplier ``cut`` every ``step`` steps;
        EXPONENTIAL: multiplier ``cut`` per step.

    Returns
    -------
    float
        Auction price, USD per unit (0 once a LINEAR auction has run ``tau`` steps; ``top``
        for ENGLISH, whose ``top`` is the step's winning bid per unit).
    """
    if curve == _ENGLISH_CURVE:
        return top
    if curve == _LINEAR_CURVE:
        return top * (tau - dur) / tau if dur < tau else 0.0
    if curve == _STAIRSTEP_CURVE:
        return top * cut ** np.floor(dur / step)
    return top * cut ** dur


@njit
def apply_auction_take_nb(units, cash, q, market, price, penalty_share):
    """Settle a keeper's take of ``q`` collateral units at the auction ``price``.

    The proceeds ``q x price`` pay the tab (debt x (1 + bonus)) pro rata: its penalty part
    ``penalty_share = bonus / (1 + bonus)`` goes to the insurance fund (Maker's ``vow``), the
    rest repays the debt. The keeper buys at ``price`` and sells at ``market``: its discount
    ``q x (market - price)`` is booked as the keeper fee, so the account's cash changes by
    ``q x market - keeper fee - insurance fee``. A take that covers the tab leaves the loan
    with no debt and its remaining collateral; one that exhausts the collateral first pays the
    debt, then as much of the penalty as the proceeds allow, and leaves any unpaid debt as bad
    debt. Source: Maker dss ``clip.sol`` ``take`` (the tab is ``debt x chop``; proceeds go to
    the ``vow``).

    Parameters
    ----------
    units : float
        Collateral held by the loan, asset units (> 0).
    cash : float
        Cash balance, USD (< 0: the debt).
    q : float
        Collateral units the keeper takes (``0 < q <= units``).
    market : float
        Market price, USD per unit (the step's close).
    price : float
        Auction price, USD per unit (:func:`auction_price_nb`).
    penalty_share : float
        Penalty part of the tab, ``bonus / (1 + bonus)``, fraction.

    Returns
    -------
    tuple
        ``(units_after, cash_after, keeper_fee, insurance_fee, bad_debt, tab_covered)``:
        asset units, then USD (float), then a bool that is True when the take paid the whole
        tab and left collateral.
    """
    keeper = q * (market - price)
    owe = q * price
    cash1 = cash + owe
    units_after = units - q
    covered = owe >= -cash / (1.0 - penalty_share) * (1.0 - 1e-12)
    if q >= units:
        units_after = 0.0
        insurance = min(max(cash1, 0.0), owe * penalty_share)
    elif covered:  # what is left above zero debt is the penalty: no dust of debt survives
        insurance = max(cash1, 0.0)
    else:  # a partial take (volume or capital budget) pays the tab pro rata
        insurance = owe * penalty_share
    cash2, bad = write_off_nb(cash1 - insurance, units_after == 0.0)
    return units_after, cash2, keeper, insurance, bad, covered and units_after > 0.0


@njit
def _chost_take_nb(i, t, q, accounts, auction, penalty):
    """Cut a budget-limited take of ``q`` units by Maker's ``chost`` rule (clip.sol ``take``).

    A take that neither pays the whole tab nor buys the whole lot must leave at least
    ``chost`` (``auction[7]``, USD) of tab: it is reduced to leave exactly ``chost``, and
    refused (0) when the tab itself is at most ``chost``. Whole takes pass unchanged.
    """
    _, units, cash, _, _, _, auction_tic, auction_top, _ = accounts
    chost = auction[7]
    price = auction_price_nb(int(auction[0]), auction_top[i], t - auction_tic[i], auction[1],
                             auction[2], auction[3])
    tab = -cash[i] / (1.0 - penalty)
    owe = q * price
    if chost <= 0.0 or q >= units[i] or owe >= tab * (1.0 - 1e-12) or tab - owe >= chost:
        return q
    if tab <= chost:
        return 0.0
    return (tab - chost) / price


@njit_parallel
def trigger_keys_nb(product, units, cash, maintenance_rate):
    """Return the trigger key of every account (see :func:`trigger_key_nb`), in parallel.

    Parameters
    ----------
    product : ndarray, shape (N,), int8
        :class:`Product` of each account.
    units, cash : ndarray, shape (N,), float64
        Positions (asset units) and cash balances (USD).
    maintenance_rate : ndarray, shape (N_PRODUCTS,), float64
        Maintenance rate of each product, fraction of notional.

    Returns
    -------
    ndarray, shape (N,), float64
        Trigger keys: liquidation prices in USD per unit, negated for shorts; 0 for accounts
        that cannot be liquidated, ``inf`` for shorts liquidatable at any price.
    """
    out = np.empty(units.shape[0])
    for i in prange(units.shape[0]):
        out[i] = trigger_key_nb(units[i], cash[i], maintenance_rate[product[i]])
    return out


@njit_parallel
def gather_nb(values, index):
    """Return ``values[index]`` computed in parallel (puts a book into processing order).

    Parameters
    ----------
    values : ndarray, shape (N,), any dtype
        Per-account values (e.g. units in asset units, cash in USD, product codes).
    index : ndarray, shape (M,), int64
        Positions to read, each in ``[0, N)`` (e.g. :func:`liquidation_order_nb`).

    Returns
    -------
    ndarray, shape (M,), dtype of ``values``
        ``out[i] = values[index[i]]``; same units as ``values``.
    """
    out = np.empty(index.shape[0], values.dtype)
    for i in prange(index.shape[0]):
        out[i] = values[index[i]]
    return out


@njit_parallel
def scatter_nb(values, index):
    """Return ``out`` with ``out[index[i]] = values[i]``, in parallel: undoes :func:`gather_nb`.

    Parameters
    ----------
    values : ndarray, shape (N,), any dtype
        Per-account values in processing order; same units on the way out.
    index : ndarray, shape (N,), int64
        A permutation of ``0..N-1`` (the order passed to :func:`gather_nb`); a repeated
        position would leave some of ``out`` unwritten.

    Returns
    -------
    ndarray, shape (N,), dtype of ``values``
        The values back in book order.
    """
    out = np.empty(values.shape[0], values.dtype)
    for i in prange(values.shape[0]):
        out[index[i]] = values[i]
    return out


@njit
def liquidation_order_nb(product, units, cash, n_buckets):
    """Return a processing order that groups accounts with close liquidation prices.

    Accounts are grouped by (side, product), with accounts without a position last, and
    within a group bucketed by ``log(-cash / units)`` into ``n_buckets`` equal-width buckets
    over the book's range: a long's liquidation price is ``(-cash / units) / (1 - m)`` and a
    short's ``(-cash / units) / (1 + m)``, both increasing in ``-cash / units`` whatever the
    maintenance rate ``m``, so one order serves every policy. A stable counting sort, O(N),
    deterministic.

    The group code ``(2 if short else 0) + product`` is widened to int64 before it is scaled
    by ``n_buckets``: with the JIT off (``LIQBT_DISABLE_JIT=1``) an element of an int8 array
    stays int8 under NumPy's rules and ``group x n_buckets`` overflows it (NumPy raises);
    numba widens on its own. Keep the widening here rather than in callers, so every caller
    may pass the book's int8 codes whatever the JIT setting.

    Parameters
    ----------
    product : ndarray, shape (N,), int8
        :class:`Product` of each account (any integer dtype works).
    units, cash : ndarray, shape (N,), float64
        Positions (asset units) and cash balances (USD).
    n_buckets : int
        Buckets per group (``backtest.engine.dispatch.ORDER_BUCKETS``, 2**16).

    Returns
    -------
    ndarray, shape (N,), int64
        Account indices in processing order, a permutation of ``0..N-1``.
    """
    n = units.shape[0]
    lo = np.inf
    hi = -np.inf
    for i in range(n):
        if units[i] != 0.0:
            a = -cash[i] / units[i]
            if a > 0.0 and np.isfinite(a):
                la = np.log(a)
                lo = min(lo, la)
                hi = max(hi, la)
    scale = (n_buckets - 1) / (hi - lo) if hi > lo else 0.0
    n_keys = 5 * n_buckets
    keys = np.empty(n, np.int64)
    counts = np.zeros(n_keys + 1, np.int64)
    for i in range(n):
        u = units[i]
        if u == 0.0:
            k = 4 * n_buckets
        else:
            # widened: with the JIT off an int8 code stays int8 and g x n_buckets overflows
            g = (2 if u < 0.0 else 0) + np.int64(product[i])
            a = -cash[i] / u
            b = 0
            if a > 0.0 and np.isfinite(a):
                b = min(n_buckets - 1, max(0, int((np.log(a) - lo) * scale)))
            elif a > 0.0:
                b = n_buckets - 1
            k = g * n_buckets + b
        keys[i] = k
        counts[k + 1] += 1
    for k in range(n_keys):
        counts[k + 1] += counts[k]
    order = np.empty(n, np.int64)
    for i in range(n):
        k = keys[i]
        order[counts[k]] = i
        counts[k] += 1
    return order
