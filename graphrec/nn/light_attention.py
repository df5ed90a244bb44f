r"""Light attention propagation: attention's counterpart of LightGCN's ``LGConv``.

No feature transform and no non-linearity: a destination's output is a weighted sum of
its neighbours' inputs, with the weights of a learnable degree normalisation
(LightGCN++) redistributed by attention over each destination's incoming edges.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphrec.data.adjacency import Adjacency
from graphrec.nn.conv_base import resolve_graph, resolve_num_dst
from graphrec.nn.graph_input import prepare_graph
from graphrec.nn.softmax import edge_softmax
from graphrec.nn.sparse_matmul import sddmm, spmm

__all__ = ["LightAttentionConv"]


class LightAttentionConv(nn.Module):
    r"""Attention-weighted light propagation over existing edges.

    For a destination :math:`i` with kept incoming edges from :math:`j \in N(i)`, head
    :math:`h` (channels split into ``heads`` groups):

    .. math::
        \mathbf{x}'_{i,h} = s_i \sum_{j \in N(i)} \alpha_{ij,h}\, \mathbf{x}_{j,h},
        \qquad
        \alpha_{ij,h} = \operatorname{softmax}_{j \in N(i)}\big(
            \beta_h \cos(\mathbf{q}_{i,h}, \mathbf{x}_{j,h}) - b \log d_j \big),
        \qquad
        s_i = d_i^{-a} \sum_{k \in N(i)} d_k^{-b},

    with :math:`d_i` the destination's kept in-degree and :math:`d_j` the source's kept
    out-degree. At :math:`\beta = 0` the softmax is :math:`d_j^{-b} / \sum_k d_k^{-b}`,
    so the weight of edge :math:`j \to i` is :math:`d_i^{-a} d_j^{-b}`: the layer is
    LightGCN's propagation for :math:`a = b = \tfrac12` and LightGCN++'s
    :math:`D^{-a} A D^{-b}` otherwise. Attention only redistributes a destination's total
    weight :math:`s_i` among its neighbours; it starts as the normalisation and learns
    where to depart from it.

    The query :math:`\mathbf{q}_i` is the destination's own input (``score="self"``) or
    the sum of its kept neighbours' inputs (``score="neighbourhood"``, NGAT4Rec's
    neighbour-aware score: a neighbour weighs by how typical it is of the neighbourhood,
    which down-weights outlying interactions). Unlike GAT's additive score, whose
    destination term cancels in the softmax, the score depends on both ends.

    While :math:`\beta` is zero and not trained (``attention=False``, or
    ``beta.requires_grad_(False)`` at zero, with no attention dropout in play), the layer
    skips the scores and the softmax and is one weighted sparse product.

    Args:
        channels: input (= output) size, divisible by ``heads``.
        heads: attention heads, each with its own :math:`\beta_h` over ``channels / heads``
            channels.
        score: ``"self"`` or ``"neighbourhood"``.
        dropout: dropout on the attention weights while training.
        dst_power: :math:`a`, the destination's normalisation exponent.
        src_power: :math:`b`, the source's normalisation exponent.
        learn_powers: make :math:`a` and :math:`b` parameters (LightGCN++ with learned
            exponents) instead of constants.
        normalize: scale every input row to unit length before propagating (as LightGCN++
            does), so that large-norm (popular) nodes do not dominate their neighbours.
        attention: learn :math:`\beta`; ``False`` gives the pure (LightGCN/LightGCN++)
            normalisation with no attention parameter.
    """

    SCORES = ("self", "neighbourhood")

    def __init__(self, channels: int, heads: int = 1, score: str = "self", dropout: float = 0.0,
                 dst_power: float = 0.5, src_power: float = 0.5, learn_powers: bool = False,
                 normalize: bool = False, attention: bool = True) -> None:
        super().__init__()
        if heads < 1 or channels % heads:
            raise ValueError(f"channels ({channels}) must be divisible by heads ({heads})")
        if score not in self.SCORES:
            raise ValueError(f"score must be one of {self.SCORES}, got {score!r}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.channels, self.heads, self.score_kind = channels, heads, score
        self.dropout, self.normalize = dropout, normalize
        powers = torch.tensor([float(dst_power), float(src_power)])
        if learn_powers:
            self.powers = nn.Parameter(powers)
        else:
            self.register_buffer("powers", powers)
        self._initial_powers = (float(dst_power), float(src_power))
        self.beta: nn.Parameter | None = nn.Parameter(torch.zeros(heads)) if attention else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """β at 0 (the layer starts as the normalisation) and the exponents at their initial values."""
        with torch.no_grad():
            if self.beta is not None:
                self.beta.zero_()
            self.powers.copy_(torch.tensor(self._initial_powers))

    def is_static(self) -> bool:
        """Whether the weights are the normalisation alone: no β, or β zero with no gradient
        wanted for it, and no attention dropout in play."""
        if self.beta is None:
            return True
        if self.beta.requires_grad and torch.is_grad_enabled():
            return False
        if self.training and self.dropout > 0:
            return False
        return not bool(self.beta.detach().any())

    def forward(self, x: Tensor | tuple[Tensor, Tensor | None], graph: Adjacency | Tensor | None = None,
                edge_mask: Tensor | None = None, return_attention: bool = False,
                src_degree: Tensor | None = None,
                score_inputs: tuple[Tensor, Tensor | None] | None = None,
                logit_bias: Tensor | None = None, *, edge_index: Tensor | None = None,
                size: tuple[int | None, int | None] | None = None) -> Tensor | tuple[Tensor, Tensor]:
        r"""Propagate one step.

        Args:
            x: ``(N, channels)``, or ``(x_src, x_dst)`` for a bipartite graph (``x_dst``
                may be ``None`` unless ``score="self"`` with attention).
            graph: an :class:`~graphrec.data.adjacency.Adjacency` (build once, reuse) or a
                ``(2, E)`` ``edge_index`` of (source, destination).
            edge_mask: bool ``(E,)`` in edge-id order; ``False`` removes the edge from the
                attention, the aggregation and both degrees.
            return_attention: also return :math:`\alpha`.
            src_degree: the sources' kept out-degrees ``(num_src,)``, when ``graph`` holds
                only some destinations' edges of a larger graph (then the degrees counted
                on ``graph`` would be too small). Computed from ``graph`` when ``None``.
            score_inputs: ``(keys, queries)``, ``(num_src, channels)`` and
                ``(num_dst, channels)`` (or ``None``), compared by the score instead of
                ``x``. Then ``x`` are only the values propagated and may have any width
                divisible by ``heads`` (a graph filter propagates indicator columns, say,
                while attention compares learned node features).
            logit_bias: ``(num_src,)`` added to the logit of every edge leaving that
                source: a learned importance of each neighbour, on top of the score.
            edge_index: PyG's name for ``graph``, as a keyword.
            size: ``(num_src, num_dst)``, as in PyG; needed for a bipartite call on an
                ``edge_index`` without ``x_dst`` (or queries), so destinations without
                edges are kept.

        Returns:
            ``(num_dst, width of x)``; with ``return_attention`` also :math:`\alpha`
            ``(E, heads)`` in edge-id order (each destination's kept weights sum to 1 per
            head; masked edges get 0), before dropout and without the scale :math:`s_i`.
        """
        graph = resolve_graph(graph, edge_index)
        x_src, x_dst = (x, x) if isinstance(x, Tensor) else x
        if score_inputs is None:
            if x_src.dim() != 2 or x_src.size(1) != self.channels:
                raise ValueError(f"x must have shape (N, {self.channels}), got {tuple(x_src.shape)}")
            keys, queries = x_src, x_dst
        else:
            keys, queries = score_inputs
            if keys.shape != (x_src.size(0), self.channels):
                raise ValueError(f"score keys must have shape ({x_src.size(0)}, {self.channels}), "
                                 f"got {tuple(keys.shape)}")
            if x_src.dim() != 2 or x_src.size(1) % self.heads:
                raise ValueError(f"x must have shape (N, k * {self.heads}), got {tuple(x_src.shape)}")
        if logit_bias is not None and logit_bias.shape != (x_src.size(0),):
            raise ValueError(f"logit_bias must have shape ({x_src.size(0)},), got {tuple(logit_bias.shape)}")
        width = x_src.size(1)
        num_dst = resolve_num_dst(graph, x_dst if x_dst is not None else queries, size)
        g = prepare_graph(graph, x_src.size(0), num_dst, False, edge_mask)
        adj, mask = g.adj, g.mask
        if self.normalize:
            x_src = F.normalize(x_src, dim=-1)
        # Degrees in the inputs' precision (float32 at least: log d in half precision is coarse).
        exact = x_src.dtype if x_src.dtype in (torch.float32, torch.float64) else torch.float32
        dst_deg, src_deg = self._degrees(adj, mask, src_degree, exact)
        dst_power, src_power = self.powers[0], self.powers[1]
        # d_j^{-b} per stored edge; masked edges weigh 0.
        src_term = torch.exp(-src_power * torch.log(src_deg.clamp(min=1)))[adj.col]
        if mask is not None:
            src_term = src_term * mask
        dst_scale = torch.exp(-dst_power * torch.log(dst_deg.clamp(min=1))) * (dst_deg > 0)
        dst_index = adj.dst_index_cached()

        if self.is_static() and logit_bias is None:
            weights = (src_term * dst_scale[dst_index]).unsqueeze(1)
            out = spmm(adj, weights, x_src.view(-1, 1, width)).view(-1, width)
            if not return_attention:
                return out
            mass = torch.segment_reduce(src_term, "sum", offsets=adj.rowptr, unsafe=True)
            alpha = (src_term / mass.clamp(min=1e-30)[dst_index]).unsqueeze(1)
            return out, g.to_caller_order(alpha.expand(-1, self.heads))

        prior = (-src_power * torch.log(src_deg.clamp(min=1)))
        if logit_bias is not None:
            prior = prior + logit_bias
        prior = prior[adj.col].unsqueeze(1)
        if self.is_static():
            alpha = edge_softmax(prior.expand(-1, self.heads).contiguous(), adj, mask)
        else:
            alpha = self._attention(adj, mask, keys, queries, prior)
        weights = alpha
        if self.training and self.dropout > 0:
            weights = F.dropout(weights, self.dropout)
        h = self.heads
        # s_i multiplies all of a destination's weights: applied to the output rows.
        mass = torch.segment_reduce(src_term, "sum", offsets=adj.rowptr, unsafe=True)
        out = spmm(adj, weights, x_src.view(-1, h, width // h)).reshape(-1, width)
        out = out * (mass * dst_scale).unsqueeze(1)
        if return_attention:
            return out, g.to_caller_order(alpha)
        return out

    def _degrees(self, adj: Adjacency, mask: Tensor | None, src_degree: Tensor | None,
                 dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """Kept in-degrees of the destinations and out-degrees of the sources, as ``dtype``."""
        if mask is None:
            dst_deg = adj.rowptr.diff().to(dtype)
        else:
            dst_deg = torch.segment_reduce(mask.to(dtype), "sum", offsets=adj.rowptr, unsafe=True)
        if src_degree is not None:
            if src_degree.shape != (adj.num_src,):
                raise ValueError(f"src_degree must have shape ({adj.num_src},), "
                                 f"got {tuple(src_degree.shape)}")
            return dst_deg, src_degree.to(dst_deg.dtype)
        col = adj.col if mask is None else adj.col[mask]
        return dst_deg, torch.bincount(col, minlength=adj.num_src).to(dtype)

    def _attention(self, adj: Adjacency, mask: Tensor | None, x_src: Tensor,
                   x_dst: Tensor | None, prior: Tensor) -> Tensor:
        """Softmax weights ``(E, H)`` in stored order for the per-edge ``prior`` ``(E, 1)``."""
        h, c = self.heads, self.channels // self.heads
        if self.score_kind == "neighbourhood":
            keep = (torch.ones(adj.num_edges, 1, dtype=x_src.dtype, device=x_src.device)
                    if mask is None else mask.to(x_src.dtype).unsqueeze(1))
            # The cosine ignores scale, so the neighbours' sum serves as their mean.
            query = spmm(adj, keep, x_src.view(-1, 1, self.channels)).view(-1, self.channels)
        elif x_dst is None:
            raise ValueError("score='self' needs the destinations' inputs: pass (x_src, x_dst)")
        else:
            query = x_dst
        q, k = query.reshape(-1, h, c), x_src.view(-1, h, c)
        # cos = <q, k> / (|q| |k|): the dot products of the raw rows, scaled per edge by
        # the two inverse norms, costs E·H multiplications instead of normalising both
        # N × D tables (and their gradients) every layer.
        inv_q = torch.linalg.vector_norm(q, dim=-1).clamp(min=1e-12).reciprocal()
        inv_k = torch.linalg.vector_norm(k, dim=-1).clamp(min=1e-12).reciprocal()
        cosine = sddmm(adj, q, k) * inv_q.index_select(0, adj.dst_index_cached()) \
            * inv_k.index_select(0, adj.col)
        assert self.beta is not None
        return edge_softmax(torch.addcmul(prior, cosine, self.beta), adj, mask)

    def extra_repr(self) -> str:
        return (f"{self.channels}, heads={self.heads}, score={self.score_kind!r}, "
                f"attention={self.beta is not None}, learn_powers={isinstance(self.powers, nn.Parameter)}, "
                f"normalize={self.normalize}")
