"""Random options books, markets and parameters for kernel tests (synthetic, seeded)."""

from __future__ import annotations

import numpy as np

from backtest.kernels.enums import TriggerPrice
from backtest.kernels.options_enums import OPTIONS_PARAMS_DTYPE, SpreadMode
from backtest.options.book import OptionsBookArrays
from backtest.options.simulate import OptionsMarket

T0_MS = 1_667_865_600_000  # 2022-11-08 00:00 UTC
STEP_MS = 300_000
DAY_MS = 86_400_000


def random_market(rng: np.random.Generator, steps: int, n_und: int = 2, drift: float = -0.002,
                  vol: float = 0.01, iv_rise: float = 0.5) -> OptionsMarket:
    """A falling geometric random walk per underlying with wicks, and a rising implied vol."""
    base = np.array([20_000.0, 1_500.0, 30.0])[:n_und]
    close = base * np.exp(np.cumsum(rng.normal(drift, vol, (steps, n_und)), axis=0))
    prev = np.vstack([base, close[:-1]])
    high = np.maximum(prev, close) * np.exp(np.abs(rng.normal(0, vol / 2, (steps, n_und))))
    low = np.minimum(prev, close) * np.exp(-np.abs(rng.normal(0, vol / 2, (steps, n_und))))
    iv0 = rng.uniform(0.4, 0.9, n_und)
    iv = iv0 * np.exp(np.linspace(0, iv_rise, steps))[:, None] * np.exp(
        rng.normal(0, 0.02, (steps, n_und)))
    ts = T0_MS + np.arange(steps, dtype=np.int64) * STEP_MS
    names = ("BTC", "ETH", "SOL")[:n_und]
    return OptionsMarket(ts, STEP_MS // 1000, names, low, high, close, iv)


def random_book(rng: np.random.Generator, n: int, market: OptionsMarket,
                steps: int) -> OptionsBookArrays:
    """Accounts of 1-3 legs (long and short calls and puts) on a few strikes and expiries.

    Some expiries fall inside the run (settlements); cash ranges from thin to generous, and a
    few accounts borrow (negative cash).
    """
    n_und = len(market.underlyings)
    f0 = market.close[0]
    expiries = T0_MS + np.array([steps // 3, steps // 2, 2 * DAY_MS // STEP_MS, 20 * DAY_MS
                                 // STEP_MS, 90 * DAY_MS // STEP_MS]) * STEP_MS + STEP_MS // 2
    inst = [(u, c, f0[u] * m, e) for u in range(n_und) for c in (0, 1)
            for m in (0.8, 0.9, 1.0, 1.1, 1.25) for e in expiries]
    inst_und = np.array([i[0] for i in inst], np.int64)
    inst_call = np.array([i[1] for i in inst], np.int8)
    inst_strike = np.array([i[2] for i in inst])
    inst_expiry = np.array([i[3] for i in inst], np.int64)
    starts = [0]
    leg_inst, leg_qty, cash, und_of = [], [], [], []
    for _ in range(n):
        u = int(rng.integers(0, n_und))
        choices = np.flatnonzero(inst_und == u)
        k = int(rng.integers(1, 4))
        picked = rng.choice(choices, size=k, replace=False)
        qty = rng.lognormal(0, 1, k) * 10_000 / f0[u] * rng.choice([-1.0, -1.0, 1.0], k)
        leg_inst.extend(picked.tolist())
        leg_qty.extend(qty.tolist())
        starts.append(starts[-1] + k)
        und_of.append(u)
        short = -qty[qty < 0].sum() * f0[u]
        cash.append(rng.choice([rng.uniform(0.05, 0.6) * short + rng.uniform(0, 500),
                                -rng.uniform(0, 300), rng.uniform(0, 5_000)],
                               p=[0.8, 0.05, 0.15]))
    return OptionsBookArrays(
        tuple(market.underlyings), np.arange(n, dtype=np.int64), np.array(cash, np.float64),
        np.array(und_of, np.int64), np.array(starts, np.int64), np.array(leg_inst, np.int64),
        np.array(leg_qty, np.float64), inst_und, inst_call, inst_strike, inst_expiry)


def random_params(rng: np.random.Generator, trigger: int | None = None,
                  spread_mode: int | None = None) -> np.ndarray:
    """A valid OPTIONS_PARAMS_DTYPE record with random values."""
    rec = np.zeros(1, OPTIONS_PARAMS_DTYPE)
    rec["trigger"] = int(rng.choice(list(TriggerPrice))) if trigger is None else trigger
    rec["spread_mode"] = (int(rng.choice(list(SpreadMode))) if spread_mode is None
                          else spread_mode)
    rec["spread"] = rng.uniform(0.0, 0.1) if rec["spread_mode"][0] == SpreadMode.VOL_POINTS \
        else rng.uniform(0.0, 0.3)
    rec["penalty_rate"] = rng.uniform(0.0, 0.02)
    rec["keeper_share"] = rng.uniform(0.0, 1.0)
    rec["rate"] = rng.uniform(0.0, 0.05)
    rec["contingency_rate"] = rng.uniform(0.0, 0.02)
    rec["vol_floor"] = rng.uniform(0.01, 0.1)
    rec["vol_shock_power"] = rng.uniform(0.0, 0.5)
    rec["vol_shock_min_days"] = rng.uniform(0.5, 3)
    rec["vol_shock_max_down"] = rng.uniform(0.3, 0.9)
    return rec


def random_grid(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Price shocks (odd count, symmetric) and vol factors."""
    k = int(rng.choice([1, 3, 5, 11]))
    rng_ = rng.uniform(0.05, 0.3)
    return (np.linspace(-rng_, rng_, k) if k > 1 else np.zeros(1),
            np.array([-rng.uniform(0, 0.5), 0.0, rng.uniform(0, 0.8)]))
