"""The execution plan of a graph model (``cl.Model(inputs, outputs)``): node steps over slots.

A graph is expanded into *nodes*, one per layer call, nested models inlined (a model gives
``_expand_graph(trainable, in_slots, expand)``; a plain layer is one node). Each tensor of the
expanded graph is a numbered *slot*. A step reads its input slots and writes its output slot::

    forward:   slots[step.output] = step.unit.forward(slots[step.inputs...], training)
    backward:  grads[step.inputs...] += step.unit.backward(grads[step.output])

in topological order forward and in reverse order backward; a gradient is *summed* where a tensor
feeds several nodes (a residual connection). A layer called more than once (shared between
branches) is wrapped in :class:`SharedCall`, which keeps what forward left in the layer for each
call and *adds* the weight gradients of its calls, so the flat parameter store binds the weight
once and its gradient is the sum over its calls.

Accelerated units apply to maximal *linear chains*: nodes with one input each, where each output
feeds only the next node (a Conv2D whose output feeds only the next MaxPool). The registry's
predicates see such a chain as they see a Sequential model, ``match(layers, index, dtype, last)``
with ``last`` the chain's last index when the chain ends at a model output (the loss reads that
layer's logits), else one past it. Like the linear plan, this module names no layer class.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cnnlab.engine.plan import Plan, _fast_available, _reference_update

#: what the engine keeps in a layer between its forward and backward (restored per call)
_KEPT_OUT = ("_weights", "grads", "_inbound_nodes", "name", "trainable", "built")


def call_state(layer: Any) -> dict[str, Any]:
    """What ``layer``'s last forward left in it for its backward (caches, activation input, logits)."""
    return {k: v for k, v in vars(layer).items() if k not in _KEPT_OUT}


def restore_call_state(layer: Any, state: dict[str, Any]) -> None:
    """Put back what one call's forward left, before that call's backward."""
    vars(layer).update(state)


@dataclass
class Node:
    """One layer call of the expanded graph."""

    layer: Any
    trainable: bool
    inputs: tuple[int, ...]
    output: int
    list_call: bool = False


@dataclass
class Graph:
    """The expanded graph: input slots, nodes in topological order, output slots."""

    inputs: list[int]
    nodes: list[Node]
    outputs: list[int]
    slots: int


def expand(model: Any, trainable: bool = True) -> Graph:
    """Inline ``model`` (and the models inside it) into nodes over numbered slots."""
    nodes: list[Node] = []
    count = [0]

    def new_slot() -> int:
        count[0] += 1
        return count[0] - 1

    def add(layer: Any, on: bool, in_slots: list[int], list_call: bool = False) -> list[int]:
        sub = getattr(layer, "_expand_graph", None)
        if sub is not None:  # a model inside the model: its nodes are inlined
            return sub(on, in_slots, add)
        out = new_slot()
        nodes.append(Node(layer, on, tuple(in_slots), out, list_call))
        return [out]

    inputs = [new_slot() for _ in range(model._input_count())]
    outputs = model._expand_graph(trainable, inputs, add)
    return Graph(inputs, nodes, outputs, count[0])


class SharedCall:
    """One call of a layer that is called more than once in the graph.

    Forward keeps the layer's per-call state (its cache, activation input, logits); backward puts
    it back, and from the second backward of a step on adds the layer's weight gradients to those
    of the calls already done (``layer.grads`` are views of the flat gradient array: the store
    holds the weight once, its gradient is the sum over the calls)."""

    def __init__(self, layer: Any, first: list[bool]) -> None:
        self.layer = layer
        self.plan_name = f"{type(layer).__name__} (shared)"
        self._first = first  # shared by the calls of one layer: [True] until the first backward
        self._state: dict[str, Any] = {}

    def forward(self, x: Any, training: bool = False) -> np.ndarray:
        y = self.layer.forward(x, training=training)
        if training:
            self._state = call_state(self.layer)
        return y

    @property
    def activation(self) -> Any:
        return getattr(self.layer, "activation", None)

    @property
    def last_logits(self) -> Any:
        return self._state.get("last_logits")

    def backward(self, dy: np.ndarray, need_dx: bool = True, **kwargs: Any) -> Any:
        restore_call_state(self.layer, self._state)
        if self._first[0]:
            self._first[0] = False
            return self.layer.backward(dy, need_dx=need_dx, **kwargs)
        before = {key: g.copy() for key, g in self.layer.grads.items()}
        dx = self.layer.backward(dy, need_dx=need_dx, **kwargs)
        for key, g in before.items():
            self.layer.grads[key] += g
        return dx

    def release(self) -> None:
        self._state = {}
        self._first[0] = True
        self.layer.release()


@dataclass
class GraphStep:
    """A unit reading ``inputs`` slots and writing ``output``; ``layers`` it covers (in order)."""

    unit: Any
    inputs: tuple[int, ...]
    output: int
    layers: list[Any]
    list_call: bool = False
    trainable: bool = False
    accelerated: bool = False

    @property
    def name(self) -> str:
        return getattr(self.unit, "plan_name", None) or type(self.unit).__name__


@dataclass
class GraphPlan(Plan):
    """A :class:`Plan` whose steps are :class:`GraphStep` over slots."""

    graph: Graph | None = None
    #: slots whose gradient some trainable weight needs
    needs_grad: list[bool] = field(default_factory=list)

    def describe(self) -> list[str]:
        lines = [f"kernels: {self.kernels}"]
        for step in self.steps:
            kind = "accelerated" if step.accelerated else "reference"
            names = ", ".join(layer.name for layer in step.layers)
            lines.append(f"{names}: {step.name} ({kind}) <- slots {list(step.inputs)} -> slot {step.output}")
        return lines


def _chains(graph: Graph, shared: set[int]) -> dict[int, list[int]]:
    """Maximal linear chains: head node index -> node indices of the chain, in order."""
    consumers: dict[int, list[int]] = {}
    for k, node in enumerate(graph.nodes):
        for slot in node.inputs:
            consumers.setdefault(slot, []).append(k)
    producer = {node.output: k for k, node in enumerate(graph.nodes)}
    outputs = set(graph.outputs)

    def chainable(k: int) -> bool:
        node = graph.nodes[k]
        return not node.list_call and len(node.inputs) == 1 and id(node.layer) not in shared

    def follows(k: int) -> int | None:
        """The node ``k`` continues, if any."""
        if not chainable(k):
            return None
        slot = graph.nodes[k].inputs[0]
        p = producer.get(slot)
        if p is None or not chainable(p) or slot in outputs or len(consumers.get(slot, [])) != 1:
            return None
        return p

    chains: dict[int, list[int]] = {}
    taken: set[int] = set()
    for k in range(len(graph.nodes)):
        if k in taken or follows(k) is not None:
            continue
        chain = [k]
        taken.add(k)
        if chainable(k):
            while True:
                nxt = consumers.get(graph.nodes[chain[-1]].output, [])
                if len(nxt) != 1 or follows(nxt[0]) != chain[-1]:
                    break
                chain.append(nxt[0])
                taken.add(nxt[0])
        chains[k] = chain
    return chains


def build_graph_plan(model: Any, dtype: np.dtype, optimizer: Any, store: Any, kernels: str, key: tuple) -> GraphPlan:
    """The node steps of ``model`` for ``dtype`` inputs (accelerated chains with ``kernels="fast"``)."""
    graph = expand(model)
    fast = kernels == "fast" and _fast_available()
    calls: dict[int, int] = {}
    for node in graph.nodes:
        calls[id(node.layer)] = calls.get(id(node.layer), 0) + 1
    shared = {key_ for key_, n in calls.items() if n > 1}
    firsts: dict[int, list[bool]] = {key_: [True] for key_ in shared}
    outputs = set(graph.outputs)
    match_units: list[Callable[..., Any]] = []
    if fast:
        from cnnlab._accel import registry

        match_units = registry.UNITS
    steps: list[GraphStep] = []

    def plain(node: Node) -> GraphStep:
        unit = SharedCall(node.layer, firsts[id(node.layer)]) if id(node.layer) in shared else node.layer
        trainable = bool(node.layer.trainable_keys(node.trainable))
        return GraphStep(unit, node.inputs, node.output, [node.layer], node.list_call, trainable)

    def chainable_alone(node: Node) -> bool:
        # a shared layer keeps its plain unit (SharedCall sums its gradients); merges take lists
        return not node.list_call and id(node.layer) not in shared

    for head, chain in _chains(graph, shared).items():
        nodes = [graph.nodes[k] for k in chain]
        layers = [node.layer for node in nodes]
        last = len(nodes) - 1 if nodes[-1].output in outputs else len(nodes)
        index = 0
        while index < len(nodes):
            found = None
            if match_units and index < last and chainable_alone(nodes[index]):
                for match in match_units:
                    found = match(layers, index, np.dtype(dtype), last)
                    if found is not None:
                        break
            if found is None:
                steps.append(plain(nodes[index]))
                index += 1
                continue
            unit, count = found
            group = nodes[index : index + count]
            trainable = any(node.layer.trainable_keys(node.trainable) for node in group)
            steps.append(
                GraphStep(unit, group[0].inputs, group[-1].output, [n.layer for n in group], False, trainable, True)
            )
            index += count
        del head
    needs = [False] * graph.slots
    for step in steps:
        needs[step.output] = step.trainable or any(needs[s] for s in step.inputs)
    update = None
    if optimizer is not None:
        plain_update = not getattr(optimizer, "reference_update_only", False)
        if fast and plain_update:
            from cnnlab._accel import registry

            update = registry.optimizer_update(optimizer, np.dtype(dtype))
        update = update or _reference_update(optimizer, store)
    compiled = any(step.accelerated for step in steps)
    return GraphPlan(
        "fast" if fast else "reference",
        steps,  # type: ignore[arg-type]
        0,
        update=update,
        compiled_threads=compiled,
        key=key,
        graph=graph,
        needs_grad=needs,
    )


# ---------------------------------------------------------------- running a graph plan
def run_forward(plan: GraphPlan, xs: list[np.ndarray], training: bool, keep: set[int] = frozenset()) -> list[Any]:
    """All slots after a forward pass; steps writing a slot in ``keep`` run in training mode (their
    logits stay for the loss) even when ``training`` is False."""
    slots: list[Any] = [None] * plan.graph.slots
    for slot, x in zip(plan.graph.inputs, xs, strict=True):
        slots[slot] = x
    for step in plan.steps:
        args = [slots[s] for s in step.inputs]
        arg = args if step.list_call else args[0]
        mode = training or step.output in keep
        slots[step.output] = step.unit.forward(arg, training=mode)
        if not mode:
            step.unit.release()
    return slots


def run_backward(plan: GraphPlan, grads: dict[int, np.ndarray], fused: set[int]) -> None:
    """Backward from the gradients at the output slots (``grads``: slot -> gradient; ``fused``:
    output slots whose gradient is with respect to the logits), filling the layers' ``grads``."""
    g: list[Any] = [None] * plan.graph.slots
    for slot, value in grads.items():
        g[slot] = value if g[slot] is None else g[slot] + value
    needs = plan.needs_grad
    for step in reversed(plan.steps):
        dy = g[step.output]
        g[step.output] = None
        if dy is None or not (step.trainable or any(needs[s] for s in step.inputs)):
            continue
        need_dx = any(needs[s] for s in step.inputs)
        if step.output in fused:
            dx = step.unit.backward(dy, need_dx=need_dx, from_logits=True)
        else:
            dx = step.unit.backward(dy, need_dx=need_dx)
        if not need_dx:
            continue
        parts = dx if step.list_call else [dx]
        for slot, part in zip(step.inputs, parts, strict=True):
            if needs[slot]:
                g[slot] = part if g[slot] is None else g[slot] + part


def release(plan: GraphPlan) -> None:
    for step in plan.steps:
        step.unit.release()
