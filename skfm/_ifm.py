"""Interaction-aware factorization machines (IFM, Hong et al. 2019): model core and estimators."""
from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from ._afm import AFM, AFMCore, pair_weights
from ._cores import factor_table
from ._kernels import ifm as kifm
from ._platform import Model, Param, make_estimator

__all__ = ["IFMClassifier", "IFMRegressor", "IFMCore"]


class IFMCore(AFMCore):
    """IFM: ``w0`` (1,), table ``T`` = [w | V] (n_features, 1 + d) updated lazily, and the head
    ``H`` = [W (t x d, row-major) | b (t) | h (t) | U (n_fields x kf) | D (kf x d)] (float64,
    dense updates); ``seed`` (1,) int64 keys the dropout masks.  ``fields`` (n_features,): each
    column's field, 0 .. n_fields - 1.  AFM's core with IFM's options of the pair kernels (see
    :mod:`skfm._kernels.ifm`): inference, saliency, the attention weights and SMFM's pair cache
    are AFM's code."""

    name = "ifm"

    def __init__(self, fields, n_fields, attention_factor=64, n_field_factors=26, tau=10.0,
                 dropout=0.0, attention_alpha=0.0, field_alpha=0.0):
        super().__init__(attention_factor, dropout, attention_alpha)
        self.fields = np.ascontiguousarray(fields, dtype=np.int32)
        self.n_fields = int(n_fields)
        self.n_field_factors = int(n_field_factors)
        self.tau = float(tau)
        self.field_alpha = float(field_alpha)

    def init_params(self, n_features, n_factors, dtype, rng, init_std, rows=None):
        """As torch_ref's IFM: w0 = w = 0, V ~ N(0, init_std), W, b ~ N(0, 2 / (d + t)),
        h ~ N(0, 1), U, D ~ N(0, 1)."""
        if self.fields.shape != (n_features,):
            raise ValueError(f"fields has {self.fields.shape[0]} entries for {n_features} "
                             f"features.")
        d, t, nf, kf = n_factors, self.attention_factor, self.n_fields, self.n_field_factors
        T, T_seed = factor_table(n_features, d, dtype, rng, init_std, rows)
        g = np.sqrt(2.0 / (d + t))
        H = np.empty(kifm.head_size(d, t, nf, kf))
        H[:t * d] = rng.normal(0.0, g, size=t * d)          # W
        H[t * d:t * d + t] = rng.normal(0.0, g, size=t)     # b
        H[t * d + t:t * d + 2 * t] = rng.normal(0.0, 1.0, size=t)  # h
        H[t * d + 2 * t:] = rng.normal(0.0, 1.0, size=nf * kf + kf * d)  # U, D
        seed = np.array([rng.integers(0, 2**63 - 1)], np.int64)
        return {"w0": np.zeros(1), "T": T, "T_seed": T_seed, "H": H, "seed": seed}

    @staticmethod
    def _d(params):
        return params["T"].shape[1] - 1

    def spec(self, params, epoch=0, train=True):
        """The kernels' IFMSpec; ``train``: dropout on the pooled vector (else none)."""
        return kifm.IFMSpec(self.attention_factor, self._d(params),
                            self.dropout if train else 0.0, int(params["seed"][0]), int(epoch),
                            self.attention_alpha, self.tau, self.fields, self.n_fields,
                            self.n_field_factors, self.field_alpha)

    def _opts(self, params):
        return (self.tau, self.fields, self.n_fields, self.n_field_factors)

    @staticmethod
    def _rows_kernel(*args):
        kifm.ifm_rows(*args)

    @staticmethod
    def _cache_kernel(*args):
        return kifm.pair_cache(*args)

    @staticmethod
    def _cached_kernel(*args):
        kifm.saliency_cached(*args)

    def field_aspect(self, params):
        """(n_fields, n_fields, d): F_fg = D^T (U_f * U_g), both triangles."""
        nf = self.n_fields
        packed = kifm.field_aspect(params["H"], self.attention_factor, self._d(params), nf,
                                   self.n_field_factors)
        F = np.empty((nf, nf, packed.shape[1]))
        f, g = np.triu_indices(nf)  # row-major, afm.pair_field's packed order
        F[f, g] = packed
        F[g, f] = packed
        return F


class _IFMMethods:
    """The IFM estimators' own methods: the interaction scores and the field importances."""

    def interaction_scores(self, X):
        """Attention scores T_ij (IFM Eq. 5) of every pair of nonzero features of every row.

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
            T_ij of each pair, the softmax of the attention logits divided by ``tau``; the
            weights of a row with pairs sum to 1.  A multiclass (one-vs-rest) classifier has
            one row of weights per class.
        """
        return pair_weights(self, X)

    @property
    def field_importances_(self):
        """Norms ||F_fg|| of the field aspects F_fg = D^T (U_f * U_g), shape ``(n_fields,
        n_fields)``, symmetric (a leading class axis for multiclass)."""
        check_is_fitted(self)
        core = self._make_core()
        mats = [np.linalg.norm(core.field_aspect(p), axis=2) for p in self._params]
        return mats[0] if len(mats) == 1 else np.stack(mats)


def _ifm_core(estimator, fields):
    return IFMCore(fields, int(fields.max()) + 1 if len(fields) else 0,
                   estimator._fitted_or_current("attention_factor"),
                   estimator._fitted_or_current("n_field_factors"), estimator.tau,
                   estimator.dropout, estimator.attention_alpha, estimator.field_alpha)


_AFM_PARAMS = {p.name: p for p in AFM.params}

IFM = Model(
    name="IFM",
    module=__name__,
    defaults_doc=("IFM's defaults have not been chosen on the sets of "
                  "``benchmarks/defaults.py`` yet: ``attention_factor=64``, "
                  "``n_field_factors=26`` and ``tau=10`` are the IFM paper's (and torch_ref's) "
                  "Frappe settings, the shared ones those chosen for the other models."),
    title="Interaction-aware factorization machine {task} (Hong et al. 2019)",
    summary="""
        The model (Hong et al. 2019, Eq. 4-6 and 9) for a row x with nonzeros x_i and
        ``fields_`` f_i is

            f(x) = w0 + sum_i w_i x_i + sum_k (sum_{i<j} T_ij F_{f_i f_j} * e_ij)_k,
            e_ij = (v_i * v_j) x_i x_j,  F_fg = D^T (U_f * U_g),
            T_ij = softmax over the row's pairs of h^T ReLU(W e_ij + b) / tau,

        with W (t x d), b, h (t) the attention network (AFM's), U (n_fields x K_F) and
        D (K_F x d) the field factors.  T_ij weighs a pair by its features (the
        feature aspect), F_fg by its fields (the field aspect).  A row with fewer than two
        nonzeros has no pair term.  The cost of a row is O(m^2 t d) for m nonzeros, AFM's.
        Numba kernels on the CSR rows (AFM's, with IFM's temperature and field aspect);
        gradients are closed-form, saliency is computed by forward-mode tangent propagation.
        Embedding rows are updated lazily, the attention network, U, D and the intercept
        densely, every step.
    """,
    core=_ifm_core,
    params=(
        Param("attention_factor", 64, [Interval(Integral, 1, None, closed="left")], "int",
              "t (the paper's K_a), the hidden size of the attention network.  64, the IFM "
              "paper's Frappe setting.", structural=True),
        Param("n_field_factors", 26, [Interval(Integral, 1, None, closed="left")], "int",
              "K_F, the length of the field factors U_f; the field aspect F_fg = D^T (U_f * "
              "U_g) has rank at most K_F over the field pairs.  26, the IFM paper's.",
              structural=True),
        Param("tau", 10.0, [Interval(Real, 0, None, closed="neither")], "float",
              "Temperature of the attention softmax: T = softmax(a' / tau).  A larger tau "
              "spreads the weights over more pairs.  10, the IFM paper's Frappe setting."),
        Param("dropout", 0.0, [Interval(Real, 0, 1, closed="left")], "float",
              "Dropout rate on the pooled vector sum_{i<j} T_ij F_{f_i f_j} * e_ij before its "
              "sum over k (inverted dropout, training only; the masks are a pure function of "
              "the model's seed, epoch, step and row, so results do not depend on "
              "``n_jobs``)."),
        _AFM_PARAMS["attention_alpha"],
        Param("field_alpha", 0.0, [Interval(Real, 0, None, closed="left")], "float",
              "L2 penalty on the field factors (the paper's lambda_F): ``field_alpha / 2 "
              "(||U||^2 + ||D||^2)`` is added to every minibatch objective."),
    ),
    attributes={"field_importances_": (
        "ndarray of shape (n_fields, n_fields)",
        ("Norms ||F_fg|| of the field aspects F_fg = D^T (U_f * U_g) of every pair of fields "
         "(symmetric; the diagonal is a field's pairs within itself), a leading class axis "
         "for multiclass.  The larger, the more the pairs of features of fields f and g "
         "weigh in the pair term (the IFM paper's Table 3); n_fields is ``n_fields_``."))},
    methods=_IFMMethods,
    field_aware=True,
    related=("AFM", "FFM"),
    notes="""
        w0, w and V start as FM's (``init_std``), W and b at N(0, 2 / (d + t)),
        h, U and D at N(0, 1) (the authors' code).  T sums to 1 over a row's pairs, as the
        paper's Eq. 5 defines it (at uniform attention the pair term is the mean, not the
        sum, over the pairs); tau divides the attention logit, as Eq. 5 writes it.
        ``interaction_scores`` gives the T_ij of any rows, ``field_importances_`` the norms
        of the field aspects (the paper's Table 3 reads the field pairs' importance from
        them).  ``augmentation="saliency"`` is IFM with the SMFM paper's saliency-guided
        Mixup; its candidates are scored with AFM's pair cache.
    """,
    references="""
        F. Hong, D. Huang and G. Chen. Interaction-Aware Factorization Machines for
        Recommender Systems. AAAI 2019.
    """,
    example={"n_factors": 4, "attention_factor": 8, "n_field_factors": 4, "max_iter": 10},
    fast={"n_factors": 3, "attention_factor": 4, "n_field_factors": 3, "max_iter": 3,
          "batch_size": 32},
)

IFMClassifier = make_estimator(IFM, "classifier")
IFMRegressor = make_estimator(IFM, "regressor")
