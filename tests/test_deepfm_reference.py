"""Validation of the float64 numpy DeepFM reference (tests/_deepfm_reference.py).

Every function that the Numba kernels will be compared with is checked here against central
finite differences (or against a formula written a different way):

* STEP = 1e-6 is the central-difference step, (F(p + STEP) - F(p - STEP)) / (2 STEP);
* RTOL = 1e-6: a gradient passes when max |analytic - numeric| <= RTOL * max(1, max |numeric|)
  over all its entries (truncation error ~ STEP^2, rounding error ~ 1e-16 |F| / STEP ~ 1e-9);
* with relu, data are drawn so that no activation input lies within MARGIN = 1e-3 of the kink
  (a perturbation of STEP moves those inputs by far less than MARGIN), and in batch-norm
  training mode no batch variance falls under MIN_BATCH_VAR (the normalisation stays smooth
  at the scale of STEP);
* formulas that need no differencing (field embeddings, FM part, forward) agree to 1e-12.
"""
import math
import zlib

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from _deepfm_reference import (ACTIVATIONS, BN_EPS, LOSSES, batch_gradient, batch_objective,
                               copy_params, field_embeddings, fm_part, forward, forward_cache,
                               input_gradient, loss_derivs, loss_values, random_params,
                               saliency)

STEP = 1e-6
RTOL = 1e-6
EXACT = 1e-12
MARGIN = 1e-3
MIN_BATCH_VAR = 1e-2
DROPOUT_P = 0.25

# 9 features in F = 4 fields, labels deliberately not sorted. Field 3 (features 6 and 7) is
# used by no row; feature 3 (field 0) is in no row either.
D = 3
FIELDS = np.array([2, 0, 1, 0, 2, 1, 3, 3, 1])
N_FEATURES = len(FIELDS)
# The nonzero columns of each row: rows with features from only some fields, one single-feature
# row, one row with every present feature.
ROW_SUPPORT = [[1, 0, 4],        # fields 0 and 2
               [2, 5],           # field 1 only
               [1, 2, 4, 8],     # fields 0, 1, 2
               [8],              # a single feature
               [0, 1, 2, 5, 8]]  # fields 2, 0, 1
SW = np.array([1.0, 0.0, 0.5, 2.0, 1.3])   # includes a zero weight
B = len(ROW_SUPPORT)


# ------------------------------------------------------------------------------ data helpers
def make_X(rng, support=ROW_SUPPORT, n_features=N_FEATURES):
    """A dense batch whose row b is nonzero exactly on support[b] (|x| in [0.5, 1.5])."""
    X = np.zeros((len(support), n_features))
    for b, cols in enumerate(support):
        X[b, cols] = rng.uniform(0.5, 1.5, len(cols)) * rng.choice([-1.0, 1.0], len(cols))
    return X


def make_y(rng, loss, n):
    """Soft labels in [0, 1] (with exact 0 and 1) for logistic, N(0, 1) targets for squared."""
    if loss == "logistic":
        y = rng.uniform(0.0, 1.0, n)
        y[0], y[-1] = 0.0, 1.0
        return y
    return rng.normal(0.0, 1.0, n)


def make_masks(rng, n_rows, hidden, p=DROPOUT_P):
    """Dropout masks: entries 0 or 1/(1-p), one (n_rows, n_l) array per hidden layer."""
    return [(rng.uniform(size=(n_rows, n)) >= p) / (1.0 - p) for n in hidden]


def smooth_enough(params, X, train, masks):
    """True when finite differences at STEP are valid: relu inputs at least MARGIN from 0 (in
    the mode tested and in inference mode, used by the saliency), batch variances in training
    mode at least MIN_BATCH_VAR."""
    for mode, m in ((train, masks), (False, None)):
        c = forward_cache(params, X, train=mode, masks=m)
        if params["activation"] == "relu":
            if any(np.min(np.abs(u)) < MARGIN for u in c["u"]):
                return False
        if mode and params["batch_norm"]:
            if any(np.min(v) < MIN_BATCH_VAR for v in c["var"]):
                return False
    return True


def make_case(seed, hidden, activation, bn_mode, loss, with_masks):
    """Random params, X, y, masks for the fixed field layout, redrawn until smooth_enough."""
    rng = np.random.default_rng(seed)
    train = bn_mode == "train"
    for _ in range(100):
        params = random_params(rng, N_FEATURES, D, FIELDS, hidden, activation,
                               batch_norm=bn_mode is not None)
        X = make_X(rng)
        masks = make_masks(rng, B, hidden) if with_masks else None
        if smooth_enough(params, X, train, masks):
            return params, X, make_y(rng, loss, B), masks
    raise RuntimeError("no smooth case found")


# ------------------------------------------------------------------------------ FD helpers
def _flat_slots(params):
    """(key, layer) of every trainable array, in batch_gradient's layout."""
    slots = [("w", None), ("V", None), ("h", None)]
    for key in ("Ws", "bs", "gammas", "betas"):
        slots += [(key, l) for l in range(len(params[key]))]
    return slots


def fd_param_gradient(objective, params):
    """Central differences of objective(params) with respect to every trainable entry, as a
    dict shaped like batch_gradient's result."""
    p = copy_params(params)
    out = {"Ws": [None] * len(p["Ws"]), "bs": [None] * len(p["bs"]),
           "gammas": [None] * len(p["gammas"]), "betas": [None] * len(p["betas"])}
    w0 = p["w0"]
    p["w0"] = w0 + STEP
    up = objective(p)
    p["w0"] = w0 - STEP
    down = objective(p)
    p["w0"] = w0
    out["w0"] = (up - down) / (2 * STEP)
    for key, l in _flat_slots(p):
        arr = p[key] if l is None else p[key][l]
        g = np.zeros(arr.shape)
        for idx in np.ndindex(arr.shape):
            old = arr[idx]
            arr[idx] = old + STEP
            up = objective(p)
            arr[idx] = old - STEP
            down = objective(p)
            arr[idx] = old
            g[idx] = (up - down) / (2 * STEP)
        if l is None:
            out[key] = g
        else:
            out[key][l] = g
    return out


def _blocks(grad):
    """[(name, flat array)] of a gradient dict."""
    blocks = [("w0", np.atleast_1d(float(grad["w0"])))]
    for key in ("w", "V", "h"):
        blocks.append((key, np.ravel(grad[key])))
    for key in ("Ws", "bs", "gammas", "betas"):
        blocks += [(f"{key}[{l}]", np.ravel(a)) for l, a in enumerate(grad[key])]
    return blocks


def assert_matches_fd(grad, fd):
    """Every block of grad within RTOL * max(1, max |fd|) of the finite differences."""
    got, want = dict(_blocks(grad)), dict(_blocks(fd))
    assert got.keys() == want.keys()
    scale = max(1.0, max(np.max(np.abs(v)) for v in want.values()))
    for name in want:
        assert got[name].shape == want[name].shape, name
        err = np.max(np.abs(got[name] - want[name]))
        assert err <= RTOL * scale, f"{name}: max error {err:.3g} (scale {scale:.3g})"


def grad_shapes_ok(grad, params):
    """The gradient has the documented layout."""
    assert isinstance(grad["w0"], float)
    assert grad["w"].shape == params["w"].shape
    assert grad["V"].shape == params["V"].shape
    assert grad["h"].shape == params["h"].shape
    for key in ("Ws", "bs", "gammas", "betas"):
        assert len(grad[key]) == len(params[key])
        for g, p in zip(grad[key], params[key]):
            assert g.shape == p.shape


# ------------------------------------------------------------------------------ gradient vs FD
def _gradient_cases():
    cases = []
    for hidden in [(), (5,), (6, 4)]:
        acts = ["identity"] if not hidden else list(ACTIVATIONS)
        for act in acts:
            for bn in ([None] if not hidden else [None, "train", "infer"]):
                for loss in LOSSES:
                    for alpha in (0.0, 0.3):
                        for with_masks in ([False] if not hidden else [False, True]):
                            cases.append((hidden, act, bn, loss, alpha, with_masks))
    return cases


def _case_id(case):
    hidden, act, bn, loss, alpha, with_masks = case
    return (f"L{len(hidden)}-{act}-bn_{bn}-{loss}-a{alpha}"
            + ("-masks" if with_masks else ""))


@pytest.mark.parametrize("case", _gradient_cases(), ids=_case_id)
def test_batch_gradient_matches_finite_differences(case):
    hidden, act, bn, loss, alpha, with_masks = case
    seed = zlib.crc32(_case_id(case).encode())
    params, X, y, masks = make_case(seed, hidden, act, bn, loss, with_masks)
    train = bn == "train"
    grad = batch_gradient(params, X, y, SW, loss, alpha, train=train, masks=masks)
    grad_shapes_ok(grad, params)
    fd = fd_param_gradient(
        lambda p: batch_objective(p, X, y, SW, loss, alpha, train=train, masks=masks), params)
    assert_matches_fd(grad, fd)
    # Every part of the model is exercised (the comparison is not vacuous).
    assert abs(grad["w0"]) > 0 and np.any(grad["w"] != 0) and np.any(grad["V"] != 0)
    assert np.any(grad["h"] != 0)


def test_gradient_of_unused_field_and_absent_features():
    """Features present in no row get exactly zero gradient (no regulariser either), and so do
    the first-layer weights reading the block of the field that no row uses."""
    params, X, y, masks = make_case(1, (5,), "tanh", None, "logistic", False)
    grad = batch_gradient(params, X, y, SW, "logistic", 0.3)
    absent = [3, 6, 7]
    assert np.all(grad["w"][absent] == 0) and np.all(grad["V"][absent] == 0)
    assert np.all(grad["Ws"][0][:, 3 * D:4 * D] == 0)
    assert np.all(field_embeddings(params, X)[:, 3 * D:4 * D] == 0)
    present = [0, 1, 2, 4, 5, 8]
    assert np.all(grad["w"][present] != 0)


def test_zero_weight_row_target_is_ignored():
    """The target of a row of weight 0 does not enter the objective or its gradient."""
    params, X, y, masks = make_case(2, (5, 4), "logistic", "train", "squared", True)
    y2 = y.copy()
    y2[1] += 5.0            # SW[1] == 0
    g1 = batch_gradient(params, X, y, SW, "squared", 0.1, train=True, masks=masks)
    g2 = batch_gradient(params, X, y2, SW, "squared", 0.1, train=True, masks=masks)
    for (n1, a1), (n2, a2) in zip(_blocks(g1), _blocks(g2)):
        np.testing.assert_array_equal(a1, a2, err_msg=n1)


def test_batch_norm_training_mode_couples_rows():
    """Training mode equals inference mode with the running statistics set to the batch ones
    for f, but not for the gradient: the batch statistics depend on the parameters."""
    params, X, y, masks = make_case(3, (5, 4), "tanh", "train", "logistic", False)
    c = forward_cache(params, X, train=True)
    frozen = copy_params(params)
    frozen["bn_mean"] = [m.copy() for m in c["mu"]]
    frozen["bn_var"] = [v.copy() for v in c["var"]]
    np.testing.assert_allclose(forward(frozen, X), c["f"], rtol=0, atol=EXACT)
    g_train = batch_gradient(params, X, y, SW, "logistic", 0.0, train=True)
    g_frozen = batch_gradient(frozen, X, y, SW, "logistic", 0.0, train=False)
    assert np.max(np.abs(g_train["Ws"][0] - g_frozen["Ws"][0])) > 1e-4
    # The bias before batch norm has no effect in training mode (shifts are removed).
    assert np.max(np.abs(g_train["bs"][0])) < 1e-12
    # In training mode a row's f depends on the other rows.
    X2 = X.copy()
    X2[4] *= 2.0
    f1, f2 = forward(params, X, train=True), forward(params, X2, train=True)
    assert abs(f1[0] - f2[0]) > 1e-6
    np.testing.assert_allclose(forward(params, X)[:4], forward(params, X2)[:4], rtol=0,
                               atol=EXACT)


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
def test_sparse_input_matches_dense(fmt):
    params, X, y, masks = make_case(4, (5,), "relu", "train", "logistic", True)
    Xs = sp.csr_matrix(X).asformat(fmt)
    np.testing.assert_array_equal(forward(params, Xs, train=True, masks=masks),
                                  forward(params, X, train=True, masks=masks))
    gd = batch_gradient(params, X, y, SW, "logistic", 0.2, train=True, masks=masks)
    gs = batch_gradient(params, Xs, y, SW, "logistic", 0.2, train=True, masks=masks)
    for (name, a), (_, b) in zip(_blocks(gd), _blocks(gs)):
        np.testing.assert_array_equal(a, b, err_msg=name)
    np.testing.assert_array_equal(saliency(params, Xs, y, "logistic"),
                                  saliency(params, X, y, "logistic"))


# ------------------------------------------------------------------------------ saliency vs FD
_SALIENCY_CASES = [((), "identity", None), ((5,), "relu", None), ((5,), "tanh", "infer"),
                   ((6, 4), "logistic", "infer"), ((6, 4), "relu", "infer"),
                   ((6, 4), "identity", None)]


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("hidden,act,bn", _SALIENCY_CASES)
def test_saliency_is_directional_derivative(hidden, act, bn, loss):
    """S(x, y) = d/dt L(f(t x), y) at t = 1 (inference mode), by central differences in t."""
    params, X, y, _ = make_case(10 + len(hidden), hidden, act, bn, loss, False)
    S = saliency(params, X, y, loss)
    assert S.shape == (B,)
    up = loss_values(forward(params, (1 + STEP) * X), y, loss)
    down = loss_values(forward(params, (1 - STEP) * X), y, loss)
    fd = (up - down) / (2 * STEP)
    scale = max(1.0, np.max(np.abs(fd)))
    assert np.max(np.abs(S - fd)) <= RTOL * scale
    assert np.all(S != 0)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("hidden,act,bn", _SALIENCY_CASES)
def test_input_gradient_matches_finite_differences(hidden, act, bn, loss):
    """input_gradient against central differences on every x_j (zero entries included), and
    saliency against sum_j x_j times those differences."""
    params, X, y, _ = make_case(20 + len(hidden), hidden, act, bn, loss, False)
    G = input_gradient(params, X, y, loss)
    assert G.shape == X.shape
    fd = np.zeros_like(X)
    for b in range(B):
        for j in range(N_FEATURES):
            Xp, Xm = X.copy(), X.copy()
            Xp[b, j] += STEP
            Xm[b, j] -= STEP
            up = loss_values(forward(params, Xp), y, loss)[b]
            down = loss_values(forward(params, Xm), y, loss)[b]
            fd[b, j] = (up - down) / (2 * STEP)
    scale = max(1.0, np.max(np.abs(fd)))
    assert np.max(np.abs(G - fd)) <= RTOL * scale
    S_fd = np.sum(X * fd, axis=1)
    assert np.max(np.abs(saliency(params, X, y, loss) - S_fd)) <= RTOL * scale
    # Features of the field no row uses still have a nonzero input gradient.
    assert np.all(G[:, 6] != 0)


# ------------------------------------------------------------------------------ exact formulas
def test_field_embeddings_one_hot_product():
    """z_0 = (X, one-hot fields, V) contracted as sum_j X[b, j] P[j, f] V[j, k]."""
    rng = np.random.default_rng(5)
    params = random_params(rng, N_FEATURES, D, FIELDS, (4,))
    X = make_X(rng)
    P = np.eye(4)[FIELDS]                                   # (n_features, F) one-hot
    want = np.einsum("bj,jf,jk->bfk", X, P, params["V"]).reshape(B, 4 * D)
    got = field_embeddings(params, X)
    np.testing.assert_allclose(got, want, rtol=0, atol=EXACT)
    np.testing.assert_array_equal(forward_cache(params, X)["z"][0], got)


def test_field_without_features():
    """n_fields may exceed max(fields) + 1: that field's block of z_0 is zero."""
    rng = np.random.default_rng(6)
    fields = np.array([0, 1, 1, 0])
    params = random_params(rng, 4, 2, fields, (3,), "tanh")
    params["n_fields"] = 3
    params["Ws"][0] = np.concatenate([params["Ws"][0], rng.normal(size=(3, 2))], axis=1)
    X = rng.normal(size=(3, 4))
    Z = field_embeddings(params, X)
    assert Z.shape == (3, 6) and np.all(Z[:, 4:] == 0)
    g = batch_gradient(params, X, np.zeros(3), np.ones(3), "squared", 0.0)
    assert np.all(g["Ws"][0][:, 4:] == 0)
    fd = fd_param_gradient(
        lambda p: batch_objective(p, X, np.zeros(3), np.ones(3), "squared", 0.0), params)
    assert_matches_fd(g, fd)


def test_fm_part_dense_formula():
    """fm(x) = w0 + w.x + x^T triu(V V^T, 1) x (O(n^2) dense), and forward with h = 0."""
    rng = np.random.default_rng(7)
    params = random_params(rng, N_FEATURES, D, FIELDS, (5, 3), "tanh", batch_norm=True)
    X = make_X(rng)
    X = np.vstack([X, rng.normal(size=(1, N_FEATURES)), np.zeros((1, N_FEATURES))])
    U = np.triu(params["V"] @ params["V"].T, k=1)
    want = params["w0"] + X @ params["w"] + np.einsum("bi,ij,bj->b", X, U, X)
    np.testing.assert_allclose(fm_part(params, X), want, rtol=0, atol=EXACT)
    no_tower = copy_params(params)
    no_tower["h"] = np.zeros_like(params["h"])
    np.testing.assert_allclose(forward(no_tower, X), want, rtol=0, atol=EXACT)
    np.testing.assert_allclose(forward(no_tower, X, train=True), want, rtol=0, atol=EXACT)


def _act_scalar(t, activation):
    return {"relu": lambda: max(t, 0.0), "tanh": lambda: math.tanh(t),
            "logistic": lambda: 1.0 / (1.0 + math.exp(-t)), "identity": lambda: t}[activation]()


def forward_loops(params, X, train, masks):
    """f written with scalar loops only (dense FM over all pairs, per-unit sums)."""
    Bn, n = X.shape
    V = params["V"]
    d = V.shape[1]
    F = int(params.get("n_fields") or FIELDS.max() + 1)
    out = []
    zs = []
    for b in range(Bn):
        fm = params["w0"] + sum(params["w"][j] * X[b, j] for j in range(n))
        for i in range(n):
            for j in range(i + 1, n):
                fm += sum(V[i, k] * V[j, k] for k in range(d)) * X[b, i] * X[b, j]
        out.append(fm)
        zs.append([sum(X[b, j] * V[j, k] for j in range(n) if params["fields"][j] == f)
                   for f in range(F) for k in range(d)])
    for l, (W, bias) in enumerate(zip(params["Ws"], params["bs"])):
        a = [[bias[i] + sum(W[i, k] * zs[b][k] for k in range(W.shape[1]))
              for i in range(W.shape[0])] for b in range(Bn)]
        if params["batch_norm"]:
            for i in range(W.shape[0]):
                if train:
                    mu = sum(a[b][i] for b in range(Bn)) / Bn
                    var = sum((a[b][i] - mu) ** 2 for b in range(Bn)) / Bn
                else:
                    mu, var = params["bn_mean"][l][i], params["bn_var"][l][i]
                for b in range(Bn):
                    a[b][i] = (params["gammas"][l][i] * (a[b][i] - mu) / math.sqrt(var + BN_EPS)
                               + params["betas"][l][i])
        zs = [[_act_scalar(a[b][i], params["activation"])
               * (1.0 if masks is None else masks[l][b, i]) for i in range(W.shape[0])]
              for b in range(Bn)]
    return np.array([out[b] + sum(params["h"][i] * zs[b][i] for i in range(len(zs[b])))
                     for b in range(Bn)])


@pytest.mark.parametrize("act", ACTIVATIONS)
@pytest.mark.parametrize("bn_mode", [None, "train", "infer"])
def test_forward_against_scalar_loops(act, bn_mode):
    rng = np.random.default_rng(8)
    hidden = (5, 3)
    params = random_params(rng, N_FEATURES, D, FIELDS, hidden, act, batch_norm=bn_mode is not None)
    X = make_X(rng)
    train = bn_mode == "train"
    for masks in (None, make_masks(rng, B, hidden)):
        np.testing.assert_allclose(forward(params, X, train=train, masks=masks),
                                   forward_loops(params, X, train, masks), rtol=0, atol=EXACT)
    p0 = random_params(rng, N_FEATURES, D, FIELDS, ())
    np.testing.assert_allclose(forward(p0, X), forward_loops(p0, X, False, None),
                               rtol=0, atol=EXACT)


def test_mixed_row_goes_through_forward():
    """lam x1 + (1 - lam) x2 is an ordinary dense row: f at lam = 1 and 0 is f(x1) and f(x2),
    inference rows do not interact, and without batch norm and with the identity activation f
    is a quadratic in lam (third differences vanish)."""
    for act, bn in (("identity", False), ("relu", True)):
        rng = np.random.default_rng(9)
        params = random_params(rng, N_FEATURES, D, FIELDS, (5, 4), act, batch_norm=bn)
        X = make_X(rng)
        x1, x2 = X[0], X[2]
        lams = np.array([0.0, 1 / 3, 2 / 3, 1.0])
        mixed = np.array([lam * x1 + (1 - lam) * x2 for lam in lams])
        f = forward(params, mixed)
        assert np.all(np.isfinite(f))
        np.testing.assert_allclose(f[[3, 0]], forward(params, X[[0, 2]]), rtol=0, atol=EXACT)
        for k in range(len(lams)):
            np.testing.assert_allclose(forward(params, mixed[k:k + 1]), f[k:k + 1], rtol=0,
                                       atol=EXACT)
        if act == "identity" and not bn:
            third = f[3] - 3 * f[2] + 3 * f[1] - f[0]
            assert abs(third) < 1e-10
            assert abs(f[2] - 2 * f[1] + f[0]) > 1e-6      # genuinely quadratic
        assert np.all(np.isfinite(saliency(params, mixed, np.full(4, 0.4), "logistic")))


# ------------------------------------------------------------------------------ losses
@pytest.mark.parametrize("loss", LOSSES)
def test_loss_derivs_match_finite_differences(loss):
    rng = np.random.default_rng(11)
    f = rng.normal(0.0, 3.0, 50)
    y = make_y(rng, loss, 50)
    fd = (loss_values(f + STEP, y, loss) - loss_values(f - STEP, y, loss)) / (2 * STEP)
    np.testing.assert_allclose(loss_derivs(f, y, loss), fd, rtol=0, atol=RTOL)


def test_loss_values_formulas_and_stability():
    f = np.array([-2.0, -0.5, 0.0, 0.7, 3.0])
    y = np.array([0.0, 1.0, 0.3, 0.5, 1.0])
    np.testing.assert_allclose(loss_values(f, y, "logistic"), np.log1p(np.exp(f)) - y * f,
                               rtol=1e-14)
    np.testing.assert_allclose(loss_values(f, y, "squared"), 0.5 * (f - y) ** 2, rtol=1e-14)
    big = np.array([-800.0, 800.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        v = loss_values(big, np.array([0.0, 1.0]), "logistic")
        dv = loss_derivs(big, np.array([1.0, 0.0]), "logistic")
    np.testing.assert_allclose(v, [0.0, 0.0], atol=1e-300)
    np.testing.assert_allclose(dv, [-1.0, 1.0])


# ------------------------------------------------------------------------------ property test
@st.composite
def _random_setup(draw):
    seed = draw(st.integers(0, 2 ** 32 - 1))
    F = draw(st.integers(1, 3))
    extra = draw(st.integers(0, 3))
    d = draw(st.integers(1, 3))
    hidden = tuple(draw(st.lists(st.integers(1, 4), max_size=2)))
    act = draw(st.sampled_from(ACTIVATIONS))
    bn = draw(st.sampled_from([None, "train", "infer"])) if hidden else None
    loss = draw(st.sampled_from(LOSSES))
    alpha = draw(st.sampled_from([0.0, 0.5]))
    n_rows = draw(st.integers(3, 5))
    with_masks = draw(st.booleans()) if hidden else False
    return seed, F, extra, d, hidden, act, bn, loss, alpha, n_rows, with_masks


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_random_setup())
def test_batch_gradient_random_shapes(setup):
    """Random field layouts, sizes, sparsity patterns and settings, against FD."""
    seed, F, extra, d, hidden, act, bn, loss, alpha, n_rows, with_masks = setup
    rng = np.random.default_rng(seed)
    n = F + extra
    fields = np.concatenate([np.arange(F), rng.integers(0, F, extra)])
    rng.shuffle(fields)
    train = bn == "train"
    for _ in range(50):
        params = random_params(rng, n, d, fields, hidden, act, batch_norm=bn is not None)
        X = rng.normal(size=(n_rows, n)) * (rng.uniform(size=(n_rows, n)) < 0.6)
        masks = make_masks(rng, n_rows, hidden) if with_masks else None
        if smooth_enough(params, X, train, masks):
            break
    else:
        assume(False)
    y = make_y(rng, loss, n_rows)
    sw = rng.uniform(0.0, 2.0, n_rows)
    sw[0] = 0.0
    grad = batch_gradient(params, X, y, sw, loss, alpha, train=train, masks=masks)
    grad_shapes_ok(grad, params)
    fd = fd_param_gradient(
        lambda p: batch_objective(p, X, y, sw, loss, alpha, train=train, masks=masks), params)
    assert_matches_fd(grad, fd)
    if not train:
        S = saliency(params, X, y, loss)
        t_fd = (loss_values(forward(params, (1 + STEP) * X), y, loss)
                - loss_values(forward(params, (1 - STEP) * X), y, loss)) / (2 * STEP)
        assert np.max(np.abs(S - t_fd)) <= RTOL * max(1.0, np.max(np.abs(t_fd)))
