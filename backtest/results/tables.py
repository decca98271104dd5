"""Build the result tables of a run from simulation outputs (polars DataFrames).

=================  ==========================================================================
table              one row per
=================  ==========================================================================
``prices``         step: the candle of the simulated window
``steps``          (policy, step): liquidations, fees, bad debt, insurance fund, open interest,
                   user equity at the close
``accounts``       (policy, account): final state, liquidation totals, the socialised loss
                   charged to it (:mod:`backtest.results.socialised`)
``liquidations``   liquidation event
``adl``            auto-deleveraged account and step
``policies``       policy: family and parameters as simulated
=================  ==========================================================================

Every table carries ``run_id``; money columns end in ``_usd``; timestamps are UTC candle open
times; ``step`` counts candles from 0 at the window start.

Why over 400 lines: the per-account and per-event tables are built in parts
(:func:`accounts_parts`, :func:`liquidations_parts`) so that a run of tens of millions of
accounts writes them without holding them whole; the parts share the tables' column
definitions, which stay in one place.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import polars as pl

from backtest.kernels.book_flow_nb import FLOW_FIELDS
from backtest.kernels.enums import BAND_FIELDS, Product, StepMetric
from backtest.results.running_totals import running_totals
from backtest.results.simulation import SimulationResult
from backtest.results.socialised import SocialisedCharges, socialised_charges

STATUS_OPEN = "open"
STATUS_PARTIAL = "partially_liquidated"
STATUS_CLOSED = "closed"
STATUS_BANKRUPT = "bankrupt"
STATUS_ADL = "auto_deleveraged"
STATUSES = (STATUS_OPEN, STATUS_PARTIAL, STATUS_CLOSED, STATUS_BANKRUPT, STATUS_ADL)
PRODUCTS = ("perp", "loan")  # index = backtest.kernels.Product


def prices_table(run_id: str, timestamp_ms: np.ndarray,
                 ohlc: dict[str, np.ndarray]) -> pl.DataFrame:
    """Return the ``prices`` table: step, timestamp, open, high, low, close (USD)."""
    return pl.DataFrame(
        {
            "run_id": run_id,
            "step": np.arange(len(timestamp_ms), dtype=np.int32),
            "timestamp": _ts(timestamp_ms),
            **{k: ohlc[k] for k in ("open", "high", "low", "close")},
        }
    )


def steps_table(
    run_id: str,
    policy: str,
    res: SimulationResult,
    timestamp_ms: np.ndarray,
    close: np.ndarray,
    low: np.ndarray,
    book: dict[str, np.ndarray],
    gas_usd: np.ndarray,
    flow=None,
) -> pl.DataFrame:
    """Return the ``steps`` rows of one policy.

    Running totals (open interest, debt, user equity) are valued at the simulated close, the
    historical close times the policy's ``price_factor`` (1 without cascade feedback).
    ``price_departure`` is ``price_factor - 1``: how far (fraction, > 0 above) the simulated
    price is from history in the step. ``as_happened_flow_usd`` is the net liquidation flow the
    historical tape already carries (counterfactual impact, else 0) and ``impact_flow_usd``
    the flow that moved the market: ``net_flow_usd - as_happened_flow_usd``.

    ``user_equity_usd`` is net of the socialised loss charged to the book's perp positions so
    far (``socialised_loss_charged_usd``, see :mod:`backtest.results.socialised`), so that at
    the last step it is the sum of the accounts' ``final_equity_usd``.

    ``liquidated_notional_usd`` sums the step's liquidation events (the ``liquidations``
    table); collateral that soft-liquidation bands converted is not a liquidation event and is
    reported apart as ``soft_converted_notional_usd`` (the kernel adds both in
    ``StepMetric.LIQUIDATED_NOTIONAL``).

    Parameters
    ----------
    run_id, policy : str
    res : SimulationResult
    timestamp_ms : ndarray, shape (T,), int64
    close, low : ndarray, shape (T,), float64
        Historical close and low, USD.
    book : dict
        ``product``, ``units``, ``cash`` arrays of the book at the window start, shape (N,)
        (0 for accounts that arrive during the window: ``res.book_flow`` brings them in).
    gas_usd : ndarray, shape (T,), float64
        Gas cost of one liquidation per step, USD (paid by keepers).
    flow : backtest.engine.book_flow.BookFlow, optional
        The moving book (arrival steps and opening positions); None: every account is open at
        the window start.
    """
    sm = res.step_metrics
    socialised = sm[:, StepMetric.SOCIALISED_LOSS]
    factor = sm[:, StepMetric.PRICE_FACTOR]
    baseline = (np.zeros(len(close)) if res.impact_baseline is None
                else np.asarray(res.impact_baseline, dtype=np.float64))
    totals = running_totals(sm, close * factor, book["product"], book["units"], book["cash"],
                            res.book_flow)
    charges = socialised_for(res, book["product"], _open_units(book["units"], flow),
                             _arrival(len(book["units"]), flow), _closing(flow))
    totals["user_equity_usd"] = totals["user_equity_usd"] - np.cumsum(charges.charged)
    n_steps = len(close)
    r = res.records
    events = np.bincount(r["step"].astype(np.int64), weights=r["notional"],
                         minlength=n_steps)[:n_steps] if len(r) else np.zeros(n_steps)
    converted = np.where(sm[:, StepMetric.SOFT_SOLD_UNITS] > 0.0,
                         np.maximum(sm[:, StepMetric.LIQUIDATED_NOTIONAL] - events, 0.0), 0.0)
    flow = {name: res.book_flow[:, k] for k, name in enumerate(FLOW_FIELDS)}
    first = res.first_step[res.first_step >= 0]
    newly = np.bincount(first, minlength=len(close))[: len(close)]
    return pl.DataFrame(
        {
            "run_id": run_id,
            "policy": policy,
            "step": np.arange(len(close), dtype=np.int32),
            "timestamp": _ts(timestamp_ms),
            "liquidations": sm[:, StepMetric.N_LIQUIDATIONS].astype(np.int64),
            "positions_closed": sm[:, StepMetric.N_CLOSED].astype(np.int64),
            "bankruptcies": sm[:, StepMetric.N_BANKRUPT].astype(np.int64),
            "accounts_newly_liquidated": newly.astype(np.int64),
            "accounts_liquidated_cum": np.cumsum(newly).astype(np.int64),
            "liquidated_notional_usd": events,
            "soft_converted_notional_usd": converted,
            "keeper_fees_usd": sm[:, StepMetric.KEEPER_FEES],
            "keeper_gas_usd": gas_usd * sm[:, StepMetric.N_LIQUIDATIONS],
            "insurance_fees_usd": sm[:, StepMetric.INSURANCE_FEES],
            "bad_debt_usd": sm[:, StepMetric.BAD_DEBT],
            "bad_debt_cum_usd": np.cumsum(sm[:, StepMetric.BAD_DEBT]),
            "insurance_draw_usd": sm[:, StepMetric.INSURANCE_DRAW],
            "insurance_fund_usd": sm[:, StepMetric.INSURANCE_FUND],
            "funding_paid_usd": sm[:, StepMetric.FUNDING_PAID],
            "adl_notional_usd": sm[:, StepMetric.ADL_NOTIONAL],
            "adl_accounts": sm[:, StepMetric.ADL_ACCOUNTS].astype(np.int64),
            "adl_transfer_usd": sm[:, StepMetric.ADL_TRANSFER],
            "socialised_loss_usd": socialised,
            "socialised_loss_cum_usd": np.cumsum(socialised),
            "socialised_loss_charged_usd": charges.charged,
            "socialised_loss_outside_usd": charges.outside,
            # surplus buffer (Maker's Vow): debt healed by later surplus, debt still queued
            "debt_healed_usd": sm[:, StepMetric.DEBT_HEALED],
            "debt_queued_usd": sm[:, StepMetric.DEBT_QUEUED],
            "net_flow_usd": sm[:, StepMetric.NET_FLOW],
            "impact_cost_usd": sm[:, StepMetric.IMPACT_COST],
            "execution_factor": sm[:, StepMetric.EXECUTION_FACTOR],
            "price_factor": factor,
            "price_departure": factor - 1.0,
            "as_happened_flow_usd": baseline,
            "impact_flow_usd": sm[:, StepMetric.NET_FLOW] - baseline,
            "oracle_price": sm[:, StepMetric.ORACLE_PRICE],
            "auctions_kicked": sm[:, StepMetric.AUCTIONS_KICKED].astype(np.int64),
            "auction_incentives_usd": sm[:, StepMetric.AUCTION_INCENTIVES],
            "soft_sold_units": sm[:, StepMetric.SOFT_SOLD_UNITS],
            "soft_bought_units": sm[:, StepMetric.SOFT_BOUGHT_UNITS],
            "soft_proceeds_usd": sm[:, StepMetric.SOFT_PROCEEDS],
            "soft_liquidation_loss_usd": sm[:, StepMetric.SOFT_LOSS],
            "loans_in_soft_liquidation": sm[:, StepMetric.N_SOFT_LIQUIDATION].astype(np.int64),
            "preemptive_reductions": sm[:, StepMetric.N_PREEMPTIVE].astype(np.int64),
            "preemptive_notional_usd": sm[:, StepMetric.PREEMPTIVE_NOTIONAL],
            "margin_scale": sm[:, StepMetric.MARGIN_SCALE],
            "accounts_waiting": sm[:, StepMetric.N_WAITING].astype(np.int64),
            "waiting_negative_equity_usd": sm[:, StepMetric.WAITING_NEGATIVE_EQUITY],
            "arrivals": flow["arrivals"].astype(np.int64),
            "arrival_margin_usd": flow["arrival_margin_usd"],
            "closes": flow["closes"].astype(np.int64),
            "closed_notional_usd": flow["closed_notional_usd"],
            "cures": flow["cures"].astype(np.int64),
            "cure_usd": flow["cure_perp_usd"] + flow["cure_loan_usd"],
            "simulated_close": close * factor,
            "simulated_low": low * factor,
            **totals,
        }
    )


def accounts_table(
    run_id: str,
    policy: str,
    res: SimulationResult,
    account_id: np.ndarray,
    book: dict[str, np.ndarray],
    first_open: float,
    last_close: float,
    simulated_last_close: float,
    flow=None,
    closes: np.ndarray | None = None,
    rows_per_part: int | None = None,
) -> pl.DataFrame:
    """Return the ``accounts`` rows of one policy.

    ``book`` holds each account's position once open (``product``, ``units``, ``cash``).
    With a moving book (``flow``, a :class:`backtest.engine.book_flow.BookFlow`), accounts that
    open during the window (``opened_step`` >= 0) start with their margin as initial equity, and
    ``cure_usd`` is the new money an account brought in by curing, and ``closed_step`` the
    step at whose start its trader closed what was left of the position (-1: did not; from
    the kernel, ``res.closed_step``; a position liquidated in part and then closed by its
    trader ends ``closed``).

    ``initial_equity_usd`` is valued at the window's first open, ``final_equity_usd`` at its
    last simulated close (liquidated accounts hold their remaining cash),
    ``final_equity_historical_usd`` the same final state at the last *historical* close (equal
    without market impact; with it, ``final_equity_usd - final_equity_historical_usd`` is what
    the end price's departure from history adds to the account's open position);
    ``hold_equity_usd``
    is what the account would be worth at the last historical close had it never been
    liquidated (no liquidation, no impact), with the same new money (``cure_usd``) brought in,
    a top-up as the collateral it bought (``cure_units``, asset units, valued at that close;
    ``[response] loan_cure = "top_up"``), floored at 0: a deposit is the trader's own money
    in both worlds, so it cancels in ``hold_equity_usd - final_equity_historical_usd`` (the
    user loss to liquidation, both states valued at the same historical price); a position its
    trader closes during the window is valued at its close (the historical close before its
    close step, from ``closes``, the historical close of every step; without it, at the last
    close). Status: ``open`` (never liquidated; a trader's own close does not change it),
    ``partially_liquidated`` (still holds a position or debt), ``closed``, or ``bankrupt``
    (left bad debt).

    ``rows_per_part`` (default: all) builds the table in parts of that many accounts, each a
    separate frame, concatenated at the end; :func:`accounts_parts` yields them one at a time
    (to write a large run's table without holding it whole).
    """
    parts = list(accounts_parts(run_id, policy, res, account_id, book, first_open, last_close,
                                simulated_last_close, flow, closes, rows_per_part))
    return parts[0] if len(parts) == 1 else pl.concat(parts)


def accounts_parts(
    run_id: str,
    policy: str,
    res: SimulationResult,
    account_id: np.ndarray,
    book: dict[str, np.ndarray],
    first_open: float,
    last_close: float,
    simulated_last_close: float,
    flow=None,
    closes: np.ndarray | None = None,
    rows_per_part: int | None = None,
) -> Iterator[pl.DataFrame]:
    """Yield the ``accounts`` rows of one policy (:func:`accounts_table`) in parts.

    Each part holds ``rows_per_part`` consecutive accounts (the last one the rest; None: one
    part). What needs the whole book (the socialised charges, auto-deleveraging totals) is
    computed once; every column is built for one part at a time, so a part costs its own rows
    only. Concatenated, the parts equal :func:`accounts_table`'s frame.
    """
    n = len(book["units"])
    close_step_all = _closing(flow)
    arrival_all = None if flow is None else flow.arrival_step
    charges = socialised_for(res, book["product"], book["units"], _arrival(n, flow),
                             close_step_all)
    before = None
    if close_step_all is not None and closes is not None:
        before = np.concatenate([[float(first_open)], np.asarray(closes, float)])
    adl = res.adl_records
    adl_units, adl_paid = np.zeros(n), np.zeros(n)
    np.add.at(adl_units, adl["account"], adl["units_closed"])
    np.add.at(adl_paid, adl["account"], adl["transfer"])
    step = max(n, 1) if not rows_per_part else max(1, int(rows_per_part))
    for lo in range(0, max(n, 1), step):
        rows = slice(lo, min(n, lo + step))
        m = rows.stop - rows.start
        units0, cash0, product = book["units"][rows], book["cash"][rows], book["product"][rows]
        arrival = np.full(m, -1, np.int64) if arrival_all is None else arrival_all[rows]
        margin = np.zeros(m) if flow is None else flow.margin[rows]
        initial_equity = np.where(arrival >= 0, margin, cash0 + units0 * first_open)
        cure = res.deposited[rows] - margin
        # a top-up is collateral: without liquidation it would be held at the hold price too
        topped = np.zeros(m) if res.topped_up is None else res.topped_up[rows]
        cure_cash = np.where(topped > 0.0, 0.0, cure)
        hold_price = np.full(m, float(last_close))
        if before is not None:
            close_step = close_step_all[rows]
            hold_price = np.where(close_step >= 0, before[np.maximum(close_step, 0)],
                                  hold_price)
        status = np.zeros(m, np.uint32)  # index into STATUSES
        status[np.isin(np.arange(rows.start, rows.stop), adl["account"])] = STATUSES.index(
            STATUS_ADL)
        r_units, r_cash, r_liq, r_bad = (res.units[rows], res.cash[rows],
                                         res.n_liquidations[rows], res.bad_debt[rows])
        liquidated = r_liq > 0
        still_open = (r_units != 0.0) & ~((product == Product.LOAN) & (r_cash >= 0.0))
        status[liquidated & still_open] = STATUSES.index(STATUS_PARTIAL)
        status[liquidated & ~still_open] = STATUSES.index(STATUS_CLOSED)
        status[r_bad > 0.0] = STATUSES.index(STATUS_BANKRUPT)
        per_account = charges.per_account[rows]
        yield pl.DataFrame(
            {
                "run_id": _constant(run_id, m),
                "policy": _constant(policy, m),
                "account_id": account_id[rows],
                "product": _enum(product, PRODUCTS),
                "side": np.sign(units0).astype(np.int8),
                "initial_notional_usd": np.abs(units0) * first_open,
                "opened_step": arrival.astype(np.int32),
                "initial_equity_usd": initial_equity,
                "cure_usd": cure,
                "cure_units": topped,
                "hold_equity_usd": np.maximum(cash0 + cure_cash + (units0 + topped) * hold_price,
                                              0.0),
                "final_equity_usd": (r_cash + r_units * simulated_last_close - per_account),
                "final_equity_historical_usd": r_cash + r_units * last_close - per_account,
                "socialised_loss_usd": per_account,
                "final_units": r_units,
                "final_cash_usd": r_cash,
                "liquidations": r_liq,
                "closed_step": res.closed_step[rows],
                "first_liquidation_step": res.first_step[rows],
                "last_liquidation_step": res.last_step[rows],
                "liquidated_notional_usd": res.liquidated_notional[rows],
                "penalties_usd": res.penalties_paid[rows],
                "bad_debt_usd": r_bad,
                "funding_paid_usd": res.funding_paid[rows],
                "soft_liquidation_loss_usd": _band(res, "soft_loss", n)[rows],
                "soft_converted_units": _band(res, "soft_units", n)[rows],
                "soft_proceeds_usd": _band(res, "soft_proceeds", n)[rows],
                "adl_units_closed": adl_units[rows],
                "adl_paid_usd": adl_paid[rows],
                "status": _enum(status, STATUSES),
            }
        )


def liquidations_table(
    run_id: str, policy: str, res: SimulationResult, account_id: np.ndarray,
    timestamp_ms: np.ndarray
) -> pl.DataFrame:
    """Return the ``liquidations`` rows (one per event) of one policy."""
    return next(liquidations_parts(run_id, policy, res, account_id, timestamp_ms))


def liquidations_parts(
    run_id: str, policy: str, res: SimulationResult, account_id: np.ndarray,
    timestamp_ms: np.ndarray, rows_per_part: int | None = None,
) -> Iterator[pl.DataFrame]:
    """Yield the ``liquidations`` rows of one policy in parts of ``rows_per_part`` events.

    None: one part, :func:`liquidations_table`'s frame; concatenated, the parts equal it.
    """
    n = len(res.records)
    step = max(n, 1) if not rows_per_part else max(1, int(rows_per_part))
    for lo in range(0, max(n, 1), step):
        yield _liquidation_rows(run_id, policy, res.records[lo:lo + step], account_id,
                                timestamp_ms)


def _liquidation_rows(run_id: str, policy: str, r: np.ndarray, account_id: np.ndarray,
                      timestamp_ms: np.ndarray) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "run_id": _constant(run_id, len(r)),
            "policy": _constant(policy, len(r)),
            "step": r["step"].astype(np.int32),
            "timestamp": _ts(timestamp_ms[r["step"]]),
            "account_id": account_id[r["account"]],
            "units_closed": r["units_closed"],
            "decision_price": r["decision_price"],
            "fill_price": r["fill_price"],
            "notional_usd": r["notional"],
            "keeper_fee_usd": r["keeper_fee"],
            "insurance_fee_usd": r["insurance_fee"],
            "bad_debt_usd": r["bad_debt"],
            "health_before": r["health_before"],
            "equity_after_usd": r["equity_after"],
            "closed": r["closed"].astype(bool),
            "preemptive": r["preemptive"].astype(bool),
            "auction": r["auction"].astype(bool),
            "zero_bid": r["zero_bid"].astype(bool),
        }
    )


def adl_table(run_id: str, policy: str, res: SimulationResult, account_id: np.ndarray,
              timestamp_ms: np.ndarray) -> pl.DataFrame:
    """Return the ``adl`` rows (one per auto-deleveraged account and step) of one policy."""
    a = res.adl_records
    return pl.DataFrame(
        {
            "run_id": _constant(run_id, len(a)),
            "policy": _constant(policy, len(a)),
            "step": a["step"].astype(np.int32),
            "timestamp": _ts(timestamp_ms[a["step"]]),
            "account_id": account_id[a["account"]],
            "units_closed": a["units_closed"],
            "price": a["price"],
            "notional_usd": np.abs(a["units_closed"]) * a["price"],
            "transfer_usd": a["transfer"],
        }
    )


def policies_table(run_id: str, policies: list[tuple[str, dict, str]]) -> pl.DataFrame:
    """Return the ``policies`` table: name, family, parameters (JSON) and the file's sha256."""
    return pl.DataFrame(
        {
            "run_id": run_id,
            "policy": [name for name, _, _ in policies],
            "family": [params["family"] for _, params, _ in policies],
            "description": [params.get("description", "") for _, params, _ in policies],
            "parameters": [json.dumps(params, sort_keys=True) for _, params, _ in policies],
            "file_sha256": [sha for _, _, sha in policies],
        }
    )


def socialised_for(res: SimulationResult, product: np.ndarray, units_open: np.ndarray,
                   arrival_step: np.ndarray, close_step: np.ndarray | None = None
                   ) -> SocialisedCharges:
    """Return the socialised loss of one policy's result split by who bears it.

    Parameters
    ----------
    res : SimulationResult
    product : ndarray, shape (N,), int8
    units_open : ndarray, shape (N,), float64
        Position each account opens with, asset units.
    arrival_step : ndarray, shape (N,), int64
        -1 for accounts open at the window start.
    close_step : ndarray, shape (N,), int64, optional
        Planned voluntary close step (-1: held); None: no closes.

    Returns
    -------
    SocialisedCharges
        See :func:`backtest.results.socialised.socialised_charges`.
    """
    return socialised_charges(res.step_metrics, product, units_open, arrival_step, res.records,
                              res.adl_records, close_step)


def _open_units(start_units: np.ndarray, flow) -> np.ndarray:
    """Units each account opens with: at the window start, or its arrival position."""
    if flow is None:
        return start_units
    return np.where(flow.arrival_step >= 0, flow.open_units, start_units)


def _closing(flow) -> np.ndarray | None:
    """Planned voluntary close step of every account, or None without closes."""
    return None if flow is None or flow.close_step is None else flow.close_step


def _arrival(n: int, flow) -> np.ndarray:
    return np.full(n, -1, np.int64) if flow is None else flow.arrival_step


def _band(res: SimulationResult, field: str, n: int) -> np.ndarray:
    """Per-account running total of the bands' trades (zeros without bands)."""
    return res.bands[:, BAND_FIELDS.index(field)] if len(res.bands) else np.zeros(n)


def _constant(value: str, n: int) -> pl.Series:
    """Return a categorical column holding ``value`` n times (one string, n small codes)."""
    return pl.Series([value], dtype=pl.Categorical).new_from_index(0, n)


def _enum(codes: np.ndarray, categories: tuple[str, ...]) -> pl.Series:
    """Return an Enum column from integer codes indexing ``categories``."""
    return pl.Series(codes.astype(np.uint32)).replace_strict(
        list(range(len(categories))), list(categories), return_dtype=pl.Enum(categories))


def _ts(ms: np.ndarray) -> pl.Series:
    return pl.Series(np.asarray(ms, dtype="datetime64[ms]")).dt.replace_time_zone("UTC")
