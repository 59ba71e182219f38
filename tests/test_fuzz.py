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
import os
import tempfile
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
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
            assert_unchanged(X, snap)
            np.testing.assert_array_equal(y, y_before)
            if sw is not None:
                np.testing.assert_array_equal(sw, sw_before)
        for p in est._params:
            for v in p.values():
                if isinstance(v, np.ndarray) and v.dtype.kind == "f":
                    assert np.isfinite(v).all()
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
    ValueError that names the file and the line."""
    from skfm._base import check_sparse_structure
    from skfm.datasets import load_libffm, load_libfm
    if ffm:
        lines = [(label, data.draw(st.lists(LIBFFM_TOKENS, max_size=5))) for label, _ in lines]
    text = "\n".join(" ".join([label, *tokens]) for label, tokens in lines) + "\n"
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "rows.txt")
        with open(path, "w") as fh:
            fh.write(text)
        try:
            out = load_libffm(path) if ffm else load_libfm(path)
        except ValueError as e:
            assert path in str(e), e
            return
    X, y = out[0], out[1]
    assert sp.issparse(X) and X.format == "csr" and X.shape[0] == len(y)
    check_sparse_structure(X)
    assert np.isfinite(X.data).all()
