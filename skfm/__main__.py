"""``python -m skfm``: the demo job.

Fits ``FMClassifier()``, ``MixFMClassifier()`` and ``SMFMClassifier()`` with their defaults, beside
``LogisticRegression()``, on synthetic data of Frappe's shape in which every test row pairs a
user and an item never seen together in training, and prints a table of test ROC AUC, log-loss,
epochs and fit seconds.  The data (:func:`skfm.datasets.make_unseen_pairs`): 10 one-hot fields
(1,000 users, 2,000 items and Frappe's eight context fields, 3,343 features), Zipf-like value
popularity (most users and items are rare), labels from a planted factorization machine.
"""
import argparse
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score

from . import FMClassifier, MixFMClassifier, SMFMClassifier
from .datasets import make_unseen_pairs
from .datasets._synthetic import FRAPPE_FIELD_SIZES, fm_output

METHODS = (("FM", FMClassifier), ("MixFM", MixFMClassifier), ("SMFM", SMFMClassifier))

#: the demo's data: Frappe's ten fields, its user and item fields at 1,000 and 2,000 values
DATA = dict(n_train=20000, n_test=5000, n_users=1000, n_items=2000,
            context_sizes=FRAPPE_FIELD_SIZES[2:], skew=1.0)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m skfm", description=__doc__.splitlines()[2])
    ap.add_argument("--seed", type=int, default=0, help="data and model seed")
    ap.add_argument("--n-jobs", type=int, default=None)
    ap.add_argument("--max-iter", type=int, default=None,
                    help="cap the epochs (default: the estimators' own max_iter)")
    args = ap.parse_args(argv)
    extra = {} if args.max_iter is None else {"max_iter": args.max_iter}

    X_tr, X_te, y_tr, y_te, truth = make_unseen_pairs(**DATA, random_state=args.seed,
                                                      return_params=True)
    print(f"skfm demo: {X_tr.shape[0]:,} training rows, {X_te.shape[0]:,} test rows, "
          f"{X_tr.shape[1]:,} one-hot features in 10 fields (1,000 users, 2,000 items, 8 context "
          f"fields), most users and items rare;\nevery test row pairs a user and an item never "
          f"seen together in training.  Planted model's own test AUC: "
          f"{roc_auc_score(y_te, fm_output(X_te, truth)):.4f}.")
    print("Every estimator runs with its defaults (random_state aside).\n")
    print("preparing skfm's Numba kernels: the first run on a machine compiles them (tens of "
          "seconds), later runs load them from the on-disk cache ...", end=" ", flush=True)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _, Est in METHODS:  # the same kernels and types as the timed fits below
            Est(max_iter=1, random_state=args.seed, n_jobs=args.n_jobs).fit(
                X_tr[:300], y_tr[:300]).predict_proba(X_te[:10])
    print(f"ready in {time.perf_counter() - t0:.1f} s\n")

    print(f"{'estimator':<22} {'ROC AUC':>8} {'log-loss':>9} {'epochs':>7} {'fit s':>7}")
    rows = []
    t0 = time.perf_counter()
    with warnings.catch_warnings():  # lbfgs stops at its max_iter=100 on this data
        warnings.simplefilter("ignore", ConvergenceWarning)
        lr = LogisticRegression().fit(X_tr, y_tr)
    seconds = time.perf_counter() - t0
    p = lr.predict_proba(X_te)[:, 1]
    print(f"{'LogisticRegression()':<22} {roc_auc_score(y_te, p):8.4f} {log_loss(y_te, p):9.4f} "
          f"{'':>7} {seconds:7.2f}")
    for name, Est in METHODS:
        est = Est(random_state=args.seed, n_jobs=args.n_jobs, **extra)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(X_tr, y_tr)
        seconds = time.perf_counter() - t0
        p = est.predict_proba(X_te)[:, 1]
        auc = roc_auc_score(y_te, p)
        rows.append((name, auc))
        print(f"{Est.__name__ + '()':<22} {auc:8.4f} {log_loss(y_te, p):9.4f} {est.n_iter_:7d} "
              f"{seconds:7.2f}")
    best = max(rows, key=lambda r: r[1])
    auc = dict(rows)
    print(f"\nBest test AUC here: {best[0]}.  SMFM - FM = {auc['SMFM'] - auc['FM']:+.4f}, "
          f"MixFM - FM = {auc['MixFM'] - auc['FM']:+.4f}.")
    print("Early stopping (on by default above 1,000 rows) chose the epochs; fit seconds exclude "
          "the compilation above.\nThe labels here come from a factorization machine, the model "
          "FM fits exactly; for the methods on real\ndata (Frappe) and on a suite of other sets, "
          "see benchmarks/README.md.")
    return np.array([r[1] for r in rows])


if __name__ == "__main__":
    main()
