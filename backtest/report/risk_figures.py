"""Figures of the risk views: the liquidation-at-risk heat map, options vs perps breach curves.

Same conventions as :mod:`backtest.report.figures` (shared :func:`style`, Okabe-Ito palette,
epoch-ms date axes in UTC); each builder takes a polars DataFrame and returns a
``plotly.graph_objects.Figure``.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import polars as pl

from backtest.report.figures import PALETTE, label, style

HEAT_COLORSCALE = "YlOrRd"


def liquidation_map_figure(frame: pl.DataFrame, value: str = "liquidated_notional_usd",
                           vol_shock: float | None = None, title: str | None = None
                           ) -> go.Figure:
    """Heat map of liquidation-at-risk over time: x = snapshot time, y = price shock.

    Parameters
    ----------
    frame : polars.DataFrame
        From :func:`backtest.risk.liquidation_map.liquidation_map_frame` (columns ``time``,
        ``shock``, ``vol_shock`` and ``value``).
    value : str
        Column coloured: ``liquidated_notional_usd`` (default), ``bad_debt_usd`` or
        ``n_liquidated``.
    vol_shock : float, optional
        Which implied-volatility shock to show (options maps); default the one closest to 0.
    title : str, optional

    Returns
    -------
    plotly.graph_objects.Figure

    Raises
    ------
    ValueError
        If ``frame`` is empty or lacks a column.
    """
    missing = [c for c in ("time", "shock", "vol_shock", value) if c not in frame.columns]
    if missing or frame.is_empty():
        raise ValueError(f"liquidation map frame is empty or lacks {missing}")
    vols = frame["vol_shock"].unique().sort().to_numpy()
    v = vols[np.argmin(np.abs(vols - (0.0 if vol_shock is None else vol_shock)))]
    sub = frame.filter(pl.col("vol_shock") == v).sort(["time", "shock"])
    wide = sub.pivot(on="time", index="shock", values=value, sort_columns=False).sort("shock")
    times = sub["time"].unique(maintain_order=True).sort()
    z = wide.select(wide.columns[1:])
    t_ms = times.dt.epoch("ms").to_numpy().astype(np.float64)
    unit = "USD" if value.endswith("_usd") else "accounts"
    what = {"liquidated_notional_usd": "Notional liquidated", "bad_debt_usd": "Bad debt",
            "n_liquidated": "Accounts liquidated"}.get(value, value)
    fig = go.Figure(go.Heatmap(
        x=t_ms, y=wide["shock"].to_numpy() * 100.0, z=z.to_numpy().astype(np.float64),
        colorscale=HEAT_COLORSCALE, colorbar={"title": {"text": f"{what} ({unit})"}},
        hovertemplate=("%{x|%Y-%m-%d %H:%M} UTC<br>shock %{y:+.1f}%<br>"
                       + label(what) + " %{z:,.0f}<extra></extra>"),
    ))
    suffix = f", implied vol {v * 100:+.0f} vol points" if len(vols) > 1 else ""
    style(fig, title or f"Liquidation-at-risk: {what.lower()} by instantaneous price shock{suffix}",
          "Price shock (%)")
    fig.update_layout(hovermode="closest")
    return fig


def breach_curves_figure(frame: pl.DataFrame, title: str | None = None) -> go.Figure:
    """Cumulative share of accounts liquidated over time, one line per group.

    Parameters
    ----------
    frame : polars.DataFrame
        Columns ``time`` (datetime), ``group`` (str, e.g. ``short options``, ``perps``) and
        ``share_liquidated`` (fraction), as from
        :func:`backtest.options.study.breach_comparison`'s ``curves``.
    title : str, optional

    Returns
    -------
    plotly.graph_objects.Figure
    """
    fig = go.Figure()
    for k, (group,) in enumerate(frame.select("group").unique(maintain_order=True).iter_rows()):
        sub = frame.filter(pl.col("group") == group).sort("time")
        fig.add_trace(go.Scatter(
            x=sub["time"].dt.epoch("ms").to_numpy().astype(np.float64),
            y=sub["share_liquidated"].to_numpy() * 100.0, name=label(group), mode="lines",
            line={"color": PALETTE[k % len(PALETTE)], "width": 2, "shape": "hv"},
            hovertemplate="%{y:.1f}%",
        ))
    return style(fig, title or "Share of accounts liquidated: short options vs perps of the "
                 "same notional", "Accounts liquidated (%)")
