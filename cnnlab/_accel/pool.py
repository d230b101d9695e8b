"""Accelerated ``MaxPooling2D``: compiled forward (with the winner index) and backward.

The numbers of :mod:`cnnlab.ops.pool`, bit for bit: the first maximum of each window in
row-major order wins and gets the gradient (the first NaN where there is one), windows of any
size and stride, overlapping or not, 'same' padding read as -inf without a padded copy of ``x``;
where windows overlap, each input cell adds the ``dy`` of the windows it won in the reference's
order. The winner index is an int32, wide enough for any window.
"""

from __future__ import annotations

import numpy as np

from cnnlab._accel import kernels
from cnnlab.layers.pooling import MaxPooling2D
from cnnlab.ops.pool import winner_dtype
from cnnlab.ops.shapes import padding_amounts, window_output_hw


class FastMaxPool:
    """A ``MaxPooling2D`` layer run with compiled kernels."""

    plan_name = "FastMaxPool"

    def __init__(self, pool: MaxPooling2D) -> None:
        self.pool = pool
        self.layers = (pool,)
        self._cache: tuple | None = None

    @staticmethod
    def match(layers: list, index: int, dtype: np.dtype, last: int) -> tuple[FastMaxPool, int] | None:
        layer = layers[index]
        if isinstance(layer, MaxPooling2D) and dtype in (np.float32, np.float64):
            return FastMaxPool(layer), 1
        return None

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        pool = self.pool
        if x.dtype not in (np.float32, np.float64) or x.size == 0:  # (-1, C) rows need C > 0
            self._cache = None
            return pool.forward(x, training)
        x = np.ascontiguousarray(x)
        n, h, w, c = x.shape
        ho, wo = window_output_hw((h, w), pool.pool_size, pool.strides, pool.padding, (1, 1), "pooling")
        (top, _), (left, _) = padding_amounts((h, w), pool.pool_size, pool.strides, pool.padding)
        y = np.empty((n, ho, wo, c), dtype=x.dtype)
        arg = np.empty(y.shape, dtype=winner_dtype(pool.pool_size))
        # rows of channel vectors: the kernel indexes flat rows (no padded copy of x is made)
        geometry = (n, h, w, *pool.pool_size, *pool.strides, top, left, ho, wo)
        kernels.max_pool_forward(x.reshape(-1, c), *geometry, y.reshape(-1, c), arg.reshape(-1, c))
        self._cache = (arg, x.shape, geometry) if training else None
        return y

    def backward(self, dy: np.ndarray, need_dx: bool = True, from_logits: bool = False) -> np.ndarray | None:
        if self._cache is None:
            return self.pool.backward(dy, need_dx)
        arg, x_shape, geometry = self._cache
        c = x_shape[3]
        (ph, pw), (sh, sw) = self.pool.pool_size, self.pool.strides
        overlapping = sh < ph or sw < pw  # several windows may add into one cell, else each copies
        dx = np.empty(x_shape, dy.dtype)
        dy = np.ascontiguousarray(dy, dtype=dx.dtype)
        kernels.max_pool_backward(
            dy.reshape(-1, c), arg.reshape(-1, c), *geometry, overlapping, dx.dtype.type(0), dx.reshape(-1, c)
        )
        return dx

    def release(self) -> None:
        self._cache = None
        self.pool.release()
