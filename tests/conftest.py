"""Shared test helpers: tiny IDX data sets written on the fly, clean layer names."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest

import cnnlab as cl
from cnnlab.datasets import fashion_mnist
from cnnlab.datasets.idx import encode_idx


def write_tiny_fashion(
    folder: Path, n_train: int = 60, n_test: int = 20, seed: int = 0, gz: bool = True
) -> dict[str, tuple[int, str]]:
    """Write a small, learnable Fashion-MNIST look-alike; return the FILES table for it."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    table = {}

    def images_for(labels: np.ndarray) -> np.ndarray:
        # each class lights up its own band of rows, plus noise: easy but not trivial
        imgs = rng.integers(0, 60, size=(len(labels), 28, 28)).astype(np.uint8)
        for i, label in enumerate(labels):
            imgs[i, 2 * label + 3 : 2 * label + 6, 4:24] = 200
        return imgs

    y_train = np.arange(n_train, dtype=np.uint8) % 10
    y_test = np.arange(n_test, dtype=np.uint8) % 10
    arrays = {
        "train-images-idx3-ubyte": images_for(y_train),
        "train-labels-idx1-ubyte": y_train,
        "t10k-images-idx3-ubyte": images_for(y_test),
        "t10k-labels-idx1-ubyte": y_test,
    }
    for stem, arr in arrays.items():
        raw = encode_idx(arr)
        table[stem] = (arr.ndim, hashlib.sha256(raw).hexdigest())
        if gz:
            (folder / (stem + ".gz")).write_bytes(gzip.compress(raw))
        else:
            (folder / stem).write_bytes(raw)
    return table


@pytest.fixture
def tiny_data(tmp_path, monkeypatch):
    """A tiny data set in tmp_path/data whose hashes the loader accepts; nothing else is found."""
    folder = tmp_path / "data"
    table = write_tiny_fashion(folder)
    monkeypatch.setattr(fashion_mnist, "FILES", table)
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", tmp_path / "no-debian")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CNNLAB_DATA", raising=False)
    return folder


def train_net2(data_folder: Path, out: Path, epochs: int = 1, *extra: str) -> Path:
    """Train net2 on a tiny data set with the CLI and return the model file."""
    from cnnlab import cli

    args = ["train", "--model", "net2", "--epochs", str(epochs), "--data", str(data_folder), "--out", str(out)]
    assert cli.main([*args, "--verbose", "0", *extra]) == 0
    return out


@pytest.fixture(autouse=True)
def _fresh_state():
    cl.clear_session()
    cl.config.set_floatx("float32")
    yield
    cl.config.set_floatx("float32")
