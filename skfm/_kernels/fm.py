"""Degree-2 factorization machine kernels.

Parameters: ``w0`` (float64 array of shape (1,)) and the feature table ``T`` of shape
``(n_features, 1 + d)``: ``T[j, 0]`` is the linear weight w_j, ``T[j, 1:]`` the factor vector v_j.
For one row with nonzeros (j, x_j):

    s_f = sum_j v_jf x_j,   q_f = sum_j v_jf^2 x_j^2
    f(x) = w0 + sum_j w_j x_j + 0.5 sum_f (s_f^2 - q_f)
    df/dw_j = x_j,   df/dv_jf = x_j (s_f - v_jf x_j)
    saliency S(x, y) = sum_j x_j dL/dx_j = L'(f) (sum_j w_j x_j + sum_f (s_f^2 - q_f))

Training runs on the minibatch skeleton (skfm._kernels.skeleton) with FM's hooks: phase 1 the
rows in parallel (forward_batch), phase 2 the batch's unique features (_feature_grad); every sum
has one owner and a fixed order, so results do not depend on the number of threads.
"""
from collections import namedtuple

import numpy as np
from numba import njit, prange

from . import FASTMATH, skeleton
from .csr import gather_rows
from .losses import loss_deriv, loss_value
from .mixup import draw_one, start_ahead, step_ahead

_CHUNK = 256  # rows per task in prediction-style loops


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _row_sums(indices, data, a, e, T, s, q):
    """Fill s, q (length d) for the row stored at [a, e); return sum_j w_j x_j."""
    d = s.shape[0]
    for k in range(d):
        s[k] = 0.0
        q[k] = 0.0
    lin = 0.0
    for p in range(a, e):
        j = indices[p]
        x = data[p]
        lin += T[j, 0] * x
        for k in range(d):
            t = T[j, k + 1] * x
            s[k] += t
            q[k] += t * t
    return lin


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _pair_term(s, q):
    """sum_f (s_f^2 - q_f), i.e. twice the pairwise interaction term."""
    acc = 0.0
    for k in range(s.shape[0]):
        acc += s[k] * s[k] - q[k]
    return acc


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def fm_decision(indptr, indices, data, w0, T, out):
    """out[r] = f(x_r) for every row of the CSR matrix."""
    n = indptr.shape[0] - 1
    d = T.shape[1] - 1
    n_chunks = (n + _CHUNK - 1) // _CHUNK
    for c in prange(n_chunks):
        s = np.empty(d, T.dtype)
        q = np.empty(d, T.dtype)
        for r in range(c * _CHUNK, min(n, (c + 1) * _CHUNK)):
            lin = _row_sums(indices, data, indptr[r], indptr[r + 1], T, s, q)
            out[r] = w0[0] + lin + 0.5 * _pair_term(s, q)


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def fm_saliency(indptr, indices, data, y, w0, T, loss_id, out):
    """out[r] = sum_j x_rj dL(f(x_r), y_r)/dx_rj (SMFM Eq. 5) for every row."""
    n = indptr.shape[0] - 1
    d = T.shape[1] - 1
    n_chunks = (n + _CHUNK - 1) // _CHUNK
    for c in prange(n_chunks):
        s = np.empty(d, T.dtype)
        q = np.empty(d, T.dtype)
        for r in range(c * _CHUNK, min(n, (c + 1) * _CHUNK)):
            lin = _row_sums(indices, data, indptr[r], indptr[r + 1], T, s, q)
            pair2 = _pair_term(s, q)
            f = w0[0] + lin + 0.5 * pair2
            out[r] = loss_deriv(f, y[r], loss_id) * (lin + pair2)


# ----------------------------------------------------------------------------- training
@njit(cache=True, fastmath=FASTMATH, parallel=True)
def forward_batch(indptr, indices, data, y, sw, start, B, w0, T, S, Q, G, L, loss_id):
    """Phase 1, rows [start, start + B) of an epoch block in parallel: the row sums S[b], the
    weighted loss L[b] and G[b] = sw_b / B * dL/df."""
    inv_b = 1.0 / B
    for b in prange(B):
        r = start + b
        lin = _row_sums(indices, data, indptr[r], indptr[r + 1], T, S[b], Q[b])
        f = w0[0] + lin + 0.5 * _pair_term(S[b], Q[b])
        L[b] = sw[r] * loss_value(f, y[r], loss_id)
        G[b] = sw[r] * inv_b * loss_deriv(f, y[r], loss_id)


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _feature_grad(u, uniq, ptr, occ_b, occ_x, T, S, G, alpha, GT):
    """GT[u] = d(batch loss)/d T[j] + alpha T[j] for j = uniq[u]:
    d/dw_j = sum_b g_b x_bj;  d/dv_jf = sum_b g_b x_bj (s_bf - v_jf x_bj), summed in row order."""
    d = T.shape[1] - 1
    j = uniq[u]
    gw = 0.0
    for k in range(d + 1):
        GT[u, k] = 0.0
    for o in range(ptr[u], ptr[u + 1]):
        b = occ_b[o]
        x = occ_x[o]
        gx = G[b] * x
        gw += gx
        for k in range(d):
            GT[u, k + 1] += gx * (S[b, k] - T[j, k + 1] * x)
    GT[u, 0] = gw + alpha * T[j, 0]
    if alpha != 0.0:
        for k in range(d):
            GT[u, k + 1] += alpha * T[j, k + 1]


@njit(cache=True, fastmath=FASTMATH)
def _max_row_nnz(indptr):
    m = 0
    for r in range(indptr.shape[0] - 1):
        m = max(m, indptr[r + 1] - indptr[r])
    return m


@njit(cache=True, fastmath=FASTMATH)
def _batch_sums(L, G, B):
    """(sum_b L[b], sum_b G[b]) in row order: the batch loss and dObj/dw0."""
    loss = 0.0
    g0 = 0.0
    for b in range(B):
        loss += L[b]
        g0 += G[b]
    return loss, g0


#: FM's ``spec`` for the minibatch skeleton (skfm._kernels.skeleton): FM has no arrays or
#: options beyond w0 and T, so its one field only names the model
FMSpec = namedtuple("FMSpec", "model")
SPEC = FMSpec(0)


def _workspace(spec, indptr, batch_size, T, H):
    """(S, Q, G, L) of up to ``batch_size`` rows: row sums, loss derivatives, losses."""
    Bmax = min(batch_size, indptr.shape[0] - 1)
    d = T.shape[1] - 1
    return (np.empty((Bmax, d), T.dtype), np.empty((Bmax, d), T.dtype),
            np.empty(Bmax, T.dtype), np.empty(Bmax))


def _forward_backward(spec, ws, indptr, indices, data, y, sw, start, B, w0, T, H, loss_id, step,
                      GH):
    S, Q, G, L = ws
    forward_batch(indptr, indices, data, y, sw, start, B, w0, T, S, Q, G, L, loss_id)
    return _batch_sums(L, G, B)


def _feature_grad_hook(spec, ws, u, uniq, ptr, occ_b, occ_x, T, alpha, GT):
    _feature_grad(u, uniq, ptr, occ_b, occ_x, T, ws[0], ws[2], alpha, GT)


skeleton.register(FMSpec, workspace=_workspace, forward_backward=_forward_backward,
                  feature_grad=_feature_grad_hook)

#: FM's empty dense parameters H and their optimizer state, for the skeleton's signature
NO_H = np.zeros(0)
NO_STATE_H = np.zeros((2, 0))


def batch_gradient(src0, src1, order, start, B, w0, T, loss_id, alpha, slot):
    """Gradient of one batch's objective along the training code path (for tests and tools).

    The batch is rows ``order[start:start + B]`` of the union of ``src0`` and ``src1`` (see
    :func:`skfm._kernels.csr.gather_rows`).  Objective:
    (1/B) sum_b sw_b l(f(x_b), y_b) + (alpha/2) sum_{j in batch} ||T_j||^2.
    Returns (objective, d/dw0, unique features, their gradient rows)."""
    ip, ind, dat, y, sw = gather_rows(src0, src1, order[start:start + B])
    obj, g0, uniq, GT, _ = skeleton.batch_gradient(ip, ind, dat, y, sw, w0, T, NO_H, loss_id,
                                                   alpha, slot, SPEC)
    return obj, g0, uniq, GT


# ----------------------------------------------------------------------- saliency-guided mixup
@njit(cache=True, fastmath=FASTMATH, parallel=True)
def fm_row_stats(indptr, indices, data, T):
    """Per row r, packed in one row of R (n, d + 3) so a random partner costs one contiguous
    read: R[r, :d] = s (sum_j v_j x_j), R[r, d] = lin (sum_j w_j x_j), R[r, d + 1] = Q
    (sum_f q_f) and R[r, d + 2] = ||s||^2.  Mixing is linear in x, so a mixed row's s and lin
    follow from its parents' and only the features the parents share correct Q."""
    n = indptr.shape[0] - 1
    d = T.shape[1] - 1
    R = np.empty((n, d + 3), T.dtype)
    n_chunks = (n + _CHUNK - 1) // _CHUNK
    for c in prange(n_chunks):
        s = np.empty(d, T.dtype)
        q = np.empty(d, T.dtype)
        for r in range(c * _CHUNK, min(n, (c + 1) * _CHUNK)):
            R[r, d] = _row_sums(indices, data, indptr[r], indptr[r + 1], T, s, q)
            qt = 0.0
            ss = 0.0
            for k in range(d):
                R[r, k] = s[k]
                qt += q[k]
                ss += s[k] * s[k]
            R[r, d + 1] = qt
            R[r, d + 2] = ss
    return R


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def factor_sq_norms(T):
    """||v_j||^2 for every feature."""
    out = np.empty(T.shape[0])
    for j in prange(T.shape[0]):
        acc = 0.0
        for k in range(1, T.shape[1]):
            acc += T[j, k] * T[j, k]
        out[j] = acc
    return out


@njit(cache=True, inline="always")
def _slot_of(j, bits):
    """Home slot of feature j in a table of 2**bits slots (Fibonacci hashing)."""
    return ((j * 2654435761) & 0xFFFFFFFF) >> (32 - bits)


@njit(cache=True, fastmath=False)
def _table_bits(indptr):
    """log2 of the slots of a hash table that holds any row's features at most half full."""
    bits = 3
    while (1 << bits) < 2 * _max_row_nnz(indptr):
        bits += 1
    return bits


@njit(cache=True, inline="always")
def _table_fill_pos(indices, a, e, keys, pos, bits):
    """Open-addressing table of one row: feature j -> its position p in indices/data (linear
    probing)."""
    mask = (1 << bits) - 1
    for p in range(a, e):
        j = indices[p]
        h = _slot_of(j, bits)
        while keys[h] >= 0:
            h = (h + 1) & mask
        keys[h] = j
        pos[h] = p


@njit(cache=True, inline="always")
def _table_find(j, keys, bits):
    """Slot of feature j in the table, or -1 when the row does not have it."""
    mask = (1 << bits) - 1
    h = _slot_of(j, bits)
    while True:
        k = keys[h]
        if k == j:
            return h
        if k < 0:
            return -1
        h = (h + 1) & mask


@njit(cache=True, inline="always")
def _table_clear(indices, a, e, keys, bits):
    mask = (1 << bits) - 1
    for p in range(a, e):
        j = indices[p]
        h = _slot_of(j, bits)
        while keys[h] != j:
            h = (h + 1) & mask
        keys[h] = -1


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _table_shared_q(indices, data, a, e, keys, pos, bits, nrm):
    """sum over the features j of row [a, e) that are in the table of x_j r_j ||v_j||^2."""
    acc = 0.0
    for p in range(a, e):
        h = _table_find(indices[p], keys, bits)
        if h >= 0:
            acc += data[pos[h]] * nrm[indices[p]] * data[p]
    return acc


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def fm_select_partners(indptr, indices, data, y, parents, p, seed, epoch, a, b, w0, T, loss_id,
                       R, nrm, criterion):
    """Alg. 2 for FM: for each first parent i draw p candidates (stream (seed, epoch, i p + k))
    and keep the one whose mixed row has the largest saliency under (w0, T) (``criterion`` 0),
    or the largest loss (1: Maxup); p == 1 is Alg. 1.

    The saliency of lam x + (1 - lam) r is evaluated in closed form from the parents' row stats
    ``R`` (see fm_row_stats) and the factor norms ``nrm`` (factor_sq_norms) in O(d + nnz) instead of
    O(nnz d): the features the two parents share are found through a small hash table of the
    first parent's features, built once for its p candidates.  Returns (partners, lams)."""
    m = parents.shape[0]
    n = indptr.shape[0] - 1
    d = T.shape[1] - 1
    partners = np.empty(m, np.int64)
    lams = np.empty(m)
    bits = _table_bits(indptr)
    n_chunks = (m + _CHUNK - 1) // _CHUNK
    for c in prange(n_chunks):
        st = np.zeros(1, np.uint64)
        keys = np.full(1 << bits, -1, np.int64)
        pos = np.empty(1 << bits, np.int64)
        i0 = c * _CHUNK
        i1 = min(m, (c + 1) * _CHUNK)
        RP = np.empty((3, p), np.int64)  # candidates drawn ahead (mixup.start_ahead)
        RL = np.empty((3, p))
        if p > 1:
            start_ahead(i0, i1, seed, epoch, p, n, a, b, st, RP, RL, R, parents, indptr, indices,
                        data)
        for i in range(i0, i1):
            r1 = parents[i]
            a1 = indptr[r1]
            e1 = indptr[r1 + 1]
            if p == 1:
                partners[i], lams[i] = draw_one(seed, epoch, i, n, a, b, st)
                continue
            step_ahead(i, i1, seed, epoch, p, n, a, b, st, RP, RL, R, parents, indptr, indices,
                       data)
            PR = RP[i % 3]
            LM = RL[i % 3]
            _table_fill_pos(indices, a1, e1, keys, pos, bits)
            best = -np.inf
            best_r = -1
            best_lam = 1.0
            for k in range(p):
                r2 = PR[k]
                lam = LM[k]
                mu = 1.0 - lam
                dot = 0.0
                for f in range(d):
                    dot += R[r1, f] * R[r2, f]
                cq = _table_shared_q(indices, data, indptr[r2], indptr[r2 + 1], keys, pos, bits,
                                     nrm)
                # ||lam s1 + mu s2||^2 - q(lam x + mu r), q with the shared-feature cross term
                pair2 = (lam * lam * (R[r1, d + 2] - R[r1, d + 1])
                         + mu * mu * (R[r2, d + 2] - R[r2, d + 1])
                         + 2.0 * lam * mu * (dot - cq))
                ln = lam * R[r1, d] + mu * R[r2, d]
                fv = w0[0] + ln + 0.5 * pair2
                ym = lam * y[r1] + mu * y[r2]
                if criterion == 1:
                    sal = loss_value(fv, ym, loss_id)
                else:
                    sal = loss_deriv(fv, ym, loss_id) * (ln + pair2)
                if best_r < 0 or sal > best:
                    best = sal
                    best_r = r2
                    best_lam = lam
            _table_clear(indices, a1, e1, keys, bits)
            partners[i] = best_r
            lams[i] = best_lam
    return partners, lams
