"""What every explanation object has: the layer, the position, the layer's own output value,
``to_dict()`` (JSON-ready), a readable ``repr`` and Jupyter's rich display; and ``fmt``, the
way the lecture writes numbers. Kept apart so the explanations of every layer family
(:mod:`cnnlab.explain`, :mod:`cnnlab.explain_layers`) build on one base without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np


def fmt(value: float) -> str:
    """Numbers as the lecture writes them: integers without decimals, others with 4.

    >>> fmt(3.0), fmt(-0.24081), fmt(float("-inf")), fmt(float("nan"))
    ('3', '-0.2408', '-inf', 'nan')
    """
    value = float(value)
    if np.isnan(value):
        return "nan"
    if np.isinf(value):
        return "-inf" if value < 0 else "inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.4f}"


def _cells(a: np.ndarray) -> list:
    """Array -> nested lists with -inf/inf/nan as strings (JSON has no infinities or NaN)."""
    return [_cells(v) for v in a] if np.ndim(a) else (fmt(a) if not np.isfinite(a) else float(a))


@dataclass(repr=False)
class Explanation:
    """Common fields of every explanation."""

    layer: str
    kind: str
    at: tuple[int, ...]
    output: float

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in self.__dict__.items():
            if key.startswith("_"):
                continue  # the inline view's arrays (see window_view) are not part of the data
            if isinstance(value, np.ndarray):
                value = _cells(value)
            elif isinstance(value, (np.floating, np.integer)):
                value = value.item()
            elif isinstance(value, tuple):
                value = list(value)
            if isinstance(value, float) and not np.isfinite(value):
                value = fmt(value)  # JSON has no NaN or infinities
            out[key] = value
        out["text"] = str(self)
        return out

    def __repr__(self) -> str:
        # the arithmetic, not a dump of arrays: what a notebook shows as text/plain
        return str(self)

    #: ``renderer(explanation) -> HTML``, set when :mod:`cnnlab.explain_views` is imported
    _html_renderer: ClassVar[Any] = None

    def _repr_html_(self) -> str:
        """Jupyter's rich display: the arithmetic, the window's grids and, for Conv2D and pooling,
        the interactive view of the whole layer (self-contained HTML, nothing fetched)."""
        # set by cnnlab.explain_views, which sits above this module and imports it
        return type(self)._html_renderer(self)
