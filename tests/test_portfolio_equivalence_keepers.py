"""A one-asset portfolio with keepers equals the single-asset kernel with the same keepers.

The cases of :mod:`tests.test_portfolio_equivalence` run with keeper latency (steps), keepers
that require profit (gas per liquidation per step, expected slippage) and capital-constrained
keepers, optionally with market impact (:mod:`tests.test_portfolio_equivalence_impact`), in
both kernels: the single-asset engine (``market_params`` keeper fields, ``gas_usd``) and the
portfolio kernel (``keepers=KeeperConfig``, ``gas_usd``). Both follow the rules of
:mod:`backtest.kernels.keepers_nb`. The keepers' capital goes to liquidations in processing
order: the single-asset engine is given the book's order (``order = arange(N)``), the order
the portfolio kernel always uses. Everything :mod:`tests.test_portfolio_equivalence` compares
agrees, and so do the fills.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backtest.engine.config import KeeperConfig
from backtest.engine.dispatch import market_params, simulate
from backtest.kernels.enums import FillPrice, ImpactModel, TriggerPrice
from backtest.kernels.portfolio_enums import AccountKind, PortfolioMetric
from backtest.portfolio import simulate_portfolio
from backtest.portfolio.market import PortfolioMarketParams
from tests.test_portfolio_equivalence import MODES, _aligned, _assert_equivalent, _case
from tests.test_portfolio_equivalence_impact import _assert_fills_equal


def _keepers(rng, book, prices, impact: bool):
    """Random keeper settings (latency, profit with gas, capital), matched in both kernels."""
    steps = len(prices.close)
    latency = int(rng.choice([0, 0, 1, 2, 4]))
    profit = bool(rng.random() < 0.6)
    gross = float(np.sum(np.abs(book.pos_units)) * prices.open[0])
    capital = float(rng.choice([0.0, gross * rng.uniform(0.002, 0.05)]))
    # gas from nothing to a few times a small account's fee
    fee_scale = gross / max(len(book.cash), 1) * 0.01
    gas = fee_scale * rng.uniform(0.0, 3.0) * np.exp(rng.normal(0.0, 0.5, steps))
    model, cascade, permanent, half_life = ImpactModel.NONE, False, 0.5, 30
    depth = np.full(steps, np.nan)
    if impact:
        model = ImpactModel.SQRT
        cascade = bool(rng.random() < 0.5)
        permanent = float(rng.uniform(0.0, 1.0))
        half_life = int(rng.integers(1, 60))
        depth = gross * rng.uniform(0.01, 1.0) * np.exp(rng.normal(0.0, 0.3, steps))
    single = market_params(model, permanent, float(half_life), cascade,
                           keeper_latency_steps=latency, keeper_requires_profit=profit,
                           keeper_capital_usd=capital)
    port_market = PortfolioMarketParams(
        impact_model=model.name.lower(), cascade=cascade, permanent_fraction=permanent,
        transient_half_life_minutes=half_life)
    keepers = KeeperConfig(latency_minutes=float(latency), requires_profit=profit,
                           capital_usd_per_step=capital or None)
    return single, port_market, keepers, gas, depth


def _run_both(prices, book, params, policy, trigger, single_market, port_market, keepers, gas,
              depth):
    product = np.where(book.kind == AccountKind.LENDING, 1, 0).astype(np.int8)
    n = len(book.cash)
    single = simulate(prices, product, book.pos_units, book.cash, policy, int(trigger),
                      int(FillPrice.TRIGGER), insurance_fund_usd=params.insurance_fund_usd,
                      chunk_size=int(params.chunk_size), market=single_market,
                      depth=depth if np.isfinite(depth).all() else None, gas_usd=gas,
                      order=np.arange(n, dtype=np.int64))
    port = simulate_portfolio(_aligned(prices), book, params, market=port_market,
                              depth=depth[:, None], keepers=keepers, gas_usd=gas)
    return single, port


def _keeper_case(seed, mode, n, steps, vol, trigger, fund, impact):
    prices, book, params, policy = _case(seed, mode, n, steps, vol, trigger, fund)
    rng = np.random.default_rng(seed + 2)
    return (prices, book, params, policy, *_keepers(rng, book, prices, impact))


@pytest.mark.parametrize("mode", MODES)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 3), n=st.integers(1, 120), steps=st.integers(1, 50),
       vol=st.floats(0.002, 0.05), trigger=st.sampled_from(list(TriggerPrice)),
       fund=st.sampled_from([0.0, 5.0, 1e6]), impact=st.booleans())
def test_one_asset_portfolio_with_keepers_equals_single_asset(mode, seed, n, steps, vol,
                                                              trigger, fund, impact):
    prices, book, params, policy, sm, pm, keepers, gas, depth = _keeper_case(
        seed, mode, n, steps, vol, trigger, fund, impact)
    single, port = _run_both(prices, book, params, policy, trigger, sm, pm, keepers, gas, depth)
    _assert_equivalent(book, prices, single, port)
    _assert_fills_equal(single, port)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("rule", ["latency", "profit", "capital"])
def test_each_keeper_rule_bites_and_still_agrees(mode, rule):
    """Each rule alone changes the run (fewer or later liquidations than keepers that always
    act) and both kernels still agree."""
    prices, book, params, policy = _case(7, mode, 400, 60, 0.05, TriggerPrice.EXTREME, 0.0)
    steps = len(prices.close)
    gross = float(np.sum(np.abs(book.pos_units)) * prices.open[0])
    gas = np.zeros(steps)
    kw = {}
    if rule == "latency":
        kw = {"keeper_latency_steps": 3}
        keepers = KeeperConfig(latency_minutes=3.0)
    elif rule == "profit":
        gas = np.full(steps, gross / len(book.cash) * 0.005)
        kw = {"keeper_requires_profit": True}
        keepers = KeeperConfig(requires_profit=True)
    else:
        kw = {"keeper_capital_usd": gross * 0.003}
        keepers = KeeperConfig(capital_usd_per_step=gross * 0.003)
    sm = market_params(ImpactModel.NONE, 0.5, 30.0, False, **kw)
    depth = np.full(steps, np.nan)
    single, port = _run_both(prices, book, params, policy, TriggerPrice.EXTREME, sm,
                             PortfolioMarketParams(), keepers, gas, depth)
    _assert_equivalent(book, prices, single, port)
    _assert_fills_equal(single, port)
    plain = simulate_portfolio(_aligned(prices), book, params)
    assert not np.array_equal(plain.first_step, port.first_step) or not np.array_equal(
        plain.book.cash, port.book.cash)
    waited = port.step_metrics[:, PortfolioMetric.N_LIQUIDATABLE].sum() - port.step_metrics[
        :, PortfolioMetric.N_LIQUIDATIONS].sum()
    assert waited > plain.step_metrics[:, PortfolioMetric.N_LIQUIDATABLE].sum() - (
        plain.step_metrics[:, PortfolioMetric.N_LIQUIDATIONS].sum())
