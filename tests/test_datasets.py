"""Fashion-MNIST loading: every look-up place, verification, atomic download, errors."""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from cnnlab.datasets import fashion_mnist
from cnnlab.datasets.fashion_mnist import DataNotFoundError, load_data
from cnnlab.datasets.idx import DataFileError, encode_idx, parse_idx
from tests.conftest import write_tiny_fashion


def test_path_argument(tiny_data):
    (x, y), (xt, yt) = load_data(tiny_data)
    assert x.shape == (60, 28, 28) and x.dtype == np.uint8
    assert y.shape == (60,) and y.dtype == np.uint8
    assert xt.shape == (20, 28, 28) and yt.shape == (20,)
    assert list(y[:12]) == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]


def test_uncompressed_files_are_accepted(tmp_path, monkeypatch):
    table = write_tiny_fashion(tmp_path / "raw", gz=False)
    monkeypatch.setattr(fashion_mnist, "FILES", table)
    (x, _), _ = load_data(tmp_path / "raw")
    assert x.shape == (60, 28, 28)


def test_environment_variable(tiny_data, monkeypatch):
    monkeypatch.setenv("CNNLAB_DATA", str(tiny_data))
    (x, _), _ = load_data()
    assert len(x) == 60


def test_explicit_place_without_files_is_an_error_not_a_fallthrough(tiny_data, tmp_path, monkeypatch):
    # the data *is* in the cache, but an explicit empty folder must still fail
    shutil.copytree(tiny_data, fashion_mnist.cache_dir())
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataNotFoundError, match=r"path= argument .*empty.*lacks"):
        load_data(empty)
    monkeypatch.setenv("CNNLAB_DATA", str(tmp_path / "missing"))
    with pytest.raises(DataNotFoundError, match=r"CNNLAB_DATA .*missing.*does not exist"):
        load_data()


def test_cache_then_debian_location(tiny_data, tmp_path, monkeypatch):
    debian = tmp_path / "debian"
    shutil.copytree(tiny_data, debian)
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", debian)
    (x, _), _ = load_data(download=False)
    assert len(x) == 60
    # a different data set in the cache wins over the Debian folder
    table = write_tiny_fashion(fashion_mnist.cache_dir(), n_train=30, seed=1)
    monkeypatch.setattr(fashion_mnist, "FILES", table)
    (x, _), _ = load_data(download=False)
    assert len(x) == 30


def test_bad_magic_is_reported_with_path(tiny_data):
    target = tiny_data / "train-labels-idx1-ubyte.gz"
    target.write_bytes(gzip.compress(b"\x00\x00\x0d\x01" + bytes(8)))
    with pytest.raises(DataFileError, match=r"train-labels-idx1-ubyte.gz: not an IDX file"):
        load_data(tiny_data)


def test_wrong_hash_is_reported(tiny_data):
    target = tiny_data / "t10k-labels-idx1-ubyte.gz"
    labels = parse_idx(gzip.decompress(target.read_bytes()), "x", 1)
    labels[0] = 9 - labels[0]
    target.write_bytes(gzip.compress(encode_idx(labels)))
    with pytest.raises(DataFileError, match=r"t10k-labels-idx1-ubyte.gz: SHA-256 .* expected"):
        load_data(tiny_data)


def test_truncated_gzip_is_reported(tiny_data):
    target = tiny_data / "train-images-idx3-ubyte.gz"
    target.write_bytes(target.read_bytes()[:500])
    with pytest.raises(DataFileError, match=r"train-images-idx3-ubyte.gz: the gzip data is corrupt or truncated"):
        load_data(tiny_data)


def test_truncated_payload_is_reported():
    data = encode_idx(np.zeros((2, 3), np.uint8))[:-1]
    with pytest.raises(DataFileError, match=r"announces \(2, 3\) = 6 bytes of data, found 5"):
        parse_idx(data, "f", 2)


def test_offline_error_lists_places_and_fixes(tiny_data):
    def offline(url: str) -> bytes:
        raise OSError("network unreachable")

    with pytest.raises(DataNotFoundError) as info:
        load_data(opener=offline)
    text = str(info.value)
    assert str(fashion_mnist.cache_dir()) in text
    assert str(fashion_mnist.DEBIAN_DIR) in text
    assert "network unreachable" in text and fashion_mnist.MIRRORS[0] in text
    assert "apt-get install dataset-fashion-mnist" in text and "CNNLAB_DATA" in text


def test_download_writes_verified_files_atomically(tiny_data):
    served = []

    def opener(url: str) -> bytes:
        served.append(url)
        return (tiny_data / url.rsplit("/", 1)[1]).read_bytes()

    (x, y), _ = load_data(opener=opener)
    assert len(x) == 60 and len(served) == 4
    cached = sorted(p.name for p in fashion_mnist.cache_dir().iterdir())
    assert cached == sorted(stem + ".gz" for stem in fashion_mnist.FILES)  # no temp files left
    load_data(opener=lambda url: pytest.fail("must not download again"))


def test_download_of_corrupt_file_keeps_nothing_and_tries_next_mirror(tiny_data, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "MIRRORS", ["bad://a/", "good://b/"])

    def opener(url: str) -> bytes:
        raw = (tiny_data / url.rsplit("/", 1)[1]).read_bytes()
        return raw[: len(raw) // 2] if url.startswith("bad") else raw

    load_data(opener=opener)
    assert not any(p.name.endswith(".part") for p in fashion_mnist.cache_dir().iterdir())

    shutil.rmtree(fashion_mnist.cache_dir())
    monkeypatch.setattr(fashion_mnist, "MIRRORS", ["bad://a/"])
    with pytest.raises(DataNotFoundError, match="corrupt or truncated"):
        load_data(opener=opener)
    assert [p for p in fashion_mnist.cache_dir().iterdir()] == []


def test_download_through_file_url(tiny_data, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "MIRRORS", [Path(tiny_data).as_uri() + "/"])
    (x, _), _ = load_data()
    assert len(x) == 60


REAL = [fashion_mnist.DEBIAN_DIR, fashion_mnist.cache_dir()]


@pytest.mark.skipif(
    not any(not fashion_mnist._missing(p) for p in REAL) and not os.environ.get("CNNLAB_DATA"),
    reason="the real Fashion-MNIST files are not installed (apt-get install dataset-fashion-mnist)",
)
@pytest.mark.slow
def test_real_fashion_mnist():
    (x, y), (xt, yt) = load_data(download=False)
    assert (x.shape, y.shape, xt.shape, yt.shape) == ((60000, 28, 28), (60000,), (10000, 28, 28), (10000,))
    assert x.dtype == y.dtype == np.uint8
    assert np.bincount(y).tolist() == [6000] * 10
    assert np.bincount(yt).tolist() == [1000] * 10
    assert len(fashion_mnist.class_names) == 10 and fashion_mnist.class_names[9] == "Ankle boot"
