"""Skipping accounts out of the candle's reach changes nothing: engine == brute force."""

from __future__ import annotations

import numpy as np
import pytest

from backtest.engine.dispatch import liquidation_order, simulate
from backtest.kernels.bruteforce_nb import hard_liquidation_bruteforce_nb
from backtest.kernels.enums import POLICY_DTYPE, FillPrice, PolicyFamily, TriggerPrice
from tests.kernel_inputs import random_prices


def _perp_book(rng, n):
    side = rng.choice([-1.0, 1.0], n)
    size = rng.lognormal(0.0, 1.0, n)
    lev = rng.choice([1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0], n)
    entry = 100.0 * np.exp(rng.normal(0, 0.05, n))
    units = side * size
    return units, size * entry / lev - units * entry


@pytest.mark.parametrize("seed", range(5))
def test_engine_equals_bruteforce_on_random_books(seed):
    rng = np.random.default_rng(100 + seed)
    prices = random_prices(rng, 500, vol=0.01)
    units, cash = _perp_book(rng, 50_000)
    product = np.zeros(len(units), np.int8)
    rate = float(rng.uniform(0.002, 0.05))
    policy = np.zeros(1, POLICY_DTYPE)
    policy["family"] = PolicyFamily.HARD
    policy["maintenance_rate"] = rate
    policy["target_rate"] = np.inf
    policy["close_factor"] = policy["full_close_health"] = 1.0
    res = simulate(prices, product, units, cash, policy, TriggerPrice.EXTREME, FillPrice.TRIGGER,
                   chunk_size=512)
    step, fill = hard_liquidation_bruteforce_nb(prices.low, prices.high, units, cash, rate)
    assert (step >= 0).sum() > 1000  # the test is not vacuous
    np.testing.assert_array_equal(res.first_step, step)
    got_fill = np.full(len(units), np.nan)
    got_fill[res.records["account"]] = res.records["fill_price"]
    np.testing.assert_array_equal(got_fill, fill)


def test_processing_order_is_a_deterministic_permutation():
    rng = np.random.default_rng(5)
    units, cash = _perp_book(rng, 10_000)
    units[::97] = 0.0
    product = rng.integers(0, 2, len(units)).astype(np.int8)
    order = liquidation_order(product, units, cash)
    assert np.array_equal(np.sort(order), np.arange(len(units)))
    assert np.array_equal(order, liquidation_order(product, units, cash))
    # accounts without a position come last
    assert np.all(units[order[-len(units[::97]):]] == 0.0)
