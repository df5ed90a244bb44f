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


@dataclass
class Block:
    """One hop of a sampled computation graph: messages from the nodes ``src`` to the nodes
    ``dst`` (sorted node ids, ``dst`` a subset of ``src``).

    ``row``, ``col`` and ``weight`` are the kept entries: destination ``dst[row[k]]``
    receives ``weight[k]`` times the value of source ``src[col[k]]``.
    """

    dst: Tensor
    src: Tensor
    row: Tensor
    col: Tensor
    weight: Tensor

    def propagate(self, x: Tensor) -> Tensor:
        """The destinations' values ``[len(dst), D]`` from the sources' ``x`` ``[len(src), D]``."""
        out = x.new_zeros(self.dst.numel(), x.size(1))
        return out.index_add(0, self.row, x[self.col] * self.weight.unsqueeze(1))


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
    crow = adj.crow_indices().long()
    col_all = adj.col_indices().long()
    val_all = adj.values()
    dst = torch.unique(nodes)
    blocks = []
    for k in fan_out:
        if k < 1:
            raise ValueError(f"fan_out must be >= 1 per hop, got {list(fan_out)}")
        start, degree = crow[dst], crow[dst + 1] - crow[dst]
        row = torch.repeat_interleave(torch.arange(dst.numel(), device=dst.device), degree)
        # Position of each entry inside its row, and its place in adj's arrays.
        first = torch.cumsum(degree, 0) - degree
        within = torch.arange(row.numel(), device=dst.device) - first[row]
        entry = start[row] + within
        over = degree > k
        if bool(over.any()):
            # Rows with more than k entries keep the k with the smallest random keys: sort
            # by row, then key, and keep the first k of each row.
            keys = torch.rand(row.numel(), generator=generator, dtype=torch.float64,
                              device=dst.device)
            order = torch.argsort(row.double() + keys)
            row, entry = row[order], entry[order]
            within = torch.arange(row.numel(), device=dst.device) - first[row]
            keep = within < k
            row, entry = row[keep], entry[keep]
        scale = torch.where(over, degree.to(val_all.dtype) / k, torch.ones_like(degree, dtype=val_all.dtype))
        neighbours = col_all[entry]
        src, inverse = torch.unique(torch.cat([dst, neighbours]), return_inverse=True)
        blocks.append(Block(dst=dst, src=src, row=row, col=inverse[dst.numel():],
                            weight=val_all[entry] * scale[row]))
        dst = src
    return blocks


def sampled_layer_mean(blocks: list[Block], features: Callable[[Tensor], Tensor],
                       nodes: Tensor) -> Tensor:
    """Rows ``nodes`` of the mean of ``x, A x, ..., A^L x`` estimated on ``blocks``
    (:func:`sample_blocks` for ``nodes``); ``features(ids)`` gives the rows of ``x`` for
    sorted node ids, so only the receptive field's rows are read.

    Every node set contains the batch's nodes, so each layer's value at them is read off
    that layer's set.
    """
    targets = blocks[0].dst if blocks else torch.unique(nodes)
    h = features(blocks[-1].src if blocks else targets)
    total = _rows(h, blocks[-1].src, targets) if blocks else h
    for block in reversed(blocks):
        h = block.propagate(h)
        total = total + _rows(h, block.dst, targets)
    mean = total / (len(blocks) + 1)
    return mean[torch.searchsorted(targets, nodes)]


def _rows(h: Tensor, ids: Tensor, wanted: Tensor) -> Tensor:
    """The rows of ``h`` (values of the sorted node ids ``ids``) for ``wanted`` (sorted,
    all present in ``ids``)."""
    return h[torch.searchsorted(ids, wanted)]
