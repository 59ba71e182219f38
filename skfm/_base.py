"""Shared estimator logic: input validation and encoding, fit / partial_fit, warm start, fields,
the early-stopping split, fitted attributes, tags (the epochs run in skfm._trainer)."""
import copy
import mmap
from numbers import Integral

import numpy as np
import scipy.sparse as sp
from scipy.special import logsumexp
from sklearn import get_config
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, _fit_context
from sklearn.metrics import check_scoring
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, InvalidParameterError
from sklearn.utils.multiclass import check_classification_targets, unique_labels
from sklearn.utils.validation import (_check_sample_weight, check_array, check_is_fitted,
                                      column_or_1d, validate_data)

from ._cores import draw_missing_rows
from ._kernels import csr as kcsr
from ._kernels.losses import LOGISTIC, SQUARED
from ._trainer import (CSRData, TrainingDivergedError, Validation, fit_epochs, kernel_lock,
                       numba_threads, readonly)
from ._version import PICKLE_FORMAT, __version__

#: the migrations of pickled states from earlier formats: format -> function(state) returning
#: the state in format + 1 (none yet: format 1 is the first)
PICKLE_MIGRATIONS = {}

#: ``early_stopping="auto"`` turns early stopping on for fits on more rows than this (100 rows
#: held out at the default validation_fraction; the figures: user guide, "Defaults")
EARLY_STOPPING_AUTO_ROWS = 1_000

#: a classifier's intercept starts at a class's log-odds where the class is rarer than this (or
#: more frequent than 1 minus this) in the training rows, else at 0 (FMClassifierMixin)
INTERCEPT_RATE = 0.1

__all__ = ["BaseFactorizationMachine", "FMClassifierMixin", "FMRegressorMixin",
           "TrainingDivergedError", "check_sparse_structure", "finite_output", "to_csr_data"]


def check_sparse_structure(X, name="X"):
    """Raise ValueError unless a compressed sparse matrix (CSR, CSC or BSR; other inputs pass) is
    well formed: ``indptr`` non-decreasing from 0 to at most the stored entries, and every index
    within the other dimension.  scipy accepts matrices that break this (e.g. one-based indices
    under an unchanged shape); the compiled kernels, and scipy's own format conversions, would
    read and write out of bounds on them.  O(n_major + nnz), on the caller's arrays without
    copying or changing them.  ``name``: the argument named in the errors."""
    fmt = getattr(X, "format", None) if sp.issparse(X) else None
    if fmt == "csr":
        n_major, n_minor = X.shape
        major, minor, bound = "rows", "column indices", "features"
    elif fmt == "csc":
        n_minor, n_major = X.shape
        major, minor, bound = "columns", "row indices", "rows"
    elif fmt == "bsr":
        r, c = X.blocksize
        n_major, n_minor = X.shape[0] // r, X.shape[1] // c
        major, minor, bound = "block rows", "block column indices", "block columns"
    else:
        return
    ip = X.indptr
    nnz = int(ip[-1]) if ip.shape[0] else -1
    if (ip.shape[0] != n_major + 1 or ip[0] != 0 or nnz > X.indices.shape[0]
            or nnz > X.data.shape[0] or bool(np.any(ip[1:] < ip[:-1]))):
        raise ValueError(
            f"{name} is not a valid {fmt.upper()} matrix: its indptr must have one entry more "
            f"than its {major}, start at 0 and never decrease, and its last entry must not exceed "
            f"the stored entries (indptr has {ip.shape[0]} entries for {n_major} {major}, "
            f"from {ip[0] if ip.shape[0] else None} to {nnz}; {X.indices.shape[0]} indices "
            f"stored).")
    if nnz > 0:
        ind = X.indices[:nnz]
        lo, hi = int(ind.min()), int(ind.max())
        if lo < 0 or hi >= n_minor:
            raise ValueError(
                f"{name} has {minor} outside [0, {n_minor}), its {n_minor} {bound}: the "
                f"smallest is {lo}, the largest {hi} (one-based indices?).")


def finite_output(values, X, what, y=None):
    """``values`` when all are finite; else a ValueError: finite inputs whose outputs overflow
    are too large for the model, and an inf or NaN prediction must not pass silently.  ``y``:
    the targets, when they enter the output too (saliency)."""
    bad = ~np.isfinite(values)
    if bad.any():
        amax = float(np.abs(X.data).max()) if X.data.size else 0.0
        if y is None:
            culprit, sizes, advice = "X's values are", f"largest |x| = {amax:.3g}", "features"
        else:
            culprit = "X's or y's values are"
            sizes = f"largest |x| = {amax:.3g}, largest |y| = {float(np.abs(y).max()):.3g}"
            advice = "features or the targets"
        raise ValueError(
            f"{what} overflowed to inf or NaN ({int(bad.sum())} of {bad.size} values): "
            f"{culprit} too large for this model ({sizes}); scale the {advice}.")
    return values


def _check_before_conversion(X, name="X"):
    """Check a CSC or BSR matrix before scikit-learn has scipy convert it to CSR (scipy's
    conversion writes out of bounds on bad indices); CSR input is checked in to_csr_data."""
    if sp.issparse(X) and X.format != "csr":
        check_sparse_structure(X, name)


def to_csr_data(X, dtype, name="X"):
    """A validated matrix as canonical CSR arrays of ``dtype``; never writes into ``X``.

    One parallel pass over X's arrays (kcsr.csr_check) checks the structure (as
    check_sparse_structure), that the values are finite and whether the matrix is canonical.
    Indices are sorted, duplicates summed and stored zeros dropped (on a copy) because the
    kernels rely on it: AFM's attention runs over the pairs of a row's stored entries, so a
    stored zero would change its softmax.  A canonical matrix of ``dtype`` with int32 indices
    is not copied."""
    X = X.tocsr() if sp.issparse(X) else sp.csr_matrix(X)
    if X.shape[1] > np.iinfo(np.int32).max:
        raise ValueError(f"{name} has {X.shape[1]} features; skfm supports at most 2**31 - 1.")
    ip = X.indptr
    if (ip.shape[0] != X.shape[0] + 1 or ip.shape[0] == 0 or ip[0] != 0
            or ip[-1] > min(X.indices.shape[0], X.data.shape[0])
            or X.indices.dtype != np.int32):
        # raises, naming what is wrong; int64 indices (rare) are checked here before they are
        # narrowed to the kernels' int32, so that csr_check compiles for one index type
        check_sparse_structure(X, name)
    indptr = readonly(ip.astype(np.int64, copy=False))
    indices = readonly(X.indices.astype(np.int32, copy=False))
    with kernel_lock():  # a parallel kernel (see kernel_lock)
        bits, exp_mask, abs_mask = kcsr.float_bits(X.data)
        status = kcsr.csr_check(indptr, indices, readonly(bits), exp_mask, abs_mask,
                                X.shape[1])
    if status & (kcsr.BAD_INDPTR | kcsr.OUT_OF_BOUNDS):
        check_sparse_structure(X, name)  # raises, naming what is wrong
        raise ValueError(f"{name} is not a valid CSR matrix.")  # (not reached)
    if status & kcsr.NON_FINITE:  # scikit-learn's words (check_array's)
        if status & kcsr.HAS_NAN:
            raise ValueError(f"Input {name} contains NaN.")
        raise ValueError(f"Input {name} contains infinity or a value too large for "
                         f"{X.data.dtype!r}.")
    if status & (kcsr.NOT_CANONICAL | kcsr.HAS_ZEROS):
        X = X.copy()
        if status & kcsr.NOT_CANONICAL:
            X.sum_duplicates()
        X.eliminate_zeros()  # also the zeros that summed duplicates may leave
        indices = readonly(X.indices.astype(np.int32, copy=False))
        indptr = readonly(X.indptr.astype(np.int64, copy=False))
    if X.data.dtype == dtype:
        data = X.data
    else:
        with np.errstate(over="ignore"):
            data = X.data.astype(dtype)
        if not np.isfinite(data).all():
            raise ValueError(
                f"{name} contains values too large for {np.dtype(dtype).name}, the precision of "
                f"the model (fitted on {np.dtype(dtype).name} data): |x| > "
                f"{np.finfo(dtype).max:.3g}.")
    return CSRData(indptr, indices, data, X.shape[1])


class BaseFactorizationMachine(BaseEstimator):
    """Common machinery of every skfm estimator: input validation and encoding, fit /
    partial_fit, warm start, fields, fitted attributes, tags.  The epochs run in
    :func:`skfm._trainer.fit_epochs`.

    The public estimators are generated by :func:`skfm._platform.make_estimator`, which adds
    ``__init__``, ``_parameter_constraints`` and the docstring from the model's declaration,
    and sets the class attributes below."""

    #: the model declaration (skfm._platform.Model): its core factory, whether field-aware
    _model = None

    #: the structural hyperparameters, name -> normalising function (or None): they fix the
    #: form of the fitted model (the shapes of its parameters, NFM's activation), so a
    #: warm-started fit or a later partial_fit must keep them, and prediction uses the values
    #: the model was fitted with
    _structural = {}

    def _structure(self):
        """The structural hyperparameters as set now, normalised."""
        return {name: normalise(getattr(self, name)) if normalise else getattr(self, name)
                for name, normalise in self._structural.items()}

    def _fitted_or_current(self, name):
        """A structural hyperparameter as the model was fitted with it (as set, before fit)."""
        fitted = getattr(self, "_fitted_structure", None)
        return fitted[name] if fitted is not None and name in fitted else getattr(self, name)

    def _validate_params(self):
        super()._validate_params()
        # bool is an Integral to Python and to scikit-learn's Interval(Integral, ...); a count
        # given as True/False is a mistake, not 1/0
        for name, constraints in self._parameter_constraints.items():
            value = getattr(self, name, None)
            if isinstance(value, (bool, np.bool_)) and any(
                    isinstance(c, Interval) and c.type is Integral for c in constraints):
                raise InvalidParameterError(
                    f"The {name!r} parameter of {type(self).__name__} must be an int, not a "
                    f"bool; got {value!r}.")

    def _make_core(self):
        """The model core for the current hyperparameters and the fitted fields (the model's
        core factory checks the model's own options)."""
        return self._model.core(self, getattr(self, "fields_", None))

    def _encode_targets(self, y, first_call, classes=None):
        """y -> (n, n_outputs) float64 Fortran array of training targets."""
        raise NotImplementedError

    def _init_intercepts(self, Y, sw, partial):
        """Starting intercepts from the training targets (first fit only; ``partial``: the
        rows are partial_fit's first batch); default: 0."""

    # ------------------------------------------------------------------ public API
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None, *, X_val=None, y_val=None, sample_weight_val=None):
        """Fit the model to (X, y) with minibatch training for up to ``max_iter`` epochs.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training rows; sparse input of any format is converted to CSR, dense input is
            converted to CSR too (never the other way round).  X is never written to.
        y : array-like of shape (n_samples,)
            Class labels (classifiers) or targets (regressors).
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each row's loss.  Augmented rows carry the weight of their
            parents, mixed with the same ``lam`` as the labels.
        X_val : {array-like, sparse matrix} of shape (n_val, n_features), default=None
            Validation rows for early stopping, used instead of holding out
            ``validation_fraction`` of the training rows (as
            ``HistGradientBoostingClassifier.fit``'s ``X_val``): every row of X is trained
            on, and ``final_epochs`` run over the rows of X only.  Checked as ``predict``'s
            input.  Giving it turns ``early_stopping="auto"`` on; with
            ``early_stopping=False`` it raises ValueError.  Needs ``y_val``.  In a
            ``Pipeline``, ``transform_input=["X_val"]`` transforms it as X.
        y_val : array-like of shape (n_val,), default=None
            Labels (classes seen in y) or targets of ``X_val``; needs ``X_val``.
        sample_weight_val : array-like of shape (n_val,), default=None
            Non-negative weights of the validation rows, for the validation loss and the
            ``scoring`` scorer (which gets ``sample_weight`` only when this is given).

        Returns
        -------
        self : object
        """
        incremental = self.warm_start and hasattr(self, "_params")
        return self._fit(X, y, sample_weight, incremental=incremental, epochs=self.max_iter,
                         classes=None, partial=False,
                         validation_data=(X_val, y_val, sample_weight_val))

    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over (X, y) (with the configured augmentation), continuing from the
        current state.  Early stopping does not apply.

        Returns
        -------
        self : object
        """
        return self._partial_fit(X, y, sample_weight, None)

    def _partial_fit(self, X, y, sample_weight, classes):
        # hyperparameters are checked on every call (unlike scikit-learn's partial_fit, which
        # checks them on the first call only): set_params between calls is common, and a
        # negative learning rate would otherwise train silently uphill
        if not get_config()["skip_parameter_validation"]:
            self._validate_params()
        return self._fit(X, y, sample_weight, incremental=hasattr(self, "_params"), epochs=1,
                         classes=classes, partial=True)

    def saliency(self, X, y):
        """Per-row saliency of SMFM Eq. (5) under the fitted model.

        ``S(x, y) = sum_i x_i dL(f(x), y)/dx_i``, the derivative of the loss along the row,
        summed over the outputs of a multiclass (one-vs-rest) model.  It is what
        ``augmentation="saliency"`` maximises over its candidate mixed rows.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The rows, as for ``predict``.
        y : array-like of shape (n_samples,)
            Their targets: class labels seen in ``fit`` (classifiers) or real values
            (regressors).  The loss L is the one the model trains on (logistic per class,
            squared for regression), in inference mode (no dropout, batch norm's running
            statistics).

        Returns
        -------
        saliency : ndarray of shape (n_samples,)
            S for every row, in loss units.

        Notes
        -----
        By the chain rule ``S = d/dt L(f(t x), y)`` at ``t = 1``: how fast the row's loss
        changes when the row is scaled up.  ``S > 0``: strengthening the row's features would
        increase its loss, i.e. the row's features push the prediction away from its target;
        ``S < 0``: they push it towards the target; ``|S|`` near 0: the loss is flat along the
        row (a well-fitted row, or one the model hardly responds to).  For FM,
        ``S = L'(f) (sum_i w_i x_i + 2 sum_{i<j} <v_i, v_j> x_i x_j)``, with ``L'(f) =
        sigmoid(f) - y`` for the logistic loss and ``f - y`` for the squared loss; a row's sign
        flips with the sign of its error.
        """
        check_is_fitted(self)
        X = self._validate_X_predict(X)
        Y = self._encode_targets_predict(y, X.n_rows)
        out = np.zeros(X.n_rows)
        core = self._make_core()
        with numba_threads(self.n_jobs):
            for k, prm in enumerate(self._params):
                out += core.saliency(prm, X, Y[:, k], self._loss_id)
        return finite_output(out, X, "The saliency", y=Y)

    # ------------------------------------------------------------------ fitted attributes
    @property
    def intercept_(self):
        """Bias w0 (float; an array of one per class for multiclass classifiers)."""
        check_is_fitted(self)
        vals = np.array([p["w0"][0] for p in self._params])
        return float(vals[0]) if len(vals) == 1 else vals

    @property
    def coef_(self):
        """Linear weights w, shape ``(n_features_in_,)`` (``(n_classes, n_features_in_)``
        multiclass)."""
        check_is_fitted(self)
        cols = [p["T"][:, 0] for p in self._params]
        return cols[0] if len(cols) == 1 else np.stack(cols)

    @property
    def factors_(self):
        """Factor matrix V, shape ``(n_features_in_, n_factors)`` (a leading class axis for
        multiclass)."""
        check_is_fitted(self)
        mats = [p["T"][:, 1:] for p in self._params]
        return mats[0] if len(mats) == 1 else np.stack(mats)

    # ------------------------------------------------------------------ internals
    def _validate_X_fit(self, X, y, reset):
        _check_before_conversion(X)
        X, y = validate_data(self, X, y, accept_sparse="csr", dtype=[np.float64, np.float32],
                             reset=reset, y_numeric=self._loss_id == SQUARED,
                             ensure_all_finite=True)
        return X, y

    def _validate_X_predict(self, X):
        _check_before_conversion(X)
        # the values' finiteness is checked by to_csr_data, in its one pass over the arrays
        X = validate_data(self, X, accept_sparse="csr", dtype=[np.float64, np.float32],
                          reset=False, ensure_all_finite=False)
        return to_csr_data(X, self._dtype)

    def _check_structure(self, partial):
        """Refuse to continue the fitted model with other structural hyperparameters."""
        fitted = getattr(self, "_fitted_structure", None) or {}
        for name, value in self._structure().items():
            if fitted.get(name, value) != value:
                raise ValueError(
                    f"{name}={value!r}, but the model was fitted with "
                    f"{name}={fitted[name]!r}; {'partial_fit' if partial else 'warm_start'} "
                    f"continues the fitted model, which has that form. Set "
                    f"{name} back to {fitted[name]!r}, or fit a new model "
                    f"(warm_start=False).")

    def _fit_fields(self, X, first_call, partial):
        """Resolve ``fields`` on the validated training X: a first fit sets ``fields_`` and
        ``n_fields_`` (None without fields); a continued fit checks that given labels are the
        fitted ones ("auto" keeps the fitted fields; the kind of ``fields`` is checked with
        the structural hyperparameters)."""
        from ._fields import check_fields, infer_fields  # skfm._fields imports this module
        fields = self.fields
        if fields is None:
            if self._model.field_aware:
                raise ValueError(
                    f"{type(self).__name__} needs the field of every column of X: set "
                    f"fields=\"auto\" to infer them from X, or give one integer field label per "
                    f"column; got fields=None.")
            labels = n_fields = None
        elif isinstance(fields, str):  # "auto": inferred once, by the first fit
            if not first_call:
                return
            labels = infer_fields(X)
            n_fields = int(labels.max()) + 1 if labels.size else 0
        else:
            labels, n_fields = check_fields(fields, X.shape[1])
            if not first_call and not np.array_equal(labels, self.fields_):
                j = int(np.flatnonzero(labels != self.fields_)[0])
                raise ValueError(
                    f"fields differ from the fields the model was fitted with (column {j}: field "
                    f"{labels[j]} instead of {self.fields_[j]}, after relabelling to "
                    f"0..n_fields-1); {'partial_fit' if partial else 'warm_start'} continues the "
                    f"fitted model. Give the fitted fields_, or fit a new model "
                    f"(warm_start=False).")
        if first_call:
            self.fields_, self.n_fields_ = labels, n_fields

    def _fit(self, X, y, sample_weight, incremental, epochs, classes, partial,
             validation_data=(None, None, None)):
        first_call = not incremental
        X_val, y_val, sample_weight_val = validation_data
        given = X_val is not None or y_val is not None or sample_weight_val is not None
        weighted = sample_weight is not None  # a scorer gets the weights only if given
        validation = None
        if not first_call:
            self._check_structure(partial)
        try:
            X, y = self._validate_X_fit(X, y, reset=first_call)
            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64,
                                                 ensure_non_negative=True)
            dtype = np.dtype(np.float32 if X.dtype == np.float32 else np.float64)
            Y = self._encode_targets(y, first_call, classes)
            if self._loss_id == SQUARED:
                ymax = float(np.abs(Y).max()) if Y.size else 0.0
                if ymax > np.sqrt(np.finfo(np.float64).max):
                    raise ValueError(
                        f"y's values are too large for the squared loss: y**2 overflows "
                        f"float64 (largest |y| = {ymax:.3g}). Scale the targets, e.g. with "
                        f"sklearn.compose.TransformedTargetRegressor.")
            Xc = to_csr_data(X, dtype if first_call else self._dtype)
            self._fit_fields(X, first_call, partial)
            if first_call:
                self._fitted_structure = self._structure()
            core = self._make_core()  # checks the model's own options
            early = self._early_stopping_on(X.shape[0], partial, given)
            if early:
                scorer = self._validation_scorer()
            if given:
                validation = self._given_validation(X_val, y_val, sample_weight_val, scorer,
                                                    dtype if first_call else self._dtype)
            elif early:
                _validation_rows(X.shape[0], self.validation_fraction)  # enough rows to split?
        except BaseException:  # KeyboardInterrupt too
            if first_call:  # a refit that fails its checks must not leave the old model half
                self._forget()  # overwritten (classes_, n_features_in_): it is unfitted
            raise
        # From here on the fit changes the model.  It is all or nothing: an exception (a
        # KeyboardInterrupt included) leaves a first fit unfitted and a continued fit
        # (warm_start, partial_fit) exactly as it was; divergence leaves it unfitted.
        saved = None if first_call else _FitSnapshot(self, Xc)
        try:
            return self._train(X, y, Xc, Y, sample_weight, dtype, core, early, given,
                               validation, scorer if early else None, weighted, epochs,
                               first_call, partial)
        except TrainingDivergedError:
            raise  # the trainer has reset the estimator to unfitted
        except BaseException:
            if first_call:
                self._forget()
            else:
                saved.restore(self)
            raise

    def _train(self, X, y, Xc, Y, sample_weight, dtype, core, early, given, validation,
               scorer, weighted, epochs, first_call, partial):
        """The part of _fit after the checks: the model's state, the split and the epochs."""
        if first_call:
            self._dtype = dtype
        sw = np.ascontiguousarray(sample_weight, dtype=np.float64)

        if first_call or not hasattr(self, "_rng"):
            self._rng = np.random.default_rng(
                check_random_state(self.random_state).randint(0, 2**31 - 1))
        rng = self._rng
        if first_call:
            # fit draws (in parallel) only the factor rows of the features in its rows (with
            # 1e7 features, a fit on 200,000 rows touches 1.5% of the table): the others get
            # no gradient here, and a continued fit whose rows have them draws them below.
            # partial_fit (and DataParallel, which starts from it) draws every row.
            rows = None if partial else _features_in(Xc)
            with numba_threads(self.n_jobs):
                self._params = [core.init_params(self.n_features_in_, self.n_factors,
                                                 self._dtype, rng, self.init_std, rows)
                                for _ in range(Y.shape[1])]
            self._states_solver = None
        if not first_call:  # any read-only array left (see _private_maps) is copied
            self._params = [_writeable(p) for p in self._params]
            if hasattr(self, "_states"):
                self._states = [_writeable(s) for s in self._states]
            rows = _features_in(Xc)
            with numba_threads(self.n_jobs):  # factor rows the first fit did not draw
                for p in self._params:
                    draw_missing_rows(p, rows, self.init_std)
        if getattr(self, "_states_solver", None) != self.solver:
            self._states = [core.init_state(p, self.solver) for p in self._params]
        self._states_solver = self.solver

        X_all, Y_all, sw_all = Xc, Y, sw  # the rows of the final epochs
        if early and not given:
            Xc, Y, sw, validation = self._split(X, Xc, Y, sw, y, rng, first_call, scorer,
                                                weighted)
        if first_call:
            self._init_intercepts(Y, sw, partial)
        if validation is not None and validation.scorer is not None:
            try:  # a scorer that cannot score this task (e.g. "roc_auc" on 3 classes) fails now
                validation.score(self)
            except Exception as e:
                if first_call:
                    self._forget()
                raise ValueError(f"scoring={self.scoring!r} cannot score the validation rows of "
                                 f"early stopping: {e}") from e
        fit_epochs(self, core, Xc, Y, sw, rng, epochs, first_call=first_call, partial=partial,
                   validation=validation)
        if early and self.final_epochs and not self.warm_start:
            # the best epoch's model, then final_epochs over every row: the held-out rows are
            # not lost to the model (features seen only there are learnt); with X_val, over
            # the training rows (there are no held-out rows to give back)
            fit_epochs(self, core, X_all, Y_all, sw_all, rng, self.final_epochs,
                       first_call=False, partial=True, final=True)
        return self

    def _early_stopping_on(self, n_samples, partial, given=False):
        """Whether this fit stops early: ``early_stopping=True``, or "auto" with validation
        rows ``given`` (X_val) or on more than EARLY_STOPPING_AUTO_ROWS rows
        (HistGradientBoosting's "auto" does so above 10,000); never in partial_fit.  Validation
        rows given with ``early_stopping=False`` raise, as in HistGradientBoosting."""
        if partial:
            return False
        if isinstance(self.early_stopping, str):  # "auto"
            return given or n_samples > EARLY_STOPPING_AUTO_ROWS
        if given and not self.early_stopping:
            raise ValueError(
                "X_val and y_val are passed to fit while early_stopping=False: they are used "
                "by early stopping only. Set early_stopping=True or \"auto\", or do not pass "
                "them.")
        return bool(self.early_stopping)

    def _given_validation(self, X_val, y_val, sample_weight_val, scorer, dtype):
        """The Validation of the rows given to fit (X_val, y_val, sample_weight_val), checked
        as predict's input, with errors that name them; ``dtype``: the model's."""
        if X_val is None or y_val is None:
            missing = "X_val" if X_val is None else "y_val"
            raise ValueError(f"{missing} is missing: early stopping's validation rows need both "
                             f"X_val and y_val (sample_weight_val is optional).")
        _check_before_conversion(X_val, "X_val")
        X_val = check_array(X_val, accept_sparse="csr", dtype=[np.float64, np.float32],
                            ensure_all_finite=True, input_name="X_val")
        if X_val.shape[1] != self.n_features_in_:
            raise ValueError(f"X_val has {X_val.shape[1]} features, but X has "
                             f"{self.n_features_in_}: the validation rows must have the "
                             f"training rows' columns.")
        Xc = to_csr_data(X_val, dtype, "X_val")
        Y = self._encode_targets_predict(y_val, Xc.n_rows, "y_val", "X_val")
        weighted = sample_weight_val is not None
        try:
            sw = _check_sample_weight(sample_weight_val, X_val, dtype=np.float64,
                                      ensure_non_negative=True)
        except ValueError as e:
            raise ValueError(f"sample_weight_val: {e}") from None
        return Validation(Xc, np.asfortranarray(Y), np.ascontiguousarray(sw), scorer,
                          X_val if scorer is not None else None,
                          np.asarray(y_val) if scorer is not None else None, weighted)

    def _validation_scorer(self):
        """None for ``scoring="loss"`` (the negative mean training loss), else the scikit-learn
        scorer of ``scoring`` (None: the estimator's ``score``)."""
        if isinstance(self.scoring, str) and self.scoring == "loss":
            return None
        return check_scoring(self, self.scoring)

    def _split(self, X, Xc, Y, sw, y, rng, first_call, scorer, weighted):
        """(training rows, their Y and sw, Validation of the held-out rows) of the
        early-stopping split: stratified for classifiers where every class can be on both
        sides."""
        n = Xc.n_rows
        n_va = _validation_rows(n, self.validation_fraction)
        n_classes = len(np.unique(y)) if self._loss_id == LOGISTIC else 0
        stratify = (y if n_classes and _can_stratify(y) and min(n_va, n - n_va) >= n_classes
                    else None)
        idx = np.arange(n)
        # one split for the life of the model: a warm-started fit validates on the rows
        # the first early-stopping fit held out (as the seed is drawn once)
        if first_call or getattr(self, "_split_seed", None) is None:
            self._split_seed = int(rng.integers(0, 2**31 - 1))
        tr, va = train_test_split(idx, test_size=self.validation_fraction,
                                  random_state=self._split_seed, stratify=stratify)
        if len(tr) == 0 or len(va) == 0:
            raise ValueError(
                f"early_stopping needs at least one training and one validation row; got "
                f"{n} rows with validation_fraction={self.validation_fraction}.")
        tr = np.sort(tr)
        validation = Validation(Xc.take(va), Y[va], sw[va], scorer,
                                X[va] if scorer is not None else None,
                                np.asarray(y)[va] if scorer is not None else None, weighted)
        return Xc.take(tr), np.asfortranarray(Y[tr]), sw[tr], validation

    def __sklearn_is_fitted__(self):
        return hasattr(self, "_params")

    # ------------------------------------------------------------------ pickling
    def __getstate__(self):
        """The pickled state, stamped with the skfm version and pickle format that wrote it
        (see skfm._version.PICKLE_FORMAT)."""
        return dict(super().__getstate__(), _skfm_version=__version__,
                    _skfm_pickle_format=PICKLE_FORMAT)

    def __setstate__(self, state):
        """Load a pickled state of this pickle format, or of an earlier one through the
        migrations in PICKLE_MIGRATIONS; any other raises ValueError naming the skfm version
        that wrote it and this one, rather than a model that would predict wrongly.  A state
        without a stamp was written before the stamp existed (skfm 0.1.0, format 1)."""
        state = dict(state)
        version = state.pop("_skfm_version", "0.1.0 (unstamped)")
        fmt = state.pop("_skfm_pickle_format", 1)
        name = type(self).__name__
        if not isinstance(fmt, Integral) or fmt > PICKLE_FORMAT:
            raise ValueError(
                f"This {name} was pickled by skfm {version} (pickle format {fmt}), which this "
                f"skfm {__version__} cannot read (it reads pickle formats up to "
                f"{PICKLE_FORMAT}): load it with skfm {version} or later, or fit the model "
                f"again with this version.")
        while fmt < PICKLE_FORMAT:
            if fmt not in PICKLE_MIGRATIONS:
                raise ValueError(
                    f"This {name} was pickled by skfm {version} (pickle format {fmt}); skfm "
                    f"{__version__} reads pickle format {PICKLE_FORMAT} and cannot convert "
                    f"format {fmt}: fit the model again with this version (or load it with "
                    f"skfm {version} and use it there).")
            state = PICKLE_MIGRATIONS[fmt](state)
            fmt += 1
        for name in ("_params", "_states"):  # see _private_maps
            if isinstance(state.get(name), list):
                state[name] = [_private_maps(p) if isinstance(p, dict) else p
                               for p in state[name]]
        # and the arrays kept beside them (fields_, classes_): a read-only fields_ alone made
        # DeepFM, DCN and IFM compile a second version of their prediction kernels
        super().__setstate__(_private_maps(state))

    def _forget(self):
        for name in ("_params", "_states", "_states_solver", "n_iter_", "t_", "loss_curve_",
                     "best_loss_", "validation_scores_", "best_validation_score_",
                     "n_features_in_", "classes_", "_rng", "_fitted_structure", "_split_seed",
                     "fields_", "n_fields_", "_dtype", "_no_improvement_count"):
            if hasattr(self, name):
                delattr(self, name)

    def _decision(self, X):
        """(n, n_outputs) model outputs for validated CSRData X."""
        with numba_threads(self.n_jobs):
            core = self._make_core()
            outs = [core.decision(p, X) for p in self._params]
            return outs[0][:, None] if len(outs) == 1 else np.column_stack(outs)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


class _FitSnapshot:
    """What a continued fit (warm_start, partial_fit) of ``est`` may change, taken before it
    trains on the CSRData ``X``, to put the estimator back exactly as it was when the fit is
    interrupted (KeyboardInterrupt, MemoryError, ...).

    The trainer updates the parameter and optimizer arrays in place, so they are copied; the
    large per-feature table ``T`` (and its optimizer moments) only in the rows of the features
    that occur in X, the only rows the lazy updates touch (the rows of mixed rows are X's
    columns too): the copy costs about what one epoch over X writes, never the whole model.
    Everything else the fit changes is reassigned (attributes), or small (w0, the dense head
    H, the loss curve, the random generator) and copied whole."""

    def __init__(self, est, X):
        self.attrs = dict(est.__dict__)
        self.rows = np.unique(X.indices).astype(np.intp)
        n = est.n_features_in_
        self.lists = {k: list(v) for k, v in self.attrs.items()
                      if isinstance(v, list) and k.endswith("_")}  # loss_curve_, ...
        self.rng = copy.deepcopy(self.attrs.get("_rng"))
        self.dicts = {}
        self.arrays = []  # (array, index, saved values)
        for name in ("_params", "_states"):
            dicts = self.attrs.get(name)
            if dicts is None:
                continue
            self.dicts[name] = [dict(d) for d in dicts]
            for d in dicts:
                for key, a in d.items():
                    if not isinstance(a, np.ndarray) or not a.flags.writeable:
                        continue  # a read-only array is copied before training, never written
                    if key == "T" and name == "_params" and a.ndim == 2 and a.shape[0] == n:
                        index = (self.rows,)
                    elif key == "T" and name == "_states" and a.ndim == 3 and a.shape[1] == n:
                        index = (slice(None), self.rows)
                    else:
                        index = (Ellipsis,)
                    self.arrays.append((a, index, a[index].copy()))

    def restore(self, est):
        """Put ``est`` back as it was when the snapshot was taken."""
        for a, index, values in self.arrays:
            a[index] = values
        est.__dict__.clear()
        est.__dict__.update(self.attrs)
        est.__dict__.update({k: list(v) for k, v in self.lists.items()})
        for name, dicts in self.dicts.items():
            est.__dict__[name] = [dict(d) for d in dicts]
        if self.rng is not None:
            est._rng = copy.deepcopy(self.rng)


def _private_maps(arrays):
    """The dict of arrays (parameters, optimizer states, an estimator's state) with every
    read-only memory map (as ``joblib.load(..., mmap_mode="r")`` gives) mapped again
    copy-on-write (``mode="c"``): the same file pages, shared with other processes until
    written, and a writable array.  Numba compiles one version of a kernel per argument type,
    and a read-only array is another type: kept read-only, a memory-mapped model would compile
    its own version of every prediction kernel (for NFM, DCN and DeepFM, whose prediction runs
    their training blocks in inference mode, tens of seconds).  Nothing is ever written to the
    file: a write (training a loaded model further) goes to the process's private copy of the
    page."""
    out = {}
    for k, a in arrays.items():
        if isinstance(a, np.memmap) and not a.flags.writeable:
            if not a.size:
                a = np.array(a)  # an empty array: nothing to map, nothing to share
            elif isinstance(a.base, mmap.mmap) and a.filename is not None:
                fortran = a.flags.f_contiguous and not a.flags.c_contiguous
                a = np.memmap(a.filename, dtype=a.dtype, mode="c", offset=a.offset,
                              shape=a.shape, order="F" if fortran else "C")
        out[k] = a
    return out


def _writeable(arrays):
    """The dict of parameter (or optimizer state) arrays with every read-only array copied: the
    trainer updates them in place."""
    return {k: np.array(v) if isinstance(v, np.ndarray) and not v.flags.writeable else v
            for k, v in arrays.items()}


def _features_in(X):
    """The sorted indices (int64) of the features with an entry in the rows of ``X`` (CSRData)."""
    seen = np.zeros(X.n_features, dtype=bool)
    seen[X.indices] = True
    return np.flatnonzero(seen)


def _validation_rows(n, fraction):
    """Rows early stopping holds out of n (as train_test_split counts them); at least one must
    be left on either side."""
    n_va = int(np.ceil(fraction * n))
    if n_va == 0 or n_va >= n:
        raise ValueError(
            f"early_stopping needs at least one training and one validation row; got {n} rows "
            f"with validation_fraction={fraction}.")
    return n_va


def _can_stratify(y):
    _, counts = np.unique(y, return_counts=True)
    return counts.min() >= 2


class FMClassifierMixin(ClassifierMixin):
    """Logistic loss; binary is one model, multiclass is one-vs-rest (one model per class)."""

    _loss_id = LOGISTIC

    def _encode_targets(self, y, first_call, classes=None):
        check_classification_targets(y)
        if first_call:
            if classes is not None:
                self.classes_ = unique_labels(classes)
                unknown = np.setdiff1d(unique_labels(y), self.classes_)
                if len(unknown):
                    raise ValueError(f"y contains labels not seen in classes="
                                     f"{self.classes_.tolist()!r}: {unknown.tolist()}.")
            else:
                self.classes_ = unique_labels(y)
            if len(self.classes_) < 2:
                raise ValueError(
                    f"{type(self).__name__} needs samples of at least 2 classes in the data, but "
                    f"the data contain only one class: {self.classes_[0]!r}.")
        elif classes is not None and not np.array_equal(unique_labels(classes), self.classes_):
            raise ValueError(f"classes={list(classes)!r} is not the same as on the first call to "
                             f"partial_fit, was: {self.classes_.tolist()!r}.")
        unknown = np.setdiff1d(unique_labels(y), self.classes_)
        if len(unknown):
            raise ValueError(f"y contains labels not seen in classes_: {unknown.tolist()}.")
        return self._binarize(y)

    def _init_intercepts(self, Y, sw, partial):
        # w0 starts at the class's weighted log-odds in the training rows (after any
        # early-stopping split) when the class's rate there is under INTERCEPT_RATE or over
        # 1 - INTERCEPT_RATE, and at 0 otherwise.  Far from the log-odds, the optimizer's steps
        # on w0 (about learning_rate_init each) are too few to get there: with w0 = 0, a rare
        # class (1 positive in 100,000 rows, a log-odds of -11.5) was still given
        # probabilities of 0.15-0.37 after training.  Near it, a start at 0 does better than
        # one at the log-odds on the suite's real sets (user guide, "Defaults": FM on Frappe,
        # a rate of 0.33, 0.9452 against 0.9421; on flights, 0.24, 0.7826 against 0.7772),
        # and as well on its synthetic ones (rates near 0.5).  Half a mean row weight is added
        # to each side (Jeffreys' prior), so a class absent from the training rows starts
        # finite.  A partial_fit batch that lacks a class says nothing of that class's rate in
        # the rows to come (a stream sorted by label, say): then every w0 starts at 0, as it
        # would take the optimizer thousands of steps to undo a log-odds of -5.
        total = float(np.sum(sw))
        n_pos = int(np.count_nonzero(sw))
        if total <= 0 or n_pos == 0:
            return
        pos = sw @ Y  # weight of each output's positive rows
        weighted = (sw > 0)[:, None]
        if partial and not ((weighted & (Y > 0)).any(0).all()
                            and (weighted & (Y == 0)).any(0).all()):
            return
        half = 0.5 * total / n_pos
        far = np.log((1 - INTERCEPT_RATE) / INTERCEPT_RATE)
        for c, p in enumerate(self._params):
            log_odds = np.log(pos[c] + half) - np.log(total - pos[c] + half)
            if np.isfinite(log_odds) and abs(log_odds) > far:
                p["w0"][0] = log_odds

    def _binarize(self, y):
        lb = LabelBinarizer().fit(self.classes_)
        Y = lb.transform(y).astype(np.float64)
        return np.asfortranarray(Y)

    def _encode_targets_predict(self, y, n, name="y", x_name="X"):
        y = column_or_1d(y)
        if y.shape[0] != n:
            raise ValueError(f"{name} has {y.shape[0]} rows but {x_name} has {n}.")
        unknown = np.setdiff1d(np.unique(y), self.classes_)
        if len(unknown):
            raise ValueError(f"{name} contains labels not seen in classes_: "
                             f"{unknown.tolist()}.")
        return self._binarize(y)

    def decision_function(self, X):
        """Model output f(x): shape (n_samples,) for binary, (n_samples, n_classes) else."""
        check_is_fitted(self)
        X = self._validate_X_predict(X)
        F = finite_output(self._decision(X), X, "The model's output")
        return F[:, 0] if F.shape[1] == 1 else F

    def predict_proba(self, X):
        """Class probabilities, shape (n_samples, n_classes): sigmoid(f) for binary, the
        normalised one-vs-rest sigmoids for multiclass."""
        F = self.decision_function(X)
        if F.ndim == 1:
            p = _sigmoid(F)
            return np.column_stack([1.0 - p, p])
        P = np.exp(_ovr_log_proba(F))
        return P / P.sum(1, keepdims=True)  # exact normalisation after the log-space one

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`, computed without underflow."""
        F = self.decision_function(X)
        if F.ndim == 1:
            return np.column_stack([-np.logaddexp(0.0, F), -np.logaddexp(0.0, -F)])
        return _ovr_log_proba(F)

    def predict(self, X):
        """Predicted class labels."""
        F = self.decision_function(X)
        idx = (F > 0).astype(int) if F.ndim == 1 else F.argmax(1)
        return self.classes_[idx]

    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over (X, y) continuing from the current state.

        ``classes`` (all labels that will ever appear) is required on the first call."""
        if not hasattr(self, "_params") and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        return self._partial_fit(X, y, sample_weight, classes)


class FMRegressorMixin(RegressorMixin):
    """Squared loss, one output."""

    _loss_id = SQUARED

    def _encode_targets(self, y, first_call, classes=None):
        y = np.asarray(y, dtype=np.float64)
        return np.asfortranarray(y.reshape(-1, 1))

    def _init_intercepts(self, Y, sw, partial):
        # w0 starts at the weighted mean target (of the training rows, after any early-stopping
        # split): with w0 = 0, targets far from 0 (say around 200,000) cost the optimizer most
        # of its steps to shift the intercept, and R^2 stayed near 0
        total = float(np.sum(sw))
        if total > 0:
            mean = float(np.dot(sw, Y[:, 0])) / total
            if np.isfinite(mean):
                for p in self._params:
                    p["w0"][0] = mean

    def _encode_targets_predict(self, y, n, name="y", x_name="X"):
        y = column_or_1d(np.asarray(y, dtype=np.float64))
        if y.shape[0] != n:
            raise ValueError(f"{name} has {y.shape[0]} rows but {x_name} has {n}.")
        if not np.isfinite(y).all():
            raise ValueError(f"{name} contains NaN or infinity.")
        return y.reshape(-1, 1)

    def predict(self, X):
        """Predicted targets f(x)."""
        check_is_fitted(self)
        X = self._validate_X_predict(X)
        return finite_output(self._decision(X), X, "The model's output")[:, 0]


def _sigmoid(F):
    return np.exp(-np.logaddexp(0.0, -F))


def _ovr_log_proba(F):
    """log of the normalised one-vs-rest sigmoids, in log space (no all-zero rows)."""
    logp = -np.logaddexp(0.0, -F)
    return logp - logsumexp(logp, axis=1, keepdims=True)
