r"""GF-CF whose linear filter propagates over attention-weighted edges, learned by BPR.

A graph filter trains nothing and already ranks well; attention can only help it by
re-weighting the edges it propagates over. This model starts *as* GF-CF (its closed form
is :meth:`fit`) and then learns, with the standard :class:`~graphrec.training.ranking.Trainer`,
attention weights for the two hops of its linear filter.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor, nn

from graphrec.data.csr import row_positions
from graphrec.data.graph import RecGraph, TorchGraph
from graphrec.linalg import (
    degree_scale,
    normalized_interactions,
    row_split_matmul,
    sparse_product_at,
    truncated_svd,
)
from graphrec.models.masked_graph import MaskedGraph, mask_tensor
from graphrec.models.scoring_model import NotFittedError, ScoringModel
from graphrec.nn import CosineAttention, LightAttentionConv


class AttentiveFilter(ScoringModel):
    r"""GF-CF with attention on the edges of its linear filter.

    GF-CF scores a user's history :math:`r_u` by
    :math:`s_u = r_u \tilde R^\top \tilde R + \alpha\, r_u D_I^{-1/2} V_k V_k^\top D_I^{1/2}`.
    The linear part is two light propagation hops, items → users by :math:`\tilde R` and
    users → items by :math:`\tilde R^\top`. Here each hop is a
    :class:`~graphrec.nn.LightAttentionConv`, so the weight of edge :math:`j \to i` is

    .. math::
        w_{ij} = s_i\, \operatorname{softmax}_{j \in N(i)}\big(\beta \cos(p_i, q_j)
                 + t_j - \tfrac12 \log d_j\big),
        \qquad s_i = d_i^{-1/2} \sum_{k \in N(i)} d_k^{-1/2},

    with fixed node features :math:`p, q` from the filter's own SVD
    (:math:`U_k \Sigma_k^{1/2}` for users, :math:`V_k \Sigma_k^{1/2}` for items, so that
    :math:`p_u^\top q_i` is the rank-:math:`k` reconstruction of :math:`\tilde R_{ui}`),
    a learned sharpness :math:`\beta` per hop and a learned importance :math:`t_j` of every
    node as a neighbour. At :math:`\beta = 0, t = 0` the weights are :math:`\tilde R`'s,
    so after :meth:`fit` the model *is* GF-CF; training moves it only where the training
    signal says so. The ideal low-pass part stays as fitted.

    With ``degree_power`` :math:`\gamma` both parts are wrapped in ChebyCF's degree
    normalisation instead (Kim et al., SIGIR 2025; see
    :mod:`graphrec.models.polynomial_filter`): the history is divided by item degree to
    the :math:`\gamma` before filtering and the scores multiplied by it after,

    .. math::
        s_u = \big[(D_I^{-\gamma} r_u)(W_1^\top W_2^\top + \alpha V_k V_k^\top)\big]
              \odot d_I^{\gamma},

    which at :math:`\gamma = 0` leaves the linear part as above and makes the ideal part
    :math:`V_k V_k^\top`; GF-CF's own ideal part is the :math:`\gamma = \tfrac12` case.

    With ``user_attention`` the model scores by attention of each user over *all* users
    instead (a user-based filter whose neighbours are chosen by attention):

    .. math::
        s_u = \sum_{v} \operatorname{softmax}_{v}\big(\beta_U \cos(p_u, p_v)\big)\, r_v,

    the share of users like :math:`u` who interacted with each item, with :math:`p` the
    filter's spectral user features (:class:`~graphrec.nn.CosineAttention`,
    :math:`\beta_U` learned from its given start). Where users fall into a few groups
    of shared taste, this recovers each group's interactions more sharply than a low-rank
    filter, whose projection mixes groups; the two are alternatives to choose between
    on validation (``model.grid``), the filter's ``ideal_weight`` and ``degree_power``
    playing no part here.

    Training (:class:`~graphrec.training.ranking.Trainer`, BPR) scores a batch's users through the
    filter with the batch's positive edges removed from both the users' histories and the
    graph, so a positive is never predicted from itself. Optionally (``score_scale``)
    training scores are multiplied by a learned scale :math:`e^\tau`, which leaves every
    ranking unchanged but not BPR: a filter's scores are small (about :math:`10^{-2}` on
    Gowalla), where :math:`-\log\sigma(s^+ - s^-)` is nearly linear and weighs every pair
    alike. :meth:`fit` then starts :math:`\tau` at :math:`-\log` of the mean score of a
    sample of training pairs (a typical training pair has logit 1). Measured on the
    synthetic data, Last.fm and FilmTrust it did not help (``benchmarks/README.md``), so
    it is off by default.

    Args:
        graph: the training graph.
        rank: singular vectors of the ideal low-pass filter.
        ideal_weight: :math:`\alpha`.
        feature_rank: singular vectors in the attention's node features (≤ ``rank``).
        attention_score: ``"self"`` or ``"neighbourhood"`` (see
            :class:`~graphrec.nn.LightAttentionConv`).
        node_bias: learn the per-node importances :math:`t`.
        first_hop_attention: learn the first hop's weights too. A training pair's cost is
            then proportional to its user's two-hop neighbourhood (every history item's
            users) rather than to its item's users alone: on Gowalla about five times
            more per step. By default the first hop keeps GF-CF's weights
            (:math:`\tilde R` on the graph without the batch's edges) and an item attends
            over its users.
        degree_power: :math:`\gamma` of the degree normalisation above; ``None`` (default)
            keeps GF-CF's (none on the linear part, :math:`\tfrac12` on the ideal part).
        score_scale: learn the training-score scale :math:`e^\tau` (default ``False``:
            train on the raw scores, :math:`\tau = 0`).
        user_attention: score by attention over all users (above), starting at this
            sharpness :math:`\beta_U`; ``None`` (default): the filter. Its weights are a
            dense ``[batch, users]`` block per batch of users.
        svd_iters: iterations of the truncated SVD.
        seed: seed of the truncated SVD (and of the sample that sets the training scale).
    """

    # It starts from GF-CF's solution: the Trainer validates that start as epoch 0 and
    # keeps it when no trained epoch does better.
    warm_start = True

    def __init__(self, graph: RecGraph, rank: int = 256, ideal_weight: float = 0.3,
                 feature_rank: int = 64, attention_score: str = "self", node_bias: bool = True,
                 first_hop_attention: bool = False, degree_power: float | None = None,
                 score_scale: bool = False, user_attention: float | None = None,
                 svd_iters: int = 6, seed: int = 0) -> None:
        super().__init__(graph)
        if not 1 <= feature_rank <= rank <= min(graph.num_users, graph.num_items):
            raise ValueError(f"need 1 <= feature_rank ({feature_rank}) <= rank ({rank}) <= "
                             f"{min(graph.num_users, graph.num_items)}")
        self.rank, self.feature_rank = rank, feature_rank
        self.ideal_weight = float(ideal_weight)
        if degree_power is not None and not np.isfinite(degree_power):
            raise ValueError(f"degree_power must be a finite number or None, got {degree_power}")
        self.degree_power = degree_power
        self.svd_iters, self.seed = svd_iters, seed
        self.to_user = LightAttentionConv(feature_rank, score=attention_score,
                                          attention=first_hop_attention)
        self.to_item = LightAttentionConv(feature_rank, score=attention_score)
        self.item_bias = (nn.Parameter(torch.zeros(graph.num_items))
                          if node_bias and first_hop_attention else None)
        self.user_bias = nn.Parameter(torch.zeros(graph.num_users)) if node_bias else None
        self.score_scale = score_scale
        if user_attention is not None and not (np.isfinite(user_attention) and user_attention >= 0):
            raise ValueError(f"user_attention must be a finite sharpness >= 0 or None, got {user_attention}")
        self.user_attention = (None if user_attention is None
                               else CosineAttention(beta=float(user_attention)))
        self.log_scale = nn.Parameter(torch.zeros(()), requires_grad=score_scale)
        self.register_load_state_dict_pre_hook(_default_scale)
        self.register_buffer("singular_values", torch.zeros(rank))
        self.register_buffer("item_vectors", torch.zeros(graph.num_items, rank))
        self.register_buffer("user_features", torch.zeros(graph.num_users, feature_rank))
        self.register_buffer("item_features", torch.zeros(graph.num_items, feature_rank))
        ui = sp.csr_matrix(graph.ui, dtype=np.float32)
        ui.data[:] = 1.0
        self._ui = ui
        di = np.bincount(ui.indices, minlength=graph.num_items)
        # Degree scalings of the history (before) and of the scores (after filtering),
        # for the linear and the ideal part.
        linear = 0.0 if degree_power is None else float(degree_power)
        ideal = 0.5 if degree_power is None else float(degree_power)
        self._linear_in = torch.from_numpy(degree_scale(di, -linear)) if linear else None
        self._linear_out = torch.from_numpy(degree_scale(di, linear)) if linear else None
        self._item_scale = torch.from_numpy(degree_scale(di, -ideal))
        self._item_unscale = torch.from_numpy(degree_scale(di, ideal))
        self._pair_keys: Tensor | None = None
        self._item_users: sp.csr_matrix | None = None
        self._tg: TorchGraph | None = None
        # The weighted Gram matrix of the last evaluation, with the weights' version.
        self._gram: tuple[tuple, sp.csr_matrix] | None = None

    def reset_parameters(self) -> None:
        """β and the node importances at 0: the model is its closed form again (the
        training-score scale is set by :meth:`fit`)."""
        self.to_user.reset_parameters()
        self.to_item.reset_parameters()
        if self.user_attention is not None:
            self.user_attention.reset_parameters()
        for bias in (self.item_bias, self.user_bias):
            if bias is not None:
                nn.init.zeros_(bias)

    # ------------------------------------------------------------------ closed form
    def _fit(self) -> None:
        rn = normalized_interactions(self._ui)
        s, v = truncated_svd(rn, self.rank, iters=self.svd_iters, seed=self.seed)
        self._set_spectrum(rn, s, v)

    @torch.no_grad()
    def fit_from(self, other: AttentiveFilter) -> AttentiveFilter:
        """Fit from the SVD of ``other``, a fitted filter on the same graph whose rank is
        at least this one's: its top ``rank`` singular pairs are this filter's (what a
        validation grid over ``rank``, ``ideal_weight`` and ``degree_power`` shares, so
        it costs one SVD). The attention parameters start at their defaults; returns
        ``self``."""
        if not bool(other.fitted):
            raise NotFittedError(f"{type(other).__name__}: fit() it before lending its SVD")
        if other.rank < self.rank or other.graph is not self.graph:
            raise ValueError(f"fit_from needs a fitted filter on the same graph with rank >= "
                             f"{self.rank}, got rank {other.rank}"
                             f"{'' if other.graph is self.graph else ' on another graph'}")
        self._set_spectrum(normalized_interactions(self._ui), other.singular_values[:self.rank].cpu(),
                           other.item_vectors[:, :self.rank].cpu())
        return self

    def _set_spectrum(self, rn: sp.csr_matrix, s: Tensor, v: Tensor) -> None:
        """The filter's buffers from the top singular pairs ``s``, ``v`` of ``rn``."""
        self.singular_values.copy_(s)
        self.item_vectors.copy_(v)
        k = self.feature_rank
        root = s[:k].clamp(min=1e-12).sqrt()
        # U_k Σ^{1/2} = R̃ V_k Σ^{-1/2}.
        users = torch.from_numpy(np.asarray(rn @ v[:, :k].numpy())) / root
        self.user_features.copy_(users)
        self.item_features.copy_(v[:, :k] * root)
        self.fitted.fill_(True)
        if self.score_scale:
            self.log_scale.data.fill_(-math.log(self._mean_training_score()))

    @torch.no_grad()
    def _mean_training_score(self, sample: int = 4096) -> float:
        """Mean score of a fixed sample of training pairs (at least a tiny positive)."""
        users, items = self.graph.edges()
        pick = np.random.default_rng(self.seed).choice(len(users), min(sample, len(users)),
                                                       replace=False)
        u = torch.from_numpy(users[pick]).to(self.device)
        i = torch.from_numpy(items[pick]).to(self.device)
        # The pairs stay in the graph: hiding a sample as large as a small graph would
        # hide all of it.
        mean = float(self._pair_scores(u, i, (u[:0], i[:0]), None).mean())
        return max(mean, 1e-6)

    def param_groups(self) -> list[dict[str, Any]]:
        """All parameters at the trainer's learning rate."""
        return [{"params": list(self.parameters()), "lr_scale": 1.0}]

    def regularized(self, users: Tensor, items: Tensor) -> list[Tensor]:
        """The batch's node importances (L2 keeps them near GF-CF's weights)."""
        if self.item_bias is None or self.user_bias is None:
            return []
        return [self.user_bias[users], self.item_bias[items]]

    # ------------------------------------------------------------------ edge weights
    def torch_graph(self) -> TorchGraph:
        """The training graph as tensors on the model's device, built once and cached."""
        tg = self._tg
        if tg is None or tg.device != self.device:
            tg = self.graph.to_torch(self.device)
            self._tg = tg
        return tg

    def _hops(self, edge_mask: Tensor | None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Both hops' layers on unit values: each destination's scale and each edge's
        attention (edge-id order), first hop (items → users) then second."""
        tg = self.torch_graph()
        p, q = self.user_features, self.item_features
        ones_i = torch.ones(self.num_items, 1, device=self.device)
        ones_u = torch.ones(self.num_users, 1, device=self.device)
        # With unit values a layer's output is each destination's scale s_i, and its
        # attention times that scale is the propagation weight of each edge.
        scale_u, att_u = self.to_user((ones_i, None), tg.item_to_user, edge_mask=edge_mask,
                                      return_attention=True, score_inputs=(q, p),
                                      logit_bias=self.item_bias)
        scale_i, att_i = self.to_item((ones_u, None), tg.user_to_item, edge_mask=edge_mask,
                                      return_attention=True, score_inputs=(p, q),
                                      logit_bias=self.user_bias)
        return scale_u, att_u, scale_i, att_i

    def edge_weights(self, edge_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        r"""The propagation weights of both hops, per interaction edge (edge-id order):
        :math:`w_{vi}` of item :math:`i` → user :math:`v` (the first hop, :math:`\tilde R`
        at initialisation) and of user :math:`v` → item :math:`i` (the second hop). Edges
        removed by ``edge_mask`` weigh 0."""
        scale_u, att_u, scale_i, att_i = self._hops(edge_mask)
        users, items = self.torch_graph().edge_index
        return att_u[:, 0] * scale_u[users, 0], att_i[:, 0] * scale_i[items, 0]

    @torch.no_grad()
    def attention(self) -> list[dict[str, Tensor]]:
        """The softmax attention of both hops, for :mod:`graphrec.explain`: one dict with
        ``"item_to_user"`` (each user's weights over its items, the first hop) and
        ``"user_to_item"`` (each item's weights over its users, the second hop), each
        ``[E, 1]`` in interaction-edge-id order."""
        _, att_u, _, att_i = self._hops(None)
        return [{"item_to_user": att_u, "user_to_item": att_i}]

    @torch.no_grad()
    def _weights_version(self) -> tuple:
        """A fingerprint of everything the edge weights depend on (parameters and node
        features): two sums per tensor. Version counters would be cheaper but miss
        writes by fused optimiser kernels."""
        tensors = (*self.parameters(), self.user_features, self.item_features)
        return tuple((float(t.sum()), float(t.square().sum())) for t in tensors)

    # ------------------------------------------------------------------ full ranking
    def _weighted_gram(self) -> sp.csr_matrix:
        """:math:`W_1^\top W_2^\top` (item × item): a history row times it is the linear
        filter's scores. Built once and kept until a weight changes."""
        version = self._weights_version()
        if self._gram is None or self._gram[0] != version:
            with torch.no_grad():
                w1, w2 = (w.cpu().numpy() for w in self.edge_weights())
            users, items = self.graph.edges()
            shape = (self.num_users, self.num_items)
            first = sp.csr_matrix((w1, (users, items)), shape=shape)   # W1: U × I
            second = sp.csr_matrix((w2, (users, items)), shape=shape)  # W2ᵀ: U × I
            self._gram = (version, (first.T.tocsr() @ second).tocsr())
        return self._gram[1]

    def _scaled_item_vectors(self) -> np.ndarray:
        r""":math:`D_I^{-\gamma} V_k` (GF-CF: :math:`D_I^{-1/2} V_k`) on the CPU, the ideal
        part's left factor: a history row times it is the row's ideal-filter features."""
        return (self.item_vectors.cpu() * self._item_scale[:, None]).numpy()

    def workspace_bytes_per_user(self) -> int:
        if self.user_attention is not None:
            # The user's attention row, the product's output and its transposed copy.
            return 4 * self.num_users + 8 * self.num_items
        # As GF-CF: the sparse product's output and its dense copy.
        return 12 * self.num_items

    def _score(self, users: Tensor) -> Tensor:
        if self.user_attention is not None:
            p = self.user_features
            alpha = self.user_attention(p[users.to(self.device)], p)
            if self._item_users is None:  # Rᵀ in CSR, built once
                self._item_users = self._ui.T.tocsr()
            # (Rᵀ αᵀ)ᵀ: the sparse operand first, one C product over the batch.
            scores = self._item_users @ alpha.detach().cpu().numpy().T
            return torch.from_numpy(np.ascontiguousarray(scores.T)).to(self.device)
        rows = self._ui[users.cpu().numpy()]
        history = rows if self._linear_in is None else rows.multiply(
            self._linear_in.numpy()[None, :]).tocsr()
        scores = torch.from_numpy(row_split_matmul(history, self._weighted_gram(),
                                                   torch.get_num_threads())).to(self.device)
        if self._linear_out is not None:
            scores.mul_(self._linear_out.to(self.device))
        if self.ideal_weight:
            v = self.item_vectors
            left = torch.from_numpy(rows @ self._scaled_item_vectors()).to(self.device)
            right = (v * self._item_unscale.to(self.device)[:, None]).T
            scores.addmm_(left, right, alpha=self.ideal_weight)
        return scores

    # ------------------------------------------------------------------ training
    def _positive_mask(self, users: Tensor, pos: Tensor,
                       edge_mask: Tensor | MaskedGraph | None) -> Tensor:
        """``edge_mask`` (all kept if ``None``) with the edges ``(users, pos)`` removed."""
        to_user = self.torch_graph().item_to_user
        if self._pair_keys is None or self._pair_keys.device != self.device:
            # Stored order is by (user, item): the keys are sorted.
            self._pair_keys = to_user.dst_index_cached() * self.num_items + to_user.col
        key = users * self.num_items + pos
        found = torch.searchsorted(self._pair_keys, key).clamp(max=self._pair_keys.numel() - 1)
        hit = self._pair_keys[found] == key
        given = mask_tensor(edge_mask)
        mask = (torch.ones(to_user.num_edges, dtype=torch.bool, device=self.device)
                if given is None else given.to(self.device).clone())
        mask[to_user.edge_id[found[hit]]] = False
        return mask

    def _pair_scores(self, users: Tensor, items: Tensor, positives: tuple[Tensor, Tensor],
                     edge_mask: Tensor | MaskedGraph | None) -> Tensor:
        r"""Scores of the pairs ``(users[k], items[k])`` with the edges ``positives``
        (users, items) hidden, by summing over the filter's two-hop paths (no dense ``[I, B]`` columns).

        With :math:`h_u[v] = \sum_i w^{(1)}_{vi} r_{ui}` (paths u's item i → user v), the
        score is :math:`\sum_{v \in N(j)} w^{(2)}_{jv} h_u[v]`."""
        if not bool(self.fitted):
            raise NotFittedError(f"{type(self).__name__}: call fit() before training")
        tg = self.torch_graph()
        mask = self._positive_mask(*positives, edge_mask)
        if self.user_attention is not None:
            return self._user_pair_scores(users, items, mask)
        w1, w2 = self.edge_weights(mask)
        distinct, row = torch.unique(users, return_inverse=True)
        # Histories: the kept items of each distinct user.
        to_user, to_item = tg.item_to_user, tg.user_to_item
        ptr, at = row_positions(to_user.rowptr, distinct)
        owner = torch.repeat_interleave(torch.arange(distinct.numel(), device=self.device), ptr.diff())
        kept = mask[to_user.edge_id[at]]
        owner, hist = owner[kept], to_user.col[at][kept]
        hist_weight = (None if self._linear_in is None
                       else self._linear_in.to(self.device)[hist])
        if w1.requires_grad:
            # First hop: every (user's item i, i's user v) path adds w1 of the edge (v, i).
            ptr1, at1 = row_positions(to_item.rowptr, hist)
            path_owner = torch.repeat_interleave(owner, ptr1.diff())
            path = w1[to_item.edge_id[at1]]
            if hist_weight is not None:
                path = path * torch.repeat_interleave(hist_weight, ptr1.diff())
            hidden = torch.zeros(distinct.numel(), self.num_users, device=self.device)
            hidden = hidden.index_put((path_owner, to_item.col[at1]), path, accumulate=True)
        else:
            # Nothing to learn in the first hop: a sparse product in C (scipy) instead.
            values = (np.ones(hist.numel(), dtype=np.float32) if hist_weight is None
                      else hist_weight.cpu().numpy())
            history = sp.csr_matrix((values,
                                     (owner.cpu().numpy(), hist.cpu().numpy())),
                                    shape=(distinct.numel(), self.num_items))
            users_e, items_e = (t.cpu().numpy() for t in tg.edge_index)
            first = sp.csr_matrix((w1.cpu().numpy(), (items_e, users_e)),
                                  shape=(self.num_items, self.num_users))
            hidden = None
        # Second hop for the asked items only.
        ptr2, at2 = row_positions(to_item.rowptr, items)
        pair = torch.repeat_interleave(torch.arange(items.numel(), device=self.device), ptr2.diff())
        if hidden is None:  # only the entries of h the asked pairs' paths read
            path_h = torch.from_numpy(sparse_product_at(
                history, first, row[pair].cpu().numpy(), to_item.col[at2].cpu().numpy(),
                torch.get_num_threads())).to(self.device)
        else:
            path_h = hidden[row[pair], to_item.col[at2]]
        contrib = path_h * w2[to_item.edge_id[at2]]
        scores = torch.zeros(items.numel(), device=self.device).index_add(0, pair, contrib)
        if self._linear_out is not None:
            scores = scores * self._linear_out.to(self.device)[items]
        if self.ideal_weight:
            v = self.item_vectors
            # The kept histories times the scaled singular vectors: a sparse × dense product
            # (scipy), not a [history entries × rank] gather.
            kept = sp.csr_matrix((np.ones(hist.numel(), dtype=np.float32),
                                  (owner.cpu().numpy(), hist.cpu().numpy())),
                                 shape=(distinct.numel(), self.num_items))
            left = torch.from_numpy(row_split_matmul(kept, self._scaled_item_vectors(),
                                                     torch.get_num_threads())).to(self.device)
            right = v[items] * self._item_unscale.to(self.device)[items, None]
            scores = scores + self.ideal_weight * (left[row] * right).sum(-1)
        return scores

    def _user_pair_scores(self, users: Tensor, items: Tensor, mask: Tensor) -> Tensor:
        r"""With ``user_attention``: :math:`s_{uj} = \sum_{v \in N(j)} \alpha_{uv}` over the
        kept edges of item :math:`j` (so a hidden positive does not count its own user)."""
        assert self.user_attention is not None
        distinct, row = torch.unique(users, return_inverse=True)
        p = self.user_features
        alpha = self.user_attention(p[distinct], p)  # [distinct users, all users]
        to_item = self.torch_graph().user_to_item
        ptr, at = row_positions(to_item.rowptr, items)
        pair = torch.repeat_interleave(torch.arange(items.numel(), device=self.device), ptr.diff())
        contrib = alpha[row[pair], to_item.col[at]] * mask[to_item.edge_id[at]]
        return torch.zeros(items.numel(), device=self.device).index_add(0, pair, contrib)

    def score_pairs(self, users: Tensor, pos: Tensor, neg: Tensor,
                    edge_mask: Tensor | MaskedGraph | None = None) -> tuple[Tensor, Tensor]:
        """Training scores of ``(users, pos)`` ``[B]`` and ``(users, neg)`` (``[B]`` or
        ``[B, N]``), with the batch's positive edges hidden."""
        b = users.numel()
        n = neg.numel() // max(b, 1)
        all_users = torch.cat([users, users.repeat_interleave(n) if neg.dim() > 1 else users])
        scores = self._pair_scores(all_users, torch.cat([pos, neg.reshape(-1)]), (users, pos), edge_mask)
        scores = scores * self.log_scale.exp()
        return scores[:b], scores[b:].view(neg.shape)

    def score_shared(self, users: Tensor, pos: Tensor, neg: Tensor,
                     edge_mask: Tensor | MaskedGraph | None = None) -> tuple[Tensor, Tensor]:
        """Training scores of ``(users, pos)`` ``[B]`` and of every user against the shared
        negatives ``neg`` ``[M]``, ``[B, M]``."""
        b, m = users.numel(), neg.numel()
        all_users = torch.cat([users, users.repeat_interleave(m)])
        scores = self._pair_scores(all_users, torch.cat([pos, neg.repeat(b)]), (users, pos), edge_mask)
        scores = scores * self.log_scale.exp()
        return scores[:b], scores[b:].view(b, m)


def _default_scale(module: nn.Module, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
    """Weights saved before the training-score scale existed load with scale 1."""
    state_dict.setdefault(prefix + "log_scale", torch.zeros(()))
