"""Sparse propagation with a symmetric matrix, shared by the graph models."""

from __future__ import annotations

import torch
from torch import Tensor

from graphrec.data.csr import csr_tensor


class PolynomialPropagation(torch.autograd.Function):
    r"""``(x + A x + A² x + … + A^L x) / (L + 1)`` for a symmetric sparse CSR ``A``.

    Evaluated Horner-style, :math:`x + A(x + A(x + \dots))`, with the addition fused
    into each sparse product (``addmm``), so a layer costs one product and no stored
    intermediate. The polynomial in a symmetric matrix is itself symmetric, so the
    backward pass is the same computation applied to the incoming gradient.
    """

    @staticmethod
    def forward(ctx, adj: Tensor, x: Tensor, num_layers: int) -> Tensor:  # type: ignore[override]
        ctx.adj, ctx.num_layers = adj, num_layers
        return _polynomial(adj, x.detach(), num_layers)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[None, Tensor, None]:  # type: ignore[override]
        return None, _polynomial(ctx.adj, grad, ctx.num_layers), None


def _polynomial(adj: Tensor, x: Tensor, num_layers: int) -> Tensor:
    if num_layers == 0:
        return x.clone()
    out = x
    for _ in range(num_layers - 1):
        out = torch.addmm(x, adj, out)
    # The mean's division rides on the last product instead of another pass over N×D.
    scale = 1.0 / (num_layers + 1)
    return torch.addmm(x, adj, out, beta=scale, alpha=scale)


def layer_mean_propagation(adj: Tensor, x: Tensor, num_layers: int) -> Tensor:
    """Mean of ``x, A x, …, A^L x`` for a symmetric sparse CSR ``A`` (autograd-aware in ``x``)."""
    return PolynomialPropagation.apply(adj, x, num_layers)


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
