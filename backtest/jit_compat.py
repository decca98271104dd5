"""Hand structured arrays to kernels so that they run whether the JIT is on or off.

Jitted kernels read a record's fields as attributes (``policy[0].maintenance_rate``); the
elements of a NumPy structured array (``numpy.void``) have no such attributes, so with the JIT
off (``LIQBT_DISABLE_JIT=1``, every kernel run as plain Python for debugging) the same access
fails. :func:`kernel_records` hands over a :class:`numpy.recarray` view then (same memory,
same values), whose elements do; with the JIT on it returns the array itself, so compiled
signatures and results do not change.
"""

from __future__ import annotations

import numpy as np

# through backtest._jit, which sets numba's cache and JIT switch before numba is imported
from backtest._jit import numba


def jit_disabled() -> bool:
    """Return True when kernels run as plain Python (``LIQBT_DISABLE_JIT=1``)."""
    return bool(numba.config.DISABLE_JIT)


def kernel_records(records: np.ndarray) -> np.ndarray:
    """Return a structured array as kernels read it, whether the JIT is on or off.

    Parameters
    ----------
    records : ndarray, shape (K,), structured dtype
        A packed parameter array (``POLICY_DTYPE``, ``MARKET_DTYPE``, ``ASSET_DTYPE``,
        ``PORTFOLIO_POLICY_DTYPE``, ``OPTIONS_PARAMS_DTYPE``).

    Returns
    -------
    ndarray, shape (K,)
        ``records`` itself when the JIT is on, else its :class:`numpy.recarray` view.
    """
    return records.view(np.recarray) if jit_disabled() else records


__all__ = ["jit_disabled", "kernel_records"]
