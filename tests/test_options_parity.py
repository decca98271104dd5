"""The options kernel against its plain-Python reference twin, and its invariants."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from backtest.kernels.enums import TriggerPrice
from backtest.kernels.options_enums import (
    OPTIONS_REC_F_FIELDS,
    OptionsStepMetric,
    SpreadMode,
)
from backtest.kernels.options_reference import simulate_options_reference
from backtest.options.simulate import run_options
from tests.options_inputs import random_book, random_grid, random_market, random_params


def _case(seed, trigger=None, spread_mode=None, n=60, steps=50):
    rng = np.random.default_rng(seed)
    market = random_market(rng, steps)
    book = random_book(rng, n, market, steps)
    params = random_params(rng, trigger, spread_mode)
    shocks, factors = random_grid(rng)
    fund = float(rng.choice([0.0, 1e3, 1e7]))
    return market, book, params, shocks, factors, fund


def _reference(market, book, params, shocks, factors, fund):
    return simulate_options_reference(
        market.valuation_ms, market.low, market.high, market.close, market.iv, book.inst_und,
        book.inst_call, book.inst_strike, book.inst_expiry_ms, book.leg_start, book.leg_inst,
        book.leg_qty, book.cash, params, shocks, factors, fund)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("trigger", list(TriggerPrice))
@pytest.mark.parametrize("spread_mode", list(SpreadMode))
def test_kernel_matches_reference(seed, trigger, spread_mode):
    case = _case(seed, trigger, spread_mode)
    res = run_options(*case[:5], case[5], chunk_size=7)
    ref = _reference(*case)
    assert len(ref.records) == res.records.size > 0
    np.testing.assert_array_equal(res.liq_step, ref.liq_step)
    np.testing.assert_allclose(res.cash, ref.cash, rtol=1e-9, atol=1e-7)
    np.testing.assert_array_equal(res.leg_qty, ref.leg_qty)
    np.testing.assert_allclose(res.bad_debt, ref.bad_debt, rtol=1e-9, atol=1e-7)
    np.testing.assert_allclose(res.settled, ref.settled, rtol=1e-9, atol=1e-7)
    np.testing.assert_allclose(res.step_metrics, ref.step_metrics, rtol=1e-8, atol=1e-6)
    assert res.insurance_fund_usd == pytest.approx(ref.insurance_fund, rel=1e-9, abs=1e-7)
    for rec, want in zip(res.records, ref.records, strict=True):
        assert (rec["step"], rec["account"], rec["price_point"], rec["n_legs"]) == (
            want["step"], want["account"], want["price_point"], want["n_legs"])
        got = [rec[f] for f in OPTIONS_REC_F_FIELDS]
        np.testing.assert_allclose(got, [want[f] for f in OPTIONS_REC_F_FIELDS], rtol=1e-8,
                                   atol=1e-6)


def test_cases_exercise_liquidation_settlement_and_bad_debt():
    """The random cases are not vacuous: they liquidate, settle expiries and leave bad debt."""
    totals = np.zeros(len(OptionsStepMetric))
    for seed in range(4):
        case = _case(seed, TriggerPrice.EXTREME, SpreadMode.VOL_POINTS)
        totals += run_options(*case).step_metrics.sum(axis=0)
    assert totals[OptionsStepMetric.N_LIQUIDATIONS] > 20
    assert totals[OptionsStepMetric.N_SETTLED_LEGS] > 5
    assert totals[OptionsStepMetric.BAD_DEBT] > 0
    assert totals[OptionsStepMetric.SPREAD_PAID] > 0


def test_results_do_not_depend_on_threads_chunks_or_blocks():
    case = _case(11, n=300, steps=60)
    base = run_options(*case, chunk_size=4096)
    previous = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = run_options(*case, chunk_size=4096)
    finally:
        numba.set_num_threads(previous)
    np.testing.assert_array_equal(base.step_metrics, one.step_metrics)
    np.testing.assert_array_equal(base.cash, one.cash)
    blocks = run_options(*case, chunk_size=4096, every=7, on_block=lambda t, s: None)
    np.testing.assert_array_equal(base.step_metrics, blocks.step_metrics)
    np.testing.assert_array_equal(base.records, blocks.records)
    chunked = run_options(*case, chunk_size=16)
    np.testing.assert_array_equal(base.cash, chunked.cash)
    np.testing.assert_allclose(base.step_metrics, chunked.step_metrics, rtol=1e-12, atol=1e-9)


def test_adverse_extreme_liquidates_no_later_than_the_close():
    case = _case(5, n=200, steps=60)
    market, book, params = case[:3]
    extreme = params.copy()
    extreme["trigger"] = TriggerPrice.EXTREME
    close = params.copy()
    close["trigger"] = TriggerPrice.CLOSE
    a = run_options(market, book, extreme, *case[3:])
    b = run_options(market, book, close, *case[3:])
    # accounts that only sell options have equity concave in the price: the candle's
    # extremes are at least as adverse as its close
    short_only = np.array([np.all(book.leg_qty[book.leg_start[i]:book.leg_start[i + 1]] < 0)
                           for i in range(book.n_accounts)])
    hit = (b.liq_step >= 0) & short_only
    assert hit.sum() > 10
    assert np.all((a.liq_step[hit] >= 0) & (a.liq_step[hit] <= b.liq_step[hit]))
    assert np.any(a.liq_step[hit] < b.liq_step[hit])
