"""Matrix factorisation (MF-BPR): the no-graph baseline."""

from __future__ import annotations

from torch import Tensor, nn

from graphrec.data.graph import RecGraph
from graphrec.models.base import Recommender
from graphrec.scoring import Scorer


class MF(Recommender):
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
        super().__init__(graph, dim, scorer)
        self.init_std = init_std
        self.user_emb = nn.Embedding(self.num_users, dim)
        self.item_emb = nn.Embedding(self.num_items, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.user_emb.weight, std=self.init_std)
        nn.init.normal_(self.item_emb.weight, std=self.init_std)

    def propagate(self, edge_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.user_emb.weight, self.item_emb.weight

    def regularized(self, users: Tensor, items: Tensor) -> list[Tensor]:
        return [self.user_emb(users), self.item_emb(items)]
