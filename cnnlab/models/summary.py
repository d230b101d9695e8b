"""``model.summary()``: Keras 3's layer table."""

from __future__ import annotations

from typing import Any

from cnnlab import config
from cnnlab.layers.base import format_shape


def summary_lines(model: Any) -> list[str]:
    """The lines of Keras 3's ``model.summary()`` for a built model: one row per layer (a nested
    model is one row), then total, trainable and non-trainable parameter counts."""
    widths = (33, 24, 15)
    rows = []
    shape = model.input_shape
    for layer in model.layers:
        shape = layer.compute_output_shape(shape)
        rows.append((f"{layer.name} ({type(layer).__name__})", format_shape(shape), f"{layer.count_params():,}"))
    trainable = sum(layer.size for layer, on in model._leaf_weights() if on)
    frozen = model.count_params() - trainable

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
