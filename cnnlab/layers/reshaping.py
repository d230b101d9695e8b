"""Layers that rearrange values: ``ZeroPadding2D``, ``Cropping2D``, ``UpSampling2D``, ``Reshape``,
``Permute`` (Keras names, arguments and errors; channels_last)."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab.layers.base import Layer, Shape, format_shape
from cnnlab.ops.reshaping import Pairs, crop2d, upsample_nearest, upsample_nearest_backward, zero_pad2d
from cnnlab.ops.shapes import normalize_tuple


def normalize_pairs(value: object, name: str, owner: str) -> Pairs:
    """Keras's three spellings of 2-D padding/cropping, as ``((top, bottom), (left, right))``.

    >>> normalize_pairs(1, "padding", "ZeroPadding2D")
    ((1, 1), (1, 1))
    >>> normalize_pairs((1, 2), "padding", "ZeroPadding2D")
    ((1, 1), (2, 2))
    >>> normalize_pairs(((0, 1), (2, 3)), "cropping", "Cropping2D")
    ((0, 1), (2, 3))
    """
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, (tuple, list)) for v in value):
        return (
            normalize_tuple(value[0], f"1st entry of {name}", owner, allow_zero=True),
            normalize_tuple(value[1], f"2nd entry of {name}", owner, allow_zero=True),
        )
    try:
        h, w = normalize_tuple(value, name, owner, allow_zero=True)
    except ValueError:
        raise ValueError(
            f"{owner}: `{name}` should be either an int, a tuple of 2 ints (symmetric_height, symmetric_width), "
            f"or a tuple of 2 tuples of 2 ints ((top, bottom), (left, right)). Received: {name}={value!r}."
        ) from None
    return (h, h), (w, w)


def _check_rank4(layer: Layer, input_shape: Shape) -> None:
    if len(input_shape) != 4:
        raise ValueError(
            f'{type(layer).__name__} "{layer.name}": expected inputs of shape (batch, height, width, channels), '
            f"received shape {format_shape(tuple(input_shape))}."
        )


class ZeroPadding2D(Layer):
    """Adds rows and columns of zeros, like ``keras.layers.ZeroPadding2D``.

    ``x: (N, H, W, C) -> (N, H + top + bottom, W + left + right, C)``.

    >>> ZeroPadding2D(((1, 0), (0, 2)))(np.ones((1, 2, 2, 1))).shape
    (1, 3, 4, 1)
    """

    min_ndim = 4

    def __init__(self, padding: Any = (1, 1), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.padding = normalize_pairs(padding, "padding", "ZeroPadding2D")

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        _check_rank4(self, input_shape)
        (t, b), (le, r) = self.padding
        n, h, w, c = input_shape
        return (n, None if h is None else h + t + b, None if w is None else w + le + r, c)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        _check_rank4(self, x.shape)
        return zero_pad2d(x, self.padding)

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        return np.ascontiguousarray(crop2d(dy, self.padding))  # the padded zeros get no gradient

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "padding": [list(p) for p in self.padding]}


class Cropping2D(Layer):
    """Removes rows and columns at the borders, like ``keras.layers.Cropping2D``.

    ``x: (N, H, W, C) -> (N, H - top - bottom, W - left - right, C)``.

    >>> Cropping2D(((1, 0), (0, 2)))(np.ones((1, 4, 4, 1))).shape
    (1, 3, 2, 1)
    """

    min_ndim = 4

    def __init__(self, cropping: Any = ((0, 0), (0, 0)), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cropping = normalize_pairs(cropping, "cropping", "Cropping2D")

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        _check_rank4(self, input_shape)
        (t, b), (le, r) = self.cropping
        n, h, w, c = input_shape
        if (h is not None and t + b >= h) or (w is not None and le + r >= w):
            raise ValueError(
                f'Cropping2D "{self.name}": values in `cropping` must be smaller than the spatial size of the input '
                f"(at least one row and column must remain). Received: input_shape={format_shape(tuple(input_shape))}, "
                f"cropping={self.cropping}. Crop less, or pad the input first."
            )
        return (n, None if h is None else h - t - b, None if w is None else w - le - r, c)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self.compute_output_shape(x.shape)
        if training:
            self._cache = x.shape
        return crop2d(x, self.cropping)

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        dx = np.zeros(self._cache, dy.dtype)  # cropped-away positions get no gradient
        (t, b), (le, r) = self.cropping
        dx[:, t : dx.shape[1] - b, le : dx.shape[2] - r, :] = dy
        return dx

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "cropping": [list(p) for p in self.cropping]}


class UpSampling2D(Layer):
    """Repeats rows and columns (nearest neighbour), like ``keras.layers.UpSampling2D``.

    ``x: (N, H, W, C) -> (N, H * size[0], W * size[1], C)``; ``y[n, i, j, c] = x[n, i // sh, j // sw, c]``.

    >>> UpSampling2D(2)(np.arange(4.0).reshape(1, 2, 2, 1))[0, :, :, 0]
    array([[0., 0., 1., 1.],
           [0., 0., 1., 1.],
           [2., 2., 3., 3.],
           [2., 2., 3., 3.]], dtype=float32)
    """

    min_ndim = 4

    def __init__(self, size: Any = (2, 2), interpolation: str = "nearest", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.size = normalize_tuple(size, "size", "UpSampling2D")
        if interpolation != "nearest":
            raise ValueError(
                f"UpSampling2D: interpolation={interpolation!r} is not available in cnnlab; "
                "expected 'nearest' (Keras's default)."
            )
        self.interpolation = interpolation

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        _check_rank4(self, input_shape)
        n, h, w, c = input_shape
        return (n, None if h is None else h * self.size[0], None if w is None else w * self.size[1], c)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        _check_rank4(self, x.shape)
        return upsample_nearest(x, self.size)

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        return upsample_nearest_backward(dy, self.size)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "size": list(self.size), "interpolation": self.interpolation}


class Reshape(Layer):
    """Reshapes each sample to ``target_shape`` (C order; one entry may be -1), like
    ``keras.layers.Reshape``.

    ``x: (N, *in_shape) -> (N, *target_shape)`` with ``prod(in_shape) == prod(target_shape)``.

    >>> Reshape((2, -1))(np.zeros((3, 6))).shape
    (3, 2, 3)
    """

    def __init__(self, target_shape: tuple[int, ...], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        try:
            self.target_shape = tuple(int(d) for d in target_shape)
        except (TypeError, ValueError):
            raise ValueError(
                f"Reshape: expected target_shape to be a tuple of sizes without the batch axis, e.g. (7, 7, 2); "
                f"received {target_shape!r}."
            ) from None
        if sum(d == -1 for d in self.target_shape) > 1 or any(d < 1 and d != -1 for d in self.target_shape):
            raise ValueError(
                f"Reshape: target_shape must hold positive sizes and at most one -1 (a size inferred from the "
                f"input); received {self.target_shape}."
            )

    def _resolved(self, input_shape: Shape) -> tuple[int, ...] | None:
        rest = input_shape[1:]
        if any(d is None for d in rest):
            return None
        size = int(np.prod(rest, dtype=np.int64))
        known = int(np.prod([d for d in self.target_shape if d != -1], dtype=np.int64))
        target_desc = format_shape(self.target_shape)
        if -1 in self.target_shape:
            if size % known:
                raise ValueError(
                    f'Reshape "{self.name}": the input has {size} values per sample (shape {format_shape(rest)}), '
                    f"which is not a multiple of {known}, the product of the known sizes in target_shape "
                    f"{target_desc}. Choose a target shape whose sizes divide {size}."
                )
            return tuple(size // known if d == -1 else d for d in self.target_shape)
        if size != known:
            raise ValueError(
                f'Reshape "{self.name}": total size of the new array must be unchanged. The input has {size} '
                f"values per sample (shape {format_shape(rest)}) but target_shape {target_desc} holds {known}. "
                f"Choose a target shape with {size} values, or use -1 for one size to infer it."
            )
        return self.target_shape

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        resolved = self._resolved(tuple(input_shape))
        if resolved is None:
            return (input_shape[0], *(None if d == -1 else d for d in self.target_shape))
        return (input_shape[0], *resolved)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        target = self._resolved(x.shape)
        if training:
            self._cache = x.shape
        return x.reshape(x.shape[0], *target)

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        return dy.reshape(self._cache)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "target_shape": list(self.target_shape)}


class Permute(Layer):
    """Reorders the axes of each sample, like ``keras.layers.Permute``; ``dims`` counts from 1
    (the batch axis stays first).

    ``x: (N, d1, d2, d3) -> (N, d_dims[0], d_dims[1], d_dims[2])``.

    >>> Permute((2, 1))(np.zeros((4, 2, 3))).shape
    (4, 3, 2)
    """

    def __init__(self, dims: tuple[int, ...], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        try:
            self.dims = tuple(int(d) for d in dims)
        except (TypeError, ValueError):
            self.dims = ()
        if sorted(self.dims) != list(range(1, len(self.dims) + 1)):
            raise ValueError(
                f"Permute: invalid permutation argument dims={dims!r}. Expected a permutation of 1..k, where "
                f"axis 1 is the first axis after the batch axis, e.g. dims=(2, 1)."
            )

    def _check(self, input_shape: Shape) -> None:
        if len(input_shape) != len(self.dims) + 1:
            raise ValueError(
                f'Permute "{self.name}": dims={self.dims} reorders {len(self.dims)} axes, but the input '
                f"{format_shape(tuple(input_shape))} has {len(input_shape) - 1} axes after the batch axis."
            )

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        self._check(input_shape)
        return (input_shape[0], *(input_shape[d] for d in self.dims))

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._check(x.shape)
        return np.transpose(x, (0, *self.dims))

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        return np.transpose(dy, np.argsort((0, *self.dims)))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "dims": list(self.dims)}
