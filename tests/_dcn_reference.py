"""Independent float64 numpy reference of DCN (Deep & Cross Network, Wang et al. 2017), written
from the formulas of torch_ref.DCN, for tests.  It does not import skfm; its tower (z_0 = x0 up
to z_L, batch norm, dropout masks) is the DeepFM test oracle's (tests/_deepfm_reference.py,
itself checked against finite differences), and ``tests/test_dcn.py`` checks this module
against central finite differences too.

Parameters: the DeepFM reference's dict without its FM pair term (``w0``, ``w``, ``V``,
``fields``, ``n_fields``, ``Ws``, ``bs``, ``h`` = o_deep, ``activation``, ``batch_norm``,
``gammas``, ``betas``, ``bn_mean``, ``bn_var``) plus the cross network: ``cs`` and ``ds`` (lists
of K vectors of length n_0 = F d) and ``o_cross`` (n_0,).  For one row x:

* x0 = the field embeddings (entry f d + k = sum_{j : fields[j] == f} x_j V[j, k]);
* x_{l+1} = x0 (x_l . cs[l]) + ds[l] + x_l for l = 0 .. K - 1 (x_0 = x0);
* z_L = the tower of x0;
* f(x) = w0 + sum_j w_j x_j + o_cross . x_K + h . z_L.
"""
import numpy as np

import _deepfm_reference as dref

loss_values = dref.loss_values
loss_derivs = dref.loss_derivs


def random_params(rng, n_features, d, fields, hidden, n_cross, activation="relu",
                  batch_norm=False, scale=0.3):
    """Random DCN parameters: the DeepFM reference's, plus cs ~ N(0, scale^2 / n_0) (so that
    deep cross stacks stay of order one), ds ~ N(0, scale^2), o_cross ~ N(0, 1)."""
    rng = np.random.default_rng(rng)
    p = dref.random_params(rng, n_features, d, fields, hidden, activation, batch_norm, scale)
    n0 = p["n_fields"] * d
    p["cs"] = [rng.normal(0.0, scale / np.sqrt(n0), n0) for _ in range(n_cross)]
    p["ds"] = [rng.normal(0.0, scale, n0) for _ in range(n_cross)]
    p["o_cross"] = rng.normal(0.0, 1.0, n0)
    return p


def forward_cache(params, X, train=False, masks=None):
    """The DeepFM oracle's tower cache plus ``xs`` (x_0 .. x_K, each (B, n_0)), ``lin`` (B,)
    and ``f`` (B,)."""
    c = dref.forward_cache(params, X, train=train, masks=masks)
    X = c["X"]
    x0 = c["z"][0]
    xs = [x0]
    for cl, dl in zip(params["cs"], params["ds"]):
        xs.append(x0 * (xs[-1] @ cl)[:, None] + dl + xs[-1])
    c["xs"] = xs
    c["lin"] = X @ params["w"]
    c["f"] = params["w0"] + c["lin"] + xs[-1] @ params["o_cross"] + c["z"][-1] @ params["h"]
    return c


def forward(params, X, train=False, masks=None):
    """f(x_b) for every row of X, (B,) (``train``: BN batch statistics; ``masks``: dropout)."""
    return forward_cache(params, X, train=train, masks=masks)["f"]


def batch_objective(params, X, y, sw, loss, alpha, train=False, masks=None):
    """(1/B) sum_b sw_b l(f_b, y_b) + (alpha/2) sum_{j present} (w_j^2 + ||v_j||^2)."""
    X = dref._dense(X)
    f = forward(params, X, train=train, masks=masks)
    data = np.sum(np.asarray(sw, float) * loss_values(f, y, loss)) / X.shape[0]
    pres = dref.present_features(X)
    return float(data + 0.5 * alpha * (np.sum(params["w"][pres] ** 2)
                                       + np.sum(params["V"][pres] ** 2)))


def _backward(params, c, g, train):
    """dObj/dx0 (B, n_0) and the dense gradients, given g = dObj/df (B,)."""
    dx0, grads = dref._tower_backward(params, c, g, train)
    xs = c["xs"]
    x0 = xs[0]
    K = len(params["cs"])
    grads["o_cross"] = xs[K].T @ g
    grads["cs"] = [None] * K
    grads["ds"] = [None] * K
    gx = g[:, None] * params["o_cross"][None, :]             # dObj/dx_K
    for l in reversed(range(K)):
        # x_{l+1} = x0 s_l + d_l + x_l,  s_l = x_l . c_l
        s = xs[l] @ params["cs"][l]
        dsl = np.sum(gx * x0, axis=1)                         # dObj/ds_l
        grads["cs"][l] = xs[l].T @ dsl
        grads["ds"][l] = gx.sum(axis=0)
        dx0 = dx0 + gx * s[:, None]
        gx = gx + dsl[:, None] * params["cs"][l][None, :]    # dObj/dx_l
    return dx0 + gx, grads


def batch_gradient(params, X, y, sw, loss, alpha, train=False, masks=None):
    """Gradient of batch_objective: "w0", "w", "V", the tower's "Ws", "bs", "gammas", "betas",
    "h", and "cs", "ds", "o_cross"."""
    X = dref._dense(X)
    B, n = X.shape
    d = params["V"].shape[1]
    c = forward_cache(params, X, train=train, masks=masks)
    g = np.asarray(sw, float) * loss_derivs(c["f"], y, loss) / B
    dx0, grads = _backward(params, c, g, train)
    gV = np.zeros((n, d))
    for b in range(B):
        for j in np.flatnonzero(X[b]):
            f = params["fields"][j]
            gV[j] += X[b, j] * dx0[b, f * d:(f + 1) * d]
    gw = X.T @ g
    pres = dref.present_features(X)
    gw[pres] += alpha * params["w"][pres]
    gV[pres] += alpha * params["V"][pres]
    grads.update(w0=float(g.sum()), w=gw, V=gV)
    return grads


def saliency(params, X, y, loss):
    """S(x_b, y_b) = sum_j x_j dL/dx_j (SMFM Eq. 5) in inference mode, from dL/dx_j = l'(f)
    w_j + (dL/dx0)[block f_j] . v_j."""
    X = dref._dense(X)
    d = params["V"].shape[1]
    c = forward_cache(params, X)
    lp = loss_derivs(c["f"], y, loss)
    dx0, _ = _backward(params, c, lp, False)
    G = np.zeros_like(X)
    for j in range(X.shape[1]):
        f = params["fields"][j]
        G[:, j] = lp * params["w"][j] + dx0[:, f * d:(f + 1) * d] @ params["V"][j]
    return np.sum(X * G, axis=1)
