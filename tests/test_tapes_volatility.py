from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from backtest.tapes import default_window, realized_vol


@pytest.mark.parametrize("seconds,window", [(60, 1440), (300, 288), (3600, 24), (28800, 3),
                                            (86400, 2), (604800, 2)])
def test_default_window_is_one_day(seconds, window):
    assert default_window(seconds) == window


def hand_vol(close: list[float], window: int, interval_seconds: int, rows=None) -> list[float]:
    """Literal transcription of the definition, one row at a time."""
    returns = [math.log(close[i] / close[i - 1]) for i in range(1, len(close))]
    out = []
    for i in range(len(close)) if rows is None else rows:
        available = returns[max(0, i - window):i]  # returns ending at row i
        if len(available) < 2:
            out.append(float("nan"))
        else:
            out.append(statistics.stdev(available) * math.sqrt(365 * 86400 / interval_seconds))
    return out


def test_realized_vol_matches_hand_computation():
    close = [100.0, 101.0, 99.5, 102.0, 102.0, 98.0, 97.5, 103.0, 104.0, 100.0]
    got = realized_vol(np.array(close), 3600, window=3)
    want = hand_vol(close, 3, 3600)
    assert np.isnan(got[:2]).all()
    np.testing.assert_allclose(got[2:], want[2:], rtol=1e-12)
    # row 2 uses 2 returns, row 5 the last 3: check one value fully by hand
    r = [math.log(102.0 / 99.5), math.log(102.0 / 102.0), math.log(98.0 / 102.0)]
    mean = sum(r) / 3
    sd = math.sqrt(sum((x - mean) ** 2 for x in r) / 2)
    assert got[5] == pytest.approx(sd * math.sqrt(365 * 24), rel=1e-12)


def test_realized_vol_default_window_and_scale():
    rng = np.random.default_rng(3)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, 3000)))
    got = realized_vol(close, 60)
    rows = [2, 3, 100, 1439, 1440, 1441, 2000, 2999]
    want = hand_vol(close.tolist(), 1440, 60, rows)
    np.testing.assert_allclose(got[rows], want, rtol=1e-9)
    # constant per-minute std 0.1% -> about 0.001 * sqrt(525600) = 72% a year
    assert got[-1] == pytest.approx(0.001 * math.sqrt(525600), rel=0.1)


def test_short_inputs_and_bad_window():
    assert np.isnan(realized_vol(np.array([1.0, 2.0]), 60)).all()
    assert realized_vol(np.array([]), 60).size == 0
    with pytest.raises(ValueError):
        realized_vol(np.array([1.0, 2.0, 3.0]), 60, window=1)
