"""Why did the model say that? Attribution maps for one prediction of the user's own model.

``cl.explain_prediction(model, image, method=...)`` answers with a heatmap over the input:

* ``"grad_cam"`` (Selvaraju et al. 2017, as Keras's Grad-CAM example computes it): with ``A`` the
  output ``(h, w, K)`` of a layer with spatial output and ``g = d score / d A``,
  ``cam[i, j] = relu(sum_k mean_ij(g[..., k]) * A[i, j, k])``, divided by its maximum, then
  upsampled to the input size with PIL's bicubic filter (the example's ``array_to_img(...).resize``
  uses Pillow's default filter, ``BICUBIC`` for RGB images; cnnlab resizes the values rather than
  the jet colours, then clips to [0, 1] as the example's 8-bit image saturates);
* ``"grad_cam++"`` (Chattopadhay et al. 2018, with the exponential-score closed form used by
  pytorch-grad-cam): channel weights ``sum_ij relu(g) * g^2 / (2 g^2 + sum_ij(A) g^3)``;
* ``"saliency"``: ``|d score / d x|``, the maximum over the colour channels (Simonyan et al. 2014);
* ``"gradient_x_input"``: ``x * d score / d x``, summed over channels;
* ``"integrated_gradients"`` (Sundararajan et al. 2017): ``(x - baseline) * mean_k grad(baseline +
  a_k (x - baseline))`` with the midpoint rule ``a_k = (k - 1/2) / steps``; the result reports the
  completeness check ``sum(attributions) = score(x) - score(baseline)`` (exact in the limit);
* ``"occlusion"`` (Zeiler & Fergus 2014): ``score(x) - score(x with a window set to fill)`` for every
  window position, each pixel getting the mean over the windows that covered it;
* ``smoothgrad=True`` or ``{"n": 25, "sigma": 0.15, "seed": 0}`` (Smilkov et al. 2017) on top of any
  gradient method: the mean map over ``n`` copies of the image with Gaussian noise of standard
  deviation ``sigma * (max(x) - min(x))``, drawn from its own seeded generator.

The score is the pre-softmax logit of the class (what Keras's example uses after removing the
softmax: probabilities saturate, so their gradients vanish for confident predictions), or the
output itself when the last layer has no softmax/sigmoid.

The gradients come from the layers' own ``backward`` on the reference kernels, after an inference
forward that keeps the caches (``Layer.forward_for_gradients``: BatchNormalization with its moving
statistics, Dropout as the identity), so they are the gradients of exactly the function
``model.predict`` computes. The helpers below (:class:`GradientPass`) run the model's leaf layers in
order: forward to a named layer, gradient of a scalar with respect to a layer's output or the input.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab import config
from cnnlab.engine.graph import call_state, expand, restore_call_state
from cnnlab.errors import InvalidArgumentError
from cnnlab.layers.activated import LOGIT_ACTIVATIONS

METHODS = ("grad_cam", "grad_cam++", "saliency", "gradient_x_input", "integrated_gradients", "occlusion")
GRADIENT_METHODS = ("grad_cam", "grad_cam++", "saliency", "gradient_x_input", "integrated_gradients")
#: samples per forward/backward pass when many copies of the image are needed (IG, SmoothGrad, occlusion)
BATCH = 64


# ----------------------------------------------------------------------------- the generic helpers
class GradientPass:
    """One inference forward through the model's layer calls, keeping every layer's cache, and
    backward passes from a seed at the output to any layer's output or to the input.

    The model is expanded into its layer calls over numbered tensors
    (:func:`cnnlab.engine.graph.expand`): a Sequential model is a chain, a graph model
    (``cl.Model(inputs, outputs)``, residual connections, shared layers, nested models) a DAG run in
    topological order. Backward runs the calls in reverse order and *sums* the gradients of a tensor
    that feeds several calls (a residual branch), as the training engine does; a layer called more
    than once gets back what its forward kept for each call before that call's backward.

    ``x: (N, *input_shape)``; ``outputs[i]`` is call ``i``'s output. The score of sample ``n`` is
    ``logits[n, c]`` (the output layer's pre-softmax values when its activation is softmax or
    sigmoid, its output otherwise); samples do not interact (no batch statistics), so one backward
    pass of ``sum_n score_n`` gives every sample's gradient.

    The layers' weight-gradient arrays are swapped for scratch ones during backward, so the
    training engine's gradient store is never touched.
    """

    def __init__(self, model: Any, x: np.ndarray) -> None:
        graph = expand(model)
        if len(graph.inputs) != 1 or len(graph.outputs) != 1:
            raise InvalidArgumentError(
                f"model {model.name!r} has {len(graph.inputs)} inputs and {len(graph.outputs)} outputs; explaining a "
                "prediction needs one image in and one score vector out. Build a model with one input and the "
                "output to explain: cl.Model(inputs, outputs[k])."
            )
        self.nodes = graph.nodes
        self.layers = [node.layer for node in self.nodes]
        self.names = [layer.name for layer in self.layers]
        calls: dict[int, int] = {}
        for layer in self.layers:
            calls[id(layer)] = calls.get(id(layer), 0) + 1
        self._calls = [calls[id(layer)] for layer in self.layers]
        self._input_slot = graph.inputs[0]
        self._slots: list[Any] = [None] * graph.slots
        self._slots[self._input_slot] = x
        self._kept: list[dict[str, Any] | None] = []
        self.input = x
        for node, calls_of in zip(self.nodes, self._calls, strict=True):
            args = [self._slots[s] for s in node.inputs]
            self._slots[node.output] = node.layer.forward_for_gradients(args if node.list_call else args[0])
            # a layer called more than once keeps only its last call's cache: keep each call's
            self._kept.append(call_state(node.layer) if calls_of > 1 else None)
        self.outputs: list[np.ndarray] = [self._slots[node.output] for node in self.nodes]
        self._out_slot = graph.outputs[0]
        producers = [k for k, node in enumerate(self.nodes) if node.output == self._out_slot]
        if not producers:
            raise InvalidArgumentError(f"model {model.name!r}: its output is its input; there is nothing to explain.")
        self._last = producers[0]
        last = self.nodes[self._last].layer
        if self._kept[self._last] is not None:
            restore_call_state(last, self._kept[self._last])
        # a separate Softmax layer over the last axis at the end: its input is the logits, and the
        # gradient starts there (its backward is skipped, as a fused softmax's is)
        self._softmax_layer = (
            type(last).__name__ == "Softmax"
            and getattr(last, "axis", -1) in (-1, self._slots[self._out_slot].ndim - 1)
            and len(self.nodes[self._last].inputs) == 1
        )
        self.from_logits = self._softmax_layer or (
            getattr(last, "activation", None) in LOGIT_ACTIVATIONS and last.last_logits is not None
        )
        out = self._slots[self._out_slot]
        if self._softmax_layer:
            z = self._slots[self.nodes[self._last].inputs[0]]
        else:
            z = last.last_logits if self.from_logits else out
        self.logits = np.asarray(z).reshape(len(x), -1)

    def index(self, name: str) -> int:
        """The call of the layer named ``name`` (a layer called more than once has no single output)."""
        if name not in self.names:
            raise InvalidArgumentError(
                f"layer_name: the model has no layer named {name!r}. Layers: {', '.join(self.names)}."
            )
        k = self.names.index(name)
        if self._calls[k] > 1:
            raise InvalidArgumentError(
                f"layer_name: layer {name!r} is shared: it is called {self._calls[k]} times in the model, so it has "
                "no single output to explain. Choose a layer called once (for example the layer after it)."
            )
        return k

    def output_of(self, name: str) -> np.ndarray:
        """The output of layer ``name`` (forward to a named layer)."""
        return self.outputs[self.index(name)]

    def gradient(self, class_index: int | np.ndarray, to: str | None = None) -> np.ndarray:
        """``d score / d (output of layer to)`` (``to=None``: the input), per sample.

        ``class_index``: one class for all samples or one per sample."""
        seed = np.zeros_like(self.logits)
        seed[np.arange(len(seed)), class_index] = 1
        out = self._slots[self._out_slot]
        stop = -1 if to is None else self.index(to)
        target = self._input_slot if to is None else self.nodes[stop].output
        g: list[Any] = [None] * len(self._slots)
        if self._softmax_layer:  # the seed goes to the Softmax layer's input, the logits
            g[self.nodes[self._last].inputs[0]] = seed.reshape(out.shape).astype(out.dtype)
        else:
            g[self._out_slot] = seed.reshape(out.shape).astype(out.dtype)
        saved = [layer.grads for layer in self.layers]
        try:
            # every call after ``stop`` in topological order: then the target's gradient is complete
            for k in range(len(self.nodes) - 1, stop, -1):
                if k == self._last and self._softmax_layer:
                    continue
                node = self.nodes[k]
                dy = g[node.output]
                if dy is None:  # this call does not reach the score
                    continue
                layer = node.layer
                if self._kept[k] is not None:
                    restore_call_state(layer, self._kept[k])
                layer.grads = {}  # scratch: the engine's gradient views stay as they were
                if k == self._last and self.from_logits:
                    dx = layer.backward(dy, need_dx=True, from_logits=True)
                else:
                    dx = layer.backward(dy, need_dx=True)
                for slot, part in zip(node.inputs, dx if node.list_call else [dx], strict=True):
                    g[slot] = part if g[slot] is None else g[slot] + part
        finally:
            for layer, grads in zip(self.layers, saved, strict=True):
                layer.grads = grads
        grad = g[target]
        if grad is None:  # the layer (or input) does not influence the score
            shape = self.input.shape if to is None else self.outputs[stop].shape
            return np.zeros(shape, dtype=self.input.dtype)
        return grad

    def release(self) -> None:
        for layer in self.layers:
            layer.release()
        self._kept = [None] * len(self._kept)


def run_pass(model: Any, x: np.ndarray) -> GradientPass:
    """A :class:`GradientPass` on the reference kernels (the layers' own forward/backward)."""
    with config.using_kernels("reference"):
        return GradientPass(model, x)


def _batched(model: Any, xs: np.ndarray, class_index: int, to: str | None, want_grad: bool = True):
    """Logit scores and gradients (w.r.t. the input or layer ``to``) for many inputs, in batches.
    Returns (scores (M,), gradients or None, activations of ``to`` or None)."""
    scores, grads, acts = [], [], []
    for start in range(0, len(xs), BATCH):
        p = run_pass(model, xs[start : start + BATCH])
        try:
            scores.append(p.logits[:, class_index].astype(np.float64))
            if to is not None:
                acts.append(p.output_of(to).copy())
            if want_grad:
                grads.append(p.gradient(class_index, to))
        finally:
            p.release()
    cat = np.concatenate
    return cat(scores), (cat(grads) if want_grad else None), (cat(acts) if to is not None else None)


# ----------------------------------------------------------------------------- the result
@dataclass
class Attribution:
    """One attribution map: ``heatmap (H, W)`` over the input image, for class ``class_index``."""

    method: str
    heatmap: np.ndarray
    class_index: int
    score: float
    score_kind: str
    layer_name: str | None
    note: str
    image: np.ndarray
    probabilities: np.ndarray
    class_names: list[str] | None = None
    #: the method's numbers before reduction to (H, W): channel attributions or the layer's map
    attributions: np.ndarray | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def class_name(self) -> str:
        return self.class_names[self.class_index] if self.class_names else str(self.class_index)

    def __repr__(self) -> str:
        where = f" on layer {self.layer_name!r}" if self.layer_name else ""
        return (
            f"<Attribution {self.method}{where}: class {self.class_index} ({self.class_name}), "
            f"score {self.score:.6g} ({self.score_kind}), heatmap {self.heatmap.shape}>"
        )

    def __str__(self) -> str:
        lines = [repr(self), self.note]
        lines += [f"{key}: {value}" for key, value in self.details.items() if not isinstance(value, np.ndarray)]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (lists and plain numbers)."""
        return {
            "method": self.method,
            "class_index": self.class_index,
            "class_name": self.class_name,
            "score": self.score,
            "score_kind": self.score_kind,
            "layer_name": self.layer_name,
            "note": self.note,
            "probabilities": [float(p) for p in self.probabilities],
            "heatmap": np.asarray(self.heatmap, dtype=float).tolist(),
            "details": json.loads(json.dumps(self.details, default=_plain)),
        }

    def to_png(self, path: str | Path) -> Path:
        """Image, heatmap (with a colour bar) and overlay side by side, written atomically."""
        from cnnlab.plots import save_figure

        return save_figure(self._figure(), Path(path))

    def _repr_png_(self) -> bytes:
        """The picture of :meth:`to_png`, for Jupyter."""
        import io

        from cnnlab.plots import plt

        fig = self._figure()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
        plt.close(fig)
        return buffer.getvalue()

    def _repr_html_(self) -> str:
        """For Jupyter: the picture (inline, no file) and the note saying which layer and score."""
        import base64
        import html

        picture = base64.b64encode(self._repr_png_()).decode("ascii")
        return (
            f'<div class="cnnlab-attribution"><img alt="{html.escape(self.method)}" '
            f'src="data:image/png;base64,{picture}"/><pre>{html.escape(self.note)}</pre></div>'
        )

    def _figure(self) -> Any:
        from cnnlab.plots import plt

        image = _displayable(self.image)
        signed = self.method in ("gradient_x_input", "integrated_gradients", "occlusion")
        cmap = "bwr" if signed else "jet"
        limit = float(np.max(np.abs(self.heatmap))) or 1.0
        if signed:
            vmin, vmax = -limit, limit
        elif self.method.startswith("grad_cam"):
            vmin, vmax = 0.0, 1.0  # normalised to its maximum (all 0 when no position speaks for the class)
        else:
            vmin, vmax = 0.0, limit
        fig, axes = plt.subplots(1, 3, figsize=(11, 4))
        grey = "gray" if image.ndim == 2 else None
        axes[0].imshow(image, cmap=grey)
        axes[0].set_title("input")
        shown = axes[1].imshow(self.heatmap, cmap=cmap, vmin=vmin, vmax=vmax)
        axes[1].set_title(f"{self.method}" + (f"\nlayer {self.layer_name}" if self.layer_name else ""))
        fig.colorbar(shown, ax=axes[1], fraction=0.046, pad=0.04)
        axes[2].imshow(image, cmap=grey)
        axes[2].imshow(self.heatmap, cmap=cmap, vmin=vmin, vmax=vmax, alpha=0.4)  # Keras's example: alpha 0.4
        axes[2].set_title("overlay")
        for ax in axes:
            ax.set_xticks([])
            ax.set_yticks([])
        top = np.argsort(self.probabilities)[::-1][:3]
        names = self.class_names or [str(i) for i in range(len(self.probabilities))]
        ranked = ", ".join(f"{names[i]} {self.probabilities[i]:.1%}" for i in top)
        fig.suptitle(
            f"class {self.class_index}: {self.class_name} (score = {self.score_kind} {self.score:.4g})\n"
            f"model: {ranked}",
            fontsize=10,
        )
        return fig


def _displayable(image: np.ndarray) -> np.ndarray:
    """``(H, W, C)`` as matplotlib shows it: one channel grey, three RGB scaled into [0, 1], any
    other count their mean in grey (the picture only locates the heatmap)."""
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 3 and image.shape[-1] == 3:
        low, high = float(image.min()), float(image.max())
        return (image - low) / (high - low) if high > low else np.zeros_like(image)
    return image.mean(axis=-1) if image.ndim == 3 else image


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


# ----------------------------------------------------------------------------- choices
def default_cam_layer(model: Any, input_shape: tuple[int, ...], run: GradientPass | None = None) -> tuple[str, str]:
    """The last layer (in the order the model runs them) with a 4-d (spatial) output of more than one
    position (a 1x1 map, say after global pooling with ``keepdims``, has nothing to localise); its
    name and why.

    In a Sequential model that is the layer before the first one that removes the spatial axes
    (Flatten, global pooling); in a graph model (residual blocks, squeeze-and-excitation branches
    that pool early) it is the last spatial tensor before the head. ``run``: a pass already made
    (otherwise one is made on a zero image of ``input_shape``)."""
    own = run is None
    if run is None:
        run = run_pass(model, np.zeros((1, *input_shape), dtype=config.floatx()))
    try:
        spatial = [k for k, out in enumerate(run.outputs) if np.ndim(out) == 4 and run._calls[k] == 1]
        # a 1x1 map (a fully convolutional head after global pooling with keepdims) has no positions
        spatial = [k for k in spatial if run.outputs[k].shape[1] * run.outputs[k].shape[2] > 1]
        if not spatial:
            raise InvalidArgumentError(
                "explain_prediction: Grad-CAM needs a layer with spatial output (N, H, W, C); this model has none. "
                "Use method='saliency', 'integrated_gradients' or 'occlusion' instead."
            )
        k = spatial[-1]
        chosen, out_slot = run.layers[k], run.nodes[k].output
        readers = [n.layer for n in run.nodes if out_slot in n.inputs]
        reducer = next((r for r in readers if np.ndim(run.outputs[run.layers.index(r)]) != 4), None)
        if reducer is not None:
            reason_end = f'"{reducer.name}" ({type(reducer).__name__}), which removes the spatial axes'
        else:
            reason_end = "the end of the model"
        h, w, c = run.outputs[k].shape[1:]
    finally:
        if own:
            run.release()
    why = (
        f'Grad-CAM on layer "{chosen.name}" ({type(chosen).__name__}, output {h}x{w}x{c}): the last layer with '
        f"spatial output before {reason_end}. The last spatial maps hold the most class-specific features "
        f"that still have positions (Selvaraju et al.); pass layer_name=... to choose another."
    )
    return chosen.name, why


def fashion_names(model: Any, n_classes: int) -> list[str] | None:
    names = getattr(model, "metadata", {}).get("class_names")
    if names and len(names) == n_classes:
        return list(names)
    shape = getattr(model, "input_shape", None)
    if n_classes == 10 and shape is not None and tuple(shape[1:3]) == (28, 28):
        from cnnlab.datasets.fashion_mnist import class_names

        return list(class_names)
    return None


def upsample(heatmap: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(h, w) -> size`` with PIL's bicubic filter (Keras's example: ``Image.resize``'s default),
    clipped to [0, 1] (the example resizes an 8-bit image, which saturates the same way)."""
    from PIL import Image

    if heatmap.shape == tuple(size):
        return heatmap.astype(np.float64)
    img = Image.fromarray(np.ascontiguousarray(heatmap, dtype=np.float32), mode="F")
    out = np.asarray(img.resize((size[1], size[0]), resample=Image.Resampling.BICUBIC), dtype=np.float64)
    return np.clip(out, 0.0, 1.0)


def cam_from(acts: np.ndarray, grads: np.ndarray, plus: bool) -> tuple[np.ndarray, np.ndarray]:
    """Grad-CAM (or ++) map ``(h, w)`` and channel weights ``(K,)`` from one sample's layer output
    ``A (h, w, K)`` and gradient ``g``; not normalised."""
    acts = acts.astype(np.float64)
    grads = grads.astype(np.float64)
    if plus:
        g2, g3 = grads**2, grads**3
        denom = 2 * g2 + acts.sum(axis=(0, 1)) * g3
        alpha = np.where(grads != 0, g2 / np.where(denom != 0, denom, 1.0), 0.0)
        weights = (np.maximum(grads, 0) * alpha).sum(axis=(0, 1))
    else:
        weights = grads.mean(axis=(0, 1))  # Keras: reduce_mean(grads, axis=(0, 1, 2))
    return acts @ weights, weights


def _smooth_options(smoothgrad: Any) -> dict[str, Any] | None:
    if smoothgrad is False or smoothgrad is None:
        return None
    opts = {"n": 25, "sigma": 0.15, "seed": 0}
    if smoothgrad is True:
        return opts
    if not isinstance(smoothgrad, dict) or set(smoothgrad) - set(opts):
        raise InvalidArgumentError(
            f"explain_prediction: expected smoothgrad to be False, True or a dict with keys n, sigma, seed; "
            f"received {smoothgrad!r}. Example: smoothgrad={{'n': 25, 'sigma': 0.15, 'seed': 0}}."
        )
    opts.update(smoothgrad)
    if not isinstance(opts["n"], (int, np.integer)) or opts["n"] < 1 or not opts["sigma"] >= 0:
        raise InvalidArgumentError(
            f"explain_prediction: smoothgrad needs n >= 1 and sigma >= 0, received n={opts['n']!r}, "
            f"sigma={opts['sigma']!r}."
        )
    return opts


def _pair(value: Any, name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and v >= 1 for v in pair):
        raise InvalidArgumentError(
            f"explain_prediction: expected {name} to be a positive int or pair, received {value!r}."
        )
    return int(pair[0]), int(pair[1])


# ----------------------------------------------------------------------------- the methods
def _prepare_image(model: Any, image: Any) -> np.ndarray:
    inputs = model._input_count()
    if inputs != 1:
        raise InvalidArgumentError(
            f"explain_prediction: model {model.name!r} has {inputs} inputs; explaining a prediction needs a model "
            "with one image input."
        )
    x = np.asarray(image)
    shape = getattr(model, "input_shape", None)
    if shape is not None and shape[0] is None:
        sample = tuple(shape[1:])
        if x.shape == sample:
            x = x[None]
        elif x.shape == sample[:-1] and sample[-1] == 1:
            x = x[None, ..., None]
    if x.ndim < 2 or x.shape[0] != 1:
        raise InvalidArgumentError(
            f"explain_prediction: expected one image of the model's input shape (e.g. (28, 28, 1)) or a batch "
            f"of one, received shape {x.shape}. Pick one sample: x[i] or x[i:i+1]."
        )
    x = model._prepare_input(x)
    parts = getattr(x, "parts", None)  # a graph model's inputs come as a group (of one here)
    if parts is not None:
        x = parts[0]
    return np.asarray(x).astype(config.floatx(), copy=False)


def _gradient_map(
    model: Any, xs: np.ndarray, method: str, class_index: int, layer: str | None, baseline: np.ndarray, steps: int
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """For each sample of ``xs``: the (unnormalised) map ``(M, h, w)`` and the raw attributions."""
    details: dict[str, Any] = {}
    if method in ("grad_cam", "grad_cam++"):
        _, grads, acts = _batched(model, xs, class_index, layer)
        pairs = [cam_from(a, g, method == "grad_cam++") for a, g in zip(acts, grads, strict=True)]
        details["channel_weights"] = pairs[0][1]
        return np.stack([cam for cam, _ in pairs]), acts, details
    if method == "integrated_gradients":
        alphas = (np.arange(steps) + 0.5) / steps  # midpoint rule
        maps, raws, sums, diffs = [], [], [], []
        for x in xs:
            path = baseline + alphas.reshape(-1, *([1] * x.ndim)) * (x - baseline)
            _, grads, _ = _batched(model, path.astype(xs.dtype), class_index, None)
            attr = (x - baseline).astype(np.float64) * grads.astype(np.float64).mean(axis=0)
            ends, _, _ = _batched(model, np.stack([x, baseline]).astype(xs.dtype), class_index, None, False)
            maps.append(attr.sum(axis=-1))
            raws.append(attr)
            sums.append(attr.sum())
            diffs.append(ends[0] - ends[1])
        details["completeness"] = {
            "sum_of_attributions": float(sums[0]),
            "score_difference": float(diffs[0]),
            "gap": float(sums[0] - diffs[0]),
            "steps": steps,
            "rule": "midpoint: alpha_k = (k - 1/2) / steps",
        }
        return np.stack(maps), np.stack(raws), details
    _, grads, _ = _batched(model, xs, class_index, None)
    grads = grads.astype(np.float64)
    if method == "saliency":
        return np.abs(grads).max(axis=-1), grads, details
    attr = grads * xs.astype(np.float64)  # gradient_x_input
    return attr.sum(axis=-1), attr, details


def occlusion_map(
    model: Any, x: np.ndarray, class_index: int, window: tuple[int, int], stride: tuple[int, int], fill: float
) -> tuple[np.ndarray, np.ndarray]:
    """``x: (1, H, W, C)`` -> per-pixel mean of ``score(x) - score(occluded)`` over the windows that
    covered it ``(H, W)``, and the per-window differences ``(rows, cols)``."""
    _, h, w, _ = x.shape
    wh, ww = window
    tops = list(range(0, max(h - wh, 0) + 1, stride[0]))
    lefts = list(range(0, max(w - ww, 0) + 1, stride[1]))
    copies = np.repeat(x, len(tops) * len(lefts), axis=0)
    for k, (top, left) in enumerate((t, c) for t in tops for c in lefts):
        copies[k, top : top + wh, left : left + ww, :] = fill
    base, _, _ = _batched(model, x, class_index, None, want_grad=False)
    scores, _, _ = _batched(model, copies, class_index, None, want_grad=False)
    drops = (base[0] - scores).reshape(len(tops), len(lefts))
    total, count = np.zeros((h, w)), np.zeros((h, w))
    for a, top in enumerate(tops):
        for b, left in enumerate(lefts):
            total[top : top + wh, left : left + ww] += drops[a, b]
            count[top : top + wh, left : left + ww] += 1
    return np.divide(total, count, out=np.zeros_like(total), where=count > 0), drops


def explain_prediction(
    model: Any,
    image: Any,
    method: str = "grad_cam",
    class_index: int | None = None,
    layer_name: str | None = None,
    smoothgrad: bool | dict[str, Any] = False,
    baseline: Any = None,
    steps: int = 50,
    window: int | tuple[int, int] = (4, 4),
    stride: int | tuple[int, int] = (2, 2),
    fill: float = 0.0,
    class_names: Sequence[str] | None = None,
) -> Attribution:
    """Where the model looked for one prediction: ``image: (H, W, C)`` (or ``(1, H, W, C)``; ``(H, W)``
    for one-channel models) -> :class:`Attribution` with ``heatmap (H, W)``.

    ``class_index=None`` explains the predicted class. See the module docstring for the methods;
    ``layer_name`` (Grad-CAM) defaults to the last layer with spatial output; ``baseline`` and
    ``steps`` are integrated gradients' (default baseline: zeros, a black image); ``window``,
    ``stride`` and ``fill`` are occlusion's; ``smoothgrad`` averages any gradient method over noisy
    copies (seeded).
    """
    if method not in METHODS:
        raise InvalidArgumentError(
            f"explain_prediction: unknown method {method!r}. Expected one of {', '.join(map(repr, METHODS))}; "
            "for SmoothGrad pass smoothgrad=True with a gradient method."
        )
    smooth = _smooth_options(smoothgrad)
    if smooth is not None and method not in GRADIENT_METHODS:
        raise InvalidArgumentError(
            f"explain_prediction: smoothgrad applies to gradient methods ({', '.join(GRADIENT_METHODS)}), "
            f"not to {method!r}."
        )
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise InvalidArgumentError(f"explain_prediction: expected steps to be a positive integer, received {steps!r}.")
    x = _prepare_image(model, image)
    first = run_pass(model, x)
    try:
        logits = first.logits[0].astype(np.float64)
        from_logits = first.from_logits
        out = first._slots[first._out_slot].reshape(-1).astype(np.float64)
        sigmoid = getattr(first.layers[first._last], "activation", None) == "sigmoid"
        layer = None
        if method in ("grad_cam", "grad_cam++"):
            if layer_name is None:
                layer, layer_note = default_cam_layer(model, x.shape[1:], first)
            else:
                if not isinstance(layer_name, str):
                    raise InvalidArgumentError(
                        f"explain_prediction: expected layer_name to be a layer's name (str), received {layer_name!r}."
                    )
                first.index(layer_name)  # a clear error for an unknown or shared layer
                layer = layer_name
                layer_note = f'Grad-CAM on layer "{layer}", as asked.'
    finally:
        first.release()
    n_classes = logits.size
    if class_index is None:
        class_index = int(np.argmax(logits))
        which = "the predicted class"
    else:
        if isinstance(class_index, bool) or not isinstance(class_index, (int, np.integer)):
            raise InvalidArgumentError(
                f"explain_prediction: expected class_index to be an integer, received {class_index!r}."
            )
        if not 0 <= class_index < n_classes:
            raise InvalidArgumentError(
                f"explain_prediction: class_index {class_index} is out of range; the model has {n_classes} outputs "
                f"(0..{n_classes - 1})."
            )
        class_index = int(class_index)
        which = "the class asked for"
    score_kind = "logit" if from_logits else "output"
    score_note = (
        f"Score: the pre-softmax logit of class {class_index} ({which}), not its probability (probabilities "
        "saturate, so their gradients vanish for confident predictions)."
        if from_logits
        else f"Score: output {class_index} of the last layer ({which}; it has no softmax/sigmoid)."
    )
    loss = getattr(model, "loss", None)
    outputs_are_logits = not from_logits and getattr(loss, "from_logits", False)
    if outputs_are_logits:  # compiled with from_logits=True: the outputs are logits, as the loss reads them
        score_kind = "logit"
        sigmoid = "binary" in type(loss).__name__.lower()
        score_note = (
            f"Score: output {class_index} of the last layer ({which}), a logit: the model's loss takes its outputs "
            "as logits (from_logits=True)."
        )
    names = list(class_names) if class_names is not None else fashion_names(model, n_classes)
    probabilities = _probabilities(logits, sigmoid) if from_logits or outputs_are_logits else out
    size = x.shape[1:3]
    details: dict[str, Any] = {}
    if method in ("grad_cam", "grad_cam++"):
        note = f"{layer_note} {score_note}"
    else:
        note = score_note

    if method == "occlusion":
        win, stp = _pair(window, "window"), _pair(stride, "stride")
        heat, drops = occlusion_map(model, x, class_index, win, stp, float(fill))
        details.update(window=win, stride=stp, fill=float(fill), windows=int(drops.size))
        note += (
            f" Occlusion: each {win[0]}x{win[1]} window (stride {stp[0]}x{stp[1]}) set to {fill}; a pixel shows the "
            "mean score drop over the windows that covered it."
        )
        return Attribution(
            method,
            heat,
            class_index,
            float(logits[class_index]),
            score_kind,
            None,
            note,
            x[0],
            probabilities,
            names,
            drops,
            details,
        )

    base = np.zeros_like(x[0]) if baseline is None else np.broadcast_to(np.asarray(baseline, x.dtype), x.shape[1:])
    if smooth is None:
        maps, raw, details = _gradient_map(model, x, method, class_index, layer, base, int(steps))
        heat_small = maps[0]
        raw = raw[0]
    else:
        rng = np.random.default_rng(smooth["seed"])
        spread = float(x.max() - x.min()) * float(smooth["sigma"])
        noisy = x + rng.normal(0.0, spread, size=(int(smooth["n"]), *x.shape[1:])).astype(x.dtype)
        maps, raws, details = _gradient_map(model, noisy, method, class_index, layer, base, int(steps))
        heat_small, raw = maps.mean(axis=0), raws.mean(axis=0)
        details["smoothgrad"] = {**smooth, "noise_std": spread}
        note += (
            f" SmoothGrad: mean over {smooth['n']} noisy copies (noise std {smooth['sigma']} x the image's value "
            f"range = {spread:.4g}, seed {smooth['seed']})."
        )
    if method in ("grad_cam", "grad_cam++"):
        cam = np.maximum(heat_small, 0)
        top = cam.max()
        if top > 0:
            cam = cam / top
        else:
            note += " Every position of the map was <= 0 (no evidence for this class there): the heatmap is 0."
        details["map_before_upsampling"] = cam
        heat = upsample(cam, size)
        note += (
            f" Map {cam.shape[0]}x{cam.shape[1]} upsampled to {size[0]}x{size[1]} (PIL bicubic, as Keras's example)."
        )
    else:
        heat = heat_small
        if method == "saliency":
            note += " Saliency: |d score / d x|, the maximum over the colour channels."
        elif method == "gradient_x_input":
            note += " Gradient x input, summed over the colour channels."
        else:
            c = details["completeness"]
            note += (
                f" Integrated gradients from {'zeros' if baseline is None else 'the given baseline'} in {steps} steps; "
                f"completeness: sum of attributions {c['sum_of_attributions']:.6g} vs score(x) - score(baseline) "
                f"{c['score_difference']:.6g} (gap {c['gap']:.3g}; more steps shrink it)."
            )
    return Attribution(
        method,
        heat,
        class_index,
        float(logits[class_index]),
        score_kind,
        layer,
        note,
        x[0],
        probabilities,
        names,
        raw,
        details,
    )


def _probabilities(logits: np.ndarray, sigmoid: bool) -> np.ndarray:
    if sigmoid:
        return 1 / (1 + np.exp(-logits))
    e = np.exp(logits - logits.max())
    return e / e.sum()


__all__ = ["Attribution", "GradientPass", "explain_prediction", "run_pass"]
