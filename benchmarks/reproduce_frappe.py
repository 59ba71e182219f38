"""Reproduce the SMFM paper's Frappe comparison (FM, CopyFM, MixFM, SMFM) with skfm.

Protocol (the paper's settings): train on ``frappe.validation.libfm.gz`` (57,722 rows; the paper's
training split is not public), test on ``frappe.test.libfm.gz`` (28,860 rows); Adam, lr 1e-3,
batch 2048, d=64, mix_ratio=1, p=10, a fixed number of epochs (30), several seeds.  Printed per
method: mean and standard deviation over seeds of test ROC AUC and log-loss after the last epoch,
the best test AUC over the epochs (what ``torch_ref.py`` reports as best_auc: it peeks at the test
set, so it is shown for comparison only) and seconds per epoch.

Part 2, a fairer comparison (``--tuned``): augmented methods take (1 + mix_ratio) times FM's
optimizer steps per epoch, so a fixed epoch budget is not like for like (it favours them while the
base model underfits and penalises them once they overfit, as SMAFM does on Frappe).  Each method
gets ``alpha`` chosen from a small grid and its number of epochs chosen by early stopping, both on
a validation split carved from the training rows (never the test split, early stopping on the
validation log-loss); the model of the best validation epoch is then scored on the test split.
``--tuned`` runs every ``--models`` model; ``--epochs 0`` skips part 1.

Usage: python benchmarks/reproduce_frappe.py [--seeds 0 1 2] [--epochs 30 (0: skip)] [--tuned]
       [--frappe-dir ../shared/data/frappe] [--n-jobs 2] [--methods fm copy mix sm]
       [--models fm nfm afm deepfm dcn ffm ifm] [--set dropout=0.2 ...] [--json runs.json]
       python benchmarks/reproduce_frappe.py --table2 --tuned --alphas 0 [--torch-ref]

``--table2`` runs the SMFM paper's whole Table 2 column that skfm has (FM, NFM, AFM and DCN each
as base, Copy, Mix and SM; DeepFM, MaxFM and MaxNFM) both ways, and prints one table beside the
paper's Frappe figures and, with ``--torch-ref``, beside ``../shared/bench/torch_ref.py``'s (seed
``--seeds[0]``, the paper protocol, ``--n-jobs`` threads; torch needed; ``--torch-models`` picks
the rows, ``--epochs 0`` without ``--tuned`` runs torch_ref alone, and ``--merge`` joins the
``--json`` files of such runs).  The paper trains on a
larger split (its AUCs are higher): compare orderings, not levels.

``--set NAME=VALUE`` overrides an estimator parameter of the paper protocol (a setting another
paper states, e.g. the AFM paper's pair dropout of 0.2 on Frappe); the tables name the overrides
next to the method, so runs with and without them never average together.

The per-seed runs of the paper protocol are independent: on a many-core machine they can run as
separate processes, each writing ``--json``; ``--merge a.json b.json ...`` then prints the table
of all of them together (mean and standard deviation over the seeds found).
"""
import argparse
import ast
import json
import os
import sys
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import log_loss, roc_auc_score

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

C.use_checkout()  # this checkout's skfm, never an older installed copy
import skfm  # noqa: E402
from skfm._platform import get_estimator  # noqa: E402
from skfm.datasets import load_libfm  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DIR = os.path.join(HERE, "..", "..", "shared", "data", "frappe")
METHODS = {"fm": ("FM", None), "copy": ("CopyFM", "copy"), "mix": ("MixFM", "mix"),
           "sm": ("SMFM", "saliency"), "max": ("MaxFM", "max")}
# FM variants (SMFM paper Table 2): the model, and the settings the papers state
# torch_ref's models: no dropout, no batch norm (pinned: skfm's NFM and DeepFM defaults have them)
MODELS = {"fm": ("FM", {}),
          "nfm": ("NFM", {"hidden_layer_sizes": (64,), "activation": "relu", "dropout_bi": 0.0,
                          "dropout_hidden": 0.0, "batch_norm": False}),
          "afm": ("AFM", {"attention_factor": 64, "dropout": 0.0, "attention_alpha": 0.0}),
          "deepfm": ("DeepFM", {"hidden_layer_sizes": (64, 64), "activation": "relu",
                                "dropout": 0.0, "batch_norm": False}),
          "dcn": ("DCN", {"n_cross_layers": 2, "hidden_layer_sizes": (64, 64),
                          "activation": "relu", "dropout": 0.0, "batch_norm": False}),
          # FFM (the IFM paper's field-aware baseline; not in the SMFM paper's Table 2 nor in
          # torch_ref): d = 64 per (feature, field) vector, Frappe's 10 fields by fields='auto'
          "ffm": ("FFM", {}),
          # IFM (the IFM paper; torch_ref --model ifm): K_a = 64, K_F = 26, tau = 10, no dropout
          "ifm": ("IFM", {"attention_factor": 64, "n_field_factors": 26, "tau": 10.0,
                          "dropout": 0.0, "attention_alpha": 0.0, "field_alpha": 0.0})}


#: the SMFM paper's Table 2, Frappe column (AUC, LogLoss; mean of its 30 runs on its own split)
PAPER_TABLE2 = {
    ("fm", "fm"): (0.9653, 0.2047), ("fm", "copy"): (0.9705, 0.1948),
    ("fm", "mix"): (0.9784, 0.1537), ("fm", "sm"): (0.9825, 0.1668),
    ("nfm", "fm"): (0.9696, 0.2093), ("nfm", "copy"): (0.9706, 0.2088),
    ("nfm", "mix"): (0.9788, 0.1404), ("nfm", "sm"): (0.9808, 0.1428),
    ("afm", "fm"): (0.9651, 0.2056), ("afm", "copy"): (0.9742, 0.1920),
    ("afm", "mix"): (0.9784, 0.1536), ("afm", "sm"): (0.9806, 0.1612),
    ("dcn", "fm"): (0.9753, 0.2070), ("dcn", "copy"): (0.9756, 0.2223),
    ("dcn", "mix"): (0.9767, 0.1811), ("dcn", "sm"): (0.9792, 0.1857),
    ("deepfm", "fm"): (0.9753, 0.2114), ("fm", "max"): (0.9802, 0.3374),
    ("nfm", "max"): (0.9773, 0.1656)}
#: torch_ref.py's options for each --models choice (as MODELS' settings)
TORCH_ARGS = {"fm": [], "nfm": ["--hidden", "64"], "afm": ["--attention-factor", "64"],
              "deepfm": ["--deep-layers", "64,64"],
              "dcn": ["--cross-layers", "2", "--deep-layers", "64,64"],
              "ifm": ["--attention-factor", "64", "--field-factors", "26", "--tau", "10"]}
TORCH_REF = os.path.join(HERE, "..", "..", "shared", "bench", "torch_ref.py")


def estimator_class(model):
    """The skfm classifier of a --models choice, from skfm's registry of estimators."""
    return get_estimator(MODELS[model][0], "classifier")


def label(model, method):
    """FM, CopyFM, MixFM, SMFM; NFM, CopyNFM, MixNFM, SMNFM; ..."""
    name = METHODS[method][0]
    return name if model == "fm" else name.replace("FM", MODELS[model][0])


PAPER = dict(n_factors=64, solver="adam", learning_rate_init=1e-3, batch_size=2048, mix_ratio=1.0,
             n_candidates=10, alpha=0.0)
#: an augmentation's own settings: Maxup's 4 mixed neighbours per row (Gong et al.; torch_ref's
#: --maxup-m default)
AUG_PARAMS = {"max": {"n_candidates": 4}}


def load(frappe_dir):
    files = [os.path.join(frappe_dir, f) for f in
             ("frappe.validation.libfm.gz", "frappe.test.libfm.gz")]
    if not all(os.path.exists(f) for f in files):
        sys.exit(f"Frappe not found in {frappe_dir} (expected {', '.join(files)}).")
    Xtr, ytr, Xte, yte = load_libfm(files, n_features=5382)
    return Xtr, ytr, Xte, yte


def scores(est, X, y):
    p = est.predict_proba(X)[:, 1]
    return roc_auc_score(y, p), log_loss(y, p)


def fixed_epochs(Xtr, ytr, Xte, yte, aug, seed, epochs, n_jobs, model="fm", verbose=False,
                 overrides=None):
    """Paper protocol: train ``epochs`` epochs, score the test split after each one."""
    params = {**PAPER, **MODELS[model][1], **AUG_PARAMS.get(aug, {}),
              **(overrides or {})}  # later ones win
    est = estimator_class(model)(**params, augmentation=aug, random_state=seed, n_jobs=n_jobs,
                                 max_iter=1, warm_start=True, early_stopping=False)
    aucs, seconds = [], 0.0
    for _ in range(epochs):
        t0 = time.perf_counter()
        est.fit(Xtr, ytr)  # warm start: one more epoch, same stream as one fit(max_iter=epochs)
        seconds += time.perf_counter() - t0
        aucs.append(scores(est, Xte, yte)[0])
        if verbose:
            print(f"  {model} {aug} seed {seed} epoch {len(aucs)}: test AUC {aucs[-1]:.4f}, "
                  f"{seconds / len(aucs):.3f} s/epoch", file=sys.stderr, flush=True)
    auc, ll = scores(est, Xte, yte)
    return {"auc": auc, "logloss": ll, "best_auc": max(aucs),
            "best_epoch": int(np.argmax(aucs)) + 1,
            "epoch_s": seconds / epochs}


def tuned(Xtr, ytr, Xte, yte, aug, seed, alphas, max_epochs, patience, n_jobs, model="fm",
          overrides=None):
    """alpha from a grid and epochs by early stopping, both on a validation split of the
    training rows; the restored best-epoch model of the best alpha is scored on the test split."""
    best = None
    for alpha in alphas:
        params = {**PAPER, **MODELS[model][1], **AUG_PARAMS.get(aug, {}), **(overrides or {}),
                  "alpha": alpha}
        est = estimator_class(model)(**params, augmentation=aug, random_state=seed,
                                     n_jobs=n_jobs, max_iter=max_epochs, early_stopping=True,
                                     validation_fraction=0.1, n_iter_no_change=patience, tol=0.0,
                                     final_epochs=0)
        t0 = time.perf_counter()
        est.fit(Xtr, ytr)
        sec = time.perf_counter() - t0
        val = est.best_validation_score_
        if best is None or val > best[0]:
            best_epoch = int(np.argmax(est.validation_scores_)) + 1
            best = (val, alpha, best_epoch, est, sec / est.n_iter_)
    val, alpha, epoch, est, epoch_s = best
    auc, ll = scores(est, Xte, yte)
    return {"auc": auc, "logloss": ll, "alpha": alpha, "epochs": epoch, "val_logloss": -val,
            "epoch_s": epoch_s}


def torch_reference(model, method, seed, epochs, threads):
    """torch_ref.py's test AUC and log-loss after ``epochs`` epochs of the paper protocol."""
    import subprocess
    cmd = [sys.executable, TORCH_REF, "--model", model, "--method", method, "--dim", "64",
           "--epochs", str(epochs), "--batch", "2048", "--lr", "0.001", "--seed", str(seed),
           "--threads", str(threads), *TORCH_ARGS[model]]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    last = [ln for ln in out.splitlines() if ln[:1].isdigit()][-1].split("\t")
    return {"auc": float(last[4]), "logloss": float(last[5]), "seed": seed, "epochs": epochs}


def print_table2(runs, truns, refs):
    """One table: per (model, method) the paper protocol and the validation-stopped runs (mean
    +- std over seeds), torch_ref's figures where run, and the paper's."""
    def cell(rows, key):
        if not rows:
            return f"{'-':>17}"
        m, sd = summarize(rows, [key])[key]
        return f"{m:.4f} +- {sd:.4f}"

    n_ep = "/".join(str(e) for e in sorted({r["epochs"] for r in runs})) or "-"
    print(f"{'method':<10} {n_ep + '-epoch AUC':>17} {'log-loss':>17} {'stopped AUC':>17} "
          f"{'log-loss':>17} {'epochs':>6} {'torch AUC':>9} {'log-loss':>8} {'paper AUC':>9} "
          f"{'log-loss':>8}")
    pairs = list(dict.fromkeys([(r["model"], r["method"]) for r in runs + truns]))
    for model, m in pairs:
        fx = [r for r in runs if (r["model"], r["method"]) == (model, m)]
        tu = [r for r in truns if (r["model"], r["method"]) == (model, m)]
        ref = refs.get(f"{model}/{m}")
        paper = PAPER_TABLE2.get((model, m))
        ep = f"{np.mean([r['epochs'] for r in tu]):6.1f}" if tu else f"{'-':>6}"
        print(f"{label(model, m):<10} {cell(fx, 'auc')} {cell(fx, 'logloss')} "
              f"{cell(tu, 'auc')} {cell(tu, 'logloss')} {ep} "
              + (f"{ref['auc']:9.4f} {ref['logloss']:8.4f} " if ref else f"{'-':>9} {'-':>8} ")
              + (f"{paper[0]:9.4f} {paper[1]:8.4f}" if paper else f"{'-':>9} {'-':>8}"))
    seeds = sorted({r["seed"] for r in runs + truns})
    rs = sorted({(r["seed"], r["epochs"]) for r in refs.values()})
    print(f"(skfm: mean +- std over seeds {seeds}; stopped: on the validation log-loss of 10% of "
          f"the training rows, the best epoch restored; torch: torch_ref.py, (seed, epochs) "
          f"{rs or '-'}; paper: the SMFM paper's Table 2, trained on a larger split)")


def summarize(rows, keys):
    out = {}
    for k in keys:
        v = np.array([r[k] for r in rows], dtype=float)
        out[k] = (v.mean(), v.std(ddof=1) if len(v) > 1 else 0.0)
    return out


def parse_overrides(items):
    """["dropout=0.2", ...] -> {"dropout": 0.2, ...} (values parsed as Python literals)."""
    out = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise SystemExit(f"--set expects NAME=VALUE, got {item!r}")
        try:
            out[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[name] = value
    return out


def settings(overrides):
    """'' or ' [dropout=0.2]': the overrides as the tables print them."""
    if not overrides:
        return ""
    return " [" + ",".join(f"{k}={v}" for k, v in sorted(overrides.items())) + "]"


def print_fixed(runs):
    """The paper-protocol table: per (model, method, overrides), mean +- std over the seeds of
    ``runs``."""
    print(f"{'method':<8} {'test AUC':>17} {'test log-loss':>17} {'best-epoch AUC*':>17} "
          f"{'s/epoch':>8} {'seeds':>6}")
    fixed = {}
    for r in runs:
        fixed.setdefault((r["model"], r["method"], settings(r.get("set"))), []).append(r)
    groups = list(dict.fromkeys((r["model"], settings(r.get("set"))) for r in runs))
    for (model, m, st), rows in fixed.items():
        f = summarize(rows, ["auc", "logloss", "best_auc", "epoch_s"])
        fixed[model, m, st] = f
        print(f"{label(model, m):<8} {f['auc'][0]:.4f} +- {f['auc'][1]:.4f} {f['logloss'][0]:8.4f}"
              f" +- {f['logloss'][1]:.4f} {f['best_auc'][0]:8.4f} +- {f['best_auc'][1]:.4f} "
              f"{f['epoch_s'][0]:8.3f} {len(rows):>6}{st}", flush=True)
    print("(+- is the standard deviation over seeds; * max over epochs of the test AUC, as "
          "torch_ref.py's best_auc: selected on the test set, for comparison only)")
    for model, st in groups:
        mine = {m: f for (mo, m, s), f in fixed.items() if mo == model and s == st}
        order = " < ".join(label(model, m) for m in sorted(mine, key=lambda k: mine[k]["auc"][0]))
        line = f"{MODELS[model][0]}{st}: ordering by test AUC: {order}"
        if "fm" in mine and "sm" in mine:
            line += (f"; {label(model, 'sm')} - {MODELS[model][0]} = "
                     f"{mine['sm']['auc'][0] - mine['fm']['auc'][0]:+.4f}")
        print(line)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frappe-dir", default=DEFAULT_DIR)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=30,
                    help="epochs of the paper protocol (0: skip it, e.g. to run only --tuned)")
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--models", nargs="+", default=["fm"], choices=list(MODELS),
                    help="fm, and the variants nfm (one ReLU layer of 64), afm (attention "
                         "factor 64), deepfm (two ReLU layers of 64, Frappe's 10 fields "
                         "inferred by fields='auto'), dcn (deepfm's tower beside two cross "
                         "layers), ffm (a 64-vector per feature and field, the fields "
                         "inferred) and ifm (K_a 64, K_F 26, tau 10); --tuned runs each of "
                         "them too")
    ap.add_argument("--n-jobs", type=int, default=None)
    ap.add_argument("--set", nargs="+", metavar="NAME=VALUE", dest="overrides",
                    help="override estimator parameters (paper protocol and --tuned), "
                         "e.g. dropout=0.2")
    ap.add_argument("--tuned", action="store_true", help="also run the tuned comparison")
    ap.add_argument("--table2", action="store_true", help="the SMFM paper's Table 2 column "
                    "(replaces --models and --methods) and one table beside the paper's")
    ap.add_argument("--torch-ref", action="store_true", help="with --table2: also run "
                    "torch_ref.py on each row (seed --seeds[0], paper protocol; with --epochs 0 "
                    "and no --tuned, torch_ref only, for --merge)")
    ap.add_argument("--torch-models", nargs="+", choices=list(TORCH_ARGS), default=None,
                    help="with --torch-ref: only these models' rows (torch_ref's SMAFM takes "
                         "minutes an epoch)")
    ap.add_argument("--alphas", type=float, nargs="+", default=[0.0, 1e-4, 1e-3])
    ap.add_argument("--max-epochs", type=int, default=150)
    ap.add_argument("--patience", type=int, default=5)
    ap.add_argument("--json", metavar="PATH", help="write the per-seed runs of the paper "
                    "protocol to PATH")
    ap.add_argument("--verbose", action="store_true", help="per-epoch progress on stderr")
    ap.add_argument("--merge", nargs="+", metavar="JSON", help="print the paper-protocol table "
                    "of runs written by --json (no training)")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    if args.merge:
        runs, truns, refs = [], [], {}
        for path in args.merge:
            with open(path) as fh:
                got = json.load(fh)
            runs += got["runs"]
            truns += got.get("tuned", [])
            refs.update(got.get("torch_ref", {}))
        if runs:
            print_fixed(runs)
        if truns or refs:
            print_table2(runs, truns, refs)
        return
    if args.table2:
        pairs = [(mo, m) for mo in ("fm", "nfm", "afm", "dcn") for m in ("fm", "copy", "mix", "sm")]
        pairs += [("deepfm", "fm"), ("fm", "max"), ("nfm", "max")]
    else:
        pairs = [(mo, m) for mo in args.models for m in args.methods]

    overrides = parse_overrides(args.overrides)
    Xtr, ytr, Xte, yte = load(args.frappe_dir)
    print(f"# Frappe: train {Xtr.shape[0]} rows (validation split), test {Xte.shape[0]} rows, "
          f"{Xtr.shape[1]} features; seeds {args.seeds}; n_jobs={args.n_jobs}"
          f"{'; overrides' + settings(overrides) if overrides else ''}")
    print(f"# skfm {skfm.__version__} from {os.path.dirname(skfm.__file__)}; "
          f"{C.cpu_model()}, {C.machine_info()['nproc']} cores")
    for model, m in pairs:  # compile (or load) every kernel the timed fits use: s/epoch
        # then leaves the one-off JIT cost out
        est = estimator_class(model)(**{**PAPER, **MODELS[model][1], **overrides,
                                        "n_factors": 4, "n_candidates": 3},
                                     augmentation=METHODS[m][1],
                                     n_jobs=args.n_jobs, max_iter=1, warm_start=True)
        est.fit(Xtr[:500], ytr[:500]).predict_proba(Xte[:500])

    runs = []
    if args.epochs == 0:  # --tuned only
        print("\n## Paper protocol: skipped (--epochs 0)")
    else:
        print(f"\n## Paper protocol: Adam lr 1e-3, batch 2048, d=64, {args.epochs} epochs, "
              "mix_ratio=1, p=10, alpha=0")
    for model, m in pairs if args.epochs else []:
        for s in args.seeds:
            r = fixed_epochs(Xtr, ytr, Xte, yte, METHODS[m][1], s, args.epochs, args.n_jobs,
                             model, args.verbose, overrides)
            runs.append(dict(r, model=model, method=m, seed=s, epochs=args.epochs,
                             n_jobs=args.n_jobs, set=overrides))
    out = {"runs": runs, "tuned": [], "torch_ref": {}}

    def save():
        if args.json:
            with open(args.json, "w") as fh:
                json.dump(out, fh, indent=1)

    save()
    if runs:
        print_fixed(runs)
    if args.tuned:
        tuned_table(args, pairs, Xtr, ytr, Xte, yte, overrides, out["tuned"])
        save()
    if args.table2 and args.torch_ref:
        for model, m in pairs:
            if args.torch_models is not None and model not in args.torch_models:
                continue
            out["torch_ref"][f"{model}/{m}"] = torch_reference(
                model, m, args.seeds[0], args.epochs or 30, args.n_jobs or 2)
            save()
    if args.table2:
        print("\n## Table 2, Frappe column")
        print_table2(runs, out["tuned"], out["torch_ref"])


def tuned_table(args, pairs, Xtr, ytr, Xte, yte, overrides, truns):
    """The tuned (validation-stopped) comparison of ``pairs``; each seed's run into truns."""
    print(f"\n## Tuned: alpha in {args.alphas} and epochs (early stopping, patience "
          f"{args.patience}, up to {args.max_epochs}) chosen on 10% of the training rows")
    print(f"{'method':<8} {'test AUC':>17} {'test log-loss':>17} {'epochs':>7} "
          f"{'alphas chosen':>16}")
    for model in dict.fromkeys(mo for mo, _ in pairs):
        tuned_res = {}
        for m in [m for mo, m in pairs if mo == model]:
            aug = METHODS[m][1]
            rows = [tuned(Xtr, ytr, Xte, yte, aug, s, args.alphas, args.max_epochs,
                          args.patience, args.n_jobs, model, overrides) for s in args.seeds]
            truns += [dict(r, model=model, method=m, seed=s, set=overrides)
                      for r, s in zip(rows, args.seeds)]
            t = summarize(rows, ["auc", "logloss", "epochs"])
            tuned_res[m] = t
            print(f"{label(model, m):<8} {t['auc'][0]:.4f} +- {t['auc'][1]:.4f} "
                  f"{t['logloss'][0]:8.4f} +- {t['logloss'][1]:.4f} {t['epochs'][0]:7.1f} "
                  f"{','.join(format(r['alpha'], 'g') for r in rows):>16}"
                  f"{settings(overrides)}", flush=True)
        if "fm" in tuned_res and "sm" in tuned_res:
            gain = tuned_res["sm"]["auc"][0] - tuned_res["fm"]["auc"][0]
            spread = max(tuned_res["sm"]["auc"][1], tuned_res["fm"]["auc"][1])
            print(f"tuned {label(model, 'sm')} - {MODELS[model][0]} = {gain:+.4f} test AUC "
                  f"(largest seed std {spread:.4f})")


if __name__ == "__main__":
    main()
