"""Moving books: arrivals, voluntary closes and cures, kernel against twin, money conserved."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest.engine.book_flow import BookFlow, Response, book_flow, no_kernel_flow
from backtest.engine.dispatch import Prices, liquidation_order, market_params, simulate
from backtest.kernels.book_flow_nb import (
    FLOW_FIELDS,
    close_positions_nb,
    cure_amount_nb,
    responder_mask,
    top_up_amount_nb,
)
from backtest.kernels.enums import FillPrice, ImpactModel, PolicyFamily, StepMetric, TriggerPrice
from backtest.kernels.reference import simulate_reference
from backtest.results.socialised import (
    socialised_charges,
    socialised_charges_reference,
    voluntary_closes,
)
from tests.kernel_inputs import (
    random_bands,
    random_book,
    random_policy,
    random_prices,
    random_volume,
)

F = {name: k for k, name in enumerate(FLOW_FIELDS)}


def _flow(rng, book, steps, share=0.6, arriving=0.3, delay=3, max_cures=0, closing=0.0,
          reference=None, top_up=False):
    n = len(book["units"])
    arrival = np.where(rng.random(n) < arriving, rng.integers(0, steps, n), -1)
    equity = book["cash"] + book["units"] * book.get("entry", 1.0)
    close_step = None
    if closing > 0:  # drawn only then: the other cases keep their random streams
        close_step = np.where((rng.random(n) < closing) & (arrival < 0),
                              rng.integers(0, steps, n), -1).astype(np.int64)
    flow = BookFlow(arrival.astype(np.int64), book["units"].copy(), book["cash"].copy(),
                    np.where(arrival >= 0, np.abs(equity), 0.0),
                    responder_mask(np.arange(n, dtype=np.int64), share, 11),
                    Response(share, (1.3, 1.2), (1.8, 1.5), delay, 11, max_cures, reference,
                             top_up),
                    close_step)
    units0 = np.where(arrival >= 0, 0.0, book["units"])
    cash0 = np.where(arrival >= 0, 0.0, book["cash"])
    return units0, cash0, flow


def _case(seed, family=None, n=300, steps=90, market=None, depth=None, chunk=64, **kw):
    rng = np.random.default_rng(seed)
    prices = random_prices(rng, steps, vol=0.02)
    book = random_book(rng, n)
    policy = random_policy(rng, family, slicing=False)
    units0, cash0, flow = _flow(rng, book, steps, **kw)
    volume = random_volume(np.random.default_rng(seed + 1), steps)
    res = simulate(prices, book["product"], units0, cash0, policy, TriggerPrice.EXTREME,
                   FillPrice.TRIGGER, chunk_size=chunk, market=market, depth=depth,
                   volume=volume, flow=flow)
    return prices, book, policy, units0, cash0, flow, volume, res


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("cascade", [False, True])
def test_moving_book_matches_reference(seed, cascade):
    depth = np.full(90, 800.0)
    market = market_params(ImpactModel.SQRT, 0.5, 5.0, cascade) if cascade else None
    closing = 0.3 if seed % 2 else 0.0
    top_up = seed in (1, 2)  # loans cure by adding collateral (with closes too at seed 1)
    prices, book, policy, u0, c0, flow, volume, res = _case(
        seed, market=market, depth=depth if cascade else None, max_cures=seed % 3,
        closing=closing, reference=0.02 if seed >= 3 else None, top_up=top_up)
    ref = simulate_reference(prices.open, prices.high, prices.low, prices.close,
                             TriggerPrice.EXTREME, FillPrice.TRIGGER, policy[0], book["product"],
                             u0, c0, market=market[0] if cascade else None,
                             depth=depth if cascade else None, volume=volume,
                             priority=liquidation_order(book["product"], u0, c0), flow=flow)
    assert res.book_flow[:, F["arrivals"]].sum() > 0 and res.book_flow[:, F["cures"]].sum() > 0
    np.testing.assert_allclose(res.units, ref.units, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(res.cash, ref.cash, rtol=1e-10, atol=1e-8)
    np.testing.assert_array_equal(res.n_liquidations, ref.n_liquidations)
    np.testing.assert_array_equal(res.first_step, ref.first_step)
    np.testing.assert_allclose(res.deposited, ref.deposited, rtol=1e-10, atol=1e-8)
    assert (res.topped_up is not None) == top_up
    if top_up:
        np.testing.assert_allclose(res.topped_up, ref.topped_up, rtol=1e-10, atol=1e-12)
        assert (res.topped_up[book["product"] == 1] > 0).any()
        assert (res.topped_up[book["product"] == 0] == 0).all()  # perps add margin (cash)
    np.testing.assert_allclose(res.book_flow, ref.book_flow, rtol=1e-9, atol=1e-7)
    np.testing.assert_allclose(res.step_metrics, ref.step_metrics, rtol=1e-9, atol=1e-7)
    # voluntary closes: the twin's close steps are those the records imply
    closed_step, _ = voluntary_closes(flow.close_step, np.where(
        flow.arrival_step >= 0, flow.open_units, u0), res.records, res.adl_records)
    np.testing.assert_array_equal(closed_step, ref.closed_step)
    np.testing.assert_array_equal(res.closed_step, ref.closed_step)
    assert (res.book_flow[:, F["closes"]].sum() > 0) == (closing > 0)
    assert res.book_flow[:, F["closes"]].sum() == (ref.closed_step >= 0).sum()


@pytest.mark.parametrize("seed", range(3))
def test_arrivals_open_at_the_simulated_price(seed):
    """With cascade feedback an arrival opens at its entry price times the step's price factor:
    its cash is ``margin - units x entry x f``, so its equity at the simulated price is its
    margin (opening at the historical entry price would hand it the price's departure as an
    instant profit or loss); without cascade (``f`` = 1) the book's cash, bit for bit."""
    depth = np.full(90, 800.0)
    market = market_params(ImpactModel.SQRT, 0.5, 5.0, True)
    _, _, _, _, _, flow, _, res = _case(seed, market=market, depth=depth)
    factor = res.step_metrics[:, StepMetric.PRICE_FACTOR]
    moved = 0
    for t in np.unique(flow.arrival_step[flow.arrival_step >= 0]):
        i = flow.arrival_step == t
        margin = flow.margin[i]
        expected = (margin + (flow.open_cash[i] - margin) * factor[t]).sum()
        opened = (res.book_flow[t, F["arrival_cash_perp"]]
                  + res.book_flow[t, F["arrival_cash_loan"]])
        assert opened == pytest.approx(expected, rel=1e-12, abs=1e-6)
        if abs(factor[t] - 1.0) > 1e-3:
            moved += 1
            assert opened != pytest.approx(flow.open_cash[i].sum(), rel=1e-6)
    assert moved > 0  # some arrivals came while the price was displaced
    plain = _case(seed)[-1]
    for t in np.unique(flow.arrival_step[flow.arrival_step >= 0]):
        i = flow.arrival_step == t
        assert (plain.book_flow[t, F["arrival_cash_perp"]] + plain.book_flow[
            t, F["arrival_cash_loan"]]) == pytest.approx(flow.open_cash[i].sum(), rel=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([1, 7, 64]),
       st.sampled_from([None, int(PolicyFamily.AUCTION)]), st.floats(0.0, 1.0),
       st.integers(0, 6), st.integers(0, 2), st.sampled_from([0.0, 0.3]), st.booleans())
def test_money_is_conserved_with_arrivals_closes_and_cures(seed, chunk, family, share, delay,
                                                           cap, closing, top_up):
    # with top-ups no voluntary closes: the closed units below are derived from the units a
    # position opened with (closes after top-ups are held to the twin in the parity test)
    closing = 0.0 if top_up else closing
    prices, book, policy, u0, c0, flow, volume, res = _case(seed, family, n=120, steps=40,
                                                            chunk=chunk, share=share,
                                                            delay=delay, max_cures=cap,
                                                            closing=closing, top_up=top_up)
    rec, adl = res.records, res.adl_records
    n = len(u0)
    proceeds, fees, written_off, closed, paid = (np.zeros(n) for _ in range(5))
    np.add.at(proceeds, rec["account"], rec["units_closed"] * rec["fill_price"])
    np.add.at(proceeds, adl["account"], adl["units_closed"] * adl["price"])
    np.add.at(fees, rec["account"], rec["keeper_fee"] + rec["insurance_fee"])
    np.add.at(written_off, rec["account"], rec["bad_debt"])
    np.add.at(closed, rec["account"], rec["units_closed"])
    np.add.at(paid, adl["account"], adl["transfer"])
    arrived = flow.arrival_step >= 0
    start_cash = np.where(arrived, flow.open_cash, c0)
    start_units = np.where(arrived, flow.open_units, u0)
    cures = res.deposited - flow.margin  # what cures brought, beyond the arrivals' margin
    # a top-up brings collateral, not cash: a loan that topped up made every cure that way
    topped = np.zeros(n) if res.topped_up is None else res.topped_up
    cure_cash = np.where(topped > 0.0, 0.0, cures)
    # voluntary closes: what was left sold at the observed price (the previous simulated
    # close, the first open at step 0); the equity stays in the account, nothing leaves
    closed_step, closed_units = voluntary_closes(flow.close_step, start_units, rec, adl)
    np.testing.assert_array_equal(res.closed_step, closed_step)  # the kernel's = the records'
    seen = np.r_[prices.open[0], prices.close[:-1] * res.step_metrics[:-1,
                                                                      StepMetric.PRICE_FACTOR]]
    sold = np.sign(start_units) * closed_units
    close_cash = sold * seen[np.maximum(closed_step, 0)]
    scale = np.abs(start_cash) + np.abs(proceeds) + cures + np.abs(close_cash) + 1.0
    # per account: cash change = proceeds - penalties + written off - ADL + new money + sale
    np.testing.assert_allclose((res.cash - start_cash) / scale,
                               (proceeds - fees + written_off - paid - res.funding_paid
                                + cure_cash + close_cash) / scale, atol=1e-9)
    np.testing.assert_allclose(start_units + topped - res.units, closed + sold, atol=1e-9 * (
        1 + np.abs(start_units).max() + topped.max(initial=0.0)))
    assert np.all(res.units[closed_step >= 0] == 0.0)
    assert np.all(np.abs(closed_units) <= np.abs(start_units) * (1 + 1e-12))
    assert np.all(cures >= -1e-9 * scale)
    # step aggregates = per-account totals
    fl = res.book_flow
    total = np.abs(start_cash).sum() + cures.sum() + 1.0
    assert abs(fl[:, F["cure_perp_usd"]].sum() + fl[:, F["cure_loan_usd"]].sum()
               - cures.sum()) <= 1e-9 * total
    is_loan = book["product"] == 1
    assert abs(fl[:, F["cure_cash_loan"]].sum() - cure_cash[is_loan].sum()) <= 1e-9 * total
    assert abs(fl[:, F["cure_units_loan"]].sum() - topped.sum()) <= 1e-9 * (1 + topped.sum())
    assert abs(fl[:, F["arrival_margin_usd"]].sum() - flow.margin.sum()) <= 1e-9 * total
    assert fl[:, F["arrivals"]].sum() == arrived.sum()
    assert abs(fl[:, F["arrival_cash_perp"]].sum() + fl[:, F["arrival_cash_loan"]].sum()
               - flow.open_cash[arrived].sum()) <= 1e-9 * total
    assert fl[:, F["closes"]].sum() == (closed_step >= 0).sum()
    assert abs(fl[:, F["close_cash_perp"]].sum() + fl[:, F["close_cash_loan"]].sum()
               - close_cash.sum()) <= 1e-9 * (total + np.abs(close_cash).sum())
    assert abs(fl[:, F["closed_notional_usd"]].sum() - np.abs(close_cash).sum()) <= 1e-9 * (
        total + np.abs(close_cash).sum())
    assert abs(fl[:, F["close_units_long"]].sum() + fl[:, F["close_units_short"]].sum()
               + fl[:, F["close_units_loan"]].sum() - sold.sum()) <= 1e-9 * (
        1 + np.abs(start_units).sum())
    # nothing is liquidated before it arrives
    steps = rec["step"]
    assert np.all(flow.arrival_step[rec["account"]] <= steps)
    # the socialised loss is charged only to positions open at the step (arrivals included
    # from their arrival step on): closed form = plain loop, and charged + outside = total
    charges = socialised_charges(res.step_metrics, book["product"], start_units,
                                 flow.arrival_step, rec, adl, flow.close_step)
    ref = socialised_charges_reference(res.step_metrics, book["product"], start_units,
                                       flow.arrival_step, rec, adl, flow.close_step)
    social = res.step_metrics[:, StepMetric.SOCIALISED_LOSS]
    np.testing.assert_allclose(charges.per_account, ref.per_account,
                               atol=1e-9 * (1.0 + social.sum()))
    np.testing.assert_allclose(charges.charged + charges.outside, social,
                               atol=1e-9 * (1.0 + social.sum()))
    assert abs(charges.per_account.sum() - charges.charged.sum()) <= 1e-9 * (1.0 + social.sum())


def test_cure_restores_target_health():
    # a long perp: 1 unit, cash -95 at price 100, m = 0.05: equity 5, health 1.0
    need = cure_amount_nb(0, 1.0, -95.0, 100.0, 0.05, 1.5)
    assert need == pytest.approx(1.5 * 0.05 * 100.0 - 5.0)
    # a loan: 1 unit of collateral at 100, debt 80, LT 0.825: health 1.03; to 1.2 repay
    need = cure_amount_nb(1, 1.0, -80.0, 100.0, 0.175, 1.2)
    assert need == pytest.approx(80.0 - 0.825 * 100.0 / 1.2)
    assert cure_amount_nb(1, 1.0, -80.0, 100.0, 0.175, 0.5) == 0.0  # already above target
    # the same loan tops up instead: collateral worth 1.2 x 80 / 0.825 = 116.36 to hold
    add = top_up_amount_nb(1.0, -80.0, 100.0, 0.175, 1.2)
    assert add == pytest.approx(1.2 * 80.0 / 0.825 - 100.0)
    assert 0.825 * (1.0 + add / 100.0) * 100.0 / 80.0 == pytest.approx(1.2)
    assert add > cure_amount_nb(1, 1.0, -80.0, 100.0, 0.175, 1.2)  # more money, same health
    assert top_up_amount_nb(1.0, -80.0, 100.0, 0.175, 0.5) == 0.0
    assert top_up_amount_nb(1.0, 10.0, 100.0, 0.175, 1.2) == 0.0  # no debt


def test_responses_reduce_liquidations_and_arrivals_liquidate_after_the_low():
    # a crash to 60% over 20 steps then a flat tail: longs opened on the way down
    steps = 80
    path = np.concatenate([np.linspace(100, 60, 41), np.full(steps - 41, 60.0)])
    prices = Prices(path, path * 1.001, np.r_[path[:41], path[41:] * 0.97], path)
    n = 2000
    rng = np.random.default_rng(3)
    lev = rng.uniform(2, 20, n)
    units = np.ones(n)
    product = np.zeros(n, np.int8)
    policy = random_policy(np.random.default_rng(0), slicing=False)
    policy["family"] = PolicyFamily.HARD
    policy["maintenance_rate"][0] = 0.05
    arrival = np.where(np.arange(n) < n // 2, -1, rng.integers(1, 60, n))
    entry = np.where(arrival >= 0, path[arrival.clip(0)], 100.0)
    cash = entry / lev - entry
    flows = {}
    for share in (0.0, 0.8):
        flow = BookFlow(arrival.astype(np.int64), units, cash, np.where(arrival >= 0, entry / lev,
                                                                        0.0),
                        responder_mask(np.arange(n, dtype=np.int64), share, 1),
                        Response(share, (1.5, 1.5), (3.0, 3.0), 1, 1))
        u0 = np.where(arrival >= 0, 0.0, units)
        c0 = np.where(arrival >= 0, 0.0, cash)
        flows[share] = simulate(prices, product, u0, c0, policy, TriggerPrice.EXTREME,
                                FillPrice.TRIGGER, flow=flow)
    none, cured = flows[0.0], flows[0.8]
    assert cured.n_liquidations.sum() < 0.8 * none.n_liquidations.sum()
    assert none.book_flow[:, F["cures"]].sum() == 0
    # arrivals that opened near the low are liquidated by the tail's dip, after the low
    late = none.records["step"] > 41
    assert late.sum() > 0


def test_perp_levels_stated_at_a_reference_rate_keep_their_equity_under_any_rate():
    """A response fitted under one maintenance rate cures to the same equity under another."""
    steps = 60
    path = np.concatenate([np.linspace(100, 97, 31), np.full(steps - 31, 97.0)])
    prices = Prices(path, path, path, path)
    n = 50
    units = np.ones(n)
    cash = np.linspace(-90.0, -93.0, n)  # equity 7-10% of notional: 10-14x
    product = np.zeros(n, np.int8)
    deposited = {}
    for reference in (0.004, None):
        for rate in (0.004, 0.008):
            policy = random_policy(np.random.default_rng(0), slicing=False)
            policy["family"] = PolicyFamily.HARD
            policy["maintenance_rate"][0] = rate
            # at the reference rate 0.004: warned below 8% equity, cured back to 12%
            flow = BookFlow(np.full(n, -1, np.int64), units, cash, np.zeros(n), np.ones(n, bool),
                            Response(1.0, (20.0, 1.5), (30.0, 3.0), 0, 1, 0, reference))
            res = simulate(prices, product, units, cash, policy, TriggerPrice.EXTREME,
                           FillPrice.TRIGGER, flow=flow)
            assert res.n_liquidations.sum() == 0
            deposited[reference, rate] = res.deposited
    assert deposited[0.004, 0.004].sum() > 0
    np.testing.assert_allclose(deposited[0.004, 0.008], deposited[0.004, 0.004], rtol=1e-12)
    # levels in each policy's own health: the higher rate makes the same traders add far more
    assert deposited[None, 0.008].sum() > 1.5 * deposited[None, 0.004].sum()


def test_book_flow_splits_arrivals_from_the_window():
    window = np.arange(5, dtype=np.int64) * 60_000
    entry = np.array([-10, 0, 59_999, 240_000])
    units0, cash0, flow = book_flow(np.arange(4), np.ones(4), -np.ones(4) * 50, np.full(4, 5.0),
                                    entry, window, None)
    np.testing.assert_array_equal(flow.arrival_step, [-1, 0, 1, 4])
    np.testing.assert_array_equal(units0, [1, 0, 0, 0])
    np.testing.assert_array_equal(flow.margin, [0, 5, 5, 5])
    with pytest.raises(ValueError, match="account 3 opens after"):
        book_flow(np.arange(4), np.ones(4), np.ones(4), np.ones(4), entry, window[:4], None)


def test_responders_are_a_seeded_share():
    ids = np.arange(100_000, dtype=np.int64)
    mask = responder_mask(ids, 0.7, 5)
    assert abs(mask.mean() - 0.7) < 0.01
    np.testing.assert_array_equal(mask, responder_mask(ids, 0.7, 5))
    assert (mask != responder_mask(ids, 0.7, 6)).any()
    assert not responder_mask(ids, 0.0, 5).any() and responder_mask(ids, 1.0, 5).all()


def test_spare_capital_limits_cures():
    prices, book, policy, u0, c0, flow, volume, unlimited = _case(9, n=300, steps=90, share=1.0,
                                                                  delay=0)
    _, _, _, _, _, _, _, once = _case(9, n=300, steps=90, share=1.0, delay=0, max_cures=1)
    assert unlimited.book_flow[:, F["cures"]].sum() > once.book_flow[:, F["cures"]].sum() > 0
    # each account cures at most once: no more cures than accounts that brought new money
    cured = (once.deposited - flow.margin) > 0
    assert once.book_flow[:, F["cures"]].sum() == cured.sum()
    assert (unlimited.book_flow[:, F["cures"]].sum()
            > ((unlimited.deposited - flow.margin) > 0).sum())


@pytest.mark.parametrize("top_up", [False, True])
def test_running_totals_hold_the_book_as_it_is_after_cures(top_up):
    """The per-step totals (``steps``: loan debt and collateral, user equity) end where the
    accounts end: a repayment lowers the debt, a top-up adds collateral and leaves the debt."""
    from backtest.results.running_totals import running_totals

    prices, book, policy, u0, c0, flow, volume, res = _case(4, n=400, steps=90, share=1.0, delay=0,
                                                            top_up=top_up)
    assert res.book_flow[:, F["cures"]].sum() > 0
    totals = running_totals(res.step_metrics, prices.close, book["product"], u0, c0,
                            res.book_flow)
    loan = book["product"] == 1
    last = float(prices.close[-1] * res.step_metrics[-1, StepMetric.PRICE_FACTOR])
    assert totals["loan_debt_usd"][-1] == pytest.approx(np.maximum(-res.cash[loan], 0).sum())
    assert totals["loan_collateral_usd"][-1] == pytest.approx(res.units[loan].sum() * last)


@pytest.mark.parametrize("top_up", [False, True])
def test_new_money_is_not_counted_as_a_gain_over_holding(top_up):
    """A cure's deposit is in both worlds: a cured, never-liquidated account loses 0 to
    liquidation; a top-up is held as the collateral it bought (``cure_units``), not as cash."""
    from backtest.results.tables import accounts_table

    prices, book, policy, u0, c0, flow, volume, res = _case(4, n=400, steps=90, share=1.0, delay=0,
                                                            top_up=top_up)
    last = float(prices.close[-1])
    accounts = accounts_table("r", "p", res, np.arange(400), book, float(prices.open[0]), last,
                              last, flow)
    cured = accounts.filter((accounts["cure_usd"] > 0) & (accounts["liquidations"] == 0)
                            & (accounts["socialised_loss_usd"] == 0)
                            & (accounts["hold_equity_usd"] > 0))
    assert len(cured) > 0
    loss = cured["hold_equity_usd"] - cured["final_equity_usd"]
    np.testing.assert_allclose(loss.to_numpy(), 0.0, atol=1e-6 * cured["cure_usd"].max())
    topped = cured.filter(cured["product"] == "loan")
    assert len(topped) > 0
    assert ((topped["cure_units"] > 0).all() if top_up else (cured["cure_units"] == 0).all())


@pytest.mark.parametrize("closing", [0.0, 0.3])
@pytest.mark.parametrize("seed", range(4))
def test_moving_book_is_the_same_in_blocks_of_any_size_and_any_thread_count(seed, closing):
    # the kernel moves the book itself at each step start: a run in blocks of 64 steps, one
    # restarted after every record-buffer flush (chunks of 1 account: a buffer of 4 records)
    # and after each auto-deleveraging, and one on a single thread all give the same bits;
    # with voluntary closes too (closing > 0), each closed once, at its step
    import numba

    from backtest.kernels.enums import Waterfall

    depth = np.full(90, 800.0)
    market = market_params(ImpactModel.SQRT, 0.5, 5.0, True, keeper_latency_steps=seed % 2)
    rng = np.random.default_rng(seed)
    prices = random_prices(rng, 90, vol=0.02)
    book = random_book(rng, 200)
    policy = random_policy(rng, seed % 3)
    policy["waterfall"] = Waterfall.ADL if seed % 2 else Waterfall.SOCIALISE
    units0, cash0, flow = _flow(rng, book, 90, max_cures=seed % 3, closing=closing)
    funding = np.where(rng.random(90) < 0.3, rng.normal(0, 1e-3, 90), np.nan)

    def run(block_steps, chunk):
        return simulate(prices, book["product"], units0, cash0, policy, TriggerPrice.EXTREME,
                        FillPrice.TRIGGER, chunk_size=chunk, block_steps=block_steps,
                        market=market, depth=depth, flow=flow, funding_rate=funding)

    base = run(1, 16)
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        single = run(64, 16)
    finally:
        numba.set_num_threads(threads)
    assert base.book_flow[:, F["arrivals"]].sum() > 0 and base.book_flow[:, F["cures"]].sum() > 0
    assert len(base.records) > 0
    assert (base.book_flow[:, F["closes"]].sum() > 0) == (closing > 0)
    assert base.book_flow[:, F["closes"]].sum() == (base.closed_step >= 0).sum()
    for other in (run(64, 16), single):
        for name in ("units", "cash", "n_liquidations", "first_step", "deposited", "book_flow",
                     "step_metrics", "funding_paid", "closed_step"):
            np.testing.assert_array_equal(getattr(other, name), getattr(base, name), name)
        np.testing.assert_array_equal(other.records, base.records)
        np.testing.assert_array_equal(other.adl_records, base.adl_records)
    # chunking changes the processing of sums only, never who moves when
    flushed = run(64, 1)
    np.testing.assert_array_equal(flushed.book_flow[:, F["arrivals"]],
                                  base.book_flow[:, F["arrivals"]])
    np.testing.assert_allclose(flushed.deposited, base.deposited, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(flushed.n_liquidations, base.n_liquidations)
    np.testing.assert_array_equal(flushed.closed_step, base.closed_step)


def test_close_positions_keeps_equity_and_skips_liquidated_accounts():
    # a long, a short, a loan and a long already liquidated to nothing, all closing at step 2
    product = np.array([0, 0, 1, 0], np.int8)
    units = np.array([2.0, -3.0, 1.5, 0.0])
    cash = np.array([-150.0, 400.0, -60.0, 7.0])
    key = np.zeros(4)
    flow = no_kernel_flow(4, 4)._replace(
        close_ptr=np.array([0, 0, 0, 4, 4], np.int64), close_idx=np.array([3, 0, 1, 2], np.int64),
        touched=np.full(5, -1, np.int64))
    out = flow.steps[2]
    price = 90.0
    equity = cash + units * price
    n_touched = close_positions_nb(2, price, flow, product, units, cash, key,
                                   np.array([0.05, 0.175]), 1)
    np.testing.assert_array_equal(units, 0.0)
    np.testing.assert_allclose(cash, equity)  # the equity stays in the account
    np.testing.assert_array_equal(flow.closed_step, [2, 2, 2, -1])
    assert n_touched == 4  # the three closes listed after the one entry already used
    np.testing.assert_array_equal(flow.touched, [-1, 0, 1, 2, -1])
    assert out[F["closes"]] == 3
    assert out[F["close_units_long"]] == 2.0 and out[F["close_units_short"]] == -3.0
    assert out[F["close_units_loan"]] == 1.5
    assert out[F["close_cash_perp"]] == pytest.approx((2.0 - 3.0) * price)
    assert out[F["close_cash_loan"]] == pytest.approx(1.5 * price)
    assert out[F["closed_notional_usd"]] == pytest.approx(6.5 * price)
    assert out[:F["closes"]].sum() == 0.0  # no arrival or cure fields touched
    assert flow.steps[[0, 1, 3]].sum() == 0.0  # only the close step's row


def test_book_flow_maps_exit_times_to_close_steps():
    window = np.arange(5, dtype=np.int64) * 60_000
    entry = np.array([-10, -10, -10, 60_000])
    exits = np.array([0, 59_999, -1, -1])
    _, _, flow = book_flow(np.arange(4), np.ones(4), -np.ones(4) * 50, np.full(4, 5.0),
                           entry, window, None, exits)
    np.testing.assert_array_equal(flow.close_step, [0, 1, -1, -1])
    assert flow.active
    _, _, held = book_flow(np.arange(3), np.ones(3), -np.ones(3), np.ones(3),
                           np.full(3, -10), window, None)
    assert held.close_step is None and not held.active
    with pytest.raises(ValueError, match="account 1 closes outside"):
        book_flow(np.arange(2), np.ones(2), np.ones(2), np.ones(2), np.full(2, -10), window,
                  None, np.array([-1, 300_000]))
    with pytest.raises(ValueError, match="account 0 opens in the window and cannot close"):
        book_flow(np.arange(1), np.ones(1), np.ones(1), np.ones(1), np.array([60_000]),
                  window, None, np.array([120_000]))


def test_exit_time_is_an_optional_checked_column(tmp_path):
    import polars as pl

    from backtest.books.schema import Book, read_book, validate_book, write_book
    from backtest.errors import BookError

    t0 = 1_600_000_000_000
    frame = pl.DataFrame({
        "account_id": [1, 2], "product": ["perp", "perp"], "side": [1, -1],
        "size": [1.0, 2.0], "entry_price": [100.0, 100.0], "leverage": [5.0, 5.0],
        "entry_time": pl.Series([t0, t0]).cast(pl.Datetime("ms", "UTC")),
        "exit_time": pl.Series([t0 + 60_000, None]).cast(pl.Datetime("ms", "UTC")),
    })
    book = Book(validate_book(frame), {})
    back = read_book(write_book(book, tmp_path / "b.parquet"))
    assert back.frame["exit_time"].null_count() == 1 and back.frame.equals(book.frame)
    assert "exit_time" not in validate_book(frame.drop("exit_time")).columns
    early = frame.with_columns(pl.col("entry_time").alias("exit_time"))
    with pytest.raises(BookError, match="row 0 .*exit_time must be after entry_time"):
        validate_book(early)


@pytest.mark.parametrize("arriving, closing, top_up", [(0.3, 0.0, False), (0.0, 0.3, False),
                                                      (0.0, 0.0, True)])
def test_soft_bands_refuse_a_book_that_moves(arriving, closing, top_up):
    """Bands are placed at the window start: arrivals, closes and collateral top-ups (which
    would add collateral outside the bands) are refused; repayments are not."""
    rng = np.random.default_rng(2)
    prices = random_prices(rng, 40, vol=0.02)
    book = random_book(rng, 100)
    policy = random_policy(rng, slicing=False)
    random_bands(rng, policy)
    units0, cash0, flow = _flow(rng, book, 40, arriving=arriving, closing=closing, top_up=top_up)
    with pytest.raises(ValueError, match="not modelled with soft-liquidation bands"):
        simulate(prices, book["product"], units0, cash0, policy, TriggerPrice.EXTREME,
                 FillPrice.TRIGGER, flow=flow)
    if top_up:  # the same responders repaying run: nothing is topped up
        _, _, repay = _flow(np.random.default_rng(2), book, 40, arriving=0.0)
        res = simulate(prices, book["product"], units0, cash0, policy, TriggerPrice.EXTREME,
                       FillPrice.TRIGGER, flow=repay)
        assert res.topped_up is None and len(res.units) == len(units0)
