"""Load every Keras model file in ../shared/keras-models/ (files others committed to GitHub, kept
outside this repository), predict on the inputs of its ``.expected.npz`` and compare with the
predictions real Keras made; then exports each loaded model to ONNX and runs it in onnxruntime (or
``onnx.reference``) on the same inputs; explains the middle output of every layer of the first
input with ``cl.explain`` (its ``.output`` must be the value ``cl.trace`` gives) and names the
layer Grad-CAM picks; prints one table row per file.

    python benchmarks/keras_models_validation.py [FOLDER]

Not a timing benchmark: it checks that cnnlab reads real-world files and computes their numbers.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np

import cnnlab as cl
from cnnlab.errors import InvalidArgumentError, MissingDependencyError, ModelFileError

DEFAULT = Path(__file__).resolve().parent.parent.parent / "shared" / "keras-models"
SUFFIXES = (".keras", ".h5", ".hdf5")


def onnx_diff(model: cl.Sequential, x: np.ndarray, y: np.ndarray) -> str:
    """Max abs difference between the exported ONNX graph's predictions and Keras's ``y``."""
    try:
        from cnnlab.onnx_export import to_onnx
    except ImportError:  # pragma: no cover - onnx_export imports onnx lazily
        return "-"
    try:
        proto = to_onnx(model)
    except MissingDependencyError:
        return "no onnx"
    except InvalidArgumentError as exc:
        return f"not exported: {exc}"
    try:
        import onnxruntime

        session = onnxruntime.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        got = session.run(None, {"input": x})[0]
    except ImportError:
        from onnx.reference import ReferenceEvaluator

        got = ReferenceEvaluator(proto).run(None, {"input": x})[0]
    return f"{float(np.abs(got.astype(np.float64) - y).max()):.3g}"


def explained(model: cl.Sequential, x: np.ndarray) -> str:
    """``k/n``: how many of the model's n layers ``cl.explain`` explains at their middle output, with
    ``.output`` equal to the trace's value; then the layer Grad-CAM chooses."""
    steps = [(name, out) for name, out in cl.trace(model, x[0])[1:] if "[" not in name]  # first calls
    good, bad = 0, []
    for name, out in steps:
        at = (0, *(size // 2 for size in out.shape))
        try:
            e = cl.explain(model, x[:1], at=at, layer_name=name)
        except InvalidArgumentError as exc:
            bad.append(f"{name}: {str(exc)[:60]}")
            continue
        if e.output == out[at[1:]]:
            good += 1
        else:
            bad.append(f"{name}: output differs")
    try:
        cam = cl.explain_prediction(model, x[0], method="grad_cam").layer_name
    except InvalidArgumentError:
        cam = "- (no spatial layer)"
    return f"{good}/{len(steps)}" + (f" ({'; '.join(bad)})" if bad else "") + f", Grad-CAM on {cam}"


def check(path: Path) -> tuple[str, str, str, str, str]:
    expected = np.load(path.with_name(path.name + ".expected.npz"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model = cl.models.load_model(path)
        except ModelFileError as exc:
            reason = str(exc).removeprefix(f"{path}: ")
            return "unsupported", reason, "", "", ""
    got = model.predict(expected["x"])
    diff = float(np.abs(got.astype(np.float64) - expected["y"]).max())
    if model.compiled:
        steps = model.optimizer.iterations
        note = f"compiled, {type(model.optimizer).__name__} " + (
            f"state restored at step {steps}" if steps else "state not restored"
        )
        why = [str(w.message).removeprefix(f"{path}: ").split("; training starts")[0] for w in caught]
        note += "".join(f": {reason}" for reason in why if "optimizer state" in reason)
    else:
        note = "; ".join(str(w.message).removeprefix(f"{path}: ").split(". Compile it yourself")[0] for w in caught)
    return (
        "loaded",
        note,
        f"{diff:.3g}",
        onnx_diff(model, expected["x"], expected["y"]),
        explained(model, expected["x"]),
    )


def main(folder: Path) -> int:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES)
    rows = [(p.name, *check(p)) for p in files]
    width = max(len(r[0]) for r in rows)
    print(f"{'file':<{width}}  {'status':<11}  {'max abs diff':>12}  {'onnx diff':>9}  notes | explained layers")
    for name, status, note, diff, exported, layers in rows:
        print(f"{name:<{width}}  {status:<11}  {diff:>12}  {exported:>9}  {note} | {layers}")
    loaded = sum(r[1] == "loaded" for r in rows)
    exported = sum(r[4] not in ("", "-", "no onnx") and not r[4].startswith("not") for r in rows)
    print(f"\n{loaded} of {len(rows)} files loaded, {exported} exported to ONNX")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT))
