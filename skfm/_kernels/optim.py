"""Lazy optimizers: update only the parameter rows a minibatch touched.

Solver ids: ``SGD`` (0), ``ADAGRAD`` (1), ``ADAM`` (2).  State arrays have a leading axis of 2:
``state[0]`` is Adam's first moment, ``state[1]`` Adam's second moment or Adagrad's accumulator.

Adam's bias correction uses the global step count ``t`` (as ``torch.optim.SparseAdam`` and
TensorFlow's LazyAdam do): ``lr_t = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)``.  A row that a batch
does not touch keeps its moments unchanged (dense Adam would decay them and keep moving the row).
"""
import math

from numba import njit

SGD = 0
ADAGRAD = 1
ADAM = 2


@njit(cache=True)
def adam_lr(lr, beta_1, beta_2, t):
    return lr * math.sqrt(1.0 - beta_2 ** t) / (1.0 - beta_1 ** t)


@njit(cache=True, inline="always")
def update_elem(p, g, m, v, solver, lr, lr_t, beta_1, beta_2, eps):
    """One optimizer step on a scalar; returns (p, m, v)."""
    if solver == ADAM:
        m = beta_1 * m + (1.0 - beta_1) * g
        v = beta_2 * v + (1.0 - beta_2) * g * g
        p = p - lr_t * m / (math.sqrt(v) + eps)
    elif solver == ADAGRAD:
        v = v + g * g
        p = p - lr * g / (math.sqrt(v) + eps)
    else:
        p = p - lr * g
    return p, m, v


@njit(cache=True, inline="always")
def update_row(P, S, G, u, j, solver, lr, lr_t, beta_1, beta_2, eps):
    """``P[j] -= step(G[u])`` with state ``S[:, j]``; returns False if P[j] became non-finite."""
    ok = True
    for c in range(P.shape[1]):
        if solver == SGD:
            p = P[j, c] - lr * G[u, c]
        else:
            p, m, v = update_elem(P[j, c], G[u, c], S[0, j, c], S[1, j, c],
                                  solver, lr, lr_t, beta_1, beta_2, eps)
            S[0, j, c] = m
            S[1, j, c] = v
        P[j, c] = p
        if not math.isfinite(p):
            ok = False
    return ok


@njit(cache=True)
def update_dense(P, S, G, solver, lr, lr_t, beta_1, beta_2, eps):
    """Dense update of a flat parameter vector P with state S (2, len(P)) and gradient G."""
    ok = True
    for c in range(P.shape[0]):
        p, m, v = update_elem(P[c], G[c], S[0, c], S[1, c], solver, lr, lr_t, beta_1, beta_2, eps)
        S[0, c] = m
        S[1, c] = v
        P[c] = p
        if not math.isfinite(p):
            ok = False
    return ok
