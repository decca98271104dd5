"""Policy files: the TOML schema of ``strategies/*.toml``, validated with pydantic.

A policy is a family (``hard`` or ``partial``) plus parameters for each product it may
liquidate: isolated-margin perps (``[perp]``) and single-asset loans (``[loan]``). Every
field is documented in ``strategies/README.md``; unknown or misspelled fields are errors.

Why over 400 lines: it is the whole schema of a policy file: one pydantic model per section and
family, validated together (a family's validator checks the sections it needs).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from backtest.strict import StrictModel


class PerpParams(StrictModel):
    """Margin parameters for isolated-margin linear perpetuals.

    Attributes
    ----------
    maintenance_margin_rate : float
        Fraction of notional (0.005 = 0.5%); liquidatable when equity < rate x |units| x mark.
    liquidation_penalty : float
        Fraction of the liquidated notional taken from the account (clearance / liquidation
        fee), split between keeper and insurance fund by ``keeper_share``.
    """

    maintenance_margin_rate: float = Field(gt=0.0, lt=1.0)
    liquidation_penalty: float = Field(ge=0.0, lt=1.0)


class LoanParams(StrictModel):
    """Parameters for single-asset loans (volatile collateral, stablecoin debt).

    Attributes
    ----------
    liquidation_threshold : float
        LT as a fraction (0.825 = 82.5%); health factor = LT x collateral value / debt,
        liquidatable below 1 (Aave v3 ``GenericLogic``).
    liquidation_bonus : float
        Bonus as a fraction (0.05 = 5%): collateral seized = debt repaid x (1 + bonus)
        / price (Aave v3 ``LiquidationLogic._calculateAvailableCollateralToLiquidate``).
        Equivalent to a penalty of bonus / (1 + bonus) of the seized collateral value.
    seize_all_collateral : bool
        A hard liquidation takes all the collateral, not just what repays the debt, and
        credits the borrower with its value less the penalty minus the debt (Compound v3
        ``Comet.absorb``: ``liquidationFactor`` = 1 - penalty). Default False.
    """

    liquidation_threshold: float = Field(gt=0.0, lt=1.0)
    liquidation_bonus: float = Field(ge=0.0, lt=1.0)
    seize_all_collateral: bool = False

    @model_validator(mode="after")
    def _threshold_times_bonus(self) -> LoanParams:
        # Aave v3 PoolConfigurator: liquidationThreshold x liquidationBonus <= 100%
        if self.liquidation_threshold * (1.0 + self.liquidation_bonus) >= 1.0:
            raise ValueError(
                "liquidation_threshold x (1 + liquidation_bonus) must be < 1, otherwise a "
                "liquidation at health factor 1 seizes more collateral than the account holds"
            )
        return self


class PartialParams(StrictModel):
    """Parameters of the partial family.

    Attributes
    ----------
    target_health : float or None
        Perps: equity / maintenance margin restored by a partial liquidation (> 1; 1.5 means
        equity = 1.5 x maintenance margin afterwards). None: no target, every liquidation
        closes the full close factor.
    target_health_factor : float or None
        Loans: health factor restored by a partial liquidation (> 1). None: no target, every
        liquidation repays the full close factor of the debt (what Aave liquidators do).
    close_factor : float
        Largest fraction of the position (perps) or of the debt (loans) one liquidation may
        close, in (0, 1]. Aave v3: 0.5.
    full_close_health : float
        At or below this health the close factor is 1 (Aave v3.0-3.2:
        ``CLOSE_FACTOR_HF_THRESHOLD`` = 0.95).
    full_close_below_usd : float
        Positions (perps) or debts (loans) worth less than this are closed in full (Aave v3.3
        ``MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD`` = $2,000). 0: off.
    large_position_usd, large_position_fraction : float
        Positions worth more than ``large_position_usd`` close at most this fraction per
        liquidation (Hyperliquid: 20% above 100k USDC). 0: off.
    min_remaining_usd : float
        A partial liquidation may not leave a position worth less than this; it closes
        everything instead (Aave v3.3 ``MIN_LEFTOVER_BASE`` = $1,000). 0: off.
    max_calls_per_step : int
        Most liquidation calls keepers make on one account within one step (candle): after a
        call they call again while it still fails the test at the step's decision price. With
        ``[execution] fill_price = "liquidation_price"`` each next call fills where the price
        meets the account's new liquidation price (keepers taking a loan in stages on the way
        down), otherwise at the same fill price. Aave lets anyone call ``liquidationCall``
        again as soon as the previous one is mined (no cooldown in ``LiquidationLogic``).
        1: one call per account per step, so on coarse candles a further call waits a whole
        step (docs/calibration.md, "Repeated calls within a candle"). Keepers who need a
        profit (``[keepers] requires_profit``) weigh the step's calls together, one gas cost.
    """

    target_health: float | None = Field(default=None, gt=1.0)
    target_health_factor: float | None = Field(default=None, gt=1.0)
    close_factor: float = Field(default=0.5, gt=0.0, le=1.0)
    full_close_health: float = Field(default=0.95, ge=0.0, le=1.0)
    full_close_below_usd: float = Field(default=0.0, ge=0.0)
    large_position_usd: float = Field(default=0.0, ge=0.0)
    large_position_fraction: float = Field(default=1.0, gt=0.0, le=1.0)
    min_remaining_usd: float = Field(default=0.0, ge=0.0)
    max_calls_per_step: int = Field(default=1, ge=1, le=1000)


class WaterfallParams(StrictModel):
    """What covers bad debt the insurance fund cannot (see ``backtest.kernels.enums``).

    Attributes
    ----------
    mode : {"socialise", "adl", "surplus_buffer"}
        ``socialise``: record it as socialised loss; ``adl``: auto-deleverage profitable
        opposite-side perp traders at the bankruptcy price (loans' shortfall is socialised);
        ``surplus_buffer``: Maker's ``Vow``: the shortfall is queued as protocol debt, healed
        by penalty income that arrives later in the window, and what is still queued at the
        window's end is covered by debt auctions (``flop``, socialised loss).
    adl_ranking : {"binance", "bitmex", "hyperliquid", "dydx"}
        Counterparty order for ADL (:class:`backtest.kernels.enums.AdlRanking` cites each venue).
    """

    mode: Literal["socialise", "adl", "surplus_buffer"] = "socialise"
    adl_ranking: Literal["binance", "bitmex", "hyperliquid", "dydx"] = "binance"


class SlicingParams(StrictModel):
    """Order slicing, for any family.

    Attributes
    ----------
    max_step_volume_fraction : float or None
        Most units liquidated in one step, as a fraction of the step's traded volume; every
        liquidation of a step is scaled down alike and the rest waits for later steps. None: no
        cap.
    cooldown_minutes : float
        Least time between two liquidations of one account (Hyperliquid: 30 s after a partial).
    """

    max_step_volume_fraction: float | None = Field(default=None, gt=0.0)
    cooldown_minutes: float = Field(default=0.0, ge=0.0)


class PenaltyParams(StrictModel):
    """How large the liquidation penalty (the liquidator's bonus or discount) is.

    Attributes
    ----------
    model : {"fixed", "health_discount", "health_ramp"}
        ``fixed``: ``[perp] liquidation_penalty`` and ``[loan] liquidation_bonus``.
        ``health_discount`` (loans; perps keep their fixed penalty): Euler v2's reverse Dutch
        auction, the discount on the seized value is ``1 - health`` at the decision price,
        capped at ``max_discount``
        (``EVault/modules/Liquidation.sol`` ``calculateMaxLiquidation``).
        ``health_ramp`` (loans): Aave v4's bonus that rises as health falls, from
        ``max_bonus x bonus_factor`` just below health 1 to ``max_bonus`` at and below
        ``health_for_max_bonus``, linear in health between (aave/aave-v4
        ``spoke/libraries/LiquidationLogic.sol`` ``calculateLiquidationBonus``);
        ``[loan] liquidation_bonus`` is not used.
    max_discount : float
        Cap of the health discount, fraction (Euler ``maxLiquidationDiscount``; 0.2 in the EVK
        test base). Default 0.2.
    max_bonus : float
        ``health_ramp``: largest bonus over the debt repaid, fraction (``maxLiquidationBonus``
        - 100%; 0.05 = 105%).
    bonus_factor : float
        ``health_ramp``: the smallest bonus as a fraction of ``max_bonus``, in [0, 1]
        (``liquidationBonusFactor``).
    health_for_max_bonus : float
        ``health_ramp``: health factor at and below which the bonus is ``max_bonus``, in
        [0, 1) (``healthFactorForMaxBonus``).
    """

    model: Literal["fixed", "health_discount", "health_ramp"] = "fixed"
    max_discount: float = Field(default=0.2, gt=0.0, lt=1.0)
    max_bonus: float = Field(default=0.05, ge=0.0, lt=1.0)
    bonus_factor: float = Field(default=0.0, ge=0.0, le=1.0)
    health_for_max_bonus: float = Field(default=0.9, ge=0.0, lt=1.0)


class DynamicMarginParams(StrictModel):
    """Perp maintenance margin that scales with volatility (loans' thresholds stay fixed).

    The rate in each step is ``maintenance_margin_rate x clip(sigma / reference_volatility,
    floor, cap)``, smoothed by an exponential moving average, with ``sigma`` the annualised
    realised volatility of the tape's close-to-close log returns over the trailing
    ``window_minutes`` up to the previous step's close (no lookahead). A partial target health
    scales with it. See :mod:`backtest.engine.risk`.

    Attributes
    ----------
    reference_volatility : float
        Annualised volatility (fraction, 0.6 = 60%) at which the rate is the base rate.
    window_minutes : float
        Trailing window of the realised volatility, minutes (at least 2 returns).
    floor, cap : float
        Bounds of the multiplier of the base rate.
    smoothing_half_life_minutes : float
        Half-life of the exponential moving average of the multiplier; 0: none.
    """

    reference_volatility: float = Field(gt=0.0)
    window_minutes: float = Field(default=60.0, gt=0.0)
    floor: float = Field(default=1.0, gt=0.0)
    cap: float = Field(default=3.0, gt=0.0)
    smoothing_half_life_minutes: float = Field(default=0.0, ge=0.0)

    @model_validator(mode="after")
    def _bounds(self) -> DynamicMarginParams:
        if self.cap < self.floor:
            raise ValueError("cap must be at least floor")
        return self


class PredictiveParams(StrictModel):
    """Pre-emptive reduction of positions likely to breach soon (the predictive overlay).

    An account that is not liquidatable is reduced when the probability that the price
    touches its liquidation price within ``horizon_minutes`` exceeds
    ``breach_probability``. For a driftless geometric Brownian motion with volatility
    ``sigma`` that probability is ``2 Phi(-d / (sigma sqrt(H)))``, ``d`` the log distance to
    the liquidation price (reflection principle; Shreve, *Stochastic Calculus for Finance II*,
    3.7), so the rule is: liquidatable at the stressed price ``x e^(-z sigma sqrt(H))`` for a
    long (``x e^(+...)`` for a short) with ``z = Phi^-1(1 - breach_probability / 2)``.
    ``sigma`` is the realised volatility of :class:`DynamicMarginParams` (same window).

    Attributes
    ----------
    breach_probability : float
        Threshold probability, in (0, 1).
    horizon_minutes : float
        Horizon, minutes.
    reduce_fraction : float
        Fraction of the position (perps) or of the debt (loans) reduced, in (0, 1].
    fee : float
        Fee of a pre-emptive reduction, fraction of its notional (split like a penalty).
    window_minutes : float
        Trailing window of the realised volatility, minutes.
    """

    breach_probability: float = Field(gt=0.0, lt=1.0)
    horizon_minutes: float = Field(gt=0.0)
    reduce_fraction: float = Field(gt=0.0, le=1.0)
    fee: float = Field(default=0.0, ge=0.0, lt=1.0)
    window_minutes: float = Field(default=60.0, gt=0.0)


class AuctionParams(StrictModel):
    """A Dutch auction of a liquidated loan's collateral (Maker Liquidations 2.0, ``Clipper``).

    A liquidatable loan is kicked: ``top = decision price x buf``; the tab is ``debt x (1 +
    [loan] liquidation_bonus)`` (``chop``). The auction price falls along ``curve``; it resets
    (new ``top`` at the fresh decision price) after ``tail_minutes`` or when the price falls
    below ``cusp x top``. A keeper takes when the take pays: the market (the step's close)
    times the execution factor it expects, less the auction price, is at least
    ``keeper_margin`` of the market per unit, plus gas when keepers require profit (see
    ``keeper_rational``); it buys what pays the tab, at most all the
    collateral; the rest of the collateral returns to the borrower, a tab the collateral cannot
    pay is bad debt. Each kick and reset pays the keeper ``tip_usd + chip x tab`` from the
    insurance fund (Maker's ``vow``). Perps are liquidated as ``hard``. Sources: dss
    ``clip.sol`` ``kick``/``redo``/``take``, ``abaci.sol``
    (https://github.com/makerdao/dss/tree/fa4f6630afb0624d04a003e920b0d71a00331d98).

    Attributes
    ----------
    curve : {"linear", "stairstep", "exponential", "english"}
        ``LinearDecrease`` (to 0 over ``tau_minutes``), ``StairstepExponentialDecrease``
        (``x cut`` every ``step_minutes``), ``ExponentialDecrease`` (``cut`` per
        ``step_minutes``, applied continuously per step); ``english``: Maker Liquidations
        1.2's flip auction (``flip.sol`` ``tend``/``dent``), where competing keepers' bids
        settle at ``buf`` x the step's market price (no falling curve; ``cut``, ``step`` and
        ``cusp`` unused; ``tail_minutes`` is flip's ``tau``, after which an auction restarts).
    buf : float
        Starting price over the decision price (1.3 = 30% above); ``english``: the winning
        bid over the market price (e.g. 0.97: within flip's 3% minimum bid increase ``beg``
        of the market).
    tau_minutes, step_minutes, tail_minutes : float
        Linear duration; stair length; longest run before a reset. Minutes, converted to steps.
    cut : float
        Price multiplier per ``step_minutes``, in (0, 1].
    cusp : float
        Reset when the price falls below this fraction of ``top``.
    chip : float
        Keeper incentive as a fraction of the tab.
    tip_usd : float
        Flat keeper incentive, USD.
    keeper_margin : float
        Least profit per unit a keeper requires, as a fraction of the market price, after the
        execution slippage it expects (and gas, with ``[keepers] requires_profit``).
    keeper_rational : bool
        True (default): keepers expect the execution price of the step they sell in (every
        lot that pays at the market is offered, the step's execution factor of that flow is
        computed, and the lots that would lose at it stand back), so no take loses more than
        ``keeper_margin`` allows. False: keepers expect the last step's execution slippage
        and can take at a loss when this step's flow moves the market more.
    zero_bid_minutes : float
        Flip's bid duration ``ttl``: an auction that no keeper takes within this many minutes
        of its kick (a take did not pay, at the step's gas price when keepers require profit,
        or the keepers' capital for the step was spent) is dealt to a zero bid: the whole lot
        to that bidder, the loan's debt to bad debt (``flip.sol`` ``tend`` sets ``tic = now +
        ttl``; ``deal`` settles after it). 0 (default): off.
    chost_usd : float
        ``dust x chop``, USD: a take cut short by the step's budget may not leave less tab
        than this (it is reduced to leave exactly ``chost``; with a tab of at most ``chost``
        only the whole lot can be bought), and a reset pays the keeper incentive only if the
        tab and the lot's value are at least this (``clip.sol`` ``take``, ``redo``). 0: off.
    """

    curve: Literal["linear", "stairstep", "exponential", "english"] = "stairstep"
    buf: float = Field(default=1.0, gt=0.0)
    tau_minutes: float = Field(default=60.0, gt=0.0)
    step_minutes: float = Field(default=1.5, gt=0.0)
    cut: float = Field(default=0.99, gt=0.0, le=1.0)
    tail_minutes: float = Field(default=140.0, gt=0.0)
    cusp: float = Field(default=0.4, ge=0.0, lt=1.0)
    chip: float = Field(default=0.001, ge=0.0, lt=1.0)
    tip_usd: float = Field(default=0.0, ge=0.0)
    keeper_margin: float = Field(default=0.01, ge=0.0, lt=1.0)
    keeper_rational: bool = True
    chost_usd: float = Field(default=0.0, ge=0.0)
    zero_bid_minutes: float = Field(default=0.0, ge=0.0)

    @model_validator(mode="after")
    def _zero_bid_window(self) -> AuctionParams:
        if self.zero_bid_minutes > 0 and self.zero_bid_minutes >= self.tail_minutes:
            raise ValueError("zero_bid_minutes must be below tail_minutes: a reset after "
                             "tail_minutes restarts the bid window, so no zero bid could win")
        return self


class BandsParams(StrictModel):
    """Soft liquidation in bands (Curve crvUSD / LlamaLend LLAMMA), for loans.

    Each loan's collateral is spread evenly over ``n_bands`` bands, each ``1/A`` wide, placed
    as crvUSD places them when the loan is created: the top band is the highest whose
    collateral, converted down through all bands and discounted by ``loan_discount``, covers
    the debt (never above the window's opening price). As the price falls through a band its
    collateral is sold for the stablecoin at the band's mean price (no better than the
    market), and bought back as the price rises. The loan is hard-liquidated, the liquidator
    repaying the debt and taking everything, when ``x_down x (1 - liquidation_discount) <
    debt`` (controller health < 0). Sources: curve-stablecoin ``AMM.vy``, ``controller.vy``
    (https://github.com/curvefi/curve-stablecoin/tree/cf1d05fb6bf7c608973cc41786b2e1fd81dc3a6a);
    the model is :mod:`backtest.kernels.bands_nb`.

    Attributes
    ----------
    A : int
        Band width factor: bands are ``1/A`` wide (``p_up x (A - 1) / A`` below ``p_up``).
    n_bands : int
        Bands per loan, 4 to 50 (``MIN_TICKS``/``MAX_TICKS``).
    loan_discount : float
        Sets the highest debt a loan may take at creation, hence where its bands sit; fraction.
    liquidation_discount : float
        Hard-liquidation threshold; fraction, below ``loan_discount``.
    """

    A: int = Field(ge=2, le=10_000)
    n_bands: int = Field(default=10, ge=4, le=50)
    loan_discount: float = Field(gt=0.0, lt=1.0)
    liquidation_discount: float = Field(ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _discounts(self) -> BandsParams:
        if not self.liquidation_discount < self.loan_discount:
            raise ValueError("liquidation_discount must be below loan_discount (crvUSD "
                             "requires it, or a new loan could be liquidated at once)")
        return self


class GraduatedParams(StrictModel):
    """A sliding scale of liquidation tiers.

    Attributes
    ----------
    tiers : list of [health, fraction]
        Up to four tiers, health thresholds strictly falling and fractions rising, the first at
        health 1.0 (any liquidatable account). A tier closes ``fraction`` of the position
        (perps) or debt (loans) once health is below its threshold; the deepest tier reached
        applies.
    """

    tiers: list[tuple[float, float]] = Field(min_length=1, max_length=4)

    @model_validator(mode="after")
    def _ordered(self) -> GraduatedParams:
        health = [h for h, _ in self.tiers]
        fraction = [f for _, f in self.tiers]
        if health[0] != 1.0:
            raise ValueError("the first tier's health must be 1.0 (any liquidatable account)")
        if any(b >= a for a, b in zip(health, health[1:], strict=False)) or health[-1] <= 0:
            raise ValueError("tier health thresholds must fall strictly and stay above 0")
        if any(not 0 < f <= 1 for f in fraction) or any(
                b < a for a, b in zip(fraction, fraction[1:], strict=False)):
            raise ValueError("tier fractions must be in (0, 1] and must not fall")
        return self


class _PolicyBase(StrictModel):
    name: str = Field(min_length=1)
    description: str = ""
    source: str = ""
    keeper_share: float = Field(default=0.5, ge=0.0, le=1.0)
    # who liquidates: "keepers" (third-party liquidators, who may be late: [keepers]
    # latency_minutes, drawn by ensembles) or "engine" (the venue's matching engine closes a
    # liquidatable position at once: ensembles draw no keeper latency for it)
    liquidator: Literal["keepers", "engine"] = "keepers"
    perp: PerpParams
    loan: LoanParams
    waterfall: WaterfallParams = WaterfallParams()
    slicing: SlicingParams = SlicingParams()
    penalty: PenaltyParams = PenaltyParams()
    dynamic_margin: DynamicMarginParams | None = None
    predictive: PredictiveParams | None = None

    @model_validator(mode="after")
    def _ramp_fits(self) -> _PolicyBase:
        if self.penalty.model != "health_ramp":
            return self
        lt = self.loan.liquidation_threshold if self.loan is not None else 0.0
        if lt * (1.0 + self.penalty.max_bonus) >= 1.0:
            raise ValueError("loan.liquidation_threshold x (1 + penalty.max_bonus) must be < 1")
        partial = getattr(self, "partial", None)
        if (partial is not None and partial.close_factor < 1.0
                and partial.full_close_health != self.penalty.health_for_max_bonus):
            raise ValueError(
                "penalty.model = 'health_ramp' with partial.close_factor < 1 needs "
                "partial.full_close_health = penalty.health_for_max_bonus (one health at which "
                "a liquidation is at its largest)")
        return self

    @model_validator(mode="after")
    def _margin_below_one(self) -> _PolicyBase:
        if self.dynamic_margin is not None and (
                self.dynamic_margin.cap * self.perp.maintenance_margin_rate >= 0.5):
            raise ValueError("dynamic_margin.cap x perp.maintenance_margin_rate must be < 0.5")
        return self


class HardPolicy(_PolicyBase):
    """Close the whole position (repay the whole debt) once liquidatable."""

    family: Literal["hard"]


class PartialPolicy(_PolicyBase):
    """Close just enough to restore ``partial.target_health``, capped by the close factor."""

    family: Literal["partial"]
    partial: PartialParams = PartialParams()


class GraduatedPolicy(_PolicyBase):
    """Close a tier's fraction of the position as health falls through the tiers."""

    family: Literal["graduated"]
    graduated: GraduatedParams


class AuctionPolicy(_PolicyBase):
    """Sell a liquidated loan's collateral in a Dutch auction; perps are liquidated hard."""

    family: Literal["auction"]
    auction: AuctionParams = AuctionParams()


class SoftBandsPolicy(_PolicyBase):
    """Soft-liquidate loans in bands (crvUSD LLAMMA); perps are liquidated hard.

    ``[loan]`` is not used (the bands set the loans' thresholds) and may be left out.
    """

    family: Literal["soft_bands"]
    loan: LoanParams | None = None
    bands: BandsParams


Policy = Annotated[HardPolicy | PartialPolicy | GraduatedPolicy | AuctionPolicy
                   | SoftBandsPolicy, Field(discriminator="family")]
