"""Counterfactual market impact: displacement fixed in price, as-happened flow, pre-window depth.

The as-happened policy's flow is what the historical tape already carries, so with it as the
baseline a policy moves nothing and reproduces history bit for bit; others move the price by
the difference. Displacements are fixed when they happen: a later change of depth moves nothing.
Depth comes from before the window and never reads the window's candles.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from backtest.engine.config import MarketConfig
from backtest.engine.dispatch import Prices, liquidation_order, market_params, simulate
from backtest.engine.market import depth_per_step, pre_window_depth
from backtest.errors import TapeError
from backtest.kernels.enums import FillPrice, ImpactModel, PolicyFamily, StepMetric, TriggerPrice
from backtest.kernels.impact_nb import (
    displacement_factor_nb,
    displacement_update_nb,
    equivalent_flow_nb,
    price_factor_nb,
)
from backtest.kernels.reference import simulate_reference
from tests.kernel_inputs import random_book, random_policy, random_prices, random_volume

MODELS = [ImpactModel.LINEAR, ImpactModel.SQRT, ImpactModel.AMM]


def _world(seed, n=400, steps=120, family=None):
    rng = np.random.default_rng(seed)
    prices = random_prices(rng, steps, vol=0.01)
    book = random_book(rng, n)
    policy = random_policy(rng, family)
    volume = random_volume(np.random.default_rng(seed + 1), steps)
    depth = rng.uniform(200.0, 2000.0, steps)
    return prices, book, policy, volume, depth


def _sim(prices, book, policy, volume, market=None, depth=None, baseline=None):
    return simulate(prices, book["product"], book["units"], book["cash"], policy,
                    TriggerPrice.EXTREME, FillPrice.TRIGGER, chunk_size=64, block_steps=17,
                    market=market, depth=depth, volume=volume, impact_baseline=baseline)


def _same(a, b):
    for name in ("units", "cash", "n_liquidations", "first_step", "last_step",
                 "liquidated_notional", "penalties_paid", "bad_debt", "step_metrics"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.records.tobytes() == b.records.tobytes()


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("model", MODELS)
def test_as_happened_flow_reproduces_history_bit_for_bit(seed, model):
    prices, book, policy, volume, depth = _world(seed)
    plain = _sim(prices, book, policy, volume)  # no impact: the historical path
    baseline = plain.step_metrics[:, StepMetric.NET_FLOW].copy()
    assert np.any(baseline != 0.0)
    market = market_params(model, permanent_fraction=0.6, transient_half_life_steps=5.0,
                           cascade=True)
    own = _sim(prices, book, policy, volume, market, depth, baseline)
    _same(own, plain)
    assert np.all(own.step_metrics[:, StepMetric.PRICE_FACTOR] == 1.0)  # zero departure
    # without the baseline the same book's flow moves the price away from history
    moved = _sim(prices, book, policy, volume, market, depth)
    assert np.any(moved.step_metrics[:, StepMetric.PRICE_FACTOR] != 1.0)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("model", MODELS)
def test_kernel_matches_reference_with_a_counterfactual_baseline(seed, model):
    prices, book, policy, volume, depth = _world(seed + 20)
    other = random_policy(np.random.default_rng(seed + 99))
    baseline = _sim(prices, book, other, volume).step_metrics[:, StepMetric.NET_FLOW].copy()
    rng = np.random.default_rng(seed)
    market = market_params(model, permanent_fraction=rng.uniform(0, 1),
                           transient_half_life_steps=rng.uniform(1, 20), cascade=True)
    res = _sim(prices, book, policy, volume, market, depth, baseline)
    ref = simulate_reference(prices.open, prices.high, prices.low, prices.close,
                             TriggerPrice.EXTREME, FillPrice.TRIGGER, policy[0], book["product"],
                             book["units"], book["cash"], market=market[0], depth=depth,
                             volume=volume, impact_baseline=baseline,
                             priority=liquidation_order(book["product"], book["units"],
                                                        book["cash"]))
    assert res.records.shape[0] == len(ref.records) > 0
    np.testing.assert_allclose(res.units, ref.units, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(res.cash, ref.cash, rtol=1e-10, atol=1e-8)
    np.testing.assert_array_equal(res.n_liquidations, ref.n_liquidations)
    np.testing.assert_allclose(res.step_metrics, ref.step_metrics, rtol=1e-9, atol=1e-7)
    assert np.any(res.step_metrics[:, StepMetric.PRICE_FACTOR] != 1.0)


@pytest.mark.parametrize("model", MODELS)
def test_equivalent_flow_inverts_the_price_factor(model):
    for w in (-5e4, -3e3, -10.0, 0.0, 7.0, 2e3, 9e3):
        f = price_factor_nb(int(model), w, 1000.0)
        assert equivalent_flow_nb(int(model), f, 1000.0) == pytest.approx(w, rel=1e-9, abs=1e-6)


@pytest.mark.parametrize("model", MODELS)
def test_no_drift_after_the_flow_stops_whatever_the_depth(model):
    """Displacement is fixed in price: later depth changes move nothing."""
    rng = np.random.default_rng(int(model))
    state = np.zeros(2)
    for _ in range(10):  # a crash: net selling at depth 1,000
        displacement_update_nb(state, int(model), -400.0, 1000.0, 0.5, 0.9)
    permanent = state[0]
    assert permanent < 0.0
    factors = []
    for _ in range(400):  # no liquidations; depth thins and recovers at random
        depth = rng.uniform(10.0, 5000.0)
        factors.append(displacement_factor_nb(state))
        displacement_update_nb(state, int(model), 0.0, depth, 0.5, 0.9)
        assert state[0] == permanent
    factors = np.array(factors)
    assert np.all(np.diff(factors) >= 0)  # only the transient part decays: back up, no sinking
    assert factors[-1] == pytest.approx(math.exp(permanent), rel=1e-12)


@pytest.mark.parametrize("share", [0.0, 0.3, 0.5, 1.0])
@pytest.mark.parametrize("model", MODELS)
def test_flows_that_net_to_zero_leave_no_permanent_displacement(model, share):
    """At constant depth the permanent part is ``phi ln F`` of the flows' running sum, however
    the flows are spread in time: a round trip leaves none (the model that read both parts as
    one outstanding flow left one: the transient part had decayed in between), and same-sign
    flows move it as their sum would. The reference twin's update agrees."""
    from backtest.kernels.reference import _displaced

    depth, decay = 1000.0, 0.9
    rng = np.random.default_rng(int(model))
    flows = list(rng.uniform(-3000.0, 3000.0, 12))
    flows += [-sum(flows)] + [0.0] * 5  # the running sum back to 0
    state, twin, running = np.zeros(2), (0.0, 0.0), 0.0
    for flow in flows:
        displacement_update_nb(state, int(model), flow, depth, share, decay)
        twin = _displaced(int(model), *twin, flow, depth, share, decay)
        running += flow
        expected = share * math.log(price_factor_nb(int(model), running, depth))
        assert state[0] == pytest.approx(expected, rel=1e-9, abs=1e-8)  # sqrt's slope at 0
        np.testing.assert_allclose(twin, state, rtol=1e-12, atol=1e-15)
    assert abs(state[0]) < 1e-8  # the sum's rounding, through sqrt's slope at 0


def test_no_drift_in_the_kernel_when_depth_falls_after_the_liquidations():
    rng = np.random.default_rng(5)
    steps = 200
    close = np.r_[np.linspace(100.0, 70.0, 40), np.full(steps - 40, 70.0)]
    prices = Prices(close.copy(), close * 1.001, close * 0.999, close.copy())
    book = random_book(rng, 2000)
    policy = random_policy(rng, PolicyFamily.HARD)
    depth = np.r_[np.full(60, 5000.0), np.geomspace(5000.0, 50.0, steps - 60)]
    market = market_params(ImpactModel.SQRT, permanent_fraction=0.5,
                           transient_half_life_steps=3.0, cascade=True)
    res = _sim(prices, book, policy, None, market, depth)
    sm = res.step_metrics
    last = int(np.nonzero(sm[:, StepMetric.N_LIQUIDATIONS])[0].max())
    assert last < 150
    f = sm[last + 1:, StepMetric.PRICE_FACTOR]
    assert f[0] < 1.0
    # after the last liquidation the price only recovers its transient part, even as depth
    # falls 100-fold (the earlier model re-scaled the outstanding flow and kept sinking)
    assert np.all(np.diff(f) >= -1e-15)
    assert f[-1] <= 1.0


def test_more_liquidation_pushes_below_history_and_less_above():
    """Permanent-only linear impact at constant depth: the end factor is F(sum of differences)."""
    rng = np.random.default_rng(11)
    steps = 150
    prices = random_prices(rng, steps, vol=0.006)
    book = random_book(rng, 3000)
    hard = random_policy(rng, PolicyFamily.HARD)
    partial = random_policy(rng, PolicyFamily.PARTIAL)
    partial["close_factor"] = 0.2
    partial["full_close_health"] = 0.0
    depth = np.full(steps, 20_000.0)
    market = market_params(ImpactModel.LINEAR, permanent_fraction=1.0, cascade=True)
    flows = {}
    for name, pol in (("hard", hard), ("partial", partial)):
        flows[name] = _sim(prices, book, pol, None).step_metrics[:, StepMetric.NET_FLOW].copy()
    assert flows["hard"].sum() < flows["partial"].sum() < 0  # hard sells more
    for pol, as_happened, sign in ((hard, "partial", -1.0), (partial, "hard", 1.0)):
        res = _sim(prices, book, pol, None, market, depth, flows[as_happened])
        sm = res.step_metrics
        diff = (sm[:, StepMetric.NET_FLOW] - flows[as_happened]).sum()
        assert np.sign(diff) == sign
        end = sm[-1, StepMetric.PRICE_FACTOR]
        # the last step's factor carries every earlier step's difference
        expected = price_factor_nb(int(ImpactModel.LINEAR), diff - (
            sm[-1, StepMetric.NET_FLOW] - flows[as_happened][-1]), 20_000.0)
        assert end == pytest.approx(expected, rel=1e-9)
        assert np.sign(end - 1.0) == sign


# ----------------------------------------------------------------------------------------------
# pre-window depth

def _tape(days=9, interval_s=300, seed=0):
    rng = np.random.default_rng(seed)
    n = days * 86400 // interval_s
    ts = np.arange(n, dtype=np.int64) * interval_s * 1000
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    volume = rng.uniform(1.0, 3.0, n)
    return {"timestamp": ts, "close": close, "volume": volume}


def test_pre_window_depth_is_a_fraction_of_the_median_hourly_volume():
    tape = _tape()
    start = 8 * 288  # the window is the ninth day
    depth, info = pre_window_depth(tape, start, 288, 7.0, 0.12)
    usd = (tape["volume"] * tape["close"])[start - 7 * 288:start].reshape(-1, 12).sum(axis=1)
    assert info["hours"] == 168
    assert info["median_hourly_volume_usd"] == pytest.approx(np.median(usd), rel=1e-12)
    np.testing.assert_allclose(depth, 0.12 * np.median(usd), rtol=1e-12)
    depth2, _ = depth_per_step(MarketConfig(impact_model="sqrt", pre_window_depth_fraction=0.12),
                               tape, slice(start, start + 288))
    np.testing.assert_array_equal(depth, depth2)
    # without impact nothing reads the depth, so a tape without a pre-window still runs
    none, info = depth_per_step(MarketConfig(), tape, slice(0, 288))
    assert np.all(np.isnan(none)) and info == {"source": "none"}


@pytest.mark.parametrize("k", [0.0, 1.0, 2.0])
def test_pre_window_depth_never_reads_window_candles(k):
    tape = _tape(seed=3)
    start, n = 8 * 288, 288
    depth, _ = pre_window_depth(tape, start, n, 7.0, 0.12, k, 60.0)
    for j in (0, 17, 200):
        other = {key: v.copy() for key, v in tape.items()}
        other["volume"][start + j:] *= 1000.0  # the crash's own volume
        other["close"][start + j:] *= np.exp(np.random.default_rng(j).normal(
            0, 0.05, len(other["close"]) - start - j))
        moved, _ = pre_window_depth(other, start, n, 7.0, 0.12, k, 60.0)
        # step j's depth sees candles up to j - 1 only
        np.testing.assert_array_equal(moved[:j + 1], depth[:j + 1])
        if k > 0:
            assert np.all(moved[j + 2:] <= depth[0]) and np.any(moved[j + 2:] < depth[j + 2:])
        else:
            np.testing.assert_array_equal(moved, depth)


def test_volatility_thins_depth_and_never_deepens_it():
    tape = _tape(seed=4)
    start, n = 8 * 288, 288
    tape["close"][start + 100:start + 130] *= np.exp(np.cumsum(
        np.random.default_rng(1).normal(-0.01, 0.02, 30)))
    tape["close"][start + 130:] *= tape["close"][start + 129] / tape["close"][start + 130]
    d0, _ = pre_window_depth(tape, start, n, 7.0, 0.12)
    depth, info = pre_window_depth(tape, start, n, 7.0, 0.12, 1.0, 60.0)
    assert np.all(depth <= d0[0] * (1 + 1e-12))
    assert depth[120] < 0.5 * d0[0]  # a ten-fold volatility burst: much thinner
    assert info["min_depth_usd"] == depth.min()


def test_pre_window_depth_needs_candles_before_the_window():
    tape = _tape(days=2)
    with pytest.raises(TapeError, match="at least 24 whole hours.*the tape has 12"):
        pre_window_depth(tape, 144, 100, 7.0, 0.12, source="t.parquet")


# ----------------------------------------------------------------------------------------------
# end to end: the two-pass run, its tables and metrics

def _e2e(tmp_path_factory, meta=None):
    """A synthetic 5m crash tape imported into a store, and a 3,000-account book drawn on it
    (``meta``: the book's metadata, default the symbol only): ``(root, store, book path)``."""
    from datetime import timedelta

    from backtest.books import generate_book, write_book
    from backtest.tapes import TapeStore
    from tests.conftest import Synth
    from tests.test_engine_run import START, crash_rows

    root = tmp_path_factory.mktemp("cf")
    src = Synth.ft_json(root / "src" / "BTC_USDT-5m.json", crash_rows())
    store = TapeStore(root / "tapes")
    store.import_file(src, venue="binance")
    tape = store.resolve("BTC/USDT", START - timedelta(days=8), START + timedelta(days=1))
    a = tape.arrays()
    book = generate_book(3000, a["timestamp"], a["close"], a["low"], a["high"], START, seed=5,
                         meta=meta or {"symbol": "BTC/USDT"})
    return root, root / "tapes", write_book(book, root / "book.parquet")


def _config_text(book, name, market):
    return (f'name = "{name}"\nstart = 2021-05-19T00:00:00Z\nend = 2021-05-20T00:00:00Z\n'
            f'symbol = "BTC/USDT"\nbook = "{book}"\npolicies = ["hard", "partial"]\n'
            f'[tape]\nvenue = "binance"\ninterval = "5m"\n[market]\n{market}')


@pytest.fixture(scope="module")
def cf_runs(tmp_path_factory):
    from backtest.engine.run import execute

    root, store, book = _e2e(tmp_path_factory)
    out = {}
    for name, market in (
            ("plain", 'impact_model = "none"\n'),
            ("cf", 'impact_model = "sqrt"\ncascade = true\ncounterfactual = true\n'
                   'as_happened_policy = "partial"\npre_window_depth_fraction = 0.002\n')):
        path = root / f"{name}.toml"
        path.write_text(_config_text(book, name, market))
        out[name] = execute(path, runs=root / "runs", store=store, show_progress=False)
    out["root"] = root
    return out


def test_run_with_the_as_happened_policy_reproduces_history(cf_runs):
    import polars as pl

    plain, cf = cf_runs["plain"][1], cf_runs["cf"][1]
    for table in ("steps", "accounts", "liquidations"):
        a = pl.read_parquet(plain / f"{table}.parquet").drop("run_id")
        b = pl.read_parquet(cf / f"{table}.parquet").drop("run_id")
        a, b = (x.filter(pl.col("policy") == "partial") for x in (a, b))
        if table == "steps":  # the as-happened flow is recorded, and moved nothing
            assert (b["as_happened_flow_usd"] == b["net_flow_usd"]).all()
            assert (b["impact_flow_usd"] == 0.0).all() and (b["price_departure"] == 0.0).all()
            a, b = (x.drop("as_happened_flow_usd", "impact_flow_usd") for x in (a, b))
        assert len(a) > 0
        assert a.equals(b), table
    hard = pl.read_parquet(cf / "steps.parquet").filter(pl.col("policy") == "hard")
    assert hard["price_departure"].min() < -0.01  # hard sells more: the price goes below


def test_departure_metrics_are_in_the_summary(cf_runs):
    import json

    from backtest.results import Catalog

    with Catalog(cf_runs["root"] / "runs") as cat:
        s = cat.summary(cf_runs["cf"][0])
    row = {p: r for p, r in zip(s["policy"], s.iter_rows(named=True), strict=True)}
    assert row["partial"]["max_price_departure"] == 0.0
    assert row["partial"]["minutes_departed_over_1pct"] == 0.0
    assert row["hard"]["max_price_departure"] < -0.01
    assert row["hard"]["minutes_departed_over_1pct"] >= 5.0  # at least one 5-minute step
    assert row["hard"]["minutes_departed_over_1pct"] % 5.0 == pytest.approx(0.0, abs=1e-6)
    assert row["hard"]["end_price_departure"] <= 0.0
    manifest = json.loads((cf_runs["cf"][1] / "manifest.json").read_text())
    depth = manifest["market"]["depth"]
    assert depth["source"] == "pre_window" and depth["hours"] >= 24 * 7
    assert manifest["market"]["as_happened"]["name"] == "partial"
    assert len(manifest["market"]["as_happened"]["file_sha256"]) == 64


def test_user_loss_to_liquidation_is_valued_at_the_historical_close(cf_runs):
    """Under impact, the positions left open are valued at history's last close in the user loss
    to liquidation, and what the simulated end price adds to them is its own measure: an
    account never liquidated loses to liquidation only the socialised loss charged to it,
    however far the policy moved the price (the earlier definition, which valued it at the
    simulated close, counted the price move too)."""
    import polars as pl

    from backtest.results import Catalog

    with Catalog(cf_runs["root"] / "runs") as cat:
        summary = {name: {r["policy"]: r for r in cat.summary(cf_runs[name][0]).iter_rows(
            named=True)} for name in ("plain", "cf")}
    acc = pl.read_parquet(cf_runs["cf"][1] / "accounts.parquet")
    steps = pl.read_parquet(cf_runs["cf"][1] / "steps.parquet")
    for policy in ("hard", "partial"):
        a = acc.filter(pl.col("policy") == policy)
        last = steps.filter(pl.col("policy") == policy).sort("step").row(-1, named=True)
        historical = last["simulated_close"] / last["price_factor"]
        effect = (a["final_units"] * (last["simulated_close"] - historical)).to_numpy()
        np.testing.assert_allclose(
            (a["final_equity_usd"] - a["final_equity_historical_usd"]).to_numpy(), effect,
            rtol=1e-9, atol=1e-6)
        untouched = a.filter(pl.col("liquidations") == 0)
        assert len(untouched) > 100  # what they lose is the socialised loss charged to them
        np.testing.assert_allclose(
            (untouched["hold_equity_usd"] - untouched["final_equity_historical_usd"]).to_numpy(),
            untouched["socialised_loss_usd"].to_numpy(), rtol=1e-9, atol=1e-6)
        row = summary["cf"][policy]
        assert row["user_loss_to_liquidation_usd"] == pytest.approx(
            (a["hold_equity_usd"] - a["final_equity_historical_usd"]).sum(), rel=1e-9)
        assert row["end_price_effect_usd"] == pytest.approx(effect.sum(), rel=1e-9, abs=1e-3)
        assert summary["plain"][policy]["end_price_effect_usd"] == 0.0
    hard = acc.filter((pl.col("policy") == "hard") & (pl.col("liquidations") == 0))
    moved = (hard["final_equity_usd"] - hard["final_equity_historical_usd"]).abs()
    assert moved.max() > 1.0  # hard moved the end price: the old measure counted this
    assert summary["cf"]["partial"]["end_price_effect_usd"] == 0.0  # the as-happened policy
    assert summary["cf"]["partial"]["user_loss_to_liquidation_usd"] == pytest.approx(
        summary["plain"]["partial"]["user_loss_to_liquidation_usd"], rel=1e-12)


def test_runs_written_before_the_historical_final_equity_still_summarise(cf_runs, tmp_path):
    """A run whose accounts table predates ``final_equity_historical_usd`` reads its user loss
    the earlier way (against ``final_equity_usd``) and an end price effect of 0, instead of
    failing the catalog's query."""
    import shutil

    import polars as pl

    from backtest.results import Catalog

    run_id, run_dir = cf_runs["cf"]
    old = tmp_path / "runs" / run_dir.name
    shutil.copytree(run_dir, old)
    acc = pl.read_parquet(old / "accounts.parquet")
    acc.drop("final_equity_historical_usd").write_parquet(old / "accounts.parquet")
    with Catalog(tmp_path / "runs") as cat:
        rows = {r["policy"]: r for r in cat.summary(run_id).iter_rows(named=True)}
    for policy in ("hard", "partial"):
        a = acc.filter(pl.col("policy") == policy)
        assert rows[policy]["user_loss_to_liquidation_usd"] == pytest.approx(
            (a["hold_equity_usd"] - a["final_equity_usd"]).sum(), rel=1e-9)
        assert rows[policy]["end_price_effect_usd"] == 0.0


def test_counterfactual_config_needs_its_policy(tmp_path):
    from backtest.engine.config import load_run_config
    from backtest.errors import ConfigError

    path = tmp_path / "c.toml"
    path.write_text(_config_text("b.parquet", "x",
                                 'impact_model = "sqrt"\ncounterfactual = true\n'))
    with pytest.raises(ConfigError, match="c.toml.*as_happened_policy"):
        load_run_config(path)
    path.write_text(_config_text("b.parquet", "x", 'counterfactual = true\n'
                                                  'as_happened_policy = "hard"\n'))
    with pytest.raises(ConfigError, match="impact_model"):
        load_run_config(path)


def test_report_shows_the_simulated_path_against_history(cf_runs):
    from backtest.report import render_report
    from backtest.report.build import load_report_data
    from backtest.report.figures import departure_figure
    from backtest.results import Catalog

    with Catalog(cf_runs["root"] / "runs") as cat:
        html = render_report(cat, cf_runs["cf"][0])
        data = load_report_data(cat, cf_runs["cf"][0], max_points=50)
    assert 'id="fig-departure"' in html
    assert "Counterfactual impact" in html and "median hourly USD volume" in html
    fig = departure_figure(data)
    lines = {t.name: np.asarray(t.y) for t in fig.data}
    assert set(lines) == {"hard", "partial"}
    assert all(len(y) <= 50 for y in lines.values())  # bucketed
    assert np.all(lines["partial"] == 0.0)  # the as-happened policy stays on history
    assert lines["hard"].min() < -1.0  # percent


def test_departure_figure_thins_long_series_and_keeps_extremes(cf_runs, monkeypatch):
    from backtest.report import figures
    from backtest.report.build import load_report_data
    from backtest.results import Catalog

    with Catalog(cf_runs["root"] / "runs") as cat:
        data = load_report_data(cat, cf_runs["cf"][0])
    full = {t.name: np.asarray(t.y) for t in figures.departure_figure(data).data}
    monkeypatch.setattr(figures, "DEPARTURE_POINTS", 20)
    thin = {t.name: np.asarray(t.y) for t in figures.departure_figure(data).data}
    assert len(full["hard"]) > 200 and len(thin["hard"]) <= 20
    assert np.abs(thin["hard"]).max() == np.abs(full["hard"]).max()
