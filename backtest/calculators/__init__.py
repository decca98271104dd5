"""Protocol liquidation calculators (work in progress; see the final module docstring)."""

from backtest.calculators import maker

__all__ = ["maker"]
