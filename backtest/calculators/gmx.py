"""GMX v2 (gmx-synthetics) position liquidation check in exact integers.

USD values are integers with 30 decimals (``FLOAT_PRECISION = 1e30``, ``$1 = 10**30``), as in
the contracts; factors are 30-decimal integers too (``applyFactor(value, factor) =
value * factor / 1e30``); token prices are USD per smallest token unit times ``1e30``.

Sources: gmx-io/gmx-synthetics ``contracts/position/PositionUtils.sol``
``isPositionLiquidatable`` (L316-452), ``contracts/utils/Precision.sol`` ``applyFactor``,
``config/markets.ts`` (min collateral factor L282-283), ``contracts/adl/AdlUtils.sol``.
Repository at the commit read:
https://github.com/gmx-io/gmx-synthetics/tree/a5c0c8835182cbd84e47dca04b971239311d2f1d.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "FLOAT_PRECISION",
    "USD",
    "DEFAULT_MIN_COLLATERAL_USD",
    "DEFAULT_MIN_COLLATERAL_FACTOR",
    "apply_factor",
    "position_pnl_usd",
    "LiquidationCheck",
    "is_position_liquidatable",
    "is_adl_enabled",
]

FLOAT_PRECISION = 10**30
USD = FLOAT_PRECISION
DEFAULT_MIN_COLLATERAL_USD = 1 * USD
DEFAULT_MIN_COLLATERAL_FACTOR = FLOAT_PRECISION // 100  # 1%


def _int(name: str, value: int, nonneg: bool = True) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int (30-decimal fixed point), got "
                         f"{type(value).__name__}")
    if nonneg and value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def apply_factor(value: int, factor: int) -> int:
    """``value * factor / 1e30`` (``Precision.applyFactor``, rounds down).

    Parameters
    ----------
    value : int
        Non-negative 30-decimal value.
    factor : int
        30-decimal factor.

    Returns
    -------
    int

    Raises
    ------
    ValueError
        If an argument is negative or not an int.

    Notes
    -----
    Source: gmx-synthetics ``contracts/utils/Precision.sol``.
    """
    return _int("value", value) * _int("factor", factor) // FLOAT_PRECISION


def position_pnl_usd(size_in_tokens: int, size_in_usd: int, price: int, is_long: bool) -> int:
    """Mark-to-market PnL: ``size_in_tokens * price - size_in_usd`` (negated for shorts).

    Parameters
    ----------
    size_in_tokens : int
        Position size in the index token's smallest units.
    size_in_usd : int
        Position size in USD at open, 30 decimals.
    price : int
        Index token price, USD per smallest unit times ``1e30``.
    is_long : bool
        Position side.

    Returns
    -------
    int
        PnL, USD 30 decimals (signed).

    Raises
    ------
    ValueError
        If an argument is negative or not an int.

    Notes
    -----
    Simplified ``PositionUtils.getPositionPnlUsd`` (no pool PnL cap, single price).
    """
    value = _int("size_in_tokens", size_in_tokens) * _int("price", price)
    return value - _int("size_in_usd", size_in_usd) if is_long else size_in_usd - value


@dataclass(frozen=True)
class LiquidationCheck:
    """Result of :func:`is_position_liquidatable`.

    Attributes
    ----------
    liquidatable : bool
    reason : str
        ``"min collateral"``, ``"< 0"``, ``"min collateral for leverage"`` or ``""``.
    remaining_collateral_usd : int
        ``collateral + pnl + min(impact, 0) - closing costs``, USD 30 decimals.
    price_impact_usd : int
        Impact used in the check (positive impact counts as 0, negative capped).
    min_collateral_usd_for_leverage : int
        ``applyFactor(size_in_usd, min_collateral_factor)``.
    """

    liquidatable: bool
    reason: str
    remaining_collateral_usd: int
    price_impact_usd: int
    min_collateral_usd_for_leverage: int


def is_position_liquidatable(
    collateral_usd: int,
    pnl_usd: int,
    size_in_usd: int,
    price_impact_usd: int = 0,
    collateral_cost_usd: int = 0,
    min_collateral_factor: int = DEFAULT_MIN_COLLATERAL_FACTOR,
    max_position_impact_factor_for_liquidations: int = 0,
    min_collateral_usd: int = DEFAULT_MIN_COLLATERAL_USD,
    validate_min_collateral_usd: bool = True,
) -> LiquidationCheck:
    """GMX v2 ``isPositionLiquidatable``.

    Parameters
    ----------
    collateral_usd : int
        Collateral amount times the collateral token's min price, USD 30 decimals.
    pnl_usd : int
        Position PnL, USD 30 decimals (signed).
    size_in_usd : int
        Position size, USD 30 decimals.
    price_impact_usd : int, default 0
        Price impact of closing the whole position, USD 30 decimals (signed).
    collateral_cost_usd : int, default 0
        Closing fees (position fee, borrowing and funding fees; not the liquidation fee), USD.
    min_collateral_factor : int, default 1%
        Market ``minCollateralFactor``, 30 decimals.
    max_position_impact_factor_for_liquidations : int, default 0
        Cap on negative impact as a share of size, 30 decimals.
    min_collateral_usd : int, default $1
        ``MIN_COLLATERAL_USD``, USD 30 decimals.
    validate_min_collateral_usd : bool, default True
        Apply the ``MIN_COLLATERAL_USD`` test (the contract's ``shouldValidateMinCollateralUsd``).

    Returns
    -------
    LiquidationCheck

    Raises
    ------
    ValueError
        If an argument is not an int or a non-signed argument is negative.

    Notes
    -----
    Source: gmx-synthetics ``PositionUtils.sol`` L316-452: positive impact counts as 0 and
    negative impact is floored at ``-applyFactor(size, maxPositionImpactFactorForLiquidations)``;
    liquidatable if remaining collateral < ``MIN_COLLATERAL_USD``, or <= 0, or
    < ``applyFactor(size, minCollateralFactor)``.
    """
    _int("collateral_usd", collateral_usd)
    _int("pnl_usd", pnl_usd, nonneg=False)
    _int("size_in_usd", size_in_usd)
    _int("price_impact_usd", price_impact_usd, nonneg=False)
    _int("collateral_cost_usd", collateral_cost_usd)
    _int("min_collateral_usd", min_collateral_usd)
    if price_impact_usd >= 0:
        impact = 0
    else:
        cap = -apply_factor(size_in_usd, max_position_impact_factor_for_liquidations)
        impact = max(price_impact_usd, cap)
    remaining = collateral_usd + pnl_usd + impact - collateral_cost_usd
    for_leverage = apply_factor(size_in_usd, min_collateral_factor)
    reason = ""
    if validate_min_collateral_usd and remaining < min_collateral_usd:
        reason = "min collateral"
    elif remaining <= 0:
        reason = "< 0"
    elif remaining < for_leverage:
        reason = "min collateral for leverage"
    return LiquidationCheck(bool(reason), reason, remaining, impact, for_leverage)


def is_adl_enabled(pnl_to_pool_factor: int, max_pnl_factor_for_adl: int) -> bool:
    """Whether ADL may run on a market side: pending PnL / pool value above the ADL threshold.

    Parameters
    ----------
    pnl_to_pool_factor : int
        Traders' pending PnL over pool value, 30 decimals (signed).
    max_pnl_factor_for_adl : int
        ``MAX_PNL_FACTOR_FOR_ADL``, 30 decimals (85% in the base config).

    Returns
    -------
    bool

    Raises
    ------
    ValueError
        If an argument is not an int.

    Notes
    -----
    Source: gmx-synthetics ``contracts/adl/AdlUtils.sol``; positions are then reduced until the
    factor falls below ``MIN_PNL_FACTOR_AFTER_ADL`` (77%).
    """
    _int("pnl_to_pool_factor", pnl_to_pool_factor, nonneg=False)
    return pnl_to_pool_factor > _int("max_pnl_factor_for_adl", max_pnl_factor_for_adl)
