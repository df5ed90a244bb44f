"""Settings of the trainers, as typed dataclasses.

This module imports nothing from graphrec (nor torch), so that the run configuration
(:mod:`graphrec.config`) and anything else can read the settings without loading the
training code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

# How the evaluators multiply float32 embeddings on the CPU (graphrec.evaluate).
ScoreBackend = Literal["auto", "torch", "numpy"]

#: The ranking losses :class:`TrainConfig` accepts (the keys of :data:`graphrec.scoring.LOSSES`).
LOSS_NAMES = ("bpr", "bce", "softmax")


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
        score_backend: the validation :class:`~graphrec.evaluate.Evaluator`'s
            ``score_backend``, ``auto``, ``torch`` or ``numpy``. The ``graphrec``
            command and :func:`graphrec.experiment.run` take it from
            ``eval.score_backend``; set that key there.
        eval_users: validate on a seeded random sample of this many validation users
            (drawn from ``seed``, the same users every epoch) instead of all of them,
            when full ranking for every user costs more than the epoch (``None`` = all).
        max_minutes: stop after this much training time (``None`` = no limit).
        seed: seeds batching, negatives and dropout; the same seed gives the same run.
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``, ...
        run_dir: where checkpoints and per-epoch metrics go (``None`` = nowhere).
        resume: continue from ``run_dir/last.pt`` when it exists.
        progress: report progress: one line per epoch (loss, monitored metric, time) on
            the logger ``graphrec.training`` at level INFO, and on a terminal a tqdm bar
            per epoch. ``graphrec train`` prints the lines on stderr; in a script or
            notebook call ``logging.basicConfig(level=logging.INFO)`` to see them.
        tensorboard: also write every epoch's loss and metrics for TensorBoard: ``True``
            into ``run_dir/tensorboard``, a string into that folder (needs the
            ``tensorboard`` extra: ``pip install "graphrec[tensorboard]"``).
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
    score_backend: ScoreBackend = "auto"
    eval_users: int | None = None
    max_minutes: float | None = None
    seed: int = 0
    device: str = "auto"
    run_dir: str | None = None
    resume: bool = False
    progress: bool = True
    tensorboard: bool | str = False
    refit: bool = False

    def __post_init__(self) -> None:
        if self.loss not in LOSS_NAMES:
            raise ValueError(f"loss must be one of {sorted(LOSS_NAMES)}, not {self.loss!r}")
        if self.batch_sampling not in ("edges", "users"):
            raise ValueError(f"batch_sampling must be 'edges' or 'users', not {self.batch_sampling!r}")
        if self.negatives not in ("uniform", "popularity"):
            raise ValueError(f"negatives must be 'uniform' or 'popularity', not {self.negatives!r}")
        if self.score_backend not in get_args(ScoreBackend):
            raise ValueError(f"score_backend must be 'auto', 'torch' or 'numpy', "
                             f"not {self.score_backend!r}")
        for name in ("epochs", "batch_size", "num_negatives", "hard_negatives", "eval_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.eval_users is not None and self.eval_users < 1:
            raise ValueError(f"eval_users must be >= 1 or None, got {self.eval_users}")
        if self.hard_negatives > 1 and self.shared_negatives:
            raise ValueError("hard_negatives picks negatives per positive; shared_negatives shares "
                             "them across the batch: use one or the other")
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr_decay must lie in (0, 1], got {self.lr_decay}")
        self.ks = tuple(self.ks)



@dataclass
class RatingTrainConfig:
    """Settings of :class:`RatingTrainer`.

    Attributes:
        epochs: maximum number of passes over the training ratings.
        batch_size: ratings per optimisation step.
        lr: Adam learning rate.
        lr_decay: multiply the learning rate by this after every epoch (epoch ``e``
            trains at ``lr * lr_decay ** (e - 1)``; 1 = constant).
        l2: weight of the L2 penalty on the batch's regularised tensors (the model's
            :meth:`~graphrec.models.rating.RatingModel.regularized`):
            ``l2 * 0.5 * sum ||t||² / batch_size``.
        weight_decay: Adam weight decay on all parameters.
        mask_batch_edges: hide each batch's own rating edges from the model's graph
            aggregations, so that a rating is never predicted from its own opinion
            embedding (a held-out rating is not in the graph either).
        eval_every: epochs between validation runs.
        patience: stop after this many validations without an RMSE improvement of more
            than ``min_delta`` (0 = never).
        min_delta: the smallest decrease of validation RMSE that counts as improvement.
        clip: clip predictions to the training rating range when evaluating.
        max_minutes: stop after this much training time (``None`` = no limit).
        seed: seeds batching and dropout; the same seed gives the same run.
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``, ...
        run_dir: where checkpoints and per-epoch metrics go (``None`` = nowhere).
        resume: continue from ``run_dir/last.pt`` when it exists.
        progress: report progress: one line per epoch on the logger
            ``graphrec.training`` (level INFO), and on a terminal a tqdm bar per epoch
            (see :class:`TrainConfig`).
        tensorboard: also write every epoch's loss and metrics for TensorBoard: ``True``
            into ``run_dir/tensorboard``, a string into that folder.
    """

    epochs: int = 100
    batch_size: int = 1024
    lr: float = 1e-3
    lr_decay: float = 1.0
    l2: float = 0.0
    weight_decay: float = 0.0
    mask_batch_edges: bool = True
    eval_every: int = 1
    patience: int = 5
    min_delta: float = 0.0
    clip: bool = True
    max_minutes: float | None = None
    seed: int = 0
    device: str = "auto"
    run_dir: str | None = None
    resume: bool = False
    progress: bool = True
    tensorboard: bool | str = False

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "eval_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr_decay must lie in (0, 1], got {self.lr_decay}")
        for name in ("lr", "l2", "weight_decay", "min_delta"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
