"""The execution plan: a model's layers as a list of units that ``fit``, ``evaluate`` and
``predict`` run without knowing any layer class.

A unit is either a layer itself (its ``forward``/``backward`` are the reference arithmetic of
``cnnlab.ops``) or an accelerated group of consecutive layers from the private ``_accel``
package, chosen by that group's own predicate from one registry (``_accel.registry``): a
convolution with its activation (and the max pooling after it), a pooling layer, a depthwise or
separable convolution, a training-mode BatchNormalization (with the ReLU after it), and for the
whole step of some models a compiled training step; the optimizer's update is chosen the same
way. ``cl.config.set_kernels("reference")`` gives a plan of plain layers, which is what a
reader follows and what the tests compare the accelerated units with.

Every unit has the layer interface::

    unit.forward(x, training)                      -> output of its last layer
    unit.backward(dy, need_dx, from_logits=False)  -> gradient at its input (None if not need_dx)
    unit.release()                                 -> drop what forward kept

and fills the weight gradients of its layers (``layer.grads``, views of the flat gradient
array of :mod:`cnnlab.engine.params`). The model's last layer is always a unit of its own:
the loss reads its logits.

A graph model (``cl.Model(inputs, outputs)``, or a model with one inside) gets a plan of node
steps over numbered tensors instead (:mod:`cnnlab.engine.graph`); the registry's predicates then
apply to the linear chains inside the graph. A Sequential model of layers keeps this list.

A plan is made when training, evaluation or prediction starts and is kept while the layers,
their trainability, the float type, the optimizer and the kernel choice stay the same.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from cnnlab import config

#: (leaf layer, effective trainability) in forward order
Leaves = Sequence[tuple[Any, bool]]


@dataclass
class Step:
    """One unit of the plan and the leaves ``[start, stop)`` it covers."""

    start: int
    stop: int
    unit: Any
    accelerated: bool = False

    @property
    def name(self) -> str:
        return getattr(self.unit, "plan_name", None) or type(self.unit).__name__


@dataclass
class Plan:
    """What one model runs, built by :func:`build_plan`."""

    kernels: str
    steps: list[Step]
    first_trainable: int
    #: a compiled whole training step (forward, loss, backward and update), or None
    whole_step: Any = None
    #: a compiled whole-model forward for inference ``x -> output``, or None
    whole_predict: Callable[[np.ndarray], np.ndarray] | None = None
    #: ``update(flat, grads)`` applying the optimizer (accelerated or the optimizer's own)
    update: Callable[[np.ndarray, np.ndarray], None] | None = None
    #: numba threads do the work (BLAS then gets one thread per numba thread), else BLAS does
    compiled_threads: bool = False
    key: tuple = field(default=(), repr=False)

    def describe(self) -> list[str]:
        """One line per unit: which layers and which kernels (for users and tests)."""
        lines = [f"kernels: {self.kernels}"]
        if self.whole_step is not None:
            lines.append(f"training step: {type(self.whole_step).__name__} (compiled, whole model)")
        for step in self.steps:
            kind = "accelerated" if step.accelerated else "reference"
            lines.append(f"layers {step.start}..{step.stop - 1}: {step.name} ({kind})")
        return lines

    @contextmanager
    def threads(self, compiled: bool | None = None) -> Iterator[None]:
        """Give the cores to whichever pool does the work.

        OpenBLAS's and numba's worker threads both spin while they wait, so on a machine with few
        cores the two pools must not run side by side (measured on 2 cores: 2+2 threads made a
        step 2.6x slower for the MLP and 9x for the CNN, benchmarks/RESULTS.md). Accelerated
        units run on numba's threads, which call single-threaded BLAS themselves.
        """
        from cnnlab import _accel  # the accelerator's thread count only; no kernels

        cores = os.cpu_count() or 1
        compiled = self.compiled_threads if compiled is None else compiled
        blas, numba_threads = (1, cores) if compiled else (cores, 1)
        with threadpool_limits(limits=blas, user_api="blas"), _accel.num_threads(numba_threads):
            yield


_NOTICE_SAID = False


def _fast_available() -> bool:
    global _NOTICE_SAID
    from cnnlab import _accel

    if _accel.AVAILABLE:
        return True
    if not _NOTICE_SAID:
        _NOTICE_SAID = True
        warnings.warn(
            f"cnnlab: numba is not available ({_accel.UNAVAILABLE_REASON}); running the reference "
            "NumPy kernels (same results, slower). Install numba (pip install numba) for the fast ones.",
            _accel.KernelNotice,
            stacklevel=3,
        )
    return False


def has_weight_rules(leaves: Leaves) -> bool:
    """Whether a trainable layer has a regularizer or constraint (``layer.regularizers`` /
    ``layer.constraints``: weight key -> callable), which the engine applies around the update."""
    return any(
        getattr(layer, "regularizers", None) or getattr(layer, "constraints", None)
        for layer, trainable in leaves
        if trainable
    )


def _reference_update(optimizer: Any, store: Any) -> Callable[[np.ndarray, np.ndarray], None] | None:
    """``optimizer.apply`` told where each weight array lies in the flat array (for ``clipnorm``)."""
    if optimizer is None:
        return None
    if store is None or not store.spans:
        return optimizer.apply
    spans = list(store.spans.values())
    return lambda flat, grads: optimizer.apply(flat, grads, spans=spans)


def plan_key(leaves: Leaves, dtype: np.dtype, optimizer: Any, kernels: str) -> tuple:
    return (
        kernels,
        np.dtype(dtype).str,
        config.floatx(),
        id(optimizer),
        tuple((id(layer), trainable) for layer, trainable in leaves),
    )


def build_plan(
    leaves: Leaves,
    dtype: np.dtype,
    optimizer: Any = None,
    store: Any = None,
    kernels: str | None = None,
) -> Plan:
    """The units for ``leaves`` (the model's layers, nested models expanded) on ``dtype`` data.

    With ``store`` and ``optimizer`` (training) the plan also holds the optimizer update and,
    where one applies, a compiled whole step."""
    kernels = kernels or config.kernels()
    first = next((i for i, (layer, trainable) in enumerate(leaves) if layer.trainable_keys(trainable)), len(leaves))
    key = plan_key(leaves, dtype, optimizer, kernels)
    fast = kernels == "fast" and _fast_available()
    layers = [layer for layer, _ in leaves]
    if not fast:
        steps = [Step(i, i + 1, layer) for i, layer in enumerate(layers)]
        return Plan("reference", steps, first, update=_reference_update(optimizer, store), key=key)

    from cnnlab._accel import registry

    steps = []
    index = 0
    last = len(layers) - 1
    while index < len(layers):
        found = None
        if index < last:
            for match in registry.UNITS:
                found = match(layers, index, np.dtype(dtype), last)
                if found is not None:
                    break
        if found is None:
            steps.append(Step(index, index + 1, layers[index]))
            index += 1
        else:
            unit, count = found
            steps.append(Step(index, index + count, unit, accelerated=True))
            index += count
    whole_step = whole_predict = None
    update = None
    if optimizer is not None:
        # compiled updates know only the plain formulas: clipping and weight decay need the optimizer's
        # own apply, and weight rules (regularizers, constraints) the engine's step around it
        plain = not getattr(optimizer, "reference_update_only", False)
        update = (plain and registry.optimizer_update(optimizer, np.dtype(config.floatx()))) or _reference_update(
            optimizer, store
        )
        if store is not None and plain and not has_weight_rules(leaves):
            whole_step = registry.whole_step(leaves, np.dtype(dtype), optimizer, store)
    whole_predict = registry.whole_predict(layers, np.dtype(dtype))
    compiled = any(step.accelerated for step in steps) or whole_step is not None
    return Plan(
        "fast",
        steps,
        first,
        whole_step=whole_step,
        whole_predict=whole_predict,
        update=update,
        compiled_threads=compiled,
        key=key,
    )
