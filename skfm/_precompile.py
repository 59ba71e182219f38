"""Compile the Numba kernels ahead of the first fit, several models at a time.

A model's first fit on a machine compiles its kernels (12-57 s on 2 cores, one core busy) and
caches them on disk; every later process loads them from there.  :func:`precompile` pays that
cost up front, one worker process per (model, input dtype), so that a machine with several cores
compiles several models at once: the test suite calls it before its first test (tests/conftest.py),
and a container image can call it at build time.
"""
import time

import numpy as np
from joblib import Parallel, delayed, effective_n_jobs

from ._platform import REGISTRY

__all__ = ["precompile"]

#: the input dtypes the estimators keep (any other is converted to float64)
DTYPES = (np.float32, np.float64)

#: the model whose tasks start first: they compile the kernels every model shares (input checks,
#: Mixup, random numbers), which the tasks that start after them load from the cache (with
#: more workers than dtypes, other models start beside them and compile those kernels too)
FIRST = "FM"

#: seconds one task took to compile, two at a time on a 2-core AMD EPYC; after FIRST the tasks
#: start longest first, which balances the workers (a model not listed counts 50 s)
COST = {"FM": 23, "NFM": 105, "DeepFM": 95, "DCN": 80, "AFM": 70, "IFM": 30, "FFM": 19}


def precompile(estimators=None, *, dtypes=DTYPES, n_jobs=-1, verbose=False):
    """Compile and cache the Numba kernels of ``estimators`` in worker processes.

    Each (model, dtype) pair is one task: a small fit of the model's classifier with saliency
    Mixup, early stopping and sample weights, a ``partial_fit`` with Mixup, then every
    prediction and explanation method it has, which compiles (or loads from the on-disk cache)
    the kernels a fit and a prediction of that model use, whatever the task and the
    augmentation.  Models share few kernels, so the tasks run in parallel with little repeated
    work; the classifier and regressor of one model, and its Mixup presets, compile the same
    kernels.

    Parameters
    ----------
    estimators : list of estimator classes or instances, default=None
        The estimators whose kernels to compile; ``None`` means every estimator of skfm.  Only
        the model counts: an instance's parameters are not used.
    dtypes : tuple of numpy dtypes, default=(numpy.float32, numpy.float64)
        The input dtypes to compile for: each estimator keeps float32 input as float32 and
        converts any other to float64, and each dtype is a separate compilation.
    n_jobs : int or None, default=-1
        Worker processes (joblib's convention: -1 uses every core, None one).  Each worker
        compiles on one core; the caches the workers write are what later fits load.
    verbose : bool, default=False
        Print each task's model, dtype and seconds (in task order, as the tasks end).

    Returns
    -------
    seconds : dict
        ``{(model name, dtype name): seconds}``, each task's wall time in its worker (a few
        seconds where the kernels were already cached).

    Examples
    --------
    >>> from skfm import FMClassifier, NFMClassifier
    >>> from skfm import precompile
    >>> seconds = precompile([FMClassifier, NFMClassifier], n_jobs=2)  # doctest: +SKIP
    """
    classes = [e.cls for e in REGISTRY] if estimators is None else [
        e if isinstance(e, type) else type(e) for e in estimators]
    models = {}
    for cls in classes:
        model = getattr(cls, "_model", None)
        if model is None:
            raise TypeError(f"{cls.__name__} is not an skfm estimator")
        models.setdefault(model.name, cls)  # one class per model: they share the kernels
    if isinstance(dtypes, (type, np.dtype, str)):
        dtypes = (dtypes,)
    dtypes = [np.dtype(d) for d in dtypes]
    if not dtypes or any(d not in (np.float32, np.float64) for d in dtypes):
        raise ValueError(f"dtypes must name float32 and/or float64 (the estimators convert any "
                         f"other input to float64); got {dtypes}")
    order = sorted(models, key=lambda name: (name != FIRST, -COST.get(name, 50)))
    tasks = [(models[name], dtype) for name in order for dtype in dtypes]
    if not tasks:
        return {}
    results = Parallel(n_jobs=min(len(tasks), effective_n_jobs(n_jobs)), return_as="generator")(
        delayed(_compile_one)(cls, dtype) for cls, dtype in tasks)
    seconds = {}
    for (cls, dtype), sec in zip(tasks, results):
        seconds[(cls._model.name, dtype.name)] = sec
        if verbose:
            print(f"precompile: {cls._model.name} {dtype.name} {sec:.1f} s", flush=True)
    return seconds


def _compile_one(cls, dtype):
    """One task of :func:`precompile`: fit ``cls``'s model on a few hundred synthetic rows of
    ``dtype`` and call what a fitted model offers."""
    import warnings

    from sklearn.base import ClassifierMixin
    from sklearn.exceptions import ConvergenceWarning

    from ._platform import get_estimator
    from .datasets import make_fm_classification

    t0 = time.perf_counter()
    model = cls._model
    try:
        est_cls = get_estimator(model.name, "classifier")
    except KeyError:
        est_cls = cls  # a model declared outside skfm's registry
    X, y = make_fm_classification(n_samples=400, n_fields=4, field_size=5, random_state=0)
    X = X.astype(dtype)
    params = dict(model.fast, max_iter=2, batch_size=32, augmentation="saliency",
                  early_stopping=True, random_state=0)
    classifier = issubclass(est_cls, ClassifierMixin)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        # partial_fit draws the whole factor table (fit only its features' rows); mix Mixup
        # draws its own candidates
        est_cls(**dict(params, augmentation="mix", early_stopping=False, max_iter=1)).partial_fit(
            X, y, **({"classes": np.unique(y)} if classifier else {}))
        est = est_cls(**params).fit(X, y, sample_weight=np.ones(len(y)))
        (est.predict_proba if classifier else est.predict)(X[:20])
        est.saliency(X[:20], y[:20])
        for name in ("attention_scores", "interaction_scores"):
            if hasattr(est, name):
                getattr(est, name)(X[:20])
    return time.perf_counter() - t0
