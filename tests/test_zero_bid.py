"""Flip auctions (Maker Liquidations 1.2) and zero bids: the rule, kernel against twin, money.

An auction of family AUCTION with a bid window (``auction_zero_bid_steps``, flip's ``ttl``)
that no keeper takes within the window is dealt to a zero bid: the whole lot to that keeper,
the loan's debt to bad debt, nothing to the insurance fund. The ENGLISH curve prices takes at
``buf`` x the step's market price.
"""

from __future__ import annotations

from pathlib import Path

import numba
import numpy as np
import pytest

from backtest.engine.dispatch import Prices, liquidation_order, market_params, simulate
from backtest.errors import ConfigError
from backtest.kernels.enums import (
    POLICY_DTYPE,
    AuctionCurve,
    FillPrice,
    ImpactModel,
    PolicyFamily,
    StepMetric,
    TriggerPrice,
)
from backtest.kernels.reference import simulate_reference
from backtest.policies.load import load_policy, pack_policy
from tests.kernel_inputs import (
    assert_accounts_conserve_money,
    random_book,
    random_policy,
    random_prices,
    random_volume,
)

STRATEGIES = Path(__file__).resolve().parent.parent / "strategies"


def _flip(rng: np.random.Generator, policy: np.ndarray, window: float) -> None:
    """Make ``policy`` an English (flip) auction with a zero-bid window of ``window`` steps."""
    policy["family"] = PolicyFamily.AUCTION
    policy["auction_curve"] = rng.choice([AuctionCurve.ENGLISH, AuctionCurve.STAIRSTEP])
    policy["auction_buf"] = rng.uniform(0.9, 1.0)
    policy["auction_tau_steps"] = rng.uniform(5, 60)
    policy["auction_cut"] = rng.uniform(0.8, 0.99)
    policy["auction_step_steps"] = rng.uniform(1, 5)
    policy["auction_tail_steps"] = window + rng.uniform(1, 40)
    policy["auction_cusp"] = rng.uniform(0.0, 0.3)
    policy["auction_chip"] = rng.uniform(0.0, 0.01)
    policy["auction_keeper_margin"] = rng.uniform(0.0, 0.05)
    policy["auction_chost_usd"] = rng.choice([0.0, rng.uniform(1.0, 100.0)])
    policy["auction_keeper_rational"] = rng.integers(0, 2)
    policy["auction_zero_bid_steps"] = window


def _vault_policy(window: float = 2.0) -> np.ndarray:
    """One loan type: LT 2/3, chop 13%, English auctions at 97% of the market."""
    p = np.zeros(1, POLICY_DTYPE)
    p["family"] = PolicyFamily.AUCTION
    p["maintenance_rate"] = [0.005, 1.0 - 2.0 / 3.0]
    p["penalty_rate"] = [0.01, 0.13 / 1.13]
    p["target_rate"] = [np.inf, np.inf]
    p["auction_curve"] = AuctionCurve.ENGLISH
    p["auction_buf"] = 0.97
    p["auction_tail_steps"] = 1e9
    p["auction_keeper_margin"] = 0.01
    p["auction_zero_bid_steps"] = window
    return p


def _crash(steps: int = 12) -> Prices:
    """100 for two steps, then 70 flat: a vault at 150% collateralisation breaches at once."""
    close = np.r_[100.0, 100.0, np.full(steps - 2, 70.0)]
    return Prices(close.copy(), close.copy(), close.copy(), close.copy())


def _one_vault(prices: Prices, policy: np.ndarray, gas: float):
    # 10 ETH against 600 of debt: liquidatable below 90 (LT 2/3)
    product = np.array([1], np.int8)
    units, cash = np.array([10.0]), np.array([-600.0])
    market = market_params(keeper_requires_profit=True)
    gas_usd = np.full(len(prices.close), gas)
    res = simulate(prices, product, units, cash, policy, TriggerPrice.EXTREME, FillPrice.TRIGGER,
                   market=market, gas_usd=gas_usd)
    ref = simulate_reference(prices.open, prices.high, prices.low, prices.close,
                             TriggerPrice.EXTREME, FillPrice.TRIGGER, policy[0], product, units,
                             cash, market=market[0], gas_usd=gas_usd)
    return res, ref


def test_an_auction_untaken_through_its_window_goes_to_a_zero_bid():
    """Gas above the lot's value: no take pays, so the zero bid wins after the window."""
    res, ref = _one_vault(_crash(), _vault_policy(window=2.0), gas=1e6)
    rec = res.records
    assert len(rec) == 1 and rec["zero_bid"][0] and rec["auction"][0]
    kick = int(np.argmax(res.step_metrics[:, StepMetric.AUCTIONS_KICKED] > 0))
    assert kick == 2 and rec["step"][0] == kick + 3  # takes allowed for 2 steps, dealt at the 3rd
    assert rec["units_closed"][0] == 10.0  # the whole lot to the zero bidder
    assert rec["bad_debt"][0] == pytest.approx(600.0)  # the debt (tab less the chop) is lost
    assert rec["insurance_fee"][0] == 0.0  # the vow receives nothing
    assert rec["keeper_fee"][0] == pytest.approx(10.0 * 70.0)  # the collateral's value
    assert res.units[0] == 0.0 and res.cash[0] == 0.0
    assert res.step_metrics[:, StepMetric.BAD_DEBT].sum() == pytest.approx(600.0)
    assert len(ref.records) == 1 and ref.records[0]["zero_bid"]
    np.testing.assert_allclose(res.step_metrics, ref.step_metrics, rtol=1e-12, atol=1e-9)


def test_a_take_inside_the_window_beats_the_zero_bid():
    """Cheap gas: a keeper takes at 97% of the market the step after the kick; no bad debt."""
    res, ref = _one_vault(_crash(), _vault_policy(window=2.0), gas=1.0)
    rec = res.records
    assert len(rec) == 1 and rec["auction"][0] and not rec["zero_bid"][0]
    assert rec["step"][0] == 3
    assert rec["bad_debt"][0] == 0.0
    # the tab 600 x 1.13 is paid at 0.97 x 70; the rest of the lot returns to the vault
    assert rec["units_closed"][0] == pytest.approx(600.0 * 1.13 / (0.97 * 70.0))
    assert res.units[0] == pytest.approx(10.0 - 600.0 * 1.13 / (0.97 * 70.0))
    np.testing.assert_allclose(res.units, ref.units, rtol=1e-12)


def test_without_a_window_the_auction_waits():
    """Window 0 (off): an unprofitable auction stays open; nothing is dealt."""
    res, _ = _one_vault(_crash(), _vault_policy(window=0.0), gas=1e6)
    assert len(res.records) == 0 and res.units[0] == 10.0


def _random_run(seed: int, profit: bool, capital: float, curve: int | None = None,
                window: bool = True, chunk_size: int = 64):
    """A random book under a random flip (ENGLISH) or clipper (STAIRSTEP) auction; ``curve``
    overrides the drawn curve and ``window`` False switches zero bids off, leaving the random
    draws (hence the book and prices) as they are."""
    rng = np.random.default_rng(900 + seed)
    steps = 120
    policy = random_policy(rng, slicing=seed % 2 == 1)
    _flip(rng, policy, window=float(rng.integers(1, 5)))
    if curve is not None:
        policy["auction_curve"] = curve
    if not window:
        policy["auction_zero_bid_steps"] = 0.0
    prices = random_prices(rng, steps, vol=0.02)
    book = random_book(rng, 300)
    prices.volume = random_volume(rng, steps)
    depth = rng.uniform(500.0, 5000.0, steps)
    gas = rng.uniform(0.0, 3.0, steps)
    market = market_params(ImpactModel.SQRT, cascade=True, keeper_latency_steps=seed % 3,
                           keeper_requires_profit=profit, keeper_capital_usd=capital)
    res = simulate(prices, book["product"], book["units"], book["cash"], policy,
                   TriggerPrice.EXTREME, FillPrice.TRIGGER, chunk_size=chunk_size,
                   block_steps=17, market=market, depth=depth, gas_usd=gas,
                   volume=prices.volume, insurance_fund_usd=50.0)
    return policy, prices, book, depth, gas, market, res


def _assert_matches_twin(policy, prices, book, depth, gas, market, res):
    """The kernel's run equals the twin's: units, cash, step metrics, deals and takes."""
    ref = simulate_reference(prices.open, prices.high, prices.low, prices.close,
                             TriggerPrice.EXTREME, FillPrice.TRIGGER, policy[0], book["product"],
                             book["units"], book["cash"], market=market[0], depth=depth,
                             gas_usd=gas, volume=prices.volume, priority=_order(book),
                             insurance_fund_usd=50.0)
    assert res.records.shape[0] == len(ref.records) > 0
    np.testing.assert_allclose(res.units, ref.units, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(res.cash, ref.cash, rtol=1e-10, atol=1e-8)
    np.testing.assert_allclose(res.step_metrics, ref.step_metrics, rtol=1e-9, atol=1e-7)
    got = np.sort(res.records, order=["step", "account"])
    ref_rec = sorted(ref.records, key=lambda r: (r["step"], r["account"]))
    np.testing.assert_array_equal(got["account"], [r["account"] for r in ref_rec])
    np.testing.assert_allclose(got["units_closed"], [r["units_closed"] for r in ref_rec],
                               rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(got["zero_bid"], [r["zero_bid"] for r in ref_rec])
    np.testing.assert_array_equal(got["auction"], [r["auction"] for r in ref_rec])


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("profit", [False, True])
def test_kernel_matches_reference_with_zero_bids(seed, profit):
    """English and Dutch auctions with a bid window, keepers who need profit (gas), order
    slicing on odd seeds: the same deals, takes, bad debt and step metrics as the twin."""
    run = _random_run(seed, profit, 0.0)
    _assert_matches_twin(*run)
    book, res = run[2], run[-1]
    _assert_conserved(book, res)
    zero = res.records[res.records["zero_bid"]]
    # a zero bid takes the whole lot, pays nothing to the fund, and writes the debt off
    assert np.all(zero["insurance_fee"] == 0.0)
    assert np.all(res.units[zero["account"]] == 0.0)
    np.testing.assert_allclose(zero["keeper_fee"], zero["units_closed"] * zero["fill_price"])


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize(("curve", "window"), [(AuctionCurve.STAIRSTEP, False),
                                               (AuctionCurve.ENGLISH, True)])
def test_kernel_matches_reference_with_keeper_capital(seed, curve, window):
    """Keepers with $300 of capital a step, Dutch (clipper, no zero bids) and English (flip,
    zero bids) auctions, keepers who need profit on half the seeds, order slicing on odd seeds:
    the budget goes account by account in processing order (a take cut short that no longer
    pays, or that chost refuses, leaves its share to the next accounts), as in the twin."""
    capital = 300.0
    run = _random_run(seed, seed % 4 < 2, capital, curve=curve, window=window)
    _assert_matches_twin(*run)
    policy, prices, book, res = run[0], run[1], run[2], run[-1]
    _assert_conserved(book, res)
    sm = res.step_metrics
    assert sm[:, StepMetric.SLICE_FACTOR].min() < 1.0  # the budget bound
    # keepers never buy more than their capital (at the step's close) in a step; zero bids
    # are outside the budget
    bought = res.records[~res.records["zero_bid"]]
    close = prices.close * sm[:, StepMetric.PRICE_FACTOR]
    taken = np.zeros(len(close))
    np.add.at(taken, bought["step"], np.abs(bought["units_closed"]))
    assert np.all(taken * close <= capital * (1 + 1e-9))
    assert policy[0]["auction_curve"] == curve


@pytest.mark.parametrize(("seed", "profit", "window"), [
    (0, True, True), (5000, True, False), (5002, False, False), (5003, False, False),
    (5012, True, False)])
def test_capital_budget_does_not_depend_on_chunk_size(seed, profit, window):
    """The same run in chunks of 16, 64 and 4096 accounts (one chunk): the same liquidations
    (records, units, cash, step metrics up to summation order). Seeds 5000-5012 once lost the
    budget that a refused take left in one chunk for the chunks after it."""
    runs = [_random_run(seed, profit, 300.0, window=window, chunk_size=size)[-1]
            for size in (16, 64, 4096)]
    first = runs[0]
    for res in runs[1:]:
        assert len(res.records) == len(first.records) > 0
        np.testing.assert_array_equal(res.records["account"], first.records["account"])
        np.testing.assert_allclose(res.records["units_closed"], first.records["units_closed"],
                                   rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(res.units, first.units, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(res.cash, first.cash, rtol=1e-10, atol=1e-8)
        np.testing.assert_allclose(res.step_metrics, first.step_metrics, rtol=1e-9, atol=1e-7)


def test_capital_budget_results_do_not_depend_on_thread_count():
    """Keeper capital with auctions and zero bids: bit-identical on one thread and on all."""
    outs = []
    before = numba.get_num_threads()
    try:
        for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
            numba.set_num_threads(threads)
            outs.append(_random_run(5012, True, 300.0, chunk_size=16)[-1])
    finally:
        numba.set_num_threads(before)
    a, b = outs[0], outs[-1]
    assert a.step_metrics.tobytes() == b.step_metrics.tobytes()
    assert a.cash.tobytes() == b.cash.tobytes()
    assert a.records.tobytes() == b.records.tobytes()


@pytest.mark.parametrize("seed", range(6))
def test_money_is_conserved_with_zero_bids_and_short_capital(seed):
    """Keepers short of capital leave auctions untaken: some go to zero bids; every dollar is
    accounted for, and a zero bid never pays the fund."""
    _, _, book, _, _, _, res = _random_run(seed, True, 300.0)
    _assert_conserved(book, res)
    zero = res.records[res.records["zero_bid"]]
    assert np.all(zero["insurance_fee"] == 0.0)
    np.testing.assert_allclose(zero["keeper_fee"], zero["units_closed"] * zero["fill_price"])


def test_some_random_runs_deal_zero_bids():
    """The runs above exercise the rule: gas and short capital send some auctions to zero."""
    dealt = sum(int(_random_run(seed, True, 300.0)[-1].records["zero_bid"].sum())
                for seed in range(6))
    assert dealt > 0


def _assert_conserved(book, res) -> None:
    """Per account: cash change = sale proceeds - fees + debt written off (zero bids: the
    proceeds are the lot's value, all of it the keeper's fee, and the debt is written off)."""
    rec = res.records
    assert_accounts_conserve_money(book, res)
    sm = res.step_metrics
    assert sm[:, StepMetric.BAD_DEBT].sum() == pytest.approx(rec["bad_debt"].sum(), rel=1e-9)


def _order(book):
    return liquidation_order(book["product"], book["units"], book["cash"])


def test_maker_flip_preset_packs_its_window_and_curve():
    rec = pack_policy(load_policy("maker-flip"), interval_seconds=300)[0]
    assert rec["auction_curve"] == AuctionCurve.ENGLISH
    assert rec["auction_zero_bid_steps"] == 2.0  # ttl 10 minutes on 5-minute candles
    assert rec["auction_buf"] == 0.97


def test_a_window_not_below_the_auction_length_is_refused(tmp_path):
    text = (STRATEGIES / "maker-flip.toml").read_text()
    (tmp_path / "bad.toml").write_text(text.replace("zero_bid_minutes = 10    # ttl",
                                                    "zero_bid_minutes = 5000"))
    with pytest.raises(ConfigError, match="zero_bid_minutes must be below tail_minutes"):
        load_policy("bad", tmp_path)


def test_a_negative_window_is_refused(tmp_path):
    text = (STRATEGIES / "maker-flip.toml").read_text()
    (tmp_path / "bad.toml").write_text(text.replace("zero_bid_minutes = 10    # ttl",
                                                    "zero_bid_minutes = -1"))
    with pytest.raises(ConfigError, match="zero_bid_minutes"):
        load_policy("bad", tmp_path)
