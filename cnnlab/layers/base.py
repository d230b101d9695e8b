"""The ``Layer`` base class: naming, lazy build, weights, input checks, chunked calls.

Subclasses implement four small methods, side by side:

* ``build(input_shape)`` creates the weights (Keras names and layouts);
* ``compute_output_shape(input_shape)`` is pure shape arithmetic (used by ``summary()``);
* ``forward(x, training)`` computes the output and keeps exactly what backward needs;
* ``backward(dy, need_dx)`` returns ``dx`` and fills ``self.grads`` (same keys as weights).

``layer(x)`` is the inference path: it checks and converts ``x``, builds the layer on
first use, and processes very large batches in chunks so memory stays bounded.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

import numpy as np

from cnnlab import config
from cnnlab.errors import InvalidArgumentError, ShapeError
from cnnlab.layers import symbolic
from cnnlab.ops.shapes import whole_sizes
from cnnlab.random import generator

Shape = tuple[int | None, ...]

_NAME_COUNTS: defaultdict[str, int] = defaultdict(int)

#: Inference on big batches is split so one chunk's temporaries stay below this.
CHUNK_BYTES = 64 * 2**20


def clear_session() -> None:
    """Restart automatic layer names at ``conv2d``, ``dense``, ... (``keras.backend.clear_session``)."""
    _NAME_COUNTS.clear()


def snake_case(name: str) -> str:
    """Keras's class-name-to-layer-name rule.

    >>> snake_case("MaxPooling2D"), snake_case("Conv2D"), snake_case("AveragePooling2D")
    ('max_pooling2d', 'conv2d', 'average_pooling2d')
    """
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def unique_name(base: str) -> str:
    """``base`` the first time, then ``base_1``, ``base_2``, ... (unique per process)."""
    count = _NAME_COUNTS[base]
    _NAME_COUNTS[base] += 1
    return base if count == 0 else f"{base}_{count}"


def glorot_uniform(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Keras's default kernel initializer: U(-l, l) with ``l = sqrt(6 / (fan_in + fan_out))``.

    For a conv kernel ``(kh, kw, C_in, F)``: fan_in = kh*kw*C_in, fan_out = kh*kw*F.
    """
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return generator().uniform(-limit, limit, size=shape).astype(dtype)


INITIALIZERS = {
    "glorot_uniform": glorot_uniform,
    "zeros": lambda shape, dtype: np.zeros(shape, dtype),
    "ones": lambda shape, dtype: np.ones(shape, dtype),
}


def check_initializer(value: object, argument: str, owner: str) -> str:
    if value not in INITIALIZERS:
        raise InvalidArgumentError(
            f"{owner}: unknown {argument} {value!r}. Expected one of {', '.join(repr(k) for k in INITIALIZERS)}."
        )
    return str(value)


def format_shape(shape: Shape) -> str:
    """``(None, 27, 27, 30)`` the way Keras prints shapes."""
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


class Layer:
    """Base of every cnnlab layer (Keras's ``keras.layers.Layer`` in miniature)."""

    #: smallest input rank accepted (batch axis included); ``None`` means any
    min_ndim: int | None = None
    #: integer inputs allowed (pooling, Flatten); Conv2D and Dense need floats
    accepts_integers: bool = True
    #: set by ``Input(...)``: the layer only declares the model's input shape (``shape``)
    declares_input: bool = False

    def __init__(
        self,
        name: str | None = None,
        input_shape: tuple[int, ...] | None = None,
        trainable: bool = True,
    ) -> None:
        if name is not None and (not isinstance(name, str) or not name):
            raise InvalidArgumentError(
                f"{type(self).__name__}: expected name to be a non-empty string, received {name!r}."
            )
        self.name = name or unique_name(snake_case(type(self).__name__))
        self.trainable = trainable
        self.built = False
        self.input_shape_arg = (
            None if input_shape is None else whole_sizes(input_shape, "input_shape", type(self).__name__)
        )
        self.build_input_shape: Shape | None = None
        self._weights: dict[str, np.ndarray] = {}
        #: keys of weights that never train (BatchNormalization's moving statistics): they stay out
        #: of the engine's flat parameter store and count as "Non-trainable params"
        self._non_trainable: set[str] = set()
        self.grads: dict[str, np.ndarray] = {}
        self._cache: Any = None
        #: calls on symbolic tensors (functional models): one ``symbolic.Node`` per call
        self._inbound_nodes: list[Any] = []

    # ----------------------------------------------------------------- weights
    def add_weight(self, name: str, shape: tuple[int, ...], initializer: str, trainable: bool = True) -> np.ndarray:
        """Create weight ``name``; ``trainable=False`` marks a statistic no optimizer touches (Keras's
        ``add_weight(..., trainable=False)``)."""
        value = INITIALIZERS[initializer](shape, config.float_dtype())
        self._weights[name] = value
        if not trainable:
            self._non_trainable.add(name)
        return value

    def trainable_keys(self, trainable: bool = True) -> list[str]:
        """Keys of the weights an optimizer updates when the layer's effective trainability is
        ``trainable`` (``False`` for a frozen layer or one inside a frozen model)."""
        if not (trainable and self.trainable):
            return []
        return [key for key in self._weights if key not in self._non_trainable]

    @property
    def weights(self) -> list[np.ndarray]:
        """The live weight arrays (``[kernel, bias]``); ``[]`` until the layer is built."""
        return list(self._weights.values())

    @property
    def trainable_weights(self) -> list[np.ndarray]:
        return [self._weights[key] for key in self.trainable_keys()]

    @property
    def non_trainable_weights(self) -> list[np.ndarray]:
        keys = set(self.trainable_keys())
        return [w for key, w in self._weights.items() if key not in keys]

    @property
    def weight_names(self) -> list[str]:
        return list(self._weights)

    def get_weights(self) -> list[np.ndarray]:
        """Copies of the weights, in Keras's order."""
        return [w.copy() for w in self._weights.values()]

    def set_weights(self, weights: list[Any]) -> None:
        """Replace the weights' values in place; checks the count and every shape."""
        if not self.built:
            raise InvalidArgumentError(
                f'Layer "{self.name}" has no weights yet: weights are created when the layer '
                f"is first called. Call it on an input first (e.g. layer(x)), or build it with "
                f"layer.build(input_shape)."
            )
        names = self.weight_names
        if not isinstance(weights, (list, tuple)) or len(weights) != len(names):
            got = len(weights) if isinstance(weights, (list, tuple)) else type(weights).__name__
            raise InvalidArgumentError(
                f'Layer "{self.name}" expects {len(names)} weight array(s) '
                f"({', '.join(names) or 'none'}), received {got}. Pass a list such as "
                f"[{', '.join(names)}] in that order."
            )
        arrays = [np.asarray(w) for w in weights]
        for slot, arr in zip(names, arrays, strict=True):
            expected = self._weights[slot].shape
            if arr.shape != expected:
                raise InvalidArgumentError(
                    f'Layer "{self.name}" weight "{slot}" must have shape {expected}, received '
                    f"shape {arr.shape}.{self._layout_hint(slot, arr.shape)}"
                )
            if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
                raise InvalidArgumentError(
                    f'Layer "{self.name}" weight "{slot}": expected numbers, received dtype {arr.dtype}.'
                )
        for slot, arr in zip(names, arrays, strict=True):
            np.copyto(self._weights[slot], arr, casting="unsafe")

    def _layout_hint(self, slot: str, shape: tuple[int, ...]) -> str:
        return ""

    def store_grad(self, name: str, value: np.ndarray) -> None:
        """Keep ``value`` as the gradient of weight ``name``: copied into the model's flat gradient
        array when training has given this layer a view of it, kept as is otherwise."""
        if name in self.grads:
            np.copyto(self.grads[name], value)
        else:
            self.grads[name] = value

    def count_params(self) -> int:
        """Number of weight values (0 before build)."""
        return int(sum(w.size for w in self._weights.values()))

    def _leaves(self, trainable: bool = True) -> list[tuple[Layer, bool]]:
        """``[(self, effective trainability)]``; containers list their layers instead."""
        return [(self, trainable and self.trainable)]

    # ----------------------------------------------------------------- shapes
    def build(self, input_shape: Shape) -> None:
        self.build_input_shape = tuple(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return tuple(input_shape)

    def _incompatible(self, message: str, shape: tuple[int, ...], hint: str = "") -> ShapeError:
        # Keras's wording (input_spec.py); a ShapeError, so also a ValueError as in Keras
        return ShapeError(
            f'Input 0 of layer "{self.name}" is incompatible with the layer: {message} '
            f"Full shape received: {tuple(shape)}{hint}"
        )

    def check_input(self, x: Any) -> np.ndarray:
        """Convert ``x`` to an array of the compute dtype and check rank and dtype."""
        x = np.asarray(x)
        if self.min_ndim is not None and x.ndim < self.min_ndim:
            hint = ""
            if x.ndim == self.min_ndim - 1:
                hint = (
                    ". If this is a batch of single-channel images, add the channel axis: "
                    "x[..., None]; if it is a single image, add the batch axis: x[None]."
                )
            raise self._incompatible(f"expected min_ndim={self.min_ndim}, found ndim={x.ndim}.", x.shape, hint)
        if np.issubdtype(x.dtype, np.floating):
            return x.astype(config.floatx(), copy=False)
        if x.dtype == bool or np.issubdtype(x.dtype, np.integer):
            if self.accepts_integers:
                return x
            raise InvalidArgumentError(
                f'Layer "{self.name}" ({type(self).__name__}) needs floating-point input, received '
                f'dtype {x.dtype}. Convert it first: x.astype("float32").'
            )
        raise InvalidArgumentError(f'Layer "{self.name}" expects a numeric array, received dtype {x.dtype}.')

    def check_built_shape(self, x: np.ndarray) -> None:
        """Layers with weights check the axis their weights depend on (overridden)."""

    def check_prebuilt_shape(self, shape: Shape, where: str) -> None:
        """A layer already built (called on data before, or taken from another model) must fit the
        input ``shape`` it gets in a model (``where`` names the model): its weights were made for its
        first input, so a layer built for 1 channel is refused when it joins a 3-channel model, not
        at the first call."""
        if not self.built or len(shape) < 2 or any(d is None for d in shape[1:]):
            return  # variable sizes: checked on the data at call time
        probe = np.empty((0, *(int(d) for d in shape[1:])), dtype=np.float32)  # no data: 0 samples
        try:
            self.check_built_shape(probe)
        except ShapeError as exc:
            built = self.build_input_shape
            if not built or (len(built) == len(shape) and built[-1] == shape[-1]):
                raise  # not about what the layer was built for (e.g. a window larger than the input)
            raise ShapeError(
                f'{where}: layer "{self.name}" ({type(self).__name__}) was already built for inputs of shape '
                f"{format_shape(built)} ({built[-1]} on the last axis), but in this model it receives "
                f"{format_shape(shape)} ({shape[-1]} on the last axis). Its weights cannot change size: "
                f"use a new {type(self).__name__} (not yet called on data) instead."
            ) from exc

    # ----------------------------------------------------------------- calling
    def __call__(self, x: Any, training: bool = False) -> Any:
        """Apply the layer to ``x`` (inference unless ``training=True``); on symbolic tensors
        (``cl.Input(...)`` and what layers made of it) record the call for a functional model."""
        if symbolic.involves_symbolic(x):
            return symbolic.call_symbolic(self, x)
        x = self.check_input(x)
        if not self.built:
            self.build((None, *x.shape[1:]))
        self.check_built_shape(x)
        if training:
            return self.forward(x, training=True)
        per_sample = self.work_bytes_per_sample(x.shape)
        n = x.shape[0] if x.ndim else 0
        if per_sample * n <= CHUNK_BYTES or n <= 1:
            return self.call(x)
        step = max(1, CHUNK_BYTES // per_sample)
        first = self.call(x[:step])
        out = np.empty((n, *first.shape[1:]), dtype=first.dtype)
        out[:step] = first
        for start in range(step, n, step):
            out[start : start + step] = self.call(x[start : start + step])
        return out

    def call(self, x: np.ndarray) -> np.ndarray:
        """Inference on an already-checked array (no cache kept)."""
        out = self.forward(x, training=False)
        self._cache = None
        return out

    def work_bytes_per_sample(self, input_shape: tuple[int, ...]) -> int:
        """Temporary bytes one sample needs in :meth:`call` (0: never chunk)."""
        return 0

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        raise NotImplementedError

    def forward_for_gradients(self, x: np.ndarray) -> np.ndarray:
        """Inference arithmetic that keeps what :meth:`backward` needs, for gradients of a trained
        model's prediction (``cl.explain_prediction``): BatchNormalization uses its moving
        statistics and updates nothing, Dropout is the identity. Layers whose training forward
        differs from inference in more than the kept cache override this; for all others the
        training forward *is* the inference arithmetic plus the cache."""
        return self.forward(x, training=True)

    def release(self) -> None:
        """Drop what the last training forward kept (called after each step and when training ends)."""
        self._cache = None

    # ----------------------------------------------------------------- config
    def get_config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"name": self.name, "trainable": self.trainable}
        if self.input_shape_arg is not None:
            cfg["input_shape"] = list(self.input_shape_arg)
        return cfg

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> Layer:
        return cls(**cfg)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r} built={self.built}>"
