"""Explicit JIT warm-up, so compile time is measured apart from run time.

The first call of each kernel compiles it (or loads it from numba's cache, see
:mod:`backtest._jit`); :func:`warm_up` makes that call on a two-account, two-step input and
returns how long it took.
"""

from __future__ import annotations

import time

import numpy as np

from backtest.engine.dispatch import Prices, simulate
from backtest.kernels.enums import POLICY_DTYPE, PolicyFamily


def warm_up() -> float:
    """Compile (or load from cache) every engine kernel; return the seconds it took."""
    t0 = time.perf_counter()
    policy = np.zeros(1, POLICY_DTYPE)
    policy["family"] = PolicyFamily.PARTIAL
    policy["maintenance_rate"] = 0.01
    policy["target_rate"] = 0.02
    policy["close_factor"] = 0.5
    prices = Prices(*(np.array([100.0, 50.0]) for _ in range(4)))
    simulate(prices, np.array([0, 1], np.int8), np.array([1.0, 1.0]), np.array([-90.0, -60.0]),
             policy, 0, 0)
    return time.perf_counter() - t0
