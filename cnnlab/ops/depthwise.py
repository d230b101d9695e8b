"""Depthwise and separable 2-D convolution (Keras's DepthwiseConv2D / SeparableConv2D), NHWC.

Depthwise: every input channel ``c`` has its own ``depth_multiplier`` kernels ``w[:, :, c, m]``;
output channel ``c*dm + m`` (TensorFlow's and Keras's order) is::

    y[n, i, j, c*dm + m] = b[c*dm + m] + sum_{di, dj} xp[n, i*s_h + di*d_h, j*s_w + dj*d_w, c] * w[di, dj, c, m]

Separable: the depthwise result (no bias) followed by a 1x1 convolution with the pointwise
kernel ``p: (1, 1, C*dm, filters)`` and the bias::

    y[n, i, j, f] = b[f] + sum_k depthwise(x)[n, i, j, k] * p[0, 0, k, f]

The fast path never gathers windows: it loops over the ``kh*kw`` kernel offsets and adds one
strided view of the padded input times one row of kernel values at a time (no channel mixing,
so there is no matmul to hand to BLAS). :func:`depthwise_conv2d_naive` and
:func:`separable_conv2d_naive` are the plain loop references.
"""

from __future__ import annotations

import numpy as np

from cnnlab.ops.conv import gather_window, window_cells
from cnnlab.ops.shapes import padding_amounts, window_output_hw
from cnnlab.ops.windows import pad_hw, unpad_hw, window_slice

Pair = tuple[int, int]


def depthwise_conv2d_forward_padded(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    strides: Pair = (1, 1),
    padding: str = "valid",
    dilation: Pair = (1, 1),
) -> tuple[np.ndarray, np.ndarray]:
    """As :func:`depthwise_conv2d_forward`, also returning the zero-padded input ``xp`` (what the
    backward pass needs: every window is a strided view of it)."""
    kh, kw, c_in, dm = w.shape
    hw = (x.shape[1], x.shape[2])
    out_hw = window_output_hw(hw, (kh, kw), strides, padding, dilation, "DepthwiseConv2D")
    xp = pad_hw(x, padding_amounts(hw, (kh, kw), strides, padding, dilation))
    y = np.zeros((x.shape[0], *out_hw, c_in, dm), dtype=x.dtype)
    term = np.empty_like(y)  # one buffer for every offset's products (no allocation per offset)
    for di in range(kh):
        for dj in range(kw):
            # (N, Ho, Wo, C, 1) * (C, dm): each channel times its own dm kernel values
            y += np.multiply(xp[window_slice(di, dj, out_hw, strides, dilation)][..., None], w[di, dj], out=term)
    y = y.reshape(x.shape[0], *out_hw, c_in * dm)
    if b is not None:
        y += b
    return y, xp


def depthwise_conv2d_forward(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    strides: Pair = (1, 1),
    padding: str = "valid",
    dilation: Pair = (1, 1),
) -> np.ndarray:
    """``x: (N, H, W, C)``, ``w: (kh, kw, C, dm)``, ``b: (C*dm,)`` -> ``(N, H_out, W_out, C*dm)``.

    >>> x = np.arange(18, dtype=np.float32).reshape(1, 3, 3, 2)  # channel 0: 0, 2, ..., 16; channel 1: 1, 3, ...
    >>> w = np.ones((2, 2, 2, 1), np.float32); w[..., 1, 0] = -1
    >>> y = depthwise_conv2d_forward(x, w, None)
    >>> y[0, :, :, 0].tolist(), y[0, :, :, 1].tolist()  # 0+2+6+8 = 16; -(1+3+7+9) = -20
    ([[16.0, 24.0], [40.0, 48.0]], [[-20.0, -28.0], [-44.0, -52.0]])
    """
    return depthwise_conv2d_forward_padded(x, w, b, strides, padding, dilation)[0]


def depthwise_conv2d_backward(
    dy: np.ndarray,
    xp: np.ndarray,
    x_shape: tuple[int, ...],
    w: np.ndarray,
    strides: Pair = (1, 1),
    padding: str = "valid",
    dilation: Pair = (1, 1),
    need_dx: bool = True,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Gradients through :func:`depthwise_conv2d_forward`.

    ``dy: (N, H_out, W_out, C*dm)`` -> ``dx: (N, H, W, C)`` (``None`` unless ``need_dx``),
    ``dw: (kh, kw, C, dm)``, ``db: (C*dm,)``. For each offset ``(di, dj)`` with window view ``v``:
    ``dw[di, dj, c, m] = sum_{n,i,j} v[n,i,j,c] * dy[n,i,j,c,m]`` and ``dx`` gathers
    ``sum_m dy[..., c, m] * w[di, dj, c, m]`` back into the cells ``v`` was read from.
    """
    kh, kw, c_in, dm = w.shape
    n, ho, wo = dy.shape[:3]
    dy5 = dy.reshape(n, ho, wo, c_in, dm)
    db = dy.reshape(-1, c_in * dm).sum(axis=0)
    dw = np.empty_like(w)
    dxp = np.zeros(xp.shape, dtype=dy.dtype) if need_dx else None
    rows = dy5.reshape(-1, c_in, dm)
    for di in range(kh):
        for dj in range(kw):
            index = window_slice(di, dj, (ho, wo), strides, dilation)
            view = xp[index]
            dw[di, dj] = np.einsum("pc,pcm->cm", view.reshape(-1, c_in), rows)
            if dxp is not None:
                dxp[index] += np.einsum("nijcm,cm->nijc", dy5, w[di, dj]) if dm > 1 else dy5[..., 0] * w[di, dj, :, 0]
    if dxp is None:
        return None, dw, db
    hw = (x_shape[1], x_shape[2])
    return unpad_hw(dxp, padding_amounts(hw, (kh, kw), strides, padding, dilation), hw), dw, db


def depthwise_conv2d_terms(
    sample: np.ndarray,
    w: np.ndarray,
    i: int,
    j: int,
    k: int,
    strides: Pair = (1, 1),
    padding: str = "valid",
    dilation: Pair = (1, 1),
) -> tuple[list[int], list[int], np.ndarray, np.ndarray, np.ndarray]:
    """The arithmetic of depthwise output ``(i, j, k)`` (``k = c*dm + m``) in float64:
    ``rows, cols, pad, window (kh, kw, 1)`` of input channel ``c``, ``products = window * w[:, :, c, m]``.

    >>> x = np.arange(8.0).reshape(2, 2, 2)
    >>> products = depthwise_conv2d_terms(x, np.ones((2, 2, 2, 1)), 0, 0, 1)[4]
    >>> products[:, :, 0].tolist()  # channel 1 only: 1, 3, 5, 7
    [[1.0, 3.0], [5.0, 7.0]]
    """
    kh, kw, _, dm = w.shape
    c, m = divmod(k, dm)
    rows, cols, pad = window_cells(sample.shape[:2], i, j, (kh, kw), strides, padding, dilation)
    window = gather_window(sample[:, :, c : c + 1], rows, cols, pad, fill=0.0)
    return rows, cols, pad, window, window * w[:, :, c : c + 1, m].astype(np.float64)


def depthwise_conv2d_naive(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    strides: Pair = (1, 1),
    padding: str = "valid",
    dilation: Pair = (1, 1),
) -> np.ndarray:
    """Loop reference for :func:`depthwise_conv2d_forward`, in float64, output by output."""
    kh, kw, c_in, dm = w.shape
    ho, wo = window_output_hw((x.shape[1], x.shape[2]), (kh, kw), strides, padding, dilation)
    y = np.zeros((x.shape[0], ho, wo, c_in * dm))
    for n in range(x.shape[0]):
        for i in range(ho):
            for j in range(wo):
                for k in range(c_in * dm):
                    products = depthwise_conv2d_terms(x[n], w, i, j, k, strides, padding, dilation)[4]
                    y[n, i, j, k] = float(products.sum()) + (0.0 if b is None else float(b[k]))
    return y


def separable_conv2d_forward_parts(
    x: np.ndarray,
    dw: np.ndarray,
    pw: np.ndarray,
    b: np.ndarray | None,
    strides: Pair = (1, 1),
    padding: str = "valid",
    dilation: Pair = (1, 1),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """As :func:`separable_conv2d_forward`, also returning the padded input and the depthwise result
    ``mid: (N, H_out, W_out, C*dm)`` (what the backward pass needs)."""
    mid, xp = depthwise_conv2d_forward_padded(x, dw, None, strides, padding, dilation)
    n, ho, wo, k = mid.shape
    filters = pw.shape[-1]
    y = mid.reshape(-1, k) @ pw.reshape(k, filters)
    if b is not None:
        y += b
    return y.reshape(n, ho, wo, filters), xp, mid


def separable_conv2d_forward(
    x: np.ndarray,
    dw: np.ndarray,
    pw: np.ndarray,
    b: np.ndarray | None,
    strides: Pair = (1, 1),
    padding: str = "valid",
    dilation: Pair = (1, 1),
) -> np.ndarray:
    """``x: (N, H, W, C)``, ``dw: (kh, kw, C, dm)``, ``pw: (1, 1, C*dm, F)``, ``b: (F,)`` -> ``(N, H_out, W_out, F)``.

    >>> x = np.arange(8, dtype=np.float32).reshape(1, 2, 2, 2)
    >>> dw = np.ones((2, 2, 2, 1), np.float32)  # channel sums: 0+2+4+6 = 12, 1+3+5+7 = 16
    >>> pw = np.array([1.0, 10.0], np.float32).reshape(1, 1, 2, 1)
    >>> separable_conv2d_forward(x, dw, pw, np.array([0.5], np.float32)).ravel().tolist()  # 12 + 160 + 0.5
    [172.5]
    """
    return separable_conv2d_forward_parts(x, dw, pw, b, strides, padding, dilation)[0]


def separable_conv2d_backward(
    dy: np.ndarray,
    xp: np.ndarray,
    mid: np.ndarray,
    x_shape: tuple[int, ...],
    dw: np.ndarray,
    pw: np.ndarray,
    strides: Pair = (1, 1),
    padding: str = "valid",
    dilation: Pair = (1, 1),
    need_dx: bool = True,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray, np.ndarray]:
    """``dy: (N, H_out, W_out, F)`` -> ``dx`` (or ``None``), ``d_depthwise``, ``d_pointwise``, ``db``:
    the pointwise matmul's gradients (``d_pw = mid^T @ dy``, ``d_mid = dy @ pw^T``), then
    :func:`depthwise_conv2d_backward` of ``d_mid``."""
    k, filters = pw.shape[2], pw.shape[3]
    dy2 = dy.reshape(-1, filters)
    d_pw = (mid.reshape(-1, k).T @ dy2).reshape(pw.shape)
    db = dy2.sum(axis=0)
    d_mid = (dy2 @ pw.reshape(k, filters).T).reshape(mid.shape)
    dx, d_dw, _ = depthwise_conv2d_backward(d_mid, xp, x_shape, dw, strides, padding, dilation, need_dx)
    return dx, d_dw, d_pw, db


def separable_conv2d_naive(
    x: np.ndarray,
    dw: np.ndarray,
    pw: np.ndarray,
    b: np.ndarray | None,
    strides: Pair = (1, 1),
    padding: str = "valid",
    dilation: Pair = (1, 1),
) -> np.ndarray:
    """Loop reference for :func:`separable_conv2d_forward`, in float64: the depthwise loop
    reference, then every pointwise output as an explicit sum."""
    mid = depthwise_conv2d_naive(x, dw, None, strides, padding, dilation)
    n, ho, wo, k = mid.shape
    filters = pw.shape[-1]
    y = np.zeros((n, ho, wo, filters))
    for index in np.ndindex(n, ho, wo):
        for f in range(filters):
            total = sum(float(mid[index][c]) * float(pw[0, 0, c, f]) for c in range(k))
            y[index][f] = total + (0.0 if b is None else float(b[f]))
    return y
