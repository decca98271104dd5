"""Gas tapes, oracle/keeper config parsing and per-step market inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from backtest.engine.config import KeeperConfig, MarketConfig, OracleConfig, load_run_config
from backtest.engine.market import (
    depth_per_step,
    gas_cost_per_step,
    hourly_usd_volume,
    latency_steps,
    market_record,
    steps_of,
)
from backtest.errors import ConfigError, TapeError
from backtest.kernels.enums import OracleModel
from backtest.tapes.gas import gas_at, read_gas_tape

GAS_FILE = ("defi_stablesims/"
            "BerkeleyBlockchain__stablesims__35858b446b__ea4d4fef__gas10m_03-12-2020.json")


def _stablesims(path, rows):
    path.write_text(json.dumps({"schema": {"fields": []}, "data": rows}))
    return path


def test_stablesims_gas_is_read_in_gwei(tmp_path):
    rows = [{"timestamp": "2020-03-12T00:00:00.000Z", "90.0 Perc": 30e9},
            {"timestamp": "2020-03-12T00:10:00.000Z", "90.0 Perc": 150e9}]
    ts, gwei = read_gas_tape(_stablesims(tmp_path / "g.json", rows))
    assert list(gwei) == [30.0, 150.0]
    assert ts[1] - ts[0] == 600_000
    price, held = gas_at(np.array([ts[0] - 1, ts[0] + 5, ts[1] + 1, ts[1] + 3_600_000]), ts, gwei)
    assert list(price) == [30.0, 30.0, 150.0, 150.0] and held == 2


def test_bad_gas_tapes_are_named(tmp_path):
    rows = [{"timestamp": "2020-03-12T00:00:00.000Z", "90.0 Perc": 30e9}]
    with pytest.raises(TapeError, match="no column '50.0 Perc'"):
        read_gas_tape(_stablesims(tmp_path / "g.json", rows), "50.0 Perc")
    csv = tmp_path / "g.csv"
    csv.write_text("timestamp,gas_price_gwei\n2020-03-12T00:00:00Z,10\n2020-03-12T00:00:00Z,12\n")
    with pytest.raises(TapeError, match="g.csv: row 1: timestamp is not after"):
        read_gas_tape(csv)
    csv.write_text("timestamp,gas_price_gwei\n2020-03-12T00:00:00Z,-1\n")
    with pytest.raises(TapeError, match="row 0: gas price must be a positive"):
        read_gas_tape(csv)


def test_real_black_thursday_gas_tape(shared_data):
    ts, gwei = read_gas_tape(shared_data / GAS_FILE)
    assert len(ts) == 144  # 10-minute buckets of 2020-03-12
    assert gwei.max() == 300.0  # the 90th percentile peaked at 300 gwei that day


def test_gas_cost_needs_an_eth_price_for_other_assets():
    keepers = KeeperConfig(requires_profit=True, gas_price_gwei=100.0, gas_units=400_000)
    steps = np.array([0, 60_000])
    cost, _ = gas_cost_per_step(keepers, steps, np.array([200.0, 100.0]), "ETH")
    np.testing.assert_allclose(cost, [400_000 * 100e-9 * 200.0, 400_000 * 100e-9 * 100.0])
    with pytest.raises(ConfigError, match="eth_price_usd"):
        gas_cost_per_step(keepers, steps, np.array([1.0, 1.0]), "BTC")


def test_minutes_become_whole_steps():
    assert steps_of(60, 300) == 12 and steps_of(7, 300) == 2 and steps_of(0.1, 60) == 1
    rec = market_record(MarketConfig(), OracleConfig(model="twap", twap_minutes=30),
                        KeeperConfig(latency_minutes=30), 300)[0]
    assert rec["oracle_model"] == OracleModel.TWAP and rec["oracle_twap_steps"] == 6
    assert rec["keeper_latency_steps"] == 6


def test_the_osm_hops_an_hour_unless_told():
    """Maker's OSM reads once per ``hop`` (one hour in dss ``osm.sol``): ``lag_minutes`` is
    its hop, 60 by default for it (10 for the lagged oracle), and one given is kept."""
    rec = market_record(MarketConfig(), OracleConfig(model="osm"), KeeperConfig(), 60)[0]
    assert rec["oracle_model"] == OracleModel.OSM and rec["oracle_lag_steps"] == 60
    assert OracleConfig(model="osm", lag_minutes=30).lag_minutes == 30
    assert OracleConfig(model="lagged").lag_minutes == 10


def test_keeper_latency_rounds_to_the_nearest_step_and_keeps_its_mean():
    minutes = (0, 2.4, 2.5, 4.9, 7.4, 7.5, 30)
    assert [latency_steps(m, 300) for m in minutes] == [0, 0, 1, 1, 1, 2, 6]
    draws = np.linspace(0.0, 5.0, 10_001)
    assert abs(np.mean([latency_steps(m, 300) * 5.0 for m in draws]) - 2.5) < 0.01
    rec = market_record(MarketConfig(), OracleConfig(), KeeperConfig(latency_minutes=2.0), 300)[0]
    assert rec["keeper_latency_steps"] == 0


def test_depth_follows_the_previous_hour_of_volume():
    ts = np.arange(0, 180) * 60_000  # 3 hours of minutes
    volume, close = np.ones(180), np.full(180, 100.0)
    hourly = hourly_usd_volume(ts, volume, close)
    assert hourly[0] == 0 and hourly[30] == 3000.0 and hourly[120] == 6000.0
    depth, info = depth_per_step(MarketConfig(impact_model="sqrt", depth_source="hourly_volume",
                                              depth_fraction_of_hourly_volume=0.5), {
        "timestamp": ts, "volume": volume, "close": close}, slice(0, 180))
    assert info["source"] == "hourly_volume"
    assert depth[0] == depth[1] == 50.0  # no volume yet: the smallest positive depth
    assert depth[120] == 3000.0


def test_config_paths_expand_environment_variables(tmp_path, monkeypatch):
    cfg = tmp_path / "c.toml"
    cfg.write_text('name = "x"\nstart = 2021-05-19T00:00:00Z\nend = 2021-05-20T00:00:00Z\n'
                   'book = "${BOOKS}/b.parquet"\npolicies = ["hard"]\n')
    monkeypatch.delenv("BOOKS", raising=False)
    with pytest.raises(ConfigError, match="c.toml: field 'book': unset environment variable"):
        load_run_config(cfg)
    monkeypatch.setenv("BOOKS", "/data")
    assert str(load_run_config(cfg).book) == "/data/b.parquet"
