"""``Sequential``: a stack of layers with Keras's ``compile / fit / evaluate / predict``.

The container holds the layers, checks inputs and labels, and hands the work to its engine
(:mod:`cnnlab.engine`): the flat parameter store, the execution plan and the loops. A
``Sequential`` is itself a layer, so one model can be nested in another, as in Keras.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from cnnlab import config
from cnnlab import losses as losses_mod
from cnnlab import metrics as metrics_mod
from cnnlab import optimizers as optimizers_mod
from cnnlab.callbacks import Callback, History
from cnnlab.engine import Engine, TrainingStopped
from cnnlab.engine.checks import as_array, check_batch_size, check_finite, shape_hint, verbosity
from cnnlab.errors import InvalidArgumentError, NotReadyError, ShapeError
from cnnlab.layers.base import Layer, Shape, format_shape
from cnnlab.layers.symbolic import KerasTensor, call_symbolic, involves_symbolic
from cnnlab.models.summary import summary_html, summary_lines, summary_repr
from cnnlab.progress import Progbar


class Sequential(Layer):
    """A linear stack of layers, like ``keras.Sequential``; itself a layer, so a ``Sequential``
    can be one layer of another (its weights then train with the outer model's).

    >>> from cnnlab.layers import Dense, Flatten
    >>> model = Sequential([Flatten(), Dense(3)], name="demo_model")
    >>> model(np.zeros((2, 2, 2))).shape
    (2, 3)
    >>> model.count_params()
    15
    """

    #: ``writer(model, path, metadata)`` and ``reader(path, compile)``, set by :mod:`cnnlab.saving`
    #: when it is imported (saving imports models, never the reverse)
    _file_writer: Any = None
    _file_reader: Any = None
    #: ``format -> exporter(model, filepath, verbose, **options)``, filled by :mod:`cnnlab.onnx_export`
    #: when it is imported (it imports models, never the reverse)
    _exporters: dict[str, Any] = {}

    def __init__(self, layers: list[Layer] | None = None, name: str | None = None, trainable: bool = True) -> None:
        super().__init__(name=name, trainable=trainable)
        if layers is not None and not isinstance(layers, (list, tuple)):
            raise InvalidArgumentError(
                f"Sequential: expected a list of layers, e.g. Sequential([Dense(2)]), received {type(layers).__name__}."
            )
        self._layers: list[Layer] = []
        self._input_shape: Shape | None = None
        self.optimizer: optimizers_mod.Optimizer | None = None
        self.loss: losses_mod.Loss | None = None
        self._metrics: list[tuple[str, Any]] = []
        self.compiled = False
        self.stop_training = False
        self.history: History | None = None
        #: the epoch a callback (BackupAndRestore) asks ``fit`` to start from
        self._initial_epoch: int | None = None
        self._engine = Engine(self)
        #: free-form facts kept with the model file (e.g. input preprocessing)
        self.metadata: dict[str, Any] = {}
        for layer in layers or []:
            self.add(layer)

    # ------------------------------------------------------------ structure
    @property
    def layers(self) -> list[Layer]:
        return list(self._layers)

    def _leaves(self, trainable: bool = True) -> list[tuple[Layer, bool]]:
        """The leaf layers in forward order (nested models expanded), each with its effective
        trainability (a layer in a frozen model is frozen)."""
        on = trainable and self.trainable
        out: list[tuple[Layer, bool]] = []
        for layer in self._layers:
            out.extend(layer._leaves(on))
        return out

    def _leaf_weights(self) -> list[tuple[np.ndarray, bool]]:
        out = []
        for layer, on in self._leaves():
            keys = set(layer.trainable_keys(on))
            out.extend((w, key in keys) for key, w in layer._weights.items())
        return out

    @property
    def _is_graph(self) -> bool:
        """Whether a layer is a graph model: the engine then plans the whole model as a graph."""
        return any(getattr(layer, "_is_graph", False) for layer in self._layers)

    def _input_count(self) -> int:
        return 1

    def _expand_graph(self, trainable: bool, in_slots: list[int], expand: Any) -> list[int]:
        """Add this model's layers to an engine graph, one after another (:mod:`cnnlab.engine.graph`)."""
        on = trainable and self.trainable
        slots = in_slots
        for layer in self._layers:
            slots = expand(layer, on, slots)
        return slots

    def add(self, layer: Layer) -> None:
        """Append a layer (an ``Input(...)`` first declares the input shape)."""
        if isinstance(layer, KerasTensor) and getattr(layer.node.layer, "declares_input", False):
            layer = layer.node.layer  # cl.Input(shape) as the first item, as in Keras
        if not isinstance(layer, Layer):
            raise InvalidArgumentError(
                f"Sequential.add: expected a layer such as cl.layers.Dense(10), received {type(layer).__name__}."
            )
        if layer is self:
            raise InvalidArgumentError(f'Sequential.add: a model cannot contain itself ("{self.name}").')
        if layer.declares_input:
            if self._layers:
                raise InvalidArgumentError("Sequential.add: an Input must come before every other layer.")
            self._input_shape = (None, *layer.shape)
        else:
            if not self._layers and layer.input_shape_arg is not None:
                self._input_shape = (None, *layer.input_shape_arg)
            if not self._layers and isinstance(layer, Sequential) and layer._input_shape is not None:
                self._input_shape = layer._input_shape
            if any(existing is layer for existing in self._layers):
                raise InvalidArgumentError(f'Sequential.add: layer "{layer.name}" is already in the model.')
            names = {existing.name for existing in self._layers}
            if layer.name in names:
                raise InvalidArgumentError(
                    f'Sequential.add: the model already has a layer named "{layer.name}"; layer names must be unique.'
                )
            self._layers.append(layer)
        self.built = False
        self._engine.invalidate()
        if self._input_shape is not None:
            try:
                self.build(self._input_shape)
            except ShapeError:
                if not layer.declares_input:  # a layer that does not fit leaves the model as it was
                    self._layers.pop()
                    self.build(self._input_shape)
                raise

    def get_layer(self, name: str | None = None, index: int | None = None) -> Layer:
        """A layer by name or position, as ``keras.Model.get_layer``."""
        if index is not None:
            if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
                raise InvalidArgumentError(f"get_layer: expected index to be an integer, received {index!r}.")
            if not -len(self._layers) <= index < len(self._layers):
                raise InvalidArgumentError(
                    f"get_layer: index {index} is out of range; the model has {len(self._layers)} layers."
                )
            return self._layers[index]
        for layer in self._layers:
            if layer.name == name:
                return layer
        names = ", ".join(layer.name for layer in self._layers)
        raise InvalidArgumentError(f"get_layer: no layer named {name!r}. Layers: {names}.")

    def build(self, input_shape: Shape) -> None:
        """Create every layer's weights for inputs of ``input_shape`` (batch axis included)."""
        shape = tuple(input_shape)
        for layer in self._layers:
            if not layer.built:
                layer.build(shape)
            else:
                layer.check_prebuilt_shape(shape, f'Sequential "{self.name}"')
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
            raise InvalidArgumentError(f'Model "{self.name}" has no defined input shape yet: call it on data first.')
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
    def weights(self) -> list[np.ndarray]:
        return [w for layer in self._layers for w in layer.weights]

    @property
    def trainable_weights(self) -> list[np.ndarray]:
        return [w for w, on in self._leaf_weights() if on]

    @property
    def non_trainable_weights(self) -> list[np.ndarray]:
        return [w for w, on in self._leaf_weights() if not on]

    def get_weights(self) -> list[np.ndarray]:
        return [w.copy() for w in self.weights]

    def count_params(self) -> int:
        return int(sum(layer.count_params() for layer in self._layers))

    def set_weights(self, weights: list[Any]) -> None:
        """Set every layer's weights from a flat list in layer order (as ``get_weights`` returns)."""
        if not self.built:
            raise InvalidArgumentError(
                f'Model "{self.name}" is not built yet: call it on data (or build it) before set_weights.'
            )
        expected = sum(len(layer.weights) for layer in self._layers)
        if not isinstance(weights, (list, tuple)) or len(weights) != expected:
            got = len(weights) if isinstance(weights, (list, tuple)) else type(weights).__name__
            raise InvalidArgumentError(
                f'Model "{self.name}" expects a list of {expected} weight arrays, received {got}.'
            )
        start = 0
        for layer in self._layers:
            count = len(layer.weights)
            if count:
                layer.set_weights(list(weights[start : start + count]))
            start += count

    # ------------------------------------------------------------ as a layer of another model
    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        for layer in self._layers:
            x = layer.forward(x, training=training)
            if not training:
                layer.release()
        return x

    def backward(self, dy: np.ndarray, need_dx: bool = True, from_logits: bool = False) -> np.ndarray | None:
        for index in range(len(self._layers) - 1, -1, -1):
            layer = self._layers[index]
            if index == len(self._layers) - 1 and from_logits:
                dy = layer.backward(dy, need_dx=need_dx or index > 0, from_logits=True)
            else:
                dy = layer.backward(dy, need_dx=need_dx or index > 0)
        return dy

    def release(self) -> None:
        for layer in self._layers:
            layer.release()

    @property
    def activation(self) -> Any:
        """The last layer's activation (the loss reads logits through it)."""
        return getattr(self._layers[-1], "activation", None) if self._layers else None

    @property
    def last_logits(self) -> Any:
        return getattr(self._layers[-1], "last_logits", None) if self._layers else None

    def work_bytes_per_sample(self, input_shape: tuple[int, ...]) -> int:
        total, shape = 0, tuple(input_shape)
        for layer in self._layers:
            total += layer.work_bytes_per_sample(shape)
            shape = layer.compute_output_shape(shape)  # type: ignore[assignment]
        return total

    def check_built_shape(self, x: np.ndarray) -> None:
        if self._layers:
            self._layers[0].check_built_shape(x)

    # ------------------------------------------------------------ inference
    def check_input(self, x: Any) -> np.ndarray:
        if not self._layers:
            raise InvalidArgumentError(f'Model "{self.name}" has no layers: add some with model.add(...) first.')
        return self._layers[0].check_input(x)

    def _check_sample_shape(self, x: np.ndarray) -> None:
        if self._input_shape is not None and self.built:
            expected = self._input_shape[1:]
            if tuple(x.shape[1:]) != tuple(expected):
                raise ShapeError(
                    f'Model "{self.name}" expects samples of shape {format_shape(expected)} '
                    f"(input {format_shape(self._input_shape)}), received input of shape "
                    f"{tuple(x.shape)}.{shape_hint(x.shape, expected)}"
                )
        for layer, _ in self._leaves():
            if layer.built:
                layer.check_built_shape(x)
            break

    def _prepare_input(self, x: Any) -> np.ndarray:
        x = self.check_input(as_array(x, "x"))
        if x.ndim == 0:
            raise InvalidArgumentError("x: expected a batch of samples, received a scalar.")
        if not self.built:
            self.build((None, *x.shape[1:]))
        self._check_sample_shape(x)
        return x

    def __call__(self, x: Any, training: bool = False) -> Any:
        """Run all layers on ``x``; large batches go through in chunks, so only the output is full size.
        On a symbolic tensor (``cl.Input``): a node of a functional model."""
        if involves_symbolic(x):
            return call_symbolic(self, x)
        return self._engine.predict_array(self._prepare_input(x))

    def predict(self, x: Any, batch_size: int = 32, verbose: Any = 0) -> np.ndarray:
        """Outputs for every sample of ``x`` (computed in memory-bounded chunks)."""
        check_batch_size(batch_size)
        return self._engine.predict_array(self._prepare_input(x))

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
        for text in summary_lines(self):
            emit(text)

    def __repr__(self) -> str:
        return summary_repr(self)

    def _repr_html_(self) -> str:
        """Jupyter's rich display: the summary table."""
        return summary_html(self)

    # ------------------------------------------------------------ training set-up
    def compile(self, optimizer: Any = "rmsprop", loss: Any = None, metrics: Any = None) -> None:
        """Choose optimizer, loss and metrics (names or objects, as in Keras)."""
        if loss is None:
            raise InvalidArgumentError(
                "compile: a loss is required, e.g. loss='categorical_crossentropy' "
                "(one-hot labels) or 'sparse_categorical_crossentropy' (integer labels)."
            )
        self.optimizer = optimizers_mod.get(optimizer)
        self.loss = losses_mod.get(loss)
        self._metrics = metrics_mod.resolve(metrics, self.loss.name)
        self.compiled = True
        self._engine.invalidate()

    def _require_compiled(self, what: str) -> None:
        if not self.compiled:
            raise NotReadyError(
                f"{what}: the model must be compiled first, e.g. model.compile(optimizer='adam', "
                "loss='categorical_crossentropy', metrics=['accuracy'])."
            )

    def _prepare_xy(self, x: Any, y: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
        x = self._prepare_input(x)
        y = as_array(y, "y")
        if y.ndim == 0 or len(x) != len(y):
            raise InvalidArgumentError(
                f"{what}: x and y must have the same number of samples; received x with "
                f"{len(x)} and y with {len(y) if y.ndim else 'no'} samples."
            )
        check_finite(x, what)
        y = self.loss.check_labels(y, self.output_shape)
        return x, y

    def plan(self, training: bool = True) -> list[str]:
        """How ``fit`` (or, with ``training=False``, ``predict``) runs this model: one line per
        unit of the execution plan, naming the layers and kernels (see ``cl.config.set_kernels``)."""
        if training:
            self._require_compiled("plan")
        if not self.built:
            raise InvalidArgumentError(f'Model "{self.name}" is not built yet: call it on data first.')
        return self._engine.plan(config.float_dtype(), training).describe()

    # ------------------------------------------------------------ one step
    def train_on_batch(self, x: Any, y: Any) -> Any:
        """One optimizer step on one batch; returns ``[loss, *metrics]`` (a scalar with no metrics)."""
        self._require_compiled("train_on_batch")
        x, y = self._prepare_xy(x, y, "train_on_batch")
        if len(x) == 0:
            raise InvalidArgumentError("train_on_batch: x holds no samples.")
        engine = self._engine
        plan = engine.plan(config.float_dtype(), training=True)
        with plan.threads():
            values, out, updated = engine.train_batch(plan, x.astype(config.floatx(), copy=False), y)
        if not updated:
            raise FloatingPointError("train_on_batch: the loss is NaN or infinite; the weights were not updated.")
        mets = [metric(y, out) for _, metric in self._metrics]
        return self._results(float(values.mean()) + engine.penalty, mets)

    def test_on_batch(self, x: Any, y: Any) -> Any:
        """Loss and metrics on one batch, without updating weights."""
        self._require_compiled("test_on_batch")
        x, y = self._prepare_xy(x, y, "test_on_batch")
        if len(x) == 0:
            raise InvalidArgumentError("test_on_batch: x holds no samples.")
        loss, mets = self._engine.evaluate_arrays(x, y, chunk=len(x))
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
        class_weight: dict[int, float] | None = None,
        sample_weight: Any = None,
        initial_epoch: int = 0,
    ) -> History:
        """Train like ``keras.Model.fit``; returns a :class:`History`.

        ``sample_weight`` (one weight per sample) or ``class_weight`` (``{class: weight}``, classes
        not named weigh 1) weight each sample's loss as Keras does: the batch loss is
        ``sum(w_i * loss_i) / batch_size``; the metrics stay unweighted (Keras 3 weights only
        ``weighted_metrics``).

        ``validation_split`` holds out the *last* fraction of the samples (before
        shuffling), as Keras does. If the loss becomes NaN or infinite, training stops
        at that step with a warning naming epoch and step, keeping the weights of the
        last finite step. Ctrl-C never leaves half-updated weights; the history so far
        is kept on ``model.history``. Layers with ``trainable = False`` keep their weights.
        """
        self._require_compiled("fit")
        batch_size = 32 if batch_size is None else batch_size
        check_batch_size(batch_size)
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise InvalidArgumentError(f"fit: expected epochs to be a non-negative integer, received {epochs!r}.")
        if isinstance(initial_epoch, bool) or not isinstance(initial_epoch, (int, np.integer)) or initial_epoch < 0:
            raise InvalidArgumentError(
                f"fit: expected initial_epoch to be a non-negative integer, received {initial_epoch!r}."
            )
        verbose = verbosity(verbose)
        x, y = self._prepare_xy(x, y, "fit")
        if len(x) == 0:
            raise InvalidArgumentError("fit: x holds no samples.")
        weights = fit_sample_weights(y, sample_weight, class_weight, self.loss.sparse_labels)
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise InvalidArgumentError("fit: expected validation_data=(x_val, y_val).")
            x_val, y_val = self._prepare_xy(*validation_data, "fit(validation_data)")
            if len(x_val) == 0:
                raise InvalidArgumentError(
                    "fit(validation_data): x_val holds no samples; pass some or leave validation out."
                )
        elif validation_split:
            if isinstance(validation_split, (bool, str)) or not 0 < validation_split < 1:
                raise InvalidArgumentError(f"fit: expected validation_split in (0, 1), received {validation_split!r}.")
            cut = int(len(x) * (1 - validation_split))
            if cut == 0 or cut == len(x):
                raise InvalidArgumentError(
                    f"fit: validation_split={validation_split} leaves no training or no validation samples of {len(x)}."
                )
            x, x_val, y, y_val = x[:cut], x[cut:], y[:cut], y[cut:]
            weights = None if weights is None else weights[:cut]
        else:
            x_val = y_val = None

        history = History()
        self.history = history
        steps = math.ceil(len(x) / batch_size)
        history.params = {"verbose": verbose, "epochs": epochs, "steps": steps}
        # Keras's CallbackList appends History after the user's callbacks, so values they add to the
        # logs (ReduceLROnPlateau's learning_rate) reach the history
        all_callbacks = [*(callbacks or []), history]
        for cb in all_callbacks:
            cb.set_model(self)
        self.stop_training = False
        self._initial_epoch = None
        for cb in all_callbacks:
            cb.on_train_begin()
        if self._initial_epoch is not None:  # set by BackupAndRestore when it resumes
            initial_epoch = self._initial_epoch
        validation = None if x_val is None else (x_val, y_val)
        self._engine.fit_epochs(
            x, y, validation, batch_size, epochs, initial_epoch, shuffle, verbose, all_callbacks, weights
        )
        for cb in all_callbacks:
            cb.on_train_end()
        return history

    @property
    def kernel_compile_seconds(self) -> float:
        """Seconds the last ``fit`` spent compiling kernels (first run on a CPU; 0 once cached)."""
        return self._engine.compile_seconds

    # ------------------------------------------------------------ evaluate
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
        check_batch_size(batch_size)
        verbose = verbosity(verbose)
        x, y = self._prepare_xy(x, y, "evaluate")
        if len(x) == 0:
            raise InvalidArgumentError("evaluate: x holds no samples; a loss over no samples is undefined.")
        start = time.perf_counter()
        loss, mets = self._engine.evaluate_arrays(x, y)
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
        return type(self)._file_writer(self, path, self.metadata)

    def export(self, filepath: Any, format: str = "onnx", verbose: Any = None, **options: Any) -> Any:
        """Write the model for another runtime, like Keras 3's ``model.export(filepath, format=...)``.

        ``format="onnx"`` (the only format cnnlab writes, hence the default; Keras's default
        ``"tf_saved_model"`` needs TensorFlow) writes an ONNX graph of the model's predictions
        (see :mod:`cnnlab.onnx_export`; option ``opset_version``, 13 to 17). Returns the path.
        """
        exporter = type(self)._exporters.get(format) if isinstance(format, str) else None
        if exporter is None:
            known = ", ".join(repr(name) for name in sorted(type(self)._exporters)) or "'onnx'"
            hint = (
                " For TensorFlow, OpenVINO or LiteRT, save the model as a Keras file and export it from Keras."
                if format in ("tf_saved_model", "openvino", "litert", "tflite")
                else ""
            )
            raise InvalidArgumentError(f"export: unknown format {format!r}; cnnlab exports format={known}.{hint}")
        return exporter(self, filepath, verbose=verbose, **options)

    # ------------------------------------------------------------ config
    def get_config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {
            "name": self.name,
            "input_shape": None if self._input_shape is None else list(self._input_shape[1:]),
            "layers": [{"class_name": type(layer).__name__, "config": layer.get_config()} for layer in self._layers],
        }
        if not self.trainable:
            cfg["trainable"] = False
        return cfg

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> Sequential:
        from cnnlab import layers as layers_mod

        model = cls(name=cfg.get("name"), trainable=cfg.get("trainable", True))
        if cfg.get("input_shape") is not None:
            model.add(layers_mod.Input(tuple(cfg["input_shape"])))
        for item in cfg["layers"]:
            name = item["class_name"]
            layer_cls = Sequential if name == "Sequential" else getattr(layers_mod, name, None)
            if layer_cls is None or not (isinstance(layer_cls, type) and issubclass(layer_cls, Layer)):
                raise InvalidArgumentError(f"from_config: unknown layer class {name!r}.")
            model.add(layer_cls.from_config(item["config"]))
        return model


def fit_sample_weights(
    y: np.ndarray, sample_weight: Any, class_weight: dict[int, float] | None, sparse: bool
) -> np.ndarray | None:
    """One float weight per sample from ``sample_weight`` or ``class_weight`` (Keras: not both;
    a class not in ``class_weight`` weighs 1; one-hot labels give their argmax class)."""
    if sample_weight is not None and class_weight is not None:
        raise ValueError(
            "fit: you cannot use class_weight and sample_weight at the same time; fold the class weights "
            "into sample_weight instead."
        )
    if class_weight is not None:
        if not isinstance(class_weight, dict):
            raise ValueError(
                "fit: expected class_weight to be a dict {class index: weight}, received "
                f"{type(class_weight).__name__}."
            )
        labels = y if sparse or y.ndim == 1 else (y.argmax(axis=-1) if y.shape[-1] != 1 else y[..., 0])
        labels = np.round(labels).astype(np.int64).reshape(len(y), -1)[:, 0]
        table = {int(k): float(v) for k, v in class_weight.items()}
        return np.array([table.get(int(c), 1.0) for c in labels], dtype=config.floatx())
    if sample_weight is None:
        return None
    weights = np.asarray(sample_weight, dtype=config.floatx())
    if weights.ndim != 1 or len(weights) != len(y):
        raise ValueError(
            f"fit: expected sample_weight of shape ({len(y)},), one weight per sample, received shape {weights.shape}."
        )
    if not np.all(np.isfinite(weights)):
        raise ValueError("fit: sample_weight holds NaN or infinite values.")
    return weights


__all__ = ["Sequential", "TrainingStopped"]
