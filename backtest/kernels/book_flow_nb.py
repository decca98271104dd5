"""Books that move during the window: positions that open or close, and traders who cure.

Three mechanisms act at the start of every step, in this order, before the step's funding and
liquidations:

**Arrivals.** An account whose position opens during the window (its ``entry_time`` in the book
falls inside the window) holds nothing until its arrival step, then opens with the units and
cash the book gives it: ``cash = margin - units x entry_price``. The margin (its equity at the
entry price) is new money entering the book; the units were bought from (or, for a short, sold
to) the market at the historical entry price, which already carries that order.

**Voluntary closes.** An account the book marks as closing during the window (its
``exit_time``, drawn by the generator's ``close_share``) closes its whole position at the
start of its close step, at the price the traders observe (the previous step's simulated
close): ``cash += units x price``, ``units = 0``. Its equity stays in the account (it is the
trader's money; no money leaves the book): the position was sold to (or, for a short, bought
from) the market at the observed price, which already carries that order, as arrivals do. An
account liquidated to nothing (or closed) before its close step is skipped.

**Response.** Real borrowers and traders watch their health: an account whose health, at the
previous step's simulated close, falls below ``warning_health`` enters a warning zone; if it is
a *responder* and is still in the zone ``delay_steps`` later, it cures to ``target_health`` at
that price: a perp adds margin (cash), a loan repays debt. The cure is new money entering the
account (``deposited``). An account leaving the zone before the delay resets its clock.
Non-responders never act. Which accounts respond is fixed per account by a seeded hash
(:func:`responder_mask`), so the same seed gives the same responders whatever the thread count.

The two-parameter borrower response of the Morpho simulator (70% of borrowers repay to 74% LTV
about 2 h after entering an 80-86% LTV warning zone; https://github.com/RahilBhavan/spine,
WRITEUP.md) is this model with ``share = 0.7``, a two-hour delay and health levels derived from
those LTVs.

Health is the engine's (:func:`backtest.kernels.liquidation_nb.health_nb`) at the policy's base
maintenance rates: perps ``equity / (m x |units| x price)``, loans ``LT x collateral / debt``.

Per-step outputs (``FLOW_FIELDS``, shape (T, N_FLOW_FIELDS), float64): arrivals (count), the
units and cash they bring (per product and side) and their margin (USD); cures (count) and the
USD they bring per product; voluntary closes (count), the units they remove (per product and
side, signed as the positions were), the cash they bring (the sale proceeds, per product) and
their notional (USD). Serial loops: independent of the thread count.
"""

from __future__ import annotations

import numpy as np

from backtest._jit import njit
from backtest.kernels.enums import Product
from backtest.kernels.liquidation_nb import health_nb, trigger_key_nb

#: Columns of the per-step book-flow array, in this order.
FLOW_FIELDS = (
    "arrivals",  # accounts that opened in the step
    "arrival_units_long",  # perp long units opened
    "arrival_units_short",  # perp short units opened (negative)
    "arrival_units_loan",  # loan collateral units opened
    "arrival_cash_perp",  # cash the perp arrivals start with, USD
    "arrival_cash_loan",  # cash the loan arrivals start with (minus their debt), USD
    "arrival_margin_usd",  # equity the arrivals deposited, USD (new money)
    "cures",  # accounts that cured
    "cure_perp_usd",  # margin added by perps that cured, USD (new money)
    "cure_loan_usd",  # debt repaid by loans that cured, USD (new money)
    "closes",  # accounts that closed their position voluntarily in the step
    "close_units_long",  # perp long units closed (positive)
    "close_units_short",  # perp short units closed (negative, as held)
    "close_units_loan",  # loan collateral units sold
    "close_cash_perp",  # cash the perp closes add (units x price), USD
    "close_cash_loan",  # cash the loan closes add (collateral sold), USD
    "closed_notional_usd",  # |units| x price of the closed positions, USD
)
N_FLOW_FIELDS = len(FLOW_FIELDS)
_PERP = int(Product.PERP)
_LOAN = int(Product.LOAN)


@njit
def open_arrivals_nb(t, arrival_ptr, arrival_idx, arrival_units, arrival_cash, arrival_margin,
                     product, units, cash, key, m_rate, deposited, out):
    """Open the positions arriving at step ``t``, in place.

    Parameters
    ----------
    t : int
        Step index.
    arrival_ptr : ndarray, shape (T + 1,), int64
        Arrivals of step ``t`` are ``arrival_idx[arrival_ptr[t]:arrival_ptr[t + 1]]``.
    arrival_idx : ndarray, shape (A,), int64
        Account indices (the kernel's processing order), grouped by arrival step.
    arrival_units, arrival_cash, arrival_margin : ndarray, shape (N,), float64
        State each account opens with (asset units, USD) and its margin (USD); read only for
        arriving accounts.
    product : ndarray, shape (N,), int8
    units, cash, key : ndarray, shape (N,), float64
        Account state; the arrivals' entries are set.
    m_rate : ndarray, shape (2,), float64
        Base maintenance rates per product (trigger keys).
    deposited : ndarray, shape (N,), float64
        New money each account brought in, USD; updated.
    out : ndarray, shape (N_FLOW_FIELDS,), float64
        This step's row of the book-flow array; updated.
    """
    for j in range(arrival_ptr[t], arrival_ptr[t + 1]):
        i = arrival_idx[j]
        u = arrival_units[i]
        c = arrival_cash[i]
        units[i] = u
        cash[i] = c
        key[i] = trigger_key_nb(u, c, m_rate[product[i]])
        deposited[i] += arrival_margin[i]
        out[0] += 1.0
        if product[i] == _LOAN:
            out[3] += u
            out[5] += c
        else:
            if u > 0.0:
                out[1] += u
            else:
                out[2] += u
            out[4] += c
        out[6] += arrival_margin[i]


@njit
def close_positions_nb(t, price, close_ptr, close_idx, product, units, cash, key, m_rate,
                       closed_step, out):
    """Close, in full, the positions whose traders close them at step ``t``, in place.

    Each account ``i`` in ``close_idx[close_ptr[t]:close_ptr[t + 1]]`` that still holds a
    position sells it to the market at ``price``: ``cash[i] += units[i] x price``,
    ``units[i] = 0``. Its equity at ``price`` is unchanged and stays in the account (no money
    leaves the book). Accounts already at zero units (liquidated in full) are skipped.

    Parameters
    ----------
    t : int
        Step index (the close happens at its start).
    price : float
        Price the traders observe: the previous step's simulated close (the first open at
        step 0), USD per unit.
    close_ptr : ndarray, shape (T + 1,), int64
        Closes of step ``t`` are ``close_idx[close_ptr[t]:close_ptr[t + 1]]``.
    close_idx : ndarray, shape (C,), int64
        Account indices (the kernel's processing order), grouped by close step.
    product : ndarray, shape (N,), int8
    units, cash, key : ndarray, shape (N,), float64
        Account state; the closed accounts' entries are set.
    m_rate : ndarray, shape (2,), float64
        Base maintenance rates per product (trigger keys).
    closed_step : ndarray, shape (N,), int32
        Step each account closed at (-1: did not close); updated.
    out : ndarray, shape (N_FLOW_FIELDS,), float64
        This step's row of the book-flow array; updated.
    """
    for j in range(close_ptr[t], close_ptr[t + 1]):
        i = close_idx[j]
        u = units[i]
        if u == 0.0:
            continue
        value = u * price
        cash[i] += value
        units[i] = 0.0
        key[i] = trigger_key_nb(0.0, cash[i], m_rate[product[i]])
        closed_step[i] = t
        out[10] += 1.0
        if product[i] == _LOAN:
            out[13] += u
            out[15] += value
        else:
            if u > 0.0:
                out[11] += u
            else:
                out[12] += u
            out[14] += value
        out[16] += abs(value)


@njit
def cure_amount_nb(product, units, cash, price, m, target_health):
    """Return the USD an account must bring to reach ``target_health`` at ``price`` (>= 0).

    Perps add margin: ``target x m x |units| x price - equity``. Loans repay debt down to
    ``LT x collateral / target`` (LT = 1 - m), at most the whole debt.

    Parameters
    ----------
    product : int
        :class:`backtest.kernels.enums.Product` of the account.
    units : float
        Position, asset units.
    cash : float
        Cash, USD (negative: debt).
    price : float
        Price the account observes, USD per unit.
    m : float
        Maintenance rate of the product, fraction.
    target_health : float
        Health to reach (dimensionless, > 1).

    Returns
    -------
    float
        USD to bring (margin added or debt repaid), >= 0.
    """
    if product == _LOAN:
        debt = -cash
        if debt <= 0.0 or units <= 0.0:
            return 0.0
        need = debt - (1.0 - m) * units * price / target_health
        return min(max(need, 0.0), debt)
    need = target_health * m * abs(units) * price - (cash + units * price)
    return max(need, 0.0)


@njit
def respond_nb(t, price, responders, product, units, cash, key, m_rate, warn_since,
               warning_health, target_health, delay_steps, max_cures, cures, deposited, out):
    """Let responders in the warning zone cure, in place (see the module docstring).

    Parameters
    ----------
    t : int
        Step index (the cure happens at its start).
    price : float
        Price the accounts observe: the previous step's simulated close, USD per unit.
    responders : ndarray, shape (R,), int64
        Indices of the accounts that respond, increasing.
    product : ndarray, shape (N,), int8
    units, cash, key : ndarray, shape (N,), float64
        Account state; cured accounts' cash and key change.
    m_rate : ndarray, shape (2,), float64
        Base maintenance rates per product.
    warn_since : ndarray, shape (N,), int32
        Step an account entered the warning zone (-1: not in it); updated.
    warning_health, target_health : ndarray, shape (2,), float64
        Per product (:class:`Product`): health below which an account is warned, and to which
        it cures (> warning_health). Perps' health is equity over maintenance margin, so their
        levels sit far higher than loans' (a 10x perp at a 0.5% rate starts at health 20).
    delay_steps : int
        Steps between entering the zone and curing (0: cure at the next step start).
    max_cures : int
        Cures an account can afford over the window (spare capital runs out); 0: unlimited.
    cures : ndarray, shape (N,), int32
        Cures each account made; updated.
    deposited : ndarray, shape (N,), float64
        New money each account brought in, USD; updated.
    out : ndarray, shape (N_FLOW_FIELDS,), float64
        This step's row of the book-flow array; updated.

    Serial by design: one cheap test per responder and step, summed in index order (the same
    totals whatever the thread count).
    """
    for j in range(responders.shape[0]):
        i = responders[j]
        u = units[i]
        if u == 0.0 or (max_cures > 0 and cures[i] >= max_cures):
            warn_since[i] = -1
            continue
        prod = product[i]
        h = health_nb(prod, u, cash[i], price, m_rate[prod])
        if h >= warning_health[prod]:
            warn_since[i] = -1
            continue
        if warn_since[i] < 0:
            warn_since[i] = t - 1  # seen at the previous step's close
        if t - warn_since[i] < delay_steps + 1:
            continue
        amount = cure_amount_nb(prod, u, cash[i], price, m_rate[prod], target_health[prod])
        warn_since[i] = -1
        if amount <= 0.0:
            continue
        cash[i] += amount
        key[i] = trigger_key_nb(u, cash[i], m_rate[prod])
        deposited[i] += amount
        cures[i] += 1
        out[7] += 1.0
        out[8 if prod == _PERP else 9] += amount


def responder_mask(account_id: np.ndarray, share: float, seed: int) -> np.ndarray:
    """Return which accounts respond: ``hash(account_id, seed) < share``, shape (N,), bool.

    A SplitMix64 hash of the account id and the seed, mapped to [0, 1): the same accounts
    respond in every run with the same seed, independently of the book's order.

    Parameters
    ----------
    account_id : ndarray, shape (N,), int64
    share : float
        Fraction of accounts that respond, in [0, 1].
    seed : int
        Seed of the draw.

    Returns
    -------
    ndarray, shape (N,), bool
        True for the accounts that respond.
    """
    with np.errstate(over="ignore"):
        z = account_id.astype(np.uint64) + np.uint64(seed & 0xFFFFFFFF) * np.uint64(
            0x9E3779B97F4A7C15) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53) < share
