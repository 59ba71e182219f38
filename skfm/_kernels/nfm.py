"""Neural factorization machine kernels (He & Chua 2017).

Parameters: ``w0`` (1,), the feature table ``T`` = [w | V] (n_features, 1 + d) as in FM, and a
flat float64 vector ``head`` holding, for each hidden layer l = 1..L, ``W_l`` (n_l, n_{l-1})
row-major, ``b_l`` (n_l), with batch norm ``gamma_l`` and ``beta_l`` (n_l), and last the output
weights ``h`` (n_L; n_0 = d).  ``layout`` (L + 1, 6) int64 gives per layer (row 0 = the
Bi-Interaction layer) its size, its column offset in the activation buffers and the offsets of
W, b, gamma, beta in ``head`` (-1 when absent).  For one row:

    BI_f = 0.5 (s_f^2 - q_f),  z_0 = dropout(BI, p_bi)
    z_l = dropout(act(BN(W_l z_{l-1} + b_l)), p_hidden)
    f(x) = w0 + sum_j w_j x_j + h . z_L

Batch norm uses the batch statistics in training and the running averages (``bn_mean``,
``bn_var``, momentum 0.1, unbiased variance, as torch) at inference.  df/dv_jf = sum_f
(df/dBI_f) x_j (s_f - v_jf x_j), so the feature phase is FM's with the row factor g_b replaced by
the vector D[b] = g_b df_b/dBI.  The dense layers are BLAS matrix products over fixed blocks of
_MM rows (BLAS itself held to one thread by the trainer); the head's gradients are summed within a
block, then over the blocks in block order, so results do not depend on the number of threads.
Without batch norm no row depends on another, so training, prediction and saliency
(fused_batch) run a block's forward pass, loss derivative and backward pass back to back in
block-local buffers that stay in cache; with batch norm, forward_batch and backward_batch go
layer by layer over the whole batch.
Dropout masks are a pure function of (seed, epoch, step, row, layer, unit) through the
counter-based RNG.
SMFM's candidate selection (select_partners) never builds the mixed candidates: their
Bi-Interaction vectors follow from the parents' row sums (row_stats), and their saliency is
pushed forward through the MLP in tangent mode, which for the first layer costs no product.
"""
import math

import numpy as np
from numba import njit, prange

from . import FASTMATH
from .csr import (LANES, batch_capacity, batch_transposed, lane_range, transpose_batch,
                  transpose_buffers, transposer)
from .fm import _row_sums, _table_bits, _table_clear, _table_fill_pos, _table_find
from .losses import loss_deriv, loss_value
from .mixup import start_ahead, step_ahead
from .mlp import (_CHUNK, _MM, BN_EPS, DECIDE, OFFB, OFFBE, OFFG, OFFW, RELU, SALIENCY, SIZE,
                  TRAIN, ZOFF, _act, _act_dropout, _act_grad, _dense_backward, _dense_forward,
                  _dropout_scale, _sum_blocks, _width)
from .optim import ADAM, adam_lr, row_coefs, update_dense, update_row
from .rng import stream_key

_SEL_BLOCKS = 8  # blocks of candidates per parallel task in select_partners

@njit(cache=True, fastmath=FASTMATH, inline="always")
def _bi_row(indices, data, a, e, T, s, q, drop, st, key, b, p, S, sb, A, M, Z, zb):
    """Row sums of the row with nonzeros [a, e) into s, q and S[sb], and its Bi-Interaction
    vector with dropout (stream (key, b, 0)) into row zb of A, M, Z.  Returns sum_j w_j x_j."""
    lin = _row_sums(indices, data, a, e, T, s, q)
    if drop:
        st[0] = stream_key(key, b, 0)
    for k in range(s.shape[0]):
        S[sb, k] = s[k]
        bi = 0.5 * (s[k] * s[k] - q[k])
        m = _dropout_scale(drop, st, p)
        A[zb, k] = bi
        M[zb, k] = m
        Z[zb, k] = bi * m
    return lin


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def forward_batch(indptr, indices, data, start, B, w0, T, head, layout, offh, bn_mean, bn_var,
                  train, key, p_bi, p_hid, act, LIN, S, Z, A, XH, M, MU, VAR, F):
    """The model with batch norm (without it, see fused_batch), layer by layer over the batch,
    rows [start, start + B): F[b] = f(x_b).  Keeps what the backward pass needs: S (row sums),
    A (BI, then each layer's activation before dropout), M (dropout scale), Z (layer outputs),
    XH (normalised pre-activations), MU/VAR (BN statistics used).  ``train`` enables dropout and
    BN batch statistics."""
    d = T.shape[1] - 1
    L = layout.shape[0] - 1
    drop_bi = train and p_bi > 0.0
    drop_h = train and p_hid > 0.0
    for c in prange((B + _MM - 1) // _MM):
        st = np.zeros(1, np.uint64)
        s = np.empty(d)
        q = np.empty(d)
        for b in range(c * _MM, min(B, (c + 1) * _MM)):
            r = start + b
            LIN[b] = _bi_row(indices, data, indptr[r], indptr[r + 1], T, s, q, drop_bi, st, key,
                             b, p_bi, S, b, A, M, Z, b)
    for l in range(1, L + 1):
        n = layout[l, SIZE]
        zl = layout[l, ZOFF]
        npv = layout[l - 1, SIZE]
        zp = layout[l - 1, ZOFF]
        oW = layout[l, OFFW]
        ob = layout[l, OFFB]
        og = layout[l, OFFG]
        obe = layout[l, OFFBE]
        _dense_forward(Z, zp, npv, XH, zl, n, head, oW, ob, B)
        if train:
            for i in prange(n):
                mu = 0.0
                for b in range(B):
                    mu += XH[b, zl + i]
                mu /= B
                var = 0.0
                for b in range(B):
                    dv = XH[b, zl + i] - mu
                    var += dv * dv
                MU[zl + i] = mu
                VAR[zl + i] = var / B
        else:
            for i in range(n):
                MU[zl + i] = bn_mean[zl + i]
                VAR[zl + i] = bn_var[zl + i]
        for c in prange((B + _MM - 1) // _MM):
            st = np.zeros(1, np.uint64)
            for b in range(c * _MM, min(B, (c + 1) * _MM)):
                if drop_h:
                    st[0] = stream_key(key, b, l)
                for i in range(n):
                    xh = (XH[b, zl + i] - MU[zl + i]) / math.sqrt(VAR[zl + i] + BN_EPS)
                    XH[b, zl + i] = xh
                    pre = head[og + i] * xh + head[obe + i]
                    _act_dropout(pre, act, drop_h, st, p_hid, A, M, Z, b, zl + i)
    zL = layout[L, ZOFF]
    nL = layout[L, SIZE]
    for b in prange(B):
        f = w0[0] + LIN[b]
        for k in range(nL):
            f += head[offh + k] * Z[b, zL + k]
        F[b] = f


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def backward_batch(B, head, layout, offh, train, act, G, Z, A, XH, M, VAR, DZ, D, GH,
                   want_head):
    """Backward pass of forward_batch (batch norm).  Given G[b] = dObj/df_b and the forward
    buffers: D[b] = G[b] df_b/dBI_b (B, d) and, with ``want_head``, GH = dObj/dhead (every entry
    written).  BN in training couples the rows of a layer through the batch statistics
    (standard BN backward)."""
    d = layout[0, SIZE]
    L = layout.shape[0] - 1
    zL = layout[L, ZOFF]
    nL = layout[L, SIZE]
    for b in prange(B):
        for k in range(nL):
            DZ[b, zL + k] = G[b] * head[offh + k]
    if want_head:
        for k in prange(nL):
            acc = 0.0
            for b in range(B):
                acc += G[b] * Z[b, zL + k]
            GH[offh + k] = acc
    for l in range(L, 0, -1):
        n = layout[l, SIZE]
        zl = layout[l, ZOFF]
        npv = layout[l - 1, SIZE]
        zp = layout[l - 1, ZOFF]
        oW = layout[l, OFFW]
        ob = layout[l, OFFB]
        og = layout[l, OFFG]
        obe = layout[l, OFFBE]
        for b in prange(B):
            if act == RELU:  # branch-free
                for i in range(n):
                    g = DZ[b, zl + i] * M[b, zl + i]
                    DZ[b, zl + i] = g if A[b, zl + i] > 0.0 else 0.0
            else:
                for i in range(n):
                    DZ[b, zl + i] = DZ[b, zl + i] * M[b, zl + i] * _act_grad(A[b, zl + i], act)
        for i in prange(n):
            sg = 0.0
            sb = 0.0
            for b in range(B):
                dp = DZ[b, zl + i]
                sb += dp
                sg += dp * XH[b, zl + i]
            if want_head:
                GH[og + i] = sg
                GH[obe + i] = sb
            c = head[og + i] / math.sqrt(VAR[zl + i] + BN_EPS)
            if train:
                mb = sb / B
                mg = sg / B
                for b in range(B):
                    DZ[b, zl + i] = c * (DZ[b, zl + i] - mb - XH[b, zl + i] * mg)
            else:
                for b in range(B):
                    DZ[b, zl + i] = c * DZ[b, zl + i]
        if want_head:
            for i in prange(n):
                gb = 0.0
                for b in range(B):
                    gb += DZ[b, zl + i]
                GH[ob + i] = gb
        _dense_backward(DZ, Z, zl, n, zp, npv, head, oW, GH, want_head, B)
    for b in prange(B):
        for k in range(d):
            D[b, k] = DZ[b, k] * M[b, k]


@njit(cache=True, fastmath=FASTMATH)
def _fused_block(c, indptr, indices, data, y, sw, start, B, w0, T, head, layout, offh, key, p_bi,
                 p_hid, act, loss_id, mode, S, LIN, F, G, D, LP, GHP):
    """Block c (rows c _MM .. min(B, (c + 1) _MM) - 1 of the batch) of fused_batch, which calls
    it from its parallel loop."""
    d = T.shape[1] - 1
    L = layout.shape[0] - 1
    W = _width(layout)
    zL = layout[L, ZOFF]
    nL = layout[L, SIZE]
    train = mode == TRAIN
    drop_bi = p_bi > 0.0
    drop_h = p_hid > 0.0
    a = c * _MM
    m = min(B, a + _MM) - a
    Zb = np.empty((m, W))
    Ab = np.empty((m, W))
    Mb = np.empty((m, W))
    DZ = np.empty((m, W))
    st = np.zeros(1, np.uint64)
    s = np.empty(d)
    q = np.empty(d)
    gh = GHP[c if train else 0]  # inference: GHP has one row, left alone
    if train:
        gh[:] = 0.0
    for i in range(m):
        r = start + a + i
        LIN[a + i] = _bi_row(indices, data, indptr[r], indptr[r + 1], T, s, q, drop_bi, st, key,
                             a + i, p_bi, S, a + i, Ab, Mb, Zb, i)
    for l in range(1, L + 1):
        n = layout[l, SIZE]
        zl = layout[l, ZOFF]
        npv = layout[l - 1, SIZE]
        zp = layout[l - 1, ZOFF]
        ob = layout[l, OFFB]
        Wl = head[layout[l, OFFW]:layout[l, OFFW] + n * npv].reshape((n, npv))
        out = np.dot(np.ascontiguousarray(Zb[:, zp:zp + npv]), Wl.T)
        # views (bl[u], ai[u]), not head[ob + u] or Ab[i, zl + u]: a runtime offset inside an
        # index keeps LLVM from vectorising the loop (measured 10x slower in AFM's pair loop)
        bl = head[ob:ob + n]
        if act == RELU and not drop_h:  # branch-free: the sign of pre is unpredictable
            for i in range(m):
                ai = Ab[i, zl:zl + n]
                mi = Mb[i, zl:zl + n]
                zi = Zb[i, zl:zl + n]
                for u in range(n):
                    pre = out[i, u] + bl[u]
                    v = pre if pre > 0.0 else 0.0
                    ai[u] = v
                    mi[u] = 1.0
                    zi[u] = v
            continue
        for i in range(m):
            if drop_h:
                st[0] = stream_key(key, a + i, l)
            for u in range(n):
                _act_dropout(out[i, u] + bl[u], act, drop_h, st, p_hid, Ab, Mb, Zb, i, zl + u)
    lp = 0.0
    hv = head[offh:offh + nL]
    ghv = gh[offh:offh + nL]
    for i in range(m):
        r = start + a + i
        f = w0[0] + LIN[a + i]
        zi = Zb[i, zL:zL + nL]
        for k in range(nL):
            f += hv[k] * zi[k]
        F[a + i] = f
        if mode == DECIDE:
            continue
        if train:
            lp += sw[r] * loss_value(f, y[r], loss_id)
            g = sw[r] / B * loss_deriv(f, y[r], loss_id)
        else:
            g = loss_deriv(f, y[r], loss_id)
        G[a + i] = g
        dzi = DZ[i, zL:zL + nL]
        for k in range(nL):
            dzi[k] = g * hv[k]
        if train:
            for k in range(nL):
                ghv[k] += g * zi[k]
    if mode == DECIDE:
        return
    if train:
        LP[c] = lp
    for l in range(L, 0, -1):
        n = layout[l, SIZE]
        zl = layout[l, ZOFF]
        npv = layout[l - 1, SIZE]
        zp = layout[l - 1, ZOFF]
        oW = layout[l, OFFW]
        ob = layout[l, OFFB]
        Wl = head[oW:oW + n * npv].reshape((n, npv))
        for i in range(m):
            dzi = DZ[i, zl:zl + n]
            mi = Mb[i, zl:zl + n]
            ai = Ab[i, zl:zl + n]
            if act == RELU:  # branch-free
                for u in range(n):
                    g = dzi[u] * mi[u]
                    dzi[u] = g if ai[u] > 0.0 else 0.0
            else:
                for u in range(n):
                    dzi[u] *= mi[u] * _act_grad(ai[u], act)
        du = np.ascontiguousarray(DZ[:, zl:zl + n])
        if train:
            gb = gh[ob:ob + n]
            for i in range(m):
                for u in range(n):
                    gb[u] += du[i, u]
            gW = np.dot(du.T, np.ascontiguousarray(Zb[:, zp:zp + npv]))
            for u in range(n):
                gWu = gh[oW + u * npv:oW + (u + 1) * npv]
                for k in range(npv):
                    gWu[k] += gW[u, k]
        DZ[:, zp:zp + npv] = np.dot(du, Wl)
    for i in range(m):
        for k in range(d):
            D[a + i, k] = DZ[i, k] * Mb[i, k]
    if mode == SALIENCY:
        for i in range(m):
            acc = 0.0
            for k in range(d):
                acc += D[a + i, k] * Ab[i, k]
            F[a + i] = G[a + i] * LIN[a + i] + 2.0 * acc


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def fused_batch(indptr, indices, data, y, sw, start, B, w0, T, head, layout, offh, key, p_bi,
                p_hid, act, loss_id, mode, S, LIN, F, G, D, LP, GHP):
    """The model without batch norm on rows [start, start + B), in fixed blocks of _MM rows: a
    block's forward pass, loss derivative and backward pass run back to back in block-local
    buffers that stay in cache (without batch norm a row depends on no other row).

    mode TRAIN: dropout (stream (key, row, layer); row = position in the batch), F[b] = f_b,
    G[b] = sw_b / B dl/df_b, D[b] = G[b] df_b/dBI_b, S (row sums), LIN, LP[c] = the block's sum
    of sw_b l(f_b, y_b) and GHP[c] = the block's part of dObj/dhead (the caller sums the blocks in
    block order, so results do not depend on the thread count).
    mode DECIDE: F[b] = f_b only.  mode SALIENCY: F[b] = S(x_b, y_b) = g_b (sum_j w_j x_j +
    2 (df/dBI) . BI) with g_b = dl/df_b (BI is homogeneous of degree 2 in x).  No dropout in
    these two modes (callers pass p_bi = p_hid = 0); ``sw``, LP and GHP are not used."""
    for c in prange((B + _MM - 1) // _MM):
        _fused_block(np.int64(c), indptr, indices, data, y, sw, start, B, w0, T, head, layout,
                     offh, key, p_bi, p_hid, act, loss_id, mode, S, LIN, F, G, D, LP, GHP)


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _feature_grad(u, uniq, ptr, occ_b, occ_x, T, S, G, D, alpha, GT):
    """GT[u] = d(batch objective)/d T[j] for j = uniq[u]: d/dw_j = sum_b g_b x_bj,
    d/dv_jf = sum_b D_bf x_bj (s_bf - v_jf x_bj), summed in row order, plus alpha T[j]."""
    d = T.shape[1] - 1
    j = uniq[u]
    gw = 0.0
    for k in range(d + 1):
        GT[u, k] = 0.0
    for o in range(ptr[u], ptr[u + 1]):
        b = occ_b[o]
        x = occ_x[o]
        gw += G[b] * x
        for k in range(d):
            GT[u, k + 1] += D[b, k] * x * (S[b, k] - T[j, k + 1] * x)
    GT[u, 0] = gw + alpha * T[j, 0]
    if alpha != 0.0:
        for k in range(d):
            GT[u, k + 1] += alpha * T[j, k + 1]


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def feature_grads(nu, uniq, ptr, occ_b, occ_x, T, S, G, D, alpha, GT):
    for lane in prange(LANES):
        for u in range(*lane_range(lane, nu, ptr)):
            _feature_grad(u, uniq, ptr, occ_b, occ_x, T, S, G, D, alpha, GT)


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def grads_and_update(nu, uniq, ptr, occ_b, occ_x, T, S, G, D, alpha, GT, stT, solver, coef,
                     bad):
    for lane in prange(LANES):
        for u in range(*lane_range(lane, nu, ptr)):
            _feature_grad(u, uniq, ptr, occ_b, occ_x, T, S, G, D, alpha, GT)
            ok = update_row(T, stT, GT, u, uniq[u], solver, coef)
            bad[u] = 0 if ok else 1


@njit(cache=True, fastmath=FASTMATH)
def batch_gradient(indptr, indices, data, y, sw, w0, T, head, layout, offh, bn, bn_mean, bn_var,
                   train, act, loss_id, alpha, slot):
    """Gradient of the objective (1/B) sum_b sw_b l(f_b, y_b) + (alpha/2) sum_{j in batch}
    ||T_j||^2 over all rows of the CSR matrix as one batch, without dropout (``train`` selects BN
    batch statistics).  Returns (objective, d/dw0, unique features, their gradient rows,
    d/dhead)."""
    B = indptr.shape[0] - 1
    d = T.shape[1] - 1
    W = _width(layout)
    LIN = np.empty(B)
    S = np.empty((B, d))
    Z = np.empty((B, W))
    A = np.empty((B, W))
    XH = np.empty((B, W))
    M = np.empty((B, W))
    DZ = np.empty((B, W))
    MU = np.zeros(W)
    VAR = np.ones(W)
    F = np.empty(B)
    G = np.empty(B)
    D = np.empty((B, d))
    GH = np.zeros(head.shape[0])
    zero = np.int64(0)  # not a literal: callees keep the signature train_epoch gives them
    obj = 0.0
    g0 = 0.0
    if bn:
        forward_batch(indptr, indices, data, zero, B, w0, T, head, layout, offh, bn_mean,
                      bn_var, train, np.uint64(0), 0.0, 0.0, act, LIN, S, Z, A, XH, M, MU, VAR,
                      F)
        for b in range(B):
            obj += sw[b] * loss_value(F[b], y[b], loss_id)
            G[b] = sw[b] / B * loss_deriv(F[b], y[b], loss_id)
        backward_batch(B, head, layout, offh, train, act, G, Z, A, XH, M, VAR, DZ, D, GH,
                       np.bool_(True))
    else:
        nch = (B + _MM - 1) // _MM
        LP = np.empty(nch)
        GHP = np.empty((nch, head.shape[0]))
        fused_batch(indptr, indices, data, y, sw, zero, B, w0, T, head, layout, offh,
                    np.uint64(0), 0.0, 0.0, act, loss_id, np.int64(TRAIN), S, LIN, F, G, D, LP,
                    GHP)
        for c in range(nch):
            obj += LP[c]
        _sum_blocks(GHP, nch, GH)
    for b in range(B):
        g0 += G[b]
    obj /= B
    cap = indices.shape[0]
    uniq, cnt, ptr, occ_b = transpose_buffers(cap)
    occ_x = np.empty(cap, T.dtype)
    nu = transpose_batch(indptr, indices, data, zero, B, slot, uniq, cnt, ptr, occ_b, occ_x)
    GT = np.empty((nu, d + 1), T.dtype)
    feature_grads(nu, uniq, ptr, occ_b, occ_x, T, S, G, D, alpha, GT)
    reg = 0.0
    for u in range(nu):
        for k in range(d + 1):
            reg += T[uniq[u], k] * T[uniq[u], k]
    return obj + 0.5 * alpha * reg, g0, uniq[:nu].copy(), GT, GH


@njit(cache=True, fastmath=FASTMATH)
def predict_rows(indptr, indices, data, y, w0, T, head, layout, offh, bn, bn_mean, bn_var, act,
                 loss_id, saliency, out):
    """Inference mode (no dropout, BN running statistics), in chunks of rows: out[r] = f(x_r),
    or with ``saliency`` S(x_r, y_r) = g (sum_j w_j x_j + 2 (df/dBI) . BI) (BI is homogeneous of
    degree 2 in x)."""
    n = indptr.shape[0] - 1
    d = T.shape[1] - 1
    W = _width(layout)
    C = min(n, _CHUNK)
    Cbn = C if bn else 0
    LIN = np.empty(C)
    S = np.empty((C, d))
    Z = np.empty((Cbn, W))
    A = np.empty((Cbn, W))
    XH = np.empty((Cbn, W))
    M = np.empty((Cbn, W))
    DZ = np.empty((Cbn, W))
    MU = np.zeros(W)
    VAR = np.ones(W)
    F = np.empty(C)
    G = np.empty(C)
    D = np.empty((C, d))
    GH = np.empty(0)
    LP = np.empty(0)
    GHP = np.empty((1, head.shape[0]))
    mode = SALIENCY if saliency else DECIDE
    for start in range(0, n, _CHUNK):
        B = min(_CHUNK, n - start)
        if not bn:
            fused_batch(indptr, indices, data, y, y, start, B, w0, T, head, layout, offh,
                        np.uint64(0), 0.0, 0.0, act, loss_id, mode, S, LIN, F, G, D, LP, GHP)
            for b in range(B):
                out[start + b] = F[b]
            continue
        forward_batch(indptr, indices, data, start, B, w0, T, head, layout, offh, bn_mean,
                      bn_var, np.bool_(False), np.uint64(0), 0.0, 0.0, act, LIN, S, Z, A, XH, M,
                      MU, VAR, F)
        if not saliency:
            for b in range(B):
                out[start + b] = F[b]
            continue
        for b in range(B):
            G[b] = loss_deriv(F[b], y[start + b], loss_id)
        backward_batch(B, head, layout, offh, np.bool_(False), act, G, Z, A, XH, M, VAR, DZ,
                       D, GH, np.bool_(False))
        for b in range(B):
            acc = 0.0
            for k in range(d):
                acc += D[b, k] * A[b, k]
            out[start + b] = G[b] * LIN[b] + 2.0 * acc


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def row_stats(indptr, indices, data, T):
    """R (n, 2 d + 1), of T's dtype, for select_partners: per row r, R[r, :d] = s (sum_j v_j
    x_j), R[r, d:2d] = BI and R[r, 2d] = sum_j w_j x_j, so a random partner costs one contiguous
    read (sums in float64, stored in T's precision: a float32 model's R is half as large, and
    the partners' rows are the selector's cache misses)."""
    n = indptr.shape[0] - 1
    d = T.shape[1] - 1
    R = np.empty((n, 2 * d + 1), T.dtype)
    for c in prange((n + _CHUNK - 1) // _CHUNK):
        s = np.empty(d)
        q = np.empty(d)
        for r in range(c * _CHUNK, min(n, (c + 1) * _CHUNK)):
            R[r, 2 * d] = _row_sums(indices, data, indptr[r], indptr[r + 1], T, s, q)
            for f in range(d):
                R[r, f] = s[f]
                R[r, d + f] = 0.5 * (s[f] * s[f] - q[f])
    return R


@njit(cache=True, fastmath=FASTMATH)
def _select_blocks(task, indptr, indices, data, y, parents, p, seed, epoch, a, b, w0, T, head,
                   layout, offh, act, loss_id, R, SC, SH, bits, partners, lams):
    """Blocks task _SEL_BLOCKS .. (task + 1) _SEL_BLOCKS - 1 of select_partners, which calls it
    from its parallel loop."""
    m = parents.shape[0]
    n = indptr.shape[0] - 1
    d = T.shape[1] - 1
    L = layout.shape[0] - 1
    W = _width(layout)
    zL = layout[L, ZOFF]
    nL = layout[L, SIZE]
    per = max(1, _MM // p)
    nblk = (m + per - 1) // per
    mb = per * p
    Z = np.empty((mb, W))  # layer outputs (BI first) ...
    DZ = np.empty((mb, W))  # ... and their tangents along x~
    LIN = np.empty(mb)
    YM = np.empty(mb)
    PR = np.empty(mb, np.int64)
    LM = np.empty(mb)
    st = np.zeros(1, np.uint64)
    keys = np.full(1 << bits, -1, np.int64)
    pos = np.empty(1 << bits, np.int64)
    RP = np.empty((3, p), np.int64)  # candidates drawn ahead (mixup.start_ahead)
    RL = np.empty((3, p))
    first = task * _SEL_BLOCKS * per
    last = min(m, (task + 1) * _SEL_BLOCKS * per)
    start_ahead(first, last, seed, epoch, p, n, a, b, st, RP, RL, R, parents, indptr, indices,
                data)
    for c in range(task * _SEL_BLOCKS, min(nblk, (task + 1) * _SEL_BLOCKS)):
        i0 = c * per
        i1 = min(m, i0 + per)
        mc = (i1 - i0) * p
        for i in range(i0, i1):
            step_ahead(i, last, seed, epoch, p, n, a, b, st, RP, RL, R, parents, indptr,
                       indices, data)
            r1 = parents[i]
            a1 = indptr[r1]
            e1 = indptr[r1 + 1]
            _table_fill_pos(indices, a1, e1, keys, pos, bits)
            for k in range(p):
                r2 = RP[i % 3, k]
                lam = RL[i % 3, k]
                mu = 1.0 - lam
                j = (i - i0) * p + k
                PR[j] = r2
                LM[j] = lam
                LIN[j] = lam * R[r1, 2 * d] + mu * R[r2, 2 * d]
                YM[j] = lam * y[r1] + mu * y[r2]
                l2 = lam * lam
                m2 = mu * mu
                lm = lam * mu
                zj = Z[j, :d]
                s1 = R[r1, :d]  # views (see _fused_block)
                s2 = R[r2, :d]
                b1 = R[r1, d:2 * d]
                b2 = R[r2, d:2 * d]
                for f in range(d):
                    zj[f] = l2 * b1[f] + m2 * b2[f] + lm * s1[f] * s2[f]
                for t in range(indptr[r2], indptr[r2 + 1]):
                    h = _table_find(indices[t], keys, bits)
                    if h >= 0:
                        cx = lm * data[pos[h]] * data[t]
                        jf = indices[t]
                        for f in range(d):
                            Z[j, f] -= cx * T[jf, f + 1] * T[jf, f + 1]
            _table_clear(indices, a1, e1, keys, bits)
        for l in range(1, L + 1):
            nl = layout[l, SIZE]
            zl = layout[l, ZOFF]
            npv = layout[l - 1, SIZE]
            zp = layout[l - 1, ZOFF]
            oW = layout[l, OFFW]
            Wl = head[oW:oW + nl * npv].reshape((nl, npv))
            out = np.dot(np.ascontiguousarray(Z[:mc, zp:zp + npv]), Wl.T)
            if l == 1:  # tangent of BI is 2 BI: W_1 (2 BI) = 2 out
                dout = out
                tw = 2.0
            else:
                dout = np.dot(np.ascontiguousarray(DZ[:mc, zp:zp + npv]), Wl.T)
                tw = 1.0
            scl = SC[zl:zl + nl]  # views (see _fused_block)
            shl = SH[zl:zl + nl]
            for j in range(mc):
                zj = Z[j, zl:zl + nl]
                dzj = DZ[j, zl:zl + nl]
                if act == RELU:  # branch-free: the sign of pre is unpredictable
                    for u in range(nl):
                        pre = scl[u] * out[j, u] + shl[u]
                        up = pre > 0.0
                        zj[u] = pre if up else 0.0
                        tan = (tw * scl[u]) * dout[j, u]
                        dzj[u] = tan if up else 0.0
                else:
                    for u in range(nl):
                        pre = scl[u] * out[j, u] + shl[u]
                        v = _act(pre, act)
                        zj[u] = v
                        dzj[u] = _act_grad(v, act) * (tw * scl[u]) * dout[j, u]
        for i in range(i0, i1):
            best = -np.inf
            kb = -1
            for k in range(p):
                j = (i - i0) * p + k
                f = w0[0] + LIN[j]
                df = LIN[j]
                hv = head[offh:offh + nL]
                if L == 0:  # NFM-0: h acts on BI itself, whose tangent is 2 BI
                    for u in range(nL):
                        f += hv[u] * Z[j, u]
                        df += 2.0 * hv[u] * Z[j, u]
                else:
                    zj = Z[j, zL:zL + nL]
                    dzj = DZ[j, zL:zL + nL]
                    for u in range(nL):
                        f += hv[u] * zj[u]
                        df += hv[u] * dzj[u]
                sal = loss_deriv(f, YM[j], loss_id) * df
                if kb < 0 or sal > best:
                    best = sal
                    kb = j
            partners[i] = PR[kb]
            lams[i] = LM[kb]


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def select_partners(indptr, indices, data, y, parents, p, seed, epoch, a, b, w0, T, head, layout,
                    offh, bn, bn_mean, bn_var, act, loss_id, R):
    """Alg. 2 for NFM without materialising the candidates: for each first parent i draw p
    candidates (stream (seed, epoch, i p + k), as mixup.draw_candidates) and keep the one whose
    mixed row has the largest saliency under the model in inference mode.  ``R`` holds the rows'
    sums (row_stats).  Returns (partners, lams).

    The Bi-Interaction vector of x~ = lam x + mu r (mu = 1 - lam) follows from the parents' row
    sums: BI(x~) = lam^2 BI(x) + mu^2 BI(r) + lam mu (s(x) * s(r) - c), where c_f = sum over the
    features j in both rows of x_j r_j v_jf^2 (found through a hash table of the first parent's
    features).  The saliency g (df/dx~) . x~ is the directional derivative of f along x~, pushed
    forward through the MLP (tangent mode): BI is homogeneous of degree 2, so its tangent is
    2 BI and the first layer's tangent is 2 (W_1 BI), the forward product's before the bias;
    each further layer costs one product for its tangent.  Batch norm is the inference-mode
    affine map.  Candidates go through the MLP in blocks of about _MM rows (whole parents)."""
    m = parents.shape[0]
    L = layout.shape[0] - 1
    W = _width(layout)
    # each layer's normalisation and bias as one affine map per unit: pre = SC out + SH
    SC = np.ones(W)
    SH = np.zeros(W)
    for l in range(1, L + 1):
        for u in range(layout[l, SIZE]):
            z = layout[l, ZOFF] + u
            bias = head[layout[l, OFFB] + u]
            if bn:
                SC[z] = head[layout[l, OFFG] + u] / math.sqrt(bn_var[z] + BN_EPS)
                SH[z] = SC[z] * (bias - bn_mean[z]) + head[layout[l, OFFBE] + u]
            else:
                SH[z] = bias
    partners = np.empty(m, np.int64)
    lams = np.empty(m)
    bits = _table_bits(indptr)
    per = max(1, _MM // p)  # first parents per block of candidates
    nblk = (m + per - 1) // per
    for task in prange((nblk + _SEL_BLOCKS - 1) // _SEL_BLOCKS):
        _select_blocks(np.int64(task), indptr, indices, data, y, parents, p, seed, epoch, a, b,
                       w0, T, head, layout, offh, act, loss_id, R, SC, SH, bits, partners, lams)
    return partners, lams


@njit(cache=True, fastmath=FASTMATH)
def train_epoch(indptr, indices, data, y, sw, batch_size, w0, T, head, layout, offh, bn,
                bn_mean, bn_var, momentum, seed, epoch, act, p_bi, p_hid, st0, stT, stH, solver,
                lr, beta_1, beta_2, eps, step, loss_id, alpha, slots):
    """One pass over an epoch block in minibatches: forward (train mode), backward, lazy update
    of the touched rows of T, dense update of w0 and head, BN running averages.  ``slots``: see
    csr.batch_transposed.

    Returns (sum of weighted row losses, steps taken, status) with status 0 = fine, 1 = a
    non-finite loss (that batch was not applied), 2 = a parameter became non-finite."""
    n = indptr.shape[0] - 1
    d = T.shape[1] - 1
    W = _width(layout)
    h0 = layout[1, ZOFF] if layout.shape[0] > 1 else W
    Bmax = min(batch_size, n)
    cap = batch_capacity(indptr, batch_size)
    LIN = np.empty(Bmax)
    S = np.empty((Bmax, d))
    Bbn = Bmax if bn else 0  # without batch norm the layer buffers are fused_batch's, per block
    Z = np.empty((Bbn, W))
    A = np.empty((Bbn, W))
    XH = np.empty((Bbn, W))
    M = np.empty((Bbn, W))
    DZ = np.empty((Bbn, W))
    MU = np.zeros(W)
    VAR = np.ones(W)
    F = np.empty(Bmax)
    G = np.empty(Bmax)
    D = np.empty((Bmax, d))
    GH = np.zeros(head.shape[0])
    LP = np.empty((Bmax + _MM - 1) // _MM)
    GHP = np.empty((0 if bn else LP.shape[0], head.shape[0]))
    tp = transposer(indptr, batch_size, slots.shape[0], data)
    GT = np.empty((cap, d + 1), T.dtype)
    bad = np.zeros(cap, np.uint8)
    g0 = np.empty(1)
    coef = np.empty(7, T.dtype)
    total = 0.0
    n_steps = 0
    for start in range(0, n, batch_size):
        B = min(batch_size, n - start)
        key = stream_key(seed, epoch, step + 1)
        nch = (B + _MM - 1) // _MM
        batch_loss = 0.0
        g0[0] = 0.0
        if bn:
            forward_batch(indptr, indices, data, start, B, w0, T, head, layout, offh,
                          bn_mean, bn_var, np.bool_(True), key, p_bi, p_hid, act, LIN, S, Z, A,
                          XH, M, MU, VAR, F)
            for b in range(B):
                r = start + b
                batch_loss += sw[r] * loss_value(F[b], y[r], loss_id)
                G[b] = sw[r] / B * loss_deriv(F[b], y[r], loss_id)
        else:
            fused_batch(indptr, indices, data, y, sw, start, B, w0, T, head, layout, offh, key,
                        p_bi, p_hid, act, loss_id, np.int64(TRAIN), S, LIN, F, G, D, LP, GHP)
            for c in range(nch):
                batch_loss += LP[c]
        for b in range(B):
            g0[0] += G[b]
        if not (math.isfinite(batch_loss) and math.isfinite(g0[0])):
            return total, n_steps, 1
        total += batch_loss
        if bn:
            backward_batch(B, head, layout, offh, np.bool_(True), act, G, Z, A, XH, M, VAR,
                           DZ, D, GH, np.bool_(True))
            unb = B / (B - 1.0) if B > 1 else 1.0
            for c in range(h0, W):
                bn_mean[c] = (1.0 - momentum) * bn_mean[c] + momentum * MU[c]
                bn_var[c] = (1.0 - momentum) * bn_var[c] + momentum * VAR[c] * unb
        else:
            _sum_blocks(GHP, nch, GH)
        nu, uniq, ptr, occ_b, occ_x = batch_transposed(indptr, indices, data, start // batch_size,
                                                       batch_size, slots, tp)
        step += 1
        n_steps += 1
        lr_t = adam_lr(lr, beta_1, beta_2, step) if solver == ADAM else lr
        row_coefs(coef, lr, lr_t, beta_1, beta_2, eps)
        grads_and_update(nu, uniq, ptr, occ_b, occ_x, T, S, G, D, alpha, GT, stT, solver, coef,
                         bad)
        ok = update_dense(w0, st0, g0, solver, lr, lr_t, beta_1, beta_2, eps)
        if not update_dense(head, stH, GH, solver, lr, lr_t, beta_1, beta_2, eps):
            ok = False
        for u in range(nu):
            if bad[u]:
                ok = False
        if not ok:
            return total, n_steps, 2
    return total, n_steps, 0
