"""Market impact of liquidation flow, and its feedback on the simulated price path.

Every model is calibrated by one number per step, the depth ``D`` (USD): the net flow that moves
the price by 1%. The price displacement caused by an outstanding net flow ``W`` (USD at the
decision prices; > 0 net buying, < 0 net selling), with ``q = W / D``, is the factor ``F(W)``:

=========  =====================================================================
model      price factor ``F(W)``
=========  =====================================================================
LINEAR     ``1 + 1% x q``
SQRT       ``1 + sign(q) x 1% x sqrt(|q|)``
AMM        ``(R / (R - q))^2`` with ``R = 1 / (1/sqrt(0.99) - 1)``: a constant-product
           pool whose reserves give 1% depth ``D`` (buying ``q x D`` USD takes units out)
=========  =====================================================================

A step's flow ``Q`` moves the outstanding flow from ``a`` to ``b = a + Q``; its liquidations
execute at the average of ``F`` over ``[a, b]`` relative to ``F(a)`` (the decision price
already carries ``F(a)``). With ``a = 0`` this is half the final move for LINEAR, two thirds
for SQRT, and the pool's average price ``R / (R - q)`` for AMM.

The square-root law is the empirical regularity of metaorder impact (Toth et al., "Anomalous
price impact and the critical nature of liquidity in financial markets", PRX 2011); the AMM is
Uniswap v2's ``x * y = k``. Factors are clipped to [0.05, 20] so that an absurd flow cannot
send a price through zero.

Cascade feedback: the outstanding flow is the memory of the liquidation flow that the market has
not yet absorbed. Each step's flow adds ``permanent_fraction x Q`` to a permanent part and the
rest to a transient part that decays by ``transient_decay`` per step; later steps' prices are the
historical ones times ``F(permanent + transient)``. Because ``F`` is concave for SQRT (and the
impact of a flow is measured on the accumulated flow, not step by step), selling a volume in
slices lowers the peak displacement (the transient part decays between slices) while the
permanent displacement depends only on the total volume: a propagator model with an
exponential kernel (Bouchaud et al., "Fluctuations and response in financial markets", 2004)
in the form of Almgren and Chriss (2000), permanent plus temporary impact. Without cascade
feedback every step starts from ``a = 0``.
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
#: Most of an AMM pool's reserve that net buying can take, fraction.
AMM_MAX_TAKE = 0.95


@njit
def _clip(f):
    return min(max(f, MIN_FACTOR), MAX_FACTOR)


@njit
def _amm_q(q):
    return min(q, AMM_MAX_TAKE * AMM_RESERVE_PER_DEPTH)


@njit
def price_factor_nb(model, outstanding_usd, depth_usd):
    """Return ``F(W)``: the price factor of an outstanding net flow (module docstring).

    Parameters
    ----------
    model : int
        :class:`ImpactModel`.
    outstanding_usd : float
        Net flow not yet absorbed, USD (> 0 net buying).
    depth_usd : float
        Flow that moves the price by 1%, USD; <= 0 or NaN means no impact (factor 1).

    Returns
    -------
    float
        Multiplier of the historical price, in [0.05, 20].
    """
    if model == 0 or outstanding_usd == 0.0 or not depth_usd > 0.0:
        return 1.0
    q = outstanding_usd / depth_usd
    if model == _LINEAR:
        f = 1.0 + 0.01 * q
    elif model == _SQRT:
        f = 1.0 + 0.01 * np.sqrt(q) if q > 0.0 else 1.0 - 0.01 * np.sqrt(-q)
    else:
        r = AMM_RESERVE_PER_DEPTH
        ratio = r / (r - _amm_q(q))
        f = ratio * ratio
    return _clip(f)


@njit
def _mean_signed_sqrt_nb(qa, qb):
    """Mean of ``sign(q) sqrt(|q|)`` over ``[qa, qb]`` (``qa != qb``).

    The antiderivative is ``(2/3) |q|^1.5``; on one side of zero the difference quotient is
    rewritten as ``(2/3) (|a| + sqrt(|a b|) + |b|) / (sqrt|a| + sqrt|b|)`` so that a small flow on
    a large outstanding flow loses no precision to cancellation.
    """
    if qa * qb >= 0.0:
        a = abs(qa)
        b = abs(qb)
        m = (2.0 / 3.0) * (a + np.sqrt(a * b) + b) / (np.sqrt(a) + np.sqrt(b))
        return m if qa + qb > 0.0 else -m
    ga = abs(qa) * np.sqrt(abs(qa))
    gb = abs(qb) * np.sqrt(abs(qb))
    return (2.0 / 3.0) * (gb - ga) / (qb - qa)


@njit
def _mean_factor_nb(model, qa, qb):
    """Mean of the unclipped ``F`` over ``q`` in ``[qa, qb]`` (``qa != qb``)."""
    if model == _LINEAR:
        return 1.0 + 0.005 * (qa + qb)
    if model == _SQRT:
        return 1.0 + 0.01 * _mean_signed_sqrt_nb(qa, qb)
    r = AMM_RESERVE_PER_DEPTH
    qa = _amm_q(qa)
    qb = _amm_q(qb)
    if qa == qb:
        ratio = r / (r - qa)
        return ratio * ratio
    return r * r / ((r - qa) * (r - qb))


@njit
def execution_factor_nb(model, flow_usd, depth_usd, outstanding_usd):
    """Return the execution factor of a step's net liquidation flow.

    Parameters
    ----------
    model : int
        :class:`ImpactModel`.
    flow_usd : float
        Net flow of the step at the decision price, USD (> 0 net buying, < 0 net selling).
    depth_usd : float
        Flow that moves the price by 1%, USD; <= 0 or NaN means no impact.
    outstanding_usd : float
        Outstanding flow before the step, USD (0 without cascade feedback).

    Returns
    -------
    float
        Multiplier of the decision price: the average execution price of the step's flow, in
        [0.05, 20].
    """
    if model == 0 or flow_usd == 0.0 or not depth_usd > 0.0:
        return 1.0
    qa = outstanding_usd / depth_usd
    qb = (outstanding_usd + flow_usd) / depth_usd
    if qa == qb:
        return 1.0
    return _clip(_mean_factor_nb(model, qa, qb) / price_factor_nb(model, outstanding_usd,
                                                                   depth_usd))


@njit
def cascade_update_nb(state, flow_usd, permanent_fraction, transient_decay):
    """Add a step's net flow to the outstanding flow ``state[0:2]`` (permanent, transient USD).

    The transient part decays by ``transient_decay`` per step before the new flow is added.
    """
    state[0] += permanent_fraction * flow_usd
    state[1] = state[1] * transient_decay + (1.0 - permanent_fraction) * flow_usd
