"""Keras-style progress output for ``fit`` and ``evaluate``.

``verbose=1``: a bar redrawn in place (at most ~10 times a second, so notebooks
and terminals are not flooded), ending as
``1875/1875 [==============================] - 5s 3ms/step - loss: 0.4936 - accuracy: 0.8230``.
When the output is not a terminal the bar is drawn once, when the epoch ends.
``verbose=2``: only that final line, without the bar. ``verbose=0``: nothing.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

BAR_WIDTH = 30
REDRAW_SECONDS = 0.1


def format_duration(seconds: float) -> str:
    """Example:

    >>> format_duration(5.4), format_duration(75), format_duration(3700)
    ('5s', '1:15', '1:01:40')
    """
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_per_step(seconds: float) -> str:
    """Example:

    >>> format_per_step(0.003), format_per_step(1.5e-5), format_per_step(2.0)
    ('3ms/step', '15us/step', '2s/step')
    """
    if seconds >= 1:
        return f"{seconds:.0f}s/step"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/step"
    return f"{seconds * 1e6:.0f}us/step"


def format_metrics(values: dict[str, float]) -> str:
    return "".join(f" - {name}: {value:.4f}" for name, value in values.items())


class Progbar:
    """Progress for ``total`` steps; call :meth:`update` after each step."""

    def __init__(self, total: int, verbose: int = 1, stream: TextIO | None = None) -> None:
        self.total = total
        self.verbose = verbose
        self.stream = stream or sys.stdout
        self.start = time.perf_counter()
        self._last_draw = 0.0
        isatty = getattr(self.stream, "isatty", lambda: False)
        self.dynamic = bool(isatty()) or "ipykernel" in sys.modules

    def _bar(self, step: int) -> str:
        width = len(str(self.total))
        done = int(BAR_WIDTH * step / self.total) if self.total else BAR_WIDTH
        if step >= self.total:
            bar = "=" * BAR_WIDTH
        else:
            bar = "=" * max(done - 1, 0) + (">" if done else "") + "." * (BAR_WIDTH - max(done, 1))
            bar = bar[:BAR_WIDTH].ljust(BAR_WIDTH, ".")
        return f"{step:>{width}}/{self.total} [{bar}]"

    def update(self, step: int, values: dict[str, float], finalize: bool = False) -> None:
        if self.verbose == 0:
            return
        now = time.perf_counter()
        elapsed = now - self.start
        if finalize:
            per_step = elapsed / max(step, 1)
            timing = f"{format_duration(elapsed)} {format_per_step(per_step)}"
            line = timing + format_metrics(values)
            if self.verbose == 1:
                line = f"{self._bar(step)} - {line}"
            prefix = "\r" if self.dynamic and self.verbose == 1 else ""
            self.stream.write(f"{prefix}{line}\n")
            self.stream.flush()
            return
        if self.verbose != 1 or not self.dynamic or now - self._last_draw < REDRAW_SECONDS:
            return
        self._last_draw = now
        eta = elapsed / max(step, 1) * (self.total - step)
        line = f"{self._bar(step)} - ETA: {format_duration(eta)}{format_metrics(values)}"
        self.stream.write("\r" + line.ljust(100))
        self.stream.flush()
