"""Run a portfolio config end to end: books, order policies, options, liquidation-at-risk.

:func:`run_portfolio_config` is what ``liqbt portfolio run CONFIG`` executes. It aligns the
event's tapes, generates (or reads, or takes from the cache) the seeded multi-asset book and
options book, simulates the multi-asset book once per collateral order policy (mapping the
liquidation-at-risk of one of them every N steps), simulates the options book (mapping it
too), compares short options with perps of the same notional on a sample, and writes every
table as Parquet into a new run directory ``<runs>/portfolio/<run id>/`` through the results
path every run kind uses (:func:`backtest.results.writer.run_directory`: filled under a
temporary name and renamed when complete), with the standard ``manifest.json`` (``run_kind =
"portfolio"``, config and input hashes, versions, timings, peak RSS). The catalog's tables
(:mod:`backtest.portfolio.tables`) make the run visible to ``liqbt query``, ``liqbt list runs``
and the metrics registry like a single-asset run, one ``policy`` per collateral order. The
options study is also written as a run of its own, kind ``options``, in
``<runs>/options/<run id>-options/`` (:mod:`backtest.options.run_record`; its id is the
manifest's ``options_run_id``), just before the portfolio run is renamed into place. Same
config and seed: same tables.

Why over 400 lines: the stages of one run (books, orders, options market and study, the
writes) share the config and the run directory; each is a function of its own.

Files of a run directory (all Parquet unless noted):

======================  =======================================================================
``steps``               catalog schema: order x step (:mod:`backtest.portfolio.tables`)
``accounts``            catalog schema: order x account, final state
``liquidations``        catalog schema: one row per position liquidated
``policies``            catalog schema: one row per collateral order
``prices``              catalog schema: asset x step, the aligned candles
``order_comparison``    order x asset totals (:func:`backtest.portfolio.compare.order_table`)
``portfolio_steps``     order, timestamp, every ``PortfolioMetric``, insurance fund
``portfolio_assets``    order, timestamp, symbol, liquidated notional / collateral seized /
                        perp closed / bad debt / user loss per step and asset, USD
``portfolio_market``    with a ``[portfolio.market]`` other than the default: order, timestamp,
                        symbol, price and execution factor, net flow, oracle price, impact
                        cost and depth per step and asset (``AssetMarketMetric``)
``portfolio_adl``       with ``waterfall = "adl"`` only: order, step, account, asset, units
                        closed, price and transfer of each position auto-deleveraged
``lar_portfolio``       liquidation-at-risk snapshots of the multi-asset book
``options_steps``       the options run's per-step metrics (book delta, gamma, vega, ...)
``options_accounts``    per options account at the start: equity, margin, delta/gamma/vega
``options_iv``          implied volatility per step and underlying, and its source
``lar_options``         liquidation-at-risk snapshots of the options book (price x vol shocks)
``breach_curves``       options vs perps: share liquidated over time per group
``breach_summary``      the same, per group
``manifest.json``       config, inputs, book sizes, timings (s), peak RSS (MB)
======================  =======================================================================
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from backtest import paths
from backtest.errors import ConfigError
from backtest.events import get_event
from backtest.kernels.portfolio_enums import AssetMetric
from backtest.options import (
    OptionsBook,
    OptionsMarket,
    generate_options_book,
    implied_vol_tape,
    read_dvol_json,
    read_options_book,
    simulate_options,
    write_options_book,
)
from backtest.options.margin import account_risk
from backtest.options.run_record import OptionsStudy, options_run_id, write_options_run
from backtest.options.study import breach_comparison
from backtest.portfolio.book import (
    generate_portfolio_book,
    read_portfolio_book,
    write_portfolio_book,
)
from backtest.portfolio.compare import order_table
from backtest.portfolio.lar_map import PortfolioLarRecorder
from backtest.portfolio.model import PortfolioBook, PortfolioParams
from backtest.portfolio.run_config import PortfolioRunConfig
from backtest.portfolio.run_record import portfolio_manifest, write_catalog_tables
from backtest.portfolio.simulate import PortfolioResult, sensitivity_of, simulate_portfolio
from backtest.portfolio.tables import portfolio_accounts, portfolio_liquidations
from backtest.provenance import runtime
from backtest.results.metrics import OPTIONS, PORTFOLIO
from backtest.results.runs import RUN_KIND_DIRS
from backtest.results.writer import run_directory
from backtest.risk.liquidation_map import LarRecorder
from backtest.tapes import TapeStore
from backtest.tapes.align import AlignedTapes, align_tapes
from backtest.tapes.schema import parse_interval

#: Sub-directory of the runs directory holding portfolio runs.
PORTFOLIO_RUNS = RUN_KIND_DIRS[PORTFOLIO]
#: Sub-directory of the runs directory holding the options runs of portfolio configs.
OPTIONS_RUNS = RUN_KIND_DIRS[OPTIONS]


def _digest(payload: object) -> str:
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def _cached(cache: Path | None, name: str, read: Callable, make: Callable, write: Callable):
    """Read ``cache/name`` if present, else make it (and write it when a cache is set)."""
    if cache is not None and (cache / name).exists():
        return read(cache / name), str(cache / name)
    obj = make()
    if cache is not None:
        write(obj, cache / name)
        return obj, str(cache / name)
    return obj, None


def portfolio_book(cfg: PortfolioRunConfig, aligned: AlignedTapes) -> tuple[PortfolioBook, dict]:
    """Read the configured book, or generate it (seeded), through the cache.

    Returns
    -------
    tuple
        The book and a description (source, path, accounts, positions).
    """
    sec = cfg.portfolio
    if sec.book is not None:
        book = read_portfolio_book(sec.book, symbols=aligned.symbols)
        return book, {"source": "file", "path": str(sec.book)}
    key = _digest([cfg.event, list(aligned.symbols), aligned.interval, sec.accounts, cfg.seed,
                   sec.book_params.model_dump(), sec.params.model_dump()])
    book, path = _cached(
        cfg.cache, f"portfolio-{cfg.event}-{sec.accounts}-s{cfg.seed}-{key}.parquet",
        lambda p: read_portfolio_book(p, symbols=aligned.symbols),
        lambda: generate_portfolio_book(sec.accounts, aligned, cfg.seed, sec.book_params,
                                        sec.params),
        write_portfolio_book)
    return book, {"source": "generated", "path": path, "seed": cfg.seed}


def run_orders(cfg: PortfolioRunConfig, aligned: AlignedTapes, book: PortfolioBook,
               log: Callable[[str], None],
               on_result: Callable[[str, PortfolioResult], None] | None = None
               ) -> tuple[dict[str, PortfolioResult], pl.DataFrame]:
    """Simulate the book under every configured order; map the LAR of ``lar.order``'s run.

    The returned results keep their aggregates; their ``records`` are emptied (memory) after
    ``on_result(order, result)``, called once per order while they are still there.
    """
    lar = cfg.liquidation_at_risk
    sens = sensitivity_of(aligned)
    results, recorder = {}, None
    for order in cfg.portfolio.orders:
        params = PortfolioParams.parse({**cfg.portfolio.params.model_dump(), "order": order},
                                       "portfolio.params")
        hook = None
        if order == lar.order:
            recorder = PortfolioLarRecorder(aligned.close, aligned.timestamp, sens,
                                            np.asarray(lar.shocks), params)
            hook = recorder
        log(f"portfolio: order {order}")
        res = simulate_portfolio(aligned, book, params, sensitivity=sens,
                                 every=lar.every if hook else None, on_block=hook,
                                 market=cfg.portfolio.market, keepers=cfg.portfolio.keepers)
        if on_result is not None:
            on_result(order, res)
        # the remaining tables need the per-step and per-asset aggregates only: free the
        # per-position records (millions of rows per order on a 1M-account book)
        res.records = res.records.clear()
        results[order] = res
    return results, recorder.frame()


def _steps_frames(results: dict[str, PortfolioResult]) -> tuple[pl.DataFrame, pl.DataFrame]:
    steps, assets = [], []
    for order, res in results.items():
        steps.append(res.steps_frame().with_columns(pl.lit(order).alias("order")))
        t, a, _ = res.asset_metrics.shape
        m = res.asset_metrics
        A = AssetMetric
        assets.append(pl.DataFrame({
            "order": [order] * (t * a),
            "timestamp": np.repeat(res.timestamp, a),
            "symbol": np.tile(np.asarray(res.symbols, dtype=object), t).astype(str),
            "liquidated_notional_usd": m[:, :, A.NOTIONAL].ravel(),
            "collateral_seized_usd": m[:, :, A.COLLATERAL_SEIZED].ravel(),
            "perp_closed_usd": m[:, :, A.PERP_CLOSED].ravel(),
            "bad_debt_usd": m[:, :, A.BAD_DEBT].ravel(),
            "user_loss_usd": (m[:, :, A.KEEPER_FEES] + m[:, :, A.INSURANCE_FEES]).ravel(),
        }).with_columns(pl.col("timestamp").cast(pl.Datetime("ms", "UTC"))))
    return (pl.concat(steps).select("order", pl.exclude("order")), pl.concat(assets))


def options_market(cfg: PortfolioRunConfig, store: TapeStore, events: str | None,
                   transform: Callable[[AlignedTapes, int], AlignedTapes] | None = None
                   ) -> tuple[OptionsMarket, pl.DataFrame, np.ndarray]:
    """Align the options' underlyings and build the implied-volatility tape (no lookahead).

    The underlyings are aligned from one day before the event (history for the realised
    volatility of the first steps); the market covers the event's window only.

    Parameters
    ----------
    cfg : PortfolioRunConfig
        Its ``[options]`` section and event.
    store : TapeStore
    events : str, optional
        Event catalog.
    transform : callable, optional
        ``transform(aligned, history_steps) -> aligned``, applied to the aligned tapes
        (shape (history + T, U)) before the implied volatility is built: the stress
        transforms of options sweep cells (:mod:`backtest.sweep.options_cell`), which change
        the window and keep the history's first ``history_steps`` steps.

    Returns
    -------
    tuple
        The market, the implied volatility per step (``timestamp``, ``underlying``, ``iv``,
        ``source``) and the window's first open price per underlying (USD, shape (U,)).
    """
    sec = cfg.options
    ev = get_event(cfg.event, events)
    step_s = parse_interval(sec.interval)
    history = (86_400 + step_s - 1) // step_s
    al = align_tapes(store, ev, sec.underlyings, sec.interval,
                     start=ev.start - timedelta(seconds=history * step_s), end=ev.end,
                     missing=cfg.tapes.missing, events_path=events)
    if transform is not None:
        al = transform(al, history)
    ivs, frames = [], []
    for u, name in enumerate(sec.underlyings):
        dvol = read_dvol_json(sec.dvol[name]) if name in sec.dvol else None
        tape = implied_vol_tape(al.timestamp, al.close[:, u], step_s, dvol,
                                source=sec.iv_source, premium=sec.iv_premium, start=history)
        ivs.append(tape.iv)
        frames.append(tape.frame().with_columns(pl.lit(name).alias("underlying")))
    h = slice(history, None)
    market = OptionsMarket(al.timestamp[h].copy(), step_s, tuple(sec.underlyings),
                           al.low[h].copy(), al.high[h].copy(), al.close[h].copy(),
                           np.column_stack(ivs))
    return market, pl.concat(frames), al.open[history].copy()


def options_book(cfg: PortfolioRunConfig, market: OptionsMarket, start: datetime,
                 open_price: np.ndarray) -> tuple[OptionsBook, dict]:
    """Read the configured options book, or generate it (seeded), through the cache."""
    sec = cfg.options
    if sec.book is not None:
        return read_options_book(sec.book), {"source": "file", "path": str(sec.book)}
    price = {u: float(open_price[k]) for k, u in enumerate(sec.underlyings)}
    iv = {u: float(market.iv[0, k]) for k, u in enumerate(sec.underlyings)}
    key = _digest([cfg.event, sec.accounts, cfg.seed, price, iv, sec.book_params.model_dump(),
                   sec.params.model_dump()])
    book, path = _cached(
        cfg.cache, f"options-{cfg.event}-{sec.accounts}-s{cfg.seed}-{key}.parquet",
        read_options_book,
        lambda: generate_options_book(sec.accounts, start, price, iv, cfg.seed, sec.book_params,
                                      sec.params, meta={"event": cfg.event}),
        write_options_book)
    return book, {"source": "generated", "path": path, "seed": cfg.seed}


def run_options_study(cfg: PortfolioRunConfig, store: TapeStore, events: str | None,
                      log: Callable[[str], None]) -> tuple[dict[str, pl.DataFrame], dict]:
    """Simulate the options book, map its LAR, take start Greeks, compare with perps.

    Returns
    -------
    tuple
        The study's tables (``options_steps``, ``options_accounts``, ...) and a dict with
        ``book`` (description and totals), ``timings`` and ``study``
        (:class:`~backtest.options.run_record.OptionsStudy`, for its own run directory).
    """
    sec, lar = cfg.options, cfg.liquidation_at_risk
    ev = get_event(cfg.event, events)
    timings = {}
    t0 = time.perf_counter()
    market, iv_frame, open_price = options_market(cfg, store, events)
    book, info = options_book(cfg, market, ev.start, open_price)
    timings["options_inputs_s"] = time.perf_counter() - t0
    arrays = book.arrays(market.underlyings)
    risk = account_risk(arrays, open_price, market.iv[0], int(market.timestamp_ms[0]),
                        sec.params)
    short = np.zeros(arrays.n_accounts, dtype=bool)
    owner = np.repeat(np.arange(arrays.n_accounts), np.diff(arrays.leg_start))
    np.logical_or.at(short, owner, arrays.leg_qty < 0)
    accounts = pl.DataFrame({
        "account_id": arrays.account_id,
        "underlying": np.asarray(market.underlyings, dtype=object)[arrays.account_und]
        .astype(str),
        "has_short_leg": short, "equity_usd": risk.equity,
        "maintenance_margin_usd": risk.maintenance_margin, "delta_usd": risk.delta_usd,
        "gamma_usd": risk.gamma_usd, "vega_usd": risk.vega_usd,
    })
    log(f"options: {arrays.n_accounts:,} accounts, {market.timestamp_ms.size} steps")
    recorder = LarRecorder(market, np.asarray(lar.shocks), np.asarray(lar.vol_shocks),
                           sec.params)
    t0 = time.perf_counter()
    res = simulate_options(market, arrays, sec.params, every=lar.options_every,
                           on_block=recorder)
    timings["options_run_s"] = time.perf_counter() - t0
    out = {"options_steps": res.steps_frame(), "options_accounts": accounts,
           "options_iv": iv_frame, "lar_options": recorder.frame()}
    t0 = time.perf_counter()
    if sec.breach_accounts > 0 and short.any():
        ids = arrays.account_id[short]
        rng = np.random.default_rng(cfg.seed)
        pick = np.sort(rng.choice(ids, min(sec.breach_accounts, ids.size), replace=False))
        sub = OptionsBook(book.frame.filter(pl.col("account_id").is_in(pick)), book.meta)
        log(f"options vs perps: {pick.size:,} short-option accounts")
        cmp = breach_comparison(market, sub, sec.params)
        out["breach_curves"] = cmp.curves
        out["breach_summary"] = cmp.summary()
    timings["breach_comparison_s"] = time.perf_counter() - t0
    info.update({"accounts": arrays.n_accounts, "legs": int(arrays.leg_qty.size),
                 "instruments": int(arrays.inst_und.size), "steps": int(market.timestamp_ms.size),
                 "interval": sec.interval, "summary": {
                     "accounts_liquidated": int((res.liq_step >= 0).sum()),
                     "bad_debt_usd": float(res.bad_debt.sum())}})
    study = OptionsStudy(market, arrays, res, sec.params, open_price, risk.equity, dict(info))
    return out, {"book": info, "timings": timings, "study": study}


def run_portfolio_config(cfg: PortfolioRunConfig, config_path: str | Path | None = None, *,
                         runs: str | Path | None = None, store: str | Path | None = None,
                         events: str | Path | None = None,
                         log: Callable[[str], None] | None = None,
                         overrides: list[str] | None = None) -> tuple[str, Path, dict]:
    """Run a portfolio config and write its run directory.

    Parameters
    ----------
    cfg : PortfolioRunConfig
        Validated config (:func:`backtest.portfolio.run_config.load_portfolio_config`).
    config_path : str or Path, optional
        Recorded in the manifest (with its sha256).
    runs, store, events : str or Path, optional
        Runs directory, tape store, event catalog (defaults: :mod:`backtest.paths`).
    log : callable, optional
        Receives one line per stage.
    overrides : list of str, optional
        The ``--set KEY=VALUE`` replacements ``cfg`` was loaded with (recorded).

    Returns
    -------
    tuple
        ``(run_id, run directory, manifest)``.

    Raises
    ------
    TapeError
        An asset has no tape for the window, or a missing step with ``missing = "error"``.
    BookError
        A configured book does not match the tapes or is invalid.
    ConfigError
        Unknown event, missing asset parameters, or the run directory exists.
    """
    log = log or (lambda _msg: None)
    began = time.perf_counter()
    created = datetime.now(UTC)
    run_id = f"{created:%Y%m%dT%H%M%S}-{cfg.name}-{_digest(cfg.model_dump(mode='json'))}"
    run_dir = paths.runs_dir(runs) / PORTFOLIO_RUNS / run_id
    if run_dir.exists():
        raise ConfigError(f"run directory {run_dir} already exists")
    events = str(events) if events is not None else None
    tape_store = TapeStore(store)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    aligned = align_tapes(tape_store, cfg.event, cfg.tapes.symbols, cfg.tapes.interval,
                          missing=cfg.tapes.missing, events_path=events)
    timings["align_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    book, book_info = portfolio_book(cfg, aligned)
    timings["portfolio_book_s"] = time.perf_counter() - t0
    log(f"portfolio: {book.n_accounts:,} accounts, {book.n_positions:,} positions, "
        f"{aligned.n_steps} steps of {aligned.interval}")
    first_open, last_close = aligned.open[0], aligned.close[-1]
    timings["catalog_rows_s"] = 0.0
    with run_directory(run_dir) as out:
        def catalog_rows(order: str, res: PortfolioResult) -> None:
            w0 = time.perf_counter()
            out.append("liquidations", portfolio_liquidations(run_id, order, res))
            out.append("accounts", portfolio_accounts(run_id, order, res, book, first_open,
                                                      last_close))
            timings["catalog_rows_s"] += time.perf_counter() - w0

        t0 = time.perf_counter()
        results, lar_portfolio = run_orders(cfg, aligned, book, log, catalog_rows)
        # the simulations and LAR maps only: the catalog rows' time is catalog_rows_s
        timings["portfolio_runs_s"] = time.perf_counter() - t0 - timings["catalog_rows_s"]
        timings["portfolio_run_s"] = {o: r.seconds["run"] for o, r in results.items()}
        timings["portfolio_lar_s"] = results[cfg.liquidation_at_risk.order].seconds["on_block"]
        steps, assets = _steps_frames(results)
        tables = {"order_comparison": order_table(results), "portfolio_steps": steps,
                  "portfolio_assets": assets, "lar_portfolio": lar_portfolio}
        if not cfg.portfolio.market.is_historical:  # impact, cascade, oracle per asset
            tables["portfolio_market"] = pl.concat(
                [r.market_frame().with_columns(pl.lit(o).alias("order")) for o, r in
                 results.items()]).select("order", pl.exclude("order"))
        if cfg.portfolio.market.waterfall == "adl":  # the deleveraged counterparties
            tables["portfolio_adl"] = pl.concat(
                [r.adl.with_columns(pl.lit(o).alias("order")) for o, r in
                 results.items()]).select("order", pl.exclude("order"))
        options_info = None
        if cfg.options is not None:
            t0 = time.perf_counter()
            opt_tables, options_info = run_options_study(cfg, tape_store, events, log)
            tables.update(opt_tables)
            study = options_info.pop("study")
            timings.update(options_info.pop("timings"))
            timings["options_total_s"] = time.perf_counter() - t0
        manifest = portfolio_manifest(cfg, run_id, created, config_path, overrides, aligned,
                                      book, book_info, results, options_info, timings)
        if cfg.options is not None:  # its own run (kind 'options'), written before this one
            manifest["options_run_id"] = options_run_id(run_id)
            write_options_run(paths.runs_dir(runs) / OPTIONS_RUNS / manifest["options_run_id"],
                              manifest, study, {k: timings[k] for k in
                                                ("options_inputs_s", "options_run_s")})
        w0 = time.perf_counter()
        write_catalog_tables(out, run_id, aligned, results, manifest["config_sha256"])
        for name, frame in tables.items():
            out.table(name, frame)
        timings["write_s"] = time.perf_counter() - w0
        timings["total_s"] = time.perf_counter() - began
        manifest["runtime"] = runtime()
        out.manifest(manifest)
    return run_id, run_dir, manifest


def load_run_tables(run_dir: str | Path) -> tuple[dict, dict[str, pl.DataFrame]]:
    """Read a portfolio run directory: ``(manifest, {table name: DataFrame})``.

    Raises
    ------
    ConfigError
        If the directory has no ``manifest.json`` (not a portfolio run).
    """
    run_dir = Path(run_dir)
    if not (run_dir / "manifest.json").is_file():
        raise ConfigError("not a portfolio run directory (no manifest.json)", run_dir)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    tables = {p.stem: pl.read_parquet(p) for p in sorted(run_dir.glob("*.parquet"))}
    return manifest, tables


__all__ = ["PORTFOLIO_RUNS", "load_run_tables", "run_portfolio_config"]
