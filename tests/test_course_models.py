"""The keras.io course models of ``benchmarks/course_models.py`` build with ``import cnnlab as keras``.

Parameter counts are Keras 3.15's (``model.count_params()`` of the same definitions built by real
Keras with the torch backend): Simple MNIST convnet 34,826; the from-scratch-style Sequential
13,802 (of which 448 are BatchNormalization's non-trainable moving statistics).
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import cnnlab as cl

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "course_models.py"


@pytest.fixture(scope="module")
def course_models():
    spec = importlib.util.spec_from_file_location("course_models", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_input_is_top_level_like_keras():
    """``keras.Input(shape=...)`` as the first entry of a Sequential, as keras.io writes it."""
    model = cl.Sequential([cl.Input(shape=(6, 6, 1)), cl.layers.Flatten(), cl.layers.Dense(2)])
    assert model.input_shape == (None, 6, 6, 1) and model.count_params() == 74


@pytest.mark.parametrize(
    "builder, params, non_trainable",
    [("simple_mnist_convnet", 34_826, 0), ("from_scratch_sequential", 13_802, 2 * (32 + 64 + 128))],
)
def test_models_build_with_keras_param_counts(course_models, builder, params, non_trainable):
    keras = course_models.cnnlab_as_keras()
    assert keras is cl
    model = getattr(course_models, builder)(keras)
    assert model.count_params() == params
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert params - trainable == non_trainable
    out = model.predict(np.zeros((2, 28, 28, 1), np.float32))
    assert out.shape == (2, 10)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
