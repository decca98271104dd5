"""Engine: assemble arrays from tapes, books and policies; dispatch kernels; collect outputs."""

from backtest.engine.config import RunConfig, load_run_config
from backtest.engine.dispatch import Prices, SimulationResult, liquidation_order, simulate

__all__ = ["Prices", "RunConfig", "SimulationResult", "liquidation_order", "load_run_config",
           "simulate"]
