"""cl.explain_gradient: the gradient is the training step's own, the per-position terms add up to
it within the rounding bound of two float sums, the loss's gradient is (softmax - one-hot)/N, and
the new value is what train_on_batch writes, bit for bit on the reference kernels."""

from __future__ import annotations

import json

import numpy as np
import pytest

import cnnlab as cl
from cnnlab.errors import InvalidArgumentError
from tests.numerics import assert_within, sum_bound


def build(optimizer: str = "adam", dropout: bool = True, bn: bool = True) -> cl.Sequential:
    cl.clear_session()
    cl.set_random_seed(7)
    layers = [cl.layers.Input((8, 8, 1)), cl.layers.Conv2D(3, 3, activation="relu", padding="same", name="conv")]
    if bn:
        layers.append(cl.layers.BatchNormalization(name="bn"))
    layers += [cl.layers.MaxPool2D(name="pool"), cl.layers.Flatten(name="flat")]
    if dropout:
        layers.append(cl.layers.Dropout(0.3, name="drop"))
    layers.append(cl.layers.Dense(4, activation="softmax", name="out"))
    model = cl.Sequential(layers)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    return model


def data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((6, 8, 8, 1)).astype("float32"), rng.integers(0, 4, 6)


CASES = [("conv", "kernel", (1, 2, 0, 1)), ("conv", "bias", 2), ("out", "kernel", (5, 3)), ("out", "bias", 1)]


@pytest.mark.parametrize(
    ("optimizer", "case"), [("adam", c) for c in CASES] + [("sgd", CASES[0]), ("rmsprop", CASES[2])]
)
def test_new_value_and_gradient_equal_the_training_step_bit_for_bit(optimizer, case):
    layer_name, weight, at = case
    x, y = data()
    with cl.config.using_kernels("reference"):
        a, b = build(optimizer), build(optimizer)
        for model in (a, b):  # a first step, so the optimizer state is not all zeros
            cl.set_random_seed(1)
            model.train_on_batch(x, y)
        cl.set_random_seed(2)
        result = cl.explain_gradient(a, x, y, layer_name, weight, at)
        # the same step on the copy, computing its gradients as train_on_batch does
        cl.set_random_seed(2)
        engine = b._engine
        plan = engine.plan(cl.config.float_dtype(), training=True)
        engine.gradients(plan, x, y)
        index = at if isinstance(at, tuple) else (at,)
        assert result.gradient == b.get_layer(layer_name).grads[weight][index]  # exactly the step's gradient
        cl.set_random_seed(2)
        b2 = build(optimizer)
        cl.set_random_seed(1)
        b2.train_on_batch(x, y)
        cl.set_random_seed(2)
        b2.train_on_batch(x, y)
        new = b2.get_layer(layer_name)._weights[weight][index]
        assert np.float32(result.new_value) == new  # bit for bit
        # explaining changed nothing: a's own next step writes the same value
        cl.set_random_seed(2)
        a.train_on_batch(x, y)
        assert a.get_layer(layer_name)._weights[weight][index] == new
        np.testing.assert_array_equal(a.get_layer("bn").get_weights()[2], b2.get_layer("bn").get_weights()[2])
        if optimizer == "adam":
            k = b2._engine.store.span(b2.get_layer(layer_name), weight)[0] + int(
                np.ravel_multi_index(index, b2.get_layer(layer_name)._weights[weight].shape)
            )
            assert np.float32(result.update.state_after["m"]) == b2.optimizer._slots["m"][k]
            assert np.float32(result.update.state_after["v"]) == b2.optimizer._slots["v"][k]
            assert any("bias correction" in line for line in result.update.lines)


@pytest.mark.parametrize("case", CASES)
def test_terms_sum_to_the_gradient_within_the_rounding_bound(case):
    layer_name, weight, at = case
    x, y = data(1)
    model = build()
    result = cl.explain_gradient(model, x, y, layer_name, weight, at)
    t = result.terms
    n_terms = len(t.upstream)
    magnitude = np.abs(t.upstream.astype(np.float64) * t.inputs.astype(np.float64)).sum()
    assert_within(t.total, result.gradient, sum_bound(magnitude, n_terms, np.float32), "sum of terms")
    assert result.rounding_bound >= float(sum_bound(magnitude, n_terms, np.float32))
    # and the products are the exact float64 gradient's terms: the float64 sum is within one sum's bound
    assert_within(
        float((t.upstream.astype(np.float64) * t.inputs).sum()),
        result.gradient,
        sum_bound(magnitude, n_terms, np.float32, c=1, extra_ops=3),
        "float64 sum",
    )
    expected_count = 6 * 8 * 8 if layer_name == "conv" else 6
    assert n_terms == expected_count
    text = str(result)
    assert "sum =" in text and "gradient used by the training step" in text
    json.dumps(result.to_dict())


def test_conv_terms_name_their_input_cells_and_padding():
    x, y = data(2)
    model = build(dropout=False, bn=False)
    r = cl.explain_gradient(model, x, y, "conv", "kernel", (0, 0, 0, 0))
    # 'same' padding with a 3x3 kernel: weight (0, 0) reads row i-1, column j-1
    pos = list(map(tuple, r.terms.positions))
    k = pos.index((0, 0, 0))
    assert r.terms.sources[k] == "padding" and r.terms.inputs[k] == 0
    k = pos.index((1, 3, 5))
    assert r.terms.sources[k] == "x[1, 2, 4, 0]" and r.terms.inputs[k] == x[1, 2, 4, 0]


def test_output_layer_upstream_is_softmax_minus_one_hot_over_n():
    cl.config.set_floatx("float64")
    x, y = data(3)
    model = build(dropout=False, bn=False)
    r = cl.explain_gradient(model, x.astype(np.float64), y, "out", "kernel", (2, 3))
    # independent: the logits by layer calls and the dense arithmetic by hand
    h = x.astype(np.float64)
    for layer in model.layers[:-1]:
        h = layer(h)
    dense = model.layers[-1]
    z = h @ dense.kernel + dense.bias
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    expected = (p[:, 3] - (y == 3)) / len(y)
    magnitude = (p[:, 3] + 1) / len(y)
    assert_within(r.terms.upstream, expected, sum_bound(magnitude * 8, 4, np.float64, extra_ops=8), "(p - y)/N")
    assert_within(r.loss_gradient["values"], expected, sum_bound(magnitude * 8, 4, np.float64, extra_ops=8), "loss")
    assert "softmax(z)" in str(r)


def test_at_none_picks_the_largest_gradient_and_errors_are_clear():
    x, y = data(4)
    model = build()
    r = cl.explain_gradient(model, x, y, "conv", "kernel")
    assert "largest |gradient|" in r.notes[0]
    with pytest.raises(InvalidArgumentError, match="no layer named 'nope'"):
        cl.explain_gradient(model, x, y, "nope")
    with pytest.raises(InvalidArgumentError, match="no weight 'gamma'"):
        cl.explain_gradient(model, x, y, "conv", "gamma")
    with pytest.raises(InvalidArgumentError, match="expected at to index"):
        cl.explain_gradient(model, x, y, "conv", "kernel", (3, 0, 0, 0))
    model.get_layer("conv").trainable = False
    with pytest.raises(InvalidArgumentError, match="not trained"):
        cl.explain_gradient(model, x, y, "conv", "kernel", (0, 0, 0, 0))
