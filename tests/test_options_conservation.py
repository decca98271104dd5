"""Money conservation of the options kernel, as a property over random books and markets.

Every liquidation turns the account's option value (the mark) into cash at the closing price:
what the account loses is the spread paid to the market, the keeper fee and the insurance
fee; a shortfall written off is bad debt. So for every event, and summed over the run:

    (cash_after - cash_before) + (0 - mark_value) = -(keeper + insurance + spread) + bad_debt

and cash otherwise changes only by expiry settlements (and settlement write-offs, also bad
debt). The insurance fund receives the insurance fees and pays bad debt; the rest is
socialised. Checked to 1e-9 relative to the money involved.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest.kernels.enums import TriggerPrice
from backtest.kernels.options_enums import OptionsStepMetric as M
from backtest.kernels.options_enums import SpreadMode
from backtest.options.simulate import run_options
from tests.options_inputs import random_book, random_grid, random_market, random_params

scenarios = st.fixed_dictionaries({
    "seed": st.integers(0, 2**31 - 1),
    "n": st.integers(1, 120),
    "steps": st.integers(2, 60),
    "n_und": st.integers(1, 3),
    "vol": st.floats(0.001, 0.04),
    "iv_rise": st.floats(-0.5, 1.5),
    "trigger": st.sampled_from(list(TriggerPrice)),
    "spread_mode": st.sampled_from(list(SpreadMode)),
    "chunk": st.sampled_from([1, 5, 64, 4096]),
    "fund": st.sampled_from([0.0, 100.0, 1e6]),
})


@settings(max_examples=60, deadline=None)
@given(scenarios)
def test_money_is_conserved(sc):
    rng = np.random.default_rng(sc["seed"])
    market = random_market(rng, sc["steps"], sc["n_und"], vol=sc["vol"], iv_rise=sc["iv_rise"])
    book = random_book(rng, sc["n"], market, sc["steps"])
    params = random_params(rng, sc["trigger"], sc["spread_mode"])
    shocks, factors = random_grid(rng)
    res = run_options(market, book, params, shocks, factors, sc["fund"], chunk_size=sc["chunk"])
    rec = res.records
    scale = 1.0 + np.abs(book.cash).sum() + np.abs(rec["mark_value"]).sum() + np.abs(
        res.settled).sum()
    tol = 1e-9 * scale

    # every event
    lhs = (rec["cash_after"] - rec["cash_before"]) - rec["mark_value"]
    rhs = -(rec["keeper_fee"] + rec["insurance_fee"] + rec["spread_paid"]) + rec["bad_debt"]
    np.testing.assert_allclose(lhs, rhs, rtol=0, atol=tol)
    assert np.all(rec["spread_paid"] >= -tol) and np.all(rec["bad_debt"] >= 0)
    assert np.all(rec["cash_after"] >= 0)

    assert np.all(rec["keeper_fee"] >= 0) and np.all(rec["insurance_fee"] >= 0)

    # every account: cash moves only by liquidation proceeds, fees, settlements, write-offs;
    # one liquidation per account (it closes every leg), at the step recorded for it
    n = sc["n"]
    assert len(np.unique(rec["account"])) == rec.size
    liq_step = np.full(n, -1)
    liq_step[rec["account"]] = rec["step"]
    np.testing.assert_array_equal(res.liq_step, liq_step)
    proceeds, written_off = np.zeros(n), np.zeros(n)
    np.add.at(proceeds, rec["account"], rec["mark_value"] - rec["spread_paid"]
              - rec["keeper_fee"] - rec["insurance_fee"])
    np.add.at(written_off, rec["account"], rec["bad_debt"])
    np.testing.assert_allclose(res.cash - book.cash, proceeds + res.settled + res.bad_debt,
                               rtol=0, atol=tol)
    # an account's bad debt is its liquidation's plus what settlement wrote off
    settle_off = res.bad_debt - written_off
    assert np.all(settle_off >= -tol)
    assert settle_off.sum() == _approx(_settlement_write_offs(res, sc).sum(), tol)

    # every step and the whole run
    sm = res.step_metrics
    np.testing.assert_allclose(
        sm[:, M.CASH_DELTA_LIQUIDATION],
        sm[:, M.LIQUIDATED_MARK] - sm[:, M.SPREAD_PAID] - sm[:, M.KEEPER_FEES]
        - sm[:, M.INSURANCE_FEES] + (sm[:, M.BAD_DEBT] - _settlement_write_offs(res, sc)),
        rtol=0, atol=tol)
    assert res.cash.sum() - book.cash.sum() == _approx(
        sm[:, M.CASH_DELTA_LIQUIDATION].sum() + sm[:, M.SETTLEMENT_CASH].sum()
        + _settlement_write_offs(res, sc).sum(), tol)
    # per step, the aggregates are the records' (as the single-asset property checks)
    steps = sm.shape[0]
    for metric, col in ((M.LIQUIDATED_MARK, "mark_value"), (M.SPREAD_PAID, "spread_paid"),
                        (M.KEEPER_FEES, "keeper_fee"), (M.INSURANCE_FEES, "insurance_fee"),
                        (M.LIQUIDATED_NOTIONAL, "notional")):
        by_step = np.bincount(rec["step"], weights=rec[col], minlength=steps)
        np.testing.assert_allclose(sm[:, metric], by_step, rtol=0, atol=tol)
    np.testing.assert_array_equal(sm[:, M.N_LIQUIDATIONS],
                                  np.bincount(rec["step"], minlength=steps))
    assert np.all(_settlement_write_offs(res, sc) >= -tol)
    # the waterfall, step by step: bad debt is drawn from the fund or socialised; the fund is
    # initial + fees - draws, never negative
    np.testing.assert_allclose(sm[:, M.INSURANCE_DRAW] + sm[:, M.SOCIALISED_LOSS],
                               sm[:, M.BAD_DEBT], rtol=0, atol=tol)
    fund = sc["fund"] + np.cumsum(sm[:, M.INSURANCE_FEES] - sm[:, M.INSURANCE_DRAW])
    np.testing.assert_allclose(sm[:, M.INSURANCE_FUND], fund, rtol=0, atol=tol)
    assert np.all(sm[:, M.INSURANCE_FUND] >= -tol) and np.all(sm[:, M.INSURANCE_DRAW] >= 0)
    assert res.insurance_fund_usd == _approx(fund[-1], tol)
    assert sm[:, M.BAD_DEBT].sum() == _approx(res.bad_debt.sum(), tol)
    assert sm[:, M.N_LIQUIDATIONS].sum() == rec.size
    # every leg is either still open, closed by its account's liquidation, or settled
    closed = np.zeros(book.leg_qty.size, dtype=bool)
    for a in rec["account"]:
        closed[book.leg_start[a]:book.leg_start[a + 1]] = True
    still_open = res.leg_qty != 0
    np.testing.assert_array_equal(res.leg_qty[still_open], book.leg_qty[still_open])
    assert not np.any(still_open & closed)


def _settlement_write_offs(res, sc) -> np.ndarray:
    """Bad debt per step written off at settlement (not by a liquidation record)."""
    per_step = np.zeros(res.step_metrics.shape[0])
    np.add.at(per_step, res.records["step"], res.records["bad_debt"])
    return res.step_metrics[:, M.BAD_DEBT] - per_step


def _approx(value, tol):
    import pytest

    return pytest.approx(value, rel=0, abs=tol)
