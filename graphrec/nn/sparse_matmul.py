r"""Sparse–dense products over a graph's edges, per attention head.

Two kernels carry all attention layers in this package:

* :func:`spmm` (sparse × dense) aggregates per-edge weights times source features,

  .. math::
      \mathbf{out}_{d,h} = \sum_{e = (s \to d)} w_{e,h} \, \mathbf{x}_{s,h},

* :func:`sddmm` (sampled dense–dense product) computes one dot product per edge,

  .. math::
      \mathrm{score}_{e,h} = \langle \mathbf{a}_{d,h}, \mathbf{b}_{s,h} \rangle
      \quad \text{for } e = (s \to d).

Each is the other's adjoint, so their backward passes are built from one another and
neither ever materialises an ``(E, H, K)`` tensor of per-edge messages: the heavy work is
done by ``torch.sparse.mm`` and ``torch.sparse.sampled_addmm`` on CSR matrices that share
the :class:`~graphrec.data.adjacency.Adjacency` index arrays (no copies). The gradient
w.r.t. source features needs the transposed matrix; its source-major ordering is built
once and cached on the ``Adjacency`` (:meth:`~graphrec.data.adjacency.Adjacency.source_major`).

CPU sparse kernels exist for float32/float64 only, so float16/bfloat16 inputs are computed
in float32 (which also accumulates long neighbour sums more accurately) and the result is
cast back.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from graphrec.data.adjacency import Adjacency
from graphrec.data.csr import csr_matmul, csr_tensor

__all__ = ["spmm", "sddmm"]

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def _csr(rowptr: Tensor, col: Tensor, values: Tensor, shape: tuple[int, int]) -> Tensor:
    # The index arrays come from an Adjacency that validated them once (and are int32
    # already when they fit).
    return csr_tensor(rowptr, col, values, shape, compact_indices=False)


def _head(x: Tensor, h: int, out: Tensor | None = None) -> Tensor:
    """Head ``h`` of ``(N, H, K)`` features as a contiguous ``(N, K)`` matrix.

    Heads broadcast when ``H == 1``. Copying one head at a time (rather than keeping a
    head-major copy of the whole tensor) bounds the extra memory to one ``N × K`` block;
    passing that block as ``out`` reuses it for the next head.
    """
    head = x[:, h if x.size(1) > 1 else 0, :]
    return head.contiguous() if out is None else out.copy_(head)


def _spmm_per_head(rowptr: Tensor, col: Tensor, shape: tuple[int, int], heads: int,
                   head_values: Callable[[int], Tensor], x: Tensor) -> Tensor:
    """``out[:, h] = CSR(rowptr, col, head_values(h)) @ x[:, h]`` → ``(rows, H, K)``.

    ``x`` is ``(cols, H or 1, K)``. Each product is written straight into its head's
    strided slice of the output and the heads of ``x`` are copied through one reused
    buffer, so the only temporary is one ``cols × K`` block (plus whatever
    ``head_values`` makes; it may return the same buffer for every head, since each
    matrix is used up before the next is built).
    """
    out = x.new_empty(shape[0], heads, x.size(2))
    if col.numel() == 0:
        return out.zero_()
    shared = x.size(1) == 1
    # A fresh buffer, never x itself: a head of x can already be contiguous.
    xh = _head(x, 0) if shared else x.new_empty(x.size(0), x.size(2))
    for h in range(heads):
        if not shared:
            _head(x, h, xh)
        dst = out[:, h, :]
        # beta=0: the uninitialised output is ignored, not read.
        torch.addmm(dst, _csr(rowptr, col, head_values(h), shape), xh, beta=0, out=dst)
    return out


def _aggregate(rowptr: Tensor, col: Tensor, values: Tensor, x: Tensor,
               shape: tuple[int, int]) -> Tensor:
    """Per head ``h``: ``CSR(rowptr, col, values[h]) @ x[:, h]`` → ``(rows, H, K)``.

    ``values`` is ``(H, nnz)`` with contiguous rows; ``x`` is ``(cols, H or 1, K)``.
    """
    heads = values.size(0)
    if heads == 1 and values.size(1) > 0:
        return csr_matmul(_csr(rowptr, col, values[0], shape), _head(x, 0)).unsqueeze(1)
    return _spmm_per_head(rowptr, col, shape, heads, values.__getitem__, x)


def _sampled_dot(adj: Adjacency, a: Tensor, b: Tensor) -> Tensor:
    """Per head: ``<a[dst_e, h], b[src_e, h]>`` for every stored edge → ``(H, E)``."""
    heads = max(a.size(1), b.size(1))
    out = a.new_zeros(heads, adj.num_edges)
    if adj.num_edges == 0:
        return out
    if adj.has_duplicate_edges():
        return _sampled_dot_gather(adj, a, b, out)
    a_shared = _head(a, 0) if a.size(1) == 1 else None
    b_shared = _head(b, 0) if b.size(1) == 1 else None
    for h in range(heads):
        ah = a_shared if a_shared is not None else _head(a, h)
        bh = b_shared if b_shared is not None else _head(b, h)
        _sampled_dot_into(adj, ah, bh, out[h])
    return out


def _sampled_dot_into(adj: Adjacency, a: Tensor, b: Tensor, out: Tensor) -> None:
    """``out[e] = <a[dst_e], b[src_e]>`` for ``(num_dst, K)``/``(num_src, K)`` matrices,
    written into the contiguous ``(E,)`` vector ``out``, which must hold finite values.

    ``sampled_addmm`` runs in place on a CSR matrix whose values *are* ``out``: this
    skips the product's own index and value arrays (with int64 indices, three ``E``-sized
    arrays per call) and the copy out of them. ``beta=0`` still multiplies the old values,
    hence the finiteness requirement (zeros are what callers pass).
    """
    if adj.has_duplicate_edges():
        # sampled_addmm merges repeated (row, column) entries.
        _sampled_dot_gather(adj, a.unsqueeze(1), b.unsqueeze(1), out.view(1, -1))
        return
    rowptr, col = adj.compressed_indices()
    target = _csr(rowptr, col, out, (adj.num_dst, adj.num_src))
    res = torch.sparse.sampled_addmm(target, a, b.t(), beta=0.0, out=target)
    if res.values().data_ptr() != out.data_ptr():  # a build that reallocated the result
        out.copy_(res.values())


def _sampled_dot_gather(adj: Adjacency, a: Tensor, b: Tensor, out: Tensor) -> Tensor:
    """:func:`_sampled_dot` by gathering endpoint features, a chunk of edges at a time.

    Used for multigraphs: ``sampled_addmm`` merges repeated (row, column) entries.
    """
    dst = adj.dst_index_cached()
    step = max(1, (1 << 22) // (4 * max(a[0].numel(), b[0].numel(), 1)))
    for lo in range(0, adj.num_edges, step):
        hi = min(adj.num_edges, lo + step)
        prod = a.index_select(0, dst[lo:hi]) * b.index_select(0, adj.col[lo:hi])
        out[:, lo:hi] = prod.sum(-1).t()
    return out


def _aggregate_forward(adj: Adjacency, weights_he: Tensor, x: Tensor) -> Tensor:
    """``out[d, h] = sum_{e=(s->d)} weights_he[h, e] * x[s, h]`` → ``(num_dst, H, K)``."""
    rowptr, col = adj.compressed_indices()
    return _aggregate(rowptr, col, weights_he, x, (adj.num_dst, adj.num_src))


def _aggregate_transposed(adj: Adjacency, weights_he: Tensor, g: Tensor) -> Tensor:
    """``out[s, h] = sum_{e=(s->d)} weights_he[h, e] * g[d, h]`` → ``(num_src, H, K)``."""
    perm = adj.source_major().perm
    rowptr, col = adj.compressed_indices(transposed=True)
    heads = weights_he.size(0)
    shape = (adj.num_src, adj.num_dst)
    if heads == 1 and adj.num_edges > 0:
        values = weights_he[0].index_select(0, perm)
        return csr_matmul(_csr(rowptr, col, values, shape), _head(g, 0)).unsqueeze(1)
    values = weights_he.new_empty(adj.num_edges)

    def head_values(h: int) -> Tensor:  # source-major weights, one reused buffer
        return torch.index_select(weights_he[h], 0, perm, out=values)

    return _spmm_per_head(rowptr, col, shape, heads, head_values, g)


def _fold_heads(grad: Tensor, heads_in: int) -> Tensor:
    """Sum the gradient over heads that were broadcast from a single input head."""
    if heads_in == 1 and grad.size(1) > 1:
        return grad.sum(1, keepdim=True)
    return grad


def _head_major(weights: Tensor) -> Tensor:
    """``(E, H)`` → ``(H, E)`` with contiguous rows; free when ``weights`` is a transposed
    view of a head-major buffer (as the softmax functions return)."""
    return weights.t().contiguous()


class _SpMM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, adj: Adjacency, weights: Tensor, x: Tensor) -> Tensor:
        weights_he = _head_major(weights)
        ctx.adj = adj
        ctx.save_for_backward(weights_he, x)
        return _aggregate_forward(adj, weights_he, x)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):
        weights_he, x = ctx.saved_tensors
        adj: Adjacency = ctx.adj
        grad_w = grad_x = None
        if ctx.needs_input_grad[1]:
            grad_w = _sampled_dot(adj, grad_out, x).t()
        if ctx.needs_input_grad[2]:
            grad_x = _fold_heads(_aggregate_transposed(adj, weights_he, grad_out), x.size(1))
        return None, grad_w, grad_x


class _SDDMM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, adj: Adjacency, a: Tensor, b: Tensor) -> Tensor:
        ctx.adj = adj
        ctx.save_for_backward(a, b)
        return _sampled_dot(adj, a, b).t()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):
        a, b = ctx.saved_tensors
        adj: Adjacency = ctx.adj
        grad_a = grad_b = None
        g_he = _head_major(grad_out)
        if ctx.needs_input_grad[1]:
            grad_a = _fold_heads(_aggregate_forward(adj, g_he, b), a.size(1))
        if ctx.needs_input_grad[2]:
            grad_b = _fold_heads(_aggregate_transposed(adj, g_he, a), b.size(1))
        return None, grad_a, grad_b


def _check_heads(name: str, t: Tensor, heads: int) -> None:
    if t.dim() != 3 or t.size(1) not in (1, heads):
        raise ValueError(f"{name} must have shape (N, {heads} or 1, K), got {tuple(t.shape)}")


def spmm(adj: Adjacency, weights: Tensor, x: Tensor) -> Tensor:
    r"""Weighted neighbour sum, one sparse matrix per head.

    .. math::
        \mathbf{out}_{d,h,:} = \sum_{e = (s \to d)} w_{e,h} \, \mathbf{x}_{s,h,:}

    Args:
        adj: the graph (``num_src`` sources, ``num_dst`` destinations).
        weights: ``(E, H)`` per-edge weights in the adjacency's *stored* order
            (e.g. attention coefficients).
        x: ``(num_src, H, K)`` source features, or ``(num_src, 1, K)`` to share one
            feature matrix across heads.

    Returns:
        ``(num_dst, H, K)``. Differentiable in ``weights`` (an SDDMM, no per-edge
        ``K``-vectors) and ``x`` (a transposed SpMM).
    """
    if weights.dim() != 2 or weights.size(0) != adj.num_edges:
        raise ValueError(f"weights must have shape ({adj.num_edges}, H), got {tuple(weights.shape)}")
    _check_heads("x", x, weights.size(1))
    if x.size(0) != adj.num_src:
        raise ValueError(f"x has {x.size(0)} rows for {adj.num_src} source nodes")
    dtype = torch.promote_types(weights.dtype, x.dtype)
    if dtype in _LOW_PRECISION:
        return _SpMM.apply(adj, weights.float(), x.float()).to(dtype)
    return _SpMM.apply(adj, weights.to(dtype), x.to(dtype))


def sddmm(adj: Adjacency, a: Tensor, b: Tensor) -> Tensor:
    r"""Per-edge, per-head dot products of destination and source features.

    .. math::
        \mathrm{out}_{e,h} = \langle \mathbf{a}_{d,h,:}, \mathbf{b}_{s,h,:} \rangle
        \quad \text{for stored edge } e = (s \to d)

    Args:
        adj: the graph.
        a: ``(num_dst, H, K)`` destination features (``H`` may be 1 to broadcast).
        b: ``(num_src, H, K)`` source features (``H`` may be 1 to broadcast).

    Returns:
        ``(E, H)`` in stored edge order. Differentiable in ``a`` and ``b`` (each
        gradient is an SpMM, so no ``(E, H, K)`` tensor is formed).
    """
    heads = max(a.size(1), b.size(1)) if a.dim() == 3 and b.dim() == 3 else 0
    _check_heads("a", a, heads)
    _check_heads("b", b, heads)
    if a.size(0) != adj.num_dst or b.size(0) != adj.num_src:
        raise ValueError(f"a/b have {a.size(0)}/{b.size(0)} rows for a "
                         f"{adj.num_dst}x{adj.num_src} graph")
    if a.size(2) != b.size(2):
        raise ValueError(f"a and b feature sizes differ: {a.size(2)} vs {b.size(2)}")
    dtype = torch.promote_types(a.dtype, b.dtype)
    if dtype in _LOW_PRECISION:
        return _SDDMM.apply(adj, a.float(), b.float()).to(dtype)
    return _SDDMM.apply(adj, a.to(dtype), b.to(dtype))
