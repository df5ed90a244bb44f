r"""A weighted blend of recommenders' scores, each standardised per user.

Models of different families make different mistakes: a graph filter ranks by the
spectrum of the item–item graph, a factor model such as iALS by a per-user regression
over all items. Their scores live on unrelated scales (a filter's are about
:math:`10^{-2}` on Gowalla, iALS's about 1), so they are blended after dividing each
model's scores for a user by their standard deviation over the items:

.. math::
    s_u = \sum_m w_m \, \frac{s^{(m)}_u}{\sigma\big(s^{(m)}_u\big)},
    \qquad \sigma(x) = \sqrt{\tfrac1I \textstyle\sum_i (x_i - \bar x)^2}.

Each model's ranking of a user's items is unchanged by its division (a positive
number per user), so the weights :math:`w_m` alone set how much each model counts, on
the same scale for every user and every dataset; subtracting the mean as well would
shift every item of a user alike and change no ranking. The weights are
hyper-parameters: choose them on validation (:func:`graphrec.selection.grid_search`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from graphrec.data.graph import RecGraph
from graphrec.models.base import Recommender
from graphrec.models.scoring_model import ScoringModel

Member = ScoringModel | Recommender


class Blend(ScoringModel):
    r"""The weighted sum of its members' per-user standardised scores (module docstring).

    Members are closed-form models (:class:`ScoringModel`, fitted by :meth:`fit` unless
    already fitted, so that fitted members can be shared between blends) or embedding
    models (:class:`~graphrec.models.base.Recommender`, used as trained: their
    embeddings are computed once, on first use, and scored with their own scorer).
    Saved state: the weights and every member's state.

    Args:
        graph: the training graph, the one every member was built on.
        members: the models to blend (at least one).
        weights: :math:`w_m`, one finite number >= 0 per member, not all zero.
    """

    def __init__(self, graph: RecGraph, members: Sequence[Member], weights: Sequence[float]) -> None:
        super().__init__(graph)
        if not members:
            raise ValueError("a blend needs at least one member")
        if len(weights) != len(members):
            raise ValueError(f"{len(members)} members need {len(members)} weights, got {len(weights)}")
        if any(not math.isfinite(w) or w < 0 for w in weights) or not any(weights):
            raise ValueError(f"weights must be finite numbers >= 0, not all zero; got {list(weights)}")
        for m in members:
            if not isinstance(m, (ScoringModel, Recommender)):
                raise TypeError(f"a member must be a ScoringModel or a Recommender, "
                                f"got {type(m).__name__}")
            if (m.num_users, m.num_items) != (graph.num_users, graph.num_items):
                raise ValueError(f"{type(m).__name__} has {m.num_users} users × {m.num_items} "
                                 f"items; the blend's graph has {graph.num_users} × "
                                 f"{graph.num_items}")
        self.members = nn.ModuleList(members)
        self.register_buffer("weights", torch.tensor([float(w) for w in weights]))
        # Embedding members' (user, item) embeddings, computed on first use.
        self._embeddings: dict[int, tuple[Tensor, Tensor]] = {}

    def _fit(self) -> None:
        for m in self.members:
            if isinstance(m, ScoringModel) and not bool(m.fitted):
                m.fit()
        self._embeddings.clear()

    def _member_scores(self, i: int, users: Tensor) -> Tensor:
        m = self.members[i]
        if isinstance(m, ScoringModel):
            return m.score_users(users)
        if i not in self._embeddings:
            m.eval()
            self._embeddings[i] = m.embeddings()
        user_emb, item_emb = self._embeddings[i]
        return m.scorer.score_all(user_emb[users.to(user_emb.device)], item_emb).float()

    def _score(self, users: Tensor) -> Tensor:
        total = None
        for i, w in enumerate(self.weights.tolist()):
            if w == 0:
                continue
            s = self._member_scores(i, users).to(self.device)
            # A user whose scores are all equal (std 0) gets one large constant from
            # this member, which changes no ranking.
            s = s.mul_(w / s.std(dim=1, correction=0, keepdim=True).clamp_min(1e-12))
            total = s if total is None else total.add_(s)
        assert total is not None
        return total

    def workspace_bytes_per_user(self) -> int:
        """One member's score row beside the running sum, plus what that member needs."""
        extra = [m.workspace_bytes_per_user() for m in self.members if isinstance(m, ScoringModel)]
        return 4 * self.num_items + max(extra, default=4 * self.num_items)


def shared_members(make: Callable[[RecGraph], Sequence[Member]]) -> Callable[[RecGraph], list[Member]]:
    """``members(graph)``: the members ``make(graph)`` builds, built once per graph and
    shared by every blend on it, so that a grid over the weights fits them once (a
    :class:`Blend` fits only members not fitted yet).

    The last graph itself is kept, not its ``id``, so a later graph that happens to
    reuse the address can never be served the old members::

        members = shared_members(lambda g: [GFCF(g), IALS(g, factors=256)])
        grid_search(lambda g, p: Blend(g, members(g), p["weights"]),
                    {"weights": [[1, 0.5], [1, 1], [1, 2]]}, split)
    """
    last: list[object] = [None, None]  # graph, its members

    def members(graph: RecGraph) -> list[Member]:
        if last[0] is not graph:
            last[0], last[1] = graph, list(make(graph))
        return last[1]  # type: ignore[return-value]

    return members
