"""Neural factorization machine kernels (He & Chua 2017).

Parameters: ``w0`` (1,), the feature table ``T`` = [w | V] (n_features, 1 + d) as in FM, and a
flat float64 vector ``head``: the MLP tower of skfm._kernels.mlp (its ``layout`` row 0 is the
Bi-Interaction layer, n_0 = d; per hidden layer l = 1..L ``W_l``, ``b_l`` and with batch norm
``gamma_l``, ``beta_l``), then the output weights ``h`` (n_L) at ``offh``.  For one row:

    BI_f = 0.5 (s_f^2 - q_f),  z_0 = dropout(BI, p_bi)
    z_l = dropout(act(BN(W_l z_{l-1} + b_l)), p_hidden)
    f(x) = w0 + sum_j w_j x_j + h . z_L

(NFM-0, L = 0: f = w0 + sum_j w_j x_j + h . z_0.)  Batch norm uses the batch statistics in
training and the running averages (``bn_mean``, ``bn_var``, momentum 0.1, unbiased variance, as
torch) at inference.  This module computes z_0 and the base w0 + sum_j w_j x_j of each row
(_bi_row) and hands the rest to mlp: without batch norm a block of rows at a time
(mlp.block_pass, forward and backward back to back in block-local buffers), with it layer by
layer over the batch (mlp.forward_layers, mlp.backward_layers).  The backward pass ends at
D[b] = G[b] df_b/dBI_b = dObj/dz_0 * dropout mask, and df/dv_jf = sum_f (df/dBI_f) x_j (s_f -
v_jf x_j), so the feature phase is FM's with the row factor g_b replaced by the vector D[b]
(feature_grad; training runs on skeleton.train_epoch through the hooks registered here for
NFMSpec).  BI is homogeneous of degree 2 in x, so the saliency (SMFM Eq. 5) is g (sum_j w_j x_j +
2 (df/dBI) . BI).  Dropout masks are a pure function of (seed, epoch, step, row, layer, unit)
through the counter-based RNG.  SMFM's candidate selection (select_partners) never builds the
mixed candidates: their Bi-Interaction vectors follow from the parents' row sums (row_stats),
and their saliency is pushed forward through the MLP in tangent mode (mlp.tangent_layers), which
for the first layer costs no product.  Every sum has one owner and a fixed order: results do not
depend on the number of threads.
"""
from collections import namedtuple

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from . import FASTMATH, skeleton
from .fm import _row_sums, _table_bits, _table_clear, _table_fill_pos, _table_find
from .mixup import start_ahead
from .mlp import (_CHUNK, _MM, DECIDE, OFFW, SALIENCY, SIZE, TRAIN, _dropout_scale, _sum_blocks,
                  _width, affine_maps_contracted, backward_layers, batch_output, block_buffers,
                  block_pass, bn_update, draw_block, forward_layers, layer_block, pick_best,
                  selector_buffers, selector_tasks, tangent_layers)
from .rng import stream_key

#: the model's arrays and options, the ``spec`` of the skeleton's hooks; ``train``: batch norm
#: uses batch statistics (else the running ones); ``p_bi`` / ``p_hid``: dropout on BI / on the
#: hidden layers
NFMSpec = namedtuple("NFMSpec", "layout offh bn bn_mean bn_var momentum seed epoch act p_bi "
                                "p_hid train")


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


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _bi_grads(DZ, M, i0, i1, a, D):
    """After the tower's backward pass, rows i of the layer buffers (i0 <= i < i1) = rows a + i
    of the batch: D = DZ[:, z_0] * M[:, z_0] = G df/dBI."""
    for i in range(i0, i1):
        for k in range(D.shape[1]):
            D[a + i, k] = DZ[i, k] * M[i, k]


@intrinsic
def _fma(typingctx, x, y, z):
    """x y + z rounded once (llvm.fma.f64), whatever the fast-math flags of the caller."""
    def codegen(context, builder, signature, args):
        f64 = ir.DoubleType()
        fn = builder.module.declare_intrinsic("llvm.fma", [f64], ir.FunctionType(f64, [f64] * 3))
        return builder.call(fn, args)
    return types.float64(types.float64, types.float64, types.float64), codegen


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _saliency(A, i0, i1, a, LIN, G, D, F, fused):
    """After _bi_grads: F[a + i] = G (sum_j w_j x_j) + 2 (df/dBI) . BI (A[:, z_0] = BI), with G
    LIN rounded on its own, or with ``fused`` in one fused multiply-add with the rest: the block
    path and the batch-norm path have always rounded it so (LLVM contracted the same expression
    differently in their kernels), and keep their results bit for bit."""
    for i in range(i0, i1):
        acc = 0.0
        for k in range(D.shape[1]):
            acc += D[a + i, k] * A[i, k]
        if fused:
            F[a + i] = _fma(G[a + i], LIN[a + i], 2.0 * acc)
        else:
            F[a + i] = _fma(2.0, acc, G[a + i] * LIN[a + i])


@njit(cache=True, fastmath=FASTMATH)
def _block(c, indptr, indices, data, y, sw, start, B, w0, T, head, layout, offh, key, p_bi,
           p_hid, act, loss_id, mode, S, LIN, F, G, D, LP, GHP):
    """Block c (rows c _MM .. min(B, (c + 1) _MM) - 1 of the batch) of fused_batch."""
    d = T.shape[1] - 1
    a, m, Zb, Ab, Mb, DZ = block_buffers(c, B, layout)
    BASE = np.empty(m)
    st = np.zeros(1, np.uint64)
    s = np.empty(d)
    q = np.empty(d)
    for i in range(m):
        r = start + a + i
        LIN[a + i] = _bi_row(indices, data, indptr[r], indptr[r + 1], T, s, q, p_bi > 0.0, st,
                             key, a + i, p_bi, S, a + i, Ab, Mb, Zb, i)
        BASE[i] = w0[0] + LIN[a + i]
    block_pass(c, a, Zb, Ab, Mb, DZ, start, B, BASE, y, sw, head, layout, offh, act, p_hid, key,
               st, Zb, np.bool_(False), loss_id, mode, F, G, LP, GHP)
    if mode == DECIDE:
        return
    _bi_grads(DZ, Mb, 0, m, a, D)
    if mode == SALIENCY:
        _saliency(Ab, 0, m, a, LIN, G, D, F, False)


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def fused_batch(indptr, indices, data, y, sw, start, B, w0, T, head, layout, offh, key, p_bi,
                p_hid, act, loss_id, mode, S, LIN, F, G, D, LP, GHP):
    """Without batch norm, rows [start, start + B) in fixed blocks of _MM rows (a row depends
    on no other).  TRAIN: dropout (stream (key, row, layer); row = position in the batch),
    F = f, G = sw / B dl/df, D = G df/dBI, S (row sums), LIN, LP[c] / GHP[c] = block c's loss sum
    / dObj/dhead (the caller sums the blocks in block order).  DECIDE: F = f.  SALIENCY: F =
    S(x, y) (G = dl/df).  The inference modes take p_bi = p_hid = 0."""
    for c in prange((B + _MM - 1) // _MM):
        _block(np.int64(c), indptr, indices, data, y, sw, start, B, w0, T, head, layout, offh,
               key, p_bi, p_hid, act, loss_id, mode, S, LIN, F, G, D, LP, GHP)


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def _bi_rows(indptr, indices, data, start, B, w0, T, train, key, p_bi, LIN, S, BASE, Z, A, M):
    """The batch-norm path's rows [start, start + B): _bi_row into the batch-wide buffers' z_0
    columns (dropout only with ``train``) and BASE = w0 + sum_j w_j x_j."""
    d = T.shape[1] - 1
    drop_bi = train and p_bi > 0.0
    for c in prange((B + _MM - 1) // _MM):
        st = np.zeros(1, np.uint64)
        s = np.empty(d)
        q = np.empty(d)
        for b in range(c * _MM, min(B, (c + 1) * _MM)):
            r = start + b
            LIN[b] = _bi_row(indices, data, indptr[r], indptr[r + 1], T, s, q, drop_bi, st, key,
                             b, p_bi, S, b, A, M, Z, b)
            BASE[b] = w0[0] + LIN[b]


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def _bi_grads_rows(B, DZ, M, D):
    """_bi_grads over rows b < B of the batch-wide buffers, a task per block of _MM rows."""
    for c in prange((B + _MM - 1) // _MM):
        _bi_grads(DZ, M, c * _MM, min(B, (c + 1) * _MM), 0, D)


@njit(cache=True, fastmath=False)
def workspace_for(B, T, head, layout, bn):
    """Buffers for batches of at most B rows: (LIN, S, F, G, D, LP, GHP, BASE, Z, A, XH, M, DZ,
    MU, VAR), the batch-wide layer buffers (B, width) only with batch norm."""
    d = T.shape[1] - 1
    W = _width(layout)
    nch = (B + _MM - 1) // _MM
    Bbn = B if bn else 0
    return (np.empty(B), np.empty((B, d)), np.empty(B), np.empty(B), np.empty((B, d)),
            np.empty(nch), np.empty((0 if bn else max(nch, 1), head.shape[0])), np.empty(Bbn),
            np.empty((Bbn, W)), np.empty((Bbn, W)), np.empty((Bbn, W)), np.empty((Bbn, W)),
            np.empty((Bbn, W)), np.zeros(W), np.ones(W))


@njit(cache=True, fastmath=FASTMATH)
def run_batch(ws, indptr, indices, data, y, sw, start, B, w0, T, head, layout, offh, bn, bn_mean,
              bn_var, train, key, p_bi, p_hid, act, loss_id, mode, GH):
    """Rows [start, start + B) in ``mode``: TRAIN fills ws and GH = dObj/dhead and returns
    (sum_b sw_b l(f_b, y_b), dObj/dw0) (``train``: BN batch statistics); DECIDE / SALIENCY leave
    f / S(x, y) in ws's F (inference mode: train False, no dropout)."""
    LIN, S, F, G, D, LP, GHP, BASE, Z, A, XH, M, DZ, MU, VAR = ws
    if not bn:
        fused_batch(indptr, indices, data, y, sw, start, B, w0, T, head, layout, offh, key, p_bi,
                    p_hid, act, loss_id, mode, S, LIN, F, G, D, LP, GHP)
        if mode != TRAIN:
            return 0.0, 0.0
        nch = (B + _MM - 1) // _MM
        loss = 0.0
        for c in range(nch):
            loss += LP[c]
        _sum_blocks(GHP, nch, GH)
    else:
        _bi_rows(indptr, indices, data, start, B, w0, T, train, key, p_bi, LIN, S, BASE, Z, A, M)
        forward_layers(B, head, layout, offh, bn_mean, bn_var, train, key, p_hid, act, BASE, Z,
                       A, XH, M, MU, VAR, F, np.bool_(False))
        if mode == DECIDE:
            return 0.0, 0.0
        loss = batch_output(F, G, y, sw, start, B, loss_id, mode)
        backward_layers(B, head, layout, offh, train, act, G, Z, A, XH, M, VAR, DZ, GH,
                        mode == TRAIN, np.bool_(False))
        _bi_grads_rows(B, DZ, M, D)
        if mode != TRAIN:
            if mode == SALIENCY:
                _saliency(A, 0, B, 0, LIN, G, D, F, True)
            return 0.0, 0.0
    g0 = 0.0
    for b in range(B):
        g0 += G[b]
    return loss, g0


@njit(cache=True, fastmath=FASTMATH, inline="always")
def feature_grad(u, uniq, ptr, occ_b, occ_x, T, S, G, D, alpha, GT):
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


@njit(cache=True, fastmath=FASTMATH)
def predict_rows(indptr, indices, data, y, w0, T, head, layout, offh, bn, bn_mean, bn_var, act,
                 loss_id, saliency, out):
    """Inference mode (no dropout, BN running statistics), in chunks of _CHUNK rows: out[r] =
    f(x_r), or with ``saliency`` S(x_r, y_r)."""
    n = indptr.shape[0] - 1
    ws = workspace_for(min(n, _CHUNK), T, head, layout, bn)
    mode = np.int64(SALIENCY if saliency else DECIDE)
    F = ws[2]
    GH = np.empty(0)  # inference: no head gradient
    for start in range(0, n, _CHUNK):
        B = min(_CHUNK, n - start)
        run_batch(ws, indptr, indices, data, y, y, start, B, w0, T, head, layout, offh, bn,
                  bn_mean, bn_var, np.bool_(False), np.uint64(0), 0.0, 0.0, act, loss_id, mode,
                  GH)
        out[start:start + B] = F[:B]


# ------------------------------------------------------------------------- skeleton hooks
def _workspace(spec, indptr, batch_size, T, H):
    return workspace_for(min(batch_size, indptr.shape[0] - 1), T, H, spec.layout, spec.bn)


def _forward_backward(spec, ws, indptr, indices, data, y, sw, start, B, w0, T, H, loss_id, step,
                      GH):
    return run_batch(ws, indptr, indices, data, y, sw, start, B, w0, T, H, spec.layout,
                     spec.offh, spec.bn, spec.bn_mean, spec.bn_var, spec.train,
                     stream_key(spec.seed, spec.epoch, step), spec.p_bi, spec.p_hid, spec.act,
                     loss_id, np.int64(TRAIN), GH)


def _feature_grad(spec, ws, u, uniq, ptr, occ_b, occ_x, T, alpha, GT):
    feature_grad(u, uniq, ptr, occ_b, occ_x, T, ws[1], ws[3], ws[4], alpha, GT)


def _after_step(spec, ws, B):
    if spec.bn:
        bn_update(spec.layout, spec.bn_mean, spec.bn_var, ws[13], ws[14], spec.momentum, B)


skeleton.register(NFMSpec, workspace=_workspace, forward_backward=_forward_backward,
                  feature_grad=_feature_grad, after_step=_after_step)


# ---------------------------------------------------------------------- saliency-guided mixup
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


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _mixed_bi(zj, R, r1, r2, lam, indptr, indices, data, T, keys, pos, bits):
    """zj = BI(lam x_r1 + mu x_r2), mu = 1 - lam, from the rows' R (row_stats) and the features
    both rows hold (the table of r1's features: _table_fill_pos)."""
    d = zj.shape[0]
    mu = 1.0 - lam
    l2 = lam * lam
    m2 = mu * mu
    lm = lam * mu
    s1 = R[r1, :d]  # views (see mlp.block_forward)
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
                zj[f] -= cx * T[jf, f + 1] * T[jf, f + 1]


@njit(cache=True, fastmath=FASTMATH)
def _select_task(task, indptr, indices, data, y, parents, p, seed, epoch, a, b, w0, T, head,
                 layout, offh, act, loss_id, R, SC, SH, bits, partners, lams):
    """Task ``task`` of select_partners (see mlp.selector_buffers)."""
    d = T.shape[1] - 1
    L = layout.shape[0] - 1
    per, mb, first, last, PR, LM, YM, st, keys, pos, RP, RL = selector_buffers(
        task, parents.shape[0], p, bits)
    ZZ = np.zeros(2 * mb * _width(layout))  # layer outputs and tangents along x~, float64
    Z0 = layer_block(ZZ, mb, 0, layout)  # the candidates' BI, and (NFM-0) their tangents
    BV = np.empty(mb)  # w0 + lin and its tangent lin
    BT = np.empty(mb)
    start_ahead(first, last, seed, epoch, p, indptr.shape[0] - 1, a, b, st, RP, RL, R, parents,
                indptr, indices, data)
    for i0 in range(first, last, per):
        i1 = min(last, i0 + per)
        mc = (i1 - i0) * p
        draw_block(i0, i1, last, seed, epoch, p, indptr.shape[0] - 1, a, b, st, RP, RL, R,
                   parents, indptr, indices, data, y, PR, LM, YM)
        for i in range(i0, i1):
            r1 = parents[i]
            _table_fill_pos(indices, indptr[r1], indptr[r1 + 1], keys, pos, bits)
            for j in range((i - i0) * p, (i - i0 + 1) * p):
                lin = LM[j] * R[r1, 2 * d] + (1.0 - LM[j]) * R[PR[j], 2 * d]
                BV[j] = w0[0] + lin
                BT[j] = lin
                _mixed_bi(Z0[j], R, r1, PR[j], LM[j], indptr, indices, data, T, keys, pos, bits)
            _table_clear(indices, indptr[r1], indptr[r1 + 1], keys, bits)
        if L == 0:  # NFM-0: h acts on BI itself, whose tangent is 2 BI
            for j in range(mc):
                for f in range(d):
                    Z0[mb + j, f] = 2.0 * Z0[j, f]
        else:  # the tangent of BI is 2 BI: W_1's product along x~ is twice the forward one
            n1 = layout[1, SIZE]
            W1 = head[layout[1, OFFW]:layout[1, OFFW] + n1 * d].reshape((n1, d))
            tangent_layers(ZZ, mb, mc, np.dot(np.ascontiguousarray(Z0[:mc]), W1.T), 2.0, head,
                           layout, SC, SH, act)
        pick_best(ZZ, mb, i0, i1, p, BV, BT, YM, PR, LM, head, layout, offh, loss_id, partners,
                  lams)


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
    forward through the MLP (mlp.tangent_layers): BI is homogeneous of degree 2, so its tangent
    is 2 BI and the first layer's tangent is 2 (W_1 BI), the forward product's before the bias;
    each further layer costs one product for its tangent.  Batch norm is the inference-mode
    affine map.  Candidates go through the MLP in blocks of about _MM rows (whole parents,
    mlp.selector_tasks), in float64 whatever T's dtype."""
    SC, SH = affine_maps_contracted(head, layout, bn, bn_mean, bn_var, _width(layout))
    m = parents.shape[0]
    partners = np.empty(m, np.int64)
    lams = np.empty(m)
    bits = _table_bits(indptr)
    for task in prange(selector_tasks(m, p)[1]):
        _select_task(np.int64(task), indptr, indices, data, y, parents, p, seed, epoch, a, b,
                     w0, T, head, layout, offh, act, loss_id, R, SC, SH, bits, partners, lams)
    return partners, lams
