"""HTML report of a portfolio run (``liqbt portfolio run CONFIG --report``).

Reads a run directory written by :func:`backtest.portfolio.pipeline.run_portfolio_config` and
renders ``templates/portfolio.html.j2``: per-asset liquidations over time and in total, the
collateral-order comparison (table, chart and a plain-words finding), the options book's
Greeks (over time and per account at the start), short options vs perps, and the
liquidation-at-risk heat maps of both books. Same conventions as the single-asset report
(:mod:`backtest.report`): one self-contained file, plotly.js embedded once, jinja2 with
autoescaping (config names and descriptions are shown as text), the shared style and figure
helpers of :mod:`backtest.report.figures`, long series bucketed to at most
:data:`backtest.report.build.MAX_POINTS` points.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import polars as pl
from markupsafe import Markup
from plotly.subplots import make_subplots

from backtest import paths
from backtest.atomic import atomic_path
from backtest.kernels.options_enums import OptionsStepMetric
from backtest.options.simulate import metric_column
from backtest.portfolio.pipeline import load_run_tables
from backtest.report import _environment, _umask
from backtest.report.build import MAX_POINTS, bucket_size, usd
from backtest.report.figures import PALETTE, figure_html, label, style, time_x
from backtest.report.plotlyjs import plotlyjs_loader
from backtest.report.risk_figures import breach_curves_figure, liquidation_map_figure

#: Sections of the report (element id, heading), in order.
SECTIONS = (
    ("asset-liquidations", "Liquidations per asset"),
    ("order-comparison", "Collateral order comparison"),
    ("options-greeks", "Options: Greeks"),
    ("options-vs-perps", "Short options vs perps"),
    ("liquidation-at-risk", "Liquidation-at-risk"),
)

#: Columns of the order comparison table shown (column, heading).
ORDER_COLUMNS = (("liquidated_notional_usd", "Liquidated"),
                 ("collateral_seized_usd", "Collateral seized"),
                 ("perp_closed_usd", "Perp closed"), ("bad_debt_usd", "Bad debt"),
                 ("user_loss_usd", "User loss"))


def _ms(series: pl.Series) -> np.ndarray:
    return series.dt.epoch("ms").to_numpy().astype(np.float64)


def _bucket(frame: pl.DataFrame, time_col: str, by: list[str], how: dict[str, str],
            max_points: int = MAX_POINTS) -> tuple[pl.DataFrame, int]:
    """Aggregate a per-step frame into buckets of k steps (k so a series has <= max_points).

    ``how`` maps a column to ``sum`` or ``last``; the bucket is labelled by its first time.
    """
    steps = frame.select(time_col).n_unique()
    k = bucket_size(steps, max_points)
    if k == 1:
        return frame.sort([*by, time_col]), 1
    ranked = frame.with_columns((pl.col(time_col).rank("dense").cast(pl.Int64) - 1)
                                .floordiv(k).alias("_b"))
    aggs = [getattr(pl.col(c), h)() for c, h in how.items()]
    out = ranked.group_by([*by, "_b"]).agg(pl.col(time_col).min(), *aggs)
    return out.drop("_b").sort([*by, time_col]), k


def asset_liquidations_figure(assets: pl.DataFrame, order: str) -> go.Figure:
    """Liquidated notional per asset per step (stacked) and its cumulative total, USD."""
    sub, _ = _bucket(assets.filter(pl.col("order") == order), "timestamp", ["symbol"],
                     {"liquidated_notional_usd": "sum", "bad_debt_usd": "sum"})
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("Liquidated notional per step", "Cumulative"))
    for k, (sym,) in enumerate(sub.select("symbol").unique(maintain_order=True).iter_rows()):
        s = sub.filter(pl.col("symbol") == sym)
        x = time_x(_ms(s["timestamp"]))
        y = s["liquidated_notional_usd"].to_numpy()
        color = PALETTE[k % len(PALETTE)]
        fig.add_trace(go.Bar(**x, y=y, name=label(sym), marker_color=color,
                             legendgroup=label(sym), hovertemplate="%{y:,.0f} USD"), 1, 1)
        fig.add_trace(go.Scatter(**x, y=np.cumsum(y), name=label(sym), mode="lines",
                                 line={"color": color, "width": 2}, legendgroup=label(sym),
                                 showlegend=False, hovertemplate="%{y:,.0f} USD"), 2, 1)
    fig.update_layout(barmode="stack")
    return style(fig, f"Liquidated notional per asset (order: {label(order)})",
                 "USD", height=620)


def order_comparison_figure(table: pl.DataFrame) -> go.Figure:
    """Draw grouped bars: liquidated notional and bad debt per asset, one colour per order."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Liquidated notional", "Bad debt"))
    orders = table["order"].unique(maintain_order=True).to_list()
    for k, order in enumerate(orders):
        s = table.filter(pl.col("order") == order)
        syms = [label(v) for v in s["symbol"].to_list()]
        for col, c in (("liquidated_notional_usd", 1), ("bad_debt_usd", 2)):
            fig.add_trace(go.Bar(x=syms, y=s[col].to_numpy(), name=label(order),
                                 marker_color=PALETTE[k % len(PALETTE)], legendgroup=label(order),
                                 showlegend=c == 1, hovertemplate="%{y:,.0f} USD"), 1, c)
    fig.update_layout(barmode="group")
    return style(fig, "Collateral order policies: liquidated notional and bad debt per asset",
                 "USD", x_title="Asset", time_axis=False)


def order_finding(table: pl.DataFrame) -> str:
    """Plain-words result of "liquidate less sensitive assets first", from the ALL rows.

    Compares ``least_sensitive`` with the first order in the table (the baseline, normally
    ``protocol``) on liquidated notional, bad debt and user loss; the test is the run's, not
    an assumption.
    """
    tot = {r["order"]: r for r in table.filter(pl.col("symbol") == "ALL").iter_rows(named=True)}
    orders = list(tot)
    base = orders[0]
    best_bad = min(orders, key=lambda o: tot[o]["bad_debt_usd"])
    least_liq = min(orders, key=lambda o: tot[o]["liquidated_notional_usd"])
    text = (f"Least bad debt: {best_bad} ({usd(tot[best_bad]['bad_debt_usd'])}); least "
            f"notional liquidated: {least_liq} "
            f"({usd(tot[least_liq]['liquidated_notional_usd'])}).")
    if "least_sensitive" not in tot or base == "least_sensitive":
        return ("The claim \"liquidate less sensitive assets first\" is not tested in this run "
                "(it needs least_sensitive and another order). " + text)
    ls, b = tot["least_sensitive"], tot[base]

    def rel(key: str) -> float:
        return (ls[key] / b[key] - 1.0) * 100.0 if b[key] else 0.0

    better = ls["bad_debt_usd"] < b["bad_debt_usd"] and \
        ls["liquidated_notional_usd"] <= b["liquidated_notional_usd"]
    worse = ls["bad_debt_usd"] > b["bad_debt_usd"] and \
        ls["liquidated_notional_usd"] >= b["liquidated_notional_usd"]
    verdict = ("helps" if better else "does not help" if worse else "is a trade-off")
    return (f"Tested, not assumed: on this crash, seizing the least volatile collateral first "
            f"{verdict} compared with the {base} rule. It liquidates "
            f"{rel('liquidated_notional_usd'):+.1f}% "
            f"notional ({usd(ls['liquidated_notional_usd'])} against "
            f"{usd(b['liquidated_notional_usd'])}), leaves {rel('bad_debt_usd'):+.1f}% bad debt "
            f"({usd(ls['bad_debt_usd'])} against {usd(b['bad_debt_usd'])}) and costs users "
            f"{rel('user_loss_usd'):+.1f}% in bonuses and penalties. " + text)


def headline(manifest: dict) -> str:
    """One paragraph of the run's totals: the first order's liquidations and the options'."""
    first = manifest["config"]["portfolio"]["orders"][0]
    s = manifest["portfolio_summary"][first]
    n = manifest["portfolio_book"]["accounts"]
    text = (f"Under the {first} order, {s['accounts_liquidated']:,} of {n:,} lending and perp "
            f"accounts were liquidated: {usd(s['liquidated_notional_usd'])} of notional, "
            f"{usd(s['keeper_fees_usd'] + s['insurance_fees_usd'])} paid by users in bonuses "
            f"and penalties, {usd(s['bad_debt_usd'])} of bad debt.")
    opt = manifest.get("options_book")
    if opt:
        text += (f" Options: {opt['summary']['accounts_liquidated']:,} of {opt['accounts']:,} "
                 f"accounts liquidated, {usd(opt['summary']['bad_debt_usd'])} of bad debt.")
    return text


def greeks_figure(steps: pl.DataFrame) -> go.Figure:
    """Book delta, gamma and vega of the options book over time (USD units of each Greek)."""
    M = OptionsStepMetric
    cols = ((metric_column(M.DELTA_USD), "Delta (USD)"),
            (metric_column(M.GAMMA_USD), "Gamma (USD delta per 1%)"),
            (metric_column(M.VEGA_USD), "Vega (USD per vol point)"))
    sub, _ = _bucket(steps, "time", [], {c: "last" for c, _ in cols})
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=[t for _, t in cols])
    x = time_x(_ms(sub["time"]))
    for k, (c, t) in enumerate(cols):
        fig.add_trace(go.Scatter(**x, y=sub[c].to_numpy(), name=t, mode="lines",
                                 line={"color": PALETTE[k], "width": 2},
                                 hovertemplate="%{y:,.0f}"), k + 1, 1)
    return style(fig, "Options book Greeks at each step's close (sum over accounts)", "USD",
                 height=720)


def greeks_start_figure(accounts: pl.DataFrame, bins: int = 60) -> go.Figure:
    """Per-account delta, gamma, vega at the start: histograms (1st-99th percentile range).

    Counts are binned here (``numpy.histogram``) so the page holds ``bins`` bars, not one
    value per account.
    """
    cols = (("delta_usd", "Delta (USD)"), ("gamma_usd", "Gamma (USD per 1%)"),
            ("vega_usd", "Vega (USD per vol point)"))
    fig = make_subplots(rows=1, cols=3, subplot_titles=[t for _, t in cols])
    for k, (c, t) in enumerate(cols):
        v = accounts[c].to_numpy()
        lo, hi = np.percentile(v, [1, 99]) if v.size else (0.0, 1.0)
        if hi <= lo:
            hi = lo + 1.0
        counts, edges = np.histogram(np.clip(v, lo, hi), bins=bins, range=(lo, hi))
        fig.add_trace(go.Bar(x=(edges[:-1] + edges[1:]) / 2, y=counts, width=np.diff(edges),
                             name=t, marker_color=PALETTE[k], showlegend=False,
                             hovertemplate="%{x:,.0f}: %{y:,} accounts<extra></extra>"), 1, k + 1)
        fig.update_xaxes(title_text=t, row=1, col=k + 1)
    return style(fig, "Options accounts at the start: distribution of delta, gamma and vega "
                 "(clipped to the 1st-99th percentiles)", "Accounts", x_title=cols[-1][1],
                 time_axis=False)


def _order_rows(table: pl.DataFrame) -> list[dict]:
    base = [c for c in table.columns if c.startswith("bad_debt_vs_")]
    rows = []
    for r in table.iter_rows(named=True):
        rows.append({"order": r["order"], "symbol": r["symbol"], "total": r["symbol"] == "ALL",
                     "cells": [usd(r[c]) for c, _ in ORDER_COLUMNS],
                     "vs": (f"{r[base[0]]:.3f}" if base and r[base[0]] is not None else "-")})
    return rows


def render_portfolio_report(run_dir: str | Path) -> str:
    """Return the HTML report of a portfolio run directory as a string.

    Raises
    ------
    ConfigError
        If ``run_dir`` is not a portfolio run directory.
    """
    manifest, t = load_run_tables(run_dir)
    first = manifest["config"]["portfolio"]["orders"][0]
    charts: dict[str, Markup] = {}

    def add(div_id: str, fig: go.Figure) -> None:
        charts[div_id] = Markup(figure_html(fig, div_id))

    add("fig-asset-liquidations", asset_liquidations_figure(t["portfolio_assets"], first))
    add("fig-order-comparison", order_comparison_figure(t["order_comparison"]))
    if "lar_portfolio" in t and not t["lar_portfolio"].is_empty():
        add("fig-lar-portfolio", liquidation_map_figure(
            t["lar_portfolio"], title="Lending + perp book: notional liquidated by an "
                                      "instantaneous shock of every asset"))
        add("fig-lar-portfolio-bad-debt", liquidation_map_figure(
            t["lar_portfolio"], "bad_debt_usd", title="Lending + perp book: bad debt left by "
                                                      "an instantaneous shock"))
    if "options_steps" in t:
        add("fig-options-greeks", greeks_figure(t["options_steps"]))
        add("fig-options-greeks-start", greeks_start_figure(t["options_accounts"]))
    if "breach_curves" in t:
        add("fig-breach-curves", breach_curves_figure(t["breach_curves"]))
    if "lar_options" in t and not t["lar_options"].is_empty():
        add("fig-lar-options", liquidation_map_figure(
            t["lar_options"], title="Options book: notional liquidated by an instantaneous "
                                    "price shock (implied volatility unchanged)"))
        vols = t["lar_options"]["vol_shock"].unique().sort().to_list()
        if len(vols) > 1:
            add("fig-lar-options-vol", liquidation_map_figure(
                t["lar_options"], vol_shock=vols[-1],
                title=f"Options book: notional liquidated by a price shock with implied "
                      f"volatility {vols[-1] * 100:+.0f} vol points"))
    asset_totals = t["order_comparison"].filter(pl.col("order") == first)
    template = _environment().get_template("portfolio.html.j2")
    return template.render(
        m=manifest, sections=SECTIONS, charts=charts, first_order=first,
        order_headings=[h for _, h in ORDER_COLUMNS],
        asset_rows=_order_rows(asset_totals), order_rows=_order_rows(t["order_comparison"]),
        finding=order_finding(t["order_comparison"]), headline=headline(manifest),
        breach=(t["breach_summary"].to_dicts() if "breach_summary" in t else None),
        timings=_timings(manifest["timings"]),
        plotlyjs=plotlyjs_loader(),
    )


def _timings(timings: dict) -> list[tuple[str, str]]:
    out = []
    for k, v in timings.items():
        if isinstance(v, dict):
            out.extend((f"{k} {kk}", f"{vv:.1f} s") for kk, vv in v.items())
        else:
            out.append((k, f"{v:.1f} s"))
    return out


def write_portfolio_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the HTML report of a portfolio run, atomically.

    Parameters
    ----------
    run_dir : str or Path
        Portfolio run directory.
    out : str or Path, optional
        Destination; default ``<reports dir>/<run id>.html``.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    ConfigError
        If ``run_dir`` is not a portfolio run directory; nothing is written then.
    """
    text = render_portfolio_report(run_dir)
    out = Path(out) if out is not None else paths.reports_dir() / f"{Path(run_dir).name}.html"
    with atomic_path(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
        tmp.chmod(0o666 & ~_umask())
    return out


__all__ = ["SECTIONS", "headline", "order_finding", "render_portfolio_report",
           "write_portfolio_report"]
