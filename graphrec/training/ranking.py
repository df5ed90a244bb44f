"""Training of ranking models: batches of edges, negatives, the ranking loss."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from graphrec.data.interactions import Interactions
from graphrec.data.sampling import NegativeSampler
from graphrec.distributed import Ranks, current_ranks
from graphrec.evaluate import Evaluator
from graphrec.models.base import Recommender
from graphrec.models.masked_graph import MaskedGraph
from graphrec.scoring import LOSSES
from graphrec.training.config import TrainConfig
from graphrec.training.loop import EpochLoop, adam, resolve_device
from graphrec.training.reporting import progress_bar


class Trainer(EpochLoop):
    """Trains a :class:`~graphrec.models.base.Recommender` on its graph's edges.

    Each epoch shuffles the training edges (the model's graph), draws negatives for each
    batch, and minimises the ranking loss plus the L2 penalty. Validation runs on
    ``valid`` — a part carved from the training data, never the test set — and the best
    epoch's weights are restored at the end.

    A run with ``run_dir`` writes ``last.pt`` (everything needed to resume exactly),
    ``best.pt`` (best weights) and ``metrics.csv``/``metrics.json`` after every epoch
    (the loop is :class:`EpochLoop`'s). Every epoch draws its randomness from
    ``(seed, epoch)``, so a run killed and resumed ends with the same weights as an
    uninterrupted one.

    ``on_epoch_end(trainer, row)`` is called after each epoch (and its validation) with
    that epoch's metrics row, while ``trainer.model`` holds the epoch's weights; use it
    to log, snapshot or evaluate along the way. ``on_epoch_start(trainer, epoch)`` is
    called before each epoch trains, also the first one after a resume, so a schedule
    written as a function of the epoch (e.g. :func:`graphrec.models.gat.attention_warmup`)
    resumes exactly.

    Data-parallel (``ranks``; by default the ranks of the running process group, see
    :mod:`graphrec.distributed`): every rank draws the same epoch order and the same
    negatives from ``(seed, epoch)``, takes its contiguous share of each batch's rows,
    hides the whole batch's edges from propagation and scores its rows; the ranks'
    weighted gradients are summed before each step. A run on N ranks therefore takes the
    steps one process takes on the same batches (``batch_size`` is the global batch), to
    float rounding, and its checkpoints resume on any number of ranks. Validation is
    sharded across the ranks (:class:`~graphrec.evaluate.Evaluator`).
    """

    def __init__(self, model: Recommender, valid: Interactions | None, config: TrainConfig | None = None,
                 exclude_valid: list[Any] | None = None,
                 on_epoch_end: Callable[[Trainer, dict[str, float]], None] | None = None,
                 on_epoch_start: Callable[[Trainer, int], None] | None = None,
                 ranks: Ranks | None = None) -> None:
        self.config = config or TrainConfig()
        self.ranks = ranks if ranks is not None else current_ranks()
        self.on_epoch_end = on_epoch_end
        self.on_epoch_start = on_epoch_start
        self.device = resolve_device(self.config.device)
        self.model = model.to(self.device)
        self.valid = valid if valid is not None and len(valid) else None
        users, items = model.graph.edges()
        self.edge_users = torch.from_numpy(users)
        self.edge_items = torch.from_numpy(items)
        # for user-uniform batches: edge ids are grouped by user (CSR order), so a user's
        # edges are the ids indptr[u] .. indptr[u + 1] - 1
        indptr = torch.from_numpy(model.graph.ui.indptr.astype(np.int64))
        degree = indptr.diff()
        active = torch.nonzero(degree).flatten()
        self._user_start, self._user_degree = indptr[active], degree[active]
        self.evaluator = Evaluator(exclude=[model.graph.ui, *(exclude_valid or [])], ks=self.config.ks,
                                   ranks=self.ranks, user_sample=self.config.eval_users,
                                   sample_seed=self.config.seed,
                                   score_backend=self.config.score_backend)
        if self.valid is not None:
            # Checked now, not after the first epoch's validation.
            known = [f"{m}@{k}" for m in self.evaluator.metrics for k in self.evaluator.ks]
            if self.config.monitor not in known:
                raise ValueError(f"monitor {self.config.monitor!r} is not a validation metric; "
                                 f"choose among {known}")
        # Groups carry an lr_scale (e.g. the GAT recommender's attention sharpness learns
        # faster than the embeddings), which fit()'s per-epoch schedule multiplies in.
        self.optimizer = adam(model.param_groups(), self.config.lr, self.config.weight_decay,
                              self.device)
        self.loss_fn = LOSSES[self.config.loss]
        self.run_dir = Path(self.config.run_dir) if self.config.run_dir else None
        if self.run_dir and self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self._start_ranks()

    # ------------------------------------------------------------------ one epoch
    def _train_epoch(self, epoch: int, deadline: float | None) -> tuple[float, bool]:
        cfg = self.config
        model = self.model
        model.train()
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
        sampler = NegativeSampler(model.graph, mode=cfg.negatives, seed=cfg.seed * 1_000_003 + epoch)
        num_edges = self.edge_users.numel()
        perm = self._epoch_edges(gen)
        batches = math.ceil(num_edges / cfg.batch_size)
        total, seen, timed_out = 0.0, 0, False
        ranks = self.ranks
        bar = progress_bar(range(batches), f"epoch {epoch}", cfg.progress and self.is_main)
        start = time.perf_counter()
        for b in bar:
            # The whole batch and its negatives, drawn alike on every rank.
            eids = perm[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            users = self.edge_users[eids]
            if cfg.shared_negatives:
                neg = torch.from_numpy(sampler.draw(cfg.num_negatives))
            else:
                neg = torch.from_numpy(np.asarray(
                    sampler.sample(users.numpy(), cfg.num_negatives * cfg.hard_negatives)))
            # One view of the graph without the batch's edges serves both passes.
            masked = self._batch_mask(eids)
            mine = slice(None) if ranks is None else ranks.part(eids.numel())
            my_eids = eids[mine]
            my_neg = neg if cfg.shared_negatives else neg[mine]
            where = f"epoch {epoch}, batch {b}"
            if my_eids.numel() == 0:
                self._skip_step()
            else:
                if cfg.hard_negatives > 1:
                    my_neg = self.hardest_negatives(my_eids, my_neg, masked)
                loss = self.train_batch(my_eids, my_neg, where, masked,
                                        share=my_eids.numel() / eids.numel())
                total += loss * my_eids.numel()
                seen += my_eids.numel()
            bar.set_postfix(loss=f"{total / max(seen, 1):.4f}",
                            edges_per_s=f"{seen / (time.perf_counter() - start):.0f}",
                            refresh=False)
            if self._deadline_passed(deadline):
                timed_out = True
                break
        bar.close()
        return self._epoch_mean(total, seen), timed_out

    def _epoch_edges(self, gen: torch.Generator) -> torch.Tensor:
        """The training edge ids of one epoch, in batch order (see ``batch_sampling``)."""
        num_edges = self.edge_users.numel()
        if self.config.batch_sampling == "edges":
            return torch.randperm(num_edges, generator=gen)
        who = torch.randint(self._user_start.numel(), (num_edges,), generator=gen)
        degree = self._user_degree[who]
        # float64 so that u * degree stays below degree for every u < 1
        offset = (torch.rand(num_edges, generator=gen, dtype=torch.float64) * degree).long()
        return self._user_start[who] + torch.minimum(offset, degree - 1)

    @torch.no_grad()
    def hardest_negatives(self, eids: torch.Tensor, candidates: torch.Tensor,
                          masked: MaskedGraph | None = None) -> torch.Tensor:
        """Of ``candidates`` ``[B, num_negatives · K]`` (consecutive groups of
        ``K = hard_negatives`` per negative) for the training edges ``eids``, the one the
        model scores highest in each group: ``[B, num_negatives]`` item indices.

        Scores come from the model as it is (training mode, no gradients), with the
        batch's edges hidden from propagation under ``mask_batch_edges``, as in the step
        (``masked``, the step's view of the graph without them, when given).
        """
        k = self.config.hard_negatives
        users, pos = self._endpoints(eids)
        cand = candidates.to(self.device)
        if masked is None:
            masked = self._batch_mask(eids)
        _, scores = self.model.score_pairs(users, pos, cand, edge_mask=masked)
        groups = cand.view(cand.size(0), -1, k)
        best = scores.view(groups.shape).argmax(dim=2, keepdim=True)
        return groups.gather(2, best).squeeze(2).to(candidates.device)

    def _endpoints(self, eids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The users and items of the training edges ``eids``, on the model's device."""
        return self.edge_users[eids].to(self.device), self.edge_items[eids].to(self.device)

    def _batch_mask(self, eids: torch.Tensor) -> MaskedGraph | None:
        """The graph without the batch's edges (``mask_batch_edges``), else ``None``."""
        if not self.config.mask_batch_edges:
            return None
        return MaskedGraph.hiding(self.model.torch_graph(), eids)

    def train_batch(self, eids: torch.Tensor, neg: torch.Tensor, where: str = "batch",
                    masked: MaskedGraph | None = None, share: float = 1.0) -> float:
        """One optimisation step on the training edges ``eids`` with negatives ``neg``
        (``[len(eids), num_negatives]`` item indices, or ``[num_negatives]`` shared by
        the batch with ``shared_negatives``); returns the batch's loss.

        With ``mask_batch_edges`` the batch's own edges are removed from propagation, so a
        positive cannot be predicted from itself (``masked``: that view of the graph, when
        the caller has built it already). ``share``: the fraction of the batch these rows
        are, when ranks split it (see :meth:`EpochLoop._step`).
        """
        cfg = self.config
        model = self.model
        users, pos = self._endpoints(eids)
        neg = neg.to(self.device)
        mask = self._batch_mask(eids) if masked is None else masked
        if cfg.shared_negatives:
            pos_s, neg_s = model.score_shared(users, pos, neg, edge_mask=mask)
            # A shared item that is the row's own positive is no negative of that row:
            # -inf adds nothing to any of the losses (softplus(-inf) = 0, exp(-inf) = 0).
            neg_s = neg_s.masked_fill(neg.unsqueeze(0) == pos.unsqueeze(1), -math.inf)
        else:
            pos_s, neg_s = model.score_pairs(users, pos, neg if neg.size(1) > 1 else neg[:, 0],
                                             edge_mask=mask)
        # Shared negatives are the whole batch's: one rank alone adds their penalty.
        own_neg = not cfg.shared_negatives or self.is_main
        reg_items = torch.cat([pos, neg.reshape(-1)]) if own_neg else pos
        return self._step(self.loss_fn(pos_s, neg_s), model.regularized(users, reg_items),
                          users.numel(), where, "the input data", share)

    def _validate(self) -> dict[str, float]:
        return self.evaluator.evaluate(self.model, self.valid)
