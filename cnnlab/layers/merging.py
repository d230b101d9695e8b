"""Merge layers: several tensors in, one out (``keras.layers.Add``, ``Concatenate``, ...).

Each is called on a list: ``Add()([a, b])``. On arrays it computes; on symbolic tensors it
records a node of a functional model. ``forward(xs, training)`` takes the list and
``backward(dy, need_dx)`` returns one gradient per input (the engine sums gradients of a tensor
used by several nodes). Elementwise merges broadcast size-1 axes as Keras 3 does; ``Concatenate``
needs equal sizes except along ``axis``.

>>> import numpy as np
>>> Add()([np.array([[1.0, 2.0]]), np.array([[10.0, 20.0]])])
array([[11., 22.]], dtype=float32)
>>> Concatenate()([np.zeros((1, 2)), np.ones((1, 1))])
array([[0., 0., 1.]], dtype=float32)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab.errors import InvalidArgumentError, ShapeError
from cnnlab.layers import symbolic
from cnnlab.layers.base import Layer, Shape, format_shape


class Merge(Layer):
    """Base of the elementwise merge layers: ``[x_1, ..., x_k]`` -> ``(N, ...)``.

    Shapes follow Keras 3's rule for inputs of one rank: per axis the sizes must be equal or one
    of them 1 (that input is broadcast, e.g. ``(N, H, W, C) * (N, 1, 1, C)`` in a
    squeeze-and-excitation block); the gradient of a broadcast input is summed over the axes it
    was repeated along. Inputs of different ranks are refused (Keras inserts axes after the batch
    axis for them, rarely what was meant).
    """

    #: called on a list of tensors
    takes_list = True
    #: Keras 3 accepts a list of one tensor (and returns it)
    min_inputs = 1

    def _check_count(self, shapes: Any) -> None:
        if not isinstance(shapes, (list, tuple)) or len(shapes) < self.min_inputs:
            count = len(shapes) if isinstance(shapes, (list, tuple)) else 1
            raise InvalidArgumentError(
                f'Layer "{self.name}" ({type(self).__name__}) should be called on a list of at least '
                f"{self.min_inputs} input(s), received {count}. Example: {type(self).__name__}()([a, b])."
            )

    def _incompatible_shapes(self, first: Shape, other: Shape) -> ShapeError:
        return ShapeError(
            f'Layer "{self.name}" ({type(self).__name__}): inputs have incompatible shapes. Received shapes '
            f"{format_shape(first)} and {format_shape(other)}: every axis must have equal sizes or size 1. "
            "Make them match first (e.g. a 1x1 Conv2D to match channels, or pooling to match height and width)."
        )

    def compute_output_shape(self, input_shape: Any) -> Shape:
        self._check_count(input_shape)
        out = list(input_shape[0])
        for other in input_shape[1:]:
            other = tuple(other)
            if len(other) != len(out):
                raise self._incompatible_shapes(tuple(input_shape[0]), other)
            for k in range(1, len(out)):
                a, b = out[k], other[k]
                if a is None or b is None:
                    out[k] = None
                elif a == 1:
                    out[k] = b
                elif b != 1 and a != b:
                    raise self._incompatible_shapes(tuple(input_shape[0]), other)
        return tuple(out)

    def build(self, input_shape: Any) -> None:
        self.compute_output_shape(input_shape)
        self.build_input_shape = [tuple(s) for s in input_shape]
        self.built = True

    def __call__(self, x: Any, training: bool = False) -> Any:
        if symbolic.involves_symbolic(x):
            return symbolic.call_symbolic(self, x)
        if not isinstance(x, (list, tuple)):
            raise InvalidArgumentError(
                f'Layer "{self.name}" ({type(self).__name__}) should be called on a list of inputs, '
                f"received {type(x).__name__}. Example: {type(self).__name__}()([a, b])."
            )
        xs = [self.check_input(item) for item in x]
        shapes = [(None, *item.shape[1:]) for item in xs]
        self.compute_output_shape(shapes)
        if not self.built:
            self.build(shapes)
        out = self.forward(xs, training=training)
        if not training:
            self.release()
        return out

    def check_built_shape(self, x: Any) -> None:
        pass

    def forward(self, xs: list[np.ndarray], training: bool = False) -> np.ndarray:
        self.compute_output_shape([(None, *x.shape[1:]) for x in xs])
        if len({len(x) for x in xs}) > 1:
            raise ShapeError(
                f'Layer "{self.name}" ({type(self).__name__}): cannot merge tensors with different batch sizes; '
                f"received shapes {[tuple(x.shape) for x in xs]}."
            )
        y, cache = self.merge(xs)
        self._cache = (cache, [x.shape for x in xs]) if training else None
        return y

    def merge(self, xs: list[np.ndarray]) -> tuple[np.ndarray, Any]:
        raise NotImplementedError

    def split(self, dy: np.ndarray, cache: Any) -> list[np.ndarray]:
        raise NotImplementedError

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> list[np.ndarray] | None:
        if not need_dx:
            return None
        cache, shapes = self._cache
        return [_unbroadcast(g, shape) for g, shape in zip(self.split(dy, cache), shapes, strict=True)]


def _unbroadcast(g: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``g`` summed over the axes an input of ``shape`` was broadcast along (size 1 there).

    >>> _unbroadcast(np.ones((2, 3, 4)), (2, 1, 4)).shape
    (2, 1, 4)
    """
    axes = tuple(k for k, (a, b) in enumerate(zip(g.shape, shape, strict=True)) if b == 1 and a != 1)
    return g.sum(axis=axes, keepdims=True) if axes else g


class Add(Merge):
    """``y = x_1 + ... + x_k`` (``keras.layers.Add``); ``dL/dx_i = dy``."""

    def merge(self, xs: list[np.ndarray]) -> tuple[np.ndarray, Any]:
        y = xs[0]
        for x in xs[1:]:
            y = y + x
        return (y.copy() if len(xs) == 1 else y), len(xs)

    def split(self, dy: np.ndarray, count: int) -> list[np.ndarray]:
        # one array per input: the branches' backward passes may update their gradient in place
        return [dy] + [dy.copy() for _ in range(count - 1)]


class Subtract(Merge):
    """``y = x_1 - x_2`` (``keras.layers.Subtract``: exactly two inputs); gradients ``dy, -dy``."""

    min_inputs = 2

    def compute_output_shape(self, input_shape: Any) -> Shape:
        self._check_count(input_shape)
        if len(input_shape) != 2:
            raise InvalidArgumentError(
                f'Layer "{self.name}" (Subtract) should be called on exactly 2 inputs, received {len(input_shape)}.'
            )
        return super().compute_output_shape(input_shape)

    def merge(self, xs: list[np.ndarray]) -> tuple[np.ndarray, Any]:
        return xs[0] - xs[1], None

    def split(self, dy: np.ndarray, cache: Any) -> list[np.ndarray]:
        return [dy, -dy]


class Multiply(Merge):
    """``y = x_1 * ... * x_k`` elementwise; ``dL/dx_i = dy * prod_{j != i} x_j``."""

    def merge(self, xs: list[np.ndarray]) -> tuple[np.ndarray, Any]:
        y = xs[0]
        for x in xs[1:]:
            y = y * x
        return (y.copy() if len(xs) == 1 else y), xs

    def split(self, dy: np.ndarray, xs: list[np.ndarray]) -> list[np.ndarray]:
        out = []
        for i in range(len(xs)):
            g = dy.copy()
            for j, x in enumerate(xs):
                if j != i:
                    g = g * x
            out.append(g)
        return out


class Average(Merge):
    """``y = (x_1 + ... + x_k) / k`` (Keras sums, then divides by k); ``dL/dx_i = dy / k``."""

    def merge(self, xs: list[np.ndarray]) -> tuple[np.ndarray, Any]:
        y = xs[0]
        for x in xs[1:]:
            y = y + x
        return y / y.dtype.type(len(xs)), len(xs)

    def split(self, dy: np.ndarray, count: int) -> list[np.ndarray]:
        g = dy / dy.dtype.type(count)
        return [g] + [g.copy() for _ in range(count - 1)]


class Maximum(Merge):
    """``y = max(x_1, ..., x_k)`` elementwise.

    Gradient: ``dy`` goes to the *first* input holding the maximum (ties: the lowest input
    index wins, as ``np.argmax`` picks; the others get 0), like cnnlab's max pooling. Keras
    computes ``maximum(maximum(x_1, x_2), x_3) ...``; TensorFlow's ``maximum`` gradient sends a
    tie to its first argument (``x >= y``), the same rule; PyTorch's splits a tie in halves.
    """

    def merge(self, xs: list[np.ndarray]) -> tuple[np.ndarray, Any]:
        y = xs[0]
        for x in xs[1:]:
            y = np.maximum(y, x)
        return (y.copy() if len(xs) == 1 else y), xs

    def split(self, dy: np.ndarray, xs: list[np.ndarray]) -> list[np.ndarray]:
        winner = np.argmax(np.stack(np.broadcast_arrays(*xs)), axis=0)
        return [np.where(winner == i, dy, 0).astype(dy.dtype, copy=False) for i in range(len(xs))]


class Concatenate(Merge):
    """Join along ``axis`` (``keras.layers.Concatenate(axis=-1)``): ``[(N, H, W, C_1), (N, H, W, C_2)]
    -> (N, H, W, C_1 + C_2)``; the gradient is ``dy`` split back at the same places."""

    def __init__(self, axis: int = -1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise InvalidArgumentError(f"Concatenate: expected axis to be an integer, received {axis!r}.")
        self.axis = int(axis)

    def _check_shapes(self, shapes: list[Shape]) -> None:
        self._check_count(shapes)
        rank = len(shapes[0])
        axis = self.axis % rank if -rank <= self.axis < rank else None
        if axis is None or axis == 0:
            raise InvalidArgumentError(
                f'Layer "{self.name}" (Concatenate): axis={self.axis} is not a feature axis of inputs of rank {rank}; '
                f"expected 1 <= axis < {rank} or -{rank - 1} <= axis <= -1."
            )
        first = tuple(shapes[0])
        for other in shapes[1:]:
            other = tuple(other)
            differ = len(other) != rank or any(
                a != b for k, (a, b) in enumerate(zip(first, other, strict=True)) if k not in (0, axis)
            )
            if differ:
                raise ShapeError(
                    f'Layer "{self.name}" (Concatenate): a Concatenate layer requires inputs with matching shapes '
                    f"except for the concatenation axis {self.axis}; received shapes {format_shape(first)} and "
                    f"{format_shape(other)}."
                )

    def compute_output_shape(self, input_shape: Any) -> Shape:
        self._check_shapes(input_shape)
        axis = self.axis % len(input_shape[0])
        out = list(input_shape[0])
        sizes = [s[axis] for s in input_shape]
        out[axis] = None if any(s is None for s in sizes) else sum(sizes)
        return tuple(out)

    def merge(self, xs: list[np.ndarray]) -> tuple[np.ndarray, Any]:
        axis = self.axis % xs[0].ndim
        return np.concatenate(xs, axis=axis), (axis, np.cumsum([x.shape[axis] for x in xs])[:-1])

    def split(self, dy: np.ndarray, cache: Any) -> list[np.ndarray]:
        axis, cuts = cache
        return np.split(dy, cuts, axis=axis)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "axis": self.axis}
