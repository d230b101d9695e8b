"""Keras's own model files (``.keras`` and legacy HDF5), read and written by cnnlab.keras_io.

The model files in tests/fixtures/keras_files/ were written by real Keras 3 with
tools/make_keras_file_fixtures.py, with Keras's predictions in ``expected.npz``; Keras is not
needed to run these tests. Prediction tolerances follow from float32 rounding
(:func:`prediction_bound`): each of Keras and cnnlab is within ``E`` of the exact result, so they
differ by at most ``2E``.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import warnings
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

import cnnlab as cl
from cnnlab import keras_io
from cnnlab import layers as L
from cnnlab.errors import InvalidArgumentError, ModelFileError
from cnnlab.ops import activations as act_ops
from cnnlab.ops.conv import conv2d_forward
from tests.numerics import a64, assert_within, gamma, sum_bound, unit_roundoff

HERE = Path(__file__).parent / "fixtures" / "keras_files"
EXPECTED = np.load(HERE / "expected.npz")
U = unit_roundoff("float32")
FILES = {"cnn_bn": "cnn_bn.keras", "layers_mix": "layers_mix.keras", "gmp_rmsprop": "gmp_rmsprop.h5"}
FILES["resume_sgd"] = "resume_sgd.keras"


# ---------------------------------------------------------------- rounding bound of a prediction
def _linear(layer, v: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    if isinstance(layer, L.Conv2D):
        return conv2d_forward(v, kernel, bias, layer.strides, layer.padding, layer.dilation_rate)
    out = v.reshape(-1, v.shape[-1]) @ kernel + (0 if bias is None else bias)
    return out.reshape(*v.shape[:-1], kernel.shape[-1])


def _activate(name: str, z: np.ndarray, ez: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = act_ops.ACTIVATIONS[name][0](z.copy())
    if name == "softmax":
        # |d log p_i| <= 2 max|dz|: p moves by at most p (exp(2 max dz) - 1), plus its own roundings
        d = ez.max(axis=-1, keepdims=True)
        return y, y * np.expm1(2 * d) + 16 * U * y
    # relu, linear, tanh, sigmoid are 1-Lipschitz; a few roundings of the result
    return y, ez + 4 * U * a64(y)


def prediction_bound(model, x: np.ndarray) -> np.ndarray:
    """``E``: how far a float32 computation of ``model.predict(x)`` can be from the exact value.

    The exact value is approximated in float64; errors are propagated layer by layer (a layer of
    Lipschitz constant ``c`` turns an input error ``e`` into ``c e``) and each layer adds its own
    rounding (``gamma_K sum |terms|`` for a sum of ``K`` terms)."""
    v = x.astype(np.float64)
    e = np.zeros_like(v)
    with cl.config.using_kernels("reference"):
        for layer in model.layers:
            if isinstance(layer, (L.Conv2D, L.Dense)):
                k64 = layer.kernel.astype(np.float64)
                b64 = None if layer.bias is None else layer.bias.astype(np.float64)
                z = _linear(layer, v, k64, b64)
                mag = _linear(layer, np.abs(v), np.abs(k64), None if b64 is None else np.abs(b64))
                terms = layer.kernel.size // layer.kernel.shape[-1]
                ez = _linear(layer, e, np.abs(k64), None) + sum_bound(mag, terms, "float32", c=1)
                v, e = _activate(layer.activation, z, ez)
            elif isinstance(layer, L.BatchNormalization):
                w = dict(zip(layer.weight_names, (a.astype(np.float64) for a in layer.weights), strict=True))
                scale = w.get("gamma", 1.0) / np.sqrt(w["moving_variance"] + layer.epsilon)
                centered = v - w["moving_mean"]
                v = centered * scale + w.get("beta", 0.0)
                e = e * np.abs(scale) + 8 * U * (np.abs(centered * scale) + np.abs(w.get("beta", 0.0)))
            elif isinstance(layer, L.Activation):
                v, e = _activate(layer.activation, v, e)
            elif isinstance(layer, L.Softmax):
                v, e = _activate("softmax", v, e)
            elif isinstance(layer, (L.ReLU, L.LeakyReLU)):
                v = layer.forward(v)
                e = e + 2 * U * a64(v)
            elif isinstance(layer, (L.AveragePooling2D, L.GlobalAveragePooling2D)):
                window = (
                    int(np.prod(layer.pool_size)) if isinstance(layer, L.AveragePooling2D) else v.shape[1] * v.shape[2]
                )
                mag = layer.forward(np.abs(v))
                v, e = layer.forward(v), layer.forward(e) + sum_bound(mag, window, "float32", c=1)
            elif isinstance(layer, L.Rescaling):
                v = layer.forward(v)
                e = e * np.abs(np.asarray(layer.scale, np.float64)) + 2 * U * a64(v)
            else:  # moving or picking values (pooling by max, padding, reshaping, dropout at inference)
                v, e = layer.forward(v), layer.forward(e)
    return e + 1e-30


def check_predictions(model, stem: str) -> None:
    x, want = EXPECTED[f"{stem}_x"], EXPECTED[f"{stem}_y"]
    got = model.predict(x)
    assert_within(got, want, 2 * prediction_bound(model, x), f"{stem} predictions")


# ---------------------------------------------------------------- files written by Keras
@pytest.mark.parametrize("stem", list(FILES))
def test_keras_written_file_predicts_as_keras(stem):
    model = cl.models.load_model(HERE / FILES[stem])
    assert model.compiled
    check_predictions(model, stem)


def test_the_bound_is_tight_enough_to_catch_a_wrong_weight():
    model = cl.models.load_model(HERE / "cnn_bn.keras")
    bn = model.get_layer("batch_normalization")
    gamma_, beta, mean, var = bn.get_weights()
    bn.set_weights([gamma_, beta, var, mean])  # the moving statistics in the wrong order
    with pytest.raises(AssertionError, match="rounding bound"):
        check_predictions(model, "cnn_bn")


def test_weights_groups_follow_keras_class_numbering():
    """Layers are filed as conv2d, conv2d_1 ... by class, not by their names (Keras saving_lib)."""
    model = cl.models.load_model(HERE / "cnn_bn.keras")
    with zipfile.ZipFile(HERE / "cnn_bn.keras") as archive, h5py.File(archive.open("model.weights.h5"), "r") as h5:
        second_conv = h5["layers/conv2d_1/vars/0"][()]
    convs = [layer for layer in model.layers if isinstance(layer, L.Conv2D)]
    np.testing.assert_array_equal(convs[1].kernel, second_conv)


def test_adam_state_is_keras_optimizer_state():
    model = cl.models.load_model(HERE / "cnn_bn.keras")
    paths = [str(p) for p in EXPECTED["cnn_bn_opt_paths"]]
    values = [EXPECTED[f"cnn_bn_opt_{i}"] for i in range(len(paths))]
    state = model.optimizer.get_state()
    assert int(state["iterations"]) == int(values[0]) == 4
    assert model.optimizer.learning_rate == pytest.approx(float(values[1]))
    for slot, suffix in (("m", "_momentum"), ("v", "_velocity")):
        theirs = np.concatenate([v.ravel() for p, v in zip(paths, values, strict=True) if p.endswith(suffix)])
        np.testing.assert_array_equal(state[slot], theirs)


def test_fit_continues_where_keras_stopped():
    """One SGD-momentum step in cnnlab after loading equals Keras's next step (velocity restored)."""
    model = cl.models.load_model(HERE / "resume_sgd.keras")
    start = model.get_weights()
    model.train_on_batch(EXPECTED["resume_sgd_xb"], EXPECTED["resume_sgd_yb"])
    # the longest gradient sum: batch x positions of the conv (8 * 4 * 4); the step is lr*g plus the
    # restored velocity, so the bound is 2 gamma_K times K * max|step| (as in test_keras_course_parity)
    k = 8 * 4 * 4
    for i, (mine, before) in enumerate(zip(model.get_weights(), start, strict=True)):
        theirs = EXPECTED[f"resume_sgd_after_{i}"]
        step = a64(theirs - before).max()
        bound = 2 * gamma(k, "float32") * k * max(step, 1e-6) + 4 * U * a64(theirs)
        assert_within(mine, theirs, bound, f"weight {i} after one more step")
    # without the velocity from the file the step would differ by far more than the bound
    fresh = cl.models.load_model(HERE / "resume_sgd.keras", compile=False)
    fresh.compile(cl.optimizers.SGD(0.1, momentum=0.9), "sparse_categorical_crossentropy")
    fresh.train_on_batch(EXPECTED["resume_sgd_xb"], EXPECTED["resume_sgd_yb"])
    assert a64(fresh.get_weights()[0] - EXPECTED["resume_sgd_after_0"]).max() > 1e-4


def test_compile_false_leaves_the_model_uncompiled():
    model = cl.models.load_model(HERE / "cnn_bn.keras", compile=False)
    assert not model.compiled
    check_predictions(model, "cnn_bn")


# ---------------------------------------------------------------- legacy HDF5 variants
def _legacy_copy(tmp_path: Path, name: str = "legacy.h5") -> Path:
    target = tmp_path / name
    shutil.copy(HERE / "gmp_rmsprop.h5", target)
    return target


def test_legacy_weights_match_by_order_not_by_name(tmp_path):
    path = _legacy_copy(tmp_path)
    with h5py.File(path, "r+") as h5:
        weights = h5["model_weights"]
        names = [n.decode() if isinstance(n, bytes) else n for n in weights.attrs["layer_names"]]
        renamed = []
        for i, name in enumerate(names):
            weights.move(name, f"renamed_{i}")
            renamed.append(f"renamed_{i}")
        weights.attrs["layer_names"] = np.array([n.encode() for n in renamed])
    check_predictions(cl.models.load_model(path), "gmp_rmsprop")


def test_legacy_old_bare_list_config_str_and_chunked_attributes(tmp_path):
    """Keras <= 2.2: the Sequential config is a bare list with batch_input_shape on the first layer;
    attributes as str, and layer_names split into layer_names0, layer_names1."""
    path = _legacy_copy(tmp_path)
    with h5py.File(path, "r+") as h5:
        cfg = json.loads(h5.attrs["model_config"])
        items = cfg["config"]["layers"]
        first_input = items.pop(0)
        items[0]["config"]["batch_input_shape"] = first_input["config"]["batch_shape"]
        for item in items:  # tf.keras 2 style: no module, dtype as a string
            item.pop("module", None)
            item.pop("registered_name", None)
            item["config"]["dtype"] = "float32"
        h5.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": items}).encode()
        weights = h5["model_weights"]
        names = [n.decode() if isinstance(n, bytes) else n for n in weights.attrs["layer_names"]]
        del weights.attrs["layer_names"]
        weights.attrs["layer_names0"] = np.array(names[:2], dtype=h5py.string_dtype())
        weights.attrs["layer_names1"] = np.array(names[2:], dtype=h5py.string_dtype())
    model = cl.models.load_model(path)
    assert model.input_shape == (None, 7, 7, 1)
    check_predictions(model, "gmp_rmsprop")


def test_legacy_tf_keras_batch_norm_axis_list_and_optimizer_names(tmp_path):
    path = _legacy_copy(tmp_path)
    with h5py.File(path, "r+") as h5:
        cfg = json.loads(h5.attrs["model_config"])
        for item in cfg["config"]["layers"]:
            if item["class_name"] == "BatchNormalization":
                item["config"]["axis"] = [3]  # tf.keras 2 writes the axis as a list
        h5.attrs["model_config"] = json.dumps(cfg)
        training = json.loads(h5.attrs["training_config"])
        training["optimizer_config"]["class_name"] = "Custom>RMSprop"  # tf.keras 2.11+ spelling
        h5.attrs["training_config"] = json.dumps(training)
    model = cl.models.load_model(path)
    assert type(model.optimizer).__name__ == "RMSprop"
    check_predictions(model, "gmp_rmsprop")


@pytest.mark.parametrize(
    "loss",
    [
        # tf.keras 2.4's spelling (the shared logits_same_cifar_tfkeras24.h5 has exactly this)
        {
            "class_name": "SparseCategoricalCrossentropy",
            "config": {"reduction": "auto", "name": "scce", "from_logits": True},
        },
        # Keras 3's
        {
            "module": "keras.losses",
            "class_name": "SparseCategoricalCrossentropy",
            "config": {"name": "scce", "reduction": "sum_over_batch_size", "from_logits": True, "ignore_class": None},
            "registered_name": None,
        },
    ],
)
def test_a_from_logits_loss_loads_compiled(tmp_path, loss):
    """The loss reads the outputs as logits: its value is -log_softmax(output)[label], computed here
    with NumPy from the predictions (a softmax output taken as logits, as Keras would)."""
    path = _legacy_copy(tmp_path)
    with h5py.File(path, "r+") as h5:
        training = json.loads(h5.attrs["training_config"])
        training["loss"] = loss
        training["metrics"] = []
        h5.attrs["training_config"] = json.dumps(training)
    model = cl.models.load_model(path)
    assert model.compiled and type(model.loss).__name__ == "SparseCategoricalCrossentropy" and model.loss.from_logits
    x = EXPECTED["gmp_rmsprop_x"]
    labels = np.arange(len(x)) % model.output_shape[-1]
    z = a64(model.predict(x))
    expected = np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(x)), labels])
    # float32 log-softmax: a max, C subtractions, exps and a sum of C terms, a log; each value is
    # within gamma_(C + 8) of |z| + |loss|, and so is their mean
    classes = z.shape[1]
    tolerance = float(gamma(classes + 8, "float32")) * (2 * np.abs(z).max() + expected)
    assert model.evaluate(x, labels, verbose=0) == pytest.approx(expected, abs=tolerance)


# ---------------------------------------------------------------- writing Keras files
def small_model(dropout: bool = False) -> cl.Sequential:
    model = cl.Sequential(
        [
            L.Input((8, 8, 2)),
            L.Conv2D(3, 3, padding="same", activation="relu"),
            L.BatchNormalization(),
            L.MaxPooling2D(),
            L.Conv2D(4, 2, kernel_regularizer=cl.regularizers.L2(0.01)),
            L.LeakyReLU(),
            L.ZeroPadding2D(1),
            L.AveragePooling2D(),
            L.Flatten(),
            *([L.Dropout(0.3)] if dropout else []),
            L.Dense(5),
            L.Activation("softmax"),
        ],
        name="written",
    )
    model.compile(cl.optimizers.Adam(0.01), "sparse_categorical_crossentropy", ["accuracy"])
    rng = np.random.default_rng(0)
    x = rng.random((16, 8, 8, 2), dtype=np.float32)
    model.fit(x, rng.integers(0, 5, 16), epochs=1, batch_size=8, verbose=0)
    return model


def _all_keys(value):
    if isinstance(value, dict):
        for key, item in value.items():
            yield key, item
            yield from _all_keys(item)
    elif isinstance(value, list):
        for item in value:
            yield from _all_keys(item)


def test_written_keras_file_is_the_conservative_profile(tmp_path):
    model = small_model()
    path = model.save(tmp_path / "net.keras")
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist() == ["metadata.json", "config.json", "model.weights.h5"]
        config = json.loads(archive.read("config.json"))
        meta = json.loads(archive.read("metadata.json"))
    assert meta["keras_version"] == "3.0.0"
    assert config["class_name"] == "Sequential" and config["module"] == "keras"
    keys = dict(_all_keys(config))
    # keys that Keras versions after 3.0 added and that 3.0 would reject
    for newer in ("quantization_config", "optional", "lora_rank", "loss_scale_factor", "gradient_accumulation_steps"):
        assert newer not in keys
    assert all(isinstance(v, str) for k, v in _all_keys(config) if k == "dtype")
    assert config["compile_config"]["optimizer"]["class_name"] == "Adam"


@pytest.mark.parametrize("suffix", [".keras", ".h5", ".hdf5"])
def test_written_file_round_trips_exactly_and_resumes(tmp_path, suffix):
    model = small_model()
    path = model.save(tmp_path / f"net{suffix}")
    loaded = cl.models.load_model(path)
    x = np.random.default_rng(1).random((4, 8, 8, 2), dtype=np.float32)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.get_layer(index=3).regularizers["kernel"].l2 == pytest.approx(0.01)
    y = np.arange(4) % 5
    model.train_on_batch(x, y)
    loaded.train_on_batch(x, y)
    for mine, theirs in zip(loaded.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)


def test_other_suffixes_keep_cnnlab_format(tmp_path):
    model = small_model()
    path = model.save(tmp_path / "net.model")
    with zipfile.ZipFile(path) as archive:
        assert "cnnlab.json" in archive.namelist()


def test_a_layer_without_keras_counterpart_is_refused_before_writing(tmp_path):
    class Custom(L.Dense):
        pass

    model = cl.Sequential([L.Input((3,)), Custom(2)])
    with pytest.raises(InvalidArgumentError, match="no Keras counterpart"):
        model.save(tmp_path / "net.keras")
    assert not (tmp_path / "net.keras").exists()


# ---------------------------------------------------------------- foreign, corrupt and malicious files
def _edited_keras(tmp_path: Path, edit, source: str = "cnn_bn.keras") -> Path:
    target = tmp_path / "edited.keras"
    with zipfile.ZipFile(HERE / source) as src, zipfile.ZipFile(target, "w") as dst:
        for item in src.namelist():
            data = src.read(item)
            if item == "config.json":
                config = json.loads(data)
                edit(config)
                data = json.dumps(config).encode()
            dst.writestr(item, data)
    return target


def _layer(config, class_name):
    return next(item for item in config["config"]["layers"] if item["class_name"] == class_name)


def test_lambda_layer_is_refused_and_nothing_runs(tmp_path):
    sentinel = tmp_path / "ran"

    def edit(config):
        _layer(config, "Activation").update(
            {
                "class_name": "Lambda",
                "config": {"name": "evil", "function": f"__import__('pathlib').Path({str(sentinel)!r}).touch()"},
            }
        )

    with pytest.raises(ModelFileError, match=r'edited\.keras: layer "evil" \(Lambda\): .*Python code.*Supported'):
        cl.models.load_model(_edited_keras(tmp_path, edit))
    assert not sentinel.exists()


def test_config_naming_a_foreign_module_is_refused(tmp_path):
    def edit(config):
        _layer(config, "Dense").update({"module": "os", "class_name": "system"})

    with pytest.raises(ModelFileError, match="names the module 'os', which is not part of Keras"):
        cl.models.load_model(_edited_keras(tmp_path, edit))


def test_custom_registered_class_is_refused(tmp_path):
    def edit(config):
        _layer(config, "Dense")["registered_name"] = "MyPackage>MyDense"

    with pytest.raises(ModelFileError, match="custom class registered as 'MyPackage>MyDense'"):
        cl.models.load_model(_edited_keras(tmp_path, edit))


@pytest.mark.parametrize(
    ("cls", "key", "value", "message"),
    [
        ("Conv2D", "data_format", "channels_first", "data_format='channels_first' is not supported"),
        ("Conv2D", "groups", 2, "3 channels, which is not divisible by groups=2"),
        ("Dense", "activity_regularizer", {"class_name": "L2", "config": {"l2": 0.1}}, "activity_regularizer"),
        ("Dense", "lora_rank", 4, "lora_rank=4"),
        ("Dense", "a_future_argument", 3, "a_future_argument=3 is unknown to cnnlab"),
        ("Dense", "dtype", "mixed_float16", "dtype 'mixed_float16'"),
        ("BatchNormalization", "renorm", True, "renorm=True is not supported"),
        ("Dense", "activation", {"module": "mylib", "class_name": "function", "config": "swoosh"}, "mylib"),
    ],
)
def test_arguments_cnnlab_cannot_honour_are_refused(tmp_path, cls, key, value, message):
    def edit(config):
        _layer(config, cls)["config"][key] = value

    with pytest.raises(ModelFileError, match=f'edited.keras: layer "[a-z_0-9]+" \\({cls}\\): .*{message}'):
        cl.models.load_model(_edited_keras(tmp_path, edit))


def test_functional_call_with_two_positional_arguments_is_refused_clearly(tmp_path):
    def edit(config):
        layers_ = config["config"]["layers"]
        # the Dense is now called with a second positional argument, which no cnnlab layer takes
        layers_[-1]["inbound_nodes"][0]["args"].append(layers_[1]["inbound_nodes"][0]["args"][0])

    with pytest.raises(ModelFileError, match="the graph cannot be built .*2 positional arguments"):
        cl.models.load_model(_edited_keras(tmp_path, edit, "resume_sgd.keras"))


def test_external_hdf5_link_is_refused(tmp_path):
    path = _legacy_copy(tmp_path)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as h5:
        h5["secret"] = np.zeros((3, 3, 1, 5), np.float32)
    with h5py.File(path, "r+") as h5:
        group = h5["model_weights"]
        name = [n.decode() if isinstance(n, bytes) else n for n in group.attrs["layer_names"]][0]
        weight = [n.decode() if isinstance(n, bytes) else n for n in group[name].attrs["weight_names"]][0]
        del group[name][weight]
        group[name][weight] = h5py.ExternalLink(str(other), "secret")
    with pytest.raises(ModelFileError, match="external link to another file"):
        cl.models.load_model(path)


@pytest.mark.parametrize("source", ["cnn_bn.keras", "gmp_rmsprop.h5"])
def test_truncated_files_get_a_clear_error(tmp_path, source):
    data = (HERE / source).read_bytes()
    target = tmp_path / source
    target.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match=str(target.name)):
        cl.models.load_model(target)


def test_npz_weights_are_never_unpickled(tmp_path):
    target = tmp_path / "npz.keras"
    with zipfile.ZipFile(HERE / "cnn_bn.keras") as src, zipfile.ZipFile(target, "w") as dst:
        dst.writestr("config.json", src.read("config.json"))
        dst.writestr("metadata.json", src.read("metadata.json"))
        dst.writestr("model.weights.npz", b"PK\x05\x06" + bytes(18))
    with pytest.raises(ModelFileError, match="never does it"):
        cl.models.load_model(target)


def test_an_h5_suffix_on_another_kind_of_file(tmp_path):
    target = tmp_path / "net.h5"
    target.write_text("not hdf5")
    with pytest.raises(ModelFileError, match="not an HDF5 file"):
        cl.models.load_model(target)


def test_weights_only_h5_is_explained(tmp_path):
    target = tmp_path / "w.h5"
    with h5py.File(target, "w") as h5:
        h5.attrs["layer_names"] = np.array([b"dense"])
    with pytest.raises(ModelFileError, match="weights only"):
        cl.models.load_model(target)


def test_layer_from_keras_is_usable_alone():
    layer = keras_io.layer_from_keras(
        {"class_name": "MaxPool2D", "config": {"name": "p", "pool_size": [3, 3], "strides": [1, 1]}}, "x.keras"
    )
    assert isinstance(layer, L.MaxPooling2D) and layer.pool_size == (3, 3) and layer.strides == (1, 1)


# ---------------------------------------------------------------- command line
def test_cli_summary_and_convert_between_formats(tmp_path, capsys):
    from cnnlab.cli import main

    assert main(["summary", str(HERE / "cnn_bn.keras")]) == 0
    assert "batch_normalization" in capsys.readouterr().out
    as_h5, as_cnnlab, back = tmp_path / "net.h5", tmp_path / "net.cnnlab", tmp_path / "back.keras"
    assert main(["convert", str(HERE / "cnn_bn.keras"), str(as_h5)]) == 0
    assert main(["convert", str(as_h5), str(as_cnnlab)]) == 0
    assert main(["convert", str(as_cnnlab), str(back)]) == 0
    assert h5py.is_hdf5(as_h5) and zipfile.is_zipfile(as_cnnlab)
    x = EXPECTED["cnn_bn_x"]
    original = cl.models.load_model(HERE / "cnn_bn.keras")
    converted = cl.models.load_model(back)
    np.testing.assert_array_equal(converted.predict(x), original.predict(x))
    np.testing.assert_array_equal(converted.optimizer.get_state()["m"], original.optimizer.get_state()["m"])


def test_cli_convert_reports_an_unsupported_file_in_one_line(tmp_path, capsys):
    from cnnlab.cli import main

    def edit(config):
        _layer(config, "Dense")["class_name"] = "Lambda"

    assert main(["convert", str(_edited_keras(tmp_path, edit)), str(tmp_path / "out.cnnlab")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("cnnlab convert: ") and "(Lambda)" in err and err.count("\n") == 1
    assert not (tmp_path / "out.cnnlab").exists()
    # a Keras file converts to ONNX too (where the onnx package is installed)
    onnx_ok = importlib.util.find_spec("onnx") is not None
    assert main(["convert", str(HERE / "cnn_bn.keras"), str(tmp_path / "net.onnx")]) == (0 if onnx_ok else 1)
    assert (tmp_path / "net.onnx").exists() == onnx_ok


@pytest.mark.parametrize("layout", ["tf2.10", "tf2.11"])
def test_legacy_tf_keras_optimizer_layouts(tmp_path, layout):
    """tf.keras <= 2.10 files all of one slot, then the next (``RMSprop/conv2d/kernel/rms:0``);
    2.11+ interleaves them (``RMSprop/velocity/conv2d/kernel:0``). Both give Keras 3's state."""
    reference = cl.models.load_model(HERE / "gmp_rmsprop.h5").optimizer.get_state()
    path = _legacy_copy(tmp_path)
    with h5py.File(path, "r+") as h5:
        group = h5["optimizer_weights"]
        names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs["weight_names"]]
        values = [group[n][()] for n in names]
        del h5["optimizer_weights"]
        group = h5.create_group("optimizer_weights")
        slots = values[2:]  # Keras 3: iteration, learning_rate, then one velocity per weight
        if layout == "tf2.10":
            new = {"RMSprop/iter:0": values[0]} | {f"RMSprop/w{i}/kernel/rms:0": v for i, v in enumerate(slots)}
        else:
            new = {"iteration:0": values[0]} | {f"RMSprop/velocity/w{i}/kernel:0": v for i, v in enumerate(slots)}
        group.attrs["weight_names"] = np.array([n.encode() for n in new])
        for name, value in new.items():
            group.create_dataset(name, data=value)
    state = cl.models.load_model(path).optimizer.get_state()
    assert int(state["iterations"]) == int(reference["iterations"]) == 3
    np.testing.assert_array_equal(state["velocity"], reference["velocity"])


def test_unrecognised_optimizer_layout_warns_and_starts_afresh(tmp_path):
    path = _legacy_copy(tmp_path)
    with h5py.File(path, "r+") as h5:
        h5["optimizer_weights"].attrs["weight_names"] = np.array([b"something/else:0"])
    with pytest.warns(UserWarning, match="layout cnnlab does not recognise"):
        model = cl.models.load_model(path)
    assert model.compiled and model.optimizer.iterations == 0


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_nested_sequential_round_trips(tmp_path, suffix):
    """A Sequential inside a Sequential: filed under layers/sequential/layers/... as Keras does."""
    inner = cl.Sequential([L.Conv2D(3, 3, activation="relu"), L.MaxPooling2D()], name="block")
    model = cl.Sequential([L.Input((8, 8, 1)), inner, L.Flatten(), L.Dense(2)], name="outer")
    x = np.random.default_rng(0).random((4, 8, 8, 1), dtype=np.float32)
    model(x)
    loaded = cl.models.load_model(model.save(tmp_path / f"nested{suffix}"))
    assert isinstance(loaded.layers[0], cl.Sequential) and loaded.layers[0].name == "block"
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    if suffix == ".keras":
        with zipfile.ZipFile(tmp_path / "nested.keras") as archive, h5py.File(archive.open("model.weights.h5")) as h5:
            assert "layers/sequential/layers/conv2d/vars/0" in h5


def test_cli_evaluate_a_keras_file_with_integer_labels_and_no_metric(tmp_path, tiny_data, capsys):
    from cnnlab.cli import main

    model = cl.Sequential([L.Input((28, 28, 1)), L.Flatten(), L.Dense(10, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")  # as many Keras files are
    path = model.save(tmp_path / "net.keras")
    assert main(["evaluate", str(path), "--data", str(tiny_data)]) == 0
    assert "test accuracy" in capsys.readouterr().out


@pytest.mark.parametrize(
    "edit",
    [
        lambda c: c["config"].update(layers="not a list"),
        lambda c: c["config"]["layers"][1].update(config=["odd"]),
        lambda c: c["config"]["layers"][1]["config"].update(filters="many"),
        lambda c: c.update(class_name=7),
        lambda c: c["config"]["layers"][2]["inbound_nodes"].append({"args": "x"}),
    ],
)
def test_damaged_descriptions_get_a_model_file_error(tmp_path, edit):
    with pytest.raises(ModelFileError, match="edited.keras"):
        cl.models.load_model(_edited_keras(tmp_path, edit, "resume_sgd.keras"))


# ---------------------------------------------------------------- functional models written by Keras
FUNCTIONAL = np.load(HERE / "functional_expected.npz")


@pytest.mark.parametrize("name", ["residual_sep.keras", "residual_sep.h5"])
def test_keras_functional_file_loads_with_keras_weights_and_predictions(name):
    """A residual CNN written by real Keras (RandomFlip, SeparableConv2D, Add, DepthwiseConv2D, Conv2D
    with groups, Concatenate): every weight is Keras's, bit for bit, in Keras's order; predictions agree.

    The prediction tolerance: each of Keras and cnnlab is a float32 computation of the same exact
    function; cnnlab's distance from it is estimated by a float64 run of the same model, and twice
    that (one for each side) plus a few roundings of the result bound their difference."""
    model = cl.models.load_model(HERE / name)
    assert isinstance(model, cl.Model)
    assert [type(layer).__name__ for layer in model.layers][:3] == ["InputLayer", "RandomFlip", "Conv2D"]
    keras_weights = [FUNCTIONAL[f"w_{i}"] for i in range(len([k for k in FUNCTIONAL.files if k.startswith("w_")]))]
    mine = [w for layer, _ in model._leaves() for w in layer.weights]
    assert len(mine) == len(keras_weights)
    for i, (a, b) in enumerate(zip(mine, keras_weights, strict=True)):
        np.testing.assert_array_equal(a, b, err_msg=f"weight {i}")
    x = FUNCTIONAL["x"]
    got = model.predict(x)
    with _float64():
        twin = cl.Model.from_config(model.get_config())
        twin.set_weights([a64(w) for w in model.get_weights()])
        exact = twin.predict(x.astype(np.float64))
    bound = 2 * np.abs(a64(got) - exact) + 8 * U * np.abs(exact)
    assert_within(got, FUNCTIONAL["y"], bound + 2 * np.abs(a64(FUNCTIONAL["y"]) - exact), f"{name} predictions")
    assert model.compiled and model.optimizer.iterations == 4  # Adam state restored (4 Keras steps)


class _float64:
    def __enter__(self):
        self.old = cl.config.floatx()
        cl.config.set_floatx("float64")

    def __exit__(self, *exc):
        cl.config.set_floatx(self.old)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_functional_model_round_trips_through_keras_formats(tmp_path, suffix):
    model = cl.models.load_model(HERE / "residual_sep.keras")
    path = model.save(tmp_path / f"again{suffix}") or tmp_path / f"again{suffix}"
    again = cl.models.load_model(path)
    assert [layer.name for layer in again.layers] == [layer.name for layer in model.layers]
    for a, b in zip(again.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(again.predict(FUNCTIONAL["x"]), model.predict(FUNCTIONAL["x"]))


# ---------------------------------------------------------------- standalone Keras 2.0-2.2 optimizer weights
def _as_keras2_file(tmp_path: Path, vhats: bool = False, drop: int = 0) -> Path:
    """residual_sep.h5 (Keras 3 writer, Adam) with its optimizer state rewritten as standalone Keras
    2.0.x files it (keras/optimizers.py, Adam.get_updates: ``self.weights = [self.iterations] + ms +
    vs``, 2.1.3+ also ``+ vhats``, placeholders of shape (1,) without amsgrad; variables named by
    the TensorFlow backend ``training/Adam/Variable_k:0``; ``ms`` in the order of the model's
    trainable weights, i.e. the file's layer order) and its compile config as Keras 2.0.9 wrote it."""
    path = tmp_path / "keras2.h5"
    shutil.copy(HERE / "residual_sep.h5", path)
    with h5py.File(path, "r+") as h5:
        weights = h5["model_weights"]
        trainable = []
        for layer in weights.attrs["layer_names"]:
            layer = layer.decode() if isinstance(layer, bytes) else layer
            for name in weights[layer].attrs["weight_names"]:
                name = name.decode() if isinstance(name, bytes) else name
                if not name.endswith(("moving_mean", "moving_variance")):
                    trainable.append(name.replace("/", "_"))
        old = h5["optimizer_weights"]
        step = old["adam/iteration"][()]
        ms = [old[f"adam/{key}_momentum"][()] for key in trainable]
        vs = [old[f"adam/{key}_velocity"][()] for key in trainable]
        blocks = ms + vs + ([np.zeros(1, np.float32)] * len(ms) if vhats else [])
        del h5["optimizer_weights"]
        group = h5.create_group("optimizer_weights")
        names = ["Adam/iterations:0"] + [
            f"training/Adam/Variable{'' if k == 0 else f'_{k}'}:0" for k in range(len(blocks) - drop)
        ]
        group.attrs["weight_names"] = np.array([n.encode() for n in names])
        group.create_dataset(names[0], data=np.int64(step))
        for name, value in zip(names[1:], blocks, strict=False):
            group.create_dataset(name, data=value)
        h5.attrs["training_config"] = json.dumps(
            {
                "optimizer_config": {
                    "class_name": "Adam",
                    "config": {"lr": 0.01, "beta_1": 0.9, "beta_2": 0.999, "decay": 0.0, "epsilon": 1e-07},
                },
                "loss": "sparse_categorical_crossentropy",
                "metrics": ["accuracy"],
                "sample_weight_mode": None,
                "loss_weights": None,
            }
        )
        h5.attrs["keras_version"] = b"2.0.9"
    return path


@pytest.mark.parametrize("vhats", [False, True], ids=["keras2.0", "keras2.1.3+"])
def test_standalone_keras2_optimizer_state_is_restored(tmp_path, vhats):
    reference = cl.models.load_model(HERE / "residual_sep.h5").optimizer.get_state()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # restored: no warning
        model = cl.models.load_model(_as_keras2_file(tmp_path, vhats=vhats))
    state = model.optimizer.get_state()
    assert int(state["iterations"]) == int(reference["iterations"]) > 0
    for key in ("m", "v"):
        np.testing.assert_array_equal(state[key], reference[key])


def test_standalone_keras2_optimizer_state_that_does_not_fit_warns(tmp_path):
    with pytest.warns(UserWarning, match=r"optimizer state was not restored \(the file's .* Keras 2 optimizer"):
        model = cl.models.load_model(_as_keras2_file(tmp_path, drop=1))
    assert model.compiled and model.optimizer.iterations == 0
