"""cl.explain on the layers after the lecture: BatchNormalization, SeparableConv2D, global pooling,
the merges, Rescaling, the activation layers and the layers that only move values. Expected values
come from hand arithmetic, a naive loop written here, NumPy's own index order, and the model's
inference path (``run_nodes``), never from the explanation code itself."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

import cnnlab as cl
from cnnlab.errors import InvalidArgumentError

L = cl.layers
EPS64 = np.finfo(np.float64).eps


def course_graph() -> cl.Model:
    """Every explained layer family in one graph model, float64."""
    cl.config.set_floatx("float64")
    cl.set_random_seed(0)
    inp = cl.Input((8, 8, 2))
    c = L.Cropping2D(1, name="crop")(L.ZeroPadding2D(1, name="pad")(L.Rescaling(0.5, offset=0.1, name="rescale")(inp)))
    s = L.SeparableConv2D(4, 3, padding="same", depth_multiplier=2, activation="relu", name="sep")(c)
    b = L.BatchNormalization(name="bn")(s)
    a = L.ReLU(max_value=6.0, name="relu6")(L.Add(name="add")([b, L.Conv2D(4, 1, name="proj")(c)]))
    u = L.MaxPooling2D(name="pool")(L.UpSampling2D(name="up")(a))
    cat = L.Concatenate(name="cat")([u, L.LeakyReLU(name="leaky")(u)])
    p = L.Permute((2, 1, 3), name="permute")(cat)
    g = L.GlobalAveragePooling2D(name="gap")(p)
    m = L.Multiply(name="mul")([g, L.GlobalMaxPooling2D(name="gmp")(p)])
    d = L.Dropout(0.3, name="drop")(L.Subtract(name="sub")([m, L.Average(name="avg")([g, m])]))
    out = L.Softmax(name="probs")(L.Dense(5, name="dense")(L.Maximum(name="max")([d, g])))
    model = cl.Model(inp, out)
    rng = np.random.default_rng(1)
    model.get_layer("bn").set_weights(
        [rng.uniform(0.5, 1.5, 4), rng.uniform(-0.2, 0.2, 4), rng.uniform(-0.3, 0.3, 4), rng.uniform(0.5, 2, 4)]
    )
    return model


SOURCE = re.compile(r"^input(?: (\d+))?\[([\d, ]+)\]$")


def test_every_layer_of_a_course_graph_model_explains_its_own_output():
    """For every layer call and several positions: ``.output`` is what the model's inference path
    computed there, every term that names an input cell holds that cell's value, and the formula
    recomputed from the shown numbers (``.value``) equals the output. Float64 bound: each value
    here is a sum of < 200 terms of magnitude < 10, so rounding stays below
    gamma_200 * 2000 ~ 4.4e-11 < 1e-10."""
    model = course_graph()
    x = np.random.default_rng(2).normal(size=(2, 8, 8, 2))
    runs = {node.layer.name: (arg, out) for node, arg, out in model.run_nodes(x)}
    rng = np.random.default_rng(3)
    checked = 0
    for name, (arg, out) in runs.items():
        for _ in range(4):
            at = tuple(int(rng.integers(0, n)) for n in out.shape)
            e = cl.explain(model, x, at=at, layer_name=name)
            assert e.output == out[at], name
            if hasattr(e, "value"):
                assert abs(e.value - e.output) <= 1e-10, (name, str(e))
                for term in e.terms:
                    found = SOURCE.match(term["source"])
                    if found:
                        which = arg[int(found.group(1))] if isinstance(arg, list) else arg
                        index = tuple(int(v) for v in found.group(2).split(","))
                        assert term["value"] == which[index], (name, term)
                        assert max(abs(t["value"]) for t in e.terms) < 10
                json.dumps(e.to_dict())
            checked += 1
    assert checked == 4 * len(runs) and len(runs) >= 20


def test_batch_normalization_by_hand():
    bn = L.BatchNormalization(epsilon=0.25)  # numbers exact in float32
    bn.build((None, 1, 1, 2))
    bn.set_weights([np.array([1.0, 2.0]), np.array([0.0, 1.0]), np.array([0.0, 3.0]), np.array([1.0, 3.75])])
    e = cl.explain(bn, np.array([[[[7.0, 5.0]]]]), at=(0, 0, 0, 1))
    # 2·(5 − 3)/sqrt(3.75 + 0.25) + 1 = 2·2/2 + 1 = 3, exact in both float types
    assert e.value == 3.0 and e.output == 3.0
    assert "2×(5 − 3)/sqrt(3.7500 + 0.25) + 1 = 3" in str(e)
    assert "moving" in e.formula


def test_global_pooling_by_hand():
    x = np.array([0.0, 3.0, 1.0, 3.0]).reshape(1, 2, 2, 1)
    avg = cl.explain(L.GlobalAveragePooling2D(), x, at=(0, 0))
    assert avg.value == 7.0 / 4 and "(0 + 3 + 1 + 3) / 4 = 7 / 4 = 1.7500" in str(avg)
    top = cl.explain(L.GlobalMaxPooling2D(keepdims=True), x, at=(0, 0, 0, 0))
    assert top.value == 3.0 and "at input[0, 0, 1, 0]" in str(top)  # the first of the two 3s


def naive_separable(x, dk, pk, bias, i, j, f, pad):
    """One output of a 'same' stride-1 separable convolution by plain loops (zero padding ``pad``)."""
    kh, kw, c_in, dm = dk.shape
    total = bias[f]
    for c in range(c_in):
        for m in range(dm):
            d = 0.0
            for a in range(kh):
                for b in range(kw):
                    r, q = i + a - pad, j + b - pad
                    if 0 <= r < x.shape[0] and 0 <= q < x.shape[1]:
                        d += x[r, q, c] * dk[a, b, c, m]
            total += d * pk[0, 0, c * dm + m, f]
    return total


def test_separable_convolution_equals_a_naive_loop():
    cl.config.set_floatx("float64")
    rng = np.random.default_rng(4)
    layer = L.SeparableConv2D(3, 3, padding="same", depth_multiplier=2, use_bias=True)
    x = rng.normal(size=(1, 5, 6, 2))
    layer(x)
    layer.set_weights([rng.normal(size=(3, 3, 2, 2)), rng.normal(size=(1, 1, 4, 3)), rng.normal(size=3)])
    dk, pk, bias = layer.get_weights()
    for i, j, f in [(0, 0, 0), (2, 3, 2), (4, 5, 1)]:
        e = cl.explain(layer, x, at=(0, i, j, f))
        expected = naive_separable(x[0], dk, pk, bias, i, j, f, 1)
        # two sums of 9 and 4 terms of magnitude < 20: far below 1e-12
        assert abs(e.value - expected) < 1e-12 and abs(e.output - expected) < 1e-12
        assert len([line for line in e.lines if line.startswith("depthwise")]) == 4
        assert e.lines[-1].startswith("pointwise filter")


def test_softmax_and_activations_by_hand():
    e = cl.explain(L.Softmax(), np.array([[1.0, 2.0, 3.0]]), at=(0, 0))
    expected = np.exp(-2.0) / (np.exp(-2.0) + np.exp(-1.0) + 1.0)
    assert e.value == pytest.approx(expected, abs=4 * EPS64) and "max 3" in str(e)
    soft = cl.explain(L.Activation("softmax"), np.array([[1.0, 2.0, 3.0]]), at=(0, 2))
    assert soft.kind == "softmax"
    assert cl.explain(L.LeakyReLU(negative_slope=0.5), np.array([[-4.0]]), at=(0, 0)).value == -2.0
    assert cl.explain(L.ReLU(max_value=6.0), np.array([[9.0]]), at=(0, 0)).value == 6.0
    sig = cl.explain(L.Activation("sigmoid"), np.array([[0.0]]), at=(0, 0))
    assert sig.value == 0.5 and "1/(1 + exp(−x))" in sig.formula
    assert cl.explain(L.Rescaling(1 / 255, offset=-1.0), np.array([[255.0]]), at=(0, 0)).value == 0.0


def test_merges_on_their_own_take_the_list_of_inputs():
    a, b = np.array([[1.0, 2.0]]), np.array([[10.0, 20.0]])
    assert cl.explain(L.Subtract(), [a, b], at=(0, 1)).value == -18.0
    assert "2 × 20 = 40" in str(cl.explain(L.Multiply(), [a, b], at=(0, 1)))
    assert cl.explain(L.Average(), [a, b], at=(0, 0)).value == 5.5
    cat = cl.explain(L.Concatenate(), [a, b], at=(0, 3))
    assert cat.value == 20.0 and "input 1[0, 1]" in str(cat)
    with pytest.raises(InvalidArgumentError, match="pass x as the list of its inputs"):
        cl.explain(L.Add(), a, at=(0, 0))


@pytest.mark.parametrize(
    ("layer", "at", "source"),
    [
        # NumPy's row-major order (np.unravel_index) is the independent reference for Flatten/Reshape
        (L.Flatten(), (0, 17), (0, *np.unravel_index(17, (2, 3, 4)))),
        (L.Reshape((4, 6)), (0, 3, 5), (0, *np.unravel_index(3 * 6 + 5, (2, 3, 4)))),
        (L.Permute((2, 1, 3)), (0, 2, 1, 3), (0, 1, 2, 3)),
        (L.UpSampling2D(2), (0, 3, 5, 1), (0, 1, 2, 1)),
        (L.Cropping2D(((1, 0), (1, 1))), (0, 0, 0, 2), (0, 1, 1, 2)),
        (L.ZeroPadding2D(1), (0, 2, 3, 0), (0, 1, 2, 0)),
        (L.Dropout(0.5), (0, 1, 2, 3), (0, 1, 2, 3)),
    ],
)
def test_layers_that_move_values_name_the_input_cell(layer, at, source):
    x = np.random.default_rng(5).normal(size=(1, 2, 3, 4)).astype(np.float32)  # the float type layers compute in
    e = cl.explain(layer, x, at=at)
    assert e.kind == "copy" and e.terms[0]["source"] == "input[" + ", ".join(map(str, source)) + "]"
    assert e.value == e.output == x[source]


def test_padding_cells_are_named_and_the_page_shows_the_terms():
    e = cl.explain(L.ZeroPadding2D(1), np.ones((1, 2, 2, 1)), at=(0, 0, 0, 0))
    assert e.value == 0.0 and "padding" in str(e)
    html = cl.explain(L.BatchNormalization(), np.ones((1, 2, 2, 3)), at=(0, 0, 0, 1))._repr_html_()
    assert "moving_variance" in html and "<table" in html
