"""Sliding 2-D windows as strided slices, shared by convolution and pooling.

For a window offset ``(di, dj)`` the slice ``x[:, di*d : ... : s, dj*d : ... : s, :]``
holds, at output position ``(i, j)``, the input cell ``(i*s + di*d, j*s + dj*d)``.
Looping over the ``kh*kw`` offsets (never over pixels) lets every op be a handful
of whole-array NumPy calls.
"""

from __future__ import annotations

import numpy as np


def pad_hw(x: np.ndarray, pads: tuple[tuple[int, int], tuple[int, int]], value: float = 0) -> np.ndarray:
    """Pad axes 1 and 2 of ``x: (N, H, W, C)``; returns ``x`` itself when no padding is needed."""
    (top, bottom), (left, right) = pads
    if top == bottom == left == right == 0:
        return x
    n, h, w, c = x.shape
    out = np.full((n, h + top + bottom, w + left + right, c), value, dtype=x.dtype)
    out[:, top : top + h, left : left + w, :] = x
    return out


def window_slice(
    di: int, dj: int, out_hw: tuple[int, int], strides: tuple[int, int], dilation: tuple[int, int]
) -> tuple[slice, slice, slice, slice]:
    """Index of the input cells seen by window offset ``(di, dj)`` at every output position."""
    top, left = di * dilation[0], dj * dilation[1]
    return (
        slice(None),
        slice(top, top + strides[0] * (out_hw[0] - 1) + 1, strides[0]),
        slice(left, left + strides[1] * (out_hw[1] - 1) + 1, strides[1]),
        slice(None),
    )


def unpad_hw(x: np.ndarray, pads: tuple[tuple[int, int], tuple[int, int]], hw: tuple[int, int]) -> np.ndarray:
    """Undo :func:`pad_hw`: the ``hw``-sized interior of ``x``."""
    (top, _), (left, _) = pads
    if x.shape[1:3] == tuple(hw):
        return x
    return x[:, top : top + hw[0], left : left + hw[1], :]
