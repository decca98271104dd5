"""crvUSD / LlamaLend LLAMMA calculators against curve-stablecoin's tests and code.

Sources: curvefi/curve-stablecoin ``tests/amm/test_price_oracles.py`` (``A = 100``,
``PRICE = 3000`` from ``tests/conftest.py``), ``curve_stablecoin/controller.vy`` (``_health``,
``_get_f_remove`` and its formula comment) and MECHANISMS.md section 4 (conversion model
numbers).
"""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest.calculators import crvusd

A, P_BASE = 100, 3000.0
WAD = 10**18


def test_p_oracle_updown():
    # test_price_oracles.py::test_p_oracle_updown
    assert crvusd.p_oracle_up(0, P_BASE, A) == P_BASE
    assert crvusd.p_oracle_down(0, P_BASE, A) == pytest.approx(P_BASE * (A - 1) // A, rel=1e-14)
    for i in range(-10, 10):
        p_up = P_BASE * ((A - 1) / A) ** i
        assert crvusd.p_oracle_up(i, P_BASE, A) == pytest.approx(p_up, rel=1e-14)
        assert crvusd.p_oracle_down(i, P_BASE, A) == pytest.approx(p_up * (A - 1) / A, rel=1e-14)


def test_p_current_updown():
    # test_price_oracles.py::test_p_current_updown (p_oracle = PRICE): p_current_up =
    # p_o**3 / p_base_down**2, p_current_down = p_o**3 / p_base_up**2, rel 1e-10.
    p_o = 3000.0
    for i in range(-1023, 1023, 37):
        up = P_BASE * ((A - 1) / A) ** i
        down = up * (A - 1) / A
        assert crvusd.p_current_up(i, P_BASE, p_o, A) == pytest.approx(p_o**3 / down**2, rel=1e-10)
        assert crvusd.p_current_down(i, P_BASE, p_o, A) == pytest.approx(p_o**3 / up**2, rel=1e-10)


def test_band_index_brackets_price():
    for p in (3000.0, 2999.99, 2970.0, 2969.99, 1500.0, 4500.0):
        n = crvusd.band_index(p, P_BASE, A)
        assert crvusd.p_oracle_down(n, P_BASE, A) < p <= crvusd.p_oracle_up(n, P_BASE, A)


def test_f_remove_matches_formula_comment():
    # controller.vy _get_f_remove: "f_remove = ((1 + h / 2) / (1 + h) * (1 - frac) + frac) * frac"
    assert crvusd.f_remove(WAD, 5 * 10**16) == WAD  # full liquidation removes everything
    assert crvusd.f_remove(0, 5 * 10**16) == 0
    h, frac = Fraction(5, 100), Fraction(1, 2)
    exact = ((1 + h / 2) / (1 + h) * (1 - frac) + frac) * frac * WAD
    got = crvusd.f_remove(WAD // 2, 5 * 10**16)
    assert abs(got - exact) <= 2  # two floor divisions
    assert got < WAD // 2  # a partial liquidation removes less than frac of the collateral


@settings(max_examples=200, deadline=None)
@given(frac=st.integers(0, WAD), h=st.integers(0, WAD // 2))
def test_f_remove_between_frac_squared_and_frac(frac, h):
    # (1 + h/2)/(1 + h) is in (0.5, 1]: the removed share lies between frac and frac*(1+frac)/2
    fr = crvusd.f_remove(frac, h)
    assert frac * (WAD + frac) // (2 * WAD) - 2 <= fr <= frac


def test_health_formula():
    # controller.vy _health: x_down * (1 - ld) / debt - 1. x_down 1,050 crvUSD against 1,000
    # debt with a 5% liquidation discount -> health -0.25%: hard-liquidatable.
    h = crvusd.health(1050 * WAD, 1000 * WAD, 5 * 10**16)
    assert h == 1050 * WAD * (WAD - 5 * 10**16) // (1000 * WAD) - WAD == -25 * 10**14
    assert h < 0
    # full=True above the bands adds (p_oracle - p_up(n1)) * collateral / debt:
    # 1 ETH at $3,100 with a top band at $3,000 adds 0.1 to the health
    full = crvusd.health(1050 * WAD, 1000 * WAD, 5 * 10**16, full=True, price_oracle=3100 * WAD,
                         p_up_n1=3000 * WAD, collateral=WAD, in_soft_liquidation=False)
    assert full == h + 10**17
    # ... but not once the loan is in soft liquidation
    assert crvusd.health(1050 * WAD, 1000 * WAD, 5 * 10**16, full=True, price_oracle=3100 * WAD,
                         p_up_n1=3000 * WAD, collateral=WAD) == h
    with pytest.raises(ValueError, match="debt"):
        crvusd.health(WAD, 0, 0)


def test_conversion_model_numbers():
    # MECHANISMS.md section 4: a band at A=100, p_up 3000 converted all the way down yields
    # y * sqrt(p_up * p_down) = 2984.962 (6 significant figures); loss per band
    # 1 - sqrt(0.99) ~ 0.5%.
    up, down = crvusd.p_oracle_up(0, P_BASE, A), crvusd.p_oracle_down(0, P_BASE, A)
    assert round(math.sqrt(up * down), 3) == 2984.962
    assert crvusd.loss_per_band(A) == pytest.approx(0.005012562, rel=1e-6)
    # a 4-band loan: price below all bands -> everything converted at the geometric means
    s = crvusd.soft_liquidation_state(4.0, 0, 3, 2000.0, P_BASE, A)
    assert s.collateral == 0.0 and s.bands_fully_converted == 4
    expected = sum(math.sqrt(crvusd.p_oracle_up(n, P_BASE, A) * crvusd.p_oracle_down(n, P_BASE, A))
                   for n in range(4))
    assert s.stablecoin == pytest.approx(expected)
    # half-way through band 0: half of its collateral sold
    mid = (up + down) / 2
    s = crvusd.soft_liquidation_state(4.0, 0, 3, mid, P_BASE, A)
    assert s.collateral == pytest.approx(3.5)
    assert crvusd.band_sold_fraction(3100.0, up, down) == 0.0


def test_invalid_inputs():
    with pytest.raises(ValueError, match="A must"):
        crvusd.p_oracle_up(0, 3000.0, 1)
    with pytest.raises(ValueError, match="p_base"):
        crvusd.p_oracle_up(0, -1.0, 100)
    with pytest.raises(ValueError, match="bands"):
        crvusd.soft_liquidation_state(1.0, 0, 1, 3000.0, 3000.0, 100)
    with pytest.raises(ValueError, match="frac"):
        crvusd.f_remove(2 * WAD, 0)


# --- single-band conversion -----------------------------------------------------------------
# Worked from the band grid of AMM.vy (p_oracle_up(n) = p_base x ((A-1)/A)^n) and the fully
# converted band value of get_xy_up (y x p_up / SQRT_BAND_RATIO = y x sqrt(p_up x p_down)).


def test_band_conversion_above_inside_below():
    # A = 100, p_base 3000, band 5: p_up = 3000 x 0.99^5 = 2852.9701..., p_down = x 0.99
    up, down = crvusd.p_oracle_up(5, P_BASE, A), crvusd.p_oracle_down(5, P_BASE, A)
    assert up == pytest.approx(3000 * 0.99**5, rel=1e-14) and down == pytest.approx(up * 0.99)
    above = crvusd.band_conversion(2.0, up * 1.01, 5, P_BASE, A)
    assert (above.collateral, above.stablecoin, above.sold_fraction) == (2.0, 0.0, 0.0)
    below = crvusd.band_conversion(2.0, down * 0.5, 5, P_BASE, A)
    assert below.collateral == 0.0 and below.sold_fraction == 1.0
    assert below.stablecoin == pytest.approx(2.0 * up * math.sqrt(0.99), rel=1e-14)
    mid = crvusd.band_conversion(2.0, (up + down) / 2, 5, P_BASE, A)
    assert mid.sold_fraction == pytest.approx(0.5)
    assert mid.collateral == pytest.approx(1.0)
    assert mid.stablecoin == pytest.approx(math.sqrt(up * down))


def test_band_conversion_loss_is_loss_per_band_at_the_top_edge_price():
    # a fully converted band gives y x p_up x sqrt((A-1)/A): the loss against the band's top
    # price is loss_per_band(A) = 1 - sqrt(0.99) = 0.0050126...
    for a in (10, 100, 1000):
        up = crvusd.p_oracle_up(0, 1000.0, a)
        full = crvusd.band_conversion(1.0, 1.0, 0, 1000.0, a)
        assert 1 - full.stablecoin / up == pytest.approx(crvusd.loss_per_band(a), rel=1e-12)


def test_band_conversion_sums_to_soft_liquidation_state_and_rejects_bad_input():
    p = crvusd.p_oracle_up(7, P_BASE, A) * 0.997  # inside band 7
    state = crvusd.soft_liquidation_state(10.0, 3, 12, p, P_BASE, A)
    bands = [crvusd.band_conversion(1.0, p, n, P_BASE, A) for n in range(3, 13)]
    assert state.collateral == pytest.approx(sum(b.collateral for b in bands), rel=1e-14)
    assert state.stablecoin == pytest.approx(sum(b.stablecoin for b in bands), rel=1e-14)
    assert state.bands_fully_converted == 4  # bands 3..6 lie above p: fully converted
    with pytest.raises(ValueError, match="y must be"):
        crvusd.band_conversion(-1.0, p, 7, P_BASE, A)
    with pytest.raises(ValueError):
        crvusd.band_conversion(1.0, 0.0, 7, P_BASE, A)
