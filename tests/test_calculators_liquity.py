"""Liquity v1/v2 calculators against the protocols' own tests.

v1 sources: liquity/dev ``packages/contracts/test/GasCompensationTest.js`` and
``TroveManager_RecoveryModeTest.js``. v2 sources: liquity/bold ``contracts/test/liquidations.t.sol``
as of PR #889 (2025-05, collateral gas compensation on the SP-offset part only; WETH branch: MCR
110%, SP penalty 5%, redistribution penalty 10%). The v2 tests express their
expectations in terms of the trove's entire debt (``liquidationAmount + AInterest``, the upfront
fee and interest); here the entire debt is taken as the nominal amount, which is what the
formulas in those assertions reduce to when ``AInterest`` is substituted.
"""

from __future__ import annotations

import pytest

from backtest.calculators import liquity

E = 10**18


def test_coll_gas_compensation_v1():
    # GasCompensationTest.js '_getCollGasCompensation(): returns 0.5% of collateral ...':
    assert liquity.coll_gas_compensation_v1(E) == 5 * 10**15
    assert liquity.coll_gas_compensation_v1(10**17) == 5 * 10**14  # 100 finney
    assert liquity.coll_gas_compensation_v1(5_000_000_000) == 25_000_000
    assert liquity.coll_gas_compensation_v1(9_999_000_000_000_000_000) == 49_995_000_000_000_000
    assert liquity.coll_gas_compensation_v1(55_000_000_000_000_000) == 275 * 10**12


def test_pool_offset_pays_gas_and_sends_rest_to_sp_v1():
    # GasCompensationTest.js 'Gas compensation from pool-offset liquidations. All collateral
    # paid as compensation': the liquidator gets coll / 200 and the SP's ETH rises by
    # coll - coll / 200 (1 ETH at $9.99, SP holding the whole debt).
    debt = 200 * E + 1_810 * E  # composite debt incl. the 200 LUSD gas reserve
    r = liquity.liquidate_normal_mode_v1(debt, E, 9_990_000_000_000_000_000, lusd_in_sp=10**24)
    assert r.coll_gas_compensation == E // 200
    assert r.coll_to_sp == E - E // 200
    assert (r.debt_to_offset, r.debt_to_redistribute, r.coll_to_redistribute) == (debt, 0, 0)
    assert r.debt_gas_compensation == liquity.LUSD_GAS_COMPENSATION


def test_recovery_mode_capped_offset_v1():
    # TroveManager_RecoveryModeTest.js 'liquidate(), with 110% < ICR < TCR, and StabilityPool
    # LUSD > debt to liquidate: offsets the trove entirely with the pool': Bob's debt 250 LUSD,
    # collateral 3 ETH, price 100 (ICR 120%), SP 1490 -> Alice's deposit 1240, ETH gain
    # applyLiquidationFee(250 * 1.1 / 100) = 2.75 * 0.995, Bob's surplus coll - debt*1.1/price.
    debt, coll, price = 250 * E, 3 * E, 100 * E
    r = liquity.liquidate_recovery_mode_v1(debt, coll, price, lusd_in_sp=1490 * E, tcr=14 * E // 10)
    assert r.coll_to_sp == 2_736_250_000_000_000_000  # 2.75 * 0.995
    assert r.coll_surplus == coll - debt * 11 * 10**17 // price == 25 * 10**16
    assert 1490 * E - r.debt_to_offset == 1240 * E
    assert r.debt_to_redistribute == r.coll_to_redistribute == 0


def test_recovery_mode_branches_v1():
    price = 100 * E
    # 'liquidate(), with ICR < 100%: only redistributes to active Troves - no offset to SP'
    r = liquity.liquidate_recovery_mode_v1(500 * E, 4 * E, price, 10**24, 14 * E // 10)
    assert (r.debt_to_offset, r.coll_to_sp) == (0, 0)
    assert (r.debt_to_redistribute, r.coll_to_redistribute) == (500 * E, 4 * E - 4 * E // 200)
    # 100% < ICR < MCR: offset as much as possible, redistribute the rest (SP 100 LUSD)
    r = liquity.liquidate_recovery_mode_v1(250 * E, 27 * E // 10, price, 100 * E, 14 * E // 10)
    coll_left = 27 * E // 10 - 27 * E // 10 // 200
    assert (r.debt_to_offset, r.debt_to_redistribute) == (100 * E, 150 * E)
    assert r.coll_to_sp == coll_left * 100 // 250
    # 'liquidate(), with ICR > 110%, and StabilityPool LUSD < liquidated debt: nothing happens'
    assert liquity.liquidate_recovery_mode_v1(250 * E, 3 * E, price, 100 * E, 14 * E // 10) is None
    # 'does nothing if trove ICR >= TCR, and SP covers trove's debt'
    assert liquity.liquidate_recovery_mode_v1(250 * E, 3 * E, price, 10**24, 11 * E // 10) is None
    # Normal Mode never liquidates at ICR >= MCR
    assert liquity.liquidate_normal_mode_v1(250 * E, 3 * E, price, 10**24) is None


def within(a: int, b: int, tol: int) -> bool:
    return abs(a - b) <= tol


def test_v2_offset_with_surplus():
    # liquidations.t.sol testLiquidationOffsetWithSurplus: 2 ETH, 2,000 BOLD, price 1100e18 - 1,
    # SP covers: SP coll += debt / price * 105 / 100 (within 10 wei); A's surplus
    # coll * 995 / 1000 - that (within 1 wei).
    debt, coll, price = 2000 * E, 2 * E, 1100 * E - 1
    r = liquity.liquidate_v2(debt, coll, price, bold_in_sp=2100 * E - liquity.MIN_BOLD_IN_SP)
    sp_expected = debt * E // price * 105 // 100
    assert within(r.coll_to_sp, sp_expected, 10)
    assert within(r.coll_surplus, coll * 995 // 1000 - sp_expected, 1)
    assert r.debt_to_offset == debt and r.debt_to_redistribute == 0


def test_v2_offset_no_surplus():
    # testLiquidationOffsetNoSurplus: 10 ETH, 10,000 BOLD at price 1030 (ICR 103% < 105%
    # penalty cap): the SP gets all collateral minus gas compensation, no surplus.
    r = liquity.liquidate_v2(10_000 * E, 10 * E, 1030 * E, 10_100 * E - liquity.MIN_BOLD_IN_SP)
    assert within(r.coll_to_sp, 10 * E * 995 // 1000, 10)
    assert r.coll_surplus == 0


def test_v2_redistribution_no_surplus():
    # testLiquidationRedistributionNoSurplus: empty SP -> B receives the whole debt and "all
    # coll minus coll gas comp" = collAmount ("no coll gas comp", since PR #889): 2 ETH <
    # 2000 x 1.1 / (1100 - 1e-18), nothing to CollSurplusPool, no collateral gas compensation.
    r = liquity.liquidate_v2(2000 * E, 2 * E, 1100 * E - 1, bold_in_sp=0)
    assert (r.debt_to_offset, r.coll_to_sp, r.coll_gas_compensation) == (0, 0, 0)
    assert r.debt_to_redistribute == 2000 * E
    assert within(r.coll_to_redistribute, 2 * E, 10)
    assert r.coll_surplus == 0


def test_v2_mix_offset_and_redistribution():
    # testLiquidationMix: SP holds 1,000 BOLD, 1 BOLD must stay (MIN_BOLD_IN_SP) -> 999 offset;
    # SP coll += 999 / price * 105%, B coll += (1001) / price * 110%; A's surplus is
    # coll x 999/2000 x 995/1000 - SP coll + coll x 1001/2000 - B coll: the 0.5% is taken
    # from the offset portion only (each within 10 wei).
    debt, coll, price = 2000 * E, 2 * E, 1100 * E - 1
    r = liquity.liquidate_v2(debt, coll, price, bold_in_sp=1000 * E - liquity.MIN_BOLD_IN_SP)
    assert (r.debt_to_offset, r.debt_to_redistribute) == (999 * E, 1001 * E)
    sp = (debt // 2 - E) * E // price * 105 // 100
    red = (debt // 2 + E) * E // price * 110 // 100
    assert within(r.coll_to_sp, sp, 10)
    assert within(r.coll_to_redistribute, red, 10)
    surplus = (coll * (debt // 2 - E) // debt * 995 // 1000 - sp
               + coll * (debt // 2 + E) // debt - red)
    assert within(r.coll_surplus, surplus, 10)
    assert r.coll_gas_compensation == (coll * 999 // 2000) // 200  # 0.5% of the SP portion
    assert r.coll_to_sp + r.coll_to_redistribute + r.coll_surplus + r.coll_gas_compensation == coll


def test_v2_gas_cap_lst_branch_and_invalid_inputs():
    assert liquity.coll_gas_compensation_v2(1000 * E) == 2 * E  # capped at 2 tokens
    assert liquity.coll_gas_compensation_v2(E) == E // 200
    # LST branch: MCR 120% -> a trove at 115% is liquidatable there but not on WETH
    assert liquity.liquidate_v2(1000 * E, 115 * E // 100, 1000 * E, 0, liquity.LST_BRANCH)
    assert liquity.liquidate_v2(1000 * E, 115 * E // 100, 1000 * E, 0) is None
    with pytest.raises(ValueError, match="debt"):
        liquity.liquidate_v2(0, E, E, 0)
    with pytest.raises(ValueError, match="price"):
        liquity.coll_penalty_and_surplus(E, E, 0, 0)


# --- v1 Stability Pool per-depositor accounting (liquity/dev StabilityPool.sol) -----------------
# Worked examples derived from the contract code (offset, _computeRewardsPerUnitStaked,
# _updateRewardSumAndProduct, _getCompoundedStakeFromSnapshots, _getETHGainFromSnapshots), in the
# setting of liquity/dev StabilityPoolTest.js "depositors with equal initial deposit withdraw
# correct compounded deposit and ETH gain after one liquidation" (3 x 10,000 LUSD deposits, a
# trove of 100 ETH / 10,000 LUSD liquidated at ETH = $100).


def _pool(*deposits: tuple[str, int]) -> liquity.StabilityPoolV1:
    sp = liquity.StabilityPoolV1()
    for who, amount in deposits:
        sp.deposit(who, amount)
    return sp


def test_sp_v1_one_offset_three_equal_depositors():
    sp = _pool(("alice", 10_000 * E), ("bob", 10_000 * E), ("carol", 10_000 * E))
    r = liquity.liquidate_normal_mode_v1(10_000 * E, 100 * E, 100 * E, sp.total_deposits)
    assert (r.debt_to_offset, r.coll_to_sp) == (10_000 * E, 99_500_000_000_000_000_000)
    sp.offset(r.debt_to_offset, r.coll_to_sp)
    # LUSDLossPerUnitStaked = 1e40 // 3e22 + 1 = 333333333333333334 -> P = 666666666666666666
    assert sp.P == 666_666_666_666_666_666
    # compounded = 1e22 x P / 1e18 = 6666.66666666666666 LUSD; ETH gain: S = 99.5e36 // 3e22
    # x 1e18 = 3316666666666666e18 -> 1e22 x S / 1e18 / 1e18 = 33.16666666666666 ETH
    for who in ("alice", "bob", "carol"):
        assert sp.compounded_deposit(who) == 6_666_666_666_666_666_660_000
        assert sp.eth_gain(who) == 33_166_666_666_666_660_000
    # money: what depositors can take never exceeds what the pool holds
    assert 3 * sp.compounded_deposit("alice") <= sp.total_deposits == 20_000 * E
    assert 3 * sp.eth_gain("alice") <= sp.eth_balance
    assert sp.withdraw("alice", 10**30) == (6_666_666_666_666_666_660_000,
                                            33_166_666_666_666_660_000)
    assert sp.compounded_deposit("alice") == 0 and sp.eth_gain("alice") == 0


def test_sp_v1_deposit_after_offset_gets_no_earlier_gain_and_second_offset():
    sp = _pool(("alice", 10_000 * E), ("bob", 10_000 * E), ("carol", 10_000 * E))
    sp.offset(10_000 * E, 99_500_000_000_000_000_000)
    sp.deposit("dennis", 20_000 * E)  # joins at P = 666666666666666666
    assert sp.compounded_deposit("dennis") == 20_000 * E and sp.eth_gain("dennis") == 0
    # second offset of 20,000 LUSD of 40,000 against 199 ETH: everyone loses half its current
    # deposit and gains ETH pro rata to it (dennis 20,000 / 40,000, alice 6,666.67 / 40,000)
    sp.offset(20_000 * E, 199 * E)
    assert within(sp.compounded_deposit("dennis"), 10_000 * E, 10**6)
    assert within(sp.compounded_deposit("alice"), 3_333_333_333_333_333_330_000, 10**6)
    assert within(sp.eth_gain("dennis"), 99_500_000_000_000_000_000, 10**6)
    assert within(sp.eth_gain("alice"), 33_166_666_666_666_660_000 + 33_166_666_666_666_666_666,
                  10**6)
    total = sum(sp.compounded_deposit(w) for w in ("alice", "bob", "carol", "dennis"))
    assert total <= sp.total_deposits and sp.total_deposits - total < 10**7


def test_sp_v1_epoch_and_scale():
    # an offset of the whole pool: loss per unit = 1e18, P resets, a new epoch starts; old
    # deposits compound to 0 and their gain is all the collateral
    sp = _pool(("alice", 1_000 * E), ("bob", 3_000 * E))
    sp.offset(4_000 * E, 40 * E)
    assert (sp.current_epoch, sp.current_scale, sp.P) == (1, 0, E)
    assert sp.compounded_deposit("alice") == 0 and sp.compounded_deposit("bob") == 0
    assert (sp.eth_gain("alice"), sp.eth_gain("bob")) == (10 * E, 30 * E)
    # P falling below 1e9 moves to the next scale: losing all but 1e-10 of a deposit
    sp = _pool(("carol", 10**10 * E))
    sp.offset(10**10 * E - E, E)  # keeps 1 LUSD of 1e10
    # loss per unit (1e46 - 1e36) // 1e28 + 1 = 1e18 - 1e8 + 1 (rounded up), factor 1e8 - 1:
    # P x factor / 1e18 < 1e9, so P = 1e18 x (1e8 - 1) x 1e9 / 1e18 on scale 1
    assert sp.current_scale == 1 and sp.P == (10**8 - 1) * 10**9
    # 1 LUSD is 1e-10 of the deposit, below the 1e-9 floor: the contract reports 0
    assert sp.compounded_deposit("carol") == 0
    # S on scale 0: 1e36 // 1e28 x 1e18 = 1e26 -> gain 1e28 x 1e26 / 1e18 / 1e18 = 1 ETH
    assert sp.eth_gain("carol") == E
    with pytest.raises(ValueError, match="exceeds"):
        sp.offset(10 * E, 0)
