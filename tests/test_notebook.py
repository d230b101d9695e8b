"""examples/lecture.ipynb executed with nbclient on a small subset (600 images, one epoch):
every probe cell shows the digest's numbers (shared/seeds/README.md, written out literally here),
the explanation cells display ``text/html``, and one executed explanation output works in
headless Chromium (click a cell: its arithmetic appears)."""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.numerics import sum_bound

nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed (pip install -e '.[dev]')")
nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed (pip install -e '.[dev]')")
pytest.importorskip("ipykernel", reason="ipykernel is not installed (pip install -e '.[dev]')")
pytestmark = pytest.mark.slow

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "lecture.ipynb"
SUBSET = 600
#: numpy prints float32 with 8 significant digits: at most this relative error per printed value
PRINTED = 5e-7


def glorot_limit(fan_in: int, fan_out: int) -> float:
    return float(np.sqrt(6 / (fan_in + fan_out)))


@pytest.fixture(scope="module")
def executed():
    from cnnlab.datasets import fashion_mnist

    try:
        fashion_mnist.load_data(download=False)
    except fashion_mnist.DataNotFoundError as exc:
        pytest.skip(f"Fashion-MNIST is not on this machine: {exc}")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    [params] = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    params.source = f"SUBSET = {SUBSET}\nEPOCHS = 1"
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": "."}}).execute()
    return {c.metadata["tags"][0]: c for c in nb.cells if c.cell_type == "code" and c.metadata.get("tags")}


def result(cell) -> str:
    [out] = [o for o in cell.outputs if o.output_type == "execute_result"]
    return out.data["text/plain"]


def printed(cell) -> str:
    return "".join(o.text for o in cell.outputs if o.output_type == "stream")


def array(text: str) -> np.ndarray:
    """A numpy repr (``array([[5, 7], ...], dtype=float32)``) back into an array."""
    body = re.fullmatch(r"array\((.*?)(?:,\s*dtype=\w+)?\)", text.strip(), re.S).group(1)
    return np.array(ast.literal_eval(body))


def numbers(text: str) -> np.ndarray:
    return np.array([float(v) for v in re.findall(r"-?\d+\.?\d*(?:e[-+]?\d+)?", text)])


def test_no_cell_failed(executed):
    for tag, cell in executed.items():
        assert not [o for o in cell.outputs if o.output_type == "error"], tag


def test_training_cells_show_one_final_line_per_epoch(executed):
    for tag in ("fit-net1", "fit-net2"):
        text = printed(executed[tag])
        steps = -(-SUBSET // 32)
        assert text.startswith("Epoch 1/1\n") and text.count("\n") == 2, tag
        final = text.rsplit("\r", 1)[-1]
        assert final.startswith(f"{steps}/{steps} [==============================] - ") and "accuracy:" in final
    loss, accuracy = ast.literal_eval(result(executed["evaluate-net2"]))
    assert loss > 0 and 0 <= accuracy <= 1


def test_summaries_and_model_display(executed):
    assert "Total params: 1,149,010" in printed(executed["summary-net1"])
    assert "Total params: 14,590" in printed(executed["summary-net2"])
    data = executed["display-net2"].outputs[0].data
    assert "14,590 parameters" in data["text/plain"] and "Total params: 14,590" in data["text/html"]
    assert result(executed["param-ratio"]).startswith("0.01269")


def test_shape_trace(executed):
    shapes = [ast.literal_eval(line) for line in printed(executed["shape-trace"]).splitlines()]
    n = SUBSET
    assert shapes == [
        (n, 28, 28, 1),
        (n, 27, 27, 30),
        (n, 13, 13, 30),
        (n, 12, 12, 30),
        (n, 6, 6, 30),
        (n, 1080),
        (n, 10),
    ]


MAXPOOL = {
    "pool-1": [[[5, 7], [13, 15]]],
    "pool-2": [[[7, 9, 11], [19, 21, 23], [31, 33, 35]]],
    "pool-3": [[[14, 17], [32, 35]]],
    "pool-4-valid": [[[6, 8], [16, 18]]],
    "pool-4-same": [[[6, 8, 9], [16, 18, 19], [21, 23, 24]]],
    "pool-5": [[[5, 7], [13, 15]], [[21, 23], [29, 31]]],
    "pool-6": [[[15, 21], [39, 45]]],
}


@pytest.mark.parametrize("tag", MAXPOOL)
def test_maxpool_probes(executed, tag):
    text = result(executed[tag])
    np.testing.assert_array_equal(array(text), MAXPOOL[tag])
    assert "dtype" not in text  # integer input stays integer


def test_maxpool_three_channel_input(executed):
    assert array(result(executed["pool-6-input"]))[0, 0].tolist() == [0, 3, 6, 9]


def test_conv_errors_dtypes_and_lazy_weights(executed):
    assert "expected min_ndim=4, found ndim=3. Full shape received: (1, 4, 4)" in printed(executed["conv-error-3d"])
    assert "int64" in printed(executed["conv-error-int"])
    assert result(executed["conv-dtypes"]) == "[dtype('float32'), dtype('float32'), dtype('float32')]"
    assert result(executed["conv-lazy-before"]) == "[]"
    assert result(executed["conv-lazy-after"]) == "([(3, 3, 1, 1), (1,)], array([0.], dtype=float32))"


CONV = {
    "conv-quarter": [[[5.5, 6.5, 7.5], [9.5, 10.5, 11.5], [13.5, 14.5, 15.5]]],
    "conv-quarter-two": [
        [[5.5, 6.5, 7.5], [9.5, 10.5, 11.5], [13.5, 14.5, 15.5]],
        [[21.5, 22.5, 23.5], [25.5, 26.5, 27.5], [29.5, 30.5, 31.5]],
    ],
    "conv-worked": [[12, 12, 17], [10, 17, 19], [9, 6, 14]],
    # window means 2.5 ... 12.5 minus 8, negatives clipped
    "conv-relu": [[0, 0, 0], [0, 0, 0.5], [2.5, 3.5, 4.5]],
    # the exercise: 2 where 0 meets 1, 0 elsewhere
    "exercise": [[0, 0, 2, 0, 0]] * 5,
}


@pytest.mark.parametrize("tag", CONV)
def test_conv_probes(executed, tag):
    # small integers and halves: exact in float32, so equal
    np.testing.assert_array_equal(array(result(executed[tag])), CONV[tag])


def test_conv_on_two_5x5_images_starts_at_6_and_31(executed):
    out = array(result(executed["conv-quarter-5x5"]))
    assert out.shape == (2, 4, 4) and out[0, 0, 0] == 6 and out[1, 0, 0] == 31


def test_conv_random_weight_probes_match_their_hand_sums(executed):
    # 0·w00 + 1·w01 + 4·w10 + 5·w11 + b: sum |terms| <= 10 * the Glorot limit of a (2, 2, 1, 1) kernel
    by_hand, layer = numbers(printed(executed["conv-by-hand"]))
    magnitude = 10 * glorot_limit(4, 4)
    assert abs(by_hand - layer) <= sum_bound(magnitude, 4, "float32") + 2 * PRINTED * magnitude
    # 3×3 kernel on ones: every output is the kernel's sum (and the bias, 0)
    values = numbers(printed(executed["conv-ones"]))
    magnitude = 9 * glorot_limit(9, 9)
    assert len(values) == 5 and np.all(
        np.abs(values[:4] - values[4]) <= sum_bound(magnitude, 9, "float32") + 2 * PRINTED * magnitude
    )
    # four filters on ones: output k = sum of filter k
    values = numbers(printed(executed["conv-four-ones"]))
    magnitude = 4 * glorot_limit(4, 16)
    assert len(values) == 8 and np.all(
        np.abs(values[:4] - values[4:]) <= sum_bound(magnitude, 4, "float32") + 2 * PRINTED * magnitude
    )
    # three input channels: output k = sum over channels of x[..., c] * w[..., c, k]
    values = numbers(printed(executed["conv-three-channels"]))
    magnitude = 12 * glorot_limit(12, 16)
    assert len(values) == 8 and np.all(
        np.abs(values[:4] - values[4:]) <= sum_bound(magnitude, 12, "float32") + PRINTED * magnitude
    )


EXPLANATIONS = [
    "explain-conv",
    "explain-pool",
    "explain-pool-same",
    "explain-conv-by-hand",
    "explain-conv-three-channels",
    "explain-exercise",
]


@pytest.mark.parametrize("tag", EXPLANATIONS)
def test_explanation_cells_display_html(executed, tag):
    [out] = executed[tag].outputs
    assert set(out.data) == {"text/plain", "text/html"}
    assert "array(" not in out.data["text/plain"]
    assert 'class="cnnlab-view"' in out.data["text/html"]


def test_explanation_texts(executed):
    assert result(executed["explain-exercise"]).splitlines()[1] == "  0×-1 + 1×1 + 0×-1 + 1×1 + 0 = 2"
    assert result(executed["explain-pool-same"]).splitlines()[1] == "  max(24, -inf, -inf, -inf) = 24"
    assert result(executed["explain-conv"]).startswith(
        "conv2d output[0, 10, 12, 3]: window rows 10..11, columns 12..13"
    )
    assert executed["explain-prediction"].outputs == []  # a placeholder until explain_prediction exists


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium found (apt-get install chromium)")
def test_executed_explanation_output_works_in_chromium(executed, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    from tests.test_explain_browser import ARGS

    outputs = [executed[tag].outputs[0].data["text/html"] for tag in ("explain-pool-same", "explain-exercise")]
    page_file = tmp_path / "cells.html"
    # as a notebook front end shows them: two outputs, one after the other, in one document
    page_file.write_text("<!DOCTYPE html><meta charset='utf-8'><body>" + "".join(outputs), encoding="utf-8")
    root = re.search(r'<div class="cnnlab-view" id="([^"]+)"', outputs[1]).group(1)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            errors = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(page_file.as_uri())
            assert "output[0, 2, 0]" in page.inner_text(f"#{root}-arith")  # opened at the explained cell
            page.click(f'#{root}-output td[data-r="3"][data-q="2"]')
            window = sorted(
                (int(td.get_attribute("data-r")), int(td.get_attribute("data-q")))
                for td in page.query_selector_all(f"#{root}-input td.win")
            )
            assert window == [(3, 2), (3, 3), (4, 2), (4, 3)]
            text = page.inner_text(f"#{root}-arith")
            assert (
                "output[3, 2, 0]: window rows 3..4, columns 2..3" in text and "0×-1 + 1×1 + 0×-1 + 1×1 + 0 = 2" in text
            )
            assert errors == []
        finally:
            browser.close()
