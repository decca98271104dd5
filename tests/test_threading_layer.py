"""numba's threading layer: which one runs, that it is reported, and that results ignore it.

``backtest._jit`` leaves numba's default order (OpenMP with the pip wheels) unless
``LIQBT_THREADING_LAYER`` asks for a layer (``tbb``: work stealing, loaded from the ``tbb``
wheel, which the test extra installs on Linux x86-64). Each child
process below picks its layer at import, so the layers are compared across processes: the
same random runs (every policy family, both paths, 1 and 2 threads) must give the same bytes
under TBB and OpenMP, since no kernel of the engine sums in a ``prange`` reduction (each chunk
writes its own slice; sums run in chunk order).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numba
import numpy as np
import pytest

from backtest import _jit
from backtest.engine.dispatch import simulate
from backtest.kernels.enums import FillPrice, PolicyFamily, TriggerPrice
from tests.kernel_inputs import random_book, random_policy, random_prices

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import hashlib, json, sys
from dataclasses import fields
import numba, numpy as np
from backtest._jit import THREADING_LAYER, threading_layer
from backtest.engine.dispatch import simulate
from backtest.kernels.enums import FillPrice, PolicyFamily, TriggerPrice
from tests.kernel_inputs import random_book, random_policy, random_prices

h = hashlib.sha256()
for seed, family in enumerate([PolicyFamily.HARD, PolicyFamily.PARTIAL, PolicyFamily.GRADUATED]):
    rng = np.random.default_rng(40 + seed)
    prices, book = random_prices(rng, 150, vol=0.02), random_book(rng, 6000)
    policy = random_policy(rng, family)
    for threads in (1, 2):
        numba.set_num_threads(threads)
        for path in ("decoupled", "time-major"):
            res = simulate(prices, book["product"], book["units"], book["cash"], policy,
                           TriggerPrice.EXTREME, FillPrice.TRIGGER, chunk_size=64, path=path)
            for f in fields(res):
                x = getattr(res, f.name)
                if isinstance(x, np.ndarray):
                    h.update(np.ascontiguousarray(x).view(np.uint8).tobytes())
print(json.dumps({"asked": THREADING_LAYER, "layer": threading_layer(),
                  "digest": h.hexdigest()}))
"""


def _child(layer: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"}
    env.update(LIQBT_THREADING_LAYER=layer, NUMBA_NUM_THREADS="2",
               PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=900, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _tbb_installed() -> bool:
    try:
        version("tbb")
    except PackageNotFoundError:
        return False
    return True


def test_the_layer_in_use_is_the_one_asked_for():
    """After a parallel kernel has run, numba reports the layer ``_jit`` asked for (numba's
    default order unless ``LIQBT_THREADING_LAYER`` or ``NUMBA_THREADING_LAYER`` says)."""
    rng = np.random.default_rng(3)
    prices, book = random_prices(rng, 50), random_book(rng, 300)
    simulate(prices, book["product"], book["units"], book["cash"],
             random_policy(rng, PolicyFamily.HARD), TriggerPrice.EXTREME, FillPrice.TRIGGER)
    if _jit.THREADING_LAYER != "default":
        assert numba.threading_layer() == _jit.THREADING_LAYER
    assert _jit.threading_layer() == numba.threading_layer()
    assert _jit.work_stealing() == (numba.threading_layer() == "tbb")
    if not _jit.NUMBA_ENV_LAYER and not os.environ.get("LIQBT_THREADING_LAYER"):
        assert _jit.THREADING_LAYER == "default"


@pytest.mark.skipif(not _tbb_installed(), reason="the tbb package is not installed")
def test_results_are_the_same_bytes_under_tbb_and_openmp():
    tbb, omp = _child("tbb"), _child("omp")
    assert (tbb["asked"], tbb["layer"]) == ("tbb", "tbb")
    assert (omp["asked"], omp["layer"]) == ("omp", "omp")
    assert tbb["digest"] == omp["digest"]


def test_an_unknown_layer_is_refused():
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"}
    env.update(LIQBT_THREADING_LAYER="threads", PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", "import backtest._jit"], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode != 0
    assert "LIQBT_THREADING_LAYER='threads'" in out.stderr
