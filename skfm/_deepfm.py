"""DeepFM (Guo et al. 2017): DeepFMCore and the DeepFM estimators, the FM and an MLP tower over
the field embeddings."""
from dataclasses import replace
from numbers import Real

import numpy as np
from sklearn.utils._param_validation import Interval

from ._cores import FMCore, SkeletonCore
from ._kernels import deepfm as kdf
from ._kernels import fm as kfm
from ._kernels import mlp as kmlp
from ._nfm import ACTIVATIONS, BN_MOMENTUM, NFM, hidden_layers, nfm_layout
from ._platform import Model, Param, make_estimator
from ._trainer import readonly_float64

__all__ = ["DeepFMClassifier", "DeepFMRegressor"]


class FieldTowerCore(SkeletonCore):
    """What DeepFM and DCN share: the field-embedding concatenation e (n_fields x d) of the
    columns' ``fields`` (n_features,; 0 .. n_fields - 1) feeding an MLP tower (``hidden``,
    ``activation``, ``dropout``, ``batch_norm``)."""

    #: the model's name in error messages
    title = None

    def __init__(self, fields, n_fields, hidden_layer_sizes=(64, 64), activation="relu",
                 dropout=0.0, batch_norm=False):
        self.fields = np.ascontiguousarray(fields, dtype=np.int32)
        self.n_fields = int(n_fields)
        self.hidden = tuple(int(n) for n in hidden_layer_sizes)
        if not self.hidden:
            raise ValueError(f"{self.title} needs at least one hidden layer "
                             f"(hidden_layer_sizes=()).")
        self.activation = activation
        self.act = ACTIVATIONS[activation]
        self.dropout = float(dropout)
        self.batch_norm = bool(batch_norm)

    def _init_table(self, n_features, n_factors, dtype, rng, init_std, rows=None):
        """FM's w0 and T for these fields (checked against n_features)."""
        if self.fields.shape != (n_features,):
            raise ValueError(f"fields has {self.fields.shape[0]} entries for {n_features} "
                             f"features.")
        return FMCore.init_params(n_features, n_factors, dtype, rng, init_std, rows)

    def _init_tower(self, H, lay, sizes, rng):
        """The tower's weights in H (torch_ref's: W_l ~ N(0, 2 / (n_in + n_out)), b_l = 0;
        batch norm gamma = 1, beta = 0), layer by layer."""
        for l in range(1, len(sizes)):
            n, npv = sizes[l], sizes[l - 1]
            w = lay[l, kmlp.OFFW]
            H[w:w + n * npv] = rng.normal(0.0, np.sqrt(2.0 / (npv + n)), n * npv)
            if self.batch_norm:
                H[lay[l, kmlp.OFFG]:lay[l, kmlp.OFFG] + n] = 1.0


class DeepFMCore(FieldTowerCore):
    """DeepFM: ``w0`` (1,), ``T`` = [w | V] (n_features, 1 + d), the tower ``H`` (flat float64:
    per hidden layer W, b (, gamma, beta), then the output weights o; see
    skfm._kernels.deepfm), its ``layout``, BN running ``bn_mean`` / ``bn_var`` and the dropout
    ``seed``.  ``fields`` (n_features,): each column's field, 0 .. n_fields - 1."""

    name = "deepfm"
    title = "DeepFM"

    def init_params(self, n_features, n_factors, dtype, rng, init_std, rows=None):
        """As torch_ref's DeepFM: w0 = w = 0, V ~ N(0, init_std), W_l ~ N(0, 2 / (n_in +
        n_out)), b_l = 0, o ~ N(0, 2 / (n_L + 1)); batch norm gamma = 1, beta = 0."""
        params = self._init_table(n_features, n_factors, dtype, rng, init_std, rows)
        sizes = [self.n_fields * n_factors, *self.hidden]
        lay, n_head = nfm_layout(sizes[0], self.hidden, self.batch_norm)
        lay[1:, kmlp.ZOFF] -= sizes[0]  # e is never built: the hidden layers' columns from 0
        H = np.zeros(n_head)
        self._init_tower(H, lay, sizes, rng)
        H[n_head - sizes[-1]:] = rng.normal(0.0, np.sqrt(2.0 / (sizes[-1] + 1)), sizes[-1])
        width = int(lay[-1, kmlp.ZOFF] + lay[-1, kmlp.SIZE])
        params.update(H=H, layout=lay, bn_mean=np.zeros(width), bn_var=np.ones(width),
                      seed=np.array([rng.integers(0, 2**62)], np.int64))
        return params

    @staticmethod
    def _static(params):
        lay = params["layout"]
        offh = int(params["H"].shape[0] - lay[-1, kmlp.SIZE])
        bn = bool(lay.shape[0] > 1 and lay[1, kmlp.OFFG] >= 0)
        return lay, offh, bn

    def spec(self, params, epoch=0, train=True):
        """The kernels' DeepFMSpec; ``train``: dropout and BN batch statistics."""
        lay, offh, bn = self._static(params)
        return kdf.DeepFMSpec(self.fields, lay, offh, bn, params["bn_mean"], params["bn_var"],
                              BN_MOMENTUM, int(params["seed"][0]), int(epoch), self.act,
                              self.dropout if train else 0.0, bool(train))

    def saliency(self, params, X, y, loss_id, decide=False):
        """Per-row saliency (SMFM Eq. 5) in inference mode; with ``decide`` f(x) instead."""
        lay, offh, bn = self._static(params)
        out = np.empty(X.n_rows)
        if X.n_rows:
            kdf.predict_rows(X.indptr, X.indices, X.data, readonly_float64(y), params["w0"],
                             params["T"], self.fields, params["H"], lay, offh, bn,
                             params["bn_mean"], params["bn_var"], self.act, loss_id, not decide,
                             out)
        return out

    def decision(self, params, X):
        return self.saliency(params, X, np.zeros(X.n_rows), 0, decide=True)

    def select_partners(self, params, X, y, parents, p, seed, epoch, a, b, loss_id):
        """Closed-form SMFM candidate selection (see kdf.select_partners): the choice of
        scoring the materialised candidates with ``saliency``, without building them."""
        lay, offh, bn = self._static(params)
        T, H = params["T"], params["H"]
        R = kfm.fm_row_stats(X.indptr, X.indices, X.data, T)
        P = kdf.tower_inputs(X.indptr, X.indices, X.data, T, self.fields, H, lay)
        return kdf.select_partners(
            X.indptr, X.indices, X.data, readonly_float64(y),
            np.ascontiguousarray(parents, dtype=np.int64), int(p), seed, epoch, float(a),
            float(b), params["w0"], T, H, lay, offh, bn, params["bn_mean"], params["bn_var"],
            self.act, loss_id, R, P, kfm.factor_sq_norms(T))


def _deepfm_core(estimator, fields):
    hidden = hidden_layers(estimator, min_layers=1)
    return DeepFMCore(fields, int(fields.max()) + 1 if len(fields) else 0, hidden,
                      estimator._fitted_or_current("activation"), estimator.dropout,
                      estimator._fitted_or_current("batch_norm"))


_NFM_PARAMS = {p.name: p for p in NFM.params}

DEEPFM = Model(
    name="DeepFM",
    module=__name__,
    title="DeepFM {task} (Guo et al. 2017): an FM and an MLP over shared field embeddings",
    summary="""
        For a row x with nonzeros x_j, embeddings v_j and ``fields_`` f_j, the field embeddings
        e = [sum_{j in field f} x_j v_j]_f (``n_fields_ * n_factors`` wide) feed a tower
        z_l = dropout(act(BN(W_l z_{l-1} + b_l))), z_0 = e, and

            f(x) = w0 + sum_j w_j x_j + sum_{i<j} <v_i, v_j> x_i x_j + o . z_L,

        the FM part and the tower sharing the embeddings v.  Numba kernels on the CSR rows never
        build e: its first-layer product is a sum of per-feature products W_1[:, f_j] v_j.
        Gradients are closed-form; SMFM's selection mixes the parents' first-layer products in
        closed form (e is linear in x).
    """,
    core=_deepfm_core,
    params=(
        replace(_NFM_PARAMS["hidden_layer_sizes"], default=(64, 64), doc=(
            "Sizes of the tower's hidden layers (at least one), above the field-embedding "
            "concatenation.")),
        _NFM_PARAMS["activation"],
        Param("dropout", 0.5, [Interval(Real, 0, 1, closed="left")], "float in [0, 1)",
              "Dropout ratio on the output of every hidden layer (training only, inverted "
              "scaling; masks are a pure function of the model's seed, epoch, step and row).  "
              "0.5 with ``batch_norm=True``: of the default sets measured, the one above "
              "LogisticRegression() on Frappe and on the most sets of the suite (user guide, "
              "\"Defaults\")."),
        replace(_NFM_PARAMS["batch_norm"], default=True, doc=(
            "Batch normalisation of every hidden layer's pre-activation, with learnable scale "
            "and shift; batch statistics in training, running averages (momentum 0.1, "
            "unbiased variance, as torch) at prediction and for saliency.")),
    ),
    after="n_factors",
    field_aware=True,
    related=("FM", "NFM"),
    notes="""
        w0, w and V start as FM's (``init_std``), the tower's weights as N(0, 2 / (n_in +
        n_out)) and its biases at 0, o as N(0, 2 / (n_L + 1)).  The tower is updated densely
        every step by the same solver; ``alpha`` penalises only the embedding rows ``(w_j,
        v_j)`` of the features in a minibatch (lazily, as in FM).  A row with no nonzero in a
        field has a zero block there.  ``augmentation="saliency"`` is DeepFM with the SMFM
        paper's saliency-guided Mixup.
    """,
    references="""
        H. Guo, R. Tang, Y. Ye, Z. Li and X. He. DeepFM: A Factorization-Machine based Neural
        Network for CTR Prediction. IJCAI 2017.
    """,
    example={"n_factors": 4, "hidden_layer_sizes": (16,), "max_iter": 10},
    fast={"n_factors": 3, "hidden_layer_sizes": (8,), "max_iter": 3, "batch_size": 32},
)

DeepFMClassifier = make_estimator(DEEPFM, "classifier")
DeepFMRegressor = make_estimator(DEEPFM, "regressor")
