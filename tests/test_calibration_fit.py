"""Calibration: a fit recovers the parameters a book was drawn with; files round-trip."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from pydantic import ValidationError

from backtest.books.generate import BookParams
from backtest.calibration.fit import (
    Calibration,
    CalibrationConfig,
    EventData,
    EventSpec,
    FitParameter,
    load_calibration,
)
from backtest.calibration.fitted import read_calibrated, write_calibrated
from backtest.engine.config import Execution, ResponseConfig
from backtest.errors import ConfigError
from backtest.policies import load_policy

START = datetime(2024, 1, 8, tzinfo=UTC)


def _event(name, drop, seed):
    """7 days of hourly random walk, then a 24-hour window falling by ``drop`` and recovering."""
    rng = np.random.default_rng(seed)
    n_before, n_window = 7 * 24, 24
    before = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n_before)))
    crash = before[-1] * np.r_[np.linspace(1, 1 - drop, 12),
                               np.linspace(1 - drop, 1 - drop / 2, 12)]
    close = np.r_[before, crash]
    open_ = np.r_[close[0], close[:-1]]
    ts = np.array([int((START - timedelta(hours=n_before - k)).timestamp() * 1000)
                   for k in range(n_before + n_window)], dtype=np.int64)
    spec = EventSpec(event=name, symbol="BTC/USDT", interval="1h", venue="test", asset="BTC")
    return EventData(spec, ts, open_, np.maximum(open_, close) * 1.002,
                     np.minimum(open_, close) * 0.998, close, np.full(len(close), 10.0), START,
                     START + timedelta(hours=n_window), (0.1, 0.1), None)


def _calibration(data, fit):
    cfg = CalibrationConfig(name="t", book="unused.toml", policy="hard", accounts=800, seed=3,
                            fit=fit, event=[d.spec for d in data], max_evaluations=25,
                            response=ResponseConfig(enabled=False))
    base = BookParams(loan_fraction=0.0, long_fraction=0.8, arrival_share=0.2)
    return Calibration(cfg, data, base, load_policy("hard"))


def test_fit_recovers_the_leverage_a_book_was_drawn_with():
    data = [_event("a", 0.15, 1), _event("b", 0.35, 2)]
    fit = [FitParameter(name="leverage_scale", low=0.05, high=3.0, start=1.5)]
    cal = _calibration(data, fit)
    truth = cal.outcomes([0.4])
    for d, o in zip(data, truth, strict=True):  # the "real" figures are the truth's
        d.share = (o.share, o.share)
    assert all(0.0 < o.share < 1.0 for o in truth)
    result = cal.fit()
    assert result.values["leverage_scale"] == pytest.approx(0.4, rel=0.1)
    assert all(abs(o.ratio - 1.0) < 0.1 for o in result.outcomes)
    # out of sample: the fit without each event still predicts it
    for held, refit in cal.leave_one_out(result, max_evaluations=15):
        assert abs(held.ratio - 1.0) < 0.2
        assert refit.values["leverage_scale"] == pytest.approx(0.4, rel=0.2)


def test_fit_recovers_the_arrivals_side_mix_from_the_long_share():
    """Short liquidations come from shorts opened into the fall; the long share pins their mix."""
    data = [_event("a", 0.3, 6)]
    fit = [FitParameter(name="arrival_long_fraction", low=0.02, high=0.98, start=0.7)]
    cal = _calibration(data, fit)
    cal.cfg.long_share_weight = 25.0
    truth = cal.outcomes([0.25])[0]
    data[0].share, data[0].long_share = (truth.share, truth.share), truth.long_share
    assert 0.0 < truth.long_share < 1.0  # the rebound liquidates shorts that opened into it
    assert cal.outcomes([0.9])[0].long_share > truth.long_share
    result = cal.fit()
    assert result.values["arrival_long_fraction"] == pytest.approx(0.25, abs=0.08)
    assert result.outcomes[0].long_share == pytest.approx(truth.long_share, abs=0.03)


def test_objective_is_deterministic_and_zero_at_the_truth():
    data = [_event("a", 0.2, 5)]
    cal = _calibration(data, [FitParameter(name="leverage_scale", low=0.05, high=3.0,
                                           start=1.0)])
    a, b = cal.outcomes([0.7]), cal.outcomes([0.7])
    assert a[0].share == b[0].share
    data[0].share = (a[0].share, a[0].share)
    assert cal.objective(cal.outcomes([0.7])) == 0.0
    assert cal.objective(cal.outcomes([0.2])) > 0.0


def test_calibrated_file_round_trips(tmp_path):
    book = BookParams(loan_fraction=0.0, leverage_scale=0.31, represents="all-cex")
    resp = ResponseConfig(enabled=True, share=0.4)
    path = write_calibrated(tmp_path / "c.toml", book, resp,
                            {"objective": np.float64(0.5), "evaluations": np.int64(3)},
                            [{"event": "may-2021", "venue": "all-cex", "asset": "BTC",
                              "in_fit": True}], [], "test")
    cal = read_calibrated(path)
    assert cal.book == book and cal.response == resp
    assert "objective = 0.5" in path.read_text()
    assert "may-2021/market-btc-liquidated" in cal.fit_targets
    assert not list(tmp_path.glob(".*tmp"))


def test_calibration_file_errors_name_the_field(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('name = "x"\nbook = "b.toml"\npolicy = "hard"\n'
                    '[[fit]]\nname = "no_such"\nlow = 0\nhigh = 1\nstart = 0.5\n'
                    '[[event]]\nevent = "may-2021"\nsymbol = "BTC/USDT"\ninterval = "1m"\n'
                    'venue = "all-cex"\nasset = "BTC"\n')
    with pytest.raises(ConfigError, match="fit.no_such"):
        load_calibration(path)


def test_a_sized_book_holds_the_venue_size_whatever_the_account_count():
    from backtest.books.generate import generate_book
    from backtest.engine.dispatch import Prices, simulate
    from backtest.kernels.enums import FillPrice, TriggerPrice
    from backtest.policies import pack_policy

    d = _event("a", 0.25, 4)
    params = BookParams(loan_fraction=0.0, size_usd=1e9, represents="test")
    w = d.timestamp >= int(START.timestamp() * 1000)
    liquidated = []
    for n in (3000, 12000):
        book = generate_book(n, d.timestamp, d.close, d.low, d.high, START, 1, params)
        a = book.arrays()
        held = 0.5 * (np.abs(a["units"]) * d.close[~w][-1]).sum()  # one side
        assert held == pytest.approx(1e9, rel=1e-9)
        assert book.meta["open_interest_usd"] == "1e+09" and book.meta["venue"] == "test"
        res = simulate(Prices(d.open[w], d.high[w], d.low[w], d.close[w]), a["product"],
                       a["units"], a["cash"], pack_policy(load_policy("hard"), 3600),
                       TriggerPrice.EXTREME, FillPrice.TRIGGER)
        liquidated.append(res.liquidated_notional.sum())
    # USD results are the venue's, not the account count's (up to sampling noise)
    assert liquidated[0] > 0 and liquidated[1] / liquidated[0] == pytest.approx(1.0, abs=0.15)


def test_a_loan_book_sized_to_its_collateral_holds_it_and_its_share_is_of_the_collateral():
    """A reserve's deposits size a lending book by its collateral (``size_basis``); the fit's
    liquidated share is then of that collateral, the debt share times debt over collateral, and
    a fit of the loan-to-value shape recovers the one the 'real' share was drawn with."""
    from backtest.books.generate import generate_book

    d = _event("a", 0.3, 5)
    w = d.timestamp >= int(START.timestamp() * 1000)
    before = d.close[~w][-1]
    loans = dict(loan_fraction=1.0, ltv_min=0.0, ltv_max=0.8, ltv_beta_a=3.0, ltv_beta_b=3.0,
                 survivor_liquidation_threshold=0.825)
    book = generate_book(4000, d.timestamp, d.close, d.low, d.high, START, 1,
                         BookParams(**loans, size_usd=2e9, size_basis="collateral"))
    a = book.arrays()
    assert (a["units"] * before).sum() == pytest.approx(2e9, rel=1e-9)
    assert -a["cash"].sum() < 2e9  # the debt is the smaller part of it
    cfg_fit = [FitParameter(name="ltv_beta_a", low=0.5, high=20.0, start=6.0)]
    cfg = CalibrationConfig(name="t", book="unused.toml", policy="aave-v2", accounts=1500,
                            seed=3, fit=cfg_fit, event=[d.spec], max_evaluations=30,
                            response=ResponseConfig(enabled=False))
    by_debt = Calibration(cfg, [d], BookParams(**loans), load_policy("aave-v2"))
    by_collateral = Calibration(cfg, [d], BookParams(**loans, size_basis="collateral"),
                                load_policy("aave-v2"))
    debt, collateral = by_debt.outcomes([3.0])[0], by_collateral.outcomes([3.0])[0]
    drawn = generate_book(1500, d.timestamp, d.close, d.low, d.high, START, 3,
                          BookParams(**loans, loan_collateral_sigma=0.0)).arrays()
    ratio = -drawn["cash"].sum() / (drawn["units"] * before).sum()
    assert 0 < collateral.share < debt.share
    assert collateral.share == pytest.approx(debt.share * ratio, rel=1e-9)
    d.share = (collateral.share, collateral.share)
    result = by_collateral.fit()
    assert result.values["ltv_beta_a"] == pytest.approx(3.0, rel=0.15)


def test_published_sub_windows_pin_the_loan_to_value_tail_the_share_alone_cannot():
    """A lending book's total share is matched by many (scale, tail) shapes; the fraction of the
    liquidations that came early in the fall tells them apart (``timing_weight``)."""
    d = _event("a", 0.35, 8)
    w = d.timestamp[d.timestamp >= int(START.timestamp() * 1000)]
    early, day = (int(w[0]), int(w[6])), (int(w[0]), int(w[-1]) + 3_600_000)
    loans = BookParams(loan_fraction=1.0, ltv_min=0.0, ltv_max=0.8, ltv_beta_a=1.0,
                       ltv_beta_b=3.0, survivor_liquidation_threshold=0.825,
                       size_basis="collateral")
    fit = [FitParameter(name="ltv_beta_a", low=0.05, high=10.0, start=1.0),
           FitParameter(name="ltv_beta_b", low=0.3, high=8.0, start=2.0)]
    cfg = CalibrationConfig(name="t", book="unused.toml", policy="aave-v2", accounts=3000,
                            seed=3, fit=fit, event=[d.spec], max_evaluations=120,
                            timing_weight=0.0, response=ResponseConfig(enabled=False))
    cal = Calibration(cfg, [d], loans, load_policy("aave-v2"))
    truth = cal.outcomes([0.3, 0.8])[0]
    real_early = truth.fraction_within(early, day)
    assert 0.05 < real_early < 0.95
    d.share = (truth.share, truth.share)
    d.windows = ((early, day, real_early),)
    other = cal.outcomes([1.5, 4.0])[0]  # another shape, about as large a share
    assert abs(other.fraction_within(early, day) - real_early) > 0.1
    assert cal.objective([other]) == pytest.approx(math.log(other.share / truth.share) ** 2)
    cal.cfg.timing_weight = 10.0
    assert cal.objective(cal.outcomes([0.3, 0.8])) == pytest.approx(0.0)
    assert cal.objective([other]) > math.log(other.share / truth.share) ** 2 + 0.1
    result = cal.fit()
    fitted = result.outcomes[0]
    assert fitted.share == pytest.approx(truth.share, rel=0.1)
    assert fitted.fraction_within(early, day) == pytest.approx(real_early, abs=0.05)
    # a coarse grid first: the fit no longer depends on where it starts
    cal.cfg.grid_points = 5
    far = [cal.fit(start=s, max_evaluations=40) for s in ([0.1, 7.5], [8.0, 0.4])]
    assert far[0].evaluations >= 25 + 1
    for r in far:
        assert r.objective == pytest.approx(0.0, abs=0.02)
        assert r.outcomes[0].fraction_within(early, day) == pytest.approx(real_early, abs=0.05)


def test_closes_are_a_seeded_volume_weighted_share_that_leaves_the_rest_of_the_book_alone():
    from backtest.books.generate import generate_book

    d = _event("a", 0.25, 6)
    base = BookParams(loan_fraction=0.0, arrival_share=0.2)
    args = (2000, d.timestamp, d.close, d.low, d.high, START, 5)
    kw = {"volume": d.volume, "window_end": d.end}
    plain = generate_book(*args, base, **kw)
    assert "exit_time" not in plain.frame.columns and "closes" not in plain.meta
    books = {s: generate_book(*args, base.model_copy(update={"close_share": s}), **kw)
             for s in (0.2, 0.5)}
    for share, book in books.items():
        # the other columns are the book without closes, bit for bit
        assert book.frame.drop("exit_time").equals(plain.frame)
        exits = book.frame["exit_time"].dt.epoch("ms").to_numpy()
        closing = book.frame["exit_time"].is_not_null().to_numpy()
        assert not closing[2000:].any()  # arrivals do not close
        assert abs(closing[:2000].mean() - share) < 0.04
        assert ((exits[closing] >= int(START.timestamp() * 1000))
                & (exits[closing] < int(d.end.timestamp() * 1000))).all()
        assert int(book.meta["closes"]) == closing.sum()
    # a larger share closes a superset of the same positions at the same times
    small, large = (books[s].frame["exit_time"] for s in (0.2, 0.5))
    both = small.is_not_null()
    assert (large.is_not_null() | ~both).all() and (small.filter(both) == large.filter(both)).all()


def test_arrivals_take_their_own_leverage_factor_and_side_mix():
    from backtest.books.generate import generate_book

    d = _event("a", 0.25, 6)
    base = BookParams(loan_fraction=0.0, arrival_share=0.5, leverage_scale=0.2)
    args = (2000, d.timestamp, d.close, d.low, d.high, START, 5)
    kw = {"volume": d.volume, "window_end": d.end}
    plain = generate_book(*args, base, **kw)
    # the defaults are the book's own: the same book, bit for bit
    same = generate_book(*args, base.model_copy(update={"arrival_leverage_scale": 1.0,
                                                        "arrival_long_fraction": None}), **kw)
    assert same.frame.equals(plain.frame)
    moved = generate_book(*args, base.model_copy(update={"arrival_leverage_scale": 3.0,
                                                         "arrival_long_fraction": 0.1}), **kw)
    held, new = moved.frame[:2000], moved.frame[2000:]
    assert held.equals(plain.frame[:2000])  # the positions held into the window are untouched
    # leverage above 1 is three times the book's, choice for choice
    lev = plain.frame["leverage"].to_numpy()[2000:]
    assert np.allclose(new["leverage"].to_numpy() - 1.0, 3.0 * (lev - 1.0))
    assert abs((new["side"] > 0).mean() - 0.1) < 0.04
    assert abs((plain.frame[2000:]["side"] > 0).mean() - base.long_fraction) < 0.05


def test_closes_lower_the_open_interest_after_and_enter_the_objective():
    data = [_event("a", 0.2, 7)]
    data[0].oi_change = (0.5, 0.5)
    fit = [FitParameter(name="close_share", low=0.0, high=0.9, start=0.3)]
    cal = _calibration(data, fit)
    held, closed = cal.outcomes([0.0]), cal.outcomes([0.6])
    assert held[0].real_oi_change == 0.5
    assert closed[0].oi_change < held[0].oi_change
    # weight 0 (the default): the open-interest term is off; weight 1: it counts
    assert cal.objective(held) == pytest.approx(np.log(held[0].share / 0.1) ** 2)
    cal.cfg.open_interest_weight = 1.0
    assert cal.objective(held) == pytest.approx(np.log(held[0].share / 0.1) ** 2
                                                + np.log(held[0].oi_change / 0.5) ** 2)
    data[0].oi_change = None  # no figure: no term
    assert cal.objective(cal.outcomes([0.0])) == pytest.approx(
        np.log(held[0].share / 0.1) ** 2)


def test_open_interest_after_is_in_sample_only_where_the_fit_used_it(tmp_path):
    row = {"event": "may-2021", "venue": "all-cex", "asset": "BTC", "in_fit": True}
    without = write_calibrated(tmp_path / "a.toml", BookParams(), ResponseConfig(), {}, [row],
                               [], "test")
    with_oi = write_calibrated(tmp_path / "b.toml", BookParams(), ResponseConfig(), {},
                               [dict(row, oi_change_in_fit=True)], [], "test")
    after = "may-2021/market-btc-open-interest-after"
    assert after not in read_calibrated(without).fit_targets
    assert after in read_calibrated(with_oi).fit_targets


def test_the_share_is_the_validated_one_over_the_real_figures_window():
    """Liquidated notional over the real figure's window, over open interest counted on one
    side: what ``liqbt validate`` computes for a book sized to that open interest."""
    from backtest.books.generate import generate_book
    from backtest.calibration.fit import simulate_event
    from backtest.engine.dispatch import Prices, simulate
    from backtest.kernels.enums import FillPrice, TriggerPrice
    from backtest.policies import pack_policy

    d = _event("a", 0.3, 5)
    # equal sizes, as the fit draws them (test below)
    params = BookParams(loan_fraction=0.0, long_fraction=0.8, perp_notional_sigma=0.0)
    policy = pack_policy(load_policy("hard"), 3600)
    whole = simulate_event(d, params, ResponseConfig(enabled=False), policy, 800, 3)
    book = generate_book(800, d.timestamp, d.close, d.low, d.high, START, 3,
                         params.model_copy(update={"size_usd": 1e9}))
    a = book.arrays()
    w = d.timestamp >= int(START.timestamp() * 1000)
    res = simulate(Prices(d.open[w], d.high[w], d.low[w], d.close[w]), a["product"],
                   a["units"], a["cash"], policy, TriggerPrice.EXTREME, FillPrice.TRIGGER)
    assert 0.0 < whole.share == pytest.approx(res.liquidated_notional.sum() / 1e9, rel=1e-9)
    # counted over the real figure's window only: the first six hours of the fall
    d.liquidated_window = (int(d.timestamp[w][0]), int(d.timestamp[w][6]))
    part = simulate_event(d, params, ResponseConfig(enabled=False), policy, 800, 3)
    assert part.share == pytest.approx(whole.step_share[:6].sum())
    assert 0.0 < part.share < whole.share


def test_the_fit_fills_where_its_config_says():
    """``[execution] fill_price`` is the run's: at the liquidation price a long
    fills above the candle's low it triggered on, so the same book liquidates more notional."""
    fit = [FitParameter(name="leverage_scale", low=0.05, high=3.0, start=1.0)]
    cal = _calibration([_event("a", 0.3, 4)], fit)
    at_low = cal.outcomes([0.5])[0]
    cal.cfg = cal.cfg.model_copy(
        update={"execution": Execution(fill_price="liquidation_price")})
    at_price = cal.outcomes([0.5])[0]
    assert 0.0 < at_low.share < at_price.share
    with pytest.raises(ValidationError):
        CalibrationConfig(**{**cal.cfg.model_dump(), "execution": {"fill_price": "mid"}})


def test_the_fit_trades_on_the_window_candles_of_its_tape_venue():
    """With a protocol's feed as the window's candles (``tape_venue``) the fit's liquidations
    trigger and fill on the feed: Binance's own candles give the same outcome bit for bit, a
    feed that never fell as far liquidates less, and "after the low" still counts from
    Binance's lowest candle."""
    from backtest.engine.dispatch import Prices

    fit = [FitParameter(name="leverage_scale", low=0.05, high=3.0, start=1.0)]
    d = _event("a", 0.3, 4)
    cal = _calibration([d], fit)
    on_binance = cal.outcomes([0.5])[0]
    w = d.timestamp >= int(START.timestamp() * 1000)
    d.traded = Prices(d.open[w], d.high[w], d.low[w], d.close[w])
    same = cal.outcomes([0.5])[0]
    assert same.share == on_binance.share
    np.testing.assert_array_equal(same.step_share, on_binance.step_share)
    floor = 0.5 * (d.close[~w][-1] + d.low[w].min())  # the feed stops halfway down
    d.traded = Prices(*(np.maximum(x[w], floor) for x in (d.open, d.high, d.low, d.close)))
    on_feed = cal.outcomes([0.5])[0]
    assert 0.0 < on_feed.share < on_binance.share
    assert on_feed.low_step == on_binance.low_step == int(np.argmin(d.low[w]))


def test_a_tape_venue_that_misses_the_window_is_named(tmp_path):
    from types import SimpleNamespace

    from backtest.calibration.fit import _window_candles
    from backtest.tapes.feed import read_feed
    from tests.test_book_positions import crash_store
    from tests.test_engine_run import START as DAY

    store, a, _ = crash_store(tmp_path)
    feed = tmp_path / "feed.csv"
    inside = a["timestamp"][(a["timestamp"] >= int(DAY.timestamp() * 1000))][:100]
    feed.write_text("ts,price\n" + "".join(f"{t},{100.0 + k}\n" for k, t in enumerate(inside)))
    store.import_tape(read_feed(feed, venue="oracle", symbol="BTC/USDT", interval="5m"))
    cfg = SimpleNamespace(tape_venue="oracle", interval_minutes=5)
    spec = EventSpec(event="e", symbol="BTC/USDT", interval="5m", venue="v", asset="BTC")
    short = SimpleNamespace(start=DAY, end=DAY + timedelta(minutes=5 * 100))
    got = _window_candles(cfg, spec, short, a["timestamp"][a["timestamp"] < int(
        short.end.timestamp() * 1000)], store)
    assert got.close.tolist() == [100.0 + k for k in range(100)]
    day = SimpleNamespace(start=DAY, end=DAY + timedelta(days=1))
    with pytest.raises(ConfigError, match="'tape_venue': event e: .*oracle"):
        _window_candles(cfg, spec, day, a["timestamp"], store)


def test_the_fit_draws_equal_sizes_so_the_size_distribution_cannot_move_it():
    """Sizes are independent of what liquidates: the fit's books hold equal notionals."""
    data = [_event("a", 0.3, 4)]
    fit = [FitParameter(name="leverage_scale", low=0.05, high=3.0, start=1.0)]
    cal = _calibration(data, fit)
    narrow = cal.outcomes([0.5])[0].share
    cal.base = cal.base.model_copy(update={"perp_notional_sigma": 2.5})
    assert cal.outcomes([0.5])[0].share == narrow


def test_one_event_can_be_calibrated_on_two_assets(tmp_path, monkeypatch):
    """Rows pair with the file's events by position, not by event name."""
    from backtest.calibration import run as calibration_run
    from backtest.calibration.fitted import read_calibrated

    a = _event("same", 0.2, 6)
    b = _event("same", 0.4, 7)
    b.spec = b.spec.model_copy(update={"asset": "ETH", "symbol": "ETH/USDT"})
    b.share = (0.3, 0.3)
    cal = _calibration([a, b], [FitParameter(name="leverage_scale", low=0.05, high=3.0,
                                             start=1.0)])
    cal.cfg = cal.cfg.model_copy(update={"max_evaluations": 6, "leave_one_out_evaluations": 4})
    monkeypatch.setattr(calibration_run, "load_calibration", lambda path: cal.cfg)
    monkeypatch.setattr(calibration_run.Calibration, "load", classmethod(
        lambda cls, cfg, store=None: cal))
    (tmp_path / "cal.toml").write_text('name = "t"\n')  # read only for its kind
    full, loo = calibration_run.calibrate_file(tmp_path / "cal.toml", tmp_path / "out.toml")
    rows = read_calibrated(tmp_path / "out.toml").fit_events
    assert [(r["event"], r["asset"]) for r in rows] == [("same", "BTC"), ("same", "ETH")]
    assert [r["simulated_share"] for r in rows] == [round(o.share, 6) for o in full.outcomes]
    import tomllib

    written = tomllib.loads((tmp_path / "out.toml").read_text())["leave_one_out"]
    assert [(r["asset"], r["real_share"]) for r in written] == [
        ("BTC", round(a.real_share, 6)), ("ETH", round(b.real_share, 6))]
    assert [r["simulated_share"] for r in written] == [round(o.share, 6) for o, _ in loo]
    # the perp cure levels are stated at the as-happened policy's maintenance rate
    response = read_calibrated(tmp_path / "out.toml").response
    assert response.perp_reference_maintenance_rate == cal.policy.perp.maintenance_margin_rate


def test_seed_spread_is_the_ratio_over_other_draws_and_leaves_the_seed_alone():
    data = [_event("a", 0.3, 8), _event("b", 0.2, 9)]
    cal = _calibration(data, [FitParameter(name="leverage_scale", low=0.05, high=3.0,
                                           start=1.0)])
    by_hand = []
    for seed in (4, 5, 6):  # the file's seed is 3
        cal.cfg = cal.cfg.model_copy(update={"seed": seed})
        by_hand.append([o.ratio for o in cal.outcomes([0.6])])
    cal.cfg = cal.cfg.model_copy(update={"seed": 3})
    spread = cal.seed_spread([0.6], seeds=3)
    assert cal.cfg.seed == 3
    r = np.array(by_hand)
    for k, (mean, cv) in enumerate(spread):
        assert mean == pytest.approx(r[:, k].mean())
        assert cv == pytest.approx(r[:, k].std(ddof=1) / r[:, k].mean())
        assert cv > 0.0  # different draws, different books


def test_interval_coverage_holds_the_members_interval_against_the_real_share(tmp_path,
                                                                             monkeypatch):
    """``liqbt book coverage``: each event's members (own book seed, own joint draw of the
    fitted parameters) give a p5-p95 that contains the real share when the centre is right,
    and misses it when the refit that left the event out is wrong; in sample, the full fit."""
    from backtest.sweep import coverage

    data = [_event("a", 0.15, 1), _event("b", 0.35, 2)]
    cal = _calibration(data, [FitParameter(name="leverage_scale", low=0.05, high=3.0,
                                           start=1.0)])
    for d, o in zip(data, cal.outcomes([0.4]), strict=True):  # "real" = the truth's figures
        d.share = (o.share, o.share)
    monkeypatch.setattr(coverage, "load_calibration", lambda path: cal.cfg)
    monkeypatch.setattr(coverage.Calibration, "load", classmethod(
        lambda cls, cfg, store=None: cal))

    def fitted(refit_a: float, refit_b: float):
        path = tmp_path / "fitted.toml"
        path.write_text(f"""[book]\nleverage_scale = 0.4\n[fit]\nconfig = "cal.toml"
fitted = ["leverage_scale"]\nfitted_leverage_scale = 0.4
[[leave_one_out]]\nevent = "a"\nasset = "BTC"\nfitted_leverage_scale = {refit_a}
[[leave_one_out]]\nevent = "b"\nasset = "BTC"\nfitted_leverage_scale = {refit_b}
""")
        return path

    rows = coverage.interval_coverage(fitted(0.39, 0.41), members=12, seed=1)
    assert [r.event for r in rows] == ["a", "b"] and all(len(r.shares) == 12 for r in rows)
    assert all(r.p5 <= r.p50 <= r.p95 and r.inside for r in rows)
    assert len({round(s, 12) for s in rows[0].shares}) > 1  # members differ
    assert rows[0].centre == "refit without the event"
    # the refit without "a" far off: a's held-out interval misses, in sample it holds
    wrong = fitted(2.5, 0.41)
    held = coverage.interval_coverage(wrong, members=12, seed=1)
    assert not held[0].inside and held[0].ratio > 1.5
    in_sample = coverage.interval_coverage(wrong, members=12, seed=1, held_out=False)
    assert in_sample[0].centre == "full fit" and in_sample[0].p5 <= in_sample[0].p95
    assert in_sample[0].p50 < held[0].p50
    with pytest.raises(ConfigError, match="at least 2 members"):
        coverage.interval_coverage(wrong, members=1)
    # recorded beside the fitted file, read back as the sentence validate and reports print
    assert coverage.coverage_sentence(wrong) is None
    s = coverage.summary(held)
    assert (s["events"], s["inside"]) == (2, sum(r.inside for r in held))
    path = coverage.write_coverage(wrong, held, 12, 1, "liqbt book coverage x", "2026-12-06")
    assert path == tmp_path / "fitted-coverage.toml"
    sentence = coverage.coverage_sentence(wrong)
    assert f"in {s['inside']}, and" in sentence and "on the 2 past events" in sentence
    assert "held out" in sentence and "12 members, 2026-12-06" in sentence
    assert coverage.coverage_sentence(tmp_path / "other.toml") is None
    # a file an ensemble wrote for a book drawn from it for a venue takes its record
    from backtest.provenance import file_sha256

    drawn = tmp_path / "drawn.toml"
    drawn.write_text(f'[book]\nleverage_scale = 0.4\nrepresents = "bitmex"\n[fit]\n'
                     f'drawn_from = "{wrong}"\ndrawn_from_sha256 = "{file_sha256(wrong)}"\n')
    assert coverage.coverage_sentence(drawn) == sentence
    # refitted since (the file changed): the stale record is not quoted
    wrong.write_text(wrong.read_text() + "\n# refitted\n")
    assert coverage.coverage_sentence(wrong) is None
    assert coverage.coverage_sentence(drawn) is None
    (tmp_path / "short.toml").write_text(
        '[book]\n[fit]\nconfig = "c"\nfitted = ["leverage_scale"]\n'
        'fitted_leverage_scale = 0.4\n[[leave_one_out]]\nevent = "a"\nasset = "BTC"\n'
        'fitted_leverage_scale = 0.4\n')
    with pytest.raises(ConfigError, match="one leave-one-out refit per calibration event"):
        coverage.interval_coverage(tmp_path / "short.toml", members=2)


def test_model_error_widens_the_members_interval_by_the_recorded_discrepancy(tmp_path):
    """The recorded check's held-out errors, less the members' own spread, are the model's
    log error; liquidation figures carry the members' interval widened by it (in variance,
    around the median), which is what the report and liqbt validate show."""
    import math
    from types import SimpleNamespace

    from backtest.sweep.coverage import add_model_error, discrepancy, model_error_band

    z = 1.6448536269514722
    # members spread p50 / 2 .. p50 x 2 (log sd ln 4 / 3.29), model error 0: unchanged
    assert model_error_band(50.0, 100.0, 200.0, 0.0) == pytest.approx((50.0, 200.0))
    lo, hi = model_error_band(50.0, 100.0, 200.0, 0.5)
    sd = math.sqrt((math.log(4) / (2 * z)) ** 2 + 0.25)
    assert (lo, hi) == pytest.approx((100 / math.exp(z * sd), 100 * math.exp(z * sd)))
    assert model_error_band(0.0, 0.0, 5.0, 0.5) == (0.0, 5.0)  # no log scale at zero
    # the recorded events: errors of e^0.6 and e^-0.6 with members spread as above
    fitted = tmp_path / "f.toml"
    fitted.write_text("[book]\n")
    rows = "".join(f'[[coverage.event]]\nratio = {r}\np5 = 0.5\np95 = 2.0\n'
                   for r in (math.exp(0.6), math.exp(-0.6)))
    import hashlib

    sha = hashlib.sha256(fitted.read_bytes()).hexdigest()
    (tmp_path / "f-coverage.toml").write_text(
        f'[coverage]\nfitted = "f.toml"\nfitted_sha256 = "{sha}"\n{rows}')
    assert discrepancy(fitted) == pytest.approx(math.sqrt(0.36 - (math.log(4) / (2 * z)) ** 2))
    assert discrepancy(tmp_path / "none.toml") is None
    # display rows: a liquidation figure gets the band and whether the real range meets it
    target = SimpleNamespace(measure="liquidated_notional_usd", unit="USD", low=350.0,
                             high=360.0)
    other = SimpleNamespace(measure="open_interest_before_usd", unit="USD", low=1.0, high=1.0)
    median = SimpleNamespace(rows=[SimpleNamespace(target=target, simulated=100.0),
                                   SimpleNamespace(target=other, simulated=1.0)])
    ends = [SimpleNamespace(rows=[SimpleNamespace(target=target, simulated=v),
                                  SimpleNamespace(target=other, simulated=1.0)])
            for v in (50.0, 200.0)]
    display = [{}, {}]
    add_model_error(display, median, ends, 1.0)  # 100 x/÷ 5.96 reaches 350
    assert display[0]["band_meets"] == "yes" and "band" not in display[1]
    add_model_error(display, median, ends, 0.0)
    assert display[0]["band_meets"] == "no"  # 50..200 does not reach 350


def _target_toml(id_: str, start: str, end: str, measure: str, usd: float) -> str:
    return (f'[[target]]\nid = "{id_}"\nscope = "venue"\nvenue = "test"\nproduct = "perp"\n'
            f'asset = "BTC"\nwindow_start = {start}\nwindow_end = {end}\n'
            f'measure = "{measure}"\nlow = {usd}\nhigh = {usd}\nunit = "USD"\n'
            'source = "https://example.org/t"\nquality = "primary"\nnote = "test"\n\n')


def test_held_out_targets_are_kept_from_the_fit_and_from_its_fitted_targets(tmp_path):
    """``held_out_targets``: the fit reads its events' figures without them (a held-out
    sub-window is no timing term), the fitted file records them and does not count them
    as fitted, and a key that names no target is a field error."""
    from tests.test_book_positions import crash_store

    crash_store(tmp_path)
    validation = tmp_path / "validation"
    validation.mkdir()
    day, hour = "2021-05-19T00:00:00Z", "2021-05-19T12:00:00Z"
    (validation / "may-2021.toml").write_text(
        'event = "may-2021"\n\n'
        + _target_toml("day", day, "2021-05-20T00:00:00Z", "liquidated_notional_usd", 1e8)
        + _target_toml("oi", day, "2021-05-20T00:00:00Z", "open_interest_before_usd", 1e9)
        + _target_toml("afternoon", hour, "2021-05-20T00:00:00Z",
                       "liquidated_notional_usd", 4e7))
    cfg = CalibrationConfig(
        name="t", book="configs/books/perps-base.toml", policy="hard", interval_minutes=5,
        fit=[FitParameter(name="leverage_scale", low=0.05, high=3.0, start=1.0)],
        event=[EventSpec(event="may-2021", symbol="BTC/USDT", interval="5m", venue="test",
                         asset="BTC")])
    store = tmp_path / "tapes"
    (fitted,) = Calibration.load(cfg, store=store, validation=validation).data
    assert [w[2] for w in fitted.windows] == [pytest.approx(0.4)]
    held = cfg.model_copy(update={"held_out_targets": ["may-2021/afternoon"]})
    (checked,) = Calibration.load(held, store=store, validation=validation).data
    assert checked.windows == () and checked.share == fitted.share
    row = {"event": "may-2021", "venue": "test", "asset": "BTC", "in_fit": True}
    for fit, fitted_keys in (({}, {"may-2021/day", "may-2021/oi", "may-2021/afternoon"}),
                             ({"held_out_targets": ["may-2021/afternoon"]},
                              {"may-2021/day", "may-2021/oi"})):
        path = write_calibrated(tmp_path / "f.toml", BookParams(), ResponseConfig(), fit, [row],
                                [], "test")
        assert set(read_calibrated(path, validation).fit_targets) == fitted_keys
    unknown = cfg.model_copy(update={"held_out_targets": ["may-2021/evening"]})
    with pytest.raises(ConfigError, match="held_out_targets.*may-2021/evening"):
        Calibration.load(unknown, store=store, validation=validation)
