"""Factorization machine estimators: FM, and FM trained with Mixup (MixFM) or saliency-guided
Mixup (SMFM)."""
from ._base import BaseFactorizationMachine, FMClassifierMixin, FMRegressorMixin
from ._cores import FMCore

__all__ = ["FMClassifier", "FMRegressor", "MixFMClassifier", "MixFMRegressor", "SMFMClassifier",
           "SMFMRegressor"]


class FMClassifier(FMClassifierMixin, BaseFactorizationMachine):
    """Factorization machine classifier.

    The model (Rendle 2010) for a row x with nonzeros x_i is

        f(x) = w0 + sum_i w_i x_i + sum_{i<j} <v_i, v_j> x_i x_j,

    computed in O(nnz d) as ``w0 + sum_i w_i x_i + 0.5 sum_f ((sum_i v_if x_i)^2 -
    sum_i v_if^2 x_i^2)`` by Numba kernels on the CSR rows; gradients are closed-form.

    Trained by minibatch {Adam, Adagrad, SGD} on the logistic loss; binary labels train one
    model, more classes one model per class (one-vs-rest).

    Parameters
    ----------
    n_factors : int, default=8
        Embedding size d (columns of ``factors_``); 0 gives a linear model.
    solver : {"adam", "adagrad", "sgd"}, default="adam"
        Lazy optimizer: only the parameter rows of the features present in a minibatch are
        updated.  Adam's bias correction uses the global step count (as ``SparseAdam``).
    learning_rate_init : float, default=0.01
        Step size.
    batch_size : int or "auto", default="auto"
        Rows per minibatch; "auto" is ``min(256, n_samples)``.
    max_iter : int, default=100
        Maximum number of epochs (passes over the original rows plus the augmented rows).
    tol : float, default=1e-4
        Training stops when the training loss (or the validation score with
        ``early_stopping``) has not improved by at least ``tol`` for ``n_iter_no_change``
        consecutive epochs.
    alpha : float, default=1e-5
        L2 penalty; its gradient ``alpha * theta_j`` is added to the rows ``theta_j = (w_j,
        v_j)`` of the features present in a minibatch (lazy regularisation, as libFM's SGD).
        The intercept is not penalised.
    init_std : float, default=0.01
        Standard deviation of the normal initialisation of the factors (w and w0 start at 0).
    shuffle : bool, default=True
        Shuffle the rows (originals and augmented) every epoch.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, shuffling, the validation split and augmentation.  The same value
        gives the same model, whatever ``n_jobs``.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the rows (stratified when every class has at least
        2 rows and both parts can hold every class), stop when the validation score stops
        improving and restore the parameters of the best epoch.  The validation score is the
        negative (sample-weighted) mean log-loss; for multiclass, of the sum of the one-vs-rest
        binary log-losses (not the multiclass log-loss of ``predict_proba``).
    validation_fraction : float, default=0.1
        Fraction of rows held out with ``early_stopping``.
    n_iter_no_change : int, default=10
        Epochs without improvement before stopping.
    warm_start : bool, default=False
        Continue from the previous fit (parameters and optimizer state) instead of starting anew.
    verbose : int, default=0
        Print one line per epoch (epoch, training loss, validation score, seconds).
    n_jobs : int or None, default=None
        Threads of the Numba core; None or -1 uses all cores.  Results do not depend on it.
    beta_1, beta_2, epsilon : float, default=0.9, 0.999, 1e-8
        Adam's moment decay rates and its denominator offset (epsilon is Adagrad's too).
    augmentation : {None, "copy", "mix", "saliency"}, default=None
        Training-set augmentation regenerated every epoch (SMFM paper): "copy" adds
        ``n' = mix_ratio * n`` random original rows (CopyFM), "mix" adds n' mixed rows
        ``lam x + (1 - lam) r`` (MixFM, Alg. 1), "saliency" keeps for each first parent the
        most salient of ``n_candidates`` mixed rows under the current model (SMFM, Alg. 2).
    mix_alpha, mix_beta : float, default=0.5
        Parameters of ``lam' ~ Beta(mix_alpha, mix_beta)``; ``lam = max(lam', 1 - lam')``.
    mix_ratio : float, default=1.0
        n'/n, the number of augmented rows per original row and epoch.
    n_candidates : int, default=10
        p, the candidates per first parent with ``augmentation="saliency"``.

    Attributes
    ----------
    intercept_ : float
        Bias w0.
    coef_ : ndarray of shape (n_features_in_,)
        Linear weights w.
    factors_ : ndarray of shape (n_features_in_, n_factors)
        Factor vectors v_i (one row per feature).
    classes_ : ndarray of shape (n_classes,)
        Class labels.  For more than two classes, ``intercept_``, ``coef_`` and ``factors_``
        gain a leading class axis (one-vs-rest models).
    n_features_in_ : int
        Number of features seen during fit.
    n_iter_ : int
        Number of epochs run.
    t_ : int
        Number of optimizer steps (minibatches) taken.
    loss_curve_ : list of float
        Mean training loss per epoch, over the epoch's original and augmented rows.
    best_loss_ : float
        Lowest training loss seen.
    validation_scores_ : list of float or None
        Negative mean validation loss per epoch with ``early_stopping``; a warm-started fit
        appends to it (None after a fit without early stopping or a partial_fit) and validates
        on the rows the model's first early-stopping fit held out.
    best_validation_score_ : float or None
        Best validation score with ``early_stopping``.

    See Also
    --------
    MixFMClassifier, SMFMClassifier, NFMClassifier, AFMClassifier

    References
    ----------
    S. Rendle. Factorization Machines. ICDM 2010.
    C. Wu et al. Boosting Factorization Machines via Saliency-Guided Mixup. arXiv:2206.08661.

    Examples
    --------
    >>> from skfm import FMClassifier
    >>> from skfm.datasets import make_fm_classification
    >>> X, y = make_fm_classification(n_samples=2000, random_state=0)
    >>> clf = FMClassifier(n_factors=4, max_iter=20, random_state=0).fit(X, y)
    >>> clf.predict_proba(X[:2]).shape
    (2, 2)
    """

    _core = FMCore


class FMRegressor(FMRegressorMixin, BaseFactorizationMachine):
    """Factorization machine regressor.

    The model (Rendle 2010) for a row x with nonzeros x_i is

        f(x) = w0 + sum_i w_i x_i + sum_{i<j} <v_i, v_j> x_i x_j,

    computed in O(nnz d) as ``w0 + sum_i w_i x_i + 0.5 sum_f ((sum_i v_if x_i)^2 -
    sum_i v_if^2 x_i^2)`` by Numba kernels on the CSR rows; gradients are closed-form.

    Trained by minibatch {Adam, Adagrad, SGD} on the squared loss.

    Parameters
    ----------
    n_factors : int, default=8
        Embedding size d (columns of ``factors_``); 0 gives a linear model.
    solver : {"adam", "adagrad", "sgd"}, default="adam"
        Lazy optimizer: only the parameter rows of the features present in a minibatch are
        updated.  Adam's bias correction uses the global step count (as ``SparseAdam``).
    learning_rate_init : float, default=0.01
        Step size.
    batch_size : int or "auto", default="auto"
        Rows per minibatch; "auto" is ``min(256, n_samples)``.
    max_iter : int, default=100
        Maximum number of epochs (passes over the original rows plus the augmented rows).
    tol : float, default=1e-4
        Training stops when the training loss (or the validation score with
        ``early_stopping``) has not improved by at least ``tol`` for ``n_iter_no_change``
        consecutive epochs.
    alpha : float, default=1e-5
        L2 penalty; its gradient ``alpha * theta_j`` is added to the rows ``theta_j = (w_j,
        v_j)`` of the features present in a minibatch (lazy regularisation, as libFM's SGD).
        The intercept is not penalised.
    init_std : float, default=0.01
        Standard deviation of the normal initialisation of the factors (w and w0 start at 0).
    shuffle : bool, default=True
        Shuffle the rows (originals and augmented) every epoch.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, shuffling, the validation split and augmentation.  The same value
        gives the same model, whatever ``n_jobs``.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the rows, stop when the validation score stops
        improving and restore the parameters of the best epoch.  The validation score is the
        negative (sample-weighted) mean half squared error.
    validation_fraction : float, default=0.1
        Fraction of rows held out with ``early_stopping``.
    n_iter_no_change : int, default=10
        Epochs without improvement before stopping.
    warm_start : bool, default=False
        Continue from the previous fit (parameters and optimizer state) instead of starting anew.
    verbose : int, default=0
        Print one line per epoch (epoch, training loss, validation score, seconds).
    n_jobs : int or None, default=None
        Threads of the Numba core; None or -1 uses all cores.  Results do not depend on it.
    beta_1, beta_2, epsilon : float, default=0.9, 0.999, 1e-8
        Adam's moment decay rates and its denominator offset (epsilon is Adagrad's too).
    augmentation : {None, "copy", "mix", "saliency"}, default=None
        Training-set augmentation regenerated every epoch (SMFM paper): "copy" adds
        ``n' = mix_ratio * n`` random original rows (CopyFM), "mix" adds n' mixed rows
        ``lam x + (1 - lam) r`` (MixFM, Alg. 1), "saliency" keeps for each first parent the
        most salient of ``n_candidates`` mixed rows under the current model (SMFM, Alg. 2).
    mix_alpha, mix_beta : float, default=0.5
        Parameters of ``lam' ~ Beta(mix_alpha, mix_beta)``; ``lam = max(lam', 1 - lam')``.
    mix_ratio : float, default=1.0
        n'/n, the number of augmented rows per original row and epoch.
    n_candidates : int, default=10
        p, the candidates per first parent with ``augmentation="saliency"``.

    Attributes
    ----------
    intercept_ : float
        Bias w0.
    coef_ : ndarray of shape (n_features_in_,)
        Linear weights w.
    factors_ : ndarray of shape (n_features_in_, n_factors)
        Factor vectors v_i (one row per feature).
    n_features_in_ : int
        Number of features seen during fit.
    n_iter_ : int
        Number of epochs run.
    t_ : int
        Number of optimizer steps (minibatches) taken.
    loss_curve_ : list of float
        Mean training loss per epoch, over the epoch's original and augmented rows.
    best_loss_ : float
        Lowest training loss seen.
    validation_scores_ : list of float or None
        Negative mean validation loss per epoch with ``early_stopping``; a warm-started fit
        appends to it (None after a fit without early stopping or a partial_fit) and validates
        on the rows the model's first early-stopping fit held out.
    best_validation_score_ : float or None
        Best validation score with ``early_stopping``.

    See Also
    --------
    MixFMRegressor, SMFMRegressor, NFMRegressor, AFMRegressor

    References
    ----------
    S. Rendle. Factorization Machines. ICDM 2010.
    C. Wu et al. Boosting Factorization Machines via Saliency-Guided Mixup. arXiv:2206.08661.

    Examples
    --------
    >>> from skfm import FMRegressor
    >>> from skfm.datasets import make_fm_regression
    >>> X, y = make_fm_regression(n_samples=2000, random_state=0)
    >>> reg = FMRegressor(n_factors=4, max_iter=20, random_state=0).fit(X, y)
    >>> reg.predict(X[:3]).shape
    (3,)
    """

    _core = FMCore


class MixFMClassifier(FMClassifierMixin, BaseFactorizationMachine):
    """FM classifier trained with Mixup (MixFM, SMFM paper Alg. 1).

    The model (Rendle 2010) for a row x with nonzeros x_i is

        f(x) = w0 + sum_i w_i x_i + sum_{i<j} <v_i, v_j> x_i x_j,

    computed in O(nnz d) as ``w0 + sum_i w_i x_i + 0.5 sum_f ((sum_i v_if x_i)^2 -
    sum_i v_if^2 x_i^2)`` by Numba kernels on the CSR rows; gradients are closed-form.

    Trained by minibatch {Adam, Adagrad, SGD} on the logistic loss; binary labels train one
    model, more classes one model per class (one-vs-rest).

    It is :class:`FMClassifier` with ``augmentation='mix'`` preset.

    Parameters
    ----------
    n_factors : int, default=8
        Embedding size d (columns of ``factors_``); 0 gives a linear model.
    solver : {"adam", "adagrad", "sgd"}, default="adam"
        Lazy optimizer: only the parameter rows of the features present in a minibatch are
        updated.  Adam's bias correction uses the global step count (as ``SparseAdam``).
    learning_rate_init : float, default=0.01
        Step size.
    batch_size : int or "auto", default="auto"
        Rows per minibatch; "auto" is ``min(256, n_samples)``.
    max_iter : int, default=100
        Maximum number of epochs (passes over the original rows plus the augmented rows).
    tol : float, default=1e-4
        Training stops when the training loss (or the validation score with
        ``early_stopping``) has not improved by at least ``tol`` for ``n_iter_no_change``
        consecutive epochs.
    alpha : float, default=1e-5
        L2 penalty; its gradient ``alpha * theta_j`` is added to the rows ``theta_j = (w_j,
        v_j)`` of the features present in a minibatch (lazy regularisation, as libFM's SGD).
        The intercept is not penalised.
    init_std : float, default=0.01
        Standard deviation of the normal initialisation of the factors (w and w0 start at 0).
    shuffle : bool, default=True
        Shuffle the rows (originals and augmented) every epoch.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, shuffling, the validation split and augmentation.  The same value
        gives the same model, whatever ``n_jobs``.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the rows (stratified when every class has at least
        2 rows and both parts can hold every class), stop when the validation score stops
        improving and restore the parameters of the best epoch.  The validation score is the
        negative (sample-weighted) mean log-loss; for multiclass, of the sum of the one-vs-rest
        binary log-losses (not the multiclass log-loss of ``predict_proba``).
    validation_fraction : float, default=0.1
        Fraction of rows held out with ``early_stopping``.
    n_iter_no_change : int, default=10
        Epochs without improvement before stopping.
    warm_start : bool, default=False
        Continue from the previous fit (parameters and optimizer state) instead of starting anew.
    verbose : int, default=0
        Print one line per epoch (epoch, training loss, validation score, seconds).
    n_jobs : int or None, default=None
        Threads of the Numba core; None or -1 uses all cores.  Results do not depend on it.
    beta_1, beta_2, epsilon : float, default=0.9, 0.999, 1e-8
        Adam's moment decay rates and its denominator offset (epsilon is Adagrad's too).
    augmentation : {None, "copy", "mix", "saliency"}, default='mix'
        Training-set augmentation regenerated every epoch (SMFM paper): "copy" adds
        ``n' = mix_ratio * n`` random original rows (CopyFM), "mix" adds n' mixed rows
        ``lam x + (1 - lam) r`` (MixFM, Alg. 1), "saliency" keeps for each first parent the
        most salient of ``n_candidates`` mixed rows under the current model (SMFM, Alg. 2).
    mix_alpha, mix_beta : float, default=0.5
        Parameters of ``lam' ~ Beta(mix_alpha, mix_beta)``; ``lam = max(lam', 1 - lam')``.
    mix_ratio : float, default=1.0
        n'/n, the number of augmented rows per original row and epoch.
    n_candidates : int, default=10
        p, the candidates per first parent with ``augmentation="saliency"``.

    Attributes
    ----------
    intercept_ : float
        Bias w0.
    coef_ : ndarray of shape (n_features_in_,)
        Linear weights w.
    factors_ : ndarray of shape (n_features_in_, n_factors)
        Factor vectors v_i (one row per feature).
    classes_ : ndarray of shape (n_classes,)
        Class labels.  For more than two classes, ``intercept_``, ``coef_`` and ``factors_``
        gain a leading class axis (one-vs-rest models).
    n_features_in_ : int
        Number of features seen during fit.
    n_iter_ : int
        Number of epochs run.
    t_ : int
        Number of optimizer steps (minibatches) taken.
    loss_curve_ : list of float
        Mean training loss per epoch, over the epoch's original and augmented rows.
    best_loss_ : float
        Lowest training loss seen.
    validation_scores_ : list of float or None
        Negative mean validation loss per epoch with ``early_stopping``; a warm-started fit
        appends to it (None after a fit without early stopping or a partial_fit) and validates
        on the rows the model's first early-stopping fit held out.
    best_validation_score_ : float or None
        Best validation score with ``early_stopping``.

    See Also
    --------
    FMClassifier, SMFMClassifier, NFMClassifier, AFMClassifier

    References
    ----------
    S. Rendle. Factorization Machines. ICDM 2010.
    C. Wu et al. Boosting Factorization Machines via Saliency-Guided Mixup. arXiv:2206.08661.
    """

    _core = FMCore

    def __init__(self, n_factors=8, *, solver="adam", learning_rate_init=0.01, batch_size="auto",
                 max_iter=100, tol=1e-4, alpha=1e-5, init_std=0.01, shuffle=True,
                 random_state=None, early_stopping=False, validation_fraction=0.1,
                 n_iter_no_change=10, warm_start=False, verbose=0, n_jobs=None, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-8, augmentation="mix", mix_alpha=0.5, mix_beta=0.5,
                 mix_ratio=1.0, n_candidates=10):
        super().__init__(
            n_factors,
            solver=solver, learning_rate_init=learning_rate_init, batch_size=batch_size,
            max_iter=max_iter, tol=tol, alpha=alpha, init_std=init_std, shuffle=shuffle,
            random_state=random_state, early_stopping=early_stopping,
            validation_fraction=validation_fraction, n_iter_no_change=n_iter_no_change,
            warm_start=warm_start, verbose=verbose, n_jobs=n_jobs, beta_1=beta_1, beta_2=beta_2,
            epsilon=epsilon, augmentation=augmentation, mix_alpha=mix_alpha, mix_beta=mix_beta,
            mix_ratio=mix_ratio, n_candidates=n_candidates)


class MixFMRegressor(FMRegressorMixin, BaseFactorizationMachine):
    """FM regressor trained with Mixup (MixFM, SMFM paper Alg. 1).

    The model (Rendle 2010) for a row x with nonzeros x_i is

        f(x) = w0 + sum_i w_i x_i + sum_{i<j} <v_i, v_j> x_i x_j,

    computed in O(nnz d) as ``w0 + sum_i w_i x_i + 0.5 sum_f ((sum_i v_if x_i)^2 -
    sum_i v_if^2 x_i^2)`` by Numba kernels on the CSR rows; gradients are closed-form.

    Trained by minibatch {Adam, Adagrad, SGD} on the squared loss.

    It is :class:`FMRegressor` with ``augmentation='mix'`` preset.

    Parameters
    ----------
    n_factors : int, default=8
        Embedding size d (columns of ``factors_``); 0 gives a linear model.
    solver : {"adam", "adagrad", "sgd"}, default="adam"
        Lazy optimizer: only the parameter rows of the features present in a minibatch are
        updated.  Adam's bias correction uses the global step count (as ``SparseAdam``).
    learning_rate_init : float, default=0.01
        Step size.
    batch_size : int or "auto", default="auto"
        Rows per minibatch; "auto" is ``min(256, n_samples)``.
    max_iter : int, default=100
        Maximum number of epochs (passes over the original rows plus the augmented rows).
    tol : float, default=1e-4
        Training stops when the training loss (or the validation score with
        ``early_stopping``) has not improved by at least ``tol`` for ``n_iter_no_change``
        consecutive epochs.
    alpha : float, default=1e-5
        L2 penalty; its gradient ``alpha * theta_j`` is added to the rows ``theta_j = (w_j,
        v_j)`` of the features present in a minibatch (lazy regularisation, as libFM's SGD).
        The intercept is not penalised.
    init_std : float, default=0.01
        Standard deviation of the normal initialisation of the factors (w and w0 start at 0).
    shuffle : bool, default=True
        Shuffle the rows (originals and augmented) every epoch.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, shuffling, the validation split and augmentation.  The same value
        gives the same model, whatever ``n_jobs``.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the rows, stop when the validation score stops
        improving and restore the parameters of the best epoch.  The validation score is the
        negative (sample-weighted) mean half squared error.
    validation_fraction : float, default=0.1
        Fraction of rows held out with ``early_stopping``.
    n_iter_no_change : int, default=10
        Epochs without improvement before stopping.
    warm_start : bool, default=False
        Continue from the previous fit (parameters and optimizer state) instead of starting anew.
    verbose : int, default=0
        Print one line per epoch (epoch, training loss, validation score, seconds).
    n_jobs : int or None, default=None
        Threads of the Numba core; None or -1 uses all cores.  Results do not depend on it.
    beta_1, beta_2, epsilon : float, default=0.9, 0.999, 1e-8
        Adam's moment decay rates and its denominator offset (epsilon is Adagrad's too).
    augmentation : {None, "copy", "mix", "saliency"}, default='mix'
        Training-set augmentation regenerated every epoch (SMFM paper): "copy" adds
        ``n' = mix_ratio * n`` random original rows (CopyFM), "mix" adds n' mixed rows
        ``lam x + (1 - lam) r`` (MixFM, Alg. 1), "saliency" keeps for each first parent the
        most salient of ``n_candidates`` mixed rows under the current model (SMFM, Alg. 2).
    mix_alpha, mix_beta : float, default=0.5
        Parameters of ``lam' ~ Beta(mix_alpha, mix_beta)``; ``lam = max(lam', 1 - lam')``.
    mix_ratio : float, default=1.0
        n'/n, the number of augmented rows per original row and epoch.
    n_candidates : int, default=10
        p, the candidates per first parent with ``augmentation="saliency"``.

    Attributes
    ----------
    intercept_ : float
        Bias w0.
    coef_ : ndarray of shape (n_features_in_,)
        Linear weights w.
    factors_ : ndarray of shape (n_features_in_, n_factors)
        Factor vectors v_i (one row per feature).
    n_features_in_ : int
        Number of features seen during fit.
    n_iter_ : int
        Number of epochs run.
    t_ : int
        Number of optimizer steps (minibatches) taken.
    loss_curve_ : list of float
        Mean training loss per epoch, over the epoch's original and augmented rows.
    best_loss_ : float
        Lowest training loss seen.
    validation_scores_ : list of float or None
        Negative mean validation loss per epoch with ``early_stopping``; a warm-started fit
        appends to it (None after a fit without early stopping or a partial_fit) and validates
        on the rows the model's first early-stopping fit held out.
    best_validation_score_ : float or None
        Best validation score with ``early_stopping``.

    See Also
    --------
    FMRegressor, SMFMRegressor, NFMRegressor, AFMRegressor

    References
    ----------
    S. Rendle. Factorization Machines. ICDM 2010.
    C. Wu et al. Boosting Factorization Machines via Saliency-Guided Mixup. arXiv:2206.08661.
    """

    _core = FMCore

    def __init__(self, n_factors=8, *, solver="adam", learning_rate_init=0.01, batch_size="auto",
                 max_iter=100, tol=1e-4, alpha=1e-5, init_std=0.01, shuffle=True,
                 random_state=None, early_stopping=False, validation_fraction=0.1,
                 n_iter_no_change=10, warm_start=False, verbose=0, n_jobs=None, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-8, augmentation="mix", mix_alpha=0.5, mix_beta=0.5,
                 mix_ratio=1.0, n_candidates=10):
        super().__init__(
            n_factors,
            solver=solver, learning_rate_init=learning_rate_init, batch_size=batch_size,
            max_iter=max_iter, tol=tol, alpha=alpha, init_std=init_std, shuffle=shuffle,
            random_state=random_state, early_stopping=early_stopping,
            validation_fraction=validation_fraction, n_iter_no_change=n_iter_no_change,
            warm_start=warm_start, verbose=verbose, n_jobs=n_jobs, beta_1=beta_1, beta_2=beta_2,
            epsilon=epsilon, augmentation=augmentation, mix_alpha=mix_alpha, mix_beta=mix_beta,
            mix_ratio=mix_ratio, n_candidates=n_candidates)


class SMFMClassifier(FMClassifierMixin, BaseFactorizationMachine):
    """FM classifier trained with saliency-guided Mixup (SMFM, SMFM paper Alg. 2).

    The model (Rendle 2010) for a row x with nonzeros x_i is

        f(x) = w0 + sum_i w_i x_i + sum_{i<j} <v_i, v_j> x_i x_j,

    computed in O(nnz d) as ``w0 + sum_i w_i x_i + 0.5 sum_f ((sum_i v_if x_i)^2 -
    sum_i v_if^2 x_i^2)`` by Numba kernels on the CSR rows; gradients are closed-form.

    Trained by minibatch {Adam, Adagrad, SGD} on the logistic loss; binary labels train one
    model, more classes one model per class (one-vs-rest).

    It is :class:`FMClassifier` with ``augmentation='saliency'`` preset.

    Parameters
    ----------
    n_factors : int, default=8
        Embedding size d (columns of ``factors_``); 0 gives a linear model.
    solver : {"adam", "adagrad", "sgd"}, default="adam"
        Lazy optimizer: only the parameter rows of the features present in a minibatch are
        updated.  Adam's bias correction uses the global step count (as ``SparseAdam``).
    learning_rate_init : float, default=0.01
        Step size.
    batch_size : int or "auto", default="auto"
        Rows per minibatch; "auto" is ``min(256, n_samples)``.
    max_iter : int, default=100
        Maximum number of epochs (passes over the original rows plus the augmented rows).
    tol : float, default=1e-4
        Training stops when the training loss (or the validation score with
        ``early_stopping``) has not improved by at least ``tol`` for ``n_iter_no_change``
        consecutive epochs.
    alpha : float, default=1e-5
        L2 penalty; its gradient ``alpha * theta_j`` is added to the rows ``theta_j = (w_j,
        v_j)`` of the features present in a minibatch (lazy regularisation, as libFM's SGD).
        The intercept is not penalised.
    init_std : float, default=0.01
        Standard deviation of the normal initialisation of the factors (w and w0 start at 0).
    shuffle : bool, default=True
        Shuffle the rows (originals and augmented) every epoch.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, shuffling, the validation split and augmentation.  The same value
        gives the same model, whatever ``n_jobs``.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the rows (stratified when every class has at least
        2 rows and both parts can hold every class), stop when the validation score stops
        improving and restore the parameters of the best epoch.  The validation score is the
        negative (sample-weighted) mean log-loss; for multiclass, of the sum of the one-vs-rest
        binary log-losses (not the multiclass log-loss of ``predict_proba``).
    validation_fraction : float, default=0.1
        Fraction of rows held out with ``early_stopping``.
    n_iter_no_change : int, default=10
        Epochs without improvement before stopping.
    warm_start : bool, default=False
        Continue from the previous fit (parameters and optimizer state) instead of starting anew.
    verbose : int, default=0
        Print one line per epoch (epoch, training loss, validation score, seconds).
    n_jobs : int or None, default=None
        Threads of the Numba core; None or -1 uses all cores.  Results do not depend on it.
    beta_1, beta_2, epsilon : float, default=0.9, 0.999, 1e-8
        Adam's moment decay rates and its denominator offset (epsilon is Adagrad's too).
    augmentation : {None, "copy", "mix", "saliency"}, default='saliency'
        Training-set augmentation regenerated every epoch (SMFM paper): "copy" adds
        ``n' = mix_ratio * n`` random original rows (CopyFM), "mix" adds n' mixed rows
        ``lam x + (1 - lam) r`` (MixFM, Alg. 1), "saliency" keeps for each first parent the
        most salient of ``n_candidates`` mixed rows under the current model (SMFM, Alg. 2).
    mix_alpha, mix_beta : float, default=0.5
        Parameters of ``lam' ~ Beta(mix_alpha, mix_beta)``; ``lam = max(lam', 1 - lam')``.
    mix_ratio : float, default=1.0
        n'/n, the number of augmented rows per original row and epoch.
    n_candidates : int, default=10
        p, the candidates per first parent with ``augmentation="saliency"``.

    Attributes
    ----------
    intercept_ : float
        Bias w0.
    coef_ : ndarray of shape (n_features_in_,)
        Linear weights w.
    factors_ : ndarray of shape (n_features_in_, n_factors)
        Factor vectors v_i (one row per feature).
    classes_ : ndarray of shape (n_classes,)
        Class labels.  For more than two classes, ``intercept_``, ``coef_`` and ``factors_``
        gain a leading class axis (one-vs-rest models).
    n_features_in_ : int
        Number of features seen during fit.
    n_iter_ : int
        Number of epochs run.
    t_ : int
        Number of optimizer steps (minibatches) taken.
    loss_curve_ : list of float
        Mean training loss per epoch, over the epoch's original and augmented rows.
    best_loss_ : float
        Lowest training loss seen.
    validation_scores_ : list of float or None
        Negative mean validation loss per epoch with ``early_stopping``; a warm-started fit
        appends to it (None after a fit without early stopping or a partial_fit) and validates
        on the rows the model's first early-stopping fit held out.
    best_validation_score_ : float or None
        Best validation score with ``early_stopping``.

    See Also
    --------
    FMClassifier, MixFMClassifier, NFMClassifier, AFMClassifier

    References
    ----------
    S. Rendle. Factorization Machines. ICDM 2010.
    C. Wu et al. Boosting Factorization Machines via Saliency-Guided Mixup. arXiv:2206.08661.
    """

    _core = FMCore

    def __init__(self, n_factors=8, *, solver="adam", learning_rate_init=0.01, batch_size="auto",
                 max_iter=100, tol=1e-4, alpha=1e-5, init_std=0.01, shuffle=True,
                 random_state=None, early_stopping=False, validation_fraction=0.1,
                 n_iter_no_change=10, warm_start=False, verbose=0, n_jobs=None, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-8, augmentation="saliency", mix_alpha=0.5, mix_beta=0.5,
                 mix_ratio=1.0, n_candidates=10):
        super().__init__(
            n_factors,
            solver=solver, learning_rate_init=learning_rate_init, batch_size=batch_size,
            max_iter=max_iter, tol=tol, alpha=alpha, init_std=init_std, shuffle=shuffle,
            random_state=random_state, early_stopping=early_stopping,
            validation_fraction=validation_fraction, n_iter_no_change=n_iter_no_change,
            warm_start=warm_start, verbose=verbose, n_jobs=n_jobs, beta_1=beta_1, beta_2=beta_2,
            epsilon=epsilon, augmentation=augmentation, mix_alpha=mix_alpha, mix_beta=mix_beta,
            mix_ratio=mix_ratio, n_candidates=n_candidates)


class SMFMRegressor(FMRegressorMixin, BaseFactorizationMachine):
    """FM regressor trained with saliency-guided Mixup (SMFM, SMFM paper Alg. 2).

    The model (Rendle 2010) for a row x with nonzeros x_i is

        f(x) = w0 + sum_i w_i x_i + sum_{i<j} <v_i, v_j> x_i x_j,

    computed in O(nnz d) as ``w0 + sum_i w_i x_i + 0.5 sum_f ((sum_i v_if x_i)^2 -
    sum_i v_if^2 x_i^2)`` by Numba kernels on the CSR rows; gradients are closed-form.

    Trained by minibatch {Adam, Adagrad, SGD} on the squared loss.

    It is :class:`FMRegressor` with ``augmentation='saliency'`` preset.

    Parameters
    ----------
    n_factors : int, default=8
        Embedding size d (columns of ``factors_``); 0 gives a linear model.
    solver : {"adam", "adagrad", "sgd"}, default="adam"
        Lazy optimizer: only the parameter rows of the features present in a minibatch are
        updated.  Adam's bias correction uses the global step count (as ``SparseAdam``).
    learning_rate_init : float, default=0.01
        Step size.
    batch_size : int or "auto", default="auto"
        Rows per minibatch; "auto" is ``min(256, n_samples)``.
    max_iter : int, default=100
        Maximum number of epochs (passes over the original rows plus the augmented rows).
    tol : float, default=1e-4
        Training stops when the training loss (or the validation score with
        ``early_stopping``) has not improved by at least ``tol`` for ``n_iter_no_change``
        consecutive epochs.
    alpha : float, default=1e-5
        L2 penalty; its gradient ``alpha * theta_j`` is added to the rows ``theta_j = (w_j,
        v_j)`` of the features present in a minibatch (lazy regularisation, as libFM's SGD).
        The intercept is not penalised.
    init_std : float, default=0.01
        Standard deviation of the normal initialisation of the factors (w and w0 start at 0).
    shuffle : bool, default=True
        Shuffle the rows (originals and augmented) every epoch.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, shuffling, the validation split and augmentation.  The same value
        gives the same model, whatever ``n_jobs``.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the rows, stop when the validation score stops
        improving and restore the parameters of the best epoch.  The validation score is the
        negative (sample-weighted) mean half squared error.
    validation_fraction : float, default=0.1
        Fraction of rows held out with ``early_stopping``.
    n_iter_no_change : int, default=10
        Epochs without improvement before stopping.
    warm_start : bool, default=False
        Continue from the previous fit (parameters and optimizer state) instead of starting anew.
    verbose : int, default=0
        Print one line per epoch (epoch, training loss, validation score, seconds).
    n_jobs : int or None, default=None
        Threads of the Numba core; None or -1 uses all cores.  Results do not depend on it.
    beta_1, beta_2, epsilon : float, default=0.9, 0.999, 1e-8
        Adam's moment decay rates and its denominator offset (epsilon is Adagrad's too).
    augmentation : {None, "copy", "mix", "saliency"}, default='saliency'
        Training-set augmentation regenerated every epoch (SMFM paper): "copy" adds
        ``n' = mix_ratio * n`` random original rows (CopyFM), "mix" adds n' mixed rows
        ``lam x + (1 - lam) r`` (MixFM, Alg. 1), "saliency" keeps for each first parent the
        most salient of ``n_candidates`` mixed rows under the current model (SMFM, Alg. 2).
    mix_alpha, mix_beta : float, default=0.5
        Parameters of ``lam' ~ Beta(mix_alpha, mix_beta)``; ``lam = max(lam', 1 - lam')``.
    mix_ratio : float, default=1.0
        n'/n, the number of augmented rows per original row and epoch.
    n_candidates : int, default=10
        p, the candidates per first parent with ``augmentation="saliency"``.

    Attributes
    ----------
    intercept_ : float
        Bias w0.
    coef_ : ndarray of shape (n_features_in_,)
        Linear weights w.
    factors_ : ndarray of shape (n_features_in_, n_factors)
        Factor vectors v_i (one row per feature).
    n_features_in_ : int
        Number of features seen during fit.
    n_iter_ : int
        Number of epochs run.
    t_ : int
        Number of optimizer steps (minibatches) taken.
    loss_curve_ : list of float
        Mean training loss per epoch, over the epoch's original and augmented rows.
    best_loss_ : float
        Lowest training loss seen.
    validation_scores_ : list of float or None
        Negative mean validation loss per epoch with ``early_stopping``; a warm-started fit
        appends to it (None after a fit without early stopping or a partial_fit) and validates
        on the rows the model's first early-stopping fit held out.
    best_validation_score_ : float or None
        Best validation score with ``early_stopping``.

    See Also
    --------
    FMRegressor, MixFMRegressor, NFMRegressor, AFMRegressor

    References
    ----------
    S. Rendle. Factorization Machines. ICDM 2010.
    C. Wu et al. Boosting Factorization Machines via Saliency-Guided Mixup. arXiv:2206.08661.
    """

    _core = FMCore

    def __init__(self, n_factors=8, *, solver="adam", learning_rate_init=0.01, batch_size="auto",
                 max_iter=100, tol=1e-4, alpha=1e-5, init_std=0.01, shuffle=True,
                 random_state=None, early_stopping=False, validation_fraction=0.1,
                 n_iter_no_change=10, warm_start=False, verbose=0, n_jobs=None, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-8, augmentation="saliency", mix_alpha=0.5, mix_beta=0.5,
                 mix_ratio=1.0, n_candidates=10):
        super().__init__(
            n_factors,
            solver=solver, learning_rate_init=learning_rate_init, batch_size=batch_size,
            max_iter=max_iter, tol=tol, alpha=alpha, init_std=init_std, shuffle=shuffle,
            random_state=random_state, early_stopping=early_stopping,
            validation_fraction=validation_fraction, n_iter_no_change=n_iter_no_change,
            warm_start=warm_start, verbose=verbose, n_jobs=n_jobs, beta_1=beta_1, beta_2=beta_2,
            epsilon=epsilon, augmentation=augmentation, mix_alpha=mix_alpha, mix_beta=mix_beta,
            mix_ratio=mix_ratio, n_candidates=n_candidates)
