"""Plain-Python reference twin of :func:`backtest.kernels.steps_nb.run_steps_nb`.

Written for reading, not speed: one account at a time, the documented rules spelled out, no
trigger-key filter, no chunks, no processing order. Parity tests run both on random books and
tapes and compare account states, per-step aggregates and records.

Why over 400 lines: it is the twin of the whole step loop of
:mod:`backtest.kernels.liquidation_nb` (every family, the loss waterfall, auctions, bands,
impact), kept in one file so that it reads top to bottom, rule by rule, next to the kernel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from backtest.kernels.book_flow_nb import N_FLOW_FIELDS
from backtest.kernels.enums import (
    BAND_FIELDS,
    N_STEP_METRICS,
    AdlRanking,
    AuctionCurve,
    FillPrice,
    ImpactModel,
    OracleModel,
    PenaltyModel,
    PolicyFamily,
    Product,
    RiskInput,
    StepMetric,
    TriggerPrice,
    Waterfall,
)
from backtest.kernels.impact_nb import AMM_RESERVE_PER_DEPTH


@dataclass
class ReferenceResult:
    """Outputs of :func:`simulate_reference` (same meaning as the kernel's arrays)."""

    units: np.ndarray
    cash: np.ndarray
    n_liquidations: np.ndarray
    first_step: np.ndarray
    last_step: np.ndarray
    liquidated_notional: np.ndarray
    penalties_paid: np.ndarray
    bad_debt: np.ndarray
    funding_paid: np.ndarray
    step_metrics: np.ndarray
    records: list[dict] = field(default_factory=list)
    adl_records: list[dict] = field(default_factory=list)
    bands: np.ndarray | None = None  # family SOFT_BANDS: (N, N_BAND_FIELDS) as the kernel's
    deposited: np.ndarray | None = None  # new money per account (arrivals, cures), USD
    book_flow: np.ndarray | None = None  # (T, N_FLOW_FIELDS) as the kernel's
    closed_step: np.ndarray | None = None  # step of each trader's voluntary close, -1: none
    topped_up: np.ndarray | None = None  # collateral loans added by their cures, asset units


def _health(product: int, u: float, c: float, p: float, m: float) -> float:
    if u == 0.0:
        return math.inf
    if product == Product.LOAN:
        collateral, debt = (u * p, -c) if u > 0 else (c, -u * p)
        return math.inf if debt <= 0 else (1 - m) * collateral / debt
    return (c + u * p) / (m * abs(u) * p)


class _Bands:
    """Soft-liquidation bands of one loan (crvUSD LLAMMA), band by band.

    The same model as :mod:`backtest.kernels.bands_nb`, written as loops over the bands
    instead of closed forms: band ``k`` spans ``(top r^(k+1), top r^k]`` and holds
    ``deposited / n`` units until the price enters it.
    """

    def __init__(self, policy, top: float, deposited: float, debt: float):
        self.r = float(policy["band_ratio"])
        self.n = int(policy["band_count"])
        self.top, self.deposited, self.debt = top, deposited, debt
        self.soft_units = self.soft_proceeds = self.soft_loss = 0.0

    def edges(self, k: int) -> tuple[float, float]:
        return self.top * self.r ** k, self.top * self.r ** (k + 1)

    def collateral(self, p: float) -> float:
        """Collateral the bands hold at oracle price p: each band sells linearly inside."""
        if p >= self.top:
            return self.deposited
        left = 0.0
        for k in range(self.n):
            up, down = self.edges(k)
            sold = min(max((up - p) / (up - down), 0.0), 1.0)
            left += self.deposited / self.n * (1.0 - sold)
        return left

    def stablecoin(self, y: float) -> float:
        """Stablecoin from converting the deposit down to y, band by band from the top."""
        to_sell, x = self.deposited - y, 0.0
        for k in range(self.n):
            take = min(max(to_sell, 0.0), self.deposited / self.n)
            x += take * self.top * self.r ** k * math.sqrt(self.r)
            to_sell -= take
        return x

    def health(self, u: float, c: float, p: float, liquidation_discount: float) -> float:
        """controller.vy _health (full=True) + 1: x_down (1 - discount) [+ (p - top) y] / debt."""
        if self.debt <= 0:
            return math.inf
        x_down = c + self.debt + self.stablecoin(0.0) - self.stablecoin(u)
        above = (p - self.top) * u if p > self.top else 0.0
        return (x_down * (1 - liquidation_discount) + above) / self.debt

    def trade(self, u: float, c: float, p: float) -> float:
        """Units bought (> 0) or sold (< 0) moving to the state at p; buy-backs within x."""
        if self.debt <= 0:
            return 0.0
        target = self.collateral(p)
        q = target - u
        if abs(q) <= 1e-12 * self.deposited:
            return 0.0
        if q > 0:
            x = c + self.debt
            cost = max(self.stablecoin(u) - self.stablecoin(target), q * p)
            if x <= 0:
                return 0.0
            if cost > x:
                q *= x / cost
        return q


def _place_bands(policy, product, units, cash, price) -> list:
    """Place the bands of a crvUSD loan at its creation.

    The top band is the one where (1 - loan_discount) x_down covers the debt.
    """
    r, n = float(policy["band_ratio"]), int(policy["band_count"])
    mean_price = math.sqrt(r) * (1 - r ** n) / (n * (1 - r))
    out = []
    for prod, u, c in zip(product, units, cash, strict=True):
        u, c = float(u), float(c)
        if prod != Product.LOAN or u <= 0 or c >= 0:
            out.append(_Bands(policy, 0.0, 0.0, 0.0))
            continue
        top = min(-c / ((1 - float(policy["band_loan_discount"])) * u * mean_price), price)
        out.append(_Bands(policy, top, u, -c))
    return out


def _liquidation_price(u: float, c: float, m: float) -> float:
    return -c / (u * (1 - m)) if u > 0 else c / (-u * (1 + m))


def _factor(model: int, w: float, depth: float) -> float:
    """Price factor F(W) of an outstanding flow, as documented in impact_nb."""
    if model == ImpactModel.NONE or w == 0 or not depth > 0:
        return 1.0
    return _clip(_unclipped(model, w / depth))


def _unclipped(model: int, q: float) -> float:
    if model == ImpactModel.LINEAR:
        return 1 + 0.01 * q
    if model == ImpactModel.SQRT:
        return 1 + math.copysign(0.01 * math.sqrt(abs(q)), q)
    r = AMM_RESERVE_PER_DEPTH
    ratio = r / (r - min(q, 0.95 * r))
    return ratio * ratio  # not ** 2: libm's pow may differ from the kernel's product by an ulp


def _clip(v: float) -> float:
    return min(max(v, 0.05), 20.0)


def _equivalent_flow(model: int, factor: float, depth: float) -> float:
    """Outstanding flow whose factor at ``depth`` is ``factor``: F^-1 (impact_nb)."""
    if model == ImpactModel.NONE or factor == 1.0 or not depth > 0:
        return 0.0
    if model == ImpactModel.LINEAR:
        return 100 * (factor - 1) * depth
    if model == ImpactModel.SQRT:
        x = 100 * (factor - 1)
        return math.copysign(x * x, x) * depth
    return AMM_RESERVE_PER_DEPTH * (1 - 1 / math.sqrt(factor)) * depth


def _displaced(model: int, permanent: float, transient: float, flow: float, depth: float,
               share: float, decay: float) -> tuple[float, float]:
    """Return the (permanent, transient) log displacements after a step's flow (impact_nb).

    Each part is read as its own outstanding flow at this depth and moved from there; the
    earlier transient decays.
    """
    def move(part: float, weight: float) -> float:
        if weight <= 0 or model == ImpactModel.NONE or flow == 0 or not depth > 0:
            return 0.0
        a = _equivalent_flow(model, math.exp(part / weight), depth)
        return weight * (math.log(_factor(model, a + flow, depth))
                         - math.log(_factor(model, a, depth)))
    return (permanent + move(permanent, share),
            transient * decay + move(transient, 1 - share))


def _execution(model: int, flow: float, depth: float, outstanding: float) -> float:
    """Average execution factor of a step's flow moving the outstanding flow (impact_nb)."""
    if model == ImpactModel.NONE or flow == 0 or not depth > 0:
        return 1.0
    qa, qb = outstanding / depth, (outstanding + flow) / depth
    if qa == qb:
        return 1.0
    if model == ImpactModel.LINEAR:
        mean = 1 + 0.005 * (qa + qb)
    elif model == ImpactModel.SQRT:
        if qa * qb >= 0:  # one side of zero: the difference quotient without cancellation
            a, b = abs(qa), abs(qb)
            m = 2 / 3 * (a + math.sqrt(a * b) + b) / (math.sqrt(a) + math.sqrt(b))
            mean = 1 + 0.01 * (m if qa + qb > 0 else -m)
        else:  # (2/3) |q|^1.5 is the antiderivative of sign(q) sqrt|q|
            mean = 1 + 0.01 * (2 / 3) * (abs(qb) ** 1.5 - abs(qa) ** 1.5) / (qb - qa)
    else:
        r = AMM_RESERVE_PER_DEPTH
        qa, qb = min(qa, 0.95 * r), min(qb, 0.95 * r)
        mean = (r / (r - qa)) ** 2 if qa == qb else r * r / ((r - qa) * (r - qb))
    return _clip(mean / _factor(model, outstanding, depth))


def simulate_reference(
    open_, high, low, close, trigger_mode, fill_mode, policy, product, units, cash,
    market=None, depth=None, replay=None, gas_usd=None, insurance_fund_usd=0.0,
    funding_rate=None, volume=None, priority=None, risk=None, mark=None, flow=None,
    impact_baseline=None,
) -> ReferenceResult:
    """Simulate all steps of a tape for one policy, one account at a time.

    Parameters
    ----------
    open_, high, low, close : array_like, shape (T,)
        Historical candle prices, USD.
    trigger_mode, fill_mode : int
        :class:`TriggerPrice`, :class:`FillPrice`.
    policy : numpy record of ``POLICY_DTYPE``
        Policy parameters.
    product : array_like, shape (N,), int
    units, cash : array_like, shape (N,), float
        Initial state (asset units, USD); not modified.
    market : numpy record of ``MARKET_DTYPE``, optional
        Impact and cascade parameters; default none.
    depth : array_like, shape (T,), optional
        USD flow that moves the price 1% per step.
    gas_usd : array_like, shape (T,), optional
        Gas cost of one liquidation per step, USD.
    insurance_fund_usd : float
        Insurance fund balance before the first step, USD.
    funding_rate : array_like, shape (T,), optional
        Funding rate settled at the start of each step (NaN: none).
    volume : array_like, shape (T,), optional
        Traded volume per step, units (order slicing).
    priority : array_like, shape (N,), optional
        Account indices in the engine's processing order (:func:`liquidation_order`), which
        order slicing and keeper capital follow when the step's budget binds: account by
        account, each taking at most what is left (a take cut short that no longer pays, or
        that ``chost`` refuses, takes nothing and leaves its share to the next; with rational
        keepers, a take that would not pay at the execution factor of the budgeted flow is
        then refused and its share left unused).
    mark : array_like, shape (T, 3), optional
        Low, high, close of the mark price per step (``OracleModel.MARK``).
    risk : array_like, shape (T, 2), optional
        Per-step perp maintenance margin scale and predictive log-price shift
        (:class:`RiskInput`); default scale 1, no shift.
    replay : tuple of two or three arrays, shape (T,), optional
        ``(price factor, execution factor[, take factor])`` per step taken from a full
        simulation (the third, ``StepMetric.TAKE_FACTOR``, for rational auction keepers), instead of
        computing impact from this book's own flow (not valid with order slicing, whose budget
        couples the accounts). With it, accounts are independent, so a
        sample of a large book can be checked against the engine's run of the whole book.
    flow : BookFlow, optional
        Arrivals and cures (:mod:`backtest.engine.book_flow`), applied at the start of each
        step as :mod:`backtest.kernels.book_flow_nb` documents; ``units`` and ``cash`` hold 0
        for accounts that arrive later.
    impact_baseline : array_like, shape (T,), optional
        As-happened net flow per step, USD: impact and cascade use the step's flow minus it.

    Returns
    -------
    ReferenceResult
    """
    n, n_steps = len(units), len(close)
    model = int(market["impact_model"]) if market is not None else ImpactModel.NONE
    res = ReferenceResult(
        units=np.array(units, dtype=float),
        cash=np.array(cash, dtype=float),
        n_liquidations=np.zeros(n, np.int32),
        first_step=np.full(n, -1, np.int32),
        last_step=np.full(n, -1, np.int32),
        liquidated_notional=np.zeros(n),
        penalties_paid=np.zeros(n),
        bad_debt=np.zeros(n),
        funding_paid=np.zeros(n),
        step_metrics=np.zeros((n_steps, N_STEP_METRICS)),
    )
    permanent = transient = 0.0  # log price displacements (impact_nb)
    factor = 1.0 if replay is None else float(replay[0][0])
    mk = market if market is not None else {}
    oracle_model = int(mk["oracle_model"]) if market is not None else OracleModel.MARKET
    latency = int(mk["keeper_latency_steps"]) if market is not None else 0
    requires_profit = bool(mk["keeper_requires_profit"]) if market is not None else False
    flagged = np.full(n, -1)
    auction_tic, auction_top = [-1] * n, [0.0] * n  # Dutch auctions (family AUCTION)
    auctions = int(policy["family"]) == PolicyFamily.AUCTION
    loan_pen = float(policy["penalty_rate"][Product.LOAN])
    sim_closes: list[float] = []  # simulated closes of past steps, for the oracles
    chainlink = [0.0, -1]  # oracle price, step of its last update
    slippage = 0.0  # |1 - execution factor| of the previous step
    fund = float(insurance_fund_usd)
    vow = [0.0]  # debt queued in the surplus buffer (Waterfall.SURPLUS_BUFFER), USD
    equity_start = [float(cash[i]) + float(units[i]) * float(open_[0]) for i in range(n)]
    soft = int(policy["family"]) == PolicyFamily.SOFT_BANDS
    bands = _place_bands(policy, product, units, cash, float(open_[0])) if soft else []

    def past_close(s: int) -> float:
        return float(open_[0]) if s < 0 else sim_closes[s]

    cascade = market is not None and bool(market["cascade"]) and replay is None
    res.deposited = np.zeros(n)
    res.topped_up = np.zeros(n)
    res.book_flow = np.zeros((n_steps, N_FLOW_FIELDS))
    res.closed_step = np.full(n, -1, np.int32)
    warned = [-1] * n
    cured = [0] * n
    base_rates = [float(policy["maintenance_rate"][k]) for k in range(2)]
    moving = flow  # (the loop below reuses the name flow for each step's liquidation flow)
    for t in range(n_steps):
        if cascade:  # the displacement the step opens with
            factor = _clip(math.exp(permanent + transient))
        if moving is not None:  # arrivals open at the step's price (factor 1 without cascade)
            _move_book(res, moving, t, product, base_rates, warned, cured, past_close(t - 1),
                       factor)
        step_depth = float(depth[t]) if depth is not None else 0.0
        outstanding = 0.0
        if cascade:  # the displacement, read as an outstanding flow at this step's depth
            outstanding = _equivalent_flow(model, factor, step_depth)
        o, h, lo, c = (float(a[t]) * factor for a in (open_, high, low, close))
        scale = float(risk[t][RiskInput.MARGIN_SCALE]) if risk is not None else 1.0
        preempt = float(policy["preempt_fraction"])
        shift = float(risk[t][RiskInput.PREEMPT_SHIFT]) if risk is not None and preempt else 0.0
        rate = float(funding_rate[t]) if funding_rate is not None else math.nan
        if not math.isnan(rate) and rate != 0.0:
            for i in range(n):
                if product[i] == Product.PERP and res.units[i] != 0.0:
                    pay = float(res.units[i]) * o * rate
                    res.cash[i] -= pay
                    res.funding_paid[i] += pay
                    res.step_metrics[t, StepMetric.FUNDING_PAID] += pay
        oracle = None  # (long, short) price of an oracle that decides while the market fills
        if oracle_model == OracleModel.LAGGED:
            oracle = (past_close(t - int(mk["oracle_lag_steps"])),) * 2
        elif oracle_model == OracleModel.OSM:
            hop = int(mk["oracle_lag_steps"])
            oracle = (past_close(t // hop * hop - hop - 1),) * 2
        elif oracle_model == OracleModel.TWAP:
            w = int(mk["oracle_twap_steps"])
            oracle = (sum(past_close(s) for s in range(t - w, t)) / w,) * 2
        elif oracle_model == OracleModel.CHAINLINK:
            latest = past_close(t - 1)
            if (chainlink[0] <= 0 or abs(latest - chainlink[0]) >= mk["oracle_deviation"]
                    * chainlink[0] or t - chainlink[1] >= mk["oracle_heartbeat_steps"]):
                chainlink[:] = [latest, t]
            oracle = (chainlink[0],) * 2
        elif oracle_model == OracleModel.MARK:
            m_lo, m_hi, m_c = (float(v) * factor for v in mark[t])
            oracle = (m_lo, m_hi) if trigger_mode == TriggerPrice.EXTREME else (m_c, m_c)
        # auction keepers price takes at an expected execution factor: the last step's, or
        # (rational keepers) the market's, then that of the step's own flow (take_pays)
        rational = auctions and bool(policy["auction_keeper_rational"])
        take_factor = 1.0 if rational else 1.0 - slippage
        if rational and replay is not None and len(replay) > 2:
            take_factor = float(replay[2][t])
        check_factor = take_factor
        gas_t = float(gas_usd[t]) if gas_usd is not None and requires_profit else 0.0
        margin = float(policy["auction_keeper_margin"])
        for attempt in range(2):
            decisions, waiting, kicks, trades = [], [], [], []
            x_long = oracle[0] if oracle is not None else (
                lo if trigger_mode == TriggerPrice.EXTREME else c)
            for i in range(n):
                u, cash_i, prod = float(res.units[i]), float(res.cash[i]), int(product[i])
                if soft and prod == Product.LOAN:  # LLAMMA: hard liquidation below health 1
                    b = bands[i]
                    if b.debt <= 0:
                        continue
                    trade = (i, b.trade(u, cash_i, x_long))
                    m = float(policy["maintenance_rate"][Product.LOAN])  # liquidation_discount
                    if not b.health(u, cash_i, x_long, m) < 1:
                        trades.append(trade)
                        continue
                    p = c if oracle is not None or fill_mode == FillPrice.CLOSE else x_long
                    gas = float(gas_usd[t]) if gas_usd is not None else 0.0
                    late = latency > 0 and (flagged[i] < 0 or t < flagged[i] + latency)
                    seized = float(policy["keeper_share"]) * max(cash_i + u * p, 0.0)
                    if late or (requires_profit and seized < gas + slippage * u * p):
                        waiting.append(i)
                        trades.append(trade)
                    else:
                        decisions.append((i, p, u, 0.0, "bands_hard"))
                    continue
                if u == 0.0:
                    continue
                m, target = _step_rates(policy, prod, scale)
                if oracle is not None:
                    x = oracle[0] if u > 0 else oracle[1]
                elif trigger_mode == TriggerPrice.EXTREME:
                    x = lo if u > 0 else h
                else:
                    x = c
                if auctions and prod == Product.LOAN and auction_tic[i] >= 0:
                    dur = t - auction_tic[i]
                    if int(policy["auction_curve"]) == AuctionCurve.ENGLISH:
                        auction_top[i] = c * float(policy["auction_buf"])  # the winning bid
                    window = float(policy["auction_zero_bid_steps"])
                    if window > 0 and dur > window:  # no take in the bid window: a zero bid
                        decisions.append((i, c, u, loan_pen, "zero_bid"))
                        continue
                    top = auction_top[i]
                    price = _auction_price(policy, top, dur)
                    waiting.append(i)
                    if dur > policy["auction_tail_steps"] or price < policy["auction_cusp"] * top:
                        kicks.append((i, x))  # reset at the fresh decision price
                    else:
                        tab = -cash_i / (1 - loan_pen)
                        q = min(u, tab / price) if price > 0 else u
                        if q > 0 and take_pays(q, price, c, take_factor, margin, gas_t):
                            waiting.pop()
                            decisions.append((i, c, q, loan_pen, "take"))
                    continue
                cooldown = int(policy["cooldown_steps"])
                in_cooldown = (cooldown > 0 and res.last_step[i] >= 0
                               and t - res.last_step[i] < cooldown)
                if not (cash_i + u * x < m * abs(u) * x):  # equity < maintenance requirement
                    stressed = x * math.exp(-shift if u > 0 else shift)
                    if (preempt and not in_cooldown
                            and cash_i + u * stressed < m * abs(u) * stressed):
                        pen = float(policy["preempt_penalty"])
                        d = preempt * _whole(prod, u, cash_i, c, pen)
                        decisions.append((i, c, d, pen, "preemptive"))  # at the step's close
                    continue
                if latency > 0 and (flagged[i] < 0 or t < flagged[i] + latency):
                    waiting.append(i)
                    continue
                if auctions and prod == Product.LOAN:  # a keeper barks: the auction starts
                    waiting.append(i)
                    kicks.append((i, x))
                    continue
                if in_cooldown:
                    waiting.append(i)
                    continue
                if oracle is not None:  # an oracle decides when; the market fills
                    p = c
                elif fill_mode == FillPrice.TRIGGER:
                    p = x
                elif fill_mode == FillPrice.LIQUIDATION_PRICE:
                    lp = _liquidation_price(u, cash_i, m)
                    p = min(o, lp) if u > 0 else max(o, lp)
                    p = min(max(p, lo), h)
                else:
                    p = c
                pen = _penalty(policy, prod, _health(prod, u, cash_i, p, m))
                d, p = _step_calls(policy, prod, u, cash_i, p, x,
                                   oracle is None and fill_mode == FillPrice.LIQUIDATION_PRICE,
                                   lo, h, m, pen, target)
                keeper_fee = float(policy["keeper_share"]) * pen * d * p
                gas = float(gas_usd[t]) if gas_usd is not None else 0.0
                if requires_profit and keeper_fee < gas + slippage * d * p:
                    waiting.append(i)
                    continue
                if d > 0:
                    decisions.append((i, p, d, pen, "liquidation"))
                else:
                    waiting.append(i)
            unbudgeted = ("bands_hard", "zero_bid")  # outside any volume or capital budget
            exempt = [dec for dec in decisions if dec[4] in unbudgeted]
            decisions = [dec for dec in decisions if dec[4] not in unbudgeted]
            soft_flow = sum(x_long * q for _, q in trades)
            flow = sum((-d * p if res.units[i] > 0 else d * p)
                       for i, p, d, *_ in decisions + exempt)
            flow += soft_flow
            if not rational or replay is not None:
                break
            need = max((_take_need(d, _auction_price(policy, auction_top[i], t - auction_tic[i]),
                                   p, margin, gas_t)
                        for i, p, d, _, kind in decisions if kind == "take"), default=-math.inf)
            expected = _execution(model, flow - (float(impact_baseline[t])
                                                 if impact_baseline is not None else 0.0),
                                  step_depth, outstanding)
            check_factor = min(take_factor, expected)
            if need <= expected or attempt == 1:
                break
            take_factor = expected
        slice_factor = 1.0
        cap = float(policy["max_step_volume_fraction"])
        wanted = sum(d for _, _, d, *_ in decisions)
        budget = math.inf
        if cap > 0 and volume is not None:
            budget = cap * float(volume[t])
        capital = float(market["keeper_capital_usd"]) if market is not None else 0.0
        if capital > 0:
            budget = min(budget, capital / c)
        if wanted > budget:
            # the budget goes to decisions in the engine's processing order
            slice_factor = budget / wanted
            rank = {int(a): k for k, a in enumerate(priority)} if priority is not None else {}
            taken, dust = [], 1e-9 * budget
            for i, p, d, pen, pre in sorted(decisions, key=lambda x: rank.get(x[0], x[0])):
                take = min(d, budget)
                if take > dust and pre == "take":
                    cut = _chost(policy, res, i, take, auction_top[i], t - auction_tic[i])
                    price = _auction_price(policy, auction_top[i], t - auction_tic[i])
                    if 0 < cut < d and not take_pays(cut, price, c, check_factor, margin,
                                                     gas_t):
                        cut = 0.0  # cut short, the take no longer pays
                    take = cut
                    if take <= 0:
                        waiting.append(i)
                        continue
                if take > dust:
                    taken.append((i, p, take, pen, pre))
                    budget = max(budget - take, 0.0)
                    if budget <= dust:
                        budget = 0.0
                elif pre != "preemptive":
                    waiting.append(i)
            decisions = taken
            flow = sum((-d * p if res.units[i] > 0 else d * p) for i, p, d, *_ in decisions
                       + exempt) + soft_flow
            if rational and replay is None:
                # the budget may have cut buys: re-check every take at the factor the budgeted
                # flow executes at; a take that would lose is refused and its share stays
                # unused (dropping sales only raises the factor, so the rest still pay)
                budgeted = _execution(model, flow - (float(impact_baseline[t])
                                                     if impact_baseline is not None else 0.0),
                                      step_depth, outstanding)
                kept = []
                for dec in decisions:
                    i, _, d, _, kind = dec
                    price = _auction_price(policy, auction_top[i], t - auction_tic[i])
                    if kind == "take" and not take_pays(d, price, c, budgeted, margin, gas_t):
                        waiting.append(i)
                    else:
                        kept.append(dec)
                if len(kept) < len(decisions):
                    decisions = kept
                    flow = sum((-d * p if res.units[i] > 0 else d * p)
                               for i, p, d, *_ in decisions + exempt) + soft_flow
        decisions += exempt
        impact_flow = flow - (float(impact_baseline[t]) if impact_baseline is not None else 0.0)
        execution = _execution(model, impact_flow, step_depth, outstanding)
        if replay is not None:
            execution = float(replay[1][t])
        row = res.step_metrics[t]
        row[StepMetric.ORACLE_PRICE] = oracle[0] if oracle is not None else (
            lo if trigger_mode == TriggerPrice.EXTREME else c)
        row[StepMetric.PRICE_FACTOR] = factor
        row[StepMetric.SLICE_FACTOR] = slice_factor
        if auctions:
            row[StepMetric.TAKE_FACTOR] = take_factor
        row[StepMetric.MARGIN_SCALE] = scale
        row[StepMetric.EXECUTION_FACTOR] = execution
        row[StepMetric.NET_FLOW] = flow
        for i, x in kicks:
            tab = -float(res.cash[i]) / (1 - loan_pen)
            row[StepMetric.AUCTIONS_KICKED] += 1
            chost = float(policy["auction_chost_usd"])
            # kick always pays the keeper incentive; redo only if tab and lot value >= chost
            if auction_tic[i] < 0 or (tab >= chost and float(res.units[i]) * x >= chost):
                row[StepMetric.AUCTION_INCENTIVES] += (float(policy["auction_tip_usd"])
                                                       + float(policy["auction_chip"]) * tab)
            auction_tic[i], auction_top[i] = t, x * float(policy["auction_buf"])
        for i, p, d, pen, kind in decisions:
            m, _ = _step_rates(policy, int(product[i]), scale)
            if kind == "take":
                price = _auction_price(policy, auction_top[i], t - auction_tic[i])
                if _take(res, t, i, p, d, execution, m, pen, price):
                    auction_tic[i] = -1
            elif kind == "zero_bid":  # the whole lot to the zero bidder, the debt to bad debt
                _take(res, t, i, p, d, execution, m, pen, 0.0, zero_bid=True)
                auction_tic[i] = -1
            elif kind == "bands_hard":
                _bands_liquidate(res, policy, t, i, bands[i], p, execution, x_long)
            else:
                _apply(res, policy, t, i, int(product[i]), p, d, execution, m, pen,
                       kind == "preemptive")
            flagged[i] = -1
        for i, q in trades:
            _soft_trade(res, row, i, bands[i], q, x_long, execution)
            b = bands[i]  # back above the bands with no stablecoin: out of soft liquidation
            if (b.debt > 0 and x_long >= b.top and res.units[i] < b.deposited
                    and res.cash[i] + b.debt <= 1e-12 * b.debt):
                b.deposited = float(res.units[i])
        if soft:
            row[StepMetric.N_SOFT_LIQUIDATION] = sum(
                1 for i, b in enumerate(bands) if b.debt > 0 and res.units[i] < b.deposited)
        for i in waiting:
            if flagged[i] < 0:
                flagged[i] = t
            u = float(res.units[i])
            x = (oracle[0] if u > 0 else oracle[1]) if oracle is not None else (
                (lo if u > 0 else h) if trigger_mode == TriggerPrice.EXTREME else c)
            row[StepMetric.N_WAITING] += 1
            row[StepMetric.WAITING_NEGATIVE_EQUITY] += min(float(res.cash[i]) + u * x, 0.0)
        slippage = abs(1.0 - execution)
        sim_closes.append(c)
        if replay is not None:
            factor = float(replay[0][t + 1]) if t + 1 < n_steps else factor
        elif cascade:  # the step's move, fixed in price at this step's depth
            permanent, transient = _displaced(
                model, permanent, transient, impact_flow, step_depth,
                float(market["permanent_fraction"]), float(market["transient_decay"]))
        fund = _waterfall(res, policy, market, t, row, fund, c, equity_start, product, vow,
                          t == n_steps - 1)
    if soft:
        res.bands = np.array([[getattr(b, "top" if f == "top_price" else f) for f in BAND_FIELDS]
                              for b in bands]).reshape(n, len(BAND_FIELDS))
    return res


def _move_book(res, flow, t, product, rates, warned, cured, price, factor) -> None:
    """Move the book at step ``t``: arrivals, then voluntary closes and (t > 0) cures.

    Arrivals open at the step's market price (the entry price times ``factor``); closes and
    cures act at the price observed: the previous simulated close (the first open at step 0).
    """
    row = res.book_flow[t]
    for i in range(len(res.units)):
        if flow.arrival_step[i] != t:
            continue
        u, c = float(flow.open_units[i]), float(flow.open_cash[i])
        if factor != 1.0:  # margin - units x entry price x factor
            margin = float(flow.margin[i])
            c = margin + (c - margin) * factor
        res.units[i], res.cash[i] = u, c
        res.deposited[i] += flow.margin[i]
        row[0] += 1
        if product[i] == Product.LOAN:
            row[3] += u
            row[5] += c
        else:
            row[1 if u > 0 else 2] += u
            row[4] += c
        row[6] += flow.margin[i]
    closing = flow.close_step
    for i in range(len(res.units) if closing is not None else 0):
        u = float(res.units[i])
        if closing[i] != t or u == 0.0:
            continue
        res.cash[i] += u * price  # sold to the market at the observed price: equity stays
        res.units[i] = 0.0
        res.closed_step[i] = t
        row[10] += 1
        if product[i] == Product.LOAN:
            row[13] += u
            row[15] += u * price
        else:
            row[11 if u > 0 else 12] += u
            row[14] += u * price
        row[16] += abs(u * price)
    r = flow.response
    if r is None or t == 0:
        return
    for i in range(len(res.units)):
        u, c, prod = float(res.units[i]), float(res.cash[i]), int(product[i])
        if not flow.responds[i] or (r.max_cures and cured[i] >= r.max_cures):
            continue
        warning, target = r.warning_health[prod], r.target_health[prod]
        if prod == Product.PERP and r.perp_reference_rate is not None and rates[prod] > 0:
            # levels stated at a reference maintenance rate: the same equity at this rate
            warning = warning * r.perp_reference_rate / rates[prod]
            target = target * r.perp_reference_rate / rates[prod]
        if u == 0.0 or _health(prod, u, c, price, rates[prod]) >= warning:
            warned[i] = -1
            continue
        if warned[i] < 0:
            warned[i] = t - 1
        if t - warned[i] <= r.delay_steps:
            continue
        warned[i] = -1
        m = rates[prod]
        top_up = prod == Product.LOAN and r.loan_top_up
        if top_up:  # collateral worth target x debt / LT is what the loan must hold
            need = max(target * -c / (1 - m) - u * price, 0.0) if c < 0.0 else 0.0
        elif prod == Product.LOAN:
            need = min(max(-c - (1 - m) * u * price / target, 0.0), max(-c, 0.0))
        else:
            need = max(target * m * abs(u) * price - (c + u * price), 0.0)
        if need > 0.0:
            if top_up:
                res.units[i] += need / price
                res.topped_up[i] += need / price
                row[18] += need / price
            else:
                res.cash[i] += need
                if prod == Product.LOAN:
                    row[17] += need
            res.deposited[i] += need
            cured[i] += 1
            row[7] += 1
            row[8 if prod == Product.PERP else 9] += need


def _soft_trade(res, row, i, b: _Bands, q: float, x: float, execution: float) -> None:
    """Trade loan i's bands: buy (q > 0) or sell (q < 0) collateral at the market.

    At band prices or worse (the arbitrageur never trades at a loss); no liquidation record.
    """
    if q == 0:
        return
    u, c = float(res.units[i]), float(res.cash[i])
    pe = x * execution
    value = b.stablecoin(u + q) - b.stablecoin(u)
    if q > 0 and max(-value, q * pe) > c + b.debt:  # a buy-back spends at most the stablecoin
        q *= (c + b.debt) / max(-value, q * pe)
        value = b.stablecoin(u + q) - b.stablecoin(u)
    market = -q * pe
    proceeds = min(value, market)
    res.units[i], res.cash[i] = u + q, c + proceeds
    b.soft_units -= q
    b.soft_proceeds += proceeds
    b.soft_loss += market - proceeds
    row[StepMetric.SOFT_SOLD_UNITS if q < 0 else StepMetric.SOFT_BOUGHT_UNITS] += abs(q)
    if q < 0:
        row[StepMetric.LIQUIDATED_NOTIONAL] += -q * pe
    row[StepMetric.SOFT_PROCEEDS] += proceeds
    row[StepMetric.SOFT_LOSS] += market - proceeds
    row[StepMetric.CASH_DELTA_LOAN] += proceeds
    row[StepMetric.UNITS_DELTA_LOAN] += q
    row[StepMetric.IMPACT_COST] += q * (pe - x)


def _bands_liquidate(res, policy, t, i, b: _Bands, p, execution, x) -> None:
    """Liquidate as crvUSD liquidate(frac=1) does.

    The debt is repaid, the liquidator takes all the AMM holds.
    """
    u, c = float(res.units[i]), float(res.cash[i])
    pe = p * execution
    health = b.health(u, c, x, float(policy["maintenance_rate"][Product.LOAN]))
    equity = c + u * pe
    keeper = float(policy["keeper_share"]) * max(equity, 0.0)
    b.debt = 0.0
    _book(res, t, i, Product.LOAN, u, c, 0.0, 0.0, u, p, pe, keeper, max(equity, 0.0) - keeper,
          max(-equity, 0.0), health, False, False, False)


def _waterfall(res, policy, market, t, row, fund, price, equity_start, product, vow,
               last) -> float:
    """Insurance fund, then ADL (perps), surplus buffer debt queue or socialised loss.

    The surplus buffer's debt queue is ``vow[0]`` (Maker's ``Vow``: healed by later surplus,
    flopped at the ``last`` step). Returns the fund balance.
    """
    fund += row[StepMetric.INSURANCE_FEES]
    incentives = row[StepMetric.AUCTION_INCENTIVES]  # Dutch auctions' keeper incentives
    paid = min(fund, incentives)
    fund -= paid
    bad = row[StepMetric.BAD_DEBT]
    draw = min(fund, bad)
    fund -= draw
    if policy["waterfall"] == Waterfall.SURPLUS_BUFFER:
        healed = min(fund, vow[0])  # later surplus heals earlier queued debt first
        fund -= healed
        vow[0] += (incentives - paid) + (bad - draw) - healed
        row[StepMetric.SOCIALISED_LOSS] = vow[0] if last else 0.0  # flop what is left
        if last:
            vow[0] = 0.0
        row[StepMetric.INSURANCE_DRAW] = draw + paid + healed
        row[StepMetric.INSURANCE_FUND] = fund
        row[StepMetric.DEBT_HEALED] = healed
        row[StepMetric.DEBT_QUEUED] = vow[0]
        return fund
    row[StepMetric.INSURANCE_DRAW] = draw + paid
    row[StepMetric.INSURANCE_FUND] = fund
    row[StepMetric.SOCIALISED_LOSS] = incentives - paid
    shortfall = bad - draw
    if shortfall <= 0:
        return fund
    perp_bad = row[StepMetric.BAD_DEBT_PERP_LONG] + row[StepMetric.BAD_DEBT_PERP_SHORT]
    if policy["waterfall"] != Waterfall.ADL or perp_bad <= 0:
        row[StepMetric.SOCIALISED_LOSS] += shortfall
        return fund
    from_longs = shortfall * row[StepMetric.BAD_DEBT_PERP_LONG] / bad
    from_shorts = shortfall * row[StepMetric.BAD_DEBT_PERP_SHORT] / bad
    row[StepMetric.SOCIALISED_LOSS] += shortfall - from_longs - from_shorts
    sides = ((1, from_longs, row[StepMetric.BANKRUPT_UNITS_LONG]),
             (-1, from_shorts, row[StepMetric.BANKRUPT_UNITS_SHORT]))
    for side, owed, bankrupt_units in sides:
        if owed <= 0:
            continue
        covered = _adl(res, policy, market, t, side, owed, bankrupt_units, price,
                       equity_start, product, row) if bankrupt_units > 0 else 0.0
        row[StepMetric.SOCIALISED_LOSS] += owed - covered
    return fund


def _adl(res, policy, market, t, side, owed, bankrupt_units, price, equity_start, product,
         row) -> float:
    ranking = int(policy["adl_ranking"])
    m = float(policy["maintenance_rate"][Product.PERP])
    candidates = []
    for i in range(len(res.units)):
        u = float(res.units[i])
        if product[i] != Product.PERP or u == 0 or (u > 0) == (side > 0):
            continue
        equity = float(res.cash[i]) + u * price
        if equity <= 0:
            continue
        pnl = equity - equity_start[i]
        notional = abs(u) * price
        if ranking == AdlRanking.DYDX:
            score = 0.0
        elif pnl <= 0:
            continue
        elif ranking == AdlRanking.BINANCE:
            score = pnl / max(1.0, equity_start[i]) * (m * notional / equity)
        else:  # BitMEX / Hyperliquid: PnL% x effective leverage
            entry_value = notional - (1 if u > 0 else -1) * pnl
            score = (pnl / entry_value if entry_value > 0 else math.inf) * notional / equity
        candidates.append((i, score))
    if ranking == AdlRanking.DYDX:
        k = len(candidates)
        if k:
            mask = (1 << 64) - 1
            z = (int(market["seed"]) * 0x9E3779B97F4A7C15 + (t + 1) * 0xBF58476D1CE4E5B9) & mask
            z = ((z ^ (z >> 31)) * 0x94D049BB133111EB) & mask
            start = z % k
            candidates = candidates[start:] + candidates[:start]
    else:
        candidates.sort(key=lambda c: -c[1])  # stable: ties keep book order
    delta = owed / bankrupt_units
    remaining, covered = bankrupt_units, 0.0
    for i, _ in candidates:
        if remaining <= 1e-12 * bankrupt_units:
            break
        u = float(res.units[i])
        x = min(abs(u), remaining)
        transfer = min(x * delta, float(res.cash[i]) + u * price)
        signed = x if u > 0 else -x
        res.units[i] = 0.0 if x >= abs(u) else u - signed
        res.cash[i] = float(res.cash[i]) + signed * price - transfer
        res.adl_records.append(dict(step=t, account=i, units_closed=signed, price=price,
                                    transfer=transfer))
        row[StepMetric.CASH_DELTA_PERP] += signed * price - transfer
        side = StepMetric.UNITS_DELTA_PERP_LONG if u > 0 else StepMetric.UNITS_DELTA_PERP_SHORT
        row[side] -= signed
        row[StepMetric.ADL_NOTIONAL] += x * price
        row[StepMetric.ADL_ACCOUNTS] += 1
        row[StepMetric.ADL_TRANSFER] += transfer
        covered += transfer
        remaining -= x
    return covered


def _whole(prod: int, u: float, c: float, p: float, pen: float) -> float:
    """Units closed by a full liquidation: the position, or a loan's whole debt."""
    if prod == Product.LOAN and u > 0:
        return min(u, -c / (p * (1 - pen))) if c < 0 else 0.0
    return abs(u)


def _step_rates(policy, prod: int, scale: float) -> tuple[float, float]:
    """Return a product's (maintenance rate, partial target rate) in a step.

    Dynamic margin scales the perps'.
    """
    m = float(policy["maintenance_rate"][prod])
    target = float(policy["target_rate"][prod])
    return (m * scale, target * scale) if prod == Product.PERP else (m, target)


def _penalty(policy, prod: int, health: float) -> float:
    """Penalty rate of a liquidation: fixed, or for loans a health model.

    Euler's discount ``min(1 - health, cap)``, or Aave v4's bonus rising linearly in health
    from the base rate's bonus at health 1 to the cap's at ``full_close_health``
    (healthFactorForMaxBonus).
    """
    model = int(policy["penalty_model"])
    base = float(policy["penalty_rate"][prod])
    if prod != Product.LOAN or model == PenaltyModel.FIXED:
        return base
    cap = float(policy["penalty_cap"])
    if model == PenaltyModel.HEALTH_DISCOUNT:
        return min(max(1.0 - health, 0.0), cap)
    low, high = base / (1.0 - base), cap / (1.0 - cap)  # bonuses at health 1 and at the cap
    cap_health = float(policy["full_close_health"])
    if health <= cap_health:
        bonus = high
    else:
        bonus = low + (high - low) * max(1.0 - health, 0.0) / (1.0 - cap_health)
    return bonus / (1.0 + bonus)


def _step_calls(policy, prod, u, c, p, x, liq_fill, lo, h, m, pen, target):
    """Units one step's liquidation calls close and their average fill price (``step_calls_nb``).

    Up to ``max_calls_per_step`` calls while the account still fails the equity test at the
    decision price ``x``; with fills at the liquidation price, each next call where the price
    meets the new liquidation price (or at once if it is still past it).
    """
    d = _units_to_close(policy, prod, u, c, p, m, pen, target)
    calls = int(policy["max_calls_per_step"])
    if calls <= 1 or policy["family"] in (PolicyFamily.HARD, PolicyFamily.GRADUATED):
        return d, p
    size, first = abs(u), p
    total = value = 0.0
    for _ in range(calls):
        if d >= abs(u):
            return size, (value + abs(u) * p) / size
        total += d
        value += d * p
        if d <= 0:
            break
        signed = d if u > 0 else -d
        c = c + signed * p - pen * d * p
        u = u - signed
        if not c + u * x < m * abs(u) * x:
            break
        if liq_fill:
            lp = _liquidation_price(u, c, m)
            p = min(max(min(p, lp) if u > 0 else max(p, lp), lo), h)
        d = _units_to_close(policy, prod, u, c, p, m, pen, target)
    if total <= 0:
        return 0.0, first
    return min(total, size), value / total


def _units_to_close(policy, prod, u, c, p, m, pen, target) -> float:
    size = abs(u)
    equity = c + u * p
    whole = _whole(prod, u, c, p, pen)
    if policy["family"] == PolicyFamily.HARD or equity <= 0:
        if policy["seize_all_collateral"] and prod == Product.LOAN and c < 0:
            return size  # Compound v3 absorb: all collateral
        return whole
    if policy["family"] == PolicyFamily.GRADUATED:
        health = _health(prod, u, c, p, m)
        tiers = list(zip(policy["tier_health"], policy["tier_fraction"], strict=True))
        fraction = max([tiers[0][1]] + [f for h, f in tiers[1:] if health < h])
        d = fraction * whole
        return whole if equity < pen * d * p else min(d, whole)
    cf = 1.0 if _health(prod, u, c, p, m) <= policy["full_close_health"] else float(
        policy["close_factor"])
    notional = size * p
    if notional < policy["full_close_below_usd"]:
        cf = 1.0
    if 0 < policy["large_position_usd"] < notional:
        cf = min(cf, float(policy["large_position_fraction"]))
    cap = cf * size
    if prod == Product.LOAN:  # on the debt, the collateral capped at the balance (Aave)
        cap = min(cf * -c / (p * (1.0 - pen)), size) if u > 0 and c < 0 else cf * whole
    if math.isinf(target):
        d = cap
    elif target > pen:
        d = min(max((target * size * p - equity) / (p * (target - pen)), 0.0), cap)
    else:
        d = whole
    if equity < pen * d * p:
        d = whole
    dust = policy["min_remaining_usd"]
    if dust > 0 and d < whole and (size - d) * p < dust:
        d = whole
    return max(min(d, whole), 0.0)


def take_pays(q: float, price: float, market: float, factor: float, margin: float,
              gas: float) -> bool:
    """Return whether a keeper's take of ``q`` units at the auction ``price`` pays.

    It pays when ``q x (market x factor - price) >= margin x q x market + gas`` (twin of
    ``take_pays_nb``; Maker dss ``clip.sol`` ``take`` leaves the decision to the keeper).

    Parameters
    ----------
    q : float
        Collateral units taken (> 0).
    price, market : float
        Auction price and market price (the step's close), USD per unit.
    factor : float
        Expected execution price / market price, fraction (e.g. ``1 - expected slippage``).
    margin : float
        Least profit, fraction of the market value taken.
    gas : float
        Gas of the take, USD (0 when keepers do not require profit).

    Returns
    -------
    bool
        True when the take clears the keeper's margin and gas.
    """
    return q * (market * factor - price) >= margin * q * market + gas


def _take_need(q: float, price: float, market: float, margin: float, gas: float) -> float:
    """Least execution factor at which a take of ``q`` units pays."""
    return (price + margin * market + gas / q) / market if q > 0 else math.inf


def _auction_price(policy, top: float, dur: int) -> float:
    """Auction price ``dur`` steps after its (re)start (Maker ``abaci.sol``).

    ENGLISH: ``top``, the step's winning bid.
    """
    curve = int(policy["auction_curve"])
    if curve == AuctionCurve.ENGLISH:
        return top
    if curve == AuctionCurve.LINEAR:
        tau = float(policy["auction_tau_steps"])
        return top * (tau - dur) / tau if dur < tau else 0.0
    cut = float(policy["auction_cut"])
    if curve == AuctionCurve.STAIRSTEP:
        return top * cut ** math.floor(dur / float(policy["auction_step_steps"]))
    return top * cut ** dur


def _chost(policy, res, i, q, top, dur) -> float:
    """Maker clip.sol take: a partial buy may not leave less than chost of tab."""
    chost = float(policy["auction_chost_usd"])
    price = _auction_price(policy, top, dur)
    tab = -float(res.cash[i]) / (1 - float(policy["penalty_rate"][Product.LOAN]))
    owe = q * price
    if chost <= 0 or q >= float(res.units[i]) or owe >= tab * (1 - 1e-12) or tab - owe >= chost:
        return q
    return 0.0 if tab <= chost else (tab - chost) / price


def _take(res, t, i, market, q, execution, m, share, price, zero_bid=False) -> bool:
    """Let a keeper take ``q`` units of loan ``i``'s collateral at the auction ``price``.

    A zero bid takes the whole lot at price 0.

    Returns True when the auction is over (tab covered or collateral exhausted).
    """
    u, c = float(res.units[i]), float(res.cash[i])
    pe = market * execution
    tab = -c / (1 - share)
    owe = q * price
    covered = owe >= tab * (1 - 1e-12)
    u_after = 0.0 if q >= u else u - q
    c1 = c + owe
    if u_after == 0.0:
        insurance = min(max(c1, 0.0), owe * share)
    elif covered:
        insurance = max(c1, 0.0)
    else:
        insurance = owe * share
    c_after = c1 - insurance
    bad = 0.0
    if u_after == 0.0 and c_after < 0:
        bad, c_after = -c_after, 0.0
    keeper = q * (pe - price)
    _book(res, t, i, Product.LOAN, u, c, u_after, c_after, q, market, pe, keeper, insurance, bad,
          _health(Product.LOAN, u, c, market, m), covered and u_after > 0, False, True,
          zero_bid)
    return u_after == 0.0 or covered


def _apply(res, policy, t, i, prod, p, d, execution, m, pen, preemptive):
    u, c = float(res.units[i]), float(res.cash[i])
    pe = p * execution
    size = abs(u)
    clears_debt = prod == Product.LOAN and u > 0 and c < 0 and d < size and (
        d >= -c / (pe * (1 - pen)))
    signed = d if u > 0 else -d
    fee = pen * d * pe
    keeper = float(policy["keeper_share"]) * fee
    u_after = 0.0 if d >= size else u - signed
    c_after = c + signed * pe - keeper
    available = c_after if clears_debt else c_after + u_after * pe
    insurance = min(fee - keeper, max(available, 0.0))
    c_after -= insurance
    bad = 0.0
    if u_after == 0.0 and c_after < 0:
        bad, c_after = -c_after, 0.0
    _book(res, t, i, prod, u, c, u_after, c_after, d, p, pe, keeper, insurance, bad,
          _health(prod, u, c, p, m), clears_debt, preemptive, False)


def _book(res, t, i, prod, u, c, u_after, c_after, d, p, pe, keeper, insurance, bad,
          health_before, clears_debt, preemptive, auction, zero_bid=False):
    """Record one liquidation (or take) of account ``i`` in the state, step row and records."""
    signed = d if u > 0 else -d
    closed = u_after == 0.0 or clears_debt
    res.units[i], res.cash[i] = u_after, c_after
    res.n_liquidations[i] += 1
    if res.first_step[i] < 0:
        res.first_step[i] = t
    res.last_step[i] = t
    res.liquidated_notional[i] += d * pe
    res.penalties_paid[i] += keeper + insurance
    res.bad_debt[i] += bad
    row = res.step_metrics[t]
    row[StepMetric.N_LIQUIDATIONS] += 1
    row[StepMetric.N_CLOSED] += closed
    row[StepMetric.N_BANKRUPT] += bad > 0
    row[StepMetric.LIQUIDATED_NOTIONAL] += d * pe
    if preemptive:
        row[StepMetric.N_PREEMPTIVE] += 1
        row[StepMetric.PREEMPTIVE_NOTIONAL] += d * pe
    row[StepMetric.KEEPER_FEES] += keeper
    row[StepMetric.INSURANCE_FEES] += insurance
    row[StepMetric.BAD_DEBT] += bad
    if bad > 0 and prod != Product.LOAN:
        long = u > 0
        row[StepMetric.BAD_DEBT_PERP_LONG if long else StepMetric.BAD_DEBT_PERP_SHORT] += bad
        row[StepMetric.BANKRUPT_UNITS_LONG if long else StepMetric.BANKRUPT_UNITS_SHORT] += d
    row[StepMetric.IMPACT_COST] += d * (p - pe) if u > 0 else d * (pe - p)
    if prod == Product.LOAN:
        row[StepMetric.CASH_DELTA_LOAN] += c_after - c
        row[StepMetric.UNITS_DELTA_LOAN] -= signed
    else:
        row[StepMetric.CASH_DELTA_PERP] += c_after - c
        long = StepMetric.UNITS_DELTA_PERP_LONG
        row[long if u > 0 else StepMetric.UNITS_DELTA_PERP_SHORT] -= signed
    res.records.append(
        dict(step=t, account=i, closed=closed, units_closed=signed, fill_price=pe,
             keeper_fee=keeper, insurance_fee=insurance, bad_debt=bad,
             health_before=health_before, equity_after=c_after + u_after * pe,
             decision_price=p, preemptive=preemptive, auction=auction, zero_bid=zero_bid)
    )
