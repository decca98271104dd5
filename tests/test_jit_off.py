"""A tiny end-to-end run with the JIT switched off (``LIQBT_DISABLE_JIT=1``).

Every kernel then runs as plain Python: the switch users turn on to debug a kernel must keep
working, so ``make test`` (and with it ``.ci/run``) runs ``liqbt run`` once that way, in a
subprocess (numba reads the switch once, at its import): a few hundred accounts, six hours of
5-minute candles through a crash, two policies. The run must finish, write its tables, and
conserve money by the same identity as the jitted runs (``tests/test_engine_run.py``). The
portfolio and options kernels run the same way on small random books and must equal their
plain-Python reference twins.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from backtest.books import generate_book, write_book
from backtest.tapes import TapeStore
from tests.test_engine_run import INTERVAL_S, START, crash_rows

ROOT = Path(__file__).resolve().parent.parent
N_ACCOUNTS = 300
POLICIES = ("hard", "partial")
FUND_USD = 1000.0

pytestmark = pytest.mark.jit_off

CHILD = """
import json, sys, numba
from backtest.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "jit_disabled": bool(numba.config.DISABLE_JIT)}))
"""


@pytest.fixture(scope="module")
def jit_off_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("jit_off")
    rows = crash_rows()
    from tests.conftest import Synth

    src = Synth.ft_json(root / "src" / "BTC_USDT-5m.json", rows)
    store = TapeStore(root / "tapes")
    store.import_file(src, venue="binance")
    tape = store.resolve("BTC/USDT", START - timedelta(days=8), START + timedelta(days=1))
    a = tape.arrays()
    book = generate_book(N_ACCOUNTS, a["timestamp"], a["close"], a["low"], a["high"], START,
                         seed=5, meta={"symbol": "BTC/USDT"})
    book_path = write_book(book, root / "book.parquet")
    # the crash's first six hours: the tape's last day starts its 0.1%-per-step slide
    start = START
    end = start + timedelta(seconds=72 * INTERVAL_S)
    config = root / "run.toml"
    config.write_text(f"""
name = "jit-off"
start = {start:%Y-%m-%dT%H:%M:%SZ}
end = {end:%Y-%m-%dT%H:%M:%SZ}
symbol = "BTC/USDT"
book = "{book_path}"
policies = {json.dumps(list(POLICIES))}
[tape]
venue = "binance"
interval = "5m"
[insurance_fund]
initial_balance_usd = {FUND_USD}
""")
    env = dict(os.environ, LIQBT_DISABLE_JIT="1", NUMBA_DISABLE_JIT="1")
    runs = root / "runs"
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, "run", str(config), "--runs", str(runs), "--store",
         str(root / "tapes"), "--quiet"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    seconds = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr[-4000:]
    status = json.loads(proc.stdout.strip().splitlines()[-1])
    run_dirs = [p for p in runs.iterdir() if p.is_dir() and (p / "manifest.json").is_file()]
    return {"status": status, "seconds": seconds, "run_dirs": run_dirs, "start": start}


def test_run_finishes_with_the_jit_off(jit_off_run):
    assert jit_off_run["status"] == {"code": 0, "jit_disabled": True}
    assert len(jit_off_run["run_dirs"]) == 1
    assert jit_off_run["seconds"] < 120, f"took {jit_off_run['seconds']:.0f} s"


def test_jit_off_run_writes_every_policy(jit_off_run):
    run_dir = jit_off_run["run_dirs"][0]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["book"]["accounts"] == N_ACCOUNTS
    assert manifest["window"]["steps"] == 72
    acc = pl.read_parquet(run_dir / "accounts.parquet")
    assert sorted(acc["policy"].unique().to_list()) == sorted(POLICIES)
    assert acc.height == N_ACCOUNTS * len(POLICIES)
    liq = pl.read_parquet(run_dir / "liquidations.parquet")
    assert liq.height > 0, "a 7% slide in six hours liquidates some of 300 accounts"
    start = datetime.fromisoformat(manifest["window"]["start"])
    assert start == jit_off_run["start"].astimezone(UTC)


def test_jit_off_run_conserves_money(jit_off_run):
    """Final equity = held equity + liquidation trades - fees + bad debt - socialised loss."""
    run_dir = jit_off_run["run_dirs"][0]
    acc = pl.read_parquet(run_dir / "accounts.parquet")
    liq = pl.read_parquet(run_dir / "liquidations.parquet")
    prices = pl.read_parquet(run_dir / "prices.parquet")
    steps = pl.read_parquet(run_dir / "steps.parquet")
    p0, p1 = prices["open"][0], prices["close"][-1]
    for policy in POLICIES:
        lq = liq.filter(pl.col("policy") == policy)
        per = lq.group_by("account_id").agg(
            closed=pl.col("units_closed").sum(),
            trade=(pl.col("units_closed") * (pl.col("fill_price") - p1)).sum(),
            fees=(pl.col("keeper_fee_usd") + pl.col("insurance_fee_usd")).sum(),
            bad=pl.col("bad_debt_usd").sum(),
        )
        a = acc.filter(pl.col("policy") == policy).join(per, on="account_id", how="left")
        a = a.fill_null(0.0)
        held = a["initial_equity_usd"] + (a["final_units"] + a["closed"]) * (p1 - p0)
        expected = held + a["trade"] - a["fees"] + a["bad"] - a["socialised_loss_usd"]
        scale = (a["initial_notional_usd"] + 1.0).to_numpy()
        np.testing.assert_allclose((a["final_equity_usd"] / scale).to_numpy(),
                                   (expected / scale).to_numpy(), atol=1e-9)
        s = steps.filter(pl.col("policy") == policy)
        assert s["insurance_draw_usd"].sum() + s["socialised_loss_usd"].sum() == pytest.approx(
            lq["bad_debt_usd"].sum(), rel=1e-9, abs=1e-6)


TWINS = """
import json
import backtest._jit  # configures numba (the JIT switch) before anything imports it
import numba
import numpy as np
from tests.test_options_parity import _case as options_case, _reference as options_reference
from tests.test_portfolio_kernel import _case as portfolio_case, _reference as portfolio_ref
from backtest.options.simulate import run_options
from backtest.portfolio import simulate_portfolio

out = {"jit_disabled": bool(numba.config.DISABLE_JIT)}
case = options_case(0, n=30, steps=20)
res, ref = run_options(*case[:5], case[5], chunk_size=7), options_reference(*case)
out["options_records"] = [int(res.records.size), len(ref.records)]
out["options_liq_step_equal"] = bool(np.array_equal(res.liq_step, ref.liq_step))
out["options_cash_diff"] = float(np.max(np.abs(res.cash - ref.cash)))
aligned, book, params = portfolio_case(0, "protocol", n=40, steps=15)
res, ref = simulate_portfolio(aligned, book, params), portfolio_ref(aligned, book, params)
out["portfolio_records"] = [int(res.records.height), len(ref.records)]
out["portfolio_n_liq_equal"] = bool(np.array_equal(res.n_liquidations, ref.n_liquidations))
out["portfolio_cash_diff"] = float(np.max(np.abs(res.book.cash - ref.cash)))
print(json.dumps(out))
"""


def test_portfolio_and_options_kernels_run_with_the_jit_off():
    """With the JIT off the portfolio and options kernels run as Python and equal their twins."""
    env = dict(os.environ, LIQBT_DISABLE_JIT="1", NUMBA_DISABLE_JIT="1")
    proc = subprocess.run([sys.executable, "-c", TWINS], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["jit_disabled"]
    assert out["options_records"][0] == out["options_records"][1] > 0
    assert out["options_liq_step_equal"] and out["options_cash_diff"] < 1e-6
    assert out["portfolio_records"][0] == out["portfolio_records"][1] > 0
    assert out["portfolio_n_liq_equal"] and out["portfolio_cash_diff"] < 1e-6


ORDER = """
import json, numba
import numpy as np
from backtest.engine.dispatch import ORDER_BUCKETS
from backtest.kernels.liquidation_nb import liquidation_order_nb
rng = np.random.default_rng(3)
n = 400
product = rng.integers(0, 2, n).astype(np.int8)
units = rng.choice([-1.0, 0.0, 1.0], n) * rng.uniform(0.1, 2.0, n)
cash = -units * rng.uniform(50.0, 150.0, n)
order = liquidation_order_nb(product, units, cash, ORDER_BUCKETS)
wide = liquidation_order_nb(product.astype(np.int64), units, cash, ORDER_BUCKETS)
print(json.dumps({"jit_disabled": bool(numba.config.DISABLE_JIT), "order": order.tolist(),
                  "wide": wide.tolist()}))
"""


def test_liquidation_order_takes_int8_codes_with_the_jit_off():
    """The book's int8 product codes go straight in: no ``group x buckets`` overflow."""
    from backtest.engine.dispatch import ORDER_BUCKETS
    from backtest.kernels.liquidation_nb import liquidation_order_nb

    env = dict(os.environ, LIQBT_DISABLE_JIT="1", NUMBA_DISABLE_JIT="1")
    proc = subprocess.run([sys.executable, "-c", ORDER], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["jit_disabled"]
    order = np.array(out["order"])
    assert sorted(order.tolist()) == list(range(400))
    assert out["wide"] == out["order"]
    rng = np.random.default_rng(3)  # the child's book, for the jitted kernel
    product = rng.integers(0, 2, 400).astype(np.int8)
    units = rng.choice([-1.0, 0.0, 1.0], 400) * rng.uniform(0.1, 2.0, 400)
    cash = -units * rng.uniform(50.0, 150.0, 400)
    group = np.where(units == 0.0, 4, np.where(units < 0.0, 2, 0) + product)[order]
    assert (np.diff(group) >= 0).all() and len(set(group.tolist())) == 5
    assert liquidation_order_nb(product, units, cash, ORDER_BUCKETS).tolist() == out["order"]


DECOUPLED_CHILD = """
import json, numba  # numba first, before the package: LIQBT_DISABLE_JIT must still hold
import numpy as np
from backtest.engine.dispatch import simulate
from backtest.kernels.enums import FillPrice, PolicyFamily, TriggerPrice
from tests.kernel_inputs import random_book, random_policy, random_prices
rng = np.random.default_rng(4)
prices, book = random_prices(rng, 60, vol=0.02), random_book(rng, 400)
policy = random_policy(rng, PolicyFamily.HARD)
runs = [simulate(prices, book["product"], book["units"], book["cash"], policy,
                 TriggerPrice.EXTREME, FillPrice.TRIGGER, path=p, chunk_size=16)
        for p in ("decoupled", "time-major")]
same = all(np.array_equal(getattr(runs[0], f), getattr(runs[1], f))
           for f in ("units", "cash", "records", "step_metrics", "n_liquidations"))
print(json.dumps({"jit_disabled": bool(numba.config.DISABLE_JIT), "records": len(runs[0].records),
                  "same": same}))
"""


def test_decoupled_path_runs_with_the_jit_off_when_numba_is_imported_first():
    """Only ``LIQBT_DISABLE_JIT=1`` set and numba imported before the package (as a test module
    does): every kernel runs as plain Python (no half-compiled mix, which failed to type a
    plain-Python kernel called from a compiled one), and the decoupled path (parallel marks,
    walk, settling by blocks of steps) equals the step loop."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_DISABLE_JIT"}
    env["LIQBT_DISABLE_JIT"] = "1"
    proc = subprocess.run([sys.executable, "-c", DECOUPLED_CHILD], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["jit_disabled"] and out["same"] and out["records"] > 0
