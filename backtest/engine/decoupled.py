"""The decoupled path of :func:`backtest.engine.dispatch.simulate`: when it applies, and the run.

A run is decoupled when accounts do not interact, so each can be walked through the window on
its own (:mod:`backtest.kernels.decoupled_nb`: first-passage search, O(log T) per account and
event; a hard run walks once, :data:`FUSED_WALK`, other families twice; thread counts:
:data:`SERIAL_SIDES_MAX_ACCOUNTS`, :data:`SERIAL_MAX_REACHABLE`). :func:`decoupled_reason`
says why a run is not; :func:`run_decoupled` runs one that is and returns the
:class:`SimulationResult` the step loop would, bit for bit (records in the same order, per-step
aggregates summed in the same order, the insurance fund's running balance), or None when the
inputs are not decoupled (or not valid: the step loop then raises its own error) or the walk
met a case only the step loop models (bad debt on a perp with auto-deleveraging as the
waterfall).

``simulate(..., path=...)`` picks: ``"auto"`` (default) takes this path whenever
:func:`decoupled_reason` is None and the walk completes; ``"time-major"`` always steps; and
``"decoupled"`` requires this path (``ValueError`` otherwise), for tests and the benchmark.

Why over 400 lines: it is the one driver of the decoupled kernels (whether a run is decoupled,
the buffers, one walk or two, the per-step sums, the result the step loop would return), whose
parts share one walk's inputs and buffers.
"""

from __future__ import annotations

import mmap

import numba
import numpy as np

from backtest._jit import work_stealing
from backtest.kernels.book_flow_nb import N_FLOW_FIELDS
from backtest.kernels.decoupled_fused_nb import decoupled_walk_nb, reachable_nb, settle_records_nb
from backtest.kernels.decoupled_nb import (
    RECORD_DTYPE,
    STATUS_OK,
    STATUS_OVERFLOW,
    decoupled_apply_nb,
    decoupled_count_nb,
    decoupled_metrics_nb,
    decoupled_waterfall_nb,
    filter_bounds_nb,
    passage_table_nb,
    prefix_minima_nb,
    record_slots_nb,
)
from backtest.kernels.enums import (
    MARKET_DTYPE,
    MARKET_STATE_SIZE,
    N_BAND_FIELDS,
    N_RISK_INPUTS,
    N_STEP_METRICS,
    FillPrice,
    ImpactModel,
    MarketState,
    OracleModel,
    PolicyFamily,
    Product,
    RiskInput,
    TriggerPrice,
    Waterfall,
)
from backtest.results.simulation import SimulationResult

#: Values of ``simulate``'s ``path`` keyword.
PATHS = ("auto", "time-major", "decoupled")
_FAMILIES = (int(PolicyFamily.HARD), int(PolicyFamily.PARTIAL), int(PolicyFamily.GRADUATED))
#: Runs with at most this many reachable accounts (``reachable_nb``) walk with one thread (about
#: a chunk's work; W1 at 100k has 39,206). No result depends on it (``tests/test_decoupled.py``).
SERIAL_MAX_REACHABLE = 1 << 12
#: On at most 2 threads, runs of at most this many accounts mark and settle on one thread, so the
#: walk is the only parallel region: a loaded machine's descheduled thread stalls one region end,
#: not three (bench/RESULTS.md, "Serial marking and settling"). No result depends on it.
SERIAL_SIDES_MAX_ACCOUNTS = 1 << 21
#: Walk each account once, buffering records per chunk (:func:`_walk_once`); False: walk twice
#: (count, then write; also the fallback when a chunk outgrows its buffer).
FUSED_WALK = True
#: Runs with more reachable accounts walk twice even where one walk would do: the single walk
#: buffers a record per reachable account beside the compacted records (W10M: 248 bytes per
#: account against 193 for two walks; docs/performance.md).
FUSED_MAX_REACHABLE = 1 << 21
#: Buffer room per reachable account, (records, waits), for other families and for HARD (index
#: True), or None: walk twice. A hard liquidation closes the whole position (one event, no
#: wait); others may have many events and waits, so they walk twice unless given room here.
BUFFER_PER_ACCOUNT = {False: None, True: (1, 0)}


def decoupled_reason(policy: np.ndarray, market: np.ndarray, prices: tuple, funding: np.ndarray,
                     scale: np.ndarray, mark: np.ndarray | None,
                     flow_active: bool) -> str | None:
    """Return why a run is not decoupled (None: it is, the decoupled path applies).

    Parameters
    ----------
    policy : ndarray, shape (1,), ``POLICY_DTYPE``
    market : ndarray, shape (1,), ``MARKET_DTYPE``
    prices : tuple of four ndarrays, shape (T,), float64
        Open, high, low, close, USD per unit.
    funding : ndarray, shape (T,), float64
        Funding rate per step (NaN or 0: none).
    scale : ndarray, shape (T,), float64
        Perp maintenance margin scale per step.
    mark : ndarray, shape (T, 3), float64, or None
        Mark prices (low, high, close), USD per unit.
    flow_active : bool
        Whether the book moves during the window (arrivals, closes, cures).
    """
    rec, mk = policy[0], market[0]
    checks = (
        (int(rec["family"]) not in _FAMILIES, "the policy family is not hard, partial or "
                                              "graduated"),
        (rec["preempt_fraction"] > 0.0, "a pre-emptive overlay"),
        (rec["cooldown_steps"] > 0, "a cooldown between liquidations"),
        (rec["max_step_volume_fraction"] > 0.0, "order slicing by traded volume"),
        (int(mk["impact_model"]) != ImpactModel.NONE or mk["cascade"] != 0,
         "market impact or cascade feedback"),
        (int(mk["oracle_model"]) not in (OracleModel.MARKET, OracleModel.MARK),
         "an oracle whose price depends on its own state"),
        (mk["keeper_latency_steps"] > 0 or mk["keeper_requires_profit"] != 0
         or mk["keeper_capital_usd"] > 0.0, "keeper latency, profit test or capital"),
        (flow_active, "a moving book"),
        (bool(np.any(~np.isnan(funding) & (funding != 0.0))), "funding"),
        (bool(np.any(scale != 1.0)), "dynamic margin"),
    )
    for failed, reason in checks:
        if failed:
            return reason
    for name, a in zip(("open", "high", "low", "close"), prices, strict=True):
        if not (np.all(np.isfinite(a)) and np.all(a > 0.0)):
            return f"{name} prices that are not all finite and positive"
    if int(mk["oracle_model"]) == OracleModel.MARK and not (
            np.all(np.isfinite(mark)) and np.all(mark > 0.0)):
        return "mark prices that are not all finite and positive"
    return None


def policy_tuple(rec) -> tuple:
    """Policy fields in the order :mod:`backtest.kernels.decoupled_nb` reads them."""
    size_rules = np.array([rec["full_close_below_usd"], rec["large_position_usd"],
                           rec["large_position_fraction"], rec["min_remaining_usd"],
                           rec["max_calls_per_step"]], np.float64)
    return (int(rec["family"]), np.array(rec["maintenance_rate"], np.float64),
            np.array(rec["target_rate"], np.float64), np.array(rec["penalty_rate"], np.float64),
            float(rec["close_factor"]), float(rec["full_close_health"]),
            np.array(rec["tier_health"], np.float64), np.array(rec["tier_fraction"], np.float64),
            size_rules, int(rec["penalty_model"]), float(rec["penalty_cap"]),
            int(rec["seize_all_collateral"]), float(rec["keeper_share"]))


def _per_step(values) -> np.ndarray:
    return np.require(values, np.float64, ["C_CONTIGUOUS", "WRITEABLE"])


def _filled(n: int, dtype, value) -> np.ndarray:
    """Return a new array of ``n`` items, every byte written (``np.zeros`` maps pages lazily)."""
    out = np.empty(n, dtype)
    (out.view(np.uint8) if out.dtype.names else out)[...] = value
    return out


def _outputs(n: int) -> tuple:
    """Return the walks' per-account outputs (book order), unwritten.

    ``(units, cash, n_liquidations, first_step, last_step, liquidated_notional, penalties_paid,
    bad_debt)``, filled before any event by
    :func:`backtest.kernels.decoupled_fused_nb.reachable_nb`.
    """
    return (np.empty(n), np.empty(n), np.empty(n, np.int32), np.empty(n, np.int32),
            np.empty(n, np.int32), np.empty(n), np.empty(n), np.empty(n))


def _step_blocks(weight: np.ndarray, blocks: int) -> np.ndarray:
    """Edges of ``blocks`` runs of steps of about equal ``weight``, shape (blocks + 1,) int64.

    ``weight`` (shape (T,), >= 0) is the settling work per step (records and kept waits, plus
    one for the step's row); the edges only share the work among threads, no result depends
    on them (:func:`backtest.kernels.decoupled_fused_nb.settle_records_nb`).
    """
    cum = np.cumsum(weight)
    targets = (cum[-1] if len(cum) else 0) * np.arange(1, blocks) / blocks
    # each inner edge falls just after the step at which the running weight reaches its share
    inner = np.minimum(np.searchsorted(cum, targets, side="left") + 1, len(weight))
    return np.concatenate(([0], inner, [len(weight)])).astype(np.int64)


def _lazy(n: int, dtype) -> np.ndarray:
    """Return a new array of ``n`` items of ``dtype``, its pages mapped only when written.

    The fused walk's buffers, reserved for every position (each chunk's stretch at a fixed
    offset), written for the reachable ones. A private anonymous mapping (not NumPy's
    transparent huge pages, nor ``mmap``'s default shared mapping, whose shmem pages cost 1.5x
    to fault and 3x to free: W1 at 1M unmapped its record buffer in 7.7 ms, serial, of 57;
    brief H18).
    """
    dtype = np.dtype(dtype)
    if n * dtype.itemsize == 0:
        return np.empty(n, dtype)
    return np.frombuffer(mmap.mmap(-1, n * dtype.itemsize, flags=mmap.MAP_PRIVATE), dtype,
                         count=n)


def _walk_units(n_chunks: int) -> int:
    """Units the walks deal chunks to (no result depends on it).

    Under TBB one per chunk (a thread that is idle, or running while another is descheduled,
    takes unstarted chunks); under OpenMP (fixed contiguous shares) one per thread, each walking
    every k-th chunk.
    """
    return n_chunks if work_stealing() else numba.get_num_threads()


def _walk_once(walk: tuple, maybe: np.ndarray, out: tuple, family: int, x_long: np.ndarray,
               scale: np.ndarray, serial_sides: bool):
    """Walk once (:func:`backtest.kernels.decoupled_fused_nb.decoupled_walk_nb`), then settle.

    The records are settled into their slots and summed per step (``settle_records_nb``; on one
    thread if ``serial_sides``).

    ``out`` holds the accounts' outputs before any event
    (:func:`backtest.kernels.decoupled_fused_nb.reachable_nb`); the walk writes the reachable
    accounts' rows. Returns ``(records, step_out)`` (``step_out`` without the insurance
    waterfall), None if the walk met a perp's bad debt under auto-deleveraging, or False if a
    chunk outgrew its buffers (or the family has no room in :data:`BUFFER_PER_ACCOUNT`).
    """
    order, product, units, cash, tape, tables, pol, eff_fill, adl, chunk_size, n_chunks = walk
    n, n_steps = len(units), len(tape[0])
    room = BUFFER_PER_ACCOUNT[family == PolicyFamily.HARD]
    if room is None:
        return False
    per_rec, per_wait = room
    cursor = np.empty((n_chunks, 2), np.int64)
    wait_cursor = np.empty((n_chunks, 2), np.int64)
    counts = np.zeros((n_chunks, n_steps), np.int64)
    waits = np.zeros((n_chunks, n_steps), np.int64)
    flags = np.zeros(n_chunks, np.int64)
    buffer = _lazy(n * per_rec, RECORD_DTYPE)
    buffer_delta = _lazy(n * per_rec, np.float64)
    wait_buffer = _lazy(n * per_wait, np.float64)
    wait_step = _lazy(n * per_wait, np.int32)
    decoupled_walk_nb(_walk_units(n_chunks), order, maybe, chunk_size, (per_rec, per_wait),
                      product, units, cash, tape, tables, pol, eff_fill, adl, counts, waits,
                      cursor, wait_cursor, out, buffer, buffer_delta, wait_buffer, wait_step,
                      flags)
    if np.any(flags == STATUS_OVERFLOW):
        return False
    if np.any(flags != STATUS_OK):
        return None
    if per_wait:  # (else none was kept: it would have overflowed) the step loop counts waits
        waits[counts == 0] = 0  # only in the chunks it visits
    per_step, waits_per_step = counts.sum(axis=0), waits.sum(axis=0)
    records = np.empty(int(per_step.sum()), RECORD_DTYPE)  # settling writes every slot
    cash_delta = np.empty(len(records), np.float64)
    wait_equity = np.empty(int(waits_per_step.sum()), np.float64)
    step_out = np.zeros((n_steps, N_STEP_METRICS))
    if serial_sides:
        numba.set_num_threads(1)
    bounds = _step_blocks(per_step + waits_per_step + 1, numba.get_num_threads())
    first = np.arange(n_chunks, dtype=np.int64) * chunk_size
    settle_records_nb(bounds, counts, waits, cursor, wait_cursor, first * per_rec,
                      first * per_wait, np.cumsum(per_step) - per_step, np.cumsum(
                          waits_per_step) - waits_per_step, buffer, buffer_delta, wait_buffer,
                      wait_step, product, x_long, scale, records, cash_delta, wait_equity, step_out)
    return records, step_out


def _walk_twice(walk: tuple, maybe: np.ndarray, out: tuple, x_long: np.ndarray,
                scale: np.ndarray):
    """Run the counting walk, then the writing walk into the counted slots, then the sums.

    The per-step sums are serial. Returns what :func:`_walk_once` does, or None if the walk met
    a perp's bad debt under auto-deleveraging.
    """
    order, product, units, cash, tape, tables, pol, eff_fill, adl, chunk_size, n_chunks = walk
    n, n_steps = len(units), len(tape[0])
    counts = np.zeros((n_chunks, n_steps), np.int64)
    waits = np.zeros((n_chunks, n_steps), np.int64)
    flags = np.zeros(n_chunks, np.int64)
    walked = np.zeros(n, np.uint8)
    decoupled_count_nb(_walk_units(n_chunks), order, product, units, cash, tape, tables, pol,
                       eff_fill, adl, chunk_size, maybe, counts, waits, walked, flags)
    if np.any(flags != STATUS_OK):
        return None
    slots = record_slots_nb(counts)
    waits[counts == 0] = 0  # the step loop counts waits only in the chunks it visits
    wait_slots = record_slots_nb(waits)
    # written serially before the walk writes them at random (no page faults in the region)
    wait_equity = _filled(int(waits.sum()), np.float64, 0.0)
    records = _filled(int(counts.sum()), RECORD_DTYPE, 0)
    cash_delta = _filled(len(records), np.float64, 0.0)
    decoupled_apply_nb(_walk_units(n_chunks), order, product, units, cash, tape, tables, pol,
                       eff_fill, chunk_size, counts, walked, out, slots, wait_slots, records,
                       cash_delta, wait_equity)
    step_out = np.zeros((n_steps, N_STEP_METRICS))
    decoupled_metrics_nb(product, counts, slots, records, cash_delta, waits, wait_slots,
                         wait_equity, x_long, scale, step_out)
    return records, step_out


def run_decoupled(required: bool, prices, product: np.ndarray, units: np.ndarray,
                  cash: np.ndarray, order: np.ndarray, policy: np.ndarray, trigger_mode: int,
                  fill_mode: int, chunk_size: int, market: np.ndarray | None = None,
                  mark: np.ndarray | None = None, risk: np.ndarray | None = None,
                  funding_rate: np.ndarray | None = None, flow=None,
                  insurance_fund_usd: float = 0.0, impact_baseline: np.ndarray | None = None,
                  adl_dtype: np.dtype | None = None) -> SimulationResult | None:
    """Run a decoupled simulation; return its result, or None if the path is not taken.

    Arguments as :func:`backtest.engine.dispatch.simulate`'s (``product`` int8, ``units`` and
    ``cash`` float64 in the book's order, not modified; ``order`` the processing order).

    Parameters
    ----------
    required : bool
        Raise instead of returning None.
    adl_dtype : numpy.dtype
        Dtype of the (empty) auto-deleveraging records
        (:data:`backtest.engine.dispatch.ADL_FIELDS`).

    Returns
    -------
    SimulationResult or None
        What the time-major step loop returns for the same inputs, bit for bit.

    Raises
    ------
    ValueError
        ``required`` and the run is not decoupled, or the walk needs the step loop.
    """
    def decline(reason: str):
        if required:
            raise ValueError(f"path='decoupled' but the run is not decoupled: {reason}")

    n, n_steps = len(units), len(prices.close)
    o, h, lo, cl = (_per_step(a) for a in (prices.open, prices.high, prices.low, prices.close))
    market = np.zeros(1, MARKET_DTYPE) if market is None else market
    funding = np.full(n_steps, np.nan) if funding_rate is None else _per_step(funding_rate)
    if risk is None:
        scale = np.ones(n_steps)
    elif np.shape(risk) != (n_steps, N_RISK_INPUTS):
        return decline("risk inputs of the wrong shape")
    else:
        scale = np.ascontiguousarray(np.asarray(risk, np.float64)[:, RiskInput.MARGIN_SCALE])
    mark_model = int(market[0]["oracle_model"]) == OracleModel.MARK
    if mark_model and (mark is None or np.shape(mark) != (n_steps, 3)):
        return decline("mark prices missing or of the wrong shape")
    baseline = None if impact_baseline is None else _per_step(impact_baseline)
    if baseline is not None and not (baseline.shape == (n_steps,)
                                     and np.all(np.isfinite(baseline))):
        return decline("an impact baseline that is not one finite flow per step")
    if funding.shape != (n_steps,) or not all(a.shape == (n_steps,) for a in (o, h, lo)):
        return decline("per-step inputs of the wrong shape")
    reason = decoupled_reason(policy, market, (o, h, lo, cl), funding, scale,
                              None if mark is None else np.asarray(mark, np.float64),
                              flow is not None and flow.active)
    if reason is not None:
        return decline(reason)
    rec = policy[0]
    if mark_model:
        mark = np.asarray(mark, np.float64)
        col_long, col_short = (0, 1) if trigger_mode == TriggerPrice.EXTREME else (2, 2)
        x_long = np.ascontiguousarray(mark[:, col_long] * 1.0)
        x_short = np.ascontiguousarray(mark[:, col_short] * 1.0)
    elif trigger_mode == TriggerPrice.EXTREME:
        x_long, x_short = lo, h
    else:
        x_long, x_short = cl, cl
    lo_key, neg_hi_key = filter_bounds_nb(x_long, x_short, scale,
                                          float(rec["maintenance_rate"][Product.PERP]))
    tables = (*passage_table_nb(lo_key), *passage_table_nb(neg_hi_key),
              prefix_minima_nb(lo_key), prefix_minima_nb(neg_hi_key))
    eff_fill = int(FillPrice.CLOSE) if mark_model else int(fill_mode)
    pol = policy_tuple(rec)
    tape = (o, h, lo, cl, x_long, x_short)
    n_chunks = (n + chunk_size - 1) // chunk_size
    adl = int(rec["waterfall"]) == Waterfall.ADL
    walk = (order, product, units, cash, tape, tables, pol, eff_fill, adl, chunk_size, n_chunks)
    threads = numba.get_num_threads()
    # chunks differ in work: under TBB a prange iteration is a unit an idle thread may take;
    before = numba.set_parallel_chunksize(1)
    try:
        maybe = np.empty(n, np.uint8)
        blocks = np.empty((n + chunk_size - 1) // chunk_size, np.int64)
        out = _outputs(n)
        serial_sides = threads <= 2 and n <= SERIAL_SIDES_MAX_ACCOUNTS
        numba.set_num_threads(1 if serial_sides else threads)
        reachable_nb(product, units, cash, pol[1], tables[1][0], tables[3][0], chunk_size,
                     maybe, blocks, out)
        numba.set_num_threads(threads)
        n_maybe = int(blocks.sum())
        if n_maybe <= SERIAL_MAX_REACHABLE:
            numba.set_num_threads(1)  # a tiny run: no waiting for a second thread
        fused = FUSED_WALK and n_maybe <= FUSED_MAX_REACHABLE
        done = (_walk_once(walk, maybe, out, int(rec["family"]), x_long, scale, serial_sides)
                if fused else False)
        if done is False:  # a chunk outgrew its buffer (or the fused walk is off): walk twice
            if fused:  # the stopped walk wrote some outputs: back to the state before events
                for a, initial in zip(out, (units, cash, 0, -1, -1, 0.0, 0.0, 0.0), strict=True):
                    a[:] = initial
            done = _walk_twice(walk, maybe, out, x_long, scale)
        if done is None:
            if required:
                raise ValueError("path='decoupled' but the run needs the step loop: bad debt "
                                 "on a perp with auto-deleveraging as the waterfall")
            return None
        del maybe
        records, step_out = done
    finally:
        numba.set_parallel_chunksize(before)
        numba.set_num_threads(threads)
    market_state = np.zeros(MARKET_STATE_SIZE)
    market_state[MarketState.INSURANCE_FUND] = insurance_fund_usd
    pending = decoupled_waterfall_nb(step_out, market_state, int(rec["waterfall"]))
    if pending >= 0:  # excluded by the walk (no perp bad debt under ADL): a bug if reached
        raise RuntimeError(f"auto-deleveraging pending at step {pending} on the decoupled path")
    return SimulationResult(
        *out, np.zeros(n), step_out, records, np.zeros(0, adl_dtype),
        np.zeros((0, N_BAND_FIELDS)), np.zeros((n_steps, N_FLOW_FIELDS)), np.zeros(n),
        np.full(n, -1, np.int32), baseline)
