"""Symbolic tensors for Keras's functional API: ``cl.Input(shape)`` and layers called on them.

A :class:`KerasTensor` holds no numbers: only its shape (batch axis ``None``), its dtype and its
history, the :class:`Node` (one call of one layer) that produced it. Calling a layer on symbolic
tensors builds the layer for their shapes, records a node and returns new symbolic tensors, as
``keras.KerasTensor`` does; ``cl.Model(inputs, outputs)`` then walks the nodes back from the
outputs. Calling a layer on arrays stays the numeric path (``Layer.__call__`` dispatches on the
argument's type).

Cycles cannot be built: a tensor exists only after the tensors it is computed from, so every
graph made this way is acyclic (``cl.Model`` still checks, for graphs rebuilt from a config).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab import config
from cnnlab.errors import InvalidArgumentError

Shape = tuple[int | None, ...]


class Node:
    """One call of ``layer`` on ``inputs`` (symbolic tensors) giving ``outputs``."""

    def __init__(self, layer: Any, inputs: list[KerasTensor], outputs: list[KerasTensor] | None = None) -> None:
        self.layer = layer
        self.inputs = list(inputs)
        self.outputs = outputs or []
        #: a merge layer is called on a list even of one tensor; other layers on one tensor
        self.list_call = False


class KerasTensor:
    """A symbolic tensor: ``shape`` (batch axis ``None``), ``dtype`` and the node that made it."""

    def __init__(self, shape: Shape, dtype: str | None = None, node: Node | None = None, index: int = 0) -> None:
        self.shape: Shape = tuple(shape)
        self.dtype = dtype or config.floatx()
        self.node = node
        self.index = index

    @property
    def _keras_history(self) -> tuple[Any, int, int]:
        """``(layer, node index, tensor index)`` as Keras names it."""
        layer = self.node.layer
        return layer, layer._inbound_nodes.index(self.node), self.index

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:
        name = self.node.layer.name if self.node is not None else "?"
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}, name={name}>"

    def __array__(self, *args: Any, **kwargs: Any) -> np.ndarray:
        raise InvalidArgumentError(
            f"{self!r} is symbolic: it holds no numbers. Build a model with cl.Model(inputs, outputs) and call "
            "the model on arrays (model(x) or model.predict(x))."
        )


def symbolic_output(input_layer: Any) -> KerasTensor:
    """The one output tensor of an ``InputLayer`` (made on first use)."""
    if not input_layer._inbound_nodes:
        node = Node(input_layer, [])
        node.outputs = [KerasTensor((None, *input_layer.shape), node=node)]
        input_layer._inbound_nodes.append(node)
        input_layer.built = True
        input_layer.build_input_shape = (None, *input_layer.shape)
    return input_layer._inbound_nodes[0].outputs[0]


def _flatten(x: Any) -> list[Any]:
    return [item for part in x for item in _flatten(part)] if isinstance(x, (list, tuple)) else [x]


def _as_symbolic(x: Any) -> Any:
    """An ``InputLayer`` (what ``cl.layers.Input`` returns) stands for its output tensor."""
    if getattr(x, "declares_input", False):
        return symbolic_output(x)
    return x


def involves_symbolic(x: Any) -> bool:
    """Whether ``x`` (a tensor or a list of them) holds a symbolic tensor. Only the list's own items
    are looked at: a nested Python list of numbers (data) is not walked."""
    items = x if isinstance(x, (list, tuple)) else [x]
    return any(isinstance(_as_symbolic(item), KerasTensor) for item in items)


def call_symbolic(layer: Any, x: Any) -> Any:
    """Record ``layer(x)`` for symbolic ``x``: build the layer for the input shapes, check them
    (``compute_output_shape`` raises Keras's errors) and return the output tensor(s)."""
    list_call = isinstance(x, (list, tuple))
    items = [_as_symbolic(item) for item in (_flatten(x) if list_call else [x])]
    plain = [item for item in items if not isinstance(item, KerasTensor)]
    if plain:
        raise InvalidArgumentError(
            f'Layer "{layer.name}" was called on a mix of symbolic tensors and {type(plain[0]).__name__} values. '
            "In a functional model every input of a layer must come from cl.Input(...) or from another layer; "
            "feed arrays to the finished model instead (model(x) / model.predict(x))."
        )
    shapes = [item.shape for item in items]
    takes_list = getattr(layer, "takes_list", False) or (
        getattr(layer, "is_graph_model", False) and len(getattr(layer, "_inputs", [])) > 1
    )
    if takes_list:
        arg: Any = shapes
    else:
        if len(items) != 1:
            raise InvalidArgumentError(
                f'Layer "{layer.name}" ({type(layer).__name__}) takes one input, received {len(items)} tensors. '
                "Merge them first with a merge layer such as cl.layers.Concatenate() or cl.layers.Add()."
            )
        arg = shapes[0]
    if getattr(layer, "is_graph_model", False):
        layer._check_call_shapes(arg)
    elif not layer.built:
        layer.build(arg)
    elif not takes_list:
        layer.check_prebuilt_shape(arg, "functional model")
    out_shape = layer.compute_output_shape(arg)
    node = Node(layer, items)
    node.list_call = takes_list
    out_shapes = out_shape if isinstance(out_shape, list) else [out_shape]
    node.outputs = [KerasTensor(s, items[0].dtype, node, k) for k, s in enumerate(out_shapes)]
    layer._inbound_nodes.append(node)
    return node.outputs if isinstance(out_shape, list) else node.outputs[0]
