"""How did this weight change? Backpropagation with numbers for one weight of the user's model.

``cl.explain_gradient(model, x, y, layer_name=..., weight="kernel", at=(di, dj, c, f))`` runs the
training step's own forward and backward (``Engine.gradients`` on the reference kernels) on the
batch ``(x, y)`` and shows, for that one weight ``w``::

    dL/dw = sum over the positions p where w was used of  dL/dz[p] * input[p]

(``z`` the layer's output before its activation; for a bias the input is 1), their sum next to
the gradient the step uses (equal up to the order of the sum: the step sums with a matrix
product), the loss's own gradient ``(softmax(z) - one_hot(y)) / N`` when the layer is the output
layer, and the optimizer's update of ``w``: Adam's moments before and after, the bias correction
and the step, ending in the value ``model.train_on_batch(x, y)`` writes (on the reference kernels,
bit for bit: the update runs on a copy of the optimizer and of the weights).

Nothing of the model changes: BatchNormalization's moving statistics and the random generator
(Dropout's masks) are restored afterwards, so ``explain_gradient(...)`` followed by
``train_on_batch(x, y)`` gives exactly the shown new value.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cnnlab import config
from cnnlab import random as cl_random
from cnnlab.engine.graph import expand
from cnnlab.errors import InvalidArgumentError


@dataclass
class GradientTerms:
    """The products whose sum is one weight's gradient: one row per position where it was used."""

    #: positions ``(M, k)``: ``(n, i, j)`` for a convolution, ``(row,)`` for Dense
    positions: np.ndarray
    #: ``dL/dz`` at each position (the layer's output before its activation)
    upstream: np.ndarray
    #: the input value the weight multiplied there (1 for a bias)
    inputs: np.ndarray
    #: where each input value came from (``x[n, r, c, ch]``, or ``"padding"``), for the text
    sources: list[str]
    #: when each upstream value is itself a sum (a SeparableConv2D's depthwise kernel: over the
    #: filters), its number of terms and the sum of their absolute values, for the rounding bound
    upstream_terms: int = 1
    upstream_magnitude: np.ndarray | None = None

    @property
    def products(self) -> np.ndarray:
        return self.upstream * self.inputs

    @property
    def total(self) -> float:
        """The sum of the products, in the layer's float type (``np.sum``: pairwise order)."""
        return self.products.sum(dtype=self.products.dtype)


@dataclass
class WeightUpdate:
    """The optimizer's update of one weight; ``state_before``/``state_after``: its slots there."""

    optimizer: str
    step: int
    learning_rate: float
    gradient: float
    old_value: float
    new_value: float
    state_before: dict[str, float]
    state_after: dict[str, float]
    lines: list[str]


@dataclass
class WeightGradient:
    """Result of :func:`explain_gradient`."""

    layer_name: str
    weight: str
    at: tuple[int, ...]
    batch_size: int
    loss: float
    #: the gradient of the batch's mean loss (the backward pass's value, as the step uses it)
    gradient: float
    terms: GradientTerms
    #: |sum of terms - gradient| may be at most this (two float sums of the same products)
    rounding_bound: float
    #: the regularizer's gradient added to ``gradient`` by the step (0 without one)
    regularization: float
    update: WeightUpdate | None
    loss_gradient: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def new_value(self) -> float | None:
        return None if self.update is None else self.update.new_value

    @property
    def old_value(self) -> float:
        return self.update.old_value if self.update is not None else float("nan")

    def text(self, max_lines: int | None = 12) -> str:
        name = f"{self.layer_name}.{self.weight}[{', '.join(map(str, self.at))}]"
        t = self.terms
        lines = [
            f"Gradient of the batch's mean loss (N = {self.batch_size}, loss {self.loss:.6g}) with respect to {name}",
            f"  dL/dw = sum over the {len(t.upstream)} positions where this weight was used of dL/dz x input",
        ]
        if self.loss_gradient is not None:
            lines.append(f"  {self.loss_gradient['formula']}")
        shown = 0
        nonzero = np.flatnonzero(t.products)
        for k in nonzero:
            if max_lines is not None and shown >= max_lines:
                break
            where = ", ".join(map(str, t.positions[k]))
            lines.append(
                f"  at ({where}): dL/dz = {t.upstream[k]:.6g} x {t.sources[k]} = {t.inputs[k]:.6g} "
                f"-> {t.products[k]:.6g}"
            )
            shown += 1
        rest = len(nonzero) - shown
        zeros = len(t.upstream) - len(nonzero)
        if rest:
            lines.append(f"  ... {rest} more non-zero products (.terms has all of them)")
        if zeros:
            lines.append(f"  ({zeros} products are 0: dL/dz or the input was 0 there, e.g. a ReLU that was off)")
        lines.append(f"  sum = {t.total:.9g}")
        lines.append(
            f"  gradient used by the training step = {self.gradient:.9g} (the step sums with a matrix product; "
            f"the two sums differ by rounding only, at most {self.rounding_bound:.2g})"
        )
        if self.regularization:
            lines.append(
                f"  + regularizer gradient {self.regularization:.9g} = {self.gradient + self.regularization:.9g}"
            )
        if self.update is not None:
            u = self.update
            lines.append(f"{u.optimizer} update, step t = {u.step}, learning_rate = {u.learning_rate:.6g}:")
            lines += [f"  {line}" for line in u.lines]
        lines += [f"Note: {n}" for n in self.notes]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text()

    def _repr_html_(self) -> str:
        """For Jupyter: the lines of :meth:`text`, as they print."""
        import html

        return f'<pre class="cnnlab-gradient">{html.escape(self.text())}</pre>'

    def __repr__(self) -> str:
        return (
            f"<WeightGradient {self.layer_name}.{self.weight}{list(self.at)}: gradient {self.gradient:.6g}, "
            f"{len(self.terms.upstream)} terms, new value {self.new_value}>"
        )

    def to_dict(self) -> dict[str, Any]:
        t = self.terms
        out: dict[str, Any] = {
            "layer_name": self.layer_name,
            "weight": self.weight,
            "at": list(self.at),
            "batch_size": self.batch_size,
            "loss": self.loss,
            "gradient": self.gradient,
            "regularization": self.regularization,
            "sum_of_terms": float(t.total),
            "rounding_bound": self.rounding_bound,
            "terms": {
                "positions": t.positions.tolist(),
                "upstream": t.upstream.astype(float).tolist(),
                "inputs": t.inputs.astype(float).tolist(),
                "products": t.products.astype(float).tolist(),
                "sources": list(t.sources),
            },
            "notes": list(self.notes),
        }
        if self.loss_gradient is not None:
            out["loss_gradient"] = {
                k: (v.astype(float).tolist() if isinstance(v, np.ndarray) else v) for k, v in self.loss_gradient.items()
            }
        if self.update is not None:
            u = self.update
            out["update"] = {
                "optimizer": u.optimizer,
                "step": u.step,
                "learning_rate": u.learning_rate,
                "gradient": u.gradient,
                "old_value": u.old_value,
                "new_value": u.new_value,
                "state_before": u.state_before,
                "state_after": u.state_after,
                "lines": u.lines,
            }
        return out


# ----------------------------------------------------------------------------- observing the step
class _Observer:
    """Keeps what the layer's backward receives (``dL/dy`` and the layer's cache) during the
    engine's own backward pass, then hands the call on unchanged."""

    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self.dz: np.ndarray | None = None
        self.cache: Any = None
        self.logits: np.ndarray | None = None

    def __call__(self, dy: np.ndarray, need_dx: bool = True, from_logits: bool = False) -> Any:
        layer = self.layer
        self.cache = layer._cache
        if from_logits:
            self.logits = np.array(layer.last_logits, copy=True)
        if from_logits or getattr(layer, "activation", "linear") == "linear":
            self.dz = np.array(dy, copy=True)
        else:  # the same function the layer applies next, on a copy (relu's backward works in place)
            self.dz = layer.activation_backward(np.array(dy, copy=True), False)
        original = type(layer).backward
        if from_logits:
            return original(layer, dy, need_dx=need_dx, from_logits=True)
        return original(layer, dy, need_dx=need_dx)


def _leaf(model: Any, layer_name: str) -> tuple[Any, bool]:
    for layer, trainable in model._leaves():
        if layer.name == layer_name:
            return layer, trainable
    names = ", ".join(layer.name for layer, _ in model._leaves())
    raise InvalidArgumentError(f"explain_gradient: the model has no layer named {layer_name!r}. Layers: {names}.")


def _check_at(at: Any, shape: tuple[int, ...], what: str) -> tuple[int, ...]:
    index = (at,) if isinstance(at, (int, np.integer)) else tuple(at)
    if len(index) != len(shape) or not all(
        isinstance(i, (int, np.integer)) and not isinstance(i, bool) and 0 <= i < n
        for i, n in zip(index, shape, strict=True)
    ):
        raise InvalidArgumentError(
            f"explain_gradient: expected at to index {what} of shape {shape} (one whole number per axis, in range), "
            f"received {at!r}."
        )
    return tuple(int(i) for i in index)


def _terms(layer: Any, weight: str, at: tuple[int, ...], dz: np.ndarray, cache: Any) -> GradientTerms:
    """The products behind ``grads[weight][at]`` from ``dL/dz`` and the forward cache."""
    kind = type(layer).__name__
    if kind == "Conv2D":
        cols, x_shape = cache  # cols: (N, Ho, Wo, kh, kw, C), the padded input windows
        n, ho, wo = cols.shape[:3]
        grid = np.indices((n, ho, wo)).reshape(3, -1).T
        f = at[-1]
        upstream = dz[..., f].reshape(-1)
        if weight == "bias":
            return GradientTerms(grid, upstream, np.ones_like(upstream), ["1 (bias)"] * len(upstream))
        di, dj, c = at[:3]
        inputs = cols[:, :, :, di, dj, c].reshape(-1)
        sh, sw = layer.strides
        dh, dw = layer.dilation_rate
        from cnnlab.ops.shapes import padding_amounts

        (top, _), (left, _) = padding_amounts(
            (x_shape[1], x_shape[2]), layer.kernel_size, layer.strides, layer.padding, layer.dilation_rate
        )
        sources = []
        for s, i, j in grid:
            r, q = i * sh + di * dh - top, j * sw + dj * dw - left
            inside = 0 <= r < x_shape[1] and 0 <= q < x_shape[2]
            sources.append(f"x[{s}, {r}, {q}, {c}]" if inside else "padding")
        return GradientTerms(grid, upstream, inputs, sources)
    if kind == "Dense":
        x2 = cache  # (rows, in)
        rows = np.arange(x2.shape[0]).reshape(-1, 1)
        j = at[-1]
        upstream = dz.reshape(-1, layer.units)[:, j]
        if weight == "bias":
            return GradientTerms(rows, upstream, np.ones_like(upstream), ["1 (bias)"] * len(upstream))
        i = at[0]
        return GradientTerms(rows, upstream, x2[:, i].copy(), [f"input[{r}, {i}]" for r in range(x2.shape[0])])
    if kind in ("DepthwiseConv2D", "SeparableConv2D"):
        return _depthwise_terms(layer, kind, weight, at, dz, cache)
    if kind == "BatchNormalization":
        x_hat = cache[0]  # (x - batch mean) / sqrt(batch variance + epsilon), as the step normalised
        c = at[0]
        axis = next(i for i in range(x_hat.ndim) if i not in cache[2])
        grid = np.indices(tuple(n for i, n in enumerate(x_hat.shape) if i != axis)).reshape(x_hat.ndim - 1, -1).T
        upstream = np.take(dz, c, axis=axis).reshape(-1)
        if weight == "beta":
            return GradientTerms(grid, upstream, np.ones_like(upstream), ["1 (beta)"] * len(upstream))
        values = np.take(x_hat, c, axis=axis).reshape(-1)
        where = ["x̂[" + ", ".join(map(str, (*pos[:axis], c, *pos[axis:]))) + "]" for pos in grid]
        return GradientTerms(grid, upstream, values, where)
    raise InvalidArgumentError(
        f'explain_gradient: layer "{layer.name}" is a {kind}; the per-position terms are written for the weights '
        "of Conv2D, Dense, DepthwiseConv2D, SeparableConv2D and BatchNormalization."
    )


def _depthwise_terms(layer: Any, kind: str, weight: str, at: tuple[int, ...], dz: np.ndarray, cache: Any):
    """Depthwise kernel ``[di, dj, c, m]``: the output channel ``k = c*dm + m`` it makes, times the
    padded input of channel ``c`` under it; in a SeparableConv2D the upstream of a depthwise output
    is ``sum_f dL/dz[..., f] * pointwise[k, f]``, and pointwise ``[0, 0, k, f]`` multiplies the
    depthwise output ``k``."""
    xp, x_shape = cache[0], cache[-1]
    n, ho, wo = dz.shape[:3]
    grid = np.indices((n, ho, wo)).reshape(3, -1).T
    if weight == "bias":
        upstream = dz[..., at[-1]].reshape(-1)
        return GradientTerms(grid, upstream, np.ones_like(upstream), ["1 (bias)"] * len(upstream))
    if weight == "pointwise_kernel":
        k, f = at[2], at[3]
        upstream = dz[..., f].reshape(-1)
        mid = cache[1]
        return GradientTerms(
            grid, upstream, mid[..., k].reshape(-1).copy(), [f"d[{a}, {b}, {q}, {k}]" for a, b, q in grid]
        )
    di, dj, c, m = at
    k = c * layer.depth_multiplier + m
    inner, magnitude = 1, None
    if kind == "SeparableConv2D":
        pointwise = layer._weights["pointwise_kernel"][0, 0, k, :].astype(np.float64)
        upstream = (dz.astype(np.float64) @ pointwise).reshape(-1)
        inner, magnitude = len(pointwise), (np.abs(dz.astype(np.float64)) @ np.abs(pointwise)).reshape(-1)
    else:
        upstream = dz[..., k].reshape(-1)
    sh, sw = layer.strides
    dh, dw = layer.dilation_rate
    from cnnlab.ops.shapes import padding_amounts

    (top, _), (left, _) = padding_amounts(
        (x_shape[1], x_shape[2]), layer.kernel_size, layer.strides, layer.padding, layer.dilation_rate
    )
    rows = grid[:, 1] * sh + di * dh
    cols = grid[:, 2] * sw + dj * dw
    inputs = xp[grid[:, 0], rows, cols, c]
    sources = []
    for (s_, _, _), r, q in zip(grid, rows - top, cols - left, strict=True):
        inside = 0 <= r < x_shape[1] and 0 <= q < x_shape[2]
        sources.append(f"x[{s_}, {r}, {q}, {c}]" if inside else "padding")
    return GradientTerms(grid, upstream, inputs, sources, inner, magnitude)


# ----------------------------------------------------------------------------- the update
def _update(model: Any, engine: Any, layer: Any, weight: str, at: tuple[int, ...]) -> WeightUpdate:
    """The optimizer's step on copies of the flat weights and of the optimizer, as
    ``Engine.train_batch`` runs it (then the weight's constraint, as ``apply_constraints``)."""
    from cnnlab.engine.plan import _reference_update

    store = engine.store
    lo, hi = store.span(layer, weight)
    shape = layer._weights[weight].shape
    k = lo + int(np.ravel_multi_index(at, shape))
    opt = copy.deepcopy(model.optimizer)
    flat = store.flat.copy()
    grads = store.grads.copy()
    g = float(grads[k])
    step = opt.iterations + 1
    lr = float(opt.learning_rate)
    before = {name: float(slot[k]) for name, slot in opt._slots.items() if slot.shape == flat.shape}
    adam_constants = opt.constants(flat.dtype) if hasattr(opt, "constants") else None
    _reference_update(opt, store)(flat, grads)
    rule = (getattr(layer, "constraints", None) or {}).get(weight)
    if rule is not None:
        view = flat[lo:hi].reshape(shape)
        view[...] = rule(view)
    after = {name: float(slot[k]) for name, slot in opt._slots.items() if slot.shape == flat.shape}
    old, new = float(store.flat[k]), float(flat[k])
    lines: list[str] = []
    if getattr(opt, "weight_decay", None):
        lines.append(f"weight decay first: w = w - w*{opt.weight_decay}*lr")
    if any(getattr(opt, c, None) for c in ("clipnorm", "clipvalue", "global_clipnorm")):
        lines.append("gradient clipping first (see the optimizer's options); g below is the clipped gradient")
    name = type(opt).__name__
    if adam_constants is not None and "m" in after:
        c1, c2, eps, alpha, _, _ = adam_constants
        b1, b2 = opt.beta_1, opt.beta_2
        m0, v0, m1, v1 = before.get("m", 0.0), before.get("v", 0.0), after["m"], after["v"]
        lines += [
            f"g = {g:.9g}",
            f"m = m + (g - m)*(1 - beta_1) = {m0:.9g} + ({g:.9g} - {m0:.9g})*{float(c1):.6g} = {m1:.9g}",
            f"v = v + (g^2 - v)*(1 - beta_2) = {v0:.9g} + ({g * g:.9g} - {v0:.9g})*{float(c2):.6g} = {v1:.9g}",
            f"bias correction: alpha = lr*sqrt(1 - beta_2^t)/(1 - beta_1^t) = {lr:.6g}*sqrt(1 - {b2}^{step})"
            f"/(1 - {b1}^{step}) = {float(alpha):.9g}",
            f"step = m*alpha/(sqrt(v) + epsilon) = {m1:.9g}*{float(alpha):.9g}/(sqrt({v1:.9g}) + {float(eps):.3g}) "
            f"= {old - new if rule is None else float('nan'):.9g}",
        ]
    elif name == "SGD" and not opt.momentum:
        lines.append(f"step = lr*g = {lr:.6g}*{g:.9g} = {lr * g:.9g}")
    else:
        for slot in after:
            lines.append(f"{slot}: {before.get(slot, 0.0):.9g} -> {after[slot]:.9g}")
    if rule is not None:
        lines.append(f"then the weight's constraint {type(rule).__name__}")
    lines.append(f"w = {old:.9g} -> {new:.9g}")
    return WeightUpdate(name, step, lr, g, old, new, before, after, lines)


# ----------------------------------------------------------------------------- the entry point
def explain_gradient(
    model: Any, x: Any, y: Any, layer_name: str, weight: str = "kernel", at: Any = None
) -> WeightGradient:
    """One weight's gradient over the batch ``(x, y)``, as a sum of per-position products, and its
    update by the model's optimizer.

    ``x: (N, *input_shape)``, ``y``: labels as for ``fit``; ``weight``: ``"kernel"`` or ``"bias"``;
    ``at``: the weight's index, ``(di, dj, c, f)`` for a Conv2D kernel, ``(i, j)`` for a Dense kernel,
    ``f`` for a bias; ``None`` picks the entry with the largest ``|gradient|`` (said in the notes).
    The model must be compiled (the loss and optimizer are its own).
    """
    model._require_compiled("explain_gradient")
    x, y = model._prepare_xy(x, y, "explain_gradient")
    if len(x) == 0:
        raise InvalidArgumentError("explain_gradient: x holds no samples.")
    layer, trainable = _leaf(model, layer_name)
    calls = sum(node.layer is layer for node in expand(model).nodes)
    if calls > 1:
        raise InvalidArgumentError(
            f'explain_gradient: layer "{layer_name}" is shared: it is called {calls} times in the model, so its '
            "gradient is a sum over its calls, which this view does not write out. Choose a layer called once."
        )
    if weight not in layer._weights:
        have = ", ".join(map(repr, layer._weights)) or "none"
        raise InvalidArgumentError(
            f'explain_gradient: layer "{layer_name}" has no weight {weight!r}; its weights: {have}.'
        )
    if weight not in layer.trainable_keys(trainable):
        raise InvalidArgumentError(
            f'explain_gradient: weight {weight!r} of layer "{layer_name}" is not trained (the layer or its model is '
            "frozen, or it is a statistic): the training step computes no gradient for it."
        )
    notes: list[str] = []
    engine = model._engine
    parts = getattr(x, "parts", None)  # a graph model's inputs come as a group
    if parts is not None:
        xb = type(x)([part.astype(config.floatx(), copy=False) for part in parts])
    else:
        xb = x.astype(config.floatx(), copy=False)
    with config.using_kernels("reference"):
        plan = engine.plan(config.float_dtype(), training=True)
        # the step's side effects that are not the update: moving statistics, random numbers
        kept = [
            (lay, key, w.copy())
            for lay, on in engine.leaves()
            for key, w in lay._weights.items()
            if key not in lay.trainable_keys(on)
        ]
        rng_state = cl_random.generator().bit_generator.state
        observer = _Observer(layer)
        layer.backward = observer  # the engine's own backward pass, observed
        try:
            with plan.threads():
                values, _ = engine.gradients(plan, xb, y)
                backward_grad = layer.grads[weight].copy()
                engine.regularization(add_gradients=True)
                update = None
                if np.all(np.isfinite(values)):
                    if at is None:
                        at = tuple(
                            int(i) for i in np.unravel_index(np.argmax(np.abs(backward_grad)), backward_grad.shape)
                        )
                        notes.append(f"at=None: the entry with the largest |gradient|, {list(at)}.")
                    at = _check_at(at, backward_grad.shape, f'"{layer_name}".{weight}')
                    update = _update(model, engine, layer, weight, at)
                else:
                    notes.append("The loss is NaN or infinite: train_on_batch would not update the weights.")
                    at = _check_at(at if at is not None else (0,) * backward_grad.ndim, backward_grad.shape, weight)
        finally:
            del layer.backward
            cl_random.generator().bit_generator.state = rng_state
            for lay, key, w in kept:
                lay._weights[key][...] = w
    total_grad = layer.grads[weight][at]
    gradient = float(backward_grad[at])
    terms = _terms(layer, weight, at, observer.dz, observer.cache)
    kind = type(layer).__name__
    if kind == "SeparableConv2D" and weight == "depthwise_kernel":
        k = at[2] * layer.depth_multiplier + at[3]
        notes.append(
            f"dL/dz here is the gradient at depthwise output {k}: sum over the filters f of dL/dz[..., f] x "
            f"pointwise_kernel[0, 0, {k}, f] (the pointwise convolution comes after it)."
        )
    elif kind == "SeparableConv2D" and weight == "pointwise_kernel":
        notes.append(f"The input d[n, i, j, {at[2]}] is depthwise output {at[2]}, which the pointwise kernel sums.")
    elif kind == "BatchNormalization" and weight == "gamma":
        notes.append(
            "x̂ = (x - batch mean) / sqrt(batch variance + epsilon): a training step normalises with the batch's own "
            "statistics (predict uses the moving ones)."
        )
    dtype = observer.dz.dtype
    u = float(np.finfo(dtype).eps) / 2
    m = len(terms.upstream) + terms.upstream_terms + 1
    up = terms.upstream_magnitude if terms.upstream_magnitude is not None else np.abs(terms.upstream)
    magnitude = float((up.astype(np.float64) * np.abs(terms.inputs.astype(np.float64))).sum())
    bound = 2 * (m * u / (1 - m * u)) * magnitude  # tests/numerics.py's sum_bound(c=2)
    loss_gradient = None
    if observer.logits is not None and getattr(layer, "activation", None) == "softmax":
        loss_gradient = _loss_gradient(model, observer.logits, y, at[-1], len(x))
    return WeightGradient(
        layer_name=layer.name,
        weight=weight,
        at=at,
        batch_size=len(x),
        loss=float(np.mean(values)),
        gradient=gradient,
        terms=terms,
        rounding_bound=bound,
        regularization=float(total_grad) - gradient,
        update=update,
        loss_gradient=loss_gradient,
        notes=notes,
    )


def _loss_gradient(model: Any, logits: np.ndarray, y: np.ndarray, f: int, n: int) -> dict[str, Any]:
    """``dL/dz[:, f] = (softmax(z) - target)[:, f] / N`` for the output layer (cross-entropy from logits)."""
    z = logits.astype(np.float64)
    p = np.exp(z - z.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    if y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1 and z.shape[1] > 1):
        target = (y.reshape(-1).astype(np.int64) == f).astype(np.float64)
    else:
        target = np.asarray(model.loss.smooth(y) if hasattr(model.loss, "smooth") else y, np.float64)[:, f]
    return {
        "formula": f"dL/dz[n, {f}] = (softmax(z)[n, {f}] - y[n, {f}]) / N with N = {n} (cross-entropy from the logits)",
        "probabilities": p[:, f],
        "targets": target,
        "values": (p[:, f] - target) / n,
    }


__all__ = ["GradientTerms", "WeightGradient", "WeightUpdate", "explain_gradient"]
