r"""GAT attention and aggregation fused into one autograd function.

:class:`~graphrec.nn.gat.GATConv` computes

.. math::
    \alpha = \operatorname{softmax}_{e \to d}\big(\mathrm{LeakyReLU}(a^{src}_s + a^{dst}_d
             + a^{edge}_e)\big),
    \qquad
    \mathbf{out}_{d,h} = \sum_{e = (s \to d)} \mathrm{dropout}(\alpha)_{e,h}\,\mathbf{x}_{s,h}.

Chaining :func:`~graphrec.nn.softmax.additive_edge_softmax` and
:func:`~graphrec.nn.sparse_matmul.spmm` gives the same values, but in the backward pass
the gradient w.r.t. :math:`\alpha` and the gradient w.r.t. the logits then exist side by
side, two ``(E, H)`` tensors. Fused, the backward pass works one head at a time: the
head's attention gradient becomes its logit gradient in place, in one ``E``-sized buffer,
and is reduced onto the nodes before the next head. Besides :math:`\alpha`, the features
and the sign of the logits (one byte per edge and head) saved by the forward pass, it
holds a few ``E``-sized buffers, which is what bounds the layer's memory on large graphs.
Unused outputs reach the backward pass as ``None`` rather than as zero-filled tensors.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from graphrec.data.adjacency import Adjacency
from graphrec.nn.softmax import (
    _additive_logits,
    _per_edge,
    _segment,
    _softmax_inplace,
)
from graphrec.nn.sparse_matmul import _head, _sampled_dot_into, _spmm_per_head

__all__ = ["additive_attention"]

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def _weights(alpha: Tensor, keep: Tensor | None, scale: float,
             perm: Tensor | None = None) -> Callable[[int], Tensor]:
    """Head ``h`` → ``alpha[h] * keep[h] * scale`` (in ``perm`` order if given), built in
    one reused ``E``-sized buffer so the dropped-out weights are never stored whole."""
    if keep is None and perm is None:
        return alpha.__getitem__
    buf = alpha.new_empty(alpha.size(1))

    def head(h: int) -> Tensor:
        if perm is None:
            return torch.mul(alpha[h], keep[h], out=buf).mul_(scale)
        torch.index_select(alpha[h], 0, perm, out=buf)
        if keep is not None:
            buf.mul_(keep[h].index_select(0, perm)).mul_(scale)
        return buf

    return head


def _transposed_aggregate(adj: Adjacency, alpha: Tensor, keep: Tensor | None, scale: float,
                          g: Tensor) -> Tensor:
    """``out[s, h] = sum_{e=(s->d)} w[h, e] g[d, h]`` with ``w = alpha * keep * scale``."""
    rowptr, col = adj.compressed_indices(transposed=True)
    return _spmm_per_head(rowptr, col, (adj.num_src, adj.num_dst), alpha.size(0),
                          _weights(alpha, keep, scale, adj.source_major().perm), g)


class _AdditiveAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a_src: Tensor, a_dst: Tensor | None, a_edge: Tensor | None, x: Tensor,
                adj: Adjacency, negative_slope: float, mask: Tensor | None,
                dropout: float) -> tuple[Tensor, Tensor]:
        # An unused output (usually alpha) then reaches backward as None instead of an
        # (E, H) tensor of zeros.
        ctx.set_materialize_grads(False)
        z = _additive_logits(a_src, a_dst, a_edge, adj)
        positive = z > 0 if any(ctx.needs_input_grad[:3]) else None
        torch.nn.functional.leaky_relu_(z, negative_slope)
        alpha = _softmax_inplace(z, adj, mask)
        keep, scale = None, 1.0
        if dropout > 0:
            keep = torch.rand_like(alpha) >= dropout
            scale = 1.0 / (1.0 - dropout)
        rowptr, col = adj.compressed_indices()
        out = _spmm_per_head(rowptr, col, (adj.num_dst, adj.num_src), alpha.size(0),
                             _weights(alpha, keep, scale), x)
        ctx.adj, ctx.negative_slope, ctx.scale = adj, negative_slope, scale
        ctx.num_src = a_src.size(0)
        ctx.save_for_backward(alpha, positive, keep, x)
        return out, alpha.t()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor | None, grad_alpha: Tensor | None):
        alpha, positive, keep, x = ctx.saved_tensors
        adj: Adjacency = ctx.adj
        grads: tuple[Tensor | None, ...] = (None, None, None)
        if any(ctx.needs_input_grad[:3]) and (grad_out is not None or grad_alpha is not None):
            # Done before the feature gradient so that its buffers are gone by the time
            # the (num_src, H, C) gradient is allocated.
            grads = _logit_grads(ctx, adj, alpha, positive, keep, x, grad_out, grad_alpha)
        grad_x = None
        if ctx.needs_input_grad[3] and grad_out is not None:
            grad_x = _transposed_aggregate(adj, alpha, keep, ctx.scale, grad_out)
        return (*grads, grad_x, None, None, None, None)


def _logit_grads(ctx, adj: Adjacency, alpha: Tensor, positive: Tensor, keep: Tensor | None,
                 x: Tensor, grad_out: Tensor | None,
                 grad_alpha: Tensor | None) -> tuple[Tensor | None, ...]:
    """Gradients of ``(a_src, a_dst, a_edge)``, one head at a time.

    Per head, one ``E``-sized buffer goes dL/d(weights) → dL/d(alpha) → dL/d(logits) in
    place and is then reduced onto the nodes; an ``(H, E)`` buffer exists only when the
    per-edge gradient itself is wanted.
    """
    need_src, need_dst, need_edge = ctx.needs_input_grad[:3]
    heads, num_edges = alpha.shape
    slope = ctx.negative_slope
    grad_src = alpha.new_zeros(heads, ctx.num_src) if need_src else None
    grad_dst = alpha.new_empty(heads, adj.num_dst) if need_dst else None
    grad_edge = alpha.new_empty(heads, num_edges) if need_edge else None
    buf = alpha.new_empty(num_edges) if grad_edge is None else None
    tmp = alpha.new_empty(num_edges)  # per-edge temporaries of every head
    if grad_out is not None:
        out_h = grad_out.new_empty(grad_out.size(0), grad_out.size(2))
        x_h = x.new_empty(x.size(0), x.size(2))
    for h in range(heads):
        g = buf if grad_edge is None else grad_edge[h]
        if grad_out is not None:
            # dL/d(weights) = <grad_out[dst], x[src]>; the dot writes into finite values.
            _sampled_dot_into(adj, _head(grad_out, h, out_h), _head(x, h, x_h), g.zero_())
            if keep is not None:
                g.mul_(keep[h]).mul_(ctx.scale)
            if grad_alpha is not None:
                g.add_(grad_alpha[:, h])
        else:
            g.copy_(grad_alpha[:, h])
        # softmax: alpha * (g - segsum(alpha * g))
        a = alpha[h]
        g.mul_(a)
        g.sub_(_per_edge(_segment(g, "sum", adj), adj, tmp).mul_(a))
        # d LeakyReLU(z)/dz is 1 for z > 0 and negative_slope otherwise.
        g.mul_(tmp.copy_(positive[h]).mul_(1.0 - slope).add_(slope))
        if grad_src is not None:
            grad_src[h].index_add_(0, adj.col, g)
        if grad_dst is not None:
            grad_dst[h] = _segment(g, "sum", adj)
    return (None if grad_src is None else grad_src.t(),
            None if grad_dst is None else grad_dst.t(),
            None if grad_edge is None else grad_edge.t())


def additive_attention(
    a_src: Tensor,
    a_dst: Tensor | None,
    x: Tensor,
    adj: Adjacency,
    a_edge: Tensor | None = None,
    negative_slope: float = 0.2,
    mask: Tensor | None = None,
    dropout: float = 0.0,
) -> tuple[Tensor, Tensor]:
    r"""GAT attention weights and the aggregation they drive, in one step.

    .. math::
        \mathbf{out}_{d,h} = \sum_{e=(s \to d)} \mathrm{dropout}(\alpha_{e,h})\,
            \mathbf{x}_{s,h},
        \qquad
        \alpha = \text{additive\_edge\_softmax}(a^{src}, a^{dst}, a^{edge})

    Args:
        a_src: ``(num_src, H)`` source score terms.
        a_dst: ``(num_dst, H)`` destination score terms, or ``None``.
        x: ``(num_src, H, C)`` source features to aggregate.
        adj: the graph.
        a_edge: optional ``(E, H)`` per-edge score terms in stored order.
        negative_slope: LeakyReLU slope.
        mask: optional bool ``(E,)`` in stored order; ``False`` removes the edge.
        dropout: probability of zeroing an attention weight (pass 0 outside training).

    Returns:
        ``(out, alpha)``: ``(num_dst, H, C)`` and the ``(E, H)`` attention weights in
        stored order, before dropout. Both are differentiable.
    """
    if x.dim() != 3 or x.shape[:2] != a_src.shape:
        raise ValueError(f"x must have shape ({a_src.size(0)}, {a_src.size(1)}, C), "
                         f"got {tuple(x.shape)}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    dtype = torch.promote_types(a_src.dtype, x.dtype)
    if dtype in _LOW_PRECISION:
        out, alpha = _AdditiveAttention.apply(
            a_src.float(), None if a_dst is None else a_dst.float(),
            None if a_edge is None else a_edge.float(), x.float(), adj,
            float(negative_slope), mask, float(dropout))
        return out.to(dtype), alpha.to(dtype)
    return _AdditiveAttention.apply(a_src, a_dst, a_edge, x, adj, float(negative_slope), mask,
                                    float(dropout))
