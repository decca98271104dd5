"""Morpho Blue calculators against docs.morpho.org, the contract code, and the one-borrower
LLTV method of morpho-org/morpho-blue-lltv-recommendation.

Sources: morpho-org/morpho-blue ``src/Morpho.sol`` (``liquidate``, ``_isHealthy``),
``src/libraries/SharesMathLib.sol`` (virtual shares 1e6, virtual assets 1), ``ConstantsLib.sol``;
docs.morpho.org "Liquidation" (LIF = min(M, 1 / (beta x LLTV + (1 - beta))), M = 1.15,
beta = 0.3; the governance-enabled LLTVs 38.5% ... 98%);
morpho-blue-lltv-recommendation ``README.md`` (the 97% LLTV / 2% incentive example, the
"Bad Debt Example" of two suppliers, the risk-tool method) and ``gauntlet/sim_market.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from backtest.calculators import morpho

E = 10**18
SHARES = 10**6  # virtual shares per asset unit of an empty market


def test_lif_for_the_enabled_lltvs_in_exact_integers():
    # worked from Morpho.sol: wDivDown(1e18, 1e18 - wMulDown(0.3e18, 1e18 - lltv)), capped at
    # 1.15e18, for the enabled LLTVs; each within 1e-18 of the docs' 1 / (0.3 LLTV + 0.7)
    table = {980: 1_006036217303822937, 965: 1_010611419909044972, 945: 1_016776817488561260,
             915: 1_026167265264238070, 860: 1_043841336116910229, 770: 1_074113856068743286,
             625: 1_126760563380281690, 385: 1_150000000000000000}
    for lltv_permille, expected in table.items():
        lif = morpho.liquidation_incentive_factor(lltv_permille * 10**15)
        assert lif == expected
        assert lif / E == pytest.approx(min(1.15, 1 / (0.3 * lltv_permille / 1000 + 0.7)),
                                        abs=1e-15)
    # the exact WAD values: wDivDown(1e18, 1e18 - wMulDown(0.3e18, 1e18 - lltv))
    assert morpho.liquidation_incentive_factor(86 * 10**16) == 10**36 // (958 * 10**15)
    assert morpho.liquidation_incentive_factor(86 * 10**16) == 1_043841336116910229
    assert morpho.liquidation_incentive_factor(0) == morpho.MAX_LIQUIDATION_INCENTIVE_FACTOR
    with pytest.raises(ValueError, match="below 1e18"):
        morpho.liquidation_incentive_factor(E)


def _market(supply: int, borrow: int) -> morpho.MarketState:
    return morpho.MarketState(supply, supply * SHARES, borrow, borrow * SHARES)


def test_seize_all_realises_bad_debt_to_suppliers_at_once():
    # README "Bad Debt Example" setting: Alice and Bob supply 100 each, Eve borrows 160 against
    # 200 units of collateral, LLTV 80%; the collateral falls to 165 (price 0.825 x 1e36).
    # LIF at 80% = 1e36 // 0.94e18 = 1.063829787234042553; a liquidator seizes everything:
    # repaid = ceil(ceil(200e18 x 0.825e36 / 1e36) x 1e18 / LIF) = 155.1e18 + 28 wei
    market = _market(200 * E, 160 * E)
    price = 825 * 10**33
    assert not morpho.is_healthy(200 * E, 160 * E * SHARES, 160 * E, 160 * E * SHARES, price,
                                 8 * 10**17)
    r = morpho.liquidate(market, 200 * E, 160 * E * SHARES, price, 8 * 10**17,
                         seized_assets=200 * E)
    assert r.liquidation_incentive_factor == 1_063829787234042553
    assert r.repaid_assets == 155_100000000000000028
    assert r.repaid_shares == r.repaid_assets * (160 * E * SHARES + SHARES) // (160 * E + 1)
    # the rest of Eve's debt is written off from total supply in the same call
    assert r.collateral_after == 0 and r.borrow_shares_after == 0
    assert r.bad_debt_assets == 4_899999999999999972
    assert r.repaid_assets + r.bad_debt_assets == 160 * E
    assert r.market.total_supply_assets == 200 * E - r.bad_debt_assets
    assert r.market.total_borrow_assets == 0 and r.market.total_borrow_shares == 0
    # each supplier's claim falls pro rata: 100 -> 97.55 (supply shares unchanged)
    alice = morpho.to_assets_down(100 * E * SHARES, r.market.total_supply_assets,
                                  r.market.total_supply_shares)
    assert alice == pytest.approx(100 * E - r.bad_debt_assets // 2, abs=2)


def test_repay_shares_path_and_reverts():
    market = _market(10_000 * E, 8_700 * E)
    shares = 8_700 * E * SHARES
    price = 10**36  # 1 loan unit per collateral unit; 10,000 collateral at LLTV 86% < 8,700
    assert morpho.is_healthy(10_200 * E, shares, 8_700 * E, shares, price, 86 * 10**16)
    r = morpho.liquidate(market, 10_000 * E, shares, price, 86 * 10**16,
                         repaid_shares=shares // 2)
    # toAssetsUp(shares / 2) = ceil(4.35e33 x (8.7e21 + 1) / (8.7e27 + 1e6)) = 4350e18
    assert r.repaid_assets == 4_350 * E
    # seized = mulDivDown(wMulDown(4350e18, LIF 1.0438...), 1e36, 1e36)
    assert r.seized_assets == 4_350 * E * 1_043841336116910229 // E
    assert r.bad_debt_assets == 0 and r.collateral_after == 10_000 * E - r.seized_assets
    # the position is healthier: repaying with a bonus below 1/LLTV - 1 lowers LTV
    assert r.market.total_borrow_assets == 4_350 * E
    with pytest.raises(ValueError, match="exactly one"):
        morpho.liquidate(market, 10_000 * E, shares, price, 86 * 10**16)
    with pytest.raises(ValueError, match="HEALTHY_POSITION"):
        morpho.liquidate(market, 10_200 * E, shares, price, 86 * 10**16, seized_assets=E)
    with pytest.raises(ValueError, match="more than the position"):
        morpho.liquidate(market, 10_000 * E, shares, price, 86 * 10**16,
                         seized_assets=10_001 * E)


# --- the one-borrower LLTV method -----------------------------------------------------------


def test_readme_high_lltv_example():
    # README: LLTV 97%, incentive 2%, $100 of collateral borrowing $97; the collateral falls to
    # $98.5 and a liquidator repays 98.5 / 1.02 = 96.57 for all of it: $0.43 is left unbacked.
    bad = morpho.one_borrower_bad_debt(0.97, initial_collateral_usd=100.0,
                                       repay_amount_usd=1e9, max_drawdown=0.5,
                                       pct_decrease=0.015, liquidation_bonus=0.02)
    assert bad == pytest.approx(97 - 98.5 / 1.02)
    # the buffer is 1 - LLTV x (1 + LI) = 1.06%: a 1.05% fall leaves no bad debt
    assert morpho.one_borrower_bad_debt(0.97, initial_collateral_usd=100.0,
                                        repay_amount_usd=1e9, max_drawdown=0.5,
                                        pct_decrease=0.0105, liquidation_bonus=0.02) == 0.0


def test_recommendation_is_the_largest_lltv_without_bad_debt():
    kw = dict(initial_collateral_usd=200e6, repay_amount_usd=10e6, max_drawdown=0.3)
    lltvs = [x / 100 for x in range(50, 100)]
    best = morpho.recommend_lltv(lltvs, **kw)
    assert best == 0.93
    assert morpho.one_borrower_bad_debt(0.93, **kw) == 0.0
    assert morpho.one_borrower_bad_debt(0.94, **kw) > 0.0
    # the method's shortcut: a drawdown below 1 - LLTV cannot reach insolvency
    assert morpho.one_borrower_bad_debt(0.6, **kw) == 0.0
    # deeper liquidity (twice the repay per step) allows a higher LLTV
    assert morpho.recommend_lltv(lltvs, **{**kw, "repay_amount_usd": 20e6}) > best


def test_engine_reproduces_the_method_as_a_special_case():
    """One loan, a price falling 0.5% per step to the drawdown floor, repayment per step capped
    by the depth (order slicing: units per step = repay x (1 + LI) / price), the morpho-blue
    family (hard, no close factor): the engine's bad debt and the method's agree, LLTV by LLTV,
    and so does the recommendation."""
    from backtest.engine.dispatch import Prices, simulate
    from backtest.kernels.enums import FillPrice, Product, TriggerPrice
    from backtest.policies.load import load_policy, pack_policy

    initial, repay, drawdown, step = 200e6, 10e6, 0.3, 0.005
    n_steps = 200
    close = np.maximum(1.0 - drawdown, (1.0 - step) ** np.arange(1, n_steps + 1)) * 1000.0
    prices = Prices(close.copy(), close.copy(), close.copy(), close.copy())
    base = load_policy("morpho-blue")
    engine, method = {}, {}
    for lltv in (0.90, 0.92, 0.93, 0.94, 0.95):
        bonus = morpho.liquidation_incentive_factor(round(lltv * E)) / E - 1.0
        policy = base.model_copy(update={
            "loan": base.loan.model_copy(update={"liquidation_threshold": lltv,
                                                 "liquidation_bonus": bonus}),
            "slicing": base.slicing.model_copy(update={"max_step_volume_fraction": 1.0}),
        })
        rec = pack_policy(policy)
        units = np.array([initial / 1000.0])
        cash = np.array([-lltv * initial])
        volume = repay * (1.0 + bonus) / close  # units a step's depth lets the keeper seize
        res = simulate(prices, np.array([Product.LOAN], np.int8), units, cash, rec,
                       TriggerPrice.CLOSE, FillPrice.CLOSE, volume=volume)
        engine[lltv] = float(res.bad_debt[0])
        method[lltv] = morpho.one_borrower_bad_debt(
            lltv, initial_collateral_usd=initial, repay_amount_usd=repay,
            max_drawdown=drawdown, pct_decrease=step, liquidation_bonus=bonus)
        assert engine[lltv] == pytest.approx(method[lltv], rel=1e-6, abs=1.0)
    assert max(x for x in engine if engine[x] <= 1.0) == 0.93
    assert engine[0.94] > 1e5
