"""Data-parallel training on a dask.distributed cluster: :class:`DataParallel`.

Needs the ``dask`` extra (``pip install ".[dask]"`` from a checkout: dask's arrays,
dask.distributed and dask-ml).  The module itself imports without them; :class:`DataParallel`
asks for them when it is fitted.

What runs where
---------------
* The data stay on the workers.  ``fit`` groups the row blocks of the dask arrays into
  ``n_shards`` contiguous *shards* (default: one per worker), builds each shard's CSR matrix
  once on a worker, and keeps it there for the whole fit.
* Each epoch the client (the process that calls ``fit``) sends the current model to every
  worker; every shard then trains one epoch on its own rows, from that model, with the
  estimator's own ``partial_fit`` (its augmentation included: Mixup partners and SMFM
  candidates come from the shard's own rows), on the worker holding the shard, with as many
  Numba threads as the worker has threads (the estimator's ``n_jobs``, when set, instead).
* The shards send their trained models back and the client mixes them (parameter mixing,
  McDonald et al. 2010): each row of the feature table (a feature's linear weight and factors)
  is the average of the shards' rows weighted by how often the feature occurs in each shard's
  rows, so a shard that never saw a feature (and so never updated its row) does not pull it
  back; every other parameter (intercept, dense layers, attention, batch-norm statistics) is
  the average weighted by the shards' row counts.  The optimizer state is mixed the same way
  (Adam's or AdaGrad's per-row moments as the table's rows, the dense moments as the dense
  parameters) and its step count is the shards' mean, so the next epoch continues each
  parameter's running moments rather than restarting them.
* Prediction (``predict``, ``predict_proba``, ``decision_function``, ``score``) runs the fitted
  estimator in memory on in-memory input and block by block on the workers on dask input.

The model depends on ``random_state``, ``n_shards`` and the row blocks, not on the number of
workers, on which worker runs a shard or on threads: shard ``k`` trains epoch ``e`` with a
random generator seeded from ``(seed, e, k)`` and the models are mixed in shard order.
"""
import copy
import time
import warnings
from numbers import Integral

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, MetaEstimatorMixin, clone, is_classifier
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ._trainer import AUTO_BATCH, make_augmenter

__all__ = ["DataParallel"]

_NEEDS = ('skfm.dask needs dask[array] and dask.distributed: pip install ".[dask]" from a '
          'checkout of skfm (or pip install "dask[array]" distributed)')


def _import_dask():
    try:
        import dask.array as da
        import distributed
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(_NEEDS) from e
    return da, distributed


class DataParallel(MetaEstimatorMixin, BaseEstimator):
    """Train an skfm estimator on data spread over a dask.distributed cluster, by epochs of
    local training on every worker's rows followed by parameter mixing.

    Every skfm estimator (FM, NFM, AFM, DeepFM; any ``augmentation``) can be wrapped.  Each
    epoch, every shard of the rows trains one epoch (``partial_fit``) from the current model on
    the worker that holds it, and the client averages the shards' models, each row of the
    feature table over the shards whose rows contain that feature (see the module docstring,
    "What runs where").

    Parameters
    ----------
    estimator : skfm estimator
        The estimator to train, unfitted (cloned by ``fit``).  Its ``max_iter`` is the number
        of epochs; its early stopping does not apply (``fit`` always trains ``max_iter``
        epochs); its ``random_state`` seeds initialisation and every shard's epochs.
    n_shards : int, default=None
        Number of shards the row blocks are grouped into (contiguous runs of blocks, at most
        one shard per block).  None: one per worker of the client at ``fit`` time.  The model
        depends on it: fix it for a model that does not depend on the cluster's size.
    client : dask.distributed.Client, default=None
        The cluster's client; None: the current one (``distributed.get_client()``).

    Attributes
    ----------
    estimator_ : skfm estimator
        The fitted estimator (an ordinary in-memory model: pickle it, predict with it).
    classes_ : ndarray of shape (n_classes,)
        Class labels (classifiers only).
    n_features_in_ : int
        Number of columns of X.
    n_shards_ : int
        Number of shards the fit used.
    epoch_stats_ : list of dict
        Per epoch: ``seconds`` (wall time), ``train_seconds`` (the slowest shard's training),
        ``mix_seconds`` (the client's averaging), ``bytes_out`` (model bytes sent to the
        workers), ``bytes_in`` (model bytes returned by the shards), ``loss`` (the shards'
        mean training loss, weighted by their epoch rows).

    Notes
    -----
    Communication per epoch: the model to each worker and one model back per shard
    (``epoch_stats_``: about ``(n_workers + n_shards)`` times the size of the model's
    parameters and optimizer state); the rows never move after the shards are built.

    The estimator's progress attributes of ``estimator_`` read as for an in-memory fit:
    ``n_iter_`` (epochs), ``t_`` (the shards' mean optimizer steps), ``loss_curve_`` (the
    per-epoch losses above).  Use ``fields=`` explicitly with a field-aware model when the first
    shard may not show every column: the model is initialised on the first shard (``fields=
    "auto"`` is inferred from its rows, the starting intercept from its labels).

    Examples
    --------
    >>> from distributed import Client, LocalCluster          # doctest: +SKIP
    >>> import dask.array as da                               # doctest: +SKIP
    >>> from skfm import SMFMClassifier                      # doctest: +SKIP
    >>> from skfm.dask import DataParallel                   # doctest: +SKIP
    >>> client = Client(LocalCluster(n_workers=2, threads_per_worker=1))  # doctest: +SKIP
    >>> dX = da.from_array(X, chunks=(10_000, X.shape[1]), asarray=False)  # doctest: +SKIP
    >>> dy = da.from_array(y, chunks=10_000)                 # doctest: +SKIP
    >>> model = DataParallel(SMFMClassifier(max_iter=10))   # doctest: +SKIP
    >>> model.fit(dX, dy)                                    # doctest: +SKIP
    >>> model.predict_proba(X_test)[:, 1]                    # doctest: +SKIP
    """

    def __init__(self, estimator, *, n_shards=None, client=None):
        self.estimator = estimator
        self.n_shards = n_shards
        self.client = client

    # -------------------------------------------------------------------------------- fit
    def fit(self, X, y, sample_weight=None):
        """Train ``estimator.max_iter`` epochs of local training and mixing.

        Parameters
        ----------
        X : dask array of shape (n_samples, n_features), or an in-memory matrix
            Row blocks of scipy sparse matrices (``da.from_array(X_csr, chunks=(rows,
            n_features), asarray=False)``) or of dense arrays, with one block of columns.
            In-memory input is split into one block per shard and sent to the workers.
        y : dask array or array-like of shape (n_samples,)
            Labels or targets; rechunked to X's row blocks when they differ.
        sample_weight : dask array or array-like of shape (n_samples,), default=None
            Non-negative weight of each row's loss.

        Returns
        -------
        self : object
        """
        da, distributed = _import_dask()
        from ._base import BaseFactorizationMachine
        if not isinstance(self.estimator, BaseFactorizationMachine):
            raise TypeError(f"DataParallel trains skfm estimators; got "
                            f"{type(self.estimator).__name__}.")
        if self.n_shards is not None and (isinstance(self.n_shards, (bool, np.bool_))
                                          or not isinstance(self.n_shards, Integral)
                                          or self.n_shards < 1):
            raise ValueError(f"n_shards must be a positive integer or None; got "
                             f"{self.n_shards!r}.")
        client = self.client if self.client is not None else _current_client(distributed)
        for name in ("estimator_", "n_shards_", "n_features_in_", "classes_", "epoch_stats_"):
            self.__dict__.pop(name, None)  # a failed refit leaves no stale model behind
        est = clone(self.estimator)
        est._validate_params()
        if est.early_stopping is True:
            warnings.warn("DataParallel trains max_iter epochs: the estimator's "
                          "early_stopping=True does not apply.", UserWarning, stacklevel=2)
        seed = int(check_random_state(est.random_state).randint(0, 2**31 - 1))
        if est.random_state is None:  # one draw: every shard and the init share it
            est.set_params(random_state=seed)

        n_shards = self.n_shards or max(1, len(client.nthreads()))
        blocks = _row_blocks(da, X, y, sample_weight, n_shards)
        n_shards = len(blocks)
        n_features = int(X.shape[1])
        delayed_shards = [_make_shard_delayed(group, n_features) for group in blocks]
        shards = client.compute(delayed_shards)
        try:
            self._fit_shards(client, est, shards, seed, n_features)
        finally:
            client.cancel(shards)  # the shards' rows leave the workers' memory
        return self

    def _fit_shards(self, client, est, shards, seed, n_features):
        n_shards = len(shards)
        info = client.gather([client.submit(_shard_info, s, is_classifier(est), pure=False)
                              for s in shards])
        n_rows = np.array([i["n_rows"] for i in info], dtype=np.float64)
        counts = np.stack([i["counts"] for i in info]).astype(np.float64)

        classes = None
        if is_classifier(est):
            classes = np.unique(np.concatenate([i["labels"] for i in info]))
        # batch_size is the global minibatch: shard k's steps take its share of it, so that an
        # epoch takes as many (averaged) steps as an in-memory epoch of all the rows
        n_total = n_rows.sum()
        batch = (min(AUTO_BATCH, -(-int(n_total) // 10)) if est.batch_size == "auto"
                 else min(est.batch_size, int(n_total)))
        batches = np.maximum(1, np.round(batch * n_rows / n_total))
        # the starting model, on the first shard's worker (its rows: fields="auto", intercept)
        model = client.submit(_init_model, est, shards[0], classes, pure=False).result()

        self.epoch_stats_ = []
        for epoch in range(est.max_iter):
            t0 = time.perf_counter()
            sent = client.scatter(model, broadcast=True, hash=False)
            futures = [client.submit(_train_shard, sent, shard, seed, epoch, k, int(b),
                                     pure=False)
                       for k, (shard, b) in enumerate(zip(shards, batches))]
            results = client.gather(futures)
            t1 = time.perf_counter()
            _mix(model, results, n_rows, counts)
            t2 = time.perf_counter()
            loss = float(np.average([r["loss"] for r in results],
                                    weights=[r["epoch_rows"] for r in results]))
            model.n_iter_ = epoch + 1
            model.t_ += int(round(np.mean([r["steps"] for r in results])))
            model.loss_curve_.append(loss)
            model.best_loss_ = min(model.best_loss_, loss)
            nbytes = _model_nbytes(model)
            self.epoch_stats_.append({
                "seconds": t2 - t0, "train_seconds": max(r["seconds"] for r in results),
                "mix_seconds": t2 - t1, "bytes_out": nbytes * len(client.nthreads()),
                "bytes_in": nbytes * n_shards, "loss": loss})
            if est.verbose:
                s = self.epoch_stats_[-1]
                print(f"Epoch {epoch + 1}, loss = {loss:.6f}, {s['seconds']:.3f} s "
                      f"(slowest shard {s['train_seconds']:.3f} s, mixing "
                      f"{s['mix_seconds']:.3f} s)", flush=True)
        model.n_jobs = self.estimator.n_jobs
        model._rng = np.random.default_rng([seed, est.max_iter])
        _check_finite(model)
        self.estimator_ = model
        self.n_shards_ = n_shards
        self.n_features_in_ = n_features
        if classes is not None:
            self.classes_ = model.classes_

    # ------------------------------------------------------------------------ prediction
    def _apply(self, method, X):
        check_is_fitted(self)
        func = getattr(self.estimator_, method)
        try:
            import dask.array as da
        except ImportError:  # in-memory input needs no dask
            return func(X)
        if not isinstance(X, da.Array):
            return func(X)
        if X.ndim != 2 or X.numblocks[1] != 1:
            X = X.rechunk({1: -1})
        est = self.estimator_
        if method == "predict_proba" or (method == "decision_function"
                                         and getattr(est, "classes_", ()).__len__() > 2):
            n_out = len(est.classes_)
            return X.map_blocks(_call, est, method, chunks=(X.chunks[0], (n_out,)),
                                dtype=np.float64, meta=np.empty((0, n_out)))
        dtype = est.classes_.dtype if method == "predict" and is_classifier(est) else np.float64
        return X.map_blocks(_call, est, method, drop_axis=1, chunks=(X.chunks[0],),
                            dtype=dtype, meta=np.empty((0,), dtype=dtype))

    def predict(self, X):
        """Predictions of the fitted estimator; a dask array for dask input."""
        return self._apply("predict", X)

    def predict_proba(self, X):
        """Class probabilities (classifiers); a dask array for dask input."""
        return self._apply("predict_proba", X)

    def decision_function(self, X):
        """Decision function (classifiers); a dask array for dask input."""
        return self._apply("decision_function", X)

    def score(self, X, y, sample_weight=None):
        """The estimator's ``score`` (accuracy or R^2); dask input is computed first."""
        check_is_fitted(self)
        X, y, sample_weight = (a.compute() if hasattr(a, "compute") else a
                               for a in (X, y, sample_weight))
        return self.estimator_.score(X, y, sample_weight=sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        inner = self.estimator.__sklearn_tags__()
        tags.estimator_type = inner.estimator_type
        tags.input_tags.sparse = True
        if inner.classifier_tags is not None:
            tags.classifier_tags = inner.classifier_tags
        if inner.regressor_tags is not None:
            tags.regressor_tags = inner.regressor_tags
        return tags


# ------------------------------------------------------------------------------ the client side
def _current_client(distributed):
    try:
        return distributed.get_client()
    except ValueError:
        raise ValueError("DataParallel needs a dask.distributed Client: start one, e.g. "
                         "Client(LocalCluster(n_workers=2, threads_per_worker=1)), or pass "
                         "client=.") from None


def _as_dask(da, a, row_chunks, name):
    if a is None:
        return None
    if not isinstance(a, da.Array):
        a = np.asarray(a)
        if a.ndim != 1:
            raise ValueError(f"{name} must be 1-dimensional; got shape {a.shape}.")
        return da.from_array(a, chunks=(row_chunks,))
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-dimensional; got shape {a.shape}.")
    return a if a.chunks[0] == row_chunks else a.rechunk((row_chunks,))


def _row_blocks(da, X, y, sample_weight, n_shards):
    """The delayed (X, y, sw) row blocks grouped into at most n_shards contiguous shards."""
    if not isinstance(X, da.Array):
        if not sp.issparse(X):
            X = np.asarray(X)
        if X.ndim != 2:
            raise ValueError(f"X must be 2-dimensional; got shape {X.shape}.")
        n = X.shape[0]
        size = max(1, -(-n // n_shards))
        X = da.from_array(sp.csr_matrix(X) if sp.issparse(X) else X,
                          chunks=(size, X.shape[1]), asarray=False)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-dimensional; got shape {X.shape}.")
    if any(np.isnan(c) for c in X.chunks[0]):
        raise ValueError("X has unknown chunk sizes; call X.compute_chunk_sizes() first.")
    if X.numblocks[1] != 1:
        X = X.rechunk({1: -1})
    n = X.shape[0]
    if y is None:
        raise ValueError("y is required.")
    if len(y) != n:
        raise ValueError(f"X has {n} rows but y has {len(y)}.")
    if sample_weight is not None and len(sample_weight) != n:
        raise ValueError(f"X has {n} rows but sample_weight has {len(sample_weight)}.")
    y = _as_dask(da, y, X.chunks[0], "y")
    sw = _as_dask(da, sample_weight, X.chunks[0], "sample_weight")
    xb = X.to_delayed().ravel()
    yb = y.to_delayed().ravel()
    sb = sw.to_delayed().ravel() if sw is not None else [None] * len(xb)
    groups = np.array_split(np.arange(len(xb)), min(n_shards, len(xb)))
    return [[(xb[i], yb[i], sb[i]) for i in g] for g in groups if len(g)]


def _make_shard_delayed(group, n_features):
    import dask
    return dask.delayed(_make_shard)([b[0] for b in group], [b[1] for b in group],
                                     [b[2] for b in group], n_features)


def _model_nbytes(model):
    """Bytes of the parameters and optimizer state (what a shard sends back)."""
    total = 0
    for part in (model._params, model._states):
        for d in part:
            total += sum(a.nbytes for a in d.values() if isinstance(a, np.ndarray))
    return total


def _weighted_mean(arrays, w):
    out = np.zeros(arrays[0].shape, dtype=np.float64)
    for a, wk in zip(arrays, w):
        out += wk * a
    return out / w.sum()


def _table_mean(arrays, counts, axis):
    """Each feature row (along ``axis``) averaged over the shards, weighted by how often the
    feature occurs in each shard; a feature no shard holds keeps the first shard's row (every
    shard's, as none updated it)."""
    total = counts.sum(0)
    shape = [1] * arrays[0].ndim
    shape[axis] = -1
    out = np.zeros(arrays[0].shape, dtype=np.float64)
    for a, c in zip(arrays, counts):
        out += c.reshape(shape) * a
    held = (total > 0).reshape(shape)
    return np.where(held, out / np.where(total > 0, total, 1.0).reshape(shape), arrays[0])


def _mix(model, results, n_rows, counts):
    """Parameter mixing: the shards' models averaged into ``model`` (in place)."""
    w = n_rows / n_rows.sum()
    n_features = counts.shape[1]
    for k in range(len(model._params)):
        for name, start in model._params[k].items():
            arrays = [r["params"][k][name] for r in results]
            if start.dtype.kind in "iub":  # seeds, layouts: the same in every shard
                continue
            if name == "T":
                mixed = _table_mean(arrays, counts, 0)
            else:
                mixed = _weighted_mean(arrays, w)
            model._params[k][name] = mixed.astype(start.dtype, copy=False)
        for name, start in model._states[k].items():
            arrays = [r["states"][k][name] for r in results]
            if not isinstance(start, np.ndarray):  # the step count
                model._states[k][name] = int(round(np.mean(arrays)))
            elif name == "T" and start.ndim == 3 and start.shape[1] == n_features:
                model._states[k][name] = _table_mean(arrays, counts, 1).astype(start.dtype)
            elif start.size:
                model._states[k][name] = _weighted_mean(arrays, w).astype(start.dtype)


def _check_finite(model):
    from ._trainer import diverged
    for prm in model._params:
        for a in prm.values():
            if a.dtype.kind == "f" and not np.isfinite(a).all():
                diverged(model, "after mixing", "parameters")


# ------------------------------------------------------------------------ the worker side
def _make_shard(xs, ys, sws, n_features):
    """A shard's rows as one CSR matrix, labels and weights (built once, on a worker)."""
    mats = [sp.csr_matrix(x) if (sp.issparse(x) or not isinstance(x, np.ndarray))
            else sp.csr_matrix(np.asarray(x)) for x in xs]
    X = sp.vstack(mats, format="csr") if len(mats) > 1 else mats[0]
    y = np.concatenate([np.asarray(v) for v in ys])
    sw = None if sws[0] is None else np.concatenate([np.asarray(v) for v in sws])
    return X, y, sw


def _shard_info(shard, labels):
    """A shard's row count, each feature's number of nonzeros in it, and its labels."""
    X, y, _ = shard
    counts = np.bincount(X.indices[X.data != 0], minlength=X.shape[1])
    return {"n_rows": X.shape[0], "counts": counts, "labels": np.unique(y) if labels else None}


def _worker_threads(est):
    """The Numba threads a shard's training uses: the estimator's n_jobs, else the worker's."""
    if est.n_jobs is not None:
        return est.n_jobs
    try:
        from distributed import get_worker
        return get_worker().state.nthreads
    except (ImportError, ValueError, AttributeError):
        return None


def _init_model(est, shard, classes):
    """The starting model: the estimator initialised on the first shard's rows, no epoch."""
    X, y, sw = shard
    est = copy.deepcopy(est)
    n_jobs = est.n_jobs
    est.n_jobs = _worker_threads(est)
    est._fit(X, y, sw, incremental=False, epochs=0, classes=classes, partial=True)
    est.n_jobs = n_jobs
    return est


def _train_shard(model, shard, seed, epoch, k, batch_size):
    """One epoch of the shard's rows from ``model`` (a copy: tasks on one worker share the
    object); returns the trained parameters, optimizer state, loss and timing."""
    X, y, sw = shard
    est = copy.deepcopy(model)
    est.n_jobs = _worker_threads(est)
    est._rng = np.random.default_rng([seed, epoch, k])
    est.batch_size = batch_size
    t0 = est.t_
    start = time.perf_counter()
    est.partial_fit(X, y, sample_weight=sw)
    seconds = time.perf_counter() - start
    aug = make_augmenter(est)
    rows = X.shape[0] if aug is None else aug.epoch_size(X.shape[0])
    return {"params": est._params, "states": est._states, "loss": est.loss_curve_[-1],
            "steps": est.t_ - t0, "seconds": seconds, "epoch_rows": rows}


def _call(block, est, method):
    return getattr(est, method)(block)
