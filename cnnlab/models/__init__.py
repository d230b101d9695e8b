"""Model containers: ``Sequential`` and the functional ``Model(inputs, outputs)`` (both usable as a
layer of another model) and their summaries.

``load_model`` reads files written by ``model.save`` (:mod:`cnnlab.saving`).
"""

from __future__ import annotations

from typing import Any

from cnnlab.engine import TrainingStopped
from cnnlab.layers.core import functional_input as Input
from cnnlab.layers.symbolic import KerasTensor
from cnnlab.models.functional import Model
from cnnlab.models.sequential import Sequential

#: set by cnnlab.saving when it is imported (saving imports models, never the reverse)
_file_reader: Any = None


def load_model(path: Any, compile: bool = True) -> Any:
    """Load a model written by ``model.save(path)``, or a Keras ``.keras`` / ``.h5`` file
    (``keras.models.load_model``; see :mod:`cnnlab.keras_io`)."""
    return _file_reader(path, compile=compile)


__all__ = ["Sequential", "Model", "Input", "KerasTensor", "TrainingStopped", "load_model"]
