r"""Softmax over each destination node's incoming edges.

For scores :math:`s_{e,h}` on the edges :math:`e = (s \to d)` of a graph,

.. math::
    \alpha_{e,h} = \frac{\exp(s_{e,h} - m_{d,h})}
                        {\sum_{e' \to d} \exp(s_{e',h} - m_{d,h})},
    \qquad m_{d,h} = \max_{e' \to d} s_{e',h},

where subtracting the per-node maximum :math:`m` keeps ``exp`` from overflowing without
changing the result. Edges removed by a mask take part in neither the maximum nor the
sum and get :math:`\alpha = 0`; a node with no (unmasked) incoming edge gets all-zero
weights rather than ``0/0 = NaN``.

Because the adjacency is destination-major, each node's edges are one contiguous
segment, so the maximum and the sum are ``torch.segment_reduce`` calls. The backward
pass uses the softmax Jacobian in closed form,

.. math::
    \frac{\partial L}{\partial s_{e,h}} = \alpha_{e,h}\Big(g_{e,h} -
        \sum_{e' \to d} \alpha_{e',h}\, g_{e',h}\Big),
    \qquad g = \frac{\partial L}{\partial \alpha},

and keeps only :math:`\alpha` (one ``(E, H)`` tensor) for it.

:func:`additive_edge_softmax` fuses the GAT score
:math:`s_{e,h} = \mathrm{LeakyReLU}(a^{src}_{s,h} + a^{dst}_{d,h} + a^{edge}_{e,h})` into the
same function, so that only :math:`\alpha` and the sign of the pre-activation (one byte
per edge and head) are kept for backward instead of three float tensors.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from graphrec.data.adjacency import Adjacency

__all__ = ["edge_softmax", "additive_edge_softmax"]

_LOW_PRECISION = (torch.float16, torch.bfloat16)


# Per-edge tensors are kept head-major, ``(H, E)``, and handed out as ``(E, H)``
# transposed views: the sparse kernels consume one contiguous row per head, so no
# transposing copies are needed, and working head by head bounds temporaries to ``E``.

def _segment(values: Tensor, reduce: str, adj: Adjacency) -> Tensor:
    """Reduce a per-edge vector ``(E,)`` over each destination's segment → ``(num_dst,)``."""
    return torch.segment_reduce(values, reduce, offsets=adj.rowptr, unsafe=True)


def _per_edge(node_values: Tensor, adj: Adjacency, out: Tensor | None = None) -> Tensor:
    """Broadcast per-destination values ``(num_dst,)`` to the stored edges ``(E,)``
    (into ``out`` if given: callers looping over heads reuse one buffer)."""
    return torch.index_select(node_values, 0, adj.dst_index_cached(), out=out)


def _softmax_inplace(scores: Tensor, adj: Adjacency, mask: Tensor | None) -> Tensor:
    """Segment softmax of head-major ``scores`` (``(H, E)``, overwritten) → weights."""
    if mask is not None:
        scores.masked_fill_(~mask, float("-inf"))
    buf = scores.new_empty(scores.size(1))
    for s in scores:
        node_max = _segment(s, "max", adj)
        # Nodes without (unmasked) incoming edges have max = -inf; any finite shift
        # works for them since all their edges are exp(-inf) = 0 anyway.
        node_max.masked_fill_(torch.isneginf(node_max), 0.0)
        s.sub_(_per_edge(node_max, adj, buf)).exp_()
        denom = _segment(s, "sum", adj)
        denom.masked_fill_(denom == 0, 1.0)
        s.div_(_per_edge(denom, adj, buf))
    return scores


def _softmax_backward(alpha: Tensor, grad_alpha: Tensor, adj: Adjacency) -> Tensor:
    """Head-major softmax vector–Jacobian product: ``alpha * (g - segsum(alpha * g))``."""
    out = torch.empty_like(alpha)
    for a, g, o in zip(alpha, grad_alpha, out):
        torch.mul(a, g, out=o)
        o.sub_(_per_edge(_segment(o, "sum", adj), adj).mul_(a))
    return out


def _additive_logits(a_src: Tensor, a_dst: Tensor | None, a_edge: Tensor | None,
                     adj: Adjacency) -> Tensor:
    """Head-major ``a_src[src_e] + a_dst[dst_e] + a_edge[e]`` → ``(H, E)`` (before LeakyReLU)."""
    z = a_src.t().contiguous().index_select(1, adj.col)
    if a_dst is not None:
        a_dst_he, buf = a_dst.t().contiguous(), z.new_empty(z.size(1))
        for h in range(z.size(0)):  # head by head: one E-sized buffer, not (H, E)
            z[h].add_(_per_edge(a_dst_he[h], adj, buf))
    if a_edge is not None:
        z.add_(a_edge.t())
    return z


def _additive_logits_backward(grad: Tensor, positive: Tensor, slope: float, adj: Adjacency,
                              num_src: int, needs: tuple[bool, ...]):
    """Gradient w.r.t. LeakyReLU(logits) ``(H, E)`` (overwritten) → grads of
    ``(a_src, a_dst, a_edge)`` as ``(N, H)``/``(E, H)`` views (``None`` where not needed)."""
    # d LeakyReLU(z)/dz is 1 for z > 0 and negative_slope otherwise.
    for g, pos in zip(grad, positive):
        g.mul_(pos.to(g.dtype).mul_(1.0 - slope).add_(slope))
    grad_src = grad_dst = None
    if needs[0]:
        grad_src = grad.new_zeros(grad.size(0), num_src).index_add_(1, adj.col, grad).t()
    if needs[1]:
        grad_dst = torch.stack([_segment(g, "sum", adj) for g in grad], dim=1)
    return grad_src, grad_dst, grad.t() if needs[2] else None


class _EdgeSoftmax(torch.autograd.Function):
    @staticmethod
    def forward(ctx, scores: Tensor, adj: Adjacency, mask: Tensor | None) -> Tensor:
        alpha = _softmax_inplace(scores.t().clone(memory_format=torch.contiguous_format),
                                 adj, mask)
        ctx.adj = adj
        ctx.save_for_backward(alpha)
        return alpha.t()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_alpha: Tensor):
        (alpha,) = ctx.saved_tensors
        return _softmax_backward(alpha, grad_alpha.t(), ctx.adj).t(), None, None


class _AdditiveEdgeSoftmax(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a_src: Tensor, a_dst: Tensor | None, a_edge: Tensor | None,
                adj: Adjacency, negative_slope: float, mask: Tensor | None) -> Tensor:
        z = _additive_logits(a_src, a_dst, a_edge, adj)
        # The sign of z is all backward needs from it (1 byte per edge and head).
        positive = z > 0 if any(ctx.needs_input_grad[:3]) else None
        torch.nn.functional.leaky_relu_(z, negative_slope)
        alpha = _softmax_inplace(z, adj, mask)
        ctx.adj, ctx.negative_slope = adj, negative_slope
        ctx.num_src = a_src.size(0)
        ctx.save_for_backward(alpha, positive)
        return alpha.t()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_alpha: Tensor):
        alpha, positive = ctx.saved_tensors
        adj: Adjacency = ctx.adj
        slope = ctx.negative_slope
        grad_z = _softmax_backward(alpha, grad_alpha.t(), adj)
        return (*_additive_logits_backward(grad_z, positive, slope, adj, ctx.num_src,
                                           ctx.needs_input_grad[:3]), None, None, None)


def _as_2d(t: Tensor) -> tuple[Tensor, bool]:
    return (t.unsqueeze(-1), True) if t.dim() == 1 else (t, False)


def _check_mask(mask: Tensor | None, adj: Adjacency) -> None:
    if mask is not None and (mask.dtype != torch.bool or mask.shape != (adj.num_edges,)):
        raise ValueError(f"mask must be a bool tensor of shape ({adj.num_edges},) in stored order")


def edge_softmax(scores: Tensor, adj: Adjacency, mask: Tensor | None = None) -> Tensor:
    r"""Softmax of per-edge ``scores`` over each destination node's incoming edges.

    .. math::
        \alpha_{e,h} = \frac{\mathbb{1}[e \text{ kept}]\,\exp(s_{e,h})}
                            {\sum_{e' \to d,\ e' \text{ kept}} \exp(s_{e',h})}

    (computed max-subtracted; see the module docstring).

    Args:
        scores: ``(E,)`` or ``(E, H)`` in the adjacency's stored order.
        adj: the graph.
        mask: optional bool ``(E,)`` in stored order; ``False`` removes the edge.

    Returns:
        Attention weights shaped like ``scores``; each node's kept incoming weights sum
        to 1, masked edges and nodes with nothing to attend to get 0.
    """
    if scores.size(0) != adj.num_edges:
        raise ValueError(f"scores has {scores.size(0)} rows for {adj.num_edges} edges")
    _check_mask(mask, adj)
    s, squeeze = _as_2d(scores)
    dtype = s.dtype
    if dtype in _LOW_PRECISION:
        s = s.float()
    alpha = _EdgeSoftmax.apply(s, adj, mask).to(dtype)
    return alpha.squeeze(-1) if squeeze else alpha


def additive_edge_softmax(
    a_src: Tensor,
    a_dst: Tensor | None,
    adj: Adjacency,
    a_edge: Tensor | None = None,
    negative_slope: float = 0.2,
    mask: Tensor | None = None,
) -> Tensor:
    r"""GAT attention: additive scores followed by :func:`edge_softmax`, fused.

    .. math::
        \alpha_{e,h} = \operatorname{softmax}_{e' \to d}\Big(
            \mathrm{LeakyReLU}\big(a^{src}_{s,h} + a^{dst}_{d,h} + a^{edge}_{e,h}\big)\Big)
        \quad \text{for } e = (s \to d)

    In a GAT layer :math:`a^{src} = \langle \mathbf{W}\mathbf{x}_s, \mathbf{a}_{src} \rangle`
    and :math:`a^{dst} = \langle \mathbf{W}\mathbf{x}_d, \mathbf{a}_{dst} \rangle` are
    per-node, so the only per-edge tensors are ``(E, H)``.

    Args:
        a_src: ``(num_src, H)`` source terms.
        a_dst: ``(num_dst, H)`` destination terms, or ``None`` to leave them out.
        adj: the graph.
        a_edge: optional ``(E, H)`` per-edge terms in stored order.
        negative_slope: LeakyReLU slope for negative inputs.
        mask: optional bool ``(E,)`` in stored order; ``False`` removes the edge.

    Returns:
        ``(E, H)`` attention weights in stored order.
    """
    if a_src.dim() != 2 or a_src.size(0) != adj.num_src:
        raise ValueError(f"a_src must have shape ({adj.num_src}, H), got {tuple(a_src.shape)}")
    if a_dst is not None and a_dst.shape != (adj.num_dst, a_src.size(1)):
        raise ValueError(f"a_dst must have shape ({adj.num_dst}, {a_src.size(1)}), "
                         f"got {tuple(a_dst.shape)}")
    if a_edge is not None and a_edge.shape != (adj.num_edges, a_src.size(1)):
        raise ValueError(f"a_edge must have shape ({adj.num_edges}, {a_src.size(1)}), "
                         f"got {tuple(a_edge.shape)}")
    _check_mask(mask, adj)
    dtype = a_src.dtype
    if dtype in _LOW_PRECISION:
        a_src = a_src.float()
        a_dst = None if a_dst is None else a_dst.float()
        a_edge = None if a_edge is None else a_edge.float()
    alpha = _AdditiveEdgeSoftmax.apply(a_src, a_dst, a_edge, adj, float(negative_slope), mask)
    return alpha.to(dtype)
