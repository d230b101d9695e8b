"""Explain any output value: the input window, the weights, the products, the sum, bias
and activation — the arithmetic the lecture writes out by hand
("0·w00 + 1·w01 + 4·w10 + 5·w11 + b").

``explain(layer, x, at=(n, i, j, c))`` returns an explanation object for one output of
a Conv2D, DepthwiseConv2D, MaxPooling2D, AveragePooling2D or Dense layer (or of a layer inside a model);
every other layer family is written as its formula by :mod:`cnnlab.explain_layers`.
Its ``.output`` is the layer's own forward output at that position, bit for bit; the terms
come from the loop references of :mod:`cnnlab.ops` (``conv2d_terms``, ``pool2d_window``: the
arithmetic the tests check the kernels against), cell by cell in float64, so their sum agrees
with ``.output`` to float32 rounding. ``str()`` prints the arithmetic; ``.to_dict()`` gives
JSON-ready data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cnnlab.errors import InvalidArgumentError
from cnnlab.explain_base import Explanation, fmt
from cnnlab.explain_layers import explain_step
from cnnlab.layers import AveragePooling2D, Conv2D, Dense, DepthwiseConv2D, MaxPooling2D
from cnnlab.layers.base import Layer
from cnnlab.layers.merging import Merge
from cnnlab.ops.conv import conv2d_terms
from cnnlab.ops.depthwise import depthwise_conv2d_terms
from cnnlab.ops.pool import first_maximum, pool2d_window


@dataclass(repr=False)
class ConvExplanation(Explanation):
    """One Conv2D output ``y[n, i, j, f]``.

    ``rows``/``cols``: input coordinates of the window (may lie outside the image: padding);
    ``padding``: ``(kh, kw)`` True where the cell is padding (value 0); ``window``,
    ``kernel``, ``products``: ``(kh, kw, C_in)``; ``channel_sums``: ``(C_in,)``.
    """

    rows: list[int] = field(default_factory=list)
    cols: list[int] = field(default_factory=list)
    padding: np.ndarray | None = None
    window: np.ndarray | None = None
    kernel: np.ndarray | None = None
    products: np.ndarray | None = None
    channel_sums: np.ndarray | None = None
    bias: float = 0.0
    pre_activation: float = 0.0
    activation: str = "linear"
    #: softmax only: the pre-activations ``(F,)`` of every output channel at this position, which
    #: softmax normalises over (Keras applies it over the last axis, the channels)
    channel_logits: np.ndarray | None = None

    def __str__(self) -> str:
        n, i, j, f = self.at
        where = f"window rows {self.rows[0]}..{self.rows[-1]}, columns {self.cols[0]}..{self.cols[-1]}"
        if self.padding.any():
            where += " (padding cells count as 0)"
        lines = [f"{self.layer} output[{n}, {i}, {j}, {f}]: {where}"]
        channels = self.window.shape[2]
        if channels == 1:
            lines.append("  " + self.arithmetic())
        else:
            for c in range(channels):
                lines.append(f"  channel {c}: {self._terms(c)} = {fmt(self.channel_sums[c])}")
            partials = " + ".join(fmt(v) for v in self.channel_sums)
            lines.append(f"  total: {partials} + {fmt(self.bias)} = {fmt(self.pre_activation)}")
        if self.activation == "softmax":
            lines += self._softmax_lines()
        elif self.activation != "linear":
            lines.append(f"  {self.activation}({fmt(self.pre_activation)}) = {fmt(self.output)}")
        return "\n".join(lines)

    def _softmax_lines(self) -> list[str]:
        """Softmax is not elementwise: it normalises over the channels of the output position."""
        n, i, j, f = self.at
        logits = self.channel_logits
        exps = " + ".join(f"exp({fmt(z)})" for z in logits)
        with np.errstate(over="ignore"):
            shift = 0.0 if np.isfinite(np.exp(logits).sum()) else float(np.max(logits))  # as softmax does
        ratio = f"{fmt(np.exp(self.pre_activation - shift))} / {fmt(np.exp(logits - shift).sum())}"
        return [
            f"  softmax over the {len(logits)} channels of output[{n}, {i}, {j}, :] "
            f"(pre-activations {', '.join(fmt(z) for z in logits)}):",
            f"  exp({fmt(self.pre_activation)}) / ({exps}) = {ratio} = {fmt(self.output)}"
            + (f" (every exp divided by exp({fmt(shift)}), the largest, to stay finite)" if shift else ""),
        ]

    def _terms(self, c: int) -> str:
        pairs = zip(self.window[..., c].ravel(), self.kernel[..., c].ravel(), strict=True)
        return " + ".join(f"{fmt(x)}×{fmt(w)}" for x, w in pairs)

    def arithmetic(self) -> str:
        """The whole sum on one line, the lecture's way: ``0×w00 + 1×w01 + ... + b = y``."""
        terms = " + ".join(self._terms(c) for c in range(self.window.shape[2]))
        return f"{terms} + {fmt(self.bias)} = {fmt(self.pre_activation)}"


@dataclass(repr=False)
class PoolExplanation(Explanation):
    """One pooling output: the window, which cell won (max) or the divisor (average)."""

    rows: list[int] = field(default_factory=list)
    cols: list[int] = field(default_factory=list)
    padding: np.ndarray | None = None
    window: np.ndarray | None = None
    winner: tuple[int, int] | None = None
    divisor: int = 0

    def __str__(self) -> str:
        n, i, j, c = self.at
        head = (
            f"{self.layer} output[{n}, {i}, {j}, {c}]: window rows {self.rows[0]}..{self.rows[-1]}, "
            f"columns {self.cols[0]}..{self.cols[-1]}"
        )
        cells = ", ".join(fmt(v) for v in self.window.ravel())
        if self.kind == "max":
            r, q = self.winner
            why = "first NaN: NaN propagates" if np.isnan(self.output) else "first maximum in row-major order"
            return (
                f"{head}\n  max({cells}) = {fmt(self.output)}\n"
                f"  winner: input[{n}, {self.rows[r]}, {self.cols[q]}, {c}] ({why})"
                + ("\n  padding cells count as -inf" if self.padding.any() else "")
            )
        real = ", ".join(fmt(v) for v, pad in zip(self.window.ravel(), self.padding.ravel(), strict=True) if not pad)
        return f"{head}\n  ({real.replace(', ', ' + ')}) / {self.divisor} = {fmt(self.output)}" + (
            "\n  padding cells are not counted" if self.padding.any() else ""
        )


@dataclass(repr=False)
class DenseExplanation(Explanation):
    """One Dense output ``y[n, k]``: the largest contributions ``x_m * w_mk`` and the rest."""

    inputs: int = 0
    top: list[dict[str, float]] = field(default_factory=list)
    rest: float = 0.0
    rest_count: int = 0
    bias: float = 0.0
    pre_activation: float = 0.0
    activation: str = "linear"
    output_units: int = 0

    def __str__(self) -> str:
        terms = [f"x[{t['index']}]×w = {fmt(t['x'])}×{fmt(t['w'])} = {fmt(t['product'])}" for t in self.top]
        lines = [f"{self.layer} output{list(self.at)}: {self.inputs} inputs, largest contributions:"]
        lines += [f"  {t}" for t in terms]
        if self.rest_count:
            lines.append(f"  the other {self.rest_count} contributions sum to {fmt(self.rest)}")
        lines.append(f"  sum + bias {fmt(self.bias)} = {fmt(self.pre_activation)}")
        if self.activation == "softmax":
            lines.append(f"  softmax over all {self.output_units} units -> {fmt(self.output)}")
        elif self.activation != "linear":
            lines.append(f"  {self.activation}({fmt(self.pre_activation)}) = {fmt(self.output)}")
        else:
            lines.append(f"  output = {fmt(self.output)}")
        return "\n".join(lines)


# ----------------------------------------------------------------- the inline view
def dense_group_kernel(kernel: np.ndarray, groups: int) -> np.ndarray:
    """A grouped kernel ``(kh, kw, C/groups, F)`` as the equivalent full kernel ``(kh, kw, C, F)``,
    zero where a filter does not see a channel, so the page's arithmetic stays one sum per filter.

    >>> dense_group_kernel(np.ones((1, 1, 1, 2)), 2)[0, 0].tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """
    from cnnlab.ops.conv import group_slices

    kh, kw, c_group, filters = kernel.shape
    full = np.zeros((kh, kw, c_group * groups, filters), dtype=kernel.dtype)
    for channels, outputs in group_slices(c_group, filters, groups):
        full[:, :, channels, outputs] = kernel[..., outputs]
    return full


def window_view(layer: Layer, x: np.ndarray, out: np.ndarray) -> dict[str, Any]:
    """What the interactive view of a Conv2D or pooling layer needs, for one sample:
    ``x: (H, W, C)`` its input, ``out: (Ho, Wo, F)`` its output, the window geometry
    (``size``, ``strides``, ``dilation``, ``pads`` = top, bottom, left, right) and, for Conv2D,
    copies of ``kernel: (kh, kw, C, F)`` and ``bias: (F,)`` (later training does not change a
    view already made)."""
    from cnnlab.ops.shapes import padding_amounts

    if isinstance(layer, Conv2D):
        kind, size, dilation = "conv", layer.kernel_size, layer.dilation_rate
        kernel, bias = layer.kernel.copy(), (layer.bias.copy() if layer.use_bias else None)
        if layer.groups != 1:
            kernel = dense_group_kernel(kernel, layer.groups)
    elif isinstance(layer, (MaxPooling2D, AveragePooling2D)):
        kind = "max" if isinstance(layer, MaxPooling2D) else "average"
        size, dilation, kernel, bias = layer.pool_size, (1, 1), None, None
    else:
        raise InvalidArgumentError(
            f"window_view: expected a Conv2D or pooling layer, received {type(layer).__name__} {layer.name!r}."
        )
    (top, bottom), (left, right) = padding_amounts(x.shape[:2], size, layer.strides, layer.padding, dilation)
    return {
        "kind": kind,
        "title": f"{layer.name} ({type(layer).__name__})",
        "x": x,
        "out": out,
        "kernel": kernel,
        "bias": bias,
        "size": list(size),
        "strides": list(layer.strides),
        "dilation": list(dilation),
        "pads": [top, bottom, left, right],
        "activation": getattr(layer, "activation", None),
    }


def receptive_fields(model: Any) -> dict[str, tuple[tuple[int, int, int], tuple[int, int, int]] | None]:
    """For each layer of a built model with spatial output, the input pixels an output cell depends on.

    ``{layer name: ((a, b, e) for rows, (a, b, e) for columns)}``: output cell ``(i, j)`` of that
    layer reads input rows ``a·i + b .. a·i + b + e - 1`` (and columns likewise; rows outside the
    image are padding). Composed layer by layer: a window op of size ``k``, stride ``s``,
    dilation ``d`` and top padding ``p`` maps ``(a, b, e)`` to ``(a·s, b - a·p, e + a·(k-1)·d)``;
    zero padding and cropping shift ``b``; layers that keep the shape (activations, batch
    normalization, dropout) change nothing; depthwise and separable convolutions are windows like
    Conv2D (the 1x1 pointwise step adds nothing). A merge of several tensors (``Add``, ``Concatenate``
    ... in a graph model) reads the union of their fields: the smallest box holding all of them,
    when they step alike (same ``a``). After any other layer (upsampling, reshape, global
    pooling ...) the field is ``None``. A cell that is all padding (the border of
    ``ZeroPadding2D``) still gets the box its position implies, though it reads no pixel.
    Nested models are looked into; a layer called more than once (shared) has no single field
    (``None``). For a model with several inputs the fields are in each input's pixels.

    >>> import cnnlab as cl
    >>> net = cl.Sequential([cl.layers.Input((28, 28, 1)), cl.layers.Conv2D(2, 2), cl.layers.MaxPool2D(),
    ...                      cl.layers.Conv2D(2, 2), cl.layers.MaxPool2D(), cl.layers.Flatten()], name="rf")
    >>> [field[0] for field in receptive_fields(net).values()]  # the last cell (i, j) reads rows 4i .. 4i+6
    [(1, 0, 2), (2, 0, 3), (2, 0, 5), (4, 0, 7)]
    """
    from cnnlab.engine.graph import expand
    from cnnlab.layers import Cropping2D, Permute, Reshape, SeparableConv2D, ZeroPadding2D
    from cnnlab.ops.shapes import padding_amounts

    graph = expand(model)
    shape_of: dict[int, tuple[Any, ...]] = {}
    field_of: dict[int, Any] = {}
    in_shapes = [tuple(model.input_shape)] if len(graph.inputs) == 1 else [tuple(t.shape) for t in model.inputs]
    for slot, shape in zip(graph.inputs, in_shapes, strict=True):
        shape_of[slot], field_of[slot] = shape, ((1, 0, 1), (1, 0, 1))
    calls: dict[int, int] = {}
    for node in graph.nodes:
        calls[id(node.layer)] = calls.get(id(node.layer), 0) + 1
    fields: dict[str, Any] = {}
    for node in graph.nodes:
        layer = node.layer
        shapes = [shape_of[s] for s in node.inputs]
        out_shape = tuple(layer.compute_output_shape(shapes if node.list_call else shapes[0]))
        shape_of[node.output] = out_shape
        if len(out_shape) != 4 or any(len(sh) != 4 for sh in shapes):
            field_of[node.output] = None  # no spatial axes here (Flatten, Dense, global pooling)
            continue
        ins = [field_of[s] for s in node.inputs]
        field: Any = None
        if all(f is not None for f in ins):
            rows, cols = (ins[0][0], ins[0][1]) if len(ins) == 1 else _union(ins)
            shape = shapes[0]
            if rows is None:
                field = None
            elif isinstance(layer, (Conv2D, DepthwiseConv2D, SeparableConv2D, MaxPooling2D, AveragePooling2D)):
                convolution = not isinstance(layer, (MaxPooling2D, AveragePooling2D))
                size = layer.kernel_size if convolution else layer.pool_size
                dilation = layer.dilation_rate if convolution else (1, 1)
                (top, _), (left, _) = padding_amounts(shape[1:3], size, layer.strides, layer.padding, dilation)
                field = (
                    _window_field(rows, size[0], layer.strides[0], dilation[0], top),
                    _window_field(cols, size[1], layer.strides[1], dilation[1], left),
                )
            elif isinstance(layer, ZeroPadding2D):
                field = (
                    (rows[0], rows[1] - rows[0] * layer.padding[0][0], rows[2]),
                    (cols[0], cols[1] - cols[0] * layer.padding[1][0], cols[2]),
                )
            elif isinstance(layer, Cropping2D):
                field = (
                    (rows[0], rows[1] + rows[0] * layer.cropping[0][0], rows[2]),
                    (cols[0], cols[1] + cols[0] * layer.cropping[1][0], cols[2]),
                )
            elif out_shape[1:3] == shape[1:3] and not isinstance(layer, (Reshape, Permute)):
                field = (rows, cols)
        field_of[node.output] = field
        fields[layer.name] = field if calls[id(layer)] == 1 else None
    return fields


def _union(fields: list[Any]) -> tuple[Any, Any]:
    """The smallest field holding every field of a merge's inputs (None when they step differently)."""
    out = []
    for axis in (0, 1):
        parts = [f[axis] for f in fields]
        if len({a for a, _, _ in parts}) != 1:
            return None, None
        start = min(b for _, b, _ in parts)
        stop = max(b + e for _, b, e in parts)
        out.append((parts[0][0], start, stop - start))
    return out[0], out[1]


def _window_field(field: tuple[int, int, int], k: int, s: int, d: int, pad: int) -> tuple[int, int, int]:
    a, b, e = field
    return (a * s, b - a * pad, e + a * (k - 1) * d)


# ----------------------------------------------------------------- entry points
def _resolve(layer: Any, x: Any, name_or_index: str | int | None) -> tuple[Layer, np.ndarray]:
    """The layer to explain and *its* input (running the earlier layers of a model)."""
    from cnnlab.models import Sequential

    if isinstance(layer, Sequential):
        model = layer
        if name_or_index is None:
            raise InvalidArgumentError(
                "explain: with a model, name the layer: explain(model, x, at=..., layer='conv2d' or 0)."
            )
        if isinstance(name_or_index, bool) or not isinstance(name_or_index, (str, int, np.integer)):
            raise InvalidArgumentError(
                f"explain: expected layer_name to be a layer's name (e.g. 'conv2d') or its index (e.g. 0), received "
                f"{name_or_index!r}{' (a layer object: pass its .name)' if isinstance(name_or_index, Layer) else ''}."
            )
        target = (
            model.get_layer(index=int(name_or_index))
            if isinstance(name_or_index, (int, np.integer))
            else model.get_layer(name_or_index)
        )
        if getattr(model, "is_graph_model", False):  # a functional model: run the graph up to the layer
            if getattr(target, "declares_input", False):
                raise InvalidArgumentError(f'explain: layer "{target.name}" is an input; it computes nothing.')
            data = model.layer_input(target, x)
            if isinstance(data, list):  # a merge: its inputs, as the graph gave them
                return target, data
            return target, target.check_input(data)
        # the model's own input checks (rank, dtype, the sample shape it was built for), as predict
        data = model._prepare_input(x)
        for candidate in model.layers:
            if candidate is target:
                return target, target.check_input(data)
            data = candidate(data)
    if not isinstance(layer, Layer):
        raise InvalidArgumentError(f"explain: expected a layer or a Sequential model, received {type(layer).__name__}.")
    if isinstance(layer, Merge):  # a merge layer on its own: x is the list of its inputs
        if not isinstance(x, (list, tuple)):
            raise InvalidArgumentError(
                f'explain: layer "{layer.name}" ({type(layer).__name__}) merges several tensors; pass x as the list of '
                f"its inputs, e.g. [a, b]; received {type(x).__name__}."
            )
        data = [layer.check_input(np.asarray(v)) for v in x]
        if not layer.built:
            layer.build([(None, *d.shape[1:]) for d in data])
        return layer, data
    data = layer.check_input(np.asarray(x))
    if not layer.built:
        layer.build((None, *data.shape[1:]))
    layer.check_built_shape(data)
    return layer, data


def _check_at(at: Sequence[int], shape: tuple[int, ...], what: str) -> tuple[int, ...]:
    whole = isinstance(at, (tuple, list)) and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in at
    )
    if not whole:
        raise InvalidArgumentError(
            f"explain: expected at to be a tuple of {len(shape)} whole-number indices into the {what} output of "
            f"shape {shape}, e.g. at={tuple(0 for _ in shape)}; received {at!r}."
        )
    at = tuple(int(v) for v in at)
    if len(at) != len(shape) or any(not 0 <= a < s for a, s in zip(at, shape, strict=True)):
        raise InvalidArgumentError(
            f"explain: at={at} is outside the {what} output of shape {shape}; expected {len(shape)} indices "
            f"with 0 <= at[k] < shape[k]."
        )
    return at


def explain(layer: Any, x: Any, at: Sequence[int], *, layer_name: str | int | None = None) -> Explanation:
    """Explain output ``at`` of ``layer`` applied to ``x``.

    ``layer`` may be a model, then ``layer_name`` (a name or an index) picks the layer and ``x``
    is the model's input. ``at`` is ``(n, i, j, c)`` for Conv2D and pooling, ``(n, k)`` for Dense.

    >>> from cnnlab.layers import Conv2D
    >>> conv = Conv2D(1, (2, 2), name="doc_conv")
    >>> x = np.arange(16, dtype="float32").reshape(1, 4, 4, 1)
    >>> _ = conv(x); conv.set_weights([np.array([[1, 2], [3, 4]]).reshape(2, 2, 1, 1), np.array([1.0])])
    >>> print(explain(conv, x, at=(0, 0, 0, 0)).arithmetic())
    0×1 + 1×2 + 4×3 + 5×4 + 1 = 35

    In a graph model a layer called more than once (shared between branches) is explained at its
    first call; the explanation's ``layer`` says so.
    """
    target, data = _resolve(layer, x, layer_name)
    expl = _explain_layer(target, data, at)
    calls = sum(node.layer is target for node in getattr(layer, "_nodes", ()))
    if calls > 1:
        expl.layer = f"{expl.layer} (its first of {calls} calls in the model)"
    return expl


def _explain_layer(target: Layer, data: Any, at: Sequence[int]) -> Explanation:
    full = target(data)
    at = _check_at(at, full.shape, f'{type(target).__name__} "{target.name}"')
    output = full[at]
    if not isinstance(target, (Conv2D, DepthwiseConv2D, MaxPooling2D, AveragePooling2D, Dense)):
        step = explain_step(target, data, at, full)
        if step is not None:
            return step
        raise InvalidArgumentError(
            f'explain: layer "{target.name}" is a {type(target).__name__}; explanations exist for Conv2D, '
            "DepthwiseConv2D, SeparableConv2D, pooling, Dense, BatchNormalization, the merges, Rescaling, the "
            "activation layers and the layers that only move values (Flatten, Reshape, padding, cropping, ...)."
        )
    sample = data[at[0]].astype(np.float64)
    if isinstance(target, DepthwiseConv2D):
        return _explain_depthwise(target, sample, at, output)
    if isinstance(target, (Conv2D, MaxPooling2D, AveragePooling2D)):
        if isinstance(target, Conv2D):
            expl: Explanation = _explain_conv(target, data.shape, sample, at, output)
        else:
            expl = _explain_pool(target, data.shape, data[at[0]], at, output)
        # arrays only (cheap), turned into the interactive view when a notebook displays it; copies,
        # so an explanation of one sample does not keep a whole batch's activations alive
        expl._view = window_view(target, data[at[0]].copy(), full[at[0]].copy())
        return expl
    return _explain_dense(target, data, at, output, full.shape[-1])


def _explain_conv(layer: Conv2D, x_shape, sample: np.ndarray, at, output) -> ConvExplanation:
    n, i, j, f = at

    def terms_of(k: int) -> tuple:
        return conv2d_terms(
            sample, layer.kernel, i, j, k, layer.strides, layer.padding, layer.dilation_rate, layer.groups
        )

    return _conv_explanation(layer, layer.name, at, output, terms_of, layer.kernel[:, :, :, f], f)


def _explain_depthwise(layer: DepthwiseConv2D, sample: np.ndarray, at, output) -> ConvExplanation:
    """Output channel ``k = c*depth_multiplier + m``: the window of input channel ``c`` alone times
    kernel ``m`` of that channel (shown as a one-channel convolution)."""
    n, i, j, k = at

    def terms_of(q: int) -> tuple:
        return depthwise_conv2d_terms(sample, layer.kernel, i, j, q, layer.strides, layer.padding, layer.dilation_rate)

    c, m = divmod(k, layer.depth_multiplier)
    name = f"{layer.name} (input channel {c}, kernel {m})"
    return _conv_explanation(layer, name, at, output, terms_of, layer.kernel[:, :, c : c + 1, m], k)


def _conv_explanation(layer: Any, name: str, at, output, terms_of: Any, kernel: np.ndarray, f: int) -> ConvExplanation:
    """One output of a convolution from its loop-reference terms (``terms_of(channel)``): per-channel
    sums, bias, activation; for softmax the pre-activations of every output channel at the position."""

    def pre_activation(k: int) -> float:
        products = terms_of(k)[4]
        return float(products.sum() + (float(layer.bias[k]) if layer.use_bias else 0.0))

    rows, cols, pad, window, products = terms_of(f)
    channel_sums = products.sum(axis=(0, 1))
    bias = float(layer.bias[f]) if layer.use_bias else 0.0
    pre = float(channel_sums.sum() + bias)
    logits = None
    if layer.activation == "softmax":
        # Conv2D: `filters`; DepthwiseConv2D: input channels × depth_multiplier
        channels = getattr(layer, "filters", None) or layer.kernel.shape[2] * layer.depth_multiplier
        logits = np.array([pre if k == f else pre_activation(k) for k in range(channels)])
    return ConvExplanation(
        name,
        "conv",
        at,
        float(output),
        rows,
        cols,
        pad,
        window,
        kernel.astype(np.float64),
        products,
        channel_sums,
        bias,
        pre,
        layer.activation,
        logits,
    )


def _explain_pool(layer, x_shape, sample: np.ndarray, at, output) -> PoolExplanation:
    n, i, j, c = at
    rows, cols, pad, window = pool2d_window(sample, i, j, c, layer.pool_size, layer.strides, layer.padding)
    if isinstance(layer, MaxPooling2D):
        return PoolExplanation(
            layer.name,
            "max",
            at,
            output.item(),
            rows,
            cols,
            pad,
            window,
            winner=first_maximum(window),
        )
    window = np.where(pad, 0.0, window)  # padding cells are not counted: show them as 0
    return PoolExplanation(layer.name, "average", at, float(output), rows, cols, pad, window, divisor=int((~pad).sum()))


def _explain_dense(layer: Dense, data: np.ndarray, at, output, units: int, top: int = 5) -> DenseExplanation:
    k = at[-1]
    x = data[at[:-1]].astype(np.float64)
    w = layer.kernel[:, k].astype(np.float64)
    products = x * w
    order = np.argsort(-np.abs(products), kind="stable")
    chosen = order[:top]
    bias = float(layer.bias[k]) if layer.use_bias else 0.0
    rest = float(products[order[top:]].sum())
    pre = float(products.sum() + bias)
    return DenseExplanation(
        layer.name,
        "dense",
        at,
        float(output),
        len(x),
        [{"index": int(m), "x": float(x[m]), "w": float(w[m]), "product": float(products[m])} for m in chosen],
        rest,
        max(len(x) - top, 0),
        bias,
        pre,
        layer.activation,
        output_units=units,
    )


def trace(model: Any, image: Any) -> list[tuple[str, np.ndarray]]:
    """Every layer's output for one image (a sample without the batch axis, or a batch of one).

    Returns ``[(layer name, output without the batch axis), ...]``, starting with ``("input", image)``.
    For a functional model: one entry per layer call in topological order (a shared layer's later
    calls are named ``name[k]``), after one ``("input", ...)`` entry per input (named after the
    input layers when there are several; ``image`` is then a list, one image per input).
    """
    if getattr(model, "is_graph_model", False):
        return _trace_graph(model, image)
    data = np.asarray(image)
    if model.built and data.shape == tuple(model.input_shape[1:]):
        data = data[None]
    data = model.check_input(data)
    if len(data) != 1:
        raise InvalidArgumentError(
            f"trace: expected one image, received a batch of {len(data)}; pass x[k] for one of them."
        )
    out = [("input", data[0])]
    for layer in model.layers:
        data = layer(data)
        out.append((layer.name, data[0]))
    return out


def _trace_graph(model: Any, image: Any) -> list[tuple[str, np.ndarray]]:
    several = len(model.inputs) > 1
    images = list(image) if several else [image]
    batch = []
    for tensor, item in zip(model.inputs, images, strict=True):
        data = np.asarray(item)
        batch.append(data[None] if data.shape == tuple(tensor.shape[1:]) else data)
    if any(len(b) != 1 for b in batch):
        raise InvalidArgumentError(
            f"trace: expected one image, received a batch of {len(batch[0])}; pass x[k] for one of them."
        )
    group = model._prepare_input(batch if several else batch[0])
    out = [
        ("input" if not several else tensor.node.layer.name, part[0])
        for tensor, part in zip(model.inputs, group.parts, strict=True)
    ]
    calls: dict[int, int] = {}
    for node, _, value in model.run_nodes(group):
        k = calls.get(id(node.layer), 0)
        calls[id(node.layer)] = k + 1
        out.append((node.layer.name if k == 0 else f"{node.layer.name}[{k}]", value[0]))
    return out
