"""Benchmark of the options engine and of liquidation-at-risk snapshots.

Run from the project root::

    .venv/bin/python -m bench.risk                                  # defaults below
    .venv/bin/python -m bench.risk --workloads LAR1M --accounts 1000000 --shocks 41
    .venv/bin/python -m bench.risk --workloads OPT --options-accounts 100000 --steps 2016

Workloads (synthetic, seeded inputs; no tape store needed):

LAR1M    liquidation-at-risk of a perp + loan book (``backtest.books.generate_book`` on a
         synthetic hourly random walk, 70% perps / 30% loans) over ``--shocks`` price shocks:
         compile (first call) apart from run time per snapshot, best and median of
         ``--repeat``; checked against the O(N x G) twin on a sample of accounts.
OPT      the options engine on a generated BTC + ETH options book through ``--steps``
         five-minute steps of a falling path with rising implied volatility (a LUNA-length
         week is 2,016 steps); account-steps per second, peak RSS.
OPTLAR   an options liquidation-at-risk snapshot of that book (41 price x 3 vol shocks).

Results are printed and written to ``bench/out/risk-<time>.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from backtest.books import BookParams, generate_book
from backtest.kernels.lar_reference import perp_lar_reference
from backtest.options import (
    OptionsMarket,
    OptionsParams,
    generate_options_book,
    simulate_options,
)
from backtest.risk import default_shocks, liquidation_map, options_liquidation_map
from bench.environment import describe_machine, peak_rss_mb

START = datetime(2022, 5, 7, tzinfo=UTC)


def _timed(fn, repeat):
    times, out = [], None
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times), out


def lar_perps(args) -> dict:
    """Time perp + loan liquidation-at-risk snapshots on ``--accounts`` accounts."""
    rng = np.random.default_rng(args.seed)
    hours = 24 * 10
    ts = int((START - timedelta(days=8)).timestamp() * 1000) + np.arange(hours) * 3_600_000
    close = 36_000.0 * np.exp(np.cumsum(rng.normal(0, 0.008, hours)))
    t0 = time.perf_counter()
    book = generate_book(args.accounts, ts, close, close * 0.995, close * 1.005, START,
                         args.seed, BookParams())
    gen_s = time.perf_counter() - t0
    a = book.arrays()
    m = np.array([0.005, 0.175])
    pen = np.array([0.01, 0.05])
    price = float(close[np.searchsorted(ts, int(START.timestamp() * 1000)) - 1])
    shocks = default_shocks(args.shocks)

    def run():
        return liquidation_map(a["units"], a["cash"], a["product"], m, price, shocks,
                               penalty_rate=pen, keeper_share=0.5)

    t0 = time.perf_counter()
    run()
    first = time.perf_counter() - t0
    best, median, lar = _timed(run, args.repeat)
    idx = np.sort(rng.choice(len(a["units"]), size=min(2000, len(a["units"])), replace=False))
    sample = liquidation_map(a["units"][idx], a["cash"][idx], a["product"][idx], m, price,
                             shocks, penalty_rate=pen, keeper_share=0.5)
    ref = perp_lar_reference(a["product"][idx], a["units"][idx], a["cash"][idx], m, pen, 0.5,
                             price * (1 + shocks))
    return {
        "accounts": len(a["units"]), "shocks": len(shocks), "book_generation_seconds": gen_s,
        "first_call_seconds": first, "snapshot_seconds": {"best": best, "median": median},
        "liquidated_at_minus_20pct": float(lar.liquidated_notional_usd[0, 0]),
        "checks": {"sample_equals_twin": bool(
            np.array_equal(sample.n_liquidated[:, 0], ref[2])
            and np.allclose(sample.liquidated_notional_usd[:, 0], ref[0], rtol=1e-9)
            and np.allclose(sample.bad_debt_usd[:, 0], ref[1], rtol=1e-9, atol=1e-6))},
        "peak_rss_mb": peak_rss_mb(),
    }


def options(args) -> dict:
    """Time the options engine and an options LAR snapshot on ``--options-accounts``."""
    rng = np.random.default_rng(args.seed)
    steps = args.steps
    price0 = {"BTC": 36_000.0, "ETH": 2_700.0}
    iv0 = {"BTC": 0.65, "ETH": 0.80}
    t0 = time.perf_counter()
    book = generate_options_book(args.options_accounts, START, price0, iv0, args.seed)
    gen_s = time.perf_counter() - t0
    arrays = book.arrays(("BTC", "ETH"))
    ts = int(START.timestamp() * 1000) + np.arange(steps, dtype=np.int64) * 300_000
    drift = np.log(0.75) / steps
    close = np.array([price0["BTC"], price0["ETH"]]) * np.exp(
        np.cumsum(rng.normal(drift, 0.004, (steps, 2)), axis=0))
    iv = np.array([iv0["BTC"], iv0["ETH"]]) * np.linspace(1.0, 1.8, steps)[:, None]
    market = OptionsMarket(ts, 300, ("BTC", "ETH"), close * 0.997, close * 1.003, close, iv)
    params = OptionsParams()
    small = OptionsMarket(ts[:2], 300, ("BTC", "ETH"), market.low[:2], market.high[:2],
                          close[:2], iv[:2])
    t0 = time.perf_counter()
    simulate_options(small, arrays, params)
    compile_s = time.perf_counter() - t0
    best, median, res = _timed(lambda: simulate_options(market, arrays, params), args.repeat_run)
    shocks = default_shocks(41)
    vols = np.array([-0.1, 0.0, 0.2])

    def snap():
        return options_liquidation_map(arrays, close[0], iv[0], int(ts[0]), shocks, vols,
                                       params)

    t0 = time.perf_counter()
    snap()
    lar_first = time.perf_counter() - t0
    lar_best, lar_median, _ = _timed(snap, args.repeat)
    sm = res.steps_frame()
    return {
        "accounts": arrays.n_accounts, "legs": int(arrays.leg_qty.size),
        "instruments": int(arrays.inst_und.size), "steps": steps,
        "book_generation_seconds": gen_s, "first_call_seconds": compile_s,
        "run_seconds": {"best": best, "median": median},
        "account_steps_per_second": arrays.n_accounts * steps / best,
        "liquidated_share": float((res.liq_step >= 0).mean()),
        "bad_debt_usd": float(sm["bad_debt_usd"].sum()),
        "lar_snapshot": {"points": len(shocks) * len(vols), "first_call_seconds": lar_first,
                         "best_seconds": lar_best, "median_seconds": lar_median},
        "peak_rss_mb": peak_rss_mb(),
    }


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the workloads, print and write the results."""
    p = argparse.ArgumentParser(prog="python -m bench.risk", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workloads", default="LAR1M,OPT", help="LAR1M, OPT (OPT includes OPTLAR)")
    p.add_argument("--accounts", type=int, default=1_000_000)
    p.add_argument("--shocks", type=int, default=41)
    p.add_argument("--options-accounts", type=int, default=100_000)
    p.add_argument("--steps", type=int, default=2016)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--repeat-run", type=int, default=1)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    names = [w.strip() for w in args.workloads.split(",") if w.strip()]
    out = {"created_at": datetime.now(UTC).isoformat(), "machine": describe_machine(),
           "arguments": {k: str(v) for k, v in vars(args).items()}, "workloads": {}}
    ok = True
    for name in names:
        res = {"LAR1M": lar_perps, "OPT": options}[name](args)
        out["workloads"][name] = res
        print(name, json.dumps(res, indent=2, default=str))
        ok &= all(res.get("checks", {}).values())
    path = args.out or Path("bench/out") / f"risk-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2, default=str))
    print(f"results: {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
