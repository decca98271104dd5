"""Named benchmark workloads; each times the engine, a brute-force baseline, and checks both.

W1    hard liquidation only, isolated-margin linear perps, no fees, no impact, fill at the
      trigger price, maintenance margin rate 0.5%, one window of the tape (May 2021: 1,440
      one-minute steps).
W2    the full engine: partial liquidation (strategies/partial.toml) with penalties,
      keeper/insurance split and the insurance fund, square-root market impact and cascade
      feedback, on perps and loans.
W3    20 policy variants (hard and partial, 5 maintenance rates, 2 targets) over one book.
W10M  10,000,000 accounts, one policy, through the CLI (``liqbt run``): wall time and peak
      resident memory of the whole command.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from backtest.books import BookParams, generate_book, read_book, write_book
from backtest.engine.dispatch import Prices, liquidation_order, simulate
from backtest.engine.warmup import warm_up
from backtest.events import get_event
from backtest.kernels.bruteforce_nb import hard_liquidation_bruteforce_nb
from backtest.kernels.enums import POLICY_DTYPE, FillPrice, PolicyFamily, StepMetric, TriggerPrice
from backtest.kernels.reference import simulate_reference
from backtest.policies import load_policy, pack_policy
from backtest.tapes import Tape, TapeStore
from bench.environment import peak_rss_mb

EXTREME, TRIGGER = int(TriggerPrice.EXTREME), int(FillPrice.TRIGGER)


@dataclass
class Context:
    """Inputs shared by the workloads: the tape window, books, arguments."""

    args: object
    tape: Tape
    window: Tape
    prices: Prices
    books: dict = field(default_factory=dict)

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


def timed(fn: Callable, repeat: int) -> tuple[float, float, object]:
    """Run ``fn`` ``repeat`` times; return (best seconds, median seconds, last result)."""
    times, out = [], None
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times), out


def compile_seconds() -> dict:
    """Time the first call of every kernel (compile, or load from numba's cache)."""
    t0 = time.perf_counter()
    hard_liquidation_bruteforce_nb(np.ones(2), np.ones(2), np.ones(2), -np.ones(2) / 2, 0.01)
    brute = time.perf_counter() - t0
    return {"engine_seconds": warm_up(), "bruteforce_seconds": brute}


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


def _engine(ctx, book, policy, market=None, depth=None):
    return lambda: simulate(ctx.prices, book["product"], book["units"], book["cash"], policy,
                            EXTREME, TRIGGER, order=book["order"], market=market, depth=depth)


def _baseline(ctx, book, rate=0.005):
    p = ctx.prices
    return lambda: hard_liquidation_bruteforce_nb(p.low, p.high, book["units"], book["cash"], rate)


def _throughput(n, steps, seconds):
    return n * steps / seconds


def w1(ctx: Context) -> dict:
    """Hard-only perps: engine vs brute force; every account's first step and fill must agree."""
    book = ctx.book(perps_only=True)
    n, steps = len(book["units"]), len(ctx.prices)
    comp = compile_seconds()
    policy = w1_policy()
    e_best, e_med, res = timed(_engine(ctx, book, policy), ctx.args.repeat)
    b_best, b_med, (b_step, b_fill) = timed(_baseline(ctx, book), ctx.args.repeat)
    first_fill = np.full(n, np.nan)
    first_fill[res.records["account"]] = res.records["fill_price"]  # one event per account
    liquidated = b_step >= 0
    checks = {
        "first_step_equals_bruteforce": bool(np.array_equal(res.first_step, b_step)),
        "fill_equals_bruteforce": bool(np.array_equal(first_fill[liquidated], b_fill[liquidated])),
        "reference_twin_sample": check_sample(ctx, book, policy, res, ctx.args.sample),
    }
    return {
        "accounts": n, "steps": steps, "liquidated": int(liquidated.sum()),
        "compile": comp, "book_order_seconds": book["order_seconds"],
        "engine_seconds": {"best": e_best, "median": e_med},
        "bruteforce_seconds": {"best": b_best, "median": b_med},
        "account_steps_per_second": _throughput(n, steps, e_best),
        "bruteforce_account_steps_per_second": _throughput(n, steps, b_best),
        "ratio_to_bruteforce": b_best / e_best,
        "peak_rss_mb": peak_rss_mb(), "checks": checks,
    }


def w2(ctx: Context) -> dict:
    """Partial liquidation with penalties and the insurance fund on perps and loans."""
    book = ctx.book(perps_only=False)
    n, steps = len(book["units"]), len(ctx.prices)
    comp = compile_seconds()
    policy = pack_policy(load_policy("partial"))
    market, depth = ctx.market()
    e_best, e_med, res = timed(_engine(ctx, book, policy, market, depth), ctx.args.repeat)
    b_best, _, _ = timed(_baseline(ctx, book), ctx.args.repeat)
    rec = res.records
    fees = rec["keeper_fee"].sum() + rec["insurance_fee"].sum()
    cash_change = res.cash.sum() - book["cash"].sum()
    proceeds = (rec["units_closed"] * rec["fill_price"]).sum()
    conserved = abs(cash_change - (proceeds - fees + rec["bad_debt"].sum())) <= 1e-9 * (
        abs(proceeds) + abs(book["cash"]).sum())
    return {
        "accounts": n, "steps": steps, "events": int(len(rec)), "compile": comp,
        "engine_seconds": {"best": e_best, "median": e_med},
        "account_steps_per_second": _throughput(n, steps, e_best),
        "ratio_to_bruteforce": b_best / e_best,
        "market": "square-root impact, depth 0.1 x previous hour's USD volume, cascade "
                  "feedback (50% of the flow permanent, 30 min half-life)",
        "impact_cost_usd": float(res.step_metrics[:, StepMetric.IMPACT_COST].sum()),
        "lowest_price_factor": float(res.step_metrics[:, StepMetric.PRICE_FACTOR].min()),
        "peak_rss_mb": peak_rss_mb(),
        "checks": {"reference_twin_sample": check_sample(ctx, book, policy, res, ctx.args.sample),
                   "money_conserved": bool(conserved)},
    }


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
    t0 = time.perf_counter()
    results = [(name, pol, _engine(ctx, book, pol)()) for name, pol in variants]
    total = time.perf_counter() - t0
    b_best, _, _ = timed(_baseline(ctx, book), ctx.args.repeat)
    checks = {f"reference_twin_sample[{name}]": check_sample(ctx, book, pol, res,
                                                              max(20, ctx.args.sample // 10))
              for name, pol, res in results[:: max(1, len(results) // 4)]}
    per = total / len(variants)
    return {
        "accounts": n, "steps": steps, "policies": len(variants), "compile": comp,
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
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    return {
        "accounts": 10_000_000, "steps": len(ctx.prices), "command": " ".join(cmd),
        "wall_seconds": wall, "peak_rss_mb": peak_rss_mb(children=True),
        "stdout_tail": proc.stdout.strip().splitlines()[-3:],
        "checks": {"exit_status_0": proc.returncode == 0},
    }


WORKLOADS: dict[str, Callable[[Context], dict]] = {"W1": w1, "W2": w2, "W3": w3, "W10M": w10m}


def print_result(name: str, res: dict) -> None:
    """Print one workload's headline figures."""
    rate = res.get("account_steps_per_second") or res.get("account_steps_per_second_per_policy")
    ratio = res.get("ratio_to_bruteforce") or res.get("ratio_to_bruteforce_per_policy")
    parts = [f"{name}: {res['accounts']:,} accounts x {res['steps']:,} steps"]
    if rate:
        parts.append(f"{rate:.3g} account-steps/s")
    if ratio:
        parts.append(f"{ratio:.2f}x brute force")
    if "wall_seconds" in res:
        parts.append(f"wall {res['wall_seconds']:.1f} s")
    if "compile" in res:
        parts.append(f"compile {res['compile']['engine_seconds']:.2f} s")
    parts.append(f"peak RSS {res['peak_rss_mb']:.0f} MB")
    failed = [k for k, v in res.get("checks", {}).items() if not v]
    parts.append("checks ok" if not failed else f"FAILED: {failed}")
    print("; ".join(parts))
