"""Preprocessing layers: ``Rescaling``."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab import config
from cnnlab.layers.base import Layer


def _number_or_list(value: Any, name: str) -> float | list[float]:
    array = np.asarray(value)
    if array.dtype.kind not in "iuf" or array.ndim > 1:
        raise ValueError(
            f"Rescaling: expected {name} to be a number or a list of numbers (one per channel), received {value!r}."
        )
    return float(array) if array.ndim == 0 else [float(v) for v in array]


class Rescaling(Layer):
    """``y = x * scale + offset``, like ``keras.layers.Rescaling`` (e.g. ``Rescaling(1 / 255)`` for
    pixels in 0..255). Integer images are converted to floats first, as Keras does.

    ``x: (N, ...) -> (N, ...)``; a list ``scale``/``offset`` applies per channel (last axis).

    >>> Rescaling(1 / 127.5, offset=-1)(np.array([[0, 255]], dtype="uint8"))
    array([[-1.,  1.]], dtype=float32)
    """

    def __init__(self, scale: Any, offset: Any = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scale = _number_or_list(scale, "scale")
        self.offset = _number_or_list(offset, "offset")

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        dtype = config.floatx()
        if not np.issubdtype(x.dtype, np.floating):
            x = x.astype(dtype)
        # Keras casts scale and offset to the compute dtype before multiplying
        return x * np.asarray(self.scale, x.dtype) + np.asarray(self.offset, x.dtype)

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        return dy * np.asarray(self.scale, dy.dtype)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "scale": self.scale, "offset": self.offset}
