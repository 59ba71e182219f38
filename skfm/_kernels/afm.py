"""Attentional factorization machine kernels (Xiao et al. 2017, Eq. 4-6).

Parameters: ``w0`` (float64, shape (1,)), the feature table ``T`` = [w | V] of shape
``(n_features, 1 + d)`` (as FM, lazily updated) and the attention head ``H``, one flat float64
vector holding, in this order,

    W (t, d) row-major at [0, t d),  b (t,) at [t d, t d + t),  h (t,) at [t d + t, t d + 2 t),
    p (d,) at [t d + 2 t, t d + 2 t + d).

For a row with nonzeros (i, x_i), E_i = v_i x_i and, over the pairs i < j of the row (in storage
order, i.e. ascending feature ids),

    e_ij = E_i * E_j,  z_ij = W e_ij + b,  a'_ij = h . ReLU(z_ij),  a = softmax(a'),
    c = sum_ij a_ij e_ij,  f = w0 + sum_i w_i x_i + p . (m * c)

with m the (inverted) dropout mask on the pooled vector (all ones at inference).  A row with fewer
than two nonzeros has no pairs and a pair term of 0.

Saliency (SMFM Eq. 5) ``S = d/ds L(f(s x), y)`` at s = 1 is computed by forward-mode tangent
propagation: dE_i = E_i, de_ij = 2 e_ij, dz_ij = 2 (z_ij - b), through the ReLU and the softmax.

A training step has two parallel phases: (1) fixed chunks of rows (``_RCH`` rows each, the chunk
boundaries do not depend on the thread count): forward, loss derivative, backward; each nonzero's
gradient row (dL/dw_j, dL/dv_j) goes to its own row of a (batch nnz, 1 + d) buffer, the head
gradient of a chunk goes to that chunk's row of a (n_chunks, n_head) buffer.  The attention
network's three products with W (z = W e, dObj/dW, dObj/de) are one BLAS matrix product each over
all the pairs of a chunk, in the dtype of the feature table (float32 data: float32 products, as
the embeddings themselves); everything else accumulates in float64;
(2) the batch's unique features in parallel, each summing its nonzeros' gradient rows in row order
(the batch transposition carries the nonzero positions), then its lazy optimizer update.  The head
gradient is the sum of the chunk rows in chunk order.  The minibatch loop, the transposition and
the updates are the skeleton's (skfm._kernels.skeleton; the hooks of AFMSpec are registered here:
phase 1 is ``train_batch``, a feature's gradient ``feature_grad``, the batch objective's penalty
``attention_penalty``).  Every sum has one owner and a fixed order, so results are bit-identical
for any number of threads.

Memory: the pair buffers (P x d products, P x t pre-activations, P = m (m - 1) / 2) are allocated
per chunk of a fixed number of rows (``_RCH`` in training, ``_CHUNK`` at inference) and sized by
the batch's (or matrix's) largest row, never by the batch size x nnz^2.
"""
import math
from collections import namedtuple

import numpy as np
from numba import njit, prange

from . import FASTMATH, skeleton
from .csr import batch_capacity
from .losses import loss_deriv, loss_value
from .prefetch import prefetch_row
from .rng import stream_key, uniform

_RCH = 8  # rows per task of the training phase 1 (fixed: results must not depend on threads)
_AHEAD = 16  # pairs between a pair-cache row's prefetch and its use
_CHUNK = 16  # rows per task in prediction-style loops


def head_size(d, t):
    return t * d + 2 * t + d


@njit(cache=True, inline="always")
def _head_parts(H, t, d):
    """Views (b, h, p) of the head vector H (or of a gradient row laid out like it: W, b, h, p).
    Loops index these views, never H at a runtime offset: H[t * d + k] inside a loop keeps LLVM
    from vectorising it (a microbenchmark of the pair loop: 10x slower)."""
    bo = t * d
    return H[bo:bo + t], H[bo + t:bo + 2 * t], H[bo + 2 * t:bo + 2 * t + d]


@njit(cache=True, fastmath=False)
def max_row_nnz(indptr, start, n):
    m = 0
    for r in range(start, start + n):
        m = max(m, indptr[r + 1] - indptr[r])
    return m


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _exp_shifted(att, q0, q1, mx):
    """att[q] = exp(att[q] - mx) for q in [q0, q1) (the softmax's numerators, mx the largest
    logit); returns their sum."""
    tot = 0.0
    for qq in range(q0, q1):
        v = math.exp(att[qq] - mx)
        att[qq] = v
        tot += v
    return tot


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _embed_row(indices, data, a, e, T, E, o):
    """E[o + i - a] = v_j x_j for the nonzeros i in [a, e) of a row; returns sum_j w_j x_j."""
    d = T.shape[1] - 1
    ln = 0.0
    for i in range(a, e):
        j = indices[i]
        x = data[i]
        ln += T[j, 0] * x
        for f in range(d):
            E[o + i - a, f] = T[j, f + 1] * x
    return ln


@njit(cache=True, fastmath=FASTMATH)
def _chunk_forward(indptr, indices, data, r0, r1, T, H, Wc, t, masks, E, Pe, att, C, lin, pair,
                   poff, sh, dl, want_sh, want_dl, iam, fq):
    """Forward pass of the rows r0 .. r1 - 1 (one chunk).  Row b = r - r0 keeps its scaled
    embeddings E_i in E[indptr[r] - indptr[r0] + i], its pairs in rows poff[b] .. poff[b + 1] of
    Pe (products e_q) and att (attention weights), its pooled vector in C[b], its linear term in
    lin[b] and its pair term p . (masks[b] * C[b]) in pair[b].  Returns Z (pairs, t), the
    pre-activations W e_q + b of all the chunk's pairs, from one matrix product with
    ``Wc`` = W in the dtype of T.  Also, per pair, with ``want_sh`` sh[q] = (p * masks[b]) . e_q
    = df/da_q (for the backward pass) and with ``want_dl`` dl[q] = 2 sum_k h_k [z_qk > 0]
    (z_qk - b_k), the tangent of the attention logit along x (for saliency), computed while e_q
    and z_q are in cache.

    ``iam`` = (tau, cw, nf, fields, Fo), the interaction-aware options (IFM; AFM's are
    iam_afm's): the logits are divided by tau, pair q of features (i, k) is pooled as o_q * e_q
    with o_q = Fo[fq[q]] (fq[q] = pair_field(fields, nf, i, k); nf = 0: o_q = 1, fq[q] = 0),
    and the pair term is cw . (masks[b] * C[b]) (AFM: cw = p; IFM: cw = 1, the sum over k)."""
    d = T.shape[1] - 1
    a0 = indptr[r0]
    hb, hh, _ = _head_parts(H, t, d)
    tau, cw, nf, fields, Fo = iam
    q = 0
    for r in range(r0, r1):
        b = r - r0
        a = indptr[r]
        e = indptr[r + 1]
        lin[b] = _embed_row(indices, data, a, e, T, E, a - a0)
        poff[b] = q
        for i in range(a - a0, e - a0):
            for k in range(i + 1, e - a0):
                fid = pair_field(fields, nf, indices[a0 + i], indices[a0 + k])
                fq[q] = fid
                if want_sh and nf == 0:
                    s = 0.0
                    for f in range(d):
                        v = E[i, f] * E[k, f]
                        Pe[q, f] = v
                        s += cw[f] * masks[b, f] * v
                    sh[q] = s
                elif want_sh:
                    s = 0.0
                    o = Fo[fid]
                    for f in range(d):
                        v = E[i, f] * E[k, f]
                        Pe[q, f] = v
                        s += cw[f] * masks[b, f] * o[f] * v
                    sh[q] = s
                else:
                    for f in range(d):
                        Pe[q, f] = E[i, f] * E[k, f]
                q += 1
    nb = r1 - r0
    poff[nb] = q
    Z = np.dot(Pe[:q], Wc.T) if q > 0 else np.empty((0, t), Pe.dtype)
    for b in range(nb):
        q0 = poff[b]
        q1 = poff[b + 1]
        for f in range(d):
            C[b, f] = 0.0
        pair[b] = 0.0
        if q1 == q0:
            continue
        mx = -np.inf
        for qq in range(q0, q1):
            s = 0.0
            if want_dl:
                ds = 0.0
                for k in range(t):  # branch-free, so it vectorises (ReLU signs are unpredictable)
                    zr = Z[qq, k]
                    z = zr + hb[k]
                    Z[qq, k] = z
                    hk = hh[k]
                    s += hk * max(z, 0.0)
                    ds += hk * zr if z > 0.0 else 0.0
                dl[qq] = 2.0 * ds / tau
            else:
                for k in range(t):
                    z = Z[qq, k] + hb[k]
                    Z[qq, k] = z
                    s += hh[k] * max(z, 0.0)
            s = s / tau
            att[qq] = s
            mx = max(mx, s)
        tot = _exp_shifted(att, q0, q1, mx)
        for qq in range(q0, q1):
            aq = att[qq] / tot
            att[qq] = aq
            if nf == 0:
                for f in range(d):
                    C[b, f] += aq * Pe[qq, f]
            else:
                o = Fo[fq[qq]]
                for f in range(d):
                    C[b, f] += aq * o[f] * Pe[qq, f]
        pr = 0.0
        for f in range(d):
            pr += cw[f] * masks[b, f] * C[b, f]
        pair[b] = pr
    return Z


@njit(cache=True, fastmath=FASTMATH)
def _chunk_backward(indptr, indices, data, r0, r1, T, H, Wc, t, masks, E, Pe, Z, att, C, poff,
                    G, sh, dE, HG, ci, GN, base, iam, fq, GF):
    """Backward pass of the chunk after _chunk_forward (which left sh[q] = df/da_q), for G[b] =
    dObj/df of row r0 + b: adds the
    head gradient to HG[ci] and writes the gradient rows (d/dw_j, d/dv_j) of the chunk's
    nonzeros to GN[position - base].  The attention layer's two products (d/dW and d/de) are one
    matrix product each over all the chunk's pairs.  ``iam`` and ``fq`` as _chunk_forward's;
    nf = 0 (AFM): adds d/dp to HG[ci]'s p, nf > 0 (IFM): adds dObj/dFo[fq[q]] to GF[fq[q]] (the
    caller folds GF into the gradient of the parameters Fo is made of)."""
    d = T.shape[1] - 1
    a0 = indptr[r0]
    nb = r1 - r0
    _, hh, _ = _head_parts(H, t, d)
    tau, cw, nf, _, Fo = iam
    P = poff[nb]
    gW = HG[ci, :t * d]
    gb, gh, gp = _head_parts(HG[ci], t, d)
    DZ = np.empty((P, t), Pe.dtype)  # dObj/dz of every pair and unit
    for b in range(nb):
        gg = G[b]
        if nf == 0:
            for f in range(d):
                gp[f] += gg * masks[b, f] * C[b, f]
        q0 = poff[b]
        q1 = poff[b + 1]
        if q1 == q0:
            continue
        sbar = 0.0  # sh_q = df/da_q = (cw * mask * o_q) . e_q
        for qq in range(q0, q1):
            sbar += att[qq] * sh[qq]
        for qq in range(q0, q1):
            gd = gg * att[qq] * (sh[qq] - sbar) / tau  # dObj/da'_q
            for k in range(t):  # branch-free: adding 0.0 where z <= 0 leaves the sums exact
                z = Z[qq, k]
                hk = hh[k]
                gz = gd * hk if z > 0.0 else 0.0
                gh[k] += gd * max(z, 0.0)
                gb[k] += gz
                DZ[qq, k] = gz
    if P > 0:
        GW = np.dot(DZ.T, Pe[:P])  # (t, d)
        for k in range(t):
            gWk = gW[k * d:(k + 1) * d]
            for f in range(d):
                gWk[f] += GW[k, f]
        DP = np.dot(DZ, Wc)  # (P, d): dObj/de_q through the attention network
    else:
        DP = np.empty((0, d), Pe.dtype)
    for b in range(nb):
        gg = G[b]
        a = indptr[r0 + b] - a0
        e = indptr[r0 + b + 1] - a0
        for i in range(a, e):
            for f in range(d):
                dE[i, f] = 0.0
        q = poff[b]
        for i in range(a, e):
            for k in range(i + 1, e):
                aq = gg * att[q]
                if nf == 0:
                    for f in range(d):
                        g = aq * cw[f] * masks[b, f] + DP[q, f]  # dObj/de_q
                        dE[i, f] += g * E[k, f]
                        dE[k, f] += g * E[i, f]
                else:
                    o = Fo[fq[q]]
                    go = GF[fq[q]]
                    for f in range(d):
                        am = aq * cw[f] * masks[b, f]
                        go[f] += am * Pe[q, f]  # dObj/do_q
                        g = am * o[f] + DP[q, f]  # dObj/de_q
                        dE[i, f] += g * E[k, f]
                        dE[k, f] += g * E[i, f]
                q += 1
        for i in range(a, e):
            x = data[a0 + i]
            rr = a0 + i - base
            GN[rr, 0] = gg * x
            for f in range(d):
                GN[rr, f + 1] = x * dE[i, f]


@njit(cache=True, fastmath=False)
def _chunk_buffers(rows, mmax, d, t, dtype):
    """Per-task buffers of a chunk of ``rows`` rows of at most ``mmax`` nonzeros: (E, Pe, att,
    C, fq), fq the pairs' field-pair ids (_chunk_forward)."""
    P = rows * (mmax * (mmax - 1) // 2)
    E = np.empty((rows * mmax, d), dtype)
    Pe = np.empty((P, d), dtype)
    att = np.empty(P)
    C = np.empty((rows, d))
    return E, Pe, att, C, np.empty(P, np.int64)


@njit(cache=True, inline="always")
def pair_field(fields, nf, i, k):
    """The row of the field-pair table Fo of the pair of features i, k: the unordered field pair
    {f, g} = {f_i, f_k}, f <= g, in the packed upper triangle (diagonal included) of nf fields,
    f (2 nf - f + 1) / 2 + g - f, one of nf (nf + 1) / 2 rows; 0 when nf = 0 (AFM: no
    fields)."""
    if nf == 0:
        return np.int64(0)
    f = np.int64(fields[i])
    g = np.int64(fields[k])
    if f > g:
        f, g = g, f
    return f * (2 * nf - f + 1) // 2 + g - f


@njit(cache=True, fastmath=False)
def iam_afm(H, t, d):
    """AFM's ``iam`` options of the pair kernels: tau = 1, cw = p, no fields."""
    return (1.0, _head_parts(H, t, d)[2], np.int64(0), np.empty(0, np.int32),
            np.empty((0, d)))


@njit(cache=True, fastmath=False)
def _dropout_mask(mask, rate, seed, epoch, step, b, st):
    """Inverted dropout on the d units of the pooled vector of batch row b: stream
    (seed, epoch, step), then (key, b, 0); unit f uses the f-th draw."""
    d = mask.shape[0]
    if rate <= 0.0:
        for f in range(d):
            mask[f] = 1.0
        return
    st[0] = stream_key(stream_key(seed, epoch, step), b, 0)
    keep = 1.0 / (1.0 - rate)
    for f in range(d):
        mask[f] = keep if uniform(st) >= rate else 0.0


@njit(cache=True, fastmath=FASTMATH, inline="always")
def train_chunk(ci, indptr, indices, data, y, sw, start, B, inv_b, w0, T, H, Wc, t, loss_id, rate,
                seed, epoch, step, mmax, G, L, GN, HG, iam, GF):
    """Chunk ci (batch rows [ci _RCH, (ci + 1) _RCH)) of phase 1: dropout masks, forward,
    weighted loss L[b], G[b] = sw_b inv_b dL/df, backward (the chunk's head gradient into
    HG[ci], for IFM its field-pair-table gradient into GF, see _chunk_backward).  inv_b = 1 / B
    comes from the caller, and the function is inlined: so AFM's phase1 compiles to the
    arithmetic it had before this function was factored out of it (under fastmath's
    reassociation, 1 / B computed here rounded G differently)."""
    d = T.shape[1] - 1
    base = indptr[start]
    E, Pe, att, C, fq = _chunk_buffers(np.int64(_RCH), mmax, d, t, T.dtype)
    dE = np.empty((E.shape[0], d))
    sh = np.empty(att.shape[0])
    dl = np.empty(att.shape[0])
    masks = np.empty((_RCH, d))
    lin = np.empty(_RCH)
    pair = np.empty(_RCH)
    poff = np.empty(_RCH + 1, np.int64)
    st = np.zeros(1, np.uint64)
    for k in range(HG.shape[1]):
        HG[ci, k] = 0.0
    b0 = ci * _RCH
    b1 = min(B, b0 + _RCH)
    for b in range(b0, b1):
        _dropout_mask(masks[b - b0], rate, seed, epoch, step, b, st)
    Z = _chunk_forward(indptr, indices, data, start + b0, start + b1, T, H, Wc, t, masks, E, Pe,
                       att, C, lin, pair, poff, sh, dl, np.bool_(True), np.bool_(False), iam, fq)
    for b in range(b0, b1):
        r = start + b
        f = w0[0] + lin[b - b0] + pair[b - b0]
        L[b] = sw[r] * loss_value(f, y[r], loss_id)
        G[b] = sw[r] * inv_b * loss_deriv(f, y[r], loss_id)
    _chunk_backward(indptr, indices, data, start + b0, start + b1, T, H, Wc, t, masks, E, Pe, Z,
                    att, C, poff, G[b0:b1], sh, dE, HG, ci, GN, base, iam, fq, GF)


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def phase1(indptr, indices, data, y, sw, start, B, w0, T, H, Wc, t, loss_id, rate, seed, epoch,
           step, mmax, G, L, GN, HG):
    """Rows [start, start + B) in fixed chunks of _RCH rows in parallel (train_chunk): forward,
    weighted loss L[b], G[b] = sw_b / B dL/df, per-nonzero feature gradient rows GN, chunk
    head sums HG."""
    d = T.shape[1] - 1
    iam = iam_afm(H, t, d)
    GF = np.empty((0, d))
    inv_b = 1.0 / B
    for ci in prange((B + _RCH - 1) // _RCH):
        train_chunk(ci, indptr, indices, data, y, sw, start, B, inv_b, w0, T, H, Wc, t, loss_id,
                    rate, seed, epoch, step, mmax, G, L, GN, HG, iam, GF)


@njit(cache=True, fastmath=FASTMATH, inline="always")
def feature_grad(u, uniq, ptr, occ_p, GN, base, T, alpha, GT):
    """GT[u] = dObj/dT[j] + alpha T[j] for j = uniq[u]: the sum, in row order, of the gradient
    rows GN[p - base] that phase1 wrote for its nonzeros at positions p = occ_p[ptr[u]:ptr[u +
    1]] (``base``: the position of the batch's first nonzero), plus alpha T[j] (alpha > 0)."""
    d1 = T.shape[1]
    j = uniq[u]
    for k in range(d1):
        GT[u, k] = 0.0
    for o in range(ptr[u], ptr[u + 1]):
        r = occ_p[o] - base
        for k in range(d1):
            GT[u, k] += GN[r, k]
    if alpha != 0.0:
        for k in range(d1):
            GT[u, k] += alpha * T[j, k]


@njit(cache=True, fastmath=False)
def _attention_weights(H, t, d, dtype):
    """W (t, d) as a contiguous array in the dtype of the feature table (the pair layer's
    matrix products run in that precision)."""
    return H[:t * d].reshape((t, d)).astype(dtype)


@njit(cache=True, fastmath=False)
def _head_grad(HG, n_chunks, H, t, d, att_alpha, gH):
    """gH (n_head,) = the chunk rows HG[:n_chunks] summed in chunk order, plus att_alpha W on
    W's entries (the gradient of AFM Eq. 8's att_alpha / 2 ||W||^2)."""
    for k in range(gH.shape[0]):
        gH[k] = 0.0
    for ci in range(n_chunks):
        for k in range(gH.shape[0]):
            gH[k] += HG[ci, k]
    if att_alpha != 0.0:
        for k in range(t * d):
            gH[k] += att_alpha * H[k]


# ------------------------------------------------------------------------- skeleton hooks
#: the model's options, the ``spec`` of the skeleton's hooks (skfm._kernels.skeleton): ``t``
#: the attention factor, ``rate`` the dropout rate of the pooled vector (0: none), ``seed`` and
#: ``epoch`` key the dropout masks (with the step, _dropout_mask), ``att_alpha`` the L2 penalty
#: att_alpha / 2 ||W||^2 on the attention weights (AFM Eq. 8)
AFMSpec = namedtuple("AFMSpec", "t rate seed epoch att_alpha")


@njit(cache=True, fastmath=False)
def workspace_for(B, cap, T, H):
    """Buffers for batches of at most B rows and cap nonzeros: (G (B,) dObj/df, L (B,) weighted
    row losses, GN (cap, 1 + d) per-nonzero gradient rows in T's dtype, HG (chunks, n_head)
    per-chunk head gradients, base (1,) int64 the position of the batch's first nonzero)."""
    return (np.empty(B), np.empty(B), np.empty((cap, T.shape[1]), T.dtype),
            np.empty(((B + _RCH - 1) // _RCH, H.shape[0])), np.zeros(1, np.int64))


@njit(cache=True, fastmath=False)
def train_batch(ws, indptr, indices, data, y, sw, start, B, w0, T, H, t, loss_id, rate, seed,
                epoch, step, att_alpha, GH):
    """Phase 1 of rows [start, start + B) (step ``step``, which keys the dropout masks): fills
    ws (workspace_for) and GH (n_head,) = dObj/dH including att_alpha W; returns
    (sum_b sw_b l(f_b, y_b), dObj/dw0 = sum_b G_b), both summed in row order."""
    G, L, GN, HG, base = ws
    d = T.shape[1] - 1
    base[0] = indptr[start]
    Wc = _attention_weights(H, t, d, T.dtype)
    phase1(indptr, indices, data, y, sw, start, B, w0, T, H, Wc, t, loss_id, rate, seed, epoch,
           step, max_row_nnz(indptr, start, B), G, L, GN, HG)
    _head_grad(HG, (B + _RCH - 1) // _RCH, H, t, d, att_alpha, GH)
    loss = 0.0  # not fm._batch_sums (fastmath: its reassociated sums would change AFM's results)
    g0 = 0.0
    for b in range(B):
        loss += L[b]
        g0 += G[b]
    return loss, g0


@njit(cache=True, fastmath=False)
def nonzero_positions(indptr):
    """(nnz,) int64: p at position p, the values the batch transposition carries for AFM (its
    feature gradients sum per-nonzero rows of phase1, not values)."""
    return np.arange(indptr[indptr.shape[0] - 1]).astype(np.int64)


@njit(cache=True, fastmath=False)
def attention_penalty(H, t, att_alpha):
    """att_alpha / 2 ||W||^2 (AFM Eq. 8), W the first t d entries of H."""
    d = (H.shape[0] - 2 * t) // (t + 1)  # H holds t d + 2 t + d values (head_size)
    wreg = 0.0
    for k in range(t * d):
        wreg += H[k] * H[k]
    return 0.5 * att_alpha * wreg


def _workspace(spec, indptr, batch_size, T, H):
    return workspace_for(min(batch_size, indptr.shape[0] - 1),
                         batch_capacity(indptr, batch_size), T, H)


def _values(spec, indptr, data):
    return nonzero_positions(indptr)


def _forward_backward(spec, ws, indptr, indices, data, y, sw, start, B, w0, T, H, loss_id, step,
                      GH):
    return train_batch(ws, indptr, indices, data, y, sw, start, B, w0, T, H, spec.t, loss_id,
                       spec.rate, spec.seed, spec.epoch, step, spec.att_alpha, GH)


def _feature_grad(spec, ws, u, uniq, ptr, occ_b, occ_x, T, alpha, GT):
    feature_grad(u, uniq, ptr, occ_x, ws[2], ws[4][0], T, alpha, GT)


def _penalty(spec, H):
    return attention_penalty(H, spec.t, spec.att_alpha)


skeleton.register(AFMSpec, workspace=_workspace, values=_values,
                  forward_backward=_forward_backward, feature_grad=_feature_grad,
                  penalty=_penalty)


# ----------------------------------------------------------------------------- inference
#: afm_rows modes
DECIDE = 0
SALIENCY = 1
ATTENTION = 2


@njit(cache=True, fastmath=FASTMATH)
def _forward_rows(indptr, indices, data, r0, r1, T, H, Wc, t, mmax, tangents, iam):
    """Inference forward pass (no dropout) of rows r0 .. r1 - 1 in fresh buffers: returns
    (att, lin, pair, poff, sh, dl) as _chunk_forward leaves them (sh and dl only with
    ``tangents``)."""
    d = T.shape[1] - 1
    nb = r1 - r0
    E, Pe, att, C, fq = _chunk_buffers(nb, mmax, d, t, T.dtype)
    lin = np.empty(nb)
    pair = np.empty(nb)
    poff = np.empty(nb + 1, np.int64)
    sh = np.empty(att.shape[0])
    dl = np.empty(att.shape[0])
    _chunk_forward(indptr, indices, data, r0, r1, T, H, Wc, t, np.ones((nb, d)), E, Pe, att, C,
                   lin, pair, poff, sh, dl, tangents, tangents, iam, fq)
    return att, lin, pair, poff, sh, dl


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _row_saliency(f, lin, pair, att, sh, dl, q0, q1, y, loss_id):
    """d/ds L(f(s x), y) at s = 1 (SMFM Eq. 5) of a row with value f, linear term lin, pair
    term pair, by forward-mode tangents: its pairs' attention weights att[q0:q1], df/da_q =
    (cw * o_q) . e_q (sh; AFM: p . e_q) and the attention logits' tangents dl (already divided
    by tau).  The pair term is sum_q a_q sh_q, e_q is homogeneous of degree 2 in x."""
    df = lin + 2.0 * pair  # tangent of the pair term with the attention held fixed
    mean = 0.0
    for q in range(q0, q1):
        mean += att[q] * dl[q]
    for q in range(q0, q1):
        df += att[q] * (dl[q] - mean) * sh[q]  # da_q (p . e_q)
    return loss_deriv(f, y, loss_id) * df


@njit(cache=True, fastmath=FASTMATH)
def afm_rows(indptr, indices, data, y, w0, T, H, t, mmax, loss_id, mode, out, pptr, pairs):
    """iam_rows with AFM's options (iam_afm)."""
    iam_rows(indptr, indices, data, y, w0, T, H, t, mmax, loss_id, mode, out, pptr, pairs,
             iam_afm(H, t, T.shape[1] - 1))


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def iam_rows(indptr, indices, data, y, w0, T, H, t, mmax, loss_id, mode, out, pptr, pairs, iam):
    """Every row in inference mode (no dropout), in chunks of _CHUNK rows in parallel; ``mmax``
    the largest row's nonzeros.  DECIDE: out[r] = f(x_r).  SALIENCY: out[r] = d/ds
    L(f(s x_r), y_r) at s = 1 (the forward pass also gives the tangents, _row_saliency).
    ATTENTION: the attention weights of row r's pairs i < j (storage order) into
    out[pptr[r]:pptr[r + 1]], their feature ids into pairs[pptr[r]:pptr[r + 1], :2].  y and
    loss_id are read in SALIENCY only, pptr and pairs in ATTENTION only.  ``iam``: see
    _chunk_forward."""
    n = indptr.shape[0] - 1
    d = T.shape[1] - 1
    Wc = _attention_weights(H, t, d, T.dtype)
    for ci in prange((n + _CHUNK - 1) // _CHUNK):
        r0 = ci * _CHUNK
        r1 = min(n, r0 + _CHUNK)
        att, lin, pair, poff, sh, dl = _forward_rows(indptr, indices, data, r0, r1, T, H, Wc, t,
                                                     mmax, mode == SALIENCY, iam)
        for r in range(r0, r1):
            b = r - r0
            if mode == ATTENTION:
                a = indptr[r]
                e = indptr[r + 1]
                o = pptr[r]
                q = poff[b]
                for i in range(e - a):
                    for k in range(i + 1, e - a):
                        pairs[o, 0] = indices[a + i]
                        pairs[o, 1] = indices[a + k]
                        out[o] = att[q]
                        o += 1
                        q += 1
                continue
            f = w0[0] + lin[b] + pair[b]
            if mode == SALIENCY:
                out[r] = _row_saliency(f, lin[b], pair[b], att, sh, dl, poff[b], poff[b + 1],
                                       y[r], loss_id)
            else:
                out[r] = f


# ------------------------------------------------------------- SMFM selection: pair cache
@njit(cache=True, inline="always")
def _tri(a, b, K):
    """Index of the unordered pair {a, b} (a != b) of local ids < K in a packed triangle."""
    if a > b:
        a, b = b, a
    return a * (2 * K - a - 1) // 2 + (b - a - 1)


@njit(cache=True, fastmath=FASTMATH)
def pair_cache(top, T, H, t):
    """iam_pair_cache with AFM's options (iam_afm)."""
    return iam_pair_cache(top, T, H, t, iam_afm(H, t, T.shape[1] - 1))


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def iam_pair_cache(top, T, H, t, iam):
    """The attention network's input products for every pair of the features ``top`` (K ids):
    UC[_tri(a, b, K)] = W (v_top[a] * v_top[b]) (t values, in T's dtype, as the pair layer's
    products) and PC[...] = p . (v_top[a] * v_top[b]).  A pair (i, k) of a row then has
    z = x_i x_k UC + b and p . e = x_i x_k PC: the W product of its e is not needed.  With
    ``iam`` (_chunk_forward), PC[...] = (cw * o) . (v_top[a] * v_top[b]), o the pair's row of
    the field-pair table (a feature's field is fixed, so is its pairs' o)."""
    K = top.shape[0]
    d = T.shape[1] - 1
    _, cw, nfl, fields, Fo = iam
    Wc = _attention_weights(H, t, d, T.dtype)
    UC = np.empty((K * (K - 1) // 2, t), T.dtype)
    PC = np.empty(K * (K - 1) // 2)
    for a in prange(K - 1):
        n = K - a - 1
        c0 = _tri(np.int64(a), np.int64(a) + 1, K)
        Pe = np.empty((n, d), T.dtype)
        ja = top[a]
        for bb in range(n):
            jb = top[a + 1 + bb]
            s = 0.0
            if nfl == 0:
                for f in range(d):
                    v = T[ja, f + 1] * T[jb, f + 1]
                    Pe[bb, f] = v
                    s += cw[f] * v
            else:
                o = Fo[pair_field(fields, nfl, ja, jb)]
                for f in range(d):
                    v = T[ja, f + 1] * T[jb, f + 1]
                    Pe[bb, f] = v
                    s += cw[f] * o[f] * v
            PC[c0 + bb] = s
        Z = np.dot(Pe, Wc.T)
        for bb in range(n):
            for k in range(t):
                UC[c0 + bb, k] = Z[bb, k]
    return UC, PC


@njit(cache=True, fastmath=FASTMATH)
def afm_saliency_cached(indptr, indices, data, y, w0, T, H, t, mmax, loss_id, kid, K, UC, PC,
                        out):
    """iam_saliency_cached with AFM's options (iam_afm)."""
    iam_saliency_cached(indptr, indices, data, y, w0, T, H, t, mmax, loss_id, kid, K, UC, PC,
                        out, iam_afm(H, t, T.shape[1] - 1))


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def iam_saliency_cached(indptr, indices, data, y, w0, T, H, t, mmax, loss_id, kid, K, UC, PC,
                        out, iam):
    """iam_rows' SALIENCY with a pair cache: UC, PC = pair_cache(top, ...) of K features,
    kid[j] the position of feature j in ``top`` or -1.  A pair of two cached features takes its
    pre-activations and p . e from the cache; the other pairs go through one matrix product per
    chunk as in afm_rows.  The same saliency up to rounding (x_i x_k (W e) instead of
    W (x_i x_k e)).  ``iam``: see _chunk_forward (PC made with the same)."""
    n = indptr.shape[0] - 1
    d = T.shape[1] - 1
    hb, hh, _ = _head_parts(H, t, d)
    tau, cw, nfl, fields, Fo = iam
    Wc = _attention_weights(H, t, d, T.dtype)
    for ci in prange((n + _CHUNK - 1) // _CHUNK):
        r0 = ci * _CHUNK
        r1 = min(n, r0 + _CHUNK)
        nb = r1 - r0
        P = nb * (mmax * (mmax - 1) // 2)
        E = np.empty((mmax, d), T.dtype)
        Pe = np.empty((P, d), T.dtype)
        CI = np.empty(P, np.int64)  # cache row of pair q, or -(1 + its row in Pe)
        SC = np.empty(P)  # x_i x_k of a cached pair
        sh = np.empty(P)  # (cw * o_q) . e_q
        att = np.empty(P)
        dl = np.empty(P)
        lin = np.empty(nb)
        poff = np.empty(nb + 1, np.int64)
        q = 0
        nu = 0  # uncached pairs
        for r in range(r0, r1):
            b = r - r0
            a = indptr[r]
            e = indptr[r + 1]
            lin[b] = _embed_row(indices, data, a, e, T, E, np.int64(0))
            poff[b] = q
            for i in range(a, e):
                ki = kid[indices[i]]
                for k in range(i + 1, e):
                    kk = kid[indices[k]]
                    if ki >= 0 and kk >= 0:
                        c = _tri(ki, kk, K)
                        s = data[i] * data[k]
                        CI[q] = c
                        SC[q] = s
                        sh[q] = s * PC[c]
                    else:
                        acc = 0.0
                        if nfl == 0:
                            for f in range(d):
                                v = E[i - a, f] * E[k - a, f]
                                Pe[nu, f] = v
                                acc += cw[f] * v
                        else:
                            o = Fo[pair_field(fields, nfl, indices[i], indices[k])]
                            for f in range(d):
                                v = E[i - a, f] * E[k - a, f]
                                Pe[nu, f] = v
                                acc += cw[f] * o[f] * v
                        sh[q] = acc
                        CI[q] = -(1 + nu)
                        nu += 1
                    q += 1
        poff[nb] = q
        Zf = np.dot(Pe[:nu], Wc.T) if nu > 0 else np.empty((0, t), Pe.dtype)
        for b in range(nb):
            q0 = poff[b]
            q1 = poff[b + 1]
            r = r0 + b
            f = w0[0] + lin[b]
            df = lin[b]
            if q1 > q0:
                mx = -np.inf
                for qq in range(q0, q1):
                    # the cache rows are random reads from a table larger than the CPU's cache:
                    # ask for the one _AHEAD pairs on now, so the misses overlap
                    if qq + _AHEAD < q and CI[qq + _AHEAD] >= 0:
                        prefetch_row(UC, CI[qq + _AHEAD])
                    s = 0.0
                    ds = 0.0
                    c = CI[qq]
                    if c >= 0:  # W e_q = x_i x_k UC[c] ...
                        M, row, sc = UC, c, SC[qq]
                    else:  # ... or this chunk's product
                        M, row, sc = Zf, -1 - c, 1.0
                    for k in range(t):  # branch-free (ReLU signs are unpredictable)
                        zr = sc * M[row, k]
                        z = zr + hb[k]
                        g = hh[k] if z > 0.0 else 0.0
                        s += g * z
                        ds += g * zr
                    s = s / tau
                    att[qq] = s
                    dl[qq] = 2.0 * ds / tau
                    mx = max(mx, s)
                tot = _exp_shifted(att, q0, q1, mx)
                pair = 0.0
                mean = 0.0
                for qq in range(q0, q1):
                    aq = att[qq] / tot
                    att[qq] = aq
                    pair += aq * sh[qq]
                    mean += aq * dl[qq]
                f += pair
                df += 2.0 * pair  # tangent of the pair term with the attention held fixed
                for qq in range(q0, q1):
                    df += att[qq] * (dl[qq] - mean) * sh[qq]  # da_q (p . e_q)
            out[r] = loss_deriv(f, y[r], loss_id) * df
