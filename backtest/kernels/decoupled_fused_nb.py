"""The decoupled path's single walk: four parallel regions, no serial pass over the accounts.

:mod:`backtest.kernels.decoupled_nb` walks every reachable account twice: once to count the
events per (chunk, step), which gives each record its slot in the step loop's order (by step,
then chunk, then position), and once more to write the records into those slots. Here each
account is walked once, and every pass over the accounts or the records is a parallel region
(a serial pass gets one core's share on a loaded machine, while the brute-force kernels' second
thread takes whatever core time comes free; brief H16 in ``bench/RESULTS.md``):

1. :func:`reachable_nb` (over blocks of book rows, read sequentially) marks the accounts whose
   initial trigger key passes the filter at some step, and :func:`chunk_reach_nb` (over
   chunks of positions) counts them per chunk, which sizes each chunk's stretch of the record
   buffer;
2. :func:`decoupled_walk_nb` (over chunks; the same walk function as the two walks, in its
   fused mode) lists its marked accounts, gathers their state by position, walks them front
   to back appending its records, in walk order (position, then step), to its own stretch of
   the buffer, counts them per (chunk, step) as the counting walk does, and scatters the
   accounts' outputs to their book rows;
3. :func:`settle_records_nb` (over blocks of steps) moves every record into its slot (the
   prefix sums of the counts over (step, chunk)), and sums the per-step aggregates
   (:func:`backtest.kernels.decoupled_nb.step_metrics_nb`, the step loop's order). The slots
   of a block of steps are one contiguous run of the records, so blocks write disjoint
   records and rows of the aggregates.

The records of one (chunk, step) keep their walk order, which is position order, so the result
is the two-walk path's, bit for bit, whatever the thread count or the blocks of steps (a
chunk's work and its stretch of the buffer do not depend on which thread walks it; a step's
slots and sums do not depend on the block it falls in). A chunk whose records or waits outgrow
its stretch stops with ``STATUS_OVERFLOW``, and the driver walks twice instead.
"""

from __future__ import annotations

import numpy as np

from backtest._jit import njit, njit_parallel, prange
from backtest.kernels.enums import N_SUMMED_METRICS
from backtest.kernels.decoupled_nb import WALK_FUSED, _walk_nb, step_metrics_nb
from backtest.kernels.liquidation_nb import trigger_key_nb


@njit_parallel
def reachable_nb(product, units, cash, m_rate, lo_min, neg_hi_min, block, maybe, counts):
    """Mark the accounts whose trigger key passes the filter at some step (book order).

    One parallel region over blocks of ``block`` book rows, read sequentially (the walk then
    reads the state of only these accounts, at random through the processing order).

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
    """
    n = units.shape[0]
    for j in prange(counts.shape[0]):
        count = 0
        for b in range(j * block, min(n, (j + 1) * block)):
            k = trigger_key_nb(units[b], cash[b], m_rate[product[b]])
            if lo_min <= k or (k < 0.0 and neg_hi_min <= k):
                maybe[b] = 1
                count += 1
            else:
                maybe[b] = 0
        counts[j] = count


@njit_parallel
def chunk_reach_nb(order, maybe, chunk_size, reach):
    """Count each chunk's reachable accounts (one parallel region over chunks of positions).

    Parameters
    ----------
    order : ndarray, shape (N,), int64
        Processing order: the book row at each position.
    maybe : ndarray, shape (N,), uint8
        :func:`reachable_nb` (book order).
    chunk_size : int
        Positions per chunk.
    reach : ndarray, shape (ceil(N / chunk_size),), int64
        Receives the number of positions ``i`` of each chunk with ``maybe[order[i]] == 1``.
    """
    n = order.shape[0]
    for ch in prange(reach.shape[0]):
        count = 0
        for i in range(ch * chunk_size, min(n, (ch + 1) * chunk_size)):
            if maybe[order[i]] != 0:
                count += 1
        reach[ch] = count


@njit_parallel
def decoupled_walk_nb(cuts, order, maybe, start, chunk_size, product, units, cash, tape, tables, pol,
                      fill_mode, adl, counts, waits, cursor, wait_cursor, out, buffer,
                      buffer_delta, wait_buffer, wait_buffer_step, flags):
    """Walk each chunk's marked accounts once: count, store final state, buffer records.

    One parallel region over ``len(cuts) - 1`` units of consecutive chunks (one per thread:
    numba's OpenMP layer hands each thread a fixed share of a ``prange``, whatever
    ``numba.set_parallel_chunksize`` says, and the reachable accounts sit in a few adjacent
    chunks, the book being ordered by liquidation price, so equal shares of chunks left one
    thread all of W1's walk at 100k accounts); each unit walks its chunks in order. Chunk
    ``ch`` lists its reachable accounts' book rows by position, gathers their product, units and cash (a tight loop of independent loads), walks
    them (:func:`backtest.kernels.decoupled_nb._walk_nb`, fused mode) reading and writing its
    position-ordered arrays front to back, and scatters their outputs to their book rows.
    The walk of an account touched about eleven cache lines at random in book-order arrays
    (three reads, eight outputs) when it read and wrote them in place: at 1M accounts,
    arrays larger than the caches, that made the walk several times slower (W1, 1 and 2
    threads: 117 ms against 19 ms for the walk alone at 2 threads in one measurement).

    Parameters
    ----------
    cuts : ndarray, shape (units + 1,), int64
        Unit edges in chunks, non-decreasing, from 0 to ``n_chunks``; they share the work
        among threads and change no result.
    order : ndarray, shape (N,), int64
        Processing order: the book row at each position.
    maybe : ndarray, shape (N,), uint8
        :func:`reachable_nb` (book order).
    start : ndarray, shape (n_chunks + 1,), int64
        Prefix sums of :func:`chunk_reach_nb`: chunk ``ch`` has ``start[ch + 1] - start[ch]``
        reachable accounts.
    chunk_size : int
        Positions per chunk.
    product, units, cash, tape, tables, pol, fill_mode, adl : various
        As :func:`backtest.kernels.decoupled_nb.decoupled_count_nb`'s.
    counts, waits : ndarray, shape (n_chunks, T), int64
        Zeros; receive the events and waits per (chunk, step).
    cursor, wait_cursor : ndarray, shape (n_chunks, 2), int64
        Each chunk's stretch of ``buffer`` (``wait_buffer``): next free slot and end; the
        first column is advanced past the chunk's last record (wait).
    out : tuple of eight ndarrays, shape (N,), book order
        ``(units, cash, n_liquidations, first_step, last_step, liquidated_notional,
        penalties_paid, bad_debt)``: the initial units and cash, zeros and -1 (first/last
        step); the reachable accounts' rows are written.
    buffer : ndarray, shape (capacity,), ``RECORD_DTYPE``
        Receives each chunk's records in walk order.
    buffer_delta : ndarray, shape (capacity,), float64
        Receives each record's change of the account's cash, USD.
    wait_buffer : ndarray, shape (wait capacity,), float64
        Receives each wait's ``min(equity, 0)``, USD.
    wait_buffer_step : ndarray, shape (wait capacity,), int32
        Receives each wait's step.
    flags : ndarray, shape (n_chunks,), int64
        Receives each chunk's status (``STATUS_OK``, ``STATUS_PERP_BAD_DEBT``,
        ``STATUS_OVERFLOW``).
    """
    n = order.shape[0]
    for unit in prange(cuts.shape[0] - 1):
        for ch in range(cuts[unit], cuts[unit + 1]):
            _walk_chunk_nb(ch, order, maybe, start, chunk_size, n, product, units, cash, tape,
                           tables, pol, fill_mode, adl, counts, waits, cursor, wait_cursor, out,
                           buffer, buffer_delta, wait_buffer, wait_buffer_step, flags)


@njit
def _walk_chunk_nb(ch, order, maybe, start, chunk_size, n, product, units, cash, tape, tables,
                   pol, fill_mode, adl, counts, waits, cursor, wait_cursor, out, buffer,
                   buffer_delta, wait_buffer, wait_buffer_step, flags):
    """One chunk of :func:`decoupled_walk_nb`: list, gather, walk, scatter."""
    u_o, c_o, n_liq_o, first_o, last_o, notional_o, pen_o, bad_o = out
    no_bytes = np.empty(0, np.uint8)
    m = start[ch + 1] - start[ch]
    my_rows = np.empty(m, np.int64)
    q = 0
    for i in range(ch * chunk_size, min(n, (ch + 1) * chunk_size)):
        b = order[i]
        if maybe[b] != 0:
            my_rows[q] = b
            q += 1
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
