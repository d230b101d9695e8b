"""Seconds per epoch for the lecture's two networks: cnnlab beside PyTorch and Keras.

Run from the repository root, with the OpenBLAS safety variables unset as on users' machines:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/seed_nets.py

PyTorch and Keras are optional: each is measured when it can be imported (install them in
a separate virtualenv together with cnnlab to compare; they are never cnnlab dependencies).
Protocol: raw 0..255 pixels, batch 32, float32, Adam, categorical cross-entropy; each
framework trains ``--epochs`` epochs per repetition and the median over epochs 2.. of all
repetitions is reported (epoch 1 includes compilation and warm-up).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
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


def time_cnnlab(net: str, X, Y, XX, epochs: int) -> tuple[list[float], float]:
    model = lecture.build_net1() if net == "net1" else lecture.build_net2()
    model.compile("adam", "categorical_crossentropy", ["accuracy"])
    return _time_keras_api(model, X, Y, XX, epochs)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--samples", type=int, default=None, help="train on the first N images only")
    parser.add_argument("--only", nargs="*", default=None, help="frameworks: cnnlab torch keras")
    args = parser.parse_args()
    X, Y, XX, _ = load(args.samples)
    steps = -(-len(X) // 32)
    frameworks = {"cnnlab": time_cnnlab}
    if importlib.util.find_spec("torch"):
        frameworks["torch"] = time_torch
    if importlib.util.find_spec("keras"):
        frameworks[f"keras-{os.environ.get('KERAS_BACKEND', 'tensorflow')}"] = time_keras
    if args.only:
        frameworks = {k: v for k, v in frameworks.items() if k.split("-")[0] in args.only}
    print(
        f"{len(X)} images, {steps} steps/epoch, {args.epochs} epochs x {args.repeats} repeats; "
        f"OPENBLAS_CORETYPE={'set' if 'OPENBLAS_CORETYPE' in os.environ else 'unset'}"
    )
    results: dict[str, dict[str, tuple[float, float]]] = {}
    for net in ("net1", "net2"):
        for name, fn in frameworks.items():
            epoch_times, predict = [], []
            for _ in range(args.repeats):
                cl.set_random_seed(len(epoch_times))
                t, p = fn(net, X, Y, XX, args.epochs)
                epoch_times += t[1:] if len(t) > 1 else t
                predict.append(p)
            med = statistics.median(epoch_times)
            results.setdefault(net, {})[name] = (med, statistics.median(predict))
            gflops = FLOPS_PER_SAMPLE[net] * len(X) / med / 1e9
            print(
                f"{net} {name:<18} {med:7.2f} s/epoch  {med / steps * 1e3:6.2f} ms/step  "
                f"{gflops:6.1f} GFLOP/s  predict(10k) {statistics.median(predict):.3f} s",
                flush=True,
            )
    for net, row in results.items():
        base = row["cnnlab"][0]
        others = ", ".join(f"{k} {v[0] / base:.2f}x" for k, v in row.items() if k != "cnnlab")
        print(f"{net}: cnnlab is faster than {others}" if others else f"{net}: no other framework installed")


if __name__ == "__main__":
    main()
