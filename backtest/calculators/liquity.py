"""Liquity v1 (LUSD) and v2 (BOLD) trove liquidation splits in exact integers.

All amounts are 18-decimal integers: debt in LUSD/BOLD wei, collateral in ETH/LST wei, prices
in debt units per whole collateral token scaled by ``1e18`` (``DECIMAL_PRECISION``), ratios
(ICR, TCR, MCR, penalties) as 18-decimal fractions (``1.1e18`` = 110%).

Sources: liquity/dev (v1) ``packages/contracts/contracts/TroveManager.sol``
``_liquidateNormalMode``, ``_liquidateRecoveryMode`` (L349-426),
``_getOffsetAndRedistributionVals`` (L431-462), ``_getCappedOffsetVals`` (L467-489) and
``Dependencies/LiquityBase.sol`` L19-36; liquity/bold (v2) ``contracts/src/TroveManager.sol``
(L335-412: ``_liquidate``, ``_getOffsetAndRedistributionVals``, ``_getCollPenaltyAndSurplus``)
and ``Dependencies/Constants.sol`` L13-44, as changed by PR #889 "Remove 0.5% coll gas
compensation from Redistributions" (2025-05: the collateral gas compensation is taken only on the
part offset by the Stability Pool). Repositories at the commits
read: https://github.com/liquity/dev/tree/39f1f7f881de23200c296a892b891a6e2fc6e98f,
https://github.com/liquity/bold/tree/405f91227f9981a82a7c7ca6540221b30cab51c4.

The v1 Stability Pool's per-depositor accounting (compounded deposits and ETH gains with the
product-sum ``P``/``S`` scheme, scales and epochs) is :class:`StabilityPoolV1`.

Why over 400 lines: it mirrors one protocol's trove liquidation (v1 and v2 share the
offset/redistribution split and the Stability Pool arithmetic); one module per protocol is the
calculators' rule, mirrored by its test module.
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
    "SP_SCALE_FACTOR",
    "StabilityPoolV1",
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
        Collateral it is taken from, wei: since liquity/bold PR #889 (2025-05) the part of the
        trove's collateral offset against the Stability Pool, not the whole.

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
    debt: int, coll: int, bold_in_sp: int, price: int,
    branch: BranchParams = WETH_BRANCH,
) -> tuple[int, int, int, int, int, int]:
    """Liquity v2 split: SP leg with gas compensation and penalty, redistribution leg, surplus.

    Parameters
    ----------
    debt : int
        Entire trove debt (with accrued interest and redistribution gains), wei.
    coll : int
        Entire trove collateral (gas compensation **not** subtracted), wei.
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
        ``(debt_to_offset, coll_to_sp, coll_gas_compensation, debt_to_redistribute,
        coll_to_redistribute, coll_surplus)``; the four collateral terms add up to ``coll``.

    Raises
    ------
    ValueError
        If an argument is negative or not an int, ``debt == 0`` or ``price == 0``.

    Notes
    -----
    Source: liquity/bold ``contracts/src/TroveManager.sol`` ``_getOffsetAndRedistributionVals``
    after PR #889 "Remove 0.5% coll gas compensation from Redistributions" (merged 2025-05-01):
    the SP portion is ``coll x off / debt``; the gas compensation
    ``min(portion / 200, 2 tokens)`` comes out of that portion only; the SP gets
    ``min(portion - gas, off x (1 + penSP) / price)``; the redistribution leg gets
    ``min(coll - portion + SP surplus, red x (1 + penRed) / price)``; the rest is surplus.
    Before that change (liquity/bold until April 2025) the gas compensation was taken from the
    whole collateral first; a trove redistributed in full now pays no collateral gas
    compensation at all (the liquidator still gets ``ETH_GAS_COMPENSATION``).
    """
    _positive("debt", debt)
    _nonneg("coll", coll)
    off = coll_sp = portion = surplus = coll_red = gas = 0
    if _nonneg("bold_in_sp", bold_in_sp) > 0:
        off = min(debt, bold_in_sp)
        portion = coll * off // debt
        gas = coll_gas_compensation_v2(portion)
        coll_sp, surplus = coll_penalty_and_surplus(portion - gas, off, branch.penalty_sp, price)
    red = debt - off
    if red > 0:
        rest = coll - portion
        if rest > 0:
            coll_red, surplus = coll_penalty_and_surplus(rest + surplus, red,
                                                         branch.penalty_redistribution, price)
    return off, coll_sp, gas, red, coll_red, surplus


def liquidate_v2(debt: int, coll: int, price: int, bold_in_sp: int,
                 branch: BranchParams = WETH_BRANCH) -> TroveLiquidation | None:
    """Liquity v2 liquidation of one trove (no recovery mode), current liquity/bold code.

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
    Source: liquity/bold ``TroveManager.sol`` ``_liquidate`` and
    ``_getOffsetAndRedistributionVals`` (collateral gas compensation on the SP-offset part
    only, PR #889, 2025-05). The liquidator also receives ``ETH_GAS_COMPENSATION``
    (0.0375 WETH) set aside when the trove was opened.
    """
    _positive("debt", debt)
    if compute_cr(coll, debt, price) >= branch.mcr:
        return None
    off, coll_sp, gas, red, coll_red, surplus = offset_and_redistribution_v2(
        debt, coll, bold_in_sp, price, branch
    )
    return TroveLiquidation(off, coll_sp, red, coll_red, surplus, gas, 0)


# --- v1 Stability Pool: per-depositor accounting -------------------------------------------------

#: Scale factor of the v1 Stability Pool's running product ``P`` (``StabilityPool.SCALE_FACTOR``).
SP_SCALE_FACTOR = 10**9


@dataclass
class _Snapshot:
    initial_deposit: int
    p: int
    s: int
    scale: int
    epoch: int


class StabilityPoolV1:
    """Liquity v1 Stability Pool: compounded LUSD deposits and ETH gains per depositor.

    Liabilities are tracked with the product-sum scheme of the Liquity paper ("Scalable Reward
    Distribution with Compounding Stakes"): a running product ``P`` (each offset multiplies it by
    ``1 - debt / deposits``) and, per epoch and scale, a running sum ``S`` of ETH gain per unit
    staked times ``P``. A depositor's compounded deposit is ``d0 x P / P0`` and its ETH gain
    ``d0 x (S - S0) / P0`` (with the next scale's sum divided by ``1e9``), ``P0``, ``S0`` its
    snapshots. When ``P`` would fall below ``1e9`` it is multiplied by ``1e9`` and the scale
    increments; an offset that empties the pool starts a new epoch (every older deposit is 0).

    All amounts are wei (18 decimals). The LQTY issuance (``G``) and front ends are not modelled.

    Attributes
    ----------
    P : int
        Running product, 18 decimals (starts at ``1e18``).
    current_scale, current_epoch : int
        Scale and epoch counters.
    total_deposits : int
        ``totalLUSDDeposits``, wei.
    eth_balance : int
        ETH held for depositors, wei.

    Notes
    -----
    Source: liquity/dev ``packages/contracts/contracts/StabilityPool.sol`` (``offset``,
    ``_computeRewardsPerUnitStaked`` with its error feedback, ``_updateRewardSumAndProduct``,
    ``getCompoundedLUSDDeposit`` / ``_getCompoundedStakeFromSnapshots``,
    ``getDepositorETHGain`` / ``_getETHGainFromSnapshots``, ``provideToSP``,
    ``withdrawFromSP``) and ``papers/Scalable_Reward_Distribution_with_Compounding_Stakes.pdf``.
    """

    def __init__(self) -> None:
        self.P = DECIMAL_PRECISION
        self.current_scale = 0
        self.current_epoch = 0
        self.total_deposits = 0
        self.eth_balance = 0
        self._sums: dict[tuple[int, int], int] = {}
        self._last_eth_error = 0
        self._last_lusd_loss_error = 0
        self._snapshots: dict[str, _Snapshot] = {}

    def epoch_to_scale_to_sum(self, epoch: int, scale: int) -> int:
        """``epochToScaleToSum[epoch][scale]``: the running ETH sum ``S`` (0 if never set)."""
        return self._sums.get((epoch, scale), 0)

    def compounded_deposit(self, depositor: str) -> int:
        """Return the depositor's LUSD after the offsets since its last deposit, wei.

        Returns 0 if a later epoch started, the scale moved by two or more, or the compounded
        value fell below a billionth of the initial deposit (``getCompoundedLUSDDeposit``).
        """
        snap = self._snapshots.get(depositor)
        if snap is None or snap.initial_deposit == 0:
            return 0
        if snap.epoch < self.current_epoch:
            return 0
        scale_diff = self.current_scale - snap.scale
        if scale_diff == 0:
            stake = snap.initial_deposit * self.P // snap.p
        elif scale_diff == 1:
            stake = snap.initial_deposit * self.P // snap.p // SP_SCALE_FACTOR
        else:
            stake = 0
        if stake < snap.initial_deposit // 10**9:
            return 0
        return stake

    def eth_gain(self, depositor: str) -> int:
        """Return the ETH the depositor earned since its last deposit, wei.

        ``getDepositorETHGain``: ``d0 x (S - S0 + S_next_scale / 1e9) / P0 / 1e18``.
        """
        snap = self._snapshots.get(depositor)
        if snap is None or snap.initial_deposit == 0:
            return 0
        first = self.epoch_to_scale_to_sum(snap.epoch, snap.scale) - snap.s
        second = self.epoch_to_scale_to_sum(snap.epoch, snap.scale + 1) // SP_SCALE_FACTOR
        return snap.initial_deposit * (first + second) // snap.p // DECIMAL_PRECISION

    def _set_deposit(self, depositor: str, amount: int) -> None:
        self._snapshots[depositor] = _Snapshot(
            amount, self.P, self.epoch_to_scale_to_sum(self.current_epoch, self.current_scale),
            self.current_scale, self.current_epoch)

    def deposit(self, depositor: str, amount: int) -> int:
        """``provideToSP``: pay out the ETH gain, compound, add ``amount``; return the ETH paid.

        Raises
        ------
        ValueError
            If ``amount`` is not a positive int (``StabilityPool: Amount must be non-zero``).
        """
        _positive("amount", amount)
        gain = self.eth_gain(depositor)
        compounded = self.compounded_deposit(depositor)
        self.eth_balance -= gain
        self.total_deposits += amount
        self._set_deposit(depositor, compounded + amount)
        return gain

    def withdraw(self, depositor: str, amount: int) -> tuple[int, int]:
        """``withdrawFromSP``: withdraw up to ``amount`` of the compounded deposit.

        Returns
        -------
        tuple of int
            ``(lusd_withdrawn, eth_gain_paid)``, wei.

        Raises
        ------
        ValueError
            If ``amount`` is negative or not an int, or the depositor has no deposit
            (``StabilityPool: User must have a non-zero deposit``).
        """
        _nonneg("amount", amount)
        snap = self._snapshots.get(depositor)
        if snap is None or snap.initial_deposit == 0:
            raise ValueError(f"{depositor!r} has no deposit in the Stability Pool")
        gain = self.eth_gain(depositor)
        compounded = self.compounded_deposit(depositor)
        withdrawn = min(amount, compounded)
        self.eth_balance -= gain
        self.total_deposits -= withdrawn
        self._set_deposit(depositor, compounded - withdrawn)
        return withdrawn, gain

    def offset(self, debt_to_offset: int, coll_to_add: int) -> None:
        """``offset``: cancel ``debt_to_offset`` LUSD of deposits against ``coll_to_add`` ETH.

        Raises
        ------
        ValueError
            If an argument is negative or not an int, or the debt exceeds the deposits.
        """
        _nonneg("debt_to_offset", debt_to_offset)
        _nonneg("coll_to_add", coll_to_add)
        total = self.total_deposits
        if total == 0 or debt_to_offset == 0:
            return
        if debt_to_offset > total:
            raise ValueError("debt_to_offset exceeds the Stability Pool's deposits")
        # _computeRewardsPerUnitStaked, with error feedback
        eth_numerator = coll_to_add * DECIMAL_PRECISION + self._last_eth_error
        if debt_to_offset == total:
            loss_per_unit = DECIMAL_PRECISION
            self._last_lusd_loss_error = 0
        else:
            loss_numerator = debt_to_offset * DECIMAL_PRECISION - self._last_lusd_loss_error
            loss_per_unit = loss_numerator // total + 1  # round up: the error stays positive
            self._last_lusd_loss_error = loss_per_unit * total - loss_numerator
        gain_per_unit = eth_numerator // total
        self._last_eth_error = eth_numerator - gain_per_unit * total
        # _updateRewardSumAndProduct
        factor = DECIMAL_PRECISION - loss_per_unit
        key = (self.current_epoch, self.current_scale)
        self._sums[key] = self._sums.get(key, 0) + gain_per_unit * self.P
        if factor == 0:
            self.current_epoch += 1
            self.current_scale = 0
            new_p = DECIMAL_PRECISION
        elif self.P * factor // DECIMAL_PRECISION < SP_SCALE_FACTOR:
            new_p = self.P * factor * SP_SCALE_FACTOR // DECIMAL_PRECISION
            self.current_scale += 1
        else:
            new_p = self.P * factor // DECIMAL_PRECISION
        if new_p <= 0:
            raise ValueError("P would reach 0 (the contract asserts newP > 0)")
        self.P = new_p
        self.total_deposits -= debt_to_offset
        self.eth_balance += coll_to_add
