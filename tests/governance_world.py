"""A 6-event, 20-parameter-set governance proposal on the synthetic world, with hostile text."""

from __future__ import annotations

from pathlib import Path

from tests.sweep_world import make_world

HOSTILE_NAME = """<script>alert("pwned")</script> Close factor & 'penalty' change"""
HOSTILE_DESCRIPTION = """Raise the "penalty" <img src=x onerror=alert(1)> & see </script>"""
HOSTILE_SET = """cf 25% "penalty" 2% <b>bold</b>"""


def proposal_toml(path: Path, events: int = 6, accounts: int = 300) -> Path:
    """Write a proposal on the ``partial`` preset: current, one proposed, 18 frontier sets."""
    blocks = []
    for i in range(events):
        blocks.append(f"""
[[events]]
event = "synthetic-crash"
label = "window-{i}"
start = 2021-05-19T{2 * i:02d}:00:00Z
interval = "5m"
accounts = {accounts}
""")
    path.write_text(f"""
name = '''{HOSTILE_NAME}'''
description = '''{HOSTILE_DESCRIPTION}'''
protocol = "partial"
seeds = [5]
workers = 1

[[proposed]]
name = '''{HOSTILE_SET}'''
description = "A <i>bigger</i> penalty"
[proposed.params]
close_factor = 0.25
"perp.liquidation_penalty" = 0.02

[frontier]
"partial.close_factor" = [0.25, 0.5, 0.75, 1.0]
"perp.liquidation_penalty" = [0.0, 0.005, 0.01, 0.015, 0.02]

[run.market]
impact_model = "sqrt"
cascade = true

[run.insurance_fund]
initial_balance_usd = 20000.0
{''.join(blocks)}
""")
    return path


def build_governance_report(root: Path) -> dict:
    """Run the proposal and write its report under ``root``; return paths and the outcome."""
    from backtest.report.governance import write_governance_report

    world = make_world(root)
    proposal = proposal_toml(root / "proposal.toml")
    out, outcome = write_governance_report(
        proposal, root / "governance.html", root / "runs", world["store"],
        events=world["events"], show_progress=False)
    return {**world, "proposal": proposal, "html": out, "outcome": outcome,
            "runs": root / "runs"}
