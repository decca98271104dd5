"""Benchmark of the portfolio kernel: a multi-asset book through an event's aligned tapes.

Run from the project root::

    .venv/bin/python -m bench.portfolio                       # 1M accounts, LUNA 2022, 1h
    .venv/bin/python -m bench.portfolio --accounts 200000 --orders protocol
    .venv/bin/python -m bench.portfolio --import-shared       # tapes from $LIQBT_SHARED_DATA
                                                              # into a temporary store
    .venv/bin/python -m bench.portfolio --impact sqrt --cascade --depth-usd 5e6
                                                              # per-asset impact and cascade

Reports, as separate figures: aligning the tapes, generating the book, the kernel's compile
time (its first call, on a 16-account book: numba's cache makes it a load when warm), the run
time of each order policy (the book's 1M accounts x T steps), account-steps per second, the
book's memory and the process's peak RSS. Checks while timing: money conservation of every
run (cash and units against the records) and the kernel against the reference twin on a
sample of 64 accounts (without impact only: with it every account's fills depend on the whole
book's flow). The machine is shared: the load average is recorded with the results.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from backtest.kernels.portfolio_reference import simulate_portfolio_reference
from backtest.portfolio import (
    ORDER_NAMES,
    PortfolioBook,
    PortfolioParams,
    generate_portfolio_book,
    simulate_portfolio,
)
from backtest.portfolio.market import PortfolioMarketParams
from backtest.portfolio.simulate import sensitivity_of
from backtest.tapes import TapeStore
from backtest.tapes.align import align_tapes
from backtest.tapes.schema import parse_symbol
from bench.environment import describe_machine, peak_rss_mb

#: Files of $LIQBT_SHARED_DATA imported by ``--import-shared`` (LUNA 2022 and May 2021).
SHARED_FILES = (
    "ohlcv_1h/MoonEyes__freqtrade__043a6c2541__d99b6d65__LUNA_USDT-1h.json",
    "ohlcv_5m/MoonEyes__freqtrade__c3e489f0b4__a78bd328__BTC_USDT-5m.json",
    "ohlcv_5m/BestiaTantrica__freqtrade-bestia__111e2ac8c9__f0939ebd__ETH_USDT-5m.feather",
    "ohlcv_5m/BestiaTantrica__freqtrade-bestia__111e2ac8c9__f904bee2__SOL_USDT-5m.feather",
    "ohlcv_1m/tooyipjee__freqtrade__44523f8d61__b50348e9__BTC_USDT-1m.json",
    "ohlcv_1m/tooyipjee__freqtrade__44523f8d61__691306a7__ETH_USDT-1m.json",
    "ohlcv_1m/C1PR14N055__bot__7631bf291f__5d68773d__SOL_USDT-1m.json",
)


def _sub_book(book: PortfolioBook, rows: np.ndarray) -> PortfolioBook:
    """Return the accounts ``rows`` of a book as a book of their own."""
    counts = np.diff(book.offsets)[rows]
    offsets = np.zeros(rows.size + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    take = np.concatenate([np.arange(book.offsets[i], book.offsets[i + 1]) for i in rows])
    return PortfolioBook(book.symbols, book.kind[rows], offsets, book.pos_asset[take],
                         book.pos_units[take], book.cash[rows], book.owner[rows])


def _conserved(book: PortfolioBook, res) -> bool:
    """Cash and units of every account agree with the records (relative 1e-9)."""
    rec = res.records
    acct = rec["account"].to_numpy()
    n = book.n_accounts
    proceeds = np.bincount(acct, weights=(rec["units_closed"] * rec["fill_price"]).to_numpy(),
                           minlength=n)
    fees = np.bincount(acct, weights=(rec["keeper_fee"] + rec["insurance_fee"]).to_numpy(),
                       minlength=n)
    bad = np.bincount(acct, weights=rec["bad_debt"].to_numpy(), minlength=n)
    gross = np.abs(book.cash) + np.bincount(acct, weights=rec["notional"].to_numpy(),
                                            minlength=n)
    cash_ok = np.all(np.abs(res.book.cash - (book.cash + proceeds - fees + bad))
                     <= 1e-9 * gross + 1e-12)
    units_before = np.bincount(book.pos_asset, weights=np.abs(book.pos_units))
    units_after = np.bincount(res.book.pos_asset, weights=np.abs(res.book.pos_units),
                              minlength=units_before.size)
    closed = np.bincount(rec["asset"].to_numpy(), weights=np.abs(rec["units_closed"].to_numpy()),
                         minlength=units_before.size)
    units_ok = np.allclose(units_before - closed, units_after, rtol=1e-9, atol=1e-9)
    return bool(cash_ok and units_ok)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the benchmark, print and write the JSON results."""
    ap = argparse.ArgumentParser(prog="python -m bench.portfolio", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--event", default="luna-2022")
    ap.add_argument("--interval", default=None, help="common step (default: the coarsest)")
    ap.add_argument("--accounts", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--orders", default=",".join(ORDER_NAMES))
    ap.add_argument("--import-shared", action="store_true",
                    help="import the event tapes from $LIQBT_SHARED_DATA into a temporary store")
    ap.add_argument("--impact", default="none", choices=["none", "linear", "sqrt", "amm"],
                    help="market impact of each asset's liquidation flow (docs/portfolios.md)")
    ap.add_argument("--cascade", action="store_true", help="impact feeds back into prices")
    ap.add_argument("--depth-usd", type=float, default=5e6,
                    help="1%% depth of every asset, USD (with --impact)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)

    figures: dict = {"arguments": vars(args) | {"out": str(args.out)},
                     "machine": describe_machine(), "load_average_before": os.getloadavg()}
    tmp = None
    if args.import_shared:
        shared = os.environ.get("LIQBT_SHARED_DATA")
        if not shared:
            ap.error("--import-shared needs LIQBT_SHARED_DATA")
        tmp = tempfile.TemporaryDirectory(prefix="liqbt-bench-store-")
        store = TapeStore(tmp.name)
        for name in SHARED_FILES:
            store.import_file(Path(shared) / name, venue="binance")
    else:
        store = TapeStore()
    t = time.perf_counter()
    aligned = align_tapes(store, args.event, interval=args.interval, missing="hold")
    figures["align_s"] = time.perf_counter() - t
    figures["steps"], figures["interval"] = aligned.n_steps, aligned.interval
    figures["held_steps"] = aligned.held_steps
    t = time.perf_counter()
    book = generate_portfolio_book(args.accounts, aligned, seed=args.seed)
    figures["generate_s"] = time.perf_counter() - t
    figures["positions"], figures["book_mb"] = book.n_positions, book.nbytes / 2**20
    market = PortfolioMarketParams(
        impact_model=args.impact, cascade=args.cascade,
        depth_usd={parse_symbol(s)[0]: args.depth_usd for s in aligned.symbols})
    t = time.perf_counter()
    tiny = _sub_book(book, np.arange(min(16, book.n_accounts)))
    simulate_portfolio(aligned, tiny, market=market)
    figures["compile_s"] = time.perf_counter() - t
    runs, ok = {}, True
    for order in args.orders.split(","):
        params = PortfolioParams(order=order.strip())
        t = time.perf_counter()
        res = simulate_portfolio(aligned, book, params, market=market)
        wall = time.perf_counter() - t
        conserved = _conserved(book, res)
        sample = np.sort(np.random.default_rng(args.seed).choice(
            book.n_accounts, min(64, book.n_accounts), replace=False))
        sub = _sub_book(book, sample)
        ref = simulate_portfolio_reference(
            aligned.low, aligned.high, aligned.close, sensitivity_of(aligned),
            params.asset_risk(aligned.symbols), params.policy_record()[0], sub.kind,
            sub.offsets, sub.pos_asset, sub.pos_units, sub.cash)
        take = np.concatenate([np.arange(book.offsets[i], book.offsets[i + 1]) for i in sample])
        parity = args.impact != "none" or bool(  # with impact: not checkable on a sample
            np.allclose(res.book.cash[sample], ref.cash, rtol=1e-9, atol=1e-6)
            and np.allclose(res.book.pos_units[take], ref.pos_units, rtol=1e-9, atol=1e-9))
        s = res.summary()
        runs[order] = {"run_s": res.seconds["run"], "wall_s": wall,
                       "account_steps_per_s": book.n_accounts * aligned.n_steps
                       / res.seconds["run"], "records": res.records.height,
                       "liquidations": s["liquidations"], "bad_debt_usd": s["bad_debt_usd"],
                       "checks": {"money_conserved": conserved, "reference_sample": parity}}
        ok &= conserved and parity
        print(f"{order:16s} run {res.seconds['run']:7.2f} s  "
              f"{runs[order]['account_steps_per_s']:.3g} account-steps/s  "
              f"records {res.records.height:,}  conserved {conserved}  twin {parity}")
        del res
    figures["runs"] = runs
    figures["peak_rss_mb"] = peak_rss_mb()
    figures["load_average_after"] = os.getloadavg()
    print(f"{args.event}: {book.n_accounts:,} accounts, {book.n_positions:,} positions "
          f"({figures['book_mb']:.0f} MB), {aligned.n_steps} steps of {aligned.interval}; "
          f"align {figures['align_s']:.1f} s, generate {figures['generate_s']:.1f} s, "
          f"compile {figures['compile_s']:.1f} s; peak RSS {figures['peak_rss_mb']:.0f} MB; "
          f"load {figures['load_average_before'][0]:.1f} -> "
          f"{figures['load_average_after'][0]:.1f}")
    out = args.out or Path("bench/out") / f"portfolio-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2, default=str))
    print(f"results: {out}")
    if tmp is not None:
        tmp.cleanup()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
