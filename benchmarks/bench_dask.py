"""skfm.dask.DataParallel on a local dask.distributed cluster against the same estimator fitted
in memory for the same epochs: test AUC, fit time, and where a data-parallel epoch's time goes.

    pip install ".[bench,dask]"
    python benchmarks/bench_dask.py                         # SMFM on Frappe, 20 epochs, 2 workers
    python benchmarks/bench_dask.py --model fm --epochs 10 --workers 2 --json out.json

Frappe (train on the validation split, test on the test split) is read in place from
../shared/data/frappe (or --frappe-dir); without it, synthetic data of Frappe's shape
(skfm.datasets.make_frappe_like) stands in and the table says so.  The cluster is a
``LocalCluster`` of ``--workers`` worker processes with one thread each; the in-memory fit uses
``--workers`` threads, so both use the same cores.  Both fits pin ``early_stopping=False`` (fixed
epochs) and the same ``random_state``.  Every estimator parameter can be set with ``--set
name=value``.
"""
import argparse
import ast
import os
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

MODELS = {"fm": "FMClassifier", "mixfm": "MixFMClassifier", "smfm": "SMFMClassifier",
          "nfm": "NFMClassifier", "afm": "AFMClassifier", "deepfm": "DeepFMClassifier",
          "dcn": "DCNClassifier"}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=sorted(MODELS), default="smfm")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--block-rows", type=int, default=10_000,
                    help="rows per block of the dask array (default 10000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="an estimator parameter (Python literal), e.g. --set n_factors=32")
    ap.add_argument("--frappe-dir", default=None)
    ap.add_argument("--json", metavar="PATH")
    return ap.parse_args(argv)


def main(argv=None):
    a = parse_args(argv)
    C.use_checkout()
    import numpy as np
    import dask.array as da
    from distributed import Client, LocalCluster
    from sklearn.metrics import roc_auc_score

    import skfm
    from skfm.dask import DataParallel

    info = C.machine_info()
    for line in C.header_lines(info, skfm):
        print(line)
    paths = C.find_frappe(a.frappe_dir)
    if paths:
        Xtr, ytr, Xte, yte = C.load_frappe(paths)
        data = "Frappe (train: validation split, test: test split)"
    else:
        from skfm.datasets import make_frappe_like
        Xtr, ytr = make_frappe_like(57_722, random_state=a.seed)[:2]
        Xte, yte = make_frappe_like(28_860, random_state=a.seed + 1)[:2]
        data = "synthetic Frappe-shaped data (Frappe not found)"
    params = dict(max_iter=a.epochs, early_stopping=False, random_state=a.seed)
    for item in a.set:
        name, _, value = item.partition("=")
        params[name] = ast.literal_eval(value)
    Est = getattr(skfm, MODELS[a.model])
    print(f"data: {data}, {Xtr.shape[0]:,} training rows, {Xte.shape[0]:,} test rows")
    print(f"estimator: {MODELS[a.model]}({', '.join(f'{k}={v!r}' for k, v in params.items())})")

    # warm the kernels in this process (the workers load them from numba's cache)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Est(**dict(params, max_iter=1)).fit(Xtr[:2000], ytr[:2000])

    t0 = time.perf_counter()
    mem = Est(**params, n_jobs=a.workers).fit(Xtr, ytr)
    mem_s = time.perf_counter() - t0
    auc_mem = roc_auc_score(yte, mem.predict_proba(Xte)[:, 1])
    print(f"in memory: test AUC {auc_mem:.4f}, {mem_s:.1f} s", flush=True)

    with LocalCluster(n_workers=a.workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster):
        dX = da.from_array(Xtr, chunks=(a.block_rows, Xtr.shape[1]), asarray=False)
        dy = da.from_array(ytr, chunks=a.block_rows)
        # warm the workers' kernels (numba's cache) on a short fit, not timed
        DataParallel(Est(**dict(params, max_iter=1))).fit(dX[:4000], dy[:4000])
        t0 = time.perf_counter()
        dp = DataParallel(Est(**params)).fit(dX, dy)
        dp_s = time.perf_counter() - t0
        auc_dp = roc_auc_score(yte, dp.predict_proba(Xte)[:, 1])
        print(f"DataParallel: test AUC {auc_dp:.4f}, {dp_s:.1f} s", flush=True)

    st = dp.epoch_stats_
    med = {k: float(np.median([s[k] for s in st])) for k in st[0]}
    rows = [{"fit": "in memory", "res": f"{a.workers} threads", "auc": auc_mem, "fit_s": mem_s,
             "epoch_s": mem_s / a.epochs},
            {"fit": "DataParallel", "res": f"{a.workers} workers x 1 thread", "auc": auc_dp,
             "fit_s": dp_s, "epoch_s": med["seconds"], "shard_s": med["train_seconds"],
             "mix_s": med["mix_seconds"],
             "other_s": med["seconds"] - med["train_seconds"] - med["mix_seconds"],
             "mib": (med["bytes_out"] + med["bytes_in"]) / 2**20}]
    print()
    print(C.table([("fit", "fit", ""), ("resources", "res", ""), ("test AUC", "auc", ".4f"),
                   ("fit s", "fit_s", ".1f"), ("epoch s", "epoch_s", ".3f"),
                   ("slowest shard s", "shard_s", ".3f"), ("mixing s", "mix_s", ".3f"),
                   ("other s", "other_s", ".3f"), ("MiB moved/epoch", "mib", ".1f")], rows))
    print(f"\nDataParallel - in memory: {auc_dp - auc_mem:+.4f} test AUC "
          f"({dp.n_shards_} shards, {a.epochs} epochs).  Epoch s: medians over the epochs; "
          f"'other' = scheduling, sending the model to the workers and back, (un)pickling.")
    if a.json:
        C.write_json(a.json, {"machine": info, "args": vars(a), "params": params,
                              "auc_memory": auc_mem, "auc_dataparallel": auc_dp,
                              "fit_s_memory": mem_s, "fit_s_dataparallel": dp_s,
                              "epoch_stats": st, "data": data})


if __name__ == "__main__":
    main()
