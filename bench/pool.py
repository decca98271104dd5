"""Pool paired load measurements from several benchmark runs: ``python -m bench.pool FILE...``.

One ``--load-pairs`` run (:mod:`bench.load`) gives a median paired ratio whose value moves by
0.1-0.4 between runs of the same code on a shared 2-core machine (``bench/RESULTS.md``). This
reads the passes of every ``bench/out/bench-*.json`` named (``load -> workload -> threads ->
as_is / loaded``), puts all their pairs together, and prints per kernel the median of the
engine's paired ratio over every pair with its 95% bootstrap interval
(:func:`bench.paired.median_interval`), so that a verdict rests on all the pairs measured.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench.paired import median_interval, summarise


def pooled_passes(paths: list[Path], workload: str, threads: str) -> tuple[list, list]:
    """Return the as-is and loaded passes of ``workload`` at ``threads`` in every file, in order.

    Raises
    ------
    ValueError
        A file that is not a benchmark result with that workload and thread count in its
        ``load`` section (the message names the file).
    """
    as_is, loaded = [], []
    for path in paths:
        try:
            run = json.loads(Path(path).read_text())["load"][workload][threads]
            as_is += run["as_is"]
            loaded += run["loaded"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}: no paired load passes for {workload} at {threads} "
                             f"threads ({type(exc).__name__}: {exc})") from None
    return as_is, loaded


def pooled_table(paths: list[Path], workload: str = "W1", threads: str = "2",
                 resamples: int = 10_000, seed: int = 0) -> list[str]:
    """Lines of the pooled table: per kernel, the engine's paired ratio over every pair."""
    as_is, loaded = pooled_passes(paths, workload, threads)
    summary = summarise(as_is, loaded)
    lines = [f"{workload}, {threads} threads: {summary['pairs']} pairs from {len(paths)} files; "
             "engine loss / kernel loss, median [95% bootstrap interval]"]
    for name, q in summary["engine_over"].items():
        lo, hi = median_interval(q["values"], resamples, seed)
        lines.append(f"  {name}: {q['median']:.2f} [{lo:.2f}, {hi:.2f}]"
                     f"{'' if q['median'] <= 1.0 else '  (above 1)'}")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Print the pooled table of the files named on the command line."""
    ap = argparse.ArgumentParser(prog="python -m bench.pool", description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="+", type=Path, help="benchmark results (bench/out/*.json)")
    ap.add_argument("--workload", default="W1")
    ap.add_argument("--threads", default="2")
    ap.add_argument("--resamples", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        lines = pooled_table(args.files, args.workload, args.threads, args.resamples, args.seed)
    except ValueError as exc:
        ap.error(str(exc))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
