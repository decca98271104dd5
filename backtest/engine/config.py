"""Run configs: which window, tape, book and policies a ``liqbt run`` simulates.

Why over 400 lines: the run config is one validated schema (every section a ``liqbt run``
file may hold, with its documented fields); splitting it would scatter that reference.

Example (``configs/may-2021-btc.toml``)::

    name = "may-2021-btc"
    event = "may-2021"                  # a key of data/events.toml (or give start and end)
    symbol = "BTC/USDT"                 # default: the event's first symbol
    book = "data/books/may-2021-btc.parquet"
    policies = ["hard", "partial", "close-factor"]   # names in strategies/ or paths

    [tape]                              # optional: narrow the tape choice, or give a path
    venue = "binance"
    market = "spot"
    interval = "1m"

    [execution]
    trigger_price = "extreme"           # extreme (low for longs, high for shorts) | close
    fill_price = "trigger"              # trigger | liquidation_price | close

    [market]                            # optional: market impact and cascades
    impact_model = "sqrt"               # none | linear | sqrt | amm
    cascade = true                      # impact moves the prices later steps trigger on
    depth_source = "pre_window"         # 0.12 x median hourly USD volume of the 7 days before
    depth_scope = "book"                # x market_depth_multiple (12) on a whole-market book
    counterfactual = true               # move the price by (policy flow - as-happened flow)
    as_happened_policy = "binance-usdtm"

    [oracle]                            # optional: the price that decides liquidations
    model = "chainlink"                 # market | lagged | twap | chainlink | mark | osm
    deviation = 0.005
    heartbeat_minutes = 60

    [keepers]                           # optional: late and gas-constrained keepers
    latency_minutes = 30
    requires_profit = true
    gas_tape = "${LIQBT_SHARED_DATA}/defi_stablesims/...gas10m_03-12-2020.json"

    [insurance_fund]
    initial_balance_usd = 5_000_000

    [response]                          # optional: accounts that cure near the threshold
    enabled = true
    share = 0.7
    delay_minutes = 120

Accounts of the book whose ``entry_time`` falls inside the window open during it (arrivals).

An ``[ensemble]`` section (``members``, ``seed`` and input ranges, ``docs/ensembles.md``) makes
``liqbt run`` run the policies once per member through the sweep machinery
(:mod:`backtest.sweep.from_run`), each member redrawing the book; :func:`read_run_config`
returns the section as read, :func:`load_run_config` refuses it.

Relative paths are resolved against the current working directory.
"""

from __future__ import annotations

import math
import os
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, model_validator

from backtest.errors import ConfigError
from backtest.kernels.enums import FillPrice, TriggerPrice
from backtest.strict import StrictModel
from backtest.validation import apply_overrides, describe, read_toml


class TapeSelection(StrictModel):
    """Which tape to simulate on: an explicit Parquet file, or filters on the tape store."""

    path: Path | None = None
    venue: str | None = None
    market: Literal["spot", "perp"] | None = None
    interval: str | None = None


class Execution(StrictModel):
    """How candle prices trigger and fill liquidations.

    See :class:`TriggerPrice` and :class:`FillPrice`.

    Attributes
    ----------
    trigger_price : {"extreme", "close"}
        ``extreme``: an account is liquidatable in a step if it is under water at the candle's
        low (longs) or high (shorts); ``close``: at the candle's close.
    fill_price : {"trigger", "liquidation_price", "close"}
        ``trigger``: the liquidation executes at the trigger price (the candle's worst price
        with ``extreme``); ``liquidation_price``: at the account's exact liquidation price (the
        open if the candle gapped through it); ``close``: at the candle's close.
    """

    trigger_price: Literal["extreme", "close"] = "extreme"
    fill_price: Literal["trigger", "liquidation_price", "close"] = "trigger"

    @property
    def trigger_mode(self) -> int:
        """The :class:`TriggerPrice` value."""
        return int(TriggerPrice[self.trigger_price.upper()])

    @property
    def fill_mode(self) -> int:
        """The :class:`FillPrice` value."""
        return int(FillPrice[self.fill_price.upper()])


MARKET_DEPTH_MULTIPLE_RANGE = (3.26, 43.9)
"""Whole-market 1% depth over one venue pair's (Binance BTC spot), as the published figures
read (``docs/market-impact.md``, "Depth of a whole market"): 1 / 0.307 (Kaiko 2023: Binance's
share of global depth, the floor) to 290 / 16.53 / 0.40 (Kaiko May 2025: US-based venues'
BTC 1% depth over the Binance pair's, over the US venues' share of depth)."""
MARKET_DEPTH_MULTIPLE = 12.0
"""Default multiple: the geometric middle of :data:`MARKET_DEPTH_MULTIPLE_RANGE` (11.96)."""


def is_whole_market(venue: str | None) -> bool:
    """Whether a book's ``venue`` metadata names a whole market (``all-cex``, ``all-defi``)."""
    return bool(venue) and str(venue).lower().startswith("all-")


class MarketConfig(StrictModel):
    """How liquidation flow moves the market (see :mod:`backtest.kernels.impact_nb`).

    Attributes
    ----------
    impact_model : {"none", "linear", "sqrt", "amm"}
        Shape of the price impact of each step's net liquidation flow.
    depth_usd : float or None
        Flow (USD) that moves the price by 1%, for every step, whatever ``depth_scope``.
        None: from the tape, per ``depth_source`` and ``depth_scope``.
    depth_source : {"pre_window", "hourly_volume"}
        ``pre_window`` (default): ``pre_window_depth_fraction`` x the median hourly USD volume
        of the ``pre_window_days`` days before the window start, never the crash's own candles
        (:func:`backtest.engine.market.pre_window_depth`), optionally thinned with volatility.
        ``hourly_volume`` (the earlier model): ``depth_fraction_of_hourly_volume`` x the USD
        volume of the hour before each step, which in a crash contains the crash's own
        liquidations and rises while real order books thin.
    pre_window_depth_fraction : float
        1% depth (one side of the book, USD) per USD of median hourly volume before the window.
        Default 0.12: Binance BTC about $16.5M two-sided within 1% of mid in 2025 (Amberdata;
        one side about $8.3M) over the $69.8M median hourly volume of the Binance BTC/USDT tape
        in the 7 days before 2025-10-10 (``docs/market-impact.md``).
    pre_window_days : float
        Days before the window start whose hourly volumes give the median (default 7).
    depth_volatility_exponent : float
        ``k`` of the volatility thinning ``depth_t = D0 x min(1, (sigma_pre / sigma_t)^k)``,
        ``sigma_t`` the realised volatility of the ``volatility_window_minutes`` before step
        ``t`` (candles up to ``t - 1``), ``sigma_pre`` that of the pre-window days; 0: constant
        ``D0``.
    volatility_window_minutes : float
        Trailing window of ``sigma_t``, minutes (default 60).
    depth_fraction_of_hourly_volume : float
        Calibration factor of ``depth_source = "hourly_volume"`` (default 0.1).
    depth_scope : {"book", "venue", "market"}
        Whose depth the book's liquidation flow trades against. ``venue``: the tape's own
        (one venue and pair, as ``depth_source`` builds it). ``market``: that depth times
        ``market_depth_multiple``, for a book that stands for a whole market (its flow is every
        venue's). ``book`` (default): follow the book's metadata (``venue``, written from the
        generator's ``represents``): ``market`` for a book standing for a whole market
        (:func:`is_whole_market`: ``all-cex``, ``all-defi``), ``venue`` otherwise (one venue, a
        protocol, or no metadata). An explicit ``depth_usd`` is the depth in use whatever the
        scope: the multiple never applies to it.
    market_depth_multiple : float
        1% depth of the whole market over the depth of the one venue pair the tape's depth is
        measured on (1 to 1000; default 12, the geometric middle of the published readings 3.3-44,
        :data:`MARKET_DEPTH_MULTIPLE_RANGE`, ``docs/market-impact.md``).
    cascade : bool
        Whether impact feeds back into the prices later steps trigger on.
    permanent_fraction : float
        Share (0..1) of each step's price move that never decays (fixed in price when it
        happens, see :mod:`backtest.kernels.impact_nb`).
    transient_half_life_minutes : float
        Half-life of the rest of the move, minutes: the market absorbs it, and the price
        recovers, at this rate.
    counterfactual : bool
        Impact and cascade feedback model the difference a policy makes: each step's flow is the
        policy's minus that of ``as_happened_policy``, whose impact the historical tape already
        carries; the as-happened policy reproduces the historical path.
    as_happened_policy : str or None
        The policy that really ran (a name in the run's ``policies`` or in ``strategies/``, or a
        path): simulated first without impact for its net liquidation flow per step. Required
        with ``counterfactual``.
    """

    impact_model: Literal["none", "linear", "sqrt", "amm"] = "none"
    depth_usd: float | None = Field(default=None, gt=0.0)
    depth_source: Literal["pre_window", "hourly_volume"] = "pre_window"
    pre_window_depth_fraction: float = Field(default=0.12, gt=0.0)
    pre_window_days: float = Field(default=7.0, gt=0.0)
    depth_volatility_exponent: float = Field(default=0.0, ge=0.0)
    volatility_window_minutes: float = Field(default=60.0, gt=0.0)
    depth_fraction_of_hourly_volume: float = Field(default=0.1, gt=0.0)
    depth_scope: Literal["book", "venue", "market"] = "book"
    market_depth_multiple: float = Field(default=MARKET_DEPTH_MULTIPLE, ge=1.0, le=1000.0)
    cascade: bool = False
    permanent_fraction: float = Field(default=0.5, ge=0.0, le=1.0)
    transient_half_life_minutes: float = Field(default=30.0, gt=0.0)
    counterfactual: bool = False
    as_happened_policy: str | None = Field(default=None, min_length=1)

    def scope_for(self, book_venue: str | None) -> str:
        """Return ``"venue"`` or ``"market"``: the depth scope of a run on a book.

        Parameters
        ----------
        book_venue : str or None
            The book's metadata ``venue`` (what it stands for); None for a book without one.
        """
        if self.depth_scope != "book":
            return self.depth_scope
        return "market" if is_whole_market(book_venue) else "venue"

    @model_validator(mode="after")
    def _counterfactual(self) -> MarketConfig:
        if self.counterfactual and self.as_happened_policy is None:
            raise ValueError("counterfactual impact needs 'as_happened_policy': the policy "
                             "whose liquidations the historical tape already carries")
        if self.counterfactual and self.impact_model == "none":
            raise ValueError("counterfactual impact needs an impact_model other than 'none'")
        return self


class OracleConfig(StrictModel):
    """The price that decides liquidations (see :class:`backtest.kernels.enums.OracleModel`).

    ``market`` uses the candle itself (``[execution] trigger_price``). ``lagged``, ``twap``
    and ``chainlink`` know only closes of earlier steps. ``mark`` triggers on a second tape of
    the same symbol and interval, from the tape store (``mark_market``, default the spot index
    for a perp's last-price tape; ``mark_venue`` default the run tape's), per ``[execution]
    trigger_price``; a mark candle missing from that tape repeats the previous mark close.
    ``osm`` is Maker's Oracle Security Module: the close at each ``lag_minutes`` boundary (its
    ``hop``, counted from the window start) is published one hop later, so a wick inside an
    hour is never seen. Liquidations triggered by any oracle other than ``market`` fill at the
    step's close. Minutes are converted to whole steps of the tape (at least one).
    """

    model: Literal["market", "lagged", "twap", "chainlink", "mark", "osm"] = "market"
    mark_market: Literal["spot", "perp"] = "spot"
    mark_venue: str | None = None
    lag_minutes: float = Field(default=10.0, gt=0.0)
    twap_minutes: float = Field(default=30.0, gt=0.0)
    deviation: float = Field(default=0.005, gt=0.0, lt=1.0)
    heartbeat_minutes: float = Field(default=60.0, gt=0.0)

    @model_validator(mode="before")
    @classmethod
    def _osm_hop(cls, data):
        """Give the OSM its hop of one hour (dss ``osm.sol``: ``hop = ONE_HOUR``) by default."""
        if isinstance(data, dict) and data.get("model") == "osm" and "lag_minutes" not in data:
            return {**data, "lag_minutes": 60.0}
        return data


class KeeperConfig(StrictModel):
    """Keepers (liquidators): how late they act and whether gas stops them.

    Attributes
    ----------
    latency_minutes : float
        Delay between the first step an account is liquidatable and its liquidation (0: in
        the same step). Converted to the nearest whole step (halves up,
        :func:`backtest.engine.market.latency_steps`): on 5-minute candles 2 minutes act in
        the step, 3 minutes one step later.
    requires_profit : bool
        Keepers act only when their penalty share covers gas plus the price impact they expect
        (the previous step's slippage); otherwise the account stays open and may go bankrupt.
    gas_units : float
        Gas used by one liquidation (default 400,000, an Aave ``liquidationCall`` or a Maker
        ``bark`` + ``take``).
    gas_price_gwei : float
        Constant gas price, unless ``gas_tape`` is given.
    gas_tape : Path or None
        Gas price tape (StableSims JSON in wei, or CSV in gwei; :mod:`backtest.tapes.gas`).
    gas_tape_column : str
        Column of a StableSims file (a percentile of the gas prices paid).
    eth_price_usd : float or None
        ETH price for gas costs; None uses the tape's close when the simulated asset is ETH.
    capital_usd_per_step : float or None
        Notional keepers can absorb per step (capital-constrained keepers; liquidations beyond
        it wait, in processing order). None: flash liquidators, no capital needed.
    """

    latency_minutes: float = Field(default=0.0, ge=0.0)
    requires_profit: bool = False
    gas_units: float = Field(default=400_000.0, ge=0.0)
    gas_price_gwei: float = Field(default=0.0, ge=0.0)
    gas_tape: Path | None = None
    gas_tape_column: str = "90.0 Perc"
    eth_price_usd: float | None = Field(default=None, gt=0.0)
    capital_usd_per_step: float | None = Field(default=None, gt=0.0)


class InsuranceFundConfig(StrictModel):
    """Insurance fund: starting balance in USD; inflows are the policies' penalty shares.

    ``initial_balance_from`` names a target of ``data/validation`` (``"<event>/<id>"``, or an
    id of the run's event) whose measure is ``insurance_fund_before_usd``: the fund then starts
    at that venue's real fund (the middle of the target's range), and the run's manifest and
    report name the target. It and ``initial_balance_usd`` are not given together.
    """

    initial_balance_usd: float = Field(0.0, ge=0.0)
    initial_balance_from: str | None = None


def _sized_insurance_fund(fund: object, event: str | None) -> object:
    """Return ``[insurance_fund]`` with ``initial_balance_usd`` read from its target, if named.

    ``fund`` is the raw table (a dict) or an :class:`InsuranceFundConfig`; anything else, or a
    fund without ``initial_balance_from``, is returned as it is. A balance given beside the
    target must equal the target's (a resolved config read back), else :class:`ValueError`.
    """
    from backtest.targets import input_target

    if isinstance(fund, InsuranceFundConfig):
        given = fund.model_dump(exclude_unset=True)
    elif isinstance(fund, dict):
        given = dict(fund)
    else:
        return fund
    ref = given.get("initial_balance_from")
    if not isinstance(ref, str):
        return fund
    try:
        target = input_target(ref, "insurance_fund_before_usd", event,
                              "insurance_fund.initial_balance_from")
    except ConfigError as exc:  # a ValueError: pydantic names the config file and field
        raise ValueError(str(exc)) from None
    usd = given.get("initial_balance_usd")
    if usd is not None and not math.isclose(float(usd), target.middle, rel_tol=1e-9):
        raise ValueError(f"insurance_fund: initial_balance_usd ({usd}) and initial_balance_from "
                         f"({target.key}, {target.middle:.0f}) disagree: give one of them")
    return {**given, "initial_balance_usd": target.middle, "initial_balance_from": target.key}


class ResponseConfig(StrictModel):
    """Accounts that cure near their liquidation threshold (:mod:`backtest.kernels.book_flow_nb`).

    Defaults are the borrower response the Morpho simulator fitted on real liquidations (70% of
    borrowers repay to 74% LTV about two hours after entering an 80-86% LTV warning zone;
    https://github.com/RahilBhavan/spine, WRITEUP.md): with a liquidation threshold of 86%,
    health 86/80 = 1.075 warns and 86/74 = 1.16 is the target.

    Attributes
    ----------
    enabled : bool or None
        Switch responses on or off. None (the default): the cures a calibrated book was fitted
        with (its metadata ``response``), or none for an uncalibrated book.
    share : float
        Fraction of accounts that respond, [0, 1].
    warning_health, target_health : float
        Loans: health factor below which a borrower is warned, and the health it restores
        (by ``loan_cure``).
    loan_cure : {"repay", "top_up"}
        How a loan cures: ``"repay"`` (default; Spine's fitted response repays debt) or
        ``"top_up"``, adding collateral bought with new money at the observed price (Maker's
        owners added ETH on Black Thursday: "total ETH in DeFi has actually increased some
        200,000 ETH", CoinDesk, 2020-03-12; ``docs/calibration.md``). Both restore the same
        health, so the same liquidation price; a top-up brings more money (the collateral to
        reach health ``h`` from ``w`` grows by ``h / w - 1``; a repayment cuts the debt by
        ``1 - w / h``). Not with soft-liquidation bands.
    perp_warning_health, perp_target_health : float
        Perps: the same in the engine's perp health, equity / maintenance margin (a 10x
        position at a 0.5% maintenance rate opens at health 20; the defaults warn a trader
        whose equity fell to 4% of notional, 25x, and cure to 10%, 10x, at a 0.5% rate).
    delay_minutes : float
        Reaction delay between entering the warning zone and curing, minutes.
    wait_for_inclusion : bool
        A cure is a transaction: True adds the run's ``[keepers] latency_minutes`` (the
        scenario's wait for a transaction to be included, e.g. under congestion) to
        ``delay_minutes``. Its gas cost is not charged: a top-up's gas (about 0.02-0.1 ETH at
        200-300 gwei) is small beside the liquidation penalty it avoids (13% of the debt on
        Maker), so congestion delays cures but does not stop them. Default False.
    max_cures : int
        Cures one account can afford in the window (spare capital runs out); 0: no limit.
    seed : int
        Seed of the per-account responder draw.
    perp_reference_maintenance_rate : float or None
        Perp maintenance margin rate (fraction of notional, e.g. 0.004) at which
        ``perp_warning_health`` and ``perp_target_health`` are stated. A policy with another
        rate sees the same equity levels (the same leverage bounds), converted to its own
        health; a calibration writes the as-happened policy's rate here, so that a
        counterfactual maintenance rate does not change how the fitted traders behave. None
        (default): the levels are in each policy's own health.
    fitted_to : list of str
        The targets (``"<event>/<id>"``, ``data/validation``) these values were fitted to,
        e.g. an observation of the borrowers' cures during the event: ``liqbt validate`` and
        the reports mark them "in fit" for the run, beside the targets the book was
        calibrated on. Default none: the values were chosen without any of the run's figures.
        An override (``--set``) of any other response field but ``enabled`` or ``seed``
        clears it: the values are then no longer the fitted ones.
    """

    enabled: bool | None = None
    share: float = Field(default=0.7, ge=0.0, le=1.0)
    warning_health: float = Field(default=1.075, gt=1.0)
    target_health: float = Field(default=1.16, gt=1.0)
    loan_cure: Literal["repay", "top_up"] = "repay"
    perp_warning_health: float = Field(default=8.0, gt=1.0)
    perp_target_health: float = Field(default=20.0, gt=1.0)
    delay_minutes: float = Field(default=120.0, ge=0.0)
    wait_for_inclusion: bool = False
    max_cures: int = Field(default=0, ge=0)
    seed: int = Field(default=0, ge=0)
    perp_reference_maintenance_rate: float | None = Field(default=None, gt=0.0, lt=1.0)
    fitted_to: list[Annotated[str, Field(pattern=r"^[^/\s]+/[^/\s]+$")]] = Field(
        default_factory=list)

    @model_validator(mode="after")
    def _levels(self) -> ResponseConfig:
        if self.target_health <= self.warning_health:
            raise ValueError("target_health must be above warning_health")
        if self.perp_target_health <= self.perp_warning_health:
            raise ValueError("perp_target_health must be above perp_warning_health")
        return self


class RunConfig(StrictModel):
    """A validated run config (see the module docstring for the file layout)."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    description: str = ""
    event: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    symbol: str | None = None
    book: Path
    policies: list[str] = Field(min_length=1)
    tape: TapeSelection = TapeSelection()
    execution: Execution = Execution()
    market: MarketConfig = MarketConfig()
    oracle: OracleConfig = OracleConfig()
    keepers: KeeperConfig = KeeperConfig()
    insurance_fund: InsuranceFundConfig = InsuranceFundConfig()
    response: ResponseConfig = ResponseConfig()

    @model_validator(mode="before")
    @classmethod
    def _insurance_fund_from_target(cls, data: object) -> object:
        if isinstance(data, dict) and "insurance_fund" in data:
            data = {**data, "insurance_fund": _sized_insurance_fund(
                data["insurance_fund"], data.get("event"))}
        return data

    @model_validator(mode="after")
    def _window(self) -> RunConfig:
        if self.event is None and (self.start is None or self.end is None):
            raise ValueError("give either 'event' or both 'start' and 'end'")
        for t in (self.start, self.end):
            if t is not None and t.tzinfo is None:
                raise ValueError("start and end need a time zone, e.g. 2021-05-19T00:00:00Z")
        if self.start and self.end and self.end <= self.start:
            raise ValueError("end must be after start")
        if len(set(self.policies)) != len(self.policies):
            raise ValueError("a policy is listed twice")
        return self


_PATH_FIELDS = (("book",), ("tape", "path"), ("keepers", "gas_tape"))


_RESPONSE_KEEPS_FIT = frozenset({"fitted_to", "enabled", "seed"})
"""``[response]`` fields an override may change without undoing ``fitted_to``."""


def _drop_fit_label(before: object, after: object) -> None:
    """Clear ``[response] fitted_to`` when an override changed a value it vouches for.

    ``fitted_to`` says the response's values were fitted to those targets; ``--set
    response.share=...`` (a change to any field but ``fitted_to``, ``enabled`` or ``seed``)
    makes that untrue, so the run's fit status would mislabel the targets. ``before`` and
    ``after`` are the ``[response]`` tables as read and with the overrides applied; an override
    of ``fitted_to`` itself wins.
    """
    if not isinstance(after, dict) or not after.get("fitted_to"):
        return
    before = before if isinstance(before, dict) else {}
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    if "fitted_to" not in changed and changed - _RESPONSE_KEEPS_FIT:
        after["fitted_to"] = []


def _fund_override_wins(before: object, after: object) -> None:
    """Keep ``[insurance_fund]`` to one source of its balance when an override sets the other.

    ``--set insurance_fund.initial_balance_usd=0`` on a config with ``initial_balance_from``
    (or the reverse) drops the field the override did not touch, so the override wins
    instead of the two disagreeing. ``before`` and ``after`` are the tables as read and with
    the overrides applied.
    """
    keys = ("initial_balance_usd", "initial_balance_from")
    if not isinstance(after, dict) or not set(keys) <= after.keys():
        return
    before = before if isinstance(before, dict) else {}
    for key, other in (keys, keys[::-1]):
        if before.get(key) != after.get(key) and before.get(other) == after.get(other):
            del after[other]
            return


def read_run_config(path: str | Path, overrides: list[str] | None = None
                    ) -> tuple[RunConfig, dict | None]:
    """Read and validate a run config; return it with its raw ``[ensemble]`` table.

    ``[ensemble]`` is validated by the sweep machinery that runs it
    (:mod:`backtest.sweep.from_run`), not here: this module does not depend on it.
    Otherwise as :func:`load_run_config`.

    Returns
    -------
    RunConfig
    dict or None
        The ``[ensemble]`` table as read (``--set ensemble.*`` applied), None without one.

    Raises
    ------
    ConfigError
        As :func:`load_run_config`; ``ensemble`` that is not a table.
    """
    read = read_toml(path)
    raw = apply_overrides(read, overrides, path)
    _drop_fit_label(read.get("response"), raw.get("response"))
    _fund_override_wins(read.get("insurance_fund"), raw.get("insurance_fund"))
    ensemble = raw.pop("ensemble", None)
    if ensemble is not None and not isinstance(ensemble, dict):
        raise ConfigError("field 'ensemble': expected a table, e.g. [ensemble] members = 30",
                          path)
    for keys in _PATH_FIELDS:
        holder = raw
        for k in keys[:-1]:
            holder = holder.get(k) if isinstance(holder, dict) else None
        if isinstance(holder, dict) and isinstance(holder.get(keys[-1]), str):
            value = os.path.expandvars(holder[keys[-1]])
            if "$" in value:
                raise ConfigError(f"field '{'.'.join(keys)}': unset environment variable in "
                                  f"{holder[keys[-1]]!r}", path)
            holder[keys[-1]] = value
    try:
        return RunConfig.model_validate(raw), ensemble
    except ValidationError as exc:
        raise ConfigError(describe(exc), path) from None


def load_run_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Read and validate a run config without an ``[ensemble]`` (one simulation per policy).

    Environment variables in file paths (``book``, ``tape.path``, ``keepers.gas_tape``) are
    expanded, e.g. ``"${LIQBT_SHARED_DATA}/defi_stablesims/gas10m_03-12-2020.json"``.
    ``overrides`` (``KEY=VALUE`` with dotted keys, see
    :func:`backtest.validation.apply_overrides`) replace fields of the file before validation.

    Raises
    ------
    ConfigError
        Unreadable file, invalid TOML, an unset environment variable in a path, or an invalid /
        unknown / misspelled field; the message names the file and the field. A config with
        an ``[ensemble]``: ``liqbt run`` runs one through the sweep machinery
        (:func:`backtest.sweep.from_run.run_ensemble`), not as a single run.
    """
    cfg, ensemble = read_run_config(path, overrides)
    if ensemble is not None:
        raise ConfigError("section [ensemble]: an ensemble is many runs; run it with `liqbt "
                          "run CONFIG` or backtest.sweep.from_run.run_ensemble (the sweep "
                          "machinery, docs/ensembles.md); a single run takes a config without "
                          "one", path)
    return cfg
