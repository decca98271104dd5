"""Liquidation-at-risk: kernels against their twins, against the engine, and the heat map."""

from __future__ import annotations

import numba
import numpy as np
import polars as pl
import pytest

from backtest.engine.dispatch import Prices, simulate
from backtest.kernels.enums import POLICY_DTYPE, FillPrice, PolicyFamily, TriggerPrice
from backtest.kernels.lar_reference import options_lar_reference, perp_lar_reference
from backtest.options.params import OptionsParams, pack_options_params
from backtest.options.simulate import simulate_options
from backtest.report.risk_figures import liquidation_map_figure
from backtest.risk import (
    LarRecorder,
    default_shocks,
    liquidation_map,
    liquidation_map_for_policy,
    liquidation_map_frame,
    options_liquidation_map,
)
from tests.kernel_inputs import random_book
from tests.options_inputs import random_book as random_options_book
from tests.options_inputs import random_market


@pytest.mark.parametrize("seed", range(5))
def test_perp_lar_matches_reference(seed):
    rng = np.random.default_rng(seed)
    book = random_book(rng, 700)
    # some unlevered longs, shorts with no cash, zero positions
    book["cash"][:20] = np.abs(book["cash"][:20])
    book["units"][20:30] = 0.0
    m = np.array([rng.uniform(0.002, 0.05), rng.uniform(0.1, 0.4)])
    pen = np.array([rng.uniform(0, 0.02), rng.uniform(0, 0.1)])
    share = float(rng.uniform(0, 1))
    shocks = np.sort(rng.uniform(-0.5, 0.5, int(rng.integers(1, 60))))
    price = float(rng.uniform(80, 120))
    lar = liquidation_map(book["units"], book["cash"], book["product"], m, price, shocks,
                          penalty_rate=pen, keeper_share=share, chunk_size=64)
    ref = perp_lar_reference(book["product"], book["units"], book["cash"], m, pen, share,
                             price * (1 + shocks))
    np.testing.assert_array_equal(lar.n_liquidated[:, 0], ref[2])
    np.testing.assert_allclose(lar.liquidated_notional_usd[:, 0], ref[0], rtol=1e-10, atol=1e-7)
    np.testing.assert_allclose(lar.bad_debt_usd[:, 0], ref[1], rtol=1e-9, atol=1e-7)
    assert ref[2].max() > 0


def test_perp_lar_agrees_with_a_hard_liquidation_run():
    """Shock the price at once (a one-step tape): the engine liquidates exactly the map's."""
    rng = np.random.default_rng(7)
    book = random_book(rng, 2000)
    policy = np.zeros(1, POLICY_DTYPE)
    policy["family"] = PolicyFamily.HARD
    policy["maintenance_rate"] = [0.01, 0.2]
    policy["penalty_rate"] = [0.01, 0.05]
    policy["keeper_share"] = 0.5
    policy["target_rate"] = np.inf
    policy["close_factor"] = 1.0
    policy["full_close_health"] = 1.0
    shocks = default_shocks(21, 0.3)
    lar = liquidation_map_for_policy(policy, book["units"], book["cash"], book["product"], 100.0,
                                     shocks)
    for g, s in enumerate(shocks):
        p = np.array([100.0 * (1 + s)])
        res = simulate(Prices(p, p, p, p), book["product"], book["units"], book["cash"], policy,
                       TriggerPrice.CLOSE, FillPrice.CLOSE)
        assert res.records.size == lar.n_liquidated[g, 0]
        assert res.records["notional"].sum() == pytest.approx(lar.liquidated_notional_usd[g, 0],
                                                              rel=1e-9, abs=1e-6)
        assert res.records["bad_debt"].sum() == pytest.approx(lar.bad_debt_usd[g, 0], rel=1e-9,
                                                              abs=1e-6)


def test_perp_lar_is_thread_independent_and_checks_input():
    rng = np.random.default_rng(1)
    book = random_book(rng, 5000)
    a = liquidation_map(book["units"], book["cash"], book["product"], [0.01, 0.2], 100.0,
                        chunk_size=300)
    previous = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        b = liquidation_map(book["units"], book["cash"], book["product"], [0.01, 0.2], 100.0,
                            chunk_size=300)
    finally:
        numba.set_num_threads(previous)
    np.testing.assert_array_equal(a.liquidated_notional_usd, b.liquidated_notional_usd)
    np.testing.assert_array_equal(a.bad_debt_usd, b.bad_debt_usd)
    # more accounts breach the further the price moves from where they were opened
    n = a.n_liquidated[:, 0]
    assert n[0] > n[20] and n[-1] > n[20]
    with pytest.raises(ValueError, match="increasing"):
        liquidation_map(book["units"], book["cash"], None, 0.01, 100.0, [0.1, -0.1])
    with pytest.raises(ValueError, match="price"):
        liquidation_map(book["units"], book["cash"], None, 0.01, -1.0)
    with pytest.raises(ValueError, match="per product"):
        liquidation_map(book["units"], book["cash"], None, [0.1, 0.2, 0.3], 100.0)


@pytest.mark.parametrize("seed", range(2))
def test_options_lar_matches_reference(seed):
    rng = np.random.default_rng(seed)
    market = random_market(rng, 40)
    book = random_options_book(rng, 50, market, 40)
    params = OptionsParams(spread=float(rng.uniform(0, 0.1)), penalty_rate=0.01,
                           keeper_share=0.3)
    shocks = np.linspace(-0.3, 0.3, 7)
    vols = np.array([-0.1, 0.0, 0.25])
    price, iv, now = market.close[0], market.iv[0], int(market.valuation_ms[0])
    lar = options_liquidation_map(book, price, iv, now, shocks, vols, params, chunk_size=8)
    fpts = price[:, None] * (1 + np.repeat(shocks, 3))[None, :]
    sig = np.maximum(iv[:, None] + np.tile(vols, 7)[None, :], params.vol_floor)
    prm = {k: pack_options_params(params)[0][k] for k in pack_options_params(params).dtype.names}
    ref = options_lar_reference(book, fpts, sig, now, prm, params.grid.price_shocks(),
                                params.grid.vol_factors())
    np.testing.assert_array_equal(lar.n_liquidated.reshape(-1), ref[2])
    np.testing.assert_allclose(lar.liquidated_notional_usd.reshape(-1), ref[0], rtol=1e-9)
    np.testing.assert_allclose(lar.bad_debt_usd.reshape(-1), ref[1], rtol=1e-8, atol=1e-6)
    assert ref[2].max() > 0
    # these books are mostly short options: a rise in implied volatility liquidates more
    assert lar.n_liquidated[:, 2].sum() > lar.n_liquidated[:, 1].sum()


def test_recorder_frames_and_heat_map():
    rng = np.random.default_rng(3)
    market = random_market(rng, 30, n_und=1)
    book = random_options_book(rng, 80, market, 30)
    rec = LarRecorder(market, shocks=default_shocks(9, 0.2), vol_shocks=np.array([0.0, 0.2]))
    simulate_options(market, book, every=10, on_block=rec)
    frame = rec.frame()
    assert frame["step"].unique().to_list() == [10, 20]
    assert frame.height == 2 * 9 * 2
    assert set(frame.columns) >= {"step", "time", "shock", "vol_shock",
                                  "liquidated_notional_usd", "bad_debt_usd", "n_liquidated"}
    fig = liquidation_map_figure(frame)
    heat = fig.data[0]
    assert heat.type == "heatmap" and np.asarray(heat.z).shape == (9, 2)
    assert liquidation_map_figure(frame, "bad_debt_usd", vol_shock=0.2).data[0].z is not None
    empty = liquidation_map_frame([])
    assert empty.is_empty() and "shock" in empty.columns
    with pytest.raises(ValueError):
        liquidation_map_figure(empty)


def test_perp_frame_columns():
    lar = liquidation_map(np.array([1.0, -1.0]), np.array([-90.0, 110.0]), None, 0.01, 100.0,
                          [-0.2, 0.0, 0.2])
    f = lar.frame(step=5, time_ms=1_600_000_000_000)
    assert f["step"].to_list() == [5, 5, 5]
    assert f["n_liquidated"].to_list() == [1, 0, 1]
    assert f.schema["time"] == pl.Datetime("ms", "UTC")
    assert f["liquidated_notional_usd"].to_list() == pytest.approx([80.0, 0.0, 120.0])
