"""Pooling layers: a small base class plus ``MaxPooling2D`` and ``AveragePooling2D``,
thin wrappers around :mod:`cnnlab.ops.pool`; ``GlobalAveragePooling2D`` and ``GlobalMaxPooling2D``."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab import config
from cnnlab.errors import InvalidArgumentError
from cnnlab.layers.base import Layer, Shape
from cnnlab.ops import pool as pool_ops
from cnnlab.ops.reshaping import global_max_pool2d_backward
from cnnlab.ops.shapes import normalize_padding, normalize_tuple, window_output_hw


class BasePooling2D(Layer):
    """``x: (N, H, W, C) -> (N, H_out, W_out, C)``; ``strides`` default to ``pool_size``."""

    min_ndim = 4

    def __init__(
        self,
        pool_size: int | tuple[int, int] = (2, 2),
        strides: int | tuple[int, int] | None = None,
        padding: str = "valid",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.pool_size = normalize_tuple(pool_size, "pool_size", owner)
        self.strides = self.pool_size if strides is None else normalize_tuple(strides, "strides", owner)
        self.padding = normalize_padding(padding, owner)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 4:
            raise InvalidArgumentError(
                f'{type(self).__name__} "{self.name}": expected an input shape '
                f"(batch, height, width, channels), received {tuple(input_shape)}."
            )
        ho, wo = window_output_hw(
            (int(input_shape[1]), int(input_shape[2])),  # type: ignore[arg-type]
            self.pool_size,
            self.strides,
            self.padding,
            (1, 1),
            f'{type(self).__name__} "{self.name}"',
        )
        return (input_shape[0], ho, wo, input_shape[3])

    def check_built_shape(self, x: np.ndarray) -> None:
        if x.ndim != 4:
            raise self._incompatible(f"expected ndim=4, found ndim={x.ndim}.", x.shape)
        self.compute_output_shape(x.shape)

    def work_bytes_per_sample(self, input_shape: tuple[int, ...]) -> int:
        # padded copy + output + argmax mask
        return int(np.prod(input_shape[1:])) * 3 * 4

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "pool_size": list(self.pool_size),
            "strides": list(self.strides),
            "padding": self.padding,
        }


class MaxPooling2D(BasePooling2D):
    """Max over each window, like ``keras.layers.MaxPooling2D``; the dtype is kept
    (integer input gives integer output) and 'same' padding never wins (-inf).

    >>> MaxPooling2D()(np.arange(16).reshape(1, 4, 4, 1))[0, :, :, 0]
    array([[ 5,  7],
           [13, 15]])
    """

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        y, arg = pool_ops.max_pool2d_forward_argmax(x, self.pool_size, self.strides, self.padding, need_argmax=training)
        if training:
            self._cache = (arg, x.shape)
        return y

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        arg, x_shape = self._cache
        return pool_ops.max_pool2d_backward(dy, arg, x_shape, self.pool_size, self.strides, self.padding)


class AveragePooling2D(BasePooling2D):
    """Mean over each window, like ``keras.layers.AveragePooling2D``; with 'same' the
    mean is over the real cells only."""

    accepts_integers = False

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        if training:
            self._cache = x.shape
        return pool_ops.avg_pool2d_forward(x, self.pool_size, self.strides, self.padding)

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        return pool_ops.avg_pool2d_backward(dy, self._cache, self.pool_size, self.strides, self.padding)


MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D


class BaseGlobalPooling2D(Layer):
    """``x: (N, H, W, C) -> (N, C)``, or ``(N, 1, 1, C)`` with ``keepdims=True``."""

    min_ndim = 4

    def __init__(self, data_format: str | None = None, keepdims: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise ValueError(
                f"{type(self).__name__}: cnnlab works channels_last (N, H, W, C); received "
                f"data_format={data_format!r}. Transpose the data instead: x.transpose(0, 2, 3, 1)."
            )
        self.keepdims = bool(keepdims)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 4:
            raise ValueError(
                f'{type(self).__name__} "{self.name}": expected inputs of shape (batch, height, width, channels), '
                f"received {tuple(input_shape)}."
            )
        n, c = input_shape[0], input_shape[3]
        return (n, 1, 1, c) if self.keepdims else (n, c)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "keepdims": self.keepdims}


class GlobalAveragePooling2D(BaseGlobalPooling2D):
    """Mean over all positions of each channel, like ``keras.layers.GlobalAveragePooling2D``.

    >>> GlobalAveragePooling2D()(np.arange(8.0).reshape(1, 2, 2, 2))
    array([[3., 4.]], dtype=float32)
    """

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self.compute_output_shape(x.shape)
        if not np.issubdtype(x.dtype, np.floating):
            x = x.astype(config.floatx())  # Keras averages integer images as floats
        if training:
            self._cache = x.shape
        y = x.mean(axis=(1, 2), keepdims=True)
        return y if self.keepdims else y.reshape(x.shape[0], x.shape[3])

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        n, h, w, c = self._cache
        # every position contributed 1 / (H * W) of the mean
        return np.broadcast_to(dy.reshape(n, 1, 1, c) / (h * w), self._cache).copy()


GlobalAvgPool2D = GlobalAveragePooling2D


class GlobalMaxPooling2D(BaseGlobalPooling2D):
    """Maximum over all positions of each channel, like ``keras.layers.GlobalMaxPooling2D``.

    >>> GlobalMaxPooling2D(keepdims=True)(np.arange(8.0).reshape(1, 2, 2, 2)).shape
    (1, 1, 1, 2)
    """

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self.compute_output_shape(x.shape)
        y = x.max(axis=(1, 2), keepdims=True)
        if training:
            self._cache = (x, y)
        return y if self.keepdims else y.reshape(x.shape[0], x.shape[3])

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        x, y = self._cache
        return global_max_pool2d_backward(x, y, dy.reshape(y.shape))


GlobalMaxPool2D = GlobalMaxPooling2D
