"""Loaders for the libFM / svmlight and libFFM text formats."""
import gzip
import math
import os
from array import array
from itertools import repeat
from numbers import Integral

import numpy as np
import scipy.sparse as sp


def load_libfm(paths, n_features=None, *, zero_based=True, dtype=np.float32, binary=True):
    """Load one or more libFM files (``label idx:val ...``, optionally gzipped) as CSR matrices.

    Parameters
    ----------
    paths : str or list of str
        File path(s); with several files all matrices get the same number of columns.
    n_features : int, default=None
        Number of columns; inferred from the files when None.
    zero_based : bool, default=True
        Whether feature indices start at 0 (libFM's convention).
    dtype : dtype, default=np.float32
        dtype of the matrices.
    binary : bool, default=True
        Map labels to {0, 1} (label > 0 -> 1), as for libFM's -1/1 click labels.

    Returns
    -------
    [X, y, ...] for a list of paths, or (X, y) for a single path: X a sorted CSR matrix, y an
    ndarray.
    """
    from sklearn.datasets import load_svmlight_files

    single = isinstance(paths, (str, bytes)) or hasattr(paths, "__fspath__")
    files = [paths] if single else list(paths)
    loaded = load_svmlight_files(files, n_features=n_features, zero_based=zero_based, dtype=dtype)
    out = []
    for X, y in zip(loaded[::2], loaded[1::2]):
        X = sp.csr_matrix(X, dtype=dtype)
        X.sort_indices()
        out += [X, (y > 0).astype(np.int64) if binary else y]
    return tuple(out) if single else out


def _open_bytes(path):
    """The whole content of a (possibly gzipped, by the ``.gz`` suffix) file as bytes."""
    name = os.fspath(path)
    suffix = b".gz" if isinstance(name, bytes) else ".gz"
    opener = gzip.open if name.endswith(suffix) else open
    with opener(name, "rb") as fh:
        return fh.read()


def _shown(token):
    return repr(token.decode("utf-8", "replace"))


def _bad_token(path, lineno, tokens):
    """The ValueError for the first token of a line that is not ``int:int:number``."""
    for tok in tokens:
        parts = tok.split(b":")
        why = None
        if len(parts) != 3:
            why = f"has {len(parts)} ':'-separated parts, not 3"
        else:
            for part, what in zip(parts[:2], ("field", "feature")):
                try:
                    v = int(part)
                except ValueError:
                    why = f"its {what} id {_shown(part)} is not an integer"
                    break
                if not -2 ** 63 <= v < 2 ** 63:
                    why = f"its {what} id {v} is too large"
                    break
            else:
                try:
                    float(parts[2])
                except ValueError:
                    why = f"its value {_shown(parts[2])} is not a number"
        if why is not None:
            return ValueError(f"{path}, line {lineno}: token {_shown(tok)} is not "
                              f"field:feature:value (integer ids, numeric value): {why}.")
    return ValueError(f"{path}, line {lineno}: malformed field:feature:value tokens.")


def _parse_libffm(path):
    """Parse one libFFM file: labels, indptr, field, feature and value of each entry, and the
    1-based line number of each row.  Raises ValueError naming ``path`` and the line."""
    labels, lines = array("d"), array("q")
    fld, feat, val = array("q"), array("q"), array("d")
    ends = array("q", [0])
    colon = b":"
    for lineno, line in enumerate(_open_bytes(path).split(b"\n"), 1):
        toks = line.split()
        if not toks:
            continue
        try:
            label = float(toks[0])
        except ValueError:
            raise ValueError(f"{path}, line {lineno}: the label {_shown(toks[0])} is not a "
                             f"number.") from None
        if not math.isfinite(label):
            raise ValueError(f"{path}, line {lineno}: the label {_shown(toks[0])} is not "
                             f"finite.")
        toks = toks[1:]
        n = len(toks)
        if n:
            if list(map(bytes.count, toks, repeat(colon))).count(2) != n:
                raise _bad_token(path, lineno, toks)
            parts = colon.join(toks).split(colon)
            try:
                fld.extend(map(int, parts[0::3]))
                feat.extend(map(int, parts[1::3]))
                val.extend(map(float, parts[2::3]))
            except (ValueError, OverflowError):
                raise _bad_token(path, lineno, toks) from None
        labels.append(label)
        lines.append(lineno)
        ends.append(ends[-1] + n)
    fld, feat, indptr, lines = (np.array(a, dtype=np.int64) for a in (fld, feat, ends, lines))
    val = np.array(val, dtype=np.float64)

    def line_of(k):
        return int(lines[np.searchsorted(indptr, k, side="right") - 1])

    for ids, what in ((fld, "field"), (feat, "feature")):
        bad = np.flatnonzero(ids < 0)
        if bad.size:
            k = int(bad[0])
            raise ValueError(f"{path}, line {line_of(k)}: negative {what} id {int(ids[k])} in "
                             f"token '{fld[k]}:{feat[k]}:{float(val[k])!r}'.")
    bad = np.flatnonzero(~np.isfinite(val))
    if bad.size:
        k = int(bad[0])
        raise ValueError(f"{path}, line {line_of(k)}: non-finite value {float(val[k])!r} of "
                         f"feature {feat[k]} (field {fld[k]}).")
    return {"labels": np.array(labels, dtype=np.float64), "indptr": indptr,
            "fld": fld, "feat": feat, "val": val, "lines": lines, "line_of": line_of}


def load_libffm(paths, n_features=None, *, dtype=np.float32, binary=True):
    """Load one or more libFFM files (``label field:feature:value ...``) as CSR matrices, with
    the field of each column.

    Each non-blank line is a row: a numeric label, then whitespace-separated
    ``field:feature:value`` tokens with zero-based integer field and feature ids and a numeric
    value.  Files whose name ends with ``.gz`` are read through gzip.  A feature must have the
    same field wherever it appears (in every file).  Pure Python parsing: about a second per
    million tokens.

    Parameters
    ----------
    paths : str, path-like or list of them
        File path(s); with several files all matrices get the same number of columns and share
        one ``fields`` array.
    n_features : int, default=None
        Number of columns; the largest feature id in the files plus one when None.  A feature id
        of ``n_features`` or more raises.
    dtype : dtype, default=np.float32
        dtype of the matrices (the values are parsed, and duplicates summed, in float64).
    binary : bool, default=True
        Map labels to {0, 1} (label > 0 -> 1, int64), as for libFFM's -1/1 or 0/1 click labels;
        when False the labels are returned as float64.

    Returns
    -------
    X : CSR matrix of shape (n_samples, n_features)
        With sorted indices; a feature repeated within a line is summed.  Stored zeros (tokens
        with value 0) are kept.
    y : ndarray of shape (n_samples,)
    fields : ndarray of int64, shape (n_features,)
        Field id of each column as written in the files (not relabelled).  A column that
        appears in no file gets the field of the closest lower-numbered column that appears,
        or the smallest field id seen when there is none (0 when the files hold no features).

    For a single path ``(X, y, fields)``; for a list of paths the flat list
    ``[X_1, y_1, X_2, y_2, ..., fields]``.

    Raises
    ------
    ValueError
        With the file path and the 1-based line number, for a token that is not
        ``int:int:number``, a label that is not a finite number, a negative field or feature id,
        a non-finite value, a feature id of ``n_features`` or more, and a feature that appears
        with two different fields.

    Examples
    --------
    >>> import os, tempfile
    >>> from skfm.datasets import load_libffm
    >>> path = os.path.join(tempfile.mkdtemp(), "train.ffm")
    >>> with open(path, "w") as fh:
    ...     _ = fh.write("1 0:0:1 1:3:1 2:5:0.5\\n-1 0:1:1 1:2:1\\n")
    >>> X, y, fields = load_libffm(path)
    >>> X.shape, y.tolist(), fields.tolist()
    ((2, 6), [1, 0], [0, 0, 1, 1, 1, 2])
    """
    single = isinstance(paths, (str, bytes)) or hasattr(paths, "__fspath__")
    files = [paths] if single else list(paths)
    if not files:
        raise ValueError("paths is an empty list; give at least one libFFM file.")
    if n_features is not None:
        if (isinstance(n_features, (bool, np.bool_)) or not isinstance(n_features, Integral)
                or n_features < 0):
            raise ValueError(f"n_features must be a non-negative integer or None; got "
                             f"{n_features!r}.")
        n_features = int(n_features)
    parsed = [_parse_libffm(path) for path in files]
    if n_features is None:
        n_features = max((int(p["feat"].max()) + 1 for p in parsed if p["feat"].size),
                         default=0)
    else:
        for path, p in zip(files, parsed):
            bad = np.flatnonzero(p["feat"] >= n_features)
            if bad.size:
                k = int(bad[0])
                raise ValueError(f"{path}, line {p['line_of'](k)}: feature id {p['feat'][k]} "
                                 f"is out of range for n_features={n_features} (ids must be "
                                 f"below it).")

    # the field of each feature at its first occurrence, then every occurrence checked against it
    feat = np.concatenate([p["feat"] for p in parsed])
    fld = np.concatenate([p["fld"] for p in parsed])
    fields = np.zeros(n_features, dtype=np.int64)
    if feat.size:
        starts = np.cumsum([0] + [p["feat"].size for p in parsed])

        def where(k):
            i = int(np.searchsorted(starts, k, side="right") - 1)
            return f"{files[i]}, line {parsed[i]['line_of'](k - int(starts[i]))}"

        uniq, first, inverse = np.unique(feat, return_index=True, return_inverse=True)
        first_fld = fld[first]
        bad = np.flatnonzero(fld != first_fld[inverse.reshape(-1)])
        if bad.size:
            k = int(bad[0])
            k0 = int(first[inverse.reshape(-1)[k]])
            raise ValueError(f"{where(k)}: feature {feat[k]} appears with field {fld[k]}, but "
                             f"with field {fld[k0]} at its first occurrence ({where(k0)}); a "
                             f"feature must belong to one field.")
        # columns that never appear: the field of the closest lower column that does
        seen = np.full(n_features, -1, dtype=np.int64)
        seen[uniq] = uniq
        below = np.maximum.accumulate(seen)
        fields = np.where(below >= 0, first_fld[np.searchsorted(uniq, np.maximum(below, 0))],
                          first_fld.min())

    out = []
    for p in parsed:
        X = sp.csr_matrix((p["val"], p["feat"], p["indptr"]),
                          shape=(p["labels"].shape[0], n_features))
        X.sum_duplicates()  # sorts the indices, sums a feature repeated in a line
        X = X.astype(dtype)
        X.sort_indices()
        y = p["labels"]
        out += [X, (y > 0).astype(np.int64) if binary else y]
    out.append(fields.astype(np.int64))
    return tuple(out) if single else out
