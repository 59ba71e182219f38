"""The ``skfm`` command: fit, predict and evaluate skfm estimators on libFM / libFFM files.

::

    skfm fit train.libfm --model smfm --n-factors 32 --validation valid.libfm -o model.joblib
    skfm predict model.joblib test.libfm -o scores.txt
    skfm evaluate model.joblib test.libfm

Every registered estimator is reachable (``--model``, ``--task``, ``--augmentation``), and every
hyperparameter of the chosen one has a flag (``--n-factors 32``, ``--hidden-layer-sizes 64,64``)
generated from its declaration (skfm._platform), or can be set with ``--param name=value``.
Errors end the command with one line on stderr, ``skfm: error: ...``, and exit status 1 (2 for
a wrong command line).
"""
import argparse
import os
import sys
import time
import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions

from ._base import BaseFactorizationMachine
from ._platform import PRESETS, all_estimators
from .datasets import load_libffm, load_libfm

#: estimator parameters the command sets itself: augmentation (--augmentation or --model),
#: fields (a libFFM file's own, else the model's default), verbose (--quiet), warm_start (each
#: fit starts anew)
_OWN = {"augmentation", "fields", "verbose", "warm_start"}

#: --format inferred from a file name: these suffixes (before a .gz) are libFFM, others libFM
_FFM_SUFFIXES = (".ffm", ".libffm")

_TASKS = {"classification": "classifier", "regression": "regressor"}
_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}


class CommandError(Exception):
    """An error reported as one line ``skfm: error: ...``."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr, as the command's others."""

    def error(self, message):
        self.exit(2, f"skfm: error: {message} (see '{self.prog} --help')\n")


# ------------------------------------------------------------------------------ models
def _model_names():
    """--model name -> (model, augmentation preset or None): every registered model by its
    lower-case name, and the preset classes by theirs (mixfm, smfm)."""
    names = {}
    for e in all_estimators():
        prefix = PRESETS[e.augmentation][0] if e.augmentation else ""
        names[(prefix + e.model).lower()] = (e.model, e.augmentation)
    return names


def _augmentations():
    """The augmentations every estimator takes, from the shared parameter's declaration."""
    from ._platform import SHARED_PARAMS
    param = next(p for p in SHARED_PARAMS if p.name == "augmentation")
    return sorted(next(c for c in param.constraints if isinstance(c, StrOptions)).options)


def _estimator_class(model, task, augmentation):
    """The estimator class and its preset of --model / --task / --augmentation ("none" or a
    strategy; None when not given)."""
    names = _model_names()
    if model not in names:
        raise CommandError(f"unknown model {model!r}; choose from {', '.join(sorted(names))}")
    base, preset = names[model]
    if preset is not None and augmentation not in (None, preset):
        raise CommandError(f"--model {model} trains with augmentation {preset!r}; for "
                           f"--augmentation {augmentation} use --model {base.lower()}")
    for e in all_estimators(base, _TASKS[task]):
        if e.augmentation == preset:
            return e.cls, preset
    raise CommandError(f"no {model} {_TASKS[task]}")  # every model has both tasks


def _converter(param):
    """str -> value for a declared parameter, from its scikit-learn constraints (the
    estimator validates the value itself when it fits)."""
    cons = param.constraints

    def convert(text):
        low = text.strip().lower()
        if None in cons and low == "none":
            return None
        for c in cons:
            if isinstance(c, StrOptions) and text in c.options:
                return text
        if "boolean" in cons and low in _TRUE | _FALSE:
            return low in _TRUE
        integral = any(c in ("random_state", "verbose") or isinstance(c, Interval)
                       and c.type is Integral for c in cons)
        if "array-like" in cons and integral:  # a tuple of int: "64,32", "64" or ""
            items = [s for s in text.replace("(", "").replace(")", "").split(",") if s.strip()]
            try:
                return tuple(int(s) for s in items)
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"{text!r} is not a comma-separated list of integers") from None
        if integral:
            try:
                return int(text)
            except ValueError:
                if not any(isinstance(c, Interval) and c.type is Real for c in cons):
                    raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if any(isinstance(c, Interval) and c.type is Real for c in cons):
            try:
                return float(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        return text  # a str option, a scorer name; the estimator checks it

    convert.__name__ = param.type  # argparse names it in "invalid <type> value"
    return convert


def _params_of(cls, preset):
    """The declared parameters of an estimator class that the command line can set."""
    return [p for p in cls._model.signature_params(preset) if p.name not in _OWN]


# ------------------------------------------------------------------------------ files
def _format(path, given):
    if given is not None:
        return given
    name = os.fspath(path).lower().removesuffix(".gz")
    return "libffm" if name.endswith(_FFM_SUFFIXES) else "libfm"


def _load(paths, fmt, task, n_features=None):
    """[X, y, ...] of the files and the fields (None for libFM), on a common set of columns.
    Classification labels are 1 where the label is positive, else 0 (libFM's -1/1, or
    0/1)."""
    binary = task == "classification"
    for path in paths:
        if not os.path.exists(path):
            raise CommandError(f"{path}: no such file")
        if os.path.isdir(path):
            raise CommandError(f"{path}: is a directory, not a data file")
    if fmt == "libffm":
        *out, fields = load_libffm(paths, n_features, binary=binary)
        return out, fields
    return load_libfm(paths, n_features, binary=binary), None


def _load_model(path):
    """The fitted skfm estimator in a joblib file (which must be trusted: loading a pickle
    runs code)."""
    import joblib

    if not os.path.isfile(path):
        raise CommandError(f"{path}: no such model file")
    try:
        est = joblib.load(path)
    except Exception as e:  # any pickle or joblib failure means: not a model file
        raise CommandError(f"{path} is not an skfm model file (joblib could not read it: "
                           f"{type(e).__name__}: {e})".replace("\n", " ")) from None
    if not isinstance(est, BaseFactorizationMachine) or not hasattr(est, "n_features_in_"):
        raise CommandError(f"{path} holds a {type(est).__name__}, not a fitted skfm "
                           f"estimator")
    return est


def _task_of(est):
    return "classification" if hasattr(est, "classes_") else "regression"


# ------------------------------------------------------------------------------ commands
def _fit(args, cls, preset, params):
    fmt = _format(args.train, args.format)
    paths = [args.train] + ([args.validation] if args.validation else [])
    data, fields = _load(paths, fmt, args.task)
    X, y = data[:2]
    kwargs = dict(args.param or [])
    for p in params:
        value = getattr(args, p.name, None)
        if value is not None:
            kwargs[p.name] = value
    if preset is None and args.augmentation not in (None, "none"):
        kwargs["augmentation"] = args.augmentation
    if fields is not None:
        kwargs["fields"] = fields
    est = cls(**kwargs, verbose=0 if args.quiet else 1)
    fit_kw = dict(X_val=data[2], y_val=data[3]) if args.validation else {}
    if not args.quiet:
        print(f"{cls.__name__}: {X.shape[0]:,} training rows, {X.shape[1]:,} features"
              + (f", {data[2].shape[0]:,} validation rows" if args.validation else ""),
              flush=True)
    t0 = time.perf_counter()
    est.fit(X, y, **fit_kw)
    import joblib

    joblib.dump(est, args.output)
    if not args.quiet:
        best = est.best_validation_score_
        print(f"{est.n_iter_} epochs in {time.perf_counter() - t0:.1f} s"
              + (f", best validation score {best:.6f}" if best is not None else "")
              + f"; model written to {args.output}")
    return 0


def _data_for(est, path, fmt):
    (X, y), _ = _load([path], _format(path, fmt), _task_of(est), est.n_features_in_)
    return X, y


def _predict(args):
    est = _load_model(args.model)
    X, _ = _data_for(est, args.data, args.format)
    if args.kind == "label":
        out = est.predict(X)
    elif args.kind == "decision" or _task_of(est) == "regression":
        out = est.decision_function(X) if args.kind == "decision" else est.predict(X)
    else:
        out = est.predict_proba(X)
        out = out[:, 1] if out.shape[1] == 2 else out
    fmt = "%s" if out.dtype.kind not in "fc" else "%.17g"
    if args.output in (None, "-"):
        np.savetxt(sys.stdout, out, fmt=fmt)
    else:
        np.savetxt(args.output, out, fmt=fmt)
    return 0


def _evaluate(args):
    from sklearn.metrics import log_loss, mean_squared_error, roc_auc_score

    est = _load_model(args.model)
    X, y = _data_for(est, args.data, args.format)
    print(f"rows {X.shape[0]}")
    if _task_of(est) == "regression":
        print(f"rmse {np.sqrt(mean_squared_error(y, est.predict(X))):.6f}")
        return 0
    P = est.predict_proba(X)
    if len(np.unique(y)) < 2:
        print("auc nan (one class only in the data)")
    else:
        scores = P[:, 1] if P.shape[1] == 2 else P
        print(f"auc {roc_auc_score(y, scores, multi_class='ovr', labels=est.classes_):.6f}")
    print(f"logloss {log_loss(y, P, labels=est.classes_):.6f}")
    print(f"accuracy {np.mean(est.classes_[P.argmax(1)] == y):.6f}")
    return 0


# ------------------------------------------------------------------------------ parsers
def _parser(fit_for=("fm", "classification", None)):
    """The command line parser; the fit command gets the flags of the estimator of
    ``fit_for`` = (--model, --task, --augmentation)."""
    ap = _Parser(prog="skfm", description="Factorization machines on libFM / libFFM files.",
                 epilog="python -m skfm runs the demo instead.")
    sub = ap.add_subparsers(dest="command", required=True, parser_class=_Parser)
    files = ("Data files: libFM / svmlight ('label feature:value ...') or libFFM ('label "
             "field:feature:value ...'), gzipped when named *.gz; --format, else libFFM when "
             "the name ends with .ffm or .libffm (before .gz), libFM otherwise.  For "
             "classification a label > 0 is the positive class (libFM's -1/1 or 0/1).")
    fmt = dict(choices=["libfm", "libffm"], default=None,
               help="the files' format (default: from the file name)")

    model, task, augmentation = fit_for
    names = sorted(_model_names())
    p = sub.add_parser("fit", help="fit an estimator and save it with joblib",
                       description="Fit an estimator on a data file and save it with joblib.  "
                                   + files)
    p.add_argument("train", help="training data file")
    p.add_argument("-o", "--output", required=True, help="model file to write (joblib)")
    p.add_argument("--format", **fmt)
    p.add_argument("--model", default="fm", metavar="{" + ",".join(names) + "}",
                   help="the model (default: fm); mixfm and smfm are fm with augmentation "
                        "mix and saliency and their presets")
    p.add_argument("--task", choices=list(_TASKS), default="classification",
                   help="default: classification")
    p.add_argument("--augmentation", choices=["none", *_augmentations()],
                   default=None, help="training-set augmentation (default: the model's)")
    p.add_argument("--validation", metavar="FILE",
                   help="validation file for early stopping (instead of holding out "
                        "validation_fraction of the training rows; turns "
                        "early_stopping='auto' on)")
    p.add_argument("--param", action="append", metavar="NAME=VALUE",
                   help="set any estimator parameter (repeatable)")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress lines (one per epoch by default) and no warnings")
    try:
        cls, preset = _estimator_class(model, task, augmentation)
    except CommandError:  # reported when the command runs
        cls, preset = _estimator_class("fm", task, None)
    params = _params_of(cls, preset)
    group = p.add_argument_group(
        f"parameters of {cls.__name__} (those of --model / --task / --augmentation are listed "
        f"by 'skfm fit --model NAME --help'; the default is the estimator's)")
    for prm in params:
        first = " ".join(str(prm.doc_for(_TASKS[task])).split(".  ")[0].split())
        first = first.rstrip(".").replace("%", "%%")
        group.add_argument("--" + prm.name.replace("_", "-"), dest=prm.name,
                           type=_converter(prm), default=None, metavar=_metavar(prm),
                           help=f"{first} (default: {prm.default!r})")
    p.set_defaults(_cls=cls, _preset=preset, _params=params)

    for name, what in (("predict", "write predictions, one row per line"),
                       ("evaluate", ("print the row count and metrics (classifiers: ROC "
                                     "AUC, log-loss, accuracy; regressors: RMSE)"))):
        q = sub.add_parser(name, help=what, description=what[0].upper() + what[1:] + ".  "
                           + files)
        q.add_argument("model", help="model file written by 'skfm fit'")
        q.add_argument("data", help="data file; its columns are the model's")
        q.add_argument("--format", **fmt)
        if name == "predict":
            q.add_argument("-o", "--output", default=None,
                           help="output file (default: standard output)")
            kind = q.add_mutually_exclusive_group()
            kind.add_argument("--proba", dest="kind", action="store_const", const="proba",
                              help="classifiers: probability of the positive class (of every "
                                   "class for multiclass models); the default")
            kind.add_argument("--decision", dest="kind", action="store_const",
                              const="decision", help="the model output f(x)")
            kind.add_argument("--label", dest="kind", action="store_const", const="label",
                              help="the predicted label")
            q.set_defaults(kind="proba")
    return ap


def _metavar(prm):
    """The metavar of a parameter's flag, from its constraints: {adam,sgd}, auto|INT, ..."""
    kinds = []
    for c in prm.constraints:
        if isinstance(c, StrOptions):
            kinds += sorted(c.options)
        elif c == "boolean":
            kinds.append("BOOL")
        elif c is None:
            kinds.append("none")
        elif c in ("random_state", "verbose") or isinstance(c, Interval) and c.type is Integral:
            kinds.append("INT,INT,..." if "array-like" in prm.constraints else "INT")
        elif isinstance(c, Interval):
            kinds.append("FLOAT")
        elif c is str:
            kinds.append("NAME")
    kinds = list(dict.fromkeys(kinds))
    if all(isinstance(c, StrOptions) for c in prm.constraints):
        return "{" + ",".join(kinds) + "}"
    return "|".join(kinds) or "VALUE"


def _fit_choice(argv):
    """(--model, --task, --augmentation) of a fit command line, before the full parse."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--model", default="fm")
    pre.add_argument("--task", default="classification", choices=list(_TASKS))
    pre.add_argument("--augmentation", default=None)
    try:
        known, _ = pre.parse_known_args(argv)
    except SystemExit:  # the full parser reports it
        return "fm", "classification", None
    return known.model.lower(), known.task, known.augmentation


def _param_pairs(args):
    """--param NAME=VALUE strings -> (name, converted value) for the chosen estimator."""
    declared = {p.name: p for p in args._params}
    pairs = []
    for item in args.param or []:
        name, sep, text = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep:
            raise CommandError(f"--param {item!r}: expected NAME=VALUE")
        if name not in declared:
            own = " (set by the command itself)" if name in _OWN else ""
            raise CommandError(f"--param {item!r}: {args._cls.__name__} has no parameter "
                               f"{name!r}{own}; its parameters: {', '.join(declared)}")
        try:
            pairs.append((name, _converter(declared[name])(text)))
        except argparse.ArgumentTypeError as e:
            raise CommandError(f"--param {item!r}: {e}") from None
    return pairs


def main(argv=None):
    """Run the ``skfm`` command on ``argv`` (default: sys.argv[1:]); returns the exit
    status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    fit_for = _fit_choice(argv[1:]) if argv[:1] == ["fit"] else ("fm", "classification", None)
    try:
        args = _parser(fit_for).parse_args(argv)
    except SystemExit as e:  # --help, or a usage error already reported
        return e.code
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            if getattr(args, "quiet", False):
                warnings.simplefilter("ignore")
            if args.command == "fit":
                _estimator_class(args.model.lower(), args.task, args.augmentation)  # known?
                args.param = _param_pairs(args)
                return _fit(args, args._cls, args._preset, args._params)
            return _predict(args) if args.command == "predict" else _evaluate(args)
    except KeyboardInterrupt:
        print("skfm: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # one line, never a traceback
        text = " ".join(str(e).split()) or type(e).__name__
        if not isinstance(e, (CommandError, ValueError, OSError)):
            text = f"{type(e).__name__}: {text}"
        print(f"skfm: error: {text}", file=sys.stderr)
        return 1


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"skfm: warning: {' '.join(str(message).split())}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
