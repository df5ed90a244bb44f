"""Models that score users against all items directly, without embeddings and a scorer.

Graph filters, item-neighbourhood models and closed-form regressions produce a user's
scores over all items from the user's training row (and, for factor models, from learned
factors). They share one protocol with the embedding models of
:mod:`graphrec.models.base`:

* :meth:`ScoringModel.fit` computes the model from its training graph in closed form (or
  with a few alternating solves), never with a gradient loop;
* :meth:`ScoringModel.score_users` returns the ``[B, I]`` scores of a batch of users;
* :meth:`ScoringModel.recommend` turns them into top-K lists with raw ids.

The :class:`~graphrec.evaluate.Evaluator` calls :meth:`score_users` in batches sized by its
memory budget (plus :meth:`workspace_bytes_per_user`), so full-ranking evaluation, the
``graphrec`` command and saved runs treat these models exactly like the embedding models.
What ``fit`` computes lives in buffers of fixed shape (set by the hyper-parameters), so a
fitted model is saved and restored with ``state_dict``; views derived from the graph
alone (normalised matrices) are rebuilt on demand and never saved.
"""

from __future__ import annotations

import pandas as pd
import torch
from torch import Tensor, nn

from graphrec.data.graph import RecGraph
from graphrec.models.base import top_k_frame, user_indices


class NotFittedError(RuntimeError):
    """A model was asked for scores before :meth:`ScoringModel.fit` ran."""


class ScoringModel(nn.Module):
    """Base class of models that score a batch of users against all items.

    Subclasses implement :meth:`_fit` (fill the buffers from ``self.graph``) and
    :meth:`_score` (``[B, I]`` scores of user indices). Everything runs on the device of
    the model's buffers (``model.to("cuda")`` moves them); scores are float32.

    Args:
        graph: the training graph; its user rows are the users' histories and its id maps
            give raw ids back in :meth:`recommend`.
    """

    def __init__(self, graph: RecGraph) -> None:
        super().__init__()
        self.graph = graph
        self.num_users = graph.num_users
        self.num_items = graph.num_items
        # Saved with the weights: a restored model knows it was fitted.
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    @property
    def device(self) -> torch.device:
        return self.fitted.device

    # ------------------------------------------------------------------ protocol
    def fit(self) -> ScoringModel:
        """Compute the model from the training graph; returns ``self``."""
        with torch.no_grad():
            self._fit()
        self.fitted.fill_(True)
        return self

    @torch.no_grad()
    def score_users(self, users: Tensor) -> Tensor:
        """Scores ``[B, num_items]`` (float32) of the user indices ``users`` ``[B]``.

        Training items are *not* masked here: the Evaluator and :meth:`recommend` do that.
        """
        if not bool(self.fitted):
            raise NotFittedError(f"{type(self).__name__}: call fit() before scoring")
        users = torch.as_tensor(users, dtype=torch.long, device=self.device).reshape(-1)
        if users.numel() and (int(users.min()) < 0 or int(users.max()) >= self.num_users):
            raise IndexError(f"user indices must lie in [0, {self.num_users}), got "
                             f"[{int(users.min())}, {int(users.max())}]")
        return self._score(users).float()

    def workspace_bytes_per_user(self) -> int:
        """Memory :meth:`score_users` needs per user beyond its ``[B, I]`` float32 output.

        The Evaluator adds it to its per-user budget; the default assumes one more
        score row of intermediate results.
        """
        return 4 * self.num_items

    @torch.no_grad()
    def recommend(self, users: object, k: int = 10, exclude_seen: bool = True,
                  raw_ids: bool = True) -> pd.DataFrame:
        """Top-``k`` items for each user; the same frame as
        :meth:`graphrec.models.base.Recommender.recommend` (columns ``user``, ``rank``,
        ``item``, ``score``)."""
        seq, idx = user_indices(self.graph, users, raw_ids)
        scores = self.score_users(torch.as_tensor(idx))
        return top_k_frame(self.graph, seq, idx, scores, k, exclude_seen, raw_ids)

    # ------------------------------------------------------------------ to implement
    def _fit(self) -> None:
        raise NotImplementedError

    def _score(self, users: Tensor) -> Tensor:
        raise NotImplementedError
