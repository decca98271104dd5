"""The numba kernel against its plain-Python reference twin, and its invariants."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from backtest.engine.dispatch import Prices, liquidation_order, market_params, simulate
from backtest.kernels.enums import (
    AdlRanking,
    FillPrice,
    ImpactModel,
    OracleModel,
    PolicyFamily,
    StepMetric,
    TriggerPrice,
    Waterfall,
)
from backtest.kernels.reference import simulate_reference
from tests.kernel_inputs import (
    assert_accounts_conserve_money,
    random_auction,
    random_bands,
    random_book,
    random_mark,
    random_policy,
    random_prices,
    random_risk_rules,
    random_volume,
)

MODES = [(t, f) for t in TriggerPrice for f in FillPrice]


def _run(seed, trigger, fill, n=400, steps=120, family=None, chunk_size=64, market=None,
         depth=None, gas_usd=None, slicing=True, risk_rules=False, calls=1):
    rng = np.random.default_rng(seed)
    prices = random_prices(rng, steps)
    book = random_book(rng, n)
    policy = random_policy(rng, family, slicing=slicing)
    policy["max_calls_per_step"] = calls
    prices.volume = random_volume(np.random.default_rng(seed + 1), steps)
    prices.risk = random_risk_rules(rng, policy, steps) if risk_rules else None
    prices.mark = random_mark(np.random.default_rng(seed + 2), prices)
    res = simulate(prices, book["product"], book["units"], book["cash"], policy, trigger, fill,
                   chunk_size=chunk_size, block_steps=17, market=market, depth=depth,
                   gas_usd=gas_usd, volume=prices.volume, risk=prices.risk, mark=prices.mark)
    return prices, book, policy, res


def _order(book):
    return liquidation_order(book["product"], book["units"], book["cash"])


def _assert_parity(res, ref):
    assert res.records.shape[0] == len(ref.records) > 0
    np.testing.assert_allclose(res.units, ref.units, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(res.cash, ref.cash, rtol=1e-10, atol=1e-8)
    np.testing.assert_array_equal(res.n_liquidations, ref.n_liquidations)
    np.testing.assert_array_equal(res.first_step, ref.first_step)
    np.testing.assert_allclose(res.step_metrics, ref.step_metrics, rtol=1e-9, atol=1e-7)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("model", list(ImpactModel))
@pytest.mark.parametrize("cascade", [False, True])
def test_kernel_matches_reference_with_impact(seed, model, cascade):
    rng = np.random.default_rng(1000 + seed)
    depth = rng.uniform(200.0, 2000.0, 120)
    market = market_params(model, permanent_fraction=rng.uniform(0, 1),
                           transient_half_life_steps=rng.uniform(1, 20), cascade=cascade)
    prices, book, policy, res = _run(seed, TriggerPrice.EXTREME, FillPrice.TRIGGER,
                                     market=market, depth=depth)
    ref = simulate_reference(prices.open, prices.high, prices.low, prices.close,
                             TriggerPrice.EXTREME, FillPrice.TRIGGER, policy[0], book["product"],
                             book["units"], book["cash"], market=market[0], depth=depth,
                             volume=prices.volume, priority=_order(book))
    _assert_parity(res, ref)
    sm = res.step_metrics
    if model != ImpactModel.NONE:
        assert sm[:, StepMetric.IMPACT_COST].sum() > 0
    if cascade and model != ImpactModel.NONE:
        assert np.any(sm[:, StepMetric.PRICE_FACTOR] != 1.0)
    else:
        assert np.all(sm[:, StepMetric.PRICE_FACTOR] == 1.0)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(("trigger", "fill"), MODES)
def test_kernel_matches_reference(seed, trigger, fill):
    prices, book, policy, res = _run(seed, trigger, fill)
    ref = simulate_reference(prices.open, prices.high, prices.low, prices.close, trigger, fill,
                             policy[0], book["product"], book["units"], book["cash"],
                             volume=prices.volume, priority=_order(book))
    assert res.records.shape[0] == len(ref.records) > 0
    np.testing.assert_allclose(res.units, ref.units, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(res.cash, ref.cash, rtol=1e-12, atol=1e-9)
    np.testing.assert_array_equal(res.n_liquidations, ref.n_liquidations)
    np.testing.assert_array_equal(res.first_step, ref.first_step)
    np.testing.assert_array_equal(res.last_step, ref.last_step)
    np.testing.assert_allclose(res.bad_debt, ref.bad_debt, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(res.step_metrics, ref.step_metrics, rtol=1e-10, atol=1e-8)
    ref_rec = sorted(ref.records, key=lambda r: (r["step"], r["account"]))
    got = np.sort(res.records, order=["step", "account"])
    assert np.all(np.diff(res.records["step"]) >= 0)  # records come ordered by step
    for name in ("step", "account", "closed"):
        np.testing.assert_array_equal(got[name], [r[name] for r in ref_rec])
    for name in ("units_closed", "fill_price", "keeper_fee", "insurance_fee", "bad_debt"):
        np.testing.assert_allclose(got[name], [r[name] for r in ref_rec], rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("calls", [2, 8])
@pytest.mark.parametrize("fill", [FillPrice.TRIGGER, FillPrice.LIQUIDATION_PRICE])
def test_repeated_partial_calls_match_reference_and_conserve_money(seed, calls, fill):
    """Keepers calling again within a step: the kernel, its twin, and every dollar accounted."""
    prices, book, policy, res = _run(seed, TriggerPrice.EXTREME, fill,
                                     family=PolicyFamily.PARTIAL, calls=calls)
    ref = simulate_reference(prices.open, prices.high, prices.low, prices.close,
                             TriggerPrice.EXTREME, fill, policy[0], book["product"],
                             book["units"], book["cash"], volume=prices.volume,
                             priority=_order(book))
    _assert_parity(res, ref)
    assert_accounts_conserve_money(book, res)
    # without order slicing (a volume cap shared in processing order), more calls per step
    # never close less in the first step an account is liquidated
    res, one = (_run(seed, TriggerPrice.EXTREME, fill, family=PolicyFamily.PARTIAL,
                     slicing=False, calls=k)[3] for k in (calls, 1))
    first = res.records[np.unique(res.records["account"], return_index=True)[1]]
    first_one = one.records[np.unique(one.records["account"], return_index=True)[1]]
    assert np.array_equal(first["account"], first_one["account"])
    more, less = np.abs(first["units_closed"]), np.abs(first_one["units_closed"])
    assert np.all(more >= less * (1 - 1e-12))


def _aave_v2_partial():
    """Aave v2's loan rule as a packed policy: LT 82.5%, bonus 5%, 50% of the debt a call."""
    policy = random_policy(np.random.default_rng(0), PolicyFamily.PARTIAL)
    policy["maintenance_rate"] = [0.01, 1 - 0.825]
    policy["penalty_rate"] = [0.01, 0.05 / 1.05]
    policy["target_rate"] = [np.inf, np.inf]
    policy["close_factor"], policy["full_close_health"] = 0.5, 0.0
    policy["full_close_below_usd"] = policy["large_position_usd"] = 0.0
    policy["min_remaining_usd"], policy["cooldown_steps"] = 0.0, 0
    policy["max_step_volume_fraction"] = 0.0
    return policy


def test_repeated_calls_take_a_deep_loan_to_health_in_the_step():
    """Aave v2 on a loan at health factor 0.9: one 50% call leaves it at 0.934, a second at
    1.002; with calls repeated in the step both happen at once, as two steps of one call do."""
    from backtest.engine.dispatch import Prices

    prices = Prices(*(np.array([100.0, 80.0, 80.0]) for _ in range(4)))
    policy = _aave_v2_partial()
    debt = 0.825 * 80.0 / 0.9
    out = {}
    for calls in (1, 8):
        policy["max_calls_per_step"] = calls
        out[calls] = simulate(prices, np.array([1], np.int8), np.array([1.0]),
                              np.array([-debt]), policy, TriggerPrice.CLOSE, FillPrice.CLOSE)
    assert out[1].records["step"].tolist() == [1, 2]
    assert out[8].records["step"].tolist() == [1]
    assert -out[8].cash[0] == pytest.approx(0.25 * debt, rel=1e-12)
    assert out[8].units[0] == pytest.approx(1.0 - 0.75 * debt * 1.05 / 80.0, rel=1e-12)
    assert out[8].units[0] == pytest.approx(out[1].units[0], rel=1e-12)
    assert out[8].cash[0] == pytest.approx(out[1].cash[0], rel=1e-12)
    assert 0.825 * out[8].units[0] * 80.0 / -out[8].cash[0] >= 1.0


@pytest.mark.parametrize("path", ["time-major", "decoupled"])
def test_repeated_calls_at_the_liquidation_price_follow_the_fall(path):
    """A loan whose liquidation price is 90 in a candle from 100 down to 60, Aave v2 (LT 82.5%,
    bonus 5%, 50% close factor): keepers watching every block call at 90, then at each new
    liquidation price (each call at health 1 lifts it to 2 - 1.05 x 0.825), four calls down to
    the low, and the loan keeps some collateral; calling again at the low instead seizes it
    all (below health 0.866 each call lowers the health factor)."""
    from backtest.engine.dispatch import Prices

    prices = Prices(np.array([100.0, 100.0]), np.array([100.0, 100.0]),
                    np.array([100.0, 60.0]), np.array([100.0, 70.0]))
    policy = _aave_v2_partial()
    policy["max_calls_per_step"] = 100
    debt = 0.825 * 90.0
    out = {fill: simulate(prices, np.array([1], np.int8), np.array([1.0]), np.array([-debt]),
                          policy, TriggerPrice.EXTREME, fill, path=path)
           for fill in (FillPrice.LIQUIDATION_PRICE, FillPrice.TRIGGER)}
    staged = out[FillPrice.LIQUIDATION_PRICE]
    assert staged.records["step"].tolist() == [1]
    assert -staged.cash[0] == pytest.approx(debt / 16, rel=1e-12)  # four 50% calls
    assert 0.825 * staged.units[0] * 60.0 >= -staged.cash[0]  # healthy at the low
    fill = staged.records["fill_price"][0]
    assert 60.0 < fill < 90.0
    # every call at health 1 repaid debt x 0.5^k at price 90 / 1.134^k, seizing 1.05 x that
    lift = 2 - 1.05 * 0.825
    prices_k = [90.0 / lift ** k for k in range(4)]
    seized = [debt * 0.5 ** (k + 1) * 1.05 / p for k, p in enumerate(prices_k)]
    assert staged.records["units_closed"][0] == pytest.approx(sum(seized), rel=1e-9)
    assert fill == pytest.approx(sum(q * p for q, p in zip(seized, prices_k, strict=True))
                                 / sum(seized), rel=1e-9)
    at_low = out[FillPrice.TRIGGER]
    assert at_low.units[0] == 0.0 and at_low.bad_debt[0] > 0


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(("trigger", "fill"), MODES)
def test_kernel_matches_reference_with_dynamic_margin_and_predictive(seed, trigger, fill):
    """Per-step maintenance scale, pre-emptive reductions, Euler discount, full seizure."""
    prices, book, policy, res = _run(seed + 50, trigger, fill, risk_rules=True)
    ref = simulate_reference(prices.open, prices.high, prices.low, prices.close, trigger, fill,
                             policy[0], book["product"], book["units"], book["cash"],
                             volume=prices.volume, priority=_order(book), risk=prices.risk)
    _assert_parity(res, ref)
    got = np.sort(res.records, order=["step", "account"])
    ref_rec = sorted(ref.records, key=lambda r: (r["step"], r["account"]))
    np.testing.assert_array_equal(got["preemptive"], [r["preemptive"] for r in ref_rec])
    np.testing.assert_array_equal(res.step_metrics[:, StepMetric.MARGIN_SCALE],
                                  prices.risk[:, 0])


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(("latency", "profit"), [(0, False), (2, True)])
@pytest.mark.parametrize("rational", [False, True])
def test_kernel_matches_reference_with_dutch_auctions(seed, latency, profit, rational):
    """Kicks, resets, takes (whole and budget-limited) and keeper incentives, with keepers
    who expect the last step's slippage or (rational) the execution price of the step."""
    rng = np.random.default_rng(700 + seed)
    steps = 150
    policy = random_policy(rng, slicing=seed % 2 == 1)
    random_auction(rng, policy)
    policy["auction_keeper_rational"] = int(rational)
    if seed % 3 == 0:  # Maker's Vow: bad debt and unpaid incentives queue for later surplus
        policy["waterfall"] = Waterfall.SURPLUS_BUFFER
    prices = random_prices(rng, steps, vol=0.02)
    book = random_book(rng, 300)
    prices.volume = random_volume(rng, steps)
    depth = rng.uniform(500.0, 5000.0, steps)
    gas = rng.uniform(0.0, 0.5, steps)
    trigger = list(TriggerPrice)[seed % 2]
    market = market_params(ImpactModel.SQRT, cascade=True, keeper_latency_steps=latency,
                           keeper_requires_profit=profit)
    res = simulate(prices, book["product"], book["units"], book["cash"], policy, trigger,
                   FillPrice.TRIGGER, chunk_size=64, block_steps=17, market=market,
                   depth=depth, gas_usd=gas, volume=prices.volume, insurance_fund_usd=50.0)
    ref = simulate_reference(prices.open, prices.high, prices.low, prices.close, trigger,
                             FillPrice.TRIGGER, policy[0], book["product"], book["units"],
                             book["cash"], market=market[0], depth=depth, gas_usd=gas,
                             volume=prices.volume, priority=_order(book),
                             insurance_fund_usd=50.0)
    _assert_parity(res, ref)
    sm = res.step_metrics
    assert sm[:, StepMetric.AUCTIONS_KICKED].sum() > 0
    takes = res.records[res.records["auction"]]
    assert len(takes) > 0
    got = np.sort(res.records, order=["step", "account"])
    ref_rec = sorted(ref.records, key=lambda r: (r["step"], r["account"]))
    np.testing.assert_array_equal(got["auction"], [r["auction"] for r in ref_rec])
    # takes fill at the market; the keeper's fee is its discount, at least the margin asked
    loans = book["product"][takes["account"]] == 1
    assert loans.all()
    margin = policy[0]["auction_keeper_margin"]
    # the kernel sums a step's flow chunk by chunk, the twin account by account: the factors
    # agree to rounding, as every other step metric in _assert_parity
    np.testing.assert_allclose(sm[:, StepMetric.TAKE_FACTOR], ref.step_metrics[
        :, StepMetric.TAKE_FACTOR], rtol=1e-12, atol=0.0)
    if rational:  # no take loses more than the margin allows, after gas if keepers need profit
        net = takes["keeper_fee"] - (gas[takes["step"]] if profit else 0.0)
        assert np.all(net >= margin * takes["units_closed"] * takes["decision_price"] - 1e-9)
    else:  # the keepers' expectation is the last step's slippage
        expected = 1.0 - np.abs(1.0 - sm[takes["step"] - 1, StepMetric.EXECUTION_FACTOR])
        np.testing.assert_allclose(sm[takes["step"], StepMetric.TAKE_FACTOR], expected,
                                   rtol=1e-12)


def test_rational_keepers_stand_back_from_takes_that_impact_makes_lossy():
    """One step, three equal vaults whose auctions all reach a price 3% under the market: sold
    together into thin depth they would fill ~5% under it. Keepers who expect the last step's
    (zero) slippage take all three at a loss; rational keepers do not, and the same book with
    deep markets is taken in full by both."""
    from backtest.policies import load_policy, pack_policy

    n, steps = 3, 12
    close = np.full(steps, 100.0)
    prices = Prices(close, close, close, close)
    product = np.ones(n, np.int8)
    units = np.full(n, 10.0)
    cash = np.full(n, -800.0)  # LT 2/3 at 100: health (2/3 x 1000) / 800 < 1
    out = {}
    for rational in (0, 1):
        for depth_usd in (20.0, 1e12):
            policy = pack_policy(load_policy("maker-clipper"), interval_seconds=60)
            p = policy[0]
            p["auction_buf"], p["auction_cut"], p["auction_step_steps"] = 1.0, 0.97, 1.0
            p["auction_keeper_margin"], p["auction_keeper_rational"] = 0.0, rational
            market = market_params(ImpactModel.SQRT, cascade=False)
            res = simulate(prices, product, units, cash, policy, TriggerPrice.CLOSE,
                           FillPrice.CLOSE, market=market, depth=np.full(steps, depth_usd))
            ref = simulate_reference(close, close, close, close, TriggerPrice.CLOSE,
                                     FillPrice.CLOSE, p, product, units, cash,
                                     market=market[0], depth=np.full(steps, depth_usd))
            _assert_parity(res, ref)
            out[rational, depth_usd] = res.records[res.records["auction"]]
    assert len(out[0, 1e12]) == len(out[1, 1e12]) == 3  # deep: both take everything
    assert np.all(out[0, 20.0]["keeper_fee"] < 0.0)  # naive keepers lose to impact
    assert np.all(out[1, 20.0]["keeper_fee"] >= 0.0)  # rational ones wait for a lower price
    assert out[1, 20.0]["step"].min() > out[0, 20.0]["step"].min()


@pytest.mark.parametrize("seed", range(8))
def test_kernel_matches_reference_with_soft_liquidation_bands(seed):
    """crvUSD LLAMMA: band trades both ways, hard liquidations (some of loans holding only
    stablecoin), keepers late or unpaid, every oracle, perps beside the loans under budgets."""
    rng = np.random.default_rng(900 + seed)
    steps = 120
    policy = random_policy(rng, slicing=seed % 2 == 1)
    random_bands(rng, policy)
    prices = random_prices(rng, steps, vol=0.02)
    book = random_book(rng, 300)
    prices.volume = random_volume(rng, steps)
    depth = rng.uniform(500.0, 5000.0, steps)
    gas = rng.uniform(0.0, 0.5, steps)
    trigger, fill = MODES[seed % len(MODES)]
    market = market_params(ImpactModel.SQRT, cascade=True, keeper_latency_steps=seed % 3,
                           keeper_requires_profit=seed % 2 == 0,
                           oracle_model=list(OracleModel)[seed % 4], oracle_lag_steps=2,
                           oracle_twap_steps=3)
    res = simulate(prices, book["product"], book["units"], book["cash"], policy, trigger, fill,
                   chunk_size=64, block_steps=17, market=market, depth=depth, gas_usd=gas,
                   volume=prices.volume, insurance_fund_usd=50.0)
    ref = simulate_reference(prices.open, prices.high, prices.low, prices.close, trigger, fill,
                             policy[0], book["product"], book["units"], book["cash"],
                             market=market[0], depth=depth, gas_usd=gas, volume=prices.volume,
                             priority=_order(book), insurance_fund_usd=50.0)
    _assert_parity(res, ref)
    np.testing.assert_allclose(res.bands, ref.bands, rtol=1e-9, atol=1e-8)
    sm = res.step_metrics
    assert sm[:, StepMetric.SOFT_SOLD_UNITS].sum() > 0
    assert sm[:, StepMetric.SOFT_BOUGHT_UNITS].sum() > 0
    assert sm[:, StepMetric.N_SOFT_LIQUIDATION].max() > 0
    # loans leave their bands only by hard liquidation, which takes everything
    loans = book["product"][res.records["account"]] == 1
    assert np.all(res.records["closed"][loans])
    assert np.all(res.records["health_before"][loans] < 1)


def test_predictive_overlay_reduces_before_the_breach():
    """Pre-emptive reductions happen, only to accounts not yet liquidatable, at a smaller fee."""
    hits = 0
    for seed in range(6):
        prices, book, policy, res = _run(seed + 80, TriggerPrice.EXTREME, FillPrice.TRIGGER,
                                         risk_rules=True)
        pre = res.records[res.records["preemptive"]]
        if policy[0]["preempt_fraction"] == 0:
            assert len(pre) == 0
            continue
        hits += len(pre)
        assert np.all(pre["health_before"] >= 1.0 - 1e-12)  # healthy at the decision price
        rate = (pre["keeper_fee"] + pre["insurance_fee"]) / pre["notional"]
        assert np.all(rate <= policy[0]["preempt_penalty"] * (1 + 1e-9))
        sm = res.step_metrics
        assert sm[:, StepMetric.N_PREEMPTIVE].sum() == len(pre)
    assert hits > 0


def test_higher_margin_liquidates_earlier():
    """Doubling the maintenance margin in every step liquidates at least as early."""
    prices, book, policy, base = _run(7, TriggerPrice.EXTREME, FillPrice.TRIGGER, slicing=False)
    policy[0]["family"] = PolicyFamily.HARD
    base = simulate(prices, book["product"], book["units"], book["cash"], policy,
                    TriggerPrice.EXTREME, FillPrice.TRIGGER)
    risk = np.zeros((len(prices.close), 2))
    risk[:, 0] = 2.0
    scaled = simulate(prices, book["product"], book["units"], book["cash"], policy,
                      TriggerPrice.EXTREME, FillPrice.TRIGGER, risk=risk)
    perp = (book["product"] == 0) & (base.first_step >= 0)
    assert perp.any()
    assert np.all((scaled.first_step[perp] >= 0)
                  & (scaled.first_step[perp] <= base.first_step[perp]))
    assert (scaled.first_step >= 0).sum() > (base.first_step >= 0).sum()


@pytest.mark.parametrize("seed", range(8))
def test_money_is_conserved(seed):
    """Every dollar leaving an account arrives at the keeper, the fund or the market."""
    model = list(ImpactModel)[seed % len(ImpactModel)]
    market = market_params(model, cascade=seed % 2 == 1)
    depth = np.full(120, 5_000.0)
    prices, book, policy, res = _run(seed, TriggerPrice.EXTREME, FillPrice.TRIGGER, n=2000,
                                     market=market, depth=depth)
    rec = res.records
    # per account: cash change = sale proceeds - fees + bad debt written off
    flows = assert_accounts_conserve_money(book, res)
    fees, written_off = flows["fees"], flows["written_off"]
    # per-account totals agree with the records
    np.testing.assert_allclose(res.penalties_paid, fees, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(res.bad_debt, written_off, rtol=1e-12, atol=1e-9)
    # aggregates agree with the records, and fees never exceed the penalty
    sm = res.step_metrics
    total = rec["keeper_fee"].sum() + rec["insurance_fee"].sum()
    assert sm[:, StepMetric.KEEPER_FEES].sum() + sm[:, StepMetric.INSURANCE_FEES].sum() == (
        pytest.approx(total, rel=1e-9))
    assert sm[:, StepMetric.BAD_DEBT].sum() == pytest.approx(rec["bad_debt"].sum(), rel=1e-9)
    penalty = policy["penalty_rate"][0][np.asarray(book["product"])[rec["account"]]]
    assert np.all(rec["keeper_fee"] + rec["insurance_fee"]
                  <= penalty * rec["notional"] * (1 + 1e-12) + 1e-9)
    # without impact or order slicing no liquidation leaves negative equity (with impact a
    # partial decided at the decision price can, at the worse execution price; with slicing a
    # bankrupt position is closed over several steps); no position flips side
    if model == ImpactModel.NONE and policy["max_step_volume_fraction"][0] == 0:
        assert np.all(rec["equity_after"] >= -1e-9 * (1 + rec["notional"]))
    assert np.all(np.sign(res.units) * np.sign(book["units"]) >= 0)


def test_results_do_not_depend_on_thread_count():
    prices, book, policy, _ = _run(3, TriggerPrice.EXTREME, FillPrice.TRIGGER, n=20000)
    outs = []
    before = numba.get_num_threads()
    try:
        for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
            numba.set_num_threads(threads)
            outs.append(simulate(prices, book["product"], book["units"], book["cash"], policy,
                                 TriggerPrice.EXTREME, FillPrice.TRIGGER, chunk_size=256,
                                 volume=prices.volume))
    finally:
        numba.set_num_threads(before)
    a, b = outs[0], outs[-1]
    assert a.step_metrics.tobytes() == b.step_metrics.tobytes()
    assert a.cash.tobytes() == b.cash.tobytes()
    assert a.records.tobytes() == b.records.tobytes()


def test_hard_closes_whole_perp_and_repays_whole_loan():
    """Hard on a perp leaves no units; on a loan repays the debt and leaves spare collateral."""
    from backtest.engine.dispatch import Prices

    prices = Prices(*(np.array([100.0, 80.0]) for _ in range(4)))
    policy = random_policy(np.random.default_rng(0), PolicyFamily.HARD)
    policy["maintenance_rate"] = [0.01, 0.2]
    policy["penalty_rate"] = [0.01, 0.05 / 1.05]
    # perp long 10x at 100; loan: 1 unit, debt 70 (LT 0.8 -> liquidation price 87.5)
    res = simulate(prices, np.array([0, 1], np.int8), np.array([1.0, 1.0]),
                   np.array([-90.0, -70.0]), policy, TriggerPrice.CLOSE, FillPrice.CLOSE)
    assert res.units[0] == 0.0
    assert res.cash[1] == 0.0  # debt repaid exactly
    # collateral seized = 70 x 1.05 / 80 units
    assert res.units[1] == pytest.approx(1.0 - 70 * 1.05 / 80, rel=1e-12)
    # the perp was bankrupt at 80: bad debt 90 - 80 + keeper fee
    keeper = policy["keeper_share"][0] * 0.01 * 80
    assert res.bad_debt[0] == pytest.approx(10.0 + keeper, rel=1e-12)


def test_partial_restores_target_health():
    from backtest.engine.dispatch import Prices

    prices = Prices(*(np.array([100.0, 95.0]) for _ in range(4)))
    policy = random_policy(np.random.default_rng(1), PolicyFamily.PARTIAL)
    policy["maintenance_rate"] = [0.05, 0.2]
    policy["penalty_rate"] = [0.01, 0.04]
    policy["target_rate"] = [0.10, np.inf]
    policy["close_factor"] = 1.0
    policy["full_close_health"] = 0.0
    # long 1 unit with cash -91: at 95 equity 4 < 4.75 = maintenance
    res = simulate(prices, np.array([0], np.int8), np.array([1.0]), np.array([-91.0]), policy,
                   TriggerPrice.CLOSE, FillPrice.CLOSE)
    equity = res.cash[0] + res.units[0] * 95.0
    assert 0 < res.units[0] < 1
    assert equity == pytest.approx(0.10 * res.units[0] * 95.0, rel=1e-12)


def test_reference_replay_checks_a_sample_of_a_coupled_book():
    """With impact the accounts are coupled; replaying the engine's factors decouples them."""
    depth = np.full(120, 500.0)
    market = market_params(ImpactModel.SQRT, cascade=True)
    prices, book, policy, res = _run(7, TriggerPrice.EXTREME, FillPrice.TRIGGER, n=1000,
                                     market=market, depth=depth, slicing=False)
    sm = res.step_metrics
    assert np.any(sm[:, StepMetric.PRICE_FACTOR] != 1.0)
    idx = np.arange(0, 1000, 7)
    ref = simulate_reference(prices.open, prices.high, prices.low, prices.close,
                             TriggerPrice.EXTREME, FillPrice.TRIGGER, policy[0],
                             book["product"][idx], book["units"][idx], book["cash"][idx],
                             replay=(sm[:, StepMetric.PRICE_FACTOR],
                                     sm[:, StepMetric.EXECUTION_FACTOR]))
    assert ref.n_liquidations.sum() > 0
    np.testing.assert_array_equal(res.n_liquidations[idx], ref.n_liquidations)
    np.testing.assert_allclose(res.cash[idx], ref.cash, rtol=1e-10, atol=1e-8)
    np.testing.assert_allclose(res.units[idx], ref.units, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("oracle", list(OracleModel))
@pytest.mark.parametrize(("latency", "profit"), [(0, False), (3, False), (0, True), (2, True)])
def test_kernel_matches_reference_with_oracles_and_keepers(oracle, latency, profit):
    rng = np.random.default_rng(int(oracle) * 10 + latency + 100 * profit)
    steps = 120
    depth = rng.uniform(500.0, 5000.0, steps)
    gas = rng.uniform(0.0, 0.5, steps)
    market = market_params(ImpactModel.SQRT, cascade=True, oracle_model=oracle,
                           oracle_lag_steps=2, oracle_twap_steps=5, oracle_deviation=0.01,
                           oracle_heartbeat_steps=6, keeper_latency_steps=latency,
                           keeper_requires_profit=profit)
    prices, book, policy, res = _run(int(rng.integers(1000)), TriggerPrice.EXTREME,
                                     FillPrice.TRIGGER, market=market, depth=depth, gas_usd=gas)
    ref = simulate_reference(prices.open, prices.high, prices.low, prices.close,
                             TriggerPrice.EXTREME, FillPrice.TRIGGER, policy[0], book["product"],
                             book["units"], book["cash"], market=market[0], depth=depth,
                             gas_usd=gas, volume=prices.volume, priority=_order(book),
                             mark=prices.mark)
    _assert_parity(res, ref)
    if oracle == OracleModel.MARK:  # the mark's low decides for longs, times the cascade
        np.testing.assert_allclose(res.step_metrics[:, StepMetric.ORACLE_PRICE],
                                   prices.mark[:, 0] * res.step_metrics[:, StepMetric.PRICE_FACTOR])
    if oracle != OracleModel.MARKET:  # liquidations fill at the market close of their step
        close = prices.close * res.step_metrics[:, StepMetric.PRICE_FACTOR]
        np.testing.assert_allclose(res.records["decision_price"], close[res.records["step"]])
    if oracle == OracleModel.OSM:  # hop of 2 steps: the close before the previous boundary
        t = np.arange(steps)
        read = t // 2 * 2 - 3
        seen = np.where(read < 0, prices.open[0], close[np.maximum(read, 0)])
        np.testing.assert_allclose(res.step_metrics[:, StepMetric.ORACLE_PRICE], seen)
        assert np.all(seen[1::2] == seen[0::2])  # constant within a hop


@pytest.mark.parametrize("oracle", list(OracleModel))
def test_repeated_calls_match_reference_with_oracles_impact_and_keepers(oracle):
    """Repeated calls under every oracle, a cascading impact and late, profit-seeking keepers:
    each call's fill feeds the step's flow as a single liquidation's would."""
    rng = np.random.default_rng(int(oracle) + 500)
    depth = rng.uniform(500.0, 5000.0, 120)
    market = market_params(ImpactModel.SQRT, cascade=True, oracle_model=oracle,
                           oracle_lag_steps=2, oracle_twap_steps=5, oracle_deviation=0.01,
                           oracle_heartbeat_steps=6, keeper_latency_steps=2,
                           keeper_requires_profit=True)
    gas = rng.uniform(0.0, 0.5, 120)
    prices, book, policy, res = _run(int(rng.integers(1000)), TriggerPrice.EXTREME,
                                     FillPrice.LIQUIDATION_PRICE, market=market, depth=depth,
                                     gas_usd=gas, family=PolicyFamily.PARTIAL, calls=8)
    ref = simulate_reference(prices.open, prices.high, prices.low, prices.close,
                             TriggerPrice.EXTREME, FillPrice.LIQUIDATION_PRICE, policy[0],
                             book["product"], book["units"], book["cash"], market=market[0],
                             depth=depth, gas_usd=gas, volume=prices.volume,
                             priority=_order(book), mark=prices.mark)
    _assert_parity(res, ref)


def test_slow_unprofitable_keepers_leave_more_bad_debt():
    """Latency and gas make liquidations late or never; on a falling tape that loses more.

    Bad debt here counts both shortfalls realised by liquidations and the negative equity of
    positions nobody liquidated by the end.
    """
    steps = 200
    rng = np.random.default_rng(3)
    prices = random_prices(rng, steps, vol=0.004)
    book = random_book(rng, 3000)
    policy = random_policy(rng, PolicyFamily.HARD)
    bad = []
    for latency, gas in ((0, 0.0), (6, 2.0)):
        market = market_params(keeper_latency_steps=latency, keeper_requires_profit=gas > 0)
        res = simulate(prices, book["product"], book["units"], book["cash"], policy,
                       TriggerPrice.EXTREME, FillPrice.TRIGGER, market=market,
                       gas_usd=np.full(steps, gas))
        open_negative = np.minimum(res.cash + res.units * prices.close[-1], 0.0).sum()
        bad.append(res.bad_debt.sum() - open_negative)
        if latency:
            assert res.step_metrics[:, StepMetric.N_WAITING].sum() > 0
    assert bad[1] > bad[0]


@pytest.mark.parametrize("ranking", list(AdlRanking))
@pytest.mark.parametrize("seed", [0, 2, 3])  # seeds whose tape drains the fund (seed 1 does not)
def test_insurance_fund_and_auto_deleveraging_match_reference(ranking, seed):
    rng = np.random.default_rng(500 + seed)
    steps = 100
    prices = random_prices(rng, steps, vol=0.03)
    book = random_book(rng, 600)
    policy = random_policy(rng, PolicyFamily.HARD)
    policy["waterfall"] = Waterfall.ADL
    policy["adl_ranking"] = ranking
    market = market_params(seed=seed)
    res = simulate(prices, book["product"], book["units"], book["cash"], policy,
                   TriggerPrice.EXTREME, FillPrice.TRIGGER, chunk_size=64, block_steps=9,
                   market=market, insurance_fund_usd=5.0)
    ref = simulate_reference(prices.open, prices.high, prices.low, prices.close,
                             TriggerPrice.EXTREME, FillPrice.TRIGGER, policy[0], book["product"],
                             book["units"], book["cash"], market=market[0],
                             insurance_fund_usd=5.0)
    _assert_parity(res, ref)
    sm = res.step_metrics
    assert sm[:, StepMetric.ADL_ACCOUNTS].sum() > 0  # the fund ran dry and ADL happened
    assert len(res.adl_records) == len(ref.adl_records)
    np.testing.assert_array_equal(res.adl_records["account"],
                                  [r["account"] for r in ref.adl_records])
    np.testing.assert_allclose(res.adl_records["transfer"],
                               [r["transfer"] for r in ref.adl_records], rtol=1e-9, atol=1e-9)
    # the waterfall accounts for every dollar of bad debt, step by step
    covered = (sm[:, StepMetric.INSURANCE_DRAW] + sm[:, StepMetric.ADL_TRANSFER]
               + sm[:, StepMetric.SOCIALISED_LOSS])
    np.testing.assert_allclose(covered, sm[:, StepMetric.BAD_DEBT], rtol=1e-9, atol=1e-9)
    assert res.adl_records["transfer"].sum() == pytest.approx(sm[:, StepMetric.ADL_TRANSFER].sum())
    fund = 5.0 + np.cumsum(sm[:, StepMetric.INSURANCE_FEES] - sm[:, StepMetric.INSURANCE_DRAW])
    np.testing.assert_allclose(sm[:, StepMetric.INSURANCE_FUND], fund, rtol=1e-9, atol=1e-9)
    # counterparties only lose what they pay: their cash change = units x price - transfer
    adl = res.adl_records
    assert np.all(adl["transfer"] >= 0)


def test_funding_matches_reference_and_moves_cash():
    rng = np.random.default_rng(77)
    steps = 96
    funding = np.full(steps, np.nan)
    funding[::8] = rng.normal(0.0005, 0.001, 12)  # an 8-step funding interval
    prices = random_prices(rng, steps)
    book = random_book(rng, 500)
    policy = random_policy(rng)
    res = simulate(prices, book["product"], book["units"], book["cash"], policy,
                   TriggerPrice.EXTREME, FillPrice.TRIGGER, chunk_size=64, funding_rate=funding)
    ref = simulate_reference(prices.open, prices.high, prices.low, prices.close,
                             TriggerPrice.EXTREME, FillPrice.TRIGGER, policy[0], book["product"],
                             book["units"], book["cash"], funding_rate=funding)
    _assert_parity(res, ref)
    np.testing.assert_allclose(res.funding_paid, ref.funding_paid, rtol=1e-10, atol=1e-10)
    loans = book["product"] == 1
    assert np.all(res.funding_paid[loans] == 0.0) and np.any(res.funding_paid[~loans] != 0.0)
    # the first settlement: every open perp pays units x open x rate
    perps = ~loans
    first = book["units"][perps] * prices.open[0] * funding[0]
    assert res.step_metrics[0, StepMetric.FUNDING_PAID] == pytest.approx(first.sum())


@pytest.mark.parametrize("capital", [50.0, 500.0])
def test_capital_constrained_keepers_match_reference(capital):
    market = market_params(keeper_capital_usd=capital)
    prices, book, policy, res = _run(11, TriggerPrice.EXTREME, FillPrice.TRIGGER, market=market,
                                     slicing=False)
    ref = simulate_reference(prices.open, prices.high, prices.low, prices.close,
                             TriggerPrice.EXTREME, FillPrice.TRIGGER, policy[0], book["product"],
                             book["units"], book["cash"], market=market[0],
                             volume=prices.volume, priority=_order(book))
    _assert_parity(res, ref)
    sm = res.step_metrics
    assert sm[:, StepMetric.SLICE_FACTOR].min() < 1.0  # the capital bound was reached
    # keepers never take more than their capital (at the step's close) in a step
    close = prices.close * sm[:, StepMetric.PRICE_FACTOR]
    taken = np.zeros(len(close))
    np.add.at(taken, res.records["step"], np.abs(res.records["units_closed"]))
    assert np.all(taken * close <= capital * (1 + 1e-9))


def test_a_partial_take_leaves_at_least_chost():
    """dss clip.t.sol's vault (ink 40, art 100, chop 1.1, mat 2, price 4, buf 1.25, cut 0.99,
    dust 20 so chost 22): a take cut by the step's volume budget to 25 units would leave a tab
    of 10.8 < chost, so it buys only what leaves exactly 22; the rest, at most chost, can then
    only be bought whole."""
    from backtest.policies import load_policy, pack_policy

    policy = pack_policy(load_policy("maker-clipper"), interval_seconds=1)
    p = policy[0]
    p["maintenance_rate"][1] = 0.5  # mat 2.0
    p["penalty_rate"][1] = 0.1 / 1.1  # chop 1.1
    p["auction_buf"], p["auction_cut"], p["auction_step_steps"] = 1.25, 0.99, 1.0
    p["auction_tail_steps"], p["auction_cusp"] = 1e9, 0.3
    p["auction_keeper_margin"], p["auction_chip"], p["auction_tip_usd"] = 0.0, 0.0, 0.0
    p["auction_chost_usd"] = 22.0
    p["max_step_volume_fraction"] = 1.0
    close = np.full(40, 4.0)
    prices = Prices(close, close, close, close)
    res = simulate(prices, np.array([1], np.int8), np.array([40.0]), np.array([-100.0]),
                   policy, TriggerPrice.CLOSE, FillPrice.CLOSE, volume=np.full(40, 25.0))
    takes = res.records
    assert len(takes) == 2 and takes["auction"].all()
    first, second = takes
    price = 5.0 * 0.99 ** first["step"]  # the stairstep price when the keeper first takes
    assert price <= 4.0 < price / 0.99
    assert first["units_closed"] == pytest.approx((110.0 - 22.0) / price)  # not 25 units
    price2 = 5.0 * 0.99 ** second["step"]
    assert second["units_closed"] == pytest.approx(22.0 / price2)  # the whole rest of the tab
    assert second["closed"] and res.cash[0] == pytest.approx(0.0, abs=1e-9)
    ref = simulate_reference(close, close, close, close, TriggerPrice.CLOSE, FillPrice.CLOSE, p,
                             np.array([1]), np.array([40.0]), np.array([-100.0]),
                             volume=np.full(40, 25.0))
    np.testing.assert_allclose([r["units_closed"] for r in ref.records], takes["units_closed"])


def test_surplus_buffer_heals_earlier_bad_debt_with_later_penalties():
    """Maker's Vow: a vault gapped through bankruptcy leaves bad debt at step 1; a second
    vault's penalty at step 3 heals part of it; the rest is flopped (socialised) at the last
    step. With SOCIALISE the same bad debt is socialised at once and the penalty stays in the
    fund."""
    from backtest.policies import load_policy, pack_policy

    close = np.array([100.0, 50.0, 50.0, 40.0, 40.0, 40.0])
    prices = Prices(close, close, close, close)
    product = np.array([1, 1], np.int8)
    units = np.array([10.0, 10.0])
    cash = np.array([-600.0, -300.0])
    out = {}
    for mode in (Waterfall.SOCIALISE, Waterfall.SURPLUS_BUFFER):
        policy = pack_policy(load_policy("maker-eth-a"), interval_seconds=300)
        policy["waterfall"] = mode
        res = simulate(prices, product, units, cash, policy, TriggerPrice.CLOSE,
                       FillPrice.CLOSE)
        ref = simulate_reference(close, close, close, close, TriggerPrice.CLOSE,
                                 FillPrice.CLOSE, policy[0], product, units, cash)
        _assert_parity(res, ref)
        out[mode] = res.step_metrics
    soc, buf = out[Waterfall.SOCIALISE], out[Waterfall.SURPLUS_BUFFER]
    bad = soc[1, StepMetric.BAD_DEBT]
    income = soc[3, StepMetric.INSURANCE_FEES]
    assert bad > income > 0.0 and soc[3, StepMetric.BAD_DEBT] == 0.0
    assert soc[1, StepMetric.SOCIALISED_LOSS] == pytest.approx(bad)  # at once
    assert soc[-1, StepMetric.INSURANCE_FUND] == pytest.approx(income)  # idle surplus
    assert buf[1, StepMetric.SOCIALISED_LOSS] == 0.0
    assert buf[1:3, StepMetric.DEBT_QUEUED] == pytest.approx([bad, bad])
    assert buf[3, StepMetric.DEBT_HEALED] == pytest.approx(income)
    assert buf[3, StepMetric.DEBT_QUEUED] == pytest.approx(bad - income)
    assert buf[-1, StepMetric.SOCIALISED_LOSS] == pytest.approx(bad - income)  # flop
    assert buf[-1, StepMetric.DEBT_QUEUED] == 0.0
    assert buf[:, StepMetric.INSURANCE_FUND] == pytest.approx(np.zeros(len(close)))
    # queued + healed + socialised = bad debt
    assert (buf[:, StepMetric.DEBT_HEALED].sum() + buf[:, StepMetric.SOCIALISED_LOSS].sum()
            == pytest.approx(bad))


def test_replay_with_rational_auction_keepers_checks_a_sample():
    """The keepers' take factor of the whole book's run, replayed, decides a sample's takes."""
    rng = np.random.default_rng(77)
    steps = 150
    policy = random_policy(rng, slicing=False)
    random_auction(rng, policy)
    policy["auction_keeper_rational"] = 1
    prices = random_prices(rng, steps, vol=0.02)
    book = random_book(rng, 600)
    depth = rng.uniform(200.0, 2000.0, steps)
    market = market_params(ImpactModel.SQRT, cascade=True)
    res = simulate(prices, book["product"], book["units"], book["cash"], policy,
                   TriggerPrice.EXTREME, FillPrice.TRIGGER, market=market, depth=depth)
    sm = res.step_metrics
    assert res.records["auction"].sum() > 0
    idx = np.arange(0, 600, 5)
    ref = simulate_reference(prices.open, prices.high, prices.low, prices.close,
                             TriggerPrice.EXTREME, FillPrice.TRIGGER, policy[0],
                             book["product"][idx], book["units"][idx], book["cash"][idx],
                             market=market[0], depth=depth,
                             replay=(sm[:, StepMetric.PRICE_FACTOR],
                                     sm[:, StepMetric.EXECUTION_FACTOR],
                                     sm[:, StepMetric.TAKE_FACTOR]))
    np.testing.assert_array_equal(res.n_liquidations[idx], ref.n_liquidations)
    np.testing.assert_allclose(res.cash[idx], ref.cash, rtol=1e-10, atol=1e-8)
    np.testing.assert_allclose(res.units[idx], ref.units, rtol=1e-10, atol=1e-10)
