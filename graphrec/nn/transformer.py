r"""Scaled dot-product (Transformer-style) attention over a graph's edges."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from graphrec.data.adjacency import Adjacency
from graphrec.nn.conv_base import AttentionConv, pyg_attention, resolve_graph
from graphrec.nn.graph_input import prepare_graph
from graphrec.nn.softmax import edge_softmax
from graphrec.nn.sparse_matmul import sddmm, spmm

__all__ = ["DotProductAttentionConv"]


class DotProductAttentionConv(AttentionConv):
    r"""Multi-head scaled dot-product attention restricted to the graph's edges
    (the graph Transformer operator of Shi et al., 2021; cf. PyG ``TransformerConv``).

    .. math::
        \mathbf{x}'_{i,h} = \mathbf{W}_{skip}\mathbf{x}_i \;+\;
            \sum_{j \in \mathcal{N}(i)} \alpha_{ij,h}
            \big(\mathbf{W}^{v}_h \mathbf{x}_j + \mathbf{W}^{e}_h \mathbf{e}_{ij}\big),
        \qquad
        \alpha_{ij,h} = \operatorname{softmax}_j \frac{
            (\mathbf{W}^{q}_h \mathbf{x}_i)^\top
            (\mathbf{W}^{k}_h \mathbf{x}_j + \mathbf{W}^{e}_h \mathbf{e}_{ij})}{\sqrt{C}}.

    With ``beta=True`` the skip term is gated instead of added:
    :math:`\mathbf{x}'_i = \beta_i \mathbf{r}_i + (1 - \beta_i)\mathbf{o}_i`,
    :math:`\beta_i = \sigma(\mathbf{w}^\top[\mathbf{o}_i, \mathbf{r}_i, \mathbf{o}_i - \mathbf{r}_i])`
    where :math:`\mathbf{o}_i` is the aggregated message and
    :math:`\mathbf{r}_i = \mathbf{W}_{skip}\mathbf{x}_i`.

    Query–key products are an SDDMM and the aggregation an SpMM
    (:mod:`graphrec.nn.sparse_matmul`). Edge features never become ``(E, H, C)``
    tensors: their score term is :math:`\langle \mathbf{W}^{e\top}_h \mathbf{q}_{i,h},
    \mathbf{e}_{ij}\rangle` (queries projected to the ``D``-dimensional edge space) and
    their message term is :math:`\mathbf{W}^{e}_h \sum_j \alpha_{ij,h}\mathbf{e}_{ij}`,
    both computed over :meth:`~graphrec.data.adjacency.Adjacency.edge_view`.

    Parameter names match ``torch_geometric.nn.TransformerConv`` (``lin_query``,
    ``lin_key``, ``lin_value``, ``lin_edge``, ``lin_skip``, ``lin_beta``).

    Args:
        in_channels: input size, or ``(src_size, dst_size)`` for bipartite graphs.
        out_channels: ``C``, size per head.
        heads: ``H``.
        concat: concatenate heads (else average them).
        beta: gate the skip connection (needs ``root_weight``).
        dropout: dropout probability on the attention weights (training only).
        edge_dim: size of edge features (``None``: none).
        bias: biases of the query/key/value/skip projections.
        root_weight: add the skip projection of the destination input.
    """

    def __init__(
        self,
        in_channels: int | tuple[int, int],
        out_channels: int,
        heads: int = 1,
        concat: bool = True,
        beta: bool = False,
        dropout: float = 0.0,
        edge_dim: int | None = None,
        bias: bool = True,
        root_weight: bool = True,
    ) -> None:
        super().__init__(in_channels, out_channels, heads, concat, dropout)
        self.beta = beta and root_weight
        self.root_weight = root_weight
        self.edge_dim = edge_dim
        src_in, dst_in = self.src_dst_channels
        hc = heads * out_channels
        self.lin_key = nn.Linear(src_in, hc, bias=bias)
        self.lin_query = nn.Linear(dst_in, hc, bias=bias)
        self.lin_value = nn.Linear(src_in, hc, bias=bias)
        self.lin_edge: nn.Linear | None = (nn.Linear(edge_dim, hc, bias=False)
                                           if edge_dim is not None else None)
        total_out = self.total_out
        self.lin_skip: nn.Linear | None = (nn.Linear(dst_in, total_out, bias=bias)
                                           if root_weight else None)
        self.lin_beta: nn.Linear | None = (nn.Linear(3 * total_out, 1, bias=False)
                                           if self.beta else None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise every projection (PyTorch's default ``nn.Linear`` init)."""
        for lin in (self.lin_key, self.lin_query, self.lin_value, self.lin_edge,
                    self.lin_skip, self.lin_beta):
            if lin is not None:
                lin.reset_parameters()

    def forward(
        self,
        x: Tensor | tuple[Tensor, Tensor],
        graph: Adjacency | Tensor | None = None,
        edge_attr: Tensor | None = None,
        edge_mask: Tensor | None = None,
        return_attention: bool = False,
        *,
        edge_index: Tensor | None = None,
        return_attention_weights: bool | None = None,
    ) -> Tensor | tuple[Tensor, Any]:
        r"""Apply the layer.

        Args:
            x: node features ``(N, F)`` or ``(x_src, x_dst)`` for a bipartite graph.
            graph: an :class:`~graphrec.data.adjacency.Adjacency` (fast path) or a
                ``(2, E)`` ``edge_index``.
            edge_attr: ``(E, edge_dim)`` edge features in edge-id order (required when
                the layer has ``edge_dim``).
            edge_mask: bool ``(E,)`` in edge-id order; ``False`` removes the edge.
            return_attention: also return ``alpha`` ``(E, H)`` in edge-id order
                (before dropout; masked edges 0).
            edge_index: PyG's name for ``graph``, as a keyword.
            return_attention_weights: PyG's keyword: also return
                ``(edge_index, alpha)``, the edges (self-loops appended) and their weights.
        """
        graph = resolve_graph(graph, edge_index)
        heads, channels = self.heads, self.out_channels
        x_src, x_dst = (x, x) if isinstance(x, Tensor) else x
        query = self.lin_query(x_dst).view(-1, heads, channels)
        key = self.lin_key(x_src).view(-1, heads, channels)
        value = self.lin_value(x_src).view(-1, heads, channels)
        num_dst = query.size(0)
        g = prepare_graph(graph, key.size(0), num_dst, False, edge_mask)
        adj = g.adj

        scale = 1.0 / math.sqrt(channels)
        scores = sddmm(adj, query, key)
        w_edge = attr = None
        if self.lin_edge is not None:
            if edge_attr is None:
                raise ValueError("this layer was built with edge_dim; pass edge_attr")
            attr = edge_attr.view(-1, 1, self.edge_dim).to(query.dtype)
            w_edge = self.lin_edge.weight.view(heads, channels, -1)
            # <q_h, W_h e> = <W_h^T q_h, e>: move queries to edge-feature space instead of
            # moving every edge's features to (H, C).
            query_e = torch.einsum("nhc,hcd->nhd", query, w_edge)
            scores = scores + sddmm(adj.edge_view(), query_e, attr)
        alpha = edge_softmax(scores * scale, adj, g.mask)
        weights = self.attention_dropout(alpha)
        out = spmm(adj, weights, value)
        if w_edge is not None:
            attr_sum = spmm(adj.edge_view(), weights, attr)
            out = out + torch.einsum("nhd,hcd->nhc", attr_sum, w_edge)

        out = self.combine_heads(out)
        if self.lin_skip is not None:
            skip = self.lin_skip(x_dst)
            if self.lin_beta is not None:
                gate = torch.sigmoid(self.lin_beta(torch.cat([out, skip, out - skip], dim=-1)))
                out = gate * skip + (1 - gate) * out
            else:
                out = out + skip
        if return_attention_weights:
            return out, pyg_attention(graph, g.to_caller_order(alpha))
        if return_attention:
            return out, g.to_caller_order(alpha)
        return out
