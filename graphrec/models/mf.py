"""Matrix factorisation (MF-BPR): the no-graph baseline."""

from __future__ import annotations

from torch import Tensor

from graphrec.data.graph import RecGraph
from graphrec.models.base import EmbeddingRecommender
from graphrec.models.masked_graph import MaskedGraph
from graphrec.scoring import Scorer


class MF(EmbeddingRecommender):
    r"""Matrix factorisation: :math:`s(u, i) = e_u^\top e_i` with free embeddings.

    Trained with BPR this is MF-BPR (Rendle et al., UAI 2009), the standard baseline
    every graph recommender has to beat.

    Args:
        graph: training graph (defines the numbers of users and items).
        dim: embedding size.
        init_std: standard deviation of the normal initialisation.
    """

    def __init__(self, graph: RecGraph, dim: int = 64, scorer: Scorer | str = "dot",
                 init_std: float = 0.1) -> None:
        super().__init__(graph, dim, scorer, init_std)
        self.reset_parameters()

    def propagate(self, edge_mask: Tensor | MaskedGraph | None = None) -> tuple[Tensor, Tensor]:
        return self.user_emb.weight, self.item_emb.weight
