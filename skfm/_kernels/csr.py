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


#: csr_check's bits of what is off
NOT_CANONICAL = 1  # a row's column indices are not strictly increasing (unsorted or duplicated)
HAS_ZEROS = 2  # an explicitly stored zero


BAD_INDPTR = 4  # a row whose indptr entries decrease or pass the stored entries
OUT_OF_BOUNDS = 8  # a column index outside [0, n_cols)
NON_FINITE = 16  # a NaN or infinite value
HAS_NAN = 32  # a NaN value (with NON_FINITE)


def float_bits(data):
    """(bits, exponent mask, magnitude mask) of a float32 or float64 array for csr_check: the
    values' bit patterns as integers of their size (a view, no copy).  A value is 0 when its
    magnitude bits are 0, not finite when its exponent bits are all set, NaN when its
    magnitude bits exceed the exponent mask."""
    if data.dtype == np.float32:
        return data.view(np.int32), np.int32(0x7F800000), np.int32(0x7FFFFFFF)
    if data.dtype == np.float64:
        return (data.view(np.int64), np.int64(0x7FF0000000000000),
                np.int64(0x7FFFFFFFFFFFFFFF))
    raise TypeError(f"csr_check reads float32 or float64 values, not {data.dtype}.")


#: nonzeros per task of csr_check's flat pass over the indices and values
_CHECK_CHUNK = 1 << 16


@njit(cache=True, fastmath=False)
def _min_max(a, mask):
    """(min, max) of ``a & mask`` over a non-empty array.  (A loop of its own, called on a
    slice: written inline in a prange body, Numba's loop does not vectorise, 10x slower.)"""
    lo = a[0] & mask
    hi = lo
    for p in range(a.shape[0]):
        m = a[p] & mask
        lo = min(lo, m)
        hi = max(hi, m)
    return lo, hi


@njit(cache=True, fastmath=False)
def _descents(a):
    """The number of entries of ``a`` not greater than the one before (see _min_max)."""
    d = 0
    for p in range(1, a.shape[0]):
        d += np.int64(a[p] <= a[p - 1])
    return d


@njit(cache=True, fastmath=False)
def _row_pointer(ip, indices, nnz):
    """(whether a row of the pointer slice ``ip`` runs backwards or out of [0, nnz], the
    number of its non-empty rows after the first entry whose first index does not exceed the
    entry before) (see _min_max)."""
    bad = False
    starts = 0
    for r in range(ip.shape[0] - 1):
        a = ip[r]
        e = ip[r + 1]
        if a < 0 or e < a or e > nnz:
            bad = True
        elif e > a > 0:
            starts += np.int64(indices[a] <= indices[a - 1])
    return bad, starts


@njit(cache=True, fastmath=False, parallel=True)
def csr_check(indptr, indices, bits, exp_mask, abs_mask, n_cols):
    """Every check of a CSR matrix's arrays in two parallel passes, over the row pointer and
    over the stored entries: BAD_INDPTR (alone: the entries are then not read), or the bits
    OUT_OF_BOUNDS, NON_FINITE (and HAS_NAN), NOT_CANONICAL and HAS_ZEROS of what is off (0: a
    canonical, finite, well-formed matrix).  On 1M Frappe-shaped rows (10M entries, float32)
    it takes about 4 ms on one core, where scikit-learn's finiteness check, the structure
    check and the former row-by-row canonical check took some 20 ms.

    Every test is a reduction in long flat loops (they vectorise): over the entries,
    the indices' smallest and largest; the values' magnitude bits (float_bits: 0 for a zero,
    at least the exponent mask for an infinity or NaN, more for a NaN), smallest and largest;
    and the number of entries whose index does not exceed the one before.  A row pass checks
    the row pointer and counts those entries that start a row (where a smaller index is
    expected): the rows' indices increase strictly when the two counts agree.
    ``indptr[0] == 0`` and ``indptr[-1] <= min(len(indices), len(bits))`` must hold (checked
    by the caller); every read is then within the arrays whatever they hold."""
    n = indptr.shape[0] - 1
    nnz = indptr[n]
    n_row_chunks = (n + _CHECK_CHUNK - 1) // _CHECK_CHUNK
    row_bad = np.zeros(n_row_chunks, np.bool_)
    row_starts = np.zeros(n_row_chunks, np.int64)
    for c in prange(n_row_chunks):
        a = c * _CHECK_CHUNK
        row_bad[c], row_starts[c] = _row_pointer(indptr[a:min(n, a + _CHECK_CHUNK) + 1],
                                                 indices, nnz)
    out = 0
    starts = 0
    for c in range(n_row_chunks):
        if row_bad[c]:
            return BAD_INDPTR
        starts += row_starts[c]
    n_chunks = (nnz + _CHECK_CHUNK - 1) // _CHECK_CHUNK
    lo = np.zeros(n_chunks, indices.dtype)
    hi = np.zeros(n_chunks, indices.dtype)
    mlo = np.zeros(n_chunks, bits.dtype)
    mhi = np.zeros(n_chunks, bits.dtype)
    down = np.zeros(n_chunks, np.int64)
    all_bits = indices.dtype.type(-1)
    for c in prange(n_chunks):
        a = c * _CHECK_CHUNK
        e = min(nnz, a + _CHECK_CHUNK)
        lo[c], hi[c] = _min_max(indices[a:e], all_bits)
        mlo[c], mhi[c] = _min_max(bits[a:e], abs_mask)
        down[c] = _descents(indices[max(a, 1) - 1:e])
    descents = 0
    for c in range(n_chunks):
        descents += down[c]
        if lo[c] < 0 or hi[c] >= n_cols:
            out |= OUT_OF_BOUNDS
        if mlo[c] == 0:
            out |= HAS_ZEROS
        if mhi[c] >= exp_mask:
            out |= NON_FINITE
        if mhi[c] > exp_mask:
            out |= HAS_NAN
    if descents != starts:
        out |= NOT_CANONICAL
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
