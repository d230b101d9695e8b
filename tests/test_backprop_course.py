"""cl.explain_gradient for the course layers' weights (DepthwiseConv2D, SeparableConv2D's two
kernels, BatchNormalization's gamma and beta): the gradient against PyTorch autograd of the same
network in float64, the per-position terms against the step's gradient within their rounding
bound, and the shown new value against train_on_batch.

Tolerance of the autograd comparison: a chain of < 8 layers, each summing < 300 products of
magnitude < 10 in float64 (relative rounding below gamma_300 ~ 3.3e-14 of the summed magnitudes,
< 1e-10 over the chain and the batch); a wrong term or a missed path moves the gradient by far more."""

from __future__ import annotations

import numpy as np
import pytest

import cnnlab as cl

torch = pytest.importorskip("torch", reason="PyTorch autograd is the independent reference here")
F = torch.nn.functional
L = cl.layers
TOL = 1e-10


def build() -> cl.Sequential:
    cl.config.set_floatx("float64")
    cl.set_random_seed(7)
    model = cl.Sequential(
        [
            L.Input((6, 6, 2)),
            L.DepthwiseConv2D(3, padding="same", depth_multiplier=2, activation="tanh", name="dw"),
            L.BatchNormalization(name="bn"),
            L.SeparableConv2D(3, 3, padding="same", activation="tanh", name="sep"),
            L.GlobalAveragePooling2D(name="gap"),
            L.Dense(3, activation="softmax", name="out"),
        ]
    )
    rng = np.random.default_rng(8)
    model.get_layer("bn").set_weights([rng.uniform(0.5, 1.5, 4), rng.uniform(-0.2, 0.2, 4), np.zeros(4), np.ones(4)])
    for name in ("dw", "sep"):  # non-zero biases, so a bias term that is wrongly 0 would show
        layer = model.get_layer(name)
        weights = layer.get_weights()
        weights[-1] = rng.uniform(-0.3, 0.3, weights[-1].shape)
        layer.set_weights(weights)
    model.compile("adam", "categorical_crossentropy")
    return model


def autograd(model: cl.Sequential, x: np.ndarray, y: np.ndarray) -> dict[str, list[np.ndarray]]:
    """d mean loss / d every weight, from the same network written in PyTorch (training mode: the
    batch's statistics in BatchNormalization)."""
    params = {layer.name: [torch.tensor(w, requires_grad=True) for w in layer.get_weights()] for layer in model.layers}
    dk, db = params["dw"]
    c, dm = dk.shape[2], dk.shape[3]
    h = F.conv2d(
        torch.tensor(x).permute(0, 3, 1, 2), dk.permute(2, 3, 0, 1).reshape(c * dm, 1, 3, 3), db, padding=1, groups=c
    )
    h = torch.tanh(h)
    gamma, beta, _, _ = params["bn"]
    mean = h.mean(dim=(0, 2, 3), keepdim=True)
    var = ((h - mean) ** 2).mean(dim=(0, 2, 3), keepdim=True)
    eps = model.get_layer("bn").epsilon
    h = (h - mean) / torch.sqrt(var + eps) * gamma.reshape(1, -1, 1, 1) + beta.reshape(1, -1, 1, 1)
    sk, pk, sb = params["sep"]
    h = F.conv2d(h, sk.permute(2, 3, 0, 1).reshape(-1, 1, 3, 3), None, padding=1, groups=h.shape[1])
    h = torch.tanh(F.conv2d(h, pk.permute(3, 2, 0, 1), sb))
    kernel, bias = params["out"]
    z = h.mean(dim=(2, 3)) @ kernel + bias
    loss = -(torch.tensor(y) * torch.log_softmax(z, dim=-1)).sum(dim=-1).mean()
    loss.backward()
    return {name: [None if p.grad is None else p.grad.numpy() for p in values] for name, values in params.items()}


CASES = [
    ("dw", "kernel", 0, (2, 1, 1, 0)),
    ("dw", "bias", 1, 3),
    ("bn", "gamma", 0, 2),
    ("bn", "beta", 1, 1),
    ("sep", "depthwise_kernel", 0, (0, 2, 3, 0)),
    ("sep", "pointwise_kernel", 1, (0, 0, 2, 1)),
    ("sep", "bias", 2, 0),
]


@pytest.mark.parametrize(("layer_name", "weight", "k", "at"), CASES)
def test_course_weights_equal_autograd_terms_and_train_on_batch(layer_name, weight, k, at):
    rng = np.random.default_rng(9)
    x = rng.normal(size=(4, 6, 6, 2))
    y = np.eye(3)[[0, 2, 1, 1]]
    with cl.config.using_kernels("reference"):
        model = build()
        expected = autograd(build(), x, y)[layer_name][k]
        result = cl.explain_gradient(model, x, y, layer_name=layer_name, weight=weight, at=at)
        index = at if isinstance(at, tuple) else (at,)
        assert result.gradient == pytest.approx(float(expected[index]), abs=TOL)
        terms = result.terms
        assert abs(terms.total - result.gradient) <= result.rounding_bound
        assert len(terms.upstream) == 4 * 6 * 6  # one product per (n, i, j) where the weight was used
        # the inputs the terms name are the numbers the layer read
        if layer_name == "dw" and weight == "kernel":  # the first layer reads x itself: check every cell named
            for source, value in zip(terms.sources, terms.inputs, strict=True):
                if source == "padding":
                    assert value == 0
                else:
                    assert value == x[tuple(int(v) for v in source[2:-1].split(","))], source
            assert "padding" in terms.sources and any(src.startswith("x[") for src in terms.sources)
        model.train_on_batch(x, y)
        assert model.get_layer(layer_name)._weights[weight][index] == result.update.new_value


def test_depthwise_terms_read_the_layer_input_and_padding():
    rng = np.random.default_rng(10)
    x = rng.normal(size=(2, 6, 6, 2))
    y = np.eye(3)[[0, 1]]
    with cl.config.using_kernels("reference"):
        model = build()
        result = cl.explain_gradient(model, x, y, layer_name="dw", weight="kernel", at=(0, 0, 1, 1))
    t = result.terms
    for (n, i, j), source, value in zip(t.positions, t.sources, t.inputs, strict=True):
        r, q = i - 1, j - 1  # 'same' 3x3: the window starts one row and column up-left
        if 0 <= r < 6 and 0 <= q < 6:
            assert source == f"x[{n}, {r}, {q}, 1]" and value == x[n, r, q, 1]
        else:
            assert source == "padding" and value == 0
