"""Accelerated ``Conv2D`` (any kernel size, stride, padding, dilation, activation).

Forward: the windows are gathered by a compiled im2col; for a small inner size
``K = kh*kw*C_in`` (<= :data:`SMALL_K`) one compiled pass computes ``cols @ w + b`` and ReLU
(BLAS is slow when K is tiny and bias and ReLU would each cost another pass); otherwise a
matmul. Activations other than ReLU/linear run as the layer runs them. Backward: ``dw = cols^T
@ dz``, ``db = sum(dz)`` and ``dx`` scattered back by a compiled col2im. The arithmetic is
:mod:`cnnlab.ops.conv`'s: the same products and sums (the matmuls' order of summation may
differ from NumPy's within float rounding; the tests bound it).
"""

from __future__ import annotations

import numpy as np

from cnnlab._accel import kernels
from cnnlab.layers.conv import Conv2D
from cnnlab.ops.conv import conv2d_backward_input, conv2d_forward_cols
from cnnlab.ops.shapes import padding_amounts, window_output_hw

#: largest kh*kw*C_in for which the compiled one-pass kernel replaces BLAS (benchmarks/RESULTS.md)
SMALL_K = 16

#: the compiled gather/scatter pays off for arrays of some size with several channels
#: (with one channel NumPy's kh*kw whole-array copies are faster)
GATHER_MIN_SIZE, GATHER_MIN_CHANNELS = 4096, 4


def _compiled_gather(a: np.ndarray) -> bool:
    return a.dtype in (np.float32, np.float64) and a.size >= GATHER_MIN_SIZE and a.shape[-1] >= GATHER_MIN_CHANNELS


def im2col(x: np.ndarray, conv: Conv2D) -> np.ndarray:
    """``cols: (N, Ho, Wo, kh, kw, C)`` as :func:`cnnlab.ops.conv.im2col` (the same values)."""
    kh, kw = conv.kernel_size
    hw = (x.shape[1], x.shape[2])
    out_hw = window_output_hw(hw, conv.kernel_size, conv.strides, conv.padding, conv.dilation_rate)
    (top, _), (left, _) = padding_amounts(hw, conv.kernel_size, conv.strides, conv.padding, conv.dilation_rate)
    cols = np.empty((x.shape[0], *out_hw, kh, kw, x.shape[3]), dtype=x.dtype)
    kernels.im2col(np.ascontiguousarray(x), kh, kw, *conv.strides, *conv.dilation_rate, top, left, cols)
    return cols


def col2im(dcols: np.ndarray, x_shape: tuple[int, ...], conv: Conv2D) -> np.ndarray:
    """The adjoint of :func:`im2col`: ``dx: (N, H, W, C)``."""
    hw = (x_shape[1], x_shape[2])
    (top, _), (left, _) = padding_amounts(hw, conv.kernel_size, conv.strides, conv.padding, conv.dilation_rate)
    dx = np.empty(x_shape, dtype=dcols.dtype)
    kernels.col2im(np.ascontiguousarray(dcols), *conv.strides, *conv.dilation_rate, top, left, dx)
    return dx


class FastConv:
    """A ``Conv2D`` layer run with compiled kernels."""

    plan_name = "FastConv"

    def __init__(self, conv: Conv2D) -> None:
        self.conv = conv
        self.layers = (conv,)
        self._cache: tuple | None = None

    @staticmethod
    def match(layers: list, index: int, dtype: np.dtype, last: int) -> tuple[FastConv, int] | None:
        layer = layers[index]
        if isinstance(layer, Conv2D) and dtype in (np.float32, np.float64):
            return FastConv(layer), 1
        return None

    def _small(self) -> bool:
        conv = self.conv
        return conv.activation in ("relu", "linear") and conv.kernel.size // conv.filters <= SMALL_K

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        conv = self.conv
        x = np.ascontiguousarray(x)
        if _compiled_gather(x) or self._small():
            cols = im2col(x, conv)
        else:
            z, cols = conv2d_forward_cols(x, conv.kernel, conv.bias, conv.strides, conv.padding, conv.dilation_rate)
            self._cache = (cols, x.shape, False) if training else None
            return conv.activate(z, training)
        n, ho, wo = cols.shape[:3]
        rows = cols.reshape(n * ho * wo, -1)
        if self._small():
            y = np.empty((n * ho * wo, conv.filters), dtype=x.dtype)
            bias = conv.bias if conv.use_bias else np.zeros(conv.filters, x.dtype)
            kernels.small_matmul_bias_relu(
                rows,
                kernels.pad_filters(conv.kernel.reshape(-1, conv.filters)),
                kernels.pad_filters(bias),
                conv.activation == "relu",
                y,
            )
            y = y.reshape(n, ho, wo, conv.filters)
            if training:
                self._cache = (cols, x.shape, True)
                conv._activated_output, conv.last_logits = y, None
            return y
        z = rows @ conv.kernel.reshape(-1, conv.filters)
        if conv.use_bias:
            z += conv.bias
        self._cache = (cols, x.shape, False) if training else None
        return conv.activate(z.reshape(n, ho, wo, conv.filters), training)

    def backward(self, dy: np.ndarray, need_dx: bool = True, from_logits: bool = False) -> np.ndarray | None:
        conv = self.conv
        cols, x_shape, small = self._cache
        k = conv.kernel.size // conv.filters
        if small and not from_logits:
            # masked in place by the kernel: dy is the caller's temporary, as in every backward
            dz = np.ascontiguousarray(dy, dtype=conv.kernel.dtype)
            m = dz.size // conv.filters
            chunks = max(1, min(64, m // 512))
            dw_parts = np.empty((chunks, k, conv.filters), dz.dtype)
            db_parts = np.empty((chunks, conv.filters), dz.dtype)
            kernels.small_matmul_bias_relu_backward(
                cols.reshape(m, k),
                conv._activated_output.reshape(m, conv.filters),
                dz.reshape(m, conv.filters),
                conv.activation == "relu",
                dw_parts,
                db_parts,
            )
            conv.store_grad("kernel", dw_parts.sum(axis=0).reshape(conv.kernel.shape))
            if conv.use_bias:
                conv.store_grad("bias", db_parts.sum(axis=0))
        else:
            dz = np.ascontiguousarray(conv.activation_backward(dy, from_logits)).reshape(-1, conv.filters)
            conv.store_grad("kernel", (cols.reshape(-1, k).T @ dz).reshape(conv.kernel.shape))
            if conv.use_bias:
                conv.store_grad("bias", dz.sum(axis=0))
        if not need_dx:
            return None
        if not _compiled_gather(cols):
            args = (conv.strides, conv.padding, conv.dilation_rate)
            return conv2d_backward_input(dz.reshape(*cols.shape[:3], -1), cols.shape, x_shape, conv.kernel, *args)
        dcols = (dz.reshape(-1, conv.filters) @ conv.kernel.reshape(k, conv.filters).T).reshape(cols.shape)
        return col2im(dcols, x_shape, conv)

    def release(self) -> None:
        self._cache = None
        self.conv.release()
