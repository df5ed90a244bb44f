"""What graphrec's attention layers share: sizes, head combination, residual and bias."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphrec.data.adjacency import Adjacency


def glorot_(t: Tensor) -> Tensor:
    """Glorot-uniform init over the last two dims (as for a ``(1, H, C)`` attention vector)."""
    bound = (6.0 / (t.size(-2) + t.size(-1))) ** 0.5
    with torch.no_grad():
        return t.uniform_(-bound, bound)


class AttentionConv(nn.Module):
    """Base of the attention layers: ``H`` heads of ``C`` channels over ``(src, dst)`` inputs.

    Subclasses build their projections in ``__init__`` (after calling this one), compute
    per-head messages ``(num_dst, H, C)``, and finish with :meth:`combine_heads` and, for
    layers with them, :meth:`add_residual_and_bias`.

    Args:
        in_channels: input size, or ``(src_size, dst_size)`` for bipartite graphs.
        out_channels: ``C``, size per head.
        heads: ``H``.
        concat: concatenate heads (output ``H·C``), else average them (output ``C``).
        dropout: dropout probability on the attention weights (training only).
    """

    def __init__(self, in_channels: int | tuple[int, int], out_channels: int, heads: int,
                 concat: bool, dropout: float) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.heads = heads
        self.concat = concat
        self.dropout = dropout

    @property
    def src_dst_channels(self) -> tuple[int, int]:
        """Input sizes of sources and destinations."""
        c = self.in_channels
        return (c, c) if isinstance(c, int) else (c[0], c[1])

    @property
    def total_out(self) -> int:
        """Output size: ``H·C`` when concatenating heads, else ``C``."""
        return self.heads * self.out_channels if self.concat else self.out_channels

    def _init_residual_and_bias(self, residual: bool, bias: bool) -> None:
        """Create ``res`` (a linear map of the destination input) and ``bias``."""
        dst_in = self.src_dst_channels[1]
        self.res: nn.Linear | None = (nn.Linear(dst_in, self.total_out, bias=False)
                                      if residual else None)
        if bias:
            self.bias: nn.Parameter | None = nn.Parameter(torch.empty(self.total_out))
        else:
            self.register_parameter("bias", None)

    def attention_dropout(self, alpha: Tensor) -> Tensor:
        """Dropout on attention weights while training (identity otherwise)."""
        if self.training and self.dropout > 0:
            return F.dropout(alpha, p=self.dropout)
        return alpha

    def combine_heads(self, out: Tensor) -> Tensor:
        """``(N, H, C)`` → ``(N, H·C)`` (concat) or ``(N, C)`` (mean)."""
        return out.reshape(out.size(0), out.size(1) * out.size(2)) if self.concat else out.mean(dim=1)

    def add_residual_and_bias(self, out: Tensor, x_dst: Tensor | None) -> Tensor:
        """Add ``res(x_dst)`` (when there is a residual and destination input) and ``bias``."""
        if self.res is not None and x_dst is not None:
            out = out + self.res(x_dst)
        if self.bias is not None:
            out = out + self.bias
        return out

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
                f"heads={self.heads})")


# ------------------------------------------------------------------ PyG call conventions
def resolve_graph(graph: Adjacency | Tensor | None, edge_index: Tensor | None) -> Adjacency | Tensor:
    """The graph of a call, given positionally or as PyG's ``edge_index=`` keyword."""
    if edge_index is not None:
        if graph is not None:
            raise TypeError("give the graph once: positionally or as edge_index=, not both")
        return edge_index
    if graph is None:
        raise TypeError("missing the graph: pass an Adjacency or an edge_index (also as edge_index=)")
    return graph


def resolve_num_dst(graph: Adjacency | Tensor, x_dst: Tensor | None,
                    size: tuple[int | None, int | None] | None) -> int:
    """Number of destination nodes: from ``size``, the ``Adjacency``, or ``x_dst``.

    A bare ``edge_index`` does not know about destinations without edges, so a bipartite
    call without destination features must say how many there are (``size=``, as in PyG)
    rather than have them silently dropped.
    """
    if size is not None and size[1] is not None:
        return int(size[1])
    if isinstance(graph, Adjacency):
        return graph.num_dst
    if x_dst is not None:
        return x_dst.size(0)
    raise ValueError("a bipartite call with x_dst=None on an edge_index needs size=(num_src, num_dst) "
                     "(or an Adjacency): destinations without edges cannot be inferred")


def wants_attention(return_attention: bool, return_attention_weights: bool | None) -> bool:
    """Whether to return attention, under graphrec's or PyG's keyword."""
    return bool(return_attention or return_attention_weights)


def pyg_attention(graph: Adjacency | Tensor, alpha: Tensor) -> tuple[Tensor, Tensor]:
    """``(edge_index, alpha)`` as PyG's ``return_attention_weights=True`` returns them.

    ``alpha`` is in the caller's edge-id order; rows past the graph's edges are the
    self-loops a layer added, node ``i``'s loop at row ``E + i``.
    """
    if isinstance(graph, Adjacency):
        edge_index = graph.to_edge_order(graph.edge_index().t()).t()
    else:
        edge_index = graph
    loops = alpha.size(0) - edge_index.size(1)
    if loops > 0:
        nodes = torch.arange(loops, device=edge_index.device, dtype=edge_index.dtype)
        edge_index = torch.cat([edge_index, torch.stack([nodes, nodes])], dim=1)
    return edge_index, alpha
