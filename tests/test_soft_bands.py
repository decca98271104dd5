"""Soft liquidation in bands (crvUSD LLAMMA): the band arithmetic against the protocol's numbers
and the calculators, band placement, the loss model, and hard liquidation in the engine."""

from __future__ import annotations

import math

import numpy as np
import pytest

from backtest.calculators import crvusd
from backtest.engine.dispatch import Prices, simulate
from backtest.errors import ConfigError
from backtest.kernels.bands_nb import (
    band_collateral_nb,
    band_stablecoin_nb,
    bands_health_nb,
    place_bands_nb,
)
from backtest.kernels.enums import (
    BAND_FIELDS,
    N_BAND_FIELDS,
    FillPrice,
    PolicyFamily,
    StepMetric,
    TriggerPrice,
)
from backtest.policies import load_policy, pack_policy

TOP = BAND_FIELDS.index("top_price")


def _policy(a=100, n_bands=4, loan_discount=0.1, liquidation_discount=0.05):
    rec = pack_policy(load_policy("crvusd-llamma"))
    rec["band_ratio"] = (a - 1) / a
    rec["band_count"] = n_bands
    rec["band_loan_discount"] = loan_discount
    rec["maintenance_rate"][0, 1] = liquidation_discount
    return rec


def _tape(close, low=None):
    close = np.asarray(close, float)
    low = close if low is None else np.asarray(low, float)
    return Prices(close.copy(), np.maximum(close, low), low, close)


def _one_loan(units=1.0, debt=80.0):
    return np.array([1], np.int8), np.array([units]), np.array([-debt])


def test_full_band_converts_at_the_geometric_mean_as_amm_vy():
    # MECHANISMS.md section 4: a band at p_up = 3000, A = 100 converted all the way down holds
    # y x sqrt(p_up x p_down) = 2984.962 (AMM.vy get_xy_up: y x p_up / SQRT_BAND_RATIO)
    assert band_stablecoin_nb(0.0, 3000.0, 1.0, 0.99, 1) == pytest.approx(2984.962, abs=5e-4)
    assert band_collateral_nb(2970.0, 3000.0, 1.0, 0.99, 1) == 0.0
    assert band_collateral_nb(3000.0, 3000.0, 1.0, 0.99, 1) == 1.0
    # the per-band ideal loss 1 - sqrt((A - 1) / A) of MECHANISMS.md, about 0.5% at A = 100
    assert 1 - band_stablecoin_nb(0.0, 3000.0, 1.0, 0.99, 1) / 3000.0 == pytest.approx(
        crvusd.loss_per_band(100))


@pytest.mark.parametrize(("a", "n_bands"), [(100, 4), (96, 10), (30, 50)])
def test_closed_forms_match_the_calculators_band_by_band_model(a, n_bands):
    rng = np.random.default_rng(a)
    top, deposited = 3000.0, 7.5
    for p in rng.uniform(top * ((a - 1) / a) ** (n_bands + 2), top * 1.02, 200):
        state = crvusd.soft_liquidation_state(deposited, 0, n_bands - 1, p, top, a)
        y = band_collateral_nb(p, top, deposited, (a - 1) / a, n_bands)
        assert y == pytest.approx(state.collateral, rel=1e-9, abs=1e-12)
        x = band_stablecoin_nb(y, top, deposited, (a - 1) / a, n_bands)
        assert x == pytest.approx(state.stablecoin, rel=1e-9, abs=1e-9)


def test_bands_are_placed_where_the_discounted_collateral_covers_the_debt():
    product, units, cash = (np.array([1, 1, 1, 0], np.int8), np.array([1.0, 2.0, 1.0, 1.0]),
                            np.array([-50.0, -60.0, 10.0, -50.0]))
    bands = np.empty((4, N_BAND_FIELDS))
    key = np.zeros(4)
    ratio, n_bands, loan_discount, liquidation_discount = 0.99, 10, 0.09, 0.06
    place_bands_nb(product, units, cash, ratio, n_bands, loan_discount, liquidation_discount,
                   100.0, bands, key)
    for i in (0, 1):
        x_down = band_stablecoin_nb(0.0, bands[i, TOP], units[i], ratio, n_bands)
        # controller.vy: a new loan at the limit has x_down x (1 - loan_discount) = debt
        assert x_down * (1 - loan_discount) == pytest.approx(-cash[i], rel=1e-12)
        health = bands_health_nb(units[i], cash[i], bands[i, TOP], bands[i], ratio, n_bands,
                                 liquidation_discount)
        assert health == pytest.approx((1 - liquidation_discount) / (1 - loan_discount))
        assert key[i] == bands[i, TOP]
    assert np.all(bands[2:] == 0.0) and np.all(key[2:] == 0.0)  # no debt; a perp


def test_a_slow_crossing_loses_an_eighth_of_a_band_each_way():
    a, n_bands = 100, 4
    rec = _policy(a, n_bands)
    product, units, cash = _one_loan(units=1.0, debt=60.0)
    bands = np.empty((1, N_BAND_FIELDS))
    place_bands_nb(product, units, cash, (a - 1) / a, n_bands, 0.1, 0.05, 100.0, bands,
                   np.zeros(1))
    top = bands[0, TOP]
    # down through the first band in 2,000 steps, then back up
    r = (a - 1) / a
    down = np.linspace(top * 1.001, top * r * (1 + 1e-9), 2000)
    path = np.r_[down, down[::-1]]
    res = simulate(_tape(path), product, units, cash, rec, TriggerPrice.CLOSE, FillPrice.TRIGGER)
    sm = res.step_metrics
    band_value = top / n_bands  # one band's collateral (1/4 unit) at its top price
    # the market is above the band's mean price top x sqrt(r) on the way down (sold at the
    # mean) and below it on the way up (bought at the mean): each way loses
    # (1 - sqrt r)^2 / (2 (1 - r)) of the band's value, about 1 / (8 A)
    each_way = band_value * (1 - math.sqrt(r)) ** 2 / (2 * (1 - r))
    assert each_way == pytest.approx(band_value / (8 * a), rel=0.01)
    sold_loss = sm[:2000, StepMetric.SOFT_LOSS].sum()
    bought_loss = sm[2000:, StepMetric.SOFT_LOSS].sum()
    assert sold_loss == pytest.approx(each_way, rel=0.005)
    # the way back is cut short where the stablecoin runs out: the sale's loss is missing
    assert 0.98 * each_way < bought_loss <= each_way
    # back above the bands the loan holds only collateral: a little less, and the same debt
    assert res.cash[0] == pytest.approx(-60.0, abs=1e-9)
    lost = (1.0 - res.units[0]) * path[-1]
    assert lost == pytest.approx(sold_loss + bought_loss, rel=0.01)
    assert len(res.records) == 0  # soft liquidation is no liquidation event
    assert sm[:, StepMetric.N_SOFT_LIQUIDATION].max() == 1
    assert sm[-1, StepMetric.N_SOFT_LIQUIDATION] == 0


def test_a_gap_through_every_band_sells_at_the_market_then_hard_liquidates():
    a, n_bands = 100, 4
    rec = _policy(a, n_bands, loan_discount=0.1, liquidation_discount=0.05)
    product, units, cash = _one_loan(units=1.0, debt=80.0)
    res = simulate(_tape([100.0, 70.0, 70.0, 70.0]), product, units, cash, rec,
                   TriggerPrice.CLOSE, FillPrice.TRIGGER)
    sm = res.step_metrics
    # step 1: all collateral sold at 70, below every band (top ~ 90.7): the bands' prices
    # would have paid more, the arbitrageur pays the market
    assert sm[1, StepMetric.SOFT_SOLD_UNITS] == pytest.approx(1.0)
    assert sm[1, StepMetric.SOFT_PROCEEDS] == pytest.approx(70.0)
    assert sm[1, StepMetric.SOFT_LOSS] == pytest.approx(0.0, abs=1e-12)
    # step 2: health = 70 x 0.95 / 80 < 1 with no collateral left: the liquidator repays the
    # debt and takes the 70 of stablecoin; the 10 missing is bad debt
    assert len(res.records) == 1
    r = res.records[0]
    assert r["step"] == 2 and r["units_closed"] == 0.0 and r["closed"]
    assert r["health_before"] == pytest.approx(70 * 0.95 / 80)
    assert r["bad_debt"] == pytest.approx(10.0)
    assert r["keeper_fee"] == 0.0
    assert res.units[0] == 0.0 and res.cash[0] == 0.0
    assert res.bands[0, BAND_FIELDS.index("debt")] == 0.0


def test_soft_liquidation_keeps_what_a_fixed_bonus_liquidation_takes():
    """A dip into the bands and back: LLAMMA loses a fraction of a percent, Aave-style hard
    liquidation at the same threshold takes the whole bonus."""
    product, units, cash = _one_loan(units=1.0, debt=70.0)
    path = np.r_[np.linspace(100, 77, 400), np.linspace(77, 100, 400)]  # bands 81.7-73.9
    soft = simulate(_tape(path), product, units, cash, _policy(100, 10, 0.1, 0.05),
                    TriggerPrice.CLOSE, FillPrice.TRIGGER)
    hard = pack_policy(load_policy("hard"))
    hard["maintenance_rate"][0, 1] = 0.15  # LT 85%: liquidatable near 82.4
    hard_res = simulate(_tape(path), product, units, cash, hard, TriggerPrice.CLOSE,
                        FillPrice.TRIGGER)
    assert soft.step_metrics[:, StepMetric.SOFT_SOLD_UNITS].sum() > 0.2
    assert len(soft.records) == 0
    soft_equity = soft.cash[0] + soft.units[0] * 100.0
    hard_equity = hard_res.cash[0] + hard_res.units[0] * 100.0
    assert len(hard_res.records) == 1
    assert 30.0 - soft_equity < 0.01 * 100  # under 1% of the collateral value lost
    assert hard_equity < soft_equity - 2.0  # the 5% bonus on 70 of debt, and no way back


def test_policy_file_errors_name_the_field(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('name = "x"\nfamily = "soft_bands"\n[perp]\nmaintenance_margin_rate = 0.01\n'
                    'liquidation_penalty = 0.01\n[bands]\nA = 100\nloan_discount = 0.05\n'
                    'liquidation_discount = 0.06\n')
    with pytest.raises(ConfigError, match="liquidation_discount must be below loan_discount"):
        load_policy(path)
    path.write_text(path.read_text().replace("A = 100", "A = 1").replace("0.06", "0.01"))
    with pytest.raises(ConfigError, match="bands.A"):
        load_policy(path)


def test_preset_packs_the_llamalend_market():
    rec = pack_policy(load_policy("crvusd-llamma"))[0]
    assert rec["family"] == PolicyFamily.SOFT_BANDS
    assert rec["band_ratio"] == pytest.approx(95 / 96)
    assert rec["band_count"] == 10
    assert rec["band_loan_discount"] == 0.08
    assert rec["maintenance_rate"][1] == 0.05
    assert math.isclose(rec["keeper_share"], 1.0)
