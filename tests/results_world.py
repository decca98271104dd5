"""A small synthetic crash for catalog, query and bad-input tests: tape store, book, config."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from backtest.books import generate_book, write_book
from backtest.tapes import TapeStore
from tests.conftest import Synth
from tests.test_engine_run import START, crash_rows

CONFIG = """
name = "{name}"
description = "synthetic"
start = 2021-05-19T00:00:00Z
end = 2021-05-20T00:00:00Z
symbol = "BTC/USDT"
book = "{book}"
policies = {policies}
[tape]
venue = "binance"
interval = "5m"
[insurance_fund]
initial_balance_usd = 1000.0
"""


def make_world(root: Path, accounts: int = 2000, params=None) -> dict[str, Path]:
    """Write a 5-minute BTC tape store, a book of ``accounts`` accounts (drawn with the
    generator's ``params``, default its own) and a run config."""
    src = Synth.ft_json(root / "src" / "BTC_USDT-5m.json", crash_rows())
    store = TapeStore(root / "tapes")
    store.import_file(src, venue="binance")
    tape = store.resolve("BTC/USDT", START - timedelta(days=8), START + timedelta(days=1))
    a = tape.arrays()
    book = generate_book(accounts, a["timestamp"], a["close"], a["low"], a["high"], START,
                         seed=5, params=params, meta={"symbol": "BTC/USDT"})
    book_path = write_book(book, root / "book.parquet")
    config = write_config(root / "run.toml", book_path)
    return {"root": root, "store": root / "tapes", "book": book_path, "config": config}


def write_config(path: Path, book: Path, name: str = "small-crash",
                 policies: str = '["hard", "partial"]') -> Path:
    """Write a run config over the synthetic day with ``book`` and ``policies``."""
    path.write_text(CONFIG.format(name=name, book=book, policies=policies))
    return path


def liqbt(*args: str, **kw) -> subprocess.Popen:
    """Start ``liqbt ARGS`` as a separate process (stdout and stderr piped)."""
    code = "import sys; from backtest.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ), **kw)
