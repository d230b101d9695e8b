"""Images read by `cnnlab predict` are never changed without a word (issue 11, item 10)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cnnlab.cli import read_image
from cnnlab.errors import CommandError


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((28, 28), 32768, np.uint16)).save(path)
    assert abs(read_image(str(path), invert="no").mean() - 127.5) < 1


def test_transparent_rgba_is_laid_on_white(tmp_path):
    path = tmp_path / "clear.png"
    Image.fromarray(np.zeros((28, 28, 4), np.uint8)).save(path)
    assert (read_image(str(path), invert="no") == 255).all()


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.ones((28, 28)) * (1 + 2j), "expected real pixel values, received dtype complex128"),
        (np.full((28, 28), np.nan), "784 pixel"),
    ],
)
def test_complex_or_nan_npy_is_refused(tmp_path, array, message):
    path = tmp_path / "odd.npy"
    np.save(path, array)
    with pytest.raises(CommandError, match=message):
        read_image(str(path))
