r"""Sparse linear algebra the closed-form models share: normalised interaction matrices,
conversions to torch, threaded sparse products and a truncated SVD by randomized block Krylov iteration.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch
from torch import Tensor

from graphrec.data.csr import csr_tensor


def degree_scale(degrees: np.ndarray, power: float) -> np.ndarray:
    r"""``degrees ** power`` as float32, with 0 where the degree is 0 (isolated nodes)."""
    d = np.asarray(degrees, dtype=np.float64)
    out = np.zeros_like(d)
    nz = d > 0
    out[nz] = d[nz] ** power
    return out.astype(np.float32)


def normalized_interactions(ui: sp.csr_matrix, user_power: float = -0.5,
                            item_power: float = -0.5) -> sp.csr_matrix:
    r"""The degree-normalised interaction matrix
    :math:`\tilde R = D_U^{a} R D_I^{b}` (float32 CSR, same sparsity as ``ui``).

    With the default :math:`a = b = -\tfrac12` this is the symmetric normalisation of
    LightGCN and GF-CF; :math:`\tilde R^\top \tilde R` then has eigenvalues in
    :math:`[0, 1]`. Users or items without interactions get a zero row or column.
    """
    r = sp.csr_matrix(ui, dtype=np.float32, copy=True)
    r.data[:] = 1.0
    du = np.diff(r.indptr)
    di = np.bincount(r.indices, minlength=r.shape[1])
    r.data *= np.repeat(degree_scale(du, user_power), du)
    r.data *= degree_scale(di, item_power)[r.indices]
    return r


def filter_interactions(ui: sp.csr_matrix, user_norm: float = 0.5,
                        item_norm: float = 0.5) -> sp.csr_matrix:
    r"""The interaction matrix the graph filters act on, with chosen degree exponents and
    unit spectral norm:

    .. math::  \tilde R = \frac{D_U^{-a} R\, D_I^{-b}}{\sigma_1(D_U^{-a} R\, D_I^{-b})}
               \qquad (a = \texttt{user\_norm},\ b = \texttt{item\_norm})

    so that :math:`\tilde R^\top \tilde R` has its eigenvalues in :math:`[0, 1]` whatever
    the exponents (the Chebyshev filter needs that interval). :math:`a = b = \tfrac12` is
    GF-CF's and LightGCN's symmetric normalisation, whose largest singular value is exactly
    1 (so nothing is computed). Other exponents generalise it as SGFCF's normalisation
    does (Xia et al., KDD 2024, one exponent for both sides): a smaller ``user_norm`` lets
    long histories weigh more in the item–item graph, a smaller ``item_norm`` popular
    items. :math:`\sigma_1` comes from ARPACK's Lanczos iteration
    started from a fixed vector, so the same graph always gives the same matrix.
    """
    check_degree_exponents(user_norm, item_norm)
    r = normalized_interactions(ui, -float(user_norm), -float(item_norm))
    if user_norm == 0.5 and item_norm == 0.5 or r.nnz == 0:
        return r
    top = spectral_norm(r)
    r.data /= np.float32(top)
    return r


def check_degree_exponents(user_norm: float, item_norm: float) -> None:
    """Refuse degree exponents that are negative or not finite (``ValueError``)."""
    for name, value in (("user_norm", user_norm), ("item_norm", item_norm)):
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value}")


def spectral_norm(m: sp.spmatrix | sp.sparray) -> float:
    """The largest singular value of a sparse matrix (ARPACK, deterministic start)."""
    m = sp.csr_matrix(m, dtype=np.float64)
    if min(m.shape) < 3 or m.nnz == 0:
        return float(np.linalg.norm(m.toarray(), 2)) if m.nnz else 0.0
    v0 = np.ones(min(m.shape))
    return float(spla.svds(m, k=1, v0=v0, return_singular_vectors=False)[0])


def to_torch_csr(m: sp.spmatrix | sp.sparray, device: torch.device | str = "cpu") -> Tensor:
    """A scipy sparse matrix as a torch sparse CSR tensor (float32, int64 indices)."""
    m = sp.csr_matrix(m)
    t = csr_tensor(torch.from_numpy(m.indptr.astype(np.int64)),
                   torch.from_numpy(m.indices.astype(np.int64)),
                   torch.from_numpy(m.data.astype(np.float32)), m.shape, compact_indices=False)
    return t.to(device)


def row_split_matmul(m: sp.csr_matrix, y: np.ndarray | sp.spmatrix | sp.sparray,
                     threads: int) -> np.ndarray:
    """``m @ y`` as a dense array for a sparse CSR ``m`` and a dense or sparse ``y``.

    The rows of ``m`` are split over ``threads`` threads in parts of about equal
    nonzeros: scipy's sparse products release the GIL, and on the CPU they beat torch's
    sparse kernels on these shapes (measured for EASE, ItemKNN and the graph filters).
    """
    n = m.shape[0]
    out = np.empty((n, y.shape[1]), dtype=np.result_type(m.dtype, y.dtype))

    def part(s: int, e: int) -> None:
        r = m[s:e] @ y
        out[s:e] = r.toarray() if sp.issparse(r) else r

    if threads <= 1 or n < 2 * threads:
        part(0, n)
        return out
    cuts = np.searchsorted(m.indptr, np.linspace(0, m.nnz, threads + 1)[1:-1])
    cuts = np.unique(np.concatenate([[0], cuts, [n]]))
    with ThreadPoolExecutor(len(cuts) - 1) as pool:
        list(pool.map(part, cuts[:-1], cuts[1:]))
    return out


def sparse_product_at(a: sp.csr_matrix, b: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray,
                      threads: int = 1, budget_bytes: int = 64 << 20) -> np.ndarray:
    r"""Entries ``(a @ b)[rows[k], cols[k]]`` of a sparse product, without the product.

    Only a few entries of :math:`AB` are wanted (a training batch's paths), but :math:`AB`
    can be far denser than :math:`A` and :math:`B`. Blocks of :math:`A`'s rows are
    multiplied and scattered into a reused dense buffer of at most ``budget_bytes`` per
    thread and the wanted entries read off: memory is bounded by the budget, not by the
    product, and no fresh memory is paged in per block (on a Gowalla batch that costs
    twice the product itself).

    Args:
        a: ``[n, m]`` CSR; b: ``[m, p]`` CSR (same float dtype).
        rows, cols: int arrays of equal length, the wanted entries.
        threads: blocks are shared among this many threads (scipy's kernels release the GIL).
        budget_bytes: the dense buffer of one thread.
    """
    rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
    if rows.shape != cols.shape:
        raise ValueError(f"rows and cols differ in shape: {rows.shape} vs {cols.shape}")
    dtype = np.result_type(a.dtype, b.dtype)
    out = np.zeros(rows.shape, dtype=dtype)
    n, width = a.shape[0], b.shape[1]
    if rows.size == 0 or n == 0:
        return out
    block = max(1, min(n, budget_bytes // max(1, width * dtype.itemsize)))
    order = np.argsort(rows, kind="stable")
    starts = np.arange(0, n, block)
    # The wanted entries of each block of rows, as a slice of ``order``.
    bounds = np.searchsorted(rows[order], np.append(starts, n))
    parts = np.array_split(np.arange(len(starts)), max(1, min(threads, len(starts))))

    def work(blocks: np.ndarray) -> None:
        buf = np.empty((block, width), dtype=dtype)
        for i in blocks:
            s, e = starts[i], min(starts[i] + block, n)
            want = order[bounds[i]:bounds[i + 1]]
            if want.size == 0:
                continue
            view = buf[:e - s]
            (a[s:e] @ b).astype(dtype, copy=False).toarray(out=view)  # zeroes, then fills
            out[want] = view[rows[want] - s, cols[want]]

    if len(parts) == 1:
        work(parts[0])
    else:
        with ThreadPoolExecutor(len(parts)) as pool:
            list(pool.map(work, parts))
    return out


# Matrices up to this many entries (80 MB in float32), with a side this short, get an
# exact dense solution.
DENSE_SVD_ENTRIES = 20_000_000
DENSE_SVD_SIDE = 5_000


def _dense_top_svd(m: sp.csr_matrix, rank: int) -> tuple[Tensor, Tensor]:
    """Exact top singular pairs through the eigendecomposition (float64) of the Gram
    matrix of the shorter side; LAPACK's dense SVD is many times slower here."""
    a = torch.from_numpy(m.toarray()).double()
    if a.shape[1] <= a.shape[0]:
        evals, evecs = torch.linalg.eigh(a.T @ a)
        s = evals[-rank:].flip(0).clamp(min=0).sqrt()
        v = evecs[:, -rank:].flip(1)
    else:
        evals, evecs = torch.linalg.eigh(a @ a.T)
        s = evals[-rank:].flip(0).clamp(min=0).sqrt()
        u = evecs[:, -rank:].flip(1)
        # v = Aᵀu / s; a zero singular value leaves an arbitrary (here zero) direction.
        v = (a.T @ u) / torch.where(s > 0, s, 1.0)
    return s.float().contiguous(), v.float().contiguous()


def truncated_svd(a: sp.spmatrix | sp.sparray, rank: int, iters: int = 6, oversample: int = 32,
                  seed: int = 0) -> tuple[Tensor, Tensor]:
    r"""The ``rank`` largest singular values of a sparse matrix and their right singular
    vectors, by randomized block Krylov iteration (Musco & Musco, NeurIPS 2015).

    A random block :math:`\Omega \in \mathbb{R}^{n \times (k+p)}` spans, after
    ``iters`` steps, the Krylov space
    :math:`K = [A^\top A\,\Omega, (A^\top A)^2 \Omega, \dots]` (each block orthonormalised
    as it is made, for stability); the Rayleigh–Ritz step takes the SVD of
    :math:`A Q` for an orthonormal basis :math:`Q` of :math:`K` (through the eigenvectors
    :math:`\hat V` of the small matrix :math:`(AQ)^\top AQ`) and returns
    :math:`V = Q \hat V`. Keeping every block, instead of only the last as in subspace
    iteration, makes the top singular vectors converge in far fewer sparse products when
    the spectrum is flat near the cut, as it is for interaction matrices.

    Cost: ``2 * iters`` sparse products with ``k + p`` columns and the orthogonalisation of
    an ``n × iters (k + p)`` basis; no dense ``n × n`` matrix is formed.

    A matrix of at most :data:`DENSE_SVD_ENTRIES` entries (and a side of at most
    :data:`DENSE_SVD_SIDE`) is solved exactly and densely instead, which is faster at
    that size.

    Returns:
        ``(s [rank], v [n, rank])`` float32, singular values in descending order.
    """
    m = sp.csr_matrix(a, dtype=np.float32)
    if not 0 < rank <= min(m.shape):
        raise ValueError(f"rank must lie in [1, {min(m.shape)}] for a {m.shape} matrix, got {rank}")
    if iters < 1:
        raise ValueError(f"iters must be >= 1, got {iters}")
    if m.shape[0] * m.shape[1] <= DENSE_SVD_ENTRIES and min(m.shape) <= DENSE_SVD_SIDE:
        return _dense_top_svd(m, rank)
    a_t = to_torch_csr(m)
    at_t = to_torch_csr(m.T.tocsr())
    block = min(rank + oversample, min(m.shape))
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(m.shape[1], block, generator=gen)
    blocks: list[Tensor] = []
    # The basis cannot outgrow the space: a block beyond it would be all rounding noise.
    for _ in range(max(1, min(iters, m.shape[1] // block))):
        q = at_t @ (a_t @ q)
        # Orthogonalise against the blocks so far (twice: one pass loses orthogonality
        # in float32), then within the block; the blocks together stay orthonormal.
        for _ in range(2):
            for b in blocks:
                q -= b @ (b.T @ q)
        q, _ = torch.linalg.qr(q)
        blocks.append(q)
    basis = torch.cat(blocks, 1)
    # Rayleigh–Ritz on the small Gram matrix of A Q (float64 for the eigensolver).
    w = a_t @ basis
    evals, evecs = torch.linalg.eigh((w.T @ w).double())
    top = evecs[:, -rank:].flip(1).to(torch.float32)
    s = evals[-rank:].flip(0).clamp(min=0).sqrt().to(torch.float32)
    return s.contiguous(), (basis @ top).contiguous()
