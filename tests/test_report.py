"""HTML reports: self-contained, every policy and chart present, numbers equal the catalog's,
user text escaped, size bounded; the ``liqbt report`` command.

One synthetic run (10 days of 5-minute candles with a crash on the last day and a gap inside
the window, a 3,000-account book, policies hard / partial / close-factor plus a policy file
whose name and description hold markup) is simulated once per module.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

import backtest
from backtest.books import generate_book, write_book
from backtest.cli import main
from backtest.engine.run import execute
from backtest.report import build, render_report, write_report
from backtest.report.build import FAMILY_METRICS, SUMMARY_METRICS, bucket_size, load_report_data
from backtest.report.figures import FIGURES, blank, leverage_figure, time_x
from backtest.report.plotlyjs import plotlyjs_payload
from backtest.results.catalog import Catalog
from backtest.tapes import Tape, TapeStore

EVIL = "<script>alert(1)</script>"
EVIL_POLICY = f"evil{EVIL}"
WINDOW_START = datetime(2021, 5, 19, tzinfo=UTC)
WINDOW_END = datetime(2021, 5, 20, tzinfo=UTC)
GAP_STEPS = 3
STRATEGIES = Path(backtest.__file__).resolve().parent.parent / "strategies"


def _tape_rows() -> list[list[float]]:
    """Return 10 days of 5m candles: a random walk, a 30% crash and partial recovery on the
    last day, and ``GAP_STEPS`` candles missing at 06:00 of the window."""
    rng = np.random.default_rng(11)
    t0 = int((WINDOW_START - timedelta(days=9)).timestamp() * 1000)
    n = 10 * 288
    crash_at = 9 * 288 + 12 * 12  # 12:00 on the window day
    gap_at = 9 * 288 + 6 * 12
    rows, close = [], 40_000.0
    for i in range(n):
        drift = 0.0
        if crash_at <= i < crash_at + 24:
            drift = -0.015
        elif crash_at + 24 <= i < crash_at + 72:
            drift = 0.003
        o = close
        c = o * math.exp(drift + rng.normal(0, 0.002))
        wick = 0.02 if crash_at <= i < crash_at + 24 else 0.002
        h = max(o, c) * (1 + rng.uniform(0, 0.002))
        lo = min(o, c) * (1 - rng.uniform(0, wick))
        close = c
        if gap_at <= i < gap_at + GAP_STEPS:
            continue
        rows.append([t0 + i * 300_000, o, h, lo, c, float(rng.uniform(1, 10))])
    return rows


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Simulate the synthetic run; return (runs dir, run id, tmp dir)."""
    tmp = tmp_path_factory.mktemp("report")
    src = tmp / "binance" / "BTC_USDT-5m.json"
    src.parent.mkdir(parents=True)
    src.write_text(json.dumps(_tape_rows()))
    store = TapeStore(tmp / "tapes")
    result = store.import_file(src, venue="binance")
    tape = Tape.from_parquet(result.path)
    a = tape.arrays()
    book = generate_book(3000, a["timestamp"], a["close"], a["low"], a["high"], WINDOW_START,
                         seed=3, meta={"symbol": "BTC/USDT", "event": "synthetic"})
    write_book(book, tmp / "book.parquet")
    evil = tmp / "evil.toml"
    evil.write_text(
        f'name = "{EVIL_POLICY}"\nfamily = "hard"\n'
        f'description = "closes everything {EVIL} & more"\nkeeper_share = 0.3\n'
        "[perp]\nmaintenance_margin_rate = 0.01\nliquidation_penalty = 0.02\n"
        "[loan]\nliquidation_threshold = 0.8\nliquidation_bonus = 0.08\n")
    config = tmp / "run.toml"
    config.write_text(
        f'name = "synthetic-crash"\ndescription = "Crash test {EVIL} & <b>bold</b>"\n'
        f'start = "{WINDOW_START.isoformat()}"\nend = "{WINDOW_END.isoformat()}"\n'
        f'book = "{tmp / "book.parquet"}"\n'
        f'policies = ["hard", "partial", "close-factor", "{evil}"]\n'
        f'[tape]\npath = "{result.path}"\n'
        "[insurance_fund]\ninitial_balance_usd = 20000\n")
    run_id, _ = execute(config, runs=tmp / "runs", strategies=STRATEGIES, show_progress=False)
    return tmp / "runs", run_id, tmp


@pytest.fixture(scope="module")
def report(run):
    """Write the report to the default location; return (path, html text, summary)."""
    runs, run_id, tmp = run
    with Catalog(runs) as catalog:
        out = write_report(catalog, run_id, tmp / "reports" / "r.html")
        summary = catalog.summary(run_id)
    return out, out.read_text(encoding="utf-8"), summary


def _summary_table(text: str) -> _Table:
    """Parse the summary table (only its markup: HTMLParser is slow on plotly.js)."""
    table = _Table()
    table.feed(re.search(r'<table id="summary-table">.*?</table>', text, re.S).group(0))
    return table


class _Table(HTMLParser):
    """Collect the summary table: policy headers and, per metric row, the cells."""

    def __init__(self):
        super().__init__()
        self.in_table = False
        self.policies: list[str] = []
        self.rows: dict[str, list[dict]] = {}
        self._row: str | None = None
        self._cell: dict | None = None
        self._head: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table" and a.get("id") == "summary-table":
            self.in_table = True
        if not self.in_table:
            return
        if tag == "th" and "data-policy" in a:
            self._head = a["data-policy"]
            self.policies.append(a["data-policy"])
        if tag == "tr" and "data-metric" in a:
            self._row = a["data-metric"]
            self.rows[self._row] = []
        if tag == "td" and self._row:
            self._cell = {"value": a.get("data-value"), "best": "best" in a.get("class", ""),
                          "text": ""}

    def handle_endtag(self, tag):
        if tag == "table" and self.in_table:
            self.in_table = False
        if tag == "td" and self._cell is not None:
            self.rows[self._row].append(self._cell)
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data


def _expected_text(value, unit: str, signed: bool) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "\u2013"
    sign = "+" if signed and value > 0 else ""
    if unit == "count":
        return f"{int(value):,}"
    if unit == "fraction":
        pct = 100 * value
        return f"{sign}{pct:.3g}%" if 0 < abs(pct) < 1 else f"{sign}{pct:,.2f}%"
    return f"${value:,.0f}" if value >= 0 else f"-${-value:,.0f}"


# ------------------------------------------------------------------------------ content


def test_report_is_self_contained_with_plotlyjs_once(report):
    out, text, _ = report
    assert out.exists() and text.startswith("<!DOCTYPE html>")
    assert not re.search(r"<script[^>]*\bsrc\s*=", text, re.I)
    assert not re.search(r"<link[^>]*\bhref\s*=\s*[\"']?(https?:)?//", text, re.I)
    assert not re.search(r"@import|url\(\s*[\"']?(https?:)?//", text.split("</style>")[0])
    js = plotlyjs_payload()  # plotly.js, gzip + base64, decompressed by the browser
    assert text.count(js) == 1
    assert "cdn.plot.ly/plotly" not in text.replace(js, "")
    assert "DecompressionStream" in text


def test_summary_table_has_every_policy_and_catalog_numbers(report):
    _, text, summary = report
    table = _summary_table(text)
    assert table.policies == summary["policy"].to_list()
    assert EVIL_POLICY in table.policies  # unescaped by the parser: it was escaped in HTML
    # every metric, but those of one mechanism only (e.g. soft liquidation) if all are 0
    shown = [m for m in SUMMARY_METRICS
             if m.name not in FAMILY_METRICS or any(summary[m.name].to_list())]
    assert list(table.rows) == [m.name for m in shown]
    assert len(shown) >= len(SUMMARY_METRICS) - len(FAMILY_METRICS)
    for m in shown:
        cells = table.rows[m.name]
        assert len(cells) == summary.height, m.name
        for cell, value in zip(cells, summary[m.name].to_list(), strict=True):
            if value is None or (isinstance(value, float) and math.isnan(value)):
                assert cell["value"] == "" and cell["text"] == "\u2013"
                continue
            assert float(cell["value"]) == float(value), m.name
            assert cell["text"] == _expected_text(value, m.unit, m.name == "equity_vs_hard")


def test_best_values_are_highlighted(report):
    _, text, summary = report
    table = _summary_table(text)
    bad = summary["bad_debt_usd"].to_list()
    assert max(bad) > 0, "the synthetic crash should leave bad debt"
    marked = [c["best"] for c in table.rows["bad_debt_usd"]]
    if build.material(min(bad), max(bad), "USD"):
        assert marked == [not build.material(v, min(bad), "USD") for v in bad]
    else:
        assert not any(marked)
    kept = summary["user_equity_retained"].to_list()
    best = [c["best"] for c in table.rows["user_equity_retained"]]
    assert best[kept.index(max(kept))]
    assert not any(c["best"] for c in table.rows["liquidations"])  # not ranked


def test_every_chart_is_present(report):
    _, text, _ = report
    # the run has no market impact model: its impact and departure-from-history charts would
    # be all zero, so they are left out and named in a note; every other chart is drawn
    flat = ("fig-impact", "fig-departure")
    drawn = [d for d, heading, _ in FIGURES if d not in flat]
    for div_id in drawn:
        assert f'<div id="{div_id}" class="plotly-graph-div"' in text, div_id
    for div_id in flat:
        assert f'id="{div_id}"' not in text
    note = re.search(r'<p class="note" id="omitted-charts">(.*?)</p>', text, re.S).group(1)
    assert "Market impact" in note
    assert text.count("liqbtPlot(") == len(drawn)  # one call per chart
    # plotly.js (data and loader), one per figure, nothing else
    assert len(re.findall(r"<script\b", text)) == 2 + len(drawn)


def test_user_text_is_escaped(report):
    _, text, _ = report
    assert EVIL not in text
    assert "<b>bold</b>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "Crash test &lt;script&gt;" in text  # the config description
    assert "closes everything &lt;script&gt;" in text  # the policy description


def test_size_is_bounded(report):
    out, text, _ = report
    assert out.stat().st_size < 2_500_000
    assert len(text) - len(plotlyjs_payload()) < 400_000


def test_summary_paragraph_names_the_least_bad_debt(report):
    _, text, summary = report
    para = re.search(r'<p class="summary" id="summary-paragraph">(.*?)</p>', text, re.S).group(1)
    bad = dict(zip(summary["policy"], summary["bad_debt_usd"], strict=True))
    least = min(bad, key=bad.get)
    assert "least bad debt" in para
    assert f"${bad[least]:,.0f}" in para
    assert least.replace("<", "&lt;").replace(">", "&gt;") in para


def test_methodology_gaps_and_appendix(report, run):
    _, text, _ = report
    runs, run_id, tmp = run
    with Catalog(runs) as catalog:
        m = catalog.manifest(run_id)
    assert "Trigger price: <code>extreme</code>" in text
    assert "Fill price: <code>trigger</code>" in text
    assert "candle low for longs" in text
    assert "30% of each penalty to the keeper, 70% to the insurance fund" in text
    assert 'id="book-generator"' in text and "leverage_weights" in text
    assert "Market impact and cascades" in text
    gaps = re.search(r'<section id="gaps">(.*?)</section>', text, re.S).group(1)
    assert m["window"]["gaps"], "the synthetic tape has a gap in the window"
    assert f'<td class="num">{GAP_STEPS}</td>' in gaps and "None" not in gaps
    for sha in (m["tape"]["sha256"], m["book"]["sha256"], m["config"]["sha256"],
                *(p["file_sha256"] for p in m["policies"])):
        assert sha in text
    assert "liqbt run " in text and "duckdb" in text and "JIT warm-up" in text
    assert "peak memory" in text


def test_downsampled_series_keep_totals(run):
    runs, run_id, _ = run
    with Catalog(runs) as catalog:
        data = load_report_data(catalog, run_id, max_points=50)
        full = catalog.summary(run_id)
    steps = 288 - GAP_STEPS
    assert data.bucket_steps == bucket_size(steps, 50) == 6
    assert "downsampled" in data.bucket_note()
    assert data.prices.height <= 50
    for row in full.iter_rows(named=True):
        f = data.steps.filter(data.steps["policy"] == row["policy"])
        assert f.height <= 50
        assert f["liquidated_notional_usd"].sum() == pytest.approx(row["liquidated_notional_usd"])
        assert f["bad_debt_cum_usd"][-1] == pytest.approx(row["bad_debt_usd"])
        assert f["accounts_liquidated_cum"][-1] == row["accounts_liquidated"]
    assert data.price_stats["low"] == pytest.approx(data.prices["low"].min())


def test_time_axis_is_compact_without_gaps():
    assert time_x(np.array([0.0, 60_000.0, 120_000.0])) == {"x0": 0.0, "dx": 60_000.0}
    uneven = time_x(np.array([0.0, 60_000.0, 240_000.0]))
    assert list(uneven) == ["x"] and uneven["x"].tolist() == [0.0, 60_000.0, 240_000.0]


def test_render_is_deterministic(run):
    runs, run_id, _ = run
    with Catalog(runs) as catalog:
        assert render_report(catalog, run_id) == render_report(catalog, run_id)


def test_default_output_location(run, monkeypatch, tmp_path):
    runs, run_id, _ = run
    monkeypatch.setenv("LIQBT_REPORTS", str(tmp_path / "reports"))
    with Catalog(runs) as catalog:
        out = write_report(catalog, run_id)
    assert out == tmp_path / "reports" / f"{run_id}.html"
    assert out.exists() and not list(out.parent.glob(".*.tmp"))


# ------------------------------------------------------------------------------ CLI


def test_cli_report_writes_the_file(run, tmp_path, capsys):
    runs, run_id, _ = run
    out = tmp_path / "cli.html"
    assert main(["report", run_id[:10], "--runs", str(runs), "-o", str(out)]) == 0
    assert out.exists() and out.stat().st_size > 1_000_000
    assert capsys.readouterr().out.strip() == str(out)
    assert main(["report", "latest", "--runs", str(runs), "-o", str(out)]) == 0


def test_cli_report_unknown_run(run, tmp_path, capsys):
    runs, _, _ = run
    out = tmp_path / "none.html"
    assert main(["report", "no-such-run", "--runs", str(runs), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no run matching 'no-such-run'" in err
    assert not out.exists()
    assert main(["report", "latest", "--runs", str(tmp_path / "missing")]) == 2
    assert "no runs directory" in capsys.readouterr().err
    assert not (tmp_path / "missing").exists()


def test_auto_deleveraging_gets_its_own_panel(run):
    """Without ADL the bad-debt chart has two panels; with ADL a third, cumulative, panel."""
    import polars as pl

    from backtest.report.figures import bad_debt_insurance_figure

    runs, run_id, _ = run
    with Catalog(runs) as catalog:
        data = load_report_data(catalog, run_id, max_points=50)
    assert data.steps["adl_notional_usd"].sum() == 0
    assert not any("ADL" in (t.name or "") for t in bad_debt_insurance_figure(data).data)
    data.steps = data.steps.with_columns(pl.lit(10.0).alias("adl_notional_usd"),
                                         pl.lit(1).alias("adl_accounts"))
    fig = bad_debt_insurance_figure(data)
    adl = [t for t in fig.data if t.name and t.name.endswith(" ADL")]
    assert len(adl) == data.steps["policy"].n_unique()
    assert adl[0].y[-1] == pytest.approx(10.0 * len(adl[0].y))  # cumulative
    assert adl[0].customdata[-1] == len(adl[0].y)


# ------------------------------------------------------------------------------ rules that
# keep a report from misleading (crafted summaries on the synthetic run's data)


@pytest.fixture
def data(run):
    runs, run_id, _ = run
    with Catalog(runs) as catalog:
        return load_report_data(catalog, run_id)


def _with(data, **columns):
    """The report data with summary columns replaced (one value per policy)."""
    import polars as pl

    data.summary = data.summary.with_columns(
        *(pl.Series(name, values, dtype=pl.Float64) for name, values in columns.items()))
    return data


def _row(data, name):
    return next(r for r in build.summary_rows(data) if r.metric.name == name)


def test_rounding_noise_in_a_fraction_shows_as_zero():
    from backtest.report.build import format_value

    # two tied policies' equity over the hard policy's, minus 1: 2.2e-14 is float rounding
    assert format_value(2.2e-14, "fraction", signed=True) == "0.00%"
    assert format_value(-3e-12, "fraction") == "0.00%"
    assert format_value(2.2e-5, "fraction", signed=True) == "+0.0022%"
    assert format_value(-0.000696, "fraction") == "-0.0696%"


def test_best_is_highlighted_only_beyond_the_materiality_threshold(data):
    # $58 on a million is no difference; a second policy within it shares the highlight
    row = _row(_with(data, bad_debt_usd=[1_000_000.0, 1_000_058.0, 2_000_000.0, 1_500_000.0]),
               "bad_debt_usd")
    assert [c.best for c in row.cells] == [True, True, False, False] and not row.tie
    row = _row(_with(data, bad_debt_usd=[1_000_000.0, 1_000_058.0, 1_000_010.0, 1_000_000.0]),
               "bad_debt_usd")
    assert not any(c.best for c in row.cells) and row.tie
    # 10% apart but only $50: below the absolute threshold
    row = _row(_with(data, penalties_usd=[500.0, 550.0, 520.0, 540.0]), "penalties_usd")
    assert not any(c.best for c in row.cells) and row.tie
    assert build.material(1_000.0, 2_100.0, "USD") and not build.material(1e6, 1e6 + 999, "USD")
    assert build.material(0.0004, 0.0007, "fraction")
    assert not build.material(0.5, 0.5009, "fraction")
    assert not build.material(0.00040, 0.00045, "fraction")  # 0.005 percentage point
    # the summary paragraph calls the policies level on such differences
    d = _with(data, bad_debt_usd=[1_000_000.0, 1_000_058.0, 1_000_010.0, 1_000_000.0])
    para = build.summary_paragraph(d)
    assert "least bad debt" not in para and "within the materiality threshold" in para


def test_insurance_draw_is_not_ranked_when_the_fund_ran_dry(data):
    import polars as pl

    names = data.policy_names
    d = _with(data, insurance_draw_usd=[20_000.0, 5_000.0, 20_000.0, 20_000.0])
    d.steps = d.steps.with_columns(
        pl.when(pl.col("policy") == names[0]).then(0.0).otherwise(pl.col("insurance_fund_min_usd"))
        .alias("insurance_fund_min_usd"))
    row = _row(d, "insurance_draw_usd")
    assert not any(c.best for c in row.cells)
    assert row.artefact and "ran dry" in row.artefact and names[0].replace("<", "<") in row.artefact
    assert row.artefact in build.tie_sentences(build.summary_rows(d))
    # with the fund never empty, the same numbers are ranked
    d.steps = d.steps.with_columns(pl.lit(1e6).alias("insurance_fund_min_usd"))
    row = _row(d, "insurance_draw_usd")
    assert row.artefact is None and [c.best for c in row.cells] == [False, True, False, False]


def test_ties_are_explained_in_a_sentence(data):
    d = _with(data, socialised_loss_usd=[0.0] * 4,
              bad_debt_usd=[1_000_000.0, 1_000_058.0, 1_000_010.0, 1_000_000.0])
    rows = build.summary_rows(d)
    sentences = build.tie_sentences(rows)
    zero = next(s for s in sentences if "zero under every policy" in s)
    assert "socialised loss" in zero
    close = next(s for s in sentences if "materiality threshold" in s)
    assert "bad debt" in close and "$1,000" in close


def test_all_zero_charts_are_blank():
    import plotly.graph_objects as go

    assert blank(go.Figure())
    assert blank(go.Figure([go.Scatter(y=[0.0, 0.0]), go.Scatter(y=np.zeros(5))]))
    assert not blank(go.Figure([go.Scatter(y=[0.0, 0.0]), go.Scatter(y=[0.0, 1.0])]))


def test_bad_debt_chart_drops_all_zero_panels(data):
    import polars as pl

    from backtest.report.figures import bad_debt_insurance_figure

    d = data
    d.steps = d.steps.with_columns(pl.lit(0.0).alias("bad_debt_cum_usd"),
                                   pl.lit(0.0).alias("socialised_loss_cum_usd"))
    fig = bad_debt_insurance_figure(d)
    assert not any("bad debt" in (t.hovertemplate or "") for t in fig.data)
    assert fig.layout.title.text.startswith("No bad debt")
    d.steps = d.steps.with_columns(pl.lit(0.0).alias("insurance_fund_usd"))
    assert blank(bad_debt_insurance_figure(d))


def test_equity_retained_is_split_by_product(data):
    assert set(data.leverage["product"].to_list()) == {"perp", "loan"}
    fig = leverage_figure(data)
    titles = [a.text for a in fig.layout.annotations]
    assert any(t.startswith("Perps") for t in titles) and any(t.startswith("Loans") for t in titles)
    assert {t.xaxis for t in fig.data} == {"x", "x2"}
    assert sum(t.showlegend is not False for t in fig.data) == len(data.policy_names)


def test_parameter_table_shows_only_what_differs(data, report):
    _, text, _ = report
    rows, hidden = build.parameter_rows(data)
    assert rows and hidden > 0
    assert all(len(set(vals)) > 1 for _, vals in rows)
    assert f"{hidden} parameters with the same value under every policy are hidden" in text


def test_long_series_are_bucketed_to_a_few_hundred_points(data):
    assert build.MAX_POINTS <= 300
    assert build.bucket_size(1440) == 5 and build.bucket_size(288) == 1


def test_summary_paragraph_says_who_bears_the_socialised_loss(data):
    d = _with(data, socialised_loss_usd=[0.0, 50_000.0, 0.0, 0.0],
              socialised_loss_charged_usd=[0.0, 30_000.0, 0.0, 0.0])
    para = build.summary_paragraph(d)
    assert ("$50,000 was socialised under \u201cpartial\u201d ($30,000 of it charged to the "
            "book's perp positions") in para
