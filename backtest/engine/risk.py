"""Per-step risk inputs of a policy: dynamic maintenance margin and the predictive overlay.

Both read the realised volatility of the tape *before* each step: row ``t`` of the output uses
the annualised volatility of close-to-close log returns over the trailing window ending at the
close of step ``t - 1`` (for the window's first step, the last close before the window), so no
step sees its own candle. Early rows without two returns fall back to the first estimate
available, and to the policy's reference volatility when the tape has none.

- Dynamic margin (:class:`backtest.policies.models.DynamicMarginParams`): the perp
  maintenance margin rate is multiplied by ``clip(sigma / reference_volatility, floor, cap)``,
  smoothed by an exponential moving average with the given half-life (over the whole tape, so
  the window starts warmed up).
- Predictive overlay (:class:`backtest.policies.models.PredictiveParams`): the log-price
  shift ``z x sigma x sqrt(horizon)``, ``z = Phi^-1(1 - p / 2)``, at which an account's
  breach probability within the horizon is ``p`` (driftless GBM, reflection principle).
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import polars as pl

from backtest.kernels.enums import N_RISK_INPUTS, RiskInput
from backtest.tapes.volatility import SECONDS_PER_YEAR, realized_vol


def _window_steps(minutes: float, interval_seconds: int) -> int:
    return max(2, round(minutes * 60 / interval_seconds))


def _volatility_before(close: np.ndarray, start: int, n_steps: int, interval_seconds: int,
                       minutes: float, fallback: float) -> np.ndarray:
    """Annualised realised volatility known at the start of each window step, shape (T,)."""
    vol = realized_vol(close[: start + n_steps], interval_seconds,
                       _window_steps(minutes, interval_seconds))
    before = np.empty(start + n_steps)
    before[0] = np.nan
    before[1:] = vol[:-1]
    valid = np.flatnonzero(np.isfinite(before))
    if valid.size == 0:
        before[:] = fallback
    else:
        before[: valid[0]] = before[valid[0]]
    return before


def risk_inputs(policy, close: np.ndarray, start: int, n_steps: int,
                interval_seconds: int) -> np.ndarray:
    """Return the per-step risk inputs of ``policy`` for a window of a tape.

    Parameters
    ----------
    policy : backtest.policies.Policy
        Validated policy of any family; its ``dynamic_margin`` and ``predictive`` sections
        (None: off).
    close : ndarray, shape (T_tape,), float64
        Historical closes of the whole tape, USD; the window is ``[start, start + n_steps)``.
    start, n_steps : int
        First row of the window in the tape, and its number of steps.
    interval_seconds : int
        Step length, seconds.

    Returns
    -------
    ndarray, shape (n_steps, N_RISK_INPUTS), float64
        Columns :class:`backtest.kernels.enums.RiskInput`: maintenance margin scale (1 without
        dynamic margin) and predictive log-price shift (0 without the overlay).
    """
    out = np.zeros((n_steps, N_RISK_INPUTS))
    out[:, RiskInput.MARGIN_SCALE] = 1.0
    close = np.asarray(close, dtype=np.float64)
    dm = policy.dynamic_margin
    if dm is not None:
        sigma = _volatility_before(close, start, n_steps, interval_seconds, dm.window_minutes,
                                   dm.reference_volatility)
        scale = np.clip(sigma / dm.reference_volatility, dm.floor, dm.cap)
        if dm.smoothing_half_life_minutes > 0:
            alpha = 1.0 - 0.5 ** (interval_seconds / 60 / dm.smoothing_half_life_minutes)
            scale = pl.Series(scale).ewm_mean(alpha=alpha, adjust=False).to_numpy()
        out[:, RiskInput.MARGIN_SCALE] = scale[start:]
    pr = policy.predictive
    if pr is not None:
        fallback = dm.reference_volatility if dm is not None else 0.0
        sigma = _volatility_before(close, start, n_steps, interval_seconds, pr.window_minutes,
                                   fallback)
        z = NormalDist().inv_cdf(1.0 - pr.breach_probability / 2.0)
        horizon_years = pr.horizon_minutes * 60 / SECONDS_PER_YEAR
        out[:, RiskInput.PREEMPT_SHIFT] = z * sigma[start:] * math.sqrt(horizon_years)
    return out

