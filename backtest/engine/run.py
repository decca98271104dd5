"""Execute a run config: resolve inputs, simulate every policy, write and register results.

This is the engine layer's entry point (``liqbt run CONFIG``): it assembles arrays from the
tape, book and policies, dispatches the kernel per policy with a progress bar, and hands the
outputs to :mod:`backtest.results.writer`. Nothing is written unless every policy finished.

Why over 400 lines: it is the run pipeline in the order it happens (resolve inputs, check them,
simulate every policy, reserve a run id, write), each step a short function the next one calls.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numba
import numpy as np
from pydantic import ValidationError

from backtest import paths
from backtest._jit import threading_layer
from backtest.books import read_book
from backtest.books.schema import Book
from backtest.engine.book_flow import BookFlow, Response, book_flow, exit_times_ms
from backtest.engine.config import ResponseConfig, RunConfig, load_run_config
from backtest.engine.dispatch import Prices, SimulationResult, liquidation_order, simulate
from backtest.engine.market import (
    MarketInputs,
    depth_per_step,
    for_liquidator,
    gas_cost_per_step,
    mark_prices,
    market_record,
    steps_of,
)
from backtest.engine.risk import risk_inputs
from backtest.engine.warmup import warm_up
from backtest.errors import BookError, ConfigError, TapeError
from backtest.events import get_event
from backtest.kernels.enums import ImpactModel, StepMetric
from backtest.policies import load_policy, pack_policy
from backtest.progress import progress_bar
from backtest.provenance import runtime
from backtest.tapes import Tape, TapeStore
from backtest.validation import check_input_file, check_output_dir, describe


@dataclass
class Inputs:
    """Everything a run simulates, resolved and validated."""

    config: RunConfig
    config_path: Path
    event: str | None
    symbol: str
    start: datetime
    end: datetime
    tape: Tape
    window: Tape
    book: Book
    policies: list  # list of (policy model, file path)
    market: MarketInputs | None = None
    overrides: list[str] = field(default_factory=list)  # KEY=VALUE replacements of the file
    start_state: dict | None = None  # product, units, cash at the window start (arrivals: 0)
    book_state: dict | None = None  # product, units, cash of each account once open
    book_products: dict | None = None  # accounts per product name, once the frame is dropped
    flow: BookFlow | None = None  # arrivals during the window and cures
    as_happened: tuple | None = None  # (policy model, file path) of [market] as_happened_policy


@dataclass
class PolicyOutcome:
    """Simulation output of one policy with its timing."""

    name: str
    policy: object
    path: Path
    result: SimulationResult
    seconds: float


def resolve_inputs(config_path: str | Path, store: str | Path | None = None,
                   strategies: str | Path | None = None,
                   events: str | Path | None = None,
                   overrides: list[str] | None = None) -> Inputs:
    """Load a run config and everything it names; validate their consistency.

    ``overrides`` are ``KEY=VALUE`` replacements of config fields (``liqbt run --set``).

    Raises
    ------
    ConfigError, TapeError, BookError
        With a message naming the file and the problem: unknown event or policy, no tape
        covering the window, a book for another symbol or with entries after the window start.
    """
    config_path = Path(config_path)
    return resolve_config(load_run_config(config_path, overrides), config_path, store,
                          strategies, events, overrides)


def resolve_config(cfg: RunConfig, config_path: str | Path, store: str | Path | None = None,
                   strategies: str | Path | None = None,
                   events: str | Path | None = None,
                   overrides: list[str] | None = None) -> Inputs:
    """Resolve an already validated run config (see :func:`resolve_inputs`).

    Parameters
    ----------
    cfg : RunConfig
        The validated config, e.g. built in memory by a sweep.
    config_path : str or Path
        Where the config came from; named in error messages and recorded in manifests.
    store, strategies, events : str or Path, optional
        Override the tape store, strategies directory and event catalog.
    overrides : list of str, optional
        The ``KEY=VALUE`` overrides already applied to ``cfg`` (recorded in manifests).

    Raises
    ------
    ConfigError, TapeError, BookError
        As :func:`resolve_inputs`.
    """
    config_path = Path(config_path)
    event = get_event(cfg.event, events) if cfg.event else None
    start = cfg.start or event.start
    end = cfg.end or event.end
    symbol = cfg.symbol or (event.symbols[0] if event else None)
    if cfg.tape.path is not None:
        tape = Tape.from_parquet(cfg.tape.path)
        symbol = symbol or tape.meta.symbol
    elif symbol is None:
        raise ConfigError("field 'symbol': required when no event or tape path is given",
                          config_path)
    else:
        tape = TapeStore(paths.tape_store(store)).resolve(
            symbol, start, end, cfg.tape.venue, cfg.tape.market, cfg.tape.interval
        )
    window = tape.window(start, end)
    if window.rows < 2:
        raise TapeError(f"the tape has {window.rows} candles in the window {start} .. {end}",
                        tape.path)
    book = read_book(cfg.book)
    book_symbol = book.meta.get("symbol")
    if book_symbol and _base(book_symbol) != _base(tape.meta.symbol):
        raise BookError(f"the book was generated for {book_symbol} but the run simulates "
                        f"{tape.meta.symbol} (config {config_path})", book.path)
    latest = book.frame["entry_time"].max()
    if latest is not None and latest >= end:
        raise BookError(f"an account was opened at {latest}, after the window ends ({end}): "
                        "a book holds positions open at the start or opened during the window",
                        book.path)
    policies = []
    for name in cfg.policies:
        policy = load_policy(name, strategies)
        policies.append((policy, _policy_path(name, strategies)))
    names = [p.name for p, _ in policies]
    if len(set(names)) != len(names):
        raise ConfigError(f"field 'policies': two policies share a name ({names})", config_path)
    inputs = Inputs(cfg, config_path, cfg.event, tape.meta.symbol, start, end, tape, window,
                    book, policies, overrides=list(overrides or []))
    if cfg.market.counterfactual:
        inputs.as_happened = as_happened_policy(cfg.market.as_happened_policy, policies,
                                                strategies)
    inputs.market = market_inputs(inputs, store)  # reads the gas tape: config errors surface here
    inputs.start_state, inputs.flow = moving_book(inputs)
    return inputs


def drop_book_columns(inputs: Inputs) -> None:
    """Keep only what simulating and writing a run need of the book (issue 17: memory).

    Once the state arrays are extracted (:func:`moving_book`: ``start_state``, ``book_state``
    and the flow), :func:`execute` reads only ``account_id`` of the frame, and the accounts
    per product (counted here, for the manifest): the other columns (about 50 bytes per
    account) are dropped. A flow in which nothing moves (no arrival, close or responder) is
    dropped too (17 bytes per account): the kernel and the result tables treat None the same
    (arrivals -1, no margin, no closes).
    """
    frame = inputs.book.frame
    inputs.book_products = {str(k): int(v)
                            for k, v in frame["product"].value_counts().iter_rows()}
    inputs.book = Book(frame.select("account_id"), inputs.book.meta, inputs.book.path)
    if inputs.flow is not None and not inputs.flow.active:
        inputs.flow = None


def response_for(cfg: ResponseConfig, interval_seconds: int,
                 inclusion_minutes: float = 0.0) -> Response | None:
    """Return the kernel's cure parameters for a ``[response]`` section (None when off).

    Parameters
    ----------
    cfg : ResponseConfig
        The section; ``enabled`` None or False gives None.
    interval_seconds : int
        Candle length, seconds: the delay becomes whole steps (at least 1 when > 0).
    inclusion_minutes : float
        The run's wait for a transaction to be included (``[keepers] latency_minutes``),
        added to ``delay_minutes`` when ``cfg.wait_for_inclusion``.
    """
    if not cfg.enabled:
        return None
    minutes = cfg.delay_minutes + (inclusion_minutes if cfg.wait_for_inclusion else 0.0)
    delay = steps_of(minutes, interval_seconds) if minutes > 0 else 0
    return Response(cfg.share, (cfg.perp_warning_health, cfg.warning_health),
                    (cfg.perp_target_health, cfg.target_health), delay, cfg.seed,
                    cfg.max_cures, cfg.perp_reference_maintenance_rate,
                    cfg.loan_cure == "top_up")


def moving_book(inputs: Inputs) -> tuple[dict, BookFlow]:
    """Return the book's state at the window start and its flow during the window.

    Raises
    ------
    BookError
        An account opens after the window's last candle.
    """
    book = inputs.book.arrays()
    cfg = inputs.config.response
    if cfg.enabled is None and inputs.book.meta.get("response"):
        try:  # the cures the book was calibrated with
            cfg = ResponseConfig.model_validate_json(inputs.book.meta["response"])
        except ValidationError as exc:
            raise BookError(f"metadata 'response': {describe(exc)}", inputs.book.path) from None
    response = response_for(cfg, inputs.tape.interval_seconds,
                            inputs.config.keepers.latency_minutes)
    entry_ms = inputs.book.frame["entry_time"].dt.epoch("ms").to_numpy()
    try:
        units0, cash0, flow = book_flow(inputs.book.frame["account_id"].to_numpy(),
                                        book["units"], book["cash"], book["equity_at_entry"],
                                        entry_ms, inputs.window.arrays()["timestamp"], response,
                                        exit_times_ms(inputs.book.frame))
    except ValueError as exc:
        raise BookError(str(exc), inputs.book.path) from None
    inputs.book_state = {"product": book["product"], "units": book["units"],
                         "cash": book["cash"]}
    return {"product": book["product"], "units": units0, "cash": cash0}, flow
def as_happened_policy(name: str, policies: list, strategies=None) -> tuple:
    """Return ``(policy, path)`` of the as-happened policy: one of the run's, else a preset.

    Raises
    ------
    ConfigError
        Unknown policy (names the field ``market.as_happened_policy``).
    """
    for policy, path in policies:
        if policy.name == name:
            return policy, path
    try:
        return load_policy(name, strategies), _policy_path(name, strategies)
    except ConfigError as exc:
        raise ConfigError(f"field 'market.as_happened_policy': {exc}") from None


def simulate_policies(inputs: Inputs, show_progress: bool = True
                      ) -> tuple[list[PolicyOutcome], float]:
    """Simulate every policy of ``inputs``; return outcomes and the JIT warm-up seconds.

    With ``[market] counterfactual`` the as-happened policy runs first without any impact; its
    net liquidation flow per step (``StepMetric.NET_FLOW``, USD) is the flow the historical
    tape already carries, and every policy's impact and cascade feedback then use its own flow
    minus that one (:mod:`backtest.kernels.impact_nb`). The as-happened policy itself therefore
    moves nothing: its outcome equals a run without impact, bit for bit.
    """
    compile_seconds = warm_up()
    arrays = inputs.window.arrays()
    prices = Prices(arrays["open"], arrays["high"], arrays["low"], arrays["close"])
    book = inputs.start_state
    execution = inputs.config.execution
    market = inputs.market
    order = liquidation_order(book["product"], book["units"], book["cash"])
    full = inputs.tape.arrays()
    full_close = full["close"]
    start = window_start(full["timestamp"], arrays["timestamp"])
    outcomes = []
    runs = list(inputs.policies)
    if inputs.as_happened is not None:
        runs.insert(0, None)  # the as-happened pass
    total = len(prices) * len(runs)

    def run(policy, record, baseline, advance):
        return simulate(prices, book["product"], book["units"], book["cash"],
                        pack_policy(policy, inputs.tape.interval_seconds),
                        execution.trigger_mode, execution.fill_mode,
                        progress=advance, order=order,
                        market=record, depth=market.depth, gas_usd=market.gas_usd,
                        insurance_fund_usd=inputs.config.insurance_fund.initial_balance_usd,
                        funding_rate=arrays["funding_rate"], volume=arrays["volume"],
                        risk=risk_inputs(policy, full_close, start, len(prices),
                                         inputs.tape.interval_seconds), mark=market.mark,
                        impact_baseline=baseline, flow=inputs.flow)

    baseline = None
    with progress_bar(show_progress) as bar:
        task = bar.add_task(f"{inputs.config.name}: {len(inputs.book):,} accounts", total=total)
        if inputs.as_happened is not None:
            policy = inputs.as_happened[0]
            bar.update(task, description=f"{inputs.config.name}: as happened ({policy.name})")
            baseline = run(policy, no_impact(for_liquidator(market.record, policy.liquidator)),
                           None,
                           lambda k: bar.advance(task, k)).step_metrics[:, StepMetric.NET_FLOW]
            baseline = baseline.copy()
        for policy, path in inputs.policies:
            bar.update(task, description=f"{inputs.config.name}: {policy.name}")
            t0 = time.perf_counter()
            res = run(policy, for_liquidator(market.record, policy.liquidator), baseline,
                      lambda k: bar.advance(task, k))
            outcomes.append(PolicyOutcome(policy.name, policy, path, res,
                                          time.perf_counter() - t0))
    return outcomes, compile_seconds


def no_impact(record: np.ndarray) -> np.ndarray:
    """Return a copy of a ``MARKET_DTYPE`` record with no impact and no cascade feedback."""
    out = record.copy()
    out["impact_model"] = int(ImpactModel.NONE)
    out["cascade"] = 0
    return out


def window_start(tape_ms: np.ndarray, window_ms: np.ndarray) -> int:
    """Return the row of the tape where the window starts.

    ``tape_ms`` (shape (T_tape,)) and ``window_ms`` (shape (T,)) are candle open times, epoch ms.
    """
    return int(np.searchsorted(tape_ms, window_ms[0]))


def market_inputs(inputs: Inputs, store: str | Path | None = None) -> MarketInputs:
    """Return the kernels' market record, and per step the depth and gas cost (USD)."""
    cfg = inputs.config
    full = inputs.tape.arrays()
    window = inputs.window.arrays()
    start = window_start(full["timestamp"], window["timestamp"])
    interval = inputs.tape.interval_seconds
    record = market_record(cfg.market, cfg.oracle, cfg.keepers, interval)
    depth, depth_info = depth_per_step(cfg.market, full, slice(start, start + inputs.window.rows),
                                       inputs.tape.path, inputs.book.meta.get("venue"))
    gas, gas_info = gas_cost_per_step(cfg.keepers, window["timestamp"], window["close"],
                                      inputs.tape.meta.base)
    mark = None
    if cfg.oracle.model == "mark":
        meta = inputs.tape.meta
        mark_tape = TapeStore(paths.tape_store(store)).resolve(
            inputs.symbol, inputs.start, inputs.end, cfg.oracle.mark_venue or meta.venue,
            cfg.oracle.mark_market, meta.interval)
        m = mark_tape.arrays()
        mark = mark_prices(window["timestamp"], m["timestamp"], m["low"], m["high"],
                           m["close"], mark_tape.path)
    return MarketInputs(record, depth, gas, gas_info, mark, depth_info)


def execute(config_path: str | Path, runs: str | Path | None = None,
            store: str | Path | None = None, strategies: str | Path | None = None,
            events: str | Path | None = None, show_progress: bool = True,
            overrides: list[str] | None = None) -> tuple[str, Path]:
    """Run a config end to end and write its run directory (which registers it).

    Parameters
    ----------
    config_path : str or Path
        Run config (TOML).
    runs, store, strategies, events : str or Path, optional
        Override the runs directory, tape store, strategies directory and event catalog.
    show_progress : bool
        Show a progress bar on the terminal.
    overrides : list of str, optional
        ``KEY=VALUE`` replacements of config fields (dotted keys, TOML values).

    Returns
    -------
    run_id : str
    run_dir : Path

    Raises
    ------
    LiqbtError
        Any input problem, found before simulating: an unreadable, empty or directory
        input, a runs directory that cannot be created or written. Nothing is written then.
    """
    from backtest.results.writer import write_run

    t_start = time.perf_counter()
    root = paths.runs_dir(runs)
    check_output_dir(root, "runs directory")  # before minutes of simulation, not after
    inputs = resolve_inputs(config_path, store, strategies, events, overrides)
    check_inputs(inputs)
    drop_book_columns(inputs)
    t_loaded = time.perf_counter()
    outcomes, compile_seconds = simulate_policies(inputs, show_progress)
    t_simulated = time.perf_counter()
    created = datetime.now(UTC)
    timings = {
        "load_seconds": t_loaded - t_start,
        "jit_warmup_seconds": compile_seconds,
        "simulate_seconds": t_simulated - t_loaded - compile_seconds,
        "per_policy_seconds": {o.name: o.seconds for o in outcomes},
        "account_steps_per_second": {
            o.name: len(inputs.book) * inputs.window.rows / o.seconds for o in outcomes
        },
        "threads": numba.get_num_threads(),
        "threading_layer": threading_layer(),
    }
    base_id = f"{created:%Y%m%dT%H%M%S}-{inputs.config.name}-{_digest(inputs)}"
    with reserved_run_id(root, base_id) as run_id:
        run_dir = root / run_id
        write_run(run_dir, run_id, created, inputs, outcomes, timings,
                  runtime=runtime(), t_start=t_start)
    return run_id, run_dir


def check_inputs(inputs: Inputs) -> None:
    """Check that every file a run hashes into its manifest is a readable regular file.

    Run before simulating, so that a directory given as the book, tape, config or policy
    fails at once instead of after the simulation.

    Raises
    ------
    ConfigError, BookError, TapeError
        Naming the file.
    """
    check_input_file(inputs.config_path, "run config")
    check_input_file(inputs.book.path, "book", BookError)
    if inputs.tape.path is not None:
        check_input_file(inputs.tape.path, "tape", TapeError)
    for policy, path in inputs.policies:
        check_input_file(path, f"policy '{policy.name}'")
    for name, count in (("accounts", len(inputs.book)), ("policies", len(inputs.policies))):
        if count == 0:
            raise ConfigError(f"the run has no {name}: nothing to simulate", inputs.config_path)


@contextlib.contextmanager
def reserved_run_id(root: Path, base_id: str) -> Iterator[str]:
    """Yield a run id free in ``root``: ``base_id``, else ``base_id-2``, ``-3``, ...

    Runs of the same config started in the same second share ``base_id``; each takes the
    first id whose hidden reservation ``.<run_id>.id.tmp`` it creates (``mkdir`` is atomic)
    and whose run directory does not exist. The reservation is removed on exit; one left by
    a killed run is removed by :func:`backtest.atomic.remove_stale_temporaries` once stale.

    Raises
    ------
    ConfigError
        If the runs directory cannot be created.
    """
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the runs directory: {exc.strerror}", root) from None
    k = 1
    while True:
        run_id = base_id if k == 1 else f"{base_id}-{k}"
        marker = root / f".{run_id}.id.tmp"
        if not (root / run_id).exists():
            try:
                marker.mkdir()
            except FileExistsError:
                pass
            else:
                if not (root / run_id).exists():
                    break
                marker.rmdir()
        k += 1
    try:
        yield run_id
    finally:
        shutil.rmtree(marker, ignore_errors=True)


def _policy_path(name: str, strategies) -> Path:
    path = Path(name)
    if path.suffix == ".toml" or path.exists():
        return path
    return paths.strategies_dir(strategies) / f"{name}.toml"


def _base(symbol: str) -> str:
    return symbol.split("/")[0].upper()


def _digest(inputs: Inputs) -> str:
    h = hashlib.sha256(inputs.config.model_dump_json().encode())
    h.update(str(inputs.book.path).encode())
    return h.hexdigest()[:8]



