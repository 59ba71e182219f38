"""Property-based fuzzing (hypothesis) of every registered estimator's entry points: random
inputs in every format the API accepts (dense arrays of any dtype, order and writeability,
memory maps, CSR with duplicate, unsorted or int64 indices, COO, CSC, LIL, DIA, pandas
DataFrames with sparse and categorical columns where pandas is installed; 0 or 1 rows, empty
rows, one column, huge and tiny values), random valid hyperparameters and random ``fields``.

The properties: nothing crashes in compiled code, the caller's arrays are never changed, and
either the model is finite with finite outputs (probabilities summing to 1), or a ValueError /
TypeError that names the problem is raised (or TrainingDivergedError, a FloatingPointError,
for a fit that diverges); the same rows predict identically in every format.

Profiles: ``HYPOTHESIS_PROFILE=ci`` (the default) runs a small fixed set of examples
(derandomized, so every run draws the same ones) within the suite's time budget;
``HYPOTHESIS_PROFILE=long`` runs many random ones on demand (docs/developing.md)."""
import contextlib
import copy
import inspect
import os
import re
import tempfile
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from skfm import TrainingDivergedError
from skfm._platform import all_estimators

ENTRIES = all_estimators()

settings.register_profile(
    "ci", derandomize=True, max_examples=60, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile(
    "long", max_examples=1000, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
PROFILE_NAME = os.environ.get("HYPOTHESIS_PROFILE", "ci")
PROFILE = settings.get_profile(PROFILE_NAME)

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

# values: ordinary, tiny (subnormal in float64), huge, zero, negative
VALUES = st.sampled_from([1.0, 0.5, -1.0, 2.0, 0.0, 3.0, 1e-300, 5e-324, 1e-30, 1e30, 1e200,
                          -1e200, 7.0, 1e5, 0.1])
DTYPES = st.sampled_from([np.float64, np.float32, np.float16, np.int64, np.int32, np.uint8,
                          np.bool_])


@st.composite
def matrices(draw, n_rows=None, n_cols=None):
    """A dense float64 matrix (the values the other formats are made from)."""
    n = draw(st.integers(0, 7)) if n_rows is None else n_rows
    m = draw(st.integers(1, 5)) if n_cols is None else n_cols
    mask = draw(st.lists(st.booleans(), min_size=n * m, max_size=n * m))
    vals = draw(st.lists(VALUES, min_size=n * m, max_size=n * m))
    return np.where(np.array(mask, bool), np.array(vals, float), 0.0).reshape(n, m)


try:  # pandas is not a test dependency (the dask extra brings it): its formats need it
    import pandas as pd
except ImportError:
    pd = None

FORMATS = ["dense", "fortran", "strided", "readonly", "memmap", "csr", "csr_unsorted",
           "csr_duplicates", "csr_int64", "coo", "csc", "lil", "dia"] + (
    ["pandas", "pandas_sparse", "pandas_categorical"] if pd is not None else [])


@contextlib.contextmanager
def as_format(A, fmt, dtype=np.float64):
    """A (dense float64) in format ``fmt`` and ``dtype`` (a context: a memory map lives in a
    temporary file until it ends)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # 1e200 as float16 is inf: intended
        B = A.astype(dtype)
    if fmt == "memmap":
        with tempfile.TemporaryDirectory() as d:
            mm = np.memmap(os.path.join(d, "X.dat"), dtype=B.dtype, mode="w+",
                           shape=B.shape if B.size else (1,))
            if B.size:
                mm[:] = B
                mm.flush()
                yield np.memmap(os.path.join(d, "X.dat"), dtype=B.dtype, mode="r",
                                shape=B.shape)
            else:
                yield B
            del mm
        return
    if fmt == "dense":
        yield np.ascontiguousarray(B)
    elif fmt == "fortran":
        yield np.asfortranarray(B)
    elif fmt == "strided":  # a non-contiguous view of a larger array
        big = np.zeros((B.shape[0], 2 * B.shape[1]), B.dtype)
        big[:, ::2] = B
        yield big[:, ::2]
    elif fmt == "readonly":
        R = B.copy()
        R.flags.writeable = False
        yield R
    elif fmt.startswith("pandas"):
        if B.dtype == np.float16 and fmt != "pandas":  # pandas has no float16 index
            B = B.astype(np.float32)
        df = pd.DataFrame(B, columns=[f"c{j}" for j in range(B.shape[1])])
        if fmt == "pandas_sparse":
            df = df.astype(pd.SparseDtype(B.dtype, B.dtype.type(0)))
        elif fmt == "pandas_categorical":
            df["c0"] = df["c0"].astype("category")
        yield df
    else:  # scipy.sparse has no float16: the same values in float32
        S = sp.csr_matrix(B.astype(np.float32) if B.dtype == np.float16 else B)
        if fmt == "csr_unsorted":
            for i in range(S.shape[0]):  # reverse each row's entries
                a, b = S.indptr[i], S.indptr[i + 1]
                S.indices[a:b] = S.indices[a:b][::-1].copy()
                S.data[a:b] = S.data[a:b][::-1].copy()
            S.has_sorted_indices = False
        elif fmt == "csr_duplicates":  # every float entry split in two halves
            coo = S.tocoo()
            rows = np.repeat(coo.row, 2)
            cols = np.repeat(coo.col, 2)
            data = np.repeat(coo.data, 2)
            if data.dtype.kind == "f":
                data = data / 2
                S = sp.csr_matrix((data, cols, np.r_[0, np.cumsum(np.bincount(
                    rows, minlength=B.shape[0]))]), shape=B.shape)
        elif fmt == "csr_int64":
            S.indices = S.indices.astype(np.int64)
            S.indptr = S.indptr.astype(np.int64)
        elif fmt != "csr":
            S = getattr(S, "to" + fmt)()
        yield S


def snapshot(X):
    """A copy of everything of X a fit may not change."""
    if sp.issparse(X):
        return X.copy(), {k: getattr(X, k).copy() for k in ("data", "indices", "indptr")
                          if hasattr(X, k)}
    if hasattr(X, "iloc"):
        return X.copy(deep=True), None
    return np.array(X, copy=True), None


def assert_unchanged(X, snap):
    copy_, arrays = snap
    if sp.issparse(X):
        assert X.format == copy_.format
        for k, v in arrays.items():
            np.testing.assert_array_equal(getattr(X, k), v, err_msg=k)
        assert (X != copy_).nnz == 0
    elif hasattr(X, "iloc"):
        assert X.equals(copy_)
    else:
        np.testing.assert_array_equal(np.asarray(X), copy_)


def assert_inputs_unchanged(X, snap, y, y_before, sw, sw_before):
    """X, y and sample_weight as the caller passed them."""
    assert_unchanged(X, snap)
    np.testing.assert_array_equal(y, y_before)
    if sw is not None:
        np.testing.assert_array_equal(sw, sw_before)


def assert_finite_model(est):
    """Every float parameter of a fitted estimator is finite."""
    for p in est._params:
        for v in p.values():
            if isinstance(v, np.ndarray) and v.dtype.kind == "f":
                assert np.isfinite(v).all()


@st.composite
def hyperparameters(draw, entry, n_cols):
    kw = dict(entry.fast)
    kw.update(
        n_factors=draw(st.integers(0, 3)),
        solver=draw(st.sampled_from(["adam", "adagrad", "sgd"])),
        learning_rate_init=draw(st.sampled_from([1e-3, 1e-2, 0.1])),
        batch_size=draw(st.sampled_from([1, 2, 5, "auto"])),
        max_iter=draw(st.integers(1, 3)),
        alpha=draw(st.sampled_from([0.0, 1e-4, 1.0])),
        shuffle=draw(st.booleans()),
        early_stopping=draw(st.sampled_from([False, "auto", True])),
        validation_fraction=draw(st.sampled_from([0.2, 0.5])),
        n_jobs=1, random_state=draw(st.integers(0, 3)))
    if entry.augmentation is None:
        kw["augmentation"] = draw(st.sampled_from([None, "copy", "mix", "saliency", "max"]))
    kw["n_candidates"] = draw(st.integers(1, 3))
    kw["mix_ratio"] = draw(st.sampled_from([0.5, 1.0, 2.0]))
    fields = draw(st.sampled_from(["none", "auto", "labels"]))
    if fields == "labels":
        kw["fields"] = draw(st.lists(st.integers(0, 3), min_size=n_cols, max_size=n_cols))
    elif fields == "auto":
        kw["fields"] = "auto"
    elif not entry.field_aware:
        kw["fields"] = None
    return kw


ALLOWED = (ValueError, TypeError, TrainingDivergedError)


def outputs(est, X, y):
    """Every prediction method's result on X (a dict), each checked finite."""
    out = {"predict": est.predict(X)}
    if hasattr(est, "predict_proba"):
        out["decision_function"] = est.decision_function(X)
        out["predict_proba"] = P = est.predict_proba(X)
        out["predict_log_proba"] = est.predict_log_proba(X)
        if P.shape[0]:
            np.testing.assert_allclose(P.sum(1), 1.0, rtol=1e-9)
            assert ((P >= 0) & (P <= 1)).all()
    else:
        assert np.isfinite(out["predict"]).all()
    out["saliency"] = est.saliency(X, y)
    for name, v in out.items():
        if name not in ("predict", "predict_log_proba"):
            assert np.isfinite(v).all(), name
    return out


@given(data=st.data())
@settings(PROFILE)
def test_fit_and_predict_any_input(data):
    """Any input the API accepts, any valid hyperparameters: finite model and outputs, or an
    error that names the problem; the caller's X, y and sample_weight are unchanged; the rows
    predict the same in every format."""
    entry = data.draw(st.sampled_from(ENTRIES), label="estimator")
    A = data.draw(matrices(), label="X")
    n, m = A.shape
    fmt = data.draw(st.sampled_from(FORMATS), label="format")
    dtype = data.draw(DTYPES, label="dtype")
    if entry.task == "classifier":
        labels = data.draw(st.sampled_from([[0, 1], [1, 2, 5], ["a", "b"], [True, False]]))
        y = np.array(data.draw(st.lists(st.sampled_from(labels), min_size=n, max_size=n)),
                     dtype=object if isinstance(labels[0], str) else None)
    else:
        y = np.array(data.draw(st.lists(st.sampled_from([0.0, 1.0, -2.5, 1e6, 1e-10, 3.0]),
                                        min_size=n, max_size=n)), float)
    sw = (None if data.draw(st.booleans(), label="unweighted")
          else np.array(data.draw(st.lists(st.sampled_from([0.0, 1.0, 2.0, 1e-3]),
                                           min_size=n, max_size=n)), float))
    kw = data.draw(hyperparameters(entry, m), label="hyperparameters")
    if PROFILE_NAME == "ci" and dtype in (np.float32, np.float16):
        # a float32 model with augmentation compiles kernel versions that no other test
        # compiles (tens of seconds each, cold): the long profile covers them
        kw["augmentation"] = entry.augmentation
    est = entry.cls(**kw)
    y_before = y.copy()
    sw_before = None if sw is None else sw.copy()
    with as_format(A, fmt, dtype) as X:
        snap = snapshot(X)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est.fit(X, y, sample_weight=sw)
        except ALLOWED as e:
            assert str(e), type(e)  # names the problem
            return
        finally:
            assert_inputs_unchanged(X, snap, y, y_before, sw, sw_before)
        assert_finite_model(est)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                expected = outputs(est, X, y)
        except ValueError as e:  # finite inputs that overflow the model: named
            assert "overflowed" in str(e) or "too large" in str(e), e
            return
        assert_unchanged(X, snap)
        # partial_fit continues it on the same input: finite, or refused by name
        cont = copy.deepcopy(est)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cont.partial_fit(X, y, sample_weight=sw)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                outputs(cont, X, y)
        except ALLOWED as e:
            assert str(e), type(e)
        assert_unchanged(X, snap)
        np.testing.assert_array_equal(y, y_before)
    # the same rows in other formats predict the same, bit for bit
    for other in data.draw(st.lists(st.sampled_from(FORMATS), min_size=1, max_size=3,
                                    unique=True), label="other formats"):
        with as_format(A, other, dtype) as X2, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "X has feature names, but ..."
            got = outputs(est, X2, y)
        for name, v in expected.items():
            np.testing.assert_array_equal(got[name], v, err_msg=f"{name} on {other}")


# --------------------------------------------------------------------------- file readers
LABELS = st.sampled_from(["1", "-1", "0", "0.5", "+1", "nan", "inf", "abc", "1e400", ""])
LIBFM_TOKENS = st.sampled_from(["0:1", "3:0.5", "2:-1", "1:0", "4:1e30", "-1:2", "2:nan",
                                "x:1", "5", "1:", ":1", "qid:3", "1:2:3", "99999999999:1",
                                "2:1e400", "#", "# c 1:2", "0x1:1", "3:1"])
LIBFFM_TOKENS = st.sampled_from(["0:0:1", "1:3:0.5", "2:4:-1", "0:1:0", "1:2", "-1:0:1",
                                 "0:-2:1", "a:1:1", "0:1:nan", "0:1:1e400", "3", "0:1:",
                                 "9999999999:1:1", "1:99999999999:1", "# x", "2:5:1"])


@given(lines=st.lists(st.tuples(LABELS, st.lists(LIBFM_TOKENS, max_size=5)), max_size=6),
       ffm=st.booleans(), data=st.data())
@settings(PROFILE)
def test_file_readers_any_text(lines, ffm, data):
    """load_libfm / load_libffm on random lines of valid and malformed tokens: a well-formed
    CSR matrix (finite values, indices within its columns) with one label per row, or a
    ValueError that names the file and the line.  scan_libfm / scan_libffm count the rows and
    columns load_* gives (and the same fields), and iter_libfm / iter_libffm in chunks of any
    size give the same rows; on a malformed file all of them refuse it alike."""
    from skfm._base import check_sparse_structure
    from skfm.datasets import (iter_libffm, iter_libfm, load_libffm, load_libfm, scan_libffm,
                               scan_libfm)
    if ffm:
        lines = [(label, data.draw(st.lists(LIBFFM_TOKENS, max_size=5))) for label, _ in lines]
    text = "\n".join(" ".join([label, *tokens]) for label, tokens in lines) + "\n"
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "rows.txt")
        with open(path, "w") as fh:
            fh.write(text)
        chunk_rows = data.draw(st.integers(1, 4), label="chunk_rows")
        try:
            out = load_libffm(path) if ffm else load_libfm(path)
        except ValueError as e:
            assert path in str(e), e
            for reader in ((scan_libffm if ffm else scan_libfm),
                           lambda p: list((iter_libffm if ffm else iter_libfm)(p, chunk_rows,
                                                                                 2**20))):
                with pytest.raises(ValueError, match=re.escape(path)):
                    reader(path)
            return
        X, y = out[0], out[1]
        assert sp.issparse(X) and X.format == "csr" and X.shape[0] == len(y)
        check_sparse_structure(X)
        assert np.isfinite(X.data).all()
        scan = scan_libffm(path) if ffm else scan_libfm(path)
        assert (scan.n_samples, scan.n_features) == X.shape
        if ffm:
            np.testing.assert_array_equal(scan.fields, out[2])
        chunks = list((iter_libffm if ffm else iter_libfm)(path, chunk_rows, X.shape[1]))
        assert all(c[0].shape[0] == chunk_rows for c in chunks[:-1])
        if chunks:
            Xi = sp.vstack([c[0] for c in chunks]).tocsr()
            assert (Xi != X).nnz == 0
            np.testing.assert_array_equal(np.concatenate([c[1] for c in chunks]), y)
        else:
            assert X.shape[0] == 0


# --------------------------------------------------------------------------- data generators
SMALL_INTS = st.sampled_from([-1, 0, 1, 2, 3, 5, 2.5, True, "3", None, np.int32(2)])
GENERATOR_PARAMS = {
    "n_samples": st.sampled_from([-1, 0, 1, 2, 7, 30, 2.0, "10", None]),
    "n_fields": SMALL_INTS, "field_size": SMALL_INTS,
    "field_sizes": st.sampled_from([None, None, [2, 3], [1], [], [0, 2], [2.5, 1], ["a"],
                                    [[1, 2]], (3, 1, 2), np.array([4, 1])]),
    "n_factors": SMALL_INTS,
    "skew": st.sampled_from([0.0, 0.5, 1.0, 3.0, 60.0, -1.0, float("nan"), float("inf")]),
    "scale": st.sampled_from([1.0, 0.0, 5.0, 1e3, 1e200, -1.0, float("nan"), float("inf")]),
    "noise": st.sampled_from([0.1, 0.0, 1e300, -0.5, float("nan")]),
    "dtype": st.sampled_from([np.float64, np.float32, np.int64, "float32", np.bool_, str,
                              "not a dtype", object]),
    "random_state": st.sampled_from([0, 1, np.random.RandomState(3), None, -1, "x"]),
    "return_fields": st.sampled_from([False, True, 1]),
    "return_params": st.sampled_from([False, True]),
    "n_train": st.sampled_from([-1, 0, 1, 5, 20]), "n_test": st.sampled_from([-1, 0, 1, 5]),
    "n_users": SMALL_INTS, "n_items": SMALL_INTS,
    "n_context": st.sampled_from([-1, 0, 1, 2]), "context_size": SMALL_INTS,
    "context_sizes": st.sampled_from([None, None, [2], [], [0], [1.5], [3, 1]]),
    "holdout": st.sampled_from([0.5, 0.1, 0.9, 0.0, 1.0, 1e-9, float("nan")]),
}


def _generators():
    from skfm.datasets import (make_fm_classification, make_fm_regression, make_frappe_like,
                               make_unseen_pairs)
    return [make_fm_classification, make_fm_regression, make_frappe_like, make_unseen_pairs]


def _check_generated(gen, kw, out):
    """The shapes and values every generator promises."""
    names = [p for p in inspect.signature(gen).parameters]
    n_sets = 2 if gen.__name__ == "make_unseen_pairs" else 1
    Xs, ys = out[:n_sets], out[n_sets:2 * n_sets]
    rest = list(out[2 * n_sets:])
    assert len(rest) == bool(kw.get("return_fields")) + bool(kw.get("return_params"))
    n_features = Xs[0].shape[1]
    for X, y in zip(Xs, ys):
        assert X.format == "csr" and X.has_canonical_format and X.shape[0] == len(y)
        assert X.shape[1] == n_features and X.dtype == np.dtype(kw.get("dtype", X.dtype))
        assert np.isfinite(y).all()
        row_nnz = np.diff(X.indptr)
        assert (row_nnz == row_nnz[0]).all() if len(row_nnz) else True  # one per field
        assert (X.data == 1).all()
        if gen.__name__ != "make_fm_regression":
            assert set(np.unique(y)) <= {0, 1}
    if kw.get("return_fields"):
        fields = rest.pop(0)
        assert fields.shape == (n_features,) and (np.diff(fields) >= 0).all()
        for X in Xs:  # one feature of every field per row
            if X.shape[0]:
                per_row = fields[X.indices].reshape(X.shape[0], -1)
                assert (np.sort(per_row, 1) == np.arange(fields.max() + 1)).all()
    if kw.get("return_params"):
        params = rest.pop(0)
        assert params["coef"].shape == (n_features,)
        assert "n_factors" not in names or params["factors"].shape[1] == kw.get(
            "n_factors", params["factors"].shape[1])


@given(data=st.data())
@settings(PROFILE)
def test_generators_any_parameters(data):
    """The synthetic data generators on random parameters, valid and not: the data they
    promise (canonical CSR, one feature per field in every row, labels in {0, 1}, finite
    targets, the same data again for the same integer random_state), or a ValueError /
    TypeError that names the parameter; never a hang, a crash or NaN data."""
    gen = data.draw(st.sampled_from(_generators()), label="generator")
    names = [p for p in inspect.signature(gen).parameters if p in GENERATOR_PARAMS]
    chosen = data.draw(st.lists(st.sampled_from(names), unique=True, max_size=4), label="set")
    kw = {name: data.draw(GENERATOR_PARAMS[name], label=name) for name in chosen}
    for size in ("n_samples", "n_train", "n_test"):  # small data: make_frappe_like's default
        if size in names and size not in kw:       # is 200,000 rows
            kw[size] = 20
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # overflow, NaN: a bug
            out = gen(**kw)
    except (ValueError, TypeError) as e:
        event(f"refused: {type(e).__name__}")
        assert any(name in str(e) for name in kw) or "make_unseen_pairs" in str(e), e
        return
    event("generated")
    _check_generated(gen, kw, out)
    if isinstance(kw.get("random_state"), int):
        again = gen(**kw)
        for a, b in zip(out, again):
            if sp.issparse(a):
                assert (a != b).nnz == 0
            elif isinstance(a, dict):
                for k in a:
                    np.testing.assert_array_equal(a[k], b[k])
            else:
                np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------- the command line
# The CI profile keeps to FM's float32 kernels (the files load as float32), which
# tests/test_cli.py compiles anyway: every other model's float32 training kernels, cold, would
# add minutes of compilation to the suite.  The long profile draws every model.
CLI_MODELS = (["fm", "mixfm", "smfm", "nope"] if PROFILE_NAME == "ci" else
              ["fm", "mixfm", "smfm", "nfm", "afm", "deepfm", "dcn", "ffm", "ifm", "maxfm",
               "nope"])
CLI_AUGMENTATIONS = (["none", "mix", "saliency", "bad"] if PROFILE_NAME == "ci" else
                     ["none", "mix", "saliency", "copy", "max", "bad"])
CLI_FLAGS = {
    "--model": st.sampled_from(CLI_MODELS),
    "--task": st.sampled_from(["classification", "regression", "ranking"]),
    "--augmentation": st.sampled_from(CLI_AUGMENTATIONS),
    "--format": st.sampled_from(["libfm", "libffm", "csv"]),
    "--param": st.sampled_from(["n_factors=2", "alpha=abc", "bogus=1", "max_iter", "=",
                                "batch_size=auto", "n_factors=1.5", "early_stopping=true",
                                "learning_rate_init=-1"]
                               + (["fields=auto"] if PROFILE_NAME != "ci" else [])),
    "--max-iter": st.sampled_from(["1", "2", "0", "-1", "x"]),
    "--n-factors": st.sampled_from(["2", "0", "-3", "2.5"]),
    "--batch-size": st.sampled_from(["4", "auto", "0"]),
    "--random-state": st.sampled_from(["0", "None", "x"]),
}


@pytest.fixture(scope="module")
def cli_files(tmp_path_factory):
    """Small valid libFM / libFFM files, a malformed one, an empty one and a missing path."""
    from skfm.datasets import make_fm_classification
    d = tmp_path_factory.mktemp("cli_fuzz")
    X, y = make_fm_classification(n_samples=40, n_fields=3, field_size=4, random_state=0)
    rows = [(2 * label - 1, X.indices[X.indptr[i]:X.indptr[i + 1]])
            for i, label in enumerate(y)]
    files = {"missing": str(d / "missing.libfm")}
    for name, part in (("train", rows[:30]), ("test", rows[30:])):
        files[name] = str(d / f"{name}.libfm")
        with open(files[name], "w") as fh:
            fh.writelines(f"{label} " + " ".join(f"{j}:1" for j in cols) + "\n"
                          for label, cols in part)
        files[name + "_ffm"] = str(d / f"{name}.ffm")
        with open(files[name + "_ffm"], "w") as fh:
            fh.writelines(f"{label} " + " ".join(f"{j // 4}:{j}:1" for j in cols) + "\n"
                          for label, cols in part)
    files["bad"] = str(d / "bad.libfm")
    with open(files["bad"], "w") as fh:
        fh.write("1 0:1 3:x\n-1 2\n")
    files["empty"] = str(d / "empty.libfm")
    open(files["empty"], "w").close()
    files["dir"] = str(d)
    return files


def _cli(argv):
    """main(argv) with stdout / stderr captured: (status, stdout, stderr)."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    from skfm._cli import main
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err), warnings.catch_warnings():
        status = main([str(a) for a in argv])
    return status, out.getvalue(), err.getvalue()


re_unexpected = re.compile(r"^[A-Z][A-Za-z]*(Error|Exception|Warning): ")


def _assert_reported(status, err):
    """A failure is one line of skfm's (argparse's usage error for status 2), never a
    traceback or an unexpected exception type."""
    assert status in (0, 1, 2), status
    assert "Traceback" not in err
    if status == 1:
        line = err.strip().splitlines()[-1]
        assert line.startswith("skfm: error: "), err
        # skfm names any exception type it did not expect (not a CommandError, ValueError
        # or OSError) in front of the message: a bug this test exists to find
        assert not re_unexpected.match(line[len("skfm: error: "):]), err


@given(data=st.data())
@settings(PROFILE, max_examples=max(10, PROFILE.max_examples // 3))
def test_command_line_any_arguments(data, cli_files, tmp_path_factory):
    """``skfm fit`` then ``predict`` / ``evaluate`` on random arguments, valid and not, and
    random files (valid, malformed, empty, missing, a directory): status 0, or 2 with
    argparse's usage line, or 1 with one line 'skfm: error: ...' of an expected kind; never a
    traceback; a model that was written predicts finite probabilities in [0, 1]."""
    d = tmp_path_factory.mktemp("run")
    model = d / "m.joblib"
    train = data.draw(st.sampled_from(["train", "train", "train_ffm", "bad", "empty",
                                       "missing", "dir"]), label="train")
    argv = ["fit", cli_files[train], "-o", model if data.draw(
        st.booleans(), label="writable output") else cli_files["dir"], "-q"]
    flags = data.draw(st.lists(st.sampled_from(sorted(CLI_FLAGS)), max_size=4), label="flags")
    for flag in flags:
        argv += [flag, data.draw(CLI_FLAGS[flag], label=flag)]
    if "--max-iter" not in flags:
        argv += ["--max-iter", "2"]
    status, _, err = _cli(argv)
    _assert_reported(status, err)
    event(f"fit: status {status}")
    if status != 0:
        return
    for command in data.draw(st.lists(st.sampled_from(["predict", "evaluate"]), min_size=1,
                                      max_size=2), label="then"):
        test = cli_files[data.draw(st.sampled_from(["test", "test_ffm", "bad", "missing"]),
                                   label="test")]
        extra = data.draw(st.sampled_from([[], ["--label"], ["--decision"], ["--format",
                                                                              "libffm"]]))
        if command == "evaluate" and extra[:1] != ["--format"]:
            extra = []
        status, out, err = _cli([command, model, test, *extra])
        _assert_reported(status, err)
        event(f"{command}: status {status}")
        if status == 0 and command == "predict" and not extra:
            values = np.array([float(v) for line in out.split() for v in [line]])
            assert np.isfinite(values).all()
            if "regression" not in argv:
                assert ((values >= 0) & (values <= 1)).all()


# --------------------------------------------------------------------------- skfm.dask
@pytest.fixture(scope="module")
def dask_client():
    """An in-process cluster (2 workers of 1 thread): the fuzzing is of DataParallel's input
    handling and mixing, which do not depend on worker processes (tests/test_dask.py runs
    those)."""
    distributed = pytest.importorskip("distributed")
    pytest.importorskip("dask.array")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                           dashboard_address=None, silence_logs=40)
    with cluster, distributed.Client(cluster) as client:
        yield client


DASK_ENTRIES = [e for e in ENTRIES if PROFILE_NAME != "ci" or e.name in (
    "FMClassifier", "MixFMClassifier", "SMFMClassifier", "FMRegressor")]


@given(data=st.data())
@settings(PROFILE, max_examples=max(10, PROFILE.max_examples // 3))
def test_data_parallel_any_input(data, dask_client):
    """DataParallel on random rows (in memory, dense or CSR, or dask arrays of either, in
    random row blocks), labels, weights and n_shards: a finite model whose predictions on the
    dask rows equal its predictions on the same rows in memory, or a ValueError / TypeError
    that names the problem; the caller's arrays are unchanged."""
    import dask.array as da

    from skfm.dask import DataParallel
    entry = data.draw(st.sampled_from(DASK_ENTRIES), label="estimator")
    A = data.draw(matrices(n_rows=data.draw(st.sampled_from([0, 1, 4, 6, 8, 4, 6, 8]))),
                  label="X")
    n, m = A.shape
    kind = data.draw(st.sampled_from(["numpy", "csr", "dask", "dask_csr"]), label="input")
    rows = data.draw(st.integers(1, 4), label="block rows")
    X_mem = sp.csr_matrix(A) if kind.endswith("csr") else A.copy()
    X = (da.from_array(X_mem, chunks=(rows, max(m, 1)), asarray=False)
         if kind.startswith("dask") else X_mem)
    snap = snapshot(X_mem)
    if entry.task == "classifier":
        y = np.array(data.draw(st.lists(st.sampled_from([0, 1, 2]), min_size=n, max_size=n)))
    else:
        y = np.array(data.draw(st.lists(st.sampled_from([0.0, 1.5, -2.0, 1e5]), min_size=n,
                                        max_size=n)))
    sw = (None if data.draw(st.booleans(), label="unweighted")
          else np.array(data.draw(st.lists(st.sampled_from([0.0, 1.0, 2.5]), min_size=n,
                                           max_size=n)), float))
    y_before, sw_before = y.copy(), None if sw is None else sw.copy()
    kw = dict(entry.fast, n_factors=data.draw(st.integers(0, 2)),
              max_iter=data.draw(st.integers(1, 2)), batch_size=data.draw(
                  st.sampled_from([1, 3, "auto"])), random_state=data.draw(st.integers(0, 2)),
              n_jobs=1)
    # (invalid n_shards values: tests/test_dask.py)
    n_shards = data.draw(st.one_of(st.none(), st.integers(1, 3)), label="n_shards")
    model = DataParallel(entry.cls(**kw), n_shards=n_shards, client=dask_client)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(X, y, sample_weight=sw)
    except ALLOWED as e:
        assert str(e), type(e)
        event(f"refused: {type(e).__name__}")
        return
    finally:
        assert_inputs_unchanged(X_mem, snap, y, y_before, sw, sw_before)
    event(f"fitted on {kind}")
    assert_finite_model(model.estimator_)
    methods = ["predict"] + (["predict_proba", "decision_function"]
                             if entry.task == "classifier" else [])
    dX = da.from_array(X_mem, chunks=(rows, max(m, 1)), asarray=False)
    for method in methods:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                here = getattr(model, method)(X_mem)
            except ValueError as e:  # finite inputs that overflow the model: named
                assert "overflowed" in str(e) or "too large" in str(e), e
                return
            there = getattr(model, method)(dX).compute()
        np.testing.assert_array_equal(there, here, err_msg=method)
        if method == "predict_proba" and len(here):
            assert ((here >= 0) & (here <= 1)).all()
    assert_unchanged(X_mem, snap)
