"""Seconds per epoch for the lecture's two networks: cnnlab beside PyTorch and Keras.

Run from the repository root, with the OpenBLAS safety variables unset as on users' machines:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/seed_nets.py

Each framework runs in its own process (their thread pools would otherwise compete).
PyTorch and Keras are optional: each is measured when it can be imported (install them in
a separate virtualenv together with cnnlab to compare; they are never cnnlab dependencies).
Protocol: raw 0..255 pixels, batch 32, float32, Adam, categorical cross-entropy; each
framework trains ``--epochs`` epochs per repetition and the median over epochs 2.. of all
repetitions is reported (epoch 1 includes compilation and warm-up).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

import cnnlab as cl
from cnnlab import lecture

FLOPS_PER_SAMPLE = {  # multiply-adds x 2 x 3 (forward, input grad, weight grad), first layer no input grad
    "net1": 2 * (784 * 500 + 3 * 500 * 500 + 500 * 10) * 3 - 2 * 784 * 500,
    "net2": 2 * (27 * 27 * 4 * 30 + 12 * 12 * 120 * 30 + 1080 * 10) * 3 - 2 * 27 * 27 * 4 * 30,
}


def load(n: int | None):
    (x, y), (xt, yt) = cl.datasets.fashion_mnist.load_data()
    if n:
        x, y = x[:n], y[:n]
    X = x.reshape(-1, 28, 28, 1).astype(np.float32)
    return X, cl.utils.to_categorical(y, 10), xt.reshape(-1, 28, 28, 1).astype(np.float32), yt


def rss_mb() -> float:
    """Current resident set size of this process."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def matmul_peak_gflops() -> float:
    """float32 matmul speed of this NumPy/BLAS with its default threads (the 'peak' of the ratios)."""
    a = np.random.default_rng(0).random((2048, 2048), dtype=np.float32)
    a @ a
    start = time.perf_counter()
    for _ in range(5):
        a @ a
    return 5 * 2 * 2048**3 / (time.perf_counter() - start) / 1e9


def time_cnnlab(net: str, X, Y, XX, epochs: int) -> tuple[list[float], float]:
    model = lecture.build_net1() if net == "net1" else lecture.build_net2()
    model.compile("adam", "categorical_crossentropy", ["accuracy"])
    rss = []

    class Memory(cl.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            rss.append(rss_mb())

    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        model.fit(X, Y, batch_size=32, epochs=1, verbose=0, callbacks=[Memory()])
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    model.predict(XX, batch_size=32, verbose=0)
    predict = time.perf_counter() - start
    print(f"  cnnlab {net}: RSS after each epoch (MB): " + ", ".join(f"{r:.0f}" for r in rss), file=sys.stderr)
    return times, predict


def _time_keras_api(model, X, Y, XX, epochs: int) -> tuple[list[float], float]:
    """Epoch times and predict time of any model with Keras's fit/predict (cnnlab or Keras)."""
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        model.fit(X, Y, batch_size=32, epochs=1, verbose=0)
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    model.predict(XX, batch_size=32, verbose=0)
    return times, time.perf_counter() - start


def time_torch(net: str, X, Y, XX, epochs: int) -> tuple[list[float], float]:
    import torch
    from torch import nn

    torch.set_num_threads(2)
    if net == "net1":
        model = nn.Sequential(
            nn.Flatten(),
            nn.Linear(784, 500),
            nn.ReLU(),
            nn.Linear(500, 500),
            nn.ReLU(),
            nn.Linear(500, 500),
            nn.ReLU(),
            nn.Linear(500, 500),
            nn.ReLU(),
            nn.Linear(500, 10),
        )
    else:
        model = nn.Sequential(
            nn.Conv2d(1, 30, 2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(30, 30, 2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(1080, 10),
        )
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    xt = torch.from_numpy(np.ascontiguousarray(X.transpose(0, 3, 1, 2)))
    yt = torch.from_numpy(Y.argmax(1))
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        order = torch.randperm(len(xt))
        for s in range(0, len(xt), 32):
            idx = order[s : s + 32]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    with torch.no_grad():
        model(torch.from_numpy(np.ascontiguousarray(XX.transpose(0, 3, 1, 2))))
    return times, time.perf_counter() - start


def time_keras(net: str, X, Y, XX, epochs: int) -> tuple[list[float], float]:
    import keras

    if net == "net1":
        layers = [keras.layers.Flatten()] + [keras.layers.Dense(500, activation="relu") for _ in range(4)]
        layers += [keras.layers.Dense(10, activation="softmax")]
    else:
        layers = [
            keras.layers.Conv2D(30, (2, 2), activation="relu"),
            keras.layers.MaxPool2D(),
            keras.layers.Conv2D(30, (2, 2), activation="relu"),
            keras.layers.MaxPool2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    model = keras.Sequential([keras.Input((28, 28, 1)), *layers])
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    return _time_keras_api(model, X, Y, XX, epochs)


def measure(name: str, args: argparse.Namespace) -> dict[str, tuple[float, float]]:
    """Median epoch seconds (epochs 2..) and predict seconds per network, for one framework."""
    X, Y, XX, _ = load(args.samples)
    fn = {"cnnlab": time_cnnlab, "torch": time_torch, "keras": time_keras}[name]
    out = {}
    for net in ("net1", "net2"):
        epoch_times, predict = [], []
        for repeat in range(args.repeats):
            cl.set_random_seed(repeat)
            t, p = fn(net, X, Y, XX, args.epochs)
            epoch_times += t[1:] if len(t) > 1 else t
            predict.append(p)
        out[net] = (statistics.median(epoch_times), statistics.median(predict))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--samples", type=int, default=None, help="train on the first N images only")
    parser.add_argument("--only", nargs="*", default=None, help="frameworks: cnnlab torch keras")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # one framework, for the parent
    args = parser.parse_args()
    if args.json:
        print(json.dumps(measure(args.only[0], args)))
        return
    available = ["cnnlab"] + [name for name in ("torch", "keras") if importlib.util.find_spec(name)]
    frameworks = [f for f in available if not args.only or f in args.only]
    steps = -(-(args.samples or 60000) // 32)
    print(
        f"{args.samples or 60000} images, {steps} steps/epoch, {args.epochs} epochs x {args.repeats} repeats, "
        f"each framework in its own process; OPENBLAS_CORETYPE "
        f"{'set' if 'OPENBLAS_CORETYPE' in os.environ else 'unset'}",
        flush=True,
    )
    peak = matmul_peak_gflops()
    print(f"float32 matmul peak of this NumPy: {peak:.0f} GFLOP/s", flush=True)
    results: dict[str, dict[str, tuple[float, float]]] = {}
    for name in frameworks:
        # a process per framework: their thread pools would otherwise compete for the cores
        cmd = [
            sys.executable,
            __file__,
            "--json",
            "--only",
            name,
            "--epochs",
            str(args.epochs),
            "--repeats",
            str(args.repeats),
        ] + (["--samples", str(args.samples)] if args.samples else [])
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            print(f"{name}: failed\n{proc.stderr[-2000:]}")
            continue
        for line in proc.stderr.splitlines():
            if line.startswith("  cnnlab"):
                print(line)
        results[name] = {k: tuple(v) for k, v in json.loads(proc.stdout.strip().splitlines()[-1]).items()}
        label = f"keras-{os.environ.get('KERAS_BACKEND', 'tensorflow')}" if name == "keras" else name
        for net, (med, pred) in results[name].items():
            gflops = FLOPS_PER_SAMPLE[net] * steps * 32 / med / 1e9
            print(
                f"{net} {label:<18} {med * 60000 / (steps * 32):7.2f} s/epoch (60k)  {med / steps * 1e3:6.2f} ms/step  "
                f"{gflops:6.1f} GFLOP/s ({gflops / peak:.0%} of peak)  predict(10k) {pred:.3f} s",
                flush=True,
            )
    if "cnnlab" in results:
        for net in ("net1", "net2"):
            base = results["cnnlab"][net][0]
            others = ", ".join(
                f"{k} takes {v[net][0] / base:.2f}x as long" for k, v in results.items() if k != "cnnlab"
            )
            if others:
                print(f"{net}: {others}")


if __name__ == "__main__":
    main()
