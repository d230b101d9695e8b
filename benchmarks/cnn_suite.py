"""CNN benchmark suite: training step and predict time of eight small networks, cnnlab beside PyTorch.

Run from the repository root, with the OpenBLAS safety variables unset as on users' machines, in
a virtualenv that has numpy, numba, threadpoolctl and torch (cnnlab from this checkout):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=. "$BENCH_VENV"/bin/python benchmarks/cnn_suite.py

Each network is written once, as a small spec (:data:`SPECS`) from which both a ``cl.Sequential``
and an equivalent ``torch.nn.Sequential`` are built; the multiply-add counts are derived from
the same spec. Every (network, framework) pair runs in its own process (thread pools of two
frameworks in one process compete for the cores), cnnlab and PyTorch alternating per network.

Protocol: float32; Adam (lr 1e-3, eps 1e-7); categorical cross-entropy on a softmax output in
cnnlab, ``cross_entropy`` on logits in PyTorch (eager, 2 threads). 28x28x1 networks train on
Fashion-MNIST (pixels / 255, or raw 0..255 pixels for a network that rescales them itself),
32x32x3 ones on seeded uniform [0, 1) images with random labels.

The two course models of ``benchmarks/course_models.py`` are here: ``mnist_convnet`` is
``simple`` (keras.io "Simple MNIST convnet") layer for layer, and ``scratch`` is the
"Image classification from scratch" Sequential, augmentation included on BOTH sides (it is part
of every training step of that model): RandomFlip("horizontal") as a per-image
``torch.where(flip, x.flip(3), x)`` and RandomRotation(0.05) (Keras: bilinear, fill "reflect")
as ``affine_grid`` + ``grid_sample(bilinear, reflection)``, both only in training mode;
BatchNormalization as ``BatchNorm2d(momentum=0.01, eps=1e-3)`` (Keras's momentum 0.99 is
PyTorch's 0.01); SeparableConv2D as a ``groups=C`` 3x3 convolution without bias followed by a
1x1 convolution with bias.
Each run trains ``warmup + repeats`` epochs of ``steps`` batches, drawn from the first
``steps * batch`` samples, reshuffled every epoch (default: about 2,048 samples, at least 10
steps). cnnlab: one ``fit`` call, epochs timed by a callback; PyTorch: zero_grad / forward /
loss / backward / step on the shuffled batches. The warm-up epochs (numba compilation, caches)
are not timed; ms/step is the median over the timed epochs. Predict: 10,000 images (the
Fashion-MNIST test set or random images), cnnlab ``model.predict``, PyTorch ``no_grad`` forward
in eval mode in batches of 1,000, after one untimed call on 256 images; the median over
``predict_repeats`` calls.

GFLOP/s count multiply-adds (x2) of the forward, input-gradient and weight-gradient passes of
the convolutions and dense layers (no input gradient for the first one), from the layer shapes;
pooling and activations are not counted. "% of peak" relates them to the float32 matmul speed of
this NumPy (2048 x 2048, its default threads) measured in the same run.

Other processes on the machine distort every figure (both frameworks' worker threads wait for
each other at every parallel region), so each measurement reports how many cores other processes
kept busy meanwhile (from /proc/stat less this script's own CPU time). On a shared machine,
``--wait-idle S`` waits up to S seconds for idle cores before each measurement and ``--retries N``
measures a noisy pair again, keeping the quietest run.

Before timing, a check process builds each network in both frameworks with cnnlab's initial
weights copied into PyTorch and prints the largest difference of their predicted probabilities.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata

import numpy as np

# ------------------------------------------------------------------ the networks
# A layer is a tuple: ("conv", filters, kernel, strides, padding, activation), ("maxpool", size[,
# strides, padding]), ("avgpool", size), ("flatten",), ("dropout", rate), ("dense", units, activation),
# ("sepconv", filters, kernel, padding) (depth multiplier 1, no activation), ("bn",) (BatchNormalization
# on the channels), ("relu",), ("gap",) (GlobalAveragePooling2D), ("flip",) (RandomFlip("horizontal")),
# ("rotate", factor) (RandomRotation), ("rescale", scale) (Rescaling). Weighted kinds: WEIGHTED.
# The last layer is Dense(10, "softmax"): cnnlab keeps the softmax, PyTorch outputs the logits.


def conv(filters: int, kernel: int, strides: int = 1, padding: str = "valid", activation: str | None = "relu") -> tuple:
    return ("conv", filters, kernel, strides, padding, activation)


def sepconv(filters: int, kernel: int, padding: str = "valid") -> tuple:
    return ("sepconv", filters, kernel, padding)


def dense(units: int, activation: str | None = None) -> tuple:
    return ("dense", units, activation)


MAXPOOL, AVGPOOL, FLATTEN = ("maxpool", 2), ("avgpool", 2), ("flatten",)
BN, RELU, GAP = ("bn",), ("relu",), ("gap",)
OUTPUT = dense(10, "softmax")
WEIGHTED = ("conv", "sepconv", "bn", "dense")  # kinds with weights, in the order cnnlab lists them


@dataclass(frozen=True)
class Spec:
    name: str
    input_shape: tuple[int, int, int]
    batch: int
    layers: tuple[tuple, ...]
    about: str
    raw_pixels: bool = False  # 28x28x1: feed 0..255 pixels (the network rescales them itself)


SPECS = {
    spec.name: spec
    for spec in (
        Spec(
            "net1",
            (28, 28, 1),
            32,
            (FLATTEN, *[dense(500, "relu")] * 4, OUTPUT),
            "the lecture's MLP (cnnlab.lecture.build_net1)",
        ),
        Spec(
            "net2",
            (28, 28, 1),
            32,
            (conv(30, 2), MAXPOOL, conv(30, 2), MAXPOOL, FLATTEN, OUTPUT),
            "the lecture's CNN (cnnlab.lecture.build_net2)",
        ),
        Spec(
            "mnist_convnet",
            (28, 28, 1),
            128,
            (conv(32, 3), MAXPOOL, conv(64, 3), MAXPOOL, FLATTEN, ("dropout", 0.5), OUTPUT),
            'keras.io "Simple MNIST convnet" (course model `simple`)',
        ),
        Spec(
            "vgg_28",
            (28, 28, 1),
            64,
            (
                *[conv(32, 3, padding="same")] * 2,
                MAXPOOL,
                *[conv(64, 3, padding="same")] * 2,
                MAXPOOL,
                FLATTEN,
                dense(128, "relu"),
                OUTPUT,
            ),
            "VGG-style, two blocks of two 3x3 convolutions",
        ),
        Spec(
            "vgg_32x3",
            (32, 32, 3),
            64,
            (
                *[conv(32, 3, padding="same")] * 2,
                MAXPOOL,
                *[conv(64, 3, padding="same")] * 2,
                MAXPOOL,
                conv(128, 3, padding="same"),
                MAXPOOL,
                FLATTEN,
                OUTPUT,
            ),
            "VGG-style on CIFAR-sized images",
        ),
        Spec(
            "strided",
            (32, 32, 3),
            64,
            (
                conv(32, 3, 2, "same"),
                conv(64, 3, 2, "same"),
                conv(128, 3, 2, "same"),
                FLATTEN,
                OUTPUT,
            ),
            "stride-2 3x3 convolutions ('same': TensorFlow pads only bottom/right)",
        ),
        Spec(
            "lenet5",
            (28, 28, 1),
            32,
            (
                conv(6, 5, padding="same", activation="tanh"),
                AVGPOOL,
                conv(16, 5, activation="tanh"),
                AVGPOOL,
                FLATTEN,
                dense(120, "tanh"),
                dense(84, "tanh"),
                OUTPUT,
            ),
            "LeNet-5: 5x5 kernels, tanh, average pooling",
        ),
        Spec(
            "scratch",
            (28, 28, 1),
            128,
            (
                ("flip",),
                ("rotate", 0.05),
                ("rescale", 1 / 255),
                conv(32, 3, 2, "same", None),
                BN,
                RELU,
                sepconv(64, 3, "same"),
                BN,
                RELU,
                ("maxpool", 3, 2, "same"),
                sepconv(128, 3, "same"),
                BN,
                RELU,
                GAP,
                ("dropout", 0.25),
                OUTPUT,
            ),
            'course model `scratch` (keras.io "Image classification from scratch" style: augmentation, '
            "BatchNormalization, SeparableConv2D, global pooling)",
            raw_pixels=True,
        ),
    )
}

PREDICT_IMAGES = 10_000
TORCH_PREDICT_BATCH = 1_000
NOISY_CORES = 0.1  # a measurement during which other processes kept more cores busy is noisy
EPOCH_SAMPLES = 2_048  # samples per epoch unless --steps says otherwise


def same_padding(n: int, k: int, stride: int) -> tuple[int, int]:
    """(before, after) for 'same' as TensorFlow pads: the odd cell goes after."""
    out = -(-n // stride)
    total = max((out - 1) * stride + k - n, 0)
    return total // 2, total - total // 2


@dataclass
class Walked:
    """One layer of a spec with the shapes around it (per sample, channels last)."""

    layer: tuple
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    pads: tuple[int, int] = (0, 0)  # conv: (before, after), the same for rows and columns
    flat_from: tuple[int, ...] | None = None  # first dense after a Flatten: the (H, W, C) it flattened

    @property
    def macs(self) -> int:
        """Multiply-adds of this layer's forward pass for one sample."""
        kind = self.layer[0]
        if kind == "conv":
            ho, wo, filters = self.out_shape
            return ho * wo * filters * self.layer[2] ** 2 * self.in_shape[2]
        if kind == "sepconv":  # depthwise k*k per channel, then the 1x1 pointwise C -> F
            ho, wo, filters = self.out_shape
            return ho * wo * self.in_shape[2] * (self.layer[2] ** 2 + filters)
        if kind == "dense":
            return self.in_shape[0] * self.out_shape[0]
        return 0

    @property
    def params(self) -> int:
        kind = self.layer[0]
        if kind == "conv":
            return (self.layer[2] ** 2 * self.in_shape[2] + 1) * self.layer[1]
        if kind == "sepconv":
            c = self.in_shape[2]
            return self.layer[2] ** 2 * c + (c + 1) * self.layer[1]
        if kind == "bn":  # gamma, beta, moving mean and variance
            return 4 * self.in_shape[-1]
        if kind == "dense":
            return (self.in_shape[0] + 1) * self.out_shape[0]
        return 0


def walk(spec: Spec) -> list[Walked]:
    """The spec's layers with their input and output shapes."""
    shape: tuple[int, ...] = spec.input_shape
    flat_from = None
    out = []
    for layer in spec.layers:
        kind = layer[0]
        pads = (0, 0)
        if kind in ("conv", "sepconv", "maxpool"):
            if kind == "conv":
                _, filters, k, s, padding, _ = layer
            elif kind == "sepconv":
                (_, filters, k, padding), s = layer, 1
            else:  # ("maxpool", size[, strides, padding])
                k, s, padding = layer[1], *(layer[2:] or (layer[1], "valid"))
                filters = shape[2]
            h, w, _ = shape
            assert h == w, "square inputs only"
            if padding == "same":
                pads = same_padding(h, k, s)
                size = -(-h // s)
            else:
                size = (h - k) // s + 1
            new: tuple[int, ...] = (size, size, filters)
        elif kind == "avgpool":
            p = layer[1]
            new = (shape[0] // p, shape[1] // p, shape[2])
        elif kind == "flatten":
            flat_from = shape
            new = (math.prod(shape),)
        elif kind == "gap":
            new = (shape[2],)
        elif kind in ("dropout", "bn", "relu", "flip", "rotate", "rescale"):
            new = shape
        elif kind == "dense":
            new = (layer[1],)
        else:
            raise ValueError(f"unknown layer {layer!r}")
        item = Walked(layer, shape, new, pads)
        if kind == "dense":
            item.flat_from, flat_from = flat_from, None
        out.append(item)
        shape = new
    return out


def flops_per_sample(spec: Spec) -> tuple[int, int]:
    """(training, forward) floating-point operations per sample: 2 x multiply-adds. Training
    counts forward, input gradient and weight gradient of every weighted layer, except the
    input gradient of the first one (neither framework computes it)."""
    macs = [item.macs for item in walk(spec) if item.macs]  # BatchNormalization is not counted
    return 2 * (3 * sum(macs) - macs[0]), 2 * sum(macs)


def count_params(spec: Spec) -> int:
    return sum(item.params for item in walk(spec))


# ------------------------------------------------------------------ building the models


def build_cnnlab(spec: Spec):
    import cnnlab as cl

    L = cl.layers
    layers: list = [L.Input(spec.input_shape)]
    for layer in spec.layers:
        kind = layer[0]
        if kind == "conv":
            _, filters, k, s, padding, activation = layer
            layers.append(L.Conv2D(filters, k, strides=s, padding=padding, activation=activation))
        elif kind == "sepconv":
            _, filters, k, padding = layer
            layers.append(L.SeparableConv2D(filters, k, padding=padding))
        elif kind == "bn":
            layers.append(L.BatchNormalization())
        elif kind == "relu":
            layers.append(L.Activation("relu"))
        elif kind == "gap":
            layers.append(L.GlobalAveragePooling2D())
        elif kind == "flip":
            layers.append(L.RandomFlip("horizontal"))
        elif kind == "rotate":
            layers.append(L.RandomRotation(layer[1]))
        elif kind == "rescale":
            layers.append(L.Rescaling(layer[1]))
        elif kind == "maxpool" and len(layer) > 2:
            layers.append(L.MaxPooling2D(layer[1], strides=layer[2], padding=layer[3]))
        elif kind == "maxpool":
            layers.append(L.MaxPool2D(layer[1]))
        elif kind == "avgpool":
            layers.append(L.AveragePooling2D(layer[1]))
        elif kind == "flatten":
            layers.append(L.Flatten())
        elif kind == "dropout":
            layers.append(L.Dropout(layer[1]))
        else:
            layers.append(L.Dense(layer[1], activation=layer[2]))
    return cl.Sequential(layers, name=spec.name)


def torch_augmentation(kind: str, value: float = 0.0):
    """RandomFlip("horizontal") or RandomRotation(value) as a PyTorch module, active in training
    mode only (as Keras's): one flip decision or one angle per image. The rotation resamples like
    Keras (bilinear, reflecting at the edges) through ``affine_grid`` + ``grid_sample``."""
    import torch
    from torch import nn
    from torch.nn import functional

    class Augment(nn.Module):
        def forward(self, x):
            if not self.training:
                return x
            n = x.shape[0]
            if kind == "flip":
                flip = (torch.rand(n) <= 0.5).view(n, 1, 1, 1)
                return torch.where(flip, x.flip(3), x)
            angle = (torch.rand(n) * 2 - 1) * (value * 2 * math.pi)
            cos, sin = torch.cos(angle), torch.sin(angle)
            zero = torch.zeros(n)
            theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
            grid = functional.affine_grid(theta, list(x.shape), align_corners=True)
            return functional.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=True)

    return Augment()


def Rescale(scale: float):  # noqa: N802 - stands for a class
    """Rescaling(scale) as a PyTorch module."""
    from torch import nn

    class Rescaling(nn.Module):
        def forward(self, x):
            return x * scale

    return Rescaling()


def build_torch(spec: Spec):
    """The same network in PyTorch (NCHW); returns it and its weighted modules in order (for
    SeparableConv2D the pair (depthwise, pointwise))."""
    from torch import nn

    acts = {"relu": nn.ReLU, "tanh": nn.Tanh}
    mods: list = []
    weighted: list = []
    walked = walk(spec)

    def pad_explicitly(item: Walked, value: float = 0.0) -> int:
        """TensorFlow's asymmetric 'same' (the odd cell after): pad explicitly; the layer's own padding."""
        before, after = item.pads
        if before == after:
            return before
        mods.append(nn.ConstantPad2d((before, after, before, after), value))
        return 0

    for index, item in enumerate(walked):
        kind = item.layer[0]
        c_in = item.in_shape[-1]
        if kind == "conv":
            _, filters, k, s, _, activation = item.layer
            pad = pad_explicitly(item)
            weighted.append(nn.Conv2d(c_in, filters, k, stride=s, padding=pad))
            mods.append(weighted[-1])
            if activation:
                mods.append(acts[activation]())
        elif kind == "sepconv":
            _, filters, k, _ = item.layer
            pad = pad_explicitly(item)
            depthwise = nn.Conv2d(c_in, c_in, k, padding=pad, groups=c_in, bias=False)
            pointwise = nn.Conv2d(c_in, filters, 1)
            weighted.append((depthwise, pointwise))
            mods += [depthwise, pointwise]
        elif kind == "bn":
            weighted.append(nn.BatchNorm2d(c_in, eps=1e-3, momentum=0.01))  # Keras momentum 0.99
            mods.append(weighted[-1])
        elif kind == "relu":
            mods.append(nn.ReLU())
        elif kind == "gap":
            mods += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        elif kind in ("flip", "rotate"):
            mods.append(torch_augmentation(kind, item.layer[1] if kind == "rotate" else 0.0))
        elif kind == "rescale":
            mods.append(Rescale(item.layer[1]))
        elif kind == "maxpool" and len(item.layer) > 2:
            pad = pad_explicitly(item, float("-inf"))
            mods.append(nn.MaxPool2d(item.layer[1], stride=item.layer[2], padding=pad))
        elif kind == "maxpool":
            mods.append(nn.MaxPool2d(item.layer[1]))
        elif kind == "avgpool":
            mods.append(nn.AvgPool2d(item.layer[1]))
        elif kind == "flatten":
            mods.append(nn.Flatten())
        elif kind == "dropout":
            mods.append(nn.Dropout(item.layer[1]))
        else:
            weighted.append(nn.Linear(item.in_shape[0], item.out_shape[0]))
            mods.append(weighted[-1])
            activation = item.layer[2]
            if activation == "softmax":
                assert index == len(walked) - 1, "softmax only as the output (PyTorch gives logits)"
            elif activation:
                mods.append(acts[activation]())
    return nn.Sequential(*mods), weighted


def copy_weights_to_torch(spec: Spec, model, weighted) -> None:
    """cnnlab's weights into the PyTorch modules: Conv2D (kh, kw, in, out) -> (out, in, kh, kw),
    Dense (in, out) -> (out, in); the first Dense after a Flatten has its inputs reordered from
    cnnlab's (H, W, C) flattening to PyTorch's (C, H, W). SeparableConv2D: depthwise (kh, kw, C, 1)
    -> (C, 1, kh, kw), pointwise (1, 1, C, F) -> (F, C, 1, 1); BatchNormalization: gamma, beta,
    moving mean and variance -> weight, bias, running_mean, running_var."""
    import torch

    def put(param, value: np.ndarray) -> None:
        param.copy_(torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32)))

    layers = [layer for layer in model.layers if layer.weights]
    items = [item for item in walk(spec) if item.layer[0] in WEIGHTED]
    for layer, item, module in zip(layers, items, weighted, strict=True):
        kind = item.layer[0]
        with torch.no_grad():
            if kind == "sepconv":
                depthwise, pointwise, bias = layer.get_weights()
                put(module[0].weight, depthwise.transpose(2, 3, 0, 1))
                put(module[1].weight, pointwise.transpose(3, 2, 0, 1))
                put(module[1].bias, bias)
                continue
            if kind == "bn":
                gamma, beta, mean, variance = layer.get_weights()
                for param, value in zip(
                    (module.weight, module.bias, module.running_mean, module.running_var),
                    (gamma, beta, mean, variance),
                    strict=True,
                ):
                    put(param, value)
                continue
            kernel, bias = layer.get_weights()
            if kind == "conv":
                weight = kernel.transpose(3, 2, 0, 1)
            elif item.flat_from is not None:
                h, w, c = item.flat_from
                weight = kernel.reshape(h, w, c, -1).transpose(3, 2, 0, 1).reshape(kernel.shape[1], -1)
            else:
                weight = kernel.T
            put(module.weight, weight)
            put(module.bias, bias)


# ------------------------------------------------------------------ data


def load_data(spec: Spec, n_train: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x_train[:n_train], integer labels, 10,000 images to predict), float32 NHWC in [0, 1)
    (0..255 for a network with ``raw_pixels``)."""
    if spec.input_shape == (28, 28, 1):
        import cnnlab as cl

        (x, y), (xt, _) = cl.datasets.fashion_mnist.load_data()
        if n_train > len(x):
            raise SystemExit(f"{spec.name}: {n_train} training images asked, Fashion-MNIST has {len(x)}")
        scale = np.float32(1 if spec.raw_pixels else 1 / 255)
        x = x[:n_train].reshape(-1, 28, 28, 1).astype(np.float32) * scale
        xt = xt[:PREDICT_IMAGES].reshape(-1, 28, 28, 1).astype(np.float32) * scale
        return x, y[:n_train].astype(np.int64), xt
    rng = np.random.default_rng(12345)
    x = rng.random((n_train, *spec.input_shape), dtype=np.float32)
    y = rng.integers(0, 10, n_train)
    return x, y, rng.random((PREDICT_IMAGES, *spec.input_shape), dtype=np.float32)


# ------------------------------------------------------------------ one framework, one network


def time_cnnlab(spec: Spec, steps: int, warmup: int, repeats: int, predict_repeats: int) -> dict:
    import cnnlab as cl

    x, y, xt = load_data(spec, steps * spec.batch)
    cl.set_random_seed(0)
    model = build_cnnlab(spec)
    model.compile(cl.optimizers.Adam(learning_rate=1e-3, epsilon=1e-7), "categorical_crossentropy")
    seconds: list[float] = []

    class EpochTimer(cl.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds.append(time.perf_counter() - self.start)

    onehot = cl.utils.to_categorical(y, 10)
    model.fit(x, onehot, batch_size=spec.batch, epochs=warmup + repeats, verbose=0, callbacks=[EpochTimer()])
    model.predict(xt[:256])  # compiles the inference kernels
    predict = []
    for _ in range(predict_repeats):
        start = time.perf_counter()
        model.predict(xt)
        predict.append(time.perf_counter() - start)
    info = {}
    try:
        import numba

        info["numba_threading_layer"] = numba.threading_layer()
        info["numba_threads"] = numba.config.NUMBA_NUM_THREADS
    except (ImportError, ValueError):
        info["numba_threading_layer"] = None
    return {"epoch_seconds": seconds, "predict_seconds": predict, "info": info}


def time_torch(spec: Spec, steps: int, warmup: int, repeats: int, predict_repeats: int) -> dict:
    import torch

    torch.set_num_threads(2)
    torch.manual_seed(0)
    x, y, xt = load_data(spec, steps * spec.batch)
    xs = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    ys = torch.from_numpy(y)
    model, _ = build_torch(spec)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    model.train()
    seconds = []
    for _ in range(warmup + repeats):
        start = time.perf_counter()
        order = torch.randperm(len(xs))
        for step in range(steps):
            idx = order[step * spec.batch : (step + 1) * spec.batch]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(xs[idx]), ys[idx])
            loss.backward()
            opt.step()
        seconds.append(time.perf_counter() - start)
    model.eval()
    xts = torch.from_numpy(np.ascontiguousarray(xt.transpose(0, 3, 1, 2)))
    predict = []
    with torch.no_grad():
        model(xts[:256])
        for _ in range(predict_repeats):
            start = time.perf_counter()
            torch.cat([model(xts[i : i + TORCH_PREDICT_BATCH]) for i in range(0, len(xts), TORCH_PREDICT_BATCH)])
            predict.append(time.perf_counter() - start)
    info = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkldnn": torch.backends.mkldnn.is_available(),
    }
    return {"epoch_seconds": seconds, "predict_seconds": predict, "info": info}


def check_same_computation(names: list[str], images: int = 8) -> dict[str, float]:
    """Largest |p_cnnlab - p_torch| of the predicted probabilities, cnnlab's weights copied."""
    import torch

    import cnnlab as cl
    from cnnlab import lecture

    torch.set_num_threads(2)
    out = {}
    for name in names:
        spec = SPECS[name]
        x, _, _ = load_data(spec, images)
        cl.set_random_seed(1)
        model = build_cnnlab(spec)
        p_cnnlab = model.predict(x)
        assert model.count_params() == count_params(spec), name
        if name in lecture.LECTURE:
            assert model.count_params() == lecture.LECTURE[name]["params"], name
        tmodel, weighted = build_torch(spec)
        copy_weights_to_torch(spec, model, weighted)
        tmodel.eval()
        with torch.no_grad():
            logits = tmodel(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))))
            p_torch = torch.softmax(logits, dim=1).numpy()
        out[name] = float(np.abs(p_cnnlab - p_torch).max())
    return out


# ------------------------------------------------------------------ the parent process


def cpu_info() -> dict:
    info = {"model": platform.processor() or "unknown", "cores": os.cpu_count(), "avx512f": False, "avx2": False}
    try:
        with open("/proc/cpuinfo") as handle:
            text = handle.read()
    except OSError:
        return info
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            info["model"] = value.strip()
        elif key.strip() == "flags":
            flags = value.split()
            info["avx512f"], info["avx2"] = "avx512f" in flags, "avx2" in flags
            break
    return info


def blas_info() -> list[dict]:
    from threadpoolctl import threadpool_info

    return [
        {k: entry.get(k) for k in ("internal_api", "version", "architecture", "num_threads", "threading_layer")}
        for entry in threadpool_info()
        if entry.get("user_api") == "blas"
    ]


def matmul_peak_gflops(rounds: int = 3) -> float:
    """float32 matmul speed of this NumPy/BLAS with its default threads (the 'peak' of the ratios):
    the best of ``rounds`` rounds of five 2048 x 2048 products."""
    a = np.random.default_rng(0).random((2048, 2048), dtype=np.float32)
    a @ a
    best = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(5):
            a @ a
        best = max(best, 5 * 2 * 2048**3 / (time.perf_counter() - start) / 1e9)
    return best


def default_steps(spec: Spec) -> int:
    """Steps per epoch: an epoch of about 2,048 samples (at least 10 steps)."""
    return max(10, -(-EPOCH_SAMPLES // spec.batch))


def busy_cpu_seconds() -> float:
    """CPU seconds that all processes together have been busy since boot, all cores (/proc/stat;
    steal time counts as busy: the host gave the core to someone else); 0 where unavailable."""
    try:
        with open("/proc/stat") as handle:
            ticks = [int(v) for v in handle.readline().split()[1:9]]
    except (OSError, ValueError):
        return 0.0
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (the measurements)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def wait_for_idle(limit: float, window: float = 5.0) -> float:
    """Wait until other processes use under 10% of the cores over ``window`` seconds, for at most
    ``limit`` seconds; returns the seconds waited."""
    start = time.perf_counter()
    while time.perf_counter() - start < limit:
        busy, own = busy_cpu_seconds(), own_cpu_seconds()
        time.sleep(window)
        others = busy_cpu_seconds() - busy - (own_cpu_seconds() - own)
        if others < 0.1 * (os.cpu_count() or 1) * window:
            break
    return time.perf_counter() - start


def child(args: argparse.Namespace, *extra: str) -> dict | None:
    """Run this script in a new process; its last stdout line is JSON."""
    cmd = [sys.executable, os.path.abspath(__file__), *extra]
    cmd += [
        "--warmup",
        str(args.warmup),
        "--repeats",
        str(args.repeats),
        "--predict-repeats",
        str(args.predict_repeats),
    ]
    busy, own, start = busy_cpu_seconds(), own_cpu_seconds(), time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)  # stderr passes through
    wall = time.perf_counter() - start
    if proc.returncode:
        print(f"  failed ({' '.join(extra)}): exit code {proc.returncode}", flush=True)
        return None
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # cores that other processes kept busy meanwhile (ours spin while waiting, so count as ours)
    others = max(0.0, (busy_cpu_seconds() - busy - (own_cpu_seconds() - own)) / wall)
    return {"result": out, "other_cores": others}


def summarise(spec: Spec, steps: int, raw: dict, warmup: int, peak: float) -> dict:
    train_flops, forward_flops = flops_per_sample(spec)
    timed = raw["epoch_seconds"][warmup:]
    ms = statistics.median(timed) / steps * 1e3
    predict = statistics.median(raw["predict_seconds"])
    gflops = train_flops * spec.batch / (ms / 1e3) / 1e9
    return {
        "ms_per_step": ms,
        "ms_per_step_min": min(timed) / steps * 1e3,
        "ms_per_step_all": [t / steps * 1e3 for t in timed],
        "first_epoch_s": raw["epoch_seconds"][0],
        "predict_s": predict,
        "predict_s_all": raw["predict_seconds"],
        "train_gflops": gflops,
        "train_peak_fraction": gflops / peak,
        "predict_gflops": forward_flops * PREDICT_IMAGES / predict / 1e9,
        "info": raw["info"],
    }


def print_table(results: dict, peak: float) -> None:
    head = (
        f"{'model':<14}{'params':>9}{'MFLOP/smp':>10} | {'ms/step':>8}{'torch':>8}{'ratio':>7} | "
        f"{'predict s':>9}{'torch':>8}{'ratio':>7} | {'GFLOP/s train':>13}{'% peak':>7}{'torch':>7}{'% peak':>7} | "
        f"{'GFLOP/s pred':>12}{'torch':>7} | {'others':>9}"
    )
    print(head)
    print("-" * len(head))

    def num(r: dict | None, key: str, fmt: str) -> str:
        return format(r[key], fmt) if r else "-"

    for name, per in results.items():
        spec = SPECS[name]
        c, t = per.get("cnnlab"), per.get("torch")
        both = c is not None and t is not None
        train_ratio = f"{c['ms_per_step'] / t['ms_per_step']:.2f}" if both else "-"
        pred_ratio = f"{c['predict_s'] / t['predict_s']:.2f}" if both else "-"
        print(
            f"{name:<14}{count_params(spec):>9,}{flops_per_sample(spec)[0] / 1e6:>10.1f} | "
            f"{num(c, 'ms_per_step', '.2f'):>8}{num(t, 'ms_per_step', '.2f'):>8}{train_ratio:>7} | "
            f"{num(c, 'predict_s', '.3f'):>9}{num(t, 'predict_s', '.3f'):>8}{pred_ratio:>7} | "
            f"{num(c, 'train_gflops', '.1f'):>13}{num(c, 'train_peak_fraction', '.0%'):>7}"
            f"{num(t, 'train_gflops', '.1f'):>7}{num(t, 'train_peak_fraction', '.0%'):>7} | "
            f"{num(c, 'predict_gflops', '.1f'):>12}{num(t, 'predict_gflops', '.1f'):>7} | "
            f"{num(c, 'other_cores', '.2f') + '/' + num(t, 'other_cores', '.2f'):>9}"
        )
    print(f"ratio = cnnlab / torch (below 1: cnnlab faster); peak = {peak:.0f} GFLOP/s (NumPy float32 matmul)")
    print("others = cores other processes kept busy during the cnnlab/torch measurement (noisy above ~0.1)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["cnnlab", "torch"], help="measure one framework only")
    parser.add_argument("--models", default=",".join(SPECS), help=f"comma-separated, from: {', '.join(SPECS)}")
    parser.add_argument(
        "--steps", type=int, help=f"training steps per epoch (default: {EPOCH_SAMPLES} samples / batch)"
    )
    parser.add_argument("--warmup", type=int, default=2, help="untimed epochs first (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs (default 3)")
    parser.add_argument("--predict-repeats", type=int, default=2, help="timed predict calls (default 2)")
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0,
        metavar="S",
        help="before each measurement wait up to S seconds for other processes to leave the cores idle",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=0,
        help="measure again (up to this many times) when other processes were busy; the quietest run counts",
    )
    parser.add_argument("--json", metavar="OUT", help="also write every figure to this JSON file")
    parser.add_argument("--worker", nargs=2, metavar=("FRAMEWORK", "MODEL"), help=argparse.SUPPRESS)
    parser.add_argument("--check", metavar="MODELS", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.check:  # child: same-computation check
        print(json.dumps(check_same_computation(args.check.split(","))))
        return
    if args.worker:  # child: one framework, one network
        framework, name = args.worker
        fn = time_cnnlab if framework == "cnnlab" else time_torch
        print(json.dumps(fn(SPECS[name], args.steps, args.warmup, args.repeats, args.predict_repeats)))
        return

    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in SPECS]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(SPECS)}")
    frameworks = [args.only] if args.only else ["cnnlab", "torch"]
    cpu = cpu_info()
    blas = blas_info()
    versions = {}
    for package in ("numpy", "numba", "threadpoolctl", "torch"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    unset = [v for v in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if v in os.environ]
    print(
        f"CPU: {cpu['model']}, {cpu['cores']} cores, avx512f {'yes' if cpu['avx512f'] else 'no'}, "
        f"avx2 {'yes' if cpu['avx2'] else 'no'}"
    )
    for entry in blas:
        print(
            f"BLAS (threadpoolctl): {entry['internal_api']} {entry['version']}, core type {entry['architecture']}, "
            f"{entry['num_threads']} threads"
        )
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if v))
    if unset:
        print(f"note: {', '.join(unset)} set: benchmark figures are meant with them unset")
    print(f"load average before: {', '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)
    if args.wait_idle:
        wait_for_idle(args.wait_idle)
    peak = peak_start = matmul_peak_gflops()
    print(f"float32 matmul peak of this NumPy (2048^3): {peak:.0f} GFLOP/s", flush=True)

    check = None
    if len(frameworks) == 2:
        check = child(args, "--check", ",".join(names))
        if check:
            check = check["result"]
            for name, diff in check.items():
                flag = "" if diff < 1e-4 else "   <-- DIFFERENT"
                print(f"check {name:<14} max |p_cnnlab - p_torch| on 8 images, same weights: {diff:.1e}{flag}")

    results: dict[str, dict] = {}
    steps_used = {}
    for name in names:
        spec = SPECS[name]
        steps = args.steps or default_steps(spec)
        steps_used[name] = steps
        results[name] = {}
        for framework in frameworks:
            run = None
            for attempt in range(1 + args.retries):
                waited = wait_for_idle(args.wait_idle) if args.wait_idle else 0.0
                load = os.getloadavg()[0]
                print(
                    f"{name} ({spec.about}), batch {spec.batch}, {steps} steps/epoch: {framework} "
                    f"(load average {load:.2f}" + (f", waited {waited:.0f} s" if args.wait_idle else "") + ") ...",
                    flush=True,
                )
                this = child(args, "--worker", framework, name, "--steps", str(steps))
                if this is None:
                    break
                this["load_average_before"], this["attempt"] = load, attempt + 1
                if run is None or this["other_cores"] < run["other_cores"]:
                    run = this
                if this["other_cores"] <= NOISY_CORES:
                    break
                if attempt < args.retries:
                    print(f"  noisy: other processes kept {this['other_cores']:.2f} cores busy; again", flush=True)
            if run is None:
                continue
            res = summarise(spec, steps, run["result"], args.warmup, peak)
            for key in ("other_cores", "load_average_before", "attempt"):
                res[key] = run[key]
            results[name][framework] = res
            print(
                f"  {res['ms_per_step']:.2f} ms/step (timed epochs: "
                + ", ".join(f"{v:.2f}" for v in res["ms_per_step_all"])
                + f"; first epoch {res['first_epoch_s']:.1f} s), predict {res['predict_s']:.3f} s; "
                f"other processes kept {res['other_cores']:.2f} cores busy meanwhile",
                flush=True,
            )
    if args.wait_idle:
        wait_for_idle(args.wait_idle)
    peak_end = matmul_peak_gflops()
    print(f"float32 matmul peak again: {peak_end:.0f} GFLOP/s; the higher of the two is used", flush=True)
    if peak_end > peak:
        peak = peak_end
        for per in results.values():
            for res in per.values():
                res["train_peak_fraction"] = res["train_gflops"] / peak
    print()
    print_table(results, peak)
    load_after = os.getloadavg()
    print(f"load average after: {', '.join(f'{v:.2f}' for v in load_after)}")
    if args.json:
        payload = {
            "cpu": cpu,
            "blas": blas,
            "versions": versions,
            "peak_gflops": peak,
            "peak_gflops_start": peak_start,
            "peak_gflops_end": peak_end,
            "settings": {
                "warmup": args.warmup,
                "repeats": args.repeats,
                "predict_repeats": args.predict_repeats,
                "wait_idle": args.wait_idle,
                "retries": args.retries,
                "steps": steps_used,
                "openblas_variables_set": unset,
            },
            "check_max_abs_diff": check,
            "results": results,
            "load_average_after": load_after,
        }
        with open(args.json, "w") as handle:
            json.dump(payload, handle, indent=2)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
