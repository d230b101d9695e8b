"""Accelerated ``MaxPooling2D``: compiled forward (with the winner index) and backward.

Same numbers as :mod:`cnnlab.ops.pool` (pooling only compares and moves values): the first
maximum of each window in row-major order wins and gets the gradient, windows of any size and
stride, overlapping or not; the winner index is an int32, wide enough for any window.
"""

from __future__ import annotations

import numpy as np

from cnnlab._accel import kernels
from cnnlab.layers.pooling import MaxPooling2D
from cnnlab.ops.pool import lowest_value, winner_dtype
from cnnlab.ops.shapes import padding_amounts, window_output_hw
from cnnlab.ops.windows import pad_hw, unpad_hw


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
        if x.dtype not in (np.float32, np.float64):
            self._cache = None
            return pool.forward(x, training)
        hw = (x.shape[1], x.shape[2])
        out_hw = window_output_hw(hw, pool.pool_size, pool.strides, pool.padding, (1, 1), "pooling")
        pads = padding_amounts(hw, pool.pool_size, pool.strides, pool.padding)
        xp = np.ascontiguousarray(pad_hw(x, pads, lowest_value(x.dtype)))
        y = np.empty((x.shape[0], *out_hw, x.shape[3]), dtype=x.dtype)
        arg = np.empty(y.shape, dtype=winner_dtype(pool.pool_size))
        kernels.max_pool_forward(xp, *pool.pool_size, *pool.strides, *out_hw, y, arg)
        self._cache = (arg, x.shape, pads) if training else None
        return y

    def backward(self, dy: np.ndarray, need_dx: bool = True, from_logits: bool = False) -> np.ndarray | None:
        if self._cache is None:
            return self.pool.backward(dy, need_dx)
        arg, x_shape, pads = self._cache
        (top, bottom), (left, right) = pads
        hw = (x_shape[1], x_shape[2])
        dxp = np.empty((x_shape[0], hw[0] + top + bottom, hw[1] + left + right, x_shape[3]), dy.dtype)
        kernels.max_pool_backward(np.ascontiguousarray(dy), arg, *self.pool.pool_size, *self.pool.strides, dxp)
        return unpad_hw(dxp, pads, hw)

    def release(self) -> None:
        self._cache = None
        self.pool.release()
