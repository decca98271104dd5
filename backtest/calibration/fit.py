"""Fit a book's generator and response parameters to real crashes, and check them out of sample.

A calibration file (``configs/calibration/*.toml``) names the events a book type is held
against, the policy that really ran there (the as-happened preset), the base generator
parameters and the parameters to fit with their bounds::

    name = "perps"
    book = "configs/books/perps-base.toml"   # generator parameters held fixed
    policy = "binance-usdtm"                  # as-happened preset
    accounts = 4000                           # per event (granularity only)
    seed = 7
    interval_minutes = 5                      # candles are coarsened to this for the fit
    long_share_weight = 1.0
    open_interest_weight = 1.0                # 0: no open-interest-after term
    max_evaluations = 300                     # per fit; leave_one_out_evaluations per refit
    seed_spread = 5                           # other seeds the fitted figures are re-drawn on

    [response]                                # run config [response]; fitted keys override
    enabled = true

    [execution]                               # run config [execution]: trigger_price,
    fill_price = "trigger"                    # fill_price (the defaults: the candle's low /
                                              # high, filled there)
    # tape_venue = "aave-v2-oracle"           # the window's candles from this venue's tape
                                              # (default binance; below)
    # held_out_targets = ["feb-2021/aave-v2-weth-liquidated-after-low"]   # not fitted (below)

    [[fit]]                                   # parameters: name, bounds, start
    name = "leverage_scale"
    low = 0.2
    high = 5.0
    start = 1.0

    [[event]]
    event = "may-2021"
    symbol = "BTC/USDT"
    interval = "1m"                           # tape interval in the store
    venue = "all-cex"                         # targets: liquidated share of open interest
    asset = "BTC"

**Objective** (documented, minimised with ``scipy.optimize.minimize``, Nelder-Mead on
parameters mapped to their bounds by a logistic transform)::

    sum over events  log(simulated share / real share)^2
                   + long_share_weight x (simulated long share - real long share)^2
                   + open_interest_weight x log(simulated OI change / real OI change)^2
                   + timing_weight x sum over published sub-windows
                         (simulated fraction - real fraction)^2

where *share* is the liquidated notional over **the real figure's window** (the target's,
:func:`backtest.targets.liquidated_window`: BitMEX's first leg on Black Thursday,
2024-08-05 inside an event that starts the day before) divided by the book's open interest at
the window start, and the real share is the geometric middle of the target range
(:func:`backtest.targets.share_of_open_interest`; for loans the liquidated amount over the
protocol's borrowings, or over the collateral deposited where the book is sized to its
collateral, ``size_basis = "collateral"``: :func:`backtest.calibration.fitted.size_measure`).
Open interest as venues and aggregators publish it counts each contract once (the longs'
notional, equal to the shorts'), so the book's open interest is **half its perps' notional
over both sides**; a liquidated position counts its full notional on either side, as in the
published liquidation figures. The long share is counted over the same window and enters only
where a target gives it.
*OI change* is the perps' open interest at the window end (every position still open,
arrivals included, at the last close) over that at the window start (at the last close
before it); the real one is ``open_interest_after_usd / open_interest_before_usd`` of the same
venue and asset (:func:`backtest.targets.open_interest_change`, geometric middle
of the range) and enters only where both figures exist. It is what voluntary closes
(``close_share``) and arrivals move; the liquidated share alone cannot tell them apart.
The *sub-windows* are the venue's own published liquidations over a short window inside the
event and over a longer one holding it (:func:`backtest.calibration.timing.sub_windows`, the
event's venue and asset only): the fraction of the longer window's liquidations in the short one,
real against simulated. They hold the book's timing, which its size cannot move (a lending
book's loan-to-value tail decides how much is liquidated early in a fall); ``timing_weight`` 0
(the default) leaves them out of the fit, and the calibrated file's ``[[timing]]`` rows still
report them.

**Targets held out**: ``held_out_targets`` lists ``"<event>/<id>"`` keys of ``data/validation``
the fit must not see (a published sub-window kept as an out-of-sample check of the timing, or
a figure added after the fit). The fit reads its events' figures without them, the calibrated
file records the list (``[fit] held_out_targets``), and ``liqbt validate`` and the file's
``[[timing]]`` rows report them as held out (:func:`backtest.calibration.fitted.fit_targets`).
Listing a figure the fit already used and refitting gives another fit; listing one it never
used gives the same.

**The window's candles** come from ``tape_venue``'s tape of the event's symbol and interval
(a run's ``[tape] venue``), by default Binance's, as everything else. A lending protocol
liquidates on its own oracle, not on one venue's candle: a protocol's price feed imported with
``liqbt data import-feed`` (candles of the price in force, :mod:`backtest.tapes.feed`) then
triggers, fills and values the fit's liquidations, as a run on ``[tape] venue`` set to that
feed does. The book is still drawn on Binance's lookback candles (as ``liqbt book generate``
draws it), sized at Binance's last close before the window, and "after the low" is still
counted from Binance's lowest candle, so only the liquidations' prices change.

**The search**: Nelder-Mead from the file's ``start`` values; with ``grid_points`` k > 0 the
objective is first evaluated on a grid of k points per parameter (evenly spaced over -2 .. 2 in
the logistic units the bounds map to, so 12% .. 88% of each range), and the search starts from
the best of the grid and the start values. A grid makes the fit (and each leave-one-out refit)
independent of where it starts, at k^n more evaluations: for few parameters and a noisy or flat
objective (a lending book whose liquidations are a few hundred loans near the threshold).

**Out of sample**: :func:`leave_one_out` refits without each event in turn (starting from the
full fit) and reports the error on the event left out: that, not the in-sample error, is the
figure to quote.

The evaluation is the engine itself (:func:`backtest.engine.dispatch.simulate` on a book from
:func:`backtest.books.generate.generate_book`, with arrivals and cures), without market impact
(the as-happened flow is already in the tape). The same seed and accounts give the same
objective, so the optimiser sees a deterministic function. The fit's books hold positions
(and loans) of **equal notional** (``perp_notional_sigma`` and ``loan_collateral_sigma`` set to
0 while fitting; the fitted file keeps the generator's size distribution): sizes are drawn
independently of leverage, side, entry and cures, and nothing in the fit's evaluation depends
on size (no market impact, one maintenance rate), so the liquidated share has the same
expectation with or without them, while heavy-tailed sizes make a small book's share a few
large accounts' luck. Measured on the fit shipped before this change (five seeds each,
``docs/calibration.md``): at 4,000 accounts the seed-to-seed variation of August 2024's ratio
falls from 42% to 12% of its mean, and the mean agrees with 100,000 lognormal-size accounts
within 4% on every event.

Why over 400 lines: it is the calibration file's schema with the fit and the leave-one-out
check that read it.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from backtest import paths
from backtest.books.generate import BookParams, generate_book
from backtest.calibration.fitted import size_measure
from backtest.calibration.timing import sub_windows
from backtest.engine.book_flow import book_flow, exit_times_ms
from backtest.engine.config import Execution, ResponseConfig
from backtest.engine.dispatch import Prices, simulate
from backtest.engine.run import response_for
from backtest.errors import ConfigError, TapeError
from backtest.events import get_event
from backtest.policies import load_policy, pack_policy
from backtest.tapes import TapeStore
from backtest.targets import (
    Target,
    liquidated_window,
    load_targets,
    open_interest_change,
    share_of_open_interest,
)
from backtest.validation import describe, read_toml


class FitParameter(BaseModel):
    """One fitted parameter: a :class:`BookParams` or ``[response]`` field and its bounds."""

    model_config = ConfigDict(extra="forbid")
    name: str
    low: float
    high: float
    start: float


class EventSpec(BaseModel):
    """One event the book is held against (tape selection and target lookup)."""

    model_config = ConfigDict(extra="forbid")
    event: str
    symbol: str
    interval: str
    venue: str
    asset: str
    share_low: float | None = Field(None, gt=0.0, le=1.0)
    share_high: float | None = Field(None, gt=0.0, le=1.0)
    long_share: float | None = Field(None, gt=0.0, le=1.0)


class CalibrationConfig(BaseModel):
    """A calibration file (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")
    name: str
    book: Path
    policy: str
    accounts: int = Field(4000, gt=0)
    seed: int = 7
    interval_minutes: int = Field(5, gt=0)
    long_share_weight: float = Field(1.0, ge=0.0)
    open_interest_weight: float = Field(0.0, ge=0.0)
    timing_weight: float = Field(0.0, ge=0.0)
    grid_points: int = Field(0, ge=0, le=9)
    max_evaluations: int = Field(80, gt=0)
    leave_one_out_evaluations: int = Field(40, gt=0)
    seed_spread: int = Field(0, ge=0)
    response: ResponseConfig = ResponseConfig()
    execution: Execution = Execution()
    tape_venue: str = "binance"
    held_out_targets: list[str] = []
    fit: list[FitParameter] = Field(min_length=1)
    event: list[EventSpec] = Field(min_length=1)


@dataclass
class EventData:
    """An event's candles (coarsened), its window and its real figures."""

    spec: EventSpec
    timestamp: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    start: object
    end: object
    share: tuple[float, float]
    long_share: float | None
    oi_change: tuple[float, float] | None = None
    liquidated_window: tuple[int, int] | None = None  # epoch ms; None: the whole window
    windows: tuple = ()  # (inner ms pair, outer ms pair, real fraction): published sub-windows
    traded: Prices | None = None  # the window's candles from the file's tape_venue, if not
    # Binance's (module docstring, "The window's candles")

    @property
    def real_share(self) -> float:
        """Geometric middle of the real share's range."""
        return math.sqrt(self.share[0] * self.share[1])

    @property
    def real_oi_change(self) -> float | None:
        """Geometric middle of the real open interest after over before (None: no figure)."""
        return None if self.oi_change is None else math.sqrt(self.oi_change[0]
                                                              * self.oi_change[1])


@dataclass
class EventOutcome:
    """Simulated figures of one event under one parameter set."""

    event: str
    share: float
    long_share: float
    real_share: float
    real_long_share: float | None
    step_ms: np.ndarray = field(repr=False)
    step_share: np.ndarray = field(repr=False)  # liquidated notional per step / book size
    low_step: int = 0  # step of the window's lowest low
    oi_change: float = float("nan")  # perp open interest at the window end / at its start
    real_oi_change: float | None = None
    windows: tuple = ()  # the event's published sub-windows (EventData.windows)

    @property
    def share_after_low(self) -> float:
        """Fraction of the simulated liquidated notional in the steps after the window's low."""
        total = self.step_share.sum()
        return float(self.step_share[self.low_step + 1:].sum() / total) if total > 0 else 0.0

    def fraction_within(self, inner: tuple[int, int], outer: tuple[int, int]) -> float:
        """Return simulated liquidations in the ``inner`` window over those in ``outer``.

        Both windows are in epoch ms.
        """
        def part(a, b):
            return self.step_share[(self.step_ms >= a) & (self.step_ms < b)].sum()
        total = part(*outer)
        return float(part(*inner) / total) if total > 0 else float("nan")

    @property
    def ratio(self) -> float:
        """Simulated over real liquidated share."""
        return self.share / self.real_share


def load_calibration(path: str | Path) -> CalibrationConfig:
    """Read and validate a calibration file.

    Raises
    ------
    ConfigError
        Unreadable file or invalid field (the message names file and field), or a fitted
        parameter that is neither a book generator nor a ``[response]`` field.
    """
    try:
        cfg = CalibrationConfig.model_validate(read_toml(path))
    except ValidationError as exc:
        raise ConfigError(describe(exc), path) from None
    for p in cfg.fit:
        if p.name not in BookParams.model_fields and p.name not in ResponseConfig.model_fields:
            raise ConfigError(f"field 'fit.{p.name}': not a book or response parameter", path)
        if not p.low < p.start < p.high:
            raise ConfigError(f"field 'fit.{p.name}': need low < start < high", path)
    return cfg


def _coarsen(a: dict, minutes: int, interval_seconds: int) -> dict:
    k = max(1, minutes * 60 // interval_seconds)
    if k == 1:
        return a
    n = len(a["close"]) // k * k
    shaped = {name: a[name][:n].reshape(-1, k) for name in a}
    return {"timestamp": shaped["timestamp"][:, 0], "open": shaped["open"][:, 0],
            "high": shaped["high"].max(1), "low": shaped["low"].min(1),
            "close": shaped["close"][:, -1], "volume": shaped["volume"].sum(1)}


def _candles(tape, start, end, minutes: int) -> dict:
    """Return ``tape``'s candles in ``[start, end)``, coarsened to ``minutes``."""
    full = tape.arrays()
    sel = (full["timestamp"] >= int(start.timestamp() * 1000)) & (
        full["timestamp"] < int(end.timestamp() * 1000))
    return _coarsen({k: np.ascontiguousarray(full[k][sel]) for k in
                     ("timestamp", "open", "high", "low", "close", "volume")},
                    minutes, tape.interval_seconds)


def event_data(cfg: CalibrationConfig, spec: EventSpec, base: BookParams,
               targets: list[Target], store=None, events=None) -> EventData:
    """Load an event's tape (lookback and window) and its real share of open interest.

    ``targets`` are the figures the fit may read (loaded once, less the file's
    ``held_out_targets``: :meth:`Calibration.load`); every real figure comes from them.

    Raises
    ------
    ConfigError
        No target gives the event's liquidated share (and the spec gives none).
    """
    ev = get_event(spec.event, events)
    lookback = ev.start - timedelta(days=base.lookback_days)
    tape_store = TapeStore(paths.tape_store(store))
    tape = tape_store.resolve(spec.symbol, lookback, ev.end, "binance", None, spec.interval)
    a = _candles(tape, lookback, ev.end, cfg.interval_minutes)
    share = None
    if spec.share_low is not None:
        share = (spec.share_low, spec.share_high or spec.share_low)
    else:
        share = share_of_open_interest(spec.event, spec.venue, spec.asset, targets=targets,
                                       of=size_measure(base))
    if share is None:
        raise ConfigError(f"event {spec.event}: no target gives the liquidated share of "
                          f"{size_measure(base)} for {spec.venue} {spec.asset} (a "
                          "liquidated_notional_usd target and that level's)")
    long_share = spec.long_share
    if long_share is None:
        for t in targets:
            if (t.event == spec.event and t.measure == "long_share_of_liquidations"
                    and t.venue == spec.venue):
                long_share = math.sqrt(t.low * t.high)
    counted = None
    if spec.share_low is None:
        window = liquidated_window(spec.event, spec.venue, spec.asset, targets=targets)
        counted = tuple(int(t.timestamp() * 1000) for t in window) if window else None
    windows = tuple((w["inner"], w["outer"], w["real_fraction"])
                    for w in sub_windows(spec.event, targets)
                    if (w["venue"], w["asset"]) == (spec.venue, spec.asset))
    traded = None
    if cfg.tape_venue != "binance":
        traded = _window_candles(cfg, spec, ev, a["timestamp"], tape_store)
    return EventData(spec, a["timestamp"], a["open"], a["high"], a["low"], a["close"],
                     a["volume"], ev.start, ev.end, share, long_share,
                     open_interest_change(spec.event, spec.venue, spec.asset, targets=targets),
                     counted, windows, traded)


def _window_candles(cfg: CalibrationConfig, spec: EventSpec, ev, timestamp: np.ndarray,
                    tape_store: TapeStore) -> Prices:
    """Return the window's candles from ``cfg.tape_venue``, on the Binance window's timestamps.

    Raises
    ------
    ConfigError
        That venue's tape does not cover the window, or its candles do not fall on Binance's.
    """
    try:
        tape = tape_store.resolve(spec.symbol, ev.start, ev.end, cfg.tape_venue, None,
                                  spec.interval)
    except TapeError as exc:
        raise ConfigError(f"field 'tape_venue': event {spec.event}: {exc}") from None
    a = _candles(tape, ev.start, ev.end, cfg.interval_minutes)
    want = timestamp[timestamp >= int(ev.start.timestamp() * 1000)]
    if not np.array_equal(a["timestamp"], want):
        raise ConfigError(f"field 'tape_venue': event {spec.event}: the {cfg.tape_venue} "
                          f"{spec.symbol} {spec.interval} candles ({len(a['timestamp'])}) do "
                          f"not fall on the window's Binance candles ({len(want)})")
    return Prices(a["open"], a["high"], a["low"], a["close"])


# the fit's books: unsized, equal notionals (module docstring, "equal notional")
_EQUAL_SIZES = {"size_usd": None, "perp_notional_sigma": 0.0, "loan_collateral_sigma": 0.0}


def apply(base: BookParams, response: ResponseConfig, names: list[str], values
          ) -> tuple[BookParams, ResponseConfig]:
    """Return the generator and response parameters with ``names`` set to ``values``."""
    book = {n: float(v) for n, v in zip(names, values, strict=True)
            if n in BookParams.model_fields}
    resp = {n: float(v) for n, v in zip(names, values, strict=True)
            if n in ResponseConfig.model_fields}
    return (base.model_copy(update=book), response.model_copy(update=resp))


def simulate_event(data: EventData, params: BookParams, response: ResponseConfig, policy,
                   accounts: int, seed: int,
                   execution: Execution | None = None) -> EventOutcome:
    """Run the as-happened policy on a book drawn with ``params``; return the liquidated share.

    Parameters
    ----------
    data : EventData
    params : BookParams
        Generator parameters; the book is drawn unsized, with equal notionals (module
        docstring, "equal notional"): shares are ratios.
    response : ResponseConfig
        Cure parameters (``enabled`` switches them on).
    policy : ndarray, shape (1,), ``POLICY_DTYPE``
        The packed as-happened policy.
    accounts, seed : int
        Book granularity and seed.
    execution : Execution, optional
        How candles trigger and fill liquidations, as a run's ``[execution]`` (default: on
        the candle's low or high, filled there).
    """
    execution = execution or Execution()
    book = generate_book(accounts, data.timestamp, data.close, data.low, data.high, data.start,
                         seed, params.model_copy(update=_EQUAL_SIZES), volume=data.volume,
                         window_end=data.end)
    arrays = book.arrays()
    start_ms = int(data.start.timestamp() * 1000)
    w = data.timestamp >= start_ms
    window_ms = data.timestamp[w]
    interval_s = float(np.median(np.diff(window_ms))) / 1000.0
    resp = response_for(response, int(round(interval_s)))
    entry_ms = book.frame["entry_time"].dt.epoch("ms").to_numpy()
    units0, cash0, flow = book_flow(book.frame["account_id"].to_numpy(), arrays["units"],
                                    arrays["cash"], arrays["equity_at_entry"], entry_ms,
                                    window_ms, resp, exit_times_ms(book.frame))
    prices = data.traded if data.traded is not None else Prices(
        data.open[w], data.high[w], data.low[w], data.close[w])
    res = simulate(prices, arrays["product"], units0, cash0, policy, execution.trigger_mode,
                   execution.fill_mode, flow=flow)
    loan = arrays["product"] == 1
    opened = flow.arrival_step < 0
    # open interest as venues publish it counts each contract once: half the perps' notional
    # over both sides (module docstring, "Share"); loans: their debt, or their collateral
    before = data.close[~w][-1]
    loans = units0 * before if size_measure(params) == "collateral_usd" else -cash0
    held = np.where(loan, loans, 0.5 * np.abs(units0) * before)[opened].sum()
    rec = res.records
    notional = np.abs(rec["units_closed"]) * rec["fill_price"]
    per_step = np.zeros(len(window_ms))
    np.add.at(per_step, rec["step"], notional)
    counted = np.ones(len(rec), bool)
    if data.liquidated_window is not None:  # the real figure's window, not the event's
        at = window_ms[rec["step"]]
        counted = (at >= data.liquidated_window[0]) & (at < data.liquidated_window[1])
    liquidated = notional[counted].sum()
    longs = notional[counted & (arrays["units"][rec["account"]] > 0)].sum()
    perp = ~loan
    oi_before = (np.abs(units0) * data.close[~w][-1])[perp & opened].sum()
    oi_after = (np.abs(res.units) * data.close[w][-1])[perp].sum()
    return EventOutcome(data.spec.event, liquidated / held,
                        longs / liquidated if liquidated > 0 else float("nan"),
                        data.real_share, data.long_share, window_ms, per_step / held,
                        int(np.argmin(data.low[w])),
                        oi_after / oi_before if oi_before > 0 else float("nan"),
                        data.real_oi_change, data.windows)


def _to_unit(values, bounds):
    return [math.log((v - lo) / (hi - v)) for v, (lo, hi) in zip(values, bounds, strict=True)]


def _from_unit(z, bounds):
    return [lo + (hi - lo) / (1.0 + math.exp(-x)) for x, (lo, hi) in zip(z, bounds, strict=True)]


@dataclass
class FitResult:
    """Fitted values, the objective and each event's outcome."""

    values: dict[str, float]
    objective: float
    outcomes: list[EventOutcome]
    evaluations: int
    seconds: float


class Calibration:
    """Fits a :class:`CalibrationConfig`; events are loaded once."""

    def __init__(self, cfg: CalibrationConfig, data: list[EventData], base: BookParams, policy):
        self.cfg = cfg
        self.base = base
        self.response = cfg.response
        self.policy = policy
        self.data = data
        self.names = [p.name for p in cfg.fit]
        self.bounds = [(p.low, p.high) for p in cfg.fit]

    @classmethod
    def load(cls, cfg: CalibrationConfig, store=None, strategies=None, events=None,
             validation=None) -> Calibration:
        """Read the base parameters, the policy, every event's tape and real figures."""
        from backtest.books.event import load_book_params

        base = load_book_params(cfg.book)
        targets = load_targets(validation)  # read once: every real figure comes from it
        known = {t.key for t in targets}
        for key in cfg.held_out_targets:
            if key not in known:
                raise ConfigError(f"field 'held_out_targets': no target {key!r} in "
                                  "data/validation (a key is '<event>/<id>')")
        held = set(cfg.held_out_targets)
        fitted = [t for t in targets if t.key not in held]
        data = [event_data(cfg, s, base, fitted, store, events) for s in cfg.event]
        return cls(cfg, data, base, load_policy(cfg.policy, strategies))

    def outcomes(self, values, events: list[EventData] | None = None,
                 seed: int | None = None) -> list[EventOutcome]:
        """Simulate every event (or ``events``) with the fitted parameters set to ``values``.

        The books are drawn with ``seed`` (default the file's).
        """
        params, response = apply(self.base, self.response, self.names, values)
        seed = self.cfg.seed if seed is None else seed
        out = []
        for d in events or self.data:
            policy = pack_policy(self.policy, int(np.median(np.diff(d.timestamp)) // 1000))
            out.append(simulate_event(d, params, response, policy, self.cfg.accounts, seed,
                                      self.cfg.execution))
        return out

    def seed_spread(self, values, seeds: int | None = None) -> list[tuple[float, float]]:
        """Each event's ratio under ``values`` on books drawn with ``seeds`` other seeds.

        The fit's figures come from one draw (the file's ``seed``); this is their Monte-Carlo
        error: the same parameters, books drawn with seeds ``seed + 1 .. seed + seeds``
        (default the file's ``seed_spread``).

        Returns
        -------
        list of (float, float)
            Per event, in the file's order: the mean ratio (simulated over real share) and its
            coefficient of variation (sample standard deviation over the mean; NaN for one
            seed).
        """
        seeds = self.cfg.seed_spread if seeds is None else seeds
        ratios = [[o.ratio for o in self.outcomes(values, seed=self.cfg.seed + k)]
                  for k in range(1, seeds + 1)]
        r = np.asarray(ratios, dtype=float).reshape(seeds, len(self.data))
        mean = r.mean(axis=0)
        spread = r.std(axis=0, ddof=1) / mean if seeds > 1 else np.full(len(mean), np.nan)
        return [(float(m), float(c)) for m, c in zip(mean, spread, strict=True)]

    def objective(self, outcomes: list[EventOutcome]) -> float:
        """Return the documented objective (module docstring) of a list of outcomes."""
        total = 0.0
        for o in outcomes:
            total += math.log(max(o.share, 1e-6) / o.real_share) ** 2
            if o.real_long_share is not None and math.isfinite(o.long_share):
                total += self.cfg.long_share_weight * (o.long_share - o.real_long_share) ** 2
            if (self.cfg.open_interest_weight > 0 and o.real_oi_change is not None
                    and math.isfinite(o.oi_change)):
                total += self.cfg.open_interest_weight * math.log(
                    max(o.oi_change, 1e-6) / o.real_oi_change) ** 2
            for inner, outer, real in o.windows if self.cfg.timing_weight > 0 else ():
                simulated = o.fraction_within(inner, outer)
                simulated = simulated if math.isfinite(simulated) else 0.0
                total += self.cfg.timing_weight * (simulated - real) ** 2
        return total

    def fit(self, events: list[EventData] | None = None, start=None,
            max_evaluations: int | None = None) -> FitResult:
        """Minimise the objective over ``events`` (default all) from ``start`` (default file)."""
        from scipy.optimize import minimize

        t0 = time.perf_counter()
        x0 = _to_unit(start or [p.start for p in self.cfg.fit], self.bounds)
        cache: dict[tuple, float] = {}

        def f(z):
            key = tuple(np.round(z, 12))
            if key not in cache:
                cache[key] = self.objective(self.outcomes(_from_unit(z, self.bounds), events))
            return cache[key]

        if self.cfg.grid_points:  # a coarse grid first: Nelder-Mead starts from its best point
            axis = np.linspace(-2.0, 2.0, self.cfg.grid_points)
            grid = [np.asarray(z) for z in itertools.product(axis, repeat=len(x0))]
            x0 = min([np.asarray(x0), *grid], key=f)

        res = minimize(f, x0, method="Nelder-Mead",
                       options={"maxfev": max_evaluations or self.cfg.max_evaluations,
                                "xatol": 1e-3, "fatol": 1e-4,
                                "initial_simplex": _simplex(x0)})
        values = _from_unit(res.x, self.bounds)
        outcomes = self.outcomes(values, events)
        return FitResult(dict(zip(self.names, values, strict=True)), self.objective(outcomes),
                         outcomes, len(cache), time.perf_counter() - t0)

    def leave_one_out(self, full: FitResult, max_evaluations: int | None = None
                      ) -> list[tuple[EventOutcome, FitResult]]:
        """Refit without each event; return its outcome under the fit that never saw it.

        Each refit starts from the full fit and takes at most ``max_evaluations`` (default the
        file's ``leave_one_out_evaluations``).
        """
        max_evaluations = max_evaluations or self.cfg.leave_one_out_evaluations
        out = []
        start = [full.values[n] for n in self.names]
        for held in self.data:
            rest = [d for d in self.data if d is not held]
            fitted = self.fit(rest, start, max_evaluations)
            out.append((self.outcomes(list(fitted.values.values()), [held])[0], fitted))
        return out


def _simplex(x0) -> np.ndarray:
    """Return a start simplex one logistic unit wide in every parameter."""
    n = len(x0)
    simplex = np.tile(np.asarray(x0, float), (n + 1, 1))
    for k in range(n):
        simplex[k + 1, k] += 1.0
    return simplex
