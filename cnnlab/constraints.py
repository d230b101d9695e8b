"""Weight constraints, like ``keras.constraints``: applied to a weight after each optimizer update.

* ``MaxNorm(max_value=2, axis=0)``: ``w * clip(n, 0, max_value) / (1e-7 + n)`` with ``n`` the L2
  norm over ``axis`` (Keras rescales every column, so one below the limit is multiplied by
  ``n / (1e-7 + n)``, not left as is);
* ``NonNeg()``: ``w * (w >= 0)``.

>>> MaxNorm(1.0)(np.array([[3.0], [4.0]], "float32")).round(6)
array([[0.6],
       [0.8]], dtype=float32)
>>> NonNeg()(np.array([-1.0, 2.0], "float32"))
array([-0.,  2.], dtype=float32)
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Keras's ``backend.epsilon()``
EPSILON = 1e-7


class Constraint:
    """Base class: ``constraint(w)`` returns the constrained weight."""

    def __call__(self, w: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> Constraint:
        return cls(**cfg)


class MaxNorm(Constraint):
    """Rescale so the L2 norm over ``axis`` is at most ``max_value``; for a Dense kernel
    ``(in, units)`` the default ``axis=0`` limits each unit's incoming weights, for a Conv2D kernel
    ``(kh, kw, in, filters)`` use ``axis=[0, 1, 2]``."""

    def __init__(self, max_value: float = 2, axis: int | list[int] = 0) -> None:
        ok = isinstance(max_value, (int, float, np.integer, np.floating)) and not isinstance(max_value, bool)
        if not ok or not max_value >= 0:
            raise ValueError(f"MaxNorm: expected max_value to be a non-negative number, received {max_value!r}.")
        self.max_value, self.axis = max_value, axis

    def __call__(self, w: np.ndarray) -> np.ndarray:
        dt = w.dtype.type
        axis = tuple(self.axis) if isinstance(self.axis, (list, tuple)) else self.axis
        norms = np.sqrt(np.sum(w * w, axis=axis, keepdims=True, dtype=w.dtype))
        desired = np.clip(norms, dt(0), dt(self.max_value))
        return w * (desired / (dt(EPSILON) + norms))

    def get_config(self) -> dict[str, Any]:
        return {"max_value": self.max_value, "axis": self.axis}


class NonNeg(Constraint):
    """Set negative weights to zero."""

    def __call__(self, w: np.ndarray) -> np.ndarray:
        return w * (w >= 0).astype(w.dtype)


# Keras's lower-case aliases
max_norm, non_neg = MaxNorm, NonNeg

_BY_NAME: dict[str, type[Constraint]] = {"MaxNorm": MaxNorm, "NonNeg": NonNeg, "max_norm": MaxNorm, "non_neg": NonNeg}


def get(identifier: Any, argument: str = "constraint", owner: str = "Layer") -> Constraint | None:
    """A constraint from ``None``, a name ('max_norm', 'non_neg'), a config dict or an instance."""
    if identifier is None or isinstance(identifier, Constraint):
        return identifier
    if isinstance(identifier, str) and identifier in _BY_NAME:
        return _BY_NAME[identifier]()
    if isinstance(identifier, dict) and identifier.get("class_name") in _BY_NAME:
        return _BY_NAME[identifier["class_name"]].from_config(identifier.get("config", {}))
    raise ValueError(
        f"{owner}: expected {argument} to be None, 'max_norm', 'non_neg' or an instance such as "
        f"cl.constraints.MaxNorm(3), received {identifier!r}."
    )


def serialize(constraint: Constraint) -> dict[str, Any]:
    return {"class_name": type(constraint).__name__, "config": constraint.get_config()}
