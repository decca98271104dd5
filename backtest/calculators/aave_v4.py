"""Aave v4 (Spoke) liquidation arithmetic in exact integers.

Aave v4 replaces v3's close factor with a repayment sized to restore a governance **target
health factor**, and v3's fixed bonus with a **liquidation bonus that rises as health falls**:
from ``minLiquidationBonus = 100% + (maxLiquidationBonus - 100%) x liquidationBonusFactor`` just
below health factor 1 to ``maxLiquidationBonus`` at and below ``healthFactorForMaxBonus``,
linear in between. A liquidation that would leave less than $1,000 of debt in the reserve must
repay all of it (``DUST_DEBT_LIQUIDATION_THRESHOLD``).

Units follow the contracts:

- token amounts are integers in the token's smallest unit (``10**decimals`` per token);
- prices are oracle integers, USD with 8 decimals;
- "value" amounts (``totalDebtInBaseCurrency``, the dust threshold) are USD with 26 decimals:
  token units x price x 1e18 / 10**decimals (``price.toWad()``);
- percentages (bonus, collateral factor, liquidation fee, bonus factor) are basis points,
  ``10_000 = 100%``; the bonus includes the 100% (``10500`` = 5% bonus);
- health factors are WAD (``10**18 = 1.0``).

Version modelled: aave/aave-v4 ``src/contracts/spoke/libraries/LiquidationLogic.sol`` at commit
``ae6f051e`` (``calculateLiquidationBonus``, ``_calculateDebtToTargetHealthFactor``,
``_calculateMaxDebtToLiquidate``, ``_calculateLiquidationAmounts``, ``_evaluateDeficit``);
design: Aave governance forum, "Overview of Aave V4's liquidation engine". The repository is
under active development; later commits express the debt-to-target in RAY
(``calculateDebtToTargetHealthFactorRay``) with the same value rounded up.

Why over 400 lines: it mirrors one contract's liquidation arithmetic (the Spoke's target health
factor and rising bonus); one module per protocol is the calculators' rule, mirrored by its
test module.
"""

from __future__ import annotations

from dataclasses import dataclass

from backtest.errors import LiqbtError

__all__ = [
    "WAD",
    "PERCENTAGE_FACTOR",
    "HEALTH_FACTOR_LIQUIDATION_THRESHOLD",
    "DUST_DEBT_LIQUIDATION_THRESHOLD",
    "MustNotLeaveDust",
    "liquidation_bonus",
    "debt_to_target_health_factor",
    "max_debt_to_liquidate",
    "LiquidationAmounts",
    "liquidation_amounts",
    "creates_deficit",
]

WAD = 10**18
PERCENTAGE_FACTOR = 10_000
HEALTH_FACTOR_LIQUIDATION_THRESHOLD = WAD
#: $1,000 in value units (USD x 1e26): ``1000e26``.
DUST_DEBT_LIQUIDATION_THRESHOLD = 1_000 * 10**26


class MustNotLeaveDust(LiqbtError):
    """The liquidation would revert with ``ISpoke.MustNotLeaveDust``.

    Raised when what the liquidation leaves of the reserve's debt is worth less than the dust
    threshold ($1,000) and the liquidator did not offer to repay all of it.
    """


def _nonneg(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def _positive(name: str, value: int) -> int:
    if _nonneg(name, value) == 0:
        raise ValueError(f"{name} must be > 0")
    return value


def _div_up(a: int, b: int) -> int:
    return -(-a // b)


def liquidation_bonus(
    health_factor: int,
    max_liquidation_bonus: int,
    health_factor_for_max_bonus: int,
    liquidation_bonus_factor: int,
) -> int:
    """Liquidation bonus at ``health_factor``, basis points including 100%.

    Parameters
    ----------
    health_factor : int
        Borrower's health factor, WAD (below 1e18 when liquidatable).
    max_liquidation_bonus : int
        ``maxLiquidationBonus`` of the collateral reserve, basis points, ``>= 10_000``.
    health_factor_for_max_bonus : int
        ``healthFactorForMaxBonus``, WAD, ``< 1e18``: at or below it the bonus is the maximum.
    liquidation_bonus_factor : int
        ``liquidationBonusFactor``, basis points ``<= 10_000``: the minimum bonus (just below
        HF 1) as a share of the maximum's excess over 100%.

    Returns
    -------
    int
        ``max`` if ``HF <= healthFactorForMaxBonus``, else
        ``min + (max - min) x (1e18 - HF) / (1e18 - healthFactorForMaxBonus)`` (floor), with
        ``min = percentMulDown(max - 10_000, factor) + 10_000``.

    Raises
    ------
    ValueError
        If an argument is negative or not an int, ``max_liquidation_bonus < 10_000``,
        ``liquidation_bonus_factor > 10_000`` or ``health_factor_for_max_bonus >= 1e18``.

    Notes
    -----
    Source: aave/aave-v4 ``src/contracts/spoke/libraries/LiquidationLogic.sol``
    ``calculateLiquidationBonus``.
    """
    _nonneg("health_factor", health_factor)
    if _nonneg("max_liquidation_bonus", max_liquidation_bonus) < PERCENTAGE_FACTOR:
        raise ValueError("max_liquidation_bonus is in basis points including 100% (e.g. 10500)")
    if _nonneg("liquidation_bonus_factor", liquidation_bonus_factor) > PERCENTAGE_FACTOR:
        raise ValueError("liquidation_bonus_factor must be <= 10_000 basis points")
    if _nonneg("health_factor_for_max_bonus", health_factor_for_max_bonus) >= WAD:
        raise ValueError("health_factor_for_max_bonus must be below 1e18")
    if health_factor <= health_factor_for_max_bonus:
        return max_liquidation_bonus
    min_bonus = ((max_liquidation_bonus - PERCENTAGE_FACTOR) * liquidation_bonus_factor
                 // PERCENTAGE_FACTOR + PERCENTAGE_FACTOR)
    return min_bonus + (max_liquidation_bonus - min_bonus) * (
        HEALTH_FACTOR_LIQUIDATION_THRESHOLD - health_factor
    ) // (HEALTH_FACTOR_LIQUIDATION_THRESHOLD - health_factor_for_max_bonus)


def debt_to_target_health_factor(
    total_debt_value: int,
    health_factor: int,
    target_health_factor: int,
    liquidation_bonus_bps: int,
    collateral_factor: int,
    debt_price: int,
    debt_decimals: int,
) -> int:
    """Debt to repay so that the health factor reaches the target, token units (rounded up).

    Repaying ``r`` and seizing ``r x bonus`` of collateral whose collateral factor is ``CF``
    moves HF to the target when ``r = debt x (T - HF) / (T - bonus x CF)``.

    Parameters
    ----------
    total_debt_value : int
        Borrower's total debt, value units (USD x 1e26).
    health_factor, target_health_factor : int
        Current and target health factor, WAD; ``target >= health_factor``.
    liquidation_bonus_bps : int
        Bonus of this liquidation, basis points including 100% (:func:`liquidation_bonus`).
    collateral_factor : int
        Collateral factor of the seized reserve, basis points; ``bonus x CF < 100%``.
    debt_price : int
        Debt token price, USD with 8 decimals, ``> 0``.
    debt_decimals : int
        Debt token decimals.

    Returns
    -------
    int
        Debt token units, rounded up (``mulDivUp``).

    Raises
    ------
    ValueError
        If an argument is negative or not an int, ``debt_price == 0``, the target is below
        the health factor (the contract underflows) or at or below ``bonus x CF``.

    Notes
    -----
    Source: aave/aave-v4 ``LiquidationLogic.sol`` ``_calculateDebtToTargetHealthFactor``:
    ``penalty = bpsToWad(bonus).percentMulUp(CF)``;
    ``mulDivUp(totalDebt, unit x (T - HF), (T - penalty) x price.toWad())``.
    """
    _nonneg("total_debt_value", total_debt_value)
    _nonneg("health_factor", health_factor)
    _nonneg("target_health_factor", target_health_factor)
    _nonneg("liquidation_bonus_bps", liquidation_bonus_bps)
    _nonneg("collateral_factor", collateral_factor)
    _positive("debt_price", debt_price)
    unit = 10 ** _nonneg("debt_decimals", debt_decimals)
    if target_health_factor < health_factor:
        raise ValueError("target_health_factor is below health_factor (the contract reverts)")
    penalty = _div_up(liquidation_bonus_bps * 10**14 * collateral_factor, PERCENTAGE_FACTOR)
    if target_health_factor <= penalty:
        raise ValueError("target_health_factor must exceed liquidation bonus x collateral factor")
    return _div_up(total_debt_value * unit * (target_health_factor - health_factor),
                   (target_health_factor - penalty) * debt_price * WAD)


def max_debt_to_liquidate(
    debt_reserve_balance: int,
    debt_to_cover: int,
    total_debt_value: int,
    health_factor: int,
    target_health_factor: int,
    liquidation_bonus_bps: int,
    collateral_factor: int,
    debt_price: int,
    debt_decimals: int,
    *,
    dust_threshold: int = DUST_DEBT_LIQUIDATION_THRESHOLD,
) -> int:
    """Debt one ``liquidationCall`` repays, the dust rule included.

    The least of the request, the reserve debt and the debt to the target health factor, or all
    of the reserve debt when the rest would be dust.

    Parameters
    ----------
    debt_reserve_balance : int
        Borrower's debt (drawn + premium) in the repaid reserve, token units, ``> 0``.
    debt_to_cover : int
        Liquidator's request, token units (``2**256 - 1`` for "as much as allowed").
    total_debt_value, health_factor, target_health_factor, liquidation_bonus_bps,
    collateral_factor, debt_price, debt_decimals :
        See :func:`debt_to_target_health_factor`.
    dust_threshold : int, default 1_000e26
        ``DUST_DEBT_LIQUIDATION_THRESHOLD`` ($1,000), value units.

    Returns
    -------
    int
        Token units.

    Raises
    ------
    ValueError
        If an argument is invalid (see :func:`debt_to_target_health_factor`).
    MustNotLeaveDust
        If the rest would be worth less than the dust threshold and ``debt_to_cover`` is below
        the reserve debt.

    Notes
    -----
    Source: aave/aave-v4 ``LiquidationLogic.sol`` ``_calculateMaxDebtToLiquidate``; the
    remaining debt's value is ``mulDivDown(rest, price.toWad(), unit)``.
    """
    _positive("debt_reserve_balance", debt_reserve_balance)
    _nonneg("debt_to_cover", debt_to_cover)
    _nonneg("dust_threshold", dust_threshold)
    amount = min(debt_reserve_balance, debt_to_cover)
    amount = min(amount, debt_to_target_health_factor(
        total_debt_value, health_factor, target_health_factor, liquidation_bonus_bps,
        collateral_factor, debt_price, debt_decimals))
    remaining_value = (debt_reserve_balance - amount) * debt_price * WAD // 10**debt_decimals
    if remaining_value < dust_threshold:
        if debt_to_cover < debt_reserve_balance:
            raise MustNotLeaveDust(
                "the liquidation would leave less than the dust threshold "
                f"(${dust_threshold / 10**26:,.0f}) of debt; the liquidator must offer to repay "
                "all of the reserve's debt"
            )
        amount = debt_reserve_balance
    return amount


@dataclass(frozen=True)
class LiquidationAmounts:
    """Result of ``_calculateLiquidationAmounts`` (token units unless noted).

    Attributes
    ----------
    liquidation_bonus : int
        Bonus applied, basis points including 100%.
    debt_to_liquidate : int
        Debt repaid by the liquidator.
    collateral_to_liquidate : int
        Collateral taken from the borrower.
    collateral_to_liquidator : int
        Collateral sent to the liquidator: ``collateral_to_liquidate`` minus the fee.
    liquidation_fee_amount : int
        Collateral paid to the protocol: ``percentMulDown(bonus part, liquidationFee)``.
    collateral_capped : bool
        True when the borrower's collateral balance was the binding constraint.
    """

    liquidation_bonus: int
    debt_to_liquidate: int
    collateral_to_liquidate: int
    collateral_to_liquidator: int
    liquidation_fee_amount: int
    collateral_capped: bool


def liquidation_amounts(
    *,
    debt_reserve_balance: int,
    collateral_reserve_balance: int,
    debt_to_cover: int,
    total_debt_value: int,
    health_factor: int,
    target_health_factor: int,
    max_liquidation_bonus: int,
    health_factor_for_max_bonus: int,
    liquidation_bonus_factor: int,
    collateral_factor: int,
    debt_price: int,
    debt_decimals: int,
    collateral_price: int,
    collateral_decimals: int,
    liquidation_fee: int,
    dust_threshold: int = DUST_DEBT_LIQUIDATION_THRESHOLD,
) -> LiquidationAmounts:
    """Bonus, debt repaid and collateral seized of one Aave v4 ``liquidationCall``.

    Parameters
    ----------
    debt_reserve_balance, collateral_reserve_balance : int
        Borrower's debt in the repaid reserve and collateral in the seized reserve, token units.
    debt_to_cover : int
        Liquidator's request, token units.
    total_debt_value : int
        Borrower's total debt, value units (USD x 1e26).
    health_factor, target_health_factor : int
        WAD; ``health_factor < 1e18``.
    max_liquidation_bonus, health_factor_for_max_bonus, liquidation_bonus_factor : int
        Bonus curve (see :func:`liquidation_bonus`).
    collateral_factor : int
        Collateral factor of the seized reserve, basis points.
    debt_price, collateral_price : int
        Oracle prices, USD with 8 decimals, ``> 0``.
    debt_decimals, collateral_decimals : int
        Token decimals.
    liquidation_fee : int
        Protocol's share of the bonus part, basis points.
    dust_threshold : int, default 1_000e26
        See :func:`max_debt_to_liquidate`.

    Returns
    -------
    LiquidationAmounts

    Raises
    ------
    ValueError
        If an argument is invalid or ``health_factor >= 1e18``
        (``HealthFactorNotBelowThreshold``).
    MustNotLeaveDust
        See :func:`max_debt_to_liquidate`.

    Notes
    -----
    Source: aave/aave-v4 ``LiquidationLogic.sol`` ``_calculateLiquidationAmounts``::

        debtToCollateral = mulDivDown(debt, debtPrice x collUnit, debtUnit x collPrice)
        collateral = percentMulDown(debtToCollateral, bonus)
        if collateral > balance:
            collateral = balance
            debtToCollateral = percentDivUp(collateral, bonus)
            debt = mulDivUp(debtToCollateral, collPrice x debtUnit, debtPrice x collUnit)
        toLiquidator = collateral - percentMulDown(collateral - debtToCollateral, fee)
    """
    if _nonneg("health_factor", health_factor) >= HEALTH_FACTOR_LIQUIDATION_THRESHOLD:
        raise ValueError("health factor is not below 1e18: the position is not liquidatable")
    _nonneg("collateral_reserve_balance", collateral_reserve_balance)
    _positive("collateral_price", collateral_price)
    coll_unit = 10 ** _nonneg("collateral_decimals", collateral_decimals)
    debt_unit = 10 ** _nonneg("debt_decimals", debt_decimals)
    if _nonneg("liquidation_fee", liquidation_fee) > PERCENTAGE_FACTOR:
        raise ValueError("liquidation_fee must be <= 10_000 basis points")
    bonus = liquidation_bonus(health_factor, max_liquidation_bonus, health_factor_for_max_bonus,
                              liquidation_bonus_factor)
    debt = max_debt_to_liquidate(
        debt_reserve_balance, debt_to_cover, total_debt_value, health_factor,
        target_health_factor, bonus, collateral_factor, debt_price, debt_decimals,
        dust_threshold=dust_threshold,
    )
    debt_to_collateral = debt * debt_price * coll_unit // (debt_unit * collateral_price)
    collateral = debt_to_collateral * bonus // PERCENTAGE_FACTOR
    capped = collateral > collateral_reserve_balance
    if capped:
        collateral = collateral_reserve_balance
        debt_to_collateral = _div_up(collateral * PERCENTAGE_FACTOR, bonus)
        debt = _div_up(debt_to_collateral * collateral_price * debt_unit,
                       debt_price * coll_unit)
    fee = (collateral - debt_to_collateral) * liquidation_fee // PERCENTAGE_FACTOR
    return LiquidationAmounts(
        liquidation_bonus=bonus,
        debt_to_liquidate=debt,
        collateral_to_liquidate=collateral,
        collateral_to_liquidator=collateral - fee,
        liquidation_fee_amount=fee,
        collateral_capped=capped,
    )


def creates_deficit(
    collateral_position_empty: bool,
    debt_position_empty: bool,
    supplied_collaterals_count: int,
    borrowed_reserves_count: int,
) -> bool:
    """Whether a liquidation leaves debt with no collateral at all (reported as a deficit).

    Parameters
    ----------
    collateral_position_empty, debt_position_empty : bool
        Whether the seized collateral reserve and the repaid debt reserve are now empty.
    supplied_collaterals_count, borrowed_reserves_count : int
        Reserves the borrower supplied as collateral and borrowed, before the call.

    Returns
    -------
    bool
        True when the only collateral is gone and some debt remains (in this or another
        reserve): the Spoke then writes the remaining debt off as a deficit.

    Raises
    ------
    ValueError
        If a count is negative or not an int.

    Notes
    -----
    Source: aave/aave-v4 ``LiquidationLogic.sol`` ``_evaluateDeficit``.
    """
    if not collateral_position_empty or _nonneg(
            "supplied_collaterals_count", supplied_collaterals_count) > 1:
        return False
    return not debt_position_empty or _nonneg("borrowed_reserves_count",
                                              borrowed_reserves_count) > 1
