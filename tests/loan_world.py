"""A loans-only book run end to end on the synthetic crash day (tests of lending measures)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from backtest.books import BookParams, generate_book, write_book
from backtest.engine.run import execute
from backtest.tapes import TapeStore
from tests.conftest import Synth
from tests.test_engine_run import START, crash_rows


def loan_run(root: Path, params: BookParams, policies: list[str], sections: str,
             accounts: int = 3_000) -> tuple[Path, str]:
    """Import the synthetic 5m crash tape under ``root``, draw ``accounts`` loans (seed 5) with
    ``params``, run ``policies`` over 2021-05-19 with the run-config ``sections`` (TOML text
    after ``[tape]``) and return ``(runs directory, run id)``."""
    src = Synth.ft_json(root / "src" / "BTC_USDT-5m.json", crash_rows())
    store = TapeStore(root / "tapes")
    store.import_file(src, venue="binance")
    tape = store.resolve("BTC/USDT", START - timedelta(days=8), START + timedelta(days=1))
    a = tape.arrays()
    book = generate_book(accounts, a["timestamp"], a["close"], a["low"], a["high"], START,
                         seed=5, params=params, meta={"symbol": "BTC/USDT"})
    config = root / "run.toml"
    config.write_text(f"""
name = "loan-run"
start = 2021-05-19T00:00:00Z
end = 2021-05-20T00:00:00Z
symbol = "BTC/USDT"
book = "{write_book(book, root / "book.parquet")}"
policies = [{", ".join(f'"{p}"' for p in policies)}]
[tape]
venue = "binance"
interval = "5m"
{sections}""")
    run_id, _ = execute(config, runs=root / "runs", store=root / "tapes", show_progress=False)
    return root / "runs", run_id
