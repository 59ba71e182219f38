"""Early stopping on validation rows given to fit (X_val, y_val, sample_weight_val), as
HistGradientBoostingClassifier.fit's: the scores are those of exactly these rows, errors name
them, and scikit-learn's metadata routing and GridSearchCV pass them through."""
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn import config_context
from sklearn.metrics import log_loss, mean_absolute_error, roc_auc_score
from sklearn.model_selection import GridSearchCV

from skfm import FMClassifier, FMRegressor, NFMClassifier
from skfm.datasets import make_fm_classification, make_fm_regression

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

FAST = dict(n_factors=4, batch_size=64, learning_rate_init=0.01, random_state=0)


def _data(task="classifier", n=500):
    make = make_fm_classification if task == "classifier" else make_fm_regression
    X, y = make(n_samples=n, n_fields=4, field_size=6, random_state=0)
    return X[:350], y[:350], X[350:], y[350:]


def _refit(Est, epochs, X, y, **kw):
    """The model after ``epochs`` epochs on (X, y), without early stopping."""
    return Est(**FAST, **kw, early_stopping=False, max_iter=epochs, n_iter_no_change=100).fit(
        X, y)


@pytest.mark.parametrize("Est", [FMClassifier, NFMClassifier])
def test_validation_loss_is_that_of_the_given_rows(Est):
    """validation_scores_[e] is minus the weighted log-loss, on X_val, of the model trained
    e + 1 epochs on all of X (refitted without early stopping); the returned model is the best
    epoch's (final_epochs=0)."""
    X, y, Xv, yv = _data()
    swv = np.random.default_rng(0).uniform(0.5, 2.0, len(yv))
    est = Est(**FAST, max_iter=4, n_iter_no_change=100, final_epochs=0).fit(
        X, y, X_val=Xv, y_val=yv, sample_weight_val=swv)
    assert len(est.validation_scores_) == 4
    for e, score in enumerate(est.validation_scores_):
        p = _refit(Est, e + 1, X, y).predict_proba(Xv)[:, 1]
        np.testing.assert_allclose(score, -log_loss(yv, p, sample_weight=swv), rtol=1e-9)
    best = int(np.argmax(est.validation_scores_))
    np.testing.assert_allclose(est.predict_proba(Xv),
                               _refit(Est, best + 1, X, y).predict_proba(Xv), rtol=1e-12)


def test_scorer_gets_weights_only_when_given():
    """A scorer scores X_val unweighted without sample_weight_val (even when the training rows
    are weighted), weighted with it."""
    X, y, Xv, yv = _data("regressor")
    sw = np.linspace(0.5, 2.0, len(y))
    swv = np.linspace(2.0, 0.1, len(yv))
    kw = dict(scoring="neg_mean_absolute_error", max_iter=3, n_iter_no_change=100,
              final_epochs=0)
    plain = FMRegressor(**FAST, **kw).fit(X, y, sample_weight=sw, X_val=Xv, y_val=yv)
    weighted = FMRegressor(**FAST, **kw).fit(X, y, sample_weight=sw, X_val=Xv, y_val=yv,
                                             sample_weight_val=swv)
    for e in range(3):
        pred = FMRegressor(**FAST, early_stopping=False, max_iter=e + 1,
                           n_iter_no_change=100).fit(X, y, sample_weight=sw).predict(Xv)
        np.testing.assert_allclose(plain.validation_scores_[e],
                                   -mean_absolute_error(yv, pred), rtol=1e-9)
        np.testing.assert_allclose(weighted.validation_scores_[e],
                                   -mean_absolute_error(yv, pred, sample_weight=swv), rtol=1e-9)


def test_roc_auc_on_the_given_rows_and_auto_turns_on():
    """early_stopping="auto" (off on 350 rows) is turned on by X_val; every training row is
    trained on (the same first epoch as a fit without early stopping)."""
    X, y, Xv, yv = _data()
    assert FMClassifier(**FAST, max_iter=2).fit(X, y).validation_scores_ is None
    est = FMClassifier(**FAST, max_iter=2, scoring="roc_auc", final_epochs=0,
                       n_iter_no_change=100).fit(X, y, X_val=Xv, y_val=yv)
    p = _refit(FMClassifier, 1, X, y).predict_proba(Xv)[:, 1]
    np.testing.assert_allclose(est.validation_scores_[0], roc_auc_score(yv, p), rtol=1e-12)


def test_final_epochs_run_on_the_training_rows():
    """With X_val, final_epochs continue from the best epoch over the training rows only: the
    best epoch's loss curve, then final_epochs more entries."""
    X, y, Xv, yv = _data()
    est = FMClassifier(**FAST, max_iter=3, n_iter_no_change=100, final_epochs=2).fit(
        X, y, X_val=Xv, y_val=yv)
    assert est.n_iter_ == 5 and len(est.loss_curve_) == 5
    assert len(est.validation_scores_) == 3


@pytest.mark.parametrize("kwargs, match", [
    (lambda Xv, yv: dict(y_val=yv), "X_val is missing"),
    (lambda Xv, yv: dict(X_val=Xv), "y_val is missing"),
    (lambda Xv, yv: dict(sample_weight_val=np.ones(len(yv))), "X_val is missing"),
    (lambda Xv, yv: dict(X_val=Xv[:, :-1], y_val=yv), "X_val has 23 features, but X has 24"),
    (lambda Xv, yv: dict(X_val=Xv, y_val=yv[:-1]), "y_val has 149 rows but X_val has 150"),
    (lambda Xv, yv: dict(X_val=Xv, y_val=np.full(len(yv), 7)), "y_val contains labels not"),
    (lambda Xv, yv: dict(X_val=Xv, y_val=yv, sample_weight_val=np.ones(3)),
     "sample_weight_val"),
    (lambda Xv, yv: dict(X_val=Xv, y_val=yv, sample_weight_val=-np.ones(len(yv))),
     "sample_weight_val"),
    (lambda Xv, yv: dict(X_val=_with_nan(Xv), y_val=yv), "X_val contains NaN"),
    (lambda Xv, yv: dict(X_val=sp.csr_matrix((np.ones(1), np.array([99]), np.array([0, 1])),
                                             shape=(1, 24)), y_val=yv[:1]),
     "X_val has column indices outside"),
])
def test_bad_validation_rows_raise_and_leave_unfitted(kwargs, match):
    X, y, Xv, yv = _data()
    args = kwargs(Xv, yv)
    before = {k: (v.copy() if hasattr(v, "copy") else v) for k, v in args.items()}
    est = FMClassifier(**FAST, max_iter=2)
    with pytest.raises(ValueError, match=match):
        est.fit(X, y, **args)
    assert not hasattr(est, "n_features_in_")
    for k, v in args.items():  # the caller's arrays are unchanged
        old = before[k]
        assert (v != old).nnz == 0 if sp.issparse(v) else np.array_equal(v, old, equal_nan=True)


def _with_nan(X):
    X = X.toarray()
    X[0, 0] = np.nan
    return X


def test_early_stopping_false_with_validation_rows_raises():
    """As HistGradientBoostingClassifier: X_val given with early_stopping=False raises."""
    X, y, Xv, yv = _data()
    with pytest.raises(ValueError, match="early_stopping=False"):
        FMClassifier(**FAST, early_stopping=False).fit(X, y, X_val=Xv, y_val=yv)


def test_grid_search_passes_validation_rows():
    """GridSearchCV forwards X_val / y_val to fit: without metadata routing (as fit params of
    another length than X, not split), and with routing once requested."""
    X, y, Xv, yv = _data()
    grid = {"n_factors": [2, 4]}
    est = FMClassifier(batch_size=64, max_iter=2, random_state=0)
    gs = GridSearchCV(est, grid, cv=2).fit(X, y, X_val=Xv, y_val=yv)
    assert len(gs.best_estimator_.validation_scores_) == 2
    with config_context(enable_metadata_routing=True):
        routed = est.set_fit_request(X_val=True, y_val=True)
        gs = GridSearchCV(routed, grid, cv=2).fit(X, y, X_val=Xv, y_val=yv)
        assert len(gs.best_estimator_.validation_scores_) == 2
        assert set(FMClassifier().get_metadata_routing().fit.requests) == {
            "sample_weight", "X_val", "y_val", "sample_weight_val"}
