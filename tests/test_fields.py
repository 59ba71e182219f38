"""Fields of the columns of X: check_fields, infer_fields, load_libffm and the generators' fields.

infer_fields is checked against a plain Python version of its rule on dense boolean matrices,
and on layouts whose true fields are known (one-hot blocks, OneHotEncoder and ColumnTransformer
output); load_libffm against matrices built from the entries written to the file.
"""
import gzip
import re

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skfm._fields import check_fields, infer_fields
from skfm.datasets import (FRAPPE_FIELD_SIZES, load_libffm, make_fm_classification,
                           make_fm_regression, make_frappe_like, make_unseen_pairs)

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ---------------------------------------------------------------------------------------------
# infer_fields


def naive_infer_fields(present):
    """The rule on a dense boolean (n_samples, n_features) matrix of nonzeros: column j opens a
    new field iff it shares a row with a column of the current field."""
    n_features = present.shape[1]
    labels = np.zeros(n_features, dtype=np.int64)
    field, start = 0, 0
    for j in range(1, n_features):
        block_rows = present[:, start:j].any(axis=1)
        if (present[:, j] & block_rows).any():
            field, start = field + 1, j
        labels[j] = field
    return labels


def random_sparse(seed, n_rows, n_cols, fmt):
    """A random sparse matrix with empty rows and columns, stored zeros and duplicate entries
    (some of which cancel), and the dense boolean matrix of its nonzero (summed) values."""
    rng = np.random.default_rng(seed)
    values = rng.choice([0.0, 0.0, 0.0, 1.0, -2.0, 0.5], size=(n_rows, n_cols))
    if n_rows and n_cols:
        values[rng.integers(n_rows), :] = 0.0  # an empty row
        values[:, rng.integers(n_cols)] = 0.0  # an empty column
    r, c = np.nonzero(values)
    data = list(values[r, c])
    rows, cols = list(r), list(c)
    for _ in range(rng.integers(0, 6) if n_rows and n_cols else 0):
        i, j = int(rng.integers(n_rows)), int(rng.integers(n_cols))
        if rng.random() < 0.5:  # a stored zero, or a zero that cancels an entry
            rows.append(i)
            cols.append(j)
            data.append(0.0)
        elif values[i, j] == 0:  # +x and -x: stored entries that sum to zero
            rows += [i, i]
            cols += [j, j]
            data += [1.5, -1.5]
    coo = sp.coo_matrix((np.array(data, dtype=np.float64),
                         (np.array(rows, dtype=np.int64), np.array(cols, dtype=np.int64))),
                        shape=(n_rows, n_cols))
    if fmt == "coo":
        return coo, values != 0
    # compressed formats built from their arrays, keeping the duplicates and the stored zeros
    major, minor, n_major = ((coo.col, coo.row, n_cols) if fmt == "csc"
                             else (coo.row, coo.col, n_rows))
    order = np.argsort(major, kind="stable")
    indptr = np.concatenate([[0], np.cumsum(np.bincount(major, minlength=n_major))])
    arrays = (coo.data[order], minor[order].astype(np.int32), indptr.astype(np.int32))
    kind = {"csr": sp.csr_matrix, "csc": sp.csc_matrix, "csr_array": sp.csr_array}[fmt]
    X = kind(arrays, shape=(n_rows, n_cols))
    assert X.nnz == len(data)
    return X, values != 0


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), n_rows=st.integers(0, 8), n_cols=st.integers(0, 10),
       fmt=st.sampled_from(["coo", "csr", "csc", "csr_array"]))
def test_infer_fields_matches_the_naive_rule(seed, n_rows, n_cols, fmt):
    X, present = random_sparse(seed, n_rows, n_cols, fmt)
    before = X.copy()
    parts = [getattr(X, a).copy() for a in ("data", "indices", "indptr", "row", "col")
             if hasattr(X, a)]
    labels = infer_fields(X)
    assert labels.dtype == np.int32 and labels.shape == (n_cols,)
    np.testing.assert_array_equal(labels, naive_infer_fields(present))
    # X is untouched: same format, same stored arrays (duplicates and zeros not summed away)
    assert X.format == before.format and X.nnz == before.nnz
    after = [getattr(X, a) for a in ("data", "indices", "indptr", "row", "col") if hasattr(X, a)]
    for a, b in zip(parts, after):
        np.testing.assert_array_equal(a, b)


def test_infer_fields_stored_zeros_and_cancelling_duplicates_are_absent():
    # columns 0 and 1 share row 0 only through a stored zero / a +1 -1 pair: one field
    X = sp.csr_matrix((np.array([1.0, 0.0]), np.array([0, 1]), np.array([0, 2])), shape=(1, 2))
    assert X.nnz == 2
    np.testing.assert_array_equal(infer_fields(X), [0, 0])
    X = sp.coo_matrix(([1.0, 1.0, -1.0], ([0, 0, 0], [0, 1, 1])), shape=(1, 2))
    np.testing.assert_array_equal(infer_fields(X), [0, 0])
    X = sp.coo_matrix(([1.0, 1.0, 1.0], ([0, 0, 0], [0, 1, 1])), shape=(1, 2))
    np.testing.assert_array_equal(infer_fields(X), [0, 1])


def test_infer_fields_empty_columns_join_the_field_before():
    X = sp.csr_matrix(np.array([[0, 1, 0, 1, 0],
                                [0, 0, 0, 1, 0]], dtype=float))
    # column 0 empty: field 0; 1 opens field 0 with it; 2 empty joins; 3 conflicts; 4 joins
    np.testing.assert_array_equal(infer_fields(X), [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(infer_fields(sp.csr_matrix((3, 4))), [0, 0, 0, 0])
    assert infer_fields(sp.csr_matrix((0, 0))).shape == (0,)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n_fields=st.integers(1, 6), extra_rows=st.integers(0, 20))
def test_infer_fields_recovers_one_hot_layouts(seed, n_fields, extra_rows):
    """Each row has exactly one nonzero per field, every column occurs: the true fields."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 6, size=n_fields)
    n_rows = int(sizes.max()) + extra_rows
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    cols = np.empty((n_rows, n_fields), dtype=np.int64)
    for f, size in enumerate(sizes):  # every value of the field occurs at least once
        values = np.concatenate([np.arange(size), rng.integers(size, size=n_rows - size)])
        cols[:, f] = offsets[f] + rng.permutation(values)
    data = rng.uniform(0.5, 2.0, size=cols.size)  # any nonzero values
    X = sp.csr_matrix((data, (np.repeat(np.arange(n_rows), n_fields), cols.ravel())),
                      shape=(n_rows, int(sizes.sum())))
    truth = np.repeat(np.arange(n_fields), sizes)
    np.testing.assert_array_equal(infer_fields(X), truth)
    np.testing.assert_array_equal(infer_fields(X.tocsc()), truth)


def test_infer_fields_recovers_one_hot_encoder_output():
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(0)
    n_cats = [3, 1, 4, 2, 5]
    frame = np.column_stack([rng.choice([f"c{k}_{v}" for v in range(n)], size=40)
                             for k, n in enumerate(n_cats)])
    enc = OneHotEncoder().fit(frame)
    X = enc.transform(frame)
    assert sp.issparse(X)
    sizes = [len(c) for c in enc.categories_]
    assert sizes == n_cats  # every category drawn in 40 rows (seed 0)
    np.testing.assert_array_equal(infer_fields(X), np.repeat(np.arange(len(sizes)), sizes))


def test_infer_fields_column_transformer_numeric_columns_are_own_fields():
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(1)
    n = 50
    data = np.column_stack([rng.integers(0, 3, n), rng.integers(0, 4, n),
                            rng.uniform(0.5, 2.0, n), rng.uniform(-2.0, -0.5, n)])
    ct = ColumnTransformer([("num1", "passthrough", [2]), ("cat", OneHotEncoder(), [0, 1]),
                            ("num2", "passthrough", [3])], sparse_threshold=1.0)
    X = ct.fit_transform(data)
    assert sp.issparse(X) and X.shape[1] == 1 + 3 + 4 + 1
    # numeric | category 0 (3 columns) | category 1 (4 columns) | numeric
    np.testing.assert_array_equal(infer_fields(X), [0, 1, 1, 1, 2, 2, 2, 2, 3])


def test_infer_fields_splits_a_multi_hot_group():
    """A one-hot user field (u0, u1) then a multi-hot genre group (g0..g3): g0 shares row 0 with
    u0, so it opens field 1; g1 joins it (its rows 1 and 3 hold no g0); g2 shares row 0 with g0,
    so it opens field 2; g3 joins field 2 (row 2 holds no g2, row 3's g1 is in field 1).  The
    group is split into {g0, g1} and {g2, g3}."""
    X = sp.csr_matrix(np.array([[1, 0, 1, 0, 1, 0],    # u0, g0, g2
                                [0, 1, 0, 1, 0, 0],    # u1, g1
                                [1, 0, 0, 0, 0, 1],    # u0, g3
                                [0, 1, 0, 1, 0, 1]],   # u1, g1, g3
                               dtype=np.float32))
    np.testing.assert_array_equal(infer_fields(X), [0, 0, 1, 1, 2, 2])


def test_infer_fields_accepts_dense_and_rejects_non_2d():
    X = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    np.testing.assert_array_equal(infer_fields(X), [0, 0, 1])
    with pytest.raises(ValueError, match="2-D"):
        infer_fields(np.zeros(3))


# ---------------------------------------------------------------------------------------------
# check_fields


def test_check_fields_relabels_in_sorted_order():
    fields, n = check_fields([7, 7, 3, 100], 4)
    assert fields.dtype == np.int32 and n == 3
    np.testing.assert_array_equal(fields, [1, 1, 0, 2])
    fields, n = check_fields((2.0, 0.0, 2.0, 5.0), 4)
    np.testing.assert_array_equal(fields, [1, 0, 1, 2])
    assert n == 3
    fields, n = check_fields(np.array([4, 4, 1], dtype=np.uint8), 3)
    np.testing.assert_array_equal(fields, [1, 1, 0])
    fields, n = check_fields(np.array([], dtype=np.int64), 0)
    assert fields.shape == (0,) and fields.dtype == np.int32 and n == 0


@SETTINGS
@given(labels=st.lists(st.integers(0, 2**40), min_size=1, max_size=20))
def test_check_fields_matches_unique_and_keeps_the_caller_array(labels):
    arr = np.array(labels, dtype=np.int64)
    copy = arr.copy()
    fields, n = check_fields(arr, len(labels))
    np.testing.assert_array_equal(arr, copy)
    assert not np.shares_memory(fields, arr)
    assert n == len(set(labels))
    order = sorted(set(labels))
    np.testing.assert_array_equal(fields, [order.index(v) for v in labels])


@pytest.mark.parametrize("fields, n_features, message", [
    ([[0, 1], [1, 2]], 4, r"1-D.*\(2, 2\)"),
    (5, 1, r"1-D"),
    ([0, 1, 2], 4, r"3 labels.*4 columns"),
    (["a", "b"], 2, r"non-numeric dtype"),
    ([True, False], 2, r"bool dtype"),
    ([0, None], 2, r"non-numeric dtype object"),
    ([0.0, np.nan, 1.0, np.nan], 4, r"NaN \(first at column 1\)"),
    ([0.0, 1.0, np.inf], 3, r"finite.*column 2 holds inf"),
    ([0.0, 1.0, 1.5], 3, r"column 2 holds the non-integer value 1\.5"),
    ([0, 3, -2, -1], 4, r"non-negative; column 2 holds -2"),
    ([0.0, -1.0], 2, r"non-negative; column 1 holds -1\.0"),
    ([0, 1], -1, r"n_features"),
])
def test_check_fields_errors(fields, n_features, message):
    with pytest.raises(ValueError, match=message):
        check_fields(fields, n_features)


def test_check_fields_never_modifies_the_caller_array():
    for arr in (np.array([5.0, 5.0, 2.0]), np.array([9, 1, 9], dtype=np.int32)):
        copy = arr.copy()
        fields, _ = check_fields(arr, 3)
        fields[:] = 7
        np.testing.assert_array_equal(arr, copy)
    bad = np.array([1.0, np.nan, 2.0])
    with pytest.raises(ValueError):
        check_fields(bad, 3)
    assert np.isnan(bad[1]) and bad[0] == 1.0


def test_check_fields_accepts_a_pandas_series():
    pd = pytest.importorskip("pandas")
    s = pd.Series([10, 3, 10, 7], index=[9, 8, 7, 6])
    fields, n = check_fields(s, 4)
    np.testing.assert_array_equal(fields, [2, 0, 2, 1])
    assert n == 3
    np.testing.assert_array_equal(s.to_numpy(), [10, 3, 10, 7])
    fields, n = check_fields(pd.Series([1, 2], dtype="Int64"), 2)
    np.testing.assert_array_equal(fields, [0, 1])
    with pytest.raises(ValueError, match="non-numeric"):
        check_fields(pd.Series(["a", "b"]), 2)


# ---------------------------------------------------------------------------------------------
# load_libffm


def write_ffm(path, rows, blank_every=0):
    """rows: [(label, [(field, feature, value), ...]), ...]; optionally gzipped by suffix."""
    lines = []
    for i, (label, entries) in enumerate(rows):
        lines.append(" ".join([repr(label)] + [f"{f}:{j}:{v!r}" for f, j, v in entries]))
        if blank_every and i % blank_every == 0:
            lines.append("   ")
    text = "\n".join(lines) + "\n"
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wt") as fh:
        fh.write(text)


def random_ffm_rows(rng, n_rows, feature_field, n_features):
    """Rows over features < n_features with the field map feature_field; some rows repeat a
    feature (summed by the loader), some are empty."""
    rows = []
    for _ in range(n_rows):
        k = int(rng.integers(0, 5))
        feats = [int(j) for j in rng.integers(0, n_features, size=k)]
        if k and rng.random() < 0.3:
            feats.append(feats[0])
        entries = [(int(feature_field[j]), j, float(np.round(rng.normal(), 3))) for j in feats]
        rows.append((float(rng.choice([-1.0, 1.0, 0.0, 2.5])), entries))
    return rows


def dense_of(rows, n_features):
    D = np.zeros((len(rows), n_features))
    for i, (_, entries) in enumerate(rows):
        for _, j, v in entries:
            D[i, j] += v
    return D


def test_load_libffm_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    feature_field = np.array([3, 3, 0, 0, 0, 7, 1, 1])
    rows = random_ffm_rows(rng, 40, feature_field, 8)
    rows.append((1.0, [(1, 7, 2.0)]))  # make sure the largest feature occurs
    seen = sorted({j for _, e in rows for _, j, _ in e})
    assert seen == list(range(8))
    path = tmp_path / "data.ffm"
    write_ffm(path, rows, blank_every=7)
    X, y, fields = load_libffm(path)
    assert sp.isspmatrix_csr(X) and X.dtype == np.float32 and X.has_sorted_indices
    assert X.shape == (len(rows), 8)
    np.testing.assert_allclose(X.toarray(), dense_of(rows, 8), rtol=1e-6)
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y, [int(label > 0) for label, _ in rows])
    assert fields.dtype == np.int64
    np.testing.assert_array_equal(fields, feature_field)
    # binary=False, float64, a str path
    X64, y64, fields64 = load_libffm(str(path), dtype=np.float64, binary=False)
    assert X64.dtype == np.float64
    np.testing.assert_allclose(X64.toarray(), dense_of(rows, 8), rtol=1e-12)
    np.testing.assert_array_equal(y64, [label for label, _ in rows])
    np.testing.assert_array_equal(fields64, feature_field)


def test_load_libffm_gzip_and_several_files(tmp_path):
    rng = np.random.default_rng(1)
    feature_field = np.array([0, 0, 1, 1, 1, 2, 2, 2, 2, 3])
    rows1 = random_ffm_rows(rng, 30, feature_field, 6)  # features < 6 only
    rows2 = random_ffm_rows(rng, 20, feature_field, 10) + [(0.0, [(3, 9, 1.0)])]
    p1, p2 = tmp_path / "a.ffm.gz", tmp_path / "b.ffm"
    write_ffm(p1, rows1)
    write_ffm(p2, rows2)
    with gzip.open(p1, "rt") as fh:  # really gzipped
        assert fh.read().startswith(repr(rows1[0][0]))
    X1, y1, X2, y2, fields = load_libffm([p1, p2])
    assert X1.shape == (30, 10) and X2.shape == (len(rows2), 10)
    np.testing.assert_allclose(X1.toarray(), dense_of(rows1, 10), rtol=1e-6)
    np.testing.assert_allclose(X2.toarray(), dense_of(rows2, 10), rtol=1e-6)
    np.testing.assert_array_equal(y2, [int(label > 0) for label, _ in rows2])
    seen = {j for _, e in rows1 + rows2 for _, j, _ in e}
    for j in seen:
        assert fields[j] == feature_field[j]
    # the gzipped file alone: same matrix, columns up to its own largest feature
    Xa, ya, _ = load_libffm(p1, n_features=10)
    np.testing.assert_array_equal(Xa.toarray(), X1.toarray())
    np.testing.assert_array_equal(ya, y1)


def test_load_libffm_unseen_columns(tmp_path):
    path = tmp_path / "u.ffm"
    path.write_text("1 3:2:1 1:5:1\n0 4:6:1\n")
    # columns 0, 1: none below, smallest field seen (1); 3, 4 take column 2's; 7, 8 column 6's
    X, y, fields = load_libffm(path, n_features=9)
    np.testing.assert_array_equal(fields, [1, 1, 3, 3, 3, 1, 4, 4, 4])
    assert X.shape == (2, 9) and y.tolist() == [1, 0]
    X, y, fields = load_libffm(path)
    np.testing.assert_array_equal(fields, [1, 1, 3, 3, 3, 1, 4])
    path.write_text("1\n0\n")  # no features at all
    X, _, fields = load_libffm(path, n_features=3)
    assert X.shape == (2, 3) and X.nnz == 0
    np.testing.assert_array_equal(fields, [0, 0, 0])


@pytest.mark.parametrize("bad, message", [
    ("1 0:1", r"'0:1' is not field:feature:value.*2 ':'-separated parts"),
    ("1 0:1:2:3", r"'0:1:2:3' is not field:feature:value.*4 ':'-separated parts"),
    ("1 0:1:1 0:1 0:1:1:1", r"'0:1' is not field:feature:value"),
    ("1 a:1:1", r"'a:1:1'.*field id 'a' is not an integer"),
    ("1 0:1.0:1", r"'0:1.0:1'.*feature id '1.0' is not an integer"),
    ("1 0:1:x", r"'0:1:x'.*value 'x' is not a number"),
    ("1 0::1", r"feature id '' is not an integer"),
    ("abc 0:1:1", r"label 'abc' is not a number"),
    ("nan 0:1:1", r"label 'nan' is not finite"),
    ("1 -1:2:1", r"negative field id -1"),
    ("1 0:-2:1", r"negative feature id -2"),
    ("1 0:1:nan", r"non-finite value nan"),
    ("1 0:1:-inf", r"non-finite value -inf"),
])
def test_load_libffm_malformed_lines(tmp_path, bad, message):
    path = tmp_path / "bad.ffm"
    path.write_text(f"1 0:0:1\n\n{bad}\n0 0:0:1\n")  # the bad line is line 3
    with pytest.raises(ValueError, match=re.escape(f"{path}, line 3: ") + ".*" + message):
        load_libffm(path)


def test_load_libffm_feature_in_two_fields(tmp_path):
    path = tmp_path / "two.ffm"
    path.write_text("1 0:0:1 2:5:1\n0 0:1:1\n1 3:5:1\n")
    with pytest.raises(ValueError, match=re.escape(f"{path}, line 3: ")
                       + r"feature 5 appears with field 3, but with field 2 at its first "
                       + r"occurrence \(" + re.escape(f"{path}, line 1") + r"\)"):
        load_libffm(path)
    # across files: the first occurrence is in the first file
    p1, p2 = tmp_path / "p1.ffm", tmp_path / "p2.ffm"
    p1.write_text("1 0:0:1\n1 1:4:1\n")
    p2.write_text("1 2:4:1\n")
    with pytest.raises(ValueError, match=re.escape(f"{p2}, line 1: feature 4 appears with "
                                                   f"field 2, but with field 1 at its first "
                                                   f"occurrence ({p1}, line 2)")):
        load_libffm([p1, p2])


def test_load_libffm_n_features_too_small(tmp_path):
    path = tmp_path / "n.ffm"
    path.write_text("1 0:0:1 1:2:1\n0 0:1:1 1:5:1\n")
    with pytest.raises(ValueError, match=re.escape(f"{path}, line 2: feature id 5 is out of "
                                                   f"range for n_features=3")):
        load_libffm(path, n_features=3)
    assert load_libffm(path, n_features=6)[0].shape == (2, 6)
    with pytest.raises(ValueError, match="n_features"):
        load_libffm(path, n_features=-1)


# ---------------------------------------------------------------------------------------------
# generators


def assert_same(a, b):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        if sp.issparse(u):
            assert (u != v).nnz == 0 and u.dtype == v.dtype
        elif isinstance(u, dict):
            assert u.keys() == v.keys()
            for k in u:
                np.testing.assert_array_equal(u[k], v[k])
        else:
            np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("make", [make_fm_classification, make_fm_regression])
def test_generators_fields(make):
    sizes = (3, 1, 5, 2)
    kw = {"n_samples": 300, "field_sizes": sizes, "random_state": 0}
    X, y = make(**kw)
    X2, y2, fields = make(**kw, return_fields=True)
    assert_same((X, y), (X2, y2))
    assert fields.dtype == np.int64
    np.testing.assert_array_equal(fields, [0, 0, 0, 1, 2, 2, 2, 2, 2, 3, 3])
    np.testing.assert_array_equal(infer_fields(X), fields)
    out_p = make(**kw, return_params=True)
    out_fp = make(**kw, return_fields=True, return_params=True)
    assert len(out_fp) == 4
    assert_same(out_fp[:2] + out_fp[3:], out_p)
    np.testing.assert_array_equal(out_fp[2], fields)


def test_make_frappe_like_fields():
    X, y = make_frappe_like(200, random_state=0)
    X2, y2, fields = make_frappe_like(200, random_state=0, return_fields=True)
    assert_same((X, y), (X2, y2))
    np.testing.assert_array_equal(np.bincount(fields), FRAPPE_FIELD_SIZES)
    assert (np.diff(fields) >= 0).all() and fields.shape == (X.shape[1],)


def test_make_unseen_pairs_fields():
    kw = {"n_train": 200, "n_test": 100, "n_users": 7, "n_items": 5, "n_context": 3,
          "context_size": 4, "random_state": 0}
    base = make_unseen_pairs(**kw)
    out = make_unseen_pairs(**kw, return_fields=True)
    assert len(out) == 5
    assert_same(base, out[:4])
    fields = out[4]
    np.testing.assert_array_equal(fields, [0] * 7 + [1] * 5 + [2] * 4 + [3] * 4 + [4] * 4)
    np.testing.assert_array_equal(infer_fields(base[0]), fields)
    out_fp = make_unseen_pairs(**kw, return_fields=True, return_params=True)
    assert_same(out_fp[:4] + out_fp[5:], make_unseen_pairs(**kw, return_params=True))
    np.testing.assert_array_equal(out_fp[4], fields)
