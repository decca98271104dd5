"""Compound v3 (Comet) calculators against comet's own test suite.

Sources (compound-finance/comet): ``test/quote-collateral-test.ts``,
``test/is-liquidatable-test.ts``,
``test/absorb-test.ts``; defaults from ``test/helpers.ts`` ``makeProtocol``: prices
``exp(initialPrice || 1, 8)``, ``liquidateCollateralFactor`` and ``liquidationFactor`` default
to ``1e18`` (``ONE``), ``defaultAssets``: COMP $175 (18 dec), WETH $3,000 (18), WBTC $41,000
(8), USDC base (6 dec, $1).
"""

from __future__ import annotations

import pytest

from backtest.calculators import compound
from backtest.calculators.compound import Collateral


def exp(i: float, d: int) -> int:  # helpers.ts exp(i, d) for the values used here
    return round(i * 10**6) * 10**d // 10**6


USDC_PRICE, USDC_SCALE = exp(1, 8), 10**6


def test_quote_collateral_positive_amount():
    # quote-collateral-test.ts 'quotes the collateral correctly for a positive base amount':
    # storeFrontPriceFactor 0.5, COMP $200, liquidationFactor 0.6 -> discount 20%, 200 USDC
    # buys 1.25 COMP.
    q = compound.quote_collateral(exp(200, 6), exp(200, 8), 10**18, exp(0.6, 18), exp(0.5, 18),
                                  USDC_PRICE, USDC_SCALE)
    assert q == exp(1.25, 18)
    # 'quotes the collateral at market price when storeFrontPriceFactor is 0%' -> 1 COMP
    assert compound.quote_collateral(exp(200, 6), exp(200, 8), 10**18, exp(0.6, 18), 0,
                                     USDC_PRICE, USDC_SCALE) == exp(1, 18)
    # 'quotes the collateral correctly for a zero base amount'
    assert compound.quote_collateral(0, exp(200, 8), 10**18, exp(0.6, 18), exp(0.5, 18),
                                     USDC_PRICE, USDC_SCALE) == 0


def test_quote_collateral_no_intermediate_truncation_and_large_amounts():
    # 'properly calculates price without truncating integer during intermediate calculations':
    # COMP $9, LF 0.8, SFPF 0.5 -> 10% discount, 810 USDC -> 100 COMP.
    assert compound.quote_collateral(exp(810, 6), exp(9, 8), 10**18, exp(0.8, 18), exp(0.5, 18),
                                     USDC_PRICE, USDC_SCALE) == exp(100, 18)
    # 'does not overflow for large amounts': 1e15 USDC at $160 discounted -> 6.25e12 COMP
    assert compound.quote_collateral(exp(1e15, 6), exp(200, 8), 10**18, exp(0.75, 18),
                                     exp(0.8, 18), USDC_PRICE, USDC_SCALE) == exp(6.25, 12 + 18)


def test_storefront_discount_mainnet_weth():
    # MECHANISMS.md section 2 (deployments/mainnet/usdc/configuration.json): SFPF 0.5, WETH
    # liquidationFactor 0.95 -> buyers get 2.5%.
    assert compound.storefront_discount(exp(0.5, 18), exp(0.95, 18)) == exp(0.025, 18)


def comp(balance: int, lcf: int = 10**18, price: float = 1) -> Collateral:
    return Collateral(balance, exp(price, 8), 10**18, liquidate_collateral_factor=lcf)


def test_is_liquidatable_cases():
    # is-liquidatable-test.ts, USDC 6 dec $1, COMP 18 dec $1.
    base = (USDC_PRICE, USDC_SCALE)
    assert not compound.is_liquidatable(0, *base, [])  # 'defaults to false'
    assert not compound.is_liquidatable(1_000_000, *base, [])  # 'owed principal'
    assert compound.is_liquidatable(-1_000_000, *base, [])  # 'is true when user owes principal'
    debt = -100_000_000_000  # user owes $100,000
    # 'is false when collateral can cover the borrowed principal': $100,000 COMP
    assert not compound.is_liquidatable(debt, *base, [comp(exp(100_000, 18))])
    # 'is true when the collateral cannot cover': only $95,000 COMP
    assert compound.is_liquidatable(debt, *base, [comp(exp(95_000, 18))])
    # 'takes liquidateCollateralFactor into account': $100,000 at LCF 0.8
    assert compound.is_liquidatable(debt, *base, [comp(exp(100_000, 18), exp(0.8, 18))])
    # 'changes when the underlying asset price changes': COMP drops to $0.5
    assert compound.is_liquidatable(debt, *base, [comp(exp(100_000, 18), price=0.5)])


def test_is_liquidatable_mixed_zero_lcf():
    # is-liquidatable-test.ts 'isLiquidatable with mixed liquidate factors counts only positive
    # CF assets': five assets of 1 unit at $200, LCF 0.8, 400 USDC borrowed; after three LCFs are
    # set to 0 only 320 USDC of liquidity is left -> liquidatable.
    assets = [comp(exp(1, 18), exp(0.8, 18), 200) for _ in range(5)]
    borrow = -exp(400, 6)
    assert not compound.is_liquidatable(borrow, USDC_PRICE, USDC_SCALE, assets)
    zeroed = [a if i in (0, 2) else Collateral(a.balance, a.price, a.scale, 0)
              for i, a in enumerate(assets)]
    assert compound.is_liquidatable(borrow, USDC_PRICE, USDC_SCALE, zeroed)


def test_absorb_debt_only_accounts():
    # absorb-test.ts 'absorbs 1 account and pays out the absorber': principal -100, no
    # collateral -> basePaidOut 100, reserves 100 -> 0.
    r = compound.absorb(-100, USDC_PRICE, USDC_SCALE, [])
    assert (r.new_balance, r.base_paid_out, r.shortfall) == (0, 100, 100)
    # 'absorbs 2 accounts': -100 and -700 -> basePaidOut 100 and 700; reserves 2000 -> 1200
    paid = [compound.absorb(b, USDC_PRICE, USDC_SCALE, []).base_paid_out for b in (-100, -700)]
    assert paid == [100, 700] and 2000 - sum(paid) == 1200


DEFAULTS = {  # helpers.ts defaultAssets, liquidationFactor defaults to ONE
    "COMP": (exp(175, 8), 10**18),
    "WETH": (exp(3000, 8), 10**18),
    "WBTC": (exp(41000, 8), 10**8),
}


def test_absorb_more_than_enough_collateral():
    # absorb-test.ts 'absorbs an account with more than enough collateral to still cover debt':
    # 1 COMP + 1 WETH + 1 WBTC = $44,175; startingDebt = 1 - 44,175 USDC -> new balance 1
    # (supplied to the borrower), reserves -startingDebt -> -1.
    collaterals = [Collateral(exp(1, 18), *DEFAULTS["COMP"]),
                   Collateral(exp(1, 18), *DEFAULTS["WETH"]),
                   Collateral(exp(1, 8), *DEFAULTS["WBTC"])]
    starting = 1 - (exp(41000, 6) + exp(3000, 6) + exp(175, 6))
    r = compound.absorb(starting, USDC_PRICE, USDC_SCALE, collaterals)
    assert r.new_balance == 1
    assert r.base_paid_out == 1 - starting  # AbsorbDebt.basePaidOut = pU1.USDC - startingDebt
    reserves_before = -starting
    assert reserves_before - r.base_paid_out == -1  # expect(r1).to.be.equal(-finalDebt)
    assert r.seized == (exp(1, 18), exp(1, 18), exp(1, 8))


def test_absorb_three_accounts_with_collateral():
    # absorb-test.ts 'absorbs 3 accounts with collateral': every account ends at 0 and the
    # borrow total drops by the full debts 1e6 + 1e12 + 1e18 (collateral far below the debt).
    cases = [
        (-exp(1, 6), [Collateral(exp(1e-6, 18), *DEFAULTS["COMP"])]),
        (-exp(1, 12), [Collateral(exp(10, 18), *DEFAULTS["COMP"]),
                       Collateral(exp(1, 18), *DEFAULTS["WETH"])]),
        (-exp(1, 18), [Collateral(exp(10000, 18), *DEFAULTS["COMP"]),
                       Collateral(exp(50, 18), *DEFAULTS["WETH"]),
                       Collateral(exp(50, 8), *DEFAULTS["WBTC"])]),
    ]
    total = 0
    for debt, colls in cases:
        r = compound.absorb(debt, USDC_PRICE, USDC_SCALE, colls)
        assert r.new_balance == 0 and r.base_paid_out == -debt
        total += r.base_paid_out
    assert total == exp(1, 18) + exp(1, 12) + exp(1, 6)


def test_absorb_liquidation_factor_and_skipped_assets():
    # absorb-test.ts 'absorb semantics across liquidationFactor values': COMP LF 0.6 at $100,
    # 1 COMP against 150 USDC borrowed -> deltaValue $60, balance clamps to 0, basePaidOut 150;
    # with LF 0 the asset is skipped (not seized, deltaValue 0).
    coll = Collateral(exp(1, 18), exp(100, 8), 10**18, liquidation_factor=exp(0.6, 18))
    r = compound.absorb(-exp(150, 6), USDC_PRICE, USDC_SCALE, [coll])
    assert r.delta_value == exp(60, 8)
    assert (r.new_balance, r.base_paid_out, r.shortfall) == (0, exp(150, 6), exp(90, 6))
    skipped = Collateral(exp(1, 18), exp(100, 8), 10**18, liquidation_factor=0)
    r = compound.absorb(-exp(150, 6), USDC_PRICE, USDC_SCALE, [skipped])
    assert (r.delta_value, r.seized) == (0, (0,))


def test_invalid_inputs_and_storefront():
    with pytest.raises(ValueError, match="NotLiquidatable"):
        compound.absorb(0, USDC_PRICE, USDC_SCALE, [])
    with pytest.raises(ValueError, match="liquidation_factor"):
        compound.storefront_discount(exp(0.5, 18), exp(1.5, 18))
    with pytest.raises(ValueError, match="n must be"):
        compound.mul_price(-1, 1, 1)
    assert compound.can_buy_collateral(-5, 100) and compound.can_buy_collateral(99, 100)
    assert not compound.can_buy_collateral(100, 100)
