"""The training graph with some interaction edges hidden, derived once per step.

A training step hides its batch's positive edges from message passing. Propagation
needs that edge mask in several forms: per stored entry of each direction's adjacency,
as kept degrees, as LightGCN's renormalised adjacency. A :class:`MaskedGraph` is built
once per step (by the trainer) from the mask and derives each form on first use, so
the step's passes (hard-negative scoring, the loss) and every layer share them.
"""

from __future__ import annotations

import torch
from torch import Tensor

from graphrec.data.adjacency import Adjacency
from graphrec.data.graph import TorchGraph


def check_edge_mask(edge_mask: Tensor, num_edges: int) -> None:
    """Refuse an edge mask that is not one bool per interaction edge.

    An integer mask would silently index edges instead of selecting them, and a mask of
    the wrong length would hide the wrong edges.
    """
    if not isinstance(edge_mask, Tensor) or edge_mask.dtype != torch.bool:
        kind = edge_mask.dtype if isinstance(edge_mask, Tensor) else type(edge_mask).__name__
        raise TypeError(f"edge_mask must be a bool tensor (True keeps an edge), got {kind}")
    if edge_mask.shape != (num_edges,):
        raise ValueError(f"edge_mask must have shape ({num_edges},), one entry per interaction "
                         f"edge, got {tuple(edge_mask.shape)}")


class MaskedGraph:
    """``graph`` without the interaction edges whose ``edge_mask`` entry is ``False``.

    Args:
        graph: the model's training graph as tensors.
        edge_mask: bool per interaction edge, in edge-id order (``graph.edge_index``).
    """

    def __init__(self, graph: TorchGraph, edge_mask: Tensor) -> None:
        check_edge_mask(edge_mask, graph.edge_index.size(1))
        self.graph = graph
        # A copy: the caller may reuse its tensor while this view is alive.
        self.edge_mask = edge_mask.to(graph.device, copy=True)
        self._stored: dict[int, Tensor] = {}
        self._degrees: tuple[Tensor, Tensor] | None = None
        self._norm_adj: Tensor | None = None

    @classmethod
    def hiding(cls, graph: TorchGraph, edge_ids: Tensor) -> MaskedGraph:
        """``graph`` without the interaction edges ``edge_ids``."""
        mask = torch.ones(graph.edge_index.size(1), dtype=torch.bool, device=graph.device)
        mask[edge_ids.to(graph.device)] = False
        return cls(graph, mask)

    def stored(self, adj: Adjacency) -> Tensor:
        """The mask in the stored order of ``adj`` (one of the graph's adjacencies, or any
        adjacency over the interaction edge ids)."""
        key = id(adj)
        if key not in self._stored:
            self._stored[key] = adj.mask_to_stored(self.edge_mask)
        return self._stored[key]

    @property
    def degrees(self) -> tuple[Tensor, Tensor]:
        """Kept degrees of the users ``[U]`` and of the items ``[I]`` (float)."""
        if self._degrees is None:
            g = self.graph
            self._degrees = (
                torch.bincount(g.edge_index[0][self.edge_mask], minlength=g.num_users).float(),
                torch.bincount(g.edge_index[1][self.edge_mask], minlength=g.num_items).float())
        return self._degrees

    @property
    def norm_adj(self) -> Tensor:
        """LightGCN's symmetric-normalised adjacency of the kept edges."""
        if self._norm_adj is None:
            # Imported here: propagation builds on this module.
            from graphrec.models.propagation import masked_norm_adj

            self._norm_adj = masked_norm_adj(self.graph, self.edge_mask)
        return self._norm_adj


def masked_view(graph: TorchGraph, edge_mask: Tensor | MaskedGraph | None) -> MaskedGraph | None:
    """``edge_mask`` as a :class:`MaskedGraph` of ``graph``: ``None`` stays ``None``, a view of
    ``graph`` is returned as it is, and a bool tensor (or a view of another copy of the
    graph, e.g. on another device) becomes a new view."""
    if edge_mask is None:
        return None
    if isinstance(edge_mask, MaskedGraph):
        if edge_mask.graph is graph:
            return edge_mask
        edge_mask = edge_mask.edge_mask
    return MaskedGraph(graph, edge_mask)


def mask_tensor(edge_mask: Tensor | MaskedGraph | None) -> Tensor | None:
    """The bool mask per interaction edge of ``edge_mask`` (a tensor or a view)."""
    return edge_mask.edge_mask if isinstance(edge_mask, MaskedGraph) else edge_mask
