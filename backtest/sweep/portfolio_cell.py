"""Simulate one portfolio sweep cell (runs in a worker): aligned tapes, book, policy, stress.

:func:`simulate_portfolio_cell` aligns the cell's tapes (cached per worker process), reads
the (event, seed)'s book, stresses every asset's window with the same transform and seed
(:func:`stress_aligned`), runs :func:`backtest.portfolio.simulate_portfolio` under the cell's
policy, builds the catalog's ``steps`` and ``accounts`` tables of a portfolio run
(:mod:`backtest.portfolio.tables`) and evaluates the metrics registry on them
(:mod:`backtest.sweep.cell_metrics`, run kind ``portfolio``: measures that do not apply are
null). A cell therefore holds the figures ``liqbt portfolio run`` reports for the same book,
order and parameters, market (``[portfolio.market]``) and keepers (``[portfolio.keepers]``)
(``tests/test_sweep_portfolio.py`` checks it bit for bit).

The per-step series (``steps.parquet``) has one row per step: the open, high, low and close
of the event's first asset (``price_symbol``) and the book's liquidations, liquidated
notional, cumulative bad debt, insurance fund, cumulative socialised loss and accounts
liquidated; columns a portfolio cell has no notion of (ADL, price impact, simulated close)
are absent, null in the view ``sweep_steps``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import UTC, datetime
from functools import lru_cache

import numpy as np
import polars as pl

from backtest.engine.config import KeeperConfig
from backtest.portfolio.book import read_portfolio_book
from backtest.portfolio.market import PortfolioMarketParams
from backtest.portfolio.model import PortfolioBook, PortfolioParams
from backtest.portfolio.simulate import PortfolioResult, simulate_portfolio
from backtest.portfolio.tables import portfolio_accounts, portfolio_steps
from backtest.sweep.cell_metrics import cell_identity, cell_metrics
from backtest.sweep.plan import CellSpec
from backtest.sweep.portfolio_plan import PORTFOLIO, align_event
from backtest.sweep.stress import apply_stress
from backtest.tapes.align import AlignedTapes

STEP_COLUMNS = (
    "step", "timestamp", "open", "high", "low", "close", "price_symbol", "liquidations",
    "liquidated_notional_usd", "bad_debt_cum_usd", "insurance_fund_usd",
    "socialised_loss_cum_usd", "accounts_liquidated_cum", "insurance_draw_usd",
    "insurance_fees_usd",
)
"""Per-step columns kept for each portfolio cell (``steps.parquet``)."""

_ASSET_ARRAYS = ("open", "high", "low", "close", "volume", "realized_vol")
#: Keys of a cell's ``run_config`` that are not the aligned-tape selection.
_NOT_TAPES = ("book", "market", "keepers")


@lru_cache(maxsize=4)
def _aligned(selection_json: str, store: str | None, events: str | None) -> AlignedTapes:
    return align_event(json.loads(selection_json), store, events)


@lru_cache(maxsize=4)
def _book(path: str, symbols: tuple[str, ...]) -> PortfolioBook:
    return read_portfolio_book(path, symbols=symbols)


def stress_aligned(aligned: AlignedTapes, spec, seed: int) -> AlignedTapes:
    """Return the aligned tapes with every asset's window stressed by one transform.

    Each asset's columns go through :func:`backtest.sweep.stress.apply_stress` with the same
    spec and seed, so a block bootstrap draws the same blocks for every asset (the assets
    keep their joint moves), and time compression merges the same steps.

    Parameters
    ----------
    aligned : AlignedTapes
        Arrays of shape (T, A).
    spec : NoStress, ScaleShock, CompressTime or BlockBootstrap
    seed : int
        The cell's seed.

    Returns
    -------
    AlignedTapes
        ``aligned`` itself for ``kind = "none"``; else new arrays (shape (T', A)), the
        window's end moved to the last step's close time.
    """
    if spec.kind == "none":
        return aligned
    interval_ms = aligned.interval_seconds * 1000
    cols: dict[str, list[np.ndarray]] = {k: [] for k in _ASSET_ARRAYS}
    timestamp = aligned.timestamp
    for a in range(aligned.n_assets):
        arrays = {"timestamp": aligned.timestamp,
                  **{k: np.ascontiguousarray(getattr(aligned, k)[:, a]) for k in _ASSET_ARRAYS}}
        out = apply_stress(arrays, spec, seed, interval_ms)
        timestamp = out["timestamp"]
        for k in _ASSET_ARRAYS:
            cols[k].append(out[k])
    end = datetime.fromtimestamp((int(timestamp[-1]) + interval_ms) / 1000, tz=UTC)
    return dataclasses.replace(aligned, timestamp=np.ascontiguousarray(timestamp), end=end,
                               **{k: np.ascontiguousarray(np.column_stack(v))
                                  for k, v in cols.items()})


def run_portfolio_cell(spec: CellSpec) -> tuple[AlignedTapes, PortfolioBook, PortfolioResult]:
    """Simulate a portfolio cell; return the (stressed) tapes, the book and the result.

    Parameters
    ----------
    spec : CellSpec
        ``kind == "portfolio"``.

    Raises
    ------
    LiqbtError
        Missing tapes or book (as :func:`backtest.tapes.align.align_tapes`,
        :func:`backtest.portfolio.read_portfolio_book`).
    """
    from pydantic import TypeAdapter

    from backtest.sweep.stress import StressSpec

    sel = {k: v for k, v in spec.run_config.items() if k not in _NOT_TAPES}
    aligned = _aligned(json.dumps(sel, sort_keys=True), spec.store, spec.events)
    book = _book(spec.run_config["book"], tuple(aligned.symbols))
    stressed = stress_aligned(aligned, TypeAdapter(StressSpec).validate_python(spec.stress),
                              spec.seed)
    params = PortfolioParams.model_validate(
        {k: v for k, v in spec.policy.items() if k not in ("name", "family")})
    market = spec.run_config.get("market")
    keepers = spec.run_config.get("keepers")
    return stressed, book, simulate_portfolio(
        stressed, book, params,
        market=None if market is None else PortfolioMarketParams.model_validate(market),
        keepers=None if keepers is None else KeeperConfig.model_validate(keepers))


def simulate_portfolio_cell(spec: CellSpec) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    """Simulate a portfolio cell; return its summary row, per-step series and timings.

    Parameters
    ----------
    spec : CellSpec

    Returns
    -------
    summary : polars.DataFrame
        One row: the cell's coordinates (``run_kind = 'portfolio'``, ``symbol`` the assets
        comma-separated) and every registry metric (null where it does not apply).
    steps : polars.DataFrame
        :data:`STEP_COLUMNS` plus ``cell_id``, one row per step.
    timings : dict
        ``load_seconds`` (tapes, book and stress), ``simulate_seconds``, ``tables_seconds``.
    """
    t0 = time.perf_counter()
    aligned, book, res = run_portfolio_cell(spec)
    t2 = time.perf_counter()
    simulate_s = res.seconds.get("run", 0.0)
    t1 = t2 - simulate_s
    name = spec.policy["name"]
    first_open, last_close = aligned.open[0], aligned.close[-1]
    steps = portfolio_steps(spec.cell_id, name, res)
    accounts = portfolio_accounts(spec.cell_id, name, res, book, first_open, last_close)
    metrics = cell_metrics(steps, accounts, PORTFOLIO)
    series = steps.with_columns(
        pl.Series("open", aligned.open[:, 0]), pl.Series("high", aligned.high[:, 0]),
        pl.Series("low", aligned.low[:, 0]), pl.Series("close", aligned.close[:, 0]),
        pl.lit(aligned.symbols[0]).alias("price_symbol"),
    ).select("run_id", *STEP_COLUMNS).rename({"run_id": "cell_id"})
    summary = pl.DataFrame([{
        **cell_identity(spec, PORTFOLIO, name, spec.policy["family"]),
        "accounts": book.n_accounts, "steps": aligned.n_steps,
        "window_start": aligned.start, "window_end": aligned.end,
        **metrics,
        "simulate_seconds": simulate_s,
    }])
    t3 = time.perf_counter()
    return summary, series, {"load_seconds": t1 - t0, "simulate_seconds": simulate_s,
                             "tables_seconds": t3 - t2}


def portfolio_cell_accounts(spec: CellSpec) -> pl.DataFrame:
    """Re-simulate a finished portfolio cell and return its catalog ``accounts`` table.

    Deterministic: the totals equal the cell's summary (governance per-account view).
    """
    aligned, book, res = run_portfolio_cell(spec)
    return portfolio_accounts(spec.cell_id, spec.policy["name"], res, book, aligned.open[0],
                              aligned.close[-1])


__all__ = ["STEP_COLUMNS", "portfolio_cell_accounts", "run_portfolio_cell",
           "simulate_portfolio_cell", "stress_aligned"]
