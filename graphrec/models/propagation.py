"""Sparse propagation with a symmetric matrix, shared by the graph models."""

from __future__ import annotations

import torch
from torch import Tensor

from graphrec.data.csr import csr_matmul, csr_tensor, row_positions
from graphrec.data.graph import TorchGraph
from graphrec.models.masked_graph import MaskedGraph, masked_view


class PolynomialPropagation(torch.autograd.Function):
    r"""``(x + A x + A² x + … + A^L x) / (L + 1)`` for a symmetric sparse CSR ``A``.

    Evaluated Horner-style, :math:`x + A(x + A(x + \dots))`, one sparse product per
    layer and no stored intermediate. The polynomial in a symmetric matrix is itself
    symmetric, so the backward pass is the same computation applied to the incoming gradient.
    """

    @staticmethod
    def forward(ctx, adj: Tensor, x: Tensor, num_layers: int) -> Tensor:  # type: ignore[override]
        ctx.adj, ctx.num_layers = adj, num_layers
        return _polynomial(adj, x.detach(), num_layers)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[None, Tensor, None]:  # type: ignore[override]
        return None, _polynomial(ctx.adj, grad, ctx.num_layers), None


def _scaled_addmm(bias: Tensor, a: Tensor, x: Tensor, scale: float) -> Tensor:
    """``scale · (bias + a @ x)`` for a sparse CSR ``a``, in a new tensor."""
    if a.device.type != "cpu":
        return torch.addmm(bias, a, x, beta=scale, alpha=scale)
    # On the CPU a sparse addmm with beta != 0 costs noticeably more than one with
    # beta = 0 into an uninitialised buffer (whose contents beta = 0 ignores) plus an add.
    out = torch.empty(a.size(0), x.size(1), dtype=x.dtype, device=x.device)
    torch.addmm(out, a, x, beta=0, alpha=scale, out=out)
    return out.add_(bias, alpha=scale)


def _polynomial(adj: Tensor, x: Tensor, num_layers: int, scale: float | None = None) -> Tensor:
    """``scale · (x + A x + … + A^L x)``; ``scale`` defaults to ``1 / (L + 1)``, the mean.

    Horner-style: the scale rides on the last product instead of another pass over N×D.
    """
    if scale is None:
        scale = 1.0 / (num_layers + 1)
    if num_layers == 0:
        return x * scale
    out = x
    for layer in range(num_layers):
        out = _scaled_addmm(x, adj, out, scale if layer == num_layers - 1 else 1.0)
    return out


def layer_mean_propagation(adj: Tensor, x: Tensor, num_layers: int) -> Tensor:
    """Mean of ``x, A x, …, A^L x`` for a symmetric sparse CSR ``A`` (autograd-aware in ``x``)."""
    return PolynomialPropagation.apply(adj, x, num_layers)


class PolynomialRows(torch.autograd.Function):
    r"""Rows ``S`` of :class:`PolynomialPropagation`'s output, without computing the others.

    With :math:`q(A) = I + A + \dots + A^{L-1}` the mean is
    :math:`\tfrac{1}{L+1}\,(x + A\,q(A)\,x)`, so its rows :math:`S` are
    :math:`\tfrac{1}{L+1}\,(x_S + A_{S,:}\,q(A)\,x)`: the last product runs over the
    rows of ``A`` in ``S`` only. Backward, for the gradient :math:`g_S`,

    .. math::
        \nabla_x = \tfrac{1}{L+1}\big(P_S^\top g_S + q(A)\,A_{:,S}\,g_S\big),

    whose first product runs over the columns of ``A`` in ``S`` only
    (:math:`A_{:,S} = A_{S,:}^\top`, transposed by a counting sort). A training batch
    needs a few thousand rows of a graph with tens of thousands of nodes, so this saves
    most of one of the :math:`L` sparse products each way.
    """

    @staticmethod
    def forward(ctx, adj: Tensor, x: Tensor, num_layers: int, rows: Tensor) -> Tensor:  # type: ignore[override]
        ctx.adj, ctx.num_layers, ctx.num_nodes = adj, num_layers, x.size(0)
        x = x.detach()
        if num_layers == 0:
            ctx.save_for_backward(rows)
            return x[rows]
        block = _row_block(adj, rows)
        ctx.save_for_backward(rows, block.crow_indices(), block.col_indices(), block.values())
        h = x if num_layers == 1 else _polynomial(adj, x, num_layers - 1, scale=1.0)
        return _scaled_addmm(x[rows], block, h, 1.0 / (num_layers + 1))

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[None, Tensor, None, None]:  # type: ignore[override]
        rows, *block = ctx.saved_tensors
        scale = 1.0 / (ctx.num_layers + 1)
        if ctx.num_layers == 0:
            out = grad.new_zeros(ctx.num_nodes, grad.size(1))
        else:
            # A is symmetric, so its columns S are the transpose of its rows S.
            columns = _transpose(*block, (rows.numel(), ctx.num_nodes))
            out = _polynomial(ctx.adj, csr_matmul(columns, grad), ctx.num_layers - 1, scale)
        return None, out.index_add_(0, rows, grad, alpha=scale), None, None


def layer_mean_rows(adj: Tensor, x: Tensor, num_layers: int, rows: Tensor) -> Tensor:
    """Rows ``rows`` (distinct node indices) of :func:`layer_mean_propagation`'s output."""
    return PolynomialRows.apply(adj, x, num_layers, rows)


def lightgcn_propagate(graph: TorchGraph, user: Tensor, item: Tensor, num_layers: int,
                       edge_mask: Tensor | MaskedGraph | None = None) -> tuple[Tensor, Tensor]:
    """LightGCN's output for ego embeddings ``user`` ``[U, D]`` and ``item`` ``[I, D]``:
    the mean of ``num_layers`` propagations over :func:`lightgcn_adjacency`."""
    adj = lightgcn_adjacency(graph, edge_mask)
    out = layer_mean_propagation(adj, torch.cat([user, item]), num_layers)
    # split (not two slices): its backward is one concatenation instead of two
    # zero-filled full-size gradients that are then added.
    user_out, item_out = out.split([user.size(0), item.size(0)])
    return user_out, item_out


def lightgcn_rows(graph: TorchGraph, user: Tensor, item: Tensor, num_layers: int, users: Tensor,
                  items: Tensor, edge_mask: Tensor | MaskedGraph | None = None
                  ) -> tuple[Tensor, Tensor]:
    """The rows ``users`` and ``items`` (repeats allowed, in the given order) of
    :func:`lightgcn_propagate`'s output, via :func:`layer_mean_rows`."""
    adj = lightgcn_adjacency(graph, edge_mask)
    num_users = user.size(0)
    nodes, inverse = torch.unique(torch.cat([users, items + num_users]), return_inverse=True)
    out = layer_mean_rows(adj, torch.cat([user, item]), num_layers, nodes)[inverse]
    return out[:users.numel()], out[users.numel():]


def _row_block(adj: Tensor, rows: Tensor) -> Tensor:
    """The rows ``rows`` of a CSR matrix, as a ``len(rows) × n`` CSR matrix."""
    rowptr, positions = row_positions(adj.crow_indices(), rows)
    return csr_tensor(rowptr, adj.col_indices()[positions], adj.values()[positions],
                      (rows.numel(), adj.size(1)))


def _transpose(crow: Tensor, col: Tensor, val: Tensor, shape: tuple[int, int]) -> Tensor:
    """The transpose of a CSR matrix given by its arrays, as a CSR matrix."""
    rows, cols = shape
    col = col.long()
    order = torch.argsort(col, stable=True)  # keeps each new row's entries sorted
    new_crow = torch.zeros(cols + 1, dtype=torch.long, device=col.device)
    torch.cumsum(torch.bincount(col, minlength=cols), 0, out=new_crow[1:])
    row = torch.repeat_interleave(torch.arange(rows, device=col.device), crow.long().diff())
    return csr_tensor(new_crow, row[order], val[order], (cols, rows))


def lightgcn_adjacency(graph: TorchGraph, edge_mask: Tensor | MaskedGraph | None = None) -> Tensor:
    """LightGCN's normalised adjacency of ``graph``: the cached one, or renormalised
    without the edges that ``edge_mask`` (bool per interaction edge, or a
    :class:`~graphrec.models.masked_graph.MaskedGraph`) removes.

    A view keeps the matrix it built: a training step that propagates twice with one
    view (hard negatives are scored first) builds it once.
    """
    view = masked_view(graph, edge_mask)
    return graph.norm_adj if view is None else view.norm_adj


def masked_norm_adj(graph: TorchGraph, mask: Tensor) -> Tensor:
    r""":math:`\hat A` of ``graph`` without the masked edges, selected from ``norm_adj``.

    ``norm_adj`` stores every interaction twice (user row, item row), each row's
    entries sorted, so the masked matrix is a selection of its entries in the same
    order with new degrees — no sort, unlike building it from the edge list.
    """
    adj = graph.norm_adj
    if adj is None or graph.edge_index.size(1) * 2 != adj.values().numel():
        return normalized_adjacency(graph.edge_index, graph.num_users, graph.num_items, mask)
    edges = graph.norm_adj_edges
    if edges is None:
        # User rows list their edges as item_to_user does (by item), item rows as
        # user_to_item does (by user): both sorted like norm_adj's rows.
        edges = torch.cat([graph.item_to_user.edge_id, graph.user_to_item.edge_id])
        graph.norm_adj_edges = edges
    n = adj.size(0)
    keep = mask[edges]
    # Kept entries before each position: at the old row starts, that is the new row starts.
    kept_before = torch.zeros(keep.numel() + 1, dtype=torch.long, device=mask.device)
    torch.cumsum(keep, 0, out=kept_before[1:])
    new_crow = kept_before[adj.crow_indices().long()]
    degree = new_crow.diff()
    inv = degree.float().clamp(min=1).rsqrt() * (degree > 0)
    row = torch.repeat_interleave(torch.arange(n, device=mask.device), degree)
    col = adj.col_indices()[keep]
    return csr_tensor(new_crow, col, inv[row] * inv[col.long()], (n, n))


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
