"""Reading the IDX format of MNIST-style data sets.

An IDX file is a 4-byte magic number ``0x00 0x00 <type> <ndim>``, then ``ndim``
big-endian uint32 dimensions, then the data in C order. Fashion-MNIST uses type
``0x08`` (unsigned byte) for both images (ndim 3) and labels (ndim 1).
"""

from __future__ import annotations

import gzip
import zlib

import numpy as np

from cnnlab.errors import DataFileError as DataFileError  # re-exported: its home before cnnlab.errors

_UBYTE = 0x08


def decompress(raw: bytes, where: str) -> bytes:
    """Gunzip ``raw`` if it is gzip data, else return it unchanged."""
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataFileError(
            f"{where}: the gzip data is corrupt or truncated ({exc}). "
            "Delete the file and load again so it is fetched anew."
        ) from exc


def parse_idx(data: bytes, where: str, expected_ndim: int) -> np.ndarray:
    """Parse decompressed IDX bytes into a read-only-free uint8 array.

    >>> parse_idx(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9]), "x", 1)
    array([7, 8, 9], dtype=uint8)
    """
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != _UBYTE:
        raise DataFileError(
            f"{where}: not an IDX file of unsigned bytes (magic number "
            f"{data[:4].hex() or 'missing'}, expected 000008{expected_ndim:02x}). "
            "The file is corrupt or of another kind; delete it and load again."
        )
    ndim = data[3]
    if ndim != expected_ndim:
        raise DataFileError(
            f"{where}: expected an IDX array of {expected_ndim} dimension(s), "
            f"found {ndim}. Images and labels may have been swapped."
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataFileError(f"{where}: the IDX header is truncated ({len(data)} bytes).")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    size = int(np.prod(dims, dtype=np.int64))
    if len(data) - header != size:
        raise DataFileError(
            f"{where}: the header announces {dims} = {size} bytes of data, found "
            f"{len(data) - header}. The file is truncated or corrupt; delete it and load again."
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims).copy()


def encode_idx(array: np.ndarray) -> bytes:
    """Encode a uint8 array as IDX bytes (the inverse of :func:`parse_idx`).

    >>> parse_idx(encode_idx(np.arange(6, dtype=np.uint8).reshape(2, 3)), "x", 2)
    array([[0, 1, 2],
           [3, 4, 5]], dtype=uint8)
    """
    arr = np.ascontiguousarray(array, dtype=np.uint8)
    head = bytes([0, 0, _UBYTE, arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
    return head + arr.tobytes()
