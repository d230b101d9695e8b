"""Accelerated ``Conv2D`` (any kernel size, stride, padding, dilation, activation).

``x: (N, H, W, C_in) -> (N, Ho, Wo, F)``, the arithmetic of :func:`cnnlab.ops.conv.conv2d_forward_cols`
and :func:`cnnlab.ops.conv.conv2d_backward` (the same products; sums possibly in another order,
within float rounding -- tests/test_accel_conv.py bounds the difference). Three paths:

* float32 with OpenBLAS reachable from numba (:mod:`cnnlab._accel.blas`), ``K = kh*kw*C_in``
  above :data:`SMALL_K` or an activation other than ReLU/linear: the blocked kernels
  :func:`cnnlab._accel.kernels.conv_gemm_forward` / ``conv_gemm_backward``. Each of numba's
  threads owns a block of images, gathers a cache-sized block of windows, calls single-threaded
  sgemm on it and applies bias and ReLU at once; backward recomputes the windows block by block
  (no ``(N*Ho*Wo, K)`` array is kept), accumulates per-thread kernel/bias gradients and
  scatters ``dz @ w^T`` into the thread's own images. The plan gives numba all cores and BLAS
  one thread, so one big NumPy matmul would run on one core; this uses them all.
  Activations other than ReLU/linear run after the kernel as the layer runs them.
* ReLU/linear with ``K <= SMALL_K``: one compiled pass computes ``cols @ w + b`` and ReLU (BLAS
  is slow when K is tiny).
* otherwise (float64, no OpenBLAS): compiled im2col + NumPy's matmul, compiled col2im.
"""

from __future__ import annotations

import numpy as np

from cnnlab._accel import blas, kernels, threads
from cnnlab.layers.conv import Conv2D
from cnnlab.ops.conv import conv2d_backward_input, conv2d_forward_cols
from cnnlab.ops.shapes import padding_amounts, window_output_hw

#: largest kh*kw*C_in for which the compiled one-pass kernel replaces BLAS (benchmarks/RESULTS.md)
SMALL_K = 16

#: the compiled gather/scatter pays off for arrays of some size with several channels
#: (with one channel NumPy's kh*kw whole-array copies are faster)
GATHER_MIN_SIZE, GATHER_MIN_CHANNELS = 4096, 4

#: bytes of one thread's block of gathered windows in the blocked sgemm kernels: small enough
#: to stay in a core's L2 cache between the gather and sgemm, large enough for sgemm to be efficient
BLOCK_BYTES = 128 * 1024


def block_rows(k: int, rows_per_thread: int) -> int:
    """Rows (output cells) per block of the blocked kernels for an inner size ``k``."""
    return max(1, min(rows_per_thread, max(32, BLOCK_BYTES // (4 * k))))


#: below this many multiply-adds (N*Ho*Wo*K*F) a convolution runs on one thread: waking the
#: other thread and waiting for it would cost more than it saves
SERIAL_MACS = 1_000_000


def split(n: int, cells: int, k: int, f: int) -> int:
    """How many threads share a batch of ``n`` images with ``cells`` output cells each."""
    return 1 if n < 2 or n * cells * k * f < SERIAL_MACS else min(n, threads())


def geometry(x_shape: tuple[int, ...], conv: Conv2D) -> tuple[int, ...]:
    """``(kh, kw, sh, sw, dh, dw, top, left)`` for the compiled gather/scatter."""
    hw = (x_shape[1], x_shape[2])
    (top, _), (left, _) = padding_amounts(hw, conv.kernel_size, conv.strides, conv.padding, conv.dilation_rate)
    return (*conv.kernel_size, *conv.strides, *conv.dilation_rate, top, left)


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
        # grouped convolutions stay on the reference layer (its kernel is (kh, kw, C_in/groups, F))
        if isinstance(layer, Conv2D) and layer.groups == 1 and dtype in (np.float32, np.float64):
            return FastConv(layer), 1
        return None

    def _small(self) -> bool:
        conv = self.conv
        return conv.activation in ("relu", "linear") and conv.kernel.size // conv.filters <= SMALL_K

    def _blocked(self, dtype: np.dtype) -> bool:
        return dtype == np.float32 and blas.sgemm() is not None and not self._small()

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        conv = self.conv
        x = np.ascontiguousarray(x)
        if self._blocked(x.dtype):
            return self._forward_blocked(x, training)
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

    def _forward_blocked(self, x: np.ndarray, training: bool) -> np.ndarray:
        conv = self.conv
        n = x.shape[0]
        ho, wo = window_output_hw(x.shape[1:3], conv.kernel_size, conv.strides, conv.padding, conv.dilation_rate)
        w = np.ascontiguousarray(conv.kernel.reshape(-1, conv.filters), dtype=np.float32)
        bias = conv.bias if conv.use_bias else np.zeros(conv.filters, np.float32)
        relu = conv.activation == "relu"
        parts = split(n, ho * wo, *w.shape)
        chunk = block_rows(w.shape[0], -(-n // parts) * ho * wo)
        y = np.empty((n, ho, wo, conv.filters), np.float32)
        args = (blas.sgemm(), x, w, bias, conv.use_bias, relu, geometry(x.shape, conv), chunk, y)
        if parts == 1:
            kernels.conv_gemm_forward_images(*args, 0, n)
        else:
            kernels.conv_gemm_forward(args[0], parts, *args[1:])
        if relu or conv.activation == "linear":
            if training:
                conv._activated_output, conv.last_logits = y, None
        else:
            y = conv.activate(y, training)
        self._cache = ("blocked", x, None) if training else None
        return y

    def _backward_blocked(self, x: np.ndarray, dy: np.ndarray, need_dx: bool, from_logits: bool) -> np.ndarray | None:
        conv = self.conv
        relu = conv.activation == "relu" and not from_logits
        if relu:
            dz = np.ascontiguousarray(dy, dtype=np.float32)  # masked in place: dy is the caller's temporary
        else:
            dz = np.ascontiguousarray(conv.activation_backward(dy, from_logits), dtype=np.float32)
        w = np.ascontiguousarray(conv.kernel.reshape(-1, conv.filters), dtype=np.float32)
        k, f = w.shape
        n, ho, wo = dz.shape[:3]
        parts = split(n, ho * wo, k, f)
        chunk = block_rows(k, -(-n // parts) * ho * wo)
        dw_parts = np.empty((parts, k, f), np.float32)
        db_parts = np.empty((parts, f), np.float32)
        # without need_dx the kernel never touches dx: a (1, 1, 1, C) stand-in avoids the allocation
        dx = np.empty(x.shape if need_dx else (1, 1, 1, x.shape[3]), np.float32)
        y = conv._activated_output if relu else dz
        args = (blas.sgemm(), x, w, y, dz, relu, geometry(x.shape, conv), chunk, need_dx, dx)
        if parts == 1:
            kernels.conv_gemm_backward_images(*args, dw_parts[0], db_parts[0], 0, n)
        else:
            kernels.conv_gemm_backward(args[0], parts, *args[1:], dw_parts, db_parts)
        conv.store_grad("kernel", dw_parts.sum(axis=0).reshape(conv.kernel.shape))
        if conv.use_bias:
            conv.store_grad("bias", db_parts.sum(axis=0))
        return dx if need_dx else None

    def backward(self, dy: np.ndarray, need_dx: bool = True, from_logits: bool = False) -> np.ndarray | None:
        conv = self.conv
        if isinstance(self._cache[0], str):
            return self._backward_blocked(self._cache[1], dy, need_dx, from_logits)
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
