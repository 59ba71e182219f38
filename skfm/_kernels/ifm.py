"""Interaction-aware factorization machine kernels (IFM, Hong et al. 2019, Eq. 4-6 and 9).

Parameters: ``w0`` (float64, shape (1,)), the feature table ``T`` = [w | V] of shape
``(n_features, 1 + d)`` (as FM, lazily updated) and the head ``H``, one flat float64 vector
holding, in this order,

    W (t, d) row-major at [0, t d),  b (t,),  h (t,)      (the attention network, as AFM's)
    U (nf, kf) row-major at [t d + 2 t, t d + 2 t + nf kf),  D (kf, d) row-major after U.

With ``fields`` (n_features,) int32, each column's field f_i in 0 .. nf - 1, the field aspect of
the field pair (f, g) is F_fg = D^T (U_f * U_g) (a d-vector, symmetric in f, g; Eq. 6).  For a
row with nonzeros (i, x_i), E_i = v_i x_i and, over the pairs i < j of the row (storage order),

    e_ij = E_i * E_j,  z_ij = W e_ij + b,  a'_ij = h . ReLU(z_ij),  T = softmax(a' / tau),
    C = sum_ij T_ij F_{f_i f_j} * e_ij,  f = w0 + sum_i w_i x_i + sum_k (m * C)_k

with m the (inverted) dropout mask on the pooled vector C (all ones at inference).  A row with
fewer than two nonzeros has no pairs and a pair term of 0.  T sums to 1 over the row's pairs.

This is AFM's pair machinery (skfm._kernels.afm) with three options, its ``iam`` tuple
(tau, cw, nf, fields, Fo): the logits divided by tau, each pair's pooled vector weighted by its
row of the field-pair table Fo (one row per unordered field pair, afm.pair_field), and the
output weights cw = 1 (AFM: tau = 1, no table, cw = p).  The interaction-aware module, the
per-pair encoding T_ij F_{f_i f_j} * e_ij and its backward, is afm._chunk_forward /
afm._chunk_backward with these options; what is IFM's own here: the table Fo (field_aspect,
once per batch, one O(nf^2 kf d / 2) matrix product) and the fold of the table's gradient into
dU and dD (fold_field_grad, once per chunk of rows).

Backward (dObj/df = g, m the row's mask, o_q = F_{f_i f_j} of pair q): with
s_q = (m * o_q) . e_q = df/dT_q and sbar = sum_q T_q s_q,

    dObj/da'_q = g T_q (s_q - sbar) / tau       (then through ReLU to h, b, W and e_q as AFM)
    dObj/do_q = g T_q m * e_q,   dObj/de_q = g T_q m * o_q + W^T dObj/dz_q
    dF_fg summed over the pairs of (f, g) -> dD_c += dF_fg U_fc U_gc,
    dU_fc += (D_c . dF_fg) U_gc,  dU_gc += (D_c . dF_fg) U_fc.

Saliency (SMFM Eq. 5) by forward-mode tangents as AFM's: de_q = 2 e_q, dz_q = 2 (z_q - b), the
logit tangent divided by tau; dS = g (lin + 2 pair + sum_q T_q (dl_q - sum T dl) s_q).

Training phases, determinism and memory are AFM's (see skfm._kernels.afm); the field-pair
table's gradient of a chunk is folded into that chunk's row of the head gradient, which the
chunk rows then sum in chunk order.
"""
from collections import namedtuple

import numpy as np
from numba import njit, prange

from . import FASTMATH, skeleton
from .afm import _head_grad as afm_head_grad
from .afm import (_RCH, _attention_weights, _feature_grad, _values, _workspace, iam_pair_cache,
                  iam_rows, iam_saliency_cached, max_row_nnz, train_chunk)
from .fm import _batch_sums


def head_size(d, t, nf, kf):
    """Length of H: W, b, h (AFM's attention network without p), U, D."""
    return t * d + 2 * t + nf * kf + kf * d


@njit(cache=True, fastmath=False)
def field_factors(H, t, d, nf, kf):
    """(U (nf, kf), D (kf, d)): copies of the field factors in H."""
    o = t * d + 2 * t
    U = H[o:o + nf * kf].copy().reshape((nf, kf))
    D = H[o + nf * kf:o + nf * kf + kf * d].copy().reshape((kf, d))
    return U, D


@njit(cache=True, fastmath=FASTMATH)
def _pair_products(U):
    """P (nf (nf + 1) / 2, kf): P[afm.pair_field row of {f, g}] = U_f * U_g, f <= g."""
    nf, kf = U.shape
    P = np.empty((nf * (nf + 1) // 2, kf))
    r = 0
    for f in range(nf):
        for g in range(f, nf):
            for c in range(kf):
                P[r, c] = U[f, c] * U[g, c]
            r += 1
    return P


@njit(cache=True, fastmath=FASTMATH)
def field_aspect(H, t, d, nf, kf):
    """Fo (nf (nf + 1) / 2, d): the field aspect F_fg = D^T (U_f * U_g) (Eq. 6) of every
    unordered field pair {f, g}, f <= g, in afm.pair_field's packed order: one matrix product."""
    U, D = field_factors(H, t, d, nf, kf)
    return np.dot(_pair_products(U), D)


@njit(cache=True, fastmath=False)
def iam_ifm(H, t, d, tau, fields, nf, kf):
    """IFM's ``iam`` options of the pair kernels (afm._chunk_forward): (tau, cw = 1, nf,
    fields, field_aspect)."""
    return (float(tau), np.ones(d), np.int64(nf), fields, field_aspect(H, t, d, nf, kf))


@njit(cache=True, fastmath=FASTMATH)
def fold_field_grad(GF, H, hg, t, d, nf, kf):
    """Adds to hg (a gradient row laid out as H) the gradient of U and D given GF
    (nf (nf + 1) / 2, d), the objective's gradient with respect to the field-pair table's rows
    F_fg = D^T (U_f * U_g) (packed, f <= g): dD = P^T GF with P the rows U_f * U_g, and with
    S = GF D^T, dU_f += S_fg * U_g, dU_g += S_fg * U_f (two matrix products and O(nf^2 kf))."""
    U, D = field_factors(H, t, d, nf, kf)
    o = t * d + 2 * t
    gU = hg[o:o + nf * kf]
    gD = hg[o + nf * kf:o + nf * kf + kf * d]
    dD = np.dot(_pair_products(U).T, GF)
    for c in range(kf):
        for k in range(d):
            gD[c * d + k] += dD[c, k]
    S = np.dot(GF, D.T)
    r = 0
    for f in range(nf):
        for g in range(f, nf):
            for c in range(kf):
                gU[f * kf + c] += S[r, c] * U[g, c]
                gU[g * kf + c] += S[r, c] * U[f, c]
            r += 1


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def phase1(indptr, indices, data, y, sw, start, B, w0, T, H, Wc, t, loss_id, rate, seed, epoch,
           step, mmax, G, L, GN, HG, iam, kf):
    """afm.phase1 with IFM's options: each chunk of _RCH rows (afm.train_chunk) accumulates the
    field-pair table's gradient in its own buffer and folds it into its head row HG[ci]."""
    d = T.shape[1] - 1
    nf = iam[2]
    inv_b = 1.0 / B
    for ci in prange((B + _RCH - 1) // _RCH):
        GF = np.zeros((nf * (nf + 1) // 2, d))
        train_chunk(ci, indptr, indices, data, y, sw, start, B, inv_b, w0, T, H, Wc, t, loss_id,
                    rate, seed, epoch, step, mmax, G, L, GN, HG, iam, GF)
        fold_field_grad(GF, H, HG[ci], t, d, nf, kf)


@njit(cache=True, fastmath=False)
def _head_grad(HG, n_chunks, H, t, d, att_alpha, field_alpha, gH):
    """afm._head_grad (the chunk rows summed in chunk order, plus att_alpha W), plus
    field_alpha (U, D) on U's and D's entries."""
    afm_head_grad(HG, n_chunks, H, t, d, att_alpha, gH)
    if field_alpha != 0.0:
        for k in range(t * d + 2 * t, H.shape[0]):
            gH[k] += field_alpha * H[k]


@njit(cache=True, fastmath=False)
def train_batch(ws, indptr, indices, data, y, sw, start, B, w0, T, H, t, loss_id, rate, seed,
                epoch, step, att_alpha, tau, fields, nf, kf, field_alpha, GH):
    """Phase 1 of rows [start, start + B) (step ``step``, which keys the dropout masks): fills
    ws (afm.workspace_for) and GH (n_head,) = dObj/dH including the penalties' gradients;
    returns (sum_b sw_b l(f_b, y_b), dObj/dw0 = sum_b G_b), both summed in row order."""
    G, L, GN, HG, base = ws
    d = T.shape[1] - 1
    base[0] = indptr[start]
    Wc = _attention_weights(H, t, d, T.dtype)
    iam = iam_ifm(H, t, d, tau, fields, nf, kf)
    phase1(indptr, indices, data, y, sw, start, B, w0, T, H, Wc, t, loss_id, rate, seed, epoch,
           step, max_row_nnz(indptr, start, B), G, L, GN, HG, iam, kf)
    _head_grad(HG, (B + _RCH - 1) // _RCH, H, t, d, att_alpha, field_alpha, GH)
    return _batch_sums(L, G, B)


@njit(cache=True, fastmath=False)
def head_penalty(H, t, d, att_alpha, field_alpha):
    """att_alpha / 2 ||W||^2 + field_alpha / 2 (||U||^2 + ||D||^2)."""
    wreg = 0.0
    for k in range(t * d):
        wreg += H[k] * H[k]
    freg = 0.0
    for k in range(t * d + 2 * t, H.shape[0]):
        freg += H[k] * H[k]
    return 0.5 * att_alpha * wreg + 0.5 * field_alpha * freg


# ------------------------------------------------------------------------- skeleton hooks
#: the model's options, the ``spec`` of the skeleton's hooks: ``t`` the attention factor, ``d``
#: the embedding size, ``rate`` the dropout rate of the pooled vector (0: none), ``seed`` and
#: ``epoch`` key the dropout masks (with the step, afm._dropout_mask), ``att_alpha`` the L2
#: penalty on W, ``tau`` the softmax temperature, ``fields`` each column's field (int32),
#: ``nf`` the number of fields, ``kf`` the field factors K_F, ``field_alpha`` the L2 penalty on
#: U and D
IFMSpec = namedtuple("IFMSpec", "t d rate seed epoch att_alpha tau fields nf kf field_alpha")


def _forward_backward(spec, ws, indptr, indices, data, y, sw, start, B, w0, T, H, loss_id, step,
                      GH):
    return train_batch(ws, indptr, indices, data, y, sw, start, B, w0, T, H, spec.t, loss_id,
                       spec.rate, spec.seed, spec.epoch, step, spec.att_alpha, spec.tau,
                       spec.fields, spec.nf, spec.kf, spec.field_alpha, GH)


def _penalty(spec, H):
    return head_penalty(H, spec.t, spec.d, spec.att_alpha, spec.field_alpha)


# the workspace, the nonzero positions and the per-feature sums of the nonzeros' gradient rows
# are AFM's
skeleton.register(IFMSpec, workspace=_workspace, values=_values,
                  forward_backward=_forward_backward, feature_grad=_feature_grad,
                  penalty=_penalty)


# ----------------------------------------------------------------------------- inference
@njit(cache=True, fastmath=FASTMATH)
def ifm_rows(indptr, indices, data, y, w0, T, H, t, mmax, loss_id, mode, out, pptr, pairs, tau,
             fields, nf, kf):
    """afm.iam_rows with IFM's options: DECIDE f(x), SALIENCY, ATTENTION (the weights T_ij)."""
    iam_rows(indptr, indices, data, y, w0, T, H, t, mmax, loss_id, mode, out, pptr, pairs,
             iam_ifm(H, t, T.shape[1] - 1, tau, fields, nf, kf))


@njit(cache=True, fastmath=FASTMATH)
def pair_cache(top, T, H, t, tau, fields, nf, kf):
    """afm.iam_pair_cache with IFM's options: (UC, PC), PC[...] = F_{f_a f_b} . (v_a * v_b)."""
    return iam_pair_cache(top, T, H, t, iam_ifm(H, t, T.shape[1] - 1, tau, fields, nf, kf))


@njit(cache=True, fastmath=FASTMATH)
def saliency_cached(indptr, indices, data, y, w0, T, H, t, mmax, loss_id, kid, K, UC, PC, out,
                    tau, fields, nf, kf):
    """afm.iam_saliency_cached with IFM's options."""
    iam_saliency_cached(indptr, indices, data, y, w0, T, H, t, mmax, loss_id, kid, K, UC, PC,
                        out, iam_ifm(H, t, T.shape[1] - 1, tau, fields, nf, kf))
