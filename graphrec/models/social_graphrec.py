r"""GraphRec (Fan et al., WWW 2019): social recommendation by attentive aggregation.

GraphRec predicts explicit ratings from three graphs at once: the items a user rated
(with the ratings as *opinions*), the user's social neighbours, and the users who rated
an item. Every aggregation is an attention-weighted sum over one node's incoming edges,
computed for all nodes at once by :class:`~graphrec.nn.AttentiveAggregator` layers on
the graph's destination-major
:class:`~graphrec.data.adjacency.Adjacency` objects; no Python loop runs over users or
items.

The opinion-aware message of an interaction depends only on the rated entity and the
rating level, not on the rater, so it is computed once per distinct (entity, level) pair
and the aggregations run over a graph whose sources are those pairs. A popular item rated
by thousands of users has at most one message per rating level; on a Ciao-sized graph
this cuts the dense work on the user side by more than half and on the item side by an
order of magnitude, with identical results.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphrec.data.adjacency import Adjacency
from graphrec.data.graph import RecGraph
from graphrec.models.masked_graph import MaskedGraph, masked_view
from graphrec.models.rating import RatingModel, RatingSource
from graphrec.nn import AttentiveAggregator


class OpinionMLP(nn.Module):
    r"""The opinion-aware interaction encoder :math:`g` of GraphRec.

    For an interaction of entity :math:`a` (an item when encoding a user, a user when
    encoding an item) rated :math:`r`,

    .. math::
        \mathbf{x} = \mathrm{ReLU}\big(\mathbf{W}_2\,
            \mathrm{ReLU}(\mathbf{W}_1 [\mathbf{q}_a \oplus \mathbf{e}_r] + \mathbf{b}_1)
            + \mathbf{b}_2\big).

    The first layer is split as :math:`\mathbf{W}_1 = [\mathbf{W}_q\ \mathbf{W}_e]`, so
    :math:`\mathbf{W}_q\mathbf{q}` and :math:`\mathbf{W}_e\mathbf{e}` are computed once per
    entity and per rating level and gathered per encoded pair; the concatenation is
    never formed.

    Args:
        dim: embedding size :math:`D`.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.lin1 = nn.Linear(2 * dim, dim)
        self.lin2 = nn.Linear(dim, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.lin1.reset_parameters()
        self.lin2.reset_parameters()

    def forward(self, entities: Tensor, opinions: Tensor, entity_index: Tensor,
                opinion_index: Tensor) -> Tensor:
        """Encode pairs ``(entity_index[k], opinion_index[k])`` → ``(P, D)``.

        Args:
            entities: ``(N, D)`` entity embeddings; opinions: ``(R, D)`` opinion embeddings.
            entity_index, opinion_index: ``int64[P]`` rows of each pair.
        """
        w_entity, w_opinion = self.lin1.weight[:, :self.dim], self.lin1.weight[:, self.dim:]
        hidden = (F.linear(entities, w_entity).index_select(0, entity_index)
                  + F.linear(opinions, w_opinion, self.lin1.bias).index_select(0, opinion_index))
        return F.relu(self.lin2(F.relu(hidden)))


def _mlp(sizes: list[int], dropout: float, last_activation: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if last_activation or k < len(sizes) - 2:
            layers.append(nn.ReLU())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def _aggregate_rows(aggregator: AttentiveAggregator, adj: Adjacency, dst: Tensor, targets: Tensor,
                    mask: Tensor | None, messages_of: Callable[[Tensor], Tensor]) -> Tensor:
    """``aggregator`` over the incoming edges of the destinations ``dst`` only; messages
    are computed (``messages_of(source ids)``) for the sources on those edges alone."""
    sub, positions = adj.select_destinations(dst)
    sub, sources = sub.compact_sources()
    out, _ = aggregator(sub, targets[dst], messages_of(sources),
                        mask=None if mask is None else mask[positions])
    return out


class _OpinionGraphs(NamedTuple):
    pairs_to_user: Adjacency   # (item, level) pair → user, one edge per rating
    pairs_to_item: Adjacency   # (user, level) pair → item, one edge per rating
    item_of_pair: Tensor
    item_pair_level: Tensor
    user_of_pair: Tensor
    user_pair_level: Tensor


class GraphRecOutput(NamedTuple):
    """Node representations and attention weights of one GraphRec pass.

    Attributes:
        user: ``(U, D)`` user latent factors :math:`\\mathbf{h}_i`.
        item: ``(I, D)`` item latent factors :math:`\\mathbf{z}_j`.
        user_items: ``(U, D)`` item-space user factors :math:`\\mathbf{h}^I_i`.
        user_social: ``(U, D)`` social-space user factors :math:`\\mathbf{h}^S_i`.
        item_attention: ``(E,)`` :math:`\\alpha` of each interaction edge in the user's
            attention over its items (edge-id order).
        user_attention: ``(E,)`` :math:`\\mu` of each interaction edge in the item's
            attention over its users (edge-id order).
        social_attention: ``(S,)`` :math:`\\beta` of each social edge in its destination's
            attention over its friends (social edge-id order), or ``None`` without the
            social graph.
    """

    user: Tensor
    item: Tensor
    user_items: Tensor
    user_social: Tensor
    item_attention: Tensor
    user_attention: Tensor
    social_attention: Tensor | None


class GraphRec(RatingModel):
    r"""GraphRec: user modelling from items and friends, item modelling from users.

    With user embeddings :math:`\mathbf{p}`, item embeddings :math:`\mathbf{q}` and one
    opinion embedding :math:`\mathbf{e}_r` per rating level:

    * **Item aggregation** (user :math:`i`, rated items :math:`C(i)`):
      :math:`\mathbf{x}_{ia} = g_v([\mathbf{q}_a \oplus \mathbf{e}_{r_{ia}}])`, attention
      :math:`\alpha_{ia}` on :math:`[\mathbf{x}_{ia} \oplus \mathbf{p}_i]`,
      :math:`\mathbf{h}^I_i = \mathrm{ReLU}(\mathbf{W}\sum_a \alpha_{ia}\mathbf{x}_{ia}
      + \mathbf{b})`.
    * **Social aggregation** (friends :math:`N(i)`, messages flowing friend → user):
      attention :math:`\beta_{io}` on :math:`[\mathbf{h}^I_o \oplus \mathbf{p}_i]`,
      :math:`\mathbf{h}^S_i = \mathrm{ReLU}(\mathbf{W}\sum_o \beta_{io}\mathbf{h}^I_o
      + \mathbf{b})`.
    * **User latent factor**: :math:`\mathbf{h}_i = \mathrm{MLP}([\mathbf{h}^I_i \oplus
      \mathbf{h}^S_i])` (``user_layers`` layers, ReLU after each).
    * **Item modelling** (raters :math:`B(j)`):
      :math:`\mathbf{f}_{jt} = g_u([\mathbf{p}_t \oplus \mathbf{e}_{r_{tj}}])`, attention
      :math:`\mu_{jt}` on :math:`[\mathbf{f}_{jt} \oplus \mathbf{q}_j]`,
      :math:`\mathbf{z}_j = \mathrm{ReLU}(\mathbf{W}\sum_t \mu_{jt}\mathbf{f}_{jt}
      + \mathbf{b})`.
    * **Rating**: :math:`\hat r_{ij} = \bar r + \mathbf{w}^\top \mathrm{MLP}([\mathbf{h}_i
      \oplus \mathbf{z}_j])` (``predict_layers`` hidden layers), trained with MSE.

    With ``self_connection`` (the default) the item aggregation and the item modelling
    also see the node's own embedding, :math:`\mathbf{h}^I_i = \mathrm{ReLU}(\mathbf{W}
    [\mathbf{p}_i \oplus \sum_a \alpha_{ia}\mathbf{x}_{ia}] + \mathbf{b})` and likewise
    :math:`\mathbf{z}_j` with :math:`\mathbf{q}_j`, as in the authors' released code
    (without it, a node is described only by its neighbours). The training mean
    :math:`\bar r` is added to the MLP's output so that an untrained model starts at the
    mean rather than at zero; it is a constant, not a parameter.

    A user without (kept) friends, or every user when ``use_social`` is off, sums over no
    social edges and gets :math:`\mathbf{h}^S_i = \mathrm{ReLU}(\mathbf{b})` (the social
    aggregation's bias), which is finite and carries no information, so the user MLP
    falls back on :math:`\mathbf{h}^I_i`. Users without rated items and items without
    raters likewise sum over nothing (their own embedding remains with
    ``self_connection``). Social edges are removed without rebuilding the graph
    by setting ``social_mask`` (bool per social edge, in ``graph.social_edges()`` order);
    interaction edges by the ``edge_mask`` argument (the rating trainer hides each batch's
    own ratings this way, so a rating is never predicted from its own opinion embedding).

    :meth:`encode` computes every node's representation in one pass (inference, and the
    attention weights). A training step (:meth:`forward`) goes through
    :meth:`encode_rows` instead, which computes only the batch's users and items from
    their own neighbourhoods (and their friends'), so its cost follows the batch, not
    the graph; the results are the same rows. Opinion messages are computed per distinct
    (entity, rating level) pair (see the module docstring).

    Args:
        graph: the training graph (with a social graph for the social part).
        ratings: the training ratings (see :func:`~graphrec.models.rating.edge_ratings`);
            the distinct training values become the opinion levels.
        dim: embedding size :math:`D`.
        user_layers: layers of the user MLP.
        predict_layers: hidden layers of the rating MLP.
        dropout: dropout in the attention, user and rating MLPs during training.
        use_social: use the social graph (default: when the graph has one).
        self_connection: keep a user's own :math:`\mathbf{p}_i` in :math:`\mathbf{h}^I_i`
            and an item's own :math:`\mathbf{q}_j` in :math:`\mathbf{z}_j` (see
            :class:`AttentiveAggregator`), as the authors' implementation does.
        biases: add learned user and item biases to the prediction,
            :math:`\hat r_{ij} + b_i + b_j` (not in the paper; off by default).
        init_std: standard deviation of the embeddings' normal initialisation.
    """

    def __init__(self, graph: RecGraph, ratings: RatingSource, dim: int = 64,
                 user_layers: int = 3, predict_layers: int = 2, dropout: float = 0.0,
                 use_social: bool | None = None, self_connection: bool = True,
                 biases: bool = False, init_std: float = 0.1) -> None:
        super().__init__(graph, ratings)
        if use_social is None:
            use_social = graph.social is not None
        if use_social and graph.social is None:
            raise ValueError("use_social=True needs a RecGraph built with social edges")
        if user_layers < 1 or predict_layers < 1:
            raise ValueError("user_layers and predict_layers must be >= 1")
        self.dim = dim
        self.use_social = use_social
        self.self_connection = self_connection
        self.biases = biases
        self.dropout = dropout
        self.init_std = init_std
        levels, index = np.unique(self.edge_rating.numpy(), return_inverse=True)
        self.register_buffer("rating_levels", torch.from_numpy(levels.astype(np.float32)))
        self.register_buffer("edge_level", torch.from_numpy(index.reshape(-1).astype(np.int64)))
        # Not saved with the weights: a mask is a property of an experiment, not the model.
        self.register_buffer("social_mask", None, persistent=False)
        self._opinion_cache: _OpinionGraphs | None = None

        self.user_emb = nn.Embedding(self.num_users, dim)
        self.item_emb = nn.Embedding(self.num_items, dim)
        self.opinion_emb = nn.Embedding(max(len(levels), 1), dim)
        self.item_opinion = OpinionMLP(dim)      # g_v: (item, opinion) → x_ia
        self.user_opinion = OpinionMLP(dim)      # g_u: (user, opinion) → f_jt
        self.item_aggregation = AttentiveAggregator(dim, dropout, self_connection)
        self.social_aggregation = AttentiveAggregator(dim, dropout)
        self.user_aggregation = AttentiveAggregator(dim, dropout, self_connection)
        self.user_mlp = _mlp([2 * dim] + [dim] * user_layers, dropout, last_activation=True)
        self.rating_mlp = _mlp([2 * dim] + [dim] * predict_layers + [1], dropout,
                               last_activation=False)
        if biases:
            self.user_bias = nn.Embedding(self.num_users, 1)
            self.item_bias = nn.Embedding(self.num_items, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for emb in (self.user_emb, self.item_emb, self.opinion_emb):
            nn.init.normal_(emb.weight, std=self.init_std)
        for module in (self.item_opinion, self.user_opinion, self.item_aggregation,
                       self.social_aggregation, self.user_aggregation):
            module.reset_parameters()
        for seq in (self.user_mlp, self.rating_mlp):
            for layer in seq:
                if isinstance(layer, nn.Linear):
                    layer.reset_parameters()
        if self.biases:
            nn.init.zeros_(self.user_bias.weight)
            nn.init.zeros_(self.item_bias.weight)

    def _opinion_graphs(self) -> _OpinionGraphs:
        """The interaction graphs with (entity, rating level) pairs as sources (cached)."""
        tg = self.torch_graph()
        cached = self._opinion_cache
        if cached is not None and cached.pairs_to_user.rowptr.device == tg.device:
            return cached
        users, items = tg.edge_index[0], tg.edge_index[1]
        level = self.edge_level.to(tg.device)
        num_levels = self.opinion_emb.num_embeddings
        item_pairs, item_pair_of_edge = torch.unique(items * num_levels + level,
                                                     return_inverse=True)
        user_pairs, user_pair_of_edge = torch.unique(users * num_levels + level,
                                                     return_inverse=True)
        to_user, to_item = tg.item_to_user, tg.user_to_item
        # Same segments and stored order as the interaction graphs, so their masks and
        # edge ids apply unchanged; only the sources are replaced by pairs. A user rates
        # an item once, so no (pair, destination) repeats.
        pairs_to_user = Adjacency(to_user.rowptr, item_pair_of_edge[to_user.edge_id],
                                  to_user.edge_id, item_pairs.numel(), to_user.num_dst)
        pairs_to_item = Adjacency(to_item.rowptr, user_pair_of_edge[to_item.edge_id],
                                  to_item.edge_id, user_pairs.numel(), to_item.num_dst)
        cached = _OpinionGraphs(pairs_to_user, pairs_to_item,
                                item_pairs // num_levels, item_pairs % num_levels,
                                user_pairs // num_levels, user_pairs % num_levels)
        self._opinion_cache = cached
        return cached

    def _stored_masks(self, edge_mask: Tensor | MaskedGraph | None
                      ) -> tuple[Tensor | None, Tensor | None]:
        """``edge_mask`` in the stored order of the item → user and user → item adjacencies."""
        view = masked_view(self.torch_graph(), edge_mask)
        if view is None:
            return None, None
        tg = self.torch_graph()
        return view.stored(tg.item_to_user), view.stored(tg.user_to_item)

    def encode(self, edge_mask: Tensor | MaskedGraph | None = None,
               social_mask: Tensor | None = None) -> GraphRecOutput:
        """User and item latent factors of all nodes, with the attention weights.

        Args:
            edge_mask: optional bool per interaction edge (edge ids); ``False`` hides it.
            social_mask: optional bool per social edge (social edge ids); defaults to the
                ``social_mask`` attribute. Ignored when ``use_social`` is off.
        """
        tg = self.torch_graph()
        to_user, to_item = tg.item_to_user, tg.user_to_item
        mask_u, mask_i = self._stored_masks(edge_mask)
        og = self._opinion_graphs()
        p, q, opinions = self.user_emb.weight, self.item_emb.weight, self.opinion_emb.weight

        x = self.item_opinion(q, opinions, og.item_of_pair, og.item_pair_level)
        h_items, alpha = self.item_aggregation(og.pairs_to_user, p, x, mask=mask_u)

        beta = None
        if self.use_social:
            social = tg.social
            assert social is not None
            smask = self.social_mask if social_mask is None else social_mask
            if smask is not None:
                smask = social.mask_to_stored(smask.to(self.device))
            h_social, beta_stored = self.social_aggregation(social, p, h_items, mask=smask)
            beta = social.to_edge_order(beta_stored)
        else:
            h_social = F.relu(self.social_aggregation.out.bias).expand(self.num_users, -1)
        h = self.user_mlp(torch.cat([h_items, h_social], dim=1))

        f = self.user_opinion(p, opinions, og.user_of_pair, og.user_pair_level)
        z, mu = self.user_aggregation(og.pairs_to_item, q, f, mask=mask_i)
        return GraphRecOutput(h, z, h_items, h_social, to_user.to_edge_order(alpha),
                              to_item.to_edge_order(mu), beta)

    def encode_rows(self, users: Tensor, items: Tensor, edge_mask: Tensor | MaskedGraph | None = None,
                    social_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Latent factors of the users ``users`` and the items ``items`` only.

        The same values as the rows of :meth:`encode`'s ``user`` and ``item``, computed
        from the incoming edges of those nodes (and, for the social aggregation, of their
        friends) alone, with opinion messages only for the (entity, level) pairs on
        those edges.

        Returns:
            ``(len(users), D)`` user and ``(len(items), D)`` item factors.
        """
        tg = self.torch_graph()
        og = self._opinion_graphs()
        p, q, opinions = self.user_emb.weight, self.item_emb.weight, self.opinion_emb.weight
        users, items = users.to(self.device), items.to(self.device)
        mask_u, mask_i = self._stored_masks(edge_mask)

        def item_messages(pairs: Tensor) -> Tensor:
            used, local = torch.unique(og.item_of_pair[pairs], return_inverse=True)
            return self.item_opinion(q[used], opinions, local, og.item_pair_level[pairs])

        def user_messages(pairs: Tensor) -> Tensor:
            used, local = torch.unique(og.user_of_pair[pairs], return_inverse=True)
            return self.user_opinion(p[used], opinions, local, og.user_pair_level[pairs])

        n = users.numel()
        if not self.use_social:
            h_items = _aggregate_rows(self.item_aggregation, og.pairs_to_user, users, p, mask_u,
                                      item_messages)
            h_social = F.relu(self.social_aggregation.out.bias).expand(n, -1)
        else:
            social = tg.social
            assert social is not None
            friends, spos = social.select_destinations(users)
            # Item-space factors are needed for the batch's users and for their friends.
            need, where = torch.unique(torch.cat([users, friends.col]), return_inverse=True)
            h_need = _aggregate_rows(self.item_aggregation, og.pairs_to_user, need, p, mask_u,
                                     item_messages)
            smask = self.social_mask if social_mask is None else social_mask
            if smask is not None:
                smask = social.mask_to_stored(smask.to(self.device))[spos]
            friends = Adjacency(friends.rowptr, where[n:], friends.edge_id, need.numel(), n)
            h_social, _ = self.social_aggregation(friends, p[users], h_need, mask=smask)
            h_items = h_need[where[:n]]
        h = self.user_mlp(torch.cat([h_items, h_social], dim=1))
        z = _aggregate_rows(self.user_aggregation, og.pairs_to_item, items, q, mask_i, user_messages)
        return h, z

    def rate(self, enc: GraphRecOutput, users: Tensor, items: Tensor) -> Tensor:
        """Ratings ``[B]`` of aligned (user, item) index pairs from an :meth:`encode` pass."""
        return self._rate(enc.user.index_select(0, users), enc.item.index_select(0, items), users, items)

    def _rate(self, h: Tensor, z: Tensor, users: Tensor, items: Tensor) -> Tensor:
        out = self.rating_mlp(torch.cat([h, z], dim=1)).squeeze(-1) + self.rating_mean
        if self.biases:
            out = out + self.user_bias(users).squeeze(-1) + self.item_bias(items).squeeze(-1)
        return out

    def forward(self, users: Tensor, items: Tensor, edge_mask: Tensor | MaskedGraph | None = None) -> Tensor:
        unique_users, user_row = torch.unique(users, return_inverse=True)
        unique_items, item_row = torch.unique(items, return_inverse=True)
        h, z = self.encode_rows(unique_users, unique_items, edge_mask)
        return self._rate(h[user_row], z[item_row], users, items)

    def predictor(self) -> Callable[[Tensor, Tensor], Tensor]:
        with torch.no_grad():
            enc = self.encode()

        def predict(users: Tensor, items: Tensor) -> Tensor:
            with torch.no_grad():
                return self.rate(enc, users.to(self.device), items.to(self.device))
        return predict

    def regularized(self, users: Tensor, items: Tensor) -> list[Tensor]:
        reg = [self.user_emb(users), self.item_emb(items)]
        if self.biases:
            reg += [self.user_bias(users), self.item_bias(items)]
        return reg
