"""Plain-Python reference twin of :func:`backtest.kernels.portfolio_nb.run_portfolio_nb`.

Written for reading, not speed: one account at a time, positions as Python lists, the order
policies as ``sorted`` keys, no chunks and no record buffer. Parity tests run both on random
books and tapes and compare account states, per-step and per-asset aggregates and records.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from backtest.kernels.enums import TriggerPrice
from backtest.kernels.portfolio_enums import (
    N_ASSET_METRICS,
    N_PORTFOLIO_METRICS,
    AccountKind,
    AssetMetric,
    OrderPolicy,
    PortfolioMetric,
)
from backtest.kernels.portfolio_nb import SHORTAGE_TOL


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


def _price(units: float, low: float, high: float, close: float, trigger: int) -> float:
    if trigger == TriggerPrice.CLOSE:
        return close
    return low if units > 0 else high


def _health(kind: int, positions: list[list], cash: float, assets) -> float:
    """Health of an account; ``positions`` are ``[asset, units, price]`` lists."""
    if kind == AccountKind.LENDING:
        weighted = sum(u * p * assets[a]["liquidation_threshold"] for a, u, p in positions
                       if u > 0)
        return math.inf if cash >= 0 else weighted / -cash
    equity = _equity(cash, positions)
    mm = sum(assets[a]["maintenance_margin_rate"] * abs(u) * p for a, u, p in positions)
    return math.inf if mm <= 0 else equity / mm


def _equity(cash: float, positions: list[list]) -> float:
    """Cash plus position values, added in position order (as the kernel does)."""
    equity = cash
    for _, u, p in positions:
        equity += u * p
    return equity


def _order(kind: int, order: int, positions: list[list], sens, assets) -> list[int]:
    def primary(j: int) -> float:
        a, u, p = positions[j]
        if order == OrderPolicy.PROTOCOL:
            return assets[a]["liquidation_bonus" if kind == AccountKind.LENDING
                             else "liquidation_penalty"]
        if order == OrderPolicy.LEAST_SENSITIVE:
            return -sens[a]
        return abs(u) * p

    return sorted(range(len(positions)),
                  key=lambda j: (-primary(j), -abs(positions[j][1]) * positions[j][2], j))


def _liquidate_lending(positions, cash, health, policy, assets):
    """Return (cash, records) after liquidating a lending account (positions updated)."""
    cf = 1.0 if health <= policy["full_close_health_factor"] else policy["close_factor"]
    to_repay = cf * -cash
    records = []

    def seize(j, repay_wanted):
        """Seize collateral ``j``; return the cash after it and the debt it repaid."""
        a, u, p = positions[j]
        b = assets[a]["liquidation_bonus"]
        value = u * p
        if repay_wanted * (1 + b) >= value:
            seized, repay = u, value / (1 + b)
        else:
            seized, repay = repay_wanted * (1 + b) / p, repay_wanted
        bonus = seized * p - repay
        fee = policy["protocol_fee"] * bonus
        keeper = bonus - fee
        positions[j][1] = 0.0 if seized >= u else u - seized
        after, repay, insurance = _fund_fee(cash, repay, fee, seized < u and cash + repay >= 0,
                                            positions)
        records.append({"asset": a, "units_closed": seized, "fill_price": p,
                        "keeper_fee": keeper, "insurance_fee": insurance,
                        "bad_debt": 0.0, "debt_repaid": repay})
        return after, repay

    if policy["order"] == OrderPolicy.PROPORTIONAL:
        total = sum(u * p for _, u, p in positions if u > 0)
        for j, (_, u, p) in enumerate(list(positions)):
            if u > 0 and total > 0:
                cash, _ = seize(j, to_repay * (u * p) / total)
    else:
        for j in _order(AccountKind.LENDING, policy["order"], positions, policy["_sens"], assets):
            if to_repay <= 0:
                break
            if positions[j][1] <= 0:
                continue
            cash, repay = seize(j, to_repay)
            to_repay -= repay
    if cash < 0 and not any(u > 0 for _, u, _ in positions):
        _attribute(-cash, records)
        cash = 0.0
    return cash, records


def _fund_fee(cash, repay, fee, clears, positions):
    """The fund's share ``fee`` of a seizure's bonus, paid out of the equity left after it
    (the keeper's share always paid); the unpaid part repays debt. Returns (cash after, debt
    repaid, insurance fee). A seizure that clears the debt with collateral left pays it all."""
    if clears:
        return cash + repay, repay, fee
    collateral = 0.0
    for _, u, p in positions:
        if u > 0:
            collateral += u * p
    equity = cash + repay + fee + collateral
    if equity >= fee:
        return cash + repay, repay, fee
    if equity > 0:
        return -collateral, -collateral - cash, equity
    return cash + repay + fee, repay + fee, 0.0


def _liquidate_perp(positions, cash, policy, assets):
    """Return (cash, records) after liquidating a perp account (positions updated)."""
    target, ks = policy["target_health"], policy["perp_keeper_share"]
    equity = _equity(cash, positions)
    mm = sum(assets[a]["maintenance_margin_rate"] * abs(u) * p for a, u, p in positions)
    pen_total = sum(assets[a]["liquidation_penalty"] * abs(u) * p for a, u, p in positions)
    everything = equity <= 0
    records = []

    def close(j, d):
        """Close ``d`` units of position ``j``; the keeper's share of the penalty first.

        The fund's share is paid out of the equity left: cash after the keeper plus what is
        still held.
        """
        nonlocal cash, equity
        a, u, p = positions[j]
        signed = d if u > 0 else -d
        fee = assets[a]["liquidation_penalty"] * d * p
        keeper = ks * fee
        positions[j][1] = 0.0 if d >= abs(u) else u - signed
        held = sum(units * price for _, units, price in positions)
        cash = (cash + signed * p) - keeper
        insurance = min(fee - keeper, max(cash + held, 0.0))
        cash -= insurance
        equity = cash + held
        records.append({"asset": a, "units_closed": signed, "fill_price": p,
                        "keeper_fee": keeper, "insurance_fee": insurance, "bad_debt": 0.0,
                        "debt_repaid": 0.0})

    if policy["order"] == OrderPolicy.PROPORTIONAL:
        f = 1.0
        if not everything and target * mm - pen_total > 0:
            f = min((target * mm - equity) / (target * mm - pen_total), 1.0)
        for j, (_, u, _) in enumerate(list(positions)):
            if u != 0:
                close(j, abs(u) if f >= 1 else f * abs(u))
    else:
        for j in _order(AccountKind.CROSS_PERP, policy["order"], positions, policy["_sens"],
                        assets):
            a, u, p = positions[j]
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
            close(j, d)
            mm -= m * d * p
    if cash < 0 and not any(u != 0 for _, u, _ in positions):
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
                                 pos_asset, pos_units, cash, insurance_fund_usd=0.0
                                 ) -> PortfolioReferenceResult:
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
        np.zeros((t_steps, n_assets, N_ASSET_METRICS)))
    M, A = PortfolioMetric, AssetMetric
    fund = float(insurance_fund_usd)
    for t in range(t_steps):
        pol["_sens"] = sensitivity[t]
        for i in range(n):
            lo, hi = int(offsets[i]), int(offsets[i + 1])
            positions = [[int(pos_asset[k]), units[k],
                          _price(units[k], low[t, pos_asset[k]], high[t, pos_asset[k]],
                                 close[t, pos_asset[k]], pol["trigger"])]
                         for k in range(lo, hi)]
            h = _health(int(kind[i]), positions, cash[i], ast)
            if not h < 1.0:
                continue
            sm = res.step_metrics[t]
            sm[M.N_LIQUIDATABLE] += 1
            if kind[i] == AccountKind.LENDING:
                cash[i], recs = _liquidate_lending(positions, cash[i], h, pol, ast)
                sm[M.N_LENDING] += 1
            else:
                cash[i], recs = _liquidate_perp(positions, cash[i], pol, ast)
                sm[M.N_CROSS if kind[i] == AccountKind.CROSS_PERP else M.N_ISOLATED] += 1
            units[lo:hi] = [u for _, u, _ in positions]
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
                res.penalties_paid[i] += r["keeper_fee"] + r["insurance_fee"]
                res.liquidated_notional[i] += notional
                res.records.append(r)
        sm = res.step_metrics[t]
        fund += sm[M.INSURANCE_FEES]
        draw = min(fund, sm[M.BAD_DEBT])
        fund -= draw
        sm[M.INSURANCE_DRAW], sm[M.INSURANCE_FUND] = draw, fund
        sm[M.SOCIALISED_LOSS] = sm[M.BAD_DEBT] - draw
    return res
