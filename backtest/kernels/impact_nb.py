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

Cascade feedback: displacement fixed in price
---------------------------------------------
The market's memory of liquidation flow is a price displacement, not a flow: two log
displacements, permanent ``L_p`` and transient ``L_tr`` (the first two slots of the market state,
:class:`backtest.kernels.enums.MarketState`), and the simulated
price of a step is the historical one times ``f = exp(L_p + L_tr)`` (clipped as above). When a
step's flow ``Q`` arrives, each part is read as an outstanding flow at THAT step's depth
(:func:`equivalent_flow_nb`): with ``phi = permanent_fraction``, ``a_p = F^-1(exp(L_p / phi))``
and ``a_tr = F^-1(exp(L_tr / (1 - phi)))``; the flow moves each, ``L_p += phi (ln F(a_p + Q) -
ln F(a_p))`` and ``L_tr += (1 - phi) (ln F(a_tr + Q) - ln F(a_tr))``, and ``L_tr`` decays by
``transient_decay`` per step (the half-life). ``L_p`` changes only when a flow arrives, so a
later change of depth never changes a past displacement: once liquidations stop the price
converges to ``exp(L_p)`` x history and stays there (the earlier model kept flows and re-scaled
them by each later step's depth, so a price kept sinking when depth fell after the
liquidations). Reading each part as an outstanding flow keeps the metaorder's concavity: at
constant depth, same-sign flows in consecutive steps move the price as their sum would,
``F(Q1 + Q2)``, not ``F(Q1) F(Q2)``, and the permanent part is ``phi ln F`` of the flows' sum,
so flows that net to zero leave none. (Reading both parts as one outstanding flow, as this model
did first, did not: the transient part's decay shrank the flow a later opposite flow was netted
against, so a round trip left a permanent displacement.)
This is permanent plus temporary impact (Almgren and Chriss, "Optimal execution of portfolio
transactions", 2000) with an exponentially decaying transient kernel, a propagator model
(Bouchaud et al., "Fluctuations and response in financial markets: the subtle nature of
random price changes", Quantitative Finance 2004). Without cascade feedback every step starts
from ``a = 0`` and the price path is the historical one.

Counterfactual flow
-------------------
The historical tape already carries the impact of the liquidations that really happened. With a
counterfactual run (``[market] counterfactual``, :mod:`backtest.engine.run`) the flow ``Q`` of
every formula above is the policy's net flow minus the net flow of the policy that really ran
(the as-happened policy, simulated first without impact), step by step: the as-happened policy
moves nothing and reproduces the historical path exactly; a policy that liquidates less than it
pushes the price above history (``Q > 0``), one that liquidates more pushes it below.
"""

from __future__ import annotations

import numpy as np

from backtest._jit import njit
from backtest.kernels.enums import ImpactModel, MarketState

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
def equivalent_flow_nb(model, factor, depth_usd):
    """Return the outstanding flow whose price factor at ``depth_usd`` is ``factor``: ``F^-1``.

    Parameters
    ----------
    model : int
        :class:`ImpactModel`.
    factor : float
        Current price factor (simulated / historical price), in [0.05, 20].
    depth_usd : float
        This step's depth, USD; <= 0 or NaN means no impact (returns 0).

    Returns
    -------
    float
        Net flow, USD (> 0 net buying): ``100 (f - 1) D`` (LINEAR), ``sign(f - 1)
        (100 (f - 1))^2 D`` (SQRT), ``R (1 - 1 / sqrt(f)) D`` (AMM).
    """
    if model == 0 or factor == 1.0 or not depth_usd > 0.0:
        return 0.0
    if model == _LINEAR:
        return 100.0 * (factor - 1.0) * depth_usd
    if model == _SQRT:
        x = 100.0 * (factor - 1.0)
        return (x * x if x > 0.0 else -x * x) * depth_usd
    return AMM_RESERVE_PER_DEPTH * (1.0 - 1.0 / np.sqrt(factor)) * depth_usd


@njit
def displacement_factor_nb(state):
    """Return the price factor of the displacement in ``state`` (log permanent, transient).

    Parameters
    ----------
    state : ndarray, shape (MARKET_STATE_SIZE,), float64
        Market state; its slots ``DISPLACEMENT_PERMANENT`` and ``DISPLACEMENT_TRANSIENT``
        (:class:`MarketState`) are read.

    Returns
    -------
    float
        Price factor (dimensionless, > 0), clipped like every impact factor.
    """
    return _clip(np.exp(state[MarketState.DISPLACEMENT_PERMANENT]
                        + state[MarketState.DISPLACEMENT_TRANSIENT]))


@njit
def _part_move_nb(model, log_part, share, flow_usd, depth_usd):
    """Return the log move of one part (permanent or transient) of the displacement.

    The part is read as the outstanding flow ``F^-1(exp(log_part / share))`` at this depth and
    moved by ``share x`` the flow's log move from there (0 for a part of share 0).
    """
    if share <= 0.0:
        return 0.0
    a = equivalent_flow_nb(model, np.exp(log_part / share), depth_usd)
    return share * (np.log(price_factor_nb(model, a + flow_usd, depth_usd))
                    - np.log(price_factor_nb(model, a, depth_usd)))


@njit
def displacement_update_nb(state, model, flow_usd, depth_usd, permanent_fraction,
                           transient_decay):
    """Fix a step's price move in the displacement in ``state`` (module docstring).

    Each part moves from its own outstanding flow: the permanent part ``L_p`` is read as
    ``a_p = F^-1(exp(L_p / phi))`` at this step's depth and moves by ``phi (ln F(a_p + Q) -
    ln F(a_p))``, the transient part likewise with ``1 - phi`` (then decays). At constant depth
    the permanent part is therefore ``phi ln F(sum of the flows)``: flows that net to zero leave
    no permanent displacement, however far apart in time (reading both parts as one outstanding
    flow, as before, left one: +$4.6B then -$4.6B a step later at $100M of 1% depth ended the
    price 0.95% below history, 1.5% with six steps between them).

    Parameters
    ----------
    state : ndarray, shape (MARKET_STATE_SIZE,), float64
        Market state; its slots ``DISPLACEMENT_PERMANENT`` and ``DISPLACEMENT_TRANSIENT``
        (:class:`MarketState`) are updated.
    model : int
        :class:`ImpactModel`.
    flow_usd : float
        The step's net flow that moves the market, USD (counterfactual: the policy's minus the
        as-happened flow).
    depth_usd : float
        The step's depth, USD.
    permanent_fraction : float
        Share (0..1) of the move that never decays.
    transient_decay : float
        Per-step multiplier of the earlier transient displacement (applied before this step's
        move is added).
    """
    permanent = state[MarketState.DISPLACEMENT_PERMANENT]
    transient = state[MarketState.DISPLACEMENT_TRANSIENT]
    move_p = move_tr = 0.0
    if model != 0 and flow_usd != 0.0 and depth_usd > 0.0:
        move_p = _part_move_nb(model, permanent, permanent_fraction, flow_usd, depth_usd)
        move_tr = _part_move_nb(model, transient, 1.0 - permanent_fraction, flow_usd, depth_usd)
    state[MarketState.DISPLACEMENT_PERMANENT] = permanent + move_p
    state[MarketState.DISPLACEMENT_TRANSIENT] = transient * transient_decay + move_tr
