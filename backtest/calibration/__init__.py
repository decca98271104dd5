"""Calibration against what really happened: published targets per event, and the comparison.

Public names:

- :class:`~backtest.targets.Target`, :func:`~backtest.targets.load_targets`,
  :func:`~backtest.targets.targets_for`,
  :func:`~backtest.targets.share_of_open_interest`,
  :func:`~backtest.targets.open_interest_change`,
  :func:`~backtest.targets.liquidated_window`: the versioned real figures in
  ``data/validation/<event>.toml``.
"""

from __future__ import annotations

from backtest.targets import (
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
