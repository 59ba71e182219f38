"""Synthetic multi-field one-hot data drawn from a planted degree-2 factorization machine."""
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, validate_params

#: Field sizes of Frappe (user, item, daytime, weekday, isweekend, homework, cost, weather,
#: country, city): 5,382 one-hot features in 10 fields.
FRAPPE_FIELD_SIZES = (957, 4082, 7, 7, 2, 3, 2, 9, 80, 233)


# the constraints the generators share (scikit-learn's validate_params: a bad value raises an
# InvalidParameterError, a ValueError and TypeError, naming the parameter and what it accepts)
_COMMON = {
    "n_factors": [Interval(Integral, 0, None, closed="left")],
    "skew": [Interval(Real, 0, None, closed="left")],
    "scale": [Interval(Real, 0, None, closed="left")],
    "dtype": "no_validation",  # _check_dtype
    "random_state": ["random_state"],
    "return_params": ["boolean"],
    "return_fields": ["boolean"],
}
_FIELDS = {
    "n_fields": [Interval(Integral, 1, None, closed="left")],
    "field_size": [Interval(Integral, 1, None, closed="left")],
    "field_sizes": ["array-like", None],
}


def _no_bools(func, **counts):
    """scikit-learn's Interval(Integral, ...) takes True for 1: refuse a bool for a count."""
    for name, value in counts.items():
        if isinstance(value, (bool, np.bool_)):
            raise TypeError(f"The {name!r} parameter of {func} must be an int, not a bool; got "
                            f"{value!r}.")


def _check_dtype(dtype):
    try:
        dt = np.dtype(dtype)
    except TypeError as e:
        raise TypeError(f"dtype must be a NumPy numeric dtype; got {dtype!r}.") from e
    if dt.kind not in "fiub":
        raise TypeError(f"dtype must be a NumPy numeric dtype; got {dt}.")
    return dt


def _field_sizes(n_fields, field_size, field_sizes, name="field_sizes"):
    if field_sizes is not None:
        sizes = np.asarray(field_sizes)
        if sizes.ndim != 1 or len(sizes) == 0 or sizes.dtype.kind not in "iu" or (
                sizes < 1).any():
            raise ValueError(f"{name} must be a non-empty list of positive integers; got "
                             f"{field_sizes!r}.")
        sizes = sizes.astype(np.int64)
    else:
        sizes = np.full(n_fields, field_size, dtype=np.int64)
    return sizes


def _popularity(size, skew, rs):
    """(perm, p): a field's value ``perm[k]`` has probability ``p[k] ~ 1 / (k + 1)**skew``
    (Zipf-like; skew=0 is uniform), the popular values scattered over the field's ids."""
    p = 1.0 / np.arange(1, size + 1) ** skew
    return rs.permutation(size), p / p.sum()


def _draw_fields(n_samples, sizes, skew, rs):
    """(n_samples, n_fields) global feature ids: one value per field, Zipf-like popularity
    ``p_k ~ 1 / (k + 1)**skew`` within each field (skew=0 is uniform)."""
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    cols = np.empty((n_samples, len(sizes)), dtype=np.int64)
    for f, size in enumerate(sizes):
        perm, p = _popularity(size, skew, rs)
        cols[:, f] = offsets[f] + perm[rs.choice(size, size=n_samples, p=p)]
    return cols


def _one_hot(cols, n_features, dtype):
    n, m = cols.shape
    order = np.sort(cols, axis=1)
    return sp.csr_matrix((np.ones(n * m, dtype=dtype), order.ravel(), np.arange(0, n * m + 1, m)),
                         shape=(n, n_features))


def _block_fields(sizes):
    """Field of each column when field f is the f-th consecutive block of ``sizes[f]`` columns."""
    return np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)


def _planted_fm(n_features, n_factors, rs, scale):
    return {"intercept": 0.0, "coef": rs.normal(0.0, 0.5 * scale, n_features),
            "factors": rs.normal(0.0, scale / np.sqrt(max(n_factors, 1)), (n_features, n_factors))}


def _planted_output(X, params, scale):
    """fm_output(X, params), refused by name where a huge ``scale`` makes it overflow."""
    with np.errstate(over="ignore", invalid="ignore"):
        f = fm_output(X, params)
    if not np.isfinite(f).all():
        raise ValueError(f"scale={scale!r} is too large: the planted model's outputs overflow.")
    return f


def _sigmoid(f):
    with np.errstate(over="ignore"):  # exp(-f) = inf for f < -709: sigmoid 0, as it should be
        return 1.0 / (1.0 + np.exp(-f))


def fm_output(X, params):
    """f(x) of a factorization machine with parameters ``{"intercept", "coef", "factors"}``."""
    X = sp.csr_matrix(X)
    V = params["factors"]
    s = X @ V
    q = X.multiply(X) @ (V * V)
    return params["intercept"] + X @ params["coef"] + 0.5 * (s * s - q).sum(1)


def _returned(out, sizes, params, return_fields, return_params):
    """``out`` followed by the fields (``return_fields``) and the parameters (``return_params``)."""
    if return_fields:
        out += (_block_fields(sizes),)
    if return_params:
        out += (params,)
    return out


@validate_params({"n_samples": [Interval(Integral, 1, None, closed="left")], **_FIELDS,
                  **_COMMON}, prefer_skip_nested_validation=True)
def make_fm_classification(n_samples=10000, *, n_fields=8, field_size=50, field_sizes=None,
                           n_factors=4, skew=0.0, scale=1.0, dtype=np.float64,
                           random_state=None, return_params=False, return_fields=False):
    """Binary labels drawn from a planted factorization machine on one-hot multi-field data.

    Each row has one active feature per field; ``y ~ Bernoulli(sigmoid(f(x)))`` where f is an FM
    with ``w ~ N(0, (scale/2)^2)`` and ``v_i ~ N(0, scale^2 / n_factors)``.  Field f occupies the
    f-th consecutive block of columns.

    Parameters
    ----------
    n_samples : int, default=10000
    n_fields : int, default=8
        Number of categorical fields (ignored when ``field_sizes`` is given).
    field_size : int, default=50
        Values per field (ignored when ``field_sizes`` is given).
    field_sizes : sequence of int, default=None
        Values of each field, e.g. :data:`FRAPPE_FIELD_SIZES`.
    n_factors : int, default=4
        Rank of the planted interactions.
    skew : float, default=0.0
        Zipf exponent of the value popularity within a field (0 = uniform).
    scale : float, default=1.0
        Scale of the planted weights (larger = more separable).
    dtype : dtype, default=np.float64
    random_state : int, RandomState instance or None
    return_params : bool, default=False
        Also return the planted parameters ``{"intercept", "coef", "factors"}``.
    return_fields : bool, default=False
        Also return the field of each column.

    Returns
    -------
    X : CSR matrix of shape (n_samples, n_features)
    y : ndarray of {0, 1}, shape (n_samples,)
    fields : ndarray of int64, shape (n_features,)
        Only when ``return_fields``: the field of each column (field f is the f-th block of
        columns, ``field_sizes[f]`` wide).
    params : dict
        Only when ``return_params``.
    """
    _no_bools("make_fm_classification", n_samples=n_samples, n_fields=n_fields,
              field_size=field_size, n_factors=n_factors)
    rs = check_random_state(random_state)
    dtype = _check_dtype(dtype)
    sizes = _field_sizes(n_fields, field_size, field_sizes)
    n_features = int(sizes.sum())
    params = _planted_fm(n_features, n_factors, rs, scale)
    X = _one_hot(_draw_fields(n_samples, sizes, skew, rs), n_features, dtype)
    f = _planted_output(X, params, scale)
    params["intercept"] = -float(np.median(f))  # balanced classes
    f += params["intercept"]
    y = (rs.random_sample(n_samples) < _sigmoid(f)).astype(np.int64)
    return _returned((X, y), sizes, params, return_fields, return_params)


@validate_params({"n_samples": [Interval(Integral, 1, None, closed="left")], **_FIELDS,
                  "noise": [Interval(Real, 0, None, closed="left")], **_COMMON},
                 prefer_skip_nested_validation=True)
def make_fm_regression(n_samples=10000, *, n_fields=8, field_size=50, field_sizes=None,
                       n_factors=4, noise=0.1, skew=0.0, scale=1.0, dtype=np.float64,
                       random_state=None, return_params=False, return_fields=False):
    """Targets ``y = f(x) + N(0, noise^2)`` of a planted factorization machine on one-hot
    multi-field data (see :func:`make_fm_classification` for the other parameters).

    Parameters
    ----------
    noise : float, default=0.1
        Standard deviation of the Gaussian noise added to the targets.

    Returns
    -------
    X : CSR matrix of shape (n_samples, n_features)
    y : ndarray of float64, shape (n_samples,)
    fields, params
        Only when ``return_fields`` / ``return_params``: as in :func:`make_fm_classification`.
    """
    _no_bools("make_fm_classification", n_samples=n_samples, n_fields=n_fields,
              field_size=field_size, n_factors=n_factors)
    _no_bools("make_fm_regression", n_samples=n_samples, n_fields=n_fields,
              field_size=field_size, n_factors=n_factors)
    rs = check_random_state(random_state)
    dtype = _check_dtype(dtype)
    sizes = _field_sizes(n_fields, field_size, field_sizes)
    n_features = int(sizes.sum())
    params = _planted_fm(n_features, n_factors, rs, scale)
    X = _one_hot(_draw_fields(n_samples, sizes, skew, rs), n_features, dtype)
    f = _planted_output(X, params, scale)
    with np.errstate(over="ignore", invalid="ignore"):
        y = f + noise * rs.standard_normal(n_samples)
    if not np.isfinite(y).all():
        raise ValueError(f"noise={noise!r} is too large: the targets overflow.")
    return _returned((X, y), sizes, params, return_fields, return_params)


@validate_params({"n_samples": [Interval(Integral, 1, None, closed="left")],
                  "n_factors": _COMMON["n_factors"], "dtype": "no_validation",
                  "random_state": ["random_state"], "return_fields": ["boolean"]},
                 prefer_skip_nested_validation=True)
def make_frappe_like(n_samples=200000, *, n_factors=8, dtype=np.float32, random_state=None,
                     return_fields=False):
    """Data of Frappe's shape: 10 one-hot fields with Frappe's sizes (5,382 features) and a
    Zipf-like value popularity, labels from a planted FM.  For benchmarks.

    Parameters
    ----------
    n_samples : int, default=200000
    n_factors : int, default=8
        Rank of the planted interactions.
    dtype : dtype, default=np.float32
    random_state : int, RandomState instance or None
    return_fields : bool, default=False
        Also return the field of each column.

    Returns
    -------
    X : CSR matrix of shape (n_samples, 5382)
    y : ndarray of {0, 1}, shape (n_samples,)
    fields : ndarray of int64, shape (5382,)
        Only when ``return_fields``: field f is the f-th block of columns,
        ``FRAPPE_FIELD_SIZES[f]`` wide.
    """
    _no_bools("make_frappe_like", n_samples=n_samples, n_factors=n_factors)
    return make_fm_classification(n_samples, field_sizes=FRAPPE_FIELD_SIZES, n_factors=n_factors,
                                  skew=1.0, dtype=dtype, random_state=random_state,
                                  return_fields=return_fields)


@validate_params({"n_train": [Interval(Integral, 1, None, closed="left")],
                  "n_test": [Interval(Integral, 0, None, closed="left")],
                  "n_users": [Interval(Integral, 1, None, closed="left")],
                  "n_items": [Interval(Integral, 1, None, closed="left")],
                  "n_context": [Interval(Integral, 0, None, closed="left")],
                  "context_size": [Interval(Integral, 1, None, closed="left")],
                  "context_sizes": ["array-like", None],
                  "holdout": [Interval(Real, 0, 1, closed="neither")], **_COMMON},
                 prefer_skip_nested_validation=True)
def make_unseen_pairs(n_train=4000, n_test=2000, *, n_users=100, n_items=100, n_context=2,
                      context_size=10, context_sizes=None, skew=0.0, n_factors=4, holdout=0.5,
                      scale=1.5, dtype=np.float64, random_state=None, return_params=False,
                      return_fields=False):
    """The case MixFM targets: user-item interactions never observed in training.

    Rows have a user, an item and ``n_context`` context fields (one-hot).  Labels come from a
    planted FM (``y ~ Bernoulli(sigmoid(f(x)))``).  The user-item grid is split at random:
    a fraction ``holdout`` of the (user, item) pairs never appears in the training rows, and
    every test row uses such a pair, so the test set asks the model to score feature pairs
    that never co-occurred in training.

    Parameters
    ----------
    n_train, n_test : int, default=4000, 2000
        Rows of the training and test sets.
    n_users, n_items : int, default=100
        Values of the user and item fields.
    n_context : int, default=2
        Number of context fields.
    context_size : int, default=10
        Values of each context field.
    context_sizes : list of int, default=None
        Values of each context field, one entry per field (then ``n_context`` and
        ``context_size`` are not used).
    skew : float, default=0.0
        Zipf-like popularity of the values of every field, ``p_k ~ 1 / (k + 1)**skew`` (0:
        uniform): with ``skew`` near 1 a few users, items and context values are frequent and
        most are rare, as in real interaction logs.
    holdout : float, default=0.5
        Fraction of the (user, item) pairs held out of training, in (0, 1).
    scale : float, default=1.5
        Scale of the planted weights.
    n_factors, dtype, random_state, return_params, return_fields
        As in :func:`make_fm_classification`.

    Returns
    -------
    X_train, X_test : CSR matrices with n_users + n_items + (the context fields' sizes) columns
    y_train, y_test : ndarrays of {0, 1}
    fields : ndarray of int64, shape (n_features,)
        Only when ``return_fields``: the users' columns are field 0, the items' field 1, then
        context field c is field 2 + c (consecutive blocks in that order).
    params : dict
        Only when ``return_params``.
    """
    _no_bools("make_unseen_pairs", n_train=n_train, n_test=n_test, n_users=n_users,
              n_items=n_items, n_context=n_context, context_size=context_size,
              n_factors=n_factors)
    rs = check_random_state(random_state)
    dtype = _check_dtype(dtype)
    if n_users * n_items < 2:
        raise ValueError(f"make_unseen_pairs needs at least 2 (user, item) pairs, one seen in "
                         f"training and one held out; got n_users={n_users}, "
                         f"n_items={n_items}.")
    if context_sizes is None:
        context_sizes = [context_size] * n_context
    elif len(context_sizes):
        context_sizes = list(_field_sizes(None, None, context_sizes, "context_sizes"))
    sizes = _field_sizes(None, None, [n_users, n_items, *context_sizes])
    n_features = int(sizes.sum())
    params = _planted_fm(n_features, n_factors, rs, scale)
    unseen = rs.random_sample((n_users, n_items)) < holdout
    if unseen.all() or not unseen.any():  # a small grid: one pair of each kind at least
        cell = rs.randint(n_users * n_items)
        unseen.flat[cell] = not unseen.flat[cell]
    if skew:  # fixed for the training and the test rows
        popularity = [_popularity(k, skew, rs) for k in sizes]

    def values(f, n):
        if not skew:
            return rs.randint(sizes[f], size=n)
        perm, p = popularity[f]
        return perm[rs.choice(sizes[f], size=n, p=p)]

    def draw(n, want_unseen):
        cols = np.empty((n, len(sizes)), dtype=np.int64)
        filled, rounds = 0, 0
        while filled < n:
            u, i = values(0, 2 * n), values(1, 2 * n)
            keep = unseen[u, i] == want_unseen
            take = min(n - filled, int(keep.sum()))
            cols[filled:filled + take, 0] = u[keep][:take]
            cols[filled:filled + take, 1] = n_users + i[keep][:take]
            filled += take
            rounds += 1
            if rounds == 1000 and filled < n:  # almost no draw has the wanted status
                raise ValueError(
                    f"make_unseen_pairs: the {'held-out' if want_unseen else 'training'} "
                    f"(user, item) pairs are too rare under skew={skew} to draw "
                    f"{'n_test' if want_unseen else 'n_train'}={n} rows; lower skew or change "
                    f"holdout.")
        off = n_users + n_items
        for c in range(len(sizes) - 2):
            cols[:, 2 + c] = off + values(2 + c, n)
            off += sizes[2 + c]
        X = _one_hot(cols, n_features, dtype)
        return X

    X_train, X_test = draw(n_train, False), draw(n_test, True)
    f_train = _planted_output(X_train, params, scale)
    params["intercept"] = -float(np.median(f_train))
    out = []
    for X in (X_train, X_test):
        f = _planted_output(X, params, scale)
        out.append((rs.random_sample(X.shape[0]) < _sigmoid(f)).astype(np.int64))
    return _returned((X_train, X_test, out[0], out[1]), sizes, params, return_fields,
                     return_params)
