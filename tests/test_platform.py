"""skfm._platform: estimators generated from a model declaration, and the field-aware path (on a
test-only field-aware model, and on every registered field-aware model)."""
import inspect
import pickle

import numpy as np
import pytest
from sklearn.base import ClassifierMixin
from sklearn.utils.estimator_checks import parametrize_with_checks

import skfm
from _field_aware_model import SEEN_FIELDS, FieldFMClassifier, FieldFMRegressor
from skfm._fields import infer_fields
from skfm._platform import PRESET_DEFAULTS, SHARED_PARAMS, all_estimators, get_estimator
from skfm.datasets import make_fm_classification, make_fm_regression

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

FIELD_AWARE = [FieldFMClassifier, FieldFMRegressor] + [
    e.cls for e in all_estimators() if e.field_aware]
field_aware = pytest.mark.parametrize("Est", FIELD_AWARE, ids=lambda c: c.__name__)


def _is_clf(Est):
    return issubclass(Est, ClassifierMixin)


def _data(Est, n_samples=200):
    make = make_fm_classification if _is_clf(Est) else make_fm_regression
    return make(n_samples=n_samples, n_fields=4, field_size=5, random_state=0)


def _fast(Est):
    registered = [e.fast for e in all_estimators() if e.cls is Est]
    return registered[0] if registered else Est._model.fast


# --------------------------------------------------------------------------- generation
@pytest.mark.parametrize("entry", all_estimators(), ids=lambda e: e.name)
def test_signature_follows_the_declarations(entry):
    """n_factors positional, the rest keyword-only, in declaration order (the model's own
    parameters after its ``after``), with the declared defaults; the constraints and the
    structural parameters come from the same declarations."""
    model = entry.cls._model
    params = list(inspect.signature(entry.cls).parameters.values())
    declared = model.signature_params(entry.augmentation)
    assert [p.name for p in params] == [d.name for d in declared]
    assert params[0].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params[1:])
    for p, d in zip(params, declared):
        assert p.default == d.default
    own = [p.name for p in model.params]
    names = [p.name for p in params]
    if own:
        at = names.index(model.after)
        assert names[at + 1:at + 1 + len(own)] == own
    assert set(entry.cls._parameter_constraints) == set(names)
    assert set(entry.cls._structural) == {d.name for d in declared if d.structural}
    shared = {p.name: p.default for p in SHARED_PARAMS}
    shared.update(model.defaults)  # the model's own defaults of shared parameters
    if entry.augmentation:
        shared.update(PRESET_DEFAULTS)
    shared.update(augmentation=entry.augmentation,
                  fields="auto" if entry.field_aware else None)
    assert {k: v for k, v in entry.cls().get_params().items() if k in shared} == shared


def test_presets_differ_from_their_model_only_in_augmentation_and_preset_defaults():
    assert PRESET_DEFAULTS == {"alpha": 0.0, "n_iter_no_change": 5}
    for e in all_estimators():
        if e.augmentation:
            base = get_estimator(e.model, e.task)
            a, b = e.cls().get_params(), base().get_params()
            assert a.pop("augmentation") == e.augmentation and b.pop("augmentation") is None
            for name, value in PRESET_DEFAULTS.items():
                assert a.pop(name) == value and b.pop(name) != value
            assert a == b
            assert e.cls.__mro__[1:] == base.__mro__[1:]  # the same bases
            assert e.cls._model is base._model


def test_get_estimator():
    assert get_estimator("NFM", "classifier") is skfm.NFMClassifier
    assert get_estimator("FM", "regressor", "saliency") is skfm.SMFMRegressor
    with pytest.raises(KeyError, match="no registered AFM regressor with augmentation='mix'"):
        get_estimator("AFM", "regressor", "mix")


def test_model_methods_are_kept():
    assert hasattr(skfm.AFMClassifier, "attention_scores")
    assert hasattr(skfm.AFMRegressor, "attention_scores")
    assert not hasattr(skfm.NFMClassifier, "attention_scores")


# --------------------------------------------------------------------------- field-aware models
@field_aware
def test_field_aware_default_is_auto_and_reaches_the_core(Est):
    X, y = _data(Est)
    est = Est(**_fast(Est), random_state=0)
    assert est.fields == "auto"
    SEEN_FIELDS.clear()
    est.fit(X, y)
    np.testing.assert_array_equal(est.fields_, infer_fields(X))
    assert est.n_fields_ == 4
    if Est in (FieldFMClassifier, FieldFMRegressor):  # the core factory was given fields_
        assert SEEN_FIELDS and all(f is est.fields_ for f in SEEN_FIELDS)
        est.predict(X)
        assert SEEN_FIELDS[-1] is est.fields_


@field_aware
def test_field_aware_model_needs_fields(Est):
    X, y = _data(Est)
    est = Est(**_fast(Est), fields=None)
    with pytest.raises(ValueError, match=f"{Est.__name__} needs the field of every column of X: "
                                         "set fields=\"auto\""):
        est.fit(X, y)
    assert not hasattr(est, "fields_") and not hasattr(est, "n_iter_")
    kwargs = {"classes": np.unique(y)} if _is_clf(Est) else {}
    with pytest.raises(ValueError, match="needs the field of every column"):
        est.partial_fit(X, y, **kwargs)


@field_aware
def test_field_aware_given_fields(Est):
    X, y = _data(Est)
    labels = np.repeat([30, 10, 20, 10], 5)  # any labels; two blocks may share a field
    est = Est(**_fast(Est), fields=labels, random_state=0).fit(X, y)
    np.testing.assert_array_equal(est.fields_, np.repeat([2, 0, 1, 0], 5))
    assert est.n_fields_ == 3 and est.fields_.dtype == np.int32
    for bad, message in [(labels[:-1], "fields has 19 labels but X has 20 columns"),
                         (labels - 40, "field labels must be non-negative"),
                         (labels + 0.5, "non-integer"),
                         (np.where(labels == 10, np.nan, labels), "NaN")]:
        with pytest.raises(ValueError, match=message):
            Est(**_fast(Est), fields=bad).fit(X, y)


@field_aware
def test_field_aware_structure_and_pickle(Est):
    X, y = _data(Est)
    est = Est(**_fast(Est), warm_start=True, random_state=0).fit(X, y)
    est.set_params(fields=np.arange(X.shape[1]))
    with pytest.raises(ValueError, match="fields='array-like', but the model was fitted with "
                                         "fields='auto'"):
        est.fit(X, y)
    est.set_params(fields="auto")
    back = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(back.fields_, est.fields_)
    np.testing.assert_array_equal(back.predict(X), est.predict(X))


def test_a_model_structural_parameter_is_enforced():
    X, y = _data(FieldFMClassifier)
    est = FieldFMClassifier(n_factors=2, max_iter=2, warm_start=True).fit(X, y)
    est.set_params(sharpness=2.0)
    with pytest.raises(ValueError, match="sharpness=2.0, but the model was fitted with "
                                         "sharpness=1.0"):
        est.fit(X, y)


@parametrize_with_checks([FieldFMClassifier(random_state=0), FieldFMRegressor(random_state=0)],
                         expected_failed_checks=lambda est: {
                             "check_sample_weight_equivalence_on_dense_data": "minibatch SGD",
                             "check_sample_weight_equivalence_on_sparse_data": "minibatch SGD"})
def test_field_aware_default_passes_sklearn_checks(estimator, check):
    """fields="auto" on every input scikit-learn's checks feed (dense, sparse with int64
    indices, read-only memory maps, one column, one row)."""
    check(estimator)


def test_precompile_rejects_what_it_cannot_compile():
    from sklearn.linear_model import LogisticRegression

    from skfm import FMClassifier, precompile
    with pytest.raises(TypeError, match="LogisticRegression is not an skfm estimator"):
        precompile([LogisticRegression])
    with pytest.raises(ValueError, match="dtypes must name float32"):
        precompile([FMClassifier], dtypes=[np.int64])
    with pytest.raises(ValueError, match="dtypes must name float32"):
        precompile([FMClassifier], dtypes=[])
    assert precompile([]) == {}


def test_precompile_compiles_a_model_and_an_unregistered_regressor():
    """One task per (model, dtype), keyed by model name and dtype name; a model outside the
    registry compiles through its own class, a regressor through predict."""
    from skfm import FMRegressor, precompile
    seconds = precompile([FMRegressor(), FieldFMRegressor], dtypes=np.float64, n_jobs=1)
    assert set(seconds) == {("FM", "float64"), ("FieldFM", "float64")}
    assert all(s > 0 for s in seconds.values())
