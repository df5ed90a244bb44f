import numpy as np
import pytest
import scipy.sparse as sp

from graphrec.linalg import (
    degree_scale,
    filter_interactions,
    normalized_interactions,
    sparse_product_at,
    spectral_norm,
    truncated_svd,
)


def random_binary(rows=60, cols=45, density=0.15, seed=0):
    rng = np.random.default_rng(seed)
    m = sp.random(rows, cols, density=density, random_state=rng, format="csr")
    m.data[:] = rng.uniform(0.5, 3.0, m.nnz)  # values other than 1 must be binarised
    return m


def test_normalized_interactions_matches_dense_formula():
    m = random_binary()
    m = sp.csr_matrix(m.toarray() * (np.arange(m.shape[1]) != 3))  # an empty column
    r = (m.toarray() > 0).astype(float)
    du, di = r.sum(1), r.sum(0)
    expect = r * np.where(du > 0, du, 1)[:, None] ** -0.5 * np.where(di > 0, di, 1)[None, :] ** -0.5
    got = normalized_interactions(m).toarray()
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expect, rtol=1e-6)
    assert not got[:, 3].any()


@pytest.mark.parametrize("a,b", [(0.5, 0.5), (0.4, 0.4), (0.3, 0.5), (0.0, 1.0), (0.8, 0.2)])
def test_filter_interactions_has_the_exponents_and_unit_spectral_norm(a, b):
    m = random_binary()
    m = sp.csr_matrix(m.toarray() * (np.arange(m.shape[1]) != 3))  # an empty column
    r = (m.toarray() > 0).astype(float)
    du, di = r.sum(1), r.sum(0)
    raw = r * np.where(du > 0, du, 1)[:, None] ** -a * np.where(di > 0, di, 1)[None, :] ** -b
    got = filter_interactions(m, a, b)
    assert got.dtype == np.float32 and not got.toarray()[:, 3].any()
    np.testing.assert_allclose(got.toarray(), raw / np.linalg.norm(raw, 2), rtol=1e-5, atol=1e-7)
    assert spectral_norm(got) == pytest.approx(1.0, rel=1e-5)
    if a == b == 0.5:  # GF-CF's normalisation is left exactly as it is (σ1 = 1 in theory)
        assert (got != normalized_interactions(m)).nnz == 0


def test_filter_interactions_refuses_bad_exponents_and_keeps_an_empty_matrix():
    with pytest.raises(ValueError, match="user_norm"):
        filter_interactions(random_binary(), -0.5, 0.5)
    with pytest.raises(ValueError, match="item_norm"):
        filter_interactions(random_binary(), 0.5, float("inf"))
    empty = filter_interactions(sp.csr_matrix((4, 3)), 0.3, 0.3)
    assert empty.shape == (4, 3) and empty.nnz == 0
    tiny = sp.csr_matrix(np.array([[1.0, 1.0], [0.0, 1.0]]))
    assert spectral_norm(tiny) == pytest.approx(np.linalg.norm(tiny.toarray(), 2))


def test_degree_scale_zero_for_isolated():
    np.testing.assert_allclose(degree_scale(np.array([0, 1, 4]), -0.5), [0, 1, 0.5])


@pytest.mark.parametrize("shape,rank,oversample", [((30, 20), 5, 32), ((300, 200), 12, 8),
                                                   ((150, 400), 12, 8)])
@pytest.mark.parametrize("dense_limit", [0, 10**9])
def test_truncated_svd_matches_dense_svd(shape, rank, oversample, dense_limit, monkeypatch):
    monkeypatch.setattr("graphrec.linalg.DENSE_SVD_ENTRIES", dense_limit)
    m = normalized_interactions(random_binary(*shape, density=0.1, seed=1))
    s, v = truncated_svd(m, rank, iters=8, oversample=oversample, seed=3)
    _, s_ref, vt_ref = np.linalg.svd(m.toarray().astype(np.float64))
    np.testing.assert_allclose(s.numpy(), s_ref[:rank], rtol=1e-4, atol=1e-5)
    # Singular vectors are defined up to sign: compare the projectors.
    proj = v.numpy().astype(np.float64) @ v.numpy().T
    proj_ref = vt_ref[:rank].T @ vt_ref[:rank]
    np.testing.assert_allclose(proj, proj_ref, atol=2e-4)


def test_truncated_svd_rejects_bad_rank():
    with pytest.raises(ValueError, match="rank"):
        truncated_svd(random_binary(), 0)
    with pytest.raises(ValueError, match="rank"):
        truncated_svd(random_binary(), 46)


@pytest.mark.parametrize("threads,budget", [(1, 1 << 20), (2, 64), (3, 200)])
def test_sparse_product_at_reads_the_products_entries(threads, budget):
    rng = np.random.default_rng(0)
    a = sp.random(37, 23, density=0.2, format="csr", dtype=np.float32, random_state=1)
    b = sp.random(23, 41, density=0.3, format="csr", dtype=np.float32, random_state=2)
    rows = rng.integers(0, 37, 500)
    cols = rng.integers(0, 41, 500)
    dense = a.toarray() @ b.toarray()
    # budget 64 bytes: one row per block; repeated and unsorted queries included
    got = sparse_product_at(a, b, rows, cols, threads=threads, budget_bytes=budget)
    np.testing.assert_allclose(got, dense[rows, cols], rtol=1e-6, atol=1e-7)
    assert sparse_product_at(a, b, rows[:0], cols[:0]).shape == (0,)
    with pytest.raises(ValueError, match="differ in shape"):
        sparse_product_at(a, b, rows, cols[:3])
