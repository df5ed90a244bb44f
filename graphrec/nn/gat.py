r"""Graph attention layer (GAT, Veličković et al., 2018) on sparse, maskable graphs."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphrec.data.adjacency import Adjacency
from graphrec.nn.additive_attention import additive_attention
from graphrec.nn.conv_base import (
    AttentionConv,
    glorot_,
    pyg_attention,
    resolve_graph,
    resolve_num_dst,
)
from graphrec.nn.graph_input import FillValue, prepare_graph

__all__ = ["GATConv"]


class GATConv(AttentionConv):
    r"""Multi-head graph attention (Veličković et al., *Graph Attention Networks*, 2018).

    For a destination node :math:`i` with incoming edges from :math:`j \in \mathcal{N}(i)`
    (plus :math:`i` itself if ``add_self_loops``), head :math:`h` computes

    .. math::
        \mathbf{x}'_{i,h} = \sum_{j \in \mathcal{N}(i)} \alpha_{ij,h}\, \mathbf{W}_h \mathbf{x}_j,
        \qquad
        \alpha_{ij,h} = \operatorname{softmax}_j\Big(\mathrm{LeakyReLU}\big(
            \mathbf{a}_{src,h}^\top \mathbf{W}_h \mathbf{x}_j
          + \mathbf{a}_{dst,h}^\top \mathbf{W}_h \mathbf{x}_i
          + \mathbf{a}_{edge,h}^\top \mathbf{W}^{edge}_h \mathbf{e}_{ij}\big)\Big).

    Heads are concatenated (``concat=True``, output ``H·C``) or averaged (output ``C``);
    then an optional residual :math:`\mathbf{W}_{res}\mathbf{x}_i` and bias are added.

    Because the score is a sum of per-node terms, every per-edge quantity is ``(E, H)``:
    the edge-feature term folds :math:`\mathbf{a}_{edge,h}^\top \mathbf{W}^{edge}_h` into a
    ``D × H`` matrix, and aggregation is a sparse–dense product per head
    (:func:`~graphrec.nn.additive_attention.additive_attention`), so no ``(E, H, C)``
    message tensor is built in the forward or backward pass.

    Parameter names match ``torch_geometric.nn.GATConv`` (``lin`` or
    ``lin_src``/``lin_dst``, ``att_src``, ``att_dst``, ``lin_edge``, ``att_edge``, ``res``,
    ``bias``) so weights can be copied across.

    Args:
        in_channels: input size, or ``(src_size, dst_size)`` for a bipartite graph with
            separate source/destination projections.
        out_channels: ``C``, size per head.
        heads: ``H``.
        concat: concatenate heads (else average them).
        negative_slope: LeakyReLU slope of the score.
        dropout: dropout probability on the attention weights (training only).
        add_self_loops: replace existing self-loops by one loop per node
            (``i < min(num_src, num_dst)``); cached on an ``Adjacency`` graph.
        edge_dim: size of edge features entering the score (``None``: no edge features).
        fill_value: edge features of added self-loops: ``"mean"``/``"sum"`` of the
            node's incoming edge features, or a constant.
        bias: learn an output bias.
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
        residual: bool = False,
    ) -> None:
        super().__init__(in_channels, out_channels, heads, concat, dropout)
        self.negative_slope = negative_slope
        self.add_self_loops = add_self_loops
        self.edge_dim = edge_dim
        self.fill_value = fill_value
        hc = heads * out_channels

        self.lin: nn.Linear | None = None
        self.lin_src: nn.Linear | None = None
        self.lin_dst: nn.Linear | None = None
        if isinstance(in_channels, int):
            self.lin = nn.Linear(in_channels, hc, bias=False)
        else:
            self.lin_src = nn.Linear(in_channels[0], hc, bias=False)
            self.lin_dst = nn.Linear(in_channels[1], hc, bias=False)
        self.att_src = nn.Parameter(torch.empty(1, heads, out_channels))
        self.att_dst = nn.Parameter(torch.empty(1, heads, out_channels))
        if edge_dim is not None:
            self.lin_edge: nn.Linear | None = nn.Linear(edge_dim, hc, bias=False)
            self.att_edge: nn.Parameter | None = nn.Parameter(torch.empty(1, heads, out_channels))
        else:
            self.lin_edge = None
            self.register_parameter("att_edge", None)
        self._init_residual_and_bias(residual, bias)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Glorot-initialise weights and attention vectors; zero the bias."""
        for lin in (self.lin, self.lin_src, self.lin_dst, self.lin_edge, self.res):
            if lin is not None:
                nn.init.xavier_uniform_(lin.weight)
        for att in (self.att_src, self.att_dst, self.att_edge):
            if att is not None:
                glorot_(att)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(
        self,
        x: Tensor | tuple[Tensor, Tensor | None],
        graph: Adjacency | Tensor | None = None,
        edge_attr: Tensor | None = None,
        edge_mask: Tensor | None = None,
        return_attention: bool = False,
        *,
        edge_index: Tensor | None = None,
        size: tuple[int | None, int | None] | None = None,
        return_attention_weights: bool | None = None,
    ) -> Tensor | tuple[Tensor, Any]:
        r"""Apply the layer.

        Args:
            x: node features ``(N, F)``, or ``(x_src, x_dst)`` for a bipartite graph
                (``x_dst`` may be ``None``: then the destination term of the score and
                the residual are left out and ``num_dst`` comes from ``graph``).
            graph: an :class:`~graphrec.data.adjacency.Adjacency` (fast path: build it
                once and reuse it) or a ``(2, E)`` ``edge_index`` of (source, destination).
            edge_attr: ``(E, edge_dim)`` (or ``(E,)``) edge features in edge-id order.
            edge_mask: bool ``(E,)`` in edge-id order; ``False`` removes the edge from
                softmax and aggregation (no graph rebuild).
            return_attention: also return the attention weights.
            edge_index: PyG's name for ``graph``, as a keyword.
            size: ``(num_src, num_dst)``, as in PyG; needed for a bipartite call on an
                ``edge_index`` without ``x_dst``, so destinations without edges are kept.
            return_attention_weights: PyG's keyword: also return
                ``(edge_index, alpha)``, the edges (self-loops appended) and their weights.

        Returns:
            ``(num_dst, H·C)`` (concat) or ``(num_dst, C)``; with ``return_attention``
            also ``alpha`` of shape ``(E, H)`` in edge-id order — ``(E + n, H)`` with
            self-loops, row ``E + i`` being node ``i``'s loop. Masked (and replaced
            self-loop) edges get 0. ``alpha`` is taken before attention dropout.
        """
        graph = resolve_graph(graph, edge_index)
        heads, channels = self.heads, self.out_channels
        x_src_in, x_dst_in = (x, x) if isinstance(x, Tensor) else x
        num_src = x_src_in.size(0)
        num_dst = resolve_num_dst(graph, x_dst_in, size)

        lin_src = self.lin if self.lin is not None else self.lin_src
        lin_dst = self.lin if self.lin is not None else self.lin_dst
        x_src = lin_src(x_src_in).view(-1, heads, channels)
        # <a_h, W_h x> = x · (W_h^T a_h): the per-node score terms come straight from the
        # inputs through an (in, H) matrix, so W x is needed only for aggregation.
        a_src = F.linear(x_src_in, self._fold(lin_src.weight, self.att_src))
        a_dst = None
        if x_dst_in is not None:
            a_dst = F.linear(x_dst_in, self._fold(lin_dst.weight, self.att_dst))

        g = prepare_graph(graph, num_src, num_dst, self.add_self_loops, edge_mask)
        a_edge = None
        if self.lin_edge is not None and edge_attr is not None:
            if edge_attr.dim() == 1:
                edge_attr = edge_attr.view(-1, 1)
            # <a_edge_h, W_edge_h e> = e · (W_edge_h^T a_edge_h): fold the projection and
            # the attention vector into one (D, H) matrix so no (E, H, C) tensor exists.
            fold = self._fold(self.lin_edge.weight, self.att_edge)
            a_edge = F.linear(g.edge_values(edge_attr.to(fold.dtype), self.fill_value), fold)

        out, alpha = additive_attention(a_src, a_dst, x_src, g.adj, a_edge, self.negative_slope,
                                        g.mask, self.dropout if self.training else 0.0)

        out = self.add_residual_and_bias(self.combine_heads(out), x_dst_in)
        if return_attention_weights:
            return out, pyg_attention(graph, g.to_caller_order(alpha))
        if return_attention:
            return out, g.to_caller_order(alpha)
        return out

    def _fold(self, weight: Tensor, att: Tensor) -> Tensor:
        """``(H·C, F)`` projection and ``(1, H, C)`` attention → ``(H, F)`` score weights."""
        return (weight.view(self.heads, self.out_channels, -1)
                * att.view(self.heads, self.out_channels, 1)).sum(1)
