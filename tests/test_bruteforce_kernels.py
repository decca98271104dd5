"""The three brute-force kernels (position-major, tiled, time-major) give the same answer.

Random books and candle paths: first liquidation step and fill price are identical, element
for element, across the loop orders, tile sizes and thread counts, and equal a plain-Python
loop written from the definition on small cases.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest

from backtest.kernels.bruteforce_nb import (
    hard_liquidation_bruteforce_nb,
    hard_liquidation_bruteforce_tile_nb,
    hard_liquidation_bruteforce_time_major_nb,
)
from tests.kernel_inputs import random_prices


def _book(rng, n, flat_every=17):
    """Isolated perps: random side, size and leverage around entry 100; some flat accounts."""
    side = rng.choice([-1.0, 1.0], n)
    size = rng.lognormal(0.0, 1.0, n)
    lev = rng.choice([1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0], n)
    entry = 100.0 * np.exp(rng.normal(0, 0.05, n))
    units = side * size
    cash = size * entry / lev - units * entry
    units[::flat_every] = 0.0
    return units, cash


def _python_first_liquidation(low, high, units, cash, rate):
    """The definition as a plain loop: first step where equity < maintenance margin."""
    step, fill = [], []
    for u, c in zip(units.tolist(), cash.tolist(), strict=True):
        found = (-1, math.nan)
        if u != 0.0:
            for t, (lo, hi) in enumerate(zip(low.tolist(), high.tolist(), strict=True)):
                x = lo if u > 0.0 else hi
                if c + u * x < rate * abs(u) * x:
                    found = (t, x)
                    break
        step.append(found[0])
        fill.append(found[1])
    return np.array(step, np.int32), np.array(fill)


def _all_kernels(low, high, units, cash, rate):
    return {
        "position-major": hard_liquidation_bruteforce_nb(low, high, units, cash, rate),
        "tile-1024": hard_liquidation_bruteforce_tile_nb(low, high, units, cash, rate),
        "tile-7": hard_liquidation_bruteforce_tile_nb(low, high, units, cash, rate, 7),
        "tile-1": hard_liquidation_bruteforce_tile_nb(low, high, units, cash, rate, 1),
        "time-major": hard_liquidation_bruteforce_time_major_nb(low, high, units, cash, rate),
    }


@pytest.mark.parametrize("seed", range(4))
def test_loop_orders_agree_on_random_books(seed):
    rng = np.random.default_rng(300 + seed)
    prices = random_prices(rng, int(rng.integers(200, 800)), vol=0.01)
    units, cash = _book(rng, int(rng.integers(20_000, 60_000)))
    rate = float(rng.uniform(0.002, 0.05))
    out = _all_kernels(prices.low, prices.high, units, cash, rate)
    step, fill = out.pop("position-major")
    assert 0.05 * len(units) < (step >= 0).sum() < 0.95 * len(units)  # not vacuous either way
    assert step.dtype == np.int32 and fill.dtype == np.float64
    for name, (s, f) in out.items():
        np.testing.assert_array_equal(s, step, err_msg=name)
        np.testing.assert_array_equal(f, fill, err_msg=name)  # NaN where never liquidated


@pytest.mark.parametrize("seed", range(3))
def test_kernels_equal_a_plain_python_loop(seed):
    rng = np.random.default_rng(400 + seed)
    prices = random_prices(rng, 120, vol=0.02)
    units, cash = _book(rng, 300, flat_every=11)
    rate = 0.01
    want_step, want_fill = _python_first_liquidation(prices.low, prices.high, units, cash, rate)
    assert (want_step >= 0).any() and (want_step < 0).any()
    assert (units[want_step >= 0] < 0).any() and (units[want_step >= 0] > 0).any()  # both sides
    for name, (s, f) in _all_kernels(prices.low, prices.high, units, cash, rate).items():
        np.testing.assert_array_equal(s, want_step, err_msg=name)
        np.testing.assert_array_equal(f, want_fill, err_msg=name)


def test_results_do_not_depend_on_the_thread_count():
    rng = np.random.default_rng(9)
    prices = random_prices(rng, 400, vol=0.01)
    units, cash = _book(rng, 30_000)
    before = numba.get_num_threads()
    runs = []
    try:
        for threads in sorted({1, before}):
            numba.set_num_threads(threads)
            runs.append(_all_kernels(prices.low, prices.high, units, cash, 0.005))
    finally:
        numba.set_num_threads(before)
    for name in runs[0]:
        for s, f in (r[name] for r in runs[1:]):
            assert np.array_equal(s, runs[0][name][0]), name
            assert np.array_equal(f, runs[0][name][1], equal_nan=True), name


def test_empty_book_and_empty_tape():
    low = high = np.array([100.0, 90.0])
    none = np.zeros(0)
    for s, f in _all_kernels(low, high, none, none, 0.01).values():
        assert s.shape == (0,) and f.shape == (0,)
    units, cash = np.array([1.0, -1.0, 0.0]), np.array([-95.0, 105.0, 0.0])
    for s, f in _all_kernels(none, none, units, cash, 0.01).values():
        assert np.array_equal(s, [-1, -1, -1]) and np.isnan(f).all()
    # a long with 5 USD of margin on 100 closes at the first low of 90; the short and the flat
    # account never do
    for name, (s, f) in _all_kernels(low, high, units, cash, 0.01).items():
        assert s.tolist() == [1, -1, -1] and f[0] == 90.0, name
