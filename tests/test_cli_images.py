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


def test_own_colour_model_is_predicted_and_explained_from_your_own_image(tmp_path, capsys):
    """A 32x32 RGB graph model (BatchNormalization, residual Add, global pooling), saved as a Keras
    file: predict and explain model take the user's PNG, converted to RGB and resized to 32x32 as
    PIL does it, with the page's overlays; without --image the command says how to use one."""
    import json
    import re

    from PIL import Image

    import cnnlab as cl
    from cnnlab import cli

    cl.set_random_seed(3)
    L = cl.layers
    inp = cl.Input((32, 32, 3))
    h = L.BatchNormalization(name="bn")(L.Conv2D(4, 3, padding="same", name="conv")(inp))
    h = L.Add(name="res")([L.ReLU(name="relu")(h), L.Conv2D(4, 1, name="proj")(inp)])
    out = L.Dense(3, activation="softmax", name="probs")(L.GlobalAveragePooling2D(name="gap")(h))
    model = cl.Model(inp, out, name="colour")
    path = model.save(tmp_path / "colour.keras")
    rgb = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    png = tmp_path / "photo.png"
    Image.fromarray(rgb).save(png)
    expected = np.asarray(Image.fromarray(rgb).resize((32, 32), Image.Resampling.BILINEAR), dtype=np.float64)
    np.testing.assert_array_equal(cli.read_image(str(png), "auto", (32, 32, 3)), expected)

    assert cli.main(["predict", str(path), str(png)]) == 0
    probs = model.predict(expected[None])[0]
    best = int(np.argmax(probs))
    assert f"{best} {probs[best]:.3f}" in capsys.readouterr().out  # no class names: output numbers
    assert cli.main(["predict", str(path), str(png), "--scale", "1/255"]) == 0  # a model trained on 0..1
    scaled = model.predict(expected[None] / 255)[0]
    assert f"{int(np.argmax(scaled))} {scaled.max():.3f}" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["predict", str(path), str(png), "--scale", "1/0"])
    assert "expected a positive number such as 1/255" in capsys.readouterr().err

    page = tmp_path / "page.html"
    assert cli.main(["explain", "model", str(path), "--image", str(png), "--html", str(page)]) == 0
    assert "image " + str(png) in capsys.readouterr().out
    data = json.loads(re.search(r"const PAGE = (\{.*?\});\n", page.read_text(), re.S).group(1))
    assert np.array(data["model"]["input"]).shape == (32, 32, 3)
    assert [o["name"].split(" (")[0] for o in data["model"]["overlays"]] == ["Grad-CAM", "saliency"]
    assert data["model"]["weights"] is None and data["model"]["outputs"]["true"] is None

    assert cli.main(["explain", "model", str(path)]) == 1
    assert "pass your own image with --image" in capsys.readouterr().err
    np.save(tmp_path / "wrong.npy", np.zeros((32, 32)))
    assert cli.main(["predict", str(path), str(tmp_path / "wrong.npy")]) == 1
    assert "expected an array of shape (32, 32, 3), received (32, 32)" in capsys.readouterr().err
