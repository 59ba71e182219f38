"""How skfm's FM epoch scales, and where its time goes.

1. Scale: seconds per `fit` epoch (Adam, batch 2048) on random sparse rows with a fixed number of
   nonzeros per row, for 1e4, 1e6 and 1e7 features (d=16: 1e7 x 16 float32 factors are 640 MB,
   plus Adam's two moment tables), for 1e5, 1e6 and 5e6 rows, and for 5, 10, 20 and 40 nonzeros
   per row.  Time per epoch should be linear in rows and in nnz, and flat in the number of features.
2. Breakdown on 200,000 Frappe-shaped rows (d=64, batch 2048, Adam, one thread and all threads):
   the phases of skfm's epoch (gather of the shuffled rows, forward, transpose, gradient + lazy
   update) next to a plain sequential Numba SGD pass over the same rows (one row at a time,
   update in place: the ceiling a minibatch trainer can approach, and what Hogwild-style
   trainers do).

3. Features: a whole 5-epoch ``fit`` (initialisation, validation and the loss probes included) on
   200,000 rows of 10 nonzeros against the number of features (1e6 and 1e7, d=16), on 1 thread and
   all threads, without early stopping and with it (the default above 1,000 rows: a validation
   score each epoch, a copy of the best epoch's model), with the time of the table's draw alone.
   A fit should cost about the same per row whatever the size of the feature space it touches a
   small part of.

4. Threads: a whole 10-epoch ``fit`` on 200,000 Frappe-shaped rows (d=64, batch 2048), on 1
   thread and on all threads (alternating, best of 3), without early stopping and with it (the
   default above 1,000 rows: a validation score every epoch, the best epoch kept), so that the
   work outside the epochs counts.

Usage: python benchmarks/bench_scale.py [--quick] [--part scale|breakdown|features|threads|all]
"""
import argparse
import os
import sys
import time
import warnings

import numba
import numpy as np
import scipy.sparse as sp
from numba import njit
from sklearn.exceptions import ConvergenceWarning

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

C.use_checkout()  # this checkout's skfm, never an older installed copy
from skfm import FMClassifier  # noqa: E402
from skfm._base import to_csr_data  # noqa: E402
from skfm._kernels import csr as kcsr  # noqa: E402
from skfm._kernels import fm as kfm  # noqa: E402
from skfm._kernels import skeleton  # noqa: E402
from skfm._kernels.optim import ADAM, adam_lr, row_coefs  # noqa: E402
from skfm._trainer import feature_slots  # noqa: E402
from skfm.datasets import make_frappe_like  # noqa: E402


def random_rows(n_rows, n_features, nnz, rng):
    """One-hot-like rows: nnz distinct random features per row (Zipf-skewed), value 1."""
    k = np.minimum(rng.zipf(1.3, size=(n_rows, nnz)) - 1, n_features - 1)
    cols = (k * 2654435761 + np.arange(nnz) * 97) % n_features  # spread popular ids
    cols.sort(axis=1)
    dup = np.zeros_like(cols, dtype=bool)
    dup[:, 1:] = cols[:, 1:] == cols[:, :-1]
    cols[dup] = (cols[dup] + 1) % n_features  # rare; duplicates are summed by skfm anyway
    X = sp.csr_matrix((np.ones(cols.size, np.float32), cols.ravel(),
                       np.arange(0, cols.size + 1, nnz)), shape=(n_rows, n_features))
    X.sum_duplicates()
    y = rng.integers(0, 2, n_rows)
    return X, y


def epoch_seconds(X, y, d, n_jobs, epochs=2):
    """Seconds per epoch of fit, after a first epoch that pays for the parameter initialisation
    (warm start: the timed call continues training, as later epochs of one long fit do)."""
    est = FMClassifier(n_factors=d, learning_rate_init=1e-3, batch_size=2048, max_iter=1,
                       tol=0.0, n_iter_no_change=epochs + 1, random_state=0, n_jobs=n_jobs,
                       warm_start=True, early_stopping=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
        est.set_params(max_iter=epochs)
        t0 = time.perf_counter()
        est.fit(X, y)
        return (time.perf_counter() - t0) / epochs


def part_scale(quick, n_jobs):
    rng = np.random.default_rng(0)
    print(f"## Scale (Adam, batch 2048, n_jobs={n_jobs}; s/epoch of fit after the first epoch, "
          "input validation included)")
    print(f"{'rows':>9} {'features':>10} {'nnz/row':>8} {'d':>3} {'s/epoch':>9} {'rows/s':>11} "
          f"{'nnz/s':>11}")
    X, y = random_rows(2000, 1000, 10, rng)
    epoch_seconds(X, y, 16, n_jobs, 1)  # JIT warm-up
    f = 10 if quick else 1
    grid = [(100000 // f, 10**4, 10, 16), (100000 // f, 10**6, 10, 16),
            (100000 // f, 10**7 // f, 10, 16),
            (1000000 // f, 10**6, 10, 16), (5000000 // f, 10**6, 10, 16),
            (500000 // f, 10**6, 5, 16), (500000 // f, 10**6, 20, 16),
            (500000 // f, 10**6, 40, 16)]
    for rows, feats, nnz, d in grid:
        X, y = random_rows(rows, feats, nnz, rng)
        s = epoch_seconds(X, y, d, n_jobs)
        print(f"{rows:9d} {feats:10d} {nnz:8d} {d:3d} {s:9.3f} {rows / s:11.0f} "
              f"{X.nnz / s:11.0f}", flush=True)


def fit_seconds(X, y, d, epochs, early, n_jobs):
    """Seconds of one whole FMClassifier fit (Adam, batch 2048) that runs all ``epochs``
    (tol=0, no final epochs), with or without early stopping."""
    est = FMClassifier(n_factors=d, learning_rate_init=1e-3, batch_size=2048, max_iter=epochs,
                       tol=0.0, n_iter_no_change=epochs + 1, early_stopping=early,
                       final_epochs=0, random_state=0, n_jobs=n_jobs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0 = time.perf_counter()
        est.fit(X, y)
        return time.perf_counter() - t0


def part_features(quick, n_jobs):
    from skfm._cores import FMCore
    from skfm._trainer import numba_threads
    rows = 20000 if quick else 200000
    feats = [10**5, 10**6] if quick else [10**6, 10**7]
    rng = np.random.default_rng(0)
    data = {f: random_rows(rows, f, 10, rng) for f in feats}
    print(f"\n## Features: a whole fit of 5 epochs on {rows} rows, 10 nonzeros each (Adam, batch "
          "2048, d=16; best of 3), and the factor table's draw alone (the rows of the features in "
          "the fit's rows, as fit draws them)")
    print(f"{'threads':>7} {'early_stopping':>14} {'features':>10} {'init s':>8} {'fit s':>8} "
          f"{'us/row/epoch':>13} {'per row / smallest':>19}")
    X, y = random_rows(2000, 1000, 10, rng)
    epoch_seconds(X, y, 16, n_jobs, 1)  # JIT warm-up
    for threads, early in [(t, e) for t in sorted({1, n_jobs or numba.config.NUMBA_NUM_THREADS})
                           for e in (False, True)]:
        base = None
        for f in feats:
            X, y = data[f]
            seen = np.flatnonzero(np.bincount(X.indices, minlength=f))
            t_init, t_fit = [], []
            for _ in range(3):
                with numba_threads(threads):
                    t0 = time.perf_counter()
                    FMCore.init_params(f, 16, np.float32, np.random.default_rng(0), 0.01, seen)
                    t_init.append(time.perf_counter() - t0)
                t_fit.append(fit_seconds(X, y, 16, 5, early, threads))
            per_row = min(t_fit) / (5 * rows)
            base = base or per_row
            print(f"{threads:7d} {str(early):>14} {f:10d} {min(t_init):8.3f} {min(t_fit):8.3f} "
                  f"{1e6 * per_row:13.3f} {per_row / base:19.2f}", flush=True)


def part_threads(quick):
    n = 20000 if quick else 200000
    X, y = make_frappe_like(n, random_state=0, dtype=np.float32)
    counts = sorted({1, numba.config.NUMBA_NUM_THREADS})
    print(f"\n## Threads: a whole fit of 10 epochs on {n} Frappe-shaped rows (Adam, batch 2048, "
          "d=64, tol=0 so every epoch runs; best of 3, thread counts alternating)")
    print(f"{'early_stopping':>14} " + " ".join(f"{f'{k} thr s':>9}" for k in counts)
          + f" {'ratio':>6}")
    for early in (False, True):
        best = {k: np.inf for k in counts}
        for rep in range(4):  # the first round compiles and warms the caches
            for k in counts:
                t = fit_seconds(X, y, 64, 10, early, k)
                if rep:
                    best[k] = min(best[k], t)
        print(f"{str(early):>14} " + " ".join(f"{best[k]:9.3f}" for k in counts)
              + f" {best[counts[0]] / best[counts[-1]]:6.2f}", flush=True)


@njit(cache=True, fastmath={"reassoc", "contract"})
def plain_sgd_epoch(indptr, indices, data, y, w0, T, lr):
    """Sequential per-row SGD on the logistic loss, updates in place: the simple ceiling."""
    d = T.shape[1] - 1
    s = np.empty(d, T.dtype)
    for r in range(indptr.shape[0] - 1):
        a, e = indptr[r], indptr[r + 1]
        f = w0[0]
        for k in range(d):
            s[k] = 0.0
        sq = 0.0
        for p in range(a, e):
            j, x = indices[p], data[p]
            f += T[j, 0] * x
            for k in range(d):
                t = T[j, k + 1] * x
                s[k] += t
                sq += t * t
        for k in range(d):
            sq -= s[k] * s[k]
        f -= 0.5 * sq
        g = 1.0 / (1.0 + np.exp(-f)) - y[r]  # fine here: |f| stays small in this benchmark
        w0[0] -= lr * g
        for p in range(a, e):
            j, x = indices[p], data[p]
            gx = lr * g * x
            T[j, 0] -= gx
            for k in range(d):
                T[j, k + 1] -= gx * (s[k] - T[j, k + 1] * x)


def part_breakdown(quick):
    n = 20000 if quick else 200000
    X, y = make_frappe_like(n, random_state=0, dtype=np.float32)
    Xc = to_csr_data(X, np.float32)
    d, B = 64, 2048
    rng = np.random.default_rng(0)
    yv, sw = y.astype(np.float64), np.ones(n)
    src = (Xc.indptr, Xc.indices, Xc.data, yv, sw)
    empty = (np.zeros(1, np.int64), Xc.indices[:0], Xc.data[:0], yv[:0], sw[:0])
    order = rng.permutation(n).astype(np.int64)

    def best_of(fn, reps=5):
        fn()
        ts = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        return min(ts)

    print(f"\n## Where an epoch's time goes: {n} Frappe-shaped rows, d={d}, batch {B}, Adam "
          "(best of 5)")
    print(f"{'threads':>7} {'gather':>8} {'forward':>8} {'transp.':>8} {'grad+upd':>9} "
          f"{'sum':>7} {'train_epoch':>11} {'plain SGD':>9}")
    for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
        numba.set_num_threads(threads)
        T = rng.normal(0, 0.01, (X.shape[1], d + 1)).astype(np.float32)
        w0 = np.zeros(1)
        stT = np.zeros((2,) + T.shape, np.float32)
        st0 = np.zeros((2, 1))
        slot = np.full(X.shape[1], -1, np.int32)
        slots = feature_slots(X.shape[1], threads, 3 * T.nbytes)  # as fit's: a lane per thread
        blk = kcsr.gather_rows(src, empty, order)
        ip, ind, dat, yy, ss = blk
        S = np.empty((B, d), np.float32)
        Q = np.empty((B, d), np.float32)
        G = np.empty(B, np.float32)
        L = np.empty(B)
        cap = B * 10
        uniq = np.empty(cap, np.int32)
        cnt = np.empty(cap, np.int64)
        ptr = np.empty(cap + 1, np.int64)
        occ_b = np.empty(cap, np.int32)
        occ_x = np.empty(cap, np.float32)
        GT = np.empty((cap, d + 1), np.float32)
        bad = np.zeros(cap, np.uint8)
        starts = range(0, n, B)
        # into buffers reused from call to call, as the trainer's epochs do
        ip_b = np.empty(len(order) + 1, np.int64)
        ind_b, dat_b = np.empty_like(ind), np.empty_like(dat)
        y_b, sw_b = np.empty_like(yy), np.empty_like(ss)

        def gather():
            kcsr.gather_sizes(src, empty, order, ip_b)
            kcsr.gather_fill(src, empty, order, ip_b, ind_b, dat_b, y_b, sw_b)

        t_gather = best_of(gather)
        t_fwd = best_of(lambda: [kfm.forward_batch(ip, ind, dat, yy, ss, s0, min(B, n - s0), w0,
                                                   T, S, Q, G, L, 0) for s0 in starts])
        tp = kcsr.transposer(ip, B, slots.shape[0], dat)
        t_tr = best_of(lambda: [kcsr.batch_transposed(ip, ind, dat, k, B, slots, tp)
                                for k in range(len(starts))])
        nus = [kcsr.transpose_batch(ip, ind, dat, s0, min(B, n - s0), slot, uniq, cnt, ptr,
                                    occ_b, occ_x) for s0 in starts]
        coef = np.empty(7, np.float32)
        row_coefs(coef, 1e-3, adam_lr(1e-3, 0.9, 0.999, 1), 0.9, 0.999, 1e-8)
        nu = int(np.mean(nus))
        ws = (S, Q, G, L)  # FM's skeleton workspace
        t_upd = best_of(lambda: [skeleton.grads_and_update(kfm.SPEC, ws, nu, uniq, ptr, occ_b,
                                                           occ_x, T, 0.0, GT, stT, ADAM, coef,
                                                           bad) for _ in starts])
        t_epoch = best_of(lambda: skeleton.train_epoch(
            ip, ind, dat, yy, ss, B, w0, T, kfm.NO_H, st0, stT, kfm.NO_STATE_H, ADAM, 1e-3, 0.9,
            0.999, 1e-8, 0, 0, 0.0, slots, kfm.SPEC))
        T2 = T.copy()
        t_plain = best_of(lambda: plain_sgd_epoch(ip, ind, dat, yy, w0.copy(), T2, 1e-3))
        tot = t_gather + t_fwd + t_tr + t_upd
        print(f"{threads:7d} {t_gather:8.4f} {t_fwd:8.4f} {t_tr:8.4f} {t_upd:9.4f} {tot:7.4f} "
              f"{t_epoch:11.4f} {t_plain:9.4f}", flush=True)
    print("(gather runs once per epoch before train_epoch; grad+upd timed with the mean number "
          f"of unique features per batch, {nu}; plain SGD is single-threaded by nature)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--part", default="all",
                    choices=["scale", "breakdown", "features", "threads", "all"])
    ap.add_argument("--n-jobs", type=int, default=None)
    args = ap.parse_args(argv)
    if args.part in ("breakdown", "all"):
        part_breakdown(args.quick)
    if args.part in ("scale", "all"):
        part_scale(args.quick, args.n_jobs)
    if args.part in ("features", "all"):
        part_features(args.quick, args.n_jobs)
    if args.part in ("threads", "all"):
        part_threads(args.quick)


if __name__ == "__main__":
    main()
