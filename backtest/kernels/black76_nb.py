"""Black-76 price and Greeks of European options on a future / forward, as scalar numba kernels.

Black (1976), "The pricing of commodity contracts", Journal of Financial Economics 3; in the
notation of Hull, *Options, Futures and Other Derivatives* (Black's model, chapter "Futures
options and Black's model")::

    d1 = (ln(F / K) + sigma^2 tau / 2) / (sigma sqrt(tau)),   d2 = d1 - sigma sqrt(tau)
    call = e^(-r tau) (F N(d1) - K N(d2))
    put  = e^(-r tau) (K N(-d2) - F N(-d1))
    delta_call = e^(-r tau) N(d1),   delta_put = -e^(-r tau) N(-d1)     (per unit of F)
    gamma = e^(-r tau) phi(d1) / (F sigma sqrt(tau))                   (per unit of F, squared)
    vega  = F e^(-r tau) phi(d1) sqrt(tau)                             (per 1.00 of sigma)
    theta = r V - F e^(-r tau) phi(d1) sigma / (2 sqrt(tau))           (per year, dV/dt)

``F`` forward (futures) price, USD; ``K`` strike, USD; ``tau`` time to expiry in years;
``sigma`` annualised volatility as a fraction (0.6 = 60 vol points); ``r`` continuously
compounded rate, fraction per year. At or after expiry (``tau <= 0``) or with ``sigma <= 0``
the price is the discounted intrinsic value, delta the discounted step function, and gamma,
vega and theta are 0.

These are the only implementations of the formulas used by kernels; the user-facing,
vectorised functions of :mod:`backtest.options.black76` call them, and the plain-Python twin in
:mod:`backtest.kernels.options_reference` re-derives them with :mod:`math`.
"""

from __future__ import annotations

import math

import numpy as np

from backtest._jit import njit, njit_parallel, prange

SQRT2 = math.sqrt(2.0)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@njit
def norm_cdf_nb(x):
    """Return the standard normal cumulative distribution ``N(x) = erfc(-x / sqrt(2)) / 2``.

    Parameters
    ----------
    x : float
        Standard normal quantile (dimensionless).

    Returns
    -------
    float
        Probability in [0, 1].
    """
    return 0.5 * math.erfc(-x / SQRT2)


@njit
def norm_pdf_nb(x):
    """Return the standard normal density ``phi(x)``.

    Parameters
    ----------
    x : float
        Standard normal quantile (dimensionless).

    Returns
    -------
    float
        Density, >= 0.
    """
    return INV_SQRT_2PI * math.exp(-0.5 * x * x)


@njit
def black76_price_nb(is_call, f, k, tau, sigma, r):
    """Return the Black-76 price of one European option (USD per unit of underlying).

    Parameters
    ----------
    is_call : bool
        Call (True) or put (False).
    f, k : float
        Forward price and strike, USD, > 0.
    tau : float
        Time to expiry, years (``<= 0``: expired, intrinsic value).
    sigma : float
        Annualised volatility, fraction (``<= 0``: intrinsic value).
    r : float
        Discount rate, fraction per year.

    Returns
    -------
    float
        Discounted option price, USD per unit of underlying, >= 0.
    """
    df = math.exp(-r * max(tau, 0.0))
    if tau <= 0.0 or sigma <= 0.0:
        return df * (max(f - k, 0.0) if is_call else max(k - f, 0.0))
    sd = sigma * math.sqrt(tau)
    d1 = (math.log(f / k) + 0.5 * sd * sd) / sd
    d2 = d1 - sd
    if is_call:
        return df * (f * norm_cdf_nb(d1) - k * norm_cdf_nb(d2))
    return df * (k * norm_cdf_nb(-d2) - f * norm_cdf_nb(-d1))


@njit
def black76_value_ln_nb(is_call, f, k, log_fk, sd, df):
    """Black-76 price from precomputed pieces (the hot loop of the scenario grids).

    Parameters
    ----------
    is_call : bool
    f, k : float
        Forward and strike, USD.
    log_fk : float
        ``ln(f / k)``.
    sd : float
        ``sigma x sqrt(tau)`` (``<= 0``: intrinsic value).
    df : float
        Discount factor ``e^(-r tau)``.

    Returns
    -------
    float
        Discounted option price, USD per unit of underlying, >= 0.
    """
    if sd <= 0.0:
        return df * (max(f - k, 0.0) if is_call else max(k - f, 0.0))
    d1 = log_fk / sd + 0.5 * sd
    d2 = d1 - sd
    if is_call:
        return df * (f * norm_cdf_nb(d1) - k * norm_cdf_nb(d2))
    return df * (k * norm_cdf_nb(-d2) - f * norm_cdf_nb(-d1))


@njit
def black76_greeks_nb(is_call, f, k, tau, sigma, r):
    """Return ``(price, delta, gamma, vega, theta)`` of one European option under Black-76.

    Units: price USD per unit of underlying; delta per unit of F; gamma per USD of F; vega
    USD per 1.00 of sigma (divide by 100 for one vol point); theta USD per year (calendar
    time, ``dV/dt = -dV/dtau``). Expired or zero-volatility options: intrinsic price, delta
    the discounted step (``1``/``0`` for a call, ``0``/``-1`` for a put; at the money, half),
    gamma, vega and theta 0.

    Parameters
    ----------
    is_call : bool
        Call (True) or put (False).
    f, k : float
        Forward price and strike, USD, > 0.
    tau : float
        Time to expiry, years.
    sigma : float
        Annualised volatility, fraction.
    r : float
        Discount rate, fraction per year.

    Returns
    -------
    tuple of float
        ``(price, delta, gamma, vega, theta)`` in the units above.
    """
    t = max(tau, 0.0)
    df = math.exp(-r * t)
    if tau <= 0.0 or sigma <= 0.0:
        if is_call:
            price = df * max(f - k, 0.0)
            delta = df if f > k else (0.5 * df if f == k else 0.0)
        else:
            price = df * max(k - f, 0.0)
            delta = -df if f < k else (-0.5 * df if f == k else 0.0)
        return price, delta, 0.0, 0.0, r * price
    sqt = math.sqrt(tau)
    sd = sigma * sqt
    d1 = (math.log(f / k) + 0.5 * sd * sd) / sd
    d2 = d1 - sd
    pdf = norm_pdf_nb(d1)
    if is_call:
        price = df * (f * norm_cdf_nb(d1) - k * norm_cdf_nb(d2))
        delta = df * norm_cdf_nb(d1)
    else:
        price = df * (k * norm_cdf_nb(-d2) - f * norm_cdf_nb(-d1))
        delta = -df * norm_cdf_nb(-d1)
    gamma = df * pdf / (f * sd)
    vega = f * df * pdf * sqt
    theta = r * price - f * df * pdf * sigma / (2.0 * sqt)
    return price, delta, gamma, vega, theta


@njit_parallel
def black76_greeks_array_nb(is_call, f, k, tau, sigma, r, out):
    """Fill ``out`` (shape (n, 5): price, delta, gamma, vega, theta) for flat input arrays.

    Parameters
    ----------
    is_call : ndarray, shape (n,), bool
    f, k, tau, sigma, r : ndarray, shape (n,), float64
    out : ndarray, shape (n, 5), float64
        Written in place.
    """
    for i in prange(f.shape[0]):
        p, d, g, v, th = black76_greeks_nb(is_call[i], f[i], k[i], tau[i], sigma[i], r[i])
        out[i, 0] = p
        out[i, 1] = d
        out[i, 2] = g
        out[i, 3] = v
        out[i, 4] = th


@njit_parallel
def black76_price_array_nb(is_call, f, k, tau, sigma, r):
    """Return Black-76 prices for flat input arrays, shape (n,) float64.

    Parameters
    ----------
    is_call : ndarray, shape (n,), bool
    f, k : ndarray, shape (n,), float64
        Forward prices and strikes, USD.
    tau : ndarray, shape (n,), float64
        Times to expiry, years.
    sigma : ndarray, shape (n,), float64
        Annualised volatilities, fraction.
    r : ndarray, shape (n,), float64
        Discount rates, fraction per year.

    Returns
    -------
    ndarray, shape (n,), float64
        Prices, USD per unit of underlying.
    """
    out = np.empty(f.shape[0])
    for i in prange(f.shape[0]):
        out[i] = black76_price_nb(is_call[i], f[i], k[i], tau[i], sigma[i], r[i])
    return out
