"""Keepers of the portfolio kernel: latency per account, gas per record, capital per asset.

The kernel against its reference twin (:mod:`backtest.kernels.portfolio_reference`, which
restates the rules on its own) on random multi-asset books with keepers on, with and without
market impact and oracles; money conserved with keepers on; bit-identical at 1 and 2 threads and
after a record-buffer flush; each rule changes the run; defaults leave it unchanged; config
errors name the field. The one-asset equivalence with the single-asset engine is
:mod:`tests.test_portfolio_equivalence_keepers`.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backtest.engine.config import KeeperConfig
from backtest.errors import ConfigError
from backtest.kernels.portfolio_enums import PortfolioMetric
from backtest.kernels.portfolio_reference import simulate_portfolio_reference
from backtest.portfolio import simulate_portfolio
from backtest.portfolio.market import portfolio_keepers, portfolio_market
from backtest.portfolio.simulate import sensitivity_of
from tests.portfolio_inputs import random_aligned, random_book, random_params
from tests.test_portfolio_kernel import ORDERS, _assert_conserved, _case
from tests.test_portfolio_market import _assert_matches_reference, _market

M = PortfolioMetric


def _keepers(rng, aligned, book, latency=None, profit=None, capital=None):
    """Random keepers (hours of latency, profit with a gas per step, capital per asset)."""
    steps = aligned.n_steps
    gross = float(np.sum(np.abs(book.pos_units) * aligned.open[0][book.pos_asset]))
    latency = int(rng.choice([0, 1, 2, 3])) if latency is None else latency
    profit = bool(rng.random() < 0.6) if profit is None else profit
    if capital is None:
        capital = float(rng.choice([0.0, gross * rng.uniform(0.002, 0.05)]))
    gas = rng.uniform(0.0, 150.0) * np.exp(rng.normal(0.0, 0.5, steps))
    cfg = KeeperConfig(latency_minutes=60.0 * latency, requires_profit=profit,
                       capital_usd_per_step=capital or None)
    ref = {"latency": latency, "requires_profit": profit, "capital_usd": capital, "gas": gas}
    return cfg, gas, ref


def _reference(aligned, book, params, market, keepers):
    mkt = portfolio_market(market, aligned.open, aligned.symbols, aligned.interval_seconds)
    return simulate_portfolio_reference(
        aligned.low, aligned.high, aligned.close, sensitivity_of(aligned),
        params.asset_risk(aligned.symbols), params.policy_record()[0], book.kind, book.offsets,
        book.pos_asset, book.pos_units, book.cash, params.insurance_fund_usd,
        market=mkt.market[0], depth=mkt.depth, open_=aligned.open, keepers=keepers)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 120), steps=st.integers(1, 30),
       crash=st.floats(0.05, 1.2), fund=st.sampled_from([0.0, 50.0, 1e6]),
       with_market=st.booleans())
def test_kernel_matches_reference_with_keepers(seed, n, steps, crash, fund, with_market):
    rng = np.random.default_rng(seed)
    aligned = random_aligned(rng, steps, crash=crash)
    params = random_params(rng, None, insurance_fund_usd=fund)
    book = random_book(rng, n, risk=params.asset_risk(aligned.symbols))
    market = _market(rng) if with_market else None
    cfg, gas, ref_keepers = _keepers(rng, aligned, book)
    res = simulate_portfolio(aligned, book, params, market=market, keepers=cfg, gas_usd=gas)
    _assert_matches_reference(res, _reference(aligned, book, params, market, ref_keepers))
    _assert_conserved(book, res)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("rule", ["latency", "profit", "capital", "all"])
def test_each_rule_bites_and_matches_reference(order, rule):
    """Each rule changes the run against keepers that always act, leaves some liquidatable
    accounts waiting, and the kernel still equals its twin (with impact and cascade on)."""
    aligned, book, params = _case(31, order, n=300, steps=40, insurance_fund_usd=50.0)
    rng = np.random.default_rng(8)
    gross = float(np.sum(np.abs(book.pos_units) * aligned.open[0][book.pos_asset]))
    settings_ = {"latency": dict(latency=2, profit=False, capital=0.0),
                 "profit": dict(latency=0, profit=True, capital=0.0),
                 "capital": dict(latency=0, profit=False, capital=gross * 0.004),
                 "all": dict(latency=1, profit=True, capital=gross * 0.01)}[rule]
    cfg, gas, ref_keepers = _keepers(rng, aligned, book, **settings_)
    market = _market(np.random.default_rng(3), "sqrt", "market", cascade=True)
    res = simulate_portfolio(aligned, book, params, market=market, keepers=cfg, gas_usd=gas)
    _assert_matches_reference(res, _reference(aligned, book, params, market, ref_keepers))
    _assert_conserved(book, res)
    plain = simulate_portfolio(aligned, book, params, market=market)
    sm, pm = res.step_metrics, plain.step_metrics
    waiting = sm[:, M.N_LIQUIDATABLE].sum() - sm[:, M.N_LIQUIDATIONS].sum()
    assert waiting > pm[:, M.N_LIQUIDATABLE].sum() - pm[:, M.N_LIQUIDATIONS].sum()
    assert not np.array_equal(res.book.cash, plain.book.cash)
    if rule == "capital":  # no step liquidates more than the keepers' capital of any asset
        closes = aligned.close * res.market_metrics[:, :, 0]
        per_step = np.zeros(aligned.close.shape)
        rec = res.records
        np.add.at(per_step, (rec["step"].to_numpy(), rec["asset"].to_numpy()),
                  np.abs(rec["units_closed"].to_numpy()))
        assert np.all(per_step * closes <= gross * 0.004 * (1 + 1e-9))
        assert (per_step * closes > gross * 0.004 * 0.99).any()  # the budget binds


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), order=st.sampled_from(ORDERS),
       n=st.integers(1, 150), steps=st.integers(1, 40), crash=st.floats(0.02, 1.2),
       fund=st.sampled_from([0.0, 50.0, 1e6]))
def test_money_conserved_with_keepers(seed, order, n, steps, crash, fund):
    """With latency, gas and capital (and impact) on, every dollar leaving an account is at
    the market, with the keeper, in the insurance fund or written off."""
    rng = np.random.default_rng(seed)
    aligned = random_aligned(rng, steps, crash=crash)
    params = random_params(rng, order, insurance_fund_usd=fund)
    book = random_book(rng, n, risk=params.asset_risk(aligned.symbols))
    market = _market(rng, str(rng.choice(["none", "sqrt"])), "market", cascade=True)
    cfg, gas, _ = _keepers(rng, aligned, book)
    res = simulate_portfolio(aligned, book, params, market=market, keepers=cfg, gas_usd=gas)
    _assert_conserved(book, res)


def test_bit_identical_across_thread_counts_with_keepers():
    aligned, book, params = _case(5, "protocol", n=2000, chunk_size=37)
    rng = np.random.default_rng(4)
    gross = float(np.sum(np.abs(book.pos_units) * aligned.open[0][book.pos_asset]))
    cfg, gas, _ = _keepers(rng, aligned, book, latency=1, profit=True, capital=gross * 0.003)
    market = _market(np.random.default_rng(9), "sqrt", "market", cascade=True)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = simulate_portfolio(aligned, book, params, market=market, keepers=cfg, gas_usd=gas)
        numba.set_num_threads(max(before, 2))
        many = simulate_portfolio(aligned, book, params, market=market, keepers=cfg,
                                  gas_usd=gas)
    finally:
        numba.set_num_threads(before)
    assert one.records.equals(many.records) and one.records.height > 0
    for a, b in ((one.step_metrics, many.step_metrics), (one.asset_metrics, many.asset_metrics),
                 (one.market_metrics, many.market_metrics), (one.book.cash, many.book.cash)):
        np.testing.assert_array_equal(a, b)


def test_record_buffer_flush_with_keepers(monkeypatch):
    """A step restarted after a record-buffer flush decides its keepers again identically."""
    aligned, book, params = _case(3, "largest")
    rng = np.random.default_rng(6)
    gross = float(np.sum(np.abs(book.pos_units) * aligned.open[0][book.pos_asset]))
    cfg, gas, _ = _keepers(rng, aligned, book, latency=1, profit=True, capital=gross * 0.01)
    full = simulate_portfolio(aligned, book, params, keepers=cfg, gas_usd=gas)
    import backtest.portfolio.simulate as sim

    monkeypatch.setattr(sim, "INITIAL_RECORDS", 4)
    small = simulate_portfolio(aligned, book, params, keepers=cfg, gas_usd=gas)
    assert small.records.equals(full.records) and full.records.height > 4
    np.testing.assert_array_equal(small.step_metrics, full.step_metrics)


def test_default_keepers_are_the_run_without_keepers():
    """``KeeperConfig()`` (no latency, no profit rule, no capital limit) changes nothing."""
    aligned, book, params = _case(11, "proportional")
    market = _market(np.random.default_rng(2), "linear", "twap", cascade=True)
    a = simulate_portfolio(aligned, book, params, market=market)
    b = simulate_portfolio(aligned, book, params, market=market, keepers=KeeperConfig())
    assert a.records.equals(b.records)
    np.testing.assert_array_equal(a.step_metrics, b.step_metrics)


def test_gas_needs_an_eth_price():
    """A gas price with no ETH asset and no ``eth_price_usd`` is refused, naming the field."""
    rng = np.random.default_rng(1)
    aligned = random_aligned(rng, 10, n_assets=2)  # LUNA, BTC: no ETH to price gas in
    params = random_params(rng)
    book = random_book(rng, 20, n_assets=2, risk=params.asset_risk(aligned.symbols))
    with pytest.raises(ConfigError, match="eth_price_usd"):
        simulate_portfolio(aligned, book, params, keepers=KeeperConfig(
            requires_profit=True, gas_price_gwei=30.0))
    res = simulate_portfolio(aligned, book, params, keepers=KeeperConfig(
        requires_profit=True, gas_price_gwei=30.0, eth_price_usd=2000.0))
    assert res.step_metrics.shape[0] == 10
    with pytest.raises(ConfigError, match="gas_usd"):
        simulate_portfolio(aligned, book, params, gas_usd=np.zeros(3))


def test_gas_is_priced_in_the_eth_asset():
    """With ETH among the assets, gas is ``gas_units x gwei x 1e-9 x`` ETH's close."""
    aligned = random_aligned(np.random.default_rng(2), 12)
    keep = portfolio_keepers(KeeperConfig(gas_price_gwei=20.0, gas_units=300_000.0),
                             aligned.timestamp, aligned.close, aligned.symbols,
                             aligned.interval_seconds, 5)
    eth = list(aligned.symbols).index("ETH/USDT")
    np.testing.assert_allclose(keep.gas, 300_000.0 * 20.0 * 1e-9 * aligned.close[:, eth])
    assert keep.flagged.size == 0 and keep.latency == 0
    keep = portfolio_keepers(KeeperConfig(latency_minutes=90.0), aligned.timestamp,
                             aligned.close, aligned.symbols, aligned.interval_seconds, 5)
    assert keep.latency == 2 and keep.flagged.tolist() == [-1] * 5
