"""A governance report over an ensemble conditioned on an observed figure (history matching)."""

from __future__ import annotations

import pytest

from backtest.errors import ConfigError
from backtest.results.catalog import Catalog
from tests.sweep_world import liquidated_target, make_world

PROPOSAL = """
name = "conditioned"
description = "cf 25% on an ensemble kept on what was observed"
protocol = "partial"
workers = 1

[[proposed]]
name = "cf 25%"
[proposed.params]
close_factor = 0.25

[frontier]
"partial.close_factor" = [0.25, 0.5]

[[events]]
event = "synthetic-crash"
interval = "5m"
accounts = 300

[[events]]
event = "synthetic-late"
interval = "5m"
accounts = 300

[ensemble]
members = 4
seed = 2
{condition}
"""


def _write(path, condition: str = 'condition_on = ["market-liquidated"]'):
    path.write_text(PROPOSAL.format(condition=condition))
    return path


@pytest.fixture(scope="module")
def conditioned(tmp_path_factory):
    """Run the proposal once with a target every member meets, to learn each member's figure."""
    from backtest.report.governance import write_governance_report

    root = tmp_path_factory.mktemp("gov-cond")
    world = make_world(root)
    mp = pytest.MonkeyPatch()
    mp.setenv("LIQBT_EVENTS", str(world["events"]))
    (root / "all").mkdir()
    liquidated_target(root / "all", world["events"], low=0.0, high=1e15)
    mp.setenv("LIQBT_VALIDATION", str(root / "all" / "validation"))
    proposal = _write(root / "proposal.toml")
    out, outcome = write_governance_report(proposal, root / "all.html", root / "runs",
                                           world["store"], events=world["events"],
                                           show_progress=False)
    with Catalog(root / "runs") as cat:
        cat.register_sweep(outcome.sweep_dir)
        members = cat.query("""
            SELECT c.member, c.param_set, sum(st.liquidated_notional_usd) AS liq,
                   any_value(c.bad_debt_usd) AS bad_debt
            FROM sweep_steps st JOIN sweep_cells c USING (sweep_id, cell_id)
            WHERE c.stress_kind = 'none' AND c.event = 'synthetic-crash'
            GROUP BY ALL ORDER BY c.member""")
    yield {**world, "root": root, "proposal": proposal, "all": out, "members": members,
           "mp": mp}
    mp.undo()


def test_the_report_is_over_the_members_the_observation_keeps(conditioned):
    """A target only one member's current-set cells meet: the report keeps that member, for
    every set, says so, marks the target as conditioned on, and its figures are that member's."""
    from backtest.calibration.formatting import format_figure
    from backtest.report.governance import write_governance_report

    w = conditioned
    cur = w["members"].filter(w["members"]["param_set"] == "current").sort("liq")
    assert cur["liq"].n_unique() == 4  # the members differ
    keep, liq = int(cur["member"][0]), float(cur["liq"][0])
    html_all = w["all"].read_text(encoding="utf-8")
    assert "4 of 4 ensemble members kept" in html_all
    (w["root"] / "one").mkdir()
    liquidated_target(w["root"] / "one", w["events"], low=liq * (1 - 1e-6), high=liq * 1.0001)
    w["mp"].setenv("LIQBT_VALIDATION", str(w["root"] / "one" / "validation"))
    out, outcome = write_governance_report(w["proposal"], w["root"] / "one.html",
                                           w["root"] / "runs", w["store"],
                                           events=w["events"], show_progress=False)
    assert outcome.computed == 0  # the same cells, chosen differently
    html = out.read_text(encoding="utf-8")
    note = html.split('id="conditioning">')[1].split("</p>")[0]
    assert "1 of 4 ensemble members kept" in note and f"member {keep})" in note
    assert "1 ensemble member of 4 drawn, kept on what was observed (market-liquidated)" in html
    assert "Every figure comes from one ensemble member" in html  # a single unit is flagged
    reality = html.split('<section id="against-what-happened">')[1].split("</section>")[0]
    assert "conditioned on (in fit)" in reality
    assert format_figure(liq, "USD") in reality  # the kept member's figure, not the mean
    # every set is shown over the same (current-decided) member
    proposed = w["members"].filter((w["members"]["param_set"] == "cf 25%")
                                   & (w["members"]["member"] == keep))
    assert format_figure(float(proposed["liq"][0]), "USD") in reality
    # the member is one draw across the sweep: kept on the first event's observation, it is
    # the one member of the second event too (which has no conditioning target)
    from backtest.report.governance_load import load_governance_data
    from backtest.report.proposal import load_proposal, parameter_sets

    proposal = load_proposal(w["proposal"])
    with Catalog(w["root"] / "runs") as cat:
        cat.register_sweep(outcome.sweep_dir)
        data = load_governance_data(cat, proposal, w["proposal"], outcome.sweep_dir,
                                    parameter_sets(proposal, w["proposal"]),
                                    events=w["events"])
    assert set(data.unit_values["unit"]) == {keep} and data.units.count == 1
    assert set(data.unit_values["event"]) == {"synthetic-crash", "synthetic-late"}
    # liqbt validate on the proposal's sweep: the same member, and the event without a
    # conditioning target (nor any target) is no error
    from backtest.cli.validate import ensemble_text
    from backtest.targets import load_targets

    text = ensemble_text(outcome.sweep_dir, w["root"] / "runs",
                         load_targets(w["root"] / "one" / "validation", w["events"]))
    assert text.count("Conditioned on market-liquidated: 1 of 4 members kept, those whose "
                      "current cells") == 1
    assert f"members kept (sweep_cells.member): {keep}\n" in text
    assert "event synthetic-late" in text


def test_the_methodology_lists_what_each_member_draws(conditioned):
    """The report's methodology has the ensemble's input table from sweep.json: every drawn
    input with its range and source, one row when every event draws it alike."""
    import json

    from markupsafe import escape

    html = conditioned["all"].read_text(encoding="utf-8")
    section = html.split('id="ensemble-inputs"')[1].split("</table>")[0]
    sweeps = list((conditioned["root"] / "runs" / "governance").iterdir())
    manifest = json.loads((sweeps[0] / "sweep.json").read_text(encoding="utf-8"))
    tables = manifest["ensemble"]["events"]
    assert set(tables) == {"synthetic-crash", "synthetic-late"}
    for name, d in tables["synthetic-crash"].items():
        row = section.split(f"<code>{name}</code>")[1].split("</tr>")[0]
        assert str(escape(d["range"])) in row and str(escape(d["source"])) in row
        if tables["synthetic-late"].get(name) == d:
            assert "every event" in row
    assert "leverage_scale" in tables["synthetic-crash"]


def test_no_member_kept_is_a_warning_and_the_report_stays_over_all(conditioned):
    from backtest.report.governance import write_governance_report

    w = conditioned
    (w["root"] / "none").mkdir()
    liquidated_target(w["root"] / "none", w["events"], low=1.0, high=2.0)
    w["mp"].setenv("LIQBT_VALIDATION", str(w["root"] / "none" / "validation"))
    out, _ = write_governance_report(w["proposal"], w["root"] / "none.html",
                                     w["root"] / "runs", w["store"], events=w["events"],
                                     show_progress=False)
    html = out.read_text(encoding="utf-8")
    warnings = html.split('<div id="warnings">')[1].split("</div>")[0]
    assert "no member of 4 is consistent with what was observed" in warnings
    assert 'id="conditioning"' not in html
    assert "4 ensemble members (ensemble)" in html  # the header: every member


def test_conditioning_errors_name_the_field(conditioned, tmp_path):
    from backtest.report.governance import write_governance_report
    from backtest.report.proposal import load_proposal

    bad = _write(tmp_path / "p.toml", 'condition_on = ["market-liquidated"]\n'
                                      'condition_policy = "partial"')
    with pytest.raises(ConfigError, match="condition_policy.*current parameter set decides"):
        load_proposal(bad)
    w = conditioned
    unknown = _write(tmp_path / "u.toml", 'condition_on = ["no-such-target"]')
    with pytest.raises(ConfigError, match="no-such-target"):
        write_governance_report(unknown, tmp_path / "u.html", w["root"] / "runs", w["store"],
                                events=w["events"], show_progress=False)


def test_the_report_says_how_far_the_intervals_held_on_past_events(tmp_path):
    """A calibrated book file with a recorded coverage check: the governance report (and
    liqbt validate) carry its sentence once per file; without an ensemble, none."""
    import hashlib
    from types import SimpleNamespace

    from backtest.report.governance import interval_trust

    fitted = tmp_path / "perps-fitted.toml"
    fitted.write_text("[book]\n")
    sha = hashlib.sha256(fitted.read_bytes()).hexdigest()
    (tmp_path / "perps-fitted-coverage.toml").write_text(
        f'[coverage]\nfitted = "perps-fitted.toml"\nfitted_sha256 = "{sha}"\n'
        'members = 100\nseed = 0\n'
        'centre = "refit without the event"\nmeasured = "2026-12-06"\nevents = 12\n'
        'inside = 6\nmedians_within_1_5 = 6\nrms_log_ratio = 0.5873\ntypical_factor = 1.799\n')
    events = [SimpleNamespace(book_params=fitted), SimpleNamespace(book_params=fitted),
              SimpleNamespace(book_params=None)]
    data = SimpleNamespace(manifest={"ensemble": {"members": 12}},
                           proposal=SimpleNamespace(events=events))
    said = interval_trust(data)
    assert len(said) == 1
    assert "on the 12 past events" in said[0] and "in 6, and" in said[0]
    assert "factor 1.80" in said[0] and "lower bound" in said[0]
    data.manifest = {}
    assert interval_trust(data) == []


def test_levels_at_the_window_start_and_shares_are_across_members(conditioned):
    """Each member's book has its own size (the drawn size factor): the open interest at the
    window start is a mean or quantile across the members' books, and the liquidated share
    is taken member by member (its own liquidations over its own open interest)."""
    import json
    from datetime import datetime

    from backtest.calibration.compare import SHARE
    from backtest.calibration.sweep_sources import SweepTables, sweep_event_facts

    w = conditioned
    sweep_dir = next((w["root"] / "runs" / "governance").iterdir())
    manifest = json.loads((sweep_dir / "sweep.json").read_text(encoding="utf-8"))
    infos = [e for e in manifest["events"] if e["event"] == "synthetic-crash"]
    with Catalog(w["root"] / "runs") as cat:
        cat.register_sweep(sweep_dir)
        sid = manifest["sweep_id"]
        facts = sweep_event_facts(cat, sid, infos, "synthetic-crash", "synthetic-crash")
        by_seed = dict(facts.open_interest_by_seed)
        assert len(by_seed) == 4 and len(set(by_seed.values())) == 4  # sizes differ
        source = SweepTables(cat, sid, "synthetic-crash", ["current"], facts.open_interest_usd,
                             open_interest_by_seed=facts.open_interest_by_seed)
        start, end = datetime.fromisoformat(infos[0]["start"]), datetime.fromisoformat(
            infos[0]["end"])
        lo, mean, hi = (s.figures(start, end, True, "perp")["current"]
                        for s in (source.at(0.05), source, source.at(0.95)))
        assert lo["open_interest_before_usd"] < mean["open_interest_before_usd"] < hi[
            "open_interest_before_usd"]
        assert mean["open_interest_before_usd"] == pytest.approx(
            sum(by_seed.values()) / 4)
        liq = cat.query(f"""
            SELECT c.seed, sum(st.liquidated_notional_usd) AS liq
            FROM sweep_steps st JOIN sweep_cells c USING (sweep_id, cell_id)
            WHERE st.sweep_id = '{sid}' AND c.event = 'synthetic-crash'
              AND c.param_set = 'current' AND c.stress_kind = 'none'
              AND st.timestamp >= '{start:%Y-%m-%d %H:%M:%S}'
              AND st.timestamp < '{end:%Y-%m-%d %H:%M:%S}'
            GROUP BY c.seed""")
        shares = [r["liq"] / by_seed[r["seed"]] for r in liq.iter_rows(named=True)]
        assert mean[SHARE] == pytest.approx(sum(shares) / len(shares))
        kept = source.keeping({next(iter(by_seed))})
        one = kept.figures(start, end, True, "perp")["current"]
        assert one["open_interest_before_usd"] == pytest.approx(next(iter(by_seed.values())))
