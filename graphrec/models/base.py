"""The interface every recommender shares: embeddings in, scores and recommendations out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from graphrec.atomic import atomic_path
from graphrec.data.graph import RecGraph, TorchGraph
from graphrec.models.masked_graph import MaskedGraph
from graphrec.scoring import Scorer, make_scorer


class Recommender(nn.Module):
    """Base class of graphrec's models.

    A model is built on the training :class:`~graphrec.data.graph.RecGraph`; it owns user
    and item representations and a :class:`~graphrec.scoring.Scorer`. Subclasses
    implement :meth:`propagate`, which returns the final user and item embeddings (for
    graph models, after message passing), and may override :meth:`regularized` to say
    which tensors the L2 penalty applies to.

    Args:
        graph: the training graph (its id maps give raw ids back in :meth:`recommend`).
        dim: embedding size.
        scorer: a scorer or its name (``dot``, ``cosine``, ``bilinear``, ``mlp``).
    """

    def __init__(self, graph: RecGraph, dim: int, scorer: Scorer | str = "dot") -> None:
        super().__init__()
        self.graph = graph
        self.num_users = graph.num_users
        self.num_items = graph.num_items
        self.dim = dim
        self.scorer = make_scorer(scorer, dim) if isinstance(scorer, str) else scorer
        self._torch_graph: TorchGraph | None = None

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def torch_graph(self) -> TorchGraph:
        """The training graph as tensors on the model's device, built once and cached."""
        dev = self.device
        tg = self._torch_graph
        if tg is None or tg.device.type != dev.type or (dev.index is not None and tg.device != dev):
            tg = self.graph.to_torch(dev) if tg is None else tg.to(dev)
            self._torch_graph = tg
        return tg

    def propagate(self, edge_mask: Tensor | MaskedGraph | None = None) -> tuple[Tensor, Tensor]:
        """User embeddings ``[U, D]`` and item embeddings ``[I, D]``.

        Args:
            edge_mask: optional bool per interaction edge (graph edge ids); ``False``
                hides an edge from message passing (models without a graph ignore it).
        """
        raise NotImplementedError

    def param_groups(self) -> list[dict[str, Any]]:
        """The parameters as optimiser groups, each with an ``lr_scale`` (its learning rate
        is the trainer's times this); one group at scale 1 unless a model needs more."""
        return [{"params": list(self.parameters()), "lr_scale": 1.0}]

    def regularized(self, users: Tensor, items: Tensor) -> list[Tensor]:
        """Tensors whose squared norm forms the L2 penalty of a batch (default: none)."""
        return []

    def score(self, users: Tensor, items: Tensor, user_emb: Tensor, item_emb: Tensor) -> Tensor:
        """Scores of aligned (user, item) index pairs given propagated embeddings.

        ``items`` may be ``[B]`` or ``[B, N]``.
        """
        u = user_emb[users]
        v = item_emb[items]
        if items.dim() == 2:
            b, n = items.shape
            return self.scorer(u.unsqueeze(1).expand(b, n, -1).reshape(b * n, -1),
                               v.reshape(b * n, -1)).view(b, n)
        return self.scorer(u, v)

    def propagate_rows(self, users: Tensor, items: Tensor,
                       edge_mask: Tensor | MaskedGraph | None = None) -> tuple[Tensor, Tensor]:
        """Propagated embeddings of just ``users`` and ``items`` (rows in their order).

        Equal to indexing :meth:`propagate`'s output; models that can skip the rows
        nobody asked for (LightGCN computes its last layer for these rows only) override
        it to make training steps cheaper.
        """
        user_emb, item_emb = self.propagate(edge_mask=edge_mask)
        return user_emb[users], item_emb[items]

    def score_pairs(self, users: Tensor, pos: Tensor, neg: Tensor,
                    edge_mask: Tensor | MaskedGraph | None = None) -> tuple[Tensor, Tensor]:
        """Scores of a training batch: ``(users, pos)`` ``[B]`` and ``(users, neg)``.

        The same as two :meth:`score` calls on :meth:`propagate`'s output, but the
        embeddings come from :meth:`propagate_rows` with one gather per side.
        ``neg`` is ``[B]`` or ``[B, N]``; the negative scores have its shape.
        ``edge_mask`` is passed on to propagation.
        """
        b = users.numel()
        u, v = self.propagate_rows(users, torch.cat([pos, neg.reshape(-1)]), edge_mask)
        pos_s = self.scorer(u, v[:b])
        n = neg.numel() // max(b, 1)
        u_neg = u if neg.dim() == 1 else u.unsqueeze(1).expand(b, n, -1).reshape(b * n, -1)
        return pos_s, self.scorer(u_neg, v[b:]).view(neg.shape)

    def score_shared(self, users: Tensor, pos: Tensor, neg: Tensor,
                     edge_mask: Tensor | MaskedGraph | None = None) -> tuple[Tensor, Tensor]:
        """Scores of a batch against negatives it shares: ``(users, pos)`` ``[B]`` and every
        user against every item of ``neg`` ``[M]``, ``[B, M]``.

        One propagation serves all ``B × M`` scores, which the scorer's ``score_all``
        computes as one matrix product (dot, cosine), so hundreds or thousands of
        negatives per positive cost little.
        """
        b = users.numel()
        u, v = self.propagate_rows(users, torch.cat([pos, neg]), edge_mask)
        return self.scorer(u, v[:b]), self.scorer.score_all(u, v[b:])

    @torch.no_grad()
    def embeddings(self) -> tuple[Tensor, Tensor]:
        """Propagated user and item embeddings in inference mode (no dropout, no mask)."""
        was_training = self.training
        self.eval()
        try:
            user_emb, item_emb = self.propagate()
            return user_emb.detach(), item_emb.detach()
        finally:
            self.train(was_training)

    @torch.no_grad()
    def recommend(
        self, users: object, k: int = 10, exclude_seen: bool = True, raw_ids: bool = True,
        embeddings: tuple[Tensor, Tensor] | None = None,
    ) -> pd.DataFrame:
        """Top-``k`` items for each user.

        Args:
            users: raw user ids (or indices with ``raw_ids=False``), one or many.
            exclude_seen: drop items the user interacted with in the training graph.
            embeddings: this model's ``embeddings()``, computed once by a caller that
                recommends batch after batch (a graph model propagates on every call
                otherwise).

        Returns:
            A DataFrame with columns ``user``, ``rank`` (1 = best), ``item``, ``score``,
            with raw ids when ``raw_ids``.
        """
        seq, idx = user_indices(self.graph, users, raw_ids)
        user_emb, item_emb = self.embeddings() if embeddings is None else embeddings
        u = torch.as_tensor(idx, device=item_emb.device)
        scores = self.scorer.score_all(user_emb[u], item_emb).float()
        return top_k_frame(self.graph, seq, idx, scores, k, exclude_seen, raw_ids)

    def export_embeddings(self, path: str | Path) -> None:
        """Write user and item embeddings with raw ids.

        ``.npy`` writes two files, ``<stem>_users.npy`` and ``<stem>_items.npy``;
        ``.parquet`` writes one table with columns ``kind``, ``id``, ``e0 .. e{D-1}``.
        Files are written to a temporary name and renamed.
        """
        path = Path(path)
        if path.suffix not in (".npy", ".parquet"):
            raise ValueError(f"{path}: expected a .npy or .parquet file name")
        user_emb, item_emb = (e.float().cpu().numpy() for e in self.embeddings())
        if path.suffix == ".npy":
            for part, emb in (("users", user_emb), ("items", item_emb)):
                target = path.with_name(f"{path.stem}_{part}.npy")
                with atomic_path(target) as tmp, open(tmp, "wb") as fh:
                    np.save(fh, emb)
        elif path.suffix == ".parquet":
            cols = [f"e{j}" for j in range(user_emb.shape[1])]
            frames = [
                pd.DataFrame(user_emb, columns=cols).assign(kind="user", id=self.graph.user_map.raw.astype(str)),
                pd.DataFrame(item_emb, columns=cols).assign(kind="item", id=self.graph.item_map.raw.astype(str)),
            ]
            table = pd.concat(frames, ignore_index=True)[["kind", "id", *cols]]
            with atomic_path(path) as tmp:
                table.to_parquet(tmp, index=False)
        else:
            raise ValueError(f"{path}: expected a .npy or .parquet file name")


def check_indices(index: Tensor, n: int, name: str) -> None:
    """Refuse integer ``index`` values outside ``[0, n)`` (and non-integer tensors)."""
    if index.dtype.is_floating_point or index.dtype == torch.bool:
        raise TypeError(f"{name} indices must be integers, got {index.dtype}")
    if index.numel() and (int(index.min()) < 0 or int(index.max()) >= n):
        bad = index[(index < 0) | (index >= n)].flatten()[0].item()
        raise IndexError(f"{name} index {bad} is out of range: there are {n} {name}s "
                         f"(indices 0..{n - 1})")


def user_indices(graph: RecGraph, users: object, raw_ids: bool) -> tuple[list[object], np.ndarray]:
    """``users`` (one id or many) as a list and as user indices of ``graph``."""
    many = np.ndim(users) > 0 and not isinstance(users, tuple)
    seq = list(users) if many else [users]  # type: ignore[call-overload]
    if raw_ids:
        idx = graph.user_map.to_index(seq)
    else:
        arr = np.asarray(seq)
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"with raw_ids=False users are integer indices, got {arr.dtype} "
                            f"values such as {seq[0]!r}")
        idx = arr.astype(np.int64).reshape(-1)
    if not raw_ids and len(idx) and (idx.min() < 0 or idx.max() >= graph.num_users):
        bad = idx[(idx < 0) | (idx >= graph.num_users)][0]
        raise IndexError(f"user index {bad} is out of range: the graph has {graph.num_users} "
                         f"users (indices 0..{graph.num_users - 1})")
    return seq, idx


def top_k_frame(graph: RecGraph, seq: list[object], idx: np.ndarray, scores: Tensor, k: int,
                exclude_seen: bool, raw_ids: bool) -> pd.DataFrame:
    """The top-``k`` items of each row of ``scores`` ``[len(idx), num_items]`` as a frame.

    Items the user has in ``graph`` are dropped first when ``exclude_seen``. Columns:
    ``user``, ``rank`` (1 = best), ``item``, ``score``; raw ids when ``raw_ids``.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an integer >= 1 (items per user), got {k!r}")
    scores = scores.clone()
    if exclude_seen:
        rows = graph.ui[idx]
        r = torch.from_numpy(np.repeat(np.arange(len(idx)), np.diff(rows.indptr)))
        c = torch.from_numpy(rows.indices.astype(np.int64))
        scores[r.to(scores.device), c.to(scores.device)] = -torch.inf
    k = min(k, graph.num_items)
    top = torch.topk(scores, k, dim=1)
    items = top.indices.cpu().numpy()
    frame = pd.DataFrame({
        "user": np.repeat(np.asarray(seq, dtype=object) if raw_ids else idx, k),
        "rank": np.tile(np.arange(1, k + 1), len(idx)),
        "item": graph.item_map.to_raw(items.ravel()) if raw_ids else items.ravel(),
        "score": top.values.cpu().numpy().ravel(),
    })
    return frame[np.isfinite(frame["score"])].reset_index(drop=True)


class EmbeddingRecommender(Recommender):
    """A recommender whose input is a free ("ego") embedding per user and per item.

    Holds ``user_emb`` and ``item_emb`` (``nn.Embedding``), drawn from a normal
    distribution with standard deviation ``init_std``; the L2 penalty of a batch acts on their rows
    for the batch's users and items (LightGCN's regularisation). MF, LightGCN and the
    attention recommenders build on it; subclasses with more parameters extend
    :meth:`reset_parameters`.

    Args:
        graph: the training graph (numbers of users and items, id maps).
        dim: embedding size.
        scorer: a scorer or its name.
        init_std: standard deviation of the embeddings' normal initialisation.
    """

    def __init__(self, graph: RecGraph, dim: int, scorer: Scorer | str = "dot",
                 init_std: float = 0.1) -> None:
        super().__init__(graph, dim, scorer)
        self.init_std = init_std
        self.user_emb = nn.Embedding(self.num_users, dim)
        self.item_emb = nn.Embedding(self.num_items, dim)

    def reset_parameters(self) -> None:
        nn.init.normal_(self.user_emb.weight, std=self.init_std)
        nn.init.normal_(self.item_emb.weight, std=self.init_std)

    def regularized(self, users: Tensor, items: Tensor) -> list[Tensor]:
        return [self.user_emb(users), self.item_emb(items)]
