"""``model.summary()``: Keras 3's layer table."""

from __future__ import annotations

import html
from typing import Any

from cnnlab import config
from cnnlab.layers.base import format_shape


def summary_lines(model: Any) -> list[str]:
    """The lines of Keras 3's ``model.summary()`` for a built model: one row per layer (a nested
    model is one row), then total, trainable and non-trainable parameter counts."""
    widths = (33, 24, 15)
    rows = _rows(model)
    trainable, frozen = _counts(model)

    def line(left: str, mid: str, right: str, fill: str) -> str:
        return left + mid.join(fill * w for w in widths) + right

    def row(cells: tuple[str, str, str], sep: str) -> str:
        texts = [
            f" {cells[0]:<{widths[0] - 2}} ",
            f" {cells[1]:<{widths[1] - 2}} ",
            f" {cells[2]:>{widths[2] - 2}} ",
        ]
        return sep + sep.join(texts) + sep

    out = [
        f'Model: "{model.name}"',
        line("┏", "┳", "┓", "━"),
        row(("Layer (type)", "Output Shape", "Param #"), "┃"),
        line("┡", "╇", "┩", "━"),
    ]
    for i, cells in enumerate(rows):
        # a name too long for its column wraps before "(Type)", as Keras's rich table does
        name, type_name = cells[0].rsplit(" ", 1)
        if len(cells[0]) > widths[0] - 2:
            out.append(row((name, cells[1], cells[2]), "│"))
            out.append(row((type_name, "", ""), "│"))
        else:
            out.append(row(cells, "│"))
        out.append(line("├", "┼", "┤", "─") if i < len(rows) - 1 else line("└", "┴", "┘", "─"))
    itemsize = config.float_dtype().itemsize
    out.append(f" Total params: {model.count_params():,} ({_bytes(model.count_params() * itemsize)})")
    out.append(f" Trainable params: {trainable:,} ({_bytes(trainable * itemsize)})")
    out.append(f" Non-trainable params: {frozen:,} ({_bytes(frozen * itemsize)})")
    return out


def _rows(model: Any) -> list[tuple[str, str, str]]:
    """(``name (Type)``, output shape, parameter count) per layer of a built model."""
    rows = []
    shape = model.input_shape
    for layer in model.layers:
        shape = layer.compute_output_shape(shape)
        rows.append((f"{layer.name} ({type(layer).__name__})", format_shape(shape), f"{layer.count_params():,}"))
    return rows


def _counts(model: Any) -> tuple[int, int]:
    """(trainable, non-trainable) parameter counts."""
    trainable = sum(weight.size for weight, on in model._leaf_weights() if on)
    return trainable, model.count_params() - trainable


def summary_html(model: Any) -> str:
    """The summary table as HTML (a notebook's rich display of a model): the same rows and
    counts as :func:`summary_lines`; an unbuilt model says so."""
    name = html.escape(model.name)
    if not model.built:
        return (
            f'<div><b>Sequential "{name}"</b>: not built yet ({len(model.layers)} layers), so its output shapes '
            "and parameter counts are unknown.</div>"
        )
    cell = "padding:2px 10px;border-bottom:1px solid #ddd;text-align:"
    head = "".join(
        f'<th style="{cell}{align}">{title}</th>'
        for title, align in (("Layer (type)", "left"), ("Output Shape", "left"), ("Param #", "right"))
    )
    body = "".join(
        f'<tr><td style="{cell}left">{html.escape(a)}</td><td style="{cell}left"><code>{html.escape(b)}</code></td>'
        f'<td style="{cell}right">{c}</td></tr>'
        for a, b, c in _rows(model)
    )
    trainable, frozen = _counts(model)
    itemsize = config.float_dtype().itemsize
    counts = (("Total params", trainable + frozen), ("Trainable params", trainable), ("Non-trainable params", frozen))
    totals = "<br>".join(f"{label}: {n:,} ({_bytes(n * itemsize)})" for label, n in counts)
    return (
        f'<div class="cnnlab-summary"><div><b>Model: "{name}"</b></div>'
        f'<table style="border-collapse:collapse;margin:.3em 0"><thead><tr>{head}</tr></thead><tbody>{body}</tbody>'
        f'</table><div style="font-size:.9em">{totals}</div></div>'
    )


def summary_repr(model: Any) -> str:
    """A model as readable text: one line per layer with its output shape and parameters.

    >>> import cnnlab as cl
    >>> print(summary_repr(cl.Sequential([cl.layers.Input((4,)), cl.layers.Dense(2, name="d")], name="m")))
    Sequential "m": 1 layer, 10 parameters
      d (Dense)  (None, 2)  10
    """
    count = len(model.layers)
    layers = f"{count} layer{'s' if count != 1 else ''}"
    if not model.built:
        names = ", ".join(f"{layer.name} ({type(layer).__name__})" for layer in model.layers)
        return f'Sequential "{model.name}": {layers}, not built yet' + (f": {names}" if names else "")
    rows = _rows(model)
    w0 = max(len(r[0]) for r in rows) if rows else 0
    w1 = max(len(r[1]) for r in rows) if rows else 0
    lines = [f'Sequential "{model.name}": {layers}, {model.count_params():,} parameters']
    lines += [f"  {a:<{w0}}  {b:<{w1}}  {c}" for a, b, c in rows]
    return "\n".join(lines)


def _bytes(n: int) -> str:
    """Keras's size suffix: ``56.99 KB``, ``4.38 MB``."""
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.2f} {unit}"
        value /= 1024
    return f"{value:.2f} GB"


def _wrap(text: str, width: int) -> list[str]:
    """Rich's cell layout as Keras's summary shows it: words wrapped at spaces, a word longer than
    the cell cut with "…".

    >>> _wrap("add[0][0], input_layer_1[0][0]", 17)
    ['add[0][0],', 'input_layer_1[0]…']
    """
    lines: list[str] = []
    current = ""
    for word in text.split(" "):
        if len(word) > width:
            word = word[: width - 1] + "…"
        if current and len(current) + 1 + len(word) <= width:
            current += " " + word
        else:
            if current:
                lines.append(current)
            current = word
    lines.append(current)
    return lines


def _sequential_like(model: Any) -> bool:
    """Keras prints a functional model that is a plain chain (one call per layer, one input each)
    in the Sequential layout."""
    seen: set[int] = set()
    for node in model._nodes:
        if len(node.inputs) > 1 or node.list_call or id(node.layer) in seen:
            return False
        seen.add(id(node.layer))
    consumers = [id(t) for node in model._nodes for t in node.inputs]
    return len(consumers) == len(set(consumers)) and len(model._inputs) == 1 and len(model._outputs) == 1


def functional_summary_lines(model: Any) -> list[str]:
    """Keras 3's ``summary()`` of a functional model: the input layers are rows too, and unless the
    graph is a plain chain a fourth column "Connected to" lists ``layer[node][tensor]`` of each
    call's inputs (cells wrapped and cut as Keras's rich table does on an 80-column terminal)."""
    chain = _sequential_like(model)
    widths = (33, 24, 15) if chain else (21, 19, 12, 19)
    header = ("Layer (type)", "Output Shape", "Param #") + (() if chain else ("Connected to",))
    rows = []
    for layer, shape, connected in model._summary_rows():
        kind = "Functional" if getattr(layer, "is_graph_model", False) else type(layer).__name__
        shape_text = format_shape(shape) if isinstance(shape, tuple) else str(shape)
        cells = [f"{layer.name} ({kind})", shape_text, f"{layer.count_params():,}"]
        if not chain:
            cells.append(", ".join(connected) or "-")
        rows.append(cells)

    def line(left: str, mid: str, right: str, fill: str) -> str:
        return left + mid.join(fill * w for w in widths) + right

    def row(cells: list[str], sep: str) -> list[str]:
        columns = [_wrap(text, w - 2) for text, w in zip(cells, widths, strict=True)]
        height = max(len(c) for c in columns)
        out = []
        for k in range(height):
            texts = []
            for col, (lines, w) in enumerate(zip(columns, widths, strict=True)):
                text = lines[k] if k < len(lines) else ""
                texts.append(f" {text:>{w - 2}} " if col == 2 else f" {text:<{w - 2}} ")
            out.append(sep + sep.join(texts) + sep)
        return out

    out = [
        f'Model: "{model.name}"',
        line("┏", "┳", "┓", "━"),
        *row(list(header), "┃"),
        line("┡", "╇", "┩", "━"),
    ]
    for i, cells in enumerate(rows):
        out.extend(row(cells, "│"))
        out.append(line("├", "┼", "┤", "─") if i < len(rows) - 1 else line("└", "┴", "┘", "─"))
    trainable = sum(w.size for w, on in model._leaf_weights() if on)
    total = model.count_params()
    itemsize = config.float_dtype().itemsize
    out.append(f" Total params: {total:,} ({_bytes(total * itemsize)})")
    out.append(f" Trainable params: {trainable:,} ({_bytes(trainable * itemsize)})")
    out.append(f" Non-trainable params: {total - trainable:,} ({_bytes((total - trainable) * itemsize)})")
    return out
