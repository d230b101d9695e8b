"""Small helpers with Keras's names: ``to_categorical`` and ``set_random_seed``."""

from __future__ import annotations

import numpy as np

from cnnlab.errors import InvalidArgumentError
from cnnlab.random import set_random_seed

__all__ = ["to_categorical", "set_random_seed"]


def to_categorical(y: object, num_classes: int | None = None) -> np.ndarray:
    """One-hot encode integer class labels, as ``keras.utils.to_categorical`` does.

    ``y: (...,)`` integers -> ``(..., num_classes)`` float32. ``num_classes``
    defaults to ``max(y) + 1``. A trailing axis of length 1 is dropped first,
    as Keras does, so ``(N, 1)`` labels give ``(N, num_classes)``.

    >>> to_categorical([0, 2, 1])
    array([[1., 0., 0.],
           [0., 0., 1.],
           [0., 1., 0.]], dtype=float32)
    """
    try:
        arr = np.asarray(y)
    except ValueError as exc:
        raise InvalidArgumentError(
            f"to_categorical: expected y to be an array of class labels, received a ragged {type(y).__name__} ({exc})."
        ) from exc
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if (
            not np.issubdtype(arr.dtype, np.floating)
            or not np.all(np.isfinite(arr))
            or not (np.all(arr == np.round(arr)))
        ):
            raise InvalidArgumentError(
                "to_categorical: expected integer class labels, received values of dtype "
                f"{arr.dtype} that are not whole numbers (e.g. {arr.flat[0]!r}). "
                "Pass labels such as y_train (0..9), not probabilities or one-hot rows."
            )
    arr = arr.astype(np.int64)
    if arr.ndim > 1 and arr.shape[-1] == 1:
        arr = arr.reshape(arr.shape[:-1])
    if arr.size and arr.min() < 0:
        raise InvalidArgumentError(
            f"to_categorical: expected labels >= 0, received {int(arr.min())}. "
            "Class labels must be 0, 1, ..., num_classes - 1."
        )
    if num_classes is None:
        num_classes = int(arr.max()) + 1 if arr.size else 0
    elif isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or (num_classes < 1):
        raise InvalidArgumentError(
            f"to_categorical: expected num_classes to be a positive integer, received {num_classes!r}."
        )
    if arr.size and arr.max() >= num_classes:
        raise InvalidArgumentError(
            f"to_categorical: label {int(arr.max())} is out of range for num_classes="
            f"{num_classes} (labels must be < num_classes). Pass num_classes="
            f"{int(arr.max()) + 1} or check the labels."
        )
    out = np.zeros(arr.shape + (int(num_classes),), dtype=np.float32)
    np.put_along_axis(out, arr[..., None], 1.0, axis=-1)
    return out
