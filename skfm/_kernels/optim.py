"""Lazy optimizers: update only the parameter rows a minibatch touched.

Solver ids: ``SGD`` (0), ``ADAGRAD`` (1), ``ADAM`` (2); ``RECORD`` (3) leaves the parameters as
they are and writes the step's gradient into ``state[0]`` (``skeleton.batch_gradient`` reads the
training's gradients with it: one batch of ``train_epoch``, no kernel of its own).  State arrays
have a leading axis of 2: ``state[0]`` is Adam's first moment, ``state[1]`` Adam's second moment or
Adagrad's accumulator.

Adam's bias correction uses the global step count ``t`` (as ``torch.optim.SparseAdam`` and
TensorFlow's LazyAdam do): ``lr_t = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)``.  A row that a
batch does not touch keeps its moments unchanged (dense Adam would decay them and keep moving
the row).
"""
import math

import numpy as np
from numba import njit

from . import FASTMATH

SGD = 0
ADAGRAD = 1
ADAM = 2
RECORD = 3


@njit(cache=True, fastmath=False)
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


@njit(cache=True, fastmath=False)
def row_coefs(coef, lr, lr_t, beta_1, beta_2, eps):
    """Fill ``coef`` (an array of the parameters' dtype, length 7) with the step's constants, so
    that float32 parameters are updated in float32 arithmetic (twice the SIMD width)."""
    coef[0] = lr
    coef[1] = lr_t
    coef[2] = beta_1
    coef[3] = 1.0 - beta_1
    coef[4] = beta_2
    coef[5] = 1.0 - beta_2
    coef[6] = eps


@njit(cache=True, fastmath=FASTMATH, inline="always")
def update_row(P, S, G, u, j, solver, coef):
    """``P[j] -= step(G[u])`` with state ``S[:, j]`` and constants ``coef`` (see row_coefs);
    returns False if P[j] became non-finite."""
    if solver == RECORD:
        for c in range(P.shape[1]):
            S[0, j, c] = G[u, c]
        return True
    k = P.shape[1]
    total = 0.0  # any inf/nan in the row makes the sum non-finite
    if solver == ADAM:
        lr_t, b1, c1, b2, c2, eps = coef[1], coef[2], coef[3], coef[4], coef[5], coef[6]
        for c in range(k):
            g = G[u, c]
            m = b1 * S[0, j, c] + c1 * g
            v = b2 * S[1, j, c] + c2 * g * g
            S[0, j, c] = m
            S[1, j, c] = v
            p = P[j, c] - lr_t * m / (np.sqrt(v) + eps)
            P[j, c] = p
            total += p
    elif solver == ADAGRAD:
        lr, eps = coef[0], coef[6]
        for c in range(k):
            g = G[u, c]
            v = S[1, j, c] + g * g
            S[1, j, c] = v
            p = P[j, c] - lr * g / (np.sqrt(v) + eps)
            P[j, c] = p
            total += p
    else:
        lr = coef[0]
        for c in range(k):
            p = P[j, c] - lr * G[u, c]
            P[j, c] = p
            total += p
    return math.isfinite(total)


@njit(cache=True, fastmath=False)
def update_dense(P, S, G, solver, lr, lr_t, beta_1, beta_2, eps):
    """Dense update of a flat parameter vector P with state S (2, len(P)) and gradient G."""
    ok = True
    if solver == RECORD:
        for c in range(P.shape[0]):
            S[0, c] = G[c]
        return ok
    for c in range(P.shape[0]):
        p, m, v = update_elem(P[c], G[c], S[0, c], S[1, c], solver, lr, lr_t, beta_1, beta_2, eps)
        S[0, c] = m
        S[1, c] = v
        P[c] = p
        if not math.isfinite(p):
            ok = False
    return ok
