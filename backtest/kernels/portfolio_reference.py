"""Plain-Python reference twin of :func:`backtest.kernels.portfolio_nb.run_portfolio_nb`.

Written for reading, not speed: one account at a time, positions as Python lists, the order
policies as ``sorted`` keys, no chunks and no record buffer. Parity tests run both on random
books and tapes and compare account states, per-step and per-asset aggregates and records.

Market impact, cascade feedback and oracles per asset are restated here with the single-asset
twin's own impact formulas (:mod:`backtest.kernels.reference`, not the numba kernels): each
step, every liquidatable account's liquidation is first planned at the decision prices on a
copy of it (its units sold or bought give each asset's net flow), then run again with the
same sizes and fills at decision price x the asset's execution factor.

Keepers (``keepers``: latency in steps, profit, capital per asset, gas per step) are restated
as the single-asset twin states them, account by account in book order: a liquidatable
account waits ``latency`` steps from the step it was first seen liquidatable; with
``requires_profit`` its planned liquidation's keeper fees must cover ``gas`` per record plus
the last step's slippage of each asset x the notional; with capital, each asset's
``capital / close`` units per step are handed out in book order, a seizure or close cut to
what is left (none when what is left is dust).

Why over 400 lines: a reference twin is read top to bottom next to its kernel, rule by rule
(accounts, the market of each asset, the step), as :mod:`backtest.kernels.reference` is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from backtest.kernels.enums import AdlRanking, ImpactModel, OracleModel, TriggerPrice, Waterfall
from backtest.kernels.portfolio_enums import (
    N_ASSET_MARKET_METRICS,
    N_ASSET_METRICS,
    N_PORTFOLIO_METRICS,
    AccountKind,
    AssetMarketMetric,
    AssetMetric,
    OrderPolicy,
    PortfolioMetric,
)
from backtest.kernels.portfolio_nb import SHORTAGE_TOL
from backtest.kernels.reference import _clip, _displaced, _equivalent_flow, _execution


@dataclass
class PortfolioReferenceResult:
    """Outputs of :func:`simulate_portfolio_reference` (same meaning as the kernel's)."""

    pos_units: np.ndarray
    cash: np.ndarray
    n_liquidations: np.ndarray
    first_step: np.ndarray
    penalties_paid: np.ndarray
    bad_debt: np.ndarray
    liquidated_notional: np.ndarray
    step_metrics: np.ndarray
    asset_metrics: np.ndarray
    records: list[dict] = field(default_factory=list)
    market_metrics: np.ndarray | None = None
    adl_records: list[dict] = field(default_factory=list)


def _price(units: float, low: float, high: float, close: float, trigger: int) -> float:
    if trigger == TriggerPrice.CLOSE:
        return close
    return low if units > 0 else high


def _health(kind: int, positions: list[list], cash: float, assets) -> float:
    """Health of an account; ``positions`` are ``[asset, units, price, ...]`` lists."""
    if kind == AccountKind.LENDING:
        weighted = sum(pos[1] * pos[2] * assets[pos[0]]["liquidation_threshold"]
                       for pos in positions if pos[1] > 0)
        return math.inf if cash >= 0 else weighted / -cash
    equity = _equity(cash, positions)
    mm = sum(assets[pos[0]]["maintenance_margin_rate"] * abs(pos[1]) * pos[2]
             for pos in positions)
    return math.inf if mm <= 0 else equity / mm


def _equity(cash: float, positions: list[list], col: int = 2) -> float:
    """Cash plus position values at column ``col`` (2: decision, 3: fill price).

    Added in position order, as the kernel does.
    """
    equity = cash
    for pos in positions:
        equity += pos[1] * pos[col]
    return equity


def _order(kind: int, order: int, positions: list[list], sens, assets) -> list[int]:
    def primary(j: int) -> float:
        a, u, p = positions[j][:3]
        if order == OrderPolicy.PROTOCOL:
            return assets[a]["liquidation_bonus" if kind == AccountKind.LENDING
                             else "liquidation_penalty"]
        if order == OrderPolicy.LEAST_SENSITIVE:
            return -sens[a]
        return abs(u) * p

    return sorted(range(len(positions)),
                  key=lambda j: (-primary(j), -abs(positions[j][1]) * positions[j][2], j))


def _take(d, a, left, dust):
    """Units of ``d`` (asset ``a``) the keepers' capital still covers; 0: none.

    ``left`` is updated; ``left`` None: no capital limit.
    """
    if left is None:
        return d
    take = min(d, left[a])
    if take < d and take <= dust[a]:
        return 0.0
    left[a] -= take
    return take


def _liquidate_lending(positions, cash, health, policy, assets, execution, left=None,
                       dust=None):
    """Return (cash, records) after liquidating a lending account (positions updated).

    ``positions`` are ``[asset, units, decision price, fill price]``; ``execution`` the
    step's execution factor per asset. Seizures are sized at the decision prices (a plan whose
    own cash, ``plan``, decides how much debt each repaid) and settled at the fill prices.
    """
    cf = 1.0 if health <= policy["full_close_health_factor"] else policy["close_factor"]
    to_repay = cf * -cash
    plan = cash
    records = []

    def seize(j, repay_wanted):
        """Seize collateral ``j``; return the debt it repaid in the plan."""
        nonlocal cash, plan
        a, u, p, pe = positions[j]
        b = assets[a]["liquidation_bonus"]
        value = u * p
        if repay_wanted * (1 + b) >= value:
            seized, repay = u, value / (1 + b)
        else:
            seized, repay = repay_wanted * (1 + b) / p, repay_wanted
        take = _take(seized, a, left, dust)
        if take <= 0:
            return 0.0
        if take < seized:  # cut to the keepers' capital left: repays what it is worth
            seized, repay = take, take * p / (1 + b)
        bonus = seized * p - repay
        positions[j][1] = 0.0 if seized >= u else u - seized
        plan, repay_plan, _ = _fund_fee(plan, repay, policy["protocol_fee"] * bonus,
                                        seized < u and plan + repay >= 0, positions, 2)
        # the fill: the same units at p x e repay e x the planned debt
        repay_fill = repay * execution[a]
        bonus_fill = seized * (p * execution[a]) - repay_fill
        fee = policy["protocol_fee"] * bonus_fill
        keeper = bonus_fill - fee
        cash, repay_fill, insurance = _fund_fee(cash, repay_fill, fee,
                                                seized < u and cash + repay_fill >= 0,
                                                positions, 3)
        records.append({"asset": a, "units_closed": seized, "fill_price": pe,
                        "keeper_fee": keeper, "insurance_fee": insurance,
                        "bad_debt": 0.0, "debt_repaid": repay_fill})
        return repay_plan

    if policy["order"] == OrderPolicy.PROPORTIONAL:
        total = sum(pos[1] * pos[2] for pos in positions if pos[1] > 0)
        for j, (_, u, p, _) in enumerate([list(pos) for pos in positions]):
            if u > 0 and total > 0:
                seize(j, to_repay * (u * p) / total)
    else:
        for j in _order(AccountKind.LENDING, policy["order"], positions, policy["_sens"], assets):
            if to_repay <= 0:
                break
            if positions[j][1] <= 0:
                continue
            to_repay -= seize(j, to_repay)
    if cash < 0 and not any(pos[1] > 0 for pos in positions):
        _attribute(-cash, records)
        cash = 0.0
    return cash, records


def _fund_fee(cash, repay, fee, clears, positions, col):
    """Pay the fund's share ``fee`` of a seizure's bonus out of the equity left after it.

    The keeper's share is always paid; the unpaid part of ``fee`` repays debt. Returns (cash
    after, debt repaid, insurance fee). A seizure that clears the debt with collateral left
    pays it all. Collateral is valued at column ``col`` of the positions (2: decision, 3: fill
    price).
    """
    if clears:
        return cash + repay, repay, fee
    collateral = 0.0
    for pos in positions:
        if pos[1] > 0:
            collateral += pos[1] * pos[col]
    equity = cash + repay + fee + collateral
    if equity >= fee:
        return cash + repay, repay, fee
    if equity > 0:
        return -collateral, -collateral - cash, equity
    return cash + repay + fee, repay + fee, 0.0


def _liquidate_perp(positions, cash, policy, assets, left=None, dust=None):
    """Return (cash, records) after liquidating a perp account (positions updated).

    ``positions`` are ``[asset, units, decision price, fill price]``: each close is sized at
    the decision prices from the plan's equity and settled at the fill price.
    """
    target, ks = policy["target_health"], policy["perp_keeper_share"]
    equity = _equity(cash, positions)
    mm = sum(assets[pos[0]]["maintenance_margin_rate"] * abs(pos[1]) * pos[2]
             for pos in positions)
    pen_total = sum(assets[pos[0]]["liquidation_penalty"] * abs(pos[1]) * pos[2]
                    for pos in positions)
    everything = equity <= 0
    plan = cash
    records = []

    def settle(cash_closed, held, fee):
        """Keeper's share first, the fund's out of the equity left; returns (cash, k, i)."""
        keeper = ks * fee
        after = cash_closed - keeper
        insurance = min(fee - keeper, max(after + held, 0.0))
        return after - insurance, keeper, insurance

    def close(j, d):
        """Close ``d`` units of position ``j``, in the plan and at the fill."""
        nonlocal cash, plan, equity
        a, u, p, pe = positions[j]
        signed = d if u > 0 else -d
        pen = assets[a]["liquidation_penalty"]
        positions[j][1] = 0.0 if d >= abs(u) else u - signed
        cash, keeper, insurance = settle(cash + signed * pe, _equity(0.0, positions, 3),
                                         pen * d * pe)
        held = _equity(0.0, positions, 2)
        plan, _, _ = settle(plan + signed * p, held, pen * d * p)
        equity = plan + held
        records.append({"asset": a, "units_closed": signed, "fill_price": pe,
                        "keeper_fee": keeper, "insurance_fee": insurance, "bad_debt": 0.0,
                        "debt_repaid": 0.0})

    if policy["order"] == OrderPolicy.PROPORTIONAL:
        f = 1.0
        if not everything and target * mm - pen_total > 0:
            f = min((target * mm - equity) / (target * mm - pen_total), 1.0)
        for j, u in enumerate([pos[1] for pos in positions]):
            if u != 0 and f > 0:  # f <= 0: healthy at the decision prices (an oracle flagged it)
                d = _take(abs(u) if f >= 1 else f * abs(u), positions[j][0], left, dust)
                if d > 0:
                    close(j, d)
    else:
        for j in _order(AccountKind.CROSS_PERP, policy["order"], positions, policy["_sens"],
                        assets):
            a, u, p, _ = positions[j]
            if u == 0:
                continue
            shortage = target * mm - equity
            if not everything and shortage <= SHORTAGE_TOL * mm:
                break
            m = assets[a]["maintenance_margin_rate"]
            rate = target * m - assets[a]["liquidation_penalty"]
            d = abs(u)
            if not everything and rate > 0:
                d = min(abs(u), shortage / (rate * p))
            d = _take(d, a, left, dust)
            if d <= 0:
                continue
            close(j, d)
            mm -= m * d * p
    if cash < 0 and not any(pos[1] != 0 for pos in positions):
        _attribute(-cash, records)
        cash = 0.0
    return cash, records


def _attribute(bad: float, records: list[dict]) -> None:
    """Split bad debt over the event's records pro rata to notional, the rest to the last."""
    if not records:
        return
    total = sum(abs(r["units_closed"]) * r["fill_price"] for r in records)
    given = 0.0
    for r in records[:-1]:
        r["bad_debt"] = bad * abs(r["units_closed"]) * r["fill_price"] / total if total else 0.0
        given += r["bad_debt"]
    records[-1]["bad_debt"] = bad - given


def simulate_portfolio_reference(low, high, close, sensitivity, assets, policy, kind, offsets,
                                 pos_asset, pos_units, cash, insurance_fund_usd=0.0,
                                 market=None, depth=None, open_=None,
                                 waterfall=Waterfall.SOCIALISE, adl_ranking=AdlRanking.BINANCE,
                                 keepers=None) -> PortfolioReferenceResult:
    """Simulate every step for one policy, one account at a time.

    After each step the insurance fund receives the step's insurance fees, then pays its bad
    debt; what it cannot pay is socialised (the ``INSURANCE_*`` and ``SOCIALISED_LOSS``
    columns of ``step_metrics``).

    Parameters
    ----------
    low, high, close, sensitivity : array_like, shape (T, A)
        Aligned candles (USD) and the per-step asset sensitivity (no NaN).
    assets : ndarray, shape (A,), ``ASSET_DTYPE``
    policy : numpy record of ``PORTFOLIO_POLICY_DTYPE``
    kind : array_like, shape (N,)
    offsets : array_like, shape (N + 1,)
    pos_asset, pos_units : array_like, shape (P,)
    cash : array_like, shape (N,)
    insurance_fund_usd : float
        Fund balance before the first step, USD.
    market : numpy record of ``MARKET_DTYPE``, optional
        Impact model, cascade and oracle, for every asset (default: none of them).
    depth : array_like, shape (T, A), optional
        1% depth per step and asset, USD (needed with an impact model).
    open_ : array_like, shape (T, A), optional
        Historical opens (the oracles' price before the first step; needed with an oracle or
        auto-deleveraging).
    waterfall, adl_ranking : int
        :class:`Waterfall` (SOCIALISE or ADL) and :class:`AdlRanking`.
    keepers : dict, optional
        ``latency`` (steps), ``requires_profit`` (bool), ``capital_usd`` (per step and asset,
        USD at the close; 0: none) and ``gas`` (shape (T,), USD per liquidation record).
        Default: keepers act at once, for free, without a capital limit.

    Returns
    -------
    PortfolioReferenceResult
    """
    low, high, close = (np.asarray(x, dtype=float) for x in (low, high, close))
    t_steps, n_assets = low.shape
    n = len(kind)
    units = np.array(pos_units, dtype=float)
    cash = np.array(cash, dtype=float)
    pol = {name: policy[name] for name in policy.dtype.names}
    ast = [{name: assets[a][name] for name in assets.dtype.names} for a in range(n_assets)]
    res = PortfolioReferenceResult(
        units, cash, np.zeros(n, np.int32), np.full(n, -1, np.int32), np.zeros(n),
        np.zeros(n), np.zeros(n), np.zeros((t_steps, N_PORTFOLIO_METRICS)),
        np.zeros((t_steps, n_assets, N_ASSET_METRICS)),
        market_metrics=np.zeros((t_steps, n_assets, N_ASSET_MARKET_METRICS)))
    M, A, X = PortfolioMetric, AssetMetric, AssetMarketMetric
    model = int(market["impact_model"]) if market is not None else ImpactModel.NONE
    cascade = market is not None and bool(market["cascade"])
    oracle_model = int(market["oracle_model"]) if market is not None else OracleModel.MARKET
    permanent = [0.0] * n_assets  # log price displacements of each asset (impact_nb)
    transient = [0.0] * n_assets
    factor = [1.0] * n_assets
    sim_closes: list[list[float]] = [[] for _ in range(n_assets)]
    chainlink = [[0.0, -1] for _ in range(n_assets)]  # published price, step of publication
    fund = float(insurance_fund_usd)
    keepers = keepers or {}
    latency = int(keepers.get("latency", 0))
    requires_profit = bool(keepers.get("requires_profit", False))
    capital = float(keepers.get("capital_usd", 0.0))
    gas = keepers.get("gas")
    first_seen = [-1] * n  # step each account was first seen liquidatable since liquidated
    slippage = [0.0] * n_assets  # |1 - execution factor| of the last step
    if open_ is not None:  # each account's equity at the first open (ADL's PnL)
        equity_start = [float(cash[i]) + sum(float(pos_units[k]) * float(open_[0][pos_asset[k]])
                                             for k in range(int(offsets[i]),
                                                            int(offsets[i + 1])))
                        for i in range(n)]

    def past_close(a: int, s: int) -> float:
        return float(open_[0][a]) if s < 0 else sim_closes[a][s]

    def oracle_price(a: int, t: int) -> float:
        if oracle_model == OracleModel.LAGGED:
            return past_close(a, t - int(market["oracle_lag_steps"]))
        if oracle_model == OracleModel.OSM:
            hop = int(market["oracle_lag_steps"])
            return past_close(a, t // hop * hop - hop - 1)
        if oracle_model == OracleModel.TWAP:
            w = int(market["oracle_twap_steps"])
            return sum(past_close(a, s) for s in range(t - w, t)) / w
        latest = past_close(a, t - 1)  # CHAINLINK: deviation threshold and heartbeat
        published, step = chainlink[a]
        if (published <= 0 or abs(latest - published) >= market["oracle_deviation"] * published
                or t - step >= market["oracle_heartbeat_steps"]):
            chainlink[a] = [latest, t]
        return chainlink[a][0]

    for t in range(t_steps):
        pol["_sens"] = sensitivity[t]
        step_depth = [float(depth[t][a]) if depth is not None else math.nan
                      for a in range(n_assets)]
        outstanding = [0.0] * n_assets
        for a in range(n_assets):
            if cascade:  # the displacement, read as an outstanding flow at this step's depth
                factor[a] = _clip(math.exp(permanent[a] + transient[a]))
                outstanding[a] = _equivalent_flow(model, factor[a], step_depth[a])
        lo_t, hi_t, cl_t = ([float(x[t, a]) * factor[a] for a in range(n_assets)]
                            for x in (low, high, close))
        orc = ([oracle_price(a, t) for a in range(n_assets)]
               if oracle_model != OracleModel.MARKET else cl_t)
        mm = res.market_metrics[t]
        for a in range(n_assets):
            mm[a, X.PRICE_FACTOR], mm[a, X.EXECUTION_FACTOR] = factor[a], 1.0
            mm[a, X.ORACLE_PRICE], mm[a, X.DEPTH] = orc[a], step_depth[a]
        # decide: the accounts liquidatable at their trigger prices, with decision prices
        due = []
        for i in range(n):
            lo, hi = int(offsets[i]), int(offsets[i + 1])
            trig, dec = [], []
            for k in range(lo, hi):
                a = int(pos_asset[k])
                if oracle_model != OracleModel.MARKET:
                    trig.append(orc[a])
                    dec.append(cl_t[a])
                else:
                    p = _price(units[k], lo_t[a], hi_t[a], cl_t[a], pol["trigger"])
                    trig.append(p)
                    dec.append(p)
            h = _health(int(kind[i]), [[int(pos_asset[k]), units[k], trig[k - lo]]
                                       for k in range(lo, hi)], cash[i], ast)
            if h < 1.0:
                due.append((i, lo, hi, dec, h))
        sm = res.step_metrics[t]
        sm[M.N_LIQUIDATABLE] += len(due)
        # keepers: who acts now (latency, then fees against gas and slippage)
        acting = []
        for i, lo, hi, dec, h in due:
            if latency > 0:
                if first_seen[i] < 0:
                    first_seen[i] = t
                if t < first_seen[i] + latency:
                    continue
            if requires_profit:
                copy = [[int(pos_asset[k]), units[k], dec[k - lo], dec[k - lo]]
                        for k in range(lo, hi)]
                _, recs = _liquidate(int(kind[i]), copy, cash[i], h, pol, ast,
                                     [1.0] * n_assets)
                fees = sum(r["keeper_fee"] for r in recs)
                costs = gas[t] * len(recs) + sum(
                    slippage[r["asset"]] * abs(r["units_closed"]) * r["fill_price"]
                    for r in recs)
                if fees < costs:
                    continue
            acting.append((i, lo, hi, dec, h))
        # the keepers' capital of the step, units per asset at its close, and its dust
        left = dust = None
        if capital > 0:
            left = [capital / cl_t[a] for a in range(n_assets)]
            dust = [1e-9 * x for x in left]
        # plan: every liquidation at the decision prices on a copy; its flow per asset
        flow = [0.0] * n_assets
        if model != ImpactModel.NONE:
            plan_left = list(left) if left is not None else None
            for i, lo, hi, dec, h in acting:
                copy = [[int(pos_asset[k]), units[k], dec[k - lo], dec[k - lo]]
                        for k in range(lo, hi)]
                _, recs = _liquidate(int(kind[i]), copy, cash[i], h, pol, ast,
                                     [1.0] * n_assets, plan_left, dust)
                for r in recs:  # units sold (> 0) flow out (< 0), shorts bought back flow in
                    flow[r["asset"]] -= r["units_closed"] * r["fill_price"]
        execution = [_execution(model, flow[a], step_depth[a], outstanding[a])
                     for a in range(n_assets)]
        for a in range(n_assets):
            mm[a, X.EXECUTION_FACTOR], mm[a, X.NET_FLOW] = execution[a], flow[a]
        # liquidate: the same sizes, filled at decision price x execution factor
        for i, lo, hi, dec, h in acting:
            positions = [[int(pos_asset[k]), units[k], dec[k - lo],
                          dec[k - lo] * execution[int(pos_asset[k])]] for k in range(lo, hi)]
            cash[i], recs = _liquidate(int(kind[i]), positions, cash[i], h, pol, ast, execution,
                                       left, dust)
            units[lo:hi] = [pos[1] for pos in positions]
            if not recs and (oracle_model != OracleModel.MARKET or capital > 0):
                # liquidatable at the oracle, not at the market, or no capital left: it waits
                if first_seen[i] < 0:
                    first_seen[i] = t
                continue
            first_seen[i] = -1
            sm[M.N_LENDING if kind[i] == AccountKind.LENDING else
               M.N_CROSS if kind[i] == AccountKind.CROSS_PERP else M.N_ISOLATED] += 1
            sm[M.N_LIQUIDATIONS] += 1
            res.n_liquidations[i] += 1
            if res.first_step[i] < 0:
                res.first_step[i] = t
            bad_event = sum(r["bad_debt"] for r in recs)
            if bad_event > 0:
                sm[M.N_BANKRUPT] += 1
                res.bad_debt[i] += bad_event
            for r in recs:
                r.update(step=t, account=i, health_before=h)
                notional = abs(r["units_closed"]) * r["fill_price"]
                am = res.asset_metrics[t, r["asset"]]
                sm[M.N_RECORDS] += 1
                sm[M.LIQUIDATED_NOTIONAL] += notional
                sm[M.DEBT_REPAID] += r["debt_repaid"]
                sm[M.KEEPER_FEES] += r["keeper_fee"]
                sm[M.INSURANCE_FEES] += r["insurance_fee"]
                sm[M.BAD_DEBT] += r["bad_debt"]
                am[A.NOTIONAL] += notional
                am[A.COLLATERAL_SEIZED if kind[i] == AccountKind.LENDING
                   else A.PERP_CLOSED] += notional
                am[A.UNITS] += abs(r["units_closed"])
                am[A.KEEPER_FEES] += r["keeper_fee"]
                am[A.INSURANCE_FEES] += r["insurance_fee"]
                am[A.BAD_DEBT] += r["bad_debt"]
                am[A.N_RECORDS] += 1
                if r["bad_debt"] > 0 and kind[i] != AccountKind.LENDING:  # for ADL
                    long = r["units_closed"] > 0
                    mm[r["asset"], X.BAD_DEBT_LONG if long else X.BAD_DEBT_SHORT] += r["bad_debt"]
                    mm[r["asset"], X.BANKRUPT_UNITS_LONG if long
                       else X.BANKRUPT_UNITS_SHORT] += abs(r["units_closed"])
                if model != ImpactModel.NONE:
                    decision = dec[[int(pos_asset[k]) for k in range(lo, hi)].index(r["asset"])]
                    mm[r["asset"], X.IMPACT_COST] += r["units_closed"] * (decision
                                                                          - r["fill_price"])
                res.penalties_paid[i] += r["keeper_fee"] + r["insurance_fee"]
                res.liquidated_notional[i] += notional
                res.records.append(r)
        for a in range(n_assets):
            if model != ImpactModel.NONE:
                slippage[a] = abs(1.0 - execution[a])
            sim_closes[a].append(cl_t[a])
            if cascade:  # the step's move, fixed in price at this step's depth
                permanent[a], transient[a] = _displaced(
                    model, permanent[a], transient[a], flow[a], step_depth[a],
                    float(market["permanent_fraction"]), float(market["transient_decay"]))
        fund += sm[M.INSURANCE_FEES]
        draw = min(fund, sm[M.BAD_DEBT])
        fund -= draw
        sm[M.INSURANCE_DRAW], sm[M.INSURANCE_FUND] = draw, fund
        shortfall = sm[M.BAD_DEBT] - draw
        sm[M.SOCIALISED_LOSS] = shortfall
        perp_bad = sum(mm[a, X.BAD_DEBT_LONG] + mm[a, X.BAD_DEBT_SHORT] for a in range(n_assets))
        if waterfall == Waterfall.ADL and shortfall > 0 and perp_bad > 0:
            # each asset's bankrupt longs (shorts) are covered by its shorts (longs), in
            # proportion to the bad debt they left; the lending part stays socialised
            owed = [(shortfall * mm[a, X.BAD_DEBT_LONG] / sm[M.BAD_DEBT],
                     shortfall * mm[a, X.BAD_DEBT_SHORT] / sm[M.BAD_DEBT])
                    for a in range(n_assets)]
            rest = shortfall
            for a in range(n_assets):
                if mm[a, X.BAD_DEBT_LONG] + mm[a, X.BAD_DEBT_SHORT] > 0:
                    rest -= owed[a][0] + owed[a][1]
            sm[M.SOCIALISED_LOSS] = rest
            for a in range(n_assets):
                for side, due, bankrupt in ((1, owed[a][0], mm[a, X.BANKRUPT_UNITS_LONG]),
                                            (-1, owed[a][1], mm[a, X.BANKRUPT_UNITS_SHORT])):
                    if due <= 0:
                        continue
                    covered = 0.0
                    if bankrupt > 0:
                        covered = _deleverage(res, t, a, side, due, bankrupt, cl_t, kind,
                                              offsets, pos_asset, units, cash, equity_start,
                                              ast, adl_ranking, int(market["seed"]))
                    sm[M.SOCIALISED_LOSS] += due - covered
    return res


def _deleverage(res, t, asset, side, owed, bankrupt_units, prices, kind, offsets, pos_asset,
                units, cash, equity_start, assets, ranking, seed) -> float:
    """Auto-deleverage ``asset``'s positions opposite ``side``; return the USD covered.

    Candidates are perp positions of the asset on the other side whose account has positive
    equity (cash plus every position at ``prices``), ranked like the single-asset twin
    (:mod:`backtest.kernels.reference`): each closes ``x`` units at the price and pays
    ``x x owed / bankrupt_units``, at most its account's equity.
    """
    price = prices[asset]
    m = assets[asset]["maintenance_margin_rate"]

    def equity(i: int) -> float:
        value = float(cash[i])
        for k in range(int(offsets[i]), int(offsets[i + 1])):
            value += float(units[k]) * prices[int(pos_asset[k])]
        return value

    candidates = []
    for i in range(len(kind)):
        if kind[i] == AccountKind.LENDING:
            continue
        for k in range(int(offsets[i]), int(offsets[i + 1])):
            u = float(units[k])
            if int(pos_asset[k]) != asset or u == 0 or (u > 0) == (side > 0):
                continue
            eq = equity(i)
            if eq <= 0:
                continue
            pnl = eq - equity_start[i]
            notional = abs(u) * price
            if ranking == AdlRanking.DYDX:
                score = 0.0
            elif pnl <= 0:
                continue
            elif ranking == AdlRanking.BINANCE:
                score = pnl / max(1.0, equity_start[i]) * (m * notional / eq)
            else:  # BitMEX / Hyperliquid: PnL% x effective leverage
                entry_value = notional - (1 if u > 0 else -1) * pnl
                score = (pnl / entry_value if entry_value > 0 else math.inf) * notional / eq
            candidates.append((i, k, score))
    if ranking == AdlRanking.DYDX:
        if candidates:
            mask = (1 << 64) - 1
            z = (seed * 0x9E3779B97F4A7C15 + (t + 1) * 0xBF58476D1CE4E5B9) & mask
            z = ((z ^ (z >> 31)) * 0x94D049BB133111EB) & mask
            start = z % len(candidates)
            candidates = candidates[start:] + candidates[:start]
    else:
        candidates.sort(key=lambda c: -c[2])  # stable: ties keep book order
    delta = owed / bankrupt_units
    remaining, covered = bankrupt_units, 0.0
    mm = res.market_metrics[t, asset]
    for i, k, _ in candidates:
        if remaining <= 1e-12 * bankrupt_units:
            break
        u = float(units[k])
        x = min(abs(u), remaining)
        transfer = min(x * delta, equity(i))
        signed = x if u > 0 else -x
        units[k] = 0.0 if x >= abs(u) else u - signed
        cash[i] = float(cash[i]) + signed * price - transfer
        res.adl_records.append(dict(step=t, account=i, asset=asset, units_closed=signed,
                                    price=price, transfer=transfer))
        mm[AssetMarketMetric.ADL_NOTIONAL] += x * price
        mm[AssetMarketMetric.ADL_ACCOUNTS] += 1
        mm[AssetMarketMetric.ADL_TRANSFER] += transfer
        covered += transfer
        remaining -= x
    return covered


def _liquidate(kind, positions, cash, health, policy, assets, execution, left=None, dust=None):
    """Liquidate one account of either kind; returns (cash, records).

    ``left``, ``dust``: the keepers' capital left per asset (units; updated) and its dust, or
    None.
    """
    if kind == AccountKind.LENDING:
        return _liquidate_lending(positions, cash, health, policy, assets, execution, left,
                                  dust)
    return _liquidate_perp(positions, cash, policy, assets, left, dust)
