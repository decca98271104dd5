from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from backtest.errors import TapeError
from backtest.tapes import (
    check_warnings,
    find_gaps,
    format_interval,
    parse_interval,
    parse_symbol,
    validate_frame,
)
from backtest.tapes.schema import build_ohlcv_frame, epoch_to_ms

T0 = int(datetime(2021, 5, 19, 13, 0, tzinfo=UTC).timestamp() * 1000)


def frame(n: int = 30, step_ms: int = 60_000) -> pl.DataFrame:
    ts = T0 + np.arange(n, dtype=np.int64) * step_ms
    o = np.full(n, 100.0)
    c = np.full(n, 101.0)
    return build_ohlcv_frame(ts, {"open": o, "high": c + 1, "low": o - 1, "close": c,
                                  "volume": np.full(n, 5.0)})


def with_value(df: pl.DataFrame, column: str, row: int, value) -> pl.DataFrame:
    values = df[column].to_list()
    values[row] = value
    return df.with_columns(pl.Series(column, values, dtype=df.schema[column]))


@pytest.mark.parametrize("text,seconds,canonical", [
    ("1m", 60, "1m"), ("5m", 300, "5m"), ("1h", 3600, "1h"), ("60m", 3600, "1h"),
    ("8h", 28800, "8h"), ("1d", 86400, "1d"), ("1w", 604800, "1w"), ("30s", 30, "30s"),
])
def test_interval_round_trip(text, seconds, canonical):
    assert parse_interval(text) == seconds
    assert format_interval(seconds) == canonical


@pytest.mark.parametrize("bad", ["1M", "0m", "m", "5 minutes", "-1h", ""])
def test_invalid_interval(bad):
    with pytest.raises(TapeError, match="invalid interval"):
        parse_interval(bad)


@pytest.mark.parametrize("text,expected", [
    ("BTC/USDT", ("BTC", "USDT")), ("btc-usdt", ("BTC", "USDT")), ("ETH_USDC", ("ETH", "USDC")),
    ("SOL", ("SOL", "USDT")),
])
def test_parse_symbol(text, expected):
    assert parse_symbol(text) == expected


@pytest.mark.parametrize("bad", ["BTC/USDT/X", "/USDT", "BTC/", "B$C"])
def test_parse_symbol_rejects(bad):
    with pytest.raises(TapeError, match="invalid symbol"):
        parse_symbol(bad)


def test_epoch_units_detected_by_magnitude():
    ms = 1_621_382_400_000
    values = np.array([ms // 1000, ms, ms * 1000, ms * 1_000_000], dtype=np.int64)
    assert epoch_to_ms(values).tolist() == [ms] * 4


def test_valid_frame_passes():
    validate_frame(frame(), "x.json")


BAD_CASES = [
    ("timestamp", None, "timestamp is null"),
    ("open", None, "open is null"),
    ("close", float("nan"), "close is NaN"),
    ("high", float("inf"), "high is infinite (inf)"),
    ("low", 0.0, "low is not positive (0.0)"),
    ("open", -3.0, "open is not positive (-3.0)"),
    ("low", 100.5, "low 100.5 is above min(open, close) 100.0"),
    ("high", 100.5, "high 100.5 is below max(open, close) 101.0"),
    ("volume", -1.0, "volume is negative (-1.0)"),
    ("volume", None, "volume is null"),
]


@pytest.mark.parametrize("column,value,problem", BAD_CASES)
def test_bad_value_names_file_row_and_problem(column, value, problem):
    df = with_value(frame(), column, 17, value)
    with pytest.raises(TapeError) as err:
        validate_frame(df, "path/x.json")
    when = "no timestamp" if column == "timestamp" else "2021-05-19 13:17:00+00:00"
    assert str(err.value) == f"path/x.json: row 17 ({when}): {problem}"


def test_duplicate_timestamp_message():
    df = frame()
    ts = df["timestamp"].to_list()
    ts[17] = ts[16]
    df = df.with_columns(pl.Series("timestamp", ts, dtype=df.schema["timestamp"]))
    with pytest.raises(TapeError) as err:
        validate_frame(df, "path/x.json")
    assert str(err.value) == ("path/x.json: row 17 (2021-05-19 13:16:00+00:00): timestamp is not "
                              "after the previous row (duplicate)")


def test_unsorted_timestamp_message():
    df = frame()
    ts = df["timestamp"].to_list()
    ts[17], ts[18] = ts[18], ts[17]
    df = df.with_columns(pl.Series("timestamp", ts, dtype=df.schema["timestamp"]))
    with pytest.raises(TapeError, match=r"row 18 \(2021-05-19 13:17:00\+00:00\): timestamp is "
                                        r"not after the previous row \(2021-05-19 13:18"):
        validate_frame(df, "x.json")


def test_earliest_offending_row_is_reported():
    df = with_value(with_value(frame(), "volume", 20, -1.0), "close", 9, float("nan"))
    with pytest.raises(TapeError, match=r"row 9 .*close is NaN"):
        validate_frame(df, "x.json")


def test_missing_column_and_wrong_dtype():
    with pytest.raises(TapeError, match=r"x.json: missing column 'volume'"):
        validate_frame(frame().drop("volume"), "x.json")
    bad = frame().with_columns(pl.col("open").cast(pl.Float32))
    with pytest.raises(TapeError, match=r"column 'open' has dtype Float32, expected Float64"):
        validate_frame(bad, "x.json")
    ns = frame().with_columns(pl.col("timestamp").dt.cast_time_unit("ns"))
    with pytest.raises(TapeError, match=r"column 'timestamp' has dtype"):
        validate_frame(ns, "x.json")


def test_derived_columns_must_be_null_not_nan():
    df = frame().with_columns(pl.lit(None, pl.Float64).alias("funding_rate"),
                              pl.lit(0.5).alias("realized_vol"))
    validate_frame(df, "t.parquet", derived=True)
    bad = with_value(df, "realized_vol", 4, float("nan"))
    with pytest.raises(TapeError, match=r"row 4 .*realized_vol is nan \(missing values must be "
                                        r"null\)"):
        validate_frame(bad, "t.parquet", derived=True)
    with pytest.raises(TapeError, match="missing column 'funding_rate'"):
        validate_frame(frame(), "t.parquet", derived=True)


def test_find_gaps_reports_without_filling():
    ts = np.array([0, 60, 120, 420, 480, 570], dtype=np.int64) * 1000 + T0
    gaps = find_gaps(ts, 60)
    assert [g.missing_steps for g in gaps] == [4, 1]
    assert gaps[0].start == datetime(2021, 5, 19, 13, 2, tzinfo=UTC)
    assert gaps[0].end == datetime(2021, 5, 19, 13, 7, tzinfo=UTC)
    assert gaps[0].duration == timedelta(minutes=5)
    assert find_gaps(ts[:3], 60) == []
    assert find_gaps(ts[:1], 60) == []


def test_find_gaps_slack_for_jittery_series():
    ts = np.array([0, 3601, 7200, 3 * 3600], dtype=np.int64) * 1000
    assert find_gaps(ts, 3600) != []
    assert find_gaps(ts, 3600, slack_ms=1_800_000) == []


def test_wick_warnings_not_errors():
    df = with_value(with_value(frame(), "low", 5, 70.0), "high", 8, 130.0)
    validate_frame(df, "x.json")
    warnings = check_warnings(df, 60)
    assert [(w.kind, w.row) for w in warnings] == [("wick", 5), ("wick", 8)]
    assert "low 70.0 is 30.0% below min(open, close) 100.0" in warnings[0].message
    assert "high 130.0 is 28.7% above max(open, close) 101.0" in warnings[1].message
    assert warnings[0].timestamp == datetime(2021, 5, 19, 13, 5, tzinfo=UTC)
    # a 19% wick is normal market behaviour, not reported
    assert check_warnings(with_value(frame(), "low", 5, 81.0), 60) == []


def test_misaligned_and_gap_jump_warnings():
    df = frame()
    ts = df["timestamp"].dt.epoch("ms").to_numpy() + 1500
    df = df.with_columns(pl.Series("timestamp", ts).cast(pl.Datetime("ms", "UTC")))
    (w,) = check_warnings(df, 60)
    assert w.kind == "misaligned" and w.row == 0 and w.message.startswith("30 candle(s)")

    ts = T0 + np.array([0, 60_000, 3_600_000], dtype=np.int64)
    jump = build_ohlcv_frame(ts, {"open": np.array([10.0, 10.0, 2.0]),
                                  "high": np.array([10.0, 10.0, 2.0]),
                                  "low": np.array([10.0, 10.0, 2.0]),
                                  "close": np.array([10.0, 10.0, 2.0]),
                                  "volume": np.zeros(3)})
    (w,) = check_warnings(jump, 60)
    assert w.kind == "gap_jump" and w.row == 2 and "-80.0%" in w.message
