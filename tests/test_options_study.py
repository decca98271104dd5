"""Short options breach earlier than linear perps on a synthetic crash (gamma and vega)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import polars as pl
import pytest

from backtest.options import OptionsBookParams, OptionsMarket, generate_options_book
from backtest.options.study import (
    GROUP_DELTA,
    GROUP_FROZEN,
    GROUP_OPTIONS,
    GROUP_PERPS,
    breach_comparison,
    perp_breach_steps,
)
from backtest.report.risk_figures import breach_curves_figure

START = datetime(2022, 11, 8, tzinfo=UTC)


@pytest.fixture(scope="module")
def crash():
    """BTC falls 22% in a day of 5-minute candles while implied volatility doubles."""
    steps = 288
    ts = int(START.timestamp() * 1000) + np.arange(steps, dtype=np.int64) * 300_000
    close = 20_000.0 * np.exp(np.linspace(0.0, np.log(0.78), steps))
    iv = np.linspace(0.55, 1.10, steps)
    market = OptionsMarket.single(ts, 300, "BTC", close * 0.999, close * 1.001, close, iv)
    params = OptionsBookParams(underlying_weights={"BTC": 1.0},
                               strategy_weights={"short_put": 0.5, "short_strangle": 0.3,
                                                 "short_straddle": 0.2})
    book = generate_options_book(800, START, {"BTC": float(close[0])}, {"BTC": 0.55}, seed=3,
                                 params=params)
    return market, breach_comparison(market, book)


def _share(curves: pl.DataFrame, group: str) -> np.ndarray:
    return curves.filter(pl.col("group") == group)["share_liquidated"].to_numpy()


def test_short_options_breach_earlier_than_perps_of_the_same_notional(crash):
    _, res = crash
    options, perps = _share(res.curves, GROUP_OPTIONS), _share(res.curves, GROUP_PERPS)
    assert np.all(options >= perps)
    summary = {r["group"]: r for r in res.summary().iter_rows(named=True)}
    assert summary[GROUP_OPTIONS]["half_liquidated_step"] < (
        summary[GROUP_PERPS]["half_liquidated_step"] or 10**9)
    assert options[-1] > 0.8


def test_gamma_and_vega_not_delta_make_the_difference(crash):
    _, res = crash
    options, delta = _share(res.curves, GROUP_OPTIONS), _share(res.curves, GROUP_DELTA)
    frozen = _share(res.curves, GROUP_FROZEN)
    # perps with the options' delta and health barely breach: the linear part is not it
    assert np.all(options >= delta) and options[-1] > 3 * delta[-1]
    # rising implied volatility (short vega) liquidates earlier than a frozen one
    assert np.all(options >= frozen) and options[144] > frozen[144] + 0.1
    acc = res.accounts
    assert (acc["gamma_usd"] < 0).all() and (acc["vega_usd"] < 0).all()


def test_curves_are_cumulative_shares_and_figure_builds(crash):
    market, res = crash
    for group in (GROUP_OPTIONS, GROUP_FROZEN, GROUP_PERPS, GROUP_DELTA):
        s = _share(res.curves, group)
        assert s.size == market.timestamp_ms.size
        assert np.all(np.diff(s) >= 0) and 0 <= s[0] and s[-1] <= 1
    fig = breach_curves_figure(res.curves)
    assert len(fig.data) == 4 and fig.layout.yaxis.title.text


def test_perp_breach_steps_match_a_direct_scan():
    rng = np.random.default_rng(4)
    low = 100 * np.exp(np.cumsum(rng.normal(-0.002, 0.01, 200)))
    high = low * 1.01
    units = rng.choice([-1.0, 1.0], 300) * rng.uniform(0.5, 2, 300)
    cash = -units * 100 + np.abs(units) * 100 * rng.uniform(0.02, 0.3, 300)
    m = rng.uniform(0.005, 0.05, 300)
    got = perp_breach_steps(low, high, units, cash, m)
    for i in range(300):
        x = low if units[i] > 0 else high
        under = np.flatnonzero(cash[i] + units[i] * x < m[i] * abs(units[i]) * x)
        assert got[i] == (under[0] if under.size else -1)
