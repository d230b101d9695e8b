"""Resampling an image through an affine map: the arithmetic behind Keras's ``RandomTranslation``,
``RandomRotation`` and ``RandomZoom`` (``keras.ops.image.affine_transform``).

A transform is Keras's 8-vector ``[a0, a1, a2, b0, b1, b2, c0, c1]`` (affine: ``c0 = c1 = 0``). It
maps each OUTPUT pixel (row ``i``, column ``j``) to the point of the INPUT it reads::

    x_in = a0*j + a1*i + a2        (column)
    y_in = b0*j + b1*i + b2        (row)

Bilinear interpolation, as Keras 3 computes it (``map_coordinates`` with ``order=1``)::

    r0 = floor(y_in), wr1 = y_in - r0, wr0 = 1 - wr1      (same for columns: c0, wc0, wc1)
    y[n, i, j, ch] = sum over r in {r0, r0+1}, c in {c0, c0+1} of wr * wc * pixel(n, r, c, ch)

``interpolation="nearest"`` reads the single pixel at ``round(y_in), round(x_in)`` (halves to
even, like ``torch.round``/``jnp.round``). ``pixel`` outside the image follows ``fill_mode``::

    reflect   (d c b a | a b c d | d c b a)   mirror about the edge of the last pixel
    wrap      (a b c d | a b c d | a b c d)
    nearest   (a a a a | a b c d | d d d d)
    constant  (k k k k | a b c d | k k k k)   k = fill_value

The output is linear in ``x`` (for ``constant`` plus a term in ``fill_value``), so the gradient
with respect to ``x`` is the transpose: each ``dy`` is scattered back to the pixels it read,
with the same weights (:func:`resample_backward`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cnnlab.errors import InvalidArgumentError

FILL_MODES = ("reflect", "wrap", "constant", "nearest")
INTERPOLATIONS = ("nearest", "bilinear")


def check_fill_mode(fill_mode: object, owner: str) -> str:
    if fill_mode not in FILL_MODES:
        raise InvalidArgumentError(
            f"{owner}: unknown fill_mode {fill_mode!r}. Expected one of {', '.join(map(repr, FILL_MODES))}."
        )
    return str(fill_mode)


def check_interpolation(interpolation: object, owner: str) -> str:
    if interpolation not in INTERPOLATIONS:
        raise InvalidArgumentError(
            f"{owner}: unknown interpolation {interpolation!r}. Expected one of {', '.join(map(repr, INTERPOLATIONS))}."
        )
    return str(interpolation)


def fix_index(index: np.ndarray, size: int, fill_mode: str) -> tuple[np.ndarray, np.ndarray]:
    """The pixel read at integer ``index`` along an axis of ``size`` pixels, and whether it is a
    real pixel (``False`` only for ``constant`` outside the image, where ``fill_value`` is read).

    >>> fix_index(np.arange(-3, 7), 4, "reflect")[0]
    array([2, 1, 0, 0, 1, 2, 3, 3, 2, 1])
    >>> fix_index(np.arange(-3, 7), 4, "wrap")[0]
    array([1, 2, 3, 0, 1, 2, 3, 0, 1, 2])
    """
    if fill_mode == "constant":
        inside = (index >= 0) & (index < size)
        return np.clip(index, 0, size - 1), inside
    everywhere = np.ones(np.shape(index), bool)
    if fill_mode == "nearest":
        return np.clip(index, 0, size - 1), everywhere
    # reflect / wrap: an integer modulo per index is slow (~1 ms per 10^5 int64 values); the
    # indices span a short range, so work the answer out once per distinct value and look it up
    low = int(index.min()) if index.size else 0
    values = np.arange(low, (int(index.max()) if index.size else 0) + 1)
    if fill_mode == "reflect":
        # period 2*size; index i and -1-i read the same pixel
        period = 2 * size
        m = np.mod(values, period)
        table = np.where(m < size, m, period - 1 - m)
    else:
        table = np.mod(values, size)
    return table[index - low], everywhere


def check_transforms(transforms: np.ndarray, n: int, owner: str = "affine_transform") -> np.ndarray:
    """``(8,)`` or ``(N, 8)`` -> ``(N, 8)`` float64; projective terms ``c0, c1`` must be 0."""
    t = np.asarray(transforms, dtype=np.float64)
    if t.ndim == 1:
        t = t[None]
    if t.ndim != 2 or t.shape[1] != 8 or t.shape[0] not in (1, n):
        raise InvalidArgumentError(
            f"{owner}: expected transforms of shape (8,) or ({n}, 8) ([a0, a1, a2, b0, b1, b2, c0, c1] per "
            f"image), received shape {t.shape}."
        )
    if np.any(t[:, 6:] != 0):
        raise InvalidArgumentError(
            f"{owner}: only affine transforms are supported (c0 = c1 = 0), received c0, c1 = {t[:, 6:].tolist()}."
        )
    return np.broadcast_to(t, (n, 8))


@dataclass
class Resampling:
    """Where each output pixel reads: ``K`` taps (4 bilinear, 1 nearest), each a tuple of ``K``
    arrays ``(N, H, W)`` (kept apart: stacking them cost a copy per step), and ``flat``, the read
    pixel as one index into ``x.reshape(N*H*W, C)`` per tap (one gather instead of three index arrays)."""

    rows: tuple[np.ndarray, ...]
    cols: tuple[np.ndarray, ...]
    weights: tuple[np.ndarray, ...]
    valid: tuple[np.ndarray, ...]
    input_shape: tuple[int, int, int, int]
    flat: tuple[np.ndarray, ...] = ()


def resample_plan(
    transforms: np.ndarray,
    shape: tuple[int, int, int, int],
    interpolation: str = "bilinear",
    fill_mode: str = "constant",
) -> Resampling:
    """The taps of :func:`affine_transform` for images of ``shape`` ``(N, H, W, C)``."""
    n, h, w, _ = shape
    t = check_transforms(transforms, n)
    i = np.arange(h, dtype=np.float64)[None, :, None]
    j = np.arange(w, dtype=np.float64)[None, None, :]
    a0, a1, a2, b0, b1, b2 = (t[:, k, None, None] for k in range(6))
    x_in = a0 * j + a1 * i + a2  # (N, H, W)
    y_in = b0 * j + b1 * i + b2
    if interpolation == "nearest":
        row_taps = [(np.round(y_in).astype(np.int64), np.ones_like(y_in))]
        col_taps = [(np.round(x_in).astype(np.int64), np.ones_like(x_in))]
    else:
        r0, c0 = np.floor(y_in), np.floor(x_in)
        wr1, wc1 = y_in - r0, x_in - c0
        r0, c0 = r0.astype(np.int64), c0.astype(np.int64)
        row_taps = [(r0, 1 - wr1), (r0 + 1, wr1)]
        col_taps = [(c0, 1 - wc1), (c0 + 1, wc1)]
    rows, cols, weights, valid, flat = [], [], [], [], []
    batch_rows = np.arange(n)[:, None, None] * h
    col_fixed = [fix_index(c, w, fill_mode) for c, _ in col_taps]
    for r, wr in row_taps:
        r_fixed, r_ok = fix_index(r, h, fill_mode)
        first_row = (batch_rows + r_fixed) * w  # flat index of column 0 of the row read
        for (_, wc), (c_fixed, c_ok) in zip(col_taps, col_fixed, strict=True):
            rows.append(r_fixed)
            cols.append(c_fixed)
            weights.append(wr * wc)
            valid.append(r_ok & c_ok)
            flat.append((first_row + c_fixed).ravel())
    return Resampling(tuple(rows), tuple(cols), tuple(weights), tuple(valid), tuple(shape), tuple(flat))


def resample_forward(x: np.ndarray, plan: Resampling, fill_value: float = 0.0) -> np.ndarray:
    """``x: (N, H, W, C) -> (N, H, W, C)``: the weighted sum of the taps, in ``x.dtype``."""
    pixels = x.reshape(-1, x.shape[3])  # (N*H*W, C)
    out = np.zeros(pixels.shape, np.float64)
    for k in range(len(plan.flat)):
        values = pixels[plan.flat[k]].astype(np.float64)  # (N*H*W, C)
        if not plan.valid[k].all():
            values = np.where(plan.valid[k].reshape(-1, 1), values, fill_value)
        out += plan.weights[k].reshape(-1, 1) * values
    return out.reshape(x.shape).astype(x.dtype)


def resample_backward(dy: np.ndarray, plan: Resampling) -> np.ndarray:
    """``dy: (N, H, W, C) -> dx: (N, H, W, C)``: the transpose of :func:`resample_forward`
    (``fill_value`` is a constant: no gradient flows to it)."""
    n, h, w, c = plan.input_shape
    flat = np.concatenate(plan.flat)  # (K*N*H*W,)
    weights = np.where(np.stack(plan.valid), np.stack(plan.weights), 0.0)  # (K, N, H, W)
    dx = np.empty((n * h * w, c), np.float64)
    for ch in range(c):
        contrib = (weights * dy[None, ..., ch]).ravel()
        dx[:, ch] = np.bincount(flat, weights=contrib, minlength=n * h * w)
    return dx.reshape(n, h, w, c).astype(dy.dtype)


def affine_transform(
    x: np.ndarray,
    transforms: np.ndarray,
    interpolation: str = "bilinear",
    fill_mode: str = "constant",
    fill_value: float = 0.0,
) -> np.ndarray:
    """``keras.ops.image.affine_transform`` (channels_last): ``x: (N, H, W, C) -> (N, H, W, C)``.

    Shifting right by one pixel reads column ``j - 1`` (``a2 = -1``):

    >>> x = np.arange(4.0).reshape(1, 1, 4, 1)
    >>> affine_transform(x, [1, 0, -1, 0, 1, 0, 0, 0], fill_mode="reflect")[0, 0, :, 0]
    array([0., 0., 1., 2.])
    >>> affine_transform(x, [1, 0, -0.5, 0, 1, 0, 0, 0], fill_value=10.0)[0, 0, :, 0]
    array([5. , 0.5, 1.5, 2.5])
    """
    check_interpolation(interpolation, "affine_transform")
    check_fill_mode(fill_mode, "affine_transform")
    return resample_forward(x, resample_plan(transforms, x.shape, interpolation, fill_mode), fill_value)


def _read_naive(image: np.ndarray, r: int, c: int, ch: int, fill_mode: str, fill_value: float) -> float:
    """One pixel of the image extended by ``fill_mode`` (written independently of :func:`fix_index`)."""
    h, w = image.shape[:2]
    if fill_mode == "constant" and not (0 <= r < h and 0 <= c < w):
        return fill_value
    if fill_mode == "nearest" or fill_mode == "constant":
        r, c = min(max(r, 0), h - 1), min(max(c, 0), w - 1)
    elif fill_mode == "wrap":
        r, c = r % h, c % w
    else:  # reflect: fold back about the pixel edges until inside
        while not 0 <= r < h:
            r = -1 - r if r < 0 else 2 * h - 1 - r
        while not 0 <= c < w:
            c = -1 - c if c < 0 else 2 * w - 1 - c
    return float(image[r, c, ch])


def affine_transform_naive(
    x: np.ndarray,
    transforms: np.ndarray,
    interpolation: str = "bilinear",
    fill_mode: str = "constant",
    fill_value: float = 0.0,
) -> np.ndarray:
    """Loop reference of :func:`affine_transform`: one output value at a time, in float64."""
    n, h, w, c = x.shape
    t = check_transforms(transforms, n)
    y = np.zeros(x.shape, np.float64)
    for b in range(n):
        a0, a1, a2, b0, b1, b2 = (float(v) for v in t[b, :6])
        for i in range(h):
            for j in range(w):
                x_in, y_in = a0 * j + a1 * i + a2, b0 * j + b1 * i + b2
                if interpolation == "nearest":
                    taps = [(round(y_in), round(x_in), 1.0)]  # Python rounds halves to even
                else:
                    r0, c0 = math.floor(y_in), math.floor(x_in)
                    fr, fc = y_in - r0, x_in - c0
                    taps = [
                        (r0, c0, (1 - fr) * (1 - fc)),
                        (r0, c0 + 1, (1 - fr) * fc),
                        (r0 + 1, c0, fr * (1 - fc)),
                        (r0 + 1, c0 + 1, fr * fc),
                    ]
                for ch in range(c):
                    y[b, i, j, ch] = sum(
                        weight * _read_naive(x[b], r, col, ch, fill_mode, fill_value) for r, col, weight in taps
                    )
    return y.astype(x.dtype)


# ------------------------------------------------------------------ Keras's transform matrices
def translation_transforms(dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Shift by ``dx`` pixels right and ``dy`` down (``RandomTranslation._get_translation_matrix``):
    ``[1, 0, -dx, 0, 1, -dy, 0, 0]`` per image -> ``(N, 8)``."""
    dx, dy = np.atleast_1d(np.asarray(dx, np.float64)), np.atleast_1d(np.asarray(dy, np.float64))
    one, zero = np.ones_like(dx), np.zeros_like(dx)
    return np.stack([one, zero, -dx, zero, one, -dy, zero, zero], axis=1)


def rotation_transforms(angles_degrees: np.ndarray, height: int, width: int) -> np.ndarray:
    """Counter-clockwise rotation about the image centre ``((W-1)/2, (H-1)/2)``
    (``BaseImagePreprocessingLayer._compute_affine_matrix`` with scale 1, no shear, no shift)::

        a0 = cos t, a1 = -sin t, a2 = cx - cx*a0 - cy*a1
        b0 = sin t, b1 =  cos t, b2 = cy - cx*b0 - cy*b1

    >>> np.round(rotation_transforms([90.0], 3, 3), 12)[0, :6]
    array([ 0., -1.,  2.,  1.,  0., -0.])
    """
    theta = np.atleast_1d(np.asarray(angles_degrees, np.float64)) * (math.pi / 180.0)
    cx, cy = 0.5 * (width - 1), 0.5 * (height - 1)
    cos, sin = np.cos(theta), np.sin(theta)
    a0, a1, b0, b1 = cos, -sin, sin, cos
    zero = np.zeros_like(theta)
    return np.stack([a0, a1, cx - cx * a0 - cy * a1, b0, b1, cy - cx * b0 - cy * b1, zero, zero], axis=1)


def zoom_transforms(zoom_x: np.ndarray, zoom_y: np.ndarray, height: int, width: int) -> np.ndarray:
    """Scale reading positions about the centre (``RandomZoom._get_zoom_matrix``): a factor above 1
    reads a larger area (zooms out), below 1 zooms in::

        [zx, 0, (W-1)/2 * (1-zx), 0, zy, (H-1)/2 * (1-zy), 0, 0]
    """
    zx, zy = np.atleast_1d(np.asarray(zoom_x, np.float64)), np.atleast_1d(np.asarray(zoom_y, np.float64))
    zero = np.zeros_like(zx)
    return np.stack([zx, zero, (width - 1) / 2 * (1 - zx), zero, zy, (height - 1) / 2 * (1 - zy), zero, zero], axis=1)


# ------------------------------------------------------------------ contrast
def adjust_contrast(x: np.ndarray, factor: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """``RandomContrast``'s arithmetic: ``clip((x - mean) * factor + mean, low, high)`` with ``mean``
    over height and width per image and channel, ``factor`` one number per image.

    ``x: (N, H, W, C)``, ``factor: (N,)`` -> ``(N, H, W, C)``.

    >>> adjust_contrast(np.array([0.0, 2.0]).reshape(1, 1, 2, 1), np.array([2.0]), (0, 255))[0, 0, :, 0]
    array([0., 3.])
    """
    mean = x.mean(axis=(1, 2), keepdims=True)
    f = np.asarray(factor, x.dtype).reshape(-1, 1, 1, 1)
    return np.clip((x - mean) * f + mean, value_range[0], value_range[1])


def adjust_contrast_backward(
    x: np.ndarray, factor: np.ndarray, value_range: tuple[float, float], dy: np.ndarray
) -> np.ndarray:
    """Gradient of :func:`adjust_contrast`: ``z = f*x + (1-f)*mean`` so
    ``dx = f*g + (1-f) * mean(g)`` with ``g = dy`` where ``z`` was not clipped (``low <= z <= high``,
    where the clip passes the gradient, as in Keras's backends), else 0."""
    mean = x.mean(axis=(1, 2), keepdims=True)
    f = np.asarray(factor, x.dtype).reshape(-1, 1, 1, 1)
    z = (x - mean) * f + mean
    g = np.where((z >= value_range[0]) & (z <= value_range[1]), dy, 0)
    return (f * g + (1 - f) * g.mean(axis=(1, 2), keepdims=True)).astype(dy.dtype)


def adjust_contrast_naive(x: np.ndarray, factor: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """Loop reference of :func:`adjust_contrast`."""
    n, h, w, c = x.shape
    y = np.empty(x.shape, np.float64)
    for b in range(n):
        for ch in range(c):
            mean = sum(float(x[b, i, j, ch]) for i in range(h) for j in range(w)) / (h * w)
            for i in range(h):
                for j in range(w):
                    v = (float(x[b, i, j, ch]) - mean) * float(factor[b]) + mean
                    y[b, i, j, ch] = min(max(v, value_range[0]), value_range[1])
    return y.astype(x.dtype)
