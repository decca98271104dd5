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
      feedback, on perps and loans. Its baseline is the uncoupled position-major brute force:
      a time-major brute force with the same coupling (partial closes, insurance fund, impact
      and cascade per step) would re-implement most of the engine, so there is none.
W3    20 policy variants (hard and partial, 5 maintenance rates, 2 targets) over one book.
W10M  10,000,000 accounts, one policy, through the CLI (``liqbt run``): wall time and peak
      resident memory of the whole command.

Every pass reports ``throughput`` (account-steps per second per series, for the thread-scaling
curve of :mod:`bench.scaling`), an engine result ``digest`` (equal at every thread count), and
``bytes_per_account``: (peak RSS while the engine runs - RSS before the book was built) /
accounts, the peak being reset (``/proc/self/clear_refs``) once the book is built, so it holds
the book, the engine's working state and its results, not the book generator's temporaries.
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
from backtest.kernels.bruteforce_nb import (
    hard_liquidation_bruteforce_nb,
    hard_liquidation_bruteforce_tile_nb,
    hard_liquidation_bruteforce_time_major_nb,
)
from backtest.kernels.enums import POLICY_DTYPE, FillPrice, PolicyFamily, StepMetric, TriggerPrice
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
        """Return book arrays (cached): the ``--book`` file, or a generated one."""
        if perps_only not in self.books:
            self.rss_before_book[perps_only] = rss_mb()
            if self.args.book:
                b = read_book(self.args.book)
                if perps_only:
                    b.frame = b.frame.filter(b.frame["product"] == "perp")
            else:
                a = self.tape.arrays()
                event = get_event(self.args.event)
                params = BookParams(loan_fraction=0.0) if perps_only else BookParams()
                b = generate_book(self.args.accounts, a["timestamp"], a["close"], a["low"],
                                  a["high"], event.start, self.args.seed, params)
            arrays = b.arrays()
            t0 = time.perf_counter()
            arrays["order"] = liquidation_order(arrays["product"], arrays["units"],
                                                arrays["cash"])
            arrays["order_seconds"] = time.perf_counter() - t0
            self.books[perps_only] = arrays
        return self.books[perps_only]

    def bytes_per_account(self, perps_only: bool, n: int) -> float:
        """(Peak RSS since the last reset - RSS before that book was built) / ``n``, bytes."""
        return (peak_rss_since_reset_mb() - self.rss_before_book[perps_only]) * 2**20 / max(n, 1)


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
    idx = np.sort(np.random.default_rng(0).choice(len(book["units"]), size=min(k, len(book["units"])),
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
    """Hard-only perps: the engine's decoupled path vs its time-major path and three brute-force
    kernels; every first step and fill agree, and both engine paths bit for bit."""
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
    rec = res.records
    fees = rec["keeper_fee"].sum() + rec["insurance_fee"].sum()
    cash_change = res.cash.sum() - book["cash"].sum()
    proceeds = (rec["units_closed"] * rec["fill_price"]).sum()
    conserved = abs(cash_change - (proceeds - fees + rec["bad_debt"].sum())) <= 1e-9 * (
        abs(proceeds) + abs(book["cash"]).sum())
    out.update({
        "events": int(len(rec)),
        "ratio_to_bruteforce": b_best / out["engine_seconds"]["best"],
        "bruteforce_note": "position-major hard-policy brute force, no coupling; a time-major "
                           "brute force with W2's coupling is not built (it would re-implement "
                           "the engine's partial closes, fund and impact)",
        "market": "square-root impact, depth 0.1 x previous hour's USD volume, cascade "
                  "feedback (50% of the flow permanent, 30 min half-life)",
        "impact_cost_usd": float(res.step_metrics[:, StepMetric.IMPACT_COST].sum()),
        "lowest_price_factor": float(res.step_metrics[:, StepMetric.PRICE_FACTOR].min()),
        "peak_rss_mb": peak_rss_mb(),
        "checks": {"reference_twin_sample": check_sample(ctx, book, policy, res, ctx.args.sample),
                   "money_conserved": bool(conserved)},
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
    """10,000,000 accounts, one policy, end to end through ``liqbt run``."""
    out = Path("bench/out")
    out.mkdir(parents=True, exist_ok=True)
    book_path = out / "book-10m.parquet"
    event = get_event(ctx.args.event)
    if not book_path.exists():
        a = ctx.tape.arrays()
        write_book(generate_book(10_000_000, a["timestamp"], a["close"], a["low"], a["high"],
                                 event.start, ctx.args.seed, meta={"symbol": ctx.tape.meta.symbol}),
                   book_path)
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
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    wall = time.perf_counter() - t0
    return {
        "accounts": 10_000_000, "steps": len(ctx.prices), "command": " ".join(cmd),
        "wall_seconds": wall, "peak_rss_mb": peak_rss_mb(children=True),
        "throughput": {"cli": 10_000_000 * len(ctx.prices) / wall},
        "stdout_tail": proc.stdout.strip().splitlines()[-3:],
        "checks": {"exit_status_0": proc.returncode == 0},
    }


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
