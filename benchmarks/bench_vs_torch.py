"""skfm against the PyTorch reference (../shared/bench/torch_ref.py) on Frappe: seconds per
training epoch of plain FM, CopyFM, MixFM and SMFM (and of the same methods on NFM, AFM,
DeepFM and DCN with ``--models``; FFM too, skfm only), same data, settings and thread counts, in
one run.

    pip install torch==2.13.0        # for this script only: never a dependency of skfm
    python benchmarks/bench_vs_torch.py                      # fm copy mix sm, 1 and 2 threads
    python benchmarks/bench_vs_torch.py --methods fm sm --threads 2 --json out.json
    python benchmarks/bench_vs_torch.py --quick              # fm and sm, 1 epoch, max threads
    python benchmarks/bench_vs_torch.py --models fm nfm afm --methods fm sm --threads 2

torch_ref.py runs as a subprocess (torch is never imported here, so its OpenMP runtime cannot
meet numba's in one process); skfm runs in this process.  For every (threads, method) pair the
two run back to back, so both see the same machine load.

Figures.  torch: ``mean_epoch_s`` as torch_ref.py prints it (epoch-data generation - copy, mix,
saliency selection - plus the minibatch loop; its per-epoch test evaluation and setup are left
out).  skfm: the marginal epoch [fit(max_iter=1+K) - fit(max_iter=1)] / K, best of --repeat, which
likewise covers augmentation plus training and leaves out setup.  ratio =
torch / skfm (> 1: skfm is faster).  Test AUC after the last epoch of each is shown as a sanity
check only: the optimizers differ (torch: dense Adam on every row; skfm: lazy Adam on the rows a
batch touches) and so do the random streams.

Settings shared by both: d=64, Adam, lr 1e-3, batch 2048, init N(0, 0.01), no L2 (skfm
alpha=0, torch has none), mixup lam = max(l, 1-l), l ~ Beta(0.5, 0.5), one augmented row per
original row (mix_ratio=1), SMFM with 10 candidates.  NFM: one hidden layer of 64 ReLU units, no
dropout, no batch norm (torch_ref's defaults).  AFM: attention factor 64, no dropout, no L2 on
the attention weights.  DeepFM: two hidden layers of 64 ReLU units, no dropout (torch_ref's
defaults), fields inferred by ``fields="auto"`` (Frappe's 10 one-hot fields, as torch_ref's).
DCN: two cross layers beside DeepFM's tower, no dropout, no batch norm (torch_ref's defaults).
FFM (skfm only: torch_ref has none): 4 factors per (feature, field), libFFM's k, not --dim.
IFM: attention factor 64, 26 field factors, tau 10, no dropout (torch_ref's IFM options).
Maxup ("max"): 4 mixed neighbours per row (``--maxup-m``, torch_ref's default).
"""
import argparse
import importlib.util
import itertools
import os
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

METHODS = {  # torch_ref --method -> skfm augmentation
    "fm": None,
    "copy": "copy",
    "mix": "mix",
    "sm": "saliency",
    "max": "max",
}
DEFAULT_EPOCHS = {"fm": 3, "copy": 2, "mix": 2, "sm": 2, "max": 2}
MODELS = {  # torch_ref --model -> (skfm model, its model options)
    "fm": ("FM", {}),
    "nfm": ("NFM", {"hidden_layer_sizes": (64,), "activation": "relu", "dropout_bi": 0.0,
                    "dropout_hidden": 0.0, "batch_norm": False}),
    "afm": ("AFM", {"attention_factor": 64, "dropout": 0.0, "attention_alpha": 0.0}),
    "deepfm": ("DeepFM", {"hidden_layer_sizes": (64, 64), "activation": "relu", "dropout": 0.0,
                          "batch_norm": False}),
    "dcn": ("DCN", {"n_cross_layers": 2, "hidden_layer_sizes": (64, 64), "activation": "relu",
                    "dropout": 0.0, "batch_norm": False}),
    # skfm only (torch_ref has no FFM): libFFM's k = 4 factors per (feature, field), fields
    # inferred by fields="auto"
    "ffm": ("FFM", {"n_factors": 4}),
    "ifm": ("IFM", {"attention_factor": 64, "n_field_factors": 26, "tau": 10.0, "dropout": 0.0,
                    "attention_alpha": 0.0, "field_alpha": 0.0}),
}
#: the --models that torch_ref.py has
TORCH_MODELS = ("fm", "nfm", "afm", "deepfm", "dcn", "ifm")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    ap.add_argument("--models", nargs="+", choices=list(MODELS), default=["fm"],
                    help="torch_ref --model values to compare (default: fm)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--epochs", type=int, default=None,
                    help="epochs of every method (default: fm 3, copy/mix/sm 2)")
    ap.add_argument("--skfm-epochs", type=int, default=3,
                    help="K: skfm's epoch time is [fit(1+K) - fit(1)] / K (default 3)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="repetitions of skfm's timing, the fastest is reported (default 3)")
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--batch", type=int, default=2048)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-candidates", type=int, default=10, help="SMFM candidates (torch: 10)")
    ap.add_argument("--maxup-m", type=int, default=4,
                    help="Maxup's mixed neighbours per row (torch_ref --maxup-m; default 4)")
    ap.add_argument("--frappe-dir", default=None,
                    help="Frappe for skfm (default ../shared/data/frappe); torch_ref.py always "
                         "reads the copy beside it, in ../data/frappe")
    ap.add_argument("--torch-ref", default=str(C.DEFAULT_TORCH_REF))
    ap.add_argument("--torch-python", default=sys.executable,
                    help="interpreter for torch_ref.py (default: this one)")
    ap.add_argument("--torch-timeout", type=float, default=1800.0, help="seconds per torch run")
    ap.add_argument("--no-torch", action="store_true", help="skfm only")
    ap.add_argument("--threading-layer", default="default",
                    choices=["default", "omp", "tbb", "workqueue"])
    ap.add_argument("--quick", action="store_true",
                    help="fm and sm, 1 epoch, the largest thread count only")
    ap.add_argument("--quiet-wait", type=float, default=0.0, metavar="S",
                    help="before each run wait up to S seconds for other processes to leave "
                         "the CPU (default 0: do not wait)")
    ap.add_argument("--verbose", action="store_true", help="echo torch_ref.py's output")
    ap.add_argument("--json", metavar="PATH")
    a = ap.parse_args(argv)
    if a.quick:
        a.methods = [m for m in a.methods if m in ("fm", "sm")] or ["fm"]
        a.threads = [max(a.threads)]
        a.epochs = 1
    if a.quick:
        a.repeat, a.skfm_epochs = 1, 1
    if (any(t < 1 for t in a.threads) or (a.epochs is not None and a.epochs < 1)
            or a.repeat < 1 or a.skfm_epochs < 1):
        ap.error("--threads, --epochs, --repeat and --skfm-epochs take positive integers")
    return a


def epochs_of(a, method):
    return a.epochs if a.epochs is not None else DEFAULT_EPOCHS[method]


# ------------------------------------------------------------------------------------ torch
def torch_available(a):
    """(ok, why-not)."""
    if a.no_torch:
        return False, "--no-torch"
    if not os.path.isfile(a.torch_ref):
        return False, f"{a.torch_ref} not found"
    if a.torch_python == sys.executable:
        if importlib.util.find_spec("torch") is None:
            return False, "torch is not installed (pip install torch==2.13.0)"
    return True, ""


_EPOCH_LINE = re.compile(r"^(\d+)\t([\d.]+)\t([\d.]+)\t(\d+)\t([\d.]+|nan)\t([\d.]+|nan|inf)$")


def parse_torch(out):
    """Per-epoch rows and the BEST line of torch_ref.py's output."""
    epochs = []
    res = {}
    for line in out.splitlines():
        m = _EPOCH_LINE.match(line.strip())
        if m:
            epochs.append({"epoch": int(m[1]), "train_s": float(m[2]), "gen_s": float(m[3]),
                           "rows": int(m[4]), "test_auc": float(m[5]),
                           "test_logloss": float(m[6])})
        elif line.startswith("BEST"):
            res.update({k: float(v) for k, v in re.findall(r"(\w+)=([-\d.eE]+)\b", line)
                        if k in ("best_auc", "logloss", "total_train_s", "mean_epoch_s")})
        elif line.startswith("# data="):
            tv = re.search(r"torch=(\S+)", line)
            res["torch_version"] = tv[1] if tv else "?"
    res["epochs"] = epochs
    return res


def run_torch(a, model, method, threads, epochs):
    cmd = [a.torch_python, a.torch_ref, "--data", "frappe", "--model", model, "--method", method,
           "--dim", str(a.dim), "--epochs", str(epochs), "--batch", str(a.batch),
           "--lr", repr(a.lr), "--seed", str(a.seed), "--threads", str(threads)]
    if method == "max":
        cmd += ["--maxup-m", str(a.maxup_m)]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    for k in ("NUMBA_NUM_THREADS", "NUMBA_THREADING_LAYER", "NUMBA_CACHE_DIR"):
        env.pop(k, None)
    timer = C.Timer().__enter__()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, cwd=os.path.dirname(os.path.abspath(a.torch_ref)))
    lines = []
    killer = threading.Timer(a.torch_timeout, proc.kill)
    killer.start()
    try:
        for line in proc.stdout:  # streamed, so --verbose shows progress
            lines.append(line)
            if a.verbose:
                print("    torch| " + line.rstrip(), file=sys.stderr, flush=True)
    finally:
        proc.stdout.close()
        killer.cancel()
    # os.wait4 gives this child's own peak RSS and CPU time (RUSAGE_CHILDREN would mix children)
    _, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    timer.__exit__(None, None, None)
    out = "".join(lines)
    res = parse_torch(out)
    res.update({"cmd": " ".join(cmd), "returncode": proc.returncode, "wall_s": wall,
                "cpu_s": ru.ru_utime + ru.ru_stime,
                "others": timer.others_excluding(ru.ru_utime + ru.ru_stime),
                "peak_rss_mib": ru.ru_maxrss / (1024.0 * 1024.0 if sys.platform == "darwin"
                                                else 1024.0)})
    if proc.returncode != 0 or "mean_epoch_s" not in res:
        res["error"] = out[-2000:]
    return res


# ------------------------------------------------------------------------------------ skfm
def skfm_estimator(a, method, threads, epochs, model="fm"):
    aug = METHODS[method]
    name, options = MODELS[model]
    options = {"n_factors": a.dim, **options}
    return C.skfm_class(name, aug)(
        solver="adam", learning_rate_init=a.lr, batch_size=a.batch,
        max_iter=epochs, tol=0.0, n_iter_no_change=epochs + 1, alpha=0.0, init_std=0.01,
        early_stopping=False,
        random_state=a.seed, n_jobs=threads, augmentation=aug, mix_alpha=0.5, mix_beta=0.5,
        mix_ratio=1.0, n_candidates=a.maxup_m if method == "max" else a.n_candidates,
        **options)


def run_skfm(a, data, model, method, threads, epochs):
    """skfm's seconds per epoch: [min fit(1+K) - min fit(1)] / K over --repeat runs (best of R,
    as bench_fm.py: the fastest run is the least disturbed); then the test AUC of a separate
    fit of ``epochs`` epochs, the count torch ran."""
    from sklearn.metrics import log_loss, roc_auc_score
    Xtr, ytr, Xte, yte = data
    K = a.skfm_epochs
    one, many = [], []
    for _ in range(a.repeat):
        C.wait_for_quiet(a.quiet_wait)
        with C.Timer() as t1:
            skfm_estimator(a, method, threads, 1, model).fit(Xtr, ytr)
        with C.CallTimes(C.skfm_epoch_targets()) as prof, C.Timer() as tk:
            clf = skfm_estimator(a, method, threads, 1 + K, model).fit(Xtr, ytr)
        assert clf.n_iter_ == 1 + K, clf.n_iter_
        gen = (prof.total.get("augment", 0.0) / (1 + K) if "augment" not in prof.missing
               else float("nan"))
        one.append(t1)
        many.append((tk, gen))
    t1 = min(one, key=lambda t: t.wall)
    tk, gen = min(many, key=lambda m: m[0].wall)
    epoch_s = (tk.wall - t1.wall) / K
    cpu = (tk.cpu - t1.cpu) / K
    clf = skfm_estimator(a, method, threads, epochs, model).fit(Xtr, ytr)
    assert clf.n_iter_ == epochs, clf.n_iter_
    p = clf.predict_proba(Xte)[:, 1]
    rows = Xtr.shape[0] * (1 if METHODS[method] in (None, "max") else 2)
    return {"epoch_s": epoch_s, "cpu_per_wall": cpu / epoch_s if epoch_s > 0 else float("nan"),
            "others": tk.others, "rows_per_epoch": rows, "gen_s": gen,
            "test_auc": roc_auc_score(yte, p), "test_logloss": log_loss(yte, p)}


def warmup(data, threads, models):
    """Compile (or load from cache) every kernel the timed fits use, on 2,000 rows."""
    import numpy as np
    Xtr, ytr = data[0][:2000], data[1][:2000]
    wa = argparse.Namespace(dim=8, lr=1e-3, batch=256, seed=0, n_candidates=3, maxup_m=3)
    with C.Timer() as t:
        for model in models:
            for m in METHODS:
                for nt in sorted(set(threads)):
                    skfm_estimator(wa, m, nt, 1, model).fit(Xtr, ytr).decision_function(Xtr)
    assert np.isfinite(t.wall)
    return t.wall


def products_floor(n_rows, p, d, width, threads, dtype, repeat=5, block=128):
    """Seconds of the matrix products alone that an exact closed-form SMNFM selection needs: the
    first hidden layer of every candidate, ``n_rows * p`` rows of ``d`` Bi-Interaction values
    times a ``width x d`` matrix, in blocks of ``block`` rows on ``threads`` threads with BLAS on
    one thread each (as ``skfm._kernels.nfm.select_partners`` runs them, in float64).  Each
    thread multiplies one cache-resident block over and over, so this is the products' compute
    alone, without the memory traffic of real candidates: a lower bound."""
    import numpy as np
    from numba import get_num_threads, njit, prange, set_num_threads
    from threadpoolctl import threadpool_limits

    @njit(parallel=True, cache=False)
    def _blocks(Z, W, n_blocks):
        acc = np.zeros(n_blocks)
        for c in prange(n_blocks):
            acc[c] = np.dot(Z, W.T)[0, 0]
        return acc.sum()

    rng = np.random.default_rng(0)
    Z = rng.standard_normal((block, d)).astype(dtype)
    W = rng.standard_normal((width, d)).astype(dtype)
    n_blocks = -(-n_rows * p // block)
    old = get_num_threads()
    set_num_threads(threads)
    best = float("inf")
    try:
        with threadpool_limits(1):
            _blocks(Z, W, 1)  # compile
            for _ in range(repeat):
                t0 = time.perf_counter()
                _blocks(Z, W, n_blocks)
                best = min(best, time.perf_counter() - t0)
    finally:
        set_num_threads(old)
    return best


def sm_floor_rows(a, runs, n_rows):
    """Per (threads, model) with the base method timed: the augmented-epoch ratios.  Mix trains
    the same augmented epoch (n original + n mixed rows, same sizes) as SM with random partners,
    so Mix / base bounds SM / base from below for any exact selector; for NFM the first hidden
    layer's products of the n p candidates add their own floor."""
    import numpy as np
    target = {"fm": 2.5, "nfm": 3.0, "afm": 3.0}  # SM / base
    target_mix = {"deepfm": 1.5, "dcn": 1.5, "ffm": 1.5, "ifm": 1.5}  # SM / Mix
    by = {(r["threads"], r["model"], r["method"]): r["skfm"] for r in runs}
    out = []
    for nt, model in dict.fromkeys((r["threads"], r["model"]) for r in runs):
        base = by.get((nt, model, "fm"))
        if base is None:
            continue
        b = base["epoch_s"]
        mix, sm = by.get((nt, model, "mix")), by.get((nt, model, "sm"))
        mx = by.get((nt, model, "max"))
        row = {"threads": nt, "model": model, "base_s": b, "target": target.get(model),
               "mix": mix["epoch_s"] / b if mix else None,
               "sm": sm["epoch_s"] / b if sm else None,
               "target_mix": target_mix.get(model),
               "sm_mix": sm["epoch_s"] / mix["epoch_s"] if sm and mix else None,
               "max_mix": mx["epoch_s"] / mix["epoch_s"] if mx and mix else None,
               "sm_aug": sm["gen_s"] / b if sm else None,
               "mix_aug": mix["gen_s"] / b if mix else None}
        if model == "nfm" and sm:
            width = MODELS["nfm"][1]["hidden_layer_sizes"][0]
            for name, dt in (("mm64", np.float64), ("mm32", np.float32)):
                row[name] = products_floor(n_rows, a.n_candidates, a.dim, width, nt, dt) / b
        out.append(row)
    return out


# ------------------------------------------------------------------------------------ main
def main(argv=None):
    a = parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # progress goes to stderr; keep them in order
    t_start = time.perf_counter()
    skfm, info = C.start_comparison(
        "skfm vs PyTorch reference on Frappe (benchmarks/bench_vs_torch.py)", max(a.threads),
        a.threading_layer)
    result = {"machine": info, "args": vars(a), "load_before": C.loadavg(), "runs": []}

    paths = C.find_frappe(a.frappe_dir)
    if paths is None:
        print(f"Frappe not found in {a.frappe_dir or C.DEFAULT_FRAPPE_DIR}: nothing to compare.")
        return result
    ok, why = torch_available(a)
    print(f"torch reference: {a.torch_ref if ok else 'skipped: ' + why}")
    with C.Timer() as t:
        data = C.load_frappe(paths)
    print(f"data: Frappe train {data[0].shape[0]:,} rows (validation split), test "
          f"{data[2].shape[0]:,} rows, {data[0].shape[1]:,} features; loaded in {t.wall:.2f} s")
    print(f"settings: d={a.dim}, adam, lr={a.lr:g}, batch={a.batch}, seed={a.seed}, no L2, "
          f"mix_ratio=1, Beta(0.5, 0.5), SMFM candidates={a.n_candidates}")
    wu = warmup(data, a.threads, a.models)
    result["skfm_warmup_s"] = wu
    print(f"skfm JIT warm-up (all four methods, not timed below): {wu:.2f} s; "
          f"threading layer: {C.threading_layer()}")
    print()

    for nt in a.threads:
        for model, m in itertools.product(a.models, a.methods):
            E = epochs_of(a, m)
            est = skfm_estimator(a, m, nt, E, model)
            aug = est.get_params()["augmentation"]
            run = {"threads": nt, "model": model, "method": m, "epochs": E,
                   "skfm_estimator": type(est).__name__ + (f"(augmentation={aug!r})"
                                                           if aug else "")}
            if ok and model in TORCH_MODELS:
                print(f"  running torch_ref.py --model {model} --method {m} --threads {nt} "
                      f"--epochs {E} ...", file=sys.stderr, flush=True)
                C.wait_for_quiet(a.quiet_wait)
                tr = run_torch(a, model, m, nt, E)
                run["torch"] = tr
                if "error" in tr:
                    print(f"torch_ref.py failed (exit {tr['returncode']}):\n{tr['error']}",
                          file=sys.stderr)
            print(f"  running skfm {run['skfm_estimator']} n_jobs={nt} ...", file=sys.stderr,
                  flush=True)
            run["skfm"] = run_skfm(a, data, model, m, C.effective_threads(nt), E)
            result["runs"].append(run)

    rows = []
    for r in result["runs"]:
        tr, sk = r.get("torch", {}), r["skfm"]
        ep = tr.get("epochs", [])
        t_epoch = tr.get("mean_epoch_s")
        rows.append({
            "threads": r["threads"], "model": r["model"], "method": r["method"],
            "epochs": r["epochs"],
            "rows": sk["rows_per_epoch"],
            "torch_s": t_epoch,
            "torch_gen_s": (sum(e["gen_s"] for e in ep) / len(ep)) if ep else None,
            "torch_cpu": (tr["cpu_s"] / tr["wall_s"]) if "cpu_s" in tr else None,
            "torch_others": tr.get("others"), "skfm_others": sk["others"],
            "skfm_s": sk["epoch_s"], "skfm_cpu": sk["cpu_per_wall"], "skfm_gen_s": sk["gen_s"],
            "ratio": (t_epoch / sk["epoch_s"]) if t_epoch else None,
            "torch_auc": ep[-1]["test_auc"] if ep else None, "skfm_auc": sk["test_auc"],
            "torch_rss": tr.get("peak_rss_mib")})
    result["table"] = rows
    print(f"seconds per training epoch on Frappe (torch: mean_epoch_s of torch_ref.py over "
          f"'epochs'; skfm: [fit(1+{a.skfm_epochs}) - fit(1)] / {a.skfm_epochs}, best of "
          f"{a.repeat}); ratio = torch / skfm; AUC after 'epochs' epochs; other load = cores kept "
          "busy by other processes during the run (well above 0: measured under load)")
    print(C.table([("threads", "threads", ""), ("model", "model", ""), ("method", "method", ""),
                   ("epochs", "epochs", ""), ("rows/epoch", "rows", ","),
                   ("torch s/epoch", "torch_s", ".3f"), ("(of which gen)", "torch_gen_s", ".3f"),
                   ("torch cpu/wall", "torch_cpu", ".2f"), ("other load", "torch_others", ".2f"),
                   ("skfm s/epoch", "skfm_s", ".3f"), ("(of which gen)", "skfm_gen_s", ".3f"),
                   ("skfm cpu/wall", "skfm_cpu", ".2f"),
                   ("other load", "skfm_others", ".2f"), ("torch/skfm", "ratio", ".1f"),
                   ("torch AUC", "torch_auc", ".4f"), ("skfm AUC", "skfm_auc", ".4f"),
                   ("torch peak RSS MiB", "torch_rss", ".0f")], rows))
    floor = sm_floor_rows(a, result["runs"], data[0].shape[0])
    result["sm_floor"] = floor
    if floor:
        print()
        print("augmented epochs against the base epoch (skfm, same run): mix = Mix / base, the "
              "floor of SM / base for any exact selector (the same n + n rows, mixed rows as "
              "large; single runs vary by +-30% on a noisy host); SM aug / Mix aug = the time "
              "of SM's / Mix's augmentation (drawing, selection, building the mixed rows) / "
              "base, so SM's selection is about their difference; NFM: mm64 / mm32 = the n p "
              "candidates' first-layer products alone / base, float64 (as the selector) / "
              "float32")
        print(C.table([("threads", "threads", ""), ("model", "model", ""),
                       ("base s/epoch", "base_s", ".3f"), ("target SM/base", "target", ".1f"),
                       ("mix", "mix", ".2f"), ("SM", "sm", ".2f"),
                       ("target SM/Mix", "target_mix", ".1f"), ("SM/Mix", "sm_mix", ".2f"),
                       ("Max/Mix (target <= 1)", "max_mix", ".2f"),
                       ("SM aug", "sm_aug", ".2f"), ("Mix aug", "mix_aug", ".2f"),
                       ("mm64", "mm64", ".2f"),
                       ("mm32", "mm32", ".2f")], floor))
    tv = next((r["torch"].get("torch_version") for r in result["runs"] if "torch" in r), None)
    result["peak_rss_mib"] = C.peak_rss_mib()
    result["load_after"] = C.loadavg()
    result["total_s"] = time.perf_counter() - t_start
    la = result["load_after"]
    print(f"torch {tv or '-'}; skfm process peak RSS {result['peak_rss_mib']:.0f} MiB; load "
          f"average after (1/5/15 min): {la[0]:.2f} {la[1]:.2f} {la[2]:.2f}; total "
          f"{result['total_s']:.0f} s")
    if a.json:
        C.write_json(a.json, result)
        print(f"wrote {a.json}")
    return result


if __name__ == "__main__":
    main()
