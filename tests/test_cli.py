"""The command line as a newcomer meets it: start-up time, help text, --version, list, book
inspect, the compile notice, plain output off a terminal."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import numpy as np
import polars as pl
import pytest
import typer.main

from backtest import __version__
from backtest.books import Book, read_book, write_book
from backtest.cli import _register, app, main
from backtest.progress import PlainProgress, progress_bar

ROOT = Path(__file__).resolve().parent.parent
LIQBT = Path(sys.executable).parent / "liqbt"


def _all_commands() -> list[tuple[str, click.Command]]:
    _register()
    out = []

    def walk(cmd: click.Command, path: str) -> None:
        out.append((path, cmd))
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, f"{path} {name}")

    walk(typer.main.get_command(app), "liqbt")
    return out


def test_help_imports_no_heavy_module():
    """``liqbt --help`` stays fast because it imports none of the heavy libraries (checked by
    what it imports, not by a wall-clock limit that a loaded machine would break)."""
    code = ("import sys; from backtest.cli import main; rc = main(['--help']); "
            "print([m for m in ('numba', 'polars', 'duckdb', 'pyarrow', 'plotly', 'numpy') "
            "if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
    if not LIQBT.exists():
        pytest.skip(f"no installed liqbt script at {LIQBT}")
    assert "Usage" in subprocess.run([str(LIQBT), "--help"], capture_output=True, text=True,
                                     check=True).stdout


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"liqbt {__version__}"


@pytest.mark.parametrize("path_cmd", _all_commands(), ids=lambda pc: pc[0])
def test_help_text_is_clean(path_cmd):
    path, cmd = path_cmd
    ctx = click.Context(cmd, info_name=path)
    text = cmd.get_help(ctx)
    for bad in ("<bool>", "<path>", "<str>", "<int", "list[", "{", "``", ":func:", ":class:"):
        assert bad not in text, f"{path} --help shows {bad!r}:\n{text}"
    commands = text.split("Commands:", 1)[1] if "Commands:" in text else ""
    for line in commands.splitlines():
        assert not line.rstrip().endswith("..."), f"{path}: cut short help {line!r}"
    assert text.startswith(f"Usage: {path}")


def test_list_events_and_policies(capsys):
    assert main(["list", "events"]) == 0
    out = capsys.readouterr().out
    assert "may-2021" in out and "2021-05-19 00:00" in out and "BTC/USDT" in out
    assert main(["list", "policies"]) == 0
    out = capsys.readouterr().out
    names = sorted(p.stem for p in (ROOT / "strategies").glob("*.toml"))
    for name in names:
        assert name in out
    assert "soft_bands" in out and "partial" in out


def test_list_tapes_and_runs_when_empty_and_full(tmp_path, capsys, synth):
    store, runs = tmp_path / "tapes", tmp_path / "runs"
    assert main(["list", "tapes", "--store", str(store)]) == 0
    assert "No tapes in" in capsys.readouterr().out
    assert main(["list", "runs", "--runs", str(runs)]) == 0
    assert "No runs in" in capsys.readouterr().out

    src = synth.ft_json(tmp_path / "src" / "BTC_USDT-1m.json", synth.rows(n=120))
    assert main(["data", "import", str(src), "--venue", "binance", "--store", str(store)]) == 0
    capsys.readouterr()
    assert main(["list", "tapes", "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert "binance" in out and "BTC/USDT" in out and "120" in out

    for k, (name, created) in enumerate((("b-run", "2026-01-02T00:00:00+00:00"),
                                         ("a-run", "2026-01-01T00:00:00+00:00"))):
        d = runs / f"r{k}"
        d.mkdir(parents=True)
        (d / "manifest.json").write_text(json.dumps({
            "run_id": f"r{k}-{name}", "name": name, "created_at": created, "symbol": "BTC/USDT",
            "window": {"event": "may-2021", "start": "2021-05-19T00:00:00+00:00",
                       "end": "2021-05-20T00:00:00+00:00"},
            "book": {"accounts": 1234}, "policies": [{"name": "hard"}, {"name": "partial"}],
            "timings": {"total_seconds": 2.5}}))
    port = runs / "portfolio" / "p1-luna"
    port.mkdir(parents=True)
    (port / "manifest.json").write_text(json.dumps({
        "run_id": "p1-luna", "created": "2026-01-03T00:00:00+00:00", "event": "luna-2022",
        "window": {"start": "2022-05-07T00:00:00+00:00", "end": "2022-05-14T00:00:00+00:00"},
        "portfolio_book": {"accounts": 5678, "symbols": ["LUNA/USDT", "BTC/USDT"]},
        "portfolio_summary": {"protocol": {}, "proportional": {}}, "timings": {"total_s": 9.0}}))
    (runs / ".r9-killed.abc.tmp").mkdir()  # a killed run's temporary folder
    (runs / ".r9-killed.abc.tmp" / "manifest.json").write_text("{}")
    (runs / "broken").mkdir()
    (runs / "broken" / "manifest.json").write_bytes(b"\xff\xfe not json")
    assert main(["list", "runs", "--runs", str(runs)]) == 0
    out = capsys.readouterr().out
    assert out.index("r1-a-run") < out.index("r0-b-run") < out.index("p1-luna")  # oldest first
    assert "portfolio" in out and "5,678" in out and "protocol, proportional" in out
    assert "1,234" in out and "hard, partial" in out and "may-2021" in out
    assert "killed" not in out and "unreadable" in out


@pytest.fixture(scope="module")
def small_book(tmp_path_factory) -> Path:
    rng = np.random.default_rng(5)
    n = 400
    product = np.where(np.arange(n) % 4 == 0, "loan", "perp")
    side = np.where((product == "perp") & (np.arange(n) % 3 == 0), -1, 1).astype(np.int8)
    t_end = datetime(2021, 5, 19, tzinfo=UTC)
    frame = pl.DataFrame({
        "account_id": np.arange(n, dtype=np.int64),
        "product": product,
        "side": side,
        "size": rng.uniform(0.01, 2.0, n),
        "entry_price": rng.uniform(35_000, 45_000, n),
        "leverage": np.where(product == "loan", rng.choice([1.5, 2.0, 5.0], n),
                             rng.choice([1.5, 2.0, 5.0, 20.0], n)),
        "entry_time": [t_end - timedelta(hours=int(h)) for h in rng.integers(0, 240, n)],
    }).with_columns(pl.col("entry_time").dt.cast_time_unit("ms"))
    path = tmp_path_factory.mktemp("book") / "book.parquet"
    write_book(Book(frame, {"symbol": "BTC/USDT", "window_start": t_end.isoformat()}), path)
    return path


def test_book_inspect_numbers_match_the_book(small_book, capsys):
    assert main(["book", "inspect", str(small_book), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    f = read_book(small_book).frame
    perps, loans = f.filter(pl.col("product") == "perp"), f.filter(pl.col("product") == "loan")
    assert s["accounts"] == 400
    assert s["perp_notional_usd"] == pytest.approx((perps["size"] * perps["entry_price"]).sum())
    assert s["open_interest_usd"] == pytest.approx(s["perp_notional_usd"] / 2)
    notional = loans["size"] * loans["entry_price"]
    debt = notional - notional / loans["leverage"]  # LTV = 1 - 1/leverage
    assert s["loan_collateral_usd"] == pytest.approx(notional.sum())
    assert s["loan_debt_usd"] == pytest.approx(debt.sum())
    assert sum(g["accounts"] for g in s["groups"]) == 400
    shorts = [g for g in s["groups"] if g["side"] == "short"]
    assert shorts and shorts[0]["accounts"] == int((perps["side"] == -1).sum())
    d = s["distributions"]
    assert d["leverage"][0] == 1.5 and d["leverage"][-1] == 20.0
    # at entry a perp's health is (1 / leverage) / maintenance margin rate (hard: 0.5%)
    assert d["health_perp"][0] == pytest.approx(1 / 20 / 0.005)
    # a loan's health factor at entry is LT / LTV (hard: LT 82.5%)
    assert d["health_factor_loan"][0] == pytest.approx(0.825 / (1 - 1 / 5.0))
    assert d["health_factor_loan"][-1] == pytest.approx(0.825 / (1 - 1 / 1.5))
    assert 0 <= d["entry_age_days"][0] and d["entry_age_days"][-1] <= 10
    assert s["liquidatable"] == 0


def test_book_inspect_at_a_crash_price_finds_liquidatable_accounts(small_book, capsys):
    assert main(["book", "inspect", str(small_book), "--price", "20000"]) == 0
    out = capsys.readouterr().out
    assert "Side mix" in out and "Distributions" in out and "at 20,000.00 USD" in out
    # open interest as venues publish it counts each contract once: half of both sides
    oi = next(x for x in out.splitlines() if x.startswith("open interest"))
    one, both = (float(v[1:].replace(",", "")) for v in re.findall(r"\$[\d,]+", oi)[:2])
    assert both > 0 and abs(one - both / 2) <= 1.0
    line = next(x for x in out.splitlines() if x.startswith("liquidatable now"))
    assert int(line.split(":")[1].split()[0].replace(",", "")) > 0


def test_book_inspect_refuses_bad_input(tmp_path, small_book, capsys):
    assert main(["book", "inspect", str(tmp_path / "missing.parquet")]) == 2
    err = capsys.readouterr().err
    assert "missing.parquet" in err and "Traceback" not in err
    assert main(["book", "inspect", str(small_book), "--price", "-5"]) == 2
    assert "--price" in capsys.readouterr().err
    assert main(["book", "inspect", str(small_book), "--policy", "no-such-policy"]) == 2
    assert "no-such-policy" in capsys.readouterr().err


def test_compile_notice_fires_once_on_a_real_compilation():
    import backtest._jit  # noqa: F401  (numba configured first)
    # isort: split
    import numba

    from backtest.engine.warmup import COMPILING_MESSAGE, announce_compilation

    seen: list[str] = []
    announce_compilation(seen.append)

    def fresh(x):  # not cached on disk: numba compiles it in every test session
        return x * 2.0 + 1.0

    compiled = numba.njit(cache=False)(fresh)
    if os.environ.get("NUMBA_DISABLE_JIT") == "1":
        pytest.skip("JIT disabled")
    assert compiled(1.0) == 3.0
    assert compiled(2.0) == 5.0
    assert seen == [COMPILING_MESSAGE]


def test_plain_progress_writes_lines_not_a_bar(capsys):
    import io

    stream = io.StringIO()
    bar = PlainProgress(stream, unit="steps")
    task = bar.add_task("run: 10 accounts", total=100)
    bar.update(task, description="run: hard")
    for _ in range(100):
        bar.advance(task, 1)
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("run: 10 accounts: 0/100 steps (0%)")
    assert lines[1].startswith("run: hard: 0/100")
    assert lines[-1].startswith("run: hard: 100/100 steps (100%)")
    assert len(lines) == 12  # start, new description, each tenth
    # pytest's captured stderr is not a terminal: the engine gets plain lines too
    with progress_bar(True) as bar:
        assert isinstance(bar, PlainProgress)
        t = bar.add_task("x", total=2)
        bar.advance(t, 2)
    err = capsys.readouterr().err
    assert "x: 2/2 steps (100%)" in err and "━" not in err


def test_warm_up_command_reports_the_cache(capsys):
    from backtest._jit import CACHE_DIR

    assert main(["warm-up"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("kernels ready in ") and CACHE_DIR in out
    assert any(Path(CACHE_DIR).rglob("steps_nb.run_steps_nb-*.nbi"))


def test_make_setup_compiles_the_kernels():
    from backtest.engine.warmup import WARM_UP_PATHS

    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    prerequisites = makefile.split("\nsetup:", 1)[1].splitlines()[0].split()
    assert sorted(prerequisites) == sorted(f"warm-up-{p}" for p in WARM_UP_PATHS)
    rule = makefile.split("\nwarm-up-time-major warm-up-decoupled: warm-up-%:", 1)[1]
    assert "liqbt warm-up --path $*" in rule.split("\n\n", 1)[0]
    assert "setup" in makefile.split("\ntapes:", 1)[1].splitlines()[0]  # its users set up first


def test_warm_up_knows_every_kernel_path_and_refuses_others():
    from backtest.engine.dispatch import PATHS
    from backtest.engine.warmup import WARM_UP_PATHS, warm_up

    assert set(WARM_UP_PATHS) == set(PATHS) - {"auto"}
    with pytest.raises(ValueError, match="unknown warm-up path"):
        warm_up(paths=("steps",))
    assert main(["warm-up", "--path", "steps"]) != 0


def test_output_off_a_terminal_keeps_long_lines_whole(capsys):
    from backtest.cli._console import PLAIN_WIDTH, console

    out = console()
    assert not out.is_terminal and out.width == PLAIN_WIDTH and out.soft_wrap
    long_line = "wrote /a/very/long/path/" + "x" * 150 + ".parquet: 1,000,000 accounts"
    out.print(long_line, markup=False)
    assert capsys.readouterr().out == long_line + "\n"


def test_book_generate_draws_the_calibrated_book_unless_told_otherwise(tmp_path, capsys,
                                                                         monkeypatch):
    from tests.results_world import make_world
    from tests.sweep_world import EVENTS

    monkeypatch.delenv("LIQBT_BOOK_PARAMS", raising=False)
    w = make_world(tmp_path / "world")
    (tmp_path / "events.toml").write_text(EVENTS)
    common = ["book", "generate", "--accounts", "300", "--event", "synthetic-crash", "--seed",
              "3", "--events", str(tmp_path / "events.toml"), "--store", str(w["store"])]
    assert main(common + ["-o", str(tmp_path / "default.parquet")]) == 0
    default = read_book(tmp_path / "default.parquet")
    assert Path(default.meta["calibration"]).name == "perps-fitted.toml"
    assert (default.frame["product"] == "perp").all()  # the calibrated book is the perp book
    assert main(common + ["--uncalibrated", "-o", str(tmp_path / "raw.parquet")]) == 0
    raw = read_book(tmp_path / "raw.parquet")
    assert "calibration" not in raw.meta and (raw.frame["product"] == "loan").any()
    capsys.readouterr()
    assert main(common + ["--uncalibrated", "--params", "configs/books/perps-base.toml",
                          "-o", str(tmp_path / "both.parquet")]) != 0
    assert "not both" in capsys.readouterr().err
    assert not (tmp_path / "both.parquet").exists()


def test_a_book_can_stand_for_another_venue_and_is_sized_to_it():
    """`liqbt book generate --represents bitmex`: the calibrated perp book (all-cex) stands for
    BitMEX on Black Thursday, sized to the geometric middle of BitMEX's two open-interest
    readings ($1.0B and $1.2B, data/validation/black-thursday-2020.toml)."""
    from backtest.calibration.fitted import calibrated_params

    fitted = Path("configs/calibration/perps-fitted.toml")
    own, _ = calibrated_params(fitted, "black-thursday-2020", "BTC")
    assert own.represents == "all-cex" and own.size_usd is None  # no all-cex figure that day
    params, meta = calibrated_params(fitted, "black-thursday-2020", "BTC", represents="bitmex")
    assert params.represents == "bitmex"
    assert params.size_usd == pytest.approx((1.0e9 * 1.2e9) ** 0.5)
    assert "unsized" not in meta
