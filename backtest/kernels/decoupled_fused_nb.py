"""The decoupled path's single walk: three parallel regions, no serial pass over the accounts.

:mod:`backtest.kernels.decoupled_nb` walks every reachable account twice: once to count the
events per (chunk, step), which gives each record its slot in the step loop's order (by step,
then chunk, then position), and once more to write the records into those slots. Here each
account is walked once, and every pass over the accounts or the records is a parallel region
(a serial pass gets one runnable thread's share of a loaded machine, while the brute-force
kernels keep both threads runnable; brief H16 in ``bench/RESULTS.md``):

1. :func:`reachable_nb` (over blocks of book rows, read sequentially) marks the accounts whose
   initial trigger key passes the filter at some step and writes every account's initial
   outputs (the walks then write only the reachable accounts' rows);
2. :func:`decoupled_walk_nb` (chunks dealt to the threads in turn; the same walk function as
   the two walks, in its fused mode) lists each chunk's reachable accounts, gathers their
   state by position, walks them front to back appending its records, in walk order
   (position, then step), to the chunk's own stretch of the record buffer, counts them per
   (chunk, step) as the counting walk does, and scatters the accounts' outputs to their book
   rows. Chunk ``ch``'s stretch starts at ``ch * chunk_size * per_rec`` (the buffer is
   reserved for every position but only the pages written are ever mapped, see
   :func:`backtest.engine.decoupled._lazy`), and holds ``per_rec`` records per reachable
   account of the chunk;
3. :func:`settle_records_nb` (over blocks of steps) moves every record into its slot (the
   prefix sums of the counts over (step, chunk)), and sums the per-step aggregates
   (:func:`backtest.kernels.decoupled_nb.step_metrics_nb`, the step loop's order). The slots
   of a block of steps are one contiguous run of the records, so blocks write disjoint
   records and rows of the aggregates.

The records of one (chunk, step) keep their walk order, which is position order, so the result
is the two-walk path's, bit for bit, whatever the thread count or the blocks of steps (a
chunk's work and its stretch of the buffer do not depend on which thread walks it; a step's
slots and sums do not depend on the block it falls in). A chunk whose records or waits outgrow
its stretch stops with ``STATUS_OVERFLOW``, and the driver walks twice instead. Work is shared
by dealing chunks (and blocks of steps) to threads explicitly: numba's OpenMP layer gives each
thread a fixed, contiguous share of a ``prange`` whatever ``numba.set_parallel_chunksize``
says, and the reachable accounts sit in adjacent chunks (the processing order sorts by
liquidation price), so contiguous halves left one thread all of W1's walk at 100k accounts.
"""

from __future__ import annotations

import numpy as np

from backtest._jit import njit, njit_parallel, prange
from backtest.kernels.decoupled_nb import WALK_FUSED, _walk_nb, step_metrics_nb
from backtest.kernels.enums import N_SUMMED_METRICS
from backtest.kernels.liquidation_nb import trigger_key_nb


@njit_parallel
def reachable_nb(product, units, cash, m_rate, lo_min, neg_hi_min, block, maybe, counts,
                 out):
    """Mark the accounts whose trigger key passes the filter at some step; write all outputs.

    Accounts are marked in book order, and every account's outputs are written as they are
    before any event.

    One parallel region over blocks of ``block`` book rows, read and written sequentially (the
    walks then read and write the rows of only the marked accounts, at random through the
    processing order).

    Parameters
    ----------
    product : ndarray, shape (N,), int8
    units, cash : ndarray, shape (N,), float64
        The book's accounts: asset units, USD.
    m_rate : ndarray, shape (N_PRODUCTS,), float64
        Maintenance rate per product, fraction of notional.
    lo_min, neg_hi_min : float
        The smallest ``lo_key`` and ``-hi_key`` of the window
        (:func:`backtest.kernels.decoupled_nb.filter_bounds_nb`), USD per unit.
    block : int
        Book rows per block.
    maybe : ndarray, shape (N,), uint8
        Receives 1 where the account's initial key ``k`` passes (``lo_min <= k``, or ``k < 0``
        and ``neg_hi_min <= k``), else 0.
    counts : ndarray, shape (ceil(N / block),), int64
        Receives the number of marked accounts per block.
    out : tuple of eight ndarrays, shape (N,), book order
        ``(units, cash, n_liquidations, first_step, last_step, liquidated_notional,
        penalties_paid, bad_debt)`` (float64, float64, int32 x 3, float64 x 3): receive the
        initial units and cash, 0, -1, -1, 0, 0, 0.
    """
    n = units.shape[0]
    u_o, c_o, n_liq_o, first_o, last_o, notional_o, pen_o, bad_o = out
    for j in prange(counts.shape[0]):
        count = 0
        for b in range(j * block, min(n, (j + 1) * block)):
            u_o[b] = units[b]
            c_o[b] = cash[b]
            n_liq_o[b] = 0
            first_o[b] = -1
            last_o[b] = -1
            notional_o[b] = 0.0
            pen_o[b] = 0.0
            bad_o[b] = 0.0
            k = trigger_key_nb(units[b], cash[b], m_rate[product[b]])
            if lo_min <= k or (k < 0.0 and neg_hi_min <= k):
                maybe[b] = 1
                count += 1
            else:
                maybe[b] = 0
        counts[j] = count


@njit_parallel
def decoupled_walk_nb(n_units, order, maybe, chunk_size, room, product, units, cash, tape,
                      tables, pol, fill_mode, adl, counts, waits, cursor, wait_cursor, out,
                      buffer, buffer_delta, wait_buffer, wait_buffer_step, flags):
    """Walk each chunk's reachable accounts once: count, store final state, buffer records.

    One parallel region over ``n_units`` units (one per thread), unit ``k`` walking chunks
    ``k, k + n_units, ...`` in turn (see the module's note on sharing). Chunk ``ch`` lists its
    reachable accounts' book rows by position, gathers their product, units and cash (a tight
    loop of independent loads), walks them (:func:`backtest.kernels.decoupled_nb._walk_nb`,
    fused mode) reading and writing its position-ordered arrays front to back, and scatters
    their outputs to their book rows.
    The walk of an account touched about eleven cache lines at random in book-order arrays
    (three reads, eight outputs) when it read and wrote them in place: at 1M accounts,
    arrays larger than the caches, that made the walk several times slower (W1, 1 and 2
    threads: 117 ms against 19 ms for the walk alone at 2 threads in one measurement).

    Parameters
    ----------
    n_units : int
        Threads to deal the chunks to (changes no result).
    order : ndarray, shape (N,), int64
        Processing order: the book row at each position.
    maybe : ndarray, shape (N,), uint8
        :func:`reachable_nb` (book order).
    chunk_size : int
        Positions per chunk.
    room : tuple of two ints
        Records and waits a reachable account may buffer (``BUFFER_PER_ACCOUNT``); chunk
        ``ch``'s stretches start at ``ch * chunk_size`` times these.
    product, units, cash, tape, tables, pol, fill_mode, adl : various
        As :func:`backtest.kernels.decoupled_nb.decoupled_count_nb`'s.
    counts, waits : ndarray, shape (n_chunks, T), int64
        Zeros; receive the events and waits per (chunk, step).
    cursor, wait_cursor : ndarray, shape (n_chunks, 2), int64
        Receive each chunk's stretch of ``buffer`` (``wait_buffer``): its start, advanced past
        the chunk's last record (wait), and its end.
    out : tuple of eight ndarrays, shape (N,), book order
        ``(units, cash, n_liquidations, first_step, last_step, liquidated_notional,
        penalties_paid, bad_debt)``: the initial units and cash, zeros and -1 (first/last
        step) (:func:`reachable_nb`); the reachable accounts' rows are written.
    buffer : ndarray, shape (N * room[0],), ``RECORD_DTYPE``
        Receives each chunk's records in walk order.
    buffer_delta : ndarray, shape (N * room[0],), float64
        Receives each record's change of the account's cash, USD.
    wait_buffer : ndarray, shape (N * room[1],), float64
        Receives each wait's ``min(equity, 0)``, USD.
    wait_buffer_step : ndarray, shape (N * room[1],), int32
        Receives each wait's step.
    flags : ndarray, shape (n_chunks,), int64
        Receives each chunk's status (``STATUS_OK``, ``STATUS_PERP_BAD_DEBT``,
        ``STATUS_OVERFLOW``).
    """
    n = order.shape[0]
    n_chunks = counts.shape[0]
    for unit in prange(n_units):
        for ch in range(unit, n_chunks, n_units):
            _walk_chunk_nb(ch, order, maybe, chunk_size, room, n, product, units, cash, tape,
                           tables, pol, fill_mode, adl, counts, waits, cursor, wait_cursor, out,
                           buffer, buffer_delta, wait_buffer, wait_buffer_step, flags)


@njit
def _walk_chunk_nb(ch, order, maybe, chunk_size, room, n, product, units, cash, tape, tables,
                   pol, fill_mode, adl, counts, waits, cursor, wait_cursor, out, buffer,
                   buffer_delta, wait_buffer, wait_buffer_step, flags):
    """One chunk of :func:`decoupled_walk_nb`: list, gather, walk, scatter."""
    u_o, c_o, n_liq_o, first_o, last_o, notional_o, pen_o, bad_o = out
    no_bytes = np.empty(0, np.uint8)
    lo = ch * chunk_size
    hi = min(n, lo + chunk_size)
    listed = np.empty(hi - lo, np.int64)
    m = 0
    for i in range(lo, hi):
        b = order[i]
        if maybe[b] != 0:
            listed[m] = b
            m += 1
    my_rows = listed[:m]
    per_rec, per_wait = room
    cursor[ch, 0] = lo * per_rec
    cursor[ch, 1] = lo * per_rec + m * per_rec
    wait_cursor[ch, 0] = lo * per_wait
    wait_cursor[ch, 1] = lo * per_wait + m * per_wait
    p = np.empty(m, np.int8)
    u = np.empty(m)
    c = np.empty(m)
    for q in range(m):
        b = my_rows[q]
        p[q] = product[b]
        u[q] = units[b]
        c[q] = cash[b]
    mine = (u.copy(), c.copy(), np.zeros(m, np.int32), np.full(m, -1, np.int32),
            np.full(m, -1, np.int32), np.zeros(m), np.zeros(m), np.zeros(m))
    flags[ch] = _walk_nb(0, m, ch, my_rows, p, u, c, tape, tables, pol, fill_mode, adl,
                         WALK_FUSED, no_bytes, counts, waits, cursor, wait_cursor,
                         no_bytes, mine, buffer, buffer_delta, wait_buffer,
                         wait_buffer_step)
    u2, c2, n_liq, first, last, notional, pen, bad = mine
    for q in range(m):
        b = my_rows[q]
        u_o[b] = u2[q]
        c_o[b] = c2[q]
        n_liq_o[b] = n_liq[q]
        first_o[b] = first[q]
        last_o[b] = last[q]
        notional_o[b] = notional[q]
        pen_o[b] = pen[q]
        bad_o[b] = bad[q]


@njit_parallel
def settle_records_nb(bounds, counts, waits, cursor, wait_cursor, rec_start, wait_start,
                      rec_base, wait_base, buffer, buffer_delta, wait_buffer, wait_buffer_step,
                      product, x_long, scale, records, cash_delta, wait_equity, step_out):
    """Move the buffered records and kept waits into the step loop's order; sum each step.

    One parallel region over blocks of steps ``bounds[j] .. bounds[j + 1]``: a block computes
    its steps' slots (records by step, then chunk, then position), moves the records and kept
    waits of its steps from every chunk's stretch of the buffers (in walk order, which is
    position order within a (chunk, step)), then fills its rows of ``step_out``
    (:func:`backtest.kernels.decoupled_nb.step_metrics_nb`). Blocks write disjoint records and
    rows, so neither the blocks nor the thread count change a byte.

    Parameters
    ----------
    bounds : ndarray, shape (B + 1,), int64
        Block edges in steps, non-decreasing, ``bounds[0] = 0``, ``bounds[B] = T``.
    counts, waits : ndarray, shape (n_chunks, T), int64
        Events and kept waits per (chunk, step) (waits only where the chunk has an event: the
        step loop counts waits only in the chunks it visits).
    cursor, wait_cursor : ndarray, shape (n_chunks, 2), int64
        After the walk: the end of each chunk's records (waits) in the buffers.
    rec_start, wait_start : ndarray, shape (n_chunks,), int64
        Where each chunk's stretch of the buffers begins.
    rec_base, wait_base : ndarray, shape (T,), int64
        Records (kept waits) of all steps before each step: the first slot of the step.
    buffer, buffer_delta, wait_buffer, wait_buffer_step : ndarray, shape (capacity,)
        The walk's buffers (:func:`decoupled_walk_nb`).
    product : ndarray, shape (N,), int8
        Products in the book's order.
    x_long, scale : ndarray, shape (T,), float64
        The longs' decision price, USD per unit, and the perp margin scale per step.
    records : ndarray, shape (R,), ``RECORD_DTYPE``
    cash_delta : ndarray, shape (R,), float64
    wait_equity : ndarray, shape (W,), float64
        Receive the records, their cash changes and the kept waits, in slot order (every
        slot is written).
    step_out : ndarray, shape (T, N_STEP_METRICS), float64
        Zeros; filled except the insurance waterfall's columns.
    """
    n_chunks = counts.shape[0]
    for blk in prange(bounds.shape[0] - 1):
        t0 = bounds[blk]
        t1 = bounds[blk + 1]
        if t1 <= t0:
            continue
        width = t1 - t0
        slots = np.empty((n_chunks, width), np.int64)
        wait_slots = np.empty((n_chunks, width), np.int64)
        busy = np.zeros(n_chunks, np.bool_)  # chunks with a record or kept wait in the block
        for t in range(t0, t1):
            s = rec_base[t]
            w = wait_base[t]
            for ch in range(n_chunks):
                slots[ch, t - t0] = s
                s += counts[ch, t]
                wait_slots[ch, t - t0] = w
                w += waits[ch, t]
                if counts[ch, t] > 0:
                    busy[ch] = True
        for ch in range(n_chunks):
            if not busy[ch]:
                continue
            for q in range(rec_start[ch], cursor[ch, 0]):
                t = buffer[q]["step"]
                if t < t0 or t >= t1:
                    continue
                j = slots[ch, t - t0]
                slots[ch, t - t0] = j + 1
                records[j] = buffer[q]
                cash_delta[j] = buffer_delta[q]
            for q in range(wait_start[ch], wait_cursor[ch, 0]):
                t = wait_buffer_step[q]
                if t < t0 or t >= t1 or counts[ch, t] == 0:
                    continue
                w = wait_slots[ch, t - t0]
                wait_slots[ch, t - t0] = w + 1
                wait_equity[w] = wait_buffer[q]
        acc = np.zeros(N_SUMMED_METRICS)
        for t in range(t0, t1):
            step_metrics_nb(t, t - t0, product, counts, slots, records, cash_delta, waits,
                            wait_slots, wait_equity, x_long, scale, step_out, acc)
