"""The real May 2021 crash, end to end on a small book (needs LIQBT_SHARED_DATA)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from backtest.cli import main
from backtest.results import Catalog

pytestmark = pytest.mark.shared_data
BTC_1M = "ohlcv_1m/tooyipjee__freqtrade__44523f8d61__b50348e9__BTC_USDT-1m.json"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def may_run(tmp_path_factory):
    import os

    data = os.environ.get("LIQBT_SHARED_DATA")
    if not data or not (Path(data) / BTC_1M).exists():
        pytest.skip("LIQBT_SHARED_DATA not set: real market data unavailable")
    root = tmp_path_factory.mktemp("may")
    tapes, runs, book = root / "tapes", root / "runs", root / "book.parquet"
    assert main(["data", "import", str(Path(data) / BTC_1M), "--venue", "binance",
                 "--store", str(tapes)]) == 0
    assert main(["book", "generate", "--accounts", "50000", "--event", "may-2021", "--seed", "7",
                 "--uncalibrated", "-o", str(book), "--store", str(tapes)]) == 0
    config = root / "may.toml"
    config.write_text((ROOT / "configs" / "may-2021-btc.toml").read_text()
                      .replace("data/books/may-2021-btc.parquet", str(book)))
    assert main(["run", str(config), "--runs", str(runs), "--store", str(tapes), "-q"]) == 0
    with Catalog(runs) as cat:
        run_id = cat.run_ids()[-1]
        yield cat, run_id


def test_window_is_the_real_day(may_run):
    cat, run_id = may_run
    prices = cat.query(f"SELECT * FROM prices WHERE run_id = '{run_id}' ORDER BY step")
    assert prices.height == 1440
    assert prices["low"].min() == 30000.0  # Binance BTC/USDT low of 2021-05-19, 13:10 UTC
    low_at = prices.filter(pl.col("low") == 30000.0)["timestamp"][0]
    assert (low_at.hour, low_at.minute) == (13, 10)


def test_policies_differ_as_expected_on_the_crash(may_run):
    cat, run_id = may_run
    s = {row["policy"]: row for row in cat.summary(run_id).iter_rows(named=True)}
    assert set(s) == {"hard", "partial", "close-factor"}
    # the crash liquidates a large share of a leveraged book
    assert s["hard"]["accounts_liquidated"] > 0.2 * 50_000
    # partial liquidation closes less and takes smaller penalties than closing everything
    assert s["partial"]["liquidated_notional_usd"] < s["hard"]["liquidated_notional_usd"]
    assert s["partial"]["penalties_usd"] < s["hard"]["penalties_usd"]
    assert s["partial"]["user_equity_retained"] > s["hard"]["user_equity_retained"]
    assert s["partial"]["equity_vs_hard"] > 0
    # the same accounts trigger first under every policy (same maintenance margin)
    assert s["partial"]["accounts_liquidated"] == s["hard"]["accounts_liquidated"]
