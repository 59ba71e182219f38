"""Losses and their derivatives with respect to the model output f.

``LOGISTIC`` (id 0): log-loss on a soft label y in [0, 1], ``softplus(f) - y f``, derivative
``sigmoid(f) - y``.  ``SQUARED`` (id 1): ``0.5 (f - y)**2``, derivative ``f - y``.
Both are written in forms that neither overflow nor lose precision for large |f|.
"""
import math

from numba import njit

LOGISTIC = 0
SQUARED = 1


@njit(cache=True, inline="always")
def sigmoid(f):
    if f >= 0.0:
        return 1.0 / (1.0 + math.exp(-f))
    e = math.exp(f)
    return e / (1.0 + e)


@njit(cache=True, inline="always")
def loss_value(f, y, loss_id):
    if loss_id == LOGISTIC:
        # softplus(f) - y f = max(f, 0) - y f + log1p(exp(-|f|))
        return max(f, 0.0) - y * f + math.log1p(math.exp(-abs(f)))
    d = f - y
    return 0.5 * d * d


@njit(cache=True, inline="always")
def loss_deriv(f, y, loss_id):
    if loss_id == LOGISTIC:
        return sigmoid(f) - y
    return f - y
