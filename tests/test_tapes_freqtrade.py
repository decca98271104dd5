from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pytest

from backtest.errors import TapeError
from backtest.tapes import RawFunding, RawTape, parse_freqtrade_name, read_any, read_freqtrade

# Names of the real shared data files (strings only; the files are not needed here).
REAL_NAMES = {
    "tooyipjee__freqtrade__44523f8d61__b50348e9__BTC_USDT-1m.json":
        ("BTC", "USDT", None, "1m", "spot", "spot"),
    "mintanam__ftrade__ee12b33c07__75784b71__ETH_USDT-1m.feather":
        ("ETH", "USDT", None, "1m", "spot", "spot"),
    "MoonEyes__freqtrade__8bd2def13f__b7ef6245__BTC_USDT-1h-futures.json":
        ("BTC", "USDT", None, "1h", "futures", "perp"),
    "Alpergulsen__freqtrade__4b7ca2f0f9__214db923__ETH_USDT_USDT-1m-futures.feather":
        ("ETH", "USDT", "USDT", "1m", "futures", "perp"),
    "Saam0__freqtrade__50b7ba38b1__3b36a4cb__BTC_USDT_USDT-1h-funding_rate.feather":
        ("BTC", "USDT", "USDT", "1h", "funding_rate", "perp"),
    "MoonEyes__freqtrade__8bcba14720__4711bc7d__BTC_USDT-8h-funding_rate.json":
        ("BTC", "USDT", None, "8h", "funding_rate", "perp"),
    "hippocritical__freqtrade_hyperliquid_download-data__1ca28f43b8__ebe490b2__"
    "BTC_USDC_USDC-1h-funding_rate.feather":
        ("BTC", "USDC", "USDC", "1h", "funding_rate", "perp"),
    "MoonEyes__freqtrade__043a6c2541__d99b6d65__LUNA_USDT-1h.json":
        ("LUNA", "USDT", None, "1h", "spot", "spot"),
    "BTC_USDT_USDT-1h-mark.feather": ("BTC", "USDT", "USDT", "1h", "mark", "perp"),
    "ETH_USDT-5m.json.gz": ("ETH", "USDT", None, "5m", "spot", "spot"),
}


@pytest.mark.parametrize("name", sorted(REAL_NAMES))
def test_parse_real_names(name):
    parsed = parse_freqtrade_name(f"some/dir/{name}")
    base, quote, settle, tf, ctype, market = REAL_NAMES[name]
    assert (parsed.base, parsed.quote, parsed.settle, parsed.timeframe, parsed.candle_type,
            parsed.market) == (base, quote, settle, tf, ctype, market)
    assert parsed.symbol == f"{base}/{quote}"


@pytest.mark.parametrize("name", [
    "kalyar197__eth-dashboard__ba895174ad__060eddfc__funding_rate_btc.json",
    "BerkeleyBlockchain__stablesims__d1aa8245bf__2619609b__eth10m_03-12-2020.json",
    "BTCUSDT-1m-2021-05-19.csv", "BTC_USDT-1m.txt", "README.md",
])
def test_non_freqtrade_names(name):
    assert parse_freqtrade_name(name) is None


def test_json_gz_and_feather_read_identically(tmp_path, synth):
    rows = synth.rows(40)
    a = read_freqtrade(synth.ft_json(tmp_path / "binance" / "BTC_USDT-1m.json", rows))
    b = read_freqtrade(synth.ft_json(tmp_path / "binance" / "BTC_USDT-1m.json.gz", rows, gz=True))
    c = read_freqtrade(synth.ft_feather(tmp_path / "binance" / "BTC_USDT-1m.feather", rows))
    for raw in (a, b, c):
        assert isinstance(raw, RawTape)
        assert (raw.venue, raw.market, raw.symbol, raw.interval) == ("binance", "spot",
                                                                     "BTC/USDT", "1m")
        assert raw.frame.equals(a.frame)
    assert a.frame["timestamp"][0] == datetime(2021, 5, 19, tzinfo=UTC)
    assert a.frame["close"].to_list() == [r[4] for r in rows]
    assert a.source.rows == 40 and len(a.source.sha256) == 64
    assert a.source.sha256 != b.source.sha256


def test_venue_from_parent_or_futures_grandparent(tmp_path, synth):
    rows = synth.rows(5)
    raw = read_any(synth.ft_feather(tmp_path / "bybit" / "futures" / "BTC_USDT_USDT-1m-futures"
                                    ".feather", rows))
    assert (raw.venue, raw.market) == ("bybit", "perp")
    raw = read_any(synth.ft_json(tmp_path / "somewhere" / "BTC_USDT-1m.json", rows),
                   venue="OKX")
    assert raw.venue == "okx"
    path = synth.ft_json(tmp_path / "somewhere" / "BTC_USDT-1m.json", rows)
    with pytest.raises(TapeError) as err:
        read_any(path)
    assert str(err.value) == f"cannot infer the venue of {path}; pass --venue"


def test_options_must_not_contradict_the_name(tmp_path, synth):
    path = synth.ft_json(tmp_path / "binance" / "BTC_USDT-1m.json", synth.rows(5))
    with pytest.raises(TapeError, match="--market perp contradicts the file, which says spot"):
        read_any(path, market="perp")
    with pytest.raises(TapeError, match="--symbol ETH/USDT contradicts"):
        read_any(path, symbol="ETH/USDT")
    assert read_any(path, symbol="btc/usdt").symbol == "BTC/USDT"


def test_unparseable_name_needs_symbol(tmp_path, synth):
    path = synth.ft_json(tmp_path / "binance" / "candles.json", synth.rows(5))
    with pytest.raises(TapeError, match="cannot parse the symbol from the file name; pass"):
        read_any(path)
    with pytest.raises(TapeError, match="pass --market"):
        read_any(path, symbol="BTC/USDT")
    raw = read_any(path, symbol="BTC/USDT", market="spot")
    assert raw.interval is None  # inferred from the spacing by the store


@pytest.mark.parametrize("content,message", [
    (b"[[1, 2, 3", "not valid JSON"),
    (b'{"a": 1}', "expected a JSON list of [open_time_ms"),
    (b"[]", "no rows"),
    (b"[[1621382400000, 1, 1, 1, 1]]", "row 0: expected a list of 6 numbers"),
    (b'[[1621382400000, 1, 1, 1, 1, 1], [1621382460000, "abc", 1, 1, 1, 1]]',
     "row 1: column 1 is not a number: 'abc'"),
    (b"[[1621382400000, 1, 1, 1, 1, 1], [1621382460000, 1, 1, 1, null, 1]]",
     "row 1 (2021-05-19 00:01:00+00:00): close is null"),
    (b"[[1621382400000, 1, 1, 1, 1, 1], [null, 1, 1, 1, 1, 1]]",
     "row 1 (no timestamp): timestamp is null"),
    (b"\xff\xfe garbage", "not valid JSON"),
])
def test_bad_json_raises_tape_error_naming_file(tmp_path, content, message):
    path = tmp_path / "binance" / "BTC_USDT-1m.json"
    path.parent.mkdir()
    path.write_bytes(content)
    with pytest.raises(TapeError) as err:
        read_any(path)
    assert str(err.value).startswith(f"{path}: ")
    assert message in str(err.value)


def test_bad_gzip_and_feather(tmp_path):
    for name, message in (("BTC_USDT-1m.json.gz", "not a readable gzip file"),
                          ("BTC_USDT-1m.feather", "not a readable feather")):
        path = tmp_path / "binance" / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"this is not what it claims")
        with pytest.raises(TapeError, match=message) as err:
            read_any(path)
        assert str(path) in str(err.value)


def test_feather_missing_column(tmp_path):
    import pyarrow as pa
    import pyarrow.feather as feather

    path = tmp_path / "binance" / "BTC_USDT-1m.feather"
    path.parent.mkdir()
    feather.write_feather(pa.table({"date": pa.array([1], pa.timestamp("ms", tz="UTC")),
                                    "open": [1.0]}), path)
    with pytest.raises(TapeError, match="missing column 'high'"):
        read_any(path)


def test_mark_candles_are_refused(tmp_path, synth):
    path = synth.ft_feather(tmp_path / "binance" / "BTC_USDT_USDT-1h-mark.feather",
                            synth.rows(3, interval_s=3600))
    with pytest.raises(TapeError, match="mark candles are not supported"):
        read_any(path)


def test_funding_file_snaps_jitter_and_infers_interval(tmp_path, synth):
    t0 = 1_621_382_400_000  # 2021-05-19 00:00
    eight = 8 * 3600 * 1000
    times = [t0 + 1, t0 + eight - 34, t0 + 2 * eight + 47, t0 + 3 * eight]
    rates = [0.0001, -0.0002, 0.00015, 0.0001]
    # named "1h" like the real Saam0 files, but the data are 8-hourly
    path = synth.ft_json(tmp_path / "binance" / "BTC_USDT_USDT-1h-funding_rate.json",
                         synth.funding_rows(times, rates))
    raw = read_any(path)
    assert isinstance(raw, RawFunding)
    assert raw.funding_interval_seconds == 8 * 3600
    ts = raw.frame["timestamp"].dt.epoch("ms").to_numpy()
    np.testing.assert_array_equal(ts, [t0 + k * eight for k in range(4)])
    assert raw.frame["funding_rate"].to_list() == rates
    assert (raw.venue, raw.symbol) == ("binance", "BTC/USDT")


def test_funding_duplicate_after_rounding_and_percent_warning(tmp_path, synth):
    t0 = 1_621_382_400_000
    dup = synth.ft_json(tmp_path / "binance" / "BTC_USDT-8h-funding_rate.json",
                        synth.funding_rows([t0, t0 + 400, t0 + 28_800_000], [0.1, 0.1, 0.1]))
    with pytest.raises(TapeError, match=r"row 1 \(2021-05-19 00:00:00\+00:00\): timestamp is not "
                                        r"after the previous row \(duplicate"):
        read_any(dup)
    pct = synth.ft_json(tmp_path / "binance" / "ETH_USDT-8h-funding_rate.json",
                        synth.funding_rows([t0, t0 + 28_800_000], [0.01, 0.075]))
    (w,) = read_any(pct).warnings
    assert w.kind == "funding" and "are they percentages" in w.message
    nan = tmp_path / "binance" / "SOL_USDT-8h-funding_rate.json"
    nan.write_text(json.dumps(synth.funding_rows([t0, t0 + 28_800_000], [0.01, None])))
    with pytest.raises(TapeError, match=r"row 1 .*funding rate is null"):
        read_any(nan)


def test_funding_file_is_perp_only(tmp_path, synth):
    t0 = 1_621_382_400_000
    path = synth.ft_json(tmp_path / "binance" / "BTC_USDT-8h-funding_rate.json",
                         synth.funding_rows([t0, t0 + 28_800_000], [0.0001, 0.0001]))
    with pytest.raises(TapeError, match="--market spot contradicts the file, which says perp"):
        read_any(path, market="spot")


@pytest.mark.parametrize("name,plain,expected", [
    ("BTC_USDT-1m.json", False, True), ("BTC_USDT_USDT-1h-futures.feather", False, True),
    ("BTC_USDT-8h-funding_rate.json.gz", False, True), ("BTC_USDT-1h-mark.feather", False, False),
    ("BTC_USDT-1m.parquet", False, True), ("BTCUSDT-1m-2021-05-19.zip", False, True),
    ("candles.csv", False, False), ("candles.csv", True, True), ("notes.txt", True, False),
])
def test_is_importable(name, plain, expected):
    from backtest.tapes import is_importable

    assert is_importable(name, plain=plain) is expected
