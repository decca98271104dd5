"""Ensembles: seeded member draws, members as sweep cells, intervals, bad [ensemble] fields."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from backtest.errors import ConfigError
from backtest.report.proposal import load_proposal, sweep_config
from backtest.results import Catalog
from backtest.results.intervals import sweep_intervals
from backtest.sweep import load_sweep_config, run_sweep
from backtest.sweep.ensemble import (
    INPUTS,
    Draw,
    EnsembleSpec,
    apply_member,
    book_seed,
    default_ranges,
    input_table,
    member_values,
    quantile,
)
from tests.sweep_world import cells, make_world, steps

ENSEMBLE_SWEEP = """
name = "{name}"
policies = ["hard"]
workers = 1

[ensemble]
members = {members}
seed = 11
{extra}

[[events]]
event = "synthetic-crash"
interval = "5m"
accounts = 300

[[events]]
event = "synthetic-late"
interval = "5m"
accounts = 300

[grid]
"perp.liquidation_penalty" = [0.005, 0.02]

[run.market]
impact_model = "sqrt"
cascade = true
depth_usd = 5_000_000

[run.insurance_fund]
initial_balance_usd = 10000.0
"""


def write_sweep(path: Path, name: str = "ens", members: int = 3, extra: str = "") -> Path:
    path.write_text(ENSEMBLE_SWEEP.format(name=name, members=members, extra=extra))
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("ensemble")
    w = make_world(root)
    w["sweep"] = write_sweep(root / "ens.toml")
    w["runs"] = root / "runs"
    w["outcome"] = run_sweep(w["sweep"], runs=w["runs"], store=w["store"], events=w["events"],
                             show_progress=False)
    return w


# ---------------------------------------------------------------- draws


def test_member_draws_depend_only_on_seed_and_member():
    assert quantile(5, 2, "depth_factor") == quantile(5, 2, "depth_factor")
    assert quantile(5, 2, "depth_factor") != quantile(5, 3, "depth_factor")
    assert quantile(5, 2, "depth_factor") != quantile(6, 2, "depth_factor")
    assert quantile(5, 2, "depth_factor") != quantile(5, 2, "permanent_fraction")
    assert book_seed(5, 0) == book_seed(5, 0) != book_seed(5, 1)
    seeds = [book_seed(5, k) for k in range(200)]
    assert len(set(seeds)) == 200 and all(0 <= s < 2**31 for s in seeds)
    # member k's values do not depend on how many members there are
    from backtest.books.generate import BookParams
    from backtest.sweep.config import RunSections

    run = RunSections.model_validate({"market": {"impact_model": "sqrt", "cascade": True}})
    small = EnsembleSpec(members=3, seed=5)
    big = EnsembleSpec(members=50, seed=5)
    r_small = default_ranges(small, BookParams(), None, {}, run, "x", "BTC")
    r_big = default_ranges(big, BookParams(), None, {}, run, "x", "BTC")
    for k in range(3):
        assert member_values(small, k, r_small) == member_values(big, k, r_big)
    assert member_values(big, 0, r_big) != member_values(big, 1, r_big)
    # every default input of a perp book under cascade impact varies, within its range
    # (ltv_beta_a: only from a loan-state fit with two readings; the cure's size and where a
    # candle fills: when given)
    assert set(r_big.draws) == set(INPUTS) - {"oracle_lag_minutes", "keeper_capital_usd",
                                              "ltv_beta_a", "response_target_health",
                                              "fill_at_liquidation_price"}
    for k in range(50):
        v = member_values(big, k, r_big)
        for name, d in r_big.draws.items():
            assert d.low <= v[name] <= d.high


def test_draw_distributions():
    assert Draw(low=1.0, high=3.0).ppf(0.5) == 2.0
    assert Draw(distribution="loguniform", low=0.5, high=2.0).ppf(0.5) == pytest.approx(1.0)
    assert Draw(distribution="choice", values=[0.0, 1.0, 5.0]).ppf(0.99) == 5.0
    assert Draw(distribution="choice", values=[0.0, 1.0, 5.0]).ppf(0.0) == 0.0


def test_calibration_gives_the_leave_one_out_range(tmp_path):
    from backtest.books.generate import BookParams
    from backtest.sweep.config import RunSections

    cal = tmp_path / "fitted.toml"
    cal.write_text("""
[book]
leverage_scale = 0.14
[response]
enabled = true
share = 0.9
delay_minutes = 6.5
[fit]
fitted_leverage_scale = 0.14
fitted_share = 0.9
[[leave_one_out]]
event = "a"
fitted_leverage_scale = 0.12
fitted_share = 0.97
fitted_delay_minutes = 6.1
[[leave_one_out]]
event = "b"
fitted_leverage_scale = 0.25
fitted_share = 0.95
fitted_delay_minutes = 11.9
""")
    meta = {"calibration": str(cal), "response": '{"enabled": true, "share": 0.9, '
            '"delay_minutes": 6.5}'}
    r = default_ranges(EnsembleSpec(members=2, fitted_parameters="independent"),
                       BookParams(leverage_scale=0.14), cal, meta, RunSections(), "x", "BTC")
    assert r.joint is None
    # the full fit +- sqrt(3) x the jackknife SE of two refits (SE = half their distance),
    # widened to take in every refit; the delay has no full fit: around the refits' mean
    jack = 3 ** 0.5 / 2
    assert (r.draws["leverage_scale"].low, r.draws["leverage_scale"].high) == pytest.approx(
        (0.14 - jack * 0.13, 0.14 + jack * 0.13))
    assert (r.draws["response_share"].low, r.draws["response_share"].high) == pytest.approx(
        (0.9 - jack * 0.02, 0.97))
    assert (r.draws["response_delay_minutes"].low,
            r.draws["response_delay_minutes"].high) == pytest.approx((9 - jack * 5.8,
                                                                      9 + jack * 5.8))
    assert r.sources["leverage_scale"].startswith("calibration")
    # no impact model: depth and permanent share are not drawn; an explicit range wins
    assert "depth_factor" not in r.draws and "permanent_fraction" not in r.draws
    r2 = default_ranges(EnsembleSpec(members=2, leverage_scale={"low": 1, "high": 2},
                                     response_share=False, fitted_parameters="independent"),
                        BookParams(), cal, meta, RunSections(), "x", "BTC")
    assert r2.draws["leverage_scale"].high == 2 and r2.sources["leverage_scale"] == "ensemble"
    assert "response_share" not in r2.draws
    # liquidators' capital: no default range; given, it is drawn and set per member
    assert "keeper_capital_usd" not in r.draws
    spec = EnsembleSpec(members=4, keeper_capital_usd={"distribution": "choice",
                                                       "values": [3.5e6, 1e9]})
    r3 = default_ranges(spec, BookParams(), cal, meta, RunSections(), "x", "BTC")
    values = [member_values(spec, k, r3)["keeper_capital_usd"] for k in range(40)]
    assert set(values) == {3.5e6, 1e9}
    _, run = apply_member({"keeper_capital_usd": 3.5e6, "keeper_latency_minutes": 2.0},
                          BookParams(), RunSections(), r3)
    assert (run.keepers.capital_usd_per_step, run.keepers.latency_minutes) == (3.5e6, 2.0)


def test_where_a_candle_fills_is_drawn_only_when_given():
    """``fill_at_liquidation_price``: the two ends of a candle's fill, drawn per member only
    where the ensemble gives it; 1 (or 0.5 and above) fills at the liquidation price."""
    from backtest.books.generate import BookParams
    from backtest.sweep.config import RunSections

    none = default_ranges(EnsembleSpec(members=2), BookParams(), None, {}, RunSections(), "x",
                          "BTC")
    assert "fill_at_liquidation_price" not in none.draws
    spec = EnsembleSpec(members=40, fill_at_liquidation_price={"distribution": "choice",
                                                              "values": [0, 1]})
    r = default_ranges(spec, BookParams(), None, {}, RunSections(), "x", "BTC")
    values = [member_values(spec, k, r)["fill_at_liquidation_price"] for k in range(40)]
    assert set(values) == {0.0, 1.0}
    fills = {v: apply_member({"fill_at_liquidation_price": v}, BookParams(), RunSections(),
                             r)[1].execution.fill_price for v in (0.0, 0.49, 0.5, 1.0)}
    assert fills == {0.0: "trigger", 0.49: "trigger", 0.5: "liquidation_price",
                     1.0: "liquidation_price"}
    assert RunSections().execution.fill_price == "trigger"  # the config's fill otherwise
    with pytest.raises(ValueError, match="fraction"):
        EnsembleSpec(members=2, fill_at_liquidation_price={"low": 0, "high": 2})


def test_a_loan_state_fit_gives_its_readings_as_the_ltv_range(tmp_path):
    """A loan-state fit solved at two readings of the protocol's state draws ``ltv_beta_a``
    between them; one reading, a perp book or ``false`` draws nothing."""
    from backtest.books.generate import BookParams
    from backtest.sweep.config import RunSections

    cal = tmp_path / "fitted.toml"
    cal.write_text("[book]\nloan_fraction = 1.0\nltv_beta_a = 2.0\n[fit]\nkind = \"loan-state\"\n"
                   "fitted_ltv_beta_a = 2.0\nfitted_ltv_beta_a_low_end = 1.7\n"
                   "fitted_ltv_beta_a_high_end = 2.3\n")
    meta = {"calibration": str(cal)}
    loans = BookParams(loan_fraction=1.0, ltv_beta_a=2.0)
    r = default_ranges(EnsembleSpec(members=3), loans, cal, meta, RunSections(), "x", "ETH")
    assert (r.draws["ltv_beta_a"].low, r.draws["ltv_beta_a"].high) == (1.7, 2.3)
    assert r.sources["ltv_beta_a"].startswith("calibration")
    spec = EnsembleSpec(members=3)
    drawn = [member_values(spec, k, r)["ltv_beta_a"] for k in range(3)]
    assert all(1.7 <= v < 2.3 for v in drawn) and len(set(drawn)) == 3
    book, _ = apply_member({"ltv_beta_a": drawn[0]}, loans, RunSections(), r)
    assert book.ltv_beta_a == drawn[0]
    held = default_ranges(EnsembleSpec(members=3, ltv_beta_a=False), loans, cal, meta,
                          RunSections(), "x", "ETH")
    perps = default_ranges(EnsembleSpec(members=3), BookParams(loan_fraction=0.0), cal, meta,
                           RunSections(), "x", "ETH")
    cal.write_text(cal.read_text().replace("2.3", "1.7"))
    one = default_ranges(EnsembleSpec(members=3), loans, cal, meta, RunSections(), "x", "ETH")
    assert all("ltv_beta_a" not in x.draws for x in (held, perps, one))


def test_the_cure_size_is_drawn_only_when_given_and_must_exceed_the_warning():
    """``response_target_health`` has no default range; given, each member's response restores
    its drawn health; a drawn target at or below the warning level is refused."""
    from pydantic import ValidationError

    from backtest.books.generate import BookParams
    from backtest.engine.config import ResponseConfig
    from backtest.sweep.config import RunSections

    run = RunSections(response=ResponseConfig(enabled=True, loan_cure="top_up"))
    loans = BookParams(loan_fraction=1.0)
    r = default_ranges(EnsembleSpec(members=3), loans, None, {}, run, "x", "ETH")
    assert "response_target_health" not in r.draws
    spec = EnsembleSpec(members=3, response_target_health={"low": 1.2, "high": 3.0})
    r = default_ranges(spec, loans, None, {}, run, "x", "ETH")
    drawn = member_values(spec, 1, r)["response_target_health"]
    assert 1.2 <= drawn < 3.0
    _, member = apply_member({"response_target_health": drawn}, loans, run, r)
    assert member.response.target_health == drawn
    assert member.response.loan_cure == "top_up"  # the rest of the section is kept
    with pytest.raises(ValidationError, match="target_health must be above warning_health"):
        apply_member({"response_target_health": 1.05}, loans, run, r)
    perps = default_ranges(spec, BookParams(loan_fraction=0.0), None, {}, run, "x", "ETH")
    assert "response_target_health" not in perps.draws  # a loan level cannot matter to perps


# ---------------------------------------------------------------- members as cells


def test_members_are_cells_with_inputs(world):
    out = world["outcome"]
    assert out.total == 2 * 2 * 3 and out.computed == 12
    s = cells(out.sweep_dir)
    assert sorted(set(s["member"])) == [0, 1, 2]
    inputs = [json.loads(x) for x in s["member_inputs"]]
    assert all(x["book_seed"] == r["seed"] for x, r in zip(inputs, s.iter_rows(named=True),
                                                           strict=True))
    # one member: the same draw for every event and parameter set; members differ
    by_member = {}
    for m, x in zip(s["member"], inputs, strict=True):
        by_member.setdefault(m, []).append(x)
    for m, xs in by_member.items():
        assert all(x == xs[0] for x in xs), m
    assert by_member[0][0] != by_member[1][0]
    assert set(by_member[0][0]) >= {"book_seed", "depth_factor", "permanent_fraction",
                                    "keeper_latency_minutes", "response_share"}
    # members are different worlds: outcomes differ across members of one cell group
    g = s.filter((pl.col("event") == "synthetic-crash") & (pl.col("param_set") ==
                                                            s["param_set"][0]))
    assert g["liquidated_notional_usd"].n_unique() == 3
    manifest = json.loads((out.sweep_dir / "sweep.json").read_text())
    assert manifest["ensemble"]["members"] == 3
    assert manifest["ensemble"]["events"]["synthetic-crash"]["depth_factor"]["source"] \
        == "default"


def test_rerun_skips_members(world):
    again = run_sweep(world["sweep"], runs=world["runs"], store=world["store"],
                      events=world["events"], show_progress=False)
    assert again.skipped == 12 and again.computed == 0
    assert again.sweep_id == world["outcome"].sweep_id


def test_more_members_reuse_the_first(world, tmp_path):
    """Growing an ensemble keeps members 0..N-1: a resumed sweep runs only the new ones."""
    import shutil

    sdir = tmp_path / "grown"
    shutil.copytree(world["outcome"].sweep_dir, sdir)
    cfg = write_sweep(tmp_path / "grown.toml", members=4)
    out = run_sweep(cfg, runs=tmp_path / "runs", store=world["store"], events=world["events"],
                    output=sdir, show_progress=False)
    assert out.total == 16 and out.skipped == 12 and out.computed == 4


def test_intervals_view_and_file(world):
    out = world["outcome"]
    with Catalog(world["runs"]) as cat:
        iv = cat.query("SELECT * FROM sweep_intervals ORDER BY event, param_set, metric")
        raw = cat.query("SELECT event, param_set, bad_debt_usd, liquidated_notional_usd "
                        "FROM sweep_cells")
    assert iv.height > 0 and set(iv["members"]) <= {3}
    assert set(iv["event"]) == {"synthetic-crash", "synthetic-late"}
    row = iv.filter((pl.col("event") == "synthetic-crash") &
                    (pl.col("metric") == "liquidated_notional_usd")).row(0, named=True)
    vals = raw.filter((pl.col("event") == "synthetic-crash") &
                      (pl.col("param_set") == row["param_set"]))["liquidated_notional_usd"]
    for name, q in (("p5", 5), ("p50", 50), ("p95", 95)):
        assert row[name] == pytest.approx(np.percentile(vals.to_numpy(), q), rel=1e-12)
    assert row["p5"] <= row["p50"] <= row["p95"]
    table = pl.read_parquet(out.sweep_dir / "intervals.parquet")
    assert table.height == iv.height
    assert table.select("event", "param_set", "metric", "p50").sort(
        "event", "param_set", "metric").equals(
        iv.select("event", "param_set", "metric", "p50").sort("event", "param_set", "metric"))


@pytest.mark.dask
def test_dask_local_cluster_is_bit_identical(world, tmp_path):
    distributed = pytest.importorskip("distributed", reason="liqbt[dask] not installed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        out = run_sweep(world["sweep"], runs=tmp_path / "runs", store=world["store"],
                        events=world["events"], scheduler=cluster.scheduler_address,
                        output=tmp_path / "dask", show_progress=False)
    assert out.computed == 12
    assert cells(out.sweep_dir).equals(cells(world["outcome"].sweep_dir))
    assert steps(out.sweep_dir).equals(steps(world["outcome"].sweep_dir))


# ---------------------------------------------------------------- intervals on crafted cells


def test_intervals_on_crafted_cells(tmp_path):
    rng = np.random.default_rng(3)
    files = []
    values = {}
    for ps in ("current", "proposed"):
        values[ps] = rng.normal(1e6, 3e5, size=11)
        for k, v in enumerate(values[ps]):
            f = tmp_path / f"{ps}-{k}.parquet"
            pl.DataFrame({"cell_id": [f"{ps}{k}"], "event": ["e"], "policy": ["p"],
                          "param_set": [ps], "stress": ["history"], "member": [k],
                          "bad_debt_usd": [v], "accounts_liquidated": [k]}).write_parquet(f)
            files.append(f)
    # a cell without an ensemble is left out
    f = tmp_path / "plain.parquet"
    pl.DataFrame({"cell_id": ["x"], "event": ["e"], "policy": ["p"], "param_set": ["current"],
                  "stress": ["history"], "member": [-1], "bad_debt_usd": [1e12],
                  "accounts_liquidated": [0]}).write_parquet(f)
    files.append(f)
    iv = sweep_intervals(files)
    assert set(iv["metric"]) == {"bad_debt_usd", "accounts_liquidated"}
    for ps in ("current", "proposed"):
        row = iv.filter((pl.col("param_set") == ps) &
                        (pl.col("metric") == "bad_debt_usd")).row(0, named=True)
        assert row["members"] == 11
        for name, q in (("p5", 5), ("p50", 50), ("p95", 95)):
            assert row[name] == pytest.approx(np.percentile(values[ps], q), rel=1e-12)
        assert row["max"] == pytest.approx(values[ps].max())
    row = iv.filter((pl.col("param_set") == "current") &
                    (pl.col("metric") == "accounts_liquidated")).row(0, named=True)
    assert (row["p5"], row["p50"], row["p95"]) == (0.5, 5.0, 9.5)
    assert sweep_intervals([]).height == 0


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("extra, needle", [
    ("memebrs = 3", "ensemble.memebrs"),
    ("depth_factor = { low = 2.0, high = 1.0 }", "ensemble.depth_factor"),
    ("size_factor = { distribution = 'loguniform', low = 0.0, high = 2.0 }",
     "ensemble.size_factor"),
    ("response_share = { low = 0.2, high = 1.5 }", "response_share"),
    ("keeper_latency_minutes = { distribution = 'choice', values = [] }",
     "ensemble.keeper_latency_minutes"),
    ("oracle_lag_minutes = true", "ensemble.oracle_lag_minutes"),
    ("leverage_scale = { low = 1, high = 2, spread = 3 }", "ensemble.leverage_scale"),
])
def test_bad_ensemble_fields_are_named(tmp_path, extra, needle):
    path = write_sweep(tmp_path / "bad.toml", extra=extra)
    with pytest.raises(ConfigError) as err:
        load_sweep_config(path)
    assert needle in str(err.value) and "bad.toml" in str(err.value)


def test_bad_member_count_and_seeds_are_named(tmp_path):
    path = write_sweep(tmp_path / "zero.toml", members=0)
    with pytest.raises(ConfigError, match="ensemble.members"):
        load_sweep_config(path)
    path = tmp_path / "seeds.toml"
    path.write_text("seeds = [1, 2]\n" + write_sweep(tmp_path / "x.toml").read_text())
    with pytest.raises(ConfigError, match="field 'seeds'"):
        load_sweep_config(path)


def test_proposal_takes_an_ensemble(tmp_path):
    text = Path("configs/proposals/aave-close-factor-bonus.toml").read_text()
    assert "[ensemble]" in text
    prop = load_proposal("configs/proposals/aave-close-factor-bonus.toml")
    cfg = sweep_config(prop, "configs/proposals/aave-close-factor-bonus.toml")
    assert cfg.ensemble is not None and cfg.ensemble.members >= 30
    bad = tmp_path / "p.toml"
    bad.write_text(text.replace("[ensemble]", "[ensemble]\nmembrs = 2", 1))
    with pytest.raises(ConfigError, match="ensemble.membrs"):
        load_proposal(bad)


def test_calibrated_files_with_numpy_values_stay_valid_toml(tmp_path):
    """A fit's numpy floats are written as TOML numbers (the leave-one-out ranges read back)."""
    from backtest.books.generate import BookParams
    from backtest.calibration.fitted import write_calibrated
    from backtest.engine.config import ResponseConfig
    from backtest.sweep.ensemble import _jackknife_range

    path = write_calibrated(tmp_path / "f.toml", BookParams(leverage_scale=0.2),
                            ResponseConfig(), {"objective": np.float64(1.5)},
                            [{"event": "a", "ratio": np.float64(0.7)}],
                            [{"event": "a", "fitted_leverage_scale": np.float64(0.1)},
                             {"event": "b", "fitted_leverage_scale": np.float64(0.3)}], "h")
    d = _jackknife_range(path, "leverage_scale")
    # no full fit recorded: around the refits' mean 0.2, jackknife SE sqrt(1/2 * 0.02) = 0.1
    assert (d.low, d.high) == pytest.approx((0.2 - 3 ** 0.5 * 0.1, 0.2 + 3 ** 0.5 * 0.1))
    assert _jackknife_range(Path("configs/calibration/perps-fitted.toml"), "leverage_scale") \
        is not None


def test_refit_ranges_carry_the_jackknife_standard_error(tmp_path):
    """The drawn range is the full fit +- sqrt(3) x the jackknife standard error of the
    leave-one-out refits (a uniform draw with that standard deviation): sqrt(n - 1) times
    wider than the refits' own spread, never narrower than min..max, clipped to [0, 1] for a
    fraction."""
    import math
    import statistics

    from backtest.books.generate import BookParams
    from backtest.calibration.fitted import write_calibrated
    from backtest.engine.config import ResponseConfig
    from backtest.sweep.ensemble import _jackknife_range

    refits = [0.90, 0.93, 0.95, 0.96, 0.99]
    rows = [{"event": f"e{i}", "fitted_share": v} for i, v in enumerate(refits)]
    path = write_calibrated(tmp_path / "f.toml", BookParams(), ResponseConfig(),
                            {"fitted_share": 0.95}, [], rows, "h")
    n = len(refits)
    se = math.sqrt((n - 1) / n * sum((v - statistics.mean(refits)) ** 2 for v in refits))
    assert se == pytest.approx(math.sqrt(n - 1) * statistics.pstdev(refits))
    d = _jackknife_range(path, "share")
    assert (d.low, d.high) == pytest.approx((0.95 - math.sqrt(3) * se, 0.95 + math.sqrt(3) * se))
    assert d.low < min(refits) and d.high > max(refits)
    clipped = _jackknife_range(path, "share", fraction=True)
    assert clipped.high == 1.0 and clipped.low == pytest.approx(d.low)


def _refit_file(tmp_path, refits: dict[str, list[float]], full: dict[str, float]):
    """A calibrated perp file with ``full`` fitted and one refit per column of ``refits``."""
    from backtest.books.generate import BookParams
    from backtest.calibration.fitted import write_calibrated
    from backtest.engine.config import ResponseConfig

    n = len(next(iter(refits.values())))
    rows = [{"event": f"e{i}", **{f"fitted_{k}": v[i] for k, v in refits.items()}}
            for i in range(n)]
    fit = {"fitted": list(full), **{f"fitted_{k}": v for k, v in full.items()}}
    return write_calibrated(tmp_path / "f.toml", BookParams(leverage_scale=full["leverage_scale"]),
                            ResponseConfig(enabled=True, share=full["share"]), fit, [], rows, "h")


def test_joint_draw_has_the_jackknife_covariance_of_the_refits(tmp_path):
    """Drawn jointly, the fitted parameters scatter around the full fit with the jackknife
    covariance of the refits (in unbounded coordinates: log for a positive field, logit for
    a fraction): each about its standard error, the pair their correlation (here opposed
    refits stay opposed, which independent draws would break), every value valid."""
    import math

    from backtest.books.generate import BookParams
    from backtest.sweep.config import RunSections

    lev, share = [0.10, 0.12, 0.14, 0.16], [0.95, 0.93, 0.91, 0.89]
    path = _refit_file(tmp_path, {"leverage_scale": lev, "share": share},
                       {"leverage_scale": 0.13, "share": 0.92})
    meta = {"calibration": str(path), "response": '{"enabled": true, "share": 0.92}'}
    spec = EnsembleSpec(members=2000, seed=3)
    r = default_ranges(spec, BookParams(leverage_scale=0.13), path, meta, RunSections(), "x",
                       "BTC")
    assert r.joint is not None and r.joint.names == ("leverage_scale", "response_share")
    assert r.joint.coordinates == ("log", "logit")
    assert "leverage_scale" not in r.draws and "response_share" not in r.draws
    n = 4
    se_lev = math.sqrt((n - 1) / n * sum((v - 0.13) ** 2 for v in lev))
    assert r.joint.standard_errors[0] == pytest.approx(se_lev)
    assert r.joint.correlation("leverage_scale", "share") == pytest.approx(-1.0, abs=0.01)
    draws = np.array([[member_values(spec, k, r)[name] for name in r.joint.names]
                      for k in range(spec.members)])
    assert np.median(draws, axis=0) == pytest.approx([0.13, 0.92], rel=0.02)
    assert draws.std(axis=0) == pytest.approx(r.joint.standard_errors, rel=0.15)
    assert draws.min() > 0.0 and draws[:, 1].max() < 1.0
    ranks = draws.argsort(axis=0).argsort(axis=0)
    assert np.corrcoef(ranks.T)[0, 1] < -0.99
    table = input_table(r)
    assert table["leverage_scale"]["range"].startswith("0.13 +- ")
    assert "jackknife covariance" in table["response_share"]["source"]
    # a member's values reach the book and the response
    values = member_values(spec, 0, r)
    params, run = apply_member(values, BookParams(leverage_scale=0.13), RunSections(), r)
    assert params.leverage_scale == values["leverage_scale"]
    assert run.response.share == values["response_share"]


def test_joint_draw_leaves_out_what_the_ensemble_sets_and_clips_to_bounds(tmp_path):
    """An input given a range (or false) leaves the joint draw, which keeps the others'
    marginal; a value past its field's bound is clipped to it; without refits nothing is
    drawn jointly."""
    from backtest.books.generate import BookParams
    from backtest.sweep.config import RunSections
    from backtest.sweep.joint import field_bounds, joint_draw

    path = _refit_file(tmp_path, {"leverage_scale": [0.1, 0.2], "share": [0.5, 1.0]},
                       {"leverage_scale": 0.15, "share": 0.99})
    meta = {"calibration": str(path), "response": '{"enabled": true, "share": 0.99}'}
    spec = EnsembleSpec(members=50, leverage_scale={"low": 1, "high": 2})
    r = default_ranges(spec, BookParams(), path, meta, RunSections(), "x", "BTC")
    assert r.joint.fields == ("share",) and r.sources["leverage_scale"] == "ensemble"
    # a refit on the bound (share 1.0): drawn on its own scale, clipped at the bound
    assert r.joint.coordinates == ("linear",)
    shares = [member_values(spec, k, r)["response_share"] for k in range(spec.members)]
    assert max(shares) == 1.0 and min(shares) < 0.99
    off = default_ranges(EnsembleSpec(members=2, leverage_scale=False, response_share=False),
                         BookParams(), path, meta, RunSections(), "x", "BTC")
    assert off.joint is None and "leverage_scale" not in off.draws
    # the response switched off: its fields are not drawn
    no_resp = default_ranges(EnsembleSpec(members=2), BookParams(), path, meta,
                             RunSections(response={"enabled": False}), "x", "BTC")
    assert no_resp.joint.fields == ("leverage_scale",)
    assert field_bounds("share") == (0.0, 1.0) and field_bounds("leverage_scale")[0] > 0.0
    assert joint_draw(None, lambda f: True) is None


def test_a_lending_fit_draws_its_shape_its_deposits_and_no_response_it_never_had(tmp_path):
    """A loans-only book fitted on its loan-to-value shape, sized to a reserve's deposits and
    fitted without a borrower response (Aave v2's WETH reserve): members draw the shape's two
    exponents jointly, the size over the deposits' range, and no response; the perp book's
    fields stay out."""
    from backtest.books.generate import BookParams
    from backtest.calibration.fitted import write_calibrated
    from backtest.engine.config import ResponseConfig
    from backtest.sweep.config import RunSections

    rows = [{"event": "a", "fitted_ltv_beta_a": 0.05, "fitted_ltv_beta_b": 0.6},
            {"event": "b", "fitted_ltv_beta_a": 0.4, "fitted_ltv_beta_b": 1.9}]
    fit = {"fitted": ["ltv_beta_a", "ltv_beta_b"], "fitted_ltv_beta_a": 0.06,
           "fitted_ltv_beta_b": 0.7}
    loans = BookParams(loan_fraction=1.0, ltv_min=0.0, ltv_beta_a=0.06, ltv_beta_b=0.7,
                       size_basis="collateral", represents="aave-v2", size_usd=3.0e9)
    path = write_calibrated(tmp_path / "f.toml", loans, ResponseConfig(enabled=False), fit,
                            [], rows, "h")
    meta = {"calibration": str(path),
            "response": ResponseConfig(enabled=False).model_dump_json()}
    spec = EnsembleSpec(members=50, seed=3)
    r = default_ranges(spec, loans, path, meta, RunSections(), "may-2021", "ETH")
    assert r.joint is not None and r.joint.fields == ("ltv_beta_a", "ltv_beta_b")
    assert r.response is None and "response_share" not in r.draws
    size = r.draws["size_factor"]  # the deposits' range, $2.910-3.125B, around its middle
    assert r.sources["size_factor"] == "validation targets"
    assert (size.low, size.high) == (pytest.approx((2.910 / 3.125) ** 0.5),
                                     pytest.approx((3.125 / 2.910) ** 0.5))
    values = member_values(spec, 1, r)
    params, run = apply_member(values, loans, RunSections(), r)
    assert params.ltv_beta_b == values["ltv_beta_b"] and params.ltv_beta_b != 0.7
    assert run.response.enabled is not True
    # the same file read for a perp book: the loan shape does not matter there
    perps = default_ranges(spec, BookParams(loan_fraction=0.0), path, meta, RunSections(),
                           "may-2021", "ETH")
    assert perps.joint is None


def test_a_calibrated_file_holds_what_its_fit_held(tmp_path):
    """A book field the calibration did not fit (the perp fit's ``low_leverage_share``) is
    held at the file's value, said so in the input table; an uncalibrated book draws it
    around its value, and a range given in ``[ensemble]`` is drawn on either."""
    from backtest.books.generate import BookParams
    from backtest.sweep.config import RunSections

    path = _refit_file(tmp_path, {"leverage_scale": [0.1, 0.2], "share": [0.9, 0.95]},
                       {"leverage_scale": 0.15, "share": 0.92})
    meta = {"calibration": str(path)}
    params = BookParams(leverage_scale=0.15, low_leverage_share=0.0)
    held = default_ranges(EnsembleSpec(members=2), params, path, meta, RunSections(), "x", "BTC")
    assert "low_leverage_share" not in held.draws
    assert "as the fit held it" in input_table(held)["low_leverage_share"]["source"]
    free = default_ranges(EnsembleSpec(members=2), params, None, {}, RunSections(), "x", "BTC")
    assert (free.draws["low_leverage_share"].low, free.draws["low_leverage_share"].high) == (
        0.0, 0.1)
    given = default_ranges(EnsembleSpec(members=2, low_leverage_share={"low": 0, "high": 0.2}),
                           params, path, meta, RunSections(), "x", "BTC")
    assert given.draws["low_leverage_share"].high == 0.2
    assert given.sources["low_leverage_share"] == "ensemble"


def test_cli_sweep_names_the_intervals(world, capsys):
    from backtest.cli import main

    code = main(["sweep", str(world["sweep"]), "--runs", str(world["runs"]), "--store",
                 str(world["store"]), "--events", str(world["events"]), "-q"])
    assert code == 0
    out = capsys.readouterr().out
    assert "12 cells (12 finished before" in out
    assert "ensemble of 3 members" in out and "intervals.parquet" in out


def test_example_ensemble_sweep_is_valid():
    cfg = load_sweep_config("configs/sweeps/crashes-ensemble.toml")
    assert cfg.ensemble is not None and cfg.ensemble.members == 20
    assert all(e.book_params is not None for e in cfg.events)


@pytest.mark.parametrize("path", sorted(Path("configs/proposals").glob("*.toml")),
                         ids=lambda p: p.stem)
def test_every_shipped_proposal_loads_as_a_sweep(path):
    prop = load_proposal(path)
    cfg = sweep_config(prop, path)
    assert cfg.ensemble is not None and cfg.ensemble.members >= 5
    assert prop.proposed


def test_the_perp_example_runs_on_calibrated_books_without_impact():
    """Its books are the fitted perp books; its impact is left out (docs/market-impact.md)."""
    path = Path("configs/proposals/perp-maintenance-fee.toml")
    prop = load_proposal(path)
    assert {str(ev.book_params) for ev in prop.events} == {
        "configs/calibration/perps-fitted.toml"}
    cfg = sweep_config(prop, path)
    assert cfg.run.market.impact_model == "none"


def test_cells_give_the_insurance_funds_figures(world):
    """An ensemble's members are held against a fund's draw and balances (and the loans' debt
    after the window) as a run is: cells keep the fund's draws and fees per step, so each
    member's balance after the window is its balance before, plus the fees, less the draws, and
    the ensemble's figure is their mean."""
    from datetime import datetime

    from backtest.calibration.sweep_sources import SweepTables

    sid = world["outcome"].sweep_id
    with Catalog(world["runs"]) as cat:
        per_step = cat.query(f"""
            SELECT c.param_set, c.seed, st.step, st.insurance_fund_usd, st.insurance_draw_usd,
                   st.insurance_fees_usd, st.loan_debt_usd
            FROM sweep_steps st JOIN sweep_cells c USING (sweep_id, cell_id)
            WHERE st.sweep_id = '{sid}' AND c.event = 'synthetic-crash'
              AND c.stress_kind = 'none' ORDER BY c.param_set, c.seed, st.step""")
        labels = sorted(set(per_step["param_set"]))
        tables = SweepTables(cat, sid, "synthetic-crash", labels, None)
        figs = tables.figures(datetime(2000, 1, 1), datetime(2100, 1, 1), True, "perp")
    cells = per_step.group_by("param_set", "seed").agg(
        drawn=pl.col("insurance_draw_usd").sum(), fees=pl.col("insurance_fees_usd").sum(),
        before=(pl.col("insurance_fund_usd") - pl.col("insurance_fees_usd")
                + pl.col("insurance_draw_usd")).first(),
        after=pl.col("insurance_fund_usd").last(), debt=pl.col("loan_debt_usd").last())
    assert cells["drawn"].sum() > 0  # the crash draws on the fund: the figures are not all 0
    assert cells["before"].to_list() == pytest.approx([10_000.0] * cells.height)
    assert (cells["after"] - cells["before"] - cells["fees"] + cells["drawn"]).abs().max() < 1e-6
    for label in labels:
        mine = cells.filter(pl.col("param_set") == label)
        assert figs[label]["insurance_fund_drawn_usd"] == pytest.approx(mine["drawn"].mean())
        assert figs[label]["insurance_fund_before_usd"] == pytest.approx(10_000.0)
        assert figs[label]["insurance_fund_after_usd"] == pytest.approx(mine["after"].mean())
        # and the loans' debt after the window (the world's book holds loans too)
        assert figs[label]["borrowed_after_usd"] == pytest.approx(mine["debt"].mean())
        assert figs[label]["borrowed_after_usd"] > 0
