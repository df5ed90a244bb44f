r"""Full-ranking evaluation of recommenders, plus rating-prediction errors.

Every user with at least one target (held-out) item is scored against *all* items;
items the user should not be recommended (training interactions and, when evaluating
on the test set, validation interactions) are masked out, and the top :math:`K` of the
rest are compared with the user's target items. Definitions follow the evaluation code
of the LightGCN paper (He et al., 2020), with binary relevance.

For a user :math:`u` with target set :math:`T_u` and ranked list
:math:`r_1, r_2, \dots` (best first), let :math:`\mathrm{rel}_j = [r_j \in T_u]` and
:math:`h_K = \sum_{j \le K} \mathrm{rel}_j`. Then

* Recall@K :math:`= h_K / |T_u|`
* Precision@K :math:`= h_K / K`
* Hit@K :math:`= [h_K > 0]`
* NDCG@K :math:`= \mathrm{DCG}_K / \mathrm{IDCG}_K` with
  :math:`\mathrm{DCG}_K = \sum_{j=1}^{K} \mathrm{rel}_j / \log_2(j + 1)` and
  :math:`\mathrm{IDCG}_K = \sum_{j=1}^{\min(K, |T_u|)} 1 / \log_2(j + 1)`
* MRR@K :math:`= 1 / j^*` where :math:`j^*` is the rank of the first hit within the top
  :math:`K` (0 without a hit)

and each reported value is the mean over the counted users. Two list-level measures
describe what is recommended rather than how accurate it is:

* coverage@K: the fraction of all items that appear in at least one counted user's top
  :math:`K`;
* avg_popularity@K: the mean training degree of the recommended items, over all
  (user, slot) pairs of the top-:math:`K` lists.

Scoring is done in batches of users whose size follows from a memory budget, and all
per-user computations are vectorised over the batch. Plain float32 dot products (the
common case: embeddings and :class:`~graphrec.scoring.DotScorer`) are ranked in stages
over the items by decreasing norm, and an item whose norm bound
:math:`\lVert u\rVert\lVert i\rVert` is below the user's :math:`K`-th best score so far
is never scored (:class:`_NormStages`): exact, and several times faster where the norms
carry popularity. Where they do not, every item is scored, on the CPU by whichever of
torch's and numpy's matrix products is faster on the machine (see
:func:`dense_score_backend`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from threadpoolctl import ThreadpoolController
from torch import Tensor

from graphrec.data.graph import RecGraph
from graphrec.data.interactions import Interactions
from graphrec.distributed import Ranks, current_ranks
from graphrec.scoring import DotScorer, Scorer
from graphrec.training.config import ScoreBackend

if TYPE_CHECKING:
    from graphrec.models.base import Recommender
    from graphrec.models.scoring_model import ScoringModel

ExcludeSource = Interactions | sp.spmatrix | sp.sparray | RecGraph

RANKING_METRICS = ("recall", "ndcg", "precision", "hit", "mrr")
LIST_METRICS = ("coverage", "avg_popularity")
ALL_METRICS = RANKING_METRICS + LIST_METRICS

# Per-row bytes of the top-K bookkeeping (values, indices, lookup keys, positions, hit
# flags and cumulative sums): a generous bound, so the budget is respected.
_BYTES_PER_TOPK_SLOT = 64
# Group size of the two-stage top-K (see :func:`topk_rows`).
_GROUP = 16

SCORE_BACKENDS: tuple[str, ...] = get_args(ScoreBackend)

# ``(users, ranges, excluded, k) -> (s, e, values, items)`` per range: the top-K lists of a
# ranking's batches (see :meth:`Evaluator._rank_points`).
TopkBatches = Callable[[Tensor, Sequence[tuple[int, int]], Callable[[int, int], "Tensor | None"], int],
                       Iterator[tuple[int, int, Tensor, Tensor]]]
# Width of the first stage of a norm-ordered ranking (see :class:`_NormStages`).
_FIRST_STAGE = 4096
# A norm-ordered ranking that has computed more than this fraction of its scores ranks its
# later batches over every item at once: where the norms hardly prune, the stages cost more
# than they save.
_STAGED_UP_TO = 0.5
# ... and so does one whose first stage leaves its users needing more than this fraction of
# all scores (each user's count of items the bound still allows).
_SCAN_UP_TO = 0.85


def interaction_matrix(source: ExcludeSource, shape: tuple[int, int] | None = None) -> sp.csr_matrix:
    """A binary user × item CSR matrix (one stored 1 per distinct pair, indices sorted).

    Args:
        source: interactions, a scipy sparse matrix (any nonzero counts as an
            interaction) or a :class:`~graphrec.data.graph.RecGraph` (its training edges).
        shape: expected ``(num_users, num_items)``; a mismatch raises ``ValueError``.
    """
    if isinstance(source, Interactions):
        m = sp.csr_matrix(
            (np.ones(len(source), dtype=np.int32), (source.user, source.item)),
            shape=(source.num_users, source.num_items),
        )
    elif isinstance(source, RecGraph):
        # A copy: cleaning up below must not renumber the graph's edges.
        m = sp.csr_matrix(source.ui, copy=True)
    elif sp.issparse(source):
        m = sp.csr_matrix(source, copy=True)
    else:
        raise TypeError(f"expected Interactions, a RecGraph or a scipy sparse matrix, "
                        f"got {type(source).__name__}")
    if shape is not None and m.shape != tuple(shape):
        raise ValueError(f"interaction matrix has shape {m.shape}, expected {tuple(shape)} "
                         f"(users × items); build every part with the same id maps")
    m.sum_duplicates()
    m.eliminate_zeros()
    # Duplicates were summed above, so every stored entry is one distinct pair.
    m = sp.csr_matrix((np.ones(m.nnz, dtype=np.int8), m.indices, m.indptr), shape=m.shape)
    m.sort_indices()
    return m


def _row_keys(m: sp.csr_matrix, num_items: int) -> np.ndarray:
    """``row * num_items + column`` of every stored entry, ascending (rows are sorted)."""
    rows = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr))
    return rows * num_items + m.indices.astype(np.int64)


class Evaluator:
    r"""Full-ranking top-K evaluation.

    Args:
        exclude: what must never be recommended to a user: training interactions, and
            validation interactions when evaluating on the test set. Each part may be
            :class:`~graphrec.data.interactions.Interactions`, a scipy sparse user × item
            matrix or a :class:`~graphrec.data.graph.RecGraph`; they are merged.
        ks: the cut-offs :math:`K`.
        metrics: names among ``recall``, ``ndcg``, ``precision``, ``hit``, ``mrr``,
            ``coverage`` and ``avg_popularity``.
        memory_budget_mb: bound on the working memory of one batch of users (their score
            matrix ``B × num_items`` in float32 plus the top-K buffers); the batch size
            is derived from it. Scorers without a matrix form (e.g. the MLP scorer) need
            extra memory of their own that this does not cover.
        item_popularity: training degree of each item for ``avg_popularity``; by default
            the number of users per item in the first ``exclude`` part.
        ranks: data-parallel ranks that share the work (default: the ranks of the running
            process group, :func:`graphrec.distributed.current_ranks`). Each rank scores
            its share of the users' batches and every rank gets the metrics, equal to one
            process's; every rank must then call the same evaluation.
        user_sample: count only a random sample of this many of the target's users (all
            of them when there are no more, or with ``None``, the default): full ranking
            costs users × items, which at millions of each is hours on a few cores. The
            metrics are then those of the sampled users exactly, an estimate of the
            full mean; ``users`` in the result says how many were counted.
        sample_seed: seeds the sample; the same seed and target give the same users (on
            every rank, and in every call, so that epochs are compared on equal terms).
        score_backend: the matrix product behind plain float32 dot-product scores of CPU
            embeddings: ``"torch"`` (``torch.mm``, the MKL bundled with torch's wheels),
            ``"numpy"`` (``numpy.matmul``, the OpenBLAS of numpy's wheels, see
            :class:`_ScoreProducts`) or ``"auto"`` (default), the faster of the two on this
            machine, timed once per process (:func:`dense_score_backend`). The two agree to
            float32 rounding, so near-ties can rank differently; force one to get the same
            numbers on every machine. Other scorers, float64 and GPU tensors always use
            torch.
        prune_by_norm: rank plain float32 dot products in stages over the items by
            decreasing norm, skipping the items whose norm bound
            :math:`\lVert u\rVert\lVert i\rVert` rules them out (default ``True``). Exact: the
            same lists as scoring every item (up to the order of exactly equal scores),
            several times faster when the norms carry popularity;
            :attr:`last_scored_fraction` says which fraction of the user × item scores the
            last evaluation computed.

    Target items that are also excluded stay in :math:`|T_u|` (they can never be hit);
    with disjoint splits this does not arise.
    """

    def __init__(
        self,
        exclude: ExcludeSource | Sequence[ExcludeSource] = (),
        ks: Sequence[int] = (10, 20),
        metrics: Sequence[str] = RANKING_METRICS + LIST_METRICS,
        memory_budget_mb: float = 128,
        item_popularity: np.ndarray | None = None,
        ranks: Ranks | None = None,
        user_sample: int | None = None,
        sample_seed: int = 0,
        score_backend: ScoreBackend = "auto",
        prune_by_norm: bool = True,
    ) -> None:
        if score_backend not in SCORE_BACKENDS:
            raise ValueError(f"score_backend must be one of {list(SCORE_BACKENDS)}, "
                             f"got {score_backend!r}")
        self.score_backend: ScoreBackend = score_backend
        self.prune_by_norm = prune_by_norm
        self.last_scored_fraction: float | None = None
        self.ranks = ranks if ranks is not None else current_ranks()
        if user_sample is not None and user_sample < 1:
            raise ValueError(f"user_sample must be >= 1 or None, got {user_sample}")
        self.user_sample = user_sample
        self.sample_seed = sample_seed
        if not isinstance(exclude, (list, tuple)):
            exclude = [exclude]
        self.ks = sorted({int(k) for k in ks})
        if not self.ks or self.ks[0] < 1:
            raise ValueError(f"ks must be positive integers, got {list(ks)}")
        unknown = [m for m in metrics if m not in ALL_METRICS]
        if unknown:
            raise ValueError(f"unknown metric(s) {unknown}; choose among {list(ALL_METRICS)}")
        self.metrics = [m for m in ALL_METRICS if m in metrics]
        if memory_budget_mb <= 0:
            raise ValueError(f"memory_budget_mb must be positive, got {memory_budget_mb}")
        self.memory_budget_mb = float(memory_budget_mb)

        parts = [interaction_matrix(e) for e in exclude]
        for p in parts[1:]:
            if p.shape != parts[0].shape:
                raise ValueError(f"exclude parts have different shapes: {parts[0].shape} vs "
                                 f"{p.shape}; build every part with the same id maps")
        self.exclude: sp.csr_matrix | None = None
        if parts:
            self.exclude = interaction_matrix(sum(parts[1:], parts[0]))

        if item_popularity is not None:
            self.item_popularity: np.ndarray | None = np.asarray(item_popularity, dtype=np.float64)
        elif parts:
            self.item_popularity = np.bincount(parts[0].indices, minlength=parts[0].shape[1]).astype(np.float64)
        else:
            self.item_popularity = None
        if "avg_popularity" in self.metrics and self.item_popularity is None:
            raise ValueError("avg_popularity needs item_popularity or an exclude part to count "
                             "item degrees from")

    # ------------------------------------------------------------------ public API
    def evaluate(
        self, model: Recommender | ScoringModel, target: Interactions, per_user: bool = False
    ) -> dict[str, float] | tuple[dict[str, float], pd.DataFrame]:
        """Rank all items for every user of ``target`` with ``model``.

        An embedding model (:class:`~graphrec.models.base.Recommender`) is asked for
        ``model.embeddings()`` once, and its scorer compares them; any other model
        (:class:`~graphrec.models.scoring_model.ScoringModel`) scores batches of users
        through ``model.score_users``. Either way the time (propagation, for graph
        models) is part of ``eval_seconds``.

        Returns:
            ``{"recall@20": ..., "ndcg@20": ..., ..., "users": n, "eval_seconds": t}``;
            with ``per_user=True``, also a DataFrame with one row per counted user (see
            :meth:`evaluate_embeddings`).
        """
        start = time.perf_counter()
        if hasattr(model, "embeddings"):
            user_emb, item_emb = model.embeddings()
            return self._run(user_emb, item_emb, target, model.scorer, per_user, start)
        return self.evaluate_scores(model.score_users, model.num_users, model.num_items, target,
                                    per_user=per_user, device=model.device,
                                    workspace_bytes=model.workspace_bytes_per_user(),
                                    start=start)

    def evaluate_scores(
        self,
        score_users: Callable[[Tensor], Tensor],
        num_users: int,
        num_items: int,
        target: Interactions | sp.spmatrix | sp.sparray,
        per_user: bool = False,
        device: torch.device | str = "cpu",
        workspace_bytes: int = 0,
        start: float | None = None,
    ) -> dict[str, float] | tuple[dict[str, float], pd.DataFrame]:
        """Rank all items for every user of ``target`` given a function that scores users.

        Args:
            score_users: ``users [B] (int64) -> scores [B, num_items]``; called on batches
                of users whose size follows from the memory budget. Scores may be
                overwritten in place.
            num_users: rows of the user × item space.
            num_items: columns of the user × item space.
            target: held-out interactions (or a user × item sparse matrix).
            per_user: also return the per-user frame (see :meth:`evaluate_embeddings`).
            device: where the user indices are handed to ``score_users``.
            workspace_bytes: memory ``score_users`` needs per user besides its output,
                counted against the budget.
        """
        start = time.perf_counter() if start is None else start
        dev = torch.device(device)
        step = self.batch_size(num_items, extra_bytes=workspace_bytes)

        def scores(users: Tensor, ranges: Sequence[tuple[int, int]]) -> Iterator[tuple[int, int, Tensor]]:
            for s, e in ranges:
                yield s, e, score_users(users[s:e]).float()

        self.last_scored_fraction = 1.0
        return self._rank_points(_one_point(_masked_topk(scores)), 1, step, num_users, num_items,
                                 dev, target, per_user, start)[0]

    def evaluate_points(
        self,
        score_points: Callable[[Tensor], Iterator[Tensor]],
        points: int,
        num_users: int,
        num_items: int,
        target: Interactions | sp.spmatrix | sp.sparray,
        device: torch.device | str = "cpu",
        workspace_bytes: int = 0,
    ) -> list[dict[str, float]]:
        """Rank all items for every user of ``target`` under ``points`` scorings at once,
        so that work they share is done once per batch (e.g. a weight grid of
        :class:`~graphrec.models.blend.Blend`, whose members are scored once).

        Args:
            score_points: ``users [B] (int64) ->`` an iterator over the ``[B, num_items]``
                scores of each point in turn, ``points`` of them. Each is masked in place
                and ranked before the next is asked for, so one buffer may serve them all.
            points: how many scorings ``score_points`` yields per batch.
            num_users: rows of the user × item space.
            num_items: columns of the user × item space.
            target: held-out interactions (or a user × item sparse matrix).
            device: where the user indices are handed to ``score_points``.
            workspace_bytes: memory ``score_points`` needs per user besides the scores
                it yields, counted against the budget.

        Returns:
            One result per point, as :meth:`evaluate_scores` gives it; ``eval_seconds``
            is the shared ranking's time divided evenly among the points.
        """
        if points < 1:
            raise ValueError(f"points must be >= 1, got {points}")
        start = time.perf_counter()
        step = self.batch_size(num_items, extra_bytes=workspace_bytes)

        def lists(users: Tensor, ranges: Sequence[tuple[int, int]],
                  excluded: Callable[[int, int], Tensor | None],
                  k: int) -> Iterator[tuple[int, int, list[tuple[Tensor, Tensor]]]]:
            for s, e in ranges:
                flat = excluded(s, e)
                found = []
                for scores in score_points(users[s:e]):
                    values, items = _masked_topk_rows(scores.float().contiguous(), flat, k)
                    found.append((values.cpu(), items.cpu()))
                yield s, e, found

        self.last_scored_fraction = 1.0
        results = self._rank_points(lists, points, step, num_users, num_items, torch.device(device),
                                    target, False, start)
        return [r for r in results if isinstance(r, dict)]

    def evaluate_embeddings(
        self,
        user_emb: Tensor,
        item_emb: Tensor,
        target: Interactions | sp.spmatrix | sp.sparray,
        scorer: Scorer | None = None,
        per_user: bool = False,
    ) -> dict[str, float] | tuple[dict[str, float], pd.DataFrame]:
        """Rank all items for every user of ``target`` given final embeddings.

        Args:
            user_emb: ``[U, D]``; item_emb: ``[I, D]``.
            target: held-out interactions (or a user × item sparse matrix).
            scorer: how to score users against items; default dot product.
            per_user: also return a DataFrame with columns ``user``, ``num_target`` and
                ``<metric>@<K>`` for the per-user metrics (everything but coverage), one
                row per counted user, e.g. for breakdowns by user degree.
        """
        start = time.perf_counter()
        return self._run(user_emb, item_emb, target, scorer or DotScorer(), per_user, start)

    def batch_size(self, num_items: int, score_bytes: int = 4, extra_bytes: int = 0) -> int:
        """Users scored at once: as many as fit in the memory budget (at least 1).

        ``extra_bytes`` is what producing one user's scores needs besides the scores.
        """
        kmax = min(self.ks[-1], max(num_items, 1))
        per_row = (num_items * score_bytes            # the scores
                   + extra_bytes
                   + (num_items // _GROUP) * 4        # group maxima of topk_rows
                   + kmax * (_GROUP + 1) * 12         # its candidates: values and columns
                   + kmax * _BYTES_PER_TOPK_SLOT)     # metric bookkeeping
        return max(1, int(self.memory_budget_mb * 2**20 // per_row))

    def counted_users(self, target: Interactions | sp.spmatrix | sp.sparray) -> np.ndarray:
        """The users an evaluation on ``target`` counts, ascending: those with a target
        item, or the seeded ``user_sample`` of them."""
        tgt = target if isinstance(target, sp.csr_matrix) else interaction_matrix(target)
        users = np.flatnonzero(np.diff(tgt.indptr) > 0)
        if self.user_sample is not None and len(users) > self.user_sample:
            rng = np.random.default_rng(self.sample_seed)
            users = np.sort(rng.choice(users, self.user_sample, replace=False))
        return users

    # ------------------------------------------------------------------ implementation
    def _run(
        self,
        user_emb: Tensor,
        item_emb: Tensor,
        target: Any,
        scorer: Scorer,
        per_user: bool,
        start: float,
    ) -> dict[str, float] | tuple[dict[str, float], pd.DataFrame]:
        """Full ranking from embeddings: batches of plain dot products from
        :class:`_ScoreProducts` (written into one reused buffer), or of
        ``scorer.score_all`` for any other scoring."""
        num_items = item_emb.shape[0]
        step = self.batch_size(num_items)
        backend = self.products_backend(scorer, user_emb, item_emb)
        if backend is not None and self.score_backend == "auto" and self.ranks is not None:
            # Each rank timed the backends itself; all use rank 0's choice, so that the
            # gathered metrics are still those of one process.
            backend = self.ranks.broadcast(backend)

        # The products' buffer (and, for numpy, the BLAS thread limit and the thread pool)
        # live until the ranking is done, however it ends.
        with ExitStack() as stack:
            shared: list[Tensor] = []

            def products(items: Tensor, users: int, how: Literal["torch", "numpy"] | None = None
                         ) -> _ScoreProducts:
                how = how or backend
                assert how is not None
                rows = min(ranked_at_once, max(users, 1))
                if shared and shared[0].numel() < rows * num_items:
                    shared.clear()
                product = _ScoreProducts(user_emb, items, rows, how, shared[0] if shared else None)
                shared[:] = [product.buffer]  # one buffer for every product of the ranking
                return stack.enter_context(product)

            def scores(users: Tensor, ranges: Sequence[tuple[int, int]]) -> Iterator[tuple[int, int, Tensor]]:
                score = products(item_emb, len(users)) if backend is not None else None
                for s, e in ranges:
                    if score is not None:
                        yield s, e, score(users[s:e])
                    else:
                        yield s, e, scorer.score_all(user_emb[users[s:e]], item_emb).float()

            stages = None
            if backend is not None and self.prune_by_norm:
                stages = _NormStages.build(user_emb, item_emb, min(self.ks[-1], num_items))
            ranked_at_once = step
            if stages is None:
                topk_batches = _masked_topk(scores)
            else:
                # Users per batch as if every item lay in the first stage: the products'
                # buffer keeps the budget's size, and a wider stage takes its users a
                # buffer's worth at a time.
                step = self.batch_size(stages.bounds[0])
                # The stages multiply narrow blocks that stay in the cache, where torch's
                # product runs as fast as numpy's and shares torch's threads with the
                # ranking instead of handing cores between two pools; the ranking over
                # every item keeps the product chosen for it.
                staged: Literal["torch", "numpy"] = "torch" if self.score_backend == "auto" else backend
                topk_batches = stages.topk_batches(
                    lambda items, users: products(items, users, staged), products)
            result = self._rank_points(_one_point(topk_batches), 1, step, user_emb.shape[0],
                                       num_items, item_emb.device, target, per_user, start)[0]
            self.last_scored_fraction = 1.0 if stages is None else stages.scored / max(stages.total, 1)
            return result

    def products_backend(self, scorer: Scorer, user_emb: Tensor,
                         item_emb: Tensor) -> Literal["torch", "numpy"] | None:
        """How an evaluation with these embeddings computes its scores: ``"torch"`` or
        ``"numpy"`` for plain float32 dot products (see ``score_backend``), ``None`` when
        ``scorer.score_all`` does (other scorers, other dtypes)."""
        if type(scorer) is not DotScorer:
            return None
        if user_emb.dtype != torch.float32 or item_emb.dtype != torch.float32:
            return None
        if item_emb.device.type != "cpu" or user_emb.device.type != "cpu":
            return "torch"
        if self.score_backend == "auto":
            if user_emb.shape[0] * item_emb.shape[0] < _CALIBRATE_ABOVE:
                # Too small for the product's speed to matter: no timing, plain torch.
                return "torch"
            return dense_score_backend(item_emb.shape[1])
        return self.score_backend

    @torch.no_grad()
    def _rank_points(
        self,
        point_lists: Callable[..., Iterator[tuple[int, int, list[tuple[Tensor, Tensor]]]]],
        points: int,
        step: int,
        num_users: int,
        num_items: int,
        dev: torch.device,
        target: Any,
        per_user: bool,
        start: float,
    ) -> list[dict[str, float] | tuple[dict[str, float], pd.DataFrame]]:
        """Metrics of ``points`` rankings of the counted users, whose top-K lists
        ``point_lists(users, ranges, excluded, k)`` yields as ``(s, e, [(values, items)
        of each point])`` (``[e - s, k]`` each, best first, on the CPU) for the ``(s, e)``
        of ``ranges``, in order; ``excluded(s, e)`` gives the flat keys
        ``row * num_items + item`` (``row`` counted from ``s``) of the interactions those
        users must not be recommended, or ``None``.

        The users are cut into batches of ``step``. With :attr:`ranks` each rank scores
        every ``world_size``-th batch; the ranks then exchange their batches' per-user
        metrics and combine them in batch order, as one process does, so the numbers
        are bit for bit those of one process.
        """
        tgt = interaction_matrix(target, (num_users, num_items))
        if self.exclude is not None and self.exclude.shape != tgt.shape:
            raise ValueError(f"exclude matrix has shape {self.exclude.shape} but the model "
                             f"gives {tgt.shape} (users × items)")
        pop = None
        if "avg_popularity" in self.metrics:
            assert self.item_popularity is not None
            if len(self.item_popularity) != num_items:
                raise ValueError(f"item_popularity has {len(self.item_popularity)} entries for "
                                 f"{num_items} items")
            pop = torch.as_tensor(self.item_popularity, dtype=torch.float64)

        users = self.counted_users(tgt)
        tgt = tgt[users]
        excluded: Callable[[int, int], Tensor | None] = lambda s, e: None  # noqa: E731
        if self.exclude is not None:
            exc = self.exclude[users]
            exc_ptr = exc.indptr.tolist()
            exc_keys = torch.from_numpy(_row_keys(exc, num_items)).to(dev)

            def excluded(s: int, e: int) -> Tensor | None:
                return exc_keys[exc_ptr[s]:exc_ptr[e]] - s * num_items

        # Everything after the top-K works on the [B, K] lists, on the CPU: small, and
        # each op is a few microseconds there, where torch would start threads for some
        # (searchsorted) and a device would need a sync per batch anyway.
        targets = _Targets.of(tgt, self.ks[-1], pop)
        k_eff = targets.k
        # Best (smallest) rank any counted user gives each item; coverage@K counts < K.
        best_ranks = [torch.full((num_items,), k_eff, dtype=torch.long) for _ in range(points)]

        ranges = [(s, min(s + step, len(users))) for s in range(0, len(users), step)]
        first_batch = 0 if self.ranks is None else self.ranks.rank
        stride = 1 if self.ranks is None else self.ranks.world_size
        # (batch number, per-user metric columns, avg_popularity's sums and counts per K)
        point_records: list[list[tuple[int, dict[str, Tensor], dict[int, float], dict[int, int]]]] = [
            [] for _ in range(points)]
        users_t = torch.from_numpy(users).to(dev)
        lists = point_lists(users_t, ranges[first_batch::stride], excluded, k_eff)
        for number, (s, e, point_batches) in zip(range(first_batch, len(ranges), stride), lists):
            if len(point_batches) != points:
                raise ValueError(f"expected the lists of {points} points, got {len(point_batches)}")
            for p, (values, items) in enumerate(point_batches):
                point_records[p].append(
                    (number, *self._batch_metrics(targets, s, e, values, items, best_ranks[p])))

        out: list[dict[str, float] | tuple[dict[str, float], pd.DataFrame]] = []
        for records, best_rank in zip(point_records, best_ranks):
            result, cols = self._summary(records, best_rank, users, num_items, k_eff)
            result["eval_seconds"] = (time.perf_counter() - start) / points
            if per_user:
                out.append((result, pd.DataFrame({"user": users,
                                                  "num_target": np.diff(tgt.indptr).astype(np.int64),
                                                  **cols})))
            else:
                out.append(result)
        return out

    def _batch_metrics(self, targets: _Targets, s: int, e: int, values: Tensor, items: Tensor,
                       best_rank: Tensor) -> tuple[dict[str, Tensor], dict[int, float], dict[int, int]]:
        """The per-user metrics of the counted users ``s:e`` from their top-K lists
        (``[e - s, K]``, on the CPU), and their items' best ranks, lowered in
        ``best_rank``: ``(columns, avg_popularity's sums per K, its counts per K)``."""
        num_items, k_eff, pop = targets.num_items, targets.k, targets.pop
        if torch.isnan(values).any():
            raise ValueError("the scorer produced NaN scores; check the embeddings")
        # Users with fewer than K allowed items get -inf fillers, which are not
        # recommendations.
        valid = values > -torch.inf

        # Membership of (row, item) in the batch's target set by binary search on
        # the sorted flat keys.
        keys = targets.keys[targets.ptr[s]:targets.ptr[e]] - s * num_items
        query = (np.arange(e - s).reshape(-1, 1) * num_items + items.numpy())
        pos = np.searchsorted(keys, query).clip(max=len(keys) - 1)
        hits = torch.from_numpy(keys[pos] == query) & valid

        n_t = targets.num_target[s:e]
        hits_f = hits.to(torch.float64)
        hit_count = torch.cumsum(hits_f, 1)
        dcg = torch.cumsum(hits_f * targets.discount, 1)
        any_hit = hits.any(1)
        first = hits.to(torch.int8).argmax(1)  # argmax returns the first maximum
        batch: dict[str, Tensor] = {}
        batch_pop_sum: dict[int, float] = {}
        batch_pop_count: dict[int, int] = {}
        for k in self.ks:
            col = min(k, k_eff) - 1
            h = hit_count[:, col]
            if "recall" in self.metrics:
                batch[f"recall@{k}"] = h / n_t
            if "ndcg" in self.metrics:
                idcg = targets.ideal_dcg[n_t.clamp(max=col + 1) - 1]
                batch[f"ndcg@{k}"] = dcg[:, col] / idcg
            if "precision" in self.metrics:
                batch[f"precision@{k}"] = h / k
            if "hit" in self.metrics:
                batch[f"hit@{k}"] = (h > 0).to(torch.float64)
            if "mrr" in self.metrics:
                found = any_hit & (first <= col)
                batch[f"mrr@{k}"] = torch.where(found, 1.0 / (first + 1).to(torch.float64), 0.0)
            if pop is not None:
                v = valid[:, : col + 1]
                p = torch.where(v, pop[items[:, : col + 1]], 0.0).sum(1)
                n = v.sum(1)
                batch_pop_sum[k] = float(p.sum())
                batch_pop_count[k] = int(n.sum())
                batch[f"avg_popularity@{k}"] = p / n.clamp(min=1)
        if "coverage" in self.metrics:
            slot_rank = torch.where(valid, torch.arange(k_eff), k_eff)
            best_rank.scatter_reduce_(0, items.reshape(-1), slot_rank.reshape(-1), reduce="amin")
        return batch, batch_pop_sum, batch_pop_count

    def _summary(self, records: list[tuple[int, dict[str, Tensor], dict[int, float], dict[int, int]]],
                 best_rank: Tensor, users: np.ndarray, num_items: int, k_eff: int
                 ) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        """The metrics over every counted user (gathered from all ranks) and the per-user
        columns, from the batches' records."""
        if self.ranks is not None:
            records = sorted((r for part in self.ranks.gather(records) for r in part),
                             key=lambda r: r[0])
            self.ranks.min_(best_rank)
        per_user_parts: dict[str, list[Tensor]] = {}
        pop_sum = dict.fromkeys(self.ks, 0.0)
        pop_count = dict.fromkeys(self.ks, 0)
        for _, batch, batch_pop_sum, batch_pop_count in records:
            for name, t in batch.items():
                per_user_parts.setdefault(name, []).append(t)
            for k in batch_pop_sum:
                pop_sum[k] += batch_pop_sum[k]
                pop_count[k] += batch_pop_count[k]

        cols = {name: torch.cat(parts).numpy() for name, parts in per_user_parts.items()}
        result: dict[str, float] = {}
        for m in self.metrics:
            for k in self.ks:
                key = f"{m}@{k}"
                if m == "coverage":
                    covered = int((best_rank < min(k, k_eff)).sum())
                    result[key] = covered / num_items if num_items else 0.0
                elif m == "avg_popularity":
                    result[key] = pop_sum[k] / pop_count[k] if pop_count[k] else 0.0
                else:
                    result[key] = float(cols[key].mean()) if len(users) else 0.0
        result["users"] = float(len(users))
        return result, cols


@dataclass(frozen=True)
class _Targets:
    """What a ranking's batches are scored against: the counted users' target items as
    flat keys ``row * num_items + item`` (``row``: position among the counted users;
    the rows ``s:e`` own the sorted slice ``keys[ptr[s]:ptr[e]]``), their counts, the
    list length ``k`` and the discounts of DCG."""

    keys: np.ndarray
    ptr: list[int]
    num_target: Tensor
    num_items: int
    k: int
    discount: Tensor
    ideal_dcg: Tensor
    pop: Tensor | None

    @classmethod
    def of(cls, target: sp.csr_matrix, kmax: int, pop: Tensor | None) -> _Targets:
        """From the counted users' rows of the target matrix."""
        num_items = target.shape[1]
        k = min(kmax, num_items)  # torch.topk cannot return more items than exist
        discount = 1.0 / torch.log2(torch.arange(2, k + 2, dtype=torch.float64))
        return cls(keys=_row_keys(target, num_items),
                   ptr=target.indptr.tolist(),  # python ints: numpy scalars make slices copy
                   num_target=torch.from_numpy(np.diff(target.indptr).astype(np.int64)),
                   num_items=num_items, k=k, discount=discount,
                   ideal_dcg=torch.cumsum(discount, 0), pop=pop)


def _one_point(topk_batches: TopkBatches) -> Callable[..., Iterator[tuple[int, int, list[tuple[Tensor, Tensor]]]]]:
    """``topk_batches`` as the lists of a single point (see :meth:`Evaluator._rank_points`)."""
    def lists(users: Tensor, ranges: Sequence[tuple[int, int]],
              excluded: Callable[[int, int], Tensor | None],
              k: int) -> Iterator[tuple[int, int, list[tuple[Tensor, Tensor]]]]:
        for s, e, values, items in topk_batches(users, ranges, excluded, k):
            yield s, e, [(values, items)]
    return lists


def _masked_topk_rows(scores: Tensor, flat: Tensor | None, k: int) -> tuple[Tensor, Tensor]:
    """:func:`topk_rows` of ``scores`` after setting the flat positions ``flat`` (the
    excluded items, if any) to ``-inf`` in place."""
    if flat is not None:
        scores.view(-1).index_fill_(0, flat, -torch.inf)
    return topk_rows(scores, k)


def _masked_topk(scores: Callable[[Tensor, Sequence[tuple[int, int]]], Iterator[tuple[int, int, Tensor]]]
                 ) -> TopkBatches:
    """Top-K lists from batches of scores over all items, ``scores(users, ranges)``
    yielding ``(s, e, scores of users[s:e])``: the excluded items set to ``-inf``, then
    :func:`topk_rows`."""
    def topk_batches(users: Tensor, ranges: Sequence[tuple[int, int]],
                     excluded: Callable[[int, int], Tensor | None],
                     k: int) -> Iterator[tuple[int, int, Tensor, Tensor]]:
        for s, e, batch in scores(users, ranges):
            values, items = _masked_topk_rows(batch, excluded(s, e), k)
            yield s, e, values.cpu(), items.cpu()
    return topk_batches


def stage_bounds(num_items: int, k: int, first: int | None = None) -> list[int]:
    """Where the stages of a norm-ordered ranking end: ``first`` (default 4,096),
    ``2 first``, ``4 first``, ... and ``num_items``; a last stage narrower than ``first``
    joins the one before it, and no stage is narrower than ``k``."""
    first = max(_FIRST_STAGE if first is None else first, k, 1)
    bounds = []
    end = first
    while end < num_items:
        bounds.append(end)
        end *= 2
    if bounds and num_items - bounds[-1] < first:
        bounds.pop()
    return bounds + [num_items]


class _NormStages:
    r"""Exact top-:math:`K` of dot products that skips items their norm rules out.

    By Cauchy–Schwarz :math:`u \cdot i \le \lVert u\rVert \lVert i\rVert`. The items are
    taken in order of decreasing norm, in stages of doubling width
    (:func:`stage_bounds`); after each stage a user's :math:`K`-th best score so far,
    :math:`\theta_u`, bounds the final one from below, so no item with
    :math:`(1 + \gamma)\lVert u\rVert\lVert i\rVert < \theta_u` can enter the list. Those
    items are a suffix of the norm order, and a user whose remaining candidates all lie in
    the stages already scored is done. :math:`\gamma = D\,2^{-23}` covers the float32
    rounding of a computed score: :math:`|\mathrm{fl}(u \cdot i) - u \cdot i| \le
    \gamma_D \sum_d |u_d i_d| \le \gamma_D \lVert u\rVert\lVert i\rVert` with
    :math:`\gamma_D \approx D\,2^{-24}`. The lists are therefore those of scoring every
    item (up to the order of exactly equal scores, and to float32 rounding where a
    product's kernel depends on its shape, as between any two batch sizes).

    How much is skipped depends on the embeddings. Where the norms carry popularity most
    users are done after a stage or two: on Gowalla, LightGCN's embeddings needed a tenth
    of the scores and spectral (SVD) ones a fifth (``benchmarks/evaluate.py``). Where a
    user's best items are not those of large norm (iALS factors, a matrix factorisation
    trained with BPR for a few epochs, vectors of equal norm) almost nothing is skipped;
    the first stage's bounds show it, and the ranking then scores every item at once.
    """

    def __init__(self, user_emb: Tensor, item_emb: Tensor, k: int) -> None:
        self.user_norm = user_emb.double().norm(dim=1)
        item_norm = item_emb.double().norm(dim=1)
        # Decreasing norm; ``order[j]`` is the item in place j.
        self.order = torch.argsort(item_norm, descending=True, stable=True)
        self.place = torch.empty_like(self.order)
        self.place[self.order] = torch.arange(len(self.order), device=self.order.device)
        self.item_emb = item_emb[self.order].contiguous()
        self.neg_norm = -item_norm[self.order]  # ascending, for searchsorted
        self.slack = item_emb.shape[1] * 2.0**-23
        self.bounds = stage_bounds(item_emb.shape[0], k)
        self.scored = 0
        self.total = 0
        self.at_once = False  # set once the stages are found not to pay

    @classmethod
    def build(cls, user_emb: Tensor, item_emb: Tensor, k: int) -> _NormStages | None:
        """The staged ranking of these float32 embeddings, or ``None`` where it cannot
        help or its bound does not hold: a single stage, or a non-finite norm."""
        if len(stage_bounds(item_emb.shape[0], k)) < 2:
            return None
        if not (bool(torch.isfinite(user_emb).all()) and bool(torch.isfinite(item_emb).all())):
            return None
        return cls(user_emb, item_emb, k)

    def items_needed(self, theta: Tensor, user_norm: Tensor) -> Tensor:
        r"""How many leading items of the norm order a user with :math:`K`-th best score
        ``theta`` may still need: those with :math:`(1 + \gamma)\lVert u\rVert
        \lVert i\rVert \ge \theta` (all of them while ``theta`` is not positive)."""
        tau = theta.double() / ((1.0 + self.slack) * user_norm)
        count = torch.searchsorted(self.neg_norm, -tau, right=True)
        return torch.where(theta > 0, count, len(self.neg_norm))

    def topk_batches(self, staged: Callable[[Tensor, int], _ScoreProducts],
                     whole: Callable[[Tensor, int], _ScoreProducts]) -> TopkBatches:
        """The ranking's top-K batches (see :meth:`Evaluator._rank_points`), with items in their
        original ids, scored by ``staged(item_emb, users)`` in stages, or by
        ``whole(item_emb, users)`` over every item at once from the moment the stages are
        found not to pay: when the first stage of a batch leaves its users needing more
        than :data:`_SCAN_UP_TO` of its scores, or the batches so far computed more than
        :data:`_STAGED_UP_TO` of theirs."""
        num_items = len(self.order)

        def topk_batches(users: Tensor, ranges: Sequence[tuple[int, int]],
                         excluded: Callable[[int, int], Tensor | None],
                         k: int) -> Iterator[tuple[int, int, Tensor, Tensor]]:
            dev = self.item_emb.device
            in_stages = staged(self.item_emb, len(users))
            at_once: _ScoreProducts | None = None
            for s, e in ranges:
                n = e - s
                batch_users = users[s:e]
                if self.total and self.scored > _STAGED_UP_TO * self.total:
                    self.at_once = True
                ends = [num_items] if self.at_once else list(self.bounds)
                flat = excluded(s, e)
                if flat is not None:  # the batch's exclusions, by place in the norm order
                    place, row = self.place[flat % num_items], flat // num_items
                    if len(ends) > 1:  # sorted, so that each stage's are one slice
                        place, by_place = torch.sort(place)
                        row = row[by_place]
                values = torch.empty((n, k), device=dev)
                items = torch.empty((n, k), dtype=torch.long, device=dev)
                # Users still ranking (positions in the batch) and their lists so far.
                active = torch.arange(n, device=dev)
                best_values = best_items = None
                lo = stage = 0
                while stage < len(ends) and len(active):
                    hi = ends[stage]
                    width = hi - lo
                    if self.at_once:
                        at_once = at_once or whole(self.item_emb, len(users))
                    score = at_once if self.at_once else in_stages
                    self.scored += len(active) * width
                    stage_excluded = None
                    if flat is not None:
                        rows, cols = row, place
                        if len(ends) > 1:
                            a, b = torch.searchsorted(place, torch.tensor([lo, hi], device=dev)).tolist()
                            rows, cols = row[a:b], place[a:b]
                        if stage:  # positions among the users still ranking; -1 for the others
                            row_of = torch.full((n,), -1, dtype=torch.long, device=dev)
                            row_of[active] = torch.arange(len(active), device=dev)
                            rows = row_of[rows]
                        stage_excluded = (rows, cols - lo)
                    v, i = _rank_stage(score, batch_users[active], lo, hi, stage_excluded, k)
                    if best_values is not None:
                        v, pick = torch.topk(torch.cat([best_values, v], 1), k, dim=1)
                        i = torch.cat([best_items, i], 1).gather(1, pick)
                    needed = self.items_needed(v[:, k - 1], self.user_norm[batch_users[active]])
                    if (stage == 0 and len(ends) > 2
                            and int(needed.sum()) > _SCAN_UP_TO * n * num_items):
                        # The first stage's scores say the norms will hardly prune: the
                        # rest of this batch, and every later one, at once.
                        ends = [hi, num_items]
                        self.at_once = True
                    going_on = needed > hi
                    done = ~going_on
                    values[active[done]] = v[done]
                    items[active[done]] = i[done]
                    active, best_values, best_items = active[going_on], v[going_on], i[going_on]
                    lo = hi
                    stage += 1
                self.total += n * num_items
                yield s, e, values.cpu(), self.order[items].cpu()

        return topk_batches


def _rank_stage(score: _ScoreProducts, users: Tensor, lo: int, hi: int,
                excluded: tuple[Tensor, Tensor] | None, k: int) -> tuple[Tensor, Tensor]:
    """The top-``k`` of items ``lo:hi`` for each of ``users``, as many users at a time as
    the products' buffer holds at this width; ``excluded`` is ``(rows, columns)`` of the
    pairs to mask, rows counted in ``users`` (``-1``: none of them), columns from ``lo``."""
    width = hi - lo
    chunk = max(1, score.buffer.numel() // width)
    values, items = [], []
    for c in range(0, len(users), chunk):
        flat = None
        if excluded is not None:
            rows, cols = excluded
            mine = (rows >= c) & (rows < c + chunk)
            flat = (rows[mine] - c) * width + cols[mine]
        v, i = _masked_topk_rows(score(users[c:c + chunk], lo, hi), flat, k)
        values.append(v)
        items.append(i)
    return torch.cat(values), torch.cat(items) + lo


def topk_rows(scores: Tensor, k: int, group: int = _GROUP) -> tuple[Tensor, Tensor]:
    """The ``k`` largest values of each row, best first, and their columns.

    Same result as ``torch.topk(scores, k, dim=1)`` (up to the order of exactly equal
    scores) but faster on wide rows, in two stages. Columns are split into groups
    ``{g, g + G, g + 2G, ...}`` (``G = columns // group``), and the ``k`` groups with
    the largest maxima are kept; the answer is the top ``k`` of their members plus the
    few leftover columns. This is exact: an entry outside the kept groups is at most the
    maximum of its group, which is at most each of the ``k`` kept maxima, i.e. at most
    ``k`` distinct entries, so it is never needed. Striding the groups makes the maxima an
    elementwise max over ``group`` contiguous slices, which vectorises well; only
    ``k * group`` candidates per row go through the final ``torch.topk``.

    Exactly equal scores are ordered as ``torch.topk`` orders them in the candidate list
    (kept group by kept group, then the leftover columns), which it does not specify.
    """
    rows, n = scores.shape
    g = n // group
    if g <= 2 * k:
        return torch.topk(scores, k, dim=1)
    group_max = scores[:, : g * group].reshape(rows, group, g).amax(1)
    best_groups = torch.topk(group_max, k, dim=1, sorted=False).indices
    offsets = torch.arange(group, device=scores.device) * g
    cols = (best_groups.unsqueeze(2) + offsets).view(rows, -1)
    # The candidates: the kept groups' members, then the few leftover columns, written
    # into one buffer (no concatenated copy of the column list; leftovers are mapped
    # back to their columns only for the k picks).
    kept = cols.shape[1]
    cand = scores.new_empty(rows, kept + n - g * group)
    torch.gather(scores, 1, cols, out=cand[:, :kept])
    cand[:, kept:] = scores[:, g * group:]
    values, pick = torch.topk(cand, k, dim=1)
    member = cols.gather(1, pick.clamp(max=kept - 1))
    return values, torch.where(pick < kept, member, pick - kept + g * group)


class _ScoreProducts:
    """``user_emb[users] @ item_emb.T`` for batches of users, into one reused float32 buffer.

    Writing every batch's scores into one buffer matters on CPU: a fresh allocation of
    this size is returned to the OS after each batch and page-faulted in again by the
    next one, which costs about as much as the matrix product itself.

    With ``backend="torch"`` the product is ``torch.mm`` (on any device). With
    ``"numpy"`` (CPU only) it is ``numpy.matmul`` on float32 views of the same memory
    (no copies), with numpy's BLAS held to one thread while the context is open and the
    rows of a batch split over ``torch.get_num_threads()`` Python threads (numpy releases
    the GIL in the product). Letting OpenBLAS use its own thread pool instead costs far
    more than it saves here: its workers spin for up to ~0.1 s after each product
    waiting for the next one, and so take a core from the torch threads that mask and
    rank the batch meanwhile; idle Python threads block without spinning.

    Like MKL, OpenBLAS picks its kernels by matrix size, so the last bit of a score may
    depend on how many rows were multiplied together; rankings then differ only where
    two scores are within float32 rounding of each other.

    Use as a context manager; ``rows`` is the largest batch. ``buffer`` (float32, at least
    ``rows × items`` elements) is used instead of a new one, e.g. to share one between
    two products that take turns.
    """

    def __init__(self, user_emb: Tensor, item_emb: Tensor, rows: int,
                 backend: Literal["torch", "numpy"], buffer: Tensor | None = None) -> None:
        if backend not in ("torch", "numpy"):
            raise ValueError(f"backend must be 'torch' or 'numpy', got {backend!r}")
        if backend == "numpy" and (user_emb.device.type != "cpu" or item_emb.device.type != "cpu"):
            raise ValueError("the numpy backend needs CPU tensors")
        self.backend = backend
        self.user_emb = user_emb
        self.item_emb = item_emb
        size = rows * item_emb.shape[0]
        if buffer is None or buffer.numel() < size:
            buffer = torch.empty(size, dtype=torch.float32, device=item_emb.device)
        self.buffer = buffer.view(-1)[:size].view(rows, item_emb.shape[0])
        self._stack: ExitStack | None = None
        self._pool: ThreadPoolExecutor | None = None
        if backend == "numpy":
            self._users_np = user_emb.detach().numpy()
            # Contiguous rows, so that BLAS reads the transpose in place in every batch
            # rather than numpy copying a strided operand each time.
            self._items_t = np.ascontiguousarray(item_emb.detach().numpy()).T
            self._threads = max(1, torch.get_num_threads())

    def __enter__(self) -> _ScoreProducts:
        self._stack = ExitStack()
        if self.backend == "numpy":
            self._stack.enter_context(_blas_controller().limit(limits=1, user_api="blas"))
            if self._threads > 1:
                self._pool = self._stack.enter_context(
                    ThreadPoolExecutor(self._threads - 1, thread_name_prefix="graphrec-scores"))
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._pool = None
        if self._stack is not None:
            self._stack.close()
            self._stack = None

    def __call__(self, users: Tensor, lo: int = 0, hi: int | None = None) -> Tensor:
        """Scores ``[len(users), hi - lo]`` of ``users`` (int64 indices) against items
        ``lo:hi`` (all by default), a contiguous view of the buffer that the next call
        overwrites."""
        n = len(users)
        hi = self.buffer.shape[1] if hi is None else hi
        scores = self.buffer.view(-1)[: n * (hi - lo)].view(n, hi - lo)
        if self.backend == "torch":
            return torch.mm(self.user_emb[users], self.item_emb[lo:hi].T, out=scores)
        u = self._users_np[users.numpy()]
        out = scores.numpy()
        items_t = self._items_t[:, lo:hi]
        # Equal row slices, one per thread; the caller computes the first itself. Small
        # batches stay in one call, where a thread hand-off would cost more than it saves.
        pool = self._pool
        parts = 1 if pool is None else min(self._threads, max(1, n // 16))
        bounds = [n * p // parts for p in range(parts + 1)]
        futures = [pool.submit(np.matmul, u[a:b], items_t, out=out[a:b])
                   for a, b in zip(bounds[1:-1], bounds[2:])] if pool is not None else []
        np.matmul(u[: bounds[1]], items_t, out=out[: bounds[1]])
        for f in futures:
            f.result()
        return scores


_CONTROLLER: ThreadpoolController | None = None


def _blas_controller() -> ThreadpoolController:
    """One inspection of the loaded BLAS libraries per process (it walks every loaded
    shared object, a few milliseconds); numpy's BLAS is loaded before this module."""
    global _CONTROLLER
    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER


# Rankings with fewer user × item scores than this use torch without timing anything.
_CALIBRATE_ABOVE = 2**26
# (embedding dimension, torch threads) -> the faster backend, timed once per process.
_BACKEND_CHOICE: dict[tuple[int, int], Literal["torch", "numpy"]] = {}


def dense_score_backend(dim: int) -> Literal["torch", "numpy"]:
    """The faster float32 score product for ``dim``-dimensional embeddings on this
    machine with the current ``torch.get_num_threads()``: ``"torch"`` or ``"numpy"``.

    Which BLAS wins depends on the CPU (torch's MKL runs the thin ``K = 64`` products
    of full ranking at about half OpenBLAS's speed on AMD Zen 3, and may well win on
    Intel), so it is measured rather than assumed: the first call for a dimension and
    thread count times both on one block as large as a full ranking's batches
    (:func:`_time_backends`, about half a second) and the answer is kept for the life
    of the process, so that every later evaluation in it computes its scores the same
    way. Rankings too small for the choice to matter skip it and use torch.
    """
    key = (int(dim), torch.get_num_threads())
    if key not in _BACKEND_CHOICE:
        seconds = _time_backends(int(dim))
        # torch unless numpy is clearly faster: keeps the plain torch numbers where the
        # two are close and the timing could go either way.
        _BACKEND_CHOICE[key] = "numpy" if seconds["numpy"] < 0.9 * seconds["torch"] else "torch"
    return _BACKEND_CHOICE[key]


def _time_backends(dim: int, items: int = 32768, repeats: int = 3) -> dict[str, float]:
    """Best-of-``repeats`` seconds of one ``[rows, dim] x [dim, items]`` product per
    backend, through :class:`_ScoreProducts` as an evaluation uses it, the backends
    interleaved so that a change of load hits both. ``rows`` keeps the block at about
    2^30 multiply-adds whatever ``dim``: at 64 dimensions a 512 × 32,768 block whose
    64 MB of scores, like a full ranking's, do not fit in the cache (on a block that
    does, the two backends time alike while on full rankings one can be twice as fast).
    About half a second per call."""
    rows = int(np.clip(2**30 // (items * max(dim, 1)), 16, 4096))
    gen = torch.Generator().manual_seed(0)
    user_emb = torch.randn(rows, dim, generator=gen)
    item_emb = torch.randn(items, dim, generator=gen)
    users = torch.arange(rows)
    best = {"torch": float("inf"), "numpy": float("inf")}
    products = {b: _ScoreProducts(user_emb, item_emb, rows, b) for b in ("torch", "numpy")}
    for attempt in range(repeats + 1):
        for backend, product in products.items():
            with product:  # the numpy backend's BLAS limit only while it runs
                begin = time.perf_counter()
                product(users)
                elapsed = time.perf_counter() - begin
            if attempt:  # the first round warms up threads, caches and the buffers' pages
                best[backend] = min(best[backend], elapsed)
    return best


# ---------------------------------------------------------------------- rating metrics
def rating_metrics(pred: np.ndarray | Tensor, target: np.ndarray | Tensor) -> dict[str, float]:
    r"""Root mean squared and mean absolute error of predicted ratings.

    :math:`\mathrm{RMSE} = \sqrt{\tfrac1n \sum_i (\hat y_i - y_i)^2}`,
    :math:`\mathrm{MAE} = \tfrac1n \sum_i |\hat y_i - y_i|`, computed in float64.
    """
    p = _as_float64(pred)
    t = _as_float64(target)
    if p.shape != t.shape:
        raise ValueError(f"predictions have shape {p.shape}, targets {t.shape}")
    if p.size == 0:
        raise ValueError("no ratings to compare")
    err = p - t
    return {"rmse": float(np.sqrt(np.mean(err * err))), "mae": float(np.mean(np.abs(err)))}


def _as_float64(x: np.ndarray | Tensor) -> np.ndarray:
    if isinstance(x, Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64).reshape(-1)


def evaluate_ratings(
    predict: Callable[[Tensor, Tensor], Tensor] | np.ndarray | Tensor,
    target: Interactions,
    batch_size: int = 65536,
) -> dict[str, float]:
    """RMSE and MAE of rating predictions on ``target`` (which must carry ratings).

    Args:
        predict: a function ``(users [B], items [B]) -> ratings [B]`` called under
            ``torch.no_grad`` on int64 index tensors in batches of ``batch_size``, or the
            predictions themselves, aligned with ``target``'s rows.
    """
    if target.rating is None:
        raise ValueError("target has no ratings; load it with a rating column")
    if not callable(predict):
        return rating_metrics(predict, target.rating)
    users = torch.from_numpy(target.user)
    items = torch.from_numpy(target.item)
    preds = []
    with torch.no_grad():
        for s in range(0, len(target), batch_size):
            preds.append(_as_float64(predict(users[s:s + batch_size], items[s:s + batch_size])))
    pred = np.concatenate(preds) if preds else np.zeros(0)
    return rating_metrics(pred, target.rating)
