"""The portfolio kernel against its reference twin; money conservation; determinism."""

from __future__ import annotations

import numba
import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backtest.errors import BookError
from backtest.kernels.portfolio_enums import AccountKind, AssetMetric, PortfolioMetric
from backtest.kernels.portfolio_reference import simulate_portfolio_reference
from backtest.portfolio import PortfolioBook, PortfolioParams, simulate_portfolio
from backtest.portfolio.simulate import sensitivity_of
from tests.portfolio_inputs import random_aligned, random_book, random_params

ORDERS = ["protocol", "least_sensitive", "largest", "proportional"]


def _case(seed, order=None, n=200, steps=40, **overrides):
    rng = np.random.default_rng(seed)
    aligned = random_aligned(rng, steps)
    params = random_params(rng, order, **overrides)
    book = random_book(rng, n, risk=params.asset_risk(aligned.symbols))
    return aligned, book, params


def _reference(aligned, book, params):
    return simulate_portfolio_reference(
        aligned.low, aligned.high, aligned.close, sensitivity_of(aligned),
        params.asset_risk(aligned.symbols), params.policy_record()[0], book.kind, book.offsets,
        book.pos_asset, book.pos_units, book.cash, params.insurance_fund_usd)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("order", ORDERS)
def test_kernel_matches_reference(seed, order):
    # the fund: empty, drained along the way, never drained
    aligned, book, params = _case(seed, order, insurance_fund_usd=[0.0, 50.0, 1e6][seed])
    res = simulate_portfolio(aligned, book, params)
    ref = _reference(aligned, book, params)
    assert res.records.height == len(ref.records) > 0
    np.testing.assert_allclose(res.book.pos_units, ref.pos_units, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(res.book.cash, ref.cash, rtol=1e-10, atol=1e-8)
    np.testing.assert_array_equal(res.n_liquidations, ref.n_liquidations)
    np.testing.assert_array_equal(res.first_step, ref.first_step)
    np.testing.assert_allclose(res.bad_debt, ref.bad_debt, rtol=1e-9, atol=1e-8)
    np.testing.assert_allclose(res.step_metrics, ref.step_metrics, rtol=1e-9, atol=1e-7)
    np.testing.assert_allclose(res.asset_metrics, ref.asset_metrics, rtol=1e-9, atol=1e-7)
    rec = pl.DataFrame(ref.records)
    for col in ("step", "account", "asset"):
        np.testing.assert_array_equal(res.records[col].to_numpy(), rec[col].to_numpy())
    for col in ("units_closed", "fill_price", "keeper_fee", "insurance_fee", "bad_debt",
                "health_before", "debt_repaid"):
        np.testing.assert_allclose(res.records[col].to_numpy(), rec[col].to_numpy(),
                                   rtol=1e-9, atol=1e-8)
    M = PortfolioMetric  # the fund's step, run inside the kernel, as the twin runs it
    for got, col in ((res.insurance_fund, M.INSURANCE_FUND),
                     (res.insurance_draw, M.INSURANCE_DRAW),
                     (res.socialised_loss, M.SOCIALISED_LOSS)):
        np.testing.assert_allclose(got, ref.step_metrics[:, col], rtol=1e-9, atol=1e-7)
    # every kind of account was liquidated in these books
    sm = res.step_metrics.sum(axis=0)
    assert sm[PortfolioMetric.N_LENDING] > 0 and sm[PortfolioMetric.N_CROSS] > 0
    assert sm[PortfolioMetric.N_ISOLATED] > 0


def test_records_buffer_flush_and_growth_give_the_same_result(monkeypatch):
    aligned, book, params = _case(3, "largest")
    full = simulate_portfolio(aligned, book, params)
    import backtest.portfolio.simulate as sim

    monkeypatch.setattr(sim, "INITIAL_RECORDS", 4)
    small = simulate_portfolio(aligned, book, params)
    assert small.records.equals(full.records)
    np.testing.assert_array_equal(small.step_metrics, full.step_metrics)


def test_bit_identical_across_thread_counts():
    aligned, book, params = _case(5, "proportional", n=2000, chunk_size=37)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = simulate_portfolio(aligned, book, params)
        numba.set_num_threads(max(before, 2))
        many = simulate_portfolio(aligned, book, params)
    finally:
        numba.set_num_threads(before)
    assert one.records.equals(many.records)
    np.testing.assert_array_equal(one.step_metrics, many.step_metrics)
    np.testing.assert_array_equal(one.asset_metrics, many.asset_metrics)
    np.testing.assert_array_equal(one.book.cash, many.book.cash)


def _assert_conserved(book: PortfolioBook, res, rel=1e-9):
    """Every dollar leaving an account is in the records: market, keeper, fund or bad debt.

    The identity of the single-asset property (``tests/test_conservation_property.py``), per
    account, per step and for the insurance fund's waterfall.
    """
    rec = res.records
    acct = rec["account"].to_numpy()
    n = book.n_accounts
    # units: what left each position is the units closed (sold to the market / seized)
    pos_key = book.account_of_position() * len(book.symbols) + book.pos_asset
    rec_key = acct * len(book.symbols) + rec["asset"].to_numpy()
    closed = np.zeros(book.n_positions)
    by_key = np.argsort(pos_key)
    idx = by_key[np.searchsorted(pos_key[by_key], rec_key)]
    np.add.at(closed, idx, rec["units_closed"].to_numpy())
    scale = np.abs(book.pos_units) + 1e-300
    assert np.all(np.abs(book.pos_units - closed - res.book.pos_units) <= rel * scale)
    # cash: proceeds of the units closed at the fill price, minus what went to the keeper and
    # the insurance fund, plus the bad debt written off
    proceeds = np.bincount(acct, weights=rec["units_closed"].to_numpy()
                           * rec["fill_price"].to_numpy(), minlength=n)
    keeper = np.bincount(acct, weights=rec["keeper_fee"].to_numpy(), minlength=n)
    insurance = np.bincount(acct, weights=rec["insurance_fee"].to_numpy(), minlength=n)
    bad = np.bincount(acct, weights=rec["bad_debt"].to_numpy(), minlength=n)
    expect = book.cash + proceeds - keeper - insurance + bad
    gross = np.abs(book.cash) + np.bincount(acct, weights=rec["notional"].to_numpy(),
                                            minlength=n)
    assert np.all(np.abs(res.book.cash - expect) <= rel * gross + 1e-12)
    # lending: debt repaid = collateral value seized - bonus (keeper + fund)
    lend = book.kind[acct] == AccountKind.LENDING
    seized = (rec["notional"].to_numpy() - rec["keeper_fee"].to_numpy()
              - rec["insurance_fee"].to_numpy())[lend]
    np.testing.assert_allclose(seized, rec["debt_repaid"].to_numpy()[lend], rtol=rel,
                               atol=1e-9)
    # per account, the totals are the records'
    notional = np.bincount(acct, weights=rec["notional"].to_numpy(), minlength=n)
    for total, of_records in ((res.penalties_paid, keeper + insurance), (res.bad_debt, bad),
                              (res.liquidated_notional, notional)):
        assert np.all(np.abs(total - of_records) <= rel * gross + 1e-12)
    assert np.all(res.n_liquidations >= (notional > 0))
    # per step, the aggregates are the records' (as the single-asset property checks)
    steps = res.step_metrics.shape[0]
    step = rec["step"].to_numpy()
    M = PortfolioMetric
    step_scale = rec["notional"].sum() + np.abs(book.cash).sum() + 1.0
    for metric, col in ((M.LIQUIDATED_NOTIONAL, "notional"), (M.KEEPER_FEES, "keeper_fee"),
                        (M.INSURANCE_FEES, "insurance_fee"), (M.BAD_DEBT, "bad_debt"),
                        (M.DEBT_REPAID, "debt_repaid")):
        by_step = np.bincount(step, weights=rec[col].to_numpy(), minlength=steps)
        assert np.all(np.abs(res.step_metrics[:, metric] - by_step) <= rel * step_scale)
    assert np.array_equal(res.step_metrics[:, M.N_RECORDS], np.bincount(step, minlength=steps))
    am = res.asset_metrics.sum(axis=0)
    assert am[:, AssetMetric.BAD_DEBT].sum() == pytest.approx(bad.sum(), rel=rel, abs=1e-9)
    # the waterfall: every dollar of bad debt is drawn from the fund or socialised; the fund is
    # initial + fees - draws, never negative
    fees = res.step_metrics[:, M.INSURANCE_FEES]
    np.testing.assert_allclose(res.insurance_draw + res.socialised_loss,
                               res.step_metrics[:, M.BAD_DEBT], rtol=0, atol=rel * step_scale)
    fund = res.params.insurance_fund_usd + np.cumsum(fees - res.insurance_draw)
    np.testing.assert_allclose(res.insurance_fund, fund, rtol=0,
                               atol=rel * (step_scale + res.params.insurance_fund_usd))
    assert np.all(res.insurance_fund >= 0.0) and np.all(res.insurance_draw >= 0.0)
    # nothing is paid that was not earned, and no position flips side
    assert np.all(rec["keeper_fee"].to_numpy() >= 0.0)
    assert np.all(rec["insurance_fee"].to_numpy() >= 0.0)
    assert np.all(rec["bad_debt"].to_numpy() >= 0.0)
    assert np.all(np.sign(res.book.pos_units) * np.sign(book.pos_units) >= 0)
    # after the window no account that was liquidated is left with negative cash and nothing
    positions_left = np.bincount(book.account_of_position(),
                                 weights=res.book.pos_units != 0, minlength=n)
    assert not np.any((positions_left == 0) & (res.book.cash < 0))


@pytest.mark.parametrize("order", ORDERS)
def test_money_conserved(order):
    aligned, book, params = _case(11, order, n=500)
    _assert_conserved(book, simulate_portfolio(aligned, book, params))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), order=st.sampled_from(ORDERS),
       n=st.integers(1, 120), steps=st.integers(1, 40),
       crash=st.floats(0.02, 1.2), fund=st.sampled_from([0.0, 50.0, 1e6]))
def test_money_conserved_property(seed, order, n, steps, crash, fund):
    rng = np.random.default_rng(seed)
    aligned = random_aligned(rng, steps, crash=crash)
    params = random_params(rng, order, insurance_fund_usd=fund)
    book = random_book(rng, n, risk=params.asset_risk(aligned.symbols))
    res = simulate_portfolio(aligned, book, params)
    _assert_conserved(book, res)
    s = res.summary()
    assert s["bad_debt_usd"] >= 0 and s["keeper_fees_usd"] >= 0
    assert s["socialised_loss_usd"] <= s["bad_debt_usd"] + 1e-9


def test_book_assets_must_match_the_tapes():
    aligned, book, params = _case(0)
    other = PortfolioBook(("BTC/USDT",), book.kind, book.offsets, book.pos_asset,
                          book.pos_units, book.cash, book.owner)
    with pytest.raises(BookError, match="differ from the aligned tapes"):
        simulate_portfolio(aligned, other, params)


def test_lending_liquidation_by_hand():
    """One lending account, two collaterals, Aave arithmetic worked out by hand."""
    rng = np.random.default_rng(0)
    aligned = random_aligned(rng, 1, n_assets=2)
    aligned.low[0] = [50.0, 30000.0]
    # 100 LUNA (LT .5, bonus .10) and 0.5 BTC (LT .78, bonus .05); debt 14,000
    book = PortfolioBook(aligned.symbols, np.array([0], np.int8), np.array([0, 2]),
                         np.array([0, 1], np.int16), np.array([100.0, 0.5]),
                         np.array([-14000.0]), np.array([0]))
    hf = (100 * 50 * 0.5 + 0.5 * 30000 * 0.78) / 14000  # 1.0143 > 1: healthy
    assert book.health(aligned.low[0], PortfolioParams().asset_risk(aligned.symbols))[0] == \
        pytest.approx(hf)
    aligned.low[0] = [40.0, 30000.0]  # HF = (2000 + 11700) / 14000 = 0.9786 > 0.95: cf 0.5
    res = simulate_portfolio(aligned, book, PortfolioParams(order="protocol"))
    # protocol: LUNA first (bonus 10%): 7,000 to repay needs 7,700 of LUNA > 4,000 held, so all
    # 100 LUNA go and repay 4,000 / 1.1; the rest from BTC at a 5% bonus
    r = res.records.to_dicts()
    assert [x["symbol"] for x in r] == ["LUNA/USDT", "BTC/USDT"]
    assert r[0]["units_closed"] == pytest.approx(100.0)
    assert r[0]["debt_repaid"] == pytest.approx(4000 / 1.1)
    rest = 7000 - 4000 / 1.1
    assert r[1]["units_closed"] == pytest.approx(rest * 1.05 / 30000)
    assert res.book.cash[0] == pytest.approx(-7000.0)
    bonus = 4000 - 4000 / 1.1 + rest * 0.05
    assert r[0]["keeper_fee"] + r[1]["keeper_fee"] == pytest.approx(0.9 * bonus)
    assert r[0]["insurance_fee"] + r[1]["insurance_fee"] == pytest.approx(0.1 * bonus)
    # largest: BTC first (15,000 > 4,000): 7,000 x 1.05 of BTC, LUNA untouched
    res = simulate_portfolio(aligned, book, PortfolioParams(order="largest"))
    (only,) = res.records.to_dicts()
    assert only["symbol"] == "BTC/USDT"
    assert only["units_closed"] == pytest.approx(7000 * 1.05 / 30000)


def test_cross_perp_liquidation_by_hand():
    """Cross margin: close the first position in order just enough to restore maintenance."""
    rng = np.random.default_rng(0)
    aligned = random_aligned(rng, 1, n_assets=2)
    aligned.low[0] = [10.0, 20000.0]
    aligned.high[0] = [10.0, 20000.0]
    # long 100 LUNA (m 10%) and long 1 BTC (m 3%); equity 1,000 + 20,000 + cash
    cash = 1500.0 - 1000.0 - 20000.0
    book = PortfolioBook(aligned.symbols, np.array([1], np.int8), np.array([0, 2]),
                         np.array([0, 1], np.int16), np.array([100.0, 1.0]),
                         np.array([cash]), np.array([0]))
    mm = 0.1 * 1000 + 0.03 * 20000  # 700 < equity 1,500: healthy
    assert mm < 1500
    aligned.low[0] = [10.0, 19300.0]  # equity 800, MM 100 + 579 = 679: healthy
    assert simulate_portfolio(aligned, book).records.height == 0
    aligned.low[0] = [10.0, 19000.0]  # equity 500, MM 670: liquidatable
    res = simulate_portfolio(aligned, book, PortfolioParams(order="least_sensitive"))
    sens = sensitivity_of(aligned)[0]
    first = 0 if sens[0] < sens[1] else 1
    (r,) = res.records.to_dicts()
    m, p = (0.1, 10.0) if first == 0 else (0.03, 19000.0)
    d = (670 - 500) / ((m - 0.015) * p)
    assert r["asset"] == first and r["units_closed"] == pytest.approx(d)
    equity = 500 - 0.015 * d * p
    mm_after = 670 - m * d * p
    assert equity == pytest.approx(mm_after)
    assert r["keeper_fee"] == pytest.approx(0.5 * 0.015 * d * p)


@pytest.mark.parametrize(("debt", "insurance", "bad_debt"), [
    (950.0, 0.0, 950.0 - 1000.0 + 0.9 * 1000.0 * 0.1 / 1.1),  # equity after keeper < 0
    (910.0, 1000.0 - 910.0 - 0.9 * 1000.0 * 0.1 / 1.1, 0.0),  # 0 < equity left < fund fee
    (800.0, 0.1 * 800.0 * 0.1, 0.0),  # solvent: the whole fee, collateral left
])
def test_lending_fund_fee_paid_from_equity_left(debt, insurance, bad_debt):
    """All 100 LUNA (LT .5, bonus 10%) worth 1,000 seized: the keeper gets its 90% of the bonus
    always, the fund its 10% only out of the equity left, as in the single-asset kernel."""
    rng = np.random.default_rng(0)
    aligned = random_aligned(rng, 1, n_assets=1)
    aligned.low[0] = [10.0]
    book = PortfolioBook(aligned.symbols, np.array([0], np.int8), np.array([0, 1]),
                         np.array([0], np.int16), np.array([100.0]), np.array([-debt]),
                         np.array([0]))
    res = simulate_portfolio(aligned, book, PortfolioParams(close_factor=1.0))
    (r,) = res.records.to_dicts()
    seized_value = min(1000.0, debt * 1.1)
    assert r["units_closed"] * r["fill_price"] == pytest.approx(seized_value)
    assert r["keeper_fee"] == pytest.approx(0.9 * seized_value * 0.1 / 1.1)
    assert r["insurance_fee"] == pytest.approx(insurance, abs=1e-9)
    assert res.bad_debt[0] == pytest.approx(bad_debt, abs=1e-9)
    assert r["debt_repaid"] == pytest.approx(seized_value - r["keeper_fee"] - insurance)
