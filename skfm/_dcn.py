"""DCN (Deep & Cross Network, Wang et al. 2017): DCNCore and the DCN estimators, a cross network
and an MLP tower over the field embeddings."""
from dataclasses import replace
from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import Interval

from ._kernels import dcn as kdcn
from ._kernels import mlp as kmlp
from ._deepfm import FieldTowerCore
from ._nfm import BN_MOMENTUM, NFM, hidden_layers, nfm_layout
from ._platform import Model, Param, make_estimator
from ._trainer import readonly_float64

__all__ = ["DCNClassifier", "DCNRegressor"]


class DCNCore(FieldTowerCore):
    """DCN: ``w0`` (1,), ``T`` = [w | V] (n_features, 1 + d), ``H`` (flat float64: the tower,
    per hidden layer W, b (, gamma, beta), then its output weights o_deep; from ``offc`` the
    cross layers' c_l, d_l, then o_cross; see skfm._kernels.dcn), the tower's ``layout``, BN
    running ``bn_mean`` / ``bn_var`` and the dropout ``seed``.  ``fields`` (n_features,): each
    column's field, 0 .. n_fields - 1."""

    name = "dcn"
    title = "DCN"

    def __init__(self, fields, n_fields, n_cross_layers=2, hidden_layer_sizes=(64, 64),
                 activation="relu", dropout=0.0, batch_norm=False):
        super().__init__(fields, n_fields, hidden_layer_sizes, activation, dropout, batch_norm)
        self.n_cross = int(n_cross_layers)
        if self.n_cross < 0:
            raise ValueError(f"n_cross_layers must be >= 0, got {n_cross_layers!r}.")

    def init_params(self, n_features, n_factors, dtype, rng, init_std, rows=None):
        """As torch_ref's DCN: w0 = w = 0, V ~ N(0, init_std), W_l ~ N(0, 2 / (n_in + n_out)),
        b_l = 0, c_l ~ N(0, 2 / (n_0 + 1)), d_l = 0, [o_cross; o_deep] ~ N(0, 2 / (n_0 + n_L +
        1)); batch norm gamma = 1, beta = 0."""
        params = self._init_table(n_features, n_factors, dtype, rng, init_std, rows)
        n0 = self.n_fields * n_factors
        sizes = [n0, *self.hidden]
        lay, n_tower = nfm_layout(n0, self.hidden, self.batch_norm)
        lay[1:, kmlp.ZOFF] -= n0  # x0 is never built: the hidden layers' columns from 0
        offc = n_tower
        H = np.zeros(n_tower + (2 * self.n_cross + 1) * n0)
        self._init_tower(H, lay, sizes, rng)
        for l in range(self.n_cross):
            H[offc + 2 * l * n0:offc + (2 * l + 1) * n0] = rng.normal(
                0.0, np.sqrt(2.0 / (n0 + 1)), n0)
        o_std = np.sqrt(2.0 / (n0 + sizes[-1] + 1))
        H[offc + 2 * self.n_cross * n0:] = rng.normal(0.0, o_std, n0)
        H[n_tower - sizes[-1]:n_tower] = rng.normal(0.0, o_std, sizes[-1])
        width = int(lay[-1, kmlp.ZOFF] + lay[-1, kmlp.SIZE])
        params.update(H=H, layout=lay, n_cross=np.array([self.n_cross], np.int64),
                      bn_mean=np.zeros(width), bn_var=np.ones(width),
                      seed=np.array([rng.integers(0, 2**62)], np.int64))
        return params

    @staticmethod
    def _static(params):
        """(layout, offh, offc, n_cross, bn) of fitted parameters."""
        lay = params["layout"]
        nc = int(params["n_cross"][0])
        n0 = int(lay[0, kmlp.SIZE])
        offc = int(params["H"].shape[0] - (2 * nc + 1) * n0)
        offh = int(offc - lay[-1, kmlp.SIZE])
        bn = bool(lay.shape[0] > 1 and lay[1, kmlp.OFFG] >= 0)
        return lay, offh, offc, nc, bn

    def spec(self, params, epoch=0, train=True):
        """The kernels' DCNSpec; ``train``: dropout and BN batch statistics."""
        lay, offh, offc, nc, bn = self._static(params)
        return kdcn.DCNSpec(self.fields, lay, offh, offc, nc, bn, params["bn_mean"],
                            params["bn_var"], BN_MOMENTUM, int(params["seed"][0]), int(epoch),
                            self.act, self.dropout if train else 0.0, bool(train))

    def saliency(self, params, X, y, loss_id, decide=False):
        """Per-row saliency (SMFM Eq. 5) in inference mode; with ``decide`` f(x) instead."""
        lay, offh, offc, nc, bn = self._static(params)
        out = np.empty(X.n_rows)
        if X.n_rows:
            kdcn.predict_rows(X.indptr, X.indices, X.data, readonly_float64(y), params["w0"],
                              params["T"], self.fields, params["H"], lay, offh, offc, nc, bn,
                              params["bn_mean"], params["bn_var"], self.act, loss_id,
                              not decide, out)
        return out

    def decision(self, params, X):
        return self.saliency(params, X, np.zeros(X.n_rows), 0, decide=True)

    def select_partners(self, params, X, y, parents, p, seed, epoch, a, b, loss_id):
        """Closed-form SMFM candidate selection (see kdcn.select_partners): the choice of
        scoring the materialised candidates with ``saliency``, without building them."""
        lay, offh, offc, nc, bn = self._static(params)
        T, H = params["T"], params["H"]
        P, L, KC = kdcn.row_inputs(X.indptr, X.indices, X.data, T, self.fields, H, lay, offc, nc)
        return kdcn.select_partners(
            X.indptr, X.indices, X.data, readonly_float64(y),
            np.ascontiguousarray(parents, dtype=np.int64), int(p), seed, epoch, float(a),
            float(b), params["w0"], T, H, lay, offh, nc, bn, params["bn_mean"],
            params["bn_var"], self.act, loss_id, P, L, KC)


def _dcn_core(estimator, fields):
    hidden = hidden_layers(estimator, min_layers=1)
    return DCNCore(fields, int(fields.max()) + 1 if len(fields) else 0,
                   estimator._fitted_or_current("n_cross_layers"), hidden,
                   estimator._fitted_or_current("activation"), estimator.dropout,
                   estimator._fitted_or_current("batch_norm"))


_NFM_PARAMS = {p.name: p for p in NFM.params}

DCN = Model(
    name="DCN",
    module=__name__,
    defaults_doc=("DCN's ``dropout`` was chosen on the sets of ``benchmarks/defaults.py`` "
                  "(user guide, \"Defaults\"); its other defaults have not been tuned there: "
                  "the shared ones are those chosen for the other models, ``n_cross_layers`` "
                  "is torch_ref's, ``hidden_layer_sizes`` and ``activation`` DeepFM's, and "
                  "``batch_norm=True`` gave a test AUC of 0.788 against 0.700 on one synthetic "
                  "set."),
    title="Deep & Cross Network {task} (Wang et al. 2017): a cross network and an MLP over "
          "shared field embeddings",
    summary="""
        For a row x with nonzeros x_j, embeddings v_j and ``fields_`` f_j, the field embeddings
        x0 = [sum_{j in field f} x_j v_j]_f (``n_fields_ * n_factors`` wide) feed a cross network
        x_{l+1} = x0 (c_l . x_l) + d_l + x_l (``n_cross_layers`` layers, x_0 = x0) and a tower
        z_l = dropout(act(BN(W_l z_{l-1} + b_l))), z_0 = x0, and

            f(x) = w0 + sum_j w_j x_j + o . [x_K; z_L].

        The cross network is a scalar recursion on projections of x0 (x_l = a_l x0 + d_1 +
        ... + d_l), so the Numba kernels on the CSR rows build neither x0 nor x_l: the tower's
        first product and the projections are sums of per-feature products.  Gradients are
        closed-form; SMFM's selection mixes the parents' products and runs each candidate's
        recursion with tangents along the row without building the candidate (x0 is linear in
        x).
    """,
    core=_dcn_core,
    params=(
        Param("n_cross_layers", 2, [Interval(Integral, 0, None, closed="left")], "int",
              "Number of cross layers (0: the tower and a linear map of x0 only).  2 is "
              "torch_ref's ``--cross-layers`` default; not tuned.", structural=True),
        replace(_NFM_PARAMS["hidden_layer_sizes"], default=(64, 64), doc=(
            "Sizes of the tower's hidden layers (at least one), above the field-embedding "
            "concatenation x0.")),
        _NFM_PARAMS["activation"],
        Param("dropout", 0.5, [Interval(Real, 0, 1, closed="left")], "float in [0, 1)",
              "Dropout ratio on the output of every hidden layer of the tower (training only, "
              "inverted scaling; masks are a pure function of the model's seed, epoch, step "
              "and row).  The cross network has none.  0.5, as DeepFM's: with batch norm, "
              "test AUC above 0.0 (torch_ref's) on every set of benchmarks/defaults.py (e.g. "
              "flights 0.7617 against 0.7402), and a lower test log-loss than 0.3 on five of "
              "its seven sets (user guide, \"Defaults\")."),
        replace(_NFM_PARAMS["batch_norm"], default=True, doc=(
            "Batch normalisation of every hidden layer's pre-activation of the tower, with "
            "learnable scale and shift; batch statistics in training, running averages "
            "(momentum 0.1, unbiased variance, as torch) at prediction and for saliency.  "
            "True as DeepFM's: on make_fm_classification(6000, n_fields=6, field_size=8, "
            "random_state=3), 4000 rows to train, hidden_layer_sizes=(32,), n_factors=8, "
            "held-out AUC 0.788 with it against 0.700 without (one set, one seed; "
            "LogisticRegression() 0.701).")),
    ),
    after="n_factors",
    field_aware=True,
    related=("DeepFM", "NFM"),
    notes="""
        w0, w and V start as FM's (``init_std``), the tower's weights as N(0, 2 / (n_in +
        n_out)) and its biases at 0, the cross weights c_l as N(0, 2 / (n_0 + 1)) and the cross
        biases d_l at 0, the output weights o as N(0, 2 / (n_0 + n_L + 1)) (``n_0 = n_fields_ *
        n_factors``), as torch_ref's DCN.  The tower and the cross network are updated densely
        every step by the same solver; ``alpha`` penalises only the embedding rows ``(w_j,
        v_j)`` of the features in a minibatch (lazily, as in FM).  A row with no nonzero in a
        field has a zero block there.  ``augmentation="saliency"`` is DCN with the SMFM paper's
        saliency-guided Mixup (its Table 2's SMDCN).
    """,
    references="""
        R. Wang, B. Fu, G. Fu and M. Wang. Deep & Cross Network for Ad Click Predictions.
        ADKDD 2017.
    """,
    example={"n_factors": 4, "hidden_layer_sizes": (16,), "max_iter": 10},
    fast={"n_factors": 3, "hidden_layer_sizes": (8,), "max_iter": 3, "batch_size": 32},
)

DCNClassifier = make_estimator(DCN, "classifier")
DCNRegressor = make_estimator(DCN, "regressor")
