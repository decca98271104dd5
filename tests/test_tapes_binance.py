from __future__ import annotations

import pytest

from backtest.errors import TapeError
from backtest.tapes import parse_binance_name, read_any


@pytest.mark.parametrize("name,symbol,interval,date", [
    ("BTCUSDT-1m-2021-05-19.csv", "BTC/USDT", "1m", "2021-05-19"),
    ("ETHUSDC-5m-2025-01-02.zip", "ETH/USDC", "5m", "2025-01-02"),
    ("SOLBUSD-1h-2022-05.zip", "SOL/BUSD", "1h", "2022-05"),
    ("BTCFDUSD-1s-2024-08-05.csv", "BTC/FDUSD", "1s", "2024-08-05"),
    ("ETHBTC-1d-2020-03.csv", "ETH/BTC", "1d", "2020-03"),
    ("BTCUSD-1m-2021-05-19.csv", "BTC/USD", "1m", "2021-05-19"),
])
def test_parse_binance_name(name, symbol, interval, date):
    parsed = parse_binance_name(name)
    assert (parsed.symbol, parsed.interval, parsed.date) == (symbol, interval, date)


@pytest.mark.parametrize("name", ["FOOBAR-1m-2021-05-19.csv", "BTCUSDT-1m.csv",
                                  "BTC_USDT-1m.json", "BTCUSDT-1m-2021-05-19.json"])
def test_non_binance_names(name):
    assert parse_binance_name(name) is None


def test_csv_with_and_without_header_and_zip_agree(tmp_path, synth):
    rows = synth.rows(30)
    plain = read_any(synth.binance_csv(tmp_path / "a" / "BTCUSDT-1m-2021-05-19.csv", rows))
    header = read_any(synth.binance_csv(tmp_path / "b" / "BTCUSDT-1m-2021-05-19.csv", rows,
                                        header=True))
    zipped = read_any(synth.binance_zip(tmp_path / "c" / "BTCUSDT-1m-2021-05-19.zip", rows))
    for raw in (plain, header, zipped):
        assert (raw.venue, raw.market, raw.symbol, raw.interval) == ("binance", "spot",
                                                                     "BTC/USDT", "1m")
        assert raw.frame.equals(plain.frame)
        assert raw.frame.height == 30
    assert plain.frame["open"].to_list() == [r[1] for r in rows]
    assert plain.frame["timestamp"].dt.epoch("ms").to_list() == [r[0] for r in rows]


def test_microsecond_open_times_since_2025(tmp_path, synth):
    t2025 = 1_736_035_200_000  # 2025-01-05 00:00 UTC in ms
    rows = synth.rows(10, start_ms=t2025)
    raw = read_any(synth.binance_csv(tmp_path / "BTCUSDT-1m-2025-01-05.csv", rows, micros=True))
    assert raw.frame["timestamp"].dt.epoch("ms").to_list() == [r[0] for r in rows]


def test_market_option_for_futures_files(tmp_path, synth):
    path = synth.binance_zip(tmp_path / "BTCUSDT-1m-2021-05-19.zip", synth.rows(5))
    raw = read_any(path, market="perp", venue="Binance")
    assert (raw.market, raw.venue) == ("perp", "binance")
    with pytest.raises(TapeError, match="--market must be spot or perp, not 'futures'"):
        read_any(path, market="futures")


def test_zip_with_two_members_or_garbage(tmp_path, synth):
    two = synth.binance_zip(tmp_path / "BTCUSDT-1m-2021-05-19.zip", synth.rows(5),
                            extra_member=True)
    with pytest.raises(TapeError, match="expected a zip holding one CSV file, found "
                                        "BTCUSDT-1m-2021-05-19.csv, other.csv"):
        read_any(two)
    bad = tmp_path / "ETHUSDT-1m-2021-05-19.zip"
    bad.write_bytes(b"PK not really")
    with pytest.raises(TapeError, match="not a readable zip file") as err:
        read_any(bad)
    assert str(bad) in str(err.value)


def test_wrong_column_count_and_bad_values(tmp_path, synth):
    path = tmp_path / "BTCUSDT-1m-2021-05-19.csv"
    path.write_text("1621382400000,1,1,1,1,1\n")
    with pytest.raises(TapeError, match="expected 12 columns .* found 6"):
        read_any(path)
    text = synth.binance_csv_text(synth.rows(5)).splitlines()
    fields = text[3].split(",")
    fields[4] = "n/a"
    text[3] = ",".join(fields)
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(TapeError, match=r"row 3: column 'close' is not a number: 'n/a'"):
        read_any(path)


def test_validation_errors_name_row(tmp_path, synth):
    rows = synth.rows(10)
    rows[6][0] = rows[5][0]
    with pytest.raises(TapeError, match=r"BTCUSDT-1m-2021-05-19.csv: row 6 \(2021-05-19 "
                                        r"00:05:00\+00:00\): timestamp is not after the "
                                        r"previous row \(duplicate\)"):
        read_any(synth.binance_csv(tmp_path / "BTCUSDT-1m-2021-05-19.csv", rows))
