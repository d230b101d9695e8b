"""Learning-rate schedules, like ``keras.optimizers.schedules`` (also reachable as
``cl.optimizers.schedules``).

A schedule is passed as an optimizer's ``learning_rate``; the optimizer evaluates it at its step
counter ``iterations`` (0 for the first update), as Keras does. Values are computed in float32,
as Keras computes them from a Python float.

>>> round(ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)(20), 6)  # float32 values
0.025
>>> PiecewiseConstantDecay([2, 4], [1.0, 0.5, 0.1])(3)
0.5
>>> round(CosineDecay(1.0, decay_steps=4)(2), 6)
0.5
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

_F32 = np.float32


class LearningRateSchedule:
    """Base class: ``schedule(step) -> learning rate``; ``get_config``/``from_config`` round trip."""

    def __call__(self, step: int) -> float:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> LearningRateSchedule:
        return cls(**cfg)


def _check_steps(owner: str, decay_steps: Any) -> None:
    if isinstance(decay_steps, bool) or not isinstance(decay_steps, (int, float, np.integer, np.floating)):
        raise ValueError(f"{owner}: expected decay_steps to be a number > 0, received {decay_steps!r}.")
    if not decay_steps > 0:
        raise ValueError(f"{owner}: argument `decay_steps` must be > 0. Received: decay_steps={decay_steps}.")


class ExponentialDecay(LearningRateSchedule):
    """``lr(step) = initial_learning_rate * decay_rate ** (step / decay_steps)``; with
    ``staircase=True`` the exponent is ``floor(step / decay_steps)``.

    >>> ExponentialDecay(1.0, 2, 0.5, staircase=True)(3)
    0.5
    """

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: int,
        decay_rate: float,
        staircase: bool = False,
        name: str = "ExponentialDecay",
    ) -> None:
        _check_steps("ExponentialDecay", decay_steps)
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps, self.decay_rate, self.staircase, self.name = decay_steps, decay_rate, staircase, name

    def __call__(self, step: int) -> float:
        p = _F32(step) / _F32(self.decay_steps)
        if self.staircase:
            p = np.floor(p)
        return float(_F32(self.initial_learning_rate) * np.power(_F32(self.decay_rate), p))

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate,
            "staircase": self.staircase,
            "name": self.name,
        }


class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[0]`` while ``step <= boundaries[0]``, ``values[i]`` while
    ``boundaries[i-1] < step <= boundaries[i]``, ``values[-1]`` after the last boundary.

    >>> [round(PiecewiseConstantDecay([1], [0.1, 0.01])(s), 6) for s in (0, 1, 2)]
    [0.1, 0.1, 0.01]
    """

    def __init__(self, boundaries: list[int], values: list[float], name: str = "PiecewiseConstant") -> None:
        if len(boundaries) != len(values) - 1:
            raise ValueError(
                "PiecewiseConstantDecay: the length of boundaries should be 1 less than the length of values. "
                f"Received: boundaries={list(boundaries)} of length {len(boundaries)}, and values={list(values)} "
                f"of length {len(values)}."
            )
        self.boundaries, self.values, self.name = list(boundaries), list(values), name

    def __call__(self, step: int) -> float:
        for boundary, value in zip(self.boundaries, self.values, strict=False):
            if step <= boundary:
                return float(_F32(value))
        return float(_F32(self.values[-1]))

    def get_config(self) -> dict[str, Any]:
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


class CosineDecay(LearningRateSchedule):
    """Cosine decay with optional linear warm-up (SGDR without restarts), float32 as in Keras:

    * warm-up (``warmup_target`` set and ``step < warmup_steps``):
      ``lr = (warmup_target - initial) * step / warmup_steps + initial``;
    * decay: ``s = min(step - warmup_steps, decay_steps)``,
      ``lr = start * ((1 - alpha) * 0.5 * (1 + cos(pi * s / decay_steps)) + alpha)`` with
      ``start = warmup_target`` if given, else ``initial_learning_rate``.

    >>> round(CosineDecay(1.0, 10, alpha=0.1)(10), 6)
    0.1
    """

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: int,
        alpha: float = 0.0,
        name: str = "CosineDecay",
        warmup_target: float | None = None,
        warmup_steps: int = 0,
    ) -> None:
        _check_steps("CosineDecay", decay_steps)
        self.initial_learning_rate, self.decay_steps, self.alpha, self.name = (
            initial_learning_rate,
            decay_steps,
            alpha,
            name,
        )
        self.warmup_target, self.warmup_steps = warmup_target, warmup_steps

    def _decay(self, step: np.float32, decay_steps: np.float32, start: np.float32) -> float:
        fraction = step / decay_steps
        cosine = _F32(0.5) * (_F32(1.0) + np.cos(_F32(math.pi) * fraction))
        decayed = _F32(1 - self.alpha) * cosine + _F32(self.alpha)
        return float(start * decayed)

    def __call__(self, step: int) -> float:
        initial, decay_steps, s = _F32(self.initial_learning_rate), _F32(self.decay_steps), _F32(step)
        if self.warmup_target is None:
            return self._decay(min(s, decay_steps), decay_steps, initial)
        target, warmup = _F32(self.warmup_target), _F32(self.warmup_steps)
        s = min(s, decay_steps + warmup)
        if s < warmup:
            return float((target - initial) * (s / warmup) + initial)
        return self._decay(s - warmup, decay_steps, target)

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "alpha": self.alpha,
            "name": self.name,
            "warmup_target": self.warmup_target,
            "warmup_steps": self.warmup_steps,
        }


_BY_NAME: dict[str, type[LearningRateSchedule]] = {
    "ExponentialDecay": ExponentialDecay,
    "PiecewiseConstantDecay": PiecewiseConstantDecay,
    "CosineDecay": CosineDecay,
}


def serialize(schedule: LearningRateSchedule) -> dict[str, Any]:
    """``{"class_name": ..., "config": ...}``, as ``keras.optimizers.schedules.serialize``."""
    return {"class_name": type(schedule).__name__, "config": schedule.get_config()}


def deserialize(cfg: dict[str, Any]) -> LearningRateSchedule:
    name = cfg.get("class_name")
    if name not in _BY_NAME:
        raise ValueError(
            f"Unknown learning-rate schedule {name!r}. Expected one of {', '.join(repr(k) for k in _BY_NAME)}."
        )
    return _BY_NAME[name].from_config(cfg["config"])
