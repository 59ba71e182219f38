"""Fields of the columns of X: validation of user-given field labels and inference from X.

Field-aware models (DeepFM and the like) need the field of each column of X, e.g. the columns
that one ``OneHotEncoder`` column produces form one field.
"""
import numbers

import numpy as np
import scipy.sparse as sp

from ._base import check_sparse_structure
from ._kernels.fields import infer_fields_csc


def check_fields(fields, n_features):
    """Validate the field label of each column and relabel the labels to ``0..n_fields-1``.

    Parameters
    ----------
    fields : array-like of shape (n_features,)
        Field label of each column of X (list, tuple, ndarray, pandas Series): non-negative
        integers, of an integer dtype or of a float dtype holding only finite integral values.
        Labels need not be consecutive; the caller's object is never modified.
    n_features : int
        Number of columns of X.

    Returns
    -------
    fields_ : ndarray of int32, shape (n_features,)
        The labels relabelled to ``0..n_fields-1`` in the sorted order of the original labels
        (``np.unique(fields, return_inverse=True)``).
    n_fields : int
        Number of distinct labels (0 when ``n_features`` is 0).

    Raises
    ------
    ValueError
        When ``fields`` is not 1-D, its length is not ``n_features``, its dtype is not numeric
        (strings, objects) or is bool, or it holds NaN, infinite, non-integral or negative
        values.

    Examples
    --------
    >>> from skfm._fields import check_fields
    >>> check_fields([7, 7, 3, 100], 4)
    (array([1, 1, 0, 2], dtype=int32), 3)
    """
    if (isinstance(n_features, (bool, np.bool_)) or not isinstance(n_features, numbers.Integral)
            or n_features < 0):
        raise ValueError(f"n_features must be a non-negative integer; got {n_features!r}.")
    n_features = int(n_features)
    arr = np.asarray(fields)
    if arr.ndim != 1:
        raise ValueError(f"fields must be 1-D (one field label per column of X); got an array "
                         f"of shape {arr.shape}.")
    if arr.shape[0] != n_features:
        raise ValueError(f"fields has {arr.shape[0]} labels but X has {n_features} columns "
                         f"(features); give one field label per column.")
    if arr.dtype.kind not in "iuf":
        what = "bool" if arr.dtype.kind == "b" else "non-numeric"
        raise ValueError(f"fields must hold integer field labels (an integer dtype, or a float "
                         f"dtype with integral values); got {what} dtype {arr.dtype}.")
    if n_features == 0:
        return np.empty(0, np.int32), 0
    if arr.dtype.kind == "f":
        nan = np.isnan(arr)
        if nan.any():
            j = int(np.flatnonzero(nan)[0])
            raise ValueError(f"fields holds NaN (first at column {j}); every column needs an "
                             f"integer field label.")
        bad = ~np.isfinite(arr)
        if bad.any():
            j = int(np.flatnonzero(bad)[0])
            raise ValueError(f"fields must hold finite integer labels; column {j} holds "
                             f"{arr[j]}.")
        bad = arr != np.floor(arr)
        if bad.any():
            j = int(np.flatnonzero(bad)[0])
            raise ValueError(f"fields must hold integer labels; column {j} holds the "
                             f"non-integer value {arr[j].item()!r}.")
    if arr.dtype.kind != "u":
        bad = arr < 0
        if bad.any():
            j = int(np.flatnonzero(bad)[0])
            raise ValueError(f"field labels must be non-negative; column {j} holds "
                             f"{arr[j].item()!r}.")
    uniq, inverse = np.unique(arr, return_inverse=True)
    return inverse.reshape(-1).astype(np.int32), int(uniq.shape[0])


def infer_fields(X):
    """Infer the field of each column of a sparse matrix as consecutive column blocks.

    Columns are scanned left to right: column 0 opens field 0, and column ``j`` opens a new
    field exactly when it has a nonzero in some row in which a column of the current field
    (the columns since that field's first one) also has a nonzero; otherwise it joins the
    current field.  O(n_samples + nnz) after one conversion to CSC.

    Consequences:

    * This recovers the layout of ``OneHotEncoder`` / ``ColumnTransformer`` output, one field
      per encoded column, whenever each row has at most one nonzero per block and consecutive
      blocks co-occur in some row (e.g. every row has a value in every field).
    * A multi-hot group (two of its columns nonzero in one row) is split where the second of
      those columns starts a new field.
    * A numeric column (nonzero in most rows) becomes a field of its own.
    * A column with no nonzero in X joins the field before it (field 0 at the start); so do
      columns whose rows never meet the current field's rows: two blocks that never co-occur
      in a row are merged.
    * Stored explicit zeros count as absent: presence is decided on the values (after summing
      duplicate entries), not on the sparsity structure.

    Parameters
    ----------
    X : sparse matrix or array of shape (n_samples, n_features)
        Any scipy sparse format (sparse matrix or sparse array); a dense 2-D array is accepted
        too.  X is never modified (the conversion works on a copy).

    Returns
    -------
    fields : ndarray of int32, shape (n_features,)
        Field labels ``0..F-1``, non-decreasing along the columns.

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> from skfm._fields import infer_fields
    >>> X = sp.csr_matrix(np.array([[1, 0, 0, 1, 0, 2.5],
    ...                             [0, 1, 0, 0, 1, 0.3],
    ...                             [0, 0, 1, 1, 0, 1.0]]))
    >>> infer_fields(X)
    array([0, 0, 0, 1, 1, 2], dtype=int32)
    """
    if sp.issparse(X):
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D; got a sparse array of shape {X.shape}.")
        check_sparse_structure(X)  # scipy's conversions would read out of bounds on bad indices
        Xc = sp.csc_matrix(X, copy=True)
    else:
        arr = np.asarray(X)
        if arr.ndim != 2:
            raise ValueError(f"X must be a 2-D matrix; got an array of shape {arr.shape}.")
        Xc = sp.csc_matrix(arr)
    Xc.sum_duplicates()  # on the copy; sums duplicates so that presence is the summed value's
    nonzero = np.asarray(Xc.data != 0, dtype=np.bool_)
    return infer_fields_csc(np.asarray(Xc.indptr, np.int64), np.asarray(Xc.indices, np.int64),
                            nonzero, np.int64(Xc.shape[0]))
