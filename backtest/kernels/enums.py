"""Integer enums, the policy parameter struct and the record layouts shared by kernels.

Kernels see only NumPy arrays, scalars and the structured ``POLICY_DTYPE`` record defined
here; everything a policy file says is packed into one such record
(:func:`backtest.policies.pack_policy`).

Why over 400 lines: it holds every integer enum, the policy struct and the record layouts that
kernels, the driver and the reference twin all read, so one definition serves them all; it has
no logic.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class PolicyFamily(IntEnum):
    """How much of a position a liquidation closes.

    HARD
        Close the whole position (for a loan: repay the whole debt, seizing collateral worth
        debt x (1 + bonus)) as soon as the account is liquidatable.
    PARTIAL
        Close just enough to restore ``target_health``, at most ``close_factor`` of the
        position (perps) or debt (loans) per liquidation; the whole when health is at or below
        ``full_close_health`` or equity cannot pay the penalty.
    GRADUATED
        A sliding scale: each tier ``k`` closes ``tier_fraction[k]`` of the position (perps) or
        debt (loans) once health < ``tier_health[k]``; the deepest tier reached applies.
    AUCTION
        Loans: a Dutch auction of the collateral (Maker Liquidations 2.0, ``Clipper``); a
        liquidatable loan is kicked at ``top = decision price x buf``, its price falls along
        :class:`AuctionCurve`, resets on ``tail`` / ``cusp``, and a keeper takes the lot when
        a take pays (market x expected execution factor - auction price >= ``keeper_margin``
        x market per unit, plus gas when keepers require profit; see
        :func:`backtest.kernels.liquidation_nb.take_pays_nb`). Perps are liquidated as HARD.
    SOFT_BANDS
        Loans: soft liquidation in bands (Curve crvUSD / LlamaLend LLAMMA). The collateral is
        spread evenly over ``band_count`` bands below the loan's top price; as the decision
        price falls through a band the AMM sells that band's collateral for the stablecoin,
        and buys it back as the price rises (:func:`band_collateral_nb`). A hard liquidation
        (the liquidator repays the debt and takes everything the AMM holds) happens only when
        the controller's health is below 0 (here: below 1). Perps are liquidated as HARD.
    """

    HARD = 0
    PARTIAL = 1
    GRADUATED = 2
    AUCTION = 3
    SOFT_BANDS = 4


class AuctionCurve(IntEnum):
    """Price curve of a Dutch auction (Maker dss ``abaci.sol``), ``dur`` in steps since kick.

    LINEAR
        ``top x (tau - dur) / tau``, 0 from ``tau`` on (``LinearDecrease``).
    STAIRSTEP
        ``top x cut ^ floor(dur / step)`` (``StairstepExponentialDecrease``).
    EXPONENTIAL
        ``top x cut ^ dur``, ``cut`` per step (``ExponentialDecrease``).
    ENGLISH
        Maker Liquidations 1.2 (``flip.sol`` ``tend``/``dent``): keepers outbid each other, so
        the winning bid is ``buf`` x the step's market price, whatever ``dur`` (``top`` is
        refreshed to ``market x buf`` each step the auction is decided). With
        ``auction_zero_bid_steps`` > 0 an auction no keeper takes within that many steps of
        its kick is dealt to a zero bid (``ttl``: the bid that is not beaten within the bid
        duration wins).
    """

    LINEAR = 0
    STAIRSTEP = 1
    EXPONENTIAL = 2
    ENGLISH = 3


class PenaltyModel(IntEnum):
    """How the liquidation penalty (the liquidator's bonus or discount) is set.

    FIXED
        The product's ``penalty_rate`` (perps: the liquidation fee; loans: ``bonus / (1 +
        bonus)`` of the seized value, Aave v3 / Compound v3).
    HEALTH_DISCOUNT
        Loans: Euler v2's reverse Dutch auction, the discount on the seized value is ``1 -
        health`` at the decision price, capped at ``penalty_cap`` (perps keep FIXED)
        (``Liquidation.sol`` ``calculateMaxLiquidation``: ``discountFactor = max(HS, 1 -
        maxLiquidationDiscount)``).
    HEALTH_RAMP
        Loans: Aave v4's bonus that rises as health falls. With ``b0 = base / (1 - base)`` and
        ``b1 = penalty_cap / (1 - penalty_cap)`` the bonuses of the product's penalty rate and
        of the cap, the bonus is ``b1`` at or below ``h1 = full_close_health``
        (``healthFactorForMaxBonus``) and ``b0 + (b1 - b0) x (1 - health) / (1 - h1)`` above
        it; the penalty is ``bonus / (1 + bonus)`` of the seized value (perps keep FIXED)
        (aave/aave-v4 ``spoke/libraries/LiquidationLogic.sol`` ``calculateLiquidationBonus``).
    """

    FIXED = 0
    HEALTH_DISCOUNT = 1
    HEALTH_RAMP = 2


class RiskInput(IntEnum):
    """Columns of the per-step risk inputs of a policy, shape (T, N_RISK_INPUTS), float64.

    Computed outside the kernels from the tape (:mod:`backtest.engine.risk`).

    MARGIN_SCALE
        Multiplier of the perp maintenance margin rate (and of its partial target) in this
        step; 1 without dynamic margin.
    PREEMPT_SHIFT
        Log-price distance ``z x sigma x sqrt(horizon)`` at which the predictive overlay
        stresses the trigger price (longs at ``x e^-shift``, shorts at ``x e^shift``); 0: off.
    """

    MARGIN_SCALE = 0
    PREEMPT_SHIFT = 1


N_RISK_INPUTS = len(RiskInput)


class Product(IntEnum):
    """Account type; selects the margin parameters of the policy.

    PERP
        Isolated-margin linear perpetual: liquidatable when equity < maintenance margin rate x
        |units| x price. Health = equity / maintenance margin.
    LOAN
        Single-asset loan: collateral units against stablecoin debt (``cash`` < 0).
        Liquidatable when health factor = liquidation threshold x collateral value / debt < 1,
        which is the same as equity < (1 - liquidation threshold) x collateral value.
    """

    PERP = 0
    LOAN = 1


class TriggerPrice(IntEnum):
    """Which candle price decides whether an account is liquidatable in a step.

    EXTREME
        The candle's low for longs and high for shorts: any touch inside the candle triggers.
    CLOSE
        The candle's close for everyone: only positions still under water at the close.
    """

    EXTREME = 0
    CLOSE = 1


class FillPrice(IntEnum):
    """At which price a triggered liquidation executes.

    TRIGGER
        At the trigger price (with ``EXTREME``: the low for longs, the high for shorts; the
        worst price of the candle, as a liquidation engine that is late within the candle).
    LIQUIDATION_PRICE
        At the account's exact liquidation price, where equity equals maintenance margin
        (the candle's open if the candle opened beyond it, a gap); clipped to [low, high].
        The ideal, instant liquidator.
    CLOSE
        At the candle's close.
    """

    TRIGGER = 0
    LIQUIDATION_PRICE = 1
    CLOSE = 2


class Waterfall(IntEnum):
    """What covers bad debt once the insurance fund is empty.

    SOCIALISE
        Nobody: it is recorded as socialised loss (shared pro rata by the protocol's users,
        Drift/Aave-deficit style).
    ADL
        Auto-deleveraging: profitable opposite-side perp traders, ranked by :class:`AdlRanking`,
        are closed at the bankrupt positions' bankruptcy price until the shortfall is covered;
        loans' shortfall is socialised (lending protocols do not deleverage).
    SURPLUS_BUFFER
        Maker's ``Vow`` (dss ``vow.sol``): the fund is the protocol's surplus (penalty
        income, ``chop``, accrues to it); what it cannot cover is queued as protocol debt
        (``fess``: ``Sin``) rather than socialised, and later penalty income heals the queue
        (``heal``) before anything else. Debt still queued at the window's last step is
        covered by debt auctions (``flop`` mints MKR: socialised loss, borne outside the book).
        Not modelled: ``wait`` (the queue's delay before ``flog``), ``sump``/``dump`` lot
        sizes, surplus auctions (``flap``); no ADL.
    """

    SOCIALISE = 0
    ADL = 1
    SURPLUS_BUFFER = 2


class AdlRanking(IntEnum):
    """Order in which auto-deleveraging picks counterparties.

    Sources: https://www.binance.com/en/support/faq/360033525471 (Binance),
    https://www.bitmex.com/app/autoDeleveraging (BitMEX),
    https://hyperliquid.gitbook.io/hyperliquid-docs/trading/auto-deleveraging (Hyperliquid),
    dYdX v4 ``protocol/x/clob``
    (https://github.com/dydxprotocol/v4-chain/tree/84d4664bae71e3a077adaac67fb77ad19cd28d30).

    BINANCE
        ``PnL% x margin ratio`` with ``PnL% = max(0, UPnL) / max(1, wallet balance)`` and
        ``margin ratio = maintenance margin / margin balance`` (Binance ADL FAQ).
    BITMEX
        ``PnL% x effective leverage`` if PnL% > 0 else ``PnL% / effective leverage``, with
        ``effective leverage = notional / equity`` (bitmex.com/app/autoDeleveraging).
    HYPERLIQUID
        Unrealised PnL and leverage (Hyperliquid docs, auto-deleveraging); the BitMEX score.
    DYDX
        dYdX v4 ``deleveraging.go``: iterate opposite-side accounts from a random (seeded)
        starting account, no ranking.
    """

    BINANCE = 0
    BITMEX = 1
    HYPERLIQUID = 2
    DYDX = 3


#: Most tiers of a graduated policy.
MAX_TIERS = 4

#: Number of products (rows of the per-product arrays in ``POLICY_DTYPE``).
N_PRODUCTS = len(Product)

#: The policy parameter struct passed to kernels (one record). Rates are fractions.
POLICY_DTYPE = np.dtype(
    [
        ("family", np.int64),  # PolicyFamily
        ("keeper_share", np.float64),  # share of the penalty paid to the keeper; rest to fund
        ("close_factor", np.float64),  # max fraction of position (perp) / debt (loan) per event
        # health at or below which a liquidation is at its largest: close_factor is 1, and
        # with PenaltyModel.HEALTH_RAMP the penalty reaches penalty_cap
        ("full_close_health", np.float64),
        # per product (index Product): maintenance requirement as a fraction of notional
        ("maintenance_rate", np.float64, (N_PRODUCTS,)),
        # per product: requirement a partial liquidation restores (inf: close factor only)
        ("target_rate", np.float64, (N_PRODUCTS,)),
        # per product: penalty as a fraction of the liquidated notional
        ("penalty_rate", np.float64, (N_PRODUCTS,)),
        # graduated tiers, up to MAX_TIERS: health below which the tier applies, and fraction
        ("tier_health", np.float64, (4,)),
        ("tier_fraction", np.float64, (4,)),
        # order slicing, any family: steps between liquidations of one account, and the most
        # units liquidated in a step as a fraction of the step's traded volume (inf: no cap)
        ("cooldown_steps", np.int64),
        # partial size rules, USD (0: off): close in full below; cap the slice above; no dust
        ("full_close_below_usd", np.float64),
        ("large_position_usd", np.float64),
        ("large_position_fraction", np.float64),
        ("min_remaining_usd", np.float64),
        # partial: most liquidation calls on one account per step (0 or 1: one call)
        ("max_calls_per_step", np.int64),
        ("max_step_volume_fraction", np.float64),
        ("waterfall", np.int64),  # Waterfall
        ("adl_ranking", np.int64),  # AdlRanking
        ("penalty_model", np.int64),  # PenaltyModel
        ("penalty_cap", np.float64),  # largest penalty of HEALTH_DISCOUNT / HEALTH_RAMP, fraction
        # loans: a liquidation seizes all collateral (Compound v3 absorb), not just the debt's
        ("seize_all_collateral", np.int64),
        # predictive overlay: fraction of the position (perp) / debt (loan) reduced, and the
        # fee of a pre-emptive reduction as a fraction of its notional (0: overlay off)
        ("preempt_fraction", np.float64),
        ("preempt_penalty", np.float64),
        # Dutch auction (family AUCTION): curve, start buffer over the decision price, curve
        # parameters (steps), resets, keeper incentive tip (USD) + chip x tab, and the keeper's
        # required discount to the market (fractions)
        ("auction_curve", np.int64),
        ("auction_buf", np.float64),
        ("auction_tau_steps", np.float64),
        ("auction_cut", np.float64),
        ("auction_step_steps", np.float64),
        ("auction_tail_steps", np.float64),
        ("auction_cusp", np.float64),
        ("auction_chip", np.float64),
        ("auction_tip_usd", np.float64),
        ("auction_keeper_margin", np.float64),
        # 1: keepers expect the execution factor of the step's own flow (no take at a loss
        # beyond keeper_margin); 0: they expect the last step's slippage
        ("auction_keeper_rational", np.int64),
        ("auction_chost_usd", np.float64),  # dust x chop: least tab a partial take may leave
        # flip ``ttl`` in steps: an auction no keeper takes within it after its kick is dealt
        # to a zero bid (collateral to that keeper, the debt to bad debt); 0: off
        ("auction_zero_bid_steps", np.float64),
        # soft-liquidation bands (family SOFT_BANDS): band ratio (A - 1) / A, bands per loan,
        # and the loan_discount that placed them (the loans' maintenance_rate is the
        # liquidation_discount)
        ("band_ratio", np.float64),
        ("band_count", np.int64),
        ("band_loan_discount", np.float64),
    ],
    align=True,
)


class StepMetric(IntEnum):
    """Columns of the per-step aggregate array written by the kernels (all float64).

    Monetary values are USD; unit deltas are asset units. Deltas are changes caused by
    liquidations in the step, so that running totals (cash, open interest, user equity) follow
    by cumulative sums without touching every account every step.
    """

    N_LIQUIDATIONS = 0  # liquidation events
    N_CLOSED = 1  # events that closed the position (perp) or repaid the whole debt (loan)
    N_BANKRUPT = 2  # events that left bad debt
    LIQUIDATED_NOTIONAL = 3  # sum of |units closed| x fill price, USD
    KEEPER_FEES = 4  # penalty paid to keepers, USD
    INSURANCE_FEES = 5  # penalty paid to the insurance fund, USD
    BAD_DEBT = 6  # shortfall beyond the account's equity, USD
    CASH_DELTA_PERP = 7  # change of the sum of perp accounts' cash, USD
    CASH_DELTA_LOAN = 8  # change of the sum of loan accounts' cash, USD
    UNITS_DELTA_PERP_LONG = 9  # change of the sum of perp long units
    UNITS_DELTA_PERP_SHORT = 10  # change of the sum of perp short units (negative numbers)
    UNITS_DELTA_LOAN = 11  # change of the sum of loan collateral units
    NET_FLOW = 12  # signed liquidation flow at the decision price, USD (> 0 buys, < 0 sells)
    # what liquidations lost to impact: units sold x (decision - execution price) + units bought
    # x (execution - decision price), USD; negative when execution beat the decision price
    IMPACT_COST = 13
    N_WAITING = 14  # accounts liquidatable but not liquidated (keeper latency or unprofitable)
    WAITING_NEGATIVE_EQUITY = 15  # sum of their equity below zero, USD (<= 0)
    BAD_DEBT_PERP_LONG = 16  # bad debt left by perp longs, USD
    BAD_DEBT_PERP_SHORT = 17  # bad debt left by perp shorts, USD
    BANKRUPT_UNITS_LONG = 18  # |units| of perp longs closed with bad debt
    BANKRUPT_UNITS_SHORT = 19  # |units| of perp shorts closed with bad debt
    N_PREEMPTIVE = 20  # of N_LIQUIDATIONS: pre-emptive reductions (predictive overlay)
    PREEMPTIVE_NOTIONAL = 21  # of LIQUIDATED_NOTIONAL: notional reduced pre-emptively, USD
    AUCTIONS_KICKED = 22  # Dutch auctions started or reset (kick, redo)
    AUCTION_INCENTIVES = 23  # keeper incentives tip + chip x tab paid by the protocol, USD
    # soft-liquidation bands (no records: these are AMM trades, not liquidation events)
    SOFT_SOLD_UNITS = 24  # collateral sold by bands as the price fell, asset units
    SOFT_BOUGHT_UNITS = 25  # collateral bought back by bands as the price rose, asset units
    SOFT_PROCEEDS = 26  # stablecoin received by bands: sales minus buy-backs, USD
    SOFT_LOSS = 27  # what bands' trades lost to arbitrageurs against the market price, USD
    N_SOFT_LIQUIDATION = 28  # loans in soft liquidation (some collateral converted) after it
    # per-step values below (not sums over chunks)
    PRICE_FACTOR = 29  # simulated / historical price in this step (cascade feedback)
    EXECUTION_FACTOR = 30  # execution / decision price of this step's liquidations
    ORACLE_PRICE = 31  # price that decided liquidations (long side), USD
    INSURANCE_DRAW = 32  # bad debt and auction incentives covered by the insurance fund, USD
    INSURANCE_FUND = 33  # insurance fund balance after the step, USD
    SOCIALISED_LOSS = 34  # bad debt covered by nobody: socialised pro rata, USD
    ADL_NOTIONAL = 35  # notional of positions auto-deleveraged, USD
    ADL_ACCOUNTS = 36  # accounts auto-deleveraged
    ADL_TRANSFER = 37  # shortfall covered by auto-deleveraged traders, USD
    FUNDING_PAID = 38  # net funding paid by the book's perps to traders outside it, USD
    SLICE_FACTOR = 39  # share of the decided liquidation sizes executed (order slicing, <= 1)
    MARGIN_SCALE = 40  # perp maintenance margin rate / the policy's base rate (dynamic margin)
    # Waterfall.SURPLUS_BUFFER: of INSURANCE_DRAW, what healed debt queued in earlier steps
    # (USD), and the debt queued after the step (USD, a balance; 0 after the window's last step)
    DEBT_HEALED = 41
    DEBT_QUEUED = 42
    # Dutch auctions: execution factor (execution / market price) keepers priced their takes
    # at in this step (:func:`backtest.kernels.liquidation_nb.take_pays_nb`)
    TAKE_FACTOR = 43


N_STEP_METRICS = len(StepMetric)
#: Metrics that are per-step values, not sums over chunks.
N_SUMMED_METRICS = int(StepMetric.PRICE_FACTOR)


class ImpactModel(IntEnum):
    """How liquidation flow moves the price (see :mod:`backtest.kernels.impact_nb`).

    All three are calibrated by the same depth ``D``: the USD notional that moves the price 1%.

    NONE
        Liquidations execute at the decision price and leave the price path untouched.
    LINEAR
        Price move ``1% x Q / D`` for a net flow of ``Q`` USD (Kyle's lambda).
    SQRT
        Price move ``1% x sqrt(Q / D)`` (the square-root law of market impact).
    AMM
        A constant-product pool whose 1% depth is ``D``: selling ``q`` units from reserves
        ``x`` moves the price by ``(x / (x + q))^2``.
    """

    NONE = 0
    LINEAR = 1
    SQRT = 2
    AMM = 3


class OracleModel(IntEnum):
    """Which price decides that an account is liquidatable (execution is always the market).

    Except for MARKET, an oracle only knows closes of steps before the current one (the first
    step's open stands for everything before the window), and liquidations it triggers fill at
    the market: the step's (simulated) close.

    MARKET
        The candle itself, per :class:`TriggerPrice` (low/high or close): no oracle delay.
    LAGGED
        The close ``oracle_lag_steps`` steps ago (>= 1).
    TWAP
        The mean close of the last ``oracle_twap_steps`` steps.
    CHAINLINK
        Deviation threshold + heartbeat: the oracle moves to the previous close when that close
        deviates from it by at least ``oracle_deviation`` (fraction) or when
        ``oracle_heartbeat_steps`` steps have passed since its last update.
    MARK
        Mark price vs last price: a second tape (e.g. the spot index for a perp's last-price
        tape) decides, per :class:`TriggerPrice` (its low/high or close, times the cascade
        price factor); liquidations fill at the simulated tape's close. Unlike the other
        oracles it sees the current step.
    OSM
        Maker's Oracle Security Module: the feed is read once every ``oracle_lag_steps``
        steps (its ``hop``), at the hop boundaries counted from the window start, and each
        reading is published one hop later. At step ``t`` in the hop that began at step
        ``b = (t // hop) x hop`` the price is the close of step ``b - hop - 1``, the last close
        before the previous boundary (dss ``osm.sol``, ``poke``: ``cur = nxt; nxt = read()``
        at most once per ``hop``, https://github.com/makerdao/osm/blob/master/src/osm.sol).
        A crash inside an hour that recovers before the next boundary is never seen.
    """

    MARKET = 0
    LAGGED = 1
    TWAP = 2
    CHAINLINK = 3
    MARK = 4
    OSM = 5


#: Market parameters passed to kernels (one record).
MARKET_DTYPE = np.dtype(
    [
        ("impact_model", np.int64),  # ImpactModel
        ("permanent_fraction", np.float64),  # share of each step's flow whose impact never decays
        ("transient_decay", np.float64),  # per-step multiplier of the transient outstanding flow
        ("cascade", np.int64),  # 1: impact feeds back into later steps' prices; 0: it does not
        ("oracle_model", np.int64),  # OracleModel
        ("oracle_lag_steps", np.int64),
        ("oracle_twap_steps", np.int64),
        ("oracle_deviation", np.float64),  # fraction
        ("oracle_heartbeat_steps", np.int64),
        ("keeper_latency_steps", np.int64),  # steps between first liquidatable and liquidated
        ("keeper_requires_profit", np.int64),  # 1: act only if the keeper fee covers gas + impact
        ("seed", np.int64),  # seeds random choices (dYdX deleveraging start)
        ("keeper_capital_usd", np.float64),  # notional keepers absorb per step (0: unlimited)
    ],
    align=True,
)

class MarketState(IntEnum):
    """Slots of the kernels' market state array, shape (MARKET_STATE_SIZE,), float64.

    One array per simulation (:func:`backtest.engine.dispatch.simulate` creates it), carried
    across the step kernel's calls: what the market, the oracle, the insurance fund and a
    pending auto-deleveraging remember from one step to the next. Kernels index it by these
    members (numba reads them as constants).

    DISPLACEMENT_PERMANENT
        Log price displacement that never decays (cascade feedback,
        :mod:`backtest.kernels.impact_nb`); 0 without cascade.
    DISPLACEMENT_TRANSIENT
        Log price displacement that decays by ``transient_decay`` per step.
    PRICE_FACTOR
        Factor scaling the historical prices of the current step (``exp`` of the two
        displacements, clipped); 1 without cascade.
    SLIPPAGE
        ``|1 - execution factor|`` of the last step with liquidations: the slippage keepers
        expect (fraction).
    ORACLE_PRICE
        Last price published by the deviation/heartbeat oracle, USD per unit (0: none yet).
    ORACLE_STEP
        Step of that publication (-1: never).
    INSURANCE_FUND
        Insurance fund balance, USD.
    ADL_SHORTFALL_LONG, ADL_UNITS_LONG
        Pending auto-deleveraging: bad debt left by bankrupt perp longs (USD) and their
        bankrupt units; the dispatcher runs it and zeroes them.
    ADL_SHORTFALL_SHORT, ADL_UNITS_SHORT
        The same for bankrupt perp shorts.
    ADL_STEP
        Step of the pending auto-deleveraging (-1: none).
    FUNDING_STEP
        Last step whose funding was settled (-1: none), so a step restarted after a
        record-buffer flush does not pay it twice.
    SURPLUS_QUEUED
        Debt queued in the surplus buffer (``Waterfall.SURPLUS_BUFFER``), USD.
    """

    DISPLACEMENT_PERMANENT = 0
    DISPLACEMENT_TRANSIENT = 1
    PRICE_FACTOR = 2
    SLIPPAGE = 3
    ORACLE_PRICE = 4
    ORACLE_STEP = 5
    INSURANCE_FUND = 6
    ADL_SHORTFALL_LONG = 7
    ADL_UNITS_LONG = 8
    ADL_SHORTFALL_SHORT = 9
    ADL_UNITS_SHORT = 10
    ADL_STEP = 11
    FUNDING_STEP = 12
    SURPLUS_QUEUED = 13


#: Length of the market state array (:class:`MarketState`).
MARKET_STATE_SIZE = len(MarketState)

#: Columns of the per-account band state of family SOFT_BANDS, shape (N, N_BAND_FIELDS),
#: float64: the loan's top band price (USD per unit; its bands span ``top x ratio^k`` down to
#: ``top x ratio^band_count``), collateral deposited in the bands (units), debt (USD; 0 once
#: hard-liquidated or for accounts outside the bands), and running totals of its bands' trades:
#: net collateral sold (units), net stablecoin received (USD), loss to arbitrageurs (USD).
BAND_FIELDS = ("top_price", "deposited", "debt", "soft_units", "soft_proceeds", "soft_loss")
N_BAND_FIELDS = len(BAND_FIELDS)

#: Fields of a liquidation record (one row per liquidation event), in output order.
RECORD_FIELDS = (
    ("step", np.int32),  # step index within the window
    ("account", np.int64),  # row index of the account in the book
    ("units_closed", np.float64),  # signed asset units removed from the position
    ("fill_price", np.float64),  # execution price, USD per unit (decision price x impact)
    ("notional", np.float64),  # |units_closed| x fill_price, USD
    ("keeper_fee", np.float64),  # USD to the keeper
    ("insurance_fee", np.float64),  # USD to the insurance fund
    ("bad_debt", np.float64),  # USD shortfall written off
    ("health_before", np.float64),  # health at the decision price before the liquidation
    ("equity_after", np.float64),  # account equity at the fill price after, USD
    ("decision_price", np.float64),  # price the liquidation was decided at, USD per unit
    ("closed", np.bool_),  # position closed / debt fully repaid
    ("preemptive", np.bool_),  # a pre-emptive reduction (predictive overlay), not a breach
    # a keeper's take in a Dutch auction: fill_price is the market, keeper_fee the keeper's
    # discount (market - auction price) x units, insurance_fee the penalty part of the tab
    ("auction", np.bool_),
    # an auction dealt to a zero bid (flip ``ttl`` passed with no take): units_closed is the
    # whole lot, keeper_fee its value at the fill price, bad_debt the loan's debt
    ("zero_bid", np.bool_),
)
