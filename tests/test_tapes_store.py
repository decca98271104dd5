from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from backtest.errors import TapeError
from backtest.tapes import Tape, TapeStore, read_funding, realized_vol
from backtest.tapes import store as store_mod

T0 = 1_621_382_400_000  # 2021-05-19 00:00 UTC
H = 3_600_000


def ts_of(tape: Tape) -> list[int]:
    return tape.frame["timestamp"].dt.epoch("ms").to_list()


def import_ft(store, tmp_path, synth, name, rows, venue="binance", sub=""):
    path = synth.ft_json(tmp_path / "in" / sub / venue / name, rows)
    return store.import_file(path), path


# --------------------------------------------------------------------------- layout and schema


def test_import_writes_schema_metadata_and_sources(tmp_store, tmp_path, synth):
    rows = synth.rows(100)
    result, path = import_ft(tmp_store, tmp_path, synth, "BTC_USDT-1m.json", rows)
    dest = tmp_store.root / "binance" / "spot" / "BTC-USDT" / "1m.parquet"
    assert result.path == dest and result.key == "binance/spot/BTC-USDT/1m"
    assert (result.rows_in_file, result.rows_added, result.rows_total) == (100, 100, 100)
    assert result.start == datetime(2021, 5, 19, tzinfo=UTC)
    assert result.end == datetime(2021, 5, 19, 1, 39, tzinfo=UTC)

    table = pq.read_table(dest)
    assert table.schema.names == ["timestamp", "open", "high", "low", "close", "volume",
                                  "funding_rate", "realized_vol"]
    assert table.schema.field("timestamp").type == pa.timestamp("ms", tz="UTC")
    assert all(table.schema.field(c).type == pa.float64() for c in table.schema.names[1:])
    md = {k.decode(): v.decode() for k, v in table.schema.metadata.items()
          if k.startswith(b"liqbt.")}
    assert {k: md[k] for k in ("liqbt.venue", "liqbt.market", "liqbt.symbol", "liqbt.base",
                               "liqbt.quote", "liqbt.interval", "liqbt.interval_seconds",
                               "liqbt.schema_version")} == {
        "liqbt.venue": "binance", "liqbt.market": "spot", "liqbt.symbol": "BTC/USDT",
        "liqbt.base": "BTC", "liqbt.quote": "USDT", "liqbt.interval": "1m",
        "liqbt.interval_seconds": "60", "liqbt.schema_version": "1"}
    (source,) = json.loads(md["liqbt.sources"])
    assert source == {"path": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                      "rows": 100}

    tape = tmp_store.load("binance", "spot", "BTC", "1m")
    assert ts_of(tape) == [r[0] for r in rows]
    assert tape.frame["funding_rate"].null_count() == 100  # spot: never funding
    np.testing.assert_allclose(tape.arrays()["realized_vol"],
                               realized_vol(np.array([r[4] for r in rows]), 60), equal_nan=True)


def test_arrays_window_and_from_parquet(tmp_store, tmp_path, synth):
    import_ft(tmp_store, tmp_path, synth, "ETH_USDT-1m.json", synth.rows(60))
    tape = Tape.from_parquet(tmp_store.root / "binance/spot/ETH-USDT/1m.parquet")
    arrays = tape.arrays()
    assert arrays["timestamp"].dtype == np.int64
    for name in ("open", "high", "low", "close", "volume", "funding_rate", "realized_vol"):
        assert arrays[name].dtype == np.float64 and arrays[name].flags.c_contiguous
        assert arrays[name].shape == (60,)
    assert np.isnan(arrays["funding_rate"]).all() and np.isnan(arrays["realized_vol"][:2]).all()
    w = tape.window(datetime(2021, 5, 19, 0, 10, tzinfo=UTC), "2021-05-19T00:20:00")
    assert w.rows == 10 and ts_of(w)[0] == T0 + 600_000 and ts_of(w)[-1] == T0 + 19 * 60_000
    assert tape.start == datetime(2021, 5, 19, tzinfo=UTC)
    assert tape.end == datetime(2021, 5, 19, 1, 0, tzinfo=UTC)  # exclusive: last close time


def test_interval_inferred_from_spacing_and_checked(tmp_store, tmp_path, synth):
    rows = synth.rows(20, interval_s=300)
    path = synth.plain_csv(tmp_path / "c.csv", rows)
    result = tmp_store.import_file(path, venue="binance", market="spot", symbol="SOL")
    assert result.key == "binance/spot/SOL-USDT/5m"
    with pytest.raises(TapeError, match="median candle spacing is 5m but the interval is 1m"):
        tmp_store.import_file(path, venue="binance", market="spot", symbol="SOL", interval="1m")
    wrong = synth.ft_json(tmp_path / "binance" / "BTC_USDT-1h.json", synth.rows(20))
    with pytest.raises(TapeError, match="spacing is 1m but the interval is 1h"):
        tmp_store.import_file(wrong)


def test_gaps_reported_not_filled(tmp_store, tmp_path, synth):
    rows = synth.rows(30)
    rows = rows[:10] + rows[15:]  # 5 missing minutes
    result, _ = import_ft(tmp_store, tmp_path, synth, "BTC_USDT-1m.json", rows)
    (gap,) = result.gaps
    assert gap.start == datetime(2021, 5, 19, 0, 9, tzinfo=UTC)
    assert gap.end == datetime(2021, 5, 19, 0, 15, tzinfo=UTC)
    assert gap.missing_steps == 5
    tape = tmp_store.load("binance", "spot", "BTC/USDT", "1m")
    assert tape.rows == 25 and ts_of(tape) == [r[0] for r in rows]
    assert tape.gaps() == [gap]
    (info,) = tmp_store.list()
    assert info.n_gaps == 1 and info.rows == 25


# --------------------------------------------------------------------------- merging


def test_merge_identical_overlap(tmp_store, tmp_path, synth):
    rows = synth.rows(100)
    import_ft(tmp_store, tmp_path, synth, "BTC_USDT-1m.json", rows[:60])
    second = synth.ft_feather(tmp_path / "in2" / "binance" / "BTC_USDT-1m.feather", rows[40:])
    result = tmp_store.import_file(second)
    assert (result.rows_in_file, result.rows_added, result.rows_total) == (60, 40, 100)
    tape = tmp_store.load("binance", "spot", "BTC/USDT", "1m")
    assert ts_of(tape) == [r[0] for r in rows]
    assert [s.path for s in tape.meta.sources] == [
        str(tmp_path / "in" / "binance" / "BTC_USDT-1m.json"), str(second)]
    # realised vol recomputed over the merged closes, not concatenated
    np.testing.assert_allclose(tape.arrays()["realized_vol"],
                               realized_vol(np.array([r[4] for r in rows]), 60), equal_nan=True)
    again = tmp_store.import_file(second)  # re-import: nothing new, source not duplicated
    assert again.rows_added == 0
    assert len(tmp_store.load("binance", "spot", "BTC", "1m").meta.sources) == 2


def test_merge_disagreement_names_both_sources_and_changes_nothing(tmp_store, tmp_path, synth,
                                                                   snapshot):
    rows = synth.rows(50)
    _, first = import_ft(tmp_store, tmp_path, synth, "BTC_USDT-1m.json", rows[:30])
    before = snapshot(tmp_store)
    other = [list(r) for r in rows[20:]]
    other[3][5] = round(other[3][5] * 1.001, 6)  # volume differs at row 23 = 00:23
    other[4][4] = round(other[4][4] * 1.001, 6)  # and close at 00:24 (reported second)
    other[4][2] = max(other[4][2], other[4][4])
    path = synth.ft_json(tmp_path / "other" / "binance" / "BTC_USDT-1m.json", other)
    with pytest.raises(TapeError) as err:
        tmp_store.import_file(path)
    message = str(err.value)
    assert message.startswith(f"{path}: disagrees with the stored tape")
    assert str(first) in message
    assert f"at 2021-05-19 00:23:00+00:00: volume is {other[3][5]!r} here but " \
        f"{rows[23][5]!r} there" in message
    assert snapshot(tmp_store) == before


def test_values_within_relative_tolerance_agree(tmp_store, tmp_path, synth):
    rows = synth.rows(10)
    import_ft(tmp_store, tmp_path, synth, "BTC_USDT-1m.json", rows)
    close = [list(r) for r in rows]
    close[5][5] *= 1 + 1e-12
    path = synth.ft_json(tmp_path / "x" / "binance" / "BTC_USDT-1m.json", close)
    assert tmp_store.import_file(path).rows_added == 0


@pytest.mark.parametrize("mutate,message", [
    (lambda r: r[7].__setitem__(0, r[6][0]), "row 7 (2021-05-19 00:06:00+00:00): timestamp is "
                                             "not after the previous row (duplicate)"),
    (lambda r: r[4].__setitem__(3, r[4][1] * 1.5), "row 4 (2021-05-19 00:04:00+00:00): low"),
    (lambda r: r[2].__setitem__(5, -1), "row 2 (2021-05-19 00:02:00+00:00): volume is negative"),
    (lambda r: r[9].__setitem__(1, 0), "row 9 (2021-05-19 00:09:00+00:00): open is not positive"),
])
def test_bad_input_leaves_no_file(tmp_store, tmp_path, synth, snapshot, mutate, message):
    rows = synth.rows(12)
    mutate(rows)
    path = synth.ft_json(tmp_path / "binance" / "BTC_USDT-1m.json", rows)
    with pytest.raises(TapeError) as err:
        tmp_store.import_file(path)
    assert str(err.value).startswith(f"{path}: {message}")
    assert snapshot(tmp_store) == {}


def test_failed_write_leaves_store_unchanged(tmp_store, tmp_path, synth, snapshot, monkeypatch):
    rows = synth.rows(20, interval_s=3600)
    import_ft(tmp_store, tmp_path, synth, "BTC_USDT_USDT-1h-futures.json", rows)
    before = snapshot(tmp_store)
    funding = synth.ft_json(tmp_path / "f" / "binance" / "BTC_USDT_USDT-8h-funding_rate.json",
                            synth.funding_rows([T0, T0 + 8 * H], [0.0001, 0.0002]))

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(store_mod, "write_tape", boom)
    with pytest.raises(OSError):
        tmp_store.import_file(funding)
    assert snapshot(tmp_store) == before  # funding.parquet not written either


# --------------------------------------------------------------------------- funding


def test_funding_attached_to_containing_candle_after_tape(tmp_store, tmp_path, synth):
    import_ft(tmp_store, tmp_path, synth, "BTC_USDT_USDT-1h-futures.json",
              synth.rows(30, interval_s=3600))
    import_ft(tmp_store, tmp_path, synth, "BTC_USDT-1h.json", synth.rows(30, interval_s=3600))
    times = [T0 + 3, T0 + 8 * H - 20, T0 + 16 * H + 1_500_000, T0 + 24 * H]
    rates = [0.0001, -0.0003, 0.0002, 0.0004]
    path = synth.ft_json(tmp_path / "f" / "binance" / "BTC_USDT_USDT-8h-funding_rate.json",
                         synth.funding_rows(times, rates))
    result = tmp_store.import_file(path)
    assert result.kind == "funding" and result.key == "binance/perp/BTC-USDT/funding"
    assert result.updated == [tmp_store.root / "binance/perp/BTC-USDT/1h.parquet"]
    tape = tmp_store.load("binance", "perp", "BTC", "1h")
    fr = tape.arrays()["funding_rate"]
    placed = {i: fr[i] for i in np.flatnonzero(~np.isnan(fr))}
    # 00:00:00.003 -> 00:00; 07:59:59.980 rounds to 08:00; 16:25 lies in the 16:00 candle
    assert placed == {0: 0.0001, 8: -0.0003, 16: 0.0002, 24: 0.0004}
    spot = tmp_store.load("binance", "spot", "BTC", "1h")
    assert spot.frame["funding_rate"].null_count() == 30
    funding, meta = read_funding(result.path)
    assert meta.funding_interval_seconds == 8 * 3600
    assert funding["timestamp"].dt.epoch("ms").to_list() == [
        T0, T0 + 8 * H, T0 + 16 * H + 1_500_000, T0 + 24 * H]
    (info,) = [i for i in tmp_store.list() if i.market == "perp"]
    assert info.has_funding


def test_funding_before_tape_is_attached_on_tape_import(tmp_store, tmp_path, synth):
    path = synth.ft_json(tmp_path / "f" / "binance" / "ETH_USDT-8h-funding_rate.json",
                         synth.funding_rows([T0 + 8 * H, T0 + 16 * H], [0.0001, 0.0002]))
    assert tmp_store.import_file(path).updated == []
    import_ft(tmp_store, tmp_path, synth, "ETH_USDT_USDT-5m-futures.json",
              synth.rows(300, interval_s=300))
    fr = tmp_store.load("binance", "perp", "ETH", "5m").arrays()["funding_rate"]
    assert np.flatnonzero(~np.isnan(fr)).tolist() == [96, 192]
    assert fr[96] == 0.0001 and fr[192] == 0.0002


def test_funding_in_gap_and_coarse_candles(tmp_store, tmp_path, synth):
    rows = synth.rows(48, interval_s=3600)
    rows = rows[:7] + rows[10:]  # 07:00..09:00 candles missing
    import_ft(tmp_store, tmp_path, synth, "BTC_USDT_USDT-1h-futures.json", rows)
    import_ft(tmp_store, tmp_path, synth, "BTC_USDT_USDT-1d-futures.json",
              synth.rows(3, interval_s=86400))
    path = synth.ft_json(tmp_path / "f" / "binance" / "BTC_USDT_USDT-8h-funding_rate.json",
                         synth.funding_rows([T0, T0 + 8 * H, T0 + 16 * H], [0.1e-3, 0.2e-3,
                                                                            0.3e-3]))
    result = tmp_store.import_file(path)
    messages = [w.message for w in result.warnings]
    assert any("1 funding payment(s) fall into gaps of binance/perp/BTC-USDT/1h" in m
               for m in messages)
    assert any("1 candle(s) of binance/perp/BTC-USDT/1d hold several funding payments (summed)"
               in m for m in messages)
    daily = tmp_store.load("binance", "perp", "BTC", "1d").arrays()["funding_rate"]
    assert daily[0] == pytest.approx(0.6e-3) and np.isnan(daily[1:]).all()


def test_funding_merge_disagreement(tmp_store, tmp_path, synth, snapshot):
    a = synth.ft_json(tmp_path / "a" / "binance" / "BTC_USDT-8h-funding_rate.json",
                      synth.funding_rows([T0, T0 + 8 * H], [0.0001, 0.0002]))
    tmp_store.import_file(a)
    before = snapshot(tmp_store)
    b = synth.ft_json(tmp_path / "b" / "binance" / "BTC_USDT_USDT-8h-funding_rate.json",
                      synth.funding_rows([T0 + 8 * H + 30, T0 + 16 * H], [0.00025, 0.0001]))
    with pytest.raises(TapeError, match=r"disagrees with the stored funding .* at 2021-05-19 "
                                        r"08:00:00\+00:00: funding_rate is 0.00025 here but "
                                        r"0.0002 there"):
        tmp_store.import_file(b)
    assert snapshot(tmp_store) == before


# --------------------------------------------------------------------------- list / load / resolve


def make_store(tmp_store, tmp_path, synth):
    day = 24 * 60
    import_ft(tmp_store, tmp_path, synth, "BTC_USDT-1h.json", synth.rows(72, interval_s=3600))
    import_ft(tmp_store, tmp_path, synth, "BTC_USDT_USDT-1h-futures.json",
              synth.rows(72, interval_s=3600))
    import_ft(tmp_store, tmp_path, synth, "BTC_USDT-1m.json", synth.rows(day))
    import_ft(tmp_store, tmp_path, synth, "BTC_USDT_USDT-1m-futures.json", synth.rows(day),
              venue="bybit")
    # a second 1m spot file two days later: the merged tape has a 1-day hole
    later = synth.rows(day // 2, start_ms=T0 + 2 * day * 60_000)
    import_ft(tmp_store, tmp_path, synth, "BTC_USDT-1m.json", later, sub="later")
    return tmp_store


def test_list(tmp_store, tmp_path, synth):
    infos = make_store(tmp_store, tmp_path, synth).list()
    assert [i.key for i in infos] == ["binance/perp/BTC-USDT/1h", "binance/spot/BTC-USDT/1h",
                                      "binance/spot/BTC-USDT/1m", "bybit/perp/BTC-USDT/1m"]
    spot1m = infos[2]
    assert spot1m.start == datetime(2021, 5, 19, tzinfo=UTC)
    assert spot1m.end == datetime(2021, 5, 21, 12, tzinfo=UTC)
    assert (spot1m.rows, spot1m.n_gaps, spot1m.has_funding) == (2160, 1, False)
    assert TapeStore(tmp_path / "nothing").list() == []


def test_load_missing_lists_what_exists(tmp_store, tmp_path, synth):
    make_store(tmp_store, tmp_path, synth)
    with pytest.raises(TapeError, match=r"no tape binance/perp/BTC-USDT/5m in the store .* "
                                        r"binance/perp/BTC-USDT/1h 2021-05-19 00:00 \.\. "
                                        r"2021-05-22 00:00"):
        tmp_store.load("binance", "perp", "BTC/USDT", "5m")


def test_resolve_prefers_finest_then_perp_then_binance(tmp_store, tmp_path, synth):
    store = make_store(tmp_store, tmp_path, synth)
    day1 = (datetime(2021, 5, 19, 6, tzinfo=UTC), datetime(2021, 5, 19, 18, tzinfo=UTC))
    assert store.resolve("BTC", *day1).meta.key == "bybit/perp/BTC-USDT/1m"
    assert store.resolve("BTC/USDT", *day1, venue="binance").meta.key == \
        "binance/spot/BTC-USDT/1m"
    assert store.resolve("BTC", *day1, interval="60m").meta.key == "binance/perp/BTC-USDT/1h"
    assert store.resolve("BTC", *day1, market="spot", interval="1h").meta.key == \
        "binance/spot/BTC-USDT/1h"
    # day 2 lies in the hole of the merged 1m spot tape: not covered by it
    day2 = ("2021-05-20T06:00:00Z", "2021-05-20T18:00:00Z")
    assert store.resolve("BTC", *day2, market="spot").meta.key == "binance/spot/BTC-USDT/1h"
    # day 3 is back in the 1m spot tape
    assert store.resolve("BTC", "2021-05-21T01:00Z", "2021-05-21T02:00Z").meta.key == \
        "binance/spot/BTC-USDT/1m"


def test_resolve_errors_list_ranges(tmp_store, tmp_path, synth):
    store = make_store(tmp_store, tmp_path, synth)
    with pytest.raises(TapeError) as err:
        store.resolve("BTC", "2021-05-21T00:00Z", "2021-05-23T00:00Z", market="perp")
    message = str(err.value)
    assert "no tape with market=perp in" in message
    assert "covers BTC/USDT from 2021-05-21 00:00:00+00:00 to 2021-05-23 00:00:00+00:00" in message
    assert "bybit/perp/BTC-USDT/1m 2021-05-19 00:00 .. 2021-05-20 00:00" in message
    with pytest.raises(TapeError, match="the store has for ETH/USDT: nothing"):
        store.resolve("ETH", "2021-05-19", "2021-05-20")
    with pytest.raises(TapeError, match="is not after its start"):
        store.resolve("BTC", "2021-05-20", "2021-05-19")


def test_coverage_statuses(tmp_store, tmp_path, synth):
    store = make_store(tmp_store, tmp_path, synth)
    spot1m = [i for i in store.list() if i.key == "binance/spot/BTC-USDT/1m"][0]
    full = store.coverage(spot1m, "2021-05-19T00:00Z", "2021-05-19T12:00Z")
    assert (full.status, full.rows, full.expected_rows, full.gaps) == ("full", 720, 720, [])
    hole = store.coverage(spot1m, "2021-05-19T12:00Z", "2021-05-21T00:00Z")
    assert hole.status == "partial" and hole.longest_missing == timedelta(days=1)
    assert store.coverage(spot1m, "2021-05-20T01:00Z", "2021-05-20T02:00Z").status == "none"


# --------------------------------------------------------------------------- loading bad files


def test_load_validates_every_time(tmp_store, tmp_path, synth):
    import_ft(tmp_store, tmp_path, synth, "BTC_USDT-1m.json", synth.rows(30))
    dest = tmp_store.root / "binance/spot/BTC-USDT/1m.parquet"
    table = pq.read_table(dest)
    close = table.column("close").to_numpy().copy()
    close[12] = math.nan
    bad = table.set_column(4, "close", pa.array(close))
    pq.write_table(bad, dest)
    with pytest.raises(TapeError, match=r"1m.parquet: row 12 \(2021-05-19 00:12:00\+00:00\): "
                                        r"close is NaN"):
        tmp_store.load("binance", "spot", "BTC", "1m")

    pq.write_table(table.replace_schema_metadata({}), dest)
    with pytest.raises(TapeError, match="not a liqbt file"):
        Tape.from_parquet(dest)
    dest.write_bytes(b"garbage")
    with pytest.raises(TapeError, match="not a readable Parquet file"):
        Tape.from_parquet(dest)
    with pytest.raises(TapeError, match="no such file"):
        Tape.from_parquet(tmp_path / "nope.parquet")


def test_foreign_tape_parquet_reimport(tmp_store, tmp_path, synth):
    """A tape exported from one store imports into another with its own identity."""
    import_ft(tmp_store, tmp_path, synth, "BTC_USDT_USDT-1m-futures.json", synth.rows(20))
    src = tmp_store.root / "binance/perp/BTC-USDT/1m.parquet"
    other = TapeStore(tmp_path / "other")
    result = other.import_file(src)
    assert result.key == "binance/perp/BTC-USDT/1m" and result.rows_added == 20
    assert other.load("binance", "perp", "BTC", "1m").frame.select(
        pl.exclude("funding_rate")).equals(
        tmp_store.load("binance", "perp", "BTC", "1m").frame.select(pl.exclude("funding_rate")))
