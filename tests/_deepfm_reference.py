"""Independent float64 numpy reference of DeepFM (Guo et al., 2017) with shared embeddings.

This module is a test oracle: it is written for readability, not speed (inputs are tiny), and
it does not import skfm. ``tests/test_deepfm_reference.py`` validates it against central finite
differences.

Parameters live in a dict ``params``:

* ``w0`` (float), ``w`` (n_features,), ``V`` (n_features, d);
* ``fields`` (n_features,) int field label of every feature, in ``0..F-1``; ``n_fields`` = F
  (optional, defaults to ``fields.max() + 1``; a field may have no feature at all);
* the tower: ``Ws`` list of L matrices, ``Ws[l-1]`` of shape (n_l, n_{l-1}) with
  n_0 = F * d; ``bs`` list of L vectors (n_l,); ``h`` output weights (n_L,), with n_L = F * d
  when L == 0; ``activation`` in {"relu", "tanh", "logistic", "identity"};
* ``batch_norm`` (bool) with ``gammas``, ``betas`` (lists of (n_l,)) and the running
  statistics ``bn_mean``, ``bn_var`` (lists of (n_l,)); empty lists without batch norm.

For one row x (dense, length n_features):

* fm(x) = w0 + sum_j w_j x_j + sum_{i<j} <v_i, v_j> x_i x_j (over pairs of nonzero features);
* e_f = sum_{j : fields[j] == f} x_j v_j, z_0 = [e_0, ..., e_{F-1}] (entry f * d + k);
* a_l = W_l z_{l-1} + b_l; with batch norm u_l = gamma_l (a_l - mu_l) / sqrt(var_l + 1e-5)
  + beta_l (batch mean / biased batch variance over the B rows in training mode, running
  statistics in inference mode), else u_l = a_l; z_l = act(u_l) * m_l (dropout mask m_l, all
  ones when no mask is given);
* f(x) = fm(x) + h . z_L.

Losses: "logistic" softplus(f) - y f (soft label y in [0, 1]); "squared" 0.5 (f - y)^2.
Batch objective: Obj = (1/B) sum_b sw_b l(f_b, y_b)
+ (alpha/2) sum_{j present in the batch} (w_j^2 + ||v_j||^2).
"""
import copy

import numpy as np
import scipy.sparse as sp

BN_EPS = 1e-5
ACTIVATIONS = ("relu", "tanh", "logistic", "identity")
LOSSES = ("logistic", "squared")


# ------------------------------------------------------------------------------ helpers
def _dense(X):
    """X as a float64 (B, n_features) ndarray (scipy sparse matrices are densified)."""
    if sp.issparse(X):
        X = X.toarray()
    X = np.array(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError("X must be 2-d (B, n_features)")
    return X


def n_fields(params):
    """F, the number of fields: ``params["n_fields"]`` if set, else ``max(fields) + 1``."""
    if params.get("n_fields") is not None:
        return int(params["n_fields"])
    return int(np.max(params["fields"])) + 1


def n_layers(params):
    """L, the number of hidden layers of the tower."""
    return len(params["Ws"])


def _sigmoid(t):
    """The logistic function 1 / (1 + exp(-t)), computed without overflow."""
    t = np.asarray(t, dtype=np.float64)
    out = np.empty_like(t)
    pos = t >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-t[pos]))
    e = np.exp(t[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def activate(u, activation):
    """act(u) elementwise."""
    if activation == "relu":
        return np.maximum(u, 0.0)
    if activation == "tanh":
        return np.tanh(u)
    if activation == "logistic":
        return _sigmoid(u)
    if activation == "identity":
        return np.array(u, dtype=np.float64)
    raise ValueError(f"unknown activation {activation!r}")


def activate_deriv(u, activation):
    """act'(u) elementwise (relu: 1 where u > 0, else 0)."""
    if activation == "relu":
        return (u > 0).astype(np.float64)
    if activation == "tanh":
        return 1.0 - np.tanh(u) ** 2
    if activation == "logistic":
        s = _sigmoid(u)
        return s * (1.0 - s)
    if activation == "identity":
        return np.ones_like(u, dtype=np.float64)
    raise ValueError(f"unknown activation {activation!r}")


# ------------------------------------------------------------------------------ parameters
def random_params(rng, n_features, d, fields, hidden, activation="relu", batch_norm=False,
                  scale=0.3):
    """Random DeepFM parameters (see the module docstring for the layout).

    ``rng``: a numpy Generator or a seed; ``fields``: the (n_features,) int field labels
    (F = max(fields) + 1); ``hidden``: the sizes (n_1, ..., n_L) of the hidden layers (may be
    empty). Every entry is drawn at a non-trivial scale so that every term of f matters:
    w0, w, V, Ws, bs ~ N(0, scale^2), h ~ N(0, 1); with batch norm gammas ~ 1 + N(0, scale^2),
    betas and bn_mean ~ N(0, scale^2), bn_var ~ U(0.5, 1.5) (positive).
    """
    rng = np.random.default_rng(rng)
    fields = np.asarray(fields, dtype=np.int64)
    if fields.shape != (n_features,):
        raise ValueError("fields must have shape (n_features,)")
    if fields.min() < 0:
        raise ValueError("field labels must be >= 0")
    F = int(fields.max()) + 1
    sizes = [F * d] + [int(n) for n in hidden]
    L = len(sizes) - 1
    params = {
        "w0": float(rng.normal(0.0, scale)),
        "w": rng.normal(0.0, scale, n_features),
        "V": rng.normal(0.0, scale, (n_features, d)),
        "fields": fields.copy(),
        "n_fields": F,
        "activation": activation,
        "batch_norm": bool(batch_norm),
        "Ws": [rng.normal(0.0, scale, (sizes[l + 1], sizes[l])) for l in range(L)],
        "bs": [rng.normal(0.0, scale, sizes[l + 1]) for l in range(L)],
        "gammas": [],
        "betas": [],
        "bn_mean": [],
        "bn_var": [],
    }
    if batch_norm:
        for l in range(L):
            n = sizes[l + 1]
            params["gammas"].append(1.0 + rng.normal(0.0, scale, n))
            params["betas"].append(rng.normal(0.0, scale, n))
            params["bn_mean"].append(rng.normal(0.0, scale, n))
            params["bn_var"].append(rng.uniform(0.5, 1.5, n))
    params["h"] = rng.normal(0.0, 1.0, sizes[-1])
    return params


def copy_params(params):
    """A deep copy of params (arrays and lists copied)."""
    return copy.deepcopy(params)


# ------------------------------------------------------------------------------ forward
def fm_part(params, X):
    """fm(x_b) = w0 + sum_j w_j x_j + sum_{i<j} <v_i, v_j> x_i x_j for every row, (B,).

    Naive: an explicit double loop over the pairs of nonzero features of each row."""
    X = _dense(X)
    w0, w, V = params["w0"], params["w"], params["V"]
    out = np.empty(X.shape[0])
    for b in range(X.shape[0]):
        x = X[b]
        nz = np.flatnonzero(x)
        total = float(w0)
        for j in nz:
            total += w[j] * x[j]
        for p in range(len(nz)):
            for q in range(p + 1, len(nz)):
                i, j = nz[p], nz[q]
                total += np.dot(V[i], V[j]) * x[i] * x[j]
        out[b] = total
    return out


def field_embeddings(params, X):
    """z_0 of every row, (B, F*d): entry f*d + k is sum_{j : fields[j] == f} x_j V[j, k]."""
    X = _dense(X)
    V, fields = params["V"], params["fields"]
    d = V.shape[1]
    F = n_fields(params)
    Z = np.zeros((X.shape[0], F * d))
    for b in range(X.shape[0]):
        for j in np.flatnonzero(X[b]):
            f = fields[j]
            Z[b, f * d:(f + 1) * d] += X[b, j] * V[j]
    return Z


def _check_masks(params, B, masks):
    """The dropout masks as a list of L (B, n_l) arrays (all ones when masks is None)."""
    sizes = [W.shape[0] for W in params["Ws"]]
    if masks is None:
        return [np.ones((B, n)) for n in sizes]
    if len(masks) != len(sizes):
        raise ValueError("masks must hold one (B, n_l) array per hidden layer")
    out = []
    for m, n in zip(masks, sizes):
        m = np.asarray(m, dtype=np.float64)
        if m.shape != (B, n):
            raise ValueError(f"mask of shape {m.shape}, expected {(B, n)}")
        out.append(m)
    return out


def forward_cache(params, X, train=False, masks=None):
    """Forward pass keeping every intermediate, for backpropagation.

    Returns a dict with ``X`` (dense), ``fm`` (B,), ``f`` (B,), and per hidden layer l
    (lists of length L): ``a`` = W z + b, ``mu``, ``var`` (the statistics used by batch norm:
    batch statistics when train, running ones otherwise; None without batch norm),
    ``a_hat`` = (a - mu) / sqrt(var + eps) (None without batch norm), ``u`` the input of the
    activation, ``m`` the mask; ``z`` has L + 1 entries z_0 .. z_L.
    """
    X = _dense(X)
    B = X.shape[0]
    L = n_layers(params)
    act = params["activation"]
    bn = bool(params.get("batch_norm", False))
    masks = _check_masks(params, B, masks)
    z = field_embeddings(params, X)
    if L > 0 and params["Ws"][0].shape[1] != z.shape[1]:
        raise ValueError("Ws[0] must have F*d columns")
    c = {"X": X, "fm": fm_part(params, X), "z": [z], "a": [], "mu": [], "var": [],
         "a_hat": [], "u": [], "m": masks}
    for l in range(L):
        a = z @ params["Ws"][l].T + params["bs"][l]          # (B, n_l)
        if bn:
            if train:
                mu = a.mean(axis=0)
                var = ((a - mu) ** 2).mean(axis=0)            # biased batch variance
            else:
                mu = np.asarray(params["bn_mean"][l], dtype=np.float64)
                var = np.asarray(params["bn_var"][l], dtype=np.float64)
            a_hat = (a - mu) / np.sqrt(var + BN_EPS)
            u = params["gammas"][l] * a_hat + params["betas"][l]
        else:
            mu = var = a_hat = None
            u = a
        z = activate(u, act) * masks[l]
        for key, val in (("a", a), ("mu", mu), ("var", var), ("a_hat", a_hat), ("u", u)):
            c[key].append(val)
        c["z"].append(z)
    h = np.asarray(params["h"], dtype=np.float64)
    if h.shape != (z.shape[1],):
        raise ValueError(f"h must have length {z.shape[1]}")
    c["f"] = c["fm"] + z @ h
    return c


def forward(params, X, train=False, masks=None):
    """f(x_b) = fm(x_b) + h . z_L(x_b) for every row of X, (B,).

    ``train``: batch norm uses the batch statistics of the B rows (else the running ones);
    ``masks``: None or L arrays (B, n_l) multiplying the activations."""
    return forward_cache(params, X, train=train, masks=masks)["f"]


# ------------------------------------------------------------------------------ losses
def loss_values(f, y, loss):
    """l(f, y) elementwise: "logistic" softplus(f) - y f (stable), "squared" 0.5 (f - y)^2."""
    f = np.asarray(f, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if loss == "logistic":
        softplus = np.maximum(f, 0.0) + np.log1p(np.exp(-np.abs(f)))
        return softplus - y * f
    if loss == "squared":
        return 0.5 * (f - y) ** 2
    raise ValueError(f"unknown loss {loss!r}")


def loss_derivs(f, y, loss):
    """dl/df elementwise: "logistic" sigmoid(f) - y, "squared" f - y."""
    f = np.asarray(f, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if loss == "logistic":
        return _sigmoid(f) - y
    if loss == "squared":
        return f - y
    raise ValueError(f"unknown loss {loss!r}")


def present_features(X):
    """Boolean (n_features,): the features nonzero in at least one row of X."""
    return np.any(_dense(X) != 0, axis=0)


def batch_objective(params, X, y, sw, loss, alpha, train=False, masks=None):
    """Obj = (1/B) sum_b sw_b l(f_b, y_b) + (alpha/2) sum_{j present} (w_j^2 + ||v_j||^2)."""
    X = _dense(X)
    B = X.shape[0]
    f = forward(params, X, train=train, masks=masks)
    data = np.sum(np.asarray(sw, dtype=np.float64) * loss_values(f, y, loss)) / B
    pres = present_features(X)
    reg = 0.5 * alpha * (np.sum(params["w"][pres] ** 2) + np.sum(params["V"][pres] ** 2))
    return float(data + reg)


# ------------------------------------------------------------------------------ backward
def _tower_backward(params, c, g, train):
    """Backpropagate dObj/df_b = g_b (B,) through h and the tower of cache c.

    Returns (dz0, grads) with dz0 = dObj/dz_0 (B, F*d) and grads holding "h", "Ws", "bs",
    "gammas", "betas" (the last two empty without batch norm)."""
    L = n_layers(params)
    act = params["activation"]
    bn = bool(params.get("batch_norm", False))
    B = g.shape[0]
    # f_b = ... + h . z_L[b]
    grads = {"h": c["z"][L].T @ g, "Ws": [None] * L, "bs": [None] * L,
             "gammas": [None] * L if bn else [], "betas": [None] * L if bn else []}
    dz = g[:, None] * params["h"][None, :]                   # dObj/dz_L, (B, n_L)
    for l in reversed(range(L)):
        # z_l = act(u_l) * m_l
        du = dz * c["m"][l] * activate_deriv(c["u"][l], act)  # dObj/du_l
        if bn:
            # u = gamma * a_hat + beta
            grads["gammas"][l] = np.sum(du * c["a_hat"][l], axis=0)
            grads["betas"][l] = np.sum(du, axis=0)
            da_hat = du * params["gammas"][l]
            a, mu, var = c["a"][l], c["mu"][l], c["var"][l]
            s = np.sqrt(var + BN_EPS)
            if train:
                # a_hat_b = (a_b - mu) / sqrt(var + eps), with mu = mean_b a_b and
                # var = mean_b (a_b - mu)^2 both functions of every a_b of the batch.
                dvar = np.sum(da_hat * (a - mu), axis=0) * (-0.5) * (var + BN_EPS) ** -1.5
                dmu = (np.sum(-da_hat / s, axis=0)
                       + dvar * np.mean(-2.0 * (a - mu), axis=0))
                da = da_hat / s + dvar * 2.0 * (a - mu) / B + dmu / B
            else:
                da = da_hat / s                               # running statistics: constants
        else:
            da = du
        # a_l = W_l z_{l-1} + b_l
        grads["Ws"][l] = da.T @ c["z"][l]
        grads["bs"][l] = np.sum(da, axis=0)
        dz = da @ params["Ws"][l]                             # dObj/dz_{l-1}
    return dz, grads


def batch_gradient(params, X, y, sw, loss, alpha, train=False, masks=None):
    """Gradient of batch_objective with respect to the trainable parameters.

    Returns a dict: "w0" (float), "w" (n_features,), "V" (n_features, d), "Ws", "bs",
    "gammas", "betas" (lists shaped as in params; the last two empty without batch norm),
    "h" (n_L,). Hand-derived backpropagation: in training mode batch norm couples the rows
    through the batch statistics."""
    X = _dense(X)
    B, n = X.shape
    y = np.asarray(y, dtype=np.float64)
    sw = np.asarray(sw, dtype=np.float64)
    w, V, fields = params["w"], params["V"], params["fields"]
    d = V.shape[1]
    c = forward_cache(params, X, train=train, masks=masks)
    g = sw * loss_derivs(c["f"], y, loss) / B                 # dObj/df_b
    grad_w0 = float(np.sum(g))
    grad_w = np.zeros(n)
    grad_V = np.zeros((n, d))
    # FM part: linear and pairwise terms, over the pairs of nonzero features of each row.
    for b in range(B):
        x = X[b]
        nz = np.flatnonzero(x)
        for j in nz:
            grad_w[j] += g[b] * x[j]
        for p in range(len(nz)):
            for q in range(p + 1, len(nz)):
                i, j = nz[p], nz[q]
                # d/dv_i <v_i, v_j> x_i x_j = x_i x_j v_j (and symmetrically)
                grad_V[i] += g[b] * x[i] * x[j] * V[j]
                grad_V[j] += g[b] * x[i] * x[j] * V[i]
    # Tower part, then through z_0: the block of field f_j of z_0 holds x_j v_j.
    dz0, tower = _tower_backward(params, c, g, train)
    for b in range(B):
        for j in np.flatnonzero(X[b]):
            f = fields[j]
            grad_V[j] += X[b, j] * dz0[b, f * d:(f + 1) * d]
    # Regulariser on the features present in the batch.
    pres = present_features(X)
    grad_w[pres] += alpha * w[pres]
    grad_V[pres] += alpha * V[pres]
    out = {"w0": grad_w0, "w": grad_w, "V": grad_V}
    out.update(tower)
    return out


def input_gradient(params, X, y, loss):
    """dL(f(x_b), y_b)/dx_b (B, n_features), in inference mode (running BN stats, no mask).

    df/dx_j = w_j + sum_{i != j} <v_i, v_j> x_i + <dz_0 block of field f_j, v_j>, times
    dl/df (no sample weight, no 1/B, no regulariser)."""
    X = _dense(X)
    B, n = X.shape
    w, V, fields = params["w"], params["V"], params["fields"]
    d = V.shape[1]
    c = forward_cache(params, X, train=False, masks=None)
    lp = loss_derivs(c["f"], y, loss)                         # dL/df_b
    dz0, _ = _tower_backward(params, c, lp, train=False)      # dL/dz_0 (lp already folded in)
    G = np.zeros((B, n))
    for b in range(B):
        x = X[b]
        for j in range(n):
            dfm = w[j]
            for i in range(n):
                if i != j:
                    dfm += np.dot(V[i], V[j]) * x[i]
            f = fields[j]
            G[b, j] = lp[b] * dfm + np.dot(dz0[b, f * d:(f + 1) * d], V[j])
    return G


def saliency(params, X, y, loss):
    """S(x_b, y_b) = sum_j x_j dL(f(x_b), y_b)/dx_j (SMFM Eq. 5), (B,), in inference mode."""
    X = _dense(X)
    return np.sum(X * input_gradient(params, X, y, loss), axis=1)
