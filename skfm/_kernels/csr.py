"""Model-agnostic CSR helpers of the trainer: gathering an epoch's rows and transposing a batch."""
import numpy as np
from numba import njit, prange

from .prefetch import prefetch, prefetch_nonzeros

#: rows ahead that gather_sizes prefetches the indptr entries of (_AHEAD_PTR), and gather_fill the
#: first nonzero (indices, data), label and weight of (_AHEAD_ROW)
_AHEAD_PTR = 32
_AHEAD_ROW = 16


@njit(cache=True, fastmath=False)
def gather_rows(src0, src1, order):
    """Rows ``order`` of the union of two sources as one CSR block in that order.

    ``src0``/``src1`` are (indptr, indices, data, y, sw) tuples; ids >= n0 (rows of src0) name
    rows of src1.  Returns (indptr, indices, data, y, sw).  Gathering once per epoch turns the
    random row accesses of a shuffled epoch into sequential ones for every later pass.  The
    trainer calls the two halves, gather_sizes and gather_fill, itself, with buffers it reuses
    from epoch to epoch."""
    m = order.shape[0]
    ip = np.empty(m + 1, np.int64)
    nnz = gather_sizes(src0, src1, order, ip)
    ind = np.empty(nnz, np.int32)
    dat = np.empty(nnz, src0[2].dtype)
    y = np.empty(m)
    sw = np.empty(m)
    gather_fill(src0, src1, order, ip, ind, dat, y, sw)
    return ip, ind, dat, y, sw


@njit(cache=True, fastmath=False, parallel=True)
def gather_sizes(src0, src1, order, ip):
    """The row pointer of gather_rows' block into ``ip`` (len(order) + 1); returns its nnz.

    The random reads of this and of gather_fill are prefetched a few rows ahead, so their cache
    misses overlap (on 200,000 shuffled Frappe-shaped rows this halves the gather's time)."""
    ip0 = src0[0]
    ip1 = src1[0]
    n0 = ip0.shape[0] - 1
    m = order.shape[0]
    for i in prange(m):
        if i + _AHEAD_PTR < m:
            ra = order[i + _AHEAD_PTR]
            if ra < n0:
                prefetch(ip0, ra)
            else:
                prefetch(ip1, ra - n0)
        r = order[i]
        if r < n0:
            ip[i + 1] = ip0[r + 1] - ip0[r]
        else:
            ip[i + 1] = ip1[r - n0 + 1] - ip1[r - n0]
    ip[0] = 0
    for i in range(m):
        ip[i + 1] += ip[i]
    return ip[m]


@njit(cache=True, inline="always")
def _prefetch_row(ip, ind, dat, y, sw, r):
    """Prefetch the first nonzero (indices, data), label and weight of row r of a source."""
    prefetch_nonzeros(ip, ind, dat, r)
    prefetch(y, r)
    prefetch(sw, r)


@njit(cache=True, fastmath=False, parallel=True)
def gather_fill(src0, src1, order, ip, ind, dat, y, sw):
    """The nonzeros, labels and weights of gather_rows' block into ``ind``, ``dat`` (at least
    ip[-1] long), ``y`` and ``sw`` (len(order) long), given its row pointer ``ip``."""
    ip0, ind0, dat0, y0, sw0 = src0
    ip1, ind1, dat1, y1, sw1 = src1
    n0 = ip0.shape[0] - 1
    m = order.shape[0]
    for i in prange(m):
        if i + _AHEAD_ROW < m:
            ra = order[i + _AHEAD_ROW]
            if ra < n0:
                _prefetch_row(ip0, ind0, dat0, y0, sw0, ra)
            else:
                _prefetch_row(ip1, ind1, dat1, y1, sw1, ra - n0)
        r = order[i]
        o = ip[i]
        if r < n0:
            a = ip0[r]
            for p in range(ip0[r + 1] - a):
                ind[o + p] = ind0[a + p]
                dat[o + p] = dat0[a + p]
            y[i] = y0[r]
            sw[i] = sw0[r]
        else:
            r -= n0
            a = ip1[r]
            for p in range(ip1[r + 1] - a):
                ind[o + p] = ind1[a + p]
                dat[o + p] = dat1[a + p]
            y[i] = y1[r]
            sw[i] = sw1[r]


@njit(cache=True, fastmath=False)
def _transpose_into(indptr, indices, data, start, B, slot, uniq, cnt, ptr, occ_b, occ_x, up):
    """transpose_batch's work, with ``up`` (the batch's nnz long) as scratch: the first pass
    notes each nonzero's feature number so that the second reads it back in order instead of
    looking the feature up again."""
    nu = 0
    a0 = indptr[start]
    for p in range(a0, indptr[start + B]):
        j = indices[p]
        u = slot[j]
        if u < 0:
            u = nu
            slot[j] = nu
            uniq[nu] = j
            cnt[nu] = 0
            nu += 1
        cnt[u] += 1
        up[p - a0] = u
    ptr[0] = 0
    for u in range(nu):
        ptr[u + 1] = ptr[u] + cnt[u]
        cnt[u] = ptr[u]  # now the fill position
    for b in range(B):
        for p in range(indptr[start + b], indptr[start + b + 1]):
            u = up[p - a0]
            o = cnt[u]
            occ_b[o] = b
            occ_x[o] = data[p]
            cnt[u] = o + 1
    for u in range(nu):
        slot[uniq[u]] = -1
    return nu


@njit(cache=True, fastmath=False)
def transpose_batch(indptr, indices, data, start, B, slot, uniq, cnt, ptr, occ_b, occ_x):
    """Rows [start, start + B) of a CSR block, transposed by a counting sort in O(nnz).

    Fills ``uniq[:nu]`` (the batch's unique features in order of first appearance) and, for each
    u < nu, its occurrences ``occ_b[ptr[u]:ptr[u+1]]`` (row within the batch, ascending) with
    values ``occ_x``.  ``slot`` (n_features,) must be -1 everywhere on entry; it is restored on
    exit.  ``cnt`` is scratch of the size of ``uniq``.  Returns nu.  The training loops get the
    same transposition, several batches at a time in parallel, from batch_transposed."""
    up = np.empty(indptr[start + B] - indptr[start], np.int32)
    return _transpose_into(indptr, indices, data, start, B, slot, uniq, cnt, ptr, occ_b, occ_x,
                           up)


#: batches that each lane of batch_transposed's parallel call transposes
BATCHES_PER_LANE = 2


#: the most nonzeros a group of batch_transposed may span, unless a single batch has more: its
#: buffers take about 36 bytes per nonzero (36 MiB here), so a few large batches on many
#: threads are transposed in smaller groups (one batch at a time at worst, as the loops did
#: before grouping) instead of in buffers larger than the epoch block
GROUP_NNZ = 1 << 20


@njit(cache=True, fastmath=False)
def transposer(indptr, batch_size, lanes, values, max_group_nnz=GROUP_NNZ):
    """Buffers of batch_transposed for an epoch block's batches of ``batch_size`` rows,
    transposed ``lanes * BATCHES_PER_LANE`` at a time, fewer where that many batches would
    span more than ``max_group_nnz`` nonzeros (at least one), with values of ``values.dtype``:
    (nu, uniq, cnt, ptr, occ_b, occ_x, up), each batch of a group at the offset of its first
    nonzero within the group (ptr: plus its number in the group)."""
    n = indptr.shape[0] - 1
    g = max(1, min(lanes * BATCHES_PER_LANE,
                   max_group_nnz // max(1, batch_capacity(indptr, batch_size))))
    span = g * batch_size
    cap = 0
    for s in range(0, n, span):
        cap = max(cap, indptr[min(n, s + span)] - indptr[s])
    return (np.empty(g, np.int64), np.empty(cap, np.int32), np.empty(cap, np.int64),
            np.empty(cap + g, np.int64), np.empty(cap, np.int32), np.empty(cap, values.dtype),
            np.empty(cap, np.int32))


@njit(cache=True, fastmath=False, parallel=True)
def _transpose_group(indptr, indices, data, first, batch_size, slots, NU, uniq, cnt, ptr, occ_b,
                     occ_x, up):
    """Batches first, first + 1, ... (as many as NU holds and the block has) into the group
    buffers; lane l transposes the batches l, l + lanes, ... of the group with ``slots[l]`` (a
    group smaller than the lanes leaves some idle)."""
    n = indptr.shape[0] - 1
    lanes = slots.shape[0]
    nb = min(NU.shape[0], (n - first * batch_size + batch_size - 1) // batch_size)
    base = indptr[first * batch_size]
    for lane in prange(lanes):
        for i in range(lane, nb, lanes):
            start = (first + i) * batch_size
            o = indptr[start] - base
            NU[i] = _transpose_into(indptr, indices, data, start, min(batch_size, n - start),
                                    slots[lane], uniq[o:], cnt[o:], ptr[o + i:], occ_b[o:],
                                    occ_x[o:], up[o:])


@njit(cache=True, fastmath=False)
def batch_transposed(indptr, indices, data, k, batch_size, slots, tp):
    """Batch k (rows [k * batch_size, (k + 1) * batch_size)) of an epoch block, transposed as
    transpose_batch does: (nu, uniq, ptr, occ_b, occ_x), views into the buffers ``tp`` of
    transposer.  ``slots`` (lanes, n_features) is -1 everywhere, as transpose_batch's slot.

    The transposition does not depend on the parameters, so the batches of a group are
    transposed together, in parallel, when the group's first batch is asked for: call this for
    k = 0, 1, 2, ... in order, and use each batch's views before asking for the next group.
    (On Frappe-shaped data the sequential transposition was a fifth of a 2-thread epoch.)  The
    result does not depend on the number of lanes."""
    NU, uniq, cnt, ptr, occ_b, occ_x, up = tp
    i = k % NU.shape[0]
    first = k - i
    if i == 0:
        _transpose_group(indptr, indices, data, first, batch_size, slots, NU, uniq, cnt, ptr,
                         occ_b, occ_x, up)
    o = indptr[k * batch_size] - indptr[first * batch_size]
    return NU[i], uniq[o:], ptr[o + i:], occ_b[o:], occ_x[o:]


#: lanes of the trainers' parallel loops over a batch's unique features (more than threads, so
#: that static scheduling splits them evenly; independent of the thread count)
LANES = 64
#: a feature's optimizer update (its parameter and moment rows), in occurrences' worth of
#: gradient work, for lane_range's cost model (a Frappe-shaped epoch's per-feature loop was
#: fastest at 8 among 0, 4, 8, 16 and 32, 2 threads)
FEATURE_COST = 8


@njit(cache=True, inline="always")
def _lane_start(lane, nu, ptr):
    target = (FEATURE_COST * nu + ptr[nu]) * lane // LANES
    lo = 0
    hi = nu
    while lo < hi:
        mid = (lo + hi) // 2
        if FEATURE_COST * mid + ptr[mid] < target:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, inline="always")
def lane_range(lane, nu, ptr):
    """Features [u0, u1) of ``lane`` (0 .. LANES - 1) of a batch transposed as transpose_batch
    does: contiguous ranges of about equal cost, feature u costing FEATURE_COST plus its
    occurrences ptr[u + 1] - ptr[u].  The features come in order of first appearance, so the
    frequent ones cluster at the front: equal numbers of features per lane gave one of two
    threads 64-74% of a Frappe-shaped batch's occurrences."""
    return _lane_start(lane, nu, ptr), _lane_start(lane + 1, nu, ptr)


#: csr_status bits
NOT_CANONICAL = 1  # a row's column indices are not strictly increasing (unsorted or duplicated)
HAS_ZEROS = 2  # an explicitly stored zero


@njit(cache=True, fastmath=False, parallel=True)
def csr_status(indptr, indices, data):
    """0 for a CSR matrix whose rows have strictly increasing column indices (sorted, no
    duplicates) and no stored zeros; else the bits NOT_CANONICAL and HAS_ZEROS of what is off."""
    n = indptr.shape[0] - 1
    bad = np.zeros(n, np.uint8)
    for r in prange(n):
        a = indptr[r]
        e = indptr[r + 1]
        b = 0
        for p in range(a + 1, e):
            if indices[p] <= indices[p - 1]:
                b = NOT_CANONICAL
                break
        for p in range(a, e):
            if data[p] == 0:
                b |= HAS_ZEROS
                break
        bad[r] = b
    out = 0
    for r in range(n):
        out |= bad[r]
    return out


@njit(cache=True, fastmath=False)
def batch_capacity(indptr, batch_size):
    """The most nonzeros of any minibatch of an epoch block (the size of a batch's buffers)."""
    n = indptr.shape[0] - 1
    cap = 0
    for start in range(0, n, batch_size):
        cap = max(cap, indptr[min(n, start + batch_size)] - indptr[start])
    return cap


@njit(cache=True, fastmath=False)
def transpose_buffers(cap):
    """(uniq, cnt, ptr, occ_b) for transpose_batch on batches of at most ``cap`` nonzeros; the
    caller adds ``occ_x`` of the dtype it transposes (values or positions)."""
    return (np.empty(cap, np.int32), np.empty(cap, np.int64), np.empty(cap + 1, np.int64),
            np.empty(cap, np.int32))
