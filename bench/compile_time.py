"""Cold and warm compile time of the kernels, each measured in a fresh subprocess.

Cold: the subprocess points ``LIQBT_JIT_CACHE`` at a new, empty temporary directory, so numba
compiles every kernel. Warm: a second subprocess uses the same directory, so every kernel is
loaded from numba's on-disk cache. Each subprocess times the import of the engine, the engine's
:func:`backtest.engine.warmup.warm_up` and the first call of each brute-force kernel, and prints
them as one JSON line (``python -m bench.compile_time --child``)::

    .venv/bin/python -m bench.compile_time      # prints {"cold": {...}, "warm": {...}}
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time


def _child() -> dict:
    t0 = time.perf_counter()
    import numpy as np

    from backtest.engine.warmup import warm_up
    from backtest.kernels import bruteforce_nb as bf

    out = {"import_seconds": time.perf_counter() - t0, "engine_seconds": warm_up()}
    low = high = np.ones(2)
    for name in ("hard_liquidation_bruteforce_nb", "hard_liquidation_bruteforce_tile_nb",
                 "hard_liquidation_bruteforce_time_major_nb"):
        t0 = time.perf_counter()
        getattr(bf, name)(low, high, np.ones(2), -np.ones(2) / 2, 0.01)
        out[name.replace("hard_liquidation_", "") + "_seconds"] = time.perf_counter() - t0
    return out


def cold_and_warm(timeout_s: float = 1800.0) -> dict:
    """Compile time with an empty numba cache (cold), then with that cache filled (warm).

    Parameters
    ----------
    timeout_s : float
        Limit for each subprocess, seconds.

    Returns
    -------
    dict
        ``{"cold": {...}, "warm": {...}, "cache_dir": path}``; each inner dict has
        ``import_seconds``, ``engine_seconds`` (``warm_up()``) and one ``*_seconds`` entry per
        brute-force kernel, or ``error`` with the subprocess's last line of standard error.
    """
    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="liqbt-jit-") as cache:
        env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
        env["LIQBT_JIT_CACHE"] = cache
        for label in ("cold", "warm"):
            proc = subprocess.run([sys.executable, "-m", "bench.compile_time", "--child"],
                                  env=env, capture_output=True, text=True, timeout=timeout_s,
                                  check=False)
            if proc.returncode == 0:
                out[label] = json.loads(proc.stdout.strip().splitlines()[-1])
            else:
                tail = proc.stderr.strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
                out[label] = {"error": tail[0]}
        out["cache_dir"] = "temporary, removed"
    return out


def total_seconds(entry: dict) -> float | None:
    """Sum of an entry's ``*_seconds`` except the import (None if the subprocess failed)."""
    if "error" in entry:
        return None
    return sum(v for k, v in entry.items() if k.endswith("_seconds") and k != "import_seconds")


if __name__ == "__main__":
    if sys.argv[1:] == ["--child"]:
        print(json.dumps(_child()))
    else:
        print(json.dumps(cold_and_warm(), indent=2))
