"""Peak memory of ``fit`` for FM, CopyFM, MixFM and SMFM on the 200,000-row synthetic Frappe-shaped
data (d=64, batch 2048, p=10, mix_ratio=1).

Each method runs in a fresh child process (so peaks do not mix): the child builds the data, warms
the JIT on a tiny fit, records its peak RSS so far ("before fit"), fits for ``--epochs`` epochs and
reports its peak RSS again.  Printed: both peaks, the growth during fit, and each method's peak as a
ratio of FM's.  Usage: python benchmarks/bench_memory.py [--rows 200000] [--epochs 2]
"""
import argparse
import json
import resource
import subprocess
import sys
import warnings

METHODS = {"FM": None, "CopyFM": "copy", "MixFM": "mix", "SMFM": "saliency"}


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def child(method, rows, epochs, n_jobs):
    import numpy as np
    from sklearn.exceptions import ConvergenceWarning

    from skfm import FMClassifier
    from skfm.datasets import make_frappe_like

    warnings.simplefilter("ignore", ConvergenceWarning)
    X, y = make_frappe_like(rows, random_state=0, dtype=np.float32)
    kw = dict(n_factors=64, learning_rate_init=1e-3, batch_size=2048, n_candidates=10,
              mix_ratio=1.0, augmentation=METHODS[method], random_state=0, n_jobs=n_jobs,
              early_stopping=False)
    FMClassifier(**dict(kw, max_iter=1)).fit(X[:3000], y[:3000])  # JIT warm-up
    before = peak_mb()
    FMClassifier(**dict(kw, max_iter=epochs)).fit(X, y)
    print(json.dumps({"method": method, "before_mb": before, "peak_mb": peak_mb(),
                      "data_mb": (X.data.nbytes + X.indices.nbytes + X.indptr.nbytes) / 2**20}))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--n-jobs", type=int, default=None)
    ap.add_argument("--child", choices=list(METHODS), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child(args.child, args.rows, args.epochs, args.n_jobs)

    res = {}
    for m in METHODS:
        cmd = [sys.executable, __file__, "--child", m, "--rows", str(args.rows), "--epochs",
               str(args.epochs)] + (["--n-jobs", str(args.n_jobs)] if args.n_jobs else [])
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        res[m] = json.loads(out.strip().splitlines()[-1])
    fm = res["FM"]["peak_mb"]
    print(f"# peak RSS of fit, {args.rows} rows x 10 one-hot fields (data "
          f"{res['FM']['data_mb']:.1f} MB as CSR float32), d=64, batch 2048, p=10, "
          f"{args.epochs} epochs")
    print(f"{'method':<8} {'before fit MB':>14} {'peak MB':>9} {'fit adds MB':>12} {'peak / FM':>10}")
    for m, r in res.items():
        print(f"{m:<8} {r['before_mb']:14.1f} {r['peak_mb']:9.1f} "
              f"{r['peak_mb'] - r['before_mb']:12.1f} {r['peak_mb'] / fm:10.2f}")


if __name__ == "__main__":
    main()
