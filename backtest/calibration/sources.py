"""Where a run's simulated figures come from: its Parquet tables.

:class:`RunTables` (and, for a sweep's cells, :mod:`backtest.calibration.sweep_sources`)
implement :class:`backtest.calibration.compare.FigureSource`: ``figures(start, end,
from_run_start, product)`` returns ``{policy: {measure: value}}`` over ``[start, end)`` in the
units of :data:`backtest.targets.MEASURES` (USD, counts, fractions), None where a
measure is not simulated. Queries go through the DuckDB catalog
(:class:`backtest.results.catalog.Catalog`); nothing per account leaves DuckDB.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from backtest.calibration.compare import SHARE, RunFacts


def finite_or_none(value) -> float | None:
    """Return a finite float, or None (NULL, NaN, infinite or not a number)."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def sql_str(value: str) -> str:
    """Return ``value`` as a SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


def sql_ts(t: datetime) -> str:
    """Return ``t`` as a SQL UTC timestamp literal."""
    return f"TIMESTAMPTZ {sql_str(t.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S+00'))}"


class RunTables:
    """Simulated figures from one run's Parquet tables, through the catalog.

    Tables read: ``steps``, ``accounts``, ``liquidations``, ``adl``.

    Parameters
    ----------
    catalog : backtest.results.catalog.Catalog
        Open catalog holding the run.
    run_id : str
    facts : RunFacts
        The run's facts (for the book's recorded open interest).
    """

    def __init__(self, catalog, run_id: str, facts: RunFacts):
        self.catalog, self.run_id, self.facts = catalog, run_id, facts
        pol = catalog.query(f"SELECT DISTINCT policy FROM steps WHERE run_id = {sql_str(run_id)}")
        manifest_order = [p["name"] for p in catalog.manifest(run_id).get("policies", [])]
        present = set(pol["policy"].to_list()) if pol.height else set()
        self.policies = [p for p in manifest_order if p in present] or sorted(present)
        # runs written before the response existed have no cure_usd column, and runs written
        # before auctions could be dealt to zero bids no zero_bid column
        steps = catalog.query("SELECT * FROM steps LIMIT 0").columns
        self._deposits = "sum(cure_usd)" if "cure_usd" in steps else "CAST(NULL AS DOUBLE)"
        liquidations = catalog.query("SELECT * FROM liquidations LIMIT 0").columns
        self._zero_bid = ("coalesce(sum(l.notional_usd) FILTER (WHERE l.zero_bid), 0)"
                          if "zero_bid" in liquidations else "0.0")

    def figures(self, start: datetime, end: datetime, from_run_start: bool, product: str
                ) -> dict[str, dict[str, float | None]]:
        """Return ``{policy: {measure: value}}`` of one product over ``[start, end)``.

        Liquidation figures come from the ``liquidations`` rows of the product's accounts;
        levels at the start from the ``accounts`` table (or the book's recorded open
        interest) when ``from_run_start``, else from the ``steps`` running totals of the
        product (perps: open interest counted once per contract, as venues publish it, i.e.
        half the long + short notional; loans: collateral and debt, and the debt after the
        window's last step, ``borrowed_after_usd``); the insurance fund (its
        draws, and its balance before the window's first step and after its last) and
        auto-deleveraging from the whole book.
        """
        run, a, b, prod = sql_str(self.run_id), sql_ts(start), sql_ts(end), sql_str(product)
        q = self.catalog.query
        oi_column = ("(perp_long_oi_usd + perp_short_oi_usd) / 2" if product == "perp"
                     else "loan_collateral_usd")
        sides = 2 if product == "perp" else 1  # open interest: one side of every contract
        flows = q(f"""
            SELECT policy,
                   sum(insurance_draw_usd) AS insurance_fund_drawn_usd,
                   arg_min(insurance_fund_usd - insurance_fees_usd + insurance_draw_usd, step)
                       AS insurance_fund_before_usd,
                   arg_max(insurance_fund_usd, step) AS insurance_fund_after_usd,
                   sum(adl_notional_usd) AS adl_notional_usd,
                   {self._deposits} AS borrower_deposits_usd,
                   arg_max({oi_column}, step) AS open_interest_after_usd,
                   arg_max(loan_debt_usd, step) AS borrowed_after_usd
            FROM steps WHERE run_id = {run} AND timestamp >= {a} AND timestamp < {b}
            GROUP BY policy""")
        if from_run_start:
            levels = q(f"""
                SELECT policy, sum(initial_notional_usd) / {sides} AS open_interest_before_usd,
                       sum(initial_notional_usd - initial_equity_usd) AS borrowed_usd,
                       sum(initial_notional_usd) AS collateral_usd
                FROM accounts WHERE run_id = {run} AND product = {prod} GROUP BY policy""")
        else:
            levels = q(f"""
                SELECT policy, arg_max({oi_column}, step) AS open_interest_before_usd,
                       arg_max(loan_debt_usd, step) AS borrowed_usd,
                       arg_max(loan_collateral_usd, step) AS collateral_usd
                FROM steps WHERE run_id = {run} AND timestamp < {a} GROUP BY policy""")
        events = q(f"""
            SELECT l.policy,
                   sum(l.notional_usd) AS liquidated_notional_usd,
                   count(*) AS liquidations_count,
                   sum(l.bad_debt_usd) AS bad_debt_usd,
                   count(DISTINCT l.account_id) AS accounts_liquidated,
                   count(DISTINCT l.account_id) FILTER (WHERE l.bad_debt_usd > 0)
                       AS bad_debt_accounts,
                   coalesce(sum(l.notional_usd) FILTER (WHERE ac.side > 0), 0)
                       AS liquidated_long_usd,
                   coalesce(sum(l.notional_usd) FILTER (WHERE ac.side < 0), 0)
                       AS liquidated_short_usd,
                   {self._zero_bid} AS zero_bid_collateral_usd
            FROM liquidations l JOIN accounts ac
              ON ac.run_id = l.run_id AND ac.policy = l.policy AND ac.account_id = l.account_id
            WHERE l.run_id = {run} AND l.timestamp >= {a} AND l.timestamp < {b}
              AND ac.product = {prod}
            GROUP BY l.policy""")
        adl = q(f"""
            SELECT policy, count(DISTINCT account_id) AS adl_accounts, count(*) AS adl_fills
            FROM adl WHERE run_id = {run} AND timestamp >= {a} AND timestamp < {b}
            GROUP BY policy""")
        out: dict[str, dict[str, float | None]] = {}
        for policy in self.policies:
            fig: dict[str, float | None] = dict.fromkeys(
                ("liquidated_notional_usd", "liquidations_count", "bad_debt_usd",
                 "accounts_liquidated", "bad_debt_accounts", "liquidated_long_usd",
                 "liquidated_short_usd", "adl_accounts", "adl_fills",
                 "zero_bid_collateral_usd"), 0.0)
            for frame in (flows, levels, events, adl):
                if frame.height and "policy" in frame.columns:
                    hit = frame.filter(frame["policy"].cast(str) == policy)
                    if hit.height:
                        fig.update({k: finite_or_none(v) for k, v in hit.row(0, named=True).items()
                                    if k != "policy"})
            if from_run_start and self.facts.open_interest_usd is not None:
                fig["open_interest_before_usd"] = self.facts.open_interest_usd
            if product != "loan":
                fig["borrowed_usd"] = fig["collateral_usd"] = fig["borrowed_after_usd"] = None
            derive_shares(fig)
            out[policy] = fig
        return out


def derive_shares(fig: dict[str, float | None]) -> None:
    """Add the share of open interest and the long share of liquidations, in place."""
    liq, oi = fig.get("liquidated_notional_usd"), fig.get("open_interest_before_usd")
    fig[SHARE] = liq / oi if liq is not None and oi else None
    long_, short = fig.get("liquidated_long_usd"), fig.get("liquidated_short_usd")
    if long_ is not None and short is not None and long_ + short > 0:
        fig["long_share_of_liquidations"] = long_ / (long_ + short)
    else:
        fig["long_share_of_liquidations"] = None
