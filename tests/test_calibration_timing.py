"""When liquidations happen: the share after the window's low, and published sub-windows held
against the simulated fraction over the same windows, venue by venue and product by product."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from backtest.calibration.fit import EventOutcome
from backtest.calibration.timing import sub_windows, timing_rows
from backtest.targets import Target

DAY = datetime(2025, 10, 10, tzinfo=UTC)


def _target(venue: str, product: str, start_h: float, end_h: float, usd: float) -> Target:
    return Target("oct-2025", f"{venue}-{start_h}", "venue", venue, product, "BTC",
                  DAY + timedelta(hours=start_h), DAY + timedelta(hours=end_h),
                  "liquidated_notional_usd", usd, usd, "USD", f"https://example.org/{venue}",
                  "primary", "test", Path("t.toml"))


TARGETS = [
    _target("hyperliquid", "perp", 0, 24, 10e9),     # the day
    _target("hyperliquid", "perp", 21, 22, 5e9),     # its cascade hour: half the day
    _target("morpho-blue", "loan", 0, 24, 18e6),
    _target("morpho-blue", "loan", 21, 22, 18e6),    # all of a lending market's day
    _target("binance", "perp", 0, 24, 2e9),          # no sub-window of its own
]


def _outcome() -> EventOutcome:
    """24 hourly steps: 1% of the book liquidated each hour, 26% in hour 21 (the low at 21)."""
    step_ms = np.array([int((DAY + timedelta(hours=h)).timestamp() * 1000) for h in range(24)])
    per_step = np.full(24, 0.01)
    per_step[21] = 0.26
    return EventOutcome("oct-2025", float(per_step.sum()), 0.9, 0.5, None, step_ms, per_step,
                        low_step=21)


def test_sub_windows_pair_each_venue_with_its_own_longer_window():
    windows = sub_windows("oct-2025", TARGETS)
    assert {w["venue"] for w in windows} == {"hyperliquid", "morpho-blue"}
    hyper = next(w for w in windows if w["venue"] == "hyperliquid")
    assert hyper["real_fraction"] == pytest.approx(0.5)
    assert hyper["outer"][1] - hyper["outer"][0] == 24 * 3600 * 1000
    assert sub_windows("may-2021", TARGETS) == []


def test_a_perp_book_is_held_against_perp_venues_only():
    """A lending market's hour follows its oracle and threshold: a perp book's day is not held
    against it (the shipped perp fit's timing table showed Morpho's rows until 2026-12-06)."""
    perp_only = sub_windows("oct-2025", TARGETS, frozenset({"perp"}))
    assert [w["venue"] for w in perp_only] == ["hyperliquid"]
    loans = sub_windows("oct-2025", TARGETS, frozenset({"loan"}))
    assert [w["venue"] for w in loans] == ["morpho-blue"]


def test_timing_rows_give_the_simulated_fraction_over_the_same_windows():
    (row,) = timing_rows([_outcome()], TARGETS, products=frozenset({"perp"}))
    # after the low: hours 22 and 23, 2% of 49%
    assert row["simulated_share_after_low"] == pytest.approx(0.02 / 0.49, abs=1e-4)
    assert row["window_0_venue"] == "hyperliquid"
    assert row["window_0_real_fraction"] == pytest.approx(0.5)
    assert row["window_0_simulated_fraction"] == pytest.approx(0.26 / 0.49, abs=1e-4)
    assert "window_1_venue" not in row


def test_a_window_on_a_held_out_target_is_reported_as_held_out():
    """A calibration's ``held_out_targets`` stay in its timing table, marked as checks."""
    held = frozenset({"oct-2025/hyperliquid-21"})
    (row,) = timing_rows([_outcome()], TARGETS, held_out=held)
    venues = [row[f"window_{k}_venue"] for k in range(2)]
    assert venues == ["hyperliquid", "morpho-blue"]
    assert [row[f"window_{k}_held_out"] for k in range(2)] == [True, False]
    assert row["window_0_utc"] == "2025-10-10 21:00 - 2025-10-10 22:00"
    (plain,) = timing_rows([_outcome()], TARGETS)
    assert not plain["window_0_held_out"] and not plain["window_1_held_out"]
