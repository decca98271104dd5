"""Imports of the real market data files (LIQBT_SHARED_DATA), into temporary stores only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from backtest.events import load_events
from backtest.tapes import TapeStore, parse_freqtrade_name, read_funding

pytestmark = pytest.mark.shared_data

BTC_1M = "ohlcv_1m/tooyipjee__freqtrade__44523f8d61__b50348e9__BTC_USDT-1m.json"
ETH_PERP_1H = "ohlcv_1h/MoonEyes__freqtrade__8bd2def13f__d7f823d8__ETH_USDT-1h-futures.json"
ETH_SPOT_1M = "ohlcv_1m/tooyipjee__freqtrade__44523f8d61__691306a7__ETH_USDT-1m.json"
BTC_PERP_5M_A = ("ohlcv_5m/MurphyHoops__freqtradeOne__ba6daef02a__08c153c8__"
                 "BTC_USDT_USDT-5m-futures.feather")
BTC_PERP_5M_B = ("ohlcv_5m/aminak58__RL-Trading-Validation__05afa85e4f__06bfa8c9__"
                 "BTC_USDT_USDT-5m-futures.json")
BTC_FUNDING = ("funding/maxakak1998__trading_bot__e9f0be8e02__c4ad620e__"
               "BTC_USDT_USDT-8h-funding_rate.feather")
BTC_FUNDING_SAAM0 = ("funding/Saam0__freqtrade__50b7ba38b1__3b36a4cb__"
                     "BTC_USDT_USDT-1h-funding_rate.feather")
LUNA_1H = "ohlcv_1h/MoonEyes__freqtrade__043a6c2541__d99b6d65__LUNA_USDT-1h.json"


def test_real_names_parse(shared_data):
    files = sorted(p for p in shared_data.glob("ohlcv_*/*") if p.is_file())
    assert files
    for path in files:
        name = parse_freqtrade_name(path)
        assert name is not None, path.name
        assert name.market == ("perp" if "futures" in path.name else "spot")


def test_btc_spot_1m_rows_and_outage(shared_data, tmp_path):
    store = TapeStore(tmp_path)
    result = store.import_file(shared_data / BTC_1M, venue="binance")
    assert result.key == "binance/spot/BTC-USDT/1m"
    assert result.rows_in_file == result.rows_total == 42915
    assert result.start == datetime(2021, 4, 20, 20, 42, tzinfo=UTC)
    assert result.end == datetime(2021, 5, 20, 20, 40, tzinfo=UTC)
    (gap,) = result.gaps
    assert gap.duration == timedelta(hours=4, minutes=45)
    assert (gap.start, gap.end) == (datetime(2021, 4, 25, 4, 0, tzinfo=UTC),
                                    datetime(2021, 4, 25, 8, 45, tzinfo=UTC))
    tape = store.resolve("BTC", "2021-05-19", "2021-05-20").window("2021-05-19", "2021-05-20")
    assert tape.rows == 1440
    a = tape.arrays()
    assert a["low"].min() == 30000.0  # the 13:10 low of the May 2021 crash
    assert np.isfinite(a["realized_vol"]).all()


def test_eth_perp_wick_is_reported(shared_data, tmp_path):
    store = TapeStore(tmp_path)
    result = store.import_file(shared_data / ETH_PERP_1H, venue="binance")
    assert result.key == "binance/perp/ETH-USDT/1h"
    wicks = {w.timestamp: w for w in result.warnings if w.kind == "wick"}
    may = wicks[datetime(2021, 5, 19, 13, tzinfo=UTC)]
    assert "low 1400.73" in may.message
    tape = store.load("binance", "perp", "ETH", "1h")
    row = tape.window("2021-05-19T13:00Z", "2021-05-19T14:00Z").arrays()
    assert row["low"][0] == 1400.73  # kept as is: reported, not hidden
    # the same hour on spot bottomed at 1888
    spot = store.import_file(shared_data / ETH_SPOT_1M, venue="binance")
    assert spot.key == "binance/spot/ETH-USDT/1m"
    lows = store.load("binance", "spot", "ETH", "1m").window("2021-05-19T13:00Z",
                                                              "2021-05-19T14:00Z").arrays()["low"]
    assert lows.min() == 1888.0


def test_overlapping_sources_agree_and_funding_attaches(shared_data, tmp_path):
    store = TapeStore(tmp_path)
    first = store.import_file(shared_data / BTC_PERP_5M_A, venue="binance")
    second = store.import_file(shared_data / BTC_PERP_5M_B, venue="binance")
    assert first.rows_in_file == 8688 and second.rows_in_file == 11123
    assert second.rows_added == 11123 - 8688 and second.rows_total == 11123
    funding = store.import_file(shared_data / BTC_FUNDING, venue="binance")
    assert funding.updated == [tmp_path / "binance/perp/BTC-USDT/5m.parquet"]
    tape = store.load("binance", "perp", "BTC", "5m")
    a = tape.arrays()
    placed = a["timestamp"][~np.isnan(a["funding_rate"])]
    assert placed.size == 3 * 38 + 2  # 8-hourly over 2025-09-19 00:00 .. 2025-10-27 14:55
    assert (placed % (8 * 3600 * 1000) == 0).all()
    # the "1h" in Saam0's name is freqtrade's timeframe: the data are 8-hourly, and agree
    saam0 = store.import_file(shared_data / BTC_FUNDING_SAAM0, venue="binance")
    _, meta = read_funding(saam0.path)
    assert meta.funding_interval_seconds == 8 * 3600
    # rows up to 2025-12-06 08:00 overlap and agree; new: 2025-12-06 16:00 .. 2026-04-30 08:00
    assert saam0.rows_added == 435 and saam0.rows_total == 3212 + 435


def test_luna_splice_across_delisting_gap_is_reported(shared_data, tmp_path):
    result = TapeStore(tmp_path).import_file(shared_data / LUNA_1H, venue="binance")
    longest = max(result.gaps, key=lambda g: g.duration)
    assert (longest.start, longest.end) == (datetime(2022, 5, 13, tzinfo=UTC),
                                            datetime(2022, 5, 31, 6, tzinfo=UTC))
    (jump,) = [w for w in result.warnings if w.kind == "gap_jump"]
    assert jump.timestamp == datetime(2022, 5, 31, 6, tzinfo=UTC)


def test_catalog_events_resolve_against_real_data(shared_data, tmp_path):
    """Every catalog symbol has real data in every event window (1h spot covers 2020-2025)."""
    store = TapeStore(tmp_path)
    for pattern in ("ohlcv_1h/*", "ohlcv_1m/*SOL_USDT*", "ohlcv_5m/*SOL_USDT*"):
        for path in sorted(shared_data.glob(pattern)):
            store.import_file(path, venue="binance")
    for event in load_events().values():
        for symbol in event.symbols:
            tape = store.resolve(symbol, event.start, event.end)
            window = tape.window(event.start, event.end)
            assert window.rows > 0, (event.key, symbol)
