"""Damaged or hand-edited model files, odd paths and metadata (issue 11, items 11 and 13): every
problem is a ModelFileError (or InvalidArgumentError for a bad argument) that names the file."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

import cnnlab as cl
from cnnlab.errors import ArgumentTypeError, InvalidArgumentError, ModelFileError
from cnnlab.saving import MANIFEST


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    cl.set_random_seed(0)
    model = cl.Sequential([cl.layers.Input((3,)), cl.layers.Dense(2), cl.layers.Dense(1)])
    model.compile("adam", "mse")
    model.fit(np.ones((4, 3)), np.ones((4, 1)), verbose=0)
    path = tmp_path_factory.mktemp("models") / "m.cnnlab"
    model.save(path)
    return path


def rewrite(src, dst, edit_manifest=None, replace=None):
    with zipfile.ZipFile(src) as old, zipfile.ZipFile(dst, "w") as new:
        for name in old.namelist():
            data = old.read(name)
            if name == MANIFEST and edit_manifest is not None:
                data = json.dumps(edit_manifest(json.loads(data))).encode()
            if replace and name in replace:
                data = replace[name]
            new.writestr(name, data)
    return dst


def npy(array):
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def setitem(path, value):
    def edit(manifest):
        target = manifest
        for key in path[:-1]:
            target = target[key]
        if value is KeyError:
            del target[path[-1]]
        else:
            target[path[-1]] = value
        return manifest

    return edit


TAMPERINGS = {
    "unknown optimizer": setitem(("compile", "optimizer", "name"), "adamw"),
    "no loss": setitem(("compile", "loss"), KeyError),
    "optimizer a string": setitem(("compile", "optimizer"), "adam"),
    "optimizer bad setting": setitem(("compile", "optimizer", "learning_rate"), "fast"),
    "null shapes": setitem(("weights",), None),
    "null shape": setitem(("weights", 0), None),
    "a JSON list": lambda m: [m],
    "string version": setitem(("version",), "1"),
    "version 0": setitem(("version",), 0),
    "no model": setitem(("model",), KeyError),
    "model a list": setitem(("model",), []),
    "layers null": setitem(("model", "layers"), None),
    "slots a string": setitem(("optimizer_slots",), "m"),
    "metadata a list": setitem(("metadata",), [1, 2]),
}


@pytest.mark.parametrize("name", list(TAMPERINGS))
def test_tampered_manifest_is_a_model_file_error(saved, tmp_path, name):
    path = rewrite(saved, tmp_path / "t.cnnlab", TAMPERINGS[name])
    with pytest.raises(ModelFileError, match=str(path).replace("\\", "\\\\")):
        cl.models.load_model(path)


def test_missing_metrics_mean_none(saved, tmp_path):
    path = rewrite(saved, tmp_path / "t.cnnlab", setitem(("compile", "metrics"), KeyError))
    assert cl.models.load_model(path).compiled


def test_mis_shaped_optimizer_moment_is_not_silently_reset(saved, tmp_path):
    path = rewrite(saved, tmp_path / "t.cnnlab", replace={"optimizer/m.npy": npy(np.zeros(5, "float32"))})
    with pytest.raises(ModelFileError, match=r"optimizer/m.npy has shape \(5,\).*shape \(11,\)"):
        cl.models.load_model(path)
    assert cl.models.load_model(path, compile=False).count_params() == 11
    path = rewrite(saved, tmp_path / "u.cnnlab", replace={"optimizer/iterations.npy": npy(np.array(-3))})
    with pytest.raises(ModelFileError, match=r"iterations"):
        cl.models.load_model(path)


@pytest.mark.parametrize("bad", [None, 3, ["m.cnnlab"]])
def test_load_model_path_of_the_wrong_type(bad):
    with pytest.raises(ArgumentTypeError, match=r"load_model: expected path to be a str or os.PathLike"):
        cl.models.load_model(bad)


def test_empty_path():
    with pytest.raises(InvalidArgumentError, match=r"load_model: expected path to name a file"):
        cl.models.load_model("")


def test_numpy_values_in_metadata_are_saved_as_numbers(saved, tmp_path):
    model = cl.models.load_model(saved)
    model.metadata = {"scale": np.float32(0.5), "classes": np.arange(3), "n": np.int64(7), "ok": np.bool_(True)}
    loaded = cl.models.load_model(model.save(tmp_path / "meta.cnnlab"))
    assert loaded.metadata == {"scale": 0.5, "classes": [0, 1, 2], "n": 7, "ok": True}


@pytest.mark.parametrize(
    ("metadata", "message"), [({"f": print}, "builtin_function_or_method"), ({"x": np.nan}, "NaN")]
)
def test_metadata_that_json_cannot_hold(saved, tmp_path, metadata, message):
    model = cl.models.load_model(saved)
    model.metadata = metadata
    with pytest.raises(InvalidArgumentError, match=f"metadata.*{message}"):
        model.save(tmp_path / "meta.cnnlab")
    assert not (tmp_path / "meta.cnnlab").exists()
