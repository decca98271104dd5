"""Depth scope: a book that stands for a whole market trades against the market's depth.

The tape's depth is one venue pair's; a calibrated perp book standing for ``all-cex`` carries
every venue's liquidation flow, so its run multiplies that depth by ``market_depth_multiple``
(``docs/market-impact.md``). The multiple applies only there (or where set explicitly), never
to an explicit ``depth_usd``; the scope is recorded, and the as-happened policy still moves
nothing.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from backtest.engine.config import (
    MARKET_DEPTH_MULTIPLE,
    MARKET_DEPTH_MULTIPLE_RANGE,
    MarketConfig,
    is_whole_market,
)
from backtest.engine.market import depth_per_step, pre_window_depth
from tests.test_counterfactual_impact import _config_text, _e2e, _tape

SQRT = {"impact_model": "sqrt"}
START, N = 8 * 288, 288


def _venue_depth(**market):
    tape = _tape(seed=11)
    return tape, depth_per_step(MarketConfig(**SQRT, **market), tape, slice(START, START + N))


def test_default_multiple_is_the_geometric_middle_of_the_readings():
    lo, hi = MARKET_DEPTH_MULTIPLE_RANGE
    assert lo == pytest.approx(1 / 0.307, rel=2e-3)
    assert hi == pytest.approx(290 / 16.53 / 0.40, rel=2e-3)
    assert MARKET_DEPTH_MULTIPLE == pytest.approx(np.sqrt(lo * hi), rel=0.01)
    assert [is_whole_market(v) for v in ("all-cex", "ALL-DEFI", "binance", "aave-v3", None, "")
            ] == [True, True, False, False, False, False]


@pytest.mark.parametrize("multiple", [MARKET_DEPTH_MULTIPLE, 1.0, 3.7])
def test_market_scope_depth_is_venue_depth_times_the_multiple_exactly(multiple):
    tape, (venue, venue_info) = _venue_depth()
    cfg = MarketConfig(**SQRT, market_depth_multiple=multiple)
    depth, info = depth_per_step(cfg, tape, slice(START, START + N), book_venue="all-cex")
    np.testing.assert_array_equal(depth, venue * multiple)
    assert info["scope"] == "market" and info["book_venue"] == "all-cex"
    assert info["market_depth_multiple"] == multiple
    assert info["venue_depth_usd"] == venue_info["depth_usd"]
    assert info["depth_usd"] == venue_info["depth_usd"] * multiple


@pytest.mark.parametrize("venue", [None, "binance", "aave-v3", "maker", "hyperliquid"])
def test_the_multiple_does_not_apply_to_a_venue_or_protocol_book(venue):
    tape, (plain, _) = _venue_depth()
    depth, info = depth_per_step(MarketConfig(**SQRT), tape, slice(START, START + N),
                                 book_venue=venue)
    np.testing.assert_array_equal(depth, plain)
    assert info["scope"] == "venue" and "market_depth_multiple" not in info
    assert "scope_note" not in info


def test_explicit_scopes_override_the_book_and_venue_on_a_market_book_is_recorded():
    tape, (plain, _) = _venue_depth()
    window = slice(START, START + N)
    depth, info = depth_per_step(MarketConfig(**SQRT, depth_scope="venue"), tape, window,
                                 book_venue="all-cex")
    np.testing.assert_array_equal(depth, plain)
    assert info["scope"] == "venue" and "all-cex" in info["scope_note"]
    depth, info = depth_per_step(MarketConfig(**SQRT, depth_scope="market",
                                              market_depth_multiple=5.0), tape, window)
    np.testing.assert_array_equal(depth, plain * 5.0)
    assert info["scope"] == "market" and info["book_venue"] is None


@pytest.mark.parametrize("scope", ["book", "market", "venue"])
def test_explicit_depth_usd_wins_whatever_the_scope(scope):
    tape = _tape(seed=11)
    cfg = MarketConfig(**SQRT, depth_usd=3e7, depth_scope=scope, market_depth_multiple=9.0)
    depth, info = depth_per_step(cfg, tape, slice(START, START + N), book_venue="all-cex")
    np.testing.assert_array_equal(depth, np.full(N, 3e7))
    assert info == {"source": "constant", "depth_usd": 3e7}


def test_hourly_volume_and_thinned_depths_scale_too():
    tape = _tape(seed=11)
    window = slice(START, START + N)
    hourly = MarketConfig(**SQRT, depth_source="hourly_volume")
    venue, _ = depth_per_step(hourly, tape, window)
    market, info = depth_per_step(hourly, tape, window, book_venue="all-cex")
    np.testing.assert_array_equal(market, venue * MARKET_DEPTH_MULTIPLE)
    assert info["scope"] == "market"
    thin = MarketConfig(**SQRT, depth_volatility_exponent=1.0)
    venue, vinfo = pre_window_depth(tape, START, N, 7.0, 0.12, 1.0, 60.0)
    market, info = depth_per_step(thin, tape, window, book_venue="all-cex")
    np.testing.assert_array_equal(market, venue * MARKET_DEPTH_MULTIPLE)
    assert info["min_depth_usd"] == vinfo["min_depth_usd"] * MARKET_DEPTH_MULTIPLE


@pytest.mark.parametrize(("line", "field"), [
    ("market_depth_multiple = 0.5", "market.market_depth_multiple"),
    ("market_depth_multiple = 0", "market.market_depth_multiple"),
    ('market_depth_multiple = "lots"', "market.market_depth_multiple"),
    ('depth_scope = "global"', "market.depth_scope"),
])
def test_invalid_scope_settings_name_the_field(tmp_path, line, field):
    from backtest.engine.config import load_run_config
    from backtest.errors import ConfigError

    path = tmp_path / "c.toml"
    path.write_text(_config_text("b.parquet", "x", f'impact_model = "sqrt"\n{line}\n'))
    with pytest.raises(ConfigError, match=rf"c\.toml.*{field}"):
        load_run_config(path)


# ----------------------------------------------------------------------------------------------
# end to end: a whole-market book, counterfactual impact


@pytest.fixture(scope="module")
def market_runs(tmp_path_factory):
    from backtest.engine.run import execute

    root, _, book_path = _e2e(tmp_path_factory, meta={"symbol": "BTC/USDT", "venue": "all-cex"})
    out = {}
    for name, market in (
            ("plain", 'impact_model = "none"\n'),
            ("cf", 'impact_model = "sqrt"\ncascade = true\ncounterfactual = true\n'
                   'as_happened_policy = "partial"\npre_window_depth_fraction = 0.002\n'
                   'market_depth_multiple = 2.5\n'),
            ("cf-venue", 'impact_model = "sqrt"\ncascade = true\ncounterfactual = true\n'
                         'as_happened_policy = "partial"\npre_window_depth_fraction = 0.002\n'
                         'depth_scope = "venue"\n')):
        path = root / f"{name}.toml"
        path.write_text(_config_text(book_path, name, market))
        out[name] = execute(path, runs=root / "runs", store=root / "tapes",
                            show_progress=False)[1]
    return out


def test_market_scope_run_keeps_the_as_happened_policy_on_history(market_runs):
    import polars as pl

    plain, cf = market_runs["plain"], market_runs["cf"]
    for table in ("steps", "accounts", "liquidations"):
        a = pl.read_parquet(plain / f"{table}.parquet").drop("run_id")
        b = pl.read_parquet(cf / f"{table}.parquet").drop("run_id")
        a, b = (x.filter(pl.col("policy") == "partial") for x in (a, b))
        if table == "steps":
            assert (b["impact_flow_usd"] == 0.0).all() and (b["price_departure"] == 0.0).all()
            a, b = (x.drop("as_happened_flow_usd", "impact_flow_usd") for x in (a, b))
        assert len(a) > 0 and a.equals(b), table


def test_market_scope_is_in_the_manifest_and_moves_less(market_runs):
    import polars as pl

    m = json.loads((market_runs["cf"] / "manifest.json").read_text())["market"]
    v = json.loads((market_runs["cf-venue"] / "manifest.json").read_text())["market"]
    assert m["depth_scope"] == "book" and m["market_depth_multiple"] == 2.5
    assert m["depth"]["scope"] == "market" and m["depth"]["book_venue"] == "all-cex"
    assert m["depth"]["depth_usd"] == v["depth"]["depth_usd"] * 2.5
    assert v["depth"]["scope"] == "venue" and "all-cex" in v["depth"]["scope_note"]

    def low(run):
        steps = pl.read_parquet(run / "steps.parquet").filter(pl.col("policy") == "hard")
        return steps["price_departure"].min()

    # a deeper market: the same excess flow departs less from history (but still departs)
    assert low(market_runs["cf-venue"]) < low(market_runs["cf"]) < 0.0


def test_report_text_names_the_scope():
    from backtest.report.build import market_text

    base = {"impact_model": "sqrt", "depth_source": "pre_window",
            "pre_window_depth_fraction": 0.12, "pre_window_days": 7}
    text = market_text({**base, "depth": {"scope": "market", "book_venue": "all-cex",
                                          "market_depth_multiple": 12.0, "depth_usd": 1e8}})
    assert "x 12, the whole market's depth" in text and "stands for all-cex" in text
    text = market_text({**base, "depth": {"scope": "venue", "book_venue": "binance",
                                          "depth_usd": 8e6}})
    assert "depth scope: venue" in text and "x 12" not in text
    text = market_text({**base, "depth": {"scope": "venue", "book_venue": "all-cex",
                                          "scope_note": "one venue's depth on a book standing "
                                          "for all-cex (depth_scope = 'venue' set explicitly)",
                                          "depth_usd": 8e6}})
    assert "impacts overstated" in text


def test_ensemble_draws_the_multiple_range_for_a_market_book_only():
    from backtest.books.generate import BookParams
    from backtest.sweep.config import RunSections
    from backtest.sweep.ensemble import DEFAULT_DEPTH_FACTOR, EnsembleSpec, default_ranges

    run = RunSections.model_validate({"market": {"impact_model": "sqrt"}})
    spec = EnsembleSpec(members=2)
    lo, hi = MARKET_DEPTH_MULTIPLE_RANGE
    r = default_ranges(spec, BookParams(represents="all-cex"), None, {}, run, "x", "BTC")
    d = r.draws["depth_factor"]
    assert d.distribution == "loguniform"
    assert (d.low, d.high) == (lo / MARKET_DEPTH_MULTIPLE, hi / MARKET_DEPTH_MULTIPLE)
    for represents in (None, "binance", "aave-v3"):
        d = default_ranges(spec, BookParams(represents=represents), None, {}, run, "x",
                           "BTC").draws["depth_factor"]
        assert (d.low, d.high) == DEFAULT_DEPTH_FACTOR
    fixed = RunSections.model_validate({"market": {"impact_model": "sqrt", "depth_usd": 1e8}})
    d = default_ranges(spec, BookParams(represents="all-cex"), None, {}, fixed, "x",
                       "BTC").draws["depth_factor"]
    assert (d.low, d.high) == DEFAULT_DEPTH_FACTOR
