"""Liquidation-at-risk of a multi-asset (lending + perp) book, by the portfolio kernel itself.

Multi-asset accounts have no single liquidation price, so the closed form of
:func:`backtest.risk.liquidation_map.liquidation_map` does not apply. Instead, for every
relative price shock ``s`` the book's current state is copied and advanced **one step** by
:func:`backtest.kernels.portfolio_nb.run_portfolio_nb` on a flat candle at ``price x (1 + s)``
for every asset at once (perfect correlation): the accounts that liquidation round would
liquidate, the notional it would close (collateral seized + perp notional) and the bad debt it
would leave, under the run's own parameters and order policy. One round only: a lending
account liquidated at the close factor, still below 1 after it, would be liquidated again at
the next step; the map shows the first round, as the options and single-asset maps do.
``docs/liquidation-at-risk.md`` documents the definitions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from backtest.jit_compat import kernel_records
from backtest.kernels.portfolio_enums import (
    N_ASSET_METRICS,
    N_PORTFOLIO_METRICS,
    PREC_F_FIELDS,
    PREC_I_FIELDS,
    PortfolioMetric,
)
from backtest.kernels.portfolio_market_nb import no_keepers, no_market
from backtest.kernels.portfolio_nb import max_positions_nb, run_portfolio_nb
from backtest.portfolio.model import PortfolioBook, PortfolioParams
from backtest.risk.liquidation_map import LiquidationMap, liquidation_map_frame


def _check(shocks) -> np.ndarray:
    s = np.asarray(shocks, dtype=np.float64).reshape(-1)
    if s.size == 0 or np.any(~np.isfinite(s)) or np.any(s <= -1.0) or np.any(np.diff(s) <= 0):
        raise ValueError("price shocks must be finite, > -1 and strictly increasing")
    return s


def portfolio_liquidation_map(book: PortfolioBook, price, sensitivity, shocks,
                              params: PortfolioParams | None = None) -> LiquidationMap:
    """Liquidation-at-risk of a portfolio book over instantaneous relative price shocks.

    Parameters
    ----------
    book : PortfolioBook
        The book's current state (not modified).
    price : array_like, shape (A,)
        Current price of each of ``book.symbols``, USD per unit.
    sensitivity : array_like, shape (A,)
        What ``least_sensitive`` ranks by at this moment (e.g. the step's trailing realised
        volatility; NaN ranks last).
    shocks : array_like, shape (G,)
        Relative price shocks applied to every asset at once, increasing, each > -1.
    params : PortfolioParams, optional
        Asset parameters and order policy; default :class:`PortfolioParams`.

    Returns
    -------
    LiquidationMap
        ``vol_shocks = [0]``; arrays of shape (G, 1): notional liquidated (collateral seized
        plus perp notional closed, USD, at the shocked prices), bad debt left (USD) and
        accounts liquidated, in one liquidation round.

    Raises
    ------
    ValueError
        Wrong lengths, non-positive prices or invalid shocks.
    """
    params = params or PortfolioParams()
    s = _check(shocks)
    price = np.asarray(price, dtype=np.float64).reshape(-1)
    n_assets = len(book.symbols)
    if price.size != n_assets or np.any(~(price > 0)):
        raise ValueError(f"need one positive price per asset {list(book.symbols)}")
    sens = np.asarray(sensitivity, dtype=np.float64).reshape(1, -1)
    if sens.shape[1] != n_assets:
        raise ValueError(f"need one sensitivity per asset {list(book.symbols)}")
    sens = np.ascontiguousarray(np.where(np.isfinite(sens), sens, np.inf))
    risk = kernel_records(params.asset_risk(book.symbols))
    policy = kernel_records(params.policy_record())
    n = book.n_accounts
    max_pos = int(max_positions_nb(book.offsets))
    cap = 1 << 16
    notional, bad, count = (np.zeros((s.size, 1)) for _ in range(3))
    for g, shock in enumerate(s):
        p = np.ascontiguousarray((price * (1.0 + shock)).reshape(1, -1))
        units, cash = book.pos_units.copy(), book.cash.copy()
        step_out = np.zeros((1, N_PORTFOLIO_METRICS))
        while True:
            rec_len = np.zeros(1, np.int64)
            done = run_portfolio_nb(
                0, 1, p, p, p, sens, risk, policy, book.kind, book.offsets, book.pos_asset,
                units, cash, np.zeros(n, np.int32), np.full(n, -1, np.int32), np.zeros(n),
                np.zeros(n), np.zeros(n), np.zeros(n, np.int8), params.chunk_size, max_pos,
                step_out, np.zeros((1, n_assets, N_ASSET_METRICS)), np.zeros(1), rec_len,
                np.zeros((cap, len(PREC_I_FIELDS)), np.int64),
                np.zeros((cap, len(PREC_F_FIELDS))), no_market(p), no_keepers(1))
            if done == 1:
                break
            cap = max(cap * 2, book.n_positions)  # the step left untouched: room for all
        M = PortfolioMetric
        notional[g, 0] = step_out[0, M.LIQUIDATED_NOTIONAL]
        bad[g, 0] = step_out[0, M.BAD_DEBT]
        count[g, 0] = step_out[0, M.N_LIQUIDATIONS]
    return LiquidationMap(price, s, np.zeros(1), notional, bad, count)


@dataclass
class PortfolioLarRecorder:
    """Collects portfolio liquidation-at-risk snapshots during a portfolio run.

    Pass it as ``on_block`` (with ``every``) to
    :func:`backtest.portfolio.simulate.simulate_portfolio`: before block start ``t`` it maps
    the book at the previous step's close, ranking by the sensitivity known at ``t``.

    Attributes
    ----------
    close : ndarray, shape (T, A), float64
        The run's closes, USD.
    timestamp : ndarray, shape (T,), int64
        Step open times, epoch ms.
    sensitivity : ndarray, shape (T, A), float64
    shocks : ndarray, shape (G,), float64
    params : PortfolioParams
    frames : list of polars.DataFrame
    """

    close: np.ndarray
    timestamp: np.ndarray
    sensitivity: np.ndarray
    shocks: np.ndarray
    params: PortfolioParams = field(default_factory=PortfolioParams)
    frames: list = field(default_factory=list)

    def __call__(self, t: int, state: PortfolioBook) -> None:
        """Take the snapshot before step ``t`` (skipped at ``t = 0``: no close known yet)."""
        if t == 0:
            return
        lar = portfolio_liquidation_map(state, self.close[t - 1], self.sensitivity[t],
                                        self.shocks, self.params)
        self.frames.append(lar.frame(t, int(self.timestamp[t])))

    def frame(self) -> pl.DataFrame:
        """All snapshots as one DataFrame (:func:`liquidation_map_frame`)."""
        return liquidation_map_frame(self.frames)


__all__ = ["PortfolioLarRecorder", "portfolio_liquidation_map"]
