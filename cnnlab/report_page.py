"""The lecture report as one self-contained page (``report.html``): the comparison table, the
learning curves, and each network's confusion matrix, clickable.

Click an off-diagonal cell ``(true t, predicted p)``: the misclassified test images of that pair
appear (at most :data:`PER_CELL` thumbnails, with their test-set indices); click an image: it is
shown with the explanation of the prediction from :func:`cnnlab.attribution.explain_prediction`,
precomputed here: Grad-CAM for a network with a spatial layer (the CNN), saliency for one without
(the MLP), each with the result's note (which layer, which score).

Everything is inline (pictures as PNG data URLs, the script and the data); nothing is fetched from
the network. The page stays small: images and heatmaps are 8-bit PNGs, numbers are rounded, and
each image's pixels are stored once even when both networks got it wrong.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab._atomic import atomic_path
from cnnlab.errors import InvalidArgumentError

#: thumbnails per confusion-matrix cell (the count says how many there are in all)
PER_CELL = 12


def _png(array: np.ndarray, mode: str) -> str:
    """A uint8 array (``(H, W)`` for ``"L"``, ``(H, W, 4)`` for ``"RGBA"``) as a PNG data URL."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8), mode=mode).save(buf, "PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def image_png(image: np.ndarray, top: float) -> str:
    """``image: (H, W, C)`` (the first channel is drawn) as a grey PNG, ``top`` drawn white."""
    gray = np.clip(np.asarray(image, np.float64)[..., 0] / (top or 1.0), 0.0, 1.0)
    return _png(np.round(gray * 255), "L")


def heatmap_png(heatmap: np.ndarray, levels: int = 32) -> str:
    """``heatmap: (H, W)`` as a grey PNG: each value's magnitude divided by the largest, rounded to
    ``1/levels`` (the page draws it as a red-yellow overlay of opacity ``0.6 h``, where 1/32 steps
    are invisible; the rounding roughly halves the PNG of a noisy saliency map)."""
    h = np.abs(np.asarray(heatmap, np.float64))
    top = float(h.max())
    h = np.round((h / top if top > 0 else h) * levels) / levels
    return _png(np.round(h * 255), "L")


def attribution_method(model: Any, input_shape: tuple[int, ...]) -> str:
    """``"grad_cam"`` when the model has a layer with spatial output, else ``"saliency"``."""
    from cnnlab.attribution import default_cam_layer

    try:
        default_cam_layer(model, input_shape)
    except InvalidArgumentError:
        return "saliency"
    return "grad_cam"


def net_data(
    model: Any,
    name: str,
    images: np.ndarray,
    labels: np.ndarray,
    predicted: np.ndarray,
    class_names: list[str],
    per_cell: int = PER_CELL,
    **extra: Any,
) -> dict[str, Any]:
    """One network's part of the page: its confusion matrix, the test indices shown per
    off-diagonal cell (the first ``per_cell``), and the explanation of each shown image (its
    ``"note"``: an index into ``"notes"``).

    ``images: (N, H, W, C)`` as the model takes them, ``labels``/``predicted``: ``(N,)`` class numbers.
    ``extra`` (accuracy, loss, ...) is copied into the data as given."""
    from cnnlab.attribution import explain_prediction

    labels, predicted = np.asarray(labels, np.int64), np.asarray(predicted, np.int64)
    k = len(class_names)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    method = attribution_method(model, images.shape[1:])
    cells: dict[str, list[int]] = {}
    explained: dict[str, dict[str, Any]] = {}
    notes: list[str] = []  # the notes differ only by class: each is stored once
    for t in range(k):
        for p in range(k):
            if t == p or confusion[t, p] == 0:
                continue
            shown = np.flatnonzero((labels == t) & (predicted == p))[:per_cell]
            cells[f"{t},{p}"] = [int(i) for i in shown]
            for i in shown:
                result = explain_prediction(model, images[i], method=method, class_names=class_names)
                if result.note not in notes:
                    notes.append(result.note)
                explained[str(int(i))] = {
                    "heat": heatmap_png(result.heatmap),
                    "class": int(result.class_index),
                    "score": round(float(result.score), 4),
                    "kind": result.score_kind,
                    "p": round(float(result.probabilities[result.class_index]), 4),
                    "layer": result.layer_name,
                    "note": notes.index(result.note),
                }
    return {
        "name": name,
        "method": method,
        "confusion": confusion.tolist(),
        "cells": cells,
        "explained": explained,
        "notes": notes,
        **extra,
    }


def report_page_data(
    nets: list[dict[str, Any]],
    images: np.ndarray,
    labels: np.ndarray,
    class_names: list[str],
    title: str = "cnnlab lecture report",
    summary: str = "",
    pictures: dict[str, Path] | None = None,
) -> dict[str, Any]:
    """The page's data: ``nets`` from :func:`net_data`, the pixels of every image any of them shows
    (``images: (N, H, W, C)``), the true labels of those, and the report's text and pictures."""
    shown = sorted({int(i) for net in nets for i in net["explained"]})
    top = float(np.max(images)) if len(images) else 1.0
    return {
        "title": title,
        "summary": summary,
        "classes": list(class_names),
        "nets": nets,
        "images": {str(i): {"png": image_png(images[i], top), "true": int(labels[i])} for i in shown},
        "pictures": {
            name: "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")
            for name, path in (pictures or {}).items()
        },
    }


def report_html(data: dict[str, Any], root_id: str | None = None) -> str:
    """The whole page (inline CSS, JS and data). Every id carries ``root_id``'s prefix and the
    script finds everything inside its root element, as the explain pages do."""
    root_id = root_id or "cnnlab-report"
    if not re.fullmatch(r"[A-Za-z][\w-]*", root_id):
        raise InvalidArgumentError(
            f"report_html: root_id must be an HTML id (a letter, then letters, digits, _ or -), received {root_id!r}."
        )
    payload = json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    body = (
        _TEMPLATE.replace("__STYLE__", _STYLE)
        .replace("__ROOT__", root_id)
        .replace("__PREFIX__", f"{root_id}-")
        .replace("__DATA__", payload)
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(data.get('title', 'cnnlab report'))}</title>\n"
        "<style>body{font-family:system-ui,sans-serif;margin:1.2em;color:#222}</style></head><body>\n"
        f"{body}\n</body></html>\n"
    )


def write_report_page(path: str | Path, data: dict[str, Any]) -> Path:
    """Write :func:`report_html` to ``path`` atomically (a temporary file renamed into place)."""
    path = Path(path)
    text = report_html(data)
    with atomic_path(path, suffix=".html") as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def lecture_page_data(
    models: list[Any],
    results: list[Any],
    images: np.ndarray,
    labels: np.ndarray,
    class_names: list[str],
    summary: str,
    pictures: dict[str, Path],
) -> dict[str, Any]:
    """The lecture's page: one part per trained network (``results``: ``lecture.NetResult``)."""
    nets = [
        net_data(
            model,
            r.name,
            images,
            labels,
            np.asarray(r.predicted),
            class_names,
            accuracy=_rounded(r.test_accuracy),
            loss=_rounded(r.test_loss),
            params=r.params,
        )
        for model, r in zip(models, results, strict=True)
    ]
    return report_page_data(nets, images, labels, class_names, "cnnlab lecture report", summary, pictures)


def _rounded(value: float) -> float | None:
    """JSON has no NaN: a figure that was not measured is ``null``."""
    return round(float(value), 6) if np.isfinite(value) else None


_STYLE = r"""
#__ROOT__{font-family:system-ui,sans-serif;color:#222}
#__ROOT__ h1{font-size:1.4em} #__ROOT__ h2{font-size:1.15em;margin:1.2em 0 .3em} #__ROOT__ h3{font-size:1em;margin:.6em 0 .2em}
#__ROOT__ pre{background:#f6f6f6;padding:.7em;white-space:pre-wrap;font-size:.85em;max-width:75em}
#__ROOT__ .note{color:#666;font-size:.85em}
#__ROOT__ .cl-pictures img{max-width:100%;margin:.3em 0}
#__ROOT__ .cl-net{display:flex;gap:2em;flex-wrap:wrap;align-items:flex-start;border-top:1px solid #ddd;padding-top:.5em}
#__ROOT__ table.cl-confusion{border-collapse:collapse;font-size:.78em}
#__ROOT__ table.cl-confusion td,#__ROOT__ table.cl-confusion th{border:1px solid #ccc;padding:2px 4px;text-align:right;min-width:2.6em}
#__ROOT__ table.cl-confusion th{background:#f3f3f3;font-weight:normal;white-space:nowrap}
#__ROOT__ table.cl-confusion td.diag{font-weight:bold}
#__ROOT__ table.cl-confusion td.clickable{cursor:pointer;text-decoration:underline dotted}
#__ROOT__ table.cl-confusion td.sel{outline:3px solid #d62728;outline-offset:-3px}
#__ROOT__ .cl-thumbs{display:flex;flex-wrap:wrap;gap:4px;max-width:34em}
#__ROOT__ .cl-thumbs figure{margin:0;text-align:center;font-size:.7em;cursor:pointer}
#__ROOT__ .cl-thumbs figure.sel img{outline:3px solid #d62728}
#__ROOT__ img.px{image-rendering:pixelated;border:1px solid #ccc}
#__ROOT__ .cl-stack{position:relative;display:inline-block;margin-right:.8em}
#__ROOT__ .cl-stack canvas.cl-heat{position:absolute;left:1px;top:1px;pointer-events:none}
#__ROOT__ .cl-explanation{max-width:40em}
"""

_TEMPLATE = r"""<div class="cnnlab-report" id="__ROOT__">
<style>__STYLE__</style>
<h1 class="cl-title" id="__PREFIX__title"></h1>
<pre class="cl-summary" id="__PREFIX__summary"></pre>
<div class="cl-pictures" id="__PREFIX__pictures"></div>
<p class="note">Click a number off the diagonal of a confusion matrix: the test images of that (true, predicted) pair.
Click an image: where the network looked when it made that mistake.</p>
<div class="cl-nets" id="__PREFIX__nets"></div>
<script>
(function(){
const root = document.getElementById("__ROOT__"), P = "__PREFIX__";
const $ = s => root.querySelector(s);
const R = __DATA__;
const el = (tag, cls, text) => { const e = document.createElement(tag); if (cls) e.className = cls; if (text !== undefined) e.textContent = text; return e; };
const img = (src, size, cls) => { const i = el("img", "px" + (cls ? " " + cls : "")); i.src = src; i.width = size; i.height = size; return i; };
// the heatmap (a grey PNG, h = value/255) painted as the model page's overlay: rgba(255, 200(1-h), 0, 0.6h)
function paint(canvas, src){ const im = new Image();
  im.onload = () => { const c = document.createElement("canvas"); c.width = im.width; c.height = im.height;
    const g = c.getContext("2d"); g.drawImage(im, 0, 0); const d = g.getImageData(0, 0, c.width, c.height).data;
    const out = canvas.getContext("2d"), s = canvas.width / im.width;
    for (let r = 0; r < im.height; r++) for (let q = 0; q < im.width; q++){ const h = d[4 * (r * im.width + q)] / 255;
      out.fillStyle = `rgba(255,${Math.round(200 * (1 - h))},0,${0.6 * h})`; out.fillRect(q * s, r * s, s, s); }
    canvas.dataset.painted = "1"; };
  im.src = src; }
const METHOD = {grad_cam: "Grad-CAM", saliency: "saliency"};
function explain(box, net, idx){ const e = net.explained[idx], im = R.images[idx], C = R.classes; box.innerHTML = "";
  box.appendChild(el("h3", "", `${net.name}: test image #${idx}, true ${C[im.true]}, predicted ${C[e.class]} (p = ${e.p})`));
  const pics = el("div"); pics.appendChild(img(im.png, 168));
  const stack = el("span", "cl-stack"); stack.appendChild(img(im.png, 168));
  const over = el("canvas", "cl-heat"); over.width = over.height = 168; stack.appendChild(over); paint(over, e.heat);
  pics.appendChild(stack); box.appendChild(pics);
  const where = e.layer ? `on layer "${e.layer}"` : "on the input pixels (the network has no spatial layer)";
  box.appendChild(el("div", "note", `left: the image; right: ${METHOD[net.method] || net.method} ${where}, red = ${net.method === "saliency" ? "largest |d score / d pixel|" : `most evidence for "${C[e.class]}"`}`));
  box.appendChild(el("pre", "cl-expl-text", `${METHOD[net.method] || net.method} ${where}; score = ${e.kind} ${e.score} of class ${e.class} (${C[e.class]})\n${net.notes[e.note]}`)); }
function showCell(part, net, t, p){ const C = R.classes, thumbs = part.querySelector(".cl-thumbs"), box = part.querySelector(".cl-explanation");
  part.querySelectorAll("td.sel").forEach(td => td.classList.remove("sel"));
  part.querySelector(`td[data-t="${t}"][data-p="${p}"]`).classList.add("sel");
  const ids = net.cells[`${t},${p}`] || [], n = net.confusion[t][p]; thumbs.innerHTML = ""; box.innerHTML = "";
  part.querySelector(".cl-cell-title").textContent = `true ${C[t]}, predicted ${C[p]}: ${n} image${n === 1 ? "" : "s"}` +
    (n > ids.length ? ` (the first ${ids.length} shown)` : "") + "; click one";
  ids.forEach(i => { const f = el("figure"); f.dataset.index = i; f.appendChild(img(R.images[i].png, 56)); f.appendChild(el("figcaption", "", `#${i}`));
    f.onclick = () => { thumbs.querySelectorAll("figure.sel").forEach(g => g.classList.remove("sel")); f.classList.add("sel"); explain(box, net, String(i)); };
    thumbs.appendChild(f); }); }
function matrix(net, part){ const C = R.classes, t = el("table", "cl-confusion");
  const head = t.insertRow(); head.appendChild(el("th", "", "true \\ predicted")); C.forEach(c => head.appendChild(el("th", "", c)));
  const top = Math.max(1, ...net.confusion.flat());
  net.confusion.forEach((row, a) => { const tr = t.insertRow(); tr.appendChild(el("th", "", C[a]));
    row.forEach((v, b) => { const td = tr.insertCell(); td.textContent = v; td.dataset.t = a; td.dataset.p = b;
      const s = v / top; td.style.background = a === b ? `rgba(44,160,44,${0.15 + 0.6 * s})` : v ? `rgba(214,39,40,${0.1 + 0.8 * Math.sqrt(s)})` : "";
      if (a === b) td.className = "diag";
      else if (v > 0){ td.className = "clickable"; td.title = `${v} test images of ${C[a]} classified as ${C[b]}`; td.onclick = () => showCell(part, net, a, b); } }); });
  return t; }
$(".cl-title").textContent = R.title; $(".cl-summary").textContent = R.summary;
if (!R.summary) $(".cl-summary").style.display = "none";
Object.entries(R.pictures).forEach(([name, src]) => { const d = el("div"); d.appendChild(el("h3", "", name)); const i = el("img"); i.src = src; i.alt = name; d.appendChild(i); $(".cl-pictures").appendChild(d); });
R.nets.forEach((net, k) => { const part = el("div", "cl-net"); part.id = P + "net-" + k; part.dataset.net = net.name;
  const left = el("div"), right = el("div");
  const acc = net.accuracy === undefined || net.accuracy === null ? "" : `: test accuracy ${net.accuracy.toFixed(4)}`;
  left.appendChild(el("h2", "", `${net.name}${acc}`)); left.appendChild(matrix(net, part));
  left.appendChild(el("div", "note", `rows: true class, columns: predicted class; explanations: ${METHOD[net.method] || net.method} of the predicted class, precomputed by cl.explain_prediction`));
  right.appendChild(el("h3", "cl-cell-title", "click a red number"));
  right.appendChild(el("div", "cl-thumbs")); right.appendChild(el("div", "cl-explanation"));
  part.appendChild(left); part.appendChild(right); $(".cl-nets").appendChild(part); });
})();
</script></div>"""


__all__ = ["PER_CELL", "lecture_page_data", "net_data", "report_html", "report_page_data", "write_report_page"]
