"""Who bears the socialised loss: per-step split and per-account charge (table level).

The kernels record, per step, the bad debt (and Dutch-auction keeper incentives) that neither
the insurance fund nor auto-deleveraging covered as ``StepMetric.SOCIALISED_LOSS``, charged to
nobody. This module charges it the way the protocols whose waterfall ends in socialisation do:

* **Perp shortfall** (bad debt left by perp longs and shorts, after the fund and, with the ADL
  waterfall, after the deleveraged traders' transfers) is charged to every perp position still
  open after the step's liquidations and auto-deleveraging, both sides, **pro rata to its size
  in asset units** (|units|). This is Drift v2's ``resolve_perp_bankruptcy``: the loss is spread
  over the market's open positions through a cumulative funding-rate delta equal to
  ``loss / (|base_asset_amount_long| + |base_asset_amount_short|)``
  (drift-labs/protocol-v2, ``programs/drift/src/math/liquidation.rs``,
  ``calculate_funding_rate_deltas_to_resolve_bankruptcy``; applied in
  ``programs/drift/src/controller/liquidation.rs``). When no perp position is open, nobody in
  the book can be charged and the loss stays with the venue.
* **Loan shortfall** and keeper incentives the fund could not pay are borne by the lending
  protocol's suppliers, stakers or token holders, who are not in the book: Aave v3.3+ books it
  as ``reserve.deficit`` covered by Umbrella stakers (aave-dao/aave-v3-origin), Drift's spot
  bankruptcy lowers the depositors' cumulative interest
  (``calculate_cumulative_deposit_interest_delta_to_resolve_bankruptcy``), Maker's ``sin`` goes
  to the surplus buffer and debt auctions. Borrowers in the book are not charged.

What is charged to accounts plus what stays outside the book equals the step's socialised loss
(the split is built that way; tests check the per-account charges sum to the charged part).
A charge is not capped at the account's equity (Drift's funding-rate charge is not either): an
account charged more than it holds ends with negative ``final_equity_usd``; the
``underwater_equity_usd`` metric adds the charge back, so it is not counted twice.

A position's size at a step is reconstructed from the records: the units it opened with (at
the window start, or at its arrival step with a moving book), minus the units closed by
liquidation records and auto-deleveraging records of that step and earlier, and minus what
was left of it at its trader's voluntary close (:func:`voluntary_closes`: a closed position
bears no later charge). Perp positions only shrink (they never flip side), so |units| falls by
|units closed| at each record.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backtest.kernels.enums import Product, StepMetric

__all__ = ["SocialisedCharges", "socialised_charges", "socialised_charges_reference",
           "voluntary_closes"]


@dataclass(frozen=True)
class SocialisedCharges:
    """The socialised loss of one policy, split by who bears it.

    Attributes
    ----------
    per_account : ndarray, shape (N,), float64
        Socialised loss charged to each account of the book over the window, USD (>= 0;
        0 for loans).
    charged : ndarray, shape (T,), float64
        Per step: the part charged to perp positions in the book, USD.
    outside : ndarray, shape (T,), float64
        Per step: the part borne outside the book (lenders, stakers, the venue), USD;
        ``charged + outside`` is the step's ``SOCIALISED_LOSS``.
    """

    per_account: np.ndarray
    charged: np.ndarray
    outside: np.ndarray


def perp_shortfall(step_metrics: np.ndarray, adl_transfer: np.ndarray | None = None) -> np.ndarray:
    """Return the perp part of each step's socialised loss.

    The kernel (``settle_step_nb``) pays the step's auction incentives from the fund
    first, then its bad debt; with ADL it leaves the perp share ``shortfall x perp bad debt /
    bad debt`` to the deleveraged traders and socialises the rest of it. Here the uncovered
    bad debt is rebuilt from the step's columns::

        uncovered incentives = max(incentives - fund draw, 0)
        shortfall            = bad debt + incentives - fund draw - uncovered incentives
        perp part            = shortfall x (bad long + bad short) / bad debt - ADL transfer

    Parameters
    ----------
    step_metrics : ndarray, shape (T, N_STEP_METRICS), float64
    adl_transfer : ndarray, shape (T,), float64, optional
        USD paid by auto-deleveraged traders per step (default ``StepMetric.ADL_TRANSFER``).

    Returns
    -------
    ndarray, shape (T,), float64
        USD, >= 0 and at most the step's socialised loss.
    """
    sm = step_metrics
    bad = sm[:, StepMetric.BAD_DEBT]
    incentives = sm[:, StepMetric.AUCTION_INCENTIVES]
    draw = sm[:, StepMetric.INSURANCE_DRAW]
    uncovered = np.maximum(incentives - draw, 0.0)
    shortfall = np.maximum(bad + incentives - draw - uncovered, 0.0)
    perp_bad = sm[:, StepMetric.BAD_DEBT_PERP_LONG] + sm[:, StepMetric.BAD_DEBT_PERP_SHORT]
    share = np.divide(perp_bad, bad, out=np.zeros_like(bad), where=bad > 0.0)
    transfer = sm[:, StepMetric.ADL_TRANSFER] if adl_transfer is None else adl_transfer
    part = np.maximum(shortfall * np.minimum(share, 1.0) - transfer, 0.0)
    return np.minimum(part, np.maximum(sm[:, StepMetric.SOCIALISED_LOSS], 0.0))


def voluntary_closes(close_step: np.ndarray | None, units_open: np.ndarray,
                     records: np.ndarray, adl_records: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Which planned voluntary closes happened, and the units they closed (from the records).

    A trader closes at the start of its close step whatever is left of the position
    (:func:`backtest.kernels.book_flow_nb.close_positions_nb`): the units it opened with minus
    those closed by liquidation and auto-deleveraging records of earlier steps. Nothing left
    (liquidated in full before): no close.

    Parameters
    ----------
    close_step : ndarray, shape (N,), int64, or None
        Planned close step of each account (-1: held); None: no closes.
    units_open : ndarray, shape (N,), float64
        Position each account opens with, asset units.
    records, adl_records : ndarray, structured ``RECORD_FIELDS`` / ``ADL_FIELDS``
        Liquidation and auto-deleveraging records (``step``, ``account``, ``units_closed``).

    Returns
    -------
    closed_step : ndarray, shape (N,), int32
        Step the trader closed at, -1 where it did not.
    closed_units : ndarray, shape (N,), float64
        |units| it closed then (0 where it did not).
    """
    n = len(units_open)
    if close_step is None or not (close_step >= 0).any():
        return np.full(n, -1, np.int32), np.zeros(n)
    gone = np.zeros(n)
    for rec in (records, adl_records):
        acc = rec["account"].astype(np.int64)
        before = (close_step[acc] >= 0) & (rec["step"].astype(np.int64) < close_step[acc])
        np.add.at(gone, acc[before], np.abs(rec["units_closed"][before]))
    left = np.abs(units_open) - gone
    happened = (close_step >= 0) & (left > 1e-9 * np.abs(units_open))
    return (np.where(happened, close_step, -1).astype(np.int32),
            np.where(happened, left, 0.0))


def _size_events(product, units_open, arrival_step, records, adl_records, close_step=None):
    """(account, step, change of |units|) of every perp size change, and the perp mask."""
    perp = product == Product.PERP
    acc = np.flatnonzero(perp & (units_open != 0.0))
    first = np.maximum(arrival_step[acc], 0)
    r_acc = records["account"].astype(np.int64)
    r_keep = perp[r_acc]
    a_acc = adl_records["account"].astype(np.int64)
    a_keep = perp[a_acc]
    accounts = np.concatenate([acc, r_acc[r_keep], a_acc[a_keep]])
    steps = np.concatenate([first, records["step"][r_keep].astype(np.int64),
                            adl_records["step"][a_keep].astype(np.int64)])
    delta = np.concatenate([np.abs(units_open[acc]),
                            -np.abs(records["units_closed"][r_keep]),
                            -np.abs(adl_records["units_closed"][a_keep])])
    closed_step, closed_units = voluntary_closes(close_step, units_open, records, adl_records)
    c_acc = np.flatnonzero(perp & (closed_step >= 0))
    accounts = np.concatenate([accounts, c_acc])
    steps = np.concatenate([steps, closed_step[c_acc].astype(np.int64)])
    delta = np.concatenate([delta, -closed_units[c_acc]])
    return accounts, steps, delta


def socialised_charges(
    step_metrics: np.ndarray,
    product: np.ndarray,
    units_open: np.ndarray,
    arrival_step: np.ndarray,
    records: np.ndarray,
    adl_records: np.ndarray,
    close_step: np.ndarray | None = None,
) -> SocialisedCharges:
    """Charge each step's perp socialised loss pro rata to the open perp positions' sizes.

    ``charge_i = sum_t perp_part(t) x |units_i(t)| / sum_j |units_j(t)|`` over perp accounts
    open after step ``t``'s liquidations and auto-deleveraging (see the module docstring for
    the rule and its source). Computed without a step x account matrix: with
    ``rate(t) = perp_part(t) / S(t)`` and ``|units_i(t)|`` a sum of size changes ``d_e`` at
    steps ``s_e <= t``, ``charge_i = sum_e d_e x sum_{t >= s_e} rate(t)``.

    Parameters
    ----------
    step_metrics : ndarray, shape (T, N_STEP_METRICS), float64
    product : ndarray, shape (N,), int8
        :class:`backtest.kernels.Product` of each account.
    units_open : ndarray, shape (N,), float64
        Position each account opens with (at the window start, or on arrival), asset units.
    arrival_step : ndarray, shape (N,), int64
        Step at which the account opens; -1 for accounts open at the window start.
    records : ndarray, shape (R,), structured ``RECORD_FIELDS``
        Liquidation records (``step``, ``account``, ``units_closed``).
    adl_records : ndarray, shape (A,), structured ``ADL_FIELDS``
        Auto-deleveraging records (``step``, ``account``, ``units_closed``).
    close_step : ndarray, shape (N,), int64, optional
        Planned voluntary close step of each account (-1: held; see :func:`voluntary_closes`);
        a position closed at step ``s`` bears no charge from step ``s`` on.

    Returns
    -------
    SocialisedCharges
    """
    sm = step_metrics
    n_steps = sm.shape[0]
    total = np.maximum(sm[:, StepMetric.SOCIALISED_LOSS], 0.0)
    part = perp_shortfall(sm)
    if not np.any(part != 0.0) and not np.any(np.signbit(part)):
        # nothing to share (every step's perp part is +0): the charges below are all +0, so
        # skip the size events (tens of bytes per account at once on a large book)
        return SocialisedCharges(np.zeros(len(product)), np.zeros(n_steps), total - 0.0)
    accounts, steps, delta = _size_events(product, units_open, arrival_step, records,
                                          adl_records, close_step)
    size = np.cumsum(np.bincount(steps, weights=delta, minlength=n_steps)[:n_steps])
    scale = float(np.abs(units_open[product == Product.PERP]).sum()) if len(units_open) else 0.0
    open_ = size > 1e-12 * max(scale, 1.0)
    charged = np.where(open_, part, 0.0)
    rate = np.divide(charged, size, out=np.zeros(n_steps), where=open_)
    tail = np.cumsum(rate[::-1])[::-1]  # sum over t >= s of rate(t)
    per_account = np.zeros(len(product))
    np.add.at(per_account, accounts, delta * tail[np.minimum(steps, n_steps - 1)])
    per_account = np.maximum(per_account, 0.0)  # rounding of fully closed positions
    return SocialisedCharges(per_account, charged, total - charged)


def socialised_charges_reference(step_metrics, product, units_open, arrival_step, records,
                                 adl_records, close_step=None) -> SocialisedCharges:
    """Plain-loop twin of :func:`socialised_charges`: rebuild every position at every step.

    Same parameters and result; O(T x N), for tests only.
    """
    sm = step_metrics
    n_steps, n = sm.shape[0], len(product)
    part = perp_shortfall(sm)
    total = np.maximum(sm[:, StepMetric.SOCIALISED_LOSS], 0.0)
    closed = np.zeros((n_steps, n))
    for rec in (records, adl_records):
        for s, a, u in zip(rec["step"], rec["account"], rec["units_closed"], strict=True):
            closed[int(s), int(a)] += abs(u)
    per_account = np.zeros(n)
    charged = np.zeros(n_steps)
    size = np.zeros(n)
    scale = sum(abs(units_open[i]) for i in range(n) if product[i] == Product.PERP)
    for t in range(n_steps):
        for i in range(n):
            if product[i] != Product.PERP:
                continue
            if max(arrival_step[i], 0) == t:
                size[i] += abs(units_open[i])
            if close_step is not None and close_step[i] == t:
                size[i] = 0.0  # the trader closes what is left, before the step's liquidations
            size[i] -= closed[t, i]
        open_total = sum(size)
        if open_total > 1e-12 * max(scale, 1.0) and part[t] > 0.0:
            charged[t] = part[t]
            for i in range(n):
                if product[i] == Product.PERP:
                    per_account[i] += part[t] * size[i] / open_total
    return SocialisedCharges(np.maximum(per_account, 0.0), charged, total - charged)
