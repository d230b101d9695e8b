"""Input checks shared by ``fit``, ``evaluate``, ``predict`` and ``train_on_batch``."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab.errors import InvalidArgumentError


def as_array(x: Any, what: str) -> np.ndarray:
    """``np.asarray(x)``, refusing ``None``, ragged lists and objects with a message naming ``what``."""
    if x is None:
        raise InvalidArgumentError(f"{what}: expected an array, received None.")
    try:
        arr = np.asarray(x)
    except Exception as exc:  # noqa: BLE001 - NumPy raises ValueError/TypeError for ragged input
        raise InvalidArgumentError(f"{what}: expected an array, received {type(x).__name__} ({exc}).") from exc
    if arr.dtype == object:
        raise InvalidArgumentError(f"{what}: expected a numeric array, received objects of mixed shapes or types.")
    return arr


def check_batch_size(batch_size: Any) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise InvalidArgumentError(f"expected batch_size to be a positive integer, received {batch_size!r}.")


def verbosity(verbose: Any) -> int:
    if verbose == "auto":
        return 1
    if verbose in (0, 1, 2):
        return int(verbose)
    raise InvalidArgumentError(f"expected verbose to be 'auto', 0, 1 or 2, received {verbose!r}.")


def check_finite(x: np.ndarray, what: str) -> None:
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        bad = int(np.count_nonzero(~np.isfinite(x)))
        raise InvalidArgumentError(
            f"{what}: x contains {bad} NaN or infinite value(s). Clean or impute them first (e.g. np.nan_to_num(x))."
        )


def shape_hint(shape: tuple[int, ...], expected: tuple[int | None, ...]) -> str:
    if tuple(shape) == tuple(expected):
        return " It looks like a single sample: add the batch axis with x[None]."
    if expected and expected[-1] == 1 and tuple(shape[1:]) == tuple(expected[:-1]):
        return " The channel axis is missing: use x[..., None] (or x.reshape(-1, *shape))."
    return ""


class ArrayGroup:
    """The arrays of a model with several inputs (or outputs), indexed together by sample.

    ``group[idx]`` indexes every array's first axis, ``len(group)`` is the number of samples, so
    the engine's loops take batches of several inputs the way they take them of one array; the
    arrays themselves are ``group.parts`` (in the model's input or output order).

    >>> g = ArrayGroup([np.zeros((4, 2)), np.ones((4, 3))])
    >>> len(g), [p.shape for p in g[1:3].parts]
    (4, [(2, 2), (2, 3)])
    """

    def __init__(self, parts: list[np.ndarray]) -> None:
        self.parts = list(parts)

    def __len__(self) -> int:
        return len(self.parts[0])

    def __getitem__(self, index: Any) -> ArrayGroup:
        return ArrayGroup([p[index] for p in self.parts])

    def astype(self, dtype: Any, copy: bool = True) -> ArrayGroup:
        return ArrayGroup([p.astype(dtype, copy=copy) for p in self.parts])

    @property
    def dtype(self) -> np.dtype:
        return self.parts[0].dtype

    @property
    def shape(self) -> tuple[int, ...]:
        return self.parts[0].shape

    @property
    def ndim(self) -> int:
        return self.parts[0].ndim
