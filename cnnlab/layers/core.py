"""Core layers: ``Dense``, ``Flatten``, ``Activation``, ``Dropout`` and ``Input``."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab import config
from cnnlab.errors import InvalidArgumentError, ShapeError
from cnnlab.layers.activated import ActivationMixin
from cnnlab.layers.base import Layer, Shape, check_initializer
from cnnlab.layers.symbolic import KerasTensor, symbolic_output
from cnnlab.layers.weight_rules import WeightRulesMixin
from cnnlab.ops import activations as act_ops
from cnnlab.ops.shapes import whole_sizes
from cnnlab.random import generator


class Dense(ActivationMixin, WeightRulesMixin, Layer):
    """Fully connected layer on the last axis, like ``keras.layers.Dense``.

    ``x: (N, ..., in) -> (N, ..., units)``; ``y = activation(x @ kernel + bias)`` with
    kernel ``(in, units)`` and bias ``(units,)``.

    >>> d = Dense(2, name="demo_dense")
    >>> _ = d(np.zeros((1, 3), "float32"))
    >>> d.set_weights([np.arange(6).reshape(3, 2), np.array([0.5, -0.5])])
    >>> d(np.array([[1.0, 1.0, 1.0]]))
    array([[6.5, 8.5]], dtype=float32)
    """

    min_ndim = 2
    accepts_integers = False

    def __init__(
        self,
        units: int,
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: str = "glorot_uniform",
        bias_initializer: str = "zeros",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units < 1:
            raise InvalidArgumentError(f"Dense: expected units to be a positive integer, received {units!r}.")
        self.units = int(units)
        self.activation = act_ops.get(activation, "Dense")
        self.use_bias = bool(use_bias)
        self.kernel_initializer = check_initializer(kernel_initializer, "kernel_initializer", "Dense")
        self.bias_initializer = check_initializer(bias_initializer, "bias_initializer", "Dense")

    @property
    def kernel(self) -> np.ndarray | None:
        return self._weights.get("kernel")

    @property
    def bias(self) -> np.ndarray | None:
        return self._weights.get("bias")

    def build(self, input_shape: Shape) -> None:
        self.add_weight("kernel", (int(input_shape[-1]), self.units), self.kernel_initializer)  # type: ignore[arg-type]
        if self.use_bias:
            self.add_weight("bias", (self.units,), self.bias_initializer)
        super().build(input_shape)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return (*input_shape[:-1], self.units)

    def check_built_shape(self, x: np.ndarray) -> None:
        n_in = self.kernel.shape[0]
        if x.shape[-1] != n_in:
            hint = ""
            if x.ndim > 2 and int(np.prod(x.shape[1:])) == n_in:
                hint = (
                    f". The input holds {n_in} values per sample in shape {x.shape[1:]}: "
                    "did you forget a Flatten() layer before this Dense?"
                )
            raise self._incompatible(
                f"expected axis -1 of input shape to have value {n_in}, but received input "
                f"with shape {tuple(x.shape)}.",
                x.shape,
                hint,
            )

    def work_bytes_per_sample(self, input_shape: tuple[int, ...]) -> int:
        return int(np.prod(input_shape[1:-1], dtype=np.int64)) * self.units * 8

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x2 = x.reshape(-1, x.shape[-1])
        z = x2 @ self.kernel
        if self.use_bias:
            z += self.bias
        if training:
            self._cache = x2
        return self.activate(z, training).reshape(*x.shape[:-1], self.units)

    def backward(self, dy: np.ndarray, need_dx: bool = True, from_logits: bool = False) -> np.ndarray | None:
        x2 = self._cache
        dz = self.activation_backward(dy, from_logits).reshape(-1, self.units)
        # write into the preallocated gradient views when the model provides them
        self.grads["kernel"] = np.matmul(x2.T, dz, out=self.grads.get("kernel"))
        if self.use_bias:
            self.grads["bias"] = dz.sum(axis=0, out=self.grads.get("bias"))
        if not need_dx:
            return None
        # dz @ kernel^T, computed as (kernel @ dz^T)^T and made contiguous: OpenBLAS reads the
        # kernel in its stored layout faster (32 x 500 x 500: 0.11 vs 0.14 ms on 2 threads)
        dx = np.ascontiguousarray(np.matmul(self.kernel, dz.T).T)
        return dx.reshape(*dy.shape[:-1], x2.shape[1])

    def release(self) -> None:
        super().release()
        self.release_activation()

    def _layout_hint(self, slot: str, shape: tuple[int, ...]) -> str:
        if slot == "kernel" and tuple(shape[::-1]) == self._weights[slot].shape:
            return " It looks like PyTorch's (out, in) order; pass w.T instead."
        return ""

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "units": self.units,
            "activation": self.activation,
            "use_bias": self.use_bias,
            "kernel_initializer": self.kernel_initializer,
            "bias_initializer": self.bias_initializer,
        }


class Flatten(Layer):
    """``x: (N, d1, d2, ...) -> (N, d1*d2*...)`` in C order (Keras's channels_last Flatten).

    >>> Flatten()(np.zeros((2, 3, 4, 5))).shape
    (2, 60)
    """

    min_ndim = 1

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        rest = input_shape[1:]
        size = None if any(d is None for d in rest) else int(np.prod(rest, dtype=np.int64))
        return (input_shape[0], size)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        if training:
            self._cache = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        return dy.reshape(self._cache)


class Activation(ActivationMixin, Layer):
    """Applies an activation by name ('relu', 'softmax', 'sigmoid', 'tanh', 'linear').

    >>> Activation("relu")(np.array([[-1.0, 2.0]]))
    array([[0., 2.]], dtype=float32)
    """

    def __init__(self, activation: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.activation = act_ops.get(activation, "Activation")

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        if x.ndim == 0 and self.activation == "softmax":
            raise ShapeError(
                f'Activation "{self.name}" (softmax): softmax normalises over the last axis, so it needs an array '
                f"with at least one axis; received a 0-d array ({x.item()!r}). Pass a vector or a batch, "
                "e.g. x[None] or np.atleast_2d(x)."
            )
        if not np.issubdtype(x.dtype, np.floating):
            x = x.astype(config.floatx())
        # activate() may work in place; the input may be another layer's kept output
        return self.activate(x.copy(), training)

    def backward(self, dy: np.ndarray, need_dx: bool = True, from_logits: bool = False) -> np.ndarray | None:
        return self.activation_backward(dy, from_logits)

    def release(self) -> None:
        super().release()
        self.release_activation()

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "activation": self.activation}


class Dropout(Layer):
    """Zeroes a fraction ``rate`` of the inputs during training and scales the rest by
    ``1 / (1 - rate)`` (inverted dropout, as Keras); the identity at inference.

    >>> Dropout(0.5)(np.ones((1, 4)))
    array([[1., 1., 1., 1.]], dtype=float32)
    """

    def __init__(self, rate: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, (int, float, np.floating)) or not 0 <= rate < 1:
            raise InvalidArgumentError(f"Dropout: expected rate to be a number in [0, 1), received {rate!r}.")
        self.rate = float(rate)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        if not training or self.rate == 0:
            self._cache = None
            return x
        keep = generator().random(x.shape, dtype=np.float32) >= self.rate
        scale = (keep / (1.0 - self.rate)).astype(x.dtype)
        self._cache = scale
        return x * scale

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        return dy if self._cache is None else dy * self._cache

    def forward_for_gradients(self, x: np.ndarray) -> np.ndarray:
        """The identity, as at inference (no mask drawn, no random numbers used)."""
        self._cache = None
        return x

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rate": self.rate}


class InputLayer(Layer):
    """Declares the input shape of a ``Sequential`` model (made by :func:`Input`)."""

    declares_input = True

    def __init__(self, shape: tuple[int, ...], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.shape = whole_sizes(shape, "shape", "Input")

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        return x

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        return dy

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "shape": list(self.shape)}


def Input(shape: tuple[int, ...], name: str | None = None) -> InputLayer:  # noqa: N802 (Keras name)
    """``keras.Input(shape=...)`` for ``Sequential([Input((28, 28, 1)), ...])``."""
    return InputLayer(shape, name=name)


class SpatialDropout2D(Dropout):
    """Dropout of whole feature maps, like ``keras.layers.SpatialDropout2D``: during training each
    channel of each sample is zeroed with probability ``rate`` (the mask has shape ``(N, 1, 1, C)``)
    and the rest scaled by ``1 / (1 - rate)``; the identity at inference.

    ``x: (N, H, W, C) -> (N, H, W, C)``.

    >>> SpatialDropout2D(0.5)(np.ones((1, 2, 2, 1))).shape
    (1, 2, 2, 1)
    """

    min_ndim = 4

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        if x.ndim != 4:
            raise self._incompatible(f"expected ndim=4, found ndim={x.ndim}.", x.shape)
        if not training or self.rate == 0:
            self._cache = None
            return x
        # adjacent pixels of a feature map are correlated, so dropping single pixels barely
        # regularizes: the whole map goes (Tompson et al., 2015)
        keep = generator().random((x.shape[0], 1, 1, x.shape[3]), dtype=np.float32) >= self.rate
        scale = (keep / (1.0 - self.rate)).astype(x.dtype)
        self._cache = scale
        return x * scale


def functional_input(shape: tuple[int, ...], name: str | None = None, dtype: str | None = None) -> KerasTensor:
    """``keras.Input(shape)`` (``cl.Input``): the symbolic input of a functional model; ``shape``
    without the batch axis.

    >>> x = functional_input((28, 28, 1))
    >>> x.shape
    (None, 28, 28, 1)
    """
    layer = InputLayer(whole_sizes(shape, "shape", "Input"), name=name)
    return symbolic_output(layer)
