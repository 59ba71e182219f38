"""How skfm's estimators do with their defaults (and with candidate default sets) on a suite of
data sets that differ in size, sparsity, number of fields and signal.

    python benchmarks/defaults.py                                  # every set, every classifier
    python benchmarks/defaults.py --sets unseen synth10k --models FM SMFM
    python benchmarks/defaults.py --candidate lr3=learning_rate_init=1e-3 \\
                                  --candidate es=early_stopping=True

Per (data set, estimator, candidate): test ROC AUC and log-loss, fit seconds (compilation left
out: every kernel is compiled or loaded on a small fit first) and epochs run (``n_iter_``), next
to ``LogisticRegression()`` on the same one-hot encoding, the baseline a default must never fall
below.  Every estimator is built with no arguments but ``random_state`` (and a candidate's).

Data sets (train / test):
- ``frappe``: the Frappe split of the SMFM benchmarks (train on frappe.validation, test on
  frappe.test; 10 one-hot fields, 5,382 features), read in place from ../shared/data/frappe
  (left out with a note when it is missing);
- ``unseen``: :func:`skfm.datasets.make_unseen_pairs` (the demo's data: every test row pairs a user
  and an item never seen together in training);
- ``synth10k`` / ``synth50k``: :func:`skfm.datasets.make_fm_classification` (8 one-hot fields of
  50 values, a planted rank-4 FM), 10,000 and 50,000 rows, 80/20 split;
- ``weak50k``: as synth50k with the planted model's scale at 0.5 (a weaker signal, noisier labels).
"""
import argparse
import ast
import os
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C

C.use_checkout()

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import train_test_split

import skfm
from skfm._platform import all_estimators
from skfm.datasets import make_fm_classification, make_unseen_pairs

SETS = ("frappe", "unseen", "synth10k", "synth50k", "weak50k")


def load_set(name, frappe_dir=None):
    """(X_train, X_test, y_train, y_test, description) or None when the data is missing."""
    if name == "frappe":
        paths = C.find_frappe(frappe_dir)
        if paths is None:
            return None
        Xtr, ytr, Xte, yte = C.load_frappe(paths)
        return Xtr, Xte, ytr, yte, "Frappe split, 10 fields"
    if name == "unseen":
        Xtr, Xte, ytr, yte = make_unseen_pairs(random_state=0)
        return Xtr, Xte, ytr, yte, "make_unseen_pairs(), unseen user-item pairs"
    n = {"synth10k": 10000, "synth50k": 50000, "weak50k": 50000}[name]
    scale = 0.5 if name == "weak50k" else 1.0
    X, y = make_fm_classification(n, scale=scale, random_state=0)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=0)
    return Xtr, Xte, ytr, yte, f"make_fm_classification({n}, scale={scale})"


def parse_candidate(text):
    """'name=param=value,param=value' -> (name, {param: value})."""
    name, _, rest = text.partition("=")
    params = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        try:
            params[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            params[key] = value
    return name, params


def score(est, X, y):
    p = est.predict_proba(X)[:, 1]
    return roc_auc_score(y, p), log_loss(y, p)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS))
    names = [e.name.replace("Classifier", "") for e in all_estimators(task="classifier")]
    ap.add_argument("--models", nargs="+", choices=names, default=names,
                    help="estimator names without 'Classifier' (default: all registered)")
    ap.add_argument("--candidate", action="append", default=[], metavar="NAME=P=V,...",
                    help="a candidate default set, e.g. lr3=learning_rate_init=1e-3")
    ap.add_argument("--frappe-dir", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", metavar="PATH")
    a = ap.parse_args(argv)
    candidates = [("defaults", {})] + [parse_candidate(c) for c in a.candidate]
    entries = [e for e in all_estimators(task="classifier")
               if e.name.replace("Classifier", "") in a.models]
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    info = C.machine_info()
    print(f"# benchmarks/defaults.py, skfm {skfm.__version__} from {os.path.dirname(skfm.__file__)}"
          f"; {info.get('cpu_model', '?')}, {info.get('nproc', '?')} cores")
    rows = []
    for set_name in a.sets:
        data = load_set(set_name, a.frappe_dir)
        if data is None:
            print(f"\n## {set_name}: data not found, left out")
            continue
        Xtr, Xte, ytr, yte, desc = data
        print(f"\n## {set_name}: {desc}; train {Xtr.shape[0]:,} x {Xtr.shape[1]:,} "
              f"({Xtr.nnz / Xtr.shape[0]:.1f} nonzeros per row), test {Xte.shape[0]:,}, "
              f"positives {np.mean(ytr):.3f}", flush=True)
        t0 = time.perf_counter()
        lr = LogisticRegression().fit(Xtr, ytr)
        auc, ll = score(lr, Xte, yte)
        rows.append({"set": set_name, "estimator": "LogisticRegression()", "candidate": "",
                     "auc": auc, "logloss": ll, "fit_s": time.perf_counter() - t0,
                     "epochs": int(np.max(lr.n_iter_))})
        print(f"  {'LogisticRegression()':<28} AUC {auc:.4f}  log-loss {ll:.4f}", flush=True)
        for entry in entries:
            for cand, params in candidates:
                kw = {"random_state": a.seed, **params}
                entry.cls(**{**kw, "max_iter": 1}).fit(Xtr[:500], ytr[:500])  # compile / load
                est = entry.cls(**kw)
                t0 = time.perf_counter()
                est.fit(Xtr, ytr)
                sec = time.perf_counter() - t0
                auc, ll = score(est, Xte, yte)
                rows.append({"set": set_name, "estimator": entry.name + "()", "candidate": cand,
                             "auc": auc, "logloss": ll, "fit_s": sec, "epochs": est.n_iter_})
                print(f"  {entry.name + '()':<28} {cand:<10} AUC {auc:.4f}  log-loss {ll:.4f}  "
                      f"{est.n_iter_:4d} epochs  {sec:7.2f} s", flush=True)
    print()
    print(C.table([("set", "set", ""), ("estimator", "estimator", ""),
                   ("candidate", "candidate", ""), ("test AUC", "auc", ".4f"),
                   ("test log-loss", "logloss", ".4f"), ("epochs", "epochs", ""),
                   ("fit s", "fit_s", ".2f")], rows))
    if a.json:
        C.write_json(a.json, {"machine": info, "args": vars(a), "rows": rows})
        print(f"wrote {a.json}")
    return rows


if __name__ == "__main__":
    main()
