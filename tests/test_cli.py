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


# ------------------------------------------------------------------ issue 11: models and options the commands met badly
def _save(tmp_path, name: str, layers: list, metadata=None, loss: str | None = None):
    import cnnlab as cl

    model = cl.Sequential(layers)
    if loss:
        model.compile("adam", loss)  # no metrics
    if metadata is not None:
        model.metadata = metadata
    return model, str(model.save(tmp_path / name))


def _dense10(metadata=None):
    import cnnlab as cl

    return [cl.layers.Input((28, 28, 1)), cl.layers.Flatten(), cl.layers.Dense(10, activation="softmax")]


def _run(argv, capsys) -> tuple[int, str, str]:
    code = cli.main(argv)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err.strip()


def test_evaluate_a_model_compiled_with_mse_and_no_metrics(tiny_data, tmp_path, capsys):
    """Was ``TypeError: cannot unpack``; the loss is the model's own (mse), computed here independently."""
    from cnnlab.utils import to_categorical

    model, path = _save(tmp_path, "mse.cnnlab", _dense10(), loss="mse")
    code, out, err = _run(["evaluate", path, "--data", str(tiny_data)], capsys)
    assert code == 0, err
    _, (x, y) = fashion_mnist.load_data(tiny_data)
    probs = model.predict(x.reshape(-1, 28, 28, 1).astype(np.float64), verbose=0)
    loss = np.mean((probs - to_categorical(y, 10)) ** 2)
    accuracy = np.mean(probs.argmax(-1) == y)
    assert f"test loss {loss:.4f}, test accuracy {accuracy:.4f} on 20 images" in out


@pytest.mark.parametrize("names", [["a", "b"], "abc", [f"c{k}" for k in range(11)]])
def test_class_names_that_do_not_fit_the_outputs_fall_back_to_numbers(names, tiny_data, tmp_path, capsys):
    model, path = _save(tmp_path, "short.cnnlab", _dense10(), {"class_names": names})
    np.save(tmp_path / "img.npy", np.full((28, 28), 7.0))
    code, out, err = _run(["predict", path, str(tmp_path / "img.npy")], capsys)
    assert code == 0, err
    note, line = out.strip().splitlines()
    assert note.startswith("note: the model file's class_names is ") and "but the model has 10 outputs" in note
    probs = model.predict(np.full((1, 28, 28, 1), 7.0), verbose=0)[0]
    top = np.argsort(probs)[::-1][:3]
    assert line.endswith(", ".join(f"{k} {probs[k]:.3f}" for k in top))
    code, out, err = _run(["explain", "model", path, "--data", str(tiny_data)], capsys)
    assert code == 0, err
    assert "note: the model file's class_names" in out
    assert "test image 0 (true class: T-shirt/top)" in out  # the data set's label name, not the model's


def test_class_names_that_fit_are_used(tmp_path, capsys):
    _, path = _save(tmp_path, "named.cnnlab", _dense10(), {"class_names": [f"c{k}" for k in range(10)]})
    np.save(tmp_path / "img.npy", np.full((28, 28), 7.0))
    code, out, _ = _run(["predict", path, str(tmp_path / "img.npy")], capsys)
    assert code == 0 and "note" not in out and re.search(r": c\d \d\.\d{3}, c\d", out)


def test_metadata_given_as_a_list_is_a_model_file_error(tiny_data, tmp_path, capsys):
    import zipfile

    _, path = _save(tmp_path, "list.cnnlab", _dense10())
    with zipfile.ZipFile(path) as src:
        members = {name: src.read(name) for name in src.namelist()}
    manifest = json.loads(members["cnnlab.json"])
    manifest["metadata"] = ["a"] * 10
    members["cnnlab.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(path, "w") as dst:
        for name, raw in members.items():
            dst.writestr(name, raw)
    np.save(tmp_path / "img.npy", np.ones((28, 28)))
    for argv in (["predict", path, str(tmp_path / "img.npy")], ["explain", "model", path, "--data", str(tiny_data)]):
        code, _, err = _run(argv, capsys)
        assert code == 1 and len(err.splitlines()) == 1
        assert "list.cnnlab: the metadata in the model description is ['a'" in err and "expected an object" in err


def test_explain_model_with_784_outputs(tiny_data, tmp_path, capsys):
    import cnnlab as cl

    model, path = _save(
        tmp_path, "wide.cnnlab", [cl.layers.Input((28, 28, 1)), cl.layers.Flatten(), cl.layers.Dense(784)]
    )
    code, out, err = _run(["explain", "model", path, "--data", str(tiny_data)], capsys)
    assert code == 0, err
    _, (x, _) = fashion_mnist.load_data(tiny_data)
    scores = model.predict(x[:1].reshape(1, 28, 28, 1).astype(np.float64), verbose=0)[0]
    line = next(line for line in out.splitlines() if line.startswith("prediction: "))
    shown = [item.split() for item in line.removeprefix("prediction: ").split(", ")]
    assert [int(k) for k, _ in shown] == list(np.argsort(scores)[::-1][:3])  # output numbers, not names
    # trace runs layer by layer, predict through the engine: both float32, so agree to float32 rounding
    np.testing.assert_allclose([float(v) for _, v in shown], np.sort(scores)[::-1][:3], rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("command", ["evaluate", "trace", "explain model"])
def test_a_model_for_other_inputs_is_refused_by_the_fashion_commands(command, tiny_data, tmp_path, capsys):
    import cnnlab as cl

    layers = [cl.layers.Input((32, 32, 3)), cl.layers.Conv2D(2, 3), cl.layers.Flatten(), cl.layers.Dense(10)]
    _, path = _save(tmp_path, "rgb.cnnlab", layers)
    code, _, err = _run([*command.split(), path, "--data", str(tiny_data)], capsys)
    assert code == 1 and len(err.splitlines()) == 1
    assert f"rgb.cnnlab: the model takes inputs of shape (32, 32, 3), but cnnlab {command} feeds it" in err
    assert "(28, 28, 1)" in err


@pytest.mark.parametrize("option", ["--html", "--png"])
@pytest.mark.parametrize("place", ["under-a-file", "a-folder"])
def test_explain_output_to_an_unwritable_place_names_the_users_path(option, place, tiny_data, tmp_path, capsys):
    import cnnlab as cl

    (tmp_path / "file.txt").write_text("a file")
    target = tmp_path / "file.txt" / "x.out" if place == "under-a-file" else tmp_path
    layers = [cl.layers.Input((28, 28, 1)), cl.layers.Conv2D(2, 3), cl.layers.Flatten(), cl.layers.Dense(10)]
    _, path = _save(tmp_path, "conv.cnnlab", layers)
    for argv in (
        ["explain", "model", path, "--data", str(tiny_data), option, str(target)],
        ["explain", "pool", "--image", "arange:4x4", option, str(target)],
    ):
        code, out, err = _run(argv, capsys)
        assert code == 1 and len(err.splitlines()) == 1
        assert err.startswith(f"cnnlab explain: {option}: cannot write {target}") and ".tmp" not in err
        assert out == ""  # refused before the work


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--at", "1", "--at expects ROW,COL with whole numbers >= 0, e.g. --at 0,1 (got '1')"),
        ("--at", "-1,0", "--at expects ROW,COL with whole numbers >= 0, e.g. --at 0,1 (got '-1,0')"),
        ("--at", "0,-1", "(got '0,-1')"),
        ("--at", "1.5,0", "(got '1.5,0')"),
        ("--at", "0,0,0", "(got '0,0,0')"),
        ("--at", "2,0", "--at 2,0: the output has 2 row(s) and 2 column(s); expected ROW in 0..1 and COL in 0..1"),
        ("--image", "arange:-3x3", "--image: expected arange:HxW or arange:HxWxC with whole numbers >= 1"),
        ("--image", "arange:3x", "received 'arange:3x'"),
        ("--image", "ARANGE:3x3", "unknown generator 'ARANGE:' in 'ARANGE:3x3' (names are lower case: arange:)"),
        ("--image", "arange:0x3", "received 'arange:0x3', which has a size 0"),
        ("--image", "ones:100000x100000", "would hold 10,000,000,000 values; the limit is 1,000,000"),
        ("--pool-size", "0", "--pool-size expects N or N,M with whole numbers >= 1 (got '0')"),
        ("--pool-size", "2,2,2", "(got '2,2,2')"),
    ],
)
def test_explain_option_values_not_in_their_form_are_usage_errors(option, value, message, capsys, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("allocated before checking the size")

    monkeypatch.setattr(np, "arange", never)  # the size limit is checked before any array is made
    argv = ["explain", "pool", "--image", "ones:4x4", option, value]
    code, out, err = _run(argv, capsys)
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("cnnlab explain: ") and out == ""
    assert message in err


@pytest.mark.parametrize("what", ["conv", "pool"])
def test_explain_nan_and_inf_inputs_propagate(what, capsys):
    """Was ``cannot convert float NaN to integer``; NaN and inf now flow through as IEEE arithmetic says."""
    if what == "conv":
        image, extra = "nan 1 2; 2 inf 4; 1 1 -inf", ["--kernel", "1 1; 1 1"]
    else:
        image, extra = "nan 1 2 inf; 2 3 4 5; 1 1 -inf 0; 0 0 -inf 0", []
    code, out, err = _run(["explain", what, "--image", image, *extra, "--all"], capsys)
    assert code == 0 and err == ""  # no RuntimeWarning either
    assert f"note: --image holds {3 if what == 'conv' else 4} NaN or infinite value(s); they propagate" in out
    if what == "conv":
        assert "nan×1 + 1×1 + 2×1 + inf×1 + 0 = nan" in out and "2×1 + inf×1 + 1×1 + 1×1 + 0 = inf" in out
        assert "inf×1 + 4×1 + 1×1 + -inf×1 + 0 = nan" in out
    else:
        assert "max(nan, 1, 2, 3) = nan" in out and "max(2, inf, 4, 5) = inf" in out
        assert "max(1, 1, 0, 0) = 1" in out and "max(-inf, 0, -inf, 0) = 0" in out
