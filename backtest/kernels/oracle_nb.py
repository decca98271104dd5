"""Oracle prices seen by a liquidation engine (see :class:`backtest.kernels.enums.OracleModel`).

The oracle decides *when* an account is liquidatable; execution is at the market. All oracles
except MARKET read only closes of earlier steps: the simulated close (historical close times
the cascade price factor) that the kernel has already written to its per-step output.
Chainlink-style feeds follow the deviation-threshold + heartbeat rule of Chainlink Data Feeds
(docs.chain.link, "Data Feeds: deviation threshold and heartbeat").
"""

from __future__ import annotations

from backtest._jit import njit
from backtest.kernels.enums import MarketState, OracleModel, StepMetric

_LAGGED = int(OracleModel.LAGGED)
_TWAP = int(OracleModel.TWAP)
_OSM = int(OracleModel.OSM)
_PRICE_FACTOR = int(StepMetric.PRICE_FACTOR)


@njit
def simulated_close_nb(s, open_, close, step_out):
    """Return the simulated close of step ``s`` (USD); the window's first open for ``s < 0``.

    Parameters
    ----------
    s : int
        Step index (< 0: before the window).
    open_, close : ndarray, shape (T,), float64
        Historical prices, USD per unit.
    step_out : ndarray, shape (T, N_STEP_METRICS), float64
        Kernel output; column ``PRICE_FACTOR`` of step ``s`` is read.

    Returns
    -------
    float
        Simulated close, USD per unit.
    """
    if s < 0:
        return open_[0]
    return close[s] * step_out[s, _PRICE_FACTOR]


@njit
def oracle_price_nb(model, t, open_, close, step_out, state, lag, twap, deviation, heartbeat):
    """Return the oracle price at step ``t`` (USD per unit); updates ``state`` for Chainlink.

    The single-asset kernel's call: :func:`oracle_price_path_nb` on the ``PRICE_FACTOR``
    column of ``step_out``.

    Parameters
    ----------
    model : int
        :class:`OracleModel` other than MARKET.
    t : int
        Current step.
    open_, close : ndarray, shape (T,), float64
        Historical prices.
    step_out : ndarray, shape (T, N_STEP_METRICS)
        Kernel output; the price factors of steps before ``t`` are read.
    state : ndarray, shape (MARKET_STATE_SIZE,), float64
        Market state; Chainlink reads and updates its slots ``ORACLE_PRICE`` and
        ``ORACLE_STEP`` (:class:`MarketState`).
    lag, twap, heartbeat : int
        Steps (>= 1).
    deviation : float
        Fraction.

    Returns
    -------
    float
        Oracle price, USD per unit.
    """
    return oracle_price_path_nb(model, t, open_, close, step_out[:, _PRICE_FACTOR], state, lag,
                                twap, deviation, heartbeat)


@njit
def _simulated_close_path_nb(s, open_, close, factor):
    if s < 0:
        return open_[0]
    return close[s] * factor[s]


@njit
def oracle_price_path_nb(model, t, open_, close, factor, state, lag, twap, deviation,
                         heartbeat):
    """Return the oracle price at step ``t`` from a path of price factors (USD per unit).

    Shared by the single-asset kernel (:func:`oracle_price_nb`) and the portfolio kernel (one
    call per asset, :mod:`backtest.kernels.portfolio_market_nb`). The simulated close of step
    ``s`` is ``close[s] x factor[s]`` (the window's first open for ``s < 0``).

    Parameters
    ----------
    model : int
        :class:`OracleModel` other than MARKET (LAGGED, TWAP, CHAINLINK or OSM).
    t : int
        Current step.
    open_, close : ndarray, shape (T,), float64
        Historical prices, USD per unit.
    factor : ndarray, shape (T,), float64
        Simulated / historical price of each step (cascade feedback; 1 without it); the
        factors of steps before ``t`` are read.
    state : ndarray, shape (MARKET_STATE_SIZE,), float64
        Market state; Chainlink reads and updates its slots ``ORACLE_PRICE`` and
        ``ORACLE_STEP`` (:class:`MarketState`).
    lag, twap, heartbeat : int
        Steps (>= 1); ``lag`` is the OSM's hop.
    deviation : float
        Chainlink deviation threshold, fraction.

    Returns
    -------
    float
        Oracle price, USD per unit.
    """
    if model == _LAGGED:
        return _simulated_close_path_nb(t - lag, open_, close, factor)
    if model == _OSM:  # read at the previous hop boundary, published at this one
        return _simulated_close_path_nb((t // lag) * lag - lag - 1, open_, close, factor)
    if model == _TWAP:
        total = 0.0
        for s in range(t - twap, t):
            total += _simulated_close_path_nb(s, open_, close, factor)
        return total / twap
    latest = _simulated_close_path_nb(t - 1, open_, close, factor)
    published = state[MarketState.ORACLE_PRICE]
    if published <= 0.0 or abs(latest - published) >= deviation * published or (
        t - state[MarketState.ORACLE_STEP] >= heartbeat
    ):
        state[MarketState.ORACLE_PRICE] = latest
        state[MarketState.ORACLE_STEP] = t
    return state[MarketState.ORACLE_PRICE]
