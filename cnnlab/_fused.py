"""Optional compiled kernels (numba) for memory-bound elementwise work.

NumPy needs ~10 passes over the parameters for one Adam step (4 ms for the
lecture's 1.15 M-parameter MLP here); one fused, parallel pass takes ~0.4 ms.
Each kernel performs the same float operations in the same order as the NumPy
code beside it in :mod:`cnnlab.optimizers`, so both give the same numbers.
Without numba (or with ``CNNLAB_NO_NUMBA=1``) the NumPy code runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

try:
    if os.environ.get("CNNLAB_NO_NUMBA"):
        raise ImportError("disabled by CNNLAB_NO_NUMBA")
    import numba
except ImportError:  # pragma: no cover - exercised when numba is absent
    numba = None

AVAILABLE = numba is not None


@contextmanager
def num_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` numba threads (capped at what numba started with)."""
    if not AVAILABLE:
        yield
        return
    previous = numba.get_num_threads()
    numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        numba.set_num_threads(previous)


if AVAILABLE:

    @numba.njit(parallel=True, cache=True, fastmath=False)
    def adam_step(w, g, m, v, one_minus_b1, one_minus_b2, eps, alpha, m_floor, g_floor):  # pragma: no cover
        """One Adam update; see ``optimizers.Adam._update`` for the floors (subnormal flushing)."""
        for i in numba.prange(w.shape[0]):
            gi = g[i]
            gm = gi * np.float32(abs(gi) >= g_floor)  # mask first: gi*gi itself must not be subnormal
            g2 = gm * gm
            mi = m[i] + (gi - m[i]) * one_minus_b1
            vi = v[i] + (g2 - v[i]) * one_minus_b2
            mi = mi * np.float32(abs(mi) >= m_floor)
            m[i] = mi
            v[i] = vi
            w[i] -= (mi * alpha) / (np.sqrt(vi) + eps)

else:
    adam_step = None


if AVAILABLE:

    @numba.njit(parallel=True, cache=True)
    def max_pool_forward(xp, ph, pw, sh, sw, ho, wo, y, arg):  # pragma: no cover
        """``y[n,i,j,c] = max over the window``; ``arg`` = offset of the first maximum (row-major)."""
        n_batch, channels = xp.shape[0], xp.shape[3]
        for n in numba.prange(n_batch):
            for i in range(ho):
                for j in range(wo):
                    # channels innermost: contiguous, so the comparisons vectorise
                    for c in range(channels):
                        y[n, i, j, c] = xp[n, i * sh, j * sw, c]
                        arg[n, i, j, c] = 0
                    for di in range(ph):
                        for dj in range(pw):
                            if di == 0 and dj == 0:
                                continue
                            where = di * pw + dj
                            for c in range(channels):
                                value = xp[n, i * sh + di, j * sw + dj, c]
                                if value > y[n, i, j, c]:  # strictly: the first maximum keeps the gradient
                                    y[n, i, j, c] = value
                                    arg[n, i, j, c] = where

    @numba.njit(parallel=True, cache=True)
    def max_pool_backward(dy, arg, ph, pw, sh, sw, dxp):  # pragma: no cover
        """``dxp`` (overwritten) gets each ``dy`` at the input cell that won its window."""
        n_batch, ho, wo, channels = dy.shape
        for n in numba.prange(n_batch):
            dxp[n] = 0
            for i in range(ho):
                for j in range(wo):
                    for c in range(channels):
                        a = arg[n, i, j, c]
                        dxp[n, i * sh + a // pw, j * sw + a % pw, c] += dy[n, i, j, c]

else:
    max_pool_forward = max_pool_backward = None


#: rows per parallel chunk in the small-K kernels below
_ROWS_PER_CHUNK = 512

if AVAILABLE:

    @numba.njit(parallel=True, cache=True)
    def small_matmul_bias_relu(cols, w, b, relu, y):  # pragma: no cover
        """``y = cols @ w + b`` (then ReLU if ``relu``) in one pass, for a small inner size K.

        BLAS is slow when K is tiny (conv1 of the lecture: K = 2*2*1 = 4) and the bias and
        ReLU would each cost another pass over the output; here every output row is written once.
        """
        m_total, k_total = cols.shape
        f_total = w.shape[1]
        chunks = (m_total + _ROWS_PER_CHUNK - 1) // _ROWS_PER_CHUNK
        for chunk in numba.prange(chunks):
            for m in range(chunk * _ROWS_PER_CHUNK, min(m_total, (chunk + 1) * _ROWS_PER_CHUNK)):
                for f in range(f_total):
                    y[m, f] = b[f]
                for k in range(k_total):
                    c = cols[m, k]
                    for f in range(f_total):
                        y[m, f] += c * w[k, f]
                if relu:
                    for f in range(f_total):
                        if y[m, f] < 0:
                            y[m, f] = 0

    @numba.njit(parallel=True, cache=True)
    def small_matmul_bias_relu_backward(cols, y, dy, relu, dw_parts, db_parts):  # pragma: no cover
        """Gradients of :func:`small_matmul_bias_relu`: ``dy`` is masked by ReLU in place
        (it becomes ``dz``) and each chunk's ``cols^T @ dz`` and ``sum(dz)`` go to
        ``dw_parts[chunk]`` and ``db_parts[chunk]`` (summed by the caller)."""
        m_total, k_total = cols.shape
        f_total = y.shape[1]
        chunks = dw_parts.shape[0]
        step = (m_total + chunks - 1) // chunks
        for chunk in numba.prange(chunks):
            dwp = dw_parts[chunk]
            dbp = db_parts[chunk]
            dwp[:] = 0
            dbp[:] = 0
            for m in range(chunk * step, min(m_total, (chunk + 1) * step)):
                for f in range(f_total):
                    if relu and y[m, f] <= 0:
                        dy[m, f] = 0
                    dbp[f] += dy[m, f]
                for k in range(k_total):
                    c = cols[m, k]
                    for f in range(f_total):
                        dwp[k, f] += c * dy[m, f]

else:
    small_matmul_bias_relu = small_matmul_bias_relu_backward = None


if AVAILABLE:

    @numba.njit(parallel=True, cache=True)
    def im2col(x, kh, kw, sh, sw, dh, dw, top, left, cols):  # pragma: no cover
        """``cols[n, i, j, di, dj, c] = x[n, i*sh + di*dh - top, j*sw + dj*dw - left, c]``, 0 outside."""
        n_batch, height, width, channels = x.shape
        ho, wo = cols.shape[1], cols.shape[2]
        for n in numba.prange(n_batch):
            for i in range(ho):
                for j in range(wo):
                    for di in range(kh):
                        r = i * sh + di * dh - top
                        for dj in range(kw):
                            q = j * sw + dj * dw - left
                            if 0 <= r < height and 0 <= q < width:
                                for c in range(channels):
                                    cols[n, i, j, di, dj, c] = x[n, r, q, c]
                            else:
                                for c in range(channels):
                                    cols[n, i, j, di, dj, c] = 0

    @numba.njit(parallel=True, cache=True)
    def col2im(dcols, sh, sw, dh, dw, top, left, dx):  # pragma: no cover
        """The adjoint of :func:`im2col`: ``dx`` (overwritten) sums ``dcols`` over overlapping windows."""
        n_batch, height, width, channels = dx.shape
        ho, wo, kh, kw = dcols.shape[1], dcols.shape[2], dcols.shape[3], dcols.shape[4]
        for n in numba.prange(n_batch):
            dx[n] = 0
            for i in range(ho):
                for j in range(wo):
                    for di in range(kh):
                        r = i * sh + di * dh - top
                        if r < 0 or r >= height:
                            continue
                        for dj in range(kw):
                            q = j * sw + dj * dw - left
                            if 0 <= q < width:
                                for c in range(channels):
                                    dx[n, r, q, c] += dcols[n, i, j, di, dj, c]

else:
    im2col = col2im = None


if AVAILABLE:

    @numba.njit(parallel=True, cache=True)
    def conv_pool_forward(cols, w, b, relu, ph, pw, y, arg):  # pragma: no cover
        """Small-K convolution (+ReLU) followed by non-overlapping max pooling, without
        materialising the convolution's output.

        ``cols: (N, Ho, Wo, K)``, ``w: (K, F)``, ``y, arg: (N, Po, Qo, F)``. Each convolution value
        is summed exactly as :func:`small_matmul_bias_relu` sums it, and the first maximum in
        row-major order wins, as in :func:`max_pool_forward`: the outputs are the same numbers.
        """
        n_batch, po, qo, f_total = y.shape
        k_total = cols.shape[3]
        for n in numba.prange(n_batch):
            z = np.empty(f_total, dtype=y.dtype)
            for p in range(po):
                for q in range(qo):
                    for di in range(ph):
                        for dj in range(pw):
                            i = p * ph + di
                            j = q * pw + dj
                            for f in range(f_total):
                                z[f] = b[f]
                            for k in range(k_total):
                                c = cols[n, i, j, k]
                                for f in range(f_total):
                                    z[f] += c * w[k, f]
                            if relu:
                                for f in range(f_total):
                                    if z[f] < 0:
                                        z[f] = 0
                            where = di * pw + dj
                            if where == 0:
                                for f in range(f_total):
                                    y[n, p, q, f] = z[f]
                                    arg[n, p, q, f] = 0
                            else:
                                for f in range(f_total):
                                    if z[f] > y[n, p, q, f]:
                                        y[n, p, q, f] = z[f]
                                        arg[n, p, q, f] = where

    @numba.njit(parallel=True, cache=True)
    def bias_act_pool_forward(z, b, relu, ph, pw, y, arg):  # pragma: no cover
        """Bias, ReLU and non-overlapping max pooling of a convolution's matmul output ``z:
        (N, Ho, Wo, F)``, in one pass: ``y, arg: (N, Po, Qo, F)``. ``z + b`` and the clip at 0 are
        the operations the separate layers perform, and the first maximum in row-major order wins,
        as in :func:`max_pool_forward`: the outputs are the same numbers."""
        n_batch, po, qo, f_total = y.shape
        for n in numba.prange(n_batch):
            for p in range(po):
                for q in range(qo):
                    for di in range(ph):
                        for dj in range(pw):
                            i = p * ph + di
                            j = q * pw + dj
                            where = di * pw + dj
                            for f in range(f_total):
                                v = z[n, i, j, f] + b[f]
                                if relu and v < 0:
                                    v = 0
                                if where == 0:
                                    y[n, p, q, f] = v
                                    arg[n, p, q, f] = 0
                                elif v > y[n, p, q, f]:
                                    y[n, p, q, f] = v
                                    arg[n, p, q, f] = where

    @numba.njit(parallel=True, cache=True)
    def conv_pool_backward(
        cols, y, arg, dy, relu, ph, pw, wt, geometry, need_dx, dx, dwt_parts, db_parts
    ):  # pragma: no cover
        """Gradients of convolution (+ReLU) + non-overlapping max pooling, visiting only the
        cell that won each pooling window (the others get no gradient), masked by ReLU (a
        winner whose value ``y`` is <= 0 gets none either).

        ``cols: (N, Ho, Wo, K)`` the forward's windows with ``K = kh*kw*C`` ordered (kh, kw, C);
        ``y, arg, dy: (N, Po, Qo, F)``; ``wt: (F, K)`` the kernel transposed, so both inner loops
        run over contiguous memory; ``geometry = (kh, kw, sh, sw, dh, dw, top, left)``.
        Results: ``dwt_parts: (chunks, F, K)`` and ``db_parts: (chunks, F)`` (sum over axis 0 for
        the kernel's and bias's gradients) and, if ``need_dx``, ``dx: (N, H, W, C)``
        (overwritten): each winner adds ``dy * w[..., f]`` over its receptive field.
        """
        n_batch, po, qo, f_total = y.shape
        k_total = cols.shape[3]
        kh, kw, sh, sw, dh, dw, top, left = geometry
        height, width, channels = dx.shape[1], dx.shape[2], dx.shape[3]
        chunks = dwt_parts.shape[0]
        step = (n_batch + chunks - 1) // chunks
        for chunk in numba.prange(chunks):
            dwp = dwt_parts[chunk]
            dbp = db_parts[chunk]
            dwp[:] = 0
            dbp[:] = 0
            for n in range(chunk * step, min(n_batch, (chunk + 1) * step)):
                if need_dx:
                    dx[n] = 0
                for p in range(po):
                    for q in range(qo):
                        for f in range(f_total):
                            g = dy[n, p, q, f]
                            if relu and y[n, p, q, f] <= 0:
                                continue
                            a = arg[n, p, q, f]
                            i = p * ph + a // pw
                            j = q * pw + a % pw
                            dbp[f] += g
                            for k in range(k_total):
                                dwp[f, k] += cols[n, i, j, k] * g
                            if not need_dx:
                                continue
                            for di in range(kh):
                                r = i * sh + di * dh - top
                                if r < 0 or r >= height:
                                    continue
                                for dj in range(kw):
                                    c0 = j * sw + dj * dw - left
                                    if c0 < 0 or c0 >= width:
                                        continue
                                    base = (di * kw + dj) * channels
                                    for c in range(channels):
                                        dx[n, r, c0, c] += g * wt[f, base + c]

else:
    conv_pool_forward = bias_act_pool_forward = conv_pool_backward = None
