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
