"""Torch sparse CSR tensors: one place that builds them and multiplies them fast."""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

_INT32_MAX = 2**31 - 1


def csr_tensor(crow: Tensor, col: Tensor, values: Tensor, size: tuple[int, int],
               compact_indices: bool = True) -> Tensor:
    """A ``torch.sparse_csr_tensor`` from arrays that are already valid CSR.

    The invariants are not re-checked (the callers build sorted, in-range indices, and a
    check costs a pass over the edges), and torch's one-off "beta feature" notice for
    sparse CSR, which callers cannot act on, is silenced. With ``compact_indices`` the
    index arrays are stored as int32 when the matrix fits: sparse BLAS kernels work on
    32-bit indices and would otherwise convert int64 indices on every product.
    """
    if compact_indices and col.numel() < _INT32_MAX and max(size) < _INT32_MAX:
        crow, col = crow.to(torch.int32), col.to(torch.int32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, col, values, size=size, check_invariants=False)


def csr_matmul(a: Tensor, x: Tensor) -> Tensor:
    """``a @ x`` for a sparse CSR ``a`` and a dense ``x``.

    On the CPU, writing into a fresh output through ``addmm(..., beta=0, out=...)`` skips
    the zero-fill and the copy that ``a @ x`` makes around the sparse BLAS call (about a
    third of its time on a 1.6M-edge graph); ``beta=0`` guarantees the uninitialised
    output is ignored.
    """
    if a.device.type != "cpu" or x.dtype != a.dtype or x.requires_grad and torch.is_grad_enabled():
        return a @ x
    out = torch.empty(a.shape[0], x.shape[1], dtype=x.dtype, device=x.device)
    return torch.addmm(out, a, x, beta=0, out=out)


def row_positions(rowptr: Tensor, rows: Tensor) -> tuple[Tensor, Tensor]:
    """Where the entries of ``rows`` of a CSR matrix sit: ``(new_rowptr, positions)``.

    ``new_rowptr`` is the row pointer of the sub-matrix made of those rows (in the given
    order) and ``positions`` the stored positions of its entries in the full matrix, so
    that ``col[positions]`` and ``values[positions]`` complete it. The cost is
    proportional to the entries kept, not to the matrix.
    """
    start = rowptr[rows].long()
    counts = rowptr[rows + 1].long() - start
    new_rowptr = torch.zeros(rows.numel() + 1, dtype=torch.long, device=rows.device)
    torch.cumsum(counts, 0, out=new_rowptr[1:])
    # entry k of the sub-matrix sits at start[r] + (k - new_rowptr[r]) for its row r
    shift = torch.repeat_interleave(start - new_rowptr[:-1], counts)
    return new_rowptr, torch.arange(shift.numel(), device=rows.device) + shift
