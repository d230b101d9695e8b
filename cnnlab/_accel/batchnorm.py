"""Accelerated ``BatchNormalization`` in training mode (batch statistics, features on the last axis).

The reference (:mod:`cnnlab.ops.normalization`, Keras's formulas) makes about ten NumPy passes
over the activations per step: ``mean``, ``x**2`` and its mean, ``x - mean`` (twice: the output
and the cached ``x_hat``), the scaling, the shift; backward ``sum(dy)``, ``dy * x_hat`` and its
sum, then five elementwise passes for ``dx``. Here, on ``(M, C)`` rows (``M = N*H*W``):

* forward: one pass for the per-feature sums of ``x`` and ``x**2`` (float64 accumulators),
  Keras's ``variance = E[x^2] - E[x]^2`` from them in ``x``'s dtype, then one pass
  writing ``y = (x - mean) * (gamma * inv_std) + beta`` and ``x_hat = (x - mean) * inv_std``
  with the reference's operations in the reference's order (the same numbers for the same mean
  and variance);
* backward: one pass for ``sum(dy)`` and ``sum(dy * x_hat)`` (float64 accumulators), one pass for
  ``dx = (scale / m) * (m * dy - dbeta - x_hat * dgamma)``, the reference's expression; a joined
  ReLU's gradient is applied to ``dy`` as each pass reads it (computed twice, never stored).

Only the sums run in another order (more exactly: float64 accumulators), within float rounding
(tests/test_accel_batchnorm.py bounds the difference). Inference (moving statistics), a frozen
layer, another axis or mixed dtypes run the layer itself. An ``Activation("relu")`` right after
the layer joins the unit: the ReLU is applied as ``y`` is written and its gradient as ``dy`` is read.

The kernels run on one thread: each is one memory-bound pass (about 1 ms for the 128 x 14 x 14 x 64
activations of the course model ``scratch``, 3-4x faster than NumPy), and splitting it over the
two cores of the benchmark machine cost more than it saved whenever the other core was busy
(measured 0.7 ms on one thread, 25 ms on two with another process on the second core).
"""

from __future__ import annotations

import numpy as np

from cnnlab._accel import AVAILABLE, njit
from cnnlab.layers.core import Activation
from cnnlab.layers.normalization import BatchNormalization

if AVAILABLE:

    @njit
    def column_sums(a, b):  # pragma: no cover
        """``(2, C)`` float64: ``sum a`` and ``sum a*b`` over the rows of ``a, b: (M, C)`` (``b is a``
        gives ``sum a**2``), accumulated in float64."""
        rows, channels = a.shape
        first = np.zeros(channels, np.float64)
        second = np.zeros(channels, np.float64)
        for row in range(rows):
            for c in range(channels):
                v = np.float64(a[row, c])
                first[c] += v
                second[c] += v * np.float64(b[row, c])
        out = np.empty((2, channels), np.float64)
        out[0] = first
        out[1] = second
        return out

    @njit
    def normalize(x, mean, inv_std, factor, beta, use_beta, relu, zero, y, x_hat):  # pragma: no cover
        """``y = (x - mean) * factor (+ beta)`` (then ReLU if ``relu``; ``zero`` is 0 in ``x``'s dtype),
        ``x_hat = (x - mean) * inv_std`` on ``(M, C)`` rows."""
        rows, channels = x.shape
        for row in range(rows):
            for c in range(channels):
                centered = x[row, c] - mean[c]
                out = centered * factor[c]
                if use_beta:
                    out += beta[c]
                if relu and out <= 0:  # np.maximum(out, 0): -0.0 becomes +0, NaN passes
                    out = zero
                y[row, c] = out
                x_hat[row, c] = centered * inv_std[c]

    @njit
    def relu_gradient(g, y, zero):  # pragma: no cover
        """``g * (y > 0)`` as :func:`cnnlab.ops.activations.relu_backward` computes it (``g * 0``: -0
        for negative ``g``, NaN for infinite)."""
        return g if y > 0 else g * zero

    @njit
    def gradient_sums(dy, y, relu, zero, x_hat):  # pragma: no cover
        """``(2, C)`` float64: ``sum dz`` and ``sum dz*x_hat`` over the rows of ``(M, C)`` arrays, where
        ``dz`` is ``dy`` through the ReLU's gradient if ``relu`` (see :func:`relu_gradient`), else
        ``dy``: the sums of :func:`column_sums` ``(dz, x_hat)`` without writing ``dz`` out."""
        rows, channels = dy.shape
        first = np.zeros(channels, np.float64)
        second = np.zeros(channels, np.float64)
        for row in range(rows):
            for c in range(channels):
                g = dy[row, c]
                if relu:
                    g = relu_gradient(g, y[row, c], zero)
                v = np.float64(g)
                first[c] += v
                second[c] += v * np.float64(x_hat[row, c])
        out = np.empty((2, channels), np.float64)
        out[0] = first
        out[1] = second
        return out

    @njit
    def input_gradient(dy, y, relu, zero, x_hat, scale_over_m, m, dbeta, dgamma, dx):  # pragma: no cover
        """``dx = (scale / m) * (m * dz - dbeta - x_hat * dgamma)`` on ``(M, C)`` rows, ``dz`` as in
        :func:`gradient_sums` (computed again here rather than stored: one pass less)."""
        rows, channels = dy.shape
        for row in range(rows):
            for c in range(channels):
                g = dy[row, c]
                if relu:
                    g = relu_gradient(g, y[row, c], zero)
                dx[row, c] = scale_over_m[c] * ((m * g - dbeta[c]) - x_hat[row, c] * dgamma[c])

else:
    column_sums = normalize = gradient_sums = relu_gradient = input_gradient = None


def batch_moments(x2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``x2: (M, C)`` -> Keras's mean and biased variance ``E[x^2] - E[x]^2``, shape ``(C,)``, in
    ``x2``'s dtype: the two means from float64 sums, the difference in ``x2``'s dtype as Keras."""
    sums = column_sums(x2, x2) / x2.shape[0]
    mean, mean_square = sums.astype(x2.dtype)
    return mean, mean_square - np.square(mean)


class FastBatchNorm:
    """A ``BatchNormalization`` layer (and the ``Activation("relu")`` right after it, if any) whose
    training-mode forward and backward run compiled; the ReLU then costs no pass of its own."""

    plan_name = "FastBatchNorm"

    def __init__(self, layer: BatchNormalization, relu: Activation | None = None) -> None:
        self.layer = layer
        self.relu = relu
        self.layers = (layer,) if relu is None else (layer, relu)
        self._cache: tuple | None = None

    @staticmethod
    def match(layers: list, index: int, dtype: np.dtype, last: int) -> tuple[FastBatchNorm, int] | None:
        layer = layers[index]
        if not isinstance(layer, BatchNormalization) or dtype not in (np.float32, np.float64):
            return None
        after = layers[index + 1] if index + 1 < last else None
        if type(after) is Activation and after.activation == "relu":
            return FastBatchNorm(layer, after), 2
        return FastBatchNorm(layer), 1

    def _reference_forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        y = self.layer.forward(x, training)
        return y if self.relu is None else self.relu.forward(y, training)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        layer = self.layer
        self._cache = None
        moving = layer._weights["moving_mean"]
        if not (training and layer.trainable) or x.dtype != moving.dtype or x.ndim < 2:
            return self._reference_forward(x, training)
        if layer._axis_for(x.ndim, x.shape) != x.ndim - 1:
            return self._reference_forward(x, training)
        channels = x.shape[-1]
        x2 = np.ascontiguousarray(x).reshape(-1, channels)
        mean, variance = batch_moments(x2)
        # Keras's moving-average update, as the layer does it
        for key, value in (("moving_mean", mean), ("moving_variance", variance)):
            stat = layer._weights[key]
            stat[...] = stat * layer.momentum + value * (1.0 - layer.momentum)
        inv_std = 1.0 / np.sqrt(variance + np.asarray(layer.epsilon, variance.dtype))
        gamma, beta = layer._weights.get("gamma"), layer._weights.get("beta")
        factor = inv_std if gamma is None else inv_std * gamma
        y, x_hat = np.empty_like(x2), np.empty_like(x2)
        use_beta = beta is not None
        zero = x2.dtype.type(0)
        normalize(
            x2, mean, inv_std, factor, beta if use_beta else mean, use_beta, self.relu is not None, zero, y, x_hat
        )
        self._cache = (x_hat, inv_std, x.shape, y if self.relu is not None else None)
        return y.reshape(x.shape)

    def backward(self, dy: np.ndarray, need_dx: bool = True, from_logits: bool = False) -> np.ndarray | None:
        layer = self.layer
        if self._cache is None:
            if self.relu is not None:
                dy = self.relu.backward(dy, True)
            return layer.backward(dy, need_dx)
        x_hat, inv_std, shape, y = self._cache
        dy2 = np.ascontiguousarray(dy, dtype=x_hat.dtype).reshape(x_hat.shape)
        relu, zero = y is not None, x_hat.dtype.type(0)
        if y is None:
            y = x_hat  # not read
        sums = gradient_sums(dy2, y, relu, zero, x_hat).astype(x_hat.dtype)
        dbeta, dgamma = sums
        if layer.scale:
            layer.store_grad("gamma", dgamma)
        if layer.center:
            layer.store_grad("beta", dbeta)
        if not need_dx:
            return None
        gamma = layer._weights.get("gamma")
        scale = inv_std if gamma is None else inv_std * gamma
        m = x_hat.shape[0]
        dx = np.empty_like(x_hat)
        input_gradient(dy2, y, relu, zero, x_hat, scale / m, x_hat.dtype.type(m), dbeta, dgamma, dx)
        return dx.reshape(shape)

    def release(self) -> None:
        self._cache = None
        for layer in self.layers:
            layer.release()
