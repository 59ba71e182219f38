"""DCN kernels (Deep & Cross Network, Wang et al. 2017): a cross network and an MLP tower over the
field embeddings, side by side.

Parameters: ``w0`` (1,), the table ``T`` = [w | V] (n_features, 1 + d) as FM's, and a flat
float64 ``H``: the tower (skfm._kernels.mlp, at least one hidden layer, input x0, n_0 = n_fields
d wide; ``layout`` as NFM's), its output weights o_deep (n_L) at ``offh``, then from ``offc``
the cross layers' c_1, d_1, ..., c_K, d_K (n_0 each) and the cross output weights o_cross (n_0).
With ``fields`` (n_features,) int32, each column's field, for a row with nonzeros (j, x_j):

    x0 = [sum_{j in field f} x_j v_j]_f,   x_{l+1} = x0 (c_{l+1} . x_l) + d_{l+1} + x_l   (K layers)
    z_l = dropout(act(BN(W_l z_{l-1} + b_l)), p_hid),  z_0 = x0
    f(x) = w0 + sum_j w_j x_j + o_cross . x_K + o_deep . z_L

as torch_ref.DCN (no FM pair term; its ``o`` is [o_cross; o_deep]).  Backward pass of the cross
network, with gx = dObj/dx_{l+1} (gx = g o_cross at the top) and s_l = c_{l+1} . x_l:
dObj/dd_{l+1} = gx, dObj/dc_{l+1} = (gx . x0) x_l, dObj/dx_l = gx + (gx . x0) c_{l+1}, and x0
collects gx s_l from every layer plus dObj/dx_0 at the bottom; the tower's dObj/dz_0 adds to it.
Then dObj/dw_j = sum_b g_b x_bj and dObj/dv_j = sum_b x_bj dObj/dx0_b[block f_j] (phase 2 of the
skeleton, whose hooks are registered here for DCNSpec).  x0 is linear in x, so the saliency
(SMFM Eq. 5) is S = g sum_j w_j x_j + (dL/dx0) . x0, and a candidate lam x + mu r has x0 = lam
x0(x) + mu x0(r) and W_1 x0 = lam W_1 x0(x) + mu W_1 x0(r): select_partners builds each
candidate's x0 from the two parents' nonzeros, carries the cross layers' values and tangents
along x forward, and the tower's through mlp.tangent_layers from the rows' first-layer products
(deepfm.tower_inputs).  Every sum has one owner and a fixed order: results do not depend on the
number of threads.
"""
from collections import namedtuple

import numpy as np
from numba import njit, prange

from . import FASTMATH, skeleton
from .mixup import start_ahead
from .mlp import (_CHUNK, _MM, DECIDE, SALIENCY, SIZE, TRAIN, _sum_blocks, _width, affine_maps,
                  backward_layers, batch_output, block_buffers, block_pass, bn_update,
                  draw_block, forward_layers, pick_best, selector_buffers, selector_tasks,
                  tangent_layers)
from .prefetch import prefetch_row
from .rng import stream_key

#: the model's arrays and options, the ``spec`` of the skeleton's hooks; ``nc``: cross layers;
#: ``train``: batch norm uses batch statistics (else the running ones); ``p_hid``: dropout on
#: the hidden layers
DCNSpec = namedtuple("DCNSpec", "fields layout offh offc nc bn bn_mean bn_var momentum seed "
                                "epoch act p_hid train")

__all__ = ["DCNSpec", "predict_rows", "run_batch", "select_partners", "workspace_for"]


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _dot(a, b):
    acc = 0.0
    for k in range(a.shape[0]):
        acc += a[k] * b[k]
    return acc


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _row_in(indptr, indices, data, r, w0, T, fields, head, offc, nc, xc):
    """Row r's field embeddings x0 into xc[:n_0] and the cross layers' outputs x_1 .. x_K into
    xc[l n_0:(l + 1) n_0].  Returns (sum_j w_j x_j, w0 + sum_j w_j x_j + o_cross . x_K)."""
    d = T.shape[1] - 1
    n0 = xc.shape[0] // (nc + 1)
    x0 = xc[:n0]
    x0[:] = 0.0
    lin = 0.0
    for t in range(indptr[r], indptr[r + 1]):
        j = indices[t]
        x = data[t]
        lin += T[j, 0] * x
        blk = x0[fields[j] * d:(fields[j] + 1) * d]
        tj = T[j, 1:]
        for k in range(d):
            blk[k] += x * tj[k]
    for l in range(nc):
        xl = xc[l * n0:(l + 1) * n0]
        cl = head[offc + 2 * l * n0:offc + (2 * l + 1) * n0]
        dl = head[offc + (2 * l + 1) * n0:offc + (2 * l + 2) * n0]
        s = _dot(xl, cl)
        xn = xc[(l + 1) * n0:(l + 2) * n0]
        for k in range(n0):
            xn[k] = x0[k] * s + dl[k] + xl[k]
    ox = head[offc + 2 * nc * n0:offc + (2 * nc + 1) * n0]
    return lin, w0[0] + lin + _dot(ox, xc[nc * n0:])


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _row_back(g, xc, dx0, head, offc, nc, gc, train, gx):
    """Backward pass of a row's cross network (xc: _row_in's) given g = dObj/df: dx0 (holding
    the tower's dObj/dx0) += the cross network's; ``train``: gc (the cross parameters' block of
    dObj/dH) += this row's part.  gx: an n_0 scratch vector."""
    n0 = dx0.shape[0]
    x0 = xc[:n0]
    ox = head[offc + 2 * nc * n0:offc + (2 * nc + 1) * n0]
    xK = xc[nc * n0:]
    for k in range(n0):
        gx[k] = g * ox[k]
    if train:
        go = gc[2 * nc * n0:(2 * nc + 1) * n0]
        for k in range(n0):
            go[k] += g * xK[k]
    for l in range(nc - 1, -1, -1):
        xl = xc[l * n0:(l + 1) * n0]
        cl = head[offc + 2 * l * n0:offc + (2 * l + 1) * n0]
        s = _dot(xl, cl)
        ds = _dot(gx, x0)
        if train:
            gcl = gc[2 * l * n0:(2 * l + 1) * n0]
            gdl = gc[(2 * l + 1) * n0:(2 * l + 2) * n0]
            for k in range(n0):
                gcl[k] += ds * xl[k]
                gdl[k] += gx[k]
        for k in range(n0):
            dx0[k] += gx[k] * s
            gx[k] += ds * cl[k]
    for k in range(n0):
        dx0[k] += gx[k]


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _rows_back(a, m, DZ, XC, DX0, G, LIN, F, head, offc, nc, mode, gc):
    """Rows a .. a + m - 1 of a batch after the tower's backward pass (DZ[i, :n_0] = the
    tower's dObj/dx0 of row a + i): DX0 = dObj/dx0; SALIENCY: F = g lin + DX0 . x0."""
    n0 = DX0.shape[1]
    gx = np.empty(n0)
    for i in range(m):
        b = a + i
        dx0 = DX0[b]
        dz = DZ[i]
        for k in range(n0):
            dx0[k] = dz[k]
        _row_back(G[b], XC[b], dx0, head, offc, nc, gc, mode == TRAIN, gx)
        if mode == SALIENCY:
            F[b] = G[b] * LIN[b] + _dot(dx0, XC[b, :n0])


@njit(cache=True, fastmath=FASTMATH)
def _block(c, indptr, indices, data, y, sw, start, B, w0, T, fields, head, layout, offh, offc,
           nc, key, p_hid, act, loss_id, mode, XC, DX0, LIN, F, G, LP, GHP, GHC):
    """Block c (rows c _MM .. min(B, (c + 1) _MM) - 1) of fused_batch: the rows' x0, cross
    network and linear part, mlp.block_pass with z_0 = x0, then the cross network's backward."""
    n0 = layout[0, SIZE]
    a, m, Zb, Ab, Mb, DZ = block_buffers(c, B, layout)
    BASE = np.empty(m)
    st = np.zeros(1, np.uint64)
    for i in range(m):
        LIN[a + i], BASE[i] = _row_in(indptr, indices, data, start + a + i, w0, T, fields, head,
                                      offc, nc, XC[a + i])
        Zb[i, :n0] = XC[a + i, :n0]
    block_pass(c, a, Zb, Ab, Mb, DZ, start, B, BASE, y, sw, head, layout, offh, act, p_hid, key,
               st, Zb, np.bool_(False), loss_id, mode, F, G, LP, GHP)
    if mode == DECIDE:
        return
    gc = GHC[c]
    gc[:] = 0.0
    _rows_back(a, m, DZ, XC, DX0, G, LIN, F, head, offc, nc, mode, gc)


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def fused_batch(indptr, indices, data, y, sw, start, B, w0, T, fields, head, layout, offh, offc,
                nc, key, p_hid, act, loss_id, mode, XC, DX0, LIN, F, G, LP, GHP, GHC):
    """Without batch norm, rows [start, start + B) block by block (mlp.block_pass).  TRAIN: F,
    G = dObj/df, XC (x0 and the cross outputs), DX0 = dObj/dx0, LIN, LP[c] / GHP[c] / GHC[c] =
    block c's loss sum / dObj/dH of the tower / of the cross parameters.  DECIDE: F = f.
    SALIENCY: F = S(x, y)."""
    for c in prange((B + _MM - 1) // _MM):
        _block(np.int64(c), indptr, indices, data, y, sw, start, B, w0, T, fields, head, layout,
               offh, offc, nc, key, p_hid, act, loss_id, mode, XC, DX0, LIN, F, G, LP, GHP, GHC)


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def _rows_in(indptr, indices, data, start, B, w0, T, fields, head, offc, nc, XC, LIN, BASE, Z):
    """The batch-norm path's rows [start, start + B): _row_in, and Z[:, :n_0] = x0."""
    n0 = XC.shape[1] // (nc + 1)
    for c in prange((B + _MM - 1) // _MM):
        for b in range(c * _MM, min(B, (c + 1) * _MM)):
            LIN[b], BASE[b] = _row_in(indptr, indices, data, start + b, w0, T, fields, head,
                                      offc, nc, XC[b])
            for k in range(n0):
                Z[b, k] = XC[b, k]


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def _cross_back(B, DZ, XC, DX0, G, LIN, F, head, offc, nc, mode, GHC):
    """The batch-norm path's cross backward pass, block by block (GHC[c]: block c's cross
    gradient)."""
    for c in prange((B + _MM - 1) // _MM):
        a = c * _MM
        m = min(B, a + _MM) - a
        gc = GHC[c]
        gc[:] = 0.0
        _rows_back(a, m, DZ[a:a + m], XC, DX0, G, LIN, F, head, offc, nc, mode, gc)


@njit(cache=True, fastmath=False)
def workspace_for(B, T, head, layout, nc, bn):
    """Buffers for batches of at most B rows: (G, DX0, F, LIN, BASE, XC, LP, GHP, GHC, Z, A, XH,
    M, DZ, MU, VAR); the batch-wide layer buffers only with batch norm."""
    n0 = layout[0, SIZE]
    W = _width(layout)
    nch = (B + _MM - 1) // _MM
    Bbn = B if bn else 0
    return (np.empty(B), np.empty((B, n0)), np.empty(B), np.empty(B), np.empty(B),
            np.empty((B, (nc + 1) * n0)), np.empty(nch),
            np.empty((0 if bn else max(nch, 1), head.shape[0])),
            np.empty((max(nch, 1), (2 * nc + 1) * n0)), np.empty((Bbn, W)), np.empty((Bbn, W)),
            np.empty((Bbn, W)), np.empty((Bbn, W)), np.empty((Bbn, W)), np.zeros(W), np.ones(W))


@njit(cache=True, fastmath=FASTMATH)
def run_batch(ws, indptr, indices, data, y, sw, start, B, w0, T, fields, head, layout, offh, offc,
              nc, bn, bn_mean, bn_var, train, key, p_hid, act, loss_id, mode, GH):
    """Rows [start, start + B) in ``mode``: TRAIN fills ws and GH = dObj/dH and returns
    (sum_b sw_b l(f_b, y_b), dObj/dw0) (``train``: BN batch statistics); DECIDE / SALIENCY
    leave f / S(x, y) in ws's F (inference mode: train False, p_hid 0)."""
    G, DX0, F, LIN, BASE, XC, LP, GHP, GHC, Z, A, XH, M, DZ, MU, VAR = ws
    nch = (B + _MM - 1) // _MM
    loss = 0.0
    if not bn:
        fused_batch(indptr, indices, data, y, sw, start, B, w0, T, fields, head, layout, offh,
                    offc, nc, key, p_hid, act, loss_id, mode, XC, DX0, LIN, F, G, LP, GHP, GHC)
        if mode != TRAIN:
            return 0.0, 0.0
        for c in range(nch):
            loss += LP[c]
        _sum_blocks(GHP, nch, GH)
    else:
        _rows_in(indptr, indices, data, start, B, w0, T, fields, head, offc, nc, XC, LIN, BASE,
                 Z)
        forward_layers(B, head, layout, offh, bn_mean, bn_var, train, key, p_hid, act, BASE, Z,
                       A, XH, M, MU, VAR, F, np.bool_(False))
        if mode == DECIDE:
            return 0.0, 0.0
        loss = batch_output(F, G, y, sw, start, B, loss_id, mode)
        backward_layers(B, head, layout, offh, train, act, G, Z, A, XH, M, VAR, DZ, GH,
                        mode == TRAIN, np.bool_(False))
        _cross_back(B, DZ, XC, DX0, G, LIN, F, head, offc, nc, mode, GHC)
        if mode != TRAIN:
            return 0.0, 0.0
    gcs = GH[offc:]
    for k in range(gcs.shape[0]):
        acc = 0.0
        for c in range(nch):
            acc += GHC[c, k]
        gcs[k] = acc
    g0 = 0.0
    for b in range(B):
        g0 += G[b]
    return loss, g0


@njit(cache=True, fastmath=FASTMATH, inline="always")
def feature_grad(u, uniq, ptr, occ_b, occ_x, T, fields, G, DX0, alpha, GT):
    """GT[u] = dObj/dT[j] + alpha T[j] for j = uniq[u], summed over its rows in row order:
    dObj/dw_j = sum_b G_b x_bj, dObj/dv_j = sum_b x_bj DX0_b[block of f_j]."""
    d = T.shape[1] - 1
    j = uniq[u]
    o = fields[j] * d
    gw = 0.0
    gv = GT[u, 1:]
    gv[:] = 0.0
    for t in range(ptr[u], ptr[u + 1]):
        x = occ_x[t]
        b = occ_b[t]
        gw += G[b] * x
        dxb = DX0[b, o:o + d]
        for k in range(d):
            gv[k] += x * dxb[k]
    GT[u, 0] = gw + alpha * T[j, 0]
    tj = T[j, 1:]
    for k in range(d):
        gv[k] += alpha * tj[k]


@njit(cache=True, fastmath=FASTMATH)
def predict_rows(indptr, indices, data, y, w0, T, fields, head, layout, offh, offc, nc, bn,
                 bn_mean, bn_var, act, loss_id, saliency, out):
    """Inference mode (no dropout, BN running statistics), in chunks of rows: out[r] = f(x_r),
    or with ``saliency`` S(x_r, y_r)."""
    n = indptr.shape[0] - 1
    ws = workspace_for(min(n, _CHUNK), T, head, layout, nc, bn)
    GH = np.empty(head.shape[0])
    mode = SALIENCY if saliency else DECIDE
    for start in range(0, n, _CHUNK):
        B = min(_CHUNK, n - start)
        run_batch(ws, indptr, indices, data, y, y, start, B, w0, T, fields, head, layout, offh,
                  offc, nc, bn, bn_mean, bn_var, np.bool_(False), np.uint64(0), 0.0, act,
                  loss_id, np.int64(mode), GH)
        F = ws[2]
        for b in range(B):
            out[start + b] = F[b]


# ------------------------------------------------------------------------- skeleton hooks
def _workspace(spec, indptr, batch_size, T, H):
    return workspace_for(min(batch_size, indptr.shape[0] - 1), T, H, spec.layout, spec.nc,
                         spec.bn)


def _forward_backward(spec, ws, indptr, indices, data, y, sw, start, B, w0, T, H, loss_id, step,
                      GH):
    return run_batch(ws, indptr, indices, data, y, sw, start, B, w0, T, spec.fields, H,
                     spec.layout, spec.offh, spec.offc, spec.nc, spec.bn, spec.bn_mean,
                     spec.bn_var, spec.train, stream_key(spec.seed, spec.epoch, step),
                     spec.p_hid, spec.act, loss_id, np.int64(TRAIN), GH)


def _feature_grad(spec, ws, u, uniq, ptr, occ_b, occ_x, T, alpha, GT):
    feature_grad(u, uniq, ptr, occ_b, occ_x, T, spec.fields, ws[0], ws[1], alpha, GT)


def _after_step(spec, ws, B):
    if spec.bn:
        bn_update(spec.layout, spec.bn_mean, spec.bn_var, ws[14], ws[15], spec.momentum, B)


skeleton.register(DCNSpec, workspace=_workspace, forward_backward=_forward_backward,
                  feature_grad=_feature_grad, after_step=_after_step)


# ---------------------------------------------------------------------- saliency-guided mixup
@njit(cache=True, fastmath=FASTMATH, inline="always")
def _add_row(indptr, indices, data, r, coef, T, fields, x0):
    """x0 += coef x0(row r); returns coef sum_j w_j x_rj."""
    d = T.shape[1] - 1
    lin = 0.0
    for t in range(indptr[r], indptr[r + 1]):
        j = indices[t]
        x = coef * data[t]
        lin += T[j, 0] * x
        blk = x0[fields[j] * d:(fields[j] + 1) * d]
        tj = T[j, 1:]
        for k in range(d):
            blk[k] += x * tj[k]
    return lin


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _cross_tangent(x0, head, offc, nc, xv, xt):
    """The cross network's output o_cross . x_K and its tangent along x (x0's tangent is x0):
    t_{l+1} = x0 s_l + x0 (c_{l+1} . t_l) + t_l.  xv, xt: n_0 scratch vectors."""
    n0 = x0.shape[0]
    for k in range(n0):
        xv[k] = x0[k]
        xt[k] = x0[k]
    for l in range(nc):
        cl = head[offc + 2 * l * n0:offc + (2 * l + 1) * n0]
        dl = head[offc + (2 * l + 1) * n0:offc + (2 * l + 2) * n0]
        s = _dot(xv, cl)
        ds = _dot(xt, cl)
        for k in range(n0):
            xv[k] = x0[k] * s + dl[k] + xv[k]
            xt[k] = x0[k] * (s + ds) + xt[k]
    ox = head[offc + 2 * nc * n0:offc + (2 * nc + 1) * n0]
    return _dot(ox, xv), _dot(ox, xt)


@njit(cache=True, fastmath=FASTMATH)
def _select_task(task, indptr, indices, data, y, parents, p, seed, epoch, a, b, w0, T, fields,
                 head, Hc, layout, offh, offc, nc, act, loss_id, P, SC, SH, partners, lams):
    """Task ``task`` of select_partners (see mlp.selector_buffers)."""
    n0 = layout[0, SIZE]
    n1 = P.shape[1]
    per, mb, first, last, PR, LM, YM, st, _keys, _pos, RP, RL = selector_buffers(
        task, parents.shape[0], p, np.int64(0))
    ZZ = np.zeros(2 * mb * _width(layout), T.dtype)  # layer outputs and tangents along x~
    OUT = np.empty((mb, n1), T.dtype)
    BV = np.empty(mb)  # the linear and cross parts' value and tangent
    BT = np.empty(mb)
    x0 = np.empty(n0)
    xv = np.empty(n0)
    xt = np.empty(n0)
    start_ahead(first, last, seed, epoch, p, indptr.shape[0] - 1, a, b, st, RP, RL, P, parents,
                indptr, indices, data)
    for i0 in range(first, last, per):
        i1 = min(last, i0 + per)
        draw_block(i0, i1, last, seed, epoch, p, indptr.shape[0] - 1, a, b, st, RP, RL, P,
                   parents, indptr, indices, data, y, PR, LM, YM)
        for j in range(min(p, (i1 - i0) * p)):  # P's rows: the selector's cache misses
            prefetch_row(P, PR[j])
        for i in range(i0, i1):
            r1 = parents[i]
            for j in range((i - i0) * p, (i - i0 + 1) * p):
                if j + p < (i1 - i0) * p:
                    prefetch_row(P, PR[j + p])
                r2 = PR[j]
                lam = LM[j]
                mu = 1.0 - lam
                x0[:] = 0.0
                ln = _add_row(indptr, indices, data, r1, lam, T, fields, x0)
                ln += _add_row(indptr, indices, data, r2, mu, T, fields, x0)
                cv, ct = _cross_tangent(x0, head, offc, nc, xv, xt)
                BV[j] = w0[0] + ln + cv
                BT[j] = ln + ct
                p1 = P[r1]
                p2 = P[r2]
                oj = OUT[j]
                for u in range(n1):
                    oj[u] = lam * p1[u] + mu * p2[u]
        tangent_layers(ZZ, mb, (i1 - i0) * p, OUT, 1.0, Hc, layout, SC, SH, act)
        pick_best(ZZ, mb, i0, i1, p, BV, BT, YM, PR, LM, head, layout, offh, loss_id, partners,
                  lams)


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def select_partners(indptr, indices, data, y, parents, p, seed, epoch, a, b, w0, T, fields, head,
                    layout, offh, offc, nc, bn, bn_mean, bn_var, act, loss_id, P):
    """Alg. 2 for DCN without materialising the candidates: for each first parent i draw p
    candidates (stream (seed, epoch, i p + k), as mixup.draw_candidates) and keep the one whose
    mixed row has the largest saliency in inference mode.  Each candidate's x0 is built from
    its parents' nonzeros and its cross network run with tangents (float64); the tower's first
    product is the parents' mixed deepfm.tower_inputs, the layers run in blocks of about _MM
    candidates in T's precision (as DeepFM's selector).  P: deepfm.tower_inputs of the rows.
    Returns (partners, lams)."""
    SC, SH = affine_maps(head, layout, bn, bn_mean, bn_var, _width(layout))
    Hc = head.astype(T.dtype)
    partners = np.empty(parents.shape[0], np.int64)
    lams = np.empty(parents.shape[0])
    for task in prange(selector_tasks(parents.shape[0], p)[1]):
        _select_task(np.int64(task), indptr, indices, data, y, parents, p, seed, epoch, a, b,
                     w0, T, fields, head, Hc, layout, offh, offc, nc, act, loss_id, P, SC, SH,
                     partners, lams)
    return partners, lams
