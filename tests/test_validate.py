"""``liqbt validate`` and the shared "against what happened" comparison, on a crafted run whose
totals are known: ratios, the in-range flag, in-fit flags, window clipping, derived shares of
open interest, and the plain sentence when nothing matches."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from backtest.calibration.compare import (
    HELD_OUT,
    IN_FIT,
    UNCALIBRATED,
    RunFacts,
    compare,
    format_figure,
    table_rows,
)
from backtest.calibration.sources import RunTables
from backtest.cli import main
from backtest.results.catalog import Catalog
from backtest.targets import load_targets

START = datetime(2021, 5, 19, tzinfo=UTC)
HOURS = 24
OI = 17.4e9  # book's open interest at the window start (one side: half its notional), USD
# per policy: liquidated notional per hour (USD); hour 12 carries half of everything
LIQ = {"hard": 3.57e9, "partial": 1.785e9}

TARGETS = """\
event = "may-2021"

[[target]]
id = "market-btc-liquidated"
scope = "market"
venue = "all-cex"
product = "perp"
asset = "BTC"
window_start = 2021-05-19T00:00:00Z
window_end = 2021-05-20T00:00:00Z
measure = "liquidated_notional_usd"
low = 3.57e9
high = 3.57e9
unit = "USD"
source = "https://example.org/liq"
quality = "aggregator"
note = "test"

[[target]]
id = "market-btc-oi"
scope = "market"
venue = "all-cex"
product = "perp"
asset = "BTC"
window_start = 2021-05-19T00:00:00Z
window_end = 2021-05-20T00:00:00Z
measure = "open_interest_before_usd"
low = 1.74e10
high = 1.74e10
unit = "USD"
source = "https://example.org/oi"
quality = "secondary"
note = "test"

[[target]]
id = "binance-btc-noon"
scope = "venue"
venue = "binance"
product = "perp"
asset = "BTC"
window_start = 2021-05-19T12:00:00Z
window_end = 2021-05-19T13:00:00Z
measure = "liquidated_notional_usd"
low = 1.0e9
high = 4.0e9
unit = "USD"
source = "https://example.org/noon"
quality = "primary"
note = "test"

[[target]]
id = "binance-btc-long-share"
scope = "venue"
venue = "binance"
product = "perp"
asset = "BTC"
window_start = 2021-05-19T00:00:00Z
window_end = 2021-05-20T00:00:00Z
measure = "long_share_of_liquidations"
low = 0.85
high = 0.9
unit = "fraction"
source = "https://example.org/share"
quality = "secondary"
note = "test"

[[target]]
id = "aave-loans"
scope = "protocol"
venue = "aave-v2"
product = "loan"
asset = "BTC"
window_start = 2021-05-19T00:00:00Z
window_end = 2021-05-20T00:00:00Z
measure = "liquidated_notional_usd"
low = 1.0e8
high = 1.0e8
unit = "USD"
source = "https://example.org/aave"
quality = "secondary"
note = "a loan figure: a perp book is not held against it"

[[target]]
id = "market-eth-liquidated"
scope = "market"
venue = "all-cex"
product = "perp"
asset = "ETH"
window_start = 2021-05-19T00:00:00Z
window_end = 2021-05-20T00:00:00Z
measure = "liquidated_notional_usd"
low = 1.0e9
high = 1.0e9
unit = "USD"
source = "https://example.org/eth"
quality = "aggregator"
note = "another asset"
"""


def _write_run(root: Path, run_id: str, meta: dict, event: str | None = "may-2021",
               symbol: str = "BTC/USDT") -> Path:
    """A run directory with hand-made tables whose totals are known."""
    run_dir = root / run_id
    run_dir.mkdir(parents=True)
    ts = [START + timedelta(hours=h) for h in range(HOURS)]
    steps, liqs, accounts = [], [], []
    for policy, total in LIQ.items():
        per_hour = np.full(HOURS, total / 2 / (HOURS - 1))
        per_hour[12] = total / 2
        for h in range(HOURS):
            steps.append({"run_id": run_id, "policy": policy, "step": h, "timestamp": ts[h],
                          "liquidated_notional_usd": per_hour[h], "liquidations": 2,
                          "bad_debt_usd": 1e6 if h == 12 else 0.0,
                          "insurance_draw_usd": 5e5 if h == 12 else 0.0,
                          "insurance_fees_usd": 0.0,
                          "insurance_fund_usd": 1e7 - (5e5 if h >= 12 else 0.0),
                          "adl_notional_usd": 0.0,
                          "perp_long_oi_usd": 2 * OI * 0.6 - per_hour[: h + 1].sum(),
                          "perp_short_oi_usd": 2 * OI * 0.4,
                          "loan_collateral_usd": 0.0, "loan_debt_usd": 0.0})
            # one long (80%) and one short (20%) liquidation per hour
            liqs.append({"run_id": run_id, "policy": policy, "timestamp": ts[h],
                         "account_id": 2 * h, "notional_usd": 0.8 * per_hour[h],
                         "bad_debt_usd": 1e6 if h == 12 else 0.0})
            liqs.append({"run_id": run_id, "policy": policy, "timestamp": ts[h],
                         "account_id": 2 * h + 1, "notional_usd": 0.2 * per_hour[h],
                         "bad_debt_usd": 0.0})
        for i in range(100):  # 100 accounts, half long; notional sums to 2 x OI (both sides)
            accounts.append({"run_id": run_id, "policy": policy, "account_id": i,
                             "product": "perp", "side": 1 if i % 2 == 0 else -1,
                             "initial_notional_usd": 2 * OI / 100,
                             "initial_equity_usd": OI / 1000})
    pl.DataFrame(steps).write_parquet(run_dir / "steps.parquet")
    pl.DataFrame(liqs).write_parquet(run_dir / "liquidations.parquet")
    pl.DataFrame(accounts).write_parquet(run_dir / "accounts.parquet")
    pl.DataFrame({"run_id": [run_id], "policy": ["hard"], "timestamp": [ts[0]],
                  "account_id": [7]}).filter(pl.lit(False)).write_parquet(run_dir / "adl.parquet")
    manifest = {
        "run_id": run_id, "name": "crafted", "created_at": "2026-01-01T00:00:00+00:00",
        "symbol": symbol,
        "window": {"event": event, "start": START.isoformat(),
                   "end": (START + timedelta(hours=HOURS)).isoformat(), "steps": HOURS},
        "tape": {"interval": "1h"},
        "book": {"accounts": 100, "meta": meta, "products": {"perp": 100}},
        "policies": [{"name": p} for p in LIQ],
        "versions": {"liqbt": "test"},
    }
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    return run_dir


@pytest.fixture
def world(tmp_path):
    targets = tmp_path / "validation"
    targets.mkdir()
    (targets / "may-2021.toml").write_text(TARGETS)
    runs = tmp_path / "runs"
    fit = json.dumps(["may-2021/market-btc-liquidated"])
    _write_run(runs, "r1-calibrated", {"calibration_fit_targets": fit})
    _write_run(runs, "r2-plain", {})
    _write_run(runs, "r3-binance", {"venue": "binance", "open_interest_usd": str(OI / 2)})
    _write_run(runs, "r4-doge", {}, symbol="DOGE/USDT")
    _write_run(runs, "r5-free", {}, event=None)
    _write_run(runs, "r6-imported", {"source": "imported", "calibration_fit_targets": "[]"})
    return runs, targets  # the run directories are the catalog


def _comparison(world, run_id):
    runs, targets = world
    with Catalog(runs) as catalog:
        facts = RunFacts.from_manifest(catalog.manifest(run_id))
        return compare(facts, RunTables(catalog, run_id, facts), targets=load_targets(targets))


def _rows(comparison):
    return {(r.target.id, r.policy): r for r in comparison.rows}


def test_known_totals_give_the_expected_ratios_and_fit_flags(world):
    comparison = _comparison(world, "r1-calibrated")
    rows = _rows(comparison)
    assert comparison.sentence is None and comparison.calibrated
    hard = rows[("market-btc-liquidated", "hard")]
    assert hard.simulated == pytest.approx(3.57e9)
    assert hard.ratio == pytest.approx(1.0) and hard.inside is True
    assert hard.fit == IN_FIT
    partial = rows[("market-btc-liquidated", "partial")]
    assert partial.ratio == pytest.approx(0.5) and partial.inside is False
    assert rows[("market-btc-oi", "hard")].simulated == pytest.approx(OI)
    assert rows[("market-btc-oi", "hard")].fit == HELD_OUT
    # the derived share: liquidated / open interest at the window start
    share = rows[("all-cex-btc-share-of-open-interest-derived", "hard")]
    assert share.derived and share.target.low == pytest.approx(3.57 / 17.4)
    assert share.simulated == pytest.approx(3.57e9 / OI) and share.ratio == pytest.approx(1.0)
    assert share.fit == IN_FIT  # derived from a fitted target
    # long share: 80% of each hour's liquidations are longs
    long_share = rows[("binance-btc-long-share", "partial")]
    assert long_share.simulated == pytest.approx(0.8)
    assert long_share.ratio == pytest.approx(0.8 / np.sqrt(0.85 * 0.9))
    assert long_share.inside is False
    # loan targets and other assets are not shown for a BTC perp book
    assert not any(r.target.id in ("aave-loans", "market-eth-liquidated")
                   for r in comparison.rows)


def test_a_share_over_a_later_window_divides_by_the_open_interest_read_at_the_start(world):
    """2024-08-05's shape: the liquidations are counted from noon, the open interest was read
    at the run's (and its own target's) start; the derived share divides the one by the
    other, as the real one does, instead of leaving the row empty."""
    runs, targets = world
    head, rest = TARGETS.split('id = "market-btc-liquidated"', 1)
    rest = rest.replace("window_start = 2021-05-19T00:00:00Z",
                        "window_start = 2021-05-19T12:00:00Z", 1)
    (targets / "may-2021.toml").write_text(head + 'id = "market-btc-liquidated-pm"' + rest)
    rows = _rows(_comparison(world, "r2-plain"))
    share = rows[("all-cex-btc-share-of-open-interest-derived", "hard")]
    assert share.target.window_start == START + timedelta(hours=12)
    afternoon = 3.57e9 / 2 + 3.57e9 / 2 / (HOURS - 1) * (HOURS - 13)  # hours 12..23
    assert share.simulated == pytest.approx(afternoon / OI)
    assert any("open interest at the run's start" in n for n in share.notes)
    # the liquidated figure itself is over its own window, levels not involved
    assert rows[("market-btc-liquidated-pm", "hard")].simulated == pytest.approx(afternoon)


def test_simulated_figures_are_restricted_to_the_target_window(world):
    rows = _rows(_comparison(world, "r2-plain"))
    noon = rows[("binance-btc-noon", "hard")]
    assert noon.simulated == pytest.approx(3.57e9 / 2)  # hour 12 only
    assert noon.inside is True and noon.ratio == pytest.approx(1.785e9 / 2e9)
    assert noon.fit == UNCALIBRATED


def test_a_published_sub_window_gives_the_share_of_the_day_whatever_the_size(world):
    """Binance's noon hour and its day: the real share of the day's liquidations that fell at
    noon against the run's (hour 12 holds half of each policy's), size-independent."""
    runs, targets = world
    day = TARGETS.split("[[target]]")[3].replace('"binance-btc-noon"', '"binance-btc-day"')
    day = day.replace("2021-05-19T12:00:00Z", "2021-05-19T00:00:00Z").replace(
        "2021-05-19T13:00:00Z", "2021-05-20T00:00:00Z").replace("high = 4.0e9", "high = 2.0e9")
    (targets / "may-2021.toml").write_text(TARGETS + "[[target]]" + day)
    rows = _rows(_comparison(world, "r3-binance"))
    for policy in LIQ:  # half of each policy's day, whatever its total
        share = rows[("binance-btc-noon-share-of-window-derived", policy)]
        assert share.derived and share.target.unit == "fraction"
        assert share.simulated == pytest.approx(0.5)
    # real range: noon 1-4B over the day's 1-2B, low = 1 / 2, high = 4 / 1 capped at 1
    assert (share.target.low, share.target.high) == (pytest.approx(0.5), 1.0)
    assert share.inside is True and share.fit == UNCALIBRATED
    assert "binance-btc-noon over may-2021/binance-btc-day" in share.target.note
    # a venue's day alone gives no share row, nor does another venue's sub-window
    assert not any("share-of-window" in k[0] for k in _rows(_comparison(world, "r2-plain"))
                   if k[0].startswith("all-cex"))
    # a sweep's means and quantiles give none: a ratio of quantiles is not a quantile
    from backtest.calibration.sweep_sources import SweepTables
    assert SweepTables.window_shares is False


def test_a_share_of_the_window_is_fitted_only_where_its_sub_window_was(world):
    """A fit that used the day but held the noon hour out (``held_out_targets``): the noon's
    share of the day is an out-of-sample check, the day itself in the fit."""
    runs, targets = world
    day = TARGETS.split("[[target]]")[3].replace('"binance-btc-noon"', '"binance-btc-day"')
    day = day.replace("2021-05-19T12:00:00Z", "2021-05-19T00:00:00Z").replace(
        "2021-05-19T13:00:00Z", "2021-05-20T00:00:00Z").replace("high = 4.0e9", "high = 2.0e9")
    (targets / "may-2021.toml").write_text(TARGETS + "[[target]]" + day)
    for run_id, fitted in (("r7-day-only", ["binance-btc-day"]),
                           ("r8-both", ["binance-btc-day", "binance-btc-noon"])):
        _write_run(runs, run_id, {"venue": "binance", "open_interest_usd": str(OI / 2),
                                  "calibration_fit_targets": json.dumps(
                                      [f"may-2021/{i}" for i in fitted])})
    rows = _rows(_comparison(world, "r7-day-only"))
    assert rows[("binance-btc-day", "hard")].fit == IN_FIT
    assert rows[("binance-btc-noon", "hard")].fit == HELD_OUT
    assert rows[("binance-btc-noon-share-of-window-derived", "hard")].fit == HELD_OUT
    rows = _rows(_comparison(world, "r8-both"))
    assert rows[("binance-btc-noon-share-of-window-derived", "hard")].fit == IN_FIT


def test_an_unsized_books_dollar_figures_are_said_to_scale_and_not_named_far(world):
    """A calibrated book drawn for a venue without a size figure (metadata ``unsized``): its
    dollar figures scale with its account count, so the comparison says so and no dollar
    figure of it is named far from what happened; the same book sized is."""
    from backtest.calibration.reality_check import far_from_reality

    runs, _ = world
    meta = {"venue": "all-cex", "calibration_fit_targets": "[]"}
    _write_run(runs, "r9-sized", meta)
    _write_run(runs, "r10-unsized", dict(meta, unsized="no open_interest_before_usd target"))
    sized, unsized = (_comparison(world, r) for r in ("r9-sized", "r10-unsized"))
    assert any("market-btc-liquidated)" in w for w in far_from_reality(sized))  # partial 0.5x
    assert not any("Unsized book" in n for n in sized.notes)
    far = far_from_reality(unsized)  # its share of open interest is still a check
    assert not any("market-btc-liquidated)" in w for w in far)
    assert any("share-of-open-interest-derived)" in w for w in far)
    (note,) = [n for n in unsized.notes if n.startswith("Unsized book")]
    assert "no open_interest_before_usd target" in note and "scale with the number" in note
    assert _rows(unsized)[("market-btc-liquidated", "partial")].ratio == pytest.approx(0.5)
    # validate's closing lines count each policy's held-out outcomes by distance
    from backtest.calibration.reality_check import held_out_summary

    hard, partial = held_out_summary(sized)
    assert hard == ("hard: 2 held-out figures, 2 inside the real range, 2 within a factor "
                    "1.5")
    assert partial.startswith("partial: 2 held-out figures, 0 inside the real range, 0 within "
                              "a factor 1.5; further: liquidated notional "
                              "(may-2021/market-btc-liquidated) 0.50x, ")
    assert [line.split(",")[0] for line in held_out_summary(unsized)] == [
        "hard: 1 held-out figure", "partial: 1 held-out figure"]  # its share only
    assert held_out_summary(_comparison(world, "r1-calibrated"))[0].startswith(
        "hard: 1 held-out figure")  # not its fitted figure nor that share: Binance's noon
    # nor does a model-error band widen its dollar figures; its share gets one
    from backtest.sweep.coverage import add_model_error

    for comparison, dollars_banded in ((sized, True), (unsized, False)):
        rows = table_rows(comparison)
        add_model_error(rows, comparison, [comparison, comparison], 0.5)
        banded = {r.target.id for r, row in zip(comparison.rows, rows, strict=True)
                  if "band" in row}
        assert ("market-btc-liquidated" in banded) is dollars_banded
        assert "all-cex-btc-share-of-open-interest-derived" in banded


def test_an_in_fit_liquidated_figure_says_what_the_refit_without_its_event_gave(world):
    """A book drawn from a calibrated file with leave-one-out rows: the liquidated figure the
    full fit used says its held-out ratio, the figure to quote; figures of other venues, the
    fit's other measures and a run without the file say nothing of it."""
    runs, targets = world
    fitted = runs.parent / "fitted.toml"
    fitted.write_text('[book]\n\n[[leave_one_out]]\nevent = "may-2021"\nvenue = "all-cex"\n'
                      'asset = "BTC"\nratio = 0.9812\n')
    fit = json.dumps(["may-2021/market-btc-liquidated", "may-2021/market-btc-oi"])
    _write_run(runs, "r8-refit", {"calibration_fit_targets": fit, "calibration": str(fitted)})
    rows = _rows(_comparison(world, "r8-refit"))
    said = "left out of the fit: 0.98x of the real share"
    assert any(said in n for n in rows[("market-btc-liquidated", "hard")].notes)
    assert not any(said in n for n in rows[("market-btc-oi", "hard")].notes)  # in fit too
    assert not any(said in n for n in rows[("binance-btc-noon", "hard")].notes)
    plain = _rows(_comparison(world, "r1-calibrated"))  # no file recorded: nothing said
    assert not any(said in n for n in plain[("market-btc-liquidated", "hard")].notes)


def test_uncalibrated_book_and_missing_venue_are_said(world):
    comparison = _comparison(world, "r2-plain")
    text = " ".join(comparison.notes)
    assert "Uncalibrated book" in text and "names no venue" in text
    assert {r.fit for r in comparison.rows} == {UNCALIBRATED}


def test_an_imported_book_is_said_and_held_out_everywhere(world):
    comparison = _comparison(world, "r6-imported")
    assert comparison.book_kind.startswith("imported book")
    assert {r.fit for r in comparison.rows} == {HELD_OUT}
    assert not any("Uncalibrated" in n for n in comparison.notes)
    assert _comparison(world, "r1-calibrated").book_kind == "calibrated book"
    assert _comparison(world, "r2-plain").book_kind == UNCALIBRATED


def test_venue_of_the_book_narrows_targets_and_its_open_interest_is_used(world):
    comparison = _comparison(world, "r3-binance")
    assert {r.target.venue for r in comparison.rows} == {"binance"}
    assert not any("names no venue" in n for n in comparison.notes)
    # no binance OI target: no derived share; the binance long share is there
    assert {r.target.id for r in comparison.rows} == {"binance-btc-noon",
                                                     "binance-btc-long-share"}


def test_book_open_interest_metadata_sets_the_share(world):
    runs, targets = world
    with Catalog(runs) as catalog:
        facts = RunFacts.from_manifest(catalog.manifest("r3-binance"))
        figures = RunTables(catalog, "r3-binance", facts).figures(
            facts.start, facts.end, True, "perp")
    assert figures["hard"]["open_interest_before_usd"] == pytest.approx(OI / 2)
    assert figures["hard"]["liquidated_share_of_open_interest"] == pytest.approx(
        3.57e9 / (OI / 2))
    assert figures["hard"]["bad_debt_usd"] == pytest.approx(1e6)
    assert figures["hard"]["insurance_fund_drawn_usd"] == pytest.approx(5e5)
    assert figures["hard"]["accounts_liquidated"] == 2 * HOURS
    assert figures["hard"]["bad_debt_accounts"] == 1


def test_no_target_sentence(world):
    doge = _comparison(world, "r4-doge")
    assert doge.rows == [] and "No published figure exists for DOGE perp" in doge.sentence
    assert "all-cex BTC perp" in doge.sentence
    free = _comparison(world, "r5-free")
    assert free.rows == [] and "not a catalogued event" in free.sentence


def test_table_rows_are_formatted_strings(world):
    rows = table_rows(_comparison(world, "r1-calibrated"))
    first = next(r for r in rows if r["target"] == "may-2021/market-btc-liquidated"
                 and r["policy"] == "partial")
    assert first["real"] == "$3.57B" and first["simulated"] == "$1.79B"
    assert first["ratio"] == "0.50x" and first["inside"] == "no" and first["fit"] == IN_FIT
    assert first["window"] == "2021-05-19 00:00 \u2013 2021-05-20 00:00 UTC"
    assert format_figure(804242, "count") == "804,242"
    assert format_figure(0.2052, "fraction") == "20.5%"
    assert format_figure(4.0e5, "USD") == "$400k"


def test_cli_validate_prints_every_target_and_exits_0(world, capsys):
    runs, targets = world
    code = main(["validate", "r1", "--runs", str(runs), "--targets", str(targets)])
    out = capsys.readouterr().out
    assert code == 0
    assert "Liquidated notional [may-2021/market-btc-liquidated]" in out
    assert "real $3.57B" in out and "in fit" in out
    assert "sim/real    0.50x  outside the range" in out
    assert "held out" in out
    assert "simulated window 2021-05-19 12:00" not in out  # the noon window is inside the run
    assert out.rstrip().endswith("partial: 1 held-out figure, 0 inside the real range, 1 within "
                                 "a factor 1.5")  # Binance's noon: $0.89B against $1B - $4B
    code = main(["validate", "r4", "--runs", str(runs), "--targets", str(targets)])
    out = capsys.readouterr().out
    assert code == 0 and "No published figure exists" in out


def test_cli_validate_unknown_run_is_a_clear_error(world, capsys):
    runs, targets = world
    code = main(["validate", "nope", "--runs", str(runs), "--targets", str(targets)])
    assert code == 2 and "no run matching 'nope'" in capsys.readouterr().err


# --------------------------------------------------------------------------- the run report

BAD_DEBT_TARGET = """
[[target]]
id = "made-up-bad-debt"
scope = "market"
venue = "all-cex"
product = "perp"
asset = "BTC"
window_start = 2021-05-19T00:00:00Z
window_end = 2021-05-20T00:00:00Z
measure = "bad_debt_usd"
low = 1.0e6
high = 2.0e6
unit = "USD"
source = "https://example.org/made-up"
quality = "secondary"
note = "made up for a test"
"""


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """A small simulated run on the catalogued event may-2021 (synthetic tape and book)."""
    from backtest.books import generate_book, write_book
    from backtest.engine.run import execute
    from backtest.tapes import Tape, TapeStore
    from tests.test_report import STRATEGIES, _tape_rows

    tmp = tmp_path_factory.mktemp("validate-run")
    src = tmp / "binance" / "BTC_USDT-5m.json"
    src.parent.mkdir(parents=True)
    src.write_text(json.dumps(_tape_rows()))
    result = TapeStore(tmp / "tapes").import_file(src, venue="binance")
    a = Tape.from_parquet(result.path).arrays()
    book = generate_book(400, a["timestamp"], a["close"], a["low"], a["high"], START, seed=3,
                         meta={"symbol": "BTC/USDT", "event": "may-2021",
                               "calibration_fit_targets": json.dumps(
                                   ["may-2021/market-btc-liquidated"])})
    write_book(book, tmp / "book.parquet")
    config = tmp / "run.toml"
    config.write_text(f'name = "validate-me"\nevent = "may-2021"\nbook = "{tmp / "book.parquet"}"\n'
                      'policies = ["hard", "partial"]\n'
                      f'[tape]\npath = "{result.path}"\n')
    run_id, _ = execute(config, runs=tmp / "runs", strategies=STRATEGIES, show_progress=False)
    return tmp / "runs", run_id, tmp


def test_run_report_carries_the_against_what_happened_table(simulated, monkeypatch):
    from backtest.report import render_report

    runs, run_id, _ = simulated
    monkeypatch.delenv("LIQBT_VALIDATION", raising=False)
    with Catalog(runs) as catalog:
        html = render_report(catalog, run_id)
        perp = catalog.query(f"""
            SELECT sum(l.notional_usd) AS usd FROM liquidations l JOIN accounts a
              USING (run_id, policy, account_id)
            WHERE l.run_id = '{run_id}' AND l.policy = 'hard' AND a.product = 'perp'""")
        oi_perp = catalog.query(f"""
            SELECT sum(initial_notional_usd) AS usd FROM accounts
            WHERE run_id = '{run_id}' AND policy = 'hard' AND product = 'perp'""")
        facts = RunFacts.from_manifest(catalog.manifest(run_id))
        comparison = compare(facts, RunTables(catalog, run_id, facts))
    assert '<section id="against-what-happened">' in html and 'id="reality-table"' in html
    assert 'href="#against-what-happened"' in html
    assert 'data-target="may-2021/market-btc-liquidated" data-policy="hard"' in html
    assert "uncalibrated book" not in html.split('id="reality-table"')[1].split("</table>")[0]
    # the table's simulated liquidated notional is the run's perps' (a perp target), over the
    # whole window; the book also holds loans, left out of perp figures
    assert facts.products == ("loan", "perp")
    row = next(r for r in comparison.rows
               if r.target.id == "market-btc-liquidated" and r.policy == "hard")
    total = perp["usd"][0]
    assert total > 0 and row.simulated == pytest.approx(total) and row.fit == IN_FIT
    assert row.ratio == pytest.approx(total / 3.57e9)
    assert format_figure(total, "USD") in html
    oi = next(r for r in comparison.rows
              if r.target.id == "market-btc-open-interest-before" and r.policy == "hard")
    # open interest counts each contract once: half the perps' notional over both sides
    assert oi.fit == HELD_OUT and oi.simulated == pytest.approx(oi_perp["usd"][0] / 2)
    assert 'id="far-from-reality"' not in html  # nothing held out of this kind is far


def test_run_report_names_the_figures_far_from_what_happened(simulated, monkeypatch, tmp_path):
    """A held-out bad debt the run misses by more than a factor 1.5 is named above the summary
    table; the liquidated amount the book was fitted on is not, however far."""
    import shutil

    from backtest.report import render_report
    from backtest.targets import validation_dir

    runs, run_id, _ = simulated
    monkeypatch.delenv("LIQBT_VALIDATION", raising=False)
    targets = tmp_path / "validation"
    targets.mkdir()
    shutil.copy(validation_dir() / "may-2021.toml", targets / "may-2021.toml")
    with open(targets / "may-2021.toml", "a", encoding="utf-8") as f:
        f.write(BAD_DEBT_TARGET)
    monkeypatch.setenv("LIQBT_VALIDATION", str(targets))
    with Catalog(runs) as catalog:
        html = render_report(catalog, run_id)
    top = html.split('id="far-from-reality"')[1].split("</div>")[0]
    assert re.search(r"<li>bad debt \(may-2021/made-up-bad-debt\), real \$1M \u2013 \$2M, held "
                     r"out: hard \$[0-9.]+k? \(0\.0\d+x\); partial \$[0-9.]+k? \(0\.0\d+x\)</li>",
                     top)
    assert "market-btc-liquidated)" not in top
    counted = html.split('id="held-out-summary"')[1].split("</div>")[0]  # as validate ends
    assert re.search(r"<li>hard: \d+ held-out figures?, \d+ inside the real range, \d+ within a "
                     r"factor 1\.5; further: [^<]*bad debt \(may-2021/made-up-bad-debt\)", counted)


def test_run_report_says_plainly_when_no_target_exists(simulated, monkeypatch, tmp_path):
    from backtest.report import render_report

    runs, run_id, _ = simulated
    empty = tmp_path / "no-targets"
    empty.mkdir()
    monkeypatch.setenv("LIQBT_VALIDATION", str(empty))
    with Catalog(runs) as catalog:
        html = render_report(catalog, run_id)
    assert 'id="reality-sentence"' in html and 'id="reality-table"' not in html
    assert "No published figure exists for BTC loan/perp in event" in html
    assert "data/validation has no targets for this event" in html


def test_cli_validate_on_a_simulated_run(simulated, capsys, monkeypatch):
    runs, run_id, _ = simulated
    monkeypatch.delenv("LIQBT_VALIDATION", raising=False)
    assert main(["validate", "latest", "--runs", str(runs)]) == 0
    out = capsys.readouterr().out
    assert f"Run {run_id}: event may-2021, BTC loan/perp" in out
    assert "[may-2021/market-btc-liquidated]" in out and "in fit" in out
    assert "Liquidated share of open interest (derived)" in out


def test_a_calibrated_book_with_a_coverage_record_shows_the_model_error(world, capsys):
    """A run on a book drawn from a calibrated file whose coverage check is recorded: liqbt
    validate and the run report widen each liquidation figure by one run's recorded log
    error (the members' median error and their spread together) and say so."""
    import hashlib
    import math

    from backtest.report.build import against_what_happened
    from backtest.sweep.coverage import point_error

    runs, targets = world
    fitted = runs.parent / "perps-fitted.toml"
    fitted.write_text("[book]\n")
    sha = hashlib.sha256(fitted.read_bytes()).hexdigest()
    event = "[[coverage.event]]\nratio = {r}\np5 = 0.5\np95 = 2.0\n"
    (runs.parent / "perps-fitted-coverage.toml").write_text(
        f'[coverage]\nfitted = "perps-fitted.toml"\nfitted_sha256 = "{sha}"\nmembers = 100\n'
        'centre = "refit without the event"\nmeasured = "2026-12-06"\nevents = 2\n'
        + "".join(event.format(r=r) for r in (math.exp(0.5), math.exp(-0.5))))
    z = 1.6448536269514722
    sigma = math.sqrt(0.25 + (math.log(4) / (2 * z)) ** 2)
    assert point_error(fitted) == pytest.approx(sigma)
    fit = json.dumps(["may-2021/market-btc-liquidated"])
    _write_run(runs, "r7-covered", {"calibration_fit_targets": fit, "calibration": str(fitted)})
    code = main(["validate", "r7", "--runs", str(runs), "--targets", str(targets)])
    out = capsys.readouterr().out
    assert code == 0 and "Liquidation figures carry a 90% band" in out
    f = math.exp(z * sigma)
    sim = LIQ["hard"]
    lo, hi = format_figure(sim / f, "USD"), format_figure(sim * f, "USD")
    assert f"with the model's error: {lo} \u2013 {hi}" in out
    # the open interest row has no band
    oi_block = out.split("Open interest at window start")[1].split("\n\n")[0]
    assert "model's error" not in oi_block
    with Catalog(runs) as catalog:
        section = against_what_happened(catalog, "r7-covered", str(targets))
    banded = [r for r in section["rows"] if "band" in r]
    assert banded and all(r["band_meets"] in ("yes", "no") for r in banded)
    assert any("90% band" in n for n in section["notes"])
    # without the record (the plain calibrated run): no band
    with Catalog(runs) as catalog:
        plain = against_what_happened(catalog, "r1-calibrated", str(targets))
    assert not any("band" in r for r in plain["rows"])
