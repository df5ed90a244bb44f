r"""Dense attention of queries over a whole set of keys by cosine similarity."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["CosineAttention"]


class CosineAttention(nn.Module):
    r"""Attention of every query over every key, by their cosine and one sharpness.

    .. math::
        \alpha_{ij} = \operatorname{softmax}_{j}\big(\beta \cos(\mathbf{q}_i, \mathbf{k}_j)\big),
        \qquad \mathbf{x}'_i = \sum_j \alpha_{ij} \mathbf{v}_j .

    It is the complete-graph counterpart of
    :class:`~graphrec.nn.LightAttentionConv`'s ``self`` score: no projections, one
    learned sharpness :math:`\beta` (a temperature :math:`1/\beta`), and every key a
    neighbour. A recommender uses it to let a user attend over all users
    (:class:`~graphrec.models.AttentiveFilter` with ``user_attention``): the values are
    then sparse interaction rows, so :meth:`forward` returns the weights and the caller
    multiplies them with its own (sparse) values; :meth:`aggregate` does it for dense or
    ``torch.sparse`` values. The ``[queries, keys]`` weights are dense, so callers hand
    in queries in batches.

    Args:
        beta: the initial sharpness :math:`\beta`; :meth:`reset_parameters` restores it.
        learn_beta: make :math:`\beta` a parameter (else a buffer).
    """

    def __init__(self, beta: float = 5.0, learn_beta: bool = True) -> None:
        super().__init__()
        self._initial_beta = float(beta)
        value = torch.tensor(float(beta))
        if learn_beta:
            self.beta = nn.Parameter(value)
        else:
            self.register_buffer("beta", value)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """:math:`\\beta` back to its initial value."""
        with torch.no_grad():
            self.beta.fill_(self._initial_beta)

    def forward(self, queries: Tensor, keys: Tensor, key_mask: Tensor | None = None) -> Tensor:
        r"""The weights :math:`\alpha`, ``[Q, K]``, each row summing to 1.

        Args:
            queries: ``[Q, D]``.
            keys: ``[K, D]``.
            key_mask: bool ``[Q, K]`` or ``[K]``; ``False`` removes a key (weight 0). A
                row without keys is all zeros.
        """
        if queries.dim() != 2 or keys.dim() != 2 or queries.size(1) != keys.size(1):
            raise ValueError(f"queries [Q, D] and keys [K, D] must share D, got "
                             f"{tuple(queries.shape)} and {tuple(keys.shape)}")
        # Normalising both sides first makes the cosine one product, and a zero vector
        # (a user with no history) a zero cosine rather than a NaN.
        logits = F.normalize(queries, dim=1) @ F.normalize(keys, dim=1).T
        logits = logits * self.beta
        if key_mask is not None:
            logits = logits.masked_fill(~key_mask.expand_as(logits), float("-inf"))
            # A fully masked row would be NaN after the softmax; it attends to nothing.
            empty = ~key_mask.expand_as(logits).any(1, keepdim=True)
            return torch.softmax(logits.masked_fill(empty, 0.0), dim=1).masked_fill(empty, 0.0)
        return torch.softmax(logits, dim=1)

    def aggregate(self, queries: Tensor, keys: Tensor, values: Tensor,
                  key_mask: Tensor | None = None) -> Tensor:
        r""":math:`\mathbf{x}'_i = \sum_j \alpha_{ij}\mathbf{v}_j`, ``[Q, F]``, for dense
        or ``torch.sparse`` ``values`` ``[K, F]``."""
        alpha = self(queries, keys, key_mask)
        if values.layout != torch.strided:
            # sparse [K, F]ᵀ @ αᵀ keeps the sparse operand first, as torch.sparse.mm wants.
            return torch.sparse.mm(values.t(), alpha.t()).t()
        return alpha @ values

    def extra_repr(self) -> str:
        return f"beta={float(self.beta):g}, learn_beta={isinstance(self.beta, nn.Parameter)}"
