"""Benchmark harness: time named workloads, check them while timing, write JSON.

Run from the project root (after ``make demo`` imported the May 2021 tape, or with ``--tape``)::

    .venv/bin/python -m bench                       # W1, W2, W3 on may-2021, 1M accounts
    .venv/bin/python -m bench --workloads W1 --accounts 200000
    .venv/bin/python -m bench --tape my.parquet --book my_book.parquet --workloads W1
    .venv/bin/python -m bench --workloads W10M      # 10M accounts through the CLI
    .venv/bin/python -m bench --workloads W1 --accounts 100000 --threads 1,2
    nice .venv/bin/python -m bench --workloads W1,W2 --accounts 100000 --threads 1,2 --load-pairs 7

Every workload reports compile time (numba's first call, from the cache when warm) apart from
run time, accounts x steps per second, the ratio to brute-force kernels timed in the same run
(W1: position-major, position-major tiles and time-major, :mod:`backtest.kernels.bruteforce_nb`),
bytes per account, the peak RSS, and the outcome of its correctness checks. Each workload is
rerun at every ``--threads`` count in this process (default: 1 and the powers of two up to the
machine's cores, plus the core count) and prints its scaling curve: throughput and parallel
efficiency of the engine and of each brute-force kernel. Before the workloads, cold compile
(empty numba cache) and warm compile (cache hit) are timed in two subprocesses
(:mod:`bench.compile_time`; ``--no-cold-compile`` skips it). Results go to
``bench/out/*.json``.

``--load-pairs N`` measures instead what a background load costs each kernel
(:mod:`bench.load`): per workload (W1, W2) and thread count, N pairs of passes, as is and with
``--load-procs`` busy processes (default: one per core), every kernel timed in each pass in a
random order; it prints per kernel the median loss (as-is / loaded throughput) with its
interquartile range, and the engine's loss over each brute-force kernel's, pair by pair, then
the median (:mod:`bench.paired`). Run the benchmark under ``nice``: the busy processes inherit
its niceness. Cold compile is not timed in this mode.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench import workloads
from bench.compile_time import cold_and_warm, total_seconds
from bench.environment import describe_machine
from bench.scaling import parse_threads, print_curve, run_threads


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the workloads, print a table and write the JSON results."""
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workloads", default="W1,W2,W3",
                   help="comma-separated: " + ", ".join(workloads.WORKLOADS))
    p.add_argument("--event", default="may-2021", help="event key (window and tape)")
    p.add_argument("--symbol", default="BTC/USDT")
    p.add_argument("--interval", default="1m")
    p.add_argument("--tape", type=Path, help="tape Parquet file (instead of the tape store)")
    p.add_argument("--book", type=Path, help="book Parquet file (default: generated)")
    p.add_argument("--accounts", type=int, default=1_000_000, help="generated book size")
    p.add_argument("--cli-accounts", type=int, default=10_000_000,
                   help="accounts of W10M's book (the CLI run)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--repeat", type=int, default=3, help="timed repetitions (best is reported)")
    p.add_argument("--sample", type=int, default=300,
                   help="accounts checked against the reference twin per workload")
    p.add_argument("--threads", default="",
                   help="comma-separated numba thread counts to run each workload at "
                        "(default: 1, 2, 4, ... up to the cores, and the core count)")
    p.add_argument("--no-cold-compile", action="store_true",
                   help="skip timing a cold compile (empty cache) against a warm one")
    p.add_argument("--load-pairs", type=int, default=0,
                   help="measure the loss under a background load in N interleaved pairs of "
                        "passes (W1, W2) instead of the usual figures")
    p.add_argument("--load-procs", type=int, default=os.cpu_count() or 1,
                   help="busy processes started for each loaded pass (default: the cores)")
    p.add_argument("--out", type=Path, default=None, help="JSON output file")
    args = p.parse_args(argv)

    names = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = [w for w in names if w not in workloads.WORKLOADS]
    if unknown:
        p.error(f"unknown workload(s) {unknown}; choose from {list(workloads.WORKLOADS)}")
    import numba

    try:
        threads = parse_threads(args.threads, numba.config.NUMBA_NUM_THREADS)
    except ValueError as exc:
        p.error(str(exc))
    results = {"created_at": datetime.now(UTC).isoformat(), "machine": describe_machine(),
               "arguments": {k: str(v) for k, v in vars(args).items()},
               "threads": threads, "workloads": {}}
    if args.load_pairs > 0:
        from bench.load import KERNEL_SETS, run_load

        if [w for w in names if w not in KERNEL_SETS]:
            p.error(f"--load-pairs measures {sorted(KERNEL_SETS)} only")
        results["load"], ok = run_load(names, workloads.Context.create(args), threads,
                                       args.load_pairs, args.load_procs, args.repeat)
        return _write(results, args.out, ok)
    if not args.no_cold_compile:
        comp = cold_and_warm()
        results["compile_cold_warm"] = comp
        cold, warm = total_seconds(comp["cold"]), total_seconds(comp["warm"])
        print("compile, engine + brute-force kernels: "
              + (f"cold {cold:.1f} s (empty cache), warm {warm:.2f} s (cache hit)"
                 if cold is not None and warm is not None else f"failed: {comp}"))
    ctx = workloads.Context.create(args)
    ok = True
    for name in names:
        res = run_threads(workloads.WORKLOADS[name], ctx, threads)
        results["workloads"][name] = res
        for one in res["threads"].values():
            workloads.print_result(name, one)
            ok &= all(one.get("checks", {}).values())
        print_curve(name, res["scaling"])
    return _write(results, args.out, ok)


def _write(results: dict, out: Path | None, ok: bool) -> int:
    """Write the JSON results; return the exit status (1 if a check failed)."""
    from backtest._jit import threading_layer

    results["machine"]["threading_layer"] = threading_layer()  # numba's, after the runs
    print(f"threading layer: {results['machine']['threading_layer']}")
    out = out or Path("bench/out") / f"bench-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"results: {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
