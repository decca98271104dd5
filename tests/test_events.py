from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from backtest.errors import ConfigError
from backtest.events import Event, get_event, load_events

CATALOG = Path(__file__).resolve().parent.parent / "data" / "events.toml"

EXPECTED = {
    "black-thursday-2020": ("2020-03-12T00:00", "2020-03-14T00:00", {"BTC/USDT", "ETH/USDT"}),
    "may-2021": ("2021-05-19T00:00", "2021-05-20T00:00", {"BTC/USDT", "ETH/USDT", "SOL/USDT"}),
    "luna-2022": ("2022-05-07T00:00", "2022-05-14T00:00",
                  {"LUNA/USDT", "BTC/USDT", "ETH/USDT", "SOL/USDT"}),
    "3ac-2022": ("2022-06-13T00:00", "2022-06-19T00:00", {"BTC/USDT", "ETH/USDT", "SOL/USDT"}),
    "ftx-2022": ("2022-11-08T00:00", "2022-11-11T00:00", {"BTC/USDT", "ETH/USDT", "SOL/USDT"}),
    "yen-carry-2024": ("2024-08-04T12:00", "2024-08-06T00:00", {"BTC/USDT", "ETH/USDT"}),
    "oct-2025": ("2025-10-10T00:00", "2025-10-12T00:00", {"BTC/USDT", "ETH/USDT"}),
    "calm-2023": ("2023-08-01T00:00", "2023-08-03T00:00", {"BTC/USDT", "ETH/USDT"}),
    # BTC crash days with published BTC liquidations and open interest (issue 13)
    "feb-2021": ("2021-02-21T00:00", "2021-02-24T00:00", {"BTC/USDT"}),
    "sep-2021": ("2021-09-07T00:00", "2021-09-08T00:00", {"BTC/USDT"}),
    "dec-2021": ("2021-12-04T00:00", "2021-12-05T00:00", {"BTC/USDT"}),
    "mar-2024": ("2024-03-05T00:00", "2024-03-07T00:00", {"BTC/USDT"}),
    "apr-2024": ("2024-04-13T00:00", "2024-04-14T00:00", {"BTC/USDT"}),
    "feb-2025": ("2025-02-02T00:00", "2025-02-04T00:00", {"BTC/USDT"}),
    "apr-2025": ("2025-04-06T00:00", "2025-04-08T00:00", {"BTC/USDT"}),
}

VALID = """
[ftx-2022]
name = "FTX collapse"
start = 2022-11-08T00:00:00Z
end = 2022-11-11T00:00:00Z
symbols = ["BTC/USDT"]
description = "FTX halted withdrawals."
"""


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_shipped_catalog():
    events = load_events(CATALOG)
    assert set(EXPECTED) <= set(events)
    for key, (start, end, symbols) in EXPECTED.items():
        event = events[key]
        assert isinstance(event, Event) and event.key == key
        assert (event.start, event.end) == (utc(start), utc(end))
        assert event.start.utcoffset().total_seconds() == 0
        assert set(event.symbols) == symbols
        assert event.name
        sentences = re.findall(r"[.!?](?:\s|$)", event.description)
        assert 1 <= len(sentences) <= 2, key
    # the off-midnight start of the yen window is explained in its description
    assert "window starts at noon UTC" in events["yen-carry-2024"].description


def test_default_path_and_env(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no data/events.toml here: falls back to the source tree
    assert "may-2021" in load_events()
    custom = tmp_path / "mine.toml"
    custom.write_text(VALID)
    monkeypatch.setenv("LIQBT_EVENTS", str(custom))
    assert list(load_events()) == ["ftx-2022"]
    assert get_event("ftx-2022").end == utc("2022-11-11T00:00")


def test_unknown_key_lists_known(tmp_path):
    path = tmp_path / "e.toml"
    path.write_text(VALID)
    with pytest.raises(ConfigError) as err:
        get_event("ftx", path)
    assert str(err.value) == f"{path}: unknown event 'ftx'; known events: ftx-2022"


@pytest.mark.parametrize("replace,field,problem", [
    (("symbols = [\"BTC/USDT\"]", "symbols = [\"BTC/USDT\"]\nextra = 1"), "extra",
     "Extra inputs are not permitted"),
    (("name = \"FTX collapse\"\n", ""), "name", "Field required"),
    (("end = 2022-11-11T00:00:00Z", "end = 2022-11-08T00:00:00Z"), "end",
     "end 2022-11-08T00:00:00+00:00 is not after start 2022-11-08T00:00:00+00:00"),
    (("start = 2022-11-08T00:00:00Z", "start = 2022-11-08T00:00:00"), "start",
     "must be a UTC time with an offset"),
    (("start = 2022-11-08T00:00:00Z", "start = \"2022-11-08\""), "start",
     "must be a TOML date-time"),
    (("[\"BTC/USDT\"]", "[\"btcusdt\"]"), "symbols", "'btcusdt' is not BASE/QUOTE"),
    (("[\"BTC/USDT\"]", "[]"), "symbols", "must list at least one symbol"),
    (("description = \"FTX halted withdrawals.\"", "description = \"  \""), "description",
     "must not be empty"),
])
def test_validation_names_file_event_and_field(tmp_path, replace, field, problem):
    path = tmp_path / "events.toml"
    path.write_text(VALID.replace(*replace))
    with pytest.raises(ConfigError) as err:
        load_events(path)
    assert str(err.value).startswith(f"{path}: event 'ftx-2022': field '{field}': ")
    assert problem in str(err.value)


def test_dates_are_midnight_utc(tmp_path):
    path = tmp_path / "events.toml"
    path.write_text(VALID.replace("2022-11-08T00:00:00Z", "2022-11-08"))
    assert load_events(path)["ftx-2022"].start == utc("2022-11-08T00:00")


@pytest.mark.parametrize("text,problem", [
    ("[ftx-2022\n", "invalid TOML"),
    ("title = \"x\"\n", "event 'title': expected a table"),
    ("[FTX]\nname = \"x\"\n", "event key 'FTX': use lower-case letters"),
])
def test_file_level_errors(tmp_path, text, problem):
    path = tmp_path / "events.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(problem)):
        load_events(path)
    with pytest.raises(ConfigError, match="cannot read the event catalog"):
        load_events(tmp_path / "missing.toml")


def test_binary_event_catalog_is_refused_with_its_name(tmp_path):
    import pytest as _pytest

    from backtest.errors import ConfigError
    from backtest.events import load_events

    path = tmp_path / "events.toml"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
    with _pytest.raises(ConfigError, match="not UTF-8") as exc:
        load_events(path)
    assert "events.toml" in str(exc.value)
