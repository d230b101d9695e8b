"""Explanations of the layers after the lecture: one output value written as the formula that
computed it, with the numbers put in.

``cl.explain`` hands every layer that is not a plain convolution, pooling or Dense layer here:

* ``BatchNormalization`` (inference, as ``predict`` computes it):
  ``gamma·(x − moving_mean)/sqrt(moving_variance + epsilon) + beta``;
* ``SeparableConv2D``: each depthwise sum (window × that channel's kernel, from the loop
  reference :func:`cnnlab.ops.depthwise.depthwise_conv2d_terms`), then the pointwise sum, bias
  and activation;
* ``GlobalAveragePooling2D`` / ``GlobalMaxPooling2D``: the mean (or first maximum) of one
  channel's ``H·W`` values;
* the merges ``Add``, ``Subtract``, ``Multiply``, ``Average``, ``Maximum``: the values of their
  inputs at that position; ``Concatenate``: which input the value is copied from;
* ``Rescaling`` (``x·scale + offset``), ``Activation``, ``ReLU``, ``LeakyReLU`` and ``Softmax``
  (softmax over its axis, with each ``exp`` term);
* layers that only move values (``Flatten``, ``Reshape``, ``Permute``, ``ZeroPadding2D``,
  ``Cropping2D``, ``UpSampling2D``) and those that are the identity at inference (``Dropout``,
  ``SpatialDropout2D``, the augmentation layers): the input cell the value comes from, found by
  running the layer itself on the cells' numbers (so the answer is the layer's own order).

Each result's ``.output`` is the layer's own output at that position, bit for bit; ``.value`` is
the formula computed again in float64 from the numbers shown (equal to ``.output`` up to the
float32 rounding of the layer's own arithmetic).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cnnlab.explain_base import Explanation, fmt
from cnnlab.layers import (
    Activation,
    Add,
    Average,
    BatchNormalization,
    Concatenate,
    Dropout,
    GlobalAveragePooling2D,
    GlobalMaxPooling2D,
    LeakyReLU,
    Maximum,
    Multiply,
    ReLU,
    Rescaling,
    SeparableConv2D,
    Softmax,
    Subtract,
)
from cnnlab.ops import activations as act_ops
from cnnlab.ops.depthwise import depthwise_conv2d_terms

#: values written out in a long sum before "... (k more)"
SHOW = 16
#: cells a value-moving layer may have per sample for the index trick (exact integers in float32)
MAX_CELLS = 2**24


@dataclass(repr=False)
class StepExplanation(Explanation):
    """One output of a layer written as a formula of a few numbers.

    ``formula``: the rule in words and symbols; ``terms``: the numbers that enter it, each
    ``{"name", "value", "source"}`` (``source``: where it comes from, e.g. ``input[0, 3, 4, 2]``);
    ``lines``: the arithmetic as printed; ``value``: the formula's result in float64."""

    formula: str = ""
    terms: list[dict[str, Any]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    value: float = 0.0

    def __str__(self) -> str:
        where = ", ".join(map(str, self.at))
        return "\n".join([f"{self.layer} output[{where}]: {self.formula}", *(f"  {line}" for line in self.lines)])

    def arithmetic(self) -> str:
        """The last line: the numbers put into the formula and its result."""
        return self.lines[-1] if self.lines else ""


def _src(index: tuple[int, ...], name: str = "input") -> str:
    return f"{name}[{', '.join(map(str, index))}]"


def _sum_text(values: np.ndarray) -> str:
    shown = " + ".join(fmt(v) for v in values[:SHOW])
    return shown + (f" + ... ({len(values) - SHOW} more)" if len(values) > SHOW else "")


def explain_step(layer: Any, data: Any, at: tuple[int, ...], full: Any) -> Explanation | None:
    """The explanation of ``full[at]`` (the layer's output on ``data``), or None for a layer type
    not covered here. ``data``: the layer's input (a list for a merge)."""
    output = float(np.asarray(full)[at])
    name, kind = layer.name, type(layer).__name__
    for types, build in _EXPLAINERS:
        if isinstance(layer, types):
            return build(layer, data, at, output, name, kind)
    return _moved(layer, data, at, output, name, kind)


# ----------------------------------------------------------------------------- one family each
def _batch_norm(layer: BatchNormalization, data: np.ndarray, at: tuple[int, ...], output: float, name: str, kind: str):
    axis = layer.axis % np.ndim(data)
    c = at[axis]
    w = layer._weights
    x = float(np.asarray(data)[at])
    gamma = float(w["gamma"][c]) if "gamma" in w else 1.0
    beta = float(w["beta"][c]) if "beta" in w else 0.0
    mean, var = float(w["moving_mean"][c]), float(w["moving_variance"][c])
    value = gamma * (x - mean) / np.sqrt(var + layer.epsilon) + beta
    return StepExplanation(
        name,
        "batch_normalization",
        at,
        output,
        "gamma·(x − moving_mean)/sqrt(moving_variance + epsilon) + beta (inference: the moving statistics; "
        "fit normalises with the batch's own mean and variance)",
        [
            {"name": "x", "value": x, "source": _src(at)},
            {"name": "gamma", "value": gamma, "source": f"{name}.gamma[{c}]" if "gamma" in w else "scale=False: 1"},
            {"name": "beta", "value": beta, "source": f"{name}.beta[{c}]" if "beta" in w else "center=False: 0"},
            {"name": "moving_mean", "value": mean, "source": f"{name}.moving_mean[{c}]"},
            {"name": "moving_variance", "value": var, "source": f"{name}.moving_variance[{c}]"},
            {"name": "epsilon", "value": layer.epsilon, "source": "the layer's epsilon"},
        ],
        [
            f"x = {_src(at)} = {fmt(x)}; channel {c}: gamma {fmt(gamma)}, beta {fmt(beta)}, moving mean "
            f"{fmt(mean)}, moving variance {fmt(var)}, epsilon {layer.epsilon:g}",
            f"{fmt(gamma)}×({fmt(x)} − {fmt(mean)})/sqrt({fmt(var)} + {layer.epsilon:g}) + {fmt(beta)} = {fmt(value)}",
        ],
        float(value),
    )


def _global_pool(layer: Any, data: np.ndarray, at: tuple[int, ...], output: float, name: str, kind: str):
    n, c = at[0], at[-1]
    plane = np.asarray(data)[n, :, :, c].astype(np.float64)
    h, w = plane.shape
    values = plane.ravel()
    if isinstance(layer, GlobalMaxPooling2D):
        r, q = np.unravel_index(int(np.argmax(values)), (h, w)) if values.size else (0, 0)
        value = float(values.max()) if values.size else float("nan")
        lines = [
            f"the {h}×{w} = {values.size} values of input[{n}, :, :, {c}]: {', '.join(fmt(v) for v in values[:SHOW])}"
            + (f", ... ({values.size - SHOW} more)" if values.size > SHOW else ""),
            f"max = {fmt(value)} at input[{n}, {r}, {q}, {c}] (the first maximum in row-major order)",
        ]
        formula = f"the largest of the {h}×{w} values of channel {c}"
    else:
        value = float(values.sum() / values.size) if values.size else float("nan")
        lines = [f"({_sum_text(values)}) / {values.size} = {fmt(values.sum())} / {values.size} = {fmt(value)}"]
        formula = f"the mean of the {h}×{w} values of channel {c}"
    terms = [
        {"name": f"x[{r}, {q}]", "value": float(plane[r, q]), "source": _src((n, r, q, c))}
        for r in range(h)
        for q in range(w)
    ]
    return StepExplanation(
        name,
        "global_max" if isinstance(layer, GlobalMaxPooling2D) else "global_average",
        at,
        output,
        formula,
        terms,
        lines,
        value,
    )


def _separable(layer: SeparableConv2D, data: np.ndarray, at: tuple[int, ...], output: float, name: str, kind: str):
    n, i, j, f = at
    sample = np.asarray(data)[n].astype(np.float64)
    dk = layer._weights["depthwise_kernel"]
    pw = layer._weights["pointwise_kernel"][0, 0, :, f].astype(np.float64)
    dm = layer.depth_multiplier
    lines, sums, terms = [], [], []
    for k in range(dk.shape[2] * dm):
        rows, cols, pad, window, products = depthwise_conv2d_terms(
            sample, dk, i, j, k, layer.strides, layer.padding, layer.dilation_rate
        )
        c, m = divmod(k, dm)
        d = float(products.sum())
        sums.append(d)
        pairs = " + ".join(
            f"{fmt(x)}×{fmt(wv)}" for x, wv in zip(window[..., 0].ravel(), dk[:, :, c, m].ravel(), strict=True)
        )
        where = f"input channel {c}, kernel {m}; rows {rows[0]}..{rows[-1]}, columns {cols[0]}..{cols[-1]}"
        lines.append(f"depthwise {k} ({where}): {pairs} = {fmt(d)}")
        terms.append(
            {
                "name": f"d{k}",
                "value": d,
                "source": f"depthwise sum over input[{n}, {rows[0]}..{rows[-1]}, {cols[0]}..{cols[-1]}, {c}]",
            }
        )
    bias = float(layer._weights["bias"][f]) if "bias" in layer._weights else 0.0
    pre = float(np.dot(np.asarray(sums), pw) + bias)
    lines.append(
        f"pointwise filter {f}: "
        + " + ".join(f"{fmt(d)}×{fmt(p)}" for d, p in zip(sums, pw, strict=True))
        + f" + {fmt(bias)} = {fmt(pre)}"
    )
    value = pre
    if layer.activation != "linear":
        value = float(act_ops.ACTIVATIONS[layer.activation][0](np.array([pre]))[0])
        lines.append(f"{layer.activation}({fmt(pre)}) = {fmt(value)}")
    return StepExplanation(
        name,
        "separable_conv",
        at,
        output,
        "a depthwise convolution of each input channel with its own kernel, then a 1×1 (pointwise) "
        "convolution over those sums, plus the bias, then the activation",
        terms,
        lines,
        value,
    )


_MERGE_SYMBOL = {Add: " + ", Multiply: " × ", Subtract: " − "}


def _merge(layer: Any, data: list[np.ndarray], at: tuple[int, ...], output: float, name: str, kind: str):
    xs = [float(np.asarray(d)[at]) for d in data]
    shown = [fmt(v) for v in xs]
    terms = [{"name": f"input {k}", "value": v, "source": _src(at, f"input {k}")} for k, v in enumerate(xs)]
    if isinstance(layer, Average):
        value, text, formula = sum(xs) / len(xs), f"({' + '.join(shown)}) / {len(xs)}", "the mean of the inputs"
    elif isinstance(layer, Maximum):
        value, text, formula = max(xs), f"max({', '.join(shown)})", "the largest input"
    else:
        symbol = next(s for t, s in _MERGE_SYMBOL.items() if isinstance(layer, t))
        value = xs[0]
        for v in xs[1:]:
            value = value + v if isinstance(layer, Add) else value * v if isinstance(layer, Multiply) else value - v
        text, formula = symbol.join(shown), f"the inputs at the same position, combined by '{symbol.strip()}'"
    return StepExplanation(name, kind.lower(), at, output, formula, terms, [f"{text} = {fmt(value)}"], float(value))


def _concatenate(layer: Concatenate, data: list[np.ndarray], at: tuple[int, ...], output: float, name: str, kind: str):
    axis = layer.axis % len(at)
    start = 0
    for k, d in enumerate(data):
        size = np.shape(d)[axis]
        if at[axis] < start + size:
            index = (*at[:axis], at[axis] - start, *at[axis + 1 :])
            x = float(np.asarray(d)[index])
            return StepExplanation(
                name,
                "concatenate",
                at,
                output,
                f"a copy: inputs joined along axis {axis}",
                [{"name": "x", "value": x, "source": _src(index, f"input {k}")}],
                [
                    f"position {at[axis]} on axis {axis} is position {at[axis] - start} of input {k} "
                    f"(inputs' sizes there: {', '.join(str(np.shape(v)[axis]) for v in data)})",
                    f"{_src(index, f'input {k}')} = {fmt(x)}",
                ],
                x,
            )
        start += size
    return None


def _rescaling(layer: Rescaling, data: np.ndarray, at: tuple[int, ...], output: float, name: str, kind: str):
    x = float(np.asarray(data)[at])
    scale = float(np.broadcast_to(np.asarray(layer.scale, np.float64), np.shape(data)[1:])[at[1:]])
    offset = float(np.broadcast_to(np.asarray(layer.offset, np.float64), np.shape(data)[1:])[at[1:]])
    value = x * scale + offset
    return StepExplanation(
        name,
        "rescaling",
        at,
        output,
        "x·scale + offset",
        [
            {"name": "x", "value": x, "source": _src(at)},
            {"name": "scale", "value": scale, "source": "scale"},
            {"name": "offset", "value": offset, "source": "offset"},
        ],
        [f"{fmt(x)}×{fmt(scale)} + {fmt(offset)} = {fmt(value)}"],
        value,
    )


def _softmax(data: np.ndarray, at: tuple[int, ...], output: float, name: str, axis: int):
    axis = axis % len(at)
    index = list(at)
    index[axis] = slice(None)
    z = np.asarray(data)[tuple(index)].astype(np.float64)
    top = z.max()
    e = np.exp(z - top)
    k = at[axis]
    value = float(e[k] / e.sum())
    cells = [_src(tuple(at[:axis]) + (m,) + tuple(at[axis + 1 :])) for m in range(len(z))]
    return StepExplanation(
        name,
        "softmax",
        at,
        output,
        f"softmax over axis {axis}: exp(x_{k} − max)/Σ_m exp(x_m − max), over the {len(z)} values at this position",
        [{"name": f"x_{m}", "value": float(v), "source": cells[m]} for m, v in enumerate(z)],
        [
            f"x = {', '.join(fmt(v) for v in z)} ({cells[0]} .. {cells[-1]}); max {fmt(top)}",
            f"exp(x − max) = {', '.join(fmt(v) for v in e)}; sum {fmt(e.sum())}",
            f"exp({fmt(z[k])} − {fmt(top)}) / {fmt(e.sum())} = {fmt(e[k])} / {fmt(e.sum())} = {fmt(value)}",
        ],
        value,
    )


_FORMULAS = {
    "relu": "max(0, x)",
    "sigmoid": "1/(1 + exp(−x))",
    "tanh": "tanh(x)",
    "linear": "x",
    "exponential": "exp(x)",
    "elu": "x if x > 0 else exp(x) − 1",
    "selu": "scale·(x if x > 0 else alpha·(exp(x) − 1))",
    "gelu": "x·Φ(x) (Φ: the normal distribution's CDF)",
    "silu": "x·sigmoid(x)",
    "softplus": "log(1 + exp(x))",
    "softsign": "x/(1 + |x|)",
    "hard_sigmoid": "clip(x/6 + 1/2, 0, 1)",
    "relu6": "min(max(0, x), 6)",
    "leaky_relu": "x if x >= 0 else 0.2·x",
}


def _activation(layer: Any, data: np.ndarray, at: tuple[int, ...], output: float, name: str, kind: str):
    if isinstance(layer, Softmax):
        return _softmax(data, at, output, name, layer.axis)
    if isinstance(layer, Activation) and layer.activation == "softmax":
        return _softmax(data, at, output, name, -1)
    x = float(np.asarray(data)[at])
    one = np.array([x])
    if isinstance(layer, ReLU):
        value = float(act_ops.relu_general(one, layer.negative_slope, layer.max_value, layer.threshold)[0])
        formula = (
            f"relu with negative_slope {layer.negative_slope:g}, max_value {layer.max_value}, threshold "
            f"{layer.threshold:g}: min(x, max_value) if x > threshold else negative_slope·(x − threshold)"
        )
        label = "relu"
    elif isinstance(layer, LeakyReLU):
        value = float(act_ops.leaky_relu(one, layer.negative_slope)[0])
        formula, label = f"x if x >= 0 else {layer.negative_slope:g}·x", "leaky_relu"
    else:
        label = layer.activation
        value = float(act_ops.ACTIVATIONS[label][0](one)[0])
        formula = f"{label}(x) = {_FORMULAS.get(label, label + '(x)')}"
    return StepExplanation(
        name,
        "activation",
        at,
        output,
        formula + " (elementwise)",
        [{"name": "x", "value": x, "source": _src(at)}],
        [f"{label}({fmt(x)}) = {fmt(value)}"],
        value,
    )


def _moved(layer: Any, data: Any, at: tuple[int, ...], output: float, name: str, kind: str) -> Explanation | None:
    """A layer that only moves values (or passes them on): run it on the cells' numbers 1, 2, ...
    of one sample; the number that lands at ``at`` names the input cell (0: padding)."""
    if isinstance(data, list):
        return None
    data = np.asarray(data)
    sample = data[at[0] : at[0] + 1]
    if sample.size >= MAX_CELLS:
        return None
    numbers = np.arange(1, sample.size + 1, dtype=np.float64).reshape(sample.shape)
    try:
        moved = np.asarray(layer(numbers))
    except Exception:  # a layer this trick does not fit (it is not a pure move)
        return None
    source = moved[(0, *at[1:])]
    if source != np.round(source) or not 0 <= source <= sample.size:
        return None
    if source == 0:
        if output != 0:
            return None
        return StepExplanation(
            name,
            "copy",
            at,
            output,
            f"{kind} adds this cell: it is padding",
            [],
            [f"no input cell lands here: the value is the padding, {fmt(0.0)}"],
            0.0,
        )
    index = (at[0], *np.unravel_index(int(source) - 1, sample.shape[1:]))
    x = float(data[index])
    if x != output and not (np.isnan(x) and np.isnan(output)):
        return None  # the layer changes values: not a move
    identity = moved.shape == sample.shape and np.array_equal(moved, numbers)
    what = "passes its input on unchanged at inference" if identity else "moves values without changing them"
    if isinstance(layer, Dropout) or identity:
        what = f"{kind} {what}" + (" (dropout masks only in fit)" if isinstance(layer, Dropout) else "")
    return StepExplanation(
        name,
        "copy",
        at,
        output,
        what,
        [{"name": "x", "value": x, "source": _src(index)}],
        [f"{_src(index)} = {fmt(x)}"],
        x,
    )


_EXPLAINERS: list[tuple[Any, Any]] = [
    (BatchNormalization, _batch_norm),
    (SeparableConv2D, _separable),
    ((GlobalAveragePooling2D, GlobalMaxPooling2D), _global_pool),
    (Concatenate, _concatenate),
    ((Add, Subtract, Multiply, Average, Maximum), _merge),
    (Rescaling, _rescaling),
    ((Activation, ReLU, LeakyReLU, Softmax), _activation),
]
