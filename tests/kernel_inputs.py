"""Random books, tapes and policies for kernel tests (synthetic, seeded)."""

from __future__ import annotations

import numpy as np

from backtest.engine.dispatch import Prices
from backtest.kernels.enums import POLICY_DTYPE, PolicyFamily


def random_prices(rng: np.random.Generator, n_steps: int, vol: float = 0.01,
                  gaps: bool = True) -> Prices:
    """A geometric random walk with intra-candle wicks and (optionally) opening gaps."""
    close = 100.0 * np.exp(np.cumsum(rng.normal(-0.001, vol, n_steps)))
    prev = np.r_[100.0, close[:-1]]
    jump = np.exp(rng.normal(0, vol, n_steps) * (rng.random(n_steps) < 0.1)) if gaps else 1.0
    open_ = prev * jump
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, vol / 2, n_steps)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, vol / 2, n_steps)))
    return Prices(open_, high, low, close)


def random_mark(rng: np.random.Generator, prices: Prices) -> np.ndarray:
    """Mark prices near the candles (an index that wicks less), shape (T, 3): low, high, close."""
    n = len(prices.close)
    close = prices.close * np.exp(rng.normal(0, 0.002, n))
    low = np.minimum(close, prices.low * np.exp(np.abs(rng.normal(0, 0.004, n))))
    high = np.maximum(close, prices.high * np.exp(-np.abs(rng.normal(0, 0.004, n))))
    return np.column_stack([low, high, close])


def random_book(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Perps (long and short) and long loans with leverage 1.1-60x entered near 100."""
    product = rng.integers(0, 2, n).astype(np.int8)
    side = np.where(product == 1, 1, rng.choice([-1, 1], n))
    size = rng.lognormal(0.0, 1.0, n)
    lev = np.where(product == 1, 1.0 / (1.0 - rng.uniform(0.1, 0.8, n)), rng.uniform(1.1, 60, n))
    entry = 100.0 * np.exp(rng.normal(0, 0.03, n))
    units = side * size
    cash = size * entry / lev - units * entry
    return {"product": product, "units": units, "cash": cash}


def random_policy(rng: np.random.Generator, family: int | None = None,
                  slicing: bool = False) -> np.ndarray:
    """A policy record with random but valid parameters (cooldown and order slicing if asked)."""
    rec = np.zeros(1, POLICY_DTYPE)
    rec["family"] = rng.integers(0, 3) if family is None else family
    rec["keeper_share"] = rng.uniform(0, 1)
    rec["close_factor"] = rng.uniform(0.1, 1.0)
    rec["full_close_health"] = rng.uniform(0.5, 1.0)
    lt = rng.uniform(0.6, 0.9)
    bonus = rng.uniform(0.0, min(0.15, 1 / lt - 1 - 1e-3))
    rec["maintenance_rate"] = [rng.uniform(0.002, 0.05), 1 - lt]
    rec["penalty_rate"] = [rng.uniform(0, 0.02), bonus / (1 + bonus)]
    target_perp = rng.choice([np.inf, rng.uniform(1.05, 4.0)]) * rec["maintenance_rate"][0, 0]
    target_loan = 1 - lt / rng.choice([np.inf, rng.uniform(1.01, 1.5)])
    rec["target_rate"] = [target_perp, target_loan]
    if rec["family"][0] == PolicyFamily.HARD:
        rec["close_factor"], rec["full_close_health"] = 1.0, 1.0
    # partial size rules, sometimes on (book notionals are ~10-1000 USD)
    if rng.random() < 0.5:
        rec["full_close_below_usd"] = rng.uniform(0, 50)
        rec["large_position_usd"] = rng.uniform(100, 500)
        rec["large_position_fraction"] = rng.uniform(0.1, 0.5)
        rec["min_remaining_usd"] = rng.uniform(0, 30)
    # graduated tiers: health thresholds falling from 1, fractions rising to 1
    rec["tier_health"] = [1.0, *np.sort(rng.uniform(0.5, 1.0, 3))[::-1]]
    rec["tier_fraction"] = [*np.sort(rng.uniform(0.05, 0.9, 3)), 1.0]
    if slicing:
        rec["cooldown_steps"] = rng.choice([0, 0, 1, 3])
        rec["max_step_volume_fraction"] = rng.choice([0.0, rng.uniform(0.01, 0.5)])
    return rec


def random_auction(rng: np.random.Generator, policy: np.ndarray) -> None:
    """Make ``policy`` a Dutch-auction policy with random curve and parameters (steps)."""
    policy["family"] = 3  # PolicyFamily.AUCTION
    policy["auction_curve"] = rng.integers(0, 3)
    policy["auction_buf"] = rng.uniform(1.0, 1.3)
    policy["auction_tau_steps"] = rng.uniform(5, 60)
    policy["auction_cut"] = rng.uniform(0.8, 0.99)
    policy["auction_step_steps"] = rng.uniform(1, 5)
    policy["auction_tail_steps"] = rng.uniform(5, 40)
    policy["auction_cusp"] = rng.uniform(0.0, 0.6)
    policy["auction_chip"] = rng.uniform(0.0, 0.01)
    policy["auction_tip_usd"] = rng.uniform(0.0, 5.0)
    policy["auction_keeper_margin"] = rng.uniform(0.0, 0.05)
    policy["auction_chost_usd"] = rng.choice([0.0, rng.uniform(1.0, 100.0)])
    policy["auction_keeper_rational"] = rng.integers(0, 2)


def random_bands(rng: np.random.Generator, policy: np.ndarray) -> None:
    """Make ``policy`` a soft-liquidation-bands policy (crvUSD LLAMMA) with random A, N and
    discounts (liquidation_discount below loan_discount, as crvUSD requires)."""
    policy["family"] = PolicyFamily.SOFT_BANDS
    a = rng.integers(10, 200)
    policy["band_ratio"] = (a - 1) / a
    policy["band_count"] = rng.integers(4, 51)
    policy["band_loan_discount"] = rng.uniform(0.05, 0.3)
    policy["maintenance_rate"][0, 1] = rng.uniform(0.01, 0.9) * policy["band_loan_discount"][0]


def random_risk_rules(rng: np.random.Generator, policy: np.ndarray, n_steps: int) -> np.ndarray:
    """Turn on random penalty, seizure and predictive rules in ``policy``; return per-step
    risk inputs (maintenance margin scale in [0.5, 3], predictive shift in [0, 5%])."""
    policy["penalty_model"] = rng.integers(0, 2)
    policy["penalty_cap"] = rng.uniform(0.01, 0.3)
    policy["seize_all_collateral"] = rng.integers(0, 2)
    if rng.random() < 0.7:
        policy["preempt_fraction"] = rng.uniform(0.05, 0.6)
        policy["preempt_penalty"] = rng.uniform(0.0, 0.01)
    risk = np.empty((n_steps, 2))
    risk[:, 0] = rng.uniform(0.5, 3.0, n_steps)
    risk[:, 1] = rng.uniform(0.0, 0.05, n_steps)
    return risk


def random_volume(rng: np.random.Generator, n_steps: int) -> np.ndarray:
    """Traded volume per step, asset units."""
    return rng.uniform(1.0, 100.0, n_steps)


def per_account_flows(book: dict, rec: np.ndarray) -> dict[str, np.ndarray]:
    """Per account, from a run's records: sale ``proceeds``, ``fees`` (keeper + insurance),
    debt ``written_off`` and ``closed`` units (USD and asset units, shape (N,))."""
    out = {k: np.zeros(len(book["units"])) for k in ("proceeds", "fees", "written_off", "closed")}
    np.add.at(out["proceeds"], rec["account"], rec["units_closed"] * rec["fill_price"])
    np.add.at(out["fees"], rec["account"], rec["keeper_fee"] + rec["insurance_fee"])
    np.add.at(out["written_off"], rec["account"], rec["bad_debt"])
    np.add.at(out["closed"], rec["account"], rec["units_closed"])
    return out


def assert_accounts_conserve_money(book: dict, res) -> dict[str, np.ndarray]:
    """Per account: cash change = sale proceeds - fees + debt written off, and the units closed
    are the units the records close. Returns :func:`per_account_flows`."""
    f = per_account_flows(book, res.records)
    scale = np.abs(book["cash"]) + np.abs(f["proceeds"]) + 1.0
    np.testing.assert_allclose((res.cash - book["cash"]) / scale,
                               (f["proceeds"] - f["fees"] + f["written_off"]) / scale, atol=1e-12)
    np.testing.assert_allclose(book["units"] - res.units, f["closed"],
                               atol=1e-12 * np.abs(book["units"]).max())
    return f
