"""A loans-only book run end to end on the synthetic crash day (tests of lending measures)."""

from __future__ import annotations

from pathlib import Path

from backtest.books import BookParams
from backtest.engine.run import execute
from tests.results_world import make_world


def loan_run(root: Path, params: BookParams, policies: list[str], sections: str,
             accounts: int = 3_000) -> tuple[Path, str]:
    """Import the synthetic 5m crash tape under ``root``, draw ``accounts`` loans (seed 5) with
    ``params``, run ``policies`` over 2021-05-19 with the run-config ``sections`` (TOML text
    after ``[tape]``) and return ``(runs directory, run id)``."""
    world = make_world(root, accounts, params)
    config = root / "loans.toml"
    config.write_text(f"""
name = "loan-run"
start = 2021-05-19T00:00:00Z
end = 2021-05-20T00:00:00Z
symbol = "BTC/USDT"
book = "{world["book"]}"
policies = [{", ".join(f'"{p}"' for p in policies)}]
[tape]
venue = "binance"
interval = "5m"
{sections}""")
    run_id, _ = execute(config, runs=root / "runs", store=world["store"], show_progress=False)
    return root / "runs", run_id
