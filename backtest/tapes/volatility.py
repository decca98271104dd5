"""Realised volatility of a tape, computed at import and after every merge.

``realized_vol`` at row ``i`` is the sample standard deviation (ddof=1) of the close-to-close
log returns ``log(close[j] / close[j-1])`` for the last ``window`` rows ``j <= i`` (fewer at the
start of the tape, at least 2), annualised by ``sqrt(365 * 86400 / interval_seconds)``. It is a
fraction: 0.8 means 80% a year. Rows 0 and 1 (fewer than 2 returns) are null.

Gaps are not filled: the return across a gap is simply the return between the two rows on
either side of it, counted as one step. A long outage therefore shows up as one (possibly
large) return rather than as several missing ones.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

SECONDS_PER_YEAR = 365 * 86400
"""Annualisation basis: crypto trades every day, 365 days a year."""


def default_window(interval_seconds: int) -> int:
    """Return the default trailing window: one day of candles, at least 2 returns.

    Parameters
    ----------
    interval_seconds : int
        Candle length in seconds.

    Returns
    -------
    int
        ``max(2, round(86400 / interval_seconds))`` (1440 for 1m, 24 for 1h, 2 for 1d).
    """
    return max(2, round(86400 / interval_seconds))


def annualisation_factor(interval_seconds: int) -> float:
    """Return ``sqrt(365 * 86400 / interval_seconds)``, the per-candle to per-year factor."""
    return math.sqrt(SECONDS_PER_YEAR / interval_seconds)


def realized_vol(close: np.ndarray, interval_seconds: int, window: int | None = None) -> np.ndarray:
    """Compute annualised trailing realised volatility of close-to-close log returns.

    Parameters
    ----------
    close : numpy.ndarray
        float64 close prices (> 0), one per candle, in time order.
    interval_seconds : int
        Candle length in seconds (used for the default window and the annualisation).
    window : int, optional
        Number of trailing returns per estimate (>= 2); default :func:`default_window`.

    Returns
    -------
    numpy.ndarray
        float64, same length as ``close``; NaN where fewer than 2 returns are available
        (rows 0 and 1), else the annualised volatility as a fraction.

    Raises
    ------
    ValueError
        If ``window`` < 2 (a programming error, not user input).
    """
    window = default_window(interval_seconds) if window is None else int(window)
    if window < 2:
        raise ValueError(f"window must be >= 2 returns, got {window}")
    close = np.asarray(close, dtype=np.float64)
    n = close.size
    if n < 3:
        return np.full(n, np.nan)
    returns = np.empty(n)
    returns[0] = np.nan
    returns[1:] = np.diff(np.log(close))
    s = pl.Series("r", returns, dtype=pl.Float64, nan_to_null=True)
    std = s.rolling_std(window_size=window, min_samples=2, ddof=1)
    out = std.fill_null(np.nan).to_numpy().astype(np.float64, copy=True)
    return out * annualisation_factor(interval_seconds)


def with_realized_vol(df: pl.DataFrame, interval_seconds: int, window: int | None = None
                      ) -> pl.DataFrame:
    """Return ``df`` with its ``realized_vol`` column (re)computed from ``close``.

    Parameters
    ----------
    df : polars.DataFrame
        Candles sorted by timestamp, with a float64 ``close`` column.
    interval_seconds : int
        Candle length in seconds.
    window : int, optional
        Trailing window in returns; default :func:`default_window`.

    Returns
    -------
    polars.DataFrame
        Same rows; ``realized_vol`` float64, null where undefined.
    """
    vol = realized_vol(df["close"].to_numpy(), interval_seconds, window)
    return df.with_columns(pl.Series("realized_vol", vol, dtype=pl.Float64, nan_to_null=True))
