"""Morpho Blue liquidation arithmetic in exact integers, and the one-borrower LLTV method.

A Morpho Blue market is one collateral, one loan token, one oracle and one **LLTV**. A
position is liquidatable when ``collateral x price x LLTV < borrowed``; a liquidator may then
repay any part of the debt (there is no close factor) and seizes collateral worth the repaid
amount times the **liquidation incentive factor** ``LIF = min(1.15, 1 / (0.3 x LLTV + 0.7))``
(``1 / (1 - cursor x (1 - LLTV))``, cursor 0.3). When a liquidation leaves the position with no
collateral, its remaining debt is **bad debt, realised at once**: subtracted from the market's
total supply, so every supplier of that market loses pro rata to its shares. No insurance fund,
no reserve.

Units follow the contract: token amounts are integers in the token's smallest unit; the
oracle price is the loan-token units per collateral-token unit scaled by ``1e36``
(``ORACLE_PRICE_SCALE``); LLTV and LIF are WADs; borrow shares carry ``1e6`` virtual shares
and ``1`` virtual asset (``SharesMathLib``).

Sources: morpho-org/morpho-blue ``src/Morpho.sol`` (``liquidate``, ``_isHealthy``),
``src/libraries/ConstantsLib.sol`` (``LIQUIDATION_CURSOR = 0.3e18``,
``MAX_LIQUIDATION_INCENTIVE_FACTOR = 1.15e18``, ``ORACLE_PRICE_SCALE = 1e36``),
``src/libraries/SharesMathLib.sol``, ``src/libraries/MathLib.sol``; docs.morpho.org,
"Liquidation" (the LIF formula and table). The one-borrower method is
morpho-org/morpho-blue-lltv-recommendation (Gauntlet), ``README.md`` "Risk Tool Methodology"
and ``gauntlet/sim_market.py`` ``simulate_insolvency``.

Why over 400 lines: it mirrors one protocol (Morpho Blue's liquidation and its LLTV method);
one module per protocol is the calculators' rule, mirrored by its test module.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "WAD",
    "ORACLE_PRICE_SCALE",
    "LIQUIDATION_CURSOR",
    "MAX_LIQUIDATION_INCENTIVE_FACTOR",
    "VIRTUAL_SHARES",
    "VIRTUAL_ASSETS",
    "liquidation_incentive_factor",
    "to_shares_down",
    "to_shares_up",
    "to_assets_down",
    "to_assets_up",
    "is_healthy",
    "MarketState",
    "Liquidation",
    "liquidate",
    "one_borrower_bad_debt",
    "recommend_lltv",
]

WAD = 10**18
ORACLE_PRICE_SCALE = 10**36
LIQUIDATION_CURSOR = 3 * 10**17
MAX_LIQUIDATION_INCENTIVE_FACTOR = 115 * 10**16
VIRTUAL_SHARES = 10**6
VIRTUAL_ASSETS = 1


def _nonneg(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def _mul_div_down(x: int, y: int, d: int) -> int:
    return x * y // d


def _mul_div_up(x: int, y: int, d: int) -> int:
    return (x * y + d - 1) // d


def liquidation_incentive_factor(lltv: int) -> int:
    """Liquidation incentive factor of a market, WAD.

    Parameters
    ----------
    lltv : int
        Liquidation loan-to-value, WAD, ``< 1e18``.

    Returns
    -------
    int
        ``min(1.15e18, wDivDown(1e18, 1e18 - wMulDown(0.3e18, 1e18 - lltv)))``.

    Raises
    ------
    ValueError
        If ``lltv`` is negative, not an int or ``>= 1e18``.

    Notes
    -----
    Source: morpho-org/morpho-blue ``Morpho.sol`` ``liquidate``; docs.morpho.org "Liquidation"
    (LIF = min(M, 1 / (beta x LLTV + (1 - beta))), M = 1.15, beta = 0.3).
    """
    if _nonneg("lltv", lltv) >= WAD:
        raise ValueError("lltv must be below 1e18")
    cursor_part = LIQUIDATION_CURSOR * (WAD - lltv) // WAD
    return min(MAX_LIQUIDATION_INCENTIVE_FACTOR, WAD * WAD // (WAD - cursor_part))


def to_shares_down(assets: int, total_assets: int, total_shares: int) -> int:
    """``assets x (totalShares + 1e6) / (totalAssets + 1)``, rounded down (``SharesMathLib``)."""
    return _mul_div_down(assets, total_shares + VIRTUAL_SHARES, total_assets + VIRTUAL_ASSETS)


def to_shares_up(assets: int, total_assets: int, total_shares: int) -> int:
    """``assets x (totalShares + 1e6) / (totalAssets + 1)``, rounded up (``SharesMathLib``)."""
    return _mul_div_up(assets, total_shares + VIRTUAL_SHARES, total_assets + VIRTUAL_ASSETS)


def to_assets_down(shares: int, total_assets: int, total_shares: int) -> int:
    """``shares x (totalAssets + 1) / (totalShares + 1e6)``, rounded down (``SharesMathLib``)."""
    return _mul_div_down(shares, total_assets + VIRTUAL_ASSETS, total_shares + VIRTUAL_SHARES)


def to_assets_up(shares: int, total_assets: int, total_shares: int) -> int:
    """``shares x (totalAssets + 1) / (totalShares + 1e6)``, rounded up (``SharesMathLib``)."""
    return _mul_div_up(shares, total_assets + VIRTUAL_ASSETS, total_shares + VIRTUAL_SHARES)


def is_healthy(collateral: int, borrow_shares: int, total_borrow_assets: int,
               total_borrow_shares: int, price: int, lltv: int) -> bool:
    """Whether a position may not be liquidated.

    Parameters
    ----------
    collateral : int
        Collateral token units.
    borrow_shares : int
        The position's borrow shares.
    total_borrow_assets, total_borrow_shares : int
        The market's totals.
    price : int
        Oracle price, loan-token units per collateral unit x ``1e36``.
    lltv : int
        WAD.

    Returns
    -------
    bool
        ``wMulDown(mulDivDown(collateral, price, 1e36), lltv) >= toAssetsUp(borrowShares)``;
        True when there is no debt.

    Raises
    ------
    ValueError
        If an argument is negative or not an int.

    Notes
    -----
    Source: morpho-org/morpho-blue ``Morpho.sol`` ``_isHealthy`` (rounds against the borrower).
    """
    for name, value in (("collateral", collateral), ("borrow_shares", borrow_shares),
                        ("total_borrow_assets", total_borrow_assets),
                        ("total_borrow_shares", total_borrow_shares), ("price", price),
                        ("lltv", lltv)):
        _nonneg(name, value)
    if borrow_shares == 0:
        return True
    borrowed = to_assets_up(borrow_shares, total_borrow_assets, total_borrow_shares)
    max_borrow = _mul_div_down(collateral, price, ORACLE_PRICE_SCALE) * lltv // WAD
    return max_borrow >= borrowed


@dataclass(frozen=True)
class MarketState:
    """The totals of a Morpho Blue market (token units and shares).

    Attributes
    ----------
    total_supply_assets, total_supply_shares : int
        Loan tokens supplied, and the suppliers' shares.
    total_borrow_assets, total_borrow_shares : int
        Loan tokens borrowed, and the borrowers' shares.
    """

    total_supply_assets: int
    total_supply_shares: int
    total_borrow_assets: int
    total_borrow_shares: int


@dataclass(frozen=True)
class Liquidation:
    """Outcome of one ``liquidate`` call.

    Attributes
    ----------
    seized_assets : int
        Collateral sent to the liquidator.
    repaid_assets : int
        Loan tokens the liquidator pays.
    repaid_shares : int
        Borrow shares burned by the repayment.
    bad_debt_assets : int
        Debt written off (0 unless the position is left without collateral); it is taken from
        ``total_supply_assets``: the suppliers' loss.
    bad_debt_shares : int
        Borrow shares written off with it.
    liquidation_incentive_factor : int
        LIF used, WAD.
    market : MarketState
        The market's totals after the call.
    collateral_after, borrow_shares_after : int
        The position after the call.
    """

    seized_assets: int
    repaid_assets: int
    repaid_shares: int
    bad_debt_assets: int
    bad_debt_shares: int
    liquidation_incentive_factor: int
    market: MarketState
    collateral_after: int
    borrow_shares_after: int


def liquidate(
    market: MarketState,
    collateral: int,
    borrow_shares: int,
    price: int,
    lltv: int,
    *,
    seized_assets: int = 0,
    repaid_shares: int = 0,
) -> Liquidation:
    """Morpho Blue ``liquidate``: seize collateral or repay shares, realise bad debt.

    Exactly one of ``seized_assets`` and ``repaid_shares`` is non-zero, as in the contract.

    Parameters
    ----------
    market : MarketState
        The market's totals, interest already accrued.
    collateral, borrow_shares : int
        The position.
    price : int
        Oracle price, loan-token units per collateral unit x ``1e36``, ``> 0``.
    lltv : int
        WAD.
    seized_assets : int, keyword
        Collateral to seize; the repayment is
        ``wDivUp(mulDivUp(seized, price, 1e36), LIF)``.
    repaid_shares : int, keyword
        Borrow shares to repay; the seizure is
        ``mulDivDown(wMulDown(toAssetsUp(shares), LIF), 1e36, price)``.

    Returns
    -------
    Liquidation

    Raises
    ------
    ValueError
        If an argument is invalid, both or neither of ``seized_assets`` and ``repaid_shares``
        are given (``INCONSISTENT_INPUT``), the position is healthy (``HEALTHY_POSITION``) or
        the call takes more collateral or shares than the position holds (the contract
        underflows).

    Notes
    -----
    Source: morpho-org/morpho-blue ``Morpho.sol`` ``liquidate``. ``totalBorrowAssets`` is
    reduced by ``zeroFloorSub(totalBorrowAssets, repaidAssets)``; when the collateral reaches 0
    the remaining shares' assets (``toAssetsUp``) leave both total supply and total borrow.
    """
    _nonneg("seized_assets", seized_assets)
    _nonneg("repaid_shares", repaid_shares)
    if (seized_assets == 0) == (repaid_shares == 0):
        raise ValueError("exactly one of seized_assets and repaid_shares must be non-zero")
    if _nonneg("price", price) == 0:
        raise ValueError("price must be > 0")
    m = market
    if is_healthy(collateral, borrow_shares, m.total_borrow_assets, m.total_borrow_shares,
                  price, lltv):
        raise ValueError("the position is healthy: Morpho reverts with HEALTHY_POSITION")
    lif = liquidation_incentive_factor(lltv)
    if seized_assets > 0:
        quoted = _mul_div_up(seized_assets, price, ORACLE_PRICE_SCALE)
        repaid_assets = _mul_div_up(quoted, WAD, lif)
        repaid_shares = to_shares_down(repaid_assets, m.total_borrow_assets,
                                       m.total_borrow_shares)
    else:
        repaid_assets = to_assets_up(repaid_shares, m.total_borrow_assets,
                                     m.total_borrow_shares)
        seized_assets = _mul_div_down(repaid_assets * lif // WAD, ORACLE_PRICE_SCALE, price)
    if repaid_shares > borrow_shares or seized_assets > collateral:
        raise ValueError("the liquidation takes more than the position holds (the contract "
                         "underflows)")
    shares_left = borrow_shares - repaid_shares
    total_borrow_shares = m.total_borrow_shares - repaid_shares
    total_borrow_assets = max(m.total_borrow_assets - repaid_assets, 0)
    total_supply_assets = m.total_supply_assets
    collateral_left = collateral - seized_assets
    bad_shares = bad_assets = 0
    if collateral_left == 0:
        bad_shares = shares_left
        bad_assets = to_assets_up(bad_shares, total_borrow_assets, total_borrow_shares)
        total_supply_assets -= bad_assets
        total_borrow_assets -= bad_assets
        total_borrow_shares -= bad_shares
        shares_left = 0
    return Liquidation(
        seized_assets=seized_assets,
        repaid_assets=repaid_assets,
        repaid_shares=repaid_shares,
        bad_debt_assets=bad_assets,
        bad_debt_shares=bad_shares,
        liquidation_incentive_factor=lif,
        market=MarketState(total_supply_assets, m.total_supply_shares, total_borrow_assets,
                           total_borrow_shares),
        collateral_after=collateral_left,
        borrow_shares_after=shares_left,
    )


def _check_fraction(name: str, value: float, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value}")
    return float(value)


def one_borrower_bad_debt(
    lltv: float,
    *,
    initial_collateral_usd: float,
    repay_amount_usd: float,
    max_drawdown: float,
    pct_decrease: float = 0.005,
    liquidation_bonus: float | None = None,
    max_steps: int = 1000,
) -> float:
    """Bad debt of one concentrated borrower, Gauntlet's LLTV method for Morpho Blue (USD).

    The borrower holds ``initial_collateral_usd`` of collateral and borrows the most the LLTV
    allows (``LLTV x collateral``). Each step the collateral price falls by ``pct_decrease``
    (times ``1 - pct_decrease``), never below ``1 - max_drawdown`` of the start. In each step in
    which ``debt / collateral >= LLTV`` a liquidator repays ``min(debt, repay_amount_usd)`` (the
    depth: the swap size with 0.5% price impact) and claims ``repay x (1 + bonus)`` of
    collateral, at most all of it. The run ends when the collateral or the debt is gone, or
    after ``max_steps``; debt left without collateral (at the end: debt above the collateral's
    value) is the bad debt.

    Parameters
    ----------
    lltv : float
        Liquidation loan-to-value, fraction in (0, 1).
    initial_collateral_usd : float
        Collateral value at the start, USD, ``> 0``.
    repay_amount_usd : float
        Most debt repaid per step, USD, ``> 0``.
    max_drawdown : float
        Largest fall of the collateral price, fraction in [0, 1).
    pct_decrease : float, default 0.005
        Fall per step, fraction in (0, 1).
    liquidation_bonus : float or None
        Liquidator's bonus, fraction; None: Morpho's ``LIF - 1`` at ``lltv``.
    max_steps : int, default 1000
        Most steps simulated.

    Returns
    -------
    float
        Bad debt, USD (0 when liquidations keep up). Also 0 when ``1 - lltv > max_drawdown``:
        the method's shortcut for a price that cannot fall to insolvency.

    Raises
    ------
    ValueError
        If an argument is out of range.

    Notes
    -----
    Source: morpho-org/morpho-blue-lltv-recommendation ``README.md`` ("Risk Tool Methodology")
    and ``gauntlet/sim_market.py`` ``simulate_insolvency``. Difference: ``sim_market.py``
    floors the collateral value at ``initial_ctd x (1 - max_drawdown)`` (a ratio, not USD);
    here the floor is on the price, as the README describes.
    """
    lltv = _check_fraction("lltv", lltv, 1e-9, 1 - 1e-9)
    initial = _check_fraction("initial_collateral_usd", initial_collateral_usd, 1e-9, math.inf)
    repay = _check_fraction("repay_amount_usd", repay_amount_usd, 1e-9, math.inf)
    max_drawdown = _check_fraction("max_drawdown", max_drawdown, 0.0, 1 - 1e-9)
    decrease = _check_fraction("pct_decrease", pct_decrease, 1e-9, 1 - 1e-9)
    if liquidation_bonus is None:
        bonus = liquidation_incentive_factor(round(lltv * WAD)) / WAD - 1.0
    else:
        bonus = _check_fraction("liquidation_bonus", liquidation_bonus, 0.0, 1.0)
    if 1.0 - lltv > max_drawdown:
        return 0.0
    units = initial  # collateral units at a start price of 1
    debt = lltv * initial
    price, floor = 1.0, 1.0 - max_drawdown
    for _ in range(int(max_steps)):
        price = max(floor, price * (1.0 - decrease))
        value = units * price
        if debt >= lltv * value:
            claimed = min(min(debt, repay) * (1.0 + bonus), value)
            units -= claimed / price
            debt -= claimed / (1.0 + bonus)
            if claimed >= value:
                units = 0.0
        if units <= 0.0:
            return max(debt, 0.0)
        if debt <= 1e-9 * initial:
            return 0.0
    return max(debt - units * price, 0.0)


def recommend_lltv(lltvs: Sequence[float], **kwargs) -> float | None:
    """Largest LLTV whose one-borrower run leaves no bad debt (the tool's recommendation).

    Parameters
    ----------
    lltvs : sequence of float
        Candidate LLTVs, fractions (the tool uses 0.01 ... 0.99).
    **kwargs
        Passed to :func:`one_borrower_bad_debt`.

    Returns
    -------
    float or None
        The largest candidate with zero bad debt, None if every candidate has some.

    Raises
    ------
    ValueError
        As :func:`one_borrower_bad_debt`.

    Notes
    -----
    Source: morpho-org/morpho-blue-lltv-recommendation ``README.md``: "The tool/script will
    recommend the largest LLTV value that incurs zero bad debt in these simulations."
    """
    safe = [x for x in lltvs if one_borrower_bad_debt(x, **kwargs) == 0.0]
    return max(safe) if safe else None
