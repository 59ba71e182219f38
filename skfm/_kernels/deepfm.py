"""DeepFM kernels (Guo et al. 2017): an FM and an MLP tower sharing the embeddings.

Parameters: ``w0`` (1,), the table ``T`` = [w | V] (n_features, 1 + d) as FM's, and a flat
float64 ``H``: the tower (skfm._kernels.mlp, at least one hidden layer; ``layout`` row 0 is its
input, n_fields d wide, the hidden layers' columns start at 0), then the output weights o.  With
``fields`` (n_features,) int32, each column's field, for a row with nonzeros (j, x_j):

    e = [sum_{j in field f} x_j v_j]_f,   z_l = dropout(act(BN(W_l z_{l-1} + b_l)), p_hid)
    f(x) = w0 + sum_j w_j x_j + 0.5 sum_k (s_k^2 - q_k) + o . z_L        (s, q as in FM)

e is never built: W_1 e = sum_j x_j U_j, U_j = W_1[:, block f_j] v_j once per unique feature of
a batch (Frappe's batches have a tenth as many unique features as nonzeros).  With delta_b =
dObj/d(W_1 e_b) and Delta_j = sum_b x_bj delta_b: dObj/dW_1[:, block f] = sum_{j in f} Delta_j
v_j^T, dObj/dw_j = sum_b g_b x_bj and dObj/dv_j = sum_b g_b x_bj s_b - v_j sum_b g_b x_bj^2 +
W_1[:, block f_j]^T Delta_j (phase 2 of the skeleton, whose hooks are registered here for
DeepFMSpec).  Without batch norm the tower runs in fixed blocks of rows (block-local buffers,
BLAS products), with it layer by layer over the batch.  e is linear in x, so the saliency (SMFM
Eq. 5) is g (lin + sum_k (s_k^2 - q_k)) + delta . W_1 e, and a candidate lam x + mu r has W_1 e
= lam W_1 e(x) + mu W_1 e(r): select_partners mixes the rows' products (tower_inputs) and FM
row stats and pushes values and tangents through the layers (mlp.tangent_layers).  Every sum
has one owner and a fixed order: results do not depend on the number of threads.
"""
from collections import namedtuple

import numpy as np
from numba import njit, prange

from . import FASTMATH, skeleton
from .csr import _transpose_into, batch_capacity, transpose_buffers
from .fm import (_pair_term, _row_sums, _table_bits, _table_clear, _table_fill_pos,
                 _table_shared_q)
from .mixup import start_ahead
from .mlp import (_CHUNK, _MM, DECIDE, OFFB, OFFW, SALIENCY, SIZE, TRAIN, ZOFF, _sum_blocks,
                  _width, affine_maps, backward_layers, batch_output, block_buffers, block_pass,
                  bn_update, draw_block, forward_layers, pick_best, selector_buffers,
                  selector_tasks, tangent_layers)
from .prefetch import prefetch_row
from .rng import stream_key

#: the model's arrays and options, the ``spec`` of the skeleton's hooks; ``train``: batch norm
#: uses batch statistics (else the running ones); ``p_hid``: dropout on the hidden layers
DeepFMSpec = namedtuple("DeepFMSpec", "fields layout offh bn bn_mean bn_var momentum seed epoch "
                                      "act p_hid train")
_ROWS = 4096  # rows per chunk of tower_inputs


@njit(cache=True, fastmath=False)
def first_layer(indptr, indices, data, start, B, T, fields, W1, slot, uniq, cnt, ptr, occ_b,
                occ_x, up, U):
    """Rows [start, start + B) transposed into (uniq, cnt, ptr, occ_b, occ_x, up) by
    csr._transpose_into (the numbering of csr.transpose_batch: features in order of first
    appearance; up[t] = the number of the feature of nonzero indptr[start] + t), and U[u] =
    W_1[:, block of its field] v_uniq[u].  Returns the number of features."""
    nu = _transpose_into(indptr, indices, data, start, B, slot, uniq, cnt, ptr, occ_b, occ_x,
                         up)
    _feature_products(nu, uniq, T, fields, W1, U)
    return nu


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def _feature_products(nu, uniq, T, fields, W1, U):
    d = T.shape[1] - 1
    for u in prange(nu):
        j = uniq[u]
        tj = T[j, 1:]
        for i in range(W1.shape[0]):
            wi = W1[i, fields[j] * d:(fields[j] + 1) * d]  # views (see mlp.block_forward)
            acc = 0.0
            for k in range(d):
                acc += wi[k] * tj[k]
            U[u, i] = acc


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _gather(data, a, e, base, loc, U, out):
    """out = W_1 e of the row stored at [a, e) (loc, U: first_layer, base = its indptr[start])."""
    out[:] = 0.0
    for t in range(a, e):
        x = data[t]
        ut = U[loc[t - base]]
        for i in range(out.shape[0]):
            out[i] += x * ut[i]


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _row_in(indptr, indices, data, r, base, w0, T, loc, U, s, q, p1):
    """Row r's FM part, its row sums s, q and p1 = W_1 e.  Returns (f_FM, d/dt f_FM(t x))."""
    lin = _row_sums(indices, data, indptr[r], indptr[r + 1], T, s, q)
    pair2 = _pair_term(s, q)
    _gather(data, indptr[r], indptr[r + 1], base, loc, U, p1)
    return w0[0] + lin + 0.5 * pair2, lin + pair2


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _row_out(sal, g, tan, dl, p1, dl_out):
    """After a row's backward pass (dl = dObj/d(W_1 e)): its saliency g tan + dl . W_1 e
    (``sal``), else keep dl for input_grads."""
    if sal:
        acc = 0.0
        for i in range(dl.shape[0]):
            acc += dl[i] * p1[i]
        return g * tan + acc
    dl_out[:] = dl
    return 0.0


@njit(cache=True, fastmath=FASTMATH)
def _block(c, indptr, indices, data, y, sw, start, B, w0, T, head, layout, offh, key, p_hid,
           act, loss_id, mode, loc, U, F, G, S, P1, DL, LP, GHP):
    """Block c (rows c _MM .. min(B, (c + 1) _MM) - 1 of the batch) of fused_batch: the
    rows' FM parts and W_1 e, then mlp.block_pass."""
    d = T.shape[1] - 1
    n1 = layout[1, SIZE]
    z1 = layout[1, ZOFF]
    a, m, Zb, Ab, Mb, DZ = block_buffers(c, B, layout)
    q = np.empty(d)
    BASE = np.empty(m)
    TAN = np.empty(m)
    st = np.zeros(1, np.uint64)
    for i in range(m):
        BASE[i], TAN[i] = _row_in(indptr, indices, data, start + a + i, indptr[start], w0, T,
                                  loc, U, S[a + i], q, P1[a + i])
    block_pass(c, a, Zb, Ab, Mb, DZ, start, B, BASE, y, sw, head, layout, offh, act, p_hid, key,
               st, P1[a:a + m], True, loss_id, mode, F, G, LP, GHP)
    if mode == DECIDE:
        return
    for i in range(m):
        v = _row_out(mode == SALIENCY, G[a + i], TAN[i], DZ[i, z1:z1 + n1], P1[a + i], DL[a + i])
        if mode == SALIENCY:
            F[a + i] = v


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def fused_batch(indptr, indices, data, y, sw, start, B, w0, T, head, layout, offh, key, p_hid,
                act, loss_id, mode, loc, U, F, G, S, P1, DL, LP, GHP):
    """Without batch norm, rows [start, start + B) block by block (as nfm.fused_batch,
    mlp.block_pass).  TRAIN: F, G = dObj/df, S, P1 = W_1 e, DL = dObj/d(W_1 e), LP[c] / GHP[c] =
    block c's loss sum / dObj/dH but W_1's.  DECIDE: F = f.  SALIENCY: F = S(x, y)."""
    for c in prange((B + _MM - 1) // _MM):
        _block(np.int64(c), indptr, indices, data, y, sw, start, B, w0, T, head, layout, offh,
               key, p_hid, act, loss_id, mode, loc, U, F, G, S, P1, DL, LP, GHP)


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def _rows_in(indptr, indices, data, start, B, w0, T, head, layout, loc, U, S, P1, BASE, TAN,
             XH):
    """The batch-norm path's rows [start, start + B): _row_in, and XH[:, z_1] = W_1 e + b_1."""
    n1 = layout[1, SIZE]
    z1 = layout[1, ZOFF]
    b1 = head[layout[1, OFFB]:layout[1, OFFB] + n1]
    for c in prange((B + _MM - 1) // _MM):
        q = np.empty(S.shape[1])
        for b in range(c * _MM, min(B, (c + 1) * _MM)):
            BASE[b], TAN[b] = _row_in(indptr, indices, data, start + b, indptr[start], w0, T,
                                      loc, U, S[b], q, P1[b])
            for i in range(n1):
                XH[b, z1 + i] = P1[b, i] + b1[i]


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def input_grads(nu, uniq, ptr, occ_b, occ_x, T, fields, DL, Dlt, GH, oW, n0):
    """Dlt[u] = Delta_u = sum_b x_bu DL[b] over its rows in order (first_layer's transposition)
    and GH's block of W_1 = sum_u Delta_u v_u^T in each field's block (a task per unit)."""
    d = T.shape[1] - 1
    for u in prange(nu):
        du = Dlt[u]
        du[:] = 0.0
        for o in range(ptr[u], ptr[u + 1]):
            x = occ_x[o]
            dlb = DL[occ_b[o]]
            for i in range(du.shape[0]):
                du[i] += x * dlb[i]
    for i in prange(DL.shape[1]):
        gi = GH[oW + i * n0:oW + (i + 1) * n0]
        gi[:] = 0.0
        for u in range(nu):
            j = uniq[u]
            a = Dlt[u, i]
            gf = gi[fields[j] * d:(fields[j] + 1) * d]
            tj = T[j, 1:]
            for k in range(d):
                gf[k] += a * tj[k]


@njit(cache=True, fastmath=False)
def first_layer_buffers(cap, T, n_out):
    """first_layer's and input_grads' buffers for batches of at most cap nonzeros and a first
    layer of n_out rows: (slot, uniq, cnt, ptr, occ_b, occ_x, up, U, Dlt)."""
    uniq, cnt, ptr, occ_b = transpose_buffers(cap)
    return (np.full(T.shape[0], -1, np.int32), uniq, cnt, ptr, occ_b, np.empty(cap, T.dtype),
            np.empty(cap, np.int32), np.empty((cap, n_out)), np.empty((cap, n_out)))


@njit(cache=True, fastmath=False)
def workspace_for(B, cap, T, head, layout, bn):
    """Buffers for batches of at most B rows and cap nonzeros: (G, S, P1, DL, F, LP, GHP, BASE,
    TAN, Z, A, XH, M, DZ, MU, VAR, slot, uniq, cnt, ptr, occ_b, occ_x, up, U, Dlt, W1) (flat: a
    parallel loop cannot take a nested tuple); the batch-wide layer buffers only with batch
    norm.  W1 is a view of head."""
    n0 = layout[0, SIZE]
    n1 = layout[1, SIZE]
    W = _width(layout)
    nch = (B + _MM - 1) // _MM
    Bbn = B if bn else 0
    W1 = head[layout[1, OFFW]:layout[1, OFFW] + n1 * n0].reshape((n1, n0))
    return (np.empty(B), np.empty((B, T.shape[1] - 1)), np.empty((B, n1)), np.empty((B, n1)),
            np.empty(B), np.empty(nch), np.empty((0 if bn else max(nch, 1), head.shape[0])),
            np.empty(Bbn), np.empty(Bbn), np.empty((Bbn, W)), np.empty((Bbn, W)),
            np.empty((Bbn, W)), np.empty((Bbn, W)), np.empty((Bbn, W)), np.zeros(W), np.ones(W),
            *first_layer_buffers(cap, T, n1), W1)


@njit(cache=True, fastmath=FASTMATH)
def run_batch(ws, indptr, indices, data, y, sw, start, B, w0, T, fields, head, layout, offh, bn,
              bn_mean, bn_var, train, key, p_hid, act, loss_id, mode, GH):
    """Rows [start, start + B) in ``mode``: TRAIN fills ws and GH = dObj/dH and returns
    (sum_b sw_b l(f_b, y_b), dObj/dw0) (``train``: BN batch statistics); DECIDE / SALIENCY
    leave f / S(x, y) in ws's F (inference mode: train False, p_hid 0)."""
    (G, S, P1, DL, F, LP, GHP, BASE, TAN, Z, A, XH, M, DZ, MU, VAR, slot, uniq, cnt, ptr, occ_b,
     occ_x, loc, U, Dlt, W1) = ws
    nu = first_layer(indptr, indices, data, start, B, T, fields, W1, slot, uniq, cnt, ptr, occ_b,
                     occ_x, loc, U)
    loss = 0.0
    if not bn:
        fused_batch(indptr, indices, data, y, sw, start, B, w0, T, head, layout, offh, key,
                    p_hid, act, loss_id, mode, loc, U, F, G, S, P1, DL, LP, GHP)
        if mode != TRAIN:
            return 0.0, 0.0
        nch = (B + _MM - 1) // _MM
        for c in range(nch):
            loss += LP[c]
        _sum_blocks(GHP, nch, GH)
    else:
        _rows_in(indptr, indices, data, start, B, w0, T, head, layout, loc, U, S, P1, BASE, TAN,
                 XH)
        forward_layers(B, head, layout, offh, bn_mean, bn_var, train, key, p_hid, act, BASE, Z,
                       A, XH, M, MU, VAR, F, True)
        if mode == DECIDE:
            return 0.0, 0.0
        loss = batch_output(F, G, y, sw, start, B, loss_id, mode)
        backward_layers(B, head, layout, offh, train, act, G, Z, A, XH, M, VAR, DZ, GH,
                        mode == TRAIN, True)
        for b in range(B):
            v = _row_out(mode == SALIENCY, G[b], TAN[b], DZ[b, :P1.shape[1]], P1[b], DL[b])
            F[b] = v if mode == SALIENCY else F[b]
    if mode != TRAIN:
        return 0.0, 0.0
    input_grads(nu, uniq, ptr, occ_b, occ_x, T, fields, DL, Dlt, GH, layout[1, OFFW],
                layout[0, SIZE])
    g0 = 0.0
    for b in range(B):
        g0 += G[b]
    return loss, g0


@njit(cache=True, fastmath=FASTMATH, inline="always")
def feature_grad(u, uniq, ptr, occ_b, occ_x, T, fields, G, S, Dlt, W1, alpha, GT):
    """GT[u] = dObj/dT[j] + alpha T[j] for j = uniq[u], summed over its rows in row order
    (the batch's transposition numbers the features as first_layer did: Delta_u = Dlt[u])."""
    d = T.shape[1] - 1
    j = uniq[u]
    o = fields[j] * d
    gw = 0.0
    gx2 = 0.0
    gv = GT[u, 1:]
    gv[:] = 0.0
    for t in range(ptr[u], ptr[u + 1]):
        x = occ_x[t]
        gx = G[occ_b[t]] * x
        gw += gx
        gx2 += gx * x
        sb = S[occ_b[t]]
        for k in range(d):
            gv[k] += gx * sb[k]
    dl = Dlt[u]
    for i in range(W1.shape[0]):
        wi = W1[i, o:o + d]
        for k in range(d):
            gv[k] += dl[i] * wi[k]
    GT[u, 0] = gw + alpha * T[j, 0]
    tj = T[j, 1:]
    for k in range(d):
        gv[k] += (alpha - gx2) * tj[k]


@njit(cache=True, fastmath=FASTMATH)
def predict_rows(indptr, indices, data, y, w0, T, fields, head, layout, offh, bn, bn_mean,
                 bn_var, act, loss_id, saliency, out):
    """Inference mode (no dropout, BN running statistics), in chunks of rows: out[r] = f(x_r),
    or with ``saliency`` S(x_r, y_r)."""
    n = indptr.shape[0] - 1
    ws = workspace_for(min(n, _CHUNK), batch_capacity(indptr, _CHUNK), T, head, layout, bn)
    GH = np.empty(0)
    mode = SALIENCY if saliency else DECIDE
    for start in range(0, n, _CHUNK):
        B = min(_CHUNK, n - start)
        run_batch(ws, indptr, indices, data, y, y, start, B, w0, T, fields, head, layout, offh,
                  bn, bn_mean, bn_var, np.bool_(False), np.uint64(0), 0.0, act, loss_id,
                  np.int64(mode), GH)
        F = ws[4]
        for b in range(B):
            out[start + b] = F[b]


# ------------------------------------------------------------------------- skeleton hooks
def _workspace(spec, indptr, batch_size, T, H):
    return workspace_for(min(batch_size, indptr.shape[0] - 1),
                         batch_capacity(indptr, batch_size), T, H, spec.layout, spec.bn)


def _forward_backward(spec, ws, indptr, indices, data, y, sw, start, B, w0, T, H, loss_id, step,
                      GH):
    return run_batch(ws, indptr, indices, data, y, sw, start, B, w0, T, spec.fields, H,
                     spec.layout, spec.offh, spec.bn, spec.bn_mean, spec.bn_var, spec.train,
                     stream_key(spec.seed, spec.epoch, step), spec.p_hid, spec.act, loss_id,
                     np.int64(TRAIN), GH)


def _feature_grad(spec, ws, u, uniq, ptr, occ_b, occ_x, T, alpha, GT):
    feature_grad(u, uniq, ptr, occ_b, occ_x, T, spec.fields, ws[0], ws[1], ws[24], ws[25],
                 alpha, GT)


def _after_step(spec, ws, B):
    if spec.bn:
        bn_update(spec.layout, spec.bn_mean, spec.bn_var, ws[14], ws[15], spec.momentum, B)


skeleton.register(DeepFMSpec, workspace=_workspace, forward_backward=_forward_backward,
                  feature_grad=_feature_grad, after_step=_after_step)


# ---------------------------------------------------------------------- saliency-guided mixup
@njit(cache=True, fastmath=FASTMATH, parallel=True)
def _gather_rows(indptr, data, start, B, loc, U, P):
    for c in prange((B + _MM - 1) // _MM):
        acc = np.empty(P.shape[1])  # float64 sums
        for r in range(start + c * _MM, start + min(B, (c + 1) * _MM)):
            _gather(data, indptr[r], indptr[r + 1], indptr[start], loc, U, acc)
            P[r] = acc


@njit(cache=True, fastmath=FASTMATH)
def row_products(indptr, indices, data, T, fields, W):
    """P (n, n_out): W e(x_r) for every row and a (n_out, n_fields d) matrix W, per chunk of
    _ROWS rows through first_layer; summed in float64, stored in T's precision as
    fm.fm_row_stats (the partners' rows are the selector's cache misses)."""
    n = indptr.shape[0] - 1
    bufs = first_layer_buffers(batch_capacity(indptr, _ROWS), T, W.shape[0])
    P = np.empty((n, W.shape[0]), T.dtype)
    for start in range(0, n, _ROWS):
        B = min(_ROWS, n - start)
        first_layer(indptr, indices, data, start, B, T, fields, W, *bufs[:8])
        _gather_rows(indptr, data, start, B, bufs[6], bufs[7], P)
    return P


@njit(cache=True, fastmath=FASTMATH)
def tower_inputs(indptr, indices, data, T, fields, head, layout):
    """P (n, n_1): W_1 e(x_r) for every row (the first layer's pre-activation without bias),
    row_products of the head's W_1."""
    n0 = layout[0, SIZE]
    n1 = layout[1, SIZE]
    W1 = head[layout[1, OFFW]:layout[1, OFFW] + n1 * n0].reshape((n1, n0))
    return row_products(indptr, indices, data, T, fields, W1)


@njit(cache=True, fastmath=FASTMATH, inline="always")
def mixed_fm(R, r1, r2, lam, cq):
    """(sum_j w_j x~_j, ||s~||^2 - q~) of x~ = lam x_r1 + (1 - lam) x_r2 from fm.fm_row_stats'
    rows R and the parents' shared-feature term cq (fm._table_shared_q), in the arithmetic of
    fm.fm_select_partners (which could call this)."""
    d = R.shape[1] - 3
    mu = 1.0 - lam
    dot = 0.0
    for f in range(d):
        dot += R[r1, f] * R[r2, f]
    return (lam * R[r1, d] + mu * R[r2, d], lam * lam * (R[r1, d + 2] - R[r1, d + 1])
            + mu * mu * (R[r2, d + 2] - R[r2, d + 1]) + 2.0 * lam * mu * (dot - cq))


@njit(cache=True, fastmath=FASTMATH)
def _select_task(task, indptr, indices, data, y, parents, p, seed, epoch, a, b, w0, T, head, Hc,
                 layout, offh, act, loss_id, R, P, nrm, SC, SH, bits, partners, lams):
    """Task ``task`` of select_partners (see mlp.selector_buffers)."""
    n1 = P.shape[1]
    per, mb, first, last, PR, LM, YM, st, keys, pos, RP, RL = selector_buffers(
        task, parents.shape[0], p, bits)
    ZZ = np.zeros(2 * mb * _width(layout), T.dtype)  # layer outputs and tangents along x~
    OUT = np.empty((mb, n1), T.dtype)
    BV = np.empty(mb)  # the FM part's value and tangent
    BT = np.empty(mb)
    start_ahead(first, last, seed, epoch, p, indptr.shape[0] - 1, a, b, st, RP, RL, R, parents,
                indptr, indices, data)
    for i0 in range(first, last, per):
        i1 = min(last, i0 + per)
        draw_block(i0, i1, last, seed, epoch, p, indptr.shape[0] - 1, a, b, st, RP, RL, R,
                   parents, indptr, indices, data, y, PR, LM, YM)
        for j in range(min(p, (i1 - i0) * p)):  # P's rows: the selector's cache misses
            prefetch_row(P, PR[j])
        for i in range(i0, i1):
            r1 = parents[i]
            _table_fill_pos(indices, indptr[r1], indptr[r1 + 1], keys, pos, bits)
            for j in range((i - i0) * p, (i - i0 + 1) * p):
                if j + p < (i1 - i0) * p:
                    prefetch_row(P, PR[j + p])
                r2 = PR[j]
                lam = LM[j]
                mu = 1.0 - lam
                ln, pair2 = mixed_fm(R, r1, r2, lam, _table_shared_q(
                    indices, data, indptr[r2], indptr[r2 + 1], keys, pos, bits, nrm))
                BV[j] = w0[0] + ln + 0.5 * pair2
                BT[j] = ln + pair2
                p1 = P[r1]
                p2 = P[r2]
                oj = OUT[j]
                for u in range(n1):
                    oj[u] = lam * p1[u] + mu * p2[u]
            _table_clear(indices, indptr[r1], indptr[r1 + 1], keys, bits)
        tangent_layers(ZZ, mb, (i1 - i0) * p, OUT, 1.0, Hc, layout, SC, SH, act)
        pick_best(ZZ, mb, i0, i1, p, BV, BT, YM, PR, LM, head, layout, offh, loss_id, partners,
                  lams)


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def select_partners(indptr, indices, data, y, parents, p, seed, epoch, a, b, w0, T, head, layout,
                    offh, bn, bn_mean, bn_var, act, loss_id, R, P, nrm):
    """Alg. 2 for DeepFM without materialising the candidates: for each first parent i draw p
    candidates (stream (seed, epoch, i p + k), as mixup.draw_candidates) and keep the one whose
    mixed row has the largest saliency in inference mode.  R: fm.fm_row_stats, P:
    tower_inputs, nrm: fm.factor_sq_norms.  Returns (partners, lams).  Candidates go through
    the tower in blocks of about _MM rows (whole parents, mlp.selector_tasks), their
    layer values and tangents held and multiplied in T's precision (a float32 model: float32
    products, twice as fast; its choice may then differ from the materialised candidates' only
    between candidates whose saliencies agree to float32 precision)."""
    SC, SH = affine_maps(head, layout, bn, bn_mean, bn_var, _width(layout))
    Hc = head.astype(T.dtype)  # the layers' products in T's precision (as AFM's)
    partners = np.empty(parents.shape[0], np.int64)
    lams = np.empty(parents.shape[0])
    bits = _table_bits(indptr)
    for task in prange(selector_tasks(parents.shape[0], p)[1]):
        _select_task(np.int64(task), indptr, indices, data, y, parents, p, seed, epoch, a, b,
                     w0, T, head, Hc, layout, offh, act, loss_id, R, P, nrm, SC, SH, bits,
                     partners, lams)
    return partners, lams
