"""How late keepers were: each real liquidation's wait is bounded below by the first moment the
oracle's tape reached its price, since the window start or the account's last liquidation."""

from __future__ import annotations

import numpy as np
import pytest

from backtest.calibration.keeper_delay import (
    keeper_delays,
    read_liquidations,
    summarize,
)
from backtest.errors import TapeError

MIN = 60_000
T0 = 1621382400_000  # 2021-05-19 00:00 UTC


def _feed():
    """One-minute candles: 100 falling 1 a minute to 80 at minute 20, then back to 100."""
    low = np.r_[100.0 - np.arange(21), 80.0 + np.arange(1, 21)]
    return T0 + np.arange(low.size) * MIN, low


def test_each_wait_runs_from_the_first_candle_at_or_below_its_price():
    ms, low = _feed()
    time = T0 + np.array([10, 30, 40, 35]) * MIN + 30_000   # half a minute into each candle
    account = np.array(["a", "b", "a", "c"], dtype=object)
    price = np.array([90.0, 95.0, 85.0, 70.0])
    waits = keeper_delays(time, account, price, ms, low, T0)
    # a: 90 reached at minute 10 -> 0.5 min; b: 95 at minute 5 -> 25.5 min; a again: since its
    # call at 10:30, 85 reached at minute 15 -> 25.5 min; c: 70 never reached -> 0
    np.testing.assert_allclose(waits, [0.5, 25.5, 25.5, 0.0])
    # the window start bounds the wait too
    late_start = keeper_delays(time[1:2], account[1:2], price[1:2], ms, low, T0 + 12 * MIN)
    np.testing.assert_allclose(late_start, [18.5])


def test_the_summary_is_weighted_by_value():
    waits = np.array([0.5, 1.0, 30.0, 90.0])
    value = np.array([1.0, 1.0, 6.0, 2.0])
    s = summarize(waits, value)
    assert (s.count, s.value) == (4, 10.0)
    assert s.within == pytest.approx(0.2)          # 0.5 and 1.0 minutes: 2 of 10
    assert s.quantiles == (30.0, 30.0, 90.0)       # cumulative 0.1, 0.2, 0.8, 1.0
    assert s.over == pytest.approx(0.2)            # 90 minutes: 2 of 10
    with pytest.raises(ValueError):
        summarize(np.array([]), np.array([]))


@pytest.mark.parametrize("content, message", [
    ("time,account,price\n1,a,10\n", "need columns time, account, price, value"),
    ("time,account,price,value\n1,a,10,5\n2,b,10,-1\n", "row 1: value '-1' is not a positive"),
    ("time,account,price,value\nnoon,a,10,5\n", "row 0: time 'noon' is not a date-time"),
])
def test_bad_liquidation_files_are_named(tmp_path, content, message):
    path = tmp_path / "liq.csv"
    path.write_text(content)
    with pytest.raises(TapeError, match=message) as info:
        read_liquidations(path)
    assert "liq.csv" in str(info.value)


def test_the_cli_prints_the_bounds_over_the_events_window(tmp_path, capsys):
    from backtest.cli import main
    from backtest.tapes import TapeStore
    from backtest.tapes.feed import read_feed

    ms, low = _feed()
    feed = tmp_path / "feed.csv"   # the fall, then the price held to the day's last minute
    feed.write_text("ts,price\n" + "".join(f"{t},{p}\n" for t, p in zip(ms, low, strict=True))
                    + f"{T0 + 1439 * MIN},100\n")
    TapeStore(tmp_path / "tapes").import_tape(
        read_feed(feed, venue="oracle", symbol="ETH/USDT", interval="1m"))
    liq = tmp_path / "liq.csv"
    liq.write_text("time,account,price,value\n"
                   f"{(T0 + 10 * MIN + 30_000) // 1000},a,90,1\n"
                   f"{(T0 + 30 * MIN + 30_000) // 1000},b,95,3\n"
                   f"{(T0 - 86_400_000) // 1000},z,95,3\n")            # the day before
    code = main(["data", "keeper-delays", str(liq), "--venue", "oracle", "--symbol",
                 "ETH/USDT", "--event", "may-2021", "--store", str(tmp_path / "tapes")])
    text = capsys.readouterr().out
    assert code == 0
    # a waited 0.5 min (value 1 of 4), b 25.5 min (3 of 4): within 2 min 25%, p50 25.5 min
    assert "25.0%" in text and "25.5 min" in text and "0.0%" in text
    assert "1 liquidation outside the window left out" in text
