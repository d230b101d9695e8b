"""``cl.Model(inputs, outputs)``: Keras's functional API, a model over a graph of layer calls.

>>> import numpy as np
>>> import cnnlab as cl
>>> x = cl.Input((4,), name="doc_in")
>>> h = cl.layers.Dense(4, activation="relu", name="doc_h")(x)
>>> y = cl.layers.Add(name="doc_add")([h, x])          # a residual connection
>>> model = cl.Model(x, y, name="doc_residual")
>>> [layer.name for layer in model.layers]
['doc_in', 'doc_h', 'doc_add']
>>> model.predict(np.zeros((2, 4))).shape
(2, 4)

What is supported: any acyclic graph of cnnlab layers and merge layers; layers shared between
branches (their weight gradient is the sum over their calls); several inputs (``fit``/``predict``
take a list of arrays, in the order of ``inputs``) and several outputs (``predict`` returns a
list; ``fit``/``evaluate`` take a list of label arrays and apply the *one* compiled loss to every
output, the total loss being their sum, as Keras does with one loss for several outputs; metrics
need a single output); models (Sequential or functional) used as layers. Training goes through
the engine's graph plan (:mod:`cnnlab.engine.graph`).

Errors are Keras's: an output that needs an input not given ("Graph disconnected"), an input no
output depends on (Keras only warns later; cnnlab has no ``add_loss``, so it refuses), a cycle
(cannot be built with symbolic tensors, checked anyway), two layers of one name, merge inputs of
different shapes (naming both), a layer called on symbolic tensors mixed with arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from cnnlab import config
from cnnlab.engine.checks import ArrayGroup, as_array, check_finite, shape_hint
from cnnlab.errors import InvalidArgumentError
from cnnlab.layers.base import Layer, Shape, format_shape, unique_name
from cnnlab.layers.symbolic import KerasTensor, Node, _as_symbolic, call_symbolic, involves_symbolic
from cnnlab.models.sequential import Sequential


def _tensor_list(value: Any, what: str) -> tuple[list[KerasTensor], bool]:
    """``(tensors, given as a list)``, each checked to be symbolic."""
    as_list = isinstance(value, (list, tuple))
    items = [_as_symbolic(v) for v in (value if as_list else [value])]
    if not items:
        raise InvalidArgumentError(f"Model: expected at least one tensor in {what}, received an empty list.")
    for item in items:
        if not isinstance(item, KerasTensor):
            raise InvalidArgumentError(
                f"Model: {what} must be symbolic tensors (from cl.Input(...) and layers called on them), "
                f"received {type(item).__name__}."
            )
    return items, as_list


class Model(Sequential):
    """A model over a graph of layers, like ``keras.Model(inputs, outputs)``.

    ``inputs``: a tensor from ``cl.Input(shape)`` or a list of them; ``outputs``: a tensor made by
    calling layers on them, or a list. ``model.layers`` lists the layers in Keras's order (input
    layers first, then by depth), each once even when called several times.
    """

    #: a graph: the engine plans it as node steps over slots
    _is_graph = True
    is_graph_model = True

    def __init__(self, inputs: Any, outputs: Any, name: str | None = None, trainable: bool = True) -> None:
        super().__init__(None, name=name or unique_name("functional"), trainable=trainable)
        self._inputs, self._multi_input = _tensor_list(inputs, "inputs")
        self._outputs, self._multi_output = _tensor_list(outputs, "outputs")
        for tensor in self._inputs:
            if tensor.node.inputs:
                raise InvalidArgumentError(
                    f"Model: every input must come straight from cl.Input(...); {tensor!r} is made by layer "
                    f'"{tensor.node.layer.name}". Pass the cl.Input tensor instead.'
                )
        self._nodes, self._layers = _map_graph(self._inputs, self._outputs)
        self._input_shape = self._inputs[0].shape if not self._multi_input else None
        self.build_input_shape = self.input_shape
        self.built = True

    # ------------------------------------------------------------ structure
    def _input_count(self) -> int:
        return len(self._inputs)

    @property
    def inputs(self) -> list[KerasTensor]:
        return list(self._inputs)

    @property
    def outputs(self) -> list[KerasTensor]:
        return list(self._outputs)

    @property
    def input_shape(self) -> Any:
        shapes = [t.shape for t in self._inputs]
        return shapes if self._multi_input else shapes[0]

    @property
    def output_shape(self) -> Any:
        shapes = [t.shape for t in self._outputs]
        return shapes if self._multi_output else shapes[0]

    def compute_output_shape(self, input_shape: Any) -> Any:
        self._check_call_shapes(input_shape)
        return self.output_shape

    def _check_call_shapes(self, input_shape: Any) -> None:
        """Called as a layer on symbolic tensors of ``input_shape``: they must fit the inputs."""
        shapes = input_shape if self._multi_input else [input_shape]
        if not isinstance(shapes, list) or len(shapes) != len(self._inputs):
            raise InvalidArgumentError(
                f'Model "{self.name}" expects {len(self._inputs)} input(s), received {len(shapes)}.'
            )
        for tensor, shape in zip(self._inputs, shapes, strict=True):
            if tuple(shape)[1:] != tensor.shape[1:]:
                raise InvalidArgumentError(
                    f'Input "{tensor.node.layer.name}" of model "{self.name}" is incompatible with the model: '
                    f"expected shape {format_shape(tensor.shape)}, received {format_shape(tuple(shape))}."
                )

    def build(self, input_shape: Shape) -> None:
        """A functional model is built when it is made (its layers were built by their calls)."""
        self._check_call_shapes(input_shape)

    def add(self, layer: Layer) -> None:
        raise InvalidArgumentError(
            f'Model "{self.name}" is a functional model: its layers are fixed when it is made. Call the new '
            "layer on model.outputs and make a new cl.Model(inputs, outputs) instead."
        )

    def _leaves(self, trainable: bool = True) -> list[tuple[Layer, bool]]:
        """Each leaf layer once (a shared layer too), in Keras's order, with its effective trainability."""
        on = trainable and self.trainable
        out: list[tuple[Layer, bool]] = []
        seen: set[int] = set()
        for layer in self._layers:
            for leaf, leaf_on in layer._leaves(on):
                if id(leaf) not in seen:
                    seen.add(id(leaf))
                    out.append((leaf, leaf_on))
        return out

    def _expand_graph(self, trainable: bool, in_slots: list[int], expand: Callable[..., list[int]]) -> list[int]:
        """Add this model's layer calls to an engine graph (:func:`cnnlab.engine.graph.expand`)."""
        on = trainable and self.trainable
        slot = {id(t): s for t, s in zip(self._inputs, in_slots, strict=True)}
        for node in self._nodes:
            ins = [slot[id(t)] for t in node.inputs]
            outs = expand(node.layer, on, ins, node.list_call)
            for tensor, s in zip(node.outputs, outs, strict=True):
                slot[id(tensor)] = s
        return [slot[id(t)] for t in self._outputs]

    def _node_inputs(self, node: Node) -> list[str]:
        """``name[node][tensor]`` of each input of ``node`` (Keras's "Connected to")."""
        # a functional model counts Keras's built-in first node (as its config does)
        return [
            f"{t.node.layer.name}[{_node_index(t) + int(getattr(t.node.layer, 'is_graph_model', False))}][{t.index}]"
            for t in node.inputs
        ]

    # ------------------------------------------------------------ running
    def __call__(self, x: Any, training: bool = False) -> Any:
        """On symbolic tensors: a node of an outer model. On arrays: ``predict``."""
        if involves_symbolic(x):
            return call_symbolic(self, x)
        return self._engine.predict_array(self._prepare_input(x))

    def predict(self, x: Any, batch_size: int = 32, verbose: Any = 0) -> Any:
        """Outputs for every sample; several inputs are a list of arrays, several outputs a list."""
        return super().predict(x, batch_size, verbose)

    def forward(self, x: Any, training: bool = False) -> Any:
        from cnnlab.engine import graph as graph_mod

        plan = self._engine.plan(config.float_dtype(), training=False)
        group = x if isinstance(x, ArrayGroup) else ArrayGroup(x if isinstance(x, list) else [x])
        slots = graph_mod.run_forward(plan, group.parts, training=False)
        outs = [slots[s] for s in plan.graph.outputs]
        return outs if self._multi_output else outs[0]

    def backward(self, dy: Any, need_dx: bool = True, from_logits: bool = False) -> Any:
        raise NotImplementedError("a functional model inside a model is inlined by the engine's graph plan")

    def release(self) -> None:
        for layer in self._layers:
            layer.release()

    @property
    def activation(self) -> Any:
        return None

    @property
    def last_logits(self) -> Any:
        return None

    def work_bytes_per_sample(self, input_shape: Any) -> int:
        total = 0
        for node in self._nodes:
            shapes = [(1, *t.shape[1:]) for t in node.inputs]
            arg = shapes if node.list_call else shapes[0]
            if not getattr(node.layer, "is_graph_model", False):
                total += node.layer.work_bytes_per_sample(arg) if not node.list_call else 0
            total += sum(int(np.prod(t.shape[1:])) * 8 for t in node.outputs)
        return total

    def _empty_outputs(self) -> Any:
        outs = [np.empty((0, *t.shape[1:]), config.floatx()) for t in self._outputs]
        return outs if self._multi_output else outs[0]

    def check_input(self, x: Any) -> Any:
        """An array for the first (only) input, as a Sequential whose first layer this model is
        passes it: cast to the float type (Keras casts to the input's dtype)."""
        if isinstance(x, (list, tuple, dict, ArrayGroup)):
            return x
        arr = as_array(x, "x")
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise InvalidArgumentError(f"x: expected numbers, received dtype {arr.dtype}.")
        return arr.astype(config.floatx(), copy=False)

    def _prepare_input(self, x: Any) -> ArrayGroup:
        """Inputs as an :class:`ArrayGroup` in the order of ``inputs``, cast to the float type
        (Keras casts to the input's dtype), each checked against its input's shape."""
        if isinstance(x, dict):
            names = [t.node.layer.name for t in self._inputs]
            missing = [n for n in names if n not in x]
            if missing:
                raise InvalidArgumentError(f'Model "{self.name}": no array given for input(s) {missing}.')
            x = [x[n] for n in names]
        items = list(x) if isinstance(x, (list, tuple)) and self._multi_input else [x]
        if len(items) != len(self._inputs):
            raise InvalidArgumentError(
                f'Model "{self.name}" expects {len(self._inputs)} input arrays (a list, in the order of its '
                f"inputs: {', '.join(t.node.layer.name for t in self._inputs)}), received {len(items)}."
            )
        parts = []
        for k, (tensor, item) in enumerate(zip(self._inputs, items, strict=True)):
            what = "x" if not self._multi_input else f"x[{k}]"
            arr = as_array(item, what)
            if arr.ndim == 0:
                raise InvalidArgumentError(f"{what}: expected a batch of samples, received a scalar.")
            if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
                raise InvalidArgumentError(f"{what}: expected numbers, received dtype {arr.dtype}.")
            expected = tensor.shape[1:]
            if tuple(arr.shape[1:]) != tuple(expected):
                raise InvalidArgumentError(
                    f'Model "{self.name}" expects {what} with samples of shape {format_shape(expected)} '
                    f'(input "{tensor.node.layer.name}" {format_shape(tensor.shape)}), received shape '
                    f"{tuple(arr.shape)}.{shape_hint(arr.shape, expected)}"
                )
            parts.append(arr.astype(config.floatx(), copy=False))
        if len({len(p) for p in parts}) > 1:
            raise InvalidArgumentError(
                f'Model "{self.name}": the input arrays must have the same number of samples, received '
                f"{[len(p) for p in parts]}."
            )
        return ArrayGroup(parts)

    def _prepare_xy(self, x: Any, y: Any, what: str) -> tuple[ArrayGroup, Any]:
        group = self._prepare_input(x)
        for part in group.parts:
            check_finite(part, what)
        if self._multi_output:
            if self._metrics:
                raise InvalidArgumentError(
                    f'{what}: model "{self.name}" has {len(self._outputs)} outputs; cnnlab computes metrics for '
                    "one output only. Compile without metrics (the loss is applied to every output)."
                )
            if not isinstance(y, (list, tuple)) or len(y) != len(self._outputs):
                got = len(y) if isinstance(y, (list, tuple)) else type(y).__name__
                raise InvalidArgumentError(
                    f'{what}: model "{self.name}" has {len(self._outputs)} outputs, so y must be a list of '
                    f"{len(self._outputs)} label arrays (one per output, in order), received {got}."
                )
            labels = [self._labels(item, t.shape, group, what) for item, t in zip(y, self._outputs, strict=True)]
            return group, ArrayGroup(labels)
        return group, self._labels(y, self._outputs[0].shape, group, what)

    def _labels(self, y: Any, shape: Shape, group: ArrayGroup, what: str) -> np.ndarray:
        y = as_array(y, "y")
        if y.ndim == 0 or len(group) != len(y):
            raise InvalidArgumentError(
                f"{what}: x and y must have the same number of samples; received x with "
                f"{len(group)} and y with {len(y) if y.ndim else 'no'} samples."
            )
        return self.loss.check_labels(y, shape)

    def fit(self, x: Any = None, y: Any = None, *args: Any, **kwargs: Any) -> Any:
        if self._multi_output and kwargs.get("class_weight") is not None:
            raise InvalidArgumentError(
                "fit: class_weight is not supported for a model with several outputs (Keras neither); "
                "use sample_weight."
            )
        return super().fit(x, y, *args, **kwargs)

    def run_nodes(self, x: Any) -> Any:
        """Yield ``(node, its input (an array or a list for a merge), its output)`` for every layer
        call on ``x`` in topological order, each layer called on arrays (its inference path): what
        ``cl.explain`` and ``cl.trace`` read."""
        group = x if isinstance(x, ArrayGroup) else self._prepare_input(x)
        values = {id(t): part for t, part in zip(self._inputs, group.parts, strict=True)}
        for node in self._nodes:
            args = [values[id(t)] for t in node.inputs]
            arg = args if node.list_call else args[0]
            out = node.layer(arg)
            values[id(node.outputs[0])] = out
            yield node, arg, out

    def layer_input(self, layer: Layer, x: Any) -> Any:
        """The input ``layer`` receives (at its first call) when the model runs on ``x``."""
        for node, arg, _ in self.run_nodes(x):
            if node.layer is layer:
                return arg
        raise InvalidArgumentError(f'Model "{self.name}": layer "{layer.name}" is not called in this model.')

    # ------------------------------------------------------------ summary
    def summary(self, print_fn: Any = None, line_length: int | None = None) -> None:
        """Print the layer table in Keras 3's functional layout (with "Connected to")."""
        from cnnlab.models.summary import functional_summary_lines

        emit = print_fn or print
        for text in functional_summary_lines(self):
            emit(text)

    def _summary_rows(self) -> list[tuple[Layer, Any, list[str]]]:
        """``(layer, output shape, connected-to names)`` per layer, in Keras's order."""
        rows = []
        for layer in self._layers:
            nodes = [n for n in layer._inbound_nodes if n in self._node_set]
            shapes = [n.outputs[0].shape if len(n.outputs) == 1 else [t.shape for t in n.outputs] for n in nodes]
            connected = [name for n in nodes for name in self._node_inputs(n)]
            rows.append((layer, shapes[0] if shapes else None, connected))
        return rows

    @property
    def _node_set(self) -> set[Node]:
        return {t.node for t in self._inputs} | set(self._nodes)

    # ------------------------------------------------------------ config
    def get_config(self) -> dict[str, Any]:
        """Keras 3's functional config: ``{"name", "trainable", "layers": [{"class_name", "config", "name",
        "inbound_nodes": [{"args": [...], "kwargs": {}}]}], "input_layers", "output_layers"}`` with
        cnnlab's layer configs; tensors are ``{"class_name": "__keras_tensor__", "config": {"shape",
        "dtype", "keras_history": [layer name, node index, tensor index]}}``."""
        own = self._node_set
        layers = []
        for layer in self._layers:
            entry: dict[str, Any] = {
                "class_name": _class_name(layer),
                "config": _layer_config(layer),
                "name": layer.name,
                "inbound_nodes": [],
            }
            for node in layer._inbound_nodes:
                if node in own and node.inputs:
                    tensors = [_serialize_tensor(t, own) for t in node.inputs]
                    entry["inbound_nodes"].append({"args": [tensors if node.list_call else tensors[0]], "kwargs": {}})
            layers.append(entry)

        def history(t: KerasTensor) -> list[Any]:
            return [t.node.layer.name, _own_index(t, own), t.index]

        ins = [history(t) for t in self._inputs]
        outs = [history(t) for t in self._outputs]
        return {
            "name": self.name,
            "trainable": self.trainable,
            "layers": layers,
            "input_layers": ins if self._multi_input else ins[0],
            "output_layers": outs if self._multi_output else outs[0],
        }

    @classmethod
    def from_config(
        cls, cfg: dict[str, Any], layer_from_config: Callable[[dict[str, Any]], Layer | None] | None = None
    ) -> Model:
        """Rebuild a model from :meth:`get_config` or from a Keras 3 functional config whose layers
        cnnlab can make. ``layer_from_config(entry)`` (optional) turns one ``layers`` entry into a
        layer (e.g. a Keras-file reader translating Keras layer configs), or returns None to leave
        the entry to cnnlab: input layers (``batch_shape`` or ``shape``), nested ``Functional``
        models (rebuilt with the same hook) and cnnlab configs (layers, ``Sequential``). Nodes are
        replayed in Keras's way: rounds over the layers, each call made once the tensors it needs
        exist; a config whose calls never all resolve has a loop or a disconnected node."""
        created: dict[str, Layer] = {}
        pending: dict[str, list[Any]] = {}
        order: list[str] = []
        for entry in cfg["layers"]:
            layer = layer_from_config(entry) if layer_from_config is not None else None
            if layer is None:
                layer = _default_layer(entry, layer_from_config)
            name = entry.get("name", layer.name)
            created[name] = layer
            order.append(name)
            pending[name] = list(entry.get("inbound_nodes", []))
        while any(pending.values()):
            progressed = False
            for name in order:
                layer = created[name]
                while pending[name]:
                    try:
                        args = _deserialize_node(pending[name][0], created)
                    except IndexError:
                        break
                    layer(args)
                    pending[name].pop(0)
                    progressed = True
            if not progressed:
                unresolved = {n: len(v) for n, v in pending.items() if v}
                raise InvalidArgumentError(
                    "Invalid functional model configuration: the graph either has loops or disconnected nodes. "
                    f"These layers' calls could not be resolved: {unresolved}."
                )

        def tensors(spec: Any) -> Any:
            if isinstance(spec, list) and len(spec) == 3 and isinstance(spec[0], str):
                return _get_tensor(created, *spec)
            return [tensors(s) for s in spec]

        return cls(
            tensors(cfg["input_layers"]),
            tensors(cfg["output_layers"]),
            name=cfg.get("name"),
            trainable=cfg.get("trainable", True) is not False,
        )


# ---------------------------------------------------------------- graph walking
def _node_index(t: KerasTensor) -> int:
    return t.node.layer._inbound_nodes.index(t.node)


def _own_index(t: KerasTensor, own: set[Node]) -> int:
    """The node index counted over the nodes of this model only (Keras's ``serialize_node``); a
    functional model used as a layer counts Keras's built-in first node too."""
    layer = t.node.layer
    index = sum(1 for n in layer._inbound_nodes[: _node_index(t)] if n in own)
    return index + 1 if getattr(layer, "is_graph_model", False) else index


def _serialize_tensor(t: KerasTensor, own: set[Node]) -> dict[str, Any]:
    return {
        "class_name": "__keras_tensor__",
        "config": {
            "shape": list(t.shape),
            "dtype": t.dtype,
            "keras_history": [t.node.layer.name, _own_index(t, own), t.index],
        },
    }


def _get_tensor(created: dict[str, Layer], name: str, node_index: int, tensor_index: int) -> KerasTensor:
    if name not in created:
        raise InvalidArgumentError(f"Invalid functional model configuration: no layer named {name!r}.")
    layer = created[name]
    if getattr(layer, "is_graph_model", False):
        node_index -= 1  # Keras counts a functional model's built-in node
    if getattr(layer, "declares_input", False):
        from cnnlab.layers.symbolic import symbolic_output

        return symbolic_output(layer)
    if node_index >= len(layer._inbound_nodes):
        raise IndexError(node_index)
    return layer._inbound_nodes[node_index].outputs[tensor_index]


def _deserialize_node(data: Any, created: dict[str, Layer]) -> Any:
    """The argument of one layer call: a tensor or a list of tensors (Keras 3's ``{"args", "kwargs"}``
    form, or the legacy list ``[[name, node, tensor, kwargs], ...]``)."""
    if isinstance(data, list):  # legacy (Keras 2 / HDF5) form
        items = [_get_tensor(created, d[0], d[1], d[2]) for d in data]
        return items[0] if len(items) == 1 else items

    def revive(value: Any) -> Any:
        if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
            return _get_tensor(created, *value["config"]["keras_history"])
        if isinstance(value, (list, tuple)):
            return [revive(v) for v in value]
        raise InvalidArgumentError(f"Invalid functional model configuration: a layer call argument {value!r:.80}.")

    args = data.get("args", [])
    if len(args) != 1:
        raise InvalidArgumentError(
            f"Invalid functional model configuration: a layer call with {len(args)} positional arguments; "
            "cnnlab layers take one (a tensor or a list of tensors)."
        )
    return revive(args[0])


def _class_name(layer: Layer) -> str:
    return "Functional" if getattr(layer, "is_graph_model", False) else type(layer).__name__


def _layer_config(layer: Layer) -> dict[str, Any]:
    if getattr(layer, "declares_input", False):
        return {"batch_shape": [None, *layer.shape], "dtype": config.floatx(), "name": layer.name}
    return layer.get_config()


def _default_layer(entry: dict[str, Any], hook: Callable[[dict[str, Any]], Layer | None] | None = None) -> Layer:
    """A cnnlab layer from one ``layers`` entry of a functional config (``hook``: passed on to
    nested functional models)."""
    from cnnlab import layers as layers_mod

    name = entry["class_name"]
    cfg = dict(entry["config"])
    if name == "InputLayer":
        shape = cfg.get("batch_shape")
        shape = shape[1:] if shape is not None else cfg.get("shape")
        return layers_mod.InputLayer(tuple(shape), name=cfg.get("name", entry.get("name")))
    if name in ("Functional", "Model"):
        return Model.from_config(cfg, layer_from_config=hook)
    if name == "Sequential":
        return Sequential.from_config(cfg)
    layer_cls = getattr(layers_mod, name, None)
    if layer_cls is None or not (isinstance(layer_cls, type) and issubclass(layer_cls, Layer)):
        raise InvalidArgumentError(f"from_config: unknown layer class {name!r}.")
    return layer_cls.from_config(cfg)


def _map_graph(inputs: list[KerasTensor], outputs: list[KerasTensor]) -> tuple[list[Node], list[Layer]]:
    """Keras's ``map_graph``: the nodes from the inputs to the outputs in topological order (input
    nodes left out) and the layers in Keras's order (by decreasing depth, ties by first visit in a
    depth-first walk from the outputs). Raises Keras's errors for a cycle, a disconnected graph,
    an unused input and repeated layer names."""
    finished: set[Node] = set()
    in_progress: set[Node] = set()
    order: list[Node] = []
    first_visit: dict[int, int] = {}
    layers_by_id: dict[int, Layer] = {}

    def visit(tensor: KerasTensor) -> None:
        node = tensor.node
        if node in finished:
            return
        if node in in_progress:
            raise InvalidArgumentError(f"Tensor {tensor!r} from layer '{node.layer.name}' is part of a cycle.")
        first_visit.setdefault(id(node.layer), len(first_visit))
        layers_by_id[id(node.layer)] = node.layer
        in_progress.add(node)
        for parent in node.inputs:
            visit(parent)
        in_progress.discard(node)
        finished.add(node)
        order.append(node)

    for output in outputs:
        visit(output)

    computable = {id(t) for t in inputs}
    accessed: list[str] = []
    for node in order:
        if not node.inputs:
            if id(node.outputs[0]) not in computable:
                continue  # an Input not given: an error where it is used (below)
        for t in node.inputs:
            if id(t) not in computable:
                raise InvalidArgumentError(
                    f"Graph disconnected: cannot find parent for tensor {t!r} at layer '{node.layer.name}'. "
                    f"The following previous layers were accessed without issue: {accessed}. Pass the "
                    f'input "{_root_name(t)}" in Model(inputs=[...]) too.'
                )
        accessed.append(node.layer.name)
        for t in node.outputs:
            computable.add(id(t))
    used = {id(t) for node in order for t in node.inputs} | {id(t) for t in outputs}
    for t in inputs:
        if id(t) not in used:
            raise InvalidArgumentError(
                f'Model: input "{t.node.layer.name}" {format_shape(t.shape)} is not connected to the outputs: no '
                "output depends on it. Leave it out of inputs, or use it on the way to an output."
            )

    # depths as in Keras's map_graph
    node_depth: dict[Node, int] = {}
    layer_depth: dict[int, int] = {}
    for node in reversed(order):
        depth = node_depth.setdefault(node, 0)
        depth = max(depth, layer_depth.get(id(node.layer), 0))
        layer_depth[id(node.layer)] = depth
        node_depth[node] = depth
        for parent in node.inputs:
            node_depth[parent.node] = max(depth + 1, node_depth.get(parent.node, 0))
    for t in inputs:  # unused inputs were refused above; keep Keras's rule for completeness
        layer_depth.setdefault(id(t.node.layer), 0)
        layers_by_id.setdefault(id(t.node.layer), t.node.layer)
        first_visit.setdefault(id(t.node.layer), len(first_visit))
    keys = sorted(layer_depth, key=lambda k: (-layer_depth[k], first_visit[k]))
    layers = [layers_by_id[k] for k in keys]
    names: dict[str, int] = {}
    for layer in layers:
        names[layer.name] = names.get(layer.name, 0) + 1
    for name, count in names.items():
        if count > 1:
            raise InvalidArgumentError(
                f'The name "{name}" is used {count} times in the model. All layer names should be unique.'
            )
    return [node for node in order if node.inputs], layers


def _root_name(t: KerasTensor) -> str:
    """The name of the input layer a tensor comes from (first found)."""
    node = t.node
    while node.inputs:
        node = node.inputs[0].node
    return node.layer.name
