"""The interactive explain page in a real headless Chromium (Debian's ``chromium`` package,
driven by Playwright's Python package). Skipped, with the reason, when no browser is there."""

from __future__ import annotations

import shutil

import pytest

from cnnlab import cli

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium found (apt-get install chromium)"),
    pytest.mark.slow,
]

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
EXERCISE = "0 0 0 1 1 1; " * 5 + "0 0 0 1 1 1"


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def open_page(browser, tmp_path, args):
    html = tmp_path / "page.html"
    assert cli.main(["explain", *args, "--html", str(html)]) == 0
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(html.as_uri())
    return page, errors


def window_cells(page):
    return sorted(
        (int(td.get_attribute("data-r")), int(td.get_attribute("data-q")))
        for td in page.query_selector_all("#input td.win")
    )


def test_clicking_output_cells_highlights_window_and_arithmetic(browser, tmp_path, capsys):
    page, errors = open_page(browser, tmp_path, ["conv", "--image", EXERCISE, "--kernel", "-1 1; -1 1"])
    page.click('#output td[data-r="3"][data-q="2"]')
    assert window_cells(page) == [(3, 2), (3, 3), (4, 2), (4, 3)]
    text = page.inner_text("#arith")
    assert "0×-1 + 1×1 + 0×-1 + 1×1 + 0 = 2" in text and "window rows 3..4, columns 2..3" in text
    assert page.query_selector_all("#output td.sel")[0].get_attribute("data-q") == "2"
    page.keyboard.press("ArrowRight")
    assert window_cells(page) == [(3, 3), (3, 4), (4, 3), (4, 4)]
    assert "1×-1 + 1×1 + 1×-1 + 1×1 + 0 = 0" in page.inner_text("#arith")
    page.keyboard.press("ArrowUp")
    assert window_cells(page) == [(2, 3), (2, 4), (3, 3), (3, 4)]
    shot = tmp_path / "page.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 5_000
    assert errors == []


def test_padding_cells_are_marked_and_win_nothing(browser, tmp_path, capsys):
    page, errors = open_page(browser, tmp_path, ["pool", "--image", "arange:5x5", "--padding", "same"])
    page.click('#output td[data-r="2"][data-q="2"]')
    assert window_cells(page) == [(4, 4), (4, 5), (5, 4), (5, 5)]
    padded = {
        (int(td.get_attribute("data-r")), int(td.get_attribute("data-q")))
        for td in page.query_selector_all("#input td.pad.win")
    }
    assert padded == {(4, 5), (5, 4), (5, 5)}
    winner = page.query_selector_all("#input td.winner")
    assert len(winner) == 1 and winner[0].inner_text() == "24"
    assert "max(24, -inf, -inf, -inf) = 24" in page.inner_text("#arith")
    assert errors == []


def test_two_inline_views_on_one_page_do_not_clash(browser, tmp_path):
    """Two explanation outputs as a notebook shows them (``_repr_html_``) in one document:
    clicking and arrow keys in one view leave the other alone."""
    import re

    import numpy as np

    import cnnlab as cl

    x = np.array([[0, 0, 0, 1, 1, 1]] * 6, dtype="float32").reshape(1, 6, 6, 1)
    conv = cl.layers.Conv2D(1, (2, 2))
    conv(x)
    conv.set_weights([np.array([[-1, 1], [-1, 1]], "float32").reshape(2, 2, 1, 1), np.zeros(1, "float32")])
    outputs = [cl.explain(conv, x, at=(0, 0, 0, 0))._repr_html_(), cl.explain(conv, x, at=(0, 4, 4, 0))._repr_html_()]
    roots = [re.search(r'id="(cnnlab-[0-9a-f]+)"', out).group(1) for out in outputs]
    html = tmp_path / "two.html"
    html.write_text("<!DOCTYPE html><meta charset='utf-8'><body>" + "<hr>".join(outputs), encoding="utf-8")
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(html.as_uri())
    first, second = (f"#{root}-arith" for root in roots)
    assert "output[0, 0, 0]" in page.inner_text(first) and "output[4, 4, 0]" in page.inner_text(second)
    page.click(f'#{roots[1]}-output td[data-r="3"][data-q="2"]')
    assert "0×-1 + 1×1 + 0×-1 + 1×1 + 0 = 2" in page.inner_text(second)
    page.keyboard.press("ArrowRight")
    assert "output[3, 3, 0]" in page.inner_text(second)
    assert "output[0, 0, 0]" in page.inner_text(first)  # untouched
    assert len(page.query_selector_all(f"#{roots[0]} td.sel")) == 1
    assert errors == []


def test_model_page_all_channels_receptive_field_flatten_and_probabilities(browser, tmp_path):
    import numpy as np

    import cnnlab as cl
    from cnnlab import explain_views as views
    from cnnlab.layers import Conv2D, Dense, Flatten, MaxPool2D

    cl.set_seed(7)
    model = cl.Sequential(
        [
            cl.layers.Input((28, 28, 1)),
            Conv2D(30, (2, 2), activation="relu"),
            MaxPool2D(),
            Conv2D(30, (2, 2), activation="relu"),
            MaxPool2D(),
            Flatten(),
            Dense(10, activation="softmax"),
        ]
    )
    image = np.random.default_rng(2).uniform(0, 1, (28, 28, 1))
    names = [f"class {k}" for k in range(10)]
    heat = np.zeros((28, 28))
    heat[10:14, 3:9] = 1.0
    path = views.write_html(
        tmp_path / "model.html",
        views.model_page(model, image, "m", names, true_class=4, overlays=[{"name": "demo", "heatmap": heat}]),
    )
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(path.as_uri())
    # every channel of every window layer, not the first eight
    assert [len(page.query_selector_all(f'.cl-maps canvas[data-layer="{k}"]')) for k in range(4)] == [30] * 4
    # a click on channel 5 of the last pooling map, at pixel (i, j) = (1, 2) (each cell is 10 px wide there)
    page.click('.cl-maps canvas[data-layer="3"][data-channel="5"]', position={"x": 25, "y": 15})
    text = page.inner_text("#arith")
    assert "max_pooling2d_1 (MaxPooling2D) output[1, 2, 5]" in text
    # its flatten index: (1·6 + 2)·30 + 5 = 245
    assert "input 245 of the next layer" in text
    # its receptive field: pool2 cell i reads input rows 4i .. 4i+6 (see receptive_fields' doctest)
    rf = page.query_selector(".cl-input-image .cl-rf")
    assert rf.get_attribute("data-rows") == "4..10" and rf.get_attribute("data-cols") == "8..14"
    box = rf.bounding_box()
    scale = 8  # 224 px / 28 pixels
    image_box = page.query_selector(".cl-input-image canvas").bounding_box()
    assert round((box["y"] - image_box["y"]) / scale) == 4 and round(box["height"] / scale) == 7
    assert round((box["x"] - image_box["x"]) / scale) == 8 and round(box["width"] / scale) == 7
    # the class probabilities are the model's own outputs
    data = image[None]
    for layer in model.layers:
        data = layer(data)
    shown = [float(v.inner_text()) for v in page.query_selector_all(".cl-prob .value")]
    assert np.allclose(shown, data[0], atol=0.5e-4, rtol=0)  # printed with 4 decimals
    assert "class 4 (true)" in page.inner_text(".cl-model")
    best = page.query_selector(".cl-prob.pred")
    assert best.get_attribute("data-k") == str(int(np.argmax(data[0])))
    # the overlay hook: a checkbox per heatmap draws it over the input image
    overlay = page.query_selector(".cl-overlay")
    blank = overlay.screenshot()
    page.check(".cl-overlay-toggle")
    assert overlay.screenshot() != blank
    assert errors == []


def test_model_page_overlays_grad_cam_and_saliency_from_the_cli(browser, tmp_path, tiny_data, capsys):
    """``cnnlab explain model --html``: the Grad-CAM and saliency of the predicted class can be
    drawn over the input image (the overlay painted exactly where the heatmap is non-zero)."""
    import json
    import re

    import numpy as np

    from cnnlab import cli
    from tests.conftest import train_net2

    model_file = train_net2(tiny_data, tmp_path / "net2.cnnlab")
    page_file = tmp_path / "model.html"
    assert cli.main(["explain", "model", str(model_file), "--index", "3", "--data", str(tiny_data),
                     "--html", str(page_file)]) == 0  # fmt: skip
    text = page_file.read_text(encoding="utf-8")
    data = json.loads(re.search(r"const PAGE = (\{.*?\});\n", text, re.S).group(1))
    names = [o["name"] for o in data["model"]["overlays"]]
    assert names[0].startswith("Grad-CAM (") and names[1].startswith("saliency (")
    heat = np.array(data["model"]["overlays"][0]["heatmap"], dtype=float)
    assert heat.shape == (28, 28) and heat.max() == 1.0
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(page_file.as_uri())
    toggles = page.query_selector_all(".cl-overlay-toggle")
    assert len(toggles) == 2
    painted = "() => { const c = document.querySelector('.cl-overlay'); const g = c.getContext('2d');"
    painted += " const d = g.getImageData(0, 0, c.width, c.height).data; let n = 0;"
    painted += " for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return [n, c.width / 28]; }"
    assert page.evaluate(painted)[0] == 0
    toggles[0].click()
    count, scale = page.evaluate(painted)
    # each heatmap cell is a scale x scale square of alpha 0.6*h: visible where that is >= 1/255
    visible = np.count_nonzero(np.round(0.6 * heat * 255) >= 1)
    assert visible > 0 and count == visible * scale * scale
    toggles[0].click()
    assert page.evaluate(painted)[0] == 0
    # the "how did this weight change" panel: explain_gradient's text, another weight on request
    choices = data["model"]["weights"]["choices"]
    assert page.text_content(".cl-weight-text") == choices[0]["text"]
    assert "How did this weight change" in page.inner_text(".cl-weights")
    page.select_option(".cl-weight-pick", "2")
    assert page.text_content(".cl-weight-text") == choices[2]["text"] != choices[0]["text"]
    assert errors == []


def test_lecture_report_page_cell_images_and_explanation(browser, tiny_data, tmp_path, capsys):
    """``cnnlab lecture`` writes report.html: click an off-diagonal cell of each confusion matrix,
    then one of its images: the explanation appears (Grad-CAM on a named layer for the CNN,
    saliency for the MLP), its heatmap painted, with no page errors."""
    import json
    import re

    out = tmp_path / "report"
    assert cli.main(["lecture", "--quick", "--data", str(tiny_data), "--out", str(out), "--verbose", "0"]) == 0
    page_file = out / "report.html"
    assert page_file.stat().st_size < 3_000_000
    data = json.loads(re.search(r"const R = (\{.*?\});\n", page_file.read_text(encoding="utf-8"), re.S).group(1))
    results = json.loads((out / "results.json").read_text())
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(page_file.as_uri())
    for k, net in enumerate(data["nets"]):
        part = f"#cnnlab-report-net-{k}"
        # the matrix on the page shows results.json's counts
        shown = [
            [int(td.inner_text()) for td in tr.query_selector_all("td")]
            for tr in page.query_selector_all(f"{part} table.cl-confusion tr")[1:]
        ]
        assert shown == results[net["name"]]["confusion"]
        t, p = next((t, p) for t in range(10) for p in range(10) if t != p and shown[t][p] > 0)
        page.click(f'{part} td[data-t="{t}"][data-p="{p}"]')
        figures = page.query_selector_all(f"{part} .cl-thumbs figure")
        assert [int(f.get_attribute("data-index")) for f in figures] == net["cells"][f"{t},{p}"]
        assert len(figures) == min(shown[t][p], 12)
        figures[0].click()
        text = page.inner_text(f"{part} .cl-explanation")
        index = figures[0].get_attribute("data-index")
        assert f"test image #{index}" in text and f"true {data['classes'][t]}, predicted {data['classes'][p]}" in text
        if net["method"] == "grad_cam":
            layer = net["explained"][index]["layer"]
            assert layer and f'Grad-CAM on layer "{layer}"' in text
        else:
            assert "saliency on the input pixels" in text and "Saliency: |d score / d x|" in text
        assert "pre-softmax logit" in text
        page.wait_for_selector(f"{part} canvas.cl-heat[data-painted='1']")
    assert errors == []
