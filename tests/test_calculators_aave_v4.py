"""Aave v4 calculators against aave/aave-v4's own test numbers and worked examples.

Sources: aave/aave-v4 ``tests/unit/libraries/LiquidationLogic/`` files
``LiquidationLogic.LiquidationBonus.t.sol``
(``test_calculateLiquidationBonus_MinBonusDueToRounding``, ``_PartialBonus``, the fuzz cases'
properties; commented out in the stored version at commit 60d1963b, and reproduced here because
``calculateLiquidationBonus`` of the modelled commit gives exactly those numbers) and
``LiquidationLogic.DebtToTargetHealthFactor.t.sol`` (``_UnitPrice``,
``_NoPrecisionLoss``, ``_PrecisionLoss``; those tests express the result in RAY, here the same
amounts are in token units, rounded up as ``_calculateDebtToTargetHealthFactor`` rounds them).
Other examples are worked from ``src/contracts/spoke/libraries/LiquidationLogic.sol`` and stated.
"""

from __future__ import annotations

import numpy as np
import pytest

from backtest.calculators import aave_v4 as v4

E = 10**18
P = 10**8  # $1, 8 decimals
V = 10**26  # $1 in value units


def test_bonus_published_values():
    # MinBonusDueToRounding: hfForMax 0.8, factor 50%, HF 1 - 1 wei, max 110% -> 105%
    assert v4.liquidation_bonus(E - 1, 110_00, 8 * 10**17, 50_00) == 105_00
    # PartialBonus: HF 0.96 -> 105% + 5% x (0.04 / 0.2) = 106%
    assert v4.liquidation_bonus(96 * 10**16, 110_00, 8 * 10**17, 50_00) == 106_00
    # fuzz_MaxBonus property: at and below healthFactorForMaxBonus, the maximum
    assert v4.liquidation_bonus(8 * 10**17, 110_00, 8 * 10**17, 50_00) == 110_00
    assert v4.liquidation_bonus(0, 110_00, 8 * 10**17, 50_00) == 110_00
    # fuzz_ConstantBonus property: factor 100% -> the maximum at any HF
    assert v4.liquidation_bonus(99 * 10**16, 110_00, 8 * 10**17, 100_00) == 110_00


def test_bonus_rises_as_health_falls_and_rejects_bad_config():
    bonuses = [v4.liquidation_bonus(h * 10**16, 108_00, 9 * 10**17, 25_00)
               for h in (99, 97, 95, 93, 91, 90)]
    # min = 100% + 8% x 25% = 102%; slope 6% per 0.1 of HF, floor
    assert bonuses == [102_60, 103_80, 105_00, 106_20, 107_40, 108_00]
    with pytest.raises(ValueError, match="below 1e18"):
        v4.liquidation_bonus(E // 2, 110_00, E, 50_00)
    with pytest.raises(ValueError, match="including 100%"):
        v4.liquidation_bonus(E // 2, 500, 8 * 10**17, 50_00)


def test_debt_to_target_published_values():
    # _UnitPrice: $10,000 debt, price $1, CF 50%, bonus 150%, HF 0.8, target 1.25:
    # penalty 0.75; 10000 x (1.25 - 0.8) / (1.25 - 0.75) = 9000 tokens
    for unit_dec in (0, 6, 18):
        assert v4.debt_to_target_health_factor(
            10_000 * V, 8 * 10**17, 125 * 10**16, 150_00, 50_00, P, unit_dec
        ) == 9000 * 10**unit_dec
        # _NoPrecisionLoss: price $2,000, target 1.0 -> 10000 x 0.2 / 0.25 / 2000 = 4
        assert v4.debt_to_target_health_factor(
            10_000 * V, 8 * 10**17, E, 150_00, 50_00, 2000 * P, unit_dec
        ) == 4 * 10**unit_dec
    # _PrecisionLoss: price $333 -> 24.024024... tokens, rounded up
    args = (10_000 * V, 8 * 10**17, E, 150_00, 50_00, 333 * P)
    assert v4.debt_to_target_health_factor(*args, 0) == 25
    assert v4.debt_to_target_health_factor(*args, 6) == 24_024_025
    assert v4.debt_to_target_health_factor(*args, 18) == 24_024024024024024025
    assert v4.debt_to_target_health_factor(10_000 * V, E - 1, E - 1, 105_00, 80_00, P, 6) == 0
    with pytest.raises(ValueError, match="below health_factor"):
        v4.debt_to_target_health_factor(10_000 * V, E, 9 * 10**17, 105_00, 80_00, P, 6)


def test_dust_rule_takes_all_or_reverts():
    # $5,000 USDC debt (6 dec), target needs $4,500 -> $500 left < $1,000: the request must
    # cover everything; then the whole $5,000 is repaid
    kw = dict(total_debt_value=5_000 * V, health_factor=9 * 10**17,
              target_health_factor=10**18 + 10**18 // 2, liquidation_bonus_bps=105_00,
              collateral_factor=80_00, debt_price=P, debt_decimals=6)
    # debt to target = 5000 x 0.6 / (1.5 - 0.84) = 4545.454546 USDC
    to_target = v4.debt_to_target_health_factor(**kw)
    assert to_target == 4_545_454_546
    with pytest.raises(v4.MustNotLeaveDust, match=r"\$1,000"):
        v4.max_debt_to_liquidate(5_000 * 10**6, 4_600 * 10**6, **kw)
    assert v4.max_debt_to_liquidate(5_000 * 10**6, 2**256 - 1, **kw) == 5_000 * 10**6
    # with the dust threshold set to $100 the target amount stands
    assert v4.max_debt_to_liquidate(5_000 * 10**6, 2**256 - 1, **kw,
                                    dust_threshold=100 * V) == to_target


def test_liquidation_amounts_with_fee_and_collateral_cap():
    # 10 WETH at $2,000 (CF 80%), $17,000 USDC debt: HF = 16000 / 17000 = 0.941176...
    hf = 16_000 * E // 17_000
    common = dict(debt_reserve_balance=17_000 * 10**6, debt_to_cover=2**256 - 1,
                  total_debt_value=17_000 * V, health_factor=hf,
                  target_health_factor=105 * 10**16, max_liquidation_bonus=110_00,
                  health_factor_for_max_bonus=9 * 10**17, liquidation_bonus_factor=50_00,
                  collateral_factor=80_00, debt_price=P, debt_decimals=6,
                  collateral_price=2000 * P, collateral_decimals=18, liquidation_fee=10_00)
    r = v4.liquidation_amounts(collateral_reserve_balance=10 * E, **common)
    # bonus: 105% + 5% x (1 - 0.941176...) / 0.1 floor = 105% + 2.94% -> 10794
    assert r.liquidation_bonus == 107_94
    # debt to target: 17000 x (1.05 - 0.941176470588235294) / (1.05 - 0.86352) = 1850 / 0.18648
    # = 9920.634920... USDC, rounded up
    assert r.debt_to_liquidate == 9_920_634_921
    # collateral: 9920.634921 / 2000 = 4.9603174605 WETH x 1.0794, floor
    assert r.collateral_to_liquidate == 4_960317460500000000 * 107_94 // 10_000
    bonus_part = r.collateral_to_liquidate - 4_960317460500000000
    assert r.liquidation_fee_amount == bonus_part * 10_00 // 10_000
    assert r.collateral_to_liquidator + r.liquidation_fee_amount == r.collateral_to_liquidate
    assert not r.collateral_capped
    # only 3 WETH: all of it is seized, debt = ceil(ceil(3e18 / 1.0794) x 2000 / 1e12)
    r = v4.liquidation_amounts(collateral_reserve_balance=3 * E, **common)
    assert r.collateral_capped and r.collateral_to_liquidate == 3 * E
    coll_base = -(-3 * E * 10_000 // 107_94)
    assert r.debt_to_liquidate == -(-coll_base * 2000 * P * 10**6 // (P * E))
    assert v4.creates_deficit(True, False, 1, 1)
    assert not v4.creates_deficit(True, True, 1, 1)
    assert not v4.creates_deficit(True, False, 2, 1)
    with pytest.raises(ValueError, match="not liquidatable"):
        v4.liquidation_amounts(collateral_reserve_balance=E, **{**common, "health_factor": E})


# --- the kernel's HEALTH_RAMP penalty model (Aave v4 preset) -----------------------------------


def test_kernel_ramp_matches_the_calculator_and_its_twin():
    from backtest.kernels.enums import POLICY_DTYPE, PenaltyModel, Product
    from backtest.kernels.liquidation_nb import penalty_rate_nb
    from backtest.kernels.reference import _penalty

    # max bonus 10%, factor 50%, HF for max 0.8 (the aave-v4 test configuration)
    base, cap = 0.05 / 1.05, 0.10 / 1.10
    rec = np.zeros(1, POLICY_DTYPE)
    rec["penalty_model"] = PenaltyModel.HEALTH_RAMP
    rec["penalty_rate"][0, Product.LOAN] = base
    rec["penalty_cap"] = cap
    rec["full_close_health"] = 0.8
    for hf in (0.999999, 0.99, 0.96, 0.9, 0.85, 0.8, 0.5):
        pen = penalty_rate_nb(int(PenaltyModel.HEALTH_RAMP), base, cap, hf, 0.8)
        assert pen == pytest.approx(_penalty(rec[0], Product.LOAN, hf), rel=1e-14)
        lb = v4.liquidation_bonus(round(hf * E), 110_00, 8 * 10**17, 50_00)
        # the contract floors to a basis point; the kernel's bonus is exact
        assert 0 <= pen / (1 - pen) - (lb - 10_000) / 10_000 < 1e-4
    # perps keep their fixed penalty; FIXED and HEALTH_DISCOUNT unchanged
    assert _penalty(rec[0], Product.PERP, 0.5) == rec["penalty_rate"][0, Product.PERP]
    assert penalty_rate_nb(int(PenaltyModel.FIXED), 0.03, cap, 0.5, 0.8) == 0.03
    assert penalty_rate_nb(int(PenaltyModel.HEALTH_DISCOUNT), 0.03, 0.2, 0.9, 0.8) == (
        pytest.approx(0.1))


@pytest.mark.parametrize("seed", range(4))
def test_kernel_matches_reference_with_health_ramp(seed):
    from backtest.engine.dispatch import liquidation_order, simulate
    from backtest.kernels.enums import FillPrice, PenaltyModel, PolicyFamily, TriggerPrice
    from backtest.kernels.reference import simulate_reference
    from tests.kernel_inputs import random_book, random_policy, random_prices, random_volume

    rng = np.random.default_rng(4400 + seed)
    prices = random_prices(rng, 120, vol=0.02)
    book = random_book(rng, 300)
    policy = random_policy(rng, int(PolicyFamily.PARTIAL) if seed % 2 else None)
    policy["penalty_model"] = PenaltyModel.HEALTH_RAMP
    policy["penalty_rate"][0, 1] = 0.02  # penalty just below health 1
    policy["penalty_cap"] = 0.08  # at and below healthFactorForMaxBonus
    policy["full_close_health"] = rng.uniform(0.7, 0.95)
    policy["close_factor"] = 1.0
    volume = random_volume(np.random.default_rng(seed + 1), 120)
    res = simulate(prices, book["product"], book["units"], book["cash"], policy,
                   TriggerPrice.EXTREME, FillPrice.TRIGGER, volume=volume)
    ref = simulate_reference(prices.open, prices.high, prices.low, prices.close,
                             TriggerPrice.EXTREME, FillPrice.TRIGGER, policy[0],
                             book["product"], book["units"], book["cash"], volume=volume,
                             priority=liquidation_order(book["product"], book["units"],
                                                        book["cash"]))
    assert res.records.shape[0] == len(ref.records) > 0
    np.testing.assert_allclose(res.units, ref.units, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(res.cash, ref.cash, rtol=1e-10, atol=1e-8)
    np.testing.assert_allclose(res.step_metrics, ref.step_metrics, rtol=1e-9, atol=1e-7)
    loans = res.records[book["product"][res.records["account"]] == 1]
    assert len(loans) > 0
    # money: each account's cash change is its sale proceeds - fees + bad debt written off
    rec = res.records
    proceeds, fees, written_off = (np.zeros(len(book["units"])) for _ in range(3))
    np.add.at(proceeds, rec["account"], rec["units_closed"] * rec["fill_price"])
    np.add.at(fees, rec["account"], rec["keeper_fee"] + rec["insurance_fee"])
    np.add.at(written_off, rec["account"], rec["bad_debt"])
    scale = np.abs(book["cash"]) + np.abs(proceeds) + 1.0
    np.testing.assert_allclose((res.cash - book["cash"]) / scale,
                               (proceeds - fees + written_off) / scale, atol=1e-12)
    # the loans' fees never exceed the ramp's top (8% of the seized value), and the ramp
    # raised some above its bottom (2%)
    fee_rate = (loans["keeper_fee"] + loans["insurance_fee"]) / loans["notional"]
    assert np.all(fee_rate <= 0.08 * (1 + 1e-12))
    assert np.any(fee_rate > 0.02 * (1 + 1e-9))
