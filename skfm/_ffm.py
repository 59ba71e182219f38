"""FFM (field-aware factorization machines, Juan et al. 2016): FFMCore and the FFM estimators, a
latent vector per (feature, field)."""
import numpy as np
from sklearn.utils.validation import check_is_fitted

from ._cores import FMCore, SkeletonCore
from ._kernels import ffm as kffm
from ._platform import Model, make_estimator
from ._trainer import readonly, readonly_float64

__all__ = ["FFMClassifier", "FFMRegressor", "FFMCore"]

#: ffm_rows' targets in decision mode, which does not read them (read-only as saliency's: one
#: compiled kernel)
_NO_Y = readonly(np.empty(0))


class FFMCore(SkeletonCore):
    """FFM: ``w0`` (1,), table ``T`` = [w | V] (n_features, 1 + n_fields k), ``T[j, 1 + g k:1 +
    (g + 1) k]`` the latent vector v_{j,g} of feature j towards field g, updated lazily as FM's
    rows; no dense parameters (``H`` is empty).  ``fields`` (n_features,): each column's field,
    0 .. n_fields - 1.  Trained by the minibatch skeleton with kffm.FFMSpec; see
    :mod:`skfm._kernels.ffm` for the math."""

    name = "ffm"

    def __init__(self, fields, n_fields):
        self.fields = np.ascontiguousarray(fields, dtype=np.int32)
        self.n_fields = int(n_fields)

    def init_params(self, n_features, n_factors, dtype, rng, init_std, rows=None):
        """FM's, with n_fields k factor columns: w0 = w = 0, V ~ N(0, init_std)."""
        if self.fields.shape != (n_features,):
            raise ValueError(f"fields has {self.fields.shape[0]} entries for {n_features} "
                             f"features.")
        params = FMCore.init_params(n_features, self.n_fields * n_factors, dtype, rng,
                                     init_std, rows)
        params["H"] = np.zeros(0)
        return params

    def _k(self, params):
        return (params["T"].shape[1] - 1) // max(self.n_fields, 1)

    def spec(self, params, epoch=0, train=True):
        """The kernels' FFMSpec (FFM has neither dropout nor batch statistics)."""
        return kffm.FFMSpec(self.fields, np.int64(self._k(params)))

    def _rows(self, params, X, y, loss_id, saliency):
        out = np.empty(X.n_rows)
        kffm.ffm_rows(X.indptr, X.indices, X.data, y, params["w0"], params["T"], self.fields,
                      np.int64(self._k(params)), loss_id, np.bool_(saliency), out)
        return out

    def decision(self, params, X):
        return self._rows(params, X, _NO_Y, 0, False)

    def saliency(self, params, X, y, loss_id):
        """Per-row saliency (SMFM Eq. 5): L'(f) (lin + 2 pair)."""
        return self._rows(params, X, readonly_float64(y), loss_id, True)

    def select_partners(self, params, X, y, parents, p, seed, epoch, a, b, loss_id, criterion=0):
        """SMFM's choice (criterion 0: the largest saliency) or Maxup's (1: the largest loss)
        of each first parent's p candidates in closed form (kffm.select_partners): the choice
        of scoring the materialised candidates, without building them."""
        k = np.int64(self._k(params))
        R = kffm.row_stats(X.indptr, X.indices, X.data, params["T"], self.fields, k)
        return kffm.select_partners(
            X.indptr, X.indices, X.data, readonly_float64(y),
            np.ascontiguousarray(parents, dtype=np.int64), int(p), seed, epoch, float(a),
            float(b), params["w0"], params["T"], self.fields, k, loss_id, R, np.int64(criterion))

    def select_max_loss(self, params, X, y, parents, p, seed, epoch, a, b, loss_id):
        return self.select_partners(params, X, y, parents, p, seed, epoch, a, b, loss_id, 1)


class _FFMMethods:
    """FFM's own view of the factors: one latent vector per (feature, field)."""

    @property
    def factors_(self):
        """Latent vectors v_{j,g}, shape ``(n_features_in_, n_fields_, n_factors)`` (a leading
        class axis for multiclass)."""
        check_is_fitted(self)
        mats = [p["T"][:, 1:].reshape(p["T"].shape[0], self.n_fields_,
                                      (p["T"].shape[1] - 1) // self.n_fields_)
                for p in self._params]
        return mats[0] if len(mats) == 1 else np.stack(mats)


def _ffm_core(estimator, fields):
    return FFMCore(fields, int(fields.max()) + 1 if len(fields) else 0)


FFM = Model(
    name="FFM",
    module=__name__,
    defaults_doc=("FFM's defaults have not been chosen on the sets of "
                  "``benchmarks/defaults.py`` yet: the shared ones are those chosen for the "
                  "other models, and ``n_factors=4`` is libFFM's k."),
    title="Field-aware factorization machine {task} (Juan et al. 2016): a latent vector per "
          "feature and field",
    summary="""
        For a row x with nonzeros x_j and ``fields_`` f_j, each feature j has a latent vector
        v_{j,g} towards every field g, and

            f(x) = w0 + sum_j w_j x_j + sum_{i<j} <v_{i,f_j}, v_{j,f_i}> x_i x_j,

        O(m^2 n_factors) for a row of m nonzeros.  The parameters of a feature, w_j and its
        ``n_fields_`` latent vectors, form one row of the feature table, updated lazily as
        FM's.  Numba kernels on the CSR rows; gradients are closed-form.  The pair term is
        homogeneous of degree 2 in x, so the saliency is L'(f) (sum_j w_j x_j + 2 pair), and
        quadratic, so SMFM's selection scores a candidate lam x + (1 - lam) r from the rows'
        pair terms and one cross term of the two rows, without building it.
    """,
    core=_ffm_core,
    defaults={"n_factors": 4},
    param_docs={"n_factors": (
        "k, the length of each latent vector v_{j,g} (``factors_[j, g]``); 0 gives a linear "
        "model.  4, libFFM's default k: FFM holds ``n_fields_`` vectors per feature where FM "
        "holds one, so a small k keeps the model (and the O(m^2 k) cost of a row) small; not "
        "tuned.")},
    attributes={"factors_": (
        "ndarray of shape (n_features, n_fields, n_factors)",
        "Latent vectors v_{j,g}: ``factors_[j, g]`` is feature j's vector towards field g "
        "(n_fields is ``n_fields_``).")},
    methods=_FFMMethods,
    field_aware=True,
    related=("FM", "DeepFM"),
    notes="""
        w0, w and V start as FM's (``init_std``).  ``alpha``
        penalises the rows ``(w_j, v_{j,.})`` of the features in a minibatch (lazily, as in
        FM).  A row with no nonzero in a field has no pair with it; two nonzeros of one field
        interact through their vectors towards that field.  ``augmentation="saliency"`` is
        FFM with the SMFM paper's saliency-guided Mixup.
    """,
    references="""
        Y. Juan, Y. Zhuang, W.-S. Chin and C.-J. Lin. Field-aware Factorization Machines for
        CTR Prediction. RecSys 2016.
    """,
    example={"n_factors": 4, "max_iter": 10},
    fast={"n_factors": 3, "max_iter": 3, "batch_size": 32},
)

FFMClassifier = make_estimator(FFM, "classifier")
FFMRegressor = make_estimator(FFM, "regressor")
