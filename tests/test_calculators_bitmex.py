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
