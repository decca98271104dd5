"""Aave v3 calculators against protocol numbers.

Exact vectors come from marsfoundation/sparklend-testing ``test/LiquidationCall.t.sol``
(``LiquidationCallConcreteTest``), a test suite of SparkLend, which runs the aave-v3-core
v3.0 ``LiquidationLogic`` unchanged: both assets have 18 decimals and an oracle price of
``1e8`` (``SparkLendTestBase._setUpMockOracle(asset, 1e8)``), collateral LT 50% / bonus 101%,
protocol fee 20% in the ``whenProtocolFeeIsNotZero`` cases, position 1000 collateral / 500 debt
grown by interest. Those are the half-up ("v3.0") roundings; the v3.7 expectations apply the
three changes listed in aave-v3-origin ``docs/3.7/liquidation-rounding.md`` to the same inputs.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest.calculators import aave
from backtest.calculators.aave import MustNotLeaveDust

E = 10**18
P = 10**8  # $1 in base currency (8 decimals)


def spark(debt_to_cover: int, collateral: int = 1000 * E, bonus: int = 10100, fee: int = 2000,
          rounding: str = "v3.0") -> aave.CollateralToLiquidate:
    return aave.collateral_to_liquidate(debt_to_cover, collateral, P, 18, P, 18, bonus, fee,
                                        rounding)


def test_full_liquidation_below_095_spark_06():
    # LiquidationCall.t.sol test_liquidationCall_06: HF < 0.95 -> whole debt
    # 723.445957199470228858 repaid, collateralLiquidated 730.680416771464931147,
    # protocolFee 1.446891914398940458 (liquidator gets the difference).
    debt = 723_445957199470228858
    assert aave.max_liquidatable_debt_legacy(debt, 9 * 10**17) == debt
    r = spark(debt)
    assert r.debt_to_repay == debt
    assert r.collateral_seized == 730_680416771464931147
    assert r.protocol_fee == 1_446891914398940458
    assert r.collateral_to_liquidator == r.collateral_seized - r.protocol_fee
    # test_liquidationCall_01 (protocol fee zero): same seizure, no fee
    r0 = spark(debt, fee=0)
    assert (r0.collateral_seized, r0.protocol_fee) == (730_680416771464931147, 0)


def test_collateral_binding_spark_07():
    # test_liquidationCall_07: debt 1350.548... > collateral 1000; liquidator offers 1200.
    # All collateral seized, debt repaid 990.099009900990099010, fee 1.980198019801980198,
    # remaining debt 360.449082244133180581 becomes bad debt.
    borrower_debt = 1350_548092145123279590
    r = spark(1200 * E)
    assert r.collateral_capped
    assert r.collateral_seized == 1000 * E
    assert r.debt_to_repay == 990_099009900990099010
    assert r.protocol_fee == 1_980198019801980198
    # the suite checks this within 1 wei (assertApproxEqAbs(..., 1)): the debt token burns a
    # scaled amount (rayDiv by the borrow index), which this calculator does not model
    assert abs(borrower_debt - r.debt_to_repay - 360_449082244133180581) <= 1


def test_partial_below_095_and_health_factor_spark_08():
    # test_liquidationCall_08: repay 400 -> seize 404, fee 0.8, debt left 323.44...;
    # health factor after 0.921328566258590063e18 (aave-v3-core formula).
    r = spark(400 * E)
    assert (r.collateral_seized, r.protocol_fee) == (404 * E, 8 * E // 10)
    debt_left = 723_445957199470228858 - 400 * E
    assert debt_left == 323_445957199470228858
    coll_base = aave.to_base_currency(1000 * E - 404 * E, P, 18)
    debt_base = aave.to_base_currency(debt_left, P, 18)
    assert aave.health_factor([coll_base], [5000], debt_base, formula="legacy") == (
        921328566258590063
    )


def test_close_factor_half_spark_09_and_10():
    # test_liquidationCall_09: HF in (0.95, 1) -> only half of 501.853426710065837121 is
    # liquidatable: 250.926713355032918561 (percentMul half-up), seize 253.435980488583247747,
    # fee 0.501853426710065837, HF after 1.487613673237473184e18.
    debt = 501_853426710065837121
    cap = aave.max_liquidatable_debt_legacy(debt, 96 * 10**16)
    assert cap == 250_926713355032918561
    r = spark(min(300 * E, cap))
    assert r.collateral_seized == 253_435980488583247747
    assert r.protocol_fee == 501853426710065837
    assert abs(debt - cap - 250_926713355032918559) <= 1  # scaled-burn rounding, as above
    hf = aave.health_factor([aave.to_base_currency(1000 * E - r.collateral_seized, P, 18)],
                            [5000], aave.to_base_currency(250_926713355032918559, P, 18),
                            formula="legacy")
    assert hf == 1487613673237473184
    # test_liquidationCall_10: repay 200 (< cap) -> seize 202, fee 0.4, HF 1.321833594366751193
    r = spark(200 * E)
    assert (r.collateral_seized, r.protocol_fee) == (202 * E, 4 * E // 10)
    hf = aave.health_factor([aave.to_base_currency(798 * E, P, 18)], [5000],
                            aave.to_base_currency(debt - 200 * E, P, 18), formula="legacy")
    assert hf == 1321833594366751193


def test_emode_bonus_spark_11():
    # test_liquidationCall_11/12: eMode bonus 105% -> seize 759.618255059443740301,
    # fee 7.234459571994702289 (20% of the 5% bonus).
    r = spark(723_445957199470228858, bonus=10500)
    assert (r.collateral_seized, r.protocol_fee) == (759_618255059443740301,
                                                     7_234459571994702289)


def test_v37_rounding_changes():
    # docs/3.7/liquidation-rounding.md: maxCollateral percentMulFloor (up to 1 wei less seized),
    # base percentDivFloor and fee percentMulCeil (up to 1 wei more fee), liquidator absorbs.
    debt = 723_445957199470228858
    old, new = spark(debt), spark(debt, rounding="v3.7")
    assert old.collateral_seized == 730_680416771464931147  # half-up of ...146.58
    assert new.collateral_seized == 730_680416771464931146  # floor
    assert new.debt_to_repay == old.debt_to_repay
    # collateral-binding case: same seized balance, the fee rounds up by one wei
    old, new = spark(1200 * E), spark(1200 * E, rounding="v3.7")
    assert old.protocol_fee == 1_980198019801980198
    assert new.protocol_fee == 1_980198019801980199
    assert new.collateral_to_liquidator == old.collateral_to_liquidator - 1
    # v3.5+ rounds the debt needed up (percentDivCeil): 1000e18 * 1e4 / 10100 = ...009.90 -> 010
    assert spark(1200 * E, rounding="v3.5").debt_to_repay == 990_099009900990099010


def test_health_factor_formulas_and_no_debt():
    # The v3-origin formula sums collateral * LT before dividing (GenericLogic L156-164); on the
    # Spark 09 state it differs from the legacy one in the 11th digit.
    coll = aave.to_base_currency(1000 * E - 253_435980488583247747, P, 18)
    debt = aave.to_base_currency(250_926713355032918559, P, 18)
    assert aave.health_factor([coll], [5000], debt, formula="origin") == 1487613673217547046
    assert aave.health_factor([coll], [5000], 0) == aave.MAX_UINT256
    with pytest.raises(ValueError, match="formula"):
        aave.health_factor([coll], [5000], debt, formula="v4")


# --- v3.3+ close factor -------------------------------------------------------------------------
# aave-v3-origin tests/protocol/pool/Pool.Liquidations.CloseFactor.t.sol unit cases. The test
# environment's oracle prices are not reproduced here; the cases use WETH $2,000 and USDX $1 and
# keep each case's defining condition (HF, collateral and debt vs. $2,000).
WETH, USDX = 2_000 * P, P


def cap_v33(coll_weth: int, debt_usdx: int, hf: int, total_debt_base: int | None = None) -> int:
    debt_base = aave.to_base_currency(debt_usdx, USDX, 6, round_up=True)
    return aave.max_liquidatable_debt(
        debt_usdx, debt_base, aave.to_base_currency(coll_weth, WETH, 18),
        debt_base if total_debt_base is None else total_debt_base, hf, USDX, 6,
    )


def test_close_factor_v33_cases():
    debt = 180_000 * 10**6
    # test_hf_lte_095_supply_gt_threshold_closeFactorShouldBe100 (HF 0.94, 100 WETH)
    assert cap_v33(100 * E, debt, 94 * 10**16) == debt
    # test_hf_gt_095_supply_gt_threshold_closeFactorShouldBe50 (HF 0.97, 100 WETH)
    assert cap_v33(100 * E, debt, 97 * 10**16) == debt // 2
    # test_hf_gt_095_supply_lt_threshold_closeFactorShouldBe100 (HF 0.97, 0.5 WETH = $1,000)
    assert cap_v33(E // 2, 950 * 10**6, 97 * 10**16) == 950 * 10**6
    # test_hf_gt_095_borrow_gt_threshold_collateral_lt_threshold_closeFactorShouldBe100:
    # collateral just under $2,000 in the seized reserve -> 100% even with debt > $2,000
    below = (aave.MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD - P) * E // WETH
    assert cap_v33(below, 3_000 * 10**6, 97 * 10**16) == 3_000 * 10**6


def test_close_factor_v33_uses_total_debt():
    # LiquidationLogic L275-279: the 50% applies to the TOTAL debt and only caps this reserve
    # if its debt exceeds it. Reserve $3,000 of $10,000 total -> not capped; $6,000 -> $5,000.
    assert cap_v33(100 * E, 3_000 * 10**6, 97 * 10**16, 10_000 * P) == 3_000 * 10**6
    assert cap_v33(100 * E, 6_000 * 10**6, 97 * 10**16, 10_000 * P) == 5_000 * 10**6


def test_dust_rule_raises_and_flags():
    # LiquidationLogic L299-325: $3,000 USDX debt, 10 WETH ($20,000) collateral, HF 0.97 ->
    # cap $1,500; repaying $2,500 is capped to $1,500 (leaves $1,500, fine); a $2,100 repay
    # with HF 0.9 leaves $900 of debt -> MustNotLeaveDust; repaying everything is allowed.
    kw = dict(reserve_debt=3_000 * 10**6, collateral_balance=10 * E,
              total_collateral_base=20_000 * P, total_debt_base=3_000 * P,
              collateral_price=WETH, collateral_decimals=18, debt_price=USDX, debt_decimals=6,
              liquidation_bonus=10500, protocol_fee=1000)
    ok = aave.liquidation_call(2_500 * 10**6, health_factor_wad=97 * 10**16, **kw)
    assert ok.max_liquidatable_debt == 1_500 * 10**6
    assert ok.amounts.debt_to_repay == 1_500 * 10**6 and not ok.leaves_dust
    with pytest.raises(MustNotLeaveDust, match=r"\$1,000"):
        aave.liquidation_call(2_100 * 10**6, health_factor_wad=9 * 10**17, **kw)
    flagged = aave.liquidation_call(2_100 * 10**6, health_factor_wad=9 * 10**17,
                                    raise_on_dust=False, **kw)
    assert flagged.leaves_dust
    full = aave.liquidation_call(None, health_factor_wad=9 * 10**17, **kw)
    assert full.amounts.debt_to_repay == 3_000 * 10**6 and not full.leaves_dust
    with pytest.raises(ValueError, match="not liquidatable"):
        aave.liquidation_call(None, health_factor_wad=E, **kw)


def test_bad_debt_flag_when_all_collateral_seized():
    # Spark 07 state through liquidation_call: the only collateral is seized -> deficit.
    res = aave.liquidation_call(
        aave.MAX_UINT256, reserve_debt=1350_548092145123279590, collateral_balance=1000 * E,
        total_collateral_base=1000 * P, total_debt_base=135054809214, health_factor_wad=10**17,
        collateral_price=P, collateral_decimals=18, debt_price=P, debt_decimals=18,
        liquidation_bonus=10100, protocol_fee=2000, rounding="v3.0",
    )
    assert res.bad_debt and res.amounts.collateral_capped
    assert res.amounts.debt_to_repay == 990_099009900990099010


def test_invalid_inputs():
    with pytest.raises(ValueError, match="liquidation_bonus"):
        spark(E, bonus=500)
    with pytest.raises(ValueError, match="debt_to_cover"):
        spark(-1)
    with pytest.raises(ValueError, match="rounding"):
        spark(E, rounding="v9")
    with pytest.raises(ValueError, match="collateral_price"):
        aave.collateral_to_liquidate(E, E, 0, 18, P, 18, 10500, 0)


@settings(max_examples=300, deadline=None)
@given(
    debt=st.integers(0, 10**30),
    balance=st.integers(0, 10**30),
    coll_price=st.integers(1, 10**14),
    debt_price=st.integers(1, 10**14),
    coll_dec=st.sampled_from([6, 8, 18]),
    debt_dec=st.sampled_from([6, 8, 18]),
    bonus=st.integers(10_000, 15_000),
    fee=st.integers(0, 10_000),
    rounding=st.sampled_from(aave.ROUNDINGS),
)
def test_seized_never_exceeds_balance(debt, balance, coll_price, debt_price, coll_dec, debt_dec,
                                      bonus, fee, rounding):
    r = aave.collateral_to_liquidate(debt, balance, coll_price, coll_dec, debt_price, debt_dec,
                                     bonus, fee, rounding)
    assert 0 <= r.protocol_fee <= r.collateral_seized <= balance
    assert r.collateral_to_liquidator + r.protocol_fee == r.collateral_seized
    assert r.debt_to_repay <= debt
    # the fee is a share of the bonus only: never more than seized minus the bonus base
    base = aave.percent_div(r.collateral_seized, bonus, "floor")
    assert r.protocol_fee <= r.collateral_seized - base + 1


@settings(max_examples=200, deadline=None)
@given(debt=st.integers(0, 10**27), bonus=st.integers(10_000, 15_000), fee=st.integers(0, 10_000))
def test_v37_seizes_at_most_one_wei_less(debt, bonus, fee):
    old = aave.collateral_to_liquidate(debt, 10**40, P, 18, P, 18, bonus, fee, "v3.0")
    new = aave.collateral_to_liquidate(debt, 10**40, P, 18, P, 18, bonus, fee, "v3.7")
    assert 0 <= old.collateral_seized - new.collateral_seized <= 1


# --- Aave v2 (aave/protocol-v2 LendingPoolCollateralManager.sol) ---------------------------------
# Worked examples derived from the contract code (_calculateAvailableCollateralToLiquidate and
# PercentageMath: percentMul / percentDiv round half-up), intermediate integers stated.


def test_v2_bonus_applied_before_dividing_small_integers():
    # debtPrice 1, collPrice 3, 0 decimals, bonus 10500, debtToCover 20:
    # v2: percentMul(1 * 20 * 1, 10500) = (210000 + 5000) // 10000 = 21; 21 // 3 = 7
    # v3.0: 20 // 3 = 6; percentMul(6, 10500) = (63000 + 5000) // 10000 = 6
    assert aave.collateral_to_liquidate_v2(20, 100, 3, 0, 1, 0, 10500) == (7, 20)
    v3 = aave.collateral_to_liquidate(20, 100, 3, 0, 1, 0, 10500, 0, "v3.0")
    assert v3.collateral_seized == 6
    # collateral binds (balance 5 < 7): debtNeeded = percentDiv(3 * 5 * 1 // (1 * 1), 10500)
    # = (15 * 10000 + 5250) // 10500 = 155250 // 10500 = 14
    assert aave.collateral_to_liquidate_v2(20, 5, 3, 0, 1, 0, 10500) == (5, 14)


def test_v2_wbtc_seizure_one_satoshi_below_v3():
    # WBTC (8 dec) at 15.123456789012345678 ETH, USDC (6 dec) at 0.00033445566778899 ETH,
    # bonus 10650, debtToCover 79,331.461629 USDC:
    # debtPrice * debtToCover * 1e8 = 2653285697580383145366471000000000
    # percentMul(.., 10650) = 2825749267923108049815291615000000
    # / (collPrice * 1e6 = 15123456789012345678000000) = 186845461 satoshi (exact 186845461.81)
    # v3.0: floor first: 175441748, percentMul(175441748, 10650) = 186845461.62 -> 186845462.
    wbtc, usdc, debt = 15_123456789012345678, 334_455_667_788_990, 79_331_461629
    coll, repaid = aave.collateral_to_liquidate_v2(debt, 10**10, wbtc, 8, usdc, 6, 10650)
    assert (coll, repaid) == (186_845_461, debt)
    v3 = aave.collateral_to_liquidate(debt, 10**10, wbtc, 8, usdc, 6, 10650, 0, "v3.0")
    assert v3.collateral_seized == 186_845_462


def test_v2_close_factor_is_half_at_any_health_factor():
    # LIQUIDATION_CLOSE_FACTOR_PERCENT = 5000, percentMul half-up on stable + variable:
    # (1001 + 2000) wei -> (3001 * 5000 + 5000) // 10000 = 1501
    assert aave.max_liquidatable_debt_v2(1001, 2000) == 1501
    # HF 0.5: v3.0-3.2 would allow 100%; v2 still 50%
    r = aave.liquidation_call_v2(None, 0, 1000 * E, 2000 * E, E // 2, P, 18, P, 18, 10500)
    assert r.max_liquidatable_debt == 500 * E
    assert (r.debt_repaid, r.collateral_seized, r.collateral_capped) == (500 * E, 525 * E, False)
    # collateral binding: 300 collateral at $1 cannot pay 500 x 1.05:
    # debtNeeded = percentDiv(300e18, 10500) = (300e22 + 5250) // 10500 = 285714285714285714286
    r = aave.liquidation_call_v2(None, 0, 1000 * E, 300 * E, E // 2, P, 18, P, 18, 10500)
    assert r.collateral_capped and r.collateral_seized == 300 * E
    assert r.debt_repaid == 285_714285714285714286
    with pytest.raises(ValueError, match="not liquidatable"):
        aave.liquidation_call_v2(None, 0, E, E, E, P, 18, P, 18, 10500)
    with pytest.raises(ValueError, match="no debt"):
        aave.liquidation_call_v2(None, 0, 0, E, E // 2, P, 18, P, 18, 10500)


# --- governance constants as parameters -----------------------------------------------------------


def test_close_factor_threshold_and_dust_are_parameters():
    # $2,500 of debt in one reserve, HF 0.97: deployed v3.3 threshold $2,000 -> 50% of total
    # debt (percentMul(2500e8, 5000) = 1250e8 -> 1,250 tokens of a $1 18-dec token)
    debt = 2500 * E
    args = (debt, 2500 * P, 3000 * P, 2500 * P, 97 * 10**16, P, 18)
    assert aave.max_liquidatable_debt(*args) == 1250 * E
    # a fork that raises the threshold to $5,000: the whole debt is liquidatable
    assert aave.max_liquidatable_debt(*args, min_base_max_close_factor_threshold=5000 * P) == debt
    # a threshold HF of 0.98: HF 0.97 is below it, 100%
    assert aave.max_liquidatable_debt(*args, close_factor_hf_threshold=98 * 10**16) == debt
    assert aave.max_liquidatable_debt_legacy(debt, 97 * 10**16,
                                             close_factor_hf_threshold=98 * 10**16) == debt
    # dust: leaving $900 of debt breaks MIN_LEFTOVER_BASE = $1,000 but not a $500 rule
    dust_args = (debt, 1600 * E, 3000 * E, 1680 * E, 0, P, 18, P, 18)
    assert aave.leaves_dust(*dust_args)
    assert not aave.leaves_dust(*dust_args, min_leftover_base=500 * P)


def test_liquidation_call_passes_the_governance_constants_through():
    # the dust-rule case of test_dust_rule_raises_and_flags ($3,000 debt, HF 0.9, repay $2,100
    # leaves $900 < $1,000 -> revert) passes once MIN_LEFTOVER_BASE is set to $500
    kw = dict(reserve_debt=3_000 * 10**6, collateral_balance=10 * E,
              total_collateral_base=20_000 * P, total_debt_base=3_000 * P,
              collateral_price=WETH, collateral_decimals=18, debt_price=USDX, debt_decimals=6,
              liquidation_bonus=10500, protocol_fee=1000, health_factor_wad=9 * 10**17)
    with pytest.raises(MustNotLeaveDust, match=r"\$1,000"):
        aave.liquidation_call(2_100 * 10**6, **kw)
    r = aave.liquidation_call(2_100 * 10**6, **kw, min_leftover_base=500 * P)
    assert r.amounts.debt_to_repay == 2_100 * 10**6 and r.leaves_dust is False
    with pytest.raises(MustNotLeaveDust, match=r"\$1,500"):
        aave.liquidation_call(2_100 * 10**6, **kw, min_leftover_base=1_500 * P)
    # HF 0.97 with a $5,000 full-liquidation threshold: the whole $3,000 is liquidatable
    kw["health_factor_wad"] = 97 * 10**16
    assert aave.liquidation_call(None, **kw).max_liquidatable_debt == 1_500 * 10**6
    assert aave.liquidation_call(
        None, **kw, min_base_max_close_factor_threshold=5_000 * P
    ).max_liquidatable_debt == 3_000 * 10**6


def test_legacy_close_factor_percentage_is_a_parameter():
    # v3.0-3.2 with a 30% close factor (a fork's setting): percentMul(1001, 3000) half-up
    # = (3003000 + 5000) // 10000 = 300; at HF 0.95 (not above the threshold) still 100%
    assert aave.max_liquidatable_debt_legacy(1001, 96 * 10**16, close_factor=3000) == 300
    assert aave.max_liquidatable_debt_legacy(1001, 95 * 10**16, close_factor=3000) == 1001
    assert aave.max_liquidatable_debt_v2(0, 1001, close_factor=3000) == 300
    with pytest.raises(ValueError, match="10_000"):
        aave.max_liquidatable_debt_legacy(1001, E // 2, close_factor=10_001)


@pytest.mark.parametrize("debt", [96.0, 97.0])
def test_engine_close_factor_is_on_the_debt_like_v2(debt):
    """The engine's partial loan liquidation seizes what Aave v2 seizes: the close factor on
    the debt, the collateral capped at the balance, also when the whole debt would need more
    collateral than is held (collateral worth less than debt x (1 + bonus)). (Deeper still,
    when the equity left cannot pay the bonus on that slice, the engine closes the whole loan
    where v2 would take another slice: its own rule, documented in units_to_close_nb.)"""
    import numpy as np

    from backtest.kernels.enums import PolicyFamily, Product
    from backtest.kernels.liquidation_nb import units_to_close_nb

    bonus = 0.05
    penalty = bonus / (1 + bonus)  # the engine's penalty: the bonus as a share of the seizure
    d = units_to_close_nb(int(PolicyFamily.PARTIAL), int(Product.LOAN), 1.0, -debt, 100.0,
                          0.175, np.inf, penalty, 0.5, 0.0, np.zeros(1), np.zeros(1),
                          np.zeros(4), False)
    # the same loan in v2's calculator: 1 collateral at $100, the debt in a $1 stablecoin
    r = aave.liquidation_call_v2(None, 0, int(debt * E), E, E // 2, 100 * P, 18, P, 18, 10500)
    assert d == pytest.approx(r.collateral_seized / E, rel=1e-9)
    assert d < 1.0 and d * 100.0 > 0.5 * debt  # more than half the debt's worth: not cf x size
