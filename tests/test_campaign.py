"""The project's own bad-input campaign (issue 11): random layer stacks, shapes, dtypes, argument
values, file corruptions and command lines. Every case has exactly one of two outcomes:

* a correct result, checked against the loop references (``conv2d_naive``, ``pool2d_naive``) or
  a NumPy formula; or
* an exception of a documented user-facing type (a :mod:`cnnlab.errors` class, or a
  ``ValueError``/``OSError``) with a message, naming the argument where one is at fault.

A ``KeyError``, ``IndexError``, ``AttributeError``, a ``TypeError`` from deep inside NumPy, an empty
message, or a CLI traceback fails the case. Examples are seeded (``derandomize=True``) and
bounded, so the campaign is the same on every run; the last test reports how many cases ran.
"""

from __future__ import annotations

import contextlib
import io
import json
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cnnlab as cl
from cnnlab import cli, errors
from cnnlab.layers import AveragePooling2D, Conv2D, Dense, Dropout, Flatten, Input, MaxPool2D
from cnnlab.ops.conv import conv2d_naive
from cnnlab.ops.pool import pool2d_naive

CASES: Counter[str] = Counter()
CAMPAIGN = settings(
    derandomize=True,
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
USER_ERRORS = (errors.CnnlabError, ValueError, OSError)
BUGS = (KeyError, IndexError, AttributeError, NotImplementedError, ZeroDivisionError)

#: odd values tried for every argument
ODD = st.sampled_from([-1, 0, 2.5, float("nan"), float("inf"), "x", "", None, True, (1,), (2, 2, 2), [2, 2], {}, b"1"])


def outcome(kind: str, call: Any, names: tuple[str, ...] = ()) -> tuple[str, Any]:
    """Run ``call()``: ``("ok", result)`` or ``("error", exc)`` for a documented user error whose
    message names one of ``names`` (when given); anything else fails the test."""
    CASES[kind] += 1
    try:
        return "ok", call()
    except BUGS as exc:
        pytest.fail(f"{kind}: {type(exc).__name__} is a bug, not a user error: {exc!r}")
    except USER_ERRORS as exc:
        message = str(exc)
        assert message.strip(), f"{kind}: {type(exc).__name__} with an empty message"
        if isinstance(exc, TypeError):
            assert isinstance(exc, errors.CnnlabError), f"{kind}: TypeError from inside NumPy: {exc}"
        if names:
            assert any(name in message for name in names), f"{kind}: {message!r} names none of {names}"
        return "error", exc
    except TypeError as exc:
        pytest.fail(f"{kind}: raw TypeError (not a documented user error): {exc}")


# ------------------------------------------------------------------ layers against references
@CAMPAIGN
@given(
    filters=st.integers(1, 3),
    kernel=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    strides=st.integers(1, 3),
    dilation=st.integers(1, 2),
    padding=st.sampled_from(["valid", "same"]),
    hw=st.tuples(st.integers(1, 7), st.integers(1, 7)),
    channels=st.integers(1, 3),
    dtype=st.sampled_from(["float32", "float64", "int32", "uint8", "bool"]),
    kernels=st.sampled_from(["reference", "fast"]),
)
def test_conv2d_matches_the_loop_reference(filters, kernel, strides, dilation, padding, hw, channels, dtype, kernels):
    rng = np.random.default_rng(filters * 100 + hw[0] * 10 + hw[1])
    x = (rng.normal(size=(2, *hw, channels)) * 3).astype(dtype)

    def run():
        layer = Conv2D(filters, kernel, strides=strides, padding=padding, dilation_rate=dilation)
        with cl.config.using_kernels(kernels):
            return layer, layer(x)

    status, result = outcome("Conv2D", run, ("strides", "dilation", "size", "dtype", "astype"))
    if status == "ok":
        layer, y = result
        expected = conv2d_naive(x.astype(np.float64), *layer.get_weights(), (strides,) * 2, padding, (dilation,) * 2)
        np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


@CAMPAIGN
@given(
    pool=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    strides=st.one_of(st.none(), st.integers(1, 3)),
    padding=st.sampled_from(["valid", "same"]),
    hw=st.tuples(st.integers(0, 7), st.integers(1, 7)),
    mode=st.sampled_from(["max", "avg"]),
    dtype=st.sampled_from(["float32", "float64", "int64", "uint8"]),
    nan=st.booleans(),
    kernels=st.sampled_from(["reference", "fast"]),
)
def test_pooling_matches_the_loop_reference(pool, strides, padding, hw, mode, dtype, nan, kernels):
    rng = np.random.default_rng(sum(pool) * 10 + sum(hw))
    x = (rng.normal(size=(2, *hw, 2)) * 50).astype(dtype)
    if nan and x.dtype.kind == "f" and x.size:
        x.flat[rng.integers(x.size)] = np.nan
    cls = MaxPool2D if mode == "max" else AveragePooling2D
    s = None if strides is None else (strides, strides)

    def run():
        with cl.config.using_kernels(kernels):
            model = cl.Sequential([Input(x.shape[1:]), cls(pool, strides=strides, padding=padding)])
            return model.predict(x)

    status, y = outcome(f"{cls.__name__}", run, ("size", "pool", "shape"))
    if status == "ok":
        expected = pool2d_naive(x, pool, s, padding, mode)
        np.testing.assert_allclose(y.astype(np.float64), expected.astype(np.float64), rtol=1e-5, equal_nan=True)


@CAMPAIGN
@given(units=st.integers(1, 5), n=st.integers(0, 4), features=st.integers(1, 6), act=st.sampled_from(["relu", None]))
def test_dense_matches_numpy(units, n, features, act):
    x = np.random.default_rng(n * 7 + features).normal(size=(n, features))
    status, result = outcome("Dense", lambda: (layer := Dense(units, activation=act), layer(x)))
    assert status == "ok"
    layer, y = result
    kernel, bias = layer.get_weights()
    expected = x @ kernel + bias
    np.testing.assert_allclose(y, np.maximum(expected, 0) if act else expected, rtol=1e-5, atol=1e-5)
    assert y.shape == (n, units)


# ------------------------------------------------------------------ constructors with odd arguments
CONSTRUCTORS = {
    "Conv2D": (Conv2D, {"filters": 2, "kernel_size": 2}, ["strides", "padding", "dilation_rate", "activation", "name"]),
    "MaxPool2D": (MaxPool2D, {}, ["pool_size", "strides", "padding", "name"]),
    "AveragePooling2D": (AveragePooling2D, {}, ["pool_size", "strides", "padding"]),
    "Dense": (Dense, {"units": 2}, ["units", "activation", "name", "input_shape"]),
    "Dropout": (Dropout, {"rate": 0.5}, ["rate", "name"]),
    "Input": (Input, {"shape": (2, 2)}, ["shape"]),
    "Activation": (cl.layers.Activation, {"activation": "relu"}, ["activation"]),
    "Adam": (cl.optimizers.Adam, {}, ["learning_rate", "beta_1", "beta_2", "epsilon"]),
    "SGD": (cl.optimizers.SGD, {}, ["learning_rate", "momentum"]),
    "RMSprop": (cl.optimizers.RMSprop, {}, ["learning_rate", "rho"]),
    "EarlyStopping": (cl.callbacks.EarlyStopping, {}, ["monitor", "mode", "patience"]),
}


@settings(CAMPAIGN, max_examples=200)
@given(which=st.sampled_from(sorted(CONSTRUCTORS)), data=st.data(), value=ODD)
def test_constructors_refuse_odd_arguments_by_name(which, data, value):
    cls, base, args = CONSTRUCTORS[which]
    arg = data.draw(st.sampled_from(args))
    # a message may name the argument or (for positional ones) the value's role
    outcome(f"{which}()", lambda: cls(**{**base, arg: value}), (arg, which))


# ------------------------------------------------------------------ the training API
def small_model() -> cl.Sequential:
    cl.set_random_seed(0)
    model = cl.Sequential(
        [Input((4, 4, 1)), Conv2D(2, 2, activation="relu"), Flatten(), Dense(3, activation="softmax")]
    )
    model.compile("adam", "categorical_crossentropy", ["accuracy"])
    return model


X = np.random.default_rng(1).normal(size=(6, 4, 4, 1))
Y = cl.utils.to_categorical(np.arange(6) % 3, 3)

FIT_ARGS = {
    "batch_size": st.one_of(ODD, st.integers(-2, 8)),
    "epochs": st.one_of(ODD, st.integers(-1, 2)),
    "initial_epoch": st.one_of(ODD, st.integers(-1, 1)),
    "validation_split": st.one_of(ODD, st.floats(-0.5, 1.5, allow_nan=False), st.just("0.2")),
    "verbose": st.one_of(ODD, st.integers(-1, 3)),
    "shuffle": st.booleans(),
}
XS = st.sampled_from(["good", "none", "list", "ragged", "nan", "strings", "3d", "empty", "int", "wrong-hw", "scalar"])


def make_x(kind: str) -> Any:
    return {
        "good": X,
        "none": None,
        "list": X.tolist(),
        "ragged": [[1, 2], [3]],
        "nan": np.where(X > 1, np.nan, X),
        "strings": np.array([["a"] * 16] * 6).reshape(6, 4, 4, 1),
        "3d": X[..., 0],
        "empty": X[:0],
        "int": (X * 10).astype(int),
        "wrong-hw": np.zeros((6, 5, 5, 1)),
        "scalar": np.float64(1.0),
    }[kind]


@CAMPAIGN
@given(x=XS, y=st.sampled_from(["good", "none", "ints", "short", "strings", "nan"]), data=st.data())
def test_fit_evaluate_predict_train_on_batch(x, y, data):
    labels = {
        "good": Y,
        "none": None,
        "ints": np.arange(6) % 3,
        "short": Y[:4],
        "strings": np.array(list("abcabc")),
        "nan": np.where(Y > 0, np.nan, Y),
    }[y]
    chosen = data.draw(st.fixed_dictionaries({}, optional=FIT_ARGS))
    model = small_model()
    status, history = outcome("fit", lambda: model.fit(make_x(x), labels, **chosen), ("",))
    if status == "ok":
        assert np.isfinite(np.concatenate([w.ravel() for w in model.get_weights()])).all()
    outcome("evaluate", lambda: model.evaluate(make_x(x), labels, verbose=0))
    status, out = outcome("predict", lambda: model.predict(make_x(x)))
    if status == "ok":
        assert out.shape == (len(np.asarray(make_x(x))), 3)
        finite = np.isfinite(np.asarray(make_x(x), dtype=float)).all(axis=(1, 2, 3))
        np.testing.assert_allclose(out[finite].sum(-1), 1, rtol=1e-5)  # NaN inputs give NaN outputs
    outcome("train_on_batch", lambda: model.train_on_batch(make_x(x), labels))


@CAMPAIGN
@given(
    optimizer=st.one_of(ODD, st.sampled_from(["adam", "sgd", "rmsprop", "adamw"])),
    loss=st.one_of(ODD, st.sampled_from(["mse", "categorical_crossentropy", "binary_crossentropy", "hinge"])),
    metrics=st.one_of(ODD, st.just(["accuracy"]), st.just(["mae"])),
)
def test_compile(optimizer, loss, metrics):
    model = cl.Sequential([Input((3,)), Dense(2, activation="softmax")])
    status, _ = outcome("compile", lambda: model.compile(optimizer, loss, metrics), ("optimizer", "loss", "metric"))
    if status == "ok":
        outcome("fit after compile", lambda: model.fit(np.ones((4, 3)), np.eye(2)[[0, 1, 0, 1]], verbose=0))


@CAMPAIGN
@given(
    y=st.one_of(
        st.lists(st.integers(-2, 5), max_size=6),
        st.lists(st.one_of(st.floats(-1, 4), st.just(float("nan"))), max_size=4),
        st.just("abc"),
        st.just([[1, 2], [3]]),
    ),
    num_classes=st.one_of(st.none(), st.integers(-1, 6), ODD),
)
def test_to_categorical(y, num_classes):
    status, out = outcome("to_categorical", lambda: cl.utils.to_categorical(y, num_classes), ("to_categorical",))
    if status == "ok":
        labels = np.asarray(y).astype(int)
        assert out.shape[:-1] == labels.shape
        if labels.size:
            assert (out.argmax(-1) == labels).all() and (out.sum(-1) == 1).all()


# ------------------------------------------------------------------ files
@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    model = small_model()
    model.fit(X, Y, epochs=1, verbose=0)
    model.metadata = {"class_names": ["a", "b", "c"], "input_scale": 1.0}
    return model.save(tmp_path_factory.mktemp("campaign") / "model.cnnlab")


@CAMPAIGN
@given(
    how=st.sampled_from(["truncate", "flip", "drop", "empty", "garbage"]),
    where=st.floats(0, 1),
    member=st.sampled_from(["cnnlab.json", "weights/0000.npy", "weights/0002.npy", "optimizer/m.npy"]),
)
def test_load_model_with_corrupted_files(model_file, tmp_path, how, where, member):
    raw = model_file.read_bytes()
    bad = tmp_path / "bad.cnnlab"
    at = int(where * (len(raw) - 1))
    if how == "truncate":
        bad.write_bytes(raw[:at])
    elif how == "flip":
        bad.write_bytes(raw[:at] + bytes([raw[at] ^ 0xFF]) + raw[at + 1 :])
    elif how == "empty":
        bad.write_bytes(b"")
    elif how == "garbage":
        bad.write_bytes(np.random.default_rng(at).bytes(at + 1))
    else:
        with zipfile.ZipFile(model_file) as src, zipfile.ZipFile(bad, "w") as dst:
            for name in src.namelist():
                if name != member:
                    dst.writestr(name, src.read(name))
    status, loaded = outcome("load_model", lambda: cl.models.load_model(bad), (str(bad),))
    if status == "ok":
        reference = cl.models.load_model(model_file)
        assert np.isfinite(loaded.predict(X)).all() or not np.isfinite(reference.predict(X)).all()


@CAMPAIGN
@given(path=st.sampled_from(["", "missing", "file", "dir", "empty-files", None]))
def test_load_data_with_odd_paths(tmp_path, path):
    if path == "file":
        arg: Any = tmp_path / "f.txt"
        arg.write_text("x")
    elif path == "dir":
        arg = tmp_path
    elif path == "empty-files":
        for stem in cl.datasets.fashion_mnist.FILES:
            (tmp_path / stem).write_bytes(b"")
        arg = tmp_path
    elif path == "missing":
        arg = tmp_path / "nope"
    else:
        arg = path
    if arg is None:
        return  # the default places: not a bad input
    outcome("load_data", lambda: cl.datasets.fashion_mnist.load_data(path=arg, download=False), ("path", str(arg)))


# ------------------------------------------------------------------ explain and trace
@CAMPAIGN
@given(
    at=st.one_of(
        st.tuples(st.integers(-1, 3), st.integers(-1, 3), st.integers(-1, 3), st.integers(-1, 2)),
        st.tuples(st.integers(0, 1), st.floats(0, 2)),
        ODD,
        st.just(("a", 0, 0, 0)),
    ),
    layer_name=st.one_of(st.none(), st.integers(-5, 5), st.sampled_from(["conv", "pool", "dense", "x", True])),
)
def test_explain(at, layer_name):
    model = cl.Sequential([Input((4, 4, 1)), Conv2D(2, 2, name="conv"), MaxPool2D(name="pool")])
    model.add(Flatten(name="flat"))
    model.add(Dense(2, name="dense"))
    status, e = outcome("explain", lambda: cl.explain(model, X[:2], at=at, layer_name=layer_name))
    if status == "ok":
        assert str(e) and e.to_dict()["text"]
    outcome("trace", lambda: cl.trace(model, X[0] if layer_name is None else X[:2]))


AT_VALUES = st.one_of(
    st.tuples(*[st.integers(-3, 6)] * 4),  # negative, in range and out of range
    st.lists(st.integers(-1, 3), min_size=0, max_size=6).map(tuple),  # wrong lengths
    st.lists(st.integers(0, 2), min_size=4, max_size=4),  # a list instead of a tuple: accepted as indices
    st.tuples(st.integers(0, 1), st.floats(allow_nan=True, allow_infinity=True), st.just(0), st.just(0)),
    st.tuples(st.booleans(), st.just(0), st.just(0), st.just(0)),
    st.tuples(st.just(0), st.sampled_from(["1", "a", None, 1.0, b"0", (0,)]), st.just(0), st.just(0)),
    st.sampled_from([None, 0, 3, 1.5, "0,0,0,0", True, {}, np.int64(0)]),
)


@settings(CAMPAIGN, max_examples=60)
@given(at=AT_VALUES, layer=st.sampled_from(["conv", "pool", "dense"]))
def test_explain_at_with_random_types_and_values(at, layer):
    """``at=`` of cl.explain: whole-number indices inside the output give the layer's own output
    (bit for bit); anything else (floats, bools, strings, None, wrong lengths, negative or out of
    range) is an InvalidArgumentError naming ``at`` and the output's shape."""
    model = cl.Sequential([Input((4, 4, 1)), Conv2D(2, 2, name="conv"), MaxPool2D(name="pool")])
    model.add(Flatten(name="flat"))
    model.add(Dense(2, name="dense"))
    x = X[:2]
    status, e = outcome("explain at=", lambda: cl.explain(model, x, at=at, layer_name=layer), ("at",))
    shape = {"conv": (2, 3, 3, 2), "pool": (2, 1, 1, 2), "dense": (2, 2)}[layer]
    whole = isinstance(at, (tuple, list)) and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in at
    )
    valid = whole and len(at) == len(shape) and all(0 <= a < s for a, s in zip(at, shape, strict=True))
    if status == "error":
        assert not valid, f"at={at!r} is a valid index into {shape}: {e}"
        assert isinstance(e, errors.InvalidArgumentError) and str(shape) in str(e)
        return
    assert valid, f"at={at!r} was accepted for an output of shape {shape}"
    data = x
    for candidate in model.layers:
        data = candidate(data)
        if candidate.name == layer:
            break
    assert e.output == data[tuple(at)] and e.at == tuple(int(v) for v in at)


# ------------------------------------------------------------------ the command line
def run_cli(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = cli.main(argv)
        except SystemExit as exc:  # argparse: bad usage
            code = exc.code
    return code, err.getvalue()


def check_cli_failure(code: int, err: str) -> None:
    """A failing command prints one line: status 1, or 2 for an option value not in its documented
    form (cnnlab's UsageError; argparse's own usage errors print their usage, then one ``error:`` line)."""
    if code == 0:
        return
    lines = err.strip().splitlines()
    if code == 2 and lines and lines[0].startswith("usage: cnnlab"):
        assert "error:" in lines[-1], err
        return
    assert code in (1, 2) and len(lines) == 1 and err.startswith("cnnlab"), err


@settings(CAMPAIGN, max_examples=80)
@given(
    command=st.sampled_from(["lecture", "train", "evaluate", "summary", "trace", "predict", "explain-model"]),
    model=st.sampled_from(["good", "missing", "garbage", "dir"]),
    image=st.sampled_from(["nan", "complex", "big", "good", "strings", "missing", "png16", "rgba"]),
)
def test_cli_subcommands(model_file, tmp_path, command, model, image):
    models = {"good": str(model_file), "missing": str(tmp_path / "none.cnnlab"), "dir": str(tmp_path)}
    garbage = tmp_path / "garbage.cnnlab"
    garbage.write_bytes(b"PK\x03\x04 not really")
    models["garbage"] = str(garbage)
    img = tmp_path / f"{image}.npy"
    arrays = {
        "nan": np.full((28, 28), np.nan),
        "complex": np.ones((28, 28)) * (1 + 2j),
        "big": np.ones((28, 29)),
        "good": np.ones((28, 28)),
        "strings": np.array([["a"] * 28] * 28),
    }
    if image in arrays:
        np.save(img, arrays[image])
    elif image in ("png16", "rgba"):
        from PIL import Image

        img = tmp_path / f"{image}.png"
        if image == "png16":
            Image.fromarray((np.arange(28 * 28).reshape(28, 28) * 80).astype(np.uint16)).save(img)
        else:
            Image.fromarray(np.zeros((28, 28, 4), np.uint8)).save(img)
    no_data = ["--data", str(tmp_path / "no-data")]
    argv = {
        "lecture": ["lecture", "--quick", "--out", str(tmp_path / "report"), *no_data],
        "train": ["train", "--model", "net1", "--out", str(tmp_path / "o.cnnlab"), *no_data],
        "evaluate": ["evaluate", models[model], *no_data],
        "summary": ["summary", models[model]],
        "trace": ["trace", models[model], *no_data],
        "predict": ["predict", models[model], str(img)],
        "explain-model": ["explain", "model", models[model], *no_data],
    }[command]
    CASES[f"cli {command}"] += 1
    code, err = run_cli(argv)
    assert "Traceback" not in err
    check_cli_failure(code, err)


@CAMPAIGN
@given(
    what=st.sampled_from(["conv", "pool"]),
    image=st.sampled_from(
        [
            "arange:4x4",
            "arange:-3x3",
            "arange:3x",
            "ARANGE:3x3",
            "1 2; 3",
            "nan 1; 2 3",
            "inf 1; 1 1",
            "ones:2x2x2",
            "x",
        ]
    ),
    at=st.sampled_from(["0,0", "1", "-1,0", "9,9", "a,b", "0,0,0"]),
    size=st.sampled_from(["1", "2", "0", "2,3", "-1", "x"]),
)
def test_cli_explain(what, image, at, size):
    if what == "conv":
        argv = ["explain", "conv", "--image", image, "--kernel", "ones:" + size.replace(",", "x") + "x1", "--at", at]
    else:
        argv = ["explain", "pool", "--image", image, "--pool-size", size, "--at", at]
    CASES[f"cli explain {what}"] += 1
    code, err = run_cli(argv)
    assert "Traceback" not in err
    check_cli_failure(code, err)


def check_usage_error(code: int, err: str, option: str) -> None:
    """A value not in its option's documented form: status 2 and ONE line naming the option."""
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, (code, err)
    assert lines[0].startswith("cnnlab explain: ") and option in lines[0] and "Traceback" not in err


@settings(CAMPAIGN, max_examples=60)
@given(
    what=st.sampled_from(["conv", "pool"]),
    at=st.one_of(
        st.sampled_from(["1", "-1,0", "0,-1", "0,0,0", "a,b", "", ",", "1.5,0", "0;0", " 0 , 0 ", "9,9"]),
        st.tuples(st.integers(-3, 6), st.integers(-3, 6)).map(lambda rc: f"{rc[0]},{rc[1]}"),
        st.integers(-3, 6).map(str),
    ),
)
def test_cli_explain_at_is_row_comma_col(what, at):
    """``--at`` must name ROW,COL, both whole numbers inside the 3x3 output: anything else is a
    usage error (status 2, one line naming --at); a valid cell is explained (status 0)."""
    kernel = ["--kernel", "1 1; 1 1"] if what == "conv" else ["--pool-size", "2", "--strides", "1"]
    argv = ["explain", what, "--image", "arange:4x4", *kernel, "--at", at]
    CASES[f"cli explain --at ({what})"] += 1
    code, err = run_cli(argv)
    parts = at.replace(" ", "").split(",")
    valid = len(parts) == 2 and all(p.isdigit() and int(p) < 3 for p in parts)
    if valid:
        assert code == 0 and err == "", err
    else:
        check_usage_error(code, err, "--at")


@settings(CAMPAIGN, max_examples=40)
@given(
    kind=st.sampled_from(["arange", "ones", "zeros", "ARANGE", "Ones", "arrange", "x"]),
    sizes=st.lists(st.sampled_from(["-3", "0", "1", "3", "", "2.5", "100000", "a"]), min_size=1, max_size=4),
)
def test_cli_explain_generated_images(kind, sizes):
    """``--image KIND:HxW[xC]``: lower-case arange/ones/zeros with 2 or 3 whole sizes >= 1 and at
    most 1,000,000 values; anything else is a usage error naming --image (refused before
    allocating: ``arange:100000x100000`` would need 80 GB)."""
    spec = f"{kind}:" + "x".join(sizes)
    CASES["cli explain --image spec"] += 1
    code, err = run_cli(["explain", "pool", "--image", spec, "--pool-size", "1"])
    numbers = [int(v) for v in sizes if v.isdigit()]
    valid = (
        kind in ("arange", "ones", "zeros")
        and len(sizes) in (2, 3)
        and len(numbers) == len(sizes)
        and min(numbers) >= 1
        and int(np.prod(numbers)) <= 1_000_000
    )
    if valid:
        assert code == 0 and err == "", err
    else:
        check_usage_error(code, err, "--image")


def tiny_fashion(folder: Path) -> dict[str, tuple[int, str]]:
    from tests.conftest import write_tiny_fashion

    return write_tiny_fashion(folder, n_train=10, n_test=10)


@settings(CAMPAIGN, max_examples=30)
@given(
    model=st.sampled_from(["rgb", "short-names"]),
    image=st.sampled_from(["rgb.png", "gray.png", "rgb.npy", "gray.npy", "wrong.npy", "text.png", "none.png"]),
    scale=st.sampled_from([None, "1/255", "0.5", "0", "-1", "1/0", "abc", "inf", "2e-3"]),
    command=st.sampled_from(["predict", "explain-model"]),
)
def test_cli_own_images_for_any_model(fashion_folder, model, image, scale, command, tmp_path_factory):
    """The user's own image for any model (``predict`` and ``explain model --image``, with
    ``--scale``): the prediction (status 0) when the image fits the model's input and the scale is a
    positive number, else one line (status 1 for the file, 2 for the option's form)."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("own")
    Image.fromarray(np.full((40, 30, 3), 120, np.uint8)).save(folder / "rgb.png")
    Image.fromarray(np.full((20, 20), 90, np.uint8)).save(folder / "gray.png")
    np.save(folder / "rgb.npy", np.ones((32, 32, 3)))
    np.save(folder / "gray.npy", np.ones((28, 28)))
    np.save(folder / "wrong.npy", np.ones((5, 5, 5)))
    (folder / "text.png").write_text("not an image")
    path = fashion_folder["models"][model]
    argv = (
        ["predict", path, str(folder / image)]
        if command == "predict"
        else ["explain", "model", path, "--image", str(folder / image)]
    )
    argv += [] if scale is None else ["--scale", scale]
    CASES[f"cli {command} (own images)"] += 1
    code, err = run_cli(argv)
    assert "Traceback" not in err
    scale_ok = scale is None or scale in ("1/255", "0.5", "2e-3")
    fits = image in ("rgb.png", "gray.png") or (image == "rgb.npy") == (model == "rgb") and image != "wrong.npy"
    fits = fits and image not in ("text.png", "none.png")
    if scale_ok and fits:
        assert code == 0, err
    else:
        assert code != 0
        check_cli_failure(code, err)


@settings(CAMPAIGN, max_examples=30)
@given(
    model=st.sampled_from(["mse-no-metrics", "short-names", "string-names", "list-metadata", "784-outputs", "rgb"]),
    command=st.sampled_from(["evaluate", "predict", "explain-model", "explain-model-html"]),
)
def test_cli_with_odd_models(fashion_folder, model, command, tmp_path_factory):
    """The model files the bad-input campaign met: each command gives its result (status 0) or one
    line (status 1) naming the model file; never a traceback, never a wrong class name."""
    path = fashion_folder["models"][model]
    data = ["--data", str(fashion_folder["data"])]
    tmp = tmp_path_factory.mktemp("odd")
    argv = {
        "evaluate": ["evaluate", path, *data],
        "predict": ["predict", path, str(fashion_folder["image"])],
        "explain-model": ["explain", "model", path, *data],
        "explain-model-html": ["explain", "model", path, *data, "--html", str(tmp / "file.txt" / "page.html")],
    }[command]
    if command == "explain-model-html":
        (tmp / "file.txt").write_text("a file, not a folder")
    CASES[f"cli {command} (odd models)"] += 1
    code, err = run_cli(argv)
    assert "Traceback" not in err
    expected_ok = {
        "mse-no-metrics": command != "explain-model-html",
        "short-names": command != "explain-model-html",
        "string-names": command != "explain-model-html",
        "784-outputs": command in ("predict", "explain-model"),
        "list-metadata": False,
        "rgb": False,
    }[model]
    if expected_ok:
        assert code == 0 and err == "", err
        return
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("cnnlab "), err
    named = str(tmp / "file.txt") if command == "explain-model-html" else path
    assert named in lines[0] or model in ("784-outputs", "rgb") and command == "predict", lines[0]


@pytest.fixture(scope="module")
def fashion_folder(tmp_path_factory):
    """A tiny Fashion-MNIST look-alike and the odd model files, for the whole module."""
    from cnnlab.datasets import fashion_mnist

    root = tmp_path_factory.mktemp("fashion")
    table = tiny_fashion(root / "data")
    patch = pytest.MonkeyPatch()
    patch.setattr(fashion_mnist, "FILES", table)
    patch.setattr(fashion_mnist, "DEBIAN_DIR", root / "no-debian")
    patch.setenv("XDG_CACHE_HOME", str(root / "cache"))
    patch.delenv("CNNLAB_DATA", raising=False)
    dense = [Input((28, 28, 1)), Flatten(), Dense(10, activation="softmax")]
    specs: dict[str, tuple[list, dict]] = {
        "mse-no-metrics": (dense, {}),
        "short-names": ([Input((28, 28, 1)), Flatten(), Dense(10)], {"class_names": ["a", "b"]}),
        "string-names": ([Input((28, 28, 1)), Flatten(), Dense(10)], {"class_names": "abcdefghij"}),
        "list-metadata": ([Input((28, 28, 1)), Flatten(), Dense(10)], {}),
        "784-outputs": ([Input((28, 28, 1)), Flatten(), Dense(784)], {}),
        "rgb": ([Input((32, 32, 3)), Conv2D(2, 3), Flatten(), Dense(10)], {}),
    }
    models = {}
    for name, (layers, metadata) in specs.items():
        model = cl.Sequential(layers)
        if name == "mse-no-metrics":
            model.compile("adam", "mse")
        model.metadata = metadata
        models[name] = str(model.save(root / f"{name}.cnnlab"))
    with zipfile.ZipFile(models["list-metadata"]) as src:
        members = {member: src.read(member) for member in src.namelist()}
    manifest = json.loads(members["cnnlab.json"])
    manifest["metadata"] = ["a"] * 10
    members["cnnlab.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(models["list-metadata"], "w") as dst:
        for member, raw in members.items():
            dst.writestr(member, raw)
    np.save(root / "image.npy", np.full((28, 28), 9.0))
    yield {"data": root / "data", "models": models, "image": root / "image.npy"}
    patch.undo()


def test_zz_report_how_many_cases_ran(capsys):
    """Runs last (tests run in file order): prints the count per function and checks the campaign ran."""
    total = sum(CASES.values())
    with capsys.disabled():
        print(f"\ncampaign: {total} cases: " + ", ".join(f"{k} {v}" for k, v in sorted(CASES.items())))
    assert total > 0 or not CASES
