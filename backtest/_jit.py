"""numba configuration shared by every kernel module.

Import this module before ``numba`` anywhere in the package:

- ``LIQBT_JIT_CACHE=DIR`` sets numba's on-disk cache directory (``NUMBA_CACHE_DIR``), so a
  second run of the same command loads compiled kernels instead of compiling them;
- ``LIQBT_DISABLE_JIT=1`` (or numba's own ``NUMBA_DISABLE_JIT=1``) runs every kernel as
  plain Python, for debugging.
"""

from __future__ import annotations

import os

if os.environ.get("LIQBT_JIT_CACHE") and not os.environ.get("NUMBA_CACHE_DIR"):
    os.environ["NUMBA_CACHE_DIR"] = os.environ["LIQBT_JIT_CACHE"]
if os.environ.get("LIQBT_DISABLE_JIT") == "1":
    os.environ["NUMBA_DISABLE_JIT"] = "1"

import numba  # noqa: E402

#: Decorator for serial kernels: nopython, cached, no fastmath (bit-reproducible).
njit = numba.njit(cache=True, nogil=True, fastmath=False)
#: Decorator for kernels with ``prange`` loops over account chunks.
njit_parallel = numba.njit(cache=True, nogil=True, fastmath=False, parallel=True)
prange = numba.prange
