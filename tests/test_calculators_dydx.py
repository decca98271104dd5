"""dYdX v4 calculators against ``protocol/x/clob/keeper/liquidations_test.go``.

Test perpetuals (``constants.BtcUsd_20PercentInitial_10PercentMaintenance`` and the ETH twin):
BTC at $50,000 with 1 BTC = 1e8 base quantums, ETH at $3,000 with 1 ETH = 1e9 base quantums,
maintenance margin 10% of notional; quote balances in USDC quote quantums (1e6 per dollar).
The keeper derives PNNV/PMMR/TNC/TMMR from that state; the helpers below recompute them.
"""

from __future__ import annotations

from fractions import Fraction

import pytest

from backtest.calculators import dydx

USD = 1_000_000
BTC_Q = 500  # quote quantums per base quantum at $50,000 (1e8 base quantums per BTC)
ETH_Q = 3  # $3,000 per 1e9 base quantums


def nnv(size: int, q: int = BTC_Q) -> int:
    return size * q


def mmr(size: int, q: int = BTC_Q) -> int:
    return abs(size) * q // 10


def bp_single(size: int, delta: int, quote_usd: int) -> int:
    tnc = quote_usd * USD + nnv(size)
    return dydx.bankruptcy_price_quote_quantums(
        nnv(size), nnv(size + delta), mmr(size), mmr(size + delta), tnc, mmr(size)
    )


@pytest.mark.parametrize(
    "size,delta,quote_usd,expected",
    [
        # TestGetBankruptcyPriceInQuoteQuantums cases (0.1 BTC = 10_000_000 base quantums)
        (10_000_000, -10_000_000, -4_501, 4_501_000_000),  # long slightly below MM
        (-10_000_000, 10_000_000, 5_499, -5_499_000_000),  # short slightly below MM
        (10_000_000, -10_000_000, -5_000, 5_000_000_000),  # long at the bankruptcy price
        (10_000_000, -5_000_000, -5_000, 2_500_000_000),  # partially closing that long
        (-10_000_000, 5_000_000, 5_000, -2_500_000_000),  # partially closing a short
        (-10_000_000, 10_000_000, 5_000, -5_000_000_000),
        (10_000_000, -10_000_000, -5_100, 5_100_000_000),  # long below the bankruptcy price
        (-10_000_000, 10_000_000, 4_900, -4_900_000_000),
        # "Rounds up ... partially closing one long": 1 BTC long, -$13, delta -21,347 -> 2,776
        # (rounded up from 2,775.11); the short twin rounds -2,775.11 up to -2,775
        (100_000_000, -21_347, -13, 2_776),
        (-100_000_000, 21_347, 13, -2_775),
        # "long position that cannot be liquidated at a loss": negative bankruptcy price
        (100_000_000, -100_000_000, 1, -1_000_000),
    ],
)
def test_bankruptcy_price_single_position(size, delta, quote_usd, expected):
    assert bp_single(size, delta, quote_usd) == expected


def test_bankruptcy_price_multiple_positions():
    # "fully closing one long position and has multiple long positions": 0.004 BTC long
    # ($200) + 0.1 ETH long ($300), quote -$490 -> closing the ETH needs at least $294.
    btc, eth = 400_000, 100_000_000
    tnc = -490 * USD + nnv(btc) + nnv(eth, ETH_Q)
    tmmr = mmr(btc) + mmr(eth, ETH_Q)
    assert dydx.bankruptcy_price_quote_quantums(
        nnv(eth, ETH_Q), 0, mmr(eth, ETH_Q), 0, tnc, tmmr) == 294_000_000
    # "... one short position and has multiple short positions": quote +$510 -> -$306
    tnc = 510 * USD + nnv(-btc) + nnv(-eth, ETH_Q)
    assert dydx.bankruptcy_price_quote_quantums(
        nnv(-eth, ETH_Q), 0, mmr(-eth, ETH_Q), 0, tnc, tmmr) == -306_000_000
    # "... has a long and short position": BTC long, ETH short, quote +$110 -> -$306
    tnc = 110 * USD + nnv(btc) + nnv(-eth, ETH_Q)
    assert dydx.bankruptcy_price_quote_quantums(
        nnv(-eth, ETH_Q), 0, mmr(-eth, ETH_Q), 0, tnc, tmmr) == -306_000_000


def fp(size: int, quote_usd: int, **cfg) -> Fraction:
    tnc = quote_usd * USD + nnv(size)
    return dydx.fillable_price(nnv(size), mmr(size), size, tnc, mmr(size), **cfg)


def test_fillable_price_cases():
    # TestGetFillablePrice (default config: BA 1_000_000 ppm, SMMR 100_000 ppm)
    assert fp(10_000_000, -4_501) == Fraction(49_999, 100)  # $49,999
    assert fp(10_000_000, -4_501, bankruptcy_adjustment_ppm=2_000_000) == Fraction(49_998, 100)
    assert fp(10_000_000, -4_501, spread_to_maintenance_margin_ratio_ppm=200_000) == Fraction(
        49_998, 100)
    assert fp(-10_000_000, 5_499) == Fraction(50_001, 100)
    assert fp(-10_000_000, 5_499, bankruptcy_adjustment_ppm=2_000_000) == Fraction(50_002, 100)
    assert fp(10_000_000, -5_000) == Fraction(495, 1)  # at the bankruptcy price: ABR = 1
    assert fp(-10_000_000, 5_000) == Fraction(505, 1)
    assert fp(10_000_000, -5_500) == Fraction(495, 1)  # below bankruptcy: ABR clamped to 1
    assert fp(-10_000_000, 4_500) == Fraction(505, 1)
    assert fp(10_000_000, -4_501, bankruptcy_adjustment_ppm=2**32 - 1) == Fraction(495, 1)
    assert fp(10_000_000, -4_501, spread_to_maintenance_margin_ratio_ppm=1) == Fraction(
        4_999_999_999, 10_000_000)
    assert fp(10_000_000, -4_501, spread_to_maintenance_margin_ratio_ppm=1_000_000) == Fraction(
        49_990, 100)


def test_fillable_price_multiple_longs():
    # "Can calculate fillable price for a subaccount with multiple long positions": close the
    # 0.1 ETH long of the 0.004 BTC + 0.1 ETH account at $2,976 -> 372/125 per base quantum.
    btc, eth = 400_000, 100_000_000
    tnc = -490 * USD + nnv(btc) + nnv(eth, ETH_Q)
    tmmr = mmr(btc) + mmr(eth, ETH_Q)
    assert dydx.fillable_price(nnv(eth, ETH_Q), mmr(eth, ETH_Q), eth, tnc, tmmr) == Fraction(
        372, 125)


@pytest.mark.parametrize(
    "received,bp,fee_ppm,expected",
    [
        # TestGetLiquidationInsuranceFundDelta (0.1 BTC; subticks converted to quote quantums)
        (5_610_000_000, 5_100_000_000, 25_000, 140_250_000),  # 10% above BP, fee 2.5% binds
        (5_610_000_000, 5_100_000_000, 1_000_000, 510_000_000),  # all leftover to the fund
        (-4_410_000_000, -4_900_000_000, 5_000, 22_050_000),  # short, default 0.5% fee
        (-4_410_000_000, -4_900_000_000, 25_000, 110_250_000),
        (-4_410_000_000, -4_900_000_000, 1_000_000, 490_000_000),
        (5_105_100_000, 5_100_000_000, 5_000, 5_100_000),  # 0.1% above: leftover < max fee
        (-4_895_100_000, -4_900_000_000, 5_000, 4_900_000),
        (5_100_000_000, 5_100_000_000, 5_000, 0),  # at the bankruptcy price
        (5_049_000_000, 5_100_000_000, 5_000, -51_000_000),  # 1% below: the fund pays
        (-4_949_000_000, -4_900_000_000, 5_000, -49_000_000),
        (0, -4_900_000_000, 5_000, 0),  # "Succeeds when delta quote quantums is zero"
    ],
)
def test_insurance_fund_delta(received, bp, fee_ppm, expected):
    assert dydx.liquidation_insurance_fund_delta(received, bp, fee_ppm) == expected


def test_is_liquidatable_and_invalid_inputs():
    assert dydx.is_liquidatable(499 * USD, 500 * USD)
    assert not dydx.is_liquidatable(500 * USD, 500 * USD)
    assert not dydx.is_liquidatable(-1, 0)  # no margin requirement: never liquidatable
    with pytest.raises(ValueError, match="DMMR"):
        dydx.bankruptcy_price_quote_quantums(0, 0, 0, 1, 0, 1)
    with pytest.raises(ValueError, match="position_size"):
        dydx.fillable_price(1, 1, 0, 1, 1)
    with pytest.raises(ValueError, match="tmmr"):
        dydx.bankruptcy_price_quote_quantums(0, 0, 1, 0, 0, 0)
