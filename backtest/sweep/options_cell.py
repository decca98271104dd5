"""Options sweeps (``kind = "options"``): plan and simulate cells of the options book.

An options cell is the options study of ``liqbt portfolio run`` (``docs/options.md``) for one
event, seed (or ensemble member) and parameter set of the liquidation rule
(:class:`backtest.options.OptionsParams`): the underlyings are aligned with one day of
history, the implied-volatility tape is the trailing realised volatility plus
``iv_premium`` (:func:`backtest.portfolio.pipeline.options_market`), the book is drawn once
per (event, seed) with the base rule, as the portfolio pipeline draws it
(:func:`backtest.portfolio.pipeline.options_book`, cached in ``<sweep dir>/books``), and the
cell simulates it with :func:`backtest.options.simulate_options`, builds the catalog tables of
an options run (:mod:`backtest.options.run_record`) and evaluates the metrics registry on
them (run kind ``options``; the no-liquidation equity settles the book's expiries along the
path, :mod:`backtest.options.hold`).

Stress transforms (``[[stress]]``): the spot transforms of single-asset cells (``scale``,
``compress``, ``bootstrap``, :mod:`backtest.sweep.stress`) move every underlying's window
with the same transform and seed (:func:`backtest.sweep.portfolio_cell.stress_aligned`; the
day of history before the window is kept), and the implied-volatility tape is then built
from the stressed closes, so a path shocked by ``k`` gets the realised volatility of that
path plus the premium; ``kind = "iv"`` multiplies the resulting implied volatility by its
factor (:func:`backtest.sweep.stress.shock_iv`). The book is drawn once per (event, seed)
from history's first step, which every transform leaves unchanged but an ``iv`` shock (its
accounts meet the shocked volatility at the first step).

Grid fields are those of :mod:`backtest.sweep.options_grid` (:class:`OptionsParams` fields
and the margin's scenario grid as ``grid.<field>``). A governance proposal on an options venue
(``kind = "options"``, :mod:`backtest.report.proposal`) passes its parameter sets instead.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl
from pydantic import TypeAdapter

from backtest import paths
from backtest.events import get_event
from backtest.options.book import read_options_book
from backtest.options.margin import account_risk
from backtest.options.params import OptionsParams
from backtest.options.run_record import POLICY, OptionsStudy, options_accounts, options_steps
from backtest.options.simulate import OptionsMarket, simulate_options
from backtest.portfolio.pipeline import options_book, options_market
from backtest.portfolio.run_config import (
    OptionsSection,
    PortfolioRunConfig,
    PortfolioSection,
    TapesSection,
)
from backtest.provenance import engine_version, file_sha256
from backtest.results.metrics import OPTIONS
from backtest.sweep.cell_metrics import cell_identity, cell_metrics
from backtest.sweep.config import EventSpec, SweepConfig
from backtest.sweep.grid import ParamSet
from backtest.sweep.options_grid import apply_options_params, expand_options
from backtest.sweep.plan import CellSpec, SweepPlan, _digest, _opt, raise_duplicate
from backtest.sweep.portfolio_cell import stress_aligned
from backtest.sweep.portfolio_plan import _units
from backtest.sweep.stress import StressSpec, shock_iv
from backtest.tapes import TapeStore
from backtest.tapes.align import AlignedTapes

STEP_COLUMNS = ("step", "timestamp", "high", "low", "close", "price_symbol", "liquidations",
                "liquidated_notional_usd", "bad_debt_cum_usd", "insurance_fund_usd",
                "socialised_loss_cum_usd", "accounts_liquidated_cum")
"""Per-step columns kept for each options cell (prices: the first underlying's)."""


def options_variants(cfg: SweepConfig, config_path: Path,
                     param_sets: dict[str, list[ParamSet]] | None = None
                     ) -> list[tuple[ParamSet, OptionsParams]]:
    """Return every (parameter set, options rule) of the sweep.

    The sets are ``param_sets["options"]`` when given (a governance proposal's current,
    proposed and frontier sets), else the sweep's ``[grid]``.

    Raises
    ------
    ConfigError
        An unknown or repeated field, no values, or a value the rule refuses (naming the
        parameter set and the field).
    """
    if param_sets is not None and POLICY in param_sets:
        sets = param_sets[POLICY]
    else:
        sets = expand_options([("grid", cfg.grid),
                               ("policy_grids.options", cfg.policy_grids.get("options", {}))],
                              config_path)
    base = cfg.options_section.params
    return [(ps, apply_options_params(base, ps.params, ps.label, config_path)) for ps in sets]


def run_config(cfg: dict, seed: int, cache: str | None) -> PortfolioRunConfig:
    """Return the portfolio run config whose options study a cell is (``cfg``: run_config)."""
    return PortfolioRunConfig(
        name="options-cell", event=cfg["event"], seed=seed,
        cache=None if cache is None else Path(cache), tapes=TapesSection(missing=cfg["missing"]),
        portfolio=PortfolioSection(accounts=1),
        options=OptionsSection(accounts=cfg["accounts"], underlyings=cfg["underlyings"],
                               interval=cfg["interval"], iv_premium=cfg["iv_premium"],
                               breach_accounts=0, params=OptionsParams.model_validate(
                                   cfg["base_params"]),
                               book_params=cfg["book_params"]))


def _selection(cfg: SweepConfig, ev: EventSpec) -> dict:
    sec = cfg.options_section
    return {"event": ev.event, "underlyings": list(sec.underlyings),
            "interval": ev.interval or sec.interval, "missing": ev.missing or "error",
            "iv_premium": sec.iv_premium, "accounts": ev.accounts,
            "base_params": sec.params.model_dump(mode="json"),
            "book_params": sec.book_params.model_dump(mode="json")}


def plan_options_sweep(cfg: SweepConfig, config_path: str | Path, out_dir: str | Path,
                       store: str | Path | None = None, strategies: str | Path | None = None,
                       events: str | Path | None = None, param_sets=None) -> SweepPlan:
    """Check an options sweep's inputs, draw its books, list the cells.

    Parameters and errors as :func:`backtest.sweep.portfolio_plan.plan_portfolio_sweep`
    (``param_sets``: ``{"options": [ParamSet, ...]}`` of a governance proposal).
    """
    config_path = Path(config_path)
    books = Path(out_dir) / "books"
    books.mkdir(parents=True, exist_ok=True)
    variants = options_variants(cfg, config_path, param_sets)
    version_info = engine_version()
    tape_store = TapeStore(store)
    ev_path = None if events is None else str(events)
    cells, inputs, rows = [], [], []
    ensemble_info = None if cfg.ensemble is None else {
        "members": cfg.ensemble.members, "seed": cfg.ensemble.seed,
        "events": {ev.key: {} for ev in cfg.events}}
    for ev in cfg.events:
        sel = _selection(cfg, ev)
        catalog_event = get_event(ev.event, ev_path)
        market, _, open_price = options_market(run_config(sel, 0, None), tape_store, ev_path)
        for seed, member, member_inputs in _units(cfg):
            rc = run_config(sel, seed, str(books))
            _, info = options_book(rc, market, catalog_event.start, open_price)
            book_sha = file_sha256(info["path"])
            inputs.append({"kind": f"options book {ev.key} seed {seed}", "path": info["path"],
                           "sha256": book_sha})
            member_row = ({"member": member, "member_inputs": member_inputs}
                          if member >= 0 else {})
            symbol = ", ".join(f"{u}/USDT" for u in sel["underlyings"])
            rows.append({**member_row, "event": ev.key, "event_key": ev.event, "symbol": symbol,
                         "price_symbol": f"{sel['underlyings'][0]}/USDT",
                         "interval": sel["interval"], "seed": seed,
                         "start": catalog_event.start.isoformat(),
                         "end": catalog_event.end.isoformat(),
                         "steps": int(market.timestamp_ms.size), "accounts": ev.accounts,
                         "book": info["path"], "tape": str(tape_store.root)})
            for stress, (ps, params) in itertools.product(cfg.stress, variants):
                pol = {"name": POLICY, "family": "options", **params.model_dump(mode="json")}
                key = {"kind": OPTIONS, "selection": sel, "book_sha256": book_sha,
                       "policy": pol, "seed": seed, "engine": version_info,
                       "member": member}
                if stress.kind != "none":  # history's cells keep their ids
                    key["stress"] = stress.model_dump(mode="json")
                cells.append(CellSpec(
                    cell_id=_digest(key), event=ev.key, event_key=ev.event, symbol=symbol,
                    interval=sel["interval"], run_config={**sel, "book": info["path"]},
                    config_path=str(config_path), policy=pol, policy_path="",
                    param_set=ps.label, params=dict(ps.params), seed=seed,
                    stress=stress.model_dump(mode="json"), stress_label=stress.label,
                    store=_opt(paths.tape_store(store)),
                    strategies=_opt(paths.strategies_dir(strategies)),
                    events=_opt(paths.events_file(events)), threads=cfg.threads_per_cell,
                    member=member, member_inputs=dict(member_inputs), kind=OPTIONS))
    ids = [c.cell_id for c in cells]
    if len(set(ids)) != len(ids):
        raise_duplicate(next(c for c in cells if ids.count(c.cell_id) > 1), config_path)
    return SweepPlan(cfg.name, cells, inputs, rows, ensemble_info)


def _rows(al: AlignedTapes, rows: slice) -> AlignedTapes:
    """Return the steps ``rows`` of aligned tapes."""
    return dataclasses.replace(al, timestamp=al.timestamp[rows],
                               **{k: getattr(al, k)[rows] for k in _ARRAYS})


_ARRAYS = ("open", "high", "low", "close", "volume", "realized_vol")


def stress_window(spec, seed: int):
    """Return the ``transform`` of :func:`backtest.portfolio.pipeline.options_market` for a spec.

    The window (after the ``history`` steps) of every underlying goes through
    :func:`backtest.sweep.portfolio_cell.stress_aligned` with ``spec`` and ``seed``; the
    history is kept. None for ``none`` and ``iv`` (the path stays history's).
    """
    if spec.kind in ("none", "iv"):
        return None

    def transform(al: AlignedTapes, history: int) -> AlignedTapes:
        head = _rows(al, slice(0, history))
        win = stress_aligned(_rows(al, slice(history, None)), spec, seed)
        return dataclasses.replace(
            win, start=al.start, timestamp=np.concatenate([head.timestamp, win.timestamp]),
            **{k: np.ascontiguousarray(np.vstack([getattr(head, k), getattr(win, k)]))
               for k in _ARRAYS})

    return transform


def stressed_options_market(cfg: dict, seed: int, stress: dict, store: str | None,
                            events: str | None) -> tuple[OptionsMarket, np.ndarray]:
    """Build an options cell's market under its stress transform (no lookahead).

    Parameters
    ----------
    cfg : dict
        The cell's ``run_config`` without ``book`` (:func:`_selection`).
    seed : int
        The cell's seed (the block bootstrap's).
    stress : dict
        The cell's stress spec (JSON).
    store, events : str, optional

    Returns
    -------
    market : OptionsMarket
        Shape (T', U): the stressed window and its implied volatility.
    open_price : ndarray, shape (U,), float64
        The window's first open per underlying (every transform keeps it), USD.
    """
    spec = TypeAdapter(StressSpec).validate_python(stress)
    market, _, open_price = options_market(run_config(cfg, seed, None), TapeStore(store),
                                           events, stress_window(spec, seed))
    if spec.kind == "iv":
        market = dataclasses.replace(market, iv=shock_iv(market.iv, spec))
    return market, open_price


@lru_cache(maxsize=4)
def _market(cfg_json: str, seed: int, stress_json: str, store: str | None, events: str | None):
    return stressed_options_market(json.loads(cfg_json), seed, json.loads(stress_json), store,
                                   events)


def run_options_cell(spec: CellSpec, timings: dict | None = None) -> OptionsStudy:
    """Simulate an options cell (its stressed market, book and rule); return the study.

    ``timings``, when given, receives ``load_seconds`` and ``simulate_seconds``.
    """
    t0 = time.perf_counter()
    sel = {k: v for k, v in spec.run_config.items() if k != "book"}
    market, open_price = _market(json.dumps(sel, sort_keys=True), spec.seed,
                                 json.dumps(spec.stress, sort_keys=True), spec.store,
                                 spec.events)
    book = read_options_book(spec.run_config["book"])
    params = OptionsParams.model_validate(
        {k: v for k, v in spec.policy.items() if k not in ("name", "family")})
    arrays = book.arrays(market.underlyings)
    risk = account_risk(arrays, open_price, market.iv[0], int(market.timestamp_ms[0]), params)
    t1 = time.perf_counter()
    res = simulate_options(market, arrays, params)
    if timings is not None:
        timings.update(load_seconds=t1 - t0, simulate_seconds=time.perf_counter() - t1)
    return OptionsStudy(market, arrays, res, params, open_price, risk.equity, {})


def options_cell_accounts(spec: CellSpec) -> pl.DataFrame:
    """Re-simulate an options cell; return its catalog ``accounts`` table (governance view)."""
    return options_accounts(spec.cell_id, run_options_cell(spec))


def simulate_options_cell(spec: CellSpec) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    """Simulate an options cell; return its summary row, per-step series and timings.

    The summary has ``run_kind = 'options'`` and every registry metric (null where it does
    not apply); the series :data:`STEP_COLUMNS` plus ``cell_id``.
    """
    timings: dict = {}
    study = run_options_cell(spec, timings)
    t2 = time.perf_counter()
    market, res = study.market, study.result
    steps = options_steps(spec.cell_id, res)
    accounts = options_accounts(spec.cell_id, study)
    metrics = cell_metrics(steps, accounts, OPTIONS)
    series = steps.with_columns(
        pl.Series("high", market.high[:, 0]), pl.Series("low", market.low[:, 0]),
        pl.Series("close", market.close[:, 0]),
        pl.lit(f"{market.underlyings[0]}/USDT").alias("price_symbol"),
    ).select("run_id", *STEP_COLUMNS).rename({"run_id": "cell_id"})
    summary = pl.DataFrame([{
        **cell_identity(spec, OPTIONS, POLICY, "options"),
        "accounts": int(study.book.n_accounts), "steps": int(market.timestamp_ms.size),
        **metrics, "simulate_seconds": timings["simulate_seconds"],
    }])
    return summary, series, {**timings, "tables_seconds": time.perf_counter() - t2}


__all__ = ["STEP_COLUMNS", "options_cell_accounts", "options_variants", "plan_options_sweep",
           "run_options_cell", "simulate_options_cell",
           "stress_window", "stressed_options_market"]
