"""A test-only field-aware model, declared as a real one is: FM's math, with a core that keeps
the fields its factory is given, and one structural parameter of its own.  Not registered: it
exercises the field-aware path of skfm._platform before (and beside) DeepFM."""
from numbers import Real

from sklearn.utils._param_validation import Interval

from skfm._cores import FMCore
from skfm._platform import Model, Param, make_estimator

#: the fields every core was made with, in order
SEEN_FIELDS = []


class FieldRecordingCore(FMCore):
    """FM's core, holding the fields it was made with."""

    def __init__(self, fields):
        self.fields = fields


def _core(estimator, fields):
    SEEN_FIELDS.append(fields)
    return FieldRecordingCore(fields)


FIELDFM = Model(
    name="FieldFM",
    module=__name__,
    title="Field-aware test machine {task}",
    summary="FM's model, declared field-aware (a test of skfm._platform).",
    core=_core,
    params=(Param("sharpness", 1.0, [Interval(Real, 0, None, closed="neither")], "float",
                  "A structural option that changes nothing.", structural=True),),
    after="n_factors",
    field_aware=True,
    example={"n_factors": 2, "max_iter": 2},
    fast={"n_factors": 3, "max_iter": 3, "batch_size": 32},
)

FieldFMClassifier = make_estimator(FIELDFM, "classifier", register=False)
FieldFMRegressor = make_estimator(FIELDFM, "regressor", register=False)
