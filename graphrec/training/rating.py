"""Training of rating models: batches of rated edges, MSE, early stopping on RMSE."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import torch

from graphrec.data.interactions import Interactions
from graphrec.distributed import Ranks, current_ranks
from graphrec.evaluate import evaluate_ratings
from graphrec.models.masked_graph import MaskedGraph
from graphrec.models.rating import RatingModel
from graphrec.scoring import mse_loss
from graphrec.training.config import RatingTrainConfig
from graphrec.training.loop import EpochLoop, TrainResult, adam, resolve_device
from graphrec.training.reporting import progress_bar

#: What :meth:`RatingTrainer.fit` returns (the shared result of the epoch loop).
RatingTrainResult = TrainResult


class RatingTrainer(EpochLoop):
    """Trains a :class:`~graphrec.models.rating.RatingModel` with MSE on its graph's ratings.

    The training ratings are the model's graph edges with their ratings
    (``model.edge_rating``), so only what the graph was built from is ever trained on.
    Each epoch shuffles them into batches; with ``mask_batch_edges`` the batch's edges
    are hidden from the model's aggregations for that step. Validation RMSE/MAE
    (:func:`~graphrec.evaluate.rating_metrics`) is computed on ``valid`` — ratings held
    out of the training graph — and the epoch with the lowest RMSE is restored at the
    end.

    A run with ``run_dir`` writes ``last.pt`` (model, optimiser, best state and history,
    enough to resume), ``best.pt`` and ``metrics.csv``/``metrics.json`` after every epoch,
    each atomically (the loop is :class:`~graphrec.training.loop.EpochLoop`'s). Every epoch draws
    its randomness from ``(seed, epoch)``. ``on_epoch_end(trainer, row)`` is called after
    each epoch, as for :class:`~graphrec.training.ranking.Trainer`.
    """

    loss_key = "train_mse"
    higher_is_better = False
    monitor = "rmse"  # type: ignore[assignment]

    def __init__(self, model: RatingModel, valid: Interactions | None,
                 config: RatingTrainConfig | None = None,
                 on_epoch_end: Callable[[RatingTrainer, dict[str, float]], None] | None = None,
                 ranks: Ranks | None = None) -> None:
        self.config = config or RatingTrainConfig()
        self.ranks = ranks if ranks is not None else current_ranks()
        self.on_epoch_end = on_epoch_end
        self.device = resolve_device(self.config.device)
        self.model = model.to(self.device)
        if valid is not None and len(valid) and valid.rating is None:
            raise ValueError("valid has no ratings; load it with a rating column")
        self.valid = valid if valid is not None and len(valid) else None
        users, items = model.graph.edges()
        self.edge_users = torch.from_numpy(users).to(self.device)
        self.edge_items = torch.from_numpy(items).to(self.device)
        self.optimizer = adam(model.parameters(), self.config.lr, self.config.weight_decay, self.device)
        self.run_dir = Path(self.config.run_dir) if self.config.run_dir else None
        if self.run_dir and self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self._start_ranks()

    @property
    def min_delta(self) -> float:
        return self.config.min_delta

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, target: Interactions) -> dict[str, float]:
        """RMSE and MAE of the model on ``target`` (inference mode, predictions clipped
        to the training range when the config says so)."""
        model = self.model
        was_training = model.training
        model.eval()
        try:
            predict = model.predictor()
            if self.config.clip:
                def fn(u: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
                    return model.clip(predict(u.to(self.device), i.to(self.device)))
            else:
                def fn(u: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
                    return predict(u.to(self.device), i.to(self.device))
            return evaluate_ratings(fn, target)
        finally:
            model.train(was_training)

    # ------------------------------------------------------------------ one epoch
    def _train_epoch(self, epoch: int, deadline: float | None) -> tuple[float, bool]:
        cfg = self.config
        model = self.model
        model.train()
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
        num_edges = self.edge_users.numel()
        perm = torch.randperm(num_edges, generator=gen)
        batches = math.ceil(num_edges / cfg.batch_size)
        ratings = model.edge_rating
        total, seen, timed_out = 0.0, 0, False
        bar = progress_bar(range(batches), f"epoch {epoch}", cfg.progress and self.is_main)
        start = time.perf_counter()
        for b in bar:
            # The whole batch (the same on every rank) is hidden; each rank rates its share.
            batch = perm[b * cfg.batch_size:(b + 1) * cfg.batch_size].to(self.device)
            mask = MaskedGraph.hiding(model.torch_graph(), batch) if cfg.mask_batch_edges else None
            eids = batch if self.ranks is None else batch[self.ranks.part(batch.numel())]
            if eids.numel() == 0:
                self._skip_step()
            else:
                users = self.edge_users[eids]
                items = self.edge_items[eids]
                pred = model(users, items, edge_mask=mask)
                loss = mse_loss(pred, ratings[eids])
                mse = loss.item()
                self._step(loss, model.regularized(users, items), users.numel(),
                           f"epoch {epoch}, batch {b}", "the ratings", eids.numel() / batch.numel())
                total += mse * users.numel()
                seen += users.numel()
            bar.set_postfix(mse=f"{total / max(seen, 1):.4f}",
                            ratings_per_s=f"{seen / (time.perf_counter() - start):.0f}",
                            refresh=False)
            if self._deadline_passed(deadline):
                timed_out = True
                break
        bar.close()
        return self._epoch_mean(total, seen), timed_out

    def _validate(self) -> dict[str, float]:
        return self.evaluate(self.valid)
