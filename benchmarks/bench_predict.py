"""Prediction speed: skfm's whole decision_function call (input validation included) against
its compiled kernel alone and against a plain Numba forward loop, on the same canonical rows,
in one run.

    python benchmarks/bench_predict.py                   # 1,000,000 rows, 1 and 2 threads
    python benchmarks/bench_predict.py --rows 200000 --threads 2 --repeat 5

The rows are Frappe-shaped (skfm.datasets.make_frappe_like: 10 one-hot fields, 5,382 features),
float32, canonical CSR (sorted indices, no duplicates, no stored zeros, int32 indices): the input
a user who prepared the data once passes.  The model is an FMClassifier (d = --n-factors)
trained one epoch on the first 20,000 rows.  Timed, the fastest of --repeat rounds in which each
kind is called once, in turn:

- plain: a plain parallel Numba loop over the rows (w0 + sum_i w_i x_i + 1/2 sum_f (s_f^2 -
  q_f)), reading the CSR arrays as they are, no checks: the ceiling;
- kernel: skfm's compiled forward on already-validated rows (the model core's decision);
- decision_function, predict_proba: the whole public call (scikit-learn's validate_data, the
  structure, finiteness and canonical-form check, the kernel, the finite-output check);
- validation: to_csr_data alone (the structure / finiteness / canonical-form pass).

The figure the issue asks for is decision_function's rows/s as a fraction of plain's.
"""
import argparse
import os
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeat", type=int, default=9,
                    help="rounds of calls (each kind once a round, in turn); the fastest call of "
                         "each kind is reported (default 9)")
    ap.add_argument("--n-factors", type=int, default=64)
    ap.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    return ap.parse_args(argv)


def plain_forward():
    """The plain Numba forward loop (compiled on first call)."""
    import numpy as np
    from numba import njit, prange

    @njit(parallel=True, fastmath=True, cache=False)
    def forward(indptr, indices, data, w0, T, out):
        n = indptr.shape[0] - 1
        d = T.shape[1] - 1
        chunk = 1024
        for c in prange((n + chunk - 1) // chunk):
            s = np.empty(d)  # scratch per chunk of rows
            for r in range(c * chunk, min(n, (c + 1) * chunk)):
                s[:] = 0.0
                lin = 0.0
                q = 0.0
                for p in range(indptr[r], indptr[r + 1]):
                    j = indices[p]
                    x = data[p]
                    lin += T[j, 0] * x
                    for f in range(d):
                        v = T[j, 1 + f] * x
                        s[f] += v
                        q += v * v
                acc = 0.0
                for f in range(d):
                    acc += s[f] * s[f]
                out[r] = w0 + lin + 0.5 * (acc - q)

    return forward


def best_of_rounds(fns, repeat):
    """{name: the fastest of ``repeat`` calls}, the calls of every function taking turns in
    each round (so a busy spell of the machine slows them all alike)."""
    ts = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            ts[name].append(time.perf_counter() - t0)
    return {name: min(v) for name, v in ts.items()}


def main(argv=None):
    a = parse_args(argv)
    skfm, info = C.start_comparison("prediction: the whole call against the kernel and a plain "
                                    "Numba forward loop", max(a.threads))
    import numba
    import numpy as np

    from skfm import FMClassifier
    from skfm._base import to_csr_data
    from skfm.datasets import make_frappe_like

    X, y = make_frappe_like(a.rows, dtype=np.float32, random_state=0)
    assert X.has_canonical_format and X.indices.dtype == np.int32
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = FMClassifier(n_factors=a.n_factors, max_iter=1, early_stopping=False,
                           random_state=0).fit(X[:20_000], y[:20_000])
    params = est._params[0]
    w0, T = float(params["w0"][0]), params["T"]
    core = est._make_core()
    Xc = to_csr_data(X, est._dtype)
    forward = plain_forward()
    out = np.empty(X.shape[0])
    print(f"rows: {X.shape[0]:,} x {X.shape[1]:,} features, {X.nnz / X.shape[0]:.0f} nonzeros "
          f"a row, float32, canonical CSR; FMClassifier d={a.n_factors}; best of {a.repeat} "
          f"rounds")
    rows = []
    for threads in a.threads:
        numba.set_num_threads(threads)
        est.set_params(n_jobs=threads)
        forward(X.indptr, X.indices, X.data, w0, T, out)  # compile, warm up
        ref = est.decision_function(X)
        np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)  # the same model output
        core.decision(params, Xc)
        est.predict_proba(X[:10])
        t = best_of_rounds({
            "plain": lambda: forward(X.indptr, X.indices, X.data, w0, T, out),
            "kernel": lambda: core.decision(params, Xc),
            "validation": lambda: to_csr_data(X, est._dtype),
            "decision_function": lambda: est.decision_function(X),
            "predict_proba": lambda: est.predict_proba(X),
        }, a.repeat)
        r = {"threads": threads, **{k + "_s": v for k, v in t.items()}}
        for k, v in t.items():
            r[k + "_rows_per_s"] = X.shape[0] / v
        r["call_vs_plain"] = t["plain"] / t["decision_function"]
        r["call_vs_kernel"] = t["kernel"] / t["decision_function"]
        r["kernel_vs_plain"] = t["plain"] / t["kernel"]
        rows.append(r)
    print(C.table([("threads", "threads", ""), ("plain s", "plain_s", ".4f"),
                   ("kernel s", "kernel_s", ".4f"), ("to_csr_data s", "validation_s", ".4f"),
                   ("decision_function s", "decision_function_s", ".4f"),
                   ("predict_proba s", "predict_proba_s", ".4f"),
                   ("decision_function rows/s", "decision_function_rows_per_s", ",.0f"),
                   ("call / plain", "call_vs_plain", ".2f"),
                   ("call / kernel", "call_vs_kernel", ".2f"),
                   ("kernel / plain", "kernel_vs_plain", ".2f")], rows))
    print("call / plain: decision_function's rows/s as a fraction of the plain loop's (target "
          ">= 0.80); call / kernel: the same against skfm's kernel alone")
    if a.json:
        C.write_json(a.json, {"info": info, "rows": rows})


if __name__ == "__main__":
    main()
