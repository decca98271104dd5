"""Auto-deleveraging per asset in the portfolio kernel (waterfall ADL).

A one-asset portfolio with ``waterfall = "adl"`` equals the single-asset engine with
``Waterfall.ADL`` and the same ranking (the cases of :mod:`tests.test_portfolio_equivalence`,
with impact and cascade on or off): per account, per step (socialised loss included), and the
deleveraged counterparties, their units and transfers. On multi-asset books money is conserved
with the ADL rows: every dollar a counterparty pays covers bad debt, and bad debt is drawn from
the fund, covered by ADL or socialised.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backtest.engine.dispatch import market_params, simulate
from backtest.kernels.enums import (
    AdlRanking,
    FillPrice,
    ImpactModel,
    StepMetric,
    TriggerPrice,
    Waterfall,
)
from backtest.kernels.portfolio_enums import AccountKind, AssetMarketMetric, PortfolioMetric
from backtest.portfolio import simulate_portfolio
from backtest.portfolio.market import PortfolioMarketParams
from tests.portfolio_inputs import random_aligned, random_book, random_params
from tests.test_portfolio_equivalence import MODES, _aligned, _assert_equivalent, _case

RANKINGS = ("binance", "bitmex", "hyperliquid", "dydx")


def _run_both(seed, mode, n, steps, vol, trigger, ranking, impact):
    prices, book, params, policy = _case(seed, mode, n, steps, vol, trigger, 0.0)
    policy["waterfall"] = Waterfall.ADL
    policy["adl_ranking"] = AdlRanking[ranking.upper()]
    rng = np.random.default_rng(seed + 2)
    adl_seed = int(rng.integers(0, 1000))
    model = "sqrt" if impact else "none"
    depth = np.full(steps, float(np.sum(np.abs(book.pos_units)) * prices.open[0]) * 0.2)
    single_market = market_params(ImpactModel[model.upper()], 0.5, 10.0, impact, seed=adl_seed)
    port_market = PortfolioMarketParams(impact_model=model, cascade=impact,
                                        transient_half_life_minutes=10, waterfall="adl",
                                        adl_ranking=ranking, seed=adl_seed)
    product = np.where(book.kind == AccountKind.LENDING, 1, 0).astype(np.int8)
    single = simulate(prices, product, book.pos_units, book.cash, policy, int(trigger),
                      int(FillPrice.TRIGGER), chunk_size=int(params.chunk_size),
                      market=single_market, depth=depth)
    port = simulate_portfolio(_aligned(prices), book, params, market=port_market,
                              depth=depth[:, None])
    return prices, book, single, port


def _assert_adl_equal(book, prices, single, port):
    _assert_equivalent(book, prices, single, port)
    a = single.adl_records
    b = port.adl
    assert len(a) == b.height
    np.testing.assert_array_equal(b["step"].to_numpy(), a["step"])
    np.testing.assert_array_equal(b["account"].to_numpy(), a["account"])
    scale = np.abs(book.cash).sum() + 1.0
    np.testing.assert_allclose(b["units_closed"].to_numpy(), a["units_closed"], rtol=1e-9,
                               atol=1e-12)
    np.testing.assert_allclose(b["transfer"].to_numpy(), a["transfer"], rtol=1e-9,
                               atol=1e-9 * scale)
    sm = single.step_metrics
    np.testing.assert_allclose(port.market_metrics[:, 0, AssetMarketMetric.ADL_TRANSFER],
                               sm[:, StepMetric.ADL_TRANSFER], rtol=1e-9, atol=1e-9 * scale)


@pytest.mark.parametrize("ranking", RANKINGS)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 3), mode=st.sampled_from(MODES), n=st.integers(1, 150),
       steps=st.integers(1, 50), vol=st.floats(0.01, 0.06),
       trigger=st.sampled_from(list(TriggerPrice)), impact=st.booleans())
def test_one_asset_adl_equals_single_asset(ranking, seed, mode, n, steps, vol, trigger, impact):
    prices, book, single, port = _run_both(seed, mode, n, steps, vol, trigger, ranking, impact)
    _assert_adl_equal(book, prices, single, port)


@pytest.mark.parametrize("ranking", RANKINGS)
def test_adl_is_not_vacuous(ranking):
    prices, book, single, port = _run_both(8, "hard", 400, 60, 0.05, TriggerPrice.EXTREME,
                                           ranking, False)
    _assert_adl_equal(book, prices, single, port)
    assert port.adl.height > 0 and port.adl["transfer"].sum() > 0
    # the counterparties are on the other side of the bankrupt ones, and were perps
    assert np.all(book.kind[port.adl["account"].to_numpy()] != AccountKind.LENDING)


def _assert_conserved_with_adl(book, res, rel=1e-9):
    """Cash and units of every account are its liquidation records plus its ADL rows; bad
    debt is drawn from the fund, covered by ADL or socialised."""
    n = book.n_accounts
    rec, adl = res.records, res.adl
    acct, adl_acct = rec["account"].to_numpy(), adl["account"].to_numpy()
    cash = (book.cash
            + np.bincount(acct, weights=(rec["units_closed"] * rec["fill_price"]
                                         - rec["keeper_fee"] - rec["insurance_fee"]
                                         + rec["bad_debt"]).to_numpy(), minlength=n)
            + np.bincount(adl_acct, weights=(adl["units_closed"] * adl["price"]
                                             - adl["transfer"]).to_numpy(), minlength=n))
    gross = (np.abs(book.cash) + np.bincount(acct, weights=rec["notional"].to_numpy(),
                                             minlength=n)
             + np.bincount(adl_acct, weights=(adl["units_closed"].abs()
                                              * adl["price"]).to_numpy(), minlength=n))
    assert np.all(np.abs(res.book.cash - cash) <= rel * gross + 1e-9)
    units = book.pos_units.copy()
    pos_key = book.account_of_position() * 16 + book.pos_asset
    by_key = np.argsort(pos_key)
    for frame in (rec, adl):
        key = frame["account"].to_numpy() * 16 + frame["asset"].to_numpy()
        idx = by_key[np.searchsorted(pos_key[by_key], key)]
        np.subtract.at(units, idx, frame["units_closed"].to_numpy())
    assert np.allclose(units, res.book.pos_units, rtol=rel, atol=1e-12)
    sm, M = res.step_metrics, PortfolioMetric
    covered = res.market_metrics[:, :, AssetMarketMetric.ADL_TRANSFER].sum(axis=1)
    by_step = np.bincount(adl["step"].to_numpy(), weights=adl["transfer"].to_numpy(),
                          minlength=sm.shape[0])
    scale = rec["notional"].sum() + np.abs(book.cash).sum() + 1.0
    np.testing.assert_allclose(covered, by_step, rtol=0, atol=rel * scale)
    np.testing.assert_allclose(res.insurance_draw + res.socialised_loss + covered,
                               sm[:, M.BAD_DEBT], rtol=0, atol=rel * scale)
    assert np.all(adl["transfer"].to_numpy() >= 0.0)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 150), steps=st.integers(1, 40),
       crash=st.floats(0.02, 1.2), ranking=st.sampled_from(RANKINGS), impact=st.booleans())
def test_money_conserved_with_adl(seed, n, steps, crash, ranking, impact):
    rng = np.random.default_rng(seed)
    aligned = random_aligned(rng, steps, crash=crash)
    params = random_params(rng, None, insurance_fund_usd=float(rng.choice([0.0, 50.0])))
    book = random_book(rng, n, risk=params.asset_risk(aligned.symbols))
    market = PortfolioMarketParams(
        impact_model="sqrt" if impact else "none", cascade=impact, waterfall="adl",
        adl_ranking=ranking, depth_usd={"LUNA": 1e5, "BTC": 3e5, "ETH": 2e5, "SOL": 1e5})
    res = simulate_portfolio(aligned, book, params, market=market)
    _assert_conserved_with_adl(book, res)


def _reference(aligned, book, params, market):
    from backtest.kernels.portfolio_reference import simulate_portfolio_reference
    from backtest.portfolio.market import portfolio_market
    from backtest.portfolio.simulate import sensitivity_of

    mkt = portfolio_market(market, aligned.open, aligned.symbols, aligned.interval_seconds)
    return simulate_portfolio_reference(
        aligned.low, aligned.high, aligned.close, sensitivity_of(aligned),
        params.asset_risk(aligned.symbols), params.policy_record()[0], book.kind, book.offsets,
        book.pos_asset, book.pos_units, book.cash, params.insurance_fund_usd,
        market=mkt.market[0], depth=mkt.depth, open_=aligned.open, waterfall=Waterfall.ADL,
        adl_ranking=AdlRanking[market.adl_ranking.upper()])


def _multi_asset_case(seed, n, steps, crash, ranking, impact):
    rng = np.random.default_rng(seed)
    aligned = random_aligned(rng, steps, crash=crash)
    params = random_params(rng, None, insurance_fund_usd=float(rng.choice([0.0, 50.0])))
    book = random_book(rng, n, risk=params.asset_risk(aligned.symbols))
    market = PortfolioMarketParams(
        impact_model="sqrt" if impact else "none", cascade=impact, waterfall="adl",
        adl_ranking=ranking, seed=int(rng.integers(0, 100)),
        depth_usd={"LUNA": 1e5, "BTC": 3e5, "ETH": 2e5, "SOL": 1e5})
    return aligned, book, params, market


@pytest.mark.parametrize("ranking", RANKINGS)
def test_multi_asset_adl_matches_reference(ranking):
    import polars as pl

    aligned, book, params, market = _multi_asset_case(3, 300, 30, 0.5, ranking, True)
    res = simulate_portfolio(aligned, book, params, market=market)
    ref = _reference(aligned, book, params, market)
    assert res.adl.height == len(ref.adl_records) > 0
    adl = pl.DataFrame(ref.adl_records)
    for col in ("step", "account", "asset"):
        np.testing.assert_array_equal(res.adl[col].to_numpy(), adl[col].to_numpy())
    for col in ("units_closed", "price", "transfer"):
        np.testing.assert_allclose(res.adl[col].to_numpy(), adl[col].to_numpy(), rtol=1e-9,
                                   atol=1e-7)
    np.testing.assert_allclose(res.book.pos_units, ref.pos_units, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(res.book.cash, ref.cash, rtol=1e-9, atol=1e-7)
    np.testing.assert_allclose(res.step_metrics, ref.step_metrics, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(res.market_metrics, ref.market_metrics, rtol=1e-9, atol=1e-6)
    _assert_conserved_with_adl(book, res)
