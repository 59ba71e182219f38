"""Neural factorization machine (He & Chua 2017): NFMCore and the NFM estimators."""
from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions

from ._base import BaseFactorizationMachine, FMClassifierMixin, FMRegressorMixin
from ._cores import SOLVERS, FMCore
from ._kernels import nfm as knfm
from ._trainer import readonly_float64

__all__ = ["NFMClassifier", "NFMRegressor"]

ACTIVATIONS = {"identity": knfm.IDENTITY, "relu": knfm.RELU, "tanh": knfm.TANH,
               "logistic": knfm.LOGISTIC}
BN_MOMENTUM = 0.1


def nfm_layout(d, hidden, batch_norm):
    """(layout (L + 1, 6) int64, length of head): see :mod:`skfm._kernels.nfm`."""
    sizes = [d] + [int(n) for n in hidden]
    L = len(sizes) - 1
    lay = np.full((L + 1, 6), -1, np.int64)
    lay[0, knfm.SIZE] = d
    lay[0, knfm.ZOFF] = 0
    z = d
    off = 0
    for l in range(1, L + 1):
        n, npv = sizes[l], sizes[l - 1]
        lay[l, knfm.SIZE] = n
        lay[l, knfm.ZOFF] = z
        z += n
        lay[l, knfm.OFFW] = off
        off += n * npv
        lay[l, knfm.OFFB] = off
        off += n
        if batch_norm:
            lay[l, knfm.OFFG] = off
            off += n
            lay[l, knfm.OFFBE] = off
            off += n
    return lay, off + sizes[-1]


class NFMCore:
    """NFM: ``w0`` (1,), ``T`` = [w | V] (n_features, 1 + d), the MLP ``head`` (flat float64:
    per hidden layer W, b (, gamma, beta), then h), its ``layout``, BN running ``bn_mean`` /
    ``bn_var`` and the dropout ``seed``."""

    name = "nfm"

    def __init__(self, hidden_layer_sizes=(64,), activation="relu", dropout_bi=0.0,
                 dropout_hidden=0.0, batch_norm=False):
        self.hidden = tuple(int(n) for n in hidden_layer_sizes)
        self.activation = activation
        self.act = ACTIVATIONS[activation]
        self.dropout_bi = float(dropout_bi)
        self.dropout_hidden = float(dropout_hidden)
        self.batch_norm = bool(batch_norm)

    def init_params(self, n_features, n_factors, dtype, rng, init_std):
        T = np.zeros((n_features, 1 + n_factors), dtype=dtype)
        if n_factors and init_std > 0:
            T[:, 1:] = rng.normal(0.0, init_std, size=(n_features, n_factors))
        lay, n_head = nfm_layout(n_factors, self.hidden, self.batch_norm)
        head = np.zeros(n_head)
        sizes = [n_factors] + list(self.hidden)
        for l in range(1, len(sizes)):
            n, npv = sizes[l], sizes[l - 1]
            std = np.sqrt(2.0 / (npv + n))
            head[lay[l, knfm.OFFW]:lay[l, knfm.OFFB] + n] = rng.normal(0.0, std, n * npv + n)
            if self.batch_norm:
                head[lay[l, knfm.OFFG]:lay[l, knfm.OFFG] + n] = 1.0
        nL = sizes[-1]
        if self.hidden:
            head[n_head - nL:] = rng.normal(0.0, np.sqrt(2.0 / (nL + 1)), nL)
        else:
            head[n_head - nL:] = 1.0  # NFM-0 starts as FM
        width = int(lay[-1, knfm.ZOFF] + lay[-1, knfm.SIZE])
        return {"w0": np.zeros(1), "T": T, "head": head, "layout": lay,
                "bn_mean": np.zeros(width), "bn_var": np.ones(width),
                "seed": np.array([rng.integers(0, 2**62)], np.int64)}

    @staticmethod
    def init_state(params, solver):
        state = FMCore.init_state(params, solver)  # w0 and the lazily updated table, as FM
        state["head"] = np.zeros((2, params["head"].shape[0]))
        return state

    @staticmethod
    def _static(params):
        lay = params["layout"]
        offh = params["head"].shape[0] - int(lay[-1, knfm.SIZE])
        bn = bool(lay.shape[0] > 1 and lay[1, knfm.OFFG] >= 0)
        return lay, offh, bn

    def _predict(self, params, X, y, loss_id, saliency):
        lay, offh, bn = self._static(params)
        out = np.empty(X.n_rows)
        if X.n_rows == 0:
            return out
        y = readonly_float64(np.zeros(X.n_rows) if y is None else y)
        knfm.predict_rows(X.indptr, X.indices, X.data, y, params["w0"], params["T"],
                          params["head"], lay, offh, bn, params["bn_mean"], params["bn_var"],
                          self.act, loss_id, saliency, out)
        return out

    def decision(self, params, X):
        return self._predict(params, X, None, 0, False)

    def saliency(self, params, X, y, loss_id):
        return self._predict(params, X, y, loss_id, True)

    def select_partners(self, params, X, y, parents, p, seed, epoch, a, b, loss_id):
        """Closed-form SMFM candidate selection (see knfm.select_partners): the same choice as
        scoring the materialised candidates with ``saliency``, without building them."""
        lay, offh, bn = self._static(params)
        R = knfm.row_stats(X.indptr, X.indices, X.data, params["T"])
        return knfm.select_partners(
            X.indptr, X.indices, X.data, readonly_float64(y),
            np.ascontiguousarray(parents, dtype=np.int64), int(p), seed, epoch, float(a),
            float(b), params["w0"], params["T"], params["head"], lay, offh, bn,
            params["bn_mean"], params["bn_var"], self.act, loss_id, R)

    def batch_gradient(self, params, X, y, sw, loss_id, alpha, train=False):
        """(objective, d/dw0, unique features, their T-gradient rows, d/dhead) of all rows of X
        as one batch, without dropout (for tests)."""
        lay, offh, bn = self._static(params)
        slot = np.full(X.n_features, -1, np.int32)
        # read-only rows, as training passes its gathered rows: the same compiled kernels
        return knfm.batch_gradient(X.indptr, X.indices, X.data,
                                   readonly_float64(y), readonly_float64(sw), params["w0"],
                                   params["T"], params["head"], lay, offh, bn,
                                   params["bn_mean"], params["bn_var"], train, self.act, loss_id,
                                   alpha, slot)

    def train_epoch(self, params, state, block, hp, slots):
        lay, offh, bn = self._static(params)
        loss, steps, status = knfm.train_epoch(
            *block, hp["batch_size"], params["w0"], params["T"], params["head"], lay, offh, bn,
            params["bn_mean"], params["bn_var"], BN_MOMENTUM, int(params["seed"][0]),
            int(hp.get("epoch", 0)), self.act, self.dropout_bi, self.dropout_hidden, state["w0"],
            state["T"], state["head"], SOLVERS[hp["solver"]], hp["lr"], hp["beta_1"],
            hp["beta_2"], hp["epsilon"], state["t"], hp["loss_id"], hp["alpha"], slots)
        state["t"] += steps
        return loss, steps, status


_NFM_DOC_PARAMS = """
    hidden_layer_sizes : tuple of int, default=(64,)
        Sizes of the hidden layers above the Bi-Interaction layer; ``()`` is NFM-0
        (``f = w0 + sum_i w_i x_i + h . BI(x)``, which is FM when h = 1; h starts at 1).
    activation : {"relu", "tanh", "logistic", "identity"}, default="relu"
        Activation of the hidden layers.
    dropout_bi : float in [0, 1), default=0.0
        Dropout ratio on the Bi-Interaction vector (training only, inverted scaling).
    dropout_hidden : float in [0, 1), default=0.0
        Dropout ratio on the output of every hidden layer.
    batch_norm : bool, default=False
        Batch normalisation of every hidden layer's pre-activation, with learnable scale and
        shift; batch statistics in training, running averages (momentum 0.1, unbiased
        variance, as torch) at prediction and for saliency.  Unlike the paper it is not applied
        to the Bi-Interaction vector; with ``hidden_layer_sizes=()`` it has no effect.

    The MLP weights and biases start as N(0, 2 / (n_in + n_out)), h as N(0, 2 / (n_L + 1));
    they are updated densely every step by the same solver, and ``alpha`` penalises only the
    embedding rows ``(w_j, v_j)`` of the features in a minibatch (lazily, as in FM).
"""

_NFM_CONSTRAINTS = {
    **BaseFactorizationMachine._parameter_constraints,
    "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
    "activation": [StrOptions(set(ACTIVATIONS))],
    "dropout_bi": [Interval(Real, 0, 1, closed="left")],
    "dropout_hidden": [Interval(Real, 0, 1, closed="left")],
    "batch_norm": ["boolean"],
}


class _NFMMixin:
    _structural_params = ("n_factors", "hidden_layer_sizes", "activation", "batch_norm")

    def _hidden(self):
        hidden = self.hidden_layer_sizes
        return (hidden,) if isinstance(hidden, Integral) else tuple(hidden)

    def _structure(self):
        return dict(super()._structure(), hidden_layer_sizes=self._hidden())

    def _make_core(self):
        # prediction reads the layout stored with the parameters (params["layout"]); training
        # with another layout is refused by the structure check of _fit
        hidden = self._hidden()
        if any(not isinstance(n, Integral) or isinstance(n, (bool, np.bool_)) or n < 1
               for n in hidden):
            raise ValueError(f"hidden_layer_sizes must be positive integers, got "
                             f"{self.hidden_layer_sizes!r}.")
        return NFMCore(hidden, self._fitted_or_current("activation"), self.dropout_bi,
                       self.dropout_hidden, self._fitted_or_current("batch_norm"))


class NFMClassifier(_NFMMixin, FMClassifierMixin, BaseFactorizationMachine):
    __doc__ = ("""Neural factorization machine classifier (He & Chua 2017).

    For a row x with embeddings v_i: BI(x) = 0.5 [(sum_i v_i x_i)^2 - sum_i (v_i x_i)^2]
    (element-wise), z_0 = dropout(BI), z_l = dropout(act(BN(W_l z_{l-1} + b_l))) and

        f(x) = w0 + sum_i w_i x_i + h . z_L.

    Logistic loss; multiclass is one-vs-rest.  Every other parameter and attribute is as in
    :class:`skfm.FMClassifier` (``factors_`` are the embeddings V).

    Parameters
    ----------
    n_factors, solver, learning_rate_init, batch_size, max_iter, tol, alpha, init_std, shuffle,
    random_state, early_stopping, validation_fraction, n_iter_no_change, warm_start, verbose,
    n_jobs, beta_1, beta_2, epsilon, augmentation, mix_alpha, mix_beta, mix_ratio, n_candidates
        See :class:`skfm.FMClassifier`.""" + _NFM_DOC_PARAMS + """
    References
    ----------
    X. He and T.-S. Chua. Neural Factorization Machines for Sparse Predictive Analytics.
    SIGIR 2017.
    """)

    _parameter_constraints = _NFM_CONSTRAINTS

    def __init__(self, n_factors=8, *, hidden_layer_sizes=(64,), activation="relu",
                 dropout_bi=0.0, dropout_hidden=0.0, batch_norm=False, solver="adam",
                 learning_rate_init=0.01, batch_size="auto", max_iter=100, tol=1e-4, alpha=1e-5,
                 init_std=0.01, shuffle=True, random_state=None, early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=10, warm_start=False, verbose=0,
                 n_jobs=None, beta_1=0.9, beta_2=0.999, epsilon=1e-8, augmentation=None,
                 mix_alpha=0.5, mix_beta=0.5, mix_ratio=1.0, n_candidates=10):
        BaseFactorizationMachine.__init__(
            self, n_factors, solver=solver, learning_rate_init=learning_rate_init,
            batch_size=batch_size, max_iter=max_iter, tol=tol, alpha=alpha, init_std=init_std,
            shuffle=shuffle, random_state=random_state, early_stopping=early_stopping,
            validation_fraction=validation_fraction, n_iter_no_change=n_iter_no_change,
            warm_start=warm_start, verbose=verbose, n_jobs=n_jobs, beta_1=beta_1, beta_2=beta_2,
            epsilon=epsilon, augmentation=augmentation, mix_alpha=mix_alpha, mix_beta=mix_beta,
            mix_ratio=mix_ratio, n_candidates=n_candidates)
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.dropout_bi = dropout_bi
        self.dropout_hidden = dropout_hidden
        self.batch_norm = batch_norm


class NFMRegressor(_NFMMixin, FMRegressorMixin, BaseFactorizationMachine):
    __doc__ = ("""Neural factorization machine regressor (He & Chua 2017).

    For a row x with embeddings v_i: BI(x) = 0.5 [(sum_i v_i x_i)^2 - sum_i (v_i x_i)^2]
    (element-wise), z_0 = dropout(BI), z_l = dropout(act(BN(W_l z_{l-1} + b_l))) and

        f(x) = w0 + sum_i w_i x_i + h . z_L.

    Squared loss.  Every other parameter and attribute is as in :class:`skfm.FMRegressor`.

    Parameters
    ----------
    n_factors, solver, learning_rate_init, batch_size, max_iter, tol, alpha, init_std, shuffle,
    random_state, early_stopping, validation_fraction, n_iter_no_change, warm_start, verbose,
    n_jobs, beta_1, beta_2, epsilon, augmentation, mix_alpha, mix_beta, mix_ratio, n_candidates
        See :class:`skfm.FMRegressor`.""" + _NFM_DOC_PARAMS + """
    References
    ----------
    X. He and T.-S. Chua. Neural Factorization Machines for Sparse Predictive Analytics.
    SIGIR 2017.
    """)

    _parameter_constraints = _NFM_CONSTRAINTS

    __init__ = NFMClassifier.__init__
