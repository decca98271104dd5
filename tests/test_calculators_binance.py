"""Binance USDⓈ-M calculators against Binance's liquidation-price example and freqtrade.

Sources: freqtrade ``tests/exchange/test_binance.py::test_liquidation_price_binance`` (cases
built "From calc example", the worked example of Binance's FAQ "How to Calculate Liquidation
Price of USDⓈ-M Futures Contracts": wallet 1,535,443.01 USDT, BTCUSDT 109.488 @ 32,481.98, mark
31,967.27, ETHUSDT 3,683.979 @ 1,456.84, mark 1,335.18; freqtrade rounds to 2 decimals) and
``test_fill_leverage_tiers_binance`` (``cum`` per bracket); dev.binance.vision thread 17801
(ADL LeveragePnL worked numbers).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest.calculators import binance

WB = 1535443.01
BTC = dict(amount=109.488, entry=32481.98, mark=31967.27, mmr=0.025, cum=16300.0)
ETH = dict(amount=3683.979, entry=1456.84, mark=1335.18, mmr=0.10, cum=135365.0)


def test_isolated_liquidation_prices():
    # test_liquidation_price_binance, isolated cases -> 1114.78 and 18778.73
    lp = binance.liquidation_price(WB, ETH["amount"], ETH["entry"], ETH["mmr"], ETH["cum"], False)
    assert round(lp, 2) == 1114.78
    lp = binance.liquidation_price(WB, BTC["amount"], BTC["entry"], BTC["mmr"], BTC["cum"], False)
    assert round(lp, 2) == 18778.73


def test_cross_liquidation_prices():
    # cross cases: the other position enters through UPnL - MM at its mark price
    def other(p):
        return [(p["amount"], p["entry"], p["mark"], p["mmr"], p["cum"])]

    lp = binance.liquidation_price(WB, ETH["amount"], ETH["entry"], ETH["mmr"], ETH["cum"], False,
                                   binance.cross_other_positions_term(other(BTC)))
    assert round(lp, 2) == 1153.26
    lp = binance.liquidation_price(WB, BTC["amount"], BTC["entry"], BTC["mmr"], BTC["cum"], False,
                                   binance.cross_other_positions_term(other(ETH)))
    assert round(lp, 2) == 26316.89


def test_cum_amounts_match_binance_tiers():
    # test_fill_leverage_tiers_binance, ADA/BUSD: maintAmt 0, 2500, 27500, 77500, 277500, 1527500
    cum = binance.cumulative_amounts([0.025, 0.05, 0.1, 0.15, 0.25, 0.5],
                                     [0, 100_000, 500_000, 1_000_000, 2_000_000, 5_000_000])
    assert cum == pytest.approx([0, 2500, 27500, 77500, 277500, 1527500])
    # BTCUSDT brackets of MECHANISMS.md section 7 are consistent with the same rule
    b = binance.BTCUSDT_BRACKETS
    assert binance.cumulative_amounts([x.mmr for x in b], [x.min_notional for x in b]) == (
        pytest.approx([x.cum for x in b]))


def test_maintenance_margin_brackets():
    # 100k notional is in bracket 2 (0.5%, cum 50): 500 - 50 = 450 USDT; continuous at 50k
    assert binance.maintenance_margin(100_000.0) == pytest.approx(450.0)
    assert binance.maintenance_margin(50_000.0) == pytest.approx(binance.maintenance_margin(
        49_999.999999) , abs=1e-6)
    assert binance.margin_ratio(450.0, 450.0) == 1.0  # liquidation at 100%
    with pytest.raises(ValueError, match="beyond"):
        binance.bracket_for(1e9)


def test_adl_leverage_pnl():
    # dev.binance.vision 17801: UPnL 40.2, WB 4.27, margin ratio 13.42% -> PnL% 9.41,
    # LeveragePnL 1.26
    mm = 0.1342 * (4.27 + 40.2)
    assert binance.adl_leverage_pnl(40.2, 4.27, mm) == pytest.approx(9.41 * 0.1342, abs=1e-3)
    assert round(binance.adl_leverage_pnl(40.2, 4.27, mm), 2) == 1.26
    # FAQ: margin ratio is 0 when WB + UPnL <= 0, and losses score 0
    assert binance.adl_leverage_pnl(-10.0, 5.0, 1.0) == 0.0
    assert binance.adl_leverage_pnl(-1.0, 5.0, 1.0) == 0.0


def test_invalid_inputs():
    with pytest.raises(ValueError, match="amount"):
        binance.liquidation_price(WB, 0.0, 100.0, 0.01, 0.0, False)
    with pytest.raises(ValueError, match="mmr"):
        binance.liquidation_price(WB, 1.0, 100.0, 1.0, 0.0, False)
    with pytest.raises(ValueError, match="wallet_balance"):
        binance.liquidation_price(float("inf"), 1.0, 100.0, 0.01, 0.0, False)


@settings(max_examples=300, deadline=None)
@given(
    amount=st.floats(0.001, 100.0),
    entry=st.floats(100.0, 100_000.0),
    leverage=st.floats(1.0, 100.0),
    bracket=st.sampled_from(binance.BTCUSDT_BRACKETS),
    is_short=st.booleans(),
)
def test_margin_balance_equals_maintenance_at_liquidation_price(amount, entry, leverage,
                                                                bracket, is_short):
    wb = amount * entry / leverage
    lp = binance.liquidation_price(wb, amount, entry, bracket.mmr, bracket.cum, is_short)
    side = -1.0 if is_short else 1.0
    margin_balance = wb + side * amount * (lp - entry)
    # at LP the margin balance equals the bracket's maintenance margin Q * LP * mmr - cum
    mm = amount * lp * bracket.mmr - bracket.cum
    assert margin_balance == pytest.approx(mm, rel=1e-9, abs=1e-7 * amount * entry)
