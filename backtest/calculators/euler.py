"""Euler v2 (Euler Vault Kit) liquidation arithmetic in exact integers.

Values are integers in the vault's unit of account (as the oracle returns them, typically
18 decimals); balances are token or vault-share units; the discount factor is a WAD
(``1e18`` = no discount); ``maxLiquidationDiscount`` uses the vault config scale (``1e4``).

Sources: euler-xyz/euler-vault-kit ``src/EVault/modules/Liquidation.sol``
``calculateLiquidation`` (desired repay pro rata, L109-117) and ``calculateMaxLiquidation``
(L120-183); ``MIN_SOCIALIZATION_LIABILITY_VALUE`` (L22). Repository at the
commit read:
https://github.com/euler-xyz/euler-vault-kit/tree/5b98b42048ba11ae82fb62dfec06d1010c8e41e6.
"""

from __future__ import annotations

from dataclasses import dataclass

from backtest.errors import LiqbtError

__all__ = [
    "WAD",
    "CONFIG_SCALE",
    "MIN_SOCIALIZATION_LIABILITY_VALUE",
    "ExcessiveRepayAmount",
    "discount_factor",
    "MaxLiquidation",
    "max_liquidation",
    "pro_rata_yield",
    "socializes_debt",
]

WAD = 10**18
CONFIG_SCALE = 10**4
MIN_SOCIALIZATION_LIABILITY_VALUE = 10**6


class ExcessiveRepayAmount(LiqbtError):
    """The liquidation would revert with ``E_ExcessiveRepayAmount`` (repay above the maximum)."""


def _nonneg(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def discount_factor(
    collateral_value_adjusted: int, liability_value: int, max_liquidation_discount: int
) -> int | None:
    """Discount factor of a liquidation: the health score, floored at ``1 - maxDiscount``.

    Parameters
    ----------
    collateral_value_adjusted : int
        Sum of collateral values times their liquidation LTV, unit of account (risk-adjusted,
        ``calculateLiquidity(..., LIQUIDATION)``).
    liability_value : int
        Liability value in the unit of account (same pricing as above), ``> 0``.
    max_liquidation_discount : int
        Vault's ``maxLiquidationDiscount``, ``1e4`` scale (``0.2e4`` = 20%).

    Returns
    -------
    int or None
        ``max(collateral * 1e18 / liability, 1e18 - 1e18 * maxDiscount / 1e4)``, WAD; ``None``
        when the account is healthy (``collateral_value_adjusted > liability_value``).

    Raises
    ------
    ValueError
        If an argument is negative or not an int, ``liability_value == 0`` or
        ``max_liquidation_discount > 1e4``.

    Notes
    -----
    Source: euler-vault-kit ``Liquidation.sol`` L120-140. The liquidator's bonus is
    ``1 - discountFactor``: the worse the health, the larger the bonus, up to the cap.
    """
    _nonneg("collateral_value_adjusted", collateral_value_adjusted)
    if _nonneg("liability_value", liability_value) == 0:
        raise ValueError("liability_value must be > 0 (no liability: nothing to liquidate)")
    if _nonneg("max_liquidation_discount", max_liquidation_discount) > CONFIG_SCALE:
        raise ValueError("max_liquidation_discount is in 1e4 scale and must be <= 1e4")
    if collateral_value_adjusted > liability_value:
        return None
    factor = collateral_value_adjusted * WAD // liability_value
    floor = WAD - WAD * max_liquidation_discount // CONFIG_SCALE
    return max(factor, floor)


@dataclass(frozen=True)
class MaxLiquidation:
    """Result of ``calculateMaxLiquidation``.

    Attributes
    ----------
    max_repay : int
        Maximum liability the liquidator takes over, liability asset units.
    max_yield : int
        Collateral balance (shares) transferred for that repay.
    discount_factor : int or None
        WAD; ``None`` when the account is healthy (then both amounts are 0).
    """

    max_repay: int
    max_yield: int
    discount_factor: int | None


def max_liquidation(
    collateral_value_adjusted: int,
    liability_value_adjusted: int,
    liability: int,
    liability_value: int,
    collateral_balance: int,
    collateral_value: int,
    max_liquidation_discount: int,
) -> MaxLiquidation:
    """Maximum repay and yield for one collateral (Euler ``calculateMaxLiquidation``).

    Parameters
    ----------
    collateral_value_adjusted : int
        Risk-adjusted collateral value over all collaterals (liquidation LTV applied), unit of
        account.
    liability_value_adjusted : int
        Liability value used for the health check, unit of account, ``> 0``.
    liability : int
        Violator's debt, liability asset units.
    liability_value : int
        Mid-price value of ``liability`` in the unit of account (equal to ``liability`` when the
        asset is the unit of account), ``> 0``.
    collateral_balance : int
        Violator's balance of the chosen collateral, token/share units.
    collateral_value : int
        Mid-price value of that balance, unit of account (not LTV-adjusted).
    max_liquidation_discount : int
        ``1e4`` scale.

    Returns
    -------
    MaxLiquidation

    Raises
    ------
    ValueError
        If an argument is negative or not an int, or a liability value is 0.

    Notes
    -----
    Source: euler-vault-kit ``Liquidation.sol`` L120-183::

        maxRepayValue = liabilityValue
        maxYieldValue = maxRepayValue * 1e18 / discountFactor
        if collateralValue < maxYieldValue:
            maxRepayValue = collateralValue * discountFactor / 1e18
            maxYieldValue = collateralValue
        repay = maxRepayValue * liability / liabilityValue
        yield = maxYieldValue * collateralBalance / collateralValue

    Worthless collateral (``collateral_value == 0``) is claimable with no repay.
    """
    factor = discount_factor(collateral_value_adjusted, liability_value_adjusted,
                             max_liquidation_discount)
    _nonneg("liability", liability)
    _nonneg("collateral_balance", collateral_balance)
    _nonneg("collateral_value", collateral_value)
    if _nonneg("liability_value", liability_value) == 0:
        raise ValueError("liability_value must be > 0")
    if factor is None:
        return MaxLiquidation(0, 0, None)
    if collateral_value == 0:
        return MaxLiquidation(0, collateral_balance, factor)
    max_repay_value = liability_value
    max_yield_value = max_repay_value * WAD // factor
    if collateral_value < max_yield_value:
        max_repay_value = collateral_value * factor // WAD
        max_yield_value = collateral_value
    return MaxLiquidation(
        max_repay=max_repay_value * liability // liability_value,
        max_yield=max_yield_value * collateral_balance // collateral_value,
        discount_factor=factor,
    )


def pro_rata_yield(desired_repay: int, max_repay: int, max_yield: int) -> int:
    """Yield for a partial repay: ``desiredRepay * maxYield / maxRepay``.

    Parameters
    ----------
    desired_repay : int
        Liability the liquidator chooses to take over, asset units.
    max_repay, max_yield : int
        From :func:`max_liquidation`.

    Returns
    -------
    int
        Collateral balance transferred: ``desired_repay x max_yield / max_repay`` rounded down;
        ``max_yield`` itself when ``max_repay == 0`` (then ``desired_repay`` must be 0 too, and
        the contract leaves the yield at its maximum: a liability worth nothing releases all the
        collateral the liquidation may take).

    Raises
    ------
    ValueError
        If an argument is negative or not an int.
    ExcessiveRepayAmount
        If ``desired_repay > max_repay``.

    Notes
    -----
    Source: euler-vault-kit ``Liquidation.sol`` L109-117 (the pro-rata scaling runs only
    ``if (maxRepay > 0)``).
    """
    _nonneg("desired_repay", desired_repay)
    _nonneg("max_repay", max_repay)
    _nonneg("max_yield", max_yield)
    if desired_repay > max_repay:
        raise ExcessiveRepayAmount(
            f"repay {desired_repay} exceeds the maximum {max_repay} (E_ExcessiveRepayAmount)"
        )
    if max_repay == 0:
        return max_yield
    return desired_repay * max_yield // max_repay


def socializes_debt(
    liability_after: int, liability_value_after: int, collateral_left: bool,
    dont_socialize: bool = False,
) -> bool:
    """Whether leftover debt is socialised after a liquidation.

    Parameters
    ----------
    liability_after : int
        Debt left with the violator, asset units.
    liability_value_after : int
        Its value, unit of account.
    collateral_left : bool
        Whether the violator still holds any recognised collateral.
    dont_socialize : bool, default False
        The vault's ``CFG_DONT_SOCIALIZE_DEBT`` flag.

    Returns
    -------
    bool

    Raises
    ------
    ValueError
        If an amount is negative or not an int.

    Notes
    -----
    Source: euler-vault-kit ``Liquidation.sol`` ``executeLiquidation`` and
    ``MIN_SOCIALIZATION_LIABILITY_VALUE`` (L22)
    (https://github.com/euler-xyz/euler-vault-kit/tree/5b98b42048ba11ae82fb62dfec06d1010c8e41e6);
    the
    value threshold applies in the later revision of the module.
    """
    _nonneg("liability_after", liability_after)
    _nonneg("liability_value_after", liability_value_after)
    return (
        not dont_socialize
        and liability_after > 0
        and not collateral_left
        and liability_value_after >= MIN_SOCIALIZATION_LIABILITY_VALUE
    )
