"""The options study as a catalog run of its own: ``<runs>/options/<run_id>/``, kind ``options``.

A portfolio config with an ``[options]`` section simulates one options book under one
liquidation rule (:func:`backtest.portfolio.pipeline.run_options_study`). Besides the study's
own tables in the portfolio run (``options_steps``, ``lar_options``, ...), the run is written
through the results path every run kind uses (:func:`backtest.results.writer.run_directory`)
as a run of kind ``options`` (:data:`backtest.results.metrics.OPTIONS`), with the id
``<portfolio run id>-options`` (:func:`options_run_id`), so that ``liqbt query``, ``liqbt list
runs`` and the metrics registry read it like any run. Its tables, in the catalog's schema
(:mod:`backtest.results.tables`), with one ``policy`` (:data:`POLICY`):

=================  ==========================================================================
table              one row per
=================  ==========================================================================
``steps``          step: liquidation events, liquidated notional (``|quantity| x underlying
                   price`` of the legs closed), keeper and insurance fees, bad debt, insurance
                   fund draw and balance, socialised loss; extra columns: every
                   :class:`~backtest.kernels.options_enums.OptionsStepMetric` not above
                   (``liquidated_mark_usd``, ``spread_paid_usd``, ``settlement_cash_usd``,
                   ``settled_legs``, ``open_accounts``, ``equity_usd``, ``option_value_usd``,
                   ``maintenance_margin_usd``, ``delta_usd``, ``gamma_usd``, ``vega_usd``,
                   ``accounts_breached_close``, ``cash_delta_liquidation_usd``)
``accounts``       account: initial equity (Black-76 marks at the first open and the first
                   step's implied volatility), final equity (cash plus the legs still open
                   at the last close and implied volatility), liquidations, penalties, bad
                   debt, status (``open``, ``closed``: every leg closed by its liquidation,
                   ``bankrupt``); extra columns ``underlying``, ``legs``, ``settled_usd``
``liquidations``   liquidation (it closes every leg of the account): the kernel's record
``policies``       the liquidation rule: ``family = 'options'``, the options parameters
=================  ==========================================================================

There is no ``prices`` or ``adl`` table. ``hold_equity_usd``, the no-liquidation equity of
each account, settles the book's expiries along the path as the kernel would have
(:func:`backtest.options.hold.hold_equity`), so the registry's user loss to liquidation is
defined for an options run. Money is USD.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

from backtest.kernels.options_enums import OptionsStepMetric
from backtest.options.book import OptionsBookArrays
from backtest.options.hold import hold_equity
from backtest.options.margin import account_risk
from backtest.options.params import OptionsParams
from backtest.options.simulate import OptionsMarket, OptionsResult, metric_column
from backtest.provenance import engine_version, file_sha256, package_versions, runtime
from backtest.results.metrics import OPTIONS
from backtest.results.tables import (
    STATUS_BANKRUPT,
    STATUS_CLOSED,
    STATUS_OPEN,
    STATUSES,
    policies_table,
)
from backtest.results.writer import run_directory

POLICY = "options"
"""``policy`` (and ``policies.family``) of an options run's one liquidation rule."""

#: Catalog ``steps`` columns taken from the kernel's per-step metrics, by metric.
_STEP_COLUMNS = {
    OptionsStepMetric.LIQUIDATED_NOTIONAL: "liquidated_notional_usd",
    OptionsStepMetric.KEEPER_FEES: "keeper_fees_usd",
    OptionsStepMetric.INSURANCE_FEES: "insurance_fees_usd",
    OptionsStepMetric.BAD_DEBT: "bad_debt_usd",
    OptionsStepMetric.INSURANCE_DRAW: "insurance_draw_usd",
    OptionsStepMetric.INSURANCE_FUND: "insurance_fund_usd",
    OptionsStepMetric.SOCIALISED_LOSS: "socialised_loss_usd",
}
#: Extra ``steps`` columns of the counts, renamed to the catalog's words.
_COUNT_COLUMNS = {
    OptionsStepMetric.N_SETTLED_LEGS: "settled_legs",
    OptionsStepMetric.N_OPEN: "open_accounts",
    OptionsStepMetric.N_BREACHED_CLOSE: "accounts_breached_close",
}


@dataclass(frozen=True)
class OptionsStudy:
    """What an options study simulated, kept for its catalog run.

    Attributes
    ----------
    market : OptionsMarket
        Prices and implied volatility per step, shape (T, U).
    book : OptionsBookArrays
        The accounts at the window start (not modified by the run).
    result : OptionsResult
    params : OptionsParams
        The liquidation rule it ran with.
    open_price : ndarray, shape (U,), float64
        First open of the window per underlying, USD.
    start_equity : ndarray, shape (N,), float64
        Each account's equity at ``open_price`` and the first step's implied volatility, USD.
    book_info : dict
        Source, path, accounts, legs, instruments of the book (the portfolio manifest's
        ``options_book``).
    """

    market: OptionsMarket
    book: OptionsBookArrays
    result: OptionsResult
    params: OptionsParams
    open_price: np.ndarray
    start_equity: np.ndarray
    book_info: dict


def options_run_id(portfolio_run_id: str) -> str:
    """Return the run id of the options run of a portfolio run."""
    return f"{portfolio_run_id}-options"


def _ts(ms: np.ndarray) -> pl.Series:
    return pl.Series(np.asarray(ms, dtype=np.int64)).cast(pl.Datetime("ms")) \
        .dt.replace_time_zone("UTC")


def options_steps(run_id: str, res: OptionsResult) -> pl.DataFrame:
    """Return the ``steps`` rows: one per step; sums over the steps equal the records' totals.

    Parameters
    ----------
    run_id : str
    res : OptionsResult
        Its ``step_metrics`` (shape (T, ``N_OPTIONS_METRICS``)) and ``liq_step`` are read.
    """
    sm, M = res.step_metrics, OptionsStepMetric
    n = sm.shape[0]
    first = res.liq_step[res.liq_step >= 0]
    newly = np.bincount(first, minlength=n)[:n].astype(np.int64)
    cols = {
        "run_id": run_id, "policy": POLICY, "step": np.arange(n, dtype=np.int32),
        "timestamp": _ts(res.timestamp_ms),
        "liquidations": sm[:, M.N_LIQUIDATIONS].astype(np.int64),
        "bankruptcies": sm[:, M.N_BANKRUPT].astype(np.int64),
        "accounts_newly_liquidated": newly, "accounts_liquidated_cum": np.cumsum(newly),
    }
    cols.update({name: sm[:, m] for m, name in _STEP_COLUMNS.items()})
    cols["bad_debt_cum_usd"] = np.cumsum(sm[:, M.BAD_DEBT])
    cols["socialised_loss_cum_usd"] = np.cumsum(sm[:, M.SOCIALISED_LOSS])
    for m in M:
        if m in _COUNT_COLUMNS:
            cols[_COUNT_COLUMNS[m]] = sm[:, m].astype(np.int64)
        elif m not in _STEP_COLUMNS and m not in (M.N_LIQUIDATIONS, M.N_BANKRUPT):
            cols[metric_column(m)] = sm[:, m]
    return pl.DataFrame(cols)


def _per_account(n: int, rows: np.ndarray, values: np.ndarray) -> np.ndarray:
    out = np.zeros(n)
    np.add.at(out, rows, values)
    return out


def options_accounts(run_id: str, study: OptionsStudy) -> pl.DataFrame:
    """Return the ``accounts`` rows: one per account, its start and end.

    Parameters
    ----------
    run_id : str
    study : OptionsStudy

    Returns
    -------
    polars.DataFrame
        ``initial_notional_usd`` (``sum |quantity| x`` the first open), ``initial_equity_usd``
        (:attr:`OptionsStudy.start_equity`), ``final_equity_usd`` (final cash plus the legs
        still open, Black-76 at the last close and implied volatility, valued at the last
        step's close time), ``hold_equity_usd`` (the same without any liquidation, floored at
        0: :func:`~backtest.options.hold.hold_equity`), ``final_cash_usd``, ``liquidations``
        (0 or 1),
        ``first_liquidation_step`` (-1: never), ``liquidated_notional_usd``,
        ``penalties_usd`` (keeper + insurance fees), ``bad_debt_usd``, ``status``,
        ``underlying``, ``legs``, ``settled_usd`` (cash received at expiries).
    """
    book, res, market = study.book, study.result, study.market
    n = book.n_accounts
    end = replace(book, cash=res.cash, leg_qty=res.leg_qty)
    final = account_risk(end, market.close[-1], market.iv[-1], int(market.valuation_ms[-1]),
                         study.params)
    owner = np.repeat(np.arange(n), np.diff(book.leg_start))
    price = study.open_price[book.inst_und[book.leg_inst]]
    rec = res.records
    liquidated = res.liq_step >= 0
    status = np.full(n, STATUSES.index(STATUS_OPEN), np.uint32)
    status[liquidated] = STATUSES.index(STATUS_CLOSED)
    status[res.bad_debt > 0.0] = STATUSES.index(STATUS_BANKRUPT)
    return pl.DataFrame({
        "run_id": run_id, "policy": POLICY,
        "account_id": book.account_id.astype(np.int64),
        "product": "option",
        "initial_notional_usd": np.bincount(owner, weights=np.abs(book.leg_qty) * price,
                                            minlength=n),
        "initial_equity_usd": study.start_equity,
        "final_equity_usd": final.equity,
        "final_equity_historical_usd": final.equity,  # no market impact: the same prices
        "hold_equity_usd": hold_equity(book, market, study.params),
        "final_cash_usd": res.cash,
        "liquidations": liquidated.astype(np.int64),
        "first_liquidation_step": res.liq_step.astype(np.int32),
        "liquidated_notional_usd": _per_account(n, rec["account"], rec["notional"]),
        "penalties_usd": _per_account(n, rec["account"], rec["keeper_fee"]
                                      + rec["insurance_fee"]),
        "bad_debt_usd": res.bad_debt,
        "status": pl.Series(status).replace_strict(list(range(len(STATUSES))),
                                                   list(STATUSES),
                                                   return_dtype=pl.Enum(STATUSES)),
        "underlying": np.asarray(book.underlyings, dtype=object)[book.account_und].astype(str),
        "legs": np.diff(book.leg_start).astype(np.int32),
        "settled_usd": res.settled,
    })


def options_liquidations(run_id: str, res: OptionsResult) -> pl.DataFrame:
    """Return the ``liquidations`` rows: one per liquidation (every leg of the account closed).

    Columns: ``step``, ``timestamp``, ``account_id``, ``price_point`` (``low``, ``high`` or
    ``close``: where in the candle it was decided), ``legs``, ``decision_price`` (of the
    underlying, USD), ``iv``, ``notional_usd`` (``sum |quantity| x decision_price``),
    ``keeper_fee_usd``, ``insurance_fee_usd``, ``bad_debt_usd``, the account's
    ``equity_before_usd``, ``margin_before_usd``, ``cash_before_usd``, ``mark_value_usd``,
    ``spread_paid_usd``, ``cash_after_usd`` and Greeks before (``delta_usd``, ``gamma_usd``,
    ``vega_usd``).
    """
    r = res.records_frame()
    return pl.DataFrame({
        "run_id": pl.repeat(run_id, r.height, dtype=pl.String, eager=True),
        "policy": pl.repeat(POLICY, r.height, dtype=pl.String, eager=True),
        "step": r["step"].cast(pl.Int32),
        "timestamp": r["time"],
        "account_id": r["account_id"],
        "price_point": r["price_point"],
        "legs": r["n_legs"].cast(pl.Int32),
        "decision_price": r["decision_price"],
        "iv": r["iv"],
        "notional_usd": r["notional"],
        "keeper_fee_usd": r["keeper_fee"],
        "insurance_fee_usd": r["insurance_fee"],
        "bad_debt_usd": r["bad_debt"],
        **{f"{k}_usd": r[k] for k in ("equity_before", "margin_before", "cash_before",
                                      "mark_value", "spread_paid", "cash_after")},
        **{k: r[k] for k in ("delta_usd", "gamma_usd", "vega_usd")},
    })


def options_manifest(run_id: str, portfolio: dict, study: OptionsStudy, timings: dict) -> dict:
    """Return an options run's manifest: the standard fields of every run kind, then its own.

    Parameters
    ----------
    run_id : str
    portfolio : dict
        The portfolio run's manifest (its config, command, hashes and creation time are
        shared; ``portfolio_run_id`` names it).
    study : OptionsStudy
    timings : dict
        Seconds per phase.

    Returns
    -------
    dict
        Standard fields (``run_id``, ``run_kind = "options"``, ``name``, ``created_at``,
        ``command``, ``symbol`` (the underlyings), ``window``, ``tape``, ``book``,
        ``policies``, ``versions``, ``runtime``, ``timings``) and ``portfolio_run_id``,
        ``options_summary`` (:meth:`OptionsResult.summary`).
    """
    market, opt = study.market, portfolio["config"]["options"]
    start = datetime.fromtimestamp(market.timestamp_ms[0] / 1000, tz=UTC)
    end = datetime.fromtimestamp(market.valuation_ms[-1] / 1000, tz=UTC)
    book = dict(study.book_info)
    book["sha256"] = (file_sha256(book["path"]) if book.get("path") and Path(book["path"])
                      .is_file() else None)
    return {
        "run_id": run_id, "run_kind": OPTIONS, "name": f"{portfolio['name']}-options",
        "description": f"options study of portfolio run {portfolio['run_id']}",
        "created_at": portfolio["created_at"], "command": portfolio["command"],
        "portfolio_run_id": portfolio["run_id"],
        "config_path": portfolio.get("config_path"),
        "config_sha256": portfolio.get("config_sha256"),
        "overrides": portfolio.get("overrides", []), "config": portfolio["config"],
        "event": portfolio.get("event"), "symbol": ", ".join(market.underlyings),
        "window": {"event": portfolio.get("event"), "start": start.isoformat(),
                   "end": end.isoformat(), "interval": opt["interval"],
                   "steps": int(market.timestamp_ms.size)},
        "tape": {"interval": opt["interval"], "iv_source": opt["iv_source"]},
        "book": book,
        "policies": [{"name": POLICY, "parameters": opt["params"],
                      "file_sha256": portfolio.get("config_sha256")}],
        "options_summary": study.result.summary(),
        "timings": timings, "runtime": runtime(), "versions": package_versions(),
        "code": engine_version(),
    }


def write_options_run(run_dir: Path, portfolio: dict, study: OptionsStudy,
                      timings: dict | None = None) -> dict:
    """Write an options study as a run directory of kind ``options``; return its manifest.

    Parameters
    ----------
    run_dir : Path
        ``<runs>/options/<portfolio run id>-options`` (must not exist).
    portfolio : dict
        The portfolio run's manifest (see :func:`options_manifest`).
    study : OptionsStudy
    timings : dict, optional
        Seconds of the study's phases (inputs, simulation), recorded with the write time.

    Raises
    ------
    FileExistsError
        If ``run_dir`` exists.
    """
    t0 = time.perf_counter()
    run_id = run_dir.name
    with run_directory(run_dir) as out:
        out.table("steps", options_steps(run_id, study.result))
        out.table("accounts", options_accounts(run_id, study))
        out.table("liquidations", options_liquidations(run_id, study.result))
        params = {"family": POLICY, "description": "options scenario margin, liquidation "
                  "closing every leg", **study.params.model_dump(mode="json")}
        out.table("policies", policies_table(run_id, [(POLICY, params,
                                                       portfolio.get("config_sha256"))]))
        manifest = options_manifest(run_id, portfolio, study,
                                    {**(timings or {}), "write_s": time.perf_counter() - t0})
        out.manifest(manifest)
    return manifest


__all__ = ["POLICY", "OptionsStudy", "options_accounts", "options_liquidations",
           "options_manifest", "options_run_id", "options_steps", "write_options_run"]
