"""cnnlab: Keras's convolutional-network API in NumPy, with explanations of every number.

>>> import cnnlab as cl
>>> model = cl.Sequential([cl.layers.Input((4, 4, 1)), cl.layers.MaxPool2D()])
>>> model(np.arange(16).reshape(1, 4, 4, 1))[0, :, :, 0]
array([[ 5,  7],
       [13, 15]])
"""

import numpy as np  # noqa: F401  (used by the doctest above)

from cnnlab import (
    callbacks,
    config,
    constraints,
    datasets,
    layers,
    losses,
    metrics,
    models,
    onnx_export,
    ops,
    optimizers,
    regularizers,
    saving,
    schedules,
    utils,
)
from cnnlab import explain_views as _explain_views  # noqa: F401  (inline display in notebooks)
from cnnlab._version import __version__ as __version__
from cnnlab.attribution import explain_prediction
from cnnlab.backprop import explain_gradient
from cnnlab.explain import explain, trace
from cnnlab.layers.base import clear_session
from cnnlab.models import Input, Model, Sequential
from cnnlab.random import set_random_seed

set_seed = set_random_seed


__all__ = [
    "callbacks",
    "config",
    "constraints",
    "regularizers",
    "schedules",
    "datasets",
    "layers",
    "losses",
    "metrics",
    "models",
    "onnx_export",
    "ops",
    "optimizers",
    "saving",
    "utils",
    "Input",
    "Model",
    "Sequential",
    "Input",
    "clear_session",
    "set_random_seed",
    "set_seed",
    "explain",
    "trace",
    "explain_prediction",
    "explain_gradient",
]
