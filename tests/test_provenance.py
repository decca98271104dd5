"""Provenance and the strict model base are defined once and used everywhere."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pydantic
import pytest

from backtest import provenance
from backtest.strict import StrictModel

PACKAGE = Path(__file__).resolve().parent.parent / "backtest"


def test_file_sha256_matches_hashlib(tmp_path):
    path = tmp_path / "f.bin"
    data = bytes(range(256)) * 9000  # over one 1 MiB block
    path.write_bytes(data)
    assert provenance.file_sha256(path) == hashlib.sha256(data).hexdigest()


def test_versions_and_runtime():
    versions = provenance.package_versions()
    assert set(versions) == set(provenance.VERSIONED)
    assert versions["numba"] not in ("", provenance.NOT_INSTALLED)
    assert provenance.package_versions(("no-such-dist-liqbt",)) == {
        "no-such-dist-liqbt": provenance.NOT_INSTALLED}
    rt = provenance.runtime()
    assert rt["peak_rss_mb"] > 0 and rt["python"].count(".") == 2


def test_strict_model_rejects_unknown_fields_and_changes():
    class M(StrictModel):
        x: int = 1

    with pytest.raises(pydantic.ValidationError, match="typo"):
        M(typo=2)
    m = M()
    with pytest.raises(pydantic.ValidationError):
        m.x = 3


def test_no_copy_of_the_strict_config():
    """``extra="forbid", frozen=True`` is spelled once, in backtest/strict.py."""
    pattern = re.compile(r"ConfigDict\(\s*extra=\"forbid\",\s*frozen=True\s*\)")
    copies = [str(p.relative_to(PACKAGE)) for p in sorted(PACKAGE.rglob("*.py"))
              if pattern.search(p.read_text(encoding="utf-8"))]
    assert copies == ["strict.py"]


def test_no_copy_of_the_provenance_helpers():
    """Versions, runtime and peak memory are collected by backtest/provenance.py only."""
    import ast

    names = {"package_versions", "peak_rss_mb", "runtime", "VERSIONED"}
    copies = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "provenance.py":
            continue
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            defined = ({node.name} if isinstance(node, ast.FunctionDef) else
                       {t.id for t in getattr(node, "targets", []) if isinstance(t, ast.Name)})
            copies += [f"{path.relative_to(PACKAGE)}:{n}" for n in defined & names]
    assert not copies, copies
    from backtest.sweep import execute

    assert execute.package_versions is provenance.package_versions  # the sweep manifest's


def test_configuration_models_share_the_base():
    from backtest.books.generate import BookParams
    from backtest.engine.config import RunConfig
    from backtest.options.generate import OptionsBookParams
    from backtest.options.params import OptionsParams
    from backtest.policies.models import PerpParams
    from backtest.portfolio.model import PortfolioParams
    from backtest.portfolio.run_config import PortfolioRunConfig
    from backtest.report.proposal import Proposal
    from backtest.sweep.config import EventSpec, RunSections, SweepConfig
    from backtest.sweep.ensemble import Draw, EnsembleSpec
    from backtest.sweep.grid import Range
    from backtest.sweep.stress import CompressTime, NoStress, ScaleShock

    for model in (BookParams, RunConfig, OptionsBookParams, OptionsParams, PerpParams,
                  PortfolioParams, PortfolioRunConfig, Proposal, EventSpec, RunSections,
                  SweepConfig, Draw, EnsembleSpec, Range, NoStress, ScaleShock, CompressTime):
        assert issubclass(model, StrictModel), model


def test_the_command_line_is_recorded_only_from_the_liqbt_program(monkeypatch):
    command_line = provenance.command_line
    monkeypatch.setattr("sys.argv", ["/venv/bin/liqbt", "book", "calibrate", "a b.toml"])
    assert command_line("x") == "liqbt book calibrate 'a b.toml'"
    monkeypatch.setattr("sys.argv", ["/venv/bin/pytest", "-q", "tests"])  # not liqbt's arguments
    assert command_line() is None
    assert command_line("calibrate_file() in Python") == "calibrate_file() in Python"
