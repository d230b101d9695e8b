"""Accelerated ``DepthwiseConv2D`` and ``SeparableConv2D`` (any kernel size, stride, padding,
dilation, depth multiplier): the arithmetic of :mod:`cnnlab.ops.depthwise` in compiled loops.

``x: (N, H, W, C)``, ``w: (kh, kw, C, dm)``; depthwise output channel ``c*dm + m``::

    y[n, i, j, c*dm + m] = sum_{di, dj} x[n, i*s_h + di*d_h - top, j*s_w + dj*d_w - left, c] * w[di, dj, c, m]

(cells outside the image read 0). NumPy needs ``kh*kw`` passes over the output, each writing a
temporary (one per kernel offset: a depthwise convolution mixes no channels, so there is no
matmul to hand to BLAS); the compiled loop reads each input cell where it is needed and writes
every output once, one image per thread, with no padded copy of ``x``. The backward pass does
``dw`` (per-thread float64 partial sums) and ``dx`` (each thread scatters into its own images)
in one sweep. The separable pointwise step stays one BLAS matmul over ``(N*Ho*Wo, C*dm)`` rows
(forward, and the two of the backward, on views: no copies); the bias and its gradient are compiled
row loops with NumPy's numbers (NumPy's own loops pay per row). Sums run in the reference's
order for the forward (offsets in row-major order, bias last) and in another order for the
gradients, within float rounding (tests/test_accel_depthwise.py bounds the difference).
"""

from __future__ import annotations

import numpy as np

from cnnlab._accel import AVAILABLE, njit, numba, threads
from cnnlab.layers.depthwise import DepthwiseConv2D, SeparableConv2D
from cnnlab.ops.shapes import padding_amounts, window_output_hw

if AVAILABLE:

    @njit(parallel=True)
    def depthwise_forward(x, w, sh, sw, dh, dw, top, left, y):  # pragma: no cover
        """``y: (N, Ho, Wo, C*dm)`` (overwritten) = the depthwise convolution of ``x`` (no bias)."""
        n_batch, height, width, channels = x.shape
        kh, kw, _, dm = w.shape
        ho, wo = y.shape[1], y.shape[2]
        for n in numba.prange(n_batch):
            for i in range(ho):
                for j in range(wo):
                    out = y[n, i, j]
                    out[:] = 0
                    for di in range(kh):
                        r = i * sh + di * dh - top
                        if r < 0 or r >= height:
                            continue
                        for dj in range(kw):
                            col = j * sw + dj * dw - left
                            if col < 0 or col >= width:
                                continue
                            if dm == 1:  # channels innermost and contiguous: vectorises
                                for c in range(channels):
                                    out[c] += x[n, r, col, c] * w[di, dj, c, 0]
                            else:
                                for c in range(channels):
                                    v = x[n, r, col, c]
                                    for m in range(dm):
                                        out[c * dm + m] += v * w[di, dj, c, m]

    @njit(parallel=True)
    def depthwise_backward(dy, x, w, sh, sw, dh, dw, top, left, need_dx, dx, dw_parts):  # pragma: no cover
        """``dw_parts: (T, kh, kw, C, dm)`` float64 (overwritten): thread ``t``'s share of the kernel
        gradient (images ``t*N//T .. (t+1)*N//T``); ``dx: (N, H, W, C)`` (overwritten if ``need_dx``)."""
        n_batch, height, width, channels = x.shape
        kh, kw, _, dm = w.shape
        ho, wo = dy.shape[1], dy.shape[2]
        parts = dw_parts.shape[0]
        for t in numba.prange(parts):
            part = dw_parts[t]
            part[:] = 0
            for n in range(t * n_batch // parts, (t + 1) * n_batch // parts):
                if need_dx:
                    dx[n] = 0
                for i in range(ho):
                    for j in range(wo):
                        g = dy[n, i, j]
                        for di in range(kh):
                            r = i * sh + di * dh - top
                            if r < 0 or r >= height:
                                continue
                            for dj in range(kw):
                                col = j * sw + dj * dw - left
                                if col < 0 or col >= width:
                                    continue
                                if dm == 1:
                                    for c in range(channels):
                                        part[di, dj, c, 0] += x[n, r, col, c] * g[c]
                                    if need_dx:
                                        for c in range(channels):
                                            dx[n, r, col, c] += g[c] * w[di, dj, c, 0]
                                else:
                                    for c in range(channels):
                                        v = x[n, r, col, c]
                                        total = 0.0
                                        for m in range(dm):
                                            part[di, dj, c, m] += v * g[c * dm + m]
                                            total += g[c * dm + m] * w[di, dj, c, m]
                                        if need_dx:
                                            dx[n, r, col, c] += total

    @njit
    def add_bias(z, b):  # pragma: no cover
        """``z += b`` on ``(M, F)`` rows, in place: NumPy's broadcast add, without its per-row loop
        overhead (0.4 -> 0.1 ms for 25,088 x 64 float32)."""
        for row in range(z.shape[0]):
            for f in range(z.shape[1]):
                z[row, f] += b[f]

    @njit
    def column_sum(a, out):  # pragma: no cover
        """``out = a.sum(axis=0)`` for ``a: (M, F)``, in ``a``'s dtype, adding the rows one after
        another from zero: the order NumPy's reduction over the first axis of a C-contiguous array
        uses when ``F > 1``, so the same numbers (tests/test_accel_depthwise.py), 0.64 -> 0.14 ms
        for 25,088 x 64."""
        out[:] = 0
        for row in range(a.shape[0]):
            for f in range(a.shape[1]):
                out[f] += a[row, f]

else:
    depthwise_forward = depthwise_backward = add_bias = column_sum = None


def _geometry(x_shape: tuple[int, ...], layer: DepthwiseConv2D | SeparableConv2D, kernel: np.ndarray) -> tuple:
    """``(out_hw, (sh, sw, dh, dw, top, left))`` of ``layer`` on inputs of ``x_shape``."""
    hw = (x_shape[1], x_shape[2])
    k = kernel.shape[:2]
    out_hw = window_output_hw(hw, k, layer.strides, layer.padding, layer.dilation_rate, layer.owner)
    (top, _), (left, _) = padding_amounts(hw, k, layer.strides, layer.padding, layer.dilation_rate)
    return out_hw, (*layer.strides, *layer.dilation_rate, top, left)


def depthwise(x: np.ndarray, kernel: np.ndarray, layer: DepthwiseConv2D | SeparableConv2D) -> np.ndarray:
    """``x: (N, H, W, C) -> (N, Ho, Wo, C*dm)``: the compiled depthwise convolution (no bias)."""
    out_hw, geometry = _geometry(x.shape, layer, kernel)
    y = np.empty((x.shape[0], *out_hw, kernel.shape[2] * kernel.shape[3]), x.dtype)
    depthwise_forward(x, kernel, *geometry, y)
    return y


def depthwise_grads(
    dy: np.ndarray, x: np.ndarray, kernel: np.ndarray, layer: DepthwiseConv2D | SeparableConv2D, need_dx: bool
) -> tuple[np.ndarray | None, np.ndarray]:
    """``dy: (N, Ho, Wo, C*dm)`` -> ``(dx: (N, H, W, C) or None, dw: (kh, kw, C, dm))``."""
    _, geometry = _geometry(x.shape, layer, kernel)
    parts = max(1, min(x.shape[0], threads()))
    dw_parts = np.empty((parts, *kernel.shape), np.float64)
    dx = np.empty(x.shape, dy.dtype) if need_dx else np.empty((1, 1, 1, 1), dy.dtype)
    depthwise_backward(np.ascontiguousarray(dy), x, kernel, *geometry, need_dx, dx, dw_parts)
    return (dx if need_dx else None), dw_parts.sum(axis=0).astype(kernel.dtype)


def bias_gradient(dz2: np.ndarray) -> np.ndarray:
    """``dz2.sum(axis=0)`` for ``dz2: (M, F)``, NumPy's numbers: with one column NumPy sums it pairwise
    (it is then a contiguous vector), with more it adds the rows in turn, as :func:`column_sum` does."""
    if dz2.shape[1] == 1:
        return dz2.sum(axis=0)
    db = np.empty(dz2.shape[1], dz2.dtype)
    column_sum(np.ascontiguousarray(dz2), db)
    return db


class FastDepthwise:
    """A ``DepthwiseConv2D`` or ``SeparableConv2D`` layer run with compiled depthwise kernels; the
    layer's own activation, bias and (separable) pointwise matmul as the layer computes them."""

    plan_name = "FastDepthwise"

    def __init__(self, layer: DepthwiseConv2D | SeparableConv2D) -> None:
        self.layer = layer
        self.layers = (layer,)
        self.separable = isinstance(layer, SeparableConv2D)
        self._cache: tuple | None = None

    @staticmethod
    def match(layers: list, index: int, dtype: np.dtype, last: int) -> tuple[FastDepthwise, int] | None:
        layer = layers[index]
        if isinstance(layer, (DepthwiseConv2D, SeparableConv2D)) and dtype in (np.float32, np.float64):
            return FastDepthwise(layer), 1
        return None

    def _kernel(self) -> np.ndarray:
        return self.layer.depthwise_kernel if self.separable else self.layer.kernel

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        layer = self.layer
        kernel = self._kernel()
        if x.dtype != kernel.dtype or x.ndim != 4:  # mixed types: the layer's own promotion rules
            self._cache = None
            return layer.forward(x, training)
        x = np.ascontiguousarray(x)
        mid = depthwise(x, kernel, layer)
        if self.separable:
            n, ho, wo, k = mid.shape
            pointwise = layer.pointwise_kernel
            z = (mid.reshape(-1, k) @ pointwise.reshape(k, -1)).reshape(n, ho, wo, -1)
        else:
            z = mid
        if layer.bias is not None:
            add_bias(z.reshape(-1, z.shape[-1]), layer.bias)
        self._cache = (x, mid if self.separable else None) if training else None
        return layer.activate(z, training)

    def backward(self, dy: np.ndarray, need_dx: bool = True, from_logits: bool = False) -> np.ndarray | None:
        layer = self.layer
        if self._cache is None:
            return layer.backward(dy, need_dx, from_logits)
        x, mid = self._cache
        dz = layer.activation_backward(dy, from_logits)
        dz2 = dz.reshape(-1, dz.shape[-1])
        if self.separable:
            k = mid.shape[-1]
            pointwise = layer.pointwise_kernel.reshape(k, -1)
            layer.store_grad("pointwise_kernel", (mid.reshape(-1, k).T @ dz2).reshape(layer.pointwise_kernel.shape))
            d_mid = (dz2 @ pointwise.T).reshape(mid.shape)
        else:
            d_mid = dz
        dx, d_kernel = depthwise_grads(d_mid, x, self._kernel(), layer, need_dx)
        layer.store_grad("depthwise_kernel" if self.separable else "kernel", d_kernel)
        if layer.use_bias:
            layer.store_grad("bias", bias_gradient(dz2))
        return dx

    def release(self) -> None:
        self._cache = None
        self.layer.release()
