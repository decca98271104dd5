"""A portfolio run's results in the catalog's table schema (:mod:`backtest.results.tables`).

One collateral order policy of a portfolio run is one ``policy`` of the catalog, so the same
SQL and the same metrics registry (:mod:`backtest.results.metrics`) read single-asset and
portfolio runs:

=================  ==========================================================================
table              one row per
=================  ==========================================================================
``prices``         (asset, step): the aligned candle; extra column ``symbol``
``steps``          (order, step): liquidation events, notional, fees, bad debt, insurance
                   fund; extra columns ``collateral_order``, ``accounts_liquidatable``,
                   ``lending_liquidations``, ``cross_liquidations``, ``isolated_liquidations``,
                   ``positions_liquidated``, ``debt_repaid_usd``
``accounts``       (order, account): initial and final equity, liquidations, penalties, bad
                   debt, status; extra columns ``account_kind``, ``owner_id``, ``positions``
``liquidations``   position liquidated (an event touching three collaterals is three rows);
                   extra columns ``symbol``, ``debt_repaid_usd``
``policies``       order: ``family = 'portfolio'``, parameters as simulated; extra column
                   ``collateral_order``
=================  ==========================================================================

Money is USD; an account's equity is ``cash + sum(units x price)`` for every account kind (a
lending account's cash is minus its debt). The portfolio model has no gas, auctions,
soft-liquidation bands, or socialised-loss charge to accounts (the uncovered bad debt is borne
outside the book), so those columns are absent, not zero. Per-asset price impact and
auto-deleveraging (``[portfolio.market]``) show in ``fill_price`` (the execution price) and in
the run's own ``portfolio_market`` and ``portfolio_adl`` tables, not in these.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from backtest.kernels.portfolio_enums import AccountKind, AssetMarketMetric, PortfolioMetric
from backtest.portfolio.model import KIND_NAMES, PortfolioBook, PortfolioParams
from backtest.portfolio.simulate import PortfolioResult
from backtest.results.tables import (
    PRODUCTS,
    STATUS_BANKRUPT,
    STATUS_CLOSED,
    STATUS_PARTIAL,
    STATUSES,
    policies_table,
    prices_table,
)
from backtest.tapes.align import AlignedTapes

FAMILY = "portfolio"
"""``policies.family`` of a portfolio run's collateral orders."""

_KIND_LABELS = tuple(sorted(KIND_NAMES, key=KIND_NAMES.get))  # index = AccountKind


def _ts(ms: np.ndarray) -> pl.Series:
    return pl.Series(np.asarray(ms, dtype=np.int64)).cast(pl.Datetime("ms")) \
        .dt.replace_time_zone("UTC")


def _labels(codes: np.ndarray, labels: tuple[str, ...]) -> pl.Series:
    return pl.Series(np.asarray(codes).astype(np.uint32)).replace_strict(
        list(range(len(labels))), list(labels), return_dtype=pl.Enum(labels))


def portfolio_prices(run_id: str, aligned: AlignedTapes) -> pl.DataFrame:
    """Return the ``prices`` rows: every asset's aligned candles, with ``symbol``.

    Parameters
    ----------
    run_id : str
    aligned : AlignedTapes
        Candles of every asset on one clock, shape (T, A) each, USD per unit.
    """
    frames = []
    for a, symbol in enumerate(aligned.symbols):
        ohlc = {k: np.asarray(getattr(aligned, k)[:, a]) for k in ("open", "high", "low",
                                                                    "close")}
        frames.append(prices_table(run_id, aligned.timestamp, ohlc)
                      .with_columns(pl.lit(symbol).alias("symbol")))
    return pl.concat(frames).with_columns(pl.col("run_id").cast(pl.String))


def portfolio_policies(run_id: str, params: dict[str, PortfolioParams],
                       config_sha256: str | None) -> pl.DataFrame:
    """Return the ``policies`` rows: one per collateral order, parameters as simulated.

    Parameters
    ----------
    run_id : str
    params : dict of str to PortfolioParams
        Order name -> the parameters it ran with, in the config's order.
    config_sha256 : str or None
        Hash of the run config (the orders have no policy file of their own).
    """
    rows = [(order, {"family": FAMILY,
                     "description": f"portfolio liquidation, collateral order {order}",
                     **p.model_dump(mode="json")}, config_sha256)
            for order, p in params.items()]
    return policies_table(run_id, rows).with_columns(
        pl.col("policy").alias("collateral_order"))


def portfolio_steps(run_id: str, order: str, res: PortfolioResult) -> pl.DataFrame:
    """Return the ``steps`` rows of one collateral order.

    Parameters
    ----------
    run_id, order : str
    res : PortfolioResult
        Its ``step_metrics`` (shape (T, ``N_PORTFOLIO_METRICS``)) and insurance fund arrays
        (shape (T,), USD) are read.

    Returns
    -------
    polars.DataFrame
        One row per step; sums over the steps equal :meth:`PortfolioResult.summary`.
    """
    sm, M = res.step_metrics, PortfolioMetric
    n = sm.shape[0]
    first = res.first_step[res.first_step >= 0]
    newly = np.bincount(first, minlength=n)[:n].astype(np.int64)
    return pl.DataFrame({
        "run_id": run_id,
        "policy": order,
        "step": np.arange(n, dtype=np.int32),
        "timestamp": _ts(res.timestamp),
        "liquidations": sm[:, M.N_LIQUIDATIONS].astype(np.int64),
        "bankruptcies": sm[:, M.N_BANKRUPT].astype(np.int64),
        "accounts_newly_liquidated": newly,
        "accounts_liquidated_cum": np.cumsum(newly),
        "liquidated_notional_usd": sm[:, M.LIQUIDATED_NOTIONAL],
        "keeper_fees_usd": sm[:, M.KEEPER_FEES],
        "insurance_fees_usd": sm[:, M.INSURANCE_FEES],
        "bad_debt_usd": sm[:, M.BAD_DEBT],
        "bad_debt_cum_usd": np.cumsum(sm[:, M.BAD_DEBT]),
        "insurance_draw_usd": res.insurance_draw,
        "insurance_fund_usd": res.insurance_fund,
        "socialised_loss_usd": res.socialised_loss,
        "socialised_loss_cum_usd": np.cumsum(res.socialised_loss),
        "collateral_order": order,
        "accounts_liquidatable": sm[:, M.N_LIQUIDATABLE].astype(np.int64),
        "lending_liquidations": sm[:, M.N_LENDING].astype(np.int64),
        "cross_liquidations": sm[:, M.N_CROSS].astype(np.int64),
        "isolated_liquidations": sm[:, M.N_ISOLATED].astype(np.int64),
        "positions_liquidated": sm[:, M.N_RECORDS].astype(np.int64),
        "debt_repaid_usd": sm[:, M.DEBT_REPAID],
    })


def _per_account(book: PortfolioBook, values: np.ndarray) -> np.ndarray:
    """Sum a per-position array (shape (P,)) over each account's positions, shape (N,)."""
    owner = np.repeat(np.arange(book.n_accounts), np.diff(book.offsets))
    return np.bincount(owner, weights=values, minlength=book.n_accounts)


def account_equity(book: PortfolioBook, price: np.ndarray) -> np.ndarray:
    """Return each account's equity ``cash + sum(units x price)``, USD, shape (N,).

    Parameters
    ----------
    book : PortfolioBook
    price : ndarray, shape (A,), float64
        One price per asset of ``book.symbols``, USD per unit.
    """
    return book.cash + _per_account(book, book.pos_units * price[book.pos_asset])


def portfolio_accounts(run_id: str, order: str, res: PortfolioResult, start: PortfolioBook,
                       first_open: np.ndarray, last_close: np.ndarray) -> pl.DataFrame:
    """Return the ``accounts`` rows of one collateral order.

    Parameters
    ----------
    run_id, order : str
    res : PortfolioResult
        Its ``book`` is the accounts after the window.
    start : PortfolioBook
        The accounts at the window start (the simulated book).
    first_open, last_close : ndarray, shape (A,), float64
        Each asset's first open and last close of the window, USD per unit.

    Returns
    -------
    polars.DataFrame
        One row per account: ``initial_notional_usd`` (sum of ``|units| x price`` at the first
        open), ``initial_equity_usd`` (at the first open), ``hold_equity_usd`` (the start
        positions at the last close, floored at 0: no liquidation), ``final_equity_usd`` (the
        positions left at each asset's last simulated close: the historical one times the
        last step's price factor, ``res.market_metrics``), ``final_equity_historical_usd``
        (the same positions at the last historical close: equal without market impact),
        ``liquidations``, ``liquidated_notional_usd``,
        ``penalties_usd`` (keeper + insurance fees), ``bad_debt_usd`` and ``status``
        (``open``, ``partially_liquidated``, ``closed``, ``bankrupt``).
    """
    end = res.book
    n = start.n_accounts
    holds = _per_account(end, (end.pos_units != 0.0).astype(np.float64)) > 0
    still_open = holds & ((end.kind != AccountKind.LENDING) | (end.cash < 0.0))
    liquidated = res.n_liquidations > 0
    status = np.zeros(n, np.uint32)
    status[liquidated & still_open] = STATUSES.index(STATUS_PARTIAL)
    status[liquidated & ~still_open] = STATUSES.index(STATUS_CLOSED)
    status[res.bad_debt > 0.0] = STATUSES.index(STATUS_BANKRUPT)
    product = np.where(start.kind == AccountKind.LENDING, PRODUCTS.index("loan"),
                       PRODUCTS.index("perp"))
    return pl.DataFrame({
        "run_id": run_id,
        "policy": order,
        "account_id": np.arange(n, dtype=np.int64),
        "product": _labels(product, PRODUCTS),
        "initial_notional_usd": _per_account(start, np.abs(start.pos_units)
                                             * first_open[start.pos_asset]),
        "initial_equity_usd": account_equity(start, first_open),
        "hold_equity_usd": np.maximum(account_equity(start, last_close), 0.0),
        "final_equity_usd": account_equity(end, last_close if res.market_metrics is None else
                                           last_close * res.market_metrics[
                                               -1, :, AssetMarketMetric.PRICE_FACTOR]),
        "final_equity_historical_usd": account_equity(end, last_close),
        "final_cash_usd": end.cash,
        "liquidations": res.n_liquidations.astype(np.int64),
        "first_liquidation_step": res.first_step,
        "liquidated_notional_usd": res.liquidated_notional,
        "penalties_usd": res.penalties_paid,
        "bad_debt_usd": res.bad_debt,
        "status": _labels(status, STATUSES),
        "account_kind": _labels(start.kind, _KIND_LABELS),
        "owner_id": start.owner.astype(np.int64),
        "positions": np.diff(start.offsets).astype(np.int32),
    })


def portfolio_liquidations(run_id: str, order: str, res: PortfolioResult) -> pl.DataFrame:
    """Return the ``liquidations`` rows of one collateral order: one per position touched.

    Parameters
    ----------
    run_id, order : str
    res : PortfolioResult
        Read before its ``records`` are freed.
    """
    r = res.records
    return pl.DataFrame({
        "run_id": pl.repeat(run_id, r.height, dtype=pl.String, eager=True),
        "policy": pl.repeat(order, r.height, dtype=pl.String, eager=True),
        "step": r["step"],
        "timestamp": _ts(res.timestamp[r["step"].to_numpy()]),
        "account_id": r["account"],
        "symbol": r["symbol"],
        "units_closed": r["units_closed"],
        "fill_price": r["fill_price"],
        "notional_usd": r["notional"],
        "keeper_fee_usd": r["keeper_fee"],
        "insurance_fee_usd": r["insurance_fee"],
        "bad_debt_usd": r["bad_debt"],
        "health_before": r["health_before"],
        "debt_repaid_usd": r["debt_repaid"],
    })


__all__ = ["FAMILY", "account_equity", "portfolio_accounts", "portfolio_liquidations",
           "portfolio_policies", "portfolio_prices", "portfolio_steps"]
