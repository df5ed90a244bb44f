"""A social graph-attention ranker: light propagation over interactions and friendships."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphrec.data.adjacency import Adjacency
from graphrec.data.graph import RecGraph
from graphrec.models.base import EmbeddingRecommender
from graphrec.nn import edge_softmax, sddmm, spmm
from graphrec.scoring import Scorer

RELATIONS = ("item_to_user", "user_to_item", "user_to_user")


def _inv_sqrt(deg: Tensor) -> Tensor:
    """``deg ** -0.5`` with zero for isolated nodes."""
    return deg.clamp(min=1).rsqrt() * (deg > 0)


class SocialGATRecommender(EmbeddingRecommender):
    r"""Relation-aware light attention over the user–item and user–user graphs.

    The model extends :class:`~graphrec.models.gat.GATRecommender` with a third relation.
    Each relation :math:`r` (item → user, user → item, user → user) has its own
    attention sharpness :math:`\beta^{(l)}_{r,h}` per layer and head, and its messages
    are weighted as in the GAT recommender, by cosine attention with a degree prior that
    starts equal to the symmetric normalisation of that relation's graph:

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
        dim: embedding size (divisible by ``heads``).
        num_layers: propagation steps.
        heads: attention heads (groups of ``dim / heads`` channels).
        use_social: propagate over the social graph (default: when the graph has one).
        attention_dropout: dropout on the propagation weights during training.
        init_std: standard deviation of the embeddings' normal initialisation.
        gate_init: initial gate bias :math:`b` (its sigmoid is the initial social share).
    """

    def __init__(self, graph: RecGraph, dim: int = 64, num_layers: int = 3, heads: int = 1,
                 use_social: bool | None = None, scorer: Scorer | str = "dot",
                 attention_dropout: float = 0.0, init_std: float = 0.1,
                 gate_init: float = 0.0) -> None:
        if dim % heads:
            raise ValueError(f"dim ({dim}) must be divisible by heads ({heads})")
        if use_social is None:
            use_social = graph.social is not None
        if use_social and graph.social is None:
            raise ValueError("use_social=True needs a RecGraph built with social edges")
        super().__init__(graph, dim, scorer, init_std)
        self.use_social = use_social
        self.num_layers = num_layers
        self.heads = heads
        self.attention_dropout = attention_dropout
        self.gate_init = gate_init
        # Sharpness per layer, interaction direction (item→user, user→item) and head;
        # the same layout as GATRecommender.beta, so its weights load into this model.
        self.beta = nn.Parameter(torch.zeros(num_layers, 2, heads))
        self.beta_social = nn.Parameter(torch.zeros(num_layers, heads))
        self.gate_weight = nn.Parameter(torch.zeros(num_layers, heads, 2 * (dim // heads)))
        self.gate_bias = nn.Parameter(torch.zeros(num_layers, heads))
        # A mask is a property of an experiment, not of the weights: not saved with them.
        self.register_buffer("social_mask", None, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        nn.init.zeros_(self.beta)
        nn.init.zeros_(self.beta_social)
        nn.init.zeros_(self.gate_weight)
        nn.init.constant_(self.gate_bias, self.gate_init)

    # ------------------------------------------------------------------ propagation
    def _direction(self, adj: Adjacency, x_dst: Tensor, x_src: Tensor, beta: Tensor,
                   inv_sqrt_src: Tensor, inv_sqrt_dst: Tensor,
                   mask: Tensor | None) -> tuple[Tensor, Tensor]:
        """Messages ``(num_dst, H, C)`` over one relation and its attention ``(E, H)``."""
        h, c = self.heads, self.dim // self.heads
        xd = F.normalize(x_dst.view(-1, h, c), dim=-1)
        xs = F.normalize(x_src.view(-1, h, c), dim=-1)
        prior = torch.log(inv_sqrt_src.clamp(min=1e-12))[adj.col]
        alpha = edge_softmax(sddmm(adj, xd, xs) * beta + prior.unsqueeze(1), adj, mask)
        # The mass factor turns the prior-only softmax into 1/sqrt(d_i d_j) at beta = 0.
        keep = inv_sqrt_src[adj.col] if mask is None else inv_sqrt_src[adj.col] * mask
        mass = torch.segment_reduce(keep, "sum", offsets=adj.rowptr, axis=0, unsafe=True)
        weights = alpha * (mass * inv_sqrt_dst)[adj.dst_index_cached()].unsqueeze(1)
        if self.training and self.attention_dropout > 0:
            weights = F.dropout(weights, self.attention_dropout)
        return spmm(adj, weights, x_src.view(-1, h, c)), alpha

    def _social_active(self, social_mask: Tensor | None) -> tuple[Tensor | None, Tensor, Tensor]:
        """Stored-order mask and the (masked) out-/in-degrees of the social graph."""
        social = self.torch_graph().social
        assert social is not None
        mask = self.social_mask if social_mask is None else social_mask
        if mask is None:
            out_deg = torch.bincount(social.col, minlength=self.num_users).float()
            in_deg = social.in_degree().float()
            return None, out_deg, in_deg
        stored = social.mask_to_stored(mask.to(social.device).bool())
        out_deg = torch.bincount(social.col[stored], minlength=self.num_users).float()
        in_deg = torch.segment_reduce(stored.float(), "sum", offsets=social.rowptr, unsafe=True)
        return stored, out_deg, in_deg

    def _propagate(self, edge_mask: Tensor | None, social_mask: Tensor | None,
                   record: list[dict[str, Tensor]] | None) -> tuple[Tensor, Tensor]:
        tg = self.torch_graph()
        to_user, to_item = tg.item_to_user, tg.user_to_item
        mask_u = mask_i = None
        if edge_mask is None:
            du = to_user.in_degree().float()
            di = to_item.in_degree().float()
        else:
            edge_mask = edge_mask.to(tg.device)
            du = torch.bincount(tg.edge_index[0][edge_mask], minlength=self.num_users).float()
            di = torch.bincount(tg.edge_index[1][edge_mask], minlength=self.num_items).float()
            mask_u = to_user.mask_to_stored(edge_mask)
            mask_i = to_item.mask_to_stored(edge_mask)
        inv_u, inv_i = _inv_sqrt(du), _inv_sqrt(di)
        social = tg.social if self.use_social else None
        if social is not None:
            mask_s, out_s, in_s = self._social_active(social_mask)
            inv_s_out, inv_s_in = _inv_sqrt(out_s), _inv_sqrt(in_s)
            has_friends = (in_s > 0).to(inv_u.dtype).unsqueeze(1)

        xu, xi = self.user_emb.weight, self.item_emb.weight
        out_u, out_i = xu, xi
        for layer in range(self.num_layers):
            m_item, a_u = self._direction(to_user, xu, xi, self.beta[layer, 0], inv_i, inv_u,
                                          mask_u)
            new_i, a_i = self._direction(to_item, xi, xu, self.beta[layer, 1], inv_u, inv_i,
                                         mask_i)
            att = {"item_to_user": a_u, "user_to_item": a_i}
            if social is not None:
                m_soc, a_s = self._direction(social, xu, xu, self.beta_social[layer], inv_s_out,
                                             inv_s_in, mask_s)
                logits = (torch.cat([m_item, m_soc], dim=-1) * self.gate_weight[layer]).sum(-1)
                gate = torch.sigmoid(logits + self.gate_bias[layer]) * has_friends
                new_u = m_item + gate.unsqueeze(-1) * (m_soc - m_item)
                att["user_to_user"] = a_s
            else:
                new_u = m_item
            if record is not None:
                adjs = {"item_to_user": to_user, "user_to_item": to_item, "user_to_user": social}
                record.append({k: adjs[k].to_edge_order(v) for k, v in att.items()})
            xu, xi = new_u.reshape(-1, self.dim), new_i.reshape(-1, self.dim)
            out_u, out_i = out_u + xu, out_i + xi
        scale = 1.0 / (self.num_layers + 1)
        return out_u * scale, out_i * scale

    def propagate(self, edge_mask: Tensor | None = None,
                  social_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """User embeddings ``[U, D]`` and item embeddings ``[I, D]``.

        Args:
            edge_mask: optional bool per interaction edge (graph edge ids); ``False``
                hides the edge.
            social_mask: optional bool per social edge (social edge ids); defaults to
                the ``social_mask`` attribute. Ignored with ``use_social=False``.
        """
        return self._propagate(edge_mask, social_mask, None)

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
        was_training = self.training
        self.eval()
        try:
            record: list[dict[str, Tensor]] = []
            self._propagate(None, None, record)
            return record
        finally:
            self.train(was_training)
