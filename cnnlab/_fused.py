"""Optional compiled kernels (numba) for memory-bound elementwise work.

NumPy needs ~10 passes over the parameters for one Adam step (4 ms for the
lecture's 1.15 M-parameter MLP here); one fused, parallel pass takes ~0.4 ms.
Each kernel performs the same float operations in the same order as the NumPy
code beside it in :mod:`cnnlab.optimizers`, so both give the same numbers.
Without numba (or with ``CNNLAB_NO_NUMBA=1``) the NumPy code runs.
"""

from __future__ import annotations

import os

import numpy as np

try:
    if os.environ.get("CNNLAB_NO_NUMBA"):
        raise ImportError("disabled by CNNLAB_NO_NUMBA")
    import numba
except ImportError:  # pragma: no cover - exercised when numba is absent
    numba = None

AVAILABLE = numba is not None

if AVAILABLE:

    @numba.njit(parallel=True, cache=True, fastmath=False)
    def adam_step(w, g, m, v, one_minus_b1, one_minus_b2, eps, alpha):  # pragma: no cover
        for i in numba.prange(w.shape[0]):
            gi = g[i]
            mi = m[i] + (gi - m[i]) * one_minus_b1
            vi = v[i] + (gi * gi - v[i]) * one_minus_b2
            m[i] = mi
            v[i] = vi
            w[i] -= (mi * alpha) / (np.sqrt(vi) + eps)

else:
    adam_step = None
