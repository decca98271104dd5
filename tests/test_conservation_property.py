"""Money conservation as a property: random books, tapes, policies, markets, oracles, keepers.

Every dollar that leaves an account goes to a keeper, the insurance fund, the market (the sale
proceeds at the execution price, which is below the decision price by the impact cost), or a
bankrupt account's shortfall (auto-deleveraging); every dollar of debt written off is bad debt,
covered by the fund, deleveraged traders or socialised loss (or, with a surplus buffer, queued
until later penalty income heals it or the window's end flops it), and the socialised loss is
charged to the book's perp positions or borne outside the book. Rational auction keepers never
take at a loss beyond their margin. Checked per account, per step and in total, to 1e-9.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest.engine.dispatch import liquidation_order, market_params, simulate
from backtest.kernels.enums import (
    BAND_FIELDS,
    AdlRanking,
    FillPrice,
    ImpactModel,
    OracleModel,
    StepMetric,
    TriggerPrice,
    Waterfall,
)
from backtest.kernels.reference import simulate_reference
from backtest.results.socialised import socialised_charges
from tests.kernel_inputs import (
    random_auction,
    random_bands,
    random_book,
    random_mark,
    random_policy,
    random_prices,
    random_risk_rules,
)

scenarios = st.fixed_dictionaries({
    "seed": st.integers(0, 2**31 - 1),
    "n": st.integers(1, 300),
    "steps": st.integers(2, 80),
    "vol": st.floats(0.001, 0.05),
    "trigger": st.sampled_from(list(TriggerPrice)),
    "fill": st.sampled_from(list(FillPrice)),
    "impact": st.sampled_from(list(ImpactModel)),
    "cascade": st.booleans(),
    "oracle": st.sampled_from(list(OracleModel)),
    "latency": st.integers(0, 4),
    "profit": st.booleans(),
    "chunk": st.sampled_from([1, 7, 64, 4096]),
    "waterfall": st.sampled_from(list(Waterfall)),
    "ranking": st.sampled_from(list(AdlRanking)),
    "fund": st.sampled_from([0.0, 10.0, 1e6]),
    "funding": st.booleans(),
    "capital": st.sampled_from([0.0, 20.0, 500.0]),
    "risk_rules": st.booleans(),
    "family": st.sampled_from(["random", "auction", "bands"]),
    "baseline": st.booleans(),  # counterfactual impact against a random as-happened flow
})


# derandomized: the examples are the same in every run, so a red CI names a change, not a
# draw (a known failing case found by random search is pinned below)
@settings(max_examples=150, deadline=None, derandomize=True)
@given(scenarios)
def test_money_is_conserved_everywhere(sc):
    _check_money(sc)


#: Found by random search: keepers' capital ($20 a step) cuts a step's short closes (buys) and
#: leaves a rational keeper's take, so the budgeted flow sells more on net and executes below
#: the factor the take was approved at (0.99915 of the market); the take once booked a fee 5%
#: below the keeper's margin ($0.2131 against $0.2238). The step kernel now re-checks budgeted
#: takes at the budgeted flow's execution factor (``run_steps_nb``).
CAPITAL_CUT_TAKE = {
    "seed": 60, "n": 60, "steps": 60, "vol": 0.0078125, "trigger": TriggerPrice.EXTREME,
    "fill": FillPrice.TRIGGER, "impact": ImpactModel.SQRT, "cascade": False,
    "oracle": OracleModel.MARKET, "latency": 0, "profit": False, "chunk": 1,
    "waterfall": Waterfall.SOCIALISE, "ranking": AdlRanking.BINANCE, "fund": 0.0,
    "funding": False, "capital": 20.0, "risk_rules": False, "family": "auction",
    "baseline": False}


def test_a_capital_cut_auction_take_keeps_the_keepers_margin():
    _check_money(CAPITAL_CUT_TAKE)


def test_the_capital_cut_take_matches_the_twin_at_any_chunk_size():
    """The re-check of budgeted takes: the reference twin (written apart) refuses the same
    takes, and the refusals do not depend on the chunk size."""
    runs = {chunk: _simulate({**CAPITAL_CUT_TAKE, "chunk": chunk}) for chunk in (1, 7, 64)}
    inputs, res = runs[1]
    prices, book, policy, market = inputs["prices"], inputs["book"], inputs["policy"], \
        inputs["market"]
    ref = simulate_reference(prices.open, prices.high, prices.low, prices.close,
                             CAPITAL_CUT_TAKE["trigger"], CAPITAL_CUT_TAKE["fill"], policy[0],
                             book["product"], book["units"], book["cash"], market=market[0],
                             depth=inputs["depth"], gas_usd=inputs["gas"],
                             funding_rate=inputs["funding"], volume=inputs["volume"],
                             priority=liquidation_order(book["product"], book["units"],
                                                        book["cash"]),
                             mark=inputs["mark"])
    assert len(res.records) == len(ref.records) > 0
    got = np.sort(res.records, order=["step", "account"])
    want = sorted(ref.records, key=lambda r: (r["step"], r["account"]))
    np.testing.assert_array_equal(got["account"], [r["account"] for r in want])
    np.testing.assert_allclose(got["units_closed"], [r["units_closed"] for r in want],
                               rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(res.cash, ref.cash, rtol=1e-10, atol=1e-8)
    np.testing.assert_allclose(res.step_metrics, ref.step_metrics, rtol=1e-9, atol=1e-7)
    for chunk in (7, 64):
        other = runs[chunk][1]
        np.testing.assert_array_equal(other.records["account"], res.records["account"])
        np.testing.assert_allclose(other.cash, res.cash, rtol=1e-10, atol=1e-8)
    # the capital bound the step where the take was refused: the take is not in the records
    sm = res.step_metrics
    assert sm[35, StepMetric.SLICE_FACTOR] < 1.0
    assert not np.any((res.records["step"] == 35) & res.records["auction"])


def _simulate(sc):
    """Draw a scenario's inputs and simulate them: ``(inputs, result)``."""
    rng = np.random.default_rng(sc["seed"])
    prices = random_prices(rng, sc["steps"], vol=sc["vol"])
    book = random_book(rng, sc["n"])
    policy = random_policy(rng, slicing=True)
    policy["waterfall"], policy["adl_ranking"] = sc["waterfall"], sc["ranking"]
    risk = random_risk_rules(rng, policy, sc["steps"]) if sc["risk_rules"] else None
    if sc["family"] == "auction":
        random_auction(rng, policy)
    elif sc["family"] == "bands":
        random_bands(rng, policy)
    market = market_params(sc["impact"], float(rng.uniform(0, 1)), float(rng.uniform(1, 30)),
                           sc["cascade"], sc["oracle"], int(rng.integers(1, 5)),
                           int(rng.integers(1, 5)), float(rng.uniform(0.001, 0.05)),
                           int(rng.integers(1, 10)), sc["latency"], sc["profit"], sc["seed"],
                           sc["capital"])
    depth = rng.uniform(10.0, 5000.0, sc["steps"])
    gas = rng.uniform(0.0, 2.0, sc["steps"])
    funding = np.full(sc["steps"], np.nan)
    if sc["funding"]:
        funding[::3] = rng.normal(0.0, 0.002, len(funding[::3]))
    volume = rng.uniform(1.0, 50.0, sc["steps"])
    mark = random_mark(rng, prices)
    baseline = rng.normal(0.0, 300.0, sc["steps"]) if sc["baseline"] else None
    res = simulate(prices, book["product"], book["units"], book["cash"], policy, sc["trigger"],
                   sc["fill"], chunk_size=sc["chunk"], block_steps=5, market=market,
                   depth=depth, gas_usd=gas, insurance_fund_usd=sc["fund"],
                   funding_rate=funding, volume=volume, risk=risk, mark=mark,
                   impact_baseline=baseline)
    return {"prices": prices, "book": book, "policy": policy, "market": market, "depth": depth,
            "gas": gas, "funding": funding, "volume": volume, "mark": mark}, res


def _check_money(sc):
    inputs, res = _simulate(sc)
    book, policy, gas = inputs["book"], inputs["policy"], inputs["gas"]
    rec, adl = res.records, res.adl_records
    n = sc["n"]
    proceeds, fees, written_off, closed, paid = (np.zeros(n) for _ in range(5))
    np.add.at(proceeds, rec["account"], rec["units_closed"] * rec["fill_price"])
    np.add.at(proceeds, adl["account"], adl["units_closed"] * adl["price"])
    np.add.at(fees, rec["account"], rec["keeper_fee"] + rec["insurance_fee"])
    np.add.at(written_off, rec["account"], rec["bad_debt"])
    np.add.at(closed, rec["account"], rec["units_closed"])
    np.add.at(closed, adl["account"], adl["units_closed"])
    np.add.at(paid, adl["account"], adl["transfer"])
    if len(res.bands):  # soft-liquidation bands' trades: no records, running totals instead
        proceeds += res.bands[:, BAND_FIELDS.index("soft_proceeds")]
        closed += res.bands[:, BAND_FIELDS.index("soft_units")]
    scale = np.abs(book["cash"]) + np.abs(proceeds) + 1.0
    # per account: cash change = proceeds at the execution price - penalties + debt written off
    # - what auto-deleveraging made it pay (+ what soft-liquidation bands received)
    np.testing.assert_allclose((res.cash - book["cash"]) / scale,
                               (proceeds - fees + written_off - paid - res.funding_paid) / scale,
                               atol=1e-9)
    np.testing.assert_allclose(book["units"] - res.units, closed,
                               atol=1e-9 * (1 + np.abs(book["units"]).max()))
    # totals: step aggregates = records
    sm = res.step_metrics
    total = abs(proceeds).sum() + fees.sum() + 1.0
    assert abs(sm[:, StepMetric.KEEPER_FEES].sum() + sm[:, StepMetric.INSURANCE_FEES].sum()
               - fees.sum()) <= 1e-9 * total
    assert abs(sm[:, StepMetric.BAD_DEBT].sum() - written_off.sum()) <= 1e-9 * total
    cash_delta = sm[:, StepMetric.CASH_DELTA_PERP].sum() + sm[:, StepMetric.CASH_DELTA_LOAN].sum()
    funding_total = sm[:, StepMetric.FUNDING_PAID].sum()
    assert abs(funding_total - res.funding_paid.sum()) <= 1e-9 * total
    assert abs(cash_delta - funding_total - (res.cash - book["cash"]).sum()) <= 1e-9 * total
    # the waterfall: every dollar of bad debt is drawn from the fund, paid by deleveraged
    # traders, socialised, or (surplus buffer) queued; the fund is initial + fees - draws and
    # never negative (with Dutch auctions the protocol also pays keeper incentives, the same way)
    queued = sm[:, StepMetric.DEBT_QUEUED]
    queue_change = np.diff(queued, prepend=0.0)
    covered = (sm[:, StepMetric.INSURANCE_DRAW] + sm[:, StepMetric.ADL_TRANSFER]
               + sm[:, StepMetric.SOCIALISED_LOSS] + queue_change)
    owed = sm[:, StepMetric.BAD_DEBT] + sm[:, StepMetric.AUCTION_INCENTIVES]
    np.testing.assert_allclose(covered, owed, rtol=1e-9, atol=1e-9 * (1.0 + owed.sum()))
    healed = sm[:, StepMetric.DEBT_HEALED]
    if sc["waterfall"] == Waterfall.SURPLUS_BUFFER:
        # queued debt is healed by later surplus or flopped at the end: in total, what the
        # fund paid + socialised = bad debt + incentives, and nothing stays queued
        assert np.all(queued >= -1e-9) and queued[-1] == 0.0
        assert np.all(healed >= 0.0)
        assert np.all(healed <= np.concatenate(([0.0], queued[:-1])) + 1e-9)
        assert np.all(healed <= sm[:, StepMetric.INSURANCE_DRAW] + 1e-9)
        assert np.all(sm[:-1, StepMetric.SOCIALISED_LOSS] == 0.0)  # never socialised at once
        assert abs(sm[:, StepMetric.INSURANCE_DRAW].sum() + sm[:, StepMetric.SOCIALISED_LOSS]
                   .sum() - owed.sum()) <= 1e-9 * (1.0 + owed.sum())
        assert len(adl) == 0
    else:
        assert np.all(queued == 0.0) and np.all(healed == 0.0)
    fund = sc["fund"] + np.cumsum(sm[:, StepMetric.INSURANCE_FEES]
                                  - sm[:, StepMetric.INSURANCE_DRAW])
    np.testing.assert_allclose(sm[:, StepMetric.INSURANCE_FUND], fund, rtol=1e-9, atol=1e-6)
    assert np.all(sm[:, StepMetric.INSURANCE_FUND] >= -1e-9)
    if sc["waterfall"] == Waterfall.SOCIALISE:
        assert len(adl) == 0
    # the socialised loss is charged to someone: per account (perp positions open at the step,
    # pro rata to size) or outside the book (lenders, stakers, the venue); the accounts'
    # charges sum to the charged part and the two parts to the step's socialised loss
    charges = socialised_charges(sm, book["product"], book["units"], np.full(n, -1),
                                 rec, adl)
    social = sm[:, StepMetric.SOCIALISED_LOSS]
    np.testing.assert_allclose(charges.charged + charges.outside, social,
                               atol=1e-9 * (1.0 + social.sum()))
    assert abs(charges.per_account.sum() - charges.charged.sum()) <= 1e-9 * (1.0 + social.sum())
    assert np.all(charges.per_account >= 0.0)
    assert np.all(charges.per_account[book["product"] != 0] == 0.0)  # borrowers pay nothing
    # impact cost = what decision-price sales would have raised minus what they did
    decided = (rec["units_closed"] * (rec["decision_price"] - rec["fill_price"])).sum()
    # (bands trade at the step's oracle price times its execution factor)
    decided += ((sm[:, StepMetric.SOFT_SOLD_UNITS] - sm[:, StepMetric.SOFT_BOUGHT_UNITS])
                * sm[:, StepMetric.ORACLE_PRICE] * (1 - sm[:, StepMetric.EXECUTION_FACTOR])).sum()
    if len(res.bands):  # every dollar a band trade loses goes to the arbitrageur
        soft_loss = res.bands[:, BAND_FIELDS.index("soft_loss")]
        assert abs(sm[:, StepMetric.SOFT_LOSS].sum() - soft_loss.sum()) <= 1e-9 * total
        assert np.all(soft_loss >= -1e-9 * total)  # arbitrageurs never trade at a loss
        assert abs(sm[:, StepMetric.SOFT_PROCEEDS].sum()
                   - res.bands[:, BAND_FIELDS.index("soft_proceeds")].sum()) <= 1e-9 * total
    assert abs(sm[:, StepMetric.IMPACT_COST].sum() - decided) <= 1e-9 * total
    # nothing is paid that was not earned, and no position flips side
    # (a keeper's take in an auction can lose to impact: its fee is market - auction price;
    # rational keepers' takes never lose more than their margin allows, gas included when
    # they require profit)
    assert np.all(rec["keeper_fee"][~rec["auction"]] >= 0)
    if sc["family"] == "auction" and policy[0]["auction_keeper_rational"]:
        takes = rec[rec["auction"]]
        net = takes["keeper_fee"] - (gas[takes["step"]] if sc["profit"] else 0.0)
        least = policy[0]["auction_keeper_margin"] * takes["units_closed"] * takes["decision_price"]
        assert np.all(net >= least - 1e-9 * (1.0 + np.abs(least)))
    assert np.all(rec["insurance_fee"] >= -1e-12)
    assert np.all(np.sign(res.units) * np.sign(book["units"]) >= 0)
