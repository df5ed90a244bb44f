"""Destination-major sparse adjacency in torch: the graph format the attention layers read.

Message passing aggregates, for every destination node, over its incoming edges. Storing
edges sorted by destination (a CSR matrix whose rows are destinations and whose columns
are sources) makes each node's incoming edges one contiguous segment, so softmax and
aggregation are segment reductions. ``edge_id`` remembers each stored edge's position in
the caller's own edge order, so that masks and attention weights can be expressed in the
ids the caller knows (e.g. :class:`~graphrec.data.graph.RecGraph` edge ids).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Adjacency:
    """Edges ``src → dst`` stored destination-major.

    Attributes:
        rowptr: ``int64[num_dst + 1]``; the incoming edges of ``d`` are the stored
            positions ``rowptr[d] .. rowptr[d+1]-1``.
        col: ``int64[E]`` source node of each stored edge.
        edge_id: ``int64[E]`` the caller's id of each stored edge (a permutation of
            ``0..E-1`` when built from an ``edge_index``).
        num_src, num_dst: node counts on each side (equal for a homogeneous graph).
        weight: optional ``float[E]`` edge weights in stored order.
    """

    rowptr: Tensor
    col: Tensor
    edge_id: Tensor
    num_src: int
    num_dst: int
    weight: Tensor | None = None

    @classmethod
    def from_edge_index(
        cls,
        edge_index: Tensor,
        num_nodes: int | tuple[int, int] | None = None,
        weight: Tensor | None = None,
    ) -> Adjacency:
        """Build from a ``(2, E)`` tensor of (source, destination) rows.

        Edge ``e`` of ``edge_index`` gets ``edge_id == e``. ``num_nodes`` is one count
        (homogeneous) or ``(num_src, num_dst)`` (bipartite); by default it is inferred.
        """
        if edge_index.dim() != 2 or edge_index.size(0) != 2:
            raise ValueError(f"edge_index must have shape (2, E), got {tuple(edge_index.shape)}")
        src, dst = edge_index[0].long(), edge_index[1].long()
        if num_nodes is None:
            n = int(edge_index.max()) + 1 if edge_index.numel() else 0
            num_src = num_dst = n
        elif isinstance(num_nodes, int):
            num_src = num_dst = num_nodes
        else:
            num_src, num_dst = num_nodes
        if src.numel():
            if int(src.min()) < 0 or int(src.max()) >= num_src:
                raise ValueError(f"edge_index sources must lie in [0, {num_src}), found "
                                 f"{int(src.min())}..{int(src.max())}")
            if int(dst.min()) < 0 or int(dst.max()) >= num_dst:
                raise ValueError(f"edge_index destinations must lie in [0, {num_dst}), found "
                                 f"{int(dst.min())}..{int(dst.max())}")
        # Sort by (dst, src); the key fits int64 for any realistic graph.
        key = dst * max(num_src, 1) + src
        order = torch.argsort(key, stable=True)
        counts = torch.bincount(dst, minlength=num_dst)
        rowptr = torch.zeros(num_dst + 1, dtype=torch.long, device=edge_index.device)
        rowptr[1:] = torch.cumsum(counts, 0)
        return cls(rowptr, src[order], order, num_src, num_dst,
                   None if weight is None else weight[order])

    @property
    def num_edges(self) -> int:
        return self.col.numel()

    @property
    def device(self) -> torch.device:
        return self.col.device

    def dst_index(self) -> Tensor:
        """Destination node of each stored edge (``int64[E]``)."""
        counts = self.rowptr[1:] - self.rowptr[:-1]
        return torch.repeat_interleave(torch.arange(self.num_dst, device=self.device), counts)

    def edge_index(self) -> Tensor:
        """``(2, E)`` (source, destination) in stored order."""
        return torch.stack([self.col, self.dst_index()])

    def in_degree(self) -> Tensor:
        """Number of incoming edges of each destination node."""
        return self.rowptr[1:] - self.rowptr[:-1]

    def to(self, device: torch.device | str) -> Adjacency:
        """A copy on ``device``."""
        return Adjacency(self.rowptr.to(device), self.col.to(device), self.edge_id.to(device),
                         self.num_src, self.num_dst,
                         None if self.weight is None else self.weight.to(device))

    def to_sparse_csr(self, values: Tensor | None = None) -> Tensor:
        """A ``torch.sparse_csr_tensor`` of shape ``(num_dst, num_src)``.

        Values are ``values`` (stored order), else the edge weights, else ones.
        """
        if values is None:
            values = self.weight if self.weight is not None else torch.ones(
                self.num_edges, device=self.device)
        return torch.sparse_csr_tensor(self.rowptr, self.col, values,
                                       size=(self.num_dst, self.num_src))

    def mask_to_stored(self, edge_mask: Tensor) -> Tensor:
        """Turn a per-edge-id boolean mask into stored order."""
        if edge_mask.numel() != self.num_edges:
            raise ValueError(f"edge_mask has {edge_mask.numel()} entries for {self.num_edges} edges")
        return edge_mask[self.edge_id]

    def to_edge_order(self, values: Tensor) -> Tensor:
        """Reorder per-stored-edge ``values`` (first dim E) into edge-id order."""
        out = torch.empty_like(values)
        out[self.edge_id] = values
        return out
