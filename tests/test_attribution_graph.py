"""Attribution and backprop arithmetic on graph models (residual Add, a shared layer, Multiply,
Concatenate, a nested Sequential): gradients against PyTorch autograd on the same weights in
float64, Grad-CAM against an independent computation, the weight update against train_on_batch.

Tolerance of the float64 comparisons: every value is a chain of < 10 layers, each a sum of < 100
products of magnitude < 10 (tanh outputs, kernels of default initialisation), so each layer adds a
relative rounding error below gamma_100 = 100 * 1.1e-16 ~ 1.1e-14 of its summed magnitudes, and
the chain below 1e-12 of values < 10; TOL = 1e-10 leaves a factor 10 above that bound and is
still 6 orders of magnitude below a wrong gradient (entries of order 1e-3 to 1)."""

from __future__ import annotations

import numpy as np
import pytest

import cnnlab as cl
from cnnlab.attribution import run_pass
from cnnlab.errors import InvalidArgumentError
from cnnlab.layers import Add, Concatenate, Conv2D, Dense, GlobalAveragePooling2D, Multiply

torch = pytest.importorskip("torch", reason="PyTorch autograd is the independent reference here")
F = torch.nn.functional
TOL = 1e-10


def build(seed: int = 0) -> tuple[cl.Model, cl.Model]:
    """The graph model (float64) and the sub-model up to the Concatenate (for Grad-CAM's A)."""
    cl.config.set_floatx("float64")
    cl.set_random_seed(seed)
    inp = cl.Input((6, 6, 2))
    h = Conv2D(3, 3, padding="same", activation="tanh", name="c1")(inp)
    shared = Conv2D(3, 1, activation="tanh", name="shared")
    a = shared(h)
    b = shared(Conv2D(3, 3, padding="same", activation="tanh", name="c2")(h))
    s = Add(name="add")([h, a, b])
    cat = Concatenate(name="cat")([s, Multiply(name="mul")([a, b])])
    head = cl.Sequential([cl.layers.Input((6,)), Dense(4, activation="tanh", name="inner")], name="head")
    out = Dense(3, activation="softmax", name="out")(head(GlobalAveragePooling2D(name="gap")(cat)))
    return cl.Model(inp, out), cl.Model(inp, cat)


def leaf(model: cl.Model, name: str):
    """A layer by name, also inside the nested model (``get_layer`` looks one level deep, as Keras)."""
    return next(layer for layer, _ in model._leaves() if layer.name == name)


def torch_forward(model: cl.Model, x: np.ndarray, upto_cat: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The same graph written in PyTorch (NHWC kept; convolutions through NCHW), float64. With
    ``upto_cat`` the head runs on that tensor instead (for d score / d cat)."""

    def w(name: str) -> list[torch.Tensor]:
        return [torch.tensor(v, dtype=torch.float64) for v in leaf(model, name).get_weights()]

    def conv(t: torch.Tensor, name: str, pad: int) -> torch.Tensor:
        k, bias = w(name)
        y = F.conv2d(t.permute(0, 3, 1, 2), k.permute(3, 2, 0, 1), bias, padding=pad)
        return torch.tanh(y.permute(0, 2, 3, 1))

    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    if upto_cat is None:
        h = conv(xt, "c1", 1)
        a, b = conv(h, "shared", 0), conv(conv(h, "c2", 1), "shared", 0)
        cat = torch.cat([h + a + b, a * b], dim=-1)
    else:
        cat = upto_cat
    gap = cat.mean(dim=(1, 2))
    k_in, b_in = w("inner")
    k_out, b_out = w("out")
    logits = torch.tanh(gap @ k_in + b_in) @ k_out + b_out
    return {"x": xt, "cat": cat, "logits": logits}


def test_gradient_pass_walks_the_graph_and_equals_predict():
    model, _ = build()
    x = np.random.default_rng(1).normal(size=(3, 6, 6, 2))
    p = run_pass(model, x)
    try:
        assert p.names.count("shared") == 2  # one entry per call
        logits = p.logits
    finally:
        p.release()
    ref = torch_forward(model, x)["logits"].detach().numpy()
    np.testing.assert_allclose(logits, ref, rtol=0, atol=TOL)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(probs / probs.sum(axis=1, keepdims=True), model.predict(x), rtol=0, atol=TOL)


@pytest.mark.parametrize("c", [0, 2])
def test_input_gradients_of_a_graph_model_equal_autograd(c):
    model, _ = build()
    x = np.random.default_rng(2).normal(size=(6, 6, 2))
    t = torch_forward(model, x[None])
    t["logits"][0, c].backward()
    expected = t["x"].grad.numpy()[0]
    sal = cl.explain_prediction(model, x, method="saliency", class_index=c)
    np.testing.assert_allclose(sal.attributions, expected, rtol=0, atol=TOL)
    assert sal.score == pytest.approx(float(t["logits"][0, c].detach()), abs=TOL)
    ig = cl.explain_prediction(model, x, method="integrated_gradients", class_index=c, steps=64)
    comp = ig.details["completeness"]
    # midpoint rule on a smooth path: the gap shrinks as 1/steps^2; here it is far below the score scale
    assert abs(comp["gap"]) < 1e-2 * (1 + abs(comp["score_difference"]))


@pytest.mark.parametrize("method", ["grad_cam", "grad_cam++"])
def test_grad_cam_on_a_graph_model_picks_the_last_spatial_tensor_and_equals_an_independent_computation(method):
    model, upto_cat = build()
    x = np.random.default_rng(3).normal(size=(6, 6, 2))
    res = cl.explain_prediction(model, x, method=method)
    assert res.layer_name == "cat"
    assert '"gap" (GlobalAveragePooling2D), which removes the spatial axes' in res.note
    acts = upto_cat.predict(x[None])  # A by the engine's predict, not by the gradient pass
    cat = torch.tensor(acts, dtype=torch.float64, requires_grad=True)
    torch_forward(model, x[None], upto_cat=cat)["logits"][0, res.class_index].backward()
    a, g = acts[0], cat.grad.numpy()[0]
    if method == "grad_cam":
        weights = g.mean(axis=(0, 1))
    else:
        relu_g = np.maximum(g, 0)
        alpha = g**2 / np.where(2 * g**2 + a.sum(axis=(0, 1)) * g**3 != 0, 2 * g**2 + a.sum(axis=(0, 1)) * g**3, 1)
        weights = (relu_g * alpha).sum(axis=(0, 1))
    cam = np.maximum((a * weights).sum(axis=-1), 0)
    cam = cam / cam.max()
    np.testing.assert_allclose(res.details["map_before_upsampling"], cam, rtol=0, atol=1e-8)


def test_graph_model_errors_name_the_problem():
    model, _ = build()
    x = np.random.default_rng(4).normal(size=(6, 6, 2))
    with pytest.raises(InvalidArgumentError, match="'shared' is shared: it is called 2 times"):
        cl.explain_prediction(model, x, method="grad_cam", layer_name="shared")
    with pytest.raises(InvalidArgumentError, match="no layer named 'nope'"):
        cl.explain_prediction(model, x, method="grad_cam", layer_name="nope")
    i1, i2 = cl.Input((4, 4, 1)), cl.Input((4, 4, 1))
    two = cl.Model([i1, i2], Dense(2)(GlobalAveragePooling2D()(Add()([i1, i2]))))
    with pytest.raises(InvalidArgumentError, match="2 inputs"):
        cl.explain_prediction(two, [np.zeros((1, 4, 4, 1)), np.zeros((1, 4, 4, 1))])
    model.compile("adam", "categorical_crossentropy")
    with pytest.raises(InvalidArgumentError, match='"shared" is shared: it is called 2 times'):
        cl.explain_gradient(model, x[None], np.eye(3)[:1], layer_name="shared")


@pytest.mark.parametrize(("layer_name", "weight", "at"), [("c2", "kernel", (1, 2, 0, 1)), ("inner", "bias", 3)])
def test_explain_gradient_on_a_graph_model_equals_autograd_and_train_on_batch(layer_name, weight, at):
    x = np.random.default_rng(5).normal(size=(4, 6, 6, 2))
    y = np.eye(3)[[0, 2, 1, 2]]
    with cl.config.using_kernels("reference"):
        model, _ = build()
        model.compile("adam", "categorical_crossentropy")
        result = cl.explain_gradient(model, x, y, layer_name=layer_name, weight=weight, at=at)
        # the independent gradient: autograd of the mean cross-entropy with respect to that weight
        twin, _ = build()
        params = {}

        def w(name: str) -> list[torch.Tensor]:
            values = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in leaf(twin, name).get_weights()]
            params[name] = values
            return values

        twin_weights = {name: w(name) for name in ("c1", "shared", "c2", "inner", "out")}

        def conv(t, name, pad):
            k, b = twin_weights[name]
            return torch.tanh(
                F.conv2d(t.permute(0, 3, 1, 2), k.permute(3, 2, 0, 1), b, padding=pad).permute(0, 2, 3, 1)
            )

        xt = torch.tensor(x)
        h = conv(xt, "c1", 1)
        a, b = conv(h, "shared", 0), conv(conv(h, "c2", 1), "shared", 0)
        gap = torch.cat([h + a + b, a * b], dim=-1).mean(dim=(1, 2))
        z = torch.tanh(gap @ twin_weights["inner"][0] + twin_weights["inner"][1]) @ twin_weights["out"][0]
        z = z + twin_weights["out"][1]
        loss = -(torch.tensor(y) * torch.log_softmax(z, dim=-1)).sum(dim=-1).mean()
        loss.backward()
        target = params[layer_name][0 if weight == "kernel" else 1].grad.numpy()
        index = at if isinstance(at, tuple) else (at,)
        assert result.gradient == pytest.approx(float(target[index]), abs=TOL)
        assert result.loss == pytest.approx(float(loss.detach()), abs=TOL)
        assert abs(result.terms.total - result.gradient) <= result.rounding_bound
        # the shown new value is what train_on_batch writes, bit for bit
        model.train_on_batch(x, y)
        assert leaf(model, layer_name)._weights[weight][index] == result.update.new_value


def test_a_softmax_layer_at_the_end_is_scored_by_its_logits_like_a_softmax_activation():
    """Dense(3) + Softmax() and Dense(3, activation="softmax") with the same weights: the same logit
    score and the same gradients (the reviewer's case: the Softmax layer was taken for 'no softmax')."""
    cl.config.set_floatx("float64")
    cl.set_random_seed(11)
    layers = [cl.layers.Input((6, 6, 2)), Conv2D(3, 3, activation="tanh", name="conv"), cl.layers.Flatten()]
    a = cl.Sequential([*layers, Dense(3, name="dense"), cl.layers.Softmax(name="soft")])
    b = cl.Sequential(
        [
            cl.layers.Input((6, 6, 2)),
            Conv2D(3, 3, activation="tanh"),
            cl.layers.Flatten(),
            Dense(3, activation="softmax"),
        ]
    )
    b.set_weights(a.get_weights())
    x = np.random.default_rng(12).normal(size=(6, 6, 2))
    ra, rb = (cl.explain_prediction(m, x, method="saliency", class_index=1) for m in (a, b))
    assert ra.score_kind == rb.score_kind == "logit" and ra.score == rb.score
    np.testing.assert_array_equal(ra.attributions, rb.attributions)
    np.testing.assert_allclose(ra.probabilities, a.predict(x[None])[0], rtol=0, atol=TOL)


def test_grad_cam_skips_a_one_by_one_map_and_compiled_logits_get_probabilities():
    cl.config.set_floatx("float64")
    cl.set_random_seed(13)
    head = cl.Sequential(
        [
            cl.layers.Input((8, 8, 1)),
            Conv2D(4, 3, activation="relu", name="conv"),
            GlobalAveragePooling2D(keepdims=True, name="gap"),
            Conv2D(3, 1, name="head"),  # a fully convolutional head: a 1x1 map
            cl.layers.Flatten(),
        ]
    )
    x = np.random.default_rng(14).random((8, 8, 1))
    assert cl.explain_prediction(head, x).layer_name == "conv"
    head.compile("adam", cl.losses.SparseCategoricalCrossentropy(from_logits=True))
    r = cl.explain_prediction(head, x, method="saliency")
    out = head.predict(x[None])[0]
    expected = np.exp(out - out.max()) / np.exp(out - out.max()).sum()
    assert r.score_kind == "logit" and "from_logits=True" in r.note
    np.testing.assert_allclose(r.probabilities, expected, rtol=0, atol=TOL)


def test_explain_of_a_shared_layer_says_which_call_it_explains():
    model, _ = build()
    x = np.random.default_rng(15).normal(size=(1, 6, 6, 2))
    steps = dict(cl.trace(model, x[0]))  # calls in order: "shared", then "shared[1]"
    e = cl.explain(model, x, at=(0, 2, 3, 1), layer_name="shared")
    assert e.layer.endswith("(its first of 2 calls in the model)")
    assert e.output == steps["shared"][2, 3, 1] != steps["shared[1]"][2, 3, 1]
