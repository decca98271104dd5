"""A venue's matching engine liquidates at once: the run's [keepers] section does not apply to it.

``liquidator = "engine"`` policies (binance-usdtm, bitmex, hyperliquid, dydx-v4) run under the
market record with keeper latency, profit test and capital at 0
(:func:`backtest.engine.market.for_liquidator`); keeper policies keep the configured keepers.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from backtest.engine.config import KeeperConfig, MarketConfig, OracleConfig
from backtest.engine.market import for_liquidator, market_record
from tests.test_counterfactual_impact import _e2e

KEEPERS = "[keepers]\nlatency_minutes = 30\ncapital_usd_per_step = 1000.0\n"


def test_an_engine_record_drops_every_keeper_constraint_and_keeps_the_rest():
    rec = market_record(MarketConfig(impact_model="sqrt"), OracleConfig(),
                        KeeperConfig(latency_minutes=30, requires_profit=True,
                                     capital_usd_per_step=5e6), 300)
    engine = for_liquidator(rec, "engine")
    assert for_liquidator(rec, "keepers") is rec
    assert rec["keeper_latency_steps"] == 6 and rec["keeper_requires_profit"] == 1
    assert engine["keeper_latency_steps"] == 0 and engine["keeper_requires_profit"] == 0
    assert engine["keeper_capital_usd"] == 0.0 and rec["keeper_capital_usd"] == 5e6
    others = [f for f in rec.dtype.names if not f.startswith("keeper_")]
    assert all(np.array_equal(engine[f], rec[f]) for f in others)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from backtest.engine.run import execute

    root, store, book = _e2e(tmp_path_factory)
    out = {}
    for name, keepers in (("free", ""), ("slow", KEEPERS)):
        path = root / f"{name}.toml"
        path.write_text(
            f'name = "{name}"\nstart = 2021-05-19T00:00:00Z\nend = 2021-05-20T00:00:00Z\n'
            f'symbol = "BTC/USDT"\nbook = "{book}"\npolicies = ["hard", "binance-usdtm"]\n'
            f'[tape]\nvenue = "binance"\ninterval = "5m"\n{keepers}')
        out[name] = execute(path, runs=root / "runs", store=store, show_progress=False)[1]
    return out


def _table(run, table, policy):
    return (pl.read_parquet(run / f"{table}.parquet").filter(pl.col("policy") == policy)
            .drop("run_id"))


def test_slow_keepers_change_the_keeper_policy_but_not_the_engine_policy(runs):
    for table in ("steps", "accounts", "liquidations"):
        free, slow = (_table(runs[k], table, "binance-usdtm") for k in ("free", "slow"))
        assert len(free) > 0 and free.equals(slow), table
    free, slow = (_table(runs[k], "liquidations", "hard") for k in ("free", "slow"))
    assert len(free) > 0 and not free.equals(slow)
