"""Liquity v1 (LUSD) and v2 (BOLD) trove liquidation splits in exact integers.

All amounts are 18-decimal integers: debt in LUSD/BOLD wei, collateral in ETH/LST wei, prices
in debt units per whole collateral token scaled by ``1e18`` (``DECIMAL_PRECISION``), ratios
(ICR, TCR, MCR, penalties) as 18-decimal fractions (``1.1e18`` = 110%).

Sources: liquity/dev (v1) ``packages/contracts/contracts/TroveManager.sol``
``_liquidateNormalMode``, ``_liquidateRecoveryMode`` (L349-426),
``_getOffsetAndRedistributionVals`` (L431-462), ``_getCappedOffsetVals`` (L467-489) and
``Dependencies/LiquityBase.sol`` L19-36; liquity/bold (v2) ``contracts/src/TroveManager.sol``
(L335-412: ``_liquidate``, ``_getOffsetAndRedistributionVals``, ``_getCollPenaltyAndSurplus``)
and ``Dependencies/Constants.sol`` L13-44. See MECHANISMS.md section 6.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DECIMAL_PRECISION",
    "ONE_HUNDRED_PCT",
    "MCR_V1",
    "CCR_V1",
    "LUSD_GAS_COMPENSATION",
    "PERCENT_DIVISOR",
    "MIN_NET_DEBT",
    "ETH_GAS_COMPENSATION",
    "COLL_GAS_COMPENSATION_DIVISOR",
    "COLL_GAS_COMPENSATION_CAP",
    "MIN_BOLD_IN_SP",
    "BranchParams",
    "WETH_BRANCH",
    "LST_BRANCH",
    "compute_cr",
    "TroveLiquidation",
    "coll_gas_compensation_v1",
    "offset_and_redistribution_v1",
    "liquidate_normal_mode_v1",
    "capped_offset_v1",
    "liquidate_recovery_mode_v1",
    "coll_gas_compensation_v2",
    "coll_penalty_and_surplus",
    "offset_and_redistribution_v2",
    "liquidate_v2",
]

DECIMAL_PRECISION = 10**18
ONE_HUNDRED_PCT = DECIMAL_PRECISION

# v1 (LiquityBase.sol)
MCR_V1 = 11 * 10**17
CCR_V1 = 15 * 10**17
LUSD_GAS_COMPENSATION = 200 * 10**18
PERCENT_DIVISOR = 200
MIN_NET_DEBT = 1800 * 10**18

# v2 (Constants.sol)
ETH_GAS_COMPENSATION = 375 * 10**14  # 0.0375 WETH
COLL_GAS_COMPENSATION_DIVISOR = 200
COLL_GAS_COMPENSATION_CAP = 2 * 10**18
MIN_BOLD_IN_SP = 10**18


@dataclass(frozen=True)
class BranchParams:
    """Liquity v2 branch constants (18-decimal fractions).

    Attributes
    ----------
    mcr : int
        Minimum collateral ratio; troves below it are liquidatable.
    penalty_sp : int
        Liquidation penalty when offset against the Stability Pool.
    penalty_redistribution : int
        Liquidation penalty when redistributed.
    """

    mcr: int
    penalty_sp: int
    penalty_redistribution: int


WETH_BRANCH = BranchParams(mcr=11 * 10**17, penalty_sp=5 * 10**16,
                           penalty_redistribution=10 * 10**16)
LST_BRANCH = BranchParams(mcr=12 * 10**17, penalty_sp=5 * 10**16,
                          penalty_redistribution=20 * 10**16)


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


def compute_cr(coll: int, debt: int, price: int) -> int:
    """Collateral ratio ``coll * price / debt`` (``LiquityMath._computeCR``), 18 decimals.

    Parameters
    ----------
    coll : int
        Collateral, wei.
    debt : int
        Debt, wei.
    price : int
        Debt units per collateral token, 18 decimals.

    Returns
    -------
    int
        Ratio, 18 decimals; ``2**256 - 1`` when ``debt == 0``.

    Raises
    ------
    ValueError
        If an argument is negative or not an int.

    Notes
    -----
    Source: liquity/dev ``contracts/Dependencies/LiquityMath.sol`` ``_computeCR``.
    """
    _nonneg("coll", coll)
    _nonneg("price", price)
    if _nonneg("debt", debt) == 0:
        return 2**256 - 1
    return coll * price // debt


@dataclass(frozen=True)
class TroveLiquidation:
    """Where a liquidated trove's debt and collateral go (wei).

    Attributes
    ----------
    debt_to_offset : int
        Debt cancelled against Stability Pool deposits.
    coll_to_sp : int
        Collateral sent to the Stability Pool.
    debt_to_redistribute : int
        Debt redistributed to active troves (pro rata to stake).
    coll_to_redistribute : int
        Collateral redistributed to active troves.
    coll_surplus : int
        Collateral left for the borrower to claim from ``CollSurplusPool``.
    coll_gas_compensation : int
        Collateral paid to the liquidator.
    debt_gas_compensation : int
        Debt-token gas compensation paid to the liquidator (v1: 200 LUSD from the gas pool;
        v2 pays ``ETH_GAS_COMPENSATION`` in WETH instead and this is 0).
    """

    debt_to_offset: int
    coll_to_sp: int
    debt_to_redistribute: int
    coll_to_redistribute: int
    coll_surplus: int
    coll_gas_compensation: int
    debt_gas_compensation: int


# --- v1 -----------------------------------------------------------------------------------------


def coll_gas_compensation_v1(coll: int) -> int:
    """Liquity v1 collateral gas compensation: 0.5% of the collateral (``coll / 200``).

    Parameters
    ----------
    coll : int
        Collateral, wei.

    Returns
    -------
    int
        Wei, rounded down.

    Raises
    ------
    ValueError
        If ``coll`` is negative or not an int.

    Notes
    -----
    Source: liquity/dev ``LiquityBase._getCollGasCompensation`` (``PERCENT_DIVISOR = 200``).
    """
    return _nonneg("coll", coll) // PERCENT_DIVISOR


def offset_and_redistribution_v1(
    debt: int, coll_to_liquidate: int, lusd_in_sp: int
) -> tuple[int, int, int, int]:
    """Liquity v1 split between Stability Pool offset and redistribution.

    Parameters
    ----------
    debt : int
        Entire trove debt (including the 200 LUSD gas reserve and pending rewards), wei.
    coll_to_liquidate : int
        Entire collateral minus the gas compensation, wei.
    lusd_in_sp : int
        LUSD deposited in the Stability Pool, wei.

    Returns
    -------
    tuple of int
        ``(debt_to_offset, coll_to_sp, debt_to_redistribute, coll_to_redistribute)``:
        ``offset = min(debt, SP)``, ``coll_to_sp = coll * offset / debt`` (floor).

    Raises
    ------
    ValueError
        If an argument is negative or not an int, or ``debt == 0``.

    Notes
    -----
    Source: liquity/dev ``TroveManager.sol`` ``_getOffsetAndRedistributionVals`` (L431-462).
    """
    _positive("debt", debt)
    _nonneg("coll_to_liquidate", coll_to_liquidate)
    if _nonneg("lusd_in_sp", lusd_in_sp) > 0:
        offset = min(debt, lusd_in_sp)
        coll_sp = coll_to_liquidate * offset // debt
        return offset, coll_sp, debt - offset, coll_to_liquidate - coll_sp
    return 0, 0, debt, coll_to_liquidate


def liquidate_normal_mode_v1(debt: int, coll: int, price: int, lusd_in_sp: int
                             ) -> TroveLiquidation | None:
    """Liquity v1 Normal Mode liquidation of one trove.

    Parameters
    ----------
    debt : int
        Entire trove debt, wei.
    coll : int
        Entire trove collateral, wei.
    price : int
        Collateral price, 18 decimals.
    lusd_in_sp : int
        Stability Pool LUSD, wei.

    Returns
    -------
    TroveLiquidation or None
        ``None`` when ``ICR >= MCR`` (not liquidatable in Normal Mode).

    Raises
    ------
    ValueError
        If an argument is negative or not an int, or ``debt == 0``.

    Notes
    -----
    Source: liquity/dev ``TroveManager.sol`` ``_liquidateNormalMode``; gas compensation
    ``coll / 200`` plus 200 LUSD, the rest through :func:`offset_and_redistribution_v1`.
    """
    _positive("debt", debt)
    if compute_cr(coll, debt, price) >= MCR_V1:
        return None
    gas = coll_gas_compensation_v1(coll)
    off, coll_sp, red, coll_red = offset_and_redistribution_v1(debt, coll - gas, lusd_in_sp)
    return TroveLiquidation(off, coll_sp, red, coll_red, 0, gas, LUSD_GAS_COMPENSATION)


def capped_offset_v1(debt: int, coll: int, price: int) -> TroveLiquidation:
    """Liquity v1 Recovery Mode capped offset (``MCR <= ICR < TCR`` and SP covers the debt).

    Parameters
    ----------
    debt : int
        Entire trove debt, wei.
    coll : int
        Entire trove collateral, wei.
    price : int
        Collateral price, 18 decimals, ``> 0``.

    Returns
    -------
    TroveLiquidation
        The SP takes ``debt * MCR / price`` of collateral minus 0.5% gas compensation; the rest
        is the borrower's surplus.

    Raises
    ------
    ValueError
        If an argument is negative or not an int, ``price == 0`` or the capped portion exceeds
        the collateral (``ICR < MCR``).

    Notes
    -----
    Source: liquity/dev ``TroveManager.sol`` ``_getCappedOffsetVals`` (L467-489).
    """
    _nonneg("debt", debt)
    _nonneg("coll", coll)
    capped = debt * MCR_V1 // _positive("price", price)
    if capped > coll:
        raise ValueError("capped offset requires ICR >= MCR (debt * MCR / price <= coll)")
    gas = coll_gas_compensation_v1(capped)
    return TroveLiquidation(
        debt_to_offset=debt, coll_to_sp=capped - gas, debt_to_redistribute=0,
        coll_to_redistribute=0, coll_surplus=coll - capped, coll_gas_compensation=gas,
        debt_gas_compensation=LUSD_GAS_COMPENSATION,
    )


def liquidate_recovery_mode_v1(
    debt: int, coll: int, price: int, lusd_in_sp: int, tcr: int
) -> TroveLiquidation | None:
    """Liquity v1 Recovery Mode liquidation of one trove (TCR < 150%).

    Parameters
    ----------
    debt : int
        Entire trove debt, wei.
    coll : int
        Entire trove collateral, wei.
    price : int
        Collateral price, 18 decimals.
    lusd_in_sp : int
        Stability Pool LUSD, wei.
    tcr : int
        Total collateral ratio of the system, 18 decimals.

    Returns
    -------
    TroveLiquidation or None
        ``None`` when the trove is not liquidated (``ICR >= MCR`` and either ``ICR >= TCR`` or
        the SP does not cover the whole debt).

    Raises
    ------
    ValueError
        If an argument is negative or not an int, or ``debt == 0``.

    Notes
    -----
    Source: liquity/dev ``TroveManager.sol`` ``_liquidateRecoveryMode`` (L349-426):
    ``ICR <= 100%``: pure redistribution of debt and collateral minus gas compensation;
    ``100% < ICR < MCR``: as Normal Mode; ``MCR <= ICR < TCR`` and ``debt <= SP``:
    :func:`capped_offset_v1`.
    """
    _positive("debt", debt)
    _nonneg("tcr", tcr)
    icr = compute_cr(coll, debt, price)
    gas = coll_gas_compensation_v1(coll)
    if icr <= ONE_HUNDRED_PCT:
        return TroveLiquidation(0, 0, debt, coll - gas, 0, gas, LUSD_GAS_COMPENSATION)
    if icr < MCR_V1:
        off, coll_sp, red, coll_red = offset_and_redistribution_v1(debt, coll - gas, lusd_in_sp)
        return TroveLiquidation(off, coll_sp, red, coll_red, 0, gas, LUSD_GAS_COMPENSATION)
    if icr < tcr and debt <= _nonneg("lusd_in_sp", lusd_in_sp):
        return capped_offset_v1(debt, coll, price)
    return None


# --- v2 -----------------------------------------------------------------------------------------


def coll_gas_compensation_v2(coll: int) -> int:
    """Liquity v2 collateral gas compensation: ``min(coll / 200, 2 tokens)``.

    Parameters
    ----------
    coll : int
        Collateral, wei.

    Returns
    -------
    int
        Wei.

    Raises
    ------
    ValueError
        If ``coll`` is negative or not an int.

    Notes
    -----
    Source: liquity/bold ``TroveManager.sol`` ``_getCollGasCompensation`` and ``Constants.sol``
    (``COLL_GAS_COMPENSATION_DIVISOR = 200``, ``COLL_GAS_COMPENSATION_CAP = 2 ether``).
    """
    return min(_nonneg("coll", coll) // COLL_GAS_COMPENSATION_DIVISOR, COLL_GAS_COMPENSATION_CAP)


def coll_penalty_and_surplus(coll_to_liquidate: int, debt: int, penalty: int, price: int
                             ) -> tuple[int, int]:
    """Collateral seized for ``debt`` at ``1 + penalty``, and the surplus above it.

    Parameters
    ----------
    coll_to_liquidate : int
        Collateral available, wei.
    debt : int
        Debt being cleared, wei.
    penalty : int
        Penalty ratio, 18 decimals (``0.05e18`` = 5%).
    price : int
        Collateral price, 18 decimals, ``> 0``.

    Returns
    -------
    tuple of int
        ``(seized, surplus)`` with ``seized = min(coll, debt * (1 + penalty) / price)``.

    Raises
    ------
    ValueError
        If an argument is negative or not an int, or ``price == 0``.

    Notes
    -----
    Source: liquity/bold ``TroveManager.sol`` ``_getCollPenaltyAndSurplus``.
    """
    _nonneg("coll_to_liquidate", coll_to_liquidate)
    max_seized = (_nonneg("debt", debt) * (DECIMAL_PRECISION + _nonneg("penalty", penalty))
                  // _positive("price", price))
    if coll_to_liquidate > max_seized:
        return max_seized, coll_to_liquidate - max_seized
    return coll_to_liquidate, 0


def offset_and_redistribution_v2(
    debt: int, coll_to_liquidate: int, bold_in_sp: int, price: int,
    branch: BranchParams = WETH_BRANCH,
) -> tuple[int, int, int, int, int]:
    """Liquity v2 split: SP leg with its penalty, redistribution leg, borrower surplus.

    Parameters
    ----------
    debt : int
        Entire trove debt (with accrued interest and redistribution gains), wei.
    coll_to_liquidate : int
        Entire collateral minus gas compensation, wei.
    bold_in_sp : int
        BOLD available for offset, wei. The pool always keeps ``MIN_BOLD_IN_SP`` (1 BOLD), so
        pass deposits minus 1 BOLD.
    price : int
        Collateral price, 18 decimals.
    branch : BranchParams, default WETH_BRANCH
        Penalties of the collateral branch.

    Returns
    -------
    tuple of int
        ``(debt_to_offset, coll_to_sp, debt_to_redistribute, coll_to_redistribute,
        coll_surplus)``.

    Raises
    ------
    ValueError
        If an argument is negative or not an int, ``debt == 0`` or ``price == 0``.

    Notes
    -----
    Source: liquity/bold ``TroveManager.sol`` ``_getOffsetAndRedistributionVals`` (L335-412):
    the SP gets ``min(coll * off / debt, off * (1 + penSP) / price)``; the redistribution leg
    gets ``min(rest + SP surplus, red * (1 + penRed) / price)``; anything left is surplus.
    """
    _positive("debt", debt)
    _nonneg("coll_to_liquidate", coll_to_liquidate)
    off = coll_sp = coll_sp_portion = surplus = coll_red = 0
    if _nonneg("bold_in_sp", bold_in_sp) > 0:
        off = min(debt, bold_in_sp)
        coll_sp_portion = coll_to_liquidate * off // debt
        coll_sp, surplus = coll_penalty_and_surplus(coll_sp_portion, off, branch.penalty_sp,
                                                    price)
    red = debt - off
    if red > 0:
        portion = coll_to_liquidate - coll_sp_portion
        if portion > 0:
            coll_red, surplus = coll_penalty_and_surplus(portion + surplus, red,
                                                         branch.penalty_redistribution, price)
    return off, coll_sp, red, coll_red, surplus


def liquidate_v2(debt: int, coll: int, price: int, bold_in_sp: int,
                 branch: BranchParams = WETH_BRANCH) -> TroveLiquidation | None:
    """Liquity v2 liquidation of one trove (no recovery mode).

    Parameters
    ----------
    debt : int
        Entire trove debt, wei.
    coll : int
        Entire trove collateral, wei.
    price : int
        Collateral price, 18 decimals.
    bold_in_sp : int
        BOLD available for offset (deposits minus ``MIN_BOLD_IN_SP``), wei.
    branch : BranchParams, default WETH_BRANCH
        MCR and penalties of the branch.

    Returns
    -------
    TroveLiquidation or None
        ``None`` when ``ICR >= MCR``.

    Raises
    ------
    ValueError
        If an argument is negative or not an int, or ``debt == 0``.

    Notes
    -----
    Source: liquity/bold ``TroveManager.sol`` ``_liquidate`` (L335-412). The liquidator also
    receives ``ETH_GAS_COMPENSATION`` (0.0375 WETH) set aside when the trove was opened.
    """
    _positive("debt", debt)
    if compute_cr(coll, debt, price) >= branch.mcr:
        return None
    gas = coll_gas_compensation_v2(coll)
    off, coll_sp, red, coll_red, surplus = offset_and_redistribution_v2(
        debt, coll - gas, bold_in_sp, price, branch
    )
    return TroveLiquidation(off, coll_sp, red, coll_red, surplus, gas, 0)
