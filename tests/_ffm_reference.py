"""Independent float64 numpy reference of FFM (field-aware factorization machines, Juan et al.
2016), written from the paper's formula, for tests.  It does not import skfm; its losses and
dense-input helper are the DeepFM test oracle's (tests/_deepfm_reference.py), and
``tests/test_ffm.py`` checks its hand-derived gradient and saliency against central finite
differences.

Parameters: a dict with ``w0`` (float), ``w`` (n_features,), ``V`` (n_features, F, k): V[j, g]
is v_{j,g}, feature j's latent vector towards field g, and ``fields`` (n_features,) with labels
0 .. F - 1.  For one row x:

    f(x) = w0 + sum_j w_j x_j + sum_{i<j} <v_{i,f_j}, v_{j,f_i}> x_i x_j.
"""
import numpy as np

import _deepfm_reference as dref

loss_values = dref.loss_values
loss_derivs = dref.loss_derivs
present_features = dref.present_features


def random_params(rng, n_features, k, fields, scale=0.5):
    """Random FFM parameters: w0, w ~ N(0, scale^2), V ~ N(0, scale^2)."""
    rng = np.random.default_rng(rng)
    fields = np.asarray(fields)
    F = int(fields.max()) + 1
    return {"w0": float(rng.normal(0.0, scale)), "w": rng.normal(0.0, scale, n_features),
            "V": rng.normal(0.0, scale, (n_features, F, k)), "fields": fields.copy()}


def copy_params(params):
    return {key: (val.copy() if isinstance(val, np.ndarray) else val)
            for key, val in params.items()}


def parts(params, X):
    """(lin, pair) of every row, each (B,): lin = sum_j w_j x_j, pair = sum over the pairs of
    nonzeros i < j of <V[i, f_j], V[j, f_i]> x_i x_j, by an explicit double loop."""
    X = dref._dense(X)
    V, fl = params["V"], params["fields"]
    lin = X @ params["w"]
    pair = np.zeros(X.shape[0])
    for b in range(X.shape[0]):
        nz = np.flatnonzero(X[b])
        for a, i in enumerate(nz):
            for j in nz[a + 1:]:
                pair[b] += float(np.dot(V[i, fl[j]], V[j, fl[i]])) * X[b, i] * X[b, j]
    return lin, pair


def forward(params, X):
    """f(x_b) for every row of X, (B,)."""
    lin, pair = parts(params, X)
    return params["w0"] + lin + pair


def batch_objective(params, X, y, sw, loss, alpha):
    """Obj = (1/B) sum_b sw_b l(f_b, y_b) + (alpha/2) sum_{j present} (w_j^2 + ||V_j||^2)."""
    X = dref._dense(X)
    f = forward(params, X)
    data = np.sum(np.asarray(sw, dtype=np.float64) * loss_values(f, y, loss)) / X.shape[0]
    pres = present_features(X)
    reg = 0.5 * alpha * (np.sum(params["w"][pres] ** 2) + np.sum(params["V"][pres] ** 2))
    return float(data + reg)


def batch_gradient(params, X, y, sw, loss, alpha):
    """dObj/d(w0, w, V) as a dict of the params' shapes, derived by hand: with
    G_b = sw_b / B l'(f_b), dObj/dw_j = sum_b G_b x_bj (+ alpha w_j) and, for each pair i < j of
    a row, <V[i, f_j], V[j, f_i]> x_i x_j contributes G_b x_i x_j V[j, f_i] to dObj/dV[i, f_j]
    and G_b x_i x_j V[i, f_j] to dObj/dV[j, f_i]; alpha on the present features only."""
    X = dref._dense(X)
    B = X.shape[0]
    V, fl = params["V"], params["fields"]
    G = np.asarray(sw, dtype=np.float64) * loss_derivs(forward(params, X), y, loss) / B
    gV = np.zeros_like(V)
    for b in range(B):
        nz = np.flatnonzero(X[b])
        for a, i in enumerate(nz):
            for j in nz[a + 1:]:
                c = G[b] * X[b, i] * X[b, j]
                gV[i, fl[j]] += c * V[j, fl[i]]
                gV[j, fl[i]] += c * V[i, fl[j]]
    pres = present_features(X)
    gw = X.T @ G
    gw[pres] += alpha * params["w"][pres]
    gV[pres] += alpha * V[pres]
    return {"w0": float(G.sum()), "w": gw, "V": gV}


def saliency(params, X, y, loss):
    """S(x, y) = sum_j x_j dl/dx_j = l'(f) (lin + 2 pair): the pair term is homogeneous of
    degree 2 in x."""
    lin, pair = parts(params, X)
    return loss_derivs(params["w0"] + lin + pair, y, loss) * (lin + 2.0 * pair)
