"""numba kernels of the liquidation engine (hard, partial, graduated, Dutch-auction and
soft-liquidation-band families; the bands' own arithmetic is in :mod:`backtest.kernels.bands_nb`).

Account model (README.md, "The model, briefly"; ``docs/books.md``): ``equity = cash + units x
price``; a long perp or a loan has ``units > 0`` and usually ``cash < 0`` (the borrowed quote);
a short perp has ``units < 0`` and ``cash > 0``. For every product the trigger is ``equity <
m x |units| x price`` with ``m`` the product's maintenance rate (perps: the maintenance margin
rate; loans: ``1 - liquidation threshold``), so every account has a closed-form liquidation
price:

- long: ``P_liq = -cash / (units x (1 - m))``
- short: ``P_liq = cash / (|units| x (1 + m))``

The step loop is time-major; within a step accounts are processed in fixed-size chunks in
parallel (``prange``). Per-chunk accumulators are summed in chunk order after each step, and
each chunk owns a slice of the record buffers, so results are bit-identical whatever the
number of threads. A cheap filter on the stored liquidation price (the *trigger key*) skips
accounts that cannot trigger; the decision itself is the exact equity test, identical to the
reference twin in :mod:`backtest.kernels.reference`.

Why over 400 lines: it is the single-asset engine's step loop (:func:`run_steps_nb`) with the
per-account rules it calls (sizing, penalty, fill price, loss waterfall, Dutch-auction takes),
each a small public kernel that :mod:`backtest.kernels.reference` mirrors rule for rule; the
arithmetic that stands on its own is already in ``bands_nb``, ``impact_nb`` and ``oracle_nb``.
"""

from __future__ import annotations

import numpy as np

from backtest._jit import njit, njit_parallel, prange
from backtest.kernels.enums import (
    N_SUMMED_METRICS,
    AuctionCurve,
    FillPrice,
    OracleModel,
    PenaltyModel,
    PolicyFamily,
    Product,
    StepMetric,
    TriggerPrice,
    Waterfall,
)
from backtest.kernels.bands_nb import (
    apply_bands_liquidation_nb,
    apply_soft_trade_nb,
    bands_health_nb,
    bands_key_nb,
    leave_soft_liquidation_nb,
    soft_trade_nb,
)
from backtest.kernels.impact_nb import (
    displacement_factor_nb,
    displacement_update_nb,
    equivalent_flow_nb,
    execution_factor_nb,
)
from backtest.kernels.oracle_nb import oracle_price_nb

# int constants for use inside kernels (IntEnum members are not numba constants)
_HARD = int(PolicyFamily.HARD)
_AUCTION = int(PolicyFamily.AUCTION)
_SOFT_BANDS = int(PolicyFamily.SOFT_BANDS)
_LINEAR_CURVE = int(AuctionCurve.LINEAR)
_STAIRSTEP_CURVE = int(AuctionCurve.STAIRSTEP)
_AUCTIONS_KICKED = int(StepMetric.AUCTIONS_KICKED)
_AUCTION_INCENTIVES = int(StepMetric.AUCTION_INCENTIVES)
# decision kinds returned by _decide_nb
_KIND_LIQUIDATION = 0
_KIND_PREEMPTIVE = 1
_KIND_KICK = 2  # start (or restart) a Dutch auction
_KIND_TAKE = 3  # a keeper takes collateral from a running auction
_KIND_BANDS_HARD = 4  # hard liquidation of a loan in bands (may close 0 units: all stablecoin)
_SOFT_SOLD = int(StepMetric.SOFT_SOLD_UNITS)
_SOFT_BOUGHT = int(StepMetric.SOFT_BOUGHT_UNITS)
_SOFT_PROCEEDS = int(StepMetric.SOFT_PROCEEDS)
_SOFT_LOSS = int(StepMetric.SOFT_LOSS)
_N_SOFT = int(StepMetric.N_SOFT_LIQUIDATION)
_GRADUATED = int(PolicyFamily.GRADUATED)
_LOAN = int(Product.LOAN)
_EXTREME = int(TriggerPrice.EXTREME)
_FILL_TRIGGER = int(FillPrice.TRIGGER)
_FILL_LIQ = int(FillPrice.LIQUIDATION_PRICE)
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
_INS_DRAW = int(StepMetric.INSURANCE_DRAW)
_INS_FUND = int(StepMetric.INSURANCE_FUND)
_SOCIALISED = int(StepMetric.SOCIALISED_LOSS)
_ADL = int(Waterfall.ADL)
_SURPLUS_BUFFER = int(Waterfall.SURPLUS_BUFFER)
_DEBT_HEALED = int(StepMetric.DEBT_HEALED)
_DEBT_QUEUED = int(StepMetric.DEBT_QUEUED)
_TAKE_FACTOR = int(StepMetric.TAKE_FACTOR)
_FUNDING = int(StepMetric.FUNDING_PAID)
_SLICE = int(StepMetric.SLICE_FACTOR)
_MARGIN_SCALE = int(StepMetric.MARGIN_SCALE)
_N_PREEMPTIVE = int(StepMetric.N_PREEMPTIVE)
_PREEMPTIVE_NOTIONAL = int(StepMetric.PREEMPTIVE_NOTIONAL)
_HEALTH_DISCOUNT = int(PenaltyModel.HEALTH_DISCOUNT)
_HEALTH_RAMP = int(PenaltyModel.HEALTH_RAMP)
_PERP = int(Product.PERP)
_N_SUMMED = N_SUMMED_METRICS
_ORACLE_MARKET = int(OracleModel.MARKET)
_ORACLE_MARK = int(OracleModel.MARK)
_FILL_CLOSE = int(FillPrice.CLOSE)

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
REC_I_FIELDS = ("step", "account", "closed", "preemptive", "auction")


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
    Partial size rules (``size_rules``, shape (4,): full-close-below, large-position notional,
    its slice fraction, minimum remaining notional; USD, 0 = off): positions below the first
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
    size_rules : ndarray, shape (4,), float64
        Partial size rules, USD except the fraction: full-close-below notional, large-position
        notional, its slice fraction, minimum remaining notional (0: rule off).
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
    cap = cf * full if product == _LOAN else cf * size
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

    The penalty ``penalty x d x price`` goes first to the keeper (``keeper_share`` of it,
    always paid, as a liquidator's bonus is), then to the insurance fund out of what equity
    remains. A closed position left with negative cash is bad debt: the debt is written off
    (cash set to 0) and the shortfall reported for the insurance fund to cover. When
    ``clears_debt`` (a loan whose whole debt is repaid, collateral left over) the fund's share
    is paid from cash only, so the loan is left with no debt. Money is conserved: the
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
    keeper = keeper_share * fee
    units_after = units - signed
    if d >= abs(units):
        units_after = 0.0
    cash1 = cash + signed * price - keeper
    equity1 = cash1 + units_after * price
    # a loan whose debt is cleared pays the fund from its cash, so no rounding dust of debt
    # survives (any surplus from a better-than-decision execution stays with the borrower)
    available = cash1 if clears_debt else equity1
    insurance = min(fee - keeper, max(available, 0.0))
    cash2 = cash1 - insurance
    bad = 0.0
    if units_after == 0.0 and cash2 < 0.0:
        bad = -cash2
        cash2 = 0.0
    return units_after, cash2, signed, keeper, insurance, bad


@njit
def _insurance_waterfall_nb(t, step_out, market_state, waterfall, last):
    """Cover step ``t``'s bad debt: insurance fund first, then ADL or socialised loss.

    The fund receives the step's insurance fees before it pays. With ADL, the perp share of the
    uncovered shortfall is left pending in ``market_state[7:12]`` (returns True); the loan share
    is always socialised. Returns False when nothing is pending. With SURPLUS_BUFFER the
    shortfall (and unpaid keeper incentives) joins the debt queue ``market_state[13]`` instead
    (:func:`surplus_buffer_nb`); ``last`` is the window's last step, where the queue is
    flopped (socialised).
    """
    fund = market_state[6] + step_out[t, _INSURANCE]
    # Dutch auctions' keeper incentives are the protocol's cost (Maker mints them as sin)
    incentives = step_out[t, _AUCTION_INCENTIVES]
    paid = min(fund, incentives)
    fund -= paid
    bad = step_out[t, _BAD_DEBT]
    draw = min(fund, bad)
    fund -= draw
    if waterfall == _SURPLUS_BUFFER:
        fund, healed, queued, flopped = surplus_buffer_nb(
            fund, market_state[13], incentives - paid + bad - draw, t == last)
        market_state[6] = fund
        market_state[13] = queued
        step_out[t, _INS_DRAW] = draw + paid + healed
        step_out[t, _INS_FUND] = fund
        step_out[t, _DEBT_HEALED] = healed
        step_out[t, _DEBT_QUEUED] = queued
        step_out[t, _SOCIALISED] = flopped
        return False
    market_state[6] = fund
    step_out[t, _INS_DRAW] = draw + paid
    step_out[t, _INS_FUND] = fund
    step_out[t, _SOCIALISED] = incentives - paid
    shortfall = bad - draw
    if shortfall <= 0.0:
        return False
    perp = step_out[t, _BAD_LONG] + step_out[t, _BAD_SHORT]
    if waterfall != _ADL or perp <= 0.0:
        step_out[t, _SOCIALISED] += shortfall
        return False
    from_longs = shortfall * step_out[t, _BAD_LONG] / bad
    from_shorts = shortfall * step_out[t, _BAD_SHORT] / bad
    step_out[t, _SOCIALISED] += shortfall - from_longs - from_shorts
    market_state[7] = from_longs
    market_state[8] = step_out[t, _BANKRUPT_UNITS_LONG]
    market_state[9] = from_shorts
    market_state[10] = step_out[t, _BANKRUPT_UNITS_SHORT]
    market_state[11] = t
    return True


@njit
def surplus_buffer_nb(fund, queued, shortfall, last):
    """Queue a step's uncovered shortfall in Maker's surplus buffer and heal the queue.

    Maker's ``Vow`` (dss ``vow.sol``, https://github.com/makerdao/dss/blob/fa4f6630afb0624d04a003e920b0d71a00331d98/src/vow.sol):
    liquidation penalties accrue to the surplus (the fund here); bad debt the surplus does not
    cover at once is queued (``fess``) and cancelled against surplus that arrives later
    (``heal``); debt auctions (``flop``, new MKR) cover it only when the surplus is exhausted.
    The step's own bad debt and incentives have already been drawn from ``fund``; what is left
    of it heals debt queued in earlier steps, then ``shortfall`` joins the queue. At the
    window's ``last`` step what is still queued is flopped: socialised, borne outside the book.

    Parameters
    ----------
    fund : float
        Surplus after the step's fees and draws, USD (>= 0).
    queued : float
        Debt queued in earlier steps, USD (>= 0).
    shortfall : float
        The step's bad debt and keeper incentives the surplus did not cover, USD (>= 0).
    last : bool
        Whether this is the window's last step.

    Returns
    -------
    tuple of float
        ``(fund, healed, queued, flopped)``, USD: the surplus after healing, the earlier debt
        it healed, the queue after the step, and the debt flopped (socialised) at the last
        step. ``queued + shortfall = healed + queued' + flopped``.
    """
    healed = min(fund, queued)
    fund -= healed
    queued = queued - healed + shortfall
    flopped = 0.0
    if last:
        flopped = queued
        queued = 0.0
    return fund, healed, queued, flopped


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
    """A take of ``q`` units cut to ``d`` by a budget or ``chost`` still has to pay at
    ``factor`` (gas weighs more on fewer units); 0 when it does not."""
    if d <= 0.0 or d >= q:
        return d
    _, units, cash, _, _, _, auction_tic, auction_top, _ = accounts
    price = auction_price_nb(int(auction[0]), auction_top[i], t - auction_tic[i], auction[1],
                             auction[2], auction[3])
    gas = keepers[2] if keepers[1] else 0.0
    return d if take_pays_nb(d, price, candle[3], factor, auction[6], gas) else 0.0


@njit
def _budget_take_nb(d, budget, used, dust):
    """Units of a decided liquidation ``d`` that a volume budget still covers (0: none)."""
    if budget == np.inf:
        return d
    take = min(d, budget - used)
    return take if take > dust else 0.0


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
        Auction price, USD per unit (0 once a LINEAR auction has run ``tau`` steps).
    """
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
    cash2 = cash1 - insurance
    bad = 0.0
    if units_after == 0.0 and cash2 < 0.0:
        bad = -cash2
        cash2 = 0.0
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
    (:func:`_auction_decision_nb`); a liquidatable loan not yet in one is kicked. Family
    SOFT_BANDS (loans): :func:`_bands_decision_nb`.

    Returns
    -------
    tuple
        ``(decision price, units to close, liquidatable, penalty rate, kind)``: units 0
        means no liquidation now, either because the account is healthy or because no keeper
        acts yet (latency, cooldown, or the keeper fee would not cover gas plus expected
        impact); kind is liquidation, pre-emptive, auction kick/reset or auction take.
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
    if latency > 0 and (flagged[i] < 0 or t < flagged[i] + latency):
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
    d = units_to_close_nb(
        family, prod, u, c, p, m, t_rate[prod], pen, close_factor, full_close_health,
        tier_health, tier_fraction, size_rules, seize_all,
    )
    if requires_profit and keeper_share * pen * d * p < gas + slippage * d * p:
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
    if latency > 0 and (flagged[i] < 0 or t < flagged[i] + latency):
        return 0.0, 0.0, True, 0.0, _KIND_LIQUIDATION
    p = candle[3] if fill_mode == _FILL_CLOSE else x
    if requires_profit and keeper_share * max(c + u * p, 0.0) < gas + slippage * u * p:
        return 0.0, 0.0, True, 0.0, _KIND_LIQUIDATION
    return p, u, True, 0.0, _KIND_BANDS_HARD


@njit
def _auction_decision_nb(i, t, candle, x_long, accounts, auction, penalty, keepers):
    """Decide a loan in a running Dutch auction at step ``t`` (see :func:`_decide_nb`).

    The auction resets (kind KICK, restarting at the decision price x ``buf``) when it has
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
    top = auction_top[i]
    price = auction_price_nb(int(auction[0]), top, dur, auction[1], auction[2], auction[3])
    market = candle[3]
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


@njit_parallel
def run_steps_nb(
    t0,
    t1,
    open_,
    high,
    low,
    close,
    depth,
    volume,
    gas_usd,
    risk,
    mark,
    trigger_mode,
    fill_mode,
    policy,
    market,
    market_state,
    product,
    units,
    cash,
    key,
    flagged,
    n_liquidations,
    first_step,
    last_step,
    auction_tic,
    auction_top,
    bands,
    liquidated_notional,
    penalties_paid,
    bad_debt,
    funding_paid,
    funding_rate,
    chunk_size,
    step_out,
    rec_len,
    rec_i,
    rec_f,
    impact_baseline,
):
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
    volume or capital budget (or ``chost``) must still pay at ``min(f, E)``. Otherwise ``f =
    1 -`` the last step's execution slippage.

    Parameters
    ----------
    t0, t1 : int
        Step range; steps index the price arrays.
    open_, high, low, close : ndarray, shape (T,), float64
        Historical candle prices, USD per unit.
    depth : ndarray, shape (T,), float64
        Flow that moves the price by 1% in each step, USD.
    volume : ndarray, shape (T,), float64
        Traded volume of each step, asset units (caps liquidations under order slicing).
    gas_usd : ndarray, shape (T,), float64
        Gas cost of one liquidation in each step, USD (used when keepers require profit).
    risk : ndarray, shape (T, N_RISK_INPUTS), float64
        Per-step risk inputs (:class:`RiskInput`): perp maintenance margin scale (dynamic
        margin; 1 = the policy's rate) and the predictive overlay's log-price shift.
    mark : ndarray, shape (T, 3), float64
        Low, high and close of the mark price per step (used by ``OracleModel.MARK``).
    trigger_mode, fill_mode : int
        :class:`TriggerPrice` and :class:`FillPrice` values.
    policy : ndarray, shape (1,), dtype ``POLICY_DTYPE``
        Policy parameters (:mod:`backtest.kernels.enums`).
    market : ndarray, shape (1,), dtype ``MARKET_DTYPE``
        Impact and cascade parameters.
    market_state : ndarray, shape (MARKET_STATE_SIZE,), float64
        See ``MARKET_STATE_SIZE`` in :mod:`backtest.kernels.enums` (outstanding liquidation
        flow, price factor, slippage, oracle, insurance fund, pending ADL); updated.
    product : ndarray, shape (N,), int8
        :class:`Product` of each account.
    units, cash, key : ndarray, shape (N,), float64
        Account state (asset units, USD, trigger key from :func:`trigger_key_nb`); updated.
    flagged : ndarray, shape (N,), int32
        First step at which an account was seen liquidatable but not liquidated (keeper
        latency or unprofitable), -1 if none; updated.
    auction_tic, auction_top : ndarray, shape (N,), int32 and float64
        Step a loan's Dutch auction (re)started (-1: none) and its starting price, USD; updated.
    bands : ndarray, shape (N, N_BAND_FIELDS) or (0, N_BAND_FIELDS), float64
        Band state of each loan (family SOFT_BANDS, from
        :func:`backtest.kernels.bands_nb.place_bands_nb`; ``BAND_FIELDS``); updated.
    n_liquidations, first_step, last_step : ndarray, shape (N,), int32
        Per-account event count and first/last liquidation step (-1: none); updated.
    liquidated_notional, penalties_paid, bad_debt : ndarray, shape (N,), float64
        Per-account totals, USD; updated.
    funding_paid : ndarray, shape (N,), float64
        Funding paid by each perp account (negative: received), USD; updated.
    funding_rate : ndarray, shape (T,), float64
        Funding rate settled at the start of each step, fraction (NaN: none). Perp accounts
        pay ``units x open x rate`` (longs pay shorts when positive), at the simulated open.
    chunk_size : int
        Accounts per chunk; fixes the summation order (not the thread count).
    step_out : ndarray, shape (T, N_STEP_METRICS), float64
        Per-step aggregates (:class:`StepMetric`); rows ``t0..`` are written.
    rec_len : ndarray, shape (1,), int64
        Records held in the buffer; updated.
    rec_i : ndarray, shape (cap, 5), int64
        Integer record fields (``REC_I_FIELDS``).
    rec_f : ndarray, shape (cap, 8), float64
        Float record fields (``REC_F_FIELDS``).
    impact_baseline : ndarray, shape (T,), float64
        Net liquidation flow per step already in the historical prices (the as-happened
        policy's, USD, > 0 buys); impact and cascade feedback use the step's net flow minus it.

    Returns
    -------
    int
        The step after the last one simulated: ``t1``, or earlier when the next step's records
        do not fit in the buffer (flush it, or grow it if it is empty, then call again).
    """
    n = units.shape[0]
    n_chunks = (n + chunk_size - 1) // chunk_size
    cap = rec_i.shape[0]
    rec = policy[0]
    keeper_share = rec.keeper_share
    m_rate = rec.maintenance_rate
    p_rate = rec.penalty_rate
    size_rules = np.empty(4)
    size_rules[0] = rec.full_close_below_usd
    size_rules[1] = rec.large_position_usd
    size_rules[2] = rec.large_position_fraction
    size_rules[3] = rec.min_remaining_usd
    m_step = m_rate.copy()  # this step's rates: dynamic margin scales the perps'
    t_step = rec.target_rate.copy()
    preempt = rec.preempt_fraction > 0.0
    accounts = (product, units, cash, key, flagged, last_step, auction_tic, auction_top, bands)
    # Dutch auction parameters as an array (a mixed tuple cannot enter the parallel loops)
    auction = np.empty(8)
    auction[0] = rec.auction_curve
    auction[1] = rec.auction_tau_steps
    auction[2] = rec.auction_cut
    auction[3] = rec.auction_step_steps
    auction[4] = rec.auction_tail_steps
    auction[5] = rec.auction_cusp
    auction[6] = rec.auction_keeper_margin
    auction[7] = rec.auction_chost_usd
    auction_buf = rec.auction_buf
    auction_tip = rec.auction_tip_usd
    auction_chip = rec.auction_chip
    loan_penalty = p_rate[_LOAN]
    auctions = rec.family == _AUCTION
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
    take_need = np.zeros(n_chunks)  # least execution factor at which a chunk's takes pay
    offset = np.zeros(n_chunks, np.int64)
    active = np.empty(n_chunks, np.int64)
    candle = np.empty(4)
    chunk_max = np.empty(n_chunks)
    chunk_max_short = np.empty(n_chunks)
    for ch in prange(n_chunks):
        chunk_max[ch], chunk_max_short[ch] = _chunk_bounds_nb(key, ch, chunk_size)
        if auctions:
            for i in range(ch * chunk_size, min(n, (ch + 1) * chunk_size)):
                if auction_tic[i] >= 0:
                    in_auction[ch] += 1
    for t in range(t0, t1):
        # past price moves displace this step's prices (cascade feedback); read at this step's
        # depth, the displacement is an outstanding flow that this step's flow moves further
        outstanding = 0.0
        if cascade:
            market_state[2] = displacement_factor_nb(market_state)
            outstanding = equivalent_flow_nb(impact_model, market_state[2], depth[t])
        f = market_state[2]
        candle[0] = open_[t] * f
        candle[1] = high[t] * f
        candle[2] = low[t] * f
        candle[3] = close[t] * f
        rate = funding_rate[t]
        # a funding settlement (not NaN, not zero), once even if the step is restarted after a
        # record-buffer flush
        if rate == rate and rate != 0.0 and market_state[12] < t:
            market_state[12] = t
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
        take_factor = 1.0 if rational else 1.0 - market_state[3]
        keepers = (latency, requires_profit, gas_usd[t], market_state[3], take_factor)
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
                        if kind == _KIND_BANDS_HARD:  # outside any volume budget
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
                keepers = (latency, requires_profit, gas_usd[t], market_state[3], take_factor)
            # order slicing (at most max_volume_fraction of the step's traded volume) and keeper
            # capital (at most keeper_capital USD at the close) budget the units liquidated; the
            # budget goes to decided liquidations in processing order (chunk by chunk, the last
            # one taken in part) and the rest waits for later steps
            budget = np.inf
            if max_volume_fraction > 0.0:
                budget = max_volume_fraction * volume[t]
            if keeper_capital > 0.0:  # capital-constrained keepers absorb at most this per step
                budget = min(budget, keeper_capital / candle[3])
            if total_units > budget:
                dust = 1e-9 * budget  # smaller remainders are rounding, not volume
                slice_factor = budget / total_units
                for a in range(n_active):
                    ch = active[a]
                    # a chunk within budget takes everything (inf); the boundary chunk a part
                    chunk_budget[ch] = np.inf if gross[ch] <= budget else budget
                    budget = max(budget - gross[ch], 0.0)
                    if budget <= dust:
                        budget = 0.0
                total_flow = 0.0
                for a in prange(n_active):  # pass 1b: what each chunk's budget covers
                    ch = active[a]
                    count[ch] = 0
                    flow[ch] = 0.0
                    used = 0.0
                    for i in range(ch * chunk_size, min(n, (ch + 1) * chunk_size)):
                        if used >= chunk_budget[ch] and not soft:
                            break
                        p, d, _, _, kind = _decide_nb(i, t, candle, x_long, x_short, lo_key,
                                                      hi_key, eff_fill, accounts,
                                                      policy_inputs, keepers)
                        if kind == _KIND_BANDS_HARD:
                            count[ch] += 1
                            flow[ch] -= d * p
                        elif d > 0.0:
                            q = d
                            d = _budget_take_nb(d, chunk_budget[ch], used, dust)
                            if d <= 0.0:
                                if soft:  # hard liquidations of loans in bands may follow
                                    continue
                                break
                            if kind == _KIND_TAKE:
                                d = _chost_take_nb(i, t, d, accounts, auction, loan_penalty)
                                d = _take_after_budget_nb(i, t, d, q, candle, accounts,
                                                          auction, keepers, check_factor)
                                if d <= 0.0:  # no partial purchase: a later take may fit
                                    continue
                            used += d
                            count[ch] += 1
                            flow[ch] += -d * p if units[i] > 0.0 else d * p
                for a in range(n_active):
                    total_flow += flow[active[a]] + soft_flow[active[a]]
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
                if d > 0.0 and not bands_hard:
                    q = d
                    d = _budget_take_nb(d, chunk_budget[ch], used, dust)
                    if kind == _KIND_TAKE and d > 0.0:
                        d = _chost_take_nb(i, t, d, accounts, auction, loan_penalty)
                        d = _take_after_budget_nb(i, t, d, q, candle, accounts, auction,
                                                  keepers, check_factor)
                    used += d
                if d <= 0.0 and not bands_hard:
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
                elif kind == _KIND_TAKE:
                    price = auction_price_nb(int(auction[0]), auction_top[i],
                                             t - auction_tic[i], auction[1], auction[2],
                                             auction[3])
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
                rec_i[j, 4] = 1 if kind == _KIND_TAKE else 0
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
        market_state[3] = abs(1.0 - exec_factor)
        if cascade:
            displacement_update_nb(market_state, impact_model, impact_flow, depth[t],
                                   outstanding, mk.permanent_fraction, mk.transient_decay)
        if _insurance_waterfall_nb(t, step_out, market_state, rec.waterfall,
                                   open_.shape[0] - 1):
            return t + 1  # auto-deleveraging pending: the dispatcher runs it, then calls again
    return t1


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
