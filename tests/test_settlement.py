"""The settlement layer (``backtest/kernels/settlement_nb.py``): its rules by hand, and the
three kernels settling one and the same liquidation identically (issue 17).

The three-kernel case: one long worth one unit of an asset at 2,000 USD, liquidated whole at
the candle's low (about 1,521), with a penalty of 6% of the notional of which the keeper gets
30%:

- single-asset kernel: a perp, family HARD, trigger at the extreme, fill at the trigger;
- portfolio kernel: a one-asset isolated perp (penalty >= target health x maintenance, so the
  position is closed whole, as ``tests/test_portfolio_equivalence.py`` sets it);
- options kernel: one long call with a strike of 1e-20 USD, no rate, no spread and a scenario
  grid of +-5% price shocks: its mark, closing price and margin are the underlying's, so it is
  the same long with a 5% maintenance margin.

Fill price, notional and fee are then the same floats in each kernel, and keeper fee,
insurance fee, bad debt, cash after, and the fund's step (balance, draw, socialised loss) must
be bit-identical, not merely close: they are computed by the same functions. (Before the
shared layer, the portfolio kernel tracked equity apart from cash and wrote off 8.2e-14 USD of
bad debt in the ``fund_short`` case: a dust bankruptcy the single-asset kernel does not have.)
"""

from __future__ import annotations

import numpy as np
import pytest

from backtest.engine.dispatch import Prices, simulate
from backtest.kernels import settlement_nb as st
from backtest.kernels.enums import POLICY_DTYPE, FillPrice, PolicyFamily, Product, StepMetric
from backtest.kernels.enums import TriggerPrice as Trig
from backtest.kernels.options_enums import OPTIONS_PARAMS_DTYPE, OptionsStepMetric, SpreadMode
from backtest.kernels.portfolio_enums import AccountKind, PortfolioMetric
from backtest.options.book import OptionsBookArrays
from backtest.options.simulate import OptionsMarket, run_options
from backtest.portfolio import AssetRisk, PortfolioBook, PortfolioParams, simulate_portfolio
from tests.test_portfolio_equivalence import _aligned

M_RATE, PENALTY, KEEPER_SHARE = 0.05, 0.06, 0.3
LOW = 1521.1888  # not a round number: settled along another float path, cash keeps dust
CANDLES = Prices(open=np.array([2000.0, 2000.0, 1600.0]), high=np.array([2000.0, 2000.0, 1600.0]),
                 low=np.array([2000.0, LOW, 1600.0]), close=np.array([2000.0, 1600.0, 1600.0]))
FEE = PENALTY * LOW
KEEPER = KEEPER_SHARE * FEE
# cash of the long (one unit): healthy at 2,000 (cash >= -1,900), liquidatable at the low
# (cash < -0.95 x LOW = -1,445.13); after the close its equity is cash + LOW
CASES = {
    "fund_short": (-1464.48, 0.0),  # equity 56.71: keeper paid, the fund gets the rest
    "bankrupt": (-1560.13, 7.25),  # equity -38.94: keeper paid, bad debt, fund 7.25
    "bankrupt_fund_covers": (-1560.13, 1e4),  # the fund pays it all
}
#: (fee paid to the keeper, to the fund, bad debt, cash after), worked out by hand
BY_HAND = {
    "fund_short": (KEEPER, LOW - 1464.48 - KEEPER, 0.0, 0.0),
    "bankrupt": (KEEPER, 0.0, 1560.13 - LOW + KEEPER, 0.0),
    "bankrupt_fund_covers": (KEEPER, 0.0, 1560.13 - LOW + KEEPER, 0.0),
}


def _single(cash: float, fund: float):
    rec = np.zeros(1, POLICY_DTYPE)
    rec["family"] = PolicyFamily.HARD
    rec["keeper_share"] = KEEPER_SHARE
    rec["close_factor"], rec["full_close_health"] = 1.0, 1.0
    rec["maintenance_rate"] = [M_RATE, 0.2]
    rec["penalty_rate"] = [PENALTY, 0.05]
    rec["target_rate"] = [np.inf, np.inf]
    rec["tier_health"] = [1.0, 0.0, 0.0, 0.0]
    rec["tier_fraction"] = [1.0, 1.0, 1.0, 1.0]
    res = simulate(CANDLES, np.array([Product.PERP], np.int8), np.array([1.0]),
                   np.array([cash]), rec, int(Trig.EXTREME), int(FillPrice.TRIGGER),
                   insurance_fund_usd=fund)
    (r,) = res.records
    S = StepMetric
    fund_cols = res.step_metrics[:, [S.INSURANCE_FUND, S.INSURANCE_DRAW, S.SOCIALISED_LOSS]]
    return (r["fill_price"], r["keeper_fee"], r["insurance_fee"], r["bad_debt"],
            res.cash[0]), fund_cols


def _portfolio(cash: float, fund: float):
    risk = AssetRisk(liquidation_threshold=0.8, loan_to_value=0.7, liquidation_bonus=0.05,
                     maintenance_margin_rate=M_RATE, liquidation_penalty=PENALTY)
    params = PortfolioParams(order="protocol", trigger="extreme", perp_keeper_share=KEEPER_SHARE,
                             target_health=1.0, insurance_fund_usd=fund, assets={"ETH": risk})
    book = PortfolioBook(("ETH/USDT",), np.array([AccountKind.ISOLATED_PERP], np.int8),
                         np.array([0, 1], np.int64), np.zeros(1, np.int16), np.array([1.0]),
                         np.array([cash]), np.zeros(1, np.int64)).validate()
    res = simulate_portfolio(_aligned(CANDLES), book, params)
    (r,) = res.records.to_dicts()
    M = PortfolioMetric
    fund_cols = res.step_metrics[:, [M.INSURANCE_FUND, M.INSURANCE_DRAW, M.SOCIALISED_LOSS]]
    return (r["fill_price"], r["keeper_fee"], r["insurance_fee"], r["bad_debt"],
            res.book.cash[0]), fund_cols


def _options(cash: float, fund: float):
    step_ms = 60_000
    ts = 1_651_881_600_000 + np.arange(3, dtype=np.int64) * step_ms
    col = [np.asarray(a, dtype=np.float64)[:, None] for a in (CANDLES.low, CANDLES.high,
                                                             CANDLES.close)]
    market = OptionsMarket(ts, step_ms // 1000, ("ETH",), *col, np.full((3, 1), 0.6))
    book = OptionsBookArrays(("ETH",), np.zeros(1, np.int64), np.array([cash]),
                             np.zeros(1, np.int64), np.array([0, 1], np.int64),
                             np.zeros(1, np.int64), np.array([1.0]), np.zeros(1, np.int64),
                             np.ones(1, np.int8), np.array([1e-20]),
                             np.array([ts[0] + 365 * 86_400_000], np.int64))
    prm = np.zeros(1, OPTIONS_PARAMS_DTYPE)
    prm["trigger"] = Trig.EXTREME
    prm["spread_mode"] = SpreadMode.MARK_FRACTION
    prm["penalty_rate"], prm["keeper_share"] = PENALTY, KEEPER_SHARE
    prm["vol_floor"], prm["vol_shock_min_days"], prm["vol_shock_max_down"] = 0.01, 1.0, 0.5
    res = run_options(market, book, prm, np.array([-M_RATE, M_RATE]), np.zeros(1), fund)
    (r,) = res.records
    OSM = OptionsStepMetric
    fund_cols = res.step_metrics[:, [OSM.INSURANCE_FUND, OSM.INSURANCE_DRAW, OSM.SOCIALISED_LOSS]]
    return (r["decision_price"], r["keeper_fee"], r["insurance_fee"], r["bad_debt"],
            res.cash[0]), fund_cols


@pytest.mark.parametrize("case", list(CASES))
def test_three_kernels_settle_one_liquidation_identically(case):
    cash, fund = CASES[case]
    single, single_fund = _single(cash, fund)
    port, port_fund = _portfolio(cash, fund)
    opt, opt_fund = _options(cash, fund)
    assert single[0] == LOW  # liquidated whole at the low in each kernel
    # bit-identical: the same settlement functions on the same floats
    assert port == single, f"portfolio {port} != single-asset {single}"
    assert opt == single, f"options {opt} != single-asset {single}"
    np.testing.assert_array_equal(port_fund, single_fund)
    np.testing.assert_array_equal(opt_fund, single_fund)
    # and what they agree on is the hand-worked split
    keeper, insurance, bad, cash_after = BY_HAND[case]
    assert single[1:] == pytest.approx((keeper, insurance, bad, cash_after), abs=1e-9)
    # the fund's step: fees in, then the bad debt drawn, the rest socialised
    balance = fund + insurance
    draw = min(balance, bad)
    expect = [[fund, 0.0, 0.0], [balance - draw, draw, bad - draw],
              [balance - draw, 0.0, 0.0]]
    np.testing.assert_allclose(single_fund, expect, rtol=0, atol=1e-9)
    assert (single_fund[1, 2] > 0) == (case == "bankrupt")  # socialised only there


@pytest.mark.parametrize(("cash_closed", "held", "from_cash", "closed", "expect"), [
    # solvent: keeper 3, fund 7 of a 10 fee, 90 left
    (100.0, 0.0, False, True, (90.0, 3.0, 7.0, 0.0)),
    # equity after the keeper (5 - 3 + 1) below the fund's 7: it takes 3, cash to -1 (held 1)
    (5.0, 1.0, False, False, (-1.0, 3.0, 3.0, 0.0)),
    # the same paid from cash only: the fund gets 2 (cash after the keeper)
    (5.0, 1.0, True, False, (0.0, 3.0, 2.0, 0.0)),
    # bankrupt: the keeper still paid, nothing to the fund, 5 of bad debt written off
    (-2.0, 0.0, False, True, (0.0, 3.0, 0.0, 5.0)),
    # the same with something still held: no write-off, cash stays negative
    (-2.0, 4.0, False, False, (-5.0, 3.0, 0.0, 0.0)),
])
def test_split_penalty_by_hand(cash_closed, held, from_cash, closed, expect):
    """A fee of 10 with a 30% keeper share, jitted and as plain Python."""
    for fn in (st.split_penalty_nb, getattr(st.split_penalty_nb, "py_func", None)):
        if fn is None:
            continue
        got = fn(cash_closed, held, 10.0, 0.3, from_cash, closed)
        assert got == pytest.approx(expect, abs=1e-12)
        cash_after, keeper, insurance, bad = got
        assert cash_after == pytest.approx(cash_closed - keeper - insurance + bad, abs=1e-12)


def test_fund_step_and_adl_handoff_by_hand():
    # fund 10 + fees 5: incentives 4 paid, then 11 of 20 bad debt drawn
    assert st.insurance_fund_step_nb(10.0, 5.0, 4.0, 20.0) == (0.0, 4.0, 11.0)
    assert st.insurance_fund_step_nb(100.0, 5.0, 4.0, 20.0) == (81.0, 4.0, 20.0)
    assert st.socialise_step_nb(3.0, 2.0, 12.0) == (0.0, 5.0, 7.0)
    assert st.socialise_step_nb(30.0, 2.0, 12.0) == (20.0, 12.0, 0.0)
    # 9 uncovered of a step's 12 of bad debt, of which longs left 6 and shorts 2 (loans 4)
    longs, shorts, rest = st.adl_handoff_nb(9.0, 12.0, 6.0, 2.0)
    assert (longs, shorts, rest) == pytest.approx((4.5, 1.5, 3.0))
    assert st.write_off_nb(-4.0, True) == (0.0, 4.0)
    assert st.write_off_nb(-4.0, False) == (-4.0, 0.0)
    assert st.fund_share_nb(7.0, -1.0) == 0.0 and st.fund_share_nb(7.0, 3.0) == 3.0


def test_attribute_bad_debt_pro_rata():
    rec_f = np.zeros((4, 7))
    rec_f[1:4, 0] = [1.0, -2.0, 0.5]  # units closed
    rec_f[1:4, 1] = [100.0, 50.0, 200.0]  # fill prices: notionals 100, 100, 100
    st.attribute_bad_debt_nb(9.0, 1, 4, rec_f)
    np.testing.assert_allclose(rec_f[:, 4], [0.0, 3.0, 3.0, 3.0])
    assert rec_f[1:4, 4].sum() == 9.0
