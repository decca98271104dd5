"""Governance reports: proposal validation, the sweep behind them, size, escaping, numbers."""

from __future__ import annotations

import re

import polars as pl
import pytest

from backtest.cli import main
from backtest.errors import ConfigError
from backtest.report.governance_figures import pareto
from backtest.report.plotlyjs import plotlyjs_payload
from backtest.report.proposal import load_proposal, parameter_sets
from tests.governance_world import (
    HOSTILE_DESCRIPTION,
    HOSTILE_NAME,
    HOSTILE_SET,
    proposal_toml,
)


def test_parameter_sets_current_proposed_and_frontier(tmp_path):
    path = proposal_toml(tmp_path / "p.toml")
    roles = parameter_sets(load_proposal(path), path)
    assert [r for r, _ in roles].count("current") == 1
    assert [r for r, _ in roles].count("proposed") == 1
    assert len(roles) == 20  # 4 x 5 grid; its (0.5, 0.01) is current, (0.25, 0.02) proposed
    assert roles[1][1].params == {"partial.close_factor": 0.25, "perp.liquidation_penalty": 0.02}


def test_proposal_errors_name_file_and_field(tmp_path):
    path = proposal_toml(tmp_path / "p.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text(path.read_text().replace("close_factor = 0.25", "close_factr = 0.25"))
    with pytest.raises(ConfigError) as err:
        parameter_sets(load_proposal(bad), bad)
    assert "bad.toml" in str(err.value) and "proposed[0].params.close_factr" in str(err.value)
    same = tmp_path / "same.toml"
    same.write_text(path.read_text().replace("close_factor = 0.25", "close_factor = 0.5")
                    .replace('"perp.liquidation_penalty" = 0.02\n\n[frontier]',
                             '"perp.liquidation_penalty" = 0.01\n\n[frontier]'))
    with pytest.raises(ConfigError, match="same policy as 'current'"):
        parameter_sets(load_proposal(same), same)
    missing = tmp_path / "missing.toml"
    missing.write_text(path.read_text().replace('protocol = "partial"', ""))
    with pytest.raises(ConfigError, match="field 'protocol': required"):
        load_proposal(missing)


def test_proposal_paths_expand_environment_variables(tmp_path, monkeypatch):
    """``${VAR}`` in a proposal's gas tape is expanded as in a run or sweep config; an unset
    variable is an error that names the field."""
    path = proposal_toml(tmp_path / "p.toml")
    gas = tmp_path / "p-gas.toml"
    gas.write_text(path.read_text().replace(
        "[run.insurance_fund]",
        '[run.keepers]\ngas_tape = "${LIQBT_TEST_GAS}/gas.json"\n\n[run.insurance_fund]'))
    monkeypatch.delenv("LIQBT_TEST_GAS", raising=False)
    with pytest.raises(ConfigError, match="field 'gas_tape': unset environment variable"):
        load_proposal(gas)
    monkeypatch.setenv("LIQBT_TEST_GAS", str(tmp_path / "shared"))
    keepers = load_proposal(gas).run.keepers
    assert str(keepers.gas_tape) == str(tmp_path / "shared" / "gas.json")


def test_report_is_one_small_self_contained_file(governance_report):
    html = governance_report["html"].read_text(encoding="utf-8")
    size = governance_report["html"].stat().st_size
    assert size < 5_000_000, f"{size:,} bytes"
    plotly = plotlyjs_payload()  # plotly.js, gzip + base64 (decompressed by the browser)
    assert html.count(plotly) == 1  # plotly.js embedded exactly once
    assert "cdn" not in html.replace(plotly, "").lower()  # nothing loaded from the network
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", html.replace(plotly, ""))
    assert html.count('class="plotly-graph-div"') == 8  # frontier + grid heatmap + 6 events
    assert governance_report["outcome"].total == 6 * 20


def test_every_user_string_is_escaped(governance_report):
    html = governance_report["html"].read_text(encoding="utf-8")
    rest = html.replace(plotlyjs_payload(), "")
    assert "<script>alert" not in rest and "<img src=x" not in rest and "<b>bold" not in rest
    assert "<i>bigger" not in rest
    assert rest.count("<script") == 2 + 8  # plotly.js (data, loader) + one per chart
    assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;" in rest  # the title, as text
    assert "&lt;img src=x onerror=alert(1)&gt;" in rest
    assert "cf 25% &#34;penalty&#34; 2% &lt;b&gt;bold&lt;/b&gt;" in rest  # set name in tables
    # in chart JSON the name is HTML-escaped for plotly.js (which renders tags in labels)
    assert "cf 25% &quot;penalty&quot; 2% &lt;b&gt;bold" in rest
    assert "\\u003cb\\u003ebold" not in rest
    for raw in (HOSTILE_NAME, HOSTILE_DESCRIPTION, HOSTILE_SET):
        assert raw not in rest


def test_summary_numbers_match_the_sweep(governance_report):
    html = governance_report["html"].read_text(encoding="utf-8")
    from backtest.results import Catalog

    with Catalog(governance_report["runs"], read_only=True) as cat:
        totals = cat.query("""
            SELECT param_set, sum(bad_debt_usd) AS bad_debt, count(*) AS cells
            FROM sweep_cells WHERE sweep_id LIKE 'governance-proposal-%'
            GROUP BY param_set""")
    assert totals.height == 20 and set(totals["cells"]) == {6}
    cur = totals.filter(pl.col("param_set") == "current")["bad_debt"][0]
    assert f"${cur:,.0f}" in html  # the 'All events' row shows the current total
    assert 'id="recommendation"' in html
    for i in range(6):
        assert f"<th>window-{i}</th>" in html


def test_pareto_keeps_points_nothing_beats():
    pts = [(1.0, 5.0), (2.0, 3.0), (3.0, 4.0), (4.0, 1.0), (2.5, 3.0)]
    assert pareto(pts) == [0, 1, 3]


def test_cli_report_governance_reuses_cells(governance_report, tmp_path, capsys):
    out = tmp_path / "again.html"
    code = main(["report", "--governance", str(governance_report["proposal"]), "--runs",
                 str(governance_report["runs"]), "--store", str(governance_report["store"]),
                 "--events", str(governance_report["events"]), "-o", str(out), "-q"])
    assert code == 0
    captured = capsys.readouterr()
    assert str(out) in captured.out and "120 cells (120 reused, 0 run)" in captured.err
    code = main(["report", "latest", "--governance", str(governance_report["proposal"])])
    assert code == 2 and "not both" in capsys.readouterr().err


SYNTHETIC_TARGETS = """
event = "synthetic-crash"

[[target]]
id = "btc-liquidated"
scope = "market"
venue = "all-cex"
product = "perp"
asset = "BTC"
window_start = 2021-05-19T00:00:00Z
window_end = 2021-05-20T00:00:00Z
measure = "liquidated_notional_usd"
low = 1.0e5
high = 4.0e5
unit = "USD"
source = "https://example.org/liquidated"
quality = "secondary"
note = "made up for a test"
"""


def test_against_what_happened_says_plainly_when_no_target_exists(governance_report):
    html = governance_report["html"].read_text(encoding="utf-8")
    assert '<section id="against-what-happened">' in html
    assert 'href="#against-what-happened"' in html
    section = html.split('<section id="against-what-happened">')[1].split("</section>")[0]
    assert section.count('class="reality-sentence"') == 6  # one per event, none has targets
    assert "data/validation has no targets for this event" in section


def test_against_what_happened_rows_are_the_sweeps_figures(governance_report, tmp_path,
                                                           monkeypatch):
    from backtest.report.governance_load import load_governance_data
    from backtest.report.governance_reality import against_what_happened
    from backtest.report.proposal import CURRENT
    from backtest.results.catalog import Catalog

    world = governance_report
    monkeypatch.setenv("LIQBT_EVENTS", str(world["events"]))
    targets = tmp_path / "validation"
    targets.mkdir()
    (targets / "synthetic-crash.toml").write_text(SYNTHETIC_TARGETS)
    proposal = load_proposal(world["proposal"])
    roles = parameter_sets(proposal, world["proposal"])
    sweep_dir = world["outcome"].sweep_dir
    with Catalog(world["runs"]) as catalog:
        catalog.register_sweep(sweep_dir)
        data = load_governance_data(catalog, proposal, world["proposal"], sweep_dir, roles,
                                    events=world["events"])
        sections = against_what_happened(catalog, data, targets)
        expected = catalog.query("""
            SELECT avg(liquidated_notional_usd) AS usd FROM sweep_cells
            WHERE event = 'window-0' AND stress_kind = 'none' AND param_set = 'current'""")
    assert [s["event"] for s in sections] == [e.key for e in proposal.events]
    first = sections[0]
    assert first["sentence"] is None and not first["calibrated"]
    rows = {r["policy"]: r for r in first["rows"]}
    assert set(rows) == {s.label for s in data.named()}
    current = rows[CURRENT]
    from backtest.calibration.formatting import format_figure
    assert current["simulated"] == format_figure(expected["usd"][0], "USD")
    assert current["real"] == "$100k \u2013 $400k" and current["fit"] == "uncalibrated book"
    # later windows start after the target's: the simulated window is clipped to the run's
    assert "2021-05-19 02:00" in sections[1]["rows"][0]["simulated_window"]
