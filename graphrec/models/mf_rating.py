"""Biased matrix factorisation for explicit ratings (Koren et al., 2009)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from graphrec.data.graph import RecGraph
from graphrec.models.masked_graph import MaskedGraph
from graphrec.models.rating import RatingModel, RatingSource


class MFRating(RatingModel):
    r"""Biased MF: a global mean, user and item biases and a dot product.

    .. math::
        \hat r_{ui} = \mu + b_u + b_i + \mathbf{p}_u^\top \mathbf{q}_i

    with :math:`\mu` the mean training rating (fixed) and the rest learned, usually with an
    L2 penalty on the batch's :math:`\mathbf{p}_u, \mathbf{q}_i, b_u, b_i`
    (:meth:`regularized`). Users and items without training ratings predict
    :math:`\mu` plus whatever their untrained parameters hold (biases start at zero).

    Args:
        graph: the training graph.
        ratings: the training ratings (see :func:`~graphrec.models.rating.edge_ratings`).
        dim: number of latent factors.
        init_std: standard deviation of the normal initialisation of the factors.
    """

    def __init__(self, graph: RecGraph, ratings: RatingSource, dim: int = 32,
                 init_std: float = 0.01) -> None:
        super().__init__(graph, ratings)
        self.dim = dim
        self.init_std = init_std
        self.user_factors = nn.Embedding(self.num_users, dim)
        self.item_factors = nn.Embedding(self.num_items, dim)
        self.user_bias = nn.Embedding(self.num_users, 1)
        self.item_bias = nn.Embedding(self.num_items, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.user_factors.weight, std=self.init_std)
        nn.init.normal_(self.item_factors.weight, std=self.init_std)
        nn.init.zeros_(self.user_bias.weight)
        nn.init.zeros_(self.item_bias.weight)

    def forward(self, users: Tensor, items: Tensor, edge_mask: Tensor | MaskedGraph | None = None) -> Tensor:
        dot = (self.user_factors(users) * self.item_factors(items)).sum(-1)
        return (self.rating_mean + self.user_bias(users).squeeze(-1)
                + self.item_bias(items).squeeze(-1) + dot)

    def predictor(self) -> Callable[[Tensor, Tensor], Tensor]:
        def predict(users: Tensor, items: Tensor) -> Tensor:
            with torch.no_grad():
                return self(users, items)
        return predict

    def regularized(self, users: Tensor, items: Tensor) -> list[Tensor]:
        return [self.user_factors(users), self.item_factors(items), self.user_bias(users),
                self.item_bias(items)]
