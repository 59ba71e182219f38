"""Readers of the libFM / svmlight and libFFM text formats: whole-file loaders, chunk
iterators for out-of-core training, and one-pass scans.

All of them read files line by line through one parser (:func:`_blocks`), so a malformed line
raises the same ValueError, with the file path and the 1-based line number, whichever reader
meets it."""
import gzip
import math
import os
from itertools import chain, repeat
from numbers import Integral
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

#: rows per parsed block of the whole-file loaders and the scans (memory: a few MB a block)
_BLOCK_ROWS = 8192

_COLON = b":"


class LibFMScan(NamedTuple):
    """What :func:`scan_libfm` finds in a libFM file."""

    n_samples: int
    n_features: int


class LibFFMScan(NamedTuple):
    """What :func:`scan_libffm` finds in a libFFM file."""

    n_samples: int
    n_features: int
    fields: np.ndarray


# ------------------------------------------------------------------------------ the parser
def _open(path):
    """The file as a binary stream, through gzip when its name ends with ``.gz``."""
    name = os.fspath(path)
    suffix = b".gz" if isinstance(name, bytes) else ".gz"
    return gzip.open(name, "rb") if name.endswith(suffix) else open(name, "rb")


def _shown(token):
    return repr(token.decode("utf-8", "replace"))


class _Format:
    """The token syntax of a format: ``libfm`` ``feature:value`` (svmlight's ``qid:`` tokens
    skipped), ``libffm`` ``field:feature:value``."""

    def __init__(self, name, zero_based=True):
        self.name = name
        self.ids = ("field", "feature") if name == "libffm" else ("feature",)
        self.colons = len(self.ids)
        self.syntax = ":".join(self.ids) + ":value"
        self.offset = 0 if zero_based else 1

    def bad_token(self, path, lineno, tokens):
        """The ValueError for the first malformed token of a line (None if all are fine)."""
        for tok in tokens:
            parts = tok.split(_COLON)
            why = None
            if len(parts) != self.colons + 1:
                why = f"has {len(parts)} ':'-separated parts, not {self.colons + 1}"
            else:
                for part, what in zip(parts, self.ids):
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
                        float(parts[-1])
                    except ValueError:
                        why = f"its value {_shown(parts[-1])} is not a number"
            if why is not None:
                return ValueError(f"{path}, line {lineno}: token {_shown(tok)} is not "
                                  f"{self.syntax} (integer ids, numeric value): {why}.")
        return None


class _Block:
    """Parsed rows of a file: float64 ``labels``, int64 ``indptr``, per entry the int64
    ``feat`` (zero-based), ``fld`` (libFFM; None for libFM) and float64 ``val``, and the
    1-based line number of each row in ``lines``."""

    __slots__ = ("path", "labels", "indptr", "feat", "fld", "val", "lines")

    def __init__(self, path, labels, indptr, feat, fld, val, lines):
        self.path, self.labels, self.indptr = path, labels, indptr
        self.feat, self.fld, self.val, self.lines = feat, fld, val, lines

    def line_of(self, k):
        """The line number of entry k."""
        return int(self.lines[np.searchsorted(self.indptr, k, side="right") - 1])

    def where(self, k):
        return f"{self.path}, line {self.line_of(k)}"

    def check_range(self, n_features):
        """Raise unless every feature id is below n_features."""
        bad = np.flatnonzero(self.feat >= n_features)
        if bad.size:
            k = int(bad[0])
            raise ValueError(f"{self.where(k)}: feature id {self.feat[k]} is out of range for "
                             f"n_features={n_features} (ids must be below it).")

    def matrix(self, n_features, dtype, binary):
        """(X, y): X a CSR matrix with sorted indices (a feature repeated in a row summed,
        stored zeros kept), y the labels, mapped to {0, 1} (label > 0) when ``binary``."""
        self.check_range(n_features)
        X = sp.csr_matrix((self.val, self.feat, self.indptr),
                          shape=(self.labels.shape[0], n_features))
        X.sum_duplicates()  # sorts the indices, sums a feature repeated in a line
        X = X.astype(dtype)
        X.sort_indices()
        y = self.labels
        return X, ((y > 0).astype(np.int64) if binary else y)


def _parse(path, fmt, lines, numbers):
    """The _Block of some lines (bytes, comments removed, none blank) of ``path``; ``numbers``
    their line numbers."""
    toks = [line.split() for line in lines]
    try:
        labels = np.array(list(map(float, [t[0] for t in toks])), dtype=np.float64)
    except ValueError:
        labels = None
    if labels is None or not np.isfinite(labels).all():
        for t, lineno in zip(toks, numbers):
            try:
                ok = math.isfinite(float(t[0]))
            except ValueError:
                raise ValueError(f"{path}, line {lineno}: the label {_shown(t[0])} is not a "
                                 f"number.") from None
            if not ok:
                raise ValueError(f"{path}, line {lineno}: the label {_shown(t[0])} is not "
                                 f"finite.")
    entries = [t[1:] for t in toks]
    if fmt.name == "libfm":  # svmlight's query ids, skipped as load_svmlight_file does
        entries = [[e for e in t if not e.startswith(b"qid:")] if t and t[0][:4] == b"qid:"
                   else t for t in entries]
    counts = np.fromiter(map(len, entries), dtype=np.int64, count=len(entries))
    flat = list(chain.from_iterable(entries))
    parts = None
    if not flat:
        parts = []
    elif list(map(bytes.count, flat, repeat(_COLON))).count(fmt.colons) == len(flat):
        parts = _COLON.join(flat).split(_COLON)
    if parts is not None:
        step = fmt.colons + 1
        try:
            ids = [np.array(list(map(int, parts[i::step])), dtype=np.int64)
                   for i in range(fmt.colons)]
            val = np.array(list(map(float, parts[fmt.colons::step])), dtype=np.float64)
        except (ValueError, OverflowError):
            parts = None
    if parts is None:
        for t, lineno in zip(entries, numbers):
            err = fmt.bad_token(path, lineno, t)
            if err is not None:
                raise err
        raise ValueError(f"{path}, lines {numbers[0]}-{numbers[-1]}: malformed "
                         f"{fmt.syntax} tokens.")
    indptr = np.zeros(len(lines) + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    feat = ids[-1] - fmt.offset if fmt.offset else ids[-1]
    block = _Block(path, labels, indptr, feat, ids[0] if fmt.colons == 2 else None, val,
                   np.asarray(numbers, dtype=np.int64))
    for id_, what in zip(ids, fmt.ids):
        bad = np.flatnonzero(id_ < (fmt.offset if what == "feature" else 0))
        if bad.size:
            k = int(bad[0])
            hint = (" (zero_based=False: feature ids start at 1)"
                    if fmt.offset and id_[k] >= 0 else "")
            raise ValueError(f"{block.where(k)}: {'negative ' if id_[k] < 0 else ''}{what} id "
                             f"{int(id_[k])} in token {_shown(_token(parts, k, fmt))}{hint}.")
    bad = np.flatnonzero(~np.isfinite(val))
    if bad.size:
        k = int(bad[0])
        in_field = f" (field {block.fld[k]})" if block.fld is not None else ""
        raise ValueError(f"{block.where(k)}: non-finite value {float(val[k])!r} of feature "
                         f"{ids[-1][k]}{in_field}.")
    return block


def _token(parts, k, fmt):
    step = fmt.colons + 1
    return _COLON.join(parts[k * step:(k + 1) * step])


def _blocks(path, fmt, rows):
    """Parse ``path`` line by line: yields _Blocks of at most ``rows`` rows.  A row is a line
    that is not blank once a ``#`` comment is cut off."""
    lines, numbers = [], []
    with _open(path) as fh:
        for lineno, line in enumerate(fh, 1):
            if b"#" in line:
                line = line[:line.index(b"#")]
            if not line or line.isspace():
                continue
            lines.append(line)
            numbers.append(lineno)
            if len(lines) == rows:
                yield _parse(path, fmt, lines, numbers)
                lines, numbers = [], []
    if lines:
        yield _parse(path, fmt, lines, numbers)


#: the most features a libFFM file may number (its field table holds one entry per feature
#: id); the estimators take at most as many (int32 column indices)
MAX_FEATURES = 2**31 - 1


class _FieldTable:
    """The field of every feature at its first occurrence (and where that was), checked
    against every later occurrence; O(largest feature id) memory."""

    def __init__(self):
        self.field = np.empty(0, np.int64)  # -1: not seen yet
        self.line = np.empty(0, np.int64)   # line of the first occurrence
        self.file = np.empty(0, np.int64)   # index into self.paths of the first occurrence
        self.paths = []

    @property
    def n_features(self):
        """The largest feature id seen plus one."""
        seen = np.flatnonzero(self.field >= 0)
        return int(seen[-1]) + 1 if seen.size else 0

    def update(self, block):
        feat, fld = block.feat, block.fld
        if not feat.size:
            return
        top = int(feat.max()) + 1
        if top > MAX_FEATURES:  # the table is O(largest id): 2**40 would need terabytes
            k = int(np.argmax(feat))
            raise ValueError(
                f"{block.where(k)}: feature id {int(feat[k])} is too large: skfm takes at "
                f"most {MAX_FEATURES} features (ids 0 to {MAX_FEATURES - 1}); renumber or "
                f"hash the feature ids into a smaller range.")
        if top > self.field.shape[0]:
            size = max(top, 2 * self.field.shape[0])
            self.field, self.line, self.file = (
                np.concatenate([a, np.full(size - a.shape[0], -1, np.int64)])
                for a in (self.field, self.line, self.file))
        if block.path not in self.paths:
            self.paths.append(block.path)
        uniq, first = np.unique(feat, return_index=True)
        new = self.field[uniq] < 0
        uniq, first = uniq[new], first[new]
        self.field[uniq] = fld[first]
        self.line[uniq] = block.lines[np.searchsorted(block.indptr, first, side="right") - 1]
        self.file[uniq] = self.paths.index(block.path)
        bad = np.flatnonzero(fld != self.field[feat])
        if bad.size:
            k = int(bad[0])
            j = int(feat[k])
            raise ValueError(
                f"{block.where(k)}: feature {j} appears with field {fld[k]}, but with field "
                f"{self.field[j]} at its first occurrence ({self.paths[self.file[j]]}, line "
                f"{self.line[j]}); a feature must belong to one field.")

    def fields(self, n_features):
        """The field of each of n_features columns: a column that never appeared gets the
        field of the closest lower column that did, or the smallest field seen when there is
        none (0 when no feature appeared)."""
        field = np.full(n_features, -1, np.int64)
        m = min(n_features, self.field.shape[0])
        field[:m] = self.field[:m]
        seen = field >= 0
        if not seen.any():
            return np.zeros(n_features, np.int64)
        below = np.maximum.accumulate(np.where(seen, np.arange(n_features), -1))
        return np.where(below >= 0, field[np.maximum(below, 0)], field[seen].min())


# ------------------------------------------------------------------------------ checks
def _check_count(value, name, allow_none=False, minimum=0):
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Integral) or value < minimum:
        what = "a positive" if minimum == 1 else "a non-negative"
        raise ValueError(f"{name} must be {what} integer{' or None' if allow_none else ''}; "
                         f"got {value!r}.")
    return int(value)


def _paths(paths, what):
    single = isinstance(paths, (str, bytes)) or hasattr(paths, "__fspath__")
    files = [paths] if single else list(paths)
    if not files:
        raise ValueError(f"paths is an empty list; give at least one {what} file.")
    return single, files


# ------------------------------------------------------------------------------ libFM
def load_libfm(paths, n_features=None, *, zero_based=True, dtype=np.float32, binary=True):
    """Load one or more libFM / svmlight files (``label idx:val ...``) as CSR matrices.

    Each line that is not blank once a ``#`` comment is cut off is a row: a numeric label,
    then whitespace-separated ``feature:value`` tokens (svmlight's ``qid:`` tokens are
    skipped).  Files whose name ends with ``.gz`` are read through gzip.  On well-formed files
    the result is that of :func:`sklearn.datasets.load_svmlight_files`; unlike it, rows need
    not list their features in increasing order (a repeated feature is summed), and a
    malformed line raises with its path and line number.  Pure Python parsing, block by
    block: about a second per million tokens.

    Parameters
    ----------
    paths : str, path-like or list of them
        File path(s); with several files all matrices get the same number of columns.
    n_features : int, default=None
        Number of columns; inferred from the files when None.  A larger feature id raises.
    zero_based : bool, default=True
        Whether feature indices start at 0 (libFM's convention); with False, at 1 (and 0
        raises).
    dtype : dtype, default=np.float32
        dtype of the matrices (values are parsed, and duplicates summed, in float64).
    binary : bool, default=True
        Map labels to {0, 1} (label > 0 -> 1, int64), as for libFM's -1/1 click labels; when
        False the labels are returned as float64.

    Returns
    -------
    [X, y, ...] for a list of paths, or (X, y) for a single path: X a CSR matrix with sorted
    indices (stored zeros kept), y an ndarray.

    Raises
    ------
    ValueError
        With the file path and the 1-based line number, for a token that is not
        ``int:number``, a label that is not a finite number, a negative feature id (0 with
        ``zero_based=False``), a non-finite value and a feature id of ``n_features`` or more.

    See Also
    --------
    iter_libfm : the same rows in chunks, for files larger than memory.
    scan_libfm : the number of rows and features of a file, in one pass.
    """
    single, files = _paths(paths, "libFM")
    n_features = _check_count(n_features, "n_features", allow_none=True)
    fmt = _Format("libfm", zero_based)
    parsed = [list(_blocks(path, fmt, _BLOCK_ROWS)) for path in files]
    if n_features is None:
        n_features = max((int(b.feat.max()) + 1 for bs in parsed for b in bs if b.feat.size),
                         default=0)
    out = []
    for blocks in parsed:
        out += _stack([b.matrix(n_features, dtype, binary) for b in blocks], n_features, dtype,
                      binary)
    return tuple(out) if single else out


def _stack(chunks, n_features, dtype, binary):
    """[X, y] of a file from its blocks' (X, y)."""
    if not chunks:
        return [sp.csr_matrix((0, n_features), dtype=dtype),
                np.empty(0, np.int64 if binary else np.float64)]
    X = sp.vstack([X for X, _ in chunks], format="csr")
    return [X, np.concatenate([y for _, y in chunks])]


def iter_libfm(path, chunk_rows, n_features, *, zero_based=True, dtype=np.float32,
               binary=True):
    """Read a libFM / svmlight file in chunks of rows, never the whole file at once.

    For out-of-core training: feed each chunk to ``partial_fit``.  The rows, their parsing and
    the errors are those of :func:`load_libfm`; memory is that of one chunk.

    Parameters
    ----------
    path : str or path-like
        The file (gzipped when the name ends with ``.gz``).
    chunk_rows : int
        The most rows of a chunk (every chunk but the last has exactly as many).
    n_features : int
        The number of columns of every chunk (e.g. :func:`scan_libfm`'s ``n_features``, or
        the fitted model's ``n_features_in_``); a larger feature id raises.
    zero_based, dtype, binary
        As for :func:`load_libfm`.

    Yields
    ------
    X : CSR matrix of shape (n_chunk_rows, n_features)
        With sorted indices, a repeated feature summed.
    y : ndarray of shape (n_chunk_rows,)

    Raises
    ------
    ValueError
        As :func:`load_libfm`, when the iteration reaches the malformed line (the chunks
        before it have been yielded).

    Examples
    --------
    >>> import os, tempfile
    >>> from skfm.datasets import iter_libfm, scan_libfm
    >>> path = os.path.join(tempfile.mkdtemp(), "train.libfm")
    >>> with open(path, "w") as fh:
    ...     _ = fh.write("1 0:1 3:1\\n-1 1:1\\n1 2:0.5 # a comment\\n")
    >>> scan_libfm(path)
    LibFMScan(n_samples=3, n_features=4)
    >>> [(X.shape, y.tolist()) for X, y in iter_libfm(path, chunk_rows=2, n_features=4)]
    [((2, 4), [1, 0]), ((1, 4), [1])]
    """
    chunk_rows = _check_count(chunk_rows, "chunk_rows", minimum=1)
    n_features = _check_count(n_features, "n_features")
    for block in _blocks(path, _Format("libfm", zero_based), chunk_rows):
        yield block.matrix(n_features, dtype, binary)


def scan_libfm(path, *, zero_based=True):
    """Count the rows and features of a libFM / svmlight file in one streaming pass.

    Checks every line as :func:`load_libfm` does, in memory independent of the file's size.

    Parameters
    ----------
    path : str or path-like
        The file (gzipped when the name ends with ``.gz``).
    zero_based : bool, default=True
        As for :func:`load_libfm`.

    Returns
    -------
    scan : LibFMScan
        A named tuple ``(n_samples, n_features)``: the number of rows, and the largest
        feature id plus one (what :func:`load_libfm` infers).
    """
    n_rows = n_features = 0
    for block in _blocks(path, _Format("libfm", zero_based), _BLOCK_ROWS):
        n_rows += block.labels.shape[0]
        if block.feat.size:
            n_features = max(n_features, int(block.feat.max()) + 1)
    return LibFMScan(n_rows, n_features)


# ------------------------------------------------------------------------------ libFFM
def load_libffm(paths, n_features=None, *, dtype=np.float32, binary=True):
    """Load one or more libFFM files (``label field:feature:value ...``) as CSR matrices, with
    the field of each column.

    Each line that is not blank once a ``#`` comment is cut off is a row: a numeric label,
    then whitespace-separated ``field:feature:value`` tokens with zero-based integer field
    and feature ids and a numeric value.  Files whose name ends with ``.gz`` are read through
    gzip.  A feature must have the same field wherever it appears (in every file).  Pure
    Python parsing, block by block: about a second per million tokens.

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
        a non-finite value, a feature id of ``n_features`` or more or of 2**31 - 1 or more
        (skfm's limit), and a feature that appears with two different fields.

    See Also
    --------
    iter_libffm : the same rows in chunks, for files larger than memory.
    scan_libffm : the number of rows and features and the fields of a file, in one pass.

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
    single, files = _paths(paths, "libFFM")
    n_features = _check_count(n_features, "n_features", allow_none=True)
    fmt = _Format("libffm")
    table = _FieldTable()
    parsed = []
    for path in files:
        blocks = []
        for block in _blocks(path, fmt, _BLOCK_ROWS):
            if n_features is not None:
                block.check_range(n_features)
            table.update(block)
            blocks.append(block)
        parsed.append(blocks)
    if n_features is None:
        n_features = table.n_features
    out = []
    for blocks in parsed:
        out += _stack([b.matrix(n_features, dtype, binary) for b in blocks], n_features, dtype,
                      binary)
    out.append(table.fields(n_features))
    return tuple(out) if single else out


def iter_libffm(path, chunk_rows, n_features, *, dtype=np.float32, binary=True):
    """Read a libFFM file in chunks of rows, never the whole file at once.

    For out-of-core training: give the estimator ``fields=`` :func:`scan_libffm`'s
    ``fields`` and feed each chunk to ``partial_fit``.  The rows, their parsing and the errors
    are those of :func:`load_libffm` (a feature met with two different fields raises at its
    second field); memory is that of one chunk plus O(n_features).

    Parameters
    ----------
    path : str or path-like
        The file (gzipped when the name ends with ``.gz``).
    chunk_rows : int
        The most rows of a chunk (every chunk but the last has exactly as many).
    n_features : int
        The number of columns of every chunk; a larger feature id raises.
    dtype, binary
        As for :func:`load_libffm`.

    Yields
    ------
    X : CSR matrix of shape (n_chunk_rows, n_features)
        With sorted indices, a repeated feature summed.
    y : ndarray of shape (n_chunk_rows,)

    Examples
    --------
    >>> import os, tempfile
    >>> from skfm.datasets import iter_libffm, scan_libffm
    >>> path = os.path.join(tempfile.mkdtemp(), "train.ffm")
    >>> with open(path, "w") as fh:
    ...     _ = fh.write("1 0:0:1 1:3:1\\n-1 0:1:1 1:2:1\\n1 0:0:1\\n")
    >>> n_samples, n_features, fields = scan_libffm(path)
    >>> n_samples, n_features, fields.tolist()
    (3, 4, [0, 0, 1, 1])
    >>> [X.shape for X, y in iter_libffm(path, chunk_rows=2, n_features=n_features)]
    [(2, 4), (1, 4)]
    """
    chunk_rows = _check_count(chunk_rows, "chunk_rows", minimum=1)
    n_features = _check_count(n_features, "n_features")
    table = _FieldTable()
    for block in _blocks(path, _Format("libffm"), chunk_rows):
        block.check_range(n_features)
        table.update(block)
        yield block.matrix(n_features, dtype, binary)


def scan_libffm(path):
    """Count the rows and features of a libFFM file and find the field of every column, in
    one streaming pass.

    Checks every line as :func:`load_libffm` does, in O(n_features) memory.

    Parameters
    ----------
    path : str or path-like
        The file (gzipped when the name ends with ``.gz``).

    Returns
    -------
    scan : LibFFMScan
        A named tuple ``(n_samples, n_features, fields)``: the number of rows, the largest
        feature id plus one, and the field of each column, as :func:`load_libffm` returns
        them.
    """
    table = _FieldTable()
    n_rows = 0
    for block in _blocks(path, _Format("libffm"), _BLOCK_ROWS):
        table.update(block)
        n_rows += block.labels.shape[0]
    return LibFFMScan(n_rows, table.n_features, table.fields(table.n_features))
