"""Training-time fusion of ``Conv2D -> MaxPooling2D`` pairs (the lecture's conv1 + pool1).

When a small-kernel Conv2D (``kh*kw*C_in <= 16``, ReLU or linear) is directly followed by a
non-overlapping 'valid' max pooling and no gradient is needed for the convolution's input
(it is the first layer with weights), one compiled pass computes convolution, ReLU and pooling
without writing the 5x larger convolution output, and the backward pass touches only the
cells that won their pooling window (the others get no gradient). Forward outputs are the same
numbers as the two layers give separately; gradients agree to float32 rounding (tested).
Without numba nothing is fused.
"""

from __future__ import annotations

import numpy as np

from cnnlab import _fused
from cnnlab.layers.conv import Conv2D
from cnnlab.layers.pooling import MaxPooling2D
from cnnlab.ops.conv import im2col


class ConvPool:
    """A Conv2D and the MaxPooling2D after it, run as one step of the training loop."""

    def __init__(self, conv: Conv2D, pool: MaxPooling2D) -> None:
        self.conv, self.pool = conv, pool
        self._cache: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    @staticmethod
    def applies(conv: object, pool: object, x_dtype: np.dtype) -> bool:
        return (
            _fused.AVAILABLE
            and isinstance(conv, Conv2D)
            and isinstance(pool, MaxPooling2D)
            and conv.activation in ("relu", "linear")
            and conv.use_bias
            and np.dtype(x_dtype) in (np.float32, np.float64)
            and conv.kernel.size // conv.filters <= 16
            and pool.padding == "valid"
            and pool.strides == pool.pool_size
        )

    def forward(self, x: np.ndarray) -> np.ndarray:
        """``x: (N, H, W, C)`` -> the pooled output ``(N, Po, Qo, filters)``."""
        conv, pool = self.conv, self.pool
        cols = im2col(x, conv.kernel_size, conv.strides, conv.padding, conv.dilation_rate)
        n, ho, wo = cols.shape[:3]
        ph, pw = pool.pool_size
        shape = (n, ho // ph, wo // pw, conv.filters)
        y = np.empty(shape, dtype=x.dtype)
        arg = np.empty(shape, dtype=np.int8)
        cols4 = cols.reshape(n, ho, wo, -1)
        _fused.conv_pool_forward(
            cols4, conv.kernel.reshape(-1, conv.filters), conv.bias, conv.activation == "relu", ph, pw, y, arg
        )
        self._cache = (cols4, y, arg)
        return y

    def backward(self, dy: np.ndarray) -> None:
        """Fill the convolution's weight gradients (no input gradient: see the module docstring)."""
        conv = self.conv
        cols4, y, arg = self._cache
        chunks = max(1, min(64, len(y)))
        k = cols4.shape[3]
        dw_parts = np.empty((chunks, k, conv.filters), y.dtype)
        db_parts = np.empty((chunks, conv.filters), y.dtype)
        _fused.conv_pool_backward(
            cols4,
            y,
            arg,
            np.ascontiguousarray(dy, dtype=y.dtype),
            conv.activation == "relu",
            *self.pool.pool_size,
            dw_parts,
            db_parts,
        )
        conv.store_grad("kernel", dw_parts.sum(axis=0).reshape(conv.kernel.shape))
        conv.store_grad("bias", db_parts.sum(axis=0))

    def release(self) -> None:
        self._cache = None
