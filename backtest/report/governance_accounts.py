"""Per-account view of a governance report: who the proposal liquidates, and user losses.

Sweep cells keep a one-row summary and per-step series, not per-account tables. This module
re-simulates the current and proposed sets of each scenario for one unit (the first ensemble
member or book seed) from the cells' own specs (``cells/<cell_id>/cell.json``), so the
accounts table is exactly the one the cell's summary was computed from (the engine is
deterministic), and compares them account by account:

- accounts (and their initial notional, USD) liquidated under a proposed set but not under the
  current parameters, and the reverse (an account counts as liquidated when it had at least
  one liquidation event);
- the distribution of user losses to liquidation per account (``hold_equity_usd -
  final_equity_historical_usd`` of :func:`backtest.results.tables.accounts_table`, the registry's
  ``user_loss_to_liquidation_usd`` per account): accounts with a loss above half a dollar, the
  median, 90th and 99th percentiles and the largest loss, and the total.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import polars as pl

LOSS_FLOOR_USD = 0.5
"""Per-account user losses at or below this (USD) count as none."""


def cell_accounts(cell_json: Path) -> pl.DataFrame:
    """Re-simulate a finished sweep cell and return its accounts table.

    A portfolio cell is re-simulated by
    :func:`backtest.sweep.portfolio_cell.portfolio_cell_accounts` (``initial_notional_usd``:
    the sum of ``|units| x price`` over the account's positions at the first open), an options
    cell by :func:`backtest.sweep.options_cell.options_cell_accounts` (``sum |quantity| x``
    the underlying's first open).

    Parameters
    ----------
    cell_json : Path
        A cell's ``cell.json`` (its ``cell`` entry is the :class:`backtest.sweep.plan.CellSpec`).

    Returns
    -------
    polars.DataFrame
        ``account_id``, ``initial_notional_usd``, ``liquidated`` (bool),
        ``liquidated_notional_usd`` and ``user_loss_usd`` (Float64, USD), one row per account.

    Raises
    ------
    LiqbtError
        As :func:`backtest.engine.run.resolve_config` (missing inputs).
    OSError, ValueError
        An unreadable ``cell.json``.
    """
    from backtest.engine.run import simulate_policies
    from backtest.kernels.enums import StepMetric
    from backtest.results.tables import accounts_table
    from backtest.sweep.plan import CellSpec
    from backtest.sweep.runner import cell_inputs

    raw = json.loads(Path(cell_json).read_text())["cell"]
    names = {f.name for f in dataclasses.fields(CellSpec)}
    spec = CellSpec(**{k: v for k, v in raw.items() if k in names})
    if spec.kind == "portfolio":
        from backtest.sweep.portfolio_cell import portfolio_cell_accounts

        return _view(portfolio_cell_accounts(spec))
    if spec.kind == "options":
        from backtest.sweep.options_cell import options_cell_accounts

        return _view(options_cell_accounts(spec))
    inputs = cell_inputs(spec)
    outcomes, _ = simulate_policies(inputs, show_progress=False)
    res = outcomes[0].result
    arrays = inputs.window.arrays()
    close = arrays["close"]
    acc = accounts_table(spec.cell_id, spec.policy["name"], res,
                         inputs.book.frame["account_id"].to_numpy(), inputs.book.arrays(),
                         arrays["open"][0], close[-1],
                         close[-1] * res.step_metrics[-1, StepMetric.PRICE_FACTOR], inputs.flow,
                         close)
    return _view(acc)


def _view(acc: pl.DataFrame) -> pl.DataFrame:
    """Return the columns of :func:`cell_accounts` from a catalog ``accounts`` table."""
    return acc.select(
        "account_id", "initial_notional_usd",
        (pl.col("liquidations") > 0).alias("liquidated"), "liquidated_notional_usd",
        (pl.col("hold_equity_usd") - pl.col("final_equity_historical_usd")).alias("user_loss_usd"))


def compare_accounts(current: pl.DataFrame, proposed: pl.DataFrame) -> dict:
    """Compare two accounts tables of the same book (from :func:`cell_accounts`).

    Parameters
    ----------
    current, proposed : polars.DataFrame
        Same accounts (joined on ``account_id``).

    Returns
    -------
    dict
        ``only_proposed`` / ``only_current``: ``accounts`` (int) and ``notional_usd`` (float,
        initial notional of those accounts); ``both`` (int): liquidated under both.

    Raises
    ------
    ValueError
        The two tables are not the same book.
    """
    j = current.join(proposed, on="account_id", how="inner", suffix="_p")
    if j.height != current.height or j.height != proposed.height:
        raise ValueError("the two cells do not simulate the same book of accounts")
    only_p = j.filter(pl.col("liquidated_p") & ~pl.col("liquidated"))
    only_c = j.filter(pl.col("liquidated") & ~pl.col("liquidated_p"))
    return {
        "only_proposed": {"accounts": only_p.height,
                          "notional_usd": float(only_p["initial_notional_usd"].sum())},
        "only_current": {"accounts": only_c.height,
                         "notional_usd": float(only_c["initial_notional_usd"].sum())},
        "both": int(j.filter(pl.col("liquidated") & pl.col("liquidated_p")).height),
    }


def loss_distribution(accounts: pl.DataFrame) -> dict:
    """Return the distribution of per-account user losses to liquidation (USD).

    Parameters
    ----------
    accounts : polars.DataFrame
        From :func:`cell_accounts`.

    Returns
    -------
    dict
        ``accounts`` (all), ``with_loss`` (loss above :data:`LOSS_FLOOR_USD`), ``p50``,
        ``p90``, ``p99``, ``max`` (over accounts with a loss; None when there are none) and
        ``total`` (sum over every account), USD.
    """
    loss = accounts["user_loss_usd"].to_numpy().astype(np.float64)
    hit = loss[loss > LOSS_FLOOR_USD]
    out = {"accounts": int(loss.size), "with_loss": int(hit.size), "total": float(loss.sum())}
    if hit.size:
        p = np.percentile(hit, [50.0, 90.0, 99.0])
        out.update(p50=float(p[0]), p90=float(p[1]), p99=float(p[2]), max=float(hit.max()))
    else:
        out.update(p50=None, p90=None, p99=None, max=None)
    return out
