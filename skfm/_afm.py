"""Attentional factorization machines (AFM, Xiao et al. 2017): model core and estimators."""
from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from ._base import finite_output
from ._cores import SkeletonCore, factor_table
from ._kernels import afm as kafm
from ._platform import Model, Param, make_estimator
from ._trainer import numba_threads, readonly, readonly_float64

__all__ = ["AFMClassifier", "AFMRegressor", "AFMCore"]


#: afm_rows' arguments that a mode does not read (read-only y as saliency's: one compiled kernel)
_NO_Y = readonly(np.empty(0))
_NO_PTR = np.empty(0, np.int64)
_NO_PAIRS = np.empty((0, 2), np.int32)


class AFMCore(SkeletonCore):
    """AFM: ``w0`` (1,), table ``T`` = [w | V] (n_features, 1 + d) updated lazily, and the
    attention head ``H`` = [W (t x d, row-major) | b (t) | h (t) | p (d)] (float64, dense updates);
    ``seed`` (1,) int64 keys the dropout masks.  Trained by the minibatch skeleton with
    kafm.AFMSpec.  See :mod:`skfm._kernels.afm` for the math."""

    name = "afm"

    #: features whose pairs' attention inputs SMFM's candidate selection caches (see
    #: ``saliency_context``): K (K - 1) / 2 pairs of t + 1 values, 34 MB at K = 512, t = 64 and
    #: float32; fewer features when the cache would exceed pair_cache_bytes
    pair_cache_features = 512
    pair_cache_bytes = 64 * 2**20

    def __init__(self, attention_factor=64, dropout=0.0, attention_alpha=0.0):
        self.attention_factor = int(attention_factor)
        self.dropout = float(dropout)
        self.attention_alpha = float(attention_alpha)

    def init_params(self, n_features, n_factors, dtype, rng, init_std, rows=None):
        d, t = n_factors, self.attention_factor
        T, T_seed = factor_table(n_features, d, dtype, rng, init_std, rows)
        g = np.sqrt(2.0 / (d + t))
        H = np.empty(kafm.head_size(d, t))
        H[:t * d] = rng.normal(0.0, g, size=t * d)          # W
        H[t * d:t * d + t] = rng.normal(0.0, g, size=t)     # b
        H[t * d + t:t * d + 2 * t] = rng.normal(0.0, 1.0, size=t)  # h
        H[t * d + 2 * t:] = 1.0                             # p
        seed = np.array([rng.integers(0, 2**63 - 1)], np.int64)
        return {"w0": np.zeros(1), "T": T, "T_seed": T_seed, "H": H, "seed": seed}

    def spec(self, params, epoch=0, train=True):
        """The kernels' AFMSpec; ``train``: dropout on the pooled vector (else none)."""
        return kafm.AFMSpec(self.attention_factor, self.dropout if train else 0.0,
                            int(params["seed"][0]), int(epoch), self.attention_alpha)

    @staticmethod
    def _mmax(X):
        return int(np.diff(X.indptr).max()) if X.n_rows else 0

    # the three pair kernels and their model options (IFMCore: the same kernels with IFM's)
    def _opts(self, params):
        """The trailing arguments of the pair kernels below (AFM: none)."""
        return ()

    @staticmethod
    def _rows_kernel(*args):
        kafm.afm_rows(*args)

    @staticmethod
    def _cache_kernel(*args):
        return kafm.pair_cache(*args)

    @staticmethod
    def _cached_kernel(*args):
        kafm.afm_saliency_cached(*args)

    def _rows(self, params, X, mode, out, y=_NO_Y, loss_id=0, pptr=_NO_PTR, pairs=_NO_PAIRS):
        """The rows kernel (kafm.afm_rows) in ``mode`` over the rows of X, into ``out``."""
        self._rows_kernel(X.indptr, X.indices, X.data, y, params["w0"], params["T"], params["H"],
                          self.attention_factor, self._mmax(X), loss_id, mode, out, pptr, pairs,
                          *self._opts(params))
        return out

    def decision(self, params, X):
        return self._rows(params, X, kafm.DECIDE, np.empty(X.n_rows))

    def saliency_context(self, params, X):
        """A pair cache for scoring the many candidates mixed from the rows of X (SMFM's
        selection): for the K = pair_cache_features most frequent features of X (ties to the
        lower id), each pair's W (v_i * v_k) and p . (v_i * v_k).  A candidate's pair of two
        cached features then costs t multiply-adds instead of a t x d product.  On Frappe
        (K = 512) 78% of the candidates' pairs are cached.  Used by the trainer for
        single-output models (a one-vs-rest classifier scores without it)."""
        cnt = np.bincount(X.indices, minlength=X.n_features)
        per_pair = self.attention_factor * params["T"].itemsize + 8
        K = min(int(self.pair_cache_features), int(np.count_nonzero(cnt)))
        while K > 1 and K * (K - 1) // 2 * per_pair > self.pair_cache_bytes:
            K -= 1
        top = np.argsort(-cnt, kind="stable")[:K].astype(np.int64)
        kid = np.full(X.n_features, -1, np.int32)
        kid[top] = np.arange(K, dtype=np.int32)
        UC, PC = self._cache_kernel(top, params["T"], params["H"], self.attention_factor,
                                    *self._opts(params))
        return kid, K, UC, PC

    def saliency(self, params, X, y, loss_id, context=None):
        """Saliency of every row of X; ``context`` (saliency_context) makes it use the pair
        cache, which changes the result by rounding only."""
        out = np.empty(X.n_rows)
        y = readonly_float64(y)
        if context is None:
            return self._rows(params, X, kafm.SALIENCY, out, y, loss_id)
        kid, K, UC, PC = context
        self._cached_kernel(X.indptr, X.indices, X.data, y, params["w0"], params["T"],
                            params["H"], self.attention_factor, self._mmax(X), loss_id, kid, K,
                            UC, PC, out, *self._opts(params))
        return out

    def attention(self, params, X):
        """(pair_indptr, pairs, weights): see ``attention_scores`` of the estimators."""
        m = np.diff(X.indptr)
        pptr = np.zeros(X.n_rows + 1, np.int64)
        np.cumsum(m * (m - 1) // 2, out=pptr[1:])
        pairs = np.empty((pptr[-1], 2), np.int32)
        weights = self._rows(params, X, kafm.ATTENTION, np.empty(pptr[-1]), pptr=pptr,
                             pairs=pairs)
        return pptr, pairs, weights


class _AFMMethods:
    """The AFM estimators' own method: the attention-score inspection."""

    def attention_scores(self, X):
        """Attention weights a_ij (AFM Eq. 5) of every pair of nonzero features of every row.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        indptr : ndarray of shape (n_samples + 1,)
            Row r's pairs are ``pairs[indptr[r]:indptr[r + 1]]``; a row with m nonzeros has
            m (m - 1) / 2 pairs (none when m < 2).
        pairs : ndarray of shape (n_pairs, 2), int
            Feature ids (i, j), i < j, of each pair, in lexicographic order within a row.
        weights : ndarray of shape (n_pairs,) or (n_outputs, n_pairs)
            Attention weight of each pair; the weights of a row with pairs sum to 1.  A
            multiclass (one-vs-rest) classifier has one row of weights per class.
        """
        return pair_weights(self, X)


def pair_weights(estimator, X):
    """(indptr, pairs, weights) of the attention weights of the rows of X under a fitted AFM or
    IFM estimator (its core's ``attention``), one row of weights per output."""
    check_is_fitted(estimator)
    X = estimator._validate_X_predict(X)
    core = estimator._make_core()
    with numba_threads(estimator.n_jobs):
        res = [core.attention(p, X) for p in estimator._params]
    indptr, pairs, _ = res[0]
    weights = res[0][2] if len(res) == 1 else np.stack([r[2] for r in res])
    return indptr, pairs, finite_output(weights, X, "The attention weights")


def _afm_core(estimator, fields):
    return AFMCore(estimator._fitted_or_current("attention_factor"), estimator.dropout,
                   estimator.attention_alpha)


AFM = Model(
    name="AFM",
    module=__name__,
    title="Attentional factorization machine {task}",
    summary="""
        The model (Xiao et al. 2017, Eq. 6) for a row x with nonzeros x_i is

            f(x) = w0 + sum_i w_i x_i + p^T sum_{i<j} a_ij (v_i * v_j) x_i x_j,
            a_ij = softmax over the row's pairs of h^T ReLU(W (v_i * v_j) x_i x_j + b),

        with W (t x d), b, h (t) and p (d) the attention head (p starts at 1, W and b at
        N(0, 2 / (d + t)), h at N(0, 1)).  A row with fewer than two nonzeros has no pair term.
        The cost of a row is O(m^2 t d) for m nonzeros.  Numba kernels on the CSR rows; gradients
        are closed-form, saliency is computed by forward-mode tangent propagation.  Embedding
        rows are updated lazily, the attention head and the intercept densely, every step.
    """,
    core=_afm_core,
    params=(
        Param("attention_factor", 16, [Interval(Integral, 1, None, closed="left")], "int",
              "t, the hidden size of the attention network.  16, with ``learning_rate_init="
              "3e-3``: the AFM paper finds AFM stable across t (its Fig. 4), and on the suite "
              "of ``benchmarks/defaults.py`` this pair beats t=64 at 1e-3 on every set but "
              "flights (Frappe 0.9384 against 0.9337) in 0.24 to 0.39 of the fit time (user "
              "guide, \"Defaults\").", structural=True),
        Param("dropout", 0.0, [Interval(Real, 0, 1, closed="left")], "float",
              "Dropout rate on the attention-pooled vector (inverted dropout, training only; the "
              "masks are a pure function of the model's seed, epoch, step and row, so results "
              "do not depend on ``n_jobs``)."),
        Param("attention_alpha", 0.0, [Interval(Real, 0, None, closed="left")], "float",
              "L2 penalty on W (AFM Eq. 8): ``attention_alpha / 2 ||W||^2`` is added to every "
              "minibatch objective."),
    ),
    methods=_AFMMethods,
    related=("FM", "NFM"),
    references="""
        J. Xiao et al. Attentional Factorization Machines: Learning the Weight of Feature
        Interactions via Attention Networks. IJCAI 2017.
    """,
    example={"n_factors": 4, "attention_factor": 8, "max_iter": 10},
    fast={"n_factors": 3, "attention_factor": 4, "max_iter": 3, "batch_size": 32},
    defaults={"learning_rate_init": 3e-3},
)

AFMClassifier = make_estimator(AFM, "classifier")
AFMRegressor = make_estimator(AFM, "regressor")
