"""DeepFM (Guo et al. 2017): DeepFMCore, the FM and an MLP tower over the field embeddings."""
import numpy as np

from ._cores import SOLVERS, FMCore
from ._kernels import deepfm as kdf
from ._kernels import fm as kfm
from ._kernels import nfm as knfm
from ._kernels import skeleton
from ._nfm import ACTIVATIONS, BN_MOMENTUM, nfm_layout
from ._trainer import readonly_float64


class DeepFMCore:
    """DeepFM: ``w0`` (1,), ``T`` = [w | V] (n_features, 1 + d), the tower ``H`` (flat float64:
    per hidden layer W, b (, gamma, beta), then the output weights o; see
    skfm._kernels.deepfm), its ``layout``, BN running ``bn_mean`` / ``bn_var`` and the dropout
    ``seed``.  ``fields`` (n_features,): each column's field, 0 .. n_fields - 1."""

    name = "deepfm"

    def __init__(self, fields, n_fields, hidden_layer_sizes=(64, 64), activation="relu",
                 dropout=0.0, batch_norm=False):
        self.fields = np.ascontiguousarray(fields, dtype=np.int32)
        self.n_fields = int(n_fields)
        self.hidden = tuple(int(n) for n in hidden_layer_sizes)
        if not self.hidden:
            raise ValueError("DeepFM needs at least one hidden layer (hidden_layer_sizes=()).")
        self.activation = activation
        self.act = ACTIVATIONS[activation]
        self.dropout = float(dropout)
        self.batch_norm = bool(batch_norm)

    def init_params(self, n_features, n_factors, dtype, rng, init_std):
        """As torch_ref's DeepFM: w0 = w = 0, V ~ N(0, init_std), W_l ~ N(0, 2 / (n_in +
        n_out)), b_l = 0, o ~ N(0, 2 / (n_L + 1)); batch norm gamma = 1, beta = 0."""
        if self.fields.shape != (n_features,):
            raise ValueError(f"fields has {self.fields.shape[0]} entries for {n_features} "
                             f"features.")
        params = FMCore.init_params(n_features, n_factors, dtype, rng, init_std)
        sizes = [self.n_fields * n_factors, *self.hidden]
        lay, n_head = nfm_layout(sizes[0], self.hidden, self.batch_norm)
        lay[1:, knfm.ZOFF] -= sizes[0]  # e is never built: the hidden layers' columns from 0
        H = np.zeros(n_head)
        for l in range(1, len(sizes)):
            n, npv = sizes[l], sizes[l - 1]
            w = lay[l, knfm.OFFW]
            H[w:w + n * npv] = rng.normal(0.0, np.sqrt(2.0 / (npv + n)), n * npv)
            if self.batch_norm:
                H[lay[l, knfm.OFFG]:lay[l, knfm.OFFG] + n] = 1.0
        H[n_head - sizes[-1]:] = rng.normal(0.0, np.sqrt(2.0 / (sizes[-1] + 1)), sizes[-1])
        width = int(lay[-1, knfm.ZOFF] + lay[-1, knfm.SIZE])
        params.update(H=H, layout=lay, bn_mean=np.zeros(width), bn_var=np.ones(width),
                      seed=np.array([rng.integers(0, 2**62)], np.int64))
        return params

    @staticmethod
    def init_state(params, solver):  # w0 and the lazily updated table as FM, H densely
        return dict(FMCore.init_state(params, solver), H=np.zeros((2, params["H"].shape[0])))

    @staticmethod
    def _static(params):
        lay = params["layout"]
        offh = int(params["H"].shape[0] - lay[-1, knfm.SIZE])
        bn = bool(lay.shape[0] > 1 and lay[1, knfm.OFFG] >= 0)
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

    def batch_gradient(self, params, X, y, sw, loss_id, alpha, train=True, epoch=0):
        """(objective, d/dw0, unique features, their T-gradient rows, d/dH) of all rows of X as
        one batch at step 0 of ``epoch`` (for tests); ``train``: dropout and BN batch
        statistics."""
        slot = np.full(X.n_features, -1, np.int32)
        # read-only rows, as training passes its gathered rows: the same compiled kernels
        return skeleton.batch_gradient(X.indptr, X.indices, X.data, readonly_float64(y),
                                       readonly_float64(sw), params["w0"], params["T"],
                                       params["H"], loss_id, alpha, slot,
                                       self.spec(params, epoch, train))

    def train_epoch(self, params, state, block, hp, slots):
        loss, steps, status = skeleton.train_epoch(
            *block, hp["batch_size"], params["w0"], params["T"], params["H"], state["w0"],
            state["T"], state["H"], SOLVERS[hp["solver"]], hp["lr"], hp["beta_1"], hp["beta_2"],
            hp["epsilon"], state["t"], hp["loss_id"], hp["alpha"], slots,
            self.spec(params, hp.get("epoch", 0)))
        state["t"] += steps
        return loss, steps, status
