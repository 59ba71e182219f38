"""Reliability of every registered estimator (skfm._platform.all_estimators()): a fit that is
interrupted (KeyboardInterrupt from a callback or from another thread) leaves a first fit
unfitted and a continued fit exactly as it was; concurrent predictions from several threads
equal serial ones, and two fits in two threads give the models they give alone; pickles of
earlier versions load (tests/fixtures/) and pickles of incompatible versions are refused;
numerical edge cases give finite models.  The user guide's "Guarantees" name these tests.
The property-based fuzzing of the input formats is in test_fuzz.py."""
import copy
import ctypes
import os
import pickle
import re
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import NotFittedError

import skfm
import skfm._base
import skfm._trainer
from skfm._kernels.losses import LOGISTIC
from skfm._platform import all_estimators
from skfm._version import PICKLE_FORMAT
from skfm.datasets import make_fm_classification, make_fm_regression

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

ENTRIES = all_estimators()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
entries = pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
# where the interruption comes from: a training step of every estimator; the verbose print of
# an epoch (a user's Ctrl-C) for the FM estimators (the same code path for all)
interruptions = pytest.mark.parametrize(
    "entry, how", [(e, "step") for e in ENTRIES]
    + [(e, "verbose") for e in ENTRIES if e.model == "FM" and not e.augmentation],
    ids=lambda v: v if isinstance(v, str) else v.name)


def _data(entry, n_samples=80, random_state=0):
    """Small one-hot data; classifiers get 3 classes (one-vs-rest: an epoch trains one model
    per class, so an interruption can fall between them)."""
    if entry.task == "classifier":
        X, y = make_fm_classification(n_samples=n_samples, n_fields=3, field_size=4,
                                      random_state=random_state)
        y = np.where(y == 1, np.arange(n_samples) % 2 + 1, 0)
        return X, y
    return make_fm_regression(n_samples=n_samples, n_fields=3, field_size=4,
                              random_state=random_state)


def _est(entry, **kwargs):
    return entry.cls(**{**entry.fast, "random_state": 0, "n_jobs": 1, **kwargs})


def _outputs(est, X):
    return est.decision_function(X) if hasattr(est, "decision_function") else est.predict(X)


def _assert_same(a, b, path="est"):
    """a and b (estimator __dict__s, or parts of them) are equal: arrays bit for bit (dtype,
    shape and values), random generators in the same state."""
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape, path
        np.testing.assert_array_equal(a, b, err_msg=path)
    elif isinstance(a, np.random.Generator):
        assert a.bit_generator.state == b.bit_generator.state, path
    elif isinstance(a, dict):
        assert sorted(a) == sorted(b), (path, sorted(a), sorted(b))
        for k in a:
            _assert_same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), path
        for i, (u, v) in enumerate(zip(a, b)):
            _assert_same(u, v, f"{path}[{i}]")
    elif isinstance(a, float) and np.isnan(a):
        assert isinstance(b, float) and np.isnan(b), path
    else:
        assert a == b, (path, a, b)


def _assert_unfitted(est, X):
    with pytest.raises(NotFittedError):
        _outputs(est, X)
    for attr in ("n_features_in_", "classes_", "n_iter_", "loss_curve_", "fields_"):
        assert not hasattr(est, attr), attr


# --------------------------------------------------------------------------- interruption
class _Interrupt:
    """Raises KeyboardInterrupt at the ``at``-th training step of one output (one class of a
    one-vs-rest model) in an epoch, after the step has updated the parameters: the kernels run
    an epoch in one call, so that is where Python code, and Ctrl-C, gets control."""

    def __init__(self, monkeypatch, at):
        self.at, self.calls = at, 0
        run_epoch = skfm._trainer.run_epoch

        outer = self

        class Core:
            def __init__(self, core):
                self._core = core

            def __getattr__(self, name):
                return getattr(self._core, name)

            def train_epoch(self, *args):
                out = self._core.train_epoch(*args)
                outer.calls += 1
                if outer.calls == outer.at:
                    raise KeyboardInterrupt
                return out

        def interrupted(core, *args, **kwargs):
            return run_epoch(Core(core), *args, **kwargs)

        monkeypatch.setattr(skfm._trainer, "run_epoch", interrupted)


class _InterruptingStdout:
    """A stdout whose ``at``-th line starting with "Epoch" raises KeyboardInterrupt: the user
    pressing Ctrl-C while ``verbose`` prints."""

    def __init__(self, at):
        self.at, self.lines = at, 0

    def write(self, text):
        if text.startswith("Epoch"):
            self.lines += 1
            if self.lines == self.at:
                raise KeyboardInterrupt
        return len(text)

    def flush(self):
        pass


def _interrupt(monkeypatch, how, at):
    if how == "step":
        _Interrupt(monkeypatch, at)
    else:
        monkeypatch.setattr(sys, "stdout", _InterruptingStdout(at))


def _other_rows(X):
    """Rows for a continued fit: some of X's, without the first field's columns (the table
    rows of features absent from the continued fit's rows must be left alone too)."""
    X2 = X[:50].tolil()
    X2[:, :4] = 0
    return X2.tocsr()


@interruptions
def test_interrupted_first_fit_leaves_the_estimator_unfitted(entry, how, monkeypatch):
    """A KeyboardInterrupt during a first fit (or a refit with warm_start=False, or a first
    partial_fit) leaves the estimator unfitted; fitting again gives the model an
    uninterrupted fit gives."""
    X, y = _data(entry)
    expected = _outputs(_est(entry).fit(X, y), X)
    classes = {"classes": np.unique(y)} if entry.task == "classifier" else {}
    with monkeypatch.context() as m:
        est = _est(entry, verbose=how == "verbose")
        _interrupt(m, how, at=2)
        with pytest.raises(KeyboardInterrupt):
            est.fit(X, y)
    _assert_unfitted(est, X)
    refit = _est(entry).fit(X, y)  # fitted, then refit and interrupted
    with monkeypatch.context() as m:
        refit.set_params(verbose=how == "verbose")
        _interrupt(m, how, at=2)
        with pytest.raises(KeyboardInterrupt):
            refit.fit(X, y)
    _assert_unfitted(refit, X)
    with monkeypatch.context() as m:
        first = _est(entry, verbose=how == "verbose")
        _interrupt(m, how, at=1)
        with pytest.raises(KeyboardInterrupt):
            first.partial_fit(X, y, **classes)
    _assert_unfitted(first, X)
    est.set_params(verbose=False)
    np.testing.assert_array_equal(_outputs(est.fit(X, y), X), expected)


@interruptions
@pytest.mark.parametrize("call", ["warm_start", "partial_fit", "early_stopping"])
def test_interrupted_continued_fit_leaves_the_model_as_it_was(entry, call, how, monkeypatch):
    """A KeyboardInterrupt during a warm-started fit (with and without early stopping) or a
    partial_fit leaves every attribute of the estimator exactly as it was (parameters,
    optimizer moments, loss curve, random generator): continuing it afterwards gives the model
    that an uninterrupted estimator gives."""
    X, y = _data(entry)
    kw = {"warm_start": True, "max_iter": 4, "verbose": how == "verbose"}
    if call == "early_stopping":
        kw.update(early_stopping=True, validation_fraction=0.25, n_iter_no_change=10)
    est = _est(entry, **kw)
    with monkeypatch.context() as m:  # fitted (its verbose lines go nowhere)
        m.setattr(sys, "stdout", _InterruptingStdout(0))
        est.fit(X, y)
    X2, y2 = _other_rows(X), y[:50]
    twin = copy.deepcopy(est)
    before = copy.deepcopy(est.__dict__)

    def go_on(e):
        return e.fit(X2, y2) if call != "partial_fit" else e.partial_fit(X2, y2)

    with monkeypatch.context() as m:
        # partial_fit: its one epoch (a one-vs-rest classifier between two classes of it);
        # fit: its second epoch
        one = call == "partial_fit" and (how == "verbose" or entry.task == "regressor")
        _interrupt(m, how, at=1 if one else 2)
        with pytest.raises(KeyboardInterrupt):
            go_on(est)
    _assert_same(est.__dict__, before)
    with monkeypatch.context() as m:
        m.setattr(sys, "stdout", _InterruptingStdout(0))
        go_on(est)
        go_on(twin)
    np.testing.assert_array_equal(_outputs(est, X), _outputs(twin, X))
    assert est.loss_curve_ == twin.loss_curve_


def _raise_in_thread(thread_id, exc):
    """Raise ``exc`` in the thread ``thread_id`` at its next Python instruction."""
    n = ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id),
                                                   ctypes.py_object(exc))
    assert n == 1


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e.model in ("FM", "DeepFM")
                                   and not e.augmentation], ids=lambda e: e.name)
def test_interrupted_from_another_thread(entry):
    """Ctrl-C as another thread delivers it (PyThreadState_SetAsyncExc, as signal handlers and
    debuggers do): the exception arrives wherever the fitting thread is in Python code; a
    warm-started fit is left as it was."""
    X, y = _data(entry)
    est = _est(entry, warm_start=True, max_iter=2).fit(X, y)
    before = copy.deepcopy(est.__dict__)
    est.set_params(max_iter=2000, n_iter_no_change=2000, tol=0.0)
    before["max_iter"], before["n_iter_no_change"], before["tol"] = 2000, 2000, 0.0
    main, started = threading.get_ident(), len(est.loss_curve_)

    def interrupter():
        while len(getattr(est, "loss_curve_", ())) < started + 3:
            pass
        _raise_in_thread(main, KeyboardInterrupt)

    t = threading.Thread(target=interrupter, daemon=True)
    with pytest.raises(KeyboardInterrupt):
        t.start()
        est.fit(X, y)
    t.join()
    _assert_same(est.__dict__, before)


# --------------------------------------------------------------------------- persistence
FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "pickles")


def _fixtures():
    """(skfm version, estimator name) of every pickle under tests/fixtures/pickles/."""
    return sorted((version, name[:-4]) for version in os.listdir(FIXTURES)
                  for name in os.listdir(os.path.join(FIXTURES, version))
                  if name.endswith(".pkl"))


@pytest.mark.parametrize("version, name", _fixtures(), ids=lambda v: v)
def test_pickles_of_released_versions_predict_the_same(version, name):
    """A model pickled by a released skfm (tests/fixtures/make_pickles.py) loads in this one
    and gives the outputs it gave when pickled (to rounding: the kernels' sums may be
    vectorised differently on another CPU), and goes on training."""
    with open(os.path.join(FIXTURES, version, name + ".pkl"), "rb") as fh:
        est = pickle.load(fh)
    assert type(est) is getattr(skfm, name)
    expected = np.load(os.path.join(FIXTURES, version, name + ".npz"))
    X, y = expected["X"], expected["y"]
    for method in ("predict", "predict_proba", "decision_function"):
        if method in expected:
            np.testing.assert_allclose(getattr(est, method)(X), expected[method], rtol=1e-9,
                                       atol=1e-12, err_msg=method)
    np.testing.assert_allclose(est.saliency(X, y), expected["saliency"], rtol=1e-9, atol=1e-12)
    if est._loss_id == LOGISTIC:
        np.testing.assert_array_equal(est.predict(X), expected["predict"])
    n_iter = est.n_iter_
    est.partial_fit(X, y)
    assert est.n_iter_ == n_iter + 1 and np.isfinite(_outputs(est, X)).all()


def test_every_estimator_has_a_pickle_fixture_of_this_version():
    """A new estimator, or a new release, adds its fixtures: run tests/fixtures/make_pickles.py."""
    here = os.path.join(FIXTURES, skfm.__version__)
    missing = [e.name for e in ENTRIES
               if not os.path.exists(os.path.join(here, e.name + ".pkl"))]
    assert not missing, f"no pickle fixture of skfm {skfm.__version__} for {missing}"


def _pickled_under(est, monkeypatch, fmt, version):
    with monkeypatch.context() as m:
        m.setattr(skfm._base, "PICKLE_FORMAT", fmt)
        m.setattr(skfm._base, "__version__", version)
        return pickle.dumps(est)


def _tiny(entry):
    X, y = _data(entry, n_samples=30)
    return _est(entry, max_iter=1).fit(X, y), X


@pytest.mark.parametrize("entry", ENTRIES[:1] + [e for e in ENTRIES if e.model == "FM"][:1],
                         ids=lambda e: e.name)
def test_pickle_of_another_format_is_refused(entry, monkeypatch):
    """A pickle of a newer format, or of an older one that no migration converts, raises
    ValueError naming the skfm version that wrote it and this one, instead of loading a model
    that could predict wrongly; an older format with a migration is converted."""
    est, X = _tiny(entry)
    newer = _pickled_under(est, monkeypatch, PICKLE_FORMAT + 1, "9.0")
    with pytest.raises(ValueError, match=rf"pickled by skfm 9\.0 \(pickle format "
                                         rf"{PICKLE_FORMAT + 1}\), which this skfm "
                                         rf"{re.escape(skfm.__version__)} cannot read"):
        pickle.loads(newer)
    older = _pickled_under(est, monkeypatch, PICKLE_FORMAT - 1, "0.0.1")
    with pytest.raises(ValueError, match=r"pickled by skfm 0\.0\.1 \(pickle format "
                                         rf"{PICKLE_FORMAT - 1}\); skfm "
                                         rf"{re.escape(skfm.__version__)} reads"):
        pickle.loads(older)

    def migrate(state):
        state = dict(state, migrated=True)
        return state

    monkeypatch.setitem(skfm._base.PICKLE_MIGRATIONS, PICKLE_FORMAT - 1, migrate)
    back = pickle.loads(older)
    assert back.migrated
    np.testing.assert_array_equal(_outputs(back, X), _outputs(est, X))


def test_unstamped_pickle_is_the_first_format():
    """A state pickled before the stamp existed (skfm 0.1.0) loads as format 1."""
    entry = ENTRIES[0]
    est, X = _tiny(entry)
    state = est.__getstate__()
    assert state.pop("_skfm_version") == skfm.__version__
    assert state.pop("_skfm_pickle_format") == PICKLE_FORMAT
    back = entry.cls.__new__(entry.cls)
    back.__setstate__(state)
    np.testing.assert_array_equal(_outputs(back, X), _outputs(est, X))


# --------------------------------------------------------------------------- threads
def _blas_threads():
    return [m["num_threads"] for m in skfm._trainer._blas_controller().info()
            if m["user_api"] == "blas"]


def _methods(est, X, y):
    calls = {"predict": lambda: est.predict(X), "saliency": lambda: est.saliency(X, y)}
    if hasattr(est, "predict_proba"):
        calls.update(predict_proba=lambda: est.predict_proba(X),
                     decision_function=lambda: est.decision_function(X))
    return calls


def _in_threads(functions):
    """Run the functions in threads of their own, started together; their results in order
    (an exception in a thread is raised here)."""
    results = [None] * len(functions)
    barrier = threading.Barrier(len(functions))

    def run(i):
        barrier.wait()
        try:
            results[i] = ("ok", functions[i]())
        except BaseException as e:  # noqa: BLE001 (re-raised in the calling thread)
            results[i] = ("error", e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(functions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for kind, value in results:
        if kind == "error":
            raise value
    return [value for _, value in results]


@entries
def test_concurrent_predictions_equal_serial_ones(entry):
    """predict, predict_proba, decision_function and saliency called from 4 Python threads at
    once on one fitted model give the serial results bit for bit, and leave BLAS's thread
    count as it was (the kernels hold BLAS to one thread while they run)."""
    X, y = _data(entry, n_samples=200)
    est = _est(entry, n_jobs=1).fit(X, y)
    blas = _blas_threads()
    calls = _methods(est, X, y)
    serial = {name: f() for name, f in calls.items()}

    def worker():
        return [(name, f()) for _ in range(2) for name, f in calls.items()]

    for results in _in_threads([worker] * 4):
        for name, value in results:
            np.testing.assert_array_equal(value, serial[name], err_msg=name)
    assert _blas_threads() == blas


def test_blas_limit_is_held_until_the_last_thread_leaves():
    """numba_threads holds BLAS to one thread while any thread is inside it and restores the
    original count when the last leaves, whatever the order (with a limit per block, the first
    thread to leave restored the count under the other's running kernels, and the last one
    restored the one thread it had found, leaving BLAS on one thread for good)."""
    original = _blas_threads()
    a_inside, b_inside, a_left, seen = (threading.Event(), threading.Event(),
                                        threading.Event(), {})

    def a():
        with skfm._trainer.numba_threads(1):
            a_inside.set()
            b_inside.wait(60)
        a_left.set()

    def b():
        a_inside.wait(60)
        with skfm._trainer.numba_threads(1):
            b_inside.set()
            a_left.wait(60)
            seen["b inside after a left"] = _blas_threads()

    _in_threads([a, b])
    assert seen == {"b inside after a left": [1] * len(original)}
    assert _blas_threads() == original


@pytest.mark.parametrize("pair", [("FMClassifier", "FMRegressor"),
                                  ("DeepFMClassifier", "SMFMClassifier"),
                                  ("NFMRegressor", "AFMClassifier")], ids="+".join)
def test_two_fits_in_two_threads_give_the_models_they_give_alone(pair):
    """Two estimators fitting at once in two threads (n_jobs=2 each) give the models they give
    when fitted one after the other."""
    entries_ = [next(e for e in ENTRIES if e.name == name) for name in pair]
    data = [_data(e, n_samples=300, random_state=i) for i, e in enumerate(entries_)]
    alone = [_outputs(_est(e, n_jobs=2).fit(X, y), X) for e, (X, y) in zip(entries_, data)]
    ests = [_est(e, n_jobs=2) for e in entries_]
    _in_threads([lambda i=i: ests[i].fit(*data[i]) for i in range(2)])
    for est, (X, _), expected in zip(ests, data, alone):
        np.testing.assert_array_equal(_outputs(est, X), expected)


def test_concurrent_predictions_with_numba_workqueue_layer():
    """Numba's workqueue threading layer (its fallback where neither TBB nor OpenMP is
    installed, as on macOS by default) aborts the process when two threads run parallel
    kernels at once; skfm serialises its kernels under that layer."""
    code = textwrap.dedent("""
        import threading, warnings
        import numba, numpy as np
        import skfm
        from skfm.datasets import make_fm_classification
        warnings.simplefilter("ignore")
        X, y = make_fm_classification(n_samples=2000, n_fields=3, field_size=4,
                                      random_state=0)
        est = skfm.FMClassifier(n_factors=3, max_iter=2, n_jobs=2, random_state=0).fit(X, y)
        assert numba.threading_layer() == "workqueue"
        ref = est.predict_proba(X)
        sal = est.saliency(X, y)
        reg = skfm.FMRegressor(n_factors=3, max_iter=2, n_jobs=2, random_state=0)
        alone = reg.fit(X, y).predict(X)
        out = []
        def go():
            for _ in range(10):
                out.append(np.array_equal(est.predict_proba(X), ref))
                out.append(np.array_equal(est.saliency(X, y), sal))
        def fit():
            reg = skfm.FMRegressor(n_factors=3, max_iter=2, n_jobs=2, random_state=0).fit(X, y)
            out.append(np.array_equal(reg.predict(X), alone))
        threads = [threading.Thread(target=go) for _ in range(3)]
        threads.append(threading.Thread(target=fit))
        for t in threads: t.start()
        for t in threads: t.join()
        assert len(out) == 61 and all(out)
        print("ok")
    """)
    env = dict(os.environ, NUMBA_THREADING_LAYER="workqueue", NUMBA_NUM_THREADS="2",
               PYTHONPATH=os.pathsep.join([ROOT] + sys.path))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, check=False,
                          text=True, timeout=600)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


# --------------------------------------------------------------------------- numerical edges
def _check_finite(est, X, y):
    """Every output of est on X is finite and probabilities are probabilities."""
    out = _outputs(est, X)
    assert np.isfinite(out).all()
    assert np.isfinite(est.saliency(X, y)).all()
    if hasattr(est, "predict_proba"):
        P = est.predict_proba(X)
        np.testing.assert_allclose(P.sum(1), 1.0, rtol=1e-12)
        assert ((P >= 0) & (P <= 1)).all()
    for p in est._params:
        for v in p.values():
            if isinstance(v, np.ndarray) and v.dtype.kind == "f":
                assert np.isfinite(v).all()
    return out


@entries
def test_numerical_edge_cases(entry):
    """All-zero rows, a feature seen once, a column that appears only at predict, batches of
    one class, sample weights with zeros: finite models and sensible outputs."""
    X, y = _data(entry, n_samples=120)
    X = sp.hstack([X, sp.csr_matrix((X.shape[0], 2))]).tolil()  # 2 columns never set
    X[:10] = 0  # all-zero rows
    X[20, 12] = 1.0  # column 12 seen in one row only (column 13: only at predict)
    X = X.tocsr()
    y = np.asarray(y)
    order = np.argsort(y, kind="stable")  # sorted labels, no shuffle: one class a batch
    sw = np.where(np.arange(len(y)) % 3 == 0, 0.0, 1.0)  # a third of the weights 0
    est = _est(entry, shuffle=False, batch_size=8, alpha=1e-4, fields="auto").fit(
        X[order], y[order], sample_weight=sw)
    out = _check_finite(est, X, y)
    np.testing.assert_array_equal(out[:10], np.broadcast_to(out[0], out[:10].shape))
    # the column that appears only at predict: never trained (its weight is 0), and rows
    # with it predict finitely
    coef = np.atleast_2d(est.coef_)
    assert (coef[:, 13] == 0).all()
    X_new = X.tolil()
    X_new[:, 13] = 1.0
    _check_finite(est, X_new.tocsr(), y)
    # a partial_fit batch of one class; one with all weights 0 is refused, named
    one = y == y[-1]
    est.partial_fit(X[one], y[one])
    before = copy.deepcopy(est.__dict__)
    with pytest.raises(ValueError, match="Sample weights must contain at least one non-zero"):
        est.partial_fit(X, y, sample_weight=np.zeros(len(y)))
    _assert_same(est.__dict__, before)
    _check_finite(est, X, y)


def test_classifier_intercept_starts_at_the_weighted_log_odds_of_a_rare_class():
    """Before its first step a classifier's w0 is, for a class rarer than 10% or more frequent
    than 90% in the training rows, its weighted log-odds with half a mean (nonzero) row weight
    added to each side, and 0 for any other class: checked on fits whose steps cannot move it
    (learning rate 1e-12), binary and one-vs-rest, weighted; partial_fit's first batch sets
    it only when every class is in it."""
    from skfm import FMClassifier
    rng = np.random.default_rng(1)
    X = sp.random(300, 6, density=0.5, format="csr", random_state=1)
    kw = dict(learning_rate_init=1e-12, max_iter=1, early_stopping=False, random_state=0)
    far = np.log(9.0)  # the log-odds of a 10% rate
    cases = [((rng.random(300) < rate).astype(int), None) for rate in (0.04, 0.3, 0.96)]
    cases.append((rng.choice(3, 300, p=[0.05, 0.35, 0.6]), rng.choice([0.0, 0.5, 3.0], 300)))
    # the weighted rate decides: 20 positives of 300 (6.7%) weighing 3 each make 17.6%
    y = (np.arange(300) < 20).astype(int)
    cases.append((y, np.where(y == 1, 3.0, 1.0)))
    n_log_odds = n_zero = 0
    for y, sw in cases:
        w = np.ones(300) if sw is None else sw
        half = 0.5 * w.sum() / np.count_nonzero(w)
        est = FMClassifier(**kw).fit(X, y, sample_weight=sw)
        classes = np.unique(y)
        cols = classes[1:] if len(classes) == 2 else classes
        log_odds = [np.log((w[y == c].sum() + half) / (w[y != c].sum() + half)) for c in cols]
        expected = [lo if abs(lo) > far else 0.0 for lo in log_odds]
        n_log_odds += sum(e != 0 for e in expected)
        n_zero += sum(e == 0 for e in expected)
        np.testing.assert_allclose(np.atleast_1d(est.intercept_), expected, atol=1e-6)
    assert n_log_odds >= 3 and n_zero >= 4  # both branches checked
    # partial_fit: from its first batch when every class is in it, else at 0
    y = np.arange(20) == 3
    est = FMClassifier(**kw).partial_fit(X[:20], y, classes=[False, True])
    np.testing.assert_allclose(est.intercept_, np.log(1.5 / 19.5), atol=1e-6)
    est = FMClassifier(**kw).partial_fit(X[:20], np.zeros(20, int), classes=[0, 1])
    np.testing.assert_allclose(est.intercept_, 0.0, atol=1e-6)


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e.task == "classifier"],
                         ids=lambda e: e.name)
def test_one_positive_in_100000_rows(entry):
    """Extreme class imbalance (1 positive in 100,000 rows), one epoch at the defaults: a
    finite model that predicts the negative class on the negatives, with probabilities of the
    positive class near the base rate of 1e-5 there (within a factor of 10; the intercept
    starts at the log-odds.  From 0, Adam's steps of about learning_rate_init would take some
    10,000 steps to get there: after one epoch they were 0.15-0.37)."""
    n = 100_000
    rng = np.random.default_rng(0)
    cols = np.stack([rng.integers(0, 5, n), 5 + rng.integers(0, 5, n)], 1)
    X = sp.csr_matrix((np.ones(2 * n), cols.ravel(), np.arange(0, 2 * n + 1, 2)),
                      shape=(n, 10))
    y = np.zeros(n, int)
    y[12345] = 1
    est = _est(entry, max_iter=1, batch_size="auto", early_stopping=False).fit(X, y)
    P = est.predict_proba(X[:2000])[:, 1]
    assert np.isfinite(P).all() and 1e-6 < P.min() and P.max() < 1e-4
    assert (est.predict(X[:2000]) == 0).all()
    assert np.isfinite(est.saliency(X[:2000], y[:2000])).all()
