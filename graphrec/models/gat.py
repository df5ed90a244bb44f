"""A graph-attention recommender that starts as LightGCN and learns where to look."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphrec.data.adjacency import Adjacency
from graphrec.data.graph import RecGraph
from graphrec.models.base import EmbeddingRecommender
from graphrec.models.propagation import lightgcn_propagate, lightgcn_rows
from graphrec.nn import edge_softmax, sddmm, spmm
from graphrec.scoring import Scorer


class GATRecommender(EmbeddingRecommender):
    r"""Light propagation whose neighbour weights are learned by attention.

    Plain GAT layers (a linear map, a non-linearity and softmax-normalised weights per
    layer) lose to MF-BPR on sparse implicit feedback. This model keeps what makes
    LightGCN strong — no transforms and no non-linearity between layers, layer outputs
    averaged — and replaces the fixed normalisation by attention that *starts equal
    to it*. For an edge :math:`j \to i` in layer :math:`l` and head :math:`h`:

    .. math::
        w^{(l)}_{ij,h} = \underbrace{\frac{\sum_{k \in N(i)} d_k^{-1/2}}{\sqrt{d_i}}}_{c_i}
        \; \mathrm{softmax}_{j \in N(i)}\Big(
            \beta^{(l)}_h \cos\big(e^{(l)}_{i,h}, e^{(l)}_{j,h}\big) - \tfrac12 \log d_j \Big)

    With :math:`\beta = 0` the softmax gives :math:`d_j^{-1/2} / \sum_k d_k^{-1/2}`,
    so :math:`w_{ij} = 1/\sqrt{d_i d_j}`: exactly LightGCN's symmetric normalisation.
    Training moves :math:`\beta` away from 0 where attending to similar neighbours
    helps on the training signal. The score is neighbour-aware (it depends on both
    ends, unlike GAT's additive score, whose destination term cancels in the softmax).
    Embeddings are split into ``heads`` groups of ``dim / heads`` channels, each with
    its own :math:`\beta`.

    With ``score="neighbourhood"`` the destination side of the cosine is the mean of the
    destination's neighbours instead of its own embedding,
    :math:`\cos\big(\bar e^{(l)}_{N(i),h}, e^{(l)}_{j,h}\big)` with
    :math:`\bar e^{(l)}_{N(i)} = \frac{1}{|N(i)|}\sum_{k \in N(i)} e^{(l)}_k`: a neighbour
    weighs by how typical it is of the node's neighbourhood (as in NGAT4Rec's
    neighbour-aware attention), which down-weights outlying interactions rather than
    reinforcing the node's own current preference. It costs one more sparse product per
    layer and direction.

    .. math::
        e^{(l+1)}_i = \sum_{j \in N(i)} w^{(l)}_{ij}\, e^{(l)}_j, \qquad
        e_i = \frac{1}{L+1} \sum_{l=0}^{L} e^{(l)}_i

    ``propagate(edge_mask=...)`` removes edges from attention and from the degrees (used
    to hide a batch's positive edges during training).

    While :math:`\beta` is zero and not being trained (``model.beta.requires_grad_(False)``,
    or inference at initialisation), the weights *are* LightGCN's, and propagation takes
    LightGCN's fused sparse path, about three times faster. Training with
    :math:`\beta` frozen for a warm-up and then unfrozen (``requires_grad_(True)``)
    starts the attention from a trained LightGCN at LightGCN's cost.

    Args:
        graph: training graph.
        dim: embedding size (divisible by ``heads``).
        num_layers: propagation steps.
        heads: attention heads.
        attention_dropout: dropout on the attention weights during training.
        score: what a neighbour's embedding is compared with: ``"self"`` (the
            destination's own embedding) or ``"neighbourhood"`` (the mean of the
            destination's neighbours).
        attention_lr_scale: :math:`\beta`'s learning rate as a multiple of the
            embeddings' (:meth:`param_groups`). Adam moves each parameter by about the
            learning rate per step whatever its gradient, so at an embedding's rate
            :math:`\beta` can hardly leave 0 in the few epochs it trains on top of a
            LightGCN warm-up.
    """

    SCORES = ("self", "neighbourhood")

    def __init__(self, graph: RecGraph, dim: int = 64, num_layers: int = 3, heads: int = 1,
                 scorer: Scorer | str = "dot", attention_dropout: float = 0.0,
                 init_std: float = 0.1, score: str = "self",
                 attention_lr_scale: float = 1.0) -> None:
        if dim % heads:
            raise ValueError(f"dim ({dim}) must be divisible by heads ({heads})")
        if score not in self.SCORES:
            raise ValueError(f"score must be one of {self.SCORES}, got {score!r}")
        if not attention_lr_scale > 0:
            raise ValueError(f"attention_lr_scale must be positive, got {attention_lr_scale}")
        super().__init__(graph, dim, scorer, init_std)
        self.num_layers = num_layers
        self.heads = heads
        self.attention_dropout = attention_dropout
        self.score = score
        self.attention_lr_scale = attention_lr_scale
        # One sharpness per layer, head and direction (item→user, user→item).
        self.beta = nn.Parameter(torch.zeros(num_layers, 2, heads))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        nn.init.zeros_(self.beta)

    def param_groups(self) -> list[dict[str, Any]]:
        """The embeddings at the trainer's learning rate, β at ``attention_lr_scale`` times it."""
        rest = [p for name, p in self.named_parameters() if name != "beta"]
        return [{"params": rest, "lr_scale": 1.0},
                {"params": [self.beta], "lr_scale": self.attention_lr_scale}]

    def _alpha(self, adj: Adjacency, x_dst: Tensor, x_src: Tensor, beta: Tensor,
               prior: Tensor, mask: Tensor | None) -> Tensor:
        """Softmax attention ``[E, H]`` (stored order) of one direction of one layer."""
        h, c = self.heads, self.dim // self.heads
        if self.score == "neighbourhood":
            # The cosine ignores scale, so the neighbours' sum serves as their mean.
            keep = (torch.ones(adj.num_edges, 1, dtype=x_src.dtype, device=x_src.device)
                    if mask is None else mask.to(x_src.dtype).unsqueeze(1))
            x_dst = spmm(adj, keep, x_src.view(-1, 1, self.dim))
        xd = F.normalize(x_dst.reshape(-1, h, c), dim=-1)
        xs = F.normalize(x_src.view(-1, h, c), dim=-1)
        return edge_softmax(torch.addcmul(prior, sddmm(adj, xd, xs), beta), adj, mask)

    def _direction(self, adj: Adjacency, x_dst: Tensor, x_src: Tensor, beta: Tensor,
                   prior: Tensor, scale: Tensor, mask: Tensor | None) -> Tensor:
        h, c = self.heads, self.dim // self.heads
        alpha = self._alpha(adj, x_dst, x_src, beta, prior, mask)
        if self.training and self.attention_dropout > 0:
            alpha = F.dropout(alpha, self.attention_dropout)
        # The destination scale c_i multiplies all of a node's weights, so it is applied
        # to the N output rows rather than to the E edge weights.
        out = spmm(adj, alpha, x_src.view(-1, h, c)).reshape(-1, self.dim)
        return out * scale.unsqueeze(1)

    def _constants(self, edge_mask: Tensor | None) -> list[tuple[Adjacency, Tensor, Tensor, Tensor | None]]:
        r"""Per direction (item→user, user→item): the adjacency, the degree prior
        :math:`-\tfrac12 \log d_j` per stored edge ``[E, 1]``, the destination scale
        :math:`c_i` ``[N_dst]`` and the stored-order mask. They depend only on the graph
        and the mask, so one propagation computes them once for all layers."""
        tg = self.torch_graph()
        to_user, to_item = tg.item_to_user, tg.user_to_item
        if edge_mask is None:
            du, di = to_user.in_degree().float(), to_item.in_degree().float()
            mask_u = mask_i = None
        else:
            du = torch.bincount(tg.edge_index[0][edge_mask], minlength=self.num_users).float()
            di = torch.bincount(tg.edge_index[1][edge_mask], minlength=self.num_items).float()
            mask_u, mask_i = to_user.mask_to_stored(edge_mask), to_item.mask_to_stored(edge_mask)
        inv_u = du.clamp(min=1).rsqrt() * (du > 0)
        inv_i = di.clamp(min=1).rsqrt() * (di > 0)
        out = []
        for adj, inv_src, inv_dst, mask in ((to_user, inv_i, inv_u, mask_u),
                                            (to_item, inv_u, inv_i, mask_i)):
            prior = torch.log(inv_src.clamp(min=1e-12))[adj.col].unsqueeze(1)
            # c_i = Σ_k d_k^{-1/2} / √d_i restores LightGCN's scale when β = 0.
            keep = inv_src[adj.col] if mask is None else inv_src[adj.col] * mask
            mass = torch.segment_reduce(keep, "sum", offsets=adj.rowptr, axis=0, unsafe=True)
            out.append((adj, prior, mass * inv_dst, mask))
        return out

    def is_lightgcn(self) -> bool:
        """Whether propagation equals LightGCN's: β = 0, no gradient wanted for it, and no
        attention dropout in play."""
        if self.beta.requires_grad and torch.is_grad_enabled():
            return False
        if self.training and self.attention_dropout > 0:
            return False
        return not bool(self.beta.detach().any())

    def _layers(self, constants: list[tuple[Adjacency, Tensor, Tensor, Tensor | None]],
                count: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The first ``count`` attention layers: the last layer's user and item outputs and
        the running sums of all layers so far (inputs included)."""
        (to_user, prior_u, scale_u, mask_u), (to_item, prior_i, scale_i, mask_i) = constants
        xu, xi = self.user_emb.weight, self.item_emb.weight
        out_u, out_i = xu, xi
        for layer in range(count):
            new_u = self._direction(to_user, xu, xi, self.beta[layer, 0], prior_u, scale_u, mask_u)
            new_i = self._direction(to_item, xi, xu, self.beta[layer, 1], prior_i, scale_i, mask_i)
            xu, xi = new_u, new_i
            out_u, out_i = out_u + xu, out_i + xi
        return xu, xi, out_u, out_i

    def propagate_rows(self, users: Tensor, items: Tensor,
                       edge_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """:meth:`propagate`'s rows ``users`` and ``items``, with the last layer computed
        for those destinations only (each node's softmax runs over its own incoming
        edges, so restricting destinations is exact)."""
        if self.is_lightgcn():
            return lightgcn_rows(self.torch_graph(), self.user_emb.weight, self.item_emb.weight,
                                 self.num_layers, users, items, edge_mask)
        constants = self._constants(edge_mask)
        (to_user, prior_u, scale_u, mask_u), (to_item, prior_i, scale_i, mask_i) = constants
        xu, xi, out_u, out_i = self._layers(constants, max(self.num_layers - 1, 0))
        last = self.num_layers - 1

        def rows_of(nodes: Tensor, side: int, acc: Tensor, adj: Adjacency, x_dst: Tensor,
                    x_src: Tensor, prior: Tensor, scale: Tensor, mask: Tensor | None) -> Tensor:
            nodes, inverse = torch.unique(nodes, return_inverse=True)
            picked = acc[nodes]
            if self.num_layers:
                sub, kept = adj.select_destinations(nodes)
                picked = picked + self._direction(sub, x_dst[nodes], x_src, self.beta[last, side],
                                                  prior[kept], scale[nodes],
                                                  None if mask is None else mask[kept])
            return (picked / (self.num_layers + 1))[inverse]

        return (rows_of(users, 0, out_u, to_user, xu, xi, prior_u, scale_u, mask_u),
                rows_of(items, 1, out_i, to_item, xi, xu, prior_i, scale_i, mask_i))

    def propagate(self, edge_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if self.is_lightgcn():
            return lightgcn_propagate(self.torch_graph(), self.user_emb.weight, self.item_emb.weight,
                                      self.num_layers, edge_mask)
        _, _, out_u, out_i = self._layers(self._constants(edge_mask), self.num_layers)
        scale = 1.0 / (self.num_layers + 1)
        return out_u * scale, out_i * scale

    @torch.no_grad()
    def attention(self) -> list[dict[str, Tensor]]:
        """Attention weights of every layer, in inference mode.

        Returns one dict per layer with ``"item_to_user"`` and ``"user_to_item"``, each
        ``[E, H]`` with rows in interaction-edge-id order (``graph.edges()``): the softmax
        weight of item → user (normalised over each user's items, per head) and of
        user → item (normalised over each item's users). The propagation weight of an
        edge is this attention times the destination's scale :math:`c_i` (see above).
        """
        was_training = self.training
        self.eval()
        try:
            (to_user, prior_u, scale_u, _), (to_item, prior_i, scale_i, _) = self._constants(None)
            xu, xi = self.user_emb.weight, self.item_emb.weight
            layers = []
            for layer in range(self.num_layers):
                a_u = self._alpha(to_user, xu, xi, self.beta[layer, 0], prior_u, None)
                a_i = self._alpha(to_item, xi, xu, self.beta[layer, 1], prior_i, None)
                layers.append({"item_to_user": to_user.to_edge_order(a_u),
                               "user_to_item": to_item.to_edge_order(a_i)})
                xu, xi = (self._direction(to_user, xu, xi, self.beta[layer, 0], prior_u, scale_u, None),
                          self._direction(to_item, xi, xu, self.beta[layer, 1], prior_i, scale_i, None))
            return layers
        finally:
            self.train(was_training)


def attention_warmup(epochs: int) -> Callable[[Any, int], None]:
    """A trainer ``on_epoch_start`` hook: the GAT recommender's β stays frozen (at 0 from
    initialisation, so the model is LightGCN and trains at LightGCN's speed) for the first
    ``epochs`` epochs, and is learned from epoch ``epochs + 1`` on.

    The state is set from the epoch number at the start of every epoch, so a resumed
    run follows the same schedule.
    """
    def hook(trainer: Any, epoch: int) -> None:
        trainer.model.beta.requires_grad_(epoch > epochs)
    return hook
