"""The no-liquidation counterfactual of an options book: each account's equity if never liquidated.

The user loss to liquidation of a run (``hold_equity_usd - final_equity_historical_usd``, the
metrics registry's ``user_loss_to_liquidation_usd``; without market impact, as in options runs,
the latter equals ``final_equity_usd``) needs the equity an account would have had at the
last close had no rule ever closed its legs. For an options account that is its cash, plus the
cash its legs would have settled for at their expiries inside the window, plus the legs still
open marked at the last close: exactly what the kernel does to an account it never liquidates
(:mod:`backtest.kernels.options_nb`: a leg settles at the end of the first step whose close
time reaches its expiry, at the instrument's value at that close, i.e. its intrinsic value).
The values come from the same instrument kernel
(:func:`backtest.options.margin.instrument_arrays`) and are summed in the kernel's order, so an
account the run never liquidates has ``hold_equity == final_equity`` bit for bit
(``tests/test_options_hold.py``). Like every run kind's counterfactual it is floored at 0 (an
account's loss ends at its equity).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from backtest.options.book import OptionsBookArrays
from backtest.options.margin import account_risk, instrument_arrays
from backtest.options.params import OptionsParams
from backtest.options.simulate import OptionsMarket


def hold_equity(book: OptionsBookArrays, market: OptionsMarket,
                params: OptionsParams) -> np.ndarray:
    """Return each account's equity at the last close had it never been liquidated.

    Parameters
    ----------
    book : OptionsBookArrays
        The accounts at the window start (N accounts, L legs, I instruments); not modified.
    market : OptionsMarket
        Prices and implied volatility per step, shape (T, U).
    params : OptionsParams
        Rate and volatility floor of the marks (the margin grid plays no part).

    Returns
    -------
    ndarray, shape (N,), float64
        ``max(cash + settlements + sum(quantity x Black-76 mark at the last close), 0)``, USD.
    """
    vms = market.valuation_ms
    n_steps = vms.size
    n = book.cash.size
    owner = np.repeat(np.arange(n), np.diff(book.leg_start))
    settle = np.searchsorted(vms, book.inst_expiry_ms, side="left")  # first close >= expiry
    cash = book.cash.astype(np.float64, copy=True)
    qty = book.leg_qty.astype(np.float64, copy=True)
    for s in np.unique(settle[settle < n_steps]):
        val = instrument_arrays(book, market.close[s][:, None], market.iv[s][:, None],
                                int(vms[s]), params)["val"][:, 0]
        legs = (settle[book.leg_inst] == s) & (qty != 0.0)
        if not legs.any():
            continue
        # per account, the legs' payments summed in leg order, then added to cash (the kernel)
        paid = np.bincount(owner[legs], weights=qty[legs] * val[book.leg_inst[legs]],
                           minlength=n)
        hit = np.bincount(owner[legs], minlength=n) > 0
        cash[hit] += paid[hit]
        qty[legs] = 0.0
    end = replace(book, cash=cash, leg_qty=qty)
    equity = account_risk(end, market.close[-1], market.iv[-1], int(vms[-1]), params).equity
    return np.maximum(equity, 0.0)


__all__ = ["hold_equity"]
