"""Field-aware factorization machine kernels (FFM, Juan et al. 2016).

Parameters: ``w0`` (float64, shape (1,)) and the feature table ``T`` of shape
``(n_features, 1 + F k)`` (as FM's, lazily updated): ``T[j, 0]`` is the linear weight w_j and
``T[j, 1 + g k:1 + (g + 1) k]`` the latent vector v_{j,g} of feature j towards field g.  With
``fields`` (n_features,) int32, each column's field f_j in 0 .. F - 1, for a row with nonzeros
(j, x_j) (pairs i < j in storage order, i.e. ascending feature ids):

    f(x) = w0 + sum_j w_j x_j + sum_{i<j} <v_{i,f_j}, v_{j,f_i}> x_i x_j
    df/dw_i = x_i,   df/dv_{i,g} = x_i sum_{j != i, f_j = g} v_{j,f_i} x_j

O(m^2 k) per row of m nonzeros.  The pair term is homogeneous of degree 2 in x, so the saliency
(SMFM Eq. 5) is S(x, y) = sum_j x_j dL/dx_j = L'(f) (sum_j w_j x_j + 2 pair).

Training runs on the minibatch skeleton (skfm._kernels.skeleton) with AFM's per-nonzero
gradient buffers: phase 1 (``train_batch``) the rows in parallel, each row writing the gradient
rows (dObj/dw_j, dObj/dv_{j,.}) of its own nonzeros; phase 2 each unique feature of the batch sums
its nonzeros' rows in row order (afm.feature_grad, the transposition carrying the nonzero
positions).  The pair term is a quadratic form in x: SMFM's candidate lam x + mu r has pair =
lam^2 pair(x) + mu^2 pair(r) + lam mu cross(x, r), which select_partners scores without building
the candidate.  Every sum has one owner and a fixed order, so results do not depend on the
number of threads.
"""
from collections import namedtuple

import numpy as np
from numba import njit, prange

from . import FASTMATH, skeleton
from .afm import _feature_grad, _values, _workspace
from .fm import _CHUNK, _batch_sums
from .losses import loss_deriv, loss_value
from .mixup import draw_one

#: the model's arrays and options, the ``spec`` of the skeleton's hooks: each column's field and
#: k, the latent vectors' length
FFMSpec = namedtuple("FFMSpec", "fields k")


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _row_forward(indices, data, a, e, T, fields, k):
    """(sum_j w_j x_j, sum_{i<j} <v_{i,f_j}, v_{j,f_i}> x_i x_j) of the row stored at [a, e),
    summed in float64 in storage order."""
    lin = 0.0
    pair = 0.0
    for p in range(a, e):
        i = indices[p]
        xi = data[p]
        lin += T[i, 0] * xi
        oi = 1 + fields[i] * k
        for q in range(p + 1, e):
            j = indices[q]
            oj = 1 + fields[j] * k
            acc = 0.0
            for c in range(k):
                acc += T[i, oj + c] * T[j, oi + c]
            pair += acc * xi * data[q]
    return lin, pair


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def ffm_rows(indptr, indices, data, y, w0, T, fields, k, loss_id, saliency, out):
    """out[r] = f(x_r), or with ``saliency`` S(x_r, y_r) = L'(f) (lin + 2 pair), for every row
    (chunks of _CHUNK rows in parallel)."""
    n = indptr.shape[0] - 1
    for ch in prange((n + _CHUNK - 1) // _CHUNK):
        for r in range(ch * _CHUNK, min(n, (ch + 1) * _CHUNK)):
            lin, pair = _row_forward(indices, data, indptr[r], indptr[r + 1], T, fields, k)
            f = w0[0] + lin + pair
            if saliency:
                out[r] = loss_deriv(f, y[r], loss_id) * (lin + 2.0 * pair)
            else:
                out[r] = f


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def _phase1(indptr, indices, data, y, sw, start, B, w0, T, fields, k, loss_id, G, L, GN, base):
    """Rows [start, start + B) in parallel: G[b] = sw_b / B L'(f_b), L[b] = sw_b L(f_b), and
    GN[p - base] = (g_b x_i, [g_b x_i sum_{j != i, f_j = g} v_{j,f_i} x_j]_g) for each nonzero p
    (feature i) of row b, g_b = G[b]."""
    inv_b = 1.0 / B
    for b in prange(B):
        r = start + b
        a = indptr[r]
        e = indptr[r + 1]
        lin, pair = _row_forward(indices, data, a, e, T, fields, k)
        f = w0[0] + lin + pair
        L[b] = sw[r] * loss_value(f, y[r], loss_id)
        g = sw[r] * inv_b * loss_deriv(f, y[r], loss_id)
        G[b] = g
        for p in range(a, e):
            gr = GN[p - base]
            gr[:] = 0.0
            gr[0] = g * data[p]
        # each pair once, into both its nonzeros' rows: a row's terms still arrive in ascending
        # order of the other nonzero (those before it from the outer loop, then its own)
        for p in range(a, e):
            i = indices[p]
            gi = g * data[p]
            oi = 1 + fields[i] * k
            gp = GN[p - base]
            for q in range(p + 1, e):
                j = indices[q]
                cx = gi * data[q]
                oj = 1 + fields[j] * k
                gq = GN[q - base]
                for c in range(k):
                    gp[oj + c] += cx * T[j, oi + c]
                    gq[oi + c] += cx * T[i, oj + c]


@njit(cache=True, fastmath=False)
def train_batch(ws, indptr, indices, data, y, sw, start, B, w0, T, fields, k, loss_id):
    """Phase 1 of rows [start, start + B): fills ws (afm.workspace_for's (G, L, GN, HG, base));
    returns (sum_b sw_b l(f_b, y_b), dObj/dw0 = sum_b G_b), both summed in row order."""
    G, L, GN, _HG, base = ws
    base[0] = indptr[start]
    _phase1(indptr, indices, data, y, sw, start, B, w0, T, fields, k, loss_id, G, L, GN,
            base[0])
    return _batch_sums(L, G, B)


# ------------------------------------------------------------------------- skeleton hooks
def _forward_backward(spec, ws, indptr, indices, data, y, sw, start, B, w0, T, H, loss_id, step,
                      GH):
    return train_batch(ws, indptr, indices, data, y, sw, start, B, w0, T, spec.fields, spec.k,
                       loss_id)


# the workspace, the nonzero positions and the per-feature sum of the nonzeros' gradient rows
# are AFM's (its H, here empty, gives a workspace buffer of no columns)
skeleton.register(FFMSpec, workspace=_workspace, values=_values,
                  forward_backward=_forward_backward, feature_grad=_feature_grad)


# ---------------------------------------------------------------------- saliency-guided mixup
@njit(cache=True, fastmath=FASTMATH, parallel=True)
def row_stats(indptr, indices, data, T, fields, k):
    """R (n, 2) float64: R[r] = (lin, pair) of every row (_row_forward)."""
    n = indptr.shape[0] - 1
    R = np.empty((n, 2))
    for ch in prange((n + _CHUNK - 1) // _CHUNK):
        for r in range(ch * _CHUNK, min(n, (ch + 1) * _CHUNK)):
            R[r, 0], R[r, 1] = _row_forward(indices, data, indptr[r], indptr[r + 1], T, fields,
                                            k)
    return R


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _project(indices, data, a, e, T, fields, F, k, P):
    """P (F, F k) = the row [a, e) seen from each field: P[f, g k:(g + 1) k] = sum over its
    nonzeros i of field g of x_i v_{i,f}.  O(m F k)."""
    P[:, :] = 0.0
    for p in range(a, e):
        i = indices[p]
        xi = data[p]
        og = fields[i] * k
        for f in range(F):
            for c in range(k):
                P[f, og + c] += xi * T[i, 1 + f * k + c]


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _cross(indices, data, a1, e1, a2, e2, T, fields, k, P):
    """sum over the nonzeros i of row [a1, e1) and j of row [a2, e2) with i != j (a feature
    the rows share does not pair with itself) of <v_{i,f_j}, v_{j,f_i}> x_i r_j, from the
    first row's projection P (_project): sum_j r_j <P[f_j], T[j, 1:]> (one contiguous dot of
    F k per nonzero of the second row), less the shared features' i == j terms (the two
    sorted index lists merged).  O(m_r F k + m_x + m_r)."""
    Fk = P.shape[1]
    acc = 0.0
    for q in range(a2, e2 if Fk > 0 else a2):  # no factors (k = 0): no pair term
        j = indices[q]
        Pf = P[fields[j]]
        dot = Pf[0] * 0  # in P's (the model's) precision: a float32 model's dot stays float32
        for c in range(Fk):
            dot += Pf[c] * T[j, 1 + c]
        acc += dot * data[q]
    p = a1
    q = a2
    while p < e1 and q < e2:
        i = indices[p]
        j = indices[q]
        if i < j:
            p += 1
        elif j < i:
            q += 1
        else:
            o = 1 + fields[i] * k
            self_dot = 0.0
            for c in range(k):
                self_dot += T[i, o + c] * T[i, o + c]
            acc -= self_dot * data[p] * data[q]
            p += 1
            q += 1
    return acc


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _cross_pairs(indices, data, a1, e1, a2, e2, T, fields, k):
    """cross(x, r) as _cross computes it, pair by pair: O(m_x m_r k), cheaper than the
    projection when the first row has fewer nonzeros than there are fields."""
    acc = 0.0
    for p in range(a1, e1):
        i = indices[p]
        oi = 1 + fields[i] * k
        row = 0.0
        for q in range(a2, e2):
            j = indices[q]
            if j != i:
                oj = 1 + fields[j] * k
                dot = 0.0
                for c in range(k):
                    dot += T[i, oj + c] * T[j, oi + c]
                row += dot * data[q]
        acc += row * data[p]
    return acc


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def select_partners(indptr, indices, data, y, parents, p, seed, epoch, a, b, w0, T, fields, k,
                    loss_id, R, criterion):
    """Alg. 2 for FFM without materialising the candidates: for each first parent i draw p
    candidates (stream (seed, epoch, i p + k), mixup.draw_one) and keep the one whose mixed row
    c = lam x + mu r has the largest saliency (``criterion`` 0) or loss (1: Maxup); p == 1 is
    Alg. 1.  The pair term is a quadratic form, so pair(c) = lam^2 pair(x) + mu^2 pair(r) +
    lam mu cross(x, r) (_cross: O(m_r F k) from the first parent's projection, built once for
    its p candidates by _project in O(m_x F k), when it has at least F nonzeros; else
    _cross_pairs, O(m_x m_r k)), lin(c) = lam lin(x) + mu lin(r), from the rows'
    ``R`` (row_stats).  The first of equal scores wins (as argmax).  Returns (partners,
    lams)."""
    m = parents.shape[0]
    n = indptr.shape[0] - 1
    F = (T.shape[1] - 1) // k if k > 0 else 0
    partners = np.empty(m, np.int64)
    lams = np.empty(m)
    for ch in prange((m + _CHUNK - 1) // _CHUNK):
        st = np.zeros(1, np.uint64)
        P = np.empty((F, F * k), T.dtype)
        for i in range(ch * _CHUNK, min(m, (ch + 1) * _CHUNK)):
            if p == 1:
                partners[i], lams[i] = draw_one(seed, epoch, i, n, a, b, st)
                continue
            r1 = parents[i]
            # the projection costs O(F k) per partner nonzero, the pairs O(m_x k): project
            # when the first parent has at least as many nonzeros as there are fields
            proj = indptr[r1 + 1] - indptr[r1] >= F
            if proj:
                _project(indices, data, indptr[r1], indptr[r1 + 1], T, fields, F, k, P)
            best = -np.inf
            best_r = -1
            best_lam = 1.0
            for kk in range(p):
                r2, lam = draw_one(seed, epoch, i * p + kk, n, a, b, st)
                mu = 1.0 - lam
                if proj:
                    cross = _cross(indices, data, indptr[r1], indptr[r1 + 1], indptr[r2],
                                   indptr[r2 + 1], T, fields, k, P)
                else:
                    cross = _cross_pairs(indices, data, indptr[r1], indptr[r1 + 1],
                                         indptr[r2], indptr[r2 + 1], T, fields, k)
                pair = lam * lam * R[r1, 1] + mu * mu * R[r2, 1] + lam * mu * cross
                ln = lam * R[r1, 0] + mu * R[r2, 0]
                fv = w0[0] + ln + pair
                ym = lam * y[r1] + mu * y[r2]
                if criterion == 1:
                    sal = loss_value(fv, ym, loss_id)
                else:
                    sal = loss_deriv(fv, ym, loss_id) * (ln + 2.0 * pair)
                if best_r < 0 or sal > best:
                    best = sal
                    best_r = r2
                    best_lam = lam
            partners[i] = best_r
            lams[i] = best_lam
    return partners, lams
