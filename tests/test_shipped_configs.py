"""Every run config shipped in configs/ loads as a user would load it, its [ensemble] included."""

from __future__ import annotations

from pathlib import Path

import pytest

from backtest.engine.config import read_run_config
from backtest.portfolio.run_config import load_portfolio_config
from backtest.sweep.ensemble import EnsembleSpec
from backtest.validation import read_toml

CONFIGS = sorted(Path("configs").glob("*.toml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_run_config_loads(path, monkeypatch, tmp_path):
    monkeypatch.setenv("LIQBT_SHARED_DATA", str(tmp_path))  # paths are expanded, not opened
    if "portfolio" in read_toml(path):
        assert load_portfolio_config(path).name
        return
    cfg, ensemble = read_run_config(path)
    assert cfg.name and cfg.policies
    if ensemble is not None:
        assert EnsembleSpec.model_validate(ensemble).members >= 1
