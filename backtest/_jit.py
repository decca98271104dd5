"""numba configuration shared by every kernel module.

Import this module before ``numba`` anywhere in the package:

- ``LIQBT_JIT_CACHE=DIR`` sets the root of numba's on-disk cache (default: ``.numba_cache``
  next to the package, or the system temporary directory if that is read-only), so a second
  run of the same command loads compiled kernels instead of compiling them. Kernels are cached
  under a sub-directory named by a digest of the kernel sources: numba's own cache check
  looks only at the file of each function, so a change to a constant in another kernel module
  (an enum, a record layout) would otherwise reuse stale machine code;
- ``LIQBT_DISABLE_JIT=1`` (or numba's own ``NUMBA_DISABLE_JIT=1``) runs every kernel as
  plain Python, for debugging.
"""

from __future__ import annotations

import hashlib  # noqa: E402
import os
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402


def _cache_dir() -> Path:
    package = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted([Path(__file__), *(package / "kernels").glob("*.py")]):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    root = os.environ.get("LIQBT_JIT_CACHE")
    if not root:
        root = package.parent / ".numba_cache"
        if not os.access(package.parent, os.W_OK):
            root = Path(tempfile.gettempdir()) / "liqbt-numba-cache"
    return Path(root) / digest.hexdigest()[:16]


CACHE_DIR = str(_cache_dir())
os.environ["NUMBA_CACHE_DIR"] = CACHE_DIR
if os.environ.get("LIQBT_DISABLE_JIT") == "1":
    os.environ["NUMBA_DISABLE_JIT"] = "1"

import numba  # noqa: E402

# numba reads its environment once, at its own import, which may have happened before this
# (a test module or a library importing numba first): set both switches on its config too, or
# kernels decorated from here on would be compiled while numba later re-reads the environment
# (its ``reload_config``) and turns the JIT off half-way, so a compiled kernel would call a
# plain-Python one and fail to type it
numba.config.CACHE_DIR = CACHE_DIR
if os.environ.get("LIQBT_DISABLE_JIT") == "1":
    numba.config.DISABLE_JIT = True

#: Decorator for serial kernels: nopython, cached, no fastmath (bit-reproducible).
njit = numba.njit(cache=True, nogil=True, fastmath=False)
#: Decorator for kernels with ``prange`` loops over account chunks.
njit_parallel = numba.njit(cache=True, nogil=True, fastmath=False, parallel=True)
prange = numba.prange
