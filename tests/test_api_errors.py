"""Clear errors instead of silent rounding or deep NumPy errors (issue 11, items 11 and 14)."""

from __future__ import annotations

import numpy as np
import pytest

import cnnlab as cl
from cnnlab.errors import ArgumentTypeError, InvalidArgumentError, ShapeError
from cnnlab.layers import Conv2D, Dense, Input


@pytest.mark.parametrize("shape", [(28.5, 28, 1), (True, 2), (0, 3), ("28", 28)])
def test_input_shape_is_never_rounded(shape):
    with pytest.raises(InvalidArgumentError, match=r"Input: expected shape to hold whole numbers >= 1"):
        Input(shape)


def test_input_shape_argument_must_be_a_tuple():
    with pytest.raises(ArgumentTypeError, match=r"Conv2D: expected input_shape to be a tuple.*\(28,\)"):
        Conv2D(1, 2, input_shape=28)
    assert Input((28.0, 28)).shape == (28, 28)


def model(units, activation, loss):
    m = cl.Sequential([Input((3,)), Dense(units, activation=activation)])
    m.compile("adam", loss)
    return m


X = np.ones((4, 3))


def test_negative_one_hot_labels():
    with pytest.raises(InvalidArgumentError, match=r"categorical_crossentropy: expected labels in \[0, 1\].*-1"):
        model(2, "softmax", "categorical_crossentropy").fit(X, np.array([[-1.0, 2.0]] * 4), verbose=0)


def test_binary_crossentropy_refuses_class_numbers():
    with pytest.raises(InvalidArgumentError, match=r"binary_crossentropy: expected labels in \[0, 1\].*0 to 3"):
        model(1, "sigmoid", "binary_crossentropy").fit(X, np.arange(4).reshape(4, 1), verbose=0)


def test_nan_in_one_hot_labels_is_blamed_on_the_labels():
    with pytest.raises(InvalidArgumentError, match=r"y contains 4 NaN or infinite label"):
        model(2, "softmax", "categorical_crossentropy").fit(X, np.array([[np.nan, 1.0]] * 4), verbose=0)


def test_string_labels():
    with pytest.raises(InvalidArgumentError, match=r"y: expected numeric labels, received dtype <U"):
        model(2, "softmax", "sparse_categorical_crossentropy").fit(X, np.array(list("abab")), verbose=0)


def test_zero_samples_give_an_empty_result_of_the_right_shape():
    m = cl.Sequential([Input((4, 4, 1)), Conv2D(2, 2), cl.layers.Flatten(), Dense(3)])
    assert m.predict(np.zeros((0, 4, 4, 1))).shape == (0, 3)
    assert Dense(5)(np.zeros((0, 2))).shape == (0, 5)


# ------------------------------------------------------------------ issue 11: the remaining items
@pytest.mark.parametrize("loader", ["fashion_mnist", "mnist", "cifar10", "cifar100"])
@pytest.mark.parametrize("path", ["", "   "])
def test_load_data_with_an_empty_path_is_an_error(loader, path, monkeypatch):
    """path="" was taken as "no path" and the default places were searched (a silently wrong
    data set when a variable was left empty)."""
    module = getattr(cl.datasets, loader)

    def searched_anyway(*args, **kwargs):
        raise AssertionError("the default places were searched")

    monkeypatch.setattr(module._loader, "missing", searched_anyway)
    with pytest.raises(InvalidArgumentError, match=r"path= is empty .*path=None \(the default\)"):
        module.load_data(path=path, download=False)


def test_load_data_path_of_the_wrong_type():
    with pytest.raises(ArgumentTypeError, match=r"expected path= to be a folder or file name.*received int 3"):
        cl.datasets.fashion_mnist.load_data(path=3, download=False)


@pytest.mark.parametrize("x", [np.float64(1.0), np.array(2.0)])
def test_softmax_activation_on_a_0d_array(x):
    with pytest.raises(ShapeError, match=r'Activation "sm" \(softmax\).*at least one axis; received a 0-d array'):
        cl.layers.Activation("softmax", name="sm")(x)
    assert cl.layers.Activation("relu")(np.float64(-1.0)) == 0  # elementwise ones still work on a scalar


@pytest.mark.parametrize("rank", [0, 1])
def test_softmax_layer_on_too_few_axes(rank):
    with pytest.raises(ShapeError, match=rf'Softmax "s": expected inputs of rank 2 or more.*received rank {rank}'):
        cl.layers.Softmax(name="s")(np.ones((3,) * rank))


@pytest.mark.parametrize(
    "layer",
    [
        lambda: Conv2D(1, 2, padding="same", name="c"),
        lambda: cl.layers.MaxPooling2D(2, padding="same", name="c"),
        lambda: cl.layers.AveragePooling2D(2, padding="same", name="c"),
    ],
)
def test_same_padding_on_a_zero_size_input_names_same(layer):
    """The message quoted padding='valid' and suggested padding='same' for a 'same' layer."""
    with pytest.raises(ShapeError) as info:
        layer()(np.zeros((1, 0, 3, 1)))
    message = str(info.value)
    assert "padding='same'" in message and "ceil(n / s) = ceil(0 / " in message and "'valid'" not in message
    assert "(0x3) has size 0 along the height axis" in message


def test_valid_padding_on_a_small_input_keeps_its_formula():
    with pytest.raises(ShapeError, match=r"with padding='valid', floor\(\(n - \(k-1\)\*d - 1\) / s\) \+ 1"):
        Conv2D(1, 3)(np.zeros((1, 2, 5, 1)))


def prebuilt_conv() -> Conv2D:
    layer = Conv2D(2, 3, name="c1")
    layer(np.zeros((1, 28, 28, 1)))
    return layer


def test_a_layer_built_for_one_channel_is_refused_when_added_to_a_three_channel_model():
    model = cl.Sequential([Input((28, 28, 3))], name="rgb")
    with pytest.raises(
        ShapeError,
        match=r'Sequential "rgb": layer "c1" \(Conv2D\) was already built for inputs of shape \(None, 28, 28, 1\) '
        r"\(1 on the last axis\), but in this model it receives \(None, 28, 28, 3\) \(3 on the last axis\)",
    ):
        model.add(prebuilt_conv())
    assert model.layers == []  # the model is left as it was
    with pytest.raises(ShapeError, match=r'layer "c1" \(Conv2D\) was already built'):
        cl.Sequential([Input((28, 28, 3)), prebuilt_conv()])


def test_a_prebuilt_layer_is_refused_when_a_model_is_built_at_its_first_call():
    model = cl.Sequential([prebuilt_conv()])
    with pytest.raises(ShapeError, match=r"was already built for inputs of shape \(None, 28, 28, 1\)"):
        model.predict(np.zeros((1, 28, 28, 3)))


def test_a_prebuilt_layer_is_refused_by_a_functional_model():
    with pytest.raises(ShapeError, match=r'functional model: layer "c1" \(Conv2D\) was already built'):
        prebuilt_conv()(cl.Input((28, 28, 3)))


def test_a_prebuilt_layer_that_fits_is_accepted():
    layer = prebuilt_conv()
    model = cl.Sequential([Input((28, 28, 1)), layer])
    x = np.random.default_rng(0).normal(size=(2, 28, 28, 1))
    np.testing.assert_array_equal(model.predict(x, verbose=0), layer(x))
