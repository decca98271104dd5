"""The time-major brute force with W2's coupling agrees with the engine on random books.

W2's settings (strategies/partial.toml; square-root impact with cascade feedback; an insurance
fund that pays bad debt and socialises the rest) on random perps-and-loans books and random
candle paths, at depths small enough that the impact and the cascade move the price by
percents. The brute force tests every account at every step in book order and sums with
parallel reductions, the engine visits reachable chunks in its processing order: the sums
differ in their last bits, so results agree to a relative tolerance of 1e-9 (the largest
differences seen are 1e-11 relative, on step sums that nearly cancel; an account whose equity
sat within ~1e-15 of its margin could flip a decision, which random books do not produce), not
bit for bit.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest

from backtest.engine.dispatch import market_params, simulate
from backtest.kernels.bruteforce_coupled_nb import (
    STEP_FIELDS,
    partial_cascade_bruteforce_nb,
    w2_params,
)
from backtest.kernels.enums import FillPrice, ImpactModel, StepMetric, TriggerPrice
from backtest.policies import load_policy, pack_policy
from tests.kernel_inputs import random_book, random_prices

RTOL = 1e-9
STEP_METRICS = {"price_factor": StepMetric.PRICE_FACTOR,
                "execution_factor": StepMetric.EXECUTION_FACTOR,
                "net_flow": StepMetric.NET_FLOW, "liquidations": StepMetric.N_LIQUIDATIONS,
                "keeper_fees": StepMetric.KEEPER_FEES,
                "insurance_fees": StepMetric.INSURANCE_FEES, "bad_debt": StepMetric.BAD_DEBT,
                "insurance_fund": StepMetric.INSURANCE_FUND}


def _world(seed, n=3000, steps=300):
    rng = np.random.default_rng(seed)
    prices = random_prices(rng, steps, vol=0.012)
    book = random_book(rng, n)
    depth = rng.uniform(2e3, 2e4, steps)  # USD per 1% move: the book's flow moves prices
    market = market_params(ImpactModel.SQRT, permanent_fraction=0.5,
                           transient_half_life_steps=30.0, cascade=True)
    return prices, book, depth, market, pack_policy(load_policy("partial"))


def _both(seed, fund=1e3):
    prices, book, depth, market, policy = _world(seed)
    engine = simulate(prices, book["product"], book["units"], book["cash"], policy,
                      int(TriggerPrice.EXTREME), int(FillPrice.TRIGGER), market=market,
                      depth=depth, insurance_fund_usd=fund)
    brute = partial_cascade_bruteforce_nb(prices.high, prices.low, depth, book["product"],
                                          book["units"], book["cash"],
                                          w2_params(policy, market), fund)
    return engine, brute, book


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_agrees_with_engine(seed):
    engine, (units, cash, n_liq, bad, steps), book = _both(seed)
    sm = engine.step_metrics
    assert engine.records.size > 100  # the book is liquidated, in part and in full
    assert np.ptp(sm[:, StepMetric.PRICE_FACTOR]) > 0.01  # the cascade moves prices
    assert sm[:, StepMetric.BAD_DEBT].sum() > 0.0
    for name, metric in STEP_METRICS.items():
        np.testing.assert_allclose(steps[:, STEP_FIELDS.index(name)], sm[:, metric],
                                   rtol=RTOL, atol=1e-9, err_msg=name)
    np.testing.assert_array_equal(n_liq, engine.n_liquidations)
    np.testing.assert_allclose(units, engine.units, rtol=RTOL, atol=1e-12)
    np.testing.assert_allclose(cash, engine.cash, rtol=RTOL, atol=1e-7)
    np.testing.assert_allclose(bad, engine.bad_debt, rtol=RTOL, atol=1e-7)
    assert np.isclose(bad.sum(), engine.bad_debt.sum(), rtol=RTOL)


def test_bad_debt_written_off():
    """Closed accounts keep no debt; the per-account bad debt adds up to the steps' sums."""
    _, (units, cash, _, bad, steps), book = _both(4)
    fees = (steps[:, STEP_FIELDS.index("keeper_fees")]
            + steps[:, STEP_FIELDS.index("insurance_fees")])
    closed = (units == 0.0) & (book["units"] != 0.0)
    assert closed.any()
    assert np.all(cash[closed] >= 0.0)  # bad debt was written off, never left as debt
    assert np.isclose(bad.sum(), steps[:, STEP_FIELDS.index("bad_debt")].sum(), rtol=1e-12)
    assert fees.sum() > 0.0


def test_thread_counts_agree():
    prices, book, depth, market, policy = _world(5, n=2000, steps=200)
    params = w2_params(policy, market)
    outs = []
    for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
        numba.set_num_threads(threads)
        outs.append(partial_cascade_bruteforce_nb(prices.high, prices.low, depth,
                                                  book["product"], book["units"],
                                                  book["cash"], params, 0.0))
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    for a, b in zip(outs[0], outs[-1], strict=True):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=1e-7)


def test_rejects_unmodelled_settings():
    _, _, _, market, policy = _world(6, n=10, steps=5)
    hard = policy.copy()
    hard["family"] = 0
    with pytest.raises(ValueError, match="family"):
        w2_params(hard, market)
    with pytest.raises(ValueError, match="impact_model"):
        w2_params(policy, market_params())
