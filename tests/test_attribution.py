"""cl.explain_prediction: gradients against central finite differences (float64, inputs with
margins from every ReLU/max-pooling tie), Grad-CAM against an independent NumPy computation,
integrated gradients' completeness, occlusion against a direct loop, SmoothGrad seeding, PNG."""

from __future__ import annotations

import json

import numpy as np
import pytest

import cnnlab as cl
from cnnlab.attribution import run_pass, upsample
from cnnlab.errors import InvalidArgumentError

EPS64 = np.finfo(np.float64).eps
H = 1e-5  # finite-difference step


def build(seed: int = 0) -> cl.Sequential:
    """conv -> BN (non-trivial moving statistics) -> relu -> max pool -> conv tanh -> flatten ->
    dropout -> dense softmax, in float64."""
    cl.config.set_floatx("float64")
    cl.set_random_seed(seed)
    model = cl.Sequential(
        [
            cl.layers.Input((8, 8, 2)),
            cl.layers.Conv2D(3, 3, name="conv_a"),
            cl.layers.BatchNormalization(name="bn"),
            cl.layers.Activation("relu", name="relu"),
            cl.layers.MaxPool2D(name="pool"),
            cl.layers.Conv2D(4, 2, activation="tanh", name="conv_b"),
            cl.layers.Flatten(name="flatten"),
            cl.layers.Dropout(0.5, name="drop"),
            cl.layers.Dense(5, activation="softmax", name="out"),
        ]
    )
    bn = model.get_layer("bn")
    rng = np.random.default_rng(seed + 100)
    bn.set_weights(
        [rng.uniform(0.5, 1.5, 3), rng.uniform(-0.2, 0.2, 3), rng.uniform(-0.3, 0.3, 3), rng.uniform(0.5, 2, 3)]
    )
    return model


def lipschitz_to_bn(model: cl.Sequential) -> float:
    """How much one input value moved by h can move any BN output: h * max|W| * max|gamma/sqrt(var+eps)|."""
    conv, bn = model.get_layer("conv_a"), model.get_layer("bn")
    gamma, _, _, var = bn.get_weights()
    return float(np.abs(conv.kernel).max() * np.max(np.abs(gamma) / np.sqrt(var + bn.epsilon)))


def input_with_margins(model: cl.Sequential, step: float) -> np.ndarray:
    """A random input whose ReLU inputs and max-pool windows are at least ``step`` moves away from a tie
    (moving one input by ``step`` cannot flip a ReLU or change a window's winner)."""
    move = step * lipschitz_to_bn(model)
    for seed in range(100):
        x = np.random.default_rng(seed).normal(size=(8, 8, 2))
        p = run_pass(model, x[None])
        z = p.output_of("bn")[0]
        r = p.output_of("relu")[0, :6, :6]  # the pool windows (valid, 2x2)
        p.release()
        windows = np.sort(r.reshape(3, 2, 3, 2, 3).transpose(0, 2, 4, 1, 3).reshape(3, 3, 3, 4), axis=-1)
        if np.abs(z).min() > 2 * move and (windows[..., -1] - windows[..., -2]).min() > 4 * move:
            return x
    raise AssertionError("no input without near-ties found")


def logit(model: cl.Sequential, x: np.ndarray, c: int) -> float:
    """Score by the inference path (layer calls), independent of the gradient pass."""
    out = x[None]
    for layer in model.layers[:-1]:
        out = layer(out)
    dense = model.layers[-1]
    return float((out @ dense.kernel + dense.bias)[0, c])


def fd_gradient(f, x: np.ndarray) -> np.ndarray:
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[idx] += H
        down[idx] -= H
        grad[idx] = (f(up) - f(down)) / (2 * H)
    return grad


def fd_tolerance(model: cl.Sequential, scale: float) -> float:
    """Central differences: rounding ~ 4*eps*|f|/(2h) plus truncation h^2/6 * |f'''|. On a tie-free
    neighbourhood the function is dense(tanh(affine(x))): |f'''| <= sum|W_out| * max|tanh'''| (= 2)
    * (largest pre-tanh slope)^3, with that slope <= sum|W_b| * lipschitz_to_bn."""
    w_out = np.abs(model.get_layer("out").kernel).sum()
    slope = np.abs(model.get_layer("conv_b").kernel).sum() * lipschitz_to_bn(model)
    return 4 * EPS64 * scale / (2 * H) + H**2 / 6 * w_out * 2 * slope**3


def test_inference_forward_keeps_caches_but_computes_what_predict_computes():
    model = build()
    x = np.random.default_rng(3).normal(size=(4, 8, 8, 2))
    moving = [w.copy() for w in model.get_layer("bn").get_weights()]
    state = cl.random.generator().bit_generator.state
    p = run_pass(model, x)
    logits = p.logits
    p.release()
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probs, model.predict(x), rtol=0, atol=64 * EPS64)
    # BatchNormalization used (and kept) its moving statistics; Dropout drew no mask
    for before, after in zip(moving, model.get_layer("bn").get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)
    assert cl.random.generator().bit_generator.state == state


@pytest.mark.parametrize("c", [0, 3])
def test_input_gradients_equal_finite_differences(c):
    model = build()
    x = input_with_margins(model, H)
    expected = fd_gradient(lambda v: logit(model, v, c), x)
    tol = fd_tolerance(model, abs(logit(model, x, c)) + 1)
    sal = cl.explain_prediction(model, x, method="saliency", class_index=c)
    np.testing.assert_allclose(sal.attributions, expected, rtol=0, atol=tol)
    np.testing.assert_allclose(sal.heatmap, np.abs(expected).max(axis=-1), rtol=0, atol=tol)
    gxi = cl.explain_prediction(model, x, method="gradient_x_input", class_index=c)
    np.testing.assert_allclose(gxi.heatmap, (expected * x).sum(axis=-1), rtol=0, atol=tol * np.abs(x).sum(-1).max())
    assert sal.score == pytest.approx(logit(model, x, c), abs=1e-12)
    assert sal.score_kind == "logit" and "pre-softmax logit" in sal.note


def pool_activations_and_fd(model: cl.Sequential, x: np.ndarray, c: int) -> tuple[np.ndarray, np.ndarray]:
    """The pool layer's output A by layer calls, and d logit / d A by finite differences through the
    rest of the model (conv_b, flatten, dropout at inference, dense by hand)."""
    out = x[None]
    for layer in model.layers[:4]:
        out = layer(out)
    acts = out[0]

    def rest(a: np.ndarray) -> float:
        v = a[None]
        for layer in model.layers[4:-1]:
            v = layer(v)
        dense = model.layers[-1]
        return float((v @ dense.kernel + dense.bias)[0, c])

    return acts, fd_gradient(rest, acts)


@pytest.mark.parametrize("method", ["grad_cam", "grad_cam++"])
def test_grad_cam_equals_an_independent_numpy_computation(method):
    model = build()
    x = input_with_margins(model, H)
    result = cl.explain_prediction(model, x, method=method, layer_name="pool")
    c = result.class_index
    acts, grads = pool_activations_and_fd(model, x, c)
    if method == "grad_cam":
        weights = grads.mean(axis=(0, 1))
    else:  # Grad-CAM++ with the exponential score (pytorch-grad-cam's closed form)
        alpha = grads**2 / (2 * grads**2 + acts.sum(axis=(0, 1)) * grads**3)
        weights = (np.maximum(grads, 0) * np.where(grads != 0, alpha, 0)).sum(axis=(0, 1))
    cam = np.maximum((acts * weights).sum(axis=-1), 0)
    cam /= cam.max()
    # rest of the model is smooth (tanh); same tolerance argument as for the input gradients
    tol = fd_tolerance(model, abs(result.score) + 1) * np.abs(acts).sum() * 10
    np.testing.assert_allclose(result.details["map_before_upsampling"], cam, rtol=0, atol=tol)
    assert result.layer_name == "pool" and result.heatmap.shape == (8, 8)
    assert 0 <= result.heatmap.min() and result.heatmap.max() <= 1
    default = cl.explain_prediction(model, x, method=method)
    assert default.layer_name == "conv_b"  # the last 4-d output before Flatten
    assert "last layer with spatial output" in default.note and '"flatten"' in default.note


def test_default_layer_is_last_spatial_before_global_pooling_and_layer_name_is_honoured():
    cl.set_random_seed(1)
    model = cl.Sequential(
        [
            cl.layers.Input((6, 6, 1)),
            cl.layers.Conv2D(2, 3, activation="relu", name="c1"),
            cl.layers.GlobalAveragePooling2D(name="gap"),
            cl.layers.Dense(3, activation="softmax", name="d"),
        ]
    )
    x = np.random.default_rng(0).random((6, 6, 1)).astype("float32")
    r = cl.explain_prediction(model, x)
    assert r.layer_name == "c1" and '"gap"' in r.note
    assert cl.explain_prediction(model, x, layer_name="c1", class_index=2).class_index == 2
    with pytest.raises(InvalidArgumentError, match="no layer named 'nope'"):
        cl.explain_prediction(model, x, layer_name="nope")


def test_upsampling_is_pil_bicubic_and_keeps_a_constant_map():
    from PIL import Image

    small = np.array([[0.0, 1.0], [0.5, 0.25]])
    big = upsample(small, (6, 6))
    pil = Image.fromarray(small.astype(np.float32), mode="F").resize((6, 6), Image.Resampling.BICUBIC)
    np.testing.assert_allclose(big, np.clip(np.asarray(pil), 0, 1), rtol=0, atol=0)
    np.testing.assert_allclose(upsample(np.full((3, 3), 0.5), (9, 9)), 0.5, rtol=0, atol=1e-6)


def smooth_model() -> cl.Sequential:
    cl.config.set_floatx("float64")
    cl.set_random_seed(5)
    return cl.Sequential(
        [
            cl.layers.Input((5, 5, 1)),
            cl.layers.Conv2D(3, 3, activation="tanh"),
            cl.layers.Flatten(),
            cl.layers.Dense(4, activation="softmax"),
        ]
    )


def test_integrated_gradients_completeness_gap_within_the_midpoint_rule_bound():
    model = smooth_model()
    x = np.random.default_rng(2).normal(size=(5, 5, 1))
    c = 1

    def g(alpha: float) -> float:
        p = run_pass(model, (alpha * x)[None])
        value = p.logits[0, c]
        p.release()
        return float(value)

    # midpoint rule on [0, 1]: |error| <= max|g''| / (24 m^2); max|g''| from second differences
    grid = np.linspace(0, 1, 201)
    d = 1e-3
    second = max(abs(g(a + d) - 2 * g(a) + g(a - d)) / d**2 for a in grid)
    gaps = []
    for steps in (4, 16, 64):
        r = cl.explain_prediction(model, x, method="integrated_gradients", class_index=c, steps=steps)
        comp = r.details["completeness"]
        assert comp["score_difference"] == pytest.approx(g(1) - g(0), abs=1e-12)
        bound = 1.5 * second / (24 * steps**2) + 1e-12  # 1.5: the second differences sample max|g''|
        assert abs(comp["gap"]) <= bound, (steps, comp, bound)
        gaps.append(abs(comp["gap"]))
        assert np.sum(r.attributions) == pytest.approx(comp["sum_of_attributions"], abs=1e-12)
    assert "completeness" in r.note


def test_occlusion_equals_a_direct_loop():
    model = smooth_model()
    x = np.random.default_rng(4).normal(size=(5, 5, 1))
    r = cl.explain_prediction(model, x, method="occlusion", class_index=2, window=2, stride=(2, 1), fill=0.5)

    def score(v: np.ndarray) -> float:
        p = run_pass(model, v[None])
        value = float(p.logits[0, 2])
        p.release()
        return value

    total, count = np.zeros((5, 5)), np.zeros((5, 5))
    for top in range(0, 4, 2):
        for left in range(0, 4, 1):
            v = x.copy()
            v[top : top + 2, left : left + 2] = 0.5
            total[top : top + 2, left : left + 2] += score(x) - score(v)
            count[top : top + 2, left : left + 2] += 1
    expected = np.where(count > 0, total / np.maximum(count, 1), 0.0)
    # batched vs one-by-one matrix products: float64 rounding of sums of < 100 terms of size < 10
    np.testing.assert_allclose(r.heatmap, expected, rtol=0, atol=2 * 100 * EPS64 * 10 * 25)
    assert r.details["windows"] == 8


def test_smoothgrad_is_repeatable_with_its_seed():
    model = smooth_model()
    x = np.random.default_rng(6).normal(size=(5, 5, 1))
    a = cl.explain_prediction(model, x, method="saliency", smoothgrad={"n": 6, "sigma": 0.2, "seed": 3})
    b = cl.explain_prediction(model, x, method="saliency", smoothgrad={"n": 6, "sigma": 0.2, "seed": 3})
    c = cl.explain_prediction(model, x, method="saliency", smoothgrad={"n": 6, "sigma": 0.2, "seed": 4})
    np.testing.assert_array_equal(a.heatmap, b.heatmap)
    assert not np.array_equal(a.heatmap, c.heatmap)
    plain = cl.explain_prediction(model, x, method="saliency")
    assert not np.array_equal(a.heatmap, plain.heatmap)
    # the mean of per-copy maps: with sigma=0 every copy is the image itself
    zero = cl.explain_prediction(model, x, method="gradient_x_input", smoothgrad={"n": 3, "sigma": 0.0, "seed": 0})
    np.testing.assert_allclose(zero.heatmap, cl.explain_prediction(model, x, method="gradient_x_input").heatmap)


def test_engine_gradient_store_is_not_touched():
    cl.set_random_seed(0)
    model = cl.Sequential([cl.layers.Input((6, 6, 1)), cl.layers.Conv2D(2, 3), cl.layers.Flatten(), cl.layers.Dense(3)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(0).random((4, 6, 6, 1)).astype("float32")
    model.train_on_batch(x, np.zeros((4, 3)))
    before = model._engine.store.grads.copy()
    r = cl.explain_prediction(model, x[0], method="grad_cam", class_index=1)
    np.testing.assert_array_equal(model._engine.store.grads, before)
    assert r.score_kind == "output" and "no softmax" in r.note


def test_png_json_and_errors(tmp_path):
    cl.set_random_seed(0)
    model = cl.Sequential(
        [
            cl.layers.Input((28, 28, 1)),
            cl.layers.Conv2D(4, 3, activation="relu"),
            cl.layers.MaxPool2D(),
            cl.layers.Flatten(),
            cl.layers.Dense(10, activation="softmax"),
        ]
    )
    x = np.zeros((28, 28), "float32")
    x[6:22, 10:18] = 1.0
    r = cl.explain_prediction(model, x)  # (H, W) accepted for one-channel models
    assert r.class_names is not None and r.class_names[9] == "Ankle boot"
    path = r.to_png(tmp_path / "cam.png")
    from PIL import Image

    with Image.open(path) as img:
        assert img.size[0] > 300
    json.dumps(r.to_dict())
    ig = cl.explain_prediction(model, x, method="integrated_gradients", steps=8)
    ig.to_png(tmp_path / "ig.png")
    json.dumps(ig.to_dict())
    with pytest.raises(InvalidArgumentError, match="unknown method 'lime'"):
        cl.explain_prediction(model, x, method="lime")
    with pytest.raises(InvalidArgumentError, match="out of range"):
        cl.explain_prediction(model, x, class_index=10)
    with pytest.raises(InvalidArgumentError, match="smoothgrad applies"):
        cl.explain_prediction(model, x, method="occlusion", smoothgrad=True)
    with pytest.raises(InvalidArgumentError, match="one image"):
        cl.explain_prediction(model, np.zeros((2, 28, 28, 1)))


def test_results_display_inline_in_jupyter():
    """``_repr_html_`` embeds the picture (a real PNG, no file) and the note; ``_repr_png_`` is the picture."""
    import base64
    import re

    model = build()
    x = np.random.default_rng(1).normal(size=model.input_shape[1:]).astype(np.float32)
    result = cl.explain_prediction(model, x, method="saliency")
    png = result._repr_png_()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    html = result._repr_html_()
    embedded = base64.b64decode(re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html).group(1))
    assert embedded == png
    assert "pre-softmax logit" in html or "score" in html.lower()
    y = np.zeros((4, model.output_shape[-1]), np.float32)
    y[:, 0] = 1
    model.compile("adam", "categorical_crossentropy")
    xs = np.random.default_rng(2).normal(size=(4, *model.input_shape[1:])).astype(np.float32)
    name = next(layer.name for layer in model.layers if layer.weights)
    with cl.config.using_kernels("reference"):
        grad = cl.explain_gradient(model, xs, y, layer_name=name, weight="bias", at=(0,))
    import html as html_lib

    shown = grad._repr_html_()
    assert shown.startswith('<pre class="cnnlab-gradient">')
    assert html_lib.unescape(shown[len('<pre class="cnnlab-gradient">') : -len("</pre>")]) == str(grad)
