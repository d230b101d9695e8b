"""Explanations: the explained value is the layer's own output, and the arithmetic adds up."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cnnlab as cl
from cnnlab import cli
from cnnlab.errors import ShapeError
from cnnlab.explain import explain, fmt, trace
from cnnlab.explain_views import MatrixError, parse_matrix
from cnnlab.layers import AveragePooling2D, Conv2D, Dense, Flatten, MaxPooling2D
from tests.conftest import train_net2


def test_lecture_example_text():
    conv = Conv2D(1, (2, 2))
    x = np.arange(16).reshape(1, 4, 4, 1).astype("float32")
    conv(x)
    conv.set_weights([np.array([[-0.25, 0.5], [-0.75, -0.5]]).reshape(2, 2, 1, 1), np.array([0.0])])
    e = explain(conv, x, at=(0, 0, 0, 0))
    assert e.arithmetic() == "0×-0.2500 + 1×0.5000 + 4×-0.7500 + 5×-0.5000 + 0 = -5"
    assert e.output == conv(x)[0, 0, 0, 0] == -5.0
    assert e.rows == [0, 1] and e.cols == [0, 1] and not e.padding.any()
    d = e.to_dict()
    assert d["output"] == -5.0 and d["window"] == [[[0.0], [1.0]], [[4.0], [5.0]]]
    json.dumps(d)


@st.composite
def conv_setup(draw):
    strided = draw(st.booleans())
    strides = (draw(st.integers(1, 3)), draw(st.integers(1, 3))) if strided else (1, 1)
    dilation = (1, 1) if strided else (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    h = draw(st.integers((k[0] - 1) * dilation[0] + 1, 8))
    w = draw(st.integers((k[1] - 1) * dilation[1] + 1, 8))
    return dict(
        filters=draw(st.integers(1, 3)),
        kernel_size=k,
        strides=strides,
        dilation_rate=dilation,
        padding=draw(st.sampled_from(["valid", "same"])),
        activation=draw(st.sampled_from([None, "relu", "tanh"])),
    ), (2, h, w, draw(st.integers(1, 3)))


@settings(max_examples=40, deadline=None)
@given(conv_setup(), st.integers(0, 2**31))
def test_conv_explanations_equal_the_forward_output(setup, seed):
    cfg, shape = setup
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape).astype(np.float32)
    layer = Conv2D(**cfg)
    y = layer(x)
    layer.set_weights([layer.kernel, rng.normal(size=cfg["filters"])])
    y = layer(x)
    for _ in range(5):
        at = tuple(int(rng.integers(0, s)) for s in y.shape)
        e = explain(layer, x, at=at)
        assert e.output == y[at]  # exactly the layer's value
        pre = e.products.sum() + e.bias
        assert e.pre_activation == pytest.approx(pre)
        expected = {"linear": pre, "relu": max(pre, 0), "tanh": np.tanh(pre)}[layer.activation]
        assert e.output == pytest.approx(expected, rel=1e-4, abs=1e-4)
        # padding cells are exactly the window cells outside the image, and they hold 0
        inside = np.array([[0 <= r < shape[1] and 0 <= c < shape[2] for c in e.cols] for r in e.rows])
        np.testing.assert_array_equal(e.padding, ~inside)
        assert np.all(e.window[e.padding] == 0)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 3),
    st.integers(1, 3),
    st.one_of(st.none(), st.integers(1, 3)),
    st.sampled_from(["valid", "same"]),
    st.booleans(),
    st.integers(0, 2**31),
)
def test_pool_explanations_equal_the_forward_output(ph, pw, stride, padding, use_max, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(-3, 4, size=(2, 7, 6, 2)).astype(np.float32)  # ties on purpose
    layer = (MaxPooling2D if use_max else AveragePooling2D)((ph, pw), strides=stride, padding=padding)
    y = layer(x)
    for _ in range(5):
        at = tuple(int(rng.integers(0, s)) for s in y.shape)
        e = explain(layer, x, at=at)
        assert e.output == y[at]
        real = e.window[~e.padding]
        if use_max:
            r, q = e.winner
            assert e.window[r, q] == e.output == real.max()
            first = np.flatnonzero(e.window.ravel() == e.output)[0]  # first maximum, row-major
            assert (r, q) == divmod(int(first), e.window.shape[1])
            assert np.all(np.isneginf(e.window[e.padding]))
        else:
            assert e.divisor == real.size
            assert e.output == pytest.approx(real.mean(), rel=1e-6)


def test_dense_explanation_and_model_lookup():
    cl.set_seed(3)
    model = cl.Sequential(
        [
            cl.layers.Input((4, 4, 1)),
            Conv2D(2, 2, activation="relu"),
            Flatten(),
            Dense(3, activation="softmax", name="head"),
        ]
    )
    x = np.random.default_rng(1).normal(size=(2, 4, 4, 1))
    e = explain(model, x, at=(1, 2), layer_name="head")
    probs = model.predict(x)
    assert e.output == probs[1, 2]
    hidden = model.layers[1](model.layers[0](x))
    logits = hidden @ model.layers[2].kernel + model.layers[2].bias
    assert e.pre_activation == pytest.approx(float(logits[1, 2]), rel=1e-5)
    assert sum(t["product"] for t in e.top) + e.rest + e.bias == pytest.approx(e.pre_activation)
    assert "softmax over all 3 units" in str(e)
    assert explain(model, x, at=(0, 1, 1, 1), layer_name=0).output == model.layers[0](x)[0, 1, 1, 1]


def test_explain_errors():
    layer = MaxPooling2D()
    x = np.zeros((1, 4, 4, 1))
    with pytest.raises(
        ValueError, match=r"at=\(0, 2, 0, 0\) is outside the MaxPooling2D .* output of shape \(1, 2, 2, 1\)"
    ):
        explain(layer, x, at=(0, 2, 0, 0))

    class Doubler(cl.layers.Layer):
        """A layer of the user's own that changes values in a way explain has no formula for."""

        def forward(self, x, training=False):
            return 2 * x

    with pytest.raises(ValueError, match="explanations exist for Conv2D"):
        explain(Doubler(), x + 1, at=(0, 0, 0, 0))


def test_explain_checks_the_model_input_shape():
    """A 28x28x1 model given 32x32x3 images ran its layers on them (issue 11)."""
    model = cl.Sequential([cl.layers.Input((28, 28, 1)), Conv2D(2, 3, name="conv")], name="gray")
    with pytest.raises(
        ShapeError,
        match=r'Model "gray" expects samples of shape \(28, 28, 1\) .*received input of shape \(1, 32, 32, 3\)',
    ):
        explain(model, np.zeros((1, 32, 32, 3)), at=(0, 0, 0, 0), layer_name="conv")
    with pytest.raises(ShapeError, match=r"expects samples of shape \(28, 28, 1\).*\(1, 28, 28, 3\)"):
        explain(model, np.zeros((1, 28, 28, 3)), at=(0, 0, 0, 0), layer_name="conv")
    layer = Conv2D(1, 2, name="one")
    layer(np.zeros((1, 4, 4, 1)))
    with pytest.raises(ShapeError, match=r'layer "one".*axis -1 of input shape to have value 1.*\(1, 4, 4, 3\)'):
        explain(layer, np.zeros((1, 4, 4, 3)), at=(0, 0, 0, 0))


@pytest.mark.parametrize("depthwise", [False, True])
def test_softmax_activation_of_a_convolution_is_explained_over_the_channels(depthwise):
    """Softmax normalises over the channels of an output position; it was shown as if elementwise,
    ``softmax(z) = y``. The expected value is computed here from the layer's pre-activations
    (the same layer without activation), independently of the explanation's own terms."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 5, 5, 2))
    if depthwise:
        layer = cl.layers.DepthwiseConv2D(2, depth_multiplier=2, activation="softmax", name="sm")
        plain = cl.layers.DepthwiseConv2D(2, depth_multiplier=2, name="plain")
    else:
        layer, plain = Conv2D(3, 2, activation="softmax", name="sm"), Conv2D(3, 2, name="plain")
    y = layer(x)
    plain(x)
    plain.set_weights(layer.get_weights())
    z = plain(x).astype(np.float64)[1, 2, 3]  # every channel's pre-activation at output[1, 2, 3, :]
    for f in range(y.shape[-1]):
        e = explain(layer, x, at=(1, 2, 3, f))
        assert e.output == y[1, 2, 3, f]  # the layer's own output, bit for bit
        assert e.output == pytest.approx(np.exp(z[f]) / np.exp(z).sum(), rel=1e-5)
        np.testing.assert_allclose(e.channel_logits, z, rtol=1e-5, atol=1e-6)
        text = str(e)
        assert f"softmax over the {y.shape[-1]} channels of output[1, 2, 3, :]" in text
        assert f"softmax({fmt(e.pre_activation)})" not in text  # not elementwise
        assert " + ".join(f"exp({fmt(v)})" for v in e.channel_logits) in text
        assert len(e.to_dict()["channel_logits"]) == y.shape[-1]


def test_softmax_explanation_of_large_pre_activations_stays_finite():
    layer = Conv2D(2, 1, activation="softmax", kernel_initializer="ones", name="big")
    x = np.full((1, 1, 1, 1), 1000.0)
    y = layer(x)
    layer.set_weights([np.array([[[[1.0, 2.0]]]]), np.zeros(2)])
    e = explain(layer, x, at=(0, 0, 0, 0))
    assert e.output == layer(x)[0, 0, 0, 0] and y.shape == (1, 1, 1, 2)
    assert "divided by exp(2000), the largest, to stay finite" in str(e)


def test_trace_gives_every_layer_for_one_image():
    model = cl.Sequential([cl.layers.Input((6, 6, 1)), Conv2D(2, 2), MaxPooling2D(), Flatten(), Dense(3)])
    image = np.random.default_rng(0).normal(size=(6, 6, 1))
    steps = trace(model, image)
    assert [name for name, _ in steps][0] == "input" and len(steps) == 5
    assert [a.shape for _, a in steps] == [(6, 6, 1), (5, 5, 2), (2, 2, 2), (8,), (3,)]
    # the trace is the reference arithmetic: what predict computes with the reference kernels
    with cl.config.using_kernels("reference"):
        np.testing.assert_array_equal(steps[-1][1], model.predict(image[None])[0])


# ----------------------------------------------------------------- command line
EXERCISE = "0 0 0 1 1 1; " * 5 + "0 0 0 1 1 1"


def test_cli_answers_the_lecture_exercise(capsys):
    assert cli.main(["explain", "conv", "--image", EXERCISE, "--kernel", "-1 1; -1 1", "--all"]) == 0
    out = capsys.readouterr().out
    assert "  0   0   2   0   0 " in out
    assert out.count("= 2\n") == 5 and out.count("= 0\n") == 20
    assert "conv output[0, 3, 2, 0]: window rows 3..4, columns 2..3\n  0×-1 + 1×1 + 0×-1 + 1×1 + 0 = 2" in out


def test_cli_same_padding_and_channels(capsys):
    assert (
        cli.main(
            [
                "explain",
                "conv",
                "--image",
                "arange:3x3x2",
                "--kernel",
                "1 0; 0 1;; 1 1; 1 1",
                "--padding",
                "same",
                "--at",
                "2,2",
                "--bias",
                "0.5",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "(padding cells count as 0)" in out
    # channel 0 of cell (2,2): x[2,2,0]=16; channel 1: x[2,2,1]=17; padding beyond
    assert "channel 0: 16×1 + 0×0 + 0×0 + 0×1 = 16" in out and "channel 1: 17×1 + 0×1 + 0×1 + 0×1 = 17" in out
    assert "total: 16 + 17 + 0.5000 = 33.5000" in out


def test_cli_pool_digest_example(capsys):
    assert cli.main(["explain", "pool", "--image", "arange:5x5", "--padding", "same", "--at", "2,2"]) == 0
    out = capsys.readouterr().out
    assert "output:\n   6    8    9 \n  16   18   19 \n  21   23  [24]\n" in out  # digest section 2, case 4
    assert "max(24, -inf, -inf, -inf) = 24" in out and "winner: input[0, 4, 4, 0]" in out


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        # a value not in its option's documented form: a usage error, status 2 (as argparse's)
        (["conv", "--image", "1 2; 3", "--kernel", "1"], "row 2 has 1 value(s), row 1 has 2", 2),
        (["conv", "--image", "1 x; 3 4", "--kernel", "1"], "'x' in row 1 is not a number", 2),
        (["conv", "--image", "ones:4x4", "--kernel", "1 1; 1 1", "--at", "5,0"], "--at 5,0: the output has 3 row", 2),
        (
            ["conv", "--image", "ones:4x4", "--kernel", "1 1;; 1 1"],
            "--kernel has 2 channel plane(s) but --image has 1",
            2,
        ),
        (["pool", "--image", "nothere.npy"], "no such file nothere.npy", 2),
        # values in their form that do not fit together: status 1
        (["conv", "--image", "ones:2x2", "--kernel", "ones:3x3"], "floor((n - (k-1)*d - 1) / s) + 1", 1),
    ],
)
def test_cli_explain_errors_are_one_line(args, message, code, capsys):
    assert cli.main(["explain", *args]) == code
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_parse_matrix_sources(tmp_path):
    np.save(tmp_path / "a.npy", np.arange(12).reshape(2, 3, 2))
    assert parse_matrix(str(tmp_path / "a.npy")).shape == (2, 3, 2)
    from PIL import Image

    Image.fromarray(np.arange(12, dtype=np.uint8).reshape(3, 4)).save(tmp_path / "a.png")
    np.testing.assert_array_equal(parse_matrix(str(tmp_path / "a.png"))[..., 0], np.arange(12).reshape(3, 4))
    with pytest.raises(MatrixError, match="channel plane 2"):
        parse_matrix("1 2;; 1 2; 3 4")


def test_cli_png_and_html_files(tmp_path, capsys):
    png, html = tmp_path / "w.png", tmp_path / "w.html"
    assert (
        cli.main(
            [
                "explain",
                "conv",
                "--image",
                EXERCISE,
                "--kernel",
                "-1 1; -1 1",
                "--at",
                "1,2",
                "--png",
                str(png),
                "--html",
                str(html),
            ]
        )
        == 0
    )
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 20_000
    page = html.read_text()
    assert "<script>" in page and "http://" not in page and "https://" not in page  # nothing fetched
    assert '"kind":"conv"' in page


def test_cli_explain_model(tiny_data, tmp_path, capsys):
    model_path = train_net2(tiny_data, tmp_path / "n.cnnlab")
    capsys.readouterr()
    assert (
        cli.main(
            [
                "explain",
                "model",
                str(model_path),
                "--index",
                "3",
                "--data",
                str(tiny_data),
                "--png",
                str(tmp_path / "m.png"),
                "--html",
                str(tmp_path / "m.html"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "test image 3" in out and "(27, 27, 30)" in out and "prediction:" in out
    assert (tmp_path / "m.png").stat().st_size > 20_000 and (tmp_path / "m.html").stat().st_size > 10_000
    assert cli.main(["explain", "model", str(model_path), "--index", "99", "--data", str(tiny_data)]) == 1
    assert "--index 99 is out of range: the test set has 20 images" in capsys.readouterr().err


@pytest.mark.parametrize("at", [None, 3, (0, 1.9, 0, 0), ("a", 0, 0, 0), (0, True, 0, 0)])
def test_explain_at_must_be_whole_indices(at):
    layer = MaxPooling2D()
    x = np.zeros((1, 4, 4, 1))
    expected = r"expected at to be a tuple of 4 whole-number indices .* e\.g\. at=\(0, 0, 0, 0\)"
    with pytest.raises(ValueError, match=expected):
        explain(layer, x, at=at)


@pytest.mark.parametrize("name", [True, 1.0, "layer_object"])
def test_explain_layer_name_must_be_a_name_or_an_index(name):
    model = cl.Sequential([cl.layers.Input((4, 4, 1)), MaxPooling2D(), Flatten()])
    if name == "layer_object":
        name = model.layers[0]
    with pytest.raises(ValueError, match="expected layer_name to be a layer's name"):
        explain(model, np.zeros((1, 4, 4, 1)), at=(0, 0, 0, 0), layer_name=name)
