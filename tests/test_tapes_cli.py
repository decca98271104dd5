from __future__ import annotations

import pytest

from backtest.cli import main

T0 = 1_621_382_400_000  # 2021-05-19 00:00 UTC

EVENTS = """
[day-one]
name = "Day one"
start = 2021-05-19T00:00:00Z
end = 2021-05-19T12:00:00Z
symbols = ["BTC/USDT", "ETH/USDT"]
description = "Synthetic."
"""


@pytest.fixture
def wide(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")


def test_import_prints_key_rows_gaps_and_warnings(tmp_path, synth, capsys, wide):
    rows = synth.rows(40)
    rows = rows[:10] + rows[13:]
    rows[20][3] = round(min(rows[20][1], rows[20][4]) * 0.7, 6)  # a 30% wick
    path = synth.ft_json(tmp_path / "data" / "binance" / "BTC_USDT-1m.json", rows)
    store = tmp_path / "store"
    assert main(["data", "import", str(path), "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert "-> binance/spot/BTC-USDT/1m" in out
    assert "rows: 37 in file, 37 new, 37 in store; range 2021-05-19 00:00 .. 2021-05-19 00:39" \
        in out
    assert "gaps: 1, largest 2021-05-19 00:09 -> 2021-05-19 00:13 (0:04:00, 3 missing)" in out
    assert "warning: row 20 (2021-05-19 00:23:00+00:00): low" in out
    assert (store / "binance/spot/BTC-USDT/1m.parquet").exists()


def test_import_directory_sorted_and_recursive(tmp_path, synth, capsys, wide):
    root = tmp_path / "user_data" / "data" / "binance"
    synth.ft_json(root / "ETH_USDT-1m.json", synth.rows(10))
    synth.ft_feather(root / "futures" / "BTC_USDT_USDT-1h-futures.feather",
                     synth.rows(10, interval_s=3600))
    synth.ft_json(root / "futures" / "BTC_USDT_USDT-8h-funding_rate.json",
                  synth.funding_rows([T0, T0 + 28_800_000], [0.0001, 0.0002]))
    synth.ft_feather(root / "futures" / "BTC_USDT_USDT-1h-mark.feather",
                     synth.rows(10, interval_s=3600))  # not importable: skipped
    (root / "notes.txt").write_text("ignored")
    store = tmp_path / "store"
    assert main(["data", "import", str(root.parent), "--store", str(store)]) == 0
    out = capsys.readouterr().out
    keys = [line.split("-> ")[1].split()[0] for line in out.splitlines() if "-> " in line]
    assert keys == ["binance/spot/ETH-USDT/1m", "binance/perp/BTC-USDT/1h",
                    "binance/perp/BTC-USDT/funding"]
    assert f"funding re-attached to {store / 'binance/perp/BTC-USDT/1h.parquet'}" in out
    assert "mark" not in out


def test_bad_file_exits_2_with_message_and_no_file(tmp_path, synth, capsys):
    rows = synth.rows(10)
    rows[4][0] = rows[3][0]
    path = synth.ft_json(tmp_path / "binance" / "BTC_USDT-1m.json", rows)
    store = tmp_path / "store"
    assert main(["data", "import", str(path), "--store", str(store)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: row 4 (2021-05-19 00:03:00+00:00): timestamp is not "
                          "after the previous row (duplicate)")
    assert "Traceback" not in err
    assert not store.exists() or not any(p.is_file() for p in store.rglob("*"))


def test_venue_hint_when_not_inferable(tmp_path, synth, capsys):
    path = synth.ft_json(tmp_path / "downloads" / "BTC_USDT-1m.json", synth.rows(5))
    assert main(["data", "import", str(path), "--store", str(tmp_path / "s")]) == 2
    assert "pass --venue" in capsys.readouterr().err
    assert main(["data", "import", str(path), "--venue", "binance", "--store",
                 str(tmp_path / "s")]) == 0


def test_list_shows_event_coverage_and_tapes(tmp_path, synth, capsys, wide):
    store = tmp_path / "store"
    events = tmp_path / "events.toml"
    events.write_text(EVENTS)
    full = synth.ft_json(tmp_path / "binance" / "BTC_USDT-1m.json", synth.rows(24 * 60))
    part = synth.ft_json(tmp_path / "binance" / "BTC_USDT-1h.json",
                         synth.rows(6, interval_s=3600))
    for path in (full, part):
        assert main(["data", "import", str(path), "--store", str(store)]) == 0
    capsys.readouterr()
    assert main(["data", "list", "--store", str(store), "--events", str(events)]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if "│" in line]
    assert any("day-one" in line and "binance/spot/1h" in line and "partial (6/12 candles)"
               in line for line in lines)
    assert any("binance/spot/1m" in line and "full" in line for line in lines)
    assert any("ETH/USDT" in line and "no tape" in line for line in lines)
    assert any("BTC/USDT" in line and "1440" in line for line in lines)  # the tapes table


def test_list_bad_events_file_exits_2(tmp_path, capsys):
    events = tmp_path / "events.toml"
    events.write_text("[x]\nname = 1\n")
    assert main(["data", "list", "--store", str(tmp_path), "--events", str(events)]) == 2
    assert "event 'x': field" in capsys.readouterr().err
