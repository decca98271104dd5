"""Market impact of liquidation flow, and its feedback on the simulated price path.

Every model is calibrated by one number per step, the depth ``D`` (USD): the net flow that moves
the price by 1%. For a net flow ``Q`` (USD at the decision price; > 0 buys, < 0 sells):

=========  ============================================  =====================================
model      final price move                              average execution price
=========  ============================================  =====================================
LINEAR     ``1% x |Q| / D``                              half the final move (a linear book)
SQRT       ``1% x sqrt(|Q| / D)``                        two thirds of the final move
AMM        ``(x / (x -+ q))^2 - 1``, reserves with 1%    ``x / (x -+ q)``: the pool's average
           depth ``D``: ``y = D / (1/sqrt(0.99) - 1)``   price for ``q = |Q| / p`` units
=========  ============================================  =====================================

The square-root law is the empirical regularity of metaorder impact (Toth et al., "Anomalous
price impact and the critical nature of liquidity in financial markets", PRX 2011); the AMM is
Uniswap v2's ``x * y = k``. Price factors are clipped to [0.05, 20] so that an absurd flow
cannot send a price through zero.

Cascade feedback: the log of each step's final price factor is split into a permanent part
(``permanent_fraction``) and a transient part that decays by ``transient_decay`` per step; the
simulated price of later steps is the historical price times ``exp(permanent + transient)``.
"""

from __future__ import annotations

import numpy as np

from backtest._jit import njit
from backtest.kernels.enums import ImpactModel

_LINEAR = int(ImpactModel.LINEAR)
_SQRT = int(ImpactModel.SQRT)
_AMM = int(ImpactModel.AMM)
#: Reserve of a constant-product pool per USD of 1% depth: 1 / (1 / sqrt(0.99) - 1).
AMM_RESERVE_PER_DEPTH = 1.0 / (1.0 / np.sqrt(0.99) - 1.0)
MIN_FACTOR = 0.05
MAX_FACTOR = 20.0


@njit
def impact_factors_nb(model, flow_usd, price, depth_usd):
    """Return ``(execution factor, final price factor)`` of a step's net liquidation flow.

    Parameters
    ----------
    model : int
        :class:`ImpactModel`.
    flow_usd : float
        Net flow at the decision price, USD (> 0 net buying, < 0 net selling).
    price : float
        Decision price, USD per unit (used by the AMM only).
    depth_usd : float
        Flow that moves the price by 1%, USD; <= 0 or NaN means no impact.

    Returns
    -------
    tuple of float
        Multipliers of the decision price: the average execution price of the step's flow, and
        the price after it.
    """
    if model == 0 or flow_usd == 0.0 or not depth_usd > 0.0:
        return 1.0, 1.0
    s = 1.0 if flow_usd > 0.0 else -1.0
    q = abs(flow_usd) / depth_usd
    if model == _LINEAR:
        move = 0.01 * q
        final = 1.0 + s * move
        execution = 1.0 + s * 0.5 * move
    elif model == _SQRT:
        move = 0.01 * np.sqrt(q)
        final = 1.0 + s * move
        execution = 1.0 + s * move * (2.0 / 3.0)
    else:
        reserve_units = depth_usd * AMM_RESERVE_PER_DEPTH / price
        units = abs(flow_usd) / price
        if s > 0.0:
            units = min(units, 0.95 * reserve_units)
            ratio = reserve_units / (reserve_units - units)
        else:
            ratio = reserve_units / (reserve_units + units)
        final = ratio * ratio
        execution = ratio
    final = min(max(final, MIN_FACTOR), MAX_FACTOR)
    execution = min(max(execution, MIN_FACTOR), MAX_FACTOR)
    return execution, final


@njit
def cascade_update_nb(state, final_factor, permanent_fraction, transient_decay):
    """Advance the cascade state ``[permanent, transient]`` (log price) by one step, in place.

    Returns the price factor of the next step, ``exp(permanent + transient)``.
    """
    log_move = np.log(final_factor)
    state[0] += permanent_fraction * log_move
    state[1] = state[1] * transient_decay + (1.0 - permanent_fraction) * log_move
    return np.exp(state[0] + state[1])
