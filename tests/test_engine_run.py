"""End to end on a synthetic crash: import, book, run, catalog, query, and bad input."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numba
import numpy as np
import polars as pl
import pytest

from backtest.books import generate_book, read_book, write_book
from backtest.books.schema import Book
from backtest.cli import main
from backtest.engine.run import execute
from backtest.provenance import engine_version
from backtest.results import Catalog
from backtest.tapes import TapeStore
from tests.conftest import Synth

START = datetime(2021, 5, 19, tzinfo=UTC)
INTERVAL_S = 300
N_ACCOUNTS = 20_000


def crash_rows(days: int = 10, gap_at: int | None = None) -> list[list[float]]:
    """Random-walk 5-minute candles for ``days`` days ending at START + 1 day, -25% on the last."""
    n = days * 86400 // INTERVAL_S
    t0 = int((START - timedelta(days=days - 1)).timestamp() * 1000)
    rows = Synth.rows(n=n, start_ms=t0, interval_s=INTERVAL_S, seed=3, price=40_000.0)
    crash_start = n - 288
    out, factor = [], 1.0
    for i, (ts, o, h, lo, c, v) in enumerate(rows):
        if i >= crash_start:
            step = 0.999 if i < crash_start + 200 else 1.0007
            o, h, lo, c = (x * factor for x in (o, h, lo, c))
            factor *= step
            h, lo, c = h * step, lo * step * 0.995, c * step
            h = max(h, o, c)
            lo = min(lo, o, c)
        out.append([ts, o, h, lo, c, v])
    if gap_at is not None:
        del out[gap_at:gap_at + 3]
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    rows = crash_rows(gap_at=-100)
    src = Synth.ft_json(root / "src" / "BTC_USDT-5m.json", rows)
    store = TapeStore(root / "tapes")
    store.import_file(src, venue="binance")
    tape = store.resolve("BTC/USDT", START - timedelta(days=8), START + timedelta(days=1))
    a = tape.arrays()
    book = generate_book(N_ACCOUNTS, a["timestamp"], a["close"], a["low"], a["high"], START,
                         seed=11, meta={"symbol": "BTC/USDT"})
    book_path = write_book(book, root / "book.parquet")
    config = root / "run.toml"
    config.write_text(f"""
name = "synthetic-crash"
description = "synthetic"
start = 2021-05-19T00:00:00Z
end = 2021-05-20T00:00:00Z
symbol = "BTC/USDT"
book = "{book_path}"
policies = ["hard", "partial", "close-factor"]
[tape]
venue = "binance"
interval = "5m"
[insurance_fund]
initial_balance_usd = 1000.0
""")
    run_id, run_dir = execute(config, runs=root / "runs", store=root / "tapes",
                              show_progress=False)
    return {"root": root, "config": config, "book": book_path, "run_id": run_id,
            "run_dir": run_dir, "store": root / "tapes"}


def test_run_writes_every_table_and_a_manifest(world):
    run_dir = world["run_dir"]
    for name in ("prices", "steps", "accounts", "liquidations", "policies"):
        assert (run_dir / f"{name}.parquet").exists(), name
    m = json.loads((run_dir / "manifest.json").read_text())
    assert m["run_id"] == world["run_id"]
    assert m["window"]["steps"] == 288 - 3  # three candles removed: a gap, not filled
    assert len(m["window"]["gaps"]) == 1 and m["window"]["gaps"][0]["missing_steps"] == 3
    assert len(m["book"]["sha256"]) == 64 and len(m["tape"]["sha256"]) == 64
    assert [p["name"] for p in m["policies"]] == ["hard", "partial", "close-factor"]
    assert all(len(p["file_sha256"]) == 64 for p in m["policies"])
    assert m["versions"]["numba"] != "unknown"
    assert m["code"] == engine_version()  # the digest of the code that made the result
    assert set(m["timings"]["per_policy_seconds"]) == {"hard", "partial", "close-factor"}
    assert m["timings"]["threads"] == numba.get_num_threads() >= 1
    assert m["timings"]["threading_layer"] == numba.threading_layer()  # the layer that ran
    assert m["runtime"]["peak_rss_mb"] > 0
    assert not [p for p in run_dir.parent.iterdir() if p.name.startswith(".")]


def test_catalog_answers_sql_across_runs(world):
    with Catalog(world["root"] / "runs") as cat:
        df = cat.query("SELECT policy, count(*) AS n FROM accounts GROUP BY policy ORDER BY 1")
        assert df["n"].to_list() == [N_ACCOUNTS] * 3
        runs = cat.query("SELECT run_id, accounts FROM runs")
        assert runs["run_id"].to_list() == [world["run_id"]]
        summary = cat.summary(world["run_id"])
    assert summary["policy"].to_list() == ["hard", "partial", "close-factor"]
    assert summary.filter(pl.col("policy") == "hard")["equity_vs_hard"][0] == 0.0
    assert summary["accounts_liquidated"].min() > 0


def test_outputs_conserve_money(world):
    """Final equity = equity held to the end + liquidation trades - fees + bad debt written off
    - the socialised loss charged to the account; those charges sum to the steps' charged part."""
    run_dir = world["run_dir"]
    acc = pl.read_parquet(run_dir / "accounts.parquet")
    liq = pl.read_parquet(run_dir / "liquidations.parquet")
    prices = pl.read_parquet(run_dir / "prices.parquet")
    p0, p1 = prices["open"][0], prices["close"][-1]
    steps = pl.read_parquet(run_dir / "steps.parquet")
    for policy in ("hard", "partial", "close-factor"):
        a = acc.filter(pl.col("policy") == policy).sort("account_id")
        lq = liq.filter(pl.col("policy") == policy)
        per = lq.group_by("account_id").agg(
            closed=pl.col("units_closed").sum(),
            trade=(pl.col("units_closed") * (pl.col("fill_price") - p1)).sum(),
            fees=(pl.col("keeper_fee_usd") + pl.col("insurance_fee_usd")).sum(),
            bad=pl.col("bad_debt_usd").sum(),
        )
        a = a.join(per, on="account_id", how="left").fill_null(0.0)
        units0 = a["final_units"] + a["closed"]
        held = a["initial_equity_usd"] + units0 * (p1 - p0)
        expected = held + a["trade"] - a["fees"] + a["bad"] - a["socialised_loss_usd"]
        scale = (a["initial_notional_usd"] + 1.0).to_numpy()
        np.testing.assert_allclose((a["final_equity_usd"] / scale).to_numpy(),
                                   (expected / scale).to_numpy(), atol=1e-9)
        s = steps.filter(pl.col("policy") == policy)
        total_bad = lq["bad_debt_usd"].sum()
        assert s["bad_debt_usd"].sum() == pytest.approx(total_bad, rel=1e-9, abs=1e-6)
        assert s["insurance_draw_usd"].sum() + s["socialised_loss_usd"].sum() == pytest.approx(
            total_bad, rel=1e-9, abs=1e-6)
        fund_end = 1000.0 + s["insurance_fees_usd"].sum() - s["insurance_draw_usd"].sum()
        assert s["insurance_fund_usd"][-1] == pytest.approx(fund_end, rel=1e-9, abs=1e-6)
        assert s["insurance_fund_usd"].min() >= -1e-6
        assert a["socialised_loss_usd"].sum() == pytest.approx(
            s["socialised_loss_charged_usd"].sum(), rel=1e-9, abs=1e-6)
        assert (s["socialised_loss_charged_usd"] + s["socialised_loss_outside_usd"]
                - s["socialised_loss_usd"]).abs().max() <= 1e-6
        equity_end = a["final_equity_usd"].sum()
        assert s["user_equity_usd"][-1] == pytest.approx(equity_end, rel=1e-9)


def test_same_inputs_give_identical_results(world, tmp_path):
    run_id, run_dir = execute(world["config"], runs=tmp_path, store=world["store"],
                              show_progress=False)
    for name in ("steps", "accounts", "liquidations"):
        a = pl.read_parquet(world["run_dir"] / f"{name}.parquet").drop("run_id")
        b = pl.read_parquet(run_dir / f"{name}.parquet").drop("run_id")
        assert a.equals(b), name


def test_cli_run_and_query(world, tmp_path, capsys):
    runs = tmp_path / "runs"
    code = main(["run", str(world["config"]), "--runs", str(runs), "--store",
                 str(world["store"]), "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    assert "Bad debt" in out and "accounts x steps per second" in out
    code = main(["query", "SELECT count(DISTINCT policy) AS n FROM steps", "--runs", str(runs),
                 "--format", "csv"])
    assert code == 0
    assert capsys.readouterr().out.strip().splitlines() == ["n", "3"]


def _run_expect_error(world, tmp_path, capsys, config_text: str, *needles: str):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(config_text)
    runs = tmp_path / "runs"
    code = main(["run", str(cfg), "--runs", str(runs), "--store", str(world["store"]), "-q"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    assert not runs.exists() or not list(runs.iterdir())  # nothing, not even a catalog file
    return err


def _config(world, **over) -> str:
    fields = {"name": '"bad"', "start": "2021-05-19T00:00:00Z", "end": "2021-05-20T00:00:00Z",
              "symbol": '"BTC/USDT"', "book": f'"{world["book"]}"',
              "policies": '["hard", "partial"]'}
    fields.update(over)
    return "\n".join(f"{k} = {v}" for k, v in fields.items() if v is not None) + "\n"


def test_unknown_policy_is_named(world, tmp_path, capsys):
    _run_expect_error(world, tmp_path, capsys, _config(world, policies='["hard", "soft"]'),
                      "unknown policy 'soft'", "partial")


def test_misspelled_config_field_is_named(world, tmp_path, capsys):
    _run_expect_error(world, tmp_path, capsys, _config(world, polices='["hard"]'),
                      "bad.toml", "polices", "unknown field")


def test_misspelled_policy_field_is_named(world, tmp_path, capsys):
    policy = tmp_path / "typo.toml"
    text = (Path(__file__).parent.parent / "strategies" / "partial.toml").read_text()
    policy.write_text(text.replace("close_factor", "close_facter"))
    _run_expect_error(world, tmp_path, capsys, _config(world, policies=f'["{policy}"]'),
                      "typo.toml", "partial.close_facter")


@pytest.mark.parametrize(("column", "value", "needle"), [
    ("size", -1.0, "size must be a positive number"),
    ("leverage", -3.0, "leverage must be a number >= 1"),
])
def test_bad_book_is_named(world, tmp_path, capsys, column, value, needle):
    book = read_book(world["book"])
    frame = book.frame.with_columns(
        pl.when(pl.col("account_id") == 17).then(value).otherwise(pl.col(column)).alias(column))
    bad = tmp_path / "bad_book.parquet"
    frame.write_parquet(bad)
    err = _run_expect_error(world, tmp_path, capsys, _config(world, book=f'"{bad}"'),
                            "bad_book.parquet", needle, "account_id 17")
    assert "row 17" in err


def test_missing_tape_for_window_is_explained(world, tmp_path, capsys):
    _run_expect_error(world, tmp_path, capsys,
                      _config(world, start="2022-11-08T00:00:00Z", end="2022-11-11T00:00:00Z"),
                      "BTC")


def test_book_with_positions_opened_after_the_window_is_rejected(world, tmp_path, capsys):
    # positions opened inside the window arrive during it; after its end they cannot
    _run_expect_error(world, tmp_path, capsys,
                      _config(world, start="2021-05-15T00:00:00Z", end="2021-05-16T00:00:00Z"),
                      "after the window ends")


def test_every_shipped_policy_runs_and_overrides_are_recorded(world, tmp_path):
    """The whole policy library on one tape in one run, through ``--set`` overrides."""
    from backtest.policies import available_policies

    names = available_policies(Path(__file__).resolve().parent.parent / "strategies")
    listed = "[" + ",".join(f'"{n}"' for n in names) + "]"
    full = read_book(world["book"])  # 19 policies: keep the book small
    book = write_book(Book(full.frame.head(3000), full.meta), tmp_path / "small.parquet")
    run_id, run_dir = execute(world["config"], runs=tmp_path, store=world["store"],
                              show_progress=False,
                              overrides=[f"policies={listed}", "name=library",
                                         f'book="{book}"',
                                         "insurance_fund.initial_balance_usd=1e6"])
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["name"] == "library" and manifest["config"]["overrides"][0].startswith(
        "policies=")
    assert "--set 'name=library'" in manifest["command"]
    with Catalog(tmp_path) as catalog:
        summary = catalog.summary(run_id)
    assert sorted(summary["policy"]) == sorted(names)
    by = dict(zip(summary["policy"], summary["liquidations"], strict=True))
    assert all(v > 0 for v in by.values()), by
    steps = pl.read_parquet(run_dir / "steps.parquet")
    scale = steps.filter(pl.col("policy") == "dynamic-margin")["margin_scale"]
    assert scale.min() >= 1.0 and scale.max() > 1.0  # the crash raised the margin
    pre = pl.read_parquet(run_dir / "liquidations.parquet").filter(pl.col("preemptive"))
    assert set(pre["policy"].unique()) == {"predictive"}
    # crvUSD LLAMMA: loans' bands sold collateral on the way down and bought some back on the
    # bounce; only that policy has bands
    soft = steps.group_by("policy").agg(pl.col("soft_sold_units").sum(),
                                        pl.col("soft_bought_units").sum(),
                                        pl.col("loans_in_soft_liquidation").max())
    llamma = soft.filter(pl.col("policy") == "crvusd-llamma")
    assert llamma["soft_sold_units"][0] > 0 and llamma["soft_bought_units"][0] > 0
    assert llamma["loans_in_soft_liquidation"][0] > 0
    assert soft.filter(pl.col("policy") != "crvusd-llamma")["soft_sold_units"].max() == 0
    row = summary.filter(pl.col("policy") == "crvusd-llamma")
    assert row["soft_liquidation_loss_usd"][0] > 0
    from backtest.report import render_report

    with Catalog(tmp_path) as catalog:
        html = render_report(catalog, run_id)
    assert "Loans in soft liquidation" in html and "Soft-liquidation loss" in html


def test_bad_override_is_named(world, tmp_path, capsys):
    code = main(["run", str(world["config"]), "--runs", str(tmp_path), "--store",
                 str(world["store"]), "-q", "--set", "insurance_fund"])
    err = capsys.readouterr().err
    assert code == 2 and "expected KEY=VALUE" in err and "Traceback" not in err


def test_mark_price_oracle_ignores_last_price_wicks(world, tmp_path):
    """A perp tape with wicks the spot index does not have: triggering on the mark (spot)
    liquidates fewer accounts than triggering on the perp's last price, and fills at the
    perp's close."""
    import shutil

    store = tmp_path / "tapes"
    shutil.copytree(world["store"], store)
    rows = crash_rows(gap_at=-100)
    for k in range(len(rows) - 288, len(rows), 40):  # last-price wicks 12% under the index
        rows[k][3] *= 0.88
    src = Synth.ft_json(tmp_path / "src" / "BTC_USDT_USDT-5m-futures.json", rows)
    TapeStore(store).import_file(src, venue="binance")
    results = {}
    for model in ("market", "mark"):
        run_id, run_dir = execute(world["config"], runs=tmp_path / "runs", store=store,
                                  show_progress=False,
                                  overrides=['tape.market="perp"', f'oracle.model="{model}"',
                                             f"name=wick-{model}", 'policies=["hard"]'])
        with Catalog(tmp_path / "runs") as catalog:
            results[model] = catalog.summary(run_id)["liquidations"][0]
        if model == "mark":
            liq = pl.read_parquet(run_dir / "liquidations.parquet")
            steps = pl.read_parquet(run_dir / "steps.parquet")
            fills = liq.join(steps.select("step", "simulated_close"), on="step")
            assert (fills["decision_price"] - fills["simulated_close"]).abs().max() < 1e-9
    assert 0 < results["mark"] < results["market"]
