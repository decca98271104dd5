"""The decoupled path's single walk: count and write in one parallel region, then compact.

:mod:`backtest.kernels.decoupled_nb` walks every reachable account twice: once to count the
events per (chunk, step), which gives each record its slot in the step loop's order (by step,
then chunk, then position), and once more to write the records into those slots. Here each
account is walked once (:func:`decoupled_walk_nb`, the same walk function in its fused mode):
a chunk appends its records, in its walk order (position, then step), to its own stretch of a
scratch buffer, sized before the walk from the chunk's reachable accounts
(:func:`reachable_rows_nb`), and counts them per (chunk, step) as the counting walk does.
:func:`compact_nb` then moves every record into its slot (the same prefix sums over (step,
chunk)); the records of one (chunk, step) keep their walk order, which is position order, so
the result is the two-walk path's, bit for bit, whatever the thread count (a chunk's work and
its stretch of the buffer do not depend on which thread walks it). A chunk whose records or
waits outgrow its stretch stops with ``STATUS_OVERFLOW``, and the driver walks twice instead.

The walk reads only the reachable accounts' rows, listed in position order by one serial pass
(no byte per account to test in the walk, no chunk walked for nothing); each chunk gathers
their state into small arrays by position, walks them front to back, writes its records
sequentially into its stretch of the buffer, and scatters the accounts' outputs to their book
rows at the end (tight copy loops in the same region); the records' scattered writes move to
:func:`compact_nb`, a copy loop with no walk around it.
"""

from __future__ import annotations

import numpy as np

from backtest._jit import njit, njit_parallel, prange
from backtest.kernels.decoupled_nb import WALK_FUSED, _walk_nb


@njit
def reachable_rows_nb(order, maybe, chunk_size, n_chunks):
    """List the reachable accounts' book rows in processing order, with each chunk's start.

    Parameters
    ----------
    order : ndarray, shape (N,), int64
        Processing order: the book row at each position.
    maybe : ndarray, shape (N,), uint8
        :func:`backtest.kernels.decoupled_nb.reachable_nb` (book order).
    chunk_size : int
        Positions per chunk.
    n_chunks : int
        ``ceil(N / chunk_size)``.

    Returns
    -------
    rows : ndarray, shape (R,), int64
        Book rows of the reachable accounts, by position.
    start : ndarray, shape (n_chunks + 1,), int64
        ``rows[start[ch]:start[ch + 1]]`` are chunk ``ch``'s.
    """
    n = order.shape[0]
    total = 0
    for i in range(n):
        total += maybe[order[i]]
    rows = np.empty(total, np.int64)
    start = np.zeros(n_chunks + 1, np.int64)
    r = 0
    for ch in range(n_chunks):
        start[ch] = r
        for i in range(ch * chunk_size, min(n, (ch + 1) * chunk_size)):
            b = order[i]
            if maybe[b] != 0:
                rows[r] = b
                r += 1
    start[n_chunks] = r
    return rows, start


@njit_parallel
def decoupled_walk_nb(rows, start, product, units, cash, tape, tables, pol, fill_mode, adl, counts, waits, cursor, wait_cursor, out, buffer,
                      buffer_delta, wait_buffer, wait_buffer_step, flags):
    """Walk each chunk's reachable accounts once: count, store final state, buffer records.

    One parallel region over the chunks; chunk ``ch`` gathers its reachable accounts' product,
    units and cash by position (a tight loop of independent loads), walks them
    (:func:`backtest.kernels.decoupled_nb._walk_nb`, fused mode) reading and writing its
    position-ordered arrays front to back, and scatters their outputs to their book rows.
    The walk of an account touched about eleven cache lines at random in book-order arrays
    (three reads, eight outputs) when it read and wrote them in place: at 1M accounts,
    arrays larger than the caches, that made the walk several times slower (W1, 1 and 2
    threads: 117 ms against 19 ms for the walk alone at 2 threads in one measurement).

    Parameters
    ----------
    rows, start : ndarray, shapes (R,) and (n_chunks + 1,), int64
        :func:`reachable_rows_nb`.
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
    u_o, c_o, n_liq_o, first_o, last_o, notional_o, pen_o, bad_o = out
    no_bytes = np.empty(0, np.uint8)
    for ch in prange(counts.shape[0]):
        q0 = start[ch]
        m = start[ch + 1] - q0
        my_rows = rows[q0:q0 + m]
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


@njit
def compact_nb(counts, waits, cursor, wait_cursor, rec_start, wait_start, buffer, buffer_delta,
               wait_buffer, wait_buffer_step, slots, wait_slots, records, cash_delta,
               wait_equity):
    """Move the buffered records and the counted waits into the step loop's order (serial).

    Parameters
    ----------
    counts, waits : ndarray, shape (n_chunks, T), int64
        Events and waits per (chunk, step) (:func:`decoupled_walk_nb`); only the waits of
        (chunk, step)s with an event are kept (the step loop visits only those).
    cursor, wait_cursor : ndarray, shape (n_chunks, 2), int64
        After the walk: the end of each chunk's records (waits) in the buffers.
    rec_start, wait_start : ndarray, shape (n_chunks,), int64
        Where each chunk's stretch of the buffers begins.
    buffer, buffer_delta, wait_buffer, wait_buffer_step : ndarray, shape (capacity,)
        The walk's buffers (:func:`decoupled_walk_nb`).
    slots, wait_slots : ndarray, shape (n_chunks, T), int64
        :func:`backtest.kernels.decoupled_nb.record_slots_nb` of ``counts`` and of the kept
        waits; advanced to each group's end.
    records : ndarray, shape (R,), ``RECORD_DTYPE``
    cash_delta : ndarray, shape (R,), float64
    wait_equity : ndarray, shape (W,), float64
        Receive the records, their cash changes and the kept waits, in slot order.
    """
    for ch in range(counts.shape[0]):
        for q in range(rec_start[ch], cursor[ch, 0]):
            t = buffer[q]["step"]
            j = slots[ch, t]
            slots[ch, t] = j + 1
            records[j] = buffer[q]
            cash_delta[j] = buffer_delta[q]
        for q in range(wait_start[ch], wait_cursor[ch, 0]):
            t = wait_buffer_step[q]
            if counts[ch, t] == 0:
                continue
            w = wait_slots[ch, t]
            wait_slots[ch, t] = w + 1
            wait_equity[w] = wait_buffer[q]
