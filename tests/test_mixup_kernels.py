"""Independent checks of the Mixup / SMFM machinery (SMFM paper Eq. 3, Alg. 1 and 2).

Expected values come from scipy.stats (distribution tests), dense numpy mixing, and a naive
float64 FM saliency ``S = dL/df * (lin + 2 * pair)`` with ``pair = sum_{i<j} <v_i, v_j> x_i x_j``
computed by an explicit double loop, never from another output of skfm.

Tolerances: distribution tests use fixed seeds and reject at p < 1e-3; mixed rows: rtol 1e-12
(float64) / 1e-6 (float32 data); saliency selection: the chosen candidate's naive saliency must be
the maximum within 1e-9 * (1 + |max|) (float64), and must be the argmax itself whenever the best
candidate beats the runner-up by more than that.
"""
import numba
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

from skfm._base import to_csr_data
from skfm._cores import FMCore
from skfm._kernels import mixup as kmix
from skfm._kernels.rng import beta_samples, normal_rows, normal_rows_at
from skfm._trainer import Augmenter, first_parents, readonly

LOGISTIC, SQUARED = 0, 1
P_MIN = 1e-3

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ---------------------------------------------------------------------------------------------
# Beta sampler and candidate draws
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("a, b", [(0.5, 0.5), (1.0, 1.0), (2.0, 5.0), (5.0, 2.0), (0.2, 0.3),
                                  (30.0, 30.0), (0.5, 3.0)])
def test_beta_samples_ks(a, b):
    """beta_samples(seed, 20000, a, b) vs scipy.stats.beta(a, b): KS p-value >= 1e-3 for two
    fixed seeds, all draws in [0, 1], mean within 5 standard errors."""
    for seed in (12345, 2024):
        x = np.asarray(beta_samples(seed, 20000, a, b))
        assert x.shape == (20000,)
        assert np.all((x >= 0.0) & (x <= 1.0))
        p = stats.kstest(x, stats.beta(a, b).cdf).pvalue
        assert p >= P_MIN, f"KS p-value {p:.2e} for Beta({a}, {b}), seed {seed}"
        mean, var = stats.beta(a, b).stats("mv")
        assert abs(x.mean() - mean) < 5 * np.sqrt(var / len(x))


@pytest.mark.parametrize("a, b", [(0.1, 0.1), (0.05, 0.05), (0.02, 0.02), (0.05, 0.3)])
def test_beta_samples_tiny_shapes(a, b):
    """Shapes << 1 put visible mass within 1e-16 of 1, where doubles round draws to exactly 1.0,
    so a plain KS test against the continuous cdf is not valid there.  Instead: KS of the draws
    <= 0.5 against the truncated cdf F(t) / F(0.5), and binomial tests (p >= 1e-3) of
    P(X <= 0.5), P(X <= 1e-30) and P(X >= 1 - 1e-9) (the last via 1 - X ~ Beta(b, a))."""
    n = 20000
    x = np.asarray(beta_samples(12345, n, a, b))
    assert np.all((x >= 0.0) & (x <= 1.0))
    dist = stats.beta(a, b)
    half = dist.cdf(0.5)
    low = x[x <= 0.5]
    assert stats.kstest(low, lambda t: dist.cdf(t) / half).pvalue >= P_MIN
    for k, prob in [(len(low), half), (int(np.sum(x <= 1e-30)), dist.cdf(1e-30)),
                    (int(np.sum(x >= 1 - 1e-9)), stats.beta(b, a).cdf(1e-9))]:
        assert stats.binomtest(k, n, prob).pvalue >= P_MIN, (k, n, prob)


def test_beta_samples_deterministic_and_seed_dependent():
    a = np.asarray(beta_samples(7, 500, 0.5, 0.5))
    np.testing.assert_array_equal(a, np.asarray(beta_samples(7, 500, 0.5, 0.5)))
    assert not np.array_equal(a, np.asarray(beta_samples(8, 500, 0.5, 0.5)))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_normal_rows_distribution(dtype):
    """normal_rows(T, 1, seed, 0, std) leaves column 0 at zero and fills the rest with N(0, std^2)
    draws: KS p >= 1e-3 on all of them, on one column and on one row's cells across rows; the
    lag-1 correlation along a row and down a column within 5 standard errors of 0 (the two
    halves of a polar-method pair, and neighbouring rows' streams, are independent)."""
    n, m, std = 4000, 17, 0.25
    T = np.zeros((n, m), dtype)
    normal_rows(T, 1, 12345, 0, std)
    assert np.all(T[:, 0] == 0)
    V = T[:, 1:].astype(np.float64) / std
    for x in (V.ravel(), V[:, 5], V[:, 6]):
        assert stats.kstest(x, "norm").pvalue >= P_MIN
    se = 1 / np.sqrt(V.size)
    assert abs(np.corrcoef(V[:, :-1].ravel(), V[:, 1:].ravel())[0, 1]) < 5 * se
    assert abs(np.corrcoef(V[:-1].ravel(), V[1:].ravel())[0, 1]) < 5 * se
    # an odd number of columns: the last one is a first half, still standard normal
    assert stats.kstest(V[:, -1], "norm").pvalue >= P_MIN


def test_normal_rows_counter_based():
    """Row i is a function of (seed, stream, i) only: the same on 1 and 2 threads, the same as
    the first rows of a longer table, different for another seed or stream."""
    previous = numba.get_num_threads()
    tables = []
    try:
        for k in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(k)
            T = np.zeros((3001, 9))
            normal_rows(T, 1, 7, 3, 1.0)
            tables.append(T)
    finally:
        numba.set_num_threads(previous)
    np.testing.assert_array_equal(tables[0], tables[1])
    short = np.zeros((10, 9))
    normal_rows(short, 1, 7, 3, 1.0)
    np.testing.assert_array_equal(short, tables[0][:10])
    for seed, stream in ((8, 3), (7, 4)):
        other = np.zeros((10, 9))
        normal_rows(other, 1, seed, stream, 1.0)
        assert not np.any(other[:, 1:] == short[:, 1:])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_normal_rows_at_draws_the_listed_rows_as_the_full_draw(dtype):
    """normal_rows_at(T, rows, ...) gives each listed row the values normal_rows gives it (same
    seed and stream) and leaves every other cell as it was."""
    full = np.zeros((500, 9), dtype)
    normal_rows(full, 1, 11, 0, 0.5)
    rows = np.array([0, 3, 4, 250, 499], np.int64)
    part = np.full((500, 9), 7.0, dtype)
    normal_rows_at(part, rows, 1, 11, 0, 0.5)
    np.testing.assert_array_equal(part[rows, 1:], full[rows, 1:])
    others = np.setdiff1d(np.arange(500), rows)
    assert np.all(part[others] == 7.0) and np.all(part[rows, 0] == 7.0)


@pytest.mark.parametrize("a, b", [(0.5, 0.5), (1.0, 1.0), (2.0, 5.0), (0.2, 0.2)])
def test_draw_candidates_distribution(a, b):
    """lam = max(lam', 1 - lam') with lam' ~ Beta(a, b): P(lam <= t) = F(t) - F(1 - t) on
    [0.5, 1] (KS p >= 1e-3); partners uniform on [0, n) (chi-square p >= 1e-3)."""
    n, n_parents, p = 7, 4000, 5
    partners, lams = kmix.draw_candidates(0, n_parents, n, p, 99, 3, a, b)
    partners, lams = np.asarray(partners), np.asarray(lams)
    assert partners.shape == (n_parents, p) and lams.shape == (n_parents, p)
    assert partners.dtype == np.int64
    assert partners.min() >= 0 and partners.max() < n
    assert np.all((lams >= 0.5) & (lams <= 1.0))
    dist = stats.beta(a, b)

    def folded_cdf(t):
        t = np.clip(t, 0.5, 1.0)
        return dist.cdf(t) - dist.cdf(1.0 - t)

    assert stats.kstest(lams.ravel(), folded_cdf).pvalue >= P_MIN
    counts = np.bincount(partners.ravel(), minlength=n)
    assert stats.chisquare(counts).pvalue >= P_MIN


@SETTINGS
@given(n=st.integers(1, 30), total=st.integers(1, 25), p=st.integers(1, 6),
       seed=st.integers(0, 2**63 - 1), epoch=st.integers(0, 1000), data=st.data(),
       ab=st.sampled_from([(0.5, 0.5), (1.0, 1.0), (2.0, 5.0), (0.2, 3.0)]))
def test_draw_candidates_reproducible_and_offset_consistent(n, total, p, seed, epoch, data, ab):
    """Same arguments -> same output; draw_candidates(off, k, ...) equals rows off..off+k of
    draw_candidates(0, N, ...) (exact equality)."""
    a, b = ab
    full_p, full_l = kmix.draw_candidates(0, total, n, p, seed, epoch, a, b)
    again_p, again_l = kmix.draw_candidates(0, total, n, p, seed, epoch, a, b)
    np.testing.assert_array_equal(full_p, again_p)
    np.testing.assert_array_equal(full_l, again_l)
    assert np.all((full_p >= 0) & (full_p < n))
    assert np.all((full_l >= 0.5) & (full_l <= 1.0))
    off = data.draw(st.integers(0, total - 1))
    k = data.draw(st.integers(1, total - off))
    part_p, part_l = kmix.draw_candidates(off, k, n, p, seed, epoch, a, b)
    np.testing.assert_array_equal(part_p, full_p[off:off + k])
    np.testing.assert_array_equal(part_l, full_l[off:off + k])


def test_draw_candidates_depend_on_seed_and_epoch():
    base = kmix.draw_candidates(0, 200, 50, 3, 11, 0, 0.5, 0.5)
    for other in (kmix.draw_candidates(0, 200, 50, 3, 12, 0, 0.5, 0.5),
                  kmix.draw_candidates(0, 200, 50, 3, 11, 1, 0.5, 0.5)):
        assert not np.array_equal(base[1], other[1])
        assert not np.array_equal(base[0], other[0])


# ---------------------------------------------------------------------------------------------
# mix_rows
# ---------------------------------------------------------------------------------------------
nonzero_value = st.one_of(st.just(1.0), st.floats(0.05, 3.0), st.floats(-3.0, -0.05))


@st.composite
def mix_problems(draw):
    n = draw(st.integers(1, 8))
    n_features = draw(st.integers(1, 8))
    dtype = draw(st.sampled_from([np.float64, np.float64, np.float32]))
    rows = []
    for _ in range(n):
        size = draw(st.integers(0, n_features))
        rows.append(draw(st.dictionaries(st.integers(0, n_features - 1), nonzero_value,
                                         min_size=size, max_size=size)))
    dense = np.zeros((n, n_features))
    for r, row in enumerate(rows):
        for j, v in row.items():
            dense[r, j] = v
    dense = dense.astype(dtype)
    n_outputs = draw(st.integers(1, 3))
    Y = np.asfortranarray(np.array(draw(st.lists(st.floats(-2.0, 2.0), min_size=n * n_outputs,
                                                 max_size=n * n_outputs))).reshape(n, n_outputs))
    sw = np.array(draw(st.lists(st.floats(0.0, 3.0), min_size=n, max_size=n)))
    m = draw(st.integers(0, 12))
    parents = np.array(draw(st.lists(st.integers(0, n - 1), min_size=m, max_size=m)), np.int64)
    partners = np.array(draw(st.lists(st.integers(0, n - 1), min_size=m, max_size=m)), np.int64)
    if m and draw(st.booleans()):  # force some parent == partner
        partners[::2] = parents[::2]
    lam_st = st.one_of(st.just(0.5), st.just(1.0), st.floats(0.5, 1.0))
    lams = np.array(draw(st.lists(lam_st, min_size=m, max_size=m)), np.float64)
    return dense, Y, sw, parents, partners, lams


@SETTINGS
@given(mix_problems())
def test_mix_rows_matches_dense_mix(problem):
    """Row i of mix_rows == lams[i] X[parents[i]] + (1 - lams[i]) X[partners[i]] (dense),
    indices sorted and unique per row, labels (every output) and sample weights mixed with the
    same lam. rtol 1e-12 / atol 1e-12 (float64 data), rtol 1e-6 / atol 1e-6 (float32 data)."""
    dense, Y, sw, parents, partners, lams = problem
    X = sp.csr_matrix(dense)
    X.sort_indices()
    csr = to_csr_data(X, dense.dtype)
    # read-only targets and weights, as the trainer passes them (the same compiled code)
    ip, ind, dat, Ym, swm = kmix.mix_rows(csr.indptr, csr.indices, csr.data, readonly(Y),
                                          readonly(sw), parents, partners, lams)
    ip, ind, dat, Ym, swm = map(np.asarray, (ip, ind, dat, Ym, swm))
    m = len(parents)
    assert ip.shape == (m + 1,) and ip[0] == 0 and np.all(np.diff(ip) >= 0)
    assert ind.shape == dat.shape == (ip[-1],)
    assert Ym.shape == (m, Y.shape[1]) and swm.shape == (m,)
    n_features = dense.shape[1]
    d64 = dense.astype(np.float64)
    tol = 1e-12 if dense.dtype == np.float64 else 1e-6
    for i in range(m):
        cols = ind[ip[i]:ip[i + 1]]
        assert np.all(np.diff(cols) > 0), f"row {i}: indices not sorted/unique: {cols}"
        assert np.all((cols >= 0) & (cols < n_features))
        got = np.zeros(n_features)
        got[cols] = dat[ip[i]:ip[i + 1]]
        lam = lams[i]
        want = lam * d64[parents[i]] + (1 - lam) * d64[partners[i]]
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol, err_msg=f"row {i}")
        # no feature outside the union of the parents' supports
        support = (d64[parents[i]] != 0) | (d64[partners[i]] != 0)
        assert np.all(support[cols])
        np.testing.assert_allclose(Ym[i], lam * Y[parents[i]] + (1 - lam) * Y[partners[i]],
                                   rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(swm[i], lam * sw[parents[i]] + (1 - lam) * sw[partners[i]],
                                   rtol=1e-12, atol=1e-12)


def test_mix_rows_shared_feature_appears_once():
    """A feature in both parents appears once with weight lam x_j + (1 - lam) r_j (not twice,
    as in the authors' concatenating code)."""
    X = sp.csr_matrix(np.array([[1.0, 0.0, 2.0], [3.0, 4.0, 0.0]]))
    csr = to_csr_data(X, np.float64)
    Y = np.asfortranarray([[0.0], [1.0]])
    ip, ind, dat, Ym, swm = kmix.mix_rows(csr.indptr, csr.indices, csr.data, Y,
                                          np.array([1.0, 2.0]),
                                          np.array([0, 0], np.int64), np.array([1, 0], np.int64),
                                          np.array([0.75, 0.6]))
    np.testing.assert_array_equal(ip, [0, 3, 5])
    np.testing.assert_array_equal(ind, [0, 1, 2, 0, 2])
    np.testing.assert_allclose(dat, [0.75 + 0.25 * 3, 0.25 * 4, 1.5, 1.0, 2.0], rtol=1e-15)
    np.testing.assert_allclose(Ym[:, 0], [0.25, 0.0], atol=1e-15)
    np.testing.assert_allclose(swm, [0.75 + 0.5, 1.0], rtol=1e-15)


# ---------------------------------------------------------------------------------------------
# first parents
# ---------------------------------------------------------------------------------------------
@SETTINGS
@given(n=st.integers(1, 40), n_new=st.integers(0, 150), seed=st.integers(0, 2**32 - 1))
def test_first_parents_counts(n, n_new, seed):
    """Alg. 1: n_new == n -> a permutation; n_new > n -> each row floor(n_new/n) or +1 times with
    exactly n_new mod n rows at +1; n_new < n -> distinct rows."""
    parents = np.asarray(first_parents(n, n_new, np.random.default_rng(seed)))
    assert parents.shape == (n_new,)
    assert np.issubdtype(parents.dtype, np.integer)
    if n_new == 0:
        return
    assert parents.min() >= 0 and parents.max() < n
    counts = np.bincount(parents, minlength=n)
    reps, rest = divmod(n_new, n)
    assert set(np.unique(counts)) <= {reps, reps + 1}
    assert np.sum(counts == reps + 1) == rest
    if n_new <= n:
        assert len(np.unique(parents)) == n_new


def test_first_parents_extra_rows_are_random():
    """The n_new mod n extra rows are a random subset (differ between seeds), not a fixed one."""
    picks = {tuple(np.sort(np.asarray(first_parents(100, 130, np.random.default_rng(s)))[-30:]))
             for s in range(5)}
    assert len(picks) > 1


# ---------------------------------------------------------------------------------------------
# SMFM partner selection (Alg. 2)
# ---------------------------------------------------------------------------------------------
def _naive_parts(w0, T, x):
    """(f, lin, pair) of a dense row, pair = sum_{i<j} <v_i, v_j> x_i x_j by a double loop."""
    T = np.asarray(T, np.float64)
    idx = np.flatnonzero(x)
    val = x[idx]
    lin = float(np.dot(T[idx, 0], val))
    pair = 0.0
    for a in range(len(idx)):
        for b in range(a + 1, len(idx)):
            pair += float(np.dot(T[idx[a], 1:], T[idx[b], 1:])) * val[a] * val[b]
    return w0 + lin + pair, lin, pair


def naive_saliency(w0, T, x, y, loss_id):
    """Saliency of a dense row: dL/df * (lin + 2 * pair), pair by an explicit double loop."""
    f, lin, pair = _naive_parts(w0, T, x)
    if loss_id == LOGISTIC:
        g = 1.0 / (1.0 + np.exp(-f)) - y
    else:
        g = f - y
    return g * (lin + 2.0 * pair)


def naive_loss(w0, T, x, y, loss_id):
    """Loss of a dense row: log(1 + e^f) - y f (logistic, soft y) or (f - y)^2 / 2."""
    f = _naive_parts(w0, T, x)[0]
    if loss_id == LOGISTIC:
        return float(np.logaddexp(0.0, f) - y * f)
    return 0.5 * (f - y) ** 2


@st.composite
def selection_problems(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n = draw(st.integers(1, 12))
    n_features = draw(st.integers(1, 10))
    d = draw(st.integers(0, 4))
    loss_id = draw(st.sampled_from([LOGISTIC, SQUARED]))
    density = draw(st.sampled_from([0.2, 0.5, 0.9]))
    dense = np.where(rng.random((n, n_features)) < density,
                     rng.choice([1.0, -1.0, 0.5, 2.0], (n, n_features))
                     * rng.uniform(0.5, 1.5, (n, n_features)), 0.0)
    if n > 1 and draw(st.booleans()):
        dense[0] = 0.0  # an empty row
    T = rng.normal(0.0, 0.3, size=(n_features, 1 + d))
    w0 = np.array([rng.normal(0.0, 0.3)])
    if loss_id == LOGISTIC:
        y = rng.uniform(0.0, 1.0, n)
        y[rng.random(n) < 0.5] = rng.integers(0, 2)
    else:
        y = rng.normal(0.0, 1.0, n)
    m = draw(st.integers(1, 15))
    parents = rng.integers(0, n, m).astype(np.int64)
    p = draw(st.integers(1, 6))
    kseed = draw(st.integers(0, 2**63 - 1))
    epoch = draw(st.integers(0, 50))
    a, b = draw(st.sampled_from([(0.5, 0.5), (1.0, 1.0), (2.0, 5.0)]))
    return dict(dense=dense, T=T, w0=w0, y=y, loss_id=loss_id, parents=parents, p=p,
                seed=kseed, epoch=epoch, a=a, b=b)


def check_choice(pb, partners, lams, score=naive_saliency):
    dense, T, w0, y, loss_id = pb["dense"], pb["T"], pb["w0"][0], pb["y"], pb["loss_id"]
    parents, p = pb["parents"], pb["p"]
    n = dense.shape[0]
    cand_p, cand_l = kmix.draw_candidates(0, len(parents), n, p, pb["seed"], pb["epoch"],
                                          pb["a"], pb["b"])
    partners, lams = np.asarray(partners), np.asarray(lams)
    assert partners.shape == (len(parents),) and lams.shape == (len(parents),)
    for i, par in enumerate(parents):
        sal = np.empty(p)
        for k in range(p):
            lam, r = cand_l[i, k], cand_p[i, k]
            sal[k] = score(w0, T, lam * dense[par] + (1 - lam) * dense[r],
                           lam * y[par] + (1 - lam) * y[r], loss_id)
        chosen = [k for k in range(p)
                  if cand_p[i, k] == partners[i] and cand_l[i, k] == lams[i]]
        assert chosen, (f"parent #{i}: ({partners[i]}, {lams[i]}) is not one of its candidates "
                        f"{list(zip(cand_p[i], cand_l[i]))}")
        best = int(np.argmax(sal))
        tol = 1e-9 * (1.0 + abs(sal[best]))
        got = max(sal[k] for k in chosen)
        assert got >= sal[best] - tol, (
            f"parent #{i} (row {par}): chose saliency {got!r}, best candidate {best} has "
            f"{sal[best]!r}; all {sal.tolist()}")
        runner_up = np.max(np.delete(sal, best)) if p > 1 else -np.inf
        if sal[best] - runner_up > tol:
            assert best in chosen


@SETTINGS
@given(selection_problems())
def test_select_partners_picks_max_saliency(pb):
    """FMCore.select_partners (closed-form path) keeps, for every first parent, the candidate of
    draw_candidates(0, len(parents), ...) whose mixed row has the largest signed saliency."""
    X = to_csr_data(sp.csr_matrix(pb["dense"]), np.float64)
    partners, lams = FMCore.select_partners({"w0": pb["w0"], "T": pb["T"]}, X, pb["y"],
                                            pb["parents"], pb["p"], pb["seed"], pb["epoch"],
                                            pb["a"], pb["b"], pb["loss_id"])
    check_choice(pb, partners, lams)


@SETTINGS
@given(selection_problems(), st.sampled_from([4096, 1, 3]))
def test_generic_augmenter_select_picks_max_saliency(pb, chunk):
    """Augmenter('saliency', generic=True).select (materialised candidates, chunked) makes the
    same max-saliency choice; also the default (closed-form) Augmenter path."""
    X = to_csr_data(sp.csr_matrix(pb["dense"]), np.float64)
    Y2 = np.asfortranarray(pb["y"].reshape(-1, 1))
    params = {"w0": pb["w0"], "T": pb["T"]}
    for generic in (True, False):
        aug = Augmenter("saliency", pb["a"], pb["b"], 1.0, pb["p"], chunk=chunk, generic=generic)
        partners, lams = aug.select(FMCore, [params], X, Y2, pb["loss_id"], pb["parents"],
                                    pb["seed"], pb["epoch"])
        check_choice(pb, partners, lams)


@SETTINGS
@given(selection_problems())
def test_select_max_loss_picks_max_loss(pb):
    """Maxup for FM (FMCore.select_max_loss, closed form from the rows' statistics) keeps, for
    every row, the candidate whose mixed row has the largest loss (naive double-loop FM)."""
    X = to_csr_data(sp.csr_matrix(pb["dense"]), np.float64)
    partners, lams = FMCore.select_max_loss({"w0": pb["w0"], "T": pb["T"]}, X, pb["y"],
                                            pb["parents"], pb["p"], pb["seed"], pb["epoch"],
                                            pb["a"], pb["b"], pb["loss_id"])
    check_choice(pb, partners, lams, score=naive_loss)


@SETTINGS
@given(selection_problems(), st.sampled_from([4096, 1, 3]))
def test_generic_augmenter_maxup_picks_max_loss(pb, chunk):
    """Augmenter('max', generic=True).select (materialised candidates scored by the model's
    decision and loss) and the closed-form default make the max-loss choice."""
    X = to_csr_data(sp.csr_matrix(pb["dense"]), np.float64)
    Y2 = np.asfortranarray(pb["y"].reshape(-1, 1))
    params = {"w0": pb["w0"], "T": pb["T"]}
    for generic in (True, False):
        aug = Augmenter("max", pb["a"], pb["b"], 1.0, pb["p"], chunk=chunk, generic=generic)
        partners, lams = aug.select(FMCore, [params], X, Y2, pb["loss_id"], pb["parents"],
                                    pb["seed"], pb["epoch"])
        check_choice(pb, partners, lams, score=naive_loss)


def test_maxup_epoch_replaces_every_row_by_a_mixed_neighbour():
    """An epoch of augmentation="max" has n rows: row i is lam x_i + (1 - lam) x_r for one of
    row i's p candidates (dense mixing), with the mixed label and weight, and the largest loss;
    mix_ratio does not change that."""
    from skfm._trainer import Workspace
    rng = np.random.default_rng(3)
    n, n_features, d, p = 25, 9, 3, 4
    dense = np.where(rng.random((n, n_features)) < 0.4, rng.uniform(0.5, 2, (n, n_features)), 0)
    X = to_csr_data(sp.csr_matrix(dense), np.float64)
    y = (rng.random(n) < 0.5).astype(float)
    sw = rng.uniform(0.5, 2.0, n)
    params = {"w0": np.array([0.2]), "T": rng.normal(0, 0.4, (n_features, 1 + d))}
    for ratio in (1.0, 0.3):
        aug = Augmenter("max", 0.5, 0.5, ratio, p)
        assert aug.epoch_size(n) == n and aug.replaces
        src, extra = aug.epoch_rows(FMCore, [params], X, np.asfortranarray(y[:, None]),
                                    readonly(sw), LOGISTIC, np.random.default_rng(0), 2,
                                    Workspace())
        np.testing.assert_array_equal(extra, np.arange(n, 2 * n))
        ip, ind, dat, ym, swm = src
        got = sp.csr_matrix((dat, ind, ip), shape=(n, n_features)).toarray()
        # the epoch's draws: its seed is the first draw of the epoch's generator (no parents
        # are drawn: every row is one), its candidates draw_candidates' stream
        seed = int(np.random.default_rng(0).integers(0, 2**63 - 1))
        cand_p, cand_l = kmix.draw_candidates(0, n, n, p, seed, 2, 0.5, 0.5)
        for i in range(n):
            losses = [naive_loss(0.2, params["T"],
                                 cand_l[i, k] * dense[i] + (1 - cand_l[i, k]) * dense[cand_p[i, k]],
                                 cand_l[i, k] * y[i] + (1 - cand_l[i, k]) * y[cand_p[i, k]],
                                 LOGISTIC) for k in range(p)]
            k = int(np.argmax(losses))
            r, lam = cand_p[i, k], cand_l[i, k]
            np.testing.assert_allclose(got[i], lam * dense[i] + (1 - lam) * dense[r],
                                       rtol=1e-12)
            np.testing.assert_allclose(ym[i, 0], lam * y[i] + (1 - lam) * y[r], rtol=1e-12)
            np.testing.assert_allclose(swm[i], lam * sw[i] + (1 - lam) * sw[r], rtol=1e-12)


def test_select_partners_float32():
    """float32 parameters and data: the choice is still (within float32 noise, 1e-4 relative)
    the max-saliency candidate, by the float64 naive saliency of the float32 values."""
    rng = np.random.default_rng(5)
    n, n_features, d = 30, 12, 4
    dense = np.where(rng.random((n, n_features)) < 0.4,
                     rng.uniform(0.5, 2.0, (n, n_features)), 0.0).astype(np.float32)
    T = rng.normal(0.0, 0.3, size=(n_features, 1 + d)).astype(np.float32)
    w0 = np.array([0.1])
    y = rng.uniform(0, 1, n)
    parents = np.arange(n, dtype=np.int64)
    p, seed, epoch = 5, 77, 2
    X = to_csr_data(sp.csr_matrix(dense), np.float32)
    partners, lams = FMCore.select_partners({"w0": w0, "T": T}, X, y, parents, p, seed, epoch,
                                            0.5, 0.5, LOGISTIC)
    cand_p, cand_l = kmix.draw_candidates(0, n, n, p, seed, epoch, 0.5, 0.5)
    d64, T64 = dense.astype(np.float64), T.astype(np.float64)
    for i, par in enumerate(parents):
        sal = []
        for k in range(p):
            lam, r = cand_l[i, k], cand_p[i, k]
            sal.append(naive_saliency(w0[0], T64, lam * d64[par] + (1 - lam) * d64[r],
                                      lam * y[par] + (1 - lam) * y[r], LOGISTIC))
        ks = [k for k in range(p) if cand_p[i, k] == partners[i] and cand_l[i, k] == lams[i]]
        assert ks
        assert max(sal[k] for k in ks) >= max(sal) - 1e-4 * (1 + abs(max(sal)))
