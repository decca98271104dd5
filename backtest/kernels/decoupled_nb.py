"""Position-major first-passage kernels for decoupled runs of the single-asset engine.

Why over 400 lines: the walks (count, then write, or both at once) share one walk function
so that they cannot disagree, and the exactness argument below covers the walk, the record order
and the summation order together; the driver (:mod:`backtest.engine.decoupled`) is apart.

A run is *decoupled* when no account's outcome depends on another's: no market impact or
cascade feedback, an oracle whose path is fixed by the tape (market candles or mark prices), a
static book, no keeper latency, profit test, capital or volume budget, no cooldown, no
pre-emptive overlay, no funding, margin scale 1 at every step, and a HARD, PARTIAL or
GRADUATED policy (the driver :mod:`backtest.engine.decoupled` checks all of this). Then the
time-major step loop of :func:`backtest.kernels.steps_nb.run_steps_nb` can be replaced by a
walk of each account on its own through its liquidation events, in parallel over accounts,
followed by deterministic bookkeeping that rebuilds the step loop's aggregates in its order.

Exactness. In such a run the step loop decides account ``i`` at step ``t`` only when its
trigger-key filter holds, ``k >= lo_key[t] or (k < 0 and -k <= hi_key[t])`` with ``k`` the
account's current key and ``lo_key``, ``hi_key`` the step's filter bounds (a chunk is visited
whenever one of its accounts passes, as its bounds are the largest keys of its accounts,
refreshed after each step that changed one). Account state changes only at the account's own
liquidations, so between two of them ``k`` is constant, and the next step the loop can act on
is the *first passage* ``t* = min {t >= t0 : lo_key[t] <= k}`` (and, for ``k < 0``, ``min {t
>= t0 : -hi_key[t] <= k}``), where ``t0`` is the step after the last event. At ``t*`` the
kernel takes the same decision as the step loop, with the same floating-point expressions
(:func:`_decide_nb` mirrors the step loop's decision for the supported families); if the exact
equity test fails there (the filter has a relative slack of ``KEY_SLACK``) the search resumes
at ``t* + 1``. Steps skipped by the search fail the filter, where the step loop does nothing
to the account. The first passage is found with a sparse table of range minima
(``table[j, t] = min a[t : t + 2^j]``) by binary lifting, O(log T) per query, after an O(1)
test against the suffix minimum that settles accounts that never trigger.

A liquidatable account the policy would not reduce (a size of 0 units, e.g. a partial
liquidation filled at a price where the account is already above its target) *waits*: the
step loop leaves it as it is and counts it (``N_WAITING``, ``WAITING_NEGATIVE_EQUITY``) only
at steps when some liquidation in its chunk made the loop visit the chunk; the kernels count
waits per (chunk, step) and keep those of visited chunks, in account order. Auto-deleveraging
couples accounts (it closes counterparties): when it is the waterfall and a perp leaves bad
debt, the kernels report it and the driver falls back to the step loop.

Order of results. The two walks read the book in its own order through the processing order
(no gathered copy, no scatter back: account ``order[i]`` is at position ``i``, chunks are runs
of ``chunk_size`` positions). :func:`decoupled_count_nb` walks every account without writing
anything but the number of events (and waits) per (chunk, step) and a mark on the accounts
that have any; their prefix sum over (step, chunk) gives every event its slot in the step
loop's record order (by step, then chunk, then position: the positions of a chunk are walked
in order). :func:`decoupled_apply_nb` walks the marked accounts again and writes their final
state and totals and each record in its slot. A hard run walks once instead
(:mod:`backtest.kernels.decoupled_fused_nb`: the same walk in its fused mode, records
buffered per chunk and then moved into the same slots). :func:`decoupled_metrics_nb` sums
the per-step aggregates per (step, chunk) in position order and then over chunks in chunk
order, as the step loop does, so every float is bit-identical; the insurance-fund waterfall
then runs serially over the steps (:func:`decoupled_waterfall_nb`). A run of the two walks
opens their two parallel regions (over chunks) and sums the aggregates serially (O(records +
chunks x steps)); a hard run opens three regions, the aggregates summed in the last
(:mod:`backtest.kernels.decoupled_fused_nb`); a tiny run opens them with one thread
(:data:`backtest.engine.decoupled.SERIAL_MAX_REACHABLE`). The work assigned to a chunk does
not depend on the thread count, so neither do the results. An account's first search starts
at step 0 and bisects the prefix minima of the bounds (:func:`first_from_start_nb`, 8 bytes a step)
rather than lifting through the sparse table (8 x 11 bytes a step for a day of minutes): the
same step from a smaller, cache-resident array.
"""

from __future__ import annotations

import numpy as np

from backtest._jit import njit, njit_parallel, prange
from backtest.kernels.enums import (
    N_SUMMED_METRICS,
    RECORD_FIELDS,
    FillPrice,
    PolicyFamily,
    Product,
    StepMetric,
)
from backtest.kernels.liquidation_nb import (
    KEY_SLACK,
    apply_liquidation_nb,
    clears_debt_nb,
    fill_price_nb,
    health_nb,
    penalty_rate_nb,
    step_calls_nb,
    trigger_key_nb,
)
from backtest.kernels.settlement_nb import settle_step_nb

#: The step loop's liquidation records (``RECORD_FIELDS``), written here directly.
RECORD_DTYPE = np.dtype(list(RECORD_FIELDS))
_LOAN = int(Product.LOAN)
_PERP = int(Product.PERP)
_FILL_LIQ = int(FillPrice.LIQUIDATION_PRICE)
_N_SUMMED = N_SUMMED_METRICS
_N_LIQ = int(StepMetric.N_LIQUIDATIONS)
_N_CLOSED = int(StepMetric.N_CLOSED)
_N_BANKRUPT = int(StepMetric.N_BANKRUPT)
_NOTIONAL = int(StepMetric.LIQUIDATED_NOTIONAL)
_KEEPER = int(StepMetric.KEEPER_FEES)
_INSURANCE = int(StepMetric.INSURANCE_FEES)
_BAD_DEBT = int(StepMetric.BAD_DEBT)
_CASH_PERP = int(StepMetric.CASH_DELTA_PERP)
_CASH_LOAN = int(StepMetric.CASH_DELTA_LOAN)
_UNITS_LONG = int(StepMetric.UNITS_DELTA_PERP_LONG)
_UNITS_SHORT = int(StepMetric.UNITS_DELTA_PERP_SHORT)
_UNITS_LOAN = int(StepMetric.UNITS_DELTA_LOAN)
_NET_FLOW = int(StepMetric.NET_FLOW)
_IMPACT_COST = int(StepMetric.IMPACT_COST)
_BAD_LONG = int(StepMetric.BAD_DEBT_PERP_LONG)
_BAD_SHORT = int(StepMetric.BAD_DEBT_PERP_SHORT)
_BANKRUPT_UNITS_LONG = int(StepMetric.BANKRUPT_UNITS_LONG)
_BANKRUPT_UNITS_SHORT = int(StepMetric.BANKRUPT_UNITS_SHORT)
_PRICE_FACTOR = int(StepMetric.PRICE_FACTOR)
_EXEC_FACTOR = int(StepMetric.EXECUTION_FACTOR)
_ORACLE = int(StepMetric.ORACLE_PRICE)
_SLICE = int(StepMetric.SLICE_FACTOR)
_MARGIN_SCALE = int(StepMetric.MARGIN_SCALE)
_HARD = int(PolicyFamily.HARD)
_N_WAITING = int(StepMetric.N_WAITING)
_WAITING_EQUITY = int(StepMetric.WAITING_NEGATIVE_EQUITY)

#: Walk outcomes (second column of the kernels' ``flags``, one row per chunk).
STATUS_OK = 0
#: A perp left bad debt under the auto-deleveraging waterfall: the driver uses the step loop.
STATUS_PERP_BAD_DEBT = 1
#: A chunk's records or waits outgrew its room in the fused walk's buffers: the driver walks
#: twice instead (:func:`decoupled_count_nb`, :func:`decoupled_apply_nb`).
STATUS_OVERFLOW = 2
#: Modes of the shared walk (:func:`_walk_nb`): count only, write into slots counted before,
#: or count and write in one walk into per-chunk buffers.
WALK_COUNT = 0
WALK_APPLY = 1
WALK_FUSED = 2


@njit
def filter_bounds_nb(x_long, x_short, scale, m_perp):
    """Return the step loop's trigger-key filter bounds, each shape (T,) float64.

    ``lo`` is the step loop's ``lo_key`` and ``neg_hi`` its ``-hi_key``, evaluated with the
    same expressions (no predictive shift: ``widen = 1``), so a long or short key ``k``
    passes the filter at step ``t`` iff ``lo[t] <= k`` or ``k < 0 and neg_hi[t] <= k``.

    Parameters
    ----------
    x_long, x_short : ndarray, shape (T,), float64
        Decision prices of longs and shorts per step, USD per unit.
    scale : ndarray, shape (T,), float64
        Perp maintenance margin scale per step (``RiskInput.MARGIN_SCALE``).
    m_perp : float
        The policy's perp maintenance rate, fraction of notional.

    Returns
    -------
    lo, neg_hi : ndarray, shape (T,), float64
        The filter bounds, USD per unit.
    """
    n = x_long.shape[0]
    lo = np.empty(n)
    neg_hi = np.empty(n)
    widen = np.exp(0.0)
    for t in range(n):
        m_step = m_perp * scale[t]
        lo[t] = x_long[t] * min(1.0, (1.0 - m_step) / (1.0 - m_perp)) / widen * (
            1.0 - KEY_SLACK)
        hi = x_short[t] * max(1.0, (1.0 + m_step) / (1.0 + m_perp)) * widen * (1.0 + KEY_SLACK)
        neg_hi[t] = -hi
    return lo, neg_hi


@njit
def passage_table_nb(a):
    """Return the sparse table of range minima of ``a`` and its suffix minima.

    Parameters
    ----------
    a : ndarray, shape (T,), float64
        Values per step (no NaN).

    Returns
    -------
    table : ndarray, shape (L, T), float64
        ``table[j, t] = min(a[t : t + 2^j])`` (``inf`` where the range passes the end), ``L =
        floor(log2 T) + 1``.
    suffix : ndarray, shape (T + 1,), float64
        ``suffix[t] = min(a[t:])``, ``suffix[T] = inf``.
    """
    n = a.shape[0]
    levels = 1
    while (1 << levels) <= n:
        levels += 1
    table = np.full((levels, max(n, 1)), np.inf)
    for t in range(n):
        table[0, t] = a[t]
    for j in range(1, levels):
        half = 1 << (j - 1)
        for t in range(n - (1 << j) + 1):
            table[j, t] = min(table[j - 1, t], table[j - 1, t + half])
    suffix = np.full(n + 1, np.inf)
    for t in range(n - 1, -1, -1):
        suffix[t] = min(a[t], suffix[t + 1])
    return table, suffix


@njit
def first_at_most_nb(table, suffix, t0, k):
    """Return the first step ``t >= t0`` with ``a[t] <= k``, or T if there is none.

    Binary lifting on :func:`passage_table_nb`: with every value of ``a[t0:t]`` above ``k``,
    a block ``[t, t + 2^j)`` whose minimum is above ``k`` is skipped, for ``j`` from the
    largest level down; the answer's distance from ``t0`` is below ``2^L``, so one pass over
    the levels reaches it (O(log T)). ``suffix`` answers "never" in O(1).

    Parameters
    ----------
    table : ndarray, shape (L, T), float64
        Range minima of ``a`` (:func:`passage_table_nb`).
    suffix : ndarray, shape (T + 1,), float64
        Suffix minima of ``a``.
    t0 : int
        First step searched.
    k : float
        Threshold (a trigger key), in ``a``'s unit.

    Returns
    -------
    int
        The first passage step, ``T`` if none.
    """
    n = suffix.shape[0] - 1
    if t0 >= n or suffix[t0] > k:
        return n
    t = t0
    for j in range(table.shape[0] - 1, -1, -1):
        if t + (1 << j) <= n and table[j, t] > k:
            t += 1 << j
    return t


@njit
def prefix_minima_nb(a):
    """Return the prefix minima of ``a`` (non-increasing).

    Parameters
    ----------
    a : ndarray, shape (T,), float64
        Values per step (no NaN).

    Returns
    -------
    prefix : ndarray, shape (T,), float64
        ``prefix[t] = min(a[: t + 1])``.
    """
    n = a.shape[0]
    prefix = np.empty(n)
    m = np.inf
    for t in range(n):
        m = min(m, a[t])
        prefix[t] = m
    return prefix


@njit
def first_from_start_nb(prefix, k):
    """Return the first step ``t >= 0`` with ``a[t] <= k``, or T if there is none.

    The search from the window's start (an account's first event): the first ``t`` with
    ``prefix[t] <= k``, by bisection of the non-increasing prefix minima
    (:func:`prefix_minima_nb`): the same step as :func:`first_at_most_nb` from 0, found in a
    ``8 T``-byte array (11 KB for a day of minutes, cache-resident) instead of the sparse table.

    Parameters
    ----------
    prefix : ndarray, shape (T,), float64
        Prefix minima of ``a``.
    k : float
        Threshold (a trigger key), in ``a``'s unit.

    Returns
    -------
    int
        The first passage step, ``T`` if none.
    """
    lo = 0
    hi = prefix.shape[0]
    while lo < hi:
        mid = (lo + hi) >> 1
        if prefix[mid] <= k:
            hi = mid
        else:
            lo = mid + 1
    return lo


@njit
def _decide_nb(prod, u, c, k, x, o, lo, hi, cl, fill_mode, pol):
    """Size the liquidation of an account that failed the exact equity test.

    The step loop's decision (:func:`backtest.kernels.steps_nb._decide_nb`) for HARD,
    PARTIAL and GRADUATED policies without latency, profit test, cooldown or pre-emption, at
    margin scale 1 (so the step's rates are the base rates). Returns ``(decision... fill
    price, units to close (>= 0), penalty rate, maintenance rate)``.
    """
    (family, m_rate, t_rate, p_rate, close_factor, full_close_health, tier_health,
     tier_fraction, size_rules, penalty_model, penalty_cap, seize_all, _) = pol
    m = m_rate[prod]
    m_base = m_rate[prod]
    k_step = k * (1.0 - m_base) / (1.0 - m) if u > 0.0 else k * (1.0 + m_base) / (1.0 + m)
    p = fill_price_nb(fill_mode, u, k_step, x, o, lo, hi, cl)
    pen = p_rate[prod]
    if prod == _LOAN:
        pen = penalty_rate_nb(penalty_model, pen, penalty_cap, health_nb(prod, u, c, p, m),
                              full_close_health)
    d, p = step_calls_nb(family, prod, u, c, p, x, fill_mode == _FILL_LIQ, lo, hi, m,
                         t_rate[prod], pen, close_factor, full_close_health, tier_health,
                         tier_fraction, size_rules, seize_all)
    return p, max(d, 0.0), pen, m


@njit
def _walk_nb(start, stop, ch, order, product, units, cash, tape, tables, pol, fill_mode, adl,
             mode, maybe, counts, waits, cursor, wait_cursor, marks, out, records, cash_delta,
             wait_equity, wait_step):
    """Walk the accounts at processing positions ``start..stop`` (chunk ``ch``) to their events.

    Account ``order[i]`` of the book (arrays in the book's order) is at position ``i``.
    Without ``write``: skips the accounts ``b`` with ``maybe[b] == 0`` (they never pass the
    filter, :func:`backtest.kernels.decoupled_fused_nb.reachable_nb`), counts each event in
    ``counts[ch, t]`` and each *wait* (liquidatable, sized at 0 units: nothing happens to the
    account) in ``waits[ch, t]``, and sets
    ``marks[i]`` for the accounts that have either. With ``write``: walks the marked accounts
    only and stores their final state and totals in ``out``, each event's record at
    ``cursor[ch, t]`` and, where ``counts[ch, t] > 0`` (the step loop visits the chunk then,
    and counts the waits), each wait's negative equity at ``wait_cursor[ch, t]`` (cursors
    advanced). ``mode`` is :data:`WALK_COUNT` (without ``write``) or :data:`WALK_APPLY`
    (with). :data:`WALK_FUSED` does both in one walk (:func:`decoupled_walk_nb`): ``order``
    then holds only the reachable accounts' book rows; events and waits are counted as
    without ``write``, final state and totals stored as with it, and each record goes to the
    chunk's next slot ``cursor[ch, 0]`` (the record's ``step`` says its step), each wait's
    negative equity to ``wait_equity[wait_cursor[ch, 0]]`` and its step to ``wait_step``
    (all waits: those of unvisited (chunk, step)s are dropped when compacting); a slot at
    ``cursor[ch, 1]`` (or ``wait_cursor[ch, 1]``) is past the chunk's room, which stops the
    walk with :data:`STATUS_OVERFLOW`. Returns :data:`STATUS_OK`, or the status that stopped
    the walk.
    """
    o, hi, lo, cl, x_long, x_short = tape
    lo_table, lo_suffix, sh_table, sh_suffix, lo_prefix, sh_prefix = tables
    m_rate = pol[1]
    keeper_share = pol[12]
    (units_out, cash_out, n_liquidations, first_step, last_step, notional_sum, penalties,
     bad_sum) = out
    n_steps = lo_suffix.shape[0] - 1
    write = mode != WALK_COUNT
    for i in range(start, stop):
        if mode == WALK_APPLY and marks[i] == 0:
            continue
        b = order[i]
        if mode == WALK_COUNT and maybe[b] == 0:  # a byte per account: cheaper than its state
            continue
        src = i if mode == WALK_FUSED else b  # the fused walk's state is gathered by position
        prod = product[src]
        u = units[src]
        c = cash[src]
        k = trigger_key_nb(u, c, m_rate[prod])
        # most accounts never trigger: the suffix minima of the bounds settle them at once
        if not (lo_suffix[0] <= k or (k < 0.0 and sh_suffix[0] <= k)):
            continue
        t0 = 0
        while True:
            if t0 == 0:  # an account's first search: the small prefix-minima array
                t = first_from_start_nb(lo_prefix, k)
                if k < 0.0:
                    t = min(t, first_from_start_nb(sh_prefix, k))
            else:
                t = first_at_most_nb(lo_table, lo_suffix, t0, k)
                if k < 0.0:
                    t = min(t, first_at_most_nb(sh_table, sh_suffix, t0, k))
            if t >= n_steps:
                break
            t0 = t + 1
            x = x_long[t] if u > 0.0 else x_short[t]
            if not (c + u * x < m_rate[prod] * abs(u) * x):  # the exact test: not liquidatable
                continue
            p, d, pen, m = _decide_nb(prod, u, c, k, x, o[t], lo[t], hi[t], cl[t], fill_mode,
                                      pol)
            if not d > 0.0:  # waits: counted in the step's aggregates if the chunk is visited
                if mode == WALK_COUNT:
                    waits[ch, t] += 1
                    marks[i] = 1
                elif mode == WALK_FUSED:
                    waits[ch, t] += 1
                    w = wait_cursor[ch, 0]
                    if w >= wait_cursor[ch, 1]:
                        return STATUS_OVERFLOW
                    wait_cursor[ch, 0] = w + 1
                    wait_equity[w] = min(c + u * x, 0.0)
                    wait_step[w] = t
                elif counts[ch, t] > 0:
                    w = wait_cursor[ch, t]
                    wait_cursor[ch, t] = w + 1
                    wait_equity[w] = min(c + u * x, 0.0)
                continue
            exec_factor = 1.0  # no impact model
            pe = p * exec_factor
            clears = clears_debt_nb(prod, u, c, d, pe, pen)
            u2, c2, signed, keeper, ins, bad = apply_liquidation_nb(u, c, d, pe, pen,
                                                                    keeper_share, clears)
            if adl and bad > 0.0 and prod != _LOAN:
                return STATUS_PERP_BAD_DEBT
            if mode == WALK_COUNT:
                counts[ch, t] += 1
                marks[i] = 1
            else:
                if mode == WALK_FUSED:
                    j = cursor[ch, 0]
                    if j >= cursor[ch, 1]:
                        return STATUS_OVERFLOW
                    cursor[ch, 0] = j + 1
                    counts[ch, t] += 1
                else:
                    j = cursor[ch, t]
                    cursor[ch, t] = j + 1
                n_liquidations[src] += 1
                if first_step[src] < 0:
                    first_step[src] = t
                last_step[src] = t
                notional_sum[src] += d * pe
                penalties[src] += keeper + ins
                bad_sum[src] += bad
                r = records[j]
                r["step"] = t
                r["account"] = b
                r["units_closed"] = signed
                r["fill_price"] = pe
                r["notional"] = abs(signed) * pe
                r["keeper_fee"] = keeper
                r["insurance_fee"] = ins
                r["bad_debt"] = bad
                r["health_before"] = health_nb(prod, u, c, p, m)
                r["equity_after"] = c2 + u2 * pe
                r["decision_price"] = p
                r["closed"] = u2 == 0.0 or clears
                r["preemptive"] = False
                r["auction"] = False
                r["zero_bid"] = False
                cash_delta[j] = c2 - c
            u = u2
            c = c2
            k = trigger_key_nb(u2, c2, m_rate[prod])
        if write:
            units_out[src] = u
            cash_out[src] = c
    return STATUS_OK


@njit_parallel
def decoupled_count_nb(n_units, order, product, units, cash, tape, tables, pol, fill_mode, adl,
                       chunk_size, maybe, counts, waits, marks, flags):
    """Count every account's liquidation events and waits per (chunk, step); change nothing.

    Parameters
    ----------
    n_units : int
        Threads to deal the chunks to in turn (unit ``k`` walks chunks ``k, k + n_units, ...``;
        see :mod:`backtest.kernels.decoupled_fused_nb` on sharing); changes no result.
    order : ndarray, shape (N,), int64
        Processing order (:func:`backtest.engine.dispatch.liquidation_order`): the book row of
        each position; chunks are ``chunk_size`` consecutive positions.
    product : ndarray, shape (N,), int8
    units, cash : ndarray, shape (N,), float64
        The book's accounts, in its order: asset units, USD (read only).
    tape : tuple of six ndarrays, shape (T,), float64
        Open, high, low, close, and the longs' and shorts' decision prices, USD per unit.
    tables : tuple
        ``(lo_table, lo_suffix, neg_hi_table, neg_hi_suffix, lo_prefix, neg_hi_prefix)``:
        :func:`passage_table_nb` and :func:`prefix_minima_nb` of :func:`filter_bounds_nb`'s
        bounds.
    pol : tuple
        Policy fields (:func:`backtest.engine.decoupled.policy_tuple`).
    fill_mode : int
        :class:`backtest.kernels.FillPrice` (CLOSE for a mark-price oracle).
    adl : bool
        Auto-deleveraging is the waterfall (a perp's bad debt stops the walk).
    chunk_size : int
        Accounts per chunk, as in the step loop.
    maybe : ndarray, shape (N,), uint8
        :func:`backtest.kernels.decoupled_fused_nb.reachable_nb` of the book (book order): 0
        for accounts never reached.
    counts, waits : ndarray, shape (n_chunks, T), int64
        Zeros; receive the number of events and of waits (liquidatable accounts sized at 0
        units) per chunk and step.
    marks : ndarray, shape (N,), uint8
        Zeros; set to 1 at the positions of accounts with an event or a wait.
    flags : ndarray, shape (n_chunks,), int64
        Receives each chunk's status (0: all walked).
    """
    n = units.shape[0]
    no_int = np.empty(0, np.int32)
    no_float = np.empty(0)
    out = (no_float, no_float, no_int, no_int, no_int, no_float, no_float, no_float)
    no_records = np.empty(0, RECORD_DTYPE)
    n_chunks = counts.shape[0]
    for unit in prange(n_units):
        for ch in range(unit, n_chunks, n_units):
            flags[ch] = _walk_nb(ch * chunk_size, min(n, (ch + 1) * chunk_size), ch, order,
                                 product, units, cash, tape, tables, pol, fill_mode, adl,
                                 WALK_COUNT, maybe, counts, waits, counts, waits, marks, out,
                                 no_records, no_float, no_float, no_int)


@njit
def record_slots_nb(counts):
    """Return each (chunk, step)'s first record slot: records by step, then chunk.

    Parameters
    ----------
    counts : ndarray, shape (n_chunks, T), int64
        Events per chunk and step (:func:`decoupled_count_nb`).

    Returns
    -------
    ndarray, shape (n_chunks, T), int64
        Slot of the first record of each (chunk, step); the total is ``counts.sum()``.
    """
    n_chunks, n_steps = counts.shape
    slots = np.empty((n_chunks, n_steps), np.int64)
    total = 0
    for t in range(n_steps):
        for ch in range(n_chunks):
            slots[ch, t] = total
            total += counts[ch, t]
    return slots


@njit_parallel
def decoupled_apply_nb(n_units, order, product, units, cash, tape, tables, pol, fill_mode,
                       chunk_size, counts, marks, out, slots, wait_slots, records, cash_delta,
                       wait_equity):
    """Walk the marked accounts again, writing final state, totals and records.

    Parameters
    ----------
    counts : ndarray, shape (n_chunks, T), int64
        Events per (chunk, step) (:func:`decoupled_count_nb`).
    marks : ndarray, shape (N,), uint8
        The positions to walk (:func:`decoupled_count_nb`).
    out : tuple of eight ndarrays, shape (N,), book order
        ``(units, cash, n_liquidations, first_step, last_step, liquidated_notional,
        penalties_paid, bad_debt)``: the initial units and cash, zeros and -1 (first/last
        step); the marked accounts' entries are written.
    slots, wait_slots : ndarray, shape (n_chunks, T), int64
        :func:`record_slots_nb` of the events and of the waits the step loop counts;
        advanced to each group's end.
    records : ndarray, shape (R,), ``RECORD_DTYPE``
        Receives the records, in the step loop's order (book rows in ``account``).
    cash_delta : ndarray, shape (R,), float64
        Receives each record's change of the account's cash, USD.
    wait_equity : ndarray, shape (W,), float64
        Receives each counted wait's ``min(equity, 0)`` at the decision price, USD.
    n_units, order, product, units, cash, tape, tables, pol, fill_mode, chunk_size : various
        As :func:`decoupled_count_nb`'s.
    """
    n = units.shape[0]
    n_chunks = slots.shape[0]
    for unit in prange(n_units):
        for ch in range(unit, n_chunks, n_units):
            _walk_nb(ch * chunk_size, min(n, (ch + 1) * chunk_size), ch, order, product, units,
                     cash, tape, tables, pol, fill_mode, False, WALK_APPLY, marks, counts,
                     counts, slots, wait_slots, marks, out, records, cash_delta, wait_equity,
                     np.empty(0, np.int32))


@njit
def decoupled_metrics_nb(product, counts, slots, records, cash_delta, waits, wait_slots,
                         wait_equity, x_long, scale, step_out):
    """Fill the per-step aggregates of ``step_out`` from the records, as the step loop sums.

    Per step (serial, O(records + chunks x steps), after the two walks; the fused walk's path
    sums the steps in parallel blocks, :func:`backtest.kernels.decoupled_fused_nb.
    settle_records_nb`, with :func:`step_metrics_nb`): each chunk with records sums them in
    account order from 0, and the chunk sums are added to the row in chunk order
    (:func:`backtest.kernels.steps_nb.run_steps_nb`, pass 2); the net flow at the decision
    price likewise. Then the step's price, execution and slice factors (1: no impact, no
    budgets), margin scale and oracle price.

    Parameters
    ----------
    product : ndarray, shape (N,), int8
        Products in the book's order.
    counts, slots : ndarray, shape (n_chunks, T), int64
        Records per (chunk, step) and the slot after each group's last (after
        :func:`decoupled_apply_nb`).
    records, cash_delta : ndarray, shape (R,)
        The records and their cash changes (:func:`decoupled_apply_nb`).
    waits, wait_slots : ndarray, shape (n_chunks, T), int64
        Waits the step loop counts per (chunk, step) (none where the chunk has no event) and
        the slot after each group's last.
    wait_equity : ndarray, shape (W,), float64
        Their ``min(equity, 0)``, USD (:func:`decoupled_apply_nb`).
    x_long, scale : ndarray, shape (T,), float64
        The longs' decision price, USD per unit, and the perp margin scale per step.
    step_out : ndarray, shape (T, N_STEP_METRICS), float64
        Zeros; filled except the insurance waterfall's columns.
    """
    acc = np.zeros(_N_SUMMED)
    for t in range(counts.shape[1]):
        step_metrics_nb(t, t, product, counts, slots, records, cash_delta, waits, wait_slots,
                        wait_equity, x_long, scale, step_out, acc)


@njit
def step_metrics_nb(t, col, product, counts, slots, records, cash_delta, waits, wait_slots,
                    wait_equity, x_long, scale, step_out, acc):
    """Fill row ``t`` of ``step_out`` (:func:`decoupled_metrics_nb`, one step).

    Parameters
    ----------
    t, col : int
        The step, and its column in ``slots`` and ``wait_slots``.
    slots, wait_slots : ndarray, shape (n_chunks, C), int64
        The slot after the last record (kept wait) of chunk ``ch`` at step ``t`` in column
        ``col``.
    acc : ndarray, shape (N_SUMMED_METRICS,), float64
        Scratch.
    product, counts, records, cash_delta, waits, wait_equity, x_long, scale, step_out : various
        As :func:`decoupled_metrics_nb`'s.
    """
    n_chunks = counts.shape[0]
    total_flow = 0.0
    for ch in range(n_chunks):
        cnt = counts[ch, t]
        if cnt == 0:
            continue
        for kk in range(_N_SUMMED):
            acc[kk] = 0.0
        flow = 0.0
        for j in range(slots[ch, col] - cnt, slots[ch, col]):
            r = records[j]
            signed = r["units_closed"]
            pe = r["fill_price"]
            bad = r["bad_debt"]
            p = r["decision_price"]
            d = abs(signed)
            long_side = signed > 0.0
            prod = product[r["account"]]
            flow += -d * p if long_side else d * p
            acc[_N_LIQ] += 1.0
            if r["closed"]:
                acc[_N_CLOSED] += 1.0
            if bad > 0.0:
                acc[_N_BANKRUPT] += 1.0
            acc[_NOTIONAL] += d * pe
            acc[_KEEPER] += r["keeper_fee"]
            acc[_INSURANCE] += r["insurance_fee"]
            acc[_BAD_DEBT] += bad
            if bad > 0.0 and prod != _LOAN:
                if long_side:
                    acc[_BAD_LONG] += bad
                    acc[_BANKRUPT_UNITS_LONG] += d
                else:
                    acc[_BAD_SHORT] += bad
                    acc[_BANKRUPT_UNITS_SHORT] += d
            acc[_IMPACT_COST] += d * (p - pe) if long_side else d * (pe - p)
            if prod == _LOAN:
                acc[_CASH_LOAN] += cash_delta[j]
                acc[_UNITS_LOAN] -= signed
            else:
                acc[_CASH_PERP] += cash_delta[j]
                if long_side:
                    acc[_UNITS_LONG] -= signed
                else:
                    acc[_UNITS_SHORT] -= signed
        for w in range(wait_slots[ch, col] - waits[ch, t], wait_slots[ch, col]):
            acc[_N_WAITING] += 1.0
            acc[_WAITING_EQUITY] += wait_equity[w]
        for kk in range(_N_SUMMED):
            step_out[t, kk] += acc[kk]
        total_flow += flow + 0.0
    step_out[t, _SLICE] = 1.0
    step_out[t, _MARGIN_SCALE] = scale[t]
    step_out[t, _PRICE_FACTOR] = 1.0
    step_out[t, _EXEC_FACTOR] = 1.0
    step_out[t, _ORACLE] = x_long[t]
    step_out[t, _NET_FLOW] = total_flow


@njit
def decoupled_waterfall_nb(step_out, market_state, waterfall):
    """Run the insurance-fund waterfall over every step in order (the step loop's, serial).

    Parameters
    ----------
    step_out : ndarray, shape (T, N_STEP_METRICS), float64
        Per-step aggregates; the waterfall's columns are written.
    market_state : ndarray, shape (MARKET_STATE_SIZE,), float64
        Holds the insurance fund balance before the first step; updated.
    waterfall : int
        :class:`backtest.kernels.enums.Waterfall`.

    Returns
    -------
    int
        The first step that left an auto-deleveraging pending, or -1 (none).
    """
    last = step_out.shape[0] - 1
    for t in range(step_out.shape[0]):
        if settle_step_nb(t, step_out, market_state, waterfall, last):
            return t
    return -1
