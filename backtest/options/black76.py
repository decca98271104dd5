"""Black-76 price and Greeks of European calls and puts on a future / forward, vectorised.

The formulas (Black 1976; Hull, *Options, Futures and Other Derivatives*, "Black's model")
are implemented once, as scalar numba kernels in :mod:`backtest.kernels.black76_nb`; these
functions broadcast NumPy inputs against each other and call them in parallel.

Units everywhere: prices and strikes USD (per unit of underlying), time to expiry ``tau`` in
years, volatility ``sigma`` an annualised fraction (0.6 = 60 vol points), rate ``r`` a
continuously compounded fraction per year.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backtest.kernels.black76_nb import black76_greeks_array_nb, black76_price_array_nb


@dataclass(frozen=True)
class Greeks:
    """Black-76 price and Greeks, each an array of the broadcast input shape (float64).

    Attributes
    ----------
    price : ndarray
        Option price, USD per unit of underlying.
    delta : ndarray
        dV/dF (calls in [0, e^-r tau], puts in [-e^-r tau, 0]).
    gamma : ndarray
        d2V/dF2, per USD of F.
    vega : ndarray
        dV/dsigma, USD per 1.00 of volatility (divide by 100 for one vol point).
    theta : ndarray
        dV/dt in calendar time, USD per year (divide by 365 for one day); usually negative.
    """

    price: np.ndarray
    delta: np.ndarray
    gamma: np.ndarray
    vega: np.ndarray
    theta: np.ndarray


def _broadcast(is_call, f, k, tau, sigma, r):
    arrays = np.broadcast_arrays(np.asarray(is_call, dtype=bool), *(
        np.asarray(v, dtype=np.float64) for v in (f, k, tau, sigma, r)))
    shape = arrays[0].shape
    flat = [np.ascontiguousarray(a.ravel()) for a in arrays]
    if np.any(~(flat[1] > 0)) or np.any(~(flat[2] > 0)):
        raise ValueError("forward price f and strike k must be positive numbers")
    if np.any(~np.isfinite(flat[3])) or np.any(~np.isfinite(flat[4])) or np.any(
            ~np.isfinite(flat[5])):
        raise ValueError("tau, sigma and r must be finite numbers")
    return shape, flat


def black76_price(is_call, f, k, tau, sigma, r=0.0) -> np.ndarray:
    """Return the Black-76 price of European options.

    Parameters
    ----------
    is_call : bool or array_like of bool
        True for calls, False for puts.
    f : float or array_like
        Forward / futures price, USD, > 0.
    k : float or array_like
        Strike, USD, > 0.
    tau : float or array_like
        Time to expiry, years; ``<= 0`` gives the (undiscounted) intrinsic value.
    sigma : float or array_like
        Annualised volatility, fraction; ``<= 0`` gives the discounted intrinsic value.
    r : float or array_like, default 0
        Discount rate, fraction per year.

    Returns
    -------
    numpy.ndarray
        float64, the broadcast shape of the inputs: ``e^(-r tau) (F N(d1) - K N(d2))`` for
        calls, ``e^(-r tau) (K N(-d2) - F N(-d1))`` for puts.

    Raises
    ------
    ValueError
        If ``f`` or ``k`` is not positive, or ``tau``, ``sigma``, ``r`` not finite.
    """
    shape, (c, f_, k_, t_, s_, r_) = _broadcast(is_call, f, k, tau, sigma, r)
    return black76_price_array_nb(c, f_, k_, t_, s_, r_).reshape(shape)


def black76_greeks(is_call, f, k, tau, sigma, r=0.0) -> Greeks:
    """Return the Black-76 price, delta, gamma, vega and theta of European options.

    Parameters are as for :func:`black76_price`.

    Returns
    -------
    Greeks
        Arrays of the broadcast input shape (float64); units in :class:`Greeks`.

    Raises
    ------
    ValueError
        As :func:`black76_price`.
    """
    shape, (c, f_, k_, t_, s_, r_) = _broadcast(is_call, f, k, tau, sigma, r)
    out = np.empty((c.size, 5))
    black76_greeks_array_nb(c, f_, k_, t_, s_, r_, out)
    cols = [np.ascontiguousarray(out[:, j]).reshape(shape) for j in range(5)]
    return Greeks(*cols)
