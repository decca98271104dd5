"""Hyperliquid calculators against exchange-reported liquidation prices.

Source: freqtrade ``tests/exchange/test_hyperliquid.py::test_hyperliquid_dry_run_liquidation_price``
(isolated positions with the ``liquidationPrice`` the exchange API returned; max leverage
BTC/ETH 50, SOL/DOGE 20; freqtrade asserts ``rel=1e-4``). Partial/backstop rules: stored page
hyperliquid.gitbook.io/hyperliquid-docs ``trading/liquidations``.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest.calculators import hyperliquid as hl

MAX_LEV = {"BTC": 50, "ETH": 50, "SOL": 20, "DOGE": 20}

# (symbol, entryPrice, side, contracts, collateral, liquidationPrice) from the freqtrade test
POSITIONS = [
    ("ETH", 2458.5, "long", 0.015, 36.864593, 0.86915825),
    ("BTC", 63287.0, "long", 0.00039, 24.673292, 22.37166537),
    ("SOL", 146.82, "long", 0.16, 23.482979, 0.05269872),
    ("SOL", 145.83, "long", 0.33, 24.045107, 74.83696193),
    ("ETH", 2459.5, "long", 0.0199, 24.454895, 1243.0411908),
    ("BTC", 62739.0, "long", 0.00077, 24.137992, 31708.03843631),
    ("DOGE", 0.11586, "long", 437.0, 25.29769, 0.05945697),
    ("ETH", 2642.8, "short", 0.019, 25.091876, 3924.18322043),
    ("SOL", 155.89, "short", 0.32, 24.924941, 228.07847866),
    ("DOGE", 0.14333, "short", 351.0, 25.136807, 0.20970228),
    ("BTC", 68595.0, "short", 0.00069, 23.64871, 101849.99354283),
    ("BTC", 65536.0, "short", 0.00099, 21.604172, 86493.46174617),
    ("SOL", 173.06, "long", 0.6, 20.735658, 142.05186667),
    ("ETH", 2545.5, "long", 0.0329, 20.909894, 1929.23322895),
    ("BTC", 67400.0, "short", 0.00031, 20.887308, 133443.97317151),
    ("ETH", 2552.0, "short", 0.0327, 20.833393, 3157.53150453),
    ("BTC", 66930.0, "long", 0.0015, 20.043862, 54108.51043771),
    ("BTC", 67033.0, "long", 0.00121, 20.251817, 50804.00091827),
    ("ETH", 2521.9, "long", 0.0237, 19.902091, 1699.14071943),
    ("BTC", 68139.0, "short", 0.00145, 19.72573, 80933.61590987),
    ("SOL", 178.29, "short", 0.11, 19.605036, 347.82205322),
    ("SOL", 176.23, "long", 0.33, 19.364946, 120.56240404),
    ("SOL", 173.08, "short", 0.33, 19.01881, 225.08561715),
    ("BTC", 68240.0, "short", 0.00105, 17.887922, 84431.79820839),
    ("ETH", 2518.4, "short", 0.007, 17.62263, 4986.05799151),
    ("ETH", 2533.2, "long", 0.0347, 17.555195, 2047.7642302),
    ("DOGE", 0.13284, "long", 360.0, 15.943218, 0.09082388),
    ("SOL", 163.11, "short", 0.48, 15.650731, 190.94213618),
    ("BTC", 67141.0, "long", 0.00067, 14.979079, 45236.52992613),
]


@pytest.mark.parametrize("symbol,entry,side,size,collateral,expected", POSITIONS)
def test_isolated_liquidation_price_matches_exchange(symbol, entry, side, size, collateral,
                                                     expected):
    got = hl.isolated_liquidation_price(entry, size, collateral, MAX_LEV[symbol],
                                        is_short=side == "short")
    assert got == pytest.approx(expected, rel=1e-4)


def test_maintenance_margin_rate_range():
    # docs: MM is half the initial margin at max leverage, 1% (50x) to 16.7% (3x)
    assert hl.maintenance_margin_rate(50) == 0.01
    assert hl.maintenance_margin_rate(3) == pytest.approx(0.1667, abs=1e-4)
    assert hl.maintenance_margin(-10_000.0, 20) == 250.0


def test_partial_and_backstop_rules():
    # docs: > 100k USDC -> 20% first; during the 30 s cooldown the entire position
    assert hl.market_liquidation_fraction(150_000.0) == 0.2
    assert hl.market_liquidation_fraction(150_000.0, in_cooldown=True) == 1.0
    assert hl.market_liquidation_fraction(100_000.0) == 1.0  # "> 100k", not ">="
    assert hl.market_liquidation_fraction(20_000.0, threshold=10_000.0) == 0.2  # testnet
    # docs: backstop when equity < 2/3 of maintenance margin
    assert hl.is_liquidatable(99.0, 100.0) and not hl.backstop_eligible(99.0, 100.0)
    assert hl.backstop_eligible(66.0, 100.0) and not hl.backstop_eligible(66.7, 100.0)


def test_invalid_inputs():
    with pytest.raises(ValueError, match="max_leverage"):
        hl.maintenance_margin_rate(0)
    with pytest.raises(ValueError, match="size"):
        hl.liquidation_price(100.0, 0.0, 1.0, 10, False)
    with pytest.raises(ValueError, match="equity"):
        hl.is_liquidatable(float("nan"), 1.0)


@settings(max_examples=300, deadline=None)
@given(
    entry=st.floats(0.01, 1e5),
    size=st.floats(0.001, 1e4),
    leverage=st.floats(1.0, 40.0),
    max_lev=st.sampled_from([3, 5, 10, 20, 40, 50]),
    is_short=st.booleans(),
)
def test_equity_equals_maintenance_margin_at_liquidation_price(entry, size, leverage, max_lev,
                                                               is_short):
    margin = entry * size / leverage
    p = hl.isolated_liquidation_price(entry, size, margin, max_lev, is_short)
    side = -1.0 if is_short else 1.0
    equity = margin + side * size * (p - entry)
    mm_at_p = hl.maintenance_margin_rate(max_lev) * size * p
    assert equity == pytest.approx(mm_at_p, rel=1e-9, abs=1e-9 * entry * size)
