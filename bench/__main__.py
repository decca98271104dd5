"""Benchmark harness: time named workloads, check them while timing, write JSON.

Run from the project root (after ``make demo`` imported the May 2021 tape, or with ``--tape``)::

    .venv/bin/python -m bench                       # W1, W2, W3 on may-2021, 1M accounts
    .venv/bin/python -m bench --workloads W1 --accounts 200000
    .venv/bin/python -m bench --tape my.parquet --book my_book.parquet --workloads W1
    .venv/bin/python -m bench --workloads W10M      # 10M accounts through the CLI

Every workload reports compile time (numba's first call, from the cache when warm) apart from
run time, accounts x steps per second, the ratio to an in-run brute-force kernel, the process
peak RSS, and the outcome of its correctness checks. Results go to ``bench/out/*.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench import workloads
from bench.environment import describe_machine


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
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--repeat", type=int, default=3, help="timed repetitions (best is reported)")
    p.add_argument("--sample", type=int, default=300,
                   help="accounts checked against the reference twin per workload")
    p.add_argument("--out", type=Path, default=None, help="JSON output file")
    args = p.parse_args(argv)

    names = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = [w for w in names if w not in workloads.WORKLOADS]
    if unknown:
        p.error(f"unknown workload(s) {unknown}; choose from {list(workloads.WORKLOADS)}")
    ctx = workloads.Context.create(args)
    results = {"created_at": datetime.now(UTC).isoformat(), "machine": describe_machine(),
               "arguments": {k: str(v) for k, v in vars(args).items()},
               "workloads": {}}
    ok = True
    for name in names:
        res = workloads.WORKLOADS[name](ctx)
        results["workloads"][name] = res
        workloads.print_result(name, res)
        ok &= all(res.get("checks", {}).values())
    out = args.out or Path("bench/out") / f"bench-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"results: {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
