"""Kernels that move values without arithmetic: padding, cropping, nearest upsampling, global
pooling. Each backward routes ``dy`` to where each output value came from."""

from __future__ import annotations

import numpy as np

Pairs = tuple[tuple[int, int], tuple[int, int]]


def zero_pad2d(x: np.ndarray, padding: Pairs) -> np.ndarray:
    """``x: (N, H, W, C) -> (N, top + H + bottom, left + W + right, C)`` with zeros around.

    >>> zero_pad2d(np.ones((1, 1, 1, 1)), ((1, 0), (0, 1)))[0, :, :, 0]
    array([[0., 0.],
           [1., 0.]])
    """
    (top, bottom), (left, right) = padding
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))


def crop2d(x: np.ndarray, cropping: Pairs) -> np.ndarray:
    """``x: (N, H, W, C) -> (N, H - top - bottom, W - left - right, C)``; the inverse of padding.

    >>> crop2d(np.arange(9.0).reshape(1, 3, 3, 1), ((1, 0), (0, 1)))[0, :, :, 0]
    array([[3., 4.],
           [6., 7.]])
    """
    (top, bottom), (left, right) = cropping
    return x[:, top : x.shape[1] - bottom, left : x.shape[2] - right, :]


def upsample_nearest(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``y[n, i, j, c] = x[n, i // sh, j // sw, c]``: ``(N, H, W, C) -> (N, H*sh, W*sw, C)``.

    >>> upsample_nearest(np.array([[1.0, 2.0]]).reshape(1, 1, 2, 1), (2, 2))[0, :, :, 0]
    array([[1., 1., 2., 2.],
           [1., 1., 2., 2.]])
    """
    return np.repeat(np.repeat(x, size[0], axis=1), size[1], axis=2)


def upsample_nearest_backward(dy: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Each input value was copied to an ``sh x sw`` block: its gradient is the block's sum."""
    n, h, w, c = dy.shape
    return dy.reshape(n, h // size[0], size[0], w // size[1], size[1], c).sum(axis=(2, 4))


def upsample_nearest_naive(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Loop reference of :func:`upsample_nearest`."""
    n, h, w, c = x.shape
    y = np.empty((n, h * size[0], w * size[1], c), x.dtype)
    for i in range(h * size[0]):
        for j in range(w * size[1]):
            y[:, i, j, :] = x[:, i // size[0], j // size[1], :]
    return y


def global_max_pool2d_backward(x: np.ndarray, y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Gradient of ``y = max over (H, W)``: shared evenly by tied maxima, as the reduce-max
    gradients of TensorFlow and PyTorch (``torch.amax``) do. ``y``/``dy``: ``(N, 1, 1, C)``."""
    mask = x == y
    return mask * (dy / mask.sum(axis=(1, 2), keepdims=True))


def global_pool2d_naive(x: np.ndarray, kind: str) -> np.ndarray:
    """Loop reference: ``(N, H, W, C) -> (N, C)`` mean or max over every position.

    >>> global_pool2d_naive(np.arange(8.0).reshape(1, 2, 2, 2), "avg").tolist()
    [[3.0, 4.0]]
    """
    n, h, w, c = x.shape
    out = np.empty((n, c))
    for b in range(n):
        for k in range(c):
            values = [float(x[b, i, j, k]) for i in range(h) for j in range(w)]
            out[b, k] = max(values) if kind == "max" else sum(values) / len(values)
    return out
