"""A graph-attention recommender built from ``graphrec.nn`` attention layers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from graphrec.data.adjacency import Adjacency
from graphrec.data.graph import RecGraph
from graphrec.models.base import EmbeddingRecommender
from graphrec.models.masked_graph import MaskedGraph, mask_tensor, masked_view
from graphrec.models.propagation import lightgcn_propagate, lightgcn_rows
from graphrec.nn import DotProductAttentionConv, GATConv, GATv2Conv, LightAttentionConv
from graphrec.scoring import Scorer

LayerFactory = Callable[[int, int], nn.Module]
LAYERS = ("light", "gat", "gatv2", "dot")
DIRECTIONS = ("item_to_user", "user_to_item")


def attention_layer(kind: str | LayerFactory, dim: int, heads: int, dropout: float = 0.0,
                    **light: Any) -> nn.Module:
    """One propagation layer ``dim → dim`` with ``heads`` heads.

    Args:
        kind: ``"light"`` (:class:`~graphrec.nn.LightAttentionConv`, no transform),
            ``"gat"``, ``"gatv2"``, ``"dot"`` (the transformed attention layers, heads
            concatenated, no self-loops and no bias, so that a node's output comes from its
            neighbours alone as in light propagation), or a callable ``(dim, heads) ->
            module`` for a layer of one's own.
        dropout: attention dropout.
        light: further arguments of :class:`~graphrec.nn.LightAttentionConv`.

    A layer is called as ``layer((x_src, x_dst), adjacency, edge_mask=...,
    return_attention=...)`` and returns ``(num_dst, dim)`` (and the attention ``(E, H)``
    in edge-id order when asked).
    """
    if callable(kind):
        return kind(dim, heads)
    if kind not in LAYERS:
        raise ValueError(f"layer must be one of {LAYERS} or a callable, got {kind!r}")
    if kind == "light":
        return LightAttentionConv(dim, heads, dropout=dropout, **light)
    if dim % heads:
        raise ValueError(f"dim ({dim}) must be divisible by heads ({heads})")
    if kind == "gat":
        return GATConv(dim, dim // heads, heads, add_self_loops=False, bias=False, dropout=dropout)
    if kind == "gatv2":
        return GATv2Conv(dim, dim // heads, heads, add_self_loops=False, bias=False, dropout=dropout)
    return DotProductAttentionConv(dim, dim // heads, heads, root_weight=False, bias=False,
                                   dropout=dropout)


class GATRecommender(EmbeddingRecommender):
    r"""Light propagation whose neighbour weights are learned by attention layers.

    Plain GAT stacks (a linear map, a non-linearity and softmax weights per layer) lose to
    MF-BPR on sparse implicit feedback. This model keeps what makes LightGCN strong — no
    transforms or non-linearities between layers, layer outputs pooled — and lets an
    attention layer of :mod:`graphrec.nn` weigh the neighbours. Layer :math:`l` has one
    layer per direction (item → user, user → item):

    .. math::
        e^{(l+1)}_u = \mathrm{conv}^{(l)}_{I\to U}\big(e^{(l)}_I, e^{(l)}_u\big), \qquad
        e^{(l+1)}_i = \mathrm{conv}^{(l)}_{U\to I}\big(e^{(l)}_U, e^{(l)}_i\big), \qquad
        e = \gamma\, e^{(0)} + \frac{1 - \gamma}{L} \sum_{l=1}^{L} e^{(l)}

    with :math:`\gamma = 1/(L+1)` (LightGCN's mean) unless ``pool_weight`` is given.
    The default layer, :class:`~graphrec.nn.LightAttentionConv`, starts *equal to*
    LightGCN's normalisation (its sharpness :math:`\beta` is 0) and learns where to depart
    from it; its options switch on what is known to matter on these graphs: the
    neighbour-aware score, per-head sharpness, LightGCN++'s degree exponents (fixed or
    learned), per-layer input normalisation. With ``attention=False`` the model is
    LightGCN++ (or LightGCN, at the default exponents): the ablation of the attention.

    ``propagate(edge_mask=...)`` removes edges from attention and degrees (used to hide a
    batch's positive edges while training). While every layer is LightGCN's (light layers
    at :math:`\beta = 0` not being trained, default exponents and pooling), propagation
    takes LightGCN's fused sparse path, about three times faster; training with
    :math:`\beta` frozen for a warm-up (:func:`attention_warmup`) starts the attention
    from a trained LightGCN at LightGCN's cost.

    Args:
        graph: training graph.
        dim: embedding size (divisible by ``heads``).
        num_layers: propagation steps :math:`L`.
        heads: attention heads.
        attention_dropout: dropout on the attention weights during training.
        attention_score: light layers: what a neighbour is compared with, ``"self"`` or
            ``"neighbourhood"`` (see :class:`~graphrec.nn.LightAttentionConv`).
        attention_lr_scale: the sharpnesses' learning rate as a multiple of the
            embeddings' (:meth:`param_groups`). Adam moves each parameter by about the
            learning rate per step whatever its gradient, so at an embedding's rate
            :math:`\beta` can hardly leave 0 in the few epochs it trains after a warm-up.
        layer: ``"light"``, ``"gat"``, ``"gatv2"``, ``"dot"`` or a factory
            ``(dim, heads) -> module`` (see :func:`attention_layer`).
        attention: light layers: learn :math:`\beta` (``False``: LightGCN/LightGCN++).
        dst_power: light layers: the destination's normalisation exponent :math:`a`
            (LightGCN: ½).
        src_power: light layers: the source's normalisation exponent :math:`b`
            (LightGCN: ½).
        learn_powers: light layers: learn the exponents (LightGCN++ with learned
            normalisation), per layer and direction.
        normalize: light layers: unit-length inputs to every layer (LightGCN++).
        pool_weight: :math:`\gamma`, the share of the ego embeddings in the pooled output
            (``None``: :math:`1/(L+1)`).
        learn_pool: learn :math:`\gamma`.
        node_importance: light layers: learn an importance :math:`t_j` of every node as a
            neighbour, added to its logits in every layer
            (:math:`\mathrm{softmax}_j(\beta \cos + t_j - b \log d_j)`). With
            ``attention=False`` this is attention without the score's sampled dot
            products: per-node learned weights at the cost of a softmax over the edges.
    """

    SCORES = LightAttentionConv.SCORES

    def __init__(self, graph: RecGraph, dim: int = 64, num_layers: int = 3, heads: int = 1,
                 scorer: Scorer | str = "dot", attention_dropout: float = 0.0,
                 init_std: float = 0.1, attention_score: str = "self",
                 attention_lr_scale: float = 1.0, layer: str | LayerFactory = "light",
                 attention: bool = True, dst_power: float = 0.5, src_power: float = 0.5,
                 learn_powers: bool = False, normalize: bool = False,
                 pool_weight: float | None = None, learn_pool: bool = False,
                 node_importance: bool = False) -> None:
        if dim % heads:
            raise ValueError(f"dim ({dim}) must be divisible by heads ({heads})")
        if attention_score not in self.SCORES:
            raise ValueError(f"attention_score must be one of {self.SCORES}, got {attention_score!r}")
        if not attention_lr_scale > 0:
            raise ValueError(f"attention_lr_scale must be positive, got {attention_lr_scale}")
        if pool_weight is not None and not 0 <= pool_weight <= 1:
            raise ValueError(f"pool_weight must be in [0, 1], got {pool_weight}")
        if num_layers < 0:
            raise ValueError(f"num_layers must be >= 0, got {num_layers}")
        super().__init__(graph, dim, scorer, init_std)
        self.num_layers = num_layers
        self.heads = heads
        self.attention_lr_scale = attention_lr_scale
        self.default_pool = pool_weight is None and not learn_pool
        gamma = 1.0 / (num_layers + 1) if pool_weight is None else float(pool_weight)
        self._initial_pool = gamma
        if learn_pool:
            self.pool_weight = nn.Parameter(torch.tensor(gamma))
        else:
            self.register_buffer("pool_weight", torch.tensor(gamma))
        light = dict(score=attention_score, dst_power=dst_power, src_power=src_power,
                     learn_powers=learn_powers, normalize=normalize, attention=attention)
        if node_importance and layer != "light":
            raise ValueError("node_importance needs the light attention layer (layer='light')")
        self.node_importance = node_importance
        if node_importance:
            self.user_importance = nn.Parameter(torch.zeros(self.num_users))
            self.item_importance = nn.Parameter(torch.zeros(self.num_items))
        self.convs = nn.ModuleList(
            nn.ModuleDict({d: attention_layer(layer, dim, heads, attention_dropout, **light)
                           for d in self._relations()})
            for _ in range(num_layers))
        self.register_load_state_dict_pre_hook(_upgrade_state_dict)
        self.reset_parameters()

    def _relations(self) -> tuple[str, ...]:
        return DIRECTIONS

    def reset_parameters(self) -> None:
        super().reset_parameters()
        with torch.no_grad():
            self.pool_weight.fill_(self._initial_pool)
            if getattr(self, "node_importance", False):
                self.user_importance.zero_()
                self.item_importance.zero_()
        for layer in getattr(self, "convs", ()):
            for conv in layer.values():
                conv.reset_parameters()

    def attention_parameters(self) -> list[nn.Parameter]:
        """The light layers' sharpnesses :math:`\\beta` (frozen for a warm-up, and trained at
        ``attention_lr_scale`` times the learning rate)."""
        return [p for name, p in self.convs.named_parameters() if name.endswith("beta")]

    def train_attention(self, mode: bool = True) -> None:
        """Learn the sharpnesses (``True``) or freeze them (``False``; frozen at 0 the model
        is LightGCN and propagates on its fused path)."""
        for beta in self.attention_parameters():
            beta.requires_grad_(mode)

    def attention_trained(self) -> bool:
        """Whether some sharpness is being learned."""
        return any(beta.requires_grad for beta in self.attention_parameters())

    @torch.no_grad()
    def sharpness(self) -> Tensor:
        """The light layers' :math:`\beta` as ``[L, relations, H]`` (0 where a layer has none)."""
        out = torch.zeros(self.num_layers, len(self._relations()), self.heads)
        for layer, convs in enumerate(self.convs):
            for r, relation in enumerate(self._relations()):
                beta = getattr(convs[relation], "beta", None)
                if isinstance(beta, Tensor) and beta.numel() == self.heads:
                    out[layer, r] = beta.detach().cpu()
        return out

    def param_groups(self) -> list[dict[str, Any]]:
        """Everything at the trainer's learning rate, the sharpnesses at
        ``attention_lr_scale`` times it."""
        sharp = {id(p) for p in self.attention_parameters()}
        rest = [p for p in self.parameters() if id(p) not in sharp]
        groups = [{"params": rest, "lr_scale": 1.0}]
        if sharp:
            groups.append({"params": self.attention_parameters(), "lr_scale": self.attention_lr_scale})
        return groups

    def is_lightgcn(self) -> bool:
        """Whether propagation equals LightGCN's, so that its fused path applies: every layer
        a static light layer at exponents ½ (not learned, no input normalisation) and the
        default mean pooling."""
        if not self.default_pool or self.node_importance:
            return False
        for layer in self.convs:
            for conv in layer.values():
                if not (isinstance(conv, LightAttentionConv) and conv.is_static()
                        and not conv.normalize and not isinstance(conv.powers, nn.Parameter)
                        and conv.powers.tolist() == [0.5, 0.5]):
                    return False
        return True

    # ------------------------------------------------------------------ propagation
    def _degrees(self, view: MaskedGraph | None) -> tuple[Tensor, Tensor]:
        """Kept degrees of users and items (float)."""
        if view is None:
            tg = self.torch_graph()
            return tg.item_to_user.in_degree().float(), tg.user_to_item.in_degree().float()
        return view.degrees

    def _call(self, conv: nn.Module, x_src: Tensor, x_dst: Tensor, adj: Adjacency,
              mask: Tensor | MaskedGraph | None, src_degree: Tensor, record: bool,
              sources: str) -> tuple[Tensor, Tensor | None]:
        """One layer in one direction (from ``sources``, "users" or "items"): its output
        and (when ``record``) its attention. ``mask`` is in ``adj``'s edge-id order."""
        kwargs: dict[str, Any] = {"edge_mask": mask_tensor(mask), "return_attention": record}
        if isinstance(conv, LightAttentionConv):
            kwargs["src_degree"] = src_degree
            if self.node_importance:
                kwargs["logit_bias"] = self.item_importance if sources == "items" else self.user_importance
        out = conv((x_src, x_dst), adj, **kwargs)
        return (out[0], out[1]) if record else (out, None)

    def _step(self, layer: int, xu: Tensor, xi: Tensor, edge_mask: MaskedGraph | None,
              degrees: tuple[Tensor, Tensor], record: list[dict[str, Tensor]] | None
              ) -> tuple[Tensor, Tensor]:
        """One propagation layer over all nodes."""
        tg = self.torch_graph()
        convs = self.convs[layer]
        du, di = degrees
        new_u, a_u = self._call(convs["item_to_user"], xi, xu, tg.item_to_user, edge_mask, di,
                                record is not None, "items")
        new_i, a_i = self._call(convs["user_to_item"], xu, xi, tg.user_to_item, edge_mask, du,
                                record is not None, "users")
        if record is not None:
            record.append({"item_to_user": a_u, "user_to_item": a_i})
        return new_u, new_i

    def _pool(self, first: Tensor, rest: Tensor) -> Tensor:
        """:math:`\\gamma e^{(0)} + (1-\\gamma)/L \\sum_{l \\ge 1} e^{(l)}` from the ego rows and
        the sum of the propagated layers."""
        if self.num_layers == 0:
            return first
        gamma = self.pool_weight
        return gamma * first + (1 - gamma) / self.num_layers * rest

    def _propagate(self, edge_mask: MaskedGraph | None, record: list[dict[str, Tensor]] | None,
                   count: int | None = None, degrees: tuple[Tensor, Tensor] | None = None
                   ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The first ``count`` layers: the last outputs and the sums of layers 1..count."""
        if degrees is None:
            degrees = self._degrees(edge_mask)
        xu, xi = self.user_emb.weight, self.item_emb.weight
        sum_u, sum_i = torch.zeros_like(xu), torch.zeros_like(xi)
        for layer in range(self.num_layers if count is None else count):
            xu, xi = self._step(layer, xu, xi, edge_mask, degrees, record)
            sum_u, sum_i = sum_u + xu, sum_i + xi
        return xu, xi, sum_u, sum_i

    def propagate(self, edge_mask: Tensor | MaskedGraph | None = None) -> tuple[Tensor, Tensor]:
        view = masked_view(self.torch_graph(), edge_mask)
        if self.is_lightgcn():
            return lightgcn_propagate(self.torch_graph(), self.user_emb.weight, self.item_emb.weight,
                                      self.num_layers, view)
        _, _, sum_u, sum_i = self._propagate(view, None)
        return self._pool(self.user_emb.weight, sum_u), self._pool(self.item_emb.weight, sum_i)

    def propagate_rows(self, users: Tensor, items: Tensor,
                       edge_mask: Tensor | MaskedGraph | None = None) -> tuple[Tensor, Tensor]:
        """:meth:`propagate`'s rows ``users`` and ``items``, with the last layer computed
        for those destinations only (each node's softmax runs over its own incoming
        edges, so restricting destinations is exact)."""
        view = masked_view(self.torch_graph(), edge_mask)
        if self.is_lightgcn():
            return lightgcn_rows(self.torch_graph(), self.user_emb.weight, self.item_emb.weight,
                                 self.num_layers, users, items, view)
        if self.num_layers == 0:
            return self.user_emb.weight[users], self.item_emb.weight[items]
        tg = self.torch_graph()
        last = self.num_layers - 1
        du, di = self._degrees(view)
        xu, xi, sum_u, sum_i = self._propagate(view, None, last, (du, di))

        def rows_of(nodes: Tensor, conv: nn.Module, adj: Adjacency, x_dst: Tensor, x_src: Tensor,
                    ego: Tensor, acc: Tensor, src_degree: Tensor, sources: str) -> Tensor:
            nodes, inverse = torch.unique(nodes, return_inverse=True)
            block, positions = adj.select_destinations(nodes)
            mask = None if view is None else view.stored(adj)[positions]
            out, _ = self._call(conv, x_src, x_dst[nodes], block.with_stored_ids(), mask,
                                src_degree, False, sources)
            return self._pool(ego[nodes], acc[nodes] + out)[inverse]

        convs = self.convs[last]
        return (rows_of(users, convs["item_to_user"], tg.item_to_user, xu, xi, self.user_emb.weight,
                        sum_u, di, "items"),
                rows_of(items, convs["user_to_item"], tg.user_to_item, xi, xu, self.item_emb.weight,
                        sum_i, du, "users"))

    @torch.no_grad()
    def attention(self) -> list[dict[str, Tensor]]:
        """Attention weights of every layer, in inference mode.

        Returns one dict per layer with ``"item_to_user"`` and ``"user_to_item"``, each
        ``[E, H]`` with rows in interaction-edge-id order (``graph.edges()``): the softmax
        weight of item → user (normalised over each user's items, per head) and of
        user → item (normalised over each item's users). For light layers the
        propagation weight of an edge is this attention times the destination's scale
        :math:`s_i` (see :class:`~graphrec.nn.LightAttentionConv`).
        """
        was_training = self.training
        self.eval()
        try:
            record: list[dict[str, Tensor]] = []
            self._propagate(None, record)
            return record
        finally:
            self.train(was_training)


def _upgrade_state_dict(module: nn.Module, state_dict: dict[str, Any], prefix: str,
                        *args: Any) -> None:
    """Load weights saved before the model was built from layers: one ``beta``
    ``[L, 2, H]`` (and ``beta_social`` ``[L, H]``) tensor instead of a sharpness per layer,
    and no exponents or pooling weight (they were LightGCN's)."""
    old = state_dict.pop(prefix + "beta", None)
    social = state_dict.pop(prefix + "beta_social", None)
    if old is None:
        return
    for layer in range(old.size(0)):
        names = dict(zip(DIRECTIONS, old[layer]))
        if social is not None:
            names["user_to_user"] = social[layer]
        for relation, beta in names.items():
            key = f"{prefix}convs.{layer}.{relation}."
            state_dict[key + "beta"] = beta
            state_dict.setdefault(key + "powers", torch.tensor([0.5, 0.5]))
    state_dict.setdefault(prefix + "pool_weight", torch.tensor(1.0 / (old.size(0) + 1)))


def attention_warmup(epochs: int) -> Callable[[Any, int], None]:
    """A trainer ``on_epoch_start`` hook: the attention recommender's sharpnesses stay
    frozen (at 0 from initialisation, so the model is LightGCN and trains at LightGCN's
    speed) for the first ``epochs`` epochs, and are learned from epoch ``epochs + 1`` on.

    The state is set from the epoch number at the start of every epoch, so a resumed
    run follows the same schedule.
    """
    def hook(trainer: Any, epoch: int) -> None:
        trainer.model.train_attention(epoch > epochs)
    return hook
