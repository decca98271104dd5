"""Charts of the governance report: the trade-off frontier and one figure per event.

Builders take a :class:`backtest.report.governance_data.GovernanceData` and return plotly figures
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
from backtest.report.governance_data import FRONTIER_GREY
from backtest.report.proposal import CURRENT

if TYPE_CHECKING:
    from backtest.report.governance_data import GovernanceData, Scenario, SetInfo


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


DOMINATING_COLOR = "#1b5e20"
"""Colour of swept sets that beat both the current and a proposed set on both axes."""


def frontier_figure(data: GovernanceData, markers: dict[str, str] | None = None) -> go.Figure:
    """Bad debt against user losses to liquidation, summed over events, one point per set.

    Frontier points are grey; the efficient ones (no set has less of both) are joined by a
    line; current is a black diamond, proposed sets coloured stars. Swept sets that beat both
    the current and a proposed set (``markers``: label -> ``D1``, ``D2``, ...) are dark-green
    rings labelled with their marker, which the text names.
    """
    markers = markers or {}
    totals = _totals(data)
    pts = [(x, y) for _, x, y in totals]
    eff = pareto(pts)
    fig = go.Figure()
    fig.add_trace(go.Scatter(
        x=np.float32([pts[i][0] for i in eff]), y=np.float32([pts[i][1] for i in eff]),
        mode="lines", line={"color": "#5f6368", "width": 1.2, "dash": "dot", "shape": "hv"},
        name="efficient frontier", hoverinfo="skip"))
    grey = [(s, x, y) for s, x, y in totals
            if s.role == "frontier" and s.label not in markers]
    dom = [(s, x, y) for s, x, y in totals if s.role == "frontier" and s.label in markers]
    if grey:
        fig.add_trace(go.Scatter(
            x=np.float32([x for _, x, _ in grey]), y=np.float32([y for _, _, y in grey]),
            mode="markers", marker={"color": FRONTIER_GREY, "size": 8},
            name="swept parameter sets", text=[figures.label(s.label) for s, _, _ in grey],
            hovertemplate="%{text}<br>user losses $%{x:,.0f}<br>bad debt $%{y:,.0f}"
                          "<extra></extra>"))
    if dom:
        fig.add_trace(go.Scatter(
            x=np.float32([x for _, x, _ in dom]), y=np.float32([y for _, _, y in dom]),
            mode="markers+text",
            marker={"color": DOMINATING_COLOR, "size": 12, "symbol": "circle-open",
                    "line": {"width": 2.5}},
            text=[markers[s.label] for s, _, _ in dom], textposition="top right",
            textfont={"color": DOMINATING_COLOR, "size": 12},
            name="swept sets better than current and proposed on both",
            customdata=[figures.label(s.label) for s, _, _ in dom],
            hovertemplate="%{text}: %{customdata}<br>user losses $%{x:,.0f}<br>bad debt "
                          "$%{y:,.0f}<extra></extra>"))
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
                        subplot_titles=(f"{figures.label(sc.price_symbol or sc.symbol)} price "
                                        "(low\u2013high band, "
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




def _grid_value(data: GovernanceData, s: SetInfo, field: str):
    v = s.params.get(field, data.defaults.get(field))
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v


def heatmap_figure(data: GovernanceData) -> go.Figure | None:
    """Bad debt and user losses over a two-parameter frontier grid, as two heatmaps.

    One cell per combination of the two swept fields (summed over events, mean over units);
    the current and proposed sets fill the cells they stand for and are marked ``current``,
    ``proposed`` (``proposed 1``, ``proposed 2``, ... in proposal order when there are
    several). None when the frontier does not sweep exactly two fields.
    """
    if len(data.grid_fields) != 2:
        return None
    fx, fy = data.grid_fields
    pts = data.points()
    cells: dict[tuple, tuple[SetInfo, tuple[float, float]]] = {}
    proposed = [s.label for s in data.sets if s.role == "proposed"]
    names = {s.label: ("current" if s.role == CURRENT else "proposed" if len(proposed) == 1
                       else f"proposed {proposed.index(s.label) + 1}")
             for s in data.sets if s.role != "frontier"}
    for s in data.sets:
        key = (_grid_value(data, s, fx), _grid_value(data, s, fy))
        if s.role != "frontier" or key not in cells:
            cells[key] = (s, pts[s.label])
    xs = sorted({k[0] for k in cells}, key=_sort_key)
    ys = sorted({k[1] for k in cells}, key=_sort_key)
    if len(xs) < 2 or len(ys) < 2:
        return None
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.14,
                        subplot_titles=("Bad debt (USD, sum over events)",
                                        "User losses to liquidation (USD, sum over events)"))
    for col, idx, bar_x in ((1, 1, 0.43), (2, 0, 1.0)):
        z = np.full((len(ys), len(xs)), np.nan, np.float32)
        text = [["" for _ in xs] for _ in ys]
        for (x, y), (s, p) in cells.items():
            i, j = ys.index(y), xs.index(x)
            z[i, j] = p[idx]
            if s.role != "frontier":
                text[i][j] = names[s.label]
        fig.add_trace(go.Heatmap(
            x=[_fmt(x) for x in xs], y=[_fmt(y) for y in ys], z=z, text=text,
            texttemplate="%{text}", colorscale="YlOrRd", colorbar={"x": bar_x, "len": 0.9},
            hovertemplate=f"{figures.label(fx)}=%{{x}}<br>{figures.label(fy)}=%{{y}}<br>"
                          "$%{z:,.0f}<extra></extra>"), row=1, col=col)
        fig.update_xaxes(type="category", title_text=figures.label(fx), row=1, col=col)
        fig.update_yaxes(type="category", title_text=figures.label(fy), row=1, col=col)
    figures.style(fig, "Swept parameter grid: totals over events", figures.label(fy),
                  figures.label(fx), height=460, time_axis=False)
    return fig


def _sort_key(v):
    return (0, v, "") if isinstance(v, (int, float)) else (1, 0, str(v))


def _fmt(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)
