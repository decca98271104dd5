"""Maker (dss) calculators against the numbers in dss's own test suite.

Sources: makerdao/dss ``src/test/abaci.t.sol`` (commit 1b9c09e0 as stored) and
``src/test/clip.t.sol`` (commit 75cf04b2 as stored, the version with ``chost``). The clip tests
share one setup (``setUp``/``takeSetup``): vault ``ink 40, art 100``, ``rate 1`` (RAY),
``mat 2``, OSM price 4 (spot 2), ``dust 20`` DAI, ``chop 1.1``, ``buf 1.25``,
``StairstepExponentialDecrease`` with ``cut = RAY - ray(0.01)``, ``step 1``, ``cusp 0.3``,
``tail 3600``. Hence ``tab = 110`` DAI, ``lot = 40``, ``top = 5``, ``chost = 22`` DAI.
"""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest.calculators import maker
from backtest.calculators.maker import RAD, RAY, WAD, DssRevert


def ray(wad: int) -> int:  # clip.t.sol helper `ray(uint wad) = wad * 10**9`
    return wad * 10**9


def rad(wad: int) -> int:  # clip.t.sol helper `rad(uint wad) = wad * 10**27`
    return wad * 10**27


CUT = RAY - ray(WAD // 100)  # takeSetup: calc.file("cut", RAY - ray(0.01 ether))
CHOP = 11 * WAD // 10  # setUp: dog.file(ilk, "chop", 1.1 ether)
DUST = rad(20 * WAD)  # setUp: vat.file(ilk, "dust", rad(20 ether))
CHOST = maker.chost(DUST, CHOP)
TOP = ray(5 * WAD)


def test_linear_decrease_matches_abaci_test():
    # abaci.t.sol test_linear_decrease: tau 3600, top 1000 RAY, each 360 s removes 100 RAY.
    top = 1000 * RAY
    for k in range(10):
        assert maker.linear_decrease_price(top, 360 * k, 3600) == (1000 - 100 * k) * RAY
    assert maker.linear_decrease_price(top, 3600, 3600) == 0
    assert maker.linear_decrease_price(top, 10_000, 3600) == 0


@pytest.mark.parametrize(
    "top,tolerance", [(50_000_000 * RAY, 100_000_000), (RAY // 10_000_000, 1)]
)
@pytest.mark.parametrize(
    "pct,step",
    [
        (11234567890 * 10**15, 1),  # 1.1234567890E27 / 100: 1.1234567890% every 1 s
        (21234567890 * 10**15, 1),  # 2.1234567890% every 1 s
        (11234567890 * 10**15, 5),
        (21234567890 * 10**15, 5),
        (11234567890 * 10**15, 300),  # every 5 minutes
    ],
)
def test_stairstep_matches_abaci_check_exp_decrease(top, tolerance, pct, step):
    # abaci.t.sol test_stairstep_exp_decrease / checkExpDecrease: cut = RAY - pct; over
    # 10 minutes each step multiplies the previous price by cut (rounded down) and the
    # abacus stays within `tolerance` of that; between steps the price is flat.
    cut = RAY - pct  # percentDecrease = RAY - x.xE27 / 100
    assert maker.stairstep_exponential_decrease_price(top, 0, cut, step) == top
    price = top
    for i in range(1, 600):
        last = price
        price = maker.stairstep_exponential_decrease_price(top, i, cut, step)
        expected = last * cut // RAY if i % step == 0 else last
        assert abs(expected - price) <= tolerance


def test_continuous_exp_decrease_half_life():
    # abaci.t.sol test_continuous_exp_decrease: cut 0.999230132966 RAY ~ 15 min half-life;
    # top 4000 RAY halves every 900 s within 0.001 RAY.
    cut = 999230132966 * 10**15
    top = 4000 * RAY
    expected = top
    for i in range(5):
        assert abs(maker.exponential_decrease_price(top, i * 900, cut) - expected) <= RAY // 1000
        expected //= 2


def test_stairstep_prices_bit_exact_with_clip_tests():
    # clip.t.sol test_take_bid_avoids_recalculate_due_no_more_lot: 60 s after kick
    # price == 2735783211953807380973706855 (5 * 0.99**60, dss rounding).
    assert maker.stairstep_exponential_decrease_price(TOP, 60, CUT, 1) == (
        2735783211953807380973706855
    )
    # clip.t.sol test_redo_incentive: 100 s after the last redo (top 5 again)
    # price == 1830161706366147524653080130.
    assert maker.stairstep_exponential_decrease_price(TOP, 100, CUT, 1) == (
        1830161706366147524653080130
    )


def test_bark_full_vault_and_kick():
    # clip.t.sol test_kick (second bark): buf 1.25, tip 100 DAI, chip 2% ->
    # tab 110 DAI, lot 40, top 5 RAY; keeper paid tip + tab * chip / WAD.
    res = maker.bark(
        ink=40 * WAD, art=100 * WAD, rate=RAY, spot=ray(2 * WAD), dust=DUST, chop=CHOP,
        hole=rad(1000 * WAD), dirt=0, ilk_hole=rad(1000 * WAD), ilk_dirt=0,
    )
    assert (res.tab, res.dink, res.dart, res.full) == (rad(110 * WAD), 40 * WAD, 100 * WAD, True)
    feed = maker.feed_price(4 * WAD)  # pip value 4 ether, par 1
    kicked = maker.kick(res.tab, res.dink, feed, buf=ray(125 * WAD // 100),
                        tip=rad(100 * WAD), chip=2 * WAD // 100)
    assert kicked.top == ray(5 * WAD)
    assert kicked.coin == rad(100 * WAD) + res.tab * (2 * WAD // 100) // WAD
    # first bark of test_kick: buf 1 -> top 4 RAY, tip only -> coin 100 DAI
    assert maker.kick(res.tab, res.dink, feed, tip=rad(100 * WAD)) == maker.KickResult(
        top=ray(4 * WAD), coin=rad(100 * WAD)
    )


def test_bark_dust_rule():
    # clip.t.sol test_bark_not_leaving_dust: ilk hole 80 DAI, chop 1 -> leftover 20 == dust,
    # partial: tab 80, lot 32, vault left with ink 8, art 20.
    common = dict(ink=40 * WAD, art=100 * WAD, rate=RAY, spot=ray(2 * WAD), dust=DUST,
                  chop=WAD, hole=rad(1000 * WAD), dirt=0, ilk_dirt=0)
    res = maker.bark(ilk_hole=rad(80 * WAD), **common)
    assert (res.tab, res.dink, res.dart) == (rad(80 * WAD), 32 * WAD, 80 * WAD)
    # test_bark_not_leaving_dust_over_hole: hole 80 DAI + 1 RAY -> leftover < dust, whole vault.
    res = maker.bark(ilk_hole=rad(80 * WAD) + ray(WAD), **common)
    assert (res.tab, res.dink, res.full) == (rad(100 * WAD), 40 * WAD, True)


def test_bark_dust_rule_with_rate():
    # clip.t.sol test_bark_not_leaving_dust_rate: rate 1.02, hole 80 * rate, dust 20 * rate.
    rate = ray(102 * WAD // 100)
    common = dict(ink=40 * WAD, art=100 * WAD, rate=rate, spot=ray(2 * WAD),
                  dust=20 * WAD * rate, chop=WAD, hole=rad(1000 * WAD), dirt=0,
                  ilk_dirt=0)
    res = maker.bark(ilk_hole=80 * WAD * rate, **common)
    assert (res.tab, res.dink) == (80 * WAD * rate, 32 * WAD)
    # test_bark_only_leaving_dust_over_hole_rate: hole (80 ether + 1) * rate -> whole vault.
    res = maker.bark(ilk_hole=(80 * WAD + 1) * rate, **common)
    assert (res.tab, res.dink) == (100 * WAD * rate, 40 * WAD)


def test_bark_partial_global_hole_rounding():
    # clip.t.sol test_partial_liquidation_Hole_limit: Hole 75 DAI, chop 1.1 ->
    # tab == rad(75) - ray(0.2) ("0.2 RAY rounding error"), lot = 40 * dart / 100.
    res = maker.bark(
        ink=40 * WAD, art=100 * WAD, rate=RAY, spot=ray(2 * WAD), dust=DUST, chop=CHOP,
        hole=rad(75 * WAD), dirt=0, ilk_hole=rad(1000 * WAD), ilk_dirt=0,
    )
    assert res.tab == rad(75 * WAD) - ray(2 * WAD // 10)
    dart = res.tab * WAD // RAY // CHOP
    assert res.dink == 40 * WAD * dart // (100 * WAD)


def test_bark_reverts():
    ok = dict(ink=40 * WAD, art=100 * WAD, rate=RAY, spot=ray(2 * WAD), dust=DUST, chop=CHOP,
              hole=rad(1000 * WAD), dirt=0, ilk_hole=rad(1000 * WAD), ilk_dirt=0)
    with pytest.raises(DssRevert, match="Dog/not-unsafe"):
        maker.bark(**{**ok, "spot": ray(3 * WAD)})  # 40 * 3 >= 100 * 1: safe
    with pytest.raises(DssRevert, match="liquidation-limit-hit"):
        maker.bark(**{**ok, "dirt": rad(1000 * WAD)})
    with pytest.raises(DssRevert, match="dusty-auction-from-partial"):
        maker.bark(**{**ok, "chop": WAD, "ilk_hole": rad(10 * WAD)})
    with pytest.raises(ValueError, match="chop"):
        maker.bark(**{**ok, "chop": WAD - 1})
    with pytest.raises(ValueError, match="ink"):
        maker.bark(**{**ok, "ink": -1})


def test_chost_and_redo_incentive():
    # clip.t.sol setUp: dust 20, chop 1.1 -> chost 22 DAI; test_redo_incentive:
    # dust rad(100)+1 -> chost == 110 RAD + 1.
    assert CHOST == 22 * RAD
    assert maker.chost(rad(100 * WAD) + 1, CHOP) == 110 * RAD + 1
    feed = maker.feed_price(4 * WAD)
    tab, lot = rad(110 * WAD), 40 * WAD
    # tip only -> tip; tip + chip 2% -> tip + chip * tab / WAD; chip only -> chip * tab / WAD
    assert maker.redo_incentive(tab, lot, feed, rad(100 * WAD), 0, CHOST) == rad(100 * WAD)
    chip = 2 * WAD // 100
    assert maker.redo_incentive(tab, lot, feed, rad(100 * WAD), chip, CHOST) == (
        rad(100 * WAD) + chip * tab // WAD
    )
    assert maker.redo_incentive(tab, lot, feed, 0, chip, CHOST) == chip * tab // WAD
    # chost 110 RAD + 1 > tab -> nothing
    assert maker.redo_incentive(tab, lot, feed, 0, chip, 110 * RAD + 1) == 0
    # dusty lot: 2 units at $4 < 22 DAI chost -> nothing (last redo of test_redo_incentive)
    assert maker.redo_incentive(rad(110 * WAD) - 38 * WAD * 1830161706366147524653080130,
                                2 * WAD, feed, 0, chip, CHOST) == 0


def test_needs_redo_tail_and_cusp():
    # clip.t.sol test_auction_reset_tail: LinearDecrease tau 10 h, tail 3600 -> live at 3600 s,
    # needs reset at 3601 s.
    top = TOP
    p3600 = maker.linear_decrease_price(top, 3600, 36000)
    assert not maker.needs_redo(top, p3600, 3600, 3600, ray(WAD // 2))
    p3601 = maker.linear_decrease_price(top, 3601, 36000)
    assert maker.needs_redo(top, p3601, 3601, 3600, ray(WAD // 2))
    # test_auction_reset_cusp: tau 1 h, cusp 0.5 -> live at 1800 s, reset at 1801 s.
    assert not maker.needs_redo(top, maker.linear_decrease_price(top, 1800, 3600), 1800, 3600,
                                ray(WAD // 2))
    assert maker.needs_redo(top, maker.linear_decrease_price(top, 1801, 3600), 1801, 3600,
                            ray(WAD // 2))
    # ... and redo restarts at fresh OSM price 3 * buf 1.25 = 3.75
    assert maker.kick(rad(110 * WAD), 40 * WAD, maker.feed_price(3 * WAD),
                      buf=ray(125 * WAD // 100)).top == ray(375 * WAD // 100)


def test_take_over_at_and_under_tab():
    tab, lot = rad(110 * WAD), 40 * WAD
    # test_take_over_tab: amt 25 at 5 -> owe capped at tab 110, slice 22, 18 returned
    r = maker.take(tab, lot, TOP, 25 * WAD, TOP, CHOST)
    assert (r.slice, r.owe, r.returned_to_owner, r.finished) == (22 * WAD, tab, 18 * WAD, True)
    # test_take_at_tab: amt 22 -> same outcome
    assert maker.take(tab, lot, TOP, 22 * WAD, TOP, CHOST) == r
    # test_take_under_tab: amt 11 -> owe 55, tab 55 left, lot 29
    r = maker.take(tab, lot, TOP, 11 * WAD, TOP, CHOST)
    assert (r.slice, r.owe, r.tab, r.lot, r.finished) == (
        11 * WAD, rad(55 * WAD), rad(55 * WAD), 29 * WAD, False
    )


def test_take_chost_rule():
    tab, lot = rad(110 * WAD), 40 * WAD
    # test_take_bid_recalculates_due_to_chost_check: amt 18 would leave 20 < chost 22 ->
    # owe reduced so tab == chost; lot == 40 - (110 RAD - chost) / price.
    r = maker.take(tab, lot, TOP, 18 * WAD, TOP, CHOST)
    assert r.tab == CHOST
    assert r.lot == 40 * WAD - (110 * RAD - CHOST) // TOP
    # test_take_bid_fails_no_partial_allowed: amt 17.6 -> tab 22, lot 22.4; then a partial
    # purchase reverts and the whole tab can be taken.
    r = maker.take(tab, lot, TOP, 176 * WAD // 10, TOP, CHOST)
    assert (r.tab, r.lot) == (rad(22 * WAD), 224 * WAD // 10)
    with pytest.raises(DssRevert, match="no-partial-purchase"):
        maker.take(r.tab, r.lot, TOP, WAD, TOP, CHOST)
    last = maker.take(r.tab, r.lot, TOP, r.tab // TOP, TOP, CHOST)
    assert last.tab == 0 and last.finished
    # testFail_take_bid_too_low: max 4 < price 5
    with pytest.raises(DssRevert, match="too-expensive"):
        maker.take(tab, lot, TOP, 22 * WAD, ray(4 * WAD), CHOST)


def test_take_whole_lot_leaves_bad_debt():
    # test_take_bid_avoids_recalculate_due_no_more_lot: 60 s in, price 2.7357..., buying all
    # 40 units (109.43 DAI < tab) ends the auction; remaining tab is cleared (bad debt).
    price = 2735783211953807380973706855
    r = maker.take(rad(110 * WAD), 40 * WAD, price, 40 * WAD, ray(28 * WAD // 10), CHOST)
    assert r.lot == 0 and r.finished
    assert r.owe == 40 * WAD * price
    assert r.bad_debt == rad(110 * WAD) - r.owe
    assert r.dirt_released == rad(110 * WAD)


def test_take_multiple_bids_different_prices():
    # test_take_multiple_bids_different_prices: 10 at 5, then 30 s later buy the rest:
    # bob receives RAY * 60 ether / price, the rest goes back to the owner.
    first = maker.take(rad(110 * WAD), 40 * WAD, TOP, 10 * WAD, TOP, CHOST)
    assert (first.tab, first.lot) == (rad(60 * WAD), 30 * WAD)
    price = maker.stairstep_exponential_decrease_price(TOP, 30, CUT, 1)
    second = maker.take(first.tab, first.lot, price, first.lot, price, CHOST)
    assert second.slice == RAY * 60 * WAD // price
    assert second.returned_to_owner == 30 * WAD - second.slice
    assert second.owe == rad(60 * WAD)


@settings(max_examples=200, deadline=None)
@given(x=st.integers(1, RAY), n=st.integers(1, 2))
def test_rpow_one_rounding_is_half_up(x, n):
    # With at most one rounding (n = 1, 2) rpow is the exact power rounded half-up:
    # within half a unit of RAY of the rational value.
    exact = Fraction(x, RAY) ** n * RAY
    assert abs(maker.rpow(x, n) - exact) <= Fraction(1, 2)


@settings(max_examples=200, deadline=None)
@given(x=st.integers(0, RAY), n=st.integers(0, 20_000))
def test_rpow_error_bounded_by_n_ulps(x, n):
    # Each of the <= 2*log2(n) half-up roundings adds at most half a unit; for x <= RAY they
    # are never amplified beyond the exponent, so the error stays below n units of RAY.
    exact = Fraction(x, RAY) ** n * RAY
    assert abs(maker.rpow(x, n) - exact) <= max(n, 1)


def test_rpow_reverts_like_assembly():
    with pytest.raises(DssRevert):
        maker.rpow(2**128, 2)
    assert maker.rpow(2**128, 1) == 2**128  # no squaring, no check
    assert maker.rpow(0, 0) == RAY
    with pytest.raises(ValueError):
        maker.rpow(-1, 2)
