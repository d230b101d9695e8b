"""The whole-model page's data: receptive fields (checked by perturbing input pixels), every
channel of every window layer, the flatten order and the output probabilities."""

from __future__ import annotations

import itertools

import numpy as np

import cnnlab as cl
from cnnlab import explain_views as views
from cnnlab.explain import receptive_fields, trace
from cnnlab.layers import Activation, AveragePooling2D, Conv2D, Cropping2D, Dense, Flatten, MaxPool2D, ZeroPadding2D


def field_box(field, i, j):
    (ar, br, er), (ac, bc, ec) = field
    return (ar * i + br, ar * i + br + er - 1), (ac * j + bc, ac * j + bc + ec - 1)


def test_receptive_fields_equal_the_pixels_that_change_each_cell():
    """Independent check: perturb each input pixel and see which output cells of each layer move
    (linear layers in float64, average pooling, so every pixel in the field really contributes)."""
    cl.config.set_floatx("float64")
    cl.set_seed(3)
    model = cl.Sequential(
        [
            cl.layers.Input((13, 12, 1)),
            Conv2D(2, (3, 2), padding="same"),
            AveragePooling2D((2, 2), strides=(2, 1), padding="same"),
            ZeroPadding2D(((1, 0), (0, 2))),
            Conv2D(2, (2, 3), strides=(2, 2)),
            Activation("linear"),
            Cropping2D(((1, 0), (0, 1))),
            Conv2D(1, (2, 2), dilation_rate=(1, 1)),
        ]
    )
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, Conv2D):
            layer.set_weights([rng.uniform(0.5, 1.5, layer.kernel.shape), np.zeros(layer.filters)])
    fields = receptive_fields(model)
    x = rng.normal(size=(1, 13, 12, 1))
    base = [out for _, out in trace(model, x)][1:]
    depends: dict[tuple[int, int, int], set[tuple[int, int]]] = {}
    for r, q in itertools.product(range(13), range(12)):
        moved = x.copy()
        moved[0, r, q, 0] += 1.0
        for k, (_, out) in enumerate(trace(model, moved)[1:]):
            changed = np.argwhere(np.any(out != base[k], axis=-1))
            for i, j in changed:
                depends.setdefault((k, int(i), int(j)), set()).add((r, q))
    checked = 0
    for k, layer in enumerate(model.layers):
        field = fields[layer.name]
        assert field is not None
        h, w = base[k].shape[:2]
        for i, j in itertools.product(range(h), range(w)):
            (r0, r1), (c0, c1) = field_box(field, i, j)
            pixels = depends.get((k, i, j), set())
            inside = {(r, q) for r in range(max(r0, 0), min(r1, 12) + 1) for q in range(max(c0, 0), min(c1, 11) + 1)}
            if isinstance(layer, ZeroPadding2D) and not (1 <= i < h and 0 <= j < w - 2):
                inside = set()  # a padding cell is a constant 0: its field holds no pixel
            # positive weights and linear layers: every pixel of the field moves the cell, no other does
            assert pixels == inside, (layer.name, i, j)
            checked += 1
    assert checked > 100


def test_fields_stop_at_layers_that_move_pixels_otherwise():
    model = cl.Sequential(
        [cl.layers.Input((8, 8, 1)), Conv2D(1, 3), cl.layers.UpSampling2D(), Conv2D(1, 2), Flatten(), Dense(2)]
    )
    fields = receptive_fields(model)
    assert fields["conv2d"] == ((1, 0, 3), (1, 0, 3))
    assert fields["up_sampling2d"] is None and fields["conv2d_1"] is None
    assert "dense" not in fields


def net2():
    cl.set_seed(5)
    return cl.Sequential(
        [
            cl.layers.Input((28, 28, 1)),
            Conv2D(30, (2, 2), activation="relu"),
            MaxPool2D(),
            Conv2D(30, (2, 2), activation="relu"),
            MaxPool2D(),
            Flatten(),
            Dense(10, activation="softmax"),
        ],
        name="net2",
    )


def test_model_page_data():
    model = net2()
    image = np.random.default_rng(1).uniform(0, 1, (28, 28, 1))
    names = [f"class {k}" for k in range(10)]
    page = views.model_page(model, image, "t", names, true_class=9, overlays=[{"name": "demo", "heatmap": np.eye(28)}])
    panels = page["layers"]
    assert [p["title"] for p in panels] == [f"{layer.name} ({type(layer).__name__})" for layer in model.layers[:4]]
    # every channel of every window layer is in the data (the page draws all of them)
    assert [np.array(p["out"]).shape for p in panels] == [(27, 27, 30), (13, 13, 30), (12, 12, 30), (6, 6, 30)]
    assert [p["rf"][0] for p in panels] == [[1, 0, 2], [2, 0, 3], [2, 0, 5], [4, 0, 7]]
    assert panels[3]["flatten"] == "flatten" and "flatten" not in panels[2]
    stages = page["model"]["stages"]
    assert [s["panel"] for s in stages] == [0, 1, 2, 3, None, None]
    assert "output index = (i·6 + j)·30 + c" in stages[4]["note"]
    outputs = page["model"]["outputs"]
    data = image[None]
    for layer in model.layers:  # the page shows each layer's own forward output
        data = layer(data)
    np.testing.assert_array_equal(outputs["values"], data[0])
    assert outputs["activation"] == "softmax" and outputs["classes"] == names and outputs["true"] == 9
    assert page["model"]["overlays"][0]["heatmap"][3][3] == 1.0
    # flatten order, independently: Flatten's output index k holds pool[i, j, c] with k = (i·6 + j)·30 + c
    pooled = model.layers[3](model.layers[2](model.layers[1](model.layers[0](image[None]))))
    flat = model.layers[4](pooled)
    assert flat[0, (1 * 6 + 2) * 30 + 5] == pooled[0, 1, 2, 5]


def test_receptive_fields_of_a_graph_model_are_the_smallest_boxes_around_the_pixels_that_change_each_cell():
    """Branches with different windows meet in Add and Concatenate: a merged cell reads the union of
    its inputs' fields, whose smallest box is the field; checked by perturbing every input pixel
    (positive weights, linear layers, float64, so every pixel of a field really moves the cell)."""
    from cnnlab.layers import Add

    cl.config.set_floatx("float64")
    cl.set_seed(4)
    inp = cl.Input((11, 10, 1))
    s = Add(name="s")(
        [Conv2D(2, (3, 2), padding="same", name="a")(inp), Conv2D(2, (1, 3), padding="same", name="b")(inp)]
    )
    p = AveragePooling2D((2, 2), strides=(2, 1), padding="same", name="p")(s)
    d = Conv2D(2, (2, 2), strides=(2, 1), padding="same", name="d")(s)
    out = Conv2D(1, (2, 2), name="e")(cl.layers.Concatenate(name="c")([p, d]))
    model = cl.Model(inp, out)
    rng = np.random.default_rng(1)
    for layer in model.layers:
        if isinstance(layer, Conv2D):
            layer.set_weights([rng.uniform(0.5, 1.5, layer.kernel.shape), np.zeros(layer.filters)])
    fields = receptive_fields(model)
    assert fields["s"] == ((1, -1, 3), (1, -1, 3))  # (3, 2) 'same' rows -1..1, cols 0..1; (1, 3): cols -1..1
    x = rng.normal(size=(11, 10, 1))
    base = dict(trace(model, x))
    depends: dict[tuple[str, int, int], set[tuple[int, int]]] = {}
    for r, q in itertools.product(range(11), range(10)):
        moved = x.copy()
        moved[r, q, 0] += 1.0
        for name, value in trace(model, moved)[1:]:
            for i, j in np.argwhere(np.any(value != base[name], axis=-1)):
                depends.setdefault((name, int(i), int(j)), set()).add((r, q))
    checked = 0
    for name in ("a", "b", "s", "p", "d", "c", "e"):
        h, w = base[name].shape[:2]
        for i, j in itertools.product(range(h), range(w)):
            (r0, r1), (c0, c1) = field_box(fields[name], i, j)
            pixels = depends[(name, i, j)]
            rows, cols = [r for r, _ in pixels], [q for _, q in pixels]
            # every pixel that moves the cell is in the box, and the box clipped to the image is tight
            assert (min(rows), max(rows), min(cols), max(cols)) == (max(r0, 0), min(r1, 10), max(c0, 0), min(c1, 9))
            checked += 1
    assert checked > 300


def test_depthwise_and_separable_convolutions_are_windows_for_the_receptive_field():
    """DepthwiseConv2D and SeparableConv2D read a window like Conv2D (the reviewer's case: they used
    to pass the field through unchanged); checked by perturbing every pixel, positive weights."""
    cl.config.set_floatx("float64")
    cl.set_seed(6)
    model = cl.Sequential(
        [
            cl.layers.Input((11, 9, 1)),
            cl.layers.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2, name="dw"),
            cl.layers.SeparableConv2D(2, (2, 3), padding="same", name="sep"),
        ]
    )
    rng = np.random.default_rng(2)
    for layer in model.layers:
        layer.set_weights([rng.uniform(0.5, 1.5, w.shape) for w in layer.get_weights()])
    fields = receptive_fields(model)
    x = rng.normal(size=(1, 11, 9, 1))
    base = [out for _, out in trace(model, x)][1:]
    depends: dict[tuple[int, int, int], set[tuple[int, int]]] = {}
    for r, q in itertools.product(range(11), range(9)):
        moved = x.copy()
        moved[0, r, q, 0] += 1.0
        for k, (_, out) in enumerate(trace(model, moved)[1:]):
            for i, j in np.argwhere(np.any(out != base[k], axis=-1)):
                depends.setdefault((k, int(i), int(j)), set()).add((r, q))
    for k, layer in enumerate(model.layers):
        h, w = base[k].shape[:2]
        for i, j in itertools.product(range(h), range(w)):
            (r0, r1), (c0, c1) = field_box(fields[layer.name], i, j)
            inside = {(r, q) for r in range(max(r0, 0), min(r1, 10) + 1) for q in range(max(c0, 0), min(c1, 8) + 1)}
            assert depends[(k, i, j)] == inside, (layer.name, i, j)
