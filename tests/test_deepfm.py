"""DeepFM's kernels and core against the independent float64 numpy DeepFM of
tests/_deepfm_reference.py, finite differences, the generic SMFM selection path, and the
determinism guarantees (threads, dropout seeds)."""
import zlib

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import roc_auc_score

import _deepfm_reference as ref
from skfm._base import to_csr_data
from skfm._deepfm import DeepFMCore
from skfm._kernels import deepfm as kdf
from skfm._kernels import mixup as kmix
from skfm._kernels import mlp as kmlp
from skfm._kernels.losses import LOGISTIC, SQUARED
from skfm._kernels.rng import stream_key, uniform
from skfm._trainer import Augmenter, Workspace, numba_threads, readonly, run_epoch
from skfm.datasets import make_fm_classification

LOSSES = {LOGISTIC: "logistic", SQUARED: "squared"}
# columns of 5 fields, not in consecutive blocks (sizes 3, 2, 4, 2, 1)
FIELDS = np.array([2, 0, 2, 1, 0, 3, 2, 0, 2, 3, 4, 1])
D = 3


# ----------------------------------------------------------------------------- helpers
def multi_field_rows(rng, n, fields=FIELDS):
    """Dense rows with 0, 1 or 2 nonzeros per field (a row may miss a field or hold two of its
    columns), values of either sign away from 0; row 0 holds one nonzero, row 1 none."""
    F = fields.max() + 1
    X = np.zeros((n, len(fields)))
    for r in range(n):
        for f in range(F):
            cols = np.flatnonzero(fields == f)
            k = min(len(cols), rng.choice([0, 1, 1, 2]))
            pick = rng.choice(cols, size=k, replace=False)
            X[r, pick] = rng.uniform(0.3, 1.5, k) * rng.choice([-1.0, 1.0], k)
    X[0] = 0.0
    X[0, 3] = 0.7
    if n > 1:
        X[1] = 0.0
    return X


def head_of(layout, n_head, Ws, bs, gammas, betas, h):
    """The flat H of per-layer lists in the documented order (also for gradients)."""
    H = np.zeros(n_head)
    for l in range(1, layout.shape[0]):
        n, npv = Ws[l - 1].shape
        H[layout[l, kmlp.OFFW]:layout[l, kmlp.OFFW] + n * npv] = Ws[l - 1].ravel()
        H[layout[l, kmlp.OFFB]:layout[l, kmlp.OFFB] + n] = bs[l - 1]
        if gammas:
            H[layout[l, kmlp.OFFG]:layout[l, kmlp.OFFG] + n] = gammas[l - 1]
            H[layout[l, kmlp.OFFBE]:layout[l, kmlp.OFFBE] + n] = betas[l - 1]
    H[n_head - len(h):] = h
    return H


def make_case(seed, hidden=(5, 4), act="relu", bn=False, dropout=0.0, n=9, dtype=np.float64):
    """(core, params, X, Xd, rp): random reference parameters rp copied into the core's."""
    rng = np.random.default_rng(seed)
    F = FIELDS.max() + 1
    rp = ref.random_params(rng, len(FIELDS), D, FIELDS, hidden, act, bn)
    core = DeepFMCore(FIELDS, F, hidden, act, dropout, bn)
    params = core.init_params(len(FIELDS), D, dtype, rng, 0.1)
    lay = params["layout"]
    params["w0"][:] = rp["w0"]
    params["T"][:, 0] = rp["w"]
    params["T"][:, 1:] = rp["V"]
    params["H"][:] = head_of(lay, len(params["H"]), rp["Ws"], rp["bs"], rp["gammas"],
                             rp["betas"], rp["h"])
    for l in range(1, lay.shape[0]):
        z, m = lay[l, kmlp.ZOFF], lay[l, kmlp.SIZE]
        if bn:
            params["bn_mean"][z:z + m] = rp["bn_mean"][l - 1]
            params["bn_var"][z:z + m] = rp["bn_var"][l - 1]
    Xd = multi_field_rows(rng, n)
    X = to_csr_data(sp.csr_matrix(Xd), np.dtype(dtype))
    return core, params, X, Xd, rp


def targets(rng, n, loss_id):
    return rng.uniform(0, 1, n) if loss_id == LOGISTIC else rng.normal(0, 2, n)


def dropout_masks(core, params, B, epoch=0, step=0):
    """The inverted-dropout masks the kernels draw for rows 0..B-1 of a batch: unit u of layer
    l of row b is the u-th draw of the stream (stream_key(seed, epoch, step), b, l)."""
    # as uint64: a key of 2**63 or more would not fit the int64 Numba gives a Python int
    key = np.uint64(stream_key(int(params["seed"][0]), epoch, step))
    p = core.dropout
    masks = []
    for l, n in enumerate(core.hidden, start=1):
        m = np.empty((B, n))
        for b in range(B):
            st = np.array([stream_key(key, b, l)], np.uint64)
            for u in range(n):
                m[b, u] = 0.0 if uniform(st) < p else 1.0 / (1.0 - p)
        masks.append(m)
    return masks


def assert_gradient_is_finite_differences(core, params, X, loss_id, seed, alpha=0.05):
    """d/dw0, the T rows of the batch's features and every entry of d/dH of
    core.batch_gradient are the central differences of its own objective (targets and sample
    weights drawn from ``seed``)."""
    rng = np.random.default_rng(seed)
    y = targets(rng, X.n_rows, loss_id)
    sw = rng.uniform(0.5, 2.0, X.n_rows)
    _obj, g0, uniq, GT, GH = core.batch_gradient(params, X, y, sw, loss_id, alpha)

    def fd(name, idx, h=1e-6):
        vals = []
        for sgn in (1, -1):
            p = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in params.items()}
            p[name][idx] += sgn * h
            vals.append(core.batch_gradient(p, X, y, sw, loss_id, alpha)[0])
        return (vals[0] - vals[1]) / (2 * h)

    np.testing.assert_allclose(g0, fd("w0", 0), rtol=1e-6, atol=1e-9)
    num_T = np.array([[fd("T", (j, k)) for k in range(GT.shape[1])] for j in uniq])
    np.testing.assert_allclose(GT, num_T, rtol=1e-6, atol=1e-9)
    num_H = np.array([fd("H", c) for c in range(len(GH))])
    np.testing.assert_allclose(GH, num_H.reshape(GH.shape), rtol=1e-6, atol=1e-9)
    return GT


def loss_slope_along_rows(core, params, Xd, y, loss_id, h=1e-6):
    """d/dt L(f(t x), y) at t = 1 for each dense row x of Xd, by central differences of the
    core's own (float64) decision."""
    def loss_at(t):
        Xt = to_csr_data(sp.csr_matrix(t * Xd), np.dtype(np.float64))
        return ref.loss_values(core.decision(params, Xt), y, LOSSES[loss_id])

    return (loss_at(1 + h) - loss_at(1 - h)) / (2 * h)


def assert_selector_matches_generic(core, params, X, loss_id, p, n_parents, kind="saliency"):
    """The core's closed-form selector chooses the partners (and, where the partner is not the
    parent itself, the lams) that scoring the materialised candidates chooses (Augmenter's
    generic path), among each parent's drawn candidates (targets and parents drawn from seed
    13, candidates from stream (4242, 7)).  Returns (chosen partners, parents, the first
    candidates)."""
    n = X.n_rows
    rng = np.random.default_rng(13)
    y = targets(rng, n, loss_id)
    parents = rng.integers(0, n, n_parents).astype(np.int64)
    Y = np.asfortranarray(y.reshape(-1, 1))
    got = {}
    for generic in (False, True):
        aug = Augmenter(kind, 0.5, 0.5, 1.0, p, generic=generic)
        got[generic] = aug.select(core, [params], X, Y, loss_id, parents, 4242, 7)
    np.testing.assert_array_equal(got[False][0], got[True][0])
    other = got[False][0] != parents
    np.testing.assert_array_equal(got[False][1][other], got[True][1][other])
    cand_p, cand_l = kmix.draw_candidates(0, n_parents, n, p, 4242, 7, 0.5, 0.5)
    for i in range(n_parents):  # the choice is one of the parent's candidates
        assert ((cand_p[i] == got[False][0][i]) & (cand_l[i] == got[False][1][i])).any()
    return got[False][0], parents, cand_p[:, 0]


def assert_float32_selector_keeps_clear_choices(core, params, X, Xd, seed):
    """A float32 model's closed-form selector keeps the materialised candidates' choice
    (saliency, logistic loss) wherever that choice is clear at float32 precision: 300 parents
    of the rows Xd (X), 8 candidates each."""
    n = X.n_rows
    rng = np.random.default_rng(seed)
    y = targets(rng, n, LOGISTIC)
    parents = rng.integers(0, n, 300).astype(np.int64)
    Y = np.asfortranarray(y.reshape(-1, 1))
    fast, lam_f = Augmenter("saliency", 0.5, 0.5, 1.0, 8).select(core, [params], X, Y, LOGISTIC,
                                                                 parents, 11, 2)
    slow, lam_s = Augmenter("saliency", 0.5, 0.5, 1.0, 8, generic=True).select(
        core, [params], X, Y, LOGISTIC, parents, 11, 2)
    cand_p, cand_l = kmix.draw_candidates(0, 300, n, 8, 11, 2, 0.5, 0.5)
    lam = cand_l.ravel()[:, None]
    rows = lam * Xd[np.repeat(parents, 8)] + (1 - lam) * Xd[cand_p.ravel()]
    ym = lam[:, 0] * y[np.repeat(parents, 8)] + (1 - lam[:, 0]) * y[cand_p.ravel()]
    sal = core.saliency(params, to_csr_data(sp.csr_matrix(rows), np.dtype(np.float32)), ym,
                        LOGISTIC).reshape(300, 8)
    for i in np.flatnonzero((fast != slow) | (lam_f != lam_s)):
        k = np.flatnonzero((cand_p[i] == fast[i]) & (cand_l[i] == lam_f[i]))[0]
        assert sal[i, k] >= sal[i].max() - 1e-5 * (1 + abs(sal[i]).max())
    assert np.mean(fast == slow) > 0.95


def hp_of(batch_size, solver="adam", lr=0.01, alpha=0.0, loss_id=LOGISTIC, epoch=0):
    return {"batch_size": batch_size, "solver": solver, "lr": lr, "beta_1": 0.9,
            "beta_2": 0.999, "epsilon": 1e-8, "loss_id": loss_id, "alpha": alpha,
            "epoch": epoch}


def block_of(X, y, sw):
    return (X.indptr, X.indices, X.data, readonly(np.asarray(y, float)),
            readonly(np.asarray(sw, float)))


CONFIGS = [((5, 4), "relu", False), ((6,), "tanh", False), ((4, 3), "logistic", False),
           ((5,), "identity", False), ((5, 4), "relu", True), ((4,), "tanh", True),
           ((3, 4), "logistic", True)]


# ----------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("hidden,act,bn", CONFIGS)
@pytest.mark.parametrize("loss_id", [LOGISTIC, SQUARED])
@pytest.mark.parametrize("train", [True, False])
def test_batch_gradient_matches_reference(hidden, act, bn, loss_id, train):
    """Objective, d/dw0, the T rows of the batch's features (exactly the features present) and
    every entry of d/dH equal the reference's, for multi-field rows (two nonzeros in a field,
    missing fields, an empty row), sample weights and an L2 term; with batch norm in training
    (batch statistics) and inference (running statistics) mode."""
    seed = zlib.crc32(repr((hidden, act, bn, loss_id, train)).encode())
    core, params, X, Xd, rp = make_case(seed, hidden, act, bn, n=11)
    rng = np.random.default_rng(seed)
    y = targets(rng, 11, loss_id)
    sw = rng.uniform(0.5, 2.0, 11)
    alpha = 0.07
    obj, g0, uniq, GT, GH = core.batch_gradient(params, X, y, sw, loss_id, alpha, train=train)
    loss = LOSSES[loss_id]
    g = ref.batch_gradient(rp, Xd, y, sw, loss, alpha, train=train)
    np.testing.assert_allclose(obj, ref.batch_objective(rp, Xd, y, sw, loss, alpha, train=train),
                               rtol=1e-12)
    np.testing.assert_allclose(g0, g["w0"], rtol=1e-10, atol=1e-14)
    assert sorted(uniq.tolist()) == np.flatnonzero((Xd != 0).any(0)).tolist()
    np.testing.assert_allclose(GT[:, 0], g["w"][uniq], rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(GT[:, 1:], g["V"][uniq], rtol=1e-9, atol=1e-13)
    expect = head_of(params["layout"], len(GH), g["Ws"], g["bs"], g["gammas"], g["betas"],
                     g["h"])
    np.testing.assert_allclose(GH, expect, rtol=1e-9, atol=1e-13)


@pytest.mark.parametrize("bn", [False, True])
def test_batch_gradient_with_dropout_matches_reference_masks(bn):
    """Dropout on the hidden layers: the kernels' gradient is the reference's with the masks
    drawn from the documented streams (row b, layer l), over three blocks of rows."""
    core, params, X, Xd, rp = make_case(5, (6, 5), "tanh", bn, dropout=0.4, n=300)
    rng = np.random.default_rng(5)
    y = targets(rng, 300, LOGISTIC)
    sw = rng.uniform(0.5, 2.0, 300)
    masks = dropout_masks(core, params, 300, epoch=3)
    assert 0.3 < np.mean([(m == 0).mean() for m in masks]) < 0.5
    obj, g0, uniq, GT, GH = core.batch_gradient(params, X, y, sw, LOGISTIC, 0.0, epoch=3)
    g = ref.batch_gradient(rp, Xd, y, sw, "logistic", 0.0, train=True, masks=masks)
    np.testing.assert_allclose(
        obj, ref.batch_objective(rp, Xd, y, sw, "logistic", 0.0, train=True, masks=masks),
        rtol=1e-12)
    np.testing.assert_allclose(g0, g["w0"], rtol=1e-10)
    np.testing.assert_allclose(GT[:, 1:], g["V"][uniq], rtol=1e-8, atol=1e-13)
    expect = head_of(params["layout"], len(GH), g["Ws"], g["bs"], g["gammas"], g["betas"],
                     g["h"])
    np.testing.assert_allclose(GH, expect, rtol=1e-8, atol=1e-13)
    # without the masks the reference disagrees: dropout really acted
    plain = ref.batch_gradient(rp, Xd, y, sw, "logistic", 0.0, train=True)
    assert not np.allclose(GH, head_of(params["layout"], len(GH), plain["Ws"], plain["bs"],
                                       plain["gammas"], plain["betas"], plain["h"]))


@pytest.mark.parametrize("hidden,act,bn,loss_id", [((5, 4), "tanh", False, LOGISTIC),
                                                   ((4,), "logistic", True, SQUARED)])
def test_batch_gradient_matches_finite_differences(hidden, act, bn, loss_id):
    """Central differences of the kernel's own objective in every parameter (w0, each T entry
    of the batch's features, each H entry)."""
    core, params, X, _, _ = make_case(21, hidden, act, bn, n=10)
    assert_gradient_is_finite_differences(core, params, X, loss_id, 21)


# ----------------------------------------------------------------------------- inference
@pytest.mark.parametrize("hidden,act,bn", CONFIGS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_decision_matches_reference(hidden, act, bn, dtype):
    """Over 1100 rows: several blocks and two prediction chunks (1024 rows)."""
    core, params, X, Xd, rp = make_case(3, hidden, act, bn, n=1100, dtype=dtype)
    if dtype == np.float32:  # the reference with the model's rounded table and data
        rp["w"], rp["V"] = params["T"][:, 0].astype(float), params["T"][:, 1:].astype(float)
        Xd = Xd.astype(np.float32).astype(float)
    tol = 1e-11 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(core.decision(params, X), ref.forward(rp, Xd), rtol=tol, atol=tol)


@pytest.mark.parametrize("hidden,act,bn", CONFIGS)
@pytest.mark.parametrize("loss_id", [LOGISTIC, SQUARED])
def test_saliency_matches_reference_and_finite_differences(hidden, act, bn, loss_id):
    """S(x, y) = sum_j x_j dL/dx_j in inference mode: the reference's, and the central
    difference of the kernel's own loss along x, d/dt L(f(t x), y) at t = 1."""
    core, params, X, Xd, rp = make_case(7, hidden, act, bn, n=30)
    y = targets(np.random.default_rng(7), 30, loss_id)
    sal = core.saliency(params, X, y, loss_id)
    np.testing.assert_allclose(sal, ref.saliency(rp, Xd, y, LOSSES[loss_id]), rtol=1e-10,
                               atol=1e-12)
    np.testing.assert_allclose(sal, loss_slope_along_rows(core, params, Xd, y, loss_id),
                               rtol=1e-6, atol=1e-8)


def test_tower_inputs_are_the_first_layer_products():
    """P = W_1 e(x) for every row, over two chunks of 4096 rows."""
    core, params, X, Xd, rp = make_case(8, (5,), "relu", False, n=5000)
    P = kdf.tower_inputs(X.indptr, X.indices, X.data, params["T"], core.fields, params["H"],
                         params["layout"])
    np.testing.assert_allclose(P, ref.field_embeddings(rp, Xd) @ rp["Ws"][0].T, rtol=1e-12,
                               atol=1e-13)


# ----------------------------------------------------------------------------- selection
@pytest.mark.parametrize("hidden,act,bn", CONFIGS)
@pytest.mark.parametrize("loss_id", [LOGISTIC, SQUARED])
@pytest.mark.parametrize("p,n_parents", [(6, 200), (129, 3)])
def test_select_partners_matches_generic_scoring(hidden, act, bn, loss_id, p, n_parents):
    """The closed-form selector (candidates never built) chooses the partners that scoring the
    materialised candidates with the saliency kernel chooses, in inference mode (running BN
    statistics).  Rows share features, a parent may draw itself (then every lam gives the same
    row, so only the partner is compared); 200 parents x 6 candidates span ten blocks of 21
    parents in two parallel tasks, p = 129 puts one parent per block."""
    core, params, X, Xd, rp = make_case(13, hidden, act, bn, n=40)
    chosen, parents, _ = assert_selector_matches_generic(core, params, X, loss_id, p, n_parents)
    assert (chosen != parents).sum() > n_parents // 2


def test_select_partners_of_a_float32_model():
    """A float32 model's selector multiplies in float32: it keeps the materialised candidates'
    choice wherever that choice is clear at float32 precision."""
    core, params, X, Xd, rp = make_case(14, (6, 5), "tanh", False, n=60, dtype=np.float32)
    assert_float32_selector_keeps_clear_choices(core, params, X, Xd, 14)


# ----------------------------------------------------------------------------- training
def test_sgd_step_moves_by_the_gradient_and_updates_bn_statistics():
    """train_epoch on one batch with plain SGD: every parameter moves by -lr times the batch
    gradient, and the BN running statistics by momentum 0.1 towards the batch's (unbiased
    variance)."""
    core, params, X, Xd, rp = make_case(17, (5, 4), "tanh", True, n=300)
    rng = np.random.default_rng(17)
    y = targets(rng, 300, LOGISTIC)
    sw = rng.uniform(0.5, 2.0, 300)
    lr, alpha = 0.1, 0.03
    before = {k: v.copy() for k, v in params.items()}
    obj, g0, uniq, GT, GH = core.batch_gradient(params, X, y, sw, LOGISTIC, alpha)
    state = core.init_state(params, "sgd")
    loss, steps, status = core.train_epoch(params, state, block_of(X, y, sw),
                                           hp_of(300, "sgd", lr, alpha),
                                           np.full((1, X.n_features), -1, np.int32))
    assert (steps, status) == (1, 0)
    reg = 0.5 * alpha * np.sum(before["T"][uniq] ** 2)
    np.testing.assert_allclose(loss / 300, obj - reg, rtol=1e-12)
    np.testing.assert_allclose(params["w0"], before["w0"] - lr * g0, rtol=1e-13)
    np.testing.assert_allclose(params["T"][uniq], before["T"][uniq] - lr * GT, rtol=1e-13)
    untouched = np.setdiff1d(np.arange(X.n_features), uniq)
    np.testing.assert_array_equal(params["T"][untouched], before["T"][untouched])
    np.testing.assert_allclose(params["H"], before["H"] - lr * GH, rtol=1e-12, atol=1e-15)
    c = ref.forward_cache(rp, Xd, train=True)
    lay = params["layout"]
    for l in range(1, lay.shape[0]):
        z, m = lay[l, kmlp.ZOFF], lay[l, kmlp.SIZE]
        np.testing.assert_allclose(params["bn_mean"][z:z + m],
                                   0.9 * before["bn_mean"][z:z + m] + 0.1 * c["mu"][l - 1],
                                   rtol=1e-12)
        np.testing.assert_allclose(params["bn_var"][z:z + m],
                                   0.9 * before["bn_var"][z:z + m]
                                   + 0.1 * c["var"][l - 1] * 300 / 299, rtol=1e-12)


def _fit_epochs(core, X, y, n_threads, epochs=2, augmentation=None, seed=0, batch_size=256):
    rng = np.random.default_rng(seed)
    params = core.init_params(X.n_features, 4, np.float64, rng, 0.1)
    states = [core.init_state(params, "adam")]
    Y = np.asfortranarray(np.asarray(y, float).reshape(-1, 1))
    aug = None if augmentation is None else Augmenter(augmentation, 0.5, 0.5, 1.0, 4)
    slots = np.full((n_threads, X.n_features), -1, np.int32)
    ws = Workspace()
    with numba_threads(n_threads):
        for epoch in range(epochs):
            loss, _, status = run_epoch(core, [params], states, X, Y, np.ones(len(y)), rng,
                                        epoch, hp_of(batch_size), aug, True, slots, ws)
            assert status == 0 and np.isfinite(loss)
    return params


def _fields_data(n=1000, seed=0):
    X, y, fields = make_fm_classification(n, n_fields=6, field_size=15, random_state=seed,
                                          return_fields=True)
    return to_csr_data(sp.csr_matrix(X), np.dtype(np.float64)), y, fields


@pytest.mark.parametrize("kw,augmentation", [({}, None), ({"dropout": 0.3}, None),
                                             ({"batch_norm": True, "dropout": 0.2}, None),
                                             ({"activation": "tanh"}, "saliency"),
                                             ({"batch_norm": True}, "saliency")])
def test_training_is_bit_identical_for_1_and_2_threads(kw, augmentation):
    """Epochs of 1000 rows in batches of 256 (two blocks of rows each, the last batch short),
    SMFM's closed-form selection included, give the same bits on 1 and 2 Numba threads."""
    X, y, fields = _fields_data()
    core = DeepFMCore(fields, fields.max() + 1, (16, 8), **kw)
    a = _fit_epochs(core, X, y, 1, augmentation=augmentation)
    b = _fit_epochs(core, X, y, 2, augmentation=augmentation)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_dropout_training_is_a_function_of_the_seed():
    X, y, fields = _fields_data(seed=1)
    core = DeepFMCore(fields, fields.max() + 1, (16, 8), dropout=0.3)
    a = _fit_epochs(core, X, y, 2, seed=3)
    b = _fit_epochs(core, X, y, 2, seed=3)
    c = _fit_epochs(core, X, y, 2, seed=4)
    plain = _fit_epochs(DeepFMCore(fields, fields.max() + 1, (16, 8)), X, y, 2, seed=3)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["H"], c["H"])
    assert a["seed"][0] == plain["seed"][0] and not np.array_equal(a["H"], plain["H"])


@pytest.mark.parametrize("kw", [{}, {"batch_norm": True}, {"activation": "tanh"}])
def test_training_learns(kw):
    """On data from a planted FM (labels balanced) eight epochs reach a training AUC above 0.8
    (about 0.74 after one epoch)."""
    X, y, fields = _fields_data(3000, seed=2)
    core = DeepFMCore(fields, fields.max() + 1, (32, 16), **kw)
    params = _fit_epochs(core, X, y, 2, epochs=8, batch_size=128)
    assert roc_auc_score(y, core.decision(params, X)) > 0.8


def test_init_and_structure_checks():
    rng = np.random.default_rng(0)
    core = DeepFMCore(FIELDS, 5, (7, 6), batch_norm=True)
    p = core.init_params(len(FIELDS), 4, np.float32, rng, 0.01)
    lay = p["layout"]
    assert p["T"].dtype == np.float32 and np.all(p["T"][:, 0] == 0) and p["w0"][0] == 0
    assert lay[0, kmlp.SIZE] == 20 and lay[1, kmlp.ZOFF] == 0 and lay[2, kmlp.ZOFF] == 7
    W1 = p["H"][lay[1, kmlp.OFFW]:lay[1, kmlp.OFFB]]
    assert W1.size == 7 * 20 and 0.5 < W1.std() / np.sqrt(2 / 27) < 1.5
    assert np.all(p["H"][lay[1, kmlp.OFFB]:lay[1, kmlp.OFFG]] == 0)  # b = 0
    assert np.all(p["H"][lay[1, kmlp.OFFG]:lay[1, kmlp.OFFBE]] == 1)  # gamma = 1
    assert len(p["H"]) == 7 * 20 + 3 * 7 + 6 * 7 + 3 * 6 + 6 and p["bn_mean"].shape == (13,)
    with pytest.raises(ValueError, match="hidden layer"):
        DeepFMCore(FIELDS, 5, ())
    with pytest.raises(ValueError, match="fields"):
        core.init_params(len(FIELDS) + 1, 4, np.float64, rng, 0.01)


# ----------------------------------------------------------------------------- estimators
def reference_of(est):
    """The fitted estimator's parameters as the reference's dict (one output)."""
    (p,) = est._params
    lay, H = p["layout"], p["H"]
    Ws, bs, gammas, betas, bn_mean, bn_var = [], [], [], [], [], []
    bn = lay[1, kmlp.OFFG] >= 0
    sizes = [lay[0, kmlp.SIZE]] + [lay[l, kmlp.SIZE] for l in range(1, lay.shape[0])]
    for l in range(1, lay.shape[0]):
        n, npv, z = sizes[l], sizes[l - 1], lay[l, kmlp.ZOFF]
        Ws.append(H[lay[l, kmlp.OFFW]:lay[l, kmlp.OFFW] + n * npv].reshape(n, npv))
        bs.append(H[lay[l, kmlp.OFFB]:lay[l, kmlp.OFFB] + n])
        if bn:
            gammas.append(H[lay[l, kmlp.OFFG]:lay[l, kmlp.OFFG] + n])
            betas.append(H[lay[l, kmlp.OFFBE]:lay[l, kmlp.OFFBE] + n])
            bn_mean.append(p["bn_mean"][z:z + n])
            bn_var.append(p["bn_var"][z:z + n])
    return {"w0": p["w0"][0], "w": p["T"][:, 0].astype(float),
            "V": p["T"][:, 1:].astype(float), "fields": est.fields_, "n_fields": est.n_fields_,
            "Ws": Ws, "bs": bs, "h": H[len(H) - sizes[-1]:], "activation": est.activation,
            "batch_norm": bool(bn), "gammas": gammas, "betas": betas, "bn_mean": bn_mean,
            "bn_var": bn_var}


@pytest.mark.parametrize("kw", [{}, {"batch_norm": True, "dropout": 0.2},
                                {"activation": "tanh", "augmentation": "saliency"}])
def test_fitted_estimator_is_the_reference_deepfm(kw):
    """Fields given as arbitrary labels (not consecutive columns) are relabelled in sorted order
    and the fitted model's predictions are the reference DeepFM's on its parameters."""
    from skfm import DeepFMClassifier
    rng = np.random.default_rng(5)
    Xd = multi_field_rows(rng, 300)
    y = (Xd @ rng.normal(size=len(FIELDS)) > 0).astype(int)
    labels = FIELDS * 7 + 100
    est = DeepFMClassifier(n_factors=3, hidden_layer_sizes=(6, 5), fields=labels, max_iter=3,
                           batch_size=64, random_state=0, **kw).fit(sp.csr_matrix(Xd), y)
    np.testing.assert_array_equal(est.fields_, FIELDS)
    assert est.n_fields_ == 5 and est.fields is labels
    rp = reference_of(est)
    f = ref.forward(rp, Xd)
    np.testing.assert_allclose(est.decision_function(Xd), f, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(est.predict_proba(Xd)[:, 1], 1 / (1 + np.exp(-f)), rtol=1e-10)


def test_estimator_fields_contract():
    """Fields default to "auto" (make_fm_*'s one-hot fields are recovered); None, too few
    layers and fields of the wrong length raise ValueErrors naming the problem."""
    from skfm import DeepFMClassifier, DeepFMRegressor
    X, y, fields = make_fm_classification(400, n_fields=4, field_size=6, random_state=0,
                                          return_fields=True)
    est = DeepFMClassifier(n_factors=2, hidden_layer_sizes=4, max_iter=1).fit(X, y)
    assert est.fields == "auto" and est.n_fields_ == 4
    np.testing.assert_array_equal(est.fields_, fields)
    assert est._params[0]["layout"][0, kmlp.SIZE] == 4 * 2  # the tower sees n_fields * d
    with pytest.raises(ValueError, match="fields"):
        DeepFMRegressor(fields=None, max_iter=1).fit(X, y)
    with pytest.raises(ValueError, match="at least 1 hidden layer"):
        DeepFMClassifier(hidden_layer_sizes=(), max_iter=1).fit(X, y)
    with pytest.raises(ValueError, match="fields"):
        DeepFMClassifier(fields=fields[:-1], max_iter=1).fit(X, y)
