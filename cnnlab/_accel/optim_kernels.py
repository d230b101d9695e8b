"""Compiled SGD and RMSprop updates (numba) on the flat weight array, any float dtype.

Each ``*_span`` does, per element, the float operations of the NumPy update in
:mod:`cnnlab.optimizers` in the same order, on scalars the caller has cast to the arrays' dtype
as the reference casts them, so the results are bit-identical to it (no fastmath: LLVM then
neither reorders nor contracts ``a*b + c`` into a fused multiply-add). The ``*_step`` drivers
run a span per block of :data:`BLOCK` values in parallel. Adam's kernel is
:func:`cnnlab._accel.kernels.adam_step` (shared with the compiled dense step).
"""

from __future__ import annotations

import numpy as np

from cnnlab._accel import AVAILABLE, njit, numba
from cnnlab._accel.kernels import UPDATE_BLOCK

#: values per parallel block (as for Adam: big enough to amortise the scheduling)
BLOCK = UPDATE_BLOCK

if AVAILABLE:
    # error_model="numpy": no division-by-zero check in the loop, so LLVM can vectorise it;
    # every loop starts at 0 for the same reason (see kernels.adam_span).

    @njit(error_model="numpy")
    def sgd_span(w, g, lr):  # pragma: no cover
        """``SGD`` without momentum: ``w -= g*lr``."""
        for i in range(w.shape[0]):
            w[i] -= g[i] * lr

    @njit(error_model="numpy")
    def sgd_momentum_span(w, g, m, lr, momentum):  # pragma: no cover
        """``SGD`` with momentum: ``m = m*momentum - g*lr``; ``w += m``."""
        for i in range(w.shape[0]):
            mi = m[i] * momentum - g[i] * lr
            m[i] = mi
            w[i] += mi

    @njit(error_model="numpy")
    def sgd_nesterov_span(w, g, m, lr, momentum):  # pragma: no cover
        """Nesterov ``SGD``: ``m = m*momentum - g*lr``; ``w += m*momentum - g*lr``."""
        for i in range(w.shape[0]):
            lr_g = g[i] * lr
            mi = m[i] * momentum - lr_g
            m[i] = mi
            w[i] += mi * momentum - lr_g

    @njit(error_model="numpy")
    def rmsprop_span(w, g, v, lr, rho, one_minus_rho, eps):  # pragma: no cover
        """``RMSprop`` without momentum: ``v = v*rho + (1 - rho)*(g*g)``;
        ``w -= (lr*g) / sqrt(v + eps)``."""
        for i in range(w.shape[0]):
            gi = g[i]
            vi = v[i] * rho + one_minus_rho * (gi * gi)
            v[i] = vi
            w[i] -= (lr * gi) / np.sqrt(vi + eps)

    @njit(error_model="numpy")
    def rmsprop_momentum_span(w, g, v, mom, lr, rho, one_minus_rho, eps, momentum):  # pragma: no cover
        """``RMSprop`` with momentum: as :func:`rmsprop_span`, then ``mom = mom*momentum +
        increment``; ``w -= mom``."""
        for i in range(w.shape[0]):
            gi = g[i]
            vi = v[i] * rho + one_minus_rho * (gi * gi)
            v[i] = vi
            mo = mom[i] * momentum + (lr * gi) / np.sqrt(vi + eps)
            mom[i] = mo
            w[i] -= mo

    @njit(parallel=True)
    def sgd_step(w, g, lr):  # pragma: no cover
        """:func:`sgd_span` on the whole flat arrays, in parallel blocks."""
        size = w.shape[0]
        for block in numba.prange((size + BLOCK - 1) // BLOCK):
            lo = block * BLOCK
            hi = min(size, lo + BLOCK)
            sgd_span(w[lo:hi], g[lo:hi], lr)

    @njit(parallel=True)
    def sgd_momentum_step(w, g, m, lr, momentum):  # pragma: no cover
        """:func:`sgd_momentum_span` on the whole flat arrays, in parallel blocks."""
        size = w.shape[0]
        for block in numba.prange((size + BLOCK - 1) // BLOCK):
            lo = block * BLOCK
            hi = min(size, lo + BLOCK)
            sgd_momentum_span(w[lo:hi], g[lo:hi], m[lo:hi], lr, momentum)

    @njit(parallel=True)
    def sgd_nesterov_step(w, g, m, lr, momentum):  # pragma: no cover
        """:func:`sgd_nesterov_span` on the whole flat arrays, in parallel blocks."""
        size = w.shape[0]
        for block in numba.prange((size + BLOCK - 1) // BLOCK):
            lo = block * BLOCK
            hi = min(size, lo + BLOCK)
            sgd_nesterov_span(w[lo:hi], g[lo:hi], m[lo:hi], lr, momentum)

    @njit(parallel=True)
    def rmsprop_step(w, g, v, lr, rho, one_minus_rho, eps):  # pragma: no cover
        """:func:`rmsprop_span` on the whole flat arrays, in parallel blocks."""
        size = w.shape[0]
        for block in numba.prange((size + BLOCK - 1) // BLOCK):
            lo = block * BLOCK
            hi = min(size, lo + BLOCK)
            rmsprop_span(w[lo:hi], g[lo:hi], v[lo:hi], lr, rho, one_minus_rho, eps)

    @njit(parallel=True)
    def rmsprop_momentum_step(w, g, v, mom, lr, rho, one_minus_rho, eps, momentum):  # pragma: no cover
        """:func:`rmsprop_momentum_span` on the whole flat arrays, in parallel blocks."""
        size = w.shape[0]
        for block in numba.prange((size + BLOCK - 1) // BLOCK):
            lo = block * BLOCK
            hi = min(size, lo + BLOCK)
            rmsprop_momentum_span(w[lo:hi], g[lo:hi], v[lo:hi], mom[lo:hi], lr, rho, one_minus_rho, eps, momentum)

else:
    sgd_span = sgd_momentum_span = sgd_nesterov_span = rmsprop_span = rmsprop_momentum_span = None
    sgd_step = sgd_momentum_step = sgd_nesterov_step = rmsprop_step = rmsprop_momentum_step = None
