"""The metrics registry: every summary measure, defined once, used by runs and reports.

Each :class:`Metric` is an SQL expression over two per-policy aggregates of a run's tables,
``s`` (from ``steps``) and ``a`` (from ``accounts``), evaluated by DuckDB in
:func:`backtest.results.catalog.Catalog.summary`. Reports render the same list, with the same
labels and units, so a number in a report is the number a query returns.

Run kinds: a measure lists the kinds it applies to (:attr:`Metric.kinds`). A portfolio run's
tables (:mod:`backtest.portfolio.tables`) carry the aggregates of :data:`PORTFOLIO_AGGREGATES`
only, so the measures built on them (liquidated notional, bad debt, insurance fund drawn, user
equity lost to liquidation, ...) are computed for it from the same SQL, and the others are null.
An options run's tables (:mod:`backtest.options.run_record`) carry :data:`OPTIONS_AGGREGATES`
(those of a portfolio run; the no-liquidation equity settles the book's expiries along the
path, :func:`backtest.options.hold.hold_equity`).
"""

from __future__ import annotations

from dataclasses import dataclass

SINGLE_ASSET = "single_asset"
"""Run kind of ``liqbt run`` (one asset, one book, several liquidation policies)."""

PORTFOLIO = "portfolio"
"""Run kind of ``liqbt portfolio run`` (multi-asset book, one run per collateral order)."""

OPTIONS = "options"
"""Run kind of the options study of a ``liqbt portfolio run`` config with an ``[options]``
section (one options book, one liquidation rule: :mod:`backtest.options.run_record`)."""

RUN_KINDS = (SINGLE_ASSET, PORTFOLIO, OPTIONS)
"""Every run kind the catalog holds (its ``run_kind`` column)."""


@dataclass(frozen=True)
class Metric:
    """One summary measure of a (run, policy).

    Attributes
    ----------
    name : str
        Column name in the summary (snake case, unit suffix).
    label : str
        Human-readable label used in reports.
    unit : str
        ``USD``, ``fraction`` (shown as %), or ``count``.
    sql : str
        Expression over the aggregates ``s`` and ``a`` (see module docstring).
    description : str
        What it measures, in plain words.
    kinds : tuple of str
        Run kinds (:data:`RUN_KINDS`) it applies to; every aggregate its ``sql`` reads is in
        those kinds' tables. Other kinds get null in :meth:`Catalog.summary
        <backtest.results.catalog.Catalog.summary>`.
    """

    name: str
    label: str
    unit: str
    sql: str
    description: str
    kinds: tuple[str, ...] = (SINGLE_ASSET,)


#: Per-policy aggregates of the ``steps`` table (alias ``s``), by name.
STEPS_AGGREGATE_EXPRESSIONS: dict[str, str] = {
    "liquidations": "sum(liquidations)",
    "preemptive_reductions": "sum(preemptive_reductions)",
    "liquidated_notional_usd": "sum(liquidated_notional_usd)",
    "peak_liquidated_notional_usd": "max(liquidated_notional_usd)",
    "keeper_fees_usd": "sum(keeper_fees_usd)",
    "auction_incentives_usd": "sum(auction_incentives_usd)",
    "soft_liquidation_loss_usd": "sum(soft_liquidation_loss_usd)",
    "peak_loans_in_soft_liquidation": "max(loans_in_soft_liquidation)",
    "keeper_gas_usd": "sum(keeper_gas_usd)",
    "peak_accounts_waiting": "max(accounts_waiting)",
    "insurance_fees_usd": "sum(insurance_fees_usd)",
    "bad_debt_usd": "sum(bad_debt_usd)",
    "insurance_draw_usd": "sum(insurance_draw_usd)",
    "insurance_fund_min_usd": "min(insurance_fund_usd)",
    "insurance_fund_end_usd": "arg_max(insurance_fund_usd, step)",
    "socialised_loss_usd": "sum(socialised_loss_usd)",
    "socialised_loss_outside_usd": "sum(socialised_loss_outside_usd)",
    "soft_converted_notional_usd": "sum(soft_converted_notional_usd)",
    "adl_notional_usd": "sum(adl_notional_usd)",
    "adl_accounts": "sum(adl_accounts)",
    "impact_cost_usd": "sum(impact_cost_usd)",
    "simulated_low": "min(simulated_low)",
    "historical_low": "min(simulated_low / price_factor)",
    "max_price_departure": "arg_max(price_departure, abs(price_departure))",
    "minutes_departed_over_1pct": """count(*) FILTER (WHERE abs(price_departure) > 0.01)
        * (epoch(max(timestamp)) - epoch(min(timestamp))) / 60.0 / greatest(count(*) - 1, 1)""",
    "end_price_departure": "arg_max(price_departure, step)",
}

#: Per-policy aggregates of the ``accounts`` table (alias ``a``), by name.
ACCOUNTS_AGGREGATE_EXPRESSIONS: dict[str, str] = {
    "accounts": "count(*)",
    "accounts_liquidated": "count(*) FILTER (WHERE liquidations > 0)",
    "accounts_bankrupt": "count(*) FILTER (WHERE status = 'bankrupt')",
    "accounts_wiped_out": """count(*) FILTER (WHERE liquidations > 0
                     AND final_equity_usd <= 0.01 * initial_equity_usd)""",
    "book_notional_usd": "sum(initial_notional_usd)",
    # as venues publish open interest: each perp contract once (half the notional over both
    # sides), and the loans' debt; positions open at the window start only (not arrivals)
    "open_interest_usd": """sum(initial_notional_usd) FILTER (
        WHERE product = 'perp' AND opened_step < 0) / 2""",
    "borrowed_usd": """sum(initial_notional_usd - initial_equity_usd) FILTER (
        WHERE product = 'loan' AND opened_step < 0)""",
    "initial_equity_usd": "sum(initial_equity_usd)",
    # new money the response's cures brought (top-ups, repayments, margin); runs without cures
    # (and runs written before the column existed): 0
    "cure_usd": "coalesce(sum(cure_usd), 0)",
    "final_equity_usd": "sum(final_equity_usd)",
    # runs written before the column existed: their final equity (valued at the simulated close)
    "final_equity_historical_usd": "sum(coalesce(final_equity_historical_usd, final_equity_usd))",
    "hold_equity_usd": "sum(hold_equity_usd)",
    "penalties_usd": "sum(penalties_usd)",
    "socialised_loss_charged_usd": "sum(socialised_loss_usd)",
    "accounts_auto_deleveraged": "count(*) FILTER (WHERE status = 'auto_deleveraged')",
    "underwater_equity_usd": "abs(sum(least(final_equity_usd + socialised_loss_usd, 0)))",
}

#: Aggregates a portfolio run's tables carry (:mod:`backtest.portfolio.tables`): the
#: portfolio model has no gas, auctions, bands, auto-deleveraging, price impact or
#: socialised-loss charge to accounts, so its tables have no such columns.
PORTFOLIO_AGGREGATES = (
    "liquidations", "liquidated_notional_usd", "peak_liquidated_notional_usd",
    "keeper_fees_usd", "insurance_fees_usd", "bad_debt_usd", "insurance_draw_usd",
    "insurance_fund_min_usd", "insurance_fund_end_usd", "socialised_loss_usd",
    "accounts", "accounts_liquidated", "accounts_bankrupt", "accounts_wiped_out",
    "book_notional_usd", "initial_equity_usd", "final_equity_usd", "final_equity_historical_usd",
    "hold_equity_usd", "penalties_usd", "cure_usd",
)

#: Aggregates a run kind computes otherwise, as the model of that kind has no such table column:
#: portfolio and options books do not cure, so they bring no new money.
KIND_EXPRESSIONS = {PORTFOLIO: {"cure_usd": "0.0"}, OPTIONS: {"cure_usd": "0.0"}}


#: Aggregates an options run's tables carry (:mod:`backtest.options.run_record`): those of a
#: portfolio run.
OPTIONS_AGGREGATES = PORTFOLIO_AGGREGATES

#: Aggregates each run kind but single-asset carries (single-asset runs carry them all).
KIND_AGGREGATES = {PORTFOLIO: PORTFOLIO_AGGREGATES, OPTIONS: OPTIONS_AGGREGATES}


def aggregates_sql(table: str, kind: str = SINGLE_ASSET) -> str:
    """Return the ``SELECT`` list of one table's per-policy aggregates for a run kind.

    Parameters
    ----------
    table : {"steps", "accounts"}
    kind : str
        One of :data:`RUN_KINDS`; a portfolio or options run gets its
        :data:`KIND_AGGREGATES` only.

    Returns
    -------
    str
        ``expression AS name`` items joined by commas.

    Raises
    ------
    ValueError
        For another table or an unknown run kind.
    """
    exprs = {"steps": STEPS_AGGREGATE_EXPRESSIONS,
             "accounts": ACCOUNTS_AGGREGATE_EXPRESSIONS}.get(table)
    if exprs is None or kind not in RUN_KINDS:
        raise ValueError(f"no aggregates of table {table!r} for run kind {kind!r}")
    names = [n for n in exprs if kind == SINGLE_ASSET or n in KIND_AGGREGATES[kind]]
    own = KIND_EXPRESSIONS.get(kind, {})
    return ",\n    ".join(f"{own.get(n, exprs[n])} AS {n}" for n in names)


#: Per-policy aggregates of the ``steps`` table (alias ``s``) of a single-asset run.
STEPS_AGGREGATES = aggregates_sql("steps")

#: Per-policy aggregates of the ``accounts`` table (alias ``a``) of a single-asset run.
ACCOUNTS_AGGREGATES = aggregates_sql("accounts")

#: Kinds of a measure defined for every run kind.
ALL = RUN_KINDS

METRICS: tuple[Metric, ...] = (
    Metric("accounts_liquidated", "Accounts liquidated", "count", "a.accounts_liquidated",
           "Accounts liquidated at least once.",
           kinds=ALL),
    Metric("liquidations", "Liquidation events", "count", "s.liquidations",
           "Liquidation events (a partial policy may liquidate an account several times).",
           kinds=ALL),
    Metric("preemptive_reductions", "of which pre-emptive reductions", "count",
           "s.preemptive_reductions",
           "Reductions of accounts not yet liquidatable by the predictive overlay (counted in "
           "the liquidation events)."),
    Metric("accounts_wiped_out", "Accounts wiped out", "count", "a.accounts_wiped_out",
           "Liquidated accounts left with at most 1% of their equity at the window start.",
           kinds=ALL),
    Metric("liquidated_notional_usd", "Liquidated notional", "USD", "s.liquidated_notional_usd",
           "Sum over liquidation events of |units closed| x fill price (soft-liquidation band "
           "conversions are not events: see the next row).",
           kinds=ALL),
    Metric("soft_converted_notional_usd", "Collateral converted by soft-liquidation bands",
           "USD", "s.soft_converted_notional_usd",
           "Collateral that loans' soft-liquidation bands (crvUSD LLAMMA) sold to arbitrageurs "
           "as the price fell, at the execution price: a gradual conversion, not a liquidation "
           "event, so it is not counted in the liquidated notional."),
    Metric("peak_liquidated_notional_usd", "Peak liquidated notional per step", "USD",
           "s.peak_liquidated_notional_usd",
           "Largest liquidated notional in one step (liquidation events only): the forced "
           "flow the market must absorb.",
           kinds=ALL),
    Metric("penalties_usd", "Liquidation penalties paid", "USD", "a.penalties_usd",
           "Penalties taken from accounts (keeper + insurance fund shares).",
           kinds=ALL),
    Metric("keeper_profit_usd", "Keeper profit", "USD",
           "s.keeper_fees_usd + s.auction_incentives_usd + s.soft_liquidation_loss_usd"
           " - s.keeper_gas_usd",
           "Penalty share paid to keepers / liquidators (in Dutch auctions: their discount to "
           "the market plus the protocol's incentives; in soft-liquidation bands: what "
           "arbitrageurs earn trading with the bands), minus the gas they paid."),
    Metric("soft_liquidation_loss_usd", "Soft-liquidation loss", "USD",
           "s.soft_liquidation_loss_usd",
           "What loans in soft-liquidation bands (crvUSD LLAMMA) lost to arbitrageurs: their "
           "bands' trades against the market price, both ways."),
    Metric("peak_loans_in_soft_liquidation", "Peak loans in soft liquidation", "count",
           "s.peak_loans_in_soft_liquidation",
           "Most loans in one step with part of their collateral converted by their bands."),
    Metric("bad_debt_usd", "Bad debt", "USD", "s.bad_debt_usd",
           "Shortfall beyond the equity of liquidated accounts.",
           kinds=ALL),
    Metric("underwater_equity_usd", "Unliquidated negative equity at end", "USD",
           "a.underwater_equity_usd",
           "Negative equity of positions still open at the end (before any socialised-loss "
           "charge): shortfall nobody has realised yet because keepers were late or gas made "
           "liquidating them unprofitable."),
    Metric("total_bad_debt_usd", "Bad debt incl. unliquidated", "USD",
           "s.bad_debt_usd + a.underwater_equity_usd",
           "Realised bad debt plus the negative equity of positions left open."),
    Metric("peak_accounts_waiting", "Peak accounts awaiting a keeper", "count",
           "s.peak_accounts_waiting",
           "Most accounts in one step that were liquidatable but not liquidated (latency, gas)."),
    Metric("bad_debt_pct_oi", "Bad debt / (open interest + borrowed)", "fraction",
           "s.bad_debt_usd / nullif(coalesce(a.open_interest_usd, 0)"
           " + coalesce(a.borrowed_usd, 0), 0)",
           "Bad debt as a share of what the book held at the window start, counted as venues "
           "and protocols publish it (the denominators of data/validation): open interest "
           "(each perp contract once, half the perps' notional over both sides) plus the "
           "loans' debt; positions opened during the window are not counted."),
    Metric("bad_debt_pct_notional", "Bad debt / book notional", "fraction",
           "s.bad_debt_usd / nullif(a.book_notional_usd, 0)",
           "Bad debt as a share of the notional of every position at the window's first open "
           "(both sides of a perp book, loans' collateral, options legs).",
           kinds=ALL),
    Metric("insurance_draw_usd", "Insurance fund drawn", "USD", "s.insurance_draw_usd",
           "Bad debt covered by the insurance fund.",
           kinds=ALL),
    Metric("insurance_fund_end_usd", "Insurance fund at end", "USD", "s.insurance_fund_end_usd",
           "Fund balance after the last step (initial + fee inflows - draws).",
           kinds=ALL),
    Metric("adl_notional_usd", "Auto-deleveraged notional", "USD", "s.adl_notional_usd",
           "Notional of profitable traders' positions closed by auto-deleveraging."),
    Metric("adl_accounts", "Accounts auto-deleveraged", "count", "s.adl_accounts",
           "Auto-deleveraging events (an account hit in two steps counts twice)."),
    Metric("accounts_auto_deleveraged", "Accounts closed or reduced by ADL only", "count",
           "a.accounts_auto_deleveraged",
           "Accounts whose final status is auto_deleveraged: reduced or closed by "
           "auto-deleveraging and never liquidated."),
    Metric("socialised_loss_usd", "Socialised loss", "USD", "s.socialised_loss_usd",
           "Bad debt neither the insurance fund nor auto-deleveraging covered (and Dutch-"
           "auction keeper incentives the fund could not pay).",
           kinds=ALL),
    Metric("socialised_loss_charged_usd", "of which charged to the book's perp traders", "USD",
           "a.socialised_loss_charged_usd",
           "Perp bad debt charged pro rata to the size of every perp position open at that "
           "step (Drift's resolve_perp_bankruptcy); included in user equity and user losses."),
    Metric("socialised_loss_outside_usd", "of which borne outside the book", "USD",
           "s.socialised_loss_outside_usd",
           "Loan bad debt and unpaid auction incentives, borne by lenders, stakers or token "
           "holders who are not in the book (and perp loss when no perp position was open)."),
    Metric("impact_cost_usd", "Market impact cost", "USD", "s.impact_cost_usd",
           "What liquidated accounts lost to the price impact of the step's liquidation flow: "
           "units sold x (decision price - execution price) plus units bought back x "
           "(execution - decision price). Negative when executions beat the decision price: "
           "with counterfactual impact, a policy that liquidates less than the as-happened one "
           "sells into less pressure than history."),
    Metric("extra_drawdown", "Cascade-induced extra drawdown", "fraction",
           "1 - s.simulated_low / s.historical_low",
           "How much lower the simulated price path went than history (lowest simulated low vs "
           "lowest historical low), because liquidation flow moved the price. Negative with "
           "counterfactual impact when the policy liquidated less than the as-happened one "
           "and kept the low above history."),
    Metric("max_price_departure", "Largest price departure from history", "fraction",
           "s.max_price_departure",
           "Simulated / historical price - 1 in the step where it is farthest from 1 (signed: "
           "below 0, the policy's liquidations pushed the price below history). With "
           "counterfactual impact only the difference from the as-happened flow moves it, so "
           "the as-happened policy shows 0."),
    Metric("minutes_departed_over_1pct", "Minutes with price more than 1% from history",
           "count", "s.minutes_departed_over_1pct",
           "Minutes of the window in which the simulated price was more than 1% above or below "
           "the historical one (steps x the candle interval)."),
    Metric("end_price_departure", "Price departure at the window's end", "fraction",
           "s.end_price_departure",
           "Simulated / historical price - 1 in the last step: the displacement the policy "
           "leaves behind (its permanent part never decays)."),
    Metric("user_equity_retained", "User equity retained", "fraction",
           "a.final_equity_usd / nullif(a.initial_equity_usd + a.cure_usd, 0)",
           "Sum of account equity at the last close (net of the socialised loss charged to "
           "the accounts) over the sum at the window start plus the new money cures brought "
           "during the window (a top-up is the owner's money in both: kept, not gained).",
           kinds=ALL),
    Metric("borrower_deposits_usd", "New money from cures (top-ups, repayments, margin)",
           "USD", "a.cure_usd",
           "New money accounts brought during the window to cure near their threshold "
           "(collateral added, debt repaid or margin added: the run's [response]); 0 without "
           "it."),
    Metric("user_loss_to_liquidation_usd", "User loss to liquidation (vs. no liquidation)",
           "USD", "a.hold_equity_usd - a.final_equity_historical_usd",
           "Equity accounts would have had at the last historical close without liquidation "
           "(floored at 0) minus what they have, valued at the same historical close: "
           "penalties, bad fills, positions closed at the bottom and the socialised loss "
           "charged to them. Under market impact the positions left open are valued at "
           "history's price, not the simulated one, so a policy's effect on the end price is "
           "not counted as a loss or gain to liquidation (it is the next measure).",
           kinds=ALL),
    Metric("end_price_effect_usd", "User equity from the end price's departure from history",
           "USD", "a.final_equity_usd - a.final_equity_historical_usd",
           "What the simulated last close adds to (or, below 0, takes from) the positions "
           "accounts still hold, against the historical last close: 0 without market impact. "
           "Final equity = no-liquidation equity - user loss to liquidation + this.",
           kinds=ALL),
)
