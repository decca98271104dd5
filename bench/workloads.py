"""Named benchmark workloads; each times the engine, a brute-force baseline, and checks both.

W1    hard liquidation only, isolated-margin linear perps, no fees, no impact, fill at the
      trigger price, maintenance margin rate 0.5%, one window of the tape (May 2021: 1,440
      one-minute steps). A decoupled run: the engine must take its decoupled path
      (``simulate(..., path="decoupled")`` raises otherwise; :mod:`backtest.engine.decoupled`);
      timed next to the engine's time-major path (``engine_time_major``, whose results must be
      bit-identical) and the three brute-force kernels of
      :mod:`backtest.kernels.bruteforce_nb` (position-major, position-major tiles, time-major),
      each of which must give every account the engine's first step and fill.
W2    the full engine: partial liquidation (strategies/partial.toml) with penalties,
      keeper/insurance split and the insurance fund, square-root market impact and cascade
      feedback, on perps and loans. Its baseline is the time-major brute force with the same
      coupling (:mod:`backtest.kernels.bruteforce_coupled_nb`: every account at every step,
      two parallel passes per step), which must agree with the engine's per-step price factor,
      liquidation count, fees and bad debt and every account's final state to 1e-9 relative
      (sums in a different order); the uncoupled position-major hard-policy kernel is timed
      too, as before.
W3    20 policy variants (hard and partial, 5 maintenance rates, 2 targets) over one book.
W10M  10,000,000 accounts, one policy, through the CLI (``liqbt run``): wall time and peak
      resident memory of the whole command.

Every pass reports ``throughput`` (account-steps per second per series, for the thread-scaling
curve of :mod:`bench.scaling`), an engine result ``digest`` (equal at every thread count), and
``bytes_per_account``: (peak RSS while the engine runs - RSS before the book was loaded) /
accounts, the peak being reset (``/proc/self/clear_refs``) once the book is loaded, so it
holds the book's arrays (product, units, cash, processing order: 25 bytes), the engine's
working state and its results; the book is generated in a child process, so none of the
generator's temporaries (which the allocators keep after they are freed) are counted.

Why over 400 lines: each workload is one function that times the engine and its baselines and
checks them, beside the shared context (tape, books built in child processes) and the helpers
the workloads share; splitting them would separate a workload from the checks it relies on.
"""

from __future__ import annotations

import hashlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from backtest.books import BookParams, generate_book, read_book, write_book
from backtest.engine.dispatch import Prices, liquidation_order, simulate
from backtest.engine.warmup import warm_up
from backtest.events import get_event
from backtest.kernels.bruteforce_coupled_nb import partial_cascade_bruteforce_nb, w2_params
from backtest.kernels.bruteforce_nb import (
    hard_liquidation_bruteforce_nb,
    hard_liquidation_bruteforce_tile_nb,
    hard_liquidation_bruteforce_time_major_nb,
)
from backtest.kernels.enums import (
    MARKET_DTYPE,
    POLICY_DTYPE,
    FillPrice,
    ImpactModel,
    PolicyFamily,
    StepMetric,
    TriggerPrice,
)
from backtest.kernels.reference import simulate_reference
from backtest.policies import load_policy, pack_policy
from backtest.tapes import Tape, TapeStore
from bench.environment import (
    peak_rss_mb,
    peak_rss_since_reset_mb,
    reset_peak_rss,
    rss_mb,
)

EXTREME, TRIGGER = int(TriggerPrice.EXTREME), int(FillPrice.TRIGGER)
#: Relative tolerance of W2's agreement with the coupled brute force: both sum the step's flow
#: and fees in a different order (the brute force in book order with parallel reductions, the
#: engine per chunk of its processing order), so they agree to the last bits, not bit for bit.
COUPLED_RTOL = 1e-9
#: The brute-force kernels W1 is timed against, by series name.
BRUTEFORCE = {"bruteforce_position_major": hard_liquidation_bruteforce_nb,
              "bruteforce_tile": hard_liquidation_bruteforce_tile_nb,
              "bruteforce_time_major": hard_liquidation_bruteforce_time_major_nb}


@dataclass
class Context:
    """Inputs shared by the workloads: the tape window, books, arguments."""

    args: object
    tape: Tape
    window: Tape
    prices: Prices
    books: dict = field(default_factory=dict)
    rss_before_book: dict = field(default_factory=dict)

    @classmethod
    def create(cls, args) -> Context:
        """Load the event's tape (from ``--tape`` or the store) and cut its window."""
        event = get_event(args.event)
        if args.tape:
            tape = Tape.from_parquet(args.tape)
        else:
            from datetime import timedelta

            tape = TapeStore().resolve(args.symbol, event.start - timedelta(days=7), event.end,
                                       interval=args.interval)
        window = tape.window(event.start, event.end)
        a = window.arrays()
        return cls(args, tape, window, Prices(a["open"], a["high"], a["low"], a["close"]))

    def market(self) -> tuple[np.ndarray, np.ndarray]:
        """W2's market: square-root impact with cascade feedback, depth from tape volume."""
        from backtest.engine.config import KeeperConfig, MarketConfig, OracleConfig
        from backtest.engine.market import depth_per_step, market_record

        full = self.tape.arrays()
        start = int(np.searchsorted(full["timestamp"], self.window.arrays()["timestamp"][0]))
        market = MarketConfig(impact_model="sqrt", cascade=True, depth_source="hourly_volume")
        return (market_record(market, OracleConfig(), KeeperConfig(), self.tape.interval_seconds),
                depth_per_step(market, full, slice(start, start + self.window.rows))[0])

    def book(self, perps_only: bool) -> dict:
        """Return book arrays (cached): the ``--book`` file, or a generated one.

        The book is read or generated in a child process and handed over as ``.npy`` files,
        so this process holds its arrays (``product``, ``units``, ``cash``, then the
        processing ``order``) and none of the generator's or the Parquet reader's
        temporaries, which the allocators keep after they are freed (about 130 bytes per
        account at 1M accounts: more than the engine itself).
        """
        if perps_only not in self.books:
            import json
            import tempfile

            a = self.args
            spec = json.dumps({k: None if getattr(a, k) is None else str(getattr(a, k))
                               for k in ("book", "event", "symbol", "interval", "tape")}
                              | {"accounts": a.accounts, "seed": a.seed, "perps": perps_only})
            with tempfile.TemporaryDirectory(prefix="liqbt-bench-book-") as tmp:
                subprocess.run([sys.executable, "-c", "import sys; from bench.workloads import "
                                "_book_files; _book_files(sys.argv[1], sys.argv[2])", spec, tmp],
                               check=True)
                self.rss_before_book[perps_only] = rss_mb()
                arrays = {name: np.load(Path(tmp) / f"{name}.npy")
                          for name in ("product", "units", "cash")}
            t0 = time.perf_counter()
            arrays["order"] = liquidation_order(arrays["product"], arrays["units"],
                                                arrays["cash"])
            arrays["order_seconds"] = time.perf_counter() - t0
            self.books[perps_only] = arrays
        return self.books[perps_only]

    def bytes_per_account(self, perps_only: bool, n: int) -> float:
        """(Peak RSS since the last reset - RSS before that book was built) / ``n``, bytes."""
        return (peak_rss_since_reset_mb() - self.rss_before_book[perps_only]) * 2**20 / max(n, 1)


def _book_files(spec: str, folder: str) -> None:
    """Read or generate the bench's book; save its state arrays in ``folder``.

    Runs in a child process (:meth:`Context.book`). ``spec`` is JSON: ``book`` (Parquet file
    or null: generate ``accounts`` accounts with ``seed``), ``event``, ``symbol``,
    ``interval``, ``tape``, and ``perps`` (keep perps only). Writes ``product.npy``,
    ``units.npy`` and ``cash.npy``, shape (N,) each.
    """
    import argparse
    import json

    d = json.loads(spec)
    if d["book"]:
        b = read_book(d["book"])
        if d["perps"]:
            b.frame = b.frame.filter(b.frame["product"] == "perp")
    else:
        event = get_event(d["event"])
        args = argparse.Namespace(**{k: d[k] for k in ("event", "symbol", "interval")},
                                  tape=Path(d["tape"]) if d["tape"] else None)
        a = Context.create(args).tape.arrays()
        params = BookParams(loan_fraction=0.0) if d["perps"] else BookParams()
        b = generate_book(d["accounts"], a["timestamp"], a["close"], a["low"], a["high"],
                          event.start, d["seed"], params)
    arrays = b.arrays()
    for name in ("product", "units", "cash"):
        np.save(Path(folder) / f"{name}.npy", arrays[name])


def timed(fn: Callable, repeat: int) -> tuple[float, float, object]:
    """Run ``fn`` ``repeat`` times; return (best seconds, median seconds, last result)."""
    times, out = [], None
    for _ in range(max(1, repeat)):
        out = None  # the previous result is freed before the next call (peak memory)
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times), out


def compile_seconds() -> dict:
    """Time the first call of every kernel (compile, or load from numba's cache)."""
    out = {"engine_seconds": warm_up()}
    for name, kernel in BRUTEFORCE.items():
        t0 = time.perf_counter()
        kernel(np.ones(2), np.ones(2), np.ones(2), -np.ones(2) / 2, 0.01)
        out[name + "_seconds"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    market = np.zeros(1, MARKET_DTYPE)
    market["impact_model"], market["cascade"] = ImpactModel.SQRT, 1
    partial_cascade_bruteforce_nb(np.ones(2), np.ones(2), np.ones(2), np.zeros(2, np.int8),
                                  np.ones(2), -np.ones(2) / 2,
                                  w2_params(pack_policy(load_policy("partial")), market), 0.0)
    out["bruteforce_coupled_seconds"] = time.perf_counter() - t0
    return out


def result_digest(res) -> str:
    """SHA-256 of every array of a simulation result (equal digests: bit-identical results)."""
    h = hashlib.sha256()
    for f in fields(res):
        value = getattr(res, f.name)
        if isinstance(value, np.ndarray):
            h.update(f.name.encode())
            h.update(np.ascontiguousarray(value).view(np.uint8).tobytes())
    return h.hexdigest()


def w1_policy() -> np.ndarray:
    """Hard liquidation, maintenance margin rate 0.5%, no penalty."""
    rec = np.zeros(1, POLICY_DTYPE)
    rec["family"] = PolicyFamily.HARD
    rec["maintenance_rate"] = 0.005
    rec["target_rate"] = np.inf
    rec["close_factor"] = 1.0
    rec["full_close_health"] = 1.0
    return rec


def check_sample(ctx: Context, book: dict, policy: np.ndarray, res, k: int) -> bool:
    """Compare ``k`` random accounts with the plain-Python reference twin.

    The twin replays the engine's price and execution factors per step (impact is a property
    of the whole book's flow), so each sampled account can be checked on its own.
    """
    idx = np.sort(np.random.default_rng(0).choice(len(book["units"]),
                                                  size=min(k, len(book["units"])),
                                                  replace=False))
    p = ctx.prices
    sm = res.step_metrics
    replay = (sm[:, StepMetric.PRICE_FACTOR], sm[:, StepMetric.EXECUTION_FACTOR])
    ref = simulate_reference(p.open, p.high, p.low, p.close, EXTREME, TRIGGER, policy[0],
                             book["product"][idx], book["units"][idx], book["cash"][idx],
                             replay=replay)
    return bool(
        np.allclose(res.units[idx], ref.units, rtol=1e-12, atol=1e-12)
        and np.allclose(res.cash[idx], ref.cash, rtol=1e-12, atol=1e-9)
        and np.array_equal(res.n_liquidations[idx], ref.n_liquidations)
        and np.allclose(res.bad_debt[idx], ref.bad_debt, rtol=1e-10, atol=1e-9)
    )


def _engine(ctx, book, policy, market=None, depth=None, path="auto"):
    return lambda: simulate(ctx.prices, book["product"], book["units"], book["cash"], policy,
                            EXTREME, TRIGGER, order=book["order"], market=market, depth=depth,
                            path=path)


def _baseline(ctx, book, rate=0.005, kernel=hard_liquidation_bruteforce_nb):
    p = ctx.prices
    return lambda: kernel(p.low, p.high, book["units"], book["cash"], rate)


def _throughput(n, steps, seconds):
    return n * steps / seconds


def _engine_pass(ctx, perps_only, policy, market=None, depth=None,
                 path="auto") -> tuple[dict, dict, object]:
    """Compile, build (or reuse) the book, time the engine: (book, figures, last result)."""
    comp = compile_seconds()
    book = ctx.book(perps_only)
    n, steps = len(book["units"]), len(ctx.prices)
    reset_peak_rss()  # from here the peak holds the book and the engine, not the generator
    best, med, res = timed(_engine(ctx, book, policy, market, depth, path), ctx.args.repeat)
    figures = {
        "accounts": n, "steps": steps, "compile": comp,
        "engine_seconds": {"best": best, "median": med},
        "account_steps_per_second": _throughput(n, steps, best),
        "bytes_per_account": ctx.bytes_per_account(perps_only, n),
        "digest": result_digest(res),
        "throughput": {"engine": _throughput(n, steps, best)},
    }
    return book, figures, res


def w1(ctx: Context) -> dict:
    """Hard-only perps: the engine's decoupled path vs its time-major path and three kernels.

    The three are brute-force kernels; every first step and fill agree, and both engine paths
    bit for bit.
    """
    policy = w1_policy()
    book, out, res = _engine_pass(ctx, True, policy, path="decoupled")  # raises if not taken
    n, steps = out["accounts"], out["steps"]
    best, med, slow = timed(_engine(ctx, book, policy, path="time-major"), ctx.args.repeat)
    out["engine_time_major_seconds"] = {"best": best, "median": med}
    out["throughput"]["engine_time_major"] = _throughput(n, steps, best)
    time_major_digest = result_digest(slow)
    del slow
    first_fill = np.full(n, np.nan)
    first_fill[res.records["account"]] = res.records["fill_price"]  # one event per account
    checks, out["bruteforce"] = {}, {}
    for name, kernel in BRUTEFORCE.items():
        best, med, (b_step, b_fill) = timed(_baseline(ctx, book, kernel=kernel), ctx.args.repeat)
        out["bruteforce"][name] = {"best": best, "median": med,
                                   "account_steps_per_second": _throughput(n, steps, best),
                                   "ratio": best / out["engine_seconds"]["best"]}
        out["throughput"][name] = _throughput(n, steps, best)
        checks[f"first_step_equals_{name}"] = bool(np.array_equal(res.first_step, b_step))
        checks[f"fill_equals_{name}"] = bool(np.array_equal(first_fill, b_fill, equal_nan=True))
    checks["reference_twin_sample"] = check_sample(ctx, book, policy, res, ctx.args.sample)
    checks["decoupled_path_taken"] = True  # path="decoupled" raised otherwise
    checks["time_major_path_bit_identical"] = time_major_digest == out["digest"]
    out.update({
        "liquidated": int((res.first_step >= 0).sum()),
        "book_order_seconds": book["order_seconds"],
        "ratio_to_bruteforce": out["bruteforce"]["bruteforce_position_major"]["ratio"],
        "peak_rss_mb": peak_rss_mb(), "checks": checks,
    })
    return out


def w2(ctx: Context) -> dict:
    """Partial liquidation with penalties and the insurance fund on perps and loans."""
    policy = pack_policy(load_policy("partial"))
    market, depth = ctx.market()
    book, out, res = _engine_pass(ctx, False, policy, market, depth)
    n, steps = out["accounts"], out["steps"]
    b_best, _, _ = timed(_baseline(ctx, book), ctx.args.repeat)
    out["throughput"]["bruteforce_position_major"] = _throughput(n, steps, b_best)
    p = ctx.prices
    params = w2_params(policy, market)
    c_best, c_med, (c_units, c_cash, c_liq, c_bad, c_steps) = timed(
        lambda: partial_cascade_bruteforce_nb(p.high, p.low, depth, book["product"],
                                              book["units"], book["cash"], params, 0.0),
        ctx.args.repeat)
    out["throughput"]["bruteforce_coupled"] = _throughput(n, steps, c_best)
    out["bruteforce"] = {"bruteforce_coupled": {
        "best": c_best, "median": c_med, "account_steps_per_second": _throughput(n, steps, c_best),
        "ratio": c_best / out["engine_seconds"]["best"]}}
    sm = res.step_metrics
    coupled_checks = {
        "coupled_price_factor": np.allclose(c_steps[:, 0], sm[:, StepMetric.PRICE_FACTOR],
                                            rtol=COUPLED_RTOL, atol=0.0),
        "coupled_bad_debt": np.allclose(c_bad, res.bad_debt, rtol=COUPLED_RTOL, atol=1e-6),
        "coupled_step_totals": all(
            np.allclose(c_steps[:, j], sm[:, metric], rtol=COUPLED_RTOL, atol=1e-6)
            for j, metric in ((3, StepMetric.N_LIQUIDATIONS), (4, StepMetric.KEEPER_FEES),
                              (5, StepMetric.INSURANCE_FEES), (6, StepMetric.BAD_DEBT))),
        "coupled_accounts": bool(np.array_equal(c_liq, res.n_liquidations)
                                 and np.allclose(c_units, res.units, rtol=COUPLED_RTOL,
                                                 atol=1e-12)
                                 and np.allclose(c_cash, res.cash, rtol=COUPLED_RTOL, atol=1e-6)),
    }
    rec = res.records
    fees = rec["keeper_fee"].sum() + rec["insurance_fee"].sum()
    cash_change = res.cash.sum() - book["cash"].sum()
    proceeds = (rec["units_closed"] * rec["fill_price"]).sum()
    conserved = abs(cash_change - (proceeds - fees + rec["bad_debt"].sum())) <= 1e-9 * (
        abs(proceeds) + abs(book["cash"]).sum())
    out.update({
        "events": int(len(rec)),
        "ratio_to_bruteforce": c_best / out["engine_seconds"]["best"],
        "ratio_to_uncoupled_bruteforce": b_best / out["engine_seconds"]["best"],
        "bruteforce_note": "time-major brute force with W2's coupling "
                           "(backtest/kernels/bruteforce_coupled_nb.py); the uncoupled "
                           "position-major hard-policy kernel is timed too",
        "market": "square-root impact, depth 0.1 x previous hour's USD volume, cascade "
                  "feedback (50% of the flow permanent, 30 min half-life)",
        "impact_cost_usd": float(res.step_metrics[:, StepMetric.IMPACT_COST].sum()),
        "lowest_price_factor": float(res.step_metrics[:, StepMetric.PRICE_FACTOR].min()),
        "peak_rss_mb": peak_rss_mb(),
        "checks": {"reference_twin_sample": check_sample(ctx, book, policy, res, ctx.args.sample),
                   "money_conserved": bool(conserved),
                   **{k: bool(v) for k, v in coupled_checks.items()}},
    })
    return out


def w3_policies() -> list[tuple[str, np.ndarray]]:
    """20 variants: {hard, partial target 1.5, 3.0, close-factor-only} x 5 maintenance rates."""
    out = []
    base = pack_policy(load_policy("partial"))
    for mmr in (0.004, 0.005, 0.0075, 0.01, 0.02):
        for label, family, target in (("hard", PolicyFamily.HARD, np.inf),
                                      ("partial-1.5", PolicyFamily.PARTIAL, 1.5),
                                      ("partial-3", PolicyFamily.PARTIAL, 3.0),
                                      ("close-factor", PolicyFamily.PARTIAL, np.inf)):
            rec = base.copy()
            rec["family"] = family
            rec["maintenance_rate"][0, 0] = mmr
            rec["target_rate"][0, 0] = target * mmr
            if family == PolicyFamily.HARD:
                rec["close_factor"], rec["full_close_health"] = 1.0, 1.0
            out.append((f"{label}@{mmr:g}", rec))
    return out


def w3(ctx: Context) -> dict:
    """20 policy variants over one book in one run."""
    book = ctx.book(perps_only=False)
    n, steps = len(book["units"]), len(ctx.prices)
    comp = compile_seconds()
    variants = w3_policies()
    reset_peak_rss()
    t0 = time.perf_counter()
    results = [(name, pol, _engine(ctx, book, pol)()) for name, pol in variants]
    total = time.perf_counter() - t0
    b_best, _, _ = timed(_baseline(ctx, book), ctx.args.repeat)
    checks = {f"reference_twin_sample[{name}]": check_sample(ctx, book, pol, res,
                                                              max(20, ctx.args.sample // 10))
              for name, pol, res in results[:: max(1, len(results) // 4)]}
    per = total / len(variants)
    digest = hashlib.sha256("".join(result_digest(r) for _, _, r in results).encode())
    return {
        "accounts": n, "steps": steps, "policies": len(variants), "compile": comp,
        "digest": digest.hexdigest(),
        "bytes_per_account": ctx.bytes_per_account(False, n),
        "throughput": {"engine": _throughput(n, steps, per),
                       "bruteforce_position_major": _throughput(n, steps, b_best)},
        "total_seconds": total, "seconds_per_policy": per,
        "account_steps_per_second_per_policy": _throughput(n, steps, per),
        "ratio_to_bruteforce_per_policy": b_best / per,
        "peak_rss_mb": peak_rss_mb(), "checks": checks,
    }


def w10m(ctx: Context) -> dict:
    """10,000,000 accounts (``--cli-accounts``), one policy, end to end through ``liqbt run``.

    Reports the wall time and the peak resident memory of the CLI process, also per account
    (``bytes_per_account``: peak RSS / accounts, the interpreter and libraries included).
    """
    out = Path("bench/out")
    out.mkdir(parents=True, exist_ok=True)
    n = int(getattr(ctx.args, "cli_accounts", None) or 10_000_000)
    book_path = out / ("book-10m.parquet" if n == 10_000_000 else f"book-{n}.parquet")
    get_event(ctx.args.event)  # an unknown event fails here, before the book is drawn
    if not book_path.exists():
        # generated in a child process: a child's peak RSS (ru_maxrss) starts from its
        # parent's resident size when it is forked, so this process must stay small
        import json

        spec = json.dumps({"accounts": n, "seed": ctx.args.seed, "event": ctx.args.event,
                           "symbol": ctx.args.symbol, "interval": ctx.args.interval,
                           "tape": str(ctx.args.tape) if ctx.args.tape else None,
                           "path": str(book_path)})
        subprocess.run([sys.executable, "-c", "import sys; from bench.workloads import "
                        "_write_cli_book; _write_cli_book(sys.argv[1])", spec], check=True)
    config = out / "w10m.toml"
    tape_line = f'path = "{ctx.tape.path}"'
    config.write_text(
        f'name = "w10m"\nevent = "{ctx.args.event}"\nbook = "{book_path}"\n'
        f'policies = ["hard"]\n[tape]\n{tape_line}\n[insurance_fund]\ninitial_balance_usd = 5e6\n')
    cmd = [str(Path(sys.executable).parent / "liqbt"), "run", str(config), "--runs",
           str(out / "runs"), "-q"]
    t0 = time.perf_counter()
    import numba

    env = {**os.environ, "NUMBA_NUM_THREADS": str(numba.get_num_threads())}
    returncode, stdout, peak = _run_child(cmd, env)
    wall = time.perf_counter() - t0
    return {
        "accounts": n, "steps": len(ctx.prices), "command": " ".join(cmd),
        "wall_seconds": wall, "peak_rss_mb": peak, "bytes_per_account": peak * 2**20 / n,
        "throughput": {"cli": n * len(ctx.prices) / wall},
        "stdout_tail": stdout.strip().splitlines()[-3:],
        "checks": {"exit_status_0": returncode == 0},
    }


def _write_cli_book(spec: str) -> None:
    """Generate W10M's book (perps and loans) and write it as Parquet (in a child process).

    ``spec`` is JSON: ``accounts``, ``seed``, ``event``, ``symbol``, ``interval``, ``tape``
    (file or null: the store) and ``path``.
    """
    import argparse
    import json

    d = json.loads(spec)
    tape = Context.create(argparse.Namespace(
        event=d["event"], symbol=d["symbol"], interval=d["interval"],
        tape=Path(d["tape"]) if d["tape"] else None)).tape
    a = tape.arrays()
    write_book(generate_book(d["accounts"], a["timestamp"], a["close"], a["low"], a["high"],
                             get_event(d["event"]).start, d["seed"],
                             meta={"symbol": tape.meta.symbol}), d["path"])


def _run_child(cmd: list[str], env: dict) -> tuple[int, str, float]:
    """Run ``cmd``; return its exit status, standard output and its own peak RSS (MB).

    The peak is that child's (``os.wait4``), not the largest of every child this process ran
    (``RUSAGE_CHILDREN`` would also count the book generator and the compile-time children).
    Linux starts a child's peak at this process's resident size when it forks it, so that
    must be below the child's own (the W10M book is generated in another child).
    """
    import tempfile

    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode(errors="replace")
    return proc.returncode, text, usage.ru_maxrss / 1024.0


WORKLOADS: dict[str, Callable[[Context], dict]] = {"W1": w1, "W2": w2, "W3": w3, "W10M": w10m}


def print_result(name: str, res: dict) -> None:
    """Print one pass's headline figures (one line, then one per brute-force kernel)."""
    rate = res.get("account_steps_per_second") or res.get("account_steps_per_second_per_policy")
    ratio = res.get("ratio_to_bruteforce") or res.get("ratio_to_bruteforce_per_policy")
    parts = [f"{name}: {res['accounts']:,} accounts x {res['steps']:,} steps"]
    if "threads" in res:
        parts.append(f"{res['threads']} thread{'s' if res['threads'] > 1 else ''}")
    if rate:
        parts.append(f"{rate:.3g} account-steps/s")
    if ratio and "bruteforce" not in res:
        parts.append(f"{ratio:.2f}x brute force")
    if "wall_seconds" in res:
        parts.append(f"wall {res['wall_seconds']:.1f} s")
    if "compile" in res:
        parts.append(f"compile {res['compile']['engine_seconds']:.2f} s")
    if "bytes_per_account" in res:
        parts.append(f"{res['bytes_per_account']:.0f} bytes/account")
    parts.append(f"peak RSS {res['peak_rss_mb']:.0f} MB")
    failed = [k for k, v in res.get("checks", {}).items() if not v]
    parts.append("checks ok" if not failed else f"FAILED: {failed}")
    print("; ".join(parts))
    if "engine_time_major_seconds" in res:
        tm = res["throughput"]["engine_time_major"]
        print(f"  engine, time-major path: {tm:.3g} account-steps/s, decoupled path "
              f"{res['throughput']['engine'] / tm:.2f}x")
    for kernel, b in res.get("bruteforce", {}).items():
        print(f"  {kernel}: {b['account_steps_per_second']:.3g} account-steps/s, "
              f"engine {b['ratio']:.2f}x")
