from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

from backtest.errors import TapeError
from backtest.tapes import read_any


@pytest.mark.parametrize("time_format,time_name", [
    ("iso", "timestamp"), ("iso_z", "Date"), ("s", "time"), ("ms", "open_time"),
])
def test_plain_csv_time_formats(tmp_path, synth, time_format, time_name):
    rows = synth.rows(20)
    path = synth.plain_csv(tmp_path / "candles.csv", rows, time_format, time_name)
    raw = read_any(path, symbol="BTC/USDT", venue="binance", market="spot")
    assert raw.frame["timestamp"].dt.epoch("ms").to_list() == [r[0] for r in rows]
    assert raw.frame["volume"].to_list() == [r[5] for r in rows]
    assert raw.interval is None
    assert raw.frame.columns == ["timestamp", "open", "high", "low", "close", "volume"]


def test_plain_parquet_with_naive_datetimes(tmp_path, synth):
    rows = synth.rows(10)
    df = pl.DataFrame({
        "Timestamp": [datetime.fromtimestamp(r[0] / 1000, UTC).replace(tzinfo=None) for r in rows],
        "open": [r[1] for r in rows], "high": [r[2] for r in rows],
        "low": [r[3] for r in rows], "close": [r[4] for r in rows],
        "volume": [int(r[5]) for r in rows],
    })
    path = tmp_path / "kraken" / "eth.parquet"
    path.parent.mkdir()
    df.write_parquet(path)
    raw = read_any(path, symbol="ETH/USD", market="spot", interval="1m")
    assert raw.venue == "kraken"  # known exchange directory
    assert raw.frame["timestamp"].dt.epoch("ms").to_list() == [r[0] for r in rows]
    assert raw.frame.schema["volume"] == pl.Float64


@pytest.mark.parametrize("options,message", [
    ({"venue": "binance", "market": "spot"}, "does not say its symbol; pass --symbol"),
    ({"venue": "binance", "symbol": "BTC"}, "does not say its market; pass --market spot|perp"),
    ({"symbol": "BTC", "market": "spot"}, "cannot infer the venue of"),
])
def test_plain_identity_must_be_given(tmp_path, synth, options, message):
    path = synth.plain_csv(tmp_path / "candles.csv", synth.rows(5))
    with pytest.raises(TapeError, match=message):
        read_any(path, **options)


@pytest.mark.parametrize("header,body,message", [
    ("when,open,high,low,close,volume", "1,1,1,1,1,1",
     "no time column: expected one of timestamp, date, time, open_time"),
    ("timestamp,open,high,low,close", "1621382400000,1,1,1,1", "missing column 'volume'"),
    ("timestamp,open,high,low,close,volume", "yesterday,1,1,1,1,1",
     "row 0: timestamp 'yesterday' is not a date-time or epoch number"),
    ("timestamp,open,high,low,close,volume", "1621382400000,1,1,1,x,1",
     "row 0: column 'close' is not a number: 'x'"),
    ("timestamp,open,high,low,close,volume", "", "no rows"),
])
def test_plain_bad_files(tmp_path, header, body, message):
    path = tmp_path / "bad.csv"
    path.write_text(f"{header}\n{body}\n" if body else f"{header}\n")
    with pytest.raises(TapeError, match=message) as err:
        read_any(path, symbol="BTC", venue="binance", market="spot")
    assert str(err.value).startswith(f"{path}: ")


def test_unsupported_and_missing_files(tmp_path):
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    with pytest.raises(TapeError, match="unsupported file type"):
        read_any(other)
    with pytest.raises(TapeError, match="no such file"):
        read_any(tmp_path / "missing.json")
    with pytest.raises(TapeError, match="not a regular file"):
        read_any(tmp_path)
    broken = tmp_path / "x.parquet"
    broken.write_bytes(b"PAR1 nope")
    with pytest.raises(TapeError, match="not a readable Parquet file"):
        read_any(broken, symbol="BTC", venue="binance", market="spot")


def test_freqtrade_parquet_name_gives_identity(tmp_path, synth):
    rows = synth.rows(10)
    df = pl.DataFrame({
        "date": pl.Series([r[0] for r in rows]).cast(pl.Datetime("ms", "UTC")),
        **{c: [r[j + 1] for r in rows]
           for j, c in enumerate(("open", "high", "low", "close", "volume"))},
    })
    path = tmp_path / "binance" / "futures" / "ETH_USDT_USDT-1m-futures.parquet"
    path.parent.mkdir(parents=True)
    df.write_parquet(path)
    raw = read_any(path)
    assert (raw.venue, raw.market, raw.symbol, raw.interval) == ("binance", "perp", "ETH/USDT",
                                                                 "1m")
