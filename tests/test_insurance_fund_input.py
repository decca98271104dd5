"""An insurance fund started at a real venue's fund: ``[insurance_fund] initial_balance_from``
names a target, the run starts its fund there, and the manifest, ``liqbt validate`` and the
report say so."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from backtest.calibration.compare import INPUT, RunFacts, compare
from backtest.calibration.sources import RunTables
from backtest.engine.config import RunConfig, load_run_config
from backtest.errors import ConfigError
from backtest.results.catalog import Catalog

START = datetime(2021, 5, 19, tzinfo=UTC)
FUND = 2.5e6  # the crafted venue's fund at the window start, USD

TARGETS = f"""\
event = "may-2021"

[[target]]
id = "venue-fund-before"
scope = "venue"
venue = "binance"
product = "perp"
asset = "BTC+ETH"
window_start = 2021-05-19T00:00:00Z
window_end = 2021-05-20T00:00:00Z
measure = "insurance_fund_before_usd"
low = {FUND}
high = {FUND}
unit = "USD"
source = "https://example.org/fund"
quality = "secondary"
note = "made up for a test: another venue and a joint asset, shown because it is an input"

[[target]]
id = "venue-fund-after"
scope = "venue"
venue = "binance"
product = "perp"
asset = "BTC+ETH"
window_start = 2021-05-19T00:00:00Z
window_end = 2021-05-20T00:00:00Z
measure = "insurance_fund_after_usd"
low = 2.0e6
high = 2.0e6
unit = "USD"
source = "https://example.org/fund"
quality = "secondary"
note = "not an input, of another venue and asset: not shown"
"""


@pytest.fixture
def validation(tmp_path, monkeypatch):
    root = tmp_path / "validation"
    root.mkdir()
    (root / "may-2021.toml").write_text(TARGETS)
    monkeypatch.setenv("LIQBT_VALIDATION", str(root))
    return root


def _config(**fund):
    return RunConfig(name="t", event="may-2021", book="book.parquet", policies=["hard"],
                     insurance_fund=fund)


def test_the_fund_starts_at_the_named_target(validation):
    cfg = _config(initial_balance_from="venue-fund-before")
    assert cfg.insurance_fund.initial_balance_usd == FUND
    assert cfg.insurance_fund.initial_balance_from == "may-2021/venue-fund-before"
    assert RunConfig(**cfg.model_dump()) == cfg  # a resolved config reads back as it is
    assert _config(initial_balance_from="may-2021/venue-fund-before") == cfg


@pytest.mark.parametrize(("fund", "says"), [
    ({"initial_balance_from": "no-such-target"}, "no target 'may-2021/no-such-target'"),
    ({"initial_balance_from": "venue-fund-after"},
     "measures insurance_fund_after_usd, not insurance_fund_before_usd"),
    ({"initial_balance_from": "venue-fund-before", "initial_balance_usd": 5e6},
     "disagree: give one of them"),
])
def test_a_bad_fund_source_is_a_clear_error_naming_the_file(validation, tmp_path, fund, says):
    lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in fund.items())
    path = tmp_path / "run.toml"
    path.write_text('name = "t"\nevent = "may-2021"\nbook = "book.parquet"\n'
                    f'policies = ["hard"]\n[insurance_fund]\n{lines}\n')
    with pytest.raises(ConfigError, match=says) as err:
        load_run_config(path)
    assert str(path) in str(err.value) and "insurance_fund" in str(err.value)


def test_a_run_shows_its_fund_input_and_its_simulated_fund(validation, tmp_path):
    from backtest.books import generate_book, write_book
    from backtest.engine.run import execute
    from backtest.report import render_report
    from backtest.tapes import Tape, TapeStore
    from tests.test_report import STRATEGIES, _tape_rows

    src = tmp_path / "binance" / "BTC_USDT-5m.json"
    src.parent.mkdir(parents=True)
    src.write_text(json.dumps(_tape_rows()))
    tape = TapeStore(tmp_path / "tapes").import_file(src, venue="binance").path
    a = Tape.from_parquet(tape).arrays()
    book = generate_book(400, a["timestamp"], a["close"], a["low"], a["high"], START, seed=3,
                         meta={"symbol": "BTC/USDT", "event": "may-2021", "venue": "all-cex"})
    write_book(book, tmp_path / "book.parquet")
    config = tmp_path / "run.toml"
    config.write_text(f'name = "fund"\nevent = "may-2021"\nbook = "{tmp_path / "book.parquet"}"\n'
                      f'policies = ["hard"]\n[tape]\npath = "{tape}"\n'
                      '[insurance_fund]\ninitial_balance_from = "venue-fund-before"\n')
    run_id, run_dir = execute(config, runs=tmp_path / "runs", strategies=STRATEGIES,
                              show_progress=False)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["insurance_fund"] == {"initial_balance_usd": FUND,
                                          "initial_balance_from": "may-2021/venue-fund-before"}
    with Catalog(tmp_path / "runs") as catalog:
        facts = RunFacts.from_manifest(manifest)
        comparison = compare(facts, RunTables(catalog, run_id, facts))
        flows = catalog.query(f"""
            SELECT sum(insurance_fees_usd) AS fees, sum(insurance_draw_usd) AS draws,
                   arg_max(insurance_fund_usd, step) AS fund_end
            FROM steps WHERE run_id = '{run_id}'""").row(0, named=True)
        figures = RunTables(catalog, run_id, facts).figures(facts.start, facts.end, True,
                                                            "perp")["hard"]
        html = render_report(catalog, run_id)
    assert facts.input_keys == {"may-2021/venue-fund-before"}
    shown = {r.target.id: r for r in comparison.rows}
    assert "venue-fund-after" not in shown  # another venue's figure that is not an input
    row = shown["venue-fund-before"]
    assert row.fit == INPUT and row.simulated == pytest.approx(FUND) and row.inside
    # the run's own fund at its end is the start plus the penalties' share less the draws
    assert flows["fund_end"] == pytest.approx(FUND + flows["fees"] - flows["draws"])
    assert figures["insurance_fund_before_usd"] == pytest.approx(FUND)
    assert figures["insurance_fund_after_usd"] == pytest.approx(flows["fund_end"])
    assert "a real venue&#39;s fund: target may-2021/venue-fund-before" in html


def test_an_override_of_either_source_wins(validation, tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('name = "t"\nevent = "may-2021"\nbook = "book.parquet"\npolicies = ["hard"]\n'
                    '[insurance_fund]\ninitial_balance_from = "venue-fund-before"\n')
    assert load_run_config(path).insurance_fund.initial_balance_usd == FUND
    fund = load_run_config(path, ["insurance_fund.initial_balance_usd=0"]).insurance_fund
    assert (fund.initial_balance_usd, fund.initial_balance_from) == (0.0, None)
    path.write_text('name = "t"\nevent = "may-2021"\nbook = "book.parquet"\npolicies = ["hard"]\n'
                    '[insurance_fund]\ninitial_balance_usd = 7\n')
    fund = load_run_config(path, ["insurance_fund.initial_balance_from=venue-fund-before"]
                           ).insurance_fund
    assert (fund.initial_balance_usd, fund.initial_balance_from) == (
        FUND, "may-2021/venue-fund-before")
