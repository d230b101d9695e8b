"""DepthwiseConv2D, SeparableConv2D and Conv2D(groups=...): the fast NumPy kernels against their loop
references, finite-difference gradients (float64), Keras 3 parity (tests/fixtures/keras_conv_variants.npz,
written by tools/make_keras_conv_variant_fixtures.py with the torch backend), saving, and errors."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cnnlab as cl
from cnnlab import layers
from cnnlab.errors import InvalidArgumentError
from cnnlab.ops.conv import conv2d_backward, conv2d_forward, conv2d_forward_cols, conv2d_naive
from cnnlab.ops.depthwise import (
    depthwise_conv2d_backward,
    depthwise_conv2d_forward,
    depthwise_conv2d_forward_padded,
    depthwise_conv2d_naive,
    separable_conv2d_forward,
    separable_conv2d_naive,
)
from tests.numerics import a64, assert_within, gamma, sum_bound, unit_roundoff
from tests.test_gradients import check_layer

FIXTURES = np.load(Path(__file__).parent / "fixtures" / "keras_conv_variants.npz")
U = unit_roundoff("float32")
CASES = sorted(k[: -len("_class")] for k in FIXTURES if k.endswith("_class"))

GEOMETRIES = [
    ((1, 1), "valid", (1, 1)),
    ((2, 1), "same", (1, 1)),
    ((1, 1), "same", (2, 2)),
    ((2, 2), "valid", (1, 1)),
    ((2, 2), "same", (2, 1)),  # strides and dilation together: Keras 3 allows it for depthwise layers
]


def rng_arrays(*shapes, seed=0, dtype="float32"):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=s).astype(dtype) for s in shapes]


# ------------------------------------------------------------------ kernels against loop references
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
@pytest.mark.parametrize("dm", [1, 3])
def test_depthwise_matches_loop_reference(geometry, dm):
    x, w, b = rng_arrays((2, 7, 6, 3), (3, 2, 3, dm), (3 * dm,), seed=dm)
    got = depthwise_conv2d_forward(x, w, b, *geometry)
    exact = depthwise_conv2d_naive(x, w, b, *geometry)  # float64
    magnitude = depthwise_conv2d_naive(a64(x), a64(w), a64(b), *geometry)
    assert_within(got, exact, sum_bound(magnitude, 3 * 2, "float32", c=1), "depthwise vs loops")


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_separable_matches_loop_reference(geometry):
    x, dw, pw, b = rng_arrays((2, 7, 6, 3), (2, 3, 3, 2), (1, 1, 6, 4), (4,), seed=3)
    got = separable_conv2d_forward(x, dw, pw, b, *geometry)
    exact = separable_conv2d_naive(x, dw, pw, b, *geometry)
    magnitude = separable_conv2d_naive(a64(x), a64(dw), a64(pw), a64(b), *geometry)
    # nested sums: 2*3 depthwise products, then 6 pointwise terms
    assert_within(got, exact, sum_bound(magnitude, 2 * 3 + 6, "float32", c=1), "separable vs loops")


@pytest.mark.parametrize("geometry", GEOMETRIES[:4], ids=str)
@pytest.mark.parametrize("groups, c_in, filters", [(2, 4, 6), (3, 6, 3), (4, 4, 8)])
def test_grouped_conv_matches_loop_reference(geometry, groups, c_in, filters):
    x, w, b = rng_arrays((2, 7, 6, c_in), (3, 2, c_in // groups, filters), (filters,), seed=groups)
    got = conv2d_forward(x, w, b, *geometry, groups=groups)
    exact = conv2d_naive(x, w, b, *geometry, groups=groups)
    magnitude = conv2d_naive(a64(x), a64(w), a64(b), *geometry, groups=groups)
    assert_within(got, exact, sum_bound(magnitude, 3 * 2 * c_in // groups, "float32", c=1), "grouped conv")


@st.composite
def window_case(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    strides = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = draw(st.sampled_from(["valid", "same"]))
    h = draw(st.integers((kh - 1) * dilation[0] + 1, 11))
    w = draw(st.integers((kw - 1) * dilation[1] + 1, 11))
    n, groups, c_group, dm = (
        draw(st.integers(1, 2)),
        draw(st.integers(1, 3)),
        draw(st.integers(1, 2)),
        draw(st.integers(1, 3)),
    )
    return n, h, w, (kh, kw), strides, padding, dilation, groups, c_group, dm, draw(st.integers(0, 2**31))


@settings(max_examples=50, deadline=None)
@given(window_case())
def test_kernels_match_loop_references_over_random_cases(case):
    """Depthwise and separable (strides and dilation together allowed, as in Keras 3) and grouped
    convolution (Conv2D refuses strides with dilation, so its case drops the dilation) in float64."""
    n, h, w, kernel, strides, padding, dilation, groups, c_group, dm, seed = case
    c = groups * c_group
    x, k, b, pw = rng_arrays((n, h, w, c), (*kernel, c, dm), (c * dm,), (1, 1, c * dm, 2), seed=seed, dtype="float64")
    geometry = (strides, padding, dilation)
    taps = kernel[0] * kernel[1]
    magnitude = depthwise_conv2d_naive(a64(x), a64(k), a64(b), *geometry)
    bound = sum_bound(magnitude, taps, "float64")
    assert_within(depthwise_conv2d_forward(x, k, b, *geometry), depthwise_conv2d_naive(x, k, b, *geometry), bound)
    magnitude = separable_conv2d_naive(a64(x), a64(k), a64(pw), None, *geometry)
    bound = sum_bound(magnitude, taps + c * dm, "float64")
    got, want = separable_conv2d_forward(x, k, pw, None, *geometry), separable_conv2d_naive(x, k, pw, None, *geometry)
    assert_within(got, want, bound)
    filters = groups * dm
    kg, bg = rng_arrays((*kernel, c_group, filters), (filters,), seed=seed + 1, dtype="float64")
    geometry = (strides, padding, (1, 1))
    magnitude = conv2d_naive(a64(x), a64(kg), a64(bg), *geometry, groups=groups)
    bound = sum_bound(magnitude, taps * c_group, "float64")
    got, want = conv2d_forward(x, kg, bg, *geometry, groups=groups), conv2d_naive(x, kg, bg, *geometry, groups=groups)
    assert_within(got, want, bound)


def test_grouped_conv_is_the_full_conv_with_zero_blocks():
    """An independent check of the group layout: groups=2 equals an ordinary convolution whose kernel is
    zero wherever a filter's group does not see a channel (Keras: filter f of group f // (F/G) sees
    channels g*C/G ... (g+1)*C/G - 1)."""
    x, w = rng_arrays((1, 5, 5, 4), (3, 3, 2, 6), seed=7, dtype="float64")
    full = np.zeros((3, 3, 4, 6))
    full[:, :, :2, :3] = w[..., :3]
    full[:, :, 2:, 3:] = w[..., 3:]
    np.testing.assert_allclose(conv2d_forward(x, w, None, groups=2), conv2d_forward(x, full, None), atol=1e-13)


def test_hand_example_depthwise_multiplier_order():
    """Output channel c*dm + m: channel 0's two kernels first, then channel 1's."""
    x = np.stack([np.ones((2, 2)), 10 * np.ones((2, 2))], axis=-1)[None]  # (1, 2, 2, 2)
    w = np.zeros((2, 2, 2, 2))
    w[..., 0, 0], w[..., 0, 1], w[..., 1, 0], w[..., 1, 1] = 1, 2, 3, 4
    # channel 0: 4 cells of 1 -> 4*1, 4*2; channel 1: 4 cells of 10 -> 40*3, 40*4
    assert depthwise_conv2d_forward(x, w, None).ravel().tolist() == [4.0, 8.0, 120.0, 160.0]


def test_grouped_backward_matches_full_conv_backward():
    x, w, dy = rng_arrays((2, 5, 4, 4), (2, 2, 2, 6), (2, 4, 3, 6), seed=11, dtype="float64")
    full = np.zeros((2, 2, 4, 6))
    full[:, :, :2, :3], full[:, :, 2:, 3:] = w[..., :3], w[..., 3:]
    _, cols = conv2d_forward_cols(x, w, None, groups=2)
    dx, dw, db = conv2d_backward(dy, cols, x.shape, w, groups=2)
    _, cols_full = conv2d_forward_cols(x, full, None)
    dx_full, dw_full, db_full = conv2d_backward(dy, cols_full, x.shape, full)
    np.testing.assert_allclose(dx, dx_full, atol=1e-12)
    np.testing.assert_allclose(dw[..., :3], dw_full[:, :, :2, :3], atol=1e-12)
    np.testing.assert_allclose(dw[..., 3:], dw_full[:, :, 2:, 3:], atol=1e-12)
    np.testing.assert_allclose(db, db_full, atol=1e-12)


def test_depthwise_backward_without_dx():
    x, w, dy = rng_arrays((1, 4, 4, 2), (2, 2, 2, 1), (1, 3, 3, 2), seed=2, dtype="float64")
    _, xp = depthwise_conv2d_forward_padded(x, w, None)
    dx, dw, db = depthwise_conv2d_backward(dy, xp, x.shape, w, need_dx=False)
    assert dx is None
    np.testing.assert_allclose(db, dy.sum(axis=(0, 1, 2)))
    assert dw.shape == w.shape


# ------------------------------------------------------------------ finite differences (float64)
DEPTHWISE_CONFIGS = [
    dict(kernel_size=2),
    dict(kernel_size=(3, 2), strides=2, padding="same", depth_multiplier=2),
    dict(kernel_size=2, dilation_rate=2, padding="same", activation="tanh"),
    dict(kernel_size=2, strides=2, dilation_rate=2, padding="same", depth_multiplier=3, use_bias=False),
    dict(kernel_size=3, padding="same", activation="sigmoid"),
]
SEPARABLE_CONFIGS = [
    dict(filters=2, kernel_size=2),
    dict(filters=3, kernel_size=3, strides=(2, 1), padding="same", depth_multiplier=2, activation="tanh"),
    dict(filters=2, kernel_size=2, dilation_rate=2, use_bias=False),
]
GROUPED_CONFIGS = [
    dict(filters=4, kernel_size=2, groups=2),
    dict(filters=2, kernel_size=3, strides=2, padding="same", groups=2, activation="tanh"),
    dict(filters=6, kernel_size=(2, 3), dilation_rate=(1, 2), groups=2, use_bias=False),
]


@pytest.mark.parametrize("cfg", DEPTHWISE_CONFIGS, ids=str)
def test_depthwise_gradients(cfg):
    check_layer(layers.DepthwiseConv2D(**cfg), np.random.default_rng(1).normal(size=(2, 6, 5, 2)))


@pytest.mark.parametrize("cfg", SEPARABLE_CONFIGS, ids=str)
def test_separable_gradients(cfg):
    check_layer(layers.SeparableConv2D(**cfg), np.random.default_rng(2).normal(size=(2, 6, 5, 2)))


@pytest.mark.parametrize("cfg", GROUPED_CONFIGS, ids=str)
def test_grouped_conv_gradients(cfg):
    check_layer(layers.Conv2D(**cfg), np.random.default_rng(3).normal(size=(2, 6, 5, 4)))


# ------------------------------------------------------------------ Keras parity
def fixture_weights(prefix: str) -> list[np.ndarray]:
    out, i = [], 0
    while f"{prefix}_w{i}" in FIXTURES:
        out.append(FIXTURES[f"{prefix}_w{i}"])
        i += 1
    return out


def magnitude_and_terms(layer, x: np.ndarray) -> tuple[np.ndarray, int]:
    """``sum |terms|`` of every output (float64) and the depth of its nested sums."""
    w = [a64(v) for v in layer.get_weights()]
    b = w[-1] if layer.use_bias else None
    geometry = (layer.strides, layer.padding, layer.dilation_rate)
    kh, kw = layer.kernel_size
    if isinstance(layer, layers.DepthwiseConv2D):
        return depthwise_conv2d_forward(a64(x), w[0], b, *geometry), kh * kw
    if isinstance(layer, layers.SeparableConv2D):
        return separable_conv2d_forward(a64(x), w[0], w[1], b, *geometry), kh * kw + w[1].shape[2]
    return conv2d_forward(a64(x), w[0], b, *geometry, groups=layer.groups), kh * kw * w[0].shape[2]


@pytest.mark.parametrize("name", CASES)
def test_layer_matches_keras(name):
    cls = getattr(layers, str(FIXTURES[f"{name}_class"]))
    layer = cls(**ast.literal_eval(str(FIXTURES[f"{name}_kwargs"])))
    x = FIXTURES[f"{name}_x"]
    layer(x)
    # Keras's weight names, order and layouts
    assert layer.weight_names == list(FIXTURES[f"{name}_weight_names"])
    layer.set_weights(fixture_weights(name))
    # every argument cnnlab writes in its config is a Keras config key of the same name
    assert set(layer.get_config()) <= set(FIXTURES[f"{name}_config_keys"]), name
    got, want = layer(x), FIXTURES[f"{name}_y"]
    magnitude, terms = magnitude_and_terms(layer, x)
    bound = sum_bound(magnitude, terms, "float32")  # two float32 computations of the same sums
    if layer.activation == "tanh":
        bound = bound + 4 * U * a64(want)  # tanh's own rounding (|tanh'| <= 1 does not grow the rest)
    assert_within(got, want, bound, name)


def step_model() -> cl.Sequential:
    return cl.Sequential(
        [
            layers.Input((7, 7, 4)),
            layers.Conv2D(6, 3, padding="same", groups=2, activation="relu"),
            layers.DepthwiseConv2D(3, strides=2, depth_multiplier=2, activation="relu"),
            layers.SeparableConv2D(4, 2, padding="same", activation="relu"),
            layers.GlobalAveragePooling2D(),
            layers.Dense(3, activation="softmax"),
        ]
    )


@pytest.mark.parametrize("kernels", ["reference", "fast"])
def test_training_step_matches_keras(kernels):
    with cl.config.using_kernels(kernels):
        model = step_model()
        model.compile(cl.optimizers.SGD(learning_rate=0.1), "sparse_categorical_crossentropy")
        start = fixture_weights("step")
        model.set_weights(start)
        names = [f"{layer.name}/{key}" for layer in model.layers for key in layer.weight_names]
        assert [n.split("/")[-1] for n in names] == [str(n).split("/")[-1] for n in FIXTURES["step_weight_names"]]
        x, y = FIXTURES["step_x"], FIXTURES["step_y"]
        loss = float(model.train_on_batch(x, y))
        assert abs(loss - float(FIXTURES["step_loss"])) <= 64 * U * abs(loss)
        after = model.get_weights()
        # D bounds the depth of the nested sums behind any gradient: the first conv's kernel gradient
        # sums 6 samples x 49 positions (294) after a backward chain through the depthwise (9 taps x 2),
        # separable (4 taps, 12 pointwise terms), pooling (9) and dense (3) sums: 294 + 18 + 16 + 9 + 3 < 512.
        # As in the other training-step parity tests the bound is 2 gamma_D times D times the step.
        d = 512
        for i, (mine, start_w) in enumerate(zip(after, start, strict=True)):
            theirs = FIXTURES[f"step_after_w{i}"]
            step = a64(theirs - start_w).max()
            bound = 2 * gamma(d, "float32") * d * max(step, 1e-6) + 4 * U * a64(theirs)
            assert_within(mine, theirs, bound, f"weight {i} ({names[i]}) after one step")
        assert not any(np.array_equal(a, b) for a, b in zip(after, start, strict=True))  # every weight moved


def test_grouped_conv_stays_on_the_reference_layer_with_fast_kernels():
    with cl.config.using_kernels("fast"):
        model = step_model()
        model.compile(cl.optimizers.SGD(), "sparse_categorical_crossentropy")
        model(np.zeros((1, 7, 7, 4), "float32"))
        plan = "\n".join(model.plan())
    assert "FastConv" not in plan and "ConvPool" not in plan, plan


# ------------------------------------------------------------------ saving and config
def test_saving_round_trip(tmp_path):
    cl.set_random_seed(5)
    model = step_model()
    x = np.random.default_rng(0).normal(size=(3, 7, 7, 4)).astype("float32")
    model(x)
    path = model.save(tmp_path / "variants.cnnlab")
    loaded = cl.models.load_model(path)
    for a, b in zip(model.layers, loaded.layers, strict=True):
        assert type(a) is type(b) and a.get_config() == b.get_config()
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))


@pytest.mark.parametrize(
    "layer",
    [
        layers.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2, depthwise_regularizer="l2"),
        layers.SeparableConv2D(
            4, (2, 3), dilation_rate=2, pointwise_regularizer="l1", depthwise_constraint="non_neg", use_bias=False
        ),
        layers.Conv2D(6, 3, groups=3, activation="relu"),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_config_round_trip(layer):
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


def test_weight_rules_use_keras_argument_names():
    dw = layers.DepthwiseConv2D(2, depthwise_regularizer="l2", depthwise_constraint="non_neg")
    sep = layers.SeparableConv2D(2, 2, depthwise_regularizer="l1", pointwise_constraint="non_neg")
    assert set(dw.regularizers) == {"kernel"} and set(dw.constraints) == {"kernel"}
    assert set(sep.regularizers) == {"depthwise_kernel"} and set(sep.constraints) == {"pointwise_kernel"}
    with pytest.raises(TypeError, match="kernel_regularizer"):
        layers.DepthwiseConv2D(2, kernel_regularizer="l2")


def test_regularized_depthwise_kernel_adds_to_the_loss():
    model = cl.Sequential(
        [
            layers.Input((4, 4, 2)),
            layers.DepthwiseConv2D(2, depthwise_regularizer=cl.regularizers.l2(0.5)),
            layers.Flatten(),
        ]
    )
    model.compile(cl.optimizers.SGD(learning_rate=0.1), "mse")  # the loss is logged before the update
    x, y = np.ones((2, 4, 4, 2), "float32"), np.zeros((2, 18), "float32")
    model(x)
    plain = float(np.mean(model.predict(x, verbose=0) ** 2))
    penalty = 0.5 * float(np.sum(model.layers[0].kernel.astype(np.float64) ** 2))
    loss = float(model.train_on_batch(x, y))
    assert abs(loss - (plain + penalty)) <= 16 * U * (plain + penalty)


# ------------------------------------------------------------------ errors
def test_groups_must_divide_filters():
    with pytest.raises(InvalidArgumentError, match=r"filters=5 is not divisible by groups=2.*filters=6"):
        layers.Conv2D(5, 3, groups=2)


def test_groups_must_divide_channels():
    conv = layers.Conv2D(4, 3, groups=2, name="g")
    with pytest.raises(
        InvalidArgumentError, match=r'"g": the input has 3 channels, which is not divisible by groups=2'
    ):
        conv(np.zeros((1, 5, 5, 3), "float32"))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: layers.Conv2D(4, 3, groups=0), "expected groups to be a positive integer, received 0"),
        (lambda: layers.DepthwiseConv2D(3, depth_multiplier=0), "expected depth_multiplier to be a positive"),
        (lambda: layers.SeparableConv2D(0, 3), "SeparableConv2D: expected filters to be a positive integer"),
        (lambda: layers.SeparableConv2D(2, 3, padding="full"), "expected padding to be 'valid' or 'same'"),
        (lambda: layers.DepthwiseConv2D(3, depthwise_initializer="he"), "unknown depthwise_initializer"),
    ],
)
def test_bad_arguments(make, message):
    with pytest.raises(InvalidArgumentError, match=message):
        make()


def test_wrong_channels_after_build_and_small_input():
    layer = layers.DepthwiseConv2D(3, name="dw")
    layer(np.zeros((1, 5, 5, 2), "float32"))
    with pytest.raises(ValueError, match="expected axis -1 of input shape to have value 2"):
        layer(np.zeros((1, 5, 5, 3), "float32"))
    with pytest.raises(InvalidArgumentError, match='DepthwiseConv2D "dw2": the output would have size'):
        layers.DepthwiseConv2D(3, name="dw2")(np.zeros((1, 2, 5, 1), "float32"))


def test_pytorch_layout_hint():
    layer = layers.DepthwiseConv2D((3, 2), depth_multiplier=2)
    layer(np.zeros((1, 5, 5, 4), "float32"))
    torch_weight = np.zeros((8, 1, 3, 2))
    with pytest.raises(InvalidArgumentError, match=r"w.reshape\(4, 2, 3, 2\).transpose\(2, 3, 0, 1\)"):
        layer.set_weights([torch_weight, np.zeros(8)])


def test_output_shapes_and_param_counts():
    model = step_model()
    shapes = [layer.compute_output_shape((None, 7, 7, 4)) for layer in model.layers[:2]]
    assert shapes[0] == (None, 7, 7, 6)
    model(np.zeros((1, 7, 7, 4), "float32"))
    # Keras's counts: 3*3*2*6 + 6; 3*3*6*2 + 12; 2*2*12 + 12*4 + 4; 4*3 + 3
    assert [layer.count_params() for layer in model.layers] == [114, 120, 100, 0, 15]


# ------------------------------------------------------------------ explain
def test_explain_depthwise_by_hand():
    layer = layers.DepthwiseConv2D(2, depth_multiplier=2, activation="relu", name="dw_explain")
    x = np.arange(18, dtype="float32").reshape(1, 3, 3, 2)  # channel 1 holds 1, 3, 5, ..., 17
    layer(x)
    layer.set_weights([np.arange(16, dtype="float32").reshape(2, 2, 2, 2) / 4, np.array([0, 1, 2, 3.0])])
    e = cl.explain(layer, x, at=(0, 1, 0, 3))  # output channel 3 = input channel 1, kernel 1
    # window rows 1..2, columns 0..1 of channel 1: 7, 9, 13, 15; kernel w[:, :, 1, 1] = 3/4, 7/4, 11/4, 15/4
    assert e.arithmetic() == "7×0.7500 + 9×1.7500 + 13×2.7500 + 15×3.7500 + 3 = 116"
    assert e.output == layer(x)[0, 1, 0, 3] == 116.0
    assert "input channel 1, kernel 1" in str(e)


def test_explain_grouped_conv_uses_the_group_channels():
    layer = layers.Conv2D(2, 1, groups=2, use_bias=False, name="g_explain")
    x = np.array([[[[1.0, 10.0]]]], "float32")  # one pixel, channels 1 and 10
    layer(x)
    layer.set_weights([np.array([2.0, 3.0]).reshape(1, 1, 1, 2)])
    assert cl.explain(layer, x, at=(0, 0, 0, 1)).arithmetic() == "10×3 + 0 = 30"  # filter 1 sees channel 1 only
