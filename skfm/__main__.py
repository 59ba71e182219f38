"""``python -m skfm``: the demo job.

Trains FM, CopyFM, MixFM and SMFM on synthetic data in which the test rows pair users and items
that never met in training (:func:`skfm.datasets.make_unseen_pairs`) and prints a table of test
ROC AUC, log-loss and fit seconds.  All four use the same settings and the same number of epochs
(the paper's protocol); the augmented methods therefore take twice as many optimizer steps, and a
last row gives FM that many steps too.
"""
import argparse
import time
import warnings

from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import log_loss, roc_auc_score

from . import FMClassifier
from .datasets import make_unseen_pairs
from .datasets._synthetic import fm_output

# (name, augmentation, epochs multiplier): "FM, 2x epochs" takes as many optimizer steps as the
# augmented methods (which train on 2n rows per epoch), the fair baseline for their gains.
METHODS = (("FM", None, 1), ("CopyFM", "copy", 1), ("MixFM", "mix", 1), ("SMFM", "saliency", 1),
           ("FM, 2x epochs", None, 2))


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m skfm", description=__doc__.splitlines()[2])
    ap.add_argument("--seed", type=int, default=0, help="data and model seed")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--n-factors", type=int, default=16)
    ap.add_argument("--n-jobs", type=int, default=None)
    args = ap.parse_args(argv)

    X_tr, X_te, y_tr, y_te, truth = make_unseen_pairs(random_state=args.seed, return_params=True)
    print(f"skfm demo: {X_tr.shape[0]} training rows, {X_te.shape[0]} test rows, "
          f"{X_tr.shape[1]} one-hot features; every test row pairs a user and an item never "
          f"seen together in training.")
    print(f"settings: n_factors={args.n_factors}, Adam lr=1e-3, batch 256, {args.epochs} epochs, "
          f"seed {args.seed}; planted model's own test AUC: "
          f"{roc_auc_score(y_te, fm_output(X_te, truth)):.4f}\n")
    print("preparing skfm's Numba kernels: the first run on a machine compiles them (tens of "
          "seconds), later runs load them from the on-disk cache ...", end=" ", flush=True)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _, aug, _ in METHODS:  # the same kernels and types as the timed fits below
            FMClassifier(n_factors=args.n_factors, learning_rate_init=1e-3, batch_size=256,
                         max_iter=1, augmentation=aug, random_state=args.seed,
                         n_jobs=args.n_jobs).fit(X_tr[:300], y_tr[:300]).predict_proba(X_te[:10])
    print(f"ready in {time.perf_counter() - t0:.1f} s\n")
    print(f"{'method':<14} {'augmentation':<13} {'epochs':>6} {'steps':>6} {'ROC AUC':>8} "
          f"{'log-loss':>9} {'fit s':>7}")
    for name, aug, mult in METHODS:
        epochs = mult * args.epochs
        est = FMClassifier(n_factors=args.n_factors, learning_rate_init=1e-3, batch_size=256,
                           max_iter=epochs, tol=0.0, n_iter_no_change=epochs,
                           augmentation=aug, random_state=args.seed, n_jobs=args.n_jobs)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(X_tr, y_tr)
        seconds = time.perf_counter() - t0
        p = est.predict_proba(X_te)[:, 1]
        print(f"{name:<14} {aug!s:<13} {epochs:6d} {est.t_:6d} {roc_auc_score(y_te, p):8.4f} "
              f"{log_loss(y_te, p):9.4f} {seconds:7.2f}")
    print("\nThe augmented methods train on 2n rows per epoch, so at equal epochs they take twice "
          "FM's optimizer steps;\n'FM, 2x epochs' is FM at the same number of steps.  fit "
          "seconds exclude the compilation above.")


if __name__ == "__main__":
    main()
