"""Sweep configs: events x policies x parameter grids x seeds x stress transforms.

Example (``configs/sweeps/crashes-slicing.toml``)::

    name = "crashes-slicing"
    policies = ["hard", "partial", "close-factor", "graduated", "hyperliquid"]
    seeds = [7]
    workers = 2                       # local processes (default: CPU count)
    # scheduler = "tcp://10.0.0.5:8786"   # or run on a Dask cluster (liqbt[dask])

    [[events]]                        # one table per event; a book is drawn per (event, seed)
    event = "may-2021"                # key of data/events.toml
    symbol = "BTC/USDT"
    interval = "1m"
    accounts = 20_000
    # book_params = "configs/books/maker-vaults.toml"   # generator parameters (docs/books.md)

    [grid]                            # every policy: dotted fields -> list or range
    "slicing.max_step_volume_fraction" = [0.01, 0.025, 0.05, 0.1, 0.25]

    [policy_grids.partial]            # one policy only (crossed with [grid])
    "partial.close_factor" = { start = 0.25, stop = 1.0, num = 4 }

    [[stress]]
    kind = "none"                     # history as it was
    [[stress]]
    kind = "scale"                    # log-returns x 1.5
    k = 1.5

    [run.market]                      # run-config sections applied to every cell
    impact_model = "sqrt"             # (execution, market, oracle, keepers, insurance_fund,
    cascade = true                    #  response)

    # [ensemble]                      # instead of 'seeds': N members, each drawing its book
    # members = 30                    # seed and the uncertain inputs (docs/ensembles.md)
    # seed = 1

A portfolio sweep (``kind = "portfolio"``) runs the multi-asset lending + cross-margin perp
model of :mod:`backtest.portfolio` instead: its policies are collateral orders, each event
names its assets (``symbols``, default the event's) and how missing candles are treated, the
book and the base policy are in ``[portfolio]``, and grid fields are portfolio policy fields
(:mod:`backtest.sweep.portfolio_grid`)::

    name = "luna-orders"
    kind = "portfolio"
    policies = ["protocol", "least_sensitive"]     # collateral orders
    seeds = [7]

    [[events]]
    event = "luna-2022"
    missing = "hold"                  # error | hold
    accounts = 20_000

    [portfolio.params]                # PortfolioParams (docs/portfolios.md), no 'order'
    insurance_fund_usd = 1_000_000
    [portfolio.book_params]           # PortfolioBookParams
    [portfolio.market]                # impact, cascade, oracle, ADL per asset (as in a
    impact_model = "sqrt"             # portfolio run config; default: historical prices)
    depth_usd = {BTC = 8e6, ETH = 5e6, SOL = 1e6, LUNA = 1e6}
    [portfolio.keepers]               # latency, profit, gas, capital (default: none)
    latency_minutes = 60

    [grid]
    close_factor = [0.35, 0.5]
    "assets.ETH.liquidation_bonus" = [0.05, 0.075]

Relative paths are resolved against the current working directory.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, model_validator

from backtest.engine.config import (
    Execution,
    InsuranceFundConfig,
    KeeperConfig,
    MarketConfig,
    OracleConfig,
    ResponseConfig,
)
from backtest.errors import ConfigError
from backtest.portfolio.model import ORDER_NAMES
from backtest.strict import StrictModel
from backtest.sweep.ensemble import EnsembleSpec
from backtest.sweep.grid import GridValues
from backtest.sweep.sections import (
    OPTIONS_EVENT_FIELDS,
    PORTFOLIO_EVENT_FIELDS,
    SINGLE_ASSET_EVENT_FIELDS,
    OptionsSweepSection,
    PortfolioSweepSection,
)
from backtest.sweep.stress import NoStress, StressSpec
from backtest.validation import describe, read_toml


class EventSpec(StrictModel):
    """One event of a sweep: its window, tape and book.

    Attributes
    ----------
    event : str
        Key of the event catalog (``data/events.toml``).
    label : str or None
        Name of this entry in results; default the event key (give one when an event is listed
        twice, e.g. for two symbols).
    symbol : str or None
        Asset; default the event's first symbol.
    venue, market, interval : str or None
        Narrow the tape choice in the store.
    start, end : datetime or None
        Override the event's window (UTC).
    accounts : int
        Accounts in the synthetic book (> 0).
    book_params : Path or None
        TOML file of generator parameters (:class:`backtest.books.BookParams`).
    symbols : list of str or None
        Portfolio sweeps only: the assets aligned on one clock (default the event's symbols).
    missing : {"error", "hold"} or None
        Portfolio sweeps only: a step without a candle is an error (default) or holds the
        previous close (:func:`backtest.tapes.align.align_tapes`).
    """

    event: str = Field(min_length=1)
    label: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]+$")
    symbol: str | None = None
    venue: str | None = None
    market: Literal["spot", "perp"] | None = None
    interval: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    accounts: int = Field(gt=0)
    book_params: Path | None = None
    symbols: list[str] | None = Field(default=None, min_length=1)
    missing: Literal["error", "hold"] | None = None

    @property
    def key(self) -> str:
        """The entry's name in results (``label`` or the event key)."""
        return self.label or self.event


class RunSections(StrictModel):
    """Run-config sections shared by every cell (see :mod:`backtest.engine.config`)."""

    execution: Execution = Execution()
    market: MarketConfig = MarketConfig()
    oracle: OracleConfig = OracleConfig()
    keepers: KeeperConfig = KeeperConfig()
    insurance_fund: InsuranceFundConfig = InsuranceFundConfig()
    response: ResponseConfig = ResponseConfig()


class SweepConfig(StrictModel):
    """A validated sweep config (see the module docstring for the file layout).

    Attributes
    ----------
    name : str
        Sweep name (letters, digits, ``._-``); the default output is ``<runs>/sweeps/<name>``.
    description : str
    kind : {"single_asset", "portfolio", "options"}
        What a cell simulates: one asset's book under a policy file (``liqbt run``), the
        multi-asset lending + cross-margin perp book of :mod:`backtest.portfolio` (``liqbt
        portfolio run``), or the options book of a portfolio config's ``[options]`` section
        (:mod:`backtest.sweep.options_cell`); the cells' ``run_kind``.
    policies : list of str
        Policy names in ``strategies/`` or paths; for a portfolio sweep, collateral orders
        (``protocol``, ``least_sensitive``, ``largest``, ``proportional``); for an options
        sweep, ``["options"]`` (the one liquidation rule, swept by ``[grid]``).
    events : list of EventSpec
    seeds : list of int
        Each seed draws its own book per event and seeds the block bootstrap. Not with
        ``ensemble``, whose members draw their own.
    ensemble : EnsembleSpec or None
        ``[ensemble]``: run every cell once per member, each member drawing its book seed and
        the uncertain inputs (:mod:`backtest.sweep.ensemble`, ``docs/ensembles.md``).
    grid : dict
        Dotted field -> values, applied to every policy (each field must exist in each
        policy's model).
    policy_grids : dict
        Policy name -> its own grid, crossed with ``grid``.
    stress : list of StressSpec
        Transforms of each event's window; default history as it was. ``kind = "iv"`` (an
        implied-volatility shock) only in options sweeps.
    run : RunSections
        Execution, market, oracle, keeper, insurance fund and response settings of every
        cell (single-asset sweeps).
    portfolio : PortfolioSweepSection or None
        Portfolio sweeps: the base policy and the book's distributions (None: the defaults,
        see :attr:`portfolio_section`).
    options : OptionsSweepSection or None
        Options sweeps: the options book, market and base rule (None: the defaults).
    output : Path or None
        Sweep directory; default ``<runs>/sweeps/<name>``.
    scheduler : str or None
        Dask scheduler address (``tcp://host:8786``); None runs in local processes.
    workers : int or None
        Local worker processes; default the CPU count.
    threads_per_cell : int
        numba threads per cell (cells already run in parallel; results do not depend on it).
    """

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    description: str = ""
    kind: Literal["single_asset", "portfolio", "options"] = "single_asset"
    policies: list[str] = Field(min_length=1)
    events: list[EventSpec] = Field(min_length=1)
    seeds: list[int] = Field(default=[0], min_length=1)
    ensemble: EnsembleSpec | None = None
    grid: dict[str, GridValues] = {}
    policy_grids: dict[str, dict[str, GridValues]] = {}
    stress: list[StressSpec] = Field(default=[NoStress(kind="none")], min_length=1)
    run: RunSections = RunSections()
    portfolio: PortfolioSweepSection | None = None
    options: OptionsSweepSection | None = None
    output: Path | None = None
    scheduler: str | None = None
    workers: int | None = Field(default=None, ge=1)
    threads_per_cell: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _unique(self) -> SweepConfig:
        keys = [e.key for e in self.events]
        if len(set(keys)) != len(keys):
            raise ValueError("two events share a name: give each a distinct 'label'")
        if len(set(self.policies)) != len(self.policies):
            raise ValueError("a policy is listed twice")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError("a seed is listed twice")
        if self.ensemble is not None and "seeds" in self.model_fields_set:
            raise ValueError("field 'seeds': an [ensemble] draws each member's book seed; "
                             "remove 'seeds' (or the [ensemble] section)")
        labels = [s.label for s in self.stress]
        if len(set(labels)) != len(labels):
            raise ValueError("a stress transform is listed twice")
        unknown = sorted(set(self.policy_grids) - set(self.policies))
        if unknown:
            raise ValueError(f"policy_grids names policies not in 'policies': {unknown}")
        cond = None if self.ensemble is None else self.ensemble.condition_policy
        if cond is not None and cond not in self.policies:
            raise ValueError(f"field 'ensemble.condition_policy': {cond!r} is not among "
                             f"'policies' {self.policies}")
        for t in [e.start for e in self.events] + [e.end for e in self.events]:
            if t is not None and t.tzinfo is None:
                raise ValueError("start and end need a time zone, e.g. 2021-05-19T00:00:00Z")
        if self.kind == "portfolio":
            self._check_portfolio()
        elif self.kind == "options":
            self._check_options()
        else:
            self._check_single_asset()
        return self

    @property
    def options_section(self) -> OptionsSweepSection:
        """``[options]``, or its defaults when the file has none."""
        return self.options or OptionsSweepSection()

    def _check_options(self) -> None:
        """Check the rules of an options sweep (``kind = "options"``)."""
        if self.policies != ["options"]:
            raise ValueError("field 'policies': an options sweep has one policy, "
                             "[\"options\"] (its parameters are swept by [grid])")
        if self.portfolio is not None or "run" in self.model_fields_set:
            raise ValueError("an options sweep takes [options], not [portfolio] or [run.*]")
        for i, ev in enumerate(self.events):
            for f in OPTIONS_EVENT_FIELDS:
                if getattr(ev, f) is not None:
                    raise ValueError(f"field 'events[{i}].{f}': not for an options sweep "
                                     "(underlyings: [options] underlyings; the window is "
                                     "the event's)")
        self._book_seed_only()

    def _no_iv_shock(self) -> None:
        """Refuse an implied-volatility shock outside options sweeps."""
        for i, st in enumerate(self.stress):
            if st.kind == "iv":
                raise ValueError(f"field 'stress[{i}].kind': an implied-volatility shock "
                                 f"applies to options cells only (kind = \"options\"); a "
                                 f"{self.kind} cell reads no implied volatility")

    def _book_seed_only(self) -> None:
        """Check that an ensemble of a portfolio or options sweep draws the book seed only."""
        if self.ensemble is not None:
            from backtest.sweep.ensemble import INPUTS

            varied = [n for n in INPUTS if getattr(self.ensemble, n) not in (None, False)]
            if varied:
                raise ValueError(f"field 'ensemble.{varied[0]}': a {self.kind} sweep's ensemble "
                                 "members draw their book seed only; remove "
                                 f"{', '.join(varied)}")

    @property
    def portfolio_section(self) -> PortfolioSweepSection:
        """``[portfolio]``, or its defaults when the file has none."""
        return self.portfolio or PortfolioSweepSection()

    def _check_portfolio(self) -> None:
        """Check the rules of a portfolio sweep (``kind = "portfolio"``)."""
        bad = [p for p in self.policies if p not in ORDER_NAMES]
        if bad:
            raise ValueError(f"field 'policies': a portfolio sweep's policies are collateral "
                             f"orders ({', '.join(ORDER_NAMES)}), not {bad}")
        for i, ev in enumerate(self.events):
            for f in PORTFOLIO_EVENT_FIELDS:
                if getattr(ev, f) is not None:
                    raise ValueError(f"field 'events[{i}].{f}': not for a portfolio sweep "
                                     "(assets: 'symbols'; book: [portfolio.book_params])")
        if "run" in self.model_fields_set:
            raise ValueError("field 'run': [run.*] sections configure single-asset cells; a "
                             "portfolio cell's settings are [portfolio.params] (trigger, "
                             "insurance_fund_usd, ...)")
        if self.options is not None:
            raise ValueError("field 'options': only for kind = \"options\"")
        self._book_seed_only()
        self._no_iv_shock()

    def _check_single_asset(self) -> None:
        """Check the rules of a single-asset sweep: no portfolio-only fields."""
        if self.portfolio is not None:
            raise ValueError("field 'portfolio': only for kind = \"portfolio\"")
        if self.options is not None:
            raise ValueError("field 'options': only for kind = \"options\"")
        for i, ev in enumerate(self.events):
            for f in SINGLE_ASSET_EVENT_FIELDS:
                if getattr(ev, f) is not None:
                    raise ValueError(f"field 'events[{i}].{f}': only for kind = \"portfolio\" "
                                     "(a single-asset event takes 'symbol')")
        self._no_iv_shock()


def expand_paths(raw: dict, path: Path) -> None:
    """Expand environment variables in the file paths of a raw sweep config, in place.

    Also used for governance proposals, which share the fields: ``events[].book_params``,
    ``run.keepers.gas_tape`` and ``output``.

    Parameters
    ----------
    raw : dict
        The parsed TOML.
    path : Path
        The file (for the error message).

    Raises
    ------
    ConfigError
        A variable that is not set, naming the field and the value.
    """
    holders = [(e, "book_params") for e in raw.get("events", []) if isinstance(e, dict)]
    keepers = raw.get("run", {}).get("keepers") if isinstance(raw.get("run"), dict) else None
    if isinstance(keepers, dict):
        holders.append((keepers, "gas_tape"))
    holders.append((raw, "output"))
    for holder, key in holders:
        if isinstance(holder.get(key), str):
            value = os.path.expandvars(holder[key])
            if "$" in value:
                raise ConfigError(f"field '{key}': unset environment variable in "
                                  f"{holder[key]!r}", path)
            holder[key] = value


def load_sweep_config(path: str | Path) -> SweepConfig:
    """Read and validate a sweep config.

    Parameters
    ----------
    path : str or Path
        TOML file.

    Returns
    -------
    SweepConfig

    Raises
    ------
    ConfigError
        Unreadable file, invalid TOML, an unknown / misspelled / invalid field; the message
        names the file and the field. Grid fields are checked against the policies' models
        when the sweep is planned (:func:`backtest.sweep.plan.plan_sweep`).
    """
    raw = read_toml(path)
    expand_paths(raw, Path(path))
    try:
        return SweepConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(describe(exc), path) from None
