"""The training step of a dense network (``[Input] [Flatten] Dense ... Dense``) as compiled
parallel regions.

For an MLP at batch size 32 every matmul is skinny, and a step is a chain of them followed by
Adam, a memory-bound pass over all 1.15 M weights. Done the usual way (NumPy's matmul with
OpenBLAS's threads, then Adam with numba's), the two thread pools take turns: each spins while
the other works, so they cannot both have the two cores, and Adam rereads every gradient from
memory. Here numba's threads do everything: per layer and direction one parallel region, in
which each core calls single-threaded OpenBLAS ``sgemm`` (:mod:`cnnlab._accel.blas`) on its share of
the columns (forward) or of the kernel's rows (backward), then finishes that share at once:
bias and ReLU in the forward pass; in the backward pass the ReLU mask of the input gradient,
and Adam on the kernel rows whose gradient it just computed (still in cache), after having
read their old values for the input gradient. Weights are updated layer by layer as the
backward pass goes, as they would be after it: each row is read before it is written.

The numbers are those of the layer-by-layer step (same sgemm on the same blocks, same
elementwise operations; tested to float32 rounding) and ``Adam`` is applied through
:func:`cnnlab._accel.kernels.adam_span`, the kernel ``Adam.apply`` uses.

Used by ``fit`` when numba and NumPy's OpenBLAS are available, the data are float32, the
optimizer is ``Adam`` and the model is ``[Input] [Flatten] Dense ... Dense`` with ReLU or
linear hidden activations (any activation on the last layer); otherwise the general step runs.
Measured in benchmarks/RESULTS.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab._accel import AVAILABLE, blas, kernels, njit, numba, threads
from cnnlab.layers.core import Dense, Flatten, InputLayer
from cnnlab.ops.activations import flush_subnormals
from cnnlab.optimizers import Adam


def available() -> bool:
    """Whether the compiled step can run here (numba and NumPy's OpenBLAS, see :mod:`cnnlab._accel.blas`)."""
    return blas.sgemm() is not None


# sgemm and the thread count come in as arguments, not as globals: numba can then cache the
# compiled code (a C function's address changes from one process to the next).
if AVAILABLE:
    adam_span = kernels.adam_span
    R, N, T = blas.ROW_MAJOR, blas.NO_TRANS, blas.TRANS

    @njit(parallel=True)
    def forward(gemm, parts, x, w, b, relu, y):  # pragma: no cover - compiled
        """``y = x @ w + b`` (ReLU if ``relu``); ``x: (M, K)``, ``w: (K, N)``, ``y: (M, N)``.
        Each of ``parts`` threads takes a block of columns (a multiple of 16 wide)."""
        m, k = x.shape
        n = w.shape[1]
        width = ((n + parts - 1) // parts + 15) // 16 * 16
        for part in numba.prange(parts):
            lo = part * width
            hi = min(n, lo + width)
            if lo >= hi:
                continue
            one, zero = np.float32(1), np.float32(0)
            # y[:, lo:hi] = x @ w[:, lo:hi]   (pointers: 4 bytes per float32)
            gemm(
                R,
                N,
                N,
                m,
                hi - lo,
                k,
                one,
                x.ctypes.data,
                k,
                w.ctypes.data + lo * 4,
                n,
                zero,
                y.ctypes.data + lo * 4,
                n,
            )
            for i in range(m):
                yi = y[i, lo:hi]
                bi = b[lo:hi]
                for j in range(hi - lo):
                    value = yi[j] + bi[j]
                    if relu and value < 0:
                        value = 0
                    yi[j] = value

    @njit(parallel=True)
    def backward(gemm, parts, x, dz, w, gw, mw, vw, b, gb, mb, vb, consts, need_dx, mask, dx, dx_t):  # pragma: no cover
        """One Dense layer's backward pass and Adam update.

        ``x: (M, K)`` the layer's input, ``dz: (M, N)`` the gradient of its affine output;
        ``w, gw, mw, vw``: kernel, its gradient and Adam moments, flat ``(K*N,)``; ``b, gb, mb,
        vb`` the same for the bias (size 0 without bias). If ``need_dx``: ``dx = dz @ w^T``
        with the old ``w``, times ``x > 0`` if ``mask`` (the ReLU before this layer). It is
        computed as ``w @ dz^T`` into the scratch ``dx_t: (K, M)`` (as ``Dense.backward`` does:
        OpenBLAS is ~1.5x faster reading the kernel in its stored layout) and transposed back.
        Each thread takes a block of the kernel's rows: input gradient columns, kernel gradient
        rows, then Adam on those rows (after their old values were read, while still in cache).
        """
        m, k = x.shape
        n = dz.shape[1]
        c1, c2, eps, alpha, m_floor, g_floor = consts
        rows = (k + parts - 1) // parts
        for part in numba.prange(parts):
            lo = part * rows
            hi = min(k, lo + rows)
            one, zero = np.float32(1), np.float32(0)
            if lo < hi:
                if need_dx:
                    # dx_t[lo:hi] = w[lo:hi] @ dz^T
                    gemm(R, N, T, hi - lo, m, n, one, w.ctypes.data + lo * n * 4, n, dz.ctypes.data, n, zero,
                         dx_t.ctypes.data + lo * m * 4, m)  # fmt: skip
                    for j in range(lo, hi):
                        for i in range(m):
                            if mask:
                                dx[i, j] = dx_t[j, i] * np.float32(x[i, j] > 0)
                            else:
                                dx[i, j] = dx_t[j, i]
                # gw[lo:hi] = x[:, lo:hi]^T @ dz
                gemm(R, T, N, hi - lo, n, m, one, x.ctypes.data + lo * 4, k, dz.ctypes.data, n, zero,
                     gw.ctypes.data + lo * n * 4, n)  # fmt: skip
                s, e = lo * n, hi * n
                adam_span(w[s:e], gw[s:e], mw[s:e], vw[s:e], c1, c2, eps, alpha, m_floor, g_floor)
            if part == 0 and b.size:
                # the bias gradient summed over rows in order, as NumPy's dz.sum(axis=0)
                for j in range(n):
                    gb[j] = dz[0, j]
                for i in range(1, m):
                    for j in range(n):
                        gb[j] += dz[i, j]
                adam_span(b, gb, mb, vb, c1, c2, eps, alpha, m_floor, g_floor)

    @njit(parallel=True)
    def infer(gemm, parts, block, x, kernels, biases, relu, width, z):  # pragma: no cover
        """Inference through Dense layers: ``x: (M, K0)`` -> logits ``z: (M, N_last)``.

        ``kernels``/``biases``: tuples of the layers' weights, ``relu[i]`` whether layer i clips.
        Each of ``parts`` threads takes ``block`` rows at a time through every layer, ping-ponging
        between two scratch buffers ``(block, width)``: no barrier between layers, and the
        activations never leave the thread's cache.
        """
        m = x.shape[0]
        blocks = (m + block - 1) // block
        layers = len(kernels)
        for part in numba.prange(parts):
            even = np.empty((block, width), np.float32)
            odd = np.empty((block, width), np.float32)
            for index in range(part, blocks, parts):
                r0 = index * block
                r1 = min(m, r0 + block)
                count = r1 - r0
                for li in range(layers):
                    w = kernels[li]
                    bias = biases[li]
                    k, n = w.shape
                    if li == 0:
                        src = x[r0:r1]
                    elif li % 2 == 1:
                        src = even[:count]
                    else:
                        src = odd[:count]
                    if li == layers - 1:
                        dst = z[r0:r1]
                    elif li % 2 == 0:
                        dst = even[:count]
                    else:
                        dst = odd[:count]
                    one, zero = np.float32(1), np.float32(0)
                    # dst = src @ w   (leading dimensions in float32 elements)
                    gemm(R, N, N, count, n, k, one, src.ctypes.data, src.strides[0] // 4, w.ctypes.data, n, zero,
                         dst.ctypes.data, dst.strides[0] // 4)  # fmt: skip
                    for i in range(count):
                        for j in range(n):
                            value = dst[i, j] + bias[j]
                            if relu[li] and value < 0:
                                value = 0
                            dst[i, j] = value

else:
    forward = backward = infer = None


def covers(layers: list, dtype: np.dtype) -> bool:
    """Whether the compiled kernels can run these layers on ``dtype`` data: ``[Input] [Flatten]
    Dense ... Dense`` (or Dense layers on 2-d inputs), float32 weights, ReLU or linear hidden
    layers."""
    dense = [layer for layer in layers if isinstance(layer, Dense)]
    if not dense or np.dtype(dtype) != np.float32 or not all(layer.built for layer in dense):
        return False
    head = layers[: layers.index(dense[0])]
    if any(not isinstance(layer, (InputLayer, Flatten)) for layer in head):
        return False
    if len(layers) - len(head) != len(dense):  # only Dense layers after the first Dense
        return False
    if len(dense[0].build_input_shape) != 2:
        return False
    if any(layer.activation not in ("relu", "linear") for layer in dense[:-1]):
        return False
    if any(w.dtype != np.float32 for layer in dense for w in layer.weights):
        return False
    return available()


#: rows one thread carries through all layers at a time in :func:`predict` (activations stay in L2)
INFER_ROWS = 256


def predictor(layers: list, dtype: np.dtype):
    """A compiled whole-model forward for layers :func:`covers`, or None."""
    if not covers(layers, dtype):
        return None
    return lambda x: predict(layers, x)


def predict(layers: list, x: np.ndarray) -> np.ndarray:
    """Outputs of layers :func:`covers` for ``x: (N, ...)``, through :func:`infer`: each thread
    takes 256 samples at a time through every layer (sgemm, then bias and ReLU while the block is
    in cache) and the last layer's activation runs on the logits, as ``Dense`` does. The same
    sums as the layer-by-layer forward, which OpenBLAS may round differently for other row
    counts (tested to float32 rounding)."""
    dense = [layer for layer in layers if isinstance(layer, Dense)]
    rows = np.ascontiguousarray(x.reshape(len(x), -1), dtype=np.float32)
    kernels_ = tuple(np.ascontiguousarray(layer.kernel) for layer in dense)
    biases = tuple(layer.bias if layer.use_bias else np.zeros(layer.units, np.float32) for layer in dense)
    relu = np.array([layer.activation == "relu" for layer in dense[:-1]] + [False])
    width = max([layer.units for layer in dense[:-1]] + [1])
    z = np.empty((len(rows), dense[-1].units), np.float32)
    infer(blas.sgemm(), threads(), INFER_ROWS, rows, kernels_, biases, relu, width, z)
    return dense[-1].activate(z, training=False)


class DenseStep:
    """Forward, loss, backward and Adam update of a dense network in one call."""

    def __init__(self, layers: list, store: Any, optimizer: Adam) -> None:
        self.dense = [layer for layer in layers if isinstance(layer, Dense)]
        self.store, self.optimizer = store, optimizer
        self.spans = []
        for layer in self.dense:
            bias = store.span(layer, "bias") if layer.use_bias else (0, 0)
            self.spans.append((store.span(layer, "kernel"), bias))

    @staticmethod
    def match(leaves: list, dtype: np.dtype, optimizer: Any, store: Any) -> DenseStep | None:
        layers = [layer for layer, _ in leaves]
        if not isinstance(optimizer, Adam) or store.flat is None or store.flat.dtype != np.float32:
            return None
        dense = [trainable for layer, trainable in leaves if isinstance(layer, Dense)]
        if not all(dense) or not covers(layers, dtype):
            return None
        return DenseStep(layers, store, optimizer)

    def run(self, xb: np.ndarray, yb: np.ndarray, loss: Any) -> tuple[np.ndarray, np.ndarray]:
        """One training step on a batch; returns per-sample losses and the outputs. If a loss
        value is NaN or infinite, nothing is updated (``fit`` then stops)."""
        gemm, parts = blas.sgemm(), threads()
        dense = self.dense
        acts = [np.ascontiguousarray(xb.reshape(len(xb), -1), dtype=np.float32)]
        last = dense[-1]
        for layer in dense[:-1]:
            y = np.empty((len(xb), layer.units), np.float32)
            forward(gemm, parts, acts[-1], layer.kernel, self._bias(layer), layer.activation == "relu", y)
            acts.append(y)
        z = np.empty((len(xb), last.units), np.float32)
        forward(gemm, parts, acts[-1], last.kernel, self._bias(last), False, z)
        out = last.activate(z, training=True)
        from_logits = loss.logits_activation is not None and last.activation == loss.logits_activation
        values, grad = loss.value_and_grad(yb, out, last.last_logits if from_logits else None)
        flush_subnormals(grad)
        if np.all(np.isfinite(values)):
            self._backward(acts, np.ascontiguousarray(last.activation_backward(grad, from_logits), np.float32))
        last.release()
        return values, out

    def _backward(self, acts: list[np.ndarray], dz: np.ndarray) -> None:
        gemm, parts = blas.sgemm(), threads()
        opt = self.optimizer
        flat, grads = self.store.flat, self.store.grads
        m_all, v_all = opt.moments(flat)
        consts = opt.constants(flat.dtype)
        for index in range(len(self.dense) - 1, -1, -1):
            (klo, khi), (blo, bhi) = self.spans[index]
            need_dx = index > 0
            x = acts[index]
            dx = np.empty_like(x) if need_dx else x[:0]
            dx_t = np.empty(x.shape[::-1], x.dtype) if need_dx else x[:0]
            mask = need_dx and self.dense[index - 1].activation == "relu"
            kernel = (flat[klo:khi], grads[klo:khi], m_all[klo:khi], v_all[klo:khi])
            bias = (flat[blo:bhi], grads[blo:bhi], m_all[blo:bhi], v_all[blo:bhi])
            backward(gemm, parts, x, dz, *kernel, *bias, consts, need_dx, mask, dx, dx_t)
            dz = dx
        opt.end_step(flush=kernels.flush_tiny)

    @staticmethod
    def _bias(layer: Dense) -> np.ndarray:
        return layer.bias if layer.use_bias else np.zeros(layer.units, np.float32)
