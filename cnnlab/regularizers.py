"""Weight regularizers, like ``keras.regularizers``: a penalty added to the loss.

``penalty(w)`` is what Keras adds to the batch loss (and so to the logged loss);
``gradient(w)`` is its derivative, added to the weight's gradient:

* ``L1(l1=0.01)``: ``l1 * sum(|w|)``, gradient ``l1 * sign(w)``;
* ``L2(l2=0.01)``: ``l2 * sum(w^2)``, gradient ``2 * l2 * w``;
* ``L1L2(l1=0.0, l2=0.0)``: both.

>>> w = np.array([[1.0, -2.0]], "float32")
>>> float(L1(0.1)(w)), float(L2(0.1)(w)), float(L1L2(l1=0.1, l2=0.1)(w))
(0.30000001192092896, 0.5, 0.800000011920929)
>>> L2(0.1).gradient(w)
array([[ 0.2, -0.4]], dtype=float32)
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _check_factor(owner: str, name: str, value: Any) -> float:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not ok or not np.isfinite(value) or value < 0:
        raise ValueError(
            f"{owner}: expected {name} to be a finite non-negative number such as 0.01, received {value!r}."
        )
    return float(value)


class Regularizer:
    """Base class: ``regularizer(w)`` is the penalty, ``gradient(w)`` its derivative."""

    def __call__(self, w: np.ndarray) -> np.floating:
        raise NotImplementedError

    def gradient(self, w: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> Regularizer:
        return cls(**cfg)


class L1L2(Regularizer):
    """``l1 * sum(|w|) + l2 * sum(w^2)`` (float operations in ``w``'s dtype, as Keras)."""

    def __init__(self, l1: float = 0.0, l2: float = 0.0) -> None:
        self.l1 = _check_factor(type(self).__name__, "l1", l1)
        self.l2 = _check_factor(type(self).__name__, "l2", l2)

    def __call__(self, w: np.ndarray) -> np.floating:
        dt = w.dtype.type
        total = dt(0)
        if self.l1:
            total += dt(self.l1) * np.sum(np.abs(w), dtype=w.dtype)
        if self.l2:
            total += dt(self.l2) * np.sum(w * w, dtype=w.dtype)
        return dt(total)

    def gradient(self, w: np.ndarray) -> np.ndarray:
        dt = w.dtype.type
        grad = np.zeros_like(w)
        if self.l1:
            grad += dt(self.l1) * np.sign(w)
        if self.l2:
            grad += dt(2 * self.l2) * w
        return grad

    def get_config(self) -> dict[str, Any]:
        return {"l1": self.l1, "l2": self.l2}


class L1(L1L2):
    """``l1 * sum(|w|)``."""

    def __init__(self, l1: float = 0.01) -> None:
        super().__init__(l1=l1)

    def get_config(self) -> dict[str, Any]:
        return {"l1": self.l1}


class L2(L1L2):
    """``l2 * sum(w^2)``."""

    def __init__(self, l2: float = 0.01) -> None:
        super().__init__(l2=l2)

    def get_config(self) -> dict[str, Any]:
        return {"l2": self.l2}


# Keras's lower-case aliases are the classes themselves: ``l2(0.01)`` is ``L2(0.01)``
l1, l2, l1_l2 = L1, L2, L1L2

_BY_NAME: dict[str, type[Regularizer]] = {"L1": L1, "L2": L2, "L1L2": L1L2, "l1": L1, "l2": L2, "l1_l2": L1L2}


def get(identifier: Any, argument: str = "regularizer", owner: str = "Layer") -> Regularizer | None:
    """A regularizer from ``None``, a name ('l1', 'l2', 'l1_l2'), a config dict or an instance."""
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, str) and identifier in _BY_NAME:
        return _BY_NAME[identifier]()
    if isinstance(identifier, dict) and identifier.get("class_name") in _BY_NAME:
        return _BY_NAME[identifier["class_name"]].from_config(identifier.get("config", {}))
    raise ValueError(
        f"{owner}: expected {argument} to be None, 'l1', 'l2', 'l1_l2' or an instance such as "
        f"cl.regularizers.L2(0.01), received {identifier!r}."
    )


def serialize(regularizer: Regularizer) -> dict[str, Any]:
    return {"class_name": type(regularizer).__name__, "config": regularizer.get_config()}
