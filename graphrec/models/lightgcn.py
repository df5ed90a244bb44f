"""LightGCN (He et al., SIGIR 2020)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from graphrec.data.graph import RecGraph
from graphrec.models.base import EmbeddingRecommender
from graphrec.models.masked_graph import MaskedGraph
from graphrec.models.neighbor_sampling import sample_blocks, sampled_layer_mean
from graphrec.models.propagation import lightgcn_propagate, lightgcn_rows
from graphrec.scoring import Scorer


class LightGCN(EmbeddingRecommender):
    r"""LightGCN: linear propagation over the normalised user–item graph.

    .. math::
        E^{(l+1)} = \hat A\, E^{(l)}, \qquad
        E = \frac{1}{L+1} \sum_{l=0}^{L} E^{(l)}

    with :math:`\hat A = D^{-1/2} A D^{-1/2}` the symmetric-normalised bipartite
    adjacency and :math:`E^{(0)}` the free ("ego") embeddings, on which the L2 penalty
    acts. Defaults follow the paper: 64 dimensions, 3 layers, normal initialisation
    with std 0.1.

    Args:
        graph: training graph.
        dim: embedding size.
        num_layers: propagation steps :math:`L`.
        fan_out: neighbours sampled per node at each of the ``num_layers`` hops (from the
            batch outwards) when training steps propagate a batch's rows
            (:mod:`graphrec.models.neighbor_sampling`), so that a step's cost is bounded by
            the batch and the fan-out rather than the graph; ``None`` (the default)
            propagates over the whole graph. Inference (:meth:`propagate`, evaluation)
            always uses the whole graph. Sampling draws from torch's global generator,
            which the trainer seeds per epoch.
    """

    def __init__(self, graph: RecGraph, dim: int = 64, num_layers: int = 3,
                 scorer: Scorer | str = "dot", init_std: float = 0.1,
                 fan_out: Sequence[int] | None = None) -> None:
        super().__init__(graph, dim, scorer, init_std)
        self.num_layers = num_layers
        if fan_out is not None and len(fan_out) != num_layers:
            raise ValueError(f"fan_out needs one value per layer ({num_layers}), got {list(fan_out)}")
        self.fan_out = None if fan_out is None else tuple(int(k) for k in fan_out)
        self.reset_parameters()

    def _ego_rows(self, nodes: Tensor) -> Tensor:
        """Ego embeddings of sorted node ids (users first, then items offset by ``num_users``)."""
        users = int(torch.searchsorted(nodes, self.num_users))
        return torch.cat([self.user_emb.weight[nodes[:users]],
                          self.item_emb.weight[nodes[users:] - self.num_users]])

    def propagate(self, edge_mask: Tensor | MaskedGraph | None = None) -> tuple[Tensor, Tensor]:
        return lightgcn_propagate(self.torch_graph(), self.user_emb.weight, self.item_emb.weight,
                                  self.num_layers, edge_mask)

    def propagate_rows(self, users: Tensor, items: Tensor,
                       edge_mask: Tensor | MaskedGraph | None = None) -> tuple[Tensor, Tensor]:
        if self.fan_out is not None and self.training:
            if edge_mask is not None:
                raise ValueError("sampled propagation (fan_out) cannot hide edges; train "
                                 "with mask_batch_edges off")
            graph = self.torch_graph()
            nodes = torch.cat([users, items + self.num_users])
            blocks = sample_blocks(graph.norm_adj, nodes, self.fan_out)
            return sampled_layer_mean(blocks, self._ego_rows, (users, items + self.num_users))
        return lightgcn_rows(self.torch_graph(), self.user_emb.weight, self.item_emb.weight,
                             self.num_layers, users, items, edge_mask)
