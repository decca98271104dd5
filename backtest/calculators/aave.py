"""Aave v2 and v3 liquidation arithmetic (``LiquidationLogic``, ``GenericLogic``) in exact integers.

Units follow the contracts:

- token amounts are integers in the token's smallest unit (``10**decimals`` per token);
- prices and "base currency" values are oracle integers, USD with 8 decimals on Aave markets;
- percentages (liquidation threshold, liquidation bonus, protocol fee, close factor) are basis
  points with ``10_000 = 100%``; the liquidation bonus includes the 100% (``10500`` = 5% bonus);
- the health factor is a WAD (``10**18 = 1.0``).

Three rounding generations of ``_calculateAvailableCollateralToLiquidate`` are supported:

- ``"v3.0"``: v3.0 to v3.4 (aave-v3-core, and forks such as SparkLend): every percentage
  operation rounds half-up (``percentMul``/``percentDiv``);
- ``"v3.5"``: as v3.0, but the debt needed when collateral binds rounds up
  (``percentDivCeil``) (aave-v3-origin at commit e4cc47ee);
- ``"v3.7"``: ``maxCollateral`` and the bonus base round down, the protocol fee rounds up
  (``docs/3.7/liquidation-rounding.md``), debt needed rounds up.

Aave v2 (``LendingPoolCollateralManager``) has its own order of operations: it applies the
bonus to the whole product ``debtPrice x debtToCover x 10**collDecimals`` (half-up) before
dividing by ``collPrice x 10**debtDecimals``, where v3 divides first and applies the bonus to the
rounded base collateral; and its close factor is a flat 50% of the reserve's debt, whatever the
health factor. See :func:`collateral_to_liquidate_v2` and :func:`liquidation_call_v2`.

Governance-set constants (close-factor health threshold, the $2,000 full-liquidation threshold,
``MIN_LEFTOVER_BASE``) are keyword arguments of the functions that use them, defaulting to the
deployed values, so a preset or a fork can change them.

Sources: aave/protocol-v2 ``contracts/protocol/lendingpool/LendingPoolCollateralManager.sol``
(``liquidationCall``, ``_calculateAvailableCollateralToLiquidate``,
``LIQUIDATION_CLOSE_FACTOR_PERCENT = 5000``) and ``libraries/math/PercentageMath.sol``;
aave-dao/aave-v3-origin ``src/contracts/protocol/libraries/logic/LiquidationLogic.sol``
(close factor L43-64 and L258-282, dust rule L299-325, ``_calculateAvailableCollateralToLiquidate``
L583-625), ``GenericLogic.sol`` L156-164, ``docs/3.7/liquidation-rounding.md``; aave/aave-v3-core
``LiquidationLogic.sol`` L54-68, L375-379 (v3.0-3.2 close factor). Repositories at the commits read:
https://github.com/aave-dao/aave-v3-origin/tree/fd1fbd9150426ca8ace9cee45b4acf912ae84f5b,
https://github.com/aave/aave-v3-core/tree/782f51917056a53a2c228701058a6c3fb233684a.

Why over 400 lines: it mirrors one protocol's liquidation libraries (``LiquidationLogic``,
``GenericLogic`` and their ray/wad rounding helpers), which v2 and v3 share; split by version
it would duplicate the helpers. One module per protocol is the calculators' rule, and
``tests/test_calculators_aave.py`` mirrors it.
"""

from __future__ import annotations

from dataclasses import dataclass

from backtest.errors import LiqbtError

__all__ = [
    "WAD",
    "PERCENTAGE_FACTOR",
    "HALF_PERCENTAGE_FACTOR",
    "MAX_UINT256",
    "HEALTH_FACTOR_LIQUIDATION_THRESHOLD",
    "DEFAULT_LIQUIDATION_CLOSE_FACTOR",
    "CLOSE_FACTOR_HF_THRESHOLD",
    "MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD",
    "MIN_LEFTOVER_BASE",
    "ROUNDINGS",
    "MustNotLeaveDust",
    "percent_mul",
    "percent_div",
    "wad_div",
    "to_base_currency",
    "health_factor",
    "max_liquidatable_debt_legacy",
    "max_liquidatable_debt",
    "CollateralToLiquidate",
    "collateral_to_liquidate",
    "leaves_dust",
    "LiquidationCall",
    "liquidation_call",
    "V2_LIQUIDATION_CLOSE_FACTOR_PERCENT",
    "max_liquidatable_debt_v2",
    "collateral_to_liquidate_v2",
    "LiquidationCallV2",
    "liquidation_call_v2",
]

WAD = 10**18
PERCENTAGE_FACTOR = 10_000
HALF_PERCENTAGE_FACTOR = 5_000
MAX_UINT256 = 2**256 - 1

HEALTH_FACTOR_LIQUIDATION_THRESHOLD = WAD
DEFAULT_LIQUIDATION_CLOSE_FACTOR = 5_000
CLOSE_FACTOR_HF_THRESHOLD = 95 * 10**16
MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD = 2_000 * 10**8
MIN_LEFTOVER_BASE = MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD // 2

ROUNDINGS = ("v3.0", "v3.5", "v3.7")

#: Aave v2 close factor: 50% of the reserve's debt, at any health factor.
V2_LIQUIDATION_CLOSE_FACTOR_PERCENT = 5_000


class MustNotLeaveDust(LiqbtError):
    """The liquidation would revert with ``Errors.MustNotLeaveDust`` (v3.3 and later).

    Raised when a partial liquidation leaves less than ``MIN_LEFTOVER_BASE`` ($1,000) of debt in
    the repaid reserve or of collateral in the seized reserve.
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


def _check_bps(name: str, value: int) -> int:
    if _nonneg(name, value) > PERCENTAGE_FACTOR:
        raise ValueError(f"{name} must be <= 10_000 basis points, got {value}")
    return value


def _check_rounding(rounding: str) -> None:
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding must be one of {ROUNDINGS}, got {rounding!r}")


def percent_mul(value: int, percentage: int, rounding: str = "half_up") -> int:
    """``value * percentage / 10_000`` as Aave ``PercentageMath`` rounds it.

    Parameters
    ----------
    value : int
        Non-negative integer (token units or base-currency units).
    percentage : int
        Basis points, ``10_000 = 100%``.
    rounding : {"half_up", "floor", "ceil"}
        ``percentMul`` (half-up), ``percentMulFloor`` or ``percentMulCeil``.

    Returns
    -------
    int

    Raises
    ------
    ValueError
        If an argument is negative or not an int, or ``rounding`` is unknown.

    Notes
    -----
    Source: aave-v3-origin ``src/contracts/protocol/libraries/math/PercentageMath.sol``.
    """
    _nonneg("value", value)
    _nonneg("percentage", percentage)
    product = value * percentage
    if rounding == "half_up":
        return (product + HALF_PERCENTAGE_FACTOR) // PERCENTAGE_FACTOR
    if rounding == "floor":
        return product // PERCENTAGE_FACTOR
    if rounding == "ceil":
        return -(-product // PERCENTAGE_FACTOR)
    raise ValueError(f"rounding must be 'half_up', 'floor' or 'ceil', got {rounding!r}")


def percent_div(value: int, percentage: int, rounding: str = "half_up") -> int:
    """``value * 10_000 / percentage`` as Aave ``PercentageMath`` rounds it.

    Parameters
    ----------
    value : int
        Non-negative integer.
    percentage : int
        Basis points, ``> 0``.
    rounding : {"half_up", "floor", "ceil"}
        ``percentDiv`` (half-up: ``(value * 1e4 + percentage / 2) / percentage``),
        ``percentDivFloor`` or ``percentDivCeil``.

    Returns
    -------
    int

    Raises
    ------
    ValueError
        If an argument is negative or not an int, ``percentage == 0`` or ``rounding`` is
        unknown.

    Notes
    -----
    Source: aave-v3-origin ``PercentageMath.sol``.
    """
    _nonneg("value", value)
    _positive("percentage", percentage)
    numerator = value * PERCENTAGE_FACTOR
    if rounding == "half_up":
        return (numerator + percentage // 2) // percentage
    if rounding == "floor":
        return numerator // percentage
    if rounding == "ceil":
        return -(-numerator // percentage)
    raise ValueError(f"rounding must be 'half_up', 'floor' or 'ceil', got {rounding!r}")


def wad_div(a: int, b: int) -> int:
    """Return ``a * 1e18 / b`` rounded half-up (Aave ``WadRayMath.wadDiv``).

    Parameters
    ----------
    a, b : int
        Non-negative integers, ``b > 0``.

    Returns
    -------
    int

    Raises
    ------
    ValueError
        If an argument is negative or not an int, or ``b == 0``.

    Notes
    -----
    Source: aave-v3-origin ``src/contracts/protocol/libraries/math/WadRayMath.sol``.
    """
    _nonneg("a", a)
    _positive("b", b)
    return (a * WAD + b // 2) // b


def to_base_currency(amount: int, price: int, decimals: int, round_up: bool = False) -> int:
    """Token amount to base currency: ``amount * price / 10**decimals``.

    Parameters
    ----------
    amount : int
        Token units.
    price : int
        Oracle price, base currency units per whole token (USD with 8 decimals).
    decimals : int
        Token decimals.
    round_up : bool, default False
        Round up (``MathUtils.mulDivCeil``, used for debt from v3.5) instead of down.

    Returns
    -------
    int
        Base currency units.

    Raises
    ------
    ValueError
        If an argument is negative or not an int.

    Notes
    -----
    Source: aave-v3-origin ``LiquidationLogic.sol`` (``borrowerReserveDebtInBaseCurrency`` uses
    ``mulDivCeil``, collateral is floored) and ``GenericLogic.sol``.
    """
    _nonneg("amount", amount)
    _nonneg("price", price)
    unit = 10 ** _nonneg("decimals", decimals)
    if round_up:
        return -(-(amount * price) // unit)
    return amount * price // unit


def health_factor(
    collaterals_base: list[int] | tuple[int, ...],
    liquidation_thresholds: list[int] | tuple[int, ...],
    total_debt_base: int,
    formula: str = "origin",
) -> int:
    """Health factor of an account, WAD.

    Parameters
    ----------
    collaterals_base : sequence of int
        Value of each collateral reserve in base currency (8 decimals); only reserves enabled
        as collateral.
    liquidation_thresholds : sequence of int
        Liquidation threshold of each reserve, basis points (eMode values where they apply).
    total_debt_base : int
        Total debt in base currency.
    formula : {"origin", "legacy"}
        ``"origin"``: aave-v3-origin ``GenericLogic``:
        ``wadDiv(sum(c_i * LT_i), debt) / 10_000``. ``"legacy"``: aave-v3-core (v3.0-3.2) and
        forks: ``wadDiv(percentMul(totalCollateral, avgLT), debt)`` with
        ``avgLT = floor(sum(c_i * LT_i) / totalCollateral)``. They differ in the last digits.

    Returns
    -------
    int
        Health factor, WAD; ``2**256 - 1`` when there is no debt. Liquidation is allowed when it
        is below ``HEALTH_FACTOR_LIQUIDATION_THRESHOLD`` (``1e18``).

    Raises
    ------
    ValueError
        If the sequences differ in length, a value is negative or not an int, or ``formula`` is
        unknown.

    Notes
    -----
    Source: aave-v3-origin ``GenericLogic.sol`` L156-164; aave-v3-core ``GenericLogic.sol``
    (``calculateUserAccountData``); ``ValidationLogic.sol`` L32, L282.
    """
    if len(collaterals_base) != len(liquidation_thresholds):
        raise ValueError("collaterals_base and liquidation_thresholds differ in length")
    weighted = 0
    total = 0
    for c, lt in zip(collaterals_base, liquidation_thresholds, strict=True):
        weighted += _nonneg("collateral value", c) * _nonneg("liquidation threshold", lt)
        total += c
    if _nonneg("total_debt_base", total_debt_base) == 0:
        return MAX_UINT256
    if formula == "origin":
        return wad_div(weighted, total_debt_base) // PERCENTAGE_FACTOR
    if formula == "legacy":
        avg_lt = weighted // total if total else 0
        return wad_div(percent_mul(total, avg_lt), total_debt_base)
    raise ValueError(f"formula must be 'origin' or 'legacy', got {formula!r}")


def max_liquidatable_debt_legacy(
    reserve_debt: int,
    health_factor_wad: int,
    *,
    close_factor: int = DEFAULT_LIQUIDATION_CLOSE_FACTOR,
    close_factor_hf_threshold: int = CLOSE_FACTOR_HF_THRESHOLD,
) -> int:
    """Close-factor cap of v3.0-3.2: 50% of the reserve's debt if HF > 0.95, else 100%.

    Parameters
    ----------
    reserve_debt : int
        Borrower's debt (stable + variable) in the reserve being repaid, token units.
    health_factor_wad : int
        Health factor, WAD.
    close_factor : int, default 5_000
        Basis points of the debt liquidatable above the threshold
        (``DEFAULT_LIQUIDATION_CLOSE_FACTOR``).
    close_factor_hf_threshold : int, default 0.95e18
        Health factor (WAD) at or below which the whole debt is liquidatable
        (``CLOSE_FACTOR_HF_THRESHOLD``).

    Returns
    -------
    int
        ``percentMul(reserve_debt, closeFactor)`` (half-up), token units.

    Raises
    ------
    ValueError
        If an argument is negative or not an int.

    Notes
    -----
    Source: aave/aave-v3-core ``LiquidationLogic.sol`` L54-68, L375-379. There is no position
    size rule and no dust rule in these versions.
    """
    _nonneg("reserve_debt", reserve_debt)
    _check_bps("close_factor", close_factor)
    _nonneg("close_factor_hf_threshold", close_factor_hf_threshold)
    factor = (
        close_factor
        if _nonneg("health_factor_wad", health_factor_wad) > close_factor_hf_threshold
        else PERCENTAGE_FACTOR
    )
    return percent_mul(reserve_debt, factor)


def max_liquidatable_debt(
    reserve_debt: int,
    reserve_debt_base: int,
    reserve_collateral_base: int,
    total_debt_base: int,
    health_factor_wad: int,
    debt_price: int,
    debt_decimals: int,
    *,
    close_factor_hf_threshold: int = CLOSE_FACTOR_HF_THRESHOLD,
    min_base_max_close_factor_threshold: int = MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD,
) -> int:
    """Close-factor cap of v3.3 and later.

    The whole reserve debt is liquidatable unless all of: the seized reserve's collateral is
    worth >= $2,000, the repaid reserve's debt is worth >= $2,000 and HF > 0.95. Then the cap is
    50% of the **total** debt (in base currency) converted to the debt token, applied only if
    this reserve's debt exceeds it.

    Parameters
    ----------
    reserve_debt : int
        Borrower's debt in the reserve being repaid, token units.
    reserve_debt_base : int
        The same debt in base currency (v3.5+: rounded up, see :func:`to_base_currency`).
    reserve_collateral_base : int
        Borrower's balance of the collateral reserve being seized, base currency (rounded down).
    total_debt_base : int
        Borrower's total debt over all reserves, base currency.
    health_factor_wad : int
        Health factor, WAD.
    debt_price : int
        Debt token oracle price, base currency per whole token.
    debt_decimals : int
        Debt token decimals.
    close_factor_hf_threshold : int, default 0.95e18
        ``CLOSE_FACTOR_HF_THRESHOLD``, WAD.
    min_base_max_close_factor_threshold : int, default 2_000e8
        ``MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD`` ($2,000 in v3.3), base currency.

    Returns
    -------
    int
        Maximum debt repayable in this call, token units.

    Raises
    ------
    ValueError
        If an argument is negative or not an int, or ``debt_price == 0``.

    Notes
    -----
    Source: aave-v3-origin ``LiquidationLogic.sol`` L43-64, L258-282:
    ``maxLiquidatableDebt = percentMul(totalDebtBase, 5000) * debtUnit / debtPrice``.
    """
    _nonneg("reserve_debt", reserve_debt)
    _nonneg("reserve_debt_base", reserve_debt_base)
    _nonneg("reserve_collateral_base", reserve_collateral_base)
    _nonneg("total_debt_base", total_debt_base)
    _nonneg("health_factor_wad", health_factor_wad)
    _positive("debt_price", debt_price)
    unit = 10 ** _nonneg("debt_decimals", debt_decimals)
    _nonneg("close_factor_hf_threshold", close_factor_hf_threshold)
    _nonneg("min_base_max_close_factor_threshold", min_base_max_close_factor_threshold)
    if (
        reserve_collateral_base >= min_base_max_close_factor_threshold
        and reserve_debt_base >= min_base_max_close_factor_threshold
        and health_factor_wad > close_factor_hf_threshold
    ):
        half_total = percent_mul(total_debt_base, DEFAULT_LIQUIDATION_CLOSE_FACTOR)
        if reserve_debt_base > half_total:
            return half_total * unit // debt_price
    return reserve_debt


@dataclass(frozen=True)
class CollateralToLiquidate:
    """Result of ``_calculateAvailableCollateralToLiquidate`` (token units unless noted).

    Attributes
    ----------
    collateral_to_liquidator : int
        Collateral sent to the liquidator (``actualCollateralToLiquidate``).
    debt_to_repay : int
        Debt the liquidator repays (``actualDebtToLiquidate``); below the requested amount
        when the collateral balance is the binding constraint.
    protocol_fee : int
        Collateral sent to the treasury: a share of the bonus only.
    collateral_seized : int
        Total taken from the borrower: ``collateral_to_liquidator + protocol_fee``.
    collateral_seized_base : int
        ``collateral_seized`` in base currency, rounded down
        (``collateralToLiquidateInBaseCurrency``).
    collateral_capped : bool
        True when the borrower's collateral balance limited the liquidation.
    """

    collateral_to_liquidator: int
    debt_to_repay: int
    protocol_fee: int
    collateral_seized: int
    collateral_seized_base: int
    collateral_capped: bool


def collateral_to_liquidate(
    debt_to_cover: int,
    collateral_balance: int,
    collateral_price: int,
    collateral_decimals: int,
    debt_price: int,
    debt_decimals: int,
    liquidation_bonus: int,
    protocol_fee: int,
    rounding: str = "v3.7",
) -> CollateralToLiquidate:
    """Collateral seized, debt repaid and protocol fee of one ``liquidationCall``.

    Parameters
    ----------
    debt_to_cover : int
        Debt the liquidator repays, token units, already capped by the close factor.
    collateral_balance : int
        Borrower's aToken balance of the collateral reserve, token units.
    collateral_price, debt_price : int
        Oracle prices, base currency per whole token (USD, 8 decimals), ``> 0``.
    collateral_decimals, debt_decimals : int
        Token decimals.
    liquidation_bonus : int
        Basis points including 100%, ``>= 10_000`` (e.g. ``10500``; eMode value if it applies).
    protocol_fee : int
        Protocol's share of the bonus, basis points (e.g. ``1000`` = 10% of the bonus).
    rounding : {"v3.7", "v3.5", "v3.0"}
        Rounding generation (see the module docstring).

    Returns
    -------
    CollateralToLiquidate

    Raises
    ------
    ValueError
        If an argument is negative or not an int, a price is 0, ``liquidation_bonus < 10_000``,
        ``protocol_fee > 10_000`` or ``rounding`` is unknown.

    Notes
    -----
    Source: aave-v3-origin ``LiquidationLogic.sol`` L583-625 and
    ``docs/3.7/liquidation-rounding.md``::

        baseCollateral = debtPrice * debtToCover * collUnit / (collPrice * debtUnit)   # floor
        maxCollateral  = percentMul(baseCollateral, LB)
        if maxCollateral > balance:
            collateral = balance
            debtNeeded = percentDiv(floor(collPrice * balance * debtUnit
                                          / (debtPrice * collUnit)), LB)
        bonus = collateral - percentDiv(collateral, LB)
        fee   = percentMul(bonus, protocolFee)
        liquidator gets collateral - fee
    """
    _check_rounding(rounding)
    _nonneg("debt_to_cover", debt_to_cover)
    _nonneg("collateral_balance", collateral_balance)
    _positive("collateral_price", collateral_price)
    _positive("debt_price", debt_price)
    coll_unit = 10 ** _nonneg("collateral_decimals", collateral_decimals)
    debt_unit = 10 ** _nonneg("debt_decimals", debt_decimals)
    if _nonneg("liquidation_bonus", liquidation_bonus) < PERCENTAGE_FACTOR:
        raise ValueError(
            f"liquidation_bonus is in basis points including 100% (e.g. 10500), got "
            f"{liquidation_bonus}"
        )
    if _nonneg("protocol_fee", protocol_fee) > PERCENTAGE_FACTOR:
        raise ValueError(f"protocol_fee must be <= 10_000 basis points, got {protocol_fee}")
    mul_max = "floor" if rounding == "v3.7" else "half_up"
    div_base = "floor" if rounding == "v3.7" else "half_up"
    mul_fee = "ceil" if rounding == "v3.7" else "half_up"
    div_needed = "half_up" if rounding == "v3.0" else "ceil"

    base_collateral = (debt_price * debt_to_cover * coll_unit) // (collateral_price * debt_unit)
    max_collateral = percent_mul(base_collateral, liquidation_bonus, mul_max)
    if max_collateral > collateral_balance:
        collateral = collateral_balance
        debt_needed = percent_div(
            (collateral_price * collateral * debt_unit) // (debt_price * coll_unit),
            liquidation_bonus,
            div_needed,
        )
        capped = True
    else:
        collateral = max_collateral
        debt_needed = debt_to_cover
        capped = False
    seized_base = collateral * collateral_price // coll_unit
    fee = 0
    if protocol_fee != 0:
        bonus = collateral - percent_div(collateral, liquidation_bonus, div_base)
        fee = percent_mul(bonus, protocol_fee, mul_fee)
    return CollateralToLiquidate(
        collateral_to_liquidator=collateral - fee,
        debt_to_repay=debt_needed,
        protocol_fee=fee,
        collateral_seized=collateral,
        collateral_seized_base=seized_base,
        collateral_capped=capped,
    )


def leaves_dust(
    reserve_debt: int,
    debt_repaid: int,
    collateral_balance: int,
    collateral_to_liquidator: int,
    protocol_fee: int,
    debt_price: int,
    debt_decimals: int,
    collateral_price: int,
    collateral_decimals: int,
    *,
    min_leftover_base: int = MIN_LEFTOVER_BASE,
) -> bool:
    """Whether a liquidation breaks the v3.3+ dust rule (would revert ``MustNotLeaveDust``).

    A partial liquidation (neither all the reserve's debt repaid nor all its collateral seized)
    must leave at least ``MIN_LEFTOVER_BASE`` ($1,000) of both debt and collateral.

    Parameters
    ----------
    reserve_debt : int
        Borrower's debt in the repaid reserve before the call, token units.
    debt_repaid : int
        Debt repaid by the call, token units.
    collateral_balance : int
        Borrower's balance of the seized reserve before the call, token units.
    collateral_to_liquidator, protocol_fee : int
        Collateral leaving the borrower, token units (see :func:`collateral_to_liquidate`).
    debt_price, collateral_price : int
        Oracle prices, base currency per whole token.
    debt_decimals, collateral_decimals : int
        Token decimals.
    min_leftover_base : int, default 1_000e8
        ``MIN_LEFTOVER_BASE`` ($1,000), base currency.

    Returns
    -------
    bool
        True if the call would revert.

    Raises
    ------
    ValueError
        If an argument is negative or not an int, or more is taken than exists.

    Notes
    -----
    Source: aave-v3-origin ``LiquidationLogic.sol`` L299-325 (v3.5+ form: leftover debt value
    rounded up, leftover collateral net of the protocol fee and rounded down; in v3.3-3.4 the
    collateral leftover did not subtract the fee and the debt leftover was rounded down).
    """
    for name, value in (
        ("reserve_debt", reserve_debt), ("debt_repaid", debt_repaid),
        ("collateral_balance", collateral_balance),
        ("collateral_to_liquidator", collateral_to_liquidator), ("protocol_fee", protocol_fee),
    ):
        _nonneg(name, value)
    _nonneg("min_leftover_base", min_leftover_base)
    if debt_repaid > reserve_debt:
        raise ValueError("debt_repaid exceeds reserve_debt")
    if collateral_to_liquidator + protocol_fee > collateral_balance:
        raise ValueError("collateral taken exceeds collateral_balance")
    if debt_repaid < reserve_debt and collateral_to_liquidator + protocol_fee < collateral_balance:
        debt_left = to_base_currency(reserve_debt - debt_repaid, debt_price, debt_decimals, True)
        coll_left = to_base_currency(
            collateral_balance - collateral_to_liquidator - protocol_fee,
            collateral_price, collateral_decimals,
        )
        return not (debt_left >= min_leftover_base and coll_left >= min_leftover_base)
    return False


@dataclass(frozen=True)
class LiquidationCall:
    """Full outcome of a v3.3+ ``liquidationCall`` (token units unless noted).

    Attributes
    ----------
    max_liquidatable_debt : int
        Close-factor cap, token units.
    amounts : CollateralToLiquidate
        Collateral, debt and fee actually moved.
    leaves_dust : bool
        True if the call breaks the dust rule (only set when not raising).
    bad_debt : bool
        True if the borrower is left with no collateral at all
        (``totalCollateralBase == collateral_seized_base``): all remaining debt in every reserve
        is burned into ``reserve.deficit``.
    """

    max_liquidatable_debt: int
    amounts: CollateralToLiquidate
    leaves_dust: bool
    bad_debt: bool


def liquidation_call(
    debt_to_cover: int | None,
    reserve_debt: int,
    collateral_balance: int,
    total_collateral_base: int,
    total_debt_base: int,
    health_factor_wad: int,
    collateral_price: int,
    collateral_decimals: int,
    debt_price: int,
    debt_decimals: int,
    liquidation_bonus: int,
    protocol_fee: int,
    rounding: str = "v3.7",
    raise_on_dust: bool = True,
    *,
    close_factor_hf_threshold: int = CLOSE_FACTOR_HF_THRESHOLD,
    min_base_max_close_factor_threshold: int = MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD,
    min_leftover_base: int = MIN_LEFTOVER_BASE,
) -> LiquidationCall:
    """Chain the v3.3+ close factor, collateral computation, dust rule and bad-debt flag.

    Parameters
    ----------
    debt_to_cover : int or None
        Requested repayment, token units; ``None`` or ``2**256 - 1`` means "the maximum".
    reserve_debt : int
        Borrower's debt in the repaid reserve, token units.
    collateral_balance : int
        Borrower's balance of the seized reserve, token units.
    total_collateral_base, total_debt_base : int
        Borrower's totals over all reserves, base currency.
    health_factor_wad : int
        Health factor, WAD; must be below ``1e18``.
    collateral_price, debt_price : int
        Oracle prices, base currency per whole token.
    collateral_decimals, debt_decimals : int
        Token decimals.
    liquidation_bonus, protocol_fee : int
        Basis points (see :func:`collateral_to_liquidate`).
    rounding : {"v3.7", "v3.5", "v3.0"}
        Rounding of the collateral computation; the close factor and dust rule are the v3.3+
        rules whatever this value (use :func:`max_liquidatable_debt_legacy` for v3.0-3.2).
    raise_on_dust : bool, default True
        Raise :class:`MustNotLeaveDust` instead of returning ``leaves_dust=True``.
    close_factor_hf_threshold, min_base_max_close_factor_threshold, min_leftover_base : int
        Governance constants, deployed values by default (0.95e18 WAD, $2,000 and $1,000 in
        base currency); see :func:`max_liquidatable_debt` and :func:`leaves_dust`.

    Returns
    -------
    LiquidationCall

    Raises
    ------
    ValueError
        If an argument is invalid, or ``health_factor_wad >= 1e18`` (the contract reverts with
        ``HealthFactorNotBelowThreshold``).
    MustNotLeaveDust
        If ``raise_on_dust`` and the call leaves less than $1,000 of debt or collateral.

    Notes
    -----
    Source: aave-v3-origin ``LiquidationLogic.executeLiquidationCall`` (L258-325, bad debt
    ``_burnBadDebt`` L636+). Debt value in base currency is rounded up (v3.5+), collateral down.
    """
    if _nonneg("health_factor_wad", health_factor_wad) >= HEALTH_FACTOR_LIQUIDATION_THRESHOLD:
        raise ValueError("health factor is not below 1e18: the position is not liquidatable")
    _nonneg("total_collateral_base", total_collateral_base)
    cap = max_liquidatable_debt(
        reserve_debt,
        to_base_currency(reserve_debt, debt_price, debt_decimals, round_up=True),
        to_base_currency(collateral_balance, collateral_price, collateral_decimals),
        total_debt_base,
        health_factor_wad,
        debt_price,
        debt_decimals,
        close_factor_hf_threshold=close_factor_hf_threshold,
        min_base_max_close_factor_threshold=min_base_max_close_factor_threshold,
    )
    requested = cap if debt_to_cover is None else _nonneg("debt_to_cover", debt_to_cover)
    amounts = collateral_to_liquidate(
        min(requested, cap), collateral_balance, collateral_price, collateral_decimals,
        debt_price, debt_decimals, liquidation_bonus, protocol_fee, rounding,
    )
    dust = leaves_dust(
        reserve_debt, amounts.debt_to_repay, collateral_balance,
        amounts.collateral_to_liquidator, amounts.protocol_fee,
        debt_price, debt_decimals, collateral_price, collateral_decimals,
        min_leftover_base=min_leftover_base,
    )
    if dust and raise_on_dust:
        raise MustNotLeaveDust(
            f"liquidation would leave less than ${min_leftover_base / 10**8:,.0f} "
            "(MIN_LEFTOVER_BASE) of debt or collateral; repay all the reserve's debt, seize "
            "all its collateral, or leave more"
        )
    return LiquidationCall(
        max_liquidatable_debt=cap,
        amounts=amounts,
        leaves_dust=dust,
        bad_debt=total_collateral_base == amounts.collateral_seized_base,
    )


# --- Aave v2 -------------------------------------------------------------------------------------


def max_liquidatable_debt_v2(
    stable_debt: int,
    variable_debt: int,
    *,
    close_factor: int = V2_LIQUIDATION_CLOSE_FACTOR_PERCENT,
) -> int:
    """Aave v2 close-factor cap: ``percentMul(stable + variable, 5000)``, at any health factor.

    Parameters
    ----------
    stable_debt, variable_debt : int
        Borrower's stable and variable debt in the reserve being repaid, token units.
    close_factor : int, default 5_000
        ``LIQUIDATION_CLOSE_FACTOR_PERCENT``, basis points.

    Returns
    -------
    int
        Most debt one ``liquidationCall`` may repay, token units (half-up).

    Raises
    ------
    ValueError
        If an argument is negative or not an int, or ``close_factor > 10_000``.

    Notes
    -----
    Source: aave/protocol-v2 ``LendingPoolCollateralManager.sol`` (``liquidationCall``:
    ``vars.maxLiquidatableDebt = userStableDebt.add(userVariableDebt).percentMul(
    LIQUIDATION_CLOSE_FACTOR_PERCENT)``). Unlike v3 there is no 100% close factor below
    HF 0.95: a v2 position is always liquidated in halves.
    """
    total = _nonneg("stable_debt", stable_debt) + _nonneg("variable_debt", variable_debt)
    return percent_mul(total, _check_bps("close_factor", close_factor))


def collateral_to_liquidate_v2(
    debt_to_cover: int,
    collateral_balance: int,
    collateral_price: int,
    collateral_decimals: int,
    debt_price: int,
    debt_decimals: int,
    liquidation_bonus: int,
) -> tuple[int, int]:
    """Aave v2 ``_calculateAvailableCollateralToLiquidate``, in v2's own order and rounding.

    Parameters
    ----------
    debt_to_cover : int
        Debt the liquidator repays, token units, already capped by the close factor.
    collateral_balance : int
        Borrower's aToken balance of the collateral reserve, token units.
    collateral_price, debt_price : int
        Oracle prices, ``> 0`` (v2 mainnet: ETH per whole token with 18 decimals; the unit
        cancels, both prices only need the same one).
    collateral_decimals, debt_decimals : int
        Token decimals.
    liquidation_bonus : int
        Basis points including 100% (``10500`` = 5% bonus), ``>= 10_000``.

    Returns
    -------
    tuple of int
        ``(collateral_amount, debt_amount_needed)``: collateral sent to the liquidator and the
        debt repaid, token units. There is no protocol fee in v2.

    Raises
    ------
    ValueError
        If an argument is negative or not an int, a price is 0 or ``liquidation_bonus <
        10_000``.

    Notes
    -----
    Source: aave/protocol-v2 ``LendingPoolCollateralManager.sol``
    ``_calculateAvailableCollateralToLiquidate`` and ``PercentageMath.sol`` (``percentMul`` and
    ``percentDiv`` round half-up)::

        maxCollateral = percentMul(debtPrice * debtToCover * 10**collDec, LB)
                        / (collPrice * 10**debtDec)                      # floor, bonus first
        if maxCollateral > balance:
            collateral = balance
            debtNeeded = percentDiv(collPrice * balance * 10**debtDec
                                    / (debtPrice * 10**collDec), LB)      # floor, then half-up
        else:
            collateral, debtNeeded = maxCollateral, debtToCover

    v3.0 instead floors ``debtPrice * debtToCover * 10**collDec / (collPrice * 10**debtDec)``
    first and applies ``percentMul`` to that: the two differ by a unit of the collateral token
    when the division's remainder times the bonus crosses a unit (e.g. 1 satoshi of WBTC).
    """
    _nonneg("debt_to_cover", debt_to_cover)
    _nonneg("collateral_balance", collateral_balance)
    _positive("collateral_price", collateral_price)
    _positive("debt_price", debt_price)
    coll_unit = 10 ** _nonneg("collateral_decimals", collateral_decimals)
    debt_unit = 10 ** _nonneg("debt_decimals", debt_decimals)
    if _nonneg("liquidation_bonus", liquidation_bonus) < PERCENTAGE_FACTOR:
        raise ValueError(
            f"liquidation_bonus is in basis points including 100% (e.g. 10500), got "
            f"{liquidation_bonus}"
        )
    max_collateral = percent_mul(debt_price * debt_to_cover * coll_unit, liquidation_bonus) // (
        collateral_price * debt_unit
    )
    if max_collateral > collateral_balance:
        debt_needed = percent_div(
            collateral_price * collateral_balance * debt_unit // (debt_price * coll_unit),
            liquidation_bonus,
        )
        return collateral_balance, debt_needed
    return max_collateral, debt_to_cover


@dataclass(frozen=True)
class LiquidationCallV2:
    """Outcome of an Aave v2 ``liquidationCall`` (token units).

    Attributes
    ----------
    max_liquidatable_debt : int
        Close-factor cap (50% of stable + variable debt).
    debt_repaid : int
        ``actualDebtToLiquidate``: the request, capped by the close factor and by what the
        collateral balance can pay.
    collateral_seized : int
        ``maxCollateralToLiquidate``: collateral sent to the liquidator (all of it goes to the
        liquidator: v2 has no protocol fee).
    collateral_capped : bool
        True when the collateral balance limited the liquidation.
    """

    max_liquidatable_debt: int
    debt_repaid: int
    collateral_seized: int
    collateral_capped: bool


def liquidation_call_v2(
    debt_to_cover: int | None,
    stable_debt: int,
    variable_debt: int,
    collateral_balance: int,
    health_factor_wad: int,
    collateral_price: int,
    collateral_decimals: int,
    debt_price: int,
    debt_decimals: int,
    liquidation_bonus: int,
    *,
    close_factor: int = V2_LIQUIDATION_CLOSE_FACTOR_PERCENT,
) -> LiquidationCallV2:
    """Chain Aave v2's close factor and ``_calculateAvailableCollateralToLiquidate``.

    Parameters
    ----------
    debt_to_cover : int or None
        Requested repayment, token units; ``None`` or ``2**256 - 1`` means "the maximum".
    stable_debt, variable_debt : int
        Borrower's debt in the repaid reserve, token units.
    collateral_balance : int
        Borrower's balance of the seized reserve, token units.
    health_factor_wad : int
        Health factor, WAD (:func:`health_factor` with ``formula="legacy"`` is v2's formula);
        must be below ``1e18``.
    collateral_price, debt_price : int
        Oracle prices (same unit), ``> 0``.
    collateral_decimals, debt_decimals : int
        Token decimals.
    liquidation_bonus : int
        Basis points including 100%.
    close_factor : int, default 5_000
        ``LIQUIDATION_CLOSE_FACTOR_PERCENT``, basis points.

    Returns
    -------
    LiquidationCallV2

    Raises
    ------
    ValueError
        If an argument is invalid, ``health_factor_wad >= 1e18`` (v2 returns
        ``LPCM_HEALTH_FACTOR_ABOVE_THRESHOLD``) or the borrower has no debt in the reserve
        (``LPCM_SPECIFIED_CURRENCY_NOT_BORROWED_BY_USER``).

    Notes
    -----
    Source: aave/protocol-v2 ``LendingPoolCollateralManager.liquidationCall``:
    ``actualDebtToLiquidate = min(debtToCover, maxLiquidatableDebt)``, then
    ``min(actualDebtToLiquidate, debtAmountNeeded)``. No dust rule, no bad-debt burning (debt
    left on an account without collateral stays as unbacked debt).
    """
    if _nonneg("health_factor_wad", health_factor_wad) >= HEALTH_FACTOR_LIQUIDATION_THRESHOLD:
        raise ValueError("health factor is not below 1e18: the position is not liquidatable")
    cap = max_liquidatable_debt_v2(stable_debt, variable_debt, close_factor=close_factor)
    if stable_debt + variable_debt == 0:
        raise ValueError("the borrower has no debt in this reserve")
    if debt_to_cover is None or debt_to_cover == MAX_UINT256:
        requested = cap
    else:
        requested = min(_nonneg("debt_to_cover", debt_to_cover), cap)
    collateral, debt_needed = collateral_to_liquidate_v2(
        requested, collateral_balance, collateral_price, collateral_decimals, debt_price,
        debt_decimals, liquidation_bonus,
    )
    return LiquidationCallV2(
        max_liquidatable_debt=cap,
        debt_repaid=min(requested, debt_needed),
        collateral_seized=collateral,
        collateral_capped=debt_needed < requested,
    )
