"""scikit-learn's estimator checks over every public skfm estimator, at default settings."""
import re

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from skfm import (FMClassifier, FMRegressor, MixFMClassifier, MixFMRegressor, SMFMClassifier,
                  SMFMRegressor)

# Default max_iter=100 does not converge on some of the checks' tiny data sets; that is expected.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

ESTIMATORS = [
    FMClassifier(random_state=0),
    FMRegressor(random_state=0),
    MixFMClassifier(random_state=0),
    MixFMRegressor(random_state=0),
    SMFMClassifier(random_state=0),
    SMFMRegressor(random_state=0),
]

# Checks that cannot pass for a minibatch stochastic trainer (the same for every estimator).
_MINIBATCH_LIMITATIONS = {
    "check_sample_weight_equivalence_on_dense_data":
        "minibatch SGD with a row of weight 2 takes different steps (other batches, other "
        "Adam moments) than with that row duplicated, so the models differ beyond rtol=1e-7",
    "check_sample_weight_equivalence_on_sparse_data":
        "same as on dense data: weighted minibatch steps are not duplicated-row steps",
}


def _expected_failed_checks(estimator):
    return dict(_MINIBATCH_LIMITATIONS)


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failed_checks)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


def _public_estimators():
    import inspect

    import skfm
    from sklearn.base import BaseEstimator
    return [getattr(skfm, name) for name in skfm.__all__
            if inspect.isclass(getattr(skfm, name))
            and issubclass(getattr(skfm, name), BaseEstimator)]


@pytest.mark.parametrize("cls", _public_estimators(), ids=lambda c: c.__name__)
def test_docstring_names_every_parameter(cls):
    """help() of every public estimator shows its own docstring (not a mixin's), naming each
    of its parameters (an expression in the docstring position leaves __doc__ None)."""
    doc = cls.__dict__.get("__doc__")
    assert doc, f"{cls.__name__} has no docstring of its own"
    missing = [p for p in cls().get_params() if not re.search(rf"\b{p}\b", doc)]
    assert not missing, f"{cls.__name__}'s docstring does not mention {missing}"
