"""Independent checks of the IFM model (Hong et al. 2019) implemented by skfm's IFM kernels.

Every expected value comes from tests/_ifm_reference.py, a dense float64 implementation by
explicit loops over a row's pairs of nonzeros; gradients and saliency are central finite
differences of it.  Nothing is compared with another output of skfm itself (except in the
determinism tests, which compare two fits).

Tolerances: kernels vs the reference's forward rtol 1e-10 / atol 1e-12; kernels vs central
finite differences (step 1e-6) rtol 1e-5 / atol 1e-7.  Problems come from seeded generators, so a
finite-difference step straddling a ReLU kink is as unlikely as for random data.
"""
import _ifm_reference as ref
import numpy as np
import pytest
import scipy.sparse as sp
from test_afm import _with_stored_zeros

from skfm import IFMClassifier, IFMRegressor
from skfm._base import to_csr_data
from skfm._ifm import IFMCore
from skfm._kernels import afm as kafm
from skfm._kernels import ifm as kifm

LOGISTIC, SQUARED = 0, 1
FIELDS = np.array([0, 0, 1, 1, 2, 2, 2, 3])  # multi-hot rows: pairs within a field too

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def to_skfm(prm):
    """skfm's parameter dict (w0, T = [w | V], H = [W | b | h | U | D], seed) of a reference
    parameter dict."""
    T = np.column_stack([prm["w"], prm["V"]])
    H = np.concatenate([prm["W"].ravel(), prm["b"], prm["h"], prm["U"].ravel(),
                        prm["D"].ravel()])
    return {"w0": np.array([prm["w0"]]), "T": T, "H": H, "seed": np.array([7], np.int64)}


def from_skfm(params, t, nf, kf, fields, tau):
    """The reference's parameter dict of skfm's (the inverse of to_skfm)."""
    T, H = params["T"].astype(np.float64), params["H"]
    d = T.shape[1] - 1
    o = t * d + 2 * t
    return {"w0": float(params["w0"][0]), "w": T[:, 0].copy(), "V": T[:, 1:].copy(),
            "W": H[:t * d].reshape(t, d), "b": H[t * d:t * d + t], "h": H[t * d + t:o],
            "U": H[o:o + nf * kf].reshape(nf, kf), "D": H[o + nf * kf:].reshape(kf, d),
            "fields": np.asarray(fields), "tau": tau}


def random_rows(rng, B, n_features, max_nnz):
    """Rows with 0 .. max_nnz nonzeros (the first three with 0, 1 and max_nnz), non-one-hot
    values of both signs."""
    dense = np.zeros((B, n_features))
    for b in range(B):
        m = [0, 1, max_nnz][b] if b < 3 else int(rng.integers(0, max_nnz + 1))
        cols = rng.choice(n_features, min(m, n_features), replace=False)
        dense[b, cols] = rng.uniform(0.3, 1.7, len(cols)) * rng.choice([-1.0, 1.0], len(cols))
    return dense


def problem(seed, d=3, t=2, kf=2, B=6, max_nnz=5, tau=0.7):
    rng = np.random.default_rng(seed)
    X = random_rows(rng, B, len(FIELDS), max_nnz)
    prm = ref.random_params(rng, len(FIELDS), d, t, FIELDS, kf, tau)
    y = rng.uniform(0, 1, B)
    sw = rng.uniform(0.2, 2.0, B)
    return X, prm, y, sw


def make_core(prm, dropout=0.0, attention_alpha=0.0, field_alpha=0.0):
    return IFMCore(FIELDS, FIELDS.max() + 1, prm["W"].shape[0], prm["U"].shape[1], prm["tau"],
                   dropout, attention_alpha, field_alpha)


# ---------------------------------------------------------------------------------------------
# forward, gradients, saliency
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(4))
def test_decision_matches_reference(seed):
    X, prm, _, _ = problem(seed, d=4, t=3, kf=3, B=12)
    out = make_core(prm).decision(to_skfm(prm), to_csr_data(sp.csr_matrix(X), np.float64))
    np.testing.assert_allclose(out, ref.forward(prm, X), rtol=1e-10, atol=1e-12)


def _check_gradient(X, prm, y, sw, loss_id, alpha, att_alpha, field_alpha, rate, masks):
    core = make_core(prm, rate, att_alpha, field_alpha)
    params = to_skfm(prm)
    Xc = to_csr_data(sp.csr_matrix(X), np.float64)
    obj, g0, uniq, GT, gH = core.batch_gradient(params, Xc, y, sw, loss_id, alpha,
                                                train=rate > 0)

    def fun(q):
        return ref.objective(q, X, y, sw, loss_id, alpha, att_alpha, field_alpha, masks)
    np.testing.assert_allclose(obj, fun(prm), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(g0, ref.fd_grad(fun, prm, "w0")[0], rtol=1e-5, atol=1e-7)
    touched = np.flatnonzero((X != 0).any(0))
    np.testing.assert_array_equal(np.sort(uniq), touched)
    gw, gV = ref.fd_grad(fun, prm, "w"), ref.fd_grad(fun, prm, "V")
    for u, j in enumerate(uniq):
        np.testing.assert_allclose(GT[u, 0], gw[j], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(GT[u, 1:], gV[j], rtol=1e-5, atol=1e-7)
    num = np.concatenate([ref.fd_grad(fun, prm, k).ravel() for k in ("W", "b", "h", "U", "D")])
    np.testing.assert_allclose(gH, num, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("loss_id", [LOGISTIC, SQUARED])
@pytest.mark.parametrize("penalties", [(0.0, 0.0, 0.0), (0.3, 0.5, 0.4)])
def test_batch_gradient_matches_finite_differences(seed, loss_id, penalties):
    """Every parameter's gradient (w0, w, V, W, b, h, U, D), without and with the L2 terms
    (alpha on the touched rows, attention_alpha on W, field_alpha on U and D), no dropout."""
    X, prm, y, sw = problem(seed)
    _check_gradient(X, prm, y, sw, loss_id, *penalties, 0.0, None)


@pytest.mark.parametrize("loss_id", [LOGISTIC, SQUARED])
def test_batch_gradient_with_dropout_matches_the_masked_reference(loss_id):
    """With dropout, row b's pooled vector is multiplied by the mask that afm._dropout_mask
    draws for (seed, epoch 0, step 0, b) (batch_gradient's step); the gradient is the
    reference's with those masks fixed."""
    X, prm, y, sw = problem(11, B=7)
    rate, seed = 0.4, 7
    d = prm["V"].shape[1]
    masks = np.empty((X.shape[0], d))
    st = np.zeros(1, np.uint64)
    for b in range(X.shape[0]):
        kafm._dropout_mask(masks[b], rate, seed, 0, 0, b, st)
    assert (masks == 0).any() and (masks > 1).any()
    _check_gradient(X, prm, y, sw, loss_id, 0.1, 0.2, 0.3, rate, masks)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("loss_id", [LOGISTIC, SQUARED])
@pytest.mark.parametrize("cache", [None, 0, 3, 100])
def test_saliency_matches_finite_differences(seed, loss_id, cache):
    """S(x, y) = d/ds L(f(s x), y) at s = 1, without SMFM's pair cache and with one of none,
    some and all of the features."""
    X, prm, y, _ = problem(seed, d=4, t=3, kf=3, B=10)
    core = make_core(prm)
    params = to_skfm(prm)
    Xc = to_csr_data(sp.csr_matrix(X), np.float64)
    if cache is None:
        out = core.saliency(params, Xc, y, loss_id)
    else:
        core.pair_cache_features = cache
        ctx = core.saliency_context(params, Xc)
        assert ctx[1] == min(cache, len(np.unique(Xc.indices)))
        out = core.saliency(params, Xc, y, loss_id, ctx)
    num = [ref.saliency_fd(prm, X[b], y[b], loss_id) for b in range(X.shape[0])]
    np.testing.assert_allclose(out, num, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("cache", [0, 4, 100])
@pytest.mark.parametrize("loss_id", [LOGISTIC, SQUARED])
def test_selection_keeps_the_most_salient_candidate(cache, loss_id):
    """Alg. 2 for IFM (the generic selector, scoring with the pair cache): every first parent
    keeps the candidate of draw_candidates whose mixed row lam x + (1 - lam) r has the largest
    saliency, computed here by finite differences of the reference on the dense mixed row."""
    from skfm._kernels import mixup as kmix
    from skfm._trainer import Augmenter
    n, p, n_parents = 14, 6, 40
    rng = np.random.default_rng(5 + loss_id)
    Xd = rng.uniform(0.3, 1.7, (n, len(FIELDS))) * (rng.random((n, len(FIELDS))) < 0.45)
    Xd[:, 0] = 1.0  # a feature every row shares
    prm = ref.random_params(rng, len(FIELDS), 3, 4, FIELDS, 2, tau=0.5)
    core = make_core(prm)
    core.pair_cache_features = cache
    y = rng.integers(0, 2, n).astype(float) if loss_id == LOGISTIC else rng.normal(size=n)
    parents = rng.integers(0, n, n_parents).astype(np.int64)
    seed, epoch = 99, 2
    cand_p, cand_l = kmix.draw_candidates(0, n_parents, n, p, seed, epoch, 0.5, 0.5)
    X = to_csr_data(sp.csr_matrix(Xd), np.float64)
    partners, lams = Augmenter("saliency", 0.5, 0.5, 1.0, p, chunk=16).select(
        core, [to_skfm(prm)], X, np.asfortranarray(y.reshape(-1, 1)), loss_id, parents, seed,
        epoch)
    for i in range(n_parents):
        sal = []
        for k in range(p):
            lam = cand_l[i, k]
            row = lam * Xd[parents[i]] + (1 - lam) * Xd[cand_p[i, k]]
            ym = lam * y[parents[i]] + (1 - lam) * y[cand_p[i, k]]
            sal.append(ref.saliency_fd(prm, row, ym, loss_id))
        chosen = [k for k in range(p) if cand_p[i, k] == partners[i] and cand_l[i, k] == lams[i]]
        assert chosen, f"parent #{i}: not one of its candidates"
        tol = 1e-6 * (1.0 + np.abs(sal).max())
        assert max(sal[k] for k in chosen) >= max(sal) - tol, (i, chosen, sal)


# ---------------------------------------------------------------------------------------------
# estimators
# ---------------------------------------------------------------------------------------------
def _data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    X = random_rows(rng, n, len(FIELDS), 5)
    X = np.abs(X)
    s = X.sum(1)
    y = (s + rng.normal(0, 0.3, n) > np.median(s)).astype(int)
    return sp.csr_matrix(X), y


KW = dict(n_factors=3, attention_factor=4, n_field_factors=3, tau=2.0, fields=FIELDS)


def _fitted_reference(est, k=0):
    return from_skfm(est._params[k], 4, FIELDS.max() + 1, 3, FIELDS, 2.0)


def test_estimator_predictions_match_reference():
    """Fitted estimators' decision function equals the reference forward pass (no dropout at
    inference), also on a matrix with stored zeros (which take part in no pair)."""
    X, y = _data()
    clf = IFMClassifier(max_iter=5, random_state=0, **KW).fit(X, y)
    expect = ref.forward(_fitted_reference(clf), X)
    np.testing.assert_allclose(clf.decision_function(X), expect, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(clf.decision_function(_with_stored_zeros(X)), expect,
                               rtol=1e-10, atol=1e-12)
    reg = IFMRegressor(max_iter=5, random_state=0, dropout=0.4, **KW).fit(X, y.astype(float))
    np.testing.assert_allclose(reg.predict(X), ref.forward(_fitted_reference(reg), X),
                               rtol=1e-10, atol=1e-12)


def test_init_follows_torch_ref():
    """w0 = w = 0, V ~ N(0, init_std), W, b ~ N(0, 2 / (d + t)), h, U, D ~ N(0, 1)."""
    X, y = _data(n=50)
    kw = dict(KW, n_factors=16, attention_factor=24, n_field_factors=20)
    reg = IFMRegressor(max_iter=1, learning_rate_init=1e-12, random_state=0, **kw)
    reg.fit(X, y.astype(float))
    prm = from_skfm(reg._params[0], 24, 4, 20, FIELDS, 2.0)
    assert np.all(np.abs(prm["w"]) < 1e-9)
    assert abs(prm["V"].std() - 0.01) < 0.003
    for name, std in (("W", np.sqrt(2 / 40)), ("b", np.sqrt(2 / 40)), ("h", 1.0), ("U", 1.0),
                      ("D", 1.0)):
        assert abs(prm[name].std() - std) < 0.35 * std, name


def test_field_importances_and_interaction_scores_match_reference():
    X, y = _data()
    clf = IFMClassifier(max_iter=3, random_state=0, **KW).fit(X, y)
    prm = _fitted_reference(clf)
    nf = FIELDS.max() + 1
    expect = np.array([[np.linalg.norm(ref.field_aspect(prm["U"], prm["D"], f, g))
                        for g in range(nf)] for f in range(nf)])
    np.testing.assert_allclose(clf.field_importances_, expect, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(clf.field_importances_, clf.field_importances_.T)

    indptr, pairs, weights = clf.interaction_scores(X)
    A = X.toarray()
    assert indptr.shape == (X.shape[0] + 1,)
    for r in range(X.shape[0]):
        rp, rT, _ = ref.pair_scores(prm, A[r])
        m = np.count_nonzero(A[r])
        assert indptr[r + 1] - indptr[r] == m * (m - 1) // 2 == len(rp)
        w = weights[indptr[r]:indptr[r + 1]]
        if m >= 2:
            np.testing.assert_allclose(w.sum(), 1.0, rtol=1e-12)
        np.testing.assert_array_equal(pairs[indptr[r]:indptr[r + 1]], np.reshape(rp, (-1, 2)))
        np.testing.assert_allclose(w, rT, rtol=1e-10, atol=1e-13)
    # multiclass (one-vs-rest): one row of weights and one importance matrix per class
    y3 = np.arange(X.shape[0]) % 3
    mc = IFMClassifier(max_iter=2, random_state=0, **KW).fit(X, y3)
    ip3, _, w3 = mc.interaction_scores(X)
    assert w3.shape == (3, ip3[-1])
    assert mc.field_importances_.shape == (3, nf, nf)


def test_saliency_method_matches_finite_differences():
    X, y = _data()
    reg = IFMRegressor(max_iter=3, random_state=0, **KW).fit(X, y)
    prm = _fitted_reference(reg)
    sal = reg.saliency(X, y)
    A = X.toarray()
    num = [ref.saliency_fd(prm, A[b], y[b], SQUARED) for b in range(X.shape[0])]
    np.testing.assert_allclose(sal, num, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("Est", [IFMClassifier, IFMRegressor])
def test_same_model_for_any_number_of_threads(Est):
    X, y = _data(n=300, seed=1)
    kw = dict(KW, max_iter=4, batch_size=64, random_state=7, dropout=0.3, attention_alpha=0.01,
              field_alpha=0.01, augmentation="saliency", n_candidates=3)
    a = Est(n_jobs=1, **kw).fit(X, y)
    b = Est(n_jobs=2, **kw).fit(X, y)
    for pa, pb in zip(a._params, b._params):
        for k in pa:
            np.testing.assert_array_equal(pa[k], pb[k])


def test_training_learns_field_interactions():
    """A target made of one field pair's interaction (fields 0 and 2) is learnt."""
    rng = np.random.default_rng(0)
    n = 1500
    cols = [rng.integers(0, 2, n), 2 + rng.integers(0, 2, n), 4 + rng.integers(0, 3, n),
            np.full(n, 7)]
    X = sp.csr_matrix((np.ones(4 * n), (np.repeat(np.arange(n), 4), np.stack(cols, 1).ravel())),
                      shape=(n, 8))
    y = (cols[0] == (cols[2] == 4)).astype(int)
    clf = IFMClassifier(n_factors=8, attention_factor=8, n_field_factors=4, tau=1.0,
                        learning_rate_init=0.02, max_iter=60, early_stopping=False,
                        random_state=0, fields=FIELDS).fit(X, y)
    assert clf.score(X, y) > 0.95


def test_parameters_are_validated_and_structural():
    X, y = _data()
    with pytest.raises(ValueError, match="tau"):
        IFMClassifier(tau=0.0, **{k: v for k, v in KW.items() if k != "tau"}).fit(X, y)
    with pytest.raises(ValueError, match="n_field_factors"):
        IFMClassifier(**dict(KW, n_field_factors=0)).fit(X, y)
    with pytest.raises(ValueError, match="field_alpha"):
        IFMClassifier(field_alpha=-1.0, **KW).fit(X, y)
    clf = IFMClassifier(max_iter=2, random_state=0, **KW).fit(X, y)
    before = clf.decision_function(X)
    clf.set_params(n_field_factors=5)
    np.testing.assert_array_equal(clf.decision_function(X), before)
    np.testing.assert_array_equal(clf.field_importances_.shape, (4, 4))
    with pytest.raises(ValueError, match="n_field_factors"):
        clf.partial_fit(X, y)
    clf.set_params(warm_start=False).fit(X, y)
    assert clf._params[0]["H"].size == kifm.head_size(3, 4, 4, 5)


def test_fields_are_required():
    X, y = _data()
    with pytest.raises(ValueError, match="fields"):
        IFMClassifier(**dict(KW, fields=None)).fit(X, y)
