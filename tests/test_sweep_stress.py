"""Stress transforms of history: pure functions on tape arrays."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest.sweep.stress import (
    BlockBootstrap,
    CompressTime,
    NoStress,
    ScaleShock,
    block_bootstrap,
    block_indices,
    compress_time,
    scale_shock,
    stress_tape,
)
from backtest.tapes import TapeStore
from tests.conftest import T0, Synth

MIN = 60_000


def window(n: int = 200, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(-0.002, 0.01, n)))
    open_ = np.concatenate([[100.0], close[:-1]]) * np.exp(rng.normal(0, 0.001, n))
    high = np.maximum(open_, close) * np.exp(rng.uniform(0, 0.005, n))
    low = np.minimum(open_, close) * np.exp(-rng.uniform(0, 0.005, n))
    funding = np.full(n, np.nan)
    funding[::8] = rng.normal(0, 1e-4, len(funding[::8]))
    return {"timestamp": T0 + np.arange(n, dtype=np.int64) * MIN, "open": open_, "high": high,
            "low": low, "close": close, "volume": rng.uniform(1, 10, n), "funding_rate": funding,
            "realized_vol": np.full(n, 0.8)}


def consistent(a: dict[str, np.ndarray]) -> bool:
    return bool(np.all(a["low"] <= np.minimum(a["open"], a["close"]) * (1 + 1e-12))
                and np.all(a["high"] >= np.maximum(a["open"], a["close"]) * (1 - 1e-12))
                and np.all(a["low"] > 0))


def test_scale_one_is_identity_and_copies():
    a = window()
    out = scale_shock(a, 1.0)
    for k in a:
        np.testing.assert_array_equal(out[k], a[k])
        assert out[k] is not a[k]


@given(k=st.floats(0.2, 4.0), seed=st.integers(0, 1000))
@settings(max_examples=40, deadline=None)
def test_scaled_log_returns_sum_to_k_times_the_original(k, seed):
    a = window(seed=seed)
    before = {name: v.copy() for name, v in a.items()}
    out = scale_shock(a, k)
    orig = np.diff(np.log(np.concatenate([[a["open"][0]], a["close"]])))
    new = np.diff(np.log(np.concatenate([[out["open"][0]], out["close"]])))
    np.testing.assert_allclose(new, k * orig, rtol=1e-9, atol=1e-12)
    assert np.isclose(new.sum(), k * orig.sum(), rtol=1e-9)
    assert out["open"][0] == a["open"][0]
    assert consistent(out)
    np.testing.assert_array_equal(out["volume"], a["volume"])
    for name in a:  # pure: the input is untouched
        np.testing.assert_array_equal(a[name], before[name])


def test_scale_rejects_non_positive_k():
    with pytest.raises(ValueError, match="k must be > 0"):
        scale_shock(window(), 0.0)


def test_compress_merges_candles_as_documented():
    a = window(n=7)
    out = compress_time(a, 3, MIN)
    assert len(out["open"]) == 3  # ceil(7 / 3)
    np.testing.assert_array_equal(out["timestamp"], T0 + np.arange(3) * MIN)
    np.testing.assert_array_equal(out["open"], a["open"][[0, 3, 6]])
    np.testing.assert_array_equal(out["close"], a["close"][[2, 5, 6]])
    assert out["high"][0] == a["high"][:3].max() and out["low"][1] == a["low"][3:6].min()
    assert out["volume"][0] == pytest.approx(a["volume"][:3].mean())
    assert out["volume"][2] == a["volume"][6]
    assert out["funding_rate"][0] == pytest.approx(a["funding_rate"][0])  # one settlement
    assert np.isnan(out["funding_rate"][1])  # none in candles 3..5
    assert out["realized_vol"][0] == pytest.approx(0.8 * np.sqrt(3))
    assert consistent(out)


def test_compress_keeps_the_total_move_in_fewer_steps():
    a = window(n=200)
    out = compress_time(a, 2, MIN)
    assert len(out["close"]) == 100
    assert out["close"][-1] == a["close"][-1] and out["open"][0] == a["open"][0]
    assert out["low"].min() == a["low"].min()
    np.testing.assert_array_equal(compress_time(a, 1, MIN)["close"], a["close"])


def test_bootstrap_is_reproducible_by_seed():
    a = window()
    one, src1 = block_bootstrap(a, 12, 5)
    two, src2 = block_bootstrap(a, 12, 5)
    three, src3 = block_bootstrap(a, 12, 6)
    np.testing.assert_array_equal(src1, src2)
    for k in one:
        np.testing.assert_array_equal(one[k], two[k])
    assert not np.array_equal(src1, src3)


@given(n=st.integers(1, 300), block=st.integers(1, 50), seed=st.integers(0, 2**32))
@settings(max_examples=60, deadline=None)
def test_bootstrap_preserves_blocks(n, block, seed):
    a = window(n=max(n, 1))
    out, src = block_bootstrap(a, block, seed)
    b = min(block, n)
    assert len(src) == n and src.min() >= 0 and src.max() < n
    for start in range(0, n, b):  # every block is a run of consecutive source candles
        run = src[start:start + b]
        np.testing.assert_array_equal(np.diff(run), np.ones(len(run) - 1, np.int64))
    # each candle keeps its shape relative to its open, and its volume
    for name in ("high", "low", "close"):
        np.testing.assert_allclose(np.log(out[name] / out["open"]),
                                   np.log(a[name] / a["open"])[src], atol=1e-12)
    np.testing.assert_array_equal(out["volume"], a["volume"][src])
    assert out["open"][0] == a["open"][0]
    assert consistent(out)
    # inside a block, close-to-open gaps are the original ones
    inner = np.flatnonzero(np.diff(src) == 1) + 1
    gap_new = np.log(out["open"][inner] / out["close"][inner - 1])
    gap_old = np.log(a["open"][src[inner]] / a["close"][src[inner] - 1])
    np.testing.assert_allclose(gap_new, gap_old, atol=1e-9)


def test_block_indices_draws_whole_blocks():
    src = block_indices(10, 4, np.random.default_rng(0))
    assert len(src) == 10
    assert np.all(np.diff(src[:4]) == 1) and np.all(np.diff(src[4:8]) == 1)


def test_stress_tape_keeps_history_before_the_window(tmp_path):
    rows = Synth.rows(n=3 * 1440, start_ms=T0, interval_s=60, seed=2, price=30_000.0)
    store = TapeStore(tmp_path / "tapes")
    store.import_file(Synth.ft_json(tmp_path / "BTC_USDT-1m.json", rows), venue="binance")
    tape = store.load("binance", "spot", "BTC/USDT", "1m")
    start = datetime.fromtimestamp(T0 / 1000, UTC) + timedelta(days=1)
    end = start + timedelta(days=1)
    hist = tape.window(tape.start, start).arrays()
    for spec in (NoStress(kind="none"), ScaleShock(kind="scale", k=2.0),
                 CompressTime(kind="compress", factor=3),
                 BlockBootstrap(kind="bootstrap", block_steps=30)):
        out = stress_tape(tape, start, end, spec, seed=1)
        before = out.tape.window(out.tape.start, start).arrays()
        for k in ("open", "close", "volume"):
            np.testing.assert_array_equal(before[k], hist[k])
        w = out.window.arrays()
        assert w["timestamp"][0] == int(start.timestamp() * 1000)
        assert consistent(w)
        expected = 1440 // 3 if spec.kind == "compress" else 1440
        assert out.window.rows == expected
        assert out.end == start + timedelta(minutes=expected)
    np.testing.assert_array_equal(
        stress_tape(tape, start, end, NoStress(kind="none"), 0).window.arrays()["close"],
        tape.window(start, end).arrays()["close"])
