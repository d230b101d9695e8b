"""Fusion of a ``Conv2D`` with the non-overlapping max pooling after it.

When a Conv2D (ReLU or linear) is directly followed by a non-overlapping 'valid' max pooling,
the training step runs the two as one unit of the plan:

* forward: the convolution's products are summed as the Conv2D layer itself sums them (the
  compiled small-K kernel for ``kh*kw*C_in <= SMALL_K``, im2col + a matmul otherwise), then
  bias, ReLU and pooling happen in one compiled pass, so the ReLU output is never written and
  pooled separately. For float32 with a larger K each of numba's threads runs OpenBLAS's sgemm
  on its block of images and pools it at once (:mod:`cnnlab._accel.blas`). Outputs are the
  numbers the two layers give separately (on the sgemm path OpenBLAS may round the last rows
  of a block differently, within float32 rounding; tested).
* backward: only the cell that won each pooling window gets a gradient, so one compiled pass
  visits one output in ``ph*pw`` and accumulates the kernel, bias and -- unless this is the
  model's first weighted layer -- input gradients directly, with no dense ``dy`` of the
  convolution's size, no BLAS and no col2im. Gradients agree with the separate layers' to
  float rounding (the sums run in a different order; tested).

For float32 with ``K > SMALL_K`` whose window array ``cols: (N*Ho*Wo, K)`` would exceed
:data:`SPLIT_COLS_BYTES` the unit instead runs :class:`cnnlab._accel.conv.FastConv` (blocked
sgemm on both cores, no ``cols`` kept) and :class:`cnnlab._accel.pool.FastMaxPool` one after the
other: for large layers reading and writing the whole ``cols`` array and the winners-only
scalar backward cost more than the dense blocked matmuls (benchmarks/conv_layers.py).

Measurements: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import numpy as np

from cnnlab._accel import blas, kernels, threads
from cnnlab._accel.conv import SMALL_K, FastConv, im2col
from cnnlab._accel.pool import FastMaxPool
from cnnlab.layers.conv import Conv2D
from cnnlab.layers.pooling import MaxPooling2D
from cnnlab.ops.pool import winner_dtype
from cnnlab.ops.shapes import padding_amounts, window_output_hw

#: above this size of ``cols`` (bytes) float32 layers with K > SMALL_K run as FastConv + FastMaxPool
SPLIT_COLS_BYTES = 24 * 2**20


class ConvPool:
    """A Conv2D and the MaxPooling2D after it, run as one step of the training loop."""

    plan_name = "ConvPool"

    def __init__(self, conv: Conv2D, pool: MaxPooling2D) -> None:
        self.conv, self.pool = conv, pool
        self.layers = (conv, pool)
        self._cache: tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, ...]] | None = None
        self._split = (FastConv(conv), FastMaxPool(pool))
        self._split_active = False

    def _use_split(self, x: np.ndarray) -> bool:
        conv = self.conv
        k = conv.kernel.size // conv.filters
        if x.dtype != np.float32 or k <= SMALL_K or not self._split[0]._blocked(x.dtype):
            return False
        ho, wo = window_output_hw(x.shape[1:3], conv.kernel_size, conv.strides, conv.padding, conv.dilation_rate)
        return x.shape[0] * ho * wo * k * 4 > SPLIT_COLS_BYTES

    @staticmethod
    def match(layers: list, index: int, dtype: np.dtype, last: int) -> tuple[ConvPool, int] | None:
        """A Conv2D (ReLU or linear) followed by non-overlapping 'valid' max pooling, the pooling
        not being the model's last layer."""
        if index + 1 < last and ConvPool.applies(layers[index], layers[index + 1], dtype):
            return ConvPool(layers[index], layers[index + 1]), 2
        return None

    @staticmethod
    def applies(conv: object, pool: object, x_dtype: np.dtype) -> bool:
        return (
            isinstance(conv, Conv2D)
            and conv.groups == 1
            and isinstance(pool, MaxPooling2D)
            and conv.activation in ("relu", "linear")
            and np.dtype(x_dtype) in (np.float32, np.float64)
            and pool.padding == "valid"
            and pool.strides == pool.pool_size
        )

    def _bias(self, dtype: np.dtype) -> np.ndarray:
        conv = self.conv
        return conv.bias if conv.use_bias else np.zeros(conv.filters, dtype)

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        """``x: (N, H, W, C)`` -> the pooled output ``(N, Po, Qo, filters)`` (training only, as the
        layers' ``forward(x, training=True)``: it keeps what :meth:`backward` needs)."""
        conv, pool = self.conv, self.pool
        self._split_active = self._use_split(x)
        if self._split_active:
            return self._split[1].forward(self._split[0].forward(x, training), training)
        cols = im2col(np.ascontiguousarray(x), conv)
        n, ho, wo = cols.shape[:3]
        ph, pw = pool.pool_size
        shape = (n, ho // ph, wo // pw, conv.filters)
        y = np.empty(shape, dtype=x.dtype)
        arg = np.empty(shape, dtype=winner_dtype(pool.pool_size))
        cols4 = cols.reshape(n, ho, wo, -1)
        kernel = conv.kernel.reshape(-1, conv.filters)
        relu = conv.activation == "relu"
        if kernel.shape[0] <= SMALL_K:
            bias = kernels.pad_filters(self._bias(x.dtype))
            kernels.conv_pool_forward(cols4, kernels.pad_filters(kernel), bias, relu, ph, pw, y, arg)
        elif x.dtype == np.float32 and conv.filters > 1 and ho * wo > 1 and blas.sgemm() is not None:
            # sgemm on each thread's block of images sums as conv2d_forward_cols's matmul does
            # (with one filter or one output cell NumPy and OpenBLAS switch to matrix-vector code)
            z = np.empty((n, ho, wo, conv.filters), x.dtype)
            rows = cols4.reshape(n * ho * wo, -1)
            parts = threads()
            bias = self._bias(x.dtype)
            kernels.gemm_bias_act_pool_forward(blas.sgemm(), parts, rows, kernel, bias, relu, ph, pw, z, y, arg)
        else:
            # the same matmul as conv2d_forward_cols, so the same sums as the unfused layer
            z = (cols4.reshape(n * ho * wo, -1) @ kernel).reshape(n, ho, wo, conv.filters)
            kernels.bias_act_pool_forward(z, self._bias(x.dtype), relu, ph, pw, y, arg)
        self._cache = (cols4, y, arg, x.shape)
        return y

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        """Fill the convolution's weight gradients; return ``dx: (N, H, W, C)`` if ``need_dx``."""
        if self._split_active:
            return self._split[0].backward(self._split[1].backward(dy, True), need_dx)
        conv = self.conv
        cols4, y, arg, x_shape = self._cache
        chunks = max(1, min(64, len(y)))
        k = cols4.shape[3]
        dy = np.ascontiguousarray(dy, dtype=y.dtype)
        relu = conv.activation == "relu"
        if k <= SMALL_K and not need_dx:
            padded = kernels.pad_filters(np.zeros(conv.filters, y.dtype)).size
            dw_parts = np.empty((chunks, k, padded), y.dtype)
            db_parts = np.empty((chunks, padded), y.dtype)
            kernels.conv_pool_weight_grads_small(cols4, y, arg, dy, relu, *self.pool.pool_size, dw_parts, db_parts)
            conv.store_grad("kernel", dw_parts.sum(axis=0)[:, : conv.filters].reshape(conv.kernel.shape))
            if conv.use_bias:
                conv.store_grad("bias", db_parts.sum(axis=0)[: conv.filters])
            return None
        dwt_parts = np.empty((chunks, conv.filters, k), y.dtype)
        db_parts = np.empty((chunks, conv.filters), y.dtype)
        (top, _), (left, _) = padding_amounts(
            x_shape[1:3], conv.kernel_size, conv.strides, conv.padding, conv.dilation_rate
        )
        geometry = (*conv.kernel_size, *conv.strides, *conv.dilation_rate, top, left)
        # without need_dx the kernel only reads dx's shape: a (1, 1, 1, C) stand-in avoids the allocation
        dx = np.empty(x_shape if need_dx else (1, 1, 1, x_shape[3]), y.dtype)
        kernels.conv_pool_backward(
            cols4,
            y,
            arg,
            dy,
            relu,
            *self.pool.pool_size,
            np.ascontiguousarray(conv.kernel.reshape(k, conv.filters).T),
            geometry,
            need_dx,
            dx,
            dwt_parts,
            db_parts,
        )
        conv.store_grad("kernel", dwt_parts.sum(axis=0).T.reshape(conv.kernel.shape))
        if conv.use_bias:
            conv.store_grad("bias", db_parts.sum(axis=0))
        return dx if need_dx else None

    def release(self) -> None:
        self._cache = None
        if self._split_active:
            self._split[0].release()
            self._split[1].release()
