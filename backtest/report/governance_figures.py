"""Charts of the governance report: the trade-off frontier and one figure per event.

Builders take a :class:`backtest.report.governance.GovernanceData` and return plotly figures
styled like the run report's (:func:`backtest.report.figures.style`); series are float32 and
already bucketed, user text is escaped with :func:`backtest.report.figures.label`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go
import polars as pl
from plotly.subplots import make_subplots

from backtest.report import figures
from backtest.report.proposal import CURRENT

if TYPE_CHECKING:
    from backtest.report.governance import GovernanceData, Scenario, SetInfo

FRONTIER_GREY = "#9aa0a6"
"""Colour of the swept (frontier) parameter sets."""


def _totals(data: GovernanceData) -> list[tuple[SetInfo, float, float]]:
    return [(s, data.value(None, s.label, "user_loss_to_liquidation_usd") or 0.0,
             data.value(None, s.label, "bad_debt_usd") or 0.0) for s in data.sets]


def pareto(points: list[tuple[float, float]]) -> list[int]:
    """Return the indices of the efficient points, sorted by the first coordinate.

    A point is efficient when no other point is lower on both coordinates (lower is better).

    Parameters
    ----------
    points : list of (float, float)

    Returns
    -------
    list of int
    """
    order = sorted(range(len(points)), key=lambda i: (points[i][0], points[i][1]))
    out, best = [], math.inf
    for i in order:
        if points[i][1] < best:
            out.append(i)
            best = points[i][1]
    return out


def frontier_figure(data: GovernanceData) -> go.Figure:
    """Bad debt against user losses to liquidation, summed over events, one point per set.

    Frontier points are grey; the efficient ones (no set has less of both) are joined by a
    line; current is a black diamond, proposed sets coloured stars.
    """
    totals = _totals(data)
    pts = [(x, y) for _, x, y in totals]
    eff = pareto(pts)
    fig = go.Figure()
    fig.add_trace(go.Scatter(
        x=np.float32([pts[i][0] for i in eff]), y=np.float32([pts[i][1] for i in eff]),
        mode="lines", line={"color": "#5f6368", "width": 1.2, "dash": "dot", "shape": "hv"},
        name="efficient frontier", hoverinfo="skip"))
    grey = [(s, x, y) for s, x, y in totals if s.role == "frontier"]
    if grey:
        fig.add_trace(go.Scatter(
            x=np.float32([x for _, x, _ in grey]), y=np.float32([y for _, _, y in grey]),
            mode="markers", marker={"color": FRONTIER_GREY, "size": 8},
            name="swept parameter sets", text=[figures.label(s.label) for s, _, _ in grey],
            hovertemplate="%{text}<br>user losses $%{x:,.0f}<br>bad debt $%{y:,.0f}"
                          "<extra></extra>"))
    for s, x, y in totals:
        if s.role == "frontier":
            continue
        cur = s.role == CURRENT
        fig.add_trace(go.Scatter(
            x=[x], y=[y], mode="markers", name=figures.label(s.label),
            marker={"color": s.color, "size": 15 if cur else 17,
                    "symbol": "diamond" if cur else "star",
                    "line": {"color": "white", "width": 1}},
            hovertemplate=figures.label(s.label) + "<br>user losses $%{x:,.0f}<br>bad debt "
                          "$%{y:,.0f}<extra></extra>"))
    figures.style(fig, "Trade-off frontier: bad debt vs user losses to liquidation "
                       "(all events)", "Bad debt (USD, sum over events)",
                  "User losses to liquidation (USD, sum over events)", height=520,
                  time_axis=False)
    return fig


def event_figure(data: GovernanceData, sc: Scenario) -> go.Figure:
    """Price path and liquidated notional per step for every parameter set of one scenario."""
    p = data.prices[sc.key]
    liq = data.liquidations[sc.key]
    k = data.buckets[sc.key]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.1,
                        row_heights=[0.45, 0.55],
                        subplot_titles=(f"{figures.label(sc.symbol)} price (low\u2013high band, "
                                        "close)", "Liquidated notional per step, by parameter "
                                        "set"))
    t = figures.time_x(p["t_ms"].to_numpy())
    fig.add_trace(go.Scatter(**t, y=p["high"].to_numpy().astype(np.float32), mode="lines",
                             line={"width": 0}, showlegend=False, hoverinfo="skip"),
                  row=1, col=1)
    fig.add_trace(go.Scatter(**t, y=p["low"].to_numpy().astype(np.float32), mode="lines",
                             line={"width": 0}, fill="tonexty",
                             fillcolor="rgba(0,114,178,0.22)", showlegend=False,
                             hoverinfo="skip"), row=1, col=1)
    fig.add_trace(go.Scatter(**t, y=p["close"].to_numpy().astype(np.float32), mode="lines",
                             line={"color": "#0b3d66", "width": 1.3}, name="close",
                             hovertemplate="close %{y:,.2f}<extra></extra>"), row=1, col=1)
    first_grey = True
    order = [s for s in data.sets if s.role == "frontier"] + data.named()
    for i, s in enumerate(order):
        f = liq.filter(pl.col("param_set") == s.label)
        if not f.height:
            continue
        grey = s.role == "frontier"
        fig.add_trace(go.Scatter(
            **figures.time_x(f["t_ms"].to_numpy()),
            y=f["liquidated_notional_usd"].to_numpy().astype(np.float32), mode="lines",
            line={"color": s.color, "width": 0.8 if grey else 1.8, "shape": "hv"},
            opacity=0.55 if grey else 1.0, legendgroup="frontier" if grey else f"set-{i}",
            showlegend=(not grey) or first_grey,
            name="swept parameter sets" if grey else figures.label(s.label),
            hovertemplate=("$%{y:,.0f}<extra>" + figures.label(s.label) + "</extra>")),
            row=2, col=1)
        first_grey = first_grey and not grey
    unit = (f"per {sc.interval} candle" if k == 1
            else f"summed per {k} x {sc.interval} candles")
    figures.style(fig, f"{figures.label(sc.key)}: {figures.label(sc.symbol)}, "
                       f"{figures.label(sc.window)}", "USD", f"Time (UTC), {unit}",
                  height=600)
    fig.update_layout(hovermode="closest")
    fig.update_yaxes(title_text="Price (USD)", row=1, col=1)
    fig.update_yaxes(title_text="Liquidated (USD)", row=2, col=1)
    return fig


