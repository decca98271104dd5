"""Engine: assemble arrays from tapes, books and policies; dispatch kernels; collect outputs."""

from backtest.engine.config import RunConfig, load_run_config
from backtest.engine.simulate import Prices, SimulationResult, simulate

__all__ = ["Prices", "RunConfig", "SimulationResult", "load_run_config", "simulate"]
