"""Per-layer Conv2D / pooling timings: cnnlab's accelerated units against PyTorch eager.

Each framework runs in its own process with 2 threads (cnnlab as ``fit`` runs it: numba owns the
cores and BLAS gets one thread per numba thread; PyTorch with ``torch.set_num_threads(2)``, NCHW).
For every layer it prints the best-of-``--repeat`` milliseconds (robust on a shared machine) of a
forward pass in inference mode and of a training forward + backward (input gradient too, except
for a model's first layer), float32::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/conv_layers.py \\
        --torch-python /path/to/venv-with-torch/bin/python

``--framework cnnlab|torch`` runs one side only (what the parent process does in each child).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

import numpy as np

#: (name, batch, (H, W, C_in), kind, options); kind is conv, conv_pool (Conv2D + MaxPool 2x2),
#: avgpool or maxpool. ``first`` layers need no input gradient.
LAYERS: list[tuple[str, int, tuple[int, int, int], str, dict[str, Any]]] = [
    ("vgg28 c1 3x3x1->32", 64, (28, 28, 1), "conv", dict(f=32, k=3, first=True)),
    ("vgg28 c2 3x3x32->32", 64, (28, 28, 32), "conv", dict(f=32, k=3)),
    ("vgg28 c3 3x3x32->64", 64, (14, 14, 32), "conv", dict(f=64, k=3)),
    ("vgg28 c4 3x3x64->64", 64, (14, 14, 64), "conv", dict(f=64, k=3)),
    ("vgg28 c5 3x3x64->128", 64, (7, 7, 64), "conv", dict(f=128, k=3)),
    ("vgg28 c6 3x3x128->128", 64, (7, 7, 128), "conv", dict(f=128, k=3)),
    ("vgg32 c1 3x3x3->32", 64, (32, 32, 3), "conv", dict(f=32, k=3, first=True)),
    ("vgg32 c2 3x3x32->32", 64, (32, 32, 32), "conv", dict(f=32, k=3)),
    ("vgg32 c3 3x3x32->64", 64, (16, 16, 32), "conv", dict(f=64, k=3)),
    ("vgg32 c4 3x3x64->64", 64, (16, 16, 64), "conv", dict(f=64, k=3)),
    ("vgg32 c5 3x3x64->128", 64, (8, 8, 64), "conv", dict(f=128, k=3)),
    ("vgg32 c6 3x3x128->128", 64, (8, 8, 128), "conv", dict(f=128, k=3)),
    ("vgg32 maxpool 2x2 32ch", 64, (32, 32, 32), "maxpool", dict(p=2)),
    ("stride2 3x3x3->32", 64, (32, 32, 3), "conv", dict(f=32, k=3, s=2, first=True)),
    ("stride2 3x3x32->64", 64, (16, 16, 32), "conv", dict(f=64, k=3, s=2)),
    ("stride2 3x3x64->128", 64, (8, 8, 64), "conv", dict(f=128, k=3, s=2)),
    ("lenet c1 5x5x1->6 tanh same", 32, (28, 28, 1), "conv", dict(f=6, k=5, act="tanh", first=True)),
    ("lenet avgpool 2x2 6ch", 32, (28, 28, 6), "avgpool", dict(p=2)),
    ("lenet c2 5x5x6->16 tanh", 32, (14, 14, 6), "conv", dict(f=16, k=5, act="tanh", pad="valid")),
    ("lenet avgpool 2x2 16ch", 32, (10, 10, 16), "avgpool", dict(p=2)),
    ("mnist c1+pool 3x3x1->32", 128, (28, 28, 1), "conv_pool", dict(f=32, k=3, pad="valid", first=True)),
    ("mnist c2+pool 3x3x32->64", 128, (13, 13, 32), "conv_pool", dict(f=64, k=3, pad="valid")),
]


def best_ms(run: Any, repeat: int) -> float:
    run()
    run()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1000 * min(times)


def bench_cnnlab(repeat: int) -> dict[str, tuple[float, float]]:
    from threadpoolctl import threadpool_limits

    import cnnlab as cl
    from cnnlab import _accel
    from cnnlab._accel import registry

    cl.config.set_kernels("fast")
    cores = 2
    out = {}
    rng = np.random.default_rng(0)
    for name, batch, (h, w, c), kind, o in LAYERS:
        x = rng.normal(size=(batch, h, w, c)).astype(np.float32)
        if kind == "conv":
            layers = [
                cl.layers.Conv2D(
                    o["f"], o["k"], strides=o.get("s", 1), padding=o.get("pad", "same"), activation=o.get("act", "relu")
                )  # fmt: skip
            ]
        elif kind == "conv_pool":
            layers = [
                cl.layers.Conv2D(o["f"], o["k"], padding=o.get("pad", "same"), activation="relu"),
                cl.layers.MaxPooling2D(2),
            ]
        elif kind == "maxpool":
            layers = [cl.layers.MaxPooling2D(o["p"])]
        else:
            layers = [cl.layers.AveragePooling2D(o["p"])]
        y = x
        for layer in layers:
            y = layer(y)
        # a stand-in last layer: units never replace a model's last layer
        unit = None
        for match in registry.UNITS:
            found = match([*layers, None], 0, np.dtype(np.float32), len(layers))
            if found is not None and found[1] == len(layers):
                unit = found[0]
                break
        if unit is None:
            unit = layers[0]  # no accelerated unit: the reference layer
        dy = rng.normal(size=y.shape).astype(np.float32)
        need_dx = not o.get("first", False)

        def fwd(unit: Any = unit, x: np.ndarray = x) -> None:
            unit.forward(x, training=False)

        def step(unit: Any = unit, x: np.ndarray = x, dy: np.ndarray = dy, need_dx: bool = need_dx) -> None:
            unit.forward(x, training=True)
            unit.backward(dy.copy(), need_dx)
            unit.release()

        with threadpool_limits(limits=1, user_api="blas"), _accel.num_threads(cores):
            out[name] = (best_ms(fwd, repeat), best_ms(step, repeat), type(unit).__name__)
    return out


def bench_torch(repeat: int) -> dict[str, tuple[float, float]]:
    import torch

    torch.set_num_threads(2)
    out = {}
    gen = torch.Generator().manual_seed(0)
    for name, batch, (h, w, c), kind, o in LAYERS:
        x = torch.randn(batch, c, h, w, generator=gen)
        if kind in ("conv", "conv_pool"):
            k = o["k"]
            pad = "same" if o.get("pad", "same") == "same" else 0
            stride = o.get("s", 1)
            if stride != 1 and pad == "same":  # PyTorch refuses it; TF pads (0, 1) here (odd k, even size)
                mods = [torch.nn.ZeroPad2d((0, 1, 0, 1)), torch.nn.Conv2d(c, o["f"], k, stride=stride, padding=0)]
            else:
                mods = [torch.nn.Conv2d(c, o["f"], k, padding=pad)]
            mods.append(torch.nn.Tanh() if o.get("act") == "tanh" else torch.nn.ReLU())
            if kind == "conv_pool":
                mods.append(torch.nn.MaxPool2d(2))
        elif kind == "maxpool":
            mods = [torch.nn.MaxPool2d(o["p"])]
        else:
            mods = [torch.nn.AvgPool2d(o["p"])]
        model = torch.nn.Sequential(*mods)
        need_dx = not o.get("first", False)
        xg = x.clone().requires_grad_(need_dx)
        with torch.no_grad():
            dy = torch.randn_like(model(x))

        def fwd(model: Any = model, x: Any = x) -> None:
            with torch.no_grad():
                model(x)

        def step(model: Any = model, xg: Any = xg, dy: Any = dy) -> None:
            model.zero_grad(set_to_none=True)
            y = model(xg)
            y.backward(dy)

        out[name] = (best_ms(fwd, repeat), best_ms(step, repeat), "torch")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framework", choices=["cnnlab", "torch", "both"], default="both")
    parser.add_argument("--torch-python", default=sys.executable, help="a Python with torch installed")
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    if args.framework != "both":
        result = (bench_cnnlab if args.framework == "cnnlab" else bench_torch)(args.repeat)
        print(json.dumps(result))
        return
    results = {}
    for framework, python in (("cnnlab", sys.executable), ("torch", args.torch_python)):
        cmd = [python, os.path.abspath(__file__), "--framework", framework, "--repeat", str(args.repeat)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        results[framework] = json.loads(done.stdout.strip().splitlines()[-1])
    head = ("fwd ms", "torch", "ratio", "f+b ms", "torch", "ratio")
    print(f"{'layer':32s} {'unit':12s} " + " ".join(f"{h:>8s}" for h in head))
    for name, *_ in LAYERS:
        f, fb, unit = results["cnnlab"][name]
        tf, tfb, _ = results["torch"][name]
        print(f"{name:32s} {unit:12s} {f:8.3f} {tf:8.3f} {f / tf:8.2f} {fb:8.3f} {tfb:8.3f} {fb / tfb:8.2f}")


if __name__ == "__main__":
    main()
