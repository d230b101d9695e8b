"""``Sequential``: a stack of layers with Keras's ``compile / fit / evaluate / predict``.

Training keeps every trainable weight in one flat array (the layers' ``kernel``
and ``bias`` are views into it) and every gradient in another, so the optimizer
updates all weights with a few whole-array operations. A step is::

    out = layer_k(... layer_1(x))                       # forward, each layer keeps its cache
    loss, g = loss.value_and_grad(y, out, logits)       # from logits after softmax, as Keras/TF
    g = layer.backward(g) for layers in reverse          # fills the flat gradient array
    optimizer.apply(flat_weights, flat_grads)
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
import warnings
from contextlib import contextmanager
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from cnnlab import _fused, config, dense_step
from cnnlab import losses as losses_mod
from cnnlab import metrics as metrics_mod
from cnnlab import optimizers as optimizers_mod
from cnnlab.callbacks import Callback, History
from cnnlab.dense_step import DenseStep
from cnnlab.fusion import ConvPool
from cnnlab.layers.base import CHUNK_BYTES, Layer, Shape, format_shape
from cnnlab.layers.conv import Conv2D
from cnnlab.layers.core import InputLayer
from cnnlab.layers.pooling import BasePooling2D
from cnnlab.ops.activations import flush_subnormals
from cnnlab.progress import Progbar
from cnnlab.random import generator


class TrainingStopped(RuntimeWarning):
    """Issued when ``fit`` stops early because the loss became NaN or infinite."""


@contextmanager
def _defer_interrupt():
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


def _as_array(x: Any, what: str) -> np.ndarray:
    try:
        arr = np.asarray(x)
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f"{what}: expected an array, received {type(x).__name__} ({exc}).") from exc
    if arr.dtype == object:
        raise ValueError(f"{what}: expected a numeric array, received objects of mixed shapes or types.")
    return arr


class Sequential(Layer):
    """A linear stack of layers, like ``keras.Sequential``.

    >>> from cnnlab.layers import Dense, Flatten
    >>> model = Sequential([Flatten(), Dense(3)], name="demo_model")
    >>> model(np.zeros((2, 2, 2))).shape
    (2, 3)
    >>> model.count_params()
    15
    """

    def __init__(self, layers: list[Layer] | None = None, name: str | None = None) -> None:
        super().__init__(name=name)
        self._layers: list[Layer] = []
        self._input_shape: Shape | None = None
        self.optimizer: optimizers_mod.Optimizer | None = None
        self.loss: losses_mod.Loss | None = None
        self._metrics: list[tuple[str, Any]] = []
        self.compiled = False
        self.stop_training = False
        self.history: History | None = None
        self._flat: np.ndarray | None = None
        self._flat_grads: np.ndarray | None = None
        self._pairs: dict[int, ConvPool] = {}
        #: free-form facts kept with the model file (e.g. input preprocessing)
        self.metadata: dict[str, Any] = {}
        for layer in layers or []:
            self.add(layer)

    # ------------------------------------------------------------ structure
    @property
    def layers(self) -> list[Layer]:
        return list(self._layers)

    def add(self, layer: Layer) -> None:
        """Append a layer (an ``Input(...)`` first declares the input shape)."""
        if not isinstance(layer, Layer):
            raise ValueError(
                f"Sequential.add: expected a layer such as cl.layers.Dense(10), received {type(layer).__name__}."
            )
        if isinstance(layer, InputLayer):
            if self._layers:
                raise ValueError("Sequential.add: an Input must come before every other layer.")
            self._input_shape = (None, *layer.shape)
        else:
            if not self._layers and layer.input_shape_arg is not None:
                self._input_shape = (None, *layer.input_shape_arg)
            if any(existing is layer for existing in self._layers):
                raise ValueError(f'Sequential.add: layer "{layer.name}" is already in the model.')
            names = {existing.name for existing in self._layers}
            if layer.name in names:
                raise ValueError(
                    f'Sequential.add: the model already has a layer named "{layer.name}"; layer names must be unique.'
                )
            self._layers.append(layer)
        self.built = False
        self._flat = None
        if self._input_shape is not None:
            self.build(self._input_shape)

    def get_layer(self, name: str | None = None, index: int | None = None) -> Layer:
        """A layer by name or position, as ``keras.Model.get_layer``."""
        if index is not None:
            if not -len(self._layers) <= index < len(self._layers):
                raise ValueError(f"get_layer: index {index} is out of range; the model has {len(self._layers)} layers.")
            return self._layers[index]
        for layer in self._layers:
            if layer.name == name:
                return layer
        names = ", ".join(layer.name for layer in self._layers)
        raise ValueError(f"get_layer: no layer named {name!r}. Layers: {names}.")

    def build(self, input_shape: Shape) -> None:
        """Create every layer's weights for inputs of ``input_shape`` (batch axis included)."""
        shape = tuple(input_shape)
        for layer in self._layers:
            if not layer.built:
                layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self._input_shape = tuple(input_shape)
        self.build_input_shape = self._input_shape
        self.built = bool(self._layers)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        shape = tuple(input_shape)
        for layer in self._layers:
            shape = layer.compute_output_shape(shape)
        return shape

    @property
    def input_shape(self) -> Shape:
        if self._input_shape is None:
            raise ValueError(f'Model "{self.name}" has no defined input shape yet: call it on data first.')
        return self._input_shape

    @property
    def output_shape(self) -> Shape:
        return self.compute_output_shape(self.input_shape)

    @property
    def _weights(self) -> dict[str, np.ndarray]:  # type: ignore[override]
        return {f"{layer.name}/{key}": w for layer in self._layers for key, w in layer._weights.items()}

    @_weights.setter
    def _weights(self, value: dict[str, np.ndarray]) -> None:
        pass  # the base class initialises it; a model's weights live in its layers

    @property
    def trainable_weights(self) -> list[np.ndarray]:
        return [w for layer in self._layers for w in layer.trainable_weights]

    def set_weights(self, weights: list[Any]) -> None:
        """Set every layer's weights from a flat list in layer order (as ``get_weights`` returns)."""
        if not self.built:
            raise ValueError(f'Model "{self.name}" is not built yet: call it on data (or build it) before set_weights.')
        expected = sum(len(layer.weights) for layer in self._layers)
        if not isinstance(weights, (list, tuple)) or len(weights) != expected:
            got = len(weights) if isinstance(weights, (list, tuple)) else type(weights).__name__
            raise ValueError(f'Model "{self.name}" expects a list of {expected} weight arrays, received {got}.')
        start = 0
        for layer in self._layers:
            count = len(layer.weights)
            if count:
                layer.set_weights(list(weights[start : start + count]))
            start += count

    # ------------------------------------------------------------ inference
    def check_input(self, x: Any) -> np.ndarray:
        if not self._layers:
            raise ValueError(f'Model "{self.name}" has no layers: add some with model.add(...) first.')
        return self._layers[0].check_input(x)

    def _check_sample_shape(self, x: np.ndarray) -> None:
        if self._input_shape is not None and self.built:
            expected = self._input_shape[1:]
            if tuple(x.shape[1:]) != tuple(expected):
                raise ValueError(
                    f'Model "{self.name}" expects samples of shape {format_shape(expected)} '
                    f"(input {format_shape(self._input_shape)}), received input of shape "
                    f"{tuple(x.shape)}.{_shape_hint(x.shape, expected)}"
                )

    def _prepare_input(self, x: Any) -> np.ndarray:
        x = self.check_input(_as_array(x, "x"))
        if x.ndim == 0:
            raise ValueError("x: expected a batch of samples, received a scalar.")
        if not self.built:
            self.build((None, *x.shape[1:]))
        self._check_sample_shape(x)
        return x

    def _chunk_size(self, sample_shape: tuple[int, ...]) -> int:
        shape: tuple[int, ...] = (1, *sample_shape)
        total = 0
        for layer in self._layers:
            total += layer.work_bytes_per_sample(shape) + int(np.prod(shape)) * 8
            shape = layer.compute_output_shape(shape)  # type: ignore[assignment]
        return max(32, CHUNK_BYTES // max(total, 1))

    def _forward_inference(self, x: np.ndarray) -> np.ndarray:
        for layer in self._layers:
            layer.check_built_shape(x)
            x = layer.forward(x, training=False)
            layer.release()
        return x

    def __call__(self, x: Any, training: bool = False) -> np.ndarray:
        """Run all layers on ``x``; large batches go through in chunks, so only the output is full size."""
        return self._predict(self._prepare_input(x))

    def _predict(self, x: np.ndarray) -> np.ndarray:
        if dense_step.covers(self, x.dtype):
            with self._thread_plan(compiled_dense=True):
                return dense_step.predict(self, x)
        with self._thread_plan():
            return self._predict_array(x)

    def _predict_array(self, x: np.ndarray, chunk: int | None = None) -> np.ndarray:
        n = len(x)
        chunk = chunk or self._chunk_size(x.shape[1:])
        if n <= chunk:
            return self._forward_inference(x)
        first = self._forward_inference(x[:chunk])
        out = np.empty((n, *first.shape[1:]), dtype=first.dtype)
        out[:chunk] = first
        for start in range(chunk, n, chunk):
            out[start : start + chunk] = self._forward_inference(x[start : start + chunk])
        return out

    def predict(self, x: Any, batch_size: int = 32, verbose: Any = 0) -> np.ndarray:
        """Outputs for every sample of ``x`` (computed in memory-bounded chunks)."""
        _check_batch_size(batch_size)
        return self._predict(self._prepare_input(x))

    # ------------------------------------------------------------ summary
    def summary(self, print_fn: Any = None, line_length: int = 80) -> None:
        """Print the layer table like Keras 3's ``model.summary()``."""
        emit = print_fn or print
        if not self.built:
            emit(
                f'Model: "{self.name}" is not built yet, so its output shapes and parameter '
                "counts are unknown. Call it on data (model(x)), fit it, or give the first layer "
                "input_shape=... (or start with cl.layers.Input(shape)) to see the summary."
            )
            return
        widths = (33, 24, 15)
        rows = []
        shape = self._input_shape
        for layer in self._layers:
            shape = layer.compute_output_shape(shape)
            rows.append((f"{layer.name} ({type(layer).__name__})", format_shape(shape), f"{layer.count_params():,}"))
        trainable = sum(layer.count_params() for layer in self._layers if layer.trainable)
        frozen = self.count_params() - trainable

        def line(left: str, mid: str, right: str, fill: str) -> str:
            return left + mid.join(fill * w for w in widths) + right

        def row(cells: tuple[str, str, str], sep: str) -> str:
            texts = [
                f" {cells[0]:<{widths[0] - 2}} ",
                f" {cells[1]:<{widths[1] - 2}} ",
                f" {cells[2]:>{widths[2] - 2}} ",
            ]
            return sep + sep.join(texts) + sep

        out = [
            f'Model: "{self.name}"',
            line("┏", "┳", "┓", "━"),
            row(("Layer (type)", "Output Shape", "Param #"), "┃"),
            line("┡", "╇", "┩", "━"),
        ]
        for i, cells in enumerate(rows):
            out.append(row(cells, "│"))
            out.append(line("├", "┼", "┤", "─") if i < len(rows) - 1 else line("└", "┴", "┘", "─"))
        itemsize = config.float_dtype().itemsize
        out.append(f" Total params: {self.count_params():,} ({_bytes(self.count_params() * itemsize)})")
        out.append(f" Trainable params: {trainable:,} ({_bytes(trainable * itemsize)})")
        out.append(f" Non-trainable params: {frozen:,} ({_bytes(frozen * itemsize)})")
        for text in out:
            emit(text)

    # ------------------------------------------------------------ training set-up
    def compile(self, optimizer: Any = "rmsprop", loss: Any = None, metrics: Any = None) -> None:
        """Choose optimizer, loss and metrics (names or objects, as in Keras)."""
        if loss is None:
            raise ValueError(
                "compile: a loss is required, e.g. loss='categorical_crossentropy' "
                "(one-hot labels) or 'sparse_categorical_crossentropy' (integer labels)."
            )
        self.optimizer = optimizers_mod.get(optimizer)
        self.loss = losses_mod.get(loss)
        self._metrics = metrics_mod.resolve(metrics, self.loss.name)
        self.compiled = True

    def _bind_parameters(self) -> None:
        """Move trainable weights into one flat array and give layers views of it and of a
        flat gradient array (done once; ``set_weights`` writes in place, so views stay valid)."""
        params = [(layer, key) for layer in self._layers if layer.trainable for key in layer._weights]
        if self._flat is not None and all(np.shares_memory(layer._weights[key], self._flat) for layer, key in params):
            return
        dtype = config.float_dtype()
        total = sum(layer._weights[key].size for layer, key in params)
        flat, grads = np.empty(total, dtype), np.zeros(total, dtype)
        offset = 0
        for layer, key in params:
            value = layer._weights[key]
            size = value.size
            view = flat[offset : offset + size].reshape(value.shape)
            view[...] = value
            layer._weights[key] = view
            layer.grads[key] = grads[offset : offset + size].reshape(value.shape)
            offset += size
        self._flat, self._flat_grads = flat, grads

    def _require_compiled(self, what: str) -> None:
        if not self.compiled:
            raise RuntimeError(
                f"{what}: the model must be compiled first, e.g. model.compile(optimizer='adam', "
                "loss='categorical_crossentropy', metrics=['accuracy'])."
            )

    def _prepare_xy(self, x: Any, y: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
        x = self._prepare_input(x)
        y = _as_array(y, "y")
        if y.ndim == 0 or len(x) != len(y):
            raise ValueError(
                f"{what}: x and y must have the same number of samples; received x with "
                f"{len(x)} and y with {len(y) if y.ndim else 'no'} samples."
            )
        if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
            bad = int(np.count_nonzero(~np.isfinite(x)))
            raise ValueError(
                f"{what}: x contains {bad} NaN or infinite value(s). Clean or impute them first "
                "(e.g. np.nan_to_num(x))."
            )
        y = self.loss.check_labels(y, self.output_shape)
        return x, y

    def thread_split(self) -> tuple[int, int]:
        """``(BLAS threads, numba threads)`` used while this model computes.

        OpenBLAS's and numba's worker threads both spin while they wait for work, so on a
        machine with few cores the two pools must not run side by side (measured on 2 cores,
        benchmarks/RESULTS.md: 2+2 threads made a step 2.6x slower for the MLP and 9x for the
        CNN). The cores go to whichever does the work: BLAS for dense-only models, the compiled
        window kernels (convolution, pooling) for models that have them. (Training a dense model
        with :class:`~cnnlab.dense_step.DenseStep` gives them to numba, whose threads then call
        single-threaded BLAS themselves.)
        """
        cores = os.cpu_count() or 1
        has_windows = any(isinstance(layer, (Conv2D, BasePooling2D)) for layer in self._layers)
        return (1, cores) if has_windows else (cores, 1)

    @contextmanager
    def _thread_plan(self, compiled_dense: bool = False):
        # the compiled dense step calls single-threaded BLAS from each of numba's threads
        blas, compiled = (1, os.cpu_count() or 1) if compiled_dense else self.thread_split()
        with threadpool_limits(limits=blas, user_api="blas"), _fused.num_threads(compiled):
            yield

    def _loss_from_logits(self) -> bool:
        last = self._layers[-1]
        wanted = self.loss.logits_activation
        return wanted is not None and getattr(last, "activation", None) == wanted

    # ------------------------------------------------------------ one step
    def _train_step(self, xb: np.ndarray, yb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Forward, loss, backward; gradients land in the flat gradient array.
        Returns per-sample losses and the outputs (for metrics)."""
        first = self._first_trainable
        units = self._step_units(xb.dtype)
        out = xb
        for _, unit in units:
            out = unit.forward(out, training=True)
        from_logits = self._loss_from_logits()
        values, grad = self.loss.value_and_grad(yb, out, self._layers[-1].last_logits if from_logits else None)
        flush_subnormals(grad)  # see ops.activations.flush_subnormals: TF does the same
        last = len(self._layers) - 1
        for index, unit in reversed(units):
            if index < first:
                break  # nothing before the first weighted layer needs a gradient
            need_dx = index > first
            if index == last and from_logits:
                grad = unit.backward(grad, need_dx=need_dx, from_logits=True)
            else:
                grad = unit.backward(grad, need_dx=need_dx)
        for _, unit in units:
            unit.release()
        return values, out

    def _step_units(self, dtype: np.dtype) -> list[tuple[int, Layer | ConvPool]]:
        """The training step's units as ``(index of the first layer, unit)``: each layer on its
        own, except ``Conv2D -> MaxPooling2D`` pairs that :class:`~cnnlab.fusion.ConvPool` runs as
        one (never the model's last two layers: their outputs feed the loss and metrics)."""
        units: list[tuple[int, Layer | ConvPool]] = []
        index = 0
        while index < len(self._layers):
            layer = self._layers[index]
            if index + 2 < len(self._layers) and ConvPool.applies(layer, self._layers[index + 1], dtype):
                pool = self._layers[index + 1]
                pair = self._pairs.get(index)
                if pair is None or pair.conv is not layer or pair.pool is not pool:
                    pair = self._pairs[index] = ConvPool(layer, pool)
                units.append((index, pair))
                index += 2
            else:
                units.append((index, layer))
                index += 1
        return units

    @property
    def _first_trainable(self) -> int:
        for index, layer in enumerate(self._layers):
            if layer.trainable and layer.weights:
                return index
        return len(self._layers)

    def train_on_batch(self, x: Any, y: Any) -> Any:
        """One optimizer step on one batch; returns ``[loss, *metrics]`` (a scalar with no metrics)."""
        self._require_compiled("train_on_batch")
        x, y = self._prepare_xy(x, y, "train_on_batch")
        self._bind_parameters()
        values, out = self._train_step(x.astype(config.floatx(), copy=False), y)
        if not np.all(np.isfinite(values)):
            raise FloatingPointError("train_on_batch: the loss is NaN or infinite; the weights were not updated.")
        with _defer_interrupt():
            self.optimizer.apply(self._flat, self._flat_grads)
        return self._results(float(values.mean()), [float(fn(y, out).mean()) for _, fn in self._metrics])

    def test_on_batch(self, x: Any, y: Any) -> Any:
        """Loss and metrics on one batch, without updating weights."""
        self._require_compiled("test_on_batch")
        x, y = self._prepare_xy(x, y, "test_on_batch")
        loss, mets = self._evaluate_arrays(x, y, chunk=len(x))
        return self._results(loss, mets)

    def _results(self, loss: float, mets: list[float]) -> Any:
        return [loss, *mets] if mets else loss

    # ------------------------------------------------------------ fit
    def fit(
        self,
        x: Any = None,
        y: Any = None,
        batch_size: int | None = 32,
        epochs: int = 1,
        verbose: Any = "auto",
        callbacks: list[Callback] | None = None,
        validation_split: float = 0.0,
        validation_data: Any = None,
        shuffle: bool = True,
        initial_epoch: int = 0,
    ) -> History:
        """Train like ``keras.Model.fit``; returns a :class:`History`.

        ``validation_split`` holds out the *last* fraction of the samples (before
        shuffling), as Keras does. If the loss becomes NaN or infinite, training stops
        at that step with a warning naming epoch and step, keeping the weights of the
        last finite step. Ctrl-C never leaves half-updated weights; the history so far
        is kept on ``model.history``.
        """
        self._require_compiled("fit")
        batch_size = 32 if batch_size is None else batch_size
        _check_batch_size(batch_size)
        if not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"fit: expected epochs to be a non-negative integer, received {epochs!r}.")
        verbose = _verbosity(verbose)
        x, y = self._prepare_xy(x, y, "fit")
        if len(x) == 0:
            raise ValueError("fit: x holds no samples.")
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("fit: expected validation_data=(x_val, y_val).")
            x_val, y_val = self._prepare_xy(*validation_data, "fit(validation_data)")
        elif validation_split:
            if not 0 < validation_split < 1:
                raise ValueError(f"fit: expected validation_split in (0, 1), received {validation_split!r}.")
            cut = int(len(x) * (1 - validation_split))
            if cut == 0 or cut == len(x):
                raise ValueError(
                    f"fit: validation_split={validation_split} leaves no training or no validation samples of {len(x)}."
                )
            x, x_val, y, y_val = x[:cut], x[cut:], y[:cut], y[cut:]
        else:
            x_val = y_val = None
        self._bind_parameters()

        history = History()
        self.history = history
        steps = math.ceil(len(x) / batch_size)
        history.params = {"verbose": verbose, "epochs": epochs, "steps": steps}
        all_callbacks = [history, *(callbacks or [])]
        for cb in all_callbacks:
            cb.set_model(self)
        self.stop_training = False
        for cb in all_callbacks:
            cb.on_train_begin()
        compiled_step = DenseStep(self) if DenseStep.applies(self, config.float_dtype()) else None
        with self._thread_plan(compiled_step is not None):
            self._fit_epochs(
                x, y, x_val, y_val, batch_size, epochs, initial_epoch, shuffle, verbose, all_callbacks, compiled_step
            )
        for cb in all_callbacks:
            cb.on_train_end()
        return history

    def _fit_epochs(
        self, x, y, x_val, y_val, batch_size, epochs, initial_epoch, shuffle, verbose, all_callbacks, compiled_step
    ) -> None:
        steps = math.ceil(len(x) / batch_size)
        floatx = config.floatx()
        for epoch in range(initial_epoch, epochs):
            for cb in all_callbacks:
                cb.on_epoch_begin(epoch)
            if verbose:
                print(f"Epoch {epoch + 1}/{epochs}")
            bar = Progbar(steps, verbose=verbose)
            order = generator().permutation(len(x)) if shuffle else np.arange(len(x))
            loss_sum, counts, seen = 0.0, np.zeros(len(self._metrics)), 0
            logs: dict[str, float] = {}
            for step in range(steps):
                idx = order[step * batch_size : (step + 1) * batch_size]
                if shuffle:
                    idx = np.sort(idx)  # same batch contents, friendlier memory access
                xb = x[idx].astype(floatx, copy=False)
                yb = y[idx]
                for cb in all_callbacks:
                    cb.on_train_batch_begin(step)
                if compiled_step is not None:
                    with _defer_interrupt():  # this step also updates the weights
                        values, out = compiled_step.run(xb, yb)
                else:
                    values, out = self._train_step(xb, yb)
                if not np.all(np.isfinite(values)):
                    warnings.warn(
                        f"fit: the loss became NaN or infinite at epoch {epoch + 1}, step {step + 1}; "
                        "training stopped and the weights are those after the last finite step. "
                        "Try a smaller learning_rate or scaled inputs (x / 255).",
                        TrainingStopped,
                        stacklevel=2,
                    )
                    self.stop_training = True
                    break
                if compiled_step is None:
                    with _defer_interrupt():
                        self.optimizer.apply(self._flat, self._flat_grads)
                loss_sum += float(values.sum())
                counts += [float(fn(yb, out).sum()) for _, fn in self._metrics]
                seen += len(idx)
                logs = {
                    "loss": loss_sum / seen,
                    **{n: c / seen for (n, _), c in zip(self._metrics, counts, strict=True)},
                }
                for cb in all_callbacks:
                    cb.on_train_batch_end(step, logs)
                bar.update(step + 1, logs)
            if self.stop_training and not logs:
                break
            if x_val is not None:
                with self._thread_plan():
                    val_loss, val_mets = self._evaluate_arrays(x_val, y_val)
                logs["val_loss"] = val_loss
                logs.update({f"val_{n}": v for (n, _), v in zip(self._metrics, val_mets, strict=True)})
            bar.update(step + 1 if steps else 0, logs, finalize=True)
            for cb in all_callbacks:
                cb.on_epoch_end(epoch, logs)
            if self.stop_training:
                break

    # ------------------------------------------------------------ evaluate
    def _evaluate_arrays(self, x: np.ndarray, y: np.ndarray, chunk: int | None = None) -> tuple[float, list[float]]:
        chunk = chunk or self._chunk_size(x.shape[1:])
        fused = self._loss_from_logits()
        loss_sum, counts = 0.0, np.zeros(len(self._metrics))
        floatx = config.floatx()
        last = self._layers[-1]
        for start in range(0, len(x), chunk):
            xb = x[start : start + chunk].astype(floatx, copy=False)
            yb = y[start : start + chunk]
            out = self._forward_inference_upto(xb, len(self._layers) - 1)
            logits = None
            if fused:
                out = last.forward(out, training=True)  # keeps the logits for the loss
                logits = last.last_logits
                last.release()
            else:
                out = last.forward(out, training=False)
            values, _ = self.loss.value_and_grad(yb, out, logits)
            loss_sum += float(values.sum())
            counts += [float(fn(yb, out).sum()) for _, fn in self._metrics]
        n = max(len(x), 1)
        return loss_sum / n, [float(c / n) for c in counts]

    def _forward_inference_upto(self, x: np.ndarray, stop: int) -> np.ndarray:
        for layer in self._layers[:stop]:
            x = layer.forward(x, training=False)
            layer.release()
        return x

    def evaluate(
        self,
        x: Any = None,
        y: Any = None,
        batch_size: int | None = 32,
        verbose: Any = "auto",
        return_dict: bool = False,
    ) -> Any:
        """Loss and metrics on ``(x, y)``: ``[loss, accuracy]`` (a scalar with no metrics)."""
        self._require_compiled("evaluate")
        batch_size = 32 if batch_size is None else batch_size
        _check_batch_size(batch_size)
        verbose = _verbosity(verbose)
        x, y = self._prepare_xy(x, y, "evaluate")
        start = time.perf_counter()
        with self._thread_plan():
            loss, mets = self._evaluate_arrays(x, y)
        steps = math.ceil(len(x) / batch_size)
        logs = {"loss": loss, **{n: v for (n, _), v in zip(self._metrics, mets, strict=True)}}
        if verbose:
            bar = Progbar(steps, verbose=verbose)
            bar.start = start
            bar.update(steps, logs, finalize=True)
        return logs if return_dict else self._results(loss, mets)

    # ------------------------------------------------------------ saving
    def save(self, path: Any) -> Any:
        """Write architecture, weights and optimizer state to one file (see :mod:`cnnlab.saving`)."""
        from cnnlab.saving import save_model

        return save_model(self, path, self.metadata)

    # ------------------------------------------------------------ config
    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "input_shape": None if self._input_shape is None else list(self._input_shape[1:]),
            "layers": [{"class_name": type(layer).__name__, "config": layer.get_config()} for layer in self._layers],
        }

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> Sequential:
        from cnnlab import layers as layers_mod

        model = cls(name=cfg.get("name"))
        if cfg.get("input_shape") is not None:
            model.add(layers_mod.Input(tuple(cfg["input_shape"])))
        for item in cfg["layers"]:
            layer_cls = getattr(layers_mod, item["class_name"], None)
            if layer_cls is None or not (isinstance(layer_cls, type) and issubclass(layer_cls, Layer)):
                raise ValueError(f"from_config: unknown layer class {item['class_name']!r}.")
            model.add(layer_cls.from_config(item["config"]))
        return model


Model = Sequential


def load_model(path: Any, compile: bool = True) -> Sequential:
    """Load a model written by ``model.save(path)`` (``keras.models.load_model``)."""
    from cnnlab.saving import load_model as _load

    return _load(path, compile=compile)


def _bytes(n: int) -> str:
    """Keras's size suffix: ``56.99 KB``, ``4.38 MB``."""
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.2f} {unit}"
        value /= 1024
    return f"{value:.2f} GB"


def _shape_hint(shape: tuple[int, ...], expected: tuple[int | None, ...]) -> str:
    if tuple(shape) == tuple(expected):
        return " It looks like a single sample: add the batch axis with x[None]."
    if expected and expected[-1] == 1 and tuple(shape[1:]) == tuple(expected[:-1]):
        return " The channel axis is missing: use x[..., None] (or x.reshape(-1, *shape))."
    return ""


def _check_batch_size(batch_size: Any) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"expected batch_size to be a positive integer, received {batch_size!r}.")


def _verbosity(verbose: Any) -> int:
    if verbose == "auto":
        return 1
    if verbose in (0, 1, 2):
        return int(verbose)
    raise ValueError(f"expected verbose to be 'auto', 0, 1 or 2, received {verbose!r}.")


__all__ = ["Sequential", "Model", "TrainingStopped", "load_model"]
