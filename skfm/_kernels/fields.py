"""Field inference kernel: the field (consecutive column block) of each column of a CSC matrix.

:func:`skfm._fields.infer_fields` canonicalises X (a CSC copy with summed duplicates) and passes
its raw arrays here, with a mask of the stored entries that are nonzero: stored zeros count as
absent.
"""
import numpy as np
from numba import njit


@njit(cache=True, fastmath=False)
def infer_fields_csc(indptr, indices, nonzero, n_rows):
    """Field label (int32, 0..F-1) of each column of a CSC matrix, in one O(n_rows + nnz) pass.

    Columns are scanned left to right; column 0 opens field 0, and column j opens a new field
    exactly when it has a nonzero in a row where a column of the current field (the columns since
    that field's first one) also has one; otherwise it joins the current field.  ``last[r]`` is
    the last field with a nonzero in row r, so column j conflicts iff ``last[r]`` equals the
    current field for one of its rows.

    Parameters
    ----------
    indptr : int64 array (n_columns + 1,)
        Column pointer of the CSC matrix.
    indices : int64 array (nnz,)
        Row index of each stored entry (duplicates within a column are harmless).
    nonzero : bool array (nnz,)
        Whether each stored entry is nonzero; False entries are ignored.
    n_rows : int
        Number of rows.

    Returns
    -------
    labels : int32 array (n_columns,)
    """
    n_cols = indptr.shape[0] - 1
    labels = np.empty(n_cols, np.int32)
    last = np.full(n_rows, -1, np.int64)
    cur = 0
    for j in range(n_cols):
        start = indptr[j]
        end = indptr[j + 1]
        if j > 0:
            for k in range(start, end):
                if nonzero[k] and last[indices[k]] == cur:
                    cur += 1
                    break
        for k in range(start, end):
            if nonzero[k]:
                last[indices[k]] = cur
        labels[j] = cur
    return labels
