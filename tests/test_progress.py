"""The progress bar in a terminal, in a Jupyter cell and in a plain log (captured streams)."""

from __future__ import annotations

import io

import numpy as np
import pytest

import cnnlab as cl
from cnnlab.progress import Progbar, stream_kind


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


class KernelStream(io.StringIO):
    """Stands in for ipykernel.iostream.OutStream: not a tty, but a notebook front end folds '\\r'."""


KernelStream.__module__ = "ipykernel.iostream"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def run_epoch(stream, steps=1000, seconds_per_step=0.01):
    """One epoch of ``steps`` updates, ``seconds_per_step`` apart (10 s in all by default)."""
    clock = Clock()
    bar = Progbar(steps, verbose=1, stream=stream, clock=clock)
    for step in range(1, steps + 1):
        clock.now += seconds_per_step
        bar.update(step, {"loss": 1.0 / step}, finalize=step == steps)
    return stream.getvalue()


def test_stream_kinds():
    assert stream_kind(Tty()) == "tty"
    assert stream_kind(KernelStream()) == "notebook"
    assert stream_kind(io.StringIO()) == "log"
    closed = io.StringIO()
    closed.close()
    assert stream_kind(closed) == "log"


@pytest.mark.parametrize(("stream", "most_redraws"), [(Tty(), 10 / 0.1 + 1), (KernelStream(), 10 / 1.0 + 1)])
def test_redrawn_in_place_at_a_bounded_rate(stream, most_redraws):
    out = run_epoch(stream)
    redraws = out.count("\r") - 1  # the final line also starts with "\r"
    assert 5 <= redraws <= most_redraws
    # everything is one line: the redraws overwrite each other; the final line is kept
    assert out.count("\n") == 1 and out.endswith("\n")
    final = out.rsplit("\r", 1)[1]
    assert final.startswith("1000/1000 [==============================] - 10s 10ms/step - loss: 0.0010")


def test_plain_log_gets_only_the_final_line():
    out = run_epoch(io.StringIO())
    assert "\r" not in out and "ETA" not in out
    assert out == "1000/1000 [==============================] - 10s 10ms/step - loss: 0.0010\n"


def test_verbose_2_is_one_line_everywhere():
    for stream in (Tty(), KernelStream(), io.StringIO()):
        clock = Clock()
        bar = Progbar(4, verbose=2, stream=stream, clock=clock)
        for step in range(1, 5):
            clock.now += 2.0
            bar.update(step, {"loss": 0.5}, finalize=step == 4)
        assert stream.getvalue() == "8s 2s/step - loss: 0.5000\n"


def test_fit_into_a_captured_non_tty_stdout_prints_one_line_per_epoch(capsys):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    model = cl.Sequential([cl.layers.Input((4,)), cl.layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    model.fit(x, y, batch_size=8, epochs=3, verbose=1)
    # a first run on this machine also announces that it compiles the kernels
    lines = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("compiling kernels")]
    assert "\r" not in "".join(lines)
    bars = [line for line in lines if line.startswith("12/12 [")]
    assert [line for line in lines if line.startswith("Epoch")] == ["Epoch 1/3", "Epoch 2/3", "Epoch 3/3"]
    assert len(bars) == 3 and len(lines) == 6
