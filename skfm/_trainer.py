"""The one training loop of skfm: epochs, augmentation, minibatch kernels, threads.

Everything here is model-agnostic: a *core* (see ``skfm._cores``) supplies parameter layout and
kernels; the estimator (``skfm._base``) supplies validated arrays and hyperparameters.
"""
import contextlib
import functools

import numba
import numpy as np
from threadpoolctl import ThreadpoolController

from ._kernels import csr as kcsr
from ._kernels import mixup as kmix

_EMPTY_CACHE = {}


def readonly(a):
    """A read-only view of ``a`` (no copy).

    Numba compiles one machine-code version of a kernel per argument type, and a read-only array
    is a different type from a writeable one.  The rows, targets and sample weights always reach
    the kernels as read-only views (the input matrix in CSRData, the epoch's gathered rows,
    mixed rows), so a read-only input (a memory-mapped array, as scikit-learn's checks and
    joblib produce) uses the kernels compiled for everything else instead of compiling its own,
    and the forward code that training and prediction share compiles once.  Parameters are
    passed as they are: training writes them, and prediction shares training's compiled code
    (a memory-mapped, read-only model compiles its own version of the prediction kernels)."""
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


@contextlib.contextmanager
def numba_threads(n_jobs):
    """Run the enclosed kernels on ``n_threads(n_jobs)`` threads, restoring the previous count.

    BLAS is held to one thread meanwhile: the kernels' small matrix products (NFM's and AFM's
    dense layers) run inside Numba's parallel loops, one block of rows per task, so the
    parallelism is Numba's and a product's result never depends on a BLAS thread split."""
    previous = numba.get_num_threads()
    numba.set_num_threads(n_threads(n_jobs))
    try:
        with _blas_controller().limit(limits=1, user_api="blas"):
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
    """Copy / mix / saliency augmentation (SMFM paper Alg. 1 and 2) for one epoch.

    ``generic=True`` forces the model-agnostic path for saliency: candidates are materialised in
    chunks of ``chunk`` first parents and scored with the model's saliency kernel.  The default
    uses the core's closed-form selector when it has one and there is a single output."""

    def __init__(self, kind, mix_alpha, mix_beta, mix_ratio, n_candidates, chunk=4096,
                 generic=False):
        self.kind = kind
        self.a = float(mix_alpha)
        self.b = float(mix_beta)
        self.ratio = float(mix_ratio)
        self.p = int(n_candidates) if kind == "saliency" else 1
        self.chunk = chunk
        self.generic = generic

    def n_new(self, n):
        return int(round(self.ratio * n))

    def epoch_rows(self, core, params, X, Y, sw, loss_id, rng, epoch, ws):
        """Returns (src1, extra_order_ids): the augmented rows of this epoch as a kernel source
        (in buffers of the Workspace ``ws``, valid until its next epoch) and the ids (into the
        union of originals and src1) of the rows the epoch adds."""
        n = X.n_rows
        n_new = self.n_new(n)
        if self.kind == "copy":
            return empty_source(X.data.dtype, Y.shape[1]), rng.integers(0, n, n_new)
        parents = first_parents(n, n_new, rng)
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
        kmix.mix_fill(X.indptr, X.indices, X.data, Y, sw, parents, partners, lams, ip, ind, dat,
                      ym, swm)
        return (ip, ind, dat, ym, swm), np.arange(n, n + n_new, dtype=np.int64)

    def select(self, core, params, X, Y, loss_id, parents, seed, epoch):
        n = X.n_rows
        if self.p == 1:  # Alg. 1: one uniform partner per first parent, no saliency
            pr, lm = kmix.draw_candidates(0, len(parents), n, 1, seed, epoch, self.a, self.b)
            return pr[:, 0].copy(), lm[:, 0].copy()
        fast = getattr(core, "select_partners", None)
        if fast is not None and len(params) == 1 and not self.generic:
            return fast(params[0], X, Y[:, 0], parents, self.p, seed, epoch, self.a, self.b,
                        loss_id)
        partners = np.empty(len(parents), np.int64)
        lams = np.empty(len(parents))
        ones = readonly(np.ones(n))  # as the sample weights mix_rows gets in epoch_rows
        # per-epoch state a core's saliency reuses across chunks (AFM: its pair cache); one
        # output only, so a one-vs-rest model never holds one per class
        prep = getattr(core, "saliency_context", None)
        ctx = [prep(params[0], X)] if prep is not None and len(params) == 1 else None
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
                if ctx is None:
                    sal += core.saliency(prm, cand, yc[:, k], loss_id)
                else:
                    sal += core.saliency(prm, cand, yc[:, k], loss_id, ctx[k])
            best = np.argmax(sal.reshape(len(par), self.p), axis=1)
            partners[start:start + len(par)] = pr[np.arange(len(par)), best]
            lams[start:start + len(par)] = lm[np.arange(len(par)), best]
        return partners, lams


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
