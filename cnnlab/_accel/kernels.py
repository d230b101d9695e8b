"""Compiled kernels (numba): the optimizer update, pooling, im2col/col2im, small-K convolution
and convolution + pooling.

Each kernel performs the arithmetic of the reference code it replaces (:mod:`cnnlab.optimizers`,
:mod:`cnnlab.ops`): elementwise kernels the same float operations in the same order, so the
same numbers; sums over many terms possibly in another order (within float rounding).
"""

from __future__ import annotations

import numpy as np

from cnnlab._accel import AVAILABLE, njit, numba

#: values per parallel block of the optimizer update (a block's four arrays stay in L2)
UPDATE_BLOCK = 16384

if AVAILABLE:

    @njit(error_model="numpy")
    def adam_span(w, g, m, v, one_minus_b1, one_minus_b2, eps, alpha, m_floor, g_floor):  # pragma: no cover
        """Adam on (slices of) the flat arrays; see ``optimizers.Adam`` for the floors (subnormal
        flushing). The one copy of the arithmetic: :func:`adam_step` and the compiled dense
        training step (cnnlab.dense_step) both call it. The loop must start at 0 and the error
        model must be numpy's (no check for division by zero) for it to vectorise (3 -> 0.65 ms)."""
        for i in range(w.shape[0]):
            gi = g[i]
            gm = gi * np.float32(abs(gi) >= g_floor)  # mask first: gi*gi itself must not be subnormal
            g2 = gm * gm
            mi = m[i] + (gi - m[i]) * one_minus_b1
            vi = v[i] + (g2 - v[i]) * one_minus_b2
            if abs(mi) < m_floor:  # +0 as NumPy's copyto(where=...) writes (mi * 0 would keep -0);
                mi = mi - mi  # x - x is +0 in mi's own dtype (a literal 0 would widen mi to float64)
            m[i] = mi
            v[i] = vi
            w[i] -= (mi * alpha) / (np.sqrt(vi) + eps)

    @njit(parallel=True)
    def adam_step(w, g, m, v, one_minus_b1, one_minus_b2, eps, alpha, m_floor, g_floor):  # pragma: no cover
        """One Adam update of the whole flat arrays, in parallel blocks of ``UPDATE_BLOCK`` values."""
        size = w.shape[0]
        blocks = (size + UPDATE_BLOCK - 1) // UPDATE_BLOCK
        for block in numba.prange(blocks):
            lo = block * UPDATE_BLOCK
            hi = min(size, lo + UPDATE_BLOCK)
            adam_span(w[lo:hi], g[lo:hi], m[lo:hi], v[lo:hi], one_minus_b1, one_minus_b2, eps, alpha, m_floor, g_floor)

    @njit(parallel=True)
    def flush_tiny(a, tiny):  # pragma: no cover
        """Set the values of the flat array ``a`` smaller in magnitude than ``tiny`` to zero
        (one parallel pass; NumPy's ``copyto(where=abs(a) < tiny)`` needs three: 4.2 -> 0.3 ms
        for the lecture's MLP's Adam state)."""
        for i in numba.prange(a.shape[0]):
            if abs(a[i]) < tiny:
                a[i] = 0

else:
    adam_span = adam_step = flush_tiny = None


if AVAILABLE:

    @njit(parallel=True)
    def max_pool_forward(x, n_batch, h, w, ph, pw, sh, sw, top, left, ho, wo, y, arg):  # pragma: no cover
        """``y[n,i,j,c] = max over the window``; ``arg`` = window offset ``di*pw + dj`` of its first
        maximum (row-major), exactly :func:`cnnlab.ops.pool.max_pool2d_forward_argmax`.

        ``x: (N*H*W, C)``, ``y, arg: (N*ho*wo, C)`` (C-contiguous NHWC flattened to rows), ``top,
        left``: the 'same' padding before the first row and column. Padding cells are not read:
        they hold -inf, so one can only win as the window's first cell (offset 0) when nothing
        beats it, which starting from ``-inf, 0`` reproduces. NaN propagates as in ``np.max``: a
        window holding one is NaN, and its first NaN wins. Flat row indices and channels innermost
        (not 4-D views per window cell) let the comparisons run as SIMD selects: 6.5 -> 0.6 ms for
        (128, 14, 14, 64) with a 3x3 window and stride 2, one thread, the padded copy included."""
        channels = x.shape[1]
        for n in numba.prange(n_batch):
            for i in range(ho):
                r0 = i * sh - top
                for j in range(wo):
                    c0 = j * sw - left
                    o = (n * ho + i) * wo + j
                    if r0 >= 0 and c0 >= 0:
                        first = (n * h + r0) * w + c0
                        for c in range(channels):
                            y[o, c] = x[first, c]
                            arg[o, c] = 0
                    else:  # the window's first cell is padding
                        for c in range(channels):
                            y[o, c] = -np.inf
                            arg[o, c] = 0
                    for r in range(max(r0, 0), min(r0 + ph, h)):
                        for q in range(max(c0, 0), min(c0 + pw, w)):
                            where = np.int32((r - r0) * pw + (q - c0))
                            if where == 0:
                                continue
                            cell = (n * h + r) * w + q
                            for c in range(channels):
                                value = x[cell, c]
                                best = y[o, c]
                                # strictly: the first maximum keeps the gradient; the first NaN beats any
                                # number (bitwise, not `or`/`and`: no branch, so the loop vectorises)
                                better = (value > best) | ((value != value) & (best == best))
                                y[o, c] = value if better else best
                                arg[o, c] = where if better else arg[o, c]

    @njit(parallel=True)
    def max_pool_backward(dy, arg, n_batch, h, w, ph, pw, sh, sw, top, left, ho, wo, add, zero, dx):  # pragma: no cover
        """``dx: (N*H*W, C)`` (overwritten) from ``dy, arg: (N*ho*wo, C)``: each input cell gathers
        the ``dy`` of the windows it won, exactly :func:`cnnlab.ops.pool.max_pool2d_backward`:
        starting from ``zero``, the windows holding the cell in the reference's order (window
        offset ``(di, dj)`` ascending), each adding its ``dy`` or ``zero`` (``add``, overlapping
        windows) or, when windows do not overlap, the winner's ``dy`` copied (so -0.0 stays -0.0).
        A gather writes each ``dx`` value once and vectorises; a scatter does neither."""
        channels = dx.shape[1]
        for n in numba.prange(n_batch):
            for r in range(h):
                for q in range(w):
                    o = (n * h + r) * w + q
                    for c in range(channels):
                        dx[o, c] = zero
                    for di in range(ph):
                        rp = r + top - di  # window row i has rp == i * sh
                        if rp < 0 or rp % sh != 0 or rp // sh >= ho:
                            continue
                        for dj in range(pw):
                            qp = q + left - dj
                            if qp < 0 or qp % sw != 0 or qp // sw >= wo:
                                continue
                            window = (n * ho + rp // sh) * wo + qp // sw
                            where = np.int32(di * pw + dj)
                            if add:
                                for c in range(channels):
                                    g = dy[window, c]  # loaded unconditionally: a plain vector load
                                    dx[o, c] += g if arg[window, c] == where else zero
                            else:
                                for c in range(channels):
                                    g = dy[window, c]
                                    dx[o, c] = g if arg[window, c] == where else dx[o, c]

else:
    max_pool_forward = max_pool_backward = None


#: rows per parallel chunk in the small-K kernels below
_ROWS_PER_CHUNK = 512

#: The small-K kernels take weights with the filter axis zero-padded to a multiple of LANES, so
#: their innermost loops over filters run whole SIMD vectors (AVX-512: 16 float32) with no
#: scalar tail. For the lecture's 30 filters that made conv1 + pool1's forward 3x faster
#: (0.64 -> 0.21 ms per batch); the padded lanes hold zeros and are never written out.
LANES = 16


def pad_filters(a: np.ndarray) -> np.ndarray:
    """``a`` with its last (filter) axis zero-padded to a multiple of :data:`LANES` (contiguous).

    >>> pad_filters(np.ones((2, 3), np.float32)).shape
    (2, 16)
    """
    f = a.shape[-1]
    padded = -(-f // LANES) * LANES
    out = np.zeros((*a.shape[:-1], padded), a.dtype)
    out[..., :f] = a
    return out


if AVAILABLE:

    @njit(parallel=True)
    def small_matmul_bias_relu(cols, w, b, relu, y):  # pragma: no cover
        """``y = cols @ w + b`` (then ReLU if ``relu``) in one pass, for a small inner size K.

        BLAS is slow when K is tiny (conv1 of the lecture: K = 2*2*1 = 4) and the bias and
        ReLU would each cost another pass over the output; here every output row is written once.
        ``w: (K, Fp)`` and ``b: (Fp,)`` come from :func:`pad_filters`; ``y: (M, F)``.
        """
        m_total, k_total = cols.shape
        f_total, fp = y.shape[1], w.shape[1]
        chunks = (m_total + _ROWS_PER_CHUNK - 1) // _ROWS_PER_CHUNK
        for chunk in numba.prange(chunks):
            z = np.empty(fp, dtype=y.dtype)
            for m in range(chunk * _ROWS_PER_CHUNK, min(m_total, (chunk + 1) * _ROWS_PER_CHUNK)):
                for f in range(fp):
                    z[f] = b[f]
                for k in range(k_total):
                    c = cols[m, k]
                    for f in range(fp):
                        z[f] += c * w[k, f]
                if relu:
                    for f in range(fp):
                        if z[f] < 0:
                            z[f] = 0
                for f in range(f_total):
                    y[m, f] = z[f]

    @njit(parallel=True)
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

    @njit(parallel=True)
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

    @njit(parallel=True)
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

    @njit(parallel=True)
    def conv_pool_forward(cols, w, b, relu, ph, pw, y, arg):  # pragma: no cover
        """Convolution (+ReLU) followed by non-overlapping max pooling, without materialising
        the convolution's output.

        ``cols: (N, Ho, Wo, K)``, ``w: (K, Fp)`` and ``b: (Fp,)`` from :func:`pad_filters`,
        ``y, arg: (N, Po, Qo, F)``. Each convolution value is summed exactly as
        :func:`small_matmul_bias_relu` sums it, and the first maximum in row-major order wins,
        as in :func:`max_pool_forward`. The cells of one pooling window are summed side by
        side, so each step over K has ph*pw independent vector updates instead of one chain.
        """
        n_batch, po, qo, f_total = y.shape
        k_total, fp = cols.shape[3], w.shape[1]
        cells = ph * pw
        for n in numba.prange(n_batch):
            z = np.empty((cells, fp), dtype=y.dtype)
            best = np.empty(fp, dtype=y.dtype)
            best_at = np.empty(fp, dtype=np.int32)
            for p in range(po):
                for q in range(qo):
                    for cell in range(cells):
                        for f in range(fp):
                            z[cell, f] = b[f]
                    for k in range(k_total):
                        for di in range(ph):
                            for dj in range(pw):
                                c = cols[n, p * ph + di, q * pw + dj, k]
                                cell = di * pw + dj
                                for f in range(fp):
                                    z[cell, f] += c * w[k, f]
                    for cell in range(cells):
                        if relu:
                            for f in range(fp):
                                if z[cell, f] < 0:
                                    z[cell, f] = 0
                        if cell == 0:
                            for f in range(fp):
                                best[f] = z[0, f]
                                best_at[f] = 0
                        else:
                            for f in range(fp):
                                if z[cell, f] > best[f] or (z[cell, f] != z[cell, f] and best[f] == best[f]):
                                    best[f] = z[cell, f]
                                    best_at[f] = cell
                    for f in range(f_total):
                        y[n, p, q, f] = best[f]
                        arg[n, p, q, f] = best_at[f]

    @njit(parallel=True)
    def conv_pool_weight_grads_small(cols, y, arg, dy, relu, ph, pw, dw_parts, db_parts):  # pragma: no cover
        """Kernel and bias gradients of :func:`conv_pool_forward` for a small K, vectorised over
        filters: for each pooling window and each of its cells, the gradients of the filters
        whose winner is that cell (0 for the others, and where ReLU clipped the winner) times
        the cell's K inputs. Adding those zeros leaves every sum as the winners-only loop of
        :func:`conv_pool_backward` makes it, with a quarter of the iterations for 2x2 pooling
        and 30 filters (0.38 -> 0.1 ms for the lecture's conv1).

        ``dw_parts: (chunks, K, Fp)``, ``db_parts: (chunks, Fp)`` with ``Fp`` from
        :func:`pad_filters` (sum over axis 0 and drop the padding for the gradients).
        """
        n_batch, po, qo, f_total = y.shape
        k_total, fp = cols.shape[3], dw_parts.shape[2]
        chunks = dw_parts.shape[0]
        step = (n_batch + chunks - 1) // chunks
        for chunk in numba.prange(chunks):
            dwp = dw_parts[chunk]
            dbp = db_parts[chunk]
            dwp[:] = 0
            dbp[:] = 0
            g = np.zeros(fp, dtype=y.dtype)
            gm = np.zeros(fp, dtype=y.dtype)
            won = np.full(fp, -1, dtype=np.int32)
            for n in range(chunk * step, min(n_batch, (chunk + 1) * step)):
                for p in range(po):
                    for q in range(qo):
                        for f in range(f_total):
                            v = dy[n, p, q, f]
                            if relu and y[n, p, q, f] <= 0:
                                v = 0
                            g[f] = v
                            won[f] = arg[n, p, q, f]
                        for f in range(fp):
                            dbp[f] += g[f]
                        for where in range(ph * pw):
                            i = p * ph + where // pw
                            j = q * pw + where % pw
                            for f in range(fp):
                                gm[f] = g[f] if won[f] == where else 0
                            for k in range(k_total):
                                c = cols[n, i, j, k]
                                for f in range(fp):
                                    dwp[k, f] += c * gm[f]

    @njit
    def _bias_act_pool_images(z, b, relu, ph, pw, y, arg, n_lo, n_hi):  # pragma: no cover
        """Bias, ReLU and non-overlapping max pooling of images ``[n_lo, n_hi)`` of a convolution's
        matmul output ``z: (N, Ho, Wo, F)`` into ``y, arg: (N, Po, Qo, F)``. ``z + b`` and the clip
        at 0 are the operations the separate layers perform, and the first maximum in row-major
        order wins (a NaN before any number), as in :func:`max_pool_forward`: the outputs are the same numbers."""
        po, qo, f_total = y.shape[1], y.shape[2], y.shape[3]
        for n in range(n_lo, n_hi):
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
                                elif v > y[n, p, q, f] or (v != v and y[n, p, q, f] == y[n, p, q, f]):
                                    y[n, p, q, f] = v
                                    arg[n, p, q, f] = where

    @njit(parallel=True)
    def bias_act_pool_forward(z, b, relu, ph, pw, y, arg):  # pragma: no cover
        """:func:`_bias_act_pool_images` for every image, in parallel."""
        for n in numba.prange(y.shape[0]):
            _bias_act_pool_images(z, b, relu, ph, pw, y, arg, n, n + 1)

    @njit(parallel=True)
    def gemm_bias_act_pool_forward(gemm, parts, cols, w, b, relu, ph, pw, z, y, arg):  # pragma: no cover
        """``z = cols @ w`` then :func:`_bias_act_pool_images`, each of ``parts`` threads on its own
        block of images: single-threaded OpenBLAS ``sgemm`` (``gemm``, see cnnlab._blas) on the
        block's rows, then pooling while they are in cache. ``cols: (N*Ho*Wo, K)`` float32,
        ``w: (K, F)``, ``z: (N, Ho, Wo, F)`` scratch."""
        n_batch, ho, wo, f_total = z.shape
        k_total = cols.shape[1]
        per = (n_batch + parts - 1) // parts
        for part in numba.prange(parts):
            n_lo = part * per
            n_hi = min(n_batch, n_lo + per)
            if n_lo >= n_hi:
                continue
            rows = (n_hi - n_lo) * ho * wo
            first = n_lo * ho * wo
            one, zero = np.float32(1), np.float32(0)
            gemm(101, 111, 111, rows, f_total, k_total, one, cols.ctypes.data + first * k_total * 4, k_total,
                 w.ctypes.data, f_total, zero, z.ctypes.data + first * f_total * 4, f_total)  # fmt: skip
            _bias_act_pool_images(z, b, relu, ph, pw, y, arg, n_lo, n_hi)

    @njit(parallel=True)
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
    conv_pool_forward = conv_pool_weight_grads_small = conv_pool_backward = None
    bias_act_pool_forward = gemm_bias_act_pool_forward = None


if AVAILABLE:

    @njit
    def _gather_rows(x, m_lo, m_hi, ho, wo, geometry, buf):  # pragma: no cover
        """im2col of the flat output rows ``[m_lo, m_hi)`` (row ``m`` is output cell ``(n, i, j)``
        with ``m = (n*Ho + i)*Wo + j``) into ``buf[:m_hi - m_lo]: (rows, K)``, K ordered (kh, kw, C)
        as :func:`cnnlab.ops.conv.im2col`; cells outside ``x`` (padding) are 0."""
        kh, kw, sh, sw, dh, dw, top, left = geometry
        height, width, channels = x.shape[1], x.shape[2], x.shape[3]
        cells = ho * wo
        for m in range(m_lo, m_hi):
            n = m // cells
            rest = m - n * cells
            i = rest // wo
            j = rest - i * wo
            row = buf[m - m_lo]
            for di in range(kh):
                r = i * sh + di * dh - top
                for dj in range(kw):
                    q = j * sw + dj * dw - left
                    base = (di * kw + dj) * channels
                    if 0 <= r < height and 0 <= q < width:
                        for c in range(channels):
                            row[base + c] = x[n, r, q, c]
                    else:
                        for c in range(channels):
                            row[base + c] = 0

    @njit
    def _scatter_rows(buf, m_lo, m_hi, ho, wo, geometry, dx):  # pragma: no cover
        """The adjoint of :func:`_gather_rows`: adds ``buf[:m_hi - m_lo]`` into ``dx`` through the
        windows (padding cells dropped)."""
        kh, kw, sh, sw, dh, dw, top, left = geometry
        height, width, channels = dx.shape[1], dx.shape[2], dx.shape[3]
        cells = ho * wo
        for m in range(m_lo, m_hi):
            n = m // cells
            rest = m - n * cells
            i = rest // wo
            j = rest - i * wo
            row = buf[m - m_lo]
            for di in range(kh):
                r = i * sh + di * dh - top
                if r < 0 or r >= height:
                    continue
                for dj in range(kw):
                    q = j * sw + dj * dw - left
                    if q < 0 or q >= width:
                        continue
                    base = (di * kw + dj) * channels
                    for c in range(channels):
                        dx[n, r, q, c] += row[base + c]

    @njit
    def conv_gemm_forward_images(gemm, x, w, b, use_bias, relu, geometry, chunk, y, n_lo, n_hi):  # pragma: no cover
        """``y[n_lo:n_hi] = act(im2col(x[n_lo:n_hi]) @ w + b)`` (ReLU if ``relu``, else none), float32.

        ``x: (N, H, W, C)``, ``w: (K, F)`` the kernel reshaped, ``b: (F,)``, ``y: (N, Ho, Wo, F)``.
        Walks the images' output rows ``chunk`` at a time: gathers their windows into a local
        ``(chunk, K)`` buffer (small enough to stay in cache), single-threaded OpenBLAS ``sgemm``
        (``gemm``, see :mod:`cnnlab._accel.blas`) into ``y``'s rows, then the bias and ReLU while
        those rows are in cache. The products and sums are those of
        :func:`cnnlab.ops.conv.conv2d_forward_cols` (summed in sgemm's order on each block).
        """
        n_batch, ho, wo, f_total = y.shape
        k_total = w.shape[0]
        cells = ho * wo
        buf = np.empty((chunk, k_total), dtype=np.float32)
        y2 = y.reshape(n_batch * cells, f_total)
        one, zero = np.float32(1), np.float32(0)
        for m_lo in range(n_lo * cells, n_hi * cells, chunk):
            m_hi = min(n_hi * cells, m_lo + chunk)
            _gather_rows(x, m_lo, m_hi, ho, wo, geometry, buf)
            gemm(101, 111, 111, m_hi - m_lo, f_total, k_total, one, buf.ctypes.data, k_total,
                 w.ctypes.data, f_total, zero, y.ctypes.data + m_lo * f_total * 4, f_total)  # fmt: skip
            if use_bias or relu:
                for m in range(m_lo, m_hi):
                    row = y2[m]
                    for f in range(f_total):
                        v = row[f]
                        if use_bias:
                            v = v + b[f]
                        if relu:
                            v = max(v, np.float32(0))
                        row[f] = v

    @njit(parallel=True)
    def conv_gemm_forward(gemm, parts, x, w, b, use_bias, relu, geometry, chunk, y):  # pragma: no cover
        """:func:`conv_gemm_forward_images` for the whole batch, each of ``parts`` threads on its own
        block of images."""
        n_batch = y.shape[0]
        per = (n_batch + parts - 1) // parts
        for part in numba.prange(parts):
            n_lo = part * per
            n_hi = min(n_batch, n_lo + per)
            if n_lo < n_hi:
                conv_gemm_forward_images(gemm, x, w, b, use_bias, relu, geometry, chunk, y, n_lo, n_hi)

    @njit
    def conv_gemm_backward_images(
        gemm, x, w, y, dz, relu, geometry, chunk, need_dx, dx, dwp, dbp, n_lo, n_hi
    ):  # pragma: no cover
        """Gradients of :func:`conv_gemm_forward_images` for images ``[n_lo, n_hi)``, float32,
        recomputing the windows block by block.

        ``dz: (N, Ho, Wo, F)`` holds the output gradient and is turned in place into the
        gradient of the affine part (times ``y > 0`` if ``relu``, as
        :func:`cnnlab.ops.activations.relu_backward`). Per ``chunk`` of rows: gathers the windows
        again, adds ``cols^T @ dz`` to ``dwp: (K, F)`` and the row sums of ``dz`` to ``dbp: (F,)``
        (both zeroed here), and if ``need_dx`` computes ``dz @ w^T`` into the local buffer and
        scatters it into the images' ``dx: (N, H, W, C)`` (overwritten for these images).
        """
        n_batch, ho, wo, f_total = dz.shape
        k_total = w.shape[0]
        cells = ho * wo
        dwp[:] = 0
        dbp[:] = 0
        if need_dx:
            for n in range(n_lo, n_hi):
                dx[n] = 0
        buf = np.empty((chunk, k_total), dtype=np.float32)
        dz2 = dz.reshape(n_batch * cells, f_total)
        y2 = y.reshape(n_batch * cells, f_total)
        one = np.float32(1)
        for m_lo in range(n_lo * cells, n_hi * cells, chunk):
            m_hi = min(n_hi * cells, m_lo + chunk)
            for m in range(m_lo, m_hi):
                row = dz2[m]
                if relu:
                    yrow = y2[m]
                    for f in range(f_total):
                        row[f] = row[f] * np.float32(yrow[f] > 0)
                for f in range(f_total):
                    dbp[f] += row[f]
            _gather_rows(x, m_lo, m_hi, ho, wo, geometry, buf)
            rows = m_hi - m_lo
            # dwp += cols^T @ dz
            gemm(101, 112, 111, k_total, f_total, rows, one, buf.ctypes.data, k_total,
                 dz.ctypes.data + m_lo * f_total * 4, f_total, one, dwp.ctypes.data, f_total)  # fmt: skip
            if need_dx:
                # dcols = dz @ w^T into the same buffer (its windows are no longer needed)
                gemm(101, 111, 112, rows, k_total, f_total, one, dz.ctypes.data + m_lo * f_total * 4, f_total,
                     w.ctypes.data, f_total, np.float32(0), buf.ctypes.data, k_total)  # fmt: skip
                _scatter_rows(buf, m_lo, m_hi, ho, wo, geometry, dx)

    @njit(parallel=True)
    def conv_gemm_backward(
        gemm, parts, x, w, y, dz, relu, geometry, chunk, need_dx, dx, dw_parts, db_parts
    ):  # pragma: no cover
        """:func:`conv_gemm_backward_images` for the whole batch, each of ``parts`` threads on its
        own block of images (so no two threads write one image of ``dx``), with its own
        ``dw_parts[part]: (K, F)`` and ``db_parts[part]: (F,)`` (the caller sums over parts)."""
        n_batch = dz.shape[0]
        per = (n_batch + parts - 1) // parts
        for part in numba.prange(parts):
            n_lo = part * per
            n_hi = min(n_batch, n_lo + per)
            if n_lo < n_hi:
                conv_gemm_backward_images(
                    gemm, x, w, y, dz, relu, geometry, chunk, need_dx, dx, dw_parts[part], db_parts[part], n_lo, n_hi
                )
            else:
                dw_parts[part] = 0
                db_parts[part] = 0

else:
    conv_gemm_forward = conv_gemm_backward = conv_gemm_forward_images = conv_gemm_backward_images = None
