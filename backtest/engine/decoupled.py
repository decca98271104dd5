"""The decoupled path of :func:`backtest.engine.dispatch.simulate`: when it applies, and the run.

A run is decoupled when accounts do not interact, so each can be walked through the window on
its own (:mod:`backtest.kernels.decoupled_nb`: first-passage search, O(log T) per account and
event, one parallel region per kernel). :func:`decoupled_reason` says why a run is not;
:func:`run_decoupled` runs one that is and fills the same arrays the step loop would, bit for
bit (records in the same order, per-step aggregates summed in the same order, the insurance
fund's running balance), or returns None when the walk met a case only the step loop models
(bad debt on a perp with auto-deleveraging as the waterfall) and has changed nothing.

``simulate(..., path=...)`` picks: ``"auto"`` (default) takes this path whenever
:func:`decoupled_reason` is None and the walk completes; ``"time-major"`` always steps; and
``"decoupled"`` requires this path (``ValueError`` otherwise), for tests and the benchmark.
"""

from __future__ import annotations

import numba
import numpy as np

from backtest.kernels.decoupled_nb import (
    STATUS_OK,
    decoupled_apply_nb,
    decoupled_count_nb,
    decoupled_metrics_nb,
    decoupled_waterfall_nb,
    filter_bounds_nb,
    passage_table_nb,
    record_slots_nb,
)
from backtest.kernels.enums import (
    FillPrice,
    ImpactModel,
    OracleModel,
    PolicyFamily,
    Product,
    RiskInput,
    TriggerPrice,
    Waterfall,
)
from backtest.kernels.liquidation_nb import REC_F_FIELDS, REC_I_FIELDS
from backtest.kernels.step_inputs import AccountState, AccountTotals, TapeInputs

#: Values of ``simulate``'s ``path`` keyword.
PATHS = ("auto", "time-major", "decoupled")
_FAMILIES = (int(PolicyFamily.HARD), int(PolicyFamily.PARTIAL), int(PolicyFamily.GRADUATED))


def decoupled_reason(policy: np.ndarray, market: np.ndarray, tape: TapeInputs,
                     flow_active: bool) -> str | None:
    """Return why a run is not decoupled (None: it is, the decoupled path applies).

    Parameters
    ----------
    policy : ndarray, shape (1,), ``POLICY_DTYPE``
    market : ndarray, shape (1,), ``MARKET_DTYPE``
    tape : TapeInputs
        The run's per-step inputs (candles, funding rate, risk inputs, mark prices).
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
        (bool(np.any(~np.isnan(tape.funding_rate) & (tape.funding_rate != 0.0))), "funding"),
        (bool(np.any(tape.risk[:, RiskInput.MARGIN_SCALE] != 1.0)), "dynamic margin"),
    )
    for failed, reason in checks:
        if failed:
            return reason
    for name in ("open", "high", "low", "close"):
        a = getattr(tape, name)
        if not (np.all(np.isfinite(a)) and np.all(a > 0.0)):
            return f"{name} prices that are not all finite and positive"
    if int(mk["oracle_model"]) == OracleModel.MARK and not (
            np.all(np.isfinite(tape.mark)) and np.all(tape.mark > 0.0)):
        return "mark prices that are not all finite and positive"
    return None


def policy_tuple(rec) -> tuple:
    """Policy fields in the order :mod:`backtest.kernels.decoupled_nb` reads them."""
    size_rules = np.array([rec["full_close_below_usd"], rec["large_position_usd"],
                           rec["large_position_fraction"], rec["min_remaining_usd"]], np.float64)
    return (int(rec["family"]), np.array(rec["maintenance_rate"], np.float64),
            np.array(rec["target_rate"], np.float64), np.array(rec["penalty_rate"], np.float64),
            float(rec["close_factor"]), float(rec["full_close_health"]),
            np.array(rec["tier_health"], np.float64), np.array(rec["tier_fraction"], np.float64),
            size_rules, int(rec["penalty_model"]), float(rec["penalty_cap"]),
            int(rec["seize_all_collateral"]), float(rec["keeper_share"]))


def decision_prices(tape: TapeInputs, market: np.ndarray,
                    trigger_mode: int) -> tuple[np.ndarray, np.ndarray]:
    """The longs' and shorts' decision prices per step, shape (T,) each, as the step loop's."""
    if int(market[0]["oracle_model"]) == OracleModel.MARK:
        if trigger_mode == TriggerPrice.EXTREME:
            return tape.mark[:, 0] * 1.0, tape.mark[:, 1] * 1.0
        return tape.mark[:, 2] * 1.0, tape.mark[:, 2] * 1.0
    if trigger_mode == TriggerPrice.EXTREME:
        return tape.low, tape.high
    return tape.close, tape.close


def run_decoupled(required: bool, tape: TapeInputs, accounts: AccountState,
                  totals: AccountTotals, market_state: np.ndarray, step_out: np.ndarray,
                  policy: np.ndarray, market: np.ndarray, flow_active: bool, trigger_mode: int,
                  fill_mode: int, chunk_size: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Run a decoupled simulation in place; return its records, or None if not taken.

    The arguments are :func:`backtest.engine.dispatch.simulate`'s prepared arrays (accounts
    in processing order); on success ``accounts`` (units, cash, keys), ``totals``,
    ``market_state`` and ``step_out`` hold what the step loop would leave in them.

    Parameters
    ----------
    required : bool
        Raise instead of returning None.
    tape, accounts, totals : TapeInputs, AccountState, AccountTotals
    market_state : ndarray, shape (MARKET_STATE_SIZE,), float64
    step_out : ndarray, shape (T, N_STEP_METRICS), float64
        Zeros; receives the per-step aggregates.
    policy, market : ndarray, shape (1,)
        ``POLICY_DTYPE`` and ``MARKET_DTYPE`` records.
    flow_active : bool
        Whether the book moves (then the path is not taken).
    trigger_mode, fill_mode : int
    chunk_size : int
        Accounts per chunk (the step loop's summation order).

    Returns
    -------
    tuple of ndarray or None
        ``(rec_i, rec_f)``, shapes (R, len(REC_I_FIELDS)) int64 and (R, len(REC_F_FIELDS))
        float64: the step loop's record rows in its order.

    Raises
    ------
    ValueError
        ``required`` and the run is not decoupled, or the walk needs the step loop.
    """
    reason = decoupled_reason(policy, market, tape, flow_active)
    if reason is not None:
        if required:
            raise ValueError(f"path='decoupled' but the run is not decoupled: {reason}")
        return None
    x_long, x_short = decision_prices(tape, market, trigger_mode)
    x_long = np.ascontiguousarray(x_long, np.float64)
    x_short = np.ascontiguousarray(x_short, np.float64)
    rec = policy[0]
    scale = np.ascontiguousarray(tape.risk[:, RiskInput.MARGIN_SCALE])
    lo_key, neg_hi_key = filter_bounds_nb(x_long, x_short, scale,
                                          float(rec["maintenance_rate"][Product.PERP]))
    tables = (*passage_table_nb(lo_key), *passage_table_nb(neg_hi_key))
    eff_fill = int(fill_mode) if int(market[0]["oracle_model"]) == OracleModel.MARKET else int(
        FillPrice.CLOSE)
    pol = policy_tuple(rec)
    kernel_tape = (tape.open, tape.high, tape.low, tape.close, x_long, x_short)
    product, units, cash, key = accounts.product, accounts.units, accounts.cash, accounts.key
    n, n_steps = len(units), len(x_long)
    n_chunks = (n + chunk_size - 1) // chunk_size
    counts = np.zeros((n_chunks, n_steps), np.int64)
    waits = np.zeros((n_chunks, n_steps), np.int64)
    flags = np.zeros(n_chunks, np.int64)
    adl = int(rec["waterfall"]) == Waterfall.ADL
    before = numba.set_parallel_chunksize(1)  # chunks differ in work: hand them out one by one
    try:
        decoupled_count_nb(product, units, cash, key, kernel_tape, tables, pol, eff_fill, adl,
                           chunk_size, counts, waits, flags)
        if np.any(flags != STATUS_OK):
            if required:
                raise ValueError("path='decoupled' but the run needs the step loop: bad debt "
                                 "on a perp with auto-deleveraging as the waterfall")
            return None
        slots = record_slots_nb(counts)
        waits[counts == 0] = 0  # the step loop counts waits only in the chunks it visits
        wait_slots = record_slots_nb(waits)
        wait_equity = np.empty(int(waits.sum()))
        n_records = int(counts.sum())
        rec_i = np.empty((n_records, len(REC_I_FIELDS)), np.int64)
        rec_f = np.empty((n_records, len(REC_F_FIELDS)), np.float64)
        cash_delta = np.empty(n_records)
        kernel_totals = (totals.n_liquidations, totals.first_step, totals.last_step,
                         totals.liquidated_notional, totals.penalties_paid, totals.bad_debt)
        decoupled_apply_nb(product, units, cash, key, kernel_tape, tables, pol, eff_fill,
                           chunk_size, counts, kernel_totals, slots, wait_slots, rec_i, rec_f,
                           cash_delta, wait_equity)
        decoupled_metrics_nb(product, counts, slots, rec_i, rec_f, cash_delta, waits,
                             wait_slots, wait_equity, x_long, scale, step_out)
    finally:
        numba.set_parallel_chunksize(before)
    pending = decoupled_waterfall_nb(step_out, market_state, int(rec["waterfall"]))
    if pending >= 0:  # excluded by the walk (no perp bad debt under ADL): a bug if reached
        raise RuntimeError(f"auto-deleveraging pending at step {pending} on the decoupled path")
    return rec_i, rec_f
