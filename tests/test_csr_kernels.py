"""The trainer's batch transposition (skfm._kernels.csr) against a plain Python transposition.

A batch of rows [k B, (k + 1) B) of a CSR block, transposed: its unique features in order of
first appearance and, per feature, the rows (within the batch, ascending) where it occurs with
their values.  The expected result is built with a dict and lists, row by row.
"""
import numba
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skfm._kernels import csr as kcsr
from skfm._kernels import fm as kfm
from skfm._kernels import skeleton
from skfm import _trainer as trainer
from skfm._trainer import feature_slots, readonly

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def naive_transpose(X, start, B):
    """(features in order of first appearance, {feature: [(row in batch, value), ...]})."""
    order, occ = [], {}
    for b in range(B):
        row = X[start + b]
        for j, x in zip(row.indices, row.data):
            if j not in occ:
                order.append(j)
                occ[j] = []
            occ[j].append((b, x))
    return order, occ


def random_block(seed, n_rows, n_features, max_nnz, dtype):
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n_rows):
        # skewed features, as in real data: a few frequent ones and a long tail
        k = rng.integers(0, max_nnz + 1)
        cols = np.unique(np.minimum(rng.zipf(1.3, k) - 1, n_features - 1))
        rows.append(cols)
    indptr = np.zeros(n_rows + 1, np.int64)
    indptr[1:] = np.cumsum([len(r) for r in rows])
    indices = (np.concatenate(rows) if rows else np.empty(0)).astype(np.int32)
    data = rng.uniform(0.5, 2.0, indices.shape[0]).astype(dtype)
    return sp.csr_matrix((data, indices, indptr), shape=(n_rows, n_features))


@SETTINGS
@given(seed=st.integers(0, 2**31), n_rows=st.integers(1, 60), n_features=st.integers(1, 40),
       max_nnz=st.integers(0, 8), batch_size=st.integers(1, 17), lanes=st.integers(1, 4),
       positions=st.booleans(), group_nnz=st.sampled_from([None, 1, 9, 40]))
def test_batch_transposed_equals_naive_transposition(seed, n_rows, n_features, max_nnz,
                                                     batch_size, lanes, positions, group_nnz):
    """Every batch of a block, asked for in order, equals the naive transposition (AFM transposes
    the nonzeros' positions, int64, instead of their values); the lanes' feature maps are all -1
    again afterwards.  With a small ``max_group_nnz`` the groups hold fewer batches than
    2 x lanes (one when a single batch exceeds it)."""
    X = random_block(seed, n_rows, n_features, max_nnz, np.float32)
    ip, ind = readonly(X.indptr.astype(np.int64)), readonly(X.indices)
    vals = np.arange(X.nnz, dtype=np.int64) if positions else readonly(X.data)
    slots = np.full((lanes, n_features), -1, np.int32)
    if group_nnz is None:
        tp = kcsr.transposer(ip, batch_size, lanes, vals)
        g = 2 * lanes if X.nnz <= kcsr.GROUP_NNZ else None
    else:
        tp = kcsr.transposer(ip, batch_size, lanes, vals, group_nnz)
        most = max(np.diff(X.indptr[::batch_size]).max(initial=0),
                   X.indptr[-1] - X.indptr[(n_rows - 1) // batch_size * batch_size])
        g = max(1, min(2 * lanes, group_nnz // max(1, most)))
    assert tp[0].shape[0] == g
    for k, start in enumerate(range(0, n_rows, batch_size)):
        B = min(batch_size, n_rows - start)
        nu, uniq, ptr, occ_b, occ_x = kcsr.batch_transposed(
            ip, ind, vals, k, batch_size, slots, tp)
        order, occ = naive_transpose(X, start, B)
        assert list(uniq[:nu]) == order
        for u, j in enumerate(order):
            got = list(zip(occ_b[ptr[u]:ptr[u + 1]], occ_x[ptr[u]:ptr[u + 1]]))
            if positions:  # position p of the block holds the value X.data[p]
                got = [(b, X.data[p]) for b, p in got]
            assert got == occ[j]
    assert (slots == -1).all()


@SETTINGS
@given(seed=st.integers(0, 2**31), n_rows=st.integers(1, 300), n_features=st.integers(1, 200),
       max_nnz=st.integers(0, 12))
def test_lane_range_partitions_features_in_balanced_contiguous_ranges(
        seed, n_rows, n_features, max_nnz):
    """The lanes' ranges tile [0, nu) in order, and no lane costs more than an equal share of
    the batch's cost plus one feature's (cost of u: FEATURE_COST + its occurrences)."""
    X = random_block(seed, n_rows, n_features, max_nnz, np.float64)
    ip = X.indptr.astype(np.int64)
    uniq, cnt, ptr, occ_b = kcsr.transpose_buffers(max(1, X.nnz))
    occ_x = np.empty(max(1, X.nnz))
    slot = np.full(n_features, -1, np.int32)
    nu = kcsr.transpose_batch(ip, X.indices, X.data, 0, n_rows, slot, uniq, cnt, ptr, occ_b,
                              occ_x)
    cost = kcsr.FEATURE_COST + np.diff(ptr[:nu + 1])
    share = cost.sum() / kcsr.LANES
    end = 0
    for lane in range(kcsr.LANES):
        u0, u1 = kcsr.lane_range(lane, nu, ptr)  # njit-compiled; callable from Python
        assert u0 == end and u0 <= u1
        end = u1
        assert cost[u0:u1].sum() <= share + 1 + (cost.max() if nu else 0)
    assert end == nu


def test_fm_train_epoch_is_the_same_for_any_number_of_lanes():
    """FM on the minibatch skeleton with 1, 2, 3 and 5 transposition lanes (several batch
    groups, a short last batch): bit-identical parameters and losses."""
    X = random_block(7, 700, 50, 9, np.float32)
    rng = np.random.default_rng(0)
    y = readonly(rng.integers(0, 2, X.shape[0]).astype(np.float64))
    sw = readonly(np.ones(X.shape[0]))
    ip, ind, dat = (readonly(a) for a in (X.indptr.astype(np.int64), X.indices, X.data))
    T0 = rng.normal(0, 0.1, (50, 5)).astype(np.float32)
    results = []
    for lanes in (1, 2, 3, 5):
        T, w0 = T0.copy(), np.zeros(1)
        stT, st0 = np.zeros((2,) + T.shape, np.float32), np.zeros((2, 1))
        slots = np.full((lanes, 50), -1, np.int32)
        out = skeleton.train_epoch(ip, ind, dat, y, sw, 64, w0, T, kfm.NO_H, st0, stT,
                                   kfm.NO_STATE_H, 2, 1e-2, 0.9, 0.999, 1e-8, 0, 0, 1e-4, slots,
                                   kfm.SPEC)
        results.append((out, T, w0))
        assert out[1:] == (11, 0) and (slots == -1).all()
    for out, T, w0 in results[1:]:
        assert out == results[0][0]
        np.testing.assert_array_equal(T, results[0][1])
        np.testing.assert_array_equal(w0, results[0][2])
    assert not np.array_equal(results[0][1], T0)  # it trained


def test_feature_slots_lanes_follow_threads_within_the_memory_budget(monkeypatch):
    """A lane per thread, as far as (lanes, n_features) int32 fits within max(budget, an eighth of
    the model's bytes), and no more than the epoch's batches; never fewer than one lane."""
    threads = numba.config.NUMBA_NUM_THREADS
    s = feature_slots(100, -1, 0)
    assert s.shape == (threads, 100) and s.dtype == np.int32 and (s == -1).all()
    assert feature_slots(100, 1, 0).shape == (1, 100)
    assert feature_slots(100, -1, 0, n_batches=1).shape == (1, 100)
    assert feature_slots(100, -1, 0, n_batches=0).shape == (1, 100)
    monkeypatch.setattr(trainer, "_SLOTS_BUDGET", 4000)
    assert feature_slots(1000, -1, 0).shape == (1, 1000)  # a lane takes the whole budget
    assert feature_slots(2000, -1, 0).shape == (1, 2000)  # over it: still one lane
    assert feature_slots(1000, -1, 8 * 8000).shape == (min(2, threads), 1000)  # model / 8


def test_every_kernel_states_its_fastmath_flags():
    """A kernel compiled without an explicit ``fastmath`` inherits its first caller's flags and
    Numba's cache keeps that version for every caller: the model would depend on which estimator
    (or test) compiled a shared helper first.  Every non-inlined kernel must state it."""
    import importlib
    import pkgutil

    import skfm._kernels as pkg
    from numba.core.registry import CPUDispatcher

    missing = []
    for info in pkgutil.iter_modules(pkg.__path__):
        mod = importlib.import_module(f"skfm._kernels.{info.name}")
        for name, obj in vars(mod).items():
            if (isinstance(obj, CPUDispatcher) and obj.__module__ == mod.__name__
                    and obj.targetoptions.get("inline", "never") != "always"
                    and "fastmath" not in obj.targetoptions):
                missing.append(f"{info.name}.{name}")
    assert not missing, missing


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_estimators_are_the_same_for_any_number_of_transposition_lanes(monkeypatch):
    """FM, SMFM, NFM and AFM (with dropout) fitted with 1, 2, 3 and 7 lanes of feature maps
    (n_jobs only reaches as many lanes as the machine has threads): bit-identical models."""
    from skfm import AFMClassifier, FMClassifier, NFMClassifier
    from skfm.datasets import make_frappe_like

    X, y = make_frappe_like(n_samples=600, random_state=3)
    makers = [lambda: FMClassifier(n_factors=4, max_iter=2, batch_size=32, random_state=0),
              lambda: FMClassifier(n_factors=4, max_iter=2, batch_size=32, random_state=0,
                                   augmentation="saliency"),
              lambda: NFMClassifier(n_factors=4, hidden_layer_sizes=(8,), max_iter=2,
                                    batch_size=32, random_state=0),
              lambda: AFMClassifier(n_factors=4, attention_factor=4, dropout=0.2, max_iter=1,
                                    batch_size=32, random_state=0)]
    used = []

    def slots(n_features, *args, lanes):
        used.append(lanes)
        return np.full((lanes, n_features), -1, np.int32)

    for make in makers:
        outs = []
        for lanes in (1, 2, 3, 7):
            monkeypatch.setattr(trainer, "feature_slots",
                                lambda *args, k=lanes: slots(*args, lanes=k))
            outs.append(make().fit(X, y).decision_function(X[:200]))
        for o in outs[1:]:
            np.testing.assert_array_equal(o, outs[0])
    assert sorted(set(used)) == [1, 2, 3, 7]  # the trainer took the patched lanes


def test_kernel_caches_are_keyed_on_every_kernel_source():
    """A kernel's cache is stale when any kernel file changes (kernels compile in what they
    call from other files, the skeleton every model's hooks): every kernel of skfm._kernels has
    one source stamp, the digest of all kernel files, also in its cache file names."""
    import hashlib
    import pathlib

    from skfm._kernels import deepfm, fm
    here = pathlib.Path(skeleton.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(here.glob("*.py"), key=lambda p: p.name):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    for kernel in (fm.fm_decision, skeleton.train_epoch, deepfm.predict_rows):
        cache = kernel._cache
        assert cache._impl.locator.get_source_stamp() == digest.hexdigest()
        assert digest.hexdigest()[:12] in cache._impl.filename_base


# ----------------------------------------------------------------------------- csr_check
def naive_check(indptr, indices, data, n_cols):
    """csr_check's bits, row by row in plain Python."""
    nnz = int(indptr[-1])
    for r in range(len(indptr) - 1):
        if not 0 <= indptr[r] <= indptr[r + 1] <= nnz:
            return kcsr.BAD_INDPTR
    out = 0
    for r in range(len(indptr) - 1):
        row = [int(j) for j in indices[indptr[r]:indptr[r + 1]]]
        if any(b <= a for a, b in zip(row, row[1:])):
            out |= kcsr.NOT_CANONICAL
    for j, x in zip(indices[:nnz], data[:nnz]):
        if not 0 <= j < n_cols:
            out |= kcsr.OUT_OF_BOUNDS
        if x == 0:
            out |= kcsr.HAS_ZEROS
        if not np.isfinite(x):
            out |= kcsr.NON_FINITE | (kcsr.HAS_NAN if np.isnan(x) else 0)
    return out


@given(data=st.data())
@SETTINGS
def test_csr_check_is_the_naive_check(data):
    """csr_check's flat passes (the indices' bounds, the values' bit patterns, descents counted
    against row starts) give the bits a row-by-row check gives, on valid and broken arrays:
    row pointers that decrease or pass the entries, indices out of bounds (negative or too
    large), unsorted and repeated indices, zeros (also -0.0), infinities,
    NaN, subnormals, float32 and float64; and chunks of entries smaller than the arrays."""
    n = data.draw(st.integers(0, 12))
    lengths = data.draw(st.lists(st.integers(0, 5), min_size=n, max_size=n))
    # the index types to_csr_data passes (int64 indices are checked before it narrows them)
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    nnz = int(indptr[-1])
    if n and data.draw(st.booleans()):  # a broken row pointer
        r = data.draw(st.integers(1, n))
        indptr[r] = data.draw(st.sampled_from([-1, nnz + 1, int(indptr[r]) - 2,
                                               int(indptr[r]) + 3]))
        indptr[-1] = min(max(int(indptr[-1]), 0), nnz)
    n_cols = data.draw(st.integers(1, 8))
    indices = np.array(data.draw(st.lists(st.integers(-2, n_cols + 1), min_size=nnz,
                                          max_size=nnz)), dtype=np.int32)
    if data.draw(st.booleans()):  # mostly valid, sorted rows
        indices = np.clip(indices, 0, n_cols - 1)
        for r in range(n):
            indices[indptr[r]:indptr[r + 1]].sort()
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    values = st.sampled_from([1.0, -2.5, 0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, 5e-324,
                              3e38, 1.0])
    vals = np.array(data.draw(st.lists(values, min_size=nnz, max_size=nnz)), dtype=dtype)
    expected = naive_check(indptr, indices, vals, n_cols)
    bits, exp_mask, abs_mask = kcsr.float_bits(vals)
    # read-only views, as to_csr_data passes them (one compiled version of the kernel)
    got = kcsr.csr_check(readonly(indptr), readonly(indices), readonly(bits), exp_mask, abs_mask,
                         n_cols)
    assert got == expected, (got, expected)


def test_csr_check_over_many_chunks():
    """Entries and rows spanning several of csr_check's chunks (a descent, a zero and an
    index out of bounds placed at a chunk boundary are each found)."""
    rng = np.random.default_rng(0)
    n = 3 * kcsr._CHECK_CHUNK + 5
    X = sp.random(n, 50, density=0.04, format="csr", random_state=0, dtype=np.float64)
    X.data[:] = rng.uniform(1, 2, X.nnz)
    X.sort_indices()

    def args():  # read-only views, as to_csr_data passes them
        bits, exp_mask, abs_mask = kcsr.float_bits(X.data)
        return (readonly(X.indptr.astype(np.int64)), readonly(X.indices), readonly(bits),
                exp_mask, abs_mask, 50)

    assert kcsr.csr_check(*args()) == 0
    p = kcsr._CHECK_CHUNK  # the first entry of the second chunk
    row = int(np.searchsorted(X.indptr, p, side="right")) - 1
    for change, bit in ((lambda: X.data.__setitem__(p, 0.0), kcsr.HAS_ZEROS),
                        (lambda: X.indices.__setitem__(p, 50), kcsr.OUT_OF_BOUNDS)):
        saved = (X.data.copy(), X.indices.copy())
        change()
        assert kcsr.csr_check(*args()) & bit
        X.data[:], X.indices[:] = saved
    lengths = np.diff(X.indptr)
    row = row + int(np.flatnonzero(lengths[row:] >= 2)[0])  # a row of 2 entries or more
    a = int(X.indptr[row])
    X.indices[a], X.indices[a + 1] = X.indices[a + 1], X.indices[a]
    assert kcsr.csr_check(*args()) == kcsr.NOT_CANONICAL
