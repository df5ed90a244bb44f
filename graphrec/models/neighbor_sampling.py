r"""Layer-wise neighbour sampling: the receptive field of a batch, for propagation
whose cost is bounded by the batch and the fan-out instead of the graph.

Propagation over a normalised adjacency :math:`\hat A` computes, per layer,
:math:`x^{(l+1)}_v = \sum_{u \in N(v)} \hat a_{vu}\, x^{(l)}_u`. For the rows of a batch
only their :math:`L`-hop neighbourhood matters. :func:`sample_blocks` builds it layer by
layer from the CSR rows of :math:`\hat A`: starting from the batch's nodes
:math:`S_0`, each hop keeps at most ``fan_out[j]`` neighbours of every node of
:math:`S_j`, drawn uniformly without replacement, and :math:`S_{j+1} = S_j \cup`
those neighbours. A node with more neighbours than its fan-out sends the kept ones'
messages scaled by :math:`d_v / k`, an unbiased estimate of the full sum; with a
fan-out at least the maximum degree nothing is dropped and the result is exact.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from graphrec.data.csr import csr_matmul, csr_tensor

_INT32_MAX = 2**31 - 1


@dataclass
class Block:
    """One hop of a sampled computation graph: messages from the nodes ``src`` to the nodes
    ``dst`` (sorted node ids, ``dst`` a subset of ``src``).

    ``row``, ``col`` and ``weight`` are the kept entries, ordered by ``row``: destination
    ``dst[row[k]]`` receives ``weight[k]`` times the value of source ``src[col[k]]``
    (``row`` and ``col`` are int32 unless the graph has more than 2^31 - 1 nodes).
    """

    dst: Tensor
    src: Tensor
    row: Tensor
    col: Tensor
    weight: Tensor

    def matrix(self, dtype: torch.dtype | None = None, transposed: bool = False) -> Tensor:
        """The block as a sparse CSR ``[len(dst), len(src)]`` matrix (values in ``dtype``,
        by default the weights'), or its transpose ``[len(src), len(dst)]``."""
        row, col, values = self.row, self.col, self.weight
        rows, cols = self.dst.numel(), self.src.numel()
        if transposed:
            # A stable sort by column is the transpose's CSR order; torch's own CSC to CSR
            # conversion is several times slower.
            order = torch.argsort(col, stable=True)
            row, col, values = col[order], row[order], values[order]
            rows, cols = cols, rows
        if dtype is not None:
            values = values.to(dtype)
        crow = torch.zeros(rows + 1, dtype=torch.long, device=row.device)
        torch.cumsum(torch.bincount(row, minlength=rows), 0, out=crow[1:])
        return csr_tensor(crow, col, values, (rows, cols))

    def propagate(self, x: Tensor) -> Tensor:
        """The destinations' values ``[len(dst), D]`` from the sources' ``x`` ``[len(src), D]``."""
        return _BlockProduct.apply(self, x)


class _BlockProduct(torch.autograd.Function):
    """``block @ x`` as a sparse CSR product, differentiable in ``x``.

    One sparse product each way: gathering ``x[col]`` and scattering it back materialises
    an ``[entries, D]`` tensor in both passes, several times slower at hundreds of
    thousands of entries, and torch's own backward of a CSR product converts the
    transpose at a higher cost than :meth:`Block.matrix` builds it.
    """

    @staticmethod
    def forward(ctx, block: Block, x: Tensor) -> Tensor:  # type: ignore[override]
        ctx.block = block
        return csr_matmul(block.matrix(x.dtype), x.detach())

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[None, Tensor]:  # type: ignore[override]
        block, ctx.block = ctx.block, None  # its entries are not needed after this
        return None, csr_matmul(block.matrix(grad.dtype, transposed=True), grad.contiguous())


def sample_blocks(adj: Tensor, nodes: Tensor, fan_out: Sequence[int],
                  generator: torch.Generator | None = None) -> list[Block]:
    """The blocks of a ``len(fan_out)``-hop receptive field of ``nodes`` in the CSR ``adj``.

    Args:
        adj: a square sparse CSR matrix (e.g. LightGCN's normalised adjacency).
        nodes: the node ids whose outputs are wanted (repeats allowed).
        fan_out: neighbours kept per node at each hop, from the batch's nodes outwards.
        generator: the random source (default: torch's global generator).

    Returns:
        Blocks ``[B_0, ..., B_{L-1}]`` with ``B_j.dst = S_j`` and ``B_j.src = S_{j+1}``;
        propagation runs from ``B_{L-1}`` (the widest) to ``B_0`` (the batch).
    """
    # The graph's index arrays stay as they are (often int32): converting them would copy
    # the whole graph on every call; only the gathered entries are widened.
    crow = adj.crow_indices()
    col_all = adj.col_indices()
    val_all = adj.values()
    dev = nodes.device
    # Marks the nodes of the next hop's set: a pass over the nodes instead of sorting the
    # entries, which at tens of millions of entries costs more than the rest of the hop.
    seen = torch.zeros(adj.size(0), dtype=torch.bool, device=dev)
    dst = torch.unique(nodes)
    blocks = []
    for k in fan_out:
        if k < 1:
            raise ValueError(f"fan_out must be >= 1 per hop, got {list(fan_out)}")
        start = crow[dst].long()
        degree = crow[dst + 1].long() - start
        kept = degree.clamp(max=k)
        first = torch.cumsum(kept, 0) - kept
        row = torch.repeat_interleave(torch.arange(dst.numel(), device=dev), kept)
        within = torch.arange(row.numel(), device=dev) - first[row]
        over = torch.nonzero(degree > k).flatten()
        if over.numel():
            # Rows with more than k entries keep k distinct ones, a uniform k-subset drawn
            # by Floyd's algorithm: k draws per row however long it is, where random keys
            # and a sort would touch every entry of every row.
            chosen = _floyd(degree[over], k, generator)
            slots = (first[over].unsqueeze(1) + torch.arange(k, device=dev)).flatten()
            within[slots] = chosen.flatten()
        entry = start[row] + within
        scale = torch.where(degree > k, degree.to(val_all.dtype) / k,
                            torch.ones_like(degree, dtype=val_all.dtype))
        neighbours = col_all[entry].long()
        seen[dst] = True
        seen[neighbours] = True
        src = torch.nonzero(seen).flatten()
        position = torch.cumsum(seen, 0) - 1
        seen[src] = False
        weight = val_all[entry] * scale[row]
        col = position[neighbours]
        if adj.size(0) <= _INT32_MAX:
            # A saturated step holds tens of millions of entries per hop until its backward
            # pass: 32-bit positions halve what they take.
            row, col = row.to(torch.int32), col.to(torch.int32)
        blocks.append(Block(dst=dst, src=src, row=row, col=col, weight=weight))
        dst = src
    return blocks


def _floyd(n: Tensor, k: int, generator: torch.Generator | None) -> Tensor:
    """For every ``n[r] > k``, ``k`` distinct positions in ``[0, n[r])``, a uniformly random
    k-subset (Floyd's algorithm, vectorised over the rows): ``[len(n), k]``.

    Step ``j`` draws ``t`` uniformly from ``[0, m)`` with ``m = n - k + j + 1`` and keeps it,
    or ``m - 1`` (not yet chosen) if ``t`` was chosen before.
    """
    chosen = torch.empty(n.numel(), k, dtype=torch.long, device=n.device)
    for j in range(k):
        m = n - k + j + 1
        # float64 so that u * m stays below m for every u < 1 at any degree
        t = (torch.rand(n.numel(), generator=generator, dtype=torch.float64, device=n.device) * m).long()
        t = torch.minimum(t, m - 1)
        taken = (chosen[:, :j] == t.unsqueeze(1)).any(1)
        chosen[:, j] = torch.where(taken, m - 1, t)
    return chosen


def sampled_layer_mean(blocks: list[Block], features: Callable[[Tensor], Tensor],
                       nodes: Tensor | Sequence[Tensor]) -> Tensor | tuple[Tensor, ...]:
    """Rows ``nodes`` of the mean of ``x, A x, ..., A^L x`` estimated on ``blocks``
    (:func:`sample_blocks` for ``nodes``); ``features(ids)`` gives the rows of ``x`` for
    sorted node ids, so only the receptive field's rows are read.

    Every node set contains the batch's nodes, so each layer's value at them is read off
    that layer's set. ``nodes`` may be a sequence of id tensors (the blocks sampled for
    all of them together), and then the rows of each come back separately: one gather
    per part, where slicing one gathered tensor would make the backward pass fill a
    zero gradient of the whole batch's rows per slice.
    """
    parts = [nodes] if isinstance(nodes, Tensor) else list(nodes)
    targets = blocks[0].dst if blocks else torch.unique(torch.cat(parts))
    h = features(blocks[-1].src if blocks else targets)
    total = _rows(h, blocks[-1].src, targets) if blocks else h
    for block in reversed(blocks):
        h = block.propagate(h)
        total = total + _rows(h, block.dst, targets)
    mean = total / (len(blocks) + 1)
    rows = tuple(mean[torch.searchsorted(targets, part)] for part in parts)
    return rows[0] if isinstance(nodes, Tensor) else rows


def _rows(h: Tensor, ids: Tensor, wanted: Tensor) -> Tensor:
    """The rows of ``h`` (values of the sorted node ids ``ids``) for ``wanted`` (sorted,
    all present in ``ids``)."""
    if ids.numel() == wanted.numel():
        # A sorted subset as large as the set is the set: no gather (nor its backward).
        return h
    return h[torch.searchsorted(ids, wanted)]
