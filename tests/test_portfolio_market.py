"""Per-asset market impact, cascade feedback and oracles of the portfolio kernel.

The kernel against its reference twin with every impact model, cascade on and off and every
oracle; the default market reproduces the results of the kernel before the market existed bit
for bit (hashes taken on ``main`` before the change); money is conserved with impact on; results
are bit-identical at 1 and 2 threads; config errors name the field.
"""

from __future__ import annotations

import hashlib

import numba
import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backtest.errors import ConfigError
from backtest.kernels.portfolio_enums import AssetMarketMetric
from backtest.kernels.portfolio_reference import simulate_portfolio_reference
from backtest.portfolio import simulate_portfolio
from backtest.portfolio.market import PortfolioMarketParams, portfolio_market
from backtest.portfolio.simulate import sensitivity_of
from tests.portfolio_inputs import random_aligned, random_book, random_params
from tests.test_portfolio_kernel import ORDERS, _assert_conserved, _case

DEPTHS = {"LUNA": 2e5, "BTC": 5e5, "ETH": 3e5, "SOL": 1e5}
ORACLES = ("market", "lagged", "twap", "chainlink", "osm")

#: sha256 of the outputs of :func:`_snapshot_digest`'s runs, taken with the kernel before it had
#: a market (commit 78d19a2), and the liquidations of each run.
BEFORE = {
    1: ("c8e52f0ea039557f35d56b0a2b50764af224cb4e0bb192062a6fd52181d956f5", 2311),
    2: ("185a38b2a67aed7249bc449200ed6a2db99201097c38955ba5dee00d465fb257", 1367),
    3: ("29f73f33d7c934e9ad970508b332412e004c6e8c1d066447b058e187f269d927", 586),
    4: ("4b8f292b85a96e7a052f52d72e13a63cf2a50cc262220beca6b36d01eae5ec9f", 703),
}


def _digest(res) -> str:
    h = hashlib.sha256()
    for a in (res.book.pos_units, res.book.cash, res.n_liquidations, res.first_step,
              res.penalties_paid, res.bad_debt, res.liquidated_notional, res.step_metrics,
              res.asset_metrics):
        h.update(np.ascontiguousarray(a).tobytes())
    for c in res.records.columns:
        if c != "symbol":
            h.update(res.records[c].to_numpy().tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("seed", sorted(BEFORE))
def test_default_market_is_bit_identical_to_the_kernel_before_it(seed):
    rng = np.random.default_rng(seed)
    aligned = random_aligned(rng, steps=40)
    book = random_book(rng, 400)
    params = random_params(rng, insurance_fund_usd=float(rng.choice([0.0, 1e4])))
    res = simulate_portfolio(aligned, book, params)
    assert (_digest(res), int(res.n_liquidations.sum())) == BEFORE[seed]
    # an explicit market without impact or oracle is the same run
    same = simulate_portfolio(aligned, book, params, market=PortfolioMarketParams(
        depth_usd=DEPTHS, permanent_fraction=0.2))
    assert _digest(same) == BEFORE[seed][0]
    mm = res.market_metrics
    assert np.all(mm[:, :, AssetMarketMetric.PRICE_FACTOR] == 1.0)
    assert np.all(mm[:, :, AssetMarketMetric.EXECUTION_FACTOR] == 1.0)
    np.testing.assert_array_equal(mm[:, :, AssetMarketMetric.ORACLE_PRICE], aligned.close)


def _market(rng, impact=None, oracle=None, cascade=None) -> PortfolioMarketParams:
    return PortfolioMarketParams(
        impact_model=impact or str(rng.choice(["none", "linear", "sqrt", "amm"])),
        cascade=bool(rng.random() < 0.5) if cascade is None else cascade,
        depth_usd={k: v * float(rng.uniform(0.1, 3.0)) for k, v in DEPTHS.items()},
        permanent_fraction=float(rng.uniform(0, 1)),
        transient_half_life_minutes=float(rng.uniform(30, 600)),
        oracle={"model": oracle or str(rng.choice(ORACLES)),
                "lag_minutes": float(rng.uniform(30, 200)),
                "twap_minutes": float(rng.uniform(30, 300)),
                "deviation": float(rng.uniform(0.001, 0.05)),
                "heartbeat_minutes": float(rng.uniform(60, 400))})


def _reference(aligned, book, params, market):
    mkt = portfolio_market(market, aligned.open, aligned.symbols, aligned.interval_seconds)
    return simulate_portfolio_reference(
        aligned.low, aligned.high, aligned.close, sensitivity_of(aligned),
        params.asset_risk(aligned.symbols), params.policy_record()[0], book.kind, book.offsets,
        book.pos_asset, book.pos_units, book.cash, params.insurance_fund_usd,
        market=mkt.market[0], depth=mkt.depth, open_=aligned.open)


def _assert_matches_reference(res, ref):
    assert res.records.height == len(ref.records)
    np.testing.assert_allclose(res.book.pos_units, ref.pos_units, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(res.book.cash, ref.cash, rtol=1e-9, atol=1e-7)
    np.testing.assert_array_equal(res.n_liquidations, ref.n_liquidations)
    np.testing.assert_array_equal(res.first_step, ref.first_step)
    np.testing.assert_allclose(res.bad_debt, ref.bad_debt, rtol=1e-9, atol=1e-7)
    np.testing.assert_allclose(res.step_metrics, ref.step_metrics, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(res.asset_metrics, ref.asset_metrics, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(res.market_metrics, ref.market_metrics, rtol=1e-9, atol=1e-6)
    if len(ref.records):
        rec = pl.DataFrame(ref.records)
        for col in ("step", "account", "asset"):
            np.testing.assert_array_equal(res.records[col].to_numpy(), rec[col].to_numpy())
        for col in ("units_closed", "fill_price", "keeper_fee", "insurance_fee", "bad_debt",
                    "health_before", "debt_repaid"):
            np.testing.assert_allclose(res.records[col].to_numpy(), rec[col].to_numpy(),
                                       rtol=1e-9, atol=1e-7, err_msg=col)


@pytest.mark.parametrize("impact", ["linear", "sqrt", "amm"])
@pytest.mark.parametrize("order", ORDERS)
def test_kernel_matches_reference_with_impact_and_cascade(impact, order):
    aligned, book, params = _case(21, order, insurance_fund_usd=50.0)
    market = _market(np.random.default_rng(3), impact, "market", cascade=True)
    res = simulate_portfolio(aligned, book, params, market=market)
    _assert_matches_reference(res, _reference(aligned, book, params, market))
    mm = res.market_metrics
    assert mm[:, :, AssetMarketMetric.PRICE_FACTOR].min() < 0.999  # not vacuous
    assert np.abs(mm[:, :, AssetMarketMetric.NET_FLOW]).max() > 0


@pytest.mark.parametrize("oracle", ORACLES[1:])
def test_kernel_matches_reference_with_oracle(oracle):
    aligned, book, params = _case(22, None)
    market = _market(np.random.default_rng(4), "sqrt", oracle, cascade=True)
    res = simulate_portfolio(aligned, book, params, market=market)
    _assert_matches_reference(res, _reference(aligned, book, params, market))
    # the triggers read the oracle, not the close
    mm = res.market_metrics
    assert not np.allclose(mm[:, :, AssetMarketMetric.ORACLE_PRICE],
                           aligned.close * mm[:, :, AssetMarketMetric.PRICE_FACTOR])


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 120), steps=st.integers(1, 30),
       crash=st.floats(0.05, 1.2), fund=st.sampled_from([0.0, 50.0, 1e6]))
def test_kernel_matches_reference_on_random_inputs(seed, n, steps, crash, fund):
    rng = np.random.default_rng(seed)
    aligned = random_aligned(rng, steps, crash=crash)
    params = random_params(rng, None, insurance_fund_usd=fund)
    book = random_book(rng, n, risk=params.asset_risk(aligned.symbols))
    market = _market(rng)
    res = simulate_portfolio(aligned, book, params, market=market)
    _assert_matches_reference(res, _reference(aligned, book, params, market))
    _assert_conserved(book, res)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), order=st.sampled_from(ORDERS),
       n=st.integers(1, 150), steps=st.integers(1, 40), crash=st.floats(0.02, 1.2),
       fund=st.sampled_from([0.0, 50.0, 1e6]))
def test_money_conserved_with_impact(seed, order, n, steps, crash, fund):
    """Every dollar leaving an account arrives at the market (at the fill price), the keeper,
    the insurance fund or is written off as bad debt, with impact and cascade on."""
    rng = np.random.default_rng(seed)
    aligned = random_aligned(rng, steps, crash=crash)
    params = random_params(rng, order, insurance_fund_usd=fund)
    book = random_book(rng, n, risk=params.asset_risk(aligned.symbols))
    market = _market(rng, str(rng.choice(["linear", "sqrt", "amm"])), cascade=True)
    res = simulate_portfolio(aligned, book, params, market=market)
    _assert_conserved(book, res)
    # the impact cost is what the fills gave up against the decision prices
    mm = res.market_metrics
    assert np.all(mm[:, :, AssetMarketMetric.EXECUTION_FACTOR] > 0)


def test_bit_identical_across_thread_counts_with_market():
    aligned, book, params = _case(5, "proportional", n=2000, chunk_size=37)
    market = _market(np.random.default_rng(9), "sqrt", "chainlink", cascade=True).model_copy(
        update={"waterfall": "adl"})
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = simulate_portfolio(aligned, book, params, market=market)
        numba.set_num_threads(max(before, 2))
        many = simulate_portfolio(aligned, book, params, market=market)
    finally:
        numba.set_num_threads(before)
    assert one.records.equals(many.records) and one.adl.equals(many.adl)
    for a, b in ((one.step_metrics, many.step_metrics), (one.asset_metrics, many.asset_metrics),
                 (one.market_metrics, many.market_metrics), (one.book.cash, many.book.cash)):
        np.testing.assert_array_equal(a, b)
    assert one.market_metrics[:, :, AssetMarketMetric.PRICE_FACTOR].min() < 1.0


def test_record_buffer_flush_with_market(monkeypatch):
    """A step restarted after a record-buffer flush opens its market again identically."""
    aligned, book, params = _case(3, "largest")
    market = _market(np.random.default_rng(5), "linear", "chainlink", cascade=True)
    full = simulate_portfolio(aligned, book, params, market=market)
    import backtest.portfolio.simulate as sim

    monkeypatch.setattr(sim, "INITIAL_RECORDS", 4)
    small = simulate_portfolio(aligned, book, params, market=market)
    assert small.records.equals(full.records)
    np.testing.assert_array_equal(small.market_metrics, full.market_metrics)


def test_missing_depth_names_the_asset():
    aligned, book, params = _case(0)
    with pytest.raises(ConfigError, match="SOL"):
        simulate_portfolio(aligned, book, params, market=PortfolioMarketParams(
            impact_model="sqrt", depth_usd={"LUNA": 1e5, "BTC": 1e5, "ETH": 1e5}))
    with pytest.raises(ConfigError, match="shape"):
        simulate_portfolio(aligned, book, params, market=PortfolioMarketParams(
            impact_model="sqrt"), depth=np.ones((3, 4)))


def test_mark_oracle_and_bad_depth_are_refused():
    with pytest.raises(ValueError, match="mark"):
        PortfolioMarketParams(oracle={"model": "mark"})
    with pytest.raises(ValueError, match="depth_usd"):
        PortfolioMarketParams(depth_usd={"BTC": 0.0})


def test_lagged_oracle_triggers_on_the_previous_close():
    """With a one-step lagged oracle an account is flagged on the previous step's close: a
    perp long that the step's low would liquidate survives the step."""
    aligned, book, params = _case(30, "protocol", n=300)
    lagged = simulate_portfolio(aligned, book, params, market=PortfolioMarketParams(
        oracle={"model": "lagged", "lag_minutes": 60}))
    mm = lagged.market_metrics
    np.testing.assert_array_equal(mm[1:, :, AssetMarketMetric.ORACLE_PRICE], aligned.close[:-1])
    np.testing.assert_array_equal(mm[0, :, AssetMarketMetric.ORACLE_PRICE], aligned.open[0])
    # liquidations decided on the lagged close fill at the step's close
    rec = lagged.records
    np.testing.assert_array_equal(
        rec["fill_price"].to_numpy(),
        aligned.close[rec["step"].to_numpy(), rec["asset"].to_numpy()])


def test_osm_publishes_each_hourly_reading_an_hour_later():
    """Maker's OSM: the close before each hop boundary (counted from the window start) is the
    price for the whole next hop, so the oracle is a step function an hour behind, and a wick
    between two readings is never seen (on hourly candles the hop is one step: the close two
    steps back, the window's first open before that)."""
    aligned, book, params = _case(30, "protocol", n=300)
    osm = simulate_portfolio(aligned, book, params, market=PortfolioMarketParams(
        oracle={"model": "osm"}))
    seen = osm.market_metrics[:, :, AssetMarketMetric.ORACLE_PRICE]
    np.testing.assert_array_equal(seen[2:], aligned.close[:-2])
    np.testing.assert_array_equal(seen[:2], np.broadcast_to(aligned.open[0], seen[:2].shape))


def test_run_config_market_section_end_to_end(tmp_path):
    """``[portfolio.market]`` in a run config: validated, simulated, written as a table."""
    from backtest.portfolio.pipeline import load_run_tables, run_portfolio_config
    from backtest.portfolio.run_config import load_portfolio_config
    from tests.test_portfolio_run import CONFIG, make_portfolio_world

    base = CONFIG[:CONFIG.index("[options]")] + CONFIG[CONFIG.index("[liquidation_at_risk]"):]
    base = base.replace("accounts = 400", "accounts = 300")
    market = ('\n[portfolio.market]\nimpact_model = "sqrt"\ncascade = true\n'
              'depth_usd = {BTC = 2e5, ETH = 1e5}\nwaterfall = "adl"\n')
    world = make_portfolio_world(tmp_path, base.replace("[liquidation_at_risk]",
                                                        market + "\n[liquidation_at_risk]"))
    cfg = load_portfolio_config(world["config"])
    assert cfg.portfolio.market.impact_model == "sqrt" and cfg.portfolio.market.cascade
    kw = {"store": world["store"], "events": world["events"]}
    _, run_dir, _ = run_portfolio_config(cfg, runs=tmp_path / "runs", **kw)
    _, tables = load_run_tables(run_dir)
    m = tables["portfolio_market"]
    assert set(m["order"].unique()) == set(cfg.portfolio.orders)
    assert m["price_factor"].min() < 1.0 and m["execution_factor"].min() < 1.0
    assert set(tables["portfolio_adl"].columns) >= {"order", "account", "transfer"}
    # without the section the run has no market table and other fills
    plain = load_portfolio_config(world["config"], ["portfolio.market.impact_model=none",
                                                    "portfolio.market.waterfall=socialise"])
    _, plain_dir, _ = run_portfolio_config(plain, runs=tmp_path / "plain", **kw)
    _, plain_tables = load_run_tables(plain_dir)
    assert "portfolio_market" not in plain_tables and "portfolio_adl" not in plain_tables
    assert not plain_tables["liquidations"]["fill_price"].equals(
        tables["liquidations"]["fill_price"])
    bad = tmp_path / "bad.toml"
    bad.write_text(base + '\n[portfolio.market]\nimpact_modle = "sqrt"\n')
    with pytest.raises(ConfigError, match="portfolio.market.impact_modle"):
        load_portfolio_config(bad)


def test_accounts_value_final_positions_at_the_simulated_and_historical_close():
    """The accounts table values what is left at each asset's simulated last close
    (``final_equity_usd``) and at the historical one (``final_equity_historical_usd``, the price
    of the no-liquidation equity): never-liquidated accounts lose nothing to liquidation, and
    the difference is the end price's effect on the positions left."""
    from backtest.portfolio.tables import account_equity, portfolio_accounts

    aligned, book, params = _case(5, "proportional", n=2000, chunk_size=37)
    market = _market(np.random.default_rng(9), "sqrt", "chainlink", cascade=True)
    res = simulate_portfolio(aligned, book, params, market=market)
    factor = res.market_metrics[-1, :, AssetMarketMetric.PRICE_FACTOR]
    assert np.abs(factor - 1.0).max() > 1e-3  # the run moved the end price
    first, last = aligned.open[0], aligned.close[-1]
    acc = portfolio_accounts("r", "proportional", res, book, first, last)
    np.testing.assert_allclose(acc["final_equity_usd"].to_numpy(),
                               account_equity(res.book, last * factor), rtol=1e-12)
    np.testing.assert_allclose(acc["final_equity_historical_usd"].to_numpy(),
                               account_equity(res.book, last), rtol=1e-12)
    untouched = acc.filter(pl.col("liquidations") == 0)
    assert len(untouched) > 100
    np.testing.assert_allclose(untouched["hold_equity_usd"].to_numpy(),
                               untouched["final_equity_historical_usd"].clip(0.0).to_numpy(),
                               rtol=1e-9, atol=1e-6)
    moved = (untouched["final_equity_usd"] - untouched["final_equity_historical_usd"]).abs()
    assert moved.max() > 1.0
