"""DCN kernels (Deep & Cross Network, Wang et al. 2017): a cross network and an MLP tower over the
field embeddings, side by side.

Parameters: ``w0`` (1,), the table ``T`` = [w | V] (n_features, 1 + d) as FM's, and a flat
float64 ``H``: the tower (skfm._kernels.mlp, at least one hidden layer; ``layout`` as DeepFM's:
row 0 its input, n_0 = n_fields d wide, the hidden layers' columns from 0), its output weights
o_deep (n_L) at ``offh``, then from ``offc`` the cross layers' c_1, d_1, ..., c_K, d_K (n_0
each) and the cross output weights o_cross (n_0).  With ``fields`` (n_features,) int32, each
column's field, for a row with nonzeros (j, x_j):

    x0 = [sum_{j in field f} x_j v_j]_f,   x_{l+1} = x0 (c_{l+1} . x_l) + d_{l+1} + x_l   (K layers)
    z_l = dropout(act(BN(W_l z_{l-1} + b_l)), p_hid),  z_0 = x0
    f(x) = w0 + sum_j w_j x_j + o_cross . x_K + o_deep . z_L

as torch_ref.DCN (no FM pair term; its ``o`` is [o_cross; o_deep]).

The cross network is a scalar recursion on projections of x0.  By induction x_l = a_l x0 + B_l
with B_l = d_1 + ... + d_l (the same for every row) and

    a_0 = 1,   a_{l+1} = a_l (1 + u_{l+1}) + k_{l+1},   o_cross . x_K = a_K u_o + k_o,

where u_l = c_l . x0 and u_o = o_cross . x0 are the row's projections and k_{l+1} = c_{l+1} .
B_l, k_o = o_cross . B_K are constants of the batch.  So neither x0 nor x_l is ever built: the
rows [c_1; ...; c_K; o_cross] are stacked under the tower's W_1 into WX (n_1 + K + 1, n_0) and
WX x0 = sum_j x_j WX[:, block f_j] v_j comes from per-feature products, as DeepFM's tower input
(deepfm.first_layer).  Backward pass of the recursion for one row with g = dObj/df: dObj/du_o =
g a_K, then with ga = g u_o going down l = K .. 1: dObj/du_l = ga a_{l-1}, dObj/dk_l += ga, ga
*= 1 + u_l.  With DL = dObj/d(WX x0) (the tower's dObj/d(W_1 x0) and the cross projections')
and Delta_j = sum_b x_bj DL_b, dObj/dWX[:, block f] = sum_{j in f} Delta_j v_j^T (deepfm.
input_grads), dObj/dv_j = WX[:, block f_j]^T Delta_j, dObj/dw_j = sum_b g_b x_bj, and the
constants add Gk_l B_{l-1} to dObj/dc_l, Gk_o B_K to dObj/do_cross and Gk_o o_cross + sum_{l >
i} Gk_l c_l to dObj/dd_i (Gk: the batch's sums of dObj/dk).  x0 is linear in x, so the saliency
(SMFM Eq. 5) is S = g sum_j w_j x_j + DL . WX x0, and a candidate lam x + mu r has WX x0 = lam
WX x0(x) + mu WX x0(r): select_partners mixes the rows' products (row_inputs) and carries the
recursion's value and tangent along x (u's tangent is u) and the tower's through
mlp.tangent_layers.  Every sum has one owner and a fixed order: results do not depend on the
number of threads.
"""
from collections import namedtuple

import numpy as np
from numba import njit, prange

from . import FASTMATH, skeleton
from .csr import batch_capacity
from .deepfm import _gather, first_layer, first_layer_buffers, input_grads, row_products
from .mixup import start_ahead
from .mlp import (_CHUNK, _MM, DECIDE, OFFB, OFFW, SALIENCY, SIZE, TRAIN, ZOFF, _sum_blocks,
                  _width, affine_maps, backward_layers, batch_output, block_buffers, block_pass,
                  bn_update, draw_block, forward_layers, pick_best, selector_buffers,
                  selector_tasks, tangent_layers)
from .prefetch import prefetch_row
from .rng import stream_key

#: the model's arrays and options, the ``spec`` of the skeleton's hooks; ``nc``: cross layers;
#: ``train``: batch norm uses batch statistics (else the running ones); ``p_hid``: dropout on
#: the hidden layers
DCNSpec = namedtuple("DCNSpec", "fields layout offh offc nc bn bn_mean bn_var momentum seed "
                                "epoch act p_hid train")

__all__ = ["DCNSpec", "predict_rows", "row_inputs", "run_batch", "select_partners",
           "workspace_for"]


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _dot(a, b):
    acc = 0.0
    for k in range(a.shape[0]):
        acc += a[k] * b[k]
    return acc


@njit(cache=True, fastmath=False)
def stacked_weights(head, layout, offc, nc, WX, KC):
    """WX = [W_1; c_1; ...; c_K; o_cross] (n_1 + K + 1, n_0) and the constants KC = [k_1, ...,
    k_K, k_o] of the cross recursion (k_{l+1} = c_{l+1} . B_l, k_o = o_cross . B_K, B_l = d_1 +
    ... + d_l)."""
    n0 = layout[0, SIZE]
    n1 = layout[1, SIZE]
    WX[:n1] = head[layout[1, OFFW]:layout[1, OFFW] + n1 * n0].reshape((n1, n0))
    Bl = np.zeros(n0)
    for l in range(nc + 1):
        wl = head[offc + 2 * l * n0:offc + (2 * l + 1) * n0]  # c_{l+1}, or o_cross at l = K
        WX[n1 + l] = wl
        KC[l] = _dot(wl, Bl)
        if l < nc:
            Bl += head[offc + (2 * l + 1) * n0:offc + (2 * l + 2) * n0]


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _cross_value(pc, kc, nc):
    """o_cross . x_K from the row's projections pc = [u_1, ..., u_K, u_o]."""
    a = 1.0
    for l in range(nc):
        a = a * (1.0 + pc[l]) + kc[l]
    return a * pc[nc] + kc[nc]


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _cross_tangent(pc, kc, nc):
    """(o_cross . x_K, its derivative d/dt at t = 1 along the row: each u's tangent is u)."""
    a = 1.0
    at = 0.0
    for l in range(nc):
        at = at * (1.0 + pc[l]) + a * pc[l]
        a = a * (1.0 + pc[l]) + kc[l]
    return a * pc[nc] + kc[nc], (at + a) * pc[nc]


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _cross_back(g, pc, kc, nc, av, dl, gk):
    """Backward pass of the recursion: dl = [dObj/du_1, ..., dObj/du_K, dObj/du_o]; gk +=
    dObj/dk_l and dObj/dk_o.  av: a (K + 1) scratch vector."""
    av[0] = 1.0
    for l in range(nc):
        av[l + 1] = av[l] * (1.0 + pc[l]) + kc[l]
    dl[nc] = g * av[nc]
    gk[nc] += g
    ga = g * pc[nc]
    for l in range(nc - 1, -1, -1):
        dl[l] = ga * av[l]
        gk[l] += ga
        ga *= 1.0 + pc[l]


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _row_in(indptr, indices, data, r, base, w0, T, loc, U, kc, nc, acc, p1, pc):
    """Row r's products: p1 = W_1 x0, pc = its cross projections (acc: a scratch row of WX's
    height).  Returns (f without the tower, sum_j w_j x_j)."""
    lin = 0.0
    for t in range(indptr[r], indptr[r + 1]):
        lin += T[indices[t], 0] * data[t]
    _gather(data, indptr[r], indptr[r + 1], base, loc, U, acc)
    n1 = p1.shape[0]
    p1[:] = acc[:n1]
    pc[:] = acc[n1:]
    return w0[0] + lin + _cross_value(pc, kc, nc), lin


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _rows_out(a, m, DZ, z1, G, LIN, P1, PC, kc, nc, sal, DL, F, gk):
    """Rows a .. a + m - 1 after the tower's backward pass (DZ[i, z1:] = dObj/d(W_1 x0) of row
    a + i): DL = dObj/d(WX x0), gk += the rows' dObj/dk; ``sal``: F = the saliency."""
    n1 = P1.shape[1]
    av = np.empty(nc + 1)
    for i in range(m):
        b = a + i
        dl = DL[b]
        dl[:n1] = DZ[i, z1:z1 + n1]
        _cross_back(G[b], PC[b], kc, nc, av, dl[n1:], gk)
        if sal:
            F[b] = G[b] * LIN[b] + _dot(dl[:n1], P1[b]) + _dot(dl[n1:], PC[b])


@njit(cache=True, fastmath=FASTMATH)
def _block(c, indptr, indices, data, y, sw, start, B, w0, T, head, layout, offh, nc, kc, key,
           p_hid, act, loss_id, mode, loc, U, F, G, LIN, P1, PC, DL, LP, GHP, GK):
    """Block c (rows c _MM .. min(B, (c + 1) _MM) - 1) of fused_batch: the rows' products,
    cross network and linear part, mlp.block_pass on W_1 x0, then the cross backward pass."""
    z1 = layout[1, ZOFF]
    a, m, Zb, Ab, Mb, DZ = block_buffers(c, B, layout)
    BASE = np.empty(m)
    acc = np.empty(U.shape[1])
    st = np.zeros(1, np.uint64)
    for i in range(m):
        BASE[i], LIN[a + i] = _row_in(indptr, indices, data, start + a + i, indptr[start], w0,
                                      T, loc, U, kc, nc, acc, P1[a + i], PC[a + i])
    block_pass(c, a, Zb, Ab, Mb, DZ, start, B, BASE, y, sw, head, layout, offh, act, p_hid, key,
               st, P1[a:a + m], True, loss_id, mode, F, G, LP, GHP)
    if mode == DECIDE:
        return
    gk = GK[c]
    gk[:] = 0.0
    _rows_out(a, m, DZ, z1, G, LIN, P1, PC, kc, nc, mode == SALIENCY, DL, F, gk)


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def fused_batch(indptr, indices, data, y, sw, start, B, w0, T, head, layout, offh, nc, kc, key,
                p_hid, act, loss_id, mode, loc, U, F, G, LIN, P1, PC, DL, LP, GHP, GK):
    """Without batch norm, rows [start, start + B) block by block (mlp.block_pass).  TRAIN: F,
    G = dObj/df, LIN, P1 = W_1 x0, PC = the cross projections, DL = dObj/d(WX x0), LP[c] /
    GHP[c] / GK[c] = block c's loss sum / dObj/dH but W_1's and the cross network's / dObj/dk.
    DECIDE: F = f.  SALIENCY: F = S(x, y)."""
    for c in prange((B + _MM - 1) // _MM):
        _block(np.int64(c), indptr, indices, data, y, sw, start, B, w0, T, head, layout, offh,
               nc, kc, key, p_hid, act, loss_id, mode, loc, U, F, G, LIN, P1, PC, DL, LP, GHP,
               GK)


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def _rows_in(indptr, indices, data, start, B, w0, T, head, layout, nc, kc, loc, U, LIN, P1, PC,
             BASE, XH):
    """The batch-norm path's rows [start, start + B): _row_in, and XH[:, z_1] = W_1 x0 + b_1."""
    n1 = layout[1, SIZE]
    z1 = layout[1, ZOFF]
    b1 = head[layout[1, OFFB]:layout[1, OFFB] + n1]
    for c in prange((B + _MM - 1) // _MM):
        acc = np.empty(U.shape[1])
        for b in range(c * _MM, min(B, (c + 1) * _MM)):
            BASE[b], LIN[b] = _row_in(indptr, indices, data, start + b, indptr[start], w0, T,
                                      loc, U, kc, nc, acc, P1[b], PC[b])
            for i in range(n1):
                XH[b, z1 + i] = P1[b, i] + b1[i]


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def _rows_out_bn(B, DZ, z1, G, LIN, P1, PC, kc, nc, sal, DL, F, GK):
    """The batch-norm path's _rows_out, block by block (GK[c]: block c's dObj/dk)."""
    for c in prange((B + _MM - 1) // _MM):
        a = c * _MM
        m = min(B, a + _MM) - a
        gk = GK[c]
        gk[:] = 0.0
        _rows_out(a, m, DZ[a:a + m], z1, G, LIN, P1, PC, kc, nc, sal, DL, F, gk)


@njit(cache=True, fastmath=FASTMATH)
def _cross_grads(head, layout, offc, nc, GWX, GK, nch, GH):
    """dObj/dW_1 and the cross parameters' block of GH from GWX = dObj/dWX (input_grads) and
    the blocks' sums GK of dObj/dk (see the module's docstring)."""
    n0 = layout[0, SIZE]
    n1 = layout[1, SIZE]
    oW = layout[1, OFFW]
    GH[oW:oW + n1 * n0] = GWX[:n1 * n0]
    gk = np.zeros(nc + 1)
    for c in range(nch):
        for l in range(nc + 1):
            gk[l] += GK[c, l]
    Bl = np.zeros(n0)  # B_l, going up
    for l in range(nc + 1):
        gc = GH[offc + 2 * l * n0:offc + (2 * l + 1) * n0]  # c_{l+1}, or o_cross at l = K
        gx = GWX[(n1 + l) * n0:(n1 + l + 1) * n0]
        for k in range(n0):
            gc[k] = gx[k] + gk[l] * Bl[k]
        if l < nc:
            Bl += head[offc + (2 * l + 1) * n0:offc + (2 * l + 2) * n0]
    up = gk[nc] * head[offc + 2 * nc * n0:offc + (2 * nc + 1) * n0]  # sum_{l > i} Gk_l c_l + ..
    for i in range(nc - 1, -1, -1):
        GH[offc + (2 * i + 1) * n0:offc + (2 * i + 2) * n0] = up
        if i > 0:
            up = up + gk[i] * head[offc + 2 * i * n0:offc + (2 * i + 1) * n0]


@njit(cache=True, fastmath=False)
def workspace_for(B, cap, T, head, layout, nc, bn):
    """Buffers for batches of at most B rows and cap nonzeros: (G, LIN, P1, PC, DL, F, LP, GHP,
    GK, KC, WX, GWX, BASE, Z, A, XH, M, DZ, MU, VAR, slot, uniq, cnt, ptr, occ_b, occ_x, up, U,
    Dlt) (flat: a parallel loop cannot take a nested tuple); the batch-wide layer buffers only
    with batch norm."""
    n0 = layout[0, SIZE]
    n1 = layout[1, SIZE]
    nx = n1 + nc + 1
    W = _width(layout)
    nch = max((B + _MM - 1) // _MM, 1)
    Bbn = B if bn else 0
    return (np.empty(B), np.empty(B), np.empty((B, n1)), np.empty((B, nc + 1)),
            np.empty((B, nx)), np.empty(B), np.empty(nch),
            np.empty((0 if bn else nch, head.shape[0])), np.empty((nch, nc + 1)),
            np.empty(nc + 1), np.empty((nx, n0)), np.empty(nx * n0), np.empty(Bbn),
            np.empty((Bbn, W)), np.empty((Bbn, W)), np.empty((Bbn, W)), np.empty((Bbn, W)),
            np.empty((Bbn, W)), np.zeros(W), np.ones(W), *first_layer_buffers(cap, T, nx))


@njit(cache=True, fastmath=FASTMATH)
def run_batch(ws, indptr, indices, data, y, sw, start, B, w0, T, fields, head, layout, offh, offc,
              nc, bn, bn_mean, bn_var, train, key, p_hid, act, loss_id, mode, GH):
    """Rows [start, start + B) in ``mode``: TRAIN fills ws and GH = dObj/dH and returns
    (sum_b sw_b l(f_b, y_b), dObj/dw0) (``train``: BN batch statistics); DECIDE / SALIENCY
    leave f / S(x, y) in ws's F (inference mode: train False, p_hid 0)."""
    (G, LIN, P1, PC, DL, F, LP, GHP, GK, KC, WX, GWX, BASE, Z, A, XH, M, DZ, MU, VAR, slot, uniq,
     cnt, ptr, occ_b, occ_x, loc, U, Dlt) = ws
    stacked_weights(head, layout, offc, nc, WX, KC)
    nu = first_layer(indptr, indices, data, start, B, T, fields, WX, slot, uniq, cnt, ptr, occ_b,
                     occ_x, loc, U)
    nch = (B + _MM - 1) // _MM
    loss = 0.0
    if not bn:
        fused_batch(indptr, indices, data, y, sw, start, B, w0, T, head, layout, offh, nc, KC,
                    key, p_hid, act, loss_id, mode, loc, U, F, G, LIN, P1, PC, DL, LP, GHP, GK)
        if mode != TRAIN:
            return 0.0, 0.0
        for c in range(nch):
            loss += LP[c]
        _sum_blocks(GHP, nch, GH)
    else:
        _rows_in(indptr, indices, data, start, B, w0, T, head, layout, nc, KC, loc, U, LIN, P1,
                 PC, BASE, XH)
        forward_layers(B, head, layout, offh, bn_mean, bn_var, train, key, p_hid, act, BASE, Z,
                       A, XH, M, MU, VAR, F, True)
        if mode == DECIDE:
            return 0.0, 0.0
        loss = batch_output(F, G, y, sw, start, B, loss_id, mode)
        backward_layers(B, head, layout, offh, train, act, G, Z, A, XH, M, VAR, DZ, GH,
                        mode == TRAIN, True)
        _rows_out_bn(B, DZ, layout[1, ZOFF], G, LIN, P1, PC, KC, nc, mode == SALIENCY, DL, F,
                     GK)
        if mode != TRAIN:
            return 0.0, 0.0
    input_grads(nu, uniq, ptr, occ_b, occ_x, T, fields, DL, Dlt, GWX, 0, layout[0, SIZE])
    _cross_grads(head, layout, offc, nc, GWX, GK, nch, GH)
    g0 = 0.0
    for b in range(B):
        g0 += G[b]
    return loss, g0


@njit(cache=True, fastmath=FASTMATH, inline="always")
def feature_grad(u, uniq, ptr, occ_b, occ_x, T, fields, G, Dlt, WX, alpha, GT):
    """GT[u] = dObj/dT[j] + alpha T[j] for j = uniq[u], summed over its rows in row order
    (the batch's transposition numbers the features as first_layer did: Delta_u = Dlt[u]):
    dObj/dw_j = sum_b G_b x_bj, dObj/dv_j = WX[:, block f_j]^T Delta_j."""
    d = T.shape[1] - 1
    j = uniq[u]
    o = fields[j] * d
    gw = 0.0
    for t in range(ptr[u], ptr[u + 1]):
        gw += G[occ_b[t]] * occ_x[t]
    GT[u, 0] = gw + alpha * T[j, 0]
    gv = GT[u, 1:]
    tj = T[j, 1:]
    for k in range(d):
        gv[k] = alpha * tj[k]
    dl = Dlt[u]
    for i in range(WX.shape[0]):
        wi = WX[i, o:o + d]
        for k in range(d):
            gv[k] += dl[i] * wi[k]


@njit(cache=True, fastmath=FASTMATH)
def predict_rows(indptr, indices, data, y, w0, T, fields, head, layout, offh, offc, nc, bn,
                 bn_mean, bn_var, act, loss_id, saliency, out):
    """Inference mode (no dropout, BN running statistics), in chunks of rows: out[r] = f(x_r),
    or with ``saliency`` S(x_r, y_r)."""
    n = indptr.shape[0] - 1
    ws = workspace_for(min(n, _CHUNK), batch_capacity(indptr, _CHUNK), T, head, layout, nc, bn)
    GH = np.empty(0)
    mode = SALIENCY if saliency else DECIDE
    for start in range(0, n, _CHUNK):
        B = min(_CHUNK, n - start)
        run_batch(ws, indptr, indices, data, y, y, start, B, w0, T, fields, head, layout, offh,
                  offc, nc, bn, bn_mean, bn_var, np.bool_(False), np.uint64(0), 0.0, act,
                  loss_id, np.int64(mode), GH)
        F = ws[5]
        for b in range(B):
            out[start + b] = F[b]


# ------------------------------------------------------------------------- skeleton hooks
def _workspace(spec, indptr, batch_size, T, H):
    return workspace_for(min(batch_size, indptr.shape[0] - 1),
                         batch_capacity(indptr, batch_size), T, H, spec.layout, spec.nc,
                         spec.bn)


def _forward_backward(spec, ws, indptr, indices, data, y, sw, start, B, w0, T, H, loss_id, step,
                      GH):
    return run_batch(ws, indptr, indices, data, y, sw, start, B, w0, T, spec.fields, H,
                     spec.layout, spec.offh, spec.offc, spec.nc, spec.bn, spec.bn_mean,
                     spec.bn_var, spec.train, stream_key(spec.seed, spec.epoch, step),
                     spec.p_hid, spec.act, loss_id, np.int64(TRAIN), GH)


def _feature_grad(spec, ws, u, uniq, ptr, occ_b, occ_x, T, alpha, GT):
    feature_grad(u, uniq, ptr, occ_b, occ_x, T, spec.fields, ws[0], ws[28], ws[10], alpha, GT)


def _after_step(spec, ws, B):
    if spec.bn:
        bn_update(spec.layout, spec.bn_mean, spec.bn_var, ws[18], ws[19], spec.momentum, B)


skeleton.register(DCNSpec, workspace=_workspace, forward_backward=_forward_backward,
                  feature_grad=_feature_grad, after_step=_after_step)


# ---------------------------------------------------------------------- saliency-guided mixup
@njit(cache=True, fastmath=FASTMATH, parallel=True)
def _row_lin(indptr, indices, data, T, L):
    for r in prange(indptr.shape[0] - 1):
        acc = 0.0
        for t in range(indptr[r], indptr[r + 1]):
            acc += T[indices[t], 0] * data[t]
        L[r] = acc


@njit(cache=True, fastmath=FASTMATH)
def row_inputs(indptr, indices, data, T, fields, head, layout, offc, nc):
    """(P, L, KC): P (n, n_1 + K + 1) = WX x0(x_r) for every row (deepfm.row_products: the
    tower's first product, then the cross projections u_1, ..., u_K, u_o), in T's precision;
    L (n,) = sum_j w_j x_rj; KC the cross recursion's constants."""
    n0 = layout[0, SIZE]
    nx = layout[1, SIZE] + nc + 1
    WX = np.empty((nx, n0))
    KC = np.empty(nc + 1)
    stacked_weights(head, layout, offc, nc, WX, KC)
    L = np.empty(indptr.shape[0] - 1)
    _row_lin(indptr, indices, data, T, L)
    return row_products(indptr, indices, data, T, fields, WX), L, KC


@njit(cache=True, fastmath=FASTMATH)
def _select_task(task, indptr, indices, data, y, parents, p, seed, epoch, a, b, w0, T, head, Hc,
                 layout, offh, nc, act, loss_id, P, L, KC, SC, SH, partners, lams):
    """Task ``task`` of select_partners (see mlp.selector_buffers)."""
    n1 = layout[1, SIZE]
    per, mb, first, last, PR, LM, YM, st, _keys, _pos, RP, RL = selector_buffers(
        task, parents.shape[0], p, np.int64(0))
    ZZ = np.zeros(2 * mb * _width(layout), T.dtype)  # layer outputs and tangents along x~
    OUT = np.empty((mb, n1), T.dtype)
    BV = np.empty(mb)  # the linear and cross parts' value and tangent
    BT = np.empty(mb)
    pc = np.empty(nc + 1)
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
            p1 = P[r1]
            for j in range((i - i0) * p, (i - i0 + 1) * p):
                if j + p < (i1 - i0) * p:
                    prefetch_row(P, PR[j + p])
                r2 = PR[j]
                lam = LM[j]
                mu = 1.0 - lam
                p2 = P[r2]
                for l in range(nc + 1):
                    pc[l] = lam * p1[n1 + l] + mu * p2[n1 + l]
                ln = lam * L[r1] + mu * L[r2]
                cv, ct = _cross_tangent(pc, KC, nc)
                BV[j] = w0[0] + ln + cv
                BT[j] = ln + ct
                oj = OUT[j]
                for u in range(n1):
                    oj[u] = lam * p1[u] + mu * p2[u]
        tangent_layers(ZZ, mb, (i1 - i0) * p, OUT, 1.0, Hc, layout, SC, SH, act)
        pick_best(ZZ, mb, i0, i1, p, BV, BT, YM, PR, LM, head, layout, offh, loss_id, partners,
                  lams)


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def select_partners(indptr, indices, data, y, parents, p, seed, epoch, a, b, w0, T, head, layout,
                    offh, nc, bn, bn_mean, bn_var, act, loss_id, P, L, KC):
    """Alg. 2 for DCN without materialising the candidates: for each first parent i draw p
    candidates (stream (seed, epoch, i p + k), as mixup.draw_candidates) and keep the one whose
    mixed row has the largest saliency in inference mode.  A candidate's products WX x0 are its
    parents' mixed row_inputs (P, L, KC): its cross recursion runs with tangents in float64,
    the tower's layers in blocks of about _MM candidates in T's precision (as DeepFM's
    selector).  Returns (partners, lams)."""
    SC, SH = affine_maps(head, layout, bn, bn_mean, bn_var, _width(layout))
    Hc = head.astype(T.dtype)
    partners = np.empty(parents.shape[0], np.int64)
    lams = np.empty(parents.shape[0])
    for task in prange(selector_tasks(parents.shape[0], p)[1]):
        _select_task(np.int64(task), indptr, indices, data, y, parents, p, seed, epoch, a, b,
                     w0, T, head, Hc, layout, offh, nc, act, loss_id, P, L, KC, SC, SH,
                     partners, lams)
    return partners, lams
