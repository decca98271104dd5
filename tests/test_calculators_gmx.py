"""GMX v2 liquidation check against gmx-synthetics' own test and code.

Source: gmx-io/gmx-synthetics ``test/exchange/LiquidationOrder.ts`` (10 WETH collateral, a
$200,000 long opened at $5,000; liquidation at $4,200 reverts ``Invalid Liquidation``, at $4,000
it succeeds). The fixture's fees and price impact are not reproduced: they are 0 here, and the
outcome at both prices does not depend on them (at $4,200 the remaining collateral is $10,000
against a $2,000 minimum; at $4,000 it is $0). Minimum collateral factor 1%
(``config/markets.ts`` L282-283), ``MIN_COLLATERAL_USD`` $1.
"""

from __future__ import annotations

import pytest

from backtest.calculators import gmx
from backtest.calculators.gmx import USD

WETH = 10**18


def price(usd_per_eth: int) -> int:  # USD per wei, 30 decimals: expandDecimals(p, 12)
    return usd_per_eth * 10**12


def check(p: int) -> gmx.LiquidationCheck:
    size_tokens = 200_000 * USD // price(5000)
    assert size_tokens == 40 * WETH
    pnl = gmx.position_pnl_usd(size_tokens, 200_000 * USD, price(p), is_long=True)
    return gmx.is_position_liquidatable(10 * WETH * price(p), pnl, 200_000 * USD)


def test_liquidation_order_example():
    at_4200 = check(4200)
    assert not at_4200.liquidatable  # executeLiquidation reverts: position not liquidatable
    assert at_4200.remaining_collateral_usd == 10_000 * USD
    assert at_4200.min_collateral_usd_for_leverage == 2_000 * USD
    at_4000 = check(4000)
    assert at_4000.liquidatable and at_4000.remaining_collateral_usd == 0


def test_reasons_and_price_impact_cap():
    size = 100_000 * USD
    # remaining 900 < 1% of size (1,000): max leverage exceeded
    r = gmx.is_position_liquidatable(900 * USD, 0, size)
    assert r.reason == "min collateral for leverage"
    # below MIN_COLLATERAL_USD first
    assert gmx.is_position_liquidatable(USD // 2, 0, size).reason == "min collateral"
    r = gmx.is_position_liquidatable(0, 0, size, validate_min_collateral_usd=False)
    assert r.reason == "< 0"
    # positive impact counts as 0; negative impact capped at maxPositionImpactFactorForLiquidations
    assert gmx.is_position_liquidatable(5_000 * USD, 0, size, 3_000 * USD).price_impact_usd == 0
    r = gmx.is_position_liquidatable(5_000 * USD, 0, size, -3_000 * USD,
                                     max_position_impact_factor_for_liquidations=USD // 100)
    assert r.price_impact_usd == -1_000 * USD  # 1% of 100k
    assert r.remaining_collateral_usd == 4_000 * USD and not r.liquidatable
    # closing fees reduce the remaining collateral
    assert gmx.is_position_liquidatable(1_100 * USD, 0, size, collateral_cost_usd=200 * USD
                                        ).liquidatable


def test_adl_threshold_and_invalid_inputs():
    assert gmx.is_adl_enabled(86 * USD // 100, 85 * USD // 100)
    assert not gmx.is_adl_enabled(85 * USD // 100, 85 * USD // 100)
    with pytest.raises(ValueError, match="collateral_usd"):
        gmx.is_position_liquidatable(-1, 0, USD)
    with pytest.raises(ValueError, match="int"):
        gmx.apply_factor(1.5, USD)
