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
