"""Metrics for ``compile(metrics=...)``: Keras's accuracy family.

``'accuracy'`` resolves, as in Keras, to the variant that fits the loss:
categorical (argmax of labels vs argmax of outputs), sparse (label vs argmax),
or binary (output > 0.5).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab.errors import InvalidArgumentError


def categorical_accuracy(y_true: Any, y_pred: Any) -> np.ndarray:
    """Example:

    >>> categorical_accuracy([[0, 1], [1, 0]], [[0.2, 0.8], [0.3, 0.7]])
    array([1., 0.])
    """
    return (np.argmax(y_true, axis=-1) == np.argmax(y_pred, axis=-1)).astype(np.float64)


def sparse_categorical_accuracy(y_true: Any, y_pred: Any) -> np.ndarray:
    """Example:

    >>> sparse_categorical_accuracy([1, 1], [[0.2, 0.8], [0.3, 0.7]])
    array([1., 1.])
    """
    y = np.asarray(y_true).reshape(np.shape(y_pred)[:-1])
    return (y == np.argmax(y_pred, axis=-1)).astype(np.float64)


def binary_accuracy(y_true: Any, y_pred: Any, threshold: float = 0.5) -> np.ndarray:
    """Example:

    >>> binary_accuracy([[1, 0]], [[0.7, 0.6]])
    array([0.5])
    """
    hit = np.asarray(y_true) == (np.asarray(y_pred) > threshold)
    return hit.mean(axis=-1)


_FUNCTIONS = {
    "categorical_accuracy": categorical_accuracy,
    "sparse_categorical_accuracy": sparse_categorical_accuracy,
    "binary_accuracy": binary_accuracy,
}


def resolve(metrics: Any, loss_name: str) -> list[tuple[str, Any]]:
    """``compile(metrics=...)`` -> list of (display name, per-sample function)."""
    if metrics is None:
        return []
    if not (isinstance(metrics, (str, list, tuple)) or callable(metrics)):
        raise InvalidArgumentError(
            f"compile: expected metrics to be a list of names such as ['accuracy'], received {metrics!r}."
        )
    items = [metrics] if isinstance(metrics, str) or callable(metrics) else list(metrics)
    out: list[tuple[str, Any]] = []
    for item in items:
        name = item if isinstance(item, str) else getattr(item, "__name__", None)
        if name in ("accuracy", "acc"):
            if loss_name == "sparse_categorical_crossentropy":
                fn = sparse_categorical_accuracy
            elif loss_name == "binary_crossentropy":
                fn = binary_accuracy
            else:
                fn = categorical_accuracy
            out.append(("accuracy", fn))
        elif name in _FUNCTIONS:
            out.append((name, _FUNCTIONS[name]))
        else:
            raise InvalidArgumentError(
                f"Unknown metric {item!r}. Expected 'accuracy' or one of {', '.join(repr(k) for k in _FUNCTIONS)}."
            )
    return out
