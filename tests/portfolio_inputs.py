"""Random aligned tapes and multi-asset books for portfolio kernel tests."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from backtest.kernels.portfolio_enums import AccountKind
from backtest.portfolio import AssetRisk, PortfolioBook, PortfolioParams
from backtest.tapes.align import AlignedTapes

SYMBOLS = ("LUNA/USDT", "BTC/USDT", "ETH/USDT", "SOL/USDT")
P0 = np.array([80.0, 36000.0, 2700.0, 80.0])


def random_aligned(rng, steps: int = 60, n_assets: int = 4, crash: float = 0.5) -> AlignedTapes:
    """Random-walk candles with a drift down to about ``crash`` of the start; random vols."""
    vol = rng.uniform(0.005, 0.06, n_assets)
    drift = np.log(crash) / steps * rng.uniform(0.3, 1.5, n_assets)
    r = drift + vol * rng.standard_normal((steps, n_assets))
    close = P0[:n_assets] * np.exp(np.cumsum(r, axis=0))
    open_ = np.vstack([P0[:n_assets], close[:-1]])
    span = np.abs(rng.standard_normal((steps, n_assets))) * vol
    high = np.maximum(open_, close) * (1 + span)
    low = np.minimum(open_, close) * (1 - span * rng.uniform(0.5, 2.0, (steps, n_assets)))
    rv = np.abs(vol * 100 + rng.normal(0, 0.3, (steps, n_assets)))
    rv[0, 0] = np.nan
    ts = int(datetime(2022, 5, 7, tzinfo=UTC).timestamp() * 1000) + np.arange(steps) * 3_600_000
    return AlignedTapes(SYMBOLS[:n_assets], 3600, ts, open_, high, low, close,
                        rng.uniform(1, 10, (steps, n_assets)), rv,
                        datetime(2022, 5, 7, tzinfo=UTC), datetime(2022, 5, 8, tzinfo=UTC))


def random_book(rng, n: int = 300, n_assets: int = 4, risk=None) -> PortfolioBook:
    """Accounts of every kind close to their liquidation thresholds."""
    risk = risk if risk is not None else PortfolioParams().asset_risk(SYMBOLS[:n_assets])
    kind = rng.integers(0, 3, n).astype(np.int8)
    offsets = [0]
    assets, units, cash = [], [], np.zeros(n)
    for i in range(n):
        k = 1 if kind[i] == AccountKind.ISOLATED_PERP else int(rng.integers(1, n_assets + 1))
        chosen = rng.choice(n_assets, size=k, replace=False)
        value = rng.lognormal(8, 1, k)
        u = value / P0[chosen]
        if kind[i] == AccountKind.LENDING:
            hf0 = rng.uniform(1.0, 1.6)
            cash[i] = -(value * risk["liquidation_threshold"][chosen]).sum() / hf0
        else:
            u = u * np.where(rng.random(k) < 0.6, 1.0, -1.0)
            h0 = rng.uniform(0.9, 4.0)
            equity = h0 * (risk["maintenance_margin_rate"][chosen] * value).sum()
            cash[i] = equity - (u * P0[chosen]).sum()
        assets.extend(chosen.tolist())
        units.extend(u.tolist())
        offsets.append(offsets[-1] + k)
    return PortfolioBook(SYMBOLS[:n_assets], kind, np.asarray(offsets, np.int64),
                         np.asarray(assets, np.int16), np.asarray(units), cash,
                         np.arange(n, dtype=np.int64)).validate()


def random_params(rng, order: str | None = None, **overrides) -> PortfolioParams:
    """Random policy parameters, with per-asset risk spread out (distinct bonuses)."""
    assets = {}
    for base in ("LUNA", "BTC", "ETH", "SOL"):
        lt = rng.uniform(0.5, 0.85)
        assets[base] = AssetRisk(liquidation_threshold=lt, loan_to_value=lt * 0.9,
                                 liquidation_bonus=rng.uniform(0.0, min(0.15, 1 / lt - 1.001)),
                                 maintenance_margin_rate=rng.uniform(0.01, 0.12),
                                 liquidation_penalty=rng.uniform(0.0, 0.05))
    kw = dict(order=order or rng.choice(["protocol", "least_sensitive", "largest",
                                         "proportional"]),
              trigger=rng.choice(["extreme", "close"]), close_factor=rng.uniform(0.2, 1.0),
              full_close_health_factor=rng.uniform(0.8, 1.0),
              protocol_fee=rng.uniform(0, 0.5), perp_keeper_share=rng.uniform(0, 1),
              target_health=rng.uniform(1.0, 1.5), assets=assets, chunk_size=int(
                  rng.integers(1, 64)))
    kw.update(overrides)
    return PortfolioParams(**kw)
