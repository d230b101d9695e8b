"""Optimizers with Keras 3's defaults and update formulas.

They work on one flat array holding every trainable weight of a model (the
layers' weights are views into it) and one flat gradient array of the same
layout, so an update is a few whole-array operations, not one per weight.
Updates are elementwise, so this gives the same numbers as Keras's per-variable
loop. The formulas, for gradient ``g`` at step ``t = iterations + 1``:

* SGD: ``m = momentum*m - lr*g``; ``w += m`` (nesterov: ``w += momentum*m - lr*g``);
  without momentum ``w -= lr*g``.
* Adam: ``alpha = lr*sqrt(1 - b2^t)/(1 - b1^t)``; ``m += (g - m)*(1 - b1)``;
  ``v += (g^2 - v)*(1 - b2)``; ``w -= m*alpha / (sqrt(v) + eps)``.
* RMSprop: ``v = rho*v + (1 - rho)*g^2``; ``inc = lr*g / sqrt(v + eps)``;
  with momentum ``mom = momentum*mom + inc; w -= mom``, else ``w -= inc``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from cnnlab.errors import InvalidArgumentError

#: steps between two flushes of subnormal optimizer state (see ``Optimizer._flush_subnormals``)
FLUSH_EVERY = 64


class Optimizer:
    """Base class: ``apply(params, grads)`` updates ``params`` in place."""

    name = "optimizer"

    def __init__(self, learning_rate: float = 0.001) -> None:
        _check_positive("learning_rate", learning_rate, type(self).__name__)
        self.learning_rate = float(learning_rate)
        self.iterations = 0
        self._slots: dict[str, np.ndarray] = {}

    def _slot(self, key: str, like: np.ndarray) -> np.ndarray:
        slot = self._slots.get(key)
        if slot is None or slot.shape != like.shape or slot.dtype != like.dtype:
            slot = self._slots[key] = np.zeros_like(like)
        return slot

    def apply(self, params: np.ndarray, grads: np.ndarray) -> None:
        self._update(params, grads)
        self.end_step()

    def end_step(self, flush: Callable[[np.ndarray, Any], None] | None = None) -> None:
        """Count the step (also called by accelerated code that applies the update itself);
        ``flush(slot, tiny)``, if given, replaces the NumPy pass that zeroes subnormal state."""
        self.iterations += 1
        if self.iterations % FLUSH_EVERY == 0:
            self._flush_subnormals(flush)

    def _flush_subnormals(self, flush: Callable[[np.ndarray, Any], None] | None = None) -> None:
        """Set subnormal slot values to zero.

        Moments of units that get no gradient (dead ReLUs, common on raw 0..255 pixels)
        decay geometrically and reach the subnormal range after ~800 Adam steps; arithmetic
        on subnormals is ~100x slower on x86, which made a net1 epoch 2.4x slower by its end.
        TensorFlow's CPU kernels flush subnormals to zero after every operation; doing it
        every ``FLUSH_EVERY`` steps changes values by less than 1e-37 and costs ~0.005 ms/step.
        """
        for slot in self._slots.values():
            if slot.dtype.kind != "f":
                continue
            tiny = np.finfo(slot.dtype).tiny
            if flush is not None and slot.ndim == 1 and slot.flags.c_contiguous:
                flush(slot, slot.dtype.type(tiny))
            else:
                np.copyto(slot, 0, where=np.abs(slot) < tiny)

    def _update(self, params: np.ndarray, grads: np.ndarray) -> None:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "learning_rate": self.learning_rate}

    def get_state(self) -> dict[str, np.ndarray]:
        """Slot arrays and the step counter (for saving and resuming)."""
        return {"iterations": np.array(self.iterations), **{k: v.copy() for k, v in self._slots.items()}}

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        self.iterations = int(state["iterations"])
        self._slots = {k: np.array(v) for k, v in state.items() if k != "iterations"}


def _check_positive(name: str, value: Any, owner: str, allow_zero: bool = False) -> None:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise InvalidArgumentError(
            f"{owner}: expected {name} to be a finite {'non-negative' if allow_zero else 'positive'} number, "
            f"received {value!r}."
        )


class SGD(Optimizer):
    name = "sgd"

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0, nesterov: bool = False) -> None:
        super().__init__(learning_rate)
        _check_positive("momentum", momentum, "SGD", allow_zero=True)
        if momentum > 1:
            raise InvalidArgumentError(f"SGD: expected momentum in [0, 1], received {momentum!r}.")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    def _update(self, params, grads):
        dt = params.dtype.type
        lr_g = grads * dt(self.learning_rate)
        if self.momentum == 0:
            params -= lr_g
            return
        m = self._slot("momentum", params)
        m *= dt(self.momentum)
        m -= lr_g
        if self.nesterov:
            params += m * dt(self.momentum) - lr_g
        else:
            params += m

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    name = "adam"

    def __init__(
        self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7
    ) -> None:
        super().__init__(learning_rate)
        for arg, value in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise InvalidArgumentError(f"Adam: expected {arg} in [0, 1), received {value!r}.")
        _check_positive("epsilon", epsilon, "Adam")
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)
        self._tmp: np.ndarray | None = None

    def constants(self, dtype: np.dtype) -> tuple:
        """This step's ``(1 - beta_1, 1 - beta_2, epsilon, alpha, m_floor, g_floor)`` in ``dtype``."""
        dt = np.dtype(dtype).type
        t = self.iterations + 1
        # Keras computes the powers and alpha in the variable's dtype
        b1_power = dt(dt(self.beta_1) ** dt(t))
        b2_power = dt(dt(self.beta_2) ** dt(t))
        alpha = dt(dt(self.learning_rate) * np.sqrt(dt(1) - b2_power) / (dt(1) - b1_power))
        c1, c2, eps = dt(1) - dt(self.beta_1), dt(1) - dt(self.beta_2), dt(self.epsilon)
        # TensorFlow's CPU kernels flush subnormal results to zero. Here the two products that
        # would create them are avoided instead: g*g when |g| < sqrt(tiny), and m*alpha when
        # |m| < tiny/alpha (such m are stored as 0: their update was 0 anyway). Subnormal
        # arithmetic is ~100x slower on x86; without this a net1 epoch ran 2.4x slower by its end.
        tiny = np.finfo(dt).tiny
        return c1, c2, eps, alpha, dt(tiny / alpha), dt(np.sqrt(tiny))

    def moments(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The first and second moment arrays for ``params`` (created as zeros)."""
        return self._slot("m", params), self._slot("v", params)

    def _update(self, params, grads):
        c1, c2, eps, alpha, m_floor, g_floor = self.constants(params.dtype)
        m, v = self.moments(params)
        tmp = (
            self._tmp
            if self._tmp is not None and self._tmp.shape == params.shape and self._tmp.dtype == params.dtype
            else None
        )
        tmp = self._tmp = np.empty_like(params) if tmp is None else tmp
        np.subtract(grads, m, out=tmp)
        tmp *= c1
        m += tmp
        np.copyto(m, 0, where=np.abs(m) < m_floor)
        np.multiply(grads, grads, out=tmp)
        np.copyto(tmp, 0, where=np.abs(grads) < g_floor)
        tmp -= v
        tmp *= c2
        v += tmp
        np.sqrt(v, out=tmp)
        tmp += eps
        np.divide(m * alpha, tmp, out=tmp)
        params -= tmp

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


class RMSprop(Optimizer):
    name = "rmsprop"

    def __init__(
        self, learning_rate: float = 0.001, rho: float = 0.9, momentum: float = 0.0, epsilon: float = 1e-7
    ) -> None:
        super().__init__(learning_rate)
        if not isinstance(rho, (int, float)) or not 0 <= rho < 1:
            raise InvalidArgumentError(f"RMSprop: expected rho in [0, 1), received {rho!r}.")
        _check_positive("momentum", momentum, "RMSprop", allow_zero=True)
        _check_positive("epsilon", epsilon, "RMSprop")
        self.rho, self.momentum, self.epsilon = float(rho), float(momentum), float(epsilon)

    def _update(self, params, grads):
        dt = params.dtype.type
        v = self._slot("velocity", params)
        v *= dt(self.rho)
        v += dt(1 - self.rho) * (grads * grads)
        increment = (dt(self.learning_rate) * grads) / np.sqrt(v + dt(self.epsilon))
        if self.momentum > 0:
            mom = self._slot("momentum", params)
            mom *= dt(self.momentum)
            mom += increment
            params -= mom
        else:
            params -= increment

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon}


_BY_NAME = {"sgd": SGD, "adam": Adam, "rmsprop": RMSprop}


def get(identifier: Any) -> Optimizer:
    """An optimizer from a name ('adam', 'sgd', 'rmsprop') or an instance (returned as is)."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    raise InvalidArgumentError(
        f"Unknown optimizer {identifier!r}. Expected 'adam', 'sgd', 'rmsprop' or an instance "
        "such as cl.optimizers.Adam(learning_rate=1e-3)."
    )


def from_config(cfg: dict[str, Any]) -> Optimizer:
    """The optimizer ``get_config()`` described."""
    cfg = dict(cfg)
    name = cfg.pop("name", None)
    if name not in _BY_NAME:
        raise InvalidArgumentError(
            f"optimizers.from_config: unknown optimizer {name!r}; expected one of {', '.join(map(repr, _BY_NAME))}."
        )
    try:
        return _BY_NAME[name](**cfg)
    except TypeError as exc:
        raise InvalidArgumentError(f"optimizers.from_config: the settings of {name!r} are wrong ({exc}).") from exc
