"""numba configuration shared by every kernel module.

Import this module before ``numba`` anywhere in the package:

- ``LIQBT_JIT_CACHE=DIR`` sets the root of numba's on-disk cache (default: ``.numba_cache``
  next to the package, or the system temporary directory if that is read-only), so a second
  run of the same command loads compiled kernels instead of compiling them. Kernels are cached
  under a sub-directory named by a digest of the kernel sources: numba's own cache check
  looks only at the file of each function, so a change to a constant in another kernel module
  (an enum, a record layout) would otherwise reuse stale machine code;
- ``LIQBT_DISABLE_JIT=1`` (or numba's own ``NUMBA_DISABLE_JIT=1``) runs every kernel as
  plain Python, for debugging;
- ``LIQBT_THREADING_LAYER`` picks numba's threading layer (:data:`THREADING_LAYER`): unset
  (or ``default``), numba's own order (TBB if the loader finds it, else OpenMP, else
  workqueue: OpenMP with the pip wheels); ``tbb`` takes Intel TBB, whose scheduler steals
  work, loading the ``tbb`` wheel's library (the ``tbb`` extra) or another TBB of interface
  version 12060 or later, and falls back to numba's order when none loads; ``omp`` or
  ``workqueue`` force that layer. numba's own ``NUMBA_THREADING_LAYER``, when set, wins. No
  engine result depends on the layer (every parallel kernel writes disjoint slices and sums in
  a fixed order); what it changes is how a ``prange`` is shared: OpenMP gives each thread a
  fixed contiguous share, TBB lets an idle thread take unstarted iterations from a busy or
  descheduled one. Measured on 2 cores under load it made no difference beyond the noise, so
  it is not the default (``docs/performance.md``, "Knobs"; ``bench/RESULTS.md``, brief H18).
"""

from __future__ import annotations

import ctypes
import hashlib  # noqa: E402
import os
import sys
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

#: TBB's runtime library name per platform (the soname numba's ``tbbpool`` links against).
_LIBTBB = {"linux": "libtbb.so.12", "darwin": "libtbb.12.dylib", "win32": "tbb12.dll"}
#: The oldest TBB interface version numba's TBB layer accepts (2021 update 6).
TBB_MIN_INTERFACE = 12060


def source_digest(paths) -> str:
    """Return the sha256 (16 hex digits) of source files: names and bytes, in name order.

    Parameters
    ----------
    paths : iterable of Path
        The files (their order does not matter: they are sorted by path).
    """
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _cache_dir() -> Path:
    package = Path(__file__).resolve().parent
    kernels = source_digest([Path(__file__), *(package / "kernels").glob("*.py")])
    root = os.environ.get("LIQBT_JIT_CACHE")
    if not root:
        root = package.parent / ".numba_cache"
        if not os.access(package.parent, os.W_OK):
            root = Path(tempfile.gettempdir()) / "liqbt-numba-cache"
    return Path(root) / kernels


CACHE_DIR = str(_cache_dir())
os.environ["NUMBA_CACHE_DIR"] = CACHE_DIR
if os.environ.get("LIQBT_DISABLE_JIT") == "1":
    os.environ["NUMBA_DISABLE_JIT"] = "1"


def _load_tbb() -> bool:
    """Load TBB's runtime library globally; return whether numba's TBB layer can use it.

    The ``tbb`` wheel installs the library into ``<prefix>/lib``, which the dynamic loader
    does not search, so numba's ``tbbpool`` would fail to load it and numba would fall back to
    OpenMP: loading it here first, with ``RTLD_GLOBAL``, makes it found by its soname.
    """
    name = _LIBTBB.get(sys.platform)
    if name is None:
        return False
    for candidate in (Path(sys.prefix) / "lib" / name, Path(sys.prefix) / "Library" / "bin" /
                      name, name):
        try:
            lib = ctypes.CDLL(str(candidate), mode=ctypes.RTLD_GLOBAL)
            version = lib.TBB_runtime_interface_version
        except (OSError, AttributeError):
            continue
        version.restype = ctypes.c_int
        version.argtypes = []
        if version() < TBB_MIN_INTERFACE:
            return False
        try:
            from numba.np.ufunc import tbbpool  # noqa: F401  (links against the library)
        except ImportError:
            return False
        return True
    return False


def _threading_layer() -> str:
    """Return the threading layer to ask numba for (see the module's note)."""
    if os.environ.get("NUMBA_THREADING_LAYER"):
        layer = os.environ["NUMBA_THREADING_LAYER"]
        if layer.startswith("tbb"):
            _load_tbb()
        return layer
    want = os.environ.get("LIQBT_THREADING_LAYER", "default").strip().lower() or "default"
    if want not in ("tbb", "omp", "workqueue", "default"):
        raise ValueError(f"LIQBT_THREADING_LAYER={want!r}: expected tbb, omp, workqueue or "
                         "default")
    if want == "tbb" and not _load_tbb():
        want = "default"  # numba tries TBB, then OpenMP, then workqueue
    return want


import numba  # noqa: E402

# numba reads its environment once, at its own import, which may have happened before this
# (a test module or a library importing numba first): set both switches on its config too, or
# kernels decorated from here on would be compiled while numba later re-reads the environment
# (its ``reload_config``) and turns the JIT off half-way, so a compiled kernel would call a
# plain-Python one and fail to type it
numba.config.CACHE_DIR = CACHE_DIR
if os.environ.get("LIQBT_DISABLE_JIT") == "1":
    numba.config.DISABLE_JIT = True

#: The threading layer asked of numba: ``"tbb"``, ``"omp"``, ``"workqueue"`` or ``"default"``
#: (numba's order; also when ``tbb`` was asked for and cannot be loaded). Set in the environment
#: too, so that a reload of numba's configuration keeps it and child processes ask for the same.
THREADING_LAYER = _threading_layer()
#: ``NUMBA_THREADING_LAYER`` as this process found it (None: unset), before it was set here.
NUMBA_ENV_LAYER = os.environ.get("NUMBA_THREADING_LAYER")
os.environ["NUMBA_THREADING_LAYER"] = THREADING_LAYER
numba.config.THREADING_LAYER = THREADING_LAYER


def threading_layer() -> str:
    """Return the threading layer in use, else the one asked for (:data:`THREADING_LAYER`).

    The layer in use is numba's, once a parallel kernel has run.
    """
    try:
        return numba.threading_layer()
    except ValueError:  # no parallel region has run yet
        return THREADING_LAYER


def work_stealing() -> bool:
    """Return whether the threading layer lets idle threads take unstarted ``prange`` iterations.

    It does under TBB (with ``numba.set_parallel_chunksize(1)``), so that a kernel may hand a
    ``prange`` many small units instead of one share per thread.
    """
    return threading_layer() == "tbb"


#: Decorator for serial kernels: nopython, cached, no fastmath (bit-reproducible).
njit = numba.njit(cache=True, nogil=True, fastmath=False)
#: Decorator for kernels with ``prange`` loops over account chunks.
njit_parallel = numba.njit(cache=True, nogil=True, fastmath=False, parallel=True)
prange = numba.prange
