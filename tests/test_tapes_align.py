"""Aligning several assets' tapes on one clock (backtest.tapes.align)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from backtest.errors import TapeError
from backtest.tapes import TapeStore
from backtest.tapes.align import align_tapes as _align_tapes
from backtest.tapes.align import resample_candles
from tests.conftest import T0

EVENTS = """
[demo]
name = "demo"
start = 2021-05-19T12:00:00Z
end = 2021-05-19T16:00:00Z
symbols = ["BTC/USDT", "ETH/USDT"]
description = "synthetic"
"""
START = datetime(2021, 5, 19, 12, tzinfo=UTC)
END = datetime(2021, 5, 19, 16, tzinfo=UTC)


def align_tapes(*args, **kwargs):
    kwargs.setdefault("vol_lookback", timedelta(hours=2))  # synthetic tapes start at 00:00
    return _align_tapes(*args, **kwargs)


@pytest.fixture
def events(tmp_path):
    path = tmp_path / "events.toml"
    path.write_text(EVENTS)
    return str(path)


def _import(store, synth, tmp_path, name, rows):
    path = synth.ft_json(tmp_path / "in" / name, rows)
    store.import_file(path, venue="binance")


def _store(tmp_path, synth, drop_eth=None):
    store = TapeStore(tmp_path / "store")
    _import(store, synth, tmp_path, "BTC_USDT-1m.json",
            synth.rows(n=24 * 60, interval_s=60, seed=1, price=40000.0))
    eth = synth.rows(n=24 * 12, interval_s=300, seed=2, price=3000.0)
    if drop_eth:
        eth = [r for r in eth if not drop_eth[0] <= r[0] < drop_eth[1]]
    _import(store, synth, tmp_path, "ETH_USDT-5m.json", eth)
    return store


def test_default_interval_is_the_coarsest_and_ohlcv_aggregate(tmp_path, synth, events):
    store = _store(tmp_path, synth)
    al = align_tapes(store, "demo", events_path=events)
    assert al.symbols == ("BTC/USDT", "ETH/USDT")
    assert al.interval == "5m" and al.n_steps == 48
    assert al.timestamp[0] == int(START.timestamp() * 1000)
    assert np.all(np.diff(al.timestamp) == 300_000)
    btc = store.resolve("BTC", START, END).window(START, END).frame
    first = btc.head(5)
    assert al.open[0, 0] == first["open"][0]
    assert al.high[0, 0] == first["high"].max()
    assert al.low[0, 0] == first["low"].min()
    assert al.close[0, 0] == first["close"][4]
    assert al.volume[0, 0] == pytest.approx(first["volume"].sum(), rel=1e-12)
    eth = store.resolve("ETH", START, END).window(START, END).frame
    np.testing.assert_array_equal(al.close[:, 1], eth["close"].to_numpy())
    assert al.partial_steps == {"BTC/USDT": 0, "ETH/USDT": 0}
    long = al.frame()
    assert long.height == 96 and long["symbol"].unique().sort().to_list() == list(al.symbols)


def test_requested_interval_and_one_that_no_tape_divides(tmp_path, synth, events):
    store = _store(tmp_path, synth)
    al = align_tapes(store, "demo", interval="15m", events_path=events)
    assert al.n_steps == 16
    with pytest.raises(TapeError, match=r"asset ETH/USDT .* divides 2m; its finest covering"):
        align_tapes(store, "demo", interval="2m", events_path=events)


def test_realized_vol_is_known_before_the_step(tmp_path, synth, events):
    store = _store(tmp_path, synth)
    al = align_tapes(store, "demo", vol_window=12, events_path=events)
    assert np.isfinite(al.realized_vol).all()
    # trailing vol at step t uses closes up to step t-1 only
    closes = np.concatenate([
        resample_candles(store.resolve("ETH", START - timedelta(hours=2), END)
                         .window(START - timedelta(hours=2), START).frame, 300)["close"]
        .to_numpy(), al.close[:, 1]])
    r = np.diff(np.log(closes))
    k = 24 + 10  # step 10 of the window, 24 earlier steps in the two hours read here
    # the returns ending at closes k-12 .. k-1
    expect = np.std(r[k - 13:k - 1], ddof=1) * np.sqrt(365 * 86400 / 300)
    assert al.realized_vol[10, 1] == pytest.approx(expect, rel=1e-9)


def test_missing_tape_names_the_asset_and_window(tmp_path, synth, events):
    store = _store(tmp_path, synth)
    with pytest.raises(TapeError, match=r"asset SOL/USDT has no tape for the window 2021-05-19"):
        align_tapes(store, "demo", symbols=["BTC", "SOL"], events_path=events)


def test_missing_steps_error_or_hold(tmp_path, synth, events):
    hole = (int(START.timestamp() * 1000) + 3_600_000, int(START.timestamp() * 1000) + 4_500_000)
    store = _store(tmp_path, synth, drop_eth=hole)
    with pytest.raises(TapeError, match=r"asset ETH/USDT .* 3 step\(s\) of the window .* first "
                                        r"2021-05-19 13:00"):
        align_tapes(store, "demo", events_path=events)
    al = align_tapes(store, "demo", missing="hold", events_path=events)
    assert al.held_steps == {"BTC/USDT": 0, "ETH/USDT": 3}
    k = 12  # 13:00
    assert al.volume[k:k + 3, 1].sum() == 0.0
    assert np.all(al.open[k:k + 3, 1] == al.close[k - 1, 1])
    assert np.all(al.low[k:k + 3, 1] == al.high[k:k + 3, 1])
    # at 15m the hole (13:00-13:15) leaves one whole bucket empty and none partial
    al15 = align_tapes(store, "demo", interval="15m", missing="hold", events_path=events)
    assert al15.held_steps["ETH/USDT"] == 1 and al15.partial_steps["ETH/USDT"] == 0
    al30 = align_tapes(store, "demo", interval="30m", missing="hold", events_path=events)
    assert al30.held_steps["ETH/USDT"] == 0 and al30.partial_steps["ETH/USDT"] == 1


def test_bad_windows_and_arguments(tmp_path, synth, events):
    store = _store(tmp_path, synth)
    with pytest.raises(TapeError, match="must fall on the 1h grid"):
        align_tapes(store, None, ["BTC", "ETH"], "1h", start="2021-05-19T12:30:00Z",
                    end="2021-05-19T14:00:00Z")
    with pytest.raises(TapeError, match="listed twice"):
        align_tapes(store, "demo", ["BTC", "BTC/USDT"], events_path=events)
    with pytest.raises(TapeError, match="missing must be"):
        align_tapes(store, "demo", missing="ffill", events_path=events)
    with pytest.raises(TapeError, match="without an event"):
        align_tapes(store, None, ["BTC"])


def test_resample_labels_buckets_by_open_time():
    ts = [T0 + i * 60_000 for i in range(10)]
    f = pl.DataFrame({"timestamp": ts, "open": np.arange(10.0), "high": np.arange(10.0) + 1,
                      "low": np.arange(10.0) - 1, "close": np.arange(10.0) + 0.5,
                      "volume": np.ones(10)}).with_columns(
        pl.col("timestamp").cast(pl.Datetime("ms", "UTC")))
    r = resample_candles(f, 300)
    assert r["open"].to_list() == [0.0, 5.0]
    assert r["high"].to_list() == [5.0, 10.0]
    assert r["low"].to_list() == [-1.0, 4.0]
    assert r["close"].to_list() == [4.5, 9.5]
    assert r["n_candles"].to_list() == [5, 5]


@pytest.mark.shared_data
def test_real_events_align(shared_data, tmp_path):
    store = TapeStore(tmp_path)
    files = {
        "LUNA": "ohlcv_1h/MoonEyes__freqtrade__043a6c2541__d99b6d65__LUNA_USDT-1h.json",
        "BTC": "ohlcv_5m/MoonEyes__freqtrade__c3e489f0b4__a78bd328__BTC_USDT-5m.json",
        "ETH": "ohlcv_5m/BestiaTantrica__freqtrade-bestia__111e2ac8c9__f0939ebd__ETH_USDT-5m"
               ".feather",
        "SOL": "ohlcv_5m/BestiaTantrica__freqtrade-bestia__111e2ac8c9__f904bee2__SOL_USDT-5m"
               ".feather",
    }
    for name in files.values():
        store.import_file(shared_data / name, venue="binance")
    with pytest.raises(TapeError, match=r"asset LUNA/USDT .* 23 step\(s\) .* 2022-05-13 01:00"):
        _align_tapes(store, "luna-2022")
    al = _align_tapes(store, "luna-2022", missing="hold")
    assert al.interval == "1h" and al.n_steps == 168
    assert al.held_steps["LUNA/USDT"] == 23
    luna, btc = al.asset_index("LUNA"), al.asset_index("BTC")
    assert al.low[:, luna].min() == 0.00004
    assert al.low[:, btc].min() < 27_000
    assert al.realized_vol[0, luna] > al.realized_vol[0, btc]
    with pytest.raises(TapeError, match="asset LUNA/USDT .* divides 5m"):
        _align_tapes(store, "luna-2022", interval="5m", missing="hold")
