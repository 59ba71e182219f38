"""Bad input and bad hyperparameters: each raises the right exception with a message that names
the problem; a diverging fit raises TrainingDivergedError and leaves the estimator unfitted."""
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import ClassifierMixin
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.validation import check_is_fitted

import skfm
from skfm import FMClassifier, FMRegressor, SMFMClassifier, TrainingDivergedError
from skfm._platform import all_estimators
from skfm.datasets import make_fm_classification, make_fm_regression

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

# the FM estimators of the registry (the bad-input checks of every registered estimator are
# in test_common.py)
ESTIMATORS = [e.cls for e in all_estimators("FM")]


def _name(Est):
    return Est.__name__


def _is_clf(Est):
    return issubclass(Est, ClassifierMixin)


@pytest.fixture(scope="module")
def data():
    X, y = make_fm_classification(n_samples=60, n_fields=3, field_size=4, random_state=0)
    return X.toarray(), y


@pytest.fixture(scope="module")
def reg_data():
    X, y = make_fm_regression(n_samples=60, n_fields=3, field_size=4, random_state=0)
    return X.toarray(), y


def _xy(Est, data, reg_data):
    return data if _is_clf(Est) else reg_data


# --------------------------------------------------------------------------- non-finite values
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("Est", [FMClassifier, FMRegressor], ids=_name)
def test_nan_in_X(Est, sparse, data, reg_data):
    X, y = _xy(Est, data, reg_data)
    X = X.copy()
    X[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        Est().fit(sp.csr_matrix(X) if sparse else X, y)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("Est", [FMClassifier, FMRegressor], ids=_name)
def test_inf_in_X(Est, sparse, data, reg_data):
    X, y = _xy(Est, data, reg_data)
    X = X.copy()
    X[3, 1] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        Est().fit(sp.csr_matrix(X) if sparse else X, y)


@pytest.mark.parametrize("method", ["predict", "saliency"])
def test_nan_in_X_at_predict(method, data):
    X, y = data
    clf = FMClassifier(max_iter=1).fit(X, y)
    Xn = X.copy()
    Xn[0, 0] = np.nan
    args = (Xn, y) if method == "saliency" else (Xn,)
    with pytest.raises(ValueError, match="NaN"):
        getattr(clf, method)(*args)


@pytest.mark.parametrize("Est", [FMClassifier, FMRegressor], ids=_name)
def test_nan_in_y(Est, data, reg_data):
    X, y = _xy(Est, data, reg_data)
    y = y.astype(float)
    y[5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        Est().fit(X, y)


def test_inf_in_y_regressor(reg_data):
    X, y = reg_data
    y = y.copy()
    y[5] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        FMRegressor().fit(X, y)


def test_nan_in_y_saliency_regressor(reg_data):
    X, y = reg_data
    reg = FMRegressor(max_iter=1).fit(X, y)
    y = y.copy()
    y[0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        reg.saliency(X, y)


# --------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("method", ["predict", "score", "saliency", "partial_fit"])
@pytest.mark.parametrize("Est", [FMClassifier, FMRegressor], ids=_name)
def test_wrong_number_of_features(Est, method, data, reg_data):
    X, y = _xy(Est, data, reg_data)
    est = Est(max_iter=1).fit(X, y)
    args = (X[:, :-1],) if method == "predict" else (X[:, :-1], y)
    with pytest.raises(ValueError, match=rf"{X.shape[1] - 1} features.*expecting "
                                         rf"{X.shape[1]} features"):
        getattr(est, method)(*args)


@pytest.mark.parametrize("method", ["predict_proba", "decision_function"])
def test_wrong_number_of_features_classifier_methods(method, data):
    X, y = data
    clf = FMClassifier(max_iter=1).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        getattr(clf, method)(np.hstack([X, X]))


@pytest.mark.parametrize("Est", [FMClassifier, FMRegressor], ids=_name)
def test_empty_X(Est, data, reg_data):
    X, y = _xy(Est, data, reg_data)
    with pytest.raises(ValueError, match="0 sample"):
        Est().fit(X[:0], y[:0])


@pytest.mark.parametrize("Est", [FMClassifier, FMRegressor], ids=_name)
def test_empty_X_at_predict(Est, data, reg_data):
    X, y = _xy(Est, data, reg_data)
    est = Est(max_iter=1).fit(X, y)
    with pytest.raises(ValueError, match="0 sample"):
        est.predict(X[:0])


@pytest.mark.parametrize("Est", [FMClassifier, FMRegressor], ids=_name)
def test_zero_features(Est, data, reg_data):
    X, y = _xy(Est, data, reg_data)
    with pytest.raises(ValueError, match="0 feature"):
        Est().fit(X[:, :0], y)


@pytest.mark.parametrize("Est", [FMClassifier, SMFMClassifier], ids=_name)
def test_single_class(Est, data):
    X, _ = data
    with pytest.raises(ValueError, match="class"):
        Est().fit(X, np.ones(X.shape[0], dtype=int))


def test_continuous_y_for_classifier(data, reg_data):
    X, _ = data
    _, y = reg_data
    with pytest.raises(ValueError, match="continuous"):
        FMClassifier().fit(X, y)


@pytest.mark.parametrize("Est", [FMClassifier, FMRegressor], ids=_name)
def test_mismatched_len_y(Est, data, reg_data):
    X, y = _xy(Est, data, reg_data)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        Est().fit(X, y[:-1])


@pytest.mark.parametrize("Est", [FMClassifier, FMRegressor], ids=_name)
def test_mismatched_len_y_saliency(Est, data, reg_data):
    X, y = _xy(Est, data, reg_data)
    est = Est(max_iter=1).fit(X, y)
    with pytest.raises(ValueError, match="rows"):
        est.saliency(X, y[:-1])


def test_unknown_label_in_saliency(data):
    X, y = data
    clf = FMClassifier(max_iter=1).fit(X, y)
    with pytest.raises(ValueError, match="not seen"):
        clf.saliency(X, y + 7)


@pytest.mark.parametrize("Est", [FMClassifier, FMRegressor], ids=_name)
def test_negative_sample_weight(Est, data, reg_data):
    X, y = _xy(Est, data, reg_data)
    sw = np.ones(X.shape[0])
    sw[2] = -1.0
    with pytest.raises(ValueError, match="(?i)negative.*sample_weight"):
        Est().fit(X, y, sample_weight=sw)


def test_sample_weight_wrong_length(data):
    X, y = data
    with pytest.raises(ValueError, match="sample_weight"):
        FMClassifier().fit(X, y, sample_weight=np.ones(X.shape[0] - 1))


# --------------------------------------------------------------------------- hyperparameters
INVALID_PARAMS = [
    ("n_factors", -1),
    ("n_factors", 2.5),
    ("n_factors", "8"),
    ("n_factors", True),  # a bool is an Integral to Python, not a count to a user
    ("max_iter", True),
    ("n_candidates", np.True_),
    ("learning_rate_init", 0.0),
    ("learning_rate_init", -0.01),
    ("solver", "lbfgs"),
    ("batch_size", 0),
    ("batch_size", "big"),
    ("max_iter", 0),
    ("tol", -1e-3),
    ("alpha", -1e-5),
    ("init_std", -0.1),
    ("validation_fraction", 1.0),
    ("validation_fraction", 0.0),
    ("n_iter_no_change", 0),
    ("beta_1", 1.0),
    ("beta_2", -0.1),
    ("epsilon", 0.0),
    ("n_jobs", "all"),
    ("augmentation", "cutmix"),
    ("mix_alpha", 0.0),
    ("mix_alpha", -1.0),
    ("mix_beta", 0.0),
    ("mix_ratio", 0.0),
    ("mix_ratio", -0.5),
    ("n_candidates", 0),
    ("shuffle", "yes"),
]


@pytest.mark.parametrize("name, value", INVALID_PARAMS,
                         ids=[f"{n}={v!r}" for n, v in INVALID_PARAMS])
@pytest.mark.parametrize("Est", ESTIMATORS, ids=_name)
def test_invalid_hyperparameter(Est, name, value, data, reg_data):
    X, y = _xy(Est, data, reg_data)
    est = Est(**{name: value})
    with pytest.raises(InvalidParameterError, match=rf"'{name}' parameter of {Est.__name__}"):
        est.fit(X, y)
    assert not hasattr(est, "n_features_in_")


@pytest.mark.parametrize("name, value", [("n_factors", -1), ("solver", "lbfgs"),
                                         ("augmentation", "cutmix"), ("mix_ratio", 0.0)])
def test_invalid_hyperparameter_partial_fit(name, value, data):
    X, y = data
    with pytest.raises(InvalidParameterError, match=name):
        FMClassifier(**{name: value}).partial_fit(X, y, classes=[0, 1])


def test_invalid_hyperparameter_is_a_value_error(data):
    # InvalidParameterError subclasses ValueError, so `except ValueError` works for users
    X, y = data
    with pytest.raises(ValueError, match="n_factors"):
        FMClassifier(n_factors=-3).fit(X, y)


# --------------------------------------------------------------------------- partial_fit
@pytest.mark.parametrize("Est", [e.cls for e in all_estimators("FM", "classifier")],
                         ids=_name)
def test_partial_fit_without_classes_on_first_call(Est, data):
    X, y = data
    clf = Est()
    with pytest.raises(ValueError, match="classes"):
        clf.partial_fit(X, y)
    assert not hasattr(clf, "classes_")


def test_partial_fit_label_outside_classes(data):
    X, y = data
    with pytest.raises(ValueError, match="not seen"):
        FMClassifier().partial_fit(X, y, classes=[0, 2])
    with pytest.raises(ValueError, match=r"not seen in classes=\[0\]: \[1\]"):
        FMClassifier().partial_fit(X, y, classes=[0])  # not "only one class"
    clf = FMClassifier().partial_fit(X, y, classes=[0, 1])
    with pytest.raises(ValueError, match="not seen"):
        clf.partial_fit(X, np.where(y == 1, 5, 0))


def test_partial_fit_classes_changed_on_later_call(data):
    # as sklearn's SGDClassifier / MLPClassifier: `classes` may be repeated, not changed
    X, y = data
    clf = FMClassifier().partial_fit(X, y, classes=[0, 1])
    clf.partial_fit(X, y, classes=[0, 1])  # the same classes again are fine
    with pytest.raises(ValueError, match="classes"):
        clf.partial_fit(X, y, classes=[0, 1, 2])


def test_partial_fit_regressor_needs_no_classes(reg_data):
    X, y = reg_data
    reg = FMRegressor().partial_fit(X, y)
    assert reg.n_iter_ == 1


# --------------------------------------------------------------------------- not fitted
@pytest.mark.parametrize("method", ["predict", "saliency", "score"])
@pytest.mark.parametrize("Est", ESTIMATORS, ids=_name)
def test_not_fitted(Est, method, data, reg_data):
    X, y = _xy(Est, data, reg_data)
    args = (X,) if method == "predict" else (X, y)
    with pytest.raises(NotFittedError):
        getattr(Est(), method)(*args)


@pytest.mark.parametrize("method", ["predict_proba", "decision_function", "predict_log_proba"])
def test_not_fitted_classifier_methods(method, data):
    with pytest.raises(NotFittedError):
        getattr(FMClassifier(), method)(data[0])


@pytest.mark.parametrize("attr", ["intercept_", "coef_", "factors_"])
def test_not_fitted_attributes(attr):
    with pytest.raises(NotFittedError):
        getattr(FMRegressor(), attr)


# --------------------------------------------------------------------------- divergence
def _diverging(Est):
    """One-hot data scaled by 1e3 and a step of 1e6 with plain SGD: the loss explodes."""
    maker = make_fm_classification if _is_clf(Est) else make_fm_regression
    X, y = maker(n_samples=500, n_fields=4, field_size=5, random_state=0)
    return X * 1e3, y


def _assert_unfitted(est, X, y):
    with pytest.raises(NotFittedError):
        check_is_fitted(est)
    with pytest.raises(NotFittedError):
        est.predict(X)
    with pytest.raises(NotFittedError):
        est.saliency(X, y)
    for attr in ("n_features_in_", "n_iter_", "loss_curve_"):
        assert not hasattr(est, attr), attr


@pytest.mark.parametrize("Est", ESTIMATORS, ids=_name)
def test_divergence_raises_and_leaves_unfitted(Est):
    X, y = _diverging(Est)
    est = Est(solver="sgd", learning_rate_init=1e6, random_state=0)
    with pytest.raises(TrainingDivergedError, match="learning_rate_init"):
        est.fit(X, y)
    _assert_unfitted(est, X, y)


def test_divergence_error_is_a_floating_point_error():
    assert issubclass(skfm.TrainingDivergedError, FloatingPointError)


@pytest.mark.parametrize("Est", [FMClassifier, FMRegressor], ids=_name)
def test_divergence_with_early_stopping_leaves_unfitted(Est):
    X, y = _diverging(Est)
    est = Est(solver="sgd", learning_rate_init=1e6, early_stopping=True, random_state=0)
    with pytest.raises(TrainingDivergedError, match="learning_rate_init"):
        est.fit(X, y)
    _assert_unfitted(est, X, y)


@pytest.mark.parametrize("Est", [FMClassifier, FMRegressor], ids=_name)
def test_divergence_in_warm_start_resets_a_fitted_model(Est):
    X, y = _diverging(Est)
    est = Est(n_factors=8, solver="sgd", learning_rate_init=1e-9, max_iter=2, warm_start=True,
              random_state=0).fit(X, y)
    check_is_fitted(est)
    est.set_params(learning_rate_init=1e6, max_iter=50)
    with pytest.raises(TrainingDivergedError, match="learning_rate_init"):
        est.fit(X, y)
    _assert_unfitted(est, X, y)


@pytest.mark.parametrize("Est", [FMClassifier, FMRegressor], ids=_name)
def test_divergence_in_partial_fit(Est):
    X, y = _diverging(Est)
    est = Est(solver="sgd", learning_rate_init=1e6, random_state=0)
    kwargs = {"classes": [0, 1]} if _is_clf(Est) else {}
    with pytest.raises(TrainingDivergedError, match="learning_rate_init"):
        for _ in range(50):
            est.partial_fit(X, y, **kwargs)
            kwargs = {}
    _assert_unfitted(est, X, y)


def test_refit_after_divergence_works():
    X, y = _diverging(FMRegressor)
    est = FMRegressor(solver="sgd", learning_rate_init=1e6, random_state=0)
    with pytest.raises(TrainingDivergedError):
        est.fit(X, y)
    est.set_params(solver="adam", learning_rate_init=1e-3, max_iter=3).fit(X / 1e3, y)
    assert np.isfinite(est.predict(X / 1e3)).all()


@pytest.mark.parametrize("learning_rate_init", [1e3, 1e6, 1e9])
@pytest.mark.parametrize("Est", [FMClassifier, FMRegressor], ids=_name)
def test_never_a_non_finite_model(Est, learning_rate_init):
    """Huge steps on tiny dense data: either the fit raises TrainingDivergedError, or the model
    it keeps gives finite outputs on its own training rows."""
    rng = np.random.RandomState(0)
    X = rng.rand(20, 3) * 1e3
    y = np.array([0, 1] * 10) if _is_clf(Est) else rng.rand(20)
    est = Est(solver="sgd", learning_rate_init=learning_rate_init, random_state=0)
    try:
        est.fit(X, y)
    except TrainingDivergedError:
        _assert_unfitted(est, X, y)
        return
    for p in (est.intercept_, est.coef_, est.factors_):
        assert np.isfinite(p).all()
    out = est.decision_function(X) if _is_clf(Est) else est.predict(X)
    assert np.isfinite(out).all(), (
        f"fit returned normally (loss_curve_[-1]={est.loss_curve_[-1]:.3g}) but the model "
        f"outputs {out[:3]} on its training rows")


# --------------------------------------------------------------------------- later calls
@pytest.mark.parametrize("name, value", [("learning_rate_init", -1.0), ("solver", "bogus"),
                                         ("augmentation", "bogus"), ("batch_size", 0),
                                         ("n_factors", True)])
def test_partial_fit_checks_hyperparameters_on_every_call(name, value, data):
    """set_params between partial_fit calls is checked too: a negative step would otherwise
    train uphill in silence, a bad solver crash deep inside."""
    X, y = data
    clf = FMClassifier(n_factors=4, random_state=0).partial_fit(X, y, classes=[0, 1])
    before = clf.coef_.copy()
    clf.set_params(**{name: value})
    with pytest.raises(InvalidParameterError, match=name):
        clf.partial_fit(X, y)
    np.testing.assert_array_equal(clf.coef_, before)


def test_regressor_partial_fit_rejects_unknown_keywords(reg_data):
    X, y = reg_data
    with pytest.raises(TypeError, match="sample_wieght"):
        FMRegressor().partial_fit(X, y, sample_wieght=np.ones(len(y)))


@pytest.mark.parametrize("how", ["warm_start", "partial_fit"])
def test_changed_n_factors_on_a_continued_fit(how, data):
    X, y = data
    clf = FMClassifier(n_factors=4, max_iter=2, warm_start=True, random_state=0).fit(X, y)
    before = clf.factors_.copy()
    clf.set_params(n_factors=8)
    with pytest.raises(ValueError, match=r"n_factors=8, but the model was fitted with "
                                         r"n_factors=4"):
        clf.fit(X, y) if how == "warm_start" else clf.partial_fit(X, y)
    np.testing.assert_array_equal(clf.factors_, before)
    clf.set_params(warm_start=False).fit(X, y)  # a new model may change it
    assert clf.factors_.shape == (X.shape[1], 8)


@pytest.mark.parametrize("Est", [FMClassifier, FMRegressor], ids=_name)
def test_failed_refit_leaves_the_estimator_unfitted(Est, data, reg_data):
    """A refit whose checks fail must not leave the old parameters under new classes_ or
    n_features_in_ (a crash at predict); it leaves the estimator unfitted, as divergence does."""
    X, y = _xy(Est, data, reg_data)
    est = Est(n_factors=4, max_iter=2, random_state=0).fit(X, y)
    bad_y = np.zeros(len(y)) if _is_clf(Est) else np.full(len(y), np.nan)
    with pytest.raises(ValueError):
        est.fit(X[:, :-1], bad_y)
    with pytest.raises(NotFittedError):
        est.predict(X)
    assert not hasattr(est, "n_features_in_") and not hasattr(est, "classes_")


def test_warm_start_refit_with_bad_y_keeps_the_model(data):
    X, y = data
    est = FMClassifier(n_factors=4, max_iter=2, warm_start=True, random_state=0).fit(X, y)
    before = est.decision_function(X)
    with pytest.raises(ValueError, match="not seen"):
        est.fit(X, np.where(y == 1, 7, 0))
    np.testing.assert_array_equal(est.decision_function(X), before)


def test_float32_model_rejects_input_beyond_float32(data):
    X, y = data
    clf = FMClassifier(n_factors=4, max_iter=2, random_state=0).fit(X.astype(np.float32), y)
    Xb = X[:3].astype(np.float64)
    Xb[Xb != 0] = 1e39  # finite in float64, infinite in float32
    for method in (clf.predict, clf.predict_proba, clf.decision_function):
        with pytest.raises(ValueError, match="too large for float32"):
            method(Xb)


# --------------------------------------------------------------------------- blown up, finite
def test_blown_up_but_finite_training_raises():
    """Plain SGD with a step of 100 on float64 one-hot data: the loss reaches 1e13 and more
    while every value stays finite; the fit must not stop as if converged."""
    X, y = make_fm_classification(n_samples=2000, random_state=0)
    for Est in (FMClassifier, SMFMClassifier):
        est = Est(solver="sgd", learning_rate_init=100, random_state=0)
        with pytest.raises(TrainingDivergedError, match="1e\\+06 times"):
            est.fit(X, y)
        _assert_unfitted(est, X, y)


@pytest.mark.filterwarnings("default::sklearn.exceptions.ConvergenceWarning")
def test_loss_above_the_initial_models_warns():
    """Training whose last loss is far above that of the model it started from (all outputs 0:
    log 2 per row) says so; a normal fit, even on labels it cannot learn, does not."""
    X, y = make_fm_classification(n_samples=300, n_fields=3, field_size=4, random_state=0)
    est = FMClassifier(n_factors=8, solver="sgd", learning_rate_init=30.0, alpha=0.0, max_iter=3,
                       batch_size=256, random_state=0)
    with pytest.warns(ConvergenceWarning, match="likely diverged"):
        est.fit(X, y)
    assert 2.0 < est.loss_curve_[-1] < 1e6  # blown up, yet not beyond the error's threshold
    noise = np.random.RandomState(0).randint(0, 2, len(y))
    for target in (y, noise):
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            FMClassifier(n_factors=4, max_iter=5, random_state=0).fit(X, target)
        assert not [w for w in rec if "likely diverged" in str(w.message)]


def test_best_loss_with_early_stopping(data):
    X, y = data
    est = FMClassifier(n_factors=4, max_iter=5, early_stopping=True, random_state=0).fit(X, y)
    assert est.best_loss_ == min(est.loss_curve_)


def test_early_stopping_on_tiny_data_names_the_problem():
    X = np.eye(6)
    y = np.array([0, 1, 0, 1, 0, 1])
    with pytest.raises(ValueError, match="early_stopping needs at least one training and one"):
        FMClassifier(early_stopping=True, validation_fraction=0.99).fit(X, y)
    # on a fitted estimator too, which that failed refit leaves unfitted (no fresh random init)
    clf = FMClassifier(n_factors=2, max_iter=2).fit(X, y)
    with pytest.raises(ValueError, match="early_stopping needs"):
        clf.set_params(early_stopping=True, validation_fraction=0.99).fit(X, y)
    with pytest.raises(NotFittedError):
        clf.predict(X)
    # too few rows to stratify 2 classes into a 1-row validation split: split unstratified
    FMClassifier(n_factors=2, early_stopping=True, max_iter=2).fit(X[:4], y[:4])


def test_saliency_of_a_regressor_rejects_2d_y(reg_data):
    X, y = reg_data
    reg = FMRegressor(n_factors=2, max_iter=2).fit(X, y)
    with pytest.raises(ValueError, match="1d array"):
        reg.saliency(X[:3], np.ones((3, 2)))


@pytest.mark.filterwarnings("error::sklearn.exceptions.ConvergenceWarning")
def test_continued_fit_on_shifted_data_is_not_divergence(reg_data):
    """The yardstick of a continued fit is the fitted model's loss on the new rows, not the
    zero model's: a model of targets near 3000 meets targets near 0 with a huge loss, and that
    is no divergence (neither an error nor the warning)."""
    X, y = reg_data
    reg = FMRegressor(n_factors=2, max_iter=40, batch_size=8, learning_rate_init=0.5, tol=0,
                      random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter reached
        reg.fit(X, y + 3000)
    assert abs(np.mean(reg.predict(X)) - 3000 - np.mean(y)) < 50
    n_iter = reg.n_iter_  # (it may stop early: w0 starts at the mean target)
    reg.partial_fit(X[:32], y[:32])
    reg.set_params(warm_start=True, max_iter=1).fit(X, y)
    assert reg.n_iter_ == n_iter + 2


def test_stored_zeros_are_dropped_with_canonicalisation():
    """to_csr_data drops stored zeros (also those that summed duplicates leave) on a copy:
    AFM's attention runs over a row's stored entries (test_afm checks the model)."""
    from skfm._base import to_csr_data
    X = sp.csr_matrix(np.array([[1.0, 0, 2], [0, 3, 0], [0, 0, 0]]))
    Z = sp.csr_matrix((np.array([1.0, 0.0, 2.0, 3.0, -1.0, 1.0, 0.0]),
                       np.array([0, 1, 2, 1, 2, 2, 0]), np.array([0, 3, 6, 7])), shape=(3, 3))
    before = (Z.data.copy(), Z.indices.copy(), Z.indptr.copy())
    for M in (Z, Z.astype(np.float32)):  # sorted with a zero; duplicates summing to zero
        c = to_csr_data(M, np.float64)
        np.testing.assert_array_equal(c.indptr, X.indptr)
        np.testing.assert_array_equal(c.indices, X.indices)
        np.testing.assert_array_equal(c.data, X.data)
    for a, b in zip(before, (Z.data, Z.indices, Z.indptr)):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ malformed CSR, overflow
def _bad_csr(X, how):
    """A scipy CSR matrix that scipy accepts but that is not well formed (built on copies)."""
    X = sp.csr_matrix(X)
    ind, ptr = X.indices.copy(), X.indptr.copy()
    if how == "one_based":  # every index + 1 under the same shape: the largest is n_features
        ind = ind + 1
    elif how == "far":
        ind[0] = 100_000
    elif how == "negative":
        ind[-1] = -1
    bad = sp.csr_matrix((X.data.copy(), ind, ptr), shape=X.shape)
    # scipy checks these two on construction: break them afterwards, as code that edits a
    # matrix's arrays in place can
    if how == "indptr_decreasing":
        bad.indptr[2], bad.indptr[3] = bad.indptr[3], bad.indptr[2] + 1
    elif how == "indptr_past_end":
        bad.indptr[-1] += 5
    return bad


@pytest.mark.parametrize("how", ["one_based", "far", "negative"])
@pytest.mark.parametrize("Est", [FMClassifier, skfm.NFMRegressor, skfm.AFMClassifier],
                         ids=_name)
def test_csr_column_index_out_of_range(Est, how, data, reg_data):
    X, y = reg_data if Est is skfm.NFMRegressor else data
    bad = _bad_csr(X, how)
    before = bad.indices.copy()
    with pytest.raises(ValueError, match="column indices outside"):
        Est(max_iter=1, random_state=0).fit(bad, y)
    m = Est(max_iter=1, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="column indices outside"):
        m.predict(bad)
    np.testing.assert_array_equal(bad.indices, before)  # checked, never repaired in place


@pytest.mark.parametrize("how", ["indptr_decreasing", "indptr_past_end"])
def test_csr_malformed_indptr(how, data):
    X, y = data
    bad = _bad_csr(X, how)
    with pytest.raises(ValueError, match="not a valid CSR matrix"):
        FMClassifier(max_iter=1, random_state=0).fit(bad, y)
    m = FMClassifier(max_iter=1, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="not a valid CSR matrix"):
        m.predict(bad)


@pytest.mark.parametrize("how", ["one_based", "indptr_past_end"])
def test_malformed_csc_is_caught_before_conversion(how, data):
    """scipy's CSC -> CSR conversion itself writes out of bounds on bad row indices (a crash
    before skfm's own CSR check): other compressed formats are checked first."""
    X, y = data
    C = sp.csc_matrix(X)
    ind = C.indices + 1 if how == "one_based" else C.indices.copy()
    bad = sp.csc_matrix((C.data.copy(), ind, C.indptr.copy()), shape=C.shape)
    if how == "indptr_past_end":
        bad.indptr[-1] += 5
    match = "row indices outside" if how == "one_based" else "not a valid CSC matrix"
    m = FMClassifier(max_iter=1, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match=match):
        m.predict(bad)
    with pytest.raises(ValueError, match=match):
        FMClassifier(max_iter=1, random_state=0).fit(bad, y)


def test_csr_trailing_unused_entries_are_fine(data):
    """Entries past indptr[-1] are not part of the matrix (scipy's convention): accepted."""
    X, y = data
    X = sp.csr_matrix(X)
    padded = sp.csr_matrix((np.r_[X.data, 7.0], np.r_[X.indices, 10**6], X.indptr),
                           shape=X.shape)
    a = FMClassifier(max_iter=2, random_state=0).fit(X, y).decision_function(X)
    b = FMClassifier(max_iter=2, random_state=0).fit(padded, y).decision_function(padded)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("Est", [FMRegressor, skfm.AFMClassifier, skfm.NFMClassifier],
                         ids=_name)
def test_outputs_that_overflow_raise(Est, data, reg_data):
    """Finite but huge inputs whose outputs overflow raise instead of returning inf/NaN (FM's
    and AFM's do at 1e200; NFM's ReLU maps the overflowed Bi-Interaction to 0, leaving a
    finite output, which must then be finite everywhere)."""
    X, y = reg_data if Est is FMRegressor else data
    m = Est(max_iter=2, random_state=0).fit(X, y)
    huge = X[:3] * 1e200
    if Est is skfm.NFMClassifier:
        assert np.isfinite(m.decision_function(huge)).all()
        assert np.isfinite(m.predict_proba(huge)).all()
        return
    with pytest.raises(ValueError, match="overflowed to inf or NaN"):
        m.predict(huge)
    with pytest.raises(ValueError, match="overflowed to inf or NaN"):
        m.saliency(huge, y[:3])
    if Est is skfm.AFMClassifier:
        with pytest.raises(ValueError, match="overflowed to inf or NaN"):
            m.attention_scores(huge)
    assert np.isfinite(m.predict(X * 1e3) if Est is FMRegressor else m.decision_function(X)).all()


def test_targets_too_large_for_the_squared_loss(reg_data):
    X, y = reg_data
    with pytest.raises(ValueError, match="y's values are too large"):
        FMRegressor(max_iter=1).fit(X, y * 1e160)
