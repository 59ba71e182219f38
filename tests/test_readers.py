"""The libFM / libFFM readers: load_libfm against scikit-learn's svmlight loader, chunks of
iter_libfm / iter_libffm against the whole-file loaders, scans, the line numbers of errors,
bounded memory, and out-of-core training with partial_fit."""
import gzip
import re
import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import dump_svmlight_file, load_svmlight_file
from sklearn.metrics import roc_auc_score
from test_fields import dense_of, random_ffm_rows, write_ffm

from skfm import FMClassifier
from skfm.datasets import (iter_libffm, iter_libfm, load_libffm, load_libfm,
                           make_fm_classification, scan_libffm, scan_libfm)


def _random_matrix(rng, n_rows, n_features):
    """A CSR matrix with empty rows, stored values of every magnitude and sign."""
    X = sp.random(n_rows, n_features, density=0.3, format="csr", random_state=rng,
                  data_rvs=lambda k: rng.normal(size=k) * 10.0 ** rng.integers(-8, 8, k))
    keep = np.ones(n_rows)
    keep[int(rng.integers(n_rows))] = 0  # an empty row
    X = sp.diags(keep) @ X
    X.eliminate_zeros()
    return sp.csr_matrix(X)


def _decorate(path, rng):
    """Insert blank lines, comment lines and trailing comments into a text file (gzip kept)."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt") as fh:
        lines = fh.read().splitlines()
    out = ["# a header comment"]
    for line in lines:
        r = rng.random()
        out.append(line + "  # trailing" if r < 0.2 else line)
        if r > 0.85:
            out.append(rng.choice(["", "   ", "# comment 1:2"]))
    with opener(path, "wt") as fh:
        fh.write("\n".join(out) + "\n")


def _dump(X, y, path, zero_based=True):
    if str(path).endswith(".gz"):
        with gzip.open(path, "wb") as fh:
            dump_svmlight_file(X, y, fh, zero_based=zero_based)
    else:
        dump_svmlight_file(X, y, str(path), zero_based=zero_based)


def assert_csr_equal(A, B):
    assert A.shape == B.shape and A.dtype == B.dtype
    np.testing.assert_array_equal(A.indptr, B.indptr)
    np.testing.assert_array_equal(A.indices, B.indices)
    np.testing.assert_array_equal(A.data, B.data)


# --------------------------------------------------------------------------- load_libfm
@pytest.mark.parametrize("seed", range(6))
def test_load_libfm_is_sklearns_on_well_formed_files(tmp_path, seed):
    rng = np.random.default_rng(seed)
    X = _random_matrix(rng, int(rng.integers(1, 60)), int(rng.integers(1, 30)))
    y = rng.choice([-1.0, 1.0, 0.0, 2.5], size=X.shape[0])
    zero_based = bool(seed % 2)
    dtype = [np.float32, np.float64][seed % 3 == 0]
    path = tmp_path / ("d.libfm.gz" if seed % 3 == 1 else "d.libfm")
    _dump(X, y, path, zero_based)
    if seed >= 3:
        _decorate(path, rng)
    n_features = None if seed % 2 else X.shape[1] + 2
    Xs, ys = load_svmlight_file(str(path), n_features=n_features, zero_based=zero_based,
                                dtype=dtype)
    Xl, yl = load_libfm(path, n_features, zero_based=zero_based, dtype=dtype, binary=False)
    assert_csr_equal(Xl, sp.csr_matrix(Xs))
    np.testing.assert_array_equal(yl, ys)
    Xb, yb = load_libfm(path, n_features, zero_based=zero_based, dtype=dtype)
    np.testing.assert_array_equal(yb, (ys > 0).astype(np.int64))
    assert scan_libfm(path, zero_based=zero_based) == (X.shape[0], Xs.shape[1] if
                                                       n_features is None else
                                                       int(Xs.indices.max(initial=-1)) + 1)


def test_load_libfm_several_files_and_unsorted_rows(tmp_path):
    """Rows need not be sorted: a repeated feature is summed (scikit-learn's loader refuses
    them); several files share the number of columns."""
    p1, p2 = tmp_path / "a.libfm", tmp_path / "b.libfm"
    p1.write_text("1 3:1 0:2 3:0.5\n-1 qid:7 1:1\n")
    p2.write_text("0 9:1.5\n")
    X1, y1, X2, y2 = load_libfm([p1, p2], dtype=np.float64)
    np.testing.assert_array_equal(X1.toarray(), [[2, 0, 0, 1.5] + [0] * 6,
                                                 [0, 1, 0, 0] + [0] * 6])
    assert X1.has_sorted_indices
    np.testing.assert_array_equal(X2.toarray(), [[0] * 9 + [1.5]])
    assert y1.tolist() == [1, 0] and y2.tolist() == [0]


LIBFM_BAD = [
    ("x 1:1", r"the label 'x' is not a number"),
    ("inf 1:1", r"the label 'inf' is not finite"),
    ("1 1", r"token '1' is not feature:value .*1 ':'-separated parts, not 2"),
    ("1 1:2:3", r"token '1:2:3' is not feature:value"),
    ("1 1.5:2", r"feature id '1.5' is not an integer"),
    ("1 1:abc", r"its value 'abc' is not a number"),
    ("1 1:", r"its value '' is not a number"),
    ("1 -1:2", r"negative feature id -1 in token '-1:2'"),
    ("1 2:nan", r"non-finite value nan of feature 2"),
    ("1 99999999999999999999:1", r"feature id 99999999999999999999 is too large"),
    ("1 12:1", r"feature id 12 is out of range for n_features=10"),
]


@pytest.mark.parametrize("bad, message", LIBFM_BAD)
@pytest.mark.parametrize("reader", ["load", "iter"])
def test_libfm_malformed_line_gives_path_and_line(tmp_path, bad, message, reader):
    """The bad line is line 3 of a short file, or line 2003 of a long one read in chunks of 7
    rows (blank and comment lines counted as lines)."""
    path = tmp_path / "bad.libfm"
    good = "1 0:1 3:2\n"
    lines = [good, "\n", bad + "\n", good] if reader == "load" else (
        [good, "# c\n"] * 1000 + ["\n", bad + "\n", good])
    path.write_text("".join(lines))
    lineno = 3 if reader == "load" else 2002
    match = re.escape(f"{path}, line {lineno}: ") + ".*" + message
    with pytest.raises(ValueError, match=match):
        if reader == "load":
            load_libfm(path, n_features=10)
        else:
            for _ in iter_libfm(path, 7, 10):
                pass


def test_libfm_one_based(tmp_path):
    path = tmp_path / "one.libfm"
    path.write_text("1 1:1 3:2\n0 0:1\n")
    with pytest.raises(ValueError, match=re.escape(f"{path}, line 2: feature id 0 in token "
                                                   "'0:1' (zero_based=False")):
        load_libfm(path, zero_based=False)


# --------------------------------------------------------------------------- chunks
@pytest.mark.parametrize("chunk_rows", [1, 3, 16, 1000])
@pytest.mark.parametrize("gz", [False, True])
def test_libfm_chunks_concatenate_to_the_whole_file(tmp_path, chunk_rows, gz):
    rng = np.random.default_rng(chunk_rows)
    X = _random_matrix(rng, 50, 20)
    path = tmp_path / ("c.libfm.gz" if gz else "c.libfm")
    _dump(X, rng.choice([-1, 1], 50), path)
    _decorate(path, rng)
    chunks = list(iter_libfm(path, chunk_rows, 25))
    assert [c[0].shape[0] for c in chunks[:-1]] == [chunk_rows] * (len(chunks) - 1)
    assert all(c[0].shape == (c[0].shape[0], 25) and c[0].has_sorted_indices for c in chunks)
    Xw, yw = load_libfm(path, 25)
    assert_csr_equal(sp.vstack([c[0] for c in chunks], format="csr"), Xw)
    np.testing.assert_array_equal(np.concatenate([c[1] for c in chunks]), yw)
    # independently: scikit-learn's loader on the same file
    with (gzip.open(path) if gz else open(path, "rb")) as fh:
        Xs = load_svmlight_file(fh, n_features=25, dtype=np.float32)[0]
    np.testing.assert_array_equal(Xw.toarray(), Xs.toarray())


@pytest.mark.parametrize("chunk_rows", [1, 4, 1000])
def test_libffm_chunks_and_scan(tmp_path, chunk_rows):
    """Chunks of iter_libffm equal load_libffm's X and the matrix of the written entries
    (repeated features summed); scan_libffm's fields are the written feature -> field map."""
    rng = np.random.default_rng(chunk_rows)
    feature_field = np.array([2, 2, 0, 0, 0, 5, 1, 1, 1])
    rows = random_ffm_rows(rng, 45, feature_field, 9) + [(1.0, [(1, 8, 2.0)])]
    path = tmp_path / "c.ffm.gz"
    write_ffm(path, rows, blank_every=5)
    chunks = list(iter_libffm(path, chunk_rows, 9, dtype=np.float64))
    X = sp.vstack([c[0] for c in chunks], format="csr")
    np.testing.assert_allclose(X.toarray(), dense_of(rows, 9), rtol=1e-12)
    Xw, yw, fields = load_libffm(path, dtype=np.float64)
    assert_csr_equal(X, Xw)
    np.testing.assert_array_equal(np.concatenate([c[1] for c in chunks]), yw)
    n_samples, n_features, scanned = scan_libffm(path)
    assert (n_samples, n_features) == (len(rows), 9)
    seen = sorted({j for _, e in rows for _, j, _ in e})
    np.testing.assert_array_equal(scanned[seen], feature_field[seen])
    np.testing.assert_array_equal(scanned, fields)


def test_libffm_iter_errors(tmp_path):
    path = tmp_path / "e.ffm"
    path.write_text("1 0:0:1\n" * 10 + "1 1:0:1\n")
    with pytest.raises(ValueError, match=re.escape(f"{path}, line 11: feature 0 appears with "
                                                   f"field 1, but with field 0 at its first "
                                                   f"occurrence ({path}, line 1)")):
        list(iter_libffm(path, 3, 5))
    path.write_text("1 0:0:1\n1 0:7:1\n")
    with pytest.raises(ValueError, match=re.escape(f"{path}, line 2: feature id 7 is out of "
                                                   "range for n_features=5")):
        list(iter_libffm(path, 1, 5))
    with pytest.raises(ValueError, match=re.escape(f"{path}, line 2: negative field id -1")):
        path.write_text("1 0:0:1\n1 -1:0:1\n")
        scan_libffm(path)


@pytest.mark.parametrize("kwargs, match", [
    (dict(chunk_rows=0, n_features=3), "chunk_rows must be a positive integer"),
    (dict(chunk_rows=2.5, n_features=3), "chunk_rows must be a positive integer"),
    (dict(chunk_rows=2, n_features=None), "n_features must be a non-negative integer"),
    (dict(chunk_rows=2, n_features=-1), "n_features must be a non-negative integer"),
])
def test_iter_bad_arguments(tmp_path, kwargs, match):
    path = tmp_path / "a.libfm"
    path.write_text("1 0:1\n")
    for it in (iter_libfm, iter_libffm):
        with pytest.raises(ValueError, match=match):
            next(it(path, **kwargs))


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        next(iter_libfm(tmp_path / "nope.libfm", 10, 3))


# --------------------------------------------------------------------------- memory
def test_iteration_memory_is_bounded_by_the_chunk(tmp_path):
    """Reading a file of 2.7 MB (240,000 entries) in chunks of 50 rows (1/200 of it) never
    holds more than a fifth of its size: a reader that read the file whole (its bytes, or its
    entries as arrays, 12 bytes each) would exceed the bound."""
    rng = np.random.default_rng(0)
    n_rows, per_row = 10_000, 24
    cols = np.sort(rng.choice(900_000, size=(n_rows, per_row), replace=False), axis=1) + 100_000
    path = tmp_path / "big.libfm"
    path.write_text("".join("1 " + " ".join(f"{j}:1.5" for j in row) + "\n"
                            for row in cols.tolist()))
    size = path.stat().st_size
    assert size > 2.5e6
    tracemalloc.start()
    try:
        n = nnz = 0
        for X, y in iter_libfm(path, 50, 1_000_000):
            n += X.shape[0]
            nnz += X.nnz
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert n == n_rows and nnz == n_rows * per_row
    assert peak < size / 5, (peak, size)


# --------------------------------------------------------------------------- out of core
def test_partial_fit_over_chunks_learns(tmp_path):
    """Epochs of partial_fit over the chunks of a libFM file (each epoch one pass) give a model
    whose test AUC is far above chance."""
    X, y = make_fm_classification(n_samples=6000, n_fields=6, field_size=10, random_state=0)
    path = tmp_path / "train.libfm"
    dump_svmlight_file(X[:5000], y[:5000], str(path), zero_based=True)
    clf = FMClassifier(n_factors=8, learning_rate_init=0.01, random_state=0)
    n_features = X.shape[1]
    for _ in range(5):
        for Xc, yc in iter_libfm(path, 500, n_features):
            clf.partial_fit(Xc, yc, classes=[0, 1])
    assert clf.n_iter_ == 50
    auc = roc_auc_score(y[5000:], clf.predict_proba(X[5000:])[:, 1])
    assert auc > 0.75, auc


def test_libffm_huge_feature_id_is_refused_by_line(tmp_path):
    """A feature id beyond skfm's 2**31 - 1 features raises with the path and line, instead
    of allocating a field table of that many entries (745 GiB for an id of 1e11: found by
    tests/test_fuzz.py)."""
    from skfm.datasets import load_libffm, scan_libffm
    path = tmp_path / "big.ffm"
    path.write_text("1 0:1:1\n0 1:99999999999:1\n")
    for read in (load_libffm, scan_libffm):
        with pytest.raises(ValueError, match=r"big\.ffm, line 2: feature id 99999999999 is "
                                             r"too large"):
            read(str(path))
