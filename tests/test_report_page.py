"""The page form of the lecture report (``report.html``) and the model page's weight panel:
the data they hold, checked against independent counts and against the library's own results."""

from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import pytest

import cnnlab as cl
from cnnlab import report_page as rp
from cnnlab.attribution import explain_prediction
from cnnlab.layers import Conv2D, Dense, Flatten, MaxPool2D

NAMES = [f"class {k}" for k in range(4)]


def small_cnn() -> cl.Sequential:
    cl.set_random_seed(3)
    return cl.Sequential(
        [cl.layers.Input((8, 8, 1)), Conv2D(3, 3, activation="relu"), MaxPool2D(), Flatten(), Dense(4, "softmax")]
    )


def small_mlp() -> cl.Sequential:
    cl.set_random_seed(4)
    return cl.Sequential([cl.layers.Input((8, 8, 1)), Flatten(), Dense(6, "relu"), Dense(4, "softmax")])


def decode_png(url: str) -> np.ndarray:
    from PIL import Image

    assert url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))


@pytest.fixture
def images():
    rng = np.random.default_rng(0)
    return rng.uniform(0, 255, size=(40, 8, 8, 1)), np.arange(40) % 4


@pytest.mark.parametrize(("build", "method"), [(small_cnn, "grad_cam"), (small_mlp, "saliency")])
def test_net_data_cells_and_explanations(build, method, images):
    x, labels = images
    model = build()
    predicted = model.predict(x, verbose=0).argmax(axis=1)
    data = rp.net_data(model, "m", x, labels, predicted, NAMES, per_cell=3, accuracy=0.5)
    assert data["method"] == method and data["accuracy"] == 0.5
    # the confusion matrix and the cells' images, counted with plain loops
    expected = [[0] * 4 for _ in range(4)]
    pairs: dict[str, list[int]] = {}
    for i, (t, p) in enumerate(zip(labels, predicted, strict=True)):
        expected[t][p] += 1
        if t != p:
            pairs.setdefault(f"{t},{p}", []).append(i)
    assert data["confusion"] == expected
    assert data["cells"] == {key: ids[:3] for key, ids in pairs.items()}
    assert sum(expected[t][t] for t in range(4)) < 40  # the random model makes mistakes to show
    shown = sorted(i for ids in data["cells"].values() for i in ids)
    assert sorted(map(int, data["explained"])) == shown
    for i in shown:
        e = data["explained"][str(i)]
        result = explain_prediction(model, x[i], method=method, class_names=NAMES)
        assert e["class"] == result.class_index == predicted[i]
        assert data["notes"][e["note"]] == result.note
        assert e["layer"] == result.layer_name == ("max_pooling2d" if method == "grad_cam" else None)
        assert e["score"] == round(result.score, 4) and e["kind"] == "logit"
        # the heatmap: |h| / max|h| in steps of 1/32, as 8-bit grey
        h = np.abs(result.heatmap) / np.abs(result.heatmap).max()
        assert np.array_equal(decode_png(e["heat"]), np.round(np.round(h * 32) / 32 * 255).astype(np.uint8))
    assert len(data["notes"]) == len(set(data["notes"])) <= 4  # one note per predicted class at most


def test_report_html_holds_the_data_and_nothing_from_the_network(images, tmp_path):
    x, labels = images
    model = small_cnn()
    predicted = model.predict(x, verbose=0).argmax(axis=1)
    nets = [rp.net_data(model, "cnn", x, labels, predicted, NAMES)]
    data = rp.report_page_data(nets, x, labels, NAMES, title="a </script> title", summary="table")
    path = rp.write_report_page(tmp_path / "report.html", data)
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]  # no temporary file left
    text = path.read_text(encoding="utf-8")
    assert json.loads(re.search(r"const R = (\{.*?\});\n", text, re.S).group(1)) == data
    assert "</script>" not in text.split("const R = ", 1)[1].split("\n", 1)[0]
    assert not re.search(r"(src|href)=\"https?:", text) and "fetch(" not in text
    # every shown image's pixels are stored once, scaled so the largest value of the set is white
    for i, entry in data["images"].items():
        assert entry["true"] == labels[int(i)]
        expected = np.round(np.clip(x[int(i), ..., 0] / x.max(), 0, 1) * 255).astype(np.uint8)
        assert np.array_equal(decode_png(entry["png"]), expected)
    with pytest.raises(cl.errors.InvalidArgumentError, match="root_id must be an HTML id"):
        rp.report_html(data, root_id="1 bad")


def test_model_page_weight_panel_is_explain_gradient(tiny_data, tmp_path, capsys):
    """``cnnlab explain model --html``: the panel's text is ``str(cl.explain_gradient(...))`` for the
    page's batch (the shown test image and the next ones), the model file's own optimizer."""
    from cnnlab import cli
    from cnnlab.datasets import fashion_mnist
    from tests.conftest import train_net2

    model_file = train_net2(tiny_data, tmp_path / "net2.cnnlab")
    page_file = tmp_path / "model.html"
    args = ["explain", "model", str(model_file), "--index", "15", "--data", str(tiny_data), "--html", str(page_file)]
    assert cli.main(args) == 0
    text = page_file.read_text(encoding="utf-8")
    weights = json.loads(re.search(r"const PAGE = (\{.*?\});\n", text, re.S).group(1))["model"]["weights"]
    batch = [15, 16, 17, 18, 19, 0, 1, 2]  # 20 test images: the batch wraps around
    assert cli.weight_batch(20, 15) == batch
    assert "#15, #16, #17, #18, #19, #0, #1, #2" in weights["note"] and "Adam (the model file's own" in weights["note"]
    model = cl.saving.load_model(model_file)
    assert [(c["layer"], c["weight"]) for c in weights["choices"]] == [
        (model.layers[0].name, "kernel"),
        (model.layers[0].name, "bias"),
        (model.layers[-1].name, "kernel"),
        (model.layers[-1].name, "bias"),
    ]
    _, (x_test, y_test) = fashion_mnist.load_data(tiny_data)
    x = x_test[batch].reshape(-1, 28, 28, 1).astype(np.float64)
    y = cl.utils.to_categorical(y_test[batch], 10)
    for choice in weights["choices"]:
        result = cl.explain_gradient(model, x, y, layer_name=choice["layer"], weight=choice["weight"])
        assert choice["text"] == str(result) and choice["at"] == list(result.at)
        assert f"w = {result.old_value:.9g} -> {result.new_value:.9g}" in choice["text"]
    # the default weight: the first Conv2D's kernel entry with the largest |gradient|
    assert "the entry with the largest |gradient|" in weights["choices"][0]["text"]
    first = weights["choices"][0]
    assert first["label"] == f"{model.layers[0].name}.kernel[{', '.join(map(str, first['at']))}]"
