r"""GATv2 edge scores, computed in bounded-memory chunks of edges.

GATv2 (Brody et al., 2022) applies the non-linearity *before* the attention vector,

.. math::
    s_{e,h} = \mathbf{a}_h^\top \,\mathrm{LeakyReLU}\big(
        \mathbf{x}^{src}_{s,h} + \mathbf{x}^{dst}_{d,h} + \mathbf{W}^{edge}_h \mathbf{f}_e\big)
    \qquad e = (s \to d),

so, unlike GAT, the score does not split into per-node terms: every edge needs its own
``H × C`` pre-activation. Forming it for all edges at once costs ``E·H·C`` floats (plus
as much again for its gradient), which dominates a layer's memory on large graphs.

:func:`gatv2_scores` instead walks over the edges in chunks, keeping only one chunk's
pre-activation alive, and its backward pass recomputes the chunk's pre-activation rather
than storing it. Memory is ``O(E·H + chunk·H·C)`` and, with chunks sized to stay in
cache, the recomputation is cheaper than the memory traffic it replaces.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from graphrec.data.adjacency import Adjacency

__all__ = ["gatv2_scores"]

_LOW_PRECISION = (torch.float16, torch.bfloat16)

# Bytes of pre-activation per chunk: ~4 MiB keeps a chunk's working set in cache.
CHUNK_BYTES = 1 << 22


def _chunks(adj: Adjacency, width: int):
    """Yield ``(lo, hi, d_lo, d_hi)``: edge ranges covering whole destination segments.

    Aligning chunks with destination boundaries lets the destination gradient of a chunk
    be one segment sum written straight into ``grad[d_lo:d_hi]``.
    """
    step = max(1, CHUNK_BYTES // (4 * max(width, 1)))
    if adj.num_edges <= step:
        cuts = []
    else:
        targets = torch.arange(step, adj.num_edges, step, device=adj.rowptr.device)
        # First node whose segment starts at or after each target edge.
        cuts = torch.searchsorted(adj.rowptr, targets).tolist()
    bounds = [0, *sorted(set(cuts)), adj.num_dst]
    rowptr = adj.rowptr[bounds].tolist()
    for i in range(len(bounds) - 1):
        if rowptr[i + 1] > rowptr[i]:
            yield rowptr[i], rowptr[i + 1], bounds[i], bounds[i + 1]


def _pre_activation(x_src: Tensor, x_dst: Tensor, adj: Adjacency, dst: Tensor,
                    edge_attr: Tensor | None, edge_weight: Tensor | None,
                    lo: int, hi: int) -> Tensor:
    z = x_src.index_select(0, adj.col[lo:hi])
    z.add_(x_dst.index_select(0, dst[lo:hi]))
    if edge_attr is not None:
        z.addmm_(edge_attr[lo:hi], edge_weight.t())
    return z


class _GATv2Scores(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x_src: Tensor, x_dst: Tensor, att: Tensor, edge_attr: Tensor | None,
                edge_weight: Tensor | None, adj: Adjacency, negative_slope: float) -> Tensor:
        heads, channels = att.shape
        xs = x_src.reshape(x_src.size(0), heads * channels)
        xd = x_dst.reshape(x_dst.size(0), heads * channels)
        dst = adj.dst_index_cached()
        out = xs.new_empty(adj.num_edges, heads)
        for lo, hi, _, _ in _chunks(adj, heads * channels):
            z = _pre_activation(xs, xd, adj, dst, edge_attr, edge_weight, lo, hi)
            torch.nn.functional.leaky_relu_(z, negative_slope)
            torch.sum(z.view(-1, heads, channels).mul_(att), dim=-1, out=out[lo:hi])
        ctx.adj, ctx.negative_slope = adj, negative_slope
        ctx.save_for_backward(xs, xd, att, edge_attr, edge_weight)
        ctx.src_shape, ctx.dst_shape = x_src.shape, x_dst.shape
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):
        xs, xd, att, edge_attr, edge_weight = ctx.saved_tensors
        adj: Adjacency = ctx.adj
        slope = ctx.negative_slope
        heads, channels = att.shape
        dst = adj.dst_index_cached()
        need_src, need_dst, need_att, need_attr, need_w = ctx.needs_input_grad[:5]
        grad_src = torch.zeros_like(xs) if need_src else None
        grad_dst = torch.zeros_like(xd) if need_dst else None  # rows without edges stay 0
        grad_att = torch.zeros_like(att) if need_att else None
        grad_attr = torch.empty_like(edge_attr) if need_attr else None
        grad_w = torch.zeros_like(edge_weight) if need_w else None
        att_flat = att.reshape(1, heads * channels)
        for lo, hi, d_lo, d_hi in _chunks(adj, heads * channels):
            z = _pre_activation(xs, xd, adj, dst, edge_attr, edge_weight, lo, hi)
            g = grad_out[lo:hi]
            # dL/d(LeakyReLU(z)) = g_e,h * att_h,c, spread over the channels of each head.
            grad_act = (g.repeat_interleave(channels, dim=1) if channels > 1 else g) * att_flat
            if slope > 0:
                # LeakyReLU with a positive slope preserves sign, so its derivative can be
                # read off the activation itself and z can be overwritten.
                act = torch.nn.functional.leaky_relu_(z, slope)
                grad_z = torch.ops.aten.leaky_relu_backward(grad_act, act, slope, True)
            else:
                grad_z = torch.ops.aten.leaky_relu_backward(grad_act, z, slope, False)
                act = torch.nn.functional.leaky_relu_(z, slope)
            del grad_act
            if need_att:
                grad_att.add_((act.view(-1, heads, channels) * g.unsqueeze(-1)).sum(0))
            if need_src:
                grad_src.index_add_(0, adj.col[lo:hi], grad_z)
            if need_dst:
                offsets = adj.rowptr[d_lo:d_hi + 1] - lo
                grad_dst[d_lo:d_hi] = torch.segment_reduce(grad_z, "sum", offsets=offsets,
                                                           axis=0, unsafe=True)
            if need_attr:
                torch.mm(grad_z, edge_weight, out=grad_attr[lo:hi])
            if need_w:
                grad_w.addmm_(grad_z.t(), edge_attr[lo:hi])
        return (None if grad_src is None else grad_src.view(ctx.src_shape),
                None if grad_dst is None else grad_dst.view(ctx.dst_shape),
                grad_att, grad_attr, grad_w, None, None)


def gatv2_scores(
    x_src: Tensor,
    x_dst: Tensor,
    att: Tensor,
    adj: Adjacency,
    edge_attr: Tensor | None = None,
    edge_weight: Tensor | None = None,
    negative_slope: float = 0.2,
) -> Tensor:
    r"""GATv2 attention logits for every stored edge, without an ``(E, H, C)`` tensor.

    .. math::
        s_{e,h} = \sum_c a_{h,c}\,\mathrm{LeakyReLU}\big(x^{src}_{s,h,c} + x^{dst}_{d,h,c}
                  + (\mathbf{W}^{edge}\mathbf{f}_e)_{h,c}\big)

    Args:
        x_src: ``(num_src, H, C)`` transformed source features.
        x_dst: ``(num_dst, H, C)`` transformed destination features.
        att: ``(H, C)`` attention vectors.
        adj: the graph.
        edge_attr: optional ``(E, D)`` edge features in stored order.
        edge_weight: ``(H*C, D)`` projection of edge features (required with
            ``edge_attr``), i.e. a bias-free ``nn.Linear(D, H*C).weight``.
        negative_slope: LeakyReLU slope for negative inputs.

    Returns:
        ``(E, H)`` logits in stored order; differentiable in every tensor argument.
    """
    heads, channels = att.shape
    if x_src.shape[1:] != (heads, channels) or x_dst.shape[1:] != (heads, channels):
        raise ValueError(f"x_src/x_dst must be (N, {heads}, {channels}), got "
                         f"{tuple(x_src.shape)} / {tuple(x_dst.shape)}")
    if x_src.size(0) != adj.num_src or x_dst.size(0) != adj.num_dst:
        raise ValueError(f"x_src/x_dst have {x_src.size(0)}/{x_dst.size(0)} rows for a "
                         f"{adj.num_src}->{adj.num_dst} graph")
    if (edge_attr is None) != (edge_weight is None):
        raise ValueError("edge_attr and edge_weight must be given together")
    if edge_attr is not None:
        if edge_attr.dim() != 2 or edge_attr.size(0) != adj.num_edges:
            raise ValueError(f"edge_attr must have shape ({adj.num_edges}, D), "
                             f"got {tuple(edge_attr.shape)}")
        if edge_weight.shape != (heads * channels, edge_attr.size(1)):
            raise ValueError(f"edge_weight must have shape ({heads * channels}, "
                             f"{edge_attr.size(1)}), got {tuple(edge_weight.shape)}")
    dtype = x_src.dtype
    tensors = [x_src, x_dst, att, edge_attr, edge_weight]
    compute = torch.float32 if dtype in _LOW_PRECISION else dtype
    tensors = [None if t is None else t.to(compute).contiguous() for t in tensors]
    return _GATv2Scores.apply(*tensors, adj, float(negative_slope)).to(dtype)
