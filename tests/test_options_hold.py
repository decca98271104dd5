"""The no-liquidation equity of options accounts (``backtest.options.hold``): it is what the
kernel leaves an account it never liquidates, bit for bit, and an independent hand valuation
(intrinsic values at expiry, Black-76 at the last close) to rounding."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from backtest.options import OptionsParams, simulate_options
from backtest.options.black76 import black76_price
from backtest.options.hold import hold_equity
from backtest.options.margin import MS_PER_YEAR, account_risk
from tests.options_inputs import random_book, random_market


def _final_equity(book, market, res, params):
    end = replace(book, cash=res.cash, leg_qty=res.leg_qty)
    return account_risk(end, market.close[-1], market.iv[-1], int(market.valuation_ms[-1]),
                        params).equity


@pytest.mark.parametrize("seed", range(4))
def test_accounts_never_liquidated_hold_what_the_kernel_leaves_them(seed):
    rng = np.random.default_rng(seed)
    steps = 150
    market = random_market(rng, steps, 2)
    book = random_book(rng, 300, market, steps)
    params = OptionsParams(penalty_rate=0.01)
    res = simulate_options(market, book, params)
    hold = hold_equity(book, market, params)
    final = _final_equity(book, market, res, params)
    never = (res.liq_step < 0) & (res.bad_debt == 0.0)
    assert never.sum() > 50 and (~never).sum() > 0  # both kinds of account are present
    assert np.array_equal(hold[never], np.maximum(final[never], 0.0))
    # settlements happened inside the window (expiries at steps/3 and steps/2)
    assert np.count_nonzero(res.settled) > 0
    # a rich book is never liquidated: every account holds exactly its final equity
    rich = replace(book, cash=book.cash + 1e9)
    res2 = simulate_options(market, rich, params)
    assert (res2.liq_step < 0).all()
    assert np.array_equal(hold_equity(rich, market, params),
                          np.maximum(_final_equity(rich, market, res2, params), 0.0))


def test_hold_equity_equals_a_hand_valuation():
    rng = np.random.default_rng(42)
    steps = 100
    market = random_market(rng, steps, 2)
    book = random_book(rng, 60, market, steps)
    params = OptionsParams(rate=0.03)
    hold = hold_equity(book, market, params)
    vms = market.valuation_ms
    expected = np.empty(book.cash.size)
    for a in range(book.cash.size):
        value = book.cash[a]
        for j in range(book.leg_start[a], book.leg_start[a + 1]):
            i = book.leg_inst[j]
            u = book.inst_und[i]
            call = bool(book.inst_call[i])
            k, expiry = book.inst_strike[i], book.inst_expiry_ms[i]
            reached = np.flatnonzero(vms >= expiry)
            if reached.size:  # settled at the first close at or after expiry: intrinsic
                f = market.close[reached[0], u]
                value += book.leg_qty[j] * (max(f - k, 0.0) if call else max(k - f, 0.0))
            else:
                tau = (expiry - vms[-1]) / MS_PER_YEAR
                sigma = max(market.iv[-1, u], params.vol_floor)
                value += book.leg_qty[j] * float(black76_price(call, market.close[-1, u], k,
                                                               tau, sigma, params.rate))
        expected[a] = max(value, 0.0)
    assert np.allclose(hold, expected, rtol=1e-9, atol=1e-6)
    assert (expected == 0).any() and (expected > 0).any()
