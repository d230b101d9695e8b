"""A user's own activation or loss function named like a built-in is never replaced by the built-in
(issue 11, item 8); the built-ins and same-named functions of known libraries still work."""

from __future__ import annotations

import numpy as np
import pytest

import cnnlab as cl
from cnnlab.errors import InvalidArgumentError
from cnnlab.layers import Activation, Conv2D, Dense


def relu(x):
    return x * 2


def mean_squared_error(y_true, y_pred):
    return np.mean(np.abs(y_true - y_pred))


@pytest.mark.parametrize("make", [lambda: Dense(2, activation=relu), lambda: Conv2D(1, 2, activation=relu)])
def test_own_activation_named_like_a_builtin_is_refused(make):
    with pytest.raises(
        InvalidArgumentError, match=r"your own function named like the built-in 'relu'.*activation='relu'"
    ):
        make()
    with pytest.raises(InvalidArgumentError, match=r"activation="):
        Activation(relu)


def test_own_loss_named_like_a_builtin_is_refused():
    model = cl.Sequential([cl.layers.Input((3,)), Dense(1)])
    with pytest.raises(InvalidArgumentError, match=r"loss=.*your own function.*'mean_squared_error'"):
        model.compile("adam", mean_squared_error)


def test_builtin_functions_are_still_accepted():
    assert Dense(2, activation=cl.ops.activations.relu).activation == "relu"
    assert isinstance(cl.losses.get(cl.losses.mean_squared_error), cl.losses.MeanSquaredError)
    assert cl.losses.get("mse").name == "mean_squared_error"


def test_same_named_functions_of_known_libraries_are_accepted():
    def categorical_crossentropy(y_true, y_pred):  # stands in for tf.losses.categorical_crossentropy
        raise AssertionError

    categorical_crossentropy.__module__ = "keras.src.losses.losses"
    assert isinstance(cl.losses.get(categorical_crossentropy), cl.losses.CategoricalCrossentropy)
    relu.__module__, saved = "tensorflow.python.ops.gen_nn_ops", relu.__module__
    try:
        assert Dense(2, activation=relu).activation == "relu"
    finally:
        relu.__module__ = saved
