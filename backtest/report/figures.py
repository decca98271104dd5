"""Plotly figures of a report: one builder per chart, one shared layout.

Every builder takes a :class:`backtest.report.build.ReportData` and returns a
``plotly.graph_objects.Figure``. Times are plotted as epoch milliseconds on date axes, which
plotly.js shows in UTC; per-step series arrive already bucketed by
:func:`backtest.report.build.load_report_data`. Policy names are HTML-escaped before they
reach plotly.js (which renders a subset of HTML in legends and hover labels).

Why over 400 lines: it is one builder per chart of the run report sharing one layout and colour
scheme; the builders are independent and short, so the length is their number, not their size.
"""

from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from backtest.report.build import STATUS_LABELS, STATUS_ORDER, ReportData, price, utc

PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000",
           "#F0E442")
"""Okabe-Ito colours (distinguishable with common colour-vision deficiencies)."""

STATUS_COLORS = {"open": "#9BBBD4", "auto_deleveraged": "#6A51A3",
                 "partially_liquidated": "#F2B447", "closed": "#D55E00", "bankrupt": "#7A0019"}

FONT = "-apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
HEIGHT = 430
CONFIG = {"displaylogo": False, "responsive": True,
          "modeBarButtonsToRemove": ["select2d", "lasso2d"],
          "toImageButtonOptions": {"format": "png", "scale": 2}}
TIME_HOVER = "%{x|%Y-%m-%d %H:%M} UTC"


def policy_colors(policies: list[str]) -> dict[str, str]:
    """Return a colour per policy, by position in the run (the same in every chart).

    Parameters
    ----------
    policies : list of str
        Policy names in the run's order.

    Returns
    -------
    dict of str to str
        Policy name -> CSS colour.
    """
    return {p: PALETTE[i % len(PALETTE)] for i, p in enumerate(policies)}


def label(text: str) -> str:
    """Escape user text for plotly.js labels (legend, hover, annotations).

    Parameters
    ----------
    text : str

    Returns
    -------
    str
        ``text`` with ``&``, ``<``, ``>`` and quotes as HTML entities, which plotly.js shows
        as the original characters.
    """
    return html.escape(str(text), quote=True)


def style(fig: go.Figure, title: str, y_title: str, x_title: str | None = None,
          height: int = HEIGHT, time_axis: bool = True) -> go.Figure:
    """Apply the report's shared layout: title, axis titles, fonts, grid, legend, UTC time axis.

    Parameters
    ----------
    fig : plotly.graph_objects.Figure
    title : str
        Chart title (already escaped if it holds user text).
    y_title : str
        Title of every y axis without its own (include the unit).
    x_title : str, optional
        Title of the bottom x axis; default ``Time (UTC)``.
    height : int
        Pixels.
    time_axis : bool
        Whether the x axes are UTC date axes (epoch-ms values).

    Returns
    -------
    plotly.graph_objects.Figure
        ``fig``, modified in place.
    """
    fig.update_layout(
        template="none",
        title={"text": title, "x": 0.0, "xanchor": "left", "xref": "container", "yref": "container",
               "y": 1.0, "yanchor": "top", "pad": {"t": 14, "l": 10}, "font": {"size": 16}},
        font={"family": FONT, "size": 12, "color": "#222"},
        height=height,
        margin={"l": 80, "r": 30, "t": 104, "b": 60},
        # legend in its own row under the title (container coordinates): clear of the
        # subplot titles above the plot area and of the mode bar at the top right
        legend={"orientation": "h", "yref": "container", "y": 1.0 - 44.0 / height,
                "yanchor": "top", "xref": "container", "x": 0.0, "xanchor": "left",
                "borderwidth": 0},
        hovermode="x unified" if time_axis else "closest",
        plot_bgcolor="white",
        paper_bgcolor="white",
    )
    axis = {"showgrid": True, "gridcolor": "#e5e5e5", "zeroline": False, "linecolor": "#999",
            "showline": True, "ticks": "outside", "tickcolor": "#999"}
    fig.update_xaxes(**axis)
    fig.update_yaxes(**axis)
    if time_axis:
        fig.update_xaxes(type="date", hoverformat="%Y-%m-%d %H:%M")
    for key in [k for k in fig.layout if k.startswith("yaxis")]:
        if not fig.layout[key].title.text:
            fig.layout[key].title.text = y_title
    bottom = sorted((k for k in fig.layout if k.startswith("xaxis")),
                    key=lambda k: int(k[5:] or 1))[-1]
    fig.layout[bottom].title.text = x_title or "Time (UTC)"
    return fig


def time_x(t_ms: np.ndarray) -> dict:
    """Return a trace's x coordinates on a date axis, as compact as possible.

    Parameters
    ----------
    t_ms : ndarray
        Epoch milliseconds, increasing.

    Returns
    -------
    dict
        ``{"x0": first, "dx": spacing}`` when the times are evenly spaced (no tape gap: the
        figure then stores no x array), else ``{"x": t_ms}``.
    """
    t = np.asarray(t_ms, dtype=np.float64)
    if len(t) > 2:
        d = np.diff(t)
        if np.all(d == d[0]):
            return {"x0": float(t[0]), "dx": float(d[0])}
    return {"x": t}


def _time_title(data: ReportData) -> str:
    return f"Time (UTC), {data.bucket_note()}"


def _policy_series(data: ReportData):
    colors = policy_colors(data.policy_names)
    for name in data.policy_names:
        frame = data.steps.filter(data.steps["policy"] == name)
        yield name, colors[name], frame


def line_width(data: ReportData, name: str) -> float:
    """Return the line width of a policy's level series (earlier policies wider).

    Lines that coincide (e.g. two policies with the same bad debt) then stay visible as
    nested strokes.

    Parameters
    ----------
    data : ReportData
    name : str
        A policy of the run.

    Returns
    -------
    float
        Pixels, from 1.4 (last policy) to 3.4 (first).
    """
    i, n = data.policy_names.index(name), len(data.policy_names)
    step = min(1.0, 2.0 / (n - 1)) if n > 1 else 0.0
    return 1.4 + step * (n - 1 - i)


def price_figure(data: ReportData) -> go.Figure:
    """Price path of the window: close line, low-high band, the lowest low annotated.

    Parameters
    ----------
    data : ReportData

    Returns
    -------
    plotly.graph_objects.Figure
    """
    p, st = data.prices, data.price_stats
    base, _, quote = data.manifest["symbol"].partition("/")
    t = time_x(p["t_ms"].to_numpy())
    fig = go.Figure()
    fig.add_trace(go.Scatter(**t, y=p["high"].to_numpy(), mode="lines", line={"width": 0},
                             showlegend=False, hoverinfo="skip", name="high"))
    fig.add_trace(go.Scatter(**t, y=p["low"].to_numpy(), mode="lines", line={"width": 0},
                             fill="tonexty", fillcolor="rgba(0,114,178,0.22)",
                             name="candle low\u2013high range", hoverinfo="skip"))
    fig.add_trace(go.Scatter(
        **t, y=p["close"].to_numpy(), mode="lines", line={"color": "#0b3d66", "width": 1.4},
        name="close", customdata=np.column_stack([p["low"].to_numpy(), p["high"].to_numpy()]),
        hovertemplate="close %{y:,.2f}<br>low %{customdata[0]:,.2f} high "
                      "%{customdata[1]:,.2f}<extra></extra>"))
    if data.steps["max_price_deviation"].max() > 0:  # cascade feedback: simulated paths
        for name, color, f in _policy_series(data):
            fig.add_trace(go.Scatter(
                **time_x(f["t_first_ms"].to_numpy()), y=f["simulated_close"].to_numpy(),
                mode="lines", line={"color": color, "width": 1.1, "dash": "dot"},
                name=f"simulated close, {label(name)}", hovertemplate="%{y:,.2f}"))
    drop = st["low"] / st["first_open"] - 1 if st["first_open"] else 0.0
    fig.add_annotation(
        x=st["low_t_ms"], y=st["low"], showarrow=True, arrowhead=2, ax=60, ay=30,
        text=f"lowest low {price(st['low'])}<br>{utc(st['low_t_ms'])} "
             f"({100 * drop:+.1f}% from the open)",
        bgcolor="rgba(255,255,255,0.9)", bordercolor="#999", font={"size": 11})
    note = ("per " + data.interval + " candle" if data.bucket_steps == 1 else
            f"candles of {data.bucket_steps} x {data.interval} (downsampled)")
    tape = data.manifest["tape"]
    title = (f"{label(data.manifest['symbol'])} price, {label(tape['venue'])} "
             f"{label(tape['market'])} {label(tape['interval'])}")
    return style(fig, title, f"Price ({label(quote or 'USD')} per {label(base)})",
                 f"Time (UTC), {note}")


def liquidated_notional_figure(data: ReportData) -> go.Figure:
    """Liquidated notional per step (bucket sums when downsampled), one line per policy.

    Parameters
    ----------
    data : ReportData

    Returns
    -------
    plotly.graph_objects.Figure
    """
    fig = go.Figure()
    for name, color, f in _policy_series(data):
        fig.add_trace(go.Scatter(
            **time_x(f["t_first_ms"].to_numpy()), y=f["liquidated_notional_usd"].to_numpy(),
            mode="lines", line={"color": color, "width": 1.2, "shape": "hv"},
            name=label(name), hovertemplate="$%{y:,.0f}"))
    unit = (f"per {data.interval} candle" if data.bucket_steps == 1
            else f"summed per {data.bucket_steps} x {data.interval} candles")
    return style(fig, "Liquidated notional per step", f"Liquidated notional (USD {unit})",
                 _time_title(data))


def _policy_lines(data: ReportData, values, time_column: str, hover: str) -> go.Figure:
    """One step line per policy of ``values(frame)`` against ``time_column``."""
    fig = go.Figure()
    for name, color, f in _policy_series(data):
        fig.add_trace(go.Scatter(
            **time_x(f[time_column].to_numpy()), y=values(f),
            mode="lines", line={"color": color, "width": line_width(data, name), "shape": "hv"},
            name=label(name), hovertemplate=hover))
    return fig


def impact_figure(data: ReportData) -> go.Figure:
    """Cumulative market impact cost of liquidations, one line per policy.

    Parameters
    ----------
    data : ReportData

    Returns
    -------
    plotly.graph_objects.Figure
    """
    fig = _policy_lines(data, lambda f: np.cumsum(f["impact_cost_usd"].to_numpy()),
                        "t_first_ms", "$%{y:,.0f}")
    return style(fig, "Market impact cost of liquidations, cumulative",
                 "Impact cost (USD, cumulative)", _time_title(data))


#: Most points per policy in the departure figure.
DEPARTURE_POINTS = 300


def departure_figure(data: ReportData) -> go.Figure:
    """How far each policy's simulated price is from history: ``simulated / historical - 1``.

    One line per policy: the departure at each report bucket's last step (the bucket's
    simulated close over its historical close), thinned to at most :data:`DEPARTURE_POINTS`
    points by keeping, of every ``k`` consecutive buckets, the one farthest from history (so a
    day of 1-minute candles stays small and no extreme is lost); dotted lines mark +-1%. Flat
    at 0 without cascade feedback, and for the as-happened policy of a counterfactual run
    (:mod:`backtest.kernels.impact_nb`).

    Parameters
    ----------
    data : ReportData

    Returns
    -------
    plotly.graph_objects.Figure
    """
    hist = dict(zip(data.prices["b"].to_list(), data.prices["close"].to_list(), strict=True))
    fig = go.Figure()
    for name, color, f in _policy_series(data):
        close = np.array([hist[b] for b in f["b"].to_list()], dtype=np.float64)
        departure = 100.0 * (f["simulated_close"].to_numpy() / close - 1.0)
        t_ms = f["t_last_ms"].to_numpy()
        k = -(-len(departure) // DEPARTURE_POINTS)
        if k > 1:  # of every k buckets, the one farthest from history
            pad = -len(departure) % k
            groups = np.abs(np.r_[departure, np.zeros(pad)]).reshape(-1, k)
            pick = np.minimum(np.arange(groups.shape[0]) * k + groups.argmax(axis=1),
                              len(departure) - 1)
            departure, t_ms = departure[pick], t_ms[pick]
        fig.add_trace(go.Scatter(
            **time_x(t_ms), y=departure, mode="lines",
            line={"color": color, "width": line_width(data, name)}, name=label(name),
            hovertemplate="%{y:+.2f}%"))
    for level in (-1.0, 1.0):
        fig.add_hline(y=level, line={"color": "#999", "width": 1, "dash": "dot"})
    market = data.manifest.get("market", {})
    whose = (f"counterfactual: flow minus {market.get('as_happened_policy')}'s"
             if market.get("counterfactual") else "each policy's own flow")
    return style(fig, f"Simulated price against history ({whose})",
                 "Departure from the historical close (%)", _time_title(data))


def bad_debt_insurance_figure(data: ReportData) -> go.Figure:
    """Cumulative bad debt (and socialised loss, if any) above the insurance fund balance.

    Parameters
    ----------
    data : ReportData

    Returns
    -------
    plotly.graph_objects.Figure
    """
    steps = data.steps
    bad = float(steps["bad_debt_cum_usd"].max() or 0.0) > 0.0
    social = float(steps["socialised_loss_cum_usd"].max() or 0.0) > 0.0
    fund = float(steps["insurance_fund_usd"].max() or 0.0) > 0.0
    adl = float(steps["adl_notional_usd"].sum() or 0.0) > 0.0
    panels = []  # (key, subplot title): a panel only for series that are not all zero
    if bad:
        panels.append(("bad", "Bad debt, cumulative"
                       + (" (solid) and socialised loss (dashed)" if social else "")))
    if fund:
        panels.append(("fund", "Insurance fund balance"))
    if adl:
        panels.append(("adl", "Auto-deleveraged notional, cumulative (hover: accounts hit)"))
    if not panels:
        return style(go.Figure(), "Bad debt and the insurance fund", "USD", _time_title(data))
    row = {key: i + 1 for i, (key, _) in enumerate(panels)}
    fig = make_subplots(rows=len(panels), cols=1, shared_xaxes=True, vertical_spacing=0.1,
                        subplot_titles=[t for _, t in panels])
    for name, color, f in _policy_series(data):
        x = time_x(f["t_last_ms"].to_numpy())
        line = {"color": color, "width": line_width(data, name), "shape": "hv"}
        legend = True
        if bad:
            fig.add_trace(go.Scatter(
                **x, y=f["bad_debt_cum_usd"].to_numpy(), mode="lines", legendgroup=name,
                line=line, name=label(name), hovertemplate="bad debt $%{y:,.0f}"),
                row=row["bad"], col=1)
            legend = False
        if social:
            fig.add_trace(go.Scatter(
                **x, y=f["socialised_loss_cum_usd"].to_numpy(), mode="lines",
                legendgroup=name, showlegend=False, name=label(name) + " socialised",
                line={"color": color, "width": 1.4, "dash": "dash", "shape": "hv"},
                hovertemplate="socialised $%{y:,.0f}"), row=row["bad"], col=1)
        if fund:
            fig.add_trace(go.Scatter(
                **x, y=f["insurance_fund_usd"].to_numpy(), mode="lines", legendgroup=name,
                showlegend=legend, name=label(name), hovertemplate="fund $%{y:,.0f}",
                line=line), row=row["fund"], col=1)
            legend = False
        if adl:
            fig.add_trace(go.Scatter(
                **x, y=f["adl_notional_usd"].cum_sum().to_numpy(), mode="lines",
                legendgroup=name, showlegend=legend, name=label(name) + " ADL",
                customdata=f["adl_accounts"].cum_sum().to_numpy(),
                hovertemplate="ADL $%{y:,.0f}, %{customdata:,.0f} accounts", line=line),
                row=row["adl"], col=1)
    if fund:
        fund0 = float(data.manifest.get("insurance_fund", {}).get("initial_balance_usd", 0.0))
        fig.add_hline(y=fund0, row=row["fund"], col=1,
                      line={"color": "#777", "width": 1, "dash": "dot"},
                      annotation_text=f"initial balance ${fund0:,.0f}",
                      annotation_position="bottom left", annotation_font_size=10)
    title = ("Bad debt" if bad else "No bad debt") + ", the insurance fund" + (
        " and auto-deleveraging" if adl else "")
    style(fig, title, "USD", _time_title(data), height=220 + 200 * len(panels))
    if bad:
        fig.update_yaxes(title_text="Cumulative USD", row=row["bad"], col=1)
    if fund:
        fig.update_yaxes(title_text="Balance (USD)", row=row["fund"], col=1)
    return fig


def equity_oi_figure(data: ReportData) -> go.Figure:
    """User equity at each close, and open interest (perp long + short + loan collateral).

    Parameters
    ----------
    data : ReportData

    Returns
    -------
    plotly.graph_objects.Figure
    """
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.12,
                        subplot_titles=("User equity (all accounts, at each close)",
                                        "Open interest (perps, each contract once) "
                                        "plus loans' debt"))
    for name, color, f in _policy_series(data):
        x = time_x(f["t_last_ms"].to_numpy())
        fig.add_trace(go.Scatter(**x, y=f["user_equity_usd"].to_numpy(), mode="lines",
                                 legendgroup=name, name=label(name),
                                 line={"color": color, "width": line_width(data, name)},
                                 hovertemplate="equity $%{y:,.0f}"), row=1, col=1)
        fig.add_trace(go.Scatter(**x, y=f["open_interest_usd"].to_numpy(), mode="lines",
                                 legendgroup=name, showlegend=False, name=label(name),
                                 line={"color": color, "width": line_width(data, name)},
                                 hovertemplate="open interest $%{y:,.0f}"), row=2, col=1)
    style(fig, "User equity and open interest", "USD", _time_title(data), height=620)
    fig.update_yaxes(title_text="Equity (USD)", row=1, col=1)
    fig.update_yaxes(title_text="Open interest (USD)", row=2, col=1)
    return fig


def accounts_liquidated_figure(data: ReportData) -> go.Figure:
    """Accounts liquidated at least once, cumulative, one line per policy.

    When a policy has soft-liquidation bands, a second panel with the loans in soft
    liquidation.

    Parameters
    ----------
    data : ReportData

    Returns
    -------
    plotly.graph_objects.Figure
    """
    soft = float(data.steps["loans_in_soft_liquidation"].max() or 0.0) > 0.0
    if not soft:
        fig = _policy_lines(data, lambda f: f["accounts_liquidated_cum"].to_numpy(),
                            "t_last_ms", "%{y:,} accounts")
        return style(fig, "Accounts liquidated (cumulative)",
                     "Accounts liquidated at least once", _time_title(data))
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.12,
                        subplot_titles=("Accounts liquidated (cumulative)",
                                        "Loans in soft liquidation (most in the bucket)"))
    for name, color, f in _policy_series(data):
        x = time_x(f["t_last_ms"].to_numpy())
        line = {"color": color, "width": line_width(data, name), "shape": "hv"}
        fig.add_trace(go.Scatter(**x, y=f["accounts_liquidated_cum"].to_numpy(), mode="lines",
                                 legendgroup=name, line=line, name=label(name),
                                 hovertemplate="%{y:,} accounts"), row=1, col=1)
        fig.add_trace(go.Scatter(**x, y=f["loans_in_soft_liquidation"].to_numpy(),
                                 mode="lines", legendgroup=name, showlegend=False, line=line,
                                 name=label(name), hovertemplate="%{y:,} loans in bands"),
                      row=2, col=1)
    style(fig, "Accounts liquidated, and loans in soft liquidation", "Accounts",
          _time_title(data), height=620)
    fig.update_yaxes(title_text="Accounts liquidated", row=1, col=1)
    fig.update_yaxes(title_text="Loans in bands", row=2, col=1)
    return fig


def account_status_figure(data: ReportData) -> go.Figure:
    """Accounts by final status per policy (stacked bars).

    Parameters
    ----------
    data : ReportData

    Returns
    -------
    plotly.graph_objects.Figure
    """
    counts = {(r["policy"], r["status"]): r["accounts"]
              for r in data.status_counts.iter_rows(named=True)}
    names = data.policy_names
    statuses = list(STATUS_ORDER) + sorted({s for _, s in counts} - set(STATUS_ORDER))
    fig = go.Figure()
    x = [label(n) for n in names]
    for s in statuses:
        y = [counts.get((n, s), 0) for n in names]
        if not any(y):
            continue
        fig.add_trace(go.Bar(x=x, y=y, name=label(STATUS_LABELS.get(s, s)),
                             marker_color=STATUS_COLORS.get(s, "#888"),
                             hovertemplate="%{x}: %{y:,} accounts<extra>"
                                           + label(STATUS_LABELS.get(s, s)) + "</extra>"))
    fig.update_layout(barmode="stack")
    return style(fig, "Accounts by final status", "Accounts", "Policy", time_axis=False)


def leverage_figure(data: ReportData) -> go.Figure:
    """Equity retained by leverage at the window start, per policy, perps and loans apart.

    One panel per product present in the book (grouped bars: one per policy in each leverage
    bucket); a loan's leverage is collateral value / (collateral value - debt). Retained is
    final equity over the equity at the window start plus the new money cures brought.

    Parameters
    ----------
    data : ReportData

    Returns
    -------
    plotly.graph_objects.Figure
    """
    lev = data.leverage.filter(data.leverage["ord"] >= 0)
    products = [p for p in ("perp", "loan") if p in set(lev["product"].to_list())] or ["perp"]
    titles = [f"{'Perps' if p == 'perp' else 'Loans'} ({_accounts(lev, data, p):,} accounts)"
              for p in products]
    fig = make_subplots(rows=1, cols=len(products), subplot_titles=titles,
                        horizontal_spacing=0.08)
    colors = policy_colors(data.policy_names)
    for col, product in enumerate(products, start=1):
        part = lev.filter(lev["product"] == product)
        buckets = part.select("ord", "bucket").unique().sort("ord")["bucket"].to_list()
        first = part.filter(part["policy"] == data.policy_names[0])
        count = dict(zip(first["bucket"], first["accounts"], strict=True))
        ticks = [f"{label(b)}<br>({count.get(b, 0):,})" for b in buckets]
        for name in data.policy_names:
            by = {r["bucket"]: r for r in part.filter(part["policy"] == name).iter_rows(named=True)}
            y = []
            for b in buckets:
                r = by.get(b)
                # the new money cures brought is the owners' in both: kept, not gained
                held = None if r is None else r["initial_equity_usd"] + r.get("cure_usd", 0.0)
                y.append(100.0 * r["final_equity_usd"] / held if held else None)
            fig.add_trace(go.Bar(x=ticks, y=y, name=label(name), marker_color=colors[name],
                                 legendgroup=name, showlegend=col == 1,
                                 text=[None if v is None else f"{v:.0f}%" for v in y],
                                 textposition="outside", textfont={"size": 10},
                                 cliponaxis=False, hovertemplate="%{y:.1f}% of equity kept"),
                          row=1, col=col)
    fig.update_layout(barmode="group")
    style(fig, "User equity retained by leverage at the window start, perps and loans apart",
          "Equity retained (% of equity at the window start plus new money)",
          "Leverage at the window start (notional / equity at the first open; accounts)",
          time_axis=False)
    for col in range(2, len(products) + 1):
        fig.update_yaxes(title_text="", row=1, col=col)
    fig.update_layout(hovermode="x unified")
    return fig


def _accounts(lev, data: ReportData, product: str) -> int:
    first = lev.filter((lev["policy"] == data.policy_names[0]) & (lev["product"] == product))
    return int(first["accounts"].sum())


def blank(fig: go.Figure) -> bool:
    """Return whether a chart would show nothing: no trace, or every series zero (or empty).

    Parameters
    ----------
    fig : plotly.graph_objects.Figure

    Returns
    -------
    bool
    """
    for trace in fig.data:
        y = getattr(trace, "y", None)
        if y is None:
            return False
        values = np.asarray([np.nan if v is None else v for v in y], dtype=np.float64)
        if np.any(np.nan_to_num(values) != 0.0):
            return False
    return True


FIGURES = (
    ("fig-price", "Price path", price_figure),
    ("fig-liquidated-notional", "Liquidated notional", liquidated_notional_figure),
    ("fig-impact", "Market impact", impact_figure),
    ("fig-departure", "Simulated price against history", departure_figure),
    ("fig-bad-debt-insurance", "Bad debt and insurance fund", bad_debt_insurance_figure),
    ("fig-equity-oi", "User equity and open interest", equity_oi_figure),
    ("fig-accounts-liquidated", "Accounts liquidated", accounts_liquidated_figure),
    ("fig-account-status", "Accounts by status", account_status_figure),
    ("fig-leverage", "Equity retained by leverage", leverage_figure),
)
"""(div id, heading, builder) of every chart, in report order."""


def figure_html(fig: go.Figure, div_id: str) -> str:
    """Return the ``<div>`` + ``<script>`` of a figure, without plotly.js.

    The script hands the figure to ``liqbtPlot`` (:mod:`backtest.report.plotlyjs`), which
    draws it once the embedded, compressed plotly.js is ready.

    Parameters
    ----------
    fig : plotly.graph_objects.Figure
    div_id : str
        Fixed element id (keeps the report deterministic).

    Returns
    -------
    str
    """
    from backtest.report.plotlyjs import figure_html as deferred

    return deferred(fig, div_id, CONFIG, fig.layout.height or HEIGHT)
