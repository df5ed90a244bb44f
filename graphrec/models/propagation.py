"""Sparse propagation with a symmetric matrix, shared by the graph models."""

from __future__ import annotations

import torch
from torch import Tensor

from graphrec.data.csr import csr_matmul, csr_tensor


class SymmetricSpMM(torch.autograd.Function):
    r"""``A @ X`` for a symmetric sparse CSR ``A``, with gradient ``A @ dY``.

    Because :math:`A = A^\top`, the backward pass reuses the forward matrix instead of
    building a transpose (which torch would otherwise convert to another layout on every
    step).
    """

    @staticmethod
    def forward(ctx, adj: Tensor, x: Tensor) -> Tensor:  # type: ignore[override]
        ctx.adj = adj
        return csr_matmul(adj, x.detach())

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[None, Tensor]:  # type: ignore[override]
        return None, csr_matmul(ctx.adj, grad)


def symmetric_spmm(adj: Tensor, x: Tensor) -> Tensor:
    """Multiply a symmetric sparse CSR matrix with a dense matrix (autograd-aware in ``x``)."""
    return SymmetricSpMM.apply(adj, x)


def normalized_adjacency(
    edge_index: Tensor, num_users: int, num_items: int, edge_mask: Tensor | None = None
) -> Tensor:
    r"""Symmetric-normalised bipartite adjacency built in torch, optionally without masked edges.

    :math:`\hat A = D^{-1/2} A D^{-1/2}` over the ``(U+I)`` nodes (users first), from
    user–item ``edge_index`` ``(2, E)``. Used when an edge mask changes the graph, e.g.
    to hide a batch's positive edges.
    """
    u, i = edge_index[0], edge_index[1]
    if edge_mask is not None:
        u, i = u[edge_mask], i[edge_mask]
    n = num_users + num_items
    i = i + num_users
    deg_u = torch.bincount(u, minlength=n).float()
    deg = deg_u + torch.bincount(i, minlength=n).float()
    inv = deg.clamp(min=1).rsqrt() * (deg > 0)
    w = inv[u] * inv[i]
    rows = torch.cat([u, i])
    cols = torch.cat([i, u])
    vals = torch.cat([w, w])
    key = rows * n + cols
    order = torch.argsort(key)
    rows, cols, vals = rows[order], cols[order], vals[order]
    crow = torch.zeros(n + 1, dtype=torch.long, device=edge_index.device)
    crow[1:] = torch.cumsum(torch.bincount(rows, minlength=n), 0)
    return csr_tensor(crow, cols, vals, (n, n))
