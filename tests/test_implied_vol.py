"""The implied-volatility tape: DVOL importer, step-wise DVOL without lookahead, fallback."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from backtest.errors import TapeError
from backtest.options.implied_vol import (
    DAY_MS,
    SOURCE_DVOL,
    SOURCE_REALIZED,
    dvol_on_clock,
    implied_vol_tape,
    read_dvol_json,
    realized_on_clock,
)
from backtest.tapes import realized_vol

D0 = 1_667_692_800_000  # 2022-11-06 00:00 UTC


def _write(tmp_path: Path, rows, name="dvol_btc.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(rows) if not isinstance(rows, str) else rows)
    return path


def test_reads_pairs_and_detects_units(tmp_path):
    rows = [[D0 + k * DAY_MS, 50.0 + k] for k in range(4)]
    frame = read_dvol_json(_write(tmp_path, rows))
    assert frame["dvol"].to_list() == [50.0, 51.0, 52.0, 53.0]
    assert frame["timestamp"].dt.epoch("ms").to_list() == [r[0] for r in rows]
    seconds = read_dvol_json(_write(tmp_path, [[r[0] // 1000, r[1]] for r in rows], "s.json"))
    assert seconds["timestamp"].to_list() == frame["timestamp"].to_list()


@pytest.mark.parametrize("content, message", [
    ("not json", "not valid JSON"),
    ("{}", "non-empty JSON list"),
    ("[]", "non-empty JSON list"),
    ('[[1667692800000, 50.0], [1667779200000]]', "row 1: expected"),
    ('[[1667692800000, "50"]]', "row 0: expected"),
    ('[[1667692800000, -3.0]]', "row 0: dvol must be a positive"),
    ('[[1667692800000, 5000.0]]', "below 1000"),
    ('[[1667779200000, 50.0], [1667692800000, 51.0]]', "row 1: timestamps must be strictly"),
    ('[[1667692800000, 50.0], [1667692800000, 51.0]]', "strictly increasing"),
])
def test_bad_files_name_the_file_and_row(tmp_path, content, message):
    path = _write(tmp_path, content)
    with pytest.raises(TapeError, match=message) as err:
        read_dvol_json(path)
    assert str(path) in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(TapeError, match="cannot read"):
        read_dvol_json(tmp_path / "nope.json")


def test_dvol_is_stepwise_and_never_looks_ahead(tmp_path):
    frame = read_dvol_json(_write(tmp_path, [[D0, 50.0], [D0 + DAY_MS, 80.0],
                                             [D0 + 2 * DAY_MS, 60.0]]))
    hour = 3_600_000
    clock = D0 + np.arange(0, 5 * 24) * hour
    iv = dvol_on_clock(frame, clock)
    # day 0's close (labelled D0) is known at D0 + 1 day, day 1's at D0 + 2 days, ...
    assert np.isnan(iv[:24]).all()
    assert np.all(iv[24:48] == 0.50) and np.all(iv[48:72] == 0.80)
    assert np.all(iv[72:96] == 0.60)
    # day 3 has no close: the last one stays valid up to max_age (3 days by default)
    assert np.all(iv[96:] == 0.60)
    short = dvol_on_clock(frame, clock, max_age_ms=12 * hour)
    assert np.isnan(short[72 + 13:]).all() and short[72 + 12] == 0.60
    # changing a future close never changes the past
    later = read_dvol_json(_write(tmp_path, [[D0, 50.0], [D0 + DAY_MS, 80.0],
                                             [D0 + 2 * DAY_MS, 999.0]], "b.json"))
    np.testing.assert_array_equal(dvol_on_clock(later, clock)[:72], iv[:72])


def test_realised_fallback_uses_the_previous_step_plus_premium():
    rng = np.random.default_rng(0)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.003, 400)))
    got = realized_on_clock(close, 300, premium=0.07, window=50)
    want = realized_vol(close, 300, 50)
    assert np.isnan(got[:3]).all()
    np.testing.assert_allclose(got[3:], want[2:-1] + 0.07, rtol=1e-12)
    # a shock in the step's own close is not seen by that step
    bumped = close.copy()
    bumped[300:] *= 1.3
    assert realized_on_clock(bumped, 300, 0.07, 50)[300] == got[300]


def test_tape_mixes_sources_and_reports_them(tmp_path):
    frame = read_dvol_json(_write(tmp_path, [[D0 + k * DAY_MS, 60.0 + k] for k in range(3)]))
    step = 3_600_000
    clock = D0 - DAY_MS + np.arange(4 * 24, dtype=np.int64) * step
    close = 20_000 * np.exp(np.cumsum(np.random.default_rng(1).normal(0, 0.01, clock.size)))
    tape = implied_vol_tape(clock, close, 3600, frame, premium=0.1, start=10)
    assert tape.iv.size == clock.size - 10 and tape.timestamp_ms[0] == clock[10]
    dvol_rows = clock[10:] >= D0 + DAY_MS
    assert np.all(tape.source[dvol_rows] == SOURCE_DVOL)
    assert np.all(tape.source[~dvol_rows] == SOURCE_REALIZED)
    assert tape.iv[dvol_rows][0] == pytest.approx(0.60)
    f = tape.frame()
    assert set(f["source"].unique().to_list()) == {"dvol", "realized"}
    only_rv = implied_vol_tape(clock, close, 3600, frame, source="realized", start=10)
    assert np.all(only_rv.source == SOURCE_REALIZED)
    with pytest.raises(TapeError, match="no DVOL close published"):
        implied_vol_tape(clock, close, 3600, frame, source="dvol")
    with pytest.raises(TapeError, match="start the tape earlier"):
        implied_vol_tape(clock, close, 3600, None, start=0)
    with pytest.raises(TapeError, match="needs a DVOL file"):
        implied_vol_tape(clock, close, 3600, None, source="dvol")


@pytest.mark.shared_data
def test_real_dvol_file_on_the_ftx_clock(shared_data):
    files = sorted((shared_data / "vol").glob("*dvol_btc.json"))
    assert files, "no DVOL file in the shared data"
    frame = read_dvol_json(files[0])
    assert frame.height > 1000
    assert frame["timestamp"][0].isoformat().startswith("2022-11-06")
    assert frame["dvol"][0] == pytest.approx(56.76)
    # FTX: 2022-11-08 .. 11-10 on a 5-minute clock
    clock = D0 + 2 * DAY_MS + np.arange(3 * 288, dtype=np.int64) * 300_000
    iv = dvol_on_clock(frame, clock)
    day = np.arange(clock.size) // 288
    # each day uses the close of the day before: 11-07 (59.48), 11-08 (76.66), 11-09 (114.72)
    np.testing.assert_allclose([iv[day == k][0] for k in range(3)], [0.5948, 0.7666, 1.1472])
    assert all(np.unique(iv[day == k]).size == 1 for k in range(3))
    assert not math.isnan(iv.min())
