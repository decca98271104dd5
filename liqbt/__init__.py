"""liqbt from Python: load tapes and books, run a config, read results, draw report figures.

A thin face over the :mod:`backtest` package (the engine behind the ``liqbt`` command), for
notebooks and scripts. Everything here is also reachable in :mod:`backtest`; these names are
the documented, stable ones::

    import liqbt

    liqbt.TapeStore().import_file("BTC_USDT-5m.json", venue="binance")
    book = liqbt.book_for_event(20_000, "may-2021", seed=7, interval="5m")
    run = liqbt.run("configs/may-2021-btc.toml", overrides=["tape.interval=5m"])
    run.summary()          # polars DataFrame, one row per policy
    run.sql("SELECT policy, sum(liquidated_notional_usd) FROM steps GROUP BY 1").pl()
    run.figures()["price"]  # plotly go.Figure

Locations default as for the command (``$LIQBT_TAPES``, ``$LIQBT_RUNS``, ...; see
:mod:`backtest.paths`). Heavy modules (numba, polars, DuckDB, plotly) load on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from backtest import __version__

#: Public name -> module it lives in (imported on first access, PEP 562).
_EXPORTS = {
    # price tapes and the event catalog
    "TapeStore": "backtest.tapes",
    "Tape": "backtest.tapes",
    "load_events": "backtest.events",
    "get_event": "backtest.events",
    # books
    "Book": "backtest.books",
    "read_book": "backtest.books",
    "write_book": "backtest.books",
    "generate_book": "backtest.books",
    "book_for_event": "backtest.books.event",
    "summarize_book": "backtest.books.summary",
    # policies and run configs
    "load_policy": "backtest.policies",
    "available_policies": "backtest.policies",
    "load_run_config": "backtest.engine.config",
    # running and results
    "run": "liqbt._run",
    "Run": "liqbt._run",
    "open_run": "liqbt._run",
    "list_runs": "liqbt._run",
    "query": "liqbt._run",
    "warm_up": "backtest.engine.warmup",
    # errors
    "LiqbtError": "backtest.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'liqbt' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
