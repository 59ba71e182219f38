"""The one training loop of skfm: epochs, early stopping, divergence checks, augmentation,
minibatch kernels, threads.

Everything here is model-agnostic: a *core* (see ``skfm._cores``) supplies parameter layout and
kernels; the estimator (``skfm._base``) supplies validated arrays and hyperparameters, and
:func:`fit_epochs` runs the epochs of its fit or partial_fit.
"""
import contextlib
import copy
import functools
import threading
import time
import warnings

import numba
import numpy as np
import threadpoolctl
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import ThreadpoolController

from ._kernels import csr as kcsr
from ._kernels import mixup as kmix
from ._kernels.losses import LOGISTIC, SQUARED

_EMPTY_CACHE = {}

#: the training loss at which training counts as diverged, as a multiple of the yardstick
#: (see loss_scale)
DIVERGED_FACTOR = 1e6


class TrainingDivergedError(FloatingPointError):
    """Raised when the training loss or a parameter becomes non-finite, the training loss grows
    over 1e6 times the starting model's (see the user guide's error table), or the trained
    model's outputs overflow on the training rows.

    The estimator is left unfitted: it never keeps a model with NaN or infinite parameters."""


def readonly(a):
    """A read-only view of ``a`` (no copy).

    Numba compiles one machine-code version of a kernel per argument type, and a read-only array
    is a different type from a writeable one.  The rows, targets and sample weights always reach
    the kernels as read-only views (the input matrix in CSRData, the epoch's gathered rows,
    mixed rows), so a read-only input (a memory-mapped array, as scikit-learn's checks and
    joblib produce) uses the kernels compiled for everything else instead of compiling its own,
    and the forward code that training and prediction share compiles once.  Parameters are
    passed as they are: training writes them, and prediction shares training's compiled code
    (NFM's, DCN's and DeepFM's prediction runs their training blocks in inference mode, a
    stack that takes tens of seconds to compile: read-only parameter views for prediction
    would compile it twice).  A model that ``joblib.load(..., mmap_mode="r")`` maps read-only
    is mapped again copy-on-write as it loads (``skfm._base._private_maps``), so it, too, runs
    the kernels compiled for writable parameters."""
    v = a.view()
    v.flags.writeable = False
    return v


def readonly_float64(a):
    """A contiguous float64 version of ``a`` (a copy only where needed), as a read-only view:
    the targets and weights the kernels read."""
    return readonly(np.ascontiguousarray(a, dtype=np.float64))


def n_threads(n_jobs):
    """Threads of the Numba core for an ``n_jobs`` value (joblib's convention; None = all)."""
    n_max = numba.config.NUMBA_NUM_THREADS
    if n_jobs is None or n_jobs == -1:
        return n_max
    if n_jobs < 0:
        return max(1, n_max + 1 + n_jobs)
    return max(1, min(n_jobs, n_max))


@functools.cache
def _blas_controller():
    """One threadpoolctl controller for the process.

    Making a controller scans the loaded libraries (3-4 ms here), more than a prediction on tens
    of thousands of rows takes, so it is made once and reused (setting a limit through it costs
    about 25 us).  It is made after scipy's BLAS is loaded: that is the BLAS Numba's matrix
    products call, the only one the kernels use.  A BLAS that other code loads later is not
    limited, and the kernels do not call it."""
    import scipy.linalg.cython_blas  # noqa: F401  (Numba's np.dot calls this BLAS)
    return ThreadpoolController()


#: guards _blas_users and _blas_limiter
_BLAS_LOCK = threading.Lock()
#: the enclosing numba_threads blocks running now, in all threads
_blas_users = 0
#: the threadpoolctl limiter that holds BLAS to one thread while _blas_users > 0
_blas_limiter = None


@contextlib.contextmanager
def _blas_one_thread():
    """Hold BLAS to one thread while any thread is inside this block.

    BLAS's thread count is global to the process: with a limit per block, a thread leaving
    its block restored the count while another thread's kernels still ran, and the last to
    leave could restore the one thread another had set, leaving BLAS on one thread for good.
    The first block to start sets the limit and the last to end restores the original."""
    global _blas_users, _blas_limiter
    with _BLAS_LOCK:
        if _blas_users == 0:
            _release_blas_control()
            _blas_limiter = _blas_controller().limit(limits=1, user_api="blas")
        _blas_users += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _blas_users -= 1
            if _blas_users == 0:
                _release_blas_control()
                _blas_limiter.restore_original_limits()
                _blas_limiter = None
                _release_blas_control()


def _release_blas_control():
    """threadpoolctl 3.8 lets one thread at a time change OpenBLAS's (process-wide) thread
    count, the last to change it, and ignores the others: the thread that ends the last block
    may not be the one that started the first, so the control is handed back around each
    change (earlier versions have no such control: any thread's change applies)."""
    controller = getattr(threadpoolctl, "OpenBLASController", None)
    clear = getattr(controller, "clear_controlling_thread", None)
    if clear is not None:
        clear(force=True)


#: serialises the kernels of concurrent Python threads under a threading layer that is not
#: thread-safe (see kernel_lock)
_WORKQUEUE_LOCK = threading.RLock()


def kernel_lock():
    """A lock to hold while running kernels: Numba's "workqueue" threading layer (its fallback
    where neither TBB nor OpenMP is installed, e.g. macOS without them) aborts the process when
    two Python threads launch parallel kernels at once, so under it (or before the first launch
    has chosen a layer) the kernels of concurrent threads take turns; TBB and OpenMP run them
    concurrently."""
    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet: the layer is not chosen
        return _WORKQUEUE_LOCK
    return _WORKQUEUE_LOCK if layer == "workqueue" else contextlib.nullcontext()


@contextlib.contextmanager
def numba_threads(n_jobs):
    """Run the enclosed kernels on ``n_threads(n_jobs)`` threads, restoring the previous count
    (Numba's count is per Python thread, so concurrent threads do not disturb each other).

    BLAS is held to one thread meanwhile: the kernels' small matrix products (NFM's and AFM's
    dense layers) run inside Numba's parallel loops, one block of rows per task, so the
    parallelism is Numba's and a product's result never depends on a BLAS thread split.
    Safe to use from several Python threads at once (see _blas_one_thread, kernel_lock)."""
    with kernel_lock():
        previous = numba.get_num_threads()
        numba.set_num_threads(n_threads(n_jobs))
        try:
            with _blas_one_thread():
                yield
        finally:
            numba.set_num_threads(previous)


#: feature_slots keeps its maps within the larger of this and an eighth of the model's memory
_SLOTS_BUDGET = 64 << 20


def feature_slots(n_features, n_jobs, model_nbytes, n_batches=None):
    """The feature maps of the trainer's batch transposition (csr.batch_transposed): one row of
    -1s per lane, (lanes, n_features) int32.  A lane per thread, as far as the maps fit within
    max(64 MiB, model_nbytes / 8), and no more lanes than an epoch's ``n_batches`` (a
    partial_fit on a few rows needs one); the number of lanes changes the speed, not the
    result."""
    fit = max(_SLOTS_BUDGET, model_nbytes // 8) // (4 * max(1, n_features))
    lanes = min(n_threads(n_jobs), fit)
    if n_batches is not None:
        lanes = min(lanes, n_batches)
    return np.full((max(1, lanes), n_features), -1, np.int32)


class CSRData:
    """A canonical CSR matrix as raw arrays: int64 indptr, int32 sorted duplicate-free indices."""

    __slots__ = ("indptr", "indices", "data", "n_features")

    def __init__(self, indptr, indices, data, n_features):
        self.indptr = readonly(indptr)  # see readonly(): the kernels only read these
        self.indices = readonly(indices)
        self.data = readonly(data)
        self.n_features = n_features

    @property
    def n_rows(self):
        return self.indptr.shape[0] - 1

    def take(self, rows):
        """The sub-matrix of the given rows (a copy)."""
        starts = self.indptr[rows]
        lengths = self.indptr[rows + 1] - starts
        indptr = np.zeros(len(rows) + 1, np.int64)
        np.cumsum(lengths, out=indptr[1:])
        pos = np.repeat(starts - indptr[:-1], lengths) + np.arange(indptr[-1])
        return CSRData(indptr, self.indices[pos], self.data[pos], self.n_features)


class Workspace:
    """Buffers that the epochs of one fit reuse: the gathered epoch block and the mixed rows
    (saliency epochs release them before selecting, see Augmenter.epoch_rows).

    A fresh multi-megabyte array each epoch costs a page fault per 4 KiB page on first touch
    (Frappe's MixFM epoch: about 7,500 faults and 19 ms of system time on 2 threads).  An array of
    a fixed shape is kept as it is; a 1-D buffer of varying length (the nonzeros) is kept at its
    largest size so far and handed out as a prefix view."""

    def __init__(self):
        self._bufs = {}

    def array(self, name, shape, dtype, order="C"):
        """An uninitialised array of exactly this shape, dtype and order."""
        dtype = np.dtype(dtype)
        a = self._bufs.get(name)
        if a is None or a.shape != shape or a.dtype != dtype or not a.flags[order + "_CONTIGUOUS"]:
            a = np.empty(shape, dtype, order=order)
            self._bufs[name] = a
        return a

    def release(self):
        """Drop every buffer (the next request allocates afresh)."""
        self._bufs.clear()

    def vector(self, name, size, dtype):
        """The first ``size`` entries of a 1-D buffer (uninitialised), grown by a quarter when
        too short."""
        dtype = np.dtype(dtype)
        a = self._bufs.get(name)
        if a is None or a.dtype != dtype:
            a = self._bufs[name] = np.empty(size, dtype)
        elif a.shape[0] < size:
            a = self._bufs[name] = np.empty(max(size, a.shape[0] * 5 // 4), dtype)
        return a[:size]


def empty_source(dtype, n_outputs):
    key = (np.dtype(dtype), n_outputs)
    if key not in _EMPTY_CACHE:
        _EMPTY_CACHE[key] = (np.zeros(1, np.int64), np.empty(0, np.int32), np.empty(0, dtype),
                             np.empty((0, n_outputs), order="F"), np.empty(0))
    return _EMPTY_CACHE[key]


def first_parents(n, n_new, rng):
    """Alg. 1, line 3: n_new first parents drawn without replacement; for n_new > n the data are
    copied floor(n_new / n) times and n_new mod n rows are drawn without replacement."""
    reps, rest = divmod(n_new, n)
    parts = [np.arange(n, dtype=np.int64)] * reps
    if rest:
        parts.append(rng.permutation(n)[:rest].astype(np.int64))
    return np.concatenate(parts) if parts else np.empty(0, np.int64)


class Augmenter:
    """Copy / mix / saliency augmentation (SMFM paper Alg. 1 and 2), and Maxup (Gong et al.
    2021), for one epoch.

    "copy", "mix" and "saliency" add n' = mix_ratio * n rows to the epoch's n original rows;
    "max" replaces every row by the one of its p mixed neighbours with the largest loss under
    the current model (``replaces``: the epoch trains the n selected rows only).

    ``generic=True`` forces the model-agnostic path for saliency and Maxup: candidates are
    materialised in chunks of ``chunk`` first parents and scored with the model's saliency kernel
    (its decision and loss for Maxup).  The default uses the core's closed-form selector
    (``select_partners``; ``select_max_loss`` for Maxup) when it has one and there is a single
    output."""

    def __init__(self, kind, mix_alpha, mix_beta, mix_ratio, n_candidates, chunk=4096,
                 generic=False):
        self.kind = kind
        self.a = float(mix_alpha)
        self.b = float(mix_beta)
        self.ratio = float(mix_ratio)
        self.p = int(n_candidates) if kind in ("saliency", "max") else 1
        self.replaces = kind == "max"
        self.chunk = chunk
        self.generic = generic

    def n_new(self, n):
        """The augmented rows of an epoch over n rows."""
        return n if self.replaces else int(round(self.ratio * n))

    def epoch_size(self, n):
        """The rows an epoch over n rows trains on."""
        return self.n_new(n) if self.replaces else n + self.n_new(n)

    def epoch_rows(self, core, params, X, Y, sw, loss_id, rng, epoch, ws):
        """Returns (src1, extra_order_ids): the augmented rows of this epoch as a kernel source
        (in buffers of the Workspace ``ws``, valid until its next epoch) and the ids (into the
        union of originals and src1) of the rows the epoch adds."""
        n = X.n_rows
        n_new = self.n_new(n)
        if self.kind == "copy":
            return empty_source(X.data.dtype, Y.shape[1]), rng.integers(0, n, n_new)
        # Maxup: every row, in order, is the first parent of its neighbours
        parents = (np.arange(n, dtype=np.int64) if self.replaces
                   else first_parents(n, n_new, rng))
        seed = int(rng.integers(0, 2**63 - 1))
        if self.p > 1:
            # Selection holds large arrays of its own (FM: the rows' statistics, n x (d + 3));
            # with the previous epoch's buffers kept on top, SMFM's peak memory rose from 1.26x
            # to 1.43x FM's (bench_memory.py), so saliency epochs allocate afresh.
            ws.release()
        partners, lams = self.select(core, params, X, Y, loss_id, parents, seed, epoch)
        ip = ws.array("mix_indptr", (n_new + 1,), np.int64)
        nnz = kmix.mix_sizes(X.indptr, X.indices, X.data, parents, partners, ip)
        ind = ws.vector("mix_indices", nnz, np.int32)
        dat = ws.vector("mix_data", nnz, X.data.dtype)
        ym = ws.array("mix_y", (n_new, Y.shape[1]), np.float64, order="F")
        swm = ws.array("mix_sw", (n_new,), np.float64)
        kmix.mix_fill(X.indptr, X.indices, X.data, readonly(Y), readonly(sw), parents, partners,
                      lams, ip, ind, dat, ym, swm)  # read-only, as every kernel gets them
        return (ip, ind, dat, ym, swm), np.arange(n, n + n_new, dtype=np.int64)

    def select(self, core, params, X, Y, loss_id, parents, seed, epoch):
        n = X.n_rows
        if self.p == 1:  # Alg. 1: one uniform partner per first parent, no saliency
            pr, lm = kmix.draw_candidates(0, len(parents), n, 1, seed, epoch, self.a, self.b)
            return pr[:, 0].copy(), lm[:, 0].copy()
        fast = getattr(core, "select_max_loss" if self.replaces else "select_partners", None)
        if fast is not None and len(params) == 1 and not self.generic:
            return fast(params[0], X, Y[:, 0], parents, self.p, seed, epoch, self.a, self.b,
                        loss_id)
        partners = np.empty(len(parents), np.int64)
        lams = np.empty(len(parents))
        ones = readonly(np.ones(n))  # as the sample weights mix_rows gets in epoch_rows
        # per-epoch state a core's saliency reuses across chunks (AFM: its pair cache); one
        # output only, so a one-vs-rest model never holds one per class
        prep = getattr(core, "saliency_context", None)
        ctx = ([prep(params[0], X)] if prep is not None and len(params) == 1
               and not self.replaces else None)
        for start in range(0, len(parents), self.chunk):
            par = parents[start:start + self.chunk]
            pr, lm = kmix.draw_candidates(start, len(par), n, self.p, seed, epoch, self.a,
                                          self.b)
            rep = np.repeat(par, self.p)
            ip, ind, dat, yc, _ = kmix.mix_rows(X.indptr, X.indices, X.data, Y, ones, rep,
                                                pr.ravel(), lm.ravel())
            cand = CSRData(ip, ind, dat, X.n_features)
            sal = np.zeros(len(rep))
            for k, prm in enumerate(params):
                if self.replaces:  # Maxup: the candidate's loss (inference mode)
                    sal += _losses(core.decision(prm, cand), yc[:, k], loss_id)
                elif ctx is None:
                    sal += core.saliency(prm, cand, yc[:, k], loss_id)
                else:
                    sal += core.saliency(prm, cand, yc[:, k], loss_id, ctx[k])
            best = np.argmax(sal.reshape(len(par), self.p), axis=1)
            partners[start:start + len(par)] = pr[np.arange(len(par)), best]
            lams[start:start + len(par)] = lm[np.arange(len(par)), best]
        return partners, lams


def _losses(F, y, loss_id):
    """Per-row loss of outputs F against (soft) targets y."""
    with np.errstate(all="ignore"):
        if loss_id == LOGISTIC:
            return np.logaddexp(0.0, F) - y * F
        return 0.5 * (F - y) ** 2


def run_epoch(core, params, states, X, Y, sw, rng, epoch, hp, augmenter, shuffle, slots,
              ws=None):
    """One epoch for every output (task) of ``params``; returns (mean loss, n_steps, status).

    The epoch trains on the union of the original rows and the augmented rows, in one random
    order shared by all outputs.  ``slots``: see feature_slots.  ``ws``, a Workspace, holds the
    epoch's large buffers; a fit passes the same one to all its epochs."""
    n = X.n_rows
    n_out = Y.shape[1]
    if ws is None:
        ws = Workspace()
    if augmenter is None:
        src1 = empty_source(X.data.dtype, n_out)
        extra = np.empty(0, np.int64)
    else:
        src1, extra = augmenter.epoch_rows(core, params, X, Y, sw, hp["loss_id"], rng, epoch,
                                           ws)
    if augmenter is not None and augmenter.replaces:  # Maxup: the selected rows only
        order = extra
    else:
        order = np.concatenate([np.arange(n, dtype=np.int64), extra])
    if shuffle:
        order = order[rng.permutation(len(order))]
    total = 0.0
    steps = 0
    hp = dict(hp, epoch=epoch)  # cores with random training-time parts (dropout) key on it
    # the epoch's rows in training order, read-only (see readonly); gathered once, as the
    # outputs (one-vs-rest classes) share rows and weights and differ in their targets only
    s0 = (X.indptr, X.indices, X.data, Y[:, 0], sw)
    s1 = (src1[0], src1[1], src1[2], src1[3][:, 0], src1[4])
    m = len(order)
    ip = ws.array("block_indptr", (m + 1,), np.int64)
    nnz = kcsr.gather_sizes(s0, s1, order, ip)
    ind = ws.vector("block_indices", nnz, np.int32)
    dat = ws.vector("block_data", nnz, X.data.dtype)
    yb = ws.array("block_y", (m,), np.float64)
    swb = ws.array("block_sw", (m,), np.float64)
    block = tuple(readonly(a) for a in (ip, ind, dat, yb, swb))
    for k in range(n_out):
        if k == 0:
            kcsr.gather_fill(s0, s1, order, ip, ind, dat, yb, swb)
        else:
            np.take(np.concatenate([Y[:, k], src1[3][:, k]]), order, out=yb)
        loss, steps, status = core.train_epoch(params[k], states[k], block, hp, slots)
        total += loss
        if status:
            return total / len(order), steps, status
    return total / len(order), steps, 0


# ------------------------------------------------------------------------------ the epoch loop
#: the largest minibatch of batch_size="auto", min(AUTO_BATCH, ceil(n / 10)) rows
AUTO_BATCH = 2048


def settings(est, n_rows):
    """The optimizer settings of the kernels (``hp``) for an estimator's hyperparameters."""
    if est.batch_size == "auto":  # at least 10 steps an epoch, at most AUTO_BATCH rows
        batch = min(AUTO_BATCH, -(-n_rows // 10))
    else:
        batch = min(est.batch_size, n_rows)
    return {"batch_size": int(batch), "solver": est.solver,
            "lr": float(est.learning_rate_init), "beta_1": float(est.beta_1),
            "beta_2": float(est.beta_2), "epsilon": float(est.epsilon),
            "loss_id": est._loss_id, "alpha": float(est.alpha)}


def make_augmenter(est):
    """The Augmenter of an estimator's augmentation hyperparameters (None without)."""
    if est.augmentation is None:
        return None
    return Augmenter(est.augmentation, est.mix_alpha, est.mix_beta, est.mix_ratio,
                     est.n_candidates)


def mean_loss(est, X, Y, sw):
    """The model's sample-weighted mean loss on the rows X (summed over the outputs)."""
    L = _losses(est._decision(X), Y, est._loss_id)
    return float(np.average(L.sum(1), weights=sw)) if sw.sum() > 0 else float(L.sum(1).mean())


def loss_scale(est, X, Y, sw, first_call):
    """(start, scale) for the divergence checks.  ``start`` is the mean training loss (as
    loss_curve_ counts it) of the model training starts from: on a first fit one whose
    outputs are all 0 (the initial model, up to its small random factors), on a continued
    fit (warm_start, partial_fit) the fitted model on these rows, which new data may
    legitimately put far above the zero model.  ``scale`` is the largest of it, the zero
    model's loss and the mean sample weight."""
    msw = float(np.mean(sw)) if len(sw) else 1.0
    if est._loss_id == LOGISTIC:
        zero = float(np.log(2.0) * msw * Y.shape[1])
    else:
        zero = 0.5 * float(np.mean(sw[:, None] * Y * Y)) * Y.shape[1]
    start = zero
    if not first_call and msw > 0:
        with np.errstate(all="ignore"):
            start = mean_loss(est, X, Y, sw) * msw
        if not np.isfinite(start):
            start = zero
    return start, max(start, zero, msw)


def diverged(est, when, what, how="became non-finite"):
    """Leave the estimator unfitted and raise TrainingDivergedError."""
    est._forget()
    raise TrainingDivergedError(
        f"Training diverged {when}: the {what} {how}. Use a lower "
        f"learning_rate_init (now {est.learning_rate_init:g}) or scale the input features"
        f"{' and the targets' if est._loss_id == SQUARED else ''}; the estimator has been "
        "reset to unfitted.")


class Validation:
    """The rows early stopping holds out: CSRData ``X``, targets ``Y`` (n, n_outputs) and
    weights ``sw`` for the loss; with a scikit-learn ``scorer``, the rows as the caller gave
    them (``X_raw``, labels ``y_raw``), scored with their weights when the fit was
    ``weighted``."""

    def __init__(self, X, Y, sw, scorer=None, X_raw=None, y_raw=None, weighted=False):
        self.X, self.Y, self.sw = X, Y, sw
        self.scorer, self.X_raw, self.y_raw, self.weighted = scorer, X_raw, y_raw, weighted

    def score(self, est):
        """The current model's validation score (higher is better)."""
        if self.scorer is None:
            return -mean_loss(est, self.X, self.Y, self.sw)
        kw = {"sample_weight": self.sw} if self.weighted else {}
        with np.errstate(all="ignore"):
            return float(self.scorer(est, self.X_raw, self.y_raw, **kw))


class BestModel:
    """The parameters of early stopping's best epoch, to restore after the last.

    A fit changes only the rows of a factor table ``T`` whose features occur in its training
    rows X (a minibatch updates, and lazily regularises, the rows of its own features; mixed
    rows have their parents' features), so where those are under half of the table only they
    are copied: in bench_scale's 1e7-feature fit, 148,199 features occur, so each new best
    epoch copies 1.5% of the table instead of all of it."""

    def __init__(self, X, n_features):
        seen = np.zeros(n_features, bool)
        seen[X.indices] = True
        rows = np.flatnonzero(seen)
        self.rows = rows if 2 * len(rows) < n_features else None
        self.saved = None

    def _partial(self, key):
        return key == "T" and self.rows is not None

    def save(self, params):
        self.saved = [{k: v[self.rows] if self._partial(k) else copy.deepcopy(v)
                       for k, v in p.items()} for p in params]

    def restore(self, params):
        """Put the saved parameters back into ``params`` (the estimator's list of dicts)."""
        for p, saved in zip(params, self.saved):
            for k, v in saved.items():
                if self._partial(k):
                    p[k][self.rows] = v
                else:
                    p[k] = v


def _start_early_stopping(est, validation, first_call, X):
    """Early stopping's state before the epochs; returns the BestModel to beat (with nothing
    saved on a first fit)."""
    best = BestModel(X, est.n_features_in_)
    if first_call or getattr(est, "validation_scores_", None) is None:
        est.validation_scores_ = []
    if first_call:
        est.best_validation_score_ = -np.inf
        return best
    # a warm-started fit goes on from the fitted model (the last early-stopping fit's best
    # epoch) and keeps it unless one of its own epochs validates better on the validation rows
    best.save(est._params)
    start_score = validation.score(est)
    est.best_validation_score_ = start_score if np.isfinite(start_score) else -np.inf
    return best


def fit_epochs(est, core, X, Y, sw, rng, epochs, *, first_call, partial, validation=None,
               final=False):
    """Train the estimator's model (``est._params``, ``est._states``) for up to ``epochs``
    epochs on the CSRData rows X with targets Y (n, n_outputs) and weights sw; returns est.

    Updates the progress attributes (``n_iter_``, ``t_``, ``loss_curve_``, ``best_loss_``,
    ``validation_scores_``, ``best_validation_score_``).  ``validation`` = (X, Y, sw) of the
    held-out rows (a :class:`Validation`) turns on early stopping: the best epoch's parameters
    are restored.  ``final`` (with ``partial``): the final epochs over every row after an early
    stopping fit, which keep its validation scores.  A fit
    (not a ``partial`` one) stops after ``n_iter_no_change`` epochs without improvement and
    warns when it reaches ``epochs`` without.  A non-finite loss or parameter, a loss over
    DIVERGED_FACTOR times the yardstick (loss_scale) or non-finite outputs raise
    TrainingDivergedError and leave the estimator unfitted."""
    if first_call:
        est.n_iter_ = 0
        est.t_ = 0
        est.loss_curve_ = []
        est.best_loss_ = np.inf
    if first_call or not partial:
        est._no_improvement_count = 0
    early = validation is not None
    best = None
    if early:
        best = _start_early_stopping(est, validation, first_call, X)
    elif not final:
        est.validation_scores_ = None
        est.best_validation_score_ = None

    hp = settings(est, X.n_rows)
    # A training loss this far above the starting model's means the optimizer has blown
    # up, even while every value is still finite
    start, scale = loss_scale(est, X, Y, sw, first_call)
    blown_up = DIVERGED_FACTOR * scale
    Y, sw = readonly(Y), readonly(sw)  # read by the kernels only (see readonly)
    augmenter = make_augmenter(est)
    n_epoch = augmenter.epoch_size(X.n_rows) if augmenter is not None else X.n_rows
    slots = feature_slots(est.n_features_in_, est.n_jobs,
                          sum(a.nbytes for prm in est._params for a in prm.values()),
                          -(-n_epoch // hp["batch_size"]))
    ws = Workspace()  # the epochs' large buffers, reused from epoch to epoch
    stopped = False
    with numba_threads(est.n_jobs):
        for _ in range(epochs):
            t0 = time.perf_counter()
            epoch = est.n_iter_
            loss, steps, status = run_epoch(core, est._params, est._states, X, Y, sw, rng,
                                            epoch, hp, augmenter, est.shuffle, slots, ws)
            est.n_iter_ += 1
            est.t_ += steps
            if status or not np.isfinite(loss):
                diverged(est, f"in epoch {epoch + 1}", "parameters" if status == 2 else "loss")
            if loss > blown_up:
                diverged(est, f"in epoch {epoch + 1}", "loss",
                         f"grew to {loss:.3g}, more than {DIVERGED_FACTOR:.0e} times the "
                         f"starting model's ({start:.3g}) or the mean sample weight")
            est.loss_curve_.append(float(loss))
            msg = f"Epoch {est.n_iter_}, loss = {loss:.6f}"
            if early:
                score = validation.score(est)
                est.validation_scores_.append(score)
                msg += f", validation score = {score:.6f}"
                if score > est.best_validation_score_:
                    best.save(est._params)
                improved = not score < est.best_validation_score_ + est.tol  # NaN: improved
                est.best_validation_score_ = max(est.best_validation_score_, score)
            else:
                improved = not loss > est.best_loss_ - est.tol
            est._no_improvement_count = 0 if improved else est._no_improvement_count + 1
            est.best_loss_ = min(est.best_loss_, loss)
            if est.verbose:
                print(msg + f", {time.perf_counter() - t0:.3f} s", flush=True)
            if not partial and est._no_improvement_count >= est.n_iter_no_change:
                stopped = True
                if est.verbose:
                    what = "Validation score" if early else "Training loss"
                    print(f"{what} did not improve more than tol={est.tol} for "
                          f"{est.n_iter_no_change} consecutive epochs. Stopping.")
                break
    if early and best.saved is not None:
        best.restore(est._params)
    elif est.loss_curve_ and est.loss_curve_[-1] > 2.0 * scale:
        warnings.warn(
            f"The last epoch's training loss, {est.loss_curve_[-1]:.3g}, is above "
            f"{2.0 * scale:.3g}, twice the larger of the starting model's loss "
            f"({start:.3g}) and the mean sample weight: training has likely diverged. Use "
            f"a lower learning_rate_init (now {est.learning_rate_init:g}).",
            ConvergenceWarning)
    # Finite parameters can still give infinite outputs once they have blown up: check the
    # model on (up to) 1024 training rows before returning it.
    probe = X.take(np.arange(min(X.n_rows, 1024)))
    with np.errstate(all="ignore"):
        if not np.isfinite(est._decision(probe)).all():
            diverged(est, f"after epoch {est.n_iter_}", "model outputs")
    if not partial and not stopped:
        if early:
            advice = ("the validation score was still improving: a larger max_iter may help")
        else:
            # training loss still falling says nothing about held-out rows: more epochs of a
            # factorization machine on sparse data often overfit, so do not advise them
            advice = ("the training loss was still improving, which does not mean that more "
                      "epochs would predict better (they often overfit); to choose the number "
                      "of epochs on held-out rows, use early_stopping=True")
        warnings.warn(f"Stochastic optimizer: maximum iterations ({epochs}) reached and the "
                      f"optimization hasn't converged yet: {advice}.", ConvergenceWarning)
    return est
