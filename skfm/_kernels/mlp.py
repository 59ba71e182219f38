"""The dense MLP tower of the neural models (NFM's head above the Bi-Interaction layer, DeepFM's
deep part).

The tower's parameters are a slice of a flat float64 vector ``head``, described by a ``layout``
(L + 1, 6) int64 table (``_nfm.nfm_layout``): row 0 is the input z_0 (its size and column
offset), row l = 1..L layer l (its size n_l, its column offset in the activation buffers and the
offsets of W_l (n_l, n_{l-1}) row-major, b_l, gamma_l, beta_l in ``head``, -1 when absent); the
output weights h (n_L) are at ``offh``:

    z_l = dropout(act(BN(W_l z_{l-1} + b_l)), p_hid),   tower(z_0) = h . z_L

(L = 0, NFM-0: tower(z_0) = h . z_0.)  The model fills z_0 (NFM: the Bi-Interaction vector;
DeepFM: the field embeddings) or, with ``ext1``, layer 1's product W_1 z_0 itself (DeepFM computes
it per feature and never builds z_0), and a per-row base value (the rest of f).  Without batch
norm no row depends on another: a block of _MM rows (block_buffers, block_pass) runs its forward
pass, loss derivative and backward pass back to back in block-local buffers that stay in cache,
its products as BLAS matrix products; with batch norm, forward_layers and backward_layers go layer
by layer over the whole batch (still one product per fixed block of _MM rows).  The head's
gradients are summed within a block, then over the blocks in block order (_sum_blocks), so
results do not depend on the number of threads.  Dropout masks are a pure function of (key, row,
layer, unit) through the counter-based RNG.  tangent_layers pushes candidates and their tangents
along x through the layers for the closed-form SMFM selectors (selector_tasks, selector_buffers,
draw_block: their common frame), and pick_best keeps each parent's most salient candidate.
"""
import math

import numpy as np
from numba import njit, prange

from . import FASTMATH
from .losses import loss_deriv, loss_value, sigmoid
from .mixup import step_ahead
from .rng import stream_key, uniform

IDENTITY = 0  # activations
RELU = 1
TANH = 2
LOGISTIC = 3

SIZE = 0  # columns of a layout
ZOFF = 1
OFFW = 2
OFFB = 3
OFFG = 4
OFFBE = 5

BN_EPS = 1e-5
TRAIN = 0  # modes of a batch: training, decision f(x), saliency S(x, y) (inference mode)
DECIDE = 1
SALIENCY = 2
_CHUNK = 1024  # rows per batch of prediction and saliency
_MM = 128  # rows per matrix product of the dense layers


@njit(cache=True, inline="always")
def _act(x, act):
    if act == RELU:
        return x if x > 0.0 else 0.0
    if act == TANH:
        return math.tanh(x)
    if act == LOGISTIC:
        return sigmoid(x)
    return x


@njit(cache=True, inline="always")
def _act_grad(a, act):
    """Derivative of the activation expressed through its output a."""
    if act == RELU:
        return 1.0 if a > 0.0 else 0.0
    if act == TANH:
        return 1.0 - a * a
    if act == LOGISTIC:
        return a * (1.0 - a)
    return 1.0


@njit(cache=True, inline="always")
def _dropout_scale(drop, st, p):
    """Inverted-dropout scale of one unit: 0 with probability p, else 1 / (1 - p) (one draw
    from the stream ``st``); 1 without dropout."""
    if not drop:
        return 1.0
    return 0.0 if uniform(st) < p else 1.0 / (1.0 - p)


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _act_dropout(pre, act, drop, st, p, A, M, Z, b, c):
    """Unit c of row b after its pre-activation: A = act(pre), M = dropout scale, Z = A M."""
    v = _act(pre, act)
    m = _dropout_scale(drop, st, p)
    A[b, c] = v
    M[b, c] = m
    Z[b, c] = v * m


@njit(cache=True, fastmath=False)
def _width(layout):
    """Columns of the activation buffers: z_0 and every layer's."""
    L = layout.shape[0] - 1
    return layout[L, ZOFF] + layout[L, SIZE]


@njit(cache=True, fastmath=False)
def _sum_blocks(GHP, nch, GH):
    """GH = sum of the first nch rows of GHP, in block order."""
    for j in range(GH.shape[0]):
        acc = 0.0
        for c in range(nch):
            acc += GHP[c, j]
        GH[j] = acc


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def _dense_forward(Z, zp, npv, XH, zl, n, head, oW, ob, B):
    """XH[b, zl:zl + n] = W Z[b, zp:zp + npv] + bias for rows b < B: one BLAS matrix product per
    block of _MM rows (blocks fixed by B alone, so results do not depend on the thread count)."""
    Wl = head[oW:oW + n * npv].reshape((n, npv))
    for c in prange((B + _MM - 1) // _MM):
        a = c * _MM
        e = min(B, a + _MM)
        out = np.dot(np.ascontiguousarray(Z[a:e, zp:zp + npv]), Wl.T)
        for b in range(e - a):
            for i in range(n):
                XH[a + b, zl + i] = out[b, i] + head[ob + i]


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def _dense_backward(DZ, Z, zl, n, zp, npv, head, oW, GH, want_head, B):
    """Given DZ[:, zl:zl + n] = dObj/d(pre-activation) of a dense layer: DZ[:, zp:zp + npv] =
    dObj/d(its input) and, with ``want_head``, GH's block of W = sum_b DZ_b^T Z_b, reduced over the
    row blocks in block order."""
    Wl = head[oW:oW + n * npv].reshape((n, npv))
    nch = (B + _MM - 1) // _MM
    part = np.empty((nch if want_head else 0, n, npv))
    for c in prange(nch):
        a = c * _MM
        e = min(B, a + _MM)
        du = np.ascontiguousarray(DZ[a:e, zl:zl + n])
        if want_head:
            part[c] = np.dot(du.T, np.ascontiguousarray(Z[a:e, zp:zp + npv]))
        DZ[a:e, zp:zp + npv] = np.dot(du, Wl)
    if want_head:
        for i in prange(n):
            for k in range(npv):
                acc = 0.0
                for c in range(nch):
                    acc += part[c, i, k]
                GH[oW + i * npv + k] = acc


@njit(cache=True, fastmath=False)
def block_buffers(c, B, layout):
    """(a, m, Zb, Ab, Mb, DZ): block c of a batch of B rows is rows a .. a + m - 1 (a = c _MM);
    its layer buffers (m, width) for block_forward / block_backward."""
    a = c * _MM
    m = min(B, a + _MM) - a
    W = layout[-1, ZOFF] + layout[-1, SIZE]
    return a, m, np.empty((m, W)), np.empty((m, W)), np.empty((m, W)), np.empty((m, W))


@njit(cache=True, fastmath=FASTMATH)
def block_forward(Zb, Ab, Mb, head, layout, act, p_hid, key, row0, st, EXT, ext1):
    """Layers 1..L of the rows of a block (Zb, Ab, Mb: (m, width)): Ab = activations before
    dropout, Mb = dropout scales, Zb = layer outputs.  The input is Zb's z_0 columns, or with
    ``ext1`` the model's own first product EXT (m, n_1) = W_1 z_0 (no bias; z_0 then need not
    be in the buffers).  Dropout when p_hid > 0 (stream (key, row0 + i, l) for row i of the
    block, layer l)."""
    m = Zb.shape[0]
    L = layout.shape[0] - 1
    drop_h = p_hid > 0.0
    for l in range(1, L + 1):
        n = layout[l, SIZE]
        zl = layout[l, ZOFF]
        npv = layout[l - 1, SIZE]
        zp = layout[l - 1, ZOFF]
        ob = layout[l, OFFB]
        if ext1 and l == 1:
            out = np.ascontiguousarray(EXT)
        else:
            Wl = head[layout[l, OFFW]:layout[l, OFFW] + n * npv].reshape((n, npv))
            out = np.dot(np.ascontiguousarray(Zb[:, zp:zp + npv]), Wl.T)
        # views (bl[u], ai[u]), not head[ob + u] or Ab[i, zl + u]: a runtime offset inside an
        # index keeps LLVM from vectorising the loop (measured 10x slower in AFM's pair loop)
        bl = head[ob:ob + n]
        if act == RELU and not drop_h:  # branch-free: the sign of pre is unpredictable
            for i in range(m):
                ai = Ab[i, zl:zl + n]
                mi = Mb[i, zl:zl + n]
                zi = Zb[i, zl:zl + n]
                for u in range(n):
                    pre = out[i, u] + bl[u]
                    v = pre if pre > 0.0 else 0.0
                    ai[u] = v
                    mi[u] = 1.0
                    zi[u] = v
            continue
        for i in range(m):
            if drop_h:
                st[0] = stream_key(key, row0 + i, l)
            for u in range(n):
                _act_dropout(out[i, u] + bl[u], act, drop_h, st, p_hid, Ab, Mb, Zb, i, zl + u)


@njit(cache=True, fastmath=FASTMATH)
def block_output(Zb, DZ, row0, start, B, BASE, y, sw, head, layout, offh, loss_id, mode, train,
                 F, G, gh):
    """f = BASE[i] + h . z_L for the block's rows i (rows row0 + i of the batch, start + row0 +
    i of the epoch block) into F[row0 + i]; unless mode == DECIDE also G[row0 + i] = dObj/df
    (training: sw / B dl/df; else dl/df), DZ[i, z_L] = G h and, training, gh's block of h
    += G z_L.  Returns the block's sum of sw l(f, y) (training; else 0)."""
    L = layout.shape[0] - 1
    zL = layout[L, ZOFF]
    nL = layout[L, SIZE]
    lp = 0.0
    hv = head[offh:offh + nL]
    ghv = gh[offh:offh + nL]
    for i in range(Zb.shape[0]):
        r = start + row0 + i
        f = BASE[i]
        zi = Zb[i, zL:zL + nL]
        for k in range(nL):
            f += hv[k] * zi[k]
        F[row0 + i] = f
        if mode == DECIDE:
            continue
        if train:
            lp += sw[r] * loss_value(f, y[r], loss_id)
            g = sw[r] / B * loss_deriv(f, y[r], loss_id)
        else:
            g = loss_deriv(f, y[r], loss_id)
        G[row0 + i] = g
        dzi = DZ[i, zL:zL + nL]
        for k in range(nL):
            dzi[k] = g * hv[k]
        if train:
            for k in range(nL):
                ghv[k] += g * zi[k]
    return lp


@njit(cache=True, fastmath=FASTMATH)
def block_backward(DZ, Zb, Ab, Mb, head, layout, act, train, gh, ext1):
    """Backward pass of block_forward: given DZ[:, z_L] = dObj/dz_L, DZ[:, :n_0] = dObj/dz_0
    and, training, gh's blocks of W_l and b_l += the block's gradients; with ``ext1`` it stops
    at DZ[:, z_1] = dObj/d(W_1 z_0) (and b_1's gradient): W_1's gradient is the model's."""
    m = Zb.shape[0]
    L = layout.shape[0] - 1
    for l in range(L, 0, -1):
        n = layout[l, SIZE]
        zl = layout[l, ZOFF]
        npv = layout[l - 1, SIZE]
        zp = layout[l - 1, ZOFF]
        oW = layout[l, OFFW]
        ob = layout[l, OFFB]
        Wl = head[oW:oW + n * npv].reshape((n, npv))
        for i in range(m):
            dzi = DZ[i, zl:zl + n]
            mi = Mb[i, zl:zl + n]
            ai = Ab[i, zl:zl + n]
            if act == RELU:  # branch-free
                for u in range(n):
                    g = dzi[u] * mi[u]
                    dzi[u] = g if ai[u] > 0.0 else 0.0
            else:
                for u in range(n):
                    dzi[u] *= mi[u] * _act_grad(ai[u], act)
        du = np.ascontiguousarray(DZ[:, zl:zl + n])
        if train:
            gb = gh[ob:ob + n]
            for i in range(m):
                for u in range(n):
                    gb[u] += du[i, u]
        if ext1 and l == 1:
            break
        if train:
            gW = np.dot(du.T, np.ascontiguousarray(Zb[:, zp:zp + npv]))
            for u in range(n):
                gWu = gh[oW + u * npv:oW + (u + 1) * npv]
                for k in range(npv):
                    gWu[k] += gW[u, k]
        DZ[:, zp:zp + npv] = np.dot(du, Wl)


@njit(cache=True, fastmath=FASTMATH)
def block_pass(c, a, Zb, Ab, Mb, DZ, start, B, BASE, y, sw, head, layout, offh, act, p_hid, key,
               st, EXT, ext1, loss_id, mode, F, G, LP, GHP):
    """Block c of a batch (rows a .. a + m - 1, buffers of block_buffers) once the model has
    filled its input (Zb's z_0 columns, or EXT with ``ext1``) and BASE: block_forward and
    block_output, then unless mode == DECIDE block_backward (DZ[:, :n_0] = dObj/dz_0, or with
    ``ext1`` DZ[:, z_1] = dObj/d(W_1 z_0)).  TRAIN: LP[c] = the block's sum of sw l(f, y) and
    GHP[c] = its dObj/dhead (zeroed first; W_1's block left at zero with ``ext1``); inference
    modes leave GHP's one row alone (p_hid = 0)."""
    train = mode == TRAIN
    gh = GHP[c if train else 0]
    if train:
        gh[:] = 0.0
    block_forward(Zb, Ab, Mb, head, layout, act, p_hid, key, a, st, EXT, ext1)
    lp = block_output(Zb, DZ, a, start, B, BASE, y, sw, head, layout, offh, loss_id, mode, train,
                      F, G, gh)
    if mode == DECIDE:
        return
    if train:
        LP[c] = lp
    block_backward(DZ, Zb, Ab, Mb, head, layout, act, train, gh, ext1)


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def forward_layers(B, head, layout, offh, bn_mean, bn_var, train, key, p_hid, act, BASE, Z, A,
                   XH, M, MU, VAR, F, ext1):
    """The tower with batch norm, layer by layer over rows b < B (Z[:, :n_0] = z_0 filled, or
    with ``ext1`` XH[:, z_1] = W_1 z_0 + b_1 filled by the model): F[b] = BASE[b] + h . z_L.
    Keeps what backward_layers needs: A (activations before dropout), M (dropout scales), Z
    (layer outputs), XH (normalised pre-activations), MU/VAR (the BN statistics used).
    ``train``: dropout and BN batch statistics."""
    L = layout.shape[0] - 1
    drop_h = train and p_hid > 0.0
    for l in range(1, L + 1):
        n = layout[l, SIZE]
        zl = layout[l, ZOFF]
        og = layout[l, OFFG]
        obe = layout[l, OFFBE]
        if not (ext1 and l == 1):
            _dense_forward(Z, layout[l - 1, ZOFF], layout[l - 1, SIZE], XH, zl, n, head,
                           layout[l, OFFW], layout[l, OFFB], B)
        if train:
            for i in prange(n):
                mu = 0.0
                for b in range(B):
                    mu += XH[b, zl + i]
                mu /= B
                var = 0.0
                for b in range(B):
                    dv = XH[b, zl + i] - mu
                    var += dv * dv
                MU[zl + i] = mu
                VAR[zl + i] = var / B
        else:
            for i in range(n):
                MU[zl + i] = bn_mean[zl + i]
                VAR[zl + i] = bn_var[zl + i]
        for c in prange((B + _MM - 1) // _MM):
            st = np.zeros(1, np.uint64)
            for b in range(c * _MM, min(B, (c + 1) * _MM)):
                if drop_h:
                    st[0] = stream_key(key, b, l)
                for i in range(n):
                    xh = (XH[b, zl + i] - MU[zl + i]) / math.sqrt(VAR[zl + i] + BN_EPS)
                    XH[b, zl + i] = xh
                    pre = head[og + i] * xh + head[obe + i]
                    _act_dropout(pre, act, drop_h, st, p_hid, A, M, Z, b, zl + i)
    zL = layout[L, ZOFF]
    nL = layout[L, SIZE]
    for b in prange(B):
        f = BASE[b]
        for k in range(nL):
            f += head[offh + k] * Z[b, zL + k]
        F[b] = f



@njit(cache=True, inline="always")
def batch_output(F, G, y, sw, start, B, loss_id, mode):
    """After forward_layers, rows b < B (rows start + b of the epoch block): G[b] = dObj/df_b
    (TRAIN: sw_b / B dl/df_b; else dl/df_b).  Returns (TRAIN) sum_b sw_b l(f_b, y_b).  Inlined
    into its caller, as the models' loops were: compiled on its own, LLVM vectorises the squared
    loss's sum (another summation order) where inside the callers it does not."""
    loss = 0.0
    for b in range(B):
        r = start + b
        if mode == TRAIN:
            loss += sw[r] * loss_value(F[b], y[r], loss_id)
            G[b] = sw[r] / B * loss_deriv(F[b], y[r], loss_id)
        else:
            G[b] = loss_deriv(F[b], y[r], loss_id)
    return loss


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def backward_layers(B, head, layout, offh, train, act, G, Z, A, XH, M, VAR, DZ, GH, want_head,
                    ext1):
    """Backward pass of forward_layers.  Given G[b] = dObj/df_b: DZ[:, :n_0] = dObj/dz_0 (with
    ``ext1``: it stops at DZ[:, z_1] = dObj/d(W_1 z_0 + b_1), W_1's gradient is the model's)
    and, with ``want_head``, GH = dObj/dhead (every other entry written).  BN in training
    couples the rows of a layer through the batch statistics (standard BN backward)."""
    L = layout.shape[0] - 1
    zL = layout[L, ZOFF]
    nL = layout[L, SIZE]
    for b in prange(B):
        for k in range(nL):
            DZ[b, zL + k] = G[b] * head[offh + k]
    if want_head:
        for k in prange(nL):
            acc = 0.0
            for b in range(B):
                acc += G[b] * Z[b, zL + k]
            GH[offh + k] = acc
    for l in range(L, 0, -1):
        n = layout[l, SIZE]
        zl = layout[l, ZOFF]
        og = layout[l, OFFG]
        for b in prange(B):
            if act == RELU:  # branch-free
                for i in range(n):
                    g = DZ[b, zl + i] * M[b, zl + i]
                    DZ[b, zl + i] = g if A[b, zl + i] > 0.0 else 0.0
            else:
                for i in range(n):
                    DZ[b, zl + i] = DZ[b, zl + i] * M[b, zl + i] * _act_grad(A[b, zl + i], act)
        for i in prange(n):
            sg = 0.0
            sb = 0.0
            for b in range(B):
                dp = DZ[b, zl + i]
                sb += dp
                sg += dp * XH[b, zl + i]
            if want_head:
                GH[og + i] = sg
                GH[layout[l, OFFBE] + i] = sb
            c = head[og + i] / math.sqrt(VAR[zl + i] + BN_EPS)
            if train:
                mb = sb / B
                mg = sg / B
                for b in range(B):
                    DZ[b, zl + i] = c * (DZ[b, zl + i] - mb - XH[b, zl + i] * mg)
            else:
                for b in range(B):
                    DZ[b, zl + i] = c * DZ[b, zl + i]
        if want_head:
            for i in prange(n):
                gb = 0.0
                for b in range(B):
                    gb += DZ[b, zl + i]
                GH[layout[l, OFFB] + i] = gb
        if not (ext1 and l == 1):
            _dense_backward(DZ, Z, zl, n, layout[l - 1, ZOFF], layout[l - 1, SIZE], head,
                            layout[l, OFFW], GH, want_head, B)


@njit(cache=True, fastmath=FASTMATH)
def bn_update(layout, bn_mean, bn_var, MU, VAR, momentum, B):
    """Running BN statistics after a training step on B rows (unbiased variance, as torch)."""
    unb = B / (B - 1.0) if B > 1 else 1.0
    L = layout.shape[0] - 1
    for c in range(layout[1, ZOFF], layout[L, ZOFF] + layout[L, SIZE]):
        bn_mean[c] = (1.0 - momentum) * bn_mean[c] + momentum * MU[c]
        bn_var[c] = (1.0 - momentum) * bn_var[c] + momentum * VAR[c] * unb


@njit(cache=True, inline="always")
def _affine_maps(head, layout, bn, bn_mean, bn_var, width):
    SC = np.ones(width)
    SH = np.zeros(width)
    for l in range(1, layout.shape[0]):
        for u in range(layout[l, SIZE]):
            z = layout[l, ZOFF] + u
            bias = head[layout[l, OFFB] + u]
            if bn:
                SC[z] = head[layout[l, OFFG] + u] / math.sqrt(bn_var[z] + BN_EPS)
                SH[z] = SC[z] * (bias - bn_mean[z]) + head[layout[l, OFFBE] + u]
            else:
                SH[z] = bias
    return SC, SH


@njit(cache=True, fastmath=False)
def affine_maps(head, layout, bn, bn_mean, bn_var, width):
    """(SC, SH): each hidden unit's inference-mode normalisation and bias as one affine map of
    W_l z_{l-1}: pre = SC out + SH (DeepFM's selector)."""
    return _affine_maps(head, layout, bn, bn_mean, bn_var, width)


@njit(cache=True, fastmath=FASTMATH)
def affine_maps_contracted(head, layout, bn, bn_mean, bn_var, width):
    """affine_maps with the fast-math flags, so that with batch norm SH = SC (b - mean) + beta
    may be one fused multiply-add (it is on x86 with FMA): NFM's selector has always computed
    it so, and keeps its results bit for bit."""
    return _affine_maps(head, layout, bn, bn_mean, bn_var, width)


_SEL_BLOCKS = 8  # blocks of candidates per parallel task of a closed-form selector


@njit(cache=True, fastmath=False)
def selector_tasks(m, p):
    """(per, n_tasks): a closed-form selector's m first parents in blocks of per parents (about
    _MM candidates), _SEL_BLOCKS blocks per parallel task (fixed: results do not depend on the
    number of threads)."""
    per = max(1, _MM // p)
    return per, ((m + per - 1) // per + _SEL_BLOCKS - 1) // _SEL_BLOCKS


@njit(cache=True, fastmath=False)
def selector_buffers(task, m, p, bits):
    """A selector task's first parents [first, last) and buffers: (per, mb, first, last, PR,
    LM, YM, st, keys, pos, RP, RL): per parents (mb = per p candidates) a block, the candidates'
    partners, lams and mixed labels, a random stream, a hash table of 2**bits slots (fm's
    _table_*) and the ring of candidates drawn ahead (mixup.start_ahead)."""
    per = selector_tasks(m, p)[0]
    first = task * _SEL_BLOCKS * per
    return (per, per * p, first, min(m, first + _SEL_BLOCKS * per), np.empty(per * p, np.int64),
            np.empty(per * p), np.empty(per * p), np.zeros(1, np.uint64),
            np.full(1 << bits, -1, np.int64), np.empty(1 << bits, np.int64),
            np.empty((3, p), np.int64), np.empty((3, p)))


@njit(cache=True, inline="always")
def draw_block(i0, i1, last, seed, epoch, p, n, a, b, st, RP, RL, R, parents, indptr, indices,
               data, y, PR, LM, YM):
    """The candidates of first parents i0 .. i1 - 1 (their candidate j = (i - i0) p + k) from
    the ring (mixup.step_ahead draws and prefetches ahead): PR, LM and the mixed label YM."""
    for i in range(i0, i1):
        step_ahead(i, last, seed, epoch, p, n, a, b, st, RP, RL, R, parents, indptr, indices,
                   data)
        for k in range(p):
            j = (i - i0) * p + k
            r2 = RP[i % 3, k]
            lam = RL[i % 3, k]
            PR[j] = r2
            LM[j] = lam
            YM[j] = lam * y[parents[i]] + (1.0 - lam) * y[r2]


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _tangent_act(Zl, mb, mc, V, toff, tw, scl, shl, act):
    """Values (rows j of V) and tangents (rows toff + j) of mc candidates' pre-affine
    pre-activations through the affine map and the activation into Zl[j], Zl[mb + j]."""
    for j in range(mc):
        zj = Zl[j]
        dzj = Zl[mb + j]
        vj = V[j]
        tj = V[toff + j]
        if act == RELU:  # branch-free: the sign of pre is unpredictable
            for u in range(zj.shape[0]):
                pre = scl[u] * vj[u] + shl[u]
                up = pre > 0.0
                zj[u] = pre if up else 0.0
                tan = (tw * scl[u]) * tj[u]
                dzj[u] = tan if up else 0.0
        else:
            for u in range(zj.shape[0]):
                pre = scl[u] * vj[u] + shl[u]
                v = _act(pre, act)
                zj[u] = v
                dzj[u] = _act_grad(v, act) * (tw * scl[u]) * tj[u]


@njit(cache=True, fastmath=FASTMATH, inline="always")
def layer_block(ZZ, mb, l, layout):
    """Layer l's (2 mb, n_l) block of a tangent_layers buffer ZZ (flat, 2 mb width long): rows
    0 .. mb - 1 the candidates' values, mb .. 2 mb - 1 their tangents, contiguous, so a layer's
    values and tangents are one matrix product's operand without a copy."""
    zl = layout[l, ZOFF]
    return ZZ[2 * mb * zl:2 * mb * (zl + layout[l, SIZE])].reshape((2 * mb, layout[l, SIZE]))


@njit(cache=True, fastmath=FASTMATH)
def tangent_layers(ZZ, mb, mc, OUT, tw, head, layout, SC, SH, act):
    """Layers 1..L of mc <= mb candidates in inference mode, their values and tangents along x
    (the directional derivative d/dt at x) into ZZ (layer_block), given OUT (mc, n_1) = W_1 z_0
    (no bias) whose tangent is tw OUT (z_0 homogeneous of degree tw in x); each further layer
    is one product for values and tangents together, in the dtype of ZZ, OUT and head.  (SC,
    SH): affine_maps."""
    for l in range(1, layout.shape[0]):
        nl = layout[l, SIZE]
        zl = layout[l, ZOFF]
        Zl = layer_block(ZZ, mb, l, layout)
        if l == 1:
            _tangent_act(Zl, mb, mc, OUT, 0, tw, SC[zl:zl + nl], SH[zl:zl + nl], act)
        else:
            npv = layout[l - 1, SIZE]
            oW = layout[l, OFFW]
            both = np.dot(layer_block(ZZ, mb, l - 1, layout), head[oW:oW + nl * npv].reshape(
                (nl, npv)).T)
            _tangent_act(Zl, mb, mc, both, mb, 1.0, SC[zl:zl + nl], SH[zl:zl + nl], act)


@njit(cache=True, fastmath=FASTMATH)
def pick_best(ZZ, mb, i0, i1, p, BV, BT, YM, PR, LM, head, layout, offh, loss_id, partners,
              lams):
    """After tangent_layers: for first parents i0 .. i1 - 1, candidate j = (i - i0) p + k has
    f = BV[j] + h . z_L with tangent BT[j] + h . dz_L and saliency dl(f, YM[j])/df times the
    tangent; partners[i], lams[i] = PR, LM of the parent's most salient candidate (the first
    one on ties)."""
    L = layout.shape[0] - 1
    ZL = layer_block(ZZ, mb, L, layout)
    hv = head[offh:offh + layout[L, SIZE]]
    for i in range(i0, i1):
        best = -np.inf
        kb = -1
        for k in range(p):
            j = (i - i0) * p + k
            f = BV[j]
            df = BT[j]
            zj = ZL[j]
            dzj = ZL[mb + j]
            for u in range(hv.shape[0]):
                f += hv[u] * zj[u]
                df += hv[u] * dzj[u]
            sal = loss_deriv(f, YM[j], loss_id) * df
            if kb < 0 or sal > best:
                best = sal
                kb = j
        partners[i] = PR[kb]
        lams[i] = LM[kb]
