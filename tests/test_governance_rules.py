"""Governance report rules on crafted inputs: robustness words, intervals, dominating sets,
warnings, the per-account view and a report without local absolute paths."""

from __future__ import annotations

import re

import duckdb
import numpy as np
import polars as pl
import pytest

from backtest.calibration.formatting import format_figure
from backtest.report import governance_appendix as gapp
from backtest.report import governance_data as gdata
from backtest.report import governance_load as gload
from backtest.report import governance_stats as gstats
from backtest.report import governance_summary as gsum
from backtest.report import governance_warnings as gwarn
from backtest.report.governance_accounts import compare_accounts, loss_distribution
from backtest.report.governance_figures import frontier_figure
from backtest.report.plotlyjs import plotlyjs_payload
from backtest.report.proposal import CURRENT, load_proposal
from tests.governance_world import HOSTILE_SET, proposal_toml

MEASURE_NAMES = [m for m, _ in gdata.MEASURES]
PROPOSED = HOSTILE_SET


def crafted(tmp_path, rows, kind="member", frontier=()):
    """GovernanceData from rows (event index, set, unit, bad debt, user loss), 5 events."""
    path = proposal_toml(tmp_path / "p.toml", events=5)
    proposal = load_proposal(path)
    frame = pl.DataFrame(
        [{"event": f"window-{e}", "stress": "history", "param_set": s, "unit": u,
          **{m: 0.0 for m in MEASURE_NAMES}, "bad_debt_usd": float(bd),
          "user_loss_to_liquidation_usd": float(ul)} for e, s, u, bd, ul in rows],
        schema_overrides={"unit": pl.Int64})
    sets = [gdata.SetInfo(CURRENT, CURRENT, {}, color="#000000"),
            gdata.SetInfo("proposed", PROPOSED, {}, color="#0072B2")]
    sets += [gdata.SetInfo("frontier", f, {}) for f in frontier]
    scenarios = [gdata.Scenario(f"window-{e}", f"window-{e}", "history", "BTC/USDT", "5m",
                              "", 10) for e in range(5)]
    units = gstats.Units(kind, int(frame["unit"].n_unique()))
    return gdata.GovernanceData(proposal, path, {}, sets, scenarios, gload.mean_values(frame),
                              frame, units)


def mixed_rows(members=10):
    """Proposed: less bad debt in 8 of 10 members and on 4 of 5 events; user losses up on 3."""
    rows = []
    for u in range(members):
        rows.append((0, CURRENT, u, 1000 * (u + 1), 1000))
        rows.append((0, PROPOSED, u, 1000 * (u + 1) + (-500 if u < 8 else 500), 900))
        for e, (bd, ul) in zip(range(1, 5), [(50, 1100), (50, 1050), (50, 1200), (100, 500)],
                               strict=True):
            rows.append((e, CURRENT, u, 100, 1000))
            rows.append((e, PROPOSED, u, bd, ul))
    return rows


def test_robustness_sentence_counts_members_events_and_user_loss_rises(tmp_path):
    data = crafted(tmp_path, mixed_rows())
    text = gsum.robustness_sentence(data, PROPOSED)
    assert "leaves less bad debt in 8 of 10 ensemble members and on 4 of 5 events" in text
    assert "(more in 2 ensemble members)" in text
    assert ("user losses to liquidation are higher on 3 events "
            "(window-1 +10.0%, window-2 +5.0%, window-3 +20.0%)") in text
    rec = gsum.recommendation(data)
    # in total user losses fall (4,750 vs 5,000), so the set is adopted, but the headline must
    # not claim that no user loses more
    assert rec["verdict"] == "adopt"
    assert "without raising user losses" not in rec["headline"]
    assert "user losses are higher on 3 of 5 events" in rec["headline"]
    assert "Less bad debt in 8 of 10 ensemble members and on 4 of 5 events" in rec["headline"]
    assert "5th\u201395th percentile range" in rec["sentences"][0]


def test_the_headline_names_the_events_whose_bad_debt_the_model_misses(tmp_path):
    """The verdict rests on bad debt: where the current set's held-out bad debt is far from
    the real one, the headline says so and on which events; with no such event it does not."""
    data = crafted(tmp_path, mixed_rows())
    plain = gsum.recommendation(data)["headline"]
    assert "misses the real bad debt" not in plain
    data.reality = [{"event": "window-0", "far_bad_debt": True},
                    {"event": "window-3", "far_bad_debt": False}]
    rec = gsum.recommendation(data)
    assert rec["verdict"] == "adopt" and rec["headline"].startswith(plain)
    assert rec["headline"].endswith(
        "The model misses the real bad debt on 1 of 5 events (window-0; see the warnings): "
        "there the bad-debt comparison is the model's, not the event's.")


def test_without_rises_the_recommendation_says_so_and_seeds_are_named(tmp_path):
    rows = [(e, s, u, (100 if s == CURRENT else 40) * (u + 1), 1000)
            for e in range(5) for s in (CURRENT, PROPOSED) for u in range(3)]
    data = crafted(tmp_path, rows, kind="seed")
    rec = gsum.recommendation(data)
    assert "without raising user losses to liquidation on any event" in rec["headline"]
    assert "in 3 of 3 seeds and on 5 of 5 events" in gsum.robustness_sentence(data, PROPOSED)
    assert "higher on no event" in gsum.robustness_sentence(data, PROPOSED)


def test_per_event_table_shows_intervals_over_units(tmp_path):
    data = crafted(tmp_path, mixed_rows())
    table = gsum.summary_table(data)
    total = table["rows"][0]
    assert total["name"] == "All events"
    bad_debt = total["cells"][0]
    # per-member current totals are 1000 (u + 1) + 400: p5 = 1,850, p95 = 9,950
    cur = np.array([1000 * (u + 1) + 400 for u in range(10)], float)
    p5, _, p95 = np.percentile(cur, [5, 50, 95])
    assert bad_debt["current_interval"] == (f"p5\u2013p95 {format_figure(p5, 'USD')} \u2013 "
                                            f"{format_figure(p95, 'USD')}")
    assert bad_debt["current_interval"] == "p5\u2013p95 $1.85k \u2013 $9.95k"
    assert bad_debt["proposed"][0].interval.startswith("p5\u2013p95 $")
    assert [r["name"] for r in table["rows"][1:]] == [f"window-{e}" for e in range(5)]
    # an event where every unit agrees has no interval to show
    assert table["rows"][2]["cells"][0]["current_interval"] == ""


class FakeCatalog:
    """A DuckDB table named sweep_cells behind the one method the report queries with."""

    def __init__(self, frame: pl.DataFrame):
        self.con = duckdb.connect()
        self.con.register("frame", frame.to_arrow())
        self.con.execute("CREATE TABLE sweep_cells AS SELECT * FROM frame")

    def query(self, sql: str) -> pl.DataFrame:
        from backtest.results.catalog import _to_polars

        return _to_polars(self.con.sql(sql))


def _cells(member=None):
    rows = []
    for seed in (1, 2, 3, 4):
        row = {"sweep_id": "s", "event": "e", "stress": "history", "param_set": CURRENT,
               "seed": seed, "bad_debt_usd": float(seed)}
        if member is not None:
            row["member"] = member(seed)
        rows.append(row)
    return pl.DataFrame(rows)


@pytest.mark.parametrize("member, kind, units, values", [
    (None, "seed", 4, [1.0, 2.0, 3.0, 4.0]),
    (lambda seed: -1, "seed", 4, [1.0, 2.0, 3.0, 4.0]),
    (lambda seed: None, "seed", 4, [1.0, 2.0, 3.0, 4.0]),
    (lambda seed: (seed - 1) // 2, "member", 2, [1.5, 3.5]),
])
def test_unit_values_with_or_without_member_column(member, kind, units, values):
    frame, u = gstats.unit_values(FakeCatalog(_cells(member)), "'s'", ["bad_debt_usd"])
    assert (u.kind, u.count) == (kind, units)
    assert frame["bad_debt_usd"].to_list() == values
    assert gstats.percentiles(np.array(values))[1] == pytest.approx(float(np.median(values)))


def test_dominating_sets_are_named_and_labelled(tmp_path):
    rows = mixed_rows(members=2)
    for u in range(2):
        for e in range(5):
            rows.append((e, "good", u, 10, 100))  # beats current and proposed on both axes
            rows.append((e, "only-current", u, 150, 990))  # beats current only
            rows.append((e, "tie", u, 200 if e == 0 else 100, 1000))  # equal to current
    data = crafted(tmp_path, rows, frontier=("good", "only-current", "tie"))
    assert data.dominating() == {PROPOSED: ["good"]}
    assert gstats.dominates((1.0, 1.0), (1.0, 2.0)) and not gstats.dominates((1.0, 1.0),
                                                                           (1.2, 1.3))
    markers = gsum.dominating_markers(data)
    assert markers == {"good": "D1"}
    rec = gsum.recommendation(data)
    assert "1 swept set beats both the current parameters" in rec["sentences"][0]
    assert "D1 \u201cgood\u201d" in rec["sentences"][0]
    assert rec["dominating"][PROPOSED][0][:2] == ("D1", "good")
    fig = frontier_figure(data, markers)
    labelled = [t for t in fig.data if t.text is not None and "D1" in list(t.text)]
    assert len(labelled) == 1 and labelled[0].mode == "markers+text"


def test_asset_warning_names_book_and_tape_assets():
    weth = "configs/books/aave-weth-loans.toml"
    out = gwarn.asset_warnings([("may-2021", "BTC/USDT", {}, weth),
                                ("3ac-2022", "ETH/USDT", {}, weth),
                                ("luna-2022", "BTC/USDT", {}, "configs/books/perps-base.toml")],
                               "A neutral name")
    assert len(out) == 1
    assert out[0].startswith("may-2021 replays BTC/USDT prices against a book meant for ETH")
    assert "aave-weth-loans.toml" in out[0]
    both = gwarn.asset_warnings([("may-2021", "BTC/USDT", {}, weth),
                                 ("ftx-2022", "BTC/USDT", {}, weth)], "x")
    assert len(both) == 1 and both[0].startswith("may-2021 and ftx-2022 replay BTC/USDT")
    # the book's metadata wins over the file name; the proposal name is the last resort
    assert gwarn.asset_warnings([("e", "ETH/USDT", {"asset": "WBTC"}, weth)], "x")
    assert gwarn.asset_warnings([("e", "SOL/USDT", {}, None)], "Aave WETH close factor")
    assert not gwarn.asset_warnings([("e", "SOL/USDT", {}, None)], "ETH and BTC together")


def test_mechanism_warning_for_black_thursday_follows_the_run_config():
    events = [("bt", "black-thursday-2020"), ("ftx", "ftx-2022")]
    bare = gwarn.mechanism_warnings(events, {"keepers": {}, "oracle": {"model": "market"}},
                                    gwarn.PresetTraits("partial"))
    assert len(bare) == 1 and bare[0].startswith("bt runs without network congestion, "
                                                 "zero-bid auctions and oracle delay")
    congested = {"keepers": {"gas_tape": "gas.json", "requires_profit": True},
                 "oracle": {"model": "lagged"}}
    partial = gwarn.mechanism_warnings(events, congested, gwarn.PresetTraits("partial"))
    assert len(partial) == 1 and "without zero-bid auctions," in partial[0]
    # a Dutch auction (Clipper) never deals a zero bid; a flip auction with a bid window does
    dutch = gwarn.mechanism_warnings(events, congested, gwarn.PresetTraits("auction"))
    assert len(dutch) == 1 and "without zero-bid auctions," in dutch[0]
    assert gwarn.mechanism_warnings(events, congested,
                                    gwarn.PresetTraits("auction", zero_bids=True)) == []


def test_empty_event_and_single_unit_warnings(tmp_path):
    rows = [(e, s, 0, 0.0 if e == 2 else 5.0, 0.0 if e == 2 else 7.0)
            for e in range(5) for s in (CURRENT, PROPOSED)]
    data = crafted(tmp_path, rows, kind="seed")
    usd = [m for m in MEASURE_NAMES if m not in gstats.MEAN_MEASURES]
    out = gwarn.empty_warnings(data.unit_values, data.scenario_keys(), usd)
    assert len(out) == 1 and out[0].startswith("Nothing happened in window-2:")
    assert gwarn.unit_warnings("seed", 1) and "one book seed" in gwarn.unit_warnings("seed", 1)[0]
    assert gwarn.unit_warnings("member", 30) == []


def test_compare_accounts_counts_both_directions():
    cur = pl.DataFrame({"account_id": [1, 2, 3, 4], "initial_notional_usd": [10., 20., 30., 40.],
                        "liquidated": [True, False, True, False],
                        "liquidated_notional_usd": [5., 0., 30., 0.],
                        "user_loss_usd": [3.0, 0.0, 12.0, 0.25]})
    new = cur.with_columns(pl.Series("liquidated", [False, True, True, True]))
    out = compare_accounts(cur, new)
    assert out["only_proposed"] == {"accounts": 2, "notional_usd": 60.0}
    assert out["only_current"] == {"accounts": 1, "notional_usd": 10.0}
    assert out["both"] == 1
    with pytest.raises(ValueError, match="same book"):
        compare_accounts(cur, new.head(3))
    dist = loss_distribution(cur)
    assert (dist["accounts"], dist["with_loss"], dist["max"]) == (4, 2, 12.0)
    assert dist["p50"] == pytest.approx(7.5) and dist["total"] == pytest.approx(15.25)
    assert loss_distribution(cur.with_columns(pl.lit(0.0).alias("user_loss_usd")))["p50"] is None


def test_account_view_matches_the_sweep_cells(governance_report, monkeypatch):
    from backtest.report.proposal import parameter_sets
    from backtest.results.catalog import Catalog

    world = governance_report
    monkeypatch.setenv("LIQBT_EVENTS", str(world["events"]))
    proposal = load_proposal(world["proposal"])
    roles = parameter_sets(proposal, world["proposal"])
    with Catalog(world["runs"]) as catalog:
        catalog.register_sweep(world["outcome"].sweep_dir)
        data = gload.load_governance_data(catalog, proposal, world["proposal"],
                                        world["outcome"].sweep_dir, roles,
                                        events=world["events"])
        cells = catalog.query("""
            SELECT event, param_set, user_loss_to_liquidation_usd AS loss, accounts_liquidated
            FROM sweep_cells WHERE param_set IN ('current', 'cf 25% "penalty" 2% <b>bold</b>')
        """)
    assert len(data.accounts) == 6 and all(a["error"] is None for a in data.accounts)
    for a in data.accounts:
        cur, new = a["sets"]
        ref = {r["param_set"]: r for r in cells.filter(pl.col("event") == a["scenario"])
               .iter_rows(named=True)}
        # the re-simulated accounts give back the cell's own figures
        assert cur["loss"]["total"] == pytest.approx(ref[CURRENT]["loss"], rel=1e-9, abs=1e-6)
        assert new["loss"]["total"] == pytest.approx(ref[PROPOSED]["loss"], rel=1e-9,
                                                     abs=1e-6)
        c = new["compare"]
        assert c["both"] + c["only_current"]["accounts"] == ref[CURRENT]["accounts_liquidated"]
        assert c["both"] + c["only_proposed"]["accounts"] == ref[PROPOSED]["accounts_liquidated"]
    assert data.warnings and "one book seed" in data.warnings[-1]


def test_report_has_no_local_absolute_path(governance_report):
    html = governance_report["html"].read_text(encoding="utf-8")
    rest = html.replace(plotlyjs_payload(), "")
    root = str(governance_report["root"])
    assert root not in rest and "/tmp/" not in rest
    assert not re.search(r"(?<![\w.$}])/(home|root|tmp|work|Users)/", rest)
    assert 'id="git-commit"' in rest
    commit = gapp.git_commit()
    assert commit is None or re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", commit)
    if commit:
        assert commit in rest
    for section in ('id="warnings"', 'id="accounts"', 'id="grid"', 'id="summary-table"'):
        assert section in rest


def test_portable_path_never_returns_a_local_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LIQBT_SHARED_DATA", str(tmp_path / "shared"))
    assert gapp.portable_path("configs/x.toml") == "configs/x.toml"
    assert gapp.portable_path(tmp_path / "a" / "b.toml") == "a/b.toml"
    assert gapp.portable_path(tmp_path / "shared" / "gas.json") == "${LIQBT_SHARED_DATA}/gas.json"
    assert gapp.portable_path("/somewhere/else/deep/file.toml") == ".../deep/file.toml"
    cmd = gapp.portable_command(f"liqbt report --governance {tmp_path}/p.toml -o /x/y/z.html")
    assert cmd == "liqbt report --governance p.toml -o .../y/z.html"
    assert gapp.portable_path(gapp._repo_root() / "configs") == "configs"  # under the checkout


def test_heatmap_covers_the_two_field_grid_and_marks_named_sets(tmp_path):
    from backtest.report.governance_figures import heatmap_figure

    grid = [(cf, pen) for cf in (0.25, 0.5) for pen in (0.0, 0.01)]
    labels = [f"g{i}" for i in range(len(grid))]
    rows = [(e, s, 0, 10.0 * (i + 1), 100.0 * (i + 1)) for e in range(5)
            for i, s in enumerate([CURRENT, PROPOSED, *labels])]
    data = crafted(tmp_path, rows, frontier=labels)
    data.grid_fields = ["partial.close_factor", "perp.liquidation_penalty"]
    data.defaults = {"partial.close_factor": 0.5, "perp.liquidation_penalty": 0.01}
    data.sets[1].params = {"partial.close_factor": 0.25, "perp.liquidation_penalty": 0.0}
    for s, (cf, pen) in zip(data.sets[2:], grid, strict=True):
        s.params = {"partial.close_factor": cf, "perp.liquidation_penalty": pen}
    fig = heatmap_figure(data)
    assert len(fig.data) == 2  # bad debt, user losses
    bad_debt = fig.data[0]
    assert list(bad_debt.x) == ["0.25", "0.5"] and list(bad_debt.y) == ["0", "0.01"]
    z = np.asarray(bad_debt.z)
    # named sets take the cells they stand for: current (0.5, 0.01), proposed (0.25, 0)
    assert z[1, 1] == pytest.approx(50.0) and z[0, 0] == pytest.approx(100.0)
    assert bad_debt.text[1][1] == "current" and bad_debt.text[0][0] == "proposed"
    assert np.asarray(fig.data[1].z)[1, 1] == pytest.approx(500.0)
    data.grid_fields = ["partial.close_factor"]
    assert heatmap_figure(data) is None


def test_an_ensembles_reality_rows_carry_the_members_interval():
    from types import SimpleNamespace as NS

    from backtest.report.governance_reality import _add_member_interval

    target = NS(unit="USD", low=18.0e6, high=19.0e6)
    mean = NS(rows=[NS(target=target, simulated=4e7), NS(target=target, simulated=None)])
    p5 = NS(rows=[NS(simulated=1.4e7), NS(simulated=None)])
    p95 = NS(rows=[NS(simulated=9.6e7), NS(simulated=None)])
    rows = [{}, {}]
    _add_member_interval(rows, mean, [p5, p95])
    assert rows[0] == {"interval": "$14M \u2013 $96M", "meets": "yes"}
    assert rows[1] == {"interval": "\u2013", "meets": "\u2013"}
    high = NS(rows=[NS(simulated=2.0e7), NS(simulated=None)])
    rows = [{}, {}]
    _add_member_interval(rows, mean, [high, p95])
    assert rows[0]["meets"] == "no"  # p5 above the real range


def test_a_figure_far_from_what_happened_is_named():
    """A held-out bad debt outside a factor 1.5 of the real range, with the members' p5 - p95
    not reaching it either, is named; in range, in the fit, on an uncalibrated book, a policy
    not asked about, another measure, or members that reach it are not."""
    from types import SimpleNamespace as NS

    from backtest.calibration.reality_check import far_from_reality

    def target(measure="bad_debt_usd", low=5.67e6, high=6.65e6):
        return NS(measure=measure, low=low, high=high, unit="USD", key="bt/bd",
                  derived=False)

    def row(sim, policy="current", fit="held out", t=None):
        return NS(target=t or target(), policy=policy, simulated=sim, fit=fit,
                  ratio=sim / 6.1e6)

    far = NS(rows=[row(0.6e6)])
    (w,) = far_from_reality(far, None, ["current"])
    assert w == "bad debt (bt/bd) is $600k against the real $5.67M \u2013 $6.65M (0.098x, held out)"
    # every policy asked about: one phrase per target, naming the policies that miss it
    both = NS(rows=[row(0.6e6), row(0.9e6, policy="cf 25%")])
    assert far_from_reality(both) == [
        "bad debt (bt/bd), real $5.67M \u2013 $6.65M, held out: current $600k (0.098x); "
        "cf 25% $900k (0.15x)"]
    assert far_from_reality(NS(rows=[row(5.0e6)])) == []  # within a factor 1.5
    assert far_from_reality(NS(rows=[row(0.6e6, fit="in fit")])) == []
    assert far_from_reality(NS(rows=[row(0.6e6, policy="cf 25%")]), None, ["current"]) == []
    assert far_from_reality(NS(rows=[row(0.6e6, t=target("liquidations_count"))])) == []
    reach = [NS(rows=[NS(simulated=0.2e6)]), NS(rows=[NS(simulated=6.0e6)])]
    assert far_from_reality(far, reach) == []  # the members reach it
    short = [NS(rows=[NS(simulated=0.3e6)]), NS(rows=[NS(simulated=1.0e6)])]
    (w,) = far_from_reality(far, short)
    assert "the members' p5 \u2013 p95, $300k \u2013 $1M, does not reach it" in w
    # an uncalibrated book is sized to no venue: its figures are not checked
    assert far_from_reality(NS(rows=[row(20e6, fit="uncalibrated book")])) == []


def test_validate_on_a_proposals_sweep_gives_one_row_per_parameter_set(governance_report,
                                                                       tmp_path):
    """``liqbt validate runs/governance/NAME``: a proposal's cells share a policy, so they are
    grouped by parameter set, each with its own quantiles across seeds."""
    from backtest.cli.validate import ensemble_text
    from tests.sweep_world import liquidated_target

    sweep_dir = next((governance_report["runs"] / "governance").iterdir())
    text = ensemble_text(sweep_dir, governance_report["runs"],
                         liquidated_target(tmp_path, governance_report["events"]))
    block = text.split("Ensemble ")[1]  # the first event
    rows = [x for x in block.splitlines() if x.startswith("  ") and " / " in x]
    # current, the proposed set and 18 frontier sets, each once
    assert len(rows) == 20 and any(x.strip().startswith("current") for x in rows)


def test_an_ensembles_held_out_outcomes_are_counted_against_the_members_interval():
    """``liqbt validate SWEEP_DIR`` ends each event with, per policy, how many held-out
    outcomes have their real figure inside the members' p5 - p95, naming the others; figures
    in the fit, counts, and the targets the members were conditioned on are not counted."""
    from types import SimpleNamespace as NS

    from backtest.calibration.reality_check import held_out_interval_summary

    def target(id_, measure="liquidated_notional_usd", low=5e6, high=6e6):
        return NS(id=id_, key=f"e/{id_}", measure=measure, low=low, high=high, unit="USD")

    bd, liq, count, fitted = (target("bd", "bad_debt_usd"), target("liq"),
                              target("n", "liquidations_count", 10, 10), target("fit"))

    def comparison(sims, fit_of=lambda t: "in fit" if t is fitted else "held out"):
        return NS(rows=[NS(target=t, policy="current", simulated=v, fit=fit_of(t),
                           ratio=v / 5.5e6) for t, v in zip((bd, liq, count, fitted), sims,
                                                            strict=True)])

    runs_q = [comparison([1e6, 4e6, 1, 1e6]), comparison([2e6, 5e6, 2, 2e6]),
              comparison([3e6, 7e6, 3, 3e6])]
    assert held_out_interval_summary(runs_q) == [
        "current: 2 held-out figures, the real one inside the members' p5 - p95 for 1; "
        "outside: bad debt (e/bd), p50 0.36x"]
    assert held_out_interval_summary(runs_q, conditioned={"bd"}) == [
        "current: 1 held-out figure, the real one inside the members' p5 - p95 for 1"]
