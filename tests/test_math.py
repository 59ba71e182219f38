"""Independent checks of the FM math (DESIGN.md section 2) implemented by skfm's kernels.

Every expected value here is computed from scratch in float64 numpy: the FM output by the naive
O(m^2) pairwise formula ``f = w0 + sum_i w_i x_i + sum_{i<j} <v_i, v_j> x_i x_j`` (an explicit
double loop over a row's nonzeros), gradients and saliency by central finite differences of that
naive model.  Nothing is compared with another output of skfm itself.

Tolerances (stated per test below):
- float64 kernels vs float64 finite differences (step 1e-5): rtol 1e-6, atol 1e-6.
- float64 kernels vs the naive formula: rtol 1e-10, atol 1e-10.
- float32 kernels (parameters and data stored in float32, exact values then cast to float64 for
  the reference): rtol 1e-4, atol 1e-4 (gradients: rtol 1e-3, atol 2e-4).
"""
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skfm import FMClassifier, FMRegressor
from skfm._base import to_csr_data
from skfm._cores import FMCore
from skfm._kernels import fm as kfm
from skfm._trainer import readonly

LOGISTIC, SQUARED = 0, 1
H = 1e-5  # central finite-difference step (float64)

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ---------------------------------------------------------------------------------------------
# independent float64 reference implementation
# ---------------------------------------------------------------------------------------------
def naive_f(w0, T, idx, val):
    """FM output of one sparse row by the O(m^2) pairwise formula (float64)."""
    T = np.asarray(T, np.float64)
    idx = np.asarray(idx)
    val = np.asarray(val, np.float64)
    f = float(w0)
    for a in range(len(idx)):
        f += T[idx[a], 0] * val[a]
    for a in range(len(idx)):
        for b in range(a + 1, len(idx)):
            f += float(np.dot(T[idx[a], 1:], T[idx[b], 1:])) * val[a] * val[b]
    return f


def naive_pair(T, idx, val):
    """(linear part, pairwise part) of the naive FM output of one row."""
    lin = float(np.dot(np.asarray(T, np.float64)[idx, 0], np.asarray(val, np.float64)))
    return lin, naive_f(0.0, T, idx, val) - lin


def loss(f, y, loss_id):
    if loss_id == LOGISTIC:
        return float(np.logaddexp(0.0, f) - y * f)
    return 0.5 * (f - y) ** 2


def dloss(f, y, loss_id):
    if loss_id == LOGISTIC:
        return float(np.exp(-np.logaddexp(0.0, -f)) - y)
    return f - y


def csr_rows(indptr, indices, data):
    return [(indices[indptr[r]:indptr[r + 1]].astype(np.int64),
             data[indptr[r]:indptr[r + 1]].astype(np.float64)) for r in range(len(indptr) - 1)]


def dense_naive_decision(w0, T, X):
    """Naive decision for every row of a dense float64 matrix X (its nonzeros only)."""
    X = np.asarray(X, np.float64)
    out = np.empty(X.shape[0])
    for r in range(X.shape[0]):
        idx = np.flatnonzero(X[r])
        out[r] = naive_f(w0, T, idx, X[r, idx])
    return out


# ---------------------------------------------------------------------------------------------
# strategies
# ---------------------------------------------------------------------------------------------
nonzero_value = st.one_of(
    st.just(1.0),
    st.floats(0.05, 2.0).map(float),
    st.floats(-2.0, -0.05).map(float),
)


@st.composite
def sparse_rows(draw, n_rows, n_features):
    """A list of rows, each a dict feature -> nonzero value (empty and single-nonzero rows
    included; features shared between rows because n_features is small)."""
    rows = []
    for _ in range(n_rows):
        size = draw(st.integers(0, n_features))
        rows.append(draw(st.dictionaries(st.integers(0, n_features - 1), nonzero_value,
                                         min_size=size, max_size=size)))
    return rows


def to_csr_arrays(rows, dtype):
    indptr = np.zeros(len(rows) + 1, np.int64)
    indices, data = [], []
    for r, row in enumerate(rows):
        keys = sorted(row)
        indices.extend(keys)
        data.extend(row[k] for k in keys)
        indptr[r + 1] = len(indices)
    return indptr, np.asarray(indices, np.int32), np.asarray(data, dtype)


def empty_src(dtype):
    return (np.zeros(1, np.int64), np.empty(0, np.int32), np.empty(0, dtype), np.empty(0),
            np.empty(0))


@st.composite
def batch_problems(draw):
    n_features = draw(st.integers(1, 7))
    d = draw(st.integers(0, 3))
    n0 = draw(st.integers(1, 5))
    n1 = draw(st.integers(0, 4))
    loss_id = draw(st.sampled_from([LOGISTIC, SQUARED]))
    dtype = draw(st.sampled_from([np.float64, np.float64, np.float32]))
    rows0 = draw(sparse_rows(n0, n_features))
    rows1 = draw(sparse_rows(n1, n_features))
    if loss_id == LOGISTIC:
        label = st.floats(0.0, 1.0)
    else:
        label = st.floats(-3.0, 3.0)
    y0 = np.array(draw(st.lists(label, min_size=n0, max_size=n0)), np.float64)
    y1 = np.array(draw(st.lists(label, min_size=n1, max_size=n1)), np.float64)
    weight = st.one_of(st.just(1.0), st.just(0.0), st.floats(0.0, 3.0))
    sw0 = np.array(draw(st.lists(weight, min_size=n0, max_size=n0)), np.float64)
    sw1 = np.array(draw(st.lists(weight, min_size=n1, max_size=n1)), np.float64)
    # order: ids into the union (src0 rows first, then src1 rows), repeats allowed (copy
    # augmentation produces them), and a batch window inside it.
    n = n0 + n1
    order = np.array(draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=10)), np.int64)
    start = draw(st.integers(0, len(order) - 1))
    B = draw(st.integers(1, len(order) - start))
    alpha = draw(st.sampled_from([0.0, 0.0, 0.1, 0.75]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    scale = draw(st.sampled_from([0.3, 1.0]))
    T = rng.normal(0.0, scale, size=(n_features, 1 + d)).astype(dtype)
    w0 = np.array([rng.normal(0.0, 1.0)])
    return dict(n_features=n_features, d=d, rows0=rows0, rows1=rows1, y0=y0, y1=y1, sw0=sw0,
                sw1=sw1, order=order, start=start, B=B, alpha=alpha, loss_id=loss_id, T=T,
                w0=w0, dtype=dtype)


def reference_objective(pb, w0, T):
    """(1/B) sum_b sw_b L(f(x_b), y_b) + alpha/2 sum_{j in batch features} ||T_j||^2 (float64)."""
    rows = [(sorted(r), r) for r in pb["rows0"] + pb["rows1"]]
    y = np.concatenate([pb["y0"], pb["y1"]])
    sw = np.concatenate([pb["sw0"], pb["sw1"]])
    batch = pb["order"][pb["start"]:pb["start"] + pb["B"]]
    total = 0.0
    feats = set()
    for r in batch:
        keys, row = rows[r]
        idx = np.array(keys, np.int64)
        val = np.array([row[k] for k in keys], np.float64)
        feats.update(keys)
        total += sw[r] * loss(naive_f(w0, T, idx, val), y[r], pb["loss_id"])
    obj = total / pb["B"]
    for j in feats:
        obj += 0.5 * pb["alpha"] * float(np.sum(np.asarray(T[j], np.float64) ** 2))
    return obj, feats


def fd_gradient(pb):
    """Central finite differences of reference_objective w.r.t. w0 and every entry of T."""
    w0 = float(pb["w0"][0])
    T = np.asarray(pb["T"], np.float64).copy()
    g0 = (reference_objective(pb, w0 + H, T)[0] - reference_objective(pb, w0 - H, T)[0]) / (2 * H)
    GT = np.zeros_like(T)
    for j in range(T.shape[0]):
        for c in range(T.shape[1]):
            old = T[j, c]
            T[j, c] = old + H
            up = reference_objective(pb, w0, T)[0]
            T[j, c] = old - H
            down = reference_objective(pb, w0, T)[0]
            T[j, c] = old
            GT[j, c] = (up - down) / (2 * H)
    return g0, GT


# ---------------------------------------------------------------------------------------------
# batch gradient
# ---------------------------------------------------------------------------------------------
@SETTINGS
@given(batch_problems())
def test_batch_gradient_matches_finite_differences(pb):
    """Objective, dobj/dw0 and every gradient row (w_j and v_jf) of batch_gradient against
    central differences (h = 1e-5) of the independent float64 objective.
    float64: rtol 1e-6, atol 1e-6 (objective: rtol 1e-10, atol 1e-12).
    float32: rtol 1e-3, atol 2e-4 (objective: rtol 1e-4, atol 1e-5)."""
    dtype = pb["dtype"]
    ip0, ind0, dat0 = to_csr_arrays(pb["rows0"], dtype)
    # read-only views, as the trainer passes the training rows (one compiled gather_rows)
    src0 = tuple(map(readonly, (ip0, ind0, dat0, pb["y0"], pb["sw0"])))
    if pb["rows1"]:
        ip1, ind1, dat1 = to_csr_arrays(pb["rows1"], dtype)
        src1 = (ip1, ind1, dat1, pb["y1"], pb["sw1"])
    else:
        src1 = empty_src(dtype)
    slot = np.full(pb["n_features"], -1, np.int32)
    T_before = pb["T"].copy()
    w0_before = pb["w0"].copy()
    obj, g0, uniq, GT = kfm.batch_gradient(src0, src1, pb["order"], pb["start"], pb["B"],
                                           pb["w0"], pb["T"], pb["loss_id"], pb["alpha"], slot)
    # the call is pure: parameters untouched, scratch restored
    np.testing.assert_array_equal(pb["T"], T_before)
    np.testing.assert_array_equal(pb["w0"], w0_before)
    np.testing.assert_array_equal(slot, -1)

    ref_obj, feats = reference_objective(pb, float(pb["w0"][0]), np.asarray(pb["T"], np.float64))
    ref_g0, ref_GT = fd_gradient(pb)
    if dtype == np.float64:
        rtol, atol, orl, oat = 1e-6, 1e-6, 1e-10, 1e-12
    else:
        rtol, atol, orl, oat = 1e-3, 2e-4, 1e-4, 1e-5

    np.testing.assert_allclose(obj, ref_obj, rtol=orl, atol=oat)
    np.testing.assert_allclose(g0, ref_g0, rtol=rtol, atol=atol)

    uniq = np.asarray(uniq)
    # uniq lists exactly the batch's features, once each
    assert len(set(uniq.tolist())) == len(uniq)
    assert set(uniq.tolist()) == feats
    GT = np.asarray(GT)
    assert GT.shape == (len(uniq), pb["T"].shape[1])
    for k, j in enumerate(uniq):
        np.testing.assert_allclose(GT[k], ref_GT[j], rtol=rtol, atol=atol,
                                   err_msg=f"gradient row of feature {j}")
    # features absent from the batch have zero gradient (sanity of the reference itself)
    absent = [j for j in range(pb["n_features"]) if j not in feats]
    if absent:
        np.testing.assert_allclose(ref_GT[absent], 0.0, atol=1e-9)


@pytest.mark.parametrize("w0", [800.0, -800.0, 40.0, -40.0])
@pytest.mark.parametrize("y", [0.0, 0.3, 1.0])
def test_batch_gradient_logistic_is_stable_for_large_outputs(w0, y):
    """Logistic objective softplus(f) - y f and its derivative sigmoid(f) - y must stay exact
    (no overflow, no catastrophic cancellation) for |f| up to 800.  rtol 1e-12."""
    ip, ind, dat = to_csr_arrays([{0: 1.0}], np.float64)
    T = np.zeros((2, 3))
    src0 = tuple(map(readonly, (ip, ind, dat, np.array([y]), np.array([1.0]))))
    obj, g0, uniq, GT = kfm.batch_gradient(src0, empty_src(np.float64), np.array([0], np.int64),
                                           0, 1, np.array([w0]), T, LOGISTIC, 0.0,
                                           np.full(2, -1, np.int32))
    expected = max(w0, 0.0) - y * w0 + np.log1p(np.exp(-abs(w0)))
    sig = 1.0 / (1.0 + np.exp(-w0)) if w0 >= 0 else np.exp(w0) / (1.0 + np.exp(w0))
    assert np.isfinite(obj) and np.isfinite(g0)
    np.testing.assert_allclose(obj, expected, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(g0, sig - y, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(GT[0, 0], sig - y, rtol=1e-12, atol=1e-300)


# ---------------------------------------------------------------------------------------------
# predictions
# ---------------------------------------------------------------------------------------------
def random_sparse(rng, n, n_features, density, dtype):
    def values(k):
        return rng.choice([1.0, -1.5, 0.5, 2.0], k) * rng.uniform(0.5, 1.5, k)

    X = sp.random(n, n_features, density=density, format="csr", random_state=rng,
                  data_rvs=values)
    X = X.astype(dtype)
    X.eliminate_zeros()
    X.sort_indices()
    return X


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 12), n_features=st.integers(1, 9),
       d=st.integers(0, 4), density=st.sampled_from([0.0, 0.15, 0.5, 1.0]),
       dtype=st.sampled_from([np.float64, np.float32]))
def test_decision_matches_naive(seed, n, n_features, d, density, dtype):
    """FMCore.decision vs the naive pairwise formula (float64 reference computed from the same
    stored values). float64: rtol 1e-10, atol 1e-10; float32: rtol 1e-4, atol 1e-4."""
    rng = np.random.default_rng(seed)
    X = random_sparse(rng, n, n_features, density, dtype)
    T = rng.normal(0.0, 0.5, size=(n_features, 1 + d)).astype(dtype)
    w0 = np.array([rng.normal()])
    out = FMCore.decision({"w0": w0, "T": T}, to_csr_data(X, np.dtype(dtype)))
    ref = dense_naive_decision(w0[0], T, X.toarray())
    tol = 1e-10 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(out, ref, rtol=tol, atol=tol)


def _fit_quietly(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X, y)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("sparse_input", [False, True])
def test_estimators_predict_match_naive(dtype, sparse_input):
    """FMRegressor.predict, FMClassifier.decision_function / predict_proba / predict (binary and
    3-class one-vs-rest) vs the naive formula on the fitted intercept_, coef_, factors_ (which must
    equal the internal parameter table). float64: rtol 1e-10, atol 1e-10; float32: rtol 1e-4,
    atol 1e-4 (predicted labels: exact wherever |f| > 1e-3)."""
    rng = np.random.default_rng(7)
    n, n_features = 60, 10
    X = random_sparse(rng, n, n_features, 0.35, dtype)
    Xin = X if sparse_input else X.toarray()
    tol = 1e-10 if dtype == np.float64 else 1e-4
    y_reg = rng.normal(size=n)
    y_bin = rng.integers(0, 2, n)
    y_multi = rng.integers(0, 3, n)

    reg = _fit_quietly(FMRegressor(n_factors=3, max_iter=3, init_std=0.3, random_state=0), Xin,
                       y_reg)
    np.testing.assert_array_equal(reg.coef_, reg._params[0]["T"][:, 0])
    np.testing.assert_array_equal(reg.factors_, reg._params[0]["T"][:, 1:])
    assert reg.intercept_ == reg._params[0]["w0"][0]
    T = np.column_stack([reg.coef_, reg.factors_])
    assert np.abs(reg.factors_).max() > 0.05  # interactions are not trivially zero
    ref = dense_naive_decision(reg.intercept_, T, X.toarray())
    np.testing.assert_allclose(reg.predict(Xin), ref, rtol=tol, atol=tol)

    clf = _fit_quietly(FMClassifier(n_factors=3, max_iter=3, init_std=0.3, random_state=0), Xin,
                       y_bin)
    T = np.column_stack([clf.coef_, clf.factors_])
    np.testing.assert_array_equal(T, clf._params[0]["T"])
    ref = dense_naive_decision(clf.intercept_, T, X.toarray())
    F = clf.decision_function(Xin)
    np.testing.assert_allclose(F, ref, rtol=tol, atol=tol)
    p1 = 1.0 / (1.0 + np.exp(-ref))
    np.testing.assert_allclose(clf.predict_proba(Xin), np.column_stack([1 - p1, p1]),
                               rtol=tol, atol=tol)
    clear = np.abs(ref) > 1e-3
    want = clf.classes_[(ref > 0).astype(int)]
    np.testing.assert_array_equal(clf.predict(Xin)[clear], want[clear])

    mc = _fit_quietly(FMClassifier(n_factors=2, max_iter=3, init_std=0.3, random_state=1), Xin,
                      y_multi)
    F = mc.decision_function(Xin)
    assert F.shape == (n, 3)
    for k in range(3):
        Tk = np.column_stack([mc.coef_[k], mc.factors_[k]])
        np.testing.assert_array_equal(Tk, mc._params[k]["T"])
        refk = dense_naive_decision(mc.intercept_[k], Tk, X.toarray())
        np.testing.assert_allclose(F[:, k], refk, rtol=tol, atol=tol)


# ---------------------------------------------------------------------------------------------
# saliency
# ---------------------------------------------------------------------------------------------
def fd_saliency(w0, T, idx, val, y, loss_id, h=1e-5):
    """d/dt L(f(t x), y) at t = 1 by central differences."""
    up = loss(naive_f(w0, T, idx, (1 + h) * val), y, loss_id)
    down = loss(naive_f(w0, T, idx, (1 - h) * val), y, loss_id)
    return (up - down) / (2 * h)


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 10), n_features=st.integers(1, 8),
       d=st.integers(0, 4), density=st.sampled_from([0.0, 0.2, 0.6, 1.0]),
       loss_id=st.sampled_from([LOGISTIC, SQUARED]), scale=st.sampled_from([0.3, 1.0]))
def test_saliency_matches_finite_differences(seed, n, n_features, d, density, loss_id, scale):
    """FMCore.saliency vs central differences (h = 1e-5) of t -> L(f(t x), y) at t = 1, float64,
    soft labels in [0, 1] for the logistic loss. rtol 1e-6, atol 1e-7.
    Also checks the naive closed form g * (lin + 2 * pair) used by the SMFM selection tests."""
    rng = np.random.default_rng(seed)
    X = random_sparse(rng, n, n_features, density, np.float64)
    T = rng.normal(0.0, scale, size=(n_features, 1 + d))
    w0 = np.array([rng.normal()])
    if loss_id == LOGISTIC:
        y = rng.uniform(0.0, 1.0, n)
        y[: n // 3] = np.round(y[: n // 3])
    else:
        y = rng.normal(0.0, 2.0, n)
    out = FMCore.saliency({"w0": w0, "T": T}, to_csr_data(X, np.dtype(np.float64)), y, loss_id)
    for r, (idx, val) in enumerate(csr_rows(X.indptr, X.indices, X.data)):
        ref = fd_saliency(w0[0], T, idx, val, y[r], loss_id)
        np.testing.assert_allclose(out[r], ref, rtol=1e-6, atol=1e-7, err_msg=f"row {r}")
        lin, pair = naive_pair(T, idx, val)
        g = dloss(w0[0] + lin + pair, y[r], loss_id)
        np.testing.assert_allclose(g * (lin + 2 * pair), ref, rtol=1e-6, atol=1e-7)


def test_regressor_saliency_matches_finite_differences():
    """FMRegressor.saliency (public API) vs central differences on its fitted parameters.
    rtol 1e-6, atol 1e-7 (float64)."""
    rng = np.random.default_rng(3)
    X = random_sparse(rng, 40, 8, 0.4, np.float64)
    y = rng.normal(size=40)
    reg = _fit_quietly(FMRegressor(n_factors=3, max_iter=3, init_std=0.3, random_state=0), X, y)
    T = np.column_stack([reg.coef_, reg.factors_])
    out = reg.saliency(X, y)
    for r, (idx, val) in enumerate(csr_rows(X.indptr, X.indices, X.data)):
        ref = fd_saliency(reg.intercept_, T, idx, val, y[r], SQUARED)
        np.testing.assert_allclose(out[r], ref, rtol=1e-6, atol=1e-7)


def test_classifier_saliency_matches_finite_differences():
    """Binary FMClassifier.saliency with labels {a, b} -> targets {0, 1}, logistic loss,
    vs central differences. rtol 1e-6, atol 1e-7 (float64)."""
    rng = np.random.default_rng(4)
    X = random_sparse(rng, 40, 8, 0.4, np.float64)
    y = np.where(rng.random(40) < 0.5, "a", "b")
    clf = _fit_quietly(FMClassifier(n_factors=3, max_iter=3, init_std=0.3, random_state=0), X, y)
    T = np.column_stack([clf.coef_, clf.factors_])
    out = clf.saliency(X, y)
    t = (y == "b").astype(float)
    for r, (idx, val) in enumerate(csr_rows(X.indptr, X.indices, X.data)):
        ref = fd_saliency(clf.intercept_, T, idx, val, t[r], LOGISTIC)
        np.testing.assert_allclose(out[r], ref, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("w0", [800.0, -800.0])
@pytest.mark.parametrize("loss_id", [LOGISTIC, SQUARED])
def test_saliency_large_outputs_finite(w0, loss_id):
    """Saliency at |f| ~ 800 stays finite and exact: S = dL/df * (lin + 2 pair) with
    dL/df = sigmoid(f) - y (logistic) or f - y (squared). rtol 1e-12."""
    T = np.array([[0.5, 0.2, -0.1], [-0.25, 0.3, 0.4]])
    X = to_csr_data(sp.csr_matrix(np.array([[1.0, 2.0], [0.0, -1.5]])), np.dtype(np.float64))
    y = np.array([0.3, 1.0])
    out = FMCore.saliency({"w0": np.array([w0]), "T": T}, X, y, loss_id)
    assert np.all(np.isfinite(out))
    for r, (idx, val) in enumerate(csr_rows(X.indptr, X.indices, X.data)):
        lin, pair = naive_pair(T, idx, val)
        g = dloss(w0 + lin + pair, y[r], loss_id)
        np.testing.assert_allclose(out[r], g * (lin + 2 * pair), rtol=1e-12, atol=1e-300)


def test_predict_sums_duplicate_coo_entries():
    """A COO input with repeated (row, col) entries means their sum (scipy convention): predict
    must equal the naive FM of the summed dense matrix, and must not modify the caller's X.
    float64, rtol 1e-10, atol 1e-10."""
    rng = np.random.default_rng(11)
    Xtr = random_sparse(rng, 30, 6, 0.5, np.float64)
    reg = _fit_quietly(FMRegressor(n_factors=3, max_iter=2, init_std=0.3, random_state=0), Xtr,
                       rng.normal(size=30))
    rows = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    cols = np.array([3, 1, 3, 5, 5, 0, 2, 0])
    vals = np.array([1.0, 0.5, 2.0, -1.0, 0.25, 1.5, 1.0, -0.5])
    X = sp.coo_matrix((vals, (rows, cols)), shape=(3, 6))
    before = (X.row.copy(), X.col.copy(), X.data.copy())
    T = np.column_stack([reg.coef_, reg.factors_])
    ref = dense_naive_decision(reg.intercept_, T, X.toarray())
    np.testing.assert_allclose(reg.predict(X), ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(reg.predict(X.tocsr()), ref, rtol=1e-10, atol=1e-10)
    for a, b in zip(before, (X.row, X.col, X.data)):
        np.testing.assert_array_equal(a, b)
