"""A synthetic crash world for sweep tests: a tape store, an event catalog, sweep files."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from backtest.tapes import TapeStore
from tests.conftest import Synth
from tests.test_engine_run import crash_rows

EVENTS = """
[synthetic-crash]
name = "Synthetic crash"
start = 2021-05-19T00:00:00Z
end = 2021-05-20T00:00:00Z
symbols = ["BTC/USDT"]
description = "A -25% random-walk day."

[synthetic-late]
name = "Synthetic crash, afternoon"
start = 2021-05-19T08:00:00Z
end = 2021-05-20T00:00:00Z
symbols = ["BTC/USDT"]
description = "The same day from 08:00."
"""


def make_world(root: Path) -> dict[str, Path]:
    """Write a 5-minute BTC tape into a store and an event catalog under ``root``."""
    src = Synth.ft_json(root / "src" / "BTC_USDT-5m.json", crash_rows())
    TapeStore(root / "tapes").import_file(src, venue="binance")
    events = root / "events.toml"
    events.write_text(EVENTS)
    return {"root": root, "store": root / "tapes", "events": events}


def sweep_toml(path: Path, name: str = "synthetic", accounts: int = 2000,
               grid: str = '"perp.liquidation_penalty" = [0.005, 0.01, 0.02]',
               extra: str = "") -> Path:
    """Write a sweep over both synthetic events, hard and partial, four stress transforms."""
    path.write_text(f"""
name = "{name}"
description = "synthetic <sweep> & 'quotes'"
policies = ["hard", "partial"]
seeds = [3]
workers = 1
{extra}
[[events]]
event = "synthetic-crash"
interval = "5m"
accounts = {accounts}

[[events]]
event = "synthetic-late"
interval = "5m"
accounts = {accounts}

[grid]
{grid}

[[stress]]
kind = "none"
[[stress]]
kind = "scale"
k = 1.5
[[stress]]
kind = "compress"
factor = 2
[[stress]]
kind = "bootstrap"
block_steps = 12

[run.insurance_fund]
initial_balance_usd = 10000.0
""")
    return path


def cells(sweep_dir: Path) -> pl.DataFrame:
    """Every cell's summary row (without its timing), sorted by cell id."""
    files = sorted(Path(sweep_dir).glob("cells/*/summary.parquet"))
    return pl.concat([pl.read_parquet(f) for f in files]).drop("simulate_seconds").sort(
        "cell_id")


def steps(sweep_dir: Path) -> pl.DataFrame:
    """Every cell's per-step rows, sorted by cell id and step."""
    files = sorted(Path(sweep_dir).glob("cells/*/steps.parquet"))
    return pl.concat([pl.read_parquet(f) for f in files]).sort(["cell_id", "step"])


def portfolio_sweep_toml(path: Path, name: str = "portfolio-sweep", accounts: int = 300,
                         grid: str = 'close_factor = [0.35, 0.5]\n'
                                     '"assets.ETH.liquidation_bonus" = [0.05, 0.075]',
                         extra: str = "", stress: bool = True) -> Path:
    """Write a portfolio sweep (``kind = "portfolio"``) over the world of
    :func:`tests.test_portfolio_run.make_portfolio_world`: two collateral orders, a grid of
    portfolio policy fields and, with ``stress``, the four stress transforms."""
    transforms = """
[[stress]]
kind = "none"
[[stress]]
kind = "scale"
k = 1.5
[[stress]]
kind = "compress"
factor = 2
[[stress]]
kind = "bootstrap"
block_steps = 12
""" if stress else ""
    path.write_text(f"""
name = "{name}"
kind = "portfolio"
policies = ["protocol", "largest"]
workers = 1
{extra}
[[events]]
event = "synthetic-crash"
accounts = {accounts}

[portfolio.params]
insurance_fund_usd = 1000.0

[grid]
{grid}
{transforms}""")
    return path


def liquidated_target(tmp_path: Path, events: Path, low: float = 1.0, high: float = 2.0) -> list:
    """A market liquidated-notional target for the synthetic crash day (``low``..``high``
    USD), written under ``tmp_path`` and loaded with the world's event catalog."""
    from backtest.targets import load_targets

    validation = tmp_path / "validation"
    validation.mkdir()
    (validation / "synthetic-crash.toml").write_text(f"""event = "synthetic-crash"
[[target]]
id = "market-liquidated"
scope = "market"
venue = "all-cex"
product = "perp"
asset = "BTC"
window_start = 2021-05-19T00:00:00Z
window_end = 2021-05-20T00:00:00Z
measure = "liquidated_notional_usd"
low = {low}
high = {high}
unit = "USD"
source = "https://example.org/synthetic"
quality = "primary"
note = "synthetic"
""")
    return load_targets(validation, events)
