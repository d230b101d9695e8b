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
* AdamW: Adam after the decoupled weight decay below (``weight_decay=0.004``).
* Adagrad: ``acc += g^2``; ``w -= lr*g / sqrt(acc + eps)`` (``acc`` starts at ``initial_accumulator_value``).
* Adadelta: ``Eg = rho*Eg + (1 - rho)*g^2``; ``d = -sqrt(Ed + eps)*g / sqrt(Eg + eps)``;
  ``Ed = rho*Ed + (1 - rho)*d^2``; ``w += lr*d``.
* Adamax: ``m += (g - m)*(1 - b1)``; ``u = max(b2*u, |g|)``; ``w -= lr*m / ((1 - b1^t)*(u + eps))``.
* Nadam: ``mu_t = b1*(1 - 0.5*0.96^t)``, ``U_t = mu_1*...*mu_t``; Adam's moments;
  ``m_hat = mu_{t+1}*m/(1 - U_t*mu_{t+1}) + (1 - mu_t)*g/(1 - U_t)``; ``v_hat = v/(1 - b2^t)``;
  ``w -= lr*m_hat / (sqrt(v_hat) + eps)``.

Every optimizer takes Keras's base options, applied in Keras's order before the update:

1. clipping, at most one of: ``clipnorm`` (each weight array ``g*c / max(||g||, c)``),
   ``global_clipnorm`` (all arrays ``g * c*min(1/N, 1/c)`` with ``N`` the norm of all of them),
   ``clipvalue`` (``clip(g, -v, v)``);
2. ``weight_decay``: ``w = w - w*wd*lr``;
3. the update above, with ``lr`` the ``learning_rate`` (a float or a schedule from
   :mod:`cnnlab.schedules` evaluated at ``iterations``).

Per-array options need to know where each weight array lies in the flat array: ``fit`` passes
these ``spans`` (``[(start, stop), ...]``); a direct ``apply(params, grads)`` treats ``params``
as one weight array.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from cnnlab import schedules
from cnnlab.errors import InvalidArgumentError
from cnnlab.schedules import LearningRateSchedule

sys.modules[__name__ + ".schedules"] = schedules  # ``cl.optimizers.schedules.ExponentialDecay``, as in Keras

#: ``(start, stop)`` of each weight array in the flat parameter array
Spans = Sequence[tuple[int, int]]

#: steps between two flushes of subnormal optimizer state (see ``Optimizer._flush_subnormals``)
FLUSH_EVERY = 64


class Optimizer:
    """Base class: ``apply(params, grads, spans)`` updates ``params`` in place."""

    name = "optimizer"
    #: initial value of each slot (zeros unless named here)
    slot_initial: dict[str, float] = {}
    #: slots that hold one number for the whole model, not one per weight (Nadam's momentum product)
    scalar_slots: tuple[str, ...] = ()

    def __init__(
        self,
        learning_rate: float | LearningRateSchedule = 0.001,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
    ) -> None:
        owner = type(self).__name__
        self._learning_rate: float | LearningRateSchedule = 0.0
        self.learning_rate = learning_rate  # type: ignore[assignment]
        for arg, value in (
            ("weight_decay", weight_decay),
            ("clipnorm", clipnorm),
            ("clipvalue", clipvalue),
            ("global_clipnorm", global_clipnorm),
        ):
            if value is not None:
                _check_positive(arg, value, owner, allow_zero=True)
        if sum(v is not None for v in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError(
                f"{owner}: only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. "
                f"Received: clipnorm={clipnorm}, clipvalue={clipvalue}, global_clipnorm={global_clipnorm}."
            )
        self.weight_decay = None if weight_decay is None else float(weight_decay)
        self.clipnorm = None if clipnorm is None else float(clipnorm)
        self.clipvalue = None if clipvalue is None else float(clipvalue)
        self.global_clipnorm = None if global_clipnorm is None else float(global_clipnorm)
        self.iterations = 0
        self._slots: dict[str, np.ndarray] = {}

    @property
    def learning_rate(self) -> float:
        """The learning rate of the next update (a schedule is evaluated at ``iterations``)."""
        if isinstance(self._learning_rate, LearningRateSchedule):
            return float(self._learning_rate(self.iterations))
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value: float | LearningRateSchedule) -> None:
        if isinstance(value, LearningRateSchedule):
            self._learning_rate = value
            return
        if isinstance(self._learning_rate, LearningRateSchedule):
            raise TypeError(
                f"{type(self).__name__}: this optimizer was created with a LearningRateSchedule as its "
                "learning_rate, hence its learning rate is not settable. If you need the learning rate to be "
                "settable (e.g. by ReduceLROnPlateau), create the optimizer with a float learning_rate."
            )
        _check_positive("learning_rate", value, type(self).__name__)
        self._learning_rate = float(value)

    @property
    def reference_update_only(self) -> bool:
        """True when an option (clipping, weight decay) needs this class's own ``apply``; compiled
        updates that know only the plain formula must then not be used."""
        return any(v is not None for v in (self.weight_decay, self.clipnorm, self.clipvalue, self.global_clipnorm))

    def _slot(self, key: str, like: np.ndarray) -> np.ndarray:
        slot = self._slots.get(key)
        if slot is None or slot.shape != like.shape or slot.dtype != like.dtype:
            slot = self._slots[key] = np.full_like(like, self.slot_initial.get(key, 0.0))
        return slot

    def apply(self, params: np.ndarray, grads: np.ndarray, spans: Spans | None = None) -> None:
        """One update of ``params`` (in place): clipping, weight decay, the update, as Keras's
        ``BaseOptimizer.apply``. ``spans`` are the weight arrays' places in ``params`` (default:
        one array)."""
        spans = [(0, params.size)] if spans is None else spans
        grads = self._clip(grads, spans)
        if self.weight_decay is not None:
            dt = params.dtype.type
            params -= params * dt(self.weight_decay) * dt(self.learning_rate)
        self._update(params, grads)
        self.end_step()

    def _clip(self, grads: np.ndarray, spans: Spans) -> np.ndarray:
        """Keras's ``_clip_gradients`` (float operations in the gradient's dtype, same order)."""
        dt = grads.dtype.type
        if self.clipnorm:
            c = dt(self.clipnorm)
            out = np.empty_like(grads)
            for lo, hi in spans:
                g = grads[lo:hi]
                l2sum = np.sum(g * g, dtype=grads.dtype)
                l2norm = np.sqrt(l2sum) if l2sum > 0 else l2sum
                np.divide(g * c, max(l2norm, c), out=out[lo:hi])
            return out
        if self.global_clipnorm:
            c = dt(self.global_clipnorm)
            sums = [np.sum(grads[lo:hi] * grads[lo:hi], dtype=grads.dtype) for lo, hi in spans]
            norm = np.sqrt(np.sum(np.array(sums, grads.dtype), dtype=grads.dtype))
            with np.errstate(divide="ignore", invalid="ignore"):
                scale = c * min(dt(1) / norm, dt(1) / c) + (norm - norm)
            return grads * dt(scale)
        if self.clipvalue:
            v = dt(self.clipvalue)
            return np.clip(grads, -v, v)
        return grads

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
        lr = self._learning_rate
        return {
            "name": self.name,
            "learning_rate": schedules.serialize(lr) if isinstance(lr, LearningRateSchedule) else lr,
            "weight_decay": self.weight_decay,
            "clipnorm": self.clipnorm,
            "global_clipnorm": self.global_clipnorm,
            "clipvalue": self.clipvalue,
        }

    def get_state(self) -> dict[str, np.ndarray]:
        """Slot arrays and the step counter (for saving and resuming)."""
        return {"iterations": np.array(self.iterations), **{k: v.copy() for k, v in self._slots.items()}}

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        self.iterations = int(state["iterations"])
        self._slots = {k: np.array(v) for k, v in state.items() if k != "iterations"}


def _check_positive(name: str, value: Any, owner: str, allow_zero: bool = False) -> None:
    if isinstance(value, LearningRateSchedule):
        return
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise InvalidArgumentError(
            f"{owner}: expected {name} to be a finite {'non-negative' if allow_zero else 'positive'} number, "
            f"received {value!r}."
        )


def _check_betas(owner: str, beta_1: Any, beta_2: Any, epsilon: Any) -> tuple[float, float, float]:
    for arg, value in (("beta_1", beta_1), ("beta_2", beta_2)):
        if not isinstance(value, (int, float)) or not 0 <= value < 1:
            raise ValueError(f"{owner}: expected {arg} in [0, 1), received {value!r}.")
    _check_positive("epsilon", epsilon, owner)
    return float(beta_1), float(beta_2), float(epsilon)


class _Betas(Optimizer):
    """Base of Adamax and Nadam: ``beta_1``, ``beta_2``, ``epsilon`` (Keras's defaults)."""

    def __init__(
        self,
        learning_rate: float = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        **options: Any,
    ) -> None:
        super().__init__(learning_rate, **options)
        self.beta_1, self.beta_2, self.epsilon = _check_betas(type(self).__name__, beta_1, beta_2, epsilon)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


class SGD(Optimizer):
    name = "sgd"

    def __init__(
        self, learning_rate: float = 0.01, momentum: float = 0.0, nesterov: bool = False, **options: Any
    ) -> None:
        super().__init__(learning_rate, **options)
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


class Adam(_Betas):
    name = "adam"
    #: scratch array of the NumPy update, made on first use
    _tmp: np.ndarray | None = None

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


class RMSprop(Optimizer):
    name = "rmsprop"

    def __init__(
        self,
        learning_rate: float = 0.001,
        rho: float = 0.9,
        momentum: float = 0.0,
        epsilon: float = 1e-7,
        **options: Any,
    ) -> None:
        super().__init__(learning_rate, **options)
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


class AdamW(Adam):
    """Adam with decoupled weight decay, like ``keras.optimizers.AdamW``: before each Adam
    update ``w = w - w*weight_decay*lr`` (Keras's base-optimizer weight decay)."""

    name = "adamw"

    def __init__(
        self,
        learning_rate: float = 0.001,
        weight_decay: float = 0.004,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        **options: Any,
    ) -> None:
        if weight_decay is None:
            raise ValueError(
                "AdamW: argument `weight_decay` must be a float. Received: weight_decay=None. "
                "Use Adam for no weight decay."
            )
        super().__init__(learning_rate, beta_1, beta_2, epsilon, weight_decay=weight_decay, **options)


class Adagrad(Optimizer):
    """``acc += g^2``; ``w -= lr*g / sqrt(acc + epsilon)``, like ``keras.optimizers.Adagrad``
    (``acc`` starts at ``initial_accumulator_value``)."""

    name = "adagrad"

    def __init__(
        self,
        learning_rate: float = 0.001,
        initial_accumulator_value: float = 0.1,
        epsilon: float = 1e-7,
        **options: Any,
    ) -> None:
        super().__init__(learning_rate, **options)
        _check_positive("initial_accumulator_value", initial_accumulator_value, "Adagrad", allow_zero=True)
        _check_positive("epsilon", epsilon, "Adagrad")
        self.initial_accumulator_value, self.epsilon = float(initial_accumulator_value), float(epsilon)
        self.slot_initial = {"accumulator": self.initial_accumulator_value}

    def _update(self, params, grads):
        dt = params.dtype.type
        acc = self._slot("accumulator", params)
        acc += grads * grads
        params -= (dt(self.learning_rate) * grads) / np.sqrt(acc + dt(self.epsilon))

    def get_config(self):
        return {
            **super().get_config(),
            "initial_accumulator_value": self.initial_accumulator_value,
            "epsilon": self.epsilon,
        }


class Adadelta(Optimizer):
    """Like ``keras.optimizers.Adadelta``, with ``rms(x) = sqrt(x + epsilon)``::

    Eg = rho*Eg + (1 - rho)*g^2
    d  = -rms(Ed)*g / rms(Eg)
    Ed = rho*Ed + (1 - rho)*d^2
    w += lr*d
    """

    name = "adadelta"

    def __init__(self, learning_rate: float = 0.001, rho: float = 0.95, epsilon: float = 1e-7, **options: Any) -> None:
        super().__init__(learning_rate, **options)
        if not isinstance(rho, (int, float)) or not 0 <= rho < 1:
            raise ValueError(f"Adadelta: expected rho in [0, 1), received {rho!r}.")
        _check_positive("epsilon", epsilon, "Adadelta")
        self.rho, self.epsilon = float(rho), float(epsilon)

    def _update(self, params, grads):
        dt = params.dtype.type
        rho, one_minus_rho, eps = dt(self.rho), dt(1 - self.rho), dt(self.epsilon)
        acc_grad = self._slot("accumulated_grad", params)
        acc_delta = self._slot("accumulated_delta_var", params)
        acc_grad[...] = rho * acc_grad + one_minus_rho * (grads * grads)
        delta = -((np.sqrt(acc_delta + eps) * grads) / np.sqrt(acc_grad + eps))
        acc_delta[...] = rho * acc_delta + one_minus_rho * (delta * delta)
        params += dt(self.learning_rate) * delta

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}


class Adamax(_Betas):
    """Adam with the infinity norm, like ``keras.optimizers.Adamax``::

    m += (g - m)*(1 - beta_1)
    u  = max(beta_2*u, |g|)
    w -= lr*m / ((1 - beta_1^t)*(u + epsilon))
    """

    name = "adamax"

    def _update(self, params, grads):
        dt = params.dtype.type
        t = dt(self.iterations + 1)
        beta_1_power = dt(dt(self.beta_1) ** t)
        m, u = self._slot("momentum", params), self._slot("norm", params)
        m += (grads - m) * dt(1 - self.beta_1)
        np.maximum(dt(self.beta_2) * u, np.abs(grads), out=u)
        params -= (dt(self.learning_rate) * m) / ((dt(1) - beta_1_power) * (u + dt(self.epsilon)))


class Nadam(_Betas):
    """Adam with Nesterov momentum, like ``keras.optimizers.Nadam`` (float32 constants as Keras
    computes them)::

        mu_t = beta_1*(1 - 0.5*0.96^t);  U_t = mu_1*mu_2*...*mu_t   (kept as the "u_product" slot)
        m += (g - m)*(1 - beta_1);  v += (g^2 - v)*(1 - beta_2)
        m_hat = mu_{t+1}*m / (1 - U_t*mu_{t+1}) + (1 - mu_t)*g / (1 - U_t)
        w -= lr*m_hat / (sqrt(v / (1 - beta_2^t)) + epsilon)
    """

    scalar_slots = ("u_product",)

    name = "nadam"

    def _update(self, params, grads):
        dt = params.dtype.type
        t, t_next = dt(self.iterations + 1), dt(self.iterations + 2)
        decay, beta_1, beta_2 = dt(0.96), dt(self.beta_1), dt(self.beta_2)
        u_product = self._slots.get("u_product")
        if u_product is None or u_product.dtype != params.dtype:
            u_product = self._slots["u_product"] = np.ones((), params.dtype)
        # Keras's Nadam._backend_update_step: U_t = U_{t-1} * beta_1 * (1 - 0.5 * 0.96^t), before the update
        u_product[...] = u_product * beta_1 * (dt(1) - dt(0.5) * dt(decay**t))
        u_t = beta_1 * (dt(1) - dt(0.5) * dt(decay**t))
        u_t_1 = beta_1 * (dt(1) - dt(0.5) * dt(decay**t_next))
        u_product_t = dt(u_product)
        u_product_t_1 = u_product_t * u_t_1
        beta_2_power = dt(beta_2**t)
        m, v = self._slot("momentum", params), self._slot("velocity", params)
        m += (grads - m) * (dt(1) - beta_1)
        v += (grads * grads - v) * (dt(1) - beta_2)
        m_hat = (u_t_1 * m) / (dt(1) - u_product_t_1) + ((dt(1) - u_t) * grads) / (dt(1) - u_product_t)
        v_hat = v / (dt(1) - beta_2_power)
        params -= (m_hat * dt(self.learning_rate)) / (np.sqrt(v_hat) + dt(self.epsilon))


_BY_NAME: dict[str, type[Optimizer]] = {
    cls.name: cls for cls in (SGD, Adam, RMSprop, AdamW, Adagrad, Adadelta, Adamax, Nadam)
}


def get(identifier: Any) -> Optimizer:
    """An optimizer from a name ('adam', 'sgd', 'rmsprop', 'adamw', 'adagrad', 'adadelta', 'adamax',
    'nadam') or an instance (returned as is)."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    raise InvalidArgumentError(
        f"Unknown optimizer {identifier!r}. Expected one of {', '.join(repr(k) for k in _BY_NAME)} or an "
        "instance such as cl.optimizers.Adam(learning_rate=1e-3)."
    )


def from_config(cfg: dict[str, Any]) -> Optimizer:
    """The optimizer ``get_config`` described (a schedule ``learning_rate`` is rebuilt too)."""
    cfg = dict(cfg)
    name = cfg.pop("name", None)
    if name not in _BY_NAME:
        raise InvalidArgumentError(
            f"optimizers.from_config: unknown optimizer {name!r}; expected one of {', '.join(map(repr, _BY_NAME))}."
        )
    if isinstance(cfg.get("learning_rate"), dict):
        cfg["learning_rate"] = schedules.deserialize(cfg["learning_rate"])
    try:
        return _BY_NAME[name](**cfg)
    except TypeError as exc:
        raise InvalidArgumentError(f"optimizers.from_config: the settings of {name!r} are wrong ({exc}).") from exc
