"""Drift v2 calculators against ``programs/drift/src/math/liquidation/tests.rs``.

Source: drift-labs/protocol-v2 ``programs/drift/src/math/liquidation/tests.rs`` (modules
``calculate_base_asset_amount_to_cover_margin_shortage``, ``calculate_perp_if_fee``,
``calculate_max_pct_to_liquidate``, ``get_liquidation_fee``).
"""

from __future__ import annotations

import pytest

from backtest.calculators import drift
from backtest.calculators.drift import (
    BASE_PRECISION,
    LIQUIDATION_FEE_PRECISION,
    LIQUIDATION_PCT_PRECISION,
    MARGIN_PRECISION,
    PRICE_PRECISION,
    QUOTE_PRECISION,
)


def test_base_to_cover_shortage():
    shortage, mr, price = 10 * QUOTE_PRECISION, MARGIN_PRECISION // 10, 100 * PRICE_PRECISION
    # zero_percent_liquidation_fee: $10 shortage, 10% margin, $100 -> 1 base
    assert drift.base_asset_amount_to_cover_margin_shortage(shortage, mr, 0, 0, price) == (
        BASE_PRECISION)
    # usdc_not_one: quote price 0.99 -> 1010101010, 1.01 -> 990099009
    assert drift.base_asset_amount_to_cover_margin_shortage(
        shortage, mr, 0, 0, price, 99 * 10_000) == 1_010_101_010
    assert drift.base_asset_amount_to_cover_margin_shortage(
        shortage, mr, 0, 0, price, 101 * 10_000) == 990_099_009
    # one_percent_liquidation_fee: must lose 10/9 base
    fee = LIQUIDATION_FEE_PRECISION // 100
    assert drift.base_asset_amount_to_cover_margin_shortage(shortage, mr, fee, 0, price) == (
        BASE_PRECISION * 10 // 9)
    # one_percent_liquidation_fee_and_one_percent_if_liquidation_fee: 1250000000
    assert drift.base_asset_amount_to_cover_margin_shortage(shortage, mr, fee, fee, price) == (
        1_250_000_000)
    # MR <= liquidation fee: liquidate everything (u64::MAX)
    assert drift.base_asset_amount_to_cover_margin_shortage(
        shortage, mr, LIQUIDATION_FEE_PRECISION // 10, 0, price) == drift.U64_MAX


def test_freed_collateral_identity_of_one_percent_case():
    # one_percent_liquidation_fee: freed_collateral - negative_pnl == 10000000 (~$10)
    mr, fee, price = MARGIN_PRECISION // 10, LIQUIDATION_FEE_PRECISION // 100, 100 * PRICE_PRECISION
    base = drift.base_asset_amount_to_cover_margin_shortage(10 * QUOTE_PRECISION, mr, fee, 0, price)
    notional = base * price // PRICE_PRECISION // 1000  # AMM_TO_QUOTE_PRECISION_RATIO
    freed = notional * mr // MARGIN_PRECISION
    negative_pnl = notional * fee // LIQUIDATION_FEE_PRECISION
    assert freed - negative_pnl == 10_000_000


def test_perp_if_fee():
    # calculate_perp_if_fee::test: shortage $20, $100, 1% liquidator fee, 5% margin,
    # 10 base, max IF fee 5%
    args = dict(base_asset_amount=10 * BASE_PRECISION, margin_ratio=MARGIN_PRECISION // 20,
                liquidator_fee=LIQUIDATION_FEE_PRECISION // 100,
                oracle_price=100 * PRICE_PRECISION,
                max_if_liquidation_fee=LIQUIDATION_FEE_PRECISION // 20)
    assert drift.perp_if_fee(20 * QUOTE_PRECISION, **args) == 19_000  # 2% * .95
    assert drift.perp_if_fee(QUOTE_PRECISION, **args) == 37_050  # 3.9% * .95
    assert drift.perp_if_fee(1000 * QUOTE_PRECISION, **args) == 0  # huge shortage
    assert drift.perp_if_fee(20 * QUOTE_PRECISION, **{
        **args, "liquidator_fee": LIQUIDATION_FEE_PRECISION // 10}) == 0
    assert drift.perp_if_fee(20 * QUOTE_PRECISION, **{**args, "oracle_price": 0}) == 0
    assert drift.perp_if_fee(20 * QUOTE_PRECISION, **args, quote_oracle_price=0) == 0
    assert drift.perp_if_fee(20 * QUOTE_PRECISION, **{**args, "base_asset_amount": 0}) == 0


def test_max_pct_to_liquidate():
    # calculate_max_pct_to_liquidate::test: $49 shortage -> 100% whatever the pace
    assert drift.max_pct_to_liquidate(49 * QUOTE_PRECISION, 1, LIQUIDATION_PCT_PRECISION // 10,
                                      10) == LIQUIDATION_PCT_PRECISION
    # liquidation.rs L368-399 with a $100 shortage: 10% initial + 5 of 10 slots -> 60%
    assert drift.max_pct_to_liquidate(100 * QUOTE_PRECISION, 5,
                                      LIQUIDATION_PCT_PRECISION // 10, 10) == 6_000
    # ... capped at 100%; duration 0 (the admin default) -> 100% at once
    assert drift.max_pct_to_liquidate(100 * QUOTE_PRECISION, 50, 1000, 10) == 10_000
    assert drift.max_pct_to_liquidate(100 * QUOTE_PRECISION, 0, 0, 0) == 10_000
    # with $100 already freed (total $200), 60% -> $120 freeable, $20 more = 20% of $100
    assert drift.max_pct_to_liquidate(100 * QUOTE_PRECISION, 5, 1000, 10,
                                      liquidation_margin_freed=100 * QUOTE_PRECISION) == 2_000


def test_liquidation_fee_ramp():
    # get_liquidation_fee::test: base 2%, max 5%
    base, cap = 2 * LIQUIDATION_FEE_PRECISION // 100, 5 * LIQUIDATION_FEE_PRECISION // 100
    assert drift.liquidation_fee(base, cap, 100_000) == cap  # huge slot difference
    assert drift.liquidation_fee(base, cap, 10) == base  # within the grace period
    assert drift.liquidation_fee(base, cap, 10_000) == 3 * LIQUIDATION_FEE_PRECISION // 100
    # at the end of the grace period the fee jumps by 1,500 slots' worth
    assert drift.liquidation_fee(base, cap, 1_499) == base
    assert drift.liquidation_fee(base, cap, 1_500) == base + 1_500


def test_buffer_and_invalid_inputs():
    assert drift.margin_requirement_plus_buffer(100 * QUOTE_PRECISION) == 102 * QUOTE_PRECISION
    with pytest.raises(ValueError, match="margin_shortage"):
        drift.max_pct_to_liquidate(0, 1, 1, 1)
    with pytest.raises(ValueError, match="oracle_price"):
        drift.base_asset_amount_to_cover_margin_shortage(1, 1, 0, 0, -1)
