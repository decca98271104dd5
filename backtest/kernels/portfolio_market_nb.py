"""Per-asset market of the portfolio kernel: impact, cascade feedback and oracle of each asset.

The portfolio kernel (:func:`backtest.kernels.portfolio_nb.run_portfolio_nb`) runs the
single-asset engine's market model once per asset, through the same small kernels (no second
model): :mod:`backtest.kernels.impact_nb` (price factor of a net flow, execution factor, the
permanent / transient displacement of cascade feedback) and :mod:`backtest.kernels.oracle_nb`
(lagged, TWAP and deviation / heartbeat oracles). ``docs/market-impact.md`` states the model,
``docs/portfolios.md`` how the portfolio uses it. Each asset ``a`` carries its own market state
(a row of ``state``, the slots of :class:`backtest.kernels.enums.MarketState`) and its own depth
per step; one ``MARKET_DTYPE`` record holds the model and its parameters for every asset.

A step of asset ``a`` (as in :func:`backtest.kernels.steps_nb.run_steps_nb`):

1. :func:`market_step_begin_nb`: with cascade feedback the displacement left by earlier steps
   gives the price factor ``f_a`` (1 without), read at this step's depth as an outstanding flow;
   the step's candle is the historical one times ``f_a``; the oracle (if any) reads the
   simulated closes of earlier steps.
2. The kernel decides every liquidation at the decision prices and sums the net flow of each
   asset (closing a long or seizing collateral sells, closing a short buys).
3. :func:`execution_factors_nb`: the execution factor of each asset's flow; every liquidation
   of the asset fills at decision price x factor.
4. :func:`market_step_end_nb`: with cascade feedback the step's move is fixed in the asset's
   displacement, which scales the prices (triggers and fills) of later steps.

With ``impact_model = NONE``, no cascade and the MARKET oracle every factor is 1 and the
kernel's prices are the historical candles bit for bit.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from backtest._jit import njit
from backtest.kernels.enums import MARKET_DTYPE, MARKET_STATE_SIZE, MarketState, OracleModel
from backtest.kernels.impact_nb import (
    displacement_factor_nb,
    displacement_update_nb,
    equivalent_flow_nb,
    execution_factor_nb,
)
from backtest.kernels.oracle_nb import oracle_price_path_nb
from backtest.kernels.portfolio_enums import N_ASSET_MARKET_METRICS, AssetMarketMetric
from backtest.kernels.settlement_nb import adl_handoff_nb

_ORACLE_MARKET = int(OracleModel.MARKET)
_PF = int(AssetMarketMetric.PRICE_FACTOR)
_EXEC = int(AssetMarketMetric.EXECUTION_FACTOR)
_FLOW = int(AssetMarketMetric.NET_FLOW)
_ORACLE = int(AssetMarketMetric.ORACLE_PRICE)
_DEPTH = int(AssetMarketMetric.DEPTH)
_BAD_LONG = int(AssetMarketMetric.BAD_DEBT_LONG)
_BAD_SHORT = int(AssetMarketMetric.BAD_DEBT_SHORT)
_UNITS_LONG = int(AssetMarketMetric.BANKRUPT_UNITS_LONG)
_UNITS_SHORT = int(AssetMarketMetric.BANKRUPT_UNITS_SHORT)


class PortfolioMarket(NamedTuple):
    """Per-asset market inputs and state of the portfolio kernel.

    Attributes
    ----------
    open : ndarray, shape (T, A), float64
        Historical opens, USD per unit (the oracles' price before the first step).
    depth : ndarray, shape (T, A), float64
        Flow that moves each asset's price by 1% in each step, USD (NaN or <= 0: no impact).
    market : ndarray, shape (1,), ``MARKET_DTYPE``
        Impact model, permanent fraction, transient decay, cascade flag and oracle parameters,
        shared by every asset (:func:`backtest.engine.dispatch.market_params` packs it).
    state : ndarray, shape (A, MARKET_STATE_SIZE), float64
        Each asset's market state (:class:`MarketState`: displacements, price factor, oracle);
        updated. :func:`new_market_state` makes the initial one.
    out : ndarray, shape (T, A, N_ASSET_MARKET_METRICS), float64
        Per-step, per-asset market metrics (:class:`AssetMarketMetric`); rows written.
    waterfall : int
        :class:`backtest.kernels.enums.Waterfall`: SOCIALISE, or ADL (the perp part of what
        the insurance fund cannot cover is left pending per asset and side in ``state``'s
        ``ADL_*`` slots, ``ADL_STEP`` of row 0 set, for the caller to deleverage).
    """

    open: np.ndarray
    depth: np.ndarray
    market: np.ndarray
    state: np.ndarray
    out: np.ndarray
    waterfall: int


class PortfolioKeepers(NamedTuple):
    """Keepers of the portfolio kernel: latency, profit and capital (``docs/portfolios.md``).

    The single-asset engine's rules (:mod:`backtest.kernels.keepers_nb`), applied per account
    (latency), per liquidation record (gas) and per asset (capital).

    Attributes
    ----------
    latency : int
        Steps between the first step an account is seen liquidatable and its liquidation
        (0: the same step).
    requires_profit : bool
        Keepers liquidate an account only when their fees of its planned liquidation (at the
        decision prices) cover ``gas[t]`` per record plus each record's expected slippage.
    capital_usd : float
        Notional keepers absorb per step and asset, USD at the asset's simulated close (0: no
        limit); liquidations take it account by account in book order.
    gas : ndarray, shape (T,), float64
        Gas of one liquidation record (a ``liquidationCall`` per collateral, a close per
        position) at each step, USD.
    flagged : ndarray, shape (N,) or (0,), int32
        Step each account was first seen liquidatable since its last liquidation (-1: not);
        updated. Unused (may be empty) when ``latency`` is 0.
    """

    latency: int
    requires_profit: bool
    capital_usd: float
    gas: np.ndarray
    flagged: np.ndarray


def no_keepers(n_steps: int) -> PortfolioKeepers:
    """Return keepers that always act at once, for free, without a capital limit.

    Parameters
    ----------
    n_steps : int
        Steps T (the length of the gas array, zeros).

    Returns
    -------
    PortfolioKeepers
    """
    return PortfolioKeepers(0, False, 0.0, np.zeros(n_steps), np.zeros(0, np.int32))


def new_market_state(n_assets: int) -> np.ndarray:
    """Return the initial market state of ``n_assets`` assets.

    No displacement, price factor 1, no oracle publication yet (``ORACLE_STEP = -1``): the
    single-asset engine's initial state, one row per asset.

    Parameters
    ----------
    n_assets : int
        Assets A.

    Returns
    -------
    ndarray, shape (A, MARKET_STATE_SIZE), float64
    """
    state = np.zeros((n_assets, MARKET_STATE_SIZE))
    state[:, MarketState.PRICE_FACTOR] = 1.0
    state[:, MarketState.ORACLE_STEP] = -1.0
    state[:, MarketState.ADL_STEP] = -1.0  # no auto-deleveraging pending
    return state


def no_market(open_: np.ndarray) -> PortfolioMarket:
    """Return the market of a run without impact, cascade or oracle (historical prices).

    Parameters
    ----------
    open_ : ndarray, shape (T, A), float64
        Historical opens, USD per unit.

    Returns
    -------
    PortfolioMarket
        No impact model, no cascade, the MARKET oracle; depth NaN.
    """
    t_steps, n_assets = open_.shape
    return PortfolioMarket(np.ascontiguousarray(open_, dtype=np.float64),
                           np.full((t_steps, n_assets), np.nan), np.zeros(1, MARKET_DTYPE),
                           new_market_state(n_assets),
                           np.zeros((t_steps, n_assets, N_ASSET_MARKET_METRICS)), 0)


@njit
def market_step_begin_nb(t, low, high, close, mkt, outstanding, low_t, high_t, close_t,
                         oracle_t):
    """Open step ``t`` of every asset: its price factor, scaled candle and oracle price.

    Parameters
    ----------
    t : int
        Step.
    low, high, close : ndarray, shape (T, A), float64
        Historical candles, USD per unit.
    mkt : PortfolioMarket
        Per-asset market; ``state``'s price factors and oracle slots and ``out``'s row ``t``
        (price factor, execution factor 1, flow 0, oracle price, depth) are written.
    outstanding : ndarray, shape (A,), float64
        Receives each asset's displacement read as an outstanding flow at this step's depth,
        USD (:func:`backtest.kernels.impact_nb.equivalent_flow_nb`; 0 without cascade).
    low_t, high_t, close_t : ndarray, shape (A,), float64
        Receive the step's simulated candle of each asset (historical x price factor), USD.
    oracle_t : ndarray, shape (A,), float64
        Receives each asset's oracle price (the simulated close with the MARKET oracle), USD.
    """
    mk = mkt.market[0]
    model = mk.impact_model
    cascade = mk.cascade != 0
    oracle = mk.oracle_model
    state = mkt.state
    out = mkt.out
    for a in range(low.shape[1]):
        f = state[a, MarketState.PRICE_FACTOR]
        o = 0.0
        if cascade:
            f = displacement_factor_nb(state[a])
            state[a, MarketState.PRICE_FACTOR] = f
            o = equivalent_flow_nb(model, f, mkt.depth[t, a])
        outstanding[a] = o
        low_t[a] = low[t, a] * f
        high_t[a] = high[t, a] * f
        close_t[a] = close[t, a] * f
        out[t, a, _PF] = f
        out[t, a, _EXEC] = 1.0
        out[t, a, _FLOW] = 0.0
        out[t, a, _DEPTH] = mkt.depth[t, a]
        if oracle == _ORACLE_MARKET:
            oracle_t[a] = close_t[a]
        else:
            oracle_t[a] = oracle_price_path_nb(oracle, t, mkt.open[:, a], close[:, a],
                                               out[:, a, _PF], state[a], mk.oracle_lag_steps,
                                               mk.oracle_twap_steps, mk.oracle_deviation,
                                               mk.oracle_heartbeat_steps)
        out[t, a, _ORACLE] = oracle_t[a]


@njit
def execution_factors_nb(t, flow, mkt, outstanding, exec_f):
    """Write each asset's execution factor of step ``t`` from its net flow.

    Parameters
    ----------
    t : int
        Step.
    flow : ndarray, shape (A,), float64
        Net liquidation flow of each asset at the decision prices, USD (> 0 net buying).
    mkt : PortfolioMarket
        ``out``'s execution factor and flow of row ``t`` are written.
    outstanding : ndarray, shape (A,), float64
        From :func:`market_step_begin_nb`, USD.
    exec_f : ndarray, shape (A,), float64
        Receives fill / decision price of each asset
        (:func:`backtest.kernels.impact_nb.execution_factor_nb`; 1 without impact or flow).
    """
    model = mkt.market[0].impact_model
    for a in range(flow.shape[0]):
        e = execution_factor_nb(model, flow[a], mkt.depth[t, a], outstanding[a])
        exec_f[a] = e
        mkt.out[t, a, _EXEC] = e
        mkt.out[t, a, _FLOW] = flow[a]


@njit
def market_step_end_nb(t, flow, mkt, exec_f):
    """Close step ``t``: remember each asset's slippage; with cascade fix its price move.

    Parameters
    ----------
    t : int
        Step.
    flow : ndarray, shape (A,), float64
        Net liquidation flow of each asset at the decision prices, USD.
    mkt : PortfolioMarket
        ``state`` updated (slippage; displacements with cascade,
        :func:`backtest.kernels.impact_nb.displacement_update_nb`).
    exec_f : ndarray, shape (A,), float64
        From :func:`execution_factors_nb`.
    """
    mk = mkt.market[0]
    for a in range(flow.shape[0]):
        mkt.state[a, MarketState.SLIPPAGE] = abs(1.0 - exec_f[a])
        if mk.cascade != 0:
            displacement_update_nb(mkt.state[a], mk.impact_model, flow[a], mkt.depth[t, a],
                                   mk.permanent_fraction, mk.transient_decay)


@njit
def adl_handoff_step_nb(t, socialised, bad, mkt):
    """Hand the perp part of step ``t``'s uncovered bad debt to auto-deleveraging, per asset.

    :func:`backtest.kernels.settlement_nb.adl_handoff_nb` per asset and side: bankrupt longs
    and shorts of asset ``a`` must be covered by its opposite side in proportion to the bad
    debt they left. The shares are left pending in row ``a`` of ``mkt.state``
    (``ADL_SHORTFALL_*``, ``ADL_UNITS_*``), with ``ADL_STEP = t`` in row 0.

    Parameters
    ----------
    t : int
        Step.
    socialised : float
        Bad debt the insurance fund did not cover in the step, USD (> 0).
    bad : float
        The step's whole bad debt, USD (> 0).
    mkt : PortfolioMarket
        ``out``'s ``BAD_DEBT_*`` and ``BANKRUPT_UNITS_*`` of row ``t`` are read.

    Returns
    -------
    float
        What is left socialised (the lending part), USD; equal to ``socialised`` when no
        perp left bad debt (nothing pending then).
    """
    out = mkt.out
    rest = socialised
    pending = False
    for a in range(out.shape[1]):
        bl = out[t, a, _BAD_LONG]
        bs = out[t, a, _BAD_SHORT]
        if bl + bs <= 0.0:
            continue
        from_longs, from_shorts, _ = adl_handoff_nb(socialised, bad, bl, bs)
        mkt.state[a, MarketState.ADL_SHORTFALL_LONG] = from_longs
        mkt.state[a, MarketState.ADL_UNITS_LONG] = out[t, a, _UNITS_LONG]
        mkt.state[a, MarketState.ADL_SHORTFALL_SHORT] = from_shorts
        mkt.state[a, MarketState.ADL_UNITS_SHORT] = out[t, a, _UNITS_SHORT]
        rest -= from_longs + from_shorts
        pending = True
    if pending:
        mkt.state[0, MarketState.ADL_STEP] = t
    return rest


__all__ = ["PortfolioKeepers", "PortfolioMarket", "adl_handoff_step_nb", "execution_factors_nb",
           "market_step_begin_nb", "market_step_end_nb", "new_market_state", "no_keepers",
           "no_market"]
