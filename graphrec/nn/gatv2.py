r"""Dynamic graph attention layer (GATv2, Brody et al., 2022) on sparse, maskable graphs."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from graphrec.data.adjacency import Adjacency
from graphrec.nn.conv_base import AttentionConv, glorot_, pyg_attention, resolve_graph
from graphrec.nn.gatv2_score import gatv2_scores
from graphrec.nn.graph_input import FillValue, prepare_graph
from graphrec.nn.softmax import edge_softmax
from graphrec.nn.sparse_matmul import spmm

__all__ = ["GATv2Conv"]


class GATv2Conv(AttentionConv):
    r"""Multi-head GATv2 attention (Brody et al., *How Attentive are Graph Attention
    Networks?*, 2022).

    .. math::
        \mathbf{x}'_{i,h} = \sum_{j \in \mathcal{N}(i)} \alpha_{ij,h}\, \mathbf{W}^{l}_h \mathbf{x}_j,
        \qquad
        \alpha_{ij,h} = \operatorname{softmax}_j\Big(\mathbf{a}_h^\top \mathrm{LeakyReLU}\big(
            \mathbf{W}^{l}_h \mathbf{x}_j + \mathbf{W}^{r}_h \mathbf{x}_i
            + \mathbf{W}^{edge}_h \mathbf{e}_{ij}\big)\Big)

    (:math:`\mathbf{W}^{l}, \mathbf{W}^{r}` with bias), then heads are concatenated or
    averaged and an optional residual and bias are added.

    The non-linearity sits inside the score, so each edge needs an ``H × C``
    pre-activation; :func:`~graphrec.nn.gatv2_score.gatv2_scores` evaluates it in chunks
    (recomputing in backward) so that memory stays ``O(E·H)``. Aggregation is a sparse
    product per head as in :class:`~graphrec.nn.gat.GATConv`.

    Parameter names match ``torch_geometric.nn.GATv2Conv`` (``lin_l``, ``lin_r``, ``att``,
    ``lin_edge``, ``res``, ``bias``).

    Args:
        in_channels: input size, or ``(src_size, dst_size)`` for bipartite graphs.
        out_channels: ``C``, size per head.
        heads: ``H``.
        concat: concatenate heads (else average them).
        negative_slope: LeakyReLU slope.
        dropout: dropout probability on the attention weights (training only).
        add_self_loops: replace existing self-loops by one loop per node.
        edge_dim: size of edge features entering the score.
        fill_value: edge features of added self-loops (``"mean"``, ``"sum"`` or constant).
        bias: biases in ``lin_l``/``lin_r`` and on the output.
        share_weights: use one projection for sources and destinations.
        residual: add a linear projection of the destination input.
    """

    def __init__(
        self,
        in_channels: int | tuple[int, int],
        out_channels: int,
        heads: int = 1,
        concat: bool = True,
        negative_slope: float = 0.2,
        dropout: float = 0.0,
        add_self_loops: bool = True,
        edge_dim: int | None = None,
        fill_value: FillValue = "mean",
        bias: bool = True,
        share_weights: bool = False,
        residual: bool = False,
    ) -> None:
        super().__init__(in_channels, out_channels, heads, concat, dropout)
        self.negative_slope = negative_slope
        self.add_self_loops = add_self_loops
        self.edge_dim = edge_dim
        self.fill_value = fill_value
        self.share_weights = share_weights
        hc = heads * out_channels
        src_in, dst_in = self.src_dst_channels

        self.lin_l = nn.Linear(src_in, hc, bias=bias)
        self.lin_r = self.lin_l if share_weights else nn.Linear(dst_in, hc, bias=bias)
        self.att = nn.Parameter(torch.empty(1, heads, out_channels))
        self.lin_edge: nn.Linear | None = (nn.Linear(edge_dim, hc, bias=False)
                                           if edge_dim is not None else None)
        self._init_residual_and_bias(residual, bias)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Glorot-initialise weights and the attention vector; zero all biases."""
        for lin in (self.lin_l, self.lin_r, self.lin_edge, self.res):
            if lin is not None:
                nn.init.xavier_uniform_(lin.weight)
                if lin.bias is not None:
                    nn.init.zeros_(lin.bias)
        glorot_(self.att)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

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
            edge_attr: ``(E, edge_dim)`` (or ``(E,)``) edge features in edge-id order.
            edge_mask: bool ``(E,)`` in edge-id order; ``False`` removes the edge.
            return_attention: also return the attention weights.
            edge_index: PyG's name for ``graph``, as a keyword.
            return_attention_weights: PyG's keyword: also return
                ``(edge_index, alpha)``, the edges (self-loops appended) and their weights.

        Returns:
            Like :meth:`GATConv.forward`: output ``(num_dst, H·C)`` or ``(num_dst, C)``
            and optionally ``alpha`` ``(E, H)`` (``(E + n, H)`` with self-loops).
        """
        graph = resolve_graph(graph, edge_index)
        heads, channels = self.heads, self.out_channels
        x_src_in, x_dst_in = (x, x) if isinstance(x, Tensor) else x
        if x_dst_in is None:
            raise ValueError("GATv2Conv needs destination features (x_dst)")
        x_src = self.lin_l(x_src_in).view(-1, heads, channels)
        if self.share_weights and x_dst_in is x_src_in:
            x_dst = x_src
        else:
            x_dst = self.lin_r(x_dst_in).view(-1, heads, channels)
        num_dst = x_dst.size(0)

        g = prepare_graph(graph, x_src.size(0), num_dst, self.add_self_loops, edge_mask)
        attr = weight = None
        if self.lin_edge is not None and edge_attr is not None:
            if edge_attr.dim() == 1:
                edge_attr = edge_attr.view(-1, 1)
            attr = g.edge_values(edge_attr.to(x_src.dtype), self.fill_value)
            weight = self.lin_edge.weight
        scores = gatv2_scores(x_src, x_dst, self.att.view(heads, channels), g.adj, attr, weight,
                              self.negative_slope)
        alpha = edge_softmax(scores, g.adj, g.mask)
        out = spmm(g.adj, self.attention_dropout(alpha), x_src)
        out = self.add_residual_and_bias(self.combine_heads(out), x_dst_in)
        if return_attention_weights:
            return out, pyg_attention(graph, g.to_caller_order(alpha))
        if return_attention:
            return out, g.to_caller_order(alpha)
        return out
