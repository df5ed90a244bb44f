r"""Turning a layer's ``graph`` argument (plus mask, self-loops, edge features) into what
the kernels need: an :class:`~graphrec.data.adjacency.Adjacency` and per-edge tensors in
its stored order.

Layers accept either an ``Adjacency`` or a ``(2, E)`` ``edge_index``. Building the
adjacency sorts the edges, so passing an ``Adjacency`` built once is the fast path; its
derived indices (self-loop graph, source-major order) are cached on it as well.

Edge ids: the caller's edges keep their ids ``0 .. E-1``. When a layer adds self-loops,
existing self-loops are dropped (as in PyG) and the loop of node ``i`` gets id ``E + i``,
so attention weights come back with ``E + num_loops`` rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from graphrec.data.adjacency import Adjacency

__all__ = ["GraphInput", "as_adjacency", "prepare_graph"]

FillValue = float | Tensor | str


def as_adjacency(graph: Adjacency | Tensor, num_src: int, num_dst: int) -> Adjacency:
    """Return ``graph`` as an ``Adjacency`` of shape ``num_src → num_dst``.

    An ``edge_index`` is converted (an ``O(E log E)`` sort on every call); an
    ``Adjacency`` is checked against the node counts and used as is.
    """
    if isinstance(graph, Adjacency):
        if graph.num_src != num_src or graph.num_dst != num_dst:
            raise ValueError(f"graph is {graph.num_src}->{graph.num_dst} nodes but the "
                             f"features have {num_src} source and {num_dst} destination rows")
        return graph
    if not isinstance(graph, Tensor):
        raise TypeError(f"graph must be an Adjacency or an edge_index tensor, got {type(graph)}")
    return Adjacency.from_edge_index(graph, (num_src, num_dst))


@dataclass
class GraphInput:
    """The graph a layer actually runs on.

    Attributes:
        adj: adjacency to run the kernels on (with self-loops if requested).
        base: the caller's adjacency (without added self-loops).
        mask: bool ``(adj.num_edges,)`` in ``adj``'s stored order, or ``None``.
        num_ids: size of the edge-id space (``E`` or ``E + num_loops``).
        num_loops: number of added self-loops.
        base_mask: the caller's mask in ``base``'s stored order (used for self-loop
            edge features), or ``None``.
    """

    adj: Adjacency
    base: Adjacency
    mask: Tensor | None
    num_ids: int
    num_loops: int
    base_mask: Tensor | None = None

    def edge_values(self, values: Tensor, fill_value: FillValue = "mean") -> Tensor:
        """Per-edge tensor ``(E, ...)`` in caller order → ``adj``'s stored order.

        Self-loops get ``fill_value``: ``"mean"``/``"sum"`` of the node's kept incoming
        (non-loop) edge values, or a constant (float or tensor).
        """
        base = self.base
        if values.size(0) != base.num_edges:
            raise ValueError(f"edge values have {values.size(0)} rows for {base.num_edges} edges")
        if self.num_loops == 0:
            return values.index_select(0, self.adj.edge_id)
        flat = values.reshape(base.num_edges, -1)
        loops = self._loop_fill(flat, fill_value).to(flat.dtype)
        full = torch.cat([flat, loops])
        return full.index_select(0, self.adj.edge_id).view(-1, *values.shape[1:])

    def _loop_fill(self, flat: Tensor, fill_value: FillValue) -> Tensor:
        base, n = self.base, self.num_loops
        if isinstance(fill_value, str):
            if fill_value not in ("mean", "sum"):
                raise ValueError(f"fill_value must be 'mean', 'sum', a float or a tensor, "
                                 f"got {fill_value!r}")
            dst = base.dst_index_cached()
            keep = base.col != dst
            if self.mask is not None:
                keep &= self.base_mask
            stored = flat.index_select(0, base.edge_id) * keep.view(-1, 1).to(flat.dtype)
            total = torch.segment_reduce(stored, "sum", offsets=base.rowptr, axis=0)[:n]
            if fill_value == "sum":
                return total
            count = torch.segment_reduce(keep.to(flat.dtype), "sum", offsets=base.rowptr)[:n]
            return total / count.clamp_min(1).view(-1, 1)
        fill = torch.as_tensor(fill_value, dtype=flat.dtype, device=flat.device)
        return fill.reshape(1, -1).expand(n, flat.size(1))

    def to_caller_order(self, values: Tensor) -> Tensor:
        """``(adj.num_edges, ...)`` stored-order values → ``(num_ids, ...)`` by edge id.

        Ids without an edge in ``adj`` (self-loops that were replaced) get 0.
        """
        out = values.new_zeros(self.num_ids, *values.shape[1:])
        return out.index_copy_(0, self.adj.edge_id, values)


def prepare_graph(
    graph: Adjacency | Tensor,
    num_src: int,
    num_dst: int,
    add_self_loops: bool = False,
    edge_mask: Tensor | None = None,
) -> GraphInput:
    """Resolve ``graph``, add self-loops (cached on the ``Adjacency``) and map the mask.

    Args:
        graph: ``Adjacency`` or ``(2, E)`` edge_index of the caller's edges.
        num_src: node count of the source feature matrix.
        num_dst: node count of the destination feature matrix.
        add_self_loops: replace existing self-loops by one loop per node
            ``i < min(num_src, num_dst)``; loops are never masked.
        edge_mask: optional bool ``(E,)`` in caller edge-id order; ``False`` drops the
            edge from softmax and aggregation.
    """
    base = as_adjacency(graph, num_src, num_dst)
    if edge_mask is not None:
        if edge_mask.dtype != torch.bool:
            raise TypeError(f"edge_mask must be bool, got {edge_mask.dtype}")
        if edge_mask.shape != (base.num_edges,):
            raise ValueError(f"edge_mask must have shape ({base.num_edges},), "
                             f"got {tuple(edge_mask.shape)}")
    if not add_self_loops:
        mask = None if edge_mask is None else edge_mask.index_select(0, base.edge_id)
        return GraphInput(base, base, mask, base.num_edges, 0)
    n = min(num_src, num_dst)
    adj = base.with_self_loops(n)
    mask = base_mask = None
    if edge_mask is not None:
        full = torch.cat([edge_mask, edge_mask.new_ones(n)])
        mask = full.index_select(0, adj.edge_id)
        base_mask = edge_mask.index_select(0, base.edge_id)
    return GraphInput(adj, base, mask, base.num_edges + n, n, base_mask)
