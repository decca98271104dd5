"""Dispatch the liquidation kernel over a tape window for one policy.

Allocates the account state and record buffers, calls
:func:`backtest.kernels.steps_nb.run_steps_nb` in blocks of steps (reporting progress
between blocks and flushing records when a chunk's buffer fills), and returns the final state,
the per-step aggregates and the liquidation records in a deterministic order.

Why over 400 lines: it is the one driver of the single-asset kernel (state and record buffers,
blocks of steps, flushing, the ADL hand-off), whose parts share the driver's loop state; it is
split when the single-asset, portfolio and options paths get one driver.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from backtest.engine.book_flow import BookFlow, kernel_flow, no_kernel_flow
from backtest.engine.decoupled import PATHS, run_decoupled
from backtest.jit_compat import kernel_records
from backtest.kernels.adl_nb import auto_deleverage_nb
from backtest.kernels.bands_nb import place_bands_nb
from backtest.kernels.enums import (
    MARKET_DTYPE,
    MARKET_STATE_SIZE,
    N_BAND_FIELDS,
    N_RISK_INPUTS,
    N_STEP_METRICS,
    RECORD_FIELDS,
    ImpactModel,
    MarketState,
    OracleModel,
    PolicyFamily,
    Product,
    RiskInput,
    StepMetric,
)
from backtest.kernels.liquidation_nb import (
    REC_F_FIELDS,
    REC_I_FIELDS,
    gather_nb,
    liquidation_order_nb,
    scatter_nb,
    trigger_keys_nb,
)
from backtest.kernels.step_inputs import AccountState, AccountTotals, RecordBuffers, TapeInputs
from backtest.kernels.steps_nb import run_steps_nb
from backtest.results.simulation import SimulationResult

#: Accounts per chunk. Fixed (not derived from the thread count) so sums are reproducible.
CHUNK_SIZE = 4096
#: Steps per kernel call between progress updates.
BLOCK_STEPS = 64
#: Liquidation-price buckets per (side, product) group of the processing order.
ORDER_BUCKETS = 1 << 16


@dataclass
class Prices:
    """Candle prices of a tape window, each shape (T,) float64, USD per unit."""

    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray

    def __len__(self) -> int:
        return len(self.close)


#: Fields of an auto-deleveraging record.
ADL_FIELDS = (
    ("step", np.int32),
    ("account", np.int64),  # row index of the account in the book
    ("units_closed", np.float64),  # signed units removed from the counterparty's position
    ("price", np.float64),  # market price the position was closed at, USD
    ("transfer", np.float64),  # USD paid towards the shortfall (bankruptcy-price gap)
)


def simulate(
    prices: Prices,
    product: np.ndarray,
    units: np.ndarray,
    cash: np.ndarray,
    policy: np.ndarray,
    trigger_mode: int,
    fill_mode: int,
    progress: Callable[[int], None] | None = None,
    chunk_size: int = CHUNK_SIZE,
    block_steps: int = BLOCK_STEPS,
    order: np.ndarray | None = None,
    market: np.ndarray | None = None,
    depth: np.ndarray | None = None,
    gas_usd: np.ndarray | None = None,
    insurance_fund_usd: float = 0.0,
    funding_rate: np.ndarray | None = None,
    volume: np.ndarray | None = None,
    risk: np.ndarray | None = None,
    mark: np.ndarray | None = None,
    flow: BookFlow | None = None,
    impact_baseline: np.ndarray | None = None,
    path: str = "auto",
) -> SimulationResult:
    """Run one policy over every step of ``prices``.

    Parameters
    ----------
    prices : Prices
        Candles of the window, T steps.
    product : ndarray, shape (N,), int8
        :class:`backtest.kernels.Product` per account.
    units, cash : ndarray, shape (N,), float64
        Initial state (asset units, USD); not modified.
    policy : ndarray, shape (1,), ``POLICY_DTYPE``
        Packed policy (:func:`backtest.policies.pack_policy`).
    trigger_mode, fill_mode : int
        :class:`backtest.kernels.TriggerPrice`, :class:`backtest.kernels.FillPrice`.
    progress : callable, optional
        Called with the number of steps just completed after each block.
    chunk_size, block_steps : int
        Accounts per chunk (fixes the summation order) and steps per kernel call.
    order : ndarray, shape (N,), int64, optional
        Processing order from :func:`liquidation_order` (computed if not given; pass it to
        reuse one sort across policies). Results are returned in the book's order either way.
    market : ndarray, shape (1,), ``MARKET_DTYPE``, optional
        Impact model and cascade parameters (:func:`market_params`); default: no impact.
    depth : ndarray, shape (T,), float64, optional
        Flow that moves the price by 1% in each step, USD (needed with an impact model).
    gas_usd : ndarray, shape (T,), float64, optional
        Gas cost of one liquidation per step, USD (default 0).
    insurance_fund_usd : float
        Insurance fund balance before the first step, USD.
    funding_rate : ndarray, shape (T,), float64, optional
        Funding rate settled at the start of each step (fraction, NaN: none); perps pay it.
    volume : ndarray, shape (T,), float64, optional
        Traded volume per step, asset units (needed by a policy with order slicing).
    risk : ndarray, shape (T, N_RISK_INPUTS), float64, optional
        Per-step risk inputs (:class:`backtest.kernels.enums.RiskInput`: maintenance margin
        scale, predictive shift) from :func:`backtest.engine.risk.risk_inputs`; default: scale
        1, no shift.
    mark : ndarray, shape (T, 3), float64, optional
        Low, high, close of the mark price per step, USD (required by ``OracleModel.MARK``).
    flow : BookFlow, optional
        Arrivals, voluntary closes and cures (:mod:`backtest.engine.book_flow`), applied by
        the kernel at the start of each step (a moving book runs in blocks of steps like a
        static one);
        ``units`` and ``cash`` then hold 0 for the accounts that arrive later.
    impact_baseline : ndarray, shape (T,), float64, optional
        Net liquidation flow per step already carried by the historical prices (the
        as-happened policy's ``NET_FLOW``), USD; impact and cascade feedback use this policy's
        net flow minus it (:mod:`backtest.kernels.impact_nb`). Default: zeros.
    path : {"auto", "time-major", "decoupled"}
        ``"auto"``: a decoupled run (accounts do not interact: :mod:`backtest.engine.decoupled`)
        walks each account to its liquidations by first-passage search, the same results bit
        for bit; any other run steps time-major. ``"time-major"`` always steps;
        ``"decoupled"`` raises ``ValueError`` unless the decoupled path is taken.

    Returns
    -------
    SimulationResult

    Raises
    ------
    ValueError
        Inconsistent inputs (depth, volume, mark or risk shapes; arrivals with soft bands).
    """
    if path not in PATHS:
        raise ValueError(f"path must be one of {PATHS}, got {path!r}")
    n = len(units)
    n_steps = len(prices)
    product = np.require(product, np.int8, ["C_CONTIGUOUS", "WRITEABLE"])
    units0, cash0 = _per_step(units), _per_step(cash)
    if order is None:
        order = liquidation_order(product, units0, cash0)
    if path != "time-major":  # accounts that do not interact: walk each to its liquidations
        res = run_decoupled(path == "decoupled", prices, product, units0, cash0, order, policy,
                            int(trigger_mode), int(fill_mode), chunk_size, market, mark, risk,
                            funding_rate, flow, insurance_fund_usd, impact_baseline,
                            np.dtype(list(ADL_FIELDS)))
        if res is not None:
            if progress is not None:
                progress(n_steps)
            return res
    # the state in processing order; the book's own arrays are read again only if an
    # auto-deleveraging needs the accounts' equity at the window start
    product, u, c = (gather_nb(a, order) for a in (product, units0, cash0))
    key = trigger_keys_nb(product, u, c, policy[0]["maintenance_rate"])
    n_liq = np.zeros(n, np.int32)
    first = np.full(n, -1, np.int32)
    last = np.full(n, -1, np.int32)
    notional = np.zeros(n)
    penalties = np.zeros(n)
    bad = np.zeros(n)
    step_metrics = np.zeros((n_steps, N_STEP_METRICS))
    cap = record_capacity(n, chunk_size)
    rec_len = np.zeros(1, np.int64)
    rec_i = np.empty((cap, len(REC_I_FIELDS)), np.int64)
    rec_f = np.empty((cap, len(REC_F_FIELDS)), np.float64)
    records = np.zeros(0, _record_dtype())  # grown in place at each flush
    # per-step inputs as writable contiguous float64: numba compiles read-only arrays (e.g. from
    # polars) as a separate signature, which would cost a second compile on the first run
    o, h, lo, cl = (_per_step(a) for a in (prices.open, prices.high, prices.low, prices.close))
    market = market_params() if market is None else market
    depth = np.full(n_steps, np.nan) if depth is None else _per_step(depth)
    if market[0]["impact_model"] != ImpactModel.NONE and not np.all(depth > 0):
        raise ValueError("an impact model needs a positive depth for every step")
    gas = np.zeros(n_steps) if gas_usd is None else _per_step(gas_usd)
    baseline = np.zeros(n_steps) if impact_baseline is None else _per_step(impact_baseline)
    if baseline.shape != (n_steps,) or not np.all(np.isfinite(baseline)):
        raise ValueError(f"the impact baseline must be {n_steps} finite flows, one per step")
    market_state = np.zeros(MARKET_STATE_SIZE)
    market_state[MarketState.PRICE_FACTOR] = 1.0
    market_state[MarketState.ORACLE_STEP] = -1.0  # oracle never updated
    market_state[MarketState.INSURANCE_FUND] = insurance_fund_usd
    market_state[MarketState.ADL_STEP] = -1.0  # no auto-deleveraging pending
    market_state[MarketState.FUNDING_STEP] = -1.0  # no funding settled yet
    adl_parts: list[np.ndarray] = []
    equity_start: list[np.ndarray] = []  # computed at the first auto-deleveraging

    def start_equity() -> np.ndarray:
        """Equity of every account at the window's first open, processing order, USD."""
        if not equity_start:
            equity_start.append(gather_nb(cash0, order) + gather_nb(units0, order) * o[0])
        return equity_start[0]

    flagged = np.full(n, -1, np.int32)
    # Dutch auctions (family AUCTION): start step and starting price of each loan's auction;
    # no rows for other families (the kernel reads them only for auctions)
    n_auction = n if policy[0]["family"] == PolicyFamily.AUCTION else 0
    auction_tic = np.full(n_auction, -1, np.int32)
    auction_top = np.zeros(n_auction)
    bands = np.zeros((0, N_BAND_FIELDS))
    if policy[0]["family"] == PolicyFamily.SOFT_BANDS:  # crvUSD LLAMMA: place each loan's bands
        bands = np.empty((n, N_BAND_FIELDS))
        place_bands_nb(product, u, c, float(policy[0]["band_ratio"]),
                       int(policy[0]["band_count"]), float(policy[0]["band_loan_discount"]),
                       float(policy[0]["maintenance_rate"][1]), float(o[0]), bands, key)
    if volume is None:
        slicing = policy[0]["max_step_volume_fraction"]
        if slicing > 0 and np.isfinite(slicing):
            raise ValueError("a policy with order slicing needs the traded volume per step")
        volume = np.full(n_steps, np.inf)
    volume = _per_step(volume)
    funding = np.full(n_steps, np.nan) if funding_rate is None else _per_step(funding_rate)
    # the kernel pays funding only at a step whose rate is a number other than 0
    settles = bool(np.any((funding == funding) & (funding != 0.0)))
    funding_paid = np.zeros(n if settles else 0)
    if risk is None:
        risk = np.zeros((n_steps, N_RISK_INPUTS))
        risk[:, RiskInput.MARGIN_SCALE] = 1.0
    risk = np.require(risk, np.float64, ["C_CONTIGUOUS", "WRITEABLE"])
    if market[0]["oracle_model"] == OracleModel.MARK and (
            mark is None or np.asarray(mark).shape != (n_steps, 3)):
        raise ValueError(f"the mark-price oracle needs mark prices of shape ({n_steps}, 3)")
    mark = np.full((n_steps, 3), np.nan) if mark is None else np.require(
        mark, np.float64, ["C_CONTIGUOUS", "WRITEABLE"])
    if risk.shape != (n_steps, N_RISK_INPUTS):
        raise ValueError(f"risk inputs must have shape ({n_steps}, {N_RISK_INPUTS}), got "
                         f"{risk.shape}")

    if flow is not None and flow.active:  # the kernel moves the book before every step
        if policy[0]["family"] == PolicyFamily.SOFT_BANDS and (
                (flow.arrival_step >= 0).any()
                or (flow.close_step is not None and (flow.close_step >= 0).any())
                or (flow.response is not None and flow.response.loan_top_up)):
            raise ValueError("arrivals, voluntary closes and collateral top-ups during the "
                             "window are not modelled with soft-liquidation bands (bands are "
                             "placed at the window start)")
        if flow.response is not None:  # perp levels at this policy's maintenance rate
            flow = replace(flow, response=flow.response.at_rate(
                float(policy[0]["maintenance_rate"][Product.PERP])))
        moving = kernel_flow(flow, order, n_steps)
    else:  # nothing moves: no per-account flow state (the results are made below)
        moving = no_kernel_flow(0, n_steps)
    tape = TapeInputs(o, h, lo, cl, depth, volume, gas, funding, risk, mark, baseline)
    accounts = AccountState(product, u, c, key, flagged, auction_tic, auction_top, bands)
    totals = AccountTotals(n_liq, first, last, notional, penalties, bad, funding_paid)
    buffers = RecordBuffers(rec_len, rec_i, rec_f)
    policy_rec, market_rec = kernel_records(policy), kernel_records(market)
    t = 0
    while t < n_steps:
        stop = min(n_steps, t + block_steps)
        reached = run_steps_nb(t, stop, tape, accounts, totals, buffers, moving, market_state,
                               step_metrics, policy_rec, market_rec, int(trigger_mode),
                               int(fill_mode), chunk_size)
        if market_state[MarketState.ADL_STEP] >= 0:  # the fund ran dry with ADL as the waterfall
            adl_parts.append(_deleverage(market_state, policy, market, product, u, c, key,
                                         start_equity(), cl, step_metrics, order))
        elif reached < stop and rec_len[0] > 0:  # buffer full: flush it
            records = _append_records(records, int(rec_len[0]), rec_i, rec_f)
            rec_len[0] = 0
        elif reached < stop:  # one step alone needs more room than the buffer has
            cap *= 2
            rec_i = np.empty((cap, len(REC_I_FIELDS)), np.int64)
            rec_f = np.empty((cap, len(REC_F_FIELDS)), np.float64)
            buffers = RecordBuffers(rec_len, rec_i, rec_f)
        if progress is not None and reached > t:
            progress(reached - t)
        t = reached
    records = _append_records(records, int(rec_len[0]), rec_i, rec_f)
    del buffers, rec_i, rec_f, tape, accounts, totals, equity_start[:]
    records["account"] = order[records["account"]]
    adl = np.concatenate(adl_parts) if adl_parts else np.zeros(0, np.dtype(list(ADL_FIELDS)))
    adl["account"] = order[adl["account"]]
    # back to the book's order one array at a time, each processing-order copy freed as soon
    # as it is scattered (peak: the state plus one array, not twice the state)
    del product, key, flagged, auction_tic, auction_top
    state = [u, c, n_liq, first, last, notional, penalties, bad]
    del u, c, n_liq, first, last, notional, penalties, bad
    scattered = []
    while state:
        scattered.append(scatter_nb(state.pop(0), order))
    if len(funding_paid):
        funding_paid = scatter_nb(funding_paid, order)
    else:  # no funding settled: zeros (fresh pages, resident only once written)
        funding_paid = np.zeros(n)
    topped_up = None
    if flow is not None and flow.active:
        deposited = scatter_nb(moving.deposited, order)
        closed_step = scatter_nb(moving.closed_step, order)
        if moving.loan_top_up:
            topped_up = scatter_nb(moving.topped_up, order)
    else:
        deposited, closed_step = np.zeros(n), np.full(n, -1, np.int32)
    return SimulationResult(
        *scattered,
        funding_paid,
        step_metrics,
        records,
        adl,
        _scatter_rows(bands, order),
        moving.steps,
        deposited,
        closed_step,
        None if impact_baseline is None else baseline,
        topped_up,
    )


def _scatter_rows(values: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Rows of ``values`` (in processing order) back in the book's order; empty stays empty."""
    if len(values) == 0:
        return values
    out = np.empty_like(values)
    out[order] = values
    return out


def _per_step(values) -> np.ndarray:
    """Writable, C-contiguous float64 (a copy only if needed)."""
    return np.require(values, np.float64, ["C_CONTIGUOUS", "WRITEABLE"])


def _deleverage(state, policy, market, product, units, cash, key, equity_start, close,
                step_metrics, order) -> np.ndarray:
    """Run the pending auto-deleveraging of one step; book its outcome in ``step_metrics``."""
    t = int(state[MarketState.ADL_STEP])
    price = close[t] * step_metrics[t, StepMetric.PRICE_FACTOR]
    parts = []
    for side, shortfall_slot, units_slot in (
            (1, MarketState.ADL_SHORTFALL_LONG, MarketState.ADL_UNITS_LONG),
            (-1, MarketState.ADL_SHORTFALL_SHORT, MarketState.ADL_UNITS_SHORT)):
        shortfall, bankrupt_units = state[shortfall_slot], state[units_slot]
        if shortfall <= 0.0:
            continue
        covered = 0.0
        if bankrupt_units > 0.0:
            idx, closed, transfer, covered = auto_deleverage_nb(
                side, shortfall, bankrupt_units, price, int(policy[0]["adl_ranking"]),
                int(market[0]["seed"]), t, product, units, cash, key, equity_start,
                policy[0]["maintenance_rate"], order)
            rec = np.zeros(len(idx), np.dtype(list(ADL_FIELDS)))
            rec["step"], rec["account"], rec["units_closed"] = t, idx, closed
            rec["price"], rec["transfer"] = price, transfer
            parts.append(rec)
            # counterparties sell (longs) or buy back (shorts) at the price and pay the transfer
            step_metrics[t, StepMetric.CASH_DELTA_PERP] += (closed * price - transfer).sum()
            units_delta = (StepMetric.UNITS_DELTA_PERP_SHORT if side > 0
                           else StepMetric.UNITS_DELTA_PERP_LONG)
            step_metrics[t, units_delta] -= closed.sum()
            step_metrics[t, StepMetric.ADL_NOTIONAL] += np.abs(closed).sum() * price
            step_metrics[t, StepMetric.ADL_ACCOUNTS] += len(idx)
            step_metrics[t, StepMetric.ADL_TRANSFER] += covered
        step_metrics[t, StepMetric.SOCIALISED_LOSS] += shortfall - covered
    for slot in (MarketState.ADL_SHORTFALL_LONG, MarketState.ADL_UNITS_LONG,
                 MarketState.ADL_SHORTFALL_SHORT, MarketState.ADL_UNITS_SHORT):
        state[slot] = 0.0
    state[MarketState.ADL_STEP] = -1.0
    return np.concatenate(parts) if parts else np.zeros(0, np.dtype(list(ADL_FIELDS)))


def market_params(impact_model: int = ImpactModel.NONE, permanent_fraction: float = 0.5,
                  transient_half_life_steps: float = 30.0, cascade: bool = False,
                  oracle_model: int = OracleModel.MARKET, oracle_lag_steps: int = 1,
                  oracle_twap_steps: int = 1, oracle_deviation: float = 0.005,
                  oracle_heartbeat_steps: int = 1, keeper_latency_steps: int = 0,
                  keeper_requires_profit: bool = False, seed: int = 0,
                  keeper_capital_usd: float = 0.0) -> np.ndarray:
    """Pack market, oracle and keeper parameters into the kernels' ``MARKET_DTYPE`` record.

    Parameters
    ----------
    impact_model : int
        :class:`backtest.kernels.enums.ImpactModel`.
    permanent_fraction : float
        Share (0..1) of each step's liquidation flow whose impact persists.
    transient_half_life_steps : float
        Half-life of the rest of the flow's impact, in steps (> 0).
    cascade : bool
        Whether impact moves the prices later steps trigger on.
    oracle_model : int
        :class:`backtest.kernels.enums.OracleModel`.
    oracle_lag_steps, oracle_twap_steps, oracle_heartbeat_steps : int
        Steps (>= 1) for the lagged, TWAP and Chainlink oracles.
    oracle_deviation : float
        Chainlink deviation threshold, fraction.
    keeper_latency_steps : int
        Steps between an account first found liquidatable and a keeper liquidating it.
    keeper_requires_profit : bool
        Keepers act only when their penalty share covers gas plus the last step's slippage.
    seed : int
        Seed of random choices (dYdX deleveraging's starting account).
    keeper_capital_usd : float
        Notional (USD at the step's close) keepers can absorb per step; 0: flash liquidators
        with unlimited capital.
    """
    if min(oracle_lag_steps, oracle_twap_steps, oracle_heartbeat_steps) < 1:
        raise ValueError("oracle lag, TWAP and heartbeat must be at least one step")
    if keeper_latency_steps < 0:
        raise ValueError("keeper latency must be >= 0 steps")
    rec = np.zeros(1, MARKET_DTYPE)
    rec["oracle_model"] = int(oracle_model)
    rec["oracle_lag_steps"] = oracle_lag_steps
    rec["oracle_twap_steps"] = oracle_twap_steps
    rec["oracle_deviation"] = oracle_deviation
    rec["oracle_heartbeat_steps"] = oracle_heartbeat_steps
    rec["keeper_latency_steps"] = keeper_latency_steps
    rec["keeper_requires_profit"] = int(bool(keeper_requires_profit))
    rec["seed"] = seed
    rec["keeper_capital_usd"] = keeper_capital_usd
    rec["impact_model"] = int(impact_model)
    rec["permanent_fraction"] = permanent_fraction
    rec["transient_decay"] = 0.5 ** (1.0 / transient_half_life_steps)
    rec["cascade"] = int(bool(cascade))
    return rec


def liquidation_order(product: np.ndarray, units: np.ndarray, cash: np.ndarray) -> np.ndarray:
    """Return the order in which the kernel processes accounts, shape (N,) int64.

    Consecutive accounts have close liquidation prices under any policy, so each chunk covers a
    narrow price band that a candle either reaches or not (see
    :func:`backtest.kernels.liquidation_nb.liquidation_order_nb`). Compute it once per book
    and pass it to :func:`simulate` for every policy.

    Parameters
    ----------
    product : ndarray, shape (N,), int8
    units, cash : ndarray, shape (N,), float64
    """
    # the kernel widens the int8 codes itself (an int8 group x ORDER_BUCKETS would overflow
    # with the JIT off; see liquidation_order_nb)
    return liquidation_order_nb(np.require(product, np.int8, ["C_CONTIGUOUS", "WRITEABLE"]),
                                _per_step(units), _per_step(cash), ORDER_BUCKETS)


def _record_dtype() -> np.dtype:
    return np.dtype(list(RECORD_FIELDS))


def record_capacity(n: int, chunk_size: int = CHUNK_SIZE) -> int:
    """Rows of the record buffer for ``n`` accounts: n / 16, at least 4 chunks, at most 4M.

    A full buffer is flushed into the result and the kernel called again, so the size trades
    a few more kernel calls for memory (104 bytes a row: 6.5 bytes per account, at most
    436 MB); one step that needs more doubles it.
    """
    return min(max(4 * chunk_size, n // 16), 1 << 22)


def _append_records(records: np.ndarray, count: int, rec_i: np.ndarray,
                    rec_f: np.ndarray) -> np.ndarray:
    """Append the buffer's first ``count`` rows to ``records`` (grown in place when it can).

    ``ndarray.resize`` reallocates, which for a large (memory-mapped) block remaps it instead
    of copying, so the records are never held twice, as a list of parts and their
    concatenation would be.
    """
    if count == 0:
        return records
    start = len(records)
    try:
        records.resize(start + count, refcheck=False)
    except ValueError:  # not the owner of its memory (e.g. the initial empty array's view)
        records = np.concatenate([records, np.zeros(count, records.dtype)])
    out = records[start:]
    for j, name in enumerate(REC_I_FIELDS):
        out[name] = rec_i[:count, j]
    for j, name in enumerate(REC_F_FIELDS):
        out[name] = rec_f[:count, j]
    out["notional"] = np.abs(out["units_closed"]) * out["fill_price"]
    return records
