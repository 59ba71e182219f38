"""NFM: kernels against an independent float64 numpy implementation, and the estimators."""
import zlib

import numpy as np
import pytest
import scipy.sparse as sp

from skfm._base import to_csr_data
from skfm._cores import FMCore
from skfm._kernels import mixup as kmix
from skfm._kernels.losses import LOGISTIC, SQUARED
from skfm._nfm import NFMClassifier, NFMCore, NFMRegressor
from skfm._trainer import Augmenter, readonly

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

EPS_BN = 1e-5


# ------------------------------------------------------------------ independent numpy model
def unpack(head, d, hidden, bn):
    """Split head in its documented order: per layer W (n, n_prev) row-major, b, [gamma, beta];
    then h."""
    layers, o, prev = [], 0, d
    for n in hidden:
        W = head[o:o + n * prev].reshape(n, prev)
        o += n * prev
        b = head[o:o + n]
        o += n
        g = be = None
        if bn:
            g, be = head[o:o + n], head[o + n:o + 2 * n]
            o += 2 * n
        layers.append((W, b, g, be))
        prev = n
    assert len(head) == o + prev
    return layers, head[o:]


ACT = {"relu": lambda u: np.maximum(u, 0), "tanh": np.tanh,
       "logistic": lambda u: 1 / (1 + np.exp(-u)), "identity": lambda u: u}


def np_forward(X, w0, T, head, hidden, act, bn, bn_mean=None, bn_var=None, bn_train=False):
    """f for dense rows X (n, p): plain numpy, no dropout.  BN columns of the running stats are
    indexed by the layer's offset d + sum of previous sizes."""
    X = np.asarray(X, dtype=np.float64)
    d = T.shape[1] - 1
    w, V = T[:, 0].astype(np.float64), T[:, 1:].astype(np.float64)
    s = X @ V
    q = (X ** 2) @ (V ** 2)
    z = 0.5 * (s ** 2 - q)
    layers, h = unpack(head, d, hidden, bn)
    off = d
    for (W, b, g, be) in layers:
        u = z @ W.T + b
        n = len(b)
        if bn:
            if bn_train:
                mu, var = u.mean(0), u.var(0)
            else:
                mu, var = bn_mean[off:off + n], bn_var[off:off + n]
            u = g * (u - mu) / np.sqrt(var + EPS_BN) + be
        z = ACT[act](u)
        off += n
    return w0[0] + X @ w + z @ h


def np_loss(f, y, loss_id):
    if loss_id == LOGISTIC:
        return np.logaddexp(0, f) - y * f
    return 0.5 * (f - y) ** 2


def np_objective(X, y, sw, w0, T, head, hidden, act, bn, bn_mean, bn_var, bn_train, loss_id,
                 alpha):
    f = np_forward(X, w0, T, head, hidden, act, bn, bn_mean, bn_var, bn_train)
    touched = np.flatnonzero((np.asarray(X) != 0).any(0))
    return np.mean(sw * np_loss(f, y, loss_id)) + 0.5 * alpha * np.sum(T[touched] ** 2)


def make_problem(seed, n=7, p=9, d=4, hidden=(5,), bn=False, act="tanh", density=0.5,
                 dtype=np.float64):
    rng = np.random.default_rng(seed)
    Xd = rng.normal(size=(n, p)) * (rng.random((n, p)) < density)
    Xd[:, 0] += 0.5  # every row has a nonzero
    core = NFMCore(hidden, act, batch_norm=bn)
    params = core.init_params(p, d, dtype, rng, 0.5)
    params["w0"][:] = rng.normal()
    params["T"][:, 0] = rng.normal(size=p)
    params["head"][:] += rng.normal(0, 0.3, params["head"].shape)  # gamma/beta/h off defaults
    params["bn_mean"][:] = rng.normal(0, 0.3, params["bn_mean"].shape)
    params["bn_var"][:] = rng.uniform(0.5, 2.0, params["bn_var"].shape)
    X = to_csr_data(sp.csr_matrix(Xd), np.dtype(dtype))
    return core, params, X, Xd, rng


CASES = [((), "identity", False), ((5,), "tanh", False), ((5,), "logistic", False),
         ((4, 3), "relu", False), ((5,), "tanh", True), ((4, 3), "logistic", True),
         ((3,), "identity", True)]


@pytest.mark.parametrize("hidden,act,bn", CASES)
@pytest.mark.parametrize("bn_train", [False, True])
@pytest.mark.parametrize("loss_id", [LOGISTIC, SQUARED])
def test_batch_gradient_matches_finite_differences(hidden, act, bn, bn_train, loss_id):
    if bn_train and not bn:
        pytest.skip("no batch norm")
    seed = zlib.crc32(repr((hidden, act, bn, loss_id)).encode())
    core, params, X, Xd, rng = make_problem(seed, hidden=hidden, bn=bn, act=act)
    n = Xd.shape[0]
    y = rng.integers(0, 2, n).astype(float) if loss_id == LOGISTIC else rng.normal(size=n)
    sw = rng.uniform(0.5, 2.0, n)
    alpha = 0.03
    obj, g0, uniq, GT, GH = core.batch_gradient(params, X, y, sw, loss_id, alpha, train=bn_train)

    def objective(w0, T, head):
        return np_objective(Xd, y, sw, w0, T, head, hidden, act, bn, params["bn_mean"],
                            params["bn_var"], bn_train, loss_id, alpha)

    w0, T, head = params["w0"], params["T"], params["head"]
    np.testing.assert_allclose(obj, objective(w0, T, head), rtol=1e-10)
    h = 1e-6

    def fd(name, idx):
        arrs = {"w0": w0.copy(), "T": T.copy(), "head": head.copy()}
        arrs[name][idx] += h
        up = objective(arrs["w0"], arrs["T"], arrs["head"])
        arrs[name][idx] -= 2 * h
        dn = objective(arrs["w0"], arrs["T"], arrs["head"])
        return (up - dn) / (2 * h)

    np.testing.assert_allclose(g0, fd("w0", 0), rtol=1e-5, atol=1e-8)
    assert sorted(uniq.tolist()) == np.flatnonzero((Xd != 0).any(0)).tolist()
    num_T = np.array([[fd("T", (j, k)) for k in range(T.shape[1])] for j in uniq])
    np.testing.assert_allclose(GT, num_T, rtol=1e-5, atol=1e-8)
    num_H = np.array([fd("head", c) for c in range(len(head))])
    np.testing.assert_allclose(GH, num_H, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("hidden,act", [((5,), "tanh"), ((4, 3), "relu")])
def test_gradient_and_sgd_step_over_several_row_blocks(hidden, act):
    """Without batch norm the kernels work through blocks of 128 rows: on 300 rows (three
    blocks, the last one partial) predictions equal numpy's, saliency equals finite differences
    along x, the batch has the finite-difference gradient, and one plain-SGD training step over
    it moves every parameter by -lr times that gradient."""
    core, params, X, Xd, rng = make_problem(11, n=300, hidden=hidden, act=act)
    n = Xd.shape[0]
    y = rng.integers(0, 2, n).astype(float)
    sw = rng.uniform(0.5, 2.0, n)
    alpha, lr = 0.03, 0.1
    w0, T, head = (params[k].copy() for k in ("w0", "T", "head"))

    def objective(w0_, T_, head_):
        return np_objective(Xd, y, sw, w0_, T_, head_, hidden, act, False, None, None, False,
                            LOGISTIC, alpha)

    def fd(name, idx, h=1e-6):
        arrs = {"w0": w0.copy(), "T": T.copy(), "head": head.copy()}
        arrs[name][idx] += h
        up = objective(arrs["w0"], arrs["T"], arrs["head"])
        arrs[name][idx] -= 2 * h
        return (up - objective(arrs["w0"], arrs["T"], arrs["head"])) / (2 * h)

    f_np = np_forward(Xd, w0, T, head, hidden, act, False)
    np.testing.assert_allclose(core.decision(params, X), f_np, rtol=1e-10, atol=1e-12)
    h = 1e-5
    sal_fd = (np_loss(np_forward((1 + h) * Xd, w0, T, head, hidden, act, False), y, LOGISTIC)
              - np_loss(np_forward((1 - h) * Xd, w0, T, head, hidden, act, False), y,
                        LOGISTIC)) / (2 * h)
    np.testing.assert_allclose(core.saliency(params, X, y, LOGISTIC), sal_fd, rtol=1e-5,
                               atol=1e-8)

    num_w0 = fd("w0", 0)
    num_T = np.array([[fd("T", (j, k)) for k in range(T.shape[1])] for j in range(T.shape[0])])
    num_H = np.array([fd("head", c) for c in range(len(head))])
    obj, g0, uniq, GT, GH = core.batch_gradient(params, X, y, sw, LOGISTIC, alpha)
    np.testing.assert_allclose(obj, objective(w0, T, head), rtol=1e-10)
    np.testing.assert_allclose(g0, num_w0, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(GT, num_T[uniq], rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(GH, num_H, rtol=1e-5, atol=1e-8)

    state = core.init_state(params, "sgd")
    hp = {"batch_size": n, "solver": "sgd", "lr": lr, "beta_1": 0.9, "beta_2": 0.999,
          "epsilon": 1e-8, "loss_id": LOGISTIC, "alpha": alpha, "epoch": 0}
    block = (X.indptr, X.indices, X.data, readonly(y), readonly(sw))  # as training's
    loss, steps, status = core.train_epoch(params, state, block, hp,
                                           np.full((1, X.n_features), -1, np.int32))
    assert (steps, status) == (1, 0)
    np.testing.assert_allclose(loss / n, objective(w0, T, head) - 0.5 * alpha * np.sum(T ** 2),
                               rtol=1e-10)
    np.testing.assert_allclose(params["w0"], w0 - lr * num_w0, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(params["T"], T - lr * num_T, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(params["head"], head - lr * num_H, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("hidden,act,bn", CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_decision_matches_numpy(hidden, act, bn, dtype):
    core, params, X, Xd, _ = make_problem(3, n=40, p=12, hidden=hidden, bn=bn, act=act,
                                          dtype=dtype)
    ref = np_forward(Xd.astype(dtype), params["w0"], params["T"], params["head"], hidden, act, bn,
                     params["bn_mean"], params["bn_var"])
    tol = 1e-10 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(core.decision(params, X), ref, rtol=tol, atol=tol)


@pytest.mark.parametrize("hidden,act,bn", CASES)
@pytest.mark.parametrize("loss_id", [LOGISTIC, SQUARED])
def test_saliency_matches_finite_differences(hidden, act, bn, loss_id):
    core, params, X, Xd, rng = make_problem(5, n=20, p=10, hidden=hidden, bn=bn, act=act)
    n = Xd.shape[0]
    y = rng.integers(0, 2, n).astype(float) if loss_id == LOGISTIC else rng.normal(size=n)
    sal = core.saliency(params, X, y, loss_id)
    h = 1e-6

    def L(t):
        f = np_forward(t * Xd, params["w0"], params["T"], params["head"], hidden, act, bn,
                       params["bn_mean"], params["bn_var"])
        return np_loss(f, y, loss_id)

    np.testing.assert_allclose(sal, (L(1 + h) - L(1 - h)) / (2 * h), rtol=1e-5, atol=1e-8)


def _fd_saliency(Xd, y, params, hidden, act, bn, loss_id, h=1e-6):
    """Saliency (SMFM Eq. 5) of dense rows by central finite differences of the numpy loss along
    each row: d/dt L(f(t x), y) at t = 1."""
    def L(t):
        f = np_forward(t * Xd, params["w0"], params["T"], params["head"], hidden, act, bn,
                       params["bn_mean"], params["bn_var"])
        return np_loss(f, y, loss_id)
    return (L(1 + h) - L(1 - h)) / (2 * h)


@pytest.mark.parametrize("hidden,act,bn", CASES)
@pytest.mark.parametrize("loss_id", [LOGISTIC, SQUARED])
@pytest.mark.parametrize("p,n_parents", [(6, 200), (129, 3)])
def test_selection_keeps_the_most_salient_candidate(hidden, act, bn, loss_id, p, n_parents):
    """Alg. 2 for NFM: both the closed-form selector (NFMCore.select_partners, candidates never
    built, saliency pushed forward through the MLP) and the generic path (candidates built and
    scored by the saliency kernel) keep, for every first parent, the candidate of
    draw_candidates whose mixed row lam x + (1 - lam) r has the largest saliency, computed here
    by finite differences of the numpy model on the dense mixed row.  Rows share column 0 (and
    often more), a parent may draw itself, and 200 parents x 6 candidates span ten blocks of 21
    parents in two parallel tasks (the last block partial); p = 129 puts one parent per block."""
    core, params, X, Xd, rng = make_problem(13, n=12, p=9, hidden=hidden, bn=bn, act=act)
    n = Xd.shape[0]
    y = rng.integers(0, 2, n).astype(float) if loss_id == LOGISTIC else rng.normal(size=n)
    parents = rng.integers(0, n, n_parents).astype(np.int64)
    seed, epoch = 4242, 7
    cand_p, cand_l = kmix.draw_candidates(0, n_parents, n, p, seed, epoch, 0.5, 0.5)
    lam = cand_l.ravel()[:, None]
    rows = lam * Xd[np.repeat(parents, p)] + (1 - lam) * Xd[cand_p.ravel()]
    ym = lam[:, 0] * y[np.repeat(parents, p)] + (1 - lam[:, 0]) * y[cand_p.ravel()]
    sal = _fd_saliency(rows, ym, params, hidden, act, bn, loss_id).reshape(n_parents, p)
    Y = np.asfortranarray(y.reshape(-1, 1))
    for generic in (False, True):
        aug = Augmenter("saliency", 0.5, 0.5, 1.0, p, generic=generic)
        partners, lams = aug.select(core, [params], X, Y, loss_id, parents, seed, epoch)
        for i in range(n_parents):
            chosen = [k for k in range(p)
                      if cand_p[i, k] == partners[i] and cand_l[i, k] == lams[i]]
            assert chosen, f"generic={generic}, parent #{i}: not one of its candidates"
            tol = 1e-6 * (1.0 + np.abs(sal[i]).max())
            assert max(sal[i, k] for k in chosen) >= sal[i].max() - tol, (
                f"generic={generic}, parent #{i}: chose {max(sal[i, k] for k in chosen)!r}, "
                f"best {sal[i].max()!r}")


def test_nfm0_with_unit_h_is_fm():
    rng = np.random.default_rng(0)
    Xd = rng.normal(size=(30, 15)) * (rng.random((30, 15)) < 0.4)
    X = to_csr_data(sp.csr_matrix(Xd), np.dtype(np.float64))
    core = NFMCore((), "identity")
    params = core.init_params(15, 6, np.float64, rng, 0.3)
    params["w0"][:] = 0.7
    params["T"][:, 0] = rng.normal(size=15)
    params["head"][:] = 1.0
    fm = {"w0": params["w0"].copy(), "T": params["T"].copy()}
    np.testing.assert_allclose(core.decision(params, X), FMCore.decision(fm, X), rtol=1e-12,
                               atol=1e-12)
    y = rng.integers(0, 2, 30).astype(float)
    np.testing.assert_allclose(core.saliency(params, X, y, LOGISTIC),
                               FMCore.saliency(fm, X, y, LOGISTIC), rtol=1e-12, atol=1e-12)


def _data(seed=0, n=300, p=40):
    rng = np.random.default_rng(seed)
    X = sp.random(n, p, density=0.15, random_state=seed, format="csr")
    tot = np.asarray(X.sum(1)).ravel()
    y = (tot + rng.normal(0, 0.3, n) > np.median(tot)).astype(int)
    return X, y


@pytest.mark.parametrize("kw", [{}, {"dropout_bi": 0.3, "dropout_hidden": 0.2},
                                {"batch_norm": True, "dropout_bi": 0.2},
                                {"augmentation": "saliency", "n_candidates": 4}])
def test_same_model_whatever_n_jobs(kw):
    X, y = _data()
    a = NFMClassifier(max_iter=5, batch_size=32, random_state=1, n_jobs=1, **kw).fit(X, y)
    b = NFMClassifier(max_iter=5, batch_size=32, random_state=1, n_jobs=2, **kw).fit(X, y)
    for pa, pb in zip(a._params, b._params):
        for k in pa:
            np.testing.assert_array_equal(pa[k], pb[k])
    np.testing.assert_array_equal(a.decision_function(X), b.decision_function(X))


def test_dropout_and_bn_change_training_and_learn():
    X, y = _data(1)
    plain = NFMClassifier(max_iter=20, batch_size=32, random_state=0).fit(X, y)
    drop = NFMClassifier(max_iter=20, batch_size=32, random_state=0, dropout_bi=0.3).fit(X, y)
    bn = NFMClassifier(max_iter=20, batch_size=32, random_state=0, batch_norm=True).fit(X, y)
    assert not np.array_equal(plain.coef_, drop.coef_)
    assert not np.allclose(bn._params[0]["bn_var"][8:], 1.0)  # running stats were updated
    for m in (plain, drop, bn):
        assert m.score(X, y) > 0.7


@pytest.mark.parametrize("Est", [NFMClassifier, NFMRegressor])
def test_augmentation_saliency_fits(Est):
    X, y = _data(2)
    m = Est(augmentation="saliency", n_candidates=3, max_iter=3, random_state=0).fit(X, y)
    assert np.isfinite(m.predict(X)).all() if Est is NFMRegressor else len(m.predict(X)) == 300
    assert m.saliency(X, y).shape == (300,)


def test_multiclass_and_attributes():
    X, _ = _data(3)
    y = np.arange(300) % 3
    m = NFMClassifier(n_factors=4, max_iter=2, random_state=0).fit(X, y)
    assert m.coef_.shape == (3, 40) and m.factors_.shape == (3, 40, 4)
    assert m.predict_proba(X).shape == (300, 3)


def test_bad_hidden_layer_sizes():
    X, y = _data()
    with pytest.raises(ValueError):
        NFMClassifier(hidden_layer_sizes=(4, 0)).fit(X, y)


@pytest.mark.parametrize("change", [{"hidden_layer_sizes": (5, 3)}, {"batch_norm": True},
                                    {"n_factors": 6}, {"activation": "tanh"}])
def test_changed_layout_after_fit(change):
    """Prediction keeps the fitted layout; continuing the fit with another layout is an error
    that leaves the model as it was."""
    X, y = _data()
    clf = NFMClassifier(n_factors=4, hidden_layer_sizes=(4,), max_iter=2, warm_start=True,
                        random_state=0).fit(X, y)
    before = clf.decision_function(X)
    sal = clf.saliency(X, y)
    clf.set_params(**change)
    np.testing.assert_array_equal(clf.decision_function(X), before)
    np.testing.assert_array_equal(clf.saliency(X, y), sal)
    name = next(iter(change))
    with pytest.raises(ValueError, match=f"{name}=.*but the model was fitted with {name}="):
        clf.fit(X, y)
    with pytest.raises(ValueError, match=name):
        clf.partial_fit(X, y)
    np.testing.assert_array_equal(clf.decision_function(X), before)
