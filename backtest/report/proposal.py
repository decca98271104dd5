"""Governance proposals: a protocol preset, its current parameters, proposed changes, events.

Example (``configs/proposals/aave-close-factor-bonus.toml``)::

    name = "Aave v3.3 WETH: close factor 50% -> 35%, liquidation bonus 5% -> 7.5%"
    description = "Smaller liquidations, better paid, so keepers act early and sell less."
    protocol = "aave-v3.3"            # a policy preset in strategies/
    seeds = [7]

    [current]                         # parameters in force where they differ from the preset
    # "partial.close_factor" = 0.5

    [[proposed]]                      # one table per proposed parameter set
    name = "close factor 35%, bonus 7.5%"
    [proposed.params]
    "partial.close_factor" = 0.35
    "loan.liquidation_bonus" = 0.075

    [frontier]                        # swept to draw the trade-off frontier (a grid)
    "partial.close_factor" = [0.2, 0.35, 0.5, 0.75, 1.0]
    "loan.liquidation_bonus" = [0.05, 0.075, 0.1]

    [[events]]                        # as in a sweep config (backtest.sweep.config.EventSpec)
    event = "black-thursday-2020"
    symbol = "ETH/USDT"
    interval = "5m"
    accounts = 20_000
    book_params = "configs/calibration/maker-fitted.toml"

    [run.market]                      # run-config sections, as in a sweep config
    impact_model = "sqrt"

    # [ensemble]                      # instead of 'seeds': N members, each drawing its book
    # members = 30                    # seed and the uncertain inputs (docs/ensembles.md)
    # seed = 1
    # condition_on = ["maker-eth-topups-morning"]  # keep the members whose current-set figure
    #                                 # lies within what was observed (the whole report is
    #                                 # then over them; backtest.report.governance_conditioning)

A proposal about a multi-asset lending + cross-margin perp market (``kind = "portfolio"``,
the model of :mod:`backtest.portfolio`) names the market in ``protocol`` (any name: there is no
preset file), puts the parameters in force in ``[portfolio.params]`` (``PortfolioParams``,
``order`` included), the book's distributions in ``[portfolio.book_params]`` and, as in a
portfolio run config, the market and keepers every arm shares in ``[portfolio.market]`` and
``[portfolio.keepers]``; ``current``,
``proposed.params`` and ``frontier`` take portfolio policy fields (``close_factor``,
``order``, ``assets.ETH.liquidation_bonus``, ... :mod:`backtest.sweep.portfolio_grid`), and
events take ``symbols`` and ``missing`` instead of ``symbol`` and ``book_params``; no
``[run.*]`` sections (see ``configs/proposals/multi-asset-close-factor.toml``).

A proposal about an options venue (``kind = "options"``, the options book and kernel of
:mod:`backtest.options`, ``docs/options.md``) names the venue in ``protocol`` and puts the
options sweep's ``[options]`` section in the file (``underlyings``, ``interval``,
``iv_premium``, ``params``: the :class:`~backtest.options.params.OptionsParams` in force,
``book_params``); ``current``, ``proposed.params`` and ``frontier`` take options rule fields
(``penalty_rate``, ``keeper_share``, ``spread``, ``grid.price_range``,
``grid.contingency_rate``, ... :data:`backtest.sweep.options_grid.OPTIONS_FIELDS`), events
take ``event``, ``accounts``, ``interval``, ``missing`` and ``label``, and ``[[stress]]`` may add
an implied-volatility shock (``kind = "iv"``); no ``[run.*]`` sections (see
``configs/proposals/options-penalty.toml``).

The proposal runs through the sweep machinery (:func:`backtest.sweep.run_sweep`): one policy
(the preset), one parameter set per current / proposed / frontier point, every event, seed (or
ensemble member) and stress transform, in ``<runs>/governance/<file stem>/`` (resumable).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from backtest.engine.config import KeeperConfig
from backtest.errors import ConfigError
from backtest.policies import load_policy
from backtest.portfolio.book import PortfolioBookParams
from backtest.portfolio.market import PortfolioMarketParams
from backtest.portfolio.model import PortfolioParams
from backtest.strict import StrictModel
from backtest.sweep.config import (
    EventSpec,
    PortfolioSweepSection,
    RunSections,
    SweepConfig,
    expand_paths,
)
from backtest.sweep.ensemble import EnsembleSpec
from backtest.sweep.grid import GridValues, ParamSet, apply_params, expand, resolve_field
from backtest.sweep.options_grid import apply_options_params, expand_options, resolve_options_field
from backtest.sweep.portfolio_grid import (
    apply_portfolio_params,
    expand_portfolio,
    resolve_portfolio_field,
)
from backtest.sweep.sections import OptionsSweepSection
from backtest.sweep.stress import NoStress, StressSpec
from backtest.validation import describe, read_toml

CURRENT = "current"
"""Name of the parameter set in force."""



class ProposedSet(StrictModel):
    """One proposed parameter set.

    Attributes
    ----------
    name : str
        Shown in the report (any text; it is escaped).
    description : str
    params : dict of str to value
        Dotted policy field -> proposed value.
    """

    name: str = Field(min_length=1)
    description: str = ""
    params: dict[str, Any] = Field(min_length=1)


class PortfolioMarket(StrictModel):
    """``[portfolio]`` of a portfolio proposal: the parameters in force and the book.

    Attributes
    ----------
    params : PortfolioParams
        The market's parameters in force (``order`` included: the current collateral order).
    book_params : PortfolioBookParams
        Distributions of the synthetic multi-asset book.
    market : PortfolioMarketParams
        Impact, cascade, oracle and ADL per asset (``[portfolio.market]``), the same in every
        arm (default: historical prices).
    keepers : KeeperConfig
        Keepers' latency, profit rule, gas and capital per asset (``[portfolio.keepers]``),
        the same in every arm (default: keepers act at once, for free).
    """

    params: PortfolioParams = PortfolioParams()
    book_params: PortfolioBookParams = PortfolioBookParams()
    market: PortfolioMarketParams = PortfolioMarketParams()
    keepers: KeeperConfig = KeeperConfig()


class Proposal(StrictModel):
    """A validated governance proposal (see the module docstring for the file layout)."""

    name: str = Field(min_length=1)
    description: str = ""
    kind: Literal["single_asset", "portfolio", "options"] = "single_asset"
    protocol: str = Field(min_length=1)
    portfolio: PortfolioMarket | None = None
    options: OptionsSweepSection | None = None
    current: dict[str, Any] = {}
    proposed: list[ProposedSet] = Field(min_length=1)
    frontier: dict[str, GridValues] = {}
    events: list[EventSpec] = Field(min_length=1)
    seeds: list[int] = Field(default=[0], min_length=1)
    ensemble: EnsembleSpec | None = None
    stress: list[StressSpec] = Field(default=[NoStress(kind="none")], min_length=1)
    run: RunSections = RunSections()
    workers: int | None = Field(default=None, ge=1)
    scheduler: str | None = None

    @model_validator(mode="after")
    def _names(self) -> Proposal:
        names = [p.name for p in self.proposed]
        if len(set(names)) != len(names) or CURRENT in names:
            raise ValueError(f"proposed sets need distinct names other than '{CURRENT}'")
        keys = [e.key for e in self.events]
        if len(set(keys)) != len(keys):
            raise ValueError("two events share a name: give each a distinct 'label'")
        if self.ensemble is not None and "seeds" in self.model_fields_set:
            raise ValueError("field 'seeds': an [ensemble] draws each member's book seed; "
                             "remove 'seeds' (or the [ensemble] section)")
        if (self.ensemble is not None and self.ensemble.condition_on
                and self.kind != "single_asset"):
            raise ValueError("field 'ensemble.condition_on': conditioning holds a single-asset "
                             "book's cells against data/validation targets; a "
                             f"{self.kind} market's report has no such comparison")
        if self.ensemble is not None and self.ensemble.condition_policy is not None:
            raise ValueError("field 'ensemble.condition_policy': in a proposal the current "
                             "parameter set decides which members condition_on keeps (every "
                             "set is then shown over the same members); remove it")
        if self.kind != "portfolio" and self.portfolio is not None:
            raise ValueError("field 'portfolio': only for kind = \"portfolio\"")
        if self.kind != "options" and self.options is not None:
            raise ValueError("field 'options': only for kind = \"options\"")
        if self.kind != "single_asset" and "run" in self.model_fields_set:
            where = "[portfolio.params]" if self.kind == "portfolio" else "[options.params]"
            raise ValueError("field 'run': [run.*] sections configure single-asset cells; a "
                             f"{self.kind} market's settings are {where}")
        return self

    @property
    def market(self) -> PortfolioMarket:
        """``[portfolio]`` of a portfolio proposal, or its defaults."""
        return self.portfolio or PortfolioMarket()

    @property
    def options_section(self) -> OptionsSweepSection:
        """``[options]`` of an options proposal, or its defaults."""
        return self.options or OptionsSweepSection()


def load_proposal(path: str | Path) -> Proposal:
    """Read and validate a proposal file.

    Raises
    ------
    ConfigError
        Unreadable file, invalid TOML, an unset environment variable in a path, or an
        unknown / missing / invalid field (the message names the file and the field).
    """
    raw = read_toml(path)
    expand_paths(raw, Path(path))  # ${LIQBT_SHARED_DATA} in book_params and gas_tape
    try:
        return Proposal.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(describe(exc), path) from None


def sweep_name(path: str | Path) -> str:
    """Return the sweep name of a proposal file: ``governance-<file stem>`` (safe characters)."""
    return "governance-" + re.sub(r"[^A-Za-z0-9._-]+", "-", Path(path).stem).strip("-")


def parameter_sets(proposal: Proposal, path: str | Path,
                   strategies: str | Path | None = None) -> list[tuple[str, ParamSet]]:
    """Return ``(role, ParamSet)`` for current, each proposed set and each frontier point.

    Roles are ``current``, ``proposed`` and ``frontier``. Every proposed and frontier set
    starts from the current parameters. A frontier point that simulates the same policy as
    current or a proposed set is dropped (the named set stands for it).

    Raises
    ------
    ConfigError
        An unknown parameter, an invalid value, or a proposed set equal to current.
    """
    if proposal.kind == "portfolio":
        base_p = proposal.market.params
        return _market_sets(
            proposal, path, resolve_portfolio_field,
            lambda params: apply_portfolio_params(base_p, params, str(path)).model_dump_json(),
            lambda grid: expand_portfolio([("frontier", grid)]))
    if proposal.kind == "options":
        base_o = proposal.options_section.params
        return _market_sets(
            proposal, path, resolve_options_field,
            lambda params: apply_options_params(base_o, params, "the parameter set",
                                                path).model_dump_json(),
            lambda grid: expand_options([("frontier", grid)], path))
    base = load_policy(proposal.protocol, strategies)
    model = type(base)

    def fields(params: dict, where: str) -> dict:
        try:
            return {resolve_field(model, k, proposal.protocol, where): v
                    for k, v in params.items()}
        except ConfigError as exc:
            raise ConfigError(exc.detail, path) from None

    current = fields(proposal.current, "current")
    out = [(CURRENT, ParamSet(current, CURRENT))]
    seen = {apply_params(base, current, str(path)).model_dump_json(): CURRENT}
    for i, p in enumerate(proposal.proposed):
        params = current | fields(p.params, f"proposed[{i}].params")
        key = apply_params(base, params, str(path)).model_dump_json()
        if key in seen:
            raise ConfigError(f"proposed set '{p.name}' simulates the same policy as "
                              f"'{seen[key]}'", path)
        seen[key] = p.name
        out.append(("proposed", ParamSet(params, p.name)))
    try:
        grid = expand([("frontier", proposal.frontier)], model, proposal.protocol)
    except ConfigError as exc:
        raise ConfigError(exc.detail, path) from None
    if proposal.frontier:
        for ps in grid:
            params = current | ps.params
            key = apply_params(base, params, str(path)).model_dump_json()
            if key not in seen:
                seen[key] = ps.label
                out.append(("frontier", ParamSet(params, ps.label)))
    return out


def _market_sets(proposal: Proposal, path: str | Path, resolve, key, expand_frontier
                 ) -> list[tuple[str, ParamSet]]:
    """:func:`parameter_sets` of a portfolio or options proposal.

    ``resolve(name, where)`` gives a field's dotted name, ``key(params)`` the JSON of the rule
    a set simulates, ``expand_frontier(grid)`` the frontier's parameter sets.
    """

    def fields(params: dict, where: str) -> dict:
        try:
            return {resolve(k, where): v for k, v in params.items()}
        except ConfigError as exc:
            raise ConfigError(exc.detail, path) from None

    current = fields(proposal.current, "current")
    out = [(CURRENT, ParamSet(current, CURRENT))]
    seen = {key(current): CURRENT}
    for i, p in enumerate(proposal.proposed):
        params = current | fields(p.params, f"proposed[{i}].params")
        k = key(params)
        if k in seen:
            raise ConfigError(f"proposed set '{p.name}' simulates the same policy as "
                              f"'{seen[k]}'", path)
        seen[k] = p.name
        out.append(("proposed", ParamSet(params, p.name)))
    try:
        grid = expand_frontier(proposal.frontier)
    except ConfigError as exc:
        raise ConfigError(exc.detail, path) from None
    if proposal.frontier:
        for ps in grid:
            params = current | ps.params
            k = key(params)
            if k not in seen:
                seen[k] = ps.label
                out.append(("frontier", ParamSet(params, ps.label)))
    return out


def policy_name(proposal: Proposal) -> str:
    """Return the sweep policy the proposal's parameter sets belong to.

    The preset for a single-asset proposal; the current collateral order for a portfolio one
    (its cells are named by the order each set simulates); ``options`` (the one rule) for an
    options one.
    """
    if proposal.kind == "options":
        return "options"
    return proposal.market.params.order if proposal.kind == "portfolio" else proposal.protocol


def sweep_config(proposal: Proposal, path: str | Path) -> SweepConfig:
    """Return the sweep of a proposal: the preset alone, every event, seed (or member), stress."""
    seeds = {} if proposal.ensemble is not None else {"seeds": proposal.seeds}
    if proposal.kind == "portfolio":
        params = proposal.market.params.model_dump(exclude={"order"})
        section = PortfolioSweepSection(params=PortfolioParams.model_validate(params),
                                        book_params=proposal.market.book_params,
                                        market=proposal.market.market,
                                        keepers=proposal.market.keepers)
        try:
            return SweepConfig(
                name=sweep_name(path), description=proposal.description, kind="portfolio",
                policies=[policy_name(proposal)], events=proposal.events, **seeds,
                ensemble=proposal.ensemble, stress=proposal.stress, portfolio=section,
                workers=proposal.workers, scheduler=proposal.scheduler)
        except ValidationError as exc:
            raise ConfigError(describe(exc), path) from None
    common = {"name": sweep_name(path), "description": proposal.description,
              "events": proposal.events, **seeds, "ensemble": proposal.ensemble,
              "stress": proposal.stress, "workers": proposal.workers,
              "scheduler": proposal.scheduler}
    try:
        if proposal.kind == "options":
            return SweepConfig(kind="options", policies=[policy_name(proposal)],
                               options=proposal.options_section, **common)
        return SweepConfig(policies=[proposal.protocol], run=proposal.run, **common)
    except ValidationError as exc:
        raise ConfigError(describe(exc), path) from None
