"""FFM's kernels, core and estimators against the independent float64 numpy FFM of
tests/_ffm_reference.py, finite differences, and the determinism guarantee (threads)."""
import zlib

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.utils._param_validation import InvalidParameterError

import _ffm_reference as ref
from skfm._base import to_csr_data
from skfm._ffm import FFMCore
from skfm._kernels.losses import LOGISTIC, SQUARED
from test_deepfm import (FIELDS, _fields_data, _fit_epochs,
                         assert_float32_selector_keeps_clear_choices,
                         assert_gradient_is_finite_differences, assert_selector_matches_generic,
                         block_of, hp_of, loss_slope_along_rows, multi_field_rows, targets)

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
LOSSES = {LOGISTIC: "logistic", SQUARED: "squared"}
N_FIELDS = int(FIELDS.max()) + 1
K = 3


def make_case(seed, n=9, k=K, dtype=np.float64):
    """(core, params, X, Xd, rp): random reference parameters rp copied into the core's, rows
    with 0, 1 or 2 nonzeros per field (row 0 one nonzero, row 1 none)."""
    rng = np.random.default_rng(seed)
    rp = ref.random_params(rng, len(FIELDS), k, FIELDS)
    core = FFMCore(FIELDS, N_FIELDS)
    params = core.init_params(len(FIELDS), k, dtype, rng, 0.1)
    params["w0"][:] = rp["w0"]
    params["T"][:, 0] = rp["w"]
    params["T"][:, 1:] = rp["V"].reshape(len(FIELDS), -1)
    if dtype == np.float32:  # the reference with the model's rounded table
        rp["w"] = params["T"][:, 0].astype(float)
        rp["V"] = params["T"][:, 1:].astype(float).reshape(rp["V"].shape)
    Xd = multi_field_rows(rng, n)
    if dtype == np.float32:
        Xd = Xd.astype(np.float32).astype(float)
    X = to_csr_data(sp.csr_matrix(Xd), np.dtype(dtype))
    return core, params, X, Xd, rp


def table_of(g):
    """A reference gradient dict as rows of T: [dObj/dw_j | dObj/dV_j flattened]."""
    return np.column_stack([g["w"], g["V"].reshape(len(g["w"]), -1)])


# ----------------------------------------------------------------------------- the reference
def test_reference_matches_the_formula_on_one_row():
    """One row by hand: three nonzeros in fields 2, 0, 2 (features 0, 1, 2)."""
    rp = ref.random_params(3, len(FIELDS), K, FIELDS)
    x = np.zeros(len(FIELDS))
    x[[0, 1, 2]] = [0.5, -1.2, 2.0]
    V = rp["V"]
    pair = (V[0, 0] @ V[1, 2] * 0.5 * -1.2 + V[0, 2] @ V[2, 2] * 0.5 * 2.0
            + V[1, 2] @ V[2, 0] * -1.2 * 2.0)
    f = rp["w0"] + rp["w"][:3] @ x[:3] + pair
    np.testing.assert_allclose(ref.forward(rp, x[None]), [f], rtol=1e-13)


def test_reference_gradient_and_saliency_match_finite_differences():
    """The reference's hand-derived gradient (w0, w, V, with L2) is the central difference of
    its own objective in every parameter, and its saliency the derivative of the loss along
    the row, d/dt l(f(t x), y) at t = 1."""
    rng = np.random.default_rng(1)
    rp = ref.random_params(rng, len(FIELDS), K, FIELDS)
    Xd = multi_field_rows(rng, 7)
    y, sw = rng.uniform(0, 1, 7), rng.uniform(0.5, 2, 7)
    g = ref.batch_gradient(rp, Xd, y, sw, "logistic", 0.03)
    h = 1e-6

    def fd(name, idx):
        vals = []
        for sgn in (1, -1):
            q = ref.copy_params(rp)
            if name == "w0":
                q["w0"] += sgn * h
            else:
                q[name][idx] += sgn * h
            vals.append(ref.batch_objective(q, Xd, y, sw, "logistic", 0.03))
        return (vals[0] - vals[1]) / (2 * h)

    np.testing.assert_allclose(g["w0"], fd("w0", None), rtol=1e-6)
    for name in ("w", "V"):
        num = np.array([fd(name, idx) for idx in np.ndindex(rp[name].shape)]).reshape(
            rp[name].shape)
        np.testing.assert_allclose(g[name], num, rtol=1e-6, atol=1e-9)
    assert np.abs(g["V"]).max() > 1e-3
    absent = ~ref.present_features(Xd)
    assert absent.any() and np.all(g["V"][absent] == 0)
    for loss in ("logistic", "squared"):
        sal = ref.saliency(rp, Xd, y, loss)
        num = (ref.loss_values(ref.forward(rp, (1 + h) * Xd), y, loss)
               - ref.loss_values(ref.forward(rp, (1 - h) * Xd), y, loss)) / (2 * h)
        np.testing.assert_allclose(sal, num, rtol=1e-6, atol=1e-9)


# ----------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("loss_id", [LOGISTIC, SQUARED])
@pytest.mark.parametrize("k", [K, 1, 0])
def test_batch_gradient_matches_reference(loss_id, k):
    """Objective, d/dw0 and the T rows of the batch's features (exactly the features present)
    equal the reference's, for multi-field rows (two nonzeros in a field, missing fields, an
    empty row), sample weights and an L2 term."""
    seed = zlib.crc32(repr((loss_id, k)).encode())
    core, params, X, Xd, rp = make_case(seed, n=11, k=k)
    rng = np.random.default_rng(seed)
    y = targets(rng, 11, loss_id)
    sw = rng.uniform(0.5, 2.0, 11)
    obj, g0, uniq, GT, GH = core.batch_gradient(params, X, y, sw, loss_id, 0.07)
    loss = LOSSES[loss_id]
    g = ref.batch_gradient(rp, Xd, y, sw, loss, 0.07)
    np.testing.assert_allclose(obj, ref.batch_objective(rp, Xd, y, sw, loss, 0.07), rtol=1e-12)
    np.testing.assert_allclose(g0, g["w0"], rtol=1e-10, atol=1e-14)
    assert sorted(uniq.tolist()) == np.flatnonzero((Xd != 0).any(0)).tolist()
    assert GT.shape == (len(uniq), 1 + N_FIELDS * k) and GH.shape == (0,)
    np.testing.assert_allclose(GT, table_of(g)[uniq], rtol=1e-9, atol=1e-13)
    # two nonzeros of one field in a row (rows hold up to 2 of a field's columns)
    assert any(np.count_nonzero(Xd[b, FIELDS == f]) == 2 for b in range(11)
               for f in range(N_FIELDS))


@pytest.mark.parametrize("loss_id", [LOGISTIC, SQUARED])
def test_batch_gradient_matches_finite_differences(loss_id):
    """Central differences of the kernel's own objective in w0 and each T entry of the batch's
    features."""
    core, params, X, _, _ = make_case(21, n=10)
    GT = assert_gradient_is_finite_differences(core, params, X, loss_id, 21)
    assert GT.shape[1] == 1 + N_FIELDS * K and np.abs(GT[:, 1:]).max() > 1e-3


def test_sgd_step_moves_by_the_gradient():
    """train_epoch on one batch with plain SGD: w0 and the rows of the batch's features move by
    -lr times the reference gradient, the other rows not at all."""
    core, params, X, Xd, rp = make_case(17, n=300)
    rng = np.random.default_rng(17)
    y = targets(rng, 300, LOGISTIC)
    sw = rng.uniform(0.5, 2.0, 300)
    lr, alpha = 0.1, 0.03
    before = {key: v.copy() for key, v in params.items()}
    g = ref.batch_gradient(rp, Xd, y, sw, "logistic", alpha)
    state = core.init_state(params, "sgd")
    loss, steps, status = core.train_epoch(params, state, block_of(X, y, sw),
                                           hp_of(300, "sgd", lr, alpha),
                                           np.full((1, X.n_features), -1, np.int32))
    assert (steps, status) == (1, 0)
    np.testing.assert_allclose(loss, 300 * ref.batch_objective(rp, Xd, y, sw, "logistic", 0.0),
                               rtol=1e-12)
    np.testing.assert_allclose(params["w0"], before["w0"] - lr * g["w0"], rtol=1e-13)
    present = ref.present_features(Xd)
    np.testing.assert_allclose(params["T"][present],
                               before["T"][present] - lr * table_of(g)[present], rtol=1e-12)
    np.testing.assert_array_equal(params["T"][~present], before["T"][~present])


# ----------------------------------------------------------------------------- inference
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_decision_matches_reference(dtype):
    """Over 1100 rows: several prediction chunks."""
    core, params, X, Xd, rp = make_case(3, n=1100, dtype=dtype)
    tol = 1e-11 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(core.decision(params, X), ref.forward(rp, Xd), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("loss_id", [LOGISTIC, SQUARED])
def test_saliency_matches_reference_and_finite_differences(dtype, loss_id):
    """S(x, y) = sum_j x_j dL/dx_j over 1100 rows: the reference's, and (float64) the central
    difference of the kernel's own loss along x, d/dt L(f(t x), y) at t = 1."""
    core, params, X, Xd, rp = make_case(7, n=1100, dtype=dtype)
    y = targets(np.random.default_rng(7), 1100, loss_id)
    sal = core.saliency(params, X, y, loss_id)
    tol = 1e-10 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(sal, ref.saliency(rp, Xd, y, LOSSES[loss_id]), rtol=tol,
                               atol=tol)
    assert np.abs(sal).max() > 1e-2  # not trivially zero
    if dtype == np.float32:
        return
    np.testing.assert_allclose(sal, loss_slope_along_rows(core, params, Xd, y, loss_id),
                               rtol=1e-6, atol=1e-7)


# ----------------------------------------------------------------------------- selection
@pytest.mark.parametrize("kind", ["saliency", "max"])
@pytest.mark.parametrize("loss_id", [LOGISTIC, SQUARED])
@pytest.mark.parametrize("p,n_parents", [(6, 200), (129, 3)])
def test_select_partners_matches_generic_scoring(kind, loss_id, p, n_parents):
    """The closed-form selector (candidates never built) chooses the partners that scoring the
    materialised candidates chooses: their saliency (SMFM) or their loss (Maxup).  A parent may
    draw itself (then every lam gives the same row, so only the partner is compared)."""
    core, params, X, _Xd, _rp = make_case(13, n=40)
    chosen, _, first = assert_selector_matches_generic(core, params, X, loss_id, p, n_parents,
                                                       kind)
    assert (chosen != first).mean() > 0.3  # not always the first candidate: the score chose


def test_select_partners_of_a_float32_model():
    """A float32 model: the closed-form choice is the materialised candidates' wherever that
    choice is clear at float32 precision (the materialised rows are rounded to float32)."""
    core, params, X, Xd, _rp = make_case(14, n=60, dtype=np.float32)
    assert_float32_selector_keeps_clear_choices(core, params, X, Xd, 14)


# ----------------------------------------------------------------------------- training
@pytest.mark.parametrize("augmentation", [None, "mix", "saliency", "max"])
def test_training_is_bit_identical_for_1_and_2_threads(augmentation):
    """Epochs of 1000 rows in batches of 256 (the last batch short), the generic SMFM and Maxup
    selection included, give the same bits on 1 and 2 Numba threads."""
    X, y, fields = _fields_data()
    core = FFMCore(fields, fields.max() + 1)
    a = _fit_epochs(core, X, y, 1, augmentation=augmentation)
    b = _fit_epochs(core, X, y, 2, augmentation=augmentation)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["T"], core.init_params(X.n_features, 4, np.float64,
                                                       np.random.default_rng(0), 0.1)["T"])


def test_init_and_structure_checks():
    rng = np.random.default_rng(0)
    core = FFMCore(FIELDS, N_FIELDS)
    p = core.init_params(len(FIELDS), 4, np.float32, rng, 0.01)
    assert p["T"].dtype == np.float32 and p["T"].shape == (len(FIELDS), 1 + N_FIELDS * 4)
    assert np.all(p["T"][:, 0] == 0) and p["w0"][0] == 0 and p["H"].shape == (0,)
    assert 0.8 < p["T"][:, 1:].std() / 0.01 < 1.2
    assert np.all(core.init_params(len(FIELDS), 4, np.float64, rng, 0.0)["T"] == 0)
    with pytest.raises(ValueError, match="fields"):
        core.init_params(len(FIELDS) + 1, 4, np.float64, rng, 0.01)


# ----------------------------------------------------------------------------- estimators
def reference_of(est, c=None):
    """The fitted estimator's parameters as the reference's dict (output c of a multiclass
    model)."""
    p = est._params[0 if c is None else c]
    return {"w0": float(p["w0"][0]), "w": p["T"][:, 0].astype(float),
            "V": p["T"][:, 1:].astype(float).reshape(len(est.fields_), est.n_fields_, -1),
            "fields": est.fields_}


@pytest.mark.parametrize("augmentation", [None, "copy", "mix", "saliency", "max"])
def test_fitted_estimator_is_the_reference_ffm(augmentation):
    """Fields given as arbitrary labels are relabelled in sorted order; the fitted model's
    predictions and saliency are the reference FFM's on its parameters, and ``factors_`` is
    V (n_features, n_fields, n_factors)."""
    from skfm import FFMClassifier, FFMRegressor
    rng = np.random.default_rng(5)
    Xd = multi_field_rows(rng, 300)
    y = (Xd @ rng.normal(size=len(FIELDS)) > 0).astype(int)
    labels = FIELDS * 7 + 100
    est = FFMClassifier(n_factors=3, fields=labels, max_iter=3, batch_size=64, random_state=0,
                        augmentation=augmentation).fit(sp.csr_matrix(Xd), y)
    np.testing.assert_array_equal(est.fields_, FIELDS)
    assert est.fields is labels and est.n_fields_ == N_FIELDS
    rp = reference_of(est)
    np.testing.assert_array_equal(est.factors_, rp["V"])
    f = ref.forward(rp, Xd)
    np.testing.assert_allclose(est.decision_function(Xd), f, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(est.predict_proba(Xd)[:, 1], 1 / (1 + np.exp(-f)), rtol=1e-10)
    np.testing.assert_allclose(est.saliency(Xd, y), ref.saliency(rp, Xd, y, "logistic"),
                               rtol=1e-9, atol=1e-12)
    yr = Xd @ rng.normal(size=len(FIELDS))
    reg = FFMRegressor(n_factors=2, fields=labels, max_iter=3, batch_size=64, random_state=0,
                       augmentation=augmentation).fit(Xd, yr)
    np.testing.assert_allclose(reg.predict(Xd), ref.forward(reference_of(reg), Xd),
                               rtol=1e-10, atol=1e-10)


def test_multiclass_factors_and_outputs():
    from skfm import FFMClassifier
    rng = np.random.default_rng(6)
    Xd = multi_field_rows(rng, 200)
    y = np.array(["a", "b", "c"])[np.argmax(Xd[:, :3], axis=1)]
    est = FFMClassifier(n_factors=2, fields=FIELDS, max_iter=2, random_state=0).fit(Xd, y)
    assert est.factors_.shape == (3, len(FIELDS), N_FIELDS, 2)
    F = est.decision_function(Xd)
    for c in range(3):
        np.testing.assert_allclose(F[:, c], ref.forward(reference_of(est, c), Xd), rtol=1e-10,
                                   atol=1e-10)


def _planted_ffm(n, seed, n_fields=4, field_size=6, k=2):
    """One-hot rows of n_fields fields, labels drawn from a planted FFM of pair terms only
    (w = 0, V ~ N(0, 1)): a field-aware interaction signal with little linear part."""
    rng = np.random.default_rng(seed)
    fields = np.repeat(np.arange(n_fields), field_size)
    cols = rng.integers(0, field_size, (n, n_fields)) + np.arange(n_fields) * field_size
    X = sp.csr_matrix((np.ones(n * n_fields), cols.ravel(), np.arange(0, n * n_fields + 1,
                                                                       n_fields)),
                      shape=(n, n_fields * field_size))
    rp = {"w0": 0.0, "w": np.zeros(len(fields)), "fields": fields,
          "V": rng.normal(0.0, 1.0, (len(fields), n_fields, k))}
    f = ref.forward(rp, X)
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-2.0 * (f - np.median(f))))).astype(int)
    return X, y


def test_estimator_learns_planted_field_aware_signal():
    """Labels from a planted FFM's pair terms: held-out AUC well above LogisticRegression's,
    with fields inferred ("auto") from the one-hot blocks."""
    from skfm import FFMClassifier
    X, y = _planted_ffm(6000, seed=3)
    est = FFMClassifier(n_factors=4, learning_rate_init=0.01, max_iter=20, batch_size=128,
                        random_state=0).fit(X[:4000], y[:4000])
    assert est.n_fields_ == 4
    auc = roc_auc_score(y[4000:], est.decision_function(X[4000:]))
    lr = LogisticRegression().fit(X[:4000], y[:4000])
    lr_auc = roc_auc_score(y[4000:], lr.decision_function(X[4000:]))
    assert auc > 0.9 and auc > lr_auc + 0.1, (auc, lr_auc)  # measured 0.975 against 0.753


def test_estimator_fields_and_parameter_contract():
    """Fields default to "auto"; None, fields of the wrong length and a bad n_factors raise
    errors naming the problem; n_factors and fields are structural."""
    from skfm import FFMClassifier, FFMRegressor
    X, y, fields = _fields_data(400)
    Xs = sp.csr_matrix((X.data, X.indices, X.indptr), shape=(X.n_rows, X.n_features))
    est = FFMClassifier(max_iter=1).fit(Xs, y)
    assert est.fields == "auto" and est.n_factors == 4 and est.n_fields_ == 6
    np.testing.assert_array_equal(est.fields_, fields)
    assert est.factors_.shape == (X.n_features, 6, 4)
    with pytest.raises(ValueError, match="fields=None"):
        FFMRegressor(fields=None, max_iter=1).fit(Xs, y)
    with pytest.raises(ValueError, match="fields"):
        FFMClassifier(fields=fields[:-1], max_iter=1).fit(Xs, y)
    with pytest.raises(InvalidParameterError, match="n_factors"):
        FFMClassifier(n_factors=-1, max_iter=1).fit(Xs, y)
    est.set_params(n_factors=3, warm_start=True)
    with pytest.raises(ValueError, match="n_factors"):
        est.fit(Xs, y)
