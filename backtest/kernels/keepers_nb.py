"""Keepers (liquidators) as small rules shared by the single-asset and portfolio kernels.

A liquidatable account is liquidated only when a keeper acts. Three rules decide it, the same
in :func:`backtest.kernels.steps_nb.run_steps_nb` (single asset, ``[keepers]`` of the run
config, :class:`backtest.engine.config.KeeperConfig`) and
:func:`backtest.kernels.portfolio_nb.run_portfolio_nb` (``[portfolio.keepers]``,
``docs/portfolios.md``):

- **latency** (:func:`keeper_waits_nb`): an account is first *flagged* at the step it is seen
  liquidatable; keepers act ``latency`` steps later (0: in the same step). The flag is cleared
  by a liquidation.
- **profit** (:func:`keeper_is_paid_nb`): with ``requires_profit`` a keeper acts only when its
  share of the penalty (or bonus) covers the gas of the liquidation (USD, the step's gas price
  x gas used) plus the slippage it expects (the previous step's ``|1 - execution factor|`` x the
  notional it trades).
- **capital** (:func:`capital_budget_units_nb`, :func:`budget_take_nb`): capital-constrained
  keepers absorb at most ``capital_usd`` of notional per step, in units at the step's close;
  decided liquidations take this budget in processing order, each at most what is left, and a
  remainder of at most ``dust`` (:func:`budget_dust_nb`) is rounding, not a liquidation.

Each function is a few float operations, written once so that both kernels evaluate the same
expression in the same order (the single-asset results are bit-identical to those before this
module existed). The reference twins restate the rules on their own
(:mod:`backtest.kernels.reference`, :mod:`backtest.kernels.portfolio_reference`).
"""

from __future__ import annotations

import numpy as np

from backtest._jit import njit

#: A budget remainder at most this fraction of the budget is rounding, not volume.
DUST_FRACTION = 1e-9


@njit
def keeper_waits_nb(latency, flagged_at, t):
    """Return True while no keeper has acted yet on an account liquidatable at step ``t``.

    Parameters
    ----------
    latency : int
        Steps between the first step an account is seen liquidatable and its liquidation.
    flagged_at : int
        Step the account was first seen liquidatable since its last liquidation (-1: none;
        the caller sets it to ``t`` when this returns True).
    t : int
        Current step.

    Returns
    -------
    bool
        ``latency > 0 and (flagged_at < 0 or t < flagged_at + latency)``.
    """
    return latency > 0 and (flagged_at < 0 or t < flagged_at + latency)


@njit
def keeper_is_paid_nb(fee, gas, slippage_cost):
    """Return True when a keeper's fee covers its gas and expected slippage.

    Parameters
    ----------
    fee : float
        The keeper's share of the liquidation's penalty or bonus, USD.
    gas : float
        Gas of the liquidation, USD.
    slippage_cost : float
        Expected slippage, USD: the previous step's ``|1 - execution factor|`` x the notional
        the liquidation trades.

    Returns
    -------
    bool
        ``not (fee < gas + slippage_cost)``.
    """
    return not (fee < gas + slippage_cost)


@njit
def capital_budget_units_nb(capital_usd, price):
    """Return the units keepers' capital absorbs in a step: ``capital_usd / price``.

    Parameters
    ----------
    capital_usd : float
        Notional keepers can absorb per step, USD (> 0; 0 or less: unconstrained).
    price : float
        The step's (simulated) close, USD per unit.

    Returns
    -------
    float
        Units; ``inf`` when ``capital_usd <= 0`` (flash liquidators, no capital needed).
    """
    if capital_usd <= 0.0:
        return np.inf
    return capital_usd / price


@njit
def budget_dust_nb(budget):
    """Return the remainder of a unit budget that counts as rounding: ``1e-9 x budget``.

    Parameters
    ----------
    budget : float
        A step's budget, units (finite).

    Returns
    -------
    float
        ``DUST_FRACTION x budget``, units.
    """
    return DUST_FRACTION * budget


@njit
def budget_take_nb(d, budget, used, dust):
    """Return the units of a decided liquidation ``d`` that a budget still covers (0: none).

    Parameters
    ----------
    d : float
        Units decided (> 0).
    budget, used : float
        The step's budget and the units already taken from it (``budget`` may be ``inf``).
    dust : float
        Remainders of at most this many units are not taken.

    Returns
    -------
    float
        ``d`` with an infinite budget, else ``min(d, budget - used)`` if above ``dust``, else 0.
    """
    if budget == np.inf:
        return d
    take = min(d, budget - used)
    return take if take > dust else 0.0


@njit
def asset_budget_take_nb(d, a, budget, used, dust):
    """Return the units of ``d`` of asset ``a`` that the asset's budget still covers (0: none).

    :func:`budget_take_nb` on per-asset budgets (the portfolio kernel's keepers' capital);
    ``used[a]`` gains what is taken.

    Parameters
    ----------
    d : float
        Units decided (> 0).
    a : int
        Asset index.
    budget, used, dust : ndarray, shape (A,), float64
        Each asset's budget in units (``inf``: no limit), the units already taken (updated) and
        the remainder that counts as rounding.

    Returns
    -------
    float
        ``d`` when ``budget[a]`` is infinite, else :func:`budget_take_nb`'s take.
    """
    if budget[a] == np.inf:
        return d
    take = budget_take_nb(d, budget[a], used[a], dust[a])
    used[a] += take
    return take


__all__ = ["DUST_FRACTION", "asset_budget_take_nb", "budget_dust_nb", "budget_take_nb",
           "capital_budget_units_nb", "keeper_is_paid_nb", "keeper_waits_nb"]
