"""Time-major brute force with W2's coupling: partial liquidation, fees, fund, impact, cascade.

The baseline benchmark W2 times the engine against (:mod:`bench.workloads`): the engine's rules
for one configuration, written as the plainest loop that can simulate them. Every step tests
every account, twice, in two parallel passes over the whole book (no processing order, no
trigger-key filter, no chunks, no record buffer):

1. decide: an account is liquidatable when ``cash + units x x < m x |units| x x`` at the
   decision price ``x`` (the candle's low for longs and loans, its high for shorts, both times
   the step's price factor); it closes the partial size below at the fill price ``p = x``; the
   step's net flow ``Q`` is the sum of ``-d x p`` (longs, loans: sales) and ``+d x p``
   (shorts: buy-backs);
2. apply: every liquidation decided in pass 1 executes at ``p x E``, ``E`` the square-root
   execution factor of ``Q`` on the step's outstanding displacement
   (:func:`backtest.kernels.impact_nb.execution_factor_nb`); the penalty is split between the
   keeper and the insurance fund, a closed position with negative cash is bad debt;

then the step's move is fixed in the cascade displacement
(:func:`backtest.kernels.impact_nb.displacement_update_nb`) that scales every later candle, and
the insurance fund takes the step's insurance fees and pays its bad debt (what it cannot pay is
socialised: waterfall SOCIALISE).

The rules are those of the engine's PARTIAL family (:func:`backtest.kernels.liquidation_nb.
units_to_close_nb`, Drift's ``calculate_base_asset_amount_to_cover_margin_shortage`` capped by
Aave's close factor; :func:`backtest.kernels.liquidation_nb.apply_liquidation_nb`) restricted to
what W2 uses: a fixed penalty rate per product, no tiers, no size rules, no cooldown, keepers
with no latency, market-price oracle, trigger at the candle extreme, fill at the trigger price,
no funding, no order slicing. Only the impact model's formulas are shared with the engine.

Sums over accounts are parallel reductions, so their order (and their last bits) depends on the
thread count and differs from the engine's chunk order; see :func:`partial_cascade_bruteforce_nb`.
"""

from __future__ import annotations

import numpy as np

from backtest._jit import njit, njit_parallel, prange
from backtest.kernels.enums import MARKET_STATE_SIZE, ImpactModel, MarketState
from backtest.kernels.impact_nb import (
    displacement_factor_nb,
    displacement_update_nb,
    equivalent_flow_nb,
    execution_factor_nb,
)

_SQRT = int(ImpactModel.SQRT)
_LOAN = 1  # backtest.kernels.enums.Product.LOAN
_PRICE_FACTOR = int(MarketState.PRICE_FACTOR)

#: Columns of the per-step output of :func:`partial_cascade_bruteforce_nb`.
STEP_FIELDS = ("price_factor", "execution_factor", "net_flow", "liquidations", "keeper_fees",
               "insurance_fees", "bad_debt", "insurance_fund")
#: Entries of the ``params`` array of :func:`partial_cascade_bruteforce_nb`.
PARAM_FIELDS = ("maintenance_perp", "maintenance_loan", "target_perp", "target_loan",
                "penalty_perp", "penalty_loan", "keeper_share", "close_factor",
                "full_close_health", "permanent_fraction", "transient_decay")


@njit
def partial_size_nb(is_loan, units, cash, price, m, target, penalty, close_factor,
                    full_close_health):
    """Units a partial liquidation at ``price`` closes (W2's rules; unsigned, asset units).

    The least ``d`` restoring ``equity' >= target x |units'| x price`` with ``equity' = equity -
    penalty x d x price``: ``(target x |u| x p - equity) / (p x (target - penalty))``, capped at
    ``close_factor`` of the position (perp) or of the debt (loan), everything at or below
    ``full_close_health``, when equity is not positive, when ``target <= penalty``, or when
    equity cannot pay the penalty. A loan's "everything" is the collateral that repays the
    whole debt, ``-cash / (p x (1 - penalty))``, at most what it holds.

    Parameters
    ----------
    is_loan : bool
    units, cash : float
        Position (asset units) and cash (USD; a loan's debt is ``-cash``).
    price : float
        Fill price, USD per unit.
    m, target, penalty : float
        The product's maintenance rate, target rate and penalty rate (fractions).
    close_factor, full_close_health : float
        Most of the position or debt closed at once; health at or below which all of it.

    Returns
    -------
    float
        Units to close, asset units, ``0 <= d <= |units|``.
    """
    size = abs(units)
    equity = cash + units * price
    full = size
    if is_loan:
        full = min(size, -cash / (price * (1.0 - penalty))) if cash < 0.0 else 0.0
    if equity <= 0.0:
        return full
    if is_loan:
        health = (1.0 - m) * (size * price) / -cash if cash < 0.0 else np.inf
    else:
        health = equity / (m * (size * price))
    cf = 1.0 if health <= full_close_health else close_factor
    cap = cf * size
    if is_loan:
        cap = min(cf * -cash / (price * (1.0 - penalty)), size) if cash < 0.0 else cf * full
    if target > penalty:
        d = (target * size * price - equity) / (price * (target - penalty))
        d = min(max(d, 0.0), cap)
    else:
        d = full
    if equity < penalty * d * price:
        d = full
    return min(d, full)


@njit
def _decide_nb(is_loan, u, c, x_long, x_short, params):
    """Return ``(fill price, units to close)`` of one account; units 0: not liquidatable."""
    if u == 0.0:
        return 0.0, 0.0
    x = x_long if u > 0.0 else x_short
    m = params[1] if is_loan else params[0]
    if not (c + u * x < m * abs(u) * x):
        return 0.0, 0.0
    d = partial_size_nb(is_loan, u, c, x, m, params[3] if is_loan else params[2],
                        params[5] if is_loan else params[4], params[7], params[8])
    return x, max(d, 0.0)


@njit_parallel
def partial_cascade_bruteforce_nb(high, low, depth, product, units, cash, params,
                                  insurance_fund):
    """Simulate W2's partial liquidation with fees, fund, square-root impact and cascade.

    Parameters
    ----------
    high, low : ndarray, shape (T,), float64
        Historical candle highs and lows, USD per unit.
    depth : ndarray, shape (T,), float64
        Flow that moves the price by 1% in each step, USD (> 0).
    product : ndarray, shape (N,), int8
        :class:`backtest.kernels.enums.Product` of each account.
    units, cash : ndarray, shape (N,), float64
        Initial positions (asset units) and cash (USD); not modified.
    params : ndarray, shape (len(PARAM_FIELDS),), float64
        :data:`PARAM_FIELDS`: maintenance, target and penalty rates of perps and loans, the
        keeper's share of the penalty, the close factor, the full-close health, the permanent
        fraction of the impact and the per-step decay of its transient part.
    insurance_fund : float
        Insurance fund before the first step, USD.

    Returns
    -------
    units, cash : ndarray, shape (N,), float64
        Final positions and cash.
    n_liquidations : ndarray, shape (N,), int32
        Liquidations of each account.
    bad_debt : ndarray, shape (N,), float64
        Bad debt each account left, USD.
    steps : ndarray, shape (T, len(STEP_FIELDS)), float64
        Per step (:data:`STEP_FIELDS`): price factor, execution factor, net flow (USD),
        liquidations, keeper fees, insurance fees, bad debt, insurance fund after the step
        (USD).

    Notes
    -----
    The step sums (flow, fees, bad debt) are parallel reductions: their rounding depends on
    the thread count and differs from the engine's, which sums per chunk of its processing
    order. A difference of one unit in the last place of the flow moves the execution and
    price factors by as little, so results agree with the engine to about 1e-12 relative, not
    bit for bit, unless an account's equity lies within that of its maintenance margin.
    """
    n = units.shape[0]
    n_steps = low.shape[0]
    u_out = units.copy()
    c_out = cash.copy()
    n_liq = np.zeros(n, np.int32)
    bad_out = np.zeros(n)
    steps = np.zeros((n_steps, len(STEP_FIELDS)))
    state = np.zeros(MARKET_STATE_SIZE)  # only the displacement slots are used
    keeper_share = params[6]
    fund = insurance_fund
    for t in range(n_steps):
        state[_PRICE_FACTOR] = displacement_factor_nb(state)
        f = state[_PRICE_FACTOR]
        outstanding = equivalent_flow_nb(_SQRT, f, depth[t])
        x_long = low[t] * f
        x_short = high[t] * f
        flow = 0.0
        count = 0
        for i in prange(n):  # pass 1: decide every account, sum the step's net flow
            u = u_out[i]
            p, d = _decide_nb(product[i] == _LOAN, u, c_out[i], x_long, x_short, params)
            if d > 0.0:
                flow += -d * p if u > 0.0 else d * p
                count += 1
        e = execution_factor_nb(_SQRT, flow, depth[t], outstanding)
        keeper_sum = 0.0
        insurance_sum = 0.0
        bad_sum = 0.0
        if count > 0:
            for i in prange(n):  # pass 2: the same decisions, executed at p x E
                is_loan = product[i] == _LOAN
                u = u_out[i]
                c = c_out[i]
                p, d = _decide_nb(is_loan, u, c, x_long, x_short, params)
                if d <= 0.0:
                    continue
                pe = p * e
                penalty = params[5] if is_loan else params[4]
                # a loan whose whole debt this repays, collateral left: the fund's share is
                # paid from cash, so no debt survives
                clears = (is_loan and u > 0.0 and c < 0.0 and d < u
                          and d >= -c / (pe * (1.0 - penalty)))
                signed = d if u > 0.0 else -d
                fee = penalty * d * pe
                keeper = keeper_share * fee
                u2 = 0.0 if d >= abs(u) else u - signed
                c1 = c + signed * pe - keeper
                available = c1 if clears else c1 + u2 * pe
                insurance = min(fee - keeper, max(available, 0.0))
                c2 = c1 - insurance
                bad = 0.0
                if u2 == 0.0 and c2 < 0.0:
                    bad = -c2
                    c2 = 0.0
                u_out[i] = u2
                c_out[i] = c2
                n_liq[i] += 1
                bad_out[i] += bad
                keeper_sum += keeper
                insurance_sum += insurance
                bad_sum += bad
        displacement_update_nb(state, _SQRT, flow, depth[t], params[9], params[10])
        fund = fund + insurance_sum
        fund -= min(fund, bad_sum)  # what the fund cannot pay is socialised
        steps[t, 0] = f
        steps[t, 1] = e
        steps[t, 2] = flow
        steps[t, 3] = count
        steps[t, 4] = keeper_sum
        steps[t, 5] = insurance_sum
        steps[t, 6] = bad_sum
        steps[t, 7] = fund
    return u_out, c_out, n_liq, bad_out, steps


def w2_params(policy: np.ndarray, market: np.ndarray) -> np.ndarray:
    """Pack a PARTIAL policy and a market record into :data:`PARAM_FIELDS` (float64).

    Parameters
    ----------
    policy : ndarray, shape (1,), ``POLICY_DTYPE``
        Family PARTIAL, fixed penalties, no tiers, size rules or cooldown (checked).
    market : ndarray, shape (1,), ``MARKET_DTYPE``
        Square-root impact with cascade feedback (checked).

    Returns
    -------
    ndarray, shape (len(PARAM_FIELDS),), float64
        The ``params`` of :func:`partial_cascade_bruteforce_nb`.

    Raises
    ------
    ValueError
        A setting this baseline does not model.
    """
    from backtest.kernels.enums import PolicyFamily, Waterfall

    p, mk = policy[0], market[0]
    unsupported = {
        "family": p["family"] != PolicyFamily.PARTIAL,
        "penalty_model": p["penalty_model"] != 0,
        "cooldown_steps": p["cooldown_steps"] != 0,
        "size rules": (p["full_close_below_usd"] != 0 or p["large_position_usd"] != 0
                       or p["min_remaining_usd"] != 0 or p["max_calls_per_step"] > 1),
        "max_step_volume_fraction": p["max_step_volume_fraction"] > 0,
        "preempt_fraction": p["preempt_fraction"] > 0,
        "waterfall": p["waterfall"] != Waterfall.SOCIALISE,
        "impact_model": mk["impact_model"] != ImpactModel.SQRT or not mk["cascade"],
        "keepers": (mk["keeper_latency_steps"] != 0 or mk["keeper_requires_profit"] != 0
                    or mk["keeper_capital_usd"] != 0),
        "oracle_model": mk["oracle_model"] != 0,
        "target_rate": not np.all(np.isfinite(p["target_rate"])),
    }
    bad = [k for k, v in unsupported.items() if v]
    if bad:
        raise ValueError(f"the coupled brute force does not model: {', '.join(bad)}")
    return np.array([p["maintenance_rate"][0], p["maintenance_rate"][1], p["target_rate"][0],
                     p["target_rate"][1], p["penalty_rate"][0], p["penalty_rate"][1],
                     p["keeper_share"], p["close_factor"], p["full_close_health"],
                     mk["permanent_fraction"], mk["transient_decay"]], np.float64)
