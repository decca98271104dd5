"""``liqbt portfolio run``: config validation, end to end on a synthetic world, reproducibility."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from backtest.cli import main
from backtest.errors import ConfigError
from backtest.portfolio.pipeline import load_run_tables, run_portfolio_config
from backtest.portfolio.run_config import load_portfolio_config
from backtest.tapes import TapeStore
from tests.conftest import T0, Synth

DAY_MS = 86_400_000
START_MS = T0 + 2 * DAY_MS  # two days of history: realised volatility of the options' IV
WINDOW_STEPS = 72  # six hours of 5-minute steps

EVENTS = """
[synthetic-crash]
name = "synthetic crash"
start = 2021-05-21T00:00:00Z
end = 2021-05-21T06:00:00Z
symbols = ["BTC/USDT", "ETH/USDT"]
description = "a made-up 35% crash"
"""

CONFIG = """
name = "synthetic-portfolio"
description = "a <b>synthetic</b> crash"
event = "synthetic-crash"
seed = 11

[tapes]
missing = "error"

[portfolio]
accounts = 400
orders = ["protocol", "least_sensitive", "proportional"]

[options]
accounts = 150
underlyings = ["BTC", "ETH"]
interval = "5m"
breach_accounts = 60

[liquidation_at_risk]
every = 12
shocks = [-0.3, -0.1, 0.0, 0.1]
options_every = 12
vol_shocks = [0.0, 0.2]
"""


def _crash_rows(price: float, seed: int, drop: float) -> list[list[float]]:
    """5-minute candles from T0 to the window's end; the window falls by ``drop``."""
    rng = np.random.default_rng(seed)
    n = (START_MS - T0) // 300_000 + WINDOW_STEPS
    drift = np.zeros(n)
    drift[-WINDOW_STEPS:] = np.log(1.0 - drop) / WINDOW_STEPS
    close = price * np.exp(np.cumsum(drift + rng.normal(0.0, 0.003, n)))
    opens = np.concatenate([[price], close[:-1]])
    rows = []
    for i in range(n):
        o, c = float(opens[i]), float(close[i])
        rows.append([T0 + i * 300_000, o, max(o, c) * 1.002, min(o, c) * 0.998, c, 10.0])
    return rows


@pytest.fixture
def world(tmp_path):
    """A tape store with BTC and ETH 5m candles, an event catalog and a config file."""
    return make_portfolio_world(tmp_path)


def make_portfolio_world(tmp: Path, config: str = CONFIG) -> dict:
    """Write BTC and ETH 5m crash tapes into a store, the event catalog and ``config``."""
    store = TapeStore(tmp / "store")
    for name, price, seed, drop in (("BTC_USDT-5m.json", 40_000.0, 1, 0.30),
                                    ("ETH_USDT-5m.json", 3_000.0, 2, 0.35)):
        store.import_file(Synth.ft_json(tmp / "in" / name, _crash_rows(price, seed, drop)),
                          venue="binance")
    events = tmp / "events.toml"
    events.write_text(EVENTS)
    path = tmp / "portfolio.toml"
    path.write_text(config)
    return {"store": store.root, "events": events, "config": path, "tmp": tmp}


def _error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_portfolio_config(path)
    assert "bad.toml" in str(exc.value)
    return str(exc.value)


def test_config_errors_name_the_file_and_field(tmp_path):
    msg = _error(tmp_path, CONFIG.replace("accounts = 400", "acounts = 400"))
    assert "portfolio.acounts" in msg and "unknown field" in msg
    assert "portfolio.accounts" in msg and "required" in msg
    msg = _error(tmp_path, CONFIG.replace("shocks = [-0.3, -0.1, 0.0, 0.1]",
                                          "shocks = [0.1, -0.3]"))
    assert "liquidation_at_risk.shocks" in msg and "increasing" in msg
    msg = _error(tmp_path, CONFIG.replace('orders = ["protocol", "least_sensitive", '
                                          '"proportional"]', 'orders = ["largest"]'))
    assert "liquidation_at_risk.order" in msg
    msg = _error(tmp_path, CONFIG.replace('orders = ["protocol"', 'orders = ["cheapest"'))
    assert "portfolio.orders[0]" in msg
    msg = _error(tmp_path, CONFIG.replace("breach_accounts = 60",
                                          "breach_accounts = 60\nspread = 0.1"))
    assert "options.spread" in msg  # belongs in [options.params]
    msg = _error(tmp_path, CONFIG + "\n[portfolio.params]\nclose_factor = 2.0\n")
    assert "portfolio.params.close_factor" in msg
    msg = _error(tmp_path, CONFIG + "\n[portfolio.params]\norder = \"largest\"\n")
    assert "portfolio" in msg and "params.order" in msg
    msg = _error(tmp_path, CONFIG.replace('iv_source', 'x').replace(
        'interval = "5m"', 'interval = "5m"\niv_source = "auto"'))
    assert "dvol" in msg


def test_the_luna_config_in_the_repository_is_valid():
    cfg = load_portfolio_config(Path(__file__).resolve().parents[1] / "configs" /
                                "luna-2022-portfolio.toml")
    assert cfg.portfolio.accounts == 1_000_000 and cfg.options.accounts == 100_000
    assert cfg.tapes.missing == "hold" and cfg.event == "luna-2022"
    assert set(cfg.portfolio.orders) == {"protocol", "least_sensitive", "largest",
                                         "proportional"}


def test_command_runs_end_to_end_and_writes_the_report(world, capsys):
    out = world["tmp"] / "report.html"
    code = main(["portfolio", "run", str(world["config"]), "--store", str(world["store"]),
                 "--runs", str(world["tmp"] / "runs"), "--events", str(world["events"]),
                 "--report", "--out", str(out), "-q"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "protocol" in printed and "peak RSS" in printed
    run_dirs = list((world["tmp"] / "runs" / "portfolio").iterdir())
    assert len(run_dirs) == 1 and not run_dirs[0].name.startswith(".")
    manifest, tables = load_run_tables(run_dirs[0])
    for name in ("order_comparison", "portfolio_steps", "portfolio_assets", "lar_portfolio",
                 "options_steps", "options_accounts", "lar_options", "breach_curves",
                 "breach_summary", "options_iv"):
        assert name in tables and not tables[name].is_empty(), name
    assert manifest["runtime"]["peak_rss_mb"] > 0 and manifest["timings"]["total_s"] > 0
    assert manifest["portfolio_book"]["accounts"] == 400
    # the crash liquidates something, and every order policy is compared on every asset
    cmp = tables["order_comparison"]
    assert cmp.height == 3 * 3 and cmp.filter(pl.col("symbol") == "ALL")[
        "liquidated_notional_usd"].min() > 0
    # LAR snapshots every 12 steps after the first, one row per shock (x vol shock)
    lar = tables["lar_portfolio"]
    assert sorted(lar["step"].unique().to_list()) == [12, 24, 36, 48, 60]
    assert lar.filter(pl.col("shock") == -0.3)["liquidated_notional_usd"].sum() > \
        lar.filter(pl.col("shock") == 0.0)["liquidated_notional_usd"].sum()
    assert tables["lar_options"]["vol_shock"].unique().len() == 2
    html = out.read_text()
    for element in ("asset-liquidations", "order-comparison", "options-greeks",
                    "options-vs-perps", "liquidation-at-risk", "order-finding", "order-table",
                    "asset-totals", "breach-table"):
        assert f'id="{element}"' in html, element
    for div in ("fig-asset-liquidations", "fig-order-comparison", "fig-options-greeks",
                "fig-options-greeks-start", "fig-breach-curves", "fig-lar-portfolio",
                "fig-lar-options"):
        assert re.search(rf'<div id="{div}"', html), div
    assert html.count("liqbtPlot(") >= 7
    from backtest.report.plotlyjs import plotlyjs_payload

    assert html.count(plotlyjs_payload()) == 1  # plotly.js embedded once, inline (gzip)
    assert "<script src=" not in html  # self-contained
    assert "Tested, not assumed" in html
    assert "<b>synthetic</b>" not in html and "&lt;b&gt;synthetic&lt;/b&gt;" in html


def test_same_seed_same_results(world):
    cfg = load_portfolio_config(world["config"], ["portfolio.accounts=200",
                                                  "options.accounts=80",
                                                  "options.breach_accounts=30"])
    kw = {"store": world["store"], "events": world["events"]}
    _, dir_a, man_a = run_portfolio_config(cfg, runs=world["tmp"] / "a", **kw)
    _, dir_b, man_b = run_portfolio_config(cfg, runs=world["tmp"] / "b", **kw)
    _, ta = load_run_tables(dir_a)
    _, tb = load_run_tables(dir_b)
    assert ta.keys() == tb.keys()
    for name in ta:  # the catalog's tables name their run: ids differ, nothing else
        assert ta[name].drop("run_id", strict=False).equals(
            tb[name].drop("run_id", strict=False)), name
    assert json.dumps(man_a["portfolio_summary"]) == json.dumps(man_b["portfolio_summary"])
    other = load_portfolio_config(world["config"], ["portfolio.accounts=200",
                                                    "options.accounts=80", "seed=12",
                                                    "options.breach_accounts=30"])
    _, dir_c, _ = run_portfolio_config(other, runs=world["tmp"] / "c", **kw)
    _, tc = load_run_tables(dir_c)
    assert not tc["order_comparison"].equals(ta["order_comparison"])


def test_missing_tape_is_a_clear_error(world, tmp_path):
    events = tmp_path / "events2.toml"
    events.write_text(EVENTS.replace('symbols = ["BTC/USDT", "ETH/USDT"]',
                                     'symbols = ["BTC/USDT", "SOL/USDT"]'))
    code = main(["portfolio", "run", str(world["config"]), "--store", str(world["store"]),
                 "--runs", str(tmp_path / "runs"), "--events", str(events), "-q"])
    assert code == 2
    assert not (tmp_path / "runs" / "portfolio").exists()


def test_long_series_are_bucketed_and_sums_kept():
    from backtest.report.build import MAX_POINTS, bucket_size
    from backtest.report.portfolio import _bucket

    n = 7_001
    frame = pl.DataFrame({
        "timestamp": pl.Series(T0 + np.arange(n, dtype=np.int64) * 60_000).cast(
            pl.Datetime("ms", "UTC")),
        "symbol": ["BTC/USDT"] * n, "liquidated_notional_usd": np.arange(n, dtype=float)})
    out, k = _bucket(frame, "timestamp", ["symbol"], {"liquidated_notional_usd": "sum"})
    assert k == bucket_size(n, MAX_POINTS) == 24 and out.height <= MAX_POINTS
    assert out["liquidated_notional_usd"].sum() == frame["liquidated_notional_usd"].sum()
    assert out["timestamp"][1] == frame["timestamp"][k]
