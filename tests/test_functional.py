"""Graph models (Keras's functional API): cl.Input, cl.Model, merge layers, the engine's graph plan.

Expected values come from the layers called on arrays by hand (the same computation written out),
from central finite differences in float64, from hand arithmetic, and from real Keras 3
(tests/fixtures/keras_functional.json, written by tools/make_keras_functional_fixture.py).
"""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

import numpy as np
import pytest

import cnnlab as cl
from cnnlab import layers as L
from cnnlab.engine.checks import ArrayGroup
from cnnlab.errors import InvalidArgumentError, ShapeError
from tests.numerics import a64, assert_within, sum_bound

FIXTURE = Path(__file__).parent / "fixtures" / "keras_functional.json"
KERNELS = ["reference", "fast"]
EPS = 1e-6


def numeric_grad(f, array):
    grad = np.zeros_like(array)
    flat, gflat = array.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + EPS
        up = f()
        flat[i] = old - EPS
        down = f()
        flat[i] = old
        gflat[i] = (up - down) / (2 * EPS)
    return grad


def residual_model(filters=1, size=8, units=3):
    x = cl.Input((size, size, 1), name="image")
    conv = L.Conv2D(filters, 3, padding="same", activation="relu", name="conv")
    y = L.Add(name="add")([conv(x), x]) if filters == 1 else L.Concatenate(name="cat")([conv(x), x])
    y = L.GlobalAveragePooling2D(name="gap")(y)
    out = L.Dense(units, activation="softmax", name="out")(y)
    return cl.Model(x, out, name="residual")


# ---------------------------------------------------------------- symbolic tensors
def test_input_is_symbolic_and_layers_record_nodes():
    x = cl.Input((5, 5, 2))
    assert x.shape == (None, 5, 5, 2) and x.dtype == "float32"
    conv = L.Conv2D(3, 2)
    y = conv(x)
    assert y.shape == (None, 4, 4, 3)
    assert y.node.layer is conv and y.node.inputs == [x]
    assert conv._keras_history if False else y._keras_history == (conv, 0, 0)
    assert conv.built and conv.kernel.shape == (2, 2, 2, 3)
    # layers stay callable on arrays
    assert conv(np.zeros((1, 5, 5, 2), "float32")).shape == (1, 4, 4, 3)
    with pytest.raises(InvalidArgumentError, match="symbolic"):
        np.asarray(y)


def test_layers_input_works_as_functional_input():
    inp = L.Input((3,))
    model = cl.Model(inp, L.Dense(2)(inp))
    assert model.predict(np.ones((4, 3))).shape == (4, 2)
    seq = cl.Sequential([cl.Input((3,)), L.Dense(2)])  # cl.Input as the first item, as in Keras
    assert seq.input_shape == (None, 3)


# ---------------------------------------------------------------- merge layers
def test_merge_layers_forward_by_hand():
    a = np.array([[1.0, -2.0, 3.0]])
    b = np.array([[4.0, 5.0, -6.0]])
    c = np.array([[2.0, 2.0, 2.0]])
    np.testing.assert_array_equal(L.Add()([a, b, c]), [[7, 5, -1]])
    np.testing.assert_array_equal(L.Subtract()([a, b]), [[-3, -7, 9]])
    np.testing.assert_array_equal(L.Multiply()([a, b, c]), [[8, -20, -36]])
    np.testing.assert_array_equal(L.Average()([a, b]), [[2.5, 1.5, -1.5]])
    np.testing.assert_array_equal(L.Maximum()([a, b, c]), [[4, 5, 3]])
    np.testing.assert_array_equal(L.Concatenate()([a, b]), [[1, -2, 3, 4, 5, -6]])
    np.testing.assert_array_equal(L.Concatenate(axis=1)([a[:, :2], b]), [[1, -2, 4, 5, -6]])


def test_elementwise_merges_broadcast_size_one_axes_as_keras():
    x = cl.Input((4, 4, 3))
    gate = cl.Input((1, 1, 3))
    assert L.Multiply()([x, gate]).shape == (None, 4, 4, 3)  # squeeze-and-excitation
    feats = np.arange(2 * 2 * 2 * 3, dtype="float32").reshape(2, 2, 2, 3)
    scale = np.array([1.0, 10.0, 100.0], "float32").reshape(1, 1, 1, 3).repeat(2, axis=0)
    np.testing.assert_array_equal(L.Multiply()([feats, scale]), feats * scale)
    np.testing.assert_array_equal(L.Add()([scale, feats]), feats + scale)


MERGES = [
    (L.Add, 3, {}, False),
    (L.Subtract, 2, {}, False),
    (L.Multiply, 3, {}, False),
    (L.Average, 3, {}, False),
    (L.Maximum, 3, {}, False),
    (L.Concatenate, 2, {"axis": -1}, False),
    (L.Concatenate, 2, {"axis": 1}, False),
    (L.Add, 2, {}, True),
    (L.Subtract, 2, {}, True),
    (L.Multiply, 3, {}, True),
    (L.Average, 2, {}, True),
    (L.Maximum, 2, {}, True),
]


@pytest.mark.parametrize("cls,count,kwargs,broadcast", MERGES, ids=lambda v: getattr(v, "__name__", str(v)))
def test_merge_gradients_finite_differences(cls, count, kwargs, broadcast):
    cl.config.set_floatx("float64")
    rng = np.random.default_rng(3)
    # distinct values: Maximum is differentiable away from ties
    xs = [rng.permutation(2 * 3 * 4 * 2).reshape(2, 3, 4, 2) / 7.0 + k * 0.013 for k in range(count)]
    if broadcast:  # the second input broadcast along height and width: its gradient sums them
        xs[1] = xs[1][:, :1, :1, :] + 0.5
    layer = cls(**kwargs)
    r = rng.normal(size=layer(xs).shape)
    layer.forward(xs, training=True)
    grads = layer.backward(r.copy())

    for k, x in enumerate(xs):
        numeric = numeric_grad(lambda: float((layer.forward(xs) * r).sum()), x)
        np.testing.assert_allclose(grads[k], numeric, rtol=1e-6, atol=1e-8, err_msg=f"input {k}")


def test_maximum_tie_gradient_goes_to_first_input():
    a = np.array([[1.0, 2.0, 3.0]])
    b = np.array([[1.0, 5.0, 3.0]])
    layer = L.Maximum()
    layer.forward([a, b, a], training=True)
    ga, gb, gc = layer.backward(np.array([[10.0, 20.0, 30.0]]))
    np.testing.assert_array_equal(ga, [[10, 0, 30]])
    np.testing.assert_array_equal(gb, [[0, 20, 0]])
    np.testing.assert_array_equal(gc, [[0, 0, 0]])


def test_merge_shape_errors_name_both_shapes():
    a, b = cl.Input((4, 4, 2)), cl.Input((4, 4, 3))
    with pytest.raises(ShapeError, match=r"\(None, 4, 4, 2\) and \(None, 4, 4, 3\)"):
        L.Add()([a, b])
    with pytest.raises(ShapeError, match=r"\(None, 4, 4, 2\) and \(None, 3, 4, 3\)"):
        L.Concatenate()([a, cl.Input((3, 4, 3))])
    assert L.Concatenate()([a, b]).shape == (None, 4, 4, 5)
    with pytest.raises(InvalidArgumentError, match=r"at least 1 input\(s\), received 0"):
        L.Add()([])
    assert L.Add()([a]).shape == a.shape  # Keras 3 accepts one input
    with pytest.raises(ShapeError, match=r"\(None, 4, 4, 2\) and \(None, 4, 2\)"):
        L.Multiply()([a, cl.Input((4, 2))])  # ranks differ
    with pytest.raises(InvalidArgumentError, match="exactly 2"):
        L.Subtract()([a, a, a])
    with pytest.raises(ShapeError, match=r"\(None, 2\) and \(None, 3\)"):
        L.Add()([np.zeros((1, 2)), np.zeros((1, 3))])


# ---------------------------------------------------------------- forward vs hand-built
@pytest.mark.parametrize("kernels", KERNELS)
def test_residual_model_equals_layers_called_on_arrays(kernels):
    cl.set_random_seed(1)
    model = residual_model()
    conv, gap, out = model.get_layer("conv"), model.get_layer("gap"), model.get_layer("out")
    x = np.random.default_rng(0).normal(size=(5, 8, 8, 1)).astype("float32")
    by_hand = out(gap(conv(x) + x))  # conv has the relu
    with cl.config.using_kernels(kernels):
        got = model.predict(x)
    # Only the convolution may sum in another order (fast kernels): each conv output, a sum of 9
    # products plus the bias, differs by at most 2*gamma_9 * (sum |x*k| + |b|) <= the bound of the
    # largest such magnitude. relu, the residual add and the mean over the 64 cells pass that
    # difference on without growing it (a mean of differences is at most their largest); Dense with
    # one input multiplies it by |w|; softmax is 1-Lipschitz (max norm). Each side then rounds the
    # add, the mean (64 terms), the Dense and the softmax on its own: gamma terms relative to the
    # values, at most 1 after softmax, so 2*gamma_70 * 1 covers them.
    conv_mag = 9 * a64(x).max() * a64(conv.kernel).max() + a64(conv.bias).max()
    bound = sum_bound(conv_mag, 9, "float32") * max(1.0, a64(out.kernel).max()) + sum_bound(1.0, 70, "float32")
    assert_within(got, by_hand, bound, "residual model")


def test_multi_input_multi_output_and_shared_layer_forward():
    a, b = cl.Input((4,), name="left"), cl.Input((4,), name="right")
    shared = L.Dense(3, name="shared")
    ya, yb = shared(a), shared(b)
    summed = L.Add(name="sum")([ya, yb])
    diff = L.Subtract(name="diff")([ya, yb])
    model = cl.Model([a, b], [summed, diff], name="siamese")
    rng = np.random.default_rng(0)
    xa, xb = rng.normal(size=(6, 4)).astype("float32"), rng.normal(size=(6, 4)).astype("float32")
    s, d = model.predict([xa, xb])
    np.testing.assert_array_equal(s, shared(xa) + shared(xb))
    np.testing.assert_array_equal(d, shared(xa) - shared(xb))
    s2, _ = model.predict({"left": xa, "right": xb})
    np.testing.assert_array_equal(s2, s)
    assert [layer.name for layer in model.layers] == ["left", "right", "shared", "sum", "diff"]
    assert len(model.get_weights()) == 2 and model.count_params() == 15


def test_nested_models_as_layers():
    cl.set_random_seed(2)
    inner_in = cl.Input((4,))
    inner = cl.Model(inner_in, L.Dense(3, activation="relu", name="inner_dense")(inner_in), name="inner")
    block = cl.Sequential([L.Dense(2, name="seq_dense")], name="block")
    x = cl.Input((4,))
    y = block(inner(x))
    model = cl.Model(x, y)
    data = np.random.default_rng(0).normal(size=(3, 4)).astype("float32")
    expected = block.get_layer("seq_dense")(inner.get_layer("inner_dense")(data))
    np.testing.assert_array_equal(model.predict(data), expected)
    # a functional model inside a Sequential
    seq = cl.Sequential([L.Input((4,)), inner, L.Dense(1, name="head")])
    np.testing.assert_array_equal(seq.predict(data), seq.get_layer("head")(inner.predict(data)))
    assert len(seq._engine.plan(np.dtype("float32"), False).steps) == 2


# ---------------------------------------------------------------- gradients of whole models
def _model_gradients(model, xs, y):
    plan = model._engine.plan(np.dtype(cl.config.floatx()), training=True)
    model._engine.gradients(plan, model._prepare_input(xs), y)
    return {(layer.name, key): layer.grads[key].copy() for layer, _ in model._leaves() for key in layer.grads}


def _loss(model, xs, y):
    return model.evaluate(xs, y, verbose=0)


@pytest.mark.parametrize("kernels", KERNELS)
def test_residual_model_gradients_finite_differences(kernels):
    cl.config.set_floatx("float64")
    cl.set_random_seed(4)
    model = residual_model(size=5)
    model.compile("sgd", "sparse_categorical_crossentropy")
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4, 5, 5, 1))
    y = np.array([0, 1, 2, 1])
    with cl.config.using_kernels(kernels):
        grads = _model_gradients(model, x, y)
        for layer, _ in model._leaves():
            for key, w in layer._weights.items():
                # evaluate's loss is the mean over samples, as the gradients are
                numeric = numeric_grad(lambda: _loss(model, x, y), w)
                np.testing.assert_allclose(grads[(layer.name, key)], numeric, rtol=1e-5, atol=1e-8, err_msg=key)


@pytest.mark.parametrize("kernels", KERNELS)
def test_shared_layer_gradient_is_the_sum_over_calls(kernels):
    cl.config.set_floatx("float64")
    cl.set_random_seed(6)
    x = cl.Input((4, 4, 1))
    conv = L.Conv2D(1, 3, padding="same", activation="tanh", name="shared_conv")
    twice = conv(conv(x))  # the same layer at two depths
    y = L.Concatenate()([twice, conv(x)])  # and in another branch
    out = L.Dense(2, name="out")(L.Flatten()(y))
    model = cl.Model(x, out)
    model.compile("sgd", "mse")
    rng = np.random.default_rng(7)
    data, labels = rng.normal(size=(3, 4, 4, 1)), rng.normal(size=(3, 2))
    with cl.config.using_kernels(kernels):
        assert "shared" in " ".join(model.plan())
        grads = _model_gradients(model, data, labels)
        for key, w in conv._weights.items():
            numeric = numeric_grad(lambda: _loss(model, data, labels), w)
            np.testing.assert_allclose(grads[("shared_conv", key)], numeric, rtol=1e-5, atol=1e-8, err_msg=key)
    assert len(model._engine.store.slots) == 4  # the shared kernel and bias once, the Dense's two


def test_multi_output_gradients_sum_one_loss_per_output():
    cl.config.set_floatx("float64")
    cl.set_random_seed(8)
    a, b = cl.Input((3,)), cl.Input((2,))
    h = L.Dense(4, activation="tanh", name="h")(L.Concatenate()([a, b]))
    o1, o2 = L.Dense(2, name="o1")(h), L.Dense(1, name="o2")(L.Multiply()([h, h]))
    model = cl.Model([a, b], [o1, o2])
    model.compile("sgd", "mse")
    rng = np.random.default_rng(9)
    xs = [rng.normal(size=(5, 3)), rng.normal(size=(5, 2))]
    ys = [rng.normal(size=(5, 2)), rng.normal(size=(5, 1))]
    plan = model._engine.plan(np.dtype("float64"), training=True)
    model._engine.gradients(plan, model._prepare_input(xs), ArrayGroup(ys))
    h_layer = model.get_layer("h")
    expected = numeric_grad(lambda: model.evaluate(xs, ys, verbose=0), h_layer.kernel)
    np.testing.assert_allclose(h_layer.grads["kernel"], expected, rtol=1e-5, atol=1e-8)
    by_hand = np.mean((model.predict(xs)[0] - ys[0]) ** 2) + np.mean((model.predict(xs)[1] - ys[1]) ** 2)
    assert model.evaluate(xs, ys, verbose=0) == pytest.approx(by_hand, rel=1e-12)
    history = model.fit(xs, ys, epochs=2, batch_size=2, verbose=0)
    assert len(history.history["loss"]) == 2


# ---------------------------------------------------------------- training
@pytest.mark.parametrize("kernels", KERNELS)
def test_residual_gap_model_trains_on_tiny_mnist_like_data(kernels):
    cl.set_random_seed(10)
    rng = np.random.default_rng(10)
    labels = np.arange(60) % 3
    images = rng.random((60, 8, 8, 1)).astype("float32") * 0.2
    for i, c in enumerate(labels):
        images[i, 2 * c : 2 * c + 2, :, 0] += 1.0  # each class lights up its own rows
    model = residual_model(filters=4)
    model.compile(cl.optimizers.Adam(0.05), "sparse_categorical_crossentropy", metrics=["accuracy"])
    with cl.config.using_kernels(kernels):
        history = model.fit(images, labels, epochs=8, batch_size=10, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.8 * losses[0], losses


def test_fast_plan_accelerates_linear_chains_but_not_outputs():
    x = cl.Input((8, 8, 1))
    y = L.MaxPool2D(name="pool")(L.Conv2D(2, 3, activation="relu", name="conv")(x))
    z = L.Conv2D(2, 1, name="side")(y)
    merged = L.Add()([y, z])
    model = cl.Model(x, L.Dense(2, activation="softmax", name="out")(L.Flatten()(merged)))
    model.compile("sgd", "sparse_categorical_crossentropy")
    with cl.config.using_kernels("fast"):
        lines = model.plan()
    from cnnlab import _accel

    if _accel.AVAILABLE:
        assert any(line.startswith("conv, pool: ConvPool (accelerated)") for line in lines), lines
    assert any(line.startswith("out: Dense (reference)") for line in lines), lines
    with cl.config.using_kernels("reference"):
        assert all("(reference)" in line for line in model.plan()[1:])


# ---------------------------------------------------------------- structure, summary, config, files
def test_summary_matches_real_keras_and_rebuilds_from_keras_config():
    fixture = json.loads(FIXTURE.read_text())
    model = cl.Model.from_config(fixture["config"], layer_from_config=_from_keras_entry)
    lines: list[str] = []
    model.summary(print_fn=lines.append)
    assert lines == fixture["summary"]
    model.set_weights([np.array(w, "float32") for w in fixture["weights"]])
    preds = model.predict([np.array(x, "float32") for x in fixture["x"]])
    for got, want in zip(preds, fixture["predictions"], strict=True):
        want = np.array(want)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)  # float32 on two libraries
    # cnnlab's own config has Keras's functional structure
    cfg = model.get_config()
    assert set(cfg) == {"name", "trainable", "layers", "input_layers", "output_layers"}
    assert cfg["input_layers"] == fixture["config"]["input_layers"]
    assert cfg["output_layers"] == fixture["config"]["output_layers"]
    for mine, theirs in zip(cfg["layers"], fixture["config"]["layers"], strict=True):
        assert mine["name"] == theirs["name"]
        assert _histories(mine["inbound_nodes"]) == _histories(theirs["inbound_nodes"])


def _histories(nodes):
    out = []
    for node in nodes:
        arg = node["args"][0]
        out.append([t["config"]["keras_history"] for t in (arg if isinstance(arg, list) else [arg])])
    return out


def _from_keras_entry(entry):
    """A test-side translation of Keras layer configs (cnnlab.keras_io does this for real)."""
    name, cfg = entry["class_name"], entry["config"]
    if name in ("InputLayer", "Functional"):
        return None  # cnnlab reads Keras's input layers and nested models itself
    cls = getattr(L, name)
    accepted = inspect.signature(cls.__init__).parameters
    kwargs = {k: v for k, v in cfg.items() if k in accepted and not isinstance(v, dict)}
    kwargs["name"] = cfg["name"]
    return cls(**kwargs)


def test_chain_summary_uses_sequential_layout():
    x = cl.Input((4,), name="in")
    model = cl.Model(x, L.Dense(2, name="d")(x), name="chain")
    lines: list[str] = []
    model.summary(print_fn=lines.append)
    # printed by Keras 3.15 for the same model (keras.Model(x, Dense(2)(x)), 80 columns)
    assert lines == [
        'Model: "chain"',
        "┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━┓",
        "┃ Layer (type)                    ┃ Output Shape           ┃       Param # ┃",
        "┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━┩",
        "│ in (InputLayer)                 │ (None, 4)              │             0 │",
        "├─────────────────────────────────┼────────────────────────┼───────────────┤",
        "│ d (Dense)                       │ (None, 2)              │            10 │",
        "└─────────────────────────────────┴────────────────────────┴───────────────┘",
        " Total params: 10 (40.00 B)",
        " Trainable params: 10 (40.00 B)",
        " Non-trainable params: 0 (0.00 B)",
    ]


@pytest.mark.parametrize("kernels", KERNELS)
def test_save_load_round_trip_bit_identical(tmp_path, kernels):
    cl.set_random_seed(11)
    a, b = cl.Input((6, 6, 1), name="a"), cl.Input((6, 6, 1), name="b")
    conv = L.Conv2D(2, 3, padding="same", activation="relu", name="conv")
    joined = L.Concatenate(name="cat")([L.Maximum(name="max")([conv(a), conv(b)]), a])
    inner_in = cl.Input((3,))
    inner = cl.Model(inner_in, L.Dense(2, name="inner_dense")(inner_in), name="inner")
    out1 = L.Dense(3, activation="softmax", name="out1")(L.GlobalAveragePooling2D(name="gap")(joined))
    model = cl.Model([a, b], [out1, inner(out1)], name="net")
    model.compile("adam", "mse")
    rng = np.random.default_rng(12)
    xs = [rng.random((8, 6, 6, 1)), rng.random((8, 6, 6, 1))]
    ys = [rng.random((8, 3)), rng.random((8, 2))]
    with cl.config.using_kernels(kernels):
        model.fit(xs, ys, epochs=1, batch_size=4, verbose=0)
        path = model.save(tmp_path / "net.cnnlab")
        loaded = cl.models.load_model(path)
        assert loaded.get_config() == model.get_config()
        for got, want in zip(loaded.predict(xs), model.predict(xs), strict=True):
            np.testing.assert_array_equal(got, want)
        for w1, w2 in zip(loaded.get_weights(), model.get_weights(), strict=True):
            np.testing.assert_array_equal(w1, w2)
        # the optimizer state came back: one more step gives the same weights
        model.fit(xs, ys, epochs=1, batch_size=8, shuffle=False, verbose=0)
        loaded.fit(xs, ys, epochs=1, batch_size=8, shuffle=False, verbose=0)
    for w1, w2 in zip(loaded.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(w1, w2)


def test_weights_in_keras_order_and_get_layer():
    model = residual_model()
    assert [layer.name for layer in model.layers] == ["image", "conv", "add", "gap", "out"]
    names = [w.shape for w in model.get_weights()]
    assert names == [(3, 3, 1, 1), (1,), (1, 3), (3,)]
    new = [np.full(w.shape, 0.5, "float32") for w in model.get_weights()]
    model.set_weights(new)
    assert float(model.get_layer("out").bias[0]) == 0.5
    assert model.get_layer(index=1) is model.get_layer("conv")
    with pytest.raises(InvalidArgumentError, match="no layer named"):
        model.get_layer("nope")


def test_explain_and_trace_every_layer_of_a_graph_model():
    cl.set_random_seed(13)
    x = cl.Input((6, 6, 1))
    c = L.Conv2D(2, 3, padding="same", activation="relu", name="c1")(x)
    pooled = L.MaxPool2D(name="pool")(L.Add(name="add")([c, L.Conv2D(2, 1, name="proj")(x)]))
    out = L.Dense(3, name="d")(L.Flatten(name="flat")(pooled))
    model = cl.Model(x, out)
    data = np.random.default_rng(3).random((2, 6, 6, 1)).astype("float32")
    trace = dict(cl.trace(model, data[1]))
    assert list(trace) == ["input", "c1", "proj", "add", "pool", "flat", "d"]
    with cl.config.using_kernels("reference"):  # the same arithmetic as the layers called on arrays
        np.testing.assert_array_equal(trace["d"], model.predict(data[1:])[0])
    one = data[1:]  # the same batch as trace's: BLAS may round a batch of 2 differently
    e = cl.explain(model, one, at=(0, 2, 1, 1), layer_name="pool")
    assert e.output == trace["pool"][2, 1, 1]
    e = cl.explain(model, one, at=(0, 2, 3, 0), layer_name="c1")
    assert e.output == trace["c1"][2, 3, 0]
    assert sum(float(v) for v in e.products.ravel()) + e.bias == pytest.approx(e.pre_activation)
    e = cl.explain(model, one, at=(0, 2), layer_name="d")
    assert e.output == trace["d"][2]
    # the merge: the two branches' values at that position, summed
    e = cl.explain(model, one, at=(0, 2, 3, 1), layer_name="add")
    assert e.output == trace["add"][2, 3, 1] and [t["value"] for t in e.terms] == [
        trace["c1"][2, 3, 1],
        trace["proj"][2, 3, 1],
    ]


# ---------------------------------------------------------------- Keras's errors
def test_graph_disconnected_and_unused_inputs():
    a, b = cl.Input((3,), name="a"), cl.Input((3,), name="b")
    y = L.Add(name="join")([L.Dense(3, name="da")(a), b])
    with pytest.raises(InvalidArgumentError, match=r"Graph disconnected.*'join'.*\"b\""):
        cl.Model(a, y)
    with pytest.raises(InvalidArgumentError, match='input "c" .* is not connected to the outputs'):
        cl.Model([a, b, cl.Input((3,), name="c")], y)
    with pytest.raises(InvalidArgumentError, match="must come straight from cl.Input"):
        cl.Model(y, y)
    with pytest.raises(InvalidArgumentError, match="symbolic tensors"):
        cl.Model(np.zeros((1, 3)), y)


def test_symbolic_mixed_with_arrays_and_repeated_names():
    a = cl.Input((3,))
    with pytest.raises(InvalidArgumentError, match="mix of symbolic tensors and ndarray"):
        L.Add()([a, np.zeros((1, 3))])
    with pytest.raises(InvalidArgumentError, match="takes one input"):
        L.Dense(2)([a, a])
    y = L.Dense(3, name="same")(L.Dense(3, name="same")(a))
    with pytest.raises(InvalidArgumentError, match='The name "same" is used 2 times'):
        cl.Model(a, y)


def test_config_with_a_cycle_or_missing_layer_is_refused():
    model = residual_model()
    cfg = model.get_config()
    conv = next(e for e in cfg["layers"] if e["name"] == "conv")
    # make conv read the output of add, which reads conv: a loop no layer call can resolve
    conv["inbound_nodes"][0]["args"][0]["config"]["keras_history"] = ["add", 0, 0]
    with pytest.raises(InvalidArgumentError, match="loops or disconnected nodes"):
        cl.Model.from_config(cfg)
    cfg = model.get_config()
    cfg["output_layers"] = ["missing", 0, 0]
    with pytest.raises(InvalidArgumentError, match="no layer named 'missing'"):
        cl.Model.from_config(cfg)


def test_wrong_inputs_at_predict_and_fit():
    a, b = cl.Input((3,), name="a"), cl.Input((2,), name="b")
    model = cl.Model([a, b], L.Dense(1)(L.Concatenate()([a, b])))
    with pytest.raises(InvalidArgumentError, match="expects 2 input arrays"):
        model.predict(np.zeros((4, 3)))
    with pytest.raises(InvalidArgumentError, match=r"x\[1\] with samples of shape \(2,\)"):
        model.predict([np.zeros((4, 3)), np.zeros((4, 3))])
    with pytest.raises(InvalidArgumentError, match="same number of samples"):
        model.predict([np.zeros((4, 3)), np.zeros((5, 2))])
    two = cl.Model(a, [L.Dense(1)(a), L.Dense(2)(a)])
    two.compile("sgd", "mse", metrics=["accuracy"])
    with pytest.raises(InvalidArgumentError, match="metrics for one output only"):
        two.fit(np.zeros((2, 3)), [np.zeros((2, 1)), np.zeros((2, 2))], verbose=0)
    two.compile("sgd", "mse")
    with pytest.raises(InvalidArgumentError, match="a list of 2 label arrays"):
        two.fit(np.zeros((2, 3)), np.zeros((2, 1)), verbose=0)
    with pytest.raises(InvalidArgumentError, match="functional model"):
        two.add(L.Dense(1))


def test_command_line_on_a_functional_model(tiny_data, tmp_path, capsys):
    from cnnlab import cli

    cl.set_random_seed(14)
    x = cl.Input((28, 28, 1), name="image")
    c = L.Conv2D(4, 3, padding="same", activation="relu", name="conv")(x)
    y = L.MaxPool2D(name="pool")(L.Add(name="residual")([c, L.Conv2D(4, 1, name="proj")(x)]))
    out = L.Dense(10, activation="softmax", name="probs")(L.GlobalAveragePooling2D(name="gap")(y))
    model = cl.Model(x, out, name="resnet_tiny")
    model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])  # the CLI's one-hot labels
    path = model.save(tmp_path / "res.cnnlab")
    assert cli.main(["summary", str(path)]) == 0
    text = capsys.readouterr().out
    assert "Connected to" in text and "conv[0][0]," in text
    assert cli.main(["evaluate", str(path), "--data", str(tiny_data)]) == 0
    assert cli.main(["trace", str(path), "--data", str(tiny_data), "--samples", "3"]) == 0
    assert "(3, 14, 14, 4)" in capsys.readouterr().out
    html = tmp_path / "page.html"
    assert cli.main(["explain", "model", str(path), "--data", str(tiny_data), "--html", str(html)]) == 0
    page = html.read_text()
    assert "conv (Conv2D)" in page and "pool (MaxPooling2D)" in page
    data = json.loads(re.search(r"const PAGE = (\{.*?\});\n", page, re.S).group(1))
    # the whole-model view of a graph model: its calls in order with their inputs, receptive fields
    # through the residual branch (the union of the 3x3 and 1x1 fields), the overlays and the weight panel
    stages = {st["name"]: st for st in data["model"]["stages"]}
    assert stages["residual"]["from"] == ["conv", "proj"]
    pool = next(panel for panel in data["layers"] if panel["title"] == "pool (MaxPooling2D)")
    assert pool["rf"] == [[2, -1, 4], [2, -1, 4]]
    assert [o["name"].split(" (")[0] for o in data["model"]["overlays"]] == ["Grad-CAM", "saliency"]
    assert any("conv.kernel" in choice["label"] for choice in data["model"]["weights"]["choices"])


def test_nested_model_with_several_inputs_and_outputs_trains_saves_and_loads(tmp_path):
    cl.set_random_seed(15)
    a, b = cl.Input((3,)), cl.Input((3,))
    inner = cl.Model([a, b], [L.Add(name="isum")([a, b]), L.Dense(2, name="idense")(a)], name="inner2")
    x1, x2 = cl.Input((3,)), cl.Input((3,))
    s, d = inner([x1, x2])
    block = cl.Sequential([L.Dense(4, name="sd"), L.Dense(1, name="sd2")], name="blk")
    model = cl.Model([x1, x2], block(L.Concatenate(name="cat")([s, d])))
    rng = np.random.default_rng(0)
    xs = [rng.normal(size=(5, 3)).astype("float32"), rng.normal(size=(5, 3)).astype("float32")]
    with cl.config.using_kernels("reference"):
        by_hand = block.predict(np.concatenate(inner.predict(xs), axis=-1))
        np.testing.assert_array_equal(model.predict(xs), by_hand)
    lines: list[str] = []
    model.summary(print_fn=lines.append)
    assert any("inner2[1][0]," in line for line in lines)  # Keras counts the nested model's own node
    model.compile("adam", "mse")
    model.fit(xs, rng.normal(size=(5, 1)), epochs=2, verbose=0)
    loaded = cl.models.load_model(model.save(tmp_path / "nested.cnnlab"))
    np.testing.assert_array_equal(loaded.predict(xs), model.predict(xs))
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]


def test_output_that_also_feeds_another_layer_gets_both_gradients():
    cl.config.set_floatx("float64")
    cl.set_random_seed(16)
    x = cl.Input((3,))
    probs = L.Dense(3, activation="softmax", name="probs")(x)  # an output, and read by "more"
    more = L.Dense(3, activation="softmax", name="more")(probs)
    model = cl.Model(x, [probs, more])
    model.compile("sgd", "categorical_crossentropy")
    rng = np.random.default_rng(17)
    data = rng.normal(size=(4, 3))
    labels = np.eye(3)[[0, 1, 2, 0]]
    ys = [labels, labels]
    plan = model._engine.plan(np.dtype("float64"), training=True)
    model._engine.gradients(plan, model._prepare_input(data), ArrayGroup(ys))
    layer = model.get_layer("probs")
    numeric = numeric_grad(lambda: model.evaluate(data, ys, verbose=0), layer.kernel)
    np.testing.assert_allclose(layer.grads["kernel"], numeric, rtol=1e-5, atol=1e-8)


def test_batch_normalization_and_dropout_in_a_graph_train():
    cl.set_random_seed(18)
    x = cl.Input((6, 6, 2))
    h = L.BatchNormalization(name="bn")(L.Conv2D(2, 3, padding="same", name="c")(x))
    h = L.Dropout(0.2)(L.Add()([h, x]))
    model = cl.Model(x, L.Dense(2, activation="softmax")(L.GlobalAveragePooling2D()(h)))
    model.compile(cl.optimizers.Adam(0.02), "sparse_categorical_crossentropy")
    rng = np.random.default_rng(19)
    data, labels = rng.normal(size=(16, 6, 6, 2)).astype("float32"), np.arange(16) % 2
    data[labels == 1] += 0.5
    before = model.get_layer("bn")._weights["moving_mean"].copy()
    history = model.fit(data, labels, epochs=6, batch_size=8, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert not np.array_equal(model.get_layer("bn")._weights["moving_mean"], before)  # statistics updated in training
    np.testing.assert_array_equal(model.predict(data), model.predict(data))  # inference: no dropout
