"""Losses as Keras's TensorFlow backend computes them.

Public functions (``categorical_crossentropy(y_true, y_pred)`` etc.) return one
value per sample, like ``keras.losses.*``. The training loop uses :class:`Loss`
objects, which also give the gradient of the batch mean:

* on probabilities, predictions are clipped to ``[1e-7, 1 - 1e-7]`` (Keras's
  ``epsilon``) before the log;
* when the model's last activation is softmax (sigmoid for binary cross-entropy),
  loss and gradient come from the *logits*, as the TensorFlow backend does. The
  gradient of the mean is then simply ``(p - y) / N``; from clipped probabilities
  it would vanish for saturated samples and a network on raw 0..255 pixels would
  stop learning;
* with ``from_logits=True`` (a last layer without softmax/sigmoid, as in Keras's
  tutorials) the model's output *is* the logits: log-softmax (or the stable
  ``max(z, 0) - z t + log(1 + exp(-|z|))``) is applied to it, with no clipping.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from cnnlab import config
from cnnlab.errors import InvalidArgumentError
from cnnlab.ops.activations import from_known_library

EPSILON = 1e-7


def _log_softmax(z: np.ndarray) -> np.ndarray:
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def categorical_crossentropy(
    y_true: Any, y_pred: Any, from_logits: bool = False, label_smoothing: float = 0.0
) -> np.ndarray:
    """Per-sample ``-sum(y_true * log(p))`` over the last axis; ``from_logits``: ``log(p)`` is
    ``log_softmax(y_pred)``; ``label_smoothing``: ``y_true * (1 - ls) + ls / num_classes`` first.

    >>> categorical_crossentropy([[1.0, 0.0, 0.0]], [[0.9, 0.05, 0.05]]).round(5)
    array([0.10536])
    >>> categorical_crossentropy([[1.0, 0.0]], [[0.0, 0.0]], from_logits=True).round(5)  # log 2
    array([0.69315])
    """
    t, p = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    ls = _check_smoothing("categorical_crossentropy", label_smoothing)
    t = t * (1.0 - ls) + ls / t.shape[-1] if ls else t
    if from_logits:
        return -(t * _log_softmax(p)).sum(axis=-1)
    q = np.clip(p / p.sum(axis=-1, keepdims=True), EPSILON, 1 - EPSILON)
    return -(t * np.log(q)).sum(axis=-1)


def sparse_categorical_crossentropy(y_true: Any, y_pred: Any, from_logits: bool = False) -> np.ndarray:
    """Like :func:`categorical_crossentropy` with integer labels ``(N,)``.

    >>> sparse_categorical_crossentropy([0], [[0.9, 0.05, 0.05]]).round(5)
    array([0.10536])
    """
    p = np.asarray(y_pred, dtype=float)
    labels = np.asarray(y_true).astype(np.int64).reshape(p.shape[:-1])
    onehot = np.zeros_like(p)
    np.put_along_axis(onehot, labels[..., None], 1.0, axis=-1)
    return categorical_crossentropy(onehot, p, from_logits)


def binary_crossentropy(
    y_true: Any, y_pred: Any, from_logits: bool = False, label_smoothing: float = 0.0
) -> np.ndarray:
    """Per-sample mean over the last axis of ``-(t log p + (1-t) log(1-p))``; ``from_logits``:
    ``p = sigmoid(y_pred)``; ``label_smoothing``: ``t * (1 - ls) + ls / 2`` first.

    >>> binary_crossentropy([[1.0, 0.0]], [[0.9, 0.2]]).round(5)
    array([0.16425])
    >>> binary_crossentropy([[1.0]], [[0.0]], from_logits=True).round(5)  # -log(sigmoid(0)) = log 2
    array([0.69315])
    """
    t, p = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    ls = _check_smoothing("binary_crossentropy", label_smoothing)
    t = t * (1.0 - ls) + 0.5 * ls if ls else t
    if from_logits:
        # log(1 + exp(-|z|)) form: stable for large |z| (tf.nn.sigmoid_cross_entropy_with_logits)
        values = np.maximum(p, 0) - p * t + np.log1p(np.exp(-np.abs(p)))
    else:
        q = np.clip(p, EPSILON, 1 - EPSILON)
        values = -(t * np.log(q) + (1 - t) * np.log(1 - q))
    return values.mean(axis=-1)


def mean_squared_error(y_true: Any, y_pred: Any) -> np.ndarray:
    """Per-sample mean over the last axis of ``(y_true - y_pred)**2``.

    >>> mean_squared_error([[1.0, 2.0]], [[1.0, 4.0]])
    array([2.])
    """
    t, p = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    return ((t - p) ** 2).mean(axis=-1)


mse = MSE = mean_squared_error


def huber(y_true: Any, y_pred: Any, delta: float = 1.0) -> np.ndarray:
    """Per-sample mean over the last axis of ``0.5*e^2`` where ``|e| <= delta``, else
    ``delta*|e| - 0.5*delta^2`` (``e = y_pred - y_true``).

    >>> huber([[0.0, 0.0]], [[0.5, 3.0]])
    array([1.3125])
    """
    e = np.asarray(y_pred, dtype=float) - np.asarray(y_true, dtype=float)
    a = np.abs(e)
    return np.where(a <= delta, 0.5 * e * e, delta * a - 0.5 * delta * delta).mean(axis=-1)


def kl_divergence(y_true: Any, y_pred: Any) -> np.ndarray:
    """Per-sample ``sum(t * log(t / p))`` over the last axis, both clipped to ``[1e-7, 1]``.

    >>> kl_divergence([[0.5, 0.5]], [[0.25, 0.75]]).round(5)
    array([0.14384])
    """
    t = np.clip(np.asarray(y_true, dtype=float), EPSILON, 1)
    p = np.clip(np.asarray(y_pred, dtype=float), EPSILON, 1)
    return (t * np.log(t / p)).sum(axis=-1)


kld = KLD = kl_divergence


def categorical_hinge(y_true: Any, y_pred: Any) -> np.ndarray:
    """Per-sample ``max(neg - pos + 1, 0)`` with ``pos = sum(t*p)``, ``neg = max((1 - t)*p)``.

    >>> categorical_hinge([[0.0, 1.0, 0.0]], [[0.3, 0.5, 0.2]])
    array([0.8])
    """
    t, p = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    pos = (t * p).sum(axis=-1)
    neg = ((1.0 - t) * p).max(axis=-1)
    return np.maximum(neg - pos + 1.0, 0.0)


class Loss:
    """A loss for the training loop: value of the batch mean and its gradient."""

    name = "loss"
    #: final activation whose logits this loss prefers (``None``: use probabilities)
    logits_activation: str | None = None
    sparse_labels = False

    #: the range every label must lie in (None: any finite number)
    label_range: tuple[float, float] | None = None

    def check_labels(self, y: np.ndarray, output_shape: tuple[int | None, ...]) -> np.ndarray:
        """Convert and check ``y`` against the model's output shape ``(None, ..., units)``."""
        y = _numeric_labels(y, self.name)
        expected = (len(y), *output_shape[1:])
        if y.shape != expected:
            raise InvalidArgumentError(
                f"{self.name}: labels of shape {y.shape} do not match the model's output "
                f"{expected}.{self._shape_hint(y, output_shape)}"
            )
        if y.size and not np.isfinite(y).all():
            raise InvalidArgumentError(
                f"{self.name}: y contains {np.count_nonzero(~np.isfinite(y))} NaN or infinite label value(s); "
                "every label must be a finite number. Fix or drop those samples."
            )
        if self.label_range is not None and y.size and (y.min() < self.label_range[0] or y.max() > self.label_range[1]):
            low, high = self.label_range
            raise InvalidArgumentError(
                f"{self.name}: expected labels in [{low:g}, {high:g}] (probabilities), received values from "
                f"{y.min():g} to {y.max():g}.{self._range_hint(y)}"
            )
        return y.astype(config.floatx(), copy=False)

    def _range_hint(self, y: np.ndarray) -> str:
        return ""

    def _shape_hint(self, y: np.ndarray, output_shape: tuple[int | None, ...]) -> str:
        if len(output_shape) > 2 and y.ndim == 2:
            return " The model's output has more than 2 axes: did you forget a Flatten() before the last Dense?"
        return ""

    def value_and_grad(
        self, y: np.ndarray, out: np.ndarray, logits: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per-sample losses and the gradient of their mean (w.r.t. ``logits`` if given,
        else w.r.t. ``out``)."""
        raise NotImplementedError

    def __call__(self, y_true: Any, y_pred: Any) -> float:
        return float(np.mean(self.per_sample(np.asarray(y_true), np.asarray(y_pred))))

    def get_config(self) -> dict[str, Any]:
        """The loss's options (empty when it has none)."""
        return {}

    def serialize(self) -> Any:
        """The name, or ``{"class_name": ..., "config": ...}`` when options are set (for saving)."""
        cfg = self.get_config()
        return {"class_name": type(self).__name__, "config": cfg} if cfg else self.name

    def per_sample(self, y: np.ndarray, out: np.ndarray) -> np.ndarray:
        return self.value_and_grad(y, out, None)[0]


def _check_from_logits(owner: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise InvalidArgumentError(
            f"{owner}: expected from_logits to be True or False, received {value!r}. "
            "True when the model's last layer has no softmax/sigmoid (its outputs are logits)."
        )
    return bool(value)


def _check_smoothing(owner: str, value: Any) -> float:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not ok or not 0 <= value <= 1:
        raise ValueError(f"{owner}: expected label_smoothing in [0, 1] (e.g. 0.1), received {value!r}.")
    return float(value)


def _numeric_labels(y: Any, loss: str) -> np.ndarray:
    """``y`` as a numeric array, or an error naming ``y`` (strings, objects, ragged lists)."""
    try:
        array = np.asarray(y)
    except ValueError as exc:
        raise InvalidArgumentError(
            f"{loss}: y: expected an array of labels, received {type(y).__name__} ({exc})."
        ) from exc
    if array.dtype.kind not in "biuf":
        raise InvalidArgumentError(
            f"{loss}: y: expected numeric labels, received dtype {array.dtype} (e.g. {array.ravel()[:1].tolist()}). "
            "Map class names to numbers first, e.g. np.unique(y, return_inverse=True)[1]."
        )
    return array


class CategoricalCrossentropy(Loss):
    """``-sum(t * log(p))`` per sample; with ``label_smoothing`` the one-hot labels become
    ``t*(1 - ls) + ls/num_classes`` first, as Keras does.

    ``from_logits=True``: the model's outputs ``z`` are logits and ``log(p) = log_softmax(z)``
    (``z - max z - log sum exp(z - max z)``: no overflow, no clipping), as Keras computes it; the
    gradient of the batch mean is ``(softmax(z) * sum(t) - t) / N``. A last layer with a softmax
    then gets a second one, as in Keras (``from_logits`` says what the outputs are).
    """

    name = "categorical_crossentropy"
    logits_activation = "softmax"
    label_range = (0.0, 1.0)

    def _range_hint(self, y: np.ndarray) -> str:
        return " One-hot encode class numbers with cl.utils.to_categorical(y)."

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0) -> None:
        self.from_logits = _check_from_logits(type(self).__name__, from_logits)
        self.label_smoothing = _check_smoothing(type(self).__name__, label_smoothing)
        if self.from_logits:  # the outputs are the logits: nothing to fuse with a last softmax
            self.logits_activation = None

    def get_config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"from_logits": True} if self.from_logits else {}
        return {**cfg, "label_smoothing": self.label_smoothing} if self.label_smoothing else cfg

    def smooth(self, y: np.ndarray) -> np.ndarray:
        if not self.label_smoothing:
            return y
        ls = self.label_smoothing
        return y * (1.0 - ls) + ls / y.shape[-1]

    def _shape_hint(self, y: np.ndarray, output_shape: tuple[int | None, ...]) -> str:
        if y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1):
            return (
                " The labels look like class numbers: one-hot encode them with "
                "cl.utils.to_categorical(y), or use loss='sparse_categorical_crossentropy'."
            )
        return super()._shape_hint(y, output_shape)

    def value_and_grad(self, y, out, logits):
        n = y.shape[0]
        y = self.smooth(y)
        if self.from_logits:
            logits = out
        if logits is not None:
            logp = _log_softmax(logits)
            values = -(y * logp).sum(axis=-1)
            # d/dz of -sum_j t_j log_softmax(z)_j = softmax(z) * sum_j t_j - t (sum t = 1 for one-hot)
            grad = np.exp(logp)
            grad *= y.sum(axis=-1, keepdims=True)
            grad -= y
            grad /= n
            return values, grad.astype(logits.dtype, copy=False)
        total = out.sum(axis=-1, keepdims=True)
        q = out / total
        clipped = (q < EPSILON) | (q > 1 - EPSILON)
        qc = np.clip(q, EPSILON, 1 - EPSILON)
        values = -(y * np.log(qc)).sum(axis=-1)
        g = np.where(clipped, 0.0, -y / qc)
        grad = (g - (g * q).sum(axis=-1, keepdims=True)) / total / n
        return values, grad.astype(out.dtype, copy=False)


class SparseCategoricalCrossentropy(CategoricalCrossentropy):
    name = "sparse_categorical_crossentropy"
    sparse_labels = True

    def __init__(self, from_logits: bool = False) -> None:  # Keras's sparse cross-entropy has no label_smoothing
        super().__init__(from_logits=from_logits)

    def check_labels(self, y: np.ndarray, output_shape: tuple[int | None, ...]) -> np.ndarray:
        y = _numeric_labels(y, self.name)
        if y.ndim == len(output_shape) and y.shape[-1] == output_shape[-1] and y.shape[-1] > 1:
            raise InvalidArgumentError(
                f"{self.name}: expected integer class labels of shape ({len(y)},), received "
                f"one-hot-like labels of shape {y.shape}. Use loss='categorical_crossentropy' "
                "for one-hot labels, or pass y.argmax(-1)."
            )
        if y.ndim == len(output_shape) and y.shape[-1] == 1:
            y = y.reshape(y.shape[:-1])
        if y.shape != (len(y), *output_shape[1:-1]):
            raise InvalidArgumentError(
                f"{self.name}: labels of shape {y.shape} do not match the model's output "
                f"{(len(y), *output_shape[1:])}; expected one class number per sample."
            )
        if not np.issubdtype(y.dtype, np.integer):
            if not np.all(np.isfinite(y)) or not np.all(np.equal(np.mod(y, 1), 0)):
                raise InvalidArgumentError(
                    f"{self.name}: expected whole-number class labels, received {y.dtype} values."
                )
        y = y.astype(np.int64)
        units = output_shape[-1]
        if y.size and (y.min() < 0 or y.max() >= units):
            raise InvalidArgumentError(
                f"{self.name}: labels must be in 0..{units - 1} for a last layer with {units} "
                f"units; received labels from {y.min()} to {y.max()}."
            )
        return y

    def value_and_grad(self, y, out, logits):
        ref = logits if logits is not None else out
        onehot = np.zeros(ref.shape, dtype=ref.dtype)
        np.put_along_axis(onehot, y[..., None], 1.0, axis=-1)
        return super().value_and_grad(onehot, out, logits)


class BinaryCrossentropy(Loss):
    """``-mean(t log p + (1-t) log(1-p))`` per sample; with ``label_smoothing`` the labels become
    ``t*(1 - ls) + 0.5*ls`` first, as Keras does.

    ``from_logits=True``: the outputs ``z`` are logits, ``p = sigmoid(z)``, computed as
    ``max(z, 0) - z t + log(1 + exp(-|z|))`` (exact for any ``z``, as TensorFlow's
    ``sigmoid_cross_entropy_with_logits`` and PyTorch's ``binary_cross_entropy_with_logits``);
    gradient ``(sigmoid(z) - t) / (N * K)``.
    """

    name = "binary_crossentropy"
    logits_activation = "sigmoid"
    label_range = (0.0, 1.0)

    def _range_hint(self, y: np.ndarray) -> str:
        return (
            " binary_crossentropy takes 0/1 labels; for class numbers 0..K-1 use a Dense(K, activation='softmax') "
            "with loss='sparse_categorical_crossentropy'."
        )

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0) -> None:
        self.from_logits = _check_from_logits(type(self).__name__, from_logits)
        self.label_smoothing = _check_smoothing(type(self).__name__, label_smoothing)
        if self.from_logits:
            self.logits_activation = None

    def get_config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"from_logits": True} if self.from_logits else {}
        return {**cfg, "label_smoothing": self.label_smoothing} if self.label_smoothing else cfg

    def value_and_grad(self, y, out, logits):
        if self.label_smoothing:
            y = y * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
        scale = 1.0 / (y.shape[0] * y.shape[-1])
        if self.from_logits:
            logits = out
        if logits is not None:
            values = (np.maximum(logits, 0) - logits * y + np.log1p(np.exp(-np.abs(logits)))).mean(-1)
            grad = (_sigmoid(logits) - y) * scale
            return values, grad.astype(logits.dtype, copy=False)
        q = np.clip(out, EPSILON, 1 - EPSILON)
        values = -(y * np.log(q) + (1 - y) * np.log(1 - q)).mean(-1)
        inside = (out > EPSILON) & (out < 1 - EPSILON)
        grad = np.where(inside, (q - y) / (q * (1 - q)), 0.0) * scale
        return values, grad.astype(out.dtype, copy=False)


class MeanSquaredError(Loss):
    name = "mean_squared_error"

    def value_and_grad(self, y, out, logits):
        diff = out - y
        values = (diff * diff).mean(axis=-1)
        grad = diff * (2.0 / diff.size)
        return values, grad.astype(out.dtype, copy=False)


class Huber(Loss):
    """``huber(y, p, delta)`` per sample (mean over the last axis); gradient ``e`` where
    ``|e| <= delta``, else ``delta*sign(e)``, divided by the number of values."""

    name = "huber"

    def __init__(self, delta: float = 1.0) -> None:
        ok = isinstance(delta, (int, float, np.integer, np.floating)) and not isinstance(delta, bool)
        if not ok or not delta > 0:
            raise ValueError(f"Huber: expected delta to be a positive number such as 1.0, received {delta!r}.")
        self.delta = float(delta)

    def get_config(self) -> dict[str, Any]:
        return {"delta": self.delta} if self.delta != 1.0 else {}

    def value_and_grad(self, y, out, logits):
        e = out - y
        a = np.abs(e)
        inside = a <= self.delta
        values = np.where(inside, 0.5 * e * e, self.delta * a - 0.5 * self.delta**2).mean(axis=-1)
        grad = np.where(inside, e, self.delta * np.sign(e)) / e.size
        return values, grad.astype(out.dtype, copy=False)


class KLDivergence(Loss):
    """``sum(t * log(t / p))`` per sample, ``t`` and ``p`` clipped to ``[1e-7, 1]``; gradient
    ``-t / p`` where ``p`` is inside the clip range, divided by the batch size."""

    name = "kl_divergence"

    def value_and_grad(self, y, out, logits):
        t = np.clip(y, EPSILON, 1)
        p = np.clip(out, EPSILON, 1)
        values = (t * np.log(t / p)).sum(axis=-1)
        inside = (out >= EPSILON) & (out <= 1)
        grad = np.where(inside, -t / p, 0.0) / y.shape[0]
        return values, grad.astype(out.dtype, copy=False)


class CategoricalHinge(Loss):
    """``max(neg - pos + 1, 0)`` per sample (``pos = sum(t*p)``, ``neg = max((1-t)*p)``); where
    positive, the gradient is ``-t`` plus ``(1 - t)`` at the arg-max of ``(1-t)*p``, over the batch size."""

    name = "categorical_hinge"

    def value_and_grad(self, y, out, logits):
        pos = (y * out).sum(axis=-1)
        other = (1.0 - y) * out
        j = other.argmax(axis=-1)
        neg = np.take_along_axis(other, j[..., None], axis=-1)[..., 0]
        values = np.maximum(neg - pos + 1.0, 0.0)
        grad = -y.astype(np.float64)
        np.put_along_axis(
            grad,
            j[..., None],
            np.take_along_axis(grad, j[..., None], -1) + 1.0 - np.take_along_axis(y, j[..., None], -1),
            axis=-1,
        )
        grad *= (values > 0)[..., None] / y.shape[0]
        return values, grad.astype(out.dtype, copy=False)


_BY_NAME: dict[str, type[Loss]] = {
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
    "mean_squared_error": MeanSquaredError,
    "mse": MeanSquaredError,
    "huber": Huber,
    "kl_divergence": KLDivergence,
    "kld": KLDivergence,
    "categorical_hinge": CategoricalHinge,
}
_FUNCTIONS: dict[Callable[..., Any], type[Loss]] = {
    categorical_crossentropy: CategoricalCrossentropy,
    sparse_categorical_crossentropy: SparseCategoricalCrossentropy,
    binary_crossentropy: BinaryCrossentropy,
    mean_squared_error: MeanSquaredError,
    huber: Huber,
    kl_divergence: KLDivergence,
    categorical_hinge: CategoricalHinge,
}
_CLASSES: dict[str, type[Loss]] = {
    cls.__name__: cls
    for cls in (
        CategoricalCrossentropy,
        SparseCategoricalCrossentropy,
        BinaryCrossentropy,
        MeanSquaredError,
        Huber,
        KLDivergence,
        CategoricalHinge,
    )
}


def get(identifier: Any) -> Loss:
    """A :class:`Loss` from a name, one of this module's functions, a Loss class or instance.

    Functions from other libraries with a known name (e.g. ``tf.losses.categorical_crossentropy``)
    are accepted by name, as the lecture passes TensorFlow's function.
    """
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, dict) and identifier.get("class_name") in _CLASSES:
        return _CLASSES[identifier["class_name"]](**identifier.get("config", {}))
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if callable(identifier) and identifier in _FUNCTIONS:
        return _FUNCTIONS[identifier]()
    name = identifier if isinstance(identifier, str) else getattr(identifier, "__name__", None)
    if not isinstance(identifier, str) and isinstance(name, str) and name.lower() in _BY_NAME:
        if not from_known_library(identifier):
            raise InvalidArgumentError(
                f"loss={identifier!r} is your own function named like the built-in {name!r}; cnnlab computes "
                f"losses and their gradients itself and cannot run other functions. Pass loss={name!r} if the "
                "built-in is what you mean, or rename your function."
            )
    if isinstance(name, str) and name.lower() in _BY_NAME:
        return _BY_NAME[name.lower()]()
    raise InvalidArgumentError(
        f"Unknown loss {identifier!r}. Expected one of "
        f"{', '.join(repr(k) for k in _BY_NAME)} or a function from cnnlab.losses."
    )
