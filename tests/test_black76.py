"""Black-76 against textbook values (Hull), put-call parity and finite differences."""

from __future__ import annotations

import math

import numpy as np
import pytest

from backtest.options.black76 import black76_greeks, black76_price


def test_hull_black_model_put_on_futures():
    # Hull, "Options, Futures and Other Derivatives", Black's model example: European put on
    # crude oil futures, F0 = K = 20, r = 9%, T = 4 months, sigma = 25%: p = 1.12
    p = black76_price(False, 20.0, 20.0, 4 / 12, 0.25, 0.09)
    assert p == pytest.approx(1.12, abs=0.005)
    # the worked numbers: d1 = 0.07216, N(-d1) = 0.4712, N(-d2) = 0.5288 (4-digit table
    # values, hence the tolerance)
    want = math.exp(-0.03) * (20 * 0.5288 - 20 * 0.4712)
    assert p == pytest.approx(want, abs=2e-3)
    exact = math.exp(-0.03) * 20 * math.erf(0.25 * math.sqrt(4 / 12) / 2 / math.sqrt(2))
    assert p == pytest.approx(exact, rel=1e-12)


def test_black76_on_the_forward_equals_black_scholes_textbook_values():
    # Hull's Black-Scholes example: S = 42, K = 40, r = 10%, sigma = 20%, T = 0.5:
    # c = 4.76, p = 0.81. Black-76 on the forward F = S e^(rT) gives the same prices.
    f = 42 * math.exp(0.1 * 0.5)
    c, p = black76_price([True, False], f, 40.0, 0.5, 0.2, 0.1)
    assert c == pytest.approx(4.76, abs=0.005)
    assert p == pytest.approx(0.81, abs=0.005)


def test_greeks_match_hull_delta_gamma_vega_example():
    # Hull's Greek letters example: S = 49, K = 50, r = 5%, sigma = 20%, T = 20 weeks:
    # delta = 0.522, gamma = 0.066, vega = 12.1 (per 1.00 of volatility). On the forward
    # F = S e^(rT), dV/dS = e^(rT) dV/dF and d2V/dS2 = e^(2rT) d2V/dF2.
    tau = 20 / 52
    growth = math.exp(0.05 * tau)
    g = black76_greeks(True, 49 * growth, 50.0, tau, 0.2, 0.05)
    assert float(g.delta) * growth == pytest.approx(0.522, abs=5e-4)
    assert float(g.gamma) * growth**2 == pytest.approx(0.066, abs=5e-4)
    assert float(g.vega) == pytest.approx(12.1, abs=0.05)


def test_put_call_parity():
    rng = np.random.default_rng(0)
    n = 500
    f = rng.uniform(50, 150, n)
    k = rng.uniform(50, 150, n)
    tau = rng.uniform(0.001, 3, n)
    sigma = rng.uniform(0.05, 2.0, n)
    r = rng.uniform(-0.02, 0.1, n)
    c = black76_price(True, f, k, tau, sigma, r)
    p = black76_price(False, f, k, tau, sigma, r)
    np.testing.assert_allclose(c - p, np.exp(-r * tau) * (f - k), rtol=1e-10, atol=1e-10)
    assert np.all(c >= 0) and np.all(p >= 0)


@pytest.mark.parametrize("is_call", [True, False])
def test_greeks_are_the_finite_differences_of_the_price(is_call):
    rng = np.random.default_rng(1)
    n = 200
    f = rng.uniform(60, 140, n)
    k = rng.uniform(70, 130, n)
    tau = rng.uniform(0.02, 2, n)
    sigma = rng.uniform(0.1, 1.5, n)
    r = 0.03
    g = black76_greeks(is_call, f, k, tau, sigma, r)
    np.testing.assert_allclose(g.price, black76_price(is_call, f, k, tau, sigma, r), rtol=1e-12)
    price = lambda **kw: black76_price(is_call, **{"f": f, "k": k, "tau": tau,  # noqa: E731
                                                   "sigma": sigma, "r": r, **kw})
    h = 1e-5 * f
    delta = (price(f=f + h) - price(f=f - h)) / (2 * h)
    h = 1e-4 * f
    gamma = (price(f=f + h) - 2 * g.price + price(f=f - h)) / h**2
    vega = (price(sigma=sigma + 1e-5) - price(sigma=sigma - 1e-5)) / 2e-5
    theta = -(price(tau=tau + 1e-6) - price(tau=tau - 1e-6)) / 2e-6
    np.testing.assert_allclose(g.delta, delta, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(g.gamma, gamma, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(g.vega, vega, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(g.theta, theta, rtol=1e-5, atol=1e-6)


def test_expired_and_zero_vol_options_are_worth_intrinsic_value():
    f = np.array([90.0, 100.0, 110.0])
    c = black76_greeks(True, f, 100.0, 0.0, 0.5)
    p = black76_greeks(False, f, 100.0, -1.0, 0.5)
    np.testing.assert_array_equal(c.price, [0, 0, 10])
    np.testing.assert_array_equal(p.price, [10, 0, 0])
    np.testing.assert_array_equal(c.delta, [0, 0.5, 1])
    np.testing.assert_array_equal(p.delta, [-1, -0.5, 0])
    assert np.all(c.gamma == 0) and np.all(p.vega == 0)
    np.testing.assert_allclose(black76_price(True, f, 100.0, 1.0, 0.0, 0.05),
                               math.exp(-0.05) * np.maximum(f - 100, 0))


def test_broadcasting_and_bad_input():
    out = black76_price(np.array([[True], [False]]), np.array([90.0, 100.0, 110.0]), 100.0, 0.5,
                        0.6)
    assert out.shape == (2, 3)
    with pytest.raises(ValueError, match="positive"):
        black76_price(True, -1.0, 100.0, 1.0, 0.5)
    with pytest.raises(ValueError, match="finite"):
        black76_price(True, 100.0, 100.0, np.nan, 0.5)
