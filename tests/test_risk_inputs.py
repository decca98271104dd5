"""Per-step risk inputs: dynamic maintenance margin and the predictive overlay's shift."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from backtest.engine.risk import risk_inputs
from backtest.kernels.enums import RiskInput
from backtest.policies.models import HardPolicy
from backtest.tapes.volatility import realized_vol

BASE = {"name": "x", "family": "hard",
        "perp": {"maintenance_margin_rate": 0.005, "liquidation_penalty": 0.01},
        "loan": {"liquidation_threshold": 0.8, "liquidation_bonus": 0.05}}


def _policy(**sections) -> HardPolicy:
    return HardPolicy.model_validate({**BASE, **sections})


def _closes(n=600, seed=1, calm=300, vol_calm=0.001, vol_storm=0.01):
    rng = np.random.default_rng(seed)
    r = np.where(np.arange(n) < calm, vol_calm, vol_storm) * rng.standard_normal(n)
    return 100.0 * np.exp(np.cumsum(r))


def test_without_sections_the_inputs_are_neutral():
    out = risk_inputs(_policy(), _closes(), 100, 50, 60)
    assert out.shape == (50, 2)
    assert np.all(out[:, RiskInput.MARGIN_SCALE] == 1.0)
    assert np.all(out[:, RiskInput.PREEMPT_SHIFT] == 0.0)


def test_margin_scale_follows_volatility_known_before_each_step():
    close = _closes()
    dm = {"reference_volatility": 0.5, "window_minutes": 30, "floor": 1.0, "cap": 4.0}
    start, n = 200, 300
    scale = risk_inputs(_policy(dynamic_margin=dm), close, start, n, 60)[:, 0]
    vol = realized_vol(close, 60, 30)
    expected = np.clip(vol[start - 1:start + n - 1] / 0.5, 1.0, 4.0)  # the previous close's
    np.testing.assert_allclose(scale, expected)
    assert scale[:90].max() < scale[-100:].min()  # the storm raises the margin
    assert np.all((scale >= 1.0) & (scale <= 4.0))


def test_margin_scale_ignores_the_current_and_later_candles():
    close = _closes()
    dm = {"reference_volatility": 0.5, "smoothing_half_life_minutes": 10}
    a = risk_inputs(_policy(dynamic_margin=dm), close, 200, 100, 60)
    changed = close.copy()
    changed[250:] *= np.exp(np.linspace(0, -0.5, len(close) - 250))  # a crash from step 50
    b = risk_inputs(_policy(dynamic_margin=dm), changed, 200, 100, 60)
    np.testing.assert_array_equal(a[:51], b[:51])  # row 50 knows closes up to step 49 only
    assert not np.array_equal(a[52:], b[52:])


def test_smoothing_lags_the_raw_scale():
    close = _closes()
    raw = risk_inputs(_policy(dynamic_margin={"reference_volatility": 0.5}), close, 250, 200, 60)
    smooth = risk_inputs(_policy(dynamic_margin={"reference_volatility": 0.5,
                                                 "smoothing_half_life_minutes": 30}),
                         close, 250, 200, 60)
    # after the storm starts (step 300 of the tape = row 50) the smoothed scale rises later
    assert smooth[60, 0] < raw[60, 0]
    assert np.all((smooth[:, 0] >= 1.0) & (smooth[:, 0] <= 3.0))


def test_predictive_shift_is_the_barrier_quantile():
    close = _closes()
    pr = {"breach_probability": 0.1, "horizon_minutes": 15, "reduce_fraction": 0.25}
    out = risk_inputs(_policy(predictive=pr), close, 100, 200, 60)
    vol = realized_vol(close, 60, 60)
    z = NormalDist().inv_cdf(0.95)
    expected = z * vol[99:299] * math.sqrt(15 * 60 / (365 * 86400))
    np.testing.assert_allclose(out[:, RiskInput.PREEMPT_SHIFT], expected)
    # a driftless GBM path touches exp(-shift) within the horizon with probability p
    sigma = 0.8
    shift = z * sigma * math.sqrt(15 * 60 / (365 * 86400))
    rng = np.random.default_rng(0)
    dt = 1 / (365 * 86400)  # one-second steps
    paths = np.cumsum(sigma * math.sqrt(dt) * rng.standard_normal((4000, 900)), axis=1)
    hit = (paths.min(axis=1) <= -shift).mean()
    assert hit == pytest.approx(0.1, abs=0.02)  # discrete monitoring slightly undercounts


def test_dynamic_margin_must_keep_the_rate_below_half():
    with pytest.raises(ValueError, match="dynamic_margin.cap"):
        _policy(dynamic_margin={"reference_volatility": 0.5, "cap": 200.0})
