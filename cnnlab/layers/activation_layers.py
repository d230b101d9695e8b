"""Activation layers with arguments: ``ReLU``, ``LeakyReLU``, ``Softmax`` (Keras 3 defaults)."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab import config
from cnnlab.errors import ShapeError
from cnnlab.layers.base import Layer
from cnnlab.ops import activations as act_ops


def _float(x: np.ndarray) -> np.ndarray:
    return x if np.issubdtype(x.dtype, np.floating) else x.astype(config.floatx())


def _non_negative(value: Any, name: str, owner: str, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or value < 0:
        raise ValueError(
            f"{owner}: {name} cannot be None or a negative value. Expected a float >= 0, received {value!r}."
        )
    return float(value)


class ReLU(Layer):
    """Keras's ``ReLU(max_value=None, negative_slope=0.0, threshold=0.0)``, elementwise:
    ``min(x, max_value)`` for ``x > threshold``, ``negative_slope * (x - threshold)`` otherwise.

    ``x: (N, ...) -> (N, ...)``.

    >>> ReLU(max_value=6.0)(np.array([[-1.0, 3.0, 8.0]]))
    array([[0., 3., 6.]], dtype=float32)
    """

    def __init__(
        self, max_value: float | None = None, negative_slope: float = 0.0, threshold: float = 0.0, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.max_value = _non_negative(max_value, "max_value", "ReLU", allow_none=True)
        self.negative_slope = _non_negative(negative_slope, "negative_slope", "ReLU")
        self.threshold = _non_negative(threshold, "threshold", "ReLU")

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = _float(x)
        if training:
            self._cache = x
        return act_ops.relu_general(x, self.negative_slope, self.max_value, self.threshold)

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        return act_ops.relu_general_backward(self._cache, dy, self.negative_slope, self.max_value, self.threshold)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "max_value": self.max_value,
            "negative_slope": self.negative_slope,
            "threshold": self.threshold,
        }


class LeakyReLU(Layer):
    """``x`` for ``x > 0``, ``negative_slope * x`` otherwise; Keras 3's layer default is 0.3 (the
    ``"leaky_relu"`` activation function's is 0.2).

    ``x: (N, ...) -> (N, ...)``.

    >>> LeakyReLU()(np.array([[-1.0, 2.0]]))
    array([[-0.3,  2. ]], dtype=float32)
    """

    def __init__(self, negative_slope: float = 0.3, **kwargs: Any) -> None:
        if "alpha" in kwargs:  # Keras 2's name, still accepted by Keras 3
            negative_slope = kwargs.pop("alpha")
        super().__init__(**kwargs)
        self.negative_slope = _non_negative(negative_slope, "negative_slope", "LeakyReLU")

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = _float(x)
        if training:
            self._cache = x
        return act_ops.leaky_relu(x, self.negative_slope)

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        return act_ops.leaky_relu_backward(self._cache, None, dy, self.negative_slope)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "negative_slope": self.negative_slope}


class Softmax(Layer):
    """Softmax along ``axis`` (default -1), like ``keras.layers.Softmax``.

    ``x: (N, ...) -> (N, ...)``; ``y = exp(x - max) / sum(exp(x - max))`` along ``axis``.

    >>> Softmax(axis=1)(np.zeros((1, 2, 1)))[0, :, 0]
    array([0.5, 0.5], dtype=float32)
    """

    def __init__(self, axis: int = -1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise ValueError(f"Softmax: expected axis to be an integer, received {axis!r}.")
        self.axis = int(axis)

    def _axis(self, ndim: int) -> int:
        if ndim < 2:
            raise ShapeError(
                f'Softmax "{self.name}": expected inputs of rank 2 or more (a batch axis and a feature axis to '
                f"normalise over), received rank {ndim}. Add the batch axis: x[None]."
            )
        if not -ndim <= self.axis < ndim or self.axis in (0, -ndim):
            raise ValueError(
                f'Softmax "{self.name}": axis={self.axis} is not a feature axis of inputs of rank {ndim}; '
                f"expected an axis in 1..{ndim - 1} or -{ndim - 1}..-1."
            )
        return self.axis % ndim

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        axis = self._axis(x.ndim)
        y = np.moveaxis(act_ops.softmax(np.moveaxis(_float(x), axis, -1)), -1, axis)
        if training:
            self._cache = (y, axis)
        return y

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        y, axis = self._cache
        return y * (dy - (dy * y).sum(axis=axis, keepdims=True))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "axis": self.axis}
