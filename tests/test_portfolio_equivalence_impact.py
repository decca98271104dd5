"""A one-asset portfolio with market impact and cascade equals the single-asset kernel (issue 17).

The cases of :mod:`tests.test_portfolio_equivalence` (random one-asset books of loans, cross
and isolated perps, long and short; settings ``hard``, ``partial`` and ``close_factor``) run
with the same impact model, depth per step, permanent fraction, transient half-life and
cascade flag in both kernels: the single-asset engine (``market_params``, ``depth``) and the
portfolio kernel (:class:`backtest.portfolio.market.PortfolioMarketParams` and a ``depth``
array). Besides everything that test compares (per account: liquidations, first step, units,
cash, penalties, bad debt, notional; per step: notional, fees, bad debt, insurance fund), the
per-step price path (price factor), execution factor and net flow agree, and so do the fill
prices of the liquidations.

Tolerances are those of the no-impact test (1e-9 relative): the two kernels sum a step's flow
in different account orders, so execution factors differ in the last bits.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backtest.engine.dispatch import market_params, simulate
from backtest.kernels.enums import FillPrice, ImpactModel, StepMetric, TriggerPrice
from backtest.kernels.portfolio_enums import AccountKind, AssetMarketMetric
from backtest.portfolio import simulate_portfolio
from backtest.portfolio.market import PortfolioMarketParams
from tests.test_portfolio_equivalence import MODES, _aligned, _assert_equivalent, _case

IMPACTS = ("linear", "sqrt", "amm")


def _market(rng, model: str, cascade: bool):
    """Matching market settings of both kernels, and a depth per step that makes impact bite."""
    permanent = float(rng.uniform(0.0, 1.0))
    half_life = int(rng.integers(1, 60))  # minutes = steps (one-minute tapes)
    single = market_params(ImpactModel[model.upper()], permanent, float(half_life), cascade)
    port = PortfolioMarketParams(impact_model=model, cascade=cascade,
                                 permanent_fraction=permanent,
                                 transient_half_life_minutes=half_life)
    return single, port


def _run_both(prices, book, params, policy, trigger, single_market, port_market, depth):
    product = np.where(book.kind == AccountKind.LENDING, 1, 0).astype(np.int8)
    single = simulate(prices, product, book.pos_units, book.cash, policy, int(trigger),
                      int(FillPrice.TRIGGER), insurance_fund_usd=params.insurance_fund_usd,
                      chunk_size=int(params.chunk_size), market=single_market, depth=depth)
    port = simulate_portfolio(_aligned(prices), book, params, market=port_market,
                              depth=depth[:, None])
    return single, port


def _assert_market_equal(single, port):
    """The per-step price path, execution factor and net flow agree."""
    sm, mm = single.step_metrics, port.market_metrics[:, 0, :]
    S, A = StepMetric, AssetMarketMetric
    for name, s, p in (("price factor", sm[:, S.PRICE_FACTOR], mm[:, A.PRICE_FACTOR]),
                       ("execution factor", sm[:, S.EXECUTION_FACTOR], mm[:, A.EXECUTION_FACTOR])):
        np.testing.assert_allclose(p, s, rtol=1e-9, atol=0, err_msg=name)
    scale = np.abs(sm[:, S.NET_FLOW]).sum() + 1.0
    np.testing.assert_allclose(mm[:, A.NET_FLOW], sm[:, S.NET_FLOW], rtol=0, atol=1e-9 * scale,
                               err_msg="net flow")


def _assert_fills_equal(single, port):
    """Every liquidation fills at the same price (records in (step, account) order)."""
    s = single.records
    p = port.records.sort(["step", "account"])
    assert len(s) == len(p)
    order = np.lexsort((s["account"], s["step"]))
    np.testing.assert_array_equal(p["account"].to_numpy(), s["account"][order])
    np.testing.assert_allclose(p["fill_price"].to_numpy(), s["fill_price"][order], rtol=1e-9)


def _impact_case(seed, mode, n, steps, vol, trigger, fund, model, cascade):
    prices, book, params, policy = _case(seed, mode, n, steps, vol, trigger, fund)
    rng = np.random.default_rng(seed + 1)
    single_market, port_market = _market(rng, model, cascade)
    gross = float(np.sum(np.abs(book.pos_units)) * prices.open[0])
    # depth from 1% to 100% of the book's gross notional, varying per step
    depth = gross * rng.uniform(0.01, 1.0) * np.exp(rng.normal(0.0, 0.3, steps))
    return prices, book, params, policy, single_market, port_market, depth


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("model", IMPACTS)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 2), n=st.integers(1, 120), steps=st.integers(1, 50),
       vol=st.floats(0.002, 0.05), trigger=st.sampled_from(list(TriggerPrice)),
       fund=st.sampled_from([0.0, 5.0, 1e6]), cascade=st.booleans())
def test_one_asset_portfolio_with_impact_equals_single_asset(mode, model, seed, n, steps, vol,
                                                             trigger, fund, cascade):
    case = _impact_case(seed, mode, n, steps, vol, trigger, fund, model, cascade)
    prices, book, params, policy, single_market, port_market, depth = case
    single, port = _run_both(prices, book, params, policy, trigger, single_market, port_market,
                             depth)
    _assert_equivalent(book, prices, single, port)
    _assert_market_equal(single, port)
    _assert_fills_equal(single, port)


@pytest.mark.parametrize("mode", MODES)
def test_impact_settings_are_not_vacuous(mode):
    """Impact moves the fills and, with cascade, the price path of both kernels; results
    differ from the run without impact, and still agree with each other."""
    case = _impact_case(7, mode, 400, 60, 0.05, TriggerPrice.EXTREME, 0.0, "sqrt", True)
    prices, book, params, policy, single_market, port_market, depth = case
    single, port = _run_both(prices, book, params, policy, TriggerPrice.EXTREME, single_market,
                             port_market, depth)
    _assert_equivalent(book, prices, single, port)
    _assert_market_equal(single, port)
    _assert_fills_equal(single, port)
    mm = port.market_metrics[:, 0, :]
    assert mm[:, AssetMarketMetric.PRICE_FACTOR].min() < 0.995  # the cascade moved the path
    assert mm[:, AssetMarketMetric.EXECUTION_FACTOR].min() < 0.999
    assert mm[:, AssetMarketMetric.IMPACT_COST].sum() > 0.0
    plain = simulate_portfolio(_aligned(prices), book, params)
    assert not np.array_equal(plain.book.cash, port.book.cash)
    assert (port.bad_debt > 0).any()
