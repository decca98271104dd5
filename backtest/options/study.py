"""Study: short-option accounts against linear perps on one crash path.

For every options account with a short leg, perp **twins** are built at the start, on the same
underlying and with the same equity, long if the account's delta is positive (a short put)
and short otherwise:

- **same notional and collateral**: ``|units| = sum |quantity|`` (the same underlying
  notional), under a venue's flat maintenance margin rate (``perp_maintenance_rate``, default
  0.5%, Binance's BTCUSDT first tier is 0.4%): the trader who posts the same collateral and
  buys the same notional as a perp instead of selling options;
- **same delta and health**: ``units = delta_usd / F`` (the same first-order exposure) and a
  maintenance rate making ``equity / requirement`` equal to the options account's at the start
  (``m = options margin / |delta_usd|``): what is left between the two is gamma and vega.
  Accounts with ``|delta| < 5%`` of their notional (straddles) get no such twin.

The options accounts run through the options engine (Black-76 at the path's implied
volatility, scenario margin, adverse extreme) twice: with the implied-volatility path, and with
the implied volatility frozen at its start (isolating vega). The perp twins are liquidatable
when ``equity < m x |units| x price`` at the candle's adverse extreme (the perp kernel's
default trigger).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from backtest.kernels.liquidation_nb import trigger_key_nb
from backtest.options.book import OptionsBook, OptionsBookArrays
from backtest.options.margin import account_risk
from backtest.options.params import OptionsParams
from backtest.options.simulate import OptionsMarket, simulate_options

GROUP_OPTIONS = "short options"
GROUP_FROZEN = "short options, implied vol frozen"
GROUP_PERPS = "perps, same notional and collateral"
GROUP_DELTA = "perps, same delta and health"
GROUPS = ((GROUP_OPTIONS, "options_step"), (GROUP_FROZEN, "frozen_step"),
          (GROUP_PERPS, "perp_step"), (GROUP_DELTA, "delta_perp_step"))
#: Smallest |delta| / notional of an account given a same-delta perp twin.
MIN_DELTA_FRACTION = 0.05


@dataclass(frozen=True)
class BreachComparison:
    """Result of :func:`breach_comparison`.

    Attributes
    ----------
    accounts : polars.DataFrame
        One row per short-option account: ``account_id``, ``notional_usd``, ``equity_usd``,
        ``maintenance_margin_usd``, ``delta_usd``, ``gamma_usd``, ``vega_usd`` (at the start),
        the breach step of each group (``options_step``, ``frozen_step``, ``perp_step``,
        ``delta_perp_step``; -1 if never) and ``has_delta_twin``.
    curves : polars.DataFrame
        ``time``, ``group``, ``share_liquidated`` (fraction of the accounts liquidated by the
        end of that step; the same-delta group counts only accounts with a twin): the chart of
        the report.
    """

    accounts: pl.DataFrame
    curves: pl.DataFrame

    def summary(self) -> pl.DataFrame:
        """Per group: share liquidated by the end, and when.

        Returns
        -------
        polars.DataFrame
            ``group``; ``share_liquidated`` (fraction of accounts by the last step);
            ``half_liquidated_step`` (first step by which half the accounts are liquidated,
            null if never: the median time to breach counting accounts never liquidated as
            later than the window); ``median_breach_step`` (among the liquidated only).
        """
        rows = []
        for group, col in GROUPS:
            s = _steps(self.accounts, col)
            hit = np.sort(s[s >= 0])
            half = (s.size + 1) // 2
            rows.append({
                "group": group, "share_liquidated": float(hit.size / max(s.size, 1)),
                "half_liquidated_step": int(hit[half - 1]) if hit.size >= half > 0 else None,
                "median_breach_step": float(np.median(hit)) if hit.size else None,
            })
        return pl.DataFrame(rows, schema={"group": pl.String, "share_liquidated": pl.Float64,
                                          "half_liquidated_step": pl.Int64,
                                          "median_breach_step": pl.Float64})


def perp_breach_steps(low: np.ndarray, high: np.ndarray, units: np.ndarray, cash: np.ndarray,
                      maintenance_rate: np.ndarray) -> np.ndarray:
    """First step at which each perp account is liquidatable at the candle's adverse extreme.

    Parameters
    ----------
    low, high : ndarray, shape (T,), float64
        Candle lows and highs, USD.
    units, cash, maintenance_rate : ndarray, shape (N,), float64
        Perp accounts (``equity = cash + units x price``) and their maintenance rates.

    Returns
    -------
    ndarray, shape (N,), int64
        Step index, -1 if never. A long breaches at the first low below its liquidation price
        (the running minimum of lows crosses it), a short at the first high above.
    """
    run_min = np.minimum.accumulate(low)
    run_max = np.maximum.accumulate(high)
    steps = low.size
    out = np.full(units.size, -1, np.int64)
    for i in range(units.size):
        key = trigger_key_nb(units[i], cash[i], maintenance_rate[i])
        if key > 0.0:
            t = int(np.searchsorted(-run_min, -key, side="right"))  # first run_min < key
        elif key < 0.0:
            t = int(np.searchsorted(run_max, -key, side="right"))  # first run_max > -key
        else:
            continue
        out[i] = t if t < steps else -1
    return out


def breach_comparison(market: OptionsMarket, book: OptionsBook | OptionsBookArrays,
                      params: OptionsParams | None = None,
                      perp_maintenance_rate: float = 0.005) -> BreachComparison:
    """Compare when short-option accounts and their perp twins breach on the same path.

    Parameters
    ----------
    market : OptionsMarket
        The crash path (prices and implied volatility per step).
    book : OptionsBook or OptionsBookArrays
        Options accounts; those without a short leg are left out (they cannot be liquidated
        with non-negative cash).
    params : OptionsParams, optional
    perp_maintenance_rate : float
        Maintenance margin rate of the same-notional perp twins, fraction.

    Returns
    -------
    BreachComparison

    Raises
    ------
    ValueError
        If the book has no account with a short leg.
    """
    params = params or OptionsParams()
    arrays = book.arrays(market.underlyings) if isinstance(book, OptionsBook) else book
    short = np.zeros(arrays.n_accounts, dtype=bool)
    owner = np.repeat(np.arange(arrays.n_accounts), np.diff(arrays.leg_start))
    np.logical_or.at(short, owner, arrays.leg_qty < 0)
    if not short.any():
        raise ValueError("the book has no account with a short option")
    sub = _select(arrays, short)
    t0_ms = int(market.timestamp_ms[0])
    # the start: both twins are set up at the first candle's close and implied volatility
    f0 = np.asarray(market.close[0], dtype=np.float64)
    risk = account_risk(sub, f0, market.iv[0], t0_ms, params)
    f_acc = f0[sub.account_und]
    size = np.zeros(sub.n_accounts)
    np.add.at(size, np.repeat(np.arange(sub.n_accounts), np.diff(sub.leg_start)),
              np.abs(sub.leg_qty))
    notional = size * f_acc
    side = np.where(risk.delta_usd >= 0, 1.0, -1.0)
    twins = {"perp_step": (side * size, np.full(sub.n_accounts, float(perp_maintenance_rate)),
                           np.ones(sub.n_accounts, dtype=bool))}
    with np.errstate(divide="ignore", invalid="ignore"):
        m_delta = risk.maintenance_margin / np.abs(risk.delta_usd)
    has_delta = (np.abs(risk.delta_usd) >= MIN_DELTA_FRACTION * notional) & (m_delta < 1.0)
    twins["delta_perp_step"] = (risk.delta_usd / f_acc, np.where(has_delta, m_delta, 0.0),
                                has_delta)
    steps = {}
    for col, (units, m, on) in twins.items():
        cash = risk.equity - units * f_acc
        out = np.full(sub.n_accounts, -1, np.int64)
        for u in range(len(sub.underlyings)):
            pick = on & (sub.account_und == u)
            out[pick] = perp_breach_steps(market.low[:, u], market.high[:, u], units[pick],
                                          cash[pick], m[pick])
        steps[col] = out
    res = simulate_options(market, sub, params)
    frozen_iv = np.broadcast_to(market.iv[0], market.iv.shape).copy()
    frozen = OptionsMarket(market.timestamp_ms, market.interval_seconds, market.underlyings,
                           market.low, market.high, market.close, frozen_iv)
    res_frozen = simulate_options(frozen, sub, params)
    accounts = pl.DataFrame({
        "account_id": sub.account_id, "notional_usd": notional, "equity_usd": risk.equity,
        "maintenance_margin_usd": risk.maintenance_margin, "delta_usd": risk.delta_usd,
        "gamma_usd": risk.gamma_usd, "vega_usd": risk.vega_usd,
        "options_step": res.liq_step.astype(np.int64),
        "frozen_step": res_frozen.liq_step.astype(np.int64), **steps,
        "has_delta_twin": has_delta,
    })
    return BreachComparison(accounts, _curves(market.timestamp_ms, accounts))


def _steps(accounts: pl.DataFrame, col: str) -> np.ndarray:
    s = accounts[col].to_numpy()
    return s[accounts["has_delta_twin"].to_numpy()] if col == "delta_perp_step" else s


def _curves(ts: np.ndarray, accounts: pl.DataFrame) -> pl.DataFrame:
    steps = ts.size
    frames = []
    for group, col in GROUPS:
        s = _steps(accounts, col)
        n = max(s.size, 1)
        counts = np.bincount(s[s >= 0], minlength=steps)[:steps]
        frames.append(pl.DataFrame({
            "time": pl.Series(ts).cast(pl.Datetime("ms", "UTC")),
            "group": [group] * steps,
            "share_liquidated": np.cumsum(counts) / n,
        }))
    return pl.concat(frames)


def _select(a: OptionsBookArrays, keep: np.ndarray) -> OptionsBookArrays:
    """Return the accounts ``keep`` (bool, shape (N,)) of a book, with the same instruments."""
    idx = np.flatnonzero(keep)
    counts = np.diff(a.leg_start)[idx]
    start = np.zeros(idx.size + 1, np.int64)
    np.cumsum(counts, out=start[1:])
    legs = np.concatenate([np.arange(a.leg_start[i], a.leg_start[i + 1]) for i in idx]) \
        if idx.size else np.zeros(0, np.int64)
    return OptionsBookArrays(a.underlyings, a.account_id[idx], a.cash[idx].copy(),
                             a.account_und[idx], start, a.leg_inst[legs],
                             a.leg_qty[legs].copy(), a.inst_und, a.inst_call, a.inst_strike,
                             a.inst_expiry_ms)
