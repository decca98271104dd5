"""Plain-Python reference twin of :func:`backtest.kernels.options_nb.run_options_nb`.

Written for reading, not speed: one account at a time, every leg priced directly with Black-76
from :mod:`math` (no instrument risk arrays, no chunks, no skip rule), the documented rules
spelled out. Parity tests run both on random books, tapes and parameters and compare account
states, per-step metrics and records.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from backtest.kernels.enums import TriggerPrice
from backtest.kernels.options_enums import N_OPTIONS_METRICS, OptionsStepMetric, SpreadMode

M = OptionsStepMetric
YEAR_MS = 365.0 * 86400.0 * 1000.0


def black76(is_call: bool, f: float, k: float, tau: float, sigma: float, r: float) -> float:
    """Black-76 price (Hull's Black's model); intrinsic value at expiry or zero volatility.

    Parameters
    ----------
    is_call : bool
        Call (True) or put (False).
    f, k : float
        Forward price and strike, USD, > 0.
    tau : float
        Time to expiry, years.
    sigma : float
        Annualised volatility, fraction.
    r : float
        Discount rate, fraction per year.

    Returns
    -------
    float
        Discounted price, USD per unit of underlying.
    """
    df = math.exp(-r * max(tau, 0.0))
    if tau <= 0 or sigma <= 0:
        return df * (max(f - k, 0.0) if is_call else max(k - f, 0.0))
    sd = sigma * math.sqrt(tau)
    d1 = (math.log(f / k) + sd * sd / 2) / sd
    d2 = d1 - sd
    n = lambda x: 0.5 * math.erfc(-x / math.sqrt(2))  # noqa: E731
    if is_call:
        return df * (f * n(d1) - k * n(d2))
    return df * (k * n(-d2) - f * n(-d1))


def greeks(is_call: bool, f: float, k: float, tau: float, sigma: float, r: float
           ) -> tuple[float, float, float]:
    """Delta (per unit F), gamma (per USD of F) and vega (per 1.00 of sigma).

    Parameters
    ----------
    is_call : bool
        Call (True) or put (False).
    f, k : float
        Forward price and strike, USD, > 0.
    tau : float
        Time to expiry, years.
    sigma : float
        Annualised volatility, fraction.
    r : float
        Discount rate, fraction per year.

    Returns
    -------
    tuple of float
        ``(delta, gamma, vega)`` in the units above.
    """
    df = math.exp(-r * max(tau, 0.0))
    if tau <= 0 or sigma <= 0:
        if is_call:
            return (df if f > k else 0.5 * df if f == k else 0.0), 0.0, 0.0
        return (-df if f < k else -0.5 * df if f == k else 0.0), 0.0, 0.0
    sd = sigma * math.sqrt(tau)
    d1 = (math.log(f / k) + sd * sd / 2) / sd
    pdf = math.exp(-d1 * d1 / 2) / math.sqrt(2 * math.pi)
    n1 = 0.5 * math.erfc(-d1 / math.sqrt(2))
    delta = df * n1 if is_call else -df * (1 - n1)
    return delta, df * pdf / (f * sd), f * df * pdf * math.sqrt(tau)


@dataclass
class OptionsReferenceResult:
    """Outputs of :func:`simulate_options_reference` (same meaning as the kernel's arrays)."""

    cash: np.ndarray
    leg_qty: np.ndarray
    liq_step: np.ndarray
    bad_debt: np.ndarray
    settled: np.ndarray
    step_metrics: np.ndarray
    insurance_fund: float
    records: list[dict] = field(default_factory=list)


def _scenarios(prm, price_shocks, vol_factors, tau):
    """(price shock, vol multiplier) of every grid scenario, in the kernel's order."""
    days = max(max(tau, 0.0) * 365.0, prm["vol_shock_min_days"])
    out = []
    for p in price_shocks:
        for v in vol_factors:
            shock = max(v * (30.0 / days) ** prm["vol_shock_power"], -prm["vol_shock_max_down"])
            out.append((p, 1.0 + shock))
    return out


def account_state(legs, cash, f, sigma, now_ms, prm, price_shocks, vol_factors):
    """Equity, maintenance margin and Greeks (USD) of one account at underlying price ``f``.

    ``legs`` is a list of ``(is_call, strike, expiry_ms, quantity)`` of open legs.

    Parameters
    ----------
    legs : list of tuple
        ``(is_call, strike USD, expiry epoch ms, signed quantity in underlying units)``.
    cash : float
        Account cash, USD.
    f : float
        Underlying price, USD.
    sigma : float
        Implied volatility, fraction.
    now_ms : int
        Valuation time, epoch ms.
    prm : dict
        The options parameter record (``OPTIONS_PARAMS_DTYPE`` fields) as a dict.
    price_shocks : ndarray, shape (S_p,), float64
        Relative price shocks of the margin grid.
    vol_factors : ndarray, shape (S_v,), float64
        Relative vol shocks of the margin grid for a 30-day option.

    Returns
    -------
    tuple
        ``(equity, margin, (delta_usd, gamma_usd, vega_usd))``, USD.
    """
    r = prm["rate"]
    sigma = max(sigma, prm["vol_floor"])
    equity = cash
    losses = None
    short = 0.0
    delta = gamma = vega = 0.0
    for is_call, k, expiry, q in legs:
        tau = (expiry - now_ms) / YEAR_MS
        mark = black76(is_call, f, k, tau, sigma, r)
        equity += q * mark
        short += max(-q, 0.0)
        scen = [q * (mark - black76(is_call, f * (1 + p), k, tau,
                                    max(sigma * mult, prm["vol_floor"]), r))
                for p, mult in _scenarios(prm, price_shocks, vol_factors, tau)]
        losses = scen if losses is None else [a + b for a, b in zip(losses, scen, strict=True)]
        d, g, v = greeks(is_call, f, k, tau, sigma, r)
        delta += q * d * f
        gamma += q * g * f * f / 100
        vega += q * v / 100
    margin = max(0.0, max(losses)) + prm["contingency_rate"] * short * f
    return equity, margin, (delta, gamma, vega)


def closing_price(prm, is_call, f, k, tau, sigma, q):
    """Price at which a liquidation sells a long (q > 0) or buys back a short (q < 0).

    Parameters
    ----------
    prm : dict
        The options parameter record (``OPTIONS_PARAMS_DTYPE`` fields) as a dict.
    is_call : bool
        Call (True) or put (False).
    f, k : float
        Underlying price and strike, USD.
    tau : float
        Time to expiry, years.
    sigma : float
        Implied volatility, fraction (floored at ``prm["vol_floor"]``).
    q : float
        Signed quantity closed, underlying units.

    Returns
    -------
    float
        Closing price, USD per unit of underlying.
    """
    r = prm["rate"]
    sigma = max(sigma, prm["vol_floor"])
    if prm["spread_mode"] == SpreadMode.VOL_POINTS:
        s = sigma + prm["spread"] if q < 0 else max(sigma - prm["spread"], prm["vol_floor"])
        return black76(is_call, f, k, tau, s, r)
    mark = black76(is_call, f, k, tau, sigma, r)
    return mark * (1 + prm["spread"]) if q < 0 else mark * max(1 - prm["spread"], 0.0)


def simulate_options_reference(tval_ms, low, high, close, iv, inst_und, inst_call, inst_strike,
                               inst_expiry_ms, leg_start, leg_inst, leg_qty, cash, params,
                               price_shocks, vol_factors, insurance_fund_usd=0.0
                               ) -> OptionsReferenceResult:
    """Run the options rules account by account; inputs as for ``run_options_nb``.

    Parameters
    ----------
    tval_ms : ndarray, shape (T,), int64
        Valuation time of each step, epoch ms.
    low, high, close : ndarray, shape (T, U), float64
        Candle prices of each underlying, USD.
    iv : ndarray, shape (T, U), float64
        Implied volatility, fraction.
    inst_und, inst_call, inst_strike, inst_expiry_ms : ndarray, shape (I,)
        Instruments: underlying index (int64), call flag (int8), strike (float64, USD),
        expiry (int64, epoch ms), as :func:`backtest.kernels.options_nb.run_options_nb`.
    leg_start : ndarray, shape (N + 1,), int64
        Legs of account ``a`` are ``leg_start[a]:leg_start[a + 1]``.
    leg_inst : ndarray, shape (L,), int64
        Instrument of each leg.
    leg_qty : ndarray, shape (L,), float64
        Signed quantity, underlying units (not modified).
    cash : ndarray, shape (N,), float64
        Account cash, USD (not modified).
    params : ndarray, shape (1,), ``OPTIONS_PARAMS_DTYPE``
        Margin and liquidation parameters.
    price_shocks : ndarray, shape (S_p,), float64
        Relative price shocks of the margin grid.
    vol_factors : ndarray, shape (S_v,), float64
        Relative vol shocks of the margin grid for a 30-day option.
    insurance_fund_usd : float
        Opening insurance fund balance, USD.

    Returns
    -------
    OptionsReferenceResult
    """
    prm = {name: params[0][name] for name in params.dtype.names}
    qty = np.array(leg_qty, dtype=np.float64, copy=True)
    cash = np.array(cash, dtype=np.float64, copy=True)
    n = cash.size
    steps = len(tval_ms)
    out = np.zeros((steps, N_OPTIONS_METRICS))
    liq_step = np.full(n, -1, np.int32)
    bad_debt = np.zeros(n)
    settled = np.zeros(n)
    records = []
    fund = float(insurance_fund_usd)
    extreme = prm["trigger"] == TriggerPrice.EXTREME

    def legs_of(a):
        return [(j, bool(inst_call[leg_inst[j]]), float(inst_strike[leg_inst[j]]),
                 int(inst_expiry_ms[leg_inst[j]]), float(qty[j]))
                for j in range(leg_start[a], leg_start[a + 1]) if qty[j] != 0.0]

    for t in range(steps):
        now = int(tval_ms[t])
        row = out[t]
        for a in range(n):
            legs = legs_of(a)
            if not legs:
                continue
            u = int(inst_und[leg_inst[legs[0][0]]])
            sigma = float(iv[t, u])
            plain = [(c, k, e, q) for _, c, k, e, q in legs]
            points = ([(0, float(low[t, u])), (1, float(high[t, u]))] if extreme
                      else [(2, float(close[t, u]))])
            breached = []
            for x, f in points:
                e, m, g = account_state(plain, cash[a], f, sigma, now, prm, price_shocks,
                                        vol_factors)
                if e < m:
                    breached.append((e - m, x, f, e, m, g))
            if breached:
                _, x, f, e, m, (d, g, v) = min(breached, key=lambda b: (b[0], b[1]))
                mark = proceeds = notional = 0.0
                for _, c, k, exp, q in legs:
                    tau = (exp - now) / YEAR_MS
                    mark += q * black76(c, f, k, tau, max(sigma, prm["vol_floor"]), prm["rate"])
                    proceeds += q * closing_price(prm, c, f, k, tau, sigma, q)
                    notional += abs(q) * f
                fee = prm["penalty_rate"] * notional
                keeper = prm["keeper_share"] * fee
                c1 = cash[a] + proceeds - keeper
                ins = min(fee - keeper, max(c1, 0.0))
                c2 = c1 - ins
                bad = max(-c2, 0.0)
                c2 = max(c2, 0.0)
                records.append({
                    "step": t, "account": a, "price_point": x, "n_legs": len(legs),
                    "decision_price": f, "iv": sigma, "equity_before": e, "margin_before": m,
                    "cash_before": cash[a], "mark_value": mark, "spread_paid": mark - proceeds,
                    "notional": notional, "keeper_fee": keeper, "insurance_fee": ins,
                    "bad_debt": bad, "cash_after": c2, "delta_usd": d, "gamma_usd": g,
                    "vega_usd": v,
                })
                for j, *_ in legs:
                    qty[j] = 0.0
                row[M.N_LIQUIDATIONS] += 1
                row[M.N_BANKRUPT] += bad > 0
                row[M.LIQUIDATED_NOTIONAL] += notional
                row[M.LIQUIDATED_MARK] += mark
                row[M.SPREAD_PAID] += mark - proceeds
                row[M.KEEPER_FEES] += keeper
                row[M.INSURANCE_FEES] += ins
                row[M.BAD_DEBT] += bad
                row[M.CASH_DELTA_LIQUIDATION] += c2 - cash[a]
                cash[a] = c2
                bad_debt[a] += bad
                liq_step[a] = t
                continue
            # expiry settlement at the close, at intrinsic value
            f_close = float(close[t, u])
            paid, n_settled = 0.0, 0
            for j, c, k, exp, q in legs:
                if exp <= now:
                    paid += q * (max(f_close - k, 0.0) if c else max(k - f_close, 0.0))
                    qty[j] = 0.0
                    n_settled += 1
            if n_settled:
                cash[a] += paid
                settled[a] += paid
                row[M.SETTLEMENT_CASH] += paid
                row[M.N_SETTLED_LEGS] += n_settled
                if n_settled == len(legs) and cash[a] < 0:
                    row[M.BAD_DEBT] += -cash[a]
                    row[M.N_BANKRUPT] += 1
                    bad_debt[a] += -cash[a]
                    cash[a] = 0.0
            rest = [(c, k, e, q) for _, c, k, e, q in legs_of(a)]
            if not rest:
                continue
            e, m, (d, g, v) = account_state(rest, cash[a], f_close, sigma, now, prm,
                                            price_shocks, vol_factors)
            row[M.N_OPEN] += 1
            row[M.EQUITY] += e
            row[M.OPTION_VALUE] += e - cash[a]
            row[M.MAINTENANCE_MARGIN] += m
            row[M.DELTA_USD] += d
            row[M.GAMMA_USD] += g
            row[M.VEGA_USD] += v
            row[M.N_BREACHED_CLOSE] += e < m
        fund += row[M.INSURANCE_FEES]
        draw = min(fund, row[M.BAD_DEBT])
        fund -= draw
        row[M.INSURANCE_DRAW] = draw
        row[M.INSURANCE_FUND] = fund
        row[M.SOCIALISED_LOSS] = row[M.BAD_DEBT] - draw
    return OptionsReferenceResult(cash, qty, liq_step, bad_debt, settled, out, fund, records)
