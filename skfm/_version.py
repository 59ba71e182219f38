"""skfm's version, and the format of its pickled estimators."""

__version__ = "0.1.0"

#: The layout of a fitted estimator's pickled state (the arrays of ``_params`` and ``_states``,
#: their keys, shapes and meaning, and the private attributes prediction and continued training
#: read).  A release that changes it bumps this number and either registers a migration from
#: the previous format in ``skfm._base.PICKLE_MIGRATIONS`` or lets the pickles of that format
#: fail to load with a message naming both versions.  A release that keeps the layout keeps the
#: number: its pickles load in the other releases of the same format and predict the same.
PICKLE_FORMAT = 1
