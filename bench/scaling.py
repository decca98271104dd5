"""Thread scaling: rerun a workload at several numba thread counts in one process.

Each workload result carries ``throughput`` (account-steps per second, best of the repeats) per
series: the engine and each brute-force kernel timed in the same pass. :func:`run_threads`
runs a workload once per thread count (``numba.set_num_threads``), checks that the engine's
results are bit-identical at every count, and :func:`scaling_curve` turns the passes into
throughput and parallel efficiency per series: throughput at k threads / (k x throughput at
the smallest count k0, times k0), i.e. ``T(k) / (k T(1))`` when the list starts at 1.
"""

from __future__ import annotations

import os
from collections.abc import Callable


def default_threads(cores: int | None = None) -> list[int]:
    """Powers of two below the core count, then the core count: 16 -> [1, 2, 4, 8, 16]."""
    cores = max(1, cores or os.cpu_count() or 1)
    out, k = [], 1
    while k < cores:
        out.append(k)
        k *= 2
    return [*out, cores]


def parse_threads(spec: str | None, limit: int) -> list[int]:
    """Parse ``--threads`` ("1,2,4"; empty: :func:`default_threads` capped at ``limit``).

    Raises
    ------
    ValueError
        A count that is not a positive integer, or above ``limit`` (numba's ``NUMBA_NUM_THREADS``
        when the process started: set it higher to measure more threads).
    """
    if not spec:
        return [k for k in default_threads() if k <= limit] or [limit]
    out = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        if not part.isdigit() or int(part) < 1:
            raise ValueError(f"--threads: {part!r} is not a positive integer")
        if int(part) > limit:
            raise ValueError(f"--threads: {part} is above numba's thread limit {limit} "
                             f"(start with NUMBA_NUM_THREADS={part} or more)")
        out.append(int(part))
    if not out:
        raise ValueError("--threads: no thread count given")
    return sorted(set(out))


def run_threads(workload: Callable[[object], dict], ctx, threads: list[int]) -> dict:
    """Run ``workload(ctx)`` at each thread count; return ``{"threads": {k: result}, ...}``.

    The engine's result digest (``result["digest"]``, when the workload gives one) must be the
    same at every count: the ``checks`` of every pass after the first gain
    ``bit_identical_to_<k0>_threads``.
    """
    import numba

    before = numba.get_num_threads()
    passes: dict[int, dict] = {}
    try:
        for k in threads:
            numba.set_num_threads(k)
            res = workload(ctx)
            res["threads"] = k
            if passes and "digest" in res:
                k0 = min(passes)
                res.setdefault("checks", {})[f"bit_identical_to_{k0}_threads"] = (
                    res["digest"] == passes[k0].get("digest"))
            passes[k] = res
    finally:
        numba.set_num_threads(before)
    return {"threads": passes, "scaling": scaling_curve(passes)}


def scaling_curve(passes: dict[int, dict]) -> list[dict]:
    """Rows ``{"threads", "<series>", "<series>_efficiency", "<series>_ratio"}`` per count.

    ``<series>_ratio`` is the engine's throughput over that series' (brute-force kernels only).
    """
    if not passes:
        return []
    k0 = min(passes)
    base = passes[k0].get("throughput", {})
    rows = []
    for k in sorted(passes):
        tp = passes[k].get("throughput", {})
        row: dict = {"threads": k}
        for name, value in tp.items():
            row[name] = value
            if base.get(name):
                row[name + "_efficiency"] = value * k0 / (k * base[name])
            if name != "engine" and tp.get("engine") and value:
                row[name + "_ratio"] = tp["engine"] / value
        rows.append(row)
    return rows


def print_curve(name: str, rows: list[dict]) -> None:
    """Print a workload's scaling table: throughput (efficiency) per series, engine ratios."""
    if not rows:
        return
    series = [k for k in rows[0] if k != "threads" and not k.endswith(("_efficiency", "_ratio"))]
    k0 = rows[0]["threads"]
    print(f"{name} thread scaling: account-steps/s (parallel efficiency vs {k0} thread"
          f"{'s' if k0 > 1 else ''}); engine / brute force")
    head = ["threads", *series, *(f"engine/{s}" for s in series if s != "engine")]
    print("  " + " | ".join(head))
    for row in rows:
        cells = [str(row["threads"])]
        for s in series:
            eff = row.get(s + "_efficiency")
            cells.append(f"{row[s]:.3g}" + (f" ({eff:.0%})" if eff is not None else ""))
        cells += [f"{row[s + '_ratio']:.2f}x" for s in series
                  if s != "engine" and s + "_ratio" in row]
        print("  " + " | ".join(cells))
