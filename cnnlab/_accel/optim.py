"""Accelerated optimizer updates: one compiled parallel pass over the flat weight array.

NumPy needs several passes over the parameters for one step (about ten for Adam); one fused pass
does the same float operations in the same order (:mod:`cnnlab._accel.optim_kernels` for SGD and
RMSprop, :func:`cnnlab._accel.kernels.adam_span` for Adam) on the hyperparameters cast to the
weights' dtype as the reference casts them, so it gives the same numbers as the optimizers'
``_update`` in float32 and float64.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from cnnlab._accel import AVAILABLE, kernels, optim_kernels
from cnnlab.optimizers import SGD, Adam, Optimizer, RMSprop

#: below this many weights the NumPy update is as fast (no parallel region to start)
MIN_SIZE = 4096

_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _adam(optimizer: Adam, params: np.ndarray, grads: np.ndarray) -> None:
    """Mirrors ``Adam._update`` (constants, floors and moments come from the optimizer itself)."""
    c1, c2, eps, alpha, m_floor, g_floor = optimizer.constants(params.dtype)
    m, v = optimizer.moments(params)
    kernels.adam_step(params, grads, m, v, c1, c2, eps, alpha, m_floor, g_floor)


def _sgd(optimizer: SGD, params: np.ndarray, grads: np.ndarray) -> None:
    """Mirrors ``SGD._update``: the same branches, the same ``dt(...)`` casts, the same slot."""
    dt = params.dtype.type
    lr = dt(optimizer.learning_rate)
    if optimizer.momentum == 0:
        optim_kernels.sgd_step(params, grads, lr)
        return
    m = optimizer._slot("momentum", params)
    step = optim_kernels.sgd_nesterov_step if optimizer.nesterov else optim_kernels.sgd_momentum_step
    step(params, grads, m, lr, dt(optimizer.momentum))


def _rmsprop(optimizer: RMSprop, params: np.ndarray, grads: np.ndarray) -> None:
    """Mirrors ``RMSprop._update``: ``dt(1 - rho)`` is rounded once from the float ``1 - rho``
    (not ``dt(1) - dt(rho)``), as there."""
    dt = params.dtype.type
    v = optimizer._slot("velocity", params)
    consts = (dt(optimizer.learning_rate), dt(optimizer.rho), dt(1 - optimizer.rho), dt(optimizer.epsilon))
    if optimizer.momentum > 0:
        mom = optimizer._slot("momentum", params)
        optim_kernels.rmsprop_momentum_step(params, grads, v, mom, *consts, dt(optimizer.momentum))
    else:
        optim_kernels.rmsprop_step(params, grads, v, *consts)


_STEPS: dict[type, Callable[..., None]] = {Adam: _adam, SGD: _sgd, RMSprop: _rmsprop}


def update_for(optimizer: Optimizer, dtype: np.dtype) -> Callable[[np.ndarray, np.ndarray], None] | None:
    """``update(flat, grads)`` for ``optimizer`` on ``dtype`` weights, or None (then the optimizer's
    own NumPy update runs)."""
    # exact types only: a subclass may override _update, which the kernels would silently skip
    step = _STEPS.get(type(optimizer))
    if not AVAILABLE or step is None or np.dtype(dtype) not in _DTYPES:
        return None

    def update(params: np.ndarray, grads: np.ndarray) -> None:
        fits = (
            params.size >= MIN_SIZE
            and params.ndim == 1
            and params.dtype in _DTYPES
            and grads.dtype == params.dtype
            and grads.shape == params.shape
            and params.flags.c_contiguous
            and grads.flags.c_contiguous
        )
        if not fits:
            optimizer.apply(params, grads)
            return
        step(optimizer, params, grads)
        optimizer.end_step(flush=kernels.flush_tiny)

    return update
