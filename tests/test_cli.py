"""The ``skfm`` command (skfm._cli): fit -> predict -> evaluate round trips on libFM and libFFM
files give what the Python API gives on the same data (read by scikit-learn's own loader where
it can), flags reach the estimator, and every error is one line on stderr."""
import os
import subprocess
import sys
import tomllib

import joblib
import numpy as np
import pytest
from sklearn.datasets import dump_svmlight_file, load_svmlight_files
from sklearn.metrics import log_loss, mean_squared_error, roc_auc_score

import skfm
from skfm import FMClassifier, NFMRegressor
from skfm._cli import main
from skfm.datasets import load_libffm, make_fm_classification, make_fm_regression

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = ["--n-factors", "4", "--max-iter", "3", "--batch-size", "64", "--random-state", "0"]


@pytest.fixture(scope="module")
def libfm_files(tmp_path_factory):
    """train / valid / test libFM files, labels -1/1 as libFM writes them."""
    d = tmp_path_factory.mktemp("libfm")
    X, y = make_fm_classification(n_samples=900, n_fields=4, field_size=6, random_state=0)
    paths = {}
    for name, rows in (("train", slice(0, 500)), ("valid", slice(500, 700)),
                       ("test", slice(700, 900))):
        paths[name] = str(d / f"{name}.libfm")
        dump_svmlight_file(X[rows], 2 * y[rows] - 1, paths[name], zero_based=True)
    return paths


def _read_sklearn(paths):
    """(X, y) pairs as scikit-learn's loader reads the files (one set of columns), y > 0."""
    loaded = load_svmlight_files(paths, zero_based=True, dtype=np.float32)
    return [(X, (y > 0).astype(np.int64)) for X, y in zip(loaded[::2], loaded[1::2])]


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_libfm_round_trip_is_the_python_api(libfm_files, tmp_path, capsys):
    model, scores = tmp_path / "m.joblib", tmp_path / "scores.txt"
    code, out, err = _run(capsys, "fit", libfm_files["train"], "--validation",
                          libfm_files["valid"], *SMALL, "-o", model)
    assert code == 0, err
    assert "Epoch 1, loss = " in out and "validation score" in out  # verbose by default
    (X, y), (Xv, yv) = _read_sklearn([libfm_files["train"], libfm_files["valid"]])
    api = FMClassifier(n_factors=4, max_iter=3, batch_size=64, random_state=0).fit(
        X, y, X_val=Xv, y_val=yv)
    fitted = joblib.load(model)
    assert type(fitted) is FMClassifier and fitted.validation_scores_ == api.validation_scores_

    assert _run(capsys, "predict", model, libfm_files["test"], "-o", scores)[0] == 0
    (Xt, yt), = _read_sklearn([libfm_files["test"]])
    Xt.resize(Xt.shape[0], X.shape[1])
    p = api.predict_proba(Xt)[:, 1]
    np.testing.assert_array_equal(np.loadtxt(scores), p)
    code, out, _ = _run(capsys, "predict", model, libfm_files["test"], "--decision")
    np.testing.assert_array_equal(np.loadtxt(out.splitlines()), api.decision_function(Xt))
    code, out, _ = _run(capsys, "predict", model, libfm_files["test"], "--label")
    np.testing.assert_array_equal(np.loadtxt(out.splitlines()), api.predict(Xt))

    code, out, _ = _run(capsys, "evaluate", model, libfm_files["test"])
    assert code == 0
    metrics = dict(line.split()[:2] for line in out.splitlines())
    assert int(metrics["rows"]) == 200
    assert float(metrics["auc"]) == pytest.approx(roc_auc_score(yt, p), abs=1e-6)
    assert float(metrics["logloss"]) == pytest.approx(log_loss(yt, p), abs=1e-6)


def _write_ffm(path, X, y, fields):
    with open(path, "w") as fh:
        for i in range(X.shape[0]):
            row = X[i]
            tokens = [f"{fields[j]}:{j}:{float(v)!r}" for j, v in zip(row.indices, row.data)]
            fh.write(" ".join([repr(float(y[i]))] + tokens) + "\n")


def test_libffm_regression_round_trip(tmp_path, capsys):
    """A libFFM file: its fields reach the estimator (fields_), a tuple flag
    (--hidden-layer-sizes 8,4) and --param reach it, evaluate prints the RMSE."""
    X, y = make_fm_regression(n_samples=400, n_fields=3, field_size=5, random_state=1)
    fields = np.repeat([2, 0, 7], 5)  # file field ids, relabelled by the estimator
    train, test = tmp_path / "train.ffm", tmp_path / "test.ffm"
    _write_ffm(train, X[:300], np.round(y[:300], 6), fields)
    _write_ffm(test, X[300:], np.round(y[300:], 6), fields)
    model = tmp_path / "nfm.joblib"
    code, out, err = _run(capsys, "fit", train, "--model", "nfm", "--task", "regression",
                          *SMALL, "--hidden-layer-sizes", "8,4", "--param", "dropout_bi=0",
                          "--early-stopping", "false", "-q", "-o", model)
    assert code == 0, err
    assert out == ""  # --quiet
    fitted = joblib.load(model)
    assert type(fitted) is NFMRegressor and fitted.hidden_layer_sizes == (8, 4)
    np.testing.assert_array_equal(fitted.fields_, np.repeat([1, 0, 2], 5))
    Xf, yf, ff = load_libffm(train, binary=False)
    api = NFMRegressor(n_factors=4, max_iter=3, batch_size=64, random_state=0,
                       hidden_layer_sizes=(8, 4), dropout_bi=0.0, early_stopping=False,
                       fields=ff).fit(Xf, yf)
    Xt, yt, _ = load_libffm(test, n_features=Xf.shape[1], binary=False)
    np.testing.assert_allclose(yt, np.round(y[300:], 6))
    code, out, _ = _run(capsys, "predict", model, test)
    np.testing.assert_array_equal(np.loadtxt(out.splitlines()), api.predict(Xt))
    code, out, _ = _run(capsys, "evaluate", model, test)
    metrics = dict(line.split() for line in out.splitlines())
    assert float(metrics["rmse"]) == pytest.approx(
        np.sqrt(mean_squared_error(yt, api.predict(Xt))), abs=1e-6)


@pytest.mark.parametrize("argv, cls, augmentation", [
    (["--model", "smfm"], "SMFMClassifier", "saliency"),
    (["--model", "fm", "--augmentation", "mix"], "FMClassifier", "mix"),
    (["--model", "mixfm"], "MixFMClassifier", "mix"),
    (["--model", "nfm", "--augmentation", "max", "--n-candidates", "3"], "NFMClassifier", "max"),
    (["--model", "deepfm", "--augmentation", "copy", "--param", "batch_norm=no"],
     "DeepFMClassifier", "copy"),
])
def test_models_and_augmentations(libfm_files, tmp_path, capsys, argv, cls, augmentation):
    model = tmp_path / "m.joblib"
    code, _, err = _run(capsys, "fit", libfm_files["train"], *SMALL, "--max-iter", "1",
                        "--mix-ratio", "0.5", *argv, "-q", "-o", model)
    assert code == 0, err
    est = joblib.load(model)
    assert type(est).__name__ == cls and est.augmentation == augmentation
    assert est.mix_ratio == 0.5 and est.n_factors == 4


def test_fit_help_lists_the_estimators_parameters(capsys):
    code, out, _ = _run(capsys, "fit", "--help")
    assert code == 0
    for name in FMClassifier().get_params():
        if name not in ("augmentation", "fields", "verbose", "warm_start"):
            assert "--" + name.replace("_", "-") in out, name
    code, out, _ = _run(capsys, "fit", "--model", "nfm", "--help")
    assert "--hidden-layer-sizes INT,INT,..." in out and "--dropout-bi FLOAT" in out


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, libfm_files):
    d = tmp_path_factory.mktemp("bad")
    (d / "bad.libfm").write_text("1 0:1\n\n-1 3:x\n")
    (d / "text.joblib").write_text("not a pickle\n")
    joblib.dump({"a": 1}, d / "dict.joblib")
    return d


ERRORS = [
    (lambda d, f: ["fit", d / "bad.libfm", "-o", d / "m"],
     "bad.libfm, line 3: token '3:x' is not feature:value"),
    (lambda d, f: ["fit", d / "missing.libfm", "-o", d / "m"], "missing.libfm: no such file"),
    (lambda d, f: ["fit", f["train"], "--model", "ffmx", "-o", d / "m"],
     "unknown model 'ffmx'; choose from"),
    (lambda d, f: ["predict", d / "text.joblib", f["test"]],
     "text.joblib is not an skfm model file"),
    (lambda d, f: ["predict", d / "dict.joblib", f["test"]],
     "dict.joblib holds a dict, not a fitted skfm estimator"),
    (lambda d, f: ["evaluate", d / "missing.joblib", f["test"]],
     "missing.joblib: no such model file"),
    (lambda d, f: ["fit", f["train"], "--learning-rate-init", "1e6", "--init-std", "10",
                   "--max-iter", "2", "-o", d / "m"], "TrainingDivergedError: Training diverged"),
    (lambda d, f: ["fit", f["train"], "--param", "nope=1", "-o", d / "m"],
     "has no parameter 'nope'"),
    (lambda d, f: ["fit", f["train"], "--n-factors", "many", "-o", d / "m"],
     "argument --n-factors: 'many' is not an integer"),
    (lambda d, f: ["fit", f["train"], "--alpha", "-1", "-o", d / "m"],
     "The 'alpha' parameter of FMClassifier must be"),
    (lambda d, f: ["fit", f["train"], "--model", "smfm", "--augmentation", "mix", "-o",
                   d / "m"], "--model smfm trains with augmentation 'saliency'"),
    (lambda d, f: ["predict", d / "m.joblib", f["test"], "--proba", "--label"],
     "not allowed with argument"),
]


@pytest.mark.parametrize("argv, message", ERRORS)
def test_errors_are_one_line(bad_files, libfm_files, capsys, argv, message):
    code, _, err = _run(capsys, *argv(bad_files, libfm_files))
    assert code != 0
    assert err.count("\n") == 1 and err.startswith("skfm: error: "), err
    assert message in err and "Traceback" not in err


def test_console_script_in_a_subprocess(libfm_files, tmp_path):
    """``python -m skfm._cli`` (what the ``skfm`` console script runs, as pyproject.toml
    declares) fits in a fresh process; a malformed file exits 1 with one line, no
    traceback; ``python -m skfm`` is still the demo."""
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as fh:
        assert tomllib.load(fh)["project"]["scripts"] == {"skfm": "skfm._cli:main"}
    env = dict(os.environ, PYTHONPATH=ROOT)
    model = tmp_path / "m.joblib"
    run = subprocess.run([sys.executable, "-m", "skfm._cli", "fit", libfm_files["train"],
                          *SMALL, "--max-iter", "1", "-q", "-o", str(model)], env=env,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert isinstance(joblib.load(model), FMClassifier)
    bad = tmp_path / "bad.libfm"
    bad.write_text("1 0:1\nx 1:1\n")
    run = subprocess.run([sys.executable, "-m", "skfm._cli", "predict", str(model), str(bad)],
                         env=env, capture_output=True, text=True)
    assert run.returncode == 1 and run.stdout == ""
    assert run.stderr == f"skfm: error: {bad}, line 2: the label 'x' is not a number.\n"
    run = subprocess.run([sys.executable, "-m", "skfm", "--help"], env=env,
                         capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.startswith("usage: python -m skfm")
    assert skfm.__file__.startswith(ROOT)
