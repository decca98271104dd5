"""Books that move during the window: positions that open or close, and traders who cure.

Three mechanisms act at the start of every step, in this order, before the step's funding and
liquidations:

**Arrivals.** An account whose position opens during the window (its ``entry_time`` in the book
falls inside the window) holds nothing until its arrival step, then opens with the units and
margin the book gives it at the market's price: ``cash = margin - units x entry_price x f``,
where ``f`` is the step's price factor (simulated / historical price: 1 without cascade
feedback, when the book's ``cash = margin - units x entry_price`` is used as is). The margin
(its equity at entry) is new money entering the book; the units were bought from (or, for a
short, sold to) the market at the price it then traded at, which already carries that order.
(Opening at the historical entry price while the simulated market traded elsewhere, as this
model did first, started every arrival with the price's departure as profit or loss: a long
arriving 10% above the simulated price lost 10% of its notional at once.)

**Voluntary closes.** An account the book marks as closing during the window (its
``exit_time``, drawn by the generator's ``close_share``) closes its whole position at the
start of its close step (after the step's arrivals, before its cures), at the price the
traders observe (the previous step's simulated close; the window's first open at step 0):
``cash += units x price``, ``units = 0``. Its equity stays in the account (it is the trader's
money; no money leaves the book): the position was sold to (or, for a short, bought from) the
market at the observed price, which already carries that order, as arrivals do. An account
liquidated to nothing (or closed) before its close step is skipped.

**Response.** Real borrowers and traders watch their health: an account whose health, at the
previous step's simulated close, falls below ``warning_health`` enters a warning zone; if it is
a *responder* and is still in the zone ``delay_steps`` later, it cures to ``target_health`` at
that price: a perp adds margin (cash); a loan repays debt, or, where the run says owners top up
(``loan_top_up``), adds collateral bought with new money at that price (Maker's vault owners on
Black Thursday added ETH: ``docs/calibration.md``). The cure is new money entering the account
(``deposited``, USD; collateral added also in ``topped_up``, asset units). An account leaving
the zone before the delay resets its clock. Non-responders never act. Which accounts respond
is fixed per account by a seeded hash (:func:`responder_mask`), so the same seed gives the
same responders whatever the thread count.

The two-parameter borrower response of the Morpho simulator (70% of borrowers repay to 74% LTV
about 2 h after entering an 80-86% LTV warning zone; https://github.com/RahilBhavan/spine,
WRITEUP.md) is this model with ``share = 0.7``, a two-hour delay and health levels derived from
those LTVs.

Health is the engine's (:func:`backtest.kernels.liquidation_nb.health_nb`) at the policy's base
maintenance rates: perps ``equity / (m x |units| x price)``, loans ``LT x collateral / debt``.

Per-step outputs (``FLOW_FIELDS``, shape (T, N_FLOW_FIELDS), float64): arrivals (count), the
units and cash they bring (per product and side) and their margin (USD); cures (count), the
USD they bring per product, and for loans the debt repaid (USD) and the collateral a top-up
bought (units) apart; voluntary closes (count), the units they remove (per product and
side, signed as the positions were), the cash they bring (the sale proceeds, per product) and
their notional (USD). Serial loops: independent of the thread count.

The step kernel (:func:`backtest.kernels.steps_nb.run_steps_nb`) applies the flow itself, once
per step, through :func:`book_flow_step_nb`; everything the flow needs and updates travels in
one :class:`KernelFlow` (built by :func:`backtest.engine.book_flow.kernel_flow`).

Why over 400 lines: the three mechanisms write one per-step row by column position
(``FLOW_FIELDS``) and share one :class:`KernelFlow`; the structure, its columns and every
kernel that writes them stay in one module so that they are read, and changed, together.
"""

from __future__ import annotations

from typing import NamedTuple

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
    "cure_loan_usd",  # debt repaid or collateral added by loans that cured, USD (new money)
    "closes",  # accounts that closed their position voluntarily in the step
    "close_units_long",  # perp long units closed (positive)
    "close_units_short",  # perp short units closed (negative, as held)
    "close_units_loan",  # loan collateral units sold
    "close_cash_perp",  # cash the perp closes add (units x price), USD
    "close_cash_loan",  # cash the loan closes add (collateral sold), USD
    "closed_notional_usd",  # |units| x price of the closed positions, USD
    "cure_cash_loan",  # debt loans that cured by repaying repaid, USD (part of cure_loan_usd)
    "cure_units_loan",  # collateral units loans that cured by a top-up bought (the rest of it)
)
N_FLOW_FIELDS = len(FLOW_FIELDS)
_PERP = int(Product.PERP)
_LOAN = int(Product.LOAN)


class KernelFlow(NamedTuple):
    """The moving book as the step kernel reads and updates it (accounts in processing order).

    One argument of :func:`backtest.kernels.steps_nb.run_steps_nb` (numba compiles a named
    tuple of arrays and scalars as one typed structure). A book that does not move has empty
    index arrays (:func:`backtest.engine.book_flow.no_kernel_flow`). Arrays marked *updated*
    are written in place and persist across kernel calls.

    Attributes
    ----------
    arrival_ptr : ndarray, shape (T + 1,), int64
        Arrivals of step ``t`` are ``arrival_idx[arrival_ptr[t]:arrival_ptr[t + 1]]``.
    arrival_idx : ndarray, shape (A,), int64
        Accounts that arrive, grouped by arrival step.
    open_units, open_cash, margin : ndarray, shape (N,) or (0,), float64
        State an arriving account opens with (asset units, USD) and the margin it deposits
        (USD); read only for arrivals (empty when nothing arrives).
    responders : ndarray, shape (R,), int64
        Accounts that cure in the warning zone, increasing (empty: no responses).
    warning_health, target_health : ndarray, shape (2,), float64
        Per :class:`Product`: health below which a responder is warned, and to which it cures.
    delay_steps : int
        Steps between entering the warning zone and curing (>= 0).
    max_cures : int
        Cures an account can afford over the window (0: unlimited).
    warn_since : ndarray, shape (N,) or (0,), int32
        Step each account entered the warning zone (-1: not in it); updated.
    cures : ndarray, shape (N,) or (0,), int32
        Cures each account made; updated.
    deposited : ndarray, shape (N,), float64
        New money each account brought in (arrival margin and cures), USD; updated.
    loan_top_up : bool
        Loans cure by adding collateral (True) rather than by repaying debt (False).
    topped_up : ndarray, shape (N,) or (0,), float64
        Collateral each loan added by its cures, asset units; updated (empty unless
        ``loan_top_up``).
    steps : ndarray, shape (T, N_FLOW_FIELDS), float64
        Per-step book-flow outputs (``FLOW_FIELDS``); updated.
    applied : ndarray, shape (1,), int64
        Last step whose flow has been applied (-1: none); updated. A step the kernel restarts
        (after a record-buffer flush) is not moved twice.
    touched : ndarray, shape (K,), int64
        Scratch: the accounts a step's flow changed (K = most arrivals in one step + most
        closes in one step + R), so the kernel refreshes the trigger-key bounds of their
        chunks only.
    close_ptr : ndarray, shape (T + 1,), int64
        Voluntary closes of step ``t`` are ``close_idx[close_ptr[t]:close_ptr[t + 1]]``.
    close_idx : ndarray, shape (C,), int64
        Accounts whose traders close their positions, grouped by close step (empty: none).
    closed_step : ndarray, shape (N,), int32
        Step at whose start each account's trader closed its position (-1: did not); updated.
    """

    arrival_ptr: np.ndarray
    arrival_idx: np.ndarray
    open_units: np.ndarray
    open_cash: np.ndarray
    margin: np.ndarray
    responders: np.ndarray
    warning_health: np.ndarray
    target_health: np.ndarray
    delay_steps: int
    max_cures: int
    warn_since: np.ndarray
    cures: np.ndarray
    deposited: np.ndarray
    loan_top_up: bool
    topped_up: np.ndarray
    steps: np.ndarray
    applied: np.ndarray
    touched: np.ndarray
    close_ptr: np.ndarray
    close_idx: np.ndarray
    closed_step: np.ndarray


@njit
def book_flow_step_nb(t, price, factor, flow, product, units, cash, key, m_rate):
    """Move the book at the start of step ``t``, in place.

    Arrivals open, traders who planned to close do so, then responders cure.

    Parameters
    ----------
    t : int
        Step index.
    price : float
        Price the accounts observe: the previous step's simulated close (``close[t - 1]``
        times that step's price factor; the window's first open at ``t = 0``, where only
        voluntary closes use it: no cures), USD per unit.
    factor : float
        Step ``t``'s price factor (simulated / historical price; 1 without cascade feedback):
        arrivals open at their historical entry price times it.
    flow : KernelFlow
        The moving book; its per-step row ``steps[t]``, ``deposited``, ``warn_since``,
        ``cures``, ``closed_step`` and ``touched`` are updated.
    product : ndarray, shape (N,), int8
        :class:`Product` of each account.
    units, cash, key : ndarray, shape (N,), float64
        Account state (asset units, USD, trigger key); changed accounts are updated.
    m_rate : ndarray, shape (2,), float64
        Base maintenance rates per product (health and trigger keys).

    Returns
    -------
    int
        Number of accounts changed, listed in ``flow.touched[:count]`` (an account may appear
        twice: an arrival that cures at once).
    """
    n_touched = open_arrivals_nb(t, factor, flow, product, units, cash, key, m_rate, 0)
    if flow.close_idx.shape[0] > 0:
        n_touched = close_positions_nb(t, price, flow, product, units, cash, key, m_rate,
                                       n_touched)
    if t > 0 and flow.responders.shape[0] > 0:
        n_touched = respond_nb(t, price, flow, product, units, cash, key, m_rate, n_touched)
    return n_touched


@njit
def open_arrivals_nb(t, factor, flow, product, units, cash, key, m_rate, n_touched):
    """Open the positions arriving at step ``t``, in place, at the market's price.

    Parameters
    ----------
    t : int
        Step index.
    factor : float
        The step's price factor: an arrival's cash is ``margin + (open_cash - margin) x
        factor`` (``margin - units x entry_price x factor``), exactly ``open_cash`` at 1.
    flow : KernelFlow
        Arrivals (``arrival_ptr``, ``arrival_idx``, ``open_units``, ``open_cash``,
        ``margin``); ``deposited``, ``steps[t]`` and ``touched`` are updated.
    product : ndarray, shape (N,), int8
    units, cash, key : ndarray, shape (N,), float64
        Account state; the arrivals' entries are set.
    m_rate : ndarray, shape (2,), float64
        Base maintenance rates per product (trigger keys).
    n_touched : int
        Entries of ``flow.touched`` already used this step.

    Returns
    -------
    int
        ``n_touched`` plus the number of arrivals (listed after it in ``flow.touched``).
    """
    out = flow.steps[t]
    for j in range(flow.arrival_ptr[t], flow.arrival_ptr[t + 1]):
        i = flow.arrival_idx[j]
        u = flow.open_units[i]
        c = flow.open_cash[i]
        if factor != 1.0:
            c = flow.margin[i] + (c - flow.margin[i]) * factor
        units[i] = u
        cash[i] = c
        key[i] = trigger_key_nb(u, c, m_rate[product[i]])
        flow.deposited[i] += flow.margin[i]
        flow.touched[n_touched] = i
        n_touched += 1
        out[0] += 1.0
        _tally_nb(out, 0, product[i] == _LOAN, u, c)
        out[6] += flow.margin[i]
    return n_touched


@njit
def _tally_nb(out, k, is_loan, u, c):
    """Add one opened or closed position to the step's flow fields ``out[k + 1 .. k + 5]``.

    The fields are long units, short units, loan units, perp cash, loan cash (FLOW_FIELDS'
    order).
    """
    if is_loan:
        out[k + 3] += u
        out[k + 5] += c
    else:
        if u > 0.0:
            out[k + 1] += u
        else:
            out[k + 2] += u
        out[k + 4] += c


@njit
def close_positions_nb(t, price, flow, product, units, cash, key, m_rate, n_touched):
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
    flow : KernelFlow
        Closes (``close_ptr``, ``close_idx``, in the kernel's processing order);
        ``closed_step``, ``steps[t]`` and ``touched`` are updated.
    product : ndarray, shape (N,), int8
    units, cash, key : ndarray, shape (N,), float64
        Account state; the closed accounts' entries are set.
    m_rate : ndarray, shape (2,), float64
        Base maintenance rates per product (trigger keys).
    n_touched : int
        Entries of ``flow.touched`` already used this step.

    Returns
    -------
    int
        ``n_touched`` plus the number of closes (listed after it in ``flow.touched``).
    """
    out = flow.steps[t]
    for j in range(flow.close_ptr[t], flow.close_ptr[t + 1]):
        i = flow.close_idx[j]
        u = units[i]
        if u == 0.0:
            continue
        value = u * price
        cash[i] += value
        units[i] = 0.0
        key[i] = trigger_key_nb(0.0, cash[i], m_rate[product[i]])
        flow.closed_step[i] = t
        flow.touched[n_touched] = i
        n_touched += 1
        out[10] += 1.0
        _tally_nb(out, 10, product[i] == _LOAN, u, value)
        out[16] += abs(value)
    return n_touched


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
def top_up_amount_nb(units, cash, price, m, target_health):
    """Return the USD of collateral a loan must add to reach ``target_health`` at ``price``.

    Loan health is ``LT x units x price / debt`` (LT = 1 - m), so the collateral to hold is
    ``target x debt / LT`` (USD) and the top-up is what is missing, ``>= 0``.

    Parameters
    ----------
    units : float
        Collateral, asset units.
    cash : float
        Cash, USD (negative: debt).
    price : float
        Price the borrower observes, USD per unit (> 0).
    m : float
        Maintenance rate of loans, fraction (1 - liquidation threshold).
    target_health : float
        Health to reach (dimensionless, > 1).

    Returns
    -------
    float
        USD of collateral to add (``/ price`` asset units), >= 0; 0 without debt.
    """
    debt = -cash
    if debt <= 0.0 or price <= 0.0:
        return 0.0
    return max(target_health * debt / (1.0 - m) - units * price, 0.0)


@njit
def respond_nb(t, price, flow, product, units, cash, key, m_rate, n_touched):
    """Let responders in the warning zone cure, in place (see the module docstring).

    Parameters
    ----------
    t : int
        Step index (the cure happens at its start).
    price : float
        Price the accounts observe: the previous step's simulated close, USD per unit.
    flow : KernelFlow
        Responders and cure levels (``responders``, ``warning_health``, ``target_health``,
        ``delay_steps``, ``max_cures``, ``loan_top_up``); ``warn_since``, ``cures``,
        ``deposited``, ``topped_up``,
        ``steps[t]`` and ``touched`` are updated. Perps' health is equity over maintenance
        margin, so their levels sit far higher than loans' (a 10x perp at a 0.5% rate starts
        at health 20).
    product : ndarray, shape (N,), int8
    units, cash, key : ndarray, shape (N,), float64
        Account state; cured accounts' cash (or, for a top-up, units) and key change.
    m_rate : ndarray, shape (2,), float64
        Base maintenance rates per product.
    n_touched : int
        Entries of ``flow.touched`` already used this step.

    Returns
    -------
    int
        ``n_touched`` plus the number of cures (listed after it in ``flow.touched``).

    Serial by design: one cheap test per responder and step, summed in index order (the same
    totals whatever the thread count).
    """
    out = flow.steps[t]
    responders = flow.responders
    warn_since = flow.warn_since
    delay_steps = flow.delay_steps
    max_cures = flow.max_cures
    for j in range(responders.shape[0]):
        i = responders[j]
        u = units[i]
        if u == 0.0 or (max_cures > 0 and flow.cures[i] >= max_cures):
            warn_since[i] = -1
            continue
        prod = product[i]
        h = health_nb(prod, u, cash[i], price, m_rate[prod])
        if h >= flow.warning_health[prod]:
            warn_since[i] = -1
            continue
        if warn_since[i] < 0:
            warn_since[i] = t - 1  # seen at the previous step's close
        if t - warn_since[i] < delay_steps + 1:
            continue
        top_up = prod == _LOAN and flow.loan_top_up
        if top_up:
            amount = top_up_amount_nb(u, cash[i], price, m_rate[prod], flow.target_health[prod])
        else:
            amount = cure_amount_nb(prod, u, cash[i], price, m_rate[prod],
                                    flow.target_health[prod])
        warn_since[i] = -1
        if amount <= 0.0:
            continue
        if top_up:
            units[i] = u + amount / price
            flow.topped_up[i] += amount / price
            out[18] += amount / price
        else:
            cash[i] += amount
            if prod == _LOAN:
                out[17] += amount
        key[i] = trigger_key_nb(units[i], cash[i], m_rate[prod])
        flow.deposited[i] += amount
        flow.cures[i] += 1
        flow.touched[n_touched] = i
        n_touched += 1
        out[7] += 1.0
        out[8 if prod == _PERP else 9] += amount
    return n_touched


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
