"""What a notebook shows for explanations and models (``_repr_html_``, ``__repr__``), without a browser."""

from __future__ import annotations

import html
import json
import re

import numpy as np
import pytest

import cnnlab as cl
from cnnlab import explain_views as views
from cnnlab.errors import InvalidArgumentError
from cnnlab.layers import Conv2D, Dense, MaxPool2D

EXERCISE = np.array([[0, 0, 0, 1, 1, 1]] * 6, dtype="float32").reshape(1, 6, 6, 1)


def edge_conv():
    conv = Conv2D(1, (2, 2), name="edge")
    conv(EXERCISE)
    conv.set_weights([np.array([[-1, 1], [-1, 1]], "float32").reshape(2, 2, 1, 1), np.zeros(1, "float32")])
    return conv


def page_data(fragment: str) -> dict:
    """The JSON the fragment's script reads."""
    return json.loads(re.search(r"const PAGE = (.*);\n", fragment).group(1).replace("<\\/", "</"))


def test_conv_explanation_repr_is_the_arithmetic_and_html_has_text_grids_and_view():
    expl = cl.explain(edge_conv(), EXERCISE, at=(0, 3, 2, 0))
    assert repr(expl) == str(expl) and "array(" not in repr(expl)
    out = expl._repr_html_()
    assert html.escape("0×-1 + 1×1 + 0×-1 + 1×1 + 0 = 2") in out
    # the static grids: window, kernel, products
    assert "window" in out and "kernel" in out and "window × kernel" in out
    root = re.search(r'<div class="cnnlab-view" id="(cnnlab-[0-9a-f]{12})"', out).group(1)
    # every id in the view belongs to this output
    ids = re.findall(r'id="([^"]+)"', out)
    assert ids and all(i == root or i.startswith(root + "-") for i in ids)
    assert f'document.getElementById("{root}")' in out
    # the view opens at the explained cell and holds the layer's whole input and output
    data = page_data(out)
    assert data["at"] == [3, 2, 0]
    panel = data["layers"][0]
    assert np.array_equal(np.array(panel["x"])[..., 0], EXERCISE[0, ..., 0])
    assert np.array(panel["out"]).shape == (5, 5, 1) and panel["kernel"] == [[[[-1.0]], [[1.0]]], [[[-1.0]], [[1.0]]]]
    # self-contained: nothing fetched
    assert not re.search(r"(src|href)=|https?://|import\(|fetch\(", out)


def test_two_displays_of_one_explanation_get_different_ids():
    expl = cl.explain(edge_conv(), EXERCISE, at=(0, 0, 0, 0))
    first, second = (re.search(r'id="(cnnlab-[0-9a-f]+)"', expl._repr_html_()).group(1) for _ in range(2))
    assert first != second


def test_pool_explanation_marks_the_winner():
    x = np.arange(16, dtype="float32").reshape(1, 4, 4, 1)
    expl = cl.explain(MaxPool2D(), x, at=(0, 1, 0, 0))
    out = expl._repr_html_()
    assert "max(8, 9, 12, 13) = 13" in out
    assert re.search(r"background:#ffd54f;font-weight:bold\">13<", out)
    assert page_data(out)["layers"][0]["kind"] == "max"


def test_dense_explanation_html_lists_contributions_and_has_no_window_view():
    dense = Dense(2, name="d")
    x = np.array([[1.0, 2.0, 3.0]], "float32")
    dense(x)
    dense.set_weights([np.array([[1, 0], [2, 0], [-4, 0]], "float32"), np.array([0.5, 0], "float32")])
    expl = cl.explain(dense, x, at=(0, 0))
    out = expl._repr_html_()
    # 1×1 + 2×2 + 3×-4 + 0.5 = -6.5, the largest contribution first
    assert "sum + bias 0.5000 = -6.5000" in out
    products = re.findall(r">([^<>]+)</td></tr>", out[out.index("<table") :])
    assert products == ["-12", "4", "1", "0.5000"]  # then the bold sum
    assert "cnnlab-view" not in out
    assert "_view" not in expl.to_dict()


def test_page_fragment_rejects_ids_that_would_break_the_html():
    with pytest.raises(InvalidArgumentError, match="root_id must be an HTML id"):
        views.page_fragment({"title": "t", "layers": []}, root_id='x" onload="alert(1)')


def test_a_title_cannot_end_the_script():
    panel = views.window_layer_panel(MaxPool2D(), np.arange(16.0).reshape(4, 4, 1), title="</script><b>")
    out = views.page_fragment({"title": "t", "layers": [panel]}, root_id="v1")
    assert out.count("</script>") == 1


def test_float32_grids_are_written_shortest_and_read_back_exactly():
    a = np.array([0.1, 1 / 3, -2.5e-8, -np.inf, np.nan], "float32")
    grid = views._json_grid(a)
    assert grid[:3] == [0.1, float(str(np.float32(1 / 3))), -2.5e-08] and grid[3:] == ["-inf", "nan"]
    assert np.array_equal(np.array(grid[:3], "float32"), a[:3])


def test_model_repr_and_html_summary():
    model = cl.Sequential(
        [
            cl.layers.Input((28, 28, 1)),
            Conv2D(30, (2, 2), activation="relu"),
            MaxPool2D(),
            cl.layers.Flatten(),
            Dense(10, activation="softmax"),
        ],
        name="net",
    )
    text = repr(model)
    # 2·2·1·30 + 30 = 150; 13·13·30 = 5070 inputs to Dense: 5070·10 + 10 = 50,710
    assert text.splitlines()[0] == 'Sequential "net": 4 layers, 50,860 parameters'
    assert "(None, 13, 13, 30)" in text and "50,710" in text
    out = model._repr_html_()
    assert 'Model: "net"' in out and "Total params: 50,860" in out and out.count("<tr>") == 5
    assert "not built yet" in model.__class__([Dense(2)], name="later")._repr_html_()


def test_an_explanation_keeps_only_its_own_sample():
    x = np.zeros((50, 6, 6, 1), "float32")
    x[:, :, 3:] = 1
    expl = cl.explain(edge_conv(), x, at=(7, 1, 1, 0))
    view = expl._view
    assert view["x"].shape == (6, 6, 1) and view["out"].shape == (5, 5, 1)
    assert view["x"].base is None and view["out"].base is None  # copies, not views of the batch
