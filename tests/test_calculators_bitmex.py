"""BitMEX calculators against BitMEX's own documentation examples.

Sources (stored pages): bitmex.com ``/app/autoDeleveragingExamples`` (six longs with PNL ranking
and quantity, their percentiles, and a liquidated short of 20 at USD 650),
``/app/autoDeleveraging`` (ranking formula), ``/app/isolatedMarginExamples`` (Karen: 10,000 USDT
wallet, 20 ETHUSDT at 1,000, 50x cross, maintenance margin 1% = 200 USDT -> liquidation and
bankruptcy prices 510 and 500).
"""

from __future__ import annotations

import pytest

from backtest.calculators import bitmex

# (account, quantity, PNL ranking) from the autoDeleveragingExamples table
QUEUE = [(1, 10, 3), (2, 10, 6), (3, 20, 1), (4, 30, 4), (5, 20, 5), (6, 10, 2)]


def test_adl_percentiles_match_example_table():
    ordered = sorted(QUEUE, key=lambda r: -r[2])
    assert [a for a, _, _ in ordered] == [2, 5, 4, 1, 6, 3]
    assert bitmex.adl_percentiles([q for _, q, _ in ordered]) == [0.2, 0.4, 0.6, 0.8, 0.8, 1.0]


def test_adl_fill_example():
    # "a short position that has been liquidated with size 20 ... Accounts 2 and 5 will be
    # deleveraged ... Account 2 will have their entire position of 10 contracts closed, ...
    # account 5 will thus have 10 contracts remaining (from 20)."
    fills = bitmex.adl_fill(QUEUE, 20)
    assert [(f.account, f.quantity, f.remaining) for f in fills] == [(2, 10, 0), (5, 10, 10)]
    with pytest.raises(ValueError, match="less than"):
        bitmex.adl_fill(QUEUE, 1000)


def test_adl_ranking_formula():
    # /app/autoDeleveraging: PnL% * EffLev when profitable, PnL% / EffLev otherwise.
    # Long entry value 100, mark 110, bankrupt 60: PnL 10%, EffLev 110/50 = 2.2 -> 0.22
    assert bitmex.adl_ranking(110.0, 100.0, 60.0) == pytest.approx(0.22)
    # losing long: mark 90, bankrupt 60 -> PnL -10%, EffLev 3 -> -0.0333
    assert bitmex.adl_ranking(90.0, 100.0, 60.0) == pytest.approx(-0.1 / 3)
    assert bitmex.effective_leverage(110.0, 60.0) == pytest.approx(2.2)
    with pytest.raises(ValueError, match="undefined"):
        bitmex.effective_leverage(60.0, 60.0)


def test_linear_bankruptcy_and_liquidation_price_karen():
    # isolatedMarginExamples: cross margin uses the whole 10,000 USDT wallet
    assert bitmex.bankruptcy_price_linear(1000.0, 20.0, 10_000.0, False) == 500.0
    assert bitmex.liquidation_price_linear(1000.0, 20.0, 10_000.0, 200.0, False) == 510.0
    # the mirror short reaches bankruptcy at 1,500
    assert bitmex.bankruptcy_price_linear(1000.0, 20.0, 10_000.0, True) == 1500.0


def test_inverse_bankruptcy_price_leverage_form():
    # inverse contracts: margin = contracts / (entry * L) -> long entry*L/(L+1), short
    # entry*L/(L-1) (isolated margin, no fees)
    entry, contracts, lev = 8125.0, 50.0, 50.0
    margin = contracts / (entry * lev)
    assert bitmex.bankruptcy_price_inverse(entry, contracts, margin, False) == pytest.approx(
        entry * lev / (lev + 1))
    assert bitmex.bankruptcy_price_inverse(entry, contracts, margin, True) == pytest.approx(
        entry * lev / (lev - 1))
    # a 1x short never goes bankrupt
    one_x_margin = contracts / entry
    assert bitmex.bankruptcy_price_inverse(entry, contracts, one_x_margin, True) == float("inf")


# --- liquidation order at the bankruptcy price and the insurance fund --------------------------


def test_liquidation_order_fills_better_than_bankruptcy_bitmex_example():
    # bitmex.com /app/liquidationExamples: long 1 contract at $100.00, liquidation $99.50,
    # bankruptcy $99.00: a limit sell at $99.00 filled at $99.25 -> $0.25 to the insurance fund
    o = bitmex.liquidation_order(1.0, 99.0, 99.25, is_short=False)
    assert (o.side, o.limit_price, o.filled) == ("sell", 99.0, True)
    assert o.insurance_fund_gain == pytest.approx(0.25)
    # blog.btcmex.com "Insurance Fund" (BitMEX-style engine): long, bankruptcy 3,000, filled
    # at 3,060 -> 60 to the fund; at 2,980 the fund pays 20
    assert bitmex.insurance_fund_gain_linear(1.0, 3000.0, 3060.0, False) == pytest.approx(60.0)
    assert bitmex.insurance_fund_gain_linear(1.0, 3000.0, 2980.0, False) == pytest.approx(-20.0)


def test_liquidation_order_isolated_margin_example_and_shorts():
    # /app/isolatedMarginExamples: 20 ETHUSDT long at 1,000 on 10,000 USDT -> bankruptcy 500;
    # the engine sells 20 at limit 500. Bid 505: filled, +100 USDT to the fund. Bid 495: the
    # order rests; closing at 495 would draw 100 from the fund (or ADL).
    b = bitmex.bankruptcy_price_linear(1000.0, 20.0, 10_000.0, is_short=False)
    assert b == pytest.approx(500.0)
    up = bitmex.liquidation_order(20.0, b, 505.0, is_short=False)
    assert up.filled and up.insurance_fund_gain == pytest.approx(100.0)
    down = bitmex.liquidation_order(20.0, b, 495.0, is_short=False)
    assert not down.filled and down.insurance_fund_gain == pytest.approx(-100.0)
    # a short of 20 at 1,000 with 10,000 margin: bankruptcy 1,500; buy limit at 1,500 fills at
    # an ask of 1,490 (+200) and not at 1,510
    bs = bitmex.bankruptcy_price_linear(1000.0, 20.0, 10_000.0, is_short=True)
    s = bitmex.liquidation_order(20.0, bs, 1490.0, is_short=True)
    assert (s.side, s.filled) == ("buy", True) and s.insurance_fund_gain == pytest.approx(200.0)
    assert not bitmex.liquidation_order(20.0, bs, 1510.0, is_short=True).filled
    with pytest.raises(ValueError):
        bitmex.liquidation_order(0.0, bs, 1490.0, is_short=True)


def test_inverse_insurance_fund_gain():
    # XBTUSD long 10,000 contracts at 10,000 with 10x isolated margin (0.1 XBT): bankruptcy
    # 10,000 x 10 / 11 = 9,090.909...; filled at 9,200 the fund gains
    # 10,000 x (1/9090.909 - 1/9200) = 1.1 - 1.0869565 = 0.0130435 XBT
    b = bitmex.bankruptcy_price_inverse(10_000.0, 10_000.0, 0.1, is_short=False)
    assert b == pytest.approx(10_000.0 * 10 / 11)
    assert bitmex.insurance_fund_gain_inverse(10_000.0, b, 9_200.0, False) == pytest.approx(
        1.1 - 10_000.0 / 9_200.0)
    # a short filled above its bankruptcy price draws on the fund
    assert bitmex.insurance_fund_gain_inverse(10_000.0, 11_000.0, 11_100.0, True) < 0
