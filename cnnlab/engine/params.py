"""The flat parameter store: every trainable weight of a model in one array, gradients in another.

The layers' ``kernel``/``bias`` become views into ``flat`` and their ``grads`` views into
``grads``, so an optimizer updates all weights with a few whole-array operations. Which weights
are trainable is read from the layers each time training starts (a layer frozen with
``trainable = False`` after a first ``fit`` leaves the store, and its weights keep their values
bit for bit); when that set changes, the store is rebuilt and the optimizer's per-weight state
(Adam's moments, momentum, ...) follows each weight that stays.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from cnnlab import config

#: one trainable array: (layer, weight key)
Slot = tuple[Any, str]


class ParameterStore:
    """``flat``/``grads`` for the trainable weights of ``layers`` (an ordered list of leaf layers
    with their effective trainability), and where each weight lives in them."""

    def __init__(self) -> None:
        self.flat: np.ndarray | None = None
        self.grads: np.ndarray | None = None
        self.slots: list[Slot] = []
        self.spans: dict[tuple[int, str], tuple[int, int]] = {}

    def bind(self, leaves: Sequence[tuple[Any, bool]], optimizer: Any = None) -> bool:
        """Make the store hold exactly the trainable weights of ``leaves``; returns whether it was
        rebuilt. Frozen layers get their own (copied) arrays back and no gradient views."""
        # non-trainable weights (BatchNormalization's moving statistics) never enter the store
        wanted = [(layer, key) for layer, trainable in leaves for key in layer.trainable_keys(trainable)]
        if self.flat is not None and self._current(wanted):
            return False
        old_flat, old_spans = self.flat, dict(self.spans)
        dtype = config.float_dtype()
        total = sum(layer._weights[key].size for layer, key in wanted)
        flat, grads = np.empty(total, dtype), np.zeros(total, dtype)
        spans: dict[tuple[int, str], tuple[int, int]] = {}
        offset = 0
        for layer, key in wanted:
            value = layer._weights[key]
            size = value.size
            view = flat[offset : offset + size].reshape(value.shape)
            view[...] = value
            layer._weights[key] = view
            layer.grads[key] = grads[offset : offset + size].reshape(value.shape)
            spans[(id(layer), key)] = (offset, offset + size)
            offset += size
        # weights that left the store (frozen): own memory again, no view of the gradient array
        for layer, key in self.slots:
            if (id(layer), key) not in spans and key in layer._weights:
                layer._weights[key] = np.array(layer._weights[key], copy=True)
                layer.grads.pop(key, None)
        if optimizer is not None and old_flat is not None:
            _remap_state(optimizer, old_flat.size, old_spans, spans, total)
        self.flat, self.grads, self.slots, self.spans = flat, grads, wanted, spans
        return True

    def _current(self, wanted: list[Slot]) -> bool:
        if len(wanted) != len(self.slots) or any(
            a is not c or b != d for (a, b), (c, d) in zip(wanted, self.slots, strict=True)
        ):
            return False
        return all(np.shares_memory(layer._weights[key], self.flat) for layer, key in wanted)

    def span(self, layer: Any, key: str) -> tuple[int, int]:
        """``(start, stop)`` of a weight in ``flat``."""
        return self.spans[(id(layer), key)]


def _remap_state(optimizer: Any, old_size: int, old_spans: dict, new_spans: dict, new_size: int) -> None:
    """Carry each weight's optimizer state from the old flat layout to the new one (weights new to
    the store start from zeros, as Keras's optimizer variables do)."""
    slots = getattr(optimizer, "_slots", None)
    if not slots:
        return
    for name, old in list(slots.items()):
        if old.ndim != 1 or old.size != old_size:
            continue
        new = np.zeros(new_size, old.dtype)
        for key, (lo, hi) in new_spans.items():
            if key in old_spans:
                a, b = old_spans[key]
                new[lo:hi] = old[a:b]
        slots[name] = new
