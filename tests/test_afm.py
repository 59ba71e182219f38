"""Independent checks of the AFM model (Xiao et al. 2017) implemented by skfm's AFM kernels.

Every expected value is computed from scratch in float64 numpy by an explicit loop over a row's
pairs i < j of nonzeros (``naive_row``): E_i = v_i x_i, e_ij = E_i * E_j,
a = softmax_ij(h . ReLU(W e_ij + b)), f = w0 + sum_i w_i x_i + p . sum_ij a_ij e_ij (no pair term
for rows with < 2 nonzeros).  Gradients and saliency are central finite differences of that
reference; nothing is compared with another output of skfm itself (except in the determinism
test, which compares two fits).

Tolerances: kernels vs the naive formula rtol 1e-10 / atol 1e-12; kernels vs central finite
differences (step 1e-6) rtol 1e-5 / atol 1e-7.  Problems are drawn from a seeded numpy generator
(hypothesis draws the seed and the sizes), so a finite-difference step straddling a ReLU kink is
as unlikely as it is for random data (probability ~1e-6 per pre-activation).
"""

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skfm._afm import AFMClassifier, AFMCore, AFMRegressor
from skfm._base import to_csr_data
from skfm._kernels import afm as kafm
from skfm._kernels import skeleton
from skfm._trainer import readonly

LOGISTIC, SQUARED = 0, 1
H_FD = 1e-6
SETTINGS = settings(max_examples=30, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


# ---------------------------------------------------------------------------------------------
# independent float64 reference
# ---------------------------------------------------------------------------------------------
def split_head(Hv, d, t):
    Hv = np.asarray(Hv, np.float64)
    W = Hv[:t * d].reshape(t, d)
    b = Hv[t * d:t * d + t]
    h = Hv[t * d + t:t * d + 2 * t]
    p = Hv[t * d + 2 * t:t * d + 2 * t + d]
    return W, b, h, p


def naive_attention(T, Hv, t, idx, val):
    """(pairs, weights, pair products) of one row by explicit loops."""
    T = np.asarray(T, np.float64)
    d = T.shape[1] - 1
    W, b, h, p = split_head(Hv, d, t)
    pairs, logits, prods = [], [], []
    for a in range(len(idx)):
        for c in range(a + 1, len(idx)):
            e = (T[idx[a], 1:] * val[a]) * (T[idx[c], 1:] * val[c])
            logits.append(float(h @ np.maximum(W @ e + b, 0.0)))
            pairs.append((idx[a], idx[c]))
            prods.append(e)
    if not pairs:
        return np.empty((0, 2), int), np.empty(0), np.empty((0, d))
    logits = np.array(logits)
    w = np.exp(logits - logits.max())
    return np.array(pairs), w / w.sum(), np.array(prods)


def naive_row(w0, T, Hv, t, idx, val):
    T = np.asarray(T, np.float64)
    d = T.shape[1] - 1
    _, _, _, p = split_head(Hv, d, t)
    f = float(np.ravel(w0)[0]) + (float(np.dot(T[idx, 0], val)) if len(idx) else 0.0)
    _, a, e = naive_attention(T, Hv, t, idx, val)
    if len(a):
        f += float(p @ (a @ e))
    return f


def loss(f, y, loss_id):
    if loss_id == LOGISTIC:
        return float(np.logaddexp(0.0, f) - y * f)
    return 0.5 * (f - y) ** 2


def rows_of(X):
    X = sp.csr_matrix(X)
    X.sort_indices()
    return [(X.indices[X.indptr[r]:X.indptr[r + 1]].astype(np.int64),
             X.data[X.indptr[r]:X.indptr[r + 1]].astype(np.float64)) for r in range(X.shape[0])]


def batch_objective(w0, T, Hv, t, rows, y, sw, loss_id, alpha, att_alpha):
    """(1/B) sum_b sw_b l(f_b, y_b) + alpha/2 sum_{j touched} ||T_j||^2 + att_alpha/2 ||W||^2."""
    B = len(rows)
    d = T.shape[1] - 1
    obj = sum(sw[b] * loss(naive_row(w0, T, Hv, t, *rows[b]), y[b], loss_id)
              for b in range(B)) / B
    touched = np.unique(np.concatenate([r[0] for r in rows])) if B else np.empty(0, int)
    obj += 0.5 * alpha * float(np.sum(np.asarray(T, np.float64)[touched] ** 2))
    W = split_head(Hv, d, t)[0]
    return obj + 0.5 * att_alpha * float(np.sum(W ** 2))


def fd(fun, x, i, h=H_FD):
    x = x.copy()
    x0 = x.flat[i]
    x.flat[i] = x0 + h
    up = fun(x)
    x.flat[i] = x0 - h
    dn = fun(x)
    return (up - dn) / (2 * h)


def random_problem(seed, n_features, d, t, B, max_nnz):
    """Rows with 0..max_nnz nonzeros (always at least one row with 0, 1 and >= 2 when B >= 3),
    non-one-hot values, random parameters of a trained-looking scale."""
    rng = np.random.default_rng(seed)
    dense = np.zeros((B, n_features))
    for b in range(B):
        m = [0, 1, max(2, max_nnz)][b] if b < 3 else int(rng.integers(0, max_nnz + 1))
        m = min(m, n_features)
        cols = rng.choice(n_features, m, replace=False)
        dense[b, cols] = rng.uniform(0.3, 1.7, m) * rng.choice([-1.0, 1.0], m)
    T = rng.normal(0.0, 0.7, (n_features, 1 + d))
    Hv = rng.normal(0.0, 0.7, kafm.head_size(d, t))
    w0 = np.array([rng.normal()])
    y = rng.uniform(0, 1, B)
    sw = rng.uniform(0.2, 2.0, B)
    return sp.csr_matrix(dense), w0, T, Hv, y, sw


# ---------------------------------------------------------------------------------------------
# gradients
# ---------------------------------------------------------------------------------------------
@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), d=st.integers(1, 3), t=st.integers(1, 3),
       B=st.integers(1, 6), max_nnz=st.integers(2, 4), loss_id=st.sampled_from([0, 1]),
       alpha=st.sampled_from([0.0, 0.3]), att_alpha=st.sampled_from([0.0, 0.5]))
def test_batch_gradient_matches_finite_differences(seed, d, t, B, max_nnz, loss_id, alpha,
                                                   att_alpha):
    n_features = 6
    X, w0, T, Hv, y, sw = random_problem(seed, n_features, d, t, B, max_nnz)
    Xc = to_csr_data(X, np.float64)
    rows = rows_of(X)
    slot = np.full(n_features, -1, np.int32)
    spec = AFMCore(attention_factor=t, attention_alpha=att_alpha).spec(
        {"seed": np.array([0], np.int64)}, train=False)
    # read-only rows, as training passes its gathered rows (the same compiled code)
    obj, g0, uniq, GT, gH = skeleton.batch_gradient(Xc.indptr, Xc.indices, Xc.data, readonly(y),
                                                    readonly(sw), w0, T, Hv, loss_id, alpha,
                                                    slot, spec)
    assert (slot == -1).all()
    ref = batch_objective(w0, T, Hv, t, rows, y, sw, loss_id, alpha, att_alpha)
    np.testing.assert_allclose(obj, ref, rtol=1e-10, atol=1e-12)

    def obj_w0(v):
        return batch_objective(v, T, Hv, t, rows, y, sw, loss_id, alpha, att_alpha)
    np.testing.assert_allclose(g0, fd(lambda v: obj_w0(v[0]), w0, 0), rtol=1e-5, atol=1e-7)

    touched = sorted(set(np.concatenate([r[0] for r in rows]).tolist()))
    assert sorted(uniq.tolist()) == touched
    for u, j in enumerate(uniq):
        for k in range(d + 1):
            num = fd(lambda M: batch_objective(w0, M, Hv, t, rows, y, sw, loss_id, alpha,
                                               att_alpha), T, j * (d + 1) + k)
            np.testing.assert_allclose(GT[u, k], num, rtol=1e-5, atol=1e-7)
    for i in range(len(Hv)):
        num = fd(lambda v: batch_objective(w0, T, v, t, rows, y, sw, loss_id, alpha, att_alpha),
                 Hv, i)
        np.testing.assert_allclose(gH[i], num, rtol=1e-5, atol=1e-7)


def assert_one_sgd_step(obj, X, w0, T, Hv, y, sw, t, loss_id, alpha, att_alpha, lr, rate,
                        seed):
    """train_epoch over X as one batch with plain SGD moves (w0, T, H) by -lr times the central
    finite-difference gradient of ``obj(w0, T, H)``."""
    gT = np.zeros_like(T)
    for i in range(T.size):
        gT.flat[i] = fd(lambda M: obj(w0[0], M, Hv), T, i)
    gH = np.array([fd(lambda v: obj(w0[0], T, v), Hv, i) for i in range(len(Hv))])
    g0 = fd(lambda v: obj(v[0], T, Hv), w0, 0)
    w0n, Tn, Hn = w0.copy(), T.copy(), Hv.copy()
    core = AFMCore(attention_factor=t, dropout=rate, attention_alpha=att_alpha)
    params = {"w0": w0n, "T": Tn, "H": Hn, "seed": np.array([seed], np.int64)}
    state = core.init_state(params, "sgd")
    hp = {"batch_size": X.shape[0], "solver": "sgd", "lr": lr, "beta_1": 0.9, "beta_2": 0.999,
          "epsilon": 1e-8, "loss_id": loss_id, "alpha": alpha, "epoch": 0}
    Xc = to_csr_data(X, np.float64)
    block = (Xc.indptr, Xc.indices, Xc.data, readonly(y), readonly(sw))  # as training's
    _, steps, status = core.train_epoch(params, state, block, hp,
                                        np.full((1, T.shape[0]), -1, np.int32))
    assert (steps, status) == (1, 0)
    np.testing.assert_allclose(w0n, w0 - lr * g0, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(Tn, T - lr * gT, rtol=1e-7, atol=1e-9)  # untouched rows: grad 0
    np.testing.assert_allclose(Hn, Hv - lr * gH, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("loss_id", [LOGISTIC, SQUARED])
def test_one_sgd_step_applies_the_finite_difference_gradient(loss_id):
    """train_epoch over one batch with plain SGD: new params = old - lr * (FD gradient)."""
    d, t, n_features, B = 3, 2, 7, 5
    X, w0, T, Hv, y, sw = random_problem(3, n_features, d, t, B, 4)
    if loss_id == LOGISTIC:
        y = np.round(y)
    rows = rows_of(X)
    alpha, att_alpha, lr = 0.1, 0.2, 0.05
    obj = lambda w0_, T_, H_: batch_objective(w0_, T_, H_, t, rows, y, sw, loss_id, alpha,  # noqa
                                              att_alpha)
    assert_one_sgd_step(obj, X, w0, T, Hv, y, sw, t, loss_id, alpha, att_alpha, lr, 0.0, 5)


def test_one_sgd_step_with_dropout_applies_the_masked_gradient():
    """With dropout, batch row b's pooled vector is multiplied by the mask that _dropout_mask
    draws for (seed, epoch, step, b); a step is plain SGD on the objective with those masks
    fixed, i.e. with p replaced by p * mask_b in row b: new params = old - lr * FD gradient."""
    d, t, n_features, B = 3, 2, 7, 6
    X, w0, T, Hv, y, sw = random_problem(4, n_features, d, t, B, 4)
    y = np.round(y)
    rows = rows_of(X)
    rate, seed, alpha, att_alpha, lr = 0.4, 5, 0.1, 0.2, 0.05
    masks = np.empty((B, d))
    st_ = np.zeros(1, np.uint64)
    for b in range(B):  # epoch 0, the first batch is step 1
        kafm._dropout_mask(masks[b], rate, seed, 0, 1, b, st_)
    assert (masks == 0).any() and (masks > 1).any()

    def obj(w0_, T_, H_):
        o = 0.0
        for b in range(B):
            Hb = np.array(H_, np.float64)
            Hb[t * d + 2 * t:] *= masks[b]
            o += sw[b] * loss(naive_row(w0_, T_, Hb, t, *rows[b]), y[b], LOGISTIC)
        touched = np.unique(np.concatenate([r[0] for r in rows]))
        return (o / B + 0.5 * alpha * float(np.sum(T_[touched] ** 2))
                + 0.5 * att_alpha * float(np.sum(split_head(H_, d, t)[0] ** 2)))

    assert_one_sgd_step(obj, X, w0, T, Hv, y, sw, t, LOGISTIC, alpha, att_alpha, lr, rate, seed)


# ---------------------------------------------------------------------------------------------
# predictions, saliency, attention scores
# ---------------------------------------------------------------------------------------------
@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), d=st.integers(0, 4), t=st.integers(1, 4),
       B=st.integers(1, 12), max_nnz=st.integers(2, 6))
def test_decision_matches_naive_forward(seed, d, t, B, max_nnz):
    X, w0, T, Hv, y, sw = random_problem(seed, 8, d, t, B, max_nnz)
    core = AFMCore(attention_factor=t)
    params = {"w0": w0, "T": T, "H": Hv, "seed": np.array([0], np.int64)}
    out = core.decision(params, to_csr_data(X, np.float64))
    ref = [naive_row(w0[0], T, Hv, t, *r) for r in rows_of(X)]
    np.testing.assert_allclose(out, ref, rtol=1e-10, atol=1e-12)


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), d=st.integers(1, 4), t=st.integers(1, 4),
       B=st.integers(1, 8), max_nnz=st.integers(2, 5), loss_id=st.sampled_from([0, 1]))
@pytest.mark.parametrize("cache", [None, 0, 3, 100])
def test_saliency_matches_finite_differences(seed, d, t, B, max_nnz, loss_id, cache):
    """S(x, y) = d/ds L(f(s x), y) at s = 1, without the pair cache of SMFM's selection and with
    one of none, some (pairs of two cached features, of one, of none) and all of the features."""
    X, w0, T, Hv, y, sw = random_problem(seed, 8, d, t, B, max_nnz)
    core = AFMCore(attention_factor=t)
    params = {"w0": w0, "T": T, "H": Hv, "seed": np.array([0], np.int64)}
    Xc = to_csr_data(X, np.float64)
    if cache is None:
        out = core.saliency(params, Xc, y, loss_id)
    else:
        core.pair_cache_features = cache
        ctx = core.saliency_context(params, Xc)
        assert ctx[1] == min(cache, len(np.unique(Xc.indices)))
        out = core.saliency(params, Xc, y, loss_id, ctx)
    for b, (idx, val) in enumerate(rows_of(X)):
        num = fd(lambda s: loss(naive_row(w0[0], T, Hv, t, idx, s[0] * val), y[b], loss_id),
                 np.array([1.0]), 0)
        np.testing.assert_allclose(out[b], num, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("cache", [0, 4, 100])
@pytest.mark.parametrize("loss_id", [0, 1])
def test_selection_keeps_the_most_salient_candidate(cache, loss_id):
    """Alg. 2 for AFM (the generic selector, scoring with the pair cache built once per
    selection from the training rows): every first parent keeps the candidate of
    draw_candidates whose mixed row lam x + (1 - lam) r has the largest saliency, computed here
    by finite differences of the naive AFM on the dense mixed row."""
    from skfm._kernels import mixup as kmix
    from skfm._trainer import Augmenter
    n, nf, d, t, p, n_parents = 14, 9, 3, 4, 6, 40
    rng = np.random.default_rng(5 + loss_id)
    Xd = (rng.uniform(0.3, 1.7, (n, nf)) * (rng.random((n, nf)) < 0.45))
    Xd[:, 0] = 1.0  # a feature every row shares
    T = rng.normal(0.0, 0.7, (nf, 1 + d))
    Hv = rng.normal(0.0, 0.7, kafm.head_size(d, t))
    w0 = np.array([0.2])
    params = {"w0": w0, "T": T, "H": Hv, "seed": np.array([0], np.int64)}
    core = AFMCore(attention_factor=t)
    core.pair_cache_features = cache
    y = rng.integers(0, 2, n).astype(float) if loss_id == LOGISTIC else rng.normal(size=n)
    parents = rng.integers(0, n, n_parents).astype(np.int64)
    seed, epoch = 99, 2
    cand_p, cand_l = kmix.draw_candidates(0, n_parents, n, p, seed, epoch, 0.5, 0.5)
    X = to_csr_data(sp.csr_matrix(Xd), np.float64)
    partners, lams = Augmenter("saliency", 0.5, 0.5, 1.0, p, chunk=16).select(
        core, [params], X, np.asfortranarray(y.reshape(-1, 1)), loss_id, parents, seed, epoch)
    for i in range(n_parents):
        sal = []
        for k in range(p):
            lam = cand_l[i, k]
            row = lam * Xd[parents[i]] + (1 - lam) * Xd[cand_p[i, k]]
            ym = lam * y[parents[i]] + (1 - lam) * y[cand_p[i, k]]
            idx = np.flatnonzero(row)
            sal.append(fd(lambda s: loss(naive_row(w0[0], T, Hv, t, idx, s[0] * row[idx]), ym,
                                         loss_id), np.array([1.0]), 0))
        chosen = [k for k in range(p) if cand_p[i, k] == partners[i] and cand_l[i, k] == lams[i]]
        assert chosen, f"parent #{i}: not one of its candidates"
        tol = 1e-6 * (1.0 + np.abs(sal).max())
        assert max(sal[k] for k in chosen) >= max(sal) - tol, (i, chosen, sal)


def _data(n=120, n_features=12, seed=0):
    rng = np.random.default_rng(seed)
    X = sp.random(n, n_features, density=0.3, random_state=seed, format="csr")
    X.data = rng.uniform(0.5, 1.5, X.nnz)
    X = X.tolil()
    X[0, :] = 0  # rows with 0 and 1 nonzeros
    X[1, :] = 0
    X[1, 3] = 1.0
    X = X.tocsr()
    s = np.asarray(X.sum(1)).ravel()
    y = (s + rng.normal(0, 0.3, n) > np.median(s)).astype(int)
    return X, y


def test_estimator_predictions_match_naive_forward():
    X, y = _data()
    clf = AFMClassifier(n_factors=3, attention_factor=4, max_iter=5, random_state=0).fit(X, y)
    prm = clf._params[0]
    ref = np.array([naive_row(prm["w0"][0], prm["T"], prm["H"], 4, *r) for r in rows_of(X)])
    np.testing.assert_allclose(clf.decision_function(X), ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[(ref > 0).astype(int)])
    reg = AFMRegressor(n_factors=3, attention_factor=4, max_iter=5, random_state=0,
                       dropout=0.4).fit(X, y.astype(float))
    prm = reg._params[0]
    ref = np.array([naive_row(prm["w0"][0], prm["T"], prm["H"], 4, *r) for r in rows_of(X)])
    np.testing.assert_allclose(reg.predict(X), ref, rtol=1e-10, atol=1e-12)  # no dropout


def test_attention_scores_sum_to_one_and_match_reference():
    X, y = _data()
    clf = AFMClassifier(n_factors=3, attention_factor=4, max_iter=3, random_state=0).fit(X, y)
    indptr, pairs, weights = clf.attention_scores(X)
    prm = clf._params[0]
    assert indptr.shape == (X.shape[0] + 1,)
    for r, (idx, val) in enumerate(rows_of(X)):
        m = len(idx)
        assert indptr[r + 1] - indptr[r] == m * (m - 1) // 2
        w = weights[indptr[r]:indptr[r + 1]]
        if m >= 2:
            np.testing.assert_allclose(w.sum(), 1.0, rtol=1e-12)
        rp, rw, _ = naive_attention(prm["T"], prm["H"], 4, idx, val)
        np.testing.assert_array_equal(pairs[indptr[r]:indptr[r + 1]], rp.reshape(-1, 2))
        np.testing.assert_allclose(w, rw, rtol=1e-10, atol=1e-13)
    # multiclass (one-vs-rest): one row of weights per class
    y3 = np.arange(X.shape[0]) % 3
    mc = AFMClassifier(n_factors=3, attention_factor=4, max_iter=2, random_state=0).fit(X, y3)
    ip3, _, w3 = mc.attention_scores(X)
    assert w3.shape == (3, ip3[-1])


def test_saliency_method_matches_finite_differences():
    X, y = _data()
    reg = AFMRegressor(n_factors=3, attention_factor=4, max_iter=3, random_state=0).fit(X, y)
    prm = reg._params[0]
    sal = reg.saliency(X, y)
    for b, (idx, val) in enumerate(rows_of(X)):
        num = fd(lambda s: loss(naive_row(prm["w0"][0], prm["T"], prm["H"], 4, idx, s[0] * val),
                                y[b], SQUARED), np.array([1.0]), 0)
        np.testing.assert_allclose(sal[b], num, rtol=1e-5, atol=1e-8)


# ---------------------------------------------------------------------------------------------
# training behaviour
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("Est", [AFMClassifier, AFMRegressor])
def test_same_model_for_any_number_of_threads(Est):
    X, y = _data(n=300, seed=1)
    kw = dict(n_factors=4, attention_factor=5, max_iter=4, batch_size=64, random_state=7,
              dropout=0.3, attention_alpha=0.01, augmentation="mix")
    a = Est(n_jobs=1, **kw).fit(X, y)
    b = Est(n_jobs=2, **kw).fit(X, y)
    for pa, pb in zip(a._params, b._params):
        for k in pa:
            np.testing.assert_array_equal(pa[k], pb[k])


def test_dropout_changes_training_not_inference():
    X, y = _data(n=200, seed=2)
    kw = dict(n_factors=4, attention_factor=5, max_iter=3, random_state=0)
    a = AFMRegressor(dropout=0.0, **kw).fit(X, y)
    b = AFMRegressor(dropout=0.5, **kw).fit(X, y)
    assert not np.array_equal(a._params[0]["T"], b._params[0]["T"])
    np.testing.assert_array_equal(b.predict(X), b.predict(X))


def test_training_reduces_loss():
    X, y = _data(n=400, seed=3)
    clf = AFMClassifier(n_factors=4, attention_factor=8, learning_rate_init=0.01, max_iter=30,
                        random_state=0).fit(X, y)
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]
    assert clf.score(X, y) > 0.7


@pytest.mark.parametrize("Est", [AFMClassifier, AFMRegressor])
def test_saliency_augmentation_fits_and_predicts(Est):
    X, y = _data(n=150, seed=4)
    est = Est(n_factors=3, attention_factor=4, max_iter=3, augmentation="saliency",
              n_candidates=4, random_state=0).fit(X, y)
    assert est.predict(X).shape == (X.shape[0],)
    assert np.isfinite(est.loss_curve_).all()


def test_float32_input():
    X, y = _data(n=100, seed=5)
    clf = AFMClassifier(n_factors=3, attention_factor=4, max_iter=3,
                        random_state=0).fit(X.astype(np.float32), y)
    assert clf._params[0]["T"].dtype == np.float32
    prm = clf._params[0]
    ref = np.array([naive_row(prm["w0"][0], prm["T"], prm["H"], 4, idx, val)
                    for idx, val in rows_of(X.astype(np.float32))])
    np.testing.assert_allclose(clf.decision_function(X.astype(np.float32)), ref, rtol=1e-5,
                               atol=1e-6)


def _with_stored_zeros(X):
    """X plus one explicitly stored 0.0 in each row (same matrix, more stored entries)."""
    A = X.toarray()
    rows, cols = np.nonzero(A == 0)
    first = np.unique(rows, return_index=True)[1]
    Z = sp.csr_matrix((np.concatenate([X.tocoo().data, np.zeros(len(first))]),
                       (np.concatenate([X.tocoo().row, rows[first]]),
                        np.concatenate([X.tocoo().col, cols[first]]))), shape=X.shape)
    assert (Z.data == 0).sum() == len(first) > 0 and np.array_equal(Z.toarray(), A)
    return Z


def test_stored_zeros_change_nothing():
    """The attention's softmax runs over the pairs of a row's nonzeros: a stored 0.0 is no
    nonzero, so fitting, predicting and the attention scores equal the canonical matrix's."""
    X, y = _data()
    Z = _with_stored_zeros(X)
    kw = dict(n_factors=3, attention_factor=4, max_iter=3, random_state=0)
    clf = AFMClassifier(**kw).fit(X, y)
    np.testing.assert_array_equal(clf.decision_function(Z), clf.decision_function(X))
    np.testing.assert_array_equal(AFMClassifier(**kw).fit(Z, y).decision_function(X),
                                  clf.decision_function(X))
    for a, b in zip(clf.attention_scores(Z), clf.attention_scores(X)):
        np.testing.assert_array_equal(a, b)
    assert Z.nnz > X.nnz  # the caller's matrix keeps its stored zeros


def test_changed_attention_factor_after_fit():
    """Prediction uses the attention size the model was fitted with; continuing the model with
    another size is an error; a new fit takes the new size."""
    X, y = _data()
    clf = AFMClassifier(n_factors=3, attention_factor=4, max_iter=2, random_state=0).fit(X, y)
    before = clf.decision_function(X)
    scores = clf.attention_scores(X)[2]
    clf.set_params(attention_factor=7)
    np.testing.assert_array_equal(clf.decision_function(X), before)
    np.testing.assert_array_equal(clf.attention_scores(X)[2], scores)
    with pytest.raises(ValueError, match="attention_factor=7, but the model was fitted with "
                                         "attention_factor=4"):
        clf.partial_fit(X, y)
    with pytest.raises(ValueError, match="attention_factor"):
        clf.set_params(warm_start=True).fit(X, y)
    np.testing.assert_array_equal(clf.decision_function(X), before)
    clf.set_params(warm_start=False).fit(X, y)
    assert clf._params[0]["H"].size == kafm.head_size(3, 7) != kafm.head_size(3, 4)
