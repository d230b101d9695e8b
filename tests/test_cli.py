"""The ``cnnlab`` command: the lecture job end to end, the other subcommands, error paths."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import cnnlab as cl
from cnnlab import cli
from cnnlab.datasets import fashion_mnist
from tests.conftest import train_net2

REAL_DATA = not fashion_mnist._missing(fashion_mnist.DEBIAN_DIR)
REPORT_FILES = [
    "confusion_matrices.png",
    "learning_curves.png",
    "misclassified_net2.png",
    "net1.cnnlab",
    "net2.cnnlab",
    "report.html",
    "results.json",
]


@pytest.mark.slow
def test_lecture_quick_on_tiny_data(tiny_data, tmp_path, capsys):
    out = tmp_path / "report"
    assert cli.main(["lecture", "--quick", "--data", str(tiny_data), "--out", str(out), "--verbose", "0"]) == 0
    text = capsys.readouterr().out
    assert "1,149,010" in text and "14,590" in text and "0.0127" in text
    assert "lecture's test accuracy" in text and "0.8505" in text and "0.8707" in text
    assert "(60, 27, 27, 30)" in text and "(60, 1080)" in text
    results = json.loads((out / "results.json").read_text())
    assert results["net1"]["params"] == 1_149_010 and results["net2"]["params"] == 14_590
    assert 0 <= results["net2"]["test_accuracy"] <= 1
    assert np.array(results["net2"]["confusion"]).sum() == 20
    assert sorted(p.name for p in out.iterdir()) == REPORT_FILES  # and no temporary files left
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    # the page form: both confusion matrices, the same counts as results.json
    page = (out / "report.html").read_text(encoding="utf-8")
    data = json.loads(re.search(r"const R = (\{.*?\});\n", page, re.S).group(1))
    assert [net["name"] for net in data["nets"]] == ["net1", "net2"]
    for net in data["nets"]:
        assert net["confusion"] == results[net["name"]]["confusion"]
        assert net["accuracy"] == pytest.approx(results[net["name"]]["test_accuracy"], abs=1e-6)
    assert [net["method"] for net in data["nets"]] == ["saliency", "grad_cam"]


@pytest.fixture
def trained(tiny_data, tmp_path, capsys):
    path = train_net2(tiny_data, tmp_path / "net2.cnnlab", 2, "--validation-split", "0.2")
    assert f"saved net2 to {path}" in capsys.readouterr().out
    return path


def test_train_then_evaluate_summary_trace(trained, tiny_data, capsys):
    assert cli.main(["evaluate", str(trained), "--data", str(tiny_data)]) == 0
    assert "test accuracy" in capsys.readouterr().out and "on 20 images"
    assert cli.main(["summary", str(trained)]) == 0
    assert "Total params: 14,590" in capsys.readouterr().out
    assert cli.main(["trace", str(trained), "--data", str(tiny_data), "--samples", "7"]) == 0
    out = capsys.readouterr().out
    assert "(7, 13, 13, 30)" in out and "(7, 10)" in out


def test_predict_png_and_npy_agree_with_the_model(trained, tmp_path, capsys):
    from PIL import Image

    import cnnlab as cl

    rng = np.random.default_rng(0)
    image = rng.integers(0, 120, size=(28, 28)).astype(np.uint8)
    image[5:8, 4:24] = 220  # dark background, like Fashion-MNIST
    Image.fromarray(image).save(tmp_path / "a.png")
    np.save(tmp_path / "a.npy", image)
    assert cli.main(["predict", str(trained), str(tmp_path / "a.png"), str(tmp_path / "a.npy")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].split(": ", 1)[1] == lines[1].split(": ", 1)[1]
    p = cl.models.load_model(trained).predict(image[None, :, :, None].astype(np.float64))[0]
    best = fashion_mnist.class_names[int(p.argmax())]
    assert lines[1].split(": ", 1)[1].startswith(f"{best} {p.max():.3f}")
    # a light-background picture is inverted automatically
    Image.fromarray(255 - image).resize((56, 56)).save(tmp_path / "light.png")
    assert cli.main(["predict", str(trained), str(tmp_path / "light.png")]) == 0
    assert capsys.readouterr().out.split(": ", 1)[1].split()[0] == best.split()[0]


def test_predict_errors(trained, tmp_path, capsys):
    np.save(tmp_path / "big.npy", np.zeros((32, 32)))
    (tmp_path / "bad.png").write_bytes(b"not a picture")
    for args, message in [
        ([str(tmp_path / "big.npy")], "expected an array of shape (28, 28) or (28, 28, 1), received (32, 32)"),
        ([str(tmp_path / "bad.png")], "not a readable image (PNG or JPEG expected)"),
        ([str(tmp_path / "none.png")], "none.png: no such file"),
    ]:
        assert cli.main(["predict", str(trained), *args]) == 1
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("command", ["evaluate", "summary", "trace", "predict"])
def test_missing_or_broken_model_file(command, tmp_path, capsys):
    broken = tmp_path / "broken.cnnlab"
    broken.write_bytes(b"PK\x03\x04 truncated")
    extra = [str(tmp_path / "x.npy")] if command == "predict" else []
    assert cli.main([command, str(tmp_path / "none.cnnlab"), *extra]) == 1
    assert "none.cnnlab: no such model file" in capsys.readouterr().err
    assert cli.main([command, str(broken), *extra]) == 1
    assert "broken.cnnlab: not a cnnlab model file" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["lecture", "train", "evaluate", "summary", "trace", "predict"])
def test_help_has_an_example(command, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main([command, "--help"])
    assert info.value.code == 0
    assert f"example: cnnlab {command}" in capsys.readouterr().out


@pytest.mark.skipif(not REAL_DATA, reason="the real Fashion-MNIST is not installed (dataset-fashion-mnist)")
@pytest.mark.slow
def test_lecture_quick_on_real_data_as_a_user_runs_it(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "CNNLAB_DATA"}
    proc = subprocess.run(
        [sys.executable, "-m", "cnnlab.cli", "lecture", "--quick", "--out", str(tmp_path / "r"), "--verbose", "2"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    assert results["settings"]["train_samples"] == 6000
    # one epoch on a tenth of the data already beats chance by far
    assert results["net1"]["test_accuracy"] > 0.5 and results["net2"]["test_accuracy"] > 0.5


def test_missing_data_is_one_clear_line(tmp_path, capsys):
    assert cli.main(["lecture", "--quick", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("cnnlab lecture: Fashion-MNIST: the folder given by path= argument")
    assert "Traceback" not in err


def test_bad_option_exits_nonzero(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["lecture", "--epochs", "0"])
    assert info.value.code == 2
    assert "expected a positive integer, received '0'" in capsys.readouterr().err


def _no_training(monkeypatch):
    """Make any training fail the test: the output place must be checked first."""
    import cnnlab as cl

    def fit(*args, **kwargs):
        raise AssertionError("trained before checking the output place")

    monkeypatch.setattr(cl.Sequential, "fit", fit)


@pytest.mark.parametrize(
    "out, reason",
    [
        ("file.txt/model.cnnlab", "file.txt is a file, not a folder"),
        ("file.txt/sub/model.cnnlab", "file.txt is a file, not a folder"),
        ("folder", "received a directory"),
        ("pipe", "received a FIFO"),
    ],
)
def test_train_checks_out_before_training(out, reason, tiny_data, tmp_path, monkeypatch, capsys):
    (tmp_path / "file.txt").write_text("a file")
    (tmp_path / "folder").mkdir()
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "pipe")
    elif out == "pipe":
        pytest.skip("needs a POSIX system")
    _no_training(monkeypatch)
    args = ["train", "--model", "net2", "--epochs", "1", "--data", str(tiny_data), "--out", str(tmp_path / out)]
    assert cli.main(args) == 1
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith(f"cnnlab train: cannot save the model to {tmp_path / out}: ")
    assert reason in err and "Nothing was trained: give --out a writable place." in err
    assert "Epoch" not in captured.out


@pytest.mark.parametrize("blocked", ["out", "results.json", "net2.cnnlab"])
def test_lecture_checks_out_before_training(blocked, tiny_data, tmp_path, monkeypatch, capsys):
    (tmp_path / "file.txt").write_text("a file")
    out = tmp_path / "file.txt" / "report" if blocked == "out" else tmp_path / "report"
    if blocked != "out":
        (out / blocked).mkdir(parents=True)  # a folder where the report writes a file
    _no_training(monkeypatch)
    assert cli.main(["lecture", "--quick", "--data", str(tiny_data), "--out", str(out)]) == 1
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("cnnlab lecture: cannot write the lecture report to ")
    assert str(out) in err and "--out" in err
    assert "file.txt is a file, not a folder" in err if blocked == "out" else "received a directory" in err
    assert captured.out == ""


def test_train_the_course_models_with_any_optimizer(tiny_data, tmp_path, capsys):
    """The course models train from the command line with each optimizer's Keras defaults or a
    given learning rate; the file keeps the optimizer, and the whole-model page explains every layer
    (BatchNormalization, SeparableConv2D, global pooling included)."""
    scratch = tmp_path / "scratch.cnnlab"
    args = ["train", "--model", "scratch", "--epochs", "1", "--batch-size", "8", "--data", str(tiny_data)]
    assert (
        cli.main([*args, "--optimizer", "nadam", "--learning-rate", "0.01", "--out", str(scratch), "--verbose", "0"])
        == 0
    )
    model = cl.models.load_model(scratch)
    assert type(model.optimizer).__name__ == "Nadam" and model.optimizer.learning_rate == pytest.approx(0.01)
    assert model.metadata["input_scale"] == 1.0  # raw pixels: the model rescales itself
    assert {"BatchNormalization", "SeparableConv2D", "GlobalAveragePooling2D"} <= {
        type(x).__name__ for x in model.layers
    }
    for name in ("batch_normalization", "global_average_pooling2d", "separable_conv2d"):
        at = (0, 0) if name.startswith("global") else (0, 1, 1, 0)
        assert "output[" in str(cl.explain(model, np.zeros((1, 28, 28, 1)), at=at, layer_name=name))
    simple = tmp_path / "simple.cnnlab"
    assert (
        cli.main(
            [
                "train",
                "--model",
                "simple",
                "--epochs",
                "1",
                "--data",
                str(tiny_data),
                "--out",
                str(simple),
                "--verbose",
                "0",
            ]
        )
        == 0
    )
    assert cl.models.load_model(simple).metadata["input_scale"] == pytest.approx(1 / 255)  # keras.io's x / 255
    assert type(cl.models.load_model(simple).optimizer).__name__ == "Adam"
    capsys.readouterr()
    with pytest.raises(SystemExit):
        cli.main([*args, "--optimizer", "adam", "--learning-rate", "-1"])
    assert "expected a positive finite number" in capsys.readouterr().err
