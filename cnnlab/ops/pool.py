"""2-D max and average pooling (Keras's MaxPooling2D / AveragePooling2D), NHWC.

Max pooling::

    y[n, i, j, c] = max_{di, dj} xp[n, i*s_h + di, j*s_w + dj, c]

with ``xp`` padded by -inf for ``padding='same'`` (so padding never wins). The
gradient goes to the *first* maximum of each window in row-major order; where
windows overlap, gradients add up. NaN propagates, as in ``np.max`` (and PyTorch's and
TensorFlow's MaxPool, whose CPU kernel is being made to propagate it consistently): a window
holding a NaN outputs NaN and its first NaN is the winner. Average pooling divides by the number of
*real* cells in the window ('same' padding cells are not counted), as Keras does.
Both loop over the ``ph*pw`` window offsets, never over pixels.
"""

from __future__ import annotations

import numpy as np

from cnnlab.errors import InvalidArgumentError
from cnnlab.ops.shapes import padding_amounts, window_output_hw
from cnnlab.ops.windows import pad_hw, unpad_hw, window_slice

Pair = tuple[int, int]
_NO_DILATION = (1, 1)


def lowest_value(dtype: np.dtype) -> float | int:
    """-inf for floats, the smallest integer for integer dtypes (max-pool padding)."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        return int(np.iinfo(dtype).min)
    return -np.inf


def _prepare(x: np.ndarray, pool: Pair, strides: Pair, padding: str, fill: float | int):
    hw = (x.shape[1], x.shape[2])
    out_hw = window_output_hw(hw, pool, strides, padding, _NO_DILATION, "pooling")
    pads = padding_amounts(hw, pool, strides, padding)
    return pad_hw(x, pads, fill), out_hw, pads


#: dtype of the winner index (window offset ``di*pw + dj``): wide enough for any window
WINNER_DTYPE = np.int32


def winner_dtype(pool: Pair) -> np.dtype:
    """The winner index's dtype, refusing windows whose offsets it cannot hold."""
    if pool[0] * pool[1] > np.iinfo(WINNER_DTYPE).max:
        raise InvalidArgumentError(
            f"max pooling: a {pool[0]}x{pool[1]} window has more cells than an int32 index holds."
        )
    return np.dtype(WINNER_DTYPE)


def max_pool2d_forward(
    x: np.ndarray, pool: Pair = (2, 2), strides: Pair | None = None, padding: str = "valid"
) -> np.ndarray:
    """``x: (N, H, W, C) -> (N, H_out, W_out, C)``, same dtype as ``x``.

    >>> x = np.arange(16).reshape(1, 4, 4, 1)
    >>> max_pool2d_forward(x)[0, :, :, 0]
    array([[ 5,  7],
           [13, 15]])
    """
    return max_pool2d_forward_argmax(x, pool, strides, padding, need_argmax=False)[0]


def max_pool2d_forward_argmax(
    x: np.ndarray,
    pool: Pair = (2, 2),
    strides: Pair | None = None,
    padding: str = "valid",
    need_argmax: bool = True,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Max pooling plus, per output cell, the window offset ``di*pw + dj`` of its first maximum."""
    strides = strides or pool
    xp, out_hw, _ = _prepare(x, pool, strides, padding, lowest_value(x.dtype))
    y = xp[window_slice(0, 0, out_hw, strides, _NO_DILATION)].copy()
    arg = np.zeros(y.shape, dtype=winner_dtype(pool)) if need_argmax else None
    for di in range(pool[0]):
        for dj in range(pool[1]):
            if di == dj == 0:
                continue
            candidate = xp[window_slice(di, dj, out_hw, strides, _NO_DILATION)]
            if arg is not None:
                # strictly greater: an equal later cell never steals the gradient; NaN propagates
                # (as np.max, and PyTorch and TensorFlow's MaxPool) and the first NaN wins
                better = candidate > y
                if y.dtype.kind in "fc":
                    better |= np.isnan(candidate) & ~np.isnan(y)
                arg[better] = di * pool[1] + dj
            np.maximum(y, candidate, out=y)
    return y, arg


def max_pool2d_backward(
    dy: np.ndarray,
    arg: np.ndarray,
    x_shape: tuple[int, ...],
    pool: Pair = (2, 2),
    strides: Pair | None = None,
    padding: str = "valid",
) -> np.ndarray:
    """``dy: (N, H_out, W_out, C)`` -> ``dx: (N, H, W, C)``; ``arg`` from the forward pass."""
    strides = strides or pool
    hw = (x_shape[1], x_shape[2])
    pads = padding_amounts(hw, pool, strides, padding)
    (top, bottom), (left, right) = pads
    padded_shape = (x_shape[0], hw[0] + top + bottom, hw[1] + left + right, x_shape[3])
    out_hw = dy.shape[1:3]
    dxp = np.zeros(padded_shape, dy.dtype)
    non_overlapping = strides[0] >= pool[0] and strides[1] >= pool[1]
    for di in range(pool[0]):
        for dj in range(pool[1]):
            winner = arg == di * pool[1] + dj
            target = dxp[window_slice(di, dj, out_hw, strides, _NO_DILATION)]
            if non_overlapping:
                np.copyto(target, dy, where=winner)
            else:
                target += np.where(winner, dy, 0)
    return unpad_hw(dxp, pads, hw)


def _valid_counts(n: int, k: int, s: int, out: int, before: int) -> np.ndarray:
    """How many real (non-padding) cells each window covers along one axis."""
    starts = np.arange(out) * s - before
    return (np.minimum(starts + k, n) - np.maximum(starts, 0)).astype(np.float64)


def avg_pool_divisor(hw: tuple[int, int], pool: Pair, strides: Pair, padding: str) -> np.ndarray:
    """``(H_out, W_out)`` count of real cells in each window (all ``ph*pw`` for 'valid')."""
    out_hw = window_output_hw(hw, pool, strides, padding, _NO_DILATION, "pooling")
    (top, _), (left, _) = padding_amounts(hw, pool, strides, padding)
    rows = _valid_counts(hw[0], pool[0], strides[0], out_hw[0], top)
    cols = _valid_counts(hw[1], pool[1], strides[1], out_hw[1], left)
    return np.outer(rows, cols)


def avg_pool2d_forward(
    x: np.ndarray, pool: Pair = (2, 2), strides: Pair | None = None, padding: str = "valid"
) -> np.ndarray:
    """``x: (N, H, W, C) -> (N, H_out, W_out, C)``; 'same' divides by the real cells only.

    >>> x = np.arange(25, dtype=np.float32).reshape(1, 5, 5, 1)
    >>> avg_pool2d_forward(x, padding="same")[0, :, :, 0]
    array([[ 3. ,  5. ,  6.5],
           [13. , 15. , 16.5],
           [20.5, 22.5, 24. ]], dtype=float32)
    """
    strides = strides or pool
    xp, out_hw, _ = _prepare(x, pool, strides, padding, 0)
    total = np.zeros((x.shape[0], out_hw[0], out_hw[1], x.shape[3]), dtype=x.dtype)
    for di in range(pool[0]):
        for dj in range(pool[1]):
            total += xp[window_slice(di, dj, out_hw, strides, _NO_DILATION)]
    divisor = avg_pool_divisor((x.shape[1], x.shape[2]), pool, strides, padding)
    total /= divisor[None, :, :, None].astype(x.dtype)
    return total


def avg_pool2d_backward(
    dy: np.ndarray,
    x_shape: tuple[int, ...],
    pool: Pair = (2, 2),
    strides: Pair | None = None,
    padding: str = "valid",
) -> np.ndarray:
    """``dy: (N, H_out, W_out, C)`` -> ``dx: (N, H, W, C)``: each cell gets ``dy / divisor``
    from every window it belongs to."""
    strides = strides or pool
    hw = (x_shape[1], x_shape[2])
    pads = padding_amounts(hw, pool, strides, padding)
    (top, bottom), (left, right) = pads
    share = dy / avg_pool_divisor(hw, pool, strides, padding)[None, :, :, None].astype(dy.dtype)
    dxp = np.zeros((x_shape[0], hw[0] + top + bottom, hw[1] + left + right, x_shape[3]), dy.dtype)
    out_hw = dy.shape[1:3]
    for di in range(pool[0]):
        for dj in range(pool[1]):
            dxp[window_slice(di, dj, out_hw, strides, _NO_DILATION)] += share
    return unpad_hw(dxp, pads, hw)


def pool2d_window(sample: np.ndarray, i: int, j: int, c: int, pool: Pair, strides: Pair, padding: str):
    """The window output ``(i, j, c)`` pools, as ``rows, cols, pad, values (ph, pw)`` in float64;
    padding cells hold -inf (they never win a max and are not counted in an average)."""
    from cnnlab.ops.conv import gather_window, window_cells

    rows, cols, pad = window_cells(sample.shape[:2], i, j, pool, strides, padding)
    return rows, cols, pad, gather_window(sample[:, :, c : c + 1], rows, cols, pad, -np.inf)[:, :, 0]


def first_maximum(values: np.ndarray) -> tuple[int, int]:
    """``(row, column)`` of the first maximum in row-major order: the cell that gets the gradient."""
    flat = int(np.argmax(values))
    return flat // values.shape[1], flat % values.shape[1]


def pool2d_naive(x: np.ndarray, pool: Pair, strides: Pair | None, padding: str, mode: str = "max") -> np.ndarray:
    """Loop reference for both poolings (float64 for 'avg', ``x``'s dtype for 'max'), window by
    window with :func:`pool2d_window` (the arithmetic ``cl.explain`` shows)."""
    strides = strides or pool
    ho, wo = window_output_hw((x.shape[1], x.shape[2]), pool, strides, padding)
    y = np.zeros((x.shape[0], ho, wo, x.shape[3]), dtype=x.dtype if mode == "max" else np.float64)
    for n in range(x.shape[0]):
        for i in range(ho):
            for j in range(wo):
                for c in range(x.shape[3]):
                    _, _, pad, values = pool2d_window(x[n], i, j, c, pool, strides, padding)
                    y[n, i, j, c] = values.max() if mode == "max" else values[~pad].mean()
    return y
