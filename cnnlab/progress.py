"""Keras-style progress output for ``fit`` and ``evaluate``.

``verbose=1``: a bar redrawn in place with ``"\r"``, ending as
``1875/1875 [==============================] - 5s 3ms/step - loss: 0.4936 - accuracy: 0.8230``.
Where the bar is drawn depends on the stream (:func:`stream_kind`):

- a terminal: redrawn at most 10 times a second;
- a Jupyter cell (ipykernel's output stream: no tty, but the front end folds ``"\r"``):
  redrawn at most once a second, so a long epoch leaves a few dozen overwritten lines in
  the saved notebook rather than thousands;
- anything else (a file, a pipe, a CI log): no bar while training, only the final line
  of each epoch, because ``"\r"`` would pile every redraw into one enormous log line.

``verbose=2``: only that final line, without the bar. ``verbose=0``: nothing.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

BAR_WIDTH = 30
#: least time between two redraws of the bar, by :func:`stream_kind`
REDRAW_SECONDS = {"tty": 0.1, "notebook": 1.0}


def stream_kind(stream: TextIO) -> str:
    """``"tty"``, ``"notebook"`` (an ipykernel ``OutStream``) or ``"log"`` (anything else).

    >>> import io
    >>> stream_kind(io.StringIO())
    'log'
    """
    isatty = getattr(stream, "isatty", None)
    try:
        if callable(isatty) and isatty():
            return "tty"
    except (ValueError, OSError):  # a closed or detached stream
        return "log"
    # the stream's class, not "ipykernel in sys.modules": a kernel may also write to a log file
    if type(stream).__module__.split(".")[0] == "ipykernel":
        return "notebook"
    return "log"


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

    def __init__(
        self,
        total: int,
        verbose: int = 1,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.total = total
        self.verbose = verbose
        self.stream = stream or sys.stdout
        self.clock = clock  # injectable so tests can step time
        self.start = clock()
        self._last_draw = 0.0
        self.kind = stream_kind(self.stream)
        #: redrawn in place with "\r" (a terminal or a notebook cell), else only final lines
        self.dynamic = self.kind != "log"

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
        now = self.clock()
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
        if self.verbose != 1 or not self.dynamic or now - self._last_draw < REDRAW_SECONDS[self.kind]:
            return
        self._last_draw = now
        eta = elapsed / max(step, 1) * (self.total - step)
        line = f"{self._bar(step)} - ETA: {format_duration(eta)}{format_metrics(values)}"
        self.stream.write("\r" + line.ljust(100))
        self.stream.flush()
