"""Behaviour of the public skfm estimators that a scikit-learn user relies on.

Data-dependent tests run on dense input and on two sparse formats (CSR, the native format, and
CSC, which the estimators convert), in the style of scikit-learn's ``test_sgd.py``.
"""
import io
import pathlib
import pickle
import re

import joblib
import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from scipy.optimize import minimize
from sklearn.base import ClassifierMixin, clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder
from sklearn.utils.validation import check_is_fitted

import skfm
from skfm import (AFMRegressor, FMClassifier, FMRegressor, MixFMRegressor, NFMClassifier,
                  SMFMClassifier, SMFMRegressor)
from skfm._platform import all_estimators, get_estimator
from skfm.datasets import make_fm_classification, make_fm_regression
from skfm.datasets._synthetic import fm_output

# Most tests stop after a few epochs on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

# the FM estimators of the registry: FM, MixFM and SMFM (the model-independent contract of
# every registered estimator is in test_common.py)
CLASSIFIERS = [e.cls for e in all_estimators("FM", "classifier")]
REGRESSORS = [e.cls for e in all_estimators("FM", "regressor")]
ESTIMATORS = CLASSIFIERS + REGRESSORS
PRESETS = [(e.cls, get_estimator("FM", e.task), e.augmentation)
           for e in all_estimators("FM") if e.augmentation]
AUGMENTATIONS = [None, "copy", "mix", "saliency", "max"]


def _dense(X):
    return X.toarray() if sp.issparse(X) else np.asarray(X)


CONTAINERS = [_dense, sp.csr_matrix, sp.csc_matrix]
CONTAINER_IDS = ["dense", "csr", "csc"]
containers = pytest.mark.parametrize("container", CONTAINERS, ids=CONTAINER_IDS)


def is_classifier(est):
    """sklearn.base.is_classifier for estimator classes as well as instances."""
    return issubclass(est if isinstance(est, type) else type(est), ClassifierMixin)


def _name(est):
    return est.__name__ if isinstance(est, type) else type(est).__name__


def binary_data(n_samples=300, random_state=0):
    """Small one-hot multi-field data (20 features) with planted-FM binary labels."""
    return make_fm_classification(n_samples=n_samples, n_fields=4, field_size=5, scale=3.0,
                                  random_state=random_state)


def regression_data(n_samples=300, random_state=0):
    return make_fm_regression(n_samples=n_samples, n_fields=4, field_size=5, noise=0.1,
                              random_state=random_state)


def multiclass_data(n_samples=300, random_state=0):
    """Three string classes decided by the value of the first field (learnable by any model)."""
    X, _ = binary_data(n_samples, random_state)
    first_field = X[:, :5].toarray().argmax(1)
    y = np.array(["a", "b", "c"])[first_field % 3]
    return X, y


def data_for(Est, n_samples=300, random_state=0):
    if is_classifier(Est):
        return binary_data(n_samples, random_state)
    return regression_data(n_samples, random_state)


def xor_data(n_samples=1000, random_state=0):
    """x1 * x2 decides the target: a pure pairwise interaction, plus three noise features."""
    rng = np.random.RandomState(random_state)
    X = rng.uniform(-1.0, 1.0, (n_samples, 5))
    return X, X[:, 0] * X[:, 1]


def _params(est):
    return est.intercept_, est.coef_, est.factors_


def assert_same_model(a, b):
    """Bitwise equality of two fitted models."""
    for pa, pb in zip(_params(a), _params(b)):
        assert np.array_equal(pa, pb)


# --------------------------------------------------------------------------- fitted state
@pytest.mark.parametrize("Est", ESTIMATORS, ids=_name)
@containers
def test_fitted_attributes(Est, container):
    X, y = data_for(Est)
    est = Est(n_factors=3, max_iter=4, random_state=0).fit(container(X), y)
    p = X.shape[1]
    assert est.n_features_in_ == p
    assert isinstance(est.intercept_, float)
    assert est.coef_.shape == (p,)
    assert est.factors_.shape == (p, 3)
    assert est.n_iter_ == 4 == len(est.loss_curve_)
    assert np.isfinite(est.loss_curve_).all()
    assert est.t_ >= est.n_iter_
    if is_classifier(est):
        assert_array_equal(est.classes_, [0, 1])


def test_zero_factors_is_a_linear_model():
    X, y = binary_data()
    clf = FMClassifier(n_factors=0, max_iter=5, random_state=0).fit(X, y)
    assert clf.factors_.shape == (X.shape[1], 0)
    expected = clf.intercept_ + X @ clf.coef_
    assert_allclose(clf.decision_function(X), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("Est", CLASSIFIERS + REGRESSORS, ids=_name)
def test_decision_matches_fm_formula(Est):
    """The prediction is w0 + <w, x> + sum_{i<j} <v_i, v_j> x_i x_j of the fitted attributes."""
    X, y = data_for(Est)
    X = X.multiply(np.random.RandomState(1).uniform(0.5, 2.0, X.shape[1])).tocsr()  # non-binary
    est = Est(n_factors=3, max_iter=5, random_state=0).fit(X, y)
    f = np.asarray(fm_output(X, {"intercept": est.intercept_, "coef": est.coef_,
                                 "factors": est.factors_})).ravel()
    got = est.decision_function(X) if is_classifier(est) else est.predict(X)
    assert_allclose(got, f, rtol=1e-9, atol=1e-9)


def test_max_iter_reached_warns():
    """The warning does not advise more epochs on the training loss alone (they often
    overfit): it points to early stopping; with early stopping, to a larger max_iter."""
    X, y = binary_data()
    with pytest.warns(ConvergenceWarning, match="maximum iterations") as rec:
        FMClassifier(max_iter=2, random_state=0).fit(X, y)
    msg = str(rec[0].message)
    assert "use early_stopping=True" in msg and "larger max_iter" not in msg
    with pytest.warns(ConvergenceWarning, match="validation score was still improving"):
        FMClassifier(max_iter=2, early_stopping=True, n_iter_no_change=5,
                     random_state=0).fit(X, y)


@pytest.mark.parametrize("Preset, Base, augmentation", PRESETS,
                         ids=lambda v: v.__name__ if isinstance(v, type) else str(v))
def test_presets_are_fm_with_augmentation(Preset, Base, augmentation):
    assert Preset().augmentation == augmentation
    X, y = data_for(Base)
    # the presets train without L2 and with half the patience (an augmented epoch is two
    # passes); the base class keeps its own defaults under any augmentation
    assert (Preset().alpha, Preset().n_iter_no_change) == (0.0, 5)
    assert (Base(augmentation=augmentation).alpha, Base().n_iter_no_change) == (1e-4, 10)
    a = Preset(max_iter=3, random_state=0).fit(X, y)
    b = Base(augmentation=augmentation, alpha=0.0, n_iter_no_change=5, max_iter=3,
             random_state=0).fit(X, y)
    assert_same_model(a, b)


# --------------------------------------------------------------------------- sklearn tooling
@pytest.mark.parametrize("sparse_output", [True, False], ids=["sparse", "dense"])
def test_pipeline_one_hot_encoder(sparse_output):
    rng = np.random.RandomState(0)
    colours = np.array(["red", "green", "blue"])
    sizes = np.array(["S", "M", "L", "XL"])
    X = np.column_stack([colours[rng.randint(3, size=400)], sizes[rng.randint(4, size=400)]])
    # an interaction of the two categorical columns (XOR-like: no single column decides it)
    y = ((X[:, 0] == "red") ^ np.isin(X[:, 1], ["S", "M"])).astype(int)
    pipe = make_pipeline(OneHotEncoder(sparse_output=sparse_output),
                         FMClassifier(n_factors=4, learning_rate_init=0.05, random_state=0))
    pipe.fit(X, y)
    assert pipe.score(X, y) > 0.95
    proba = pipe.predict_proba(X[:5])
    assert proba.shape == (5, 2)
    assert pipe[-1].n_features_in_ == 7


@pytest.mark.parametrize("Est", [FMClassifier, FMRegressor], ids=_name)
@containers
def test_grid_search_fm(Est, container):
    X, y = data_for(Est, n_samples=150)
    grid = {"n_factors": [2, 4], "alpha": [1e-5, 1e-3],
            "augmentation": AUGMENTATIONS, "mix_ratio": [0.5, 1.0]}
    search = GridSearchCV(Est(max_iter=3, random_state=0), grid, cv=3).fit(container(X), y)
    assert len(search.cv_results_["params"]) == 2 * 2 * len(AUGMENTATIONS) * 2
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_params_["augmentation"] in AUGMENTATIONS
    check_is_fitted(search.best_estimator_)
    assert search.predict(container(X)).shape == (X.shape[0],)


@pytest.mark.parametrize("Est", [preset for preset, _, _ in PRESETS], ids=_name)
def test_grid_search_presets(Est):
    X, y = data_for(Est, n_samples=150)
    search = GridSearchCV(Est(max_iter=3, random_state=0),
                          {"n_factors": [2, 4], "alpha": [1e-5, 1e-3]}, cv=3).fit(X, y)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert set(search.best_params_) == {"n_factors", "alpha"}
    check_is_fitted(search.best_estimator_)


@pytest.mark.parametrize("Est", ESTIMATORS, ids=_name)
def test_clone(Est):
    est = Est(n_factors=3, alpha=1e-3, max_iter=3, random_state=0, augmentation="copy")
    assert clone(est).get_params() == est.get_params()
    X, y = data_for(Est)
    est.fit(X, y)
    fresh = clone(est)
    assert fresh.get_params() == est.get_params()
    with pytest.raises(NotFittedError):
        fresh.predict(X)
    assert_same_model(fresh.fit(X, y), est)


@pytest.mark.parametrize("Est", [FMClassifier, FMRegressor], ids=_name)
@containers
def test_cross_val_score(Est, container):
    X, y = data_for(Est, n_samples=400)
    scores = cross_val_score(Est(n_factors=4, max_iter=30, random_state=0), container(X), y, cv=3)
    assert scores.shape == (3,)
    assert np.isfinite(scores).all()
    assert scores.mean() > (0.7 if is_classifier(Est) else 0.5)


@pytest.mark.parametrize("Est", ESTIMATORS, ids=_name)
def test_pickle_and_joblib_round_trip(Est, tmp_path):
    X, y = data_for(Est)
    est = Est(n_factors=3, max_iter=3, random_state=0).fit(X, y)
    methods = ["predict"] + (["predict_proba", "decision_function"] if is_classifier(est) else [])
    expected = {m: getattr(est, m)(X) for m in methods}

    restored_pickle = pickle.loads(pickle.dumps(est))
    path = tmp_path / "model.joblib"
    joblib.dump(est, path)
    restored_joblib = joblib.load(path)
    buf = io.BytesIO()
    joblib.dump(est, buf, compress=3)
    buf.seek(0)
    restored_compressed = joblib.load(buf)

    for restored in (restored_pickle, restored_joblib, restored_compressed):
        assert type(restored) is Est
        assert restored.get_params() == est.get_params()
        assert_same_model(restored, est)
        for m in methods:
            assert np.array_equal(getattr(restored, m)(X), expected[m])
        assert np.array_equal(restored.saliency(X, y), est.saliency(X, y))


def test_memory_mapped_model_is_mapped_copy_on_write(tmp_path):
    """joblib.load(..., mmap_mode="r") gives read-only memory maps; the estimator maps them again
    copy-on-write: still memory maps of the file (shared pages), writable, so prediction runs
    the kernels compiled for writable parameters (no read-only version is compiled), and a
    further fit of the loaded model leaves the file byte-identical."""
    from skfm._kernels import fm as kfm
    X, y = make_fm_classification(300, n_fields=4, field_size=5, random_state=0)
    est = FMClassifier(n_factors=3, max_iter=3, random_state=0).fit(X, y)
    path = tmp_path / "model.joblib"
    joblib.dump(est, path)
    before = path.read_bytes()
    loaded = joblib.load(path, mmap_mode="r")
    T = loaded._params[0]["T"]
    assert isinstance(T, np.memmap) and T.mode == "c" and T.flags.writeable
    assert T.filename is not None and pathlib.Path(T.filename).samefile(path)
    assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))
    readonly_tables = [sig for sig in kfm.fm_decision.signatures
                       if any(getattr(t, "ndim", 0) == 2 and not t.mutable for t in sig)]
    assert readonly_tables == []
    loaded.set_params(warm_start=True, max_iter=2).fit(X, y)
    assert path.read_bytes() == before
    assert not np.array_equal(loaded.predict_proba(X), est.predict_proba(X))


@pytest.mark.parametrize("Est", ESTIMATORS, ids=_name)
def test_pickled_model_can_continue_training(Est):
    X, y = data_for(Est)
    est = Est(max_iter=2, warm_start=True, random_state=0).fit(X, y)
    restored = pickle.loads(pickle.dumps(est))
    est.fit(X, y)
    restored.fit(X, y)
    assert restored.n_iter_ == 4
    assert_same_model(restored, est)


@pytest.mark.parametrize("Est", [FMClassifier, SMFMRegressor, NFMClassifier, AFMRegressor],
                         ids=_name)
def test_memory_mapped_model_can_continue_training(Est, tmp_path):
    """joblib.load(..., mmap_mode="r") maps the parameter arrays copy-on-write: partial_fit and a
    warm-started fit train on the process's private pages (the file is left alone) and match an
    in-memory model."""
    X, y = data_for(Est)
    est = Est(n_factors=3, max_iter=2, warm_start=True, random_state=0).fit(X, y)
    joblib.dump(est, tmp_path / "model.joblib")
    mapped = joblib.load(tmp_path / "model.joblib", mmap_mode="r")
    assert mapped._params[0]["T"].mode == "c"
    on_disk = np.array(mapped._params[0]["T"])
    for model in (est, mapped):
        model.partial_fit(X, y)
        model.fit(X, y)
    assert mapped.n_iter_ == est.n_iter_ == 5
    for pa, pb in zip(mapped._params, est._params):
        assert pa.keys() == pb.keys()
        for k in pa:
            assert np.array_equal(pa[k], pb[k]), k
    assert np.array_equal(joblib.load(tmp_path / "model.joblib")._params[0]["T"], on_disk)


# --------------------------------------------------------------------------- classifier outputs
@pytest.mark.parametrize("Est", CLASSIFIERS, ids=_name)
@containers
def test_binary_outputs(Est, container):
    X, y = binary_data()
    clf = Est(max_iter=10, random_state=0).fit(container(X), y)
    Xc = container(X)
    proba = clf.predict_proba(Xc)
    assert proba.shape == (X.shape[0], 2)
    assert_allclose(proba.sum(1), 1.0, rtol=1e-12)
    assert ((proba >= 0) & (proba <= 1)).all()
    dec = clf.decision_function(Xc)
    assert dec.shape == (X.shape[0],)
    assert_array_equal(clf.predict(Xc), clf.classes_[(dec > 0).astype(int)])
    assert_array_equal(proba.argmax(1), (dec > 0).astype(int))
    assert_allclose(np.exp(clf.predict_log_proba(Xc)), proba, rtol=1e-10)
    assert clf.score(Xc, y) > 0.7  # noisy labels; chance is 0.5


def test_binary_string_labels():
    X, y = binary_data()
    labels = np.array(["no", "yes"])[y]
    clf = FMClassifier(max_iter=10, random_state=0).fit(X, labels)
    assert_array_equal(clf.classes_, ["no", "yes"])
    assert set(clf.predict(X)) <= {"no", "yes"}
    assert clf.score(X, labels) > 0.7


@pytest.mark.parametrize("Est", CLASSIFIERS, ids=_name)
@containers
def test_multiclass(Est, container):
    X, y = multiclass_data()
    clf = Est(n_factors=2, max_iter=20, random_state=0).fit(container(X), y)
    Xc = container(X)
    p = X.shape[1]
    assert_array_equal(clf.classes_, ["a", "b", "c"])
    proba = clf.predict_proba(Xc)
    assert proba.shape == (X.shape[0], 3)
    assert_allclose(proba.sum(1), 1.0, rtol=1e-12)
    assert clf.decision_function(Xc).shape == (X.shape[0], 3)
    assert_array_equal(clf.predict(Xc), clf.classes_[proba.argmax(1)])
    assert clf.score(Xc, y) > 0.9
    assert clf.coef_.shape == (3, p)
    assert clf.factors_.shape == (3, p, 2)
    assert np.shape(clf.intercept_) == (3,)
    assert clf.saliency(Xc, y).shape == (X.shape[0],)


def test_multiclass_proba_sums_to_one_for_extreme_inputs():
    """Rows far from the training data, where every one-vs-rest decision is below -745 (so every
    sigmoid underflows to 0), still get probabilities that sum to 1 and agree with predict."""
    X, y = multiclass_data()
    clf = FMClassifier(n_factors=2, max_iter=20, random_state=0).fit(X, y)
    Z = np.random.RandomState(0).standard_normal((500, X.shape[1])) * 300
    assert (clf.decision_function(Z).max(1) < -745).any()  # the case under test occurs
    proba = clf.predict_proba(Z)
    assert np.isfinite(proba).all()
    assert_allclose(proba.sum(1), 1.0, rtol=1e-12)
    # predict's class has the largest probability (far-away rows may tie at the top: two
    # decisions above ~37 both have sigmoid 1.0 in float64)
    pred = np.searchsorted(clf.classes_, clf.predict(Z))
    assert_array_equal(proba[np.arange(len(Z)), pred], proba.max(1))


# --------------------------------------------------------------------------- saliency
@pytest.mark.parametrize("Est", ESTIMATORS, ids=_name)
@containers
def test_saliency_shape_and_finite(Est, container):
    X, y = data_for(Est)
    est = Est(max_iter=3, random_state=0).fit(container(X), y)
    s = est.saliency(container(X), y)
    assert s.shape == (X.shape[0],)
    assert s.dtype.kind == "f"
    assert np.isfinite(s).all()
    assert np.any(s != 0)


def _loss(f, y, classifier):
    if classifier:
        return np.logaddexp(0.0, f) - y * f
    return 0.5 * (f - y) ** 2


@pytest.mark.parametrize("Est", [FMClassifier, FMRegressor], ids=_name)
def test_saliency_is_directional_derivative_of_loss(Est):
    """S(x, y) = d/dt L(f(t x), y) at t = 1 (SMFM paper Eq. 5), checked by central differences."""
    X, y = data_for(Est)
    X = X.multiply(np.random.RandomState(2).uniform(0.5, 1.5, X.shape[1])).tocsr()
    est = Est(n_factors=4, max_iter=10, random_state=0).fit(X, y)
    f = est.decision_function if is_classifier(est) else est.predict
    h = 1e-5
    numeric = (_loss(f(X * (1 + h)), y, is_classifier(est))
               - _loss(f(X * (1 - h)), y, is_classifier(est))) / (2 * h)
    assert_allclose(est.saliency(X, y), numeric, rtol=1e-5, atol=1e-7)


# --------------------------------------------------------------------------- incremental training
@pytest.mark.parametrize("Est", ESTIMATORS, ids=_name)
@containers
def test_partial_fit_over_chunks(Est, container):
    X, y = data_for(Est, n_samples=400)
    order = np.argsort(y, kind="stable")  # first chunk holds a single class
    X, y = X[order], y[order]
    kwargs = {"classes": np.array([0, 1])} if is_classifier(Est) else {}
    est = Est(n_factors=4, random_state=0)
    chunks = np.array_split(np.arange(X.shape[0]), 4)
    n_calls = 0
    for _ in range(15):
        for idx in chunks:
            est.partial_fit(container(X[idx]), y[idx], **kwargs)
            n_calls += 1
            kwargs = {}  # classes only needed on the first call
    assert est.n_iter_ == n_calls
    assert len(est.loss_curve_) == n_calls
    assert est.n_features_in_ == X.shape[1]
    if is_classifier(est):
        assert_array_equal(est.classes_, [0, 1])
    assert est.score(container(X), y) > (0.7 if is_classifier(est) else 0.5)


def test_partial_fit_multiclass_with_classes_not_in_first_chunk():
    X, y = multiclass_data()
    clf = FMClassifier(n_factors=2, random_state=0)
    first = np.flatnonzero(y == "a")
    clf.partial_fit(X[first], y[first], classes=["a", "b", "c"])
    assert_array_equal(clf.classes_, ["a", "b", "c"])
    for _ in range(10):
        clf.partial_fit(X, y)
    assert clf.predict_proba(X).shape == (X.shape[0], 3)
    assert clf.score(X, y) > 0.9


@pytest.mark.parametrize("Est", ESTIMATORS, ids=_name)
def test_warm_start_continues(Est):
    X, y = data_for(Est)
    est = Est(max_iter=3, warm_start=True, random_state=0).fit(X, y)
    assert est.n_iter_ == 3
    first = [p.copy() for p in _params(est)[1:]]
    est.set_params(max_iter=2).fit(X, y)
    assert est.n_iter_ == 5
    assert len(est.loss_curve_) == 5
    assert not np.array_equal(est.factors_, first[1])

    # without warm_start every fit starts anew
    cold = Est(max_iter=3, random_state=0).fit(X, y)
    cold.fit(X, y)
    assert cold.n_iter_ == 3
    assert len(cold.loss_curve_) == 3


@pytest.mark.parametrize("Est", [FMClassifier, SMFMRegressor], ids=_name)
def test_continuation_is_exact(Est):
    """Training continues exactly where it stopped (parameters, optimizer state, random
    stream): fits of 2 then 3 warm-started epochs, or 5 partial_fit calls, give the model of
    one 5-epoch fit, bit for bit."""
    X, y = data_for(Est)
    once = Est(max_iter=5, random_state=0).fit(X, y)
    warm = Est(max_iter=2, warm_start=True, random_state=0).fit(X, y)
    warm.set_params(max_iter=3).fit(X, y)
    assert warm.loss_curve_ == once.loss_curve_
    assert_same_model(warm, once)
    partial = Est(random_state=0)
    kwargs = {"classes": [0, 1]} if is_classifier(Est) else {}
    for _ in range(5):
        partial.partial_fit(X, y, **kwargs)
    assert_same_model(partial, once)


@pytest.mark.parametrize("Est", [FMClassifier, FMRegressor], ids=_name)
def test_early_stopping_restores_best_epoch(Est):
    X, y = data_for(Est, n_samples=300)
    # big steps, no penalty, tiny data: the validation score peaks and then gets worse
    kw = dict(n_factors=8, learning_rate_init=0.05, alpha=0.0, tol=0.0, n_iter_no_change=3,
              early_stopping=True, validation_fraction=0.3, final_epochs=0, random_state=0)
    est = Est(max_iter=200, **kw).fit(X, y)
    scores = est.validation_scores_
    assert isinstance(scores, list)
    assert len(scores) == est.n_iter_ == len(est.loss_curve_)
    assert est.n_iter_ < 200  # it stopped early
    best = int(np.argmax(scores))
    assert est.best_validation_score_ == scores[best]
    assert best == est.n_iter_ - kw["n_iter_no_change"] - 1
    # the kept model is the one of the best epoch: the same run cut after that epoch
    cut = Est(max_iter=best + 1, **{**kw, "n_iter_no_change": 10**6}).fit(X, y)
    assert cut.validation_scores_ == scores[:best + 1]
    assert_same_model(est, cut)


@pytest.mark.parametrize("Est", [FMClassifier, SMFMRegressor], ids=_name)
def test_early_stopping_auto_is_on_above_1000_rows(Est):
    """early_stopping="auto" holds out rows on fits on more than 1,000 rows, never in
    partial_fit."""
    X, y = data_for(Est, n_samples=1001)
    kw = dict(n_factors=2, max_iter=2, random_state=0)
    assert Est().early_stopping == "auto"
    assert Est(**kw).fit(X[:1000], y[:1000]).validation_scores_ is None
    est = Est(**kw).fit(X, y)
    assert len(est.validation_scores_) == 2
    assert Est(**kw, early_stopping=False).fit(X, y).validation_scores_ is None
    assert len(Est(**kw, early_stopping=True).fit(X[:300], y[:300]).validation_scores_) == 2
    extra = {"classes": [0, 1]} if is_classifier(Est) else {}
    assert Est(**kw).partial_fit(X, y, **extra).validation_scores_ is None


@pytest.mark.parametrize("n_samples, steps", [(300, 10), (1001, 10), (25000, 13)])
def test_auto_batch_is_a_tenth_of_the_rows_up_to_2048(n_samples, steps):
    """batch_size="auto" is min(2048, ceil(n / 10)): at least 10 steps an epoch."""
    X, y = make_fm_classification(n_samples, n_fields=4, field_size=5, random_state=0)
    est = FMClassifier(n_factors=2, max_iter=1, early_stopping=False, random_state=0)
    assert est.fit(X, y).t_ == steps


def test_final_epochs_train_on_the_held_out_rows(held_out_rows):
    """After early stopping restores the best epoch, final_epochs epochs run over every row:
    a feature present only in held-out rows is learnt then (and only then)."""
    X, y = binary_data(400)
    kw = dict(n_factors=2, max_iter=4, early_stopping=True, n_iter_no_change=50,
              random_state=0)
    FMClassifier(**kw).fit(X, y)
    va = held_out_rows[0]
    j = 0  # column 0, kept only in held-out rows (same shape and labels: the same split)
    X = X.tolil()
    rows = np.setdiff1d(np.arange(X.shape[0]), va)
    X[rows, j] = 0
    X[va[:5], j] = 1
    X = X.tocsr()
    X.eliminate_zeros()
    best_only = FMClassifier(**kw, final_epochs=0).fit(X, y)
    assert_array_equal(held_out_rows[1], va)
    assert best_only.coef_[j] == 0.0 and best_only.n_iter_ == 4
    final = FMClassifier(**kw, final_epochs=3).fit(X, y)
    assert_array_equal(held_out_rows[2], va)
    assert final.coef_[j] != 0.0
    assert final.n_iter_ == 4 + 3 and len(final.loss_curve_) == 7
    # the early-stopping part is the same run: same validation scores
    assert final.validation_scores_ == best_only.validation_scores_
    assert final.best_validation_score_ == best_only.best_validation_score_
    # a warm-started fit keeps its validation rows held out: no final epochs
    warm = FMClassifier(**kw, final_epochs=3, warm_start=True).fit(X, y)
    assert warm.n_iter_ == 4 and warm.coef_[j] == 0.0


@pytest.mark.parametrize("scoring", ["roc_auc", "callable", None])
def test_early_stopping_scoring(scoring, held_out_rows):
    """scoring= ranks the epochs by a scikit-learn scorer on the held-out rows (None: the
    estimator's score, accuracy); best_validation_score_ is that score of the returned model
    (final_epochs=0), computed here from its predictions."""
    X, y = binary_data(400)
    seen = {}

    def neg_brier(est, Xv, yv, **kw):
        seen.update(kw, n=Xv.shape[0])
        return -np.mean((est.predict_proba(Xv)[:, 1] - yv) ** 2)

    est = FMClassifier(n_factors=4, learning_rate_init=0.02, max_iter=30, n_iter_no_change=3,
                       early_stopping=True, final_epochs=0, random_state=0,
                       scoring=neg_brier if scoring == "callable" else scoring).fit(X, y)
    va = held_out_rows[0]
    Xv, yv = X[va], y[va]
    p = est.predict_proba(Xv)[:, 1]
    expected = {"roc_auc": roc_auc_score(yv, p), "callable": -np.mean((p - yv) ** 2),
                None: np.mean(est.predict(Xv) == yv)}[scoring]
    assert_allclose(est.best_validation_score_, expected, rtol=1e-12)
    assert est.best_validation_score_ == max(est.validation_scores_)
    if scoring == "callable":
        assert seen == {"n": len(va)}  # no sample_weight when fit had none
        w = np.ones(len(y))
        est.fit(X, y, sample_weight=w)
        assert_allclose(seen["sample_weight"], w[va])


def test_early_stopping_scoring_bad_name():
    X, y = binary_data()
    with pytest.raises(ValueError, match="not_a_scorer"):
        FMClassifier(early_stopping=True, scoring="not_a_scorer", max_iter=1).fit(X, y)


def test_early_stopping_scorer_that_cannot_score_leaves_unfitted():
    """A scorer unfit for the task fails before any epoch and leaves no half-fitted model."""
    X, y = binary_data()
    y3 = np.arange(len(y)) % 3
    est = FMClassifier(early_stopping=True, scoring="roc_auc", max_iter=2, random_state=0)
    with pytest.raises(ValueError, match="scoring='roc_auc' cannot score the validation rows"):
        est.fit(X, y3)
    with pytest.raises(NotFittedError):
        est.predict(X)
    assert not hasattr(est, "n_iter_")


def test_no_early_stopping_has_no_validation_scores():
    X, y = binary_data()
    clf = FMClassifier(max_iter=2, random_state=0).fit(X, y)
    assert clf.validation_scores_ is None
    assert clf.best_validation_score_ is None


@pytest.mark.parametrize("Est", [FMClassifier, FMRegressor], ids=_name)
def test_verbose_prints_one_line_per_epoch(Est, capsys):
    X, y = data_for(Est)
    est = Est(max_iter=3, verbose=1, random_state=0).fit(X, y)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.strip()]
    assert len(lines) == 3
    for epoch, (line, loss) in enumerate(zip(lines, est.loss_curve_), start=1):
        assert re.search(rf"epoch\D{{0,3}}{epoch}\b", line, flags=re.IGNORECASE), line
        m = re.search(r"loss\D*?(\d+\.\d+(?:e[-+]?\d+)?)", line, flags=re.IGNORECASE)
        assert m, line
        assert float(m.group(1)) == pytest.approx(loss, rel=1e-4, abs=1e-6)


def test_silent_by_default(capsys):
    X, y = binary_data()
    FMClassifier(max_iter=3, random_state=0).fit(X, y)
    assert capsys.readouterr().out == ""


# --------------------------------------------------------------------------- determinism
@pytest.mark.parametrize("augmentation", AUGMENTATIONS)
@pytest.mark.parametrize("Est", [FMClassifier, FMRegressor], ids=_name)
def test_deterministic_whatever_n_jobs(Est, augmentation):
    # 1000 rows of 6 one-hot fields: several batches of 256 rows sharing features
    if is_classifier(Est):
        X, y = make_fm_classification(n_samples=1000, n_fields=6, field_size=20, random_state=0)
    else:
        X, y = make_fm_regression(n_samples=1000, n_fields=6, field_size=20, random_state=0)
    X = X.multiply(np.random.RandomState(3).uniform(0.5, 2.0, X.shape[1])).tocsr()

    def fit(n_jobs, seed=0):
        return Est(augmentation=augmentation, max_iter=4, n_jobs=n_jobs,
                   random_state=seed).fit(X, y)

    one_a, one_b, two_a, two_b = fit(1), fit(1), fit(2), fit(2)
    assert_same_model(one_a, one_b)
    assert_same_model(two_a, two_b)
    assert_same_model(one_a, two_a)
    assert one_a.loss_curve_ == two_a.loss_curve_
    assert np.array_equal(one_a.saliency(X, y), two_a.saliency(X, y))
    assert not np.array_equal(fit(1, seed=1).factors_, one_a.factors_)


def test_deterministic_multiclass_float32_early_stopping():
    X, y = multiclass_data(n_samples=600)
    X = X.astype(np.float32)

    def fit(n_jobs):
        return SMFMClassifier(max_iter=4, early_stopping=True, n_jobs=n_jobs,
                              random_state=0).fit(X, y)

    a, b = fit(1), fit(2)
    assert_same_model(a, b)
    assert a.validation_scores_ == b.validation_scores_


def test_random_state_instance_is_reproducible():
    X, y = binary_data()
    a = FMClassifier(max_iter=3, random_state=np.random.RandomState(5)).fit(X, y)
    b = FMClassifier(max_iter=3, random_state=np.random.RandomState(5)).fit(X, y)
    assert_same_model(a, b)


# --------------------------------------------------------------------------- dtypes and input
@pytest.mark.parametrize("Est", [FMClassifier, FMRegressor, SMFMClassifier], ids=_name)
@containers
def test_float32_input_keeps_float32(Est, container):
    X, y = data_for(Est)
    X32 = container(X.astype(np.float32))
    est = Est(max_iter=3, random_state=0).fit(X32, y)
    assert est.factors_.dtype == np.float32
    assert est.coef_.dtype == np.float32
    assert np.isfinite(est.predict(X32)).all()
    est64 = Est(max_iter=3, random_state=0).fit(container(X), y)
    assert est64.factors_.dtype == np.float64
    assert_allclose(est.factors_, est64.factors_, rtol=1e-3, atol=1e-3)


def test_integer_input_gives_float64():
    X, y = binary_data()
    clf = FMClassifier(max_iter=2, random_state=0).fit(X.toarray().astype(np.int64), y)
    assert clf.factors_.dtype == np.float64


def _unsorted_csr_with_duplicates(X):
    """The same matrix as X, with each row's entries reversed and its first entry split in two."""
    X = sp.csr_matrix(X)
    rows, cols, vals = [], [], []
    for i in range(X.shape[0]):
        c = X.indices[X.indptr[i]:X.indptr[i + 1]][::-1]
        v = X.data[X.indptr[i]:X.indptr[i + 1]][::-1]
        cols += [c[0]] + list(c)
        vals += [0.25 * v[0], 0.75 * v[0]] + list(v[1:])
        rows.append(len(c) + 1)
    indptr = np.concatenate([[0], np.cumsum(rows)])
    out = sp.csr_matrix((np.array(vals), np.array(cols, dtype=np.int32), indptr), shape=X.shape)
    assert not out.has_sorted_indices
    return out


def _snapshot(X):
    if sp.issparse(X):
        return (type(X), X.data.copy(), X.indices.copy(), X.indptr.copy(),
                X.has_sorted_indices)
    return X.copy()


def _assert_unchanged(X, snap):
    if sp.issparse(X):
        assert type(X) is snap[0]
        assert_array_equal(X.data, snap[1])
        assert_array_equal(X.indices, snap[2])
        assert_array_equal(X.indptr, snap[3])
        assert X.has_sorted_indices == snap[4]
    else:
        assert_array_equal(X, snap)


INPUT_KINDS = {"dense": _dense, "dense_fortran": lambda X: np.asfortranarray(X.toarray()),
               "csr": sp.csr_matrix, "csr_unsorted_duplicates": _unsorted_csr_with_duplicates}


@pytest.mark.parametrize("kind", INPUT_KINDS)
@pytest.mark.parametrize("Est", [FMClassifier, FMRegressor, SMFMClassifier], ids=_name)
def test_input_is_never_modified(Est, kind):
    X0, y = data_for(Est)
    X = INPUT_KINDS[kind](X0)
    sw = np.linspace(0.5, 1.5, X.shape[0])
    snap, y_snap, sw_snap = _snapshot(X), y.copy(), sw.copy()
    est = Est(max_iter=2, random_state=0).fit(X, y, sample_weight=sw)
    est.predict(X)
    est.score(X, y)
    est.saliency(X, y)
    if is_classifier(est):
        est.predict_proba(X)
        est.decision_function(X)
    est.partial_fit(X, y, sample_weight=sw)
    _assert_unchanged(X, snap)
    assert_array_equal(y, y_snap)
    assert_array_equal(sw, sw_snap)
    # and the unsorted, duplicated CSR means the same matrix as the canonical one
    if kind == "csr_unsorted_duplicates":
        ref = Est(max_iter=2, random_state=0).fit(X0, y, sample_weight=sw)
        assert_allclose(est.predict(X), est.predict(X0))
        assert_allclose(ref.factors_, Est(max_iter=2, random_state=0).fit(
            X, y, sample_weight=sw).factors_, rtol=1e-12, atol=1e-14)


def _read_only(a):
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


@pytest.mark.parametrize("kind", ["dense", "csr"])
@pytest.mark.parametrize("Est", [FMClassifier, FMRegressor, SMFMClassifier, SMFMRegressor],
                         ids=_name)
def test_read_only_input(Est, kind):
    X0, y0 = data_for(Est)
    if kind == "dense":
        X = _read_only(X0.toarray())
    else:
        X = sp.csr_matrix((_read_only(X0.data), _read_only(X0.indices), _read_only(X0.indptr)),
                          shape=X0.shape)
    y = _read_only(y0)
    sw = _read_only(np.ones(X0.shape[0]))
    est = Est(max_iter=2, random_state=0).fit(X, y, sample_weight=sw)
    ref = Est(max_iter=2, random_state=0).fit(X0, y0)
    assert_same_model(est, ref)
    assert np.array_equal(est.predict(X), ref.predict(X0))
    assert np.array_equal(est.saliency(X, y), ref.saliency(X0, y0))
    est.partial_fit(X, y, sample_weight=sw)
    assert np.isfinite(est.predict(X)).all()


def test_sample_weight_of_ones_changes_nothing():
    X, y = binary_data()
    a = FMClassifier(max_iter=3, random_state=0).fit(X, y)
    b = FMClassifier(max_iter=3, random_state=0).fit(X, y, sample_weight=np.ones(len(y)))
    assert_same_model(a, b)


def test_sample_weight_zero_rows_are_ignored_by_the_gradient():
    """Rows of weight zero do not move the model: flipping their labels changes nothing."""
    X, y = binary_data()
    sw = np.ones(len(y))
    sw[::3] = 0.0
    y_flipped = y.copy()
    y_flipped[::3] = 1 - y_flipped[::3]
    a = FMClassifier(max_iter=3, random_state=0).fit(X, y, sample_weight=sw)
    b = FMClassifier(max_iter=3, random_state=0).fit(X, y_flipped, sample_weight=sw)
    assert_same_model(a, b)


# --------------------------------------------------------------------------- learning
def _fm_lbfgs_auc(X_train, y_train, X_test, y_test, n_factors, lam, seed=0):
    """Test AUC of the L2-penalised maximum-likelihood FM, fitted full-batch by L-BFGS: what
    the best training can reach on this sample (an independent reference implementation)."""
    p, n = X_train.shape[1], X_train.shape[0]
    X2 = X_train.multiply(X_train).tocsr()

    def unpack(t):
        return t[0], t[1:p + 1], t[p + 1:].reshape(p, n_factors)

    def objective(t):
        w0, w, V = unpack(t)
        s = X_train @ V
        f = w0 + X_train @ w + 0.5 * (s * s - X2 @ (V * V)).sum(1)
        g = (0.5 * (1.0 + np.tanh(0.5 * f)) - y_train) / n
        gV = X_train.T @ (g[:, None] * s) - (X2.T @ g)[:, None] * V
        value = np.mean(np.logaddexp(0.0, f) - y_train * f) + lam * (w @ w + (V * V).sum())
        grad = np.concatenate([[g.sum()], X_train.T @ g + 2 * lam * w, (gV + 2 * lam * V).ravel()])
        return value, grad

    t0 = np.concatenate([np.zeros(p + 1),
                         0.1 * np.random.RandomState(seed).standard_normal(p * n_factors)])
    res = minimize(objective, t0, jac=True, method="L-BFGS-B",
                   options={"maxiter": 2000, "ftol": 1e-12, "gtol": 1e-8})
    w0, w, V = unpack(res.x)
    f = np.asarray(fm_output(X_test, {"intercept": w0, "coef": w, "factors": V})).ravel()
    return roc_auc_score(y_test, f)


# n_factors=4 is the planted rank.  The data have 400 one-hot features (8 fields x 50), i.e.
# ~2,000 parameters for 15,000 noisy labels: unpenalised training overfits (train log-loss 0.32
# below the true model's 0.40, test log-loss 0.50), so a small L2 penalty is used.  alpha=3e-4
# is near the best of a sweep (alpha >= 3e-3 shrinks the factors to zero), with
# learning_rate_init=0.003 so that the Adam steps do not add noise to the optimum.
# the optimizer against the penalised MLE: every epoch of small batches, no held-out rows
LEARNING_PARAMS = dict(n_factors=4, alpha=3e-4, learning_rate_init=0.003, batch_size=256,
                       early_stopping=False, random_state=0)


def test_learns_planted_fm_default_generator():
    """On the default generator (400 features) with n=20000, even the exact penalised MLE is
    ~0.035 AUC below the true model (estimation error), so the estimator is held to the
    independent full-batch reference and to the true model within 0.05."""
    X, y, params = make_fm_classification(n_samples=20000, random_state=0, return_params=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, random_state=0)
    true_auc = roc_auc_score(y_te, np.asarray(fm_output(X_te, params)).ravel())
    clf = FMClassifier(**LEARNING_PARAMS).fit(X_tr, y_tr)
    auc = roc_auc_score(y_te, clf.decision_function(X_te))
    reference_auc = _fm_lbfgs_auc(X_tr, y_tr, X_te, y_te, n_factors=4, lam=3e-4)
    assert auc > reference_auc - 0.01, (auc, reference_auc)
    assert auc > true_auc - 0.05, (auc, true_auc)


def test_learns_planted_fm_within_002_of_true_auc():
    """With 80 features (8 fields x 10 values) and n=20000, the estimation error is small: the
    fitted FM's held-out ROC AUC is within 0.02 of the true model's."""
    X, y, params = make_fm_classification(n_samples=20000, field_size=10, random_state=0,
                                          return_params=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, random_state=0)
    true_auc = roc_auc_score(y_te, np.asarray(fm_output(X_te, params)).ravel())
    clf = FMClassifier(**LEARNING_PARAMS).fit(X_tr, y_tr)
    auc = roc_auc_score(y_te, clf.decision_function(X_te))
    assert auc > true_auc - 0.02, (auc, true_auc)


@containers
def test_learns_xor_interaction_classifier(container):
    X, t = xor_data()
    y = (t > 0).astype(int)
    Xc = container(X)
    linear = LogisticRegression().fit(X, y).score(X, y)
    assert linear < 0.65  # no linear model fits a pure interaction
    clf = FMClassifier(n_factors=2, learning_rate_init=0.05, random_state=0).fit(Xc, y)
    assert clf.score(Xc, y) > 0.97


@containers
def test_learns_xor_interaction_regressor(container):
    X, y = xor_data()
    Xc = container(X)
    assert LinearRegression().fit(X, y).score(X, y) < 0.05
    reg = FMRegressor(n_factors=2, learning_rate_init=0.05, random_state=0).fit(Xc, y)
    assert reg.score(Xc, y) > 0.99


@pytest.mark.parametrize("augmentation", AUGMENTATIONS)
def test_every_augmentation_learns(augmentation):
    X, y = binary_data(n_samples=400)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, random_state=0)
    clf = FMClassifier(n_factors=4, augmentation=augmentation, max_iter=30,
                       random_state=0).fit(X_tr, y_tr)
    assert roc_auc_score(y_te, clf.decision_function(X_te)) > 0.8


@pytest.fixture
def held_out_rows(monkeypatch):
    """The validation rows of every early-stopping split skfm draws while the test runs (sorted
    row numbers, one array per fit), recorded from the train_test_split call."""
    import skfm._base as base
    held = []
    split = base.train_test_split

    def recording(*args, **kwargs):
        tr, va = split(*args, **kwargs)
        held.append(np.sort(va))
        return tr, va

    monkeypatch.setattr(base, "train_test_split", recording)
    return held


@pytest.mark.parametrize("Est", [FMClassifier, MixFMRegressor], ids=_name)
def test_warm_start_with_early_stopping_keeps_its_validation_rows(Est, held_out_rows):
    """A warm-started fit with early stopping holds out the rows the first fit held out (never
    trains on them), appends to validation_scores_, and returns a model whose score on those
    rows is best_validation_score_ (computed here from its predictions)."""
    held = held_out_rows
    X, y = data_for(Est)
    est = Est(max_iter=2, early_stopping=True, warm_start=True, n_iter_no_change=50,
              random_state=0)
    for _ in range(3):
        est.fit(X, y)
    assert len(held) == 3
    for va in held[1:]:
        assert_array_equal(va, held[0])
    assert est.n_iter_ == 6 and len(est.validation_scores_) == 6
    Xd, yv = _dense(X)[held[0]], np.asarray(y)[held[0]]
    if is_classifier(Est):
        p = est.predict_proba(Xd)[:, 1]
        score = -np.mean(-yv * np.log(p) - (1 - yv) * np.log1p(-p))
    else:
        score = -np.mean(0.5 * (est.predict(Xd) - yv) ** 2)
    assert_allclose(est.best_validation_score_, score, rtol=1e-7)
    assert est.best_validation_score_ == max(est.validation_scores_)
    # a new (not warm-started) fit draws its split afresh from random_state: the same rows
    est.set_params(warm_start=False).fit(X, y)
    assert_array_equal(held[-1], held[0])
    assert len(est.validation_scores_) == 2


@pytest.mark.parametrize("before", ["fit", "partial_fit"])
def test_warm_early_stopping_never_returns_worse_than_its_start(before, held_out_rows):
    """A warm-started early-stopping fit after a fit without early stopping (or a partial_fit)
    returns the model it started from when none of its epochs validates better (here a far too
    large learning rate makes them worse)."""
    held = held_out_rows
    X, y = data_for(FMClassifier)
    est = FMClassifier(max_iter=5, warm_start=True, random_state=0)
    if before == "fit":
        est.fit(X, y)
    else:
        for _ in range(3):
            est.partial_fit(X, y, classes=[0, 1])
    start = est.decision_function(X)
    est.set_params(early_stopping=True, max_iter=2, learning_rate_init=5.0).fit(X, y)
    assert len(est.validation_scores_) == 2
    assert max(est.validation_scores_) < est.best_validation_score_  # the epochs got worse
    assert_array_equal(est.decision_function(X), start)  # so the start model is returned
    va = held[0]
    p = est.predict_proba(_dense(X)[va])[:, 1]
    yv = np.asarray(y)[va]
    assert_allclose(est.best_validation_score_,
                    np.mean(yv * np.log(p) + (1 - yv) * np.log1p(-p)), rtol=1e-7)


@pytest.mark.parametrize("Est", ["FMClassifier", "NFMRegressor", "FFMClassifier"])
def test_factor_rows_are_drawn_for_the_features_of_the_rows_trained_on(Est):
    """fit draws the factor rows of the features in its rows only: on X with empty columns
    added, those columns' factors are 0 (they cannot predict anything), and every other
    parameter, and every prediction, is the one of the fit on X alone (a drawn row has the
    values it has in the full draw).  partial_fit draws them all; a continued fit draws those
    of its rows' features that are still undrawn."""
    X, y = make_fm_classification(600, n_fields=4, field_size=5, random_state=3)
    n = X.shape[1]
    wide = sp.hstack([X, sp.csr_matrix((X.shape[0], 3))], format="csr")
    kw = dict(n_factors=3, max_iter=3, random_state=0, early_stopping=False)
    Est = getattr(skfm, Est)
    if Est is skfm.FFMClassifier:
        fields = np.repeat(np.arange(4), 5)
        a = Est(fields=fields, **kw).fit(X, y)
        b = Est(fields=np.concatenate([fields, [3, 3, 3]]), **kw).fit(wide, y)
    else:
        a, b = Est(**kw).fit(X, y), Est(**kw).fit(wide, y)
    Ta, Tb = a._params[0]["T"], b._params[0]["T"]
    assert np.all(Tb[n:] == 0)
    np.testing.assert_array_equal(Ta, Tb[:n])
    np.testing.assert_array_equal(a.predict(X), b.predict(wide))
    # partial_fit draws every row (a stream's later batches bring new features)
    classes = {"classes": np.unique(y)} if "Classifier" in Est.__name__ else {}
    c = Est(**b.get_params())
    c.partial_fit(wide, y, **classes)
    assert np.all(c._params[0]["T"][n:, 1:] != 0)
    # a continued fit (warm_start, partial_fit) on rows that have the new columns draws their
    # factor rows with the values of the full draw (steps of 1e-12 leave them as drawn; the
    # full draw: partial_fit's, same random_state); rows of the table no row has stay 0
    new = sp.csr_matrix((np.ones(2 * X.shape[0]),
                         np.tile([n, n + 1], X.shape[0]).astype(np.int32),
                         np.arange(0, 2 * X.shape[0] + 1, 2)), shape=wide.shape)
    frozen = dict(b.get_params(), learning_rate_init=1e-12)
    full = Est(**frozen).partial_fit(wide, y, **classes)._params[0]["T"]
    for how in ("warm_start", "partial_fit"):
        d = Est(**frozen).fit(wide, y)
        assert np.all(d._params[0]["T"][n:, 1:] == 0)
        if how == "warm_start":
            d.set_params(warm_start=True, max_iter=1).fit(new, y)
        else:
            d.partial_fit(new, y)
        T = d._params[0]["T"]
        np.testing.assert_allclose(T[n:n + 2, 1:], full[n:n + 2, 1:], rtol=1e-6)
        assert np.all(T[n + 2:, 1:] == 0)
