"""The engine under background load, measured in interleaved pairs (``--load-pairs N``).

For a workload (W1 or W2) at one size and thread count, :func:`measure` runs ``N`` pairs of
passes: first as is, then with ``K`` busy processes (``python -c 'while True: pass'``, started
by this module, inheriting the benchmark's niceness, killed by their process ids when the pass
ends; ``K`` = the number of cores by default). Each pass times every kernel of the workload
back to back in a random order (a new permutation per pass, seeded), each ``repeat`` times,
keeping the best; every call's result is checked (outside the timed region) against the
results checked once at the start, so correctness checks stay on throughout.
:mod:`bench.paired` turns the timings into per-kernel losses and the engine's paired ratios.

Kernels per workload (same names as the benchmark's series):

W1  ``engine`` (decoupled path, forced), ``engine_two_walks`` (the same path walking twice,
    as before the fused walk, for comparison), ``engine_one_thread`` (the same path on one
    thread at any size, as W1 at 100k ran before brief H16), ``bruteforce_tile``,
    ``bruteforce_position_major``, ``bruteforce_time_major``. At the start the engine's result
    is checked bit for bit against its time-major path, on a 300-account sample against the
    reference twin, and each brute force gives every account the engine's first step and fill;
    later calls must give the same engine digest and the same first steps and fills.
W2  ``engine`` (the full engine, time-major: impact and cascade couple the accounts),
    ``bruteforce_coupled`` (time-major brute force with the same coupling) and
    ``bruteforce_position_major`` (the uncoupled hard-policy kernel). At the start the
    coupled brute force must agree with the engine as in :func:`bench.workloads.w2`; later
    calls must repeat each kernel's first result bit for bit (the coupled brute force's to
    ``COUPLED_RTOL``: its parallel reductions' order depends on the threading layer's
    scheduling under TBB).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager

import numpy as np

from bench import workloads
from bench.paired import format_summary, summarise

#: Seconds to let the busy processes start (interpreter start-up) before a loaded pass.
SETTLE_SECONDS = 0.5
BUSY_CODE = "while True: pass"


@contextmanager
def busy_processes(k: int, settle: float | None = None):
    """Run ``k`` busy-loop processes for the duration of the ``with`` block; yield their pids.

    Each is a Python interpreter spinning at this process's niceness (children inherit it); each
    is killed by its own process id on leaving, whatever happened inside.
    """
    procs = []
    try:
        for _ in range(k):
            procs.append(subprocess.Popen([sys.executable, "-c", BUSY_CODE],
                                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))
        time.sleep(SETTLE_SECONDS if settle is None else settle)
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def run_pass(kernels: dict[str, Callable], check: Callable[[str, object], bool],
             rng: np.random.Generator, repeat: int) -> tuple[dict, dict, list[str]]:
    """Time each kernel ``repeat`` times, in a random order.

    Return (best seconds, checks, order).

    ``check(name, result)`` is called after each kernel's last call (not timed).
    """
    names = list(kernels)
    order = [names[j] for j in rng.permutation(len(names))]
    seconds, checks = {}, {}
    for name in order:
        best, _, out = workloads.timed(kernels[name], repeat)
        seconds[name] = best
        checks[name] = bool(check(name, out))
        del out
    return {name: seconds[name] for name in names}, checks, order


def measure(kernels: dict[str, Callable], check: Callable[[str, object], bool], pairs: int,
            procs: int, repeat: int, seed: int = 0) -> dict:
    """Run ``pairs`` (as is, loaded) pairs of passes; return timings, checks and the summary.

    Returns
    -------
    dict
        ``as_is``, ``loaded``: seconds per kernel per pass; ``orders``: the kernel order of
        each pass; ``load_average``: ``os.getloadavg()[0]`` before and after each pair;
        ``checks_ok``: every check of every pass passed; ``summary``:
        :func:`bench.paired.summarise`.
    """
    rng = np.random.default_rng(seed)
    as_is, loaded, orders, loads, ok = [], [], [], [], True
    for _ in range(pairs):
        before = os.getloadavg()[0]
        sec, checks, order = run_pass(kernels, check, rng, repeat)
        as_is.append(sec)
        orders.append(order)
        ok &= all(checks.values())
        with busy_processes(procs):
            sec, checks, order = run_pass(kernels, check, rng, repeat)
        loaded.append(sec)
        orders.append(order)
        ok &= all(checks.values())
        loads.append((before, os.getloadavg()[0]))
    return {"as_is": as_is, "loaded": loaded, "orders": orders, "load_average": loads,
            "busy_processes": procs, "repeat": repeat, "checks_ok": bool(ok),
            "summary": summarise(as_is, loaded)}


def _first_fill(res, n: int) -> np.ndarray:
    fill = np.full(n, np.nan)
    fill[res.records["account"]] = res.records["fill_price"]  # one event per account
    return fill


def _two_walks(engine: Callable) -> Callable:
    """Return the engine with its decoupled path walking twice (count, then write).

    As before the fused walk (:data:`backtest.engine.decoupled.FUSED_WALK`): same results, for
    comparison.
    """
    import backtest.engine.decoupled as decoupled

    def run():
        before = decoupled.FUSED_WALK
        decoupled.FUSED_WALK = False
        try:
            return engine()
        finally:
            decoupled.FUSED_WALK = before
    return run


def _one_thread(engine: Callable) -> Callable:
    """Return the engine with its decoupled path on one thread whatever the run's size.

    :data:`backtest.engine.decoupled.SERIAL_MAX_REACHABLE` is raised, as W1 at 100k accounts ran
    before brief H16: same results, for comparison.
    """
    import backtest.engine.decoupled as decoupled

    def run():
        before = decoupled.SERIAL_MAX_REACHABLE
        decoupled.SERIAL_MAX_REACHABLE = 1 << 62
        try:
            return engine()
        finally:
            decoupled.SERIAL_MAX_REACHABLE = before
    return run


def w1_kernels(ctx) -> tuple[dict, Callable, dict]:
    """W1's kernels, their per-call check, and the one-off checks' outcomes."""
    policy = workloads.w1_policy()
    workloads.compile_seconds()
    book = ctx.book(True)
    n = len(book["units"])
    engine = workloads._engine(ctx, book, policy, path="decoupled")
    res = engine()
    digest = workloads.result_digest(res)
    first_step, first_fill = res.first_step.copy(), _first_fill(res, n)
    slow = workloads._engine(ctx, book, policy, path="time-major")()
    once = {"time_major_path_bit_identical": workloads.result_digest(slow) == digest,
            "reference_twin_sample": workloads.check_sample(ctx, book, policy, res,
                                                            ctx.args.sample)}
    del slow, res
    kernels = {"engine": engine, "engine_two_walks": _two_walks(engine),
               "engine_one_thread": _one_thread(engine)}
    for name, kernel in workloads.BRUTEFORCE.items():
        kernels[name] = workloads._baseline(ctx, book, kernel=kernel)

    def check(name, out) -> bool:
        if name.startswith("engine"):
            return workloads.result_digest(out) == digest
        step, fill = out
        return bool(np.array_equal(step, first_step)
                    and np.array_equal(fill, first_fill, equal_nan=True))

    for name in workloads.BRUTEFORCE:
        once[f"first_step_and_fill_equal_{name}"] = check(name, kernels[name]())
    return kernels, check, once


def _arrays_digest(arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).view(np.uint8).tobytes())
    return h.hexdigest()


def w2_kernels(ctx) -> tuple[dict, Callable, dict]:
    """W2's kernels, their per-call check, and the one-off checks' outcomes."""
    from backtest.kernels.bruteforce_coupled_nb import partial_cascade_bruteforce_nb, w2_params
    from backtest.kernels.enums import StepMetric
    from backtest.policies import load_policy, pack_policy

    workloads.compile_seconds()
    policy = pack_policy(load_policy("partial"))
    market, depth = ctx.market()
    book = ctx.book(False)
    p = ctx.prices
    params = w2_params(policy, market)
    kernels = {
        "engine": workloads._engine(ctx, book, policy, market, depth),
        "bruteforce_coupled": lambda: partial_cascade_bruteforce_nb(
            p.high, p.low, depth, book["product"], book["units"], book["cash"], params, 0.0),
        "bruteforce_position_major": workloads._baseline(ctx, book),
    }
    res = kernels["engine"]()
    c_units, c_cash, c_liq, c_bad, c_steps = kernels["bruteforce_coupled"]()
    sm, rtol = res.step_metrics, workloads.COUPLED_RTOL
    once = {
        "reference_twin_sample": workloads.check_sample(ctx, book, policy, res, ctx.args.sample),
        "coupled_price_factor": bool(np.allclose(c_steps[:, 0], sm[:, StepMetric.PRICE_FACTOR],
                                                 rtol=rtol, atol=0.0)),
        "coupled_accounts": bool(np.array_equal(c_liq, res.n_liquidations)
                                 and np.allclose(c_units, res.units, rtol=rtol, atol=1e-12)
                                 and np.allclose(c_cash, res.cash, rtol=rtol, atol=1e-6)
                                 and np.allclose(c_bad, res.bad_debt, rtol=rtol, atol=1e-6)),
    }
    digests = {"engine": workloads.result_digest(res),
               "bruteforce_position_major": _arrays_digest(kernels["bruteforce_position_major"]())}
    coupled = (c_units, c_cash, c_liq, c_bad, c_steps)
    del res

    def check(name, out) -> bool:
        if name == "engine":
            return workloads.result_digest(out) == digests[name]
        if name == "bruteforce_coupled":  # parallel reductions: under TBB, which thread sums
            # which share varies from call to call, so the last bits may (COUPLED_RTOL)
            return all(np.array_equal(a, b) if a.dtype.kind in "iu" else
                       np.allclose(a, b, rtol=rtol, atol=1e-9) for a, b in zip(out, coupled,
                                                                             strict=True))
        return _arrays_digest(out) == digests[name]

    return kernels, check, once


KERNEL_SETS = {"W1": w1_kernels, "W2": w2_kernels}


def run_load(names: list[str], ctx, threads: list[int], pairs: int, procs: int,
             repeat: int) -> tuple[dict, bool]:
    """Measure each workload at each thread count; print the tables; return (results, ok)."""
    import numba

    unknown = [w for w in names if w not in KERNEL_SETS]
    if unknown:
        raise ValueError(f"--load-pairs measures {sorted(KERNEL_SETS)} only, not {unknown}")
    before = numba.get_num_threads()
    results, ok = {}, True
    try:
        for name in names:
            for k in threads:
                numba.set_num_threads(k)
                kernels, check, once = KERNEL_SETS[name](ctx)
                res = measure(kernels, check, pairs, procs, repeat, seed=k)
                res["checks_once"] = once
                ok &= res["checks_ok"] and all(once.values())
                book = ctx.book(name == "W1")
                work = len(book["units"]) * len(ctx.prices)
                loads = res["load_average"]
                title = (f"{name}: {len(book['units']):,} accounts, {k} thread"
                         f"{'s' if k > 1 else ''}, {pairs} pairs, {procs} busy processes, "
                         f"best of {repeat}; load average {loads[0][0]:.2f} -> "
                         f"{loads[-1][1]:.2f}; checks "
                         + ("ok" if res["checks_ok"] and all(once.values()) else "FAILED"))
                print("\n".join(format_summary(title, res["summary"], work)), flush=True)
                results.setdefault(name, {})[k] = res
    finally:
        numba.set_num_threads(before)
    return results, bool(ok)
