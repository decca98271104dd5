"""Gather what a report shows: DuckDB aggregates of one run, formatted values and plain words.

Everything comes from the catalog (:class:`backtest.results.catalog.Catalog`): the manifest,
the per-policy summary (:meth:`Catalog.summary`, the metrics registry), and SQL aggregates of
the ``prices``, ``steps`` and ``accounts`` tables. No per-account series leaves DuckDB: the
accounts table is reduced to counts and sums per (policy, category), and per-step series are
bucketed to at most :data:`MAX_POINTS` points per series (sums for flows, the last value for
balances and running totals).

Why over 400 lines: it gathers every section of one run report from one catalog connection into
one ``ReportData``, and each section's wording depends on the figures of others (the summary
paragraph cites them all); a split by section would pass the connection and half-built data
around.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import polars as pl

from backtest.results.catalog import Catalog
from backtest.results.metrics import METRICS, Metric

MAX_POINTS = 300
"""Most points per plotted series; longer per-step series are bucketed (a day of one-minute
candles becomes 288 five-minute points): flows are summed over a bucket, levels and running
totals take the bucket's last value."""

MATERIALITY_RELATIVE = 0.01
"""A difference between two policies' values is material when it is at least this share of
the larger absolute value ..."""
MATERIALITY_ABSOLUTE = {"USD": 1_000.0, "count": 1.0, "fraction": 0.0001}
"""... and at least this much in the metric's unit (USD, accounts or events, a share: 0.0001 is
0.01 percentage point). Below either threshold, policies tie on that measure."""

EQUITY_VS_HARD = Metric(
    "equity_vs_hard", "User equity vs. hard liquidation", "fraction",
    "a.final_equity_usd / hard_equity - 1",
    "Final user equity relative to the run's first hard-liquidation policy, minus 1 "
    "(positive: users keep more than under hard liquidation).",
)
"""The summary's extra column, described like a registry metric."""

SUMMARY_METRICS: tuple[Metric, ...] = (*METRICS, EQUITY_VS_HARD)
#: Metrics of one mechanism only, left out of the summary table when every policy has 0.
FAMILY_METRICS = frozenset({"preemptive_reductions", "soft_liquidation_loss_usd",
                            "peak_loans_in_soft_liquidation", "soft_converted_notional_usd",
                            "accounts_auto_deleveraged", "socialised_loss_charged_usd",
                            "socialised_loss_outside_usd",
                            "end_price_effect_usd"})  # 0 without market impact
"""Rows of the summary table, in order."""

BETTER: dict[str, str] = {
    "accounts_wiped_out": "min",
    "peak_liquidated_notional_usd": "min",
    "penalties_usd": "min",
    "bad_debt_usd": "min",
    "bad_debt_pct_oi": "min",
    "bad_debt_pct_notional": "min",
    "insurance_draw_usd": "min",
    "socialised_loss_usd": "min",
    "user_equity_retained": "max",
    "user_loss_to_liquidation_usd": "min",
    "equity_vs_hard": "max",
    "impact_cost_usd": "min",
    "extra_drawdown": "min",
    "underwater_equity_usd": "min",
    "total_bad_debt_usd": "min",
}
"""Metrics whose best value is clear (lower or higher is better for users and the protocol).

Counts of liquidations, liquidated notional, keeper profit and the fund's end balance are
not ranked: more is not plainly better or worse.
"""

STATUS_ORDER = ("open", "auto_deleveraged", "partially_liquidated", "closed", "bankrupt")
STATUS_LABELS = {
    "open": "never liquidated",
    "auto_deleveraged": "auto-deleveraged (never liquidated)",
    "partially_liquidated": "partially liquidated (position left)",
    "closed": "closed by liquidation",
    "bankrupt": "bankrupt (left bad debt)",
}

LEVERAGE_BUCKETS = (
    (0.0, 2.0, "< 2x"), (2.0, 5.0, "2-5x"), (5.0, 10.0, "5-10x"), (10.0, 20.0, "10-20x"),
    (20.0, 50.0, "20-50x"), (50.0, math.inf, ">= 50x"),
)
"""Leverage at the window start (notional / equity at the first open) used to group accounts."""

TRIGGER_TEXT = {
    "extreme": "An account is liquidatable in a candle if it is under water at the candle's "
               "worst price for it: the low for longs and loans, the high for shorts. Any "
               "touch inside the candle triggers, as a liquidation engine watching every tick "
               "would.",
    "close": "An account is liquidatable in a candle only if it is under water at the candle's "
             "close; intra-candle wicks that recover by the close do not trigger.",
}
FILL_TEXT = {
    "trigger": "A triggered liquidation executes at the triggering price (with the extreme "
               "trigger: the candle low for longs and loans, the high for shorts), i.e. the "
               "worst price of the candle, as a liquidation engine that is late within the "
               "candle. For bad debt this is the upper end of what a candle can say: "
               "fill_price = \"liquidation_price\" gives the lower end, and the real figure can "
               "lie between (on Black Thursday's hourly candles, a book standing for BitMEX "
               "drew $34.8M and $0 from its fund at the two ends; BitMEX's fund fell by "
               "$6.15M-$20.8M: docs/validation.md, \"Insurance funds\").",
    "liquidation_price": "A triggered liquidation executes at the account's exact liquidation "
                         "price (where equity equals the maintenance requirement), or at the "
                         "candle's open if the candle opened beyond it (a gap), clipped to the "
                         "candle's range: an ideal, instant liquidator, so bad debt comes from "
                         "gaps only, the lower end of what a candle can say (fill_price = "
                         "\"trigger\" gives the upper end).",
    "close": "A triggered liquidation executes at the candle's close.",
}
NO_IMPACT = ("Market impact and cascades: liquidations do not move the price; the historical "
             "tape is replayed as it was.")
IMPACT_TEXT = {
    "linear": "linear: a step's net liquidation flow Q moves the price by 1% x Q / D",
    "sqrt": "square-root: a step's net liquidation flow Q moves the price by 1% x sqrt(Q / D)",
    "amm": "constant-product pool (x * y = k) whose 1% depth is D",
}
NO_ORACLE = ("Oracle delay: the candle itself decides liquidations.")
NO_KEEPERS = ("Keeper latency beyond the candle and gas costs: keepers always act in the candle "
              "that triggers a liquidation and are paid their penalty share.")
NOT_MODELLED = (
    "Keeper competition: one keeper population takes every profitable liquidation (with a "
    "per-step capital budget if the run sets one).",
    "Borrow interest on loans; funding payments where the tape carries no funding rates "
    "(perp accounts pay the rates of the tape's funding_rate column at each settlement).",
)


@dataclass
class PolicyInfo:
    """A policy of the run as simulated.

    Attributes
    ----------
    name, family, description, source : str
    parameters : dict
        Parameters as simulated (from the ``policies`` table).
    file_sha256 : str
    color : str
        Colour used for this policy in every chart (set by the report).
    """

    name: str
    family: str
    description: str
    source: str
    parameters: dict
    file_sha256: str
    color: str = ""


@dataclass
class Cell:
    """One formatted value of the summary table."""

    text: str
    value: float | None
    best: bool = False


@dataclass
class SummaryRow:
    """One metric across the run's policies.

    Attributes
    ----------
    metric : Metric
    cells : list of Cell
    ranked : {"min", "max"} or None
        Which direction is better, if plainly one.
    tie : bool
        Ranked, but no policy is materially better than another (:func:`material`).
    artefact : str or None
        Why this ranked measure is not ranked in this run (its differences are an artefact),
        in plain words; None when it is ranked.
    """

    metric: Metric
    cells: list[Cell]
    ranked: str | None  # "min", "max" or None
    tie: bool = False
    artefact: str | None = None


@dataclass
class ReportData:
    """Everything a report shows, from DuckDB aggregates of one run.

    Attributes
    ----------
    run_id : str
    manifest : dict
        The run's manifest (config, inputs, versions, timings).
    policies : list of PolicyInfo
        In the config's order.
    summary : polars.DataFrame
        :meth:`Catalog.summary` of the run (one row per policy).
    prices : polars.DataFrame
        Bucketed candles: ``t_ms`` (bucket open time, epoch ms), ``open``, ``high``, ``low``,
        ``close`` (USD).
    price_stats : dict
        Full-resolution extremes: ``first_open``, ``last_close``, ``low``, ``low_t_ms``,
        ``high``, ``high_t_ms``, ``steps``.
    steps : polars.DataFrame
        Bucketed per-step series per policy: ``policy``, ``t_first_ms``, ``t_last_ms``,
        flows summed over the bucket (``liquidated_notional_usd``, ``liquidations``) and
        levels at the bucket's last step (``bad_debt_cum_usd``, ``socialised_loss_cum_usd``,
        ``insurance_fund_usd``, ``user_equity_usd``, ``open_interest_usd``,
        ``accounts_liquidated_cum``).
    bucket_steps : int
        Candles per plotted point (1: every candle is plotted).
    status_counts : polars.DataFrame
        ``policy``, ``status``, ``accounts``.
    leverage : polars.DataFrame
        ``policy``, ``product`` (``perp`` or ``loan``), ``bucket``, ``ord``, ``accounts``,
        ``initial_equity_usd``, ``final_equity_usd``, ``cure_usd`` (new money cures brought).
    """

    run_id: str
    manifest: dict
    policies: list[PolicyInfo]
    summary: pl.DataFrame
    prices: pl.DataFrame
    price_stats: dict
    steps: pl.DataFrame
    bucket_steps: int
    status_counts: pl.DataFrame
    leverage: pl.DataFrame

    @property
    def interval(self) -> str:
        """Candle interval of the tape, e.g. ``1m``."""
        return str(self.manifest["tape"]["interval"])

    @property
    def policy_names(self) -> list[str]:
        """Policy names in the config's order."""
        return [p.name for p in self.policies]

    def bucket_note(self) -> str:
        """Describe the time resolution of per-step charts in axis-title words."""
        if self.bucket_steps == 1:
            return f"per {self.interval} candle"
        return f"per {self.bucket_steps} x {self.interval} candles (downsampled)"


# --------------------------------------------------------------------------- queries


def _lit(value: str) -> str:
    """Quote a string as an SQL literal."""
    return "'" + str(value).replace("'", "''") + "'"


def bucket_size(steps: int, max_points: int = MAX_POINTS) -> int:
    """Return how many steps to aggregate per plotted point so a series has <= max_points.

    Parameters
    ----------
    steps : int
        Length of the per-step series.
    max_points : int
        Most points wanted.

    Returns
    -------
    int
        At least 1.
    """
    return max(1, math.ceil(steps / max_points))


def load_report_data(catalog: Catalog, run_id: str, max_points: int = MAX_POINTS) -> ReportData:
    """Query everything a report shows for one run.

    Parameters
    ----------
    catalog : Catalog
        Open catalog holding the run.
    run_id : str
        A registered run id.
    max_points : int
        Most points per plotted series.

    Returns
    -------
    ReportData

    Raises
    ------
    CatalogError
        If the run is not in the catalog or a query fails.
    """
    manifest = catalog.manifest(run_id)
    run = _lit(run_id)
    summary = catalog.summary(run_id)
    pol = catalog.query(
        f"SELECT policy, family, description, parameters, file_sha256 FROM policies "
        f"WHERE run_id = {run}"
    )
    by_name = {r["policy"]: r for r in pol.iter_rows(named=True)}
    policies = []
    for name in summary["policy"]:
        r = by_name[name]
        params = json.loads(r["parameters"])
        policies.append(PolicyInfo(name, r["family"], r["description"] or "",
                                   params.get("source", "") or "", params, r["file_sha256"]))

    n_steps = int(catalog.query(f"SELECT count(*) AS n FROM prices WHERE run_id = {run}")["n"][0])
    k = bucket_size(n_steps, max_points)
    prices = catalog.query(f"""
        SELECT step // {k} AS b, min(epoch_ms(timestamp))::DOUBLE AS t_ms,
               arg_min(open, step) AS open, max(high) AS high, min(low) AS low,
               arg_max(close, step) AS close
        FROM prices WHERE run_id = {run} GROUP BY b ORDER BY b
    """)
    stats = catalog.query(f"""
        SELECT arg_min(open, step) AS first_open, arg_max(close, step) AS last_close,
               min(low) AS low, arg_min(epoch_ms(timestamp), low) AS low_t_ms,
               max(high) AS high, arg_max(epoch_ms(timestamp), high) AS high_t_ms,
               count(*) AS steps
        FROM prices WHERE run_id = {run}
    """).row(0, named=True)
    steps = catalog.query(f"""
        SELECT policy, step // {k} AS b,
               min(epoch_ms(timestamp))::DOUBLE AS t_first_ms,
               max(epoch_ms(timestamp))::DOUBLE AS t_last_ms,
               sum(liquidated_notional_usd) AS liquidated_notional_usd,
               sum(liquidations) AS liquidations,
               arg_max(bad_debt_cum_usd, step) AS bad_debt_cum_usd,
               arg_max(socialised_loss_cum_usd, step) AS socialised_loss_cum_usd,
               arg_max(insurance_fund_usd, step) AS insurance_fund_usd,
               arg_max(user_equity_usd, step) AS user_equity_usd,
               arg_max((perp_long_oi_usd + perp_short_oi_usd) / 2 + loan_debt_usd, step)
                   AS open_interest_usd,
               arg_max(accounts_liquidated_cum, step) AS accounts_liquidated_cum,
               arg_max(simulated_close, step) AS simulated_close,
               min(simulated_low) AS simulated_low,
               max(abs(price_factor - 1)) AS max_price_deviation,
               sum(impact_cost_usd) AS impact_cost_usd,
               sum(adl_notional_usd) AS adl_notional_usd,
               sum(adl_accounts) AS adl_accounts,
               max(loans_in_soft_liquidation) AS loans_in_soft_liquidation,
               min(insurance_fund_usd) AS insurance_fund_min_usd
        FROM steps WHERE run_id = {run} GROUP BY policy, b ORDER BY policy, b
    """)
    status_counts = catalog.query(f"""
        SELECT policy, CAST(status AS VARCHAR) AS status, count(*) AS accounts
        FROM accounts WHERE run_id = {run} GROUP BY ALL ORDER BY ALL
    """)
    cases = " ".join(
        f"WHEN initial_notional_usd < {hi if math.isfinite(hi) else 1e300} * initial_equity_usd "
        f"THEN {i}" for i, (_, hi, _) in enumerate(LEVERAGE_BUCKETS)
    )
    leverage = catalog.query(f"""
        SELECT policy, CAST(product AS VARCHAR) AS product,
               CASE WHEN initial_equity_usd <= 0 THEN -1 {cases} ELSE {len(LEVERAGE_BUCKETS) - 1}
               END AS ord,
               count(*) AS accounts, sum(initial_equity_usd) AS initial_equity_usd,
               sum(final_equity_usd) AS final_equity_usd,
               coalesce(sum(cure_usd), 0) AS cure_usd
        FROM accounts WHERE run_id = {run} GROUP BY ALL ORDER BY ALL
    """)
    labels = {i: lab for i, (_, _, lab) in enumerate(LEVERAGE_BUCKETS)} | {-1: "no equity"}
    leverage = leverage.with_columns(
        pl.col("ord").replace_strict(labels, return_dtype=pl.String).alias("bucket")
    )
    return ReportData(run_id, manifest, policies, summary, prices, stats, steps, k,
                      status_counts, leverage)


# --------------------------------------------------------------------------- formatting


FRACTION_NOISE = 1e-9
"""Fractions below this are shown as 0: floating-point rounding, not a difference."""


def format_value(value: float | None, unit: str, signed: bool = False) -> str:
    """Format a metric value for display.

    Parameters
    ----------
    value : float or None
        The value; None or NaN shows as an en dash.
    unit : {"USD", "fraction", "count"}
        ``USD``: whole dollars with thousands separators (``$1,234,567``); ``fraction``: a
        percentage with 2 decimals (3 significant digits below 1%; below 1e-9, the rounding
        of a ratio of sums over a million accounts, 0); ``count``: an integer with thousands
        separators.
    signed : bool
        Show a ``+`` sign on positive values.

    Returns
    -------
    str
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "\u2013"
    if unit == "fraction" and abs(value) < FRACTION_NOISE:
        value = 0.0  # two tied policies' equity ratio differs in the last bits, not in fact
    sign = "+" if signed and value > 0 else ""
    if unit == "fraction":
        pct = 100.0 * value
        if pct != 0 and abs(pct) < 1:
            return f"{sign}{pct:.3g}%"
        return f"{sign}{pct:,.2f}%"
    if unit == "count":
        return f"{sign}{int(round(value)):,}"
    if value < 0:
        return f"-${-value:,.0f}"
    return f"{sign}${value:,.0f}"


def usd(value: float | None) -> str:
    """Format USD in whole dollars: ``$1,234,567`` (see :func:`format_value`).

    Parameters
    ----------
    value : float or None

    Returns
    -------
    str
    """
    return format_value(value, "USD")


def price(value: float | None) -> str:
    """Format a price with 2 decimals: ``$30,066.00``.

    Parameters
    ----------
    value : float or None

    Returns
    -------
    str
    """
    if value is None:
        return "\u2013"
    return f"${value:,.2f}"


def utc(ms_or_dt: float | int | str | datetime | None, seconds: bool = False) -> str:
    """Format a time as ``2021-05-19 13:05 UTC``.

    Parameters
    ----------
    ms_or_dt : float, int, str, datetime or None
        Epoch milliseconds, an ISO 8601 string or a datetime (naive means UTC).
    seconds : bool
        Include seconds.

    Returns
    -------
    str
    """
    if ms_or_dt is None:
        return "\u2013"
    if isinstance(ms_or_dt, str):
        dt = datetime.fromisoformat(ms_or_dt)
    elif isinstance(ms_or_dt, datetime):
        dt = ms_or_dt
    else:
        dt = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=float(ms_or_dt))
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC")


def material(a: float, b: float, unit: str) -> bool:
    """Return whether two values of a measure differ materially.

    Material means at least :data:`MATERIALITY_RELATIVE` of the larger absolute value and at
    least :data:`MATERIALITY_ABSOLUTE` in the measure's unit; both must hold, so a $58
    difference on millions and a 5% difference on $200 are both ties.

    Parameters
    ----------
    a, b : float
        Values of one measure (USD, a count, or a fraction).
    unit : {"USD", "count", "fraction"}

    Returns
    -------
    bool
    """
    d = abs(a - b)
    return d >= MATERIALITY_ABSOLUTE.get(unit, 0.0) and d >= MATERIALITY_RELATIVE * max(
        abs(a), abs(b))


def materiality_text() -> str:
    """Return the materiality threshold in plain words (shown in the report)."""
    return (f"at least {100 * MATERIALITY_RELATIVE:g}% of the larger value and at least "
            f"{usd(MATERIALITY_ABSOLUTE['USD'])} for dollar figures, "
            f"{MATERIALITY_ABSOLUTE['count']:g} for counts and "
            f"{100 * MATERIALITY_ABSOLUTE['fraction']:g} percentage points for shares")


def fund_ran_dry(data: ReportData) -> list[str]:
    """Return the policies whose insurance fund was empty at some step (balance < $1).

    Parameters
    ----------
    data : ReportData

    Returns
    -------
    list of str
        Policy names in the run's order.
    """
    lows = data.steps.group_by("policy").agg(pl.col("insurance_fund_min_usd").min())
    low = dict(zip(lows["policy"], lows["insurance_fund_min_usd"], strict=True))
    return [p for p in data.policy_names if (low.get(p) or 0.0) < 1.0]


def artefact_reason(data: ReportData, metric: str) -> str | None:
    """Return why a ranked measure must not be ranked in this run, or None.

    "Insurance fund drawn" is lower when the fund has nothing left to give: once a policy's
    fund ran dry (or it started empty), a smaller draw says nothing about bad debt, which went
    to auto-deleveraging or socialised loss instead. That measure is then left unranked.

    Parameters
    ----------
    data : ReportData
    metric : str
        A :data:`BETTER` metric name.

    Returns
    -------
    str or None
        Plain words for the report.
    """
    if metric != "insurance_draw_usd":
        return None
    fund0 = float(data.manifest.get("insurance_fund", {}).get("initial_balance_usd", 0.0))
    draws = [_num(v) or 0.0 for v in data.summary["insurance_draw_usd"]]
    if fund0 <= 0.0 and not any(draws):
        return ("Insurance fund drawn is not ranked: the fund started empty, so no policy "
                "could draw on it.")
    dry = fund_ran_dry(data)
    if dry and len(data.policies) > 1:
        return (f"Insurance fund drawn is not ranked: the fund ran dry under {_names(dry)}, so "
                "a smaller draw means the fund had nothing left to pay, not less bad debt "
                "(what it could not cover is in auto-deleveraging and socialised loss).")
    return None


def summary_rows(data: ReportData) -> list[SummaryRow]:
    """Return the summary table: one row per metric, one cell per policy, best marked.

    In a ranked metric (:data:`BETTER`), the cells within the materiality threshold of the
    best value (:func:`material`) are marked best, but only when some other policy is
    materially worse; otherwise the row is a tie. Measures whose differences are artefacts in
    this run (:func:`artefact_reason`) are not ranked. Rows of :data:`FAMILY_METRICS` that are
    0 for every policy are left out.

    Parameters
    ----------
    data : ReportData

    Returns
    -------
    list of SummaryRow
    """
    rows = []
    for m in SUMMARY_METRICS:
        values = [_num(v) for v in data.summary[m.name].to_list()]
        if m.name in FAMILY_METRICS and not any(values):
            continue  # e.g. soft-liquidation rows when no policy has bands
        signed = m.name == "equity_vs_hard"
        cells = [Cell(format_value(v, m.unit, signed), v) for v in values]
        ranked = BETTER.get(m.name)
        row = SummaryRow(m, cells, ranked)
        present = [v for v in values if v is not None]
        if ranked and len(present) > 1:
            row.artefact = artefact_reason(data, m.name)
            best = min(present) if ranked == "min" else max(present)
            if row.artefact is None and any(material(v, best, m.unit) for v in present):
                for c in cells:
                    c.best = c.value is not None and not material(c.value, best, m.unit)
            elif row.artefact is None:
                row.tie = True
        rows.append(row)
    return rows


def tie_sentences(rows: list[SummaryRow]) -> list[str]:
    """Say, in plain words, where the policies tie and why, and which measures are artefacts.

    Parameters
    ----------
    rows : list of SummaryRow
        From :func:`summary_rows`.

    Returns
    -------
    list of str
        Empty when nothing ties.
    """
    zero = [r.metric.label.lower() for r in rows
            if r.tie and all((c.value or 0.0) == 0.0 for c in r.cells)]
    close = [r.metric.label.lower() for r in rows
             if r.tie and any((c.value or 0.0) != 0.0 for c in r.cells)]
    out = []
    if zero:
        out.append("The policies tie on " + _plain(zero) + ": it is zero under every policy, "
                   "so the crash did not test that part of the mechanism.")
    if close:
        out.append("The policies tie on " + _plain(close) + ": their values differ by less "
                   f"than the materiality threshold ({materiality_text()}), too little to "
                   "prefer one policy.")
    out.extend(r.artefact for r in rows if r.artefact)
    return out


def _plain(items: list[str]) -> str:
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]


def _num(v) -> float | None:
    if v is None:
        return None
    v = float(v)
    return None if math.isnan(v) else v


# --------------------------------------------------------------------------- plain words


def _extremes(data: ReportData, metric: str, direction: str) -> tuple[list[str], float,
                                                                       list[str], float] | None:
    """Return (best policies, best value, worst policies, worst value), or None.

    None when the best and worst do not differ materially (:func:`material`); policies within
    the threshold of the best (worst) value count as best (worst).
    """
    unit = next(m.unit for m in SUMMARY_METRICS if m.name == metric)
    pairs = [(p, _num(v)) for p, v in zip(data.summary["policy"], data.summary[metric],
                                          strict=True)]
    pairs = [(p, v) for p, v in pairs if v is not None]
    if not pairs:
        return None
    lo = min(v for _, v in pairs)
    hi = max(v for _, v in pairs)
    best, worst = (lo, hi) if direction == "min" else (hi, lo)
    if not material(best, worst, unit):
        return None
    b = [p for p, v in pairs if not material(v, best, unit)]
    w = [p for p, v in pairs if not material(v, worst, unit)]
    return b, best, w, worst


def _names(names: list[str]) -> str:
    quoted = [f"\u201c{n}\u201d" for n in names]
    if len(quoted) == 1:
        return quoted[0]
    return ", ".join(quoted[:-1]) + " and " + quoted[-1]


def _verb(names: list[str], one: str, many: str) -> str:
    return one if len(names) == 1 else many


def summary_paragraph(data: ReportData) -> str:
    """Describe the run's outcome in plain words, from the numbers.

    Parameters
    ----------
    data : ReportData

    Returns
    -------
    str
        Plain text (escaped by the template).
    """
    m, s, ps = data.manifest, data.summary, data.price_stats
    parts = []
    drop = ps["low"] / ps["first_open"] - 1 if ps["first_open"] else 0.0
    parts.append(
        f"{m['symbol']} opened the window at {price(ps['first_open'])}, fell to "
        f"{price(ps['low'])} at {utc(ps['low_t_ms'])} ({format_value(drop, 'fraction')} from "
        f"the open) and closed at {price(ps['last_close'])}."
    )
    n_acc = m["book"]["accounts"]
    liq = [int(v) for v in s["accounts_liquidated"]]
    wiped = [int(v) for v in s["accounts_wiped_out"]]
    rng = (f"{min(liq):,}" if min(liq) == max(liq) else f"between {min(liq):,} and {max(liq):,}")
    wrng = (f"{min(wiped):,}" if min(wiped) == max(wiped)
            else f"{min(wiped):,} to {max(wiped):,}")
    parts.append(
        f"Of the {n_acc:,} accounts in the book, {rng} "
        f"({format_value(min(liq) / n_acc if n_acc else None, 'fraction')}"
        + ("" if min(liq) == max(liq) else
           f" to {format_value(max(liq) / n_acc if n_acc else None, 'fraction')}")
        + f") were liquidated under the {len(data.policies)} "
        f"polic{'y' if len(data.policies) == 1 else 'ies'} compared, and {wrng} lost "
        "essentially all their equity."
    )
    if len(data.policies) > 1:
        e = _extremes(data, "bad_debt_usd", "min")
        bads = [_num(v) or 0.0 for v in s["bad_debt_usd"]]
        if e is None and len({usd(v) for v in bads}) == 1:
            parts.append(f"Every policy left the same bad debt ({usd(bads[0])}).")
        elif e is None:
            parts.append(f"The policies left nearly the same bad debt ({usd(min(bads))} to "
                         f"{usd(max(bads))}, within the materiality threshold).")
        else:
            b, bv, w, wv = e
            parts.append(f"{_names(b)} {_verb(b, 'left', 'tie for')} the least bad debt "
                         f"({usd(bv)}); {_names(w)} the most ({usd(wv)}).")
        e = _extremes(data, "user_equity_retained", "max")
        if e is not None:
            b, bv, w, wv = e
            parts.append(f"{_names(b)} retained the most user equity "
                         f"({format_value(bv, 'fraction')} of the equity at the window start, "
                         f"against {format_value(wv, 'fraction')} under {_names(w)}).")
        e = _extremes(data, "penalties_usd", "min")
        if e is not None:
            b, bv, w, wv = e
            parts.append(f"{_names(b)} took the least in liquidation penalties ({usd(bv)}, "
                         f"against {usd(wv)} under {_names(w)}).")
        e = _extremes(data, "peak_liquidated_notional_usd", "min")
        if e is not None:
            b, bv, w, wv = e
            parts.append(f"The largest forced flow in one {data.interval} candle was "
                         f"{usd(wv)} under {_names(w)} and {usd(bv)} under {_names(b)}.")
    else:
        parts.append(
            f"Bad debt was {usd(s['bad_debt_usd'][0])} and users retained "
            f"{format_value(_num(s['user_equity_retained'][0]), 'fraction')} of their equity."
        )
    fund0 = m["insurance_fund"]["initial_balance_usd"]
    fund_from = m["insurance_fund"].get("initial_balance_from")
    initially = (f"initially {usd(fund0)}, a real venue's fund: target {fund_from}" if fund_from
                 else f"initially {usd(fund0)}, as the run's config sets it")
    social = [(p, _num(v) or 0.0) for p, v in zip(s["policy"], s["socialised_loss_usd"],
                                                   strict=True)]
    hit = [(p, v) for p, v in social if v > 0.5]
    if not hit:
        if max((_num(v) or 0.0) for v in s["bad_debt_usd"]) > 0:
            parts.append(f"The insurance fund ({initially}) covered all bad debt "
                         "under every policy: no loss was socialised.")
        else:
            parts.append("No policy left bad debt, so the insurance fund was never drawn.")
    else:
        charged = dict(zip(s["policy"], s["socialised_loss_charged_usd"], strict=True))

        def _who(p: str) -> str:
            c = _num(charged.get(p)) or 0.0
            return (f" ({usd(c)} of it charged to the book's perp positions, pro rata to "
                    "their size)" if c > 0.5 else "")

        parts.append("The insurance fund (" + initially + ") could not cover all bad "
                     "debt: " + "; ".join(f"{usd(v)} was socialised under \u201c{p}\u201d"
                                          + _who(p) for p, v in hit) + ".")
    return " ".join(parts)


# --------------------------------------------------------------------------- methodology


def _flatten(d: dict, prefix: str = "") -> dict[str, object]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def parameter_rows(data: ReportData) -> tuple[list[tuple[str, list[str]]], int]:
    """Return the policies' parameters that differ across policies, as rows.

    Parameters
    ----------
    data : ReportData

    Returns
    -------
    rows : list of (str, list of str)
        Dotted field names (``perp.maintenance_margin_rate``) and formatted values, one row
        per parameter whose value is not the same for every policy (every parameter when the
        run has one policy); text fields (name, description, source) are left out, they are
        shown elsewhere.
    hidden : int
        Parameters left out because every policy has the same value.
    """
    flat = [_flatten(p.parameters) for p in data.policies]
    keys: list[str] = []
    for f in flat:
        for k in f:
            if k not in keys and k not in ("name", "description", "source"):
                keys.append(k)
    rows, hidden = [], 0
    for k in keys:
        vals = []
        for f in flat:
            v = f.get(k)
            vals.append("\u2013" if v is None else (f"{v:g}" if isinstance(v, float) else str(v)))
        if len(flat) > 1 and len(set(vals)) == 1:
            hidden += 1
            continue
        rows.append((k, vals))
    return rows, hidden


def book_generator(data: ReportData) -> list[tuple[str, str]] | None:
    """Return the synthetic book generator's parameters.

    Parameters
    ----------
    data : ReportData

    Returns
    -------
    list of (str, str) or None
        (parameter, value) rows from the manifest's ``book.meta.generator`` JSON; None for an
        imported book.
    """
    raw = data.manifest["book"].get("meta", {}).get("generator")
    if not raw:
        return None
    try:
        params = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return [("generator", str(raw))]
    return [(k, json.dumps(v) if isinstance(v, list | dict) else f"{v:g}"
             if isinstance(v, float) else str(v)) for k, v in params.items()]


def methodology(data: ReportData) -> dict:
    """Return the methodology section's facts and sentences (plain text).

    Parameters
    ----------
    data : ReportData

    Returns
    -------
    dict
        ``trigger``, ``fill`` (mode and explanation), ``penalty_split`` (one sentence per
        policy), ``insurance_fund_usd``, ``book`` (accounts, products, seed, generator rows),
        ``not_modelled``, ``parameters`` and ``parameters_hidden`` (see
        :func:`parameter_rows`).
    """
    m = data.manifest
    ex = m.get("execution", {})
    trig, fill = ex.get("trigger_price", "extreme"), ex.get("fill_price", "trigger")
    split = []
    for p in data.policies:
        ks = float(p.parameters.get("keeper_share", 0.5))
        wf = p.parameters.get("waterfall", {}) or {}
        after = ("auto-deleveraging of profitable opposite-side perp traders ranked "
                 f"{wf.get('adl_ranking', 'binance')}-style, then socialised loss"
                 if wf.get("mode") == "adl" else
                 "queued in the surplus buffer (Maker's Vow) and healed by later penalty "
                 "income; what is still queued at the window's end is covered by debt "
                 "auctions (socialised loss, outside the book)"
                 if wf.get("mode") == "surplus_buffer" else "socialised loss")
        split.append(f"{p.name}: {100 * ks:g}% of each penalty to the keeper, "
                     f"{100 * (1 - ks):g}% to the insurance fund; bad debt beyond the fund: "
                     f"{after}.")
    meta = m["book"].get("meta", {})
    return {
        "trigger": (trig, TRIGGER_TEXT.get(trig, trig)),
        "fill": (fill, FILL_TEXT.get(fill, fill)),
        "penalty_split": split,
        "insurance_fund_usd": usd(m.get("insurance_fund", {}).get("initial_balance_usd", 0.0)),
        "book": {
            "accounts": f"{m['book']['accounts']:,}",
            "products": ", ".join(f"{v:,} {k}s" for k, v in
                                  sorted(m["book"].get("products", {}).items())),
            "seed": meta.get("seed"),
            "event": meta.get("event"),
            "window_start": meta.get("window_start"),
            "generator": book_generator(data),
        },
        "market": market_text(m.get("market", {})),
        "oracle_keepers": oracle_keeper_text(m),
        "not_modelled": ((NO_IMPACT,) if m.get("market", {}).get("impact_model", "none") == "none"
                         else ())
        + ((NO_ORACLE,) if m.get("oracle", {}).get("model", "market") == "market" else ())
        + ((NO_KEEPERS,) if not _keepers_modelled(m) else ()) + NOT_MODELLED,
        "parameters": parameter_rows(data)[0],
        "parameters_hidden": parameter_rows(data)[1],
    }


def _keepers_modelled(manifest: dict) -> bool:
    k = manifest.get("keepers", {})
    return bool(k.get("latency_minutes") or k.get("requires_profit")
                or k.get("capital_usd_per_step"))


def oracle_keeper_text(manifest: dict) -> list[str]:
    """Plain-words description of the run's oracle and keeper model (empty: neither)."""
    out = []
    o = manifest.get("oracle", {})
    model = o.get("model", "market")
    if model == "lagged":
        out.append(f"Oracle: the close {o.get('lag_minutes'):g} minutes earlier decides "
                   "liquidations; they fill at the market (the step's close).")
    elif model == "osm":
        out.append(f"Oracle: Maker's Oracle Security Module, which reads the price once every "
                   f"{o.get('lag_minutes'):g} minutes and publishes it one such hop later, "
                   "decides liquidations (a wick between two readings is never seen); they "
                   "fill at the market (the step's close).")
    elif model == "twap":
        out.append(f"Oracle: a {o.get('twap_minutes'):g}-minute TWAP of past closes decides "
                   "liquidations; they fill at the market (the step's close).")
    elif model == "chainlink":
        out.append(f"Oracle: a Chainlink-style feed that updates to the last close when it "
                   f"deviates by {100 * o.get('deviation', 0):g}% or after "
                   f"{o.get('heartbeat_minutes'):g} minutes decides liquidations; they fill at "
                   "the market (the step's close).")
    if _keepers_modelled(manifest):
        k = manifest["keepers"]
        text = (f"Keepers act {k.get('latency_minutes', 0):g} minutes after an account first "
                "becomes liquidatable")
        if k.get("requires_profit"):
            gas = k.get("gas", {})
            src = (f"the gas tape {gas.get('gas_tape')} ({gas.get('column')})"
                   if gas.get("gas_tape") else f"{gas.get('gas_price_gwei', 0):g} gwei")
            text += (f", and only when their penalty share covers gas ({k.get('gas_units'):,.0f} "
                     f"gas at {src}) plus the previous step's slippage; otherwise the account "
                     "stays open and can go bankrupt")
        if k.get("capital_usd_per_step"):
            text += (f"; together they absorb at most {usd(k['capital_usd_per_step'])} of "
                     "notional per step (capital-constrained keepers; the rest waits)")
        else:
            text += "; they are flash liquidators with unlimited capital"
        out.append(text + ".")
    return out


def depth_scope_text(market: dict) -> str:
    """Return the clause saying whose depth ``D`` is (empty for an explicit ``depth_usd``)."""
    info = market.get("depth") or {}
    scope, book = info.get("scope"), info.get("book_venue")
    if scope is None:
        return ""
    if scope == "market":
        return (f" (depth scope: market; the book stands for {book}, so its flow trades "
                "against every venue's depth)" if book else
                " (depth scope: market, set in the run config)")
    if info.get("scope_note"):
        return f" (depth scope: venue; {info['scope_note']}: impacts overstated)"
    return (" (depth scope: venue, the tape's own venue" +
            (f"; the book stands for {book})" if book else ")"))


def market_text(market: dict) -> str | None:
    """Return a plain-words description of the run's market impact model (None: no impact)."""
    model = market.get("impact_model", "none")
    if model == "none":
        return None
    if market.get("depth_usd"):
        depth = f"D = {usd(market['depth_usd'])} in every step"
    elif market.get("depth_source", "hourly_volume") == "pre_window":
        info = market.get("depth") or {}
        depth = (f"D = {market.get('pre_window_depth_fraction', 0.12):g} x the median hourly USD "
                 f"volume of the {market.get('pre_window_days', 7):g} days before the window")
        if info.get("scope") == "market":
            depth += (f" x {info['market_depth_multiple']:g}, the whole market's depth over "
                      "the tape's venue")
        if info.get("depth_usd"):
            depth += f" ({usd(info['depth_usd'])})"
        if market.get("depth_volatility_exponent"):
            depth += (f", thinned by (pre-window / trailing volatility)^"
                      f"{market['depth_volatility_exponent']:g} when volatility rises")
    else:
        depth = (f"D = {market.get('depth_fraction_of_hourly_volume', 0.1):g} x the USD volume "
                 "traded on the tape in the hour before the step")
        if (market.get("depth") or {}).get("scope") == "market":
            depth += (f", x {market['depth']['market_depth_multiple']:g} (the whole market's "
                      "depth over the tape's venue)")
    depth += depth_scope_text(market)
    text = (f"Market impact, {IMPACT_TEXT.get(model, model)}, where {depth}; every liquidation "
            "of a step executes at the step's average impacted price (sizes are decided at the "
            "pre-impact price). ")
    if market.get("counterfactual"):
        text += ("Counterfactual impact: the historical prices already carry the impact of the "
                 "liquidations that really happened, so only the difference between a policy's "
                 f"net liquidation flow and that of {market.get('as_happened_policy')} (the "
                 "policy that really ran, simulated first without impact) moves the price; "
                 f"{market.get('as_happened_policy')} reproduces the historical path. ")
    if market.get("cascade"):
        text += ("Cascade feedback: each step's price move is fixed in price when it happens; "
                 f"{100 * market.get('permanent_fraction', 0.5):g}% of it is permanent and the "
                 "rest decays with a half-life of "
                 f"{market.get('transient_half_life_minutes', 30):g} minutes. Later steps "
                 "trigger on the simulated prices: historical x the displacement, so selling in "
                 "slices lowers the peak displacement.")
    else:
        text += "No cascade feedback: later steps trigger on historical prices."
    return text


def gaps(data: ReportData) -> list[dict]:
    """Return the tape gaps inside the window.

    Parameters
    ----------
    data : ReportData

    Returns
    -------
    list of dict
        ``start`` (last candle before), ``end`` (first candle after), UTC text, and
        ``missing`` (candles, text); empty if the window is complete.
    """
    return [{"start": utc(g["start"]), "end": utc(g["end"]),
             "missing": f"{int(g['missing_steps']):,}"} for g in data.manifest["window"]["gaps"]]


def reproducibility(data: ReportData) -> dict:
    """Return the reproducibility appendix.

    Parameters
    ----------
    data : ReportData

    Returns
    -------
    dict
        ``command``, ``created_at``, ``config_json`` (resolved config, pretty JSON),
        ``files`` (kind, path, sha256), ``versions``, ``runtime`` (Python, platform, peak
        memory, threads), ``phases`` (seconds per phase) and ``per_policy`` (seconds and
        accounts x steps per second).
    """
    m = data.manifest
    cfg = m["config"]
    files = [("config", cfg["path"], cfg["sha256"]),
             ("tape", m["tape"]["path"], m["tape"].get("sha256") or "\u2013")]
    for src in m["tape"].get("sources", []):
        if isinstance(src, dict):
            files.append(("tape source", src.get("path", ""), src.get("sha256", "")))
    files.append(("book", m["book"]["path"], m["book"]["sha256"]))
    refs = cfg.get("resolved", {}).get("policies", [])
    for i, p in enumerate(m["policies"]):
        ref = refs[i] if i < len(refs) else p["name"]
        files.append((f"policy {p['name']}", ref if str(ref).endswith(".toml")
                      else f"{ref} (strategies/{ref}.toml)", p["file_sha256"]))
    t = m.get("timings", {})
    per_policy = [
        (name, f"{sec:.3f}", _rate(t.get("account_steps_per_second", {}).get(name, 0.0)))
        for name, sec in t.get("per_policy_seconds", {}).items()
    ]
    phases = [(label, f"{t[k]:.3f} s") for k, label in (
        ("load_seconds", "load inputs"), ("jit_warmup_seconds", "JIT warm-up (compilation)"),
        ("simulate_seconds", "simulation (all policies, excluding warm-up)"),
        ("write_seconds", "write results"), ("total_seconds", "total")) if k in t]
    rt = m.get("runtime", {})
    return {
        "command": m.get("command", ""),
        "created_at": utc(m.get("created_at"), seconds=True),
        "config_json": json.dumps(cfg.get("resolved", {}), indent=2, sort_keys=False),
        "files": files,
        "versions": sorted(m.get("versions", {}).items()),
        "runtime": [("Python", rt.get("python", "")), ("platform", rt.get("platform", "")),
                    ("peak memory (RSS)", f"{rt.get('peak_rss_mb', 0.0):,.0f} MB"),
                    ("threads (numba)", str(t.get("threads", "")))],
        "phases": phases,
        "per_policy": per_policy,
    }


def _rate(per_second: float) -> str:
    if per_second >= 1e6:
        return f"{per_second / 1e6:,.1f} million"
    return f"{per_second:,.0f}"


def title_facts(data: ReportData) -> dict:
    """Return the heading's facts.

    Parameters
    ----------
    data : ReportData

    Returns
    -------
    dict
        ``name``, ``description``, ``symbol``, ``event``, ``window``, ``steps``, ``tape``,
        ``accounts``, ``policies``, ``run_id``, ``created_at`` (plain text).
    """
    m = data.manifest
    w, tape = m["window"], m["tape"]
    return {
        "name": m["name"],
        "description": m.get("description", ""),
        "symbol": m["symbol"],
        "event": w.get("event") or "custom window",
        "window": f"{utc(w['start'])} \u2013 {utc(w['end'])}",
        "steps": f"{int(w['steps']):,}",
        "tape": f"{tape['venue']} {tape['market']} {tape['interval']}",
        "accounts": f"{int(m['book']['accounts']):,}",
        "policies": data.policy_names,
        "run_id": data.run_id,
        "created_at": utc(m.get("created_at")),
    }


# --------------------------------------------------------------------------- against reality


def against_what_happened(catalog: Catalog, run_id: str,
                          targets_dir: str | None = None) -> dict:
    """Return the "against what happened" section of a run report.

    The rows are those of ``liqbt validate`` (:func:`backtest.calibration.compare.table_rows`
    over :func:`backtest.calibration.compare.compare`), so the report and the command show the
    same figures.

    Parameters
    ----------
    catalog : Catalog
        Open catalog holding the run.
    run_id : str
    targets_dir : str, optional
        Target directory (default :func:`backtest.targets.validation_dir`).

    Returns
    -------
    dict
        ``rows`` (list of dict of str), ``notes`` (list of str), ``sentence`` (str or None:
        the plain sentence when nothing matches, or why the targets could not be read),
        ``calibrated`` (bool), ``book_kind`` (str: imported, calibrated or uncalibrated book;
        rows of liquidation figures carry ``band`` and ``band_meets`` where the book's
        calibration has a coverage record, :func:`backtest.sweep.coverage.point_error`),
        ``far`` (list of str: a calibrated book's held-out bad-debt, liquidated and
        liquidated-share figures outside a factor 1.5 of the real range, one per target;
        :func:`backtest.calibration.reality_check.far_from_reality`), ``held_out`` (list of
        str: per policy, its held-out outcomes counted by distance from what happened;
        :func:`backtest.calibration.reality_check.held_out_summary`).
    """
    from backtest.calibration.compare import RunFacts, compare, table_rows
    from backtest.calibration.reality_check import far_from_reality, held_out_summary
    from backtest.calibration.sources import RunTables
    from backtest.errors import ConfigError
    from backtest.sweep.coverage import add_point_error

    facts = RunFacts.from_manifest(catalog.manifest(run_id))
    try:
        comparison = compare(facts, RunTables(catalog, run_id, facts), directory=targets_dir)
    except ConfigError as exc:
        return {"rows": [], "notes": [], "calibrated": facts.fit_keys is not None, "far": [],
                "held_out": [],
                "book_kind": "", "sentence": f"The published targets could not be read, so "
                                             f"this run is not held against what happened: {exc}"}
    rows, notes = table_rows(comparison), list(comparison.notes)
    said = None if comparison.sentence else add_point_error(rows, comparison,
                                                            facts.calibration)
    if said:
        notes.append(said)
    return {"rows": rows, "notes": notes,
            "sentence": comparison.sentence, "calibrated": comparison.calibrated,
            "book_kind": comparison.book_kind, "far": far_from_reality(comparison),
            "held_out": held_out_summary(comparison)}
