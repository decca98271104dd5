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


#: Files being restructured on another branch, checked once that lands (none now).
PENDING: set[Path] = set()
#: Also being edited on other branches: checked for length once they land (none now).
LENGTH_PENDING: set[Path] = set(PENDING)
PACKAGE = [p for p in sorted((ROOT / "backtest").rglob("*.py")) if p not in PENDING]
OUTSIDE = ("MECHANISMS.md", "DESIGN.md", "VALIDATION.md", "STYLE.md")


@pytest.mark.parametrize("path", sorted(set(READER_FACING) - PENDING | set(PACKAGE)),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_no_citation_of_files_outside_the_repository(path):
    text = path.read_text(encoding="utf-8")
    for outside in OUTSIDE:
        assert outside not in text, f"{path.relative_to(ROOT)} cites {outside}"


def test_long_modules_say_why():
    """A module over ~400 lines states at its top why it is one module."""
    import ast

    unexplained = []
    for path in PACKAGE:
        if path in LENGTH_PENDING:
            continue
        text = path.read_text(encoding="utf-8")
        if text.count("\n") > 400:
            doc = ast.get_docstring(ast.parse(text)) or ""
            if "Why over 400 lines:" not in doc:
                unexplained.append(str(path.relative_to(ROOT)))
    assert not unexplained, f"modules over 400 lines without a reason at the top: {unexplained}"


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


def test_ensembles_doc_quotes_the_joint_draws_errors():
    """docs/ensembles.md's jackknife errors of the perp fit are those the joint draw uses."""
    import re

    from backtest.sweep.joint import input_name, joint_draw

    text = (ROOT / "docs" / "ensembles.md").read_text(encoding="utf-8")
    draw = joint_draw(ROOT / "configs" / "calibration" / "perps-fitted.toml", lambda f: True)
    quoted = {name: (centre, error) for name, centre, error in re.findall(
        r"`(\w+)` (\d+\.\d+) \+- (\d+\.\d+)", text)}
    for field, centre, error in zip(draw.fields, draw.centre, draw.standard_errors,
                                    strict=True):
        c, e = quoted[input_name(field)]
        assert round(centre, len(c.split(".")[1])) == float(c), field
        assert round(error, len(e.split(".")[1])) == float(e), field
    assert round(draw.correlation("leverage_scale", "share"), 2) == 0.91
    assert round(draw.correlation("leverage_scale", "arrival_leverage_scale"), 2) == 0.96


def test_ensembles_doc_quotes_the_leave_one_out_ranges():
    """docs/ensembles.md's leave-one-out ranges are those the ensemble draws from the file."""
    import re

    from backtest.sweep.ensemble import _jackknife_range

    text = (ROOT / "docs" / "ensembles.md").read_text(encoding="utf-8")
    path = ROOT / "configs" / "calibration" / "perps-fitted.toml"
    assert str(path.relative_to(ROOT)) in text
    quoted = dict((name, (lo, hi)) for name, lo, hi in re.findall(
        r"`(leverage_scale|response_share|response_delay_minutes)` (\d+\.\d+)\.\.(\d+\.\d+)",
        text))
    fields = {"leverage_scale": "leverage_scale", "response_share": "share",
              "response_delay_minutes": "delay_minutes"}
    assert set(quoted) == set(fields)
    for name, (lo, hi) in quoted.items():
        draw = _jackknife_range(path, fields[name])
        decimals = len(lo.split(".")[1])
        assert (round(draw.low, decimals), round(draw.high, decimals)) == (
            float(lo), float(hi)), (name, draw)


def test_the_shipped_coverage_record_is_current_and_quoted():
    """The perp fit's coverage record matches the shipped fitted file (so reports quote it),
    and docs/ensembles.md and the README quote its figures."""
    import tomllib

    from backtest.sweep.coverage import coverage_path, coverage_sentence

    fitted = ROOT / "configs" / "calibration" / "perps-fitted.toml"
    assert coverage_sentence(fitted) is not None, "re-run liqbt book coverage ... --write"
    c = tomllib.loads(coverage_path(fitted).read_text(encoding="utf-8"))["coverage"]
    docs = (ROOT / "docs" / "ensembles.md").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"in {c['inside']} of {c['events']} markets" in docs
    assert f"**{c['inside']} of {c['events']}**" in readme
    assert f"{c['model_error_log_sd']:.3f}" in docs and f"{c['model_error_log_sd']:.3f}" in readme
    assert f"**{c['inside_with_model_error']} of {c['events']}**" in docs
    assert f"**{c['inside_with_model_error_held_out']} of {c['events']}**" in docs
    assert f"{c['typical_factor']:.2f}" in docs
