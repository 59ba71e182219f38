"""The one minibatch skeleton of skfm's training kernels.

Every model has the same kinds of parameters: ``w0`` (1,), a feature table ``T`` (n_features,
width) whose rows are updated lazily (only the rows of the features in a minibatch), and a flat
float64 ``H`` of dense parameters (NFM's MLP, AFM's attention network; empty for FM) updated
every step.  A training step has two phases:

1. the model's forward and backward pass over the minibatch (rows in parallel, in fixed blocks),
   which gives the batch loss, dObj/dw0, dObj/dH and whatever per-row (or per-nonzero)
   quantities the feature gradients need;
2. the batch's unique features in parallel (the transposition of the batch by a counting sort,
   csr.batch_transposed): each feature's gradient row, summed over its occurrences in row
   order, then its lazy optimizer update.

This module writes the loop, the transposition, the updates and the finite checks once; a model
plugs in its parts as *hooks*, resolved at compile time from the type of the model's ``spec``: a
namedtuple of the model's own arrays and options (``fm.FMSpec``, ``nfm.NFMSpec``, ...).  A model
registers its hook implementations for its spec class with :func:`register`; each hook below
documents its arguments, and an implementation takes exactly those argument names.  Because the
dispatch is on a namedtuple type, the compiled skeleton is cached per model like any kernel.

Every sum has one owner and a fixed order, so results do not depend on the number of threads.
"""
import inspect
import math

import numpy as np
from numba import njit, prange
from numba.extending import overload

from . import FASTMATH
from .csr import LANES, batch_capacity, batch_transposed, lane_range, transposer
from .optim import ADAM, RECORD, adam_lr, row_coefs, update_dense, update_row

_HOOKS = {}


def register(spec_class, **hooks):
    """Register a model's hook implementations (plain functions, compiled where the skeleton
    calls them) for its spec namedtuple class; hooks it leaves out keep their default."""
    unknown = set(hooks) - set(_STUBS)
    if unknown:
        raise TypeError(f"unknown hooks {sorted(unknown)}; hooks are {sorted(_STUBS)}")
    _HOOKS[spec_class] = hooks


_STUBS = {}


def hook(default=None, inline="never"):
    """Declare a hook: ``stub`` gives its name and signature; a call compiles to the
    implementation registered for the type of the first argument (``spec``), or to
    ``default``."""
    def declare(stub):
        name = stub.__name__

        def typer(spec, *args):
            impl = _HOOKS.get(getattr(spec, "instance_class", None), {}).get(name, default)
            if impl is None:
                raise TypeError(f"no {name} hook is registered for {spec}")
            return impl

        typer.__signature__ = inspect.signature(stub)
        overload(stub, inline=inline)(typer)
        _STUBS[name] = stub
        return stub
    return declare


def _data_values(spec, indptr, data):
    return data


def _no_after_step(spec, ws, B):
    pass


def _no_penalty(spec, H):
    return 0.0


@hook()
def workspace(spec, indptr, batch_size, T, H):
    """The model's buffers for minibatches of at most ``batch_size`` rows of the epoch block
    ``indptr`` (any tuple or array; passed to the other hooks as ``ws``)."""


@hook(default=_data_values)
def values(spec, indptr, data):
    """The per-nonzero values the batch transposition carries to feature_grad as ``occ_x``: the
    block's ``data`` (default), or e.g. the nonzeros' positions."""


@hook()
def forward_backward(spec, ws, indptr, indices, data, y, sw, start, B, w0, T, H, loss_id, step,
                     GH):
    """Phase 1 on rows [start, start + B) of the epoch block, training mode, step number
    ``step`` (1-based, keys dropout): fill ``ws`` and every entry of GH = dObj/dH, and return
    (sum_b sw_b l(f_b, y_b), dObj/dw0) for Obj = (1/B) sum_b sw_b l(f_b, y_b) + penalties."""


@hook(inline="always")
def feature_grad(spec, ws, u, uniq, ptr, occ_b, occ_x, T, alpha, GT):
    """GT[u] = dObj/dT[j] + alpha T[j] for feature j = uniq[u], summed over its occurrences
    ``occ_b[ptr[u]:ptr[u + 1]]`` (rows within the batch, ascending) with values ``occ_x``."""


@hook(default=_no_after_step)
def after_step(spec, ws, B):
    """After the step's updates (e.g. batch norm's running statistics); default: nothing."""


@hook(default=_no_penalty)
def penalty(spec, H):
    """The model's penalty on H in the batch objective (for batch_gradient); default 0."""


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def grads_and_update(spec, ws, nu, uniq, ptr, occ_b, occ_x, T, alpha, GT, stT, solver, coef,
                     bad):
    """Phase 2: each unique feature's gradient row, then its lazy optimizer update, in one
    parallel loop over the features (each row has a single owner and a fixed summation order,
    so the result does not depend on the split into lanes, csr.lane_range, or threads)."""
    for lane in prange(LANES):
        for u in range(*lane_range(lane, nu, ptr)):
            feature_grad(spec, ws, u, uniq, ptr, occ_b, occ_x, T, alpha, GT)
            ok = update_row(T, stT, GT, u, uniq[u], solver, coef)
            bad[u] = 0 if ok else 1


@njit(cache=True, fastmath=False)
def train_epoch(indptr, indices, data, y, sw, batch_size, w0, T, H, st0, stT, stH, solver, lr,
                beta_1, beta_2, eps, step, loss_id, alpha, slots, spec):
    """One pass over the rows of an epoch block (already in training order) in minibatches:
    the model's forward and backward pass, the batch transposition, the lazy update of the
    touched rows of T, the dense update of w0 and H.  ``step``: optimizer steps taken before;
    ``slots``: see csr.batch_transposed.

    Returns (sum of weighted row losses, number of steps taken, status) with status 0 = fine,
    1 = a non-finite loss (that batch was not applied), 2 = a parameter became non-finite."""
    n = indptr.shape[0] - 1
    cap = batch_capacity(indptr, batch_size)
    ws = workspace(spec, indptr, batch_size, T, H)
    vals = values(spec, indptr, data)
    tp = transposer(indptr, batch_size, slots.shape[0], vals)
    GT = np.empty((cap, T.shape[1]), T.dtype)
    GH = np.zeros(H.shape[0])
    bad = np.zeros(cap, np.uint8)
    g0 = np.empty(1)
    coef = np.empty(7, T.dtype)
    total = 0.0
    n_steps = 0
    for start in range(0, n, batch_size):
        B = min(batch_size, n - start)
        batch_loss, g0[0] = forward_backward(spec, ws, indptr, indices, data, y, sw, start, B,
                                             w0, T, H, loss_id, step + 1, GH)
        if not (math.isfinite(batch_loss) and math.isfinite(g0[0])):
            return total, n_steps, 1
        total += batch_loss
        nu, uniq, ptr, occ_b, occ_x = batch_transposed(indptr, indices, vals, start // batch_size,
                                                       batch_size, slots, tp)
        step += 1
        n_steps += 1
        lr_t = adam_lr(lr, beta_1, beta_2, step) if solver == ADAM else lr
        row_coefs(coef, lr, lr_t, beta_1, beta_2, eps)
        grads_and_update(spec, ws, nu, uniq, ptr, occ_b, occ_x, T, alpha, GT, stT, solver, coef,
                         bad)
        ok = update_dense(w0, st0, g0, solver, lr, lr_t, beta_1, beta_2, eps)
        if H.shape[0] and not update_dense(H, stH, GH, solver, lr, lr_t, beta_1, beta_2, eps):
            ok = False
        after_step(spec, ws, B)
        for u in range(nu):
            if bad[u]:
                ok = False
        if not ok:
            return total, n_steps, 2
    return total, n_steps, 0


@njit(cache=True, fastmath=False)
def objective_penalty(spec, H):
    """The model's penalty hook on H, callable from Python (for batch_gradient)."""
    return penalty(spec, H)


def batch_gradient(indptr, indices, data, y, sw, w0, T, H, loss_id, alpha, slot, spec):
    """The gradient of one batch's objective, as training computes it: ``train_epoch`` itself
    over all rows of the CSR block as one batch (step 0: a spec with dropout keys its masks by
    it), with the RECORD solver, which writes the gradients into the optimizer state and updates
    no parameter; no kernel of its own is compiled.  The rows and targets are passed read-only
    and the state as training's, so the training kernel compiled for the estimators serves.  The
    spec's arrays are copied first (``after_step`` updates batch norm's running statistics).
    Objective: (1/B) sum_b sw_b l(f_b, y_b) + (alpha/2) sum_{j in batch} ||T_j||^2 + the model's
    penalty on H.  ``slot``: (n_features,) int32, all -1 (left so).

    Returns (objective, d/dw0, unique features, their gradient rows, d/dH)."""
    from .._trainer import readonly  # (at call time: the trainer imports this module)
    B = indptr.shape[0] - 1
    spec = spec._replace(**{name: value.copy() for name, value in zip(spec._fields, spec)
                            if isinstance(value, np.ndarray)})
    st0 = np.zeros((2, 1))
    stT = np.zeros((2,) + T.shape, T.dtype)
    stH = np.zeros((2, H.shape[0]))
    total, _, status = train_epoch(
        readonly(indptr), readonly(indices), readonly(data), readonly(y), readonly(sw),
        np.int64(max(B, 1)), w0, T, H, st0, stT, stH, np.int64(RECORD), 0.0, 0.9, 0.999, 1e-8,
        np.int64(-1), np.int64(loss_id), float(alpha), slot.reshape(1, -1), spec)
    if status:
        raise FloatingPointError("the batch's loss or a gradient is not finite")
    uniq = np.unique(indices[indptr[0]:indptr[B]]).astype(np.int32)
    reg = float(np.sum(np.asarray(T[uniq], np.float64) ** 2))
    obj = total / B + 0.5 * alpha * reg + objective_penalty(spec, H)
    return obj, st0[0, 0], uniq, stT[0, uniq], stH[0].copy()
