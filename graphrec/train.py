"""Training loop for ranking models: batches of edges, negatives, early stopping, checkpoints."""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from graphrec.atomic import atomic_write_bytes
from graphrec.data.interactions import Interactions
from graphrec.data.sampling import NegativeSampler
from graphrec.evaluate import Evaluator
from graphrec.models.base import Recommender
from graphrec.run_folder import load_checkpoint
from graphrec.scoring import LOSSES


@dataclass
class TrainConfig:
    """Settings of :class:`Trainer`.

    Attributes:
        epochs: maximum number of passes over the training edges.
        batch_size: training edges per optimisation step.
        batch_sampling: how an epoch picks its ``num_edges`` training edges. ``edges``
            shuffles them, so each is seen once per epoch and a user is seen as often
            as they have edges. ``users`` draws a user uniformly (among users with
            training edges), then one of that user's edges uniformly, with replacement,
            as the reference code of NGCF and LightGCN does: every user gets the same
            share of the updates, as every user has the same weight in the per-user
            averages of Recall and NDCG.
        lr: Adam learning rate.
        lr_decay: multiply the learning rate by this after every epoch (epoch ``e``
            trains at ``lr * lr_decay ** (e - 1)``; 1 = constant).
        l2: weight of the L2 penalty on the batch's regularised tensors (the ego
            embeddings for LightGCN/MF): ``l2 * 0.5 * sum ||e||² / batch_size``. With
            ``shared_negatives`` each shared negative counts once, not once per row.
        weight_decay: Adam weight decay on all parameters (0 for the embedding models).
        loss: ``bpr``, ``bce`` or ``softmax`` (sampled softmax / InfoNCE).
        num_negatives: negatives per positive edge (per batch with ``shared_negatives``).
        negatives: ``uniform`` or ``popularity`` sampling.
        hard_negatives: candidates per negative. With ``K > 1`` each negative is the one
            the current model scores highest among ``K`` candidates drawn by
            ``negatives`` (dynamic negative sampling, Zhang et al., SIGIR 2013): as the
            model learns, uniform negatives become too easy to teach it anything, and
            the hardest of a few keeps the gradient informative. Scoring the candidates
            is a forward pass without gradients (cheap for MF; for graph models it
            propagates the candidates' rows too). Not with ``shared_negatives``.
        shared_negatives: draw ``num_negatives`` items once per batch and score every
            user of the batch against all of them (``[B, num_negatives]`` scores from
            one matrix product), instead of separate negatives per positive. This makes
            hundreds of negatives cheap, the usual set-up of the sampled softmax. The
            shared items are drawn from the sampling distribution without excluding
            positives; an item equal to a row's own positive gets the score ``-inf``,
            so it contributes nothing to that row's loss (it still counts in the mean
            of BPR and BCE); other positives of the user count as negatives (rare when
            items are many), and no log-Q correction is applied to popularity draws.
            Dot, cosine and bilinear scorers score the ``B × num_negatives`` pairs as
            one matrix product; the MLP scorer builds all pairs (memory ``B · M · 3D``).
        mask_batch_edges: hide each batch's positive edges from message passing, so the
            model cannot read the answer off the graph (graph models only). ``None``
            (the default) means off here; the ``graphrec`` command turns it on for
            rating models, whose own rating must never feed their prediction.
        validate_start: validate the starting weights as epoch 0, so that a model that
            starts from a solution (the attentive filter starts as GF-CF) is kept as it
            is when no epoch beats it. ``None`` (the default): when the model says it
            starts from one (``warm_start = True``).
        eval_every: epochs between validation runs.
        patience: stop after this many validations without improvement (0 = never).
        monitor: validation metric for early stopping and best-checkpoint selection.
        ks: cut-offs evaluated on validation.
        max_minutes: stop after this much training time (``None`` = no limit).
        seed: seeds batching, negatives and dropout; the same seed gives the same run.
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``, ...
        run_dir: where checkpoints and per-epoch metrics go (``None`` = nowhere).
        resume: continue from ``run_dir/last.pt`` when it exists.
        progress: show a tqdm progress bar.
        refit: after the epoch is chosen on validation, train a fresh model on training
            + validation for that many epochs and report its test metrics (read by
            :func:`graphrec.experiment.run` and the ``graphrec`` command; a
            :class:`Trainer` itself trains once). Published results usually train on
            the whole training file, so this makes numbers comparable with them.
    """

    epochs: int = 100
    batch_size: int = 2048
    batch_sampling: Literal["edges", "users"] = "edges"
    lr: float = 1e-3
    lr_decay: float = 1.0
    l2: float = 1e-4
    weight_decay: float = 0.0
    loss: Literal["bpr", "bce", "softmax"] = "bpr"
    num_negatives: int = 1
    negatives: Literal["uniform", "popularity"] = "uniform"
    hard_negatives: int = 1
    shared_negatives: bool = False
    mask_batch_edges: bool | None = None
    validate_start: bool | None = None
    eval_every: int = 1
    patience: int = 10
    monitor: str = "recall@20"
    ks: tuple[int, ...] = (20,)
    max_minutes: float | None = None
    seed: int = 0
    device: str = "auto"
    run_dir: str | None = None
    resume: bool = False
    progress: bool = True
    refit: bool = False

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {sorted(LOSSES)}, not {self.loss!r}")
        if self.batch_sampling not in ("edges", "users"):
            raise ValueError(f"batch_sampling must be 'edges' or 'users', not {self.batch_sampling!r}")
        if self.negatives not in ("uniform", "popularity"):
            raise ValueError(f"negatives must be 'uniform' or 'popularity', not {self.negatives!r}")
        for name in ("epochs", "batch_size", "num_negatives", "hard_negatives", "eval_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.hard_negatives > 1 and self.shared_negatives:
            raise ValueError("hard_negatives picks negatives per positive; shared_negatives shares "
                             "them across the batch: use one or the other")
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr_decay must lie in (0, 1], got {self.lr_decay}")
        self.ks = tuple(self.ks)


def resolve_device(device: str) -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; anything else is passed to torch."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def adam(params: Iterable[torch.nn.Parameter] | Iterable[dict[str, Any]], lr: float,
         weight_decay: float, device: torch.device) -> torch.optim.Adam:
    """Adam, fused into one kernel per step on the CPU and CUDA.

    The default multi-tensor Adam makes about ten passes over every embedding table per
    step; on a Gowalla-sized model that is a tenth of a LightGCN batch on the CPU, and
    the fused kernel (the same update, one pass) takes a fraction of it.
    """
    fused = True if device.type in ("cpu", "cuda") else None
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=fused)


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` returns."""

    best_epoch: int
    best_metrics: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    train_seconds: float = 0.0
    stopped: str = "epochs"


def write_metrics(run_dir: Path, history: list[dict[str, float]]) -> None:
    """Per-epoch rows to ``run_dir/metrics.json`` and ``metrics.csv`` (atomically)."""
    atomic_write_bytes(run_dir / "metrics.json", json.dumps(history, indent=1).encode())
    keys: list[str] = []
    for row in history:
        keys += [k for k in row if k not in keys]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    writer.writerows(history)
    atomic_write_bytes(run_dir / "metrics.csv", buf.getvalue().encode())


@contextmanager
def epoch_rng(device: torch.device, seed: int, epoch: int) -> Iterator[None]:
    """Seed torch's global generator from ``(seed, epoch)`` for one epoch.

    Dropout draws from the global generator: forking it makes each epoch's draws depend
    only on ``(seed, epoch)`` (so a resumed run matches an uninterrupted one) and leaves
    the caller's generator untouched.
    """
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed * 1_000_003 + epoch)
        yield


def save_checkpoint(obj: dict[str, Any], path: Path) -> None:
    """``torch.save`` made atomic: a crash never leaves a truncated checkpoint."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


class EpochLoop:
    """The epoch loop that :class:`Trainer` and
    :class:`~graphrec.rating_train.RatingTrainer` share.

    Validation runs every ``eval_every`` epochs (and after the last or a timed-out
    epoch). The best epoch by the validation metric :attr:`monitor` is kept (greater is
    better unless :attr:`higher_is_better` is false; an improvement must exceed
    :attr:`min_delta`) and its weights are restored at the end. Training stops after
    ``patience`` validations without improvement, or once ``max_minutes`` of training
    time have passed. With a run directory, ``last.pt`` (everything needed to resume
    exactly), ``best.pt`` and ``metrics.csv``/``metrics.json`` are written after every
    epoch, atomically; every epoch draws its randomness from ``(seed, epoch)``, so a run
    killed and resumed ends with the same weights as an uninterrupted one.

    Subclasses set ``config``, ``model``, ``optimizer``, ``device``, ``valid``,
    ``run_dir`` and ``on_epoch_end`` and implement :meth:`_train_epoch` and
    :meth:`_validate`.
    """

    config: Any
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    device: torch.device
    valid: Interactions | None
    run_dir: Path | None
    on_epoch_end: Callable[[Any, dict[str, float]], None] | None = None
    on_epoch_start: Callable[[Any, int], None] | None = None
    #: Name of the training loss in the per-epoch rows.
    loss_key = "loss"
    higher_is_better = True

    @property
    def monitor(self) -> str:
        """The validation metric that selects the best epoch."""
        return self.config.monitor

    @property
    def min_delta(self) -> float:
        """The smallest change of :attr:`monitor` that counts as an improvement."""
        return 0.0

    def _train_epoch(self, epoch: int, deadline: float | None) -> tuple[float, bool]:
        """One pass over the training data: ``(mean loss, whether the deadline passed)``."""
        raise NotImplementedError

    def _validate(self) -> dict[str, float]:
        """Metrics of the current weights on ``self.valid``."""
        raise NotImplementedError

    def _step(self, loss: torch.Tensor, reg: list[torch.Tensor], batch_size: int, where: str,
              check: str) -> float:
        """Add the L2 penalty ``l2 * 0.5 * sum ||t||² / batch_size`` over ``reg``, refuse a
        non-finite loss, take one optimiser step, and return the loss."""
        cfg = self.config
        if reg and cfg.l2 > 0:
            loss = loss + cfg.l2 * 0.5 * sum(t.pow(2).sum() for t in reg) / batch_size
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{where}: the loss became {loss.item()}; lower the learning "
                                     f"rate (now {cfg.lr}) or check {check}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def _state(self, epoch: int, best: dict[str, Any], history: list[dict[str, float]],
               train_seconds: float) -> dict[str, Any]:
        return {
            "epoch": epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "best": best,
            "history": history,
            "train_seconds": train_seconds,
            "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self.config).items()},
        }

    def fit(self) -> TrainResult:
        """Train until ``epochs``, early stopping, or ``max_minutes``; restore the best weights.

        Without validation data the last epoch's weights are kept.
        """
        cfg = self.config
        sign = 1.0 if self.higher_is_better else -1.0
        best: dict[str, Any] = {"epoch": 0, "metrics": {}, "value": -sign * math.inf, "state": None, "bad": 0}
        history: list[dict[str, float]] = []
        start_epoch, train_seconds = 1, 0.0
        last = self.run_dir / "last.pt" if self.run_dir else None
        if cfg.resume and last is not None and last.exists():
            ckpt = load_checkpoint(last, self.device)
            self.model.load_state_dict(ckpt["model"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
            best, history = ckpt["best"], ckpt["history"]
            start_epoch, train_seconds = ckpt["epoch"] + 1, ckpt["train_seconds"]
        validate_start = getattr(cfg, "validate_start", None)
        if validate_start is None:
            validate_start = bool(getattr(self.model, "warm_start", False))
        if validate_start and self.valid is not None and start_epoch == 1:
            metrics = self._validate()
            if self.monitor not in metrics:
                raise KeyError(f"monitor {self.monitor!r} is not among the metrics {sorted(metrics)}")
            best = {"epoch": 0, "metrics": metrics, "value": metrics[self.monitor],
                    "state": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
                    "bad": 0}
            history.append({"epoch": 0, "train_seconds": 0.0, **{f"valid_{k}": v for k, v in metrics.items()}})
            if self.run_dir:
                save_checkpoint({"epoch": 0, "model": best["state"], "metrics": metrics},
                                self.run_dir / "best.pt")
        stopped = "epochs"
        for epoch in range(start_epoch, cfg.epochs + 1):
            if self.on_epoch_start is not None:
                self.on_epoch_start(self, epoch)
            t0 = time.perf_counter()
            # A function of the epoch alone, so a resumed run continues the same schedule.
            for group in self.optimizer.param_groups:
                group["lr"] = cfg.lr * group.get("lr_scale", 1.0) * cfg.lr_decay ** (epoch - 1)
            # The budget is training time: validation and checkpoints do not count.
            deadline = None if cfg.max_minutes is None else t0 + cfg.max_minutes * 60 - train_seconds
            with epoch_rng(self.device, cfg.seed, epoch):
                loss, timed_out = self._train_epoch(epoch, deadline)
            epoch_seconds = time.perf_counter() - t0
            train_seconds += epoch_seconds
            row: dict[str, float] = {"epoch": epoch, self.loss_key: loss, "epoch_seconds": epoch_seconds,
                                     "train_seconds": train_seconds}
            if self.valid is not None and (epoch % cfg.eval_every == 0 or timed_out or epoch == cfg.epochs):
                metrics = self._validate()
                row.update({f"valid_{k}": v for k, v in metrics.items()})
                if self.monitor not in metrics:
                    raise KeyError(f"monitor {self.monitor!r} is not among the metrics {sorted(metrics)}")
                if sign * (metrics[self.monitor] - best["value"]) > self.min_delta:
                    best = {"epoch": epoch, "metrics": metrics, "value": metrics[self.monitor],
                            "state": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
                            "bad": 0}
                    if self.run_dir:
                        save_checkpoint({"epoch": epoch, "model": best["state"], "metrics": metrics},
                                        self.run_dir / "best.pt")
                else:
                    best["bad"] += 1
            history.append(row)
            if self.on_epoch_end is not None:
                self.on_epoch_end(self, row)
            if cfg.progress:
                shown = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}
                tqdm.write(str(shown))
            if self.run_dir:
                write_metrics(self.run_dir, history)
                save_checkpoint(self._state(epoch, best, history, train_seconds), self.run_dir / "last.pt")
            if timed_out:
                stopped = "time"
                break
            if cfg.patience and best["bad"] >= cfg.patience:
                stopped = "early"
                break
        if best["state"] is not None:
            self.model.load_state_dict(best["state"])
        return TrainResult(best_epoch=best["epoch"], best_metrics=best["metrics"], history=history,
                           train_seconds=train_seconds, stopped=stopped)


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
    """

    def __init__(self, model: Recommender, valid: Interactions | None, config: TrainConfig | None = None,
                 exclude_valid: list[Any] | None = None,
                 on_epoch_end: Callable[[Trainer, dict[str, float]], None] | None = None,
                 on_epoch_start: Callable[[Trainer, int], None] | None = None) -> None:
        self.config = config or TrainConfig()
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
        self.evaluator = Evaluator(exclude=[model.graph.ui, *(exclude_valid or [])], ks=self.config.ks)
        # Groups carry an lr_scale (e.g. the GAT recommender's attention sharpness learns
        # faster than the embeddings), which fit()'s per-epoch schedule multiplies in.
        self.optimizer = adam(model.param_groups(), self.config.lr, self.config.weight_decay,
                              self.device)
        self.loss_fn = LOSSES[self.config.loss]
        self.run_dir = Path(self.config.run_dir) if self.config.run_dir else None
        if self.run_dir:
            self.run_dir.mkdir(parents=True, exist_ok=True)

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
        bar = tqdm(range(batches), desc=f"epoch {epoch}", disable=not cfg.progress, leave=False)
        start = time.perf_counter()
        for b in bar:
            eids = perm[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            users = self.edge_users[eids]
            if cfg.shared_negatives:
                neg = torch.from_numpy(sampler.draw(cfg.num_negatives))
            else:
                neg = torch.from_numpy(np.asarray(
                    sampler.sample(users.numpy(), cfg.num_negatives * cfg.hard_negatives)))
                if cfg.hard_negatives > 1:
                    neg = self.hardest_negatives(eids, neg)
            loss = self.train_batch(eids, neg, f"epoch {epoch}, batch {b}")
            total += loss * users.numel()
            seen += users.numel()
            bar.set_postfix(loss=f"{total / seen:.4f}", edges_per_s=f"{seen / (time.perf_counter() - start):.0f}")
            if deadline is not None and time.perf_counter() > deadline:
                timed_out = True
                break
        bar.close()
        return total / max(seen, 1), timed_out

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
    def hardest_negatives(self, eids: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """Of ``candidates`` ``[B, num_negatives · K]`` (consecutive groups of
        ``K = hard_negatives`` per negative) for the training edges ``eids``, the one the
        model scores highest in each group: ``[B, num_negatives]`` item indices.

        Scores come from the model as it is (training mode, no gradients), with the
        batch's edges hidden from propagation under ``mask_batch_edges``, as in the step.
        """
        k = self.config.hard_negatives
        users, pos = self._endpoints(eids)
        cand = candidates.to(self.device)
        _, scores = self.model.score_pairs(users, pos, cand, edge_mask=self._batch_mask(eids))
        groups = cand.view(cand.size(0), -1, k)
        best = scores.view(groups.shape).argmax(dim=2, keepdim=True)
        return groups.gather(2, best).squeeze(2).to(candidates.device)

    def _endpoints(self, eids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The users and items of the training edges ``eids``, on the model's device."""
        return self.edge_users[eids].to(self.device), self.edge_items[eids].to(self.device)

    def _batch_mask(self, eids: torch.Tensor) -> torch.Tensor | None:
        """The edge mask that hides the batch's edges (``mask_batch_edges``), else ``None``."""
        if not self.config.mask_batch_edges:
            return None
        mask = torch.ones(self.edge_users.numel(), dtype=torch.bool, device=self.device)
        mask[eids.to(self.device)] = False
        return mask

    def train_batch(self, eids: torch.Tensor, neg: torch.Tensor, where: str = "batch") -> float:
        """One optimisation step on the training edges ``eids`` with negatives ``neg``
        (``[len(eids), num_negatives]`` item indices, or ``[num_negatives]`` shared by
        the batch with ``shared_negatives``); returns the batch's loss.

        With ``mask_batch_edges`` the batch's own edges are removed from propagation, so a
        positive cannot be predicted from itself.
        """
        cfg = self.config
        model = self.model
        users, pos = self._endpoints(eids)
        neg = neg.to(self.device)
        mask = self._batch_mask(eids)
        if cfg.shared_negatives:
            pos_s, neg_s = model.score_shared(users, pos, neg, edge_mask=mask)
            # A shared item that is the row's own positive is no negative of that row:
            # -inf adds nothing to any of the losses (softplus(-inf) = 0, exp(-inf) = 0).
            neg_s = neg_s.masked_fill(neg.unsqueeze(0) == pos.unsqueeze(1), -math.inf)
        else:
            pos_s, neg_s = model.score_pairs(users, pos, neg if neg.size(1) > 1 else neg[:, 0],
                                             edge_mask=mask)
        return self._step(self.loss_fn(pos_s, neg_s),
                          model.regularized(users, torch.cat([pos, neg.reshape(-1)])),
                          users.numel(), where, "the input data")

    def _validate(self) -> dict[str, float]:
        return self.evaluator.evaluate(self.model, self.valid)
