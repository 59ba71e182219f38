"""skfm's FM (or FFM) against xLearn's on Frappe, seconds per training epoch, same machine and
threads, alternating in one run.

    USER=$(whoami) pip install xlearn     # builds from source; never a dependency of skfm
    python benchmarks/bench_vs_xlearn.py                          # FM, 1 and 2 threads
    python benchmarks/bench_vs_xlearn.py --model ffm              # FFM (k=4, libFFM's)
    python benchmarks/bench_vs_xlearn.py --xlearn-python /path/to/venv/bin/python

``--model ffm`` compares skfm's ``FFMClassifier`` with xLearn's FFM (``create_ffm``, the same
lock-free AdaGrad), both given the same fields: the ones ``fields="auto"`` infers on Frappe's
training split (10 fields), written into libFFM files for xLearn and passed to skfm explicitly.

xLearn (C++; FM by lock-free, one-row-at-a-time AdaGrad) runs as a subprocess, in the Python
given by ``--xlearn-python`` (xLearn may live in its own virtual environment), and reads libFM
text files: the script decompresses Frappe's two splits into a temporary folder outside the
repository and deletes it at the end.  xLearn's epoch is the marginal [fit(1+K) - fit(1)] / K,
which leaves out reading the file (from the binary cache that an untimed first fit writes), as
skfm's leaves out validation and setup.  skfm's FM runs with Adam (the issue's settings: batch
2048, lr 1e-3) and with AdaGrad (batch 2048, lr 0.05), timed the same way.  Each figure is the
best of --repeat, the two libraries alternating.  Both: d=64, no L2, logistic loss; xLearn's own
defaults otherwise (lr 0.2, init 0.66/sqrt(k)).  Test AUC after 1+K epochs: a sanity check only.
"""
import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

_DRIVER = textwrap.dedent("""
    import json, sys, time
    import xlearn as xl
    train, test, out, threads, epochs, k, model = sys.argv[1:8]

    def fit(ep):
        m = xl.create_ffm() if model == "ffm" else xl.create_fm()
        m.setTrain(train)
        m.setQuiet()
        m.disableEarlyStop()
        t0 = time.perf_counter()
        m.fit({"task": "binary", "lambda": 0.0, "k": int(k), "epoch": ep, "opt": "adagrad",
               "nthread": int(threads)}, out + ".model")
        return time.perf_counter() - t0, m

    fit(1)  # writes xLearn's binary cache of the training file, which the two timed fits read
    t1, _ = fit(1)
    tk, m = fit(1 + int(epochs))
    m.setTest(test)
    m.setSigmoid()
    m.predict(out + ".model", out + ".pred")
    with open(out + ".pred") as fh:
        p = [float(v) for v in fh.read().split()]
    with open(out + ".json", "w") as fh:  # not stdout: xLearn's own log goes there
        json.dump({"fit1": t1, "fitk": tk, "pred": p}, fh)
""")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--epochs", type=int, default=3, help="K of [fit(1+K) - fit(1)] / K")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--model", choices=["fm", "ffm"], default="fm")
    ap.add_argument("--dim", type=int, default=None,
                    help="factors per latent vector (default: 64 for fm, 4 for ffm)")
    ap.add_argument("--frappe-dir", default=None)
    ap.add_argument("--xlearn-python", default=sys.executable,
                    help="a Python that can import xlearn (default: this one)")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per xLearn run")
    ap.add_argument("--json", metavar="PATH")
    a = ap.parse_args(argv)
    if a.dim is None:
        a.dim = 64 if a.model == "fm" else 4
    return a


def xlearn_available(python):
    env = dict(os.environ, USER=os.environ.get("USER") or "bench")
    r = subprocess.run([python, "-c", "import xlearn"], capture_output=True, text=True, env=env)
    return r.returncode == 0, (r.stderr.strip().splitlines() or [""])[-1]


def run_xlearn(a, tmp, threads):
    # xLearn reads $USER at start-up and aborts without it
    env = dict(os.environ, USER=os.environ.get("USER") or "bench")
    r = subprocess.run([a.xlearn_python, "-c", _DRIVER, os.path.join(tmp, "train.libfm"),
                        os.path.join(tmp, "test.libfm"), os.path.join(tmp, f"xl{threads}"),
                        str(threads), str(a.epochs), str(a.dim), a.model],
                       capture_output=True, text=True, timeout=a.timeout, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"xLearn failed (exit {r.returncode}):\n{r.stderr[-2000:]}")
    with open(os.path.join(tmp, f"xl{threads}.json")) as fh:
        return json.load(fh)


def skfm_estimator(a, solver, threads, epochs, fields=None):
    import skfm
    lr = 1e-3 if solver == "adam" else 0.05
    kw = {} if a.model == "fm" else {"fields": fields}
    cls = skfm.FMClassifier if a.model == "fm" else skfm.FFMClassifier
    return cls(n_factors=a.dim, solver=solver, learning_rate_init=lr,
               batch_size=2048, max_iter=epochs, tol=0.0,
               n_iter_no_change=epochs + 1, alpha=0.0, init_std=0.01,
               early_stopping=False, random_state=0, n_jobs=threads, **kw)


def write_libffm(path, X, y, fields):
    """Rows of CSR ``X`` as libFFM lines ``label field:feature:value`` (labels 0/1)."""
    with open(path, "w") as fh:
        for i in range(X.shape[0]):
            lo, hi = X.indptr[i], X.indptr[i + 1]
            toks = (f"{fields[j]}:{j}:{v:g}" for j, v in zip(X.indices[lo:hi], X.data[lo:hi]))
            fh.write(f"{int(y[i] > 0)} {' '.join(toks)}\n")


def main(argv=None):
    a = parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)
    skfm, info = C.start_comparison(f"skfm vs xLearn, {a.model.upper()} on Frappe "
                                    "(benchmarks/bench_vs_xlearn.py)",
                                    max(a.threads))
    import numpy as np
    from sklearn.metrics import roc_auc_score
    result = {"machine": info, "args": vars(a), "runs": []}
    paths = C.find_frappe(a.frappe_dir)
    if paths is None:
        print(f"Frappe not found in {a.frappe_dir or C.DEFAULT_FRAPPE_DIR}: nothing to compare.")
        return result
    ok, why = xlearn_available(a.xlearn_python)
    if not ok:
        print(f"xLearn cannot be imported by {a.xlearn_python} ({why}); install it with "
              "`USER=$(whoami) pip install xlearn` or pass --xlearn-python.")
        return result
    Xtr, ytr, Xte, yte = C.load_frappe(paths)
    K = a.epochs
    tmp = tempfile.mkdtemp(prefix="skfm-bench-xlearn-")
    try:
        fields = None
        if a.model == "fm":
            for src, name in zip(paths, ("train.libfm", "test.libfm")):
                with gzip.open(src, "rb") as fi, open(os.path.join(tmp, name), "wb") as fo:
                    shutil.copyfileobj(fi, fo)
        else:  # the fields FFMClassifier(fields="auto") would infer, given to both
            from skfm._fields import infer_fields
            fields = infer_fields(Xtr)
            print(f"fields: {int(fields.max()) + 1} inferred on the training split")
            write_libffm(os.path.join(tmp, "train.libfm"), Xtr, ytr, fields)
            write_libffm(os.path.join(tmp, "test.libfm"), Xte, yte, fields)
        for nt in a.threads:  # compile / load skfm's kernels outside the timings
            skfm_estimator(a, "adam", nt, 1, fields).fit(Xtr[:2000], ytr[:2000])
            skfm_estimator(a, "adagrad", nt, 1, fields).fit(Xtr[:2000], ytr[:2000])
        for nt in a.threads:
            best = {"xlearn": None, "adam": None, "adagrad": None}
            auc = {}
            for _ in range(a.repeat):
                x = run_xlearn(a, tmp, nt)
                e = (x["fitk"] - x["fit1"]) / K
                best["xlearn"] = e if best["xlearn"] is None else min(best["xlearn"], e)
                auc["xlearn"] = roc_auc_score(yte, np.asarray(x["pred"]))
                for solver in ("adam", "adagrad"):
                    with C.Timer() as t1:
                        skfm_estimator(a, solver, nt, 1, fields).fit(Xtr, ytr)
                    with C.Timer() as tk:
                        clf = skfm_estimator(a, solver, nt, 1 + K, fields).fit(Xtr, ytr)
                    e = (tk.wall - t1.wall) / K
                    best[solver] = e if best[solver] is None else min(best[solver], e)
                    auc[solver] = roc_auc_score(yte, clf.decision_function(Xte))
            result["runs"].append({"threads": nt, "xlearn_s": best["xlearn"],
                                   "adam_s": best["adam"], "adagrad_s": best["adagrad"],
                                   "xlearn_auc": auc["xlearn"], "adam_auc": auc["adam"],
                                   "adagrad_auc": auc["adagrad"],
                                   "ratio_adam": best["xlearn"] / best["adam"],
                                   "ratio_adagrad": best["xlearn"] / best["adagrad"]})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{a.model.upper()}: seconds per epoch on Frappe ({Xtr.shape[0]:,} training rows), "
          f"k={a.dim}, "
          f"[fit(1+{K}) - fit(1)] / {K}, best of {a.repeat}; xLearn/skfm > 1: skfm is faster; "
          f"AUC on the test split after {1 + K} epochs")
    print(C.table([("threads", "threads", ""), ("xLearn s/epoch", "xlearn_s", ".4f"),
                   ("skfm adam s/epoch", "adam_s", ".4f"),
                   ("skfm adagrad s/epoch", "adagrad_s", ".4f"),
                   ("xLearn/skfm adam", "ratio_adam", ".1f"),
                   ("xLearn/skfm adagrad", "ratio_adagrad", ".1f"),
                   ("xLearn AUC", "xlearn_auc", ".4f"), ("skfm adam AUC", "adam_auc", ".4f"),
                   ("skfm adagrad AUC", "adagrad_auc", ".4f")], result["runs"]))
    la = C.loadavg()
    print(f"load average after (1/5/15 min): {la[0]:.2f} {la[1]:.2f} {la[2]:.2f}")
    if a.json:
        C.write_json(a.json, result)
        print(f"wrote {a.json}")
    return result


if __name__ == "__main__":
    main()
