"""The Python face: `import liqbt` is light, exports what the README documents, and the
README's notebook example runs as written on a synthetic tape."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import plotly.graph_objects as go
import polars as pl
import pytest

from tests.conftest import Synth
from tests.test_engine_run import crash_rows

ROOT = Path(__file__).resolve().parent.parent


def readme_python_block() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## From Python (notebooks)", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README has no python block under 'From Python (notebooks)'"
    return match.group(1)


def test_import_liqbt_is_light_and_exports_the_documented_names():
    code = ("import sys, liqbt; heavy = [m for m in ('numba', 'polars', 'duckdb', 'plotly') "
            "if m in sys.modules]; print(heavy); print(sorted(liqbt.__all__))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out[0] == "[]"
    import liqbt

    for name in liqbt.__all__:
        assert getattr(liqbt, name) is not None, name
    readme = (ROOT / "README.md").read_text(encoding="utf-8").split(
        "## From Python (notebooks)", 1)[1].split("\n## ", 1)[0]
    used = set(re.findall(r"liqbt\.([A-Za-z_]+)", readme))
    listed = set(re.findall(r"`([A-Za-z_]+)`", readme.split("Also exported:", 1)[1]))
    assert used and listed
    assert (used | listed) <= set(liqbt.__all__), (used | listed) - set(liqbt.__all__)
    with pytest.raises(AttributeError):
        liqbt.no_such_thing  # noqa: B018


def test_readme_notebook_example_runs(tmp_path, monkeypatch):
    for var in ("LIQBT_TAPES", "LIQBT_RUNS", "LIQBT_REPORTS", "LIQBT_EVENTS",
                "LIQBT_STRATEGIES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    Synth.ft_json(tmp_path / "BTC_USDT-5m.json", crash_rows())
    (tmp_path / "configs").mkdir()
    shutil.copy(ROOT / "configs" / "may-2021-btc.toml", tmp_path / "configs")
    (tmp_path / "data" / "books").mkdir(parents=True)

    namespace: dict = {}
    exec(compile(readme_python_block(), "README.md", "exec"), namespace)  # noqa: S102

    summary, steps = namespace["summary"], namespace["steps"]
    assert summary["policy"].to_list() == ["hard", "partial", "close-factor"]
    assert summary["accounts_liquidated"].min() > 0
    assert steps.height == 3 * 288
    # polars, DuckDB and the summary agree on every policy's bad debt (USD)
    by_polars = steps.group_by("policy").agg(pl.col("bad_debt_usd").sum()).sort("policy")
    run = namespace["run"]
    by_duckdb = run.sql("SELECT policy, sum(bad_debt_usd) AS bad_debt_usd FROM steps "
                        "GROUP BY policy ORDER BY policy").pl()
    assert by_duckdb["bad_debt_usd"].to_list() == pytest.approx(
        by_polars["bad_debt_usd"].to_list(), rel=1e-12, abs=1e-9)
    assert namespace["worst_pl"]["policy"].to_list() == sorted(run.policies)

    figures = namespace["figures"]
    assert list(figures)[:2] == ["price", "liquidated-notional"] and len(figures) >= 8
    assert all(isinstance(f, go.Figure) and len(f.data) > 0 for f in figures.values())

    assert namespace["everything"]["run_id"].to_list() == [run.run_id]
    assert namespace["latest"].run_id == run.run_id
    assert namespace["exposure"]["accounts"] == 20_000
    assert (tmp_path / "runs" / run.run_id / "manifest.json").is_file()


def readme_step4_queries() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("# 4. ask questions", 1)[1].split("```", 1)[0]
    queries = re.findall(r'liqbt query "(.*?)"', block, re.S)
    assert len(queries) == 2, "README step 4: a query of the latest run, one across runs"
    return queries


def test_readme_tables_and_step4_query_match_the_catalog(tmp_path, monkeypatch):
    """The README lists the tables as they are, and its step-4 query answers for one run."""
    import liqbt

    for var in ("LIQBT_TAPES", "LIQBT_RUNS", "LIQBT_REPORTS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    Synth.ft_json(tmp_path / "BTC_USDT-5m.json", crash_rows())
    liqbt.TapeStore().import_file(tmp_path / "BTC_USDT-5m.json", venue="binance")
    book = liqbt.book_for_event(3_000, "may-2021", seed=1, interval="5m")
    liqbt.write_book(book, tmp_path / "book.parquet")
    overrides = [f"book={tmp_path / 'book.parquet'}", "tape.interval=5m"]
    config = ROOT / "configs" / "may-2021-btc.toml"
    first = liqbt.run(config, overrides=overrides)
    second = liqbt.run(config, overrides=[*overrides, "insurance_fund.initial_balance_usd=0"])
    assert first.run_id != second.run_id
    assert liqbt.open_run("latest").run_id == second.run_id
    assert liqbt.open_run(first.run_id[:-2]).run_id == first.run_id
    assert liqbt.list_runs()["run_id"].to_list() == [first.run_id, second.run_id]
    with pytest.raises(liqbt.LiqbtError, match="no table 'nope'"):
        second.table("nope")
    with pytest.raises(liqbt.LiqbtError, match="no run 'zzz'"):
        liqbt.open_run("zzz")

    latest_query, across_query = readme_step4_queries()
    across = liqbt.query(across_query)
    assert across.height == 2 * len(second.policies)  # every run, each policy once
    answer = liqbt.query(latest_query)
    mine = second.table("steps").group_by("policy").agg(pl.col("bad_debt_usd").sum())
    assert sorted(answer["policy"].to_list()) == sorted(second.policies)
    assert dict(answer.select("policy", "bad_debt_usd").iter_rows()) == pytest.approx(
        dict(mine.iter_rows()))

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Results: tables and views", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^\| `(\w+)` \| ", section, re.M)
    shown = liqbt.query("SHOW TABLES")["name"].to_list()
    assert sorted(listed) == sorted(shown)
    for name in listed:
        if name.startswith("sweep"):
            continue
        columns = set(liqbt.query(f"SELECT * FROM {name} LIMIT 0").columns)
        row = next(x for x in section.splitlines() if x.startswith(f"| `{name}` |"))
        named = set(re.findall(r"`(\w+)`", row.split("|")[3]))
        assert named <= columns, (name, named - columns)
