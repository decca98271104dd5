"""Every bad input of issue 16: one clear message naming the file, exit 2, nothing left behind."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pytest

from backtest.books import read_book
from backtest.cli import main
from tests.results_world import make_world, write_config
from tests.sweep_world import EVENTS, sweep_toml

BINARY = bytes(range(256)) * 4  # not UTF-8 from its 129th byte


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = make_world(tmp_path_factory.mktemp("bad"))
    events = w["root"] / "events.toml"
    events.write_text(EVENTS)
    w["events"] = events
    return w


@pytest.fixture
def no_simulation(monkeypatch):
    """Fail the test if a run gets as far as simulating."""
    import backtest.engine.run as run

    def refuse(*a, **k):
        raise AssertionError("simulated before refusing the input")

    monkeypatch.setattr(run, "simulate_policies", refuse)


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def _expect_error(capsys, args: list[str], *needles: str) -> str:
    code = main(args)
    cap = capsys.readouterr()
    assert code == 2, cap
    assert cap.err.startswith("error: ") and "Traceback" not in cap.err, cap.err
    assert len(cap.err.strip().splitlines()) == 1, cap.err
    for needle in needles:
        assert needle in cap.err, cap.err
    return cap.err


def _run(world, tmp_path, capsys, config: Path, *needles: str) -> str:
    runs = tmp_path / "runs"
    err = _expect_error(capsys, ["run", str(config), "--runs", str(runs), "--store",
                                 str(world["store"]), "-q"], *needles)
    assert not runs.exists() or _tree(runs) == []
    return err


def test_empty_book_is_refused(world, tmp_path, capsys, no_simulation):
    book = tmp_path / "empty.parquet"
    read_book(world["book"]).frame.head(0).write_parquet(book)
    _run(world, tmp_path, capsys, write_config(tmp_path / "c.toml", book),
         "empty.parquet", "no accounts")


def test_absurd_leverage_is_refused(world, tmp_path, capsys, no_simulation):
    frame = read_book(world["book"]).frame
    frame = frame.with_columns(pl.when(pl.col("account_id") == frame["account_id"][7])
                               .then(1e9).otherwise(pl.col("leverage")).alias("leverage"))
    book = tmp_path / "lev.parquet"
    frame.write_parquet(book)
    err = _run(world, tmp_path, capsys, write_config(tmp_path / "c.toml", book),
               "lev.parquet", "row 7", "leverage must be a number >= 1 and at most 1,000")
    assert "1000000000.0" in err


def test_absurd_notional_is_refused(world, tmp_path, capsys, no_simulation):
    frame = read_book(world["book"]).frame.with_columns(
        pl.when(pl.col("account_id") == 3).then(1e13).otherwise(pl.col("size")).alias("size"))
    book = tmp_path / "big.parquet"
    frame.write_parquet(book)
    _run(world, tmp_path, capsys, write_config(tmp_path / "c.toml", book), "big.parquet",
         "size x entry_price must be at most")


@pytest.mark.parametrize("kind", ["config", "policy"])
def test_binary_run_files_are_refused(world, tmp_path, capsys, kind, no_simulation):
    binary = tmp_path / f"{kind}.toml"
    binary.write_bytes(BINARY)
    config = binary if kind == "config" else write_config(
        tmp_path / "c.toml", world["book"], policies=f'["{binary}"]')
    _run(world, tmp_path, capsys, config, f"{kind}.toml", "not a TOML text file", "UTF-8")


def test_binary_sweep_and_proposal_are_refused(world, tmp_path, capsys):
    binary = tmp_path / "latin1.toml"
    binary.write_bytes('name = "caf\xe9"\n'.encode("latin-1"))
    runs = tmp_path / "runs"
    _expect_error(capsys, ["sweep", str(binary), "--runs", str(runs), "-q"], "latin1.toml",
                  "not a TOML text file")
    _expect_error(capsys, ["report", "--governance", str(binary), "--runs", str(runs),
                           "-o", str(tmp_path / "r.html"), "-q"], "latin1.toml",
                  "not a TOML text file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latin1.toml"]


@pytest.mark.parametrize("kind", ["book", "config", "policy", "tape"])
def test_a_directory_where_a_file_is_expected_fails_before_simulating(
        world, tmp_path, capsys, no_simulation, kind):
    folder = tmp_path / f"{kind}-dir.toml"
    folder.mkdir()
    if kind == "book":
        read_book(world["book"]).frame.write_parquet(folder / "part.parquet")  # a dataset
        config = write_config(tmp_path / "c.toml", folder)
    elif kind == "config":
        config = folder
    elif kind == "policy":
        config = write_config(tmp_path / "c.toml", world["book"], policies=f'["{folder}"]')
    else:
        config = write_config(tmp_path / "c.toml", world["book"])
        config.write_text(config.read_text().replace('[tape]\n', f'[tape]\npath = "{folder}"\n'))
    _run(world, tmp_path, capsys, config, f"{kind}-dir.toml", "directory")


def test_outputs_under_an_existing_file_are_refused_before_any_work(
        world, tmp_path, capsys, no_simulation):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    _expect_error(capsys, ["run", str(world["config"]), "--runs", str(blocker / "runs"),
                           "--store", str(world["store"]), "-q"],
                  "runs", "a-file is a file, not a directory")
    _expect_error(capsys, ["run", str(world["config"]), "--runs", str(blocker),
                           "--store", str(world["store"]), "-q"],
                  "runs directory is a file")
    _expect_error(capsys, ["report", "latest", "--runs", str(tmp_path),
                           "-o", str(blocker / "r.html")], "r.html", "is a file")
    _expect_error(capsys, ["report", "latest", "--runs", str(tmp_path),
                           "-o", str(tmp_path)], "is a directory")
    _expect_error(capsys, ["query", "SELECT 1", "--runs", str(tmp_path),
                           "-o", str(blocker / "q.csv")], "q.csv", "is a file")
    _expect_error(capsys, ["book", "generate", "--accounts", "10", "--event",
                           "synthetic-crash", "--events", str(world["events"]), "--store",
                           str(world["store"]), "-o", str(blocker / "b.parquet")],
                  "b.parquet", "is a file")
    _expect_error(capsys, ["sweep", str(sweep_toml(tmp_path / "s.toml")), "--runs",
                           str(tmp_path), "--store", str(world["store"]), "--events",
                           str(world["events"]), "-o", str(blocker / "sweep"), "-q"],
                  "sweep", "is a file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "s.toml"]


def test_unwritable_runs_directory_is_refused(world, tmp_path, capsys, no_simulation):
    if os.geteuid() == 0:
        pytest.skip("root writes anywhere")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    _expect_error(capsys, ["run", str(world["config"]), "--runs", str(locked / "runs"),
                           "--store", str(world["store"]), "-q"], "not writable")


def test_a_sweep_failing_before_its_first_cell_leaves_nothing(world, tmp_path, capsys):
    runs = tmp_path / "runs"
    bad = sweep_toml(tmp_path / "s.toml", grid='"partial.no_such_field" = [1, 2]')
    code = main(["sweep", str(bad), "--runs", str(runs), "--store", str(world["store"]),
                 "--events", str(world["events"]), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and "no_such_field" in err
    assert not runs.exists()


def test_an_unreachable_scheduler_leaves_no_plan_and_no_book(world, tmp_path, monkeypatch):
    pytest.importorskip("distributed")
    import backtest.sweep.backends as backends
    from backtest.errors import LiqbtError
    from backtest.sweep import run_sweep

    monkeypatch.setattr(backends, "CONNECT_TIMEOUT", "1s")
    out = tmp_path / "existing"
    out.mkdir()
    (out / "mine.txt").write_text("kept")
    with pytest.raises(LiqbtError, match="Dask scheduler"):
        run_sweep(sweep_toml(tmp_path / "s.toml", accounts=200), runs=tmp_path / "runs",
                  store=world["store"], events=world["events"], output=out,
                  scheduler="tcp://127.0.0.1:9", show_progress=False)
    assert _tree(out) == ["mine.txt"]  # the plan, books and folders it made are gone
    assert not (tmp_path / "runs").exists()
