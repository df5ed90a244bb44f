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
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from graphrec.data.graph import RecGraph
from graphrec.data.interactions import Interactions
from graphrec.models.base import Recommender
from graphrec.models.scoring_model import NotFittedError, ScoringModel

if TYPE_CHECKING:
    from graphrec.evaluate import Evaluator

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
        _check_weights(weights, len(members))
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

    def same_members(self, other: Blend) -> bool:
        """Whether ``other`` blends the very same member objects, in the same order."""
        return len(self.members) == len(other.members) and all(
            a is b for a, b in zip(self.members, other.members))

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
        # One member's scores at a time beside the running sum; the same operations as
        # _combined, so a weight grid ranks exactly what each point's blend scores.
        total = None
        for i, w in enumerate(self.weights.tolist()):
            if w == 0:
                continue
            s = self._member_scores(i, users).to(self.device)
            s = s.mul_(w / _spread(s))
            total = s if total is None else total.add_(s)
        assert total is not None
        return total

    @torch.no_grad()
    def score_users_points(self, users: Tensor, weights: Sequence[Sequence[float]]) -> Iterator[Tensor]:
        """The scores ``[B, num_items]`` of ``users`` under each weight vector of
        ``weights`` in turn, every member scored once: a weight grid ranked in one pass
        (:meth:`graphrec.evaluate.Evaluator.evaluate_points`). Each point's scores are
        those :meth:`score_users` gives with its weights, bit for bit, written into one
        buffer that the next point overwrites."""
        if not bool(self.fitted):
            raise NotFittedError(f"{type(self).__name__}: call fit() before scoring")
        for w in weights:
            _check_weights(w, len(self.members))
        users = torch.as_tensor(users, dtype=torch.long, device=self.device).reshape(-1)
        yield from self._combined(users, weights)

    def _combined(self, users: Tensor, weights: Sequence[Sequence[float]]) -> Iterator[Tensor]:
        """Σ_m w_m s_m / σ(s_m) for each weight vector, the members each scored once."""
        used = [i for i in range(len(self.members)) if any(w[i] for w in weights)]
        scores = {i: self._member_scores(i, users).to(self.device) for i in used}
        spread = {i: _spread(s) for i, s in scores.items()}
        total = term = None
        for w in weights:
            first = True
            for i in used:
                if w[i] == 0:
                    continue
                if first:
                    total = torch.mul(scores[i], w[i] / spread[i], out=total)
                    first = False
                else:
                    term = torch.mul(scores[i], w[i] / spread[i], out=term)
                    total.add_(term)
            yield total

    def workspace_bytes_per_user(self, points: int = 1) -> int:
        """One member's score row beside the running sum, plus what that member needs;
        for ``points`` > 1 (:meth:`score_users_points`), every member's row and one term
        beside the sum."""
        extra = [m.workspace_bytes_per_user() for m in self.members if isinstance(m, ScoringModel)]
        if points == 1:
            return 4 * self.num_items + max(extra, default=4 * self.num_items)
        return 4 * self.num_items * (len(self.members) + 1) + max(extra, default=0)


def evaluate_blends(evaluator: Evaluator, blends: Sequence[Blend],
                    target: Interactions) -> list[dict[str, float]]:
    """The metrics of each of ``blends`` (fitted, over the same member objects, differing
    in their weights) on ``target``, ranked in one pass that scores every member once
    per batch of users (:meth:`Blend.score_users_points`) instead of once per blend.

    Each blend's metrics are those ``evaluator.evaluate(blend, target)`` gives (up to
    float32 rounding where a member's scores depend on the batch size, which the
    budget sets); ``eval_seconds`` is the shared time divided evenly.
    """
    first = blends[0]
    if any(not first.same_members(b) for b in blends[1:]):
        raise ValueError("blends ranked together must share their member objects")
    weights = [b.weights.tolist() for b in blends]
    return evaluator.evaluate_points(
        lambda users: first.score_users_points(users, weights), len(blends), first.num_users,
        first.num_items, target, device=first.device,
        workspace_bytes=first.workspace_bytes_per_user(points=len(blends)))


def _spread(scores: Tensor) -> Tensor:
    """σ of each row, ``[B, 1]``; a user whose scores are all equal (σ = 0) gets one large
    constant from that member, which changes no ranking."""
    return scores.std(dim=1, correction=0, keepdim=True).clamp_min(1e-12)


def _check_weights(weights: Sequence[float], members: int) -> None:
    if len(weights) != members:
        raise ValueError(f"{members} members need {members} weights, got {len(weights)}")
    if any(not math.isfinite(w) or w < 0 for w in weights) or not any(weights):
        raise ValueError(f"weights must be finite numbers >= 0, not all zero; got {list(weights)}")


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
