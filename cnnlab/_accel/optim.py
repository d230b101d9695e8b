"""Accelerated optimizer updates: one compiled parallel pass over the flat weight array.

NumPy needs about ten passes over the parameters for one Adam step; one fused pass does the
same float operations in the same order (:func:`cnnlab._accel.kernels.adam_span`), so it gives
the same numbers as ``Adam._update``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from cnnlab._accel import kernels
from cnnlab.optimizers import Adam, Optimizer

#: below this many weights the NumPy update is as fast (no parallel region to start)
MIN_SIZE = 4096


def update_for(optimizer: Optimizer, dtype: np.dtype) -> Callable[[np.ndarray, np.ndarray], None] | None:
    """``update(flat, grads)`` for ``optimizer`` on ``dtype`` weights, or None (then the optimizer's
    own NumPy update runs)."""
    if type(optimizer) is Adam and dtype == np.float32:

        def adam(params: np.ndarray, grads: np.ndarray) -> None:
            if params.size < MIN_SIZE:
                optimizer.apply(params, grads)
                return
            c1, c2, eps, alpha, m_floor, g_floor = optimizer.constants(params.dtype)
            m, v = optimizer.moments(params)
            kernels.adam_step(params, grads, m, v, c1, c2, eps, alpha, m_floor, g_floor)
            optimizer.end_step(flush=kernels.flush_tiny)

        return adam
    return None
