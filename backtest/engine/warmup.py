"""Explicit JIT warm-up, so compile time is measured apart from run time and paid at set-up.

The first call of each kernel compiles it (30 to 100 s on a laptop for the engine's kernels) or
loads it from numba's on-disk cache (about a second, see :mod:`backtest._jit`).
:func:`warm_up` makes that call on a two-account, two-step input and returns how long it took;
``make setup`` runs it once (``liqbt warm-up``), so the first ``liqbt run`` loads instead of
compiling. While numba really compiles (a cache miss), :func:`announce_compilation` prints one
line to standard error, so a first run never sits silent.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import numpy as np

from backtest.engine.book_flow import BookFlow, Response
from backtest.engine.dispatch import Prices, simulate
from backtest.kernels.enums import POLICY_DTYPE, PolicyFamily

#: The line printed when the first kernel of a process starts compiling.
COMPILING_MESSAGE = ("compiling the simulation kernels (first use after an install or a kernel "
                     "change; cached for later runs, `make setup` does it ahead)...")

_listener = None


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def announce_compilation(notify: Callable[[str], None] | None = None) -> None:
    """Print :data:`COMPILING_MESSAGE` once per process when numba starts compiling a kernel.

    Installs a listener on numba's ``numba:compile`` event, which fires only on a real
    compilation (a cache hit loads without it). Idempotent: later calls replace the callback.

    Parameters
    ----------
    notify : callable, optional
        Receives the message (default: print to standard error).
    """
    global _listener
    from numba.core import event

    class _FirstCompile(event.Listener):
        def __init__(self, callback: Callable[[str], None]):
            self.callback = callback
            self.told = False

        def on_start(self, ev) -> None:
            if not self.told:
                self.told = True
                self.callback(COMPILING_MESSAGE)

        def on_end(self, ev) -> None:
            pass

    if _listener is not None:
        event.unregister("numba:compile", _listener)
    _listener = _FirstCompile(notify or _stderr)
    event.register("numba:compile", _listener)


#: The two kernel paths :func:`warm_up` compiles; they share no kernel, so two processes can
#: compile them at once (``make setup`` does).
WARM_UP_PATHS = ("decoupled", "time-major")


def warm_up(notify: Callable[[str], None] | None = None,
            paths: tuple[str, ...] = WARM_UP_PATHS) -> float:
    """Compile (or load from cache) the engine kernels; return the seconds it took.

    Parameters
    ----------
    notify : callable, optional
        Receives :data:`COMPILING_MESSAGE` if a kernel has to be compiled (default: print it
        to standard error).
    paths : tuple of str
        Which of :data:`WARM_UP_PATHS` to compile: ``"decoupled"`` (static books without
        market impact) and ``"time-major"`` (every other run, moving books included). On a
        cold cache on the project's 2-core machine they took 12 s and 34 s (2026-12-06).

    Raises
    ------
    ValueError
        A path not in :data:`WARM_UP_PATHS`.

    Returns
    -------
    float
        Wall seconds of the warm-up call: compile time on a cold cache, load time on a warm one.
    """
    unknown = set(paths) - set(WARM_UP_PATHS)
    if unknown:
        raise ValueError(f"unknown warm-up path(s) {sorted(unknown)}; known: {WARM_UP_PATHS}")
    announce_compilation(notify)
    t0 = time.perf_counter()
    policy = np.zeros(1, POLICY_DTYPE)
    policy["family"] = PolicyFamily.PARTIAL
    policy["maintenance_rate"] = 0.01
    policy["target_rate"] = 0.02
    policy["close_factor"] = 0.5
    prices = Prices(*(np.array([100.0, 50.0]) for _ in range(4)))
    for path in paths:  # a static book takes the decoupled path
        simulate(prices, np.array([0, 1], np.int8), np.array([1.0, 1.0]),
                 np.array([-90.0, -60.0]), policy, 0, 0, path=path)
    if "time-major" not in paths:
        return time.perf_counter() - t0
    # a moving book (one arrival and a responder; calibrated books have both) steps time-major
    flow = BookFlow(np.array([-1, 1]), np.array([1.0, 1.0]), np.array([-90.0, -60.0]),
                    np.array([0.0, 40.0]), np.array([True, True]),
                    Response(1.0, (2.0, 1.1), (4.0, 1.5), 0))
    simulate(prices, np.array([0, 1], np.int8), np.array([1.0, 0.0]), np.array([-90.0, 0.0]),
             policy, 0, 0, flow=flow)
    return time.perf_counter() - t0
