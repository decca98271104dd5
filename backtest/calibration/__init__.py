"""Calibration against what really happened: published targets per event, and the comparison.

Public names:

- :class:`~backtest.calibration.targets.Target`, :func:`~backtest.calibration.targets.load_targets`,
  :func:`~backtest.calibration.targets.targets_for`,
  :func:`~backtest.calibration.targets.share_of_open_interest`,
  :func:`~backtest.calibration.targets.open_interest_change`,
  :func:`~backtest.calibration.targets.liquidated_window`: the versioned real figures in
  ``data/validation/<event>.toml``.
"""

from __future__ import annotations

from backtest.calibration.targets import (
    MEASURES,
    Target,
    liquidated_window,
    load_targets,
    open_interest_change,
    share_of_open_interest,
    targets_for,
    validation_dir,
)

__all__ = [
    "MEASURES",
    "Target",
    "liquidated_window",
    "load_targets",
    "open_interest_change",
    "share_of_open_interest",
    "targets_for",
    "validation_dir",
]
