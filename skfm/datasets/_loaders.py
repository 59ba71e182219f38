"""Loaders for the libFM / svmlight text format."""
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
