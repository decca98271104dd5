"""Scenario-based maintenance margin and Greeks of options accounts, at one moment.

The same kernels as the simulation (:mod:`backtest.kernels.options_nb`): every instrument is
revalued with Black-76 under each (price shock, vol shock) of the :class:`ScenarioGrid`; an
account's maintenance margin is its worst scenario loss (never below 0) plus the contingency
on its short options; Greeks are sums over its legs, in USD (``docs/options.md``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backtest.jit_compat import kernel_records
from backtest.kernels.options_nb import (
    MS_PER_YEAR,
    evaluate_accounts_nb,
    fill_instruments_nb,
)
from backtest.options.book import OptionsBookArrays
from backtest.options.params import OptionsParams, pack_options_params


@dataclass(frozen=True)
class AccountRisk:
    """Per-account valuation at one moment; every array shape (N,) float64, USD.

    Attributes
    ----------
    equity : ndarray
        ``cash + sum(quantity x Black-76 mark)``.
    maintenance_margin : ndarray
        Worst scenario loss (>= 0) plus the short-option contingency; 0 without open legs.
    delta_usd : ndarray
        ``sum(quantity x delta x F)``: USD exposure to the underlying.
    gamma_usd : ndarray
        ``sum(quantity x gamma x F^2) / 100``: change of ``delta_usd`` per 1% move.
    vega_usd : ndarray
        ``sum(quantity x vega) / 100``: USD change per vol point.
    """

    equity: np.ndarray
    maintenance_margin: np.ndarray
    delta_usd: np.ndarray
    gamma_usd: np.ndarray
    vega_usd: np.ndarray

    @property
    def health(self) -> np.ndarray:
        """``equity / maintenance_margin`` (inf where the margin is 0); liquidatable below 1."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.maintenance_margin > 0,
                            self.equity / self.maintenance_margin, np.inf)


def instrument_arrays(book: OptionsBookArrays, fpts: np.ndarray, sig: np.ndarray,
                      now_ms: int, params: OptionsParams) -> dict[str, np.ndarray]:
    """Mark every instrument at each of P price points (risk arrays).

    Parameters
    ----------
    book : OptionsBookArrays
    fpts, sig : ndarray, shape (U, P), float64
        Underlying price (USD) and implied volatility (fraction) at each point.
    now_ms : int
        Valuation time, epoch ms.
    params : OptionsParams

    Returns
    -------
    dict
        ``val`` (I, P), ``scen`` (I, P, S + 2: the scenarios, their min and max), ``buy``
        (I, P), ``sell`` (I, P), ``grk`` (I, P, 3): see
        :func:`backtest.kernels.options_nb.fill_instrument_nb`.
    """
    n_inst = book.inst_und.size
    n_p = fpts.shape[1]
    grid = params.grid
    n_s = grid.n_scenarios
    out = {"val": np.zeros((n_inst, n_p)), "scen": np.zeros((n_inst, n_p, n_s + 2)),
           "buy": np.zeros((n_inst, n_p)), "sell": np.zeros((n_inst, n_p)),
           "grk": np.zeros((n_inst, n_p, 3))}
    tau = (book.inst_expiry_ms - np.int64(now_ms)) / MS_PER_YEAR
    fill_instruments_nb(np.ones(n_inst, np.int8), book.inst_und, book.inst_call,
                        book.inst_strike, tau, np.ascontiguousarray(fpts, dtype=np.float64),
                        np.ascontiguousarray(sig, dtype=np.float64), grid.price_shocks(),
                        grid.vol_factors(), kernel_records(pack_options_params(params)),
                        np.arange(n_p, dtype=np.int64), out["val"], out["scen"], out["buy"],
                        out["sell"], out["grk"])
    return out


def account_risk(book: OptionsBookArrays, price: np.ndarray, iv: np.ndarray, now_ms: int,
                 params: OptionsParams | None = None) -> AccountRisk:
    """Value every account: equity, scenario maintenance margin, delta, gamma and vega.

    Parameters
    ----------
    book : OptionsBookArrays
        Accounts, legs and instruments (:meth:`OptionsBook.arrays`).
    price : array_like, shape (U,)
        Underlying price of each of ``book.underlyings``, USD (the forward: zero basis).
    iv : array_like, shape (U,)
        Implied volatility of each underlying, annualised fraction.
    now_ms : int
        Valuation time, epoch ms (time to expiry is counted from it, 365-day years).
    params : OptionsParams, optional
        Scenario grid, rate and volatility floor; default :class:`OptionsParams`.

    Returns
    -------
    AccountRisk

    Raises
    ------
    ValueError
        If ``price`` or ``iv`` has the wrong length or a non-positive value.
    """
    params = params or OptionsParams()
    price = np.asarray(price, dtype=np.float64).reshape(-1)
    iv = np.asarray(iv, dtype=np.float64).reshape(-1)
    n_u = len(book.underlyings)
    if price.size != n_u or iv.size != n_u:
        raise ValueError(f"need one price and one iv per underlying {book.underlyings}")
    if np.any(~(price > 0)) or np.any(~(iv > 0)):
        raise ValueError("prices and implied volatilities must be positive")
    fpts = price[:, None]
    arrays = instrument_arrays(book, fpts, iv[:, None], now_ms, params)
    n = book.cash.size
    equity = np.zeros((n, 1))
    margin = np.zeros((n, 1))
    greeks = np.zeros((n, 3))
    evaluate_accounts_nb(book.leg_start, book.leg_inst, book.leg_qty, book.cash, book.inst_und,
                         fpts, arrays["val"], arrays["scen"], arrays["grk"],
                         params.grid.contingency_rate, equity, margin, greeks)
    return AccountRisk(equity[:, 0], margin[:, 0], greeks[:, 0].copy(), greeks[:, 1].copy(),
                       greeks[:, 2].copy())
