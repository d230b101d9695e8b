"""2-D convolution (Keras's Conv2D arithmetic), forward and backward, NHWC.

Keras's "convolution" is a cross-correlation (the kernel is not flipped)::

    y[n, i, j, f] = b[f] + sum_{di, dj, c} xp[n, i*s_h + di*d_h, j*s_w + dj*d_w, c] * w[di, dj, c, f]

where ``xp`` is ``x`` zero-padded for ``padding='same'`` (see ``shapes.same_padding``).
The fast path gathers the windows into ``cols: (N, H_out, W_out, kh, kw, C)``
(``im2col``: ``kh*kw`` strided copies) and does one BLAS matmul with the kernel
reshaped to ``(kh*kw*C, filters)``. :func:`conv2d_naive` is the plain loop
reference the tests and the explainer use.
"""

from __future__ import annotations

import numpy as np

from cnnlab.ops.shapes import padding_amounts, window_output_hw
from cnnlab.ops.windows import pad_hw, unpad_hw, window_slice

Pair = tuple[int, int]


def group_slices(c_group: int, filters: int, groups: int) -> list[tuple[slice, slice]]:
    """``(input channels, output filters)`` of each group of a grouped convolution.

    >>> group_slices(2, 6, 2)
    [(slice(0, 2, None), slice(0, 3, None)), (slice(2, 4, None), slice(3, 6, None))]
    """
    per_group = filters // groups
    return [(slice(g * c_group, (g + 1) * c_group), slice(g * per_group, (g + 1) * per_group)) for g in range(groups)]


def im2col(x: np.ndarray, kernel: Pair, strides: Pair, padding: str, dilation: Pair = (1, 1)) -> np.ndarray:
    """Gather every window: ``x: (N, H, W, C) -> cols: (N, H_out, W_out, kh, kw, C)``."""
    kh, kw = kernel
    hw = (x.shape[1], x.shape[2])
    out_hw = window_output_hw(hw, kernel, strides, padding, dilation, "Conv2D")
    pads = padding_amounts(hw, kernel, strides, padding, dilation)
    cols = np.empty((x.shape[0], out_hw[0], out_hw[1], kh, kw, x.shape[3]), dtype=x.dtype)
    xp = pad_hw(x, pads)
    for di in range(kh):
        for dj in range(kw):
            cols[:, :, :, di, dj, :] = xp[window_slice(di, dj, out_hw, strides, dilation)]
    return cols


def conv2d_forward(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    strides: Pair = (1, 1),
    padding: str = "valid",
    dilation: Pair = (1, 1),
    groups: int = 1,
) -> np.ndarray:
    """``x: (N, H, W, C_in)``, ``w: (kh, kw, C_in/groups, F)``, ``b: (F,)`` -> ``(N, H_out, W_out, F)``.

    With ``groups = G`` (Keras's ``Conv2D(groups=G)``) output filter ``f`` of group
    ``g = f // (F/G)`` sees only input channels ``g*C_in/G ... (g+1)*C_in/G - 1``.

    >>> x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    >>> conv2d_forward(x, np.full((2, 2, 1, 1), 0.25, np.float32), np.array([3.0], np.float32))[0, :, :, 0]
    array([[ 5.5,  6.5,  7.5],
           [ 9.5, 10.5, 11.5],
           [13.5, 14.5, 15.5]], dtype=float32)
    """
    return conv2d_forward_cols(x, w, b, strides, padding, dilation, groups)[0]


def conv2d_forward_cols(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    strides: Pair = (1, 1),
    padding: str = "valid",
    dilation: Pair = (1, 1),
    groups: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """As :func:`conv2d_forward`, also returning ``cols`` (what the backward pass needs)."""
    kh, kw, c_group, filters = w.shape
    cols = im2col(x, (kh, kw), strides, padding, dilation)
    n, ho, wo = cols.shape[:3]
    if groups == 1:
        y = cols.reshape(n * ho * wo, kh * kw * c_group) @ w.reshape(kh * kw * c_group, filters)
    else:
        y = np.empty((n * ho * wo, filters), dtype=np.result_type(x, w))
        for channels, outputs in group_slices(c_group, filters, groups):
            k = kh * kw * c_group
            y[:, outputs] = cols[..., channels].reshape(-1, k) @ w[..., outputs].reshape(k, -1)
    if b is not None:
        y += b
    return y.reshape(n, ho, wo, filters), cols


def conv2d_backward(
    dy: np.ndarray,
    cols: np.ndarray,
    x_shape: tuple[int, ...],
    w: np.ndarray,
    strides: Pair = (1, 1),
    padding: str = "valid",
    dilation: Pair = (1, 1),
    need_dx: bool = True,
    dw_out: np.ndarray | None = None,
    db_out: np.ndarray | None = None,
    groups: int = 1,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Gradients of a loss through :func:`conv2d_forward`.

    ``dy: (N, H_out, W_out, F)`` -> ``dx: (N, H, W, C_in)`` (``None`` unless
    ``need_dx``), ``dw: (kh, kw, C_in/groups, F)``, ``db: (F,)``.
    ``dw = cols^T @ dy``; ``dx`` scatters ``dy @ w^T`` back through the windows
    (``col2im``), summing where windows overlap. ``dw_out``/``db_out``, if given,
    receive ``dw``/``db`` (the training loop passes views of one flat gradient array).
    """
    kh, kw, c_group, filters = w.shape
    k = kh * kw * c_group
    dy2 = dy.reshape(-1, filters)
    if groups != 1:
        dw = np.empty_like(w) if dw_out is None else dw_out
        for channels, outputs in group_slices(c_group, filters, groups):
            dw[..., outputs] = (cols[..., channels].reshape(-1, k).T @ dy2[:, outputs]).reshape(kh, kw, c_group, -1)
    elif dw_out is None:
        dw = (cols.reshape(-1, k).T @ dy2).reshape(w.shape)
    else:
        np.matmul(cols.reshape(-1, k).T, dy2, out=dw_out.reshape(k, filters))
        dw = dw_out
    db = dy2.sum(axis=0, out=db_out)
    if not need_dx:
        return None, dw, db
    return conv2d_backward_input(dy, cols.shape, x_shape, w, strides, padding, dilation, groups), dw, db


def conv2d_backward_input(
    dy: np.ndarray,
    cols_shape: tuple[int, ...],
    x_shape: tuple[int, ...],
    w: np.ndarray,
    strides: Pair = (1, 1),
    padding: str = "valid",
    dilation: Pair = (1, 1),
    groups: int = 1,
) -> np.ndarray:
    """``dx: (N, H, W, C_in)`` from ``dy: (N, H_out, W_out, F)``: ``dy @ w^T`` scattered back
    through the windows (``col2im``), summing where windows overlap."""
    kh, kw, c_group, filters = w.shape
    c_in = c_group * groups
    k = kh * kw * c_group
    dy2 = dy.reshape(-1, filters)
    if groups == 1:
        dcols = (dy2 @ w.reshape(k, filters).T).reshape(cols_shape)
    else:
        dcols = np.empty(cols_shape, dtype=dy.dtype)
        for channels, outputs in group_slices(c_group, filters, groups):
            dcols[..., channels] = (dy2[:, outputs] @ w[..., outputs].reshape(k, -1).T).reshape(
                *cols_shape[:-1], c_group
            )
    hw = (x_shape[1], x_shape[2])
    pads = padding_amounts(hw, (kh, kw), strides, padding, dilation)
    (top, bottom), (left, right) = pads
    dxp = np.zeros((x_shape[0], hw[0] + top + bottom, hw[1] + left + right, c_in), dtype=dy.dtype)
    out_hw = cols_shape[1:3]
    for di in range(kh):
        for dj in range(kw):
            dxp[window_slice(di, dj, out_hw, strides, dilation)] += dcols[:, :, :, di, dj, :]
    return unpad_hw(dxp, pads, hw)


def window_cells(
    hw: tuple[int, int], i: int, j: int, kernel: Pair, strides: Pair, padding: str, dilation: Pair = (1, 1)
) -> tuple[list[int], list[int], np.ndarray]:
    """The input rows and columns that output ``(i, j)`` reads, and which of them are padding.

    ``rows[di] = i*s_h + di*d_h - top``; ``pad[di, dj]`` is True where ``(rows[di], cols[dj])``
    lies outside the ``hw`` input (a 'same' padding cell).

    >>> rows, cols, pad = window_cells((4, 4), 0, 0, (2, 2), (1, 1), "same")
    >>> rows, cols, pad.tolist()
    ([0, 1], [0, 1], [[False, False], [False, False]])
    >>> window_cells((4, 4), 3, 3, (3, 3), (1, 1), "same")[0]
    [2, 3, 4]
    """
    (top, _), (left, _) = padding_amounts(hw, kernel, strides, padding, dilation)
    rows = [i * strides[0] + di * dilation[0] - top for di in range(kernel[0])]
    cols = [j * strides[1] + dj * dilation[1] - left for dj in range(kernel[1])]
    pad = np.array([[not (0 <= r < hw[0] and 0 <= q < hw[1]) for q in cols] for r in rows])
    return rows, cols, pad


def gather_window(sample: np.ndarray, rows: list[int], cols: list[int], pad: np.ndarray, fill: float) -> np.ndarray:
    """``(len(rows), len(cols), C)`` window of ``sample: (H, W, C)`` in float64; padding cells hold ``fill``."""
    window = np.full((len(rows), len(cols), sample.shape[2]), fill, dtype=np.float64)
    for a, r in enumerate(rows):
        for b, q in enumerate(cols):
            if not pad[a, b]:
                window[a, b] = sample[r, q]
    return window


def conv2d_terms(
    sample: np.ndarray,
    w: np.ndarray,
    i: int,
    j: int,
    f: int,
    strides: Pair = (1, 1),
    padding: str = "valid",
    dilation: Pair = (1, 1),
    groups: int = 1,
) -> tuple[list[int], list[int], np.ndarray, np.ndarray, np.ndarray]:
    """The arithmetic of one output value, cell by cell in float64 (the lecture's way):
    ``rows, cols, pad, window (kh, kw, C/groups), products = window * w[..., f]``; the output is
    ``products.sum() + b[f]``, then the activation. With ``groups > 1`` the window holds only the
    channels of ``f``'s group.

    >>> x = np.arange(16.0).reshape(4, 4, 1)
    >>> products = conv2d_terms(x, np.array([1.0, 2, 3, 4]).reshape(2, 2, 1, 1), 0, 0, 0)[4]
    >>> products[:, :, 0].tolist(), products.sum()
    ([[0.0, 2.0], [12.0, 20.0]], np.float64(34.0))
    """
    kh, kw, c_group, filters = w.shape
    rows, cols, pad = window_cells(sample.shape[:2], i, j, (kh, kw), strides, padding, dilation)
    first = (f // (filters // groups)) * c_group  # the first input channel of f's group
    window = gather_window(sample[:, :, first : first + c_group], rows, cols, pad, fill=0.0)
    return rows, cols, pad, window, window * w[:, :, :, f].astype(np.float64)


def conv2d_naive(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    strides: Pair = (1, 1),
    padding: str = "valid",
    dilation: Pair = (1, 1),
    groups: int = 1,
) -> np.ndarray:
    """Loop reference for :func:`conv2d_forward`, computed in float64 output by output with
    :func:`conv2d_terms` (the arithmetic ``cl.explain`` shows)."""
    kh, kw, _, filters = w.shape
    ho, wo = window_output_hw((x.shape[1], x.shape[2]), (kh, kw), strides, padding, dilation)
    y = np.zeros((x.shape[0], ho, wo, filters))
    for n in range(x.shape[0]):
        for i in range(ho):
            for j in range(wo):
                for f in range(filters):
                    products = conv2d_terms(x[n], w, i, j, f, strides, padding, dilation, groups)[4]
                    y[n, i, j, f] = float(products.sum()) + (0.0 if b is None else float(b[f]))
    return y
