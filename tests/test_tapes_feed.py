"""Oracle price feeds as tapes: candles of the price in force, bad feeds named, and a run that
triggers on the feed liquidates where the feed, not the venue's candle, says."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import polars as pl
import pytest

from backtest.errors import TapeError
from backtest.tapes.feed import feed_candles, read_feed, read_feed_updates
from tests.test_book_positions import crash_store, run_imported_loans
from tests.test_engine_run import START

MIN = 60_000


def test_candles_hold_the_price_in_force():
    # updates at 0:30, 1:10, 1:40 and 4:20 (minutes), 2-minute candles from 0:00 to 4:00
    ms = np.array([30, 70, 100, 260]) * 1000
    price = np.array([100.0, 104.0, 97.0, 99.0])
    c = feed_candles(ms, price, 2 * MIN)
    assert c["timestamp"].dt.epoch("ms").to_list() == [0, 120_000, 240_000]
    assert c["open"].to_list() == [100.0, 97.0, 97.0]     # the first update, then in force
    assert c["high"].to_list() == [104.0, 97.0, 99.0]
    assert c["low"].to_list() == [97.0, 97.0, 97.0]       # 2:00-4:00 has no update: flat
    assert c["close"].to_list() == [97.0, 97.0, 99.0]
    assert c["volume"].to_list() == [0.0, 0.0, 0.0]


def test_a_silence_longer_than_a_day_is_a_hole_not_a_flat_price():
    """Two excerpts three days apart: the candles of the day after the first excerpt's last
    update hold its price; the rest up to the second excerpt are left out."""
    hour = 60 * MIN
    ms = np.array([0, 30 * MIN, 4 * 24 * hour + 10 * MIN])
    c = feed_candles(ms, np.array([100.0, 101.0, 90.0]), hour)
    t = c["timestamp"].dt.epoch("ms").to_numpy() // hour
    assert t.tolist() == list(range(0, 24)) + [4 * 24]   # ends within a day of 0:30, then 96
    assert c["close"][23] == 101.0
    assert (c["open"][24], c["low"][24], c["close"][24]) == (101.0, 90.0, 90.0)


def test_json_triples_records_and_iso_times_read_alike(tmp_path):
    t0 = int(START.timestamp())
    (tmp_path / "a.json").write_text(json.dumps([[t0, 1, 100.5], [t0 + 90, 2, 99.0]]))
    (tmp_path / "b.json").write_text(json.dumps([{"updated_at": t0, "answer": "100.5"},
                                                 {"updated_at": t0 + 90, "answer": 99}]))
    (tmp_path / "c.csv").write_text("time,price\n2021-05-19T00:00:00Z,100.5\n"
                                    "2021-05-19T00:01:30Z,99.0\n")
    got = [read_feed_updates(tmp_path / n) for n in ("a.json", "b.json", "c.csv")]
    for ms, price in got:
        assert ms.tolist() == [t0 * 1000, (t0 + 90) * 1000]
        assert price.tolist() == [100.5, 99.0]
    raw = read_feed(tmp_path / "a.json", venue="chainlink", symbol="btc/usdt", interval="1m")
    assert (raw.venue, raw.market, raw.symbol, raw.interval) == ("chainlink", "spot",
                                                                 "BTC/USDT", "1m")
    assert raw.frame["low"].to_list() == [100.5, 99.0] and raw.source.rows == 2


def test_newest_first_exports_and_one_blocks_updates_read_as_the_price_in_force(tmp_path):
    """An Aave-subgraph-style export: newest first, raw answers of USDT in ETH (18 decimals),
    three updates in one block (their median), read as ETH in USDT."""
    (tmp_path / "usdt_eth.csv").write_text(
        "timestamp,price\n"
        "1621430528,400000000000000\n"      # 2,500
        "1621430400,500000000000000\n"      # one block: 2,000 / 1,600 / 1,250 -> 1,600
        "1621430400,800000000000000\n"
        "1621430400,625000000000000\n"
        "1621430000,250000000000000\n")     # 4,000
    ms, price = read_feed_updates(tmp_path / "usdt_eth.csv", decimals=18, invert=True)
    assert ms.tolist() == [1621430000_000, 1621430400_000, 1621430528_000]
    np.testing.assert_allclose(price, [4000.0, 1600.0, 2500.0], rtol=1e-12)
    oldest_first = tmp_path / "asc.csv"
    oldest_first.write_text("ts,price\n1621430000,4000\n1621430400,2000\n1621430400,1600\n"
                            "1621430400,1250\n1621430528,2500\n")
    ms2, price2 = read_feed_updates(oldest_first)
    assert ms2.tolist() == ms.tolist()
    np.testing.assert_allclose(price2, price, rtol=1e-12)


@pytest.mark.parametrize("content, message", [
    ("ts,price\n10,100\n20,101\n15,99\n", "row 2: update time is earlier"),
    ("ts,price\n30,100\n20,101\n25,99\n", "row 2: update time is later"),
    ("ts,price\n10,100\n20,-1\n", "row 1: price '-1' is not a positive number"),
    ("ts,price\n10,100\n20,x\n", "row 1: price 'x' is not a positive number"),
    ("ts,value\n10,100\n", "no price column"),
    ("when,price\n10,100\n", "no time column"),
    ("ts,price\nyesterday,100\n", "row 0: time 'yesterday' is not a date-time"),
])
def test_bad_feeds_are_named(tmp_path, content, message):
    path = tmp_path / "feed.csv"
    path.write_text(content)
    with pytest.raises(TapeError, match=message) as info:
        read_feed_updates(path)
    assert "feed.csv" in str(info.value)


def test_a_run_on_the_feed_liquidates_where_the_feed_says(tmp_path):
    """Loans at LTVs spread over the threshold; the venue's candles fall further than the
    feed (floored), so on the feed exactly the loans past 0.86 x the feed's low liquidate."""
    store, a, price = crash_store(tmp_path)
    window = a["timestamp"] >= int(START.timestamp() * 1000)
    floor = (price + float(a["low"][window].min())) / 2        # halfway down the crash
    feed = tmp_path / "feed.csv"
    pl.DataFrame({"ts": a["timestamp"] + 1000,                 # one update a candle
                  "price": np.maximum(a["close"], floor)}).write_csv(feed)
    store.import_tape(read_feed(feed, venue="oracle", symbol="BTC/USDT", interval="5m"))
    ltv = np.linspace(0.30, 0.85, 400)
    liquidated = run_imported_loans(tmp_path, ltv, price,
                                    '[oracle]\nmodel = "mark"\nmark_venue = "oracle"')
    mark = store.resolve("BTC/USDT", START, START + timedelta(days=1), "oracle").arrays()
    on_feed = ltv > 0.86 * float(mark["low"].min()) / price
    on_candles = ltv > 0.86 * float(a["low"][window].min()) / price
    assert 0 < on_feed.sum() < on_candles.sum()    # the feed saw less of the crash
    np.testing.assert_array_equal(liquidated, on_feed)


def test_the_cli_imports_raw_inverted_answers_as_candles_of_the_base(tmp_path):
    """``liqbt data import-feed --decimals 18 --invert``: an Aave-style export of USDT priced
    in ETH-wei, newest first, becomes an ETH/USDT tape of the price in force."""
    from backtest.cli import main
    from backtest.tapes import TapeStore

    t0 = 1621382400  # 2021-05-19 00:00 UTC
    feed = tmp_path / "usdt_eth.csv"
    feed.write_text(f"timestamp,price\n{t0 + 5400},500000000000000\n"
                    f"{t0 + 1800},400000000000000\n{t0 - 60},250000000000000\n")
    assert main(["data", "import-feed", str(feed), "--venue", "aave-v2-oracle", "--symbol",
                 "ETH/USDT", "--interval", "1h", "--decimals", "18", "--invert", "--store",
                 str(tmp_path / "tapes")]) == 0
    a = TapeStore(tmp_path / "tapes").resolve("ETH/USDT", "2021-05-19T00:00Z",
                                              "2021-05-19T02:00Z", "aave-v2-oracle").arrays()
    sel = a["timestamp"] >= t0 * 1000
    np.testing.assert_allclose(a["close"][sel], [2500.0, 2000.0], rtol=1e-12)
    np.testing.assert_allclose(a["low"][sel], [2500.0, 2000.0], rtol=1e-12)
    np.testing.assert_allclose(a["high"][sel], [4000.0, 2500.0], rtol=1e-12)

