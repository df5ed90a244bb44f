"""Rating-prediction models: a shared base class and the per-edge ratings of a training graph.

A rating model is built, like a ranking model, on the training
:class:`~graphrec.data.graph.RecGraph`, and additionally on the training ratings, one per
interaction edge. The edge ratings are looked up from the training
:class:`~graphrec.data.interactions.Interactions` by (user, item) pair, and every pair must
be an edge of the graph: passing validation or test ratings fails, so ratings outside the
training split can never reach a model's graph.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from graphrec.data.errors import DataError
from graphrec.data.graph import RecGraph, TorchGraph
from graphrec.data.interactions import Interactions
from graphrec.models.base import check_indices, top_k_frame, user_indices
from graphrec.models.masked_graph import MaskedGraph

RatingSource = Interactions | np.ndarray | Tensor


def edge_ratings(graph: RecGraph, ratings: RatingSource) -> np.ndarray:
    """Training rating of every interaction edge of ``graph``, in edge-id order.

    Args:
        graph: the training graph.
        ratings: the training interactions the graph was built from (with a ``rating``
            column), or ratings already aligned with the graph's edge ids
            (``graph.edges()`` order).

    Returns:
        ``float32[num_edges]``. A (user, item) pair listed several times gets the mean of
        its ratings (:class:`RecGraph` merges such rows into one edge).

    Raises:
        DataError: the interactions have no ratings, name a pair that is not an edge of
            ``graph`` (e.g. validation or test rows), or leave an edge without a rating.
    """
    if not isinstance(ratings, Interactions):
        values = (ratings.detach().cpu().numpy() if isinstance(ratings, Tensor)
                  else np.asarray(ratings))
        values = values.astype(np.float32).reshape(-1)
        if len(values) != graph.num_edges:
            raise DataError(f"got {len(values)} ratings for {graph.num_edges} interaction edges")
        if not np.isfinite(values).all():
            raise DataError("edge ratings must be finite")
        return values
    if ratings.rating is None:
        raise DataError("the interactions have no rating column; load them with "
                        "ColumnMap(rating=...)")
    if ratings.num_users != graph.num_users or ratings.num_items != graph.num_items:
        raise DataError(f"ratings are over {ratings.num_users} users × {ratings.num_items} "
                        f"items, the graph over {graph.num_users} × {graph.num_items}; use the "
                        f"same id maps")
    users, items = graph.edges()
    # The graph's edges are sorted by (user, item), so their flat keys are ascending.
    edge_key = users * graph.num_items + items
    key = ratings.user * graph.num_items + ratings.item
    pos = np.searchsorted(edge_key, key)
    found = pos < len(edge_key)
    found[found] = edge_key[pos[found]] == key[found]
    if not found.all():
        row = int(np.flatnonzero(~found)[0])
        raise DataError(f"{int((~found).sum())} rated pairs are not edges of the graph (first: row "
                        f"{row}, user {ratings.user[row]}, item {ratings.item[row]}); build the "
                        f"graph from the same (training) interactions as the ratings")
    count = np.bincount(pos, minlength=graph.num_edges)
    if (count == 0).any():
        edge = int(np.flatnonzero(count == 0)[0])
        raise DataError(f"{int((count == 0).sum())} interaction edges have no rating (first: "
                        f"user {users[edge]}, item {items[edge]})")
    total = np.bincount(pos, weights=ratings.rating.astype(np.float64), minlength=graph.num_edges)
    return (total / count).astype(np.float32)


class RatingModel(nn.Module):
    """Base class of rating-prediction models.

    Holds the training graph and its edge ratings (``edge_rating``, edge-id order), the
    training mean and range of the ratings, and the graph as tensors. Subclasses implement
    :meth:`forward` (predictions for a batch of pairs, optionally with interaction edges
    hidden from message passing) and :meth:`predictor` (a fast function for many pairs in
    inference mode), and may override :meth:`regularized`.

    Args:
        graph: the training graph.
        ratings: training ratings (see :func:`edge_ratings`).
    """

    def __init__(self, graph: RecGraph, ratings: RatingSource) -> None:
        super().__init__()
        self.graph = graph
        self.num_users = graph.num_users
        self.num_items = graph.num_items
        values = edge_ratings(graph, ratings)
        self.register_buffer("edge_rating", torch.from_numpy(values))
        self.rating_mean = float(values.mean()) if len(values) else 0.0
        self.rating_min = float(values.min()) if len(values) else 0.0
        self.rating_max = float(values.max()) if len(values) else 0.0
        self._torch_graph: TorchGraph | None = None

    @property
    def device(self) -> torch.device:
        return self.edge_rating.device

    def torch_graph(self) -> TorchGraph:
        """The training graph as tensors on the model's device, built once and cached."""
        dev = self.device
        tg = self._torch_graph
        if tg is None or tg.device != dev:
            tg = self.graph.to_torch(dev, normalized=False) if tg is None else tg.to(dev)
            self._torch_graph = tg
        return tg

    def forward(self, users: Tensor, items: Tensor, edge_mask: Tensor | MaskedGraph | None = None) -> Tensor:
        """Predicted ratings ``[B]`` of aligned (user, item) index pairs.

        Args:
            edge_mask: optional bool per interaction edge (edge ids); ``False`` hides an
                edge from the model's aggregations (models without a graph ignore it).
        """
        raise NotImplementedError

    def predictor(self) -> Callable[[Tensor, Tensor], Tensor]:
        """A function ``(users, items) -> ratings`` for inference (eval mode, no grad).

        Graph models compute their node representations once here, so that the function
        can be called batch after batch without repeating the aggregation.
        """
        raise NotImplementedError

    @torch.no_grad()
    def predict(self, users: Tensor, items: Tensor, clip: bool = True) -> Tensor:
        """Predicted ratings in inference mode, clipped to the training range if ``clip``.

        Raises:
            IndexError: a user or item index outside the graph (a negative index would
                otherwise silently pick a node from the end).
        """
        check_indices(users, self.num_users, "user")
        check_indices(items, self.num_items, "item")
        was_training = self.training
        self.eval()
        try:
            pred = self.predictor()(users.to(self.device), items.to(self.device))
        finally:
            self.train(was_training)
        return self.clip(pred) if clip else pred

    @torch.no_grad()
    def recommend(self, users: object, k: int = 10, exclude_seen: bool = True,
                  raw_ids: bool = True) -> pd.DataFrame:
        """Top-``k`` items for each user by predicted rating (clipped to the training range).

        Same arguments and frame as :meth:`graphrec.models.Recommender.recommend`; the
        ``score`` column is the predicted rating.
        """
        seq, idx = user_indices(self.graph, users, raw_ids)
        was_training = self.training
        self.eval()
        try:
            predict = self.predictor()
            items = torch.arange(self.num_items, device=self.device)
            rows = [self.clip(predict(torch.full_like(items, int(u)), items)) for u in idx]
        finally:
            self.train(was_training)
        scores = torch.stack(rows).float() if rows else torch.zeros(0, self.num_items)
        return top_k_frame(self.graph, seq, idx, scores, k, exclude_seen, raw_ids)

    def clip(self, pred: Tensor) -> Tensor:
        """Predictions clamped to ``[rating_min, rating_max]`` of the training ratings."""
        return pred.clamp(self.rating_min, self.rating_max)

    def regularized(self, users: Tensor, items: Tensor) -> list[Tensor]:
        """Tensors whose squared norm forms the L2 penalty of a batch (default: none)."""
        return []
