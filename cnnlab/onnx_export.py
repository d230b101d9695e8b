"""ONNX export: ``model.export("net.onnx", format="onnx")`` (Keras 3's spelling).

The exported graph computes what the cnnlab model predicts (inference: Dropout is gone,
BatchNormalization uses its moving statistics), in float32:

* the input is NHWC float32, exactly as the model is fed, with a dynamic batch axis
  (``"batch"``); ONNX's Conv and pooling work on NCHW, so one ``Transpose`` moves the
  tensor to NCHW where the first such layer needs it, and 4-D tensors stay NCHW after that;
* ``'same'`` padding becomes explicit ``pads`` computed as Keras computes them
  (:func:`cnnlab.ops.shapes.padding_amounts`: ``P // 2`` before, the rest after), and
  average pooling excludes the padding from the count (``count_include_pad=0``), as Keras does;
* ``Flatten`` of an NCHW tensor orders the values (c, h, w), Keras's (h, w, c); the order is
  kept as a permutation on the flattened tensor and folded into the next ``Dense`` kernel's
  rows, so no transpose back is needed and the numbers are Keras's. Where no Dense follows,
  a ``Gather`` restores Keras's order.

* merge layers (``Add``, ``Subtract``, ``Multiply``, ``Average``, ``Maximum``, ``Concatenate``)
  first bring their inputs to one layout (NCHW when one of them is NCHW); ``Concatenate``'s
  Keras axis is mapped to where that layout stores it (Keras's channel axis -1 is ONNX's 1).

The exporter is a list of per-layer converters applied over the model's expanded graph
(:func:`cnnlab.engine.graph.expand`: one node per layer call over numbered slots, nested
models inlined, a shared layer once per call, its weights stored once); a ``Sequential``
model gives a chain. ``onnx`` (``pip install 'cnnlab[onnx]'``) is imported only when exporting.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab import layers as L
from cnnlab._atomic import atomic_path
from cnnlab.errors import InvalidArgumentError, MissingDependencyError, NotReadyError
from cnnlab.layers.base import Layer, Shape, format_shape
from cnnlab.models.sequential import Sequential
from cnnlab.ops import activations as act_ops
from cnnlab.ops.shapes import padding_amounts

#: the opset written by default, and the ones this exporter's nodes are valid in (Softmax's
#: single-axis meaning and Resize's inputs are those of opset 13; Pad, Clip and Slice take
#: their bounds as inputs since opset 11)
DEFAULT_OPSET = 17
OPSETS = range(13, 18)
#: ONNX IR version 8 (ONNX 1.10-1.12) is the one written with opsets 15-17 and read by every
#: onnxruntime since 1.10; older readers of opset 13 accept it too
IR_VERSION = 8

#: Keras (N, H, W, C) axis -> axis of the same tensor stored NCHW
_NHWC_TO_NCHW_AXIS = {0: 0, 1: 2, 2: 3, 3: 1}


@dataclass(frozen=True)
class Tensor:
    """A tensor of the ONNX graph and how it relates to the Keras tensor it stands for.

    ``shape`` is Keras's shape (batch ``None``). ``layout`` is ``"keras"`` (stored as Keras
    has it), ``"nchw"`` (a 4-D Keras (N, H, W, C) tensor stored (N, C, H, W)) or ``"perm"``
    (a 2-D tensor whose features are Keras's permuted: ``stored[:, j] = keras[:, perm[j]]``).
    """

    name: str
    shape: Shape
    layout: str = "keras"
    perm: np.ndarray | None = None


class Builder:
    """Collects the nodes and initializers of one ONNX graph; unique names; layout changes."""

    def __init__(self, onnx: Any) -> None:
        self.onnx = onnx
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._used: set[str] = set()
        # a constant stored once however often it is used (a shared layer's kernel, its calls)
        self._consts: dict[tuple[str, tuple[int, ...], bytes], str] = {}
        # a tensor moved to another layout once, however many layers read it there
        self._moved: dict[tuple[str, str], Tensor] = {}

    def unique(self, base: str) -> str:
        name, k = base, 1
        while name in self._used:
            name, k = f"{base}_{k}", k + 1
        self._used.add(name)
        return name

    def const(self, base: str, value: Any, dtype: Any = np.float32) -> str:
        """An initializer holding ``value`` (float32 unless ``dtype`` says otherwise)."""
        array = np.ascontiguousarray(np.asarray(value, dtype=dtype))
        key = (array.dtype.str, array.shape, hashlib.sha256(array.tobytes()).digest())
        if key not in self._consts:
            name = self.unique(base)
            self.initializers.append(self.onnx.numpy_helper.from_array(array, name))
            self._consts[key] = name
        return self._consts[key]

    def op(self, op_type: str, inputs: list[str], base: str, **attributes: Any) -> str:
        """Append one node; returns the name of its (single) output."""
        out = self.unique(f"{base}/{op_type}")
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, [out], name=out, **attributes))
        return out

    # ------------------------------------------------------------ layouts
    def as_nchw(self, t: Tensor, base: str) -> Tensor:
        """``t`` stored NCHW (one Transpose from Keras's NHWC the first time)."""
        if t.layout == "nchw":
            return t
        if len(t.shape) != 4:
            raise InvalidArgumentError(f"{base}: expected a 4-D input (N, H, W, C), received {format_shape(t.shape)}.")
        if (t.name, "nchw") not in self._moved:
            k = self.as_keras(t, base)
            self._moved[t.name, "nchw"] = Tensor(
                self.op("Transpose", [k.name], base, perm=[0, 3, 1, 2]), t.shape, "nchw"
            )
        return self._moved[t.name, "nchw"]

    def as_keras(self, t: Tensor, base: str) -> Tensor:
        """``t`` stored exactly as Keras has it."""
        if t.layout == "keras":
            return t
        if (t.name, "keras") not in self._moved:
            if t.layout == "nchw":
                out = self.op("Transpose", [t.name], base, perm=[0, 2, 3, 1])
            else:  # "perm": keras[:, k] = stored[:, inverse[k]]
                inverse = self.const(f"{base}/keras_order", np.argsort(t.perm), np.int64)
                out = self.op("Gather", [t.name, inverse], base, axis=1)
            self._moved[t.name, "keras"] = Tensor(out, t.shape)
        return self._moved[t.name, "keras"]

    def axis(self, t: Tensor, keras_axis: int) -> int:
        """Where Keras's axis ``keras_axis`` of ``t`` is in the stored tensor."""
        a = keras_axis % len(t.shape)
        return _NHWC_TO_NCHW_AXIS[a] if t.layout == "nchw" else a

    def per_feature(self, t: Tensor, keras_axis: int, base: str, values: np.ndarray) -> str:
        """A constant of one value per feature of Keras's ``keras_axis`` (or one scalar), shaped to
        broadcast against ``t`` as stored."""
        values = np.asarray(values, np.float64)
        if values.ndim == 0:
            return self.const(base, values)
        rank, a = len(t.shape), self.axis(t, keras_axis)
        if t.layout == "perm":
            values = values[t.perm]
        return self.const(base, values.reshape([-1 if i == a else 1 for i in range(rank)][1:]))


Converter = Callable[[Builder, Layer, list[Tensor]], Tensor]
_CONVERTERS: dict[type, Converter] = {}


def converter(*classes: type) -> Callable[[Converter], Converter]:
    """Register a converter for exactly ``classes``: a subclass (say a user's Dense with its own
    forward) may compute something else, so it is refused rather than exported as its base."""

    def register(function: Converter) -> Converter:
        for cls in classes:
            _CONVERTERS[cls] = function
        return function

    return register


def _converter_for(layer: Layer) -> Converter | None:
    return _CONVERTERS.get(type(layer))


def supported_layers() -> list[str]:
    """Names of the layer classes the exporter converts."""
    return sorted(cls.__name__ for cls in _CONVERTERS)


# ---------------------------------------------------------------- activations
def _activation(b: Builder, name: str, t: Tensor, base: str, axis: int = -1) -> Tensor:
    """Keras's activation ``name`` applied to ``t`` (softmax along Keras's ``axis``)."""
    x = t.name
    if name == "linear":
        return t
    simple = {
        "relu": "Relu",
        "sigmoid": "Sigmoid",
        "tanh": "Tanh",
        "exponential": "Exp",
        "softsign": "Softsign",
    }
    if name in simple:
        out = b.op(simple[name], [x], base)
    elif name == "softmax":
        # opset >= 13: Softmax normalises along exactly one axis, as Keras does
        out = b.op("Softmax", [x], base, axis=b.axis(t, axis))
    elif name == "elu":
        out = b.op("Elu", [x], base, alpha=1.0)
    elif name == "selu":
        out = b.op("Selu", [x], base, alpha=act_ops.SELU_ALPHA, gamma=act_ops.SELU_SCALE)
    elif name == "leaky_relu":
        out = b.op("LeakyRelu", [x], base, alpha=0.2)  # the activation function's default (the layer's is 0.3)
    elif name == "relu6":
        out = b.op("Clip", [x, b.const(f"{base}/zero", 0.0), b.const(f"{base}/six", 6.0)], base)
    elif name == "hard_sigmoid":
        # Keras 3: relu6(x + 3) / 6 = clip(x / 6 + 0.5, 0, 1)
        out = b.op("HardSigmoid", [x], base, alpha=1.0 / 6.0, beta=0.5)
    elif name == "silu":
        out = b.op("Mul", [x, b.op("Sigmoid", [x], base)], base)
    elif name == "gelu":
        # exact GELU 0.5 * x * (1 + erf(x / sqrt(2))) (the Gelu operator needs opset 20)
        scaled = b.op("Div", [x, b.const(f"{base}/sqrt2", np.sqrt(2.0))], base)
        one_plus = b.op("Add", [b.op("Erf", [scaled], base), b.const(f"{base}/one", 1.0)], base)
        out = b.op("Mul", [b.op("Mul", [x, b.const(f"{base}/half", 0.5)], base), one_plus], base)
    elif name == "softplus":
        # cnnlab (and torch) return x itself above 20, where log(1 + exp(x)) would overflow for large x
        limit = b.const(f"{base}/threshold", 20.0)
        soft = b.op("Softplus", [b.op("Min", [x, limit], base)], base)
        out = b.op("Where", [b.op("Greater", [x, limit], base), x, soft], base)
    else:  # pragma: no cover - every name in act_ops.ACTIVATIONS is handled above
        raise InvalidArgumentError(f"{base}: activation {name!r} cannot be exported to ONNX.")
    return Tensor(out, t.shape, t.layout, t.perm)


# ---------------------------------------------------------------- layer converters
@converter(L.InputLayer, L.Dropout, L.SpatialDropout2D)
def _identity(b: Builder, layer: Layer, inputs: list[Tensor]) -> Tensor:
    """Input declarations and dropout (the identity at inference)."""
    return inputs[0]


@converter(L.Conv2D)
def _conv2d(b: Builder, layer: L.Conv2D, inputs: list[Tensor]) -> Tensor:
    t = b.as_nchw(inputs[0], layer.name)
    (top, bottom), (left, right) = padding_amounts(
        t.shape[1:3], layer.kernel_size, layer.strides, layer.padding, layer.dilation_rate
    )
    # Keras (kh, kw, C_in, F) -> ONNX (F, C_in, kh, kw)
    names = [t.name, b.const(f"{layer.name}/kernel", layer.kernel.transpose(3, 2, 0, 1))]
    if layer.use_bias:
        names.append(b.const(f"{layer.name}/bias", layer.bias))
    out = b.op(
        "Conv",
        names,
        layer.name,
        kernel_shape=list(layer.kernel_size),
        strides=list(layer.strides),
        dilations=list(layer.dilation_rate),
        pads=[top, left, bottom, right],
    )
    return _activation(b, layer.activation, Tensor(out, layer.compute_output_shape(t.shape), "nchw"), layer.name)


def _depthwise_conv(b: Builder, layer: Any, t: Tensor, kernel: np.ndarray, bias: Any) -> str:
    """ONNX's grouped Conv (one group per input channel) computing Keras's depthwise convolution:
    output channel ``c * depth_multiplier + m`` is input channel ``c`` convolved with ``kernel[:, :, c, m]``."""
    (top, bottom), (left, right) = padding_amounts(
        t.shape[1:3], layer.kernel_size, layer.strides, layer.padding, layer.dilation_rate
    )
    kh, kw, c_in, dm = kernel.shape
    # Keras (kh, kw, C, dm) -> ONNX (C * dm, 1, kh, kw), channel c * dm + m
    names = [
        t.name,
        b.const(f"{layer.name}/depthwise_kernel", kernel.transpose(2, 3, 0, 1).reshape(c_in * dm, 1, kh, kw)),
    ]
    if bias is not None:
        names.append(b.const(f"{layer.name}/bias", bias))
    return b.op(
        "Conv",
        names,
        layer.name,
        group=int(c_in),
        kernel_shape=list(layer.kernel_size),
        strides=list(layer.strides),
        dilations=list(layer.dilation_rate),
        pads=[top, left, bottom, right],
    )


@converter(L.DepthwiseConv2D)
def _depthwise_conv2d(b: Builder, layer: L.DepthwiseConv2D, inputs: list[Tensor]) -> Tensor:
    t = b.as_nchw(inputs[0], layer.name)
    out = _depthwise_conv(b, layer, t, layer.kernel, layer.bias if layer.use_bias else None)
    return _activation(b, layer.activation, Tensor(out, layer.compute_output_shape(t.shape), "nchw"), layer.name)


@converter(L.SeparableConv2D)
def _separable_conv2d(b: Builder, layer: L.SeparableConv2D, inputs: list[Tensor]) -> Tensor:
    """The depthwise convolution (no bias), then a 1x1 Conv with the pointwise kernel and the bias."""
    t = b.as_nchw(inputs[0], layer.name)
    mid = _depthwise_conv(b, layer, t, layer.depthwise_kernel, None)
    # Keras (1, 1, C * dm, F) -> ONNX (F, C * dm, 1, 1)
    names = [mid, b.const(f"{layer.name}/pointwise_kernel", layer.pointwise_kernel.transpose(3, 2, 0, 1))]
    if layer.use_bias:
        names.append(b.const(f"{layer.name}/bias", layer.bias))
    out = b.op("Conv", names, layer.name, kernel_shape=[1, 1])
    return _activation(b, layer.activation, Tensor(out, layer.compute_output_shape(t.shape), "nchw"), layer.name)


@converter(L.Dense)
def _dense(b: Builder, layer: L.Dense, inputs: list[Tensor]) -> Tensor:
    t = inputs[0]
    kernel = np.asarray(layer.kernel, np.float64)
    shape = layer.compute_output_shape(t.shape)
    if t.layout == "perm":
        # stored[:, j] = keras[:, perm[j]], so sum_k keras[k] W[k] = sum_j stored[j] W[perm[j]]
        kernel = kernel[t.perm]
    elif len(t.shape) != 2:
        t = b.as_keras(t, layer.name)
    names = [t.name, b.const(f"{layer.name}/kernel", kernel)]
    if len(t.shape) == 2:
        if layer.use_bias:
            names.append(b.const(f"{layer.name}/bias", layer.bias))
        out = b.op("Gemm", names, layer.name)
    else:  # Dense on the last axis of a higher-rank tensor
        out = b.op("MatMul", names, layer.name)
        if layer.use_bias:
            out = b.op("Add", [out, b.const(f"{layer.name}/bias", layer.bias)], layer.name)
    return _activation(b, layer.activation, Tensor(out, shape), layer.name)


@converter(L.Activation)
def _activation_layer(b: Builder, layer: L.Activation, inputs: list[Tensor]) -> Tensor:
    return _activation(b, layer.activation, inputs[0], layer.name)


@converter(L.Softmax)
def _softmax(b: Builder, layer: L.Softmax, inputs: list[Tensor]) -> Tensor:
    t = inputs[0]
    layer._axis(len(t.shape))  # Keras's error for a bad axis
    return _activation(b, "softmax", t, layer.name, axis=layer.axis)


@converter(L.ReLU)
def _relu(b: Builder, layer: L.ReLU, inputs: list[Tensor]) -> Tensor:
    """``min(x, max_value)`` for ``x > threshold``, ``negative_slope * (x - threshold)`` otherwise."""
    t, base = inputs[0], layer.name
    slope, top, threshold = layer.negative_slope, layer.max_value, layer.threshold
    if threshold == 0 and top is None:
        return _activation(b, "relu", t, base) if slope == 0 else _leaky(b, t, slope, base)
    if threshold == 0 and slope == 0:
        out = b.op("Clip", [t.name, b.const(f"{base}/zero", 0.0), b.const(f"{base}/max_value", top)], base)
        return Tensor(out, t.shape, t.layout, t.perm)
    th = b.const(f"{base}/threshold", threshold)
    out = b.op("Where", [b.op("Greater", [t.name, th], base), t.name, b.const(f"{base}/zero", 0.0)], base)
    if top is not None:
        out = b.op("Min", [out, b.const(f"{base}/max_value", top)], base)
    if slope:
        below = b.op("Relu", [b.op("Sub", [th, t.name], base)], base)  # max(threshold - x, 0)
        out = b.op("Sub", [out, b.op("Mul", [below, b.const(f"{base}/negative_slope", slope)], base)], base)
    return Tensor(out, t.shape, t.layout, t.perm)


def _leaky(b: Builder, t: Tensor, slope: float, base: str) -> Tensor:
    return Tensor(b.op("LeakyRelu", [t.name], base, alpha=float(slope)), t.shape, t.layout, t.perm)


@converter(L.LeakyReLU)
def _leaky_relu(b: Builder, layer: L.LeakyReLU, inputs: list[Tensor]) -> Tensor:
    return _leaky(b, inputs[0], layer.negative_slope, layer.name)


@converter(L.Flatten)
def _flatten(b: Builder, layer: L.Flatten, inputs: list[Tensor]) -> Tensor:
    t = inputs[0]
    shape = layer.compute_output_shape(t.shape)
    if len(t.shape) == 2:
        return Tensor(t.name, shape, t.layout, t.perm)  # already flat
    if t.layout == "nchw":
        # ONNX flattens (c, h, w); stored position j holds Keras's flat index perm[j]
        _, h, w, c = t.shape
        perm = np.arange(h * w * c).reshape(h, w, c).transpose(2, 0, 1).ravel()
        return Tensor(b.op("Flatten", [t.name], layer.name, axis=1), shape, "perm", perm)
    return Tensor(b.op("Flatten", [t.name], layer.name, axis=1), shape)


def _pool(op_type: str, b: Builder, layer: L.MaxPooling2D | L.AveragePooling2D, t: Tensor) -> Tensor:
    t = b.as_nchw(t, layer.name)
    (top, bottom), (left, right) = padding_amounts(t.shape[1:3], layer.pool_size, layer.strides, layer.padding)
    attributes: dict[str, Any] = {
        "kernel_shape": list(layer.pool_size),
        "strides": list(layer.strides),
        "pads": [top, left, bottom, right],
    }
    source = t.name
    if op_type == "AveragePool":
        attributes["count_include_pad"] = 0  # Keras averages the real cells only
    elif (top, left) != (bottom, right):
        # uneven 'same' padding for a max: padded with -inf first (never the maximum), because
        # several runtimes mishandle uneven pooling pads (onnx.reference's MaxPool swaps them)
        pads = b.const(f"{layer.name}/pads", [0, 0, top, left, 0, 0, bottom, right], np.int64)
        source = b.op("Pad", [source, pads, b.const(f"{layer.name}/lowest", -np.inf)], layer.name, mode="constant")
        attributes["pads"] = [0, 0, 0, 0]
    out = b.op(op_type, [source], layer.name, **attributes)
    return Tensor(out, layer.compute_output_shape(t.shape), "nchw")


@converter(L.MaxPooling2D)
def _max_pool(b: Builder, layer: L.MaxPooling2D, inputs: list[Tensor]) -> Tensor:
    return _pool("MaxPool", b, layer, inputs[0])


@converter(L.AveragePooling2D)
def _average_pool(b: Builder, layer: L.AveragePooling2D, inputs: list[Tensor]) -> Tensor:
    return _pool("AveragePool", b, layer, inputs[0])


def _global_pool(op_type: str, b: Builder, layer: Any, t: Tensor) -> Tensor:
    t = b.as_nchw(t, layer.name)
    out = b.op(op_type, [t.name], layer.name)  # (N, C, 1, 1)
    shape = layer.compute_output_shape(t.shape)
    if layer.keepdims:
        return Tensor(out, shape, "nchw")
    return Tensor(b.op("Flatten", [out], layer.name, axis=1), shape)


@converter(L.GlobalAveragePooling2D)
def _global_average(b: Builder, layer: L.GlobalAveragePooling2D, inputs: list[Tensor]) -> Tensor:
    return _global_pool("GlobalAveragePool", b, layer, inputs[0])


@converter(L.GlobalMaxPooling2D)
def _global_max(b: Builder, layer: L.GlobalMaxPooling2D, inputs: list[Tensor]) -> Tensor:
    return _global_pool("GlobalMaxPool", b, layer, inputs[0])


@converter(L.BatchNormalization)
def _batch_norm(b: Builder, layer: L.BatchNormalization, inputs: list[Tensor]) -> Tensor:
    """Inference: ``(x - moving_mean) / sqrt(moving_variance + epsilon) * gamma + beta``."""
    t, base = inputs[0], layer.name
    layer.compute_output_shape(t.shape)  # Keras's error for a bad axis
    weights = {key: np.asarray(value, np.float64) for key, value in layer._weights.items()}
    size = weights["moving_mean"].shape[0]
    gamma = weights.get("gamma", np.ones(size))
    beta = weights.get("beta", np.zeros(size))
    mean, variance = weights["moving_mean"], weights["moving_variance"]
    if b.axis(t, layer.axis) == 1:  # the features are ONNX's channel axis: the BatchNormalization operator
        if t.layout == "perm":
            gamma, beta, mean, variance = (v[t.perm] for v in (gamma, beta, mean, variance))
        names = [
            b.const(f"{base}/{key}", v)
            for key, v in zip(("gamma", "beta", "mean", "variance"), (gamma, beta, mean, variance), strict=True)
        ]
        out = b.op("BatchNormalization", [t.name, *names], base, epsilon=layer.epsilon)
        return Tensor(out, t.shape, t.layout, t.perm)
    # another feature axis (e.g. the last of a 3-D tensor): the same arithmetic, broadcast
    factor = gamma / np.sqrt(variance + layer.epsilon)
    centred = b.op("Sub", [t.name, b.per_feature(t, layer.axis, f"{base}/moving_mean", mean)], base)
    scaled = b.op("Mul", [centred, b.per_feature(t, layer.axis, f"{base}/factor", factor)], base)
    out = b.op("Add", [scaled, b.per_feature(t, layer.axis, f"{base}/beta", beta)], base)
    return Tensor(out, t.shape, t.layout, t.perm)


@converter(L.Rescaling)
def _rescaling(b: Builder, layer: L.Rescaling, inputs: list[Tensor]) -> Tensor:
    """``x * scale + offset``; a list applies per channel (Keras's last axis)."""
    t, base = inputs[0], layer.name
    out = b.op("Mul", [t.name, b.per_feature(t, -1, f"{base}/scale", layer.scale)], base)
    if np.any(np.asarray(layer.offset) != 0):
        out = b.op("Add", [out, b.per_feature(t, -1, f"{base}/offset", layer.offset)], base)
    return Tensor(out, t.shape, t.layout, t.perm)


@converter(L.ZeroPadding2D)
def _zero_padding(b: Builder, layer: L.ZeroPadding2D, inputs: list[Tensor]) -> Tensor:
    t = b.as_nchw(inputs[0], layer.name)
    (top, bottom), (left, right) = layer.padding
    pads = b.const(f"{layer.name}/pads", [0, 0, top, left, 0, 0, bottom, right], np.int64)
    out = b.op("Pad", [t.name, pads], layer.name, mode="constant")
    return Tensor(out, layer.compute_output_shape(t.shape), "nchw")


@converter(L.Cropping2D)
def _cropping(b: Builder, layer: L.Cropping2D, inputs: list[Tensor]) -> Tensor:
    t = b.as_nchw(inputs[0], layer.name)
    shape = layer.compute_output_shape(t.shape)
    (top, bottom), (left, right) = layer.cropping
    _, h, w, _ = t.shape
    starts = b.const(f"{layer.name}/starts", [top, left], np.int64)
    ends = b.const(f"{layer.name}/ends", [h - bottom, w - right], np.int64)
    axes = b.const(f"{layer.name}/axes", [2, 3], np.int64)
    return Tensor(b.op("Slice", [t.name, starts, ends, axes], layer.name), shape, "nchw")


@converter(L.UpSampling2D)
def _upsampling(b: Builder, layer: L.UpSampling2D, inputs: list[Tensor]) -> Tensor:
    t = b.as_nchw(inputs[0], layer.name)
    scales = b.const(f"{layer.name}/scales", [1.0, 1.0, *layer.size])
    # y[i] = x[floor(i / size)]: Keras's nearest-neighbour repetition
    out = b.op(
        "Resize",
        [t.name, "", scales],
        layer.name,
        mode="nearest",
        coordinate_transformation_mode="asymmetric",
        nearest_mode="floor",
    )
    return Tensor(out, layer.compute_output_shape(t.shape), "nchw")


@converter(L.Reshape)
def _reshape(b: Builder, layer: L.Reshape, inputs: list[Tensor]) -> Tensor:
    t = b.as_keras(inputs[0], layer.name)  # Keras reshapes in its own (C) order
    shape = layer.compute_output_shape(t.shape)
    target = b.const(f"{layer.name}/shape", [-1, *shape[1:]], np.int64)
    return Tensor(b.op("Reshape", [t.name, target], layer.name), shape)


@converter(L.Permute)
def _permute(b: Builder, layer: L.Permute, inputs: list[Tensor]) -> Tensor:
    t = b.as_keras(inputs[0], layer.name)
    shape = layer.compute_output_shape(t.shape)
    return Tensor(b.op("Transpose", [t.name], layer.name, perm=[0, *layer.dims]), shape)


# ---------------------------------------------------------------- merge layers
def _common_layout(b: Builder, inputs: list[Tensor], base: str) -> list[Tensor]:
    """The inputs of a merge stored alike: all NCHW when they are 4-D and one of them already is (one
    transpose of the others rather than one back per NCHW input), all with one flatten order when
    they share it, otherwise all as Keras has them."""
    if all(len(t.shape) == 4 for t in inputs) and any(t.layout == "nchw" for t in inputs):
        return [b.as_nchw(t, base) for t in inputs]
    first = inputs[0]
    if first.layout == "perm" and all(
        t.layout == "perm" and t.shape == first.shape and np.array_equal(t.perm, first.perm) for t in inputs
    ):
        return inputs
    return [b.as_keras(t, base) for t in inputs]


def _chain(op_type: str, b: Builder, layer: Layer, inputs: list[Tensor]) -> Tensor:
    """``((x_1 op x_2) op x_3) ...``: Keras's order of the binary operations (ONNX broadcasts size-1
    axes as Keras does; the inputs have one rank, and one layout after :func:`_common_layout`)."""
    ts = _common_layout(b, inputs, layer.name)
    out = ts[0].name
    for t in ts[1:]:
        out = b.op(op_type, [out, t.name], layer.name)
    shape = layer.compute_output_shape([t.shape for t in inputs])
    return ts[0] if len(ts) == 1 else Tensor(out, shape, ts[0].layout, ts[0].perm)


# the elementwise merges: one ONNX op applied pairwise, left to right, as Keras folds its inputs
for _merge, _op in ((L.Add, "Add"), (L.Subtract, "Sub"), (L.Multiply, "Mul"), (L.Maximum, "Max")):
    converter(_merge)(functools.partial(_chain, _op))


@converter(L.Average)
def _average(b: Builder, layer: L.Average, inputs: list[Tensor]) -> Tensor:
    """Keras sums, then divides by the number of inputs."""
    total = _chain("Add", b, layer, inputs)
    out = b.op("Div", [total.name, b.const(f"{layer.name}/count", float(len(inputs)))], layer.name)
    return Tensor(out, total.shape, total.layout, total.perm)


@converter(L.Concatenate)
def _concatenate(b: Builder, layer: L.Concatenate, inputs: list[Tensor]) -> Tensor:
    """Along Keras's ``axis``, wherever the inputs' layout puts it: Keras's channel axis -1 of NCHW
    tensors is ONNX's axis 1. Flat tensors in a flatten order are joined as stored, their orders
    joined with them (``perm`` of the second input shifted by the size of the first)."""
    shape = layer.compute_output_shape([t.shape for t in inputs])
    axis = layer.axis % len(shape)
    if len(shape) == 2 and any(t.layout == "perm" for t in inputs) and all(t.layout != "nchw" for t in inputs):
        parts, offset = [], 0
        for t in inputs:
            parts.append((t.perm if t.layout == "perm" else np.arange(t.shape[1])) + offset)
            offset += t.shape[1]
        out = b.op("Concat", [t.name for t in inputs], layer.name, axis=1)
        return Tensor(out, shape, "perm", np.concatenate(parts))
    ts = _common_layout(b, inputs, layer.name)
    out = b.op("Concat", [t.name for t in ts], layer.name, axis=b.axis(ts[0], axis))
    return Tensor(out, shape, ts[0].layout)


# ---------------------------------------------------------------- graphs
def io_names(count: int, kind: str) -> list[str]:
    """Names of the graph's inputs (``kind="input"``) or outputs: ``"input"`` for one,
    ``"input_0", "input_1", ...`` (the model's order) for several."""
    return [kind] if count == 1 else [f"{kind}_{k}" for k in range(count)]


def _import_onnx() -> Any:
    try:
        import onnx
        import onnx.checker
        import onnx.helper
        import onnx.numpy_helper
    except ImportError as exc:
        raise MissingDependencyError(
            f"export(format='onnx') needs the onnx package, which cannot be imported ({exc}); "
            "install it with: pip install 'cnnlab[onnx]' (or pip install onnx)."
        ) from exc
    return onnx


def to_onnx(model: Sequential, opset_version: int | None = None) -> Any:
    """The ``onnx.ModelProto`` computing ``model``'s predictions (checked with ``onnx.checker``).

    ``model``: a ``Sequential`` or a graph model (``cl.Model``: branches, merges, shared layers,
    nested models, several inputs and outputs). Inputs ``"input"`` (or ``"input_0"``, ``"input_1"``, ...
    in ``model.inputs`` order): float32 ``(batch, *shape[1:])`` as the model is fed (NHWC for
    images); outputs ``"output"`` (or ``"output_0"``, ...): float32 of Keras's output shapes.
    """
    from cnnlab.engine.graph import expand

    onnx = _import_onnx()
    opset = DEFAULT_OPSET if opset_version is None else opset_version
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) or opset not in OPSETS:
        raise InvalidArgumentError(
            f"export: expected opset_version to be an integer from {OPSETS.start} to {OPSETS.stop - 1} "
            f"(or None for {DEFAULT_OPSET}), received {opset_version!r}."
        )
    if not isinstance(model, Sequential):
        raise InvalidArgumentError(
            f"export: expected a cnnlab model (cl.Sequential or cl.Model), received {type(model).__name__}."
        )
    graph_model = getattr(model, "is_graph_model", False)
    if not graph_model and (model._input_shape is None or not model.built):
        raise NotReadyError(
            f'export: model "{model.name}" has no input shape yet, so the ONNX graph cannot be sized. '
            "Start the model with cl.layers.Input((28, 28, 1)) (your image shape), or call it on data first."
        )
    graph = expand(model)
    input_shapes = [tuple(t.shape) for t in model.inputs] if graph_model else [tuple(model.input_shape)]
    input_names = io_names(len(graph.inputs), "input")
    output_names = io_names(len(graph.outputs), "output")
    b = Builder(onnx)
    for name in (*input_names, *output_names):
        b.unique(name)
    tensors = {
        slot: Tensor(name, shape) for slot, name, shape in zip(graph.inputs, input_names, input_shapes, strict=True)
    }
    for node in graph.nodes:
        convert = _converter_for(node.layer)
        if convert is None:
            raise InvalidArgumentError(
                f'export: layer "{node.layer.name}" ({type(node.layer).__name__}) cannot be exported to ONNX. '
                f"Supported layers: {', '.join(supported_layers())}. Remove or replace it before exporting."
            )
        tensors[node.output] = convert(b, node.layer, [tensors[slot] for slot in node.inputs])
    results = [b.as_keras(tensors[slot], "output") for slot in graph.outputs]
    _name_outputs(b, [r.name for r in results], output_names, set(input_names))
    float32 = onnx.TensorProto.FLOAT

    def info(name: str, shape: Shape) -> Any:
        return onnx.helper.make_tensor_value_info(name, float32, ["batch", *shape[1:]])

    graph_proto = onnx.helper.make_graph(
        b.nodes,
        model.name,
        [info(name, shape) for name, shape in zip(input_names, input_shapes, strict=True)],
        [info(name, r.shape) for name, r in zip(output_names, results, strict=True)],
        initializer=b.initializers,
    )
    from cnnlab._version import __version__

    proto = onnx.helper.make_model(
        graph_proto,
        producer_name="cnnlab",
        producer_version=__version__,
        opset_imports=[onnx.helper.make_opsetid("", int(opset))],
        ir_version=IR_VERSION,
    )
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _name_outputs(b: Builder, results: list[str], names: list[str], graph_inputs: set[str]) -> None:
    """Make each result tensor the graph output of that name: rename the node that computes it (and
    its readers), or add an Identity when the result is a graph input or already an output (a model
    of Dropout only, the same tensor returned twice)."""
    renamed: dict[str, str] = {}
    for result, name in zip(results, names, strict=True):
        producer = next((node for node in reversed(b.nodes) if result in node.output), None)
        if result in renamed or result in graph_inputs or producer is None:
            source = renamed.get(result, result)
            b.nodes.append(b.onnx.helper.make_node("Identity", [source], [name], name=b.unique(f"{name}/Identity")))
            continue
        producer.output[list(producer.output).index(result)] = name
        for later in b.nodes:
            for k, used in enumerate(later.input):
                if used == result:
                    later.input[k] = name
        renamed[result] = name


def export_onnx(
    model: Sequential,
    filepath: str | os.PathLike[str],
    verbose: Any = None,
    opset_version: int | None = None,
    **options: Any,
) -> Path:
    """Write ``model`` as an ONNX file at ``filepath`` (atomically: a failure leaves no file, and an
    old file stays as it was); returns the path."""
    if options:
        raise InvalidArgumentError(
            f"export(format='onnx'): unknown option(s) {', '.join(sorted(options))}; expected filepath, verbose "
            "and opset_version. The input signature is the model's input shape with a dynamic batch axis."
        )
    proto = to_onnx(model, opset_version)  # every conversion error comes before the file is touched
    onnx = _import_onnx()
    with atomic_path(filepath, suffix=".onnx", action="cannot export the model to") as tmp:
        onnx.save_model(proto, os.fspath(tmp))
    if verbose:
        print(f"Saved an ONNX model (opset {proto.opset_import[0].version}) to {filepath}")
    return Path(filepath)


Sequential._exporters["onnx"] = export_onnx
