"""Run one book under every order policy and compare: :func:`compare_orders`."""

from __future__ import annotations

import numpy as np
import polars as pl

from backtest.portfolio.model import ORDER_NAMES, PortfolioBook, PortfolioParams
from backtest.portfolio.simulate import PortfolioResult, simulate_portfolio
from backtest.tapes.align import AlignedTapes

#: Columns summed per (order, asset) by :func:`compare_orders`.
COMPARED = ("liquidated_notional_usd", "collateral_seized_usd", "perp_closed_usd",
            "bad_debt_usd", "user_loss_usd", "keeper_fees_usd", "insurance_fees_usd",
            "positions_liquidated")


def compare_orders(
    aligned: AlignedTapes,
    book: PortfolioBook,
    params: PortfolioParams | None = None,
    orders: list[str] | tuple[str, ...] | None = None,
    *,
    sensitivity: np.ndarray | None = None,
    results: dict[str, PortfolioResult] | None = None,
) -> pl.DataFrame:
    """Simulate the same book under each order policy; return a policy x asset table.

    Parameters
    ----------
    aligned : AlignedTapes
        Prices of every asset on one clock.
    book : PortfolioBook
        Accounts (not modified).
    params : PortfolioParams, optional
        Everything but ``order`` is kept for every run (default parameters otherwise).
    orders : sequence of str, optional
        Order policies to run (default all four, in :data:`ORDER_NAMES` order).
    sensitivity : ndarray, shape (T, A), optional
        What ``least_sensitive`` ranks by (default trailing realised volatility).
    results : dict, optional
        If given, receives each run's :class:`PortfolioResult` by order name.

    Returns
    -------
    polars.DataFrame
        One row per (``order``, ``symbol``) plus a row ``symbol = "ALL"`` per order, columns
        :data:`COMPARED` (USD, counts) and ``accounts_liquidated`` (ALL rows only; null
        otherwise) and ``bad_debt_vs_<first order>`` (bad debt / the first order's bad debt on
        the same asset, null when that is 0). ``user_loss_usd`` is what liquidated users paid in
        bonuses and penalties (keeper + insurance fees).

    Raises
    ------
    ConfigError
        Unknown order name (via :class:`PortfolioParams`) or missing asset parameters.
    BookError
        The book does not match the tapes.
    """
    params = params or PortfolioParams()
    orders = list(orders) if orders else list(ORDER_NAMES)
    runs: dict[str, PortfolioResult] = {}
    for order in orders:
        p = PortfolioParams.parse({**params.model_dump(), "order": order})
        runs[order] = simulate_portfolio(aligned, book, p, sensitivity=sensitivity)
        if results is not None:
            results[order] = runs[order]
    return order_table(runs)


def order_table(results: dict[str, PortfolioResult]) -> pl.DataFrame:
    """Build the policy x asset table of :func:`compare_orders` from finished runs.

    Parameters
    ----------
    results : dict of str to PortfolioResult
        One run of the same book per order policy, in the order the table lists them (the
        first is the baseline of ``bad_debt_vs_<first>``).

    Returns
    -------
    polars.DataFrame
        As :func:`compare_orders`.

    Raises
    ------
    ValueError
        If ``results`` is empty.
    """
    if not results:
        raise ValueError("no runs to compare")
    orders = list(results)
    frames = []
    for order, res in results.items():
        per_asset = res.asset_frame().select("symbol", *COMPARED)
        total = per_asset.select(pl.lit("ALL").alias("symbol"),
                                 *[pl.col(c).sum() for c in COMPARED])
        frames.append(pl.concat([per_asset, total]).with_columns(
            pl.lit(order).alias("order"),
            pl.when(pl.col("symbol") == "ALL")
            .then(pl.lit(int((res.n_liquidations > 0).sum())))
            .otherwise(None).cast(pl.Int64).alias("accounts_liquidated")))
    table = pl.concat(frames).select("order", "symbol", *COMPARED, "accounts_liquidated")
    base = table.filter(pl.col("order") == orders[0]).select(
        "symbol", pl.col("bad_debt_usd").alias("_base"))
    return table.join(base, on="symbol", how="left", maintain_order="left").with_columns(
        pl.when(pl.col("_base") > 0).then(pl.col("bad_debt_usd") / pl.col("_base"))
        .otherwise(None).alias(f"bad_debt_vs_{orders[0]}")).drop("_base")

__all__ = ["COMPARED", "compare_orders", "order_table"]
