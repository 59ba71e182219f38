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
positions).  Every sum has one owner and a fixed order, so results do not depend on the number
of threads.
"""
from collections import namedtuple

from numba import njit, prange

from . import FASTMATH, skeleton
from .afm import _feature_grad, _values, _workspace
from .fm import _CHUNK, _batch_sums
from .losses import loss_deriv, loss_value

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
            i = indices[p]
            gi = g * data[p]
            oi = 1 + fields[i] * k
            gr = GN[p - base]
            gr[:] = 0.0
            gr[0] = gi
            for q in range(a, e):
                if q != p:
                    j = indices[q]
                    cx = gi * data[q]
                    oj = 1 + fields[j] * k
                    for c in range(k):
                        gr[oj + c] += cx * T[j, oi + c]


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
