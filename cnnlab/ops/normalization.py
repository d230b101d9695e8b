"""Batch normalization: moments, the normalizing transform and its gradient (Keras 3 formulas).

Statistics are taken over every axis except the feature axis (``axes``); the parameters
(``gamma``, ``beta``, mean, variance) are broadcast back with :func:`broadcast_shape`.
"""

from __future__ import annotations

import numpy as np


def broadcast_shape(ndim: int, axis: int, size: int) -> tuple[int, ...]:
    """Shape that makes a ``(size,)`` parameter broadcast along ``axis`` of an ``ndim`` array.

    >>> broadcast_shape(4, 3, 5)
    (1, 1, 1, 5)
    """
    shape = [1] * ndim
    shape[axis] = size
    return tuple(shape)


def moments(x: np.ndarray, axes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and *biased* variance over ``axes``, kept as broadcastable arrays.

    Keras 3 computes the variance as ``E[x^2] - E[x]^2`` (``keras.ops.moments``, every backend),
    dividing by ``n`` and not ``n - 1``; the same formula here keeps its rounding.

    >>> m, v = moments(np.array([[1.0], [3.0]]), (0,))
    >>> float(m[0, 0]), float(v[0, 0])
    (2.0, 1.0)
    """
    mean = x.mean(axis=axes, keepdims=True)
    variance = np.square(x).mean(axis=axes, keepdims=True) - np.square(mean)
    return mean, variance


def batch_norm_forward(
    x: np.ndarray,
    mean: np.ndarray,
    variance: np.ndarray,
    gamma: np.ndarray | None,
    beta: np.ndarray | None,
    epsilon: float,
) -> tuple[np.ndarray, np.ndarray]:
    """``y = (x - mean) * (gamma / sqrt(variance + epsilon)) + beta``; returns ``y`` and the factor
    ``1 / sqrt(variance + epsilon)`` (what backward needs). All parameters are broadcastable.

    The grouping is Keras's (torch backend: ``x.subtract(mean).mul_(rsqrt(var + eps) * scale).add_(offset)``).

    >>> y, _ = batch_norm_forward(np.array([[1.0], [3.0]]), np.array([[2.0]]), np.array([[1.0]]), None, None, 0.0)
    >>> y
    array([[-1.],
           [ 1.]])
    """
    inv_std = 1.0 / np.sqrt(variance + np.asarray(epsilon, variance.dtype))
    factor = inv_std if gamma is None else inv_std * gamma
    y = (x - mean) * factor
    if beta is not None:
        y += beta
    return y, inv_std


def batch_norm_backward(
    dy: np.ndarray,
    x_hat: np.ndarray,
    inv_std: np.ndarray,
    gamma: np.ndarray | None,
    axes: tuple[int, ...],
    batch_statistics: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(dx, dgamma, dbeta)`` for ``y = gamma * x_hat + beta`` with ``x_hat = (x - mean) * inv_std``.

    With batch statistics (training), mean and variance depend on ``x`` as well; over the
    ``m`` reduced values the chain rule gives
    ``dx = gamma * inv_std / m * (m * dy - sum(dy) - x_hat * sum(dy * x_hat))``.
    With fixed (moving) statistics ``dx = gamma * inv_std * dy``. ``dgamma = sum(dy * x_hat)``,
    ``dbeta = sum(dy)`` (reduced to the parameter shape).
    """
    dbeta = dy.sum(axis=axes, keepdims=True)
    product = dy * x_hat
    dgamma = product.sum(axis=axes, keepdims=True)
    scale = inv_std if gamma is None else inv_std * gamma
    if batch_statistics:
        m = dy.size // dbeta.size
        # (scale / m) * (m * dy - dbeta - x_hat * dgamma), evaluated in that order in two buffers
        # (the temporaries of the one-line expression cost a fresh allocation each)
        dx = np.multiply(dy, m, dtype=dy.dtype)
        dx -= dbeta
        dx -= np.multiply(x_hat, dgamma, out=product)
        dx *= scale / m
    else:
        dx = dy * scale
    return dx, dgamma.reshape(-1), dbeta.reshape(-1)


def batch_norm_naive(
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, epsilon: float, axis: int = -1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Loop reference with batch statistics: one feature at a time, two-pass mean and biased
    variance. Returns ``(y, mean, variance)``.

    >>> y, m, v = batch_norm_naive(np.array([[1.0], [3.0]]), np.ones(1), np.zeros(1), 0.0)
    >>> y.ravel().tolist(), m.tolist(), v.tolist()
    ([-1.0, 1.0], [2.0], [1.0])
    """
    moved = np.moveaxis(x, axis, -1)
    flat = moved.reshape(-1, moved.shape[-1])
    y = np.empty_like(flat, dtype=np.float64)
    means, variances = np.empty(flat.shape[1]), np.empty(flat.shape[1])
    for c in range(flat.shape[1]):
        column = [float(v) for v in flat[:, c]]
        mean = sum(column) / len(column)
        variance = sum((v - mean) ** 2 for v in column) / len(column)
        for i, v in enumerate(column):
            y[i, c] = (v - mean) / (variance + epsilon) ** 0.5 * gamma[c] + beta[c]
        means[c], variances[c] = mean, variance
    return np.moveaxis(y.reshape(moved.shape), -1, axis), means, variances
