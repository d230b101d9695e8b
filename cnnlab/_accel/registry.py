"""The one registry of accelerated units the execution plan chooses from (cnnlab.engine.plan).

``UNITS`` lists, in order of preference, predicates ``match(layers, index, dtype, last)`` that
return ``(unit, number of layers it replaces)`` when their group of layers starts at ``index``
(never reaching the model's last layer ``last``), else None. Adding an accelerated kernel means
adding its unit here; nothing else in cnnlab names it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from cnnlab._accel import dense, optim
from cnnlab._accel.batchnorm import FastBatchNorm
from cnnlab._accel.conv import FastConv
from cnnlab._accel.conv_pool import ConvPool
from cnnlab._accel.depthwise import FastDepthwise
from cnnlab._accel.pool import FastMaxPool

UNITS: list[Callable[..., Any]] = [
    ConvPool.match,
    FastConv.match,
    FastMaxPool.match,
    FastDepthwise.match,
    FastBatchNorm.match,
]


def whole_step(leaves: list, dtype: np.dtype, optimizer: Any, store: Any) -> Any:
    """A compiled step doing forward, loss, backward and the update for the whole model, or None."""
    return dense.DenseStep.match(leaves, dtype, optimizer, store)


def whole_predict(layers: list, dtype: np.dtype) -> Callable[[np.ndarray], np.ndarray] | None:
    """A compiled forward of the whole model for inference, or None."""
    return dense.predictor(layers, dtype)


def optimizer_update(optimizer: Any, dtype: np.dtype) -> Callable[[np.ndarray, np.ndarray], None] | None:
    return optim.update_for(optimizer, dtype)
