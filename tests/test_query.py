"""`liqbt query`: read-only (every attack refused), money as money, every column in every format."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import duckdb
import polars as pl
import pytest

from backtest.cli import main
from backtest.engine.run import execute
from backtest.errors import CatalogError
from backtest.results import Catalog
from backtest.results.display import format_number, format_value, plain_table, rich_table
from tests.results_world import make_world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = make_world(tmp_path_factory.mktemp("query"))
    w["runs"] = w["root"] / "runs"
    w["run_id"], w["run_dir"] = execute(w["config"], runs=w["runs"], store=w["store"],
                                        show_progress=False)
    return w


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _query(world, capsys, *args: str) -> tuple[int, str, str]:
    code = main(["query", *args, "--runs", str(world["runs"])])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def _attacks(tmp: Path, world) -> list[tuple[str, str, Path | None]]:
    steps = world["run_dir"] / "steps.parquet"
    return [
        ("DROP TABLE runs", "DROP", None),
        ("DELETE FROM runs", "DELETE", None),
        ("CREATE TABLE x AS SELECT 1", "CREATE", None),
        ("INSERT INTO runs (run_id) VALUES ('x')", "INSERT", None),
        ("UPDATE runs SET name = 'x'", "UPDATE", None),
        (f"COPY (SELECT 1) TO '{tmp / 'out.csv'}'", "COPY", tmp / "out.csv"),
        (f"COPY (SELECT 1 AS run_id) TO '{steps}' (FORMAT parquet)", "COPY", None),
        (f"ATTACH '{tmp / 'new.db'}'", "ATTACH", tmp / "new.db"),
        (f"EXPORT DATABASE '{tmp / 'export'}'", "EXPORT", tmp / "export"),
        ("INSTALL httpfs", "LOAD", None),
        ("LOAD httpfs", "LOAD", None),
        ("SET enable_external_access = true", "SET", None),
        ("PRAGMA enable_profiling", "PRAGMA", None),
        ("CALL duckdb_settings()", "CALL", None),
        (f"EXPLAIN ANALYZE COPY (SELECT 1) TO '{tmp / 'e.csv'}'", "EXPLAIN", tmp / "e.csv"),
        ("SELECT 1; DROP TABLE runs", "DROP", None),
        ("SELECT * FROM read_text('/etc/passwd')", "only the run results", None),
        ("SELECT * FROM read_csv('/etc/passwd', sep = ':')", "only the run results", None),
        (f"SELECT * FROM read_parquet('{world['book']}')", "only the run results", None),
        (f"SELECT * FROM read_text('{world['run_dir'] / 'manifest.json'}')",
         "only the run results", None),
        ("SELECT * FROM glob('/etc/*')", "only the run results", None),
        ("SELECT getenv('HOME')", "getenv", None),
    ]


def test_every_attack_is_refused_with_a_clear_message(world, tmp_path, capsys):
    before = _digest(world["runs"])
    for sql, needle, target in _attacks(tmp_path, world):
        code, out, err = _query(world, capsys, sql)
        assert code == 2, (sql, out, err)
        assert err.startswith("error: ") and "Traceback" not in err, (sql, err)
        assert needle in err, (sql, err)
        assert "root:" not in out + err  # /etc/passwd never printed
        if target is not None:
            assert not target.exists(), sql
    assert _digest(world["runs"]) == before
    assert not list(tmp_path.iterdir())
    code, out, _ = _query(world, capsys, "SELECT count(*) AS n FROM runs", "--format", "csv")
    assert code == 0 and out.splitlines() == ["n", "1"]


def test_the_connection_itself_is_locked_down(world):
    with Catalog(world["runs"]) as cat:
        with pytest.raises(CatalogError, match="CREATE statements are not allowed"):
            cat.query("CREATE VIEW v AS SELECT 1")
        with pytest.raises(duckdb.Error, match="locked"):  # even bypassing query()
            cat.con.execute("SET enable_external_access = true")
        with pytest.raises(duckdb.Error, match="disabled"):
            cat.con.execute("SELECT * FROM read_text('/etc/hostname')").fetchall()
        settings = dict(cat.con.execute(
            "SELECT name, value FROM duckdb_settings() WHERE name IN ('enable_external_access',"
            " 'lock_configuration', 'autoinstall_known_extensions')").fetchall())
    assert settings == {"enable_external_access": "false", "lock_configuration": "true",
                        "autoinstall_known_extensions": "false"}


def test_sql_errors_are_one_line(world, capsys):
    code, _, err = _query(world, capsys, "SELEC 1")
    assert code == 2 and err.startswith("error: query failed") and "Traceback" not in err
    code, _, err = _query(world, capsys, "SELECT * FROM no_such_table")
    assert code == 2 and "no_such_table" in err


def test_money_is_formatted_as_money_without_shape_rows(world, capsys):
    code, out, _ = _query(world, capsys,
                          "SELECT 'x' AS policy, 32617000.5::DOUBLE AS bad_debt_usd, "
                          "-1234.5::DOUBLE AS keeper_profit_usd, 0.000123456 AS share, "
                          "123456789 AS accounts, 42 AS account_id")
    assert code == 0
    assert "$32,617,000.50" in out and "-$1,234.50" in out and "0.000123456" in out
    assert "123,456,789" in out and " 42" in out
    assert "e+07" not in out and "e7" not in out and "shape:" not in out


def test_plain_output_outside_a_terminal_is_never_cut(world, capsys):
    code, out, _ = _query(world, capsys, "SELECT * FROM runs")
    assert code == 0
    header, row = out.splitlines()
    assert header.split() == ["run_id", "run_kind", "name", "created_at", "event", "symbol",
                              "window_start", "window_end", "tape_interval", "steps",
                              "accounts", "policies", "package_version", "run_dir"]
    assert str(world["run_dir"]) in row and '["hard", "partial"]' in row and len(row) > 200
    assert "…" not in out and "─" not in out


def test_limit_caps_table_rows_and_says_so(world, capsys):
    code, out, err = _query(world, capsys, "SELECT step FROM prices ORDER BY step",
                            "--limit", "5")
    assert code == 0 and len(out.splitlines()) == 6
    assert "5 shown" in err
    code, out, _ = _query(world, capsys, "SELECT step FROM prices", "--limit", "0")
    assert code == 0 and len(out.splitlines()) == 289


@pytest.mark.parametrize(("args", "needle"), [
    (["--format", "xml"], "xml"),
    (["--limit", "-3"], "--limit"),
])
def test_invalid_options_are_refused(world, capsys, args, needle):
    code, out, err = _query(world, capsys, "SELECT 1", *args)
    assert code == 2 and out == ""
    assert needle in err and "Traceback" not in err


def test_csv_and_json_hold_every_column_of_every_table(world, capsys):
    for table in ("runs", "prices", "steps", "accounts", "liquidations", "adl", "policies",
                  "sweeps", "sweep_cells", "sweep_steps"):
        with Catalog(world["runs"]) as cat:
            frame = cat.query(f"SELECT * FROM {table}")
        code, out, err = _query(world, capsys, f"SELECT * FROM {table}", "--format", "csv")
        assert code == 0, (table, err)
        back = pl.read_csv(io.StringIO(out), infer_schema=False) if out.strip() else None
        if back is not None:
            assert back.columns == frame.columns and back.height == frame.height, table
        code, out, err = _query(world, capsys, f"SELECT * FROM {table}", "--format", "json")
        assert code == 0, (table, err)
        rows = json.loads(out)
        assert len(rows) == frame.height, table
        assert not rows or list(rows[0]) == frame.columns
    code, out, _ = _query(world, capsys, "SELECT policies FROM runs", "--format", "csv")
    assert json.loads(pl.read_csv(io.StringIO(out))["policies"][0]) == ["hard", "partial"]
    code, out, _ = _query(world, capsys, "SELECT policies FROM runs", "--format", "json")
    assert json.loads(out) == [{"policies": ["hard", "partial"]}]


def test_parquet_keeps_types_and_needs_a_file(world, tmp_path, capsys):
    out_file = tmp_path / "runs.parquet"
    code, _, err = _query(world, capsys, "SELECT * FROM runs", "--format", "parquet",
                          "-o", str(out_file))
    assert code == 0, err
    back = pl.read_parquet(out_file)
    assert back["policies"].to_list() == [["hard", "partial"]]
    assert back.schema["accounts"] == pl.Int64
    code, _, err = _query(world, capsys, "SELECT 1", "-o", str(out_file / "x.csv"))
    assert code == 2 and "is a file, not a directory" in err


def test_intervals_and_maps_are_shown_as_text(world):
    with Catalog(world["runs"]) as cat:
        frame = cat.query("SELECT INTERVAL 1 DAY AS i, map([1], [2]) AS m, 1 AS n")
    assert frame.columns == ["i", "m", "n"] and frame["n"][0] == 1
    assert isinstance(frame["i"][0], str)


def test_terminal_table_formats_money():
    from rich.console import Console

    frame = pl.DataFrame({"policy": ["hard"], "bad_debt_usd": [3.2617e7],
                          "liquidations": [1200], "policies": [["a", "b"]]})
    console = Console(record=True, width=200, file=io.StringIO())
    console.print(rich_table(frame))
    text = console.export_text()
    assert "$32,617,000.00" in text and "1,200" in text and '["a", "b"]' in text
    assert "e+07" not in text
    assert plain_table(frame).splitlines()[1].split("  ")[0] == "hard"


@pytest.mark.parametrize(("value", "money", "text"), [
    (3.2617e7, True, "$32,617,000.00"),
    (-0.5, True, "-$0.50"),
    (3.2617e7, False, "32,617,000"),
    (1.23456789, False, "1.23457"),
    (0.000123456, False, "0.000123456"),
    (2.5e-9, False, "2.500e-09"),
    (0.0, False, "0"),
    (float("nan"), True, "NaN"),
])
def test_format_number(value, money, text):
    assert format_number(value, money) == text


def test_format_value_by_column():
    assert format_value(None) == "null"
    assert format_value(1234567, "account_id") == "1234567"
    assert format_value(1234567, "accounts") == "1,234,567"
    assert format_value(12, "bad_debt_usd") == "$12.00"
    assert format_value({"a": 1}) == '{"a": 1}'


def test_readme_run_queries_work(world):
    """The README's example queries over runs answer (sweep examples need a sweep, portfolio
    and options ones such a run: tests/test_portfolio_catalog.py, test_options_catalog.py)."""
    import re

    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    queries = [q for q in re.findall(r'liqbt query "([^"]*)"', text)
               if "sweep_" not in q and "'portfolio'" not in q and "'options'" not in q
               and q.split()[0].upper() in ("SELECT", "WITH")]
    assert queries
    with Catalog(world["runs"]) as cat:
        for sql in queries:
            frame = cat.query(sql)
            assert frame.height > 0, sql
            if "bad_debt_usd" in sql and "run_id" in frame.columns:
                assert frame["run_id"].unique().to_list() == [world["run_id"]]
