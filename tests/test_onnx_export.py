"""ONNX export: the checker accepts the graph, and a runtime (onnxruntime, or ONNX's reference
evaluator) predicts cnnlab's numbers for every exported layer type, within float32 rounding
bounds derived layer by layer (:func:`rounding_bound`)."""

from __future__ import annotations

import numpy as np
import pytest

import cnnlab as cl
from cnnlab import config
from cnnlab import layers as L
from cnnlab.engine.graph import expand
from cnnlab.errors import InvalidArgumentError, MissingDependencyError, NotReadyError
from cnnlab.ops import activations as act_ops
from cnnlab.ops.conv import conv2d_forward
from cnnlab.ops.depthwise import depthwise_conv2d_forward, separable_conv2d_forward
from cnnlab.ops.pool import avg_pool2d_forward, max_pool2d_forward
from tests.numerics import a64, assert_within, gamma, unit_roundoff

onnx = pytest.importorskip("onnx", reason="ONNX export needs the onnx package: pip install 'cnnlab[onnx]'")
from cnnlab.onnx_export import DEFAULT_OPSET, IR_VERSION, io_names, to_onnx  # noqa: E402

try:
    import onnxruntime
except ImportError:  # the reference evaluator shipped with onnx runs the same graph, slower
    onnxruntime = None


RUNTIMES = ["onnxruntime", "reference"]


def run_all(proto, xs: list[np.ndarray], runtime: str | None = None) -> list[np.ndarray]:
    """The exported graph's outputs for the inputs ``xs`` (in the model's order) on ``runtime``
    (default: onnxruntime if installed, else ``onnx.reference``)."""
    runtime = runtime or ("onnxruntime" if onnxruntime is not None else "reference")
    feeds = dict(zip(io_names(len(xs), "input"), xs, strict=True))
    if runtime == "onnxruntime":
        if onnxruntime is None:
            pytest.skip("onnxruntime is not installed (pip install onnxruntime); onnx.reference runs these graphs")
        session = onnxruntime.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        return session.run(None, feeds)
    from onnx.reference import ReferenceEvaluator

    return ReferenceEvaluator(proto).run(None, feeds)


def run(proto, x: np.ndarray, runtime: str | None = None) -> np.ndarray:
    """The output of a one-input, one-output graph."""
    return run_all(proto, [x], runtime)[0]


# ---------------------------------------------------------------- rounding bounds
U = unit_roundoff(np.float32)
#: Assumption: each elementwise library function (exp, tanh, erf, log1p, sqrt, the sigmoid, ...) is
#: accurate to 4 units in the last place of its result, in cnnlab and in the runtime alike, and a
#: constant stored in float32 (1/6, SELU's, sqrt(2)) is off by half a unit; counted relative to
#: |input| + |output| so cancellations (gelu and softplus of negative inputs) are covered.
FUNCTION_ULPS = 4
#: Lipschitz constants of the activations (largest |derivative|)
LIPSCHITZ = {
    "relu": 1.0,
    "sigmoid": 0.25,
    "tanh": 1.0,
    "elu": 1.0,
    "selu": act_ops.SELU_SCALE * act_ops.SELU_ALPHA,  # 1.7581, on the negative side
    "gelu": 1.13,  # 1.1289 at x = 1.4
    "silu": 1.1,  # 1.0998 at x = 2.4
    "softplus": 1.0,
    "softsign": 1.0,
    "hard_sigmoid": 1.0 / 6.0,
    "relu6": 1.0,
    "leaky_relu": 1.0,
}


def g(n: int) -> float:
    return float(gamma(n, np.float32))


def _activation_bound(name: str, z: np.ndarray, ez: np.ndarray, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """(activation(z), bound on the error of its float32 value) given the error bound ``ez`` of ``z``."""
    if name == "softmax":
        y = np.moveaxis(act_ops.softmax(np.moveaxis(z, axis, -1)), -1, axis)
        m = ez.max(axis=axis, keepdims=True)
        n = z.shape[axis]
        # |d s_i| <= s_i(xi) * (|dz_i| + sum_j s_j(xi) |dz_j|) <= 2 m * y_i * exp(2 m), with |xi - z| <= m
        return y, 2 * m * y * np.exp(2 * m) + g(n + 2 * FUNCTION_ULPS) * y
    y = act_ops.ACTIVATIONS[name][0](z)
    if name == "linear":
        return y, ez
    if name == "exponential":
        return y, y * np.expm1(ez) + FUNCTION_ULPS * U * y
    return y, LIPSCHITZ[name] * ez + FUNCTION_ULPS * U * (a64(y) + a64(z))


def _layer_bound(layer: L.Layer, x: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``layer``'s exact output (float64) and a bound on the error of its float32 value, given a
    bound ``e`` on the error of the input: propagated error plus this layer's own rounding."""
    if isinstance(layer, L.Conv2D):
        w, b = np.asarray(layer.kernel, np.float64), layer.bias
        b = np.zeros(layer.filters) if b is None else np.asarray(b, np.float64)
        args = (layer.strides, layer.padding, layer.dilation_rate)
        terms = int(np.prod(w.shape[:3]))
        z = conv2d_forward(x, w, b, *args)
        ez = conv2d_forward(e, abs(w), None, *args) + g(terms + 2) * (
            conv2d_forward(a64(x), abs(w), None, *args) + abs(b)
        )
        return _activation_bound(layer.activation, z, ez)
    if isinstance(layer, L.DepthwiseConv2D):
        w, b = np.asarray(layer.kernel, np.float64), layer.bias
        b = np.zeros(w.shape[2] * w.shape[3]) if b is None else np.asarray(b, np.float64)
        args = (layer.strides, layer.padding, layer.dilation_rate)
        z = depthwise_conv2d_forward(x, w, b, *args)
        ez = depthwise_conv2d_forward(e, abs(w), None, *args) + g(w.shape[0] * w.shape[1] + 2) * (
            depthwise_conv2d_forward(a64(x), abs(w), None, *args) + abs(b)
        )
        return _activation_bound(layer.activation, z, ez)
    if isinstance(layer, L.SeparableConv2D):
        dw, pw = np.asarray(layer.depthwise_kernel, np.float64), np.asarray(layer.pointwise_kernel, np.float64)
        b = np.zeros(layer.filters) if layer.bias is None else np.asarray(layer.bias, np.float64)
        args = (layer.strides, layer.padding, layer.dilation_rate)
        z = separable_conv2d_forward(x, dw, pw, b, *args)
        # both sums' roundings, each at most gamma of its terms' magnitudes (the depthwise sums' own
        # rounding carried through |pw|), counted once for the longer of the two sums
        terms = dw.shape[0] * dw.shape[1] + pw.shape[2] + 2
        ez = separable_conv2d_forward(e, abs(dw), abs(pw), None, *args) + g(terms) * (
            separable_conv2d_forward(a64(x), abs(dw), abs(pw), None, *args) + abs(b)
        )
        return _activation_bound(layer.activation, z, ez)
    if isinstance(layer, L.Dense):
        w, b = np.asarray(layer.kernel, np.float64), layer.bias
        b = np.zeros(layer.units) if b is None else np.asarray(b, np.float64)
        z = x @ w + b
        ez = e @ abs(w) + g(w.shape[0] + 2) * (a64(x) @ abs(w) + abs(b))
        return _activation_bound(layer.activation, z, ez)
    if isinstance(layer, L.Activation):
        return _activation_bound(layer.activation, x, e)
    if isinstance(layer, L.Softmax):
        return _activation_bound("softmax", x, e, layer.axis)
    if isinstance(layer, (L.ReLU, L.LeakyReLU)):
        slope = layer.negative_slope
        threshold, top = (layer.threshold, layer.max_value) if isinstance(layer, L.ReLU) else (0.0, None)
        y = act_ops.relu_general(x, slope, top, threshold)
        return y, max(1.0, slope) * e + g(3) * (a64(x) + threshold) * max(1.0, slope)
    if isinstance(layer, L.MaxPooling2D):
        # max of values each within e of exact: within the largest e of the window
        return max_pool2d_forward(x, layer.pool_size, layer.strides, layer.padding), max_pool2d_forward(
            e, layer.pool_size, layer.strides, layer.padding
        )
    if isinstance(layer, L.AveragePooling2D):
        args = (layer.pool_size, layer.strides, layer.padding)
        terms = layer.pool_size[0] * layer.pool_size[1]
        return avg_pool2d_forward(x, *args), avg_pool2d_forward(e, *args) + g(terms + 1) * avg_pool2d_forward(
            a64(x), *args
        )
    if isinstance(layer, L.GlobalAveragePooling2D):
        terms = x.shape[1] * x.shape[2]
        y, ey = x.mean(axis=(1, 2), keepdims=True), e.mean(axis=(1, 2), keepdims=True)
        ey = ey + g(terms + 1) * a64(x).mean(axis=(1, 2), keepdims=True)
        return (y, ey) if layer.keepdims else (y[:, 0, 0], ey[:, 0, 0])
    if isinstance(layer, L.GlobalMaxPooling2D):
        y, ey = x.max(axis=(1, 2), keepdims=True), e.max(axis=(1, 2), keepdims=True)
        return (y, ey) if layer.keepdims else (y[:, 0, 0], ey[:, 0, 0])
    if isinstance(layer, L.BatchNormalization):
        weights = {k: np.asarray(v, np.float64) for k, v in layer._weights.items()}
        shape = [1] * x.ndim
        shape[layer.axis % x.ndim] = -1
        mean = weights["moving_mean"].reshape(shape)
        factor = (weights.get("gamma", 1.0) / np.sqrt(weights["moving_variance"] + layer.epsilon)).reshape(shape)
        beta = weights.get("beta", np.zeros(1)).reshape(shape)
        # sqrt, division, scale, subtraction, multiplication, addition: a few roundings, or the
        # fused x * factor + (beta - mean * factor) a runtime may use
        return (x - mean) * factor + beta, abs(factor) * e + g(8) * ((a64(x) + abs(mean)) * abs(factor) + abs(beta))
    if isinstance(layer, L.Rescaling):
        scale, offset = np.asarray(layer.scale, np.float64), np.asarray(layer.offset, np.float64)
        return x * scale + offset, abs(scale) * e + g(2) * (a64(x) * abs(scale) + abs(offset))
    # values moved, copied or zero-filled: Flatten, Reshape, Permute, padding, cropping,
    # upsampling, dropout at inference; the error moves with them
    return layer.forward(x), layer.forward(e)


def _merge_bound(layer: L.Layer, xs: list[np.ndarray], es: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """A merge layer's exact output and error bound from its inputs' (Keras's order of operations)."""
    if isinstance(layer, L.Concatenate):
        axis = layer.axis % xs[0].ndim
        return np.concatenate(xs, axis=axis), np.concatenate(es, axis=axis)
    if isinstance(layer, L.Maximum):
        # the largest of values each within its e of exact is within the largest e
        return np.maximum.reduce(np.broadcast_arrays(*xs)), np.maximum.reduce(np.broadcast_arrays(*es))
    if isinstance(layer, L.Multiply):
        y, ey = xs[0], es[0]
        for x, e in zip(xs[1:], es[1:], strict=True):
            # |p^ x^ - p x| <= |p| e + |x| ep + ep e, and the product's own rounding u |p^ x^|
            ey = abs(y) * e + abs(x) * ey + ey * e + U * (abs(y) + ey) * (abs(x) + e)
            y = y * x
        return y, ey
    k = len(xs)
    signs = [1.0, -1.0] if isinstance(layer, L.Subtract) else [1.0] * k
    y = sum(sign * x for sign, x in zip(signs, xs, strict=True))
    ey = sum(es) + g(k) * sum(a64(x) for x in xs)  # k - 1 additions (and Average's division)
    if isinstance(layer, L.Average):
        return y / k, ey / k
    return y, ey


def rounding_bounds(model: cl.Sequential, xs: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each output's exact value (float64) and a bound on how far any float32 computation of it
    (summing in any order) may be: each layer call of the expanded graph adds its rounding to the
    error propagated from its inputs."""
    graph = expand(model)
    slots = {s: (np.asarray(x, np.float64), np.zeros(x.shape)) for s, x in zip(graph.inputs, xs, strict=True)}
    with config.using_kernels("reference"):
        for node in graph.nodes:
            ins = [slots[s] for s in node.inputs]
            if isinstance(node.layer, L.Merge):
                slots[node.output] = _merge_bound(node.layer, [y for y, _ in ins], [e for _, e in ins])
            else:
                slots[node.output] = _layer_bound(node.layer, *ins[0])
    return [slots[s] for s in graph.outputs]


def rounding_bound(model: cl.Sequential, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`rounding_bounds` of a one-input, one-output model."""
    return rounding_bounds(model, [x])[0]


def assert_exported_predictions(
    model: cl.Sequential, x: np.ndarray | list[np.ndarray], opset: int | None = None, runtime: str | None = None
) -> None:
    xs = x if isinstance(x, list) else [x]
    proto = to_onnx(model, opset)
    onnx.checker.check_model(proto, full_check=True)
    got = run_all(proto, [x.astype(np.float32) for x in xs], runtime)
    expected = model.predict(xs if len(xs) > 1 else xs[0], verbose=0)
    expected = expected if isinstance(expected, list) else [expected]
    assert len(got) == len(expected)
    for k, (out, want, (exact, bound)) in enumerate(zip(got, expected, rounding_bounds(model, xs), strict=True)):
        # worst-case rounding bounds (Higham's gamma_n, propagated) stay far below the values, so a
        # misplaced value shows (test_a_wrong_flatten_order_fails shows one that does)
        assert bound.max() < 0.01 * np.abs(exact).max()
        assert_within(want, exact, bound, f"cnnlab vs exact (output {k})")
        # each is within the bound of the exact value, so they are within twice it of each other
        assert_within(out, want, 2 * bound, f"onnx vs cnnlab (output {k})")


# ---------------------------------------------------------------- models
def _randomize_batch_norms(model: cl.Sequential, rng: np.random.Generator) -> None:
    """Moving statistics and affine weights that are not the identity, biases that are not zero (a
    bias misplaced in the export shows)."""
    for layer, _ in model._leaves():
        if "bias" in getattr(layer, "_weights", {}) and not isinstance(layer, L.BatchNormalization):
            layer._weights["bias"][...] = rng.normal(0, 0.3, layer._weights["bias"].shape)
        if isinstance(layer, L.BatchNormalization):
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, w.shape) if k in ("gamma", "moving_variance") else rng.normal(0, 0.3, w.shape)
                    for k, w in zip(layer.weight_names, layer.get_weights(), strict=True)
                ]
            )


def image_model() -> cl.Sequential:
    """'same' with asymmetric padding, 'valid', strides, dilation, average pooling with 'same',
    max pooling with 'same', BatchNormalization, Flatten -> Dense (the kernel rows permuted)."""
    return cl.Sequential(
        [
            L.Input((13, 11, 3)),
            L.Rescaling(0.5, offset=0.25),
            L.ZeroPadding2D(((1, 0), (2, 1))),  # 14 x 14
            L.Conv2D(4, 3, strides=2, padding="same", activation="relu"),  # 7 x 7, pads (0, 1)
            L.BatchNormalization(),
            L.Conv2D(5, (3, 2), padding="same", dilation_rate=2, activation="tanh"),
            L.AveragePooling2D(3, strides=2, padding="same"),  # 4 x 4, edge windows of 4 or 6 cells
            L.Conv2D(6, 2, padding="valid", activation="elu"),  # 3 x 3
            L.MaxPooling2D(2, strides=1, padding="same"),
            L.Dropout(0.5),
            L.Flatten(),
            L.Dense(7, activation="gelu"),
            L.Dense(4, activation="softmax"),
        ],
        name="images",
    )


def rearranging_model() -> cl.Sequential:
    """Upsampling, cropping, the general ReLU, Reshape back to Keras's layout, BatchNormalization
    on the last axis of a 3-D tensor, Dense on a 3-D tensor, Permute, Softmax along an image axis."""
    return cl.Sequential(
        [
            L.Input((6, 5, 2)),
            L.Conv2D(3, 2, padding="same", activation="selu"),  # even kernel: pads (0, 1)
            L.UpSampling2D((2, 1)),  # 12 x 5
            L.Cropping2D(((1, 2), (0, 1))),  # 9 x 4
            L.SpatialDropout2D(0.3),
            L.ReLU(max_value=1.5, negative_slope=0.1, threshold=0.2),
            L.Softmax(axis=1),
            L.AveragePooling2D(2),  # 4 x 2
            L.LeakyReLU(0.25),
            L.Activation("softplus"),
            L.Reshape((8, 3)),
            L.BatchNormalization(),
            L.Dense(4, activation="silu"),
            L.Permute((2, 1)),
            L.Flatten(),
            L.Dense(3, activation="hard_sigmoid"),
        ],
        name="rearranging",
    )


def permuted_output_model() -> cl.Sequential:
    """Per-channel Rescaling on the input, then layers after Flatten that are not Dense: the
    permuted order goes through BatchNormalization and Rescaling to the output (a Gather)."""
    rng = np.random.default_rng(1)
    return cl.Sequential(
        [
            L.Input((5, 4, 3)),
            L.Rescaling([1.0, 0.5, 2.0], offset=[0.0, 1.0, -1.0]),
            L.Conv2D(4, 3, padding="same", activation="relu6"),
            L.Conv2D(3, 2, activation="leaky_relu"),  # 4 x 3 x 3
            L.Flatten(),
            L.BatchNormalization(),
            L.Activation("sigmoid"),
            L.Rescaling(list(rng.uniform(0.5, 2.0, 36)), offset=0.5),
        ],
        name="permuted_output",
    )


def global_pooling_model() -> cl.Sequential:
    """Global pooling with and without keepdims, a nested model, exponential and softsign."""
    inner = cl.Sequential([L.Conv2D(3, 3, activation="exponential"), L.ReLU()], name="inner")
    return cl.Sequential(
        [
            L.Input((6, 6, 2)),
            inner,
            L.GlobalMaxPooling2D(keepdims=True),
            L.Conv2D(4, 1, activation="softsign"),
            L.GlobalAveragePooling2D(),
            L.Dense(3, activation="softplus", use_bias=False),
            L.Activation("softmax"),
        ],
        name="global_pooling",
    )


def dense_model() -> cl.Sequential:
    return cl.Sequential(
        [L.Input((7,)), L.Dense(5, activation="relu"), L.Dropout(0.2), L.Dense(2)],
        name="dense_only",
    )


def separable_model() -> cl.Sequential:
    """DepthwiseConv2D (depth multiplier, strides, 'same') and SeparableConv2D (dilation, no bias)."""
    return cl.Sequential(
        [
            L.Input((9, 8, 3)),
            L.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2, activation="relu"),  # 5 x 4 x 6
            L.SeparableConv2D(4, (2, 3), padding="same", dilation_rate=(2, 1), depth_multiplier=2, use_bias=False),
            L.BatchNormalization(),
            L.DepthwiseConv2D(2, use_bias=False),  # 4 x 3 x 4
            L.Flatten(),
            L.Dense(3),
        ],
        name="separable",
    )


def merging_model() -> cl.Model:
    """Every merge layer on image tensors: NCHW branches (Add, Concatenate on the channel axis and
    on the height axis), an NCHW branch against the NHWC input (Subtract), a broadcast
    (N, 1, 1, C) gate (Multiply: squeeze and excitation), Average of three, Maximum."""
    inputs = L.Input((6, 5, 3))
    a = L.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    b = L.Conv2D(4, 1)(inputs)
    added = L.Add()([a, b])
    projected = L.Dense(4)(inputs)  # a Dense on the NHWC input: stays NHWC
    difference = L.Subtract()([added, projected])
    gate = L.Dense(4, activation="sigmoid")(L.GlobalAveragePooling2D(keepdims=True)(difference))
    excited = L.Multiply()([difference, gate])
    channels = L.Concatenate()([excited, a])  # (6, 5, 8): Keras's axis -1 is ONNX's 1
    rows = L.Concatenate(axis=1)([excited, b])  # (12, 5, 4): Keras's axis 1 is ONNX's 2
    mixed = L.Average()([L.Conv2D(4, 1)(channels), added, excited])
    top = L.Maximum()([mixed, L.MaxPooling2D((2, 1))(rows)])
    flat = L.Flatten()(L.Concatenate()([top, L.Conv2D(2, 1)(channels)]))
    return cl.Model(inputs, L.Dense(5, activation="softmax")(flat), name="merging")


def shared_nested_model() -> cl.Model:
    """Two inputs and three outputs; a Conv2D shared by both inputs; a graph model nested as a
    layer; flat tensors merged in Keras's flatten order (Subtract of two flattens, Concatenate
    of a flatten with a pooled vector); an output straight from a Flatten (a Gather to Keras's
    order) and one that is a residual sum of image tensors."""
    inner_in = L.Input((6, 6, 3))
    inner_out = L.Maximum()([L.Conv2D(3, 3, padding="same", activation="tanh")(inner_in), inner_in])
    inner = cl.Model(inner_in, inner_out, name="inner_block")
    left, right = L.Input((6, 6, 2)), L.Input((6, 6, 2))
    shared = L.Conv2D(3, 3, padding="same", activation="relu", name="shared_conv")
    a, b = shared(left), shared(right)
    c = inner(a)
    averaged = L.Average()([a, b, c])
    classes = L.Dense(3, activation="softmax")(L.Flatten()(L.MaxPooling2D(2)(averaged)))
    flat_a, flat_b = L.Flatten()(a), L.Flatten()(b)
    difference = L.Subtract()([flat_a, flat_b])
    joined = L.Concatenate()([difference, L.GlobalAveragePooling2D()(c)])
    score = L.Dense(2)(joined)
    residual = L.Add()([L.Flatten()(c), flat_a])
    return cl.Model([left, right], [classes, score, residual], name="shared_nested")


SEQUENTIAL_MODELS = [
    image_model,
    rearranging_model,
    permuted_output_model,
    global_pooling_model,
    dense_model,
    separable_model,
]


def residual_model() -> cl.Model:
    """The residual blocks of the shared Keras files (ResNet's identity shortcut from the NHWC input
    and mini-Xception's strided 1x1 Conv shortcut added to a max-pooled SeparableConv2D branch)."""
    inputs = L.Input((9, 9, 4))
    x = L.BatchNormalization()(L.Conv2D(4, 3, padding="same", activation="relu")(inputs))
    x = L.BatchNormalization()(L.Conv2D(4, 3, padding="same")(x))
    x = L.ReLU()(L.Add()([x, inputs]))
    shortcut = L.BatchNormalization()(L.Conv2D(6, 1, strides=2, padding="same", use_bias=False)(x))
    branch = L.Activation("relu")(L.BatchNormalization()(L.SeparableConv2D(6, 3, padding="same", use_bias=False)(x)))
    branch = L.MaxPooling2D(3, strides=2, padding="same")(L.SeparableConv2D(6, 3, padding="same")(branch))
    x = L.Add()([branch, shortcut])
    outputs = L.Activation("softmax")(L.GlobalAveragePooling2D()(L.Conv2D(3, 3, padding="same")(x)))
    return cl.Model(inputs, outputs, name="residual")


GRAPH_MODELS = [merging_model, shared_nested_model, residual_model]
MODELS = SEQUENTIAL_MODELS + GRAPH_MODELS


def _build(make, seed: int = 0) -> tuple[cl.Sequential, np.ndarray]:
    cl.clear_session()
    cl.set_random_seed(seed)
    model = make()
    rng = np.random.default_rng(seed)
    _randomize_batch_norms(model, rng)
    shapes = model.input_shape if isinstance(model.input_shape, list) else [model.input_shape]
    xs = [rng.normal(size=(5, *shape[1:])).astype(np.float32) for shape in shapes]
    return model, (xs if len(xs) > 1 else xs[0])


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("kernels", ["reference", "fast"])
@pytest.mark.parametrize("make", MODELS, ids=lambda make: make.__name__)
def test_runtime_predicts_cnnlab_numbers(make, kernels, runtime):
    model, x = _build(make)
    with config.using_kernels(kernels):
        assert_exported_predictions(model, x, runtime=runtime)


def test_every_layer_class_and_activation_is_covered():
    """The models above exercise every converter and every activation: a new layer type or
    activation needs a test model before it counts as exported."""
    from cnnlab.onnx_export import supported_layers

    used, activations = set(), {"linear"}
    for make in MODELS:
        model, _ = _build(make)
        for layer, _ in model._leaves():
            used.add(type(layer).__name__)
            activations.add(getattr(layer, "activation", "linear"))
    assert set(supported_layers()) - {"InputLayer"} <= used  # a Sequential keeps no InputLayer
    assert set(act_ops.ACTIVATIONS) <= activations


def test_the_graph_is_nhwc_in_one_transpose_with_explicit_pads(tmp_path):
    model, x = _build(image_model)
    path = model.export(tmp_path / "net.onnx", format="onnx")
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    assert proto.ir_version == IR_VERSION and [o.version for o in proto.opset_import] == [DEFAULT_OPSET]
    (given,) = proto.graph.input
    dims = [d.dim_param or d.dim_value for d in given.type.tensor_type.shape.dim]
    assert dims == ["batch", 13, 11, 3] and given.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    ops = [node.op_type for node in proto.graph.node]
    assert ops.count("Transpose") == 1 and "Gather" not in ops
    convs = [node for node in proto.graph.node if node.op_type == "Conv"]
    pads = [next(list(a.ints) for a in node.attribute if a.name == "pads") for node in convs]
    # Keras's 'same': P // 2 before and the rest after, as (top, left, bottom, right)
    assert pads == [[0, 0, 1, 1], [2, 1, 2, 1], [0, 0, 0, 0]]
    (average,) = [node for node in proto.graph.node if node.op_type == "AveragePool"]
    assert {a.name: onnx.helper.get_attribute_value(a) for a in average.attribute}["count_include_pad"] == 0
    # a batch size other than the one exported with
    assert run(proto, x[:2]).shape == (2, 4)


def test_flatten_order_is_folded_into_the_dense_kernel():
    """Without the permuted kernel rows, the exported Dense would mix up the features: a hand
    example where Keras's flatten order matters (2 x 2 x 2 input, Dense picks feature 1 = (h0, w0, c1))."""
    cl.clear_session()
    model = cl.Sequential([L.Input((2, 2, 2)), L.Flatten(), L.Dense(1, use_bias=False)])
    kernel = np.zeros((8, 1))
    kernel[1] = 1.0
    model.layers[-1].set_weights([kernel])
    x = np.arange(8, dtype=np.float32).reshape(1, 2, 2, 2)
    # after a (1 x 1) pooling the tensor is NCHW, and ONNX's flat position 1 would be x[0, 0, 1, 0] = 2
    pooled = cl.Sequential([L.Input((2, 2, 2)), L.MaxPooling2D(1), L.Flatten(), L.Dense(1, use_bias=False)])
    pooled.layers[-1].set_weights([kernel])
    assert run(to_onnx(model), x).ravel().tolist() == [1.0]  # x[0, 0, 0, 1]
    assert run(to_onnx(pooled), x).ravel().tolist() == [1.0]


def test_a_wrong_flatten_order_fails(monkeypatch):
    """The comparison can fail: an exporter that forgets Keras's flatten order is caught."""
    from cnnlab import onnx_export

    def forgetful_flatten(b, layer, inputs):
        t = inputs[0]
        name = b.op("Flatten", [b.as_nchw(t, layer.name).name], layer.name, axis=1)
        return onnx_export.Tensor(name, layer.compute_output_shape(t.shape))

    monkeypatch.setitem(onnx_export._CONVERTERS, L.Flatten, forgetful_flatten)
    model, x = _build(image_model)
    with pytest.raises(AssertionError, match="onnx vs cnnlab"):
        assert_exported_predictions(model, x)


def test_opset_13_runs_the_same():
    model, x = _build(rearranging_model)
    assert_exported_predictions(model, x, opset=13)
    with pytest.raises(InvalidArgumentError, match=r"opset_version .* from 13 to 17.*received 18"):
        to_onnx(model, 18)


def test_unsupported_layer_is_named(tmp_path):
    class Doubler(L.Layer):
        def forward(self, x, training=False):
            return 2 * x

    class MyDense(L.Dense):  # a subclass may compute something else: not exported as a Dense
        pass

    model = cl.Sequential([L.Input((4, 4, 1)), L.Conv2D(2, 3), Doubler(name="my_doubler")])
    with pytest.raises(InvalidArgumentError, match=r'layer "my_doubler" \(Doubler\) cannot be exported.*Conv2D'):
        model.export(tmp_path / "never-written.onnx", format="onnx")
    model = cl.Sequential([L.Input((4,)), MyDense(2, name="mine")])
    with pytest.raises(InvalidArgumentError, match=r'layer "mine" \(MyDense\) cannot be exported'):
        model.export(tmp_path / "never-written.onnx", format="onnx")
    assert list(tmp_path.iterdir()) == []


def test_wrong_format_option_or_unbuilt_model(tmp_path):
    model, _ = _build(dense_model)
    with pytest.raises(InvalidArgumentError, match=r"unknown format 'tf_saved_model'.*format='onnx'.*Keras"):
        model.export(tmp_path / "m", format="tf_saved_model")
    with pytest.raises(InvalidArgumentError, match=r"unknown option\(s\) input_signature"):
        model.export(tmp_path / "m.onnx", format="onnx", input_signature=None)
    with pytest.raises(NotReadyError, match=r"no input shape yet.*Input"):
        cl.Sequential([L.Dense(2)]).export(tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_missing_onnx_is_a_clear_error(monkeypatch, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "onnx", None)
    model, _ = _build(dense_model)
    with pytest.raises(MissingDependencyError, match=r"pip install 'cnnlab\[onnx\]'"):
        model.export(tmp_path / "m.onnx")


def test_a_failing_export_leaves_no_file_and_keeps_the_old_one(monkeypatch, tmp_path):
    model, _ = _build(dense_model)
    target = tmp_path / "net.onnx"

    def broken_save(proto, path):
        with open(path, "wb") as f:
            f.write(proto.SerializeToString()[:10])  # half written, then the disk fails
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(onnx, "save_model", broken_save)
    with pytest.raises(OSError, match="net.onnx"):
        model.export(target)
    assert list(tmp_path.iterdir()) == []
    target.write_bytes(b"old")
    with pytest.raises(OSError):
        model.export(target)
    assert target.read_bytes() == b"old" and list(tmp_path.iterdir()) == [target]


def test_cli_convert_cnnlab_to_onnx(tmp_path, capsys):
    from cnnlab import cli

    model, x = _build(image_model)
    source = model.save(tmp_path / "net.cnnlab")
    assert cli.main(["convert", str(source), str(tmp_path / "net.onnx")]) == 0
    assert "net.onnx" in capsys.readouterr().out
    got = run(onnx.load(tmp_path / "net.onnx"), x)
    _, bound = rounding_bound(model, x)
    assert_within(got, model.predict(x, verbose=0), 2 * bound, "converted")
    assert cli.main(["convert", str(source), str(tmp_path / "net.pb")]) == 1
    assert "suffix '.pb'" in capsys.readouterr().err


# ---------------------------------------------------------------- graph models
def test_a_concatenate_on_the_wrong_axis_fails(monkeypatch):
    """The comparison can fail: an exporter that keeps Keras's axis on NCHW tensors (Keras's rows,
    axis 1, would join channels) is caught."""
    from cnnlab import onnx_export

    def keras_axis_concatenate(b, layer, inputs):
        ts = onnx_export._common_layout(b, inputs, layer.name)
        shape = layer.compute_output_shape([t.shape for t in inputs])
        out = b.op("Concat", [t.name for t in ts], layer.name, axis=layer.axis % len(shape))
        return onnx_export.Tensor(out, shape, ts[0].layout)

    def rows_joined():
        # C = H = W = 4: joining NCHW channels instead of rows gives the same shapes, other values
        inputs = L.Input((4, 4, 4))
        joined = L.Concatenate(axis=1)([L.Conv2D(4, 1)(inputs), L.Conv2D(4, 1, activation="tanh")(inputs)])
        return cl.Model(inputs, L.Dense(3)(L.Flatten()(joined)))

    model, x = _build(rows_joined)
    assert_exported_predictions(model, x)
    monkeypatch.setitem(onnx_export._CONVERTERS, L.Concatenate, keras_axis_concatenate)
    with pytest.raises(AssertionError, match="onnx vs cnnlab"):
        assert_exported_predictions(model, x)


def test_graph_inputs_outputs_and_a_shared_layer_stored_once(tmp_path):
    model, xs = _build(shared_nested_model)
    path = model.export(tmp_path / "graph.onnx", format="onnx")
    proto = onnx.load(path)
    assert [i.name for i in proto.graph.input] == ["input_0", "input_1"]
    assert [o.name for o in proto.graph.output] == ["output_0", "output_1", "output_2"]
    dims = [[d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim] for o in proto.graph.output]
    assert dims == [["batch", 3], ["batch", 2], ["batch", 108]]
    names = [i.name for i in proto.graph.initializer]
    assert names.count("shared_conv/kernel") == 1 and not any(n.startswith("shared_conv/kernel_") for n in names)
    # one transpose into NCHW per input, none back except for the output (a Gather restores the flat order)
    ops = [node.op_type for node in proto.graph.node]
    assert ops.count("Transpose") == 2 and ops.count("Gather") == 1
    got = run_all(proto, [x[:2] for x in xs])
    want = model.predict([x[:2] for x in xs], verbose=0)
    for out, expected, (_, bound) in zip(got, want, rounding_bounds(model, [x[:2] for x in xs]), strict=True):
        assert_within(out, expected, 2 * bound, "graph export")


def test_an_output_repeated_or_equal_to_an_input():
    """The same tensor returned twice, and a model input returned as an output: Identity nodes."""
    cl.clear_session()
    inputs = L.Input((3,))
    dense = L.Dense(2)(inputs)
    model = cl.Model(inputs, [dense, dense, inputs])
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    got = run_all(to_onnx(model), [x])
    want = model.predict(x, verbose=0)
    _, bound = rounding_bound(cl.Sequential([L.Input((3,)), model.get_layer(model.layers[1].name)]), x)
    assert_within(got[0], want[0], 2 * bound, "first")
    assert np.array_equal(got[1], got[0]) and np.array_equal(got[2], x)
