"""Saving and loading models: round trips, resuming training, and damaged files."""

from __future__ import annotations

import json
import os
import stat
import zipfile

import numpy as np
import pytest

import cnnlab as cl
from cnnlab.layers import AveragePooling2D, Conv2D, Dense, Dropout, Flatten, MaxPool2D
from cnnlab.saving import ModelFileError, NotRegularFileError


def trained_model(optimizer=None):
    cl.set_seed(5)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8, 8, 1))
    y = rng.integers(0, 3, 64)
    model = cl.Sequential(
        [
            cl.layers.Input((8, 8, 1)),
            Conv2D(3, 3, strides=2, padding="same", activation="relu"),
            MaxPool2D(padding="same"),
            AveragePooling2D(1),
            Flatten(),
            Dropout(0.2),
            Dense(3, activation="softmax"),
        ],
        name="saved",
    )
    model.compile(optimizer or cl.optimizers.Adam(0.01), "sparse_categorical_crossentropy", ["accuracy"])
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    return model, x, y


def test_round_trip_is_bit_identical(tmp_path):
    model, x, _ = trained_model()
    model.metadata = {"scale": 1.0}
    path = model.save(tmp_path / "m.cnnlab")
    loaded = cl.models.load_model(path)
    assert [type(layer).__name__ for layer in loaded.layers] == [type(layer).__name__ for layer in model.layers]
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(model.predict(x), loaded.predict(x))
    assert loaded.metadata == {"scale": 1.0} and loaded.name == "saved"
    assert [p.name for p in tmp_path.iterdir()] == ["m.cnnlab"]


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "rmsprop", "adamw", "adagrad", "adadelta", "adamax", "nadam"])
def test_training_resumes_exactly(tmp_path, optimizer):
    """Every optimizer's state (moments, accumulators, Nadam's scalar momentum product) survives the
    file: training continued from the file equals training continued in memory, bit for bit."""
    model, x, y = trained_model(optimizer)
    model.save(tmp_path / "m.cnnlab")
    loaded = cl.models.load_model(tmp_path / "m.cnnlab")
    assert loaded.optimizer.iterations == model.optimizer.iterations == 8
    for m in (model, loaded):
        cl.set_seed(9)
        m.fit(x, y, epochs=1, batch_size=16, verbose=0)
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_truncated_file(tmp_path):
    model, _, _ = trained_model()
    path = model.save(tmp_path / "m.cnnlab")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match=r"m.cnnlab: not a cnnlab model file \(it is not a zip archive"):
        cl.models.load_model(path)


def test_corrupted_weights(tmp_path):
    model, _, _ = trained_model()
    path = model.save(tmp_path / "m.cnnlab")
    with zipfile.ZipFile(path) as src:
        entries = {name: src.read(name) for name in src.namelist()}
    entries["weights/0000.npy"] = b"garbage"
    with zipfile.ZipFile(path, "w") as dst:
        for name, data in entries.items():
            dst.writestr(name, data)
    with pytest.raises(ModelFileError, match=r"weights/0000.npy is corrupt"):
        cl.models.load_model(path)


def test_foreign_and_newer_files(tmp_path):
    foreign = tmp_path / "x.zip"
    with zipfile.ZipFile(foreign, "w") as archive:
        archive.writestr("hello.txt", "hi")
    with pytest.raises(ModelFileError, match=r"not a cnnlab model \(no cnnlab.json inside\)"):
        cl.models.load_model(foreign)
    model, _, _ = trained_model()
    path = model.save(tmp_path / "m.cnnlab")
    with zipfile.ZipFile(path) as src:
        entries = {name: src.read(name) for name in src.namelist()}
    manifest = json.loads(entries["cnnlab.json"])
    manifest["version"] = 99
    entries["cnnlab.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(path, "w") as dst:
        for name, data in entries.items():
            dst.writestr(name, data)
    with pytest.raises(ModelFileError, match=r"format version 99.*reads versions up to 1. Upgrade cnnlab"):
        cl.models.load_model(path)
    with pytest.raises(ModelFileError, match="no such model file"):
        cl.models.load_model(tmp_path / "missing.cnnlab")


def test_failed_save_leaves_old_file_intact(tmp_path, monkeypatch):
    model, _, _ = trained_model()
    path = model.save(tmp_path / "m.cnnlab")
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("cnnlab.saving._npy_bytes", boom)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.cnnlab"]


def test_unbuilt_model_cannot_be_saved(tmp_path):
    with pytest.raises(ValueError, match="not built yet"):
        cl.Sequential([Dense(2)]).save(tmp_path / "m.cnnlab")


def test_model_checkpoint_saves_best_only(tmp_path):
    model, x, y = trained_model()
    ckpt = cl.callbacks.ModelCheckpoint(str(tmp_path / "e{epoch:02d}.cnnlab"), monitor="loss", save_best_only=True)
    history = model.fit(x, y, epochs=4, batch_size=16, verbose=0, callbacks=[ckpt])
    losses = history.history["loss"]
    improved = [i + 1 for i, v in enumerate(losses) if v < min(losses[:i], default=np.inf)]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"e{i:02d}.cnnlab" for i in improved]
    best = cl.models.load_model(tmp_path / f"e{improved[-1]:02d}.cnnlab")
    assert best.count_params() == model.count_params()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs a POSIX system")
def test_save_never_replaces_a_fifo_or_directory(tmp_path):
    # the fault campaign's model.save("/dev/null"), without touching the real /dev/null
    model, _, _ = trained_model()
    pipe = tmp_path / "null"
    os.mkfifo(pipe)
    with pytest.raises(NotRegularFileError, match=r"cannot save the model to .*null: expected a regular file") as info:
        model.save(pipe)
    assert isinstance(info.value, OSError) and stat.S_ISFIFO(os.lstat(pipe).st_mode)
    with pytest.raises(OSError, match="received a directory"):
        model.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["null"]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_save_keeps_mode_and_writes_through_a_symlink(tmp_path):
    model, x, _ = trained_model()
    real = tmp_path / "models" / "m.cnnlab"
    real.parent.mkdir()
    real.write_bytes(b"old")
    real.chmod(0o600)
    link = tmp_path / "current.cnnlab"
    link.symlink_to(real)
    assert model.save(link) == link
    assert link.is_symlink() and stat.S_IMODE(real.stat().st_mode) == 0o600
    np.testing.assert_array_equal(cl.models.load_model(link).predict(x), model.predict(x))


def test_model_checkpoint_to_an_unwritable_place_fails_before_the_first_epoch(tmp_path):
    model, x, y = trained_model()
    (tmp_path / "file.txt").write_text("not a folder")
    epochs = []

    class Epochs(cl.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            epochs.append(epoch)

    (tmp_path / "folder").mkdir()
    for filepath, reason in [
        ("file.txt/e{epoch:02d}.cnnlab", "file.txt is a file, not a folder"),
        ("file.txt/{epoch}/m.cnnlab", "file.txt is a file, not a folder"),
        ("file.txt/sub/m.cnnlab", "file.txt is a file, not a folder"),
        ("folder", "received a directory"),
    ]:
        ckpt = cl.callbacks.ModelCheckpoint(str(tmp_path / filepath))
        with pytest.raises(OSError, match="ModelCheckpoint: cannot save checkpoints to") as info:
            model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[Epochs(), ckpt])
        assert str(tmp_path / filepath) in str(info.value) and reason in str(info.value)
    assert epochs == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt", "folder"]
