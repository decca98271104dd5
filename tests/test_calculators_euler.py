"""Euler v2 calculators against the Euler Vault Kit's own tests.

Sources: euler-xyz/euler-vault-kit ``test/unit/evault/modules/Liquidation/basic.t.sol`` and
``full.t.sol``; ``test/unit/evault/EVaultTestBase.t.sol`` L138 sets
``maxLiquidationDiscount = 0.2e4``. Prices are the mock oracle's (``oracle.setPrice``), in a
unit of account with 18 decimals; no interest accrues in these tests before liquidation.
"""

from __future__ import annotations

import pytest

from backtest.calculators import euler
from backtest.calculators.euler import ExcessiveRepayAmount

E = 10**18
MAX_DISCOUNT = 2_000  # 0.2e4


def test_basic_all_collateral():
    # basic.t.sol test_basicLiquidation_all_collateral: 10 eTST2 at 0.5 (value 5e18, LTV 0.9 ->
    # 4.5e18) against 5e18 TST debt at 1 -> discountFactor 0.9, collateral binds:
    # maxRepay = collateralValue * 0.9 = 4.5e18, yield = the whole 10e18 balance.
    coll_value = 10 * E * 5 * 10**17 // E
    adjusted = coll_value * 9_000 // 10_000
    r = euler.max_liquidation(adjusted, 5 * E, 5 * E, 5 * E, 10 * E, coll_value, MAX_DISCOUNT)
    assert r.discount_factor == 9 * 10**17
    assert (r.max_repay, r.max_yield) == (45 * 10**17, 10 * E)
    # before the price drop (price 1) the account is healthy: checkLiquidation -> (0, 0)
    healthy = euler.max_liquidation(9 * E, 5 * E, 5 * E, 5 * E, 10 * E, 10 * E, MAX_DISCOUNT)
    assert (healthy.max_repay, healthy.max_yield, healthy.discount_factor) == (0, 0, None)


def test_worthless_collateral():
    # basic.t.sol test_basicLiquidation_worthless_collateral: price 0 -> maxRepay 0 and the
    # liquidator may claim the whole balance.
    r = euler.max_liquidation(0, 5 * E, 5 * E, 5 * E, 10 * E, 0, MAX_DISCOUNT)
    assert (r.max_repay, r.max_yield) == (0, 10 * E)


def test_full_liquidation_health_096():
    # full.t.sol test_basicFullLiquidation: 100 TST2 at 0.4 with LTV 0.3 (12e18 adjusted),
    # 5 TST debt at 2.5 (12.5e18) -> health 0.96; maxRepay == whole debt (5e18) and
    # valRepay ~= valYield * healthScore within 1e-9.
    r = euler.max_liquidation(12 * E, 125 * 10**17, 5 * E, 125 * 10**17, 100 * E, 40 * E,
                              MAX_DISCOUNT)
    assert r.discount_factor == 96 * 10**16
    assert r.max_repay == 5 * E
    val_yield = r.max_yield * 4 * 10**17 // E
    val_repay = r.max_repay * 25 * 10**17 // E
    assert abs(val_repay - val_yield * r.discount_factor // E) <= 10**9
    assert r.max_yield < 100 * E  # the violator keeps some collateral


def test_partial_liquidation_pro_rata():
    # full.t.sol test_partialLiquidation: partialRepay = maxRepay / 4,
    # partialYield = partialRepay * maxYield / maxRepay.
    r = euler.max_liquidation(12 * E, 125 * 10**17, 5 * E, 125 * 10**17, 100 * E, 40 * E,
                              MAX_DISCOUNT)
    part = r.max_repay // 4
    assert euler.pro_rata_yield(part, r.max_repay, r.max_yield) == part * r.max_yield // r.max_repay
    # test_liquidation_gt_maxRepay: repaying twice the maximum reverts
    with pytest.raises(ExcessiveRepayAmount):
        euler.pro_rata_yield(r.max_repay * 2, r.max_repay, r.max_yield)


def test_discount_capped_at_max():
    # Liquidation.sol L130-137: health 0.5 with a 20% cap -> factor 0.8 (20% bonus, not 50%).
    assert euler.discount_factor(5 * E, 10 * E, MAX_DISCOUNT) == 8 * 10**17
    assert euler.discount_factor(95 * E, 100 * E, MAX_DISCOUNT) == 95 * 10**16
    assert euler.discount_factor(10 * E, 10 * E, MAX_DISCOUNT) == E  # HS == 1: zero discount
    assert euler.discount_factor(11 * E, 10 * E, MAX_DISCOUNT) is None


def test_socialization_and_invalid_inputs():
    assert euler.socializes_debt(10, 10**6, collateral_left=False)
    assert not euler.socializes_debt(10, 10**6 - 1, collateral_left=False)
    assert not euler.socializes_debt(10, 10**6, collateral_left=False, dont_socialize=True)
    with pytest.raises(ValueError, match="liability_value"):
        euler.discount_factor(E, 0, MAX_DISCOUNT)
    with pytest.raises(ValueError, match="1e4"):
        euler.discount_factor(E, E, 20_000)
    with pytest.raises(ValueError, match="desired_repay"):
        euler.pro_rata_yield(-1, 1, 1)


def test_pro_rata_yield_zero_max_repay_keeps_the_maximum_yield():
    # Liquidation.sol: the yield is scaled only `if (maxRepay > 0)`; with maxRepay 0 (a
    # worthless liability) the liquidator takes maxYield for repaying nothing
    assert euler.pro_rata_yield(0, 0, 12_345) == 12_345
    assert euler.pro_rata_yield(5, 10, 12_345) == 6_172  # floor(5 x 12345 / 10)
