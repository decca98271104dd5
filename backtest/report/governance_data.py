"""What the governance report shows, as data: parameter sets, scenarios and their measures.

:class:`GovernanceData` is filled by :func:`backtest.report.governance.load_governance_data`
(DuckDB aggregates of the proposal's sweep) and read by the report's text
(:mod:`backtest.report.governance`) and charts (:mod:`backtest.report.governance_figures`);
it lives apart from both so that neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from backtest.report import build
from backtest.report import governance_stats as gstats
from backtest.report.governance_conditioning import Conditioning
from backtest.report.proposal import Proposal

CURRENT_COLOR = "#000000"
"""Colour of the current parameter set."""

FRONTIER_GREY = "#9aa0a6"
"""Colour of the swept (frontier) parameter sets."""

MEASURES: tuple[tuple[str, str], ...] = (
    ("bad_debt_usd", "min"),
    ("user_loss_to_liquidation_usd", "min"),
    ("user_equity_retained", "max"),
    ("insurance_draw_usd", "min"),
    ("adl_notional_usd", "min"),
    ("peak_liquidated_notional_usd", "min"),
)
"""Summary measures (registry names) and which direction is better."""


@dataclass
class SetInfo:
    """A parameter set of the proposal: role, name, parameters, colour."""

    role: str  # current | proposed | frontier
    label: str
    params: dict
    description: str = ""
    color: str = FRONTIER_GREY


@dataclass
class Scenario:
    """One (event, stress) of the proposal, with its window facts."""

    key: str
    event: str
    stress: str
    symbol: str
    interval: str
    window: str
    steps: int
    name: str = ""
    description: str = ""
    price_symbol: str = ""  # the asset whose price is drawn (a portfolio's first asset)


@dataclass
class GovernanceData:
    """Everything the governance report shows (DuckDB aggregates of the proposal's sweep)."""

    proposal: Proposal
    path: Path
    manifest: dict
    sets: list[SetInfo]
    scenarios: list[Scenario]
    values: pl.DataFrame  # event, stress, param_set, each measure (mean over units)
    unit_values: pl.DataFrame | None = None  # ... per unit (governance_stats.unit_values)
    units: gstats.Units = gstats.Units("seed", 1)
    sweep_dir: Path | None = None
    grid_fields: list[str] = field(default_factory=list)
    defaults: dict = field(default_factory=dict)  # preset fields, flattened
    warnings: list[str] = field(default_factory=list)
    accounts: list[dict] = field(default_factory=list)
    prices: dict[str, pl.DataFrame] = field(default_factory=dict)
    liquidations: dict[str, pl.DataFrame] = field(default_factory=dict)
    buckets: dict[str, int] = field(default_factory=dict)
    command: str = ""
    reality: list[dict] = field(default_factory=list)
    conditioning: Conditioning | None = None  # [ensemble] condition_on: the members kept

    def named(self) -> list[SetInfo]:
        """Return current and proposed sets, in proposal order."""
        return [s for s in self.sets if s.role != "frontier"]

    def value(self, scenario: Scenario | None, label: str, measure: str) -> float | None:
        """Return a measure of a set in one scenario (None: all scenarios, aggregated)."""
        v = self.values.filter(pl.col("param_set") == label)
        if scenario is not None:
            v = v.filter((pl.col("event") == scenario.event)
                         & (pl.col("stress") == scenario.stress))
            return build._num(v[measure][0]) if v.height else None
        col = v[measure].drop_nulls()
        if not col.len():
            return None
        return float(col.mean()) if measure in gstats.MEAN_MEASURES else float(col.sum())

    def interval(self, scenario: Scenario | None, label: str,
                 measure: str) -> tuple[float, float, float] | None:
        """Return (p5, p50, p95) over units of a set's measure (None: over all scenarios)."""
        if self.unit_values is None:
            return None
        if scenario is None:
            return gstats.interval(self.unit_values, label, measure)
        return gstats.interval(self.unit_values, label, measure, scenario.event,
                               scenario.stress)

    def scenario_keys(self) -> list[tuple[str, str, str]]:
        """Return ``(key, event, stress)`` of every scenario."""
        return [(sc.key, sc.event, sc.stress) for sc in self.scenarios]

    def points(self) -> dict[str, tuple[float, float]]:
        """Return set label -> (user losses, bad debt), USD, summed over scenarios."""
        return {s.label: (self.value(None, s.label, "user_loss_to_liquidation_usd") or 0.0,
                          self.value(None, s.label, "bad_debt_usd") or 0.0)
                for s in self.sets}

    def dominating(self) -> dict[str, list[str]]:
        """Return proposed set -> the swept sets that beat it and current on both axes."""
        pts = self.points()
        frontier = [s.label for s in self.sets if s.role == "frontier"]
        cur = self.named()[0].label
        return {p.label: gstats.dominating(pts, frontier, [cur, p.label])
                for p in self.named()[1:]}
