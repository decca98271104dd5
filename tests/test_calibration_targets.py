"""The shipped real targets load, and each validation rule is refused with a clear message."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from backtest.calibration import (
    MEASURES,
    liquidated_window,
    load_targets,
    open_interest_change,
    share_of_open_interest,
    targets_for,
    validation_dir,
)
from backtest.errors import ConfigError
from backtest.events import load_events

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "data" / "validation"

GOOD = """\
event = "may-2021"

[[target]]
id = "binance-btc-perp-liquidated"
scope = "venue"
venue = "binance"
product = "perp"
asset = "BTC"
window_start = 2021-05-19T00:00:00Z
window_end = 2021-05-20T00:00:00Z
measure = "liquidated_notional_usd"
low = 1.0e9
high = 2.0e9
unit = "USD"
source = "https://example.org/a"
quality = "secondary"
note = "made up for a test"

[[target]]
id = "binance-btc-perp-oi"
scope = "venue"
venue = "binance"
product = "perp"
asset = "BTC"
window_start = 2021-05-19T00:00:00Z
window_end = 2021-05-20T00:00:00Z
measure = "open_interest_before_usd"
low = 4.0e9
high = 5.0e9
unit = "USD"
source = "https://example.org/b"
quality = "aggregator"
note = "made up for a test"
"""


def write(tmp_path: Path, text: str, name: str = "may-2021.toml") -> Path:
    directory = tmp_path / "validation"
    directory.mkdir(exist_ok=True)
    (directory / name).write_text(text)
    return directory


def test_shipped_targets_load_and_cover_the_catalogued_crashes():
    targets = load_targets(SHIPPED)
    events = load_events()
    assert len(targets) >= 60
    files = {p.stem for p in SHIPPED.glob("*.toml")}
    assert files <= set(events)
    assert {"black-thursday-2020", "may-2021", "luna-2022", "ftx-2022", "yen-carry-2024",
            "oct-2025", "3ac-2022", *MORE_BTC_CRASHES} <= files
    keys = [t.key for t in targets]
    assert len(keys) == len(set(keys))
    for t in targets:
        assert t.unit == MEASURES[t.measure]
        assert 0.0 <= t.low <= t.high
        assert events[t.event].start <= t.window_start < t.window_end <= events[t.event].end
        assert t.source.startswith(("http://", "https://"))
    # every VALIDATION.md headline the calibration needs is present
    liq = {(t.event, t.venue, t.asset): t for t in targets
           if t.measure == "liquidated_notional_usd"}
    assert liq[("may-2021", "all-cex", "BTC")].low == 3.57e9
    assert liq[("may-2021", "aave-v2", "all")].low == 1.7e8
    assert liq[("yen-carry-2024", "aave-v3", "all")].low == 2.534e8
    hyper = {t.id: t.low for t in targets if t.venue == "hyperliquid"}
    assert hyper["hyperliquid-all-liquidated-cascade"] == 5.51e9
    assert hyper["hyperliquid-all-liquidated-24h"] == 1.03e10


def test_shipped_shares_of_open_interest_match_the_published_figures():
    targets = load_targets(SHIPPED)
    low, high = share_of_open_interest("may-2021", "all-cex", "BTC", targets=targets)
    assert low == pytest.approx(3.57 / 17.4) and high == pytest.approx(3.57 / 17.4)
    low, high = share_of_open_interest("oct-2025", "all-cex", "BTC", targets=targets)
    assert low == pytest.approx(5.36 / 70.0)
    assert share_of_open_interest("luna-2022", "all-cex", "BTC", targets=targets) is None
    # ETH on 2025-10-10: $4.42B (CoinGlass) of $28B (CryptoQuant), open interest down to $19B
    low, high = share_of_open_interest("oct-2025", "all-cex", "ETH", targets=targets)
    assert low == pytest.approx(4.42 / 28.0) and high == pytest.approx(4.42 / 28.0)
    assert open_interest_change("oct-2025", "all-cex", "ETH", targets=targets) == (
        pytest.approx(19 / 28), pytest.approx(19 / 28))
    # BitMEX on Black Thursday: two readings of open interest before ($1.0B, $1.2B), a range
    low, high = share_of_open_interest("black-thursday-2020", "bitmex", "BTC", targets=targets)
    assert low == pytest.approx(0.7 / 1.2) and high == pytest.approx(0.7)
    # open interest after over before: May 2021 fell 26% (12.9B after, 17.4B before)
    assert open_interest_change("may-2021", "all-cex", "BTC", targets=targets) == (
        pytest.approx(12.9 / 17.4), pytest.approx(12.9 / 17.4))
    low, high = open_interest_change("yen-carry-2024", "all-cex", "BTC", targets=targets)
    assert low == pytest.approx(26.65 / 36.94) and high == pytest.approx(1.0)
    assert open_interest_change("luna-2022", "all-cex", "BTC", targets=targets) is None


#: BTC crash days added for the perp held-out check (issue 13): each has BTC liquidations and
#: BTC open interest before, from published figures; see docs/validation.md.
MORE_BTC_CRASHES = ("feb-2021", "sep-2021", "dec-2021", "mar-2024", "apr-2024", "feb-2025",
                    "apr-2025")


def test_more_btc_crash_days_give_a_share_and_pair_btc_with_btc():
    """Each added day pairs BTC liquidations with BTC open interest (never an all-coin total)."""
    targets = load_targets(SHIPPED)
    expected = {  # (liquidated low / OI high, liquidated high / OI low), from the files' notes
        "feb-2021": (1.64 / 19.5, 1.64 / 19.5),
        "sep-2021": (1.1 / 13.4, 1.39 / 13.3),      # Glassnode perps OI: an upper-side share
        "dec-2021": (0.85 / 21.6, 1.3 / 21.06),
        "mar-2024": (0.31 / 30.0, 0.31 / 30.0),     # OI "surpassing $30 billion": upper bound
        "apr-2024": (0.31915 / 34.05, 0.31915 / 34.05),
        "feb-2025": (0.41824 / 65.0, 0.41824 / 65.0),
        "apr-2025": (0.4676 / 53.53, 0.4676 / 53.39),
    }
    for event, (low, high) in expected.items():
        share = share_of_open_interest(event, "all-cex", "BTC", targets=targets)
        assert share == (pytest.approx(low, rel=1e-3), pytest.approx(high, rel=1e-3)), event
        pool = targets_for(event, targets=targets)
        for t in pool:  # every BTC perp share figure is BTC over BTC (lending: its own assets)
            if t.product == "perp" and t.asset != "BTC" \
                    and t.measure in ("liquidated_notional_usd", "open_interest_before_usd"):
                assert t.asset == "all" and t.measure == "liquidated_notional_usd", t.key
    # open interest after over before, where both were published (derived where the note says)
    assert open_interest_change("feb-2021", "all-cex", "BTC", targets=targets) == (
        pytest.approx(0.92), pytest.approx(0.92))
    low, high = open_interest_change("sep-2021", "all-cex", "BTC", targets=targets)
    assert (low, high) == (pytest.approx(9.46 / 13.4), pytest.approx(9.46 / 13.3))
    assert open_interest_change("feb-2025", "all-cex", "BTC", targets=targets)[0] == \
        pytest.approx(61.5 / 65.0)
    assert open_interest_change("mar-2024", "all-cex", "BTC", targets=targets) is None
    # the liquidated windows are the figures' 24 h, not the event's days
    start, end = liquidated_window("apr-2025", "all-cex", "BTC", targets=targets)
    assert (start.day, start.hour, end.day, end.hour) == (6, 7, 7, 7)
    start, end = liquidated_window("feb-2021", "all-cex", "BTC", targets=targets)
    assert (start.day, start.hour, end.day, end.hour) == (21, 19, 22, 19)
    # BTC liquidations without BTC open interest give no share
    for event in ("luna-2022", "3ac-2022"):
        assert targets_for(event, asset="BTC", measure="liquidated_notional_usd",
                           targets=targets)
        assert share_of_open_interest(event, "all-cex", "BTC", targets=targets) is None


SHARE = """
[[target]]
id = "binance-btc-perp-share"
scope = "venue"
venue = "binance"
product = "perp"
asset = "BTC"
window_start = 2021-05-19T00:00:00Z
window_end = 2021-05-20T00:00:00Z
measure = "liquidated_share_of_open_interest"
low = 0.1
high = 0.3
unit = "fraction"
source = "https://example.org/c"
quality = "primary"
note = "made up for a test"
"""


def test_aave_v2_weth_figures_add_up_and_give_a_share_of_the_deposits():
    """Aave v2's WETH liquidations of 2021-05-19, tabulated by window from the same liquidation
    calls, add up to the day; over the reserve's deposits they give the share a book sized to
    its collateral is fitted on (``of="collateral_usd"``)."""
    targets = [t for t in load_targets(SHIPPED) if t.event == "may-2021"
               and t.venue == "aave-v2" and t.asset == "ETH"]
    by_id = {t.id: t.low for t in targets}
    day = by_id["aave-v2-weth-liquidated"]
    parts = ("00-11", "11-13", "13-14", "14-24")
    assert sum(by_id[f"aave-v2-weth-liquidated-{p}"] for p in parts) == pytest.approx(day,
                                                                                       rel=1e-4)
    assert by_id["aave-v2-weth-liquidated-15-24"] < by_id["aave-v2-weth-liquidated-14-24"]
    low, high = share_of_open_interest("may-2021", "aave-v2", "ETH", targets=targets,
                                       of="collateral_usd")
    assert (low, high) == (pytest.approx(day / 3.125e9), pytest.approx(day / 2.910e9))
    # no open interest for a lending reserve: the default share does not exist
    assert share_of_open_interest("may-2021", "aave-v2", "ETH", targets=targets) is None


def test_share_is_computed_from_ranges_and_direct_share_wins(tmp_path):
    targets = load_targets(write(tmp_path, GOOD))
    low, high = share_of_open_interest("may-2021", "binance", "BTC", targets=targets)
    assert low == pytest.approx(1.0 / 5.0) and high == pytest.approx(2.0 / 4.0)
    assert share_of_open_interest("may-2021", "okx", "BTC", targets=targets) is None
    targets = load_targets(write(tmp_path, GOOD + SHARE))
    assert share_of_open_interest("may-2021", "binance", "BTC", targets=targets) == (0.1, 0.3)


def test_the_share_is_counted_over_the_liquidated_figures_window(tmp_path):
    """The window the calibration counts simulated liquidations over is the real figure's."""
    leg = GOOD.replace("binance-btc-perp-liquidated", "binance-btc-perp-liquidated-leg", 1)
    leg = leg.split("[[target]]")[1].replace(
        "window_start = 2021-05-19T00:00:00Z\nwindow_end = 2021-05-20T00:00:00Z",
        "window_start = 2021-05-19T12:00:00Z\nwindow_end = 2021-05-19T14:00:00Z")
    targets = load_targets(write(tmp_path, GOOD + "[[target]]" + leg))
    start, end = liquidated_window("may-2021", "binance", "BTC", targets=targets)
    assert (start.hour, end.day) == (0, 20)  # the longest window's figure, as the share uses
    only_leg = [t for t in targets if t.id != "binance-btc-perp-liquidated"]
    start, end = liquidated_window("may-2021", "binance", "BTC", targets=only_leg)
    assert (start.hour, end.hour, end.day) == (12, 14, 19)
    assert liquidated_window("may-2021", "okx", "BTC", targets=targets) is None
    # the shipped figures: BitMEX's first leg on Black Thursday, and 2024-08-05 alone
    start, end = liquidated_window("black-thursday-2020", "bitmex", "BTC", directory=SHIPPED)
    assert (start.hour, end.hour) == (10, 12)
    start, _ = liquidated_window("yen-carry-2024", "all-cex", "BTC", directory=SHIPPED)
    assert (start.day, start.hour) == (5, 0)


def test_targets_for_narrows_exactly(tmp_path):
    directory = write(tmp_path, GOOD)
    assert len(targets_for("may-2021", directory=directory)) == 2
    assert len(targets_for("may-2021", venue="binance", asset="BTC", product="perp",
                           directory=directory)) == 2
    assert targets_for("may-2021", asset="all", directory=directory) == []
    assert targets_for("may-2021", product="loan", directory=directory) == []
    only = targets_for("may-2021", measure="open_interest_before_usd", directory=directory)
    assert [t.key for t in only] == ["may-2021/binance-btc-perp-oi"]
    assert only[0].middle == pytest.approx(math.sqrt(4.0e9 * 5.0e9))


def test_directory_from_env_and_default(tmp_path, monkeypatch):
    directory = write(tmp_path, GOOD)
    monkeypatch.setenv("LIQBT_VALIDATION", str(directory))
    assert validation_dir() == directory
    assert len(load_targets()) == 2
    monkeypatch.delenv("LIQBT_VALIDATION")
    monkeypatch.chdir(tmp_path)  # no data/validation here: the source tree's is used
    assert validation_dir() == SHIPPED
    assert validation_dir(directory) == directory


@pytest.mark.parametrize(("old", "new", "message"), [
    ('note = "made up for a test"\n', 'note = "x"\ncolour = "red"\n', "unknown field 'colour'"),
    ('unit = "USD"', 'unit = "count"', "is stated in 'USD', not 'count'"),
    ('unit = "USD"', 'unit = "EUR"', "field 'unit'"),
    ("high = 2.0e9", "high = 0.5e9", "low 1e+09 is above high 5e+08"),
    ("low = 1.0e9", "low = -1.0", "not a finite figure >= 0"),
    ('measure = "liquidated_notional_usd"', 'measure = "vibes"', "unknown measure 'vibes'"),
    ('scope = "venue"', 'scope = "planet"', "field 'scope'"),
    ('product = "perp"', 'product = "option"', "field 'product'"),
    ('quality = "secondary"', 'quality = "great"', "field 'quality'"),
    ('source = "https://example.org/a"', 'source = "a friend"', "not an http(s) address"),
    ("window_end = 2021-05-20T00:00:00Z", "window_end = 2021-05-21T00:00:00Z",
     "reaches outside event 'may-2021'"),
    ("window_start = 2021-05-19T00:00:00Z", "window_start = 2021-05-18T00:00:00Z",
     "reaches outside event 'may-2021'"),
    ("window_end = 2021-05-20T00:00:00Z", "window_end = 2021-05-19T00:00:00Z",
     "is not after window_start"),
    ("window_start = 2021-05-19T00:00:00Z", "window_start = 2021-05-19T00:00:00",
     "must be a UTC time with an offset"),
    ('asset = "BTC"', 'asset = "BTC/USDT"', "is not a base asset"),
    ('id = "binance-btc-perp-oi"', 'id = "binance-btc-perp-liquidated"', "id used twice"),
    ('note = "made up for a test"\n', '', "field 'note': missing"),
])
def test_each_rule_is_refused_naming_file_and_target(tmp_path, old, new, message):
    assert old in GOOD
    directory = write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(ConfigError) as info:
        load_targets(directory)
    text = str(info.value)
    assert message in text
    assert "may-2021.toml" in text
    assert "target '" in text


def test_counts_and_fractions_are_checked(tmp_path):
    text = GOOD.replace('measure = "liquidated_notional_usd"', 'measure = "accounts_liquidated"'
                        ).replace('unit = "USD"', 'unit = "count"', 1).replace(
        "low = 1.0e9", "low = 10.5")
    with pytest.raises(ConfigError, match="a count must be a whole number"):
        load_targets(write(tmp_path, text))
    text = GOOD.replace('measure = "liquidated_notional_usd"', 'measure = "long_share_of_'
                        'liquidations"').replace('unit = "USD"', 'unit = "fraction"', 1).replace(
        "low = 1.0e9", "low = 0.5").replace("high = 2.0e9", "high = 1.5")
    with pytest.raises(ConfigError, match=r"a fraction must be in \[0, 1\]"):
        load_targets(write(tmp_path, text))


@pytest.mark.parametrize(("text", "name", "message"), [
    (GOOD.replace('event = "may-2021"', 'event = "may-2031"'), "may-2021.toml",
     "unknown event 'may-2031'"),
    (GOOD, "ftx-2022.toml", "must be named may-2021.toml"),
    (GOOD.replace('event = "may-2021"', ''), "may-2021.toml", "field 'event': missing"),
    ('event = "may-2021"\nextra = 1\n', "may-2021.toml", "unknown top-level field 'extra'"),
    ('event = "may-2021"\n', "may-2021.toml", "no [[target]] tables"),
    ('event = "may-2021\n', "may-2021.toml", "invalid TOML"),
])
def test_file_level_rules(tmp_path, text, name, message):
    directory = write(tmp_path, text, name)
    with pytest.raises(ConfigError) as info:
        load_targets(directory)
    assert message in str(info.value)
    assert name in str(info.value)
