r"""Link-prediction scorers and ranking/rating losses.

A scorer turns a user embedding :math:`u` and an item embedding :math:`v` into a score
:math:`s(u, v)`. Every scorer scores aligned pairs (``forward``) and one batch of users
against all items (``score_all``), which is what full-ranking evaluation needs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Scorer(nn.Module):
    """Base class: ``forward(u, v) -> [B]`` on aligned rows, ``score_all(u, V) -> [B, I]``."""

    def forward(self, u: Tensor, v: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def score_all(self, u: Tensor, items: Tensor) -> Tensor:
        """Scores of every user row of ``u`` against every item row of ``items``.

        The default broadcasts :meth:`forward`; scorers with a matrix form override it.
        """
        b, i = u.size(0), items.size(0)
        return self.forward(u.unsqueeze(1).expand(b, i, -1).reshape(b * i, -1),
                            items.unsqueeze(0).expand(b, i, -1).reshape(b * i, -1)).view(b, i)


class DotScorer(Scorer):
    r""":math:`s(u, v) = u^\top v`."""

    def forward(self, u: Tensor, v: Tensor) -> Tensor:
        return (u * v).sum(-1)

    def score_all(self, u: Tensor, items: Tensor) -> Tensor:
        return u @ items.T


class CosineScorer(Scorer):
    r""":math:`s(u, v) = \frac{u^\top v}{\lVert u\rVert \lVert v\rVert} / \tau`.

    Args:
        temperature: :math:`\tau`; scores lie in :math:`[-1/\tau, 1/\tau]`.
    """

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__()
        self.temperature = temperature

    def forward(self, u: Tensor, v: Tensor) -> Tensor:
        return F.cosine_similarity(u, v, dim=-1) / self.temperature

    def score_all(self, u: Tensor, items: Tensor) -> Tensor:
        return F.normalize(u, dim=-1) @ F.normalize(items, dim=-1).T / self.temperature


class BilinearScorer(Scorer):
    r""":math:`s(u, v) = u^\top W v` with a learned :math:`W` initialised to the identity."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(dim, dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.eye_(self.weight)

    def forward(self, u: Tensor, v: Tensor) -> Tensor:
        return ((u @ self.weight) * v).sum(-1)

    def score_all(self, u: Tensor, items: Tensor) -> Tensor:
        return (u @ self.weight) @ items.T


class MLPScorer(Scorer):
    r""":math:`s(u, v) = \mathrm{MLP}([u \,\Vert\, v \,\Vert\, u \odot v])`.

    More expressive than a dot product, but scoring all items costs an MLP pass per
    (user, item) pair, so full ranking is slower.
    """

    def __init__(self, dim: int, hidden: int = 64, dropout: float = 0.0) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(3 * dim, hidden), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, 1))

    def reset_parameters(self) -> None:
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                m.reset_parameters()

    def forward(self, u: Tensor, v: Tensor) -> Tensor:
        return self.mlp(torch.cat([u, v, u * v], dim=-1)).squeeze(-1)


SCORERS = {"dot": DotScorer, "cosine": CosineScorer, "bilinear": BilinearScorer, "mlp": MLPScorer}


def make_scorer(name: str, dim: int, temperature: float = 1.0) -> Scorer:
    """A scorer by name (``dot``, ``cosine``, ``bilinear``, ``mlp``); ``temperature`` is
    the cosine scorer's τ."""
    if name not in SCORERS:
        raise ValueError(f"unknown scorer {name!r}; choose one of {sorted(SCORERS)}")
    if name == "cosine":
        return CosineScorer(temperature)
    return SCORERS[name](dim) if name in ("bilinear", "mlp") else SCORERS[name]()


# ---------------------------------------------------------------------- losses
def bpr_loss(pos: Tensor, neg: Tensor) -> Tensor:
    r"""Bayesian personalised ranking: :math:`-\mathrm{mean}\,\log\sigma(s^+ - s^-)`.

    ``pos`` is ``[B]``; ``neg`` is ``[B]`` or ``[B, N]`` (each negative against its row's
    positive).
    """
    if neg.dim() == 2:
        pos = pos.unsqueeze(1)
    return F.softplus(neg - pos).mean()


def bce_loss(pos: Tensor, neg: Tensor) -> Tensor:
    r"""Binary cross-entropy with sampled negatives:
    :math:`-\log\sigma(s^+) - \mathrm{mean}_j \log(1-\sigma(s^-_j))`, averaged over the batch."""
    pos_term = F.softplus(-pos)
    neg_term = F.softplus(neg)
    if neg.dim() == 2:
        neg_term = neg_term.mean(1)
    return (pos_term + neg_term).mean()


def sampled_softmax_loss(pos: Tensor, neg: Tensor, temperature: float = 1.0) -> Tensor:
    r"""Sampled softmax (InfoNCE): :math:`-\log \frac{e^{s^+/\tau}}{e^{s^+/\tau} + \sum_j e^{s^-_j/\tau}}`."""
    if neg.dim() == 1:
        neg = neg.unsqueeze(1)
    logits = torch.cat([pos.unsqueeze(1), neg], dim=1) / temperature
    return -F.log_softmax(logits, dim=1)[:, 0].mean()


def mse_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared error for rating prediction."""
    return F.mse_loss(pred, target)


LOSSES = {"bpr": bpr_loss, "bce": bce_loss, "softmax": sampled_softmax_loss}
