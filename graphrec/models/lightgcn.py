"""LightGCN (He et al., SIGIR 2020)."""

from __future__ import annotations

import torch
from torch import Tensor

from graphrec.data.graph import RecGraph
from graphrec.models.base import EmbeddingRecommender
from graphrec.models.propagation import bipartite_rows, layer_mean_propagation, lightgcn_adjacency
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
    """

    def __init__(self, graph: RecGraph, dim: int = 64, num_layers: int = 3,
                 scorer: Scorer | str = "dot", init_std: float = 0.1) -> None:
        super().__init__(graph, dim, scorer, init_std)
        self.num_layers = num_layers
        self.reset_parameters()

    def propagate(self, edge_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x = torch.cat([self.user_emb.weight, self.item_emb.weight])
        adj = lightgcn_adjacency(self.torch_graph(), edge_mask)
        out = layer_mean_propagation(adj, x, self.num_layers)
        # split (not two slices): its backward is one concatenation instead of two
        # zero-filled full-size gradients that are then added.
        user, item = out.split([self.num_users, self.num_items])
        return user, item

    def propagate_rows(self, users: Tensor, items: Tensor,
                       edge_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x = torch.cat([self.user_emb.weight, self.item_emb.weight])
        adj = lightgcn_adjacency(self.torch_graph(), edge_mask)
        return bipartite_rows(adj, x, self.num_layers, self.num_users, users, items)
