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
    def adam_step(w, g, m, v, one_minus_b1, one_minus_b2, eps, alpha, tiny):  # pragma: no cover
        for i in numba.prange(w.shape[0]):
            gi = g[i]
            mi = m[i] + (gi - m[i]) * one_minus_b1
            vi = v[i] + (gi * gi - v[i]) * one_minus_b2
            mi = mi * np.float32(abs(mi) >= tiny)  # flush subnormals (see Optimizer._flush_subnormals)
            m[i] = mi
            v[i] = vi
            w[i] -= (mi * alpha) / (np.sqrt(vi) + eps)

else:
    adam_step = None


if AVAILABLE:

    @numba.njit(parallel=True, cache=True)
    def max_pool_forward(xp, ph, pw, sh, sw, ho, wo, y, arg):  # pragma: no cover
        """``y[n,i,j,c] = max over the window``; ``arg`` = offset of the first maximum (row-major)."""
        n_batch, channels = xp.shape[0], xp.shape[3]
        for n in numba.prange(n_batch):
            for i in range(ho):
                for j in range(wo):
                    for c in range(channels):
                        best = xp[n, i * sh, j * sw, c]
                        where = 0
                        for di in range(ph):
                            for dj in range(pw):
                                value = xp[n, i * sh + di, j * sw + dj, c]
                                if value > best:
                                    best = value
                                    where = di * pw + dj
                        y[n, i, j, c] = best
                        arg[n, i, j, c] = where

    @numba.njit(parallel=True, cache=True)
    def max_pool_backward(dy, arg, ph, pw, sh, sw, dxp):  # pragma: no cover
        """Add each ``dy`` to the input cell that won its window (``dxp`` starts at zero)."""
        n_batch, ho, wo, channels = dy.shape
        for n in numba.prange(n_batch):
            for i in range(ho):
                for j in range(wo):
                    for c in range(channels):
                        a = arg[n, i, j, c]
                        dxp[n, i * sh + a // pw, j * sw + a % pw, c] += dy[n, i, j, c]

else:
    max_pool_forward = max_pool_backward = None
