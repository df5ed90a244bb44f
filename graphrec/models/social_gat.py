"""A social graph-attention ranker: light propagation over interactions and friendships."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from graphrec.data.graph import RecGraph
from graphrec.models.gat import DIRECTIONS, GATRecommender
from graphrec.models.masked_graph import MaskedGraph, masked_view

RELATIONS = (*DIRECTIONS, "user_to_user")


class SocialGATRecommender(GATRecommender):
    r"""Relation-aware light attention over the user–item and user–user graphs.

    The model extends :class:`~graphrec.models.gat.GATRecommender` with a third relation.
    Each relation :math:`r` (item → user, user → item, user → user) has its own
    attention layer per propagation step (by default a
    :class:`~graphrec.nn.LightAttentionConv`, with a sharpness :math:`\beta^{(l)}_{r,h}`
    per head), whose weights start equal to the symmetric normalisation of that
    relation's graph:

    .. math::
        w^{(l)}_{r,ij,h} = c_{r,i}\, \mathrm{softmax}_{j \in N_r(i)}\Big(
            \beta^{(l)}_{r,h} \cos\big(e^{(l)}_{i,h}, e^{(l)}_{j,h}\big)
            - \tfrac12 \log d^{\,out}_{r,j}\Big),
        \qquad c_{r,i} = \frac{\sum_{k \in N_r(i)} (d^{\,out}_{r,k})^{-1/2}}{\sqrt{d^{\,in}_{r,i}}},

    so that with :math:`\beta = 0`, :math:`w_{r,ij} = 1/\sqrt{d^{\,in}_{r,i} d^{\,out}_{r,j}}`.
    Per layer, a user receives an item message :math:`m^I_i = \sum_j w_{\mathrm{iu},ij}
    e^{(l)}_j` and a social message :math:`m^S_i = \sum_{v} w_{\mathrm{uu},iv} e^{(l)}_v`
    from its friends (social edges point from the friend to the user they inform), and
    mixes them with a learned gate per head,

    .. math::
        g^{(l)}_{i,h} = [\,d^{\,in}_{\mathrm{uu},i} > 0\,]\;
            \sigma\big(b^{(l)}_h + \mathbf{a}^{(l)\top}_h [m^I_{i,h} \oplus m^S_{i,h}]\big),
        \qquad
        e^{(l+1)}_{i,h} = (1 - g^{(l)}_{i,h})\, m^I_{i,h} + g^{(l)}_{i,h}\, m^S_{i,h},

    while items receive only the user message. :math:`\mathbf{a}` starts at zero and
    :math:`b` at ``gate_init`` (0: an even mix). Layer outputs are averaged as in
    LightGCN, :math:`e_i = \frac{1}{L+1}\sum_l e^{(l)}_i`.

    A user without friends (or whose social edges are all masked) has :math:`g = 0` and
    is propagated exactly as by the GAT recommender, so every embedding is finite; a
    user without training items but with friends is described by its friends alone. With
    ``use_social=False`` the social graph is ignored entirely and the model computes
    exactly what a :class:`~graphrec.models.gat.GATRecommender` with the same embeddings
    and :math:`\beta` computes.

    ``propagate(edge_mask=...)`` hides interaction edges from attention and degrees; the
    ``social_mask`` attribute (bool per social edge, in ``graph.social_edges()`` order,
    ``None`` = all kept) does the same for social edges, so an ablation needs no new
    graph.

    Args:
        graph: training graph (with social edges unless ``use_social=False``).
        use_social: propagate over the social graph (default: when the graph has one).
        gate_init: initial gate bias :math:`b` (its sigmoid is the initial social share).
        kwargs: the :class:`~graphrec.models.gat.GATRecommender` arguments (``dim``,
            ``num_layers``, ``heads``, ``layer``, ``attention_dropout``, ...).
    """

    def __init__(self, graph: RecGraph, use_social: bool | None = None, gate_init: float = 0.0,
                 **kwargs: Any) -> None:
        if use_social is None:
            use_social = graph.social is not None
        if use_social and graph.social is None:
            raise ValueError("use_social=True needs a RecGraph built with social edges")
        self.use_social = use_social
        super().__init__(graph, **kwargs)
        self.gate_init = gate_init
        c = self.dim // self.heads
        self.gate_weight = nn.Parameter(torch.zeros(self.num_layers, self.heads, 2 * c))
        self.gate_bias = nn.Parameter(torch.zeros(self.num_layers, self.heads))
        # A mask is a property of an experiment, not of the weights: not saved with them.
        self.register_buffer("social_mask", None, persistent=False)
        self.reset_parameters()

    def _relations(self) -> tuple[str, ...]:
        # The friendship layers exist even without the social graph, so that weights load
        # across the ablation.
        return RELATIONS

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if hasattr(self, "gate_weight"):
            nn.init.zeros_(self.gate_weight)
            nn.init.constant_(self.gate_bias, self.gate_init)

    def is_lightgcn(self) -> bool:
        return not self.use_social and super().is_lightgcn()

    def propagate_rows(self, users: Tensor, items: Tensor,
                       edge_mask: Tensor | MaskedGraph | None = None) -> tuple[Tensor, Tensor]:
        if self.use_social:  # the gate mixes whole rows: no cheaper per-row path
            user_emb, item_emb = self.propagate(edge_mask=edge_mask)
            return user_emb[users], item_emb[items]
        return super().propagate_rows(users, items, edge_mask)

    def _social(self, social_mask: Tensor | None) -> tuple[Tensor | None, Tensor, Tensor]:
        """The social mask (edge-id order), the friends' kept out-degrees and whether each
        user has a kept friend."""
        social = self.torch_graph().social
        assert social is not None
        mask = self.social_mask if social_mask is None else social_mask
        if mask is not None:
            mask = mask.to(social.device).bool()
            if mask.shape != (social.num_edges,):
                raise ValueError(f"social_mask must have shape ({social.num_edges},), "
                                 f"got {tuple(mask.shape)}")
            stored = social.mask_to_stored(mask)
            out_deg = torch.bincount(social.col[stored], minlength=self.num_users).float()
            in_deg = torch.segment_reduce(stored.float(), "sum", offsets=social.rowptr, unsafe=True)
        else:
            out_deg = torch.bincount(social.col, minlength=self.num_users).float()
            in_deg = social.in_degree().float()
        return mask, out_deg, (in_deg > 0)

    def _step(self, layer: int, xu: Tensor, xi: Tensor, edge_mask: MaskedGraph | None,
              degrees: tuple[Tensor, Tensor], record: list[dict[str, Tensor]] | None
              ) -> tuple[Tensor, Tensor]:
        m_item, new_i = super()._step(layer, xu, xi, edge_mask, degrees, record)
        if not self.use_social:
            return m_item, new_i
        social = self.torch_graph().social
        assert social is not None
        mask, out_deg, has_friends = self._social_state
        m_soc, a_s = self._call(self.convs[layer]["user_to_user"], xu, xu, social, mask, out_deg,
                                record is not None, "users")
        if record is not None:
            record[-1]["user_to_user"] = a_s
        h, c = self.heads, self.dim // self.heads
        m_item3, m_soc3 = m_item.view(-1, h, c), m_soc.view(-1, h, c)
        logits = (torch.cat([m_item3, m_soc3], dim=-1) * self.gate_weight[layer]).sum(-1)
        gate = torch.sigmoid(logits + self.gate_bias[layer]) * has_friends.to(logits.dtype).unsqueeze(1)
        return (m_item3 + gate.unsqueeze(-1) * (m_soc3 - m_item3)).reshape(-1, self.dim), new_i

    def _propagate(self, edge_mask: MaskedGraph | None, record: list[dict[str, Tensor]] | None,
                   count: int | None = None, degrees: tuple[Tensor, Tensor] | None = None,
                   social_mask: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        if self.use_social:
            self._social_state = self._social(social_mask)
        try:
            return super()._propagate(edge_mask, record, count, degrees)
        finally:
            self._social_state = None

    def propagate(self, edge_mask: Tensor | MaskedGraph | None = None,
                  social_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """User embeddings ``[U, D]`` and item embeddings ``[I, D]``.

        Args:
            edge_mask: optional bool per interaction edge (graph edge ids); ``False``
                hides the edge.
            social_mask: optional bool per social edge (social edge ids); defaults to
                the ``social_mask`` attribute. Ignored with ``use_social=False``.
        """
        if self.is_lightgcn():
            return super().propagate(edge_mask)
        view = masked_view(self.torch_graph(), edge_mask)
        _, _, sum_u, sum_i = self._propagate(view, None, social_mask=social_mask)
        return self._pool(self.user_emb.weight, sum_u), self._pool(self.item_emb.weight, sum_i)

    @torch.no_grad()
    def attention(self) -> list[dict[str, Tensor]]:
        """Softmax-normalised attention of every layer, in inference mode.

        Returns:
            One dict per layer with ``"item_to_user"`` and ``"user_to_item"`` (each
            ``[E, H]``, rows in interaction edge-id order, ``graph.edges()``) and, when the
            social graph is used, ``"user_to_user"`` (``[E_social, H]``, rows in
            ``graph.social_edges()`` order). Each destination's weights over its kept
            incoming edges of one relation sum to 1 per head; masked social edges get 0.
            These are the softmax weights before the degree rescaling :math:`c_{r,i}`.
        """
        return super().attention()
