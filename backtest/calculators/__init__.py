"""Protocol liquidation calculators: each protocol's own arithmetic, outside the engine.

Pure functions, one module per protocol, so a user can check a preset (or the engine's
kernels) against on-chain or exchange numbers. On-chain protocols use Python ``int`` in the
contracts' fixed-point units (exact, bit-for-bit with the Solidity / Go / Rust code);
centralised exchanges use floats in their documented units. Invalid inputs raise
``ValueError``; a condition under which the protocol itself reverts raises a
:class:`backtest.errors.LiqbtError` subclass. Each docstring states its units and its source
(repository, file and lines at a pinned commit, or documentation page URL; see
``docs/calculators.md``).

Function names clash across protocols (``is_liquidatable``, ``liquidation_price``, ...), so
the package re-exports the protocol modules, not their functions::

    from backtest.calculators import aave, maker
    maker.rpow(maker.RAY + 10**18, 3600)

==============  ==========================================================================
Module          Main functions
==============  ==========================================================================
``aave``        ``health_factor``, ``max_liquidatable_debt_legacy`` (v3.0-3.2 close
                factor), ``max_liquidatable_debt`` (v3.3+ $2,000 / 0.95 rule),
                ``collateral_to_liquidate`` (roundings ``"v3.0"``, ``"v3.5"``, ``"v3.7"``),
                ``leaves_dust`` (``MustNotLeaveDust``), ``liquidation_call``; v2:
                ``max_liquidatable_debt_v2``, ``collateral_to_liquidate_v2``,
                ``liquidation_call_v2``
``aave_v4``     ``liquidation_bonus`` (rising to ``maxLiquidationBonus``),
                ``debt_to_target_health_factor``, ``max_debt_to_liquidate`` (dust),
                ``liquidation_amounts``, ``creates_deficit``
``morpho``      ``liquidation_incentive_factor``, shares math, ``is_healthy``,
                ``liquidate`` (bad debt realised to suppliers), ``one_borrower_bad_debt``,
                ``recommend_lltv``
``compound``    ``is_liquidatable``, ``absorb``, ``storefront_discount``,
                ``quote_collateral``, ``can_buy_collateral``
``maker``       ``rmul``, ``rdiv``, ``wmul``, ``rpow``, ``linear_decrease_price``,
                ``stairstep_exponential_decrease_price``, ``exponential_decrease_price``,
                ``bark``, ``feed_price``, ``kick``, ``chost``, ``needs_redo``,
                ``redo_incentive``, ``take`` (``DssRevert``)
``euler``       ``discount_factor``, ``max_liquidation``, ``pro_rata_yield``,
                ``socializes_debt`` (``ExcessiveRepayAmount``)
``liquity``     v1: ``liquidate_normal_mode_v1``, ``offset_and_redistribution_v1``,
                ``capped_offset_v1``, ``liquidate_recovery_mode_v1``, ``StabilityPoolV1``;
                v2: ``liquidate_v2``,
                ``offset_and_redistribution_v2``, ``coll_penalty_and_surplus``
``crvusd``      ``p_oracle_up``, ``p_oracle_down``, ``p_current_up``, ``p_current_down``,
                ``band_index``, ``health``, ``f_remove``, ``loss_per_band``,
                ``band_sold_fraction``, ``band_conversion``, ``soft_liquidation_state``
``dydx``        ``is_liquidatable``, ``bankruptcy_price_quote_quantums``,
                ``fillable_price``, ``liquidation_insurance_fund_delta``
``hyperliquid`` ``maintenance_margin_rate``, ``maintenance_margin``, ``liquidation_price``,
                ``isolated_liquidation_price``, ``is_liquidatable``,
                ``market_liquidation_fraction``, ``backstop_eligible``
``drift``       ``base_asset_amount_to_cover_margin_shortage``, ``perp_if_fee``,
                ``max_pct_to_liquidate``, ``liquidation_fee``,
                ``margin_requirement_plus_buffer``
``binance``     ``cumulative_amounts``, ``bracket_for``, ``maintenance_margin``,
                ``margin_ratio``, ``liquidation_price``, ``adl_leverage_pnl``
``bitmex``      ``adl_ranking``, ``adl_percentiles``, ``adl_fill``,
                ``bankruptcy_price_linear``, ``liquidation_price_linear``,
                ``bankruptcy_price_inverse``, ``liquidation_order``,
                ``insurance_fund_gain_linear``, ``insurance_fund_gain_inverse``
``gmx``         ``position_pnl_usd``, ``is_position_liquidatable``, ``is_adl_enabled``
==============  ==========================================================================
"""

from backtest.calculators import (
    aave,
    aave_v4,
    binance,
    bitmex,
    compound,
    crvusd,
    drift,
    dydx,
    euler,
    gmx,
    hyperliquid,
    liquity,
    maker,
    morpho,
)

__all__ = [
    "aave",
    "aave_v4",
    "binance",
    "bitmex",
    "compound",
    "crvusd",
    "drift",
    "dydx",
    "euler",
    "gmx",
    "hyperliquid",
    "liquity",
    "maker",
    "morpho",
]
