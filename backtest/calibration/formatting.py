"""How real and simulated figures are written: compact amounts, ranges, ratios, UTC minutes.

Shared by ``liqbt validate``, the run and governance reports and the sweep coverage tables, so
a figure reads the same everywhere (:mod:`backtest.calibration.compare` builds the rows).
"""

from __future__ import annotations

import math
from datetime import datetime

from backtest.targets import Target


def format_figure(value: float | None, unit: str) -> str:
    """Format a real or simulated figure compactly.

    Parameters
    ----------
    value : float or None
    unit : {"USD", "count", "fraction"}

    Returns
    -------
    str
        ``$3.57B``, ``$170.0M``, ``$400k``, ``804,242``, ``20.5%``; an en dash for None.
    """
    if value is None or not math.isfinite(value):
        return "\u2013"
    if unit == "fraction":
        pct = 100.0 * value
        return f"{pct:.3g}%" if pct and abs(pct) < 1 else f"{pct:.1f}%"
    if unit == "count":
        return f"{int(round(value)):,}"
    a = abs(value)
    sign = "-" if value < 0 else ""
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if a >= size:
            return f"{sign}${a / size:.3g}{suffix}" if a / size < 100 else \
                f"{sign}${a / size:,.0f}{suffix}"
    return f"{sign}${a:,.0f}"


def format_range(target: Target) -> str:
    """Format a target's range: one figure when ``low == high``, else ``low – high``."""
    if target.low == target.high:
        return format_figure(target.low, target.unit)
    return (f"{format_figure(target.low, target.unit)} \u2013 "
            f"{format_figure(target.high, target.unit)}")


def meets_interval(target: Target, low: float | None, high: float | None) -> bool | None:
    """Whether a target's real range ``[target.low, target.high]`` meets ``[low, high]``.

    Parameters
    ----------
    target : Target
    low, high : float or None
        An interval of simulated figures (an ensemble's p5 and p95), in the target's unit.

    Returns
    -------
    bool or None
        None when either end is missing.
    """
    if low is None or high is None:
        return None
    return low <= target.high and high >= target.low


def format_ratio(ratio: float | None) -> str:
    """Format ``simulated / real`` as ``0.85x``, ``0.0031x``, ``12x`` (an en dash for None)."""
    if ratio is None or not math.isfinite(ratio):
        return "\u2013"
    if ratio < 0.1:
        return f"{ratio:.2g}x"
    return f"{ratio:.2f}x" if ratio < 10 else f"{ratio:,.0f}x"


def utc_minute(t: datetime) -> str:
    """Format a UTC time to the minute, ``2021-05-19 13:00``."""
    return t.strftime("%Y-%m-%d %H:%M")
