"""The epoch loop every trainer shares: validation, early stopping, checkpoints, resume."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from graphrec.data.interactions import Interactions
from graphrec.distributed import Ranks
from graphrec.run_folder import RunError, load_checkpoint
from graphrec.training.checkpoints import save_checkpoint, write_metrics
from graphrec.training.reporting import TensorBoardLogger, epoch_line, logger, tensorboard_dir


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


class EpochLoop:
    """The epoch loop that :class:`Trainer` and
    :class:`~graphrec.training.rating.RatingTrainer` share.

    Validation runs every ``eval_every`` epochs (and after the last or a timed-out
    epoch). The best epoch by the validation metric :attr:`monitor` is kept (greater is
    better unless :attr:`higher_is_better` is false; an improvement must exceed
    :attr:`min_delta`) and its weights are restored at the end. Training stops after
    ``patience`` validations without improvement, or once ``max_minutes`` of training
    time have passed. With a run directory, ``last.pt`` (everything needed to resume
    exactly), ``best.pt`` and ``metrics.csv``/``metrics.json``/``metrics.jsonl`` are
    written after every epoch, atomically; every epoch draws its randomness from
    ``(seed, epoch)``, so a run killed and resumed ends with the same weights as an
    uninterrupted one.

    With ``progress`` each epoch is one line on the logger ``graphrec.training``
    (:mod:`graphrec.training.reporting`); with ``tensorboard`` each epoch's row is also
    written as TensorBoard scalars, by a :class:`~graphrec.training.reporting.TensorBoardLogger`
    called after ``on_epoch_end``.

    With :attr:`ranks` (data-parallel training, see :mod:`graphrec.distributed`) every
    rank runs this loop on its share of each batch, and the gradients are summed before
    each step, so all ranks hold the same weights. Rank 0 decides: it reads the
    checkpoint to resume from and its validation metrics (identical on every rank, the
    evaluation being sharded and combined) are the ones every rank acts on; only rank 0
    logs and writes files. Hooks run on every rank.

    Subclasses set ``config``, ``model``, ``optimizer``, ``device``, ``valid``,
    ``run_dir``, ``ranks`` and ``on_epoch_end`` and implement :meth:`_train_epoch` and
    :meth:`_validate`.
    """

    config: Any
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    device: torch.device
    valid: Interactions | None
    run_dir: Path | None
    ranks: Ranks | None = None
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

    @property
    def is_main(self) -> bool:
        """Whether this process logs and writes files (rank 0, or the only process)."""
        return self.ranks is None or self.ranks.is_main

    def _start_ranks(self) -> None:
        """Give every rank rank 0's initial weights (a no-op in one process)."""
        if self.ranks is not None:
            self.ranks.broadcast_module(self.model)

    def _step(self, loss: torch.Tensor, reg: list[torch.Tensor], batch_size: int, where: str,
              check: str, share: float = 1.0) -> float:
        """Add the L2 penalty ``l2 * 0.5 * sum ||t||² / batch_size`` over ``reg``, refuse a
        non-finite loss, take one optimiser step, and return the loss.

        ``share`` is this rank's fraction of the batch's rows: each rank's gradient is
        weighted by it and the ranks' gradients are summed, which gives the gradient of
        the whole batch's mean loss, as one process stepping on the whole batch would.
        """
        cfg = self.config
        if reg and cfg.l2 > 0:
            loss = loss + cfg.l2 * 0.5 * sum(t.pow(2).sum() for t in reg) / batch_size
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{where}: the loss became {loss.item()}; lower the learning "
                                     f"rate (now {cfg.lr}) or check {check}")
        self.optimizer.zero_grad(set_to_none=True)
        (loss if share == 1.0 else loss * share).backward()
        self._apply_gradients()
        return loss.item()

    def _deadline_passed(self, deadline: float | None) -> bool:
        """Whether training time ran out (``deadline`` from :meth:`fit`); rank 0's clock
        decides for all ranks."""
        if deadline is None:
            return False
        passed = time.perf_counter() > deadline
        return passed if self.ranks is None else bool(self.ranks.broadcast(passed))

    def _epoch_mean(self, total: float, seen: int) -> float:
        """The epoch's mean loss from this rank's ``total`` over ``seen`` rows, over all ranks."""
        if self.ranks is not None:
            sums = self.ranks.sum_(torch.tensor([total, seen], dtype=torch.float64))
            total, seen = float(sums[0]), int(sums[1])
        return total / max(seen, 1)

    def _skip_step(self) -> None:
        """This rank has no rows of the batch (fewer rows than ranks): it adds no gradient
        but joins the others' sum and step."""
        self.optimizer.zero_grad(set_to_none=True)
        self._apply_gradients()

    def _apply_gradients(self) -> None:
        """Sum the gradients over the ranks (if any) and take the optimiser step."""
        if self.ranks is not None:
            self.ranks.sum_gradients(self.model.parameters())
        self.optimizer.step()

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

    def _resume_checkpoint(self) -> dict[str, Any] | None:
        """The contents of ``run_dir/last.pt`` when there is one, read by rank 0 and sent to
        the other ranks (which need not see rank 0's disk)."""
        ckpt = None
        last = self.run_dir / "last.pt" if self.run_dir else None
        if self.is_main and last is not None and last.exists():
            ckpt = load_checkpoint(last, torch.device("cpu"))
        if self.ranks is not None:
            ckpt = self.ranks.broadcast(ckpt)
        return ckpt

    def _refuse_earlier_run(self) -> None:
        """Never write over an earlier run's checkpoints: without ``resume``, a
        ``run_dir`` that already holds them is an error (``graphrec train`` and
        :func:`~graphrec.experiment.run` also refuse or clear the folder before this)."""
        if self.run_dir is None or self.config.resume or not self.is_main:
            return
        found = [name for name in ("last.pt", "best.pt") if (self.run_dir / name).exists()]
        if found:
            raise RunError(f"{self.run_dir}: holds an earlier run ({', '.join(found)}); set "
                           f"resume=True to continue it, or give another run_dir")

    def _validated(self) -> dict[str, float]:
        """:meth:`_validate`, with rank 0's metrics on every rank, so that early stopping and
        the choice of the best epoch are rank 0's decisions everywhere."""
        metrics = self._validate()
        return metrics if self.ranks is None else self.ranks.broadcast(metrics)

    def fit(self) -> TrainResult:
        """Train until ``epochs``, early stopping, or ``max_minutes``; restore the best weights.

        Without validation data the last epoch's weights are kept.
        """
        board = None
        folder = tensorboard_dir(getattr(self.config, "tensorboard", False), self.run_dir)
        if folder is not None and self.is_main:
            board = TensorBoardLogger(folder)
        try:
            return self._fit(board)
        finally:
            if board is not None:
                board.close()

    def _log_epoch(self, row: dict[str, float], best: bool) -> None:
        """The epoch's line on the ``graphrec.training`` logger (rank 0, with ``progress``)."""
        if self.config.progress and self.is_main:
            logger.info(epoch_line(row, self.loss_key, self.monitor, best))

    def _fit(self, board: TensorBoardLogger | None) -> TrainResult:
        cfg = self.config
        sign = 1.0 if self.higher_is_better else -1.0
        best: dict[str, Any] = {"epoch": 0, "metrics": {}, "value": -sign * math.inf, "state": None, "bad": 0}
        history: list[dict[str, float]] = []
        start_epoch, train_seconds = 1, 0.0
        self._refuse_earlier_run()
        ckpt = self._resume_checkpoint() if cfg.resume else None
        if ckpt is not None:
            self.model.load_state_dict(ckpt["model"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
            best, history = ckpt["best"], ckpt["history"]
            start_epoch, train_seconds = ckpt["epoch"] + 1, ckpt["train_seconds"]
        validate_start = getattr(cfg, "validate_start", None)
        if validate_start is None:
            validate_start = bool(getattr(self.model, "warm_start", False))
        if validate_start and self.valid is not None and start_epoch == 1:
            metrics = self._validated()
            if self.monitor not in metrics:
                raise KeyError(f"monitor {self.monitor!r} is not among the metrics {sorted(metrics)}")
            best = {"epoch": 0, "metrics": metrics, "value": metrics[self.monitor],
                    "state": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
                    "bad": 0}
            history.append({"epoch": 0, "train_seconds": 0.0, **{f"valid_{k}": v for k, v in metrics.items()}})
            self._log_epoch(history[-1], best=True)
            if self.run_dir and self.is_main:
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
                metrics = self._validated()
                row.update({f"valid_{k}": v for k, v in metrics.items()})
                if self.monitor not in metrics:
                    raise KeyError(f"monitor {self.monitor!r} is not among the metrics {sorted(metrics)}")
                if sign * (metrics[self.monitor] - best["value"]) > self.min_delta:
                    best = {"epoch": epoch, "metrics": metrics, "value": metrics[self.monitor],
                            "state": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
                            "bad": 0}
                    if self.run_dir and self.is_main:
                        save_checkpoint({"epoch": epoch, "model": best["state"], "metrics": metrics},
                                        self.run_dir / "best.pt")
                else:
                    best["bad"] += 1
            history.append(row)
            if self.on_epoch_end is not None:
                self.on_epoch_end(self, row)
            if board is not None:
                board(self, row)
            self._log_epoch(row, best=best["epoch"] == epoch)
            if self.run_dir and self.is_main:
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
        if self.ranks is not None:
            # Rank 0's timings and losses are the run's record.
            history, train_seconds = self.ranks.broadcast((history, train_seconds))
        return TrainResult(best_epoch=best["epoch"], best_metrics=best["metrics"], history=history,
                           train_seconds=train_seconds, stopped=stopped)
