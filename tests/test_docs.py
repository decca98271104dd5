"""What a reader sees cites sources they can open: no citation of files outside the repository."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
READER_FACING = [
    ROOT / "README.md", ROOT / "reports" / "README.md", ROOT / "strategies" / "README.md",
    *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "strategies").glob("*.toml")),
    *sorted((ROOT / "backtest" / "report").rglob("*.py")),
    *sorted((ROOT / "backtest" / "report" / "templates").glob("*")),
]


@pytest.mark.parametrize("path", READER_FACING, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_citation_of_files_outside_the_repository(path):
    text = path.read_text(encoding="utf-8")
    for outside in ("MECHANISMS.md", "DESIGN.md", "VALIDATION.md", "STYLE.md"):
        assert outside not in text, f"{path.relative_to(ROOT)} cites {outside}"


def test_protocol_presets_link_their_source():
    from backtest.policies import available_policies, load_policy

    presets = ["aave-v3", "aave-v3.3", "compound-v3", "maker-clipper", "crvusd-llamma",
               "euler-v2", "liquity-v2", "dydx-v4", "drift", "gmx-v2", "hyperliquid",
               "binance-usdtm", "bitmex"]
    assert set(presets) <= set(available_policies())
    for name in presets:
        assert "https://" in load_policy(name).source, name


def test_reports_folder_exists_in_a_fresh_clone():
    import subprocess

    tracked = subprocess.run(["git", "ls-files", "reports"], cwd=ROOT, capture_output=True,
                             text=True).stdout.split()
    if not tracked and not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    assert "reports/README.md" in tracked
