"""Mixup on CSR rows (SMFM paper Eq. 3) and the random draws of Alg. 1 and 2.

Candidate k of first parent number i (its position in the epoch's parent list) uses the random
stream ``(seed, epoch, i * p + k)``: partner ``r ~ U{0..n-1}``, ``lam' ~ Beta(a, b)``,
``lam = max(lam', 1 - lam')``.  The mixed row is the sparse sum ``lam x + (1 - lam) r``: a feature
in both parents appears once, with weight ``lam x_j + (1 - lam) r_j``; label and sample weight are
mixed with the same ``lam``.
"""
import numpy as np
from numba import njit, prange

from .prefetch import prefetch, prefetch_nonzeros, prefetch_row
from .rng import beta, randint, stream_key

_AHEAD_PTR = 32  # rows ahead whose indptr entries mix_rows prefetches
_AHEAD_ROW = 16  # rows ahead whose first nonzeros mix_rows prefetches


@njit(cache=True, inline="always")
def draw_one(seed, epoch, stream, n, a, b, st):
    st[0] = stream_key(seed, epoch, stream)
    r = randint(st, n)
    lam = beta(st, a, b)
    return r, max(lam, 1.0 - lam)


@njit(cache=True, inline="always")
def draw_ahead(seed, epoch, i, p, n, a, b, st, PR, LM, R, r1, indptr):
    """The p candidates of first parent number i (row r1) into PR[:p], LM[:p], as draw_one, and
    prefetch what scoring them will read first: the rows R[r1] and R[partner] of the per-row
    statistics and the partners' indptr entries.  A selector draws the next parent's candidates
    before scoring the current one's, so these random reads overlap."""
    prefetch_row(R, r1)
    for k in range(p):
        r2, lam = draw_one(seed, epoch, i * p + k, n, a, b, st)
        PR[k] = r2
        LM[k] = lam
        prefetch_row(R, r2)
        prefetch(indptr, r2)


@njit(cache=True, inline="always")
def prefetch_partner_rows(PR, p, indptr, indices, data):
    """Prefetch the first cache line of each of the p partners' indices and data."""
    for k in range(p):
        a2 = indptr[PR[k]]
        if a2 < indices.shape[0]:
            prefetch(indices, a2)
            prefetch(data, a2)


@njit(cache=True, inline="always")
def start_ahead(first, last, seed, epoch, p, n, a, b, st, RP, RL, R, parents, indptr, indices,
                data):
    """Before a selector's loop over first parents first .. last - 1.  (RP, RL), each (3, p), is a
    ring of candidates: parent i's partners and lams are in row i % 3.  Draws the candidates of
    the first two parents, prefetching as step_ahead does."""
    draw_ahead(seed, epoch, first, p, n, a, b, st, RP[first % 3], RL[first % 3], R,
               parents[first], indptr)
    prefetch_partner_rows(RP[first % 3], p, indptr, indices, data)
    if first + 1 < last:
        draw_ahead(seed, epoch, first + 1, p, n, a, b, st, RP[(first + 1) % 3],
                   RL[(first + 1) % 3], R, parents[first + 1], indptr)


@njit(cache=True, inline="always")
def step_ahead(i, last, seed, epoch, p, n, a, b, st, RP, RL, R, parents, indptr, indices, data):
    """At parent i of the loop (its candidates are row i % 3 of the ring): draw parent i + 2's
    candidates and prefetch parent i + 1's partners' nonzeros (their indptr entries were
    prefetched one parent earlier)."""
    if i + 2 < last:
        draw_ahead(seed, epoch, i + 2, p, n, a, b, st, RP[(i + 2) % 3], RL[(i + 2) % 3], R,
                   parents[i + 2], indptr)
    if i + 1 < last:
        prefetch_partner_rows(RP[(i + 1) % 3], p, indptr, indices, data)


@njit(cache=True, fastmath=False, parallel=True)
def draw_candidates(offset, n_parents, n, p, seed, epoch, a, b):
    """(partners, lams), each (n_parents, p): the candidates of first parents number
    offset .. offset + n_parents - 1 in Alg. 2 (Alg. 1 when p == 1)."""
    partners = np.empty((n_parents, p), np.int64)
    lams = np.empty((n_parents, p))
    for i in prange(n_parents):
        st = np.zeros(1, np.uint64)
        for k in range(p):
            partners[i, k], lams[i, k] = draw_one(seed, epoch, (offset + i) * p + k, n, a, b, st)
    return partners, lams


@njit(cache=True, inline="always")
def _merged_nnz(indices, a1, e1, a2, e2):
    n = 0
    while a1 < e1 and a2 < e2:
        j1 = indices[a1]
        j2 = indices[a2]
        if j1 <= j2:
            a1 += 1
        if j2 <= j1:
            a2 += 1
        n += 1
    return n + (e1 - a1) + (e2 - a2)


def mix_rows(indptr, indices, data, y, sw, parents, partners, lams):
    """Rows lam_i x_{parents[i]} + (1 - lam_i) x_{partners[i]} as a CSR matrix (indices sorted),
    with their mixed labels (y: (n, n_outputs)) and sample weights.
    Returns (indptr, indices, data, y (m, n_outputs), sw).  The trainer calls the two kernels,
    mix_sizes and mix_fill, itself, with buffers it reuses from epoch to epoch; this allocates
    them as it does (a plain function, so both pass mix_fill arrays of the same Numba types)."""
    m = parents.shape[0]
    out_ptr = np.empty(m + 1, np.int64)
    nnz = mix_sizes(indptr, indices, data, parents, partners, out_ptr)
    out_ind = np.empty(nnz, np.int32)
    out_dat = np.empty(nnz, data.dtype)
    out_y = np.empty((m, y.shape[1]), order="F")  # each column contiguous
    out_sw = np.empty(m)
    mix_fill(indptr, indices, data, y, sw, parents, partners, lams, out_ptr, out_ind, out_dat,
             out_y, out_sw)
    return out_ptr, out_ind, out_dat, out_y, out_sw


@njit(cache=True, fastmath=False, parallel=True)
def mix_sizes(indptr, indices, data, parents, partners, out_ptr):
    """The row pointer of mix_rows' output into ``out_ptr`` (len(parents) + 1); returns its nnz.
    The random rows are prefetched a few rows ahead here and in mix_fill, as in
    csr.gather_sizes."""
    m = parents.shape[0]
    for i in prange(m):
        if i + _AHEAD_PTR < m:
            prefetch(indptr, parents[i + _AHEAD_PTR])
            prefetch(indptr, partners[i + _AHEAD_PTR])
        if i + _AHEAD_ROW < m:
            prefetch_nonzeros(indptr, indices, data, parents[i + _AHEAD_ROW])
            prefetch_nonzeros(indptr, indices, data, partners[i + _AHEAD_ROW])
        r1 = parents[i]
        r2 = partners[i]
        out_ptr[i + 1] = _merged_nnz(indices, indptr[r1], indptr[r1 + 1], indptr[r2],
                                     indptr[r2 + 1])
    out_ptr[0] = 0
    for i in range(m):
        out_ptr[i + 1] += out_ptr[i]
    return out_ptr[m]


@njit(cache=True, fastmath=False, parallel=True)
def mix_fill(indptr, indices, data, y, sw, parents, partners, lams, out_ptr, out_ind, out_dat,
             out_y, out_sw):
    """The nonzeros, labels and weights of mix_rows' output into ``out_ind``, ``out_dat`` (at
    least out_ptr[-1] long), ``out_y`` ((m, n_outputs)) and ``out_sw`` ((m,)), given its row
    pointer ``out_ptr``."""
    m = parents.shape[0]
    n_out = y.shape[1]
    for i in prange(m):
        if i + _AHEAD_ROW < m:
            for r in (parents[i + _AHEAD_ROW], partners[i + _AHEAD_ROW]):
                prefetch_nonzeros(indptr, indices, data, r)
                prefetch(sw, r)
                prefetch(y[r], 0)
        r1 = parents[i]
        r2 = partners[i]
        lam = lams[i]
        mu = 1.0 - lam
        for t in range(n_out):
            out_y[i, t] = lam * y[r1, t] + mu * y[r2, t]
        out_sw[i] = lam * sw[r1] + mu * sw[r2]
        a1 = indptr[r1]
        e1 = indptr[r1 + 1]
        a2 = indptr[r2]
        e2 = indptr[r2 + 1]
        o = out_ptr[i]
        while a1 < e1 or a2 < e2:
            j1 = indices[a1] if a1 < e1 else 2147483647
            j2 = indices[a2] if a2 < e2 else 2147483647
            if j1 < j2:
                out_ind[o] = j1
                out_dat[o] = lam * data[a1]
                a1 += 1
            elif j2 < j1:
                out_ind[o] = j2
                out_dat[o] = mu * data[a2]
                a2 += 1
            else:
                out_ind[o] = j1
                out_dat[o] = lam * data[a1] + mu * data[a2]
                a1 += 1
                a2 += 1
            o += 1
