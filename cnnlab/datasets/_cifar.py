"""Reading the CIFAR-10/100 archives without trusting pickle (Keras ``datasets/cifar.py``).

Each archive (``cifar-10-python.tar.gz``, ``cifar-100-python.tar.gz``) holds "batches":
Python 2 pickles of a dict ``{b"data": uint8 array (N, 3072), b"labels" (or
b"fine_labels", b"coarse_labels"): list of N ints, ...}``; a row of ``data`` is the
red, green, then blue 32x32 plane, each row-major.

A pickle can run any code while it is read, so two defences, in this order:

1. the archive's SHA-256 is checked (by the caller) before anything in it is unpickled;
2. :class:`RestrictedUnpickler` resolves only the three globals a NumPy array needs
   (``numpy.ndarray``, ``numpy.dtype``, ``numpy.core.multiarray._reconstruct``, the same
   set Keras allows) and refuses every other one, so a tampered batch (a ``__reduce__``
   calling ``os.system``, say) raises before it can run anything.

The archive is read in memory; nothing is extracted to disk.
"""

from __future__ import annotations

import io
import pickle
import tarfile
import zlib

import numpy as np

from cnnlab.errors import DataFileError

try:  # NumPy >= 2
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - NumPy 1.x
    from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]

#: (module, name) in the pickle -> the object it may stand for; nothing else is resolved.
#: Both spellings of ``multiarray``: the CIFAR files were written by NumPy 1 (``numpy.core``),
#: NumPy 2 writes ``numpy._core``. The objects are given directly, so no module is imported.
ALLOWED_GLOBALS = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild NumPy arrays and plain data (dicts, lists, bytes,
    numbers) and nothing else: every other global is refused before it is looked up."""

    def find_class(self, module: str, name: str) -> object:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load the global {module}.{name}: a CIFAR batch holds only NumPy arrays "
                "and plain data, so the file is corrupt or malicious"
            ) from None


def restricted_loads(data: bytes, where: str) -> object:
    """Unpickle ``data`` with :class:`RestrictedUnpickler` (Python 2 strings read as bytes)."""
    try:
        return RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as exc:  # noqa: BLE001 - any failure of a bad pickle is a bad file
        raise DataFileError(f"{where}: cannot be read as a CIFAR batch ({type(exc).__name__}: {exc}).") from exc


def read_members(raw: bytes, names: list[str], where: str) -> dict[str, bytes]:
    """The bytes of the members ``names`` of the tar.gz archive ``raw``."""
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:*") as archive:
            for name in names:
                try:
                    member = archive.getmember(name)
                except KeyError:
                    raise DataFileError(f"{where}: the archive has no member {name}.") from None
                handle = archive.extractfile(member)
                if handle is None:
                    raise DataFileError(f"{where}: the archive member {name} is not a regular file.")
                found[name] = handle.read()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise DataFileError(f"{where}: the archive is corrupt or truncated ({exc}). Delete it and load again.") from exc
    return found


def parse_batch(data: bytes, label_keys: dict[str, int], where: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One CIFAR batch -> ``(images, labels)``: uint8 images ``(N, 32, 32, 3)`` (channels last,
    as Keras returns them) and, for each ``label_key -> number of classes``, int64 ``(N,)``."""
    batch = restricted_loads(data, where)
    if not isinstance(batch, dict):
        raise DataFileError(f"{where}: expected a dict, found {type(batch).__name__}.")
    batch = {key.decode("utf8") if isinstance(key, bytes) else key: value for key, value in batch.items()}
    images = batch.get("data")
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 2 or images.shape[1] != 3072:
        shown = f"{images.dtype} {images.shape}" if isinstance(images, np.ndarray) else type(images).__name__
        raise DataFileError(f"{where}: 'data' should be a uint8 array of shape (N, 3072), found {shown}.")
    labels = {key: _labels(batch, key, count, len(images), where) for key, count in label_keys.items()}
    # data[n, c*1024 + i*32 + j] is channel c of pixel (i, j): (N, 3, 32, 32) -> (N, 32, 32, 3)
    return np.ascontiguousarray(images.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)), labels


def _labels(batch: dict, key: str, num_classes: int, n: int, where: str) -> np.ndarray:
    if key not in batch:
        raise DataFileError(f"{where}: has no {key!r} (keys: {sorted(map(str, batch))}).")
    try:
        labels = np.asarray(batch[key], dtype=np.int64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise DataFileError(f"{where}: {key!r} should be a list of integers ({exc}).") from exc
    if labels.shape != (n,):
        raise DataFileError(f"{where}: {n} images but {key!r} has shape {labels.shape}.")
    if n and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataFileError(
            f"{where}: {key!r} should lie in 0..{num_classes - 1}, found {labels.min()}..{labels.max()}."
        )
    return labels
