"""LightGCN (He et al., SIGIR 2020)."""

from __future__ import annotations

from torch import Tensor

from graphrec.data.graph import RecGraph
from graphrec.models.base import EmbeddingRecommender
from graphrec.models.masked_graph import MaskedGraph
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
    """

    def __init__(self, graph: RecGraph, dim: int = 64, num_layers: int = 3,
                 scorer: Scorer | str = "dot", init_std: float = 0.1) -> None:
        super().__init__(graph, dim, scorer, init_std)
        self.num_layers = num_layers
        self.reset_parameters()

    def propagate(self, edge_mask: Tensor | MaskedGraph | None = None) -> tuple[Tensor, Tensor]:
        return lightgcn_propagate(self.torch_graph(), self.user_emb.weight, self.item_emb.weight,
                                  self.num_layers, edge_mask)

    def propagate_rows(self, users: Tensor, items: Tensor,
                       edge_mask: Tensor | MaskedGraph | None = None) -> tuple[Tensor, Tensor]:
        return lightgcn_rows(self.torch_graph(), self.user_emb.weight, self.item_emb.weight,
                             self.num_layers, users, items, edge_mask)
