"""Augmentation layers and the resampling kernel: hand-computed cases, the loop reference, the
transpose (backward), Keras 3 parity of the deterministic core (tests/fixtures/keras_augment.npz,
written by tools/make_keras_augment_fixtures.py with the torch backend), seeding and errors.

Keras tolerances follow from float32 rounding: Keras computes each reading position in float32
(a few roundings of ``|a0|*j + |a1|*i + |a2|``) and bilinear output moves by at most
``2 * max|pixel|`` per pixel of position error; its weights and 8-term sum add ``gamma_12 * max|pixel|``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import cnnlab as cl
from cnnlab import layers
from cnnlab.errors import InvalidArgumentError
from cnnlab.ops import resample as ops
from tests.numerics import a64, assert_within, gamma, sum_bound, unit_roundoff

FIXTURES = np.load(Path(__file__).parent / "fixtures" / "keras_augment.npz")
U = unit_roundoff("float32")
ROW = np.arange(4.0).reshape(1, 1, 4, 1)  # a b c d = 0 1 2 3


def shift(dx: float, dy: float = 0.0) -> list[float]:
    return [1, 0, -dx, 0, 1, -dy, 0, 0]


# ------------------------------------------------------------------ hand-computed kernel cases
@pytest.mark.parametrize(
    ("fill_mode", "expected"),
    [
        ("reflect", [2, 1, 0, 0]),  # reads -3 -2 -1 0: (d c b a | a b c d)
        ("wrap", [1, 2, 3, 0]),
        ("nearest", [0, 0, 0, 0]),
        ("constant", [9, 9, 9, 0]),
    ],
)
def test_fill_modes_by_hand(fill_mode: str, expected: list[float]) -> None:
    y = ops.affine_transform(ROW, shift(3), fill_mode=fill_mode, fill_value=9.0)
    np.testing.assert_array_equal(y[0, 0, :, 0], expected)


def test_reflect_folds_several_times() -> None:
    # period 8: (a b c d | d c b a | a b c d | d c b a) for -8..7; reading -9..-6 gives a a b c
    y = ops.affine_transform(ROW, shift(9), fill_mode="reflect")
    np.testing.assert_array_equal(y[0, 0, :, 0], [0, 0, 1, 2])
    y = ops.affine_transform(ROW, shift(-5), fill_mode="reflect")  # reads 5..8
    np.testing.assert_array_equal(y[0, 0, :, 0], [2, 1, 0, 0])


def test_bilinear_by_hand() -> None:
    # a quarter pixel right reads j - 0.25: 0.25*x[j-1] + 0.75*x[j]; x[-1] is the fill 8
    y = ops.affine_transform(ROW, shift(0.25), fill_mode="constant", fill_value=8.0)
    np.testing.assert_allclose(y[0, 0, :, 0], [0.25 * 8 + 0, 0.25 * 0 + 0.75 * 1, 0.25 + 1.5, 0.5 + 2.25], rtol=1e-15)
    # two axes: a 2x2 image read at its centre averages the four pixels
    img = np.array([[1.0, 2.0], [3.0, 10.0]]).reshape(1, 2, 2, 1)
    y = ops.affine_transform(img, [1, 0, 0.5, 0, 1, 0.5, 0, 0], fill_mode="nearest")
    assert y[0, 0, 0, 0] == 4.0


def test_nearest_interpolation_rounds_halves_to_even() -> None:
    y = ops.affine_transform(ROW, shift(-0.5), interpolation="nearest", fill_mode="nearest")
    # reads 0.5 1.5 2.5 3.5 -> 0 2 2 4(->3)
    np.testing.assert_array_equal(y[0, 0, :, 0], [0, 2, 2, 3])


def test_transforms_by_hand() -> None:
    # 90 degrees counter-clockwise on a square image is np.rot90
    x = np.arange(9.0).reshape(1, 3, 3, 1)
    y = ops.affine_transform(x, ops.rotation_transforms([90.0], 3, 3))
    assert_within(y, np.rot90(x, axes=(1, 2)), 1e-13)
    # zoom 0.5 about the centre of 4 columns (1.5): reads 0.75 1.25 1.75 2.25
    y = ops.affine_transform(ROW, ops.zoom_transforms([0.5], [1.0], 1, 4))
    np.testing.assert_allclose(y[0, 0, :, 0], [0.75, 1.25, 1.75, 2.25], rtol=1e-15)
    np.testing.assert_array_equal(ops.translation_transforms([2.0], [-1.0]), [shift(2, -1)])


# ------------------------------------------------------------------ kernel vs loop reference
@pytest.mark.parametrize("interpolation", ops.INTERPOLATIONS)
@pytest.mark.parametrize("fill_mode", ops.FILL_MODES)
def test_kernel_matches_loop_reference(interpolation: str, fill_mode: str) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 5, 4, 2))
    t = np.concatenate([rng.normal(size=(3, 6)) * [1, 1, 3, 1, 1, 3], np.zeros((3, 2))], axis=1)
    y = ops.affine_transform(x, t, interpolation, fill_mode, fill_value=0.7)
    ref = ops.affine_transform_naive(x, t, interpolation, fill_mode, fill_value=0.7)
    # both sum at most 4 float64 products of weights (summing to 1) and values
    assert_within(y, ref, sum_bound(max(a64(x).max(), 0.7), 4, np.float64), f"{interpolation}/{fill_mode}")


@pytest.mark.parametrize("interpolation", ops.INTERPOLATIONS)
@pytest.mark.parametrize("fill_mode", ops.FILL_MODES)
def test_backward_is_the_transpose(interpolation: str, fill_mode: str) -> None:
    """<A x, g> == <x, A^T g> for the linear map A (constant fill 0 keeps it linear)."""
    rng = np.random.default_rng(4)
    x, g = rng.normal(size=(2, 4, 5, 3)), rng.normal(size=(2, 4, 5, 3))
    t = np.concatenate([rng.normal(size=(2, 6)) * [1, 1, 2, 1, 1, 2], np.zeros((2, 2))], axis=1)
    plan = ops.resample_plan(t, x.shape, interpolation, fill_mode)
    ax, atg = ops.resample_forward(x, plan, 0.0), ops.resample_backward(g, plan)
    lhs, rhs = float(np.sum(ax * g)), float(np.sum(x * atg))
    # each side: a sum of x.size*4 products, magnitudes bounded by |x| . (|A|^T |g|)
    magnitude = float(np.sum(a64(x) * ops.resample_backward(a64(g), plan)))
    assert_within(lhs, rhs, sum_bound(magnitude, 4 * x.size, np.float64))


def test_contrast_kernel_matches_loop_reference_and_finite_differences() -> None:
    rng = np.random.default_rng(5)
    x = rng.uniform(0.2, 0.8, size=(2, 3, 4, 2))
    f = np.array([0.6, 1.4])
    y = ops.adjust_contrast(x, f, (0.0, 1.0))
    assert_within(y, ops.adjust_contrast_naive(x, f, (0.0, 1.0)), sum_bound(1.0, 12 + 4, np.float64))
    # central differences of the linear (unclipped) part are exact up to rounding
    g = rng.normal(size=x.shape)
    dx = ops.adjust_contrast_backward(x, f, (-10.0, 10.0), g)
    h = 1e-6
    for idx in [(0, 0, 0, 0), (1, 2, 3, 1), (0, 1, 2, 1)]:
        e = np.zeros_like(x)
        e[idx] = h
        fd = np.sum((ops.adjust_contrast(x + e, f, (-10, 10)) - ops.adjust_contrast(x - e, f, (-10, 10))) * g) / (2 * h)
        assert abs(fd - dx[idx]) < 1e-8 * (1 + np.abs(g).sum())
    # clipped outputs pass no gradient
    dx = ops.adjust_contrast_backward(x, np.array([5.0, 5.0]), (0.45, 0.55), np.ones_like(x))
    z = (x - x.mean(axis=(1, 2), keepdims=True)) * 5 + x.mean(axis=(1, 2), keepdims=True)
    inside = (z >= 0.45) & (z <= 0.55)
    expected = 5 * inside + (1 - 5) * inside.mean(axis=(1, 2), keepdims=True)
    assert_within(dx, expected, 1e-14)


# ------------------------------------------------------------------ Keras parity
def position_error(t: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bound on Keras's float32 error in the row plus column reading positions, ``(N, H, W)``."""
    t = np.abs(t.astype(np.float64))
    i, j = np.arange(h)[None, :, None], np.arange(w)[None, None, :]
    col = t[:, 0, None, None] * j + t[:, 1, None, None] * i + t[:, 2, None, None]
    row = t[:, 3, None, None] * j + t[:, 4, None, None] * i + t[:, 5, None, None]
    return gamma(6, "float32") * (col + row)


def keras_bound(x: np.ndarray, t: np.ndarray, fill_value: float, y: np.ndarray) -> np.ndarray:
    m = max(float(a64(x).max()), abs(fill_value))
    n, h, w, _ = x.shape
    return (2 * m * position_error(t, h, w))[..., None] + gamma(12, "float32") * m + U * a64(y)


AFFINE = sorted(k[: -len("_kwargs")] for k in FIXTURES if k.startswith("affine_") and k.endswith("_kwargs"))
LAYER = sorted(k[: -len("_class")] for k in FIXTURES if k.startswith("layer_") and k.endswith("_class"))


def test_fixtures_present() -> None:
    assert len(AFFINE) == 20 and len(LAYER) == 6, (AFFINE, LAYER)


@pytest.mark.parametrize("name", AFFINE)
def test_affine_transform_matches_keras(name: str) -> None:
    x, t, expected = FIXTURES[f"{name}_x"], FIXTURES[f"{name}_t"], FIXTURES[f"{name}_y"]
    kwargs = ast.literal_eval(str(FIXTURES[f"{name}_kwargs"]))
    y = ops.affine_transform(x, t, **kwargs)
    assert y.dtype == np.float32
    if kwargs["interpolation"] == "nearest":
        # exact, given that no reading position is within Keras's rounding error of a half
        plan_pos = position_error(t, *x.shape[1:3])
        ii, jj = np.meshgrid(np.arange(x.shape[1]), np.arange(x.shape[2]), indexing="ij")
        t64 = t.astype(np.float64)[:, :, None, None]
        for pos in (t64[:, 0] * jj + t64[:, 1] * ii + t64[:, 2], t64[:, 3] * jj + t64[:, 4] * ii + t64[:, 5]):
            assert (np.abs(pos - np.floor(pos) - 0.5) > 10 * plan_pos).all()
        np.testing.assert_array_equal(y, expected)
    else:
        assert_within(y, expected, keras_bound(x, t, kwargs["fill_value"], expected), name)


@pytest.mark.parametrize("name", LAYER)
def test_layer_transforms_match_keras(name: str) -> None:
    """The layer's matrix from its drawn numbers, and its output, against Keras."""
    x, params, t, expected = (FIXTURES[f"{name}_{k}"] for k in ("x", "params", "t", "y"))
    cls, kwargs = str(FIXTURES[f"{name}_class"]), ast.literal_eval(str(FIXTURES[f"{name}_kwargs"]))
    _, h, w, _ = x.shape
    p = params.astype(np.float64)
    if cls == "RandomTranslation":
        mine, entry_bound = ops.translation_transforms(p[:, 0], p[:, 1]), np.zeros(8)
    elif cls == "RandomRotation":
        mine = ops.rotation_transforms(p, h, w)
        # float32 degrees->radians (1 rounding) and cos/sin (~2 ulp); the offsets add a few roundings
        trig = 2 * U * (np.abs(p) * np.pi / 180 + 2)
        cx, cy = (w - 1) / 2, (h - 1) / 2
        offset = (cx + cy) * trig + gamma(4, "float32") * 2 * (cx + cy)
        zero = np.zeros_like(trig)
        entry_bound = np.stack([trig, trig, offset, trig, trig, offset, zero, zero], axis=1)
    else:
        mine = ops.zoom_transforms(p[:, 0], p[:, 1], h, w)
        entry_bound = gamma(3, "float32") * np.array(
            [0, 0, (w - 1) / 2 * (1 + a64(p[:, 0]).max()), 0, 0, (h - 1) / 2 * (1 + a64(p[:, 1]).max()), 0, 0]
        )
    assert_within(mine, t, entry_bound, f"{name} matrix")
    layer = getattr(layers, cls)(**kwargs)
    plan = ops.resample_plan(t, x.shape, layer.interpolation, layer.fill_mode)
    y = ops.resample_forward(x, plan, layer.fill_value)
    assert_within(y, expected, keras_bound(x, t, layer.fill_value, expected), name)


@pytest.mark.parametrize("name", ["pixels", "unit"])
def test_contrast_matches_keras(name: str) -> None:
    x, f, value_range, expected = (FIXTURES[f"contrast_{name}_{k}"] for k in ("x", "factor", "range", "y"))
    y = ops.adjust_contrast(x, f, tuple(value_range))
    n, h, w, c = x.shape
    mean = a64(x).mean(axis=(1, 2), keepdims=True)
    f64 = a64(f).reshape(-1, 1, 1, 1)
    # Keras: two float32 means (over H, then W), then (x - m) * f + m: three more roundings
    dm = gamma(h + w + 2, "float32") * mean
    bound = 2 * (np.abs(1 - f64) * dm + gamma(4, "float32") * ((a64(x) + mean) * f64 + mean))
    assert_within(y, expected, bound, name)
    assert (expected >= value_range[0]).all() and (expected <= value_range[1]).all()
    assert (expected == value_range[1]).any() or (expected == value_range[0]).any(), "fixture should clip"


@pytest.mark.parametrize("name", ["single", "pair", "single_zero"])
def test_contrast_factor_rule_matches_keras(name: str) -> None:
    layer = layers.RandomContrast(ast.literal_eval(str(FIXTURES[f"contrast_factor_{name}"])))
    np.testing.assert_array_equal(layer.factor_range, FIXTURES[f"contrast_factor_{name}_range"])


@pytest.mark.parametrize("mode", layers.RandomFlip.MODES)
def test_flip_matches_keras(mode: str) -> None:
    x, flips, expected = (FIXTURES[f"flip_{mode}_{k}"] for k in ("x", "flips", "y"))
    np.testing.assert_array_equal(layers.RandomFlip(mode)._flip(x, flips), expected)


# ------------------------------------------------------------------ layers: training only, seeds
def all_layers(seed: int | None = None) -> list[layers.Layer]:
    return [
        layers.RandomFlip(seed=seed),
        layers.RandomTranslation(0.2, 0.3, seed=seed),
        layers.RandomRotation(0.1, seed=seed),
        layers.RandomZoom(0.2, seed=seed),
        layers.RandomContrast(0.3, value_range=(0, 1), seed=seed),
    ]


IMAGES = np.random.default_rng(6).uniform(0, 1, size=(4, 6, 5, 3)).astype("float32")


@pytest.mark.parametrize("index", range(5))
def test_identity_at_inference_and_seeded_in_training(index: int) -> None:
    layer = all_layers()[index]
    np.testing.assert_array_equal(layer(IMAGES), IMAGES)
    cl.set_random_seed(11)
    first = layer(IMAGES, training=True)
    cl.set_random_seed(11)
    again = layer(IMAGES, training=True)
    np.testing.assert_array_equal(first, again)
    assert first.shape == IMAGES.shape and first.dtype == np.float32
    assert not np.array_equal(first, IMAGES) or isinstance(layer, layers.RandomFlip)
    # a layer's own seed ignores the global one
    a, b = all_layers(seed=3)[index], all_layers(seed=3)[index]
    cl.set_random_seed(1)
    ya = a(IMAGES, training=True)
    cl.set_random_seed(2)
    np.testing.assert_array_equal(ya, b(IMAGES, training=True))


def test_draws_follow_keras_rules() -> None:
    """With seed=s the draws are default_rng(s)'s: check each layer's rule for its range."""
    x = IMAGES.astype(np.float64)
    n, h, w, _ = x.shape
    draw = np.random.default_rng(8)
    flips = draw.random(n) <= 0.5
    expected = np.where(flips[:, None, None, None], x[:, ::-1, ::-1], x)
    np.testing.assert_array_equal(layers.RandomFlip(seed=8)(x, training=True), expected.astype("float32"))

    draw = np.random.default_rng(8)
    dy, dx = draw.uniform(-0.2, 0.1, n) * h, draw.uniform(-0.3, 0.3, n) * w
    expected = ops.affine_transform(x, ops.translation_transforms(dx, dy), fill_mode="reflect")
    y = layers.RandomTranslation((0.1, -0.2), 0.3, seed=8)(x, training=True)
    assert_within(y, expected, U * a64(expected))

    draw = np.random.default_rng(8)
    angles = draw.uniform(-0.1 * 360, 0.3 * 360, n)
    expected = ops.affine_transform(x, ops.rotation_transforms(angles, h, w), fill_mode="wrap")
    y = layers.RandomRotation((-0.1, 0.3), fill_mode="wrap", seed=8)(x, training=True)
    assert_within(y, expected, U * a64(expected))

    draw = np.random.default_rng(8)
    zy = draw.uniform(0.8, 1.2, n)
    zx = draw.uniform(0.5, 0.9, n)
    expected = ops.affine_transform(x, ops.zoom_transforms(zx, zy, h, w), fill_mode="reflect")
    y = layers.RandomZoom(0.2, (-0.5, -0.1), seed=8)(x, training=True)
    assert_within(y, expected, U * a64(expected))
    # width_factor=None: one draw for both axes
    draw = np.random.default_rng(8)
    z = draw.uniform(0.8, 1.2, n)
    expected = ops.affine_transform(x, ops.zoom_transforms(z, z, h, w), fill_mode="reflect")
    assert_within(layers.RandomZoom(0.2, seed=8)(x, training=True), expected, U * a64(expected))

    draw = np.random.default_rng(8)
    f = draw.uniform(1 - 0.25, 1 + 0.5, n).astype("float32")
    expected = ops.adjust_contrast(IMAGES, f, (0.0, 1.0))
    y = layers.RandomContrast((0.25, 0.5), value_range=(0, 1), seed=8)(IMAGES, training=True)
    np.testing.assert_array_equal(y, expected)


def test_fixed_draws_by_hand() -> None:
    x = np.arange(4.0, dtype="float32").reshape(1, 4, 1, 1)
    # shift down by exactly half the height: rows read -2 -1 0 1 -> reflect 1 0 0 1
    y = layers.RandomTranslation((0.5, 0.5), 0.0)(x, training=True)
    np.testing.assert_array_equal(y[0, :, 0, 0], [1, 0, 0, 1])
    sq = np.arange(9.0, dtype="float32").reshape(1, 3, 3, 1)
    y = layers.RandomRotation((0.25, 0.25))(sq, training=True)
    assert_within(y, np.rot90(sq, axes=(1, 2)), 8 * U * 8)
    np.testing.assert_array_equal(layers.RandomContrast(0.0)(sq, training=True), sq)


def test_flip_modes_and_one_decision_for_both_axes() -> None:
    cl.set_random_seed(0)
    x = np.random.default_rng(1).normal(size=(64, 3, 4, 1)).astype("float32")
    for mode, flipped in [
        ("horizontal", x[:, :, ::-1]),
        ("vertical", x[:, ::-1]),
        ("horizontal_and_vertical", x[:, ::-1, ::-1]),
    ]:
        y = layers.RandomFlip(mode)(x, training=True)
        same = np.all(y == x, axis=(1, 2, 3))
        flip = np.all(y == flipped, axis=(1, 2, 3))
        assert np.all(same | flip) and 10 < flip.sum() < 54, mode


@pytest.mark.parametrize("index", range(5))
def test_layer_backward_is_the_transpose(index: int) -> None:
    layer = all_layers(seed=4)[index]
    x = IMAGES.astype(np.float64) * 0.5 + 0.25  # RandomContrast stays inside (0, 1) for most pixels
    y = layer.forward(x, training=True)
    g = np.random.default_rng(9).normal(size=y.shape)
    dx = layer.backward(g)
    if isinstance(layer, layers.RandomContrast):
        # the clip is inactive here, so the map is affine in x: compare with finite differences
        e = np.random.default_rng(10).normal(size=x.shape) * 1e-6
        f = layer._cache[0][1]
        fd = np.sum((ops.adjust_contrast(x + e, f, (0, 1)) - ops.adjust_contrast(x - e, f, (0, 1))) * g) / 2
        assert abs(fd - np.sum(dx * e)) < 1e-12
        return
    # resampling and flips are linear: <layer(x), g> == <x, backward(g)>
    assert_within(
        np.sum(y * g), np.sum(x * dx), sum_bound(float(np.sum(a64(y) * a64(g))) * 4 + 4, 4 * x.size, np.float64)
    )
    assert layer.backward(g, need_dx=False) is None


def test_single_image_and_integer_images() -> None:
    img = (IMAGES[0] * 255).astype("uint8")
    for layer in all_layers(seed=1):
        y = layer(img, training=True)
        assert y.shape == img.shape and y.dtype == np.float32
        infer = layer(img)
        # Keras casts to floats, except RandomContrast, which returns the images untouched at inference
        assert infer.dtype == (np.uint8 if isinstance(layer, layers.RandomContrast) else np.float32)
        np.testing.assert_array_equal(infer, img)


def test_augmentation_runs_only_in_fit() -> None:
    calls: list[int] = []
    aug = layers.RandomTranslation(0.1, 0.1)
    original = aug.augment
    aug.augment = lambda x: calls.append(len(x)) or original(x)  # type: ignore[method-assign]
    model = cl.Sequential([layers.Input((6, 5, 3)), aug, layers.Flatten(), layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    y = np.array([0, 1, 0, 1])
    model.fit(IMAGES, y, epochs=1, batch_size=2, verbose=0)
    assert calls == [2, 2]
    model.predict(IMAGES, verbose=0)
    model.evaluate(IMAGES, y, verbose=0)
    assert calls == [2, 2]


def test_config_round_trip() -> None:
    model = cl.Sequential([layers.Input((6, 5, 3)), *all_layers(seed=2), layers.Flatten(), layers.Dense(2)])
    again = cl.Sequential.from_config(model.get_config())
    for a, b in zip(model.layers, again.layers, strict=True):
        assert a.get_config() == b.get_config()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: layers.RandomRotation(1.5), "factor to be a number or a pair of numbers in the range [-1.0, 1.0]"),
        (lambda: layers.RandomRotation((0.1, 0.2, 0.3)), "received factor=(0.1, 0.2, 0.3)"),
        (lambda: layers.RandomRotation("big"), "factor"),
        (lambda: layers.RandomTranslation(0.1, -1.2), "width_factor"),
        (lambda: layers.RandomZoom(-1.0), "range (-1.0, 1.0]"),
        (lambda: layers.RandomZoom(0.2, (0.1, float("nan"))), "width_factor"),
        (lambda: layers.RandomContrast(-0.1), "range [0.0, 1.0]"),
        (lambda: layers.RandomContrast((0.1, 1.5)), "range [0.0, 1.0]"),
        (lambda: layers.RandomContrast(0.2, value_range=(1, 0)), "value_range to be a pair (low, high)"),
        (lambda: layers.RandomFlip("diagonal"), "unknown mode 'diagonal'"),
        (lambda: layers.RandomRotation(0.1, fill_mode="mirror"), "unknown fill_mode 'mirror'"),
        (lambda: layers.RandomZoom(0.1, interpolation="bicubic"), "unknown interpolation 'bicubic'"),
        (lambda: layers.RandomTranslation(0.1, 0.1, fill_value="x"), "fill_value to be a finite number"),
        (lambda: layers.RandomFlip(data_format="channels_first"), "channels_last only"),
        (lambda: layers.RandomFlip(seed=-1), "seed to be a non-negative integer"),
    ],
)
def test_bad_arguments(make, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidArgumentError) as info:
        make()
    assert message in str(info.value)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match=r"rank 3 \(one image \(H, W, C\)\) or 4.*x\[\.\.\., None\]"):
        layers.RandomFlip()(np.zeros((4, 4)), training=True)
    with pytest.raises(InvalidArgumentError, match="numeric array"):
        layers.RandomZoom(0.1)(np.array([[["a"]]]), training=True)
    with pytest.raises(InvalidArgumentError, match=r"transforms of shape \(8,\) or \(2, 8\)"):
        ops.affine_transform(np.zeros((2, 3, 3, 1)), np.zeros((3, 8)))
    with pytest.raises(InvalidArgumentError, match="only affine transforms"):
        ops.affine_transform(np.zeros((1, 3, 3, 1)), [1, 0, 0, 0, 1, 0, 0.1, 0])


def test_explanations_see_augmentation_layers_as_the_identity():
    """cl.explain_prediction runs the inference arithmetic: no random transform, no random draw."""
    import cnnlab as cl

    rng = np.random.default_rng(0)
    x = rng.normal(size=(10, 10, 1)).astype(np.float32)
    cl.set_random_seed(3)
    model = cl.Sequential(
        [
            cl.layers.Input((10, 10, 1)),
            cl.layers.RandomRotation(0.3),
            cl.layers.RandomFlip(),
            cl.layers.Conv2D(3, 3, activation="relu"),
            cl.layers.Flatten(),
            cl.layers.Dense(2),
        ]
    )
    plain = cl.Sequential([cl.layers.Input((10, 10, 1)), model.layers[2], cl.layers.Flatten(), model.layers[4]])
    state = cl.random.generator().bit_generator.state
    a = cl.explain_prediction(model, x, method="saliency", class_index=0)
    assert cl.random.generator().bit_generator.state == state
    b = cl.explain_prediction(plain, x, method="saliency", class_index=0)
    np.testing.assert_array_equal(a.heatmap, b.heatmap)
