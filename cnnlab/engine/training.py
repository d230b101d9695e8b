"""The engine that trains and runs a model: one training step, the ``fit`` loop, evaluation and
prediction, all through the model's execution plan (:mod:`cnnlab.engine.plan`).

A training step::

    out = unit_k(... unit_1(x))                     # forward, each unit keeps its cache
    loss, g = loss.value_and_grad(y, out, logits)   # from logits after softmax, as Keras/TF
    g = unit.backward(g) for units in reverse        # fills the flat gradient array
    loss += sum(reg(w)); grad(w) += reg.gradient(w)  # weight regularizers (layer.regularizers)
    plan.update(flat, grads)                         # the optimizer
    w = constraint(w)                                # weight constraints (layer.constraints)

With ``sample_weight`` (or ``class_weight``) the batch loss is Keras's ``sum(w_i * loss_i) / N``
(``sum_over_batch_size``: divided by the batch size, not by the sum of the weights), so each
sample's loss gradient is scaled by its weight.

The engine knows no layer class: the model gives it its leaf layers (nested models expanded)
with their effective trainability, and the plan decides which kernels run them. A graph model's
plan (:mod:`cnnlab.engine.graph`) runs its node steps over slots; its inputs arrive as an
``ArrayGroup`` (one array per model input) and one loss is applied to every output (summed).
"""

from __future__ import annotations

import math
import signal
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from cnnlab import config
from cnnlab.engine import graph as graph_mod
from cnnlab.engine.params import ParameterStore
from cnnlab.engine.plan import Plan, build_plan, plan_key
from cnnlab.layers.base import CHUNK_BYTES
from cnnlab.ops.activations import flush_subnormals
from cnnlab.progress import Progbar
from cnnlab.random import generator


def _parts(x: Any) -> list[np.ndarray]:
    """The input arrays of a graph plan: a functional model's ``ArrayGroup``, or the one array of a
    Sequential model with a graph model inside."""
    return list(x.parts) if hasattr(x, "parts") else [x]


class TrainingStopped(RuntimeWarning):
    """Issued when ``fit`` stops early because the loss became NaN or infinite."""


@contextmanager
def defer_interrupt() -> Iterator[None]:
    """Hold Ctrl-C until the block ends, so an optimizer update is never half-applied."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[Any] = []
    previous = signal.signal(signal.SIGINT, lambda *args: received.append(args))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:
            raise KeyboardInterrupt


class Engine:
    """Parameters, plan and loops of one model (``model._engine``)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.store = ParameterStore()
        self._plans: dict[bool, Plan] = {}
        #: seconds numba spent compiling kernels during the current/last ``fit``
        self.compile_seconds = 0.0
        #: the regularization penalty added to the last training step's loss
        self.penalty = 0.0

    # ------------------------------------------------------------ plan
    def leaves(self) -> list[tuple[Any, bool]]:
        return self.model._leaves()

    def is_graph(self) -> bool:
        """Whether the model (or a model inside it) is a graph: then the plan is node steps over
        slots (:mod:`cnnlab.engine.graph`), else the linear list of units."""
        return bool(getattr(self.model, "_is_graph", False))

    def plan(self, dtype: np.dtype, training: bool) -> Plan:
        """The plan for ``dtype`` inputs, rebuilt when layers, trainability, float type,
        optimizer or kernel choice changed."""
        leaves = self.leaves()
        optimizer = self.model.optimizer if training else None
        key = plan_key(leaves, dtype, optimizer, config.kernels())
        cached = self._plans.get(training)
        if training:
            rebuilt = self.store.bind(leaves, self.model.optimizer)
            if rebuilt:
                cached = None
        if cached is None or cached.key != key:
            store = self.store if training else None
            if self.is_graph():
                cached = graph_mod.build_graph_plan(self.model, dtype, optimizer, store, config.kernels(), key)
            else:
                cached = build_plan(leaves, dtype, optimizer, store)
            self._plans[training] = cached
        return cached

    def invalidate(self) -> None:
        self._plans.clear()

    # ------------------------------------------------------------ one step
    def from_logits(self) -> bool:
        if self.is_graph():
            return False  # a graph plan decides per output (_fused_outputs)
        last = self.leaves()[-1][0]
        wanted = self.model.loss.logits_activation
        return wanted is not None and getattr(last, "activation", None) == wanted

    def gradients(
        self, plan: Plan, xb: np.ndarray, yb: np.ndarray, sample_weight: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Forward, loss, backward through ``plan``; gradients land in the flat gradient array.
        Returns per-sample (weighted) losses and the outputs (for metrics)."""
        if isinstance(plan, graph_mod.GraphPlan):
            return self._graph_gradients(plan, xb, yb, sample_weight)
        first = plan.first_trainable
        out = xb
        for step in plan.steps:
            out = step.unit.forward(out, training=True)
        from_logits = self.from_logits()
        last = plan.steps[-1].unit
        values, grad = self.model.loss.value_and_grad(yb, out, last.last_logits if from_logits else None)
        if sample_weight is not None:
            values = values * sample_weight
            grad *= sample_weight.reshape(-1, *([1] * (grad.ndim - 1))).astype(grad.dtype, copy=False)
        flush_subnormals(grad)  # see ops.activations.flush_subnormals: TF does the same
        for step in reversed(plan.steps):
            if step.stop <= first:
                break  # nothing before the first trainable layer needs a gradient
            need_dx = step.start > first
            if step is plan.steps[-1] and from_logits:
                grad = step.unit.backward(grad, need_dx=need_dx, from_logits=True)
            else:
                grad = step.unit.backward(grad, need_dx=need_dx)
        for step in plan.steps:
            step.unit.release()
        return values, out

    def _fused_outputs(self, plan: graph_mod.GraphPlan) -> set[int]:
        """Output slots whose producing unit keeps logits the loss reads (softmax + cross-entropy)."""
        wanted = self.model.loss.logits_activation
        if wanted is None:
            return set()
        producers = {step.output: step.unit for step in plan.steps}
        # an output another layer also reads gets that layer's gradient with respect to the
        # activated values, so its loss cannot take the shortcut through the logits
        consumed = {s for step in plan.steps for s in step.inputs}
        return {
            s
            for s in plan.graph.outputs
            if s not in consumed and getattr(producers.get(s), "activation", None) == wanted
        }

    def _graph_loss(
        self, plan: graph_mod.GraphPlan, slots: list[Any], yb: Any, fused: set[int]
    ) -> tuple[np.ndarray, dict[int, np.ndarray]]:
        """One loss applied to every output (Keras with one loss for several outputs): per-sample
        values summed over the outputs, and the gradient at each output slot."""
        producers = {step.output: step.unit for step in plan.steps}
        ys = list(yb.parts) if hasattr(yb, "parts") else [yb]
        total, grads = None, {}
        for slot, y in zip(plan.graph.outputs, ys, strict=True):
            logits = producers[slot].last_logits if slot in fused else None
            values, grad = self.model.loss.value_and_grad(y, slots[slot], logits)
            total = values if total is None else total + values
            grads[slot] = grad if slot not in grads else grads[slot] + grad
        return total, grads

    def _graph_outputs(self, plan: graph_mod.GraphPlan, slots: list[Any]) -> Any:
        outs = [slots[s] for s in plan.graph.outputs]
        return outs[0] if len(outs) == 1 else outs

    def _graph_gradients(
        self, plan: graph_mod.GraphPlan, xb: Any, yb: Any, sample_weight: np.ndarray | None
    ) -> tuple[np.ndarray, Any]:
        fused = self._fused_outputs(plan)
        slots = graph_mod.run_forward(plan, _parts(xb), training=True)
        values, grads = self._graph_loss(plan, slots, yb, fused)
        for grad in grads.values():
            if sample_weight is not None:
                grad *= sample_weight.reshape(-1, *([1] * (grad.ndim - 1))).astype(grad.dtype, copy=False)
            flush_subnormals(grad)
        if sample_weight is not None:
            values = values * sample_weight
        graph_mod.run_backward(plan, grads, fused)
        graph_mod.release(plan)
        return values, self._graph_outputs(plan, slots)

    def train_batch(
        self, plan: Plan, xb: np.ndarray, yb: np.ndarray, sample_weight: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, bool]:
        """One optimizer step; returns (weighted) losses, outputs and whether the weights were
        updated (not when a loss value is NaN or infinite). ``self.penalty`` is the regularization
        added to this step's batch loss."""
        self.penalty = 0.0
        if plan.whole_step is not None and sample_weight is None:
            with defer_interrupt():  # this step also updates the weights
                values, out = plan.whole_step.run(xb, yb, self.model.loss)
            return values, out, bool(np.all(np.isfinite(values)))
        values, out = self.gradients(plan, xb, yb, sample_weight)
        self.penalty = self.regularization(add_gradients=True)
        if not np.all(np.isfinite(values)) or not math.isfinite(self.penalty):
            return values, out, False
        with defer_interrupt():
            plan.update(self.store.flat, self.store.grads)
            self.apply_constraints()
        return values, out, True

    # ------------------------------------------------------------ weight rules
    def _rules(self, kind: str) -> Iterator[tuple[Any, str, Any]]:
        """(layer, weight key, rule) for the trainable weights with a rule of ``kind``
        (``"regularizers"`` or ``"constraints"``: dicts the layers keep, as Keras variables do)."""
        for layer, trainable in self.leaves():
            if trainable:
                for key, rule in (getattr(layer, kind, None) or {}).items():
                    if key in layer._weights:
                        yield layer, key, rule

    def regularization(self, add_gradients: bool = False) -> float:
        """Sum of the weight penalties (Keras adds it to the batch loss, so the logged loss shows it);
        with ``add_gradients`` their gradients are added to the weights' gradients."""
        total = 0.0
        for layer, key, rule in self._rules("regularizers"):
            w = layer._weights[key]
            total += float(rule(w))
            if add_gradients:
                layer.grads[key] += rule.gradient(w)
        return total

    def apply_constraints(self) -> None:
        """Keras applies each trainable weight's constraint right after the optimizer's update."""
        for layer, key, rule in self._rules("constraints"):
            w = layer._weights[key]
            w[...] = rule(w)

    # ------------------------------------------------------------ fit
    def fit_epochs(
        self,
        x: np.ndarray,
        y: np.ndarray,
        validation: tuple[np.ndarray, np.ndarray] | None,
        batch_size: int,
        epochs: int,
        initial_epoch: int,
        shuffle: bool,
        verbose: int,
        callbacks: list[Any],
        sample_weight: np.ndarray | None = None,
    ) -> None:
        """Keras's epoch loop. Kernel compilation (first run on a CPU) is announced and kept out
        of the epoch times shown and measured by ``compile_seconds``."""
        from cnnlab._accel import CompileWatch

        model = self.model
        floatx = config.floatx()
        plan = self.plan(np.dtype(floatx), training=True)
        steps = math.ceil(len(x) / batch_size)
        self.compile_seconds = 0.0

        def announce() -> None:
            if verbose:
                print("compiling kernels for this CPU, once (they are cached for later runs) ...", flush=True)

        with plan.threads(), CompileWatch(announce) as watch:
            for epoch in range(initial_epoch, epochs):
                for cb in callbacks:
                    cb.on_epoch_begin(epoch)
                if verbose:
                    print(f"Epoch {epoch + 1}/{epochs}")
                bar = Progbar(steps, verbose=verbose)
                order = generator().permutation(len(x)) if shuffle else np.arange(len(x))
                loss_sum, seen = 0.0, 0
                for _, metric in model._metrics:
                    metric.reset_state()
                logs: dict[str, float] = {}
                for step in range(steps):
                    idx = order[step * batch_size : (step + 1) * batch_size]
                    if shuffle:
                        idx = np.sort(idx)  # same batch contents, friendlier memory access
                    xb = x[idx].astype(floatx, copy=False)
                    yb = y[idx]
                    for cb in callbacks:
                        cb.on_train_batch_begin(step)
                    before = watch.seconds
                    wb = None if sample_weight is None else sample_weight[idx]
                    values, out, updated = self.train_batch(plan, xb, yb, wb)
                    if watch.seconds != before:  # compilation is not training time
                        bar.start += watch.seconds - before
                        self.compile_seconds = watch.seconds
                    if not updated:
                        warnings.warn(
                            f"fit: the loss became NaN or infinite at epoch {epoch + 1}, step {step + 1}; "
                            "training stopped and the weights are those after the last finite step. "
                            "Try a smaller learning_rate or scaled inputs (x / 255).",
                            TrainingStopped,
                            stacklevel=3,
                        )
                        model.stop_training = True
                        break
                    # Keras's loss tracker: the mean of the batch losses weighted by batch size
                    loss_sum += float(values.sum()) + self.penalty * len(idx)
                    for _, metric in model._metrics:
                        metric.update_state(yb, out)  # compile(metrics=...) are unweighted in Keras 3
                    seen += len(idx)
                    logs = {"loss": loss_sum / seen, **{n: metric.result() for n, metric in model._metrics}}
                    for cb in callbacks:
                        cb.on_train_batch_end(step, logs)
                    bar.update(step + 1, logs)
                    if model.stop_training:  # a callback asked to stop (Keras checks after each batch)
                        break
                if model.stop_training and not logs:
                    break
                if validation is not None:
                    before = watch.seconds
                    val_loss, val_mets = self.evaluate_arrays(*validation)
                    bar.start += watch.seconds - before
                    self.compile_seconds = watch.seconds
                    logs["val_loss"] = val_loss
                    logs.update({f"val_{n}": v for (n, _), v in zip(model._metrics, val_mets, strict=True)})
                bar.update(step + 1 if steps else 0, logs, finalize=True)
                for cb in callbacks:
                    cb.on_epoch_end(epoch, logs)
                if model.stop_training:
                    break

    # ------------------------------------------------------------ inference
    def chunk_size(self, sample_shape: tuple[int, ...]) -> int:
        """Samples per chunk so one chunk's temporaries stay below ``CHUNK_BYTES``."""
        if self.is_graph():
            total = self.model.work_bytes_per_sample((1, *sample_shape))
            return max(32, CHUNK_BYTES // max(total, 1))
        shape: tuple[int, ...] = (1, *sample_shape)
        total = 0
        for layer, _ in self.leaves():
            total += layer.work_bytes_per_sample(shape) + int(np.prod(shape)) * 8
            shape = layer.compute_output_shape(shape)  # type: ignore[assignment]
        return max(32, CHUNK_BYTES // max(total, 1))

    def _forward(self, plan: Plan, x: np.ndarray, stop: int | None = None) -> np.ndarray:
        if isinstance(plan, graph_mod.GraphPlan):
            return self._graph_outputs(plan, graph_mod.run_forward(plan, _parts(x), training=False))
        steps = plan.steps if stop is None else plan.steps[:stop]
        for step in steps:
            x = step.unit.forward(x, training=False)
            step.unit.release()
        return x

    def predict_array(self, x: np.ndarray) -> np.ndarray:
        """Outputs for every sample of ``x``, in memory-bounded chunks."""
        plan = self.plan(x.dtype, training=False)
        if len(x) == 0 and self.is_graph():
            return self.model._empty_outputs()
        if len(x) == 0:
            return np.empty((0, *self.model.compute_output_shape((None, *x.shape[1:]))[1:]), config.floatx())
        if plan.whole_predict is not None:
            with plan.threads(compiled=True):
                return plan.whole_predict(x)
        with plan.threads():
            n = len(x)
            chunk = self.chunk_size(x.shape[1:])
            if n <= chunk:
                return self._forward(plan, x)
            first = self._forward(plan, x[:chunk])
            if isinstance(first, list):  # a graph model with several outputs
                outs = [np.empty((n, *f.shape[1:]), dtype=f.dtype) for f in first]
                for start in range(0, n, chunk):
                    part = first if start == 0 else self._forward(plan, x[start : start + chunk])
                    for o, p in zip(outs, part, strict=True):
                        o[start : start + chunk] = p
                return outs
            out = np.empty((n, *first.shape[1:]), dtype=first.dtype)
            out[:chunk] = first
            for start in range(chunk, n, chunk):
                out[start : start + chunk] = self._forward(plan, x[start : start + chunk])
            return out

    def evaluate_arrays(self, x: np.ndarray, y: np.ndarray, chunk: int | None = None) -> tuple[float, list[float]]:
        """Mean loss and metrics over ``(x, y)``; the last layer keeps its logits for the loss."""
        model = self.model
        floatx = config.floatx()
        plan = self.plan(np.dtype(floatx), training=False)
        chunk = chunk or self.chunk_size(x.shape[1:])
        fused = self.from_logits()
        loss_sum = 0.0
        for _, metric in model._metrics:
            metric.reset_state()
        last = plan.steps[-1].unit
        graph = isinstance(plan, graph_mod.GraphPlan)
        keep = self._fused_outputs(plan) if graph else set()
        with plan.threads():
            for start in range(0, len(x), chunk):
                xb = x[start : start + chunk].astype(floatx, copy=False)
                yb = y[start : start + chunk]
                if graph:
                    slots = graph_mod.run_forward(plan, _parts(xb), training=False, keep=keep)
                    values, _ = self._graph_loss(plan, slots, yb, keep)
                    graph_mod.release(plan)
                    loss_sum += float(values.sum())
                    out = self._graph_outputs(plan, slots)
                    for _, metric in model._metrics:
                        metric.update_state(yb, out)
                    continue
                out = self._forward(plan, xb, stop=len(plan.steps) - 1)
                logits = None
                if fused:
                    out = last.forward(out, training=True)  # keeps the logits for the loss
                    logits = last.last_logits
                    last.release()
                else:
                    out = last.forward(out, training=False)
                values, _ = model.loss.value_and_grad(yb, out, logits)
                loss_sum += float(values.sum())
                for _, metric in model._metrics:
                    metric.update_state(yb, out)
        # Keras's test loss includes the weight penalties too
        return loss_sum / len(x) + self.regularization(), [metric.result() for _, metric in model._metrics]
