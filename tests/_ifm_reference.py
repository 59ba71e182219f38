"""Independent float64 numpy reference of IFM (interaction-aware factorization machines, Hong et
al. 2019, Eq. 4-6 and 9, as torch_ref's ``IFM``), written from the paper's formulas, for tests.
It does not import skfm.

Parameters: a dict with ``w0`` (float), ``w`` (n_features,), ``V`` (n_features, d), the attention
network ``W`` (t, d), ``b`` (t,), ``h`` (t,), the field factors ``U`` (n_fields, kf), ``D``
(kf, d), ``fields`` (n_features,) and ``tau``.  For one dense row x, by explicit loops over the
pairs i < j of its nonzero entries (a zero-valued entry takes part in no pair):

    e_ij = (v_i x_i) * (v_j x_j),  a'_ij = h . ReLU(W e_ij + b),  T = softmax(a' / tau),
    F_fg = D^T (U_f * U_g),
    f(x) = w0 + sum_i w_i x_i + sum_k (m * sum_{i<j} T_ij F_{f_i f_j} * e_ij)_k

with m a dropout mask of the row (ones by default).  Gradients are central finite differences
of this forward pass (``fd_grad``).
"""
import numpy as np

#: the parameter arrays, in the order flat() and unflat() lay them out
NAMES = ("w0", "w", "V", "W", "b", "h", "U", "D")


def random_params(rng, n_features, d, t, fields, kf, tau=10.0, scale=0.7):
    """Random IFM parameters of a trained-looking scale."""
    rng = np.random.default_rng(rng)
    fields = np.asarray(fields)
    nf = int(fields.max()) + 1
    return {"w0": float(rng.normal(0.0, scale)), "w": rng.normal(0.0, scale, n_features),
            "V": rng.normal(0.0, scale, (n_features, d)), "W": rng.normal(0.0, scale, (t, d)),
            "b": rng.normal(0.0, scale, t), "h": rng.normal(0.0, scale, t),
            "U": rng.normal(0.0, scale, (nf, kf)), "D": rng.normal(0.0, scale, (kf, d)),
            "fields": fields.copy(), "tau": float(tau)}


def field_aspect(U, D, f, g):
    """F_fg = D^T (U_f * U_g), a d-vector, by an explicit sum over the field factors."""
    out = np.zeros(D.shape[1])
    for c in range(D.shape[0]):
        out += U[f, c] * U[g, c] * D[c]
    return out


def pair_scores(prm, x):
    """(pairs [(i, j)], T (P,), pooled-pair vectors [F_{f_i f_j} * e_ij]) of one dense row."""
    nz = [i for i in range(len(x)) if x[i] != 0.0]
    pairs, logits, vecs = [], [], []
    for a in range(len(nz)):
        for c in range(a + 1, len(nz)):
            i, j = nz[a], nz[c]
            e = (prm["V"][i] * x[i]) * (prm["V"][j] * x[j])
            z = prm["W"] @ e + prm["b"]
            logits.append(float(prm["h"] @ np.maximum(z, 0.0)) / prm["tau"])
            pairs.append((i, j))
            vecs.append(field_aspect(prm["U"], prm["D"], prm["fields"][i], prm["fields"][j]) * e)
    if not pairs:
        return pairs, np.empty(0), vecs
    logits = np.array(logits)
    ex = np.exp(logits - logits.max())
    return pairs, ex / ex.sum(), vecs


def forward_row(prm, x, mask=None):
    f = prm["w0"] + float(np.dot(prm["w"], x))
    _, T, vecs = pair_scores(prm, x)
    if len(T):
        pooled = sum(T[q] * vecs[q] for q in range(len(T)))
        if mask is not None:
            pooled = pooled * mask
        f += float(pooled.sum())
    return f


def forward(prm, X, masks=None):
    X = np.asarray(X.toarray() if hasattr(X, "toarray") else X, np.float64)
    return np.array([forward_row(prm, X[r], None if masks is None else masks[r])
                     for r in range(X.shape[0])])


def loss(f, y, loss_id):
    """0: logistic loss on a soft label y in [0, 1]; 1: half squared error."""
    if loss_id == 0:
        return float(np.logaddexp(0.0, f) - y * f)
    return 0.5 * float(f - y) ** 2


def objective(prm, X, y, sw, loss_id, alpha=0.0, att_alpha=0.0, field_alpha=0.0, masks=None):
    """skfm's minibatch objective: (1/B) sum_b sw_b l(f_b, y_b) + alpha/2 sum over the touched
    features j of (w_j^2 + ||v_j||^2) + att_alpha/2 ||W||^2 + field_alpha/2 (||U||^2 +
    ||D||^2)."""
    X = np.asarray(X.toarray() if hasattr(X, "toarray") else X, np.float64)
    F = forward(prm, X, masks)
    B = X.shape[0]
    obj = sum(sw[b] * loss(F[b], y[b], loss_id) for b in range(B)) / B
    touched = np.flatnonzero((X != 0).any(0))
    obj += 0.5 * alpha * float(np.sum(prm["w"][touched] ** 2) + np.sum(prm["V"][touched] ** 2))
    obj += 0.5 * att_alpha * float(np.sum(prm["W"] ** 2))
    obj += 0.5 * field_alpha * float(np.sum(prm["U"] ** 2) + np.sum(prm["D"] ** 2))
    return obj


def fd_grad(fun, prm, name, h=1e-6):
    """Central finite differences of fun(prm) with respect to every entry of prm[name]."""
    base = prm[name]
    arr = np.array(base, np.float64, ndmin=1)
    out = np.empty(arr.shape)
    for i in range(arr.size):
        vals = []
        for step in (h, -h):
            a = arr.copy()
            a.flat[i] += step
            vals.append(fun(dict(prm, **{name: a if np.ndim(base) else float(a[0])})))
        out.flat[i] = (vals[0] - vals[1]) / (2 * h)
    return out


def saliency_fd(prm, x, y, loss_id, h=1e-6):
    """d/ds L(f(s x), y) at s = 1 by central differences."""
    return (loss(forward_row(prm, (1 + h) * x), y, loss_id)
            - loss(forward_row(prm, (1 - h) * x), y, loss_id)) / (2 * h)
