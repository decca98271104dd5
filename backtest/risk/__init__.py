"""Risk views of a book: liquidation-at-risk maps over price and volatility shocks."""

from backtest.risk.liquidation_map import (
    LarRecorder,
    LiquidationMap,
    default_shocks,
    liquidation_map,
    liquidation_map_for_policy,
    liquidation_map_frame,
    options_liquidation_map,
)

__all__ = [
    "LarRecorder",
    "LiquidationMap",
    "default_shocks",
    "liquidation_map",
    "liquidation_map_for_policy",
    "liquidation_map_frame",
    "options_liquidation_map",
]
