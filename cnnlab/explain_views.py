"""Showing explanations: text grids, the sliding-window picture (PNG), a
self-contained interactive HTML page and the same view as a fragment for notebook outputs
(explanations' ``_repr_html_``); plus the parser for matrices typed on the
command line (``"0 0 1; 0 1 1"``, ``arange:4x4``, ``ones:4x4``, ``.npy``, ``.png``).
"""

from __future__ import annotations

import html
import json
import re
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab._atomic import atomic_path
from cnnlab.errors import InvalidArgumentError, UsageError
from cnnlab.explain import ConvExplanation, DenseExplanation, Explanation, PoolExplanation, fmt, window_view
from cnnlab.explain_layers import StepExplanation

#: grids up to this size get their numbers printed in the cells
NUMBERS_UP_TO = 12


#: the most values ``arange:``/``ones:``/``zeros:`` make: an image to read and explain, checked
#: before anything is allocated (``arange:100000x100000`` would need 80 GB)
MAX_GENERATED_VALUES = 1_000_000

#: the generated images ``parse_matrix`` knows
GENERATORS = ("arange", "ones", "zeros")


class MatrixError(UsageError):
    """A matrix given on the command line cannot be read (a usage error: exit status 2)."""


def parse_matrix(text: str, what: str = "matrix") -> np.ndarray:
    """Read a matrix spec into an ``(H, W, C)`` float array.

    Rows are separated by ``;``, values by spaces or commas, channel planes by ``;;``.

    >>> parse_matrix("1 2; 3 4")[..., 0]
    array([[1., 2.],
           [3., 4.]])
    >>> parse_matrix("arange:2x3").shape, parse_matrix("ones:2x2x3").shape
    ((2, 3, 1), (2, 2, 3))
    >>> parse_matrix("1 2; 3", "image")
    Traceback (most recent call last):
    ...
    cnnlab.explain_views.MatrixError: image: row 2 has 1 value(s), row 1 has 2; every row needs the same count
    """
    text = text.strip()
    head = re.match(r"([A-Za-z_]+):", text)
    if head and Path(text).suffix.lower() not in (".npy", ".png", ".jpg", ".jpeg"):
        return _generated(text, head.group(1), what)
    path = Path(text)
    if path.suffix.lower() in (".npy", ".png", ".jpg", ".jpeg"):
        if not path.is_file():
            raise MatrixError(f"{what}: no such file {text}")
        if path.suffix.lower() == ".npy":
            try:
                array = np.load(path, allow_pickle=False).astype(np.float64)
            except (ValueError, OSError) as exc:
                raise MatrixError(f"{what}: {text} is not a readable numeric .npy array ({exc})") from exc
        else:
            from PIL import Image, UnidentifiedImageError

            try:
                with Image.open(path) as img:
                    array = np.asarray(img.convert("L"), dtype=np.float64)
            except (UnidentifiedImageError, OSError) as exc:
                raise MatrixError(f"{what}: {text} is not a readable image ({exc})") from exc
        if array.ndim == 2:
            array = array[..., None]
        if array.ndim != 3:
            raise MatrixError(f"{what}: {text} holds an array of shape {array.shape}; expected (H, W) or (H, W, C)")
        return array
    planes = []
    for p, plane in enumerate(text.split(";;")):
        rows = [row for row in plane.split(";")]
        parsed = []
        for r, row in enumerate(rows):
            items = [v for v in re.split(r"[\s,]+", row.strip()) if v]
            try:
                parsed.append([float(v) for v in items])
            except ValueError:
                bad = next(v for v in items if not _is_number(v))
                raise MatrixError(f"{what}: {bad!r} in row {r + 1} is not a number") from None
        if not parsed or not parsed[0]:
            raise MatrixError(f'{what}: empty matrix; write rows like "0 1 2; 3 4 5"')
        for r, row in enumerate(parsed):
            if len(row) != len(parsed[0]):
                raise MatrixError(
                    f"{what}: row {r + 1} has {len(row)} value(s), row 1 has {len(parsed[0])}; "
                    "every row needs the same count"
                )
        planes.append(np.array(parsed))
        if planes[0].shape != planes[-1].shape:
            raise MatrixError(f"{what}: channel plane {p + 1} is {planes[-1].shape}, plane 1 is {planes[0].shape}")
    return np.stack(planes, axis=-1)


def _generated(text: str, kind: str, what: str) -> np.ndarray:
    """``arange:HxW[xC]``, ``ones:...``, ``zeros:...``: sizes are whole numbers >= 1 and the image
    holds at most :data:`MAX_GENERATED_VALUES` values (checked before allocating)."""
    form = f"{kind}:HxW or {kind}:HxWxC with whole numbers >= 1, e.g. {kind}:4x4"
    if kind not in GENERATORS:
        known = ", ".join(f"{g}:" for g in GENERATORS)
        hint = f" (names are lower case: {kind.lower()}:)" if kind.lower() in GENERATORS else ""
        raise MatrixError(f"{what}: unknown generator {kind + ':'!r} in {text!r}{hint}; expected one of {known}")
    match = re.fullmatch(r"[a-z]+:(\d+)x(\d+)(?:x(\d+))?", text)
    if not match:
        raise MatrixError(f"{what}: expected {form}; received {text!r}")
    h, w, c = int(match.group(1)), int(match.group(2)), int(match.group(3) or 1)
    if min(h, w, c) < 1:
        raise MatrixError(f"{what}: expected {form}; received {text!r}, which has a size 0")
    size = h * w * c
    if size > MAX_GENERATED_VALUES:
        raise MatrixError(
            f"{what}: {text!r} would hold {size:,} values; the limit is {MAX_GENERATED_VALUES:,} "
            "(an image to read and explain); give smaller sizes"
        )
    make = {"arange": np.arange, "ones": np.ones, "zeros": np.zeros}[kind]  # only the one asked for
    return make(size).reshape(h, w, c).astype(np.float64)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def grid_text(a: np.ndarray, mark: set[tuple[int, int]] | None = None) -> str:
    """A 2-D array as aligned text; cells in ``mark`` are bracketed."""
    mark = mark or set()
    cells = [[fmt(v) for v in row] for row in a]
    width = max(len(c) for row in cells for c in row) + 2
    return "\n".join(
        "".join((f"[{c}]" if (r, q) in mark else f" {c} ").rjust(width + 1) for q, c in enumerate(row))
        for r, row in enumerate(cells)
    )


# ----------------------------------------------------------------- PNG
def window_figure(x: np.ndarray, expl: Explanation, out: np.ndarray, kernel: np.ndarray | None, path: Path) -> Path:
    """The sliding-window picture: input with the window outlined (padding hatched), kernel,
    output with the cell outlined, and the arithmetic underneath. ``x: (H, W, C)``, ``out: (Ho, Wo)``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from cnnlab.plots import save_figure

    channel = expl.at[3] if isinstance(expl, PoolExplanation) else 0
    image = x[..., channel]
    panels = [("input" + (f" (channel {channel})" if x.shape[2] > 1 else ""), image)]
    if kernel is not None:
        panels.append(("kernel" + (" (channel 0)" if kernel.shape[2] > 1 else ""), kernel[..., 0]))
    panels.append(("output", out))
    fig, axes = plt.subplots(
        1,
        len(panels),
        figsize=(4.2 * len(panels), 4.8),
        gridspec_kw={"width_ratios": [max(p[1].shape[1], 2) for p in panels]},
    )
    rows, cols = expl.rows, expl.cols
    for ax, (title, grid) in zip(axes, panels, strict=True):
        shown = np.where(np.isinf(grid), np.nan, grid)
        ax.imshow(shown, cmap="viridis")
        ax.set_title(title)
        ax.set_xticks(range(grid.shape[1]))
        ax.set_yticks(range(grid.shape[0]))
        ax.set_xlabel("column j")
        ax.set_ylabel("row i")
        if max(grid.shape) <= NUMBERS_UP_TO:
            finite = shown[np.isfinite(shown)]
            middle = (finite.min() + finite.max()) / 2 if finite.size else 0
            for (r, q), v in np.ndenumerate(grid):
                dark = not np.isfinite(v) or v < middle  # viridis is dark at the low end
                ax.text(q, r, fmt(v), ha="center", va="center", fontsize=8, color="white" if dark else "black")
    # window on the input (cells outside the image are padding: drawn hatched)
    ax_in = axes[0]
    ax_in.set_xlim(min(-0.5, cols[0] - 0.5), max(image.shape[1] - 0.5, cols[-1] + 0.5))
    ax_in.set_ylim(max(image.shape[0] - 0.5, rows[-1] + 0.5), min(-0.5, rows[0] - 0.5))
    for a, r in enumerate(rows):
        for b, q in enumerate(cols):
            pad = expl.padding[a, b]
            ax_in.add_patch(
                Rectangle(
                    (q - 0.5, r - 0.5),
                    1,
                    1,
                    fill=pad,
                    hatch="//" if pad else None,
                    facecolor="lightgray" if pad else "none",
                    edgecolor="red",
                    lw=2,
                )
            )
    ax_out = axes[-1]
    ax_out.add_patch(Rectangle((expl.at[2] - 0.5, expl.at[1] - 0.5), 1, 1, fill=False, edgecolor="red", lw=3))
    text = expl.arithmetic() if isinstance(expl, ConvExplanation) else str(expl).split("\n", 1)[1]
    fig.text(0.5, -0.02, _wrap(text, 140), ha="center", va="top", family="monospace", fontsize=9)
    fig.suptitle(str(expl).split("\n")[0])
    return save_figure(fig, path)


def _wrap(text: str, width: int) -> str:
    out, line = [], ""
    for word in text.split(" "):
        if len(line) + len(word) + 1 > width:
            out.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return "\n".join([*out, line])


def feature_maps_figure(
    trace: list[tuple[str, np.ndarray]], kernels: dict[str, np.ndarray], path: Path, title: str, max_channels: int = 8
) -> Path:
    """Feature maps (first channels) of every conv/pool output, plus each conv layer's filters."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cnnlab.plots import save_figure

    maps = [(name, a) for name, a in trace if a.ndim == 3]
    rows = len(maps) + len(kernels)
    fig, axes = plt.subplots(rows, max_channels, figsize=(1.7 * max_channels, 1.9 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    r = 0
    for name, a in maps:
        for c in range(min(max_channels, a.shape[2])):
            axes[r, c].imshow(a[..., c], cmap="gray")
            axes[r, c].set_title(f"{name}[{c}] {a.shape[0]}x{a.shape[1]}", fontsize=7)
        r += 1
    for name, k in kernels.items():
        for f in range(min(max_channels, k.shape[3])):
            axes[r, f].imshow(k[:, :, 0, f], cmap="coolwarm")
            axes[r, f].set_title(f"{name} filter {f} (in 0)", fontsize=7)
        r += 1
    fig.suptitle(title)
    return save_figure(fig, path)


# ----------------------------------------------------------------- HTML
# One view, two wrappers: :func:`page_html` (a whole page, for ``--html``) and
# :func:`page_fragment` (a ``<div>`` for a notebook output). Everything the script touches is
# found inside its own root element, and every id carries the root's unique id, so several
# outputs in one notebook do not clash; nothing is fetched from the network.
def page_html(page: dict[str, Any]) -> str:
    """A self-contained page (inline CSS, JS and data). Its parts keep plain ids
    (``#input``, ``#output``, ``#arith``, ...) for links and tests."""
    body = _fragment(page, root_id="cnnlab-page", prefix="")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>cnnlab explain</title>\n'
        "<style>body{font-family:system-ui,sans-serif;margin:1.2em;color:#222}</style></head><body>\n"
        f"{body}\n</body></html>\n"
    )


def page_fragment(page: dict[str, Any], root_id: str | None = None) -> str:
    """The same view as one ``<div>`` to embed (a notebook output): ids are prefixed with
    ``root_id`` (a fresh ``cnnlab-<hex>`` by default), e.g. ``#cnnlab-1a2b-input``."""
    root_id = root_id or f"cnnlab-{uuid.uuid4().hex[:12]}"
    if not re.fullmatch(r"[A-Za-z][\w-]*", root_id):
        raise InvalidArgumentError(
            f"page_fragment: root_id must be an HTML id (a letter, then letters, digits, _ or -), received {root_id!r}."
        )
    return _fragment(page, root_id=root_id, prefix=f"{root_id}-")


def write_html(path: Path, page: dict[str, Any]) -> Path:
    """Write :func:`page_html` to ``path`` (atomically)."""
    html = page_html(page)
    with atomic_path(path, suffix=".html") as tmp:
        tmp.write_text(html, encoding="utf-8")
    return path


def _fragment(page: dict[str, Any], root_id: str, prefix: str) -> str:
    data = json.dumps(page, separators=(",", ":"), allow_nan=False)
    data = data.replace("</", "<\\/")  # a title holding "</script>" must not end the script
    return (
        _FRAGMENT.replace("__ROOT__", root_id)
        .replace("__PREFIX__", prefix)
        .replace("__STYLE__", _STYLE.replace("#__ROOT__", f"#{root_id}"))
        .replace("__DATA__", data)
    )


def _json_grid(a: np.ndarray) -> Any:
    """Arrays for the page as nested lists: -inf, inf and nan as strings (JSON has none of them);
    float32 values in their shortest exact form ("0.1", not "0.10000000149011612"), which keeps
    notebook outputs small and reads back to the same float32."""
    a = np.asarray(a)
    if a.dtype == np.float32:
        return _nested(a, lambda v: float(str(v)))
    return _nested(a, float)


def _nested(a: np.ndarray, convert: Any) -> Any:
    if a.ndim == 0:
        v = a[()]
        return fmt(v) if not np.isfinite(v) else convert(v)
    return [_nested(v, convert) for v in a]


def layer_page_data(
    kind: str,
    x: np.ndarray,
    out: np.ndarray,
    params: dict[str, Any],
    title: str,
    kernel: np.ndarray | None = None,
    bias: np.ndarray | None = None,
) -> dict[str, Any]:
    """Data for one window-op panel: ``x: (H, W, C)``, ``out: (Ho, Wo, F)``, ``kernel: (kh, kw, C, F)``."""
    return {
        "kind": kind,
        "title": title,
        "x": _json_grid(x),
        "out": _json_grid(out),
        "kernel": None if kernel is None else _json_grid(kernel),
        "bias": None if bias is None else [float(b) for b in bias],
        **params,
    }


def view_page_data(view: dict[str, Any]) -> dict[str, Any]:
    """Panel data from :func:`cnnlab.explain.window_view`'s arrays."""
    params = {key: view[key] for key in ("size", "strides", "dilation", "pads", "activation")}
    return layer_page_data(view["kind"], view["x"], view["out"], params, view["title"], view["kernel"], view["bias"])


def window_layer_panel(layer: Any, x: np.ndarray, title: str | None = None) -> dict[str, Any]:
    """Page data for a Conv2D or pooling ``layer`` applied to one sample ``x: (H, W, C)``."""
    view = window_view(layer, x, layer(x[None])[0])
    if title is not None:
        view["title"] = title
    return view_page_data(view)


def model_page(
    model: Any,
    image: np.ndarray,
    title: str,
    class_names: list[str] | None = None,
    true_class: int | None = None,
    overlays: list[dict[str, Any]] | None = None,
    weights: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Page data for the whole-model view of one ``image: (H, W, C)``: a detailed panel per
    Conv2D/pooling layer (click a cell: its arithmetic), and ``"model"``: the input image, every
    layer as a stage (window layers with the feature maps of all their channels and the
    receptive field of their cells, from :func:`cnnlab.explain.receptive_fields`), the flatten
    order, and the last layer's outputs (class probabilities after softmax).

    ``overlays``: ``[{"name": "Grad-CAM", "heatmap": (H, W) values in [0, 1]}, ...]`` drawn over the
    input image on request (a checkbox each); attribution methods fill it. ``weights``: the
    "how did this weight change" panel, from :func:`weight_change_panel`."""
    from cnnlab.engine.graph import expand
    from cnnlab.explain import receptive_fields
    from cnnlab.layers import AveragePooling2D, Conv2D, Flatten, MaxPooling2D

    graph = expand(model)
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise InvalidArgumentError(
            f"model page: model {model.name!r} has {len(graph.inputs)} inputs and {len(graph.outputs)} outputs; the "
            "page shows models with one image in and one output."
        )
    x = np.asarray(image)
    if model.built and x.shape == tuple(model.input_shape[1:]):
        x = x[None]
    x = model.check_input(x) if hasattr(model, "check_input") else x
    parts = getattr(x, "parts", None)
    x = np.asarray(parts[0] if parts is not None else x)
    # every layer call in the order the model runs them (a graph model's in topological order),
    # nested models looked into, each with its input(s) and output for this one image
    slots: list[Any] = [None] * graph.slots
    slots[graph.inputs[0]] = x
    names = {graph.inputs[0]: "input"}
    seen: dict[int, int] = {}
    calls: list[tuple[Any, str, list[int], int]] = []
    for node in graph.nodes:
        layer = node.layer
        args = [slots[s] for s in node.inputs]
        slots[node.output] = layer(args if node.list_call else args[0])
        k = seen.get(id(layer), 0)
        seen[id(layer)] = k + 1
        label = layer.name if k == 0 else f"{layer.name}[{k}]"
        names[node.output] = label
        calls.append((layer, label, list(node.inputs), node.output))
    readers: dict[int, list[Any]] = {}
    for layer, _, ins, _ in calls:
        for s in ins:
            readers.setdefault(s, []).append(layer)
    fields = receptive_fields(model)
    chain = all(
        len(ins) == 1 and ins[0] == (calls[k - 1][3] if k else graph.inputs[0])
        for k, (_, _, ins, _) in enumerate(calls)
    )
    panels: list[dict[str, Any]] = []
    stages: list[dict[str, Any]] = []
    for layer, label, ins, out_slot in calls:
        x_in, out = slots[ins[0]][0] if len(ins) == 1 else None, slots[out_slot][0]
        stage: dict[str, Any] = {
            "name": label,
            "type": type(layer).__name__,
            "shape": list(out.shape),
            "panel": None,
        }
        if not chain:  # a graph: say where each call's input comes from
            stage["from"] = [names[s] for s in ins]
        if isinstance(layer, (Conv2D, MaxPooling2D, AveragePooling2D)) and x_in is not None:
            panel = view_page_data(window_view(layer, x_in, out))
            if seen[id(layer)] > 1:  # a shared layer: one panel per call, each with that call's input
                panel["title"] = f"{label} ({type(layer).__name__})"
            field = fields.get(layer.name)
            panel["rf"] = None if field is None else [list(field[0]), list(field[1])]
            nxt = readers.get(out_slot, [])
            if len(nxt) == 1 and isinstance(nxt[0], Flatten):
                panel["flatten"] = nxt[0].name
            stage["panel"] = len(panels)
            panels.append(panel)
        if isinstance(layer, Flatten) and x_in is not None and x_in.ndim == 3:
            h, w, c = x_in.shape
            stage["note"] = (
                f"{layer.name} reads its ({h}, {w}, {c}) input row by row, channels innermost: "
                f"output index = (i·{w} + j)·{c} + c, so outputs 0..{c - 1} are the {c} channels at (0, 0), "
                f"outputs {c}..{2 * c - 1} those at (0, 1), ..."
            )
        stages.append(stage)
    producer = next((c for c in calls if c[3] == graph.outputs[0]), None)
    final = producer[0] if producer else None
    values = slots[graph.outputs[0]][0]
    outputs = None
    if values.ndim == 1:
        activation = getattr(final, "activation", None)
        outputs = {
            "name": final.name if final is not None else "output",
            "activation": activation if isinstance(activation, str) else None,
            "values": [float(v) for v in values],
            "classes": list(class_names) if class_names is not None and len(class_names) == len(values) else None,
            "true": None if true_class is None else int(true_class),
        }
    return {
        "title": title,
        "layers": panels,
        "model": {
            "input": _json_grid(x[0]),
            "stages": stages,
            "outputs": outputs,
            "overlays": [{"name": o["name"], "heatmap": _json_grid(np.asarray(o["heatmap"]))} for o in overlays or []],
            "weights": weights,
        },
    }


def default_weight_picks(model: Any) -> list[tuple[str, str]]:
    """The weights the model page explains by default, as ``(layer name, "kernel" | "bias")``: the
    kernel and bias of the first Conv2D and of the last Dense layer (of the first Dense when the
    model has no Conv2D), trainable ones only; :func:`cnnlab.explain_gradient` writes the terms
    for exactly these two layer types."""
    leaves = [(layer, on) for layer, on in model._leaves() if type(layer).__name__ in ("Conv2D", "Dense")]
    convs = [pair for pair in leaves if type(pair[0]).__name__ == "Conv2D"]
    denses = [pair for pair in leaves if type(pair[0]).__name__ == "Dense"]
    chosen = [*convs[:1], *(denses[-1:] if convs else denses[:1])]
    return [
        (layer.name, weight)
        for layer, on in chosen
        for weight in ("kernel", "bias")
        if weight in layer._weights and weight in layer.trainable_keys(on)
    ]


def weight_change_panel(
    model: Any, x: np.ndarray, y: np.ndarray, note: str, picks: list[tuple[str, str]] | None = None
) -> dict[str, Any]:
    """The model page's "how did this weight change" panel: :func:`cnnlab.explain_gradient` on the
    batch ``x: (N, H, W, C)``, ``y`` (labels as the model's loss takes them) for each ``(layer name,
    weight)`` of ``picks`` (default :func:`default_weight_picks`), each at the entry with the largest
    |gradient|; the text of each result is stored as it prints. ``note`` says what the batch is.
    The model must be compiled (its optimizer makes the update); nothing of it changes."""
    from cnnlab.backprop import explain_gradient

    choices = []
    for layer_name, weight in default_weight_picks(model) if picks is None else picks:
        result = explain_gradient(model, x, y, layer_name=layer_name, weight=weight, at=None)
        choices.append(
            {
                "label": f"{layer_name}.{weight}[{', '.join(map(str, result.at))}]",
                "layer": layer_name,
                "weight": weight,
                "at": list(result.at),
                "text": str(result),
            }
        )
    return {"note": note, "choices": choices}


# ----------------------------------------------------------------- notebook display
def explanation_html(expl: Explanation) -> str:
    """An explanation as a notebook shows it (``_repr_html_``): the arithmetic as text, the
    window's grids (for Conv2D: window, kernel and products per input channel; for pooling:
    the window with the winner marked; for Dense: the largest contributions), and for Conv2D
    and pooling the interactive view of the whole layer, opened at the explained cell."""
    parts = [f'<div class="cnnlab-expl"><pre style="{_PRE}">{html.escape(str(expl))}</pre>']
    if isinstance(expl, ConvExplanation):
        parts.append(_conv_grids(expl))
    elif isinstance(expl, PoolExplanation):
        parts.append(_pool_grids(expl))
    elif isinstance(expl, DenseExplanation):
        parts.append(_dense_table(expl))
    elif isinstance(expl, StepExplanation) and expl.terms:
        parts.append(_terms_table(expl))
    view = getattr(expl, "_view", None)
    if view is not None:
        page = {"title": f"{view['title']}: the whole layer", "layers": [view_page_data(view)], "at": list(expl.at[1:])}
        parts.append(
            '<details open><summary style="cursor:pointer">interactive view: click any output cell</summary>'
            f"{page_fragment(page)}</details>"
        )
    parts.append("</div>")
    return "".join(parts)


def _terms_table(expl: StepExplanation, limit: int = 64) -> str:
    """The numbers that enter a formula explanation: name, value, where each comes from."""
    head = "".join(f'<th style="{_CELL}">{h}</th>' for h in ("term", "value", "from"))
    rows = [
        "<tr>"
        + "".join(f'<td style="{_CELL}">{html.escape(str(v))}</td>' for v in (t["name"], fmt(t["value"]), t["source"]))
        + "</tr>"
        for t in expl.terms[:limit]
    ]
    more = (
        f'<div style="font-size:.8em">... {len(expl.terms) - limit} more in .terms</div>'
        if len(expl.terms) > limit
        else ""
    )
    return f'<table style="border-collapse:collapse;margin:.3em 0"><tr>{head}</tr>{"".join(rows)}</table>{more}'


_PRE = "background:#f6f6f6;padding:.6em;white-space:pre-wrap;font-size:.9em;margin:.3em 0"
_CELL = "border:1px solid #bbb;padding:2px 6px;text-align:center;font-size:.8em;min-width:2.2em"
_PAD = "background:repeating-linear-gradient(45deg,#eee,#eee 4px,#ccc 4px,#ccc 8px);color:#777"
#: input channels whose grids are drawn; the text above always has every channel
GRID_CHANNELS = 4


def _html_grid(a: np.ndarray, title: str, pad: np.ndarray | None = None, mark: tuple[int, int] | None = None) -> str:
    rows = []
    for r, row in enumerate(a):
        cells = []
        for q, v in enumerate(row):
            style = _CELL
            if pad is not None and pad[r, q]:
                style += ";" + _PAD
            if mark == (r, q):
                style += ";background:#ffd54f;font-weight:bold"
            cells.append(f'<td style="{style}">{html.escape(fmt(v))}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f'<div style="display:inline-block;vertical-align:top;margin:0 1.2em .4em 0">'
        f'<div style="font-size:.8em;color:#555">{html.escape(title)}</div>'
        f'<table style="border-collapse:collapse">{"".join(rows)}</table></div>'
    )


def _conv_grids(expl: ConvExplanation) -> str:
    channels = expl.window.shape[2]
    blocks = []
    for c in range(min(channels, GRID_CHANNELS)):
        suffix = f", channel {c}" if channels > 1 else ""
        blocks.append(
            "<div>"
            + _html_grid(expl.window[..., c], f"window{suffix}", expl.padding)
            + _html_grid(expl.kernel[..., c], f"kernel{suffix}")
            + _html_grid(expl.products[..., c], f"window × kernel{suffix}", expl.padding)
            + "</div>"
        )
    if channels > GRID_CHANNELS:
        blocks.append(f'<div style="font-size:.8em;color:#555">... and {channels - GRID_CHANNELS} more channels</div>')
    return "".join(blocks)


def _pool_grids(expl: PoolExplanation) -> str:
    title = "window (winner marked)" if expl.kind == "max" else "window"
    return _html_grid(expl.window, title, expl.padding, expl.winner if expl.kind == "max" else None)


def _dense_table(expl: DenseExplanation) -> str:
    head = "".join(f'<th style="{_CELL}">{h}</th>' for h in ("input m", "x[m]", "w[m]", "x[m]×w[m]"))
    rows = [
        "<tr>"
        + "".join(f'<td style="{_CELL}">{v}</td>' for v in (t["index"], *map(fmt, (t["x"], t["w"], t["product"]))))
        + "</tr>"
        for t in expl.top
    ]
    if expl.rest_count:
        rows.append(
            f'<tr><td colspan="3" style="{_CELL}">the other {expl.rest_count}</td><td style="{_CELL}">{fmt(expl.rest)}</td></tr>'
        )
    rows.append(f'<tr><td colspan="3" style="{_CELL}">bias</td><td style="{_CELL}">{fmt(expl.bias)}</td></tr>')
    rows.append(
        f'<tr><td colspan="3" style="{_CELL}"><b>sum</b></td><td style="{_CELL}"><b>{fmt(expl.pre_activation)}</b></td></tr>'
    )
    return f'<table style="border-collapse:collapse;margin:.3em 0"><tr>{head}</tr>{"".join(rows)}</table>'


_STYLE = r"""
#__ROOT__{font-family:system-ui,sans-serif;color:#222}
#__ROOT__:focus{outline:none}
#__ROOT__ .cl-title{font-size:1.2em;font-weight:bold;margin:.4em 0}
#__ROOT__ .cl-panels{display:flex;gap:2em;flex-wrap:wrap;align-items:flex-start}
#__ROOT__ h3{font-size:1em;margin:.5em 0 .2em}
#__ROOT__ table.grid{border-collapse:collapse;margin:.3em 0}
#__ROOT__ table.grid td{width:2.6em;height:2.1em;text-align:center;border:1px solid #bbb;font-size:.75em;cursor:default;padding:0}
#__ROOT__ table.small td{width:11px;height:11px;min-width:11px;padding:0;font-size:0;border-color:#ddd}
#__ROOT__ td.pad{background:repeating-linear-gradient(45deg,#eee,#eee 4px,#ccc 4px,#ccc 8px);color:#777}
#__ROOT__ td.win{outline:3px solid #d62728;outline-offset:-3px}
#__ROOT__ td.winner{background:#ffd54f!important}
#__ROOT__ table.out td{cursor:pointer}
#__ROOT__ td.sel{outline:3px solid #d62728;outline-offset:-3px}
#__ROOT__ pre.cl-arith{background:#f6f6f6;padding:.8em;white-space:pre-wrap;max-width:70em;font-size:.9em}
#__ROOT__ .note{color:#666;font-size:.85em}
#__ROOT__ select,#__ROOT__ button{margin:.2em}
#__ROOT__ .cl-model{display:flex;gap:1.5em;align-items:flex-start;flex-wrap:wrap}
#__ROOT__ .cl-stage{margin:.3em 0 .6em}
#__ROOT__ .cl-stage-title{font-size:.85em;color:#333;margin-bottom:.2em}
#__ROOT__ .cl-maps{display:flex;flex-wrap:wrap;gap:3px;max-width:60em}
#__ROOT__ .cl-maps canvas{border:1px solid #ccc;cursor:crosshair;image-rendering:pixelated}
#__ROOT__ .cl-maps canvas.picked{border-color:#d62728;outline:2px solid #d62728}
#__ROOT__ .cl-rf{position:absolute;border:2px solid #d62728;box-sizing:border-box;pointer-events:none;display:none}
#__ROOT__ .cl-prob{display:flex;align-items:center;gap:.5em;font-size:.85em;margin:1px 0}
#__ROOT__ .cl-prob .bar{height:.9em;background:#4c78a8}
#__ROOT__ .cl-prob.pred{font-weight:bold}
#__ROOT__ .cl-side{min-width:16em}
#__ROOT__ pre.cl-weight-text{background:#f6f6f6;padding:.8em;white-space:pre-wrap;max-width:70em;font-size:.85em}
"""

_FRAGMENT = r"""<div class="cnnlab-view" id="__ROOT__" tabindex="0">
<style>__STYLE__</style>
<div class="cl-title" id="__PREFIX__title"></div>
<div class="cl-model" id="__PREFIX__model"></div>
<div class="cl-controls" id="__PREFIX__controls"></div>
<div class="cl-panels" id="__PREFIX__panels"></div>
<p class="note">Click or hover an output cell to see its window and arithmetic; arrow keys move between cells.
Hatched cells are padding.</p>
<pre class="cl-arith" id="__PREFIX__arith"></pre>
<div class="cl-weights" id="__PREFIX__weights"></div>
<script>
(function(){
const root = document.getElementById("__ROOT__"), P = "__PREFIX__";
const $ = s => root.querySelector(s), $$ = s => root.querySelectorAll(s);
const PAGE = __DATA__;
const num = v => (v === "-inf" ? -Infinity : v === "inf" ? Infinity : v === "nan" ? NaN : v);
function fmt(v){ v = num(v); if (Number.isNaN(v)) return "nan"; if (!isFinite(v)) return v < 0 ? "-inf" : "inf";
  if (Number.isInteger(v) && Math.abs(v) < 1e15) return String(v); return v.toFixed(4); }
let cur = null, sel = [0, 0, 0];
function color(v, lo, hi){ v = num(v); if (!isFinite(v)) return "#fff";
  const t = hi > lo ? (v - lo) / (hi - lo) : 0.5;
  return `rgb(${Math.round(255 - 215 * t)},${Math.round(255 - 175 * t)},${Math.round(255 - 95 * t)})`; }
function grid(a, ch, cls, pads){ // a: H x W x C nested lists; pads: extra ring of padding cells
  const H = a.length, W = a[0].length; const t = document.createElement("table");
  t.className = "grid " + cls + ((H > 16 || W > 16) ? " small" : "");
  const vals = a.flat().map(c => num(c[ch])).filter(isFinite);
  const lo = Math.min(...vals), hi = Math.max(...vals);
  const [pt, pb, pl, pr] = pads || [0, 0, 0, 0];
  for (let r = -pt; r < H + pb; r++){ const tr = t.insertRow();
    for (let q = -pl; q < W + pr; q++){ const td = tr.insertCell(); td.dataset.r = r; td.dataset.q = q;
      if (r < 0 || q < 0 || r >= H || q >= W){ td.className = "pad"; td.textContent = cur.kind === "max" ? "-inf" : "0"; }
      else { const v = a[r][q][ch]; td.textContent = fmt(v); td.style.background = color(v, lo, hi);
        if (hi > lo && (num(v) - lo) / (hi - lo) > 0.55) td.style.color = "#fff";
        td.title = `[${r}, ${q}] = ${fmt(v)}`; } } }
  return t; }
function windowOf(i, j){ const c = cur; const rows = [], cols = [];
  for (let d = 0; d < c.size[0]; d++) rows.push(i * c.strides[0] + d * c.dilation[0] - c.pads[0]);
  for (let d = 0; d < c.size[1]; d++) cols.push(j * c.strides[1] + d * c.dilation[1] - c.pads[2]);
  return [rows, cols]; }
function explainCell(i, j, f){ const c = cur, x = c.x, H = x.length, W = x[0].length, C = x[0][0].length;
  const [rows, cols] = windowOf(i, j); const inside = (r, q) => r >= 0 && q >= 0 && r < H && q < W;
  let lines = [`${c.title} output[${i}, ${j}, ${f}]: window rows ${rows[0]}..${rows[rows.length-1]}, columns ${cols[0]}..${cols[cols.length-1]}`];
  let winner = null;
  if (c.kind === "conv"){ let total = 0; const parts = [];
    for (let ch = 0; ch < C; ch++){ const terms = []; let s = 0;
      rows.forEach((r, a) => cols.forEach((q, b) => { const v = inside(r, q) ? num(x[r][q][ch]) : 0;
        const w = c.kernel[a][b][ch][f]; s += v * w; terms.push(`${fmt(v)}×${fmt(w)}`); }));
      parts.push(s); total += s;
      lines.push((C > 1 ? `  channel ${ch}: ` : "  ") + terms.join(" + ") + (C > 1 ? ` = ${fmt(s)}` : ""));
    }
    const b = c.bias ? c.bias[f] : 0, pre = total + b;
    if (C > 1) lines.push(`  total: ${parts.map(fmt).join(" + ")} + ${fmt(b)} = ${fmt(pre)}`);
    else lines[1] += ` + ${fmt(b)} = ${fmt(pre)}`;
    if (c.activation && c.activation !== "linear") lines.push(`  ${c.activation}(${fmt(pre)}) = ${fmt(c.out[i][j][f])}`);
  } else { const vals = [];
    rows.forEach(r => cols.forEach(q => vals.push(inside(r, q) ? num(x[r][q][f]) : (c.kind === "max" ? -Infinity : null))));
    if (c.kind === "max"){ let best = 0; vals.forEach((v, k) => { if (v > vals[best]) best = k; });
      winner = [rows[Math.floor(best / cols.length)], cols[best % cols.length]];
      lines.push(`  max(${vals.map(fmt).join(", ")}) = ${fmt(c.out[i][j][f])}`);
      lines.push(`  winner: input[${winner[0]}, ${winner[1]}] (first maximum in row-major order)`);
    } else { const real = vals.filter(v => v !== null);
      lines.push(`  (${real.map(fmt).join(" + ")}) / ${real.length} = ${fmt(c.out[i][j][f])}`); }
  }
  lines.push(`  output = ${fmt(c.out[i][j][f])}`);
  return {rows, cols, winner, text: lines.join("\n")}; }
function select(i, j){ const c = cur; const Ho = c.out.length, Wo = c.out[0].length;
  i = Math.max(0, Math.min(Ho - 1, i)); j = Math.max(0, Math.min(Wo - 1, j)); sel = [i, j, sel[2], sel[3]];
  const f = sel[2], e = explainCell(i, j, f);
  $$("td.win,td.sel,td.winner").forEach(td => td.classList.remove("win", "sel", "winner"));
  $$(".cl-input td").forEach(td => { const r = +td.dataset.r, q = +td.dataset.q;
    if (e.rows.includes(r) && e.cols.includes(q)) td.classList.add("win");
    if (e.winner && e.winner[0] === r && e.winner[1] === q) td.classList.add("winner"); });
  const cell = $(`.cl-output td[data-r="${i}"][data-q="${j}"]`); if (cell) cell.classList.add("sel");
  let text = e.text;
  if (c.flatten){ const Wo = c.out[0].length, F = c.out[0][0].length, k = (i * Wo + j) * F + f;
    text += `\n  ${c.flatten}: this value is input ${k} of the next layer (index = (i·${Wo} + j)·${F} + c = (${i}·${Wo} + ${j})·${F} + ${f}, row-major)`; }
  $(".cl-arith").textContent = text;
  if (PAGE.model) receptiveField(i, j); }
// ---- the whole-model overview (PAGE.model): input image, every channel of every window layer,
// the flatten order, the output probabilities; overlays (Grad-CAM, saliency) when the data has them
function mapCanvas(a, ch, scale){ const H = a.length, W = a[0].length, cv = document.createElement("canvas");
  cv.width = W * scale; cv.height = H * scale; const g = cv.getContext("2d");
  const vals = a.flat().map(c => num(c[ch])).filter(isFinite); const lo = Math.min(...vals), hi = Math.max(...vals);
  for (let r = 0; r < H; r++) for (let q = 0; q < W; q++){ const v = num(a[r][q][ch]);
    const t = isFinite(v) && hi > lo ? (v - lo) / (hi - lo) : 0; const gray = Math.round(255 * t);
    g.fillStyle = `rgb(${gray},${gray},${gray})`; g.fillRect(q * scale, r * scale, scale, scale); }
  cv.dataset.scale = scale; return cv; }
const el = (tag, cls, text) => { const e = document.createElement(tag); if (cls) e.className = cls; if (text !== undefined) e.textContent = text; return e; };
let inputScale = 1;
function receptiveField(i, j){ const box = $(".cl-rf"), note = $(".cl-rf-text"), M = PAGE.model; if (!box) return;
  if (!cur.rf){ box.style.display = "none"; note.textContent = "receptive field: not known for this layer"; return; }
  const H = M.input.length, W = M.input[0].length, [R, Q] = cur.rf;
  const r0 = R[0] * i + R[1], r1 = r0 + R[2] - 1, c0 = Q[0] * j + Q[1], c1 = c0 + Q[2] - 1;
  const a = Math.max(0, r0), b = Math.min(H - 1, r1), c = Math.max(0, c0), d = Math.min(W - 1, c1);
  Object.assign(box.style, {display: "block", top: `${a * inputScale}px`, left: `${c * inputScale}px`,
    height: `${(b - a + 1) * inputScale}px`, width: `${(d - c + 1) * inputScale}px`});
  Object.assign(box.dataset, {rows: `${r0}..${r1}`, cols: `${c0}..${c1}`});
  note.textContent = `receptive field of ${cur.title} output[${i}, ${j}]: input rows ${r0}..${r1}, columns ${c0}..${c1}` +
    ` (${R[2]}×${Q[2]} pixels${r0 < 0 || c0 < 0 || r1 >= H || c1 >= W ? ", part of it padding" : ""})`; }
function pick(k, ch, i, j){ cur = PAGE.layers[k]; sel = [i, j, ch, 0]; controls(); render();
  $$(".cl-maps canvas.picked").forEach(cv => cv.classList.remove("picked"));
  const cv = $(`.cl-maps canvas[data-layer="${k}"][data-channel="${ch}"]`); if (cv) cv.classList.add("picked"); }
function overview(){ const M = PAGE.model; if (!M) return; const box = $(".cl-model");
  const side = el("div", "cl-side"), main = el("div", "cl-stages"); box.appendChild(side); box.appendChild(main);
  const H = M.input.length, W = M.input[0].length; inputScale = Math.max(2, Math.floor(224 / Math.max(H, W)));
  side.appendChild(el("h3", "", `input (${H}×${W})`));
  const wrap = el("div", "cl-input-image"); wrap.style.position = "relative"; wrap.style.display = "inline-block";
  wrap.appendChild(mapCanvas(M.input, 0, inputScale));
  const over = document.createElement("canvas"); over.width = W * inputScale; over.height = H * inputScale; over.className = "cl-overlay";
  Object.assign(over.style, {position: "absolute", left: "0", top: "0", pointerEvents: "none"}); wrap.appendChild(over);
  wrap.appendChild(el("div", "cl-rf")); side.appendChild(wrap); side.appendChild(el("div", "note cl-rf-text", "click any cell of a feature map"));
  (M.overlays || []).forEach((ov, k) => { const lab = el("label", "note"), cb = document.createElement("input");
    cb.type = "checkbox"; cb.className = "cl-overlay-toggle"; cb.dataset.overlay = k; lab.appendChild(cb); lab.append(" show " + ov.name);
    cb.onchange = () => { $$(".cl-overlay-toggle").forEach(o => { if (o !== cb) o.checked = false; });
      const g = over.getContext("2d"); g.clearRect(0, 0, over.width, over.height); if (!cb.checked) return;
      const hm = ov.heatmap; for (let r = 0; r < hm.length; r++) for (let q = 0; q < hm[0].length; q++){
        g.fillStyle = `rgba(255,${Math.round(200 * (1 - hm[r][q]))},0,${0.6 * hm[r][q]})`;
        g.fillRect(q * inputScale, r * inputScale, inputScale, inputScale); } };
    side.appendChild(el("br")); side.appendChild(lab); });
  if (M.outputs){ const O = M.outputs; side.appendChild(el("h3", "", `${O.name}: ${O.activation === "softmax" ? "class probabilities" : "outputs"}`));
    const best = O.values.indexOf(Math.max(...O.values)), top = Math.max(...O.values.map(Math.abs)) || 1;
    O.values.forEach((v, k) => { const row = el("div", "cl-prob" + (k === best ? " pred" : "")); row.dataset.k = k;
      const name = O.classes ? O.classes[k] : `unit ${k}`;
      row.appendChild(el("span", "", `${name}${k === O.true ? " (true)" : ""}`)); row.firstChild.style.minWidth = "8em";
      const bar = el("span", "bar"); bar.style.width = `${Math.round(120 * Math.abs(v) / top)}px`; row.appendChild(bar);
      row.appendChild(el("span", "value", fmt(v))); side.appendChild(row); }); }
  M.stages.forEach(st => { const d = el("div", "cl-stage"); d.appendChild(el("div", "cl-stage-title", `${st.from ? st.from.join(" + ") + " → " : ""}${st.name} (${st.type}) → ${JSON.stringify(st.shape)}`));
    if (st.panel !== null && st.panel !== undefined){ const L = PAGE.layers[st.panel], h = L.out.length, F = L.out[0][0].length;
      const scale = Math.max(1, Math.floor(64 / h)), maps = el("div", "cl-maps");
      for (let ch = 0; ch < F; ch++){ const cv = mapCanvas(L.out, ch, scale); cv.dataset.layer = st.panel; cv.dataset.channel = ch;
        cv.title = `${L.title} channel ${ch}`;
        cv.addEventListener("click", ev => pick(st.panel, ch, Math.floor(ev.offsetY / scale), Math.floor(ev.offsetX / scale)));
        maps.appendChild(cv); }
      d.appendChild(maps); }
    if (st.note) d.appendChild(el("div", "note", st.note));
    main.appendChild(d); }); }
function render(){ const c = cur, panels = $(".cl-panels"); panels.innerHTML = "";
  const C = c.x[0][0].length, F = c.out[0][0].length, f = sel[2];
  const add = (title, node, id) => { const d = document.createElement("div"); d.id = P + id; d.className = "cl-" + id;
    const h = document.createElement("h3"); h.textContent = title; d.appendChild(h); d.appendChild(node); panels.appendChild(d); };
  const inCh = c.kind === "conv" ? (sel[3] || 0) : f;
  add(`input${C > 1 ? " channel " + inCh : ""} (${c.x.length}×${c.x[0].length})`, grid(c.x, inCh, "in", c.pads), "input");
  if (c.kernel){ const k = c.kernel.map(row => row.map(cell => [cell[inCh][f]]));
    add(`kernel${C > 1 ? " channel " + inCh : ""}, filter ${f}`, grid(k, 0, "kern"), "kernel"); }
  const out = grid(c.out, f, "out"); add(`output${F > 1 ? " channel " + f : ""} (${c.out.length}×${c.out[0].length})`, out, "output");
  out.querySelectorAll("td").forEach(td => { const go = () => select(+td.dataset.r, +td.dataset.q);
    td.addEventListener("click", go); td.addEventListener("mouseenter", go); });
  select(sel[0], sel[1]); }
function controls(){ const box = $(".cl-controls"); box.innerHTML = "";
  if (PAGE.layers.length > 1) PAGE.layers.forEach((L, k) => { const b = document.createElement("button");
    b.textContent = L.title; b.id = P + "layer-" + k; b.onclick = () => { cur = L; sel = [0, 0, 0]; controls(); render(); }; box.appendChild(b); });
  const F = cur.out[0][0].length; if (F > 1){ const s = document.createElement("select"); s.id = P + "channel"; s.className = "cl-channel";
    for (let k = 0; k < F; k++) s.add(new Option(`output channel ${k}`, k)); s.value = sel[2];
    s.onchange = () => { sel[2] = +s.value; render(); }; box.appendChild(s); }
  const C = cur.x[0][0].length; if (cur.kind === "conv" && C > 1){ const s = document.createElement("select"); s.id = P + "in-channel"; s.className = "cl-in-channel";
    for (let k = 0; k < C; k++) s.add(new Option(`input channel ${k}`, k)); s.value = sel[3] || 0;
    s.onchange = () => { sel[3] = +s.value; render(); }; box.appendChild(s); } }
// a whole page listens to the document; an embedded view only while it has the focus (a click in it)
(P ? root : document).addEventListener("keydown", ev => { const d = {ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1]}[ev.key];
  if (d){ ev.preventDefault(); select(sel[0] + d[0], sel[1] + d[1]); } });
// ---- "how did this weight change": explain_gradient's text for a few precomputed weights
function weightPanel(){ const W = PAGE.model && PAGE.model.weights; if (!W || !W.choices.length) return; const box = $(".cl-weights");
  box.appendChild(el("h3", "", "How did this weight change in one training step?")); box.appendChild(el("div", "note", W.note));
  const text = el("pre", "cl-weight-text"); const s = document.createElement("select"); s.className = "cl-weight-pick"; s.id = P + "weight-pick";
  W.choices.forEach((c, k) => s.add(new Option(c.label, k))); s.onchange = () => { text.textContent = W.choices[+s.value].text; };
  box.appendChild(s); box.appendChild(text); text.textContent = W.choices[0].text; }
$(".cl-title").textContent = PAGE.title;
overview();
weightPanel();
if (PAGE.layers.length){ cur = PAGE.layers[0]; if (PAGE.at) sel = [PAGE.at[0], PAGE.at[1], PAGE.at[2] || 0]; controls(); render(); }
})();
</script></div>"""


# explanation objects render themselves in notebooks through this (explain does not import views)
Explanation._html_renderer = staticmethod(explanation_html)
