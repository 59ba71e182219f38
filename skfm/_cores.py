"""Model cores: the parameter layout of each model and the kernels that train and apply it.

A core holds no fitted state (only the model's structural options); its parameters live in plain
dicts of arrays owned by the estimator, so estimators pickle and clone like any sklearn
estimator.  The estimator builds its core with ``_make_core()``.  Every core provides

- ``init_params(n_features, n_factors, dtype, rng, init_std, rows=None)`` -> params; ``rows``:
  the features whose factor rows to draw (the others start at 0; see :func:`factor_table`)
- ``init_state(params, solver)`` -> optimizer state (moments of the touched rows and the dense part)
- ``decision(params, X)`` -> f(x) for the rows of a :class:`~skfm._trainer.CSRData`
- ``saliency(params, X, y, loss_id)`` -> per-row SMFM saliency (Eq. 5)
- ``train_epoch(params, state, block, hp, slots)`` -> (loss sum, steps, status), ``block`` the
  epoch's rows in training order as (indptr, indices, data, y, sw); ``hp`` holds the optimizer
  settings, ``loss_id``, ``alpha``, ``batch_size`` and the ``epoch`` number; ``slots`` are the
  feature maps of the batch transposition (``skfm._trainer.feature_slots``)

and may provide ``select_partners`` (a closed-form SMFM candidate selector).  Every model trains
on the one minibatch skeleton (skfm._kernels.skeleton) with its own spec and hooks; NFM, AFM,
DeepFM and DCN (skfm._nfm, skfm._afm, skfm._deepfm, skfm._dcn) plug in here with their own
parameter dicts and kernels, through :class:`SkeletonCore`.  Kernels get the
rows (``CSRData``, the training ``block``) and targets as read-only views and the parameters as
they are (see ``skfm._trainer.readonly``).
"""
import numpy as np

from ._kernels import fm as kfm
from ._kernels import skeleton
from ._kernels.optim import ADAGRAD, ADAM, SGD
from ._kernels.rng import normal_rows, normal_rows_at
from ._trainer import readonly_float64

SOLVERS = {"sgd": SGD, "adagrad": ADAGRAD, "adam": ADAM}


def factor_table(n_features, n_factors, dtype, rng, init_std, rows=None):
    """The table ``T = [w | V]`` (n_features, 1 + n_factors) of a model with one factor vector
    per feature: ``w = 0`` and ``V ~ N(0, init_std**2)``, drawn in parallel from one seed of
    ``rng`` by the counter-based generator (``skfm._kernels.rng.normal_rows``), so the table is
    the same on any number of threads (run it under ``numba_threads(n_jobs)``).  ``rows`` (sorted
    int64 feature indices, or None for all): draw only these rows' ``V``, the others stay 0
    until :func:`draw_missing_rows` draws them; a drawn row has the values it has in the full
    draw.  Returns ``(T, seed)``, ``seed`` an int64 array of one (the params' ``"T_seed"``)."""
    T = np.zeros((n_features, 1 + n_factors), dtype=dtype)
    seed = -1  # nothing drawn (and no number taken from rng)
    if n_factors and init_std > 0:
        seed = int(rng.integers(0, 2**63 - 1))
        if rows is None:
            normal_rows(T, 1, seed, 0, float(init_std))
        else:
            normal_rows_at(T, rows, 1, seed, 0, float(init_std))
    return T, np.array([seed], np.int64)


def draw_missing_rows(params, rows, init_std):
    """Draw, with the values of the full draw, the factor rows among ``rows`` (features of the
    rows a continued fit trains on) that the first fit left at 0: without it, a feature that
    appears only beside other such features would never get a gradient (V = 0 is a saddle of
    every pair term).  A row counts as undrawn when its factors are all exactly 0.  Models
    pickled before ``T_seed`` existed drew every row, and are left as they are."""
    T, seed = params["T"], params.get("T_seed")
    if seed is None or seed[0] < 0 or T.shape[1] <= 1 or init_std <= 0 or len(rows) == 0:
        return
    missing = rows[~T[rows, 1:].any(axis=1)]
    if len(missing):
        normal_rows_at(T, missing, 1, int(seed[0]), 0, float(init_std))


class FMCore:
    """Degree-2 factorization machine: ``w0`` (1,), table ``T`` = [w | V] (n_features, 1 + d)."""

    name = "fm"

    @staticmethod
    def init_params(n_features, n_factors, dtype, rng, init_std, rows=None):
        T, seed = factor_table(n_features, n_factors, dtype, rng, init_std, rows)
        return {"w0": np.zeros(1), "T": T, "T_seed": seed}

    @staticmethod
    def init_state(params, solver):
        T = params["T"]
        rows = 0 if solver == "sgd" else T.shape[0]
        return {"w0": np.zeros((2, 1)), "T": np.zeros((2, rows, T.shape[1]), T.dtype), "t": 0}

    @staticmethod
    def decision(params, X):
        out = np.empty(X.n_rows)
        kfm.fm_decision(X.indptr, X.indices, X.data, params["w0"], params["T"], out)
        return out

    @staticmethod
    def saliency(params, X, y, loss_id):
        out = np.empty(X.n_rows)
        kfm.fm_saliency(X.indptr, X.indices, X.data, readonly_float64(y), params["w0"],
                        params["T"], loss_id, out)
        return out

    @staticmethod
    def train_epoch(params, state, block, hp, slots):
        loss, steps, status = skeleton.train_epoch(
            *block, hp["batch_size"], params["w0"], params["T"], kfm.NO_H, state["w0"],
            state["T"], kfm.NO_STATE_H, SOLVERS[hp["solver"]], hp["lr"], hp["beta_1"],
            hp["beta_2"], hp["epsilon"], state["t"], hp["loss_id"], hp["alpha"], slots, kfm.SPEC)
        state["t"] += steps
        return loss, steps, status

    @staticmethod
    def select_partners(params, X, y, parents, p, seed, epoch, a, b, loss_id, criterion=0):
        """SMFM's choice (criterion 0: the largest saliency) or Maxup's (1: the largest loss)
        of each first parent's p candidates, in closed form (kfm.fm_select_partners)."""
        R = kfm.fm_row_stats(X.indptr, X.indices, X.data, params["T"])
        nrm = kfm.factor_sq_norms(params["T"])
        return kfm.fm_select_partners(
            X.indptr, X.indices, X.data, readonly_float64(y), parents, p, seed, epoch, a, b,
            params["w0"], params["T"], loss_id, R, nrm, criterion)

    @staticmethod
    def select_max_loss(params, X, y, parents, p, seed, epoch, a, b, loss_id):
        return FMCore.select_partners(params, X, y, parents, p, seed, epoch, a, b, loss_id, 1)


class SkeletonCore:
    """Training methods of a core whose kernels run on the minibatch skeleton
    (skfm._kernels.skeleton): ``w0`` and the table ``T`` as FM's (T's rows updated lazily) and a
    flat float64 array of dense parameters, ``params[self.dense]`` ("H"; NFM's is "head"),
    updated every step.  A subclass provides ``spec(params, epoch=0, train=True)``, the spec
    namedtuple its skeleton hooks are registered for (``train``: dropout and, where the model
    has it, batch norm's batch statistics)."""

    dense = "H"

    def init_state(self, params, solver):  # w0 and the lazily updated table as FM, H densely
        return dict(FMCore.init_state(params, solver),
                    **{self.dense: np.zeros((2, params[self.dense].shape[0]))})

    def batch_gradient(self, params, X, y, sw, loss_id, alpha, train=True, epoch=0):
        """(objective, d/dw0, unique features, their T-gradient rows (n_unique, 1 + d), d/dH) of
        all rows of X as one batch at step 0 of ``epoch`` (for tests), along the training code
        path, nothing updated; the objective is skeleton.batch_gradient's."""
        return self._batch_gradient(params, X, y, sw, loss_id, alpha,
                                    self.spec(params, epoch, train))

    def _batch_gradient(self, params, X, y, sw, loss_id, alpha, spec):
        slot = np.full(X.n_features, -1, np.int32)
        # read-only rows, as training passes its gathered rows: the same compiled kernels
        return skeleton.batch_gradient(X.indptr, X.indices, X.data, readonly_float64(y),
                                       readonly_float64(sw), params["w0"], params["T"],
                                       params[self.dense], loss_id, alpha, slot, spec)

    def train_epoch(self, params, state, block, hp, slots):
        H = self.dense
        loss, steps, status = skeleton.train_epoch(
            *block, hp["batch_size"], params["w0"], params["T"], params[H], state["w0"],
            state["T"], state[H], SOLVERS[hp["solver"]], hp["lr"], hp["beta_1"], hp["beta_2"],
            hp["epsilon"], state["t"], hp["loss_id"], hp["alpha"], slots,
            self.spec(params, hp.get("epoch", 0)))
        state["t"] += steps
        return loss, steps, status
