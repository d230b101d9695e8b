"""MNIST, CIFAR-10 and CIFAR-100 loading on tiny files the tests write: places, hashes,
the restricted unpickler, atomic download, errors. No network is used."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest

import cnnlab as cl
from cnnlab.datasets import _cifar, cifar10, cifar100, mnist
from cnnlab.errors import DataFileError, DataNotFoundError, InvalidArgumentError


def sha(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Nothing real is found: caches in tmp_path, no environment variables, no mirrors."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    for var in ("CNNLAB_MNIST", "CNNLAB_CIFAR10", "CNNLAB_CIFAR100"):
        monkeypatch.delenv(var, raising=False)
    for module in (mnist, cifar10, cifar100):
        monkeypatch.setattr(module, "MIRRORS", ["unreachable://nowhere/"])


def offline(url: str) -> bytes:
    raise OSError("network unreachable")


# ---------------------------------------------------------------- writing tiny files


def write_mnist(folder: Path, monkeypatch, n_train: int = 6, n_test: int = 4) -> tuple[Path, dict]:
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": (np.arange(n_train) % 10).astype(np.uint8),
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": (np.arange(n_test) % 10).astype(np.uint8),
    }
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    folder.mkdir(parents=True, exist_ok=True)
    file = folder / "mnist.npz"
    file.write_bytes(buffer.getvalue())
    monkeypatch.setattr(mnist, "FILES", {"mnist.npz": sha(buffer.getvalue())})
    return file, arrays


class Python2Pickler(pickle._Pickler):
    """Pickles as Python 2 wrote the CIFAR batches: ``str``/``bytes`` as 8-bit strings
    (Python 3's protocol 2 would rebuild bytes through ``_codecs.encode``)."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_string(self, obj: bytes | str) -> None:
        raw = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[bytes] = save_string
    dispatch[str] = save_string


def numpy1_pickle(obj: object) -> bytes:
    """A protocol-2 pickle like the real CIFAR files (Python 2, NumPy 1's ``numpy.core``)."""
    buffer = io.BytesIO()
    Python2Pickler(buffer, protocol=2).dump(obj)
    # protocol 2 names globals as text lines, so the module can be renamed in place
    return buffer.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def batch(n: int, seed: int, labels: dict[str, list[int]]) -> tuple[bytes, np.ndarray]:
    data = np.random.default_rng(seed).integers(0, 256, (n, 3072), dtype=np.uint8)
    content = {b"batch_label": b"tiny", b"data": data, b"filenames": [b"f%d.png" % i for i in range(n)]}
    content.update({key.encode(): value for key, value in labels.items()})
    return numpy1_pickle(content), data


def tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, raw in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            archive.addfile(info, io.BytesIO(raw))
    return buffer.getvalue()


def cifar10_members(sizes=(3, 2, 2, 1, 2), n_test: int = 3, evil: bytes | None = None):
    members, datas, labels = {}, [], []
    for i, n in enumerate(sizes, start=1):
        y = [(i + k) % 10 for k in range(n)]
        raw, data = batch(n, i, {"labels": y})
        members[f"cifar-10-batches-py/data_batch_{i}"] = raw
        datas.append(data)
        labels.extend(y)
    y_test = [9 - k % 10 for k in range(n_test)]
    raw, test = batch(n_test, 99, {"labels": y_test})
    members["cifar-10-batches-py/test_batch"] = raw
    members["cifar-10-batches-py/batches.meta"] = numpy1_pickle({b"label_names": [b"airplane"]})
    if evil is not None:
        members["cifar-10-batches-py/data_batch_1"] = evil
    return members, (np.concatenate(datas), labels), (test, y_test)


def write_cifar10(folder: Path, monkeypatch, evil: bytes | None = None, name="cifar-10-python.tar.gz"):
    members, train, test = cifar10_members(evil=evil)
    raw = tar_gz(members)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(raw)
    monkeypatch.setattr(cifar10, "FILES", {"cifar-10-python.tar.gz": sha(raw)})
    return folder / name, train, test


def write_cifar100(folder: Path, monkeypatch):
    members, expected = {}, {}
    for part, n, seed in (("train", 5, 1), ("test", 3, 2)):
        fine = [(7 * k + seed) % 100 for k in range(n)]
        coarse = [f % 20 for f in fine]
        raw, data = batch(n, seed, {"fine_labels": fine, "coarse_labels": coarse})
        members[f"cifar-100-python/{part}"] = raw
        expected[part] = (data, fine, coarse)
    raw = tar_gz(members)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cifar-100-python.tar.gz").write_bytes(raw)
    monkeypatch.setattr(cifar100, "FILES", {"cifar-100-python.tar.gz": sha(raw)})
    return folder / "cifar-100-python.tar.gz", expected


def channels_last_by_loops(data: np.ndarray) -> np.ndarray:
    """The CIFAR layout written out: row n holds red, green, blue 32x32 planes, row-major."""
    out = np.zeros((len(data), 32, 32, 3), np.uint8)
    for n in range(len(data)):
        for c in range(3):
            for i in range(32):
                for j in range(32):
                    out[n, i, j, c] = data[n, c * 1024 + i * 32 + j]
    return out


# ---------------------------------------------------------------- MNIST


def test_mnist_file_folder_and_public_name(tmp_path, monkeypatch):
    file, arrays = write_mnist(tmp_path / "d", monkeypatch)
    for place in (file, file.parent, str(file)):
        (x, y), (xt, yt) = mnist.load_data(place)
        assert x.shape == (6, 28, 28) and x.dtype == np.uint8 and y.shape == (6,) and y.dtype == np.uint8
        assert np.array_equal(x, arrays["x_train"]) and np.array_equal(yt, arrays["y_test"])
    assert cl.datasets.mnist.load_data is mnist.load_data


def test_mnist_environment_variable_cache_and_keras_cache(tmp_path, monkeypatch):
    file, _ = write_mnist(tmp_path / "d", monkeypatch)
    monkeypatch.setenv("CNNLAB_MNIST", str(file))
    assert len(mnist.load_data(opener=offline)[0][0]) == 6
    monkeypatch.delenv("CNNLAB_MNIST")
    # Keras's cache is found when cnnlab's is empty ...
    write_mnist(tmp_path / "keras" / "datasets", monkeypatch, n_train=3)
    assert len(mnist.load_data(opener=offline)[0][0]) == 3
    # ... and cnnlab's own cache comes first
    write_mnist(mnist.cache_dir(), monkeypatch, n_train=2)
    assert len(mnist.load_data(opener=offline)[0][0]) == 2


def test_mnist_explicit_place_never_falls_through(tmp_path, monkeypatch):
    write_mnist(mnist.cache_dir(), monkeypatch)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataNotFoundError, match=r"MNIST: the file or folder given by path= argument .*empty.* lacks"):
        mnist.load_data(tmp_path / "empty")
    monkeypatch.setenv("CNNLAB_MNIST", str(tmp_path / "gone.npz"))
    with pytest.raises(DataNotFoundError, match=r"CNNLAB_MNIST .*gone.npz.* does not exist"):
        mnist.load_data()


def test_mnist_wrong_hash_and_pickled_npz(tmp_path, monkeypatch):
    file, _ = write_mnist(tmp_path / "d", monkeypatch)
    monkeypatch.setattr(mnist, "FILES", {"mnist.npz": "0" * 64})
    with pytest.raises(DataFileError, match=r"mnist.npz: SHA-256 of the file is [0-9a-f]{64}, expected 0{64}"):
        mnist.load_data(file)
    # an object array can only be read by unpickling: refused even when the hash matches
    buffer = io.BytesIO()
    np.savez(buffer, x_train=np.array([os.getcwd], dtype=object), y_train=np.zeros(1, np.uint8))
    file.write_bytes(buffer.getvalue())
    monkeypatch.setattr(mnist, "FILES", {"mnist.npz": sha(buffer.getvalue())})
    with pytest.raises(DataFileError, match=r"mnist.npz: (lacks|not a readable .npz archive .*allow_pickle)"):
        mnist.load_data(file)
    np.savez(buffer := io.BytesIO(), x_train=np.array([os.getcwd], dtype=object), y_train=np.zeros(1, np.uint8),
             x_test=np.zeros((1, 28, 28), np.uint8), y_test=np.zeros(1, np.uint8))  # fmt: skip
    file.write_bytes(buffer.getvalue())
    monkeypatch.setattr(mnist, "FILES", {"mnist.npz": sha(buffer.getvalue())})
    with pytest.raises(DataFileError, match=r"not a readable .npz archive .*allow_pickle"):
        mnist.load_data(file)


def test_mnist_download_is_verified_and_atomic(tmp_path, monkeypatch):
    file, arrays = write_mnist(tmp_path / "served", monkeypatch)
    monkeypatch.setattr(mnist, "MIRRORS", ["bad://a/", file.parent.as_uri() + "/"])
    calls = []

    def opener(url: str) -> bytes:
        calls.append(url)
        if url.startswith("bad"):
            return file.read_bytes()[:100]  # truncated: refused, the next mirror is tried
        from cnnlab.datasets._loader import urlopen

        return urlopen(url)  # a real file:// fetch

    (x, _), _ = mnist.load_data(opener=opener)
    assert np.array_equal(x, arrays["x_train"]) and len(calls) == 2
    assert [p.name for p in mnist.cache_dir().iterdir()] == ["mnist.npz"]  # no temporary file left
    assert mnist.load_data(opener=lambda url: pytest.fail("downloaded again"))[0][0].shape == (6, 28, 28)


def test_mnist_offline_error_lists_places_and_fixes(tmp_path):
    with pytest.raises(DataNotFoundError) as info:
        mnist.load_data(opener=offline)
    text = str(info.value)
    assert text.startswith("MNIST was not found. Places tried:")
    assert f"{mnist.cache_dir()} (missing)" in text and f"{tmp_path / 'keras' / 'datasets'} (missing)" in text
    assert "download unreachable://nowhere/mnist.npz: network unreachable" in text
    assert "CNNLAB_MNIST" in text and "load_data(path=" in text and "connect to the network" in text
    with pytest.raises(DataNotFoundError, match=r"download \(not tried: download=False\)"):
        mnist.load_data(download=False)


# ---------------------------------------------------------------- CIFAR-10


def test_cifar10_shapes_dtypes_and_layout(tmp_path, monkeypatch):
    file, (data, labels), (test, y_test) = write_cifar10(tmp_path / "d", monkeypatch)
    (x, y), (xt, yt) = cifar10.load_data(file)
    assert (x.shape, y.shape, xt.shape, yt.shape) == ((10, 32, 32, 3), (10, 1), (3, 32, 32, 3), (3, 1))
    assert x.dtype == y.dtype == xt.dtype == yt.dtype == np.uint8
    assert np.array_equal(x, channels_last_by_loops(data)) and np.array_equal(xt, channels_last_by_loops(test))
    assert y[:, 0].tolist() == labels and yt[:, 0].tolist() == y_test
    assert cifar10.class_names[3] == "cat" and len(cifar10.class_names) == 10


def test_cifar10_places(tmp_path, monkeypatch):
    write_cifar10(tmp_path / "keras" / "datasets", monkeypatch, name=cifar10.KERAS_NAME)
    assert len(cifar10.load_data(opener=offline)[0][0]) == 10  # Keras's cache, under Keras's name
    file, *_ = write_cifar10(tmp_path / "d", monkeypatch)
    monkeypatch.setenv("CNNLAB_CIFAR10", str(file.parent))
    assert len(cifar10.load_data(opener=offline)[1][0]) == 3
    monkeypatch.setenv("CNNLAB_CIFAR10", str(tmp_path / "nothing"))
    with pytest.raises(DataNotFoundError, match=r"CNNLAB_CIFAR10 .*nothing.* does not exist"):
        cifar10.load_data(opener=offline)


def test_malicious_pickle_is_refused_without_running(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = numpy1_pickle({b"data": Evil(), b"labels": [0]})
    # even with a matching hash (a tampered archive whose hash was tampered with too)
    file, *_ = write_cifar10(tmp_path / "d", monkeypatch, evil=evil)
    with pytest.raises(DataFileError, match=r"data_batch_1: cannot be read .*refusing to load the global posix.system"):
        cifar10.load_data(file)
    assert not marker.exists()
    for module, name in (("builtins", "eval"), ("subprocess", "Popen"), ("numpy", "load"), ("os", "system")):
        raw = b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"."
        with pytest.raises(DataFileError, match=f"refusing to load the global {module}.{name}"):
            _cifar.restricted_loads(raw, "x")


def test_hash_is_checked_before_anything_is_unpickled(tmp_path, monkeypatch):
    file, *_ = write_cifar10(tmp_path / "d", monkeypatch)
    monkeypatch.setattr(cifar10, "FILES", {"cifar-10-python.tar.gz": "f" * 64})
    monkeypatch.setattr(_cifar, "restricted_loads", lambda *a: pytest.fail("unpickled before the hash was checked"))
    with pytest.raises(DataFileError, match=r"cifar-10-python.tar.gz: SHA-256 of the file is .* expected f{64}"):
        cifar10.load_data(file)


def test_truncated_archive(tmp_path, monkeypatch):
    file, *_ = write_cifar10(tmp_path / "d", monkeypatch)
    cut = file.read_bytes()[: len(file.read_bytes()) // 2]
    file.write_bytes(cut)
    with pytest.raises(DataFileError, match=r"SHA-256 of the file is .*corrupt, truncated"):
        cifar10.load_data(file)
    # with a hash that matches the cut file, the archive reader reports it
    monkeypatch.setattr(cifar10, "FILES", {"cifar-10-python.tar.gz": sha(cut)})
    with pytest.raises(DataFileError, match=r"cifar-10-python.tar.gz: the archive is corrupt or truncated"):
        cifar10.load_data(file)


def test_cifar_batch_contents_are_checked(tmp_path, monkeypatch):
    good, _ = batch(2, 0, {"labels": [1, 2]})
    _cifar.parse_batch(good, {"labels": 10}, "b")
    bad_label, _ = batch(2, 0, {"labels": [1, 10]})
    with pytest.raises(DataFileError, match=r"b: 'labels' should lie in 0..9, found 1..10"):
        _cifar.parse_batch(bad_label, {"labels": 10}, "b")
    short, _ = batch(2, 0, {"labels": [1]})
    with pytest.raises(DataFileError, match=r"2 images but 'labels' has shape \(1,\)"):
        _cifar.parse_batch(short, {"labels": 10}, "b")
    floats = numpy1_pickle({b"data": np.zeros((1, 3072)), b"labels": [0]})
    with pytest.raises(DataFileError, match=r"'data' should be a uint8 array of shape \(N, 3072\), found float64"):
        _cifar.parse_batch(floats, {"labels": 10}, "b")
    members, *_ = cifar10_members()
    del members["cifar-10-batches-py/test_batch"]
    raw = tar_gz(members)
    (tmp_path / "a.tar.gz").write_bytes(raw)
    monkeypatch.setattr(cifar10, "FILES", {"cifar-10-python.tar.gz": sha(raw)})
    with pytest.raises(DataFileError, match=r"has no member cifar-10-batches-py/test_batch"):
        cifar10.load_data(tmp_path / "a.tar.gz")


def test_cifar10_download_through_file_url(tmp_path, monkeypatch):
    file, (data, _), _ = write_cifar10(tmp_path / "served", monkeypatch)
    monkeypatch.setattr(cifar10, "MIRRORS", [file.parent.as_uri() + "/"])
    (x, _), _ = cifar10.load_data()
    assert np.array_equal(x, channels_last_by_loops(data))
    assert [p.name for p in cifar10.cache_dir().iterdir()] == ["cifar-10-python.tar.gz"]


def test_cifar10_bad_download_keeps_nothing_and_offline_text(tmp_path, monkeypatch):
    file, *_ = write_cifar10(tmp_path / "served", monkeypatch)
    with pytest.raises(DataNotFoundError) as info:
        cifar10.load_data(opener=lambda url: file.read_bytes()[:-10])
    assert list(cifar10.cache_dir().iterdir()) == []
    text = str(info.value)
    assert "CIFAR-10 was not found. Places tried:" in text and "SHA-256 of the file is" in text
    assert "unreachable://nowhere/cifar-10-python.tar.gz" in text
    assert str(cifar10.cache_dir()) in text and str(tmp_path / "keras" / "datasets") in text
    assert "CNNLAB_CIFAR10" in text and "cifar-10-python.tar.gz or a folder holding it" in text


# ---------------------------------------------------------------- CIFAR-100


def test_cifar100_fine_and_coarse(tmp_path, monkeypatch):
    file, expected = write_cifar100(tmp_path / "d", monkeypatch)
    for mode, column in (("fine", 1), ("coarse", 2)):
        (x, y), (xt, yt) = cifar100.load_data(mode, path=file)
        assert (x.shape, y.shape, xt.shape, yt.shape) == ((5, 32, 32, 3), (5, 1), (3, 32, 32, 3), (3, 1))
        assert x.dtype == np.uint8 and y.dtype == yt.dtype == np.int64  # int64, as Keras returns them
        assert np.array_equal(x, channels_last_by_loops(expected["train"][0]))
        assert y[:, 0].tolist() == expected["train"][column] and yt[:, 0].tolist() == expected["test"][column]
    assert cifar100.load_data(path=file)[0][1][:, 0].tolist() == expected["train"][1]  # default "fine"


def test_cifar100_label_mode_and_offline(tmp_path, monkeypatch):
    with pytest.raises(
        InvalidArgumentError, match=r"label_mode must be one of \"fine\", \"coarse\"; received label_mode='Fine'"
    ):
        cifar100.load_data("Fine")
    with pytest.raises(DataNotFoundError, match=r"(?s)CIFAR-100 was not found.*cifar100 \(missing\).*CNNLAB_CIFAR100"):
        cifar100.load_data(opener=offline)
