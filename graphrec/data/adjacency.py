"""Destination-major sparse adjacency in torch: the graph format the attention layers read.

Message passing aggregates, for every destination node, over its incoming edges. Storing
edges sorted by destination (a CSR matrix whose rows are destinations and whose columns
are sources) makes each node's incoming edges one contiguous segment, so softmax and
aggregation are segment reductions. ``edge_id`` remembers each stored edge's position in
the caller's own edge order, so that masks and attention weights can be expressed in the
ids the caller knows (e.g. :class:`~graphrec.data.graph.RecGraph` edge ids).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import Tensor

from graphrec.data.csr import csr_tensor, row_positions


class SourceMajor(NamedTuple):
    """The same edges grouped by source node (the CSR of the transposed matrix).

    Attributes:
        rowptr: ``int64[num_src + 1]``; the outgoing edges of ``s`` are positions
            ``rowptr[s] .. rowptr[s+1]-1`` of this ordering.
        col: ``int64[E]`` destination node of each edge in this ordering.
        perm: ``int64[E]`` stored (destination-major) position of each edge in this
            ordering, so ``values_src_major = values_stored[perm]``.
    """

    rowptr: Tensor
    col: Tensor
    perm: Tensor


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
    # Derived index tensors (destination per edge, source-major order, self-loop graph),
    # built on first use and reused for the lifetime of this object; layers hit them on
    # every forward/backward, so building them once per graph is what makes an
    # ``Adjacency`` the fast path. Excluded from ``==``/``repr``.
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

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
        elif isinstance(num_nodes, tuple | list):
            num_src, num_dst = (operator.index(n) for n in num_nodes)
        else:
            # operator.index also accepts numpy and 0-d torch integers, which are not int.
            num_src = num_dst = operator.index(num_nodes)
        if weight is not None and weight.size(0) != src.numel():
            raise ValueError(f"weight has {weight.size(0)} entries for {src.numel()} edges")
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
        return csr_tensor(self.rowptr, self.col, values, (self.num_dst, self.num_src),
                          compact_indices=False)

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

    def select_destinations(self, dst: Tensor) -> tuple[Adjacency, Tensor]:
        """The incoming edges of the destinations ``dst`` only.

        The result's destination ``k`` is ``dst[k]``; sources, edge ids and weights are
        unchanged. Also returns the stored positions of the kept edges in this graph, so
        that stored-order values (masks, weights) carry over as ``values[positions]``.
        The cost is proportional to the kept edges, not to the graph.
        """
        dst = dst.to(self.device, torch.long)
        rowptr, positions = row_positions(self.rowptr, dst)
        sub = Adjacency(rowptr, self.col[positions], self.edge_id[positions], self.num_src, dst.numel(),
                        None if self.weight is None else self.weight[positions])
        if self._cache.get("duplicates") is False and bool((dst[1:] > dst[:-1]).all()):
            sub._cache["duplicates"] = False  # distinct rows of a simple graph stay simple
        return sub, positions

    def with_stored_ids(self) -> Adjacency:
        """The same edges with ids ``0 .. E-1`` in stored order, so that per-edge values
        already in stored order (a block's mask, say) can be handed to a layer as if in
        edge-id order. Shares the index tensors and the cached views."""
        sub = Adjacency(self.rowptr, self.col, torch.arange(self.num_edges, device=self.device),
                        self.num_src, self.num_dst, self.weight)
        # Views that depend on the structure alone carry over; id-dependent ones do not.
        sub._cache.update({k: v for k, v in self._cache.items()
                           if k in ("dst", "duplicates", "source_major") or k[0] == "compressed"})
        return sub

    def compact_sources(self) -> tuple[Adjacency, Tensor]:
        """The same edges over only the sources that have one, renumbered ``0 .. S'-1``.

        Returns the graph and the original ids of its sources (ascending), so that
        per-source values need computing only for ``values[sources]``.
        """
        sources, col = torch.unique(self.col, return_inverse=True)
        return Adjacency(self.rowptr, col, self.edge_id, sources.numel(), self.num_dst, self.weight), sources

    # ------------------------------------------------------------------ cached views
    def dst_index_cached(self) -> Tensor:
        """Like :meth:`dst_index`, but computed once and kept on this object."""
        if "dst" not in self._cache:
            self._cache["dst"] = self.dst_index()
        return self._cache["dst"]

    def source_major(self) -> SourceMajor:
        """Edges regrouped by source node (cached); used for gradients w.r.t. sources."""
        if "source_major" not in self._cache:
            dst = self.dst_index_cached()
            # Stable sort keeps destinations ascending within each source group.
            perm = torch.argsort(self.col, stable=True)
            counts = torch.bincount(self.col, minlength=self.num_src)
            rowptr = torch.zeros(self.num_src + 1, dtype=torch.long, device=self.device)
            rowptr[1:] = torch.cumsum(counts, 0)
            self._cache["source_major"] = SourceMajor(rowptr, dst[perm], perm)
        return self._cache["source_major"]

    def compressed_indices(self, transposed: bool = False) -> tuple[Tensor, Tensor]:
        """``(rowptr, col)`` for sparse kernels, as int32 when the graph fits (cached).

        With ``transposed`` the source-major CSR (rows = sources, columns = destinations).
        Sparse BLAS libraries work on 32-bit indices and would otherwise convert the
        int64 arrays on every call.
        """
        key = ("compressed", transposed)
        if key not in self._cache:
            if transposed:
                sm = self.source_major()
                rowptr, col = sm.rowptr, sm.col
            else:
                rowptr, col = self.rowptr, self.col
            if self.num_edges < 2**31 - 1 and max(self.num_src, self.num_dst) < 2**31 - 1:
                rowptr, col = rowptr.to(torch.int32), col.to(torch.int32)
            self._cache[key] = (rowptr, col)
        return self._cache[key]

    def has_duplicate_edges(self) -> bool:
        """Whether some ``src → dst`` pair is stored more than once (cached)."""
        if "duplicates" not in self._cache:
            key = self.dst_index_cached() * max(self.num_src, 1) + self.col
            if key.numel() > 1 and bool((key[1:] >= key[:-1]).all()):
                dup = bool((key[1:] == key[:-1]).any())
            else:
                dup = torch.unique(key).numel() < key.numel()
            self._cache["duplicates"] = dup
        return self._cache["duplicates"]

    def edge_view(self) -> Adjacency:
        """The same destination segments with each edge's *own caller id* as its source.

        Aggregating per-edge data (shape ``(E, ...)`` in caller order) over this view
        computes ``out[d] = sum_{e -> d} w_e * data[e]``, which lets per-edge
        features reuse the node-feature kernels. Cached.
        """
        if "edge_view" not in self._cache:
            view = Adjacency(self.rowptr, self.edge_id, self.edge_id, self.num_edges,
                             self.num_dst)
            # In the transposed view every "source" (edge) has exactly one entry.
            counts = torch.ones(self.num_edges, dtype=torch.long, device=self.device)
            rowptr = torch.zeros(self.num_edges + 1, dtype=torch.long, device=self.device)
            rowptr[1:] = torch.cumsum(counts, 0)
            perm = torch.empty_like(self.edge_id)
            perm[self.edge_id] = torch.arange(self.num_edges, device=self.device)
            view._cache["dst"] = self.dst_index_cached()
            view._cache["source_major"] = SourceMajor(rowptr, self.dst_index_cached()[perm],
                                                      perm)
            self._cache["edge_view"] = view
        return self._cache["edge_view"]

    def with_self_loops(self, num_nodes: int | None = None) -> Adjacency:
        """This graph without its self-loops plus one loop ``i → i`` per ``i < num_nodes``.

        ``num_nodes`` defaults to ``min(num_src, num_dst)``. Edges keep their caller
        ids; the loop of node ``i`` gets id ``num_edges + i`` (so ids range over
        ``0 .. num_edges + num_nodes - 1`` and those of removed self-loops are
        absent). Cached per ``num_nodes``, so layers that add self-loops on every call
        pay for it once.
        """
        n = min(self.num_src, self.num_dst) if num_nodes is None else num_nodes
        if n > min(self.num_src, self.num_dst):
            raise ValueError(f"cannot add {n} self-loops to a {self.num_src}x{self.num_dst} graph")
        key = ("self_loops", n)
        if key not in self._cache:
            dst = self.dst_index_cached()
            keep = self.col != dst
            loops = torch.arange(n, device=self.device)
            src = torch.cat([self.col[keep], loops])
            dst_all = torch.cat([dst[keep], loops])
            ids = torch.cat([self.edge_id[keep], loops + self.num_edges])
            order = torch.argsort(dst_all * max(self.num_src, 1) + src, stable=True)
            counts = torch.bincount(dst_all, minlength=self.num_dst)
            rowptr = torch.zeros(self.num_dst + 1, dtype=torch.long, device=self.device)
            rowptr[1:] = torch.cumsum(counts, 0)
            weight = None
            if self.weight is not None:
                weight = torch.cat([self.weight[keep], self.weight.new_ones(n)])[order]
            adj = Adjacency(rowptr, src[order], ids[order], self.num_src, self.num_dst, weight)
            adj._cache["dst"] = dst_all[order]
            self._cache[key] = adj
        return self._cache[key]
