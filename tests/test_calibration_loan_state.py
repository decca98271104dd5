"""Loan-state calibration: a fit recovers the loan-to-value a book was drawn with; bad files
are named; the calibrated file marks exactly its targets as in the fit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from backtest.books.generate import BookParams, generate_book
from backtest.books.summary import summarize_book
from backtest.calibration.fitted import fit_targets, read_calibrated
from backtest.calibration.loan_state import (
    LoanStateFit,
    LoanStateParameter,
    debt_to_collateral,
    load_loan_state,
    real_ratio,
)
from backtest.calibration.run import calibrate_file
from backtest.errors import ConfigError
from backtest.tapes import TapeStore
from backtest.targets import load_targets
from backtest.validation import read_toml
from tests.conftest import Synth

START = datetime(2021, 5, 19, tzinfo=UTC)
BASE = BookParams(loan_fraction=1.0, ltv_min=0.0, ltv_max=0.6667, ltv_beta_b=3.0,
                  survivor_liquidation_threshold=0.6667, lookback_days=3.0, represents="test")


def _tape(seed=4):
    """4 days of hourly candles falling about 10% before START, then 24 flat-ish hours."""
    rng = np.random.default_rng(seed)
    n = 4 * 24 + 24
    close = 200 * np.exp(np.cumsum(rng.normal(-0.001, 0.01, n)))
    open_ = np.r_[close[0], close[:-1]]
    ts = np.array([int((START - timedelta(hours=4 * 24 - k)).timestamp() * 1000)
                   for k in range(n)], dtype=np.int64)
    return ts, close, np.maximum(open_, close) * 1.003, np.minimum(open_, close) * 0.997


def _fit(accounts=20_000, seed=3, low=0.2, high=20.0):
    ts, close, high_, low_ = _tape()

    def draw(params, s):
        return generate_book(accounts, ts, close, low_, high_, START, s, params)

    price = float(close[ts < int(START.timestamp() * 1000)][-1])
    return LoanStateFit(BASE, LoanStateParameter(name="ltv_beta_a", low=low, high=high), draw,
                        price, seed), draw, price


def test_fit_recovers_the_ltv_a_book_was_drawn_with():
    fitter, draw, price = _fit()
    truth = BASE.model_copy(update={"ltv_beta_a": 2.0})
    # the "real" protocol: a book drawn with a = 2 under another seed than the fit's
    real = debt_to_collateral(draw(truth, 11), price)
    assert 0.1 < real < 0.6
    result = fitter.solve(real)
    assert result.value == pytest.approx(2.0, rel=0.1)
    assert result.simulated == pytest.approx(real, rel=0.02)
    # same seed and value: the same book (common random numbers)
    assert fitter.ratio(1.7) == debt_to_collateral(draw(fitter.params(1.7), 3), price)
    # the ratio rises with a (more mass towards ltv_max)
    assert fitter.ratio(0.5) < fitter.ratio(2.0) < fitter.ratio(8.0)


def test_ratio_is_the_books_debt_over_collateral_value():
    fitter, draw, price = _fit(accounts=2_000)
    book = draw(fitter.params(1.3), 5)
    s = summarize_book(book, price=price, liquidation_threshold=None)
    assert debt_to_collateral(book, price) == pytest.approx(
        s["loan_debt_usd"] / s["loan_collateral_usd"], rel=1e-12)


def test_a_bracket_that_cannot_reach_the_real_ratio_is_named():
    fitter, _, _ = _fit(accounts=2_000, low=0.2, high=0.4)
    with pytest.raises(ConfigError, match=r"fit\.ltv_beta_a in \[0\.2, 0\.4\].*0\.9000"):
        fitter.solve(0.9)


GOOD = """
name = "m"
kind = "loan-state"
book = "book.toml"
event = "black-thursday-2020"
symbol = "ETH/USDT"
debt_target = "maker-mcd-eth-borrowed-mar-12"
collateral_target = "maker-eth-collateral"
collateral_may_also_back = ["maker-scd-borrowed"]
[fit]
name = "ltv_beta_a"
low = 0.2
high = 20.0
"""


@pytest.mark.parametrize("change, message", [
    (("low = 0.2", "low = 0.2\nstart = 1.0"), "field 'fit.start': unknown field"),
    (('name = "ltv_beta_a"', 'name = "leverage_scale"'), "field 'fit.name': 'leverage_scale'"),
    (("high = 20.0", "high = 0.1"), "field 'fit.low': need low < high"),
    (('kind = "loan-state"', 'kind = "loan-stat"'), "field 'kind'"),
    (('symbol = "ETH/USDT"\n', ""), "field 'symbol': required field is missing"),
    (('symbol = "ETH/USDT"', 'symbol = "ETH/USDT"\naccounts = 0'),
     "field 'accounts': Input should be greater than 0"),
])
def test_bad_config_fields_are_named(tmp_path, change, message):
    path = tmp_path / "c.toml"
    path.write_text(GOOD.replace(*change))
    with pytest.raises(ConfigError, match=message) as info:
        load_loan_state(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("change, message", [
    (('"maker-eth-collateral"', '"maker-eth-colateral"'),
     "field 'collateral_target': no target 'maker-eth-colateral'"),
    (('debt_target = "maker-mcd-eth-borrowed-mar-12"', 'debt_target = "maker-eth-bad-debt"'),
     "field 'debt_target': target 'maker-eth-bad-debt' measures bad_debt_usd, not borrowed_usd"),
    (('["maker-scd-borrowed"]', '["maker-mcd-eth-borrowed-april"]'),
     "field 'collateral_may_also_back': .* measures borrowed_later_usd"),
])
def test_bad_targets_are_named(tmp_path, change, message):
    path = tmp_path / "c.toml"
    path.write_text(GOOD.replace(*change))
    with pytest.raises(ConfigError, match=message):
        real_ratio(load_loan_state(path), load_targets(), path)


def test_real_ratio_spans_both_readings_of_the_collateral():
    path = Path("configs/calibration/maker.toml")
    real = real_ratio(load_loan_state(path), load_targets(), path)
    debt, collateral = np.sqrt(8.0e7 * 1.14e8), np.sqrt(3.10e8 * 4.66e8)
    assert real.low == pytest.approx(debt / collateral)
    assert real.high == pytest.approx((debt + 2.0e7) / collateral)
    assert real.low < real.middle < real.high


def test_a_row_naming_its_targets_puts_only_those_in_the_fit():
    row = {"event": "black-thursday-2020", "venue": "maker", "asset": "ETH", "in_fit": True,
           "targets": ["maker-mcd-eth-borrowed-mar-12", "maker-eth-collateral"]}
    assert fit_targets([row]) == ["black-thursday-2020/maker-eth-collateral",
                                  "black-thursday-2020/maker-mcd-eth-borrowed-mar-12"]
    # without the list, every liquidation figure of the venue would count as fitted
    legacy = {k: v for k, v in row.items() if k != "targets"}
    assert "black-thursday-2020/maker-eth-liquidated-collateral" in fit_targets([legacy])



def test_a_book_sized_to_a_target_outside_its_fit_shows_it_as_the_runs_input():
    """The Black Thursday vault fit drawn for May 2021 is sized to Maker's ETH vault debt of
    that day: a figure it did not fit, but one it was given, so not held out."""
    from backtest.calibration.compare import RunFacts
    from backtest.calibration.fitted import calibrated_params

    params, meta = calibrated_params("configs/calibration/maker-fitted.toml", "may-2021", "ETH")
    assert meta["sized_to_targets"] == '["may-2021/maker-eth-vaults-borrowed"]'
    assert params.size_usd == pytest.approx((2.995e9 * 3.026e9) ** 0.5)
    manifest = {"window": {"event": "may-2021", "start": "2021-05-19T00:00:00+00:00",
                           "end": "2021-05-20T00:00:00+00:00"},
                "symbol": "ETH/USDT",
                "book": {"meta": {**meta, "venue": "maker"}, "products": {"loan": 1}}}
    facts = RunFacts.from_manifest(manifest)
    assert facts.input_keys == {"may-2021/maker-eth-vaults-borrowed"}
    assert "may-2021/maker-eth-vaults-borrowed" not in facts.fit_keys
    # a sizing target the fit used stays "in fit" (a perp book sized to its fit's open interest)
    both = {**meta, "calibration_fit_targets": meta["sized_to_targets"]}
    assert RunFacts.from_manifest({**manifest, "book": {"meta": both}}).input_keys == set()
    # only the input matches: the comparison says so, and names Maker's all-vault figures
    from backtest.calibration.compare import compare

    class _Source:
        policies = ["maker-clipper"]

        def figures(self, start, end, from_run_start, product):
            return {"maker-clipper": {"borrowed_usd": 3.0e9}}

    pool = [t for t in load_targets() if t.measure != "borrowed_after_usd"]
    comparison = compare(facts, _Source(), targets=pool)
    assert [r.target.key for r in comparison.rows] == ["may-2021/maker-eth-vaults-borrowed"]
    assert any(n.startswith("Only the run's inputs") for n in comparison.notes)
    # Maker's liquidations, published for every vault type together, are named with their
    # figures: the ETH book is not held against them, a reader can compare by hand
    wider = next(n for n in comparison.notes if "only for a group of assets" in n)
    assert "liquidated notional $50M (all, maker-debt-liquidated)" in wider
    assert "maker-eth-vaults-borrowed" not in wider  # the run's input is not among them
    # with the ETH vaults' debt at the window's end (an outcome) only the first note goes
    full = compare(facts, _Source(), targets=load_targets())
    assert "may-2021/maker-eth-vaults-borrowed-after" in {r.target.key for r in full.rows}
    assert not any(n.startswith("Only the run's inputs") for n in full.notes)
    assert any("only for a group of assets" in n for n in full.notes)


EVENTS = """
[loan-crash]
name = "Synthetic lending crash"
start = 2021-05-19T00:00:00Z
end = 2021-05-20T00:00:00Z
symbols = ["ETH/USDT"]
description = "A synthetic day."
"""

TARGET = """
[[target]]
id = "{id}"
scope = "protocol"
venue = "test"
product = "loan"
asset = "ETH"
window_start = 2021-05-19T00:00:00Z
window_end = 2021-05-20T00:00:00Z
measure = "{measure}"
low = {value}
high = {value}
unit = "USD"
source = "https://example.org/synthetic"
quality = "primary"
note = "synthetic"
"""


def test_calibrate_file_dispatches_a_loan_state_file_end_to_end(tmp_path, monkeypatch):
    start_ms = int((START - timedelta(days=4)).timestamp() * 1000)
    src = Synth.ft_json(tmp_path / "src" / "ETH_USDT-5m.json",
                        Synth.rows(5 * 288, start_ms, interval_s=300, seed=2, price=200.0))
    TapeStore(tmp_path / "tapes").import_file(src, venue="binance")
    events = tmp_path / "events.toml"
    events.write_text(EVENTS)
    (tmp_path / "book.toml").write_text(
        "\n".join(f"{k} = {v!r}" if not isinstance(v, str) else f'{k} = "{v}"'
                  for k, v in BASE.model_dump(exclude_none=True).items()
                  if k in ("loan_fraction", "ltv_min", "ltv_max", "ltv_beta_b", "lookback_days",
                           "survivor_liquidation_threshold", "represents")))
    from backtest.books.event import book_for_event, load_book_params

    truth = load_book_params(tmp_path / "book.toml").model_copy(update={"ltv_beta_a": 2.5})
    book = book_for_event(20_000, "loan-crash", 99, "ETH/USDT", params=truth,
                          store=tmp_path / "tapes", events=events)
    a = TapeStore(tmp_path / "tapes").resolve("ETH/USDT", START - timedelta(days=3), START,
                                               None, None, None).arrays()
    price = float(a["close"][a["timestamp"] < int(START.timestamp() * 1000)][-1])
    ratio = debt_to_collateral(book, price)
    validation = tmp_path / "validation"
    validation.mkdir()
    (validation / "loan-crash.toml").write_text(
        'event = "loan-crash"\n'
        + TARGET.format(id="debt", measure="borrowed_usd", value=1.0e8)
        + TARGET.format(id="collateral", measure="collateral_usd", value=1.0e8 / ratio))
    cfg = tmp_path / "cal.toml"
    cfg.write_text(f'name = "t"\nkind = "loan-state"\nbook = "{tmp_path / "book.toml"}"\n'
                   'event = "loan-crash"\nsymbol = "ETH/USDT"\naccounts = 20000\nseed = 5\n'
                   'debt_target = "debt"\ncollateral_target = "collateral"\n'
                   '[fit]\nname = "ltv_beta_a"\nlow = 0.2\nhigh = 20.0\n')
    monkeypatch.setenv("LIQBT_EVENTS", str(events))
    monkeypatch.setenv("LIQBT_VALIDATION", str(validation))
    out = tmp_path / "fitted.toml"
    fit, loo = calibrate_file(cfg, out, store=tmp_path / "tapes")
    assert loo == []
    assert fit["fitted_ltv_beta_a"] == pytest.approx(2.5, rel=0.1)
    # no other debt: both readings of the collateral are the same
    assert fit["fitted_ltv_beta_a_low_end"] == fit["fitted_ltv_beta_a_high_end"]
    cal = read_calibrated(out, validation=validation)
    assert cal.book.ltv_beta_a == fit["fitted_ltv_beta_a"]
    assert cal.book.ltv_min == 0.0 and cal.book.represents == "test"
    assert cal.fit_events[0]["targets"] == ["debt", "collateral"]


def test_the_morpho_book_is_fitted_on_its_markets_state_and_holds_the_crash_out():
    path = Path("configs/calibration/morpho-cbbtc.toml")
    real = real_ratio(load_loan_state(path), load_targets(), path)
    # one reading (no other debt): USDC borrowed over cbBTC valued at the window start
    assert real.low == real.middle == real.high
    assert real.middle == pytest.approx(np.sqrt(9.0002e8 * 9.0030e8)
                                        / np.sqrt(1.7406e9 * 1.7410e9))
    cal = read_calibrated("configs/calibration/morpho-cbbtc-fitted.toml")
    assert cal.fit_targets == ["oct-2025/morpho-blue-cbbtc-base-borrowed",
                               "oct-2025/morpho-blue-cbbtc-base-collateral"]
    (row,) = cal.fit_events
    assert row["real_debt_to_collateral"] == pytest.approx(real.middle)
    assert abs(row["ratio"] - 1.0) < 5e-3  # a step function of a at a fixed seed
    assert cal.book.survivor_liquidation_threshold == 0.86
    # the shape fitted to the market's debt-weighted LTV quantiles (state at the window start)
    cfg = load_loan_state(path)
    fit = read_toml("configs/calibration/morpho-cbbtc-fitted.toml")["fit"]
    assert fit["fitted"] == ["ltv_beta_a", "ltv_beta_b", "ltv_max"]
    assert fit["quantile_ltv_real"] == [q.ltv for q in cfg.quantile]
    np.testing.assert_allclose(fit["quantile_ltv_simulated"], fit["quantile_ltv_real"],
                               rtol=0.05)
    assert 0.75 < cal.book.ltv_max < 0.86  # the tail above the app's 75% maximum draw


def test_shape_fit_recovers_the_shape_a_book_was_drawn_with():
    """The tail fit: quantiles of a book drawn with (a, b, ltv_max) = (2.5, 1.5, 0.62) under
    another seed, fitted from b = 3, ltv_max = 0.55 with a solved for the ratio each time."""
    from types import SimpleNamespace

    from backtest.calibration.loan_shape import debt_weighted_ltv_quantiles, fit_shape

    _, draw, price = _fit(accounts=4_000)
    base = BASE.model_copy(update={"survivor_liquidation_threshold": 0.86})  # tail not cut
    truth = base.model_copy(update={"ltv_beta_a": 2.5, "ltv_beta_b": 1.5, "ltv_max": 0.62})
    real_book = draw(truth, 11)
    qs = [0.25, 0.5, 0.75, 0.9, 0.99]
    real_q = debt_weighted_ltv_quantiles(real_book, price, qs)
    cfg = SimpleNamespace(
        fit=LoanStateParameter(name="ltv_beta_a", low=0.2, high=20.0),
        shape=[LoanStateParameter(name="ltv_beta_b", low=0.3, high=10.0),
               LoanStateParameter(name="ltv_max", low=0.45, high=0.80)],
        quantile=[SimpleNamespace(q=q, ltv=v) for q, v in zip(qs, real_q, strict=True)])
    start = base.model_copy(update={"ltv_max": 0.55})
    shape = fit_shape(cfg, start, lambda p: LoanStateFit(p, cfg.fit, draw, price, 3),
                      debt_to_collateral(real_book, price))
    assert shape.values["ltv_max"] == pytest.approx(0.62, abs=0.02)
    assert shape.values["ltv_beta_b"] == pytest.approx(1.5, rel=0.3)
    np.testing.assert_allclose(shape.simulated, real_q, rtol=0.03)
    # the held shape could not: its quantiles miss the tail by far more
    held = LoanStateFit(start, cfg.fit, draw, price, 3)
    held_q = debt_weighted_ltv_quantiles(
        draw(held.params(held.solve(debt_to_collateral(real_book, price)).value), 3), price, qs)
    assert abs(held_q[-1] / real_q[-1] - 1) > 0.05


def test_shape_fields_are_checked(tmp_path):
    path = tmp_path / "c.toml"
    for extra, message in (
            ('[[shape]]\nname = "ltv_beta_b"\nlow = 0.3\nhigh = 9.0\n', "needs at least as many"),
            ('[[shape]]\nname = "ltv_beta_a"\nlow = 0.3\nhigh = 9.0\n', "fitted twice"),
            ('[[shape]]\nname = "leverage"\nlow = 0.3\nhigh = 9.0\n', r"shape\[0\].name")):
        path.write_text(GOOD + extra)
        with pytest.raises(ConfigError, match=message):
            load_loan_state(path)


def test_the_aave_reserve_fit_is_sized_by_deposits_and_records_each_event_left_out():
    """The shipped Aave v2 WETH fit: its targets are the reserve's deposits, its liquidations
    and their windows (not the counts, which depend on the number of accounts); a book drawn
    from it is sized to the deposits, a figure of its fit; the leave-one-out rows, each event
    predicted by a fit on the others alone, are what docs/calibration.md quotes."""
    import json
    import math

    from backtest.calibration.fitted import calibrated_params

    path = "configs/calibration/aave-v2-weth-fitted.toml"
    keys = set(read_calibrated(path).fit_targets)
    events = ("feb-2021", "apr-2021", "may-2021", "may-2021-weekend")
    for event in events:
        assert {f"{event}/aave-v2-weth-deposits", f"{event}/aave-v2-weth-liquidated"} <= keys
        assert f"{event}/aave-v2-weth-liquidations-count" not in keys
    assert "may-2021/aave-v2-weth-liquidated-14-24" in keys  # the timing entered the fit
    params, meta = calibrated_params(path, "may-2021", "ETH")
    assert params.size_basis == "collateral" and params.loan_fraction == 1.0
    assert params.size_usd == pytest.approx(math.sqrt(2.910e9 * 3.125e9))
    assert json.loads(meta["sized_to_targets"]) == ["may-2021/aave-v2-weth-deposits"]
    raw = read_toml(path)
    assert raw["fit"]["timing_weight"] == 10.0 and raw["fit"]["grid_points"] == 5
    held = {row["event"]: row for row in raw["leave_one_out"]}
    assert set(held) == set(events)
    for row in held.values():
        assert not row["in_fit"]
        assert row["ratio"] == pytest.approx(row["simulated_share"] / row["real_share"], rel=1e-3)
