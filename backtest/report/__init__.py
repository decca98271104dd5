"""Self-contained HTML reports of a run (``liqbt report RUN``, ``liqbt run --report``).

A report is one HTML file that opens offline: plotly.js is embedded once, inline (compressed,
:mod:`backtest.report.plotlyjs`); every chart
is a plotly figure built from DuckDB aggregates of the run (:mod:`backtest.report.build`,
:mod:`backtest.report.figures`); the page is rendered by jinja2 with autoescaping, so names
and descriptions from configs and policy files are shown as text, never as markup.
"""

from __future__ import annotations

import os
from pathlib import Path

import jinja2
from markupsafe import Markup

from backtest import paths
from backtest.atomic import atomic_path
from backtest.report import build, figures
from backtest.report.plotlyjs import plotlyjs_loader
from backtest.results.catalog import Catalog

__all__ = ["render_report", "write_report"]

_TEMPLATES = Path(__file__).resolve().parent / "templates"


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_report(catalog: Catalog, run_id: str) -> str:
    """Return the HTML report of a run as a string.

    Parameters
    ----------
    catalog : Catalog
        Open catalog holding the run.
    run_id : str
        Run id, unique prefix, ``latest`` or run directory (see :meth:`Catalog.resolve`).

    Returns
    -------
    str
        A complete, self-contained HTML document.

    Raises
    ------
    CatalogError
        If the run is unknown or its tables cannot be queried.
    """
    run_id = catalog.resolve(run_id)
    data = build.load_report_data(catalog, run_id)
    colors = figures.policy_colors(data.policy_names)
    for p in data.policies:
        p.color = colors[p.name]
    charts, omitted = [], []
    for div_id, heading, builder in figures.FIGURES:
        fig = builder(data)
        if figures.blank(fig):  # every series zero: say so instead of drawing flat lines
            omitted.append(heading)
            continue
        charts.append({"id": div_id, "heading": heading,
                       "html": Markup(figures.figure_html(fig, div_id))})
    rows = build.summary_rows(data)
    template = _environment().get_template("report.html.j2")
    return template.render(
        title=build.title_facts(data),
        paragraph=build.summary_paragraph(data),
        policies=data.policies,
        rows=rows,
        ties=build.tie_sentences(rows),
        materiality=build.materiality_text(),
        charts=charts,
        omitted=omitted,
        bucket_note=data.bucket_note(),
        method=build.methodology(data),
        gaps=build.gaps(data),
        repro=build.reproducibility(data),
        reality=build.against_what_happened(catalog, run_id),
        plotlyjs=plotlyjs_loader(),
    )


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_report(catalog: Catalog, run_id: str, out: Path | None = None) -> Path:
    """Write the HTML report of a run, atomically.

    Parameters
    ----------
    catalog : Catalog
        Open catalog holding the run.
    run_id : str
        Run id (or unique prefix, ``latest``, run directory).
    out : Path, optional
        Destination file; default ``<reports dir>/<run_id>.html``
        (:func:`backtest.paths.reports_dir`).

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    CatalogError
        If the run is unknown or its tables cannot be queried; nothing is written then.
    """
    run_id = catalog.resolve(run_id)
    text = render_report(catalog, run_id)
    out = Path(out) if out is not None else paths.reports_dir() / f"{run_id}.html"
    with atomic_path(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
        tmp.chmod(0o666 & ~_umask())  # temporary files are private; reports are shared
    return out
