"""The honest ledger at table level: socialised loss charged per account, ADL status, band
conversions apart from liquidations.

The socialised loss of each step is split into the part charged to the book's perp positions
(pro rata to their size, Drift's ``resolve_perp_bankruptcy``) and the part borne outside the
book (lenders, stakers, the venue): per-account charges must sum to the charged part, the two
parts to the step's socialised loss, and the closed-form allocation must match a plain loop
that rebuilds every position at every step.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest.engine.dispatch import ADL_FIELDS, Prices, simulate
from backtest.kernels.enums import (
    N_STEP_METRICS,
    RECORD_FIELDS,
    AdlRanking,
    FillPrice,
    PolicyFamily,
    StepMetric,
    TriggerPrice,
    Waterfall,
)
from backtest.results.socialised import socialised_charges, socialised_charges_reference
from backtest.results.tables import STATUS_ADL, accounts_table, steps_table
from tests.kernel_inputs import random_book, random_policy, random_prices

# a 20x long that a 40% gap makes bankrupt; two shorts (1 and 3 units) on the other side; a loan
_PATH = np.array([100.0, 100.0, 60.0, 60.0, 60.0])
GAP = Prices(_PATH, np.array([100.0, 100.0, 100.0, 60.0, 60.0]), _PATH, _PATH)
BOOK = {"product": np.array([0, 0, 0, 1], np.int8), "units": np.array([1.0, -1.0, -3.0, 1.0]),
        "cash": np.array([-95.0, 150.0, 450.0, -50.0])}


def _gap_run(waterfall: int):
    policy = random_policy(np.random.default_rng(0), family=PolicyFamily.HARD)
    policy["waterfall"] = waterfall
    policy["penalty_rate"] = [0.0, 0.05]
    res = simulate(GAP, BOOK["product"], BOOK["units"], BOOK["cash"], policy,
                   TriggerPrice.EXTREME, FillPrice.CLOSE)
    accounts = accounts_table("r", "p", res, np.arange(4), BOOK, 100.0, 60.0, 60.0)
    steps = steps_table("r", "p", res, np.arange(5) * 60_000, GAP.close, GAP.low, BOOK,
                        np.zeros(5))
    return res, accounts, steps


def test_socialised_loss_is_charged_to_open_perps_pro_rata_to_size():
    res, accounts, steps = _gap_run(Waterfall.SOCIALISE)
    social = res.step_metrics[:, StepMetric.SOCIALISED_LOSS].sum()
    assert social > 30.0  # the long's shortfall, less the loan's penalty share in the fund
    charge = accounts["socialised_loss_usd"].to_numpy()
    assert charge[0] == 0.0 and charge[3] == 0.0  # the bankrupt account and the loan pay nothing
    assert charge[2] == pytest.approx(3.0 * charge[1], rel=1e-12)  # 3 units against 1
    assert charge.sum() == pytest.approx(social, rel=1e-12)
    assert steps["socialised_loss_charged_usd"].sum() == pytest.approx(social, rel=1e-12)
    assert steps["socialised_loss_outside_usd"].abs().max() < 1e-9
    # user equity is net of the haircut, in the accounts and in the steps' running total
    hold = BOOK["cash"][1:3] + BOOK["units"][1:3] * 60.0
    np.testing.assert_allclose(accounts["final_equity_usd"].to_numpy()[1:3], hold - charge[1:3])
    assert steps["user_equity_usd"][-1] == pytest.approx(accounts["final_equity_usd"].sum())
    assert set(accounts["status"].to_list()) == {"bankrupt", "open", "closed"}


def test_auto_deleveraged_accounts_get_their_own_status():
    res, accounts, steps = _gap_run(Waterfall.ADL)
    assert len(res.adl_records) == 1
    status = accounts["status"].to_list()
    assert status[1] == STATUS_ADL and status[2] == "open"
    row = accounts.row(1, named=True)
    assert row["adl_units_closed"] == -1.0
    assert row["adl_paid_usd"] == pytest.approx(res.step_metrics[:, StepMetric.ADL_TRANSFER].sum())
    assert accounts["socialised_loss_usd"].sum() == 0.0  # ADL covered all of it
    assert steps["socialised_loss_usd"].sum() == 0.0


def _crafted(sm_rows: dict[int, dict[int, float]], n_steps: int) -> np.ndarray:
    sm = np.zeros((n_steps, N_STEP_METRICS))
    for t, cols in sm_rows.items():
        for k, v in cols.items():
            sm[t, k] = v
    return sm


def test_charges_follow_positions_through_arrivals_and_closes():
    # step 1: perp long bad debt 100, fund pays 40; step 2: loan bad debt 30, all socialised,
    # and perp short bad debt 50 with nothing in the fund
    S = StepMetric
    sm = _crafted({1: {S.BAD_DEBT: 100.0, S.BAD_DEBT_PERP_LONG: 100.0, S.INSURANCE_DRAW: 40.0,
                       S.SOCIALISED_LOSS: 60.0},
                   2: {S.BAD_DEBT: 80.0, S.BAD_DEBT_PERP_SHORT: 50.0, S.SOCIALISED_LOSS: 80.0}},
                  4)
    product = np.array([0, 0, 0, 1, 0], np.int8)
    units = np.array([10.0, -3.0, -1.0, 5.0, 2.0])
    arrival = np.array([-1, -1, -1, -1, 2])  # account 4 opens at step 2
    records = np.zeros(2, np.dtype(list(RECORD_FIELDS)))
    records["step"], records["account"], records["units_closed"] = [1, 2], [0, 2], [10.0, -1.0]
    adl = np.zeros(0, np.dtype(list(ADL_FIELDS)))
    out = socialised_charges(sm, product, units, arrival, records, adl)
    # step 1: 60 over shorts 3 and 1 (the long closed); step 2: 50 over 3 (short) + 2 (arrival)
    np.testing.assert_allclose(out.per_account, [0.0, 45.0 + 30.0, 15.0, 0.0, 20.0])
    np.testing.assert_allclose(out.charged, [0.0, 60.0, 50.0, 0.0])
    np.testing.assert_allclose(out.outside, [0.0, 0.0, 30.0, 0.0])  # the loan's 30
    ref = socialised_charges_reference(sm, product, units, arrival, records, adl)
    np.testing.assert_allclose(ref.per_account, out.per_account)


def test_perp_loss_with_no_open_position_stays_outside_the_book():
    S = StepMetric
    sm = _crafted({0: {S.BAD_DEBT: 10.0, S.BAD_DEBT_PERP_LONG: 10.0, S.SOCIALISED_LOSS: 10.0}}, 2)
    records = np.zeros(1, np.dtype(list(RECORD_FIELDS)))
    records["account"], records["units_closed"] = 0, 1.0
    out = socialised_charges(sm, np.array([0], np.int8), np.array([1.0]), np.array([-1]),
                             records, np.zeros(0, np.dtype(list(ADL_FIELDS))))
    assert out.per_account[0] == 0.0 and out.outside[0] == 10.0


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 60), steps=st.integers(2, 30),
       waterfall=st.sampled_from(list(Waterfall)), fund=st.sampled_from([0.0, 5.0]),
       ranking=st.sampled_from(list(AdlRanking)))
def test_per_account_socialised_loss_sums_to_the_step_totals(seed, n, steps, waterfall, fund,
                                                              ranking):
    rng = np.random.default_rng(seed)
    prices = random_prices(rng, steps, vol=0.05)
    book = random_book(rng, n)
    policy = random_policy(rng)
    policy["waterfall"], policy["adl_ranking"] = waterfall, ranking
    res = simulate(prices, book["product"], book["units"], book["cash"], policy,
                   TriggerPrice.EXTREME, FillPrice.TRIGGER, insurance_fund_usd=fund)
    arrival = np.full(n, -1)
    out = socialised_charges(res.step_metrics, book["product"], book["units"], arrival,
                             res.records, res.adl_records)
    social = res.step_metrics[:, StepMetric.SOCIALISED_LOSS]
    scale = 1.0 + social.sum()
    assert np.all(out.per_account >= 0.0) and np.all(out.outside >= -1e-9 * scale)
    assert np.all(out.per_account[book["product"] == 1] == 0.0)  # borrowers are not charged
    np.testing.assert_allclose(out.charged + out.outside, social, atol=1e-9 * scale)
    assert abs(out.per_account.sum() - out.charged.sum()) <= 1e-9 * scale
    ref = socialised_charges_reference(res.step_metrics, book["product"], book["units"],
                                       arrival, res.records, res.adl_records)
    np.testing.assert_allclose(out.per_account, ref.per_account, atol=1e-9 * scale)
    accounts = accounts_table("r", "p", res, np.arange(n), book, prices.open[0],
                              prices.close[-1], prices.close[-1])
    steps_frame = steps_table("r", "p", res, np.arange(steps) * 60_000, prices.close,
                              prices.low, book, np.zeros(steps))
    assert abs(accounts["socialised_loss_usd"].sum()
               - steps_frame["socialised_loss_charged_usd"].sum()) <= 1e-9 * scale
    # ADL'd accounts that were never liquidated carry the ADL status, and only they do
    adl_only = np.isin(np.arange(n), res.adl_records["account"]) & (res.n_liquidations == 0)
    np.testing.assert_array_equal(accounts["status"].to_numpy() == STATUS_ADL, adl_only)
    # liquidated notional counts liquidation events only
    assert steps_frame["liquidated_notional_usd"].sum() == pytest.approx(
        res.records["notional"].sum(), rel=1e-12, abs=1e-9)


def test_soft_band_conversions_are_reported_apart_from_liquidations():
    from backtest.kernels.enums import BAND_FIELDS
    from tests.kernel_inputs import random_bands

    for seed in range(40):
        rng = np.random.default_rng(seed)
        prices = random_prices(rng, 40, vol=0.03)
        book = random_book(rng, 80)
        policy = random_policy(rng)
        random_bands(rng, policy)
        res = simulate(prices, book["product"], book["units"], book["cash"], policy,
                       TriggerPrice.EXTREME, FillPrice.TRIGGER)
        if res.step_metrics[:, StepMetric.SOFT_SOLD_UNITS].sum() > 0:
            break
    else:
        pytest.fail("no seed made the bands convert collateral")
    steps = steps_table("r", "p", res, np.arange(40) * 60_000, prices.close, prices.low, book,
                        np.zeros(40))
    accounts = accounts_table("r", "p", res, np.arange(80), book, prices.open[0],
                              prices.close[-1], prices.close[-1])
    kernel_total = res.step_metrics[:, StepMetric.LIQUIDATED_NOTIONAL].sum()
    events = res.records["notional"].sum()
    assert steps["soft_converted_notional_usd"].sum() > 0.0
    assert steps["liquidated_notional_usd"].sum() == pytest.approx(events, rel=1e-12, abs=1e-9)
    assert (steps["liquidated_notional_usd"].sum() + steps["soft_converted_notional_usd"].sum()
            == pytest.approx(kernel_total, rel=1e-9))
    assert accounts["liquidated_notional_usd"].sum() == pytest.approx(events, rel=1e-9, abs=1e-9)
    np.testing.assert_allclose(accounts["soft_converted_units"].to_numpy(),
                               res.bands[:, BAND_FIELDS.index("soft_units")])


def test_a_position_closed_before_the_gap_bears_none_of_the_socialised_loss():
    from backtest.engine.book_flow import BookFlow

    policy = random_policy(np.random.default_rng(0), family=PolicyFamily.HARD)
    policy["waterfall"] = Waterfall.SOCIALISE
    policy["penalty_rate"] = [0.0, 0.05]
    # the 3-unit short's trader closes it at step 1, at the close it saw (100), before the gap
    flow = BookFlow(np.full(4, -1, np.int64), BOOK["units"], BOOK["cash"], np.zeros(4),
                    np.zeros(4, bool), None, np.array([-1, -1, 1, -1], np.int64))
    res = simulate(GAP, BOOK["product"], BOOK["units"], BOOK["cash"], policy,
                   TriggerPrice.EXTREME, FillPrice.CLOSE, flow=flow)
    accounts = accounts_table("r", "p", res, np.arange(4), BOOK, 100.0, 60.0, 60.0, flow,
                              GAP.close)
    steps = steps_table("r", "p", res, np.arange(5) * 60_000, GAP.close, GAP.low, BOOK,
                        np.zeros(5), flow)
    social = res.step_metrics[:, StepMetric.SOCIALISED_LOSS].sum()
    charge = accounts["socialised_loss_usd"].to_numpy()
    assert social > 30.0
    assert charge[2] == 0.0 and charge[1] == pytest.approx(social, rel=1e-12)
    assert accounts["closed_step"].to_list() == [-1, -1, 1, -1]
    row = accounts.row(2, named=True)
    assert row["final_units"] == 0.0 and row["final_cash_usd"] == pytest.approx(450.0 - 300.0)
    assert row["hold_equity_usd"] == pytest.approx(150.0)  # held: closed at 100 all the same
    assert steps["closes"].to_list() == [0, 1, 0, 0, 0]
    assert steps["closed_notional_usd"][1] == pytest.approx(300.0)
    # the running totals carry the close: equity and open interest agree with the accounts
    assert steps["user_equity_usd"][-1] == pytest.approx(accounts["final_equity_usd"].sum())
    assert steps["perp_short_oi_usd"][-1] == pytest.approx(1.0 * 60.0)
